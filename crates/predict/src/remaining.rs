//! The remaining time of a journey from a prefix — how long until its last event — by gradient-boosted trees
//! (squared loss on the logarithm of the remaining seconds, so that a ten-day wait and a ten-minute one weigh
//! alike and a prediction is a typical time, not a mean dragged by a few very long journeys), evaluated as the
//! literature does: the mean absolute error in days over every prefix of the test journeys, beside two baselines
//! from the same training prefixes — the median remaining time of all prefixes, and of those ending at the same
//! step.

use crate::boosted::{training_prefixes, BINS, MAX_ROWS};
use crate::features::{column_major, FeatureLayout};
use crate::outcome::{top_contributions, Contribution};
use crate::sequences::{chronological_split, Sequences};
use forust_ml::gradientbooster::ContributionsMethod;
use forust_ml::objective::ObjectiveType;
use forust_ml::{GradientBooster, Matrix};
use serde::{Deserialize, Serialize};

pub const ROUNDS: usize = 100;
pub const LEARNING_RATE: f32 = 0.1;
pub const DEPTH: usize = 5;

const US_PER_DAY: f64 = 86_400_000_000.0;

/// The remaining time after the first `length` steps of `journey`, in days.
pub fn remaining_days(sequences: &Sequences, journey: usize, length: usize) -> f64 {
    let times = sequences.times_of(journey);
    (times[times.len() - 1] - times[length - 1]).max(0) as f64 / US_PER_DAY
}

/// One evaluation on the chronological split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RemainingTimeEvaluation {
    pub train_journeys: usize,
    pub test_journeys: usize,
    pub train_prefixes: u64,
    /// Test prefixes scored.
    pub prefixes: u64,
    /// Mean absolute error in days.
    pub mae_days: f64,
    /// Every prefix given the median remaining time of the training prefixes.
    pub baseline_median_mae_days: f64,
    /// Every prefix given the median remaining time of training prefixes ending at the same step.
    pub baseline_current_step_mae_days: f64,
}

/// The fitted model.
#[derive(Serialize, Deserialize)]
pub struct RemainingTimeModel {
    layout: FeatureLayout,
    #[serde(with = "crate::boosted::booster_json")]
    booster: Vec<GradientBooster>,
    /// The training prefixes' median, in days (what a log too small to learn from is given).
    pub median_days: f64,
}

/// Days ↔ the booster's scale: the logarithm of one plus the seconds.
fn to_scale(days: f64) -> f64 {
    (days * 86_400.0).ln_1p()
}

fn from_scale(value: f64) -> f64 {
    value.exp_m1().max(0.0) / 86_400.0
}

fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let middle = values.len() / 2;
    *values.select_nth_unstable_by(middle, f64::total_cmp).1
}

impl RemainingTimeModel {
    /// Fits on every prefix of the `train` journeys.
    pub fn train(sequences: &Sequences, train: &[usize]) -> (RemainingTimeModel, u64) {
        let layout = FeatureLayout::fit(sequences, train);
        let width = layout.width();
        let prefixes = training_prefixes(sequences, train, MAX_ROWS, &|_, _| true);
        let mut days: Vec<f64> = prefixes
            .iter()
            .map(|(journey, length)| remaining_days(sequences, *journey, *length))
            .collect();
        let y: Vec<f64> = days.iter().map(|days| to_scale(*days)).collect();
        let median_days = median(&mut days);
        let mut boosters = Vec::new();
        if prefixes.len() >= 2 {
            let mut rows = Vec::with_capacity(prefixes.len() * width);
            for (journey, length) in &prefixes {
                layout.row(sequences, *journey, *length, &mut rows);
            }
            let columns = column_major(&rows, width);
            let mut booster = GradientBooster::default()
                .set_objective_type(ObjectiveType::SquaredLoss)
                .set_iterations(ROUNDS)
                .set_learning_rate(LEARNING_RATE)
                .set_max_depth(DEPTH)
                .set_nbins(BINS)
                .set_initialize_base_score(true);
            booster
                .fit_unweighted(&Matrix::new(&columns, prefixes.len(), width), &y, None)
                .expect("finite features");
            boosters.push(booster);
        }
        (
            RemainingTimeModel {
                layout,
                booster: boosters,
                median_days,
            },
            prefixes.len() as u64,
        )
    }

