//! Helpers for tests that run the real `waymark` binary.

#![allow(dead_code)]

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// Starts `waymark serve` on 127.0.0.1:0 over `data` with write key `key`; returns the process and its base URL
/// (read from the `--json` ready line).
pub fn start_server(data: &Path, key: &str) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_waymark"))
        .arg("--data")
        .arg(data)
        .args([
            "--json",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--write-key",
            key,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let ready: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|_| panic!("unexpected first line {line:?}"));
    (
        child,
        ready["url"]
            .as_str()
            .unwrap()
            .trim_end_matches('/')
            .to_string(),
    )
}
