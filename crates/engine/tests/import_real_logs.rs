//! Imports the real process-mining logs in `../shared/data/pm4py/` and checks case, event and activity counts
//! against the `*.expected.json` that pm4py itself produced.

use std::collections::BTreeMap;
use std::path::PathBuf;
use waymark_engine::import::{import_file, ImportOptions};
use waymark_model::Event;
use waymark_store::{Store, StoreOptions};

fn shared_data() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/pm4py");
    assert!(
        path.is_dir(),
        "the shared data directory {} is missing: these tests read the real logs in place",
        path.display()
    );
    path
}

fn expected(name: &str) -> serde_json::Value {
    let path = shared_data().join(name);
    serde_json::from_slice(
        &std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display())),
    )
    .unwrap()
}

fn import_and_check(file: &str, expected_name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let report = import_file(
        &store,
        &shared_data().join(file),
        &ImportOptions::default(),
        &|_, _| {},
    )
    .unwrap();
    // The import skips the write-ahead log but is durable once it returns: a crash right after loses nothing.
    store.simulate_crash();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let expected = expected(expected_name);
    assert_eq!(
        report.rows,
        expected["n_events"].as_u64().unwrap(),
        "{file}: rows read"
    );
    assert_eq!(
        report.accepted,
        expected["n_events"].as_u64().unwrap(),
        "{file}: events stored"
    );
    let stats = store.stats();
    assert_eq!(
        stats.events,
        expected["n_events"].as_u64().unwrap(),
        "{file}: events"
    );
    assert_eq!(
        stats.customers,
        expected["n_cases"].as_u64().unwrap(),
        "{file}: cases"
    );
    let mut activity_counts: BTreeMap<String, u64> = BTreeMap::new();
    store
        .for_each_event(|_, payload| {
            let event: Event = serde_json::from_slice(payload).unwrap();
            *activity_counts.entry(event.step()).or_default() += 1;
            Ok(())
        })
        .unwrap();
    let expected_counts: BTreeMap<String, u64> = expected["activity_counts"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, count)| (name.clone(), count.as_u64().unwrap()))
        .collect();
    assert_eq!(activity_counts, expected_counts, "{file}: activity counts");

    // Importing the same file again stores nothing new.
    let again = import_file(
        &store,
        &shared_data().join(file),
        &ImportOptions::default(),
        &|_, _| {},
    )
    .unwrap();
    assert_eq!(
        (again.accepted, again.duplicates),
        (0, expected["n_events"].as_u64().unwrap())
    );
    assert_eq!(store.stats().events, expected["n_events"].as_u64().unwrap());
}

#[test]
fn receipt_csv_gz_matches_pm4py_counts() {
    import_and_check("receipt.csv.gz", "receipt.expected.json");
}

#[test]
fn running_example_xes_matches_pm4py_counts() {
    import_and_check("running-example.xes", "running-example.expected.json");
}

#[test]
fn running_example_csv_matches_pm4py_counts() {
    import_and_check("running-example.csv", "running-example.expected.json");
}

#[test]
fn road_traffic_xes_gz_and_flat_csv_match_pm4py_counts() {
    import_and_check(
        "roadtraffic100traces.xes.gz",
        "roadtraffic100traces.expected.json",
    );
    import_and_check(
        "roadtraffic100traces.events.csv.gz",
        "roadtraffic100traces.expected.json",
    );
}

