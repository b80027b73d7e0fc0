//! `waymark model evaluate | train | list | score`: predictions from a journey prefix, measured, saved in the data
//! directory and scored for customers.

use crate::{print_json, progress_bar};
use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use std::time::Instant;
use waymark_engine::models::{CustomerScore, Evaluation, ModelInfo, ModelSpec, Phase, Target};
use waymark_engine::predict::{
    NextStepEvaluation, OutcomeEvaluation, RemainingTimeEvaluation, Score,
};
use waymark_engine::Engine;

#[derive(Subcommand)]
pub enum ModelCommand {
    /// Measure a prediction as the process-mining literature does, without saving it: journeys ordered by their
    /// first event, the earliest two thirds trained on, every prefix of each later journey scored, beside
    /// baselines measured in the same run.
    /// Example: `waymark model evaluate --target goal --goal "Order Completed" --horizon 7d`
    Evaluate {
        #[command(flatten)]
        spec: SpecArgs,
        /// Test on the journeys of the customers listed in FILE (one id per line) and train on every other
        /// journey, instead of the chronological split: to measure on a published benchmark's folds (next step
        /// only).
        #[arg(long, value_name = "FILE")]
        test_journeys: Option<std::path::PathBuf>,
    },
    /// Train a model, evaluate it, fit it on every journey and save it in the data directory as NAME.
    /// Example: `waymark model train at-risk --target stuck`
    Train {
        /// The model's name (letters, digits, '-' and '_'); a model of the same name is replaced.
        name: String,
        #[command(flatten)]
        spec: SpecArgs,
    },
    /// The saved models: what they predict, when and on what they were trained, how they measured.
    List,
    /// Score customers with a saved model: one customer, or every customer in flight ranked by the score.
    /// Example: `waymark model score at-risk --top 20`
    Score {
        name: String,
        /// A customer's identifier (userId, anonymousId, or user:/anon: key); default every customer in flight.
        customer: Option<String>,
        /// Customers listed.
        #[arg(long, default_value_t = 20)]
        top: usize,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum TargetArg {
    /// The next step (top three, the journey's end among them).
    Next,
    /// The probability of reaching the goal within the horizon.
    Goal,
    /// The probability of getting stuck (a loop, an error streak, a dead end, a slow step) within the horizon.
    Stuck,
    /// The time until the journey's last event.
    Remaining,
}

#[derive(Args)]
pub struct SpecArgs {
    /// What to predict.
    #[arg(long, value_enum, default_value = "next")]
    target: TargetArg,
    /// Goal steps (names or `*` patterns; repeatable). Default: the usual goal names the data has.
    #[arg(long = "goal")]
    goals: Vec<String>,
    /// Only an outcome within this long after the prefix counts (default 7d for the goal, 1d for stuck).
    #[arg(long)]
    horizon: Option<String>,
    /// The n-gram's order for the next step (1 to 8). Default: chosen on the latest fifth of the training
    /// journeys.
    #[arg(long)]
    order: Option<usize>,
    /// For the next step, also train gradient-boosted trees over the prefix's steps, counts and times.
    #[arg(long)]
    boosted: bool,
}

impl SpecArgs {
    fn spec(&self) -> ModelSpec {
        ModelSpec {
            target: match self.target {
                TargetArg::Next => Target::NextStep,
                TargetArg::Goal => Target::Goal,
                TargetArg::Stuck => Target::Stuck,
                TargetArg::Remaining => Target::RemainingTime,
            },
            goals: self.goals.clone(),
            horizon: self.horizon.clone(),
            stuck_signals: None,
            friction: None,
            order: self.order,
            boosted: self.boosted,
            features_from: None,
            filter: Default::default(),
        }
    }
}

pub fn run(engine: &Engine, command: ModelCommand, json: bool) -> Result<()> {
    match command {
        ModelCommand::Evaluate {
            spec,
            test_journeys,
        } => {
            let spec = spec.spec();
            let started = Instant::now();
            let bar = training_bar(json, &spec);
            let progress = |done: usize, total: usize| {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
            };
            let evaluation = match test_journeys {
                Some(path) => {
                    let text = std::fs::read_to_string(&path)
                        .with_context(|| format!("cannot read {}", path.display()))?;
                    let ids: Vec<String> = text
                        .lines()
                        .map(str::trim)
                        .filter(|line| !line.is_empty())
                        .map(String::from)
                        .collect();
                    Evaluation::NextStep(
                        engine
                            .evaluate_next_step_on(&spec, &ids, &progress)
                            .with_context(|| format!("{}", path.display()))?,
                    )
                }
                None => engine.evaluate_model(&spec, &progress)?,
            };
            bar.finish_and_clear();
            if json {
                print_json(&serde_json::to_value(&evaluation)?);
            } else {
                print!("{}", evaluation_text(spec.target, &evaluation));
                println!("\n{:.2} s", started.elapsed().as_secs_f64());
            }
        }
        ModelCommand::Train { name, spec } => {
            let spec = spec.spec();
            let bar = training_bar(json, &spec);
            let info = engine.train_model(&name, &spec, &|phase, done, total| {
                if phase == Phase::Fitting {
                    bar.set_message("saving");
                }
                bar.set_length(total as u64);
                bar.set_position(done as u64);
            })?;
            bar.finish_and_clear();
            if json {
                print_json(&serde_json::to_value(&info)?);
            } else {
                print!("{}", evaluation_text(spec.target, &info.evaluation));
                println!(
                    "\nSaved model {:?} ({}, fitted on {} journeys, {} events from {} to {}) in {:.1} s.",
                    info.name,
                    info.spec.target.name(),
                    info.window.journeys,
                    info.window.events,
                    info.window.from,
                    info.window.to,
                    info.training_seconds
                );
            }
        }
        ModelCommand::List => {
            let models = engine.models()?;
            if json {
                print_json(&serde_json::to_value(&models)?);
            } else if models.is_empty() {
                println!("No models yet; train one with `waymark model train NAME --target goal`.");
            } else {
                print!("{}", list_text(&models));
            }
        }
        ModelCommand::Score {
            name,
            customer,
            top,
        } => {
            let model = engine.load_model(&name)?;
            let scores = engine.score(&model, customer.as_deref(), top)?;
            if json {
                print_json(&serde_json::to_value(&scores)?);
            } else {
                print!("{}", scores_text(&model.info, &scores, customer.is_some()));
            }
        }
    }
    Ok(())
}

/// The models a new store starts with, when it has none: the chance of reaching the goal and of getting stuck,
/// each at its documented defaults (the data's usual goal step, 7 days; friction's signals, 1 day).
pub const STARTER_MODELS: &[(&str, Target)] =
    &[("reach-goal", Target::Goal), ("get-stuck", Target::Stuck)];

/// Trains the starter models if the store has no model yet, one line per model (with a progress bar unless
/// `quiet`); returns what was saved. A model that cannot be trained (no goal step in the data, say) is reported
/// and skipped.
pub fn train_starter_models(engine: &Engine, quiet: bool) -> Result<Vec<ModelInfo>> {
    if !engine.models()?.is_empty() {
        return Ok(Vec::new());
    }
    let mut saved = Vec::new();
    for (name, target) in STARTER_MODELS {
        let spec: ModelSpec = serde_json::from_value(serde_json::json!({ "target": target }))?;
        let bar = progress_bar(quiet, 0, "{msg} {bar:40} {pos}/{len} rounds ({elapsed})");
        bar.set_message(format!("training {name} ({})", target.name()));
        let trained = engine.train_model(name, &spec, &|_, done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        });
        bar.finish_and_clear();
        match trained {
            Ok(info) => {
                if !quiet {
                    println!(
                        "Model {name} ({}) trained in {:.1} s: {}",
                        target.name(),
                        info.training_seconds,
                        headline(&info.evaluation)
                    );
                }
                saved.push(info);
            }
            Err(error) => eprintln!("warning: model {name} was not trained: {error}"),
        }
    }
    Ok(saved)
}

fn training_bar(json: bool, spec: &ModelSpec) -> indicatif::ProgressBar {
    let bar = progress_bar(
        json || !(spec.target == Target::NextStep && spec.boosted),
        0,
        "{msg} {bar:40} {pos}/{len} boosters ({elapsed}, {eta})",
    );
    bar.set_message("training gradient-boosted trees");
    bar
}

/// The one number a model is known by.
fn headline(evaluation: &Evaluation) -> String {
    match evaluation {
        Evaluation::NextStep(e) => {
            let best = e.boosted.map_or(e.model.accuracy_at_1, |b| {
                b.accuracy_at_1.max(e.model.accuracy_at_1)
            });
            format!(
                "accuracy@1 {best:.3} (baseline {:.3})",
                e.baseline.accuracy_at_1
            )
        }
        Evaluation::Outcome(e) => format!(
            "AUC {:.3}, Brier {:.3} (base rate {:.3})",
            e.model.auc, e.model.brier, e.baseline_base_rate.brier
        ),
        Evaluation::RemainingTime(e) => format!(
            "MAE {:.2} days (median {:.2})",
            e.mae_days, e.baseline_median_mae_days
        ),
    }
}

fn list_text(models: &[ModelInfo]) -> String {
    let rows: Vec<[String; 5]> = models
        .iter()
        .map(|m| {
            [
                m.name.clone(),
                m.spec.target.name().to_string(),
                m.trained_at.to_string(),
                format!("{} journeys to {}", m.window.journeys, m.window.to),
                headline(&m.evaluation),
            ]
        })
        .collect();
    let header = ["model", "predicts", "trained", "on", "measured"].map(String::from);
    let mut widths = [0usize; 5];
    for row in rows.iter().chain(std::iter::once(&header)) {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:width$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

fn scores_text(info: &ModelInfo, scores: &[CustomerScore], one: bool) -> String {
    if scores.is_empty() {
        return if one {
            "That customer has no journey steps this model can score (or has already reached the goal).\n".into()
        } else {
            "No customer in flight to score.\n".into()
        };
    }
    let mut out = if one {
        String::new()
    } else {
        format!(
            "{} for the customers in flight, highest first (model {:?}, trained {}):\n\n",
            info.spec.target.name(),
            info.name,
            info.trained_at
        )
    };
    for score in scores {
        let value = match &score.score {
            Score::NextStep { next } => next
                .iter()
                .map(|(step, p)| format!("{step} {:.0}%", p * 100.0))
                .collect::<Vec<_>>()
                .join(", "),
            Score::Probability { probability, .. } => format!("{:.0}%", probability * 100.0),
            Score::RemainingTime { days, .. } => format!("{days:.1} days"),
        };
        out.push_str(&format!(
            "{}  {value}  after {} steps, last {:?} at {}\n",
            score.customer_id, score.steps, score.last_step, score.last_event
        ));
        let drivers = match &score.score {
            Score::Probability { drivers, .. } | Score::RemainingTime { drivers, .. } => drivers,
            Score::NextStep { .. } => continue,
        };
        for driver in drivers {
            out.push_str(&format!(
                "    {} {}\n",
                if driver.effect > 0.0 {
                    "raises:"
                } else {
                    "lowers:"
                },
                driver.feature
            ));
        }
    }
    out
}

/// A model's evaluation as people read it.
pub fn evaluation_text(target: Target, evaluation: &Evaluation) -> String {
    match evaluation {
        Evaluation::NextStep(e) => next_step_text(e),
        Evaluation::Outcome(e) => outcome_text(target, e),
        Evaluation::RemainingTime(e) => remaining_text(e),
    }
}

fn split_line(train: usize, test: usize) -> String {
    format!(
        "chronological split: {train} journeys trained on (the earliest two thirds), {test} tested"
    )
}

fn next_step_text(evaluation: &NextStepEvaluation) -> String {
    let mut out = format!(
        "Next-step prediction, {}, {} test prefixes (the journey's end counted as a step).\n\n",
        split_line(evaluation.train_journeys, evaluation.test_journeys),
        evaluation.prefixes
    );
    let chosen = if evaluation.orders_tried.is_empty() {
        String::new()
    } else {
        " (chosen on the latest fifth of the training journeys)".to_string()
    };
    let rows = [
        (
            format!("n-gram, order {}{chosen}", evaluation.order),
            evaluation.model,
        ),
        (
            "baseline: most frequent next step after the current one".to_string(),
            evaluation.baseline,
        ),
    ]
    .into_iter()
    .chain(evaluation.boosted.map(|score| {
        (
            "gradient-boosted trees (steps, counts, times, n-gram)".to_string(),
            score,
        )
    }))
    .collect::<Vec<_>>();
    let width = rows.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
    out.push_str(&format!(
        "{:width$}  accuracy@1  accuracy@3  @1 from step 2\n",
        "model"
    ));
    for (name, score) in rows {
        out.push_str(&format!(
            "{name:width$}  {:>10.3}  {:>10.3}  {:>14.3}\n",
            score.accuracy_at_1, score.accuracy_at_3, score.accuracy_at_1_from_second
        ));
    }
    if !evaluation.orders_tried.is_empty() {
        let tried: Vec<String> = evaluation
            .orders_tried
            .iter()
            .map(|(order, accuracy)| format!("{order}: {accuracy:.3}"))
            .collect();
        out.push_str(&format!(
            "\norders tried (validation accuracy@1): {}\n",
            tried.join(", ")
        ));
    }
    out
}

fn outcome_text(target: Target, e: &OutcomeEvaluation) -> String {
    let mut out = format!(
        "{}, {}: {} test prefixes scored ({} with the outcome), {} left out as not yet known (their horizon \
         passes the data's end).\n\n",
        target.name(),
        split_line(e.train_journeys, e.test_journeys),
        e.prefixes,
        e.positives,
        e.censored
    );
    let rows = [
        ("gradient-boosted trees", e.model),
        ("baseline: the base rate", e.baseline_base_rate),
        (
            "baseline: the rate after the current step",
            e.baseline_current_step,
        ),
    ];
    let width = rows.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
    out.push_str(&format!("{:width$}    AUC  Brier  log-loss\n", "model"));
    for (name, score) in rows {
        out.push_str(&format!(
            "{name:width$}  {:.3}  {:.3}  {:>8.3}\n",
            score.auc, score.brier, score.log_loss
        ));
    }
    out.push_str(&format!(
        "\nCalibration (expected calibration error {:.3}; base rate {:.1}%):\n  predicted   prefixes  mean predicted  observed\n",
        e.calibration_error,
        e.base_rate * 100.0
    ));
    for bin in &e.calibration {
        out.push_str(&format!(
            "  {:>3.0}–{:>3.0}%  {:>9}  {:>13.1}%  {:>7.1}%\n",
            bin.from * 100.0,
            bin.to * 100.0,
            bin.prefixes,
            bin.mean_predicted * 100.0,
            bin.observed * 100.0
        ));
    }
    out
}

fn remaining_text(e: &RemainingTimeEvaluation) -> String {
    let rows = [
        ("gradient-boosted trees", e.mae_days),
        (
            "baseline: the median remaining time",
            e.baseline_median_mae_days,
        ),
        (
            "baseline: the median after the current step",
            e.baseline_current_step_mae_days,
        ),
    ];
    let width = rows.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
    let mut out = format!(
        "Remaining time (to the journey's last event), {}: {} test prefixes.\n\n{:width$}  MAE (days)\n",
        split_line(e.train_journeys, e.test_journeys),
        e.prefixes,
        "model"
    );
    for (name, mae) in rows {
        out.push_str(&format!("{name:width$}  {mae:>10.2}\n"));
    }
    out
}
