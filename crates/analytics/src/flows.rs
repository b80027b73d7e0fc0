//! Flows: where customers go after an anchor step (or how they got to one), as a Sankey of levels. Each customer
//! is counted once, from the first time they hit the anchor (forward) or the last (backward); at every level the
//! `top` steps are shown and the rest summed as `(other)`, and a customer whose journey ends goes to an explicit
//! drop-off node. So at every node, customers in = customers on to the next level + drop-off.

use crate::condition::{Compiled, Condition};
use crate::error::AnalyticsError;
use crate::Analysis;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use waymark_model::{JourneyRef, JourneySet};

/// Which way the flow runs from the anchor.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// What customers did after the anchor.
    #[default]
    Forward,
    /// What customers did before the anchor (levels count back from it).
    Backward,
}

/// A flows query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Flows {
    pub anchor: Condition,
    #[serde(default)]
    pub direction: Direction,
    /// Levels after (or before) the anchor.
    pub depth: usize,
    /// Steps shown per level; the rest are `(other)`.
    pub top: usize,
    /// Treat a step repeated back to back as one.
    #[serde(default)]
    pub collapse_repeats: bool,
}

/// Codes used for the synthetic nodes.
const DROP_OFF: u32 = u32::MAX;

/// Partial flows: customers per (level, step) and links per (level, from, to), with raw step codes; the top-k
/// grouping happens in `finish`, so merging stays exact.
#[derive(Debug, Clone, Default)]
pub struct FlowsState {
    customers: u64,
    nodes: FxHashMap<(u32, u32), u64>,
    links: FxHashMap<(u32, u32, u32), u64>,
}

/// A prepared flows query bound to one journey set.
pub struct PreparedFlows<'f> {
    flows: &'f Flows,
    anchor: Compiled,
    warnings: Vec<String>,
}

impl Flows {
    pub fn prepare<'f>(
        &'f self,
        journeys: &JourneySet,
    ) -> Result<PreparedFlows<'f>, AnalyticsError> {
        if self.depth == 0 || self.depth > 20 {
            return Err(AnalyticsError::field(
                "depth",
                format!("depth must be between 1 and 20 levels; got {}", self.depth),
            ));
        }
        if self.top == 0 {
            return Err(AnalyticsError::field(
                "top",
                "top must be at least 1 step per level",
            ));
        }
        let anchor = self.anchor.compile(journeys)?;
        Ok(PreparedFlows {
            flows: self,
            warnings: self
                .anchor
                .unmatched(&anchor, journeys, "The anchor")
                .into_iter()
                .collect(),
            anchor,
        })
    }

    /// The property columns the anchor reads.
    pub fn properties(&self) -> Vec<String> {
        let mut names = Vec::new();
        self.anchor.properties(&mut names);
        names
    }
}

