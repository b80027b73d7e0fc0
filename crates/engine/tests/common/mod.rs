//! What the engine's tests share: a store holding the demo.

use waymark_engine::demo::DemoConfig;
use waymark_engine::{Engine, StoreOptions};

/// A fresh store holding the demo at `customers` people, seed 42 (the directory lives as long as the engine).
pub fn demo_engine(customers: usize) -> (tempfile::TempDir, Engine) {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), StoreOptions::default()).unwrap();
    engine
        .ingest_demo(
            DemoConfig {
                customers,
                seed: 42,
            },
            &mut || {},
        )
        .unwrap();
    (dir, engine)
}
