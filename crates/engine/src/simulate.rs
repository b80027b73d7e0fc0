//! Scenario simulation: "play customer". A scenario (YAML) describes personas and the steps each takes ("an
//! Android owner fails to sign in twice, opens the chat, calls"); [`Engine::simulate`] runs it through the real
//! ingest path into a sandbox data directory that holds a copy of a store's definitions (rules, catalogue,
//! blueprints, models), with the rules worker on the scenario's own clock and webhooks journaled, not sent. The
//! report follows each simulated customer step by step: what the catalogue offered after the step, the triggers
//! the step (or a wait) set off, the segments entered, and where the journey left the blueprint.
//!
//! Simulated customers are test traffic: their ids start with [`TEST_PREFIX`] and their events carry
//! `context.test = true`, so an analysis leaves them out unless its filter says `test_traffic` (the same script
//! sent to a live server does not skew its reports). The demo generator takes the same format
//! (`waymark demo --scenario FILE`): there the personas are ordinary customers of the demo.

use crate::blueprints::CustomerConformance;
use crate::nba::NbaRequest;
use crate::rules::{LoggedInstance, RulesClock, RulesOptions};
use crate::{Engine, Error};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use waymark_model::Timestamp;

/// Simulated customers' ids start with this: analyses leave them out by default.
pub const TEST_PREFIX: &str = "waymark-sim:";

/// The delay before a step when the script gives none.
pub const DEFAULT_AFTER: &str = "30s";

/// A scenario as written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Lower-case letters, digits, `-` and `_` (part of every simulated customer's id).
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// When the first persona starts (a date or RFC 3339). Default: now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// The saved blueprint each journey is traced against. Default: the first saved one, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blueprint: Option<String>,
    /// The placements next best action is asked for after every step. Default: every placement the catalogue
    /// names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub placements: Vec<String>,
    pub personas: Vec<Persona>,
}

/// One kind of customer and the steps each of them takes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Persona {
    /// Lower-case letters, digits, `-` and `_`.
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// How many customers of this persona (default 1).
    #[serde(default = "one")]
    pub count: usize,
    /// Between one customer's start and the next one's (default 1h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spacing: Option<String>,
    /// After the scenario's start (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts_after: Option<String>,
    /// The device of the persona's web and app events: `context.device.type`, `.model` and `context.os.name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceSpec>,
    /// Sent as an `identify` before the first step.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub traits: Map<String, Value>,
    pub steps: Vec<StepSpec>,
}

fn one() -> usize {
    1
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceSpec {
    /// `context.device.type` (`android_app`, `ios_app`, `web`).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// `context.device.model` (`Pixel 8`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// `context.os.name` (`Android`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    /// The channel of the persona's events when a step names none. Default: `app` for an app device (a type
    /// ending in `app`, or iOS / Android), else `web`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
}

impl DeviceSpec {
    fn channel(&self) -> String {
        if let Some(channel) = &self.channel {
            return channel.clone();
        }
        let kind = self.kind.as_deref().unwrap_or("").to_ascii_lowercase();
        let os = self.os.as_deref().unwrap_or("").to_ascii_lowercase();
        if kind.ends_with("app")
            || kind == "ios"
            || kind == "android"
            || os == "ios"
            || os == "android"
        {
            "app".into()
        } else {
            "web".into()
        }
    }
}

/// One step: exactly one of `track`, `page`, `screen`, `identify` or `wait`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    /// A track call's event name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track: Option<String>,
    /// A page view's name (a web event).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<String>,
    /// A screen view's name (an app event).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub screen: Option<String>,
    /// An identify call with these traits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identify: Option<Map<String, Value>>,
    /// Time passes (`2h`): the timers due meanwhile fire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<String>,
    /// Before the step (default 30s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// The channel (`chat`, `call_center`, `store`, `email`); default: the device's (see `device.channel`), or
    /// without a device `app` for a screen, `web` for a page, inferred for a track call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub properties: Map<String, Value>,
    /// Done this many times in a row (default 1), each `after` the previous one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u32>,
}

/// A scenario with a problem: where (the YAML line and column, or the field) and what.
fn invalid(message: String) -> Error {
    Error::Malformed(message)
}

