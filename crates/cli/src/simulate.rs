//! `waymark simulate SCENARIO.yaml`: "play customer" — a scenario's personas run through the real ingest path
//! into a sandbox data directory holding a copy of this store's definitions; the report follows each simulated
//! customer step by step (what was offered, which triggers fired, where the journey left the blueprint).

use crate::{print_json, progress_bar, UsageError};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use waymark_engine::simulate::{
    parse_scenario, Scenario, SimulationOptions, SimulationReport, TEST_PREFIX,
};
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
        print_report(&report, Played::Sandbox(definitions_from.as_deref()));
    }
    Ok(())
}

fn clock(at: Timestamp) -> String {
    at.to_rfc3339()
        .get(..19)
        .unwrap_or_default()
        .replace('T', " ")
}

/// Where a report's run was played.
enum Played<'a> {
    /// A sandbox, with the definitions of this data directory (if any).
    Sandbox(Option<&'a Path>),
    Live,
}

fn print_report(report: &SimulationReport, from: Played<'_>) {
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
    match from {
        Played::Sandbox(from) => println!(
            "Sandbox {} ({}; webhooks journaled, not sent).",
            report.sandbox,
            match from {
                Some(dir) => format!("the definitions of {}", dir.display()),
                None => "no definitions".to_string(),
            }
        ),
        Played::Live => println!(
            "Played against {} in real time as test traffic (its analyses leave it out): its triggers acted as for any customer, webhooks included; receivers can tell the {TEST_PREFIX} ids apart.",
            report.sandbox
        ),
    }
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

/// Where a live run sends its events and reads its results.
pub struct LiveServer {
    pub url: String,
    /// A write key (collects the events).
    pub write_key: String,
    /// A read key (next best action, the trigger log, conformance); none on an open loopback server.
    pub read_key: Option<String>,
}

/// Runs `scenario` against a running server in real time: each event is sent when its time comes (a wait
/// takes as long as it says: the server's rules follow the wall clock), as test traffic; after each step the
/// server is asked what it would offer (a preview), and at the end for the customers' trigger instances and
/// their journeys against the blueprint.
pub fn simulate_live(scenario_path: &Path, server: &LiveServer, json_output: bool) -> Result<()> {
    use base64::Engine as _;
    use waymark_engine::simulate::SimulatedStep;
    let scenario = read_scenario(scenario_path)?;
    if scenario.start.is_some() && !json_output {
        eprintln!(
            "note: a live run starts now; the scenario's `start` is for sandboxes and the demo"
        );
    }
    let base = server.url.trim_end_matches('/').to_string();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(std::time::Duration::from_secs(30)))
        .http_status_as_error(false)
        .build()
        .into();
    let write_auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{}:", server.write_key))
    );
    let read_auth = server.read_key.as_ref().map(|key| format!("Bearer {key}"));
    let get = |path: &str| -> Result<serde_json::Value> {
        let mut request = agent.get(format!("{base}{path}"));
        if let Some(auth) = &read_auth {
            request = request.header("Authorization", auth);
        }
        let mut response = request
            .call()
            .with_context(|| format!("GET {base}{path}"))?;
        let status = response.status().as_u16();
        let body: serde_json::Value = response
            .body_mut()
            .read_json()
            .with_context(|| format!("GET {base}{path}: the answer is not JSON"))?;
        if status >= 400 {
            return Err(UsageError(format!(
                "GET {path}: {status} {}",
                body["message"].as_str().unwrap_or_default()
            ))
            .into());
        }
        Ok(body)
    };
    let placements: Vec<String> = if scenario.placements.is_empty() {
        let catalogue = get("/v1/catalogue")?;
        let mut all = std::collections::BTreeSet::new();
        for item in catalogue["catalogue"]["items"]
            .as_array()
            .into_iter()
            .flatten()
        {
            for placement in item["placements"].as_array().into_iter().flatten() {
                if let Some(p) = placement.as_str() {
                    all.insert(p.to_string());
                }
            }
        }
        all.into_iter().collect()
    } else {
        scenario.placements.clone()
    };
    let blueprint = match &scenario.blueprint {
        Some(name) => Some(name.clone()),
        None => get("/v1/blueprints")?["blueprints"][0]["name"]
            .as_str()
            .map(str::to_string),
    };
    let start = Timestamp::now().0 + 1_000_000;
    let timeline = scenario.timeline(start, true)?;
    let end = timeline.iter().map(|s| s.until).max().unwrap_or(start);
    let bar = progress_bar(
        json_output,
        timeline.len() as u64,
        "{spinner} playing {bar:30} {pos}/{len} steps {msg}",
    );
    let mut steps: std::collections::BTreeMap<String, Vec<SimulatedStep>> = Default::default();
    let mut events = 0;
    for step in &timeline {
        let due = step.until;
        let wait = due - Timestamp::now().0;
        if wait > 0 {
            bar.set_message(format!("next: {} in {:.0}s", step.label, wait as f64 / 1e6));
            std::thread::sleep(std::time::Duration::from_micros(wait as u64));
        }
        if let Some(message) = &step.message {
            let mut response = agent
                .post(format!("{base}/v1/batch"))
                .header("Authorization", &write_auth)
                .send_json(serde_json::json!({ "batch": [message] }))
                .with_context(|| format!("POST {base}/v1/batch"))?;
            let status = response.status().as_u16();
            let body: serde_json::Value = response.body_mut().read_json().unwrap_or_default();
            if status >= 400 || body["failed"].as_u64().unwrap_or(0) > 0 {
                return Err(UsageError(format!(
                    "the server refused {}'s step {}: {status} {}",
                    step.customer,
                    step.label,
                    body["message"]
                        .as_str()
                        .or(body["errors"][0]["message"].as_str())
                        .unwrap_or_default()
                ))
                .into());
            }
            events += 1;
            // The rules worker reads what was stored within milliseconds; give it a moment.
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        let mut offered = std::collections::BTreeMap::new();
        for placement in &placements {
            let nba = get(&format!(
                "/v1/customers/{}/next-best-action?placement={}&preview=true",
                urlencode(&step.customer),
                urlencode(placement)
            ))?;
            let items: Vec<String> = nba["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|o| o["id"].as_str().map(str::to_string))
                .collect();
            offered.insert(placement.clone(), items);
        }
        steps
            .entry(step.customer.clone())
            .or_default()
            .push(SimulatedStep {
                at: Timestamp(step.at),
                step: step.label.clone(),
                offered,
                triggers: Vec::new(),
            });
        bar.inc(1);
    }
    bar.finish_and_clear();
    let log: Vec<waymark_engine::rules::LoggedInstance> =
        serde_json::from_value(get("/v1/rules/log?limit=10000")?["instances"].take())
            .context("reading the server's trigger log")?;
    let mut report = SimulationReport {
        scenario: scenario.name.clone(),
        description: scenario.description.clone(),
        sandbox: base.clone(),
        start: Timestamp(start),
        end: Timestamp(end),
        events,
        triggers: Default::default(),
        blueprint: blueprint.clone(),
        customers: Vec::new(),
    };
    let (triggers, customers) = waymark_engine::simulate::assemble(
        &scenario,
        steps,
        &log,
        &|_| Vec::new(),
        &mut |id| -> Result<Option<waymark_engine::blueprints::CustomerConformance>> {
            match &blueprint {
                Some(name) => Ok(Some(serde_json::from_value(get(&format!(
                    "/v1/customers/{}/conformance?blueprint={}",
                    urlencode(id),
                    urlencode(name)
                ))?)?)),
                None => Ok(None),
            }
        },
    )?;
    report.triggers = triggers;
    report.customers = customers;
    if json_output {
        print_json(&serde_json::to_value(&report)?);
    } else {
        print_report(&report, Played::Live);
    }
    Ok(())
}

/// `text` as a URL path segment or query value.
fn urlencode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}
