//! The rules API over HTTP: a bad definition set is a 422 naming every problem's field and position and changes
//! nothing; a good one (JSON or TOML) is saved with versions; validate and dry run save nothing; the worker a
//! server runs decides triggers from events posted to the collector, and its log and status say so.

mod common;

use common::{spawn_app, TestApp};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn put(app: &TestApp, content_type: &str, body: &str) -> (u16, Value) {
    app.put("/v1/rules", content_type, body)
}

fn track(app: &TestApp, user: &str, step: &str, minute: i64) {
    let at = chrono::DateTime::from_timestamp(1_772_409_600 + minute * 60, 0)
        .unwrap()
        .to_rfc3339();
    let (status, body) = app.post(
        "/v1/track",
        json!({"userId": user, "event": step, "timestamp": at, "properties": {"plan": "pro"}})
            .to_string(),
    );
    assert_eq!(status, 200, "{body}");
}

#[test]
fn definitions_are_validated_saved_dry_run_and_followed_live() {
    let app = spawn_app();
    track(&app, "old", "Payment Failed", -600);
    track(&app, "old", "Payment Completed", -590);

    // Five problems, all reported, none applied.
    let bad = r#"
[[segments]]
name = "failing"
condition = 'count("Payment Faild") >= 1'

[[triggers]]
name = "rescue"
on = "event"
step = "Payment Failed"
condition = 'cuont("Payment Failed") > 1 && (event.properties.plan == "pro"'
cap_per_customer_per_day = -1

[[triggers]]
name = "typed"
on = "event"
step = "Payment Failed"
condition = 'count("Payment Failed") > "2"'
"#;
    let (status, body) = put(&app, "application/toml", bad);
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("invalid_rules")),
        "{body}"
    );
    let errors = body["errors"].as_array().unwrap();
    let fields: Vec<&str> = errors
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert!(fields.contains(&"segments[failing].condition"), "{body}");
    assert!(
        fields.contains(&"triggers[rescue].cap_per_customer_per_day"),
        "{body}"
    );
    assert!(fields.contains(&"triggers[typed].condition"), "{body}");
    let unknown_step = errors
        .iter()
        .find(|e| e["field"] == "segments[failing].condition")
        .unwrap();
    assert_eq!(
        (
            unknown_step["line"].as_u64(),
            unknown_step["column"].as_u64()
        ),
        (Some(1), Some(7)),
        "{body}"
    );
    assert!(unknown_step["message"]
        .as_str()
        .unwrap()
        .contains("did you mean 'Payment Failed'"));
    let (_, rules) = app.get_json("/v1/rules");
    assert_eq!(rules["versions"], json!({}), "nothing was applied: {rules}");

    // A TOML syntax error names its line.
    let (status, body) = put(&app, "application/toml", "[[triggers]\nname = 1\n");
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["errors"][0]["line"], 1, "{body}");
    // JSON of the wrong shape names the field.
    let (status, body) = put(
        &app,
        "application/json",
        r#"{"triggers": [{"name": "x", "on": "sometimes"}]}"#,
    );
    assert_eq!(status, 422, "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("sometimes"),
        "{body}"
    );
    let (status, body) = put(&app, "text/csv", "a,b");
    assert_eq!(
        (status, body["code"].as_str()),
        (415, Some("unsupported_media_type")),
        "{body}"
    );

    // A good set as JSON: validated without saving, then saved.
    let good = json!({
        "segments": [{"name": "failing", "condition": "count(\"Payment Failed\") >= 1"}],
        "triggers": [{
            "name": "rescue", "on": "event", "step": "Payment Failed",
            "condition": "event.properties.plan == \"pro\"", "reentry": "every_time",
            "actions": [{"type": "event", "name": "Rescue Offered", "channel": "sms"}]
        }]
    });
    let (status, checked) = app.post("/v1/rules/validate", good.to_string());
    assert_eq!(status, 200, "{checked}");
    assert_eq!(checked["changed"], json!(["rescue"]));
    let (_, rules) = app.get_json("/v1/rules");
    assert_eq!(
        rules["versions"],
        json!({}),
        "validate saves nothing: {rules}"
    );
    let (status, saved) = put(&app, "application/json", &good.to_string());
    assert_eq!(status, 200, "{saved}");
    assert_eq!(saved["versions"]["rescue"], 1);
    let (_, rules) = app.get_json("/v1/rules");
    assert_eq!(rules["versions"]["rescue"], 1);
    assert!(
        rules["toml"].as_str().unwrap().contains("Rescue Offered"),
        "{rules}"
    );
    assert_eq!(rules["status"]["running"], true, "{rules}");

    // The dry run counts history; a bad window says which field.
    let (status, dry) = app.post("/v1/rules/dry-run", json!({}).to_string());
    assert_eq!(status, 200, "{dry}");
    assert_eq!(dry["triggers"][0]["fired"], 1, "{dry}");
    assert_eq!(dry["segments"]["failing"], 1, "{dry}");
    let (status, dry) = app.post("/v1/rules/dry-run", json!({"since": "5m"}).to_string());
    assert_eq!(status, 200, "{dry}");
    assert_eq!(
        dry["triggers"][0]["fired"], 0,
        "the only failure is 10 minutes before the end: {dry}"
    );
    let (status, dry) = app.post(
        "/v1/rules/dry-run",
        json!({"since": "last tuesday"}).to_string(),
    );
    assert_eq!(
        (status, dry["code"].as_str()),
        (400, Some("invalid_query")),
        "{dry}"
    );
    assert!(
        dry["message"].as_str().unwrap().starts_with("since:"),
        "{dry}"
    );

    // Live: a failure posted to the collector sets the trigger off; its event lands in the journey.
    track(&app, "ann", "Payment Failed", 0);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, log) = app.get_json("/v1/rules/log?trigger=rescue");
        let delivered = log["instances"].as_array().unwrap().iter().any(|i| {
            i["instance"]["customer"] == "ann" && i["deliveries"][0]["state"] == "delivered"
        });
        if delivered {
            break;
        }
        assert!(Instant::now() < deadline, "no delivered instance: {log}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (_, customer) = app.get_json("/v1/customers/ann");
    assert!(
        customer["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["step"] == "Rescue Offered"),
        "{customer}"
    );
    // Segments are live: ann entered with her failure; both failers are members and an analysis filters on them.
    let (status_code, segments) = app.get_json("/v1/segments");
    assert_eq!(status_code, 200, "{segments}");
    assert_eq!(segments["live"], true, "{segments}");
    assert_eq!(segments["segments"][0]["name"], "failing", "{segments}");
    assert_eq!(segments["segments"][0]["members"], 2, "{segments}");
    assert_eq!(
        segments["segments"][0]["sample"],
        json!(["ann", "old"]),
        "{segments}"
    );
    let (_, page) = app.get_json("/v1/segments/failing/members?offset=1&limit=5");
    assert_eq!(
        (page["total"].as_u64(), &page["customers"]),
        (Some(2), &json!(["old"])),
        "{page}"
    );
    let (status_code, missing) = app.get_json("/v1/segments/nope/members");
    assert_eq!(
        (status_code, missing["code"].as_str()),
        (404, Some("not_found")),
        "{missing}"
    );
    assert!(
        missing["message"].as_str().unwrap().contains("failing"),
        "{missing}"
    );
    let (status_code, overview) = app.post(
        "/v1/analyses/overview",
        json!({"filter": {"where": [{"property": "segment:failing", "op": "=", "value": true}]}})
            .to_string(),
    );
    assert_eq!(
        (status_code, overview["customers"].as_u64()),
        (200, Some(2)),
        "{overview}"
    );

    let (_, status) = app.get_json("/v1/rules/status");
    assert!(status["instances"].as_u64().unwrap() >= 1, "{status}");
    let (status_code, dead) = app.get_json("/v1/rules/log?state=dead");
    assert_eq!(
        (status_code, dead["instances"].as_array().map(Vec::len)),
        (200, Some(0))
    );
    let (status_code, missing) = app.post("/v1/rules/dead-letters/nope/replay", "");
    assert_eq!(
        (status_code, missing["code"].as_str()),
        (404, Some("not_found")),
        "{missing}"
    );
}
