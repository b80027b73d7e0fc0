//! `moments`: the steps (and step × property values) that decide whether customers reach the goal.

use super::{parse_duration, required_goals, run_plan, DataInfo, Flag, Query, Scope, Spec};
use crate::moments::{LiftOptions, Moment, Moments, MomentsReport};
use crate::{AnalyticsError, Condition, Runner};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt::Write;
use waymark_model::JourneySet;

/// `moments` options. JSON: `{"goals", "entry", "window", "properties", "min_customers", "min_share", "confidence",
/// "fdr", "top", "include_insignificant", "auto_window_quantile", "settled_share", "no_window", "lift_prefix", "segment_by", "bootstrap", "seed", "filter"}`; all
/// optional.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MomentsRequest {
    /// Goal steps (names or `*` patterns). Default: the first of the usual goal names the data has.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub goals: Vec<String>,
    /// Count each journey from its first event of this step (journeys without one are left out); default: from
    /// the journey's start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<String>,
    /// Only what happens within this long after the entry (or the first event) counts, the goal included (`7d`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
    /// Event properties whose values, per step, are candidates too (e.g. context.device.type).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub properties: Vec<String>,
    /// Minimum support: a candidate needs min(min_customers, min_share × customers) customers (PostHog's rule).
    #[serde(default = "MomentsRequest::default_min_customers")]
    pub min_customers: u64,
    #[serde(default = "MomentsRequest::default_min_share")]
    pub min_share: f64,
    /// Level of the odds ratios' and the lift's intervals.
    #[serde(default = "MomentsRequest::default_confidence")]
    pub confidence: f64,
    /// False-discovery rate: a moment is significant when its Benjamini–Hochberg q-value is at most this.
    #[serde(default = "MomentsRequest::default_fdr")]
    pub fdr: f64,
    /// Moments shown on each side.
    #[serde(default = "MomentsRequest::default_top")]
    pub top: usize,
    /// Show moments that are not significant too (marked so).
    #[serde(default)]
    pub include_insignificant: bool,
    /// Without a window: watch every journey for the time within which this share of the customers who reach the
    /// goal do so, so that what non-converters do long after giving up does not count.
    #[serde(default = "MomentsRequest::default_auto_window_quantile")]
    pub auto_window_quantile: f64,
    /// A step after which at least 1 − this share reach the goal, or without which at most this share do, all but
    /// settles the outcome (the goal's own path, or giving up): it is listed apart from the moments.
    #[serde(default = "MomentsRequest::default_settled_share")]
    pub settled_share: f64,
    /// No window at all: every event after the entry counts, however late.
    #[serde(default)]
    pub no_window: bool,
    /// Lift: steps just before the moment matched exactly between those who did it and those who did not (0-3).
    #[serde(default = "MomentsRequest::default_lift_prefix")]
    pub lift_prefix: usize,
    /// Lift: a property matched too, the customer's first value (e.g. traits.plan or context.device.type).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment_by: Option<String>,
    /// Lift: bootstrap resamples for its interval (0: none).
    #[serde(default = "MomentsRequest::default_bootstrap")]
    pub bootstrap: usize,
    /// Lift: the bootstrap's random seed (the same seed gives the same interval).
    #[serde(default = "MomentsRequest::default_seed")]
    pub seed: u64,
    #[serde(default)]
    pub filter: Scope,
}

impl MomentsRequest {
    fn default_min_customers() -> u64 {
        Moments::default().min_customers
    }

    fn default_min_share() -> f64 {
        Moments::default().min_share
    }

    fn default_confidence() -> f64 {
        Moments::default().confidence
    }

    fn default_fdr() -> f64 {
        Moments::default().fdr
    }

    fn default_top() -> usize {
        Moments::default().top
    }

    fn default_auto_window_quantile() -> f64 {
        Moments::default().auto_window_quantile.unwrap_or(0.9)
    }

    fn default_settled_share() -> f64 {
        Moments::default().settled_share
    }

    fn default_lift_prefix() -> usize {
        LiftOptions::default().prefix
    }

    fn default_bootstrap() -> usize {
        LiftOptions::default().bootstrap
    }

