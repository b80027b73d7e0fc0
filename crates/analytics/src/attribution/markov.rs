//! The Markov-chain model of attribution: touchpoint paths as an absorbing chain (`(start)` → states →
//! `(conversion)` or `(null)`), each touchpoint credited with its removal effect — how much of the chance to
//! convert is lost when every state holding it leads to `(null)` instead. States are the last `order` touchpoints
//! (a path shorter than the order is one state). Solved exactly: the absorption probabilities of the chain (and of
//! each chain with one touchpoint removed) are the solution of a linear system, found by Gauss–Seidel sweeps to
//! machine precision — no simulation, so no Monte-Carlo noise and no seed.

use super::paths::{PathOutcome, PathTable, VALUE_UNIT};
use super::MAX_ORDER;
use rustc_hash::FxHashMap;

/// Where a transition goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Target {
    State(u32),
    Conversion,
    Null,
}

/// The fitted chain.
#[derive(Debug, Clone)]
pub struct Chain {
    /// Each state's touchpoint codes (the last `order` touchpoints).
    pub states: Vec<Vec<u32>>,
    /// `(start)`'s transitions.
    start: Vec<(Target, f64)>,
    /// Per state: transitions with their probabilities (maximum likelihood: counts over the row's total).
    rows: Vec<Vec<(Target, f64)>>,
    /// Per state: the mean value of the conversions that followed it (0 when none did).
    value_per_conversion: Vec<f64>,
}

/// One row of the transition matrix, labelled.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub from: String,
    pub to: String,
    pub probability: f64,
}

/// Removal effects per touchpoint: of conversions and of value, each `1 − P(without) / P(with)`.
#[derive(Debug, Clone, PartialEq)]
pub struct RemovalEffects {
    /// The chain's probability of converting from `(start)`.
    pub conversion_probability: f64,
    pub conversions: Vec<f64>,
    pub value: Vec<f64>,
}

/// A state's key: its touchpoint codes, the unused places [`NO_TOUCH`].
type StateKey = [u32; MAX_ORDER];
const NO_TOUCH: u32 = u32::MAX;

/// The chain's transitions counted as whole journeys (and conversion value in millionths), so the counts do not
/// depend on the order (or the number of threads) in which paths are added; states are numbered as they are
/// first seen and renumbered in the order of their codes when the chain is fitted.
#[derive(Debug, Clone, Default)]
pub struct ChainCounts {
    order: usize,
    index: FxHashMap<StateKey, u32>,
    keys: Vec<StateKey>,
    /// Per state: journeys starting in it, conversions and non-conversions that followed it, conversion value.
    start: Vec<u64>,
    conversions: Vec<u64>,
    nulls: Vec<u64>,
    value: Vec<i128>,
    /// Journeys going from one state to the next.
    edges: FxHashMap<(u32, u32), u64>,
    /// The states of the path being added (reused).
    scratch: Vec<u32>,
}

impl ChainCounts {
    /// Counts for a chain of order `order` (1 to [`MAX_ORDER`]).
    pub fn new(order: usize) -> ChainCounts {
        ChainCounts {
            order: order.clamp(1, MAX_ORDER),
            ..ChainCounts::default()
        }
    }

    fn state(&mut self, window: &[u32]) -> u32 {
        let mut key = [NO_TOUCH; MAX_ORDER];
        key[..window.len()].copy_from_slice(window);
        if let Some(code) = self.index.get(&key) {
            return *code;
        }
        let code = self.keys.len() as u32;
        self.index.insert(key, code);
        self.keys.push(key);
        self.start.push(0);
        self.conversions.push(0);
        self.nulls.push(0);
        self.value.push(0);
        code
    }

    /// Adds a path and what followed it: `(start)` → its first state → … → its last state → `(conversion)` and
    /// `(null)` as many times as it converted and did not.
    pub fn add(&mut self, path: &[u32], outcome: &PathOutcome) {
        let journeys = outcome.conversions + outcome.nulls;
        if path.is_empty() || journeys == 0 {
            return;
        }
        let mut states = std::mem::take(&mut self.scratch);
        states.clear();
        if path.len() <= self.order {
            states.push(self.state(path));
        } else {
            for window in path.windows(self.order) {
                let state = self.state(window);
                states.push(state);
            }
        }
        self.start[states[0] as usize] += journeys;
        for pair in states.windows(2) {
            *self.edges.entry((pair[0], pair[1])).or_default() += journeys;
        }
        let last = *states.last().expect("a path has a state") as usize;
        self.conversions[last] += outcome.conversions;
        self.nulls[last] += outcome.nulls;
        self.value[last] += outcome.value;
        self.scratch = states;
    }

