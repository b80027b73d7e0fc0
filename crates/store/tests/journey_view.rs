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
    let after_append = store.journey_view(&[]).unwrap();
    assert_eq!(after_append.n_events(), 3);
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
