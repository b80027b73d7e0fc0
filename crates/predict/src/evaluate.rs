//! Next-step evaluation as the process-mining literature does it (Tax et al. 2017 and the benchmarks after it):
//! journeys ordered by their first event's time, the earliest two thirds to train on and the rest to test on; every
//! prefix of length ≥ 1 of each test journey predicts the symbol that follows it, the journey's end counted as one
//! more symbol, so a journey of `n` steps gives `n` test prefixes. The n-gram model is measured beside the baseline
//! (the most frequent next step after the current one) in the same run.

use crate::ngram::{NgramModel, MAX_ORDER};
use crate::sequences::{chronological_split, Sequences};
use serde::{Deserialize, Serialize};

/// The share of journeys (the earliest) trained on.
pub const TRAIN_SHARE: f64 = 2.0 / 3.0;

/// Orders tried when none is given, each measured on the latest fifth of the training journeys.
pub const ORDERS_TRIED: std::ops::RangeInclusive<usize> = 1..=MAX_ORDER;

/// How often the right next symbol was the first guess, and among the first three.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct NextStepScore {
    pub accuracy_at_1: f64,
    pub accuracy_at_3: f64,
    /// Accuracy@1 on the prefixes of length ≥ 2 only: Tax et al. (2017) and the studies that reuse their code
    /// do not predict from a journey's first step alone.
    #[serde(default)]
    pub accuracy_at_1_from_second: f64,
}

/// One evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct NextStepEvaluation {
    pub train_journeys: usize,
    pub test_journeys: usize,
    /// Test prefixes scored (the test journeys' steps).
    pub prefixes: u64,
    /// The order used, and, when it was chosen, each order tried with its accuracy on the validation journeys.
    pub order: usize,
    pub orders_tried: Vec<(usize, f64)>,
    pub model: NextStepScore,
    /// The most frequent next step after the current step.
    pub baseline: NextStepScore,
    /// Gradient-boosted trees over the prefix's steps, counts and times, when asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boosted: Option<NextStepScore>,
}

/// A prefix's guesses: symbols with their probabilities, likeliest first.
type Guesses = Vec<(u32, f64)>;

/// Scores `predict` on every prefix of the `test` journeys.
fn score(
    sequences: &Sequences,
    test: &[usize],
    predict: &dyn Fn(&[u32]) -> Guesses,
) -> (NextStepScore, u64) {
    score_at(sequences, test, &|journey, length| {
        predict(&sequences.get(journey)[..length])
    })
}

/// Scores `predict(journey, prefix length)` on every prefix of the `test` journeys.
fn score_at(
    sequences: &Sequences,
    test: &[usize],
    predict: &dyn Fn(usize, usize) -> Guesses,
) -> (NextStepScore, u64) {
    let end = sequences.end();
    let (mut prefixes, mut first, mut top3) = (0u64, 0u64, 0u64);
    let (mut later, mut later_first) = (0u64, 0u64);
    for journey in test {
        let symbols = sequences.get(*journey);
        for length in 1..=symbols.len() {
            let truth = symbols.get(length).copied().unwrap_or(end);
            let guesses = predict(*journey, length);
            let hit = guesses.first().is_some_and(|(symbol, _)| *symbol == truth);
            prefixes += 1;
            first += u64::from(hit);
            top3 += u64::from(guesses.iter().take(3).any(|(symbol, _)| *symbol == truth));
            if length >= 2 {
                later += 1;
                later_first += u64::from(hit);
            }
        }
    }
    let share = |hits: u64, of: u64| {
        if of == 0 {
            0.0
        } else {
            hits as f64 / of as f64
        }
    };
    (
        NextStepScore {
            accuracy_at_1: share(first, prefixes),
            accuracy_at_3: share(top3, prefixes),
            accuracy_at_1_from_second: share(later_first, later),
        },
        prefixes,
    )
}

/// Evaluates next-step prediction on `sequences` with the chronological split; `order` `None` chooses it on the
/// latest fifth of the training journeys (chronologically), so the test journeys never choose it.
pub fn evaluate_next_step(
    sequences: &Sequences,
    order: Option<usize>,
    boosted: bool,
) -> NextStepEvaluation {
    evaluate_next_step_with_progress(sequences, order, boosted, &|_, _| {})
}

