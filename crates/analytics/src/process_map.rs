//! The process map: the directly-follows graph of steps with frequencies and times, plus step, start and end
//! counts — equal to pm4py's DFG, start and end activities on the same log.

use crate::stats::quantile;
use crate::Analysis;
use rustc_hash::FxHashMap;
use serde::Serialize;
use std::collections::BTreeMap;
use waymark_model::{JourneyRef, JourneySet};

/// The directly-follows graph over steps. Each pair of consecutive events in a journey is one edge occurrence; its
/// time is the gap between the two events.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessMap;

/// Partial process map.
#[derive(Debug, Clone, Default)]
pub struct ProcessMapState {
    cases: u64,
    events: u64,
    steps: Vec<u64>,
    start: Vec<u64>,
    end: Vec<u64>,
    /// (from, to) → gaps in µs, one per occurrence.
    edges: FxHashMap<(u32, u32), Vec<i64>>,
}

/// One edge of the map.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EdgeReport {
    pub from: String,
    pub to: String,
    pub count: u64,
    pub mean_secs: f64,
    pub median_secs: f64,
    pub p90_secs: f64,
}

/// The process map: JSON `{"cases", "events", "steps", "start", "end", "edges"}`; edges by count, then names.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProcessMapReport {
    pub cases: u64,
    pub events: u64,
    pub steps: BTreeMap<String, u64>,
    pub start: BTreeMap<String, u64>,
    pub end: BTreeMap<String, u64>,
    pub edges: Vec<EdgeReport>,
}

fn add_counts(into: &mut [u64], from: &[u64]) {
    for (total, part) in into.iter_mut().zip(from) {
        *total += part;
    }
}

fn named(counts: &[u64], names: &[String]) -> BTreeMap<String, u64> {
    counts
        .iter()
        .enumerate()
        .filter(|(_, count)| **count > 0)
        .map(|(code, count)| (names[code].clone(), *count))
        .collect()
}

impl Analysis for ProcessMap {
    type State = ProcessMapState;
    type Report = ProcessMapReport;

    fn new_state(&self, journeys: &JourneySet) -> ProcessMapState {
        let n_steps = journeys.step_names.len();
        ProcessMapState {
            steps: vec![0; n_steps],
            start: vec![0; n_steps],
            end: vec![0; n_steps],
            ..ProcessMapState::default()
        }
    }

    fn update(&self, state: &mut ProcessMapState, journey: JourneyRef<'_>) {
        let (Some(first), Some(last)) = (journey.step.first(), journey.step.last()) else {
            return;
        };
        state.cases += 1;
        state.events += journey.len() as u64;
        state.start[*first as usize] += 1;
        state.end[*last as usize] += 1;
        for step in journey.step {
            state.steps[*step as usize] += 1;
        }
        for position in 1..journey.len() {
            let pair = (journey.step[position - 1], journey.step[position]);
            let gap = journey.ts[position] - journey.ts[position - 1];
            state.edges.entry(pair).or_default().push(gap);
        }
    }

    fn merge(&self, state: &mut ProcessMapState, other: ProcessMapState) {
        state.cases += other.cases;
        state.events += other.events;
        add_counts(&mut state.steps, &other.steps);
        add_counts(&mut state.start, &other.start);
        add_counts(&mut state.end, &other.end);
        for (pair, gaps) in other.edges {
            state.edges.entry(pair).or_default().extend(gaps);
        }
    }

    fn finish(&self, state: ProcessMapState, journeys: &JourneySet) -> ProcessMapReport {
        let names = &journeys.step_names;
        let mut edges: Vec<EdgeReport> = state
            .edges
            .into_iter()
            .map(|((from, to), gaps)| {
                let mut seconds: Vec<f64> = gaps.iter().map(|gap| *gap as f64 / 1e6).collect();
                seconds.sort_by(f64::total_cmp);
                let mean_secs = seconds.iter().sum::<f64>() / seconds.len() as f64;
                EdgeReport {
                    from: names[from as usize].clone(),
                    to: names[to as usize].clone(),
                    count: seconds.len() as u64,
                    mean_secs,
                    median_secs: quantile(&seconds, 0.5).expect("an edge has occurrences"),
                    p90_secs: quantile(&seconds, 0.9).expect("an edge has occurrences"),
                }
            })
            .collect();
        edges.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| a.from.cmp(&b.from))
                .then_with(|| a.to.cmp(&b.to))
        });
        ProcessMapReport {
            cases: state.cases,
            events: state.events,
            steps: named(&state.steps, names),
            start: named(&state.start, names),
            end: named(&state.end, names),
            edges,
        }
    }
}
