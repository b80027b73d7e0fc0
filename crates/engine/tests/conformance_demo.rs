//! The demo's saved purchase blueprint (`blueprints/purchase.toml`) against its journeys: each planted deviation
//! (docs/demo.md) is a conformance finding in the stage where it happens. And saved blueprints behave as files a
//! team edits: listed, replaced, refused with the field named, deleted.

mod common;

use serde_json::{json, Value};
use waymark_engine::blueprints::parse_blueprint;

fn finding<'a>(report: &'a Value, kind: &str, stage: &str, step: &str) -> &'a Value {
    report["deviations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["kind"] == kind && d["stage"] == stage && d["step"] == step)
        .unwrap_or_else(|| {
            let all: Vec<String> = report["deviations"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["headline"].as_str().unwrap().to_string())
                .collect();
            panic!(
                "no {kind} finding for {step} in {stage}:\n{}",
                all.join("\n")
            )
        })
}

#[test]
fn the_purchase_blueprint_shows_each_planted_deviation_in_its_stage() {
    let (_dir, engine) = common::demo_engine(4_000);
    let saved = engine.blueprints().unwrap();
    assert_eq!(saved.len(), 1);
    assert_eq!(saved[0].name, "purchase");
    let report = engine
        .analyse_json(
            "conformance",
            json!({"blueprint": "purchase", "top": 1000}),
            None,
        )
        .unwrap()
        .json;
    assert!(
        report["unknown_steps"].is_null(),
        "{}",
        report["unknown_steps"]
    );

    // The login loop: failed logins the design does not have, and the attempt repeated, in "Sign in".
    let failed = finding(&report, "unexpected", "Sign in", "Login Failed");
    assert!(failed["goals_lost"].as_f64().unwrap() > 0.0, "{failed}");
    finding(&report, "repeated", "Sign in", "Login Attempted");

    // The store detour: a visit the design does not have, the order on the store's channel, the online
    // checkout skipped.
    finding(&report, "unexpected", "Buy", "Store Visit");
    let off = finding(&report, "off_channel", "Buy", "Order Completed");
    assert_eq!(off["channel"], "store");
    finding(&report, "skipped", "Buy", "Payment Submitted");

    // The shipping-cost dead end: the biggest dead end in "Buy", costing goals.
    let dead_ends: Vec<&Value> = report["deviations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["kind"] == "dead_end" && d["stage"] == "Buy")
        .collect();
    assert_eq!(
        dead_ends[0]["step"], "Shipping Options Viewed",
        "{dead_ends:?}"
    );
    assert!(dead_ends[0]["goals_lost"].as_f64().unwrap() > 50.0);
    assert!(dead_ends[0]["headline"]
        .as_str()
        .unwrap()
        .contains("went no further than Shipping Options Viewed (Buy)"));

    // The slow installation: past its 72 h standard, in "Install".
    let slow = finding(
        &report,
        "over_standard_time",
        "Install",
        "Installation Completed",
    );
    let install = report["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "Install")
        .unwrap();
    let slow_share = slow["journeys"].as_f64().unwrap() / install["entered"].as_f64().unwrap();
    // A quarter of the customers live in the North, where installation takes 5–12 days.
    assert!((0.15..0.35).contains(&slow_share), "{slow_share}");
}

#[test]
fn saved_blueprints_are_files_listed_replaced_refused_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let engine =
        waymark_engine::Engine::open(dir.path(), waymark_engine::StoreOptions::default()).unwrap();
    assert!(engine.blueprints().unwrap().is_empty());
    let missing = engine.blueprint("onboarding").unwrap_err().to_string();
    assert!(missing.contains("none is saved yet"), "{missing}");

    let text = r#"
name = "onboarding"
goal = "Account Funded"
[[stages]]
name = "Apply"
steps = ["Application Started", { step = "ID Checked", standard_time = "1d" }]
[[stages]]
name = "Fund"
steps = ["Account Funded"]
"#;
    let blueprint = parse_blueprint(text, "onboarding.toml").unwrap();
    let saved = engine.save_blueprint(&blueprint).unwrap();
    assert!(!saved.replaced);
    // No event has these steps yet: saved, and said.
    assert_eq!(saved.unknown_steps.len(), 3);
    assert!(engine.save_blueprint(&blueprint).unwrap().replaced);
    assert_eq!(engine.blueprint("onboarding").unwrap(), blueprint);
    assert!(dir.path().join("blueprints/onboarding.toml").exists());
    let listed = engine.blueprints().unwrap();
    assert_eq!(listed[0].stages, ["Apply", "Fund"]);
    assert_eq!(listed[0].steps, 3);

    // A problem names its line (TOML) or its field (the design).
    let error = parse_blueprint("name = \"x\"\nstages = 3\n", "bad.toml")
        .unwrap_err()
        .to_string();
    assert!(error.starts_with("bad.toml: line 2"), "{error}");
    let mut bad = blueprint.clone();
    bad.stages[0].standard_time = Some("soon".into());
    let error = engine.save_blueprint(&bad).unwrap_err().to_string();
    assert!(error.contains("stages[0].standard_time"), "{error}");
    bad.name = "Not A Name".into();
    assert!(engine
        .save_blueprint(&bad)
        .unwrap_err()
        .to_string()
        .contains("lower-case"));

    engine.delete_blueprint("onboarding").unwrap();
    assert!(engine.blueprints().unwrap().is_empty());
    assert!(engine.delete_blueprint("onboarding").is_err());
}