impl Analysis for PreparedFlows<'_> {
    type State = FlowsState;
    type Report = FlowsReport;

    fn new_state(&self, _journeys: &JourneySet) -> FlowsState {
        FlowsState::default()
    }

    fn update(&self, state: &mut FlowsState, journey: JourneyRef<'_>) {
        let set = journey.set;
        let n = journey.len();
        let found = match self.flows.direction {
            Direction::Forward => (0..n).find(|i| self.anchor.matches(set, journey.start + i)),
            Direction::Backward => (0..n)
                .rev()
                .find(|i| self.anchor.matches(set, journey.start + i)),
        };
        let Some(at) = found else {
            return;
        };
        state.customers += 1;
        let mut previous = journey.step[at];
        *state.nodes.entry((0, previous)).or_default() += 1;
        let mut level = 0u32;
        let mut position = at;
        while (level as usize) < self.flows.depth {
            // The next (or previous) event, skipping back-to-back repeats when asked.
            let next = loop {
                let candidate = match self.flows.direction {
                    Direction::Forward => position.checked_add(1).filter(|p| *p < n),
                    Direction::Backward => position.checked_sub(1),
                };
                match candidate {
                    Some(p)
                        if self.flows.collapse_repeats
                            && journey.step[p] == journey.step[position] =>
                    {
                        position = p
                    }
                    other => break other,
                }
            };
            let step = match next {
                Some(p) => {
                    position = p;
                    journey.step[p]
                }
                None => DROP_OFF,
            };
            *state.links.entry((level, previous, step)).or_default() += 1;
            level += 1;
            *state.nodes.entry((level, step)).or_default() += 1;
            if step == DROP_OFF {
                break;
            }
            previous = step;
        }
    }

    fn merge(&self, state: &mut FlowsState, other: FlowsState) {
        state.customers += other.customers;
        for (key, count) in other.nodes {
            *state.nodes.entry(key).or_default() += count;
        }
        for (key, count) in other.links {
            *state.links.entry(key).or_default() += count;
        }
    }

    fn finish(
        &self,
        state: FlowsState,
        journeys: &JourneySet,
        _runner: &crate::Runner,
    ) -> FlowsReport {
        // Per level, the steps shown: the `top` most frequent (ties by name); everything else is (other).
        let mut shown: FxHashMap<u32, Vec<u32>> = FxHashMap::default();
        let mut by_level: FxHashMap<u32, Vec<(u32, u64)>> = FxHashMap::default();
        for ((level, step), count) in &state.nodes {
            if *step != DROP_OFF {
                by_level.entry(*level).or_default().push((*step, *count));
            }
        }
        for (level, mut steps) in by_level {
            steps.sort_by(|a, b| {
                b.1.cmp(&a.1).then_with(|| {
                    journeys.step_names[a.0 as usize].cmp(&journeys.step_names[b.0 as usize])
                })
            });
            shown.insert(
                level,
                steps
                    .iter()
                    .take(self.flows.top)
                    .map(|(step, _)| *step)
                    .collect(),
            );
        }
        let label = |level: u32, step: u32| -> (String, NodeKind) {
            if step == DROP_OFF {
                let text = match self.flows.direction {
                    Direction::Forward => "(journey ended)",
                    Direction::Backward => "(journey start)",
                };
                (text.to_string(), NodeKind::DropOff)
            } else if shown.get(&level).is_some_and(|steps| steps.contains(&step)) {
                (journeys.step_names[step as usize].clone(), NodeKind::Step)
            } else {
                ("(other)".to_string(), NodeKind::Other)
            }
        };
        let mut nodes: FxHashMap<(u32, String), (NodeKind, u64)> = FxHashMap::default();
        for ((level, step), count) in &state.nodes {
            let (name, kind) = label(*level, *step);
            nodes.entry((*level, name)).or_insert((kind, 0)).1 += count;
        }
        let mut links: FxHashMap<(u32, String, String), u64> = FxHashMap::default();
        for ((level, from, to), count) in &state.links {
            let from = label(*level, *from).0;
            let to = label(level + 1, *to).0;
            *links.entry((*level, from, to)).or_default() += count;
        }
        let id = |level: u32, name: &str| format!("{level}:{name}");
        let mut node_list: Vec<FlowNode> = nodes
            .into_iter()
            .map(|((level, name), (kind, count))| FlowNode {
                id: id(level, &name),
                level,
                step: name,
                kind,
                count,
            })
            .collect();
        node_list.sort_by(|a, b| {
            a.level
                .cmp(&b.level)
                .then(a.kind.cmp(&b.kind))
                .then(b.count.cmp(&a.count))
                .then_with(|| a.step.cmp(&b.step))
        });
        let mut link_list: Vec<FlowLink> = links
            .into_iter()
            .map(|((level, from, to), count)| FlowLink {
                source: id(level, &from),
                target: id(level + 1, &to),
                level,
                count,
            })
            .collect();
        link_list.sort_by(|a, b| {
            a.level
                .cmp(&b.level)
                .then(b.count.cmp(&a.count))
                .then_with(|| a.source.cmp(&b.source))
                .then_with(|| a.target.cmp(&b.target))
        });
        FlowsReport {
            direction: self.flows.direction,
            depth: self.flows.depth,
            customers: state.customers,
            nodes: node_list,
            links: link_list,
            warnings: self.warnings.clone(),
        }
    }
}

/// What a node stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NodeKind {
    Step,
    Other,
    DropOff,
}

/// One Sankey node: customers at `step` on `level` (0 is the anchor).
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct FlowNode {
    /// `level:step`.
    pub id: String,
    pub level: u32,
    pub step: String,
    pub kind: NodeKind,
    pub count: u64,
}

/// Customers going from `source` (on `level`) to `target` (on the next level).
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct FlowLink {
    pub source: String,
    pub target: String,
    pub level: u32,
    pub count: u64,
}

