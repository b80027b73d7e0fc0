//! Analyses as they are asked for: one request type per analysis (the JSON of `POST /v1/analyses/{name}` and the
//! flags of `waymark query {name}`, the same fields), each declared once through [`Query`], plus the [`Scope`] of
//! filters every request has and the parsers for the values people write (`7d`, `2026-03-01`, `plan=pro`).
//!
//! A request is validated in one place, [`Query::spec`], before any journey is read; the engine's registry turns
//! each `Query` into its HTTP route, CLI subcommand, OpenAPI schema and help line.

mod attribution;
mod flows;
mod friction;
mod funnel;
mod moments;
mod overview;
mod process_map;
mod retention;
pub mod text;
mod variants;

pub use attribution::{attribution_text, AttributionRequest};
pub use flows::FlowsRequest;
pub use friction::FrictionRequest;
pub use funnel::{FunnelRequest, StepSpec};
pub use moments::{moments_text, MomentsRequest};
pub use overview::{OverviewRequest, DEVICE_PROPERTY};
pub use process_map::ProcessMapRequest;
pub use retention::RetentionRequest;
pub use variants::VariantsRequest;

use crate::{
    apply_step_rules, collapse_repeats, rule_properties, split_at_events, split_instances,
    AnalyticsError, Condition, Filter, Op, Plan, Runner, StepRule,
};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use waymark_model::JourneySet;

/// What is known about the data before any journey is read: enough for defaults that depend on it (the usual goal
/// names present).
#[derive(Debug, Clone, Copy)]
pub struct DataInfo<'a> {
    /// Every step name in the store.
    pub step_names: &'a [String],
}

/// One analysis as it is asked for. Declared once per analysis; everything else (route, subcommand, schema, help)
/// comes from this declaration.
pub trait Query:
    Serialize + DeserializeOwned + JsonSchema + Default + Clone + Send + Sync + 'static
{
    /// The name in `POST /v1/analyses/{name}` and `waymark query {name}` (kebab-case).
    const NAME: &'static str;
    /// One line saying what the analysis answers.
    const HELP: &'static str;
    /// Arguments after `waymark query {name}` in a typical use.
    const EXAMPLE: &'static str;
    /// CLI flags that are not simply `--field-name` (aliases, nested fields, flags that set two fields).
    const FLAGS: &'static [Flag] = &[];
    type Report: Serialize + JsonSchema + Send + 'static;
    type Spec: Spec<Report = Self::Report>;

    /// The filters of this request.
    fn scope(&self) -> &Scope;
    /// Checks every field and builds the analysis: the one constructor, so a valid spec cannot fail to run.
    fn spec(&self, data: &DataInfo<'_>) -> Result<Self::Spec, AnalyticsError>;
    /// The report as a table for people (`waymark query` without `--json`), at most `rows` rows per list.
    fn text(&self, report: &Self::Report, rows: usize) -> String {
        let _ = rows;
        text::generic(&serde_json::to_value(report).expect("reports serialise"))
    }
}

/// A validated analysis: the property columns it reads, and how it runs over the journeys.
pub trait Spec: Send + Sync {
    type Report;
    /// Property columns to load with the journeys (default: none, the hot columns only).
    fn properties(&self) -> Vec<String> {
        Vec::new()
    }
    /// Binds the analysis to `journeys` (conditions compiled against their dictionaries) and runs its passes.
    fn run(&self, journeys: &JourneySet, runner: &Runner) -> Result<Self::Report, AnalyticsError>;
}

/// A CLI flag that is not derived from a field's name. The value goes to `field` (a dotted path; `a[].b` appends one
/// element `{"b": value}` to the list `a` per value), and `presets` set other fields at the same time.
#[derive(Debug, Clone, Copy)]
pub struct Flag {
    /// The flag without its dashes.
    pub name: &'static str,
    pub field: &'static str,
    /// `(path, JSON value)` pairs set whenever this flag is given.
    pub presets: &'static [(&'static str, &'static str)],
    /// Help text; empty: the field's own description.
    pub help: &'static str,
}

impl Flag {
    /// `--name` for `field`.
    pub const fn alias(name: &'static str, field: &'static str) -> Flag {
        Flag {
            name,
            field,
            presets: &[],
            help: "",
        }
    }
}

/// A duration such as `90s`, `30m`, `2h`, `7d` or `1w 2d`, in µs; `field` names it in the error.
pub fn parse_duration(field: &str, text: &str) -> Result<i64, AnalyticsError> {
    let duration = humantime::parse_duration(text.trim()).map_err(|error| {
        AnalyticsError::field(
            field,
            format!("{field}: `{text}` is not a duration ({error}); write e.g. 90s, 30m, 2h or 7d"),
        )
    })?;
    i64::try_from(duration.as_micros())
        .map_err(|_| AnalyticsError::field(field, format!("{field}: `{text}` is too long")))
}

/// A time: RFC 3339 (`2026-03-01T12:00:00Z`) or a date (`2026-03-01`, midnight UTC), in µs since the epoch.
pub fn parse_time(field: &str, text: &str) -> Result<i64, AnalyticsError> {
    if let Ok(time) = chrono::DateTime::parse_from_rfc3339(text.trim()) {
        return Ok(time.timestamp_micros());
    }
    if let Ok(date) = chrono::NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d") {
        return Ok(date
            .and_hms_opt(0, 0, 0)
            .expect("midnight exists")
            .and_utc()
            .timestamp_micros());
    }
    Err(AnalyticsError::field(field, format!(
        "{field}: `{text}` is not a time; write a date (2026-03-01) or an RFC 3339 time (2026-03-01T12:00:00Z)"
    )))
}

