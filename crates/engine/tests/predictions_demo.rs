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
    let test = Engine::open(test_dir.path(), StoreOptions::default()).unwrap();
    test.ingest_demo(
        waymark_engine::demo::DemoConfig {
            customers: 6_000,
            seed: 7,
            business: waymark_engine::demo::Business::Retail,
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
    engine
        .train_model("at-risk", &spec(Target::Stuck), &|_, _, _| {})
        .unwrap();
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
}
