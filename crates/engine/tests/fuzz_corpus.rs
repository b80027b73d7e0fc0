//! Replays every fuzz target's seeds (`fuzz/seeds/TARGET/`) and every input a fuzzer once crashed on
//! (`fuzz/regressions/TARGET-*`) through the target's body, so `cargo test` keeps the targets building and the
//! fixed crashes fixed. The fuzzing itself runs with `cargo +nightly fuzz run TARGET` (fuzz/README.md).

use std::path::{Path, PathBuf};

type Target = (&'static str, fn(&[u8]));

const TARGETS: &[Target] = &[
    ("segment_json", waymark_engine::fuzzing::segment_json),
    ("import_csv", waymark_engine::fuzzing::import_csv),
    ("import_jsonl", waymark_engine::fuzzing::import_jsonl),
    ("import_xes", waymark_engine::fuzzing::import_xes),
    ("import_parquet", waymark_engine::fuzzing::import_parquet),
    ("query_condition", waymark_engine::fuzzing::query_condition),
    ("rules_cel", waymark_engine::fuzzing::rules_cel),
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn every_seed_and_every_kept_crash_input_runs_clean() {
    let dir = fuzz_dir();
    let regressions = files(&dir.join("regressions"));
    for (name, body) in TARGETS {
        let seeds = files(&dir.join("seeds").join(name));
        assert!(!seeds.is_empty(), "fuzz/seeds/{name}/ has no seed");
        let kept: Vec<&PathBuf> = regressions
            .iter()
            .filter(|path| {
                path.file_name()
                    .and_then(|file| file.to_str())
                    .is_some_and(|file| file.starts_with(&format!("{name}-")))
            })
            .collect();
        for path in seeds.iter().chain(kept) {
            let data = std::fs::read(path).unwrap();
            let outcome = std::panic::catch_unwind(|| body(&data));
            assert!(outcome.is_ok(), "{name} panicked on {}", path.display());
        }
    }
    // A kept input must belong to a target (a typo in its name would make it never run).
    for path in &regressions {
        let file = path.file_name().unwrap().to_str().unwrap();
        assert!(
            file == "README.md"
                || TARGETS
                    .iter()
                    .any(|(name, _)| file.starts_with(&format!("{name}-"))),
            "fuzz/regressions/{file} names no target"
        );
    }
}

#[test]
fn the_seeds_exercise_the_readers_rather_than_their_error_paths() {
    // A seed that no longer parses would quietly turn a reader's fuzzing into fuzzing its first error.
    let dir = fuzz_dir().join("seeds");
    let options = |format| waymark_engine::import::ImportOptions {
        format: Some(format),
        ..Default::default()
    };
    use waymark_engine::import::{check_file, ImportFormat};
    for (folder, format) in [
        ("import_csv/events.csv", ImportFormat::Csv),
        ("import_jsonl/events.jsonl", ImportFormat::Jsonl),
        ("import_xes/log.xes", ImportFormat::Xes),
        ("import_parquet/events.parquet", ImportFormat::Parquet),
    ] {
        let report = check_file(&dir.join(folder), &options(format)).unwrap();
        assert!(report.accepted >= 2, "{folder}: {report:?}");
    }
    let batch = std::fs::read(dir.join("segment_json/batch.json")).unwrap();
    let parsed =
        waymark_engine::ingest::parse_batch(&batch, waymark_model::Timestamp::now()).unwrap();
    assert!(parsed.events.len() >= 5, "{:?}", parsed.failed);
}

#[test]
fn a_parquet_footer_pointing_outside_the_file_is_refused_without_a_panic() {
    // libFuzzer aborts on any panic, caught or not: the reader's own check must refuse the file before the
    // parquet crate asserts (`column start and length should not be negative`).
    let path = fuzz_dir().join("regressions/import_parquet-footer");
    let panics = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = std::sync::Arc::clone(&panics);
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |_| {
        seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }));
    let outcome = waymark_engine::import::check_file(
        &path,
        &waymark_engine::import::ImportOptions {
            format: Some(waymark_engine::import::ImportFormat::Parquet),
            ..Default::default()
        },
    );
    std::panic::set_hook(previous);
    let error = outcome.unwrap_err().to_string();
    assert!(error.contains("outside the file"), "{error}");
    assert_eq!(
        panics.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "{error}"
    );
}
