//! The dry run is a promise about the live worker: its counts per trigger (fired, capped, held out, quiet) are
//! what the worker decides when the same history then arrives through ingest in the same order with the
//! event-time clock — event, absence and segment-entry triggers, caps, quiet hours and a holdout included.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use waymark_engine::demo::{Business, DemoConfig};
use waymark_engine::rules::{RulesClock, RulesFile, RulesOptions, Status};
use waymark_engine::{ingest, Engine, StoreOptions};
use waymark_model::Timestamp;

const RULES: &str = r#"
[settings]
timezone = "Europe/Berlin"

[[segments]]
name = "struggling"
condition = 'count("Login Failed", "1d") >= 2'
expect_steps = ["Login Failed"]

[[triggers]]
name = "login-help"
on = "event"
step = "Login Failed"
reentry = "every_time"
cap_per_customer_per_day = 1
quiet_hours = "22:00-07:00"
expect_steps = ["Login Failed"]

[[triggers]]
name = "cart-reminder"
on = "absence"
after = "Checkout Started"
missing = "Order Completed"
within = "2h"
holdout = 0.3
expect_steps = ["Checkout Started", "Order Completed"]

[[triggers]]
name = "struggling-entry"
on = "segment_entry"
segment = "struggling"
cap_global_per_day = 3
"#;

/// The demo's events as the collector gets them, in batches of 200.
fn batches(business: Business) -> Vec<Vec<u8>> {
    let mut events = Vec::new();
    waymark_engine::demo::generate(
        DemoConfig {
            customers: 400,
            seed: 7,
            business,
            ..Default::default()
        },
        &mut |event| events.push(event),
    );
    events
        .chunks(200)
        .map(|chunk| serde_json::to_vec(&serde_json::json!({ "batch": chunk })).unwrap())
        .collect()
}

fn ingest_all(engine: &Engine, batches: &[Vec<u8>]) {
    for body in batches {
        let parsed = ingest::parse_batch(body, Timestamp(1_800_000_000_000_000)).unwrap();
        engine.ingest(parsed).unwrap();
    }
}

type Counts = BTreeMap<String, [usize; 4]>;

fn index(status: Status) -> usize {
    match status {
        Status::Fired => 0,
        Status::Capped => 1,
        Status::HeldOut => 2,
        Status::Quiet => 3,
    }
}

#[test]
fn the_dry_run_counts_what_the_live_worker_then_does() {
    let rules = RulesFile::from_toml(RULES).unwrap();
    let history = batches(Business::Retail);

    // The dry run, on a store that already holds the history.
    let dry_dir = tempfile::tempdir().unwrap();
    let dry_store = Engine::open(dry_dir.path(), StoreOptions::default()).unwrap();
    ingest_all(&dry_store, &history);
    let run = dry_store.dry_run(&rules, None, None).unwrap();
    let dry: Counts = run
        .triggers
        .iter()
        .map(|t| (t.trigger.clone(), [t.fired, t.capped, t.held_out, t.quiet]))
        .collect();
    for (name, counts) in &dry {
        assert!(counts[0] > 0, "{name} never fires in the dry run: {dry:?}");
    }
    assert!(
        dry["login-help"][1] + dry["login-help"][3] > 0,
        "caps or quiet hours matter: {dry:?}"
    );
    assert!(
        dry["cart-reminder"][2] > 0,
        "the holdout keeps some: {dry:?}"
    );
    assert!(
        dry["struggling-entry"][1] > 0,
        "the global cap matters: {dry:?}"
    );

    // Live: the definitions first, then the same history through ingest while the worker follows.
    let live_dir = tempfile::tempdir().unwrap();
    let live = std::sync::Arc::new(Engine::open(live_dir.path(), StoreOptions::default()).unwrap());
    live.save_rules(&rules).unwrap();
    live.start_rules(RulesOptions {
        clock: RulesClock::EventTime,
        snapshot_every: Duration::from_millis(200),
        ..RulesOptions::default()
    })
    .unwrap();
    ingest_all(&live, &history);
    let total_events = run.events as u64;
    let deadline = Instant::now() + Duration::from_secs(60);
    while live.rules_status().events < total_events {
        assert!(
            Instant::now() < deadline,
            "the worker is stuck: {:?}",
            live.rules_status()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Timers due by the latest event have fired once the worker has seen it; give it a moment to journal.
    let decided = || {
        let mut counts: Counts = dry.keys().map(|name| (name.clone(), [0; 4])).collect();
        for logged in live.trigger_log(None, None, usize::MAX).unwrap() {
            counts.get_mut(&logged.instance.trigger).unwrap()[index(logged.instance.status)] += 1;
        }
        counts
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while decided() != dry && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    // The segment's history adds up: the live entries and exits leave its members now.
    let report = live.segments_report(0).unwrap();
    assert_eq!(
        (report.segments[0].entered - report.segments[0].exited) as usize,
        report.segments[0].members
    );
    assert_eq!(report.segments[0].members, run.segments["struggling"]);
    live.stop_rules();
    assert_eq!(decided(), dry, "live (left) against the dry run (right)");
}
