//! The collector against a live server: bad input is a 4xx JSON error or a failed-event entry, never a panic,
//! and never costs a valid event.

mod common;

use common::spawn_app;
use serde_json::json;

fn assert_error(response: (u16, serde_json::Value), status: u16, code: &str) {
    assert_eq!(response.0, status, "{}", response.1);
    assert_eq!(response.1["code"], code, "{}", response.1);
    assert!(
        response.1["message"]
            .as_str()
            .is_some_and(|message| message.len() > 20),
        "{}",
        response.1
    );
    assert!(response.1["type"].is_string());
}

#[test]
fn bad_requests_get_json_errors_that_say_what_to_fix() {
    let app = spawn_app();
    assert_error(app.post("/v1/track", "{\"event\": "), 400, "invalid_json");
    assert_error(
        app.post("/v1/track", r#"{"event": "A"}"#),
        400,
        "missing_identifier",
    );
    assert_error(
        app.post("/v1/track", r#"{"userId": "u1"}"#),
        400,
        "missing_event_name",
    );
    assert_error(
        app.post(
            "/v1/track",
            r#"{"userId": "u1", "event": "A", "timestamp": "next tuesday"}"#,
        ),
        400,
        "invalid_timestamp",
    );
    assert_error(
        app.post(
            "/v1/track",
            r#"{"userId": "u1", "event": "A", "properties": "not an object"}"#,
        ),
        400,
        "wrong_type",
    );
    assert_error(
        app.post("/v1/track", r#"{"userId": {"id": 1}, "event": "A"}"#),
        400,
        "wrong_type",
    );
    assert_error(
        app.post("/v1/alias", r#"{"userId": "u1"}"#),
        400,
        "missing_previous_id",
    );
    let big_property = "x".repeat(40 * 1024);
    assert_error(
        app.post(
            "/v1/track",
            json!({"userId": "u1", "event": "A", "properties": {"blob": big_property}}).to_string(),
        ),
        413,
        "event_too_large",
    );
    let events: Vec<_> = (0..600).map(|index| json!({"type": "track", "userId": "u1", "event": "A", "messageId": format!("big-{index}"), "properties": {"pad": "y".repeat(900)}})).collect();
    assert_error(
        app.post("/v1/batch", json!({"batch": events}).to_string()),
        413,
        "batch_too_large",
    );
    assert_error(
        app.post("/v1/batch", r#"{"events": []}"#),
        400,
        "missing_batch",
    );
    assert_error(
        app.post_with(
            "/v1/track",
            r#"{"userId": "u1", "event": "A"}"#,
            Some("wrong"),
            None,
        ),
        401,
        "invalid_write_key",
    );
    assert_error(
        app.post_with("/v1/track", r#"{"userId": "u1", "event": "A"}"#, None, None),
        401,
        "missing_write_key",
    );
    assert_error(app.get_json("/v1/nothing-here"), 404, "not_found");
    // A query parameter that is not what its schema says is named, with its value, in a JSON error.
    for path in [
        "/v1/failed?limit=null",
        "/v1/segments?sample=-1",
        "/v1/segments/any/members?offset=x",
        "/v1/rules/log?limit=1.5",
        "/v1/models/any/scores?top=many",
    ] {
        let response = app.get_json(path);
        assert_error(response.clone(), 400, "invalid_query");
        let parameter = path.split('?').nth(1).unwrap().split('=').next().unwrap();
        assert!(
            response.1["message"]
                .as_str()
                .unwrap()
                .contains(&format!("{parameter}=")),
            "{path}: {}",
            response.1
        );
    }
    assert_error(app.get_json("/v1/customers/%FF%FE"), 400, "invalid_path");
    assert_eq!(
        app.store.stats().events,
        0,
        "no rejected request stored anything"
    );

    // The key may also travel in the body.
    let (status, body) = app.post_with(
        "/v1/track",
        r#"{"userId": "u1", "event": "A", "writeKey": "test_write_key"}"#,
        None,
        None,
    );
    assert_eq!((status, body["accepted"].as_u64()), (200, Some(1)));
}

#[test]
fn a_batch_accepts_the_valid_events_and_records_the_rest() {
    let app = spawn_app();
    let body = json!({"batch": [
        {"type": "track", "userId": "u1", "event": "Viewed", "messageId": "ok-1"},
        {"type": "track", "userId": "u1", "messageId": "bad-1"},
        {"type": "identify", "anonymousId": "undefined", "messageId": "bad-2"},
        {"type": "page", "anonymousId": "a1", "name": "Home", "timestamp": 12, "messageId": "ok-2"},
        "not an object",
        {"type": "launch", "userId": "u1"},
        {"type": "track", "userId": "u1", "event": "Viewed", "messageId": "ok-1"}
    ]});
    let (status, response) = app.post("/v1/batch", body.to_string());
    assert_eq!(status, 200, "{response}");
    assert_eq!(response["accepted"], 2);
    assert_eq!(response["duplicates"], 1);
    assert_eq!(response["failed"], 4);
    let codes: Vec<&str> = response["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|error| error["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes,
        [
            "missing_event_name",
            "missing_identifier",
            "invalid_json",
            "unknown_type"
        ]
    );
    // Each refused event is named by its position in the batch and its messageId, as SDKs log them.
    let named: Vec<(u64, Option<&str>)> = response["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|error| {
            (
                error["index"].as_u64().unwrap(),
                error["messageId"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        named,
        [(1, Some("bad-1")), (2, Some("bad-2")), (4, None), (5, None)]
    );
    let (_, failed) = app.get_json("/v1/failed");
    assert_eq!(failed["failed"].as_array().unwrap().len(), 4);
    assert_eq!(app.store.stats().events, 2);
}

#[test]
fn gzip_bodies_and_duplicate_message_ids() {
    use std::io::Write;
    let app = spawn_app();
    let body = json!({"batch": [{"type": "track", "userId": "u9", "event": "Signed Up", "messageId": "gz-1"}]}).to_string();
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(body.as_bytes()).unwrap();
    let compressed = encoder.finish().unwrap();
    let (status, response) = app.post_with(
        "/v1/batch",
        &compressed,
        Some(common::WRITE_KEY),
        Some("gzip"),
    );
    assert_eq!(
        (status, response["accepted"].as_u64()),
        (200, Some(1)),
        "{response}"
    );
    let (status, response) = app.post_with(
        "/v1/batch",
        &compressed,
        Some(common::WRITE_KEY),
        Some("gzip"),
    );
    assert_eq!(
        (status, response["duplicates"].as_u64()),
        (200, Some(1)),
        "{response}"
    );
    assert_eq!(app.store.stats().events, 1);
}

#[test]
fn health_metrics_and_status_page() {
    let app = spawn_app();
    app.post("/v1/track", r#"{"userId": "u1", "event": "A"}"#);
    app.post("/v1/track", r#"{"event": "A"}"#);
    let (status, health) = app.get_json("/healthz");
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")));
    let (status, metrics) = app.get("/metrics");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("waymark_events_ingested_total"),
        "{metrics}"
    );
    assert!(
        metrics.contains("waymark_requests_rejected_total{code=\"missing_identifier\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("waymark_ingest_request_duration_seconds"),
        "{metrics}"
    );
    let (status, page) = app.get("/status");
    assert_eq!(status, 200);
    assert!(page.contains("Customer timeline"));
    let (status, page) = app.get("/");
    assert_eq!(status, 200);
    assert!(
        page.contains("/ui/app.js") && page.contains("Journey map"),
        "{page}"
    );
    let (status, script) = app.get("/ui/app.js");
    assert_eq!(status, 200);
    assert!(script.contains("pages.funnel"));
}
