//! Analyses over a store, as the CLI and the HTTP API ask for them: one request type per analysis (JSON in the API,
//! flags in the CLI, the same fields), a shared [`Scope`] of filters, and errors that say what to change.

use serde::{Deserialize, Serialize};
use waymark_analytics::{
    apply_step_rules, rule_properties, split_at_events, split_instances, Analysis, Breakdown,
    Condition, CountBy, Direction, Exclusion, Filter, Flows, FlowsReport, Friction, FrictionReport,
    Funnel, FunnelMode, FunnelReport, FunnelStep, Overview, OverviewReport, Period, ProcessMap,
    ProcessMapReport, Retention, RetentionReport, StepRule, Variants, VariantsReport,
};
use waymark_model::JourneySet;
use waymark_store::Store;

/// Threads to use: the machine's available parallelism.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |threads| threads.get())
}

/// Runs a prepared analysis over `journeys` on every core; a preparation error is the request's fault.
fn analyse<A: Analysis>(
    journeys: &JourneySet,
    prepared: Result<A, String>,
) -> Result<A::Report, QueryError> {
    let prepared = prepared.map_err(invalid)?;
    Ok(waymark_analytics::run(
        &prepared,
        journeys,
        default_threads(),
    ))
}

/// Runs `analysis` over every journey in `store` (its shared journey view).
pub fn run_on_store<A: Analysis>(store: &Store, analysis: &A) -> A::Report {
    let journeys = store
        .journey_view(&[])
        .expect("a view without property columns reads no payloads");
    waymark_analytics::run(analysis, &journeys, default_threads())
}

/// Why a query could not run.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The request is wrong; the message says what to change.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] waymark_store::StoreError),
}

fn invalid(message: impl Into<String>) -> QueryError {
    QueryError::Invalid(message.into())
}

/// A duration such as `90s`, `30m`, `2h`, `7d` or `1w 2d`, in µs.
pub fn parse_duration(text: &str) -> Result<i64, QueryError> {
    let duration = humantime::parse_duration(text.trim()).map_err(|error| {
        invalid(format!(
            "`{text}` is not a duration ({error}); write e.g. 90s, 30m, 2h or 7d"
        ))
    })?;
    i64::try_from(duration.as_micros()).map_err(|_| invalid(format!("`{text}` is too long")))
}

/// A time: RFC 3339 (`2026-03-01T12:00:00Z`) or a date (`2026-03-01`, midnight UTC), in µs since the epoch.
pub fn parse_time(text: &str) -> Result<i64, QueryError> {
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
    Err(invalid(format!(
        "`{text}` is not a time; write a date (2026-03-01) or an RFC 3339 time (2026-03-01T12:00:00Z)"
    )))
}

/// A property condition written as text: `plan=pro`, `total>=100`, `coupon!=`, `plan~pro` (contains),
/// `coupon?` (is set) or `!coupon` (is not set). Values that read as JSON numbers or booleans compare as such.
pub fn parse_condition(text: &str) -> Result<Condition, QueryError> {
    use waymark_analytics::Op;
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
    Err(invalid(format!(
        "`{text}` is not a condition; write PROPERTY=VALUE (or !=, >, >=, <, <=, ~ for contains), PROPERTY? for set, !PROPERTY for not set"
    )))
}

/// Filters shared by every analysis. JSON: `{"from", "to", "channels", "steps", "where", "split_gap"}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    /// Events at or after this time (date or RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Events before this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
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
    /// Step rules applied before everything else (rename, group, drop; see `waymark_analytics::rules`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub step_rules: Vec<StepRule>,
}

impl Scope {
    fn filter(&self) -> Result<Filter, QueryError> {
        let filter = Filter {
            from_us: self.from.as_deref().map(parse_time).transpose()?,
            to_us: self.to.as_deref().map(parse_time).transpose()?,
            channels: self.channels.clone(),
            steps: self.steps.clone(),
            conditions: self.conditions.clone(),
        };
        if let (Some(from), Some(to)) = (filter.from_us, filter.to_us) {
            if from >= to {
                return Err(invalid(format!(
                    "the time range is empty: from {} is not before to {}",
                    self.from.as_deref().unwrap_or_default(),
                    self.to.as_deref().unwrap_or_default()
                )));
            }
        }
        Ok(filter)
    }

