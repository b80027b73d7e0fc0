//! Rule-based attribution over paths: first touch, last touch, linear and position-based, as ChannelAttribution
//! and Google's models define them.
//!
//! Paths are summed as integers ([`HeuristicSums`]): whole conversions and value in millionths per touchpoint, and
//! for the models that split a conversion by the path's length, per length — so that the credit does not depend on
//! the order (or the number of threads) in which paths are added, and no path table need be sorted. The fractions
//! are applied once, at the end, lengths in increasing order.

use super::paths::{PathOutcome, PathTable, VALUE_UNIT};
use rustc_hash::FxHashMap;

/// Conversions and value credited to each touchpoint (indexed by code) by one model.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Credit {
    pub conversions: Vec<f64>,
    pub value: Vec<f64>,
}

impl Credit {
    pub fn zero(n: usize) -> Credit {
        Credit {
            conversions: vec![0.0; n],
            value: vec![0.0; n],
        }
    }

    /// Adds `share` of every touchpoint's `units`.
    fn add_share(&mut self, units: &[Units], share: f64) {
        for (touchpoint, units) in units.iter().enumerate() {
            self.conversions[touchpoint] += share * units.conversions as f64;
            self.value[touchpoint] += share * units.value as f64 / VALUE_UNIT;
        }
    }
}

/// The four rule-based models at once.
#[derive(Debug, Clone, PartialEq)]
pub struct Heuristics {
    pub first: Credit,
    pub last: Credit,
    /// Every touch of a path an equal share (a touchpoint touched twice gets two shares).
    pub linear: Credit,
    /// 40 % to the first touch, 40 % to the last, 20 % shared by those between (one touch: all of it; two: half
    /// each).
    pub position: Credit,
}

/// Whole conversions and value (in millionths) summed for one touchpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Units {
    pub conversions: u64,
    pub value: i128,
}

impl Units {
    fn add(&mut self, outcome: &PathOutcome) {
        self.conversions += outcome.conversions;
        self.value += outcome.value;
    }

    fn merge(into: &mut [Units], from: &[Units]) {
        for (into, from) in into.iter_mut().zip(from) {
            into.conversions += from.conversions;
            into.value += from.value;
        }
    }
}

/// What the rule-based models need from the converting paths, as integer sums per touchpoint.
#[derive(Debug, Clone, Default)]
pub struct HeuristicSums {
    n: usize,
    /// Each converting path's first touch, and its last.
    first: Vec<Units>,
    last: Vec<Units>,
    /// Paths of one touch.
    single: Vec<Units>,
    /// The first and the last touch of paths of three touches or more (each 40 %).
    ends: Vec<Units>,
    /// Per path length: every touch (linear: `1/length` each; position-based for two touches: half each).
    touches: FxHashMap<usize, Vec<Units>>,
    /// Per path length (≥ 3): the touches between the first and the last (position-based: `20 % / (length − 2)`).
    middle: FxHashMap<usize, Vec<Units>>,
}

impl HeuristicSums {
    pub fn new(n_touchpoints: usize) -> HeuristicSums {
        let zero = vec![Units::default(); n_touchpoints];
        HeuristicSums {
            n: n_touchpoints,
            first: zero.clone(),
            last: zero.clone(),
            single: zero.clone(),
            ends: zero,
            ..HeuristicSums::default()
        }
    }

    /// Adds a path (touchpoint codes below `n_touchpoints`) and what followed it; paths that did not convert
    /// credit nothing.
    pub fn add(&mut self, path: &[u32], outcome: &PathOutcome) {
        if outcome.conversions == 0 || path.is_empty() {
            return;
        }
        let (first, last) = (path[0] as usize, path[path.len() - 1] as usize);
        self.first[first].add(outcome);
        self.last[last].add(outcome);
        let n = self.n;
        let touches = self
            .touches
            .entry(path.len())
            .or_insert_with(|| vec![Units::default(); n]);
        for touch in path {
            touches[*touch as usize].add(outcome);
        }
        match path.len() {
            1 => self.single[first].add(outcome),
            2 => {}
            len => {
                self.ends[first].add(outcome);
                self.ends[last].add(outcome);
                let middle = self
                    .middle
                    .entry(len)
                    .or_insert_with(|| vec![Units::default(); n]);
                for touch in &path[1..len - 1] {
                    middle[*touch as usize].add(outcome);
                }
            }
        }
    }

    pub fn merge(&mut self, other: HeuristicSums) {
        Units::merge(&mut self.first, &other.first);
        Units::merge(&mut self.last, &other.last);
        Units::merge(&mut self.single, &other.single);
        Units::merge(&mut self.ends, &other.ends);
        for (into, from) in [
            (&mut self.touches, other.touches),
            (&mut self.middle, other.middle),
        ] {
            for (len, units) in from {
                match into.get_mut(&len) {
                    Some(sums) => Units::merge(sums, &units),
                    None => {
                        into.insert(len, units);
                    }
                }
            }
        }
    }

    /// The four models' credit.
    pub fn finish(&self) -> Heuristics {
        let n = self.n;
        let by_length = |sums: &FxHashMap<usize, Vec<Units>>| {
            let mut lengths: Vec<usize> = sums.keys().copied().collect();
            lengths.sort_unstable();
            lengths
        };
        let mut first = Credit::zero(n);
        first.add_share(&self.first, 1.0);
        let mut last = Credit::zero(n);
        last.add_share(&self.last, 1.0);
        let mut linear = Credit::zero(n);
        for len in by_length(&self.touches) {
            linear.add_share(&self.touches[&len], 1.0 / len as f64);
        }
        let mut position = Credit::zero(n);
        position.add_share(&self.single, 1.0);
        if let Some(two) = self.touches.get(&2) {
            position.add_share(two, 0.5);
        }
        position.add_share(&self.ends, 0.4);
        for len in by_length(&self.middle) {
            position.add_share(&self.middle[&len], 0.2 / (len - 2) as f64);
        }
        Heuristics {
            first,
            last,
            linear,
            position,
        }
    }
}

/// The rule-based models over `table`'s converting paths.
pub fn heuristics(table: &PathTable) -> Heuristics {
    let mut sums = HeuristicSums::new(table.touchpoints.len());
    for (path, outcome) in &table.paths {
        sums.add(path, outcome);
    }
    sums.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_model_credits_as_defined() {
        let table = PathTable::parse_channelattribution(
            "path;total_conversions;total_conversion_value;total_null\na > b > c > a;2;8;1\nb;1;1;0\n",
        )
        .unwrap();
        let models = heuristics(&table);
        // Codes: a 0, b 1, c 2.
        assert_eq!(models.first.conversions, [2.0, 1.0, 0.0]);
        assert_eq!(models.last.conversions, [2.0, 1.0, 0.0]);
        assert_eq!(models.linear.conversions, [1.0, 1.5, 0.5]);
        assert_eq!(models.linear.value, [4.0, 3.0, 2.0]);
        // a: 0.4 + 0.4 of 2; b: 0.1 of 2 + 1; c: 0.1 of 2.
        let position = &models.position.conversions;
        assert!((position[0] - 1.6).abs() < 1e-12);
        assert!((position[1] - 1.2).abs() < 1e-12);
        assert!((position[2] - 0.2).abs() < 1e-12);
    }
}
