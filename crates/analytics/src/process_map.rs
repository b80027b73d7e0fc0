//! The process map: the directly-follows graph of steps with frequencies and times, plus step, start and end
//! counts — equal to pm4py's DFG, start and end activities on the same log.

use crate::stats::select_quantile;
use crate::Analysis;
use rustc_hash::FxHashMap;
use serde::Serialize;
use std::collections::BTreeMap;
use waymark_model::{JourneyRef, JourneySet};

/// The directly-follows graph over steps. Each pair of consecutive events in a journey is one edge occurrence; its
/// time is the gap between the two events.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessMap;

/// Step dictionaries up to this size index edges through a dense `from × to` table; larger ones through a hash map.
const DENSE_STEPS: usize = 1024;

/// Partial process map.
#[derive(Debug, Clone, Default)]
pub struct ProcessMapState {
    cases: u64,
    events: u64,
    steps: Vec<u64>,
    start: Vec<u64>,
    end: Vec<u64>,
    /// Edge ids by `from * n_steps + to` (`u32::MAX`: not seen yet), when the dictionary is small.
    dense: Vec<u32>,
    n_steps: usize,
    /// Edge ids by (from, to), otherwise.
    sparse: FxHashMap<(u32, u32), u32>,
    /// Per edge id: its (from, to) and its gaps in µs, one per occurrence.
    pairs: Vec<(u32, u32)>,
    gaps: Vec<Vec<i64>>,
}

impl ProcessMapState {
    #[inline]
    fn edge(&mut self, from: u32, to: u32) -> &mut Vec<i64> {
        let id = if self.dense.is_empty() {
            let next = self.pairs.len() as u32;
            *self.sparse.entry((from, to)).or_insert(next)
        } else {
            let cell = &mut self.dense[from as usize * self.n_steps + to as usize];
            if *cell == u32::MAX {
                *cell = self.pairs.len() as u32;
            }
            *cell
        };
        if id as usize == self.pairs.len() {
            self.pairs.push((from, to));
            self.gaps.push(Vec::new());
        }
        &mut self.gaps[id as usize]
    }
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
            n_steps,
            dense: if n_steps <= DENSE_STEPS {
                vec![u32::MAX; n_steps * n_steps]
            } else {
                Vec::new()
            },
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
            let gap = journey.ts[position] - journey.ts[position - 1];
            state
                .edge(journey.step[position - 1], journey.step[position])
                .push(gap);
        }
    }

    fn merge(&self, state: &mut ProcessMapState, other: ProcessMapState) {
        state.cases += other.cases;
        state.events += other.events;
        add_counts(&mut state.steps, &other.steps);
        add_counts(&mut state.start, &other.start);
        add_counts(&mut state.end, &other.end);
        for ((from, to), gaps) in other.pairs.into_iter().zip(other.gaps) {
            state.edge(from, to).extend(gaps);
        }
    }

    fn finish(&self, state: ProcessMapState, journeys: &JourneySet) -> ProcessMapReport {
        let names = &journeys.step_names;
        // Quantiles by selection (linear time per edge), edges spread over the cores.
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut work: Vec<((u32, u32), Vec<i64>)> =
            state.pairs.into_iter().zip(state.gaps).collect();
        let chunk = work.len().div_ceil(threads).max(1);
        let mut edges: Vec<EdgeReport> = std::thread::scope(|scope| {
            let workers: Vec<_> = work
                .chunks_mut(chunk)
                .map(|part| {
                    scope.spawn(move || {
                        part.iter_mut()
                            .map(|((from, to), gaps)| {
                                let sum: i128 = gaps.iter().map(|gap| i128::from(*gap)).sum();
                                EdgeReport {
                                    from: names[*from as usize].clone(),
                                    to: names[*to as usize].clone(),
                                    count: gaps.len() as u64,
                                    mean_secs: sum as f64 / 1e6 / gaps.len() as f64,
                                    median_secs: select_quantile(gaps, 0.5) / 1e6,
                                    p90_secs: select_quantile(gaps, 0.9) / 1e6,
                                }
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|worker| worker.join().expect("quantile workers do not panic"))
                .collect()
        });
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
