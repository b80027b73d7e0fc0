//! `friction`: where customers get stuck, ranked by impact.

use super::{parse_duration, required_goals, DataInfo, Flag, Query, Scope, Spec};
use crate::{AnalyticsError, Condition, Friction, FrictionReport, Plan, Runner};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use waymark_model::JourneySet;

/// `friction` options. JSON: `{"goals", "standard_times", "assisted_channels", "jump_window", "repeat_window",
/// "slow_k", "segment_by", "top", "filter"}`; everything is optional, and what is left out takes friction's
/// defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FrictionRequest {
    /// Goal steps (names or `*` patterns). Default: the first of the usual goal names the data has
    /// (Order Completed, Purchase, Signed Up, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub goals: Vec<String>,
    /// Standard times per step, e.g. {"Installation Scheduled": "72h"}.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub standard_times: BTreeMap<String, String>,
    /// Channels where a person helps the customer (default call_center, store).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assisted_channels: Option<Vec<String>>,
    /// Self-service then an assisted contact within this window is a channel jump (default 1d).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jump_window: Option<String>,
    /// A second contact on the same channel within this window is a repeat contact (default 7d).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat_window: Option<String>,
    /// A transition is slow beyond its mean + slow_k standard deviations (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slow_k: Option<f64>,
    /// Properties checked for where a finding concentrates (default context.device.type, region).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment_by: Option<Vec<String>>,
    /// An event property holding the step's standard time in hours (default standard_time_hours).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standard_time_property: Option<String>,
    /// Feedback: a boolean property where false is negative (default helpful).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub helpful_property: Option<String>,
    /// Feedback: score properties where a value of 2 or less is negative (default csat, rating, score).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score_properties: Option<Vec<String>>,
    /// The property naming the step a feedback event rates, else the step before it (default rated_step).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rated_step_property: Option<String>,
    /// Findings to show (default 15).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top: Option<usize>,
    #[serde(default)]
    pub filter: Scope,
}

impl Spec for Friction {
    type Report = FrictionReport;
    fn properties(&self) -> Vec<String> {
        Friction::properties(self)
    }
    /// Two passes: the transition profile (in `prepare`), then the findings.
    fn run(
        &self,
        journeys: &JourneySet,
        runner: &Runner,
    ) -> Result<FrictionReport, AnalyticsError> {
        Ok(self.prepare(journeys, runner)?.execute(journeys, runner))
    }
}

impl Query for FrictionRequest {
    const NAME: &'static str = "friction";
    const HELP: &'static str = "Where customers get stuck, ranked by impact: dead ends, loops, errors, channel jumps, repeat contacts, slow and stuck steps, negative feedback — each explained, with its customers.";
    const EXAMPLE: &'static str = "--goal \"Order Completed\" --top 10";
    const FLAGS: &'static [Flag] = &[
        Flag::alias("goal", "goals"),
        Flag {
            name: "standard-time",
            field: "standard_times",
            presets: &[],
            help: "A step's standard time, as STEP=DURATION (repeatable), e.g. \"Installation Scheduled=72h\".",
        },
    ];
    type Report = FrictionReport;
    type Spec = Friction;

    fn scope(&self) -> &Scope {
        &self.filter
    }

    fn spec(&self, data: &DataInfo<'_>) -> Result<Friction, AnalyticsError> {
        let mut friction = Friction::default();
        let goals = required_goals(&self.goals, data.step_names)?;
        friction.goals = goals.into_iter().map(Condition::step).collect();
        friction.standard_times = self
            .standard_times
            .iter()
            .map(|(step, time)| {
                Ok((
                    step.clone(),
                    parse_duration(&format!("standard_times.{step}"), time)?,
                ))
            })
            .collect::<Result<_, AnalyticsError>>()?;
        if let Some(channels) = &self.assisted_channels {
            friction.assisted_channels = channels.clone();
        }
        if let Some(window) = &self.jump_window {
            friction.jump_window_us = parse_duration("jump_window", window)?;
        }
        if let Some(window) = &self.repeat_window {
            friction.repeat_window_us = parse_duration("repeat_window", window)?;
        }
        if let Some(k) = self.slow_k {
            if !(k.is_finite() && k > 0.0) {
                return Err(AnalyticsError::field(
                    "slow_k",
                    "slow_k must be a positive number of standard deviations",
                ));
            }
            friction.slow_k = k;
        }
        if let Some(property) = &self.standard_time_property {
            friction.standard_time_property = Some(property.clone());
        }
        if let Some(property) = &self.helpful_property {
            friction.helpful_property = property.clone();
        }
        if let Some(properties) = &self.score_properties {
            friction.score_properties = properties.clone();
        }
        if let Some(property) = &self.rated_step_property {
            friction.rated_step_property = property.clone();
        }
        if let Some(segments) = &self.segment_by {
            friction.segment_by = segments.clone();
        }
        if let Some(top) = self.top {
            friction.top = top;
        }
        Ok(friction)
    }

    fn text(&self, report: &FrictionReport, _rows: usize) -> String {
        super::text::friction(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feedback_and_standard_time_properties_are_settable() {
        let steps = vec!["Paid".to_string()];
        let request: FrictionRequest = serde_json::from_value(serde_json::json!({
            "goals": ["Paid"],
            "standard_time_property": "sla_hours",
            "helpful_property": "useful",
            "score_properties": ["stars"],
            "rated_step_property": "about_step"
        }))
        .unwrap();
        let friction = request.spec(&DataInfo { step_names: &steps }).unwrap();
        assert_eq!(
            friction.standard_time_property.as_deref(),
            Some("sla_hours")
        );
        assert_eq!(
            (
                friction.helpful_property.as_str(),
                friction.score_properties.as_slice(),
                friction.rated_step_property.as_str()
            ),
            ("useful", ["stars".to_string()].as_slice(), "about_step")
        );
        let defaults = FrictionRequest::default().spec(&DataInfo { step_names: &steps });
        assert!(defaults.is_err(), "no usual goal name among the steps");
    }
}