    /// The predicted remaining days after the first `length` steps of `journey`.
    pub fn days(&self, sequences: &Sequences, journey: usize, length: usize) -> f64 {
        let Some(booster) = self.booster.first() else {
            return self.median_days;
        };
        let mut row = Vec::with_capacity(self.layout.width());
        self.layout.row(sequences, journey, length, &mut row);
        from_scale(booster.predict(&Matrix::new(&row, 1, self.layout.width()), false)[0])
    }

    /// The features that matter most over the whole model (total gain, as shares), largest first.
    pub fn importance(&self, k: usize) -> Vec<Contribution> {
        self.booster.first().map_or_else(Vec::new, |booster| {
            crate::outcome::importance(booster, &self.layout.names(), k)
        })
    }

    /// The `k` features that moved this prediction most (Shapley values on the log-seconds scale).
    pub fn explain(
        &self,
        sequences: &Sequences,
        journey: usize,
        length: usize,
        k: usize,
    ) -> Vec<Contribution> {
        let Some(booster) = self.booster.first() else {
            return Vec::new();
        };
        let width = self.layout.width();
        let mut row = Vec::with_capacity(width);
        self.layout.row(sequences, journey, length, &mut row);
        let contributions = booster.predict_contributions(
            &Matrix::new(&row, 1, width),
            ContributionsMethod::Shapley,
            false,
        );
        top_contributions(&self.layout.names(), &contributions[..width], k)
    }
}

/// Trains on the earliest two thirds and scores every prefix of the rest.
pub fn evaluate_remaining_time(
    sequences: &Sequences,
) -> (RemainingTimeEvaluation, RemainingTimeModel) {
    let (train, test) = chronological_split(sequences, crate::evaluate::TRAIN_SHARE);
    let (model, train_prefixes) = RemainingTimeModel::train(sequences, &train);
    let mut per_step: Vec<Vec<f64>> = vec![Vec::new(); sequences.n_symbols()];
    for journey in &train {
        for length in 1..=sequences.get(*journey).len() {
            per_step[sequences.get(*journey)[length - 1] as usize]
                .push(remaining_days(sequences, *journey, length));
        }
    }
    let step_median: Vec<Option<f64>> = per_step
        .iter_mut()
        .map(|days| (!days.is_empty()).then(|| median(days)))
        .collect();
    let (mut model_error, mut median_error, mut step_error, mut prefixes) = (0.0, 0.0, 0.0, 0u64);
    for journey in &test {
        for length in 1..=sequences.get(*journey).len() {
            let truth = remaining_days(sequences, *journey, length);
            model_error += (model.days(sequences, *journey, length) - truth).abs();
            median_error += (model.median_days - truth).abs();
            let step = sequences.get(*journey)[length - 1] as usize;
            step_error += (step_median[step].unwrap_or(model.median_days) - truth).abs();
            prefixes += 1;
        }
    }
    let mean = |sum: f64| {
        if prefixes == 0 {
            0.0
        } else {
            sum / prefixes as f64
        }
    };
    (
        RemainingTimeEvaluation {
            train_journeys: train.len(),
            test_journeys: test.len(),
            train_prefixes,
            prefixes,
            mae_days: mean(model_error),
            baseline_median_mae_days: mean(median_error),
            baseline_current_step_mae_days: mean(step_error),
        },
        model,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_step_reached_tells_how_long_is_left() {
        // Journeys a → b → c: b is always followed by a three-day wait, a by a minute.
        let mut sequences = Sequences {
            names: vec!["a".into(), "b".into(), "c".into()],
            channel_names: vec!["web".into()],
            ..Sequences::default()
        };
        let day = 86_400_000_000i64;
        for journey in 0..300i64 {
            let start = journey * 10 * day;
            sequences.push(
                start,
                [
                    (0, start, 0),
                    (1, start + 60_000_000, 0),
                    (2, start + 60_000_000 + 3 * day, 0),
                ],
            );
        }
        let (evaluation, model) = evaluate_remaining_time(&sequences);
        assert_eq!(evaluation.prefixes, 300);
        assert!(evaluation.mae_days < 0.1, "{evaluation:?}");
        assert!(evaluation.mae_days < evaluation.baseline_median_mae_days);
        assert!((model.days(&sequences, 0, 2) - 3.0).abs() < 0.1);
    }
}
