//! The rules worker against a webhook receiver on loopback: event, absence and score triggers fire with the right
//! payload and a signature a Standard Webhooks library verifies; an event action lands in the journey once; a
//! failing receiver is retried; after a restart nothing is decided twice and undelivered actions are sent.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use waymark_engine::rules::{RulesClock, RulesFile, RulesOptions};
use waymark_engine::{ingest, Engine, StoreOptions};
use waymark_model::Timestamp;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// A webhook request as received.
#[derive(Debug, Clone)]
struct Received {
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

/// A loopback HTTP receiver answering `status()` for each request.
fn receiver(
    status: Arc<dyn Fn(usize) -> u16 + Send + Sync>,
) -> (String, Arc<Mutex<Vec<Received>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let received = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&received);
    std::thread::spawn(move || {
        for (index, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut headers = BTreeMap::new();
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            loop {
                line.clear();
                reader.read_line(&mut line).unwrap();
                let trimmed = line.trim_end();
                if trimmed.is_empty() {
                    break;
                }
                if let Some((name, value)) = trimmed.split_once(':') {
                    headers.insert(name.trim().to_lowercase(), value.trim().to_string());
                }
            }
            let length: usize = headers
                .get("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let code = status(index);
            log.lock().unwrap().push(Received { headers, body });
            let _ = write!(
                stream,
                "HTTP/1.1 {code} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
        }
    });
    (url, received)
}

fn post(engine: &Engine, events: serde_json::Value) {
    let body = serde_json::to_vec(&serde_json::json!({ "batch": events })).unwrap();
    let parsed = ingest::parse_batch(&body, Timestamp(1_772_409_600_000_000)).unwrap();
    let outcome = engine.ingest(parsed).unwrap();
    assert_eq!(outcome.failed, 0, "{:?}", outcome.errors);
}

fn track(id: &str, user: &str, step: &str, minute: i64) -> serde_json::Value {
    let time = chrono::DateTime::from_timestamp_micros(1_772_409_600_000_000 + minute * 60_000_000)
        .unwrap()
        .to_rfc3339();
    serde_json::json!({"type": "track", "messageId": id, "userId": user, "event": step, "timestamp": time,
                       "properties": {"plan": "pro"}})
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn options() -> RulesOptions {
    RulesOptions {
        clock: RulesClock::EventTime,
        min_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(100),
        max_attempts: 4,
        snapshot_every: Duration::from_millis(100),
        ..RulesOptions::default()
    }
}

fn verify(received: &Received) -> serde_json::Value {
    let mut headers = http::HeaderMap::new();
    for (name, value) in &received.headers {
        headers.insert(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            http::HeaderValue::from_str(value).unwrap(),
        );
    }
    standardwebhooks::Webhook::new(SECRET)
        .unwrap()
        .verify(&received.body, &headers)
        .expect("the signature verifies");
    serde_json::from_slice(&received.body).unwrap()
}

#[test]
fn triggers_deliver_signed_webhooks_once_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    // The first delivery attempt of every request fails: retries must follow.
    let (url, received) = receiver(Arc::new(|index| if index == 0 { 500 } else { 200 }));
    let engine = Arc::new(Engine::open(dir.path(), StoreOptions::default()).unwrap());
    // Steps exist before the rules name them.
    post(
        &engine,
        serde_json::json!([
            track("h1", "old", "Payment Failed", -600),
            track("h2", "old", "Payment Completed", -590)
        ]),
    );
    let rules = RulesFile::from_toml(&format!(
        r#"
[[triggers]]
name = "payment-failed"
on = "event"
step = "Payment Failed"
condition = 'event.properties.plan == "pro"'
reentry = "every_time"
[[triggers.actions]]
type = "webhook"
url = "{url}"
secret = "{SECRET}"
[[triggers.actions]]
type = "event"
name = "Rescue Offered"
channel = "sms"

[[triggers]]
name = "no-payment"
on = "absence"
after = "Payment Failed"
missing = "Payment Completed"
within = "2h"
expect_steps = []
[[triggers.actions]]
type = "webhook"
url = "{url}"
secret = "{SECRET}"
"#
    ))
    .unwrap();
    let saved = engine.save_rules(&rules).unwrap();
    assert_eq!(saved.versions["payment-failed"], 1);
    engine.start_rules(options()).unwrap();
    // History before the rules started sets nothing off.
    post(
        &engine,
        serde_json::json!([
            track("e1", "ann", "Payment Failed", 0),
            track("e2", "bob", "Payment Failed", 1)
        ]),
    );
    post(
        &engine,
        serde_json::json!([track("e3", "bob", "Payment Completed", 30)]),
    );
    wait_for("two event-trigger webhooks", || {
        received
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.body.windows(14).any(|w| w == b"payment-failed"))
            .count()
            >= 3
    });
    // Event time: ann's wait ends when an event later than 2 h arrives.
    post(
        &engine,
        serde_json::json!([track("e4", "cat", "Searched", 200)]),
    );
    wait_for("the absence webhook", || {
        received
            .lock()
            .unwrap()
            .iter()
            .any(|r| r.body.windows(10).any(|w| w == b"no-payment"))
    });
    let bodies: Vec<serde_json::Value> = received.lock().unwrap().iter().map(verify).collect();
    let mut by_key: BTreeMap<String, Vec<&serde_json::Value>> = BTreeMap::new();
    for body in &bodies {
        by_key
            .entry(body["data"]["key"].as_str().unwrap().to_string())
            .or_default()
            .push(body);
    }
    let absence: Vec<&serde_json::Value> = bodies
        .iter()
        .filter(|b| b["data"]["trigger"] == "no-payment")
        .collect();
    assert_eq!(absence.len(), 1, "only ann's payment stayed missing");
    assert_eq!(absence[0]["data"]["customer"], "ann");
    assert_eq!(absence[0]["data"]["cause"]["kind"], "absence");
    let fired: Vec<&serde_json::Value> = bodies
        .iter()
        .filter(|b| b["data"]["trigger"] == "payment-failed")
        .collect();
    let customers: std::collections::BTreeSet<&str> = fired
        .iter()
        .map(|b| b["data"]["customer"].as_str().unwrap())
        .collect();
    assert_eq!(customers, ["ann", "bob"].into_iter().collect());
    // The 500 made one delivery twice: same webhook-id both times.
    let ids: Vec<String> = received
        .lock()
        .unwrap()
        .iter()
        .map(|r| r.headers["webhook-id"].clone())
        .collect();
    let distinct: std::collections::BTreeSet<&String> = ids.iter().collect();
    assert_eq!(ids.len(), distinct.len() + 1, "{ids:?}");
    // The event action is in the journey, once per instance.
    wait_for("the intervention events", || {
        engine
            .customer("ann")
            .unwrap()
            .unwrap()
            .events
            .iter()
            .any(|e| e.step == "Rescue Offered")
    });
    let log = engine.trigger_log(None, None, 100).unwrap();
    assert_eq!(log.len(), 3);
    assert!(
        log.iter()
            .all(|entry| entry.deliveries.iter().all(|d| d.state == "delivered")),
        "{log:?}"
    );

    // Restart: stop, reopen, start again; nothing is decided or delivered twice.
    engine.stop_rules();
    drop(engine);
    let engine = Arc::new(Engine::open(dir.path(), StoreOptions::default()).unwrap());
    engine.start_rules(options()).unwrap();
    wait_for("the worker to start", || engine.rules_status().running);
    post(
        &engine,
        serde_json::json!([track("e5", "dan", "Payment Failed", 300)]),
    );
    wait_for("dan's webhook", || {
        received
            .lock()
            .unwrap()
            .iter()
            .any(|r| r.body.windows(3).any(|w| w == b"dan"))
    });
    std::thread::sleep(Duration::from_millis(300));
    let ids: Vec<String> = received
        .lock()
        .unwrap()
        .iter()
        .map(|r| r.headers["webhook-id"].clone())
        .collect();
    let distinct: std::collections::BTreeSet<&String> = ids.iter().collect();
    assert_eq!(
        ids.len(),
        distinct.len() + 1,
        "no delivery repeated after the restart: {ids:?}"
    );
    assert_eq!(engine.trigger_log(None, None, 100).unwrap().len(), 4);
    let ann = engine.customer("ann").unwrap().unwrap();
    assert_eq!(
        ann.events
            .iter()
            .filter(|e| e.step == "Rescue Offered")
            .count(),
        1
    );
}

#[test]
fn bad_definitions_are_refused_whole_and_the_file_is_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), StoreOptions::default()).unwrap();
    post(
        &engine,
        serde_json::json!([track("h1", "old", "Payment Failed", 0)]),
    );
    let good = RulesFile::from_toml(
        "[[segments]]\nname = \"failing\"\ncondition = 'count(\"Payment Failed\") >= 1'\n",
    )
    .unwrap();
    engine.save_rules(&good).unwrap();
    let bad = RulesFile::from_toml(
        "[[segments]]\nname = \"failing\"\ncondition = 'count(\"Payment Faild\") >= 1'\n\n[[triggers]]\nname = \"t\"\non = \"event\"\ncap_per_customer_per_day = -1\n",
    )
    .unwrap();
    let error = engine.save_rules(&bad).unwrap_err().to_string();
    assert!(error.contains("segments[failing].condition at 1:7: unknown step 'Payment Faild' (did you mean 'Payment Failed'?)"), "{error}");
    assert!(
        error.contains("triggers[t].cap_per_customer_per_day: -1 is not a cap"),
        "{error}"
    );
    assert_eq!(engine.rules_file().unwrap(), good);
    // The dry run counts what the history would have set off.
    let dry = engine.dry_run(&good, None, None).unwrap();
    assert_eq!(dry.segments["failing"], 1);
}

