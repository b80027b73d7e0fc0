//! A trained model as it is saved and scored: what it predicts, the vocabulary it was trained in (step and
//! channel names; journeys are read in it when scored, so codes that changed since do not matter), and its
//! fitted parameters. Serialised with serde; the engine keeps it as a file in the data directory.

use crate::boosted::BoostedNextStep;
use crate::ngram::NgramModel;
use crate::outcome::{Contribution, OutcomeModel};
use crate::remaining::RemainingTimeModel;
use crate::sequences::Sequences;
use serde::{Deserialize, Serialize};

/// The fitted parameters, by what they predict.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Predictor {
    /// The next step: an n-gram, and gradient-boosted trees where they measured better.
    NextStep {
        ngram: NgramModel,
        boosted: Option<BoostedNextStep>,
    },
    /// The probability of an outcome (the goal, getting stuck).
    Outcome(OutcomeModel),
    RemainingTime(RemainingTimeModel),
}

/// A trained model.
#[derive(Serialize, Deserialize)]
pub struct TrainedModel {
    pub names: Vec<String>,
    pub channel_names: Vec<String>,
    pub predictor: Predictor,
}

/// A prefix's score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Score {
    /// The likeliest next steps with their probabilities (`(end)`: the journey ends).
    NextStep { next: Vec<(String, f64)> },
    Probability {
        probability: f64,
        /// The features that moved it most (log-odds).
        drivers: Vec<Contribution>,
    },
    RemainingTime {
        days: f64,
        drivers: Vec<Contribution>,
    },
}

impl Score {
    /// The number a list of scores is ranked by: the probability, the days, or the likeliest next step's
    /// probability.
    pub fn value(&self) -> f64 {
        match self {
            Score::NextStep { next } => next.first().map_or(0.0, |(_, p)| *p),
            Score::Probability { probability, .. } => *probability,
            Score::RemainingTime { days, .. } => *days,
        }
    }
}

/// Explanations name this many features.
pub const DRIVERS: usize = 5;

impl TrainedModel {
    /// The `k` features that matter most to the whole model (shares of the trees' total gain); none for an
    /// n-gram.
    pub fn importance(&self, k: usize) -> Vec<Contribution> {
        match &self.predictor {
            Predictor::Outcome(model) => model.importance(k),
            Predictor::RemainingTime(model) => model.importance(k),
            Predictor::NextStep { .. } => Vec::new(),
        }
    }

    /// The number [`Score::value`] would give, without explaining it.
    pub fn value(&self, sequences: &Sequences, journey: usize, length: usize) -> f64 {
        match &self.predictor {
            Predictor::Outcome(model) => model.probability(sequences, journey, length),
            Predictor::RemainingTime(model) => model.days(sequences, journey, length),
            Predictor::NextStep { .. } => self.score(sequences, journey, length).value(),
        }
    }

    /// Scores the first `length` steps of `journey` of `sequences` (read in this model's vocabulary).
    pub fn score(&self, sequences: &Sequences, journey: usize, length: usize) -> Score {
        match &self.predictor {
            Predictor::NextStep { ngram, boosted } => {
                let guesses = match boosted {
                    Some(boosted) => boosted.predict(sequences, journey, length, 3),
                    None => ngram.predict(&sequences.get(journey)[..length], 3),
                };
                Score::NextStep {
                    next: guesses
                        .into_iter()
                        .map(|(symbol, p)| (sequences.name(symbol).to_string(), p))
                        .collect(),
                }
            }
            Predictor::Outcome(model) => Score::Probability {
                probability: model.probability(sequences, journey, length),
                drivers: model.explain(sequences, journey, length, DRIVERS),
            },
            Predictor::RemainingTime(model) => Score::RemainingTime {
                days: model.days(sequences, journey, length),
                drivers: model.explain(sequences, journey, length, DRIVERS),
            },
        }
    }
}
