//! The Markov-chain model of attribution: touchpoint paths as an absorbing chain (`(start)` → states →
//! `(conversion)` or `(null)`), each touchpoint credited with its removal effect — how much of the chance to
//! convert is lost when every state holding it leads to `(null)` instead. States are the last `order` touchpoints
//! (a path shorter than the order is one state). Solved exactly: the absorption probabilities of the chain (and of
//! each chain with one touchpoint removed) are the solution of a linear system, found by Gauss–Seidel sweeps to
//! machine precision — no simulation, so no Monte-Carlo noise and no seed.

use super::paths::PathTable;
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

impl Chain {
    /// Fits the order-`order` chain of `table` (order ≥ 1).
    pub fn fit(table: &PathTable, order: usize) -> Chain {
        let order = order.max(1);
        let mut index: FxHashMap<Vec<u32>, u32> = FxHashMap::default();
        let mut states: Vec<Vec<u32>> = Vec::new();
        let state_of = |index: &mut FxHashMap<Vec<u32>, u32>,
                        states: &mut Vec<Vec<u32>>,
                        window: &[u32]|
         -> u32 {
            if let Some(code) = index.get(window) {
                return *code;
            }
            states.push(window.to_vec());
            index.insert(window.to_vec(), states.len() as u32 - 1);
            states.len() as u32 - 1
        };
        let mut start_counts: FxHashMap<Target, f64> = FxHashMap::default();
        let mut counts: Vec<FxHashMap<Target, f64>> = Vec::new();
        let mut conversions: Vec<f64> = Vec::new();
        let mut value: Vec<f64> = Vec::new();
        for (path, outcome) in &table.paths {
            let journeys = (outcome.conversions + outcome.nulls) as f64;
            if path.is_empty() || journeys == 0.0 {
                continue;
            }
            let windows: Vec<u32> = if path.len() <= order {
                vec![state_of(&mut index, &mut states, path)]
            } else {
                path.windows(order)
                    .map(|window| state_of(&mut index, &mut states, window))
                    .collect()
            };
            counts.resize_with(states.len(), FxHashMap::default);
            conversions.resize(states.len(), 0.0);
            value.resize(states.len(), 0.0);
            *start_counts.entry(Target::State(windows[0])).or_default() += journeys;
            for pair in windows.windows(2) {
                *counts[pair[0] as usize]
                    .entry(Target::State(pair[1]))
                    .or_default() += journeys;
            }
            let last = *windows.last().expect("a path has a state") as usize;
            if outcome.conversions > 0 {
                *counts[last].entry(Target::Conversion).or_default() += outcome.conversions as f64;
                conversions[last] += outcome.conversions as f64;
                value[last] += outcome.value_f64();
            }
            if outcome.nulls > 0 {
                *counts[last].entry(Target::Null).or_default() += outcome.nulls as f64;
            }
        }
        let normalise = |row: FxHashMap<Target, f64>| -> Vec<(Target, f64)> {
            let total: f64 = row.values().sum();
            let mut row: Vec<(Target, f64)> = row
                .into_iter()
                .map(|(target, count)| (target, count / total))
                .collect();
            row.sort_by_key(|(target, _)| match target {
                Target::State(code) => (0, *code),
                Target::Conversion => (1, 0),
                Target::Null => (2, 0),
            });
            row
        };
        Chain {
            start: normalise(start_counts),
            rows: counts.into_iter().map(normalise).collect(),
            value_per_conversion: conversions
                .iter()
                .zip(&value)
                .map(|(count, value)| if *count > 0.0 { value / count } else { 0.0 })
                .collect(),
            states,
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
