//! `waymark keys …`: create, list and revoke the keys a server accepts. Works on the data directory while a
//! server runs (the server notices changes within a second), so a leaked key is revoked without a restart.

use crate::{print_json, UsageError};
use anyhow::Result;
use clap::Subcommand;
use serde_json::json;
use std::path::Path;
use waymark_engine::keys::{Keys, KeysError, Role};

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Create a key and print it (the only time it is shown). Example:
    /// `waymark keys create --role read --name "CX team"`
    Create {
        /// `write` (collect only: safe inside a web page or an app), `read` (analyses, customers, the UI) or
        /// `admin` (also identity merges, rules, deletion and keys).
        #[arg(long, value_parser = ["write", "read", "admin"])]
        role: String,
        /// Who or what the key is for ("Web SDK", "CX team").
        #[arg(long)]
        name: String,
    },
    /// List every key (id, role, name, a hint of its text, created, revoked); never the secrets.
    List,
    /// Revoke a key by its id (`waymark keys list`); a running server refuses it within a second.
    Revoke { id: String },
}

pub fn keys(data: &Path, command: KeysCommand, json_output: bool) -> Result<()> {
    let keys = Keys::open(data, Vec::new())?;
    match command {
        KeysCommand::Create { role, name } => {
            let role = Role::parse(&role).expect("clap checked the role");
            let created = keys.create(role, &name).map_err(usage)?;
            if json_output {
                print_json(&serde_json::to_value(&created)?);
            } else {
                println!("{}", created.key);
                eprintln!(
                    "Created {} key {} ({}). Keep it now: it is stored hashed and cannot be shown again.",
                    role.as_str(),
                    created.info.id,
                    created.info.name
                );
                match role {
                    Role::Write => eprintln!("Send it as the basic-auth user name (Segment's SDKs do) or as `writeKey` in the body."),
                    _ => eprintln!("Send it as `Authorization: Bearer KEY`; the UI asks for it on its login page."),
                }
            }
        }
        KeysCommand::List => {
            let list = keys.list();
            if json_output {
                print_json(&json!({ "keys": list }));
            } else if list.is_empty() {
                println!("No keys. Create one with `waymark keys create --role admin --name NAME`; until a read or admin key exists, `serve` listens on loopback only.");
            } else {
                println!(
                    "{:<10} {:<6} {:<24} {:<32} {:<21} revoked",
                    "id", "role", "name", "hint", "created"
                );
                for key in list {
                    println!(
                        "{:<10} {:<6} {:<24} {:<32} {:<21} {}",
                        key.id,
                        key.role.as_str(),
                        key.name,
                        key.hint,
                        key.created_at,
                        key.revoked_at.as_deref().unwrap_or("-")
                    );
                }
            }
        }
        KeysCommand::Revoke { id } => {
            let revoked = keys.revoke(&id).map_err(usage)?;
            if json_output {
                print_json(&serde_json::to_value(&revoked)?);
            } else {
                println!(
                    "Revoked {} key {} ({}) at {}; a running server refuses it within a second.",
                    revoked.role.as_str(),
                    revoked.id,
                    revoked.name,
                    revoked.revoked_at.as_deref().unwrap_or("now")
                );
            }
        }
    }
    Ok(())
}

/// A wrong id or name is the user's to fix (exit 2); a broken file or disk is not.
fn usage(error: KeysError) -> anyhow::Error {
    match error {
        KeysError::NotFound(_) | KeysError::InvalidName => UsageError(error.to_string()).into(),
        other => other.into(),
    }
}
