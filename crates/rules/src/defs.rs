//! Definitions: segments, triggers, stages and settings, read from TOML (the data directory's `rules.toml`) or
//! JSON (the API), validated all at once. Every problem is reported with the field it is in
//! (`triggers[payment-rescue].condition`) and, for a condition, the line and column in the expression; a set
//! with any problem is refused whole, so nothing is half-applied.

use crate::expr::{closest, parse_window, Condition, Vocabulary};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;

/// The definitions as written (TOML or JSON).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RulesFile {
    #[serde(default)]
    pub settings: Settings,
    /// Journey stages, in order: `current_stage` is the stage of the latest step that belongs to one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<StageSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub segments: Vec<SegmentSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub triggers: Vec<TriggerSpec>,
    /// KPI monitors: a metric over a sliding window with a threshold or an anomaly test.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub monitors: Vec<crate::monitors::MonitorSpec>,
}

/// Conventions every business sets for itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// The IANA time zone of customers whose traits name none, and of global caps' calendar days.
    pub timezone: String,
    /// The customer trait holding the customer's IANA time zone (from `identify`).
    pub timezone_trait: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            timezone: "UTC".into(),
            timezone_trait: "timezone".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StageSpec {
    pub name: String,
    /// Step names; a trailing `*` matches every step starting with what precedes it (`page:/checkout*`).
    pub steps: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SegmentSpec {
    /// Lower-case letters, digits and `-`/`_`, used in URLs and `in_segment("…")`.
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// A CEL condition over the customer and their journey (no `event`: membership is the customer's state).
    pub condition: String,
    /// Steps the condition names that no stored event has yet.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expect_steps: Vec<String>,
}

/// When a trigger fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum On {
    /// On an event (of `step`, if given) for which `condition` holds.
    Event,
    /// When `missing` does not follow `after` within `within`.
    Absence,
    /// When the customer enters `segment`.
    SegmentEntry,
    /// When `model`'s score of the customer rises to `above` or higher.
    Score,
}

/// Whether a customer can set a trigger off again.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Reentry {
    /// At most once per customer and trigger version.
    Once,
    /// Again only after the customer left: the condition was false on a later event of the trigger's step, the
    /// customer left the segment, the score fell below the threshold, or the missing step happened.
    #[default]
    AfterExit,
    /// Every time it matches.
    EveryTime,
}

/// What happens to an instance due in quiet hours.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum QuietPolicy {
    /// Delivered when the quiet hours end.
    #[default]
    Delay,
    /// Not delivered (logged as quiet).
    Skip,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerSpec {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    pub on: On,
    /// `on = "event"`: only events of this step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// A CEL condition; for `event` and `absence` (checked at the `after` event) it can read `event`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// `on = "absence"`: the step that starts the wait, the step whose absence fires, and for how long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within: Option<String>,
    /// `on = "segment_entry"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<String>,
    /// `on = "score"`: the model and the threshold the score rises to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub above: Option<f64>,
    /// Higher first when several triggers fire at once.
    #[serde(default)]
    pub priority: i32,
    #[serde(default)]
    pub reentry: Reentry,
    /// At most this many instances per customer per calendar day in the customer's time zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cap_per_customer_per_day: Option<i64>,
    /// At most this many instances per calendar day (in the settings' time zone), all customers together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cap_global_per_day: Option<i64>,
    /// `"21:00-08:00"`, in the customer's time zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiet_hours: Option<String>,
    #[serde(default)]
    pub quiet: QuietPolicy,
    /// RFC 3339 times: the trigger fires from `starts` and before `ends`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends: Option<String>,
    /// The share of customers (0 ≤ share < 1) kept from the actions, by a stable hash of trigger and customer,
    /// to measure the trigger's lift.
    #[serde(default)]
    pub holdout: f64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expect_steps: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<ActionSpec>,
}

/// What a fired instance does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ActionSpec {
    /// A POST signed in the Standard Webhooks format.
    Webhook {
        url: String,
        /// The signing secret (`whsec_` + base64), or the environment variable holding it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        secret: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        secret_env: Option<String>,
    },
    /// An event written into the customer's journey (so the intervention is on every map and funnel).
    Event {
        name: String,
        #[serde(default = "default_action_channel")]
        channel: String,
        #[serde(default)]
        properties: serde_json::Map<String, serde_json::Value>,
    },
    /// Traits set on the customer (an `identify` in their journey).
    Traits {
        traits: serde_json::Map<String, serde_json::Value>,
    },
}

