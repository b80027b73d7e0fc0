//! The shared journey view: built once, served again while nothing changes, rebuilt after appends and merges.

mod common;

use common::event;
use std::sync::Arc;
use waymark_store::{Store, StoreOptions};

#[test]
fn the_view_is_reused_until_journeys_change() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    store
        .append(
            vec![
                event("a", Some("ann"), None, "view", 0),
                event("b", None, Some("dev-1"), "cart", 5),
            ],
            vec![],
        )
        .unwrap();
    let first = store.journey_view(&[]).unwrap();
    assert_eq!((first.n_journeys(), first.n_events()), (2, 2));
    assert!(
        Arc::ptr_eq(&first, &store.journey_view(&[]).unwrap()),
        "served again"
    );
    let with_plan = store.journey_view(&["plan".to_string()]).unwrap();
    assert_eq!(
        with_plan.property("plan").unwrap().value(0),
        &serde_json::json!("pro")
    );
    assert!(Arc::ptr_eq(
        &with_plan,
        &store.journey_view(&["plan".to_string()]).unwrap()
    ));
    store.flush().unwrap();
    assert_eq!(
        *store.journey_view(&[]).unwrap(),
        *first,
        "a flush changes no journey"
    );

    store
        .append(vec![event("c", Some("ann"), None, "buy", 10)], vec![])
        .unwrap();
    let builds = store.view_builds();
    let after_append = store.journey_view(&[]).unwrap();
    assert_eq!(after_append.n_events(), 3);
    assert_eq!(
        store.view_builds(),
        (builds.0, builds.1 + 1),
        "an append extends the view instead of rebuilding it"
    );
    assert_eq!(*after_append, store.journeys(), "as a rebuild would");
    store.merge("user:ann", "anon:dev-1").unwrap();
    let after_merge = store.journey_view(&[]).unwrap();
    assert_eq!(
        (after_merge.n_journeys(), after_merge.n_events()),
        (1, 3),
        "the device joined ann"
    );
    assert!(!Arc::ptr_eq(&after_append, &after_merge));
}

#[test]
fn automatic_compaction_merges_only_what_fits_its_row_budget() {
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions {
        flush_rows: 10,
        max_segments: 2,
        compact_max_rows: 25,
    };
    let store = Store::open(dir.path(), options.clone()).unwrap();
    for batch in 0..12 {
        let events = (0..10)
            .map(|i| {
                let n = batch * 10 + i;
                event(
                    &format!("m{n}"),
                    Some(&format!("u{}", n % 7)),
                    None,
                    "view",
                    n as i64,
                )
            })
            .collect();
        store.append(events, vec![]).unwrap();
        store.flush().unwrap();
    }
    let stats = store.stats();
    assert_eq!(stats.events, 120);
    assert!(
        stats.segments > 2,
        "a 25-row budget cannot merge everything: {} segments",
        stats.segments
    );
    assert_eq!(
        store.journeys().n_events(),
        120,
        "nothing is lost while merging part of the segments"
    );
    store.compact().unwrap();
    assert_eq!(
        store.stats().segments,
        1,
        "an explicit compaction still merges everything"
    );
    drop(store);
    let reopened = Store::open(dir.path(), options).unwrap();
    assert_eq!(reopened.journeys().n_events(), 120);
}

