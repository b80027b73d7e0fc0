//! What the engine's tests share: a store holding a demo business.

use waymark_engine::demo::{Business, DemoConfig};
use waymark_engine::{Engine, StoreOptions};

/// A fresh store holding the demo retailer at `customers` people, seed 42 (the directory lives as long as the
/// engine).
#[allow(dead_code)]
pub fn demo_engine(customers: usize) -> (tempfile::TempDir, Engine) {
    business_engine(Business::Retail, customers)
}

/// A fresh store holding a demo business at `customers` people, seed 42.
pub fn business_engine(business: Business, customers: usize) -> (tempfile::TempDir, Engine) {
    let dir = tempfile::tempdir().unwrap();
    let engine = std::sync::Arc::new(Engine::open(dir.path(), StoreOptions::default()).unwrap());
    engine
        .ingest_demo(
            DemoConfig {
                customers,
                seed: 42,
                business,
                ..Default::default()
            },
            &mut || {},
        )
        .unwrap();
    let engine = std::sync::Arc::into_inner(engine).expect("no worker holds the engine");
    (dir, engine)
}
