//! `step-counts`: every step with how many events and customers have it, and when it was first and last seen — the
//! vocabulary of a store at a glance (and what a step picker offers). One file plus one registry line, as every
//! analysis is.

use crate::query::{run_plan, DataInfo, Query, Scope, Spec};
use crate::{Analysis, AnalyticsError, Runner};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt::Write;
use waymark_model::{JourneyRef, JourneySet, Timestamp};

/// `step-counts` options.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepCountsRequest {
    /// Keep the K steps most customers have (default: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top: Option<usize>,
    #[serde(default)]
    pub filter: Scope,
}

/// The analysis: counts per step code.
#[derive(Debug, Clone, Copy, Default)]
pub struct StepCounts {
    pub top: Option<usize>,
}

/// Per step code: events, customers, first and last time; plus journeys and events in all.
#[derive(Debug, Clone, Default)]
pub struct StepCountsState {
    journeys: u64,
    events: u64,
    steps: Vec<StepTotals>,
}

#[derive(Debug, Clone, Copy)]
struct StepTotals {
    events: u64,
    customers: u64,
    first_us: i64,
    last_us: i64,
    /// The last journey (its index) counted in `customers`, so each journey counts once per step.
    seen_in: usize,
}

impl Default for StepTotals {
    fn default() -> StepTotals {
        StepTotals {
            events: 0,
            customers: 0,
            first_us: i64::MAX,
            last_us: i64::MIN,
            seen_in: usize::MAX,
        }
    }
}

/// One step of the report.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct StepCount {
    pub step: String,
    pub events: u64,
    /// Journeys (customers, or instances when the filter splits them) with the step at least once.
    pub customers: u64,
    /// `customers` over all journeys.
    pub share: f64,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
}

/// JSON `{"customers", "events", "n_steps", "steps": [...]}`, steps by customers, most first.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct StepCountsReport {
    pub customers: u64,
    pub events: u64,
    /// Distinct steps (before `top`).
    pub n_steps: u64,
    pub steps: Vec<StepCount>,
}

impl Analysis for StepCounts {
    type State = StepCountsState;
    type Report = StepCountsReport;

    fn new_state(&self, journeys: &JourneySet) -> StepCountsState {
        StepCountsState {
            steps: vec![StepTotals::default(); journeys.step_names.len()],
            ..StepCountsState::default()
        }
    }

    fn update(&self, state: &mut StepCountsState, journey: JourneyRef<'_>) {
        if journey.is_empty() {
            return;
        }
        state.journeys += 1;
        state.events += journey.len() as u64;
        for (step, ts) in journey.step.iter().zip(journey.ts) {
            let totals = &mut state.steps[*step as usize];
            totals.events += 1;
            totals.first_us = totals.first_us.min(*ts);
            totals.last_us = totals.last_us.max(*ts);
            if totals.seen_in != journey.index {
                totals.seen_in = journey.index;
                totals.customers += 1;
            }
        }
    }

    fn merge(&self, state: &mut StepCountsState, other: StepCountsState) {
        state.journeys += other.journeys;
        state.events += other.events;
        for (into, from) in state.steps.iter_mut().zip(other.steps) {
            into.events += from.events;
            into.customers += from.customers;
            into.first_us = into.first_us.min(from.first_us);
            into.last_us = into.last_us.max(from.last_us);
        }
    }

    fn finish(
        &self,
        state: StepCountsState,
        journeys: &JourneySet,
        _runner: &Runner,
    ) -> StepCountsReport {
        let mut steps: Vec<StepCount> = state
            .steps
            .iter()
            .enumerate()
            .filter(|(_, totals)| totals.events > 0)
            .map(|(code, totals)| StepCount {
                step: journeys.step_names[code].clone(),
                events: totals.events,
                customers: totals.customers,
                share: totals.customers as f64 / state.journeys.max(1) as f64,
                first_seen: Timestamp(totals.first_us),
                last_seen: Timestamp(totals.last_us),
            })
            .collect();
        steps.sort_by(|a, b| {
            b.customers
                .cmp(&a.customers)
                .then(b.events.cmp(&a.events))
                .then_with(|| a.step.cmp(&b.step))
        });
        let n_steps = steps.len() as u64;
        steps.truncate(self.top.unwrap_or(usize::MAX));
        StepCountsReport {
            customers: state.journeys,
            events: state.events,
            n_steps,
            steps,
        }
    }
}

impl Spec for StepCounts {
    type Report = StepCountsReport;
    fn run(
        &self,
        journeys: &JourneySet,
        runner: &Runner,
    ) -> Result<StepCountsReport, AnalyticsError> {
        run_plan(Ok(*self), journeys, runner)
    }
}

impl Query for StepCountsRequest {
    const NAME: &'static str = "step-counts";
    const HELP: &'static str =
        "Every step with its events and customers, and when it was first and last seen.";
    const EXAMPLE: &'static str = "--top 15";
    type Report = StepCountsReport;
    type Spec = StepCounts;

    fn scope(&self) -> &Scope {
        &self.filter
    }

    fn spec(&self, _data: &DataInfo<'_>) -> Result<StepCounts, AnalyticsError> {
        if self.top == Some(0) {
            return Err(AnalyticsError::field("top", "top must be at least 1 step"));
        }
        Ok(StepCounts { top: self.top })
    }

    fn text(&self, report: &StepCountsReport, rows: usize) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} steps over {} customers, {} events\n",
            report.n_steps, report.customers, report.events
        );
        let _ = writeln!(
            out,
            "{:>9}  {:>6}  {:>9}  {:<10}  {:<10}  step",
            "customers", "share", "events", "first", "last"
        );
        let day = |time: Timestamp| {
            chrono::DateTime::from_timestamp_micros(time.0)
                .map(|time| time.format("%Y-%m-%d").to_string())
                .unwrap_or_default()
        };
        for step in report.steps.iter().take(rows) {
            let _ = writeln!(
                out,
                "{:>9}  {:>5.1}%  {:>9}  {:<10}  {:<10}  {}",
                step.customers,
                step.share * 100.0,
                step.events,
                day(step.first_seen),
                day(step.last_seen),
                step.step
            );
        }
        crate::query::text::more(&mut out, report.steps.len(), rows, "steps");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run;

    #[test]
    fn each_customer_counts_once_per_step_in_any_partitioning() {
        let journeys = JourneySet::from_journeys([
            (
                "a".to_string(),
                vec![(0, "view", "web"), (5, "view", "web"), (9, "buy", "web")],
            ),
            ("b".to_string(), vec![(3, "view", "app")]),
            ("c".to_string(), vec![(7, "help", "web")]),
        ]);
        let one = run(&StepCounts::default(), &journeys, 1);
        assert_eq!(one, run(&StepCounts::default(), &journeys, 3));
        let view = &one.steps[0];
        assert_eq!(
            (
                view.step.as_str(),
                view.customers,
                view.events,
                view.first_seen,
                view.last_seen
            ),
            ("view", 2, 3, Timestamp(0), Timestamp(5))
        );
        assert_eq!((one.customers, one.events, one.n_steps), (3, 5, 3));
        let top = run(&StepCounts { top: Some(1) }, &journeys, 2);
        assert_eq!((top.steps.len(), top.n_steps), (1, 3));
    }
}