/// A score trigger end to end: a saved model's new score for a customer (as the live scorer computes it after each
/// event) reaches the worker, crosses the threshold, and a signed webhook says which model and value; the score
/// staying above sets nothing off again.
#[test]
fn a_score_crossing_its_threshold_sends_a_signed_webhook_once() {
    let dir = tempfile::tempdir().unwrap();
    let (url, received) = receiver(Arc::new(|_| 200));
    let engine = Arc::new(Engine::open(dir.path(), StoreOptions::default()).unwrap());
    // Enough history to train on: half the customers buy after browsing, half stop.
    let mut history = Vec::new();
    for customer in 0..60 {
        let user = format!("h{customer}");
        history.push(track(
            &format!("{user}-1"),
            &user,
            "Searched",
            customer * 10,
        ));
        history.push(track(
            &format!("{user}-2"),
            &user,
            "Checkout Started",
            customer * 10 + 1,
        ));
        if customer % 2 == 0 {
            history.push(track(
                &format!("{user}-3"),
                &user,
                "Order Completed",
                customer * 10 + 2,
            ));
        }
    }
    post(&engine, serde_json::Value::Array(history));
    let spec = serde_json::from_value(
        serde_json::json!({"target": "goal", "goals": ["Order Completed"], "horizon": "7d"}),
    )
    .unwrap();
    engine.train_model("buyer", &spec, &|_, _, _| {}).unwrap();
    let rules = RulesFile::from_toml(&format!(
        r#"
[[triggers]]
name = "likely-buyer"
on = "score"
model = "buyer"
above = 0.0
[[triggers.actions]]
type = "webhook"
url = "{url}"
secret = "{SECRET}"
"#
    ))
    .unwrap();
    engine.save_rules(&rules).unwrap();
    engine.start_rules(options()).unwrap();
    post(
        &engine,
        serde_json::json!([track("z1", "zed", "Checkout Started", 900)]),
    );
    engine.rescore("zed").unwrap();
    wait_for("the score webhook", || !received.lock().unwrap().is_empty());
    engine.rescore("zed").unwrap();
    post(
        &engine,
        serde_json::json!([track("z2", "zed", "Searched", 901)]),
    );
    engine.rescore("zed").unwrap();
    wait_for("the worker to read zed's events", || {
        engine.rules_status().events >= 2
    });
    std::thread::sleep(Duration::from_millis(300));
    engine.stop_rules();
    let bodies: Vec<serde_json::Value> = received.lock().unwrap().iter().map(verify).collect();
    assert_eq!(bodies.len(), 1, "one crossing, one webhook: {bodies:?}");
    let data = &bodies[0]["data"];
    assert_eq!(
        (data["trigger"].as_str(), data["customer"].as_str()),
        (Some("likely-buyer"), Some("zed"))
    );
    assert_eq!(data["cause"]["model"], "buyer", "{data}");
    let value = data["cause"]["value"].as_f64().unwrap();
    let live = engine.live_values("zed");
    assert!((0.0..=1.0).contains(&value), "{data}");
    assert_eq!(live[0].0, "buyer", "{live:?}");
}

