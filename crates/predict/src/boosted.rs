//! Next-step prediction by gradient-boosted trees (`forust-ml`): one booster per next symbol that is common enough
//! to learn (one-vs-rest), over features of the prefix that an n-gram cannot see — how long since the previous
//! event and since the start, the time of day and week, how often each step has happened so far — beside the last
//! three steps. The likeliest next symbols are those whose boosters score highest.

use crate::ngram::NgramModel;
use crate::sequences::Sequences;
use forust_ml::{GradientBooster, Matrix};

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

/// Features of one prefix, in the order [`feature_names`] gives.
fn features(sequences: &Sequences, journey: usize, length: usize, out: &mut Vec<f64>) {
    let symbols = &sequences.get(journey)[..length];
    let times = &sequences.times_of(journey)[..length];
    let n = sequences.n_symbols();
    let last = *symbols.last().expect("a prefix has a step");
    let seconds = |from: i64, to: i64| ((to - from).max(0) as f64 / 1e6).ln_1p();
    let now = times[length - 1];
    let day_us = 86_400_000_000i64;
    // The last and second-to-last steps one-hot (the start, before the first step, has a place of its own).
    for k in 1..=2 {
        let at = out.len();
        out.resize(at + n + 1, 0.0);
        let symbol = length.checked_sub(k).map_or(n, |at| symbols[at] as usize);
        out[at + symbol] = 1.0;
    }
    out.extend([
        length as f64,
        symbols.iter().filter(|symbol| **symbol == last).count() as f64,
        length
            .checked_sub(2)
            .map_or(0.0, |at| seconds(times[at], now)),
        seconds(times[0], now),
        (now.rem_euclid(day_us) / 3_600_000_000) as f64,
        ((now.div_euclid(day_us) + 3).rem_euclid(7)) as f64,
    ]);
    let counts_at = out.len();
    out.resize(counts_at + sequences.names.len(), 0.0);
    for symbol in symbols {
        out[counts_at + *symbol as usize] += 1.0;
    }
}

/// The fitted model: a booster per learnable next symbol, and an n-gram for a log too small to learn any.
pub struct BoostedNextStep {
    classes: Vec<u32>,
    boosters: Vec<GradientBooster>,
    n_features: usize,
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
        let mut rows = Vec::new();
        let mut labels = Vec::new();
        for journey in train {
            let symbols = sequences.get(*journey);
            for length in 1..=symbols.len() {
                features(sequences, *journey, length, &mut rows);
                labels.push(symbols.get(length).copied().unwrap_or(end));
            }
        }
        let n_rows = labels.len();
        let n_features = rows.len() / n_rows.max(1);
        // The booster reads column-major data.
        let mut columns = vec![0.0; rows.len()];
        for row in 0..n_rows {
            for feature in 0..n_features {
                columns[feature * n_rows + row] = rows[row * n_features + feature];
            }
        }
        let matrix = Matrix::new(&columns, n_rows, n_features);
        let mut counts = vec![0usize; sequences.n_symbols()];
        for label in &labels {
            counts[*label as usize] += 1;
        }
        let classes: Vec<u32> = (0..sequences.n_symbols() as u32)
            .filter(|symbol| counts[*symbol as usize] >= MIN_EXAMPLES)
            .collect();
        progress(0, classes.len());
        let boosters = classes
            .iter()
            .enumerate()
            .map(|(fitted, class)| {
                let y: Vec<f64> = labels
                    .iter()
                    .map(|label| f64::from(u8::from(label == class)))
                    .collect();
                let mut booster = GradientBooster::default()
                    .set_iterations(ROUNDS)
                    .set_learning_rate(LEARNING_RATE)
                    .set_max_depth(DEPTH)
                    .set_nbins(BINS);
                booster
                    .fit_unweighted(&matrix, &y, None)
                    .expect("finite features and two classes");
                progress(fitted + 1, classes.len());
                booster
            })
            .collect();
        BoostedNextStep {
            fallback: classes
                .is_empty()
                .then(|| NgramModel::train(sequences, train, FALLBACK_ORDER)),
            classes,
            boosters,
            n_features,
        }
    }

    /// The `k` likeliest next symbols after the first `length` symbols of `journey`, with their boosters' scores (log-odds).
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
        let mut row = Vec::with_capacity(self.n_features);
        features(sequences, journey, length, &mut row);
        let matrix = Matrix::new(&row, 1, self.n_features);
        let mut scored: Vec<(u32, f64)> = self
            .classes
            .iter()
            .zip(&self.boosters)
            .map(|(class, booster)| (*class, booster.predict(&matrix, false)[0]))
            .collect();
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
            offsets: vec![0],
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
            sequences.symbols.extend(symbols);
            sequences.times.extend(times);
            sequences.offsets.push(sequences.symbols.len());
            sequences.first_ts.push(start);
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
