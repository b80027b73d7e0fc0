//! The `waymark` binary as a user runs it: exit codes, error messages that name file, line and field, `--json`.

mod common;

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

/// [`waymark`], failing the test with the command's stderr unless it succeeds.
fn waymark_ok(data: &Path, args: &[&str]) -> Output {
    let output = waymark(data, args);
    assert!(
        output.status.success(),
        "waymark {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn shared(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data")
        .join(path);
    assert!(
        full.exists(),
        "{} is missing: these tests read the shared data in place",
        full.display()
    );
    full.display().to_string()
}

/// A store holding the receipt log (1,434 cases, 8,577 events).
fn receipt_store() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    assert!(
        waymark(dir.path(), &["import", &shared("pm4py/receipt.csv.gz")])
            .status
            .success()
    );
    dir
}

#[test]
fn import_reports_json_and_stats_agree() {
    let dir = tempfile::tempdir().unwrap();
    let output = waymark(
        dir.path(),
        &["--json", "import", &shared("pm4py/receipt.csv.gz")],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["imports"][0]["report"]["accepted"], 8577);
    assert_eq!(
        report["imports"][0]["report"]["customer_column"],
        "case:concept:name"
    );
    assert_eq!(report["stats"]["customers"], 1434);
    let stats: serde_json::Value =
        serde_json::from_slice(&waymark(dir.path(), &["--json", "stats"]).stdout).unwrap();
    assert_eq!(stats["events"], 8577);

    let parquet = dir.path().join("events.parquet");
    let output = waymark(
        dir.path(),
        &["--json", "export", "--out", parquet.to_str().unwrap()],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let export: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(export["rows"], 8577);
    assert!(std::fs::read(&parquet).unwrap().starts_with(b"PAR1"));
}

#[test]
fn bad_input_exits_2_naming_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("calls.csv");
    std::fs::write(
        &csv,
        "crm_id;reason;started\nc1;Call Started;2026-01-01 10:00\n;Call Started;2026-01-01 11:00\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    let output = waymark(
        &data,
        &[
            "import",
            csv.to_str().unwrap(),
            "--customer",
            "crm_id",
            "--step",
            "reason",
            "--time",
            "started",
        ],
    );
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("calls.csv:3: crm_id: empty or a placeholder value"),
        "{stderr}"
    );

    let output = waymark(&data, &["import", "/nonexistent/file.csv"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("/nonexistent/file.csv: no such file"));

    let output = waymark(&data, &["import", csv.to_str().unwrap()]);
    assert_eq!(
        output.status.code(),
        Some(2),
        "no customer column by its usual names"
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("pass --customer COLUMN"));

    let output = waymark(&data, &["no-such-command"]);
    assert_eq!(output.status.code(), Some(2));

    std::fs::write(
        data.join("waymark.toml"),
        "listen = \"127.0.0.1:9000\"\nwrite_key = \"oops\"\n",
    )
    .unwrap();
    let output = waymark(&data, &["config", "check"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("unknown field `write_key`"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::write(
        data.join("waymark.toml"),
        "listen = \"127.0.0.1:9000\"\nwrite_keys = [\"secret-key\"]\n",
    )
    .unwrap();
    let output = waymark(&data, &["--json", "config", "check"]);
    let config: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(config["listen"], "127.0.0.1:9000");
    assert!(
        !config["write_keys"][0]
            .as_str()
            .unwrap()
            .contains("secret-key"),
        "secrets are redacted"
    );
}

#[test]
fn identity_commands_show_and_undo_merges() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    std::fs::write(
        &events,
        concat!(
            r#"{"type":"page","anonymousId":"laptop","name":"Home","timestamp":"2026-01-01T10:00:00Z"}"#, "\n",
            r#"{"type":"identify","anonymousId":"laptop","userId":"ann","timestamp":"2026-01-01T10:01:00Z"}"#, "\n",
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    assert!(waymark(&data, &["import", events.to_str().unwrap()])
        .status
        .success());
    let shown: serde_json::Value =
        serde_json::from_slice(&waymark(&data, &["--json", "identity", "show", "laptop"]).stdout)
            .unwrap();
    assert_eq!(
        (shown["customer_id"].as_str(), shown["n_events"].as_u64()),
        (Some("ann"), Some(2))
    );
    let edge = shown["merges"][0]["id"].as_u64().unwrap().to_string();
    assert!(waymark(&data, &["identity", "unmerge", &edge])
        .status
        .success());
    let shown: serde_json::Value =
        serde_json::from_slice(&waymark(&data, &["--json", "identity", "show", "laptop"]).stdout)
            .unwrap();
    assert_eq!(
        (shown["customer_id"].as_str(), shown["n_events"].as_u64()),
        (Some("laptop"), Some(1))
    );
    assert_eq!(
        waymark(&data, &["identity", "unmerge", &edge])
            .status
            .code(),
        Some(2)
    );
}

/// Every registered analysis, in the registry's order.
const ANALYSES: [&str; 13] = [
    "overview",
    "process-map",
    "variants",
    "funnel",
    "flows",
    "friction",
    "moments",
    "retention",
    "attribution",
    "step-counts",
    "conformance",
    "feedback",
    "personas",
];

#[test]
fn query_help_lists_every_analysis_with_an_example() {
    let dir = tempfile::tempdir().unwrap();
    let help = String::from_utf8(waymark(dir.path(), &["query", "--help"]).stdout).unwrap();
    for analysis in ANALYSES {
        assert!(
            help.lines()
                .any(|line| line.trim_start().starts_with(analysis)
                    && line.contains("Example: `waymark query")),
            "{analysis} is not listed with an example:\n{help}"
        );
        assert!(
            help.contains(&format!("  waymark query {analysis} ")),
            "no example of {analysis} under Examples:\n{help}"
        );
    }
}

#[test]
fn attribution_of_a_path_table_shares_out_every_conversion() {
    let dir = tempfile::tempdir().unwrap();
    let data = shared("channelattribution/Data.csv");
    let output = waymark(
        dir.path(),
        &["--json", "attribution", "--paths", &data, "--order", "2"],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        (report["conversions"].as_u64(), report["order"].as_u64()),
        (Some(19_785), Some(2))
    );
    let markov: f64 = report["touchpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|credit| credit["markov"]["conversions"].as_f64().unwrap())
        .sum();
    assert!((markov - 19_785.0).abs() < 1e-6, "{markov}");
    let table = waymark(dir.path(), &["attribution", "--paths", &data]);
    let text = String::from_utf8(table.stdout).unwrap();
    assert!(
        text.starts_with("Attribution of 19785 conversions"),
        "{text}"
    );

    let bad = dir.path().join("paths.csv");
    std::fs::write(&bad, "path;total_conversions;total_null\na > b;2;x\n").unwrap();
    let output = waymark(
        dir.path(),
        &["attribution", "--paths", bad.to_str().unwrap()],
    );
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("paths.csv: line 2: total_null: `x`"),
        "{stderr}"
    );
}

#[test]
fn export_to_a_missing_directory_is_bad_input_said_once() {
    let dir = receipt_store();
    let out = dir.path().join("no such dir").join("events.parquet");
    let output = waymark(dir.path(), &["export", "--out", out.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        stderr.trim(),
        format!(
            "error: cannot write {}: there is no directory {}",
            out.display(),
            out.parent().unwrap().display()
        )
    );
    // A failure below the command is said once, not once per layer that wraps it.
    let output = waymark(
        dir.path(),
        &["export", "--out", dir.path().to_str().unwrap()],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.matches("Is a directory").count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: exporting to Parquet: "),
        "{stderr}"
    );
}

#[test]
fn queries_on_an_empty_store_say_how_to_fill_it() {
    let dir = tempfile::tempdir().unwrap();
    let output = waymark(dir.path(), &["--json", "query", "process-map"]);
    assert!(output.status.success());
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["cases"], 0, "stdout is the report alone");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("holds no events yet") && stderr.contains("waymark import FILE"),
        "{stderr}"
    );
    let filled = receipt_store();
    let output = waymark(filled.path(), &["query", "process-map"]);
    assert!(!String::from_utf8_lossy(&output.stderr).contains("no events"));
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    let dir = receipt_store();
    // As `waymark query process-map | head -0` does: the reader is gone before the first line is written.
    let mut child = Command::new(env!("CARGO_BIN_EXE_waymark"))
        .arg("--data")
        .arg(dir.path())
        .args(["query", "process-map"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        // Ended by SIGPIPE, as `yes | head` ends `yes`.
        assert_eq!(output.status.signal(), Some(13), "{:?}", output.status);
    }
}

fn get_json(url: &str, path: &str) -> serde_json::Value {
    let mut response = ureq::get(&format!("{url}{path}")).call().unwrap();
    serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap()
}

#[test]
fn query_json_and_http_return_the_same_documents() {
    let dir = receipt_store();
    let cli_map: serde_json::Value =
        serde_json::from_slice(&waymark(dir.path(), &["--json", "query", "process-map"]).stdout)
            .unwrap();
    let cli_variants: serde_json::Value = serde_json::from_slice(
        &waymark(dir.path(), &["--json", "query", "variants", "--top", "5"]).stdout,
    )
    .unwrap();
    assert_eq!(
        (cli_map["cases"].as_u64(), cli_map["events"].as_u64()),
        (Some(1434), Some(8577))
    );
    assert_eq!(cli_variants["variants"].as_array().unwrap().len(), 5);
    let funnel_steps = "Confirmation of receipt,T02 Check confirmation of receipt,T04 Determine confirmation of receipt,T05 Print and send confirmation of receipt";
    let cli_funnel: serde_json::Value = serde_json::from_slice(
        &waymark(
            dir.path(),
            &[
                "--json",
                "query",
                "funnel",
                "--steps",
                funnel_steps,
                "--window",
                "30d",
                "--mode",
                "strict_once",
            ],
        )
        .stdout,
    )
    .unwrap();
    assert_eq!(cli_funnel["steps"][0]["count"], 1434, "{cli_funnel}");
    let bad = waymark(
        dir.path(),
        &["query", "funnel", "--steps", "A", "--window", "soon"],
    );
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a duration"));

    let cli_json = |args: &[&str]| -> serde_json::Value {
        let output = waymark(dir.path(), &[&["--json", "query"], args].concat());
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap()
    };
    let cli_flows = cli_json(&[
        "flows",
        "--after",
        "Confirmation of receipt",
        "--depth",
        "3",
        "--top",
        "4",
    ]);
    let cli_friction = cli_json(&[
        "friction",
        "--goal",
        "T10 Determine necessity to stop indication",
    ]);
    let cli_retention = cli_json(&[
        "retention",
        "--start",
        "Confirmation of receipt",
        "--return",
        "T05 Print and send confirmation of receipt",
        "--period",
        "month",
        "--periods",
        "3",
    ]);
    let cli_overview = cli_json(&[
        "overview",
        "--goal",
        "T10 Determine necessity to stop indication",
    ]);
    let cli_steps = cli_json(&["step-counts", "--top", "4"]);
    assert_eq!(cli_steps["steps"].as_array().unwrap().len(), 4);
    assert_eq!(cli_flows["customers"], 1434);
    assert!(
        !cli_friction["findings"].as_array().unwrap().is_empty(),
        "{cli_friction}"
    );
    let (mut server, url) = common::start_server(dir.path(), "k");
    let post = |path: &str, body: &str| -> serde_json::Value {
        let mut response = ureq::post(&format!("{url}{path}"))
            .content_type("application/json")
            .send(body)
            .unwrap();
        serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap()
    };
    let http_map = post("/v1/analyses/process-map", "{}");
    let http_variants = post("/v1/analyses/variants", r#"{"top": 5}"#);
    let http_funnel = post(
        "/v1/analyses/funnel",
        &serde_json::json!({"steps": funnel_steps.split(',').collect::<Vec<_>>(), "window": "30d", "modes": ["strict_once"]}).to_string(),
    );
    let http_flows = post(
        "/v1/analyses/flows",
        r#"{"anchor": "Confirmation of receipt", "depth": 3, "top": 4}"#,
    );
    let http_friction = post(
        "/v1/analyses/friction",
        r#"{"goals": ["T10 Determine necessity to stop indication"]}"#,
    );
    let http_retention = post(
        "/v1/analyses/retention",
        r#"{"start": "Confirmation of receipt", "return": "T05 Print and send confirmation of receipt", "period": "month", "periods": 3}"#,
    );
    let http_overview = post(
        "/v1/analyses/overview",
        r#"{"goals": ["T10 Determine necessity to stop indication"]}"#,
    );
    let http_steps = post("/v1/analyses/step-counts", r#"{"top": 4}"#);
    // Every registered analysis is compared here.
    let listed = get_json(&url, "/v1/analyses");
    let names: Vec<&str> = listed["analyses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ANALYSES);
    server.kill().unwrap();
    server.wait().unwrap();
    assert_eq!(cli_overview, http_overview);
    assert_eq!(cli_steps, http_steps);
    assert_eq!(cli_map, http_map);
    assert_eq!(cli_variants, http_variants);
    assert_eq!(cli_funnel, http_funnel);
    assert_eq!(cli_flows, http_flows);
    assert_eq!(cli_friction, http_friction);
    assert_eq!(cli_retention, http_retention);
}

/// Next-step prediction on the real help-desk log with the literature's protocol (chronological split, every
/// prefix, the end as a symbol): the n-gram model beats Tax et al.'s LSTM (0.712 on this log and protocol) and is
/// no worse than the baseline measured in the same run; a bad order is a usage error.
#[test]
fn model_evaluate_beats_the_published_lstm_on_helpdesk() {
    let dir = tempfile::tempdir().unwrap();
    assert!(waymark(
        dir.path(),
        &["import", &shared("pm4py/helpdesk.events.csv.gz")]
    )
    .status
    .success());
    let output = waymark(dir.path(), &["--json", "model", "evaluate"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let evaluation: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    // 4,580 tickets: 3,053 earliest to train on, 1,527 to test, one prefix per test event (21,348 events in all).
    assert_eq!(evaluation["train_journeys"], 3_053);
    assert_eq!(evaluation["test_journeys"], 1_527);
    let model = evaluation["model"]["accuracy_at_1"].as_f64().unwrap();
    let baseline = evaluation["baseline"]["accuracy_at_1"].as_f64().unwrap();
    assert!(model > 0.712 && model >= baseline, "{evaluation}");
    assert!(evaluation["model"]["accuracy_at_3"].as_f64().unwrap() > model);

    let text = waymark(dir.path(), &["model", "evaluate", "--order", "2"]);
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(
        text.contains("n-gram, order 2") && text.contains("baseline"),
        "{text}"
    );
    // A split given by the caller (a published benchmark's folds): the listed tickets are tested, the rest
    // trained on; an id that is no journey's names the file and the id.
    let folds = dir.path().join("fold.txt");
    let ids: String = (1..=4_580)
        .filter(|case| case % 5 == 0)
        .map(|case| format!("Case {case}\n"))
        .collect();
    std::fs::write(&folds, &ids).unwrap();
    let fold = waymark_ok(
        dir.path(),
        &[
            "--json",
            "model",
            "evaluate",
            "--test-journeys",
            folds.to_str().unwrap(),
        ],
    );
    let fold: serde_json::Value = serde_json::from_slice(&fold.stdout).unwrap();
    let tested = ids.lines().count() as u64;
    assert_eq!(fold["test_journeys"].as_u64(), Some(tested), "{fold}");
    assert_eq!(
        fold["train_journeys"].as_u64(),
        Some(4_580 - tested),
        "{fold}"
    );
    assert!(
        fold["model"]["accuracy_at_1"].as_f64().unwrap() > 0.5,
        "{fold}"
    );
    std::fs::write(&folds, "Case 1\nCase 99999\n").unwrap();
    let unknown = waymark(
        dir.path(),
        &[
            "model",
            "evaluate",
            "--test-journeys",
            folds.to_str().unwrap(),
        ],
    );
    let message = String::from_utf8_lossy(&unknown.stderr);
    assert_eq!(unknown.status.code(), Some(2), "{message}");
    assert!(
        message.contains("fold.txt") && message.contains("Case 99999"),
        "{message}"
    );
    let bad = waymark(dir.path(), &["model", "evaluate", "--order", "0"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("order must be between 1 and 8"));

    // A remaining-time model trained, listed and scored: MAE in days beside the baselines, saved with its window.
    let trained = waymark(
        dir.path(),
        &[
            "--json",
            "model",
            "train",
            "ticket-time",
            "--target",
            "remaining",
        ],
    );
    assert!(
        trained.status.success(),
        "{}",
        String::from_utf8_lossy(&trained.stderr)
    );
    let info: serde_json::Value = serde_json::from_slice(&trained.stdout).unwrap();
    assert_eq!(info["name"], "ticket-time");
    assert_eq!(info["window"]["journeys"], 4_580);
    let mae = info["evaluation"]["mae_days"].as_f64().unwrap();
    assert!(
        mae < info["evaluation"]["baseline_median_mae_days"]
            .as_f64()
            .unwrap(),
        "{info}"
    );
    let list = String::from_utf8(waymark(dir.path(), &["model", "list"]).stdout).unwrap();
    assert!(
        list.contains("ticket-time") && list.contains("remaining time") && list.contains("MAE"),
        "{list}"
    );
    let scored = waymark(
        dir.path(),
        &["--json", "model", "score", "ticket-time", "--top", "5"],
    );
    let scores: serde_json::Value = serde_json::from_slice(&scored.stdout).unwrap();
    assert_eq!(scores.as_array().unwrap().len(), 5, "{scores}");
    assert_eq!(scores[0]["kind"], "remaining_time");
    assert!(scores[0]["days"].as_f64().unwrap() >= scores[4]["days"].as_f64().unwrap());
    let missing = waymark(dir.path(), &["model", "score", "no-such-model"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("there is no model"));
}

#[test]
fn rules_are_checked_with_file_positions_applied_and_dry_run() {
    let dir = receipt_store();
    let rules = dir.path().join("draft.toml");
    std::fs::write(
        &rules,
        r#"[[segments]]
name = "rechecked"
condition = 'count("T02 Check confirmation of receipt") >= 2'

[[triggers]]
name = "each-check"
on = "event"
step = "T02 Check confirmation of receipt"
reentry = "every_time"
actions = [{ type = "event", name = "Check Noted" }]

[[triggers]]
name = "first-check"
on = "event"
reentry = "once"
condition = 'event.name == "T02 Check confirmation of receipt" && count("T02 Check confirmaton of receipt") > 5'
actions = [{ type = "event", name = "Check Noted" }]
"#,
    )
    .unwrap();
    let draft = rules.to_str().unwrap();
    let out = waymark(dir.path(), &["rules", "check", draft]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let column =
        r#"condition = 'event.name == "T02 Check confirmation of receipt" && count("#.len() + 1;
    assert!(
        stderr.contains(&format!(
            "{draft}:16:{column}: triggers[first-check].condition: unknown step 'T02 Check confirmaton of receipt' (did you mean 'T02 Check confirmation of receipt'?)"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("nothing applied"), "{stderr}");
    // Nothing was applied by the failed check; apply refuses the same file.
    assert_eq!(
        waymark(dir.path(), &["rules", "apply", draft])
            .status
            .code(),
        Some(2)
    );
    let shown = waymark(dir.path(), &["--json", "rules", "show"]);
    let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(shown["versions"], serde_json::json!({}), "{shown}");

    let fixed = std::fs::read_to_string(&rules)
        .unwrap()
        .replace("confirmaton", "confirmation")
        .replace("> 5", ">= 1");
    std::fs::write(&rules, fixed).unwrap();
    let out = waymark(dir.path(), &["rules", "check", draft]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The dry run counts history: every check for the every-time trigger, each case once for the other.
    let out = waymark(dir.path(), &["--json", "rules", "dry-run", draft]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let fired = |name: &str| {
        run["triggers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["trigger"] == name)
            .map(|t| {
                (
                    t["fired"].as_u64().unwrap(),
                    t["customers"].as_u64().unwrap(),
                )
            })
    };
    assert_eq!(fired("each-check"), Some((1368, 1316)), "{run}");
    assert_eq!(fired("first-check"), Some((1316, 1316)), "{run}");
    assert_eq!(run["events"], 8577, "{run}");
    // A bad window names the flag.
    let out = waymark(dir.path(), &["rules", "dry-run", draft, "--since", "soon"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--since: 'soon'"));

    let out = waymark(dir.path(), &["--json", "rules", "apply", draft]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let saved: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(saved["versions"]["each-check"], 1, "{saved}");
    // Applying a changed trigger bumps its version only.
    let changed =
        std::fs::read_to_string(&rules)
            .unwrap()
            .replacen("Check Noted", "Check Counted", 1);
    std::fs::write(&rules, changed).unwrap();
    let out = waymark(dir.path(), &["--json", "rules", "apply", draft]);
    let saved: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (
            saved["versions"]["each-check"].as_u64(),
            saved["versions"]["first-check"].as_u64()
        ),
        (Some(2), Some(1)),
        "{saved}"
    );
    let out = waymark(dir.path(), &["rules", "show"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("Check Counted"));
    let out = waymark(dir.path(), &["rules", "log"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "no trigger instances"
    );
}

/// The running example's compensation process as a blueprint: saved from a file, its fitness pm4py's (0.866667,
/// `bench/conformance-vs-pm4py`), one case traced, a broken file refused with its line.
#[test]
fn blueprints_are_saved_from_files_and_replayed_as_pm4py_does() {
    let dir = tempfile::tempdir().unwrap();
    assert!(waymark(
        dir.path(),
        &["import", &shared("pm4py/running-example.csv")]
    )
    .status
    .success());
    let file = dir.path().join("compensation.toml");
    std::fs::write(
        &file,
        r#"goal = "pay compensation"
[[stages]]
name = "Register"
steps = ["register request"]
[[stages]]
name = "Examine"
steps = [{ one_of = ["examine casually", "examine thoroughly"] }]
[[stages]]
name = "Check"
steps = ["check ticket"]
[[stages]]
name = "Decide"
steps = ["decide"]
[[stages]]
name = "Close"
steps = [{ one_of = ["pay compensation", "reject request"] }]
"#,
    )
    .unwrap();
    let file = file.display().to_string();
    // Named after its file; saved again under another name.
    let saved = waymark(dir.path(), &["blueprint", "save", &file]);
    assert!(
        saved.status.success(),
        "{}",
        String::from_utf8_lossy(&saved.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&saved.stdout).trim(),
        "Saved blueprint compensation (5 stages, 5 steps)."
    );
    assert!(waymark(
        dir.path(),
        &["blueprint", "save", &file, "--name", "claims"]
    )
    .status
    .success());
    let listed = String::from_utf8(waymark(dir.path(), &["blueprint", "list"]).stdout).unwrap();
    assert!(
        listed.contains("Register → Examine → Check → Decide → Close"),
        "{listed}"
    );

    for blueprint in ["compensation", file.as_str()] {
        assert_fitness(dir.path(), blueprint, (0.866667, 0.884259, 2));
    }

    let trace = waymark(dir.path(), &["blueprint", "trace", "compensation", "3"]);
    let text = String::from_utf8(trace.stdout).unwrap();
    assert!(
        text.starts_with("Customer 3 against compensation: left the design"),
        "{text}"
    );
    assert!(
        text.contains("unexpected         Decide       reinitiate request"),
        "{text}"
    );

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "name = \"x\"\nstages = [\n").unwrap();
    let refused = waymark(
        dir.path(),
        &["blueprint", "save", &bad.display().to_string()],
    );
    assert_eq!(refused.status.code(), Some(2));
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.contains("bad.toml: line 2"), "{message}");
    assert!(
        waymark(dir.path(), &["blueprint", "delete", "compensation"])
            .status
            .success()
    );
    assert_eq!(
        waymark(dir.path(), &["blueprint", "show", "compensation"])
            .status
            .code(),
        Some(2)
    );
}

/// The receipt log against its main variant with the stop-advice pair in any order (two invisible transitions):
/// pm4py's token-based replay gives log fitness 0.919356 and mean trace fitness 0.887299 on the same net
/// (`bench/conformance-vs-pm4py`); every one of the 116 variants replays to the same token counts.
#[test]
fn receipt_fitness_through_invisible_transitions_is_pm4py_s() {
    let dir = receipt_store();
    let blueprint = r#"{"name": "receipt", "stages": [
        {"name": "Receipt", "steps": ["Confirmation of receipt", "T02 Check confirmation of receipt", "T04 Determine confirmation of receipt", "T05 Print and send confirmation of receipt"]},
        {"name": "Stop advice", "order": "any", "steps": ["T06 Determine necessity of stop advice", "T10 Determine necessity to stop indication"]}]}"#;
    assert_fitness(dir.path(), blueprint, (0.919356, 0.887299, 751));
}

/// `waymark query conformance --blueprint BLUEPRINT` gives pm4py's (log fitness, mean trace fitness, fitting
/// traces), to the six decimals pm4py's figures were written with.
fn assert_fitness(data: &Path, blueprint: &str, (log, mean, fitting): (f64, f64, u64)) {
    let output = waymark(
        data,
        &["--json", "query", "conformance", "--blueprint", blueprint],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let fitness = &report["fitness"];
    assert!(
        (fitness["log_fitness"].as_f64().unwrap() - log).abs() < 1e-6,
        "{fitness}"
    );
    assert!((fitness["average_journey_fitness"].as_f64().unwrap() - mean).abs() < 1e-6);
    assert_eq!(fitness["fitting_journeys"], fitting);
}

/// `generate` to a `.gz` file writes a complete gzip stream (trailer included) holding the same lines as the plain
/// file, and `import` reads it back.
#[test]
fn generated_gzip_holds_the_plain_files_lines_and_imports() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("demo.jsonl");
    let gzip = dir.path().join("demo.jsonl.gz");
    for out in [&plain, &gzip] {
        let out = out.to_str().unwrap();
        waymark_ok(
            &dir.path().join("unused"),
            &["--json", "generate", "--customers", "40", "--out", out],
        );
    }
    let mut unzipped = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&gzip).unwrap())
        .read_to_string(&mut unzipped)
        .unwrap();
    let plain_text = std::fs::read_to_string(&plain).unwrap();
    assert!(!plain_text.is_empty());
    assert_eq!(unzipped, plain_text);
    let store = dir.path().join("store");
    let output = waymark_ok(&store, &["--json", "import", gzip.to_str().unwrap()]);
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        report["imports"][0]["report"]["accepted"],
        plain_text.lines().count() as u64
    );
}
