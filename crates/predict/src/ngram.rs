//! An order-k n-gram model of the next symbol with Witten–Bell interpolation: the probability of what follows the
//! last `k` symbols is mixed with what follows the last `k − 1`, and so on down to the symbols' overall
//! frequencies (add-one smoothed), each context trusted in proportion to how often it was seen against how many
//! different symbols followed it. Contexts before a journey's first step are padded with a start symbol, so the
//! model knows how far into the journey a prefix is while it is short.

use crate::sequences::Sequences;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

/// The longest context the model keeps.
pub const MAX_ORDER: usize = 8;

/// A context of one length: its symbols, most recent last, the unused places [`UNUSED`].
type Context = [u32; MAX_ORDER];
const UNUSED: u32 = u32::MAX;

/// What followed one context: `(symbol, times)` by symbol, and the total.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Successors {
    counts: Vec<(u32, u64)>,
    total: u64,
}

impl Successors {
    fn add(&mut self, symbol: u32) {
        self.total += 1;
        match self.counts.binary_search_by_key(&symbol, |(s, _)| *s) {
            Ok(at) => self.counts[at].1 += 1,
            Err(at) => self.counts.insert(at, (symbol, 1)),
        }
    }

    fn count(&self, symbol: u32) -> u64 {
        self.counts
            .binary_search_by_key(&symbol, |(s, _)| *s)
            .map_or(0, |at| self.counts[at].1)
    }
}

/// The contexts kept as lists (a JSON map needs string keys), in a stable order.
mod levels_as_lists {
    use super::{Context, Successors};
    use rustc_hash::FxHashMap;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    type Lists = Vec<Vec<(Context, Successors)>>;

    pub fn serialize<S: Serializer>(
        levels: &[FxHashMap<Context, Successors>],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let lists: Lists = levels
            .iter()
            .map(|level| {
                let mut list: Vec<(Context, Successors)> =
                    level.iter().map(|(c, n)| (*c, n.clone())).collect();
                list.sort_unstable_by_key(|(context, _)| *context);
                list
            })
            .collect();
        lists.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Vec<FxHashMap<Context, Successors>>, D::Error> {
        Ok(Lists::deserialize(d)?
            .into_iter()
            .map(|list| list.into_iter().collect())
            .collect())
    }
}

/// The fitted model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NgramModel {
    pub order: usize,
    /// Steps and the end.
    n_symbols: usize,
    /// Per context length `1..=order`: what followed each context.
    #[serde(with = "levels_as_lists")]
    levels: Vec<FxHashMap<Context, Successors>>,
    /// How often each symbol came next at all.
    unigram: Vec<u64>,
    unigram_total: u64,
    /// Every symbol, most frequent first (ties: the lower symbol).
    by_frequency: Vec<u32>,
}

impl NgramModel {
    /// Fits the model of `order` (1 to [`MAX_ORDER`]) on the journeys `train` of `sequences`: every position of each
    /// journey, its end included, is one observation of what follows the symbols before it.
    pub fn train(sequences: &Sequences, train: &[usize], order: usize) -> NgramModel {
        let order = order.clamp(1, MAX_ORDER);
        let n_symbols = sequences.n_symbols();
        let mut model = NgramModel {
            order,
            n_symbols,
            levels: vec![FxHashMap::default(); order],
            unigram: vec![0; n_symbols],
            unigram_total: 0,
            by_frequency: Vec::new(),
        };
        let end = sequences.end();
        for journey in train {
            let symbols = sequences.get(*journey);
            for at in 0..=symbols.len() {
                let next = symbols.get(at).copied().unwrap_or(end);
                model.unigram[next as usize] += 1;
                model.unigram_total += 1;
                for length in 1..=order {
                    model.levels[length - 1]
                        .entry(context(symbols, at, length, n_symbols as u32))
                        .or_default()
                        .add(next);
                }
            }
        }
        let mut by_frequency: Vec<u32> = (0..n_symbols as u32).collect();
        by_frequency.sort_by(|a, b| {
            model.unigram[*b as usize]
                .cmp(&model.unigram[*a as usize])
                .then(a.cmp(b))
        });
        model.by_frequency = by_frequency;
        model
    }

    /// Steps and the end.
    pub fn n_symbols(&self) -> usize {
        self.n_symbols
    }

    /// What followed each context of `prefix` seen in training, shortest first.
    pub(crate) fn seen(&self, prefix: &[u32]) -> Vec<Option<&Successors>> {
        let start = self.n_symbols as u32;
        (1..=self.order)
            .map(|length| {
                self.levels[length - 1].get(&context(prefix, prefix.len(), length, start))
            })
            .collect()
    }

    /// The probability that `symbol` follows `prefix`.
    pub fn probability_of(&self, prefix: &[u32], symbol: u32) -> f64 {
        self.probability(&self.seen(prefix), symbol)
    }

    /// How well training knew a prefix's context, from its [seen](Self::seen) contexts: the longest context length
    /// seen, and how often it was seen.
    pub(crate) fn support_seen(seen: &[Option<&Successors>]) -> (usize, u64) {
        seen.iter()
            .enumerate()
            .rev()
            .find_map(|(at, successors)| successors.map(|s| (at + 1, s.total)))
            .unwrap_or((0, 0))
    }

