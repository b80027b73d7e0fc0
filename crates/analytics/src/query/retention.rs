//! `retention`: cohorts by the period of a start step, and who comes back.

use super::{run_plan, AnchorSpec, DataInfo, Query, Scope, Spec};
use crate::{AnalyticsError, Period, Retention, RetentionMode, RetentionReport, Runner};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use waymark_model::JourneySet;

/// `retention` options. JSON: `{"start", "return", "period", "periods", "mode", "filter"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetentionRequest {
    /// The step (name, `*` pattern or condition) that puts a customer in a cohort (first occurrence).
    pub start: AnchorSpec,
    /// The step that counts as coming back.
    #[serde(rename = "return")]
    pub returning: AnchorSpec,
    /// day, week (Monday-based) or month, in UTC.
    #[serde(default)]
    pub period: Period,
    /// Periods after the cohort's own.
    #[serde(default = "RetentionRequest::default_periods")]
    pub periods: usize,
    /// first_time (default): a customer's cohort is the period of their first start step; recurring: each
    /// period's cohort is everyone who did the start step in it (PostHog's default retention).
    #[serde(default)]
    pub mode: RetentionMode,
    #[serde(default)]
    pub filter: Scope,
}

impl RetentionRequest {
    fn default_periods() -> usize {
        8
    }
}

impl Default for RetentionRequest {
    fn default() -> RetentionRequest {
        RetentionRequest {
            start: AnchorSpec::default(),
            returning: AnchorSpec::default(),
            period: Period::Week,
            periods: RetentionRequest::default_periods(),
            mode: RetentionMode::default(),
            filter: Scope::default(),
        }
    }
}

impl Spec for Retention {
    type Report = RetentionReport;
    fn properties(&self) -> Vec<String> {
        Retention::properties(self)
    }
    fn run(
        &self,
        journeys: &JourneySet,
        runner: &Runner,
    ) -> Result<RetentionReport, AnalyticsError> {
        run_plan(self.prepare(journeys), journeys, runner)
    }
}

impl Query for RetentionRequest {
    const NAME: &'static str = "retention";
    const HELP: &'static str = "Cohorts by the period of a start step, and how many come back (a return step) in each later period.";
    const EXAMPLE: &'static str =
        "--start \"Order Completed\" --return \"page:Home\" --period week";
    type Report = RetentionReport;
    type Spec = Retention;

    fn scope(&self) -> &Scope {
        &self.filter
    }

    fn spec(&self, _data: &DataInfo<'_>) -> Result<Retention, AnalyticsError> {
        for (field, anchor) in [("start", &self.start), ("return", &self.returning)] {
            if matches!(anchor, AnchorSpec::Name(name) if name.is_empty()) {
                return Err(AnalyticsError::field(
                    field,
                    format!("{field}: name a step (or give a condition)"),
                ));
            }
        }
        Ok(Retention {
            start: self.start.condition(),
            returning: self.returning.condition(),
            period: self.period,
            periods: self.periods,
            mode: self.mode,
        })
    }

    fn text(&self, report: &RetentionReport, _rows: usize) -> String {
        super::text::retention(report)
    }
}
