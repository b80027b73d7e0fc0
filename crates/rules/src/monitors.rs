//! KPI monitor definitions: a metric over a sliding window (`waymark_analytics::monitor` reads and judges it),
//! a threshold or an anomaly test, and the webhooks that go out when it fires. Validated with the rest of the
//! definition set, each problem naming its field.

use crate::defs::{ActionSpec, DefinitionError};
use crate::expr::{closest, parse_window};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use waymark_analytics::monitor::{Direction, Metric, SeriesSpec, Test};
use waymark_analytics::Condition;

/// What a monitor measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MetricKind {
    /// `events` per `of` event (a step's failure rate).
    Rate,
    /// `events` in the window.
    Count,
    /// The mean of `property` over `events` (true counts 1): average feedback on a step.
    Mean,
    /// Of the `from` events, the share followed by a `to` event within `within`: a funnel's conversion.
    Conversion,
}

/// Which way an anomaly counts.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyDirection {
    Above,
    Below,
    #[default]
    Both,
}

/// An anomaly test against the metric's own history at the same time of the week.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AnomalySpec {
    /// How many spreads away from the expected value a reading must be (default 3).
    #[serde(default = "default_sd")]
    pub sd: f64,
    /// Earlier weeks the expected value and spread come from (default 4, at least 2).
    #[serde(default = "default_weeks")]
    pub weeks: usize,
    #[serde(default)]
    pub direction: AnomalyDirection,
}

