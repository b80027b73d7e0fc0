//! Predictions from a journey prefix — what an in-flight journey will do next — trained and evaluated on journeys.
//! Pure like `analytics`: journeys in, models, scores and evaluations out; the engine trains, stores and serves
//! them, so whatever a model needs stays out of the other crates.
//!
//! A journey is read as a sequence of symbols ([`Sequences`]): its steps (identity calls left out), then one
//! [`Sequences::end`] symbol, so that "the journey ends here" is predicted like any step. What a model sees of a
//! prefix is in [`features`]. Targets: the next step ([`ngram`], [`boosted`]), the probability of an outcome within
//! a horizon ([`outcome`]: the goal, getting stuck) and the remaining time ([`remaining`]). Evaluation follows the
//! process-mining literature's protocol ([`evaluate`]): a chronological split, every prefix of each test journey
//! scored.

pub mod boosted;
pub mod evaluate;
pub mod features;
pub mod model;
pub mod ngram;
pub mod outcome;
pub mod remaining;
pub mod sequences;

pub use evaluate::{
    evaluate_next_step, evaluate_next_step_on, evaluate_next_step_with_progress,
    NextStepEvaluation, NextStepScore,
};
pub use model::{Predictor, Score, TrainedModel};
pub use ngram::NgramModel;
pub use outcome::{evaluate_outcome, BinaryTarget, OutcomeEvaluation, OutcomeModel, Outcomes};
pub use remaining::{evaluate_remaining_time, RemainingTimeEvaluation, RemainingTimeModel};
pub use sequences::{chronological_split, Sequences};
