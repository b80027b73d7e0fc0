//! Exactly once from the receiver's side across crashes: the real `waymark serve` runs an event trigger and an
//! absence trigger with a webhook to a loopback receiver, and is killed with SIGKILL while deliveries are in flight,
//! three times. Every trigger instance is received at least once, and exactly once after deduplication by its
//! `webhook-id`; absence timers that fell due while the server was down fire after the restart.

mod common;

use common::start_server;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Each request the receiver got: (webhook-id, trigger).
type Received = Arc<Mutex<Vec<(String, String)>>>;

/// A receiver answering 200 after a short pause; returns its URL and what it received.
fn receiver() -> (String, Received) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let received = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&received);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut headers = BTreeMap::new();
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    return;
                }
                loop {
                    line.clear();
                    if reader.read_line(&mut line).is_err() {
                        return;
                    }
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
                if reader.read_exact(&mut body).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(3));
                let payload: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                let trigger = payload["data"]["trigger"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                if let Some(id) = headers.get("webhook-id") {
                    log.lock().unwrap().push((id.clone(), trigger));
                }
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
            });
        }
    });
    (url, received)
}

fn post(url: &str, events: Vec<serde_json::Value>) -> bool {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    agent
        .post(&format!("{url}/v1/batch"))
        .header("Authorization", "Basic Y3Jhc2gta2V5Og==")
        .content_type("application/json")
        .send(json!({ "batch": events }).to_string().as_bytes())
        .is_ok_and(|response| response.status() == 200)
}

fn waymark(data: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_waymark"))
        .arg("--data")
        .arg(data)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn every_instance_reaches_the_receiver_once_across_sigkills() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (hook, received) = receiver();
    let rules = dir.path().join("rules.toml");
    std::fs::write(
        &rules,
        format!(
            r#"
[[triggers]]
name = "each-step"
on = "event"
step = "Step A"
reentry = "every_time"
expect_steps = ["Step A"]
actions = [{{ type = "webhook", url = "{hook}", secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" }}]

[[triggers]]
name = "no-finish"
on = "absence"
after = "Started"
missing = "Finished"
within = "2s"
expect_steps = ["Started", "Finished"]
actions = [{{ type = "webhook", url = "{hook}", secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" }}]
"#
        ),
    )
    .unwrap();
    let applied = waymark(&data, &["rules", "apply", rules.to_str().unwrap()]);
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );

    let mut steps_acknowledged = 0usize;
    let mut absences_expected = BTreeSet::new();
    for round in 0..3 {
        let (mut server, url) = start_server(&data, "crash-key");
        // Customers who start and never finish: each due 2 s later, while the server is down.
        let starters: Vec<String> = (0..5).map(|i| format!("starter-{round}-{i}")).collect();
        let events = starters
            .iter()
            .map(|user| json!({"type": "track", "userId": user, "event": "Started", "messageId": format!("{user}-start")}))
            .collect();
        assert!(post(&url, events));
        absences_expected.extend(starters);
        // Event-trigger instances, then SIGKILL once some deliveries have arrived and others are in flight.
        let before = received.lock().unwrap().len();
        for batch in 0..10 {
            let events = (0..50)
                .map(|i| {
                    json!({"type": "track", "userId": format!("u{}", i % 17), "event": "Step A",
                                "messageId": format!("r{round}-b{batch}-{i}")})
                })
                .collect();
            if post(&url, events) {
                steps_acknowledged += 50;
            }
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while received.lock().unwrap().len() < before + 40 {
            assert!(Instant::now() < deadline, "no deliveries in round {round}");
            std::thread::sleep(Duration::from_millis(1));
        }
        server.kill().unwrap();
        server.wait().unwrap();
        let at_kill = received.lock().unwrap().len();
        assert!(
            at_kill < before + 500,
            "round {round}: the kill came after every delivery ({} of 500), so it tested nothing",
            at_kill - before
        );
        std::thread::sleep(Duration::from_millis(2_500)); // the absences fall due while nothing runs
    }

    // A last start: everything journaled is delivered, and the absences due during the downtime fire.
    let (mut server, _url) = start_server(&data, "crash-key");
    let wanted = steps_acknowledged + absences_expected.len();
    let deadline = Instant::now() + Duration::from_secs(90);
    let distinct = || {
        received
            .lock()
            .unwrap()
            .iter()
            .map(|(id, _)| id.clone())
            .collect::<BTreeSet<_>>()
    };
    while distinct().len() < wanted && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500)); // nothing more arrives than was due
    server.kill().unwrap();
    server.wait().unwrap();
    let log = received.lock().unwrap().clone();
    let ids = distinct();
    let per_trigger = |name: &str| {
        log.iter()
            .filter(|(_, trigger)| trigger == name)
            .map(|(id, _)| id.clone())
            .collect::<BTreeSet<_>>()
            .len()
    };
    assert_eq!(
        (per_trigger("each-step"), per_trigger("no-finish")),
        (steps_acknowledged, absences_expected.len()),
        "every instance exactly once after deduplication ({} requests, {} distinct)",
        log.len(),
        ids.len()
    );
    assert_eq!(ids.len(), wanted);
}