/// A property condition written as text: `plan=pro`, `total>=100`, `coupon!=`, `plan~pro` (contains),
/// `coupon?` (is set) or `!coupon` (is not set). Values that read as JSON numbers or booleans compare as such.
pub fn parse_condition(text: &str) -> Result<Condition, AnalyticsError> {
    let text = text.trim();
    if let Some(name) = text.strip_suffix('?') {
        return Ok(Condition::property(
            name,
            Op::IsNotNull,
            serde_json::Value::Null,
        ));
    }
    if let Some(name) = text.strip_prefix('!') {
        return Ok(Condition::property(
            name,
            Op::IsNull,
            serde_json::Value::Null,
        ));
    }
    for (symbol, op) in [
        ("!~", Op::NotContains),
        ("!=", Op::Ne),
        (">=", Op::Ge),
        ("<=", Op::Le),
        ("=", Op::Eq),
        (">", Op::Gt),
        ("<", Op::Lt),
        ("~", Op::Contains),
    ] {
        if let Some((name, value)) = text.split_once(symbol) {
            let name = name.trim();
            if name.is_empty() {
                break;
            }
            let value = value.trim();
            let value = match serde_json::from_str::<serde_json::Value>(value) {
                Ok(parsed @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_))) => parsed,
                _ => serde_json::Value::String(value.to_string()),
            };
            return Ok(Condition::property(name, op, value));
        }
    }
    Err(AnalyticsError::field("where", format!(
        "`{text}` is not a condition; write PROPERTY=VALUE (or !=, >, >=, <, <=, ~ for contains, !~ for not containing), PROPERTY? for set, !PROPERTY for not set"
    )))
}