fn default_action_channel() -> String {
    "other".into()
}

/// One problem of a definition set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct DefinitionError {
    /// `triggers[payment-rescue].condition`.
    pub field: String,
    /// In a condition: 1-based line and column in the expression.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
    pub message: String,
}

impl fmt::Display for DefinitionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(line), Some(column)) => {
                write!(f, "{} at {line}:{column}: {}", self.field, self.message)
            }
            _ => write!(f, "{}: {}", self.field, self.message),
        }
    }
}

/// Every problem of a refused set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefinitionErrors(pub Vec<DefinitionError>);

impl fmt::Display for DefinitionErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, error) in self.0.iter().enumerate() {
            if index > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for DefinitionErrors {}

/// A validated, compiled segment.
#[derive(Debug)]
pub struct Segment {
    pub name: String,
    pub description: String,
    pub condition: Condition,
}

/// A validated trigger's firing rule.
#[derive(Debug, Clone, PartialEq)]
pub enum When {
    Event {
        step: Option<String>,
    },
    Absence {
        after: String,
        missing: String,
        within: i64,
    },
    SegmentEntry {
        segment: String,
    },
    Score {
        model: String,
        above: f64,
    },
}

/// A validated, compiled trigger.
#[derive(Debug)]
pub struct Trigger {
    pub name: String,
    /// Bumped by the caller whenever the trigger's definition changes.
    pub version: u32,
    pub when: When,
    pub condition: Option<Condition>,
    pub priority: i32,
    pub reentry: Reentry,
    pub cap_per_customer_per_day: Option<u32>,
    pub cap_global_per_day: Option<u32>,
    /// Minutes after local midnight: (start, end); `end < start` spans midnight.
    pub quiet_hours: Option<(u32, u32)>,
    pub quiet: QuietPolicy,
    pub starts: Option<i64>,
    pub ends: Option<i64>,
    pub holdout: f64,
    pub actions: Vec<ActionSpec>,
    /// The definition as written.
    pub spec: TriggerSpec,
}

/// A stage with its step patterns.
#[derive(Debug, Clone)]
pub struct Stage {
    pub name: String,
    patterns: Vec<String>,
}

impl Stage {
    /// A stage of `patterns` (step names, `*` matching any run of characters).
    pub fn new(name: impl Into<String>, patterns: Vec<String>) -> Stage {
        Stage {
            name: name.into(),
            patterns,
        }
    }

    pub fn matches(&self, step: &str) -> bool {
        self.patterns
            .iter()
            .any(|pattern| waymark_analytics::condition::wildcard_match(pattern, step))
    }
}

/// A validated definition set.
#[derive(Debug)]
pub struct RuleSet {
    pub settings: Settings,
    pub timezone: chrono_tz::Tz,
    pub stages: Vec<Stage>,
    pub segments: Vec<Segment>,
    pub triggers: Vec<Trigger>,
    pub monitors: Vec<crate::monitors::Monitor>,
    pub file: RulesFile,
}

/// What definitions are checked against.
#[derive(Debug, Clone, Default)]
pub struct Known {
    /// Steps stored so far; `None` skips the check.
    pub steps: Option<BTreeSet<String>>,
    /// Saved models; `None` skips the check.
    pub models: Option<BTreeSet<String>>,
}

/// A definitions file's TOML (`file` names it in the error: `rules.toml`, `catalogue.toml`); a syntax or type
/// error names its line and column.
pub(crate) fn parse_toml<T: serde::de::DeserializeOwned>(
    text: &str,
    file: &str,
) -> Result<T, DefinitionErrors> {
    toml::from_str(text).map_err(|error| {
        let (line, column) = error
            .span()
            .map(|span| line_column(text, span.start))
            .map(|(l, c)| (Some(l), Some(c)))
            .unwrap_or((None, None));
        DefinitionErrors(vec![DefinitionError {
            field: file.into(),
            line,
            column,
            message: error.message().to_string(),
        }])
    })
}

/// Definitions as the API sends them (JSON); a syntax or type error names its line and column.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(
    text: &[u8],
) -> Result<T, DefinitionErrors> {
    serde_json::from_slice(text).map_err(|error| {
        DefinitionErrors(vec![DefinitionError {
            field: "body".into(),
            line: Some(error.line()),
            column: Some(error.column()),
            message: error.to_string(),
        }])
    })
}

