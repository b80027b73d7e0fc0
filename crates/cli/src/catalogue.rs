//! `waymark catalogue …`: the content and offers next best action ranks (`catalogue.toml` in the data
//! directory) — check a file, apply it, show the one in force. A problem is printed as
//! `FILE:LINE:COLUMN: FIELD: message` and exits with 2.

use crate::print_json;
use crate::rules::located;
use anyhow::{Context, Result};
use clap::Subcommand;
use serde_json::json;
use std::path::{Path, PathBuf};
use waymark_engine::nba::{CatalogueFile, CATALOGUE_FILE};
use waymark_engine::Engine;

#[derive(Subcommand)]
pub enum CatalogueCommand {
    /// Validate a catalogue file against the store (default: the one in force) without applying it.
    Check { file: Option<PathBuf> },
    /// Validate FILE and make it the catalogue in force (changed items get a new version). A running server
    /// holds the data directory: send the file with `PUT /v1/catalogue` there instead.
    /// Example: `waymark catalogue apply catalogue.toml`
    Apply { file: PathBuf },
    /// Print the catalogue in force with each item's version.
    Show,
}

fn load(engine: &Engine, file: Option<&Path>) -> Result<(PathBuf, String, CatalogueFile)> {
    let path = file
        .map(Path::to_path_buf)
        .unwrap_or_else(|| engine.dir().join(CATALOGUE_FILE));
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let parsed = CatalogueFile::from_toml(&text)
        .map_err(|errors| located(&path, &text, waymark_engine::Error::Catalogue(errors)))?;
    Ok((path, text, parsed))
}

pub fn catalogue(engine: &Engine, command: CatalogueCommand, json_output: bool) -> Result<()> {
    match command {
        CatalogueCommand::Check { file } => {
            let (path, text, file) = load(engine, file.as_deref())?;
            let checked = engine
                .check_catalogue(&file)
                .map_err(|error| located(&path, &text, error))?;
            if json_output {
                print_json(
                    &json!({"valid": true, "file": path, "versions": checked.versions, "changed": checked.changed}),
                );
            } else {
                println!(
                    "{}: {} item{} valid; nothing applied",
                    path.display(),
                    file.items.len(),
                    if file.items.len() == 1 { "" } else { "s" }
                );
                crate::rules::print_would_change(&checked.changed, &checked.versions);
            }
        }
        CatalogueCommand::Apply { file } => {
            let (path, text, file) = load(engine, Some(&file))?;
            let saved = engine
                .save_catalogue(&file)
                .map_err(|error| located(&path, &text, error))?;
            if json_output {
                print_json(&serde_json::to_value(&saved)?);
            } else {
                println!(
                    "applied {}: {} item{}, {} changed{}",
                    path.display(),
                    saved.versions.len(),
                    if saved.versions.len() == 1 { "" } else { "s" },
                    saved.changed.len(),
                    if saved.changed.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", saved.changed.join(", "))
                    }
                );
            }
        }
        CatalogueCommand::Show => {
            let view = engine.catalogue_view()?;
            if json_output {
                print_json(&serde_json::to_value(&view)?);
            } else if view.catalogue.items.is_empty() {
                println!("no catalogue in force; write a catalogue file and `waymark catalogue apply FILE`");
            } else {
                for (id, version) in &view.versions {
                    println!("# item {id}: version {version}");
                }
                print!("{}", view.toml);
            }
        }
    }
    Ok(())
}