/// Filters shared by every analysis. JSON: `{"from", "to", "channels", "steps", "where", "split_gap",
/// "split_before", "split_after", "step_rules", "test_traffic", "identity_steps", "split_platforms",
/// "collapse_repeats"}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    /// Events at or after this time (a date, 2026-03-01, or RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Events before this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Keep only these channels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub channels: Vec<String>,
    /// Keep only these steps (`*` patterns).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<String>,
    /// Conditions every kept event satisfies.
    #[serde(default, rename = "where", skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Split journeys into instances at this much inactivity (`30m`, `2d`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split_gap: Option<String>,
    /// Start a new journey instance at each event matching this (an entry event).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split_before: Option<Condition>,
    /// End the journey instance after each event matching this (a goal event).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split_after: Option<Condition>,
    /// Step rules applied before everything else (rename, group, drop; see `rules`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub step_rules: Vec<StepRule>,
    /// Include test traffic: the simulated customers of scenario runs (ids starting `waymark-sim:`), left out by
    /// default.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub test_traffic: bool,
    /// Keep Segment's identity calls (`identify`, `alias`, `group`) as journey steps. Left out by default: they
    /// say who the customer is, not what the customer did.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub identity_steps: bool,
    /// Keep a web page and the app screen of the same name apart (`page:X`, `screen:X`). By default they are one
    /// step, `page:X`: the same page on two platforms (split by platform with a breakdown instead).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub split_platforms: bool,
    /// Collapse repeats: an event of the same step as the one before it in its journey (after the step rules and
    /// filters) is left out, so `A A B` reads `A B` — pm4py's and Disco's "merge self-loops".
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub collapse_repeats: bool,
}

/// A [`Scope`] checked: the event filter, the split gap, and every property column the scope reads.
#[derive(Debug, Clone)]
pub struct ScopePlan {
    filter: Filter,
    gap_us: Option<i64>,
    split_before: Option<Condition>,
    split_after: Option<Condition>,
    step_rules: Vec<StepRule>,
    collapse_repeats: bool,
    /// Property columns the scope itself reads (conditions, rule placeholders, split conditions).
    pub properties: Vec<String>,
}

impl Scope {
    /// Checks the scope's values (times, gap) without reading any journey.
    pub fn plan(&self) -> Result<ScopePlan, AnalyticsError> {
        let filter = Filter {
            from_us: self
                .from
                .as_deref()
                .map(|text| parse_time("filter.from", text))
                .transpose()?,
            to_us: self
                .to
                .as_deref()
                .map(|text| parse_time("filter.to", text))
                .transpose()?,
            channels: self.channels.clone(),
            steps: self.steps.clone(),
            conditions: self.conditions.clone(),
        };
        if let (Some(from), Some(to)) = (filter.from_us, filter.to_us) {
            if from >= to {
                return Err(AnalyticsError::field(
                    "filter.to",
                    format!(
                        "the time range is empty: from {} is not before to {}",
                        self.from.as_deref().unwrap_or_default(),
                        self.to.as_deref().unwrap_or_default()
                    ),
                ));
            }
        }
        let gap_us = self
            .split_gap
            .as_deref()
            .map(|text| parse_duration("filter.split_gap", text))
            .transpose()?;
        if gap_us.is_some_and(|gap| gap <= 0) {
            return Err(AnalyticsError::field(
                "filter.split_gap",
                "split_gap must be longer than zero",
            ));
        }
        let mut properties = Vec::new();
        filter.properties(&mut properties);
        rule_properties(&self.step_rules, &mut properties);
        for condition in self.split_before.iter().chain(&self.split_after) {
            condition.properties(&mut properties);
        }
        Ok(ScopePlan {
            filter,
            gap_us,
            split_before: self.split_before.clone(),
            split_after: self.split_after.clone(),
            step_rules: self.step_rules.clone(),
            collapse_repeats: self.collapse_repeats,
            properties,
        })
    }
}

impl ScopePlan {
    /// `journeys` (loaded with [`ScopePlan::properties`] and the analysis's own) narrowed and split as the scope
    /// says: step rules, then filters, then collapsed repeats, then instance splits. Without any, `journeys` itself, not a copy.
    pub fn apply(&self, journeys: Arc<JourneySet>) -> Result<Arc<JourneySet>, AnalyticsError> {
        let mut journeys = journeys;
        if !self.step_rules.is_empty() {
            journeys = Arc::new(apply_step_rules(&journeys, &self.step_rules)?);
        }
        if !self.filter.is_empty() {
            journeys = Arc::new(self.filter.apply(&journeys)?);
        }
        if self.collapse_repeats {
            journeys = Arc::new(collapse_repeats(&journeys));
        }
        if let Some(gap) = self.gap_us {
            journeys = Arc::new(split_instances(&journeys, gap));
        }
        if self.split_before.is_some() || self.split_after.is_some() {
            journeys = Arc::new(split_at_events(
                &journeys,
                self.split_before.as_ref(),
                self.split_after.as_ref(),
            )?);
        }
        Ok(journeys)
    }
}

