//! Predictions from a journey prefix — what an in-flight journey will do next — trained and evaluated on journeys.
//! Pure like `analytics`: journeys in, models, scores and evaluations out; the engine trains, stores and serves
//! them, so whatever a model needs stays out of the other crates.
//!
//! A journey is read as a sequence of symbols ([`Sequences`]): its steps (identity calls left out), then one
//! [`Sequences::end`] symbol, so that "the journey ends here" is predicted like any step. Evaluation follows the
//! process-mining literature's protocol ([`evaluate`]): a chronological split, every prefix of each test journey
//! predicting the symbol that follows it.

pub mod boosted;
pub mod evaluate;
pub mod ngram;
pub mod sequences;

pub use evaluate::{
    evaluate_next_step, evaluate_next_step_with_progress, NextStepEvaluation, NextStepScore,
};
pub use ngram::NgramModel;
pub use sequences::{chronological_split, Sequences};