#[test]
fn a_bad_row_stops_the_import_with_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("calls.csv");
    std::fs::write(&csv, "customer_id,event,timestamp\nc1,Call Started,2026-01-01T10:00:00Z\nc2,Call Started,soon\nc3,Call Ended,2026-01-01T10:05:00Z\n").unwrap();
    let store = Store::open(dir.path().join("data"), StoreOptions::default()).unwrap();
    let error = import_file(&store, &csv, &ImportOptions::default(), &|_, _| {}).unwrap_err();
    assert_eq!(
        error.cause().to_string(),
        "calls.csv:3: timestamp: \"soon\" is not a timestamp (ISO-8601 such as 2026-01-02T03:04:05Z, or epoch seconds) (use --skip-invalid to record bad rows and continue)"
    );
    assert!(
        error.to_string().ends_with("stored 1 new events from the rows before line 3; fix or delete line 3 and run the same import again to resume: rows already stored are recognised and skipped"),
        "{error}"
    );
    store.simulate_crash();
    let store = Store::open(dir.path().join("data"), StoreOptions::default()).unwrap();
    assert_eq!(
        store.stats().events,
        1,
        "the valid row before the bad one is kept, durably"
    );

    let options = ImportOptions {
        skip_invalid: true,
        ..ImportOptions::default()
    };
    let report = import_file(&store, &csv, &options, &|_, _| {}).unwrap();
    assert_eq!(
        (report.accepted, report.duplicates, report.invalid),
        (1, 1, 1)
    );
    assert_eq!(store.stats().events, 2);
    assert_eq!(store.failed_events(10).unwrap().len(), 1);
}

#[test]
fn a_stopped_import_resumes_where_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("calls.csv");
    let good = "customer_id,event,timestamp\nc1,Call Started,2026-01-01T10:00:00Z\nc2,Call Started,2026-01-01T10:01:00Z\nc3,Call Ended,2026-01-01T10:05:00Z\n";
    // A ragged row: two fields where the header has three.
    std::fs::write(
        &csv,
        good.replace("c2,Call Started,2026-01-01T10:01:00Z", "c2,Call Started"),
    )
    .unwrap();
    let store = Store::open(dir.path().join("data"), StoreOptions::default()).unwrap();
    let error = import_file(&store, &csv, &ImportOptions::default(), &|_, _| {}).unwrap_err();
    assert!(
        error.cause().to_string().starts_with("calls.csv:3: "),
        "{error}"
    );
    assert!(
        error.to_string().ends_with("stored 1 new events from the rows before line 3; fix or delete line 3 and run the same import again to resume: rows already stored are recognised and skipped"),
        "{error}"
    );
    assert_eq!(store.stats().events, 1);

    // Resuming: the row fixed in place, the same import again stores the rest and skips what is stored.
    std::fs::write(&csv, good).unwrap();
    let report = import_file(&store, &csv, &ImportOptions::default(), &|_, _| {}).unwrap();
    assert_eq!(
        (report.accepted, report.duplicates),
        (2, 1),
        "resumed where it stopped"
    );
    assert_eq!(store.stats().events, 3);

    // A second bad file, and the run after it says how many rows an earlier run stored.
    std::fs::write(&csv, format!("{good}c4,Call Ended\n")).unwrap();
    let error = import_file(&store, &csv, &ImportOptions::default(), &|_, _| {}).unwrap_err();
    assert!(error.to_string().contains("stored 0 new events from the rows before line 5 (3 of them were stored by an earlier run)"), "{error}");
    assert_eq!(store.stats().events, 3, "nothing is stored twice");
}

#[test]
fn parquet_with_utc_timestamps_imports_at_the_same_instants() {
    // Parquet writers (ours, pandas, Spark) mark timestamps with the zone name `UTC`.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("synthetic.parquet");
    let journeys = waymark_engine::synthetic::journeys(2_000, 3);
    waymark_engine::synthetic::write_parquet(&journeys, &file, &mut |_| {}).unwrap();
    let store = Store::open(dir.path().join("store"), StoreOptions::default()).unwrap();
    import_file(&store, &file, &ImportOptions::default(), &|_, _| {}).unwrap();
    let imported = store.journeys();
    assert_eq!(imported.n_events(), 2_000);
    assert_eq!(imported.n_journeys(), journeys.n_journeys());
    let mut expected = journeys.ts.clone();
    let mut got = imported.ts.clone();
    expected.sort_unstable();
    got.sort_unstable();
    assert_eq!(got, expected, "every event keeps its instant");
}
