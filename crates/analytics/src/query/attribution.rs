//! `attribution`: how much credit each channel (or step) deserves for the conversions after it, under every model.

use super::{parse_duration, required_goals, run_plan, DataInfo, Flag, Query, Scope, Spec};
use crate::attribution::{check_order, Attribution, AttributionReport, TouchpointKind};
use crate::{AnalyticsError, Condition, Runner};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt::Write;
use waymark_model::JourneySet;

/// `attribution` options. JSON: `{"goals", "by", "touchpoints", "lookback", "keep_repeats",
/// "value_property", "order", "half_life", "transition_matrix", "filter"}`; all optional.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AttributionRequest {
    /// Goal steps (names or `*` patterns): each goal event is a conversion, credited to the touches before it.
    /// Default: the first of the usual goal names the data has (Order Completed, Purchase, Signed Up, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub goals: Vec<String>,
    /// What a touchpoint is: the event's channel, or its step.
    #[serde(default)]
    pub by: TouchpointKind,
    /// Touchpoints that count (channel or step names, `*` patterns); default: every channel, or every step but
    /// identify, alias and group.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub touchpoints: Vec<String>,
    /// Touches longer than this before the conversion are not credited (`30d`; `none`: no limit).
    #[serde(default = "AttributionRequest::default_lookback")]
    pub lookback: String,
    /// Count a touchpoint repeated back to back as many touches (default: once).
    #[serde(default)]
    pub keep_repeats: bool,
    /// The goal event's property holding the conversion's value; empty: conversions only.
    #[serde(default = "AttributionRequest::default_value_property")]
    pub value_property: String,
    /// The Markov chain's order: a state is the last `order` touchpoints (1 to 4).
    #[serde(default = "AttributionRequest::default_order")]
    pub order: usize,
    /// Time decay: a touch this long before the conversion counts half as much as one at it.
    #[serde(default = "AttributionRequest::default_half_life")]
    pub half_life: String,
    /// Include the Markov chain's transition matrix.
    #[serde(default)]
    pub transition_matrix: bool,
    #[serde(default)]
    pub filter: Scope,
}

impl AttributionRequest {
    fn default_lookback() -> String {
        "30d".into()
    }

    fn default_value_property() -> String {
        "revenue".into()
    }

    fn default_order() -> usize {
        1
    }

    fn default_half_life() -> String {
        "7d".into()
    }
}

impl Default for AttributionRequest {
    fn default() -> AttributionRequest {
        AttributionRequest {
            goals: Vec::new(),
            by: TouchpointKind::Channel,
            touchpoints: Vec::new(),
            lookback: AttributionRequest::default_lookback(),
            keep_repeats: false,
            value_property: AttributionRequest::default_value_property(),
            order: AttributionRequest::default_order(),
            half_life: AttributionRequest::default_half_life(),
            transition_matrix: false,
            filter: Scope::default(),
        }
    }
}

impl Spec for Attribution {
    type Report = AttributionReport;
    fn properties(&self) -> Vec<String> {
        Attribution::properties(self)
    }
    fn run(
        &self,
        journeys: &JourneySet,
        runner: &Runner,
    ) -> Result<AttributionReport, AnalyticsError> {
        run_plan(self.prepare(journeys), journeys, runner)
    }
}

impl Query for AttributionRequest {
    const NAME: &'static str = "attribution";
    const HELP: &'static str = "Credit for each channel (or step) in the conversions that followed it: first touch, last touch, linear, position-based, time decay and the Markov removal effect.";
    const EXAMPLE: &'static str =
        "--goal \"Order Completed\" --by channel --lookback 30d --order 2";
    const FLAGS: &'static [Flag] = &[Flag::alias("goal", "goals")];
    type Report = AttributionReport;
    type Spec = Attribution;

    fn scope(&self) -> &Scope {
        &self.filter
    }

    fn spec(&self, data: &DataInfo<'_>) -> Result<Attribution, AnalyticsError> {
        let goals = required_goals(&self.goals, data.step_names)?;
        check_order(self.order)?;
        let lookback_us = match self.lookback.trim() {
            "none" | "" => None,
            text => Some(parse_duration("lookback", text)?),
        };
        let half_life_us = parse_duration("half_life", &self.half_life)?;
        if half_life_us <= 0 {
            return Err(AnalyticsError::field(
                "half_life",
                "half_life must be longer than zero",
            ));
        }
        Ok(Attribution {
            kind: self.by,
            goals: goals.into_iter().map(Condition::step).collect(),
            touchpoints: self.touchpoints.clone(),
            lookback_us,
            collapse_repeats: !self.keep_repeats,
            value_property: (!self.value_property.trim().is_empty())
                .then(|| self.value_property.trim().to_string()),
            order: self.order,
            half_life_us,
            transition_matrix: self.transition_matrix,
        })
    }

