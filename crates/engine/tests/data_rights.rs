//! The right to be forgotten, end to end on a lending library's journeys (not the demo's business): a customer
//! with two devices, traits, feedback, a refused event, segment history and trigger deliveries is exported, then
//! deleted; after compaction and a restart no byte of its identifiers, name, e-mail or properties is left in any
//! file of the data directory (compressed files are read through), every analysis of everyone else equals the
//! same analysis of a store that never held the customer, and importing the original file again does not bring
//! the customer back.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use waymark_engine::import::ImportOptions;
use waymark_engine::rules::{RulesClock, RulesFile, RulesOptions};
use waymark_engine::{ingest, registry, Engine, StoreOptions};
use waymark_model::Timestamp;

/// What identifies the deleted customer, and must be gone.
const SECRETS: [&str; 6] = [
    "reader-7f3k9",
    "dev-9q8w7e",
    "mira.quentin@example.net",
    "Mira Quentin",
    "zebra-orchid",
    "978-0-XYZ-MIRA",
];

const START: i64 = 1_780_000_000;

fn at(minutes: i64) -> String {
    Timestamp::from_secs(START + minutes * 60).to_rfc3339()
}

/// The library's events: 40 readers browsing, borrowing, renewing and returning; reader 7 loses a book. The
/// deleted reader browses anonymously on a tablet, logs in, borrows, rates the borrowing and is refused once.
fn library() -> Vec<serde_json::Value> {
    let mut events = Vec::new();
    for reader in 0..40 {
        let user = format!("r{reader}");
        let mut minute = reader * 7;
        let mut push = |step: &str, properties: serde_json::Value, minute: i64| {
            events.push(serde_json::json!({
                "type": "track", "messageId": format!("{user}-{minute}-{step}"), "userId": user,
                "event": step, "timestamp": at(minute), "properties": properties,
                "context": {"channel": if reader % 3 == 0 { "app" } else { "web" }},
            }));
        };
        push(
            "Catalogue Searched",
            serde_json::json!({"query": "novels"}),
            minute,
        );
        minute += 3;
        push(
            "Book Borrowed",
            serde_json::json!({"isbn": format!("978-{reader}")}),
            minute,
        );
        if reader % 2 == 0 {
            minute += 60 * 24 * 14;
            push("Loan Renewed", serde_json::json!({}), minute);
        }
        minute += 60 * 24 * 7;
        push(
            if reader == 7 {
                "Book Lost"
            } else {
                "Book Returned"
            },
            serde_json::json!({}),
            minute,
        );
        events.push(serde_json::json!({
            "type": "identify", "messageId": format!("{user}-id"), "userId": user, "timestamp": at(minute + 1),
            "traits": {"email": format!("{user}@example.com"), "name": format!("Reader {reader}")},
        }));
    }
    let mira = |id: &str, kind: &str, extra: serde_json::Value, minute: i64| {
        let mut event = serde_json::json!({"type": kind, "messageId": id, "timestamp": at(minute)});
        for (key, value) in extra.as_object().unwrap() {
            event[key] = value.clone();
        }
        event
    };
    events.extend([
        mira(
            "m1",
            "track",
            serde_json::json!({"anonymousId": "dev-9q8w7e", "event": "Catalogue Searched",
            "properties": {"query": "zebra-orchid"}}),
            5,
        ),
        mira(
            "m2",
            "identify",
            serde_json::json!({"anonymousId": "dev-9q8w7e", "userId": "reader-7f3k9",
            "traits": {"email": "mira.quentin@example.net", "name": "Mira Quentin"}}),
            6,
        ),
        mira(
            "m3",
            "track",
            serde_json::json!({"userId": "reader-7f3k9", "event": "Book Borrowed",
            "properties": {"isbn": "978-0-XYZ-MIRA"}}),
            8,
        ),
        mira(
            "m4",
            "track",
            serde_json::json!({"userId": "reader-7f3k9", "event": "Feedback Submitted",
            "properties": {"helpful": false, "comment": "zebra-orchid queue too long"}}),
            9,
        ),
        mira(
            "m5",
            "track",
            serde_json::json!({"userId": "reader-7f3k9", "event": "Book Returned"}),
            60 * 24 * 3,
        ),
    ]);
    events
}

