//! `waymark simulate` as people run it: in a sandbox (the store untouched), against a running server in real
//! time (its analyses leave the simulated customer out unless asked), and a scenario with a problem named by
//! file and line with exit code 2.

mod common;

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

fn waymark(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_waymark"))
        .arg("--data")
        .arg(data)
        .args(args)
        .output()
        .unwrap()
}

const SCENARIO: &str = r#"
name: quick-sign-in
description: A customer fails to sign in twice, then calls
personas:
  - name: android-owner
    device: { type: android_app, os: Android, model: Pixel 8 }
    steps:
      - track: Login Attempted
        after: 200ms
      - track: Login Failed
        after: 200ms
        times: 2
      - track: Call Started
        channel: call_center
        after: 200ms
"#;

fn overview(url: &str, test_traffic: bool) -> Value {
    let mut response = ureq::post(&format!("{url}/v1/analyses/overview"))
        .send_json(serde_json::json!({"filter": {"test_traffic": test_traffic}}))
        .unwrap();
    serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap()
}

#[test]
fn a_scenario_runs_in_a_sandbox_and_against_a_live_server() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("quick.yaml");
    std::fs::write(&file, SCENARIO).unwrap();
    let data = dir.path().join("data");
    let seed = dir.path().join("seed.jsonl");
    std::fs::write(
        &seed,
        r#"{"type":"track","userId":"ann","event":"Login Attempted","timestamp":"2026-01-01T10:00:00Z"}
{"type":"track","userId":"ann","event":"Logged In","timestamp":"2026-01-01T10:00:05Z"}
"#,
    )
    .unwrap();
    assert!(waymark(&data, &["import", seed.to_str().unwrap()])
        .status
        .success());

    // A sandbox: the report as JSON; the store keeps its two events.
    let sandbox = dir.path().join("sandbox");
    let output = waymark(
        &data,
        &[
            "--json",
            "simulate",
            file.to_str().unwrap(),
            "--sandbox",
            sandbox.to_str().unwrap(),
        ],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["events"], 4, "{report}");
    assert_eq!(report["customers"][0]["steps"].as_array().unwrap().len(), 4);
    assert_eq!(
        report["customers"][0]["customer_id"],
        "waymark-sim:quick-sign-in/android-owner-1"
    );
    assert!(sandbox.join("FORMAT").is_file());
    let stats = waymark(&data, &["--json", "stats"]);
    let stats: Value = serde_json::from_slice(&stats.stdout).unwrap();
    assert_eq!(stats["events"], 2, "{stats}");
    // The sandbox is never an existing store.
    let again = waymark(
        &data,
        &[
            "simulate",
            file.to_str().unwrap(),
            "--sandbox",
            sandbox.to_str().unwrap(),
        ],
    );
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("is not empty"));

    // Live, in real time: the events arrive through the collector, as test traffic.
    let (mut server, url) = common::start_server(&data, "wk");
    let output = waymark(
        &data,
        &[
            "--json",
            "simulate",
            file.to_str().unwrap(),
            "--server",
            &url,
            "--write-key",
            "wk",
        ],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["events"], 4, "{report}");
    assert_eq!(
        overview(&url, false)["customers"],
        1,
        "the simulated customer is left out"
    );
    assert_eq!(
        overview(&url, true)["customers"],
        2,
        "and counted when asked"
    );
    server.kill().unwrap();
    server.wait().unwrap();

    // A scenario with a problem: file, line and column, exit 2.
    std::fs::write(
        &file,
        "name: x\npersonas:\n  - name: p\n    steps:\n      - track: A\n        aftr: 1s\n",
    )
    .unwrap();
    let output = waymark(&data, &["simulate", file.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("quick.yaml:6:9: personas[0].steps[0]: unknown field `aftr`"),
        "{stderr}"
    );
}
