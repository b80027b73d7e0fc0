//! Identity checkpoints are written zstd-compressed, and the plain JSON ones of earlier stores still open.

mod common;

use common::event;
use waymark_store::{Store, StoreOptions};

/// The customer `identifier` belongs to: its id and how many events it has.
fn customer(store: &Store, identifier: &str) -> (String, usize) {
    let view = store
        .customer(identifier)
        .unwrap()
        .expect("known identifier");
    (view.customer_id, view.events.len())
}

#[test]
fn checkpoints_are_compressed_and_plain_ones_still_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let events = vec![
            event("a", None, Some("dev-1"), "view", 0),
            event("b", Some("ann"), Some("dev-1"), "view", 5),
            event("c", None, Some("dev-2"), "view", 9),
        ];
        store.append(events, vec![]).unwrap();
        store.flush().unwrap();
    }
    let checkpoints: Vec<std::path::PathBuf> = std::fs::read_dir(dir.path().join("identity"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    assert_eq!(checkpoints.len(), 1, "{checkpoints:?}");
    let path = &checkpoints[0];
    assert!(path.to_string_lossy().ends_with(".json.zst"), "{path:?}");
    let compressed = std::fs::read(path).unwrap();
    let json = zstd::stream::decode_all(&compressed[..]).unwrap();
    assert!(json.len() > compressed.len());
    assert!(serde_json::from_slice::<serde_json::Value>(&json).is_ok());

    let opened = |dir: &std::path::Path| {
        let store = Store::open(dir, StoreOptions::default()).unwrap();
        (customer(&store, "dev-1"), customer(&store, "dev-2"))
    };
    let from_compressed = opened(dir.path());
    assert_eq!(from_compressed.0, ("ann".to_string(), 2));
    assert_eq!(from_compressed.1 .1, 1);
    // A store written before checkpoints were compressed: the same checkpoint as plain JSON.
    std::fs::write(path, &json).unwrap();
    assert_eq!(opened(dir.path()), from_compressed);
    // A damaged compressed checkpoint is refused, not half read.
    let mut damaged = compressed.clone();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0x55;
    std::fs::write(path, &damaged).unwrap();
    assert!(Store::open(dir.path(), StoreOptions::default()).is_err());
}
