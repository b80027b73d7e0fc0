//! Merging partial funnels and the report: conversion, time to convert, drop-offs with what came next, breakdown.

use super::*;
use crate::stats::quantile_unsorted;
use crate::Analysis;
use rustc_hash::FxHashMap;
use serde::Serialize;
use waymark_model::{JourneyRef, JourneySet};

impl Analysis for PreparedFunnel<'_> {
    type State = FunnelState;
    type Report = FunnelReport;

    fn new_state(&self, _journeys: &JourneySet) -> FunnelState {
        let n = self.funnel.steps.len();
        FunnelState {
            units: 0,
            reached: vec![0; n],
            since_start: vec![Vec::new(); n],
            levels: Vec::new(),
            dropped: vec![Vec::new(); n],
            next: vec![FxHashMap::default(); n],
            next_later: vec![0; n],
            last_later: vec![0; n],
            groups: FxHashMap::default(),
            scratch: Scratch::default(),
        }
    }

    fn update(&self, state: &mut FunnelState, journey: JourneyRef<'_>) {
        let journeys = journey.set;
        let end = journey.start + journey.len();
        match self.funnel.count_by {
            CountBy::Customer => {
                let outcome = self.outcome_with(journeys, journey.start..end, &mut state.scratch);
                self.record(state, journeys, journey.index, end, outcome);
            }
            CountBy::Attempt => {
                let starts: Vec<usize> = (journey.start..end)
                    .filter(|event| self.mask(journeys, *event) & 1 != 0)
                    .collect();
                for (position, start) in starts.iter().enumerate() {
                    let stop = starts.get(position + 1).copied().unwrap_or(end);
                    let outcome = self.outcome_with(journeys, *start..stop, &mut state.scratch);
                    self.record(state, journeys, journey.index, stop, outcome);
                }
            }
        }
    }

    fn merge(&self, state: &mut FunnelState, other: FunnelState) {
        state.units += other.units;
        for (total, part) in state.reached.iter_mut().zip(&other.reached) {
            *total += part;
        }
        for (into, from) in state.since_start.iter_mut().zip(other.since_start) {
            into.extend(from);
        }
        state.levels.extend(other.levels);
        for (into, from) in state.dropped.iter_mut().zip(other.dropped) {
            into.extend(from);
            into.sort_unstable();
            into.dedup();
            into.truncate(self.funnel.drill_down);
        }
        for (into, from) in state.next.iter_mut().zip(other.next) {
            for (step, count) in from {
                *into.entry(step).or_default() += count;
            }
        }
        for (total, part) in state.next_later.iter_mut().zip(&other.next_later) {
            *total += part;
        }
        for (total, part) in state.last_later.iter_mut().zip(&other.last_later) {
            *total += part;
        }
        for (code, counts) in other.groups {
            let into = state
                .groups
                .entry(code)
                .or_insert_with(|| vec![0; counts.len()]);
            for (total, part) in into.iter_mut().zip(&counts) {
                *total += part;
            }
        }
    }

    fn finish(
        &self,
        mut state: FunnelState,
        journeys: &JourneySet,
        _runner: &crate::Runner,
    ) -> FunnelReport {
        let mut since_start = std::mem::take(&mut state.since_start);
        // Times from the previous step, one step at a time (before the selections reorder `since_start`): a unit of
        // level L has an entry for each step 1..L, so walking the units with a cursor per step pairs them up.
        let n = self.funnel.steps.len();
        let mut from_previous: Vec<Option<Timing>> = vec![None; n];
        for step in 1..n {
            let mut durations = Vec::with_capacity(since_start[step].len());
            let (mut at, mut before) = (0usize, 0usize);
            for level in state.levels.iter().map(|level| usize::from(*level)) {
                if level > step {
                    let previous = if step == 1 {
                        0
                    } else {
                        since_start[step - 1][before]
                    };
                    durations.push(since_start[step][at] - previous);
                    at += 1;
                }
                if step >= 2 && level > step - 1 {
                    before += 1;
                }
            }
            from_previous[step] = Timing::of(&mut durations);
        }
        let steps = self
            .funnel
            .steps
            .iter()
            .enumerate()
            .map(|(step, definition)| {
                let count = state.reached[step];
                let entered = state.reached[0];
                let previous = if step == 0 {
                    state.units
                } else {
                    state.reached[step - 1]
                };
                let next_count = state.reached.get(step + 1).copied();
                let mut next_steps: Vec<NextStep> = state.next[step]
                    .iter()
                    .map(|(code, count)| NextStep {
                        step: if *code == u32::MAX {
                            "(journey ended)".to_string()
                        } else {
                            journeys.step_names[*code as usize].clone()
                        },
                        count: *count,
                    })
                    .collect();
                next_steps.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.step.cmp(&b.step)));
                next_steps.truncate(10);
                FunnelStepReport {
                    name: definition.name.clone(),
                    count,
                    conversion: ratio(count, entered),
                    step_conversion: ratio(count, previous),
                    dropped: next_count.map_or(0, |next| count - next),
                    next_step_later: state.next_later[step],
                    last_step_later: state.last_later[step],
                    time_to_convert: (step > 0)
                        .then(|| Timing::of(&mut since_start[step]))
                        .flatten(),
                    time_from_previous: from_previous[step].take(),
                    dropped_customers: state.dropped[step]
                        .iter()
                        .map(|journey| journeys.customer_ids[*journey as usize].to_string())
                        .collect(),
                    next_steps,
                }
            });
        let breakdown = self
            .funnel
            .breakdown
            .as_ref()
            .zip(self.breakdown_column)
            .map(|(breakdown, column)| {
                let values = &journeys.properties[column].values;
                let mut groups: Vec<(String, Vec<u64>)> = state
                    .groups
                    .iter()
                    .map(|(code, counts)| {
                        let label = match *code {
                            u32::MAX => "(not reached)".to_string(),
                            0 => "(none)".to_string(),
                            code => match &values[code as usize] {
                                serde_json::Value::String(text) => text.clone(),
                                other => other.to_string(),
                            },
                        };
                        (label, counts.clone())
                    })
                    .collect();
                groups.sort_by(|a, b| b.1[0].cmp(&a.1[0]).then_with(|| a.0.cmp(&b.0)));
                let mut shown: Vec<(String, Vec<u64>)> = Vec::new();
                for (label, counts) in groups {
                    if shown.len() < breakdown.top {
                        shown.push((label, counts));
                    } else {
                        match shown.iter_mut().find(|(label, _)| label == "(other)") {
                            Some((_, total)) => total
                                .iter_mut()
                                .zip(&counts)
                                .for_each(|(total, part)| *total += part),
                            None => shown.push(("(other)".to_string(), counts)),
                        }
                    }
                }
                BreakdownReport {
                    property: breakdown.property.clone(),
                    attribution: breakdown.attribution,
                    groups: shown
                        .into_iter()
                        .map(|(value, counts)| BreakdownGroup {
                            conversion: ratio(counts[counts.len() - 1], counts[0]),
                            value,
                            counts,
                        })
                        .collect(),
                }
            });
        FunnelReport {
            units: match self.funnel.count_by {
                CountBy::Customer => "customers",
                CountBy::Attempt => "attempts",
            },
            total: state.units,
            window_secs: self.funnel.window_us as f64 / 1e6,
            modes: self.funnel.modes.clone(),
            steps: steps.collect(),
            breakdown,
            warnings: self.warnings.clone(),
        }
    }
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// The funnel report: JSON `{"units", "total", "window_secs", "modes", "steps": [...], "breakdown"}`.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct FunnelReport {
    /// What is counted: `customers` or `attempts`.
    pub units: &'static str,
    /// Units considered (whether or not they reached step 1).
    pub total: u64,
    pub window_secs: f64,
    pub modes: Vec<FunnelMode>,
    pub steps: Vec<FunnelStepReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breakdown: Option<BreakdownReport>,
    /// What to check in the definition: a step named like no step in the data (its count is then 0).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl FunnelReport {
    /// Units reaching each step.
    pub fn counts(&self) -> Vec<u64> {
        self.steps.iter().map(|step| step.count).collect()
    }
}