    pub fn merge(&mut self, other: ChainCounts) {
        let codes: Vec<u32> = other
            .keys
            .iter()
            .map(|key| self.state(Self::window(key)))
            .collect();
        for (from, to) in codes.iter().enumerate() {
            let to = *to as usize;
            self.start[to] += other.start[from];
            self.conversions[to] += other.conversions[from];
            self.nulls[to] += other.nulls[from];
            self.value[to] += other.value[from];
        }
        for ((from, to), journeys) in other.edges {
            *self
                .edges
                .entry((codes[from as usize], codes[to as usize]))
                .or_default() += journeys;
        }
    }

    fn window(key: &StateKey) -> &[u32] {
        let len = key
            .iter()
            .position(|code| *code == NO_TOUCH)
            .unwrap_or(MAX_ORDER);
        &key[..len]
    }
}

impl Chain {
    /// Fits the order-`order` chain of `table` (order ≥ 1).
    pub fn fit(table: &PathTable, order: usize) -> Chain {
        let mut counts = ChainCounts::new(order);
        for (path, outcome) in &table.paths {
            counts.add(path, outcome);
        }
        Chain::from_counts(counts)
    }

    /// The chain of maximum likelihood (each row's counts over its total), states in the order of their codes.
    pub fn from_counts(counts: ChainCounts) -> Chain {
        let mut order: Vec<u32> = (0..counts.keys.len() as u32).collect();
        order.sort_unstable_by_key(|state| counts.keys[*state as usize]);
        let mut renumber = vec![0u32; order.len()];
        for (new, old) in order.iter().enumerate() {
            renumber[*old as usize] = new as u32;
        }
        let mut rows: Vec<Vec<(Target, u64)>> = vec![Vec::new(); order.len()];
        for ((from, to), journeys) in &counts.edges {
            rows[renumber[*from as usize] as usize]
                .push((Target::State(renumber[*to as usize]), *journeys));
        }
        let mut start = Vec::new();
        for (old, new) in renumber.iter().enumerate() {
            let row = &mut rows[*new as usize];
            if counts.conversions[old] > 0 {
                row.push((Target::Conversion, counts.conversions[old]));
            }
            if counts.nulls[old] > 0 {
                row.push((Target::Null, counts.nulls[old]));
            }
            if counts.start[old] > 0 {
                start.push((Target::State(*new), counts.start[old]));
            }
        }
        let normalise = |mut row: Vec<(Target, u64)>| -> Vec<(Target, f64)> {
            row.sort_unstable_by_key(|(target, _)| match target {
                Target::State(code) => (0, *code),
                Target::Conversion => (1, 0),
                Target::Null => (2, 0),
            });
            let total: u64 = row.iter().map(|(_, count)| count).sum();
            row.into_iter()
                .map(|(target, count)| (target, count as f64 / total as f64))
                .collect()
        };
        Chain {
            start: normalise(start),
            rows: rows.into_iter().map(normalise).collect(),
            value_per_conversion: order
                .iter()
                .map(|old| {
                    let old = *old as usize;
                    match counts.conversions[old] {
                        0 => 0.0,
                        conversions => counts.value[old] as f64 / VALUE_UNIT / conversions as f64,
                    }
                })
                .collect(),
            states: order
                .iter()
                .map(|old| ChainCounts::window(&counts.keys[*old as usize]).to_vec())
                .collect(),
        }
    }

    /// The transition matrix, labelled: `(start)`, each state as its touchpoints joined by `,`, `(conversion)`,
    /// `(null)`.
    pub fn transitions(&self, touchpoints: &[String]) -> Vec<Transition> {
        let label = |target: &Target| match target {
            Target::State(code) => self.label(*code as usize, touchpoints),
            Target::Conversion => "(conversion)".to_string(),
            Target::Null => "(null)".to_string(),
        };
        let mut out: Vec<Transition> = self
            .start
            .iter()
            .map(|(target, probability)| Transition {
                from: "(start)".into(),
                to: label(target),
                probability: *probability,
            })
            .collect();
        for (state, row) in self.rows.iter().enumerate() {
            let from = self.label(state, touchpoints);
            out.extend(row.iter().map(|(target, probability)| Transition {
                from: from.clone(),
                to: label(target),
                probability: *probability,
            }));
        }
        out
    }

