//! `process-map`: the directly-follows graph.

use super::{DataInfo, Query, Scope, Spec};
use crate::{AnalyticsError, Plan, ProcessMap, ProcessMapReport, Runner};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt::Write;
use waymark_model::JourneySet;

/// `process-map` options: only the filter.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProcessMapRequest {
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

impl Query for ProcessMapRequest {
    const NAME: &'static str = "process-map";
    const HELP: &'static str = "Directly-follows graph of steps: counts and mean / median / p90 time per edge, step, start and end counts.";
    const EXAMPLE: &'static str = "--rows 20";
    type Report = ProcessMapReport;
    type Spec = ProcessMap;

    fn scope(&self) -> &Scope {
        &self.filter
    }

    fn spec(&self, _data: &DataInfo<'_>) -> Result<ProcessMap, AnalyticsError> {
        Ok(ProcessMap)
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
        out
    }
}
