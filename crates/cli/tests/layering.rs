//! The layering, enforced: `server` and `cli` reach the product only through `engine` (and `model` for types),
//! never `store` or `analytics` directly; the pure crates never depend on the engine or anything above it. Read from
//! `cargo metadata`, so a dependency added to any manifest fails here.

use serde_json::Value;
use std::collections::BTreeSet;

/// (crate, dependency kind) → its workspace dependencies.
fn workspace_dependencies() -> Vec<(String, Option<String>, String)> {
    let output = std::process::Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: Value = serde_json::from_slice(&output.stdout).unwrap();
    let mut edges = Vec::new();
    for package in metadata["packages"].as_array().unwrap() {
        let name = package["name"].as_str().unwrap().to_string();
        for dependency in package["dependencies"].as_array().unwrap() {
            let target = dependency["name"].as_str().unwrap();
            if target.starts_with("waymark-") {
                edges.push((
                    name.clone(),
                    dependency["kind"].as_str().map(str::to_string),
                    target.to_string(),
                ));
            }
        }
    }
    edges
}

#[test]
fn server_and_cli_reach_the_product_only_through_the_engine() {
    let edges = workspace_dependencies();
    assert!(
        edges
            .iter()
            .any(|(from, _, to)| from == "waymark-cli" && to == "waymark-engine"),
        "the metadata lists the workspace's dependencies: {edges:?}"
    );
    let mut wrong = BTreeSet::new();
    for (from, kind, to) in &edges {
        let is_front = from == "waymark-server" || from == "waymark-cli";
        let is_inner = to == "waymark-store"
            || to == "waymark-analytics"
            || to == "waymark-predict"
            || to == "waymark-rules";
        // The crash test checks what is on disk after kill -9 by reading the store itself: a test of the store's
        // durability through the binary, the one place a front crate's test may look below the engine.
        let allowed =
            from == "waymark-cli" && kind.as_deref() == Some("dev") && to == "waymark-store";
        if is_front && is_inner && !allowed {
            wrong.insert(format!(
                "{from} -> {to} ({})",
                kind.as_deref().unwrap_or("normal")
            ));
        }
    }
    assert!(wrong.is_empty(), "dependencies past the engine: {wrong:?}");
}

#[test]
fn pure_crates_never_depend_on_what_is_above_them() {
    let above = |crate_name: &str| -> &'static [&'static str] {
        match crate_name {
            "waymark-model" => &[
                "waymark-store",
                "waymark-analytics",
                "waymark-predict",
                "waymark-rules",
                "waymark-engine",
                "waymark-server",
                "waymark-cli",
            ],
            "waymark-store" | "waymark-analytics" | "waymark-predict" | "waymark-rules" => {
                &["waymark-engine", "waymark-server", "waymark-cli"]
            }
            "waymark-engine" => &["waymark-server", "waymark-cli"],
            "waymark-server" => &["waymark-cli"],
            _ => &[],
        }
    };
    let wrong: Vec<String> = workspace_dependencies()
        .into_iter()
        .filter(|(from, kind, to)| {
            kind.as_deref() != Some("dev") && above(from).contains(&to.as_str())
        })
        .map(|(from, _, to)| format!("{from} -> {to}"))
        .collect();
    assert!(wrong.is_empty(), "{wrong:?}");
    let analytics_store = workspace_dependencies()
        .into_iter()
        .any(|(from, _, to)| from == "waymark-analytics" && to == "waymark-store");
    assert!(!analytics_store, "analytics is pure: no store");
}