#[test]
fn a_monitor_breaking_its_threshold_sends_one_signed_webhook() {
    let dir = tempfile::tempdir().unwrap();
    let (url, received) = receiver(Arc::new(|_| 200));
    let engine = Arc::new(Engine::open(dir.path(), StoreOptions::default()).unwrap());
    let rules = RulesFile::from_toml(&format!(
        r#"
[[monitors]]
name = "error-burst"
metric = "count"
events = {{ step = "Error Shown" }}
window = "1h"
every = "1h"
above = 5
min_events = 0
expect_steps = ["Error Shown"]
[[monitors.actions]]
type = "webhook"
url = "{url}"
secret = "{SECRET}"
"#
    ))
    .unwrap();
    engine.save_rules(&rules).unwrap();
    engine.start_rules(options()).unwrap();
    // One error an hour, then ten in the fourth hour, then a quiet hour read to its end.
    let mut events = Vec::new();
    for hour in 0..3 {
        events.push(track(
            &format!("e{hour}"),
            "ann",
            "Error Shown",
            hour * 60 + 5,
        ));
    }
    for n in 0..10 {
        events.push(track(&format!("burst{n}"), "bob", "Error Shown", 180 + n));
    }
    events.push(track("later", "ann", "Viewed", 5 * 60 + 1));
    post(&engine, serde_json::Value::Array(events));
    wait_for("the monitor's webhook", || {
        !received.lock().unwrap().is_empty()
    });
    engine.stop_rules();
    let bodies: Vec<serde_json::Value> = received.lock().unwrap().iter().map(verify).collect();
    assert_eq!(bodies.len(), 1, "one alert, one webhook: {bodies:?}");
    assert_eq!(bodies[0]["type"], "monitor.fired");
    let data = &bodies[0]["data"];
    assert_eq!(data["trigger"], "monitor:error-burst", "{data}");
    assert_eq!(data["cause"]["value"], 10.0, "{data}");
    // The alert began with the window ending at the fourth hour's end.
    let fourth_hour_end =
        chrono::DateTime::from_timestamp_micros(1_772_409_600_000_000 + 4 * 3_600_000_000)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    assert_eq!(data["at"], fourth_hour_end.as_str(), "{data}");
    // The board shows the same moment.
    let board = engine.monitors_report(None).unwrap();
    assert_eq!(
        board.monitors[0].fired,
        vec![1_772_409_600_000_000 + 4 * 3_600_000_000]
    );
}

