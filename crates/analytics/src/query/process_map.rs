//! `process-map`: the directly-follows graph.

use super::{DataInfo, Query, Scope, Spec};
use crate::{AnalyticsError, Plan, ProcessMap, ProcessMapReport, Runner};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt::Write;
use waymark_model::JourneySet;

/// `process-map` options.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProcessMapRequest {
    /// Satisfaction on each rated step too ("was this helpful?", CSAT, NPS; the `feedback` analysis's default
    /// fields — use `feedback` itself to set others).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub feedback: bool,
    /// Each transition's precedence too (`precedence` on every edge: the share of the journeys with it in which
    /// its `from` step first occurs before its `to` step), which orders a drawing of the map: a transition with a
    /// precedence below one half goes back to a step customers usually reach first, a back edge.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub precedence: bool,
    #[serde(default)]
    pub filter: Scope,
}

impl Spec for ProcessMap {
    type Report = ProcessMapReport;
    fn run(
        &self,
        journeys: &JourneySet,
        runner: &Runner,
    ) -> Result<ProcessMapReport, AnalyticsError> {
        Ok(self.execute(journeys, runner))
    }
}

/// The map, with the satisfaction on its steps when asked for.
#[derive(Debug, Clone)]
pub struct ProcessMapSpec {
    feedback: Option<crate::feedback::Feedback>,
    precedence: bool,
}

impl Spec for ProcessMapSpec {
    type Report = ProcessMapReport;
    fn properties(&self) -> Vec<String> {
        self.feedback
            .as_ref()
            .map(|feedback| feedback.properties())
            .unwrap_or_default()
    }
    fn run(
        &self,
        journeys: &JourneySet,
        runner: &Runner,
    ) -> Result<ProcessMapReport, AnalyticsError> {
        let mut map = ProcessMap.execute(journeys, runner);
        if self.precedence {
            let shares = precedence(journeys);
            for edge in &mut map.edges {
                edge.precedence = shares.get(&(edge.from.as_str(), edge.to.as_str())).copied();
            }
        }
        if let Some(feedback) = &self.feedback {
            map.feedback = feedback
                .run(journeys, runner)?
                .steps
                .into_iter()
                .map(|step| (step.step, step.metrics))
                .collect();
        }
        Ok(map)
    }
}

/// Per transition `from → to` (of different steps): the share of the journeys with it in which `from` first occurs
/// before `to` does. What customers usually do first is drawn above, whatever they repeat afterwards (browsing after
/// a purchase does not pull the product pages below it).
fn precedence(journeys: &JourneySet) -> rustc_hash::FxHashMap<(&str, &str), f64> {
    let n = journeys.step_names.len();
    // Per step: the journey it was last seen in, and its first index there.
    let mut seen = vec![(usize::MAX, 0usize); n];
    // Per transition: (journeys where `from` came first, journeys with it, the last journey counted).
    let mut pairs: rustc_hash::FxHashMap<(u32, u32), (u64, u64, usize)> = Default::default();
    for (number, journey) in journeys.journeys(0..journeys.n_journeys()).enumerate() {
        for (index, step) in journey.step.iter().enumerate() {
            let first = &mut seen[*step as usize];
            if first.0 != number {
                *first = (number, index);
            }
        }
        for pair in journey.step.windows(2) {
            if pair[0] == pair[1] {
                continue;
            }
            let entry = pairs
                .entry((pair[0], pair[1]))
                .or_insert((0, 0, usize::MAX));
            if entry.2 == number {
                continue;
            }
            entry.2 = number;
            entry.1 += 1;
            entry.0 += u64::from(seen[pair[0] as usize].1 < seen[pair[1] as usize].1);
        }
    }
    pairs
        .into_iter()
        .map(|((from, to), (before, total, _))| {
            (
                (
                    journeys.step_names[from as usize].as_str(),
                    journeys.step_names[to as usize].as_str(),
                ),
                before as f64 / total.max(1) as f64,
            )
        })
        .collect()
}

impl Query for ProcessMapRequest {
    const NAME: &'static str = "process-map";
    const HELP: &'static str = "Directly-follows graph of steps: counts and mean / median / p90 time per edge, step, start and end counts.";
    const EXAMPLE: &'static str = "--rows 20";
    type Report = ProcessMapReport;
    type Spec = ProcessMapSpec;

    fn scope(&self) -> &Scope {
        &self.filter
    }

    fn spec(&self, data: &DataInfo<'_>) -> Result<ProcessMapSpec, AnalyticsError> {
        let feedback = self
            .feedback
            .then(|| {
                crate::feedback::FeedbackRequest {
                    top: usize::MAX,
                    comments: 0,
                    ..crate::feedback::FeedbackRequest::default()
                }
                .spec(data)
            })
            .transpose()?;
        Ok(ProcessMapSpec {
            feedback,
            precedence: self.precedence,
        })
    }

    fn text(&self, map: &ProcessMapReport, rows: usize) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} journeys, {} events, {} steps, {} edges\n",
            map.cases,
            map.events,
            map.steps.len(),
            map.edges.len()
        );
        let _ = writeln!(
            out,
            "{:>9}  {:>8}  {:>8}  {:>8}  edge",
            "count", "mean", "median", "p90"
        );
        for edge in map.edges.iter().take(rows) {
            let _ = writeln!(
                out,
                "{:>9}  {:>8}  {:>8}  {:>8}  {} → {}",
                edge.count,
                super::text::duration(edge.mean_secs),
                super::text::duration(edge.median_secs),
                super::text::duration(edge.p90_secs),
                edge.from,
                edge.to
            );
        }
        super::text::more(&mut out, map.edges.len(), rows, "edges");
        if !map.feedback.is_empty() {
            let _ = writeln!(out, "\nSatisfaction on rated steps (helpful rate, CSAT):");
            let mut rated: Vec<_> = map.feedback.iter().collect();
            rated.sort_by(|a, b| b.1.responses.cmp(&a.1.responses).then_with(|| a.0.cmp(b.0)));
            for (step, m) in rated.into_iter().take(rows) {
                let _ = writeln!(
                    out,
                    "{:>9}  {:>8}  {:>8}  {step}",
                    m.responses,
                    m.helpful_rate
                        .map(|r| format!("{:.0}%", r * 100.0))
                        .unwrap_or_else(|| "-".into()),
                    m.csat
                        .map(|c| format!("{c:.0}%"))
                        .unwrap_or_else(|| "-".into()),
                );
            }
        }
        out
    }
}
