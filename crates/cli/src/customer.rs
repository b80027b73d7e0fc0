//! `waymark customer …`: a data subject's rights — everything held about a customer exported as one JSON
//! document, or the customer deleted everywhere (with a deletion record that keeps it from coming back).

use crate::{print_json, UsageError};
use anyhow::{Context, Result};
use clap::Subcommand;
use std::path::PathBuf;
use waymark_engine::Engine;

#[derive(Subcommand)]
pub enum CustomerCommand {
    /// Everything held about a customer (identifiers, merges, events with properties and traits, feedback,
    /// scores, segments, trigger instances and deliveries, refused events naming it) as one JSON document.
    /// Example: `waymark customer export ann@example.com --out ann.json`
    Export {
        /// Any of the customer's identifiers: a userId, an anonymousId, or `user:…` / `anon:…`.
        identifier: String,
        /// Write the document here instead of to standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Delete a customer everywhere: events, identifiers and merges, refused events, rules state and history,
    /// trigger instances and deliveries still due, live scores; models that kept a value only it had are trained
    /// again. Events that arrive or are imported later with its identifiers are not stored.
    /// Example: `waymark customer delete ann@example.com --yes`
    Delete {
        /// Any of the customer's identifiers.
        identifier: String,
        /// Confirm: deletion cannot be undone.
        #[arg(long)]
        yes: bool,
    },
}

fn unknown(identifier: &str) -> UsageError {
    UsageError(format!(
        "no customer has the identifier {identifier:?}; give a userId or anonymousId (optionally prefixed user: or anon:)"
    ))
}

pub fn customer(engine: &Engine, command: CustomerCommand, json_output: bool) -> Result<()> {
    match command {
        CustomerCommand::Export { identifier, out } => {
            let export = engine
                .export_customer(&identifier)?
                .ok_or_else(|| unknown(&identifier))?;
            let value = serde_json::to_value(&export)?;
            match out {
                Some(path) => {
                    let text = serde_json::to_string_pretty(&value)?;
                    std::fs::write(&path, text)
                        .with_context(|| format!("writing {}", path.display()))?;
                    if json_output {
                        print_json(
                            &serde_json::json!({"out": path, "events": export.customer.events.len()}),
                        );
                    } else {
                        eprintln!(
                            "Wrote everything held about {} to {}: {} identifiers, {} events ({} feedback), {} segments, {} trigger instances, {} refused events.",
                            export.customer.customer_id,
                            path.display(),
                            export.customer.identifiers.len(),
                            export.customer.events.len(),
                            export.feedback.len(),
                            export.rules.segments.len(),
                            export.rules.trigger_instances.len(),
                            export.failed_events.len(),
                        );
                    }
                }
                None => print_json(&value),
            }
        }
        CustomerCommand::Delete { identifier, yes } => {
            if !yes {
                return Err(UsageError(format!(
                    "deleting {identifier:?} removes every event and identifier of that customer and cannot be undone; run again with --yes (`waymark customer export {identifier}` first keeps a copy)"
                ))
                .into());
            }
            let deletion = engine
                .delete_customer(&identifier)?
                .ok_or_else(|| unknown(&identifier))?;
            if json_output {
                print_json(&serde_json::to_value(&deletion)?);
            } else {
                let keys: Vec<String> = deletion
                    .store
                    .identifiers
                    .iter()
                    .map(|identifier| identifier.key())
                    .collect();
                println!(
                    "Deleted customer {} ({}): {} events, {} refused events; {} trigger instances, {} segment changes, {} deliveries cancelled; {} live scores.",
                    deletion.store.customer_id,
                    keys.join(", "),
                    deletion.store.events,
                    deletion.store.failed_events,
                    deletion.rules.trigger_instances,
                    deletion.rules.segment_changes,
                    deletion.rules.deliveries_cancelled,
                    deletion.scores,
                );
                if !deletion.models_retrained.is_empty() {
                    println!(
                        "Trained again without it: {}.",
                        deletion.models_retrained.join(", ")
                    );
                }
                println!("Events with these identifiers will not be stored again (the deletion record keeps salted digests, not the identifiers).");
            }
        }
    }
    Ok(())
}
