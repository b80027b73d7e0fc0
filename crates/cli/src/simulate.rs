//! `waymark simulate SCENARIO.yaml`: "play customer" — a scenario's personas run through the real ingest path
//! into a sandbox data directory holding a copy of this store's definitions; the report follows each simulated
//! customer step by step (what was offered, which triggers fired, where the journey left the blueprint).

use crate::{print_json, progress_bar, UsageError};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use waymark_engine::simulate::{parse_scenario, Scenario, SimulationOptions, SimulationReport};
use waymark_engine::Engine;
use waymark_model::Timestamp;

/// A scenario file, its problems naming the file (and the line).
pub fn read_scenario(path: &Path) -> Result<Scenario> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse_scenario(&text, &path.display().to_string())
        .map_err(|error| UsageError(error.to_string()).into())
}

pub fn simulate(
    data: &Path,
    scenario: &Path,
    sandbox: Option<PathBuf>,
    empty: bool,
    json_output: bool,
) -> Result<()> {
    let scenario = read_scenario(scenario)?;
    let sandbox = match sandbox {
        Some(dir) => dir,
        None => std::env::temp_dir().join(format!(
            "waymark-sim-{}-{}",
            scenario.name,
            Timestamp::now().0 / 1_000_000
        )),
    };
    let definitions_from = (!empty && data.join("FORMAT").is_file()).then(|| data.to_path_buf());
    let bar = progress_bar(
        json_output,
        0,
        "{spinner} simulating {bar:30} {pos}/{len} steps {msg}",
    );
    let report = Engine::simulate(
        &scenario,
        &SimulationOptions {
            definitions_from: definitions_from.clone(),
            sandbox,
        },
        &mut |done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        },
    )
    .map_err(crate::query::usage)?;
    bar.finish_and_clear();
    if json_output {
        print_json(&serde_json::to_value(&report)?);
    } else {
        print_report(&report, definitions_from.as_deref());
    }
    Ok(())
}

fn clock(at: Timestamp) -> String {
    at.to_rfc3339()
        .get(..19)
        .unwrap_or_default()
        .replace('T', " ")
}

fn print_report(report: &SimulationReport, from: Option<&Path>) {
    println!(
        "Scenario {}: {} simulated customer{}, {} events from {} to {} UTC{}",
        report.scenario,
        report.customers.len(),
        if report.customers.len() == 1 { "" } else { "s" },
        report.events,
        clock(report.start),
        clock(report.end),
        if report.description.is_empty() {
            String::new()
        } else {
            format!(" — {}", report.description)
        }
    );
    println!(
        "Sandbox {} ({}; webhooks journaled, not sent).",
        report.sandbox,
        match from {
            Some(dir) => format!("the definitions of {}", dir.display()),
            None => "no definitions".to_string(),
        }
    );
    if report.triggers.is_empty() {
        println!("No trigger fired.");
    } else {
        let fired: Vec<String> = report
            .triggers
            .iter()
            .map(|(name, by)| {
                let counts: Vec<String> = by.iter().map(|(s, n)| format!("{n} {s}")).collect();
                format!("{name} ({})", counts.join(", "))
            })
            .collect();
        println!("Triggers: {}.", fired.join("; "));
    }
    for customer in &report.customers {
        println!();
        println!("{} — {}", customer.persona, customer.customer_id);
        let width = customer
            .steps
            .iter()
            .map(|s| s.step.chars().count())
            .max()
            .unwrap_or(0)
            .min(40);
        let mut last_offer: Option<String> = None;
        for step in &customer.steps {
            let mut notes = Vec::new();
            if !step.triggers.is_empty() {
                notes.push(format!("→ {}", step.triggers.join(", ")));
            }
            let offer = step
                .offered
                .iter()
                .filter(|(_, items)| !items.is_empty())
                .map(|(placement, items)| format!("{placement}: {}", items.join(", ")))
                .collect::<Vec<_>>()
                .join("; ");
            // An offer is said when it changes.
            if !offer.is_empty() && last_offer.as_deref() != Some(offer.as_str()) {
                notes.push(format!("offered {offer}"));
            }
            last_offer = Some(offer);
            println!(
                "  {}  {:<width$}  {}",
                clock(step.at).get(11..).unwrap_or_default(),
                step.step,
                notes.join("  ")
            );
        }
        if !customer.segments.is_empty() {
            println!("  segments at the end: {}", customer.segments.join(", "));
        }
        if let Some(traced) = &customer.conformance {
            let journey = &traced.conformance;
            let said = |d: &waymark_engine::blueprints::Deviation| {
                let kind = serde_json::to_value(d.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(|k| k.replace('_', " ")))
                    .unwrap_or_default();
                format!(
                    "{kind} {}{}",
                    d.step,
                    if d.stage.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", d.stage)
                    }
                )
            };
            let left = traced.left_design_at.as_ref().map(|d| {
                format!(
                    "left the design at {}: {}",
                    clock(Timestamp(d.at_us)).get(11..).unwrap_or_default(),
                    said(d)
                )
            });
            println!(
                "  blueprint {}: {}; {} deviation{}; {} the goal",
                report.blueprint.as_deref().unwrap_or_default(),
                if journey.fits {
                    "fits the design".to_string()
                } else {
                    left.unwrap_or_else(|| "does not fit".into())
                },
                journey.deviations.len(),
                if journey.deviations.len() == 1 {
                    ""
                } else {
                    "s"
                },
                if journey.reached_goal {
                    "reached"
                } else {
                    "did not reach"
                }
            );
            for deviation in journey.deviations.iter().take(12) {
                println!(
                    "    {}  {}",
                    clock(Timestamp(deviation.at_us))
                        .get(11..)
                        .unwrap_or_default(),
                    said(deviation)
                );
            }
            if journey.deviations.len() > 12 {
                println!(
                    "    … {} more (--json has all)",
                    journey.deviations.len() - 12
                );
            }
        }
    }
}
