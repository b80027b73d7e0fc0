//! The fuzz targets' bodies (`fuzz/fuzz_targets/*.rs` call them under libFuzzer; `tests/fuzz_corpus.rs` replays
//! the seeds and every crash input kept in `fuzz/regressions/` through them in `cargo test`). Each takes
//! arbitrary bytes and must neither panic nor hang; what it checks beyond that is said per function.

use crate::import::{check_file, ImportFormat, ImportOptions};
use crate::ingest::{parse_batch, parse_single};
use waymark_model::{EventType, Timestamp};

fn now() -> Timestamp {
    Timestamp::parse("2026-03-01T12:00:00Z").expect("a valid time")
}

/// The collector's Segment JSON parser, as a batch and as a single `track`: a refused request or event has an
/// error code, and parsing is deterministic (the same bytes give the same events and refusals).
pub fn segment_json(data: &[u8]) {
    let outcome = |parsed: &Result<
        crate::ingest::ParsedRequest,
        waymark_model::ValidationError,
    >| match parsed {
        Ok(parsed) => {
            for failed in &parsed.failed {
                assert!(!failed.code.is_empty(), "a refused event without a code");
            }
            Ok((parsed.events.len(), parsed.failed.len()))
        }
        Err(error) => {
            assert!(!error.code().is_empty(), "a refusal without a code");
            Err(error.code().to_string())
        }
    };
    let batch = outcome(&parse_batch(data, now()));
    assert_eq!(batch, outcome(&parse_batch(data, now())));
    let single = outcome(&parse_single(data, EventType::Track, now()));
    assert_eq!(
        single,
        outcome(&parse_single(data, EventType::Track, now()))
    );
}

/// One import reader over `data` as a file: it answers (a report, or an error that names the file), and the same
/// bytes give the same report.
fn import(format: ImportFormat, extension: &str, data: &[u8]) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join(format!("input.{extension}"));
    std::fs::write(&path, data).expect("the input is written");
    let options = ImportOptions {
        format: Some(format),
        ..ImportOptions::default()
    };
    let summary =
        |checked: Result<crate::import::ImportReport, crate::import::ImportError>| match checked {
            Ok(report) => Ok((report.accepted, report.invalid, report.problems)),
            Err(error) => {
                let message = error.to_string();
                assert!(!message.is_empty());
                Err(message)
            }
        };
    let first = summary(check_file(&path, &options));
    assert_eq!(
        first,
        summary(check_file(&path, &options)),
        "the same file read twice"
    );
}

pub fn import_csv(data: &[u8]) {
    import(ImportFormat::Csv, "csv", data);
}

pub fn import_jsonl(data: &[u8]) {
    import(ImportFormat::Jsonl, "jsonl", data);
}

pub fn import_xes(data: &[u8]) {
    import(ImportFormat::Xes, "xes", data);
}

pub fn import_parquet(data: &[u8]) {
    import(ImportFormat::Parquet, "parquet", data);
}

/// The `--where` condition parser, and an analysis scope given as JSON (its filters, windows and step rules
/// planned as a query would).
pub fn query_condition(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = waymark_analytics::query::parse_condition(text);
    if let Ok(scope) = serde_json::from_str::<crate::Scope>(text) {
        let _ = scope.plan();
    }
}

/// The rules' CEL compiler and checker over a condition, and the definitions file (TOML) it sits in, validated
/// and compiled: an error always says where (line and column inside the source).
pub fn rules_cel(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for event in [false, true] {
        let vocabulary = waymark_rules::Vocabulary {
            event,
            ..waymark_rules::Vocabulary::default()
        };
        if let Err(error) = waymark_rules::Condition::compile(text, &vocabulary) {
            assert!(error.line >= 1 && error.column >= 1, "{error:?}");
        }
    }
    if let Ok(file) = waymark_rules::RulesFile::from_toml(text) {
        let _ = file.compile(&waymark_rules::Known::default(), &|_| 1);
    }
}
