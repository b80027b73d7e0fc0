//! Saved blueprints: each designed journey is one TOML file, `blueprints/NAME.toml` in the data directory,
//! edited by hand or through `waymark blueprint …` and `/v1/blueprints`. An analysis request names a saved
//! blueprint with `"blueprint": "NAME"`; [`Engine::resolve_saved`] puts the blueprint in its place.

use crate::{Engine, Error};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;
use std::path::{Path, PathBuf};
use waymark_analytics::blueprint::CompiledBlueprint;
pub use waymark_analytics::blueprint::{Blueprint, Deviation};
/// `90s`, `14m`, `3.5h`, `2.1d`, as the reports write durations.
pub use waymark_analytics::query::text::duration as readable_duration;
use waymark_analytics::AnalyticsError;
use waymark_model::JourneySet;

/// The folder of saved blueprints inside the data directory.
pub const BLUEPRINTS_DIR: &str = "blueprints";

/// A saved blueprint at a glance.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct BlueprintSummary {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goal: Option<String>,
    /// Stage names, in order.
    pub stages: Vec<String>,
    /// Designed steps over all stages.
    pub steps: usize,
}

impl BlueprintSummary {
    fn of(blueprint: &Blueprint) -> BlueprintSummary {
        BlueprintSummary {
            name: blueprint.name.clone(),
            description: blueprint.description.clone(),
            goal: blueprint.goal.clone(),
            stages: blueprint.stages.iter().map(|s| s.name.clone()).collect(),
            steps: blueprint.stages.iter().map(|s| s.steps.len()).sum(),
        }
    }
}

/// What saving a blueprint did.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct SavedBlueprint {
    pub blueprint: BlueprintSummary,
    /// Whether a blueprint of that name was replaced.
    pub replaced: bool,
    /// Designed step names no stored event has yet (a misspelling, or a step not tracked yet).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unknown_steps: Vec<String>,
}

/// Reads a blueprint from TOML or JSON text; `source` names the file (or body) in the message.
pub fn parse_blueprint(text: &str, source: &str) -> Result<Blueprint, Error> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') {
        return serde_json::from_str(text).map_err(|error| {
            Error::Malformed(format!(
                "{source}: line {}, column {}: {error}",
                error.line(),
                error.column()
            ))
        });
    }
    toml::from_str(text).map_err(|error| {
        let place = error
            .span()
            .map(|span| {
                let (line, column) = waymark_rules::line_column(text, span.start);
                format!("line {line}, column {column}: ")
            })
            .unwrap_or_default();
        Error::Malformed(format!("{source}: {place}{}", error.message()))
    })
}

/// The blueprint as its file holds it.
pub fn blueprint_toml(blueprint: &Blueprint) -> String {
    toml::to_string_pretty(blueprint).expect("blueprints serialise to TOML")
}

fn invalid(error: AnalyticsError) -> Error {
    Error::Analysis(error)
}

impl Engine {
    fn blueprints_dir(&self) -> PathBuf {
        self.dir().join(BLUEPRINTS_DIR)
    }

    pub(crate) fn blueprint_path(&self, name: &str) -> Result<PathBuf, Error> {
        check_name(name)?;
        Ok(self.blueprints_dir().join(format!("{name}.toml")))
    }

    /// Every saved blueprint, by name.
    pub fn blueprints(&self) -> Result<Vec<BlueprintSummary>, Error> {
        let mut names = self.blueprint_names()?;
        names.sort();
        names
            .iter()
            .map(|name| self.blueprint(name).map(|b| BlueprintSummary::of(&b)))
            .collect()
    }