/// [`evaluate_next_step`], calling `progress(boosters fitted, boosters)` while the trees train.
pub fn evaluate_next_step_with_progress(
    sequences: &Sequences,
    order: Option<usize>,
    boosted: bool,
    progress: &dyn Fn(usize, usize),
) -> NextStepEvaluation {
    let (train, test) = chronological_split(sequences, TRAIN_SHARE);
    evaluate_next_step_on(sequences, train, &test, order, boosted, progress)
}

/// [`evaluate_next_step_with_progress`] on a split given by the caller (a published benchmark's folds): the
/// models learn from `train`, ordered here by first event so that the order is still chosen on the latest fifth,
/// and are scored on every prefix of the `test` journeys.
pub fn evaluate_next_step_on(
    sequences: &Sequences,
    mut train: Vec<usize>,
    test: &[usize],
    order: Option<usize>,
    boosted: bool,
    progress: &dyn Fn(usize, usize),
) -> NextStepEvaluation {
    train.retain(|journey| !sequences.get(*journey).is_empty());
    train.sort_by_key(|journey| (sequences.first_ts[*journey], *journey));
    let test: Vec<usize> = test
        .iter()
        .copied()
        .filter(|journey| !sequences.get(*journey).is_empty())
        .collect();
    let mut orders_tried = Vec::new();
    let order = match order {
        Some(order) => order.clamp(1, MAX_ORDER),
        None => {
            let cut = train.len() * 4 / 5;
            let (fit, validate) = train.split_at(cut);
            let mut best = (1, f64::NEG_INFINITY);
            for order in ORDERS_TRIED {
                let model = NgramModel::train(sequences, fit, order);
                let (accuracy, _) = score(sequences, validate, &|prefix| model.predict(prefix, 1));
                orders_tried.push((order, accuracy.accuracy_at_1));
                if accuracy.accuracy_at_1 > best.1 {
                    best = (order, accuracy.accuracy_at_1);
                }
            }
            best.0
        }
    };
    let model = NgramModel::train(sequences, &train, order);
    let (model_score, prefixes) = score(sequences, &test, &|prefix| model.predict(prefix, 3));
    let baseline = NgramModel::train(sequences, &train, 1);
    let (baseline_score, _) = score(sequences, &test, &|prefix| {
        baseline.most_frequent_next(prefix, 3)
    });
    let boosted = boosted.then(|| {
        let model = crate::boosted::BoostedNextStep::train_with_progress(
            sequences, &train, order, progress,
        );
        score_at(sequences, &test, &|journey, length| {
            model.predict(sequences, journey, length, 3)
        })
        .0
    });
    NextStepEvaluation {
        boosted,
        train_journeys: train.len(),
        test_journeys: test.len(),
        prefixes,
        order,
        orders_tried,
        model: model_score,
        baseline: baseline_score,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_test_step_is_one_prefix_and_a_predictable_log_is_learnt() {
        // Two processes that share their middle: x m y and z m w; only the step before m tells what follows it.
        let names = ["x", "m", "y", "z", "w"].map(String::from).to_vec();
        let lists: Vec<(i64, Vec<u32>)> = (0..90)
            .map(|index| {
                let path = if index % 3 == 0 {
                    vec![0, 1, 2]
                } else {
                    vec![3, 1, 4]
                };
                (index as i64, path)
            })
            .collect();
        let sequences = Sequences::from_lists(names, &lists);
        let evaluation = evaluate_next_step(&sequences, None, false);
        assert_eq!(
            (evaluation.train_journeys, evaluation.test_journeys),
            (60, 30)
        );
        assert_eq!(evaluation.prefixes, 90);
        // The first step is given (prefixes start at length 1); with the step before m, everything after is known.
        assert_eq!(
            evaluation.order, 2,
            "the shortest order that knows: {evaluation:?}"
        );
        assert_eq!(evaluation.orders_tried[0], (1, 8.0 / 9.0));
        assert_eq!(evaluation.model.accuracy_at_1, 1.0);
        // The baseline cannot tell what follows m: it always says w, wrong once in each x journey (10 of 90).
        let baseline = 80.0 / 90.0;
        assert!(
            (evaluation.baseline.accuracy_at_1 - baseline).abs() < 1e-12,
            "{evaluation:?}"
        );
        assert_eq!(evaluation.model.accuracy_at_3, 1.0);
    }
}