impl RulesFile {
    /// Parses TOML; a syntax or type error names its line and column.
    pub fn from_toml(text: &str) -> Result<RulesFile, DefinitionErrors> {
        parse_toml(text, "rules.toml")
    }

    /// Parses JSON (the API's form); a syntax or type error names its line and column.
    pub fn from_json(text: &[u8]) -> Result<RulesFile, DefinitionErrors> {
        parse_json(text)
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }

    /// Validates and compiles the set; `versions(name)` gives each trigger's version.
    pub fn compile(
        &self,
        known: &Known,
        versions: &dyn Fn(&TriggerSpec) -> u32,
    ) -> Result<RuleSet, DefinitionErrors> {
        let mut errors = Vec::new();
        let mut problem = |field: String, message: String| {
            errors.push(DefinitionError {
                field,
                line: None,
                column: None,
                message,
            })
        };
        let timezone = match self.settings.timezone.parse::<chrono_tz::Tz>() {
            Ok(tz) => tz,
            Err(_) => {
                problem(
                    "settings.timezone".into(),
                    format!(
                        "'{}' is not an IANA time zone; write e.g. \"Europe/Paris\" or \"UTC\"",
                        self.settings.timezone
                    ),
                );
                chrono_tz::UTC
            }
        };
        let mut stages = Vec::new();
        let mut names = BTreeSet::new();
        for (index, stage) in self.stages.iter().enumerate() {
            let field = format!("stages[{index}]");
            if stage.name.trim().is_empty() {
                problem(format!("{field}.name"), "a stage needs a name".into());
            } else if !names.insert(stage.name.clone()) {
                problem(
                    format!("{field}.name"),
                    format!("stage '{}' is defined twice", stage.name),
                );
            }
            if stage.steps.is_empty() {
                problem(
                    format!("{field}.steps"),
                    "a stage needs at least one step".into(),
                );
            }
            stages.push(Stage {
                name: stage.name.clone(),
                patterns: stage.steps.clone(),
            });
        }
        let mut problems: Vec<DefinitionError> = Vec::new();
        let mut segments = Vec::new();
        let mut segment_names = BTreeSet::new();
        for (index, spec) in self.segments.iter().enumerate() {
            let field = label("segments", index, &spec.name);
            if let Some(message) = name_problem(&spec.name) {
                problems.push(plain(format!("{field}.name"), message));
            } else if segment_names.contains(&spec.name) {
                problems.push(plain(
                    format!("{field}.name"),
                    format!("segment '{}' is defined twice", spec.name),
                ));
            }
            let vocabulary = Vocabulary {
                steps: with_expected(&known.steps, &spec.expect_steps),
                models: known.models.clone(),
                segments: segment_names.clone(),
                event: false,
                attributes: None,
            };
            match Condition::compile(&spec.condition, &vocabulary) {
                Ok(condition) => segments.push(Segment {
                    name: spec.name.clone(),
                    description: spec.description.clone(),
                    condition,
                }),
                Err(error) => problems.push(DefinitionError {
                    field: format!("{field}.condition"),
                    line: Some(error.line),
                    column: Some(error.column),
                    message: error.message,
                }),
            }
            segment_names.insert(spec.name.clone());
        }
        let mut triggers = Vec::new();
        let mut trigger_names = BTreeSet::new();
        for (index, spec) in self.triggers.iter().enumerate() {
            let field = label("triggers", index, &spec.name);
            if let Some(message) = name_problem(&spec.name) {
                problems.push(plain(format!("{field}.name"), message));
            } else if !trigger_names.insert(spec.name.clone()) {
                problems.push(plain(
                    format!("{field}.name"),
                    format!("trigger '{}' is defined twice", spec.name),
                ));
            }
            match compile_trigger(spec, &field, known, &segment_names, versions(spec)) {
                Ok(trigger) => triggers.push(trigger),
                Err(mut more) => problems.append(&mut more),
            }
        }
        let mut monitors = Vec::new();
        let mut monitor_names = BTreeSet::new();
        for (index, spec) in self.monitors.iter().enumerate() {
            let field = label("monitors", index, &spec.name);
            if let Some(message) = name_problem(&spec.name) {
                problems.push(plain(format!("{field}.name"), message));
            } else if !monitor_names.insert(spec.name.clone()) {
                problems.push(plain(
                    format!("{field}.name"),
                    format!("monitor '{}' is defined twice", spec.name),
                ));
            }
            match crate::monitors::compile_monitor(spec, &field, known.steps.as_ref()) {
                Ok(monitor) => monitors.push(monitor),
                Err(mut more) => problems.append(&mut more),
            }
        }
        errors.append(&mut problems);
        if !errors.is_empty() {
            return Err(DefinitionErrors(errors));
        }
        Ok(RuleSet {
            settings: self.settings.clone(),
            timezone,
            stages,
            segments,
            triggers,
            monitors,
            file: self.clone(),
        })
    }
}

