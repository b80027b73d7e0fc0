//! `friction` on a real log shaped like neither demo: the help desk of an Italian software company
//! (`../shared/data/pm4py/helpdesk.events.csv.gz`, 4,580 tickets from 2010–2014, read in place). The log ended
//! years ago, so by the wall clock every open ticket would be "stuck": the analysis's "now" must come from the log.
//! Most tickets are resolved within minutes of being taken in charge while a large group waits days; that group
//! must be found as a slow step with no standard time given, and its size must match what the raw file says.

use flate2::read::GzDecoder;
use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use waymark_analytics::{FindingKind, FrictionRequest};
use waymark_engine::import::ImportOptions;
use waymark_engine::{Engine, StoreOptions};

fn helpdesk() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/pm4py/helpdesk.events.csv.gz");
    assert!(
        path.is_file(),
        "{} is missing: this test reads the real log in place",
        path.display()
    );
    path
}

/// Per ticket: its events as (activity, time in seconds), in file order (the file is sorted by case and time).
fn raw_tickets() -> HashMap<String, Vec<(String, i64)>> {
    let mut text = String::new();
    GzDecoder::new(std::fs::File::open(helpdesk()).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    let mut tickets: HashMap<String, Vec<(String, i64)>> = HashMap::new();
    for line in text.lines().skip(1) {
        let fields: Vec<&str> = line.split(',').collect();
        let time = chrono::DateTime::parse_from_rfc3339(fields[3])
            .unwrap()
            .timestamp();
        tickets
            .entry(fields[1].to_string())
            .or_default()
            .push((fields[2].to_string(), time));
    }
    tickets
}

#[test]
fn a_real_help_desk_log_gets_few_true_findings_and_no_stuck_tickets() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), StoreOptions::default()).unwrap();
    engine
        .import_file(&helpdesk(), &ImportOptions::default(), &|_, _| {})
        .unwrap();
    let request: FrictionRequest =
        serde_json::from_value(serde_json::json!({ "goals": ["Closed"] })).unwrap();
    let report = engine.analyse(&request).unwrap();
    let summary = waymark_analytics::query::text::friction(&report);
    assert_eq!(report.customers, 4_580, "{summary}");

    // "Now" is within the log, not today.
    let tickets = raw_tickets();
    let last = tickets
        .values()
        .flat_map(|events| events.iter().map(|(_, time)| *time))
        .max()
        .unwrap();
    let as_of = chrono::DateTime::parse_from_rfc3339(&report.as_of)
        .unwrap()
        .timestamp();
    assert!(
        as_of <= last && as_of > last - 365 * 86_400,
        "as_of {} against the log's last event {last}",
        report.as_of
    );
    assert!(
        !report
            .findings
            .iter()
            .any(|finding| finding.kind == FindingKind::Stuck && finding.customers > 458),
        "a tenth of the tickets stuck in a log that ended:\n{summary}"
    );
    // A help desk that closes 99 % of its tickets has few findings, each with its harm stated.
    assert!(report.findings.len() <= 6, "{summary}");
    for finding in &report.findings {
        assert!(!finding.harm.is_empty(), "{finding:?}");
    }

    // The slow group: tickets that take more than a day from being taken in charge to resolved, counted from the
    // raw file (the first time each ticket goes directly from one to the other).
    let (mut direct, mut slow) = (0u64, 0u64);
    for events in tickets.values() {
        if let Some(pair) = events
            .windows(2)
            .find(|pair| pair[0].0 == "Take in charge ticket" && pair[1].0 == "Resolve ticket")
        {
            direct += 1;
            slow += u64::from(pair[1].1 - pair[0].1 > 86_400);
        }
    }
    assert!(
        slow * 4 > direct,
        "the log's slow group: {slow} of {direct}"
    );
    let found = report
        .findings
        .iter()
        .find(|finding| {
            finding.kind == FindingKind::SlowStep
                && finding.title.contains("Take in charge ticket")
                && finding.title.contains("Resolve ticket")
        })
        .unwrap_or_else(|| panic!("the slow resolution is not found:\n{summary}"));
    // The slow group the mixture finds is the one in the file, within a fifth (where its edge lies is a choice).
    let ratio = found.customers as f64 / slow as f64;
    assert!(
        (0.8..1.25).contains(&ratio),
        "found {} slow customers, the file has {slow} over a day:\n{summary}",
        found.customers
    );
    assert!(found.delay_days.unwrap() > 0.0);
}