    /// The store's journeys narrowed to this scope, with `properties` (and any the filter reads) loaded. Without
    /// filters this is the store's shared journey view, not a copy.
    pub fn load(
        &self,
        store: &Store,
        mut properties: Vec<String>,
    ) -> Result<std::sync::Arc<JourneySet>, QueryError> {
        let filter = self.filter()?;
        filter.properties(&mut properties);
        rule_properties(&self.step_rules, &mut properties);
        for condition in self.split_before.iter().chain(&self.split_after) {
            condition.properties(&mut properties);
        }
        let gap = self.split_gap.as_deref().map(parse_duration).transpose()?;
        if gap == Some(0) {
            return Err(invalid("split_gap must be longer than zero"));
        }
        let journeys = store.journey_view(&properties)?;
        let journeys = if self.step_rules.is_empty() {
            journeys
        } else {
            std::sync::Arc::new(apply_step_rules(&journeys, &self.step_rules).map_err(invalid)?)
        };
        let journeys = if filter.is_empty() {
            journeys
        } else {
            std::sync::Arc::new(filter.apply(&journeys).map_err(invalid)?)
        };
        let journeys = match gap {
            Some(gap) => std::sync::Arc::new(split_instances(&journeys, gap)),
            None => journeys,
        };
        Ok(
            if self.split_before.is_some() || self.split_after.is_some() {
                std::sync::Arc::new(
                    split_at_events(
                        &journeys,
                        self.split_before.as_ref(),
                        self.split_after.as_ref(),
                    )
                    .map_err(invalid)?,
                )
            } else {
                journeys
            },
        )
    }
}

/// `process-map` options.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessMapRequest {
    #[serde(default)]
    pub filter: Scope,
}

pub fn process_map(
    store: &Store,
    request: &ProcessMapRequest,
) -> Result<ProcessMapReport, QueryError> {
    let journeys = request.filter.load(store, Vec::new())?;
    Ok(waymark_analytics::run(
        &ProcessMap,
        &journeys,
        default_threads(),
    ))
}

/// `variants` options.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariantsRequest {
    /// Keep the K most frequent variants (default: all).
    pub top: Option<usize>,
    #[serde(default)]
    pub filter: Scope,
}

pub fn variants(store: &Store, request: &VariantsRequest) -> Result<VariantsReport, QueryError> {
    let journeys = request.filter.load(store, Vec::new())?;
    let analysis = Variants { top: request.top };
    Ok(waymark_analytics::run(
        &analysis,
        &journeys,
        default_threads(),
    ))
}

/// A funnel step: a step name (`"Checkout"`, `"page:/help*"`) or `{"name", "condition", "within"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
/// "filter"}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunnelRequest {
    pub steps: Vec<StepSpec>,
    /// Conversion window from step 1, inclusive (`7d`).
    #[serde(default = "default_window")]
    pub window: String,
    #[serde(default)]
    pub modes: Vec<FunnelMode>,
    #[serde(default)]
    pub exclusions: Vec<Exclusion>,
    #[serde(default)]
    pub count_by: CountBy,
    #[serde(default)]
    pub breakdown: Option<Breakdown>,
    #[serde(default = "default_drill_down")]
    pub drill_down: usize,
    #[serde(default)]
    pub filter: Scope,
}

fn default_window() -> String {
    "7d".into()
}

fn default_drill_down() -> usize {
    20
}

impl FunnelRequest {
    /// An ordered funnel over step names.
    pub fn new(steps: &[&str], window: &str) -> FunnelRequest {
        FunnelRequest {
            steps: steps
                .iter()
                .map(|step| StepSpec::Name(step.to_string()))
                .collect(),
            window: window.into(),
            modes: Vec::new(),
            exclusions: Vec::new(),
            count_by: CountBy::Customer,
            breakdown: None,
            drill_down: default_drill_down(),
            filter: Scope::default(),
        }
    }