/// Bytes of every file under `dir`, and of every zstd frame inside them, decoded.
fn readable_bytes(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in walk(dir) {
        let bytes = std::fs::read(&entry).unwrap();
        let name = entry.display().to_string();
        let magic = [0x28, 0xb5, 0x2f, 0xfd];
        let mut frames = Vec::new();
        for start in memchr::memmem::find_iter(&bytes, &magic) {
            let mut decoded = Vec::new();
            if let Ok(decoder) = zstd::stream::read::Decoder::new(&bytes[start..]) {
                let mut decoder = decoder.single_frame();
                let _ = (&mut decoder).take(1 << 28).read_to_end(&mut decoded);
                let _ = &mut decoder;
            }
            frames.push(decoded);
        }
        out.push((name.clone(), bytes));
        for frame in frames {
            out.push((format!("{name} (zstd frame)"), frame));
        }
    }
    out
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

fn found(dir: &Path, needle: &str) -> Vec<String> {
    readable_bytes(dir)
        .into_iter()
        .filter(|(_, bytes)| memchr::memmem::find(bytes, needle.as_bytes()).is_some())
        .map(|(name, _)| name)
        .collect()
}

/// A webhook receiver that answers 200 and counts requests.
fn receiver() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&count);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0usize;
            let mut line = String::new();
            loop {
                line.clear();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim_end().is_empty() {
                    break;
                }
                if let Some(value) = line.to_lowercase().strip_prefix("content-length:") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            counted.fetch_add(1, Ordering::SeqCst);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
        }
    });
    (url, count)
}

fn post(engine: &Engine, events: &[serde_json::Value]) {
    let body = serde_json::to_vec(&serde_json::json!({ "batch": events })).unwrap();
    let parsed = ingest::parse_batch(&body, Timestamp::now()).unwrap();
    engine.ingest(parsed).unwrap();
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every analysis's report of everyone, by name.
fn analyses(engine: &Engine) -> BTreeMap<&'static str, serde_json::Value> {
    let mut reports = BTreeMap::new();
    for name in [
        "process-map",
        "variants",
        "overview",
        "step-counts",
        "friction",
        "retention",
    ] {
        let analysis = registry::analysis(name).unwrap();
        let mut request = analysis.defaults();
        if name == "retention" {
            request["start"] = serde_json::json!("Book Borrowed");
            request["return"] = serde_json::json!("Loan Renewed");
        }
        if name == "friction" {
            request["goals"] = serde_json::json!(["Book Returned"]);
        }
        let ran = analysis.run(engine, request, None).unwrap();
        reports.insert(name, ran.json);
    }
    let funnel = registry::analysis("funnel").unwrap();
    let request =
        serde_json::json!({"steps": ["Catalogue Searched", "Book Borrowed", "Book Returned"]});
    reports.insert("funnel", funnel.run(engine, request, None).unwrap().json);
    reports
}

