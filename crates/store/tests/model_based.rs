//! Model-based property test of the store: random append / unlogged append / flush / compact / reopen / crash
//! sequences are run against the real store and against a plain in-memory model; after every step both must agree.

use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use waymark_model::{Event, IngestContext, Timestamp};
use waymark_store::{EventBatch, Store, StoreOptions};

#[derive(Debug, Clone)]
enum Operation {
    /// Append events: (message id number, user number, anonymous number or none, seconds offset).
    Append(Vec<(u16, u8, Option<u8>, u16)>),
    /// The same, without the write-ahead log: durable once flushed (a crash may lose those not flushed yet).
    AppendUnlogged(Vec<(u16, u8, Option<u8>, u16)>),
    Flush,
    Compact,
    Reopen,
    Crash,
    /// Delete the customer of user (or anonymous visitor) number n.
    Forget(u8),
}

fn operation() -> impl Strategy<Value = Operation> {
    let event = (
        0u16..400,
        0u8..12,
        proptest::option::of(0u8..12),
        0u16..1000,
    );
    prop_oneof![
        4 => proptest::collection::vec(event.clone(), 1..40).prop_map(Operation::Append),
        2 => proptest::collection::vec(event, 1..40).prop_map(Operation::AppendUnlogged),
        1 => Just(Operation::Flush),
        1 => Just(Operation::Compact),
        1 => Just(Operation::Reopen),
        1 => Just(Operation::Crash),
        1 => (0u8..12).prop_map(Operation::Forget),
    ]
}

fn make_event(message: u16, user: u8, anonymous: Option<u8>, seconds: u16) -> Event {
    // Users 0..3 are anonymous-only visitors, so merges are guarded only sometimes.
    let mut json = serde_json::json!({
        "type": "track", "event": format!("step{}", message % 7), "messageId": format!("m{message}"),
        "timestamp": Timestamp::from_secs(1_700_000_000 + seconds as i64).to_rfc3339(),
    });
    if user >= 3 {
        json["userId"] = format!("u{user}").into();
    }
    if let Some(anonymous) = anonymous {
        json["anonymousId"] = format!("a{anonymous}").into();
    } else if user < 3 {
        json["anonymousId"] = format!("a{user}").into();
    }
    Event::from_segment_json(
        &json,
        &IngestContext::at(Timestamp::from_secs(1_800_000_000)),
    )
    .unwrap()
}

fn options() -> StoreOptions {
    // Automatic compaction merges at most 120 rows, so the model test sees both partial and full merges.
    StoreOptions {
        flush_rows: 50,
        max_segments: 3,
        compact_max_rows: 120,
    }
}

