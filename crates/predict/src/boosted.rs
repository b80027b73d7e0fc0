//! Next-step prediction by gradient-boosted trees (`forust-ml`): one booster per next symbol that is common enough
//! to learn (one-vs-rest), over the prefix's [features](crate::features) — what an n-gram cannot see: how long
//! since the previous event and since the start, the time of day and week, how often each step has happened so
//! far, the channels — beside the current step and the one before. The likeliest next symbols are those whose
//! boosters score highest.
//!
//! Each booster learns from every prefix whose next symbol is its own and from a sample of the others (at most
//! [`NEGATIVES_PER_POSITIVE`] per positive, chosen by a stable hash), its log-odds corrected by the sampling rate
//! (the prior correction of case-control sampling), so that rare next steps cost little to learn and the
//! boosters' scores stay comparable.
//!
//! The boosters also read an order-k n-gram (stacking): each booster's row carries the n-gram's probability of its
//! own symbol, the n-gram's top probability and how well the n-gram knew the context (the longest context seen and
//! how often). On the training prefixes these come from n-grams fitted on the other folds of the training
//! journeys ([`STACK_FOLDS`]), so the trees learn how far to trust the n-gram on journeys it has not seen; when
//! scoring, from the n-gram of every training journey. The trees then see the long step context the n-gram keeps
//! and the times and counts it cannot.

use crate::features::{column_major, unit_hash, FeatureLayout};
use crate::ngram::NgramModel;
use crate::sequences::Sequences;
use forust_ml::{GradientBooster, Matrix};
use serde::{Deserialize, Serialize};

/// A next symbol needs this many training examples to get a booster of its own.
pub const MIN_EXAMPLES: usize = 20;

/// Boosting rounds, learning rate and depth of each booster.
pub const ROUNDS: usize = 50;
pub const LEARNING_RATE: f32 = 0.2;
pub const DEPTH: usize = 5;
/// Histogram bins per feature.
pub const BINS: u16 = 64;
/// Prefixes of other next symbols each booster learns from, per prefix of its own.
pub const NEGATIVES_PER_POSITIVE: f64 = 4.0;
/// Training prefixes at most (a uniform sample of them beyond).
pub const MAX_ROWS: usize = 600_000;
/// Folds of the training journeys for the n-gram columns (each fold's from an n-gram fitted on the others).
pub const STACK_FOLDS: usize = 5;
/// Columns the n-gram adds after the layout's: P(this booster's symbol), the top probability, the longest context
/// seen, ln(1 + times that context was seen).
const STACKED: usize = 4;

/// A booster, kept as forust's JSON so that a model can be saved with it.
pub(crate) mod booster_json {
    use forust_ml::GradientBooster;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(boosters: &[GradientBooster], s: S) -> Result<S::Ok, S::Error> {
        let texts = boosters
            .iter()
            .map(|booster| booster.json_dump().map_err(serde::ser::Error::custom))
            .collect::<Result<Vec<String>, _>>()?;
        texts.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<GradientBooster>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|text| GradientBooster::from_json(text).map_err(serde::de::Error::custom))
            .collect()
    }
}

/// The prefixes of `train` journeys a model learns from: `(journey, length)`, at most `max_rows` of them (a
/// uniform sample by a stable hash beyond).
pub(crate) fn training_prefixes(
    sequences: &Sequences,
    train: &[usize],
    max_rows: usize,
    keep: &dyn Fn(usize, usize) -> bool,
) -> Vec<(usize, usize)> {
    let mut prefixes: Vec<(usize, usize)> = train
        .iter()
        .flat_map(|journey| {
            (1..=sequences.get(*journey).len()).map(move |length| (*journey, length))
        })
        .filter(|(journey, length)| keep(*journey, *length))
        .collect();
    if prefixes.len() > max_rows {
        let share = max_rows as f64 / prefixes.len() as f64;
        prefixes.retain(|(journey, length)| unit_hash(*journey, *length, 1) < share);
    }
    prefixes
}

/// The fitted model: a booster per learnable next symbol over the prefix's features and the n-gram's view of it.
#[derive(Serialize, Deserialize)]
pub struct BoostedNextStep {
    layout: FeatureLayout,
    classes: Vec<u32>,
    /// Per class: the log of the share of other prefixes its booster learnt from, added back to its log-odds.
    offsets: Vec<f64>,
    #[serde(with = "booster_json")]
    boosters: Vec<GradientBooster>,
    /// The n-gram of every training journey: the boosters read it, and a log too small to learn any next step is
    /// predicted by it alone.
    ngram: NgramModel,
}