fn label(kind: &str, index: usize, name: &str) -> String {
    if name.trim().is_empty() {
        format!("{kind}[{index}]")
    } else {
        format!("{kind}[{name}]")
    }
}

fn plain(field: String, message: String) -> DefinitionError {
    DefinitionError {
        field,
        line: None,
        column: None,
        message,
    }
}

fn name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("a name is needed (lower-case letters, digits, '-' and '_')".into());
    }
    if name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    {
        return Some(format!(
            "'{name}' is not a name: use up to 64 lower-case letters, digits, '-' and '_'"
        ));
    }
    None
}

pub(crate) fn with_expected(
    steps: &Option<BTreeSet<String>>,
    expected: &[String],
) -> Option<BTreeSet<String>> {
    steps.as_ref().map(|steps| {
        let mut steps = steps.clone();
        steps.extend(expected.iter().cloned());
        steps
    })
}

fn compile_trigger(
    spec: &TriggerSpec,
    field: &str,
    known: &Known,
    segments: &BTreeSet<String>,
    version: u32,
) -> Result<Trigger, Vec<DefinitionError>> {
    let mut errors = Vec::new();
    let steps = with_expected(&known.steps, &spec.expect_steps);
    let check_step = |errors: &mut Vec<DefinitionError>, key: &str, step: &str| {
        if let Some(steps) = &steps {
            if !steps.contains(step) {
                let hint = closest(step, steps.iter().map(String::as_str))
                    .map(|known| format!(" (did you mean '{known}'?)"))
                    .unwrap_or_default();
                errors.push(plain(
                    format!("{field}.{key}"),
                    format!("unknown step '{step}'{hint}: no stored event has it; list a step not seen yet under `expect_steps`"),
                ));
            }
        }
    };
    let require = |errors: &mut Vec<DefinitionError>, key: &str, value: &Option<String>| match value
        .as_deref()
        .map(str::trim)
    {
        Some(value) if !value.is_empty() => Some(value.to_string()),
        _ => {
            errors.push(plain(
                format!("{field}.{key}"),
                format!("`on = \"{}\"` needs `{key}`", on_name(spec.on)),
            ));
            None
        }
    };
    let forbid = |errors: &mut Vec<DefinitionError>, key: &str, present: bool| {
        if present {
            errors.push(plain(
                format!("{field}.{key}"),
                format!("`{key}` has no meaning for `on = \"{}\"`", on_name(spec.on)),
            ));
        }
    };
    let when = match spec.on {
        On::Event => {
            forbid(&mut errors, "after", spec.after.is_some());
            forbid(&mut errors, "missing", spec.missing.is_some());
            forbid(&mut errors, "within", spec.within.is_some());
            forbid(&mut errors, "segment", spec.segment.is_some());
            forbid(&mut errors, "model", spec.model.is_some());
            forbid(&mut errors, "above", spec.above.is_some());
            if let Some(step) = &spec.step {
                check_step(&mut errors, "step", step);
            }
            When::Event {
                step: spec.step.clone(),
            }
        }
        On::Absence => {
            forbid(&mut errors, "step", spec.step.is_some());
            forbid(&mut errors, "segment", spec.segment.is_some());
            forbid(&mut errors, "model", spec.model.is_some());
            forbid(&mut errors, "above", spec.above.is_some());
            let after = require(&mut errors, "after", &spec.after);
            let missing = require(&mut errors, "missing", &spec.missing);
            let within = require(&mut errors, "within", &spec.within);
            if let Some(after) = &after {
                check_step(&mut errors, "after", after);
            }
            if let Some(missing) = &missing {
                check_step(&mut errors, "missing", missing);
            }
            let within = within.and_then(|text| match parse_window(&text) {
                Ok(micros) => Some(micros),
                Err(message) => {
                    errors.push(plain(format!("{field}.within"), message));
                    None
                }
            });
            match (after, missing, within) {
                (Some(after), Some(missing), Some(within)) => When::Absence {
                    after,
                    missing,
                    within,
                },
                _ => When::Event { step: None },
            }
        }
        On::SegmentEntry => {
            for (key, present) in [
                ("step", spec.step.is_some()),
                ("after", spec.after.is_some()),
                ("missing", spec.missing.is_some()),
                ("within", spec.within.is_some()),
                ("model", spec.model.is_some()),
                ("above", spec.above.is_some()),
            ] {
                forbid(&mut errors, key, present);
            }
            let segment = require(&mut errors, "segment", &spec.segment).unwrap_or_default();
            if !segment.is_empty() && !segments.contains(&segment) {
                let hint = closest(&segment, segments.iter().map(String::as_str))
                    .map(|known| format!(" (did you mean '{known}'?)"))
                    .unwrap_or_default();
                errors.push(plain(
                    format!("{field}.segment"),
                    format!("unknown segment '{segment}'{hint}"),
                ));
            }
            When::SegmentEntry { segment }
        }
        On::Score => {
            for (key, present) in [
                ("step", spec.step.is_some()),
                ("after", spec.after.is_some()),
                ("missing", spec.missing.is_some()),
                ("within", spec.within.is_some()),
                ("segment", spec.segment.is_some()),
            ] {
                forbid(&mut errors, key, present);
            }
            let model = require(&mut errors, "model", &spec.model).unwrap_or_default();
            if let (false, Some(models)) = (model.is_empty(), &known.models) {
                if !models.contains(&model) {
                    errors.push(plain(
                        format!("{field}.model"),
                        format!(
                            "unknown model '{model}'; saved models: {}",
                            models.iter().cloned().collect::<Vec<_>>().join(", ")
                        ),
                    ));
                }
            }
            let above = match spec.above {
                Some(above) if above.is_finite() => above,
                Some(above) => {
                    errors.push(plain(
                        format!("{field}.above"),
                        format!("{above} is not a threshold"),
                    ));
                    0.0
                }
                None => {
                    errors.push(plain(
                        format!("{field}.above"),
                        "`on = \"score\"` needs `above`, the threshold the score rises to".into(),
                    ));
                    0.0
                }
            };
            When::Score { model, above }
        }
    };
    let condition = match &spec.condition {
        None => None,
        Some(source) => {
            let vocabulary = Vocabulary {
                steps: steps.clone(),
                models: known.models.clone(),
                segments: segments.clone(),
                event: matches!(spec.on, On::Event | On::Absence),
                attributes: None,
            };
            match Condition::compile(source, &vocabulary) {
                Ok(condition) => Some(condition),
                Err(error) => {
                    errors.push(DefinitionError {
                        field: format!("{field}.condition"),
                        line: Some(error.line),
                        column: Some(error.column),
                        message: error.message,
                    });
                    None
                }
            }
        }
    };
    let cap = |errors: &mut Vec<DefinitionError>, key: &str, value: Option<i64>| match value {
        None => None,
        Some(value) if value >= 1 && value <= u32::MAX as i64 => Some(value as u32),
        Some(value) => {
            errors.push(plain(
                format!("{field}.{key}"),
                format!("{value} is not a cap: write a whole number of 1 or more, or leave it out for no cap"),
            ));
            None
        }
    };
    let cap_per_customer_per_day = cap(
        &mut errors,
        "cap_per_customer_per_day",
        spec.cap_per_customer_per_day,
    );
    let cap_global_per_day = cap(&mut errors, "cap_global_per_day", spec.cap_global_per_day);
    let quiet_hours = match &spec.quiet_hours {
        None => None,
        Some(text) => match parse_quiet_hours(text) {
            Ok(hours) => Some(hours),
            Err(message) => {
                errors.push(plain(format!("{field}.quiet_hours"), message));
                None
            }
        },
    };
    let time = |errors: &mut Vec<DefinitionError>, key: &str, value: &Option<String>| {
        value.as_ref().and_then(
            |text| match chrono::DateTime::parse_from_rfc3339(text.trim()) {
                Ok(time) => Some(time.timestamp_micros()),
                Err(_) => {
                    errors.push(plain(
                        format!("{field}.{key}"),
                        format!(
                            "'{text}' is not an RFC 3339 time; write e.g. 2027-01-31T00:00:00Z"
                        ),
                    ));
                    None
                }
            },
        )
    };
    let starts = time(&mut errors, "starts", &spec.starts);
    let ends = time(&mut errors, "ends", &spec.ends);
    if let (Some(starts), Some(ends)) = (starts, ends) {
        if ends <= starts {
            errors.push(plain(
                format!("{field}.ends"),
                "`ends` is not after `starts`".into(),
            ));
        }
    }
    if !(0.0..1.0).contains(&spec.holdout) {
        errors.push(plain(
            format!("{field}.holdout"),
            format!(
                "{} is not a share: write a number from 0 (no holdout) to below 1, e.g. 0.1",
                spec.holdout
            ),
        ));
    }
    for (index, action) in spec.actions.iter().enumerate() {
        let key = format!("{field}.actions[{index}]");
        match action {
            ActionSpec::Webhook {
                url,
                secret,
                secret_env,
            } => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    errors.push(plain(
                        format!("{key}.url"),
                        format!("'{url}' is not an http:// or https:// URL"),
                    ));
                }
                if secret.is_none() && secret_env.is_none() {
                    errors.push(plain(
                        format!("{key}.secret"),
                        "a webhook is signed: give `secret` (`whsec_` + base64) or `secret_env` (the variable holding it)".into(),
                    ));
                }
                if secret.is_some() && secret_env.is_some() {
                    errors.push(plain(
                        format!("{key}.secret"),
                        "give `secret` or `secret_env`, not both".into(),
                    ));
                }
                if let Some(secret) = secret {
                    if !secret.starts_with("whsec_") || secret.len() < 16 {
                        errors.push(plain(
                            format!("{key}.secret"),
                            "a Standard Webhooks secret is `whsec_` followed by base64 (24 bytes or more)".into(),
                        ));
                    }
                }
            }
            ActionSpec::Event { name, .. } => {
                if name.trim().is_empty() {
                    errors.push(plain(
                        format!("{key}.name"),
                        "the event needs a name".into(),
                    ));
                }
            }
            ActionSpec::Traits { traits } => {
                if traits.is_empty() {
                    errors.push(plain(format!("{key}.traits"), "no traits to set".into()));
                }
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Trigger {
        name: spec.name.clone(),
        version,
        when,
        condition,
        priority: spec.priority,
        reentry: spec.reentry,
        cap_per_customer_per_day,
        cap_global_per_day,
        quiet_hours,
        quiet: spec.quiet,
        starts,
        ends,
        holdout: spec.holdout,
        actions: spec.actions.clone(),
        spec: spec.clone(),
    })
}