/// Parses a scenario file's text (YAML; JSON is YAML too); `origin` names it in errors.
pub fn parse_scenario(text: &str, origin: &str) -> Result<Scenario, Error> {
    let scenario: Scenario = yaml_serde::from_str(text).map_err(|error| {
        let at = error
            .location()
            .map(|l| format!(":{}:{}", l.line(), l.column()))
            .unwrap_or_default();
        invalid(format!("{origin}{at}: {error}"))
    })?;
    scenario
        .check()
        .map_err(|message| invalid(format!("{origin}: {message}")))?;
    Ok(scenario)
}

fn is_name(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 64
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

fn duration(field: &str, text: &str) -> Result<i64, String> {
    waymark_analytics::query::parse_duration(field, text)
        .map_err(|error| error.to_string())
        .and_then(|us| {
            if us < 0 {
                Err(format!("{field}: `{text}` is negative"))
            } else {
                Ok(us)
            }
        })
}

/// One event (or wait) of the expanded scenario.
#[derive(Debug, Clone)]
pub struct ScriptedStep {
    /// When it happens (µs); a wait's start.
    pub at: i64,
    /// The persona's index in the scenario.
    pub persona: usize,
    pub customer: String,
    /// The Segment message; `None` for a wait.
    pub message: Option<Value>,
    /// What the report calls the step.
    pub label: String,
    /// A wait's end (else `at`): the steps are in the order of this time.
    pub until: i64,
}

impl Scenario {
    /// Every problem a scenario can have before it runs, naming the field.
    pub fn check(&self) -> Result<(), String> {
        if !is_name(&self.name) {
            return Err(format!(
                "name: {:?} is not a scenario name: lower-case letters, digits, - and _",
                self.name
            ));
        }
        if let Some(start) = &self.start {
            waymark_analytics::query::parse_time("start", start).map_err(|e| e.to_string())?;
        }
        if self.personas.is_empty() {
            return Err("personas: a scenario needs at least one persona".into());
        }
        let mut names = BTreeSet::new();
        for (index, persona) in self.personas.iter().enumerate() {
            let field = format!("personas[{index}]");
            if !is_name(&persona.name) {
                return Err(format!(
                    "{field}.name: {:?} is not a persona name: lower-case letters, digits, - and _",
                    persona.name
                ));
            }
            if !names.insert(&persona.name) {
                return Err(format!(
                    "{field}.name: persona {:?} is there twice",
                    persona.name
                ));
            }
            if persona.count == 0 || persona.count > 100_000 {
                return Err(format!(
                    "{field}.count: {} is not from 1 to 100000",
                    persona.count
                ));
            }
            for (key, value) in [
                ("spacing", &persona.spacing),
                ("starts_after", &persona.starts_after),
            ] {
                if let Some(text) = value {
                    duration(&format!("{field}.{key}"), text)?;
                }
            }
            if persona.steps.is_empty() {
                return Err(format!("{field}.steps: a persona needs at least one step"));
            }
            for (s, step) in persona.steps.iter().enumerate() {
                let field = format!("{field}.steps[{s}]");
                let kinds = [
                    step.track.is_some(),
                    step.page.is_some(),
                    step.screen.is_some(),
                    step.identify.is_some(),
                    step.wait.is_some(),
                ]
                .iter()
                .filter(|k| **k)
                .count();
                if kinds != 1 {
                    return Err(format!(
                        "{field}: a step is exactly one of track, page, screen, identify or wait (this one has {kinds})"
                    ));
                }
                for name in [&step.track, &step.page, &step.screen]
                    .into_iter()
                    .flatten()
                {
                    if name.trim().is_empty() {
                        return Err(format!("{field}: the step needs a name"));
                    }
                }
                if let Some(text) = &step.wait {
                    duration(&format!("{field}.wait"), text)?;
                }
                if let Some(text) = &step.after {
                    duration(&format!("{field}.after"), text)?;
                }
                if step.times == Some(0) || step.times.is_some_and(|t| t > 1000) {
                    return Err(format!("{field}.times: write 1 to 1000"));
                }
                if step.wait.is_some() && (!step.properties.is_empty() || step.channel.is_some()) {
                    return Err(format!("{field}: a wait has no properties or channel"));
                }
            }
        }
        Ok(())
    }

    /// The id of simulated customer `n` of `persona`, as test traffic (`test`) or as an ordinary customer.
    pub fn customer_id(&self, persona: &Persona, n: usize, test: bool) -> String {
        if test {
            format!("{TEST_PREFIX}{}/{}-{}", self.name, persona.name, n + 1)
        } else {
            format!("{}-{}-{}", self.name, persona.name, n + 1)
        }
    }

    /// Every persona's customers' events (and waits) in time order: Segment messages from `start` (µs), as test
    /// traffic (`test`) or as ordinary customers.
    pub fn timeline(&self, start: i64, test: bool) -> Result<Vec<ScriptedStep>, Error> {
        let mut planned = Vec::new();
        for (p, persona) in self.personas.iter().enumerate() {
            let spacing = persona
                .spacing
                .as_deref()
                .map(|t| duration("spacing", t))
                .transpose()
                .map_err(invalid)?
                .unwrap_or(3_600_000_000);
            let offset = persona
                .starts_after
                .as_deref()
                .map(|t| duration("starts_after", t))
                .transpose()
                .map_err(invalid)?
                .unwrap_or(0);
            for n in 0..persona.count {
                let customer = self.customer_id(persona, n, test);
                let device_id = format!("{customer}/device");
                let mut context = Map::new();
                if let Some(device) = &persona.device {
                    let mut d = Map::new();
                    if let Some(kind) = &device.kind {
                        d.insert("type".into(), kind.clone().into());
                    }
                    if let Some(model) = &device.model {
                        d.insert("model".into(), model.clone().into());
                    }
                    if !d.is_empty() {
                        context.insert("device".into(), Value::Object(d));
                    }
                    if let Some(os) = &device.os {
                        context.insert("os".into(), json!({ "name": os }));
                    }
                }
                if test {
                    context.insert("test".into(), true.into());
                }
                let device_channel = persona.device.as_ref().map(DeviceSpec::channel);
                let mut at = start + offset + spacing * n as i64;
                let mut seq = 0;
                let mut message = |kind: &str, at: i64, extra: Map<String, Value>| {
                    seq += 1;
                    let mut value = json!({
                        "type": kind,
                        "userId": customer,
                        "anonymousId": device_id,
                        "timestamp": Timestamp(at).to_rfc3339(),
                        "messageId": format!("{customer}/{seq}"),
                        "context": context,
                    });
                    if let Some(object) = value.as_object_mut() {
                        object.extend(extra);
                    }
                    value
                };
                if !persona.traits.is_empty() {
                    let mut extra = Map::new();
                    extra.insert("traits".into(), Value::Object(persona.traits.clone()));
                    planned.push(ScriptedStep {
                        at,
                        persona: p,
                        customer: customer.clone(),
                        message: Some(message("identify", at, extra)),
                        label: "identify".into(),
                        until: at,
                    });
                }
                for step in &persona.steps {
                    let after = step.after.as_deref().unwrap_or(DEFAULT_AFTER);
                    let after = duration("after", after).map_err(invalid)?;
                    if let Some(wait) = &step.wait {
                        // Listed where the wait starts (what fires meanwhile is told there), run to its end.
                        let until = at + duration("wait", wait).map_err(invalid)?;
                        planned.push(ScriptedStep {
                            at,
                            persona: p,
                            customer: customer.clone(),
                            message: None,
                            label: format!("(waits {wait})"),
                            until,
                        });
                        at = until;
                        continue;
                    }
                    for _ in 0..step.times.unwrap_or(1) {
                        at += after;
                        let mut extra = Map::new();
                        if !step.properties.is_empty() {
                            extra.insert(
                                "properties".into(),
                                Value::Object(step.properties.clone()),
                            );
                        }
                        let (kind, label) = if let Some(name) = &step.track {
                            extra.insert("event".into(), name.clone().into());
                            ("track", name.clone())
                        } else if let Some(name) = &step.page {
                            extra.insert("name".into(), name.clone().into());
                            ("page", format!("page:{name}"))
                        } else if let Some(name) = &step.screen {
                            extra.insert("name".into(), name.clone().into());
                            ("screen", format!("screen:{name}"))
                        } else {
                            let traits = step.identify.clone().unwrap_or_default();
                            extra.insert("traits".into(), Value::Object(traits));
                            ("identify", "identify".to_string())
                        };
                        let mut value = message(kind, at, extra);
                        if let Some(channel) = step.channel.as_ref().or(device_channel.as_ref()) {
                            value["context"]["channel"] = channel.clone().into();
                        }
                        planned.push(ScriptedStep {
                            at,
                            persona: p,
                            customer: customer.clone(),
                            message: Some(value),
                            label,
                            until: at,
                        });
                    }
                }
            }
        }
        // Time order (a wait at its end, when the timers due within it have fired); a customer's own steps keep
        // their order at equal times.
        planned.sort_by_key(|p| p.until);
        Ok(planned)
    }

    /// The scenario's events as Segment messages for an ordinary store (the demo): no test marker, no waits.
    pub fn messages(&self, start: i64) -> Result<Vec<Value>, Error> {
        Ok(self
            .timeline(start, false)?
            .into_iter()
            .filter_map(|p| p.message)
            .collect())
    }
}

/// Where to run a scenario.
#[derive(Debug, Clone, Default)]
pub struct SimulationOptions {
    /// The data directory whose definitions (rules, catalogue, blueprints, models) the sandbox copies; none:
    /// an empty sandbox.
    pub definitions_from: Option<PathBuf>,
    /// The sandbox data directory (created; must be empty or absent).
    pub sandbox: PathBuf,
}

/// The simulation's report.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct SimulationReport {
    pub scenario: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The sandbox data directory (kept: `waymark --data DIR …` reads it), or the server a live run played
    /// against.
    pub sandbox: String,
    pub start: Timestamp,
    pub end: Timestamp,
    pub events: usize,
    /// Instances per trigger over every simulated customer, by status (`fired`, `capped`, `held_out`, `quiet`).
    pub triggers: BTreeMap<String, BTreeMap<String, usize>>,
    /// The blueprint the journeys were traced against.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blueprint: Option<String>,
    pub customers: Vec<SimulatedCustomer>,
}

