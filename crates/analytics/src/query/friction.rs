//! `friction`: where customers get stuck, ranked by impact.

use super::{parse_duration, parse_time, required_goals, DataInfo, Flag, Query, Scope, Spec};
use crate::{AnalyticsError, Condition, Friction, FrictionReport, Plan, Runner};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use waymark_model::JourneySet;

/// `friction` options: the goal, and every convention friction reads (channels, windows, how slow is slow, the
/// standard-time and feedback properties, the segments, the steps that are not journey steps). Everything is
/// optional, and what is left out takes friction's defaults, which suit any Segment-shaped data.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FrictionRequest {
    /// Goal steps (names or `*` patterns). Default: the first of the usual goal names the data has
    /// (Order Completed, Purchase, Signed Up, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub goals: Vec<String>,
    /// Standard times per step, e.g. {"Application Reviewed": "48h"}.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub standard_times: BTreeMap<String, String>,
    /// Channels where a person helps the customer (default call_center, store).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assisted_channels: Option<Vec<String>>,
    /// Channels where customers help themselves, the origin of a channel jump (default web, app, chat).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_service_channels: Option<Vec<String>>,
    /// Self-service then an assisted contact within this window is a channel jump (default 1d).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jump_window: Option<String>,
    /// A second contact on the same channel within this window is a repeat contact (default 7d).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat_window: Option<String>,
    /// Events on one assisted channel less than this apart are one contact (default 1h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_gap: Option<String>,
    /// A transition is slow beyond its median log-time plus slow_k robust deviations (default 3), or in a separate
    /// slow group of 5–50 % of its times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slow_k: Option<f64>,
    /// A slow transition takes at least this many times its typical time (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slow_factor: Option<f64>,
    /// Step names containing any of these words (case-insensitive) are errors (default fail, error, declined,
    /// denied, timeout, timed out, exception, crash, invalid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_words: Option<Vec<String>>,
    /// Steps (`*` patterns) that are not journey steps (default the identity calls identify, alias, group).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_steps: Option<Vec<String>>,
    /// Where findings concentrate: dotted names as they are, bare names from the event's properties or the
    /// customer's traits (default context.device.type, context.os.name, region, country, plan).
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
    /// A drop-off point is a step after which at least this share of customers reach the goal (default 0.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_off_min_progress: Option<f64>,
    /// Findings with fewer customers are not shown (default 20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_customers: Option<u64>,
    /// "Now" for stuck journeys (RFC 3339 or YYYY-MM-DD); default the 99.9th percentile of the journeys' last
    /// event times, ignoring any after the machine's clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_of: Option<String>,
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
    const HELP: &'static str = "Where customers get stuck, before the goal and after it, ranked by harm (goals lost, extra contacts, customers beyond the norm): dead ends, loops, errors, channel jumps, repeat contacts, slow and stuck steps, negative feedback — each explained, with its customers.";
    const EXAMPLE: &'static str = "--goal \"Order Completed\" --top 10";
    const FLAGS: &'static [Flag] = &[
        Flag::alias("goal", "goals"),
        Flag {
            name: "standard-time",
            field: "standard_times",
            presets: &[],
            help: "A step's standard time, as STEP=DURATION (repeatable), e.g. \"Application Reviewed=48h\".",
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
        if let Some(channels) = &self.self_service_channels {
            friction.self_service_channels = channels.clone();
        }
        if let Some(gap) = &self.contact_gap {
            friction.contact_gap_us = parse_duration("contact_gap", gap)?;
        }
        for (field, value, into) in [
            ("slow_k", self.slow_k, &mut friction.slow_k),
            ("slow_factor", self.slow_factor, &mut friction.slow_factor),
        ] {
            if let Some(value) = value {
                if !(value.is_finite() && value > 0.0) {
                    return Err(AnalyticsError::field(
                        field,
                        format!("{field} must be a positive number, not {value}"),
                    ));
                }
                *into = value;
            }
        }
        if let Some(words) = &self.error_words {
            friction.error_words = words.clone();
        }
        if let Some(steps) = &self.ignore_steps {
            friction.ignore_steps = steps.clone();
        }
        if let Some(share) = self.drop_off_min_progress {
            if !(0.0..=1.0).contains(&share) {
                return Err(AnalyticsError::field(
                    "drop_off_min_progress",
                    format!("drop_off_min_progress is a share between 0 and 1, not {share}"),
                ));
            }
            friction.drop_off_min_progress = share;
        }
        if let Some(min) = self.min_customers {
            friction.min_customers = min.max(1);
        }
        if let Some(time) = &self.as_of {
            friction.as_of_us = Some(parse_time("as_of", time)?);
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