fn on_name(on: On) -> &'static str {
    match on {
        On::Event => "event",
        On::Absence => "absence",
        On::SegmentEntry => "segment_entry",
        On::Score => "score",
    }
}

/// `"21:00-08:00"` → minutes after midnight.
fn parse_quiet_hours(text: &str) -> Result<(u32, u32), String> {
    let bad = || format!("'{text}' is not a time range; write e.g. \"21:00-08:00\"");
    let (start, end) = text.split_once('-').ok_or_else(bad)?;
    let minutes = |part: &str| -> Result<u32, String> {
        let (hours, minutes) = part.trim().split_once(':').ok_or_else(bad)?;
        let hours: u32 = hours.parse().map_err(|_| bad())?;
        let minutes: u32 = minutes.parse().map_err(|_| bad())?;
        if hours > 23 || minutes > 59 {
            return Err(bad());
        }
        Ok(hours * 60 + minutes)
    };
    let (start, end) = (minutes(start)?, minutes(end)?);
    if start == end {
        return Err(format!("'{text}' is an empty range"));
    }
    Ok((start, end))
}

/// Where in the TOML `text` `error` is: the line and column of its field's value (for a condition, of the
/// expression's own position inside the string), else of the nearest enclosing entry that exists. `None` when
/// the text does not parse or the field names nothing in it.
pub fn position_in_toml(text: &str, error: &DefinitionError) -> Option<(usize, usize)> {
    // A parse error of the file itself (`rules.toml`, `catalogue.toml`) has its position already.
    if error.field.ends_with(".toml") {
        return error.line.zip(error.column);
    }
    let document = toml_edit::Document::parse(text).ok()?;
    let mut item: &toml_edit::Item = document.as_item();
    let mut span = None;
    let mut complete = true;
    for part in field_path(&error.field) {
        let next = match part {
            PathPart::Key(key) => item.get(key),
            PathPart::Index(index) => item.get(index),
            PathPart::Named(name) => item.as_array_of_tables().and_then(|tables| {
                tables
                    .iter()
                    .position(|t| {
                        // Definitions are named by `name`, catalogue items by `id`.
                        t.get("name")
                            .or_else(|| t.get("id"))
                            .and_then(|n| n.as_str())
                            == Some(name)
                    })
                    .and_then(|index| item.get(index))
            }),
        };
        let Some(found) = next else {
            complete = false;
            break;
        };
        // A table's own span is its header line; a value's, the value.
        span = found
            .span()
            .or_else(|| found.as_table().and_then(|t| t.span()))
            .or(span);
        item = found;
    }
    let span = span?;
    let (line, column) = line_column(text, span.start);
    match (complete, item.as_str(), error.line.zip(error.column)) {
        (true, Some(_), Some(at)) => Some(position_in_string(&text[span], (line, column), at)),
        _ => Some((line, column)),
    }
}