    fn default_seed() -> u64 {
        LiftOptions::default().seed
    }
}

impl Default for MomentsRequest {
    fn default() -> MomentsRequest {
        MomentsRequest {
            goals: Vec::new(),
            entry: None,
            window: None,
            properties: Vec::new(),
            min_customers: MomentsRequest::default_min_customers(),
            min_share: MomentsRequest::default_min_share(),
            confidence: MomentsRequest::default_confidence(),
            fdr: MomentsRequest::default_fdr(),
            top: MomentsRequest::default_top(),
            include_insignificant: false,
            auto_window_quantile: MomentsRequest::default_auto_window_quantile(),
            settled_share: MomentsRequest::default_settled_share(),
            no_window: false,
            lift_prefix: MomentsRequest::default_lift_prefix(),
            segment_by: None,
            bootstrap: MomentsRequest::default_bootstrap(),
            seed: MomentsRequest::default_seed(),
            filter: Scope::default(),
        }
    }
}

impl Spec for Moments {
    type Report = MomentsReport;
    fn properties(&self) -> Vec<String> {
        Moments::properties(self)
    }
    /// Two passes: the correlation of every candidate, then the lift of those reported.
    fn run(&self, journeys: &JourneySet, runner: &Runner) -> Result<MomentsReport, AnalyticsError> {
        run_plan(self.prepare(journeys), journeys, runner)
    }
}

impl Query for MomentsRequest {
    const NAME: &'static str = "moments";
    const HELP: &'static str = "Moments of truth: the steps (and step × property values) after which customers reach the goal more or less often — odds ratios with intervals, false-discovery control, and the lift against matched comparable customers.";
    const EXAMPLE: &'static str =
        "--goal \"Order Completed\" --properties context.device.type --segment-by traits.plan";
    const FLAGS: &'static [Flag] = &[Flag::alias("goal", "goals")];
    type Report = MomentsReport;
    type Spec = Moments;

    fn scope(&self) -> &Scope {
        &self.filter
    }

    fn spec(&self, data: &DataInfo<'_>) -> Result<Moments, AnalyticsError> {
        let goals = required_goals(&self.goals, data.step_names)?;
        if self.no_window && self.window.is_some() {
            return Err(AnalyticsError::field(
                "no_window",
                "give either window or no_window, not both",
            ));
        }
        let window_us = match &self.window {
            Some(window) => {
                let window = parse_duration("window", window)?;
                if window <= 0 {
                    return Err(AnalyticsError::field(
                        "window",
                        "window must be longer than zero",
                    ));
                }
                Some(window)
            }
            None => None,
        };
        if self.top == 0 {
            return Err(AnalyticsError::field("top", "top must be at least 1"));
        }
        Ok(Moments {
            goals: goals.into_iter().map(Condition::step).collect(),
            entry: self
                .entry
                .as_ref()
                .map(|entry| Condition::step(entry.clone())),
            window_us,
            properties: self.properties.clone(),
            min_customers: self.min_customers,
            min_share: self.min_share,
            confidence: self.confidence,
            fdr: self.fdr,
            top: self.top,
            include_insignificant: self.include_insignificant,
            lift: LiftOptions {
                prefix: self.lift_prefix,
                segment_by: self.segment_by.clone(),
                bootstrap: self.bootstrap,
                seed: self.seed,
            },
            examples: 5,
            auto_window_quantile: (!self.no_window).then_some(self.auto_window_quantile),
            settled_share: self.settled_share,
        })
    }

    fn text(&self, report: &MomentsReport, rows: usize) -> String {
        moments_text(report, rows)
    }
}