/// One funnel step.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct FunnelStepReport {
    pub name: String,
    /// Units that reached this step.
    pub count: u64,
    /// Share of the units that reached step 1.
    pub conversion: f64,
    /// Share of the units that reached the previous step (step 1: of all units).
    pub step_conversion: f64,
    /// Units that reached this step but not the next.
    pub dropped: u64,
    /// Of those, units that did the next step later all the same, outside the funnel's rules (after the window
    /// closed, or out of the order a strict mode asks for): stopped in the funnel, not in the journey.
    pub next_step_later: u64,
    /// Of those, units that did the funnel's last step later anyway (another way: without the steps between in
    /// order, or after the window) — customers counted as lost who reached the end.
    pub last_step_later: u64,
    /// Time from step 1 to this step.
    pub time_to_convert: Option<Timing>,
    /// Time from the previous step to this step.
    pub time_from_previous: Option<Timing>,
    /// Some of the customers who stopped at this step (the first in customer order).
    pub dropped_customers: Vec<String>,
    /// What those who stopped here did next (their next event's step).
    pub next_steps: Vec<NextStep>,
}

#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct NextStep {
    pub step: String,
    pub count: u64,
}

/// Durations: mean, median, p90 (numpy's linear quantiles) and a histogram.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Timing {
    pub mean_secs: f64,
    pub median_secs: f64,
    pub p90_secs: f64,
    /// Counts per bucket: durations ≤ `le_secs` and above the previous bucket's bound (last: unbounded).
    pub histogram: Vec<Bucket>,
}