/// One simulated customer, step by step.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct SimulatedCustomer {
    pub persona: String,
    pub customer_id: String,
    pub steps: Vec<SimulatedStep>,
    /// Segments the customer is in at the end.
    pub segments: Vec<String>,
    /// Every trigger instance, in time order, with its deliveries (webhooks `simulated`: not sent).
    pub trigger_instances: Vec<LoggedInstance>,
    /// The journey against the blueprint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conformance: Option<CustomerConformance>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct SimulatedStep {
    pub at: Timestamp,
    pub step: String,
    /// What next best action offered right after the step, per placement (item ids, best first).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub offered: BTreeMap<String, Vec<String>>,
    /// Triggers decided from this step until the next (`name (status)`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub triggers: Vec<String>,
}

/// Copies the definitions of `from` into `to`: rules (with versions and history), the catalogue (with versions),
/// blueprints and models. No event, no state.
fn copy_definitions(from: &Path, to: &Path) -> Result<(), Error> {
    let io =
        |path: &Path, error: std::io::Error| Error::Model(format!("{}: {error}", path.display()));
    let copy = |name: &str| -> Result<(), Error> {
        let source = from.join(name);
        if source.is_file() {
            let target = to.join(name);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
            }
            std::fs::copy(&source, &target).map_err(|e| io(&source, e))?;
        }
        Ok(())
    };
    for file in [
        crate::rules::RULES_FILE,
        "rules/versions.json",
        crate::nba::CATALOGUE_FILE,
        "nba/versions.json",
    ] {
        copy(file)?;
    }
    for dir in ["rules/history", "blueprints", "models"] {
        let Ok(entries) = std::fs::read_dir(from.join(dir)) else {
            continue;
        };
        for entry in entries.flatten() {
            if entry.path().is_file() {
                copy(&format!("{dir}/{}", entry.file_name().to_string_lossy()))?;
            }
        }
    }
    Ok(())
}

