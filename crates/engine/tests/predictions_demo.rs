//! Predictions on the demo retailer (docs/demo.md): P(goal) measured on the chronological split beats both
//! baselines and is calibrated; a P(stuck) model trained on one population flags, in another, the customers caught
//! in the planted Android login loop at their first failure — before the second and third — at a measured
//! precision and recall; a saved model reopened with the store gives identical scores.

mod common;

use waymark_engine::models::{Evaluation, ModelSpec, Target};
use waymark_engine::{Engine, StoreOptions};

fn spec(target: Target) -> ModelSpec {
    serde_json::from_value(serde_json::json!({ "target": target })).unwrap()
}

#[test]
fn p_goal_beats_the_baselines_and_is_calibrated() {
    let (_dir, engine) = common::demo_engine(6_000);
    let Evaluation::Outcome(evaluation) = engine
        .evaluate_model(&spec(Target::Goal), &|_, _| {})
        .unwrap()
    else {
        panic!("a goal model is an outcome model");
    };
    println!("{evaluation:#?}");
    assert!(evaluation.prefixes > 10_000, "{evaluation:?}");
    assert!(evaluation.model.auc > 0.8, "{evaluation:?}");
    assert!(evaluation.model.auc > evaluation.baseline_current_step.auc + 0.02);
    assert!(evaluation.model.brier < evaluation.baseline_current_step.brier);
    assert!(evaluation.model.brier < evaluation.baseline_base_rate.brier);
    assert!(evaluation.calibration_error < 0.05, "{evaluation:?}");
}

#[test]
fn p_stuck_flags_the_login_loop_at_the_first_failure() {
    let (_train_dir, train) = common::demo_engine(6_000);
    // Stuck here is an error streak: another failure soon after this one.
    let mut stuck = spec(Target::Stuck);
    stuck.stuck_signals = Some(vec![waymark_engine::models::StuckSignal::ErrorStreak]);
    let info = train
        .train_model("login-trouble", &stuck, &|_, _, _| {})
        .unwrap();
    // The same model file, read by a store of other customers (another seed).
    let test_dir = tempfile::tempdir().unwrap();
    let test = std::sync::Arc::new(Engine::open(test_dir.path(), StoreOptions::default()).unwrap());
    test.ingest_demo(
        waymark_engine::demo::DemoConfig {
            customers: 6_000,
            seed: 7,
            business: waymark_engine::demo::Business::Retail,
            ..Default::default()
        },
        &mut || {},
    )
    .unwrap();
    std::fs::create_dir_all(test_dir.path().join("models")).unwrap();
    std::fs::copy(
        train.dir().join("models/login-trouble.json"),
        test_dir.path().join("models/login-trouble.json"),
    )
    .unwrap();
    let model = test.load_model("login-trouble").unwrap();
    assert_eq!(model.info, info);
    let failures = |journeys: &waymark_model::JourneySet, index: usize| -> Vec<usize> {
        let journey = journeys.journey(index);
        (0..journey.len())
            .filter(|at| journeys.step_names[journey.step[*at] as usize] == "Login Failed")
            .collect()
    };
    // Each customer with a failed login, as they stood just after the first failure; in the loop are those who
    // fail again.
    let scored = test
        .score_at(&model, &|journeys, index| {
            failures(journeys, index).first().map(|at| at + 1)
        })
        .unwrap();
    let journeys = test.journeys();
    let looped: std::collections::HashSet<String> = (0..journeys.n_journeys())
        .filter(|index| failures(&journeys, *index).len() >= 2)
        .map(|index| journeys.customer_ids[index].to_string())
        .collect();
    let flagged: Vec<&String> = scored
        .iter()
        .filter(|(_, p)| *p >= 0.4)
        .map(|(customer, _)| customer)
        .collect();
    let hits = flagged.iter().filter(|c| looped.contains(**c)).count();
    let precision = hits as f64 / flagged.len().max(1) as f64;
    let recall = hits as f64 / looped.len().max(1) as f64;
    println!(
        "{} customers failed a login, {} failed again; flagged at the first failure: {}, \
         precision {precision:.3}, recall {recall:.3}",
        scored.len(),
        looped.len(),
        flagged.len()
    );
    let base = looped.len() as f64 / scored.len() as f64;
    assert!(looped.len() > 50, "the loop is planted");
    assert!(recall > 0.8, "recall {recall}");
    // A failure on Android is followed by another 55 % of the time (elsewhere 6 %), at random: flagging exactly
    // the Android failures is the best anyone can do at the first failure, a precision near 0.55.
    assert!(
        precision > 0.5 && precision > 1.2 * base,
        "precision {precision} against the base rate {base}"
    );
}

