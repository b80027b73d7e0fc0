//! `waymark blueprint …`: the saved designed journeys (`blueprints/NAME.toml` in the data directory) — list,
//! show, save from a file, delete — and one customer's journey traced against one of them.

use crate::{print_json, UsageError};
use anyhow::{Context, Result};
use clap::Subcommand;
use std::path::{Path, PathBuf};
use waymark_engine::blueprints::{blueprint_toml, parse_blueprint, readable_duration, Blueprint};
use waymark_engine::Engine;

#[derive(Subcommand)]
pub enum BlueprintCommand {
    /// The saved blueprints.
    List,
    /// A saved blueprint, as its TOML file (`--json`: as JSON).
    Show { name: String },
    /// Check a blueprint file (TOML or JSON) and save it, replacing one of the same name (its `name`, or the
    /// file's name without `.toml`).
    /// Example: `waymark blueprint save purchase.toml`
    Save {
        file: PathBuf,
        /// Save it under this name instead.
        #[arg(long)]
        name: Option<String>,
    },
    /// Delete a saved blueprint.
    Delete { name: String },
    /// One customer's journey against a saved blueprint: the stages entered and every deviation, in order.
    /// Example: `waymark blueprint trace purchase cust-000042`
    Trace {
        name: String,
        /// Any of the customer's identifiers.
        identifier: String,
    },
}

/// A blueprint file, its problems naming the file; without a `name` it is named after the file.
pub fn read_file(path: &Path) -> Result<Blueprint> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut blueprint = parse_blueprint(&text, &path.display().to_string())
        .map_err(|error| UsageError(error.to_string()))?;
    if blueprint.name.is_empty() {
        blueprint.name = path
            .file_stem()
            .and_then(|stem| stem.to_str())
            .unwrap_or_default()
            .to_string();
    }
    Ok(blueprint)
}

fn secs(us: i64) -> String {
    readable_duration(us as f64 / 1e6)
}

pub fn blueprint(engine: &Engine, command: BlueprintCommand, json_output: bool) -> Result<()> {
    let usage = crate::query::usage;
    match command {
        BlueprintCommand::List => {
            let blueprints = engine.blueprints().map_err(usage)?;
            if json_output {
                print_json(&serde_json::json!({ "blueprints": blueprints }));
            } else if blueprints.is_empty() {
                println!("No blueprint is saved yet: `waymark blueprint save FILE.toml`.");
            } else {
                for b in blueprints {
                    println!(
                        "{:<20} {} stages, {} steps{}  {}",
                        b.name,
                        b.stages.len(),
                        b.steps,
                        b.goal.map(|g| format!(", goal {g}")).unwrap_or_default(),
                        b.stages.join(" → ")
                    );
                }
            }
        }
        BlueprintCommand::Show { name } => {
            let blueprint = engine.blueprint(&name).map_err(usage)?;
            if json_output {
                print_json(&serde_json::to_value(&blueprint)?);
            } else {
                print!("{}", blueprint_toml(&blueprint));
            }
        }
        BlueprintCommand::Save { file, name } => {
            let mut blueprint = read_file(&file)?;
            if let Some(name) = name {
                blueprint.name = name;
            }
            let saved = engine.save_blueprint(&blueprint).map_err(|error| {
                UsageError(format!("{}: {error}; nothing was saved", file.display()))
            })?;
            if json_output {
                print_json(&serde_json::to_value(&saved)?);
            } else {
                println!(
                    "{} blueprint {} ({} stages, {} steps).",
                    if saved.replaced { "Replaced" } else { "Saved" },
                    saved.blueprint.name,
                    saved.blueprint.stages.len(),
                    saved.blueprint.steps
                );
                if !saved.unknown_steps.is_empty() {
                    println!(
                        "Note: no stored event has the designed steps {} yet.",
                        saved.unknown_steps.join(", ")
                    );
                }
            }
        }
        BlueprintCommand::Delete { name } => {
            engine.delete_blueprint(&name).map_err(usage)?;
            if json_output {
                print_json(&serde_json::json!({ "deleted": name }));
            } else {
                println!("Deleted blueprint {name}.");
            }
        }
        BlueprintCommand::Trace { name, identifier } => {
            let traced = engine
                .customer_conformance(&identifier, &name)
                .map_err(usage)?
                .ok_or_else(|| {
                    UsageError(format!(
                        "no customer has the identifier {identifier:?}; give a userId or anonymousId (optionally prefixed user: or anon:)"
                    ))
                })?;
            if json_output {
                print_json(&serde_json::to_value(&traced)?);
                return Ok(());
            }
            let c = &traced.conformance;
            println!(
                "Customer {} against {}: {} ({} events, fitness {:.3}, goal {}).",
                traced.customer_id,
                traced.blueprint,
                if c.fits {
                    "fits the design"
                } else {
                    "left the design"
                },
                traced.events,
                c.fitness,
                if c.reached_goal {
                    "reached"
                } else {
                    "not reached"
                }
            );
            for visit in &c.stages {
                println!(
                    "  {}  {:<16} {}",
                    waymark_model::Timestamp(visit.entered_us).to_rfc3339(),
                    visit.stage,
                    secs(visit.duration_us)
                );
            }
            if !c.deviations.is_empty() {
                println!("Deviations, in journey order:");
            }
            for d in &c.deviations {
                let kind = serde_json::to_value(d.kind)?;
                let mut line = format!(
                    "  {}  {:<18} {:<12} {}",
                    waymark_model::Timestamp(d.at_us).to_rfc3339(),
                    kind.as_str().unwrap_or_default(),
                    d.stage,
                    d.step
                );
                if let Some(channel) = &d.channel {
                    line.push_str(&format!(" on {channel}"));
                }
                if let (Some(took), Some(standard)) = (d.took_us, d.standard_us) {
                    line.push_str(&format!(
                        " took {} (standard {})",
                        secs(took),
                        secs(standard)
                    ));
                }
                println!("{line}");
            }
        }
    }
    Ok(())
}
