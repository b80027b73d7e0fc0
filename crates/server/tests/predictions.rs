//! Live scores: a saved model scores every customer once the server starts, an arriving event re-scores its
//! customer off the acknowledgement path, `GET /v1/customers/{id}` shows the same score the live scorer keeps,
//! and after a restart every customer's score is identical.

mod common;

use common::{spawn_app, spawn_app_in};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every customer's live value of `model`, by customer, from the top-scores endpoint.
fn all_scores(app: &common::TestApp, model: &str) -> Vec<(String, f64)> {
    let (status, body) = app.get_json(&format!("/v1/models/{model}/scores?top=1000"));
    assert_eq!(status, 200, "{body}");
    body["scores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|score| {
            let value = score["probability"].as_f64().expect("a probability");
            (score["customer_id"].as_str().unwrap().to_string(), value)
        })
        .collect()
}

#[test]
fn events_rescore_their_customer_and_scores_survive_a_restart() {
    let app = spawn_app();
    app.store
        .ingest_demo(
            waymark_engine::demo::DemoConfig {
                customers: 800,
                seed: 3,
                business: waymark_engine::demo::Business::Retail,
                ..Default::default()
            },
            &mut || {},
        )
        .unwrap();
    // Stuck as an error streak within 30 days: the customers active in the data's last 30 days are in flight.
    let spec = serde_json::from_value(
        json!({"target": "stuck", "horizon": "30d", "stuck_signals": ["error_streak"]}),
    )
    .unwrap();
    app.store
        .train_model("at-risk", &spec, &|_, _, _| {})
        .unwrap();
    // The new model is noticed and every customer scored.
    wait_for("every customer scored", || {
        app.get_json("/v1/models").1["live"]["ready"] == json!(true)
    });
    let (_, models) = app.get_json("/v1/models");
    assert_eq!(models["models"][0]["name"], "at-risk", "{models}");
    let before = all_scores(&app, "at-risk");
    assert!(
        before.len() > 50,
        "{} customers in flight scored",
        before.len()
    );

    // A customer who is not in trouble yet starts failing to log in: their score moves, off the ack path.
    let (customer, value) = before.last().unwrap().clone();
    let rescored = models["live"]["rescored"].as_u64().unwrap();
    let (_, timeline) = app.get_json(&format!("/v1/customers/{customer}"));
    let last = timeline["events"].as_array().unwrap().last().unwrap()["time"]
        .as_i64()
        .expect("times are µs since the epoch");
    let last = chrono::DateTime::from_timestamp_micros(last).unwrap();
    let mut body = vec![];
    for (at, event) in [
        "Login Attempted",
        "Login Failed",
        "Login Attempted",
        "Login Failed",
    ]
    .iter()
    .enumerate()
    {
        let time = last + chrono::Duration::minutes(at as i64 + 1);
        body.push(json!({"type": "track", "userId": customer, "event": event,
                         "timestamp": time.to_rfc3339(), "context": {"device": {"type": "android_app"}}}));
    }
    let started = Instant::now();
    let (status, answer) = app.post("/v1/batch", json!({ "batch": body }).to_string());
    let acknowledged = started.elapsed();
    assert_eq!(
        (status, answer["accepted"].as_u64()),
        (200, Some(4)),
        "{answer}"
    );
    wait_for("the customer re-scored", || {
        app.get_json("/v1/models").1["live"]["rescored"]
            .as_u64()
            .unwrap()
            > rescored
    });
    let live = app.store.live_values(&customer);
    let (_, doc) = app.get_json(&format!("/v1/customers/{customer}"));
    let shown: &Value = &doc["scores"][0];
    assert_eq!(shown["model"], "at-risk", "{doc}");
    assert_eq!(
        shown["value"].as_f64(),
        Some(live[0].1),
        "the page shows the live score"
    );
    assert_ne!(live[0].1, value, "new events change the score");
    assert!(
        !shown["score"]["drivers"].as_array().unwrap().is_empty(),
        "{shown}"
    );
    println!(
        "acknowledged in {acknowledged:?}; {value:.3} -> {:.3}",
        live[0].1
    );

    // After a restart, the same events give the same scores.
    let after_events = all_scores(&app, "at-risk");
    let dir = app.stop();
    let app = spawn_app_in(dir);
    wait_for("every customer scored again", || {
        app.get_json("/v1/models").1["live"]["ready"] == json!(true)
    });
    assert_eq!(all_scores(&app, "at-risk"), after_events);
    let (_, again) = app.get_json(&format!("/v1/customers/{customer}"));
    assert_eq!(again["scores"], doc["scores"]);
}