/// The n-gram columns shared by every booster of a prefix: the top probability and how well the context was known.
fn shared_columns(ngram: &NgramModel, prefix: &[u32]) -> [f64; STACKED - 1] {
    let seen = ngram.seen(prefix);
    let top = ngram
        .predict_seen(&seen, 1)
        .first()
        .map_or(0.0, |(_, p)| *p);
    let (order, count) = NgramModel::support_seen(&seen);
    [top, order as f64, (1.0 + count as f64).ln()]
}

impl BoostedNextStep {
    /// Fits on every prefix of the `train` journeys (the end included as a next symbol), with an n-gram of
    /// `order` beside the trees.
    pub fn train(sequences: &Sequences, train: &[usize], order: usize) -> BoostedNextStep {
        Self::train_with_progress(sequences, train, order, &|_, _| {})
    }

    /// [`Self::train`], calling `progress(boosters fitted, boosters)` after each booster.
    pub fn train_with_progress(
        sequences: &Sequences,
        train: &[usize],
        order: usize,
        progress: &dyn Fn(usize, usize),
    ) -> BoostedNextStep {
        let end = sequences.end();
        let ngram = NgramModel::train(sequences, train, order);
        let layout = FeatureLayout::fit(sequences, train);
        let width = layout.width();
        let prefixes = training_prefixes(sequences, train, MAX_ROWS, &|_, _| true);
        let labels: Vec<u32> = prefixes
            .iter()
            .map(|(journey, length)| sequences.get(*journey).get(*length).copied().unwrap_or(end))
            .collect();
        let mut counts = vec![0usize; sequences.n_symbols()];
        for label in &labels {
            counts[*label as usize] += 1;
        }
        let classes: Vec<u32> = (0..sequences.n_symbols() as u32)
            .filter(|symbol| counts[*symbol as usize] >= MIN_EXAMPLES)
            .collect();
        if classes.is_empty() {
            return BoostedNextStep {
                layout,
                classes,
                offsets: Vec::new(),
                boosters: Vec::new(),
                ngram,
            };
        }
        // Out of fold: each training journey's n-gram columns from an n-gram that never saw it.
        let folds = if train.len() >= 2 * STACK_FOLDS {
            STACK_FOLDS
        } else {
            1
        };
        let mut fold_of = vec![0u8; sequences.len()];
        for (at, journey) in train.iter().enumerate() {
            fold_of[*journey] = (at % folds) as u8;
        }
        let fold_models: Vec<NgramModel> = if folds == 1 {
            vec![ngram.clone()]
        } else {
            (0..folds)
                .map(|fold| {
                    let others: Vec<usize> = train
                        .iter()
                        .copied()
                        .filter(|journey| fold_of[*journey] as usize != fold)
                        .collect();
                    NgramModel::train(sequences, &others, order)
                })
                .collect()
        };
        let fold_model = |journey: usize| &fold_models[fold_of[journey] as usize];
        let row_width = width + STACKED;
        let mut rows = Vec::with_capacity(prefixes.len() * row_width);
        for (journey, length) in &prefixes {
            layout.row(sequences, *journey, *length, &mut rows);
            rows.push(0.0);
            rows.extend(shared_columns(
                fold_model(*journey),
                &sequences.get(*journey)[..*length],
            ));
        }
        progress(0, classes.len());
        let mut offsets = Vec::with_capacity(classes.len());
        let mut boosters = Vec::with_capacity(classes.len());
        for (fitted, class) in classes.iter().enumerate() {
            let positives = counts[*class as usize];
            let negatives = labels.len() - positives;
            let rate =
                (NEGATIVES_PER_POSITIVE * positives as f64 / negatives.max(1) as f64).min(1.0);
            let chosen: Vec<usize> = (0..labels.len())
                .filter(|row| {
                    labels[*row] == *class || {
                        let (journey, length) = prefixes[*row];
                        unit_hash(journey, length, 2 + u64::from(*class)) < rate
                    }
                })
                .collect();
            let mut sample = Vec::with_capacity(chosen.len() * row_width);
            for row in &chosen {
                let (journey, length) = prefixes[*row];
                let start = sample.len();
                sample.extend_from_slice(&rows[row * row_width..(row + 1) * row_width]);
                sample[start + width] =
                    fold_model(journey).probability_of(&sequences.get(journey)[..length], *class);
            }
            let columns = column_major(&sample, row_width);
            let matrix = Matrix::new(&columns, chosen.len(), row_width);
            let y: Vec<f64> = chosen
                .iter()
                .map(|row| f64::from(u8::from(labels[*row] == *class)))
                .collect();
            let mut booster = GradientBooster::default()
                .set_iterations(ROUNDS)
                .set_learning_rate(LEARNING_RATE)
                .set_max_depth(DEPTH)
                .set_nbins(BINS);
            booster
                .fit_unweighted(&matrix, &y, None)
                .expect("finite features and two classes");
            offsets.push(rate.ln());
            boosters.push(booster);
            progress(fitted + 1, classes.len());
        }
        BoostedNextStep {
            layout,
            classes,
            offsets,
            boosters,
            ngram,
        }
    }