/// A step name (or `*` pattern), or a condition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum AnchorSpec {
    Name(String),
    Condition(Condition),
}

impl AnchorSpec {
    pub fn condition(&self) -> Condition {
        match self {
            AnchorSpec::Name(name) => Condition::step(name.clone()),
            AnchorSpec::Condition(condition) => condition.clone(),
        }
    }
}

impl Default for AnchorSpec {
    /// No anchor: a step name that is empty, which validation rejects.
    fn default() -> AnchorSpec {
        AnchorSpec::Name(String::new())
    }
}

/// Names that usually mean "the customer got what they came for", tried in order when no goal is given.
pub const USUAL_GOALS: [&str; 10] = [
    "Order Completed",
    "Purchase",
    "Purchased",
    "Checkout Completed",
    "Payment Completed",
    "Signed Up",
    "Sign Up Completed",
    "Subscription Started",
    "Trial Started",
    "Converted",
];

/// The goals given, or the first of [`USUAL_GOALS`] the data has (none when it has none of them).
pub fn goals_or_usual(goals: &[String], step_names: &[String]) -> Vec<String> {
    if !goals.is_empty() {
        return goals.to_vec();
    }
    USUAL_GOALS
        .iter()
        .find(|goal| step_names.iter().any(|name| name == *goal))
        .map(|goal| vec![goal.to_string()])
        .unwrap_or_default()
}

/// The goals given or the usual one the data has, or the error that says to name one (for requests that need a
/// goal).
pub fn required_goals(
    goals: &[String],
    step_names: &[String],
) -> Result<Vec<String>, AnalyticsError> {
    let goals = goals_or_usual(goals, step_names);
    if goals.is_empty() {
        return Err(AnalyticsError::field(
            "goals",
            format!(
                "no goal given and none of the usual goal steps ({}) is in the data; name one with goals / --goal",
                USUAL_GOALS.join(", ")
            ),
        ));
    }
    Ok(goals)
}

/// A spec that is one prepared [`Plan`] away from its report: the common case, so each analysis only says how to
/// prepare itself.
pub(crate) fn run_plan<P: Plan>(
    prepared: Result<P, AnalyticsError>,
    journeys: &JourneySet,
    runner: &Runner,
) -> Result<P::Report, AnalyticsError> {
    Ok(prepared?.execute(journeys, runner))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations_and_times_read_as_people_write_them() {
        assert_eq!(parse_duration("window", "90s").unwrap(), 90_000_000);
        assert_eq!(parse_duration("window", "7d").unwrap(), 7 * 86_400_000_000);
        let error = parse_duration("window", "7 parsecs")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("90s") && error.starts_with("window:"),
            "{error}"
        );
        assert_eq!(parse_time("from", "1970-01-02").unwrap(), 86_400_000_000);
        assert_eq!(
            parse_time("from", "1970-01-01T00:00:01Z").unwrap(),
            1_000_000
        );
        assert!(parse_time("from", "yesterday").is_err());
    }

    #[test]
    fn conditions_read_from_text() {
        assert_eq!(
            parse_condition("plan=pro").unwrap(),
            Condition::property("plan", Op::Eq, json!("pro"))
        );
        assert_eq!(
            parse_condition("total >= 100").unwrap(),
            Condition::property("total", Op::Ge, json!(100))
        );
        assert_eq!(
            parse_condition("coupon?").unwrap(),
            Condition::property("coupon", Op::IsNotNull, json!(null))
        );
        assert!(parse_condition("=x").is_err());
    }
}