#[test]
fn a_saved_model_reopened_scores_the_same() {
    let (dir, engine) = common::demo_engine(2_000);
    // A horizon as long as the data, so every customer is in flight and ranked.
    let mut long = spec(Target::Stuck);
    long.horizon = Some("400d".into());
    engine.train_model("at-risk", &long, &|_, _, _| {}).unwrap();
    let before = engine
        .score(&engine.load_model("at-risk").unwrap(), None, 50)
        .unwrap();
    assert_eq!(before.len(), 50);
    assert!(before
        .windows(2)
        .all(|pair| pair[0].score.value() >= pair[1].score.value()));
    engine.close().unwrap();
    drop(engine);
    let reopened = Engine::open(dir.path(), StoreOptions::default()).unwrap();
    let listed = reopened.models().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, "at-risk");
    let after = reopened
        .score(&reopened.load_model("at-risk").unwrap(), None, 50)
        .unwrap();
    assert_eq!(before, after);

    // With the usual one-day horizon only journeys active in the day before the data's end are ranked: the
    // others already have their answer.
    engine_in_flight_only(&reopened);
}

fn engine_in_flight_only(engine: &Engine) {
    engine
        .train_model("next-day", &spec(Target::Stuck), &|_, _, _| {})
        .unwrap();
    let model = engine.load_model("next-day").unwrap();
    let ranked = engine.score(&model, None, 1_000).unwrap();
    let latest = engine
        .score_at(&model, &|journeys, index| {
            Some(journeys.journey(index).len())
        })
        .unwrap()
        .len();
    assert!(ranked.len() < latest, "{} of {latest}", ranked.len());
    let newest = ranked.iter().map(|score| score.last_event.0).max().unwrap();
    assert!(ranked
        .iter()
        .all(|score| score.last_event.0 >= newest - 86_400_000_000));
}

/// A model's scores are a customer property in every analysis: `score:NAME` filters ("customers with P(stuck) >
/// 0.5"), `score-band:NAME` breaks a report down by tenths; the two sides of a threshold partition the scored
/// customers, and a column naming no model is refused with the names there are.
#[test]
fn scores_filter_and_break_down_every_analysis() {
    let (_dir, engine) = common::demo_engine(2_000);
    engine
        .train_model("at-risk", &spec(Target::Stuck), &|_, _, _| {})
        .unwrap();
    let customers = |filter: serde_json::Value| {
        engine
            .analyse_json("overview", serde_json::json!({ "filter": filter }), None)
            .unwrap()
            .json["customers"]
            .as_u64()
            .unwrap()
    };
    let all = customers(serde_json::json!({}));
    let condition = |op: &str| serde_json::json!({"where": [{"property": "score:at-risk", "op": op, "value": 0.5}]});
    let (above, below) = (customers(condition(">")), customers(condition("<=")));
    assert!(above > 0 && below > 0, "{above} above, {below} below");
    let scored = engine
        .score_at(
            &engine.load_model("at-risk").unwrap(),
            &|journeys, index| Some(journeys.journey(index).len()),
        )
        .unwrap();
    assert_eq!(above + below, scored.len() as u64);
    assert!(above + below <= all);
    let expected_above = scored
        .iter()
        .filter(|(_, value)| (value * 1000.0).round() / 1000.0 > 0.5)
        .count();
    assert_eq!(above, expected_above as u64);

    let funnel = engine
        .analyse_json(
            "funnel",
            serde_json::json!({"steps": ["Added to Cart", "Order Completed"], "window": "7d",
                "breakdown": {"property": "score-band:at-risk", "top": 10}}),
            None,
        )
        .unwrap()
        .json;
    let text = funnel.to_string();
    assert!(
        text.contains("0.0–0.1") || text.contains("0.1–0.2"),
        "{text}"
    );

    let unknown = engine
        .analyse_json(
            "overview",
            serde_json::json!({"filter": {"where": [{"property": "score:nobody", "op": ">", "value": 0.5}]}}),
            None,
        )
        .unwrap_err()
        .to_string();
    assert!(unknown.contains("score:at-risk"), "{unknown}");
}