    /// The analysis this request describes.
    pub fn funnel(&self) -> Result<Funnel, QueryError> {
        let steps = self
            .steps
            .iter()
            .map(|spec| {
                Ok(match spec {
                    StepSpec::Name(name) => FunnelStep::named(name),
                    StepSpec::Full {
                        name,
                        condition,
                        within,
                    } => FunnelStep {
                        name: name.clone().unwrap_or_else(|| condition.label()),
                        condition: condition.clone(),
                        within_us: within.as_deref().map(parse_duration).transpose()?,
                    },
                })
            })
            .collect::<Result<Vec<_>, QueryError>>()?;
        Ok(Funnel {
            steps,
            window_us: parse_duration(&self.window)?,
            modes: self.modes.clone(),
            exclusions: self.exclusions.clone(),
            count_by: self.count_by,
            breakdown: self.breakdown.clone(),
            drill_down: self.drill_down,
        })
    }
}

pub fn funnel(store: &Store, request: &FunnelRequest) -> Result<FunnelReport, QueryError> {
    let funnel = request.funnel()?;
    let journeys = request.filter.load(store, funnel.properties())?;
    analyse(&journeys, funnel.prepare(&journeys))
}

/// `flows` options. JSON: `{"anchor", "direction", "depth", "top", "collapse_repeats", "filter"}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowsRequest {
    /// A step name (or `*` pattern), or a condition.
    pub anchor: AnchorSpec,
    #[serde(default)]
    pub direction: Direction,
    #[serde(default = "default_depth")]
    pub depth: usize,
    #[serde(default = "default_top")]
    pub top: usize,
    #[serde(default)]
    pub collapse_repeats: bool,
    #[serde(default)]
    pub filter: Scope,
}

/// A step name or a condition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AnchorSpec {
    Name(String),
    Condition(Condition),
}

fn default_depth() -> usize {
    4
}

fn default_top() -> usize {
    6
}

impl FlowsRequest {
    pub fn new(anchor: &str, direction: Direction) -> FlowsRequest {
        FlowsRequest {
            anchor: AnchorSpec::Name(anchor.into()),
            direction,
            depth: default_depth(),
            top: default_top(),
            collapse_repeats: false,
            filter: Scope::default(),
        }
    }
}

pub fn flows(store: &Store, request: &FlowsRequest) -> Result<FlowsReport, QueryError> {
    let flows = Flows {
        anchor: request.anchor.condition(),
        direction: request.direction,
        depth: request.depth,
        top: request.top,
        collapse_repeats: request.collapse_repeats,
    };
    let journeys = request.filter.load(store, flows.properties())?;
    analyse(&journeys, flows.prepare(&journeys))
}

/// `retention` options. JSON: `{"start", "return", "period", "periods", "filter"}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionRequest {
    /// The step (name, `*` pattern or condition) that puts a customer in a cohort.
    pub start: AnchorSpec,
    /// The step that counts as coming back.
    #[serde(rename = "return")]
    pub returning: AnchorSpec,
    #[serde(default)]
    pub period: Period,
    #[serde(default = "default_periods")]
    pub periods: usize,
    #[serde(default)]
    pub filter: Scope,
}

fn default_periods() -> usize {
    8
}

impl AnchorSpec {
    fn condition(&self) -> Condition {
        match self {
            AnchorSpec::Name(name) => Condition::step(name.clone()),
            AnchorSpec::Condition(condition) => condition.clone(),
        }
    }
}

pub fn retention(store: &Store, request: &RetentionRequest) -> Result<RetentionReport, QueryError> {
    let retention = Retention {
        start: request.start.condition(),
        returning: request.returning.condition(),
        period: request.period,
        periods: request.periods,
    };
    let journeys = request.filter.load(store, retention.properties())?;
    analyse(&journeys, retention.prepare(&journeys))
}

/// `overview` options. JSON: `{"goals", "device_property", "filter"}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverviewRequest {
    /// Goal steps for the goal rate; default: the usual goal names found in the data.
    #[serde(default)]
    pub goals: Vec<String>,
    /// The property naming a customer's device (default [`DEVICE_PROPERTY`]).
    #[serde(default)]
    pub device_property: Option<String>,
    #[serde(default)]
    pub filter: Scope,
}

/// Where Segment sources put the device type: the overview's default device property.
pub const DEVICE_PROPERTY: &str = "context.device.type";

/// The goals given, or the first of [`USUAL_GOALS`] the data has (none when it has none of them).
fn goals_or_usual(goals: &[String], step_names: &[String]) -> Vec<String> {
    if !goals.is_empty() {
        return goals.to_vec();
    }
    USUAL_GOALS
        .iter()
        .find(|goal| step_names.iter().any(|name| name == *goal))
        .map(|goal| vec![goal.to_string()])
        .unwrap_or_default()
}