    fn blueprint_names(&self) -> Result<Vec<String>, Error> {
        let entries = match std::fs::read_dir(self.blueprints_dir()) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(io_error(&self.blueprints_dir(), error)),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|error| io_error(&self.blueprints_dir(), error))?;
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "toml") {
                if let Some(stem) = path.file_stem().and_then(|s| s.to_str()) {
                    if check_name(stem).is_ok() {
                        names.push(stem.to_string());
                    }
                }
            }
        }
        Ok(names)
    }

    /// The saved blueprint `name`.
    pub fn blueprint(&self, name: &str) -> Result<Blueprint, Error> {
        let path = self.blueprint_path(name)?;
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(self.no_blueprint(name))
            }
            Err(error) => return Err(io_error(&path, error)),
        };
        let mut blueprint = parse_blueprint(&text, &path.display().to_string())?;
        // The file's name is the blueprint's name.
        blueprint.name = name.to_string();
        Ok(blueprint)
    }

    /// Checks the blueprint (every problem names its field) and saves it as `blueprints/NAME.toml`, replacing
    /// one of the same name.
    pub fn save_blueprint(&self, blueprint: &Blueprint) -> Result<SavedBlueprint, Error> {
        let path = self.blueprint_path(&blueprint.name)?;
        let compiled = check(blueprint, &self.journey_set_dictionaries())?;
        std::fs::create_dir_all(self.blueprints_dir())
            .map_err(|error| io_error(&self.blueprints_dir(), error))?;
        let replaced = path.exists();
        waymark_store::write_file_atomically(&path, blueprint_toml(blueprint).as_bytes())
            .map_err(|error| io_error(&path, error))?;
        Ok(SavedBlueprint {
            blueprint: BlueprintSummary::of(blueprint),
            replaced,
            unknown_steps: compiled.unknown_steps,
        })
    }

    /// Deletes the saved blueprint `name` (one that no longer parses too).
    pub fn delete_blueprint(&self, name: &str) -> Result<(), Error> {
        let path = self.blueprint_path(name)?;
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                Err(self.no_blueprint(name))
            }
            Err(error) => Err(io_error(&path, error)),
        }
    }

    /// There is no saved blueprint `name`: the error lists the saved ones.
    fn no_blueprint(&self, name: &str) -> Error {
        let mut names = self.blueprint_names().unwrap_or_default();
        names.sort();
        Error::NotFound(format!(
            "there is no saved blueprint {name:?}; {}",
            if names.is_empty() {
                "none is saved yet (`waymark blueprint save FILE` or PUT /v1/blueprints/NAME)"
                    .to_string()
            } else {
                format!("the saved ones are {}", names.join(", "))
            }
        ))
    }

    /// A request with its saved references filled in: `"blueprint": "NAME"` becomes the saved blueprint.
    pub fn resolve_saved(&self, mut request: Value) -> Result<Value, Error> {
        if let Some(Value::String(name)) = request.get("blueprint") {
            let blueprint = self.blueprint(name)?;
            request["blueprint"] = serde_json::to_value(blueprint).expect("blueprints serialise");
        }
        Ok(request)
    }

    /// The step and channel names stored, for checking a blueprint's steps (no journeys are read).
    fn journey_set_dictionaries(&self) -> JourneySet {
        JourneySet {
            step_names: self.store.step_names(),
            ..JourneySet::default()
        }
    }
}

fn check(blueprint: &Blueprint, dictionaries: &JourneySet) -> Result<CompiledBlueprint, Error> {
    blueprint.compile(dictionaries).map_err(invalid)
}

fn check_name(name: &str) -> Result<(), Error> {
    if waymark_analytics::blueprint::is_name(name) && name.len() <= 64 {
        Ok(())
    } else {
        Err(invalid(AnalyticsError::field(
            "name",
            format!(
                "name: {name:?} must be 1 to 64 lower-case letters, digits, - or _ (e.g. \"purchase\")"
            ),
        )))
    }
}

fn io_error(path: &Path, error: std::io::Error) -> Error {
    Error::Store(waymark_store::StoreError::Io {
        path: path.to_path_buf(),
        source: error,
    })
}

/// One customer's journey against a saved blueprint: where it left the design.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, JsonSchema)]
pub struct CustomerConformance {
    pub customer_id: String,
    pub blueprint: String,
    /// The journey's events (all channels and devices, in time order).
    pub events: usize,
    #[serde(flatten)]
    pub conformance: waymark_analytics::blueprint::JourneyConformance,
    /// The first deviation: where the journey first left the design.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub left_design_at: Option<waymark_analytics::blueprint::Deviation>,
}

impl Engine {
    /// The customer `identifier` belongs to, replayed on the saved blueprint `name` (`None`: no such customer).
    pub fn customer_conformance(
        &self,
        identifier: &str,
        name: &str,
    ) -> Result<Option<CustomerConformance>, Error> {
        let blueprint = self.blueprint(name)?;
        let Some(customer) = self.customer(identifier)? else {
            return Ok(None);
        };
        let events: Vec<(i64, &str, &str)> = customer
            .events
            .iter()
            .map(|event| (event.time.0, event.step.as_str(), event.channel.as_str()))
            .collect();
        let n_events = events.len();
        let set = JourneySet::from_journeys([(customer.customer_id.clone(), events)]);
        let compiled = check(&blueprint, &set)?;
        let conformance = compiled.conform(set.journey(0));
        Ok(Some(CustomerConformance {
            customer_id: customer.customer_id.clone(),
            blueprint: blueprint.name,
            events: n_events,
            left_design_at: conformance.deviations.first().cloned(),
            conformance,
        }))
    }
}