/// An odds ratio with three significant digits or so: 0.18, 2.45, 23.6, 1290.
fn ratio(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else if value >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

/// A q-value as people read it: 0.032, or <0.0001.
fn q_text(q: f64) -> String {
    if q < 1e-4 {
        "<0.0001".into()
    } else {
        format!("{q:.4}")
    }
}

fn percent(rate: f64) -> String {
    format!("{:.0}%", rate * 100.0)
}

fn points(difference: f64) -> String {
    format!("{:+.1}", difference * 100.0)
}

fn table(out: &mut String, title: &str, moments: &[Moment], rows: usize) {
    let _ = writeln!(out, "\n{title}");
    if moments.is_empty() {
        let _ = writeln!(out, "  (none)");
        return;
    }
    let width = moments
        .iter()
        .map(|moment| moment.label.chars().count())
        .max()
        .unwrap_or(0)
        .clamp(12, 48);
    let _ = writeln!(
        out,
        "  {:<width$}  {:>9}  {:>7}  {:>7}  {:>20}  {:>7}  {:>22}",
        "moment",
        "customers",
        "goal if",
        "if not",
        "odds ratio (interval)",
        "q",
        "lift, points (interval)"
    );
    for moment in moments.iter().take(rows.max(1)) {
        let label: String = moment.label.chars().take(width).collect();
        let ratio = format!(
            "{} ({}–{})",
            ratio(moment.odds_ratio),
            ratio(moment.odds_ratio_low),
            ratio(moment.odds_ratio_high)
        );
        let lift = match moment.lift {
            Some(lift) => match (lift.low, lift.high) {
                (Some(low), Some(high)) => {
                    format!(
                        "{} ({} to {})",
                        points(lift.difference),
                        points(low),
                        points(high)
                    )
                }
                _ => points(lift.difference),
            },
            None => "no comparable".to_string(),
        };
        let _ = writeln!(
            out,
            "  {:<width$}  {:>9}  {:>7}  {:>7}  {:>20}  {:>7}  {:>22}{}",
            label,
            moment.reached_with + moment.not_reached_with,
            percent(moment.goal_rate_with),
            percent(moment.goal_rate_without),
            ratio,
            q_text(moment.q_value),
            lift,
            if moment.significant {
                ""
            } else {
                "  (not significant)"
            }
        );
    }
    super::text::more(out, moments.len(), rows.max(1), "moments");
}

/// The report as two tables: the moments that raise the goal rate and those that lower it.
pub fn moments_text(report: &MomentsReport, rows: usize) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Moments of truth for {}: {} customers, {} reached it ({}); {} candidates tested, {} significant at a {:.0}% false-discovery rate",
        report.goals.join(" or "),
        report.customers,
        report.reached,
        percent(report.goal_rate),
        report.tested,
        report.significant,
        report.fdr * 100.0
    );
    table(&mut out, "Raise the goal rate", &report.positive, rows);
    table(&mut out, "Lower the goal rate", &report.negative, rows);
    table(
        &mut out,
        "Settle the outcome (the goal's own path, or giving up)",
        &report.settled,
        rows,
    );
    let _ = writeln!(
        out,
        "\n  (goal if / if not: goal rate of customers who did it / did not; q: the p-value corrected for testing {} \
         candidates; lift: goal-rate points against comparable customers who did not do it, matched on {}, {:.0}% \
         bootstrap interval)",
        report.tested,
        report.lift_matched_on,
        report.confidence * 100.0
    );
    super::text::notes(&mut out, &report.warnings);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_analysis_defaults_and_fields_are_checked() {
        let steps = vec!["Signed Up".to_string()];
        let data = DataInfo { step_names: &steps };
        let spec = MomentsRequest::default().spec(&data).unwrap();
        assert_eq!(spec.goals, [Condition::step("Signed Up")]);
        assert_eq!(
            (spec.min_customers, spec.top, spec.lift.bootstrap),
            (25, 10, 500)
        );
        let request: MomentsRequest =
            serde_json::from_value(serde_json::json!({"goals": ["Paid"], "window": "an hour"}))
                .unwrap();
        assert!(request
            .spec(&data)
            .unwrap_err()
            .to_string()
            .contains("window"));
        let request: MomentsRequest =
            serde_json::from_value(serde_json::json!({"goals": ["Paid"], "top": 0})).unwrap();
        assert!(request.spec(&data).unwrap_err().to_string().contains("top"));
        assert!(
            serde_json::from_value::<MomentsRequest>(serde_json::json!({"goal": "Paid"})).is_err()
        );
    }
}
