//! Identity stitching through the collector: cross-device journeys join retroactively, identified customers on a
//! shared device stay apart, and unmerge restores both sides.

mod common;

use common::spawn_app;
use serde_json::{json, Value};

fn steps(customer: &Value) -> Vec<String> {
    customer["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["step"].as_str().unwrap().to_string())
        .collect()
}

fn identifiers(customer: &Value) -> Vec<String> {
    let mut keys: Vec<String> = customer["identifiers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| {
            format!(
                "{}:{}",
                id["kind"].as_str().unwrap(),
                id["value"].as_str().unwrap()
            )
        })
        .collect();
    keys.sort();
    keys
}

#[test]
fn cross_device_journey_joins_one_customer_retroactively() {
    let app = spawn_app();
    let batch = |events: Value| {
        let (status, body) = app.post("/v1/batch", json!({ "batch": events }).to_string());
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["failed"], 0, "{body}");
    };
    batch(json!([
        {"type": "page", "anonymousId": "mac-cookie", "name": "Landing", "timestamp": "2026-03-01T10:00:00Z", "messageId": "e1"},
        {"type": "track", "anonymousId": "mac-cookie", "event": "Reviews Read", "timestamp": "2026-03-01T10:02:00Z", "messageId": "e2"},
    ]));
    // Before login the anonymous visit is its own customer.
    assert_eq!(
        steps(&app.get_json("/v1/customers/mac-cookie").1),
        ["page:Landing", "Reviews Read"]
    );
    batch(json!([
        {"type": "identify", "anonymousId": "mac-cookie", "userId": "ann", "traits": {"email": "ann@example.com"}, "timestamp": "2026-03-01T10:05:00Z", "messageId": "e3"},
        {"type": "track", "userId": "ann", "event": "Call Started", "context": {"channel": "contact centre"}, "timestamp": "2026-03-02T09:00:00Z", "messageId": "e4"},
        {"type": "screen", "anonymousId": "android-phone", "name": "Home", "timestamp": "2026-03-03T08:00:00Z", "messageId": "e5"},
        {"type": "identify", "anonymousId": "android-phone", "userId": "ann", "timestamp": "2026-03-03T08:01:00Z", "messageId": "e6"},
    ]));
    for identifier in [
        "ann",
        "mac-cookie",
        "android-phone",
        "user:ann",
        "anon:android-phone",
    ] {
        let (status, customer) = app.get_json(&format!("/v1/customers/{identifier}"));
        assert_eq!(status, 200, "{customer}");
        assert_eq!(customer["customer_id"], "ann");
        assert_eq!(
            identifiers(&customer),
            [
                "anonymous:android-phone",
                "anonymous:mac-cookie",
                "user:ann"
            ]
        );
        assert_eq!(
            steps(&customer),
            [
                "page:Landing",
                "Reviews Read",
                "identify",
                "Call Started",
                "screen:Home",
                "identify"
            ]
        );
        let channels: Vec<&str> = customer["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|event| event["channel"].as_str().unwrap())
            .collect();
        assert_eq!(
            channels,
            ["web", "other", "other", "call_center", "app", "other"]
        );
        assert_eq!(customer["merges"].as_array().unwrap().len(), 2);
        assert_eq!(
            customer["merges"][0]["message_id"], "e3",
            "each merge keeps the event that caused it"
        );
    }
    assert_eq!(app.get_json("/v1/customers/nobody").0, 404);
}

#[test]
fn identified_customers_on_a_shared_device_are_not_merged_and_unmerge_restores_both() {
    let app = spawn_app();
    let (status, body) = app.post(
        "/v1/batch",
        json!({"batch": [
            {"type": "identify", "anonymousId": "family-tablet", "userId": "ann", "timestamp": "2026-03-01T10:00:00Z", "messageId": "s1"},
            {"type": "track", "anonymousId": "family-tablet", "userId": "ann", "event": "Order Completed", "timestamp": "2026-03-01T10:05:00Z", "messageId": "s2"},
            {"type": "identify", "anonymousId": "family-tablet", "userId": "bob", "timestamp": "2026-03-02T19:00:00Z", "messageId": "s3"},
            {"type": "track", "anonymousId": "family-tablet", "userId": "bob", "event": "Device Not Working", "timestamp": "2026-03-02T19:05:00Z", "messageId": "s4"},
            {"type": "identify", "anonymousId": "bob-laptop", "userId": "bob", "timestamp": "2026-03-03T19:00:00Z", "messageId": "s5"},
        ]})
        .to_string(),
    );
    assert_eq!(
        (status, body["accepted"].as_u64()),
        (200, Some(5)),
        "{body}"
    );
    let (_, ann) = app.get_json("/v1/customers/ann");
    let (_, bob) = app.get_json("/v1/customers/bob");
    assert_eq!(ann["customer_id"], "ann");
    assert_eq!(
        bob["customer_id"], "bob",
        "bob is not merged into ann through the shared tablet"
    );
    assert_eq!(steps(&ann), ["identify", "Order Completed"]);
    assert_eq!(steps(&bob), ["identify", "Device Not Working", "identify"]);
    assert_eq!(bob["warnings"][0]["code"], "both_identified", "{bob}");
    assert_eq!(bob["warnings"][0]["message_id"], "s3");

    // Forcing the merge joins them; unmerging that edge restores both customers exactly.
    let (status, merged) = app.post("/v1/identity/merge", r#"{"a": "ann", "b": "bob"}"#);
    assert_eq!(
        (status, merged["merged"].as_bool()),
        (200, Some(true)),
        "{merged}"
    );
    let (_, joined) = app.get_json("/v1/customers/bob");
    assert_eq!(joined["customer_id"], "ann");
    assert_eq!(steps(&joined).len(), 5);
    let (status, undone) = app.post(
        "/v1/identity/unmerge",
        json!({ "edge": merged["edge"] }).to_string(),
    );
    assert_eq!(status, 200, "{undone}");
    assert_eq!(
        steps(&app.get_json("/v1/customers/ann").1),
        ["identify", "Order Completed"]
    );
    let (_, bob_again) = app.get_json("/v1/customers/bob");
    assert_eq!(
        (bob_again["customer_id"].as_str(), steps(&bob_again).len()),
        (Some("bob"), 3)
    );
    assert_eq!(
        app.post(
            "/v1/identity/unmerge",
            json!({ "edge": merged["edge"] }).to_string()
        )
        .0,
        404
    );
}
