//! A blueprint as a Petri net, and token-based replay of a journey on it — the fitness measure of the process-mining
//! literature (Rozinat and van der Aalst, 2008) as pm4py computes it: a journey starts with one token in the
//! source place (produced); each event fires its step's transition, consuming a token from every input place (a
//! missing token is added and counted when a place is empty) and producing one in every output place; at the end
//! the token in the sink is consumed (missing if absent) and every token left is remaining.
//! `fitness = ½(1 − missing/consumed) + ½(1 − remaining/produced)`; a journey fits when nothing is missing or left.
//! Events whose step is not in the design fire nothing (pm4py: activities not in the model). Invisible
//! transitions (a stage's split and join for steps in any order, an optional step's skip) fire when a visible one
//! needs them: the shortest sequence of invisible firings that enables it, found by a breadth-first search over
//! markings (the net is acyclic in its invisible part, so the search is finite), and again at the end to reach the
//! sink. pm4py walks invisible transitions by shortest paths between places instead; on nets without invisible
//! transitions the two are the same computation.

use schemars::JsonSchema;
use serde::Serialize;
use std::collections::{HashSet, VecDeque};

/// One transition: `label` is the design step it fires for (`None`: invisible), with its input and output places.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct NetTransition {
    pub name: String,
    /// The step pattern it fires for; absent for an invisible transition.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    pub inputs: Vec<usize>,
    pub outputs: Vec<usize>,
}

/// A workflow net: one source place (the initial marking's token) and one sink (the final marking's).
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct PetriNet {
    pub places: Vec<String>,
    pub transitions: Vec<NetTransition>,
    pub source: usize,
    pub sink: usize,
}

/// Token counts of one replay; they add up over journeys into the log's fitness.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize, JsonSchema)]
pub struct Tokens {
    pub produced: u64,
    pub consumed: u64,
    pub missing: u64,
    pub remaining: u64,
}

impl Tokens {
    pub fn add(&mut self, other: Tokens) {
        self.produced += other.produced;
        self.consumed += other.consumed;
        self.missing += other.missing;
        self.remaining += other.remaining;
    }

    /// `½(1 − m/c) + ½(1 − r/p)`; 1 when nothing was consumed or produced.
    pub fn fitness(&self) -> f64 {
        if self.consumed == 0 || self.produced == 0 {
            return 1.0;
        }
        0.5 * (1.0 - self.missing as f64 / self.consumed as f64)
            + 0.5 * (1.0 - self.remaining as f64 / self.produced as f64)
    }

    pub fn fits(&self) -> bool {
        self.missing == 0 && self.remaining == 0
    }
}

/// Markings explored per search for invisible firings; block-structured blueprints need a handful.
const SEARCH_LIMIT: usize = 4096;

impl PetriNet {
    fn enabled(&self, marking: &[u32], transition: usize) -> bool {
        self.transitions[transition]
            .inputs
            .iter()
            .all(|place| marking[*place] > 0)
    }

    /// Fires `transition`, adding a token to each empty input place first (counted as missing).
    fn fire(&self, marking: &mut [u32], transition: usize, tokens: &mut Tokens) {
        let t = &self.transitions[transition];
        for place in &t.inputs {
            if marking[*place] == 0 {
                tokens.missing += 1;
            } else {
                marking[*place] -= 1;
            }
            tokens.consumed += 1;
        }
        for place in &t.outputs {
            marking[*place] += 1;
            tokens.produced += 1;
        }
    }

    /// The shortest sequence of invisible firings from `marking` after which `goal` holds.
    fn invisible_path(&self, marking: &[u32], goal: impl Fn(&[u32]) -> bool) -> Option<Vec<usize>> {
        if goal(marking) {
            return Some(Vec::new());
        }
        let invisible: Vec<usize> = (0..self.transitions.len())
            .filter(|t| self.transitions[*t].label.is_none())
            .collect();
        if invisible.is_empty() {
            return None;
        }
        let mut seen: HashSet<Vec<u32>> = HashSet::from([marking.to_vec()]);
        let mut queue: VecDeque<(Vec<u32>, Vec<usize>)> =
            VecDeque::from([(marking.to_vec(), Vec::new())]);
        while let Some((current, path)) = queue.pop_front() {
            for &t in &invisible {
                if !self.enabled(&current, t) {
                    continue;
                }
                let mut next = current.clone();
                self.fire(&mut next, t, &mut Tokens::default());
                if !seen.insert(next.clone()) {
                    continue;
                }
                let mut longer = path.clone();
                longer.push(t);
                if goal(&next) {
                    return Some(longer);
                }
                if seen.len() >= SEARCH_LIMIT {
                    return None;
                }
                queue.push_back((next, longer));
            }
        }
        None
    }

    /// A replay in progress: the marking and the token counts so far.
    pub fn start(&self) -> Replay {
        let mut marking = vec![0; self.places.len()];
        marking[self.source] = 1;
        Replay {
            marking,
            tokens: Tokens {
                produced: 1,
                ..Tokens::default()
            },
        }
    }

