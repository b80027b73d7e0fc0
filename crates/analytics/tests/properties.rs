//! Invariants of every analysis: any partitioning gives the same report (merge(update(A), update(B)) ==
//! update(A ∪ B)), so one thread and many threads agree.

use proptest::prelude::*;
use waymark_analytics::{
    run, Condition, CountBy, Direction, Flows, Friction, Funnel, FunnelMode, Period, ProcessMap,
    Retention, RetentionMode, Runner, Variants,
};
use waymark_model::JourneySet;

const STEPS: [&str; 5] = ["view", "cart", "login", "call", "buy"];

fn journey_set() -> impl Strategy<Value = JourneySet> {
    let event = (0usize..STEPS.len(), 0i64..5_000_000);
    proptest::collection::vec(proptest::collection::vec(event, 0..12), 0..40).prop_map(|journeys| {
        JourneySet::from_journeys(journeys.into_iter().enumerate().map(|(index, events)| {
            let mut time = 0i64;
            let events = events
                .into_iter()
                .map(|(step, gap)| {
                    time += gap;
                    (time, STEPS[step], "web")
                })
                .collect();
            (format!("c{index}"), events)
        }))
    })
}

/// Every edge's count, mean, median and p90 equal numpy's over all its gaps, collected and sorted.
fn check_process_map_times(journeys: &JourneySet, threads: usize) -> Result<(), TestCaseError> {
    let map = run(&ProcessMap, journeys, threads);
    let mut gaps: std::collections::BTreeMap<(String, String), Vec<i64>> = Default::default();
    for index in 0..journeys.n_journeys() {
        let journey = journeys.journey(index);
        for position in 1..journey.len() {
            let key = (
                journeys.step_names[journey.step[position - 1] as usize].clone(),
                journeys.step_names[journey.step[position] as usize].clone(),
            );
            gaps.entry(key)
                .or_default()
                .push(journey.ts[position] - journey.ts[position - 1]);
        }
    }
    let numpy = |sorted: &[f64], q: f64| {
        let position = q * (sorted.len() - 1) as f64;
        let (lower, upper) = (position.floor() as usize, position.ceil() as usize);
        sorted[lower] + (sorted[upper] - sorted[lower]) * (position - lower as f64)
    };
    prop_assert_eq!(map.edges.len(), gaps.len());
    for edge in &map.edges {
        let mut values = gaps[&(edge.from.clone(), edge.to.clone())].clone();
        values.sort_unstable();
        let sorted: Vec<f64> = values.iter().map(|gap| *gap as f64).collect();
        prop_assert_eq!(edge.count as usize, values.len());
        prop_assert_eq!(
            edge.median_secs,
            numpy(&sorted, 0.5) / 1e6,
            "{:?} median",
            edge
        );
        prop_assert_eq!(edge.p90_secs, numpy(&sorted, 0.9) / 1e6, "{:?} p90", edge);
        let mean = values.iter().map(|gap| i128::from(*gap)).sum::<i128>() as f64
            / 1e6
            / values.len() as f64;
        prop_assert_eq!(edge.mean_secs, mean, "{:?} mean", edge);
    }
    Ok(())
}

fn funnel_modes() -> impl Strategy<Value = Vec<FunnelMode>> {
    prop_oneof![
        Just(vec![]),
        Just(vec![FunnelMode::StrictOrder]),
        Just(vec![FunnelMode::StrictDeduplication]),
        Just(vec![FunnelMode::StrictIncrease]),
        Just(vec![FunnelMode::StrictOnce]),
        Just(vec![FunnelMode::StrictOrder, FunnelMode::AllowReentry]),
        Just(vec![
            FunnelMode::StrictOnce,
            FunnelMode::StrictOrder,
            FunnelMode::AllowReentry
        ]),
        Just(vec![FunnelMode::AnyOrder]),
    ]
}

const CHANNELS: [&str; 3] = ["web", "app", "call_center"];