    fn text(&self, report: &AttributionReport, rows: usize) -> String {
        attribution_text(report, rows)
    }
}

/// The report as a table: one row per touchpoint, conversions credited by each model.
pub fn attribution_text(report: &AttributionReport, rows: usize) -> String {
    let mut out = String::new();
    let kind = match report.touchpoint_kind {
        TouchpointKind::Channel => "channel",
        TouchpointKind::Step => "step",
    };
    let _ = writeln!(
        out,
        "Attribution of {} conversions (value {:.2}) over {} paths, {} that did not convert; by {kind}, Markov order {}",
        report.conversions, report.value, report.paths, report.null_paths, report.order
    );
    if report.unattributed_conversions > 0 {
        let _ = writeln!(
            out,
            "  {} conversions had no touchpoint in the lookback window and are credited to nothing",
            report.unattributed_conversions
        );
    }
    out.push('\n');
    let has_decay = report
        .touchpoints
        .iter()
        .any(|credit| credit.time_decay.is_some());
    let width = report
        .touchpoints
        .iter()
        .map(|credit| credit.touchpoint.chars().count())
        .max()
        .unwrap_or(0)
        .clamp(10, 40);
    let _ = write!(
        out,
        "  {:<width$}  {:>9}  {:>9}  {:>9}  {:>9}",
        kind, "first", "last", "linear", "position"
    );
    if has_decay {
        let _ = write!(out, "  {:>9}", "decay");
    }
    let _ = writeln!(out, "  {:>9}  {:>8}", "markov", "removal");
    for credit in report.touchpoints.iter().take(rows.max(1)) {
        let name: String = credit.touchpoint.chars().take(width).collect();
        let _ = write!(
            out,
            "  {:<width$}  {:>9.1}  {:>9.1}  {:>9.1}  {:>9.1}",
            name,
            credit.first_touch.conversions,
            credit.last_touch.conversions,
            credit.linear.conversions,
            credit.position_based.conversions
        );
        if let Some(decay) = credit.time_decay {
            let _ = write!(out, "  {:>9.1}", decay.conversions);
        }
        let _ = writeln!(
            out,
            "  {:>9.1}  {:>7.1}%",
            credit.markov.conversions,
            credit.removal_effect * 100.0
        );
    }
    super::text::more(
        &mut out,
        report.touchpoints.len(),
        rows.max(1),
        "touchpoints",
    );
    let _ = writeln!(
        out,
        "  (conversions credited per model; removal: the share of conversions lost without this {kind})"
    );
    super::text::notes(&mut out, &report.warnings);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_documented_and_fields_checked() {
        let steps = vec!["Order Completed".to_string()];
        let data = DataInfo { step_names: &steps };
        let spec = AttributionRequest::default().spec(&data).unwrap();
        assert_eq!(spec.lookback_us, Some(30 * 86_400_000_000));
        assert_eq!((spec.order, spec.collapse_repeats), (1, true));
        assert_eq!(spec.value_property.as_deref(), Some("revenue"));
        let request: AttributionRequest =
            serde_json::from_value(serde_json::json!({"goals": ["Paid"], "order": 7})).unwrap();
        let error = request.spec(&data).unwrap_err().to_string();
        assert!(error.contains("order must be between 1 and 4"), "{error}");
        let request: AttributionRequest = serde_json::from_value(
            serde_json::json!({"goals": ["Paid"], "lookback": "none", "value_property": ""}),
        )
        .unwrap();
        let spec = request.spec(&data).unwrap();
        assert_eq!((spec.lookback_us, spec.value_property), (None, None));
        let request: AttributionRequest =
            serde_json::from_value(serde_json::json!({"goals": ["Paid"], "half_life": "soon"}))
                .unwrap();
        assert!(request
            .spec(&data)
            .unwrap_err()
            .to_string()
            .contains("half_life"));
        let none = vec!["view".to_string()];
        assert!(AttributionRequest::default()
            .spec(&DataInfo { step_names: &none })
            .is_err());
    }
}