fn default_sd() -> f64 {
    3.0
}
fn default_weeks() -> usize {
    4
}
fn default_window() -> String {
    "1d".into()
}
fn default_every() -> String {
    "1h".into()
}
fn default_min_events() -> u64 {
    20
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MonitorSpec {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    pub metric: MetricKind,
    /// `rate`, `count`, `mean`: the events counted (an analysis condition: `{step = "Login Failed"}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Condition>,
    /// `rate`: the events it is a rate of (`{step = "Login Attempted"}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub of: Option<Condition>,
    /// `mean`: the property averaged (`helpful`, `context.app.version`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub property: Option<String>,
    /// `conversion`: where it starts and where it ends, and how long it may take (`2h`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within: Option<String>,
    /// A condition every counted event must also meet (`{property = "context.os.name", op = "=", value =
    /// "Android"}`).
    #[serde(default, rename = "where", skip_serializing_if = "Option::is_none")]
    pub filter: Option<Condition>,
    /// The sliding window (default `1d`), a whole number of reading intervals.
    #[serde(default = "default_window")]
    pub window: String,
    /// How often it is read (default `1h`); a week must be a whole number of them for an anomaly test.
    #[serde(default = "default_every")]
    pub every: String,
    /// Fire when the value rises above this…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub above: Option<f64>,
    /// …or falls below this…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub below: Option<f64>,
    /// …or leaves what its own history at this time of the week expects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anomaly: Option<AnomalySpec>,
    /// Readings resting on fewer events are not judged (default 20: a quiet night's 1 failure in 2 attempts is
    /// not a 50 % failure rate).
    #[serde(default = "default_min_events")]
    pub min_events: u64,
    /// Webhooks sent when it fires (a monitor is about the business, not one customer: no event or trait
    /// actions).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<ActionSpec>,
    /// Steps its conditions name that no stored event has yet.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expect_steps: Vec<String>,
}

/// A validated monitor.
#[derive(Debug, Clone)]
pub struct Monitor {
    pub name: String,
    pub series: SeriesSpec,
    pub test: Test,
    pub min_events: u64,
    pub actions: Vec<ActionSpec>,
    pub spec: MonitorSpec,
}

/// Validates `spec` (at `field`) against the stored `steps` (`None`: unchecked).
pub(crate) fn compile_monitor(
    spec: &MonitorSpec,
    field: &str,
    steps: Option<&BTreeSet<String>>,
) -> Result<Monitor, Vec<DefinitionError>> {
    let mut errors = Vec::new();
    let mut problem = |key: &str, message: String| {
        errors.push(DefinitionError {
            field: format!("{field}.{key}"),
            line: None,
            column: None,
            message,
        })
    };
    let kind = match spec.metric {
        MetricKind::Rate => "rate",
        MetricKind::Count => "count",
        MetricKind::Mean => "mean",
        MetricKind::Conversion => "conversion",
    };
    let mut needed = |key: &str, value: &Option<Condition>| -> Option<Condition> {
        if value.is_none() {
            problem(key, format!("`metric = \"{kind}\"` needs `{key}`"));
        }
        value.clone()
    };
    let metric = match spec.metric {
        MetricKind::Rate => match (needed("events", &spec.events), needed("of", &spec.of)) {
            (Some(events), Some(of)) => Some(Metric::Rate { events, of }),
            _ => None,
        },
        MetricKind::Count => needed("events", &spec.events).map(|events| Metric::Count { events }),
        MetricKind::Mean => {
            let events = needed("events", &spec.events);
            let property = spec.property.clone().filter(|p| !p.trim().is_empty());
            if property.is_none() {
                problem("property", "`metric = \"mean\"` needs `property`".into());
            }
            events
                .zip(property)
                .map(|(events, property)| Metric::Mean { events, property })
        }
        MetricKind::Conversion => {
            let (from, to) = (needed("from", &spec.from), needed("to", &spec.to));
            let within = match spec.within.as_deref() {
                None => {
                    problem("within", "`metric = \"conversion\"` needs `within`".into());
                    None
                }
                Some(text) => match parse_window(text) {
                    Ok(within) => Some(within),
                    Err(message) => {
                        problem("within", message);
                        None
                    }
                },
            };
            match (from, to, within) {
                (Some(from), Some(to), Some(within)) => {
                    Some(Metric::Conversion { from, to, within })
                }
                _ => None,
            }
        }
    };
    for (key, value) in [
        ("events", &spec.events),
        ("of", &spec.of),
        ("from", &spec.from),
        ("to", &spec.to),
        ("where", &spec.filter),
    ] {
        let (Some(condition), Some(steps)) = (value, steps) else {
            continue;
        };
        let mut named = Vec::new();
        step_names(condition, &mut named);
        for step in named {
            if !steps.contains(&step) && !spec.expect_steps.contains(&step) {
                let hint = closest(&step, steps.iter().map(String::as_str))
                    .map(|known| format!(" (did you mean '{known}'?)"))
                    .unwrap_or_default();
                problem(key, format!("unknown step '{step}'{hint}: no stored event has it; list a step not seen yet under `expect_steps`"));
            }
        }
    }
    let duration =
        |problem: &mut dyn FnMut(&str, String), key: &str, text: &str| match parse_window(text) {
            Ok(micros) => Some(micros),
            Err(message) => {
                problem(key, message);
                None
            }
        };
    let window = duration(&mut problem, "window", &spec.window);
    let every = duration(&mut problem, "every", &spec.every);
    if let (Some(window), Some(every)) = (window, every) {
        if window < every || window % every != 0 {
            problem(
                "window",
                format!(
                    "the window '{}' must be a whole number of reading intervals (every = '{}')",
                    spec.window, spec.every
                ),
            );
        }
        if spec.anomaly.is_some() && (7 * 86_400_000_000i64) % every != 0 {
            problem(
                "every",
                format!(
                    "an anomaly test compares the same time of earlier weeks: a week must be a whole number of intervals, and '{}' is not",
                    spec.every
                ),
            );
        }
    }
    let tests = [
        spec.above.is_some(),
        spec.below.is_some(),
        spec.anomaly.is_some(),
    ];
    let test = match (spec.above, spec.below, &spec.anomaly) {
        _ if tests.iter().filter(|t| **t).count() != 1 => {
            problem(
                "above",
                "give exactly one test: `above = …`, `below = …` or `[monitors.anomaly]`".into(),
            );
            None
        }
        (Some(limit), ..) | (_, Some(limit), _) if !limit.is_finite() => {
            problem("above", format!("{limit} is not a number to compare with"));
            None
        }
        (Some(limit), ..) => Some(Test::Above(limit)),
        (_, Some(limit), _) => Some(Test::Below(limit)),
        (_, _, Some(anomaly)) => {
            if !(anomaly.sd.is_finite() && anomaly.sd > 0.0) {
                problem(
                    "anomaly.sd",
                    format!(
                        "{} is not a positive number of spreads; write e.g. 3",
                        anomaly.sd
                    ),
                );
            }
            if anomaly.weeks < 2 {
                problem(
                    "anomaly.weeks",
                    format!(
                        "{} week(s) cannot give a spread: use 2 or more",
                        anomaly.weeks
                    ),
                );
            }
            Some(Test::Anomaly {
                sd: anomaly.sd,
                weeks: anomaly.weeks,
                direction: match anomaly.direction {
                    AnomalyDirection::Above => Direction::Above,
                    AnomalyDirection::Below => Direction::Below,
                    AnomalyDirection::Both => Direction::Both,
                },
            })
        }
        _ => None,
    };
    for (index, action) in spec.actions.iter().enumerate() {
        if !matches!(action, ActionSpec::Webhook { .. }) {
            problem(
                &format!("actions[{index}].type"),
                "a monitor fires for the business, not for one customer: only `type = \"webhook\"` actions".into(),
            );
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Monitor {
        name: spec.name.clone(),
        series: SeriesSpec {
            metric: metric.expect("no errors: the metric is complete"),
            filter: spec.filter.clone(),
            window: window.expect("no errors"),
            every: every.expect("no errors"),
        },
        test: test.expect("no errors: one test"),
        min_events: spec.min_events,
        actions: spec.actions.clone(),
        spec: spec.clone(),
    })
}

/// The exact step names (no `*` patterns) a condition names.
fn step_names(condition: &Condition, into: &mut Vec<String>) {
    match condition {
        Condition::Step { step } if !step.contains('*') => into.push(step.clone()),
        Condition::All { all: parts } | Condition::Any { any: parts } => {
            for part in parts {
                step_names(part, into);
            }
        }
        Condition::Not { not } => step_names(not, into),
        _ => {}
    }
}
