//! Journey analyses at scale: process map, variants, a 5-step funnel, flows of depth 5, moments of truth and
//! attribution (goal `step 05`, every other step a candidate; channels as touchpoints, Markov order 2) over generated journeys
//! of 10M and 100M events (set `WAYMARK_BENCH_EVENTS=1M,10M,100M` to choose), on every core, from memory — the
//! journey view a warm store serves. Prints a Markdown table: median of 5 runs after a warm-up (`WAYMARK_BENCH_RUNS`
//! sets how many), events/s, and the journey view's size.
//!
//! Run: `cargo bench -p waymark-engine --bench journeys`; `WAYMARK_BENCH_ONLY=funnel` times only the analyses whose
//! name starts with that. The data is `waymark_engine::synthetic`.

use std::time::Instant;
use waymark_analytics::attribution::{Attribution, TouchpointKind};
use waymark_analytics::{
    run, Condition, Direction, Flows, Funnel, Moments, Plan, ProcessMap, Runner, Variants,
};

/// One timed analysis: returns the size of its report so the work is not optimised away.
type Analysis<'a> = Box<dyn Fn() -> usize + 'a>;

/// Peak resident memory of this process so far, from `/proc/self/status` (Linux), in MB.
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1e3)
}

/// Median wall time of `runs` runs after one warm-up, in seconds.
fn time<R>(runs: usize, mut work: impl FnMut() -> R) -> f64 {
    std::hint::black_box(work());
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let started = Instant::now();
            std::hint::black_box(work());
            started.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[runs / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; filters are not supported here.
    let sizes = std::env::var("WAYMARK_BENCH_EVENTS").unwrap_or_else(|_| "10M,100M".into());
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let runs: usize = std::env::var("WAYMARK_BENCH_RUNS")
        .ok()
        .and_then(|runs| runs.parse().ok())
        .filter(|runs| *runs > 0)
        .unwrap_or(5);
    println!("threads: {threads}");
    println!();
    println!("| events | customers | journey view | analysis | median of {runs} | events/s |");
    println!("|---|---|---|---|---|---|");
    for size in sizes
        .split(',')
        .map(|text| waymark_engine::synthetic::parse_count(text).expect("WAYMARK_BENCH_EVENTS"))
    {
        let started = Instant::now();
        let journeys = waymark_engine::synthetic::journeys(size, 42);
        let generated = started.elapsed().as_secs_f64();
        let bytes = journeys.ts.len() * 8
            + journeys.step.len() * 4
            + journeys.channel.len() * 2
            + journeys.offsets.len() * 8;
        eprintln!(
            "generated {} events of {} customers in {generated:.1} s",
            journeys.n_events(),
            journeys.n_journeys()
        );
        let funnel = Funnel::new(
            &["step 00", "step 01", "step 02", "step 03", "step 04"],
            7 * 86_400_000_000,
        );
        let funnel = funnel.prepare(&journeys).unwrap();
        let flows = Flows {
            anchor: Condition::step("step 00"),
            direction: Direction::Forward,
            depth: 5,
            top: 6,
            collapse_repeats: false,
        };
        let flows = flows.prepare(&journeys).unwrap();
        let variants = Variants {
            top: Some(20),
            coverage: None,
        };
        let moments = Moments {
            goals: vec![Condition::step("step 05")],
            ..Moments::default()
        };
        let moments = moments.prepare(&journeys).unwrap();
        let attribution = Attribution {
            kind: TouchpointKind::Channel,
            goals: vec![Condition::step("step 05")],
            touchpoints: Vec::new(),
            lookback_us: Some(30 * 86_400_000_000),
            collapse_repeats: true,
            value_property: None,
            order: 2,
            half_life_us: 7 * 86_400_000_000,
            transition_matrix: false,
        };
        let attribution = attribution.prepare(&journeys).unwrap();
        let runner = Runner::new(threads);
        let analyses: Vec<(&str, Analysis)> = vec![
            (
                "process map",
                Box::new(|| run(&ProcessMap, &journeys, threads).edges.len()),
            ),
            (
                "variants (top 20)",
                Box::new(|| run(&variants, &journeys, threads).variants.len()),
            ),
            (
                "funnel, 5 steps, 7-day window",
                Box::new(|| run(&funnel, &journeys, threads).steps.len()),
            ),
            (
                "flows, depth 5",
                Box::new(|| run(&flows, &journeys, threads).nodes.len()),
            ),
            (
                "moments of truth (with lift)",
                Box::new(|| moments.execute(&journeys, &runner).positive.len()),
            ),
            (
                "attribution, channels, order 2",
                Box::new(|| run(&attribution, &journeys, threads).touchpoints.len()),
            ),
        ];
        let only = std::env::var("WAYMARK_BENCH_ONLY").ok();
        for (name, analysis) in &analyses {
            if only
                .as_ref()
                .is_some_and(|only| !name.starts_with(only.as_str()))
            {
                continue;
            }
            let seconds = time(runs, analysis);
            println!(
                "| {} | {} | {:.0} MB | {name} | {:.3} s | {:.0} M |",
                journeys.n_events(),
                journeys.n_journeys(),
                bytes as f64 / 1e6,
                seconds,
                journeys.n_events() as f64 / seconds / 1e6
            );
        }
        if let Some(peak) = peak_rss_mb() {
            eprintln!("peak resident memory so far: {peak:.0} MB");
        }
    }
}
