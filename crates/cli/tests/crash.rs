//! Durability under SIGKILL: concurrent clients post more than 100k events in batches to the real `waymark serve`
//! process, which is killed mid-stream and restarted; every event whose batch was acknowledged must be present
//! exactly once. A second round also leaves a torn frame at the end of the log, as a crash mid-write would.

mod common;

use common::start_server;
use serde_json::json;
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::process::Child;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use waymark_store::{Store, StoreOptions};

const BATCH: usize = 100;
const CLIENTS: usize = 4;

/// Posts batches from several clients until `stop` is set or the server goes away; returns acknowledged ids.
fn post_until_killed(
    url: &str,
    round: &str,
    acknowledged_target: usize,
    server: &mut Child,
) -> Vec<String> {
    let acknowledged: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let acknowledged_count = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (url, round) = (url.to_string(), round.to_string());
            let (acknowledged, acknowledged_count, stop) = (Arc::clone(&acknowledged), Arc::clone(&acknowledged_count), Arc::clone(&stop));
            std::thread::spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder().timeout_global(Some(Duration::from_secs(30))).build().into();
                for batch_index in 0.. {
                    if stop.load(Ordering::Relaxed) || batch_index > 100_000 {
                        break;
                    }
                    let ids: Vec<String> = (0..BATCH).map(|i| format!("{round}-{client}-{batch_index}-{i}")).collect();
                    let events: Vec<_> = ids
                        .iter()
                        .enumerate()
                        .map(|(i, id)| json!({"type": "track", "userId": format!("u{}", (client * 1000 + i) % 5000), "event": "Step", "messageId": id, "properties": {"i": i}}))
                        .collect();
                    let body = json!({ "batch": events }).to_string();
                    let response = agent.post(&format!("{url}/v1/batch")).header("Authorization", "Basic Y3Jhc2gta2V5Og==").content_type("application/json").send(body.as_bytes());
                    match response {
                        Ok(response) if response.status() == 200 => {
                            acknowledged.lock().unwrap().extend(ids);
                            acknowledged_count.fetch_add(BATCH, Ordering::Relaxed);
                        }
                        _ => break, // The server is gone: this batch was not acknowledged.
                    }
                }
            })
        })
        .collect();
    while acknowledged_count.load(Ordering::Relaxed) < acknowledged_target {
        std::thread::sleep(Duration::from_millis(5));
    }
    server.kill().unwrap(); // SIGKILL: no flush, no graceful shutdown.
    server.wait().unwrap();
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().unwrap();
    }
    Arc::try_unwrap(acknowledged).unwrap().into_inner().unwrap()
}

fn stored_message_counts(data: &Path) -> HashMap<String, usize> {
    let store = Store::open(data, StoreOptions::default()).unwrap();
    let mut counts = HashMap::new();
    store
        .for_each_event(|_, payload| {
            let event: waymark_model::Event =
                serde_json::from_slice(payload).expect("a stored event is never corrupt");
            *counts.entry(event.message_id).or_insert(0) += 1;
            Ok(())
        })
        .unwrap();
    store.simulate_crash(); // Leave the directory as it is for the next round.
    counts
}

fn assert_all_present_once(acknowledged: &[String], stored: &HashMap<String, usize>) {
    let missing: Vec<&String> = acknowledged
        .iter()
        .filter(|id| !stored.contains_key(*id))
        .take(5)
        .collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged events lost, e.g. {missing:?}",
        acknowledged
            .iter()
            .filter(|id| !stored.contains_key(*id))
            .count()
    );
    let repeated: Vec<(&String, &usize)> = stored
        .iter()
        .filter(|(_, count)| **count != 1)
        .take(5)
        .collect();
    assert!(
        repeated.is_empty(),
        "events stored more than once: {repeated:?}"
    );
}

#[test]
fn acknowledged_events_survive_sigkill_and_a_torn_final_write() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");

    // Round 1: kill -9 mid-stream after more than 100k events were acknowledged.
    let (mut server, url) = start_server(&data, "crash-key");
    let first = post_until_killed(&url, "r1", 100_000, &mut server);
    assert!(first.len() >= 100_000);
    let stored = stored_message_counts(&data);
    assert_all_present_once(&first, &stored);

    // Round 2: restart, post more, kill again, then leave a torn frame at the end of the newest log file.
    let (mut server, url) = start_server(&data, "crash-key");
    let second = post_until_killed(&url, "r2", 20_000, &mut server);
    let newest_log = std::fs::read_dir(data.join("wal"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .max()
        .expect("a log file");
    let mut log = std::fs::OpenOptions::new()
        .append(true)
        .open(&newest_log)
        .unwrap();
    log.write_all(&5_000u32.to_le_bytes()).unwrap(); // a frame header promising 5,000 bytes…
    log.write_all(&0xdead_beefu32.to_le_bytes()).unwrap();
    log.write_all(&[0x7b; 300]).unwrap(); // …of which only 300 reached the disk.
    drop(log);
    let stored = stored_message_counts(&data);
    let all: Vec<String> = first.iter().chain(&second).cloned().collect();
    assert_all_present_once(&all, &stored);

    // The torn tail was cut off: the server starts again and keeps accepting events.
    let (mut server, url) = start_server(&data, "crash-key");
    let agent = ureq::Agent::new_with_defaults();
    let body = json!({"batch": [{"type": "track", "userId": "after", "event": "Recovered", "messageId": "after-1"}]}).to_string();
    let response = agent
        .post(&format!("{url}/v1/batch"))
        .header("Authorization", "Basic Y3Jhc2gta2V5Og==")
        .content_type("application/json")
        .send(body.as_bytes())
        .unwrap();
    assert_eq!(response.status(), 200);
    server.kill().unwrap();
    server.wait().unwrap();
    let stored = stored_message_counts(&data);
    assert_eq!(stored.get("after-1"), Some(&1));
    // Batches in flight at a kill may also have been made durable; nothing acknowledged is missing.
    assert!(
        stored.len() > all.len(),
        "{} stored, {} acknowledged before the last event",
        stored.len(),
        all.len()
    );
    assert_all_present_once(&all, &stored);
}