#[test]
fn with_no_definitions_the_worker_keeps_its_place_without_reading_and_a_later_segment_sees_history()
{
    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(Engine::open(dir.path(), StoreOptions::default()).unwrap());
    engine.start_rules(options()).unwrap();
    post(
        &engine,
        serde_json::json!([
            track("n1", "ann", "Order Completed", 0),
            track("n2", "bob", "Product Viewed", 1),
        ]),
    );
    wait_for("the worker at the end of the store", || {
        engine.rules_status().through_seq == engine.last_seq()
    });
    // Nothing reads events, so none was read (a server without rules spends no core on them).
    assert_eq!(engine.rules_status().events, 0);
    let rules = RulesFile::from_toml(
        r#"
[[segments]]
name = "buyers"
condition = 'did("Order Completed")'
"#,
    )
    .unwrap();
    engine.save_rules(&rules).unwrap();
    wait_for("the segment built from history", || {
        engine
            .segment_members()
            .unwrap()
            .get("buyers")
            .is_some_and(|members| members.len() == 1 && members.contains("ann"))
    });
    post(
        &engine,
        serde_json::json!([track("n3", "bob", "Order Completed", 2)]),
    );
    wait_for("a live entry", || {
        engine
            .segment_members()
            .unwrap()
            .get("buyers")
            .is_some_and(|members| members.len() == 2)
    });
    engine.stop_rules();
}