pub fn overview(store: &Store, request: &OverviewRequest) -> Result<OverviewReport, QueryError> {
    let device = request
        .device_property
        .clone()
        .unwrap_or_else(|| DEVICE_PROPERTY.to_string());
    let goals = goals_or_usual(&request.goals, &store.step_names());
    let overview = Overview {
        device_property: Some(device.clone()),
        goals: goals.into_iter().map(Condition::step).collect(),
    };
    let journeys = request.filter.load(store, vec![device])?;
    analyse(&journeys, overview.prepare(&journeys))
}

/// `friction` options. JSON: `{"goals", "standard_times", "assisted_channels", "jump_window", "repeat_window",
/// "slow_k", "segment_by", "top", "filter"}`; everything is optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrictionRequest {
    /// Goal steps (names or `*` patterns). Default: the first of the usual goal names the data has
    /// (`Order Completed`, `Purchase`, `Signed Up`, …).
    #[serde(default)]
    pub goals: Vec<String>,
    /// Standard times per step: `{"Installation Scheduled": "72h"}`.
    #[serde(default)]
    pub standard_times: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub assisted_channels: Option<Vec<String>>,
    /// Self-service → assisted contact within this window is a channel jump (default `1d`).
    #[serde(default)]
    pub jump_window: Option<String>,
    /// A second contact on the same channel within this window is a repeat contact (default `7d`).
    #[serde(default)]
    pub repeat_window: Option<String>,
    #[serde(default)]
    pub slow_k: Option<f64>,
    #[serde(default)]
    pub segment_by: Option<Vec<String>>,
    #[serde(default)]
    pub top: Option<usize>,
    #[serde(default)]
    pub filter: Scope,
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

impl FrictionRequest {
    fn friction(&self, step_names: &[String]) -> Result<Friction, QueryError> {
        let mut friction = Friction::default();
        let goals = goals_or_usual(&self.goals, step_names);
        if goals.is_empty() {
            return Err(invalid(format!(
                "no goal given and none of the usual goal steps ({}) is in the data; name one with goals / --goal",
                USUAL_GOALS.join(", ")
            )));
        }
        friction.goals = goals.into_iter().map(Condition::step).collect();
        friction.standard_times = self
            .standard_times
            .iter()
            .map(|(step, time)| Ok((step.clone(), parse_duration(time)?)))
            .collect::<Result<_, QueryError>>()?;
        if let Some(channels) = &self.assisted_channels {
            friction.assisted_channels = channels.clone();
        }
        if let Some(window) = &self.jump_window {
            friction.jump_window_us = parse_duration(window)?;
        }
        if let Some(window) = &self.repeat_window {
            friction.repeat_window_us = parse_duration(window)?;
        }
        if let Some(k) = self.slow_k {
            if !(k.is_finite() && k > 0.0) {
                return Err(invalid(
                    "slow_k must be a positive number of standard deviations",
                ));
            }
            friction.slow_k = k;
        }
        if let Some(segments) = &self.segment_by {
            friction.segment_by = segments.clone();
        }
        if let Some(top) = self.top {
            friction.top = top;
        }
        Ok(friction)
    }
}

pub fn friction(store: &Store, request: &FrictionRequest) -> Result<FrictionReport, QueryError> {
    // The goal default depends on the step names only, known without loading any journeys.
    let settings = request.friction(&store.step_names())?;
    let journeys = request.filter.load(store, settings.properties())?;
    analyse(&journeys, settings.prepare(&journeys, default_threads()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_times_read_as_people_write_them() {
        assert_eq!(parse_duration("90s").unwrap(), 90_000_000);
        assert_eq!(parse_duration("7d").unwrap(), 7 * 86_400_000_000);
        assert!(parse_duration("7 parsecs")
            .unwrap_err()
            .to_string()
            .contains("90s"));
        assert_eq!(parse_time("1970-01-02").unwrap(), 86_400_000_000);
        assert_eq!(parse_time("1970-01-01T00:00:01Z").unwrap(), 1_000_000);
        assert!(parse_time("yesterday").is_err());
    }

    #[test]
    fn conditions_read_from_text() {
        use serde_json::json;
        use waymark_analytics::Op;
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