#[test]
fn closing_during_a_background_merge_loses_nothing_and_leaves_no_stray_file() {
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions {
        flush_rows: 20_000,
        max_segments: 2,
        compact_max_rows: 1_000_000,
    };
    let events_per_round = 20_000;
    for round in 0..3 {
        let store = Store::open(dir.path(), options.clone()).unwrap();
        // Each batch fills the in-memory table, so flushes follow each other and merges start in the background;
        // the store is dropped (closed) right after the last, usually while a merge is running.
        for batch in 0..5 {
            let events = (0..events_per_round)
                .map(|i| {
                    let n = (round * 5 + batch) * events_per_round + i;
                    event(
                        &format!("m{n}"),
                        Some(&format!("u{}", n % 997)),
                        None,
                        "view",
                        n as i64,
                    )
                })
                .collect();
            store.append(events, vec![]).unwrap();
        }
        drop(store);
        let reopened = Store::open(dir.path(), options.clone()).unwrap();
        let expected = (round + 1) * 5 * events_per_round;
        assert_eq!(reopened.stats().events as usize, expected, "round {round}");
        assert_eq!(reopened.journeys().n_events(), expected);
        let listed = reopened.stats().segments;
        drop(reopened);
        let files: Vec<String> = std::fs::read_dir(dir.path().join("segments"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        assert!(
            files.iter().all(|name| name.ends_with(".seg")),
            "no temporary is left: {files:?}"
        );
        assert_eq!(
            files.len() as u64,
            listed,
            "only listed segments: {files:?}"
        );
    }
}

#[test]
fn the_dedup_set_built_at_first_write_or_prepared_holds_every_stored_event() {
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions {
        flush_rows: 50,
        ..StoreOptions::default()
    };
    let events = |range: std::ops::Range<usize>| {
        range
            .map(|n| event(&format!("m{n}"), Some("ann"), None, "view", n as i64))
            .collect::<Vec<_>>()
    };
    {
        let store = Store::open(dir.path(), options.clone()).unwrap();
        // Segments (flushed), then events left in the log only (a crash before any flush of them).
        store.append(events(0..120), vec![]).unwrap();
        store.flush().unwrap();
        store.append(events(120..140), vec![]).unwrap();
        store.simulate_crash();
    }
    // Built while replaying the log; then at the first append (the log is empty after a clean close); then
    // prepared ahead.
    for (how, range, accepted, total) in [
        ("replayed", 100..150, 10, 150),
        ("at first append", 140..160, 10, 160),
        ("prepared", 0..170, 10, 170),
    ] {
        let store = Store::open(dir.path(), options.clone()).unwrap();
        if how == "prepared" {
            store.prepare_writes();
        }
        let expected_duplicates = range.len() - accepted;
        let outcome = store.append(events(range), vec![]).unwrap();
        assert_eq!(
            (outcome.accepted, outcome.duplicates),
            (accepted, expected_duplicates),
            "dedup set {how}"
        );
        assert_eq!(store.stats().events, total);
    }
}

#[test]
fn events_after_a_sequence_number_come_in_arrival_order_from_segments_and_memory() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    store
        .append(
            vec![
                event("a", Some("ann"), None, "view", 50),
                event("b", None, Some("dev-1"), "cart", 5),
            ],
            vec![],
        )
        .unwrap();
    store.flush().unwrap();
    store
        .append(vec![event("c", Some("bob"), None, "buy", 1)], vec![])
        .unwrap();
    let all = store.events_after(None, usize::MAX).unwrap();
    let ids: Vec<&str> = all.iter().map(|e| e.event.message_id.as_str()).collect();
    assert_eq!(ids, ["a", "b", "c"], "arrival order, not time order");
    assert_eq!(all[1].customer, "dev-1");
    assert_eq!(store.last_seq(), Some(all[2].seq));
    let after = store.events_after(Some(all[0].seq), 1).unwrap();
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].event.message_id, "b");
    assert!(store.events_after(store.last_seq(), 10).unwrap().is_empty());
}

/// An event with a varying property, so extended views must merge dictionaries too.
fn rated(
    message: &str,
    user: Option<&str>,
    anonymous: Option<&str>,
    step: &str,
    seconds: i64,
    score: u8,
) -> waymark_model::Event {
    let mut event = event(message, user, anonymous, step, seconds);
    event
        .properties
        .insert("score".into(), serde_json::json!(score));
    event
}

/// A view as values: (customer, [(time, step name, channel name, plan, score)]) per journey.
type Seen = Vec<(
    String,
    Vec<(i64, String, String, serde_json::Value, serde_json::Value)>,
)>;