    /// The `k` likeliest next symbols after the first `length` symbols of `journey`, with their probabilities
    /// (each booster's, normalised to the n-gram's probability of the boosters' symbols together; rarer symbols
    /// the n-gram's own).
    pub fn predict(
        &self,
        sequences: &Sequences,
        journey: usize,
        length: usize,
        k: usize,
    ) -> Vec<(u32, f64)> {
        let prefix = &sequences.get(journey)[..length];
        if self.boosters.is_empty() {
            return self.ngram.predict(prefix, k);
        }
        let width = self.layout.width();
        let mut row = Vec::with_capacity(width + STACKED);
        self.layout.row(sequences, journey, length, &mut row);
        row.push(0.0);
        row.extend(shared_columns(&self.ngram, prefix));
        let seen = self.ngram.seen(prefix);
        let mut scored: Vec<(u32, f64)> = self
            .classes
            .iter()
            .zip(&self.boosters)
            .zip(&self.offsets)
            .map(|((class, booster), offset)| {
                row[width] = self.ngram.probability(&seen, *class);
                let matrix = Matrix::new(&row, 1, width + STACKED);
                let logit = booster.predict(&matrix, false)[0] + offset;
                (*class, 1.0 / (1.0 + (-logit).exp()))
            })
            .collect();
        // The boosters share what the n-gram gives their symbols; symbols too rare for a booster keep the
        // n-gram's probability, so they still rank.
        let total: f64 = scored.iter().map(|(_, p)| p).sum();
        let mut learnt = vec![false; self.ngram.n_symbols()];
        let mut mass = 0.0;
        for (class, _) in &scored {
            learnt[*class as usize] = true;
            mass += self.ngram.probability(&seen, *class);
        }
        if total > 0.0 {
            scored.iter_mut().for_each(|(_, p)| *p *= mass / total);
        }
        scored.extend(
            self.ngram
                .predict_seen(&seen, k + self.classes.len())
                .into_iter()
                .filter(|(symbol, _)| !learnt[*symbol as usize]),
        );
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        scored.truncate(k);
        scored
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A log where time decides: after a quick `retry` another one follows; after a slow one the journey ends. The
    /// steps alone cannot tell the two apart; the time since the previous event can.
    #[test]
    fn time_since_the_previous_event_decides_what_steps_cannot() {
        let names = vec!["open".to_string(), "retry".to_string()];
        let minute = 60_000_000i64;
        let mut sequences = Sequences {
            names,
            channel_names: vec!["web".into()],
            ..Sequences::default()
        };
        for journey in 0..400i64 {
            let quick = journey % 2 == 0;
            let start = journey * 1_000 * minute;
            let (symbols, times): (Vec<u32>, Vec<i64>) = if quick {
                (
                    vec![0, 1, 1],
                    vec![start, start + minute, start + 2 * minute],
                )
            } else {
                (vec![0, 1], vec![start, start + 120 * minute])
            };
            sequences.push(
                start,
                symbols
                    .into_iter()
                    .zip(times)
                    .map(|(symbol, time)| (symbol, time, 0)),
            );
        }
        let all: Vec<usize> = (0..sequences.len()).collect();
        let model = BoostedNextStep::train(&sequences, &all, 2);
        // A quick first retry is followed by another; a slow one by the end.
        assert_eq!(model.predict(&sequences, 0, 2, 1)[0].0, 1);
        assert_eq!(model.predict(&sequences, 1, 2, 1)[0].0, sequences.end());
        // The n-gram sees `open retry` in both and must say the same for both.
        let ngram = NgramModel::train(&sequences, &all, 2);
        assert_eq!(
            ngram.predict(sequences.get(0)[..2].as_ref(), 1)[0].0,
            ngram.predict(sequences.get(1)[..2].as_ref(), 1)[0].0
        );
    }

    #[test]
    fn a_log_too_small_to_learn_falls_back_to_the_ngram() {
        let sequences = Sequences::from_lists(
            vec!["a".into(), "b".into()],
            &[(0, vec![0, 1]), (1, vec![0, 1]), (2, vec![0, 1, 1])],
        );
        let all: Vec<usize> = (0..sequences.len()).collect();
        let model = BoostedNextStep::train(&sequences, &all, 3);
        assert_eq!(model.predict(&sequences, 0, 1, 1)[0].0, 1);
    }
}
