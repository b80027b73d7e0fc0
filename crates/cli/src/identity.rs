//! `waymark identity …`: a customer's identifiers and merges, and operators' merge and unmerge.

use crate::{print_json, query, IdentityCommand, UsageError};
use anyhow::Result;
use serde_json::json;
use waymark_engine::Engine;

pub fn identity(store: &Engine, command: IdentityCommand, json_output: bool) -> Result<()> {
    match command {
        IdentityCommand::Show { identifier } => {
            let view = store.customer(&identifier)?.ok_or_else(|| {
                UsageError(format!("no customer has the identifier {identifier:?}"))
            })?;
            if json_output {
                print_json(&serde_json::to_value(&view)?);
            } else {
                println!(
                    "customer {} ({} events)",
                    view.customer_id,
                    view.events.len()
                );
                for id in &view.identifiers {
                    println!("  {}", id.key());
                }
                for edge in &view.merges {
                    println!(
                        "  edge {:>5}: {} ↔ {} by {:?} {} at {}{}",
                        edge.id,
                        edge.a,
                        edge.b,
                        edge.reason,
                        edge.message_id,
                        edge.at,
                        edge.unmerged_at
                            .map(|at| format!(" (undone at {at})"))
                            .unwrap_or_default()
                    );
                }
                for warning in &view.warnings {
                    println!("  refused: {}", warning.message);
                }
            }
        }
        IdentityCommand::Edges => {
            let edges = store.merge_edges();
            if json_output {
                print_json(&json!({ "edges": edges }));
            } else {
                for edge in edges {
                    println!(
                        "{:>6}  {} ↔ {}  {:?}  {}  {}",
                        edge.id,
                        edge.a,
                        edge.b,
                        edge.reason,
                        edge.at,
                        if edge.is_active() { "active" } else { "undone" }
                    );
                }
            }
        }
        IdentityCommand::Merge { a, b } => {
            let outcome = store.merge(&a, &b).map_err(query::usage)?;
            if json_output {
                print_json(&serde_json::to_value(&outcome)?);
            } else if let Some(edge) = outcome.edge {
                println!("Merged {a} and {b} into one customer (edge {edge}; `waymark identity unmerge {edge}` undoes it).");
            } else {
                println!("Not merged: {}", outcome.reason.unwrap_or_default());
            }
        }
        IdentityCommand::Unmerge { edge } => {
            store.unmerge(edge).map_err(query::usage)?;
            if json_output {
                print_json(&json!({ "unmerged": edge }));
            } else {
                println!("Edge {edge} undone; the two sides are separate customers again unless other edges still link them.");
            }
        }
    }
    Ok(())
}
