//! Process maps and variants equal pm4py's on real logs: every log in `../shared/data/pm4py/` with an
//! `*.expected.json` is imported, and the DFG, step counts, start/end steps and variant multiset must be identical
//! (and the running example's DFG equals pm4py's upstream `running-example.dfg`).

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use waymark_analytics::{ProcessMapReport, ProcessMapRequest, VariantsReport, VariantsRequest};
use waymark_engine::import::ImportOptions;
use waymark_engine::{Engine, StoreOptions};

fn shared_data(name: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/pm4py")
        .join(name);
    assert!(
        path.exists(),
        "{} is missing: these tests read the shared real logs in place",
        path.display()
    );
    path
}

fn analyse(file: &str) -> (ProcessMapReport, VariantsReport) {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), StoreOptions::default()).unwrap();
    engine
        .import_file(&shared_data(file), &ImportOptions::default(), &|_, _| {})
        .unwrap();
    (
        engine.analyse(&ProcessMapRequest::default()).unwrap(),
        engine.analyse(&VariantsRequest::default()).unwrap(),
    )
}

fn counts(value: &Value) -> BTreeMap<String, u64> {
    value
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, count)| (name.clone(), count.as_u64().unwrap()))
        .collect()
}

fn assert_equals_pm4py(file: &str, expected_file: &str) {
    let expected: Value =
        serde_json::from_slice(&std::fs::read(shared_data(expected_file)).unwrap()).unwrap();
    let (map, variants) = analyse(file);
    assert_eq!(
        map.cases,
        expected["n_cases"].as_u64().unwrap(),
        "{file}: cases"
    );
    assert_eq!(
        map.events,
        expected["n_events"].as_u64().unwrap(),
        "{file}: events"
    );
    assert_eq!(
        map.steps.len() as u64,
        expected["n_activities"].as_u64().unwrap(),
        "{file}: activities"
    );
    assert_eq!(
        map.steps,
        counts(&expected["activity_counts"]),
        "{file}: activity counts"
    );
    assert_eq!(
        map.start,
        counts(&expected["start_activities"]),
        "{file}: start activities"
    );
    assert_eq!(
        map.end,
        counts(&expected["end_activities"]),
        "{file}: end activities"
    );
    let ours: BTreeSet<(String, String, u64)> = map
        .edges
        .iter()
        .map(|edge| (edge.from.clone(), edge.to.clone(), edge.count))
        .collect();
    let theirs: BTreeSet<(String, String, u64)> = expected["dfg"]
        .as_array()
        .unwrap()
        .iter()
        .map(|edge| {
            (
                edge[0].as_str().unwrap().to_string(),
                edge[1].as_str().unwrap().to_string(),
                edge[2].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(ours, theirs, "{file}: directly-follows graph");
    assert_eq!(
        variants.n_variants,
        expected["n_variants"].as_u64().unwrap(),
        "{file}: number of variants"
    );
    let our_variants: BTreeMap<Vec<String>, u64> = variants
        .variants
        .iter()
        .map(|variant| (variant.steps.clone(), variant.count))
        .collect();
    let their_variants: BTreeMap<Vec<String>, u64> = expected["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|variant| {
            let steps = variant[0]
                .as_array()
                .unwrap()
                .iter()
                .map(|step| step.as_str().unwrap().to_string())
                .collect();
            (steps, variant[1].as_u64().unwrap())
        })
        .collect();
    assert_eq!(our_variants, their_variants, "{file}: variants");
}

#[test]
fn running_example_equals_pm4py() {
    assert_equals_pm4py("running-example.xes", "running-example.expected.json");
    assert_equals_pm4py("running-example.csv", "running-example.expected.json");
    assert_equals_pm4py(
        "running-example.events.csv.gz",
        "running-example.expected.json",
    );
}

#[test]
fn receipt_equals_pm4py() {
    assert_equals_pm4py("receipt.csv.gz", "receipt.expected.json");
}

#[test]
fn road_traffic_equals_pm4py() {
    assert_equals_pm4py(
        "roadtraffic100traces.xes.gz",
        "roadtraffic100traces.expected.json",
    );
    assert_equals_pm4py(
        "roadtraffic100traces.events.csv.gz",
        "roadtraffic100traces.expected.json",
    );
}

/// pm4py's upstream `.dfg` format: N, N names, S start lines `idx x count`, E end lines, then `i>j x count` edges.
#[test]
fn running_example_equals_the_upstream_dfg_file() {
    let text = std::fs::read_to_string(shared_data("running-example.dfg")).unwrap();
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect();
    let mut cursor = 0;
    let mut next = || {
        cursor += 1;
        lines[cursor - 1]
    };
    let n_names: usize = next().parse().unwrap();
    let names: Vec<String> = (0..n_names).map(|_| next().to_string()).collect();
    let name = |index: &str| names[index.parse::<usize>().unwrap()].clone();
    let mut read_counts = || -> BTreeMap<String, u64> {
        let n: usize = next().parse().unwrap();
        (0..n)
            .map(|_| {
                let (index, count) = next().split_once('x').unwrap();
                (name(index), count.parse().unwrap())
            })
            .collect()
    };
    let start = read_counts();
    let end = read_counts();
    let edges: BTreeSet<(String, String, u64)> = lines[cursor..]
        .iter()
        .map(|line| {
            let (pair, count) = line.split_once('x').unwrap();
            let (from, to) = pair.split_once('>').unwrap();
            (name(from), name(to), count.parse().unwrap())
        })
        .collect();
    let (map, _) = analyse("running-example.xes");
    assert_eq!(map.start, start);
    assert_eq!(map.end, end);
    let ours: BTreeSet<(String, String, u64)> = map
        .edges
        .iter()
        .map(|edge| (edge.from.clone(), edge.to.clone(), edge.count))
        .collect();
    assert_eq!(ours, edges);
}