impl Engine {
    /// Segment messages ingested as one `/v1/batch` body received at `received_at`: the collector's own path.
    fn ingest_batch(
        &self,
        messages: &[Value],
        received_at: Timestamp,
    ) -> Result<crate::IngestOutcome, Error> {
        let body = serde_json::to_vec(&json!({ "batch": messages }))
            .map_err(|e| Error::Malformed(e.to_string()))?;
        self.ingest(crate::ingest::parse_batch(&body, received_at)?)
    }

    /// Adds `scenario`'s personas to this store as ordinary customers (not test traffic), from the scenario's
    /// `start` (default: the demo's first day), through the same ingest as the collector's. Returns the events
    /// stored.
    pub fn ingest_scenario(&self, scenario: &Scenario) -> Result<usize, Error> {
        scenario.check().map_err(invalid)?;
        let start = match &scenario.start {
            Some(text) => waymark_analytics::query::parse_time("start", text)?,
            None => crate::demo::DEMO_START_SECS * 1_000_000,
        };
        let messages = scenario.messages(start)?;
        let mut stored = 0;
        for chunk in messages.chunks(100) {
            let outcome = self.ingest_batch(chunk, Timestamp::now())?;
            if let Some(problem) = outcome.errors.first() {
                return Err(invalid(format!(
                    "scenario {}: an event was refused: {}",
                    scenario.name, problem.message
                )));
            }
            stored += outcome.accepted;
        }
        Ok(stored)
    }