/// What the model says must be visible: every accepted message id with its step and time.
fn stored(store: &Store) -> BTreeMap<String, (String, i64)> {
    let mut seen = BTreeMap::new();
    store
        .for_each_event(|_, payload| {
            let event: Event = serde_json::from_slice(payload).unwrap();
            let previous = seen.insert(
                event.message_id.clone(),
                (event.step(), event.timestamp.micros()),
            );
            assert!(
                previous.is_none(),
                "message {} stored twice",
                event.message_id
            );
            Ok(())
        })
        .unwrap();
    seen
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn store_agrees_with_a_simple_model(operations in proptest::collection::vec(operation(), 1..25)) {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Some(Store::open(dir.path(), options()).unwrap());
        let mut model: BTreeMap<String, (String, i64)> = BTreeMap::new();
        // Unlogged events not known to be flushed yet: a crash may lose any of them.
        let mut volatile: BTreeSet<String> = BTreeSet::new();
        // The identifier each stored message is filed under.
        let mut identifiers: BTreeMap<String, String> = BTreeMap::new();
        // Identifier keys of deleted customers: their events are not stored again.
        let mut forgotten: BTreeSet<String> = BTreeSet::new();
        for operation in operations {
            let (events, logged) = match operation {
                Operation::Append(events) => (events, true),
                Operation::AppendUnlogged(events) => (events, false),
                Operation::Flush => {
                    store.as_ref().unwrap().flush().unwrap();
                    volatile.clear();
                    (Vec::new(), true)
                }
                Operation::Compact => {
                    store.as_ref().unwrap().compact().unwrap();
                    volatile.clear();
                    (Vec::new(), true)
                }
                Operation::Reopen => {
                    // Closing flushes.
                    drop(store.take());
                    store = Some(Store::open(dir.path(), options()).unwrap());
                    volatile.clear();
                    (Vec::new(), true)
                }
                Operation::Forget(number) => {
                    let store = store.as_ref().unwrap();
                    let identifier = if number >= 3 { format!("u{number}") } else { format!("a{number}") };
                    let before = store.customer(&identifier).unwrap();
                    let outcome = store.forget(&identifier).unwrap();
                    prop_assert_eq!(before.is_some(), outcome.is_some());
                    if let (Some(view), Some(outcome)) = (before, outcome) {
                        let keys: BTreeSet<String> = view.identifiers.iter().map(|id| id.key()).collect();
                        let gone: Vec<String> = identifiers
                            .iter()
                            .filter(|(_, key)| keys.contains(*key))
                            .map(|(message, _)| message.clone())
                            .collect();
                        prop_assert_eq!(outcome.events as usize, gone.len());
                        for message in gone {
                            model.remove(&message);
                            identifiers.remove(&message);
                        }
                        for key in &keys {
                            prop_assert!(store.customer(key).unwrap().is_none(), "{} still known", key);
                        }
                        forgotten.extend(keys);
                        // Deleting flushes: nothing unlogged is at risk any more.
                        volatile.clear();
                    }
                    (Vec::new(), true)
                }
                Operation::Crash => {
                    store.take().unwrap().simulate_crash();
                    store = Some(Store::open(dir.path(), options()).unwrap());
                    // Unlogged events survive only if a background flush wrote them; nothing else may go.
                    let survivors = stored(store.as_ref().unwrap());
                    for lost in volatile.iter().filter(|id| !survivors.contains_key(*id)) {
                        model.remove(lost);
                        identifiers.remove(lost);
                    }
                    volatile.clear();
                    (Vec::new(), true)
                }
            };
            if !events.is_empty() {
                let events: Vec<Event> = events.into_iter().map(|(m, u, a, s)| make_event(m, u, a, s)).collect();
                let mut expected_new = 0;
                let mut expected_duplicates = 0;
                let mut expected_suppressed = 0;
                for event in &events {
                    let keys = [
                        event.user_id.as_ref().map(|user| format!("user:{user}")),
                        event.anonymous_id.as_ref().map(|anonymous| format!("anon:{anonymous}")),
                    ];
                    if keys.iter().flatten().any(|key| forgotten.contains(key)) {
                        expected_suppressed += 1;
                    } else if model.contains_key(&event.message_id) {
                        expected_duplicates += 1;
                    } else {
                        expected_new += 1;
                        model.insert(event.message_id.clone(), (event.step(), event.timestamp.micros()));
                        identifiers.insert(event.message_id.clone(), event.primary_identifier().key());
                        if !logged {
                            volatile.insert(event.message_id.clone());
                        }
                    }
                }
                let store = store.as_ref().unwrap();
                let outcome = if logged {
                    store.append(events, vec![]).unwrap()
                } else {
                    let mut batch = EventBatch::default();
                    for event in events {
                        batch.push_event(event);
                    }
                    store.append_batch_unlogged(batch, vec![]).unwrap()
                };
                prop_assert_eq!(outcome.accepted, expected_new);
                prop_assert_eq!(outcome.duplicates, expected_duplicates);
                prop_assert_eq!(outcome.suppressed, expected_suppressed);
            }
            let current = store.as_ref().unwrap();
            prop_assert_eq!(&stored(current), &model);
            prop_assert_eq!(current.stats().events as usize, model.len());
            // Every identifier's customer timeline holds that identifier's events, in time order.
            for key in identifiers.values().collect::<BTreeSet<_>>() {
                let view = current.customer(key).unwrap().expect("known identifier");
                let times: Vec<i64> = view.events.iter().map(|entry| entry.time.micros()).collect();
                prop_assert!(times.windows(2).all(|pair| pair[0] <= pair[1]));
            }
        }
    }
}
