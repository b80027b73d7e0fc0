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
    /// The next best actions for a customer now: the catalogue's items ranked for them, each with its reasons,
    /// the items held out for them, and with `--explain` why every other item is left out. The first offer of
    /// each item is recorded for the lift report (`waymark rules lift`).
    /// Example: `waymark customer nba cust-000042 --placement home --explain`
    Nba {
        /// Any of the customer's identifiers.
        identifier: String,
        /// Where the items will be shown (home, checkout, …); default: every item.
        #[arg(long)]
        placement: Option<String>,
        /// How many items (default: the catalogue's settings.limit).
        #[arg(long)]
        limit: Option<usize>,
        /// Also say why every other item is left out.
        #[arg(long)]
        explain: bool,
        /// Record nothing (a preview is not an offer in the lift report).
        #[arg(long)]
        preview: bool,
    },
}

fn unknown(identifier: &str) -> UsageError {
    UsageError(format!(
        "no customer has the identifier {identifier:?}; give a userId or anonymousId (optionally prefixed user: or anon:)"
    ))
}

fn print_nba(nba: &waymark_engine::nba::NextBestAction) {
    let mut known: Vec<String> = nba
        .current_stage
        .iter()
        .map(|stage| format!("stage {stage}"))
        .collect();
    for (name, values) in &nba.attributes {
        if !values.is_empty() {
            known.push(format!("{name} {}", values.join(", ")));
        }
    }
    if !nba.segments.is_empty() {
        known.push(format!("segments {}", nba.segments.join(", ")));
    }
    println!(
        "Next best actions for {}{}{}:",
        nba.customer_id,
        nba.placement
            .as_ref()
            .map(|p| format!(" at {p}"))
            .unwrap_or_default(),
        if known.is_empty() {
            String::new()
        } else {
            format!(" ({})", known.join("; "))
        }
    );
    if nba.items.is_empty() {
        println!("  nothing to offer: no item is eligible here (--explain says why)");
    }
    let width = nba.items.iter().map(|o| o.id.len()).max().unwrap_or(0);
    for offer in &nba.items {
        let reasons: Vec<String> = offer
            .reasons
            .iter()
            .map(|r| format!("{} {:+}", r.text, r.points))
            .collect();
        println!(
            "  {}. {:<width$}  {:>6.1} points  {}{}",
            offer.rank,
            offer.id,
            offer.points,
            offer.title,
            if reasons.is_empty() {
                String::new()
            } else {
                format!("  [{}]", reasons.join("; "))
            }
        );
    }
    for held in &nba.held_out {
        println!(
            "  held out: {} (would rank {}; never shown to this customer, to measure its lift)",
            held.id, held.rank
        );
    }
    for excluded in &nba.excluded {
        println!("  left out: {} — {}", excluded.id, excluded.why);
    }
}

pub fn customer(engine: &Engine, command: CustomerCommand, json_output: bool) -> Result<()> {
    match command {
        CustomerCommand::Nba {
            identifier,
            placement,
            limit,
            explain,
            preview,
        } => {
            let request = waymark_engine::nba::NbaRequest {
                placement,
                limit,
                explain,
                preview,
            };
            let nba = engine
                .next_best_action(&identifier, &request)
                .map_err(crate::query::usage)?
                .ok_or_else(|| unknown(&identifier))?;
            if json_output {
                print_json(&serde_json::to_value(&nba)?);
            } else {
                print_nba(&nba);
            }
        }
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