fn omnichannel_journeys() -> impl Strategy<Value = JourneySet> {
    let event = (
        0usize..STEPS.len(),
        0usize..CHANNELS.len(),
        0i64..200_000_000_000,
    );
    proptest::collection::vec(proptest::collection::vec(event, 0..15), 0..60).prop_map(|journeys| {
        JourneySet::from_journeys(journeys.into_iter().enumerate().map(|(index, events)| {
            let mut time = 0i64;
            let events = events
                .into_iter()
                .map(|(step, channel, gap)| {
                    time += gap;
                    (time, STEPS[step], CHANNELS[channel])
                })
                .collect();
            (format!("c{index}"), events)
        }))
    })
}

proptest! {
    #[test]
    fn friction_is_independent_of_partitioning(journeys in omnichannel_journeys(), threads in 2usize..5) {
        let friction = Friction {
            goals: vec![Condition::step("buy")],
            min_customers: 1,
            standard_times: vec![("call".into(), 3_600_000_000)],
            ..Friction::default()
        };
        let single = run(&friction.prepare(&journeys, &Runner::new(1)).unwrap(), &journeys, 1);
        let many = run(&friction.prepare(&journeys, &Runner::new(threads)).unwrap(), &journeys, threads);
        prop_assert_eq!(&single, &many);
        let non_empty = (0..journeys.n_journeys()).filter(|journey| !journeys.journey(*journey).is_empty()).count();
        prop_assert_eq!(single.customers as usize, non_empty);
        for finding in &single.findings {
            prop_assert!(finding.customers <= finding.exposed && finding.exposed <= single.customers);
            prop_assert!(finding.impact >= 1.0 && !finding.example_customers.is_empty());
        }
        prop_assert!(single.findings.windows(2).all(|pair| pair[0].impact >= pair[1].impact));
    }

    #[test]
    fn retention_is_independent_of_partitioning(
        journeys in omnichannel_journeys(),
        threads in 2usize..5,
        start in 0usize..STEPS.len(),
        back in 0usize..STEPS.len(),
        period in prop_oneof![Just(Period::Day), Just(Period::Week), Just(Period::Month)],
    ) {
        let retention = Retention {
            start: Condition::step(STEPS[start]),
            returning: Condition::step(STEPS[back]),
            period,
            periods: 4,
            mode: if start % 2 == 0 { RetentionMode::FirstTime } else { RetentionMode::Recurring },
        };
        let prepared = retention.prepare(&journeys).unwrap();
        let single = run(&prepared, &journeys, 1);
        prop_assert_eq!(&single, &run(&prepared, &journeys, threads));
        for cohort in &single.cohorts {
            prop_assert!(cohort.returned.iter().all(|returned| *returned <= cohort.customers));
        }
    }

    #[test]
    fn flows_conserve_customers_and_are_independent_of_partitioning(
        journeys in journey_set(),
        threads in 2usize..5,
        anchor in 0usize..STEPS.len(),
        backward in any::<bool>(),
        depth in 1usize..6,
        top in 1usize..4,
        collapse_repeats in any::<bool>(),
    ) {
        let flows = Flows {
            anchor: Condition::step(STEPS[anchor]),
            direction: if backward { Direction::Backward } else { Direction::Forward },
            depth,
            top,
            collapse_repeats,
        };
        let prepared = flows.prepare(&journeys).unwrap();
        let single = run(&prepared, &journeys, 1);
        prop_assert_eq!(&single, &run(&prepared, &journeys, threads));
        prop_assert_eq!(single.reconcile(), Ok(()));
        let with_anchor = (0..journeys.n_journeys())
            .filter(|journey| journeys.journey(*journey).step.iter().any(|step| journeys.step_names[*step as usize] == STEPS[anchor]))
            .count();
        prop_assert_eq!(single.customers as usize, with_anchor);
    }

    #[test]
    fn funnels_never_grow_and_are_independent_of_partitioning(
        journeys in journey_set(),
        threads in 2usize..5,
        steps in proptest::collection::vec(0usize..STEPS.len(), 1..5),
        window in 0i64..20_000_000,
        modes in funnel_modes(),
        attempts in any::<bool>(),
    ) {
        let names: Vec<&str> = steps.iter().map(|step| STEPS[*step]).collect();
        let mut funnel = Funnel::new(&names, window).with_modes(&modes);
        if attempts {
            funnel.count_by = CountBy::Attempt;
        }
        let prepared = funnel.prepare(&journeys).unwrap();
        let single = run(&prepared, &journeys, 1);
        prop_assert_eq!(&single, &run(&prepared, &journeys, threads));
        let counts = single.counts();
        prop_assert!(counts.windows(2).all(|pair| pair[0] >= pair[1]), "{:?}", counts);
        prop_assert!(counts[0] <= single.total);
        if !attempts {
            prop_assert_eq!(single.total as usize, journeys.n_journeys());
        }
        for (step, report) in single.steps.iter().enumerate() {
            let next = counts.get(step + 1).copied().unwrap_or(report.count);
            prop_assert_eq!(report.dropped, report.count - next);
            let reached_next: u64 = report.next_steps.iter().map(|next| next.count).sum();
            if step + 1 < counts.len() && report.next_steps.len() < 10 {
                prop_assert_eq!(reached_next, report.dropped, "every drop-off has a next step or ended");
            }
        }
    }

    #[test]
    fn process_map_is_independent_of_partitioning(journeys in journey_set(), threads in 2usize..5) {
        let single = run(&ProcessMap, &journeys, 1);
        prop_assert_eq!(&single, &run(&ProcessMap, &journeys, threads));
        prop_assert_eq!(single.events as usize, journeys.n_events());
        let edge_total: u64 = single.edges.iter().map(|edge| edge.count).sum();
        prop_assert_eq!(edge_total + single.cases, single.events, "each journey of n events has n - 1 edges");
        prop_assert_eq!(single.start.values().sum::<u64>(), single.cases);
        prop_assert_eq!(single.end.values().sum::<u64>(), single.cases);
    }

    #[test]
    fn process_map_times_equal_sorting_every_gap(journeys in journey_set(), threads in 1usize..4) {
        check_process_map_times(&journeys, threads)?;
    }

    /// The same over every path the process map takes: step dictionaries past the per-pair range table (256) and
    /// past the dense edge table (1,024), journeys out of time order (negative gaps), and gaps summing past 2^64
    /// (the 64-bit sums then give way to 128-bit ones).
    #[test]
    fn process_map_times_hold_on_every_path(
        journeys in proptest::collection::vec(
            proptest::collection::vec((0usize..STEPS.len(), 0i64..5_000_000, any::<bool>()), 0..12),
            0..40,
        ),
        unused_steps in prop_oneof![Just(0usize), Just(300), Just(1_100)],
        scale in prop_oneof![Just(1i64), Just(1i64 << 36)],
        backwards in any::<bool>(),
        threads in 1usize..4,
    ) {
        let mut set = JourneySet::from_journeys(journeys.into_iter().enumerate().map(|(index, events)| {
            let mut time = 0i64;
            let events = events
                .into_iter()
                .map(|(step, gap, back)| {
                    time += if backwards && back { -gap } else { gap } * scale;
                    (time, STEPS[step], "web")
                })
                .collect();
            (format!("c{index}"), events)
        }));
        set.step_names.extend((0..unused_steps).map(|index| format!("unused {index}")));
        check_process_map_times(&set, threads)?;
    }

    #[test]
    fn variants_are_independent_of_partitioning(journeys in journey_set(), threads in 2usize..5) {
        let single = run(&Variants::default(), &journeys, 1);
        prop_assert_eq!(&single, &run(&Variants::default(), &journeys, threads));
        prop_assert_eq!(single.variants.iter().map(|variant| variant.count).sum::<u64>(), single.cases);
        if let Some(last) = single.variants.last() {
            prop_assert!((last.coverage - 1.0).abs() < 1e-9);
        }
        prop_assert!(single.variants.windows(2).all(|pair| pair[0].count >= pair[1].count));
    }
}
