//! Scenario simulation end to end (issue 18, acceptance 6): the repository's example scenario played against the
//! demo retailer's definitions (its catalogue and blueprint, and the planted checkout-reminder trigger) in a
//! sandbox; the report names the triggers fired, what was offered and the blueprint deviations; the source store
//! is untouched; the sandbox's analyses leave the simulated customers out unless asked; the demo takes the same
//! file as ordinary customers.

use std::path::PathBuf;
use std::sync::Arc;
use waymark_engine::demo::{DemoConfig, Plant, REMINDER_TRIGGER};
use waymark_engine::simulate::{parse_scenario, SimulationOptions, TEST_PREFIX};
use waymark_engine::Engine;
use waymark_store::StoreOptions;

fn example() -> (PathBuf, String) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/scenarios/sign-in-and-checkout.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    (path, text)
}

#[test]
fn the_example_scenario_runs_in_a_sandbox_and_reports_triggers_offers_and_deviations() {
    let source = tempfile::tempdir().unwrap();
    let engine = Arc::new(Engine::open(source.path(), StoreOptions::default()).unwrap());
    engine
        .ingest_demo(
            DemoConfig {
                customers: 1_500,
                seed: 42,
                plant: Plant {
                    intervention: true,
                    incident: false,
                },
                ..Default::default()
            },
            &mut || {},
        )
        .unwrap();
    let before = engine.stats();
    let (_, text) = example();
    let scenario = parse_scenario(&text, "sign-in-and-checkout.yaml").unwrap();
    let sandbox = tempfile::tempdir().unwrap();
    let mut seen = 0;
    let report = Engine::simulate(
        &scenario,
        &SimulationOptions {
            definitions_from: Some(source.path().to_path_buf()),
            sandbox: sandbox.path().join("run"),
        },
        &mut |done, _| seen = done,
    )
    .unwrap();
    assert_eq!(
        seen, 38,
        "each of the 35 events and 3 waits reported progress"
    );
    assert_eq!(report.events, 35);
    assert_eq!(report.customers.len(), 4);
    assert_eq!(report.blueprint.as_deref(), Some("purchase"));

    // The three abandoners each set the checkout reminder off (the trigger's holdout is a stable hash: these
    // three ids are treated), during their two-hour wait, an hour after the shipping costs.
    assert_eq!(
        report.triggers[REMINDER_TRIGGER].get("fired"),
        Some(&3),
        "{:?}",
        report.triggers
    );
    for customer in &report.customers[1..] {
        assert_eq!(customer.persona, "shipping-abandoner");
        assert!(customer.customer_id.starts_with(TEST_PREFIX));
        let wait = customer.steps.last().unwrap();
        assert_eq!(wait.step, "(waits 2h)");
        assert_eq!(wait.triggers.len(), 1, "{:?}", customer.steps);
        assert!(wait.triggers[0].starts_with("checkout-reminder (fired at "));
        let instance = &customer.trigger_instances[0].instance;
        let viewed = customer
            .steps
            .iter()
            .find(|s| s.step == "Shipping Options Viewed")
            .unwrap();
        assert_eq!(instance.at - viewed.at.0, 3_600_000_000);
        // The reminder's event action is stored; webhooks would be journaled as simulated.
        let traced = customer.conformance.as_ref().unwrap();
        let kinds: Vec<(String, String)> = traced
            .conformance
            .deviations
            .iter()
            .map(|d| {
                (
                    serde_json::to_value(d.kind)
                        .unwrap()
                        .as_str()
                        .unwrap()
                        .to_string(),
                    d.step.clone(),
                )
            })
            .collect();
        assert!(
            kinds.contains(&("dead_end".into(), "Shipping Options Viewed".into())),
            "{kinds:?}"
        );
        assert!(
            kinds.contains(&("unexpected".into(), "Checkout Reminder Sent".into())),
            "{kinds:?}"
        );
        // An iPhone owner is offered the iPhone accessories at home.
        assert_eq!(customer.steps[0].offered["home"][0], "iphone-accessories");
    }

    // The Android owner: the sign-in help is offered once the second failure is in, and the journey left the
    // design in Sign in with the failed logins; no trigger of the store's is about sign-in.
    let android = &report.customers[0];
    assert_eq!(android.persona, "android-sign-in");
    let second_failure = android
        .steps
        .iter()
        .rposition(|s| s.step == "Login Failed")
        .unwrap();
    assert_eq!(
        android.steps[second_failure].offered["support"],
        ["sign-in-help"]
    );
    assert!(android.steps[..second_failure].iter().all(|s| s
        .offered
        .get("support")
        .is_none_or(|items| items.is_empty())));
    assert_eq!(
        android.steps[second_failure].offered["home"][0],
        "sign-in-help"
    );
    let left = android
        .conformance
        .as_ref()
        .unwrap()
        .left_design_at
        .as_ref()
        .unwrap();
    assert_eq!(
        (left.step.as_str(), left.stage.as_str()),
        ("Login Failed", "Sign in")
    );
    assert!(android.trigger_instances.is_empty());

    // The source store is untouched.
    assert_eq!(engine.stats().events, before.events);

    // The sandbox keeps the run: its analyses leave test traffic out unless asked.
    let sandbox_engine = Engine::open(sandbox.path().join("run"), StoreOptions::default()).unwrap();
    let overview = |test_traffic: bool| {
        sandbox_engine
            .analyse_json(
                "overview",
                serde_json::json!({"filter": {"test_traffic": test_traffic}}),
                None,
            )
            .unwrap()
            .json["customers"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(overview(false), 0);
    assert_eq!(overview(true), 4);
    let log = sandbox_engine.trigger_log(None, None, 100).unwrap();
    assert_eq!(log.len(), 3);
}

#[test]
fn a_scenario_with_a_problem_names_it_and_the_demo_takes_the_same_file() {
    for (text, expected) in [
        ("name: x\npersonas: []\n", "personas: a scenario needs at least one persona"),
        (
            "name: x\npersonas:\n  - name: p\n    steps:\n      - track: A\n        wait: 1h\n",
            "personas[0].steps[0]: a step is exactly one of track, page, screen, identify or wait (this one has 2)",
        ),
        (
            "name: x\npersonas:\n  - name: p\n    steps:\n      - track: A\n        afterr: 1m\n",
            "f.yaml:6:9: personas[0].steps[0]: unknown field `afterr`",
        ),
        (
            "name: x\npersonas:\n  - name: p\n    steps:\n      - wait: soon\n",
            "personas[0].steps[0].wait: `soon` is not a duration",
        ),
        ("name: Bad Name\npersonas: []\n", "name: \"Bad Name\" is not a scenario name"),
    ] {
        let error = parse_scenario(text, "f.yaml").unwrap_err().to_string();
        assert!(error.contains(expected), "{error}\nshould say\n{expected}");
    }

    // The demo's generator takes the same file: its personas become ordinary customers of the demo.
    let (_, text) = example();
    let scenario = parse_scenario(&text, "example").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), StoreOptions::default()).unwrap();
    let stored = engine.ingest_scenario(&scenario).unwrap();
    assert_eq!(stored, 35);
    let overview = engine
        .analyse_json("overview", serde_json::json!({}), None)
        .unwrap()
        .json;
    assert_eq!(overview["customers"], 4, "ordinary customers are counted");
    assert!(engine
        .customer("sign-in-and-checkout-android-sign-in-1")
        .unwrap()
        .is_some());
}