    /// Runs `scenario` in a sandbox (see the module doc) and reports what happened to each simulated customer.
    /// `progress(done, total)` follows the events.
    pub fn simulate(
        scenario: &Scenario,
        options: &SimulationOptions,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<SimulationReport, Error> {
        scenario.check().map_err(invalid)?;
        let sandbox = &options.sandbox;
        if sandbox.exists()
            && std::fs::read_dir(sandbox)
                .map(|mut entries| entries.next().is_some())
                .unwrap_or(true)
        {
            return Err(invalid(format!(
                "the sandbox {} is not empty; name a new directory (a simulation never writes into a store)",
                sandbox.display()
            )));
        }
        std::fs::create_dir_all(sandbox)
            .map_err(|error| Error::Model(format!("{}: {error}", sandbox.display())))?;
        if let Some(from) = &options.definitions_from {
            copy_definitions(from, sandbox)?;
        }
        let engine = Arc::new(Engine::open(
            sandbox,
            waymark_store::StoreOptions::default(),
        )?);
        let report = engine.run_scenario(scenario, sandbox, progress);
        engine.stop_rules();
        let engine = Arc::into_inner(engine);
        if let Some(engine) = engine {
            engine.close()?;
        }
        report
    }

    fn run_scenario(
        self: &Arc<Engine>,
        scenario: &Scenario,
        sandbox: &Path,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<SimulationReport, Error> {
        let start = match &scenario.start {
            Some(text) => waymark_analytics::query::parse_time("start", text)?,
            None => Timestamp::now().0,
        };
        let planned = scenario.timeline(start, true)?;
        let blueprint = match &scenario.blueprint {
            Some(name) => {
                self.blueprint(name)?;
                Some(name.clone())
            }
            None => self.blueprints()?.first().map(|b| b.name.clone()),
        };
        let catalogue = self.catalogue_file()?;
        let placements: Vec<String> = if scenario.placements.is_empty() {
            let mut all: BTreeSet<String> = BTreeSet::new();
            for item in &catalogue.items {
                all.extend(item.placements.iter().cloned());
            }
            all.into_iter().collect()
        } else {
            scenario.placements.clone()
        };
        self.prepare_writes();
        self.start_rules(RulesOptions {
            clock: RulesClock::EventTime,
            min_backoff: std::time::Duration::from_millis(20),
            max_attempts: 3,
            send_webhooks: false,
            ..RulesOptions::default()
        })
        .map_err(|error| Error::Model(format!("the rules worker did not start: {error}")))?;
        let started = std::time::Instant::now();
        while !self.rules_status().running {
            if started.elapsed() > std::time::Duration::from_secs(60) {
                return Err(Error::Model(
                    "the sandbox's rules worker did not start within a minute; see the log".into(),
                ));
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let mut steps: BTreeMap<String, Vec<SimulatedStep>> = BTreeMap::new();
        let total = planned.len();
        let mut events = 0;
        for (done, item) in planned.iter().enumerate() {
            match &item.message {
                Some(message) => {
                    let outcome =
                        self.ingest_batch(std::slice::from_ref(message), Timestamp(item.at))?;
                    if outcome.failed > 0 {
                        let why = outcome
                            .errors
                            .first()
                            .map(|e| e.message.clone())
                            .unwrap_or_default();
                        return Err(invalid(format!(
                            "persona {}'s step {} was refused: {why}",
                            scenario.personas[item.persona].name, item.label
                        )));
                    }
                    events += 1;
                    self.rules_settle()?;
                }
                None => self.rules_settle_at(Some(item.until))?,
            }
            let mut offered = BTreeMap::new();
            if !catalogue.items.is_empty() {
                for placement in &placements {
                    let request = NbaRequest {
                        placement: Some(placement.clone()),
                        preview: true,
                        ..NbaRequest::default()
                    };
                    if let Some(nba) =
                        self.next_best_action_at(&item.customer, &request, item.until)?
                    {
                        offered.insert(
                            placement.clone(),
                            nba.items.into_iter().map(|o| o.id).collect(),
                        );
                    }
                }
            }
            steps
                .entry(item.customer.clone())
                .or_default()
                .push(SimulatedStep {
                    at: Timestamp(item.at),
                    step: item.label.clone(),
                    offered,
                    triggers: Vec::new(),
                });
            progress(done + 1, total);
        }
        let end = planned.iter().map(|p| p.until).max().unwrap_or(start);
        self.rules_settle_at(Some(end))?;
        let log = self.trigger_log(None, None, usize::MAX)?;
        let members = self.segment_members()?;
        let (triggers, customers) = assemble(
            scenario,
            steps,
            &log,
            &|id| {
                members
                    .iter()
                    .filter(|(_, m)| m.contains(id) || m.contains(&format!("{id}/device")))
                    .map(|(name, _)| name.clone())
                    .collect()
            },
            &mut |id| match &blueprint {
                Some(name) => self.customer_conformance(id, name),
                None => Ok(None),
            },
        )?;
        Ok(SimulationReport {
            scenario: scenario.name.clone(),
            description: scenario.description.clone(),
            sandbox: sandbox.display().to_string(),
            start: Timestamp(start),
            end: Timestamp(end),
            events,
            triggers,
            blueprint,
            customers,
        })
    }
}

/// Instances per trigger and status, and each simulated customer of `scenario`: its steps (by customer id), its
/// trigger instances from `log` (each told at the step it followed), its segments and its journey against the
/// blueprint. A sandbox run and a live one assemble their reports alike.
#[allow(clippy::type_complexity)]
pub fn assemble<E>(
    scenario: &Scenario,
    mut steps: BTreeMap<String, Vec<SimulatedStep>>,
    log: &[LoggedInstance],
    segments: &dyn Fn(&str) -> Vec<String>,
    conformance: &mut dyn FnMut(&str) -> Result<Option<CustomerConformance>, E>,
) -> Result<
    (
        BTreeMap<String, BTreeMap<String, usize>>,
        Vec<SimulatedCustomer>,
    ),
    E,
> {
    let mut triggers: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    let mut customers = Vec::new();
    for persona in &scenario.personas {
        for n in 0..persona.count {
            let id = scenario.customer_id(persona, n, true);
            let mut mine: Vec<LoggedInstance> = log
                .iter()
                .filter(|logged| logged.instance.customer.starts_with(&id))
                .cloned()
                .collect();
            mine.sort_by_key(|logged| logged.instance.at);
            let mut journey = steps.remove(&id).unwrap_or_default();
            for logged in &mine {
                let status = serde_json::to_value(logged.instance.status)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default();
                *triggers
                    .entry(logged.instance.trigger.clone())
                    .or_default()
                    .entry(status.clone())
                    .or_default() += 1;
                let index = journey
                    .iter()
                    .rposition(|s| s.at.0 <= logged.instance.at)
                    .unwrap_or(0);
                if let Some(step) = journey.get_mut(index) {
                    let when = Timestamp(logged.instance.at).to_rfc3339();
                    step.triggers.push(format!(
                        "{} ({status} at {})",
                        logged.instance.trigger,
                        when.get(11..19).unwrap_or_default()
                    ));
                }
            }
            customers.push(SimulatedCustomer {
                persona: persona.name.clone(),
                segments: segments(&id),
                conformance: conformance(&id)?,
                customer_id: id,
                steps: journey,
                trigger_instances: mine,
            });
        }
    }
    Ok((triggers, customers))
}
