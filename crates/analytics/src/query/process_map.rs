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
        Ok(ProcessMapSpec { feedback })
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