    fn label(&self, state: usize, touchpoints: &[String]) -> String {
        self.states[state]
            .iter()
            .map(|code| touchpoints[*code as usize].as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The probability of converting, and the expected conversion value, from `(start)`, with the states for which
    /// `removed` is true leading to `(null)`.
    fn absorption(&self, removed: &[bool]) -> (f64, f64) {
        let n = self.states.len();
        let mut probability = vec![0.0f64; n];
        let mut value = vec![0.0f64; n];
        // Gauss–Seidel: each sweep uses the values already updated in it. The chain is absorbing (every state was
        // followed by another state or an end), so the sweeps converge; stop when nothing moves at double precision.
        for _ in 0..1_000_000 {
            let mut change = 0.0f64;
            for state in 0..n {
                if removed[state] {
                    continue;
                }
                let (mut p, mut v) = (0.0, 0.0);
                for (target, weight) in &self.rows[state] {
                    match target {
                        Target::State(next) => {
                            p += weight * probability[*next as usize];
                            v += weight * value[*next as usize];
                        }
                        Target::Conversion => {
                            p += weight;
                            v += weight * self.value_per_conversion[state];
                        }
                        Target::Null => {}
                    }
                }
                change = change
                    .max((p - probability[state]).abs() / p.max(1e-300))
                    .max((v - value[state]).abs() / v.abs().max(1e-300));
                probability[state] = p;
                value[state] = v;
            }
            if change < 1e-15 {
                break;
            }
        }
        let mut from_start = (0.0, 0.0);
        for (target, weight) in &self.start {
            if let Target::State(next) = target {
                from_start.0 += weight * probability[*next as usize];
                from_start.1 += weight * value[*next as usize];
            }
        }
        from_start
    }

    /// Each touchpoint's removal effect, for `n_touchpoints` codes.
    pub fn removal_effects(&self, n_touchpoints: usize) -> RemovalEffects {
        let none = vec![false; self.states.len()];
        let (probability, value) = self.absorption(&none);
        let mut conversions = vec![0.0; n_touchpoints];
        let mut values = vec![0.0; n_touchpoints];
        for touchpoint in 0..n_touchpoints {
            let removed: Vec<bool> = self
                .states
                .iter()
                .map(|state| state.contains(&(touchpoint as u32)))
                .collect();
            if !removed.iter().any(|removed| *removed) {
                continue;
            }
            let (without, value_without) = self.absorption(&removed);
            if probability > 0.0 {
                conversions[touchpoint] = (1.0 - without / probability).max(0.0);
            }
            if value > 0.0 {
                values[touchpoint] = (1.0 - value_without / value).max(0.0);
            }
        }
        RemovalEffects {
            conversion_probability: probability,
            conversions,
            value: values,
        }
    }
}

/// `total` split in proportion to `weights` (all zero: nothing credited).
pub fn share_out(total: f64, weights: &[f64]) -> Vec<f64> {
    let sum: f64 = weights.iter().sum();
    weights
        .iter()
        .map(|weight| if sum > 0.0 { total * weight / sum } else { 0.0 })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attribution::paths::PathTable;

    /// A chain small enough to solve by hand: `a` converts half the time, `b > a` always goes through `a`.
    #[test]
    fn removal_effects_match_hand_algebra() {
        let table = PathTable::parse_channelattribution(
            "path;total_conversions;total_conversion_value;total_null\na;1;10;1\nb > a;1;10;1\n",
        )
        .unwrap();
        let chain = Chain::fit(&table, 1);
        // start → a 1/2, start → b 1/2; b → a 1; a → conversion 1/2, a → null 1/2.
        let effects = chain.removal_effects(2);
        assert!((effects.conversion_probability - 0.5).abs() < 1e-15);
        // Without a nothing converts; without b the path through b is lost (half the conversions).
        assert!((effects.conversions[0] - 1.0).abs() < 1e-15);
        assert!((effects.conversions[1] - 0.5).abs() < 1e-15);
        assert_eq!(share_out(2.0, &effects.conversions), [4.0 / 3.0, 2.0 / 3.0]);
        let transitions = chain.transitions(&table.touchpoints);
        assert!(transitions.contains(&Transition {
            from: "b".into(),
            to: "a".into(),
            probability: 1.0
        }));
    }

    #[test]
    fn higher_orders_keep_the_last_touchpoints_as_the_state() {
        let table = PathTable::parse_channelattribution(
            "path;total_conversions;total_null\na > b > c;1;0\nc;0;1\n",
        )
        .unwrap();
        let chain = Chain::fit(&table, 2);
        let labels: Vec<String> = (0..chain.states.len())
            .map(|state| chain.label(state, &table.touchpoints))
            .collect();
        assert_eq!(labels, ["a,b", "b,c", "c"]);
    }
}