/// JSON `{"direction", "depth", "customers", "nodes", "links"}`.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct FlowsReport {
    pub direction: Direction,
    pub depth: usize,
    /// Customers who hit the anchor.
    pub customers: u64,
    pub nodes: Vec<FlowNode>,
    pub links: Vec<FlowLink>,
    /// What to check in the query: an anchor named like no step in the data.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl FlowsReport {
    /// Checks that customers reconcile: each level's nodes hold every customer still in the flow, and each
    /// non-final node's customers all leave it by a link (drop-off included). Returns the first violation.
    pub fn reconcile(&self) -> Result<(), String> {
        let mut outflow: FxHashMap<&str, u64> = FxHashMap::default();
        let mut inflow: FxHashMap<&str, u64> = FxHashMap::default();
        for link in &self.links {
            *outflow.entry(&link.source).or_default() += link.count;
            *inflow.entry(&link.target).or_default() += link.count;
        }
        let mut remaining = self.customers;
        for level in 0..=self.depth as u32 {
            let nodes: Vec<&FlowNode> = self
                .nodes
                .iter()
                .filter(|node| node.level == level)
                .collect();
            let total: u64 = nodes.iter().map(|node| node.count).sum();
            if total != remaining {
                return Err(format!(
                    "level {level} holds {total} customers, expected {remaining}"
                ));
            }
            for node in &nodes {
                if level > 0 && inflow.get(node.id.as_str()).copied().unwrap_or(0) != node.count {
                    return Err(format!("{} inflow differs from its count", node.id));
                }
                let out = outflow.get(node.id.as_str()).copied().unwrap_or(0);
                let expected = if node.kind == NodeKind::DropOff || level as usize == self.depth {
                    0
                } else {
                    node.count
                };
                if out != expected {
                    return Err(format!("{}: {} in, {out} out", node.id, node.count));
                }
            }
            remaining -= nodes
                .iter()
                .filter(|node| node.kind == NodeKind::DropOff)
                .map(|node| node.count)
                .sum::<u64>();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run;

    fn flows(direction: Direction, depth: usize, top: usize) -> Flows {
        Flows {
            anchor: Condition::step("login"),
            direction,
            depth,
            top,
            collapse_repeats: false,
        }
    }

    #[test]
    fn forward_flows_reconcile_with_drop_off_and_other() {
        let journeys = JourneySet::from_journeys([
            (
                "a".to_string(),
                vec![(0, "view", "web"), (1, "login", "web"), (2, "buy", "web")],
            ),
            (
                "b".to_string(),
                vec![(0, "login", "web"), (1, "fail", "web"), (2, "login", "web")],
            ),
            (
                "c".to_string(),
                vec![(0, "login", "web"), (1, "buy", "web"), (2, "help", "web")],
            ),
            ("d".to_string(), vec![(0, "view", "web")]),
            (
                "e".to_string(),
                vec![(0, "login", "web"), (1, "call", "web")],
            ),
        ]);
        let query = flows(Direction::Forward, 2, 1);
        let report = run(&query.prepare(&journeys).unwrap(), &journeys, 2);
        assert_eq!(report.customers, 4);
        assert!(report.warnings.is_empty());
        report.reconcile().unwrap();
        // An anchor named like no step is pointed out (the flows are then empty).
        let typo = Flows {
            anchor: Condition::step("Login"),
            ..query.clone()
        };
        let empty = run(&typo.prepare(&journeys).unwrap(), &journeys, 2);
        assert_eq!(empty.customers, 0);
        assert_eq!(
            empty.warnings,
            ["The anchor \"Login\" matches no step in the data (names are matched exactly, `*` as a wildcard); did you mean \"login\"?"]
        );
        let node = |id: &str| {
            report
                .nodes
                .iter()
                .find(|node| node.id == id)
                .map(|node| node.count)
        };
        assert_eq!(node("0:login"), Some(4));
        assert_eq!(node("1:buy"), Some(2));
        assert_eq!(node("1:(other)"), Some(2), "fail and call are folded");
        assert_eq!(
            node("2:(journey ended)"),
            Some(2),
            "a after buy, e after call"
        );
        assert_eq!(node("2:help"), Some(1));
        assert_eq!(node("2:(other)"), Some(1), "b's second login");
    }

    #[test]
    fn backward_flows_count_from_the_last_anchor() {
        let journeys = JourneySet::from_journeys([
            (
                "a".to_string(),
                vec![(0, "view", "web"), (1, "login", "web")],
            ),
            (
                "b".to_string(),
                vec![
                    (0, "login", "web"),
                    (1, "fail", "web"),
                    (2, "fail", "web"),
                    (3, "login", "web"),
                ],
            ),
        ]);
        let mut query = flows(Direction::Backward, 2, 5);
        query.collapse_repeats = true;
        let report = run(&query.prepare(&journeys).unwrap(), &journeys, 1);
        report.reconcile().unwrap();
        let links: Vec<(&str, &str, u64)> = report
            .links
            .iter()
            .map(|link| (link.source.as_str(), link.target.as_str(), link.count))
            .collect();
        assert!(links.contains(&("0:login", "1:fail", 1)));
        assert!(
            links.contains(&("1:fail", "2:login", 1)),
            "the repeated fail is one step"
        );
        assert!(links.contains(&("1:view", "2:(journey start)", 1)));
    }
}
