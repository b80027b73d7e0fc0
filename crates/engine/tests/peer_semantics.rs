//! The semantics users bring from PostHog and Mixpanel, on hand-computed cases through the whole engine (ingest,
//! store, analyses): unordered funnels count any k distinct steps, recurring retention puts a customer in every
//! period they start in, and customer traits from `identify` filter and break down whole customers.

use serde_json::{json, Value};
use waymark_engine::{ingest, Engine, StoreOptions};
use waymark_model::Timestamp;

fn post(engine: &Engine, events: &[Value]) {
    let body = serde_json::to_vec(&json!({ "batch": events })).unwrap();
    let parsed = ingest::parse_batch(&body, Timestamp::now()).unwrap();
    engine.ingest(parsed).unwrap();
}

fn track(user: &str, event: &str, time: &str) -> Value {
    json!({"type": "track", "userId": user, "event": event, "timestamp": time, "messageId": format!("{user}-{event}-{time}")})
}

fn identify(user: &str, traits: Value, time: &str) -> Value {
    json!({"type": "identify", "userId": user, "traits": traits, "timestamp": time, "messageId": format!("{user}-identify-{time}")})
}

/// Four customers: two of them staff (e-mail at acme.com), on two plans.
fn shop() -> (tempfile::TempDir, Engine) {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), StoreOptions::default()).unwrap();
    post(
        &engine,
        &[
            identify(
                "ann",
                json!({"email": "ann@example.com", "plan": "pro"}),
                "2026-03-02T09:00:00Z",
            ),
            track("ann", "Viewed", "2026-03-02T09:01:00Z"),
            track("ann", "Carted", "2026-03-02T09:02:00Z"),
            track("ann", "Bought", "2026-03-02T09:03:00Z"),
            // bob does the funnel backwards: an unordered funnel counts him at step 3, an ordered one at 1.
            track("bob", "Bought", "2026-03-02T10:00:00Z"),
            track("bob", "Carted", "2026-03-02T10:01:00Z"),
            track("bob", "Viewed", "2026-03-02T10:02:00Z"),
            identify(
                "bob",
                json!({"email": "bob@acme.com", "plan": "free"}),
                "2026-03-02T10:05:00Z",
            ),
            identify(
                "cat",
                json!({"email": "cat@acme.com"}),
                "2026-03-02T11:00:00Z",
            ),
            track("cat", "Carted", "2026-03-02T11:01:00Z"),
            // The trait changes: the latest value counts for the whole customer.
            identify("cat", json!({"plan": "pro"}), "2026-03-02T11:02:00Z"),
            track("dan", "Viewed", "2026-03-02T12:00:00Z"),
            track("dan", "Bought", "2026-03-02T12:05:00Z"),
            identify(
                "dan",
                json!({"email": "dan@example.com", "plan": "free"}),
                "2026-03-02T12:06:00Z",
            ),
        ],
    );
    (dir, engine)
}

fn counts(report: &Value) -> Vec<u64> {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|step| step["count"].as_u64().unwrap())
        .collect()
}

#[test]
fn unordered_funnels_count_any_k_distinct_steps() {
    let (_dir, engine) = shop();
    let funnel = |modes: Value| {
        engine
            .analyse_json(
                "funnel",
                json!({"steps": ["Viewed", "Carted", "Bought"], "window": "1h", "modes": modes}),
                None,
            )
            .unwrap()
            .json
    };
    // Ordered: ann 3, bob 1 (Viewed, nothing after), cat 0, dan 1 (Viewed, then no Carted).
    assert_eq!(counts(&funnel(json!([]))), [3, 1, 1]);
    // Any order: ann 3, bob 3, cat 1 (one distinct step), dan 2.
    assert_eq!(counts(&funnel(json!(["any_order"]))), [4, 3, 2]);
}

#[test]
fn trait_filters_and_breakdowns_act_on_whole_customers() {
    let (_dir, engine) = shop();
    // Leaving out staff by e-mail domain leaves ann and dan, with every one of their events.
    let outside = engine
        .analyse_json(
            "overview",
            json!({"filter": {"where": [{"property": "traits.email", "op": "not_contains", "value": "@acme.com"}]}}),
            None,
        )
        .unwrap()
        .json;
    assert_eq!(outside["customers"], 2, "{outside}");
    assert_eq!(
        outside["events"], 5,
        "ann's 3 and dan's 2 events; identify calls are not steps"
    );
    // The same filter in the CLI's words.
    let parsed =
        waymark_engine::registry::scope_parts::parse_condition("traits.email!~@acme.com").unwrap();
    assert_eq!(
        serde_json::to_value(parsed).unwrap(),
        json!({"property": "traits.email", "op": "not_contains", "value": "@acme.com"})
    );
    // A breakdown by plan, the latest value per customer: pro is ann and cat, free is bob and dan.
    let funnel = engine
        .analyse_json(
            "funnel",
            json!({"steps": ["Carted", "Bought"], "window": "1h", "breakdown": {"property": "traits.plan"}}),
            None,
        )
        .unwrap()
        .json;
    let groups: Vec<(String, Vec<u64>)> = funnel["breakdown"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|group| {
            (
                group["value"].as_str().unwrap_or("").to_string(),
                serde_json::from_value(group["counts"].clone()).unwrap(),
            )
        })
        .collect();
    // pro: ann carted and bought, cat carted; free: bob carted (then nothing), dan never carted.
    assert!(
        groups.contains(&("pro".to_string(), vec![2, 1])),
        "{groups:?}"
    );
    assert!(
        groups.contains(&("free".to_string(), vec![1, 0])),
        "{groups:?}"
    );
}

#[test]
fn recurring_retention_puts_a_customer_in_every_period_they_start_in() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), StoreOptions::default()).unwrap();
    post(
        &engine,
        &[
            track("ann", "Opened", "2026-03-02T09:00:00Z"),
            track("ann", "Opened", "2026-03-03T09:00:00Z"),
            track("ann", "Opened", "2026-03-05T09:00:00Z"),
            track("bob", "Opened", "2026-03-03T09:00:00Z"),
            track("bob", "Opened", "2026-03-04T09:00:00Z"),
        ],
    );
    let retention = |mode: &str| {
        engine
            .analyse_json(
                "retention",
                json!({"start": "Opened", "return": "Opened", "period": "day", "periods": 3, "mode": mode}),
                None,
            )
            .unwrap()
            .json
    };
    let cells = |report: &Value| -> Vec<(String, u64, Vec<u64>)> {
        report["cohorts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["cohort"].as_str().unwrap().to_string(),
                    c["customers"].as_u64().unwrap(),
                    serde_json::from_value(c["returned"].clone()).unwrap(),
                )
            })
            .collect()
    };
    // First time: ann's cohort is 03-02 (back on +1 and +3), bob's 03-03 (back on +1).
    assert_eq!(
        cells(&retention("first_time")),
        [
            ("2026-03-02".to_string(), 1, vec![0, 1, 0, 1]),
            ("2026-03-03".to_string(), 1, vec![0, 1, 0, 0]),
        ]
    );
    // Recurring (PostHog's default): ann is also in 03-03's and 03-05's cohorts, bob in 03-04's.
    assert_eq!(
        cells(&retention("recurring")),
        [
            ("2026-03-02".to_string(), 1, vec![0, 1, 0, 1]),
            ("2026-03-03".to_string(), 2, vec![0, 1, 1, 0]),
            ("2026-03-04".to_string(), 1, vec![0, 0, 0, 0]),
            ("2026-03-05".to_string(), 1, vec![0, 0, 0, 0]),
        ]
    );
}