#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Bucket {
    pub le_secs: Option<f64>,
    pub count: u64,
}

/// Histogram bucket bounds: 1 min, 5 min, 15 min, 1 h, 3 h, 12 h, 1 d, 3 d, 7 d, 14 d, 30 d, more.
const BUCKETS_SECS: [f64; 11] = [
    60.0, 300.0, 900.0, 3600.0, 10800.0, 43200.0, 86400.0, 259200.0, 604800.0, 1209600.0, 2592000.0,
];

impl Timing {
    /// The timing of `durations_us` (reordered: quantiles are found by selection, not by sorting).
    pub(super) fn of(durations_us: &mut [i64]) -> Option<Timing> {
        if durations_us.is_empty() {
            return None;
        }
        let bounds_us = BUCKETS_SECS.map(|bound| (bound * 1e6) as i64);
        let mut histogram: Vec<Bucket> = BUCKETS_SECS
            .iter()
            .map(|bound| Bucket {
                le_secs: Some(*bound),
                count: 0,
            })
            .chain([Bucket {
                le_secs: None,
                count: 0,
            }])
            .collect();
        let mut sum = 0i128;
        for value in durations_us.iter() {
            sum += i128::from(*value);
            histogram[bounds_us.partition_point(|bound| bound < value)].count += 1;
        }
        Some(Timing {
            mean_secs: sum as f64 / 1e6 / durations_us.len() as f64,
            median_secs: quantile_unsorted(durations_us, 0.5)? / 1e6,
            p90_secs: quantile_unsorted(durations_us, 0.9)? / 1e6,
            histogram,
        })
    }
}

/// Counts per breakdown value.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct BreakdownReport {
    pub property: String,
    pub attribution: Attribution,
    pub groups: Vec<BreakdownGroup>,
}

#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct BreakdownGroup {
    pub value: String,
    /// Units reaching each step.
    pub counts: Vec<u64>,
    /// Last step over first.
    pub conversion: f64,
}
