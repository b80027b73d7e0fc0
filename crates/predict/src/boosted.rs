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
/// The order of the n-gram used when no next symbol has [`MIN_EXAMPLES`].
pub const FALLBACK_ORDER: usize = 3;
/// Histogram bins per feature.
pub const BINS: u16 = 64;
/// Prefixes of other next symbols each booster learns from, per prefix of its own.
pub const NEGATIVES_PER_POSITIVE: f64 = 4.0;
/// Training prefixes at most (a uniform sample of them beyond).
pub const MAX_ROWS: usize = 600_000;

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

/// The fitted model: a booster per learnable next symbol, and an n-gram for a log too small to learn any.
#[derive(Serialize, Deserialize)]
pub struct BoostedNextStep {
    layout: FeatureLayout,
    classes: Vec<u32>,
    /// Per class: the log of the share of other prefixes its booster learnt from, added back to its log-odds.
    offsets: Vec<f64>,
    #[serde(with = "booster_json")]
    boosters: Vec<GradientBooster>,
    fallback: Option<NgramModel>,
}

impl BoostedNextStep {
    /// Fits on every prefix of the `train` journeys (the end included as a next symbol).
    pub fn train(sequences: &Sequences, train: &[usize]) -> BoostedNextStep {
        Self::train_with_progress(sequences, train, &|_, _| {})
    }

    /// [`Self::train`], calling `progress(boosters fitted, boosters)` after each booster.
    pub fn train_with_progress(
        sequences: &Sequences,
        train: &[usize],
        progress: &dyn Fn(usize, usize),
    ) -> BoostedNextStep {
        let end = sequences.end();
        let layout = FeatureLayout::fit(sequences, train);
        let width = layout.width();
        let prefixes = training_prefixes(sequences, train, MAX_ROWS, &|_, _| true);
        let labels: Vec<u32> = prefixes
            .iter()
            .map(|(journey, length)| sequences.get(*journey).get(*length).copied().unwrap_or(end))
            .collect();
        let mut rows = Vec::with_capacity(prefixes.len() * width);
        for (journey, length) in &prefixes {
            layout.row(sequences, *journey, *length, &mut rows);
        }
        let mut counts = vec![0usize; sequences.n_symbols()];
        for label in &labels {
            counts[*label as usize] += 1;
        }
        let classes: Vec<u32> = (0..sequences.n_symbols() as u32)
            .filter(|symbol| counts[*symbol as usize] >= MIN_EXAMPLES)
            .collect();
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
            let mut sample = Vec::with_capacity(chosen.len() * width);
            for row in &chosen {
                sample.extend_from_slice(&rows[row * width..(row + 1) * width]);
            }
            let columns = column_major(&sample, width);
            let matrix = Matrix::new(&columns, chosen.len(), width);
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
            fallback: classes
                .is_empty()
                .then(|| NgramModel::train(sequences, train, FALLBACK_ORDER)),
            layout,
            classes,
            offsets,
            boosters,
        }
    }

    /// The `k` likeliest next symbols after the first `length` symbols of `journey`, with their probabilities
    /// (each booster's, normalised over the boosters).
    pub fn predict(
        &self,
        sequences: &Sequences,
        journey: usize,
        length: usize,
        k: usize,
    ) -> Vec<(u32, f64)> {
        if let Some(fallback) = &self.fallback {
            return fallback.predict(&sequences.get(journey)[..length], k);
        }
        let mut row = Vec::with_capacity(self.layout.width());
        self.layout.row(sequences, journey, length, &mut row);
        let matrix = Matrix::new(&row, 1, self.layout.width());
        let mut scored: Vec<(u32, f64)> = self
            .classes
            .iter()
            .zip(&self.boosters)
            .zip(&self.offsets)
            .map(|((class, booster), offset)| {
                let logit = booster.predict(&matrix, false)[0] + offset;
                (*class, 1.0 / (1.0 + (-logit).exp()))
            })
            .collect();
        let total: f64 = scored.iter().map(|(_, p)| p).sum();
        if total > 0.0 {
            scored.iter_mut().for_each(|(_, p)| *p /= total);
        }
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
        let model = BoostedNextStep::train(&sequences, &all);
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
        let model = BoostedNextStep::train(&sequences, &all);
        assert_eq!(model.predict(&sequences, 0, 1, 1)[0].0, 1);
    }
}
