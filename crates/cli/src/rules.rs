//! `waymark rules …`: check, apply, show and dry-run the journey management definitions (segments and triggers),
//! and read the trigger delivery log. A definition problem is printed as `FILE:LINE:COLUMN: FIELD: message`, the
//! way compilers print theirs, and exits with 2.

use crate::{print_json, UsageError};
use anyhow::Result;
use clap::Subcommand;
use serde_json::json;
use std::path::{Path, PathBuf};
use waymark_engine::rules::{position_in_toml, DefinitionErrors, RulesFile, Since, RULES_FILE};
use waymark_engine::{Engine, Error};
use waymark_model::Timestamp;

#[derive(Subcommand)]
pub enum RulesCommand {
    /// Validate a definitions file against the store (default: the one in force) without applying it.
    Check {
        /// A TOML definitions file.
        file: Option<PathBuf>,
    },
    /// Validate FILE and make it the definitions in force (changed triggers get a new version). A running
    /// server holds the data directory: send the file with `PUT /v1/rules` there instead.
    Apply { file: PathBuf },
    /// Print the definitions in force with each trigger's version.
    Show,
    /// Run definitions over the stored history without delivering anything: how often each trigger would
    /// have fired (and been capped, held out or held for quiet hours), and each segment's size at the end.
    /// Example: `waymark rules dry-run --since 7d`
    DryRun {
        /// A TOML definitions file (default: the one in force).
        file: Option<PathBuf>,
        /// Count instances from here: a span before the end (7d, 36h) or an RFC 3339 instant; history
        /// before it only builds facts and segments. Default: all history.
        #[arg(long)]
        since: Option<String>,
        /// The end of the run, an RFC 3339 instant (default: the latest event).
        #[arg(long)]
        until: Option<String>,
    },
    /// The latest trigger instances, newest first, with the state of each action's delivery.
    Log {
        /// Only this trigger's instances.
        #[arg(long)]
        trigger: Option<String>,
        /// Only instances with a delivery in this state.
        #[arg(long, value_parser = ["pending", "delivered", "simulated", "dead"])]
        state: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Add one segment to the definitions in force, or replace the one of that name (validated with the whole
    /// set; nothing changes on a problem). A persona's condition (`waymark query personas`) saved this way is
    /// followed live. Example: `waymark rules add-segment support-seekers --condition 'did("Device Not Working")'`
    AddSegment {
        name: String,
        /// The CEL condition.
        #[arg(long)]
        condition: String,
        #[arg(long, default_value = "")]
        description: String,
        /// Steps the condition names that no stored event has yet (repeatable).
        #[arg(long = "expect-step")]
        expect_steps: Vec<String>,
    },
    /// The KPI board: each monitor read along the stored history, whether it is in alert, and when it fired.
    Monitors {
        /// A TOML definitions file (default: the one in force).
        file: Option<PathBuf>,
    },
    /// Each trigger version's treated customers against its holdout: goal rate and time to goal, the difference
    /// with its confidence interval and p-value. Example: `waymark rules lift --goal "Order Completed" --window 7d`
    Lift {
        /// Goal steps (names or `*` patterns); repeat for several. Default: the usual goal name the data has.
        #[arg(long = "goal")]
        goals: Vec<String>,
        /// How long after exposure a goal counts (default 7d).
        #[arg(long)]
        window: Option<String>,
        /// Only this trigger's versions.
        #[arg(long)]
        trigger: Option<String>,
        /// The intervals' confidence (default 0.95).
        #[arg(long)]
        confidence: Option<f64>,
    },
}

pub fn rules(store: &Engine, command: RulesCommand, json_output: bool) -> Result<()> {
    match command {
        RulesCommand::Check { file } => {
            let (path, file) = load(store, file.as_deref())?;
            let checked = store
                .check_rules(&file.file)
                .map_err(|error| located(&path, &file.text, error))?;
            if json_output {
                print_json(
                    &json!({"valid": true, "file": path, "versions": checked.versions,
                                   "changed": checked.changed}),
                );
            } else {
                println!(
                    "{}: {} valid; nothing applied",
                    path.display(),
                    counted(file.file.segments.len(), "segment", "segments")
                        + " and "
                        + &counted(file.file.triggers.len(), "trigger", "triggers")
                );
                print_would_change(&checked.changed, &checked.versions);
            }
        }
        RulesCommand::Apply { file } => {
            let (path, file) = load(store, Some(&file))?;
            let saved = store
                .save_rules(&file.file)
                .map_err(|error| located(&path, &file.text, error))?;
            if json_output {
                print_json(&serde_json::to_value(&saved)?);
            } else {
                println!(
                    "applied {}: {}, {} changed{}",
                    path.display(),
                    counted(saved.versions.len(), "trigger", "triggers"),
                    saved.changed.len(),
                    if saved.changed.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", saved.changed.join(", "))
                    }
                );
            }
        }
        RulesCommand::AddSegment {
            name,
            condition,
            description,
            expect_steps,
        } => {
            let replaced = store
                .save_segment(waymark_engine::rules::SegmentSpec {
                    name: name.clone(),
                    description,
                    condition,
                    expect_steps,
                })
                .map_err(|error| match error {
                    Error::Rules(DefinitionErrors(errors)) => UsageError(format!(
                        "the segment was not saved:\n{}",
                        errors
                            .iter()
                            .map(|e| e.to_string())
                            .collect::<Vec<_>>()
                            .join("\n")
                    ))
                    .into(),
                    other => crate::query::usage(other),
                })?;
            if json_output {
                print_json(&json!({"segment": name, "replaced": replaced}));
            } else {
                println!(
                    "segment {name} {} in {RULES_FILE} (with a server running, PUT /v1/segments/{name} instead)",
                    if replaced { "replaced" } else { "added" }
                );
            }
        }
        RulesCommand::Show => {
            let file = store.rules_file()?;
            let versions = store.rules_versions();
            if json_output {
                print_json(&json!({"definitions": file, "versions": versions}));
            } else if file.segments.is_empty() && file.triggers.is_empty() {
                println!(
                    "no definitions in force; write a rules file and `waymark rules apply FILE`"
                );
            } else {
                for trigger in &file.triggers {
                    println!(
                        "# trigger {}: version {}",
                        trigger.name,
                        versions.get(&trigger.name).copied().unwrap_or(1)
                    );
                }
                print!("{}", file.to_toml());
            }
        }
        RulesCommand::DryRun { file, since, until } => {
            let since = since
                .as_deref()
                .map(Since::parse)
                .transpose()
                .map_err(|message| UsageError(format!("--since: {message}")))?;
            let until = until
                .as_deref()
                .map(|text| {
                    Timestamp::parse(text).map(|at| at.0).ok_or_else(|| {
                        UsageError(format!(
                            "--until: '{text}' is not an RFC 3339 instant (2026-03-08T00:00:00Z)"
                        ))
                    })
                })
                .transpose()?;
            let (path, file) = load(store, file.as_deref())?;
            let run = store
                .dry_run(&file.file, since, until)
                .map_err(|error| located(&path, &file.text, error))?;
            if json_output {
                print_json(&serde_json::to_value(&run)?);
                return Ok(());
            }
            let day = |at: i64| Timestamp(at).to_rfc3339();
            println!(
                "dry run of {} over {} events, {} to {}",
                path.display(),
                run.events,
                run.since.map_or("the first event".into(), day),
                day(run.until)
            );
            if run.triggers.is_empty() {
                println!("  no triggers");
            } else {
                println!(
                    "  {:<28} {:>8} {:>8} {:>9} {:>8} {:>10}",
                    "trigger", "fired", "capped", "held out", "quiet", "customers"
                );
                for t in &run.triggers {
                    println!(
                        "  {:<28} {:>8} {:>8} {:>9} {:>8} {:>10}",
                        t.trigger, t.fired, t.capped, t.held_out, t.quiet, t.customers
                    );
                }
            }
            for (segment, members) in &run.segments {
                println!("  segment {segment}: {members} members at the end");
            }
            if run.evaluation_errors > 0 {
                println!(
                    "  {} conditions could not be evaluated (counted as false)",
                    run.evaluation_errors
                );
            }
        }
        RulesCommand::Log {
            trigger,
            state,
            limit,
        } => {
            let log = store.trigger_log(trigger.as_deref(), state.as_deref(), limit)?;
            if json_output {
                print_json(&json!({ "instances": log }));
            } else if log.is_empty() {
                println!("no trigger instances");
            } else {
                for logged in &log {
                    let instance = &logged.instance;
                    let deliveries: Vec<String> = logged
                        .deliveries
                        .iter()
                        .map(|d| {
                            format!(
                                "{} {} ({} attempts{})",
                                d.kind,
                                d.state,
                                d.attempts,
                                d.last_error
                                    .as_deref()
                                    .map(|e| format!(", {e}"))
                                    .unwrap_or_default()
                            )
                        })
                        .collect();
                    println!(
                        "{}  {} v{}  {}  {}{}  {}",
                        Timestamp(instance.at).to_rfc3339(),
                        instance.trigger,
                        instance.version,
                        instance.customer,
                        serde_json::to_value(instance.status)?
                            .as_str()
                            .unwrap_or_default(),
                        instance
                            .capped_by
                            .as_deref()
                            .map(|c| format!(" by {c}"))
                            .unwrap_or_default(),
                        deliveries.join("; ")
                    );
                }
            }
        }
        RulesCommand::Monitors { file } => {
            let (path, loaded) = load(store, file.as_deref())?;
            let board = store
                .monitors_report(Some(&loaded.file))
                .map_err(|error| located(&path, &loaded.text, error))?;
            if json_output {
                print_json(&serde_json::to_value(&board)?);
            } else if board.monitors.is_empty() {
                println!(
                    "no monitors: define them under [[monitors]] in rules.toml (docs/rules.md)"
                );
            } else {
                for monitor in &board.monitors {
                    println!("{}", monitor.headline);
                    println!("  {}; fires {}", monitor.metric, monitor.test);
                    for at in &monitor.fired {
                        println!("  fired {}", Timestamp(*at).to_rfc3339());
                    }
                }
            }
        }
        RulesCommand::Lift {
            goals,
            window,
            trigger,
            confidence,
        } => {
            let report = store.rules_lift(&waymark_engine::lift::LiftRequest {
                goals,
                window,
                trigger,
                confidence,
            })?;
            if json_output {
                print_json(&serde_json::to_value(&report)?);
            } else if report.triggers.is_empty() {
                println!("no trigger instances yet: lift is measured once triggers have fired or held customers out");
            } else {
                println!(
                    "Goal: {} within {} of exposure; {:.0}% intervals",
                    report.goals.join(" or "),
                    report.window,
                    report.confidence * 100.0
                );
                for lift in &report.triggers {
                    let arm = |a: &waymark_engine::lift::Arm| {
                        format!(
                            "{:>6} customers, {:>5.1}% reach the goal{}",
                            a.customers,
                            a.goal_rate * 100.0,
                            a.median_hours_to_goal
                                .map(|h| format!(", median {h:.1} h to it"))
                                .unwrap_or_default()
                        )
                    };
                    println!("\n{}", lift.headline);
                    println!("  treated   {}", arm(&lift.stats.treated));
                    println!("  held out  {}", arm(&lift.stats.held_out));
                    if let Some(d) = lift.stats.hours_to_goal_difference {
                        println!(
                            "  time to goal: {:+.1} h treated against held out ({:+.1} to {:+.1} h, p {})",
                            d.value,
                            d.low,
                            d.high,
                            waymark_engine::lift::p_text(d.p_value)
                        );
                    }
                    if lift.stats.in_flight > 0 || lift.capped > 0 {
                        println!(
                            "  not counted: {} still in their window, {} only ever capped",
                            lift.stats.in_flight, lift.capped
                        );
                    }
                }
            }
        }
    }
    Ok(())
}

fn counted(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

struct Loaded {
    text: String,
    file: RulesFile,
}

/// Reads and parses `file`, or the definitions in force.
fn load(store: &Engine, file: Option<&Path>) -> Result<(PathBuf, Loaded)> {
    let path = file.map_or_else(|| store.dir().join(RULES_FILE), Path::to_path_buf);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound && file.is_none() => {
            String::new()
        }
        Err(error) => {
            return Err(UsageError(format!("{}: {error}", path.display())).into());
        }
    };
    let file = RulesFile::from_toml(&text)
        .map_err(|errors| located(&path, &text, Error::Rules(errors)))?;
    Ok((path, Loaded { text, file }))
}

/// What applying a checked file would change: the definitions (triggers, items) that get a new version.
pub(crate) fn print_would_change(
    changed: &[String],
    versions: &std::collections::BTreeMap<String, u32>,
) {
    if !changed.is_empty() {
        println!(
            "  applying it would change: {}",
            changed
                .iter()
                .map(|name| format!("{name} (→ v{})", versions[name]))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
}

/// A definitions (or catalogue) error as `FILE:LINE:COLUMN: FIELD: message` lines (one per problem); other
/// errors unchanged.
pub(crate) fn located(path: &Path, text: &str, error: Error) -> anyhow::Error {
    let (what, errors) = match error {
        Error::Rules(DefinitionErrors(errors)) => ("the definitions", errors),
        Error::Catalogue(DefinitionErrors(errors)) => ("the catalogue", errors),
        other => return anyhow::Error::new(other).context(path.display().to_string()),
    };
    let lines: Vec<String> = errors
        .iter()
        .map(|error| {
            let at = position_in_toml(text, error)
                .map(|(line, column)| format!("{}:{line}:{column}", path.display()))
                .unwrap_or_else(|| path.display().to_string());
            if error.field.ends_with(".toml") {
                format!("{at}: {}", error.message)
            } else {
                format!("{at}: {}: {}", error.field, error.message)
            }
        })
        .collect();
    UsageError(format!(
        "{} problem{} in {what}, nothing applied:\n{}",
        lines.len(),
        if lines.len() == 1 { "" } else { "s" },
        lines.join("\n")
    ))
    .into()
}
