//! `funnel`: conversion through ordered steps within a window.

use super::{parse_duration, run_plan, DataInfo, Flag, Query, Scope, Spec};
use crate::{
    AnalyticsError, Breakdown, Condition, CountBy, Exclusion, Funnel, FunnelMode, FunnelReport,
    FunnelStep, Runner,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use waymark_model::JourneySet;

/// A funnel step: a step name (`"Checkout"`, `"page:/help*"`) or `{"name", "condition", "within"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum StepSpec {
    Name(String),
    Full {
        #[serde(default)]
        name: Option<String>,
        condition: Condition,
        /// At most this long after the previous step (`30m`).
        #[serde(default)]
        within: Option<String>,
    },
}

/// `funnel` options. JSON: `{"steps", "window", "modes", "exclusions", "count_by", "breakdown", "drill_down",
/// "filter"}`; only `steps` is required.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FunnelRequest {
    /// The steps, in order (`*` patterns allowed).
    pub steps: Vec<StepSpec>,
    /// Conversion window from step 1, inclusive (90s, 2h, 7d).
    #[serde(default = "FunnelRequest::default_window")]
    pub window: String,
    /// ClickHouse windowFunnel modes: strict_order, strict_deduplication, strict_increase, strict_once,
    /// allow_reentry; or any_order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub modes: Vec<FunnelMode>,
    /// Customers who do one of these between two steps lose that attempt.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclusions: Vec<Exclusion>,
    /// Count customers, or attempts (each step-1 event starts one).
    #[serde(default)]
    pub count_by: CountBy,
    /// Break the funnel down by a property's value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breakdown: Option<Breakdown>,
    /// Customers listed per drop-off.
    #[serde(default = "FunnelRequest::default_drill_down")]
    pub drill_down: usize,
    #[serde(default)]
    pub filter: Scope,
}

impl FunnelRequest {
    fn default_window() -> String {
        "7d".into()
    }

    fn default_drill_down() -> usize {
        20
    }

    /// An ordered funnel over step names, everything else at its default.
    pub fn new(steps: &[&str], window: &str) -> FunnelRequest {
        FunnelRequest {
            steps: steps
                .iter()
                .map(|step| StepSpec::Name(step.to_string()))
                .collect(),
            window: window.into(),
            ..FunnelRequest::default()
        }
    }
}

impl Default for FunnelRequest {
    fn default() -> FunnelRequest {
        FunnelRequest {
            steps: Vec::new(),
            window: FunnelRequest::default_window(),
            modes: Vec::new(),
            exclusions: Vec::new(),
            count_by: CountBy::Customer,
            breakdown: None,
            drill_down: FunnelRequest::default_drill_down(),
            filter: Scope::default(),
        }
    }
}

impl Spec for Funnel {
    type Report = FunnelReport;
    fn properties(&self) -> Vec<String> {
        Funnel::properties(self)
    }
    fn run(&self, journeys: &JourneySet, runner: &Runner) -> Result<FunnelReport, AnalyticsError> {
        run_plan(self.prepare(journeys), journeys, runner)
    }
}

impl Query for FunnelRequest {
    const NAME: &'static str = "funnel";
    const HELP: &'static str = "How many customers get through ordered steps within a window, where the rest stop, and what they do next.";
    const EXAMPLE: &'static str =
        "--steps \"Added to Cart,Checkout Started,Order Completed\" --window 7d";
    const FLAGS: &'static [Flag] = &[
        Flag::alias("mode", "modes"),
        Flag {
            name: "exclude",
            field: "exclusions[].condition.step",
            presets: &[],
            help: "Customers who do this step between step 1 and the last step lose that attempt (repeatable).",
        },
        Flag {
            name: "breakdown",
            field: "breakdown.property",
            presets: &[],
            help: "Break the funnel down by this property.",
        },
        Flag {
            name: "attribution",
            field: "breakdown.attribution",
            presets: &[],
            help: "Which step's value the breakdown uses: first_touch, last_touch or {\"step\": N}.",
        },
        Flag {
            name: "breakdown-top",
            field: "breakdown.top",
            presets: &[],
            help: "Values shown in the breakdown before the rest are summed as (other).",
        },
    ];
    type Report = FunnelReport;
    type Spec = Funnel;

    fn scope(&self) -> &Scope {
        &self.filter
    }

    fn spec(&self, _data: &DataInfo<'_>) -> Result<Funnel, AnalyticsError> {
        let steps = self
            .steps
            .iter()
            .enumerate()
            .map(|(index, spec)| {
                Ok(match spec {
                    StepSpec::Name(name) => FunnelStep::named(name),
                    StepSpec::Full {
                        name,
                        condition,
                        within,
                    } => FunnelStep {
                        name: name.clone().unwrap_or_else(|| condition.label()),
                        condition: condition.clone(),
                        within_us: within
                            .as_deref()
                            .map(|text| parse_duration(&format!("steps[{index}].within"), text))
                            .transpose()?,
                    },
                })
            })
            .collect::<Result<Vec<_>, AnalyticsError>>()?;
        Ok(Funnel {
            steps,
            window_us: parse_duration("window", &self.window)?,
            modes: self.modes.clone(),
            exclusions: self.exclusions.clone(),
            count_by: self.count_by,
            breakdown: self.breakdown.clone(),
            drill_down: self.drill_down,
        })
    }

    fn text(&self, report: &FunnelReport, _rows: usize) -> String {
        super::text::funnel(report, &self.window)
    }
}