fn seen(view: &waymark_model::JourneySet) -> Seen {
    let (plan, score) = (
        view.property("plan").unwrap(),
        view.property("score").unwrap(),
    );
    (0..view.n_journeys())
        .map(|journey| {
            let events = (view.offsets[journey]..view.offsets[journey + 1])
                .map(|event| {
                    (
                        view.ts[event],
                        view.step_names[view.step[event] as usize].clone(),
                        view.channel_names[view.channel[event] as usize].clone(),
                        plan.value(event).clone(),
                        score.value(event).clone(),
                    )
                })
                .collect();
            (view.customer_ids[journey].to_string(), events)
        })
        .collect()
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
    /// A view extended with the events appended since it was built equals a view built from scratch, through
    /// appends (new and known customers, out-of-order times, ties), flushes between them and identity merges.
    #[test]
    fn extended_views_equal_rebuilt_ones(
        batches in proptest::collection::vec(
            (proptest::collection::vec((0u8..6, 0i64..50, 0u8..4, 0u8..3), 0..12), 0u8..10),
            1..8,
        ),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions { flush_rows: 30, ..StoreOptions::default() }).unwrap();
        let names = vec!["plan".to_string(), "score".to_string()];
        let mut message = 0;
        for (events, action) in batches {
            let batch = events
                .into_iter()
                .map(|(customer, seconds, step, score)| {
                    message += 1;
                    let user = format!("u{customer}");
                    // Some events bring a new device identifier, which joins the customer (a merge that regroups
                    // no old journey); some are anonymous, a customer of their own until a later event links them.
                    let device = format!("d{customer}-{}", message % 3);
                    let (user, anonymous) = match score {
                        2 => (Some(user.as_str()), Some(device.as_str())),
                        3 => (None, Some(device.as_str())),
                        _ => (Some(user.as_str()), None),
                    };
                    rated(&format!("m{message}"), user, anonymous, ["view", "cart", "buy", "help"][step as usize], seconds, score)
                })
                .collect::<Vec<_>>();
            // Views held before the append are extended after it.
            let _before = store.journey_view(&names).unwrap();
            let _hot = store.journey_view(&[]).unwrap();
            store.append(batch, vec![]).unwrap();
            match action {
                0 => store.flush().unwrap(),
                1 => {
                    let _ = store.merge("user:u0", "user:u1");
                }
                _ => {}
            }
            let extended = store.journey_view(&names).unwrap();
            let rebuilt = store.journeys_with(&names).unwrap();
            proptest::prop_assert_eq!(seen(&extended), seen(&rebuilt));
            proptest::prop_assert_eq!(&extended.offsets, &rebuilt.offsets);
            let hot = store.journey_view(&[]).unwrap();
            let fresh = store.journeys_with(&[]).unwrap();
            proptest::prop_assert_eq!(&*hot, &fresh);
        }
    }
}

/// A `track` event with its own `plan`, so that the extended view's property dictionary has to grow.
fn planned(
    message: &str,
    user: &str,
    step: &str,
    seconds: i64,
    plan: &str,
) -> waymark_model::Event {
    let json = serde_json::json!({
        "type": "track", "event": step, "messageId": message, "userId": user,
        "properties": {"plan": plan},
        "timestamp": waymark_model::Timestamp::from_secs(1_700_000_000 + seconds).to_rfc3339(),
    });
    waymark_model::Event::from_segment_json(
        &json,
        &waymark_model::IngestContext::at(waymark_model::Timestamp::from_secs(1_700_000_000)),
    )
    .unwrap()
}

#[test]
fn rows_flushed_or_merged_since_the_view_extend_it_as_a_rebuild_would() {
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions {
        flush_rows: 1_000_000,
        max_segments: 100,
        compact_max_rows: 1_000_000,
    };
    let store = Store::open(dir.path(), options).unwrap();
    let plan = vec!["plan".to_string()];
    let mut n = 0;
    let mut batch = |store: &Store, users: usize| {
        let events = (0..users)
            .map(|user| {
                n += 1;
                planned(
                    &format!("m{n}"),
                    &format!("u{}", (n * 7 + user) % 13),
                    ["view", "cart", "buy"][n % 3],
                    // Out of order in time, so new rows land between old ones.
                    ((n * 37) % 101) as i64,
                    &format!("plan-{}", n % 5),
                )
            })
            .collect();
        store.append(events, vec![]).unwrap();
    };
    batch(&store, 20);
    store.flush().unwrap();
    let mut previous = store.journey_view(&plan).unwrap();
    for round in 0..4 {
        batch(&store, 15);
        match round {
            0 => store.flush().unwrap(),
            1 => store.compact().unwrap(),
            2 => {
                store.flush().unwrap();
                batch(&store, 5);
            }
            _ => {}
        }
        let builds = store.view_builds();
        let extended = store.journey_view(&plan).unwrap();
        assert_eq!(
            store.view_builds(),
            (builds.0, builds.1 + 1),
            "round {round}: new rows in a segment extend the view instead of rebuilding it"
        );
        assert!(!Arc::ptr_eq(&previous, &extended));
        let rebuilt = store.journeys_with(&plan).unwrap();
        assert_eq!(
            (
                &extended.offsets,
                &extended.ts,
                &extended.step,
                &extended.channel
            ),
            (
                &rebuilt.offsets,
                &rebuilt.ts,
                &rebuilt.step,
                &rebuilt.channel
            ),
            "round {round}: the journeys a rebuild gives"
        );
        assert!(extended.customer_ids.iter().eq(rebuilt.customer_ids.iter()));
        // The dictionary's order may differ (new values are appended to the old one); every event's value may not.
        let (ours, theirs) = (&extended.properties[0], &rebuilt.properties[0]);
        assert!(
            (0..rebuilt.n_events()).all(|event| ours.value(event) == theirs.value(event)),
            "round {round}: every event's plan as a rebuild reads it"
        );
        previous = extended;
    }
}