    /// Fires one of `candidates` (the transitions labelled with the event's step): the first enabled, else the
    /// first that invisible firings enable (the shortest such path), else the first, with missing tokens. Returns
    /// whether it fired without missing tokens.
    pub fn step(&self, replay: &mut Replay, candidates: &[usize]) -> bool {
        if let Some(&t) = candidates
            .iter()
            .find(|t| self.enabled(&replay.marking, **t))
        {
            self.fire(&mut replay.marking, t, &mut replay.tokens);
            return true;
        }
        let mut best: Option<(usize, Vec<usize>)> = None;
        for &t in candidates {
            if let Some(path) = self.invisible_path(&replay.marking, |m| self.enabled(m, t)) {
                if best.as_ref().is_none_or(|(_, p)| path.len() < p.len()) {
                    best = Some((t, path));
                }
            }
        }
        if let Some((t, path)) = best {
            for hidden in path {
                self.fire(&mut replay.marking, hidden, &mut replay.tokens);
            }
            self.fire(&mut replay.marking, t, &mut replay.tokens);
            return true;
        }
        if let Some(&t) = candidates.first() {
            self.fire(&mut replay.marking, t, &mut replay.tokens);
        }
        false
    }

    /// Ends the replay: invisible firings toward the final marking (one token in the sink, nothing else; failing
    /// that, as pm4py does, a marking with the sink's token whatever else is left), the sink's token consumed,
    /// the rest counted as remaining.
    pub fn finish(&self, mut replay: Replay) -> Tokens {
        let sink = self.sink;
        let is_final = |m: &[u32]| {
            m.iter()
                .enumerate()
                .all(|(place, count)| *count == u32::from(place == sink))
        };
        let path = self
            .invisible_path(&replay.marking, is_final)
            .or_else(|| self.invisible_path(&replay.marking, |m: &[u32]| m[sink] > 0));
        if let Some(path) = path {
            for hidden in path {
                self.fire(&mut replay.marking, hidden, &mut replay.tokens);
            }
        }
        replay.tokens.consumed += 1;
        if replay.marking[sink] == 0 {
            replay.tokens.missing += 1;
        } else {
            replay.marking[sink] -= 1;
        }
        replay.tokens.remaining = replay.marking.iter().map(|count| *count as u64).sum();
        replay.tokens
    }
}

/// The state of one journey's replay.
#[derive(Debug, Clone)]
pub struct Replay {
    marking: Vec<u32>,
    tokens: Tokens,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// source → a → p1 → b → sink, with c as an alternative to b.
    fn sequence() -> PetriNet {
        let t = |name: &str, inputs: Vec<usize>, outputs: Vec<usize>| NetTransition {
            name: name.into(),
            label: Some(name.into()),
            inputs,
            outputs,
        };
        PetriNet {
            places: vec!["source".into(), "p1".into(), "sink".into()],
            transitions: vec![
                t("a", vec![0], vec![1]),
                t("b", vec![1], vec![2]),
                t("c", vec![1], vec![2]),
            ],
            source: 0,
            sink: 2,
        }
    }

    fn replay(net: &PetriNet, trace: &[usize]) -> Tokens {
        let mut replay = net.start();
        for t in trace {
            net.step(&mut replay, &[*t]);
        }
        net.finish(replay)
    }

    #[test]
    fn a_fitting_trace_has_nothing_missing_or_left() {
        let net = sequence();
        let tokens = replay(&net, &[0, 1]);
        assert_eq!(
            tokens,
            Tokens {
                produced: 3,
                consumed: 3,
                missing: 0,
                remaining: 0
            }
        );
        assert!(tokens.fits());
        assert_eq!(tokens.fitness(), 1.0);
    }

    #[test]
    fn a_skipped_step_misses_a_token_and_leaves_one() {
        let net = sequence();
        // b without a: b's input p1 is empty (missing 1); the source token is never consumed (remaining 1).
        let tokens = replay(&net, &[1]);
        assert_eq!(
            tokens,
            Tokens {
                produced: 2,
                consumed: 2,
                missing: 1,
                remaining: 1
            }
        );
        assert!((tokens.fitness() - 0.5).abs() < 1e-12);
        // a journey that stopped after a: the sink's token is missing and p1's remains.
        let stopped = replay(&net, &[0]);
        assert_eq!((stopped.missing, stopped.remaining), (1, 1));
    }

    #[test]
    fn invisible_transitions_fire_when_a_visible_one_needs_them() {
        // source → split → (p1 → a → p2) ∥ (p3 → b → p4) → join → sink
        let visible = |name: &str, i: usize, o: usize| NetTransition {
            name: name.into(),
            label: Some(name.into()),
            inputs: vec![i],
            outputs: vec![o],
        };
        let net = PetriNet {
            places: (0..6).map(|p| format!("p{p}")).collect(),
            transitions: vec![
                NetTransition {
                    name: "split".into(),
                    label: None,
                    inputs: vec![0],
                    outputs: vec![1, 3],
                },
                visible("a", 1, 2),
                visible("b", 3, 4),
                NetTransition {
                    name: "join".into(),
                    label: None,
                    inputs: vec![2, 4],
                    outputs: vec![5],
                },
            ],
            source: 0,
            sink: 5,
        };
        for order in [[1, 2], [2, 1]] {
            let tokens = replay(&net, &order);
            assert!(tokens.fits(), "{order:?}: {tokens:?}");
            assert_eq!((tokens.produced, tokens.consumed), (6, 6));
        }
        let half = replay(&net, &[1]);
        assert!(!half.fits());
    }
}