#[test]
fn a_deleted_customer_leaves_no_byte_behind_and_does_not_come_back() {
    let events = library();
    let file_dir = tempfile::tempdir().unwrap();
    let file = file_dir.path().join("library.jsonl");
    let mut text = String::new();
    for event in &events {
        text.push_str(&event.to_string());
        text.push('\n');
    }
    // A row the import refuses, naming the customer.
    text.push_str(r#"{"type":"track","messageId":"m9","userId":"reader-7f3k9","event":"Book Borrowed","timestamp":"yesterday"}"#);
    text.push('\n');
    std::fs::write(&file, &text).unwrap();
    let import = ImportOptions {
        skip_invalid: true,
        ..ImportOptions::default()
    };

    let dir = tempfile::tempdir().unwrap();
    let (url, deliveries) = receiver();
    {
        let engine = Arc::new(Engine::open(dir.path(), StoreOptions::default()).unwrap());
        // Steps exist before the rules name them.
        post(&engine, &events[..4]);
        let rules = RulesFile::from_toml(&format!(
            r#"
[[segments]]
name = "borrowers"
condition = 'count("Book Borrowed") >= 1'

[[triggers]]
name = "thank-borrower"
on = "event"
step = "Book Borrowed"
reentry = "every_time"
[[triggers.actions]]
type = "webhook"
url = "{url}"
secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
"#
        ))
        .unwrap();
        engine.save_rules(&rules).unwrap();
        engine
            .start_rules(RulesOptions {
                clock: RulesClock::EventTime,
                snapshot_every: Duration::from_millis(50),
                ..RulesOptions::default()
            })
            .unwrap();
        post(&engine, &events[4..]);
        let report = engine.import_file(&file, &import, &|_, _| {}).unwrap();
        assert_eq!(report.invalid, 1);
        let borrowed = events
            .iter()
            .filter(|event| event["event"] == "Book Borrowed")
            .count();
        wait_for("every borrowing's webhook", || {
            deliveries.load(Ordering::SeqCst) >= borrowed - 1
        });
        wait_for("a rules snapshot after the last event", || {
            engine.rules_status().through_seq == engine.last_seq()
        });
        std::thread::sleep(Duration::from_millis(200));

        // Before: every string is somewhere, and the grep reads compressed files (another reader's e-mail is
        // only in compressed segments and checkpoints).
        for secret in SECRETS {
            assert!(
                !found(dir.path(), secret).is_empty(),
                "{secret} is nowhere before the deletion"
            );
        }

        let export = engine.export_customer("dev-9q8w7e").unwrap().unwrap();
        assert_eq!(export.customer.customer_id, "reader-7f3k9");
        assert_eq!(export.customer.identifiers.len(), 2);
        assert_eq!(export.customer.events.len(), 5);
        assert_eq!(export.feedback.len(), 1);
        assert_eq!(export.failed_events.len(), 1);
        assert_eq!(export.rules.segments, ["borrowers"]);
        assert!(!export.rules.segment_changes.is_empty());
        assert_eq!(export.rules.trigger_instances.len(), 1);
        assert!(export
            .customer
            .merges
            .iter()
            .any(|edge| edge.message_id == "m2"));

        let deletion = engine.delete_customer("reader-7f3k9").unwrap().unwrap();
        assert_eq!(deletion.store.events, 5);
        assert_eq!(deletion.store.failed_events, 1);
        assert_eq!(deletion.rules.trigger_instances, 1);
        assert!(deletion.rules.segment_changes >= 1);
        assert!(engine.customer("reader-7f3k9").unwrap().is_none());
        assert!(engine.customer("dev-9q8w7e").unwrap().is_none());
        // Live ingest of the same identifiers is not stored.
        post(&engine, &events[events.len() - 5..]);
        assert!(engine.customer("reader-7f3k9").unwrap().is_none());
        engine.compact().unwrap();
        engine.stop_rules();
    }
    let engine = Arc::new(Engine::open(dir.path(), StoreOptions::default()).unwrap());
    for secret in SECRETS {
        assert_eq!(
            found(dir.path(), secret),
            Vec::<String>::new(),
            "{secret} is still stored"
        );
    }
    assert!(
        !found(dir.path(), "r12@example.com").is_empty(),
        "the grep must see other readers' data"
    );

    // Everyone else's analyses are those of a store that never held the customer.
    let others: Vec<serde_json::Value> = events
        .iter()
        .filter(|event| {
            !event.to_string().contains("reader-7f3k9") && !event.to_string().contains("dev-9q8w7e")
        })
        .cloned()
        .collect();
    let clean_dir = tempfile::tempdir().unwrap();
    let clean = Engine::open(clean_dir.path(), StoreOptions::default()).unwrap();
    post(&clean, &others);
    assert_eq!(analyses(&engine), analyses(&clean));

    // Importing the original file again brings nothing back.
    let again = engine.import_file(&file, &import, &|_, _| {}).unwrap();
    assert_eq!(again.accepted, 0);
    assert_eq!(again.suppressed, 5);
    assert!(engine.customer("reader-7f3k9").unwrap().is_none());
    assert!(engine.failed_events(100).unwrap().is_empty());
    engine.compact().unwrap();
    for secret in SECRETS {
        assert_eq!(
            found(dir.path(), secret),
            Vec::<String>::new(),
            "{secret} came back with the import"
        );
    }
    assert_eq!(analyses(&engine), analyses(&clean));
}