    /// The `k` likeliest symbols to follow `prefix` (a journey's first symbols), likeliest first, with their
    /// probabilities (ties: the lower symbol first).
    pub fn predict(&self, prefix: &[u32], k: usize) -> Vec<(u32, f64)> {
        self.predict_seen(&self.seen(prefix), k)
    }

    /// [`Self::predict`] from a prefix's [seen](Self::seen) contexts.
    pub(crate) fn predict_seen(&self, seen: &[Option<&Successors>], k: usize) -> Vec<(u32, f64)> {
        let mut candidates: Vec<u32> = seen
            .iter()
            .flatten()
            .flat_map(|successors| successors.counts.iter().map(|(symbol, _)| *symbol))
            .collect();
        candidates.extend(self.by_frequency.iter().take(k));
        candidates.sort_unstable();
        candidates.dedup();
        let mut scored: Vec<(u32, f64)> = candidates
            .into_iter()
            .map(|symbol| (symbol, self.probability(seen, symbol)))
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        scored.truncate(k);
        scored
    }

    /// The baseline: the `k` symbols that most often followed the prefix's last symbol (or started a journey), by
    /// count, with their shares; a last symbol never seen falls back to the overall frequencies.
    pub fn most_frequent_next(&self, prefix: &[u32], k: usize) -> Vec<(u32, f64)> {
        let start = self.n_symbols as u32;
        let mut scored: Vec<(u32, f64)> =
            match self.levels[0].get(&context(prefix, prefix.len(), 1, start)) {
                Some(successors) => successors
                    .counts
                    .iter()
                    .map(|(symbol, count)| (*symbol, *count as f64 / successors.total as f64))
                    .collect(),
                None => self
                    .unigram
                    .iter()
                    .enumerate()
                    .map(|(symbol, count)| {
                        (
                            symbol as u32,
                            *count as f64 / self.unigram_total.max(1) as f64,
                        )
                    })
                    .collect(),
            };
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        scored.truncate(k);
        scored
    }

    /// Witten–Bell: `P_j(w) = (c_j(w) + T_j · P_{j−1}(w)) / (N_j + T_j)` over the contexts seen, from add-one
    /// unigram frequencies up.
    pub(crate) fn probability(&self, seen: &[Option<&Successors>], symbol: u32) -> f64 {
        let mut probability = (self.unigram[symbol as usize] + 1) as f64
            / (self.unigram_total + self.n_symbols as u64) as f64;
        for successors in seen.iter().flatten() {
            let distinct = successors.counts.len() as f64;
            probability = (successors.count(symbol) as f64 + distinct * probability)
                / (successors.total as f64 + distinct);
        }
        probability
    }
}

/// The `length` symbols before position `at` of `symbols`, start-padded.
fn context(symbols: &[u32], at: usize, length: usize, start: u32) -> Context {
    let mut key = [UNUSED; MAX_ORDER];
    for (back, slot) in key[..length].iter_mut().rev().enumerate() {
        *slot = match at.checked_sub(back + 1) {
            Some(position) => symbols[position],
            None => start,
        };
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sequences(lists: &[&[u32]]) -> Sequences {
        Sequences::from_lists(
            vec!["a".into(), "b".into(), "c".into()],
            &lists
                .iter()
                .enumerate()
                .map(|(index, list)| (index as i64, list.to_vec()))
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn a_longer_context_tells_apart_what_the_last_step_cannot() {
        // After `b`, what comes next depends on the step before: a b → c, c b → a.
        let data = sequences(&[&[0, 1, 2], &[0, 1, 2], &[2, 1, 0], &[2, 1, 0], &[2, 1, 0]]);
        let all: Vec<usize> = (0..data.len()).collect();
        let order2 = NgramModel::train(&data, &all, 2);
        assert_eq!(order2.predict(&[0, 1], 1)[0].0, 2);
        assert_eq!(order2.predict(&[2, 1], 1)[0].0, 0);
        // The baseline knows only the last step: after b, a came three times, c twice.
        assert_eq!(order2.most_frequent_next(&[0, 1], 2), [(0, 0.6), (2, 0.4)]);
        // The end is a symbol: after a b c the journey ends.
        assert_eq!(order2.predict(&[0, 1, 2], 1)[0].0, data.end());
    }

    #[test]
    fn probabilities_add_up_over_every_symbol() {
        let data = sequences(&[&[0, 1, 2], &[0, 0, 1], &[2]]);
        let all: Vec<usize> = (0..data.len()).collect();
        let model = NgramModel::train(&data, &all, 3);
        for prefix in [&[][..], &[0], &[0, 1], &[2, 2, 2], &[1, 0, 2, 1]] {
            let total: f64 = model
                .predict(prefix, data.n_symbols())
                .iter()
                .map(|(_, p)| p)
                .sum();
            // Candidates are the seen successors plus the most frequent symbols; with k = every symbol, all are.
            assert!((total - 1.0).abs() < 1e-12, "{prefix:?}: {total}");
        }
    }
}