enum PathPart<'a> {
    Key(&'a str),
    Index(usize),
    Named(&'a str),
}

/// `triggers[rescue].actions[0].url` → triggers, Named(rescue), actions, Index(0), url.
fn field_path(field: &str) -> Vec<PathPart<'_>> {
    let mut parts = Vec::new();
    for piece in field.split('.') {
        let (key, mut rest) = piece.split_once('[').unwrap_or((piece, ""));
        if !key.is_empty() {
            parts.push(PathPart::Key(key));
        }
        while let Some((inside, after)) = rest.split_once(']') {
            parts.push(match inside.parse::<usize>() {
                Ok(index) => PathPart::Index(index),
                Err(_) => PathPart::Named(inside),
            });
            rest = after.strip_prefix('[').unwrap_or(after);
        }
    }
    parts
}

/// The file position of the expression's `at` (line, column) inside a TOML string written as `raw`, which starts
/// at `start` in the file: the opening quotes skipped, each escape sequence counted as the one character it is.
fn position_in_string(raw: &str, start: (usize, usize), at: (usize, usize)) -> (usize, usize) {
    let (quotes, escapes) = if raw.starts_with("\"\"\"") {
        (3, true)
    } else if raw.starts_with("'''") {
        (3, false)
    } else {
        (1, raw.starts_with('"'))
    };
    let mut chars = raw.chars().skip(quotes).peekable();
    let (mut file_line, mut file_column) = (start.0, start.1 + quotes);
    // A multi-line string drops a newline right after its opening quotes.
    if quotes == 3 && chars.peek() == Some(&'\n') {
        chars.next();
        file_line += 1;
        file_column = 1;
    }
    let mut expr = (1, 1);
    while expr != at {
        let Some(c) = chars.next() else { break };
        if c == '\n' {
            expr = (expr.0 + 1, 1);
            (file_line, file_column) = (file_line + 1, 1);
            continue;
        }
        let mut width = 1;
        if escapes && c == '\\' {
            let digits = match chars.next() {
                Some('u') => 4,
                Some('U') => 8,
                _ => 0,
            };
            width += 1 + digits;
            for _ in 0..digits {
                chars.next();
            }
        }
        expr.1 += 1;
        file_column += width;
    }
    (file_line, file_column)
}

/// The 1-based line and column (in characters) of byte `offset` in `text`.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, column)
}
