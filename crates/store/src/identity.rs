//! The identity graph: which identifiers are one customer, why, and how to undo it.
//!
//! Identifiers are interned to `u32`. Each customer is a connected component of merge edges; `customer_of[id]`
//! gives the component's root in O(1) and `members[root]` its identifiers, kept by relabelling the smaller side on
//! every union. Every edge keeps its provenance (the event that caused it, when, whether it was forced).
//! Guards: two components that each hold a `userId` are never merged silently (a warning is recorded and the event
//! is stored under its own identifier); pairs that were unmerged stay apart unless a merge is forced.

use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use waymark_model::Timestamp;

/// Why an edge exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EdgeReason {
    /// An event carried both a `userId` and an `anonymousId`.
    Identify,
    /// An `alias` call: an explicit statement that two ids are one customer.
    Alias,
    /// An operator forced the merge.
    Manual,
}

/// One merge edge with its provenance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MergeEdge {
    pub id: u32,
    pub a: String,
    pub b: String,
    pub reason: EdgeReason,
    /// The `messageId` of the event that caused it (empty for manual merges).
    pub message_id: String,
    /// When the merge happened (the event's time, or the operator's).
    pub at: Timestamp,
    /// Whether guards were bypassed.
    pub forced: bool,
    /// Set when the edge was undone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unmerged_at: Option<Timestamp>,
}

impl MergeEdge {
    pub fn is_active(&self) -> bool {
        self.unmerged_at.is_none()
    }
}

/// A merge that the guards refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct IdentityWarning {
    pub a: String,
    pub b: String,
    pub message_id: String,
    pub at: Timestamp,
    pub code: String,
    pub message: String,
}

/// What a link attempt did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkOutcome {
    /// Two customers became one through edge `id`.
    Merged(u32),
    /// The identifiers were already one customer (a new direct edge may have been recorded).
    AlreadyLinked,
    /// A guard refused the merge. The warning is recorded once per identifier pair and reason; `repeated` says
    /// this refusal repeats one already recorded (e.g. every event from a shared device).
    Refused {
        warning: IdentityWarning,
        repeated: bool,
    },
}

/// Persistent form of the graph: everything needed to rebuild it, by identifier key.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct IdentitySnapshot {
    pub identifiers: Vec<String>,
    pub edges: Vec<MergeEdge>,
    pub separated: Vec<(String, String)>,
    pub warnings: Vec<IdentityWarning>,
}

/// Interns strings to dense `u32` codes.
#[derive(Debug, Default, Clone)]
pub struct Interner {
    /// Keyed per process: identifiers come from senders (std's SipHash cost a few % of an import).
    index: HashMap<String, u32, foldhash::fast::RandomState>,
    values: Vec<String>,
}

impl Interner {
    pub fn intern(&mut self, value: &str) -> u32 {
        if let Some(code) = self.index.get(value) {
            return *code;
        }
        let code = self.values.len() as u32;
        self.values.push(value.to_string());
        self.index.insert(value.to_string(), code);
        code
    }
    pub fn get(&self, value: &str) -> Option<u32> {
        self.index.get(value).copied()
    }
    pub fn name(&self, code: u32) -> &str {
        &self.values[code as usize]
    }
    pub fn len(&self) -> usize {
        self.values.len()
    }
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
    pub fn values(&self) -> &[String] {
        &self.values
    }

    /// Gives code `code` the value `value` instead of its own (which is no longer known): how a deleted
    /// identifier's code keeps its place while its text goes.
    pub(crate) fn rename(&mut self, code: u32, value: String) {
        let old = std::mem::replace(&mut self.values[code as usize], value.clone());
        self.index.remove(&old);
        self.index.insert(value, code);
    }
}

/// What a deleted identifier's key becomes (`forgotten:<code>`): it keeps its code, so every other code stays
/// valid, and holds nothing about the person.
pub const FORGOTTEN_PREFIX: &str = "forgotten:";

/// Whether a key is a deleted identifier's stand-in.
pub fn is_forgotten_key(key: &str) -> bool {
    key.starts_with(FORGOTTEN_PREFIX)
}

/// The store's identity rules applied to events one at a time, in arrival order: the customer (display id) each
/// event is filed under at the moment it arrives, whatever merges come later — what a follower reading each event
/// as it comes sees, and so what a replay of the history must see to decide as that follower did. Operators'
/// merges and unmerges are not events and are not followed.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(from = "IdentitySnapshot", into = "IdentitySnapshot")]
pub struct ArrivalIdentity {
    graph: IdentityGraph,
}

impl ArrivalIdentity {
    /// Files `event`: its identity links applied as the store applies them, then its customer's display id.
    pub fn customer_of(&mut self, event: &waymark_model::Event) -> String {
        let links: Vec<(String, String)> = event
            .identity_links()
            .into_iter()
            .map(|(a, b)| (a.key(), b.key()))
            .collect();
        let primary = self.graph.intern(&event.primary_identifier().key());
        self.graph
            .link_event(event.event_type, &links, &event.message_id, event.timestamp);
        self.graph.display_id(self.graph.customer_of(primary))
    }
}

impl ArrivalIdentity {
    /// Deletes identifier keys `keys` (a deleted customer's) from the graph, as the store does.
    pub fn forget(&mut self, keys: &[String]) {
        let ids: Vec<u32> = keys
            .iter()
            .filter_map(|key| self.graph.lookup(key))
            .collect();
        if !ids.is_empty() {
            self.graph.forget(&ids, Timestamp::now());
        }
    }
}

impl From<IdentitySnapshot> for ArrivalIdentity {
    fn from(snapshot: IdentitySnapshot) -> Self {
        ArrivalIdentity {
            graph: IdentityGraph::restore(snapshot),
        }
    }
}

impl From<ArrivalIdentity> for IdentitySnapshot {
    fn from(identity: ArrivalIdentity) -> Self {
        identity.graph.snapshot()
    }
}

/// The identity graph over interned identifier keys (`user:…`, `anon:…`).
#[derive(Debug, Default, Clone)]
pub struct IdentityGraph {
    pub(crate) names: Interner,
    customer_of: Vec<u32>,
    members: Vec<Vec<u32>>,
    n_users: Vec<u32>,
    edges: Vec<MergeEdge>,
    edge_by_pair: HashMap<(u32, u32), u32>,
    separated: HashSet<(u32, u32)>,
    warnings: Vec<IdentityWarning>,
    /// Latest recorded warning per identifier pair, so repeated refusals are not recorded again.
    warning_by_pair: HashMap<(u32, u32), usize>,
    /// Changes whenever an identifier's customer may have changed (a merge, an unmerge, a deletion, a restore):
    /// a journey view built at one generation groups old events the same way at the same generation.
    generation: u64,
    /// Changes when customers may have been split or relabelled (an unmerge, a deletion, a restore: components
    /// rebuilt). Between equal values, customers only ever grow by merges.
    splits: u64,
}

/// Generations are unique in the process, so a restored or rebuilt graph never repeats one.
fn next_generation() -> u64 {
    static GENERATIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    GENERATIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

fn ordered(a: u32, b: u32) -> (u32, u32) {
    if a <= b {
        (a, b)
    } else {
        (b, a)
    }
}

impl IdentityGraph {
    /// Interns an identifier key, creating a singleton customer for a new one.
    pub fn intern(&mut self, key: &str) -> u32 {
        let before = self.names.len();
        let id = self.names.intern(key);
        if id as usize == before {
            self.customer_of.push(id);
            self.members.push(vec![id]);
            self.n_users.push(u32::from(key.starts_with("user:")));
        }
        id
    }

    /// The code of a known identifier key.
    pub fn lookup(&self, key: &str) -> Option<u32> {
        self.names.get(key)
    }

    /// The key of an identifier code.
    pub fn key(&self, id: u32) -> &str {
        self.names.name(id)
    }

    /// Number of identifiers.
    pub fn n_identifiers(&self) -> usize {
        self.names.len()
    }

    /// The customer (component root) of an identifier.
    pub fn customer_of(&self, id: u32) -> u32 {
        self.customer_of[id as usize]
    }

    /// All identifier codes of a customer root.
    pub fn members(&self, root: u32) -> &[u32] {
        &self.members[root as usize]
    }

    /// The number of distinct customers.
    pub fn n_customers(&self) -> usize {
        self.members
            .iter()
            .filter(|members| !members.is_empty())
            .count()
    }

    /// The customer's display id: its smallest `userId`, else its smallest `anonymousId` (stable across restarts).
    pub fn display_id(&self, root: u32) -> String {
        let keys = self.members(root).iter().map(|id| self.key(*id));
        let best = keys
            .clone()
            .filter(|key| key.starts_with("user:"))
            .min()
            .or_else(|| keys.min());
        let key = best.expect("a customer has at least one identifier");
        key.split_once(':')
            .map_or(key, |(_, value)| value)
            .to_string()
    }

    pub fn edges(&self) -> &[MergeEdge] {
        &self.edges
    }

    pub fn warnings(&self) -> &[IdentityWarning] {
        &self.warnings
    }

    /// See the `generation` field: equal generations, equal grouping of the identifiers both know.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// See the `splits` field.
    pub fn splits(&self) -> u64 {
        self.splits
    }

    fn union(&mut self, a: u32, b: u32) {
        let (mut root_a, mut root_b) = (self.customer_of(a), self.customer_of(b));
        if root_a == root_b {
            return;
        }
        self.generation = next_generation();
        if self.members[root_a as usize].len() < self.members[root_b as usize].len() {
            std::mem::swap(&mut root_a, &mut root_b);
        }
        let moved = std::mem::take(&mut self.members[root_b as usize]);
        for id in &moved {
            self.customer_of[*id as usize] = root_a;
        }
        self.members[root_a as usize].extend(moved);
        self.n_users[root_a as usize] += std::mem::take(&mut self.n_users[root_b as usize]);
    }

    fn record_edge(
        &mut self,
        a: u32,
        b: u32,
        reason: EdgeReason,
        message_id: &str,
        at: Timestamp,
        forced: bool,
    ) -> u32 {
        let id = self.edges.len() as u32;
        self.edges.push(MergeEdge {
            id,
            a: self.key(a).to_string(),
            b: self.key(b).to_string(),
            reason,
            message_id: message_id.to_string(),
            at,
            forced,
            unmerged_at: None,
        });
        self.edge_by_pair.insert(ordered(a, b), id);
        id
    }

    /// Applies an event's identity links (keys), as ingest does: an `alias` forces its link, anything else is
    /// subject to the guards. Returns the outcomes in order.
    pub fn link_event(
        &mut self,
        event_type: waymark_model::EventType,
        links: &[(String, String)],
        message_id: &str,
        at: Timestamp,
    ) -> Vec<LinkOutcome> {
        let (reason, forced) = match event_type {
            waymark_model::EventType::Alias => (EdgeReason::Alias, true),
            _ => (EdgeReason::Identify, false),
        };
        links
            .iter()
            .map(|(a, b)| {
                let (a, b) = (self.intern(a), self.intern(b));
                self.link(a, b, reason, message_id, at, forced)
            })
            .collect()
    }

    /// Links two identifiers, subject to the guards unless `forced`.
    pub fn link(
        &mut self,
        a: u32,
        b: u32,
        reason: EdgeReason,
        message_id: &str,
        at: Timestamp,
        forced: bool,
    ) -> LinkOutcome {
        if a == b {
            return LinkOutcome::AlreadyLinked;
        }
        let pair = ordered(a, b);
        let has_direct_edge = self
            .edge_by_pair
            .get(&pair)
            .is_some_and(|edge| self.edges[*edge as usize].is_active());
        let (root_a, root_b) = (self.customer_of(a), self.customer_of(b));
        if root_a == root_b {
            if !has_direct_edge && !self.separated.contains(&pair) {
                self.record_edge(a, b, reason, message_id, at, forced);
            }
            return LinkOutcome::AlreadyLinked;
        }
        let refusal = if forced {
            None
        } else if self.separated.contains(&pair) {
            Some((
                "previously_unmerged",
                format!("{} and {} were unmerged by an operator; not merging them again (force a merge to override)", self.key(a), self.key(b)),
            ))
        } else if self.n_users[root_a as usize] > 0 && self.n_users[root_b as usize] > 0 {
            Some((
                "both_identified",
                format!(
                    "{} and {} belong to two different identified customers ({} and {}); not merging silently (use alias or force a merge if they are one person)",
                    self.key(a),
                    self.key(b),
                    self.display_id(root_a),
                    self.display_id(root_b)
                ),
            ))
        } else {
            None
        };
        if let Some((code, message)) = refusal {
            if let Some(previous) = self
                .warning_by_pair
                .get(&pair)
                .map(|index| &self.warnings[*index])
            {
                if previous.code == code {
                    return LinkOutcome::Refused {
                        warning: previous.clone(),
                        repeated: true,
                    };
                }
            }
            let warning = IdentityWarning {
                a: self.key(a).to_string(),
                b: self.key(b).to_string(),
                message_id: message_id.to_string(),
                at,
                code: code.to_string(),
                message,
            };
            self.warning_by_pair.insert(pair, self.warnings.len());
            self.warnings.push(warning.clone());
            return LinkOutcome::Refused {
                warning,
                repeated: false,
            };
        }
        if forced {
            self.separated.remove(&pair);
        }
        let edge = self.record_edge(a, b, reason, message_id, at, forced);
        self.union(a, b);
        LinkOutcome::Merged(edge)
    }

    /// Undoes edge `edge_id`: the pair is kept apart from then on, and customers are recomputed from the edges
    /// still active. Returns false when the edge does not exist or was already undone.
    pub fn unmerge(&mut self, edge_id: u32, at: Timestamp) -> bool {
        let Some(edge) = self.edges.get_mut(edge_id as usize) else {
            return false;
        };
        if !edge.is_active() {
            return false;
        }
        edge.unmerged_at = Some(at);
        let (a, b) = (edge.a.clone(), edge.b.clone());
        let pair = ordered(
            self.names.get(&a).expect("edge ends are interned"),
            self.names.get(&b).expect("interned"),
        );
        self.separated.insert(pair);
        self.edge_by_pair.remove(&pair);
        self.rebuild_components();
        true
    }

    /// Deletes identifiers `ids` (codes) from the graph: each keeps its code under a `forgotten:` stand-in that
    /// belongs to no customer, the edges touching them keep their ids but lose their ends' keys and their cause
    /// and are no longer active, and the warnings and separations that name them are dropped. The customers of
    /// every other identifier are recomputed and stay what they were (a deleted customer is a whole component).
    pub(crate) fn forget(&mut self, ids: &[u32], at: Timestamp) {
        let keys: HashMap<String, String> = ids
            .iter()
            .map(|id| (self.key(*id).to_string(), format!("{FORGOTTEN_PREFIX}{id}")))
            .collect();
        let gone = |key: &str| keys.contains_key(key);
        for edge in &mut self.edges {
            if gone(&edge.a) || gone(&edge.b) {
                for end in [&mut edge.a, &mut edge.b] {
                    if let Some(stand_in) = keys.get(end.as_str()) {
                        *end = stand_in.clone();
                    }
                }
                edge.message_id.clear();
                if edge.unmerged_at.is_none() {
                    edge.unmerged_at = Some(at);
                }
            }
        }
        let id_set: HashSet<u32> = ids.iter().copied().collect();
        self.edge_by_pair
            .retain(|(a, b), _| !id_set.contains(a) && !id_set.contains(b));
        self.separated
            .retain(|(a, b)| !id_set.contains(a) && !id_set.contains(b));
        self.warnings
            .retain(|warning| !gone(&warning.a) && !gone(&warning.b));
        self.warning_by_pair.clear();
        for (index, warning) in self.warnings.iter().enumerate() {
            let (Some(a), Some(b)) = (self.names.get(&warning.a), self.names.get(&warning.b))
            else {
                continue;
            };
            self.warning_by_pair.insert(ordered(a, b), index);
        }
        for id in ids {
            self.names.rename(*id, format!("{FORGOTTEN_PREFIX}{id}"));
        }
        self.rebuild_components();
    }

    fn rebuild_components(&mut self) {
        self.splits = next_generation();
        let n = self.names.len();
        self.customer_of = (0..n as u32).collect();
        // A deleted identifier's stand-in belongs to no customer.
        self.members = (0..n as u32)
            .map(|id| {
                if is_forgotten_key(self.names.name(id)) {
                    Vec::new()
                } else {
                    vec![id]
                }
            })
            .collect();
        self.n_users = (0..n)
            .map(|id| u32::from(self.names.values()[id].starts_with("user:")))
            .collect();
        let active: Vec<(u32, u32)> = self
            .edges
            .iter()
            .filter(|edge| edge.is_active())
            .map(|edge| {
                (
                    self.names.get(&edge.a).expect("interned"),
                    self.names.get(&edge.b).expect("interned"),
                )
            })
            .collect();
        for (a, b) in active {
            self.union(a, b);
        }
    }

    pub(crate) fn snapshot(&self) -> IdentitySnapshot {
        IdentitySnapshot {
            identifiers: self.names.values().to_vec(),
            edges: self.edges.clone(),
            separated: self
                .separated
                .iter()
                .map(|(a, b)| (self.key(*a).to_string(), self.key(*b).to_string()))
                .collect(),
            warnings: self.warnings.clone(),
        }
    }

    pub(crate) fn restore(snapshot: IdentitySnapshot) -> IdentityGraph {
        let mut graph = IdentityGraph::default();
        for key in &snapshot.identifiers {
            graph.intern(key);
        }
        for edge in &snapshot.edges {
            let (a, b) = (graph.intern(&edge.a), graph.intern(&edge.b));
            if edge.is_active() {
                graph.edge_by_pair.insert(ordered(a, b), edge.id);
            }
        }
        graph.edges = snapshot.edges;
        for (a, b) in &snapshot.separated {
            let pair = ordered(graph.intern(a), graph.intern(b));
            graph.separated.insert(pair);
        }
        for (index, warning) in snapshot.warnings.iter().enumerate() {
            let pair = ordered(graph.intern(&warning.a), graph.intern(&warning.b));
            graph.warning_by_pair.insert(pair, index);
        }
        graph.warnings = snapshot.warnings;
        graph.rebuild_components();
        graph
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> Timestamp {
        Timestamp(1)
    }

    #[test]
    fn arrival_identity_files_each_event_as_it_came_and_survives_a_snapshot() {
        let event = |value: serde_json::Value| {
            waymark_model::Event::from_segment_value(value, &waymark_model::IngestContext::at(at()))
                .unwrap()
        };
        let mut identity = ArrivalIdentity::default();
        let browse = event(
            serde_json::json!({"type": "track", "anonymousId": "phone", "event": "Viewed", "messageId": "a"}),
        );
        assert_eq!(identity.customer_of(&browse), "phone");
        let login = event(
            serde_json::json!({"type": "identify", "anonymousId": "phone", "userId": "ann", "messageId": "b"}),
        );
        assert_eq!(identity.customer_of(&login), "ann");
        // Restored from its serialised form, it goes on as before.
        let mut identity: ArrivalIdentity =
            serde_json::from_str(&serde_json::to_string(&identity).unwrap()).unwrap();
        assert_eq!(
            identity.customer_of(&browse),
            "ann",
            "the phone is ann's now"
        );
        let other = event(
            serde_json::json!({"type": "track", "anonymousId": "tablet", "event": "Viewed", "messageId": "c"}),
        );
        assert_eq!(identity.customer_of(&other), "tablet");
    }

    #[test]
    fn anonymous_devices_join_the_identified_customer() {
        let mut graph = IdentityGraph::default();
        let user = graph.intern("user:ann");
        let phone = graph.intern("anon:phone");
        let laptop = graph.intern("anon:laptop");
        assert!(matches!(
            graph.link(user, phone, EdgeReason::Identify, "m1", at(), false),
            LinkOutcome::Merged(_)
        ));
        assert!(matches!(
            graph.link(laptop, user, EdgeReason::Identify, "m2", at(), false),
            LinkOutcome::Merged(_)
        ));
        assert_eq!(graph.customer_of(phone), graph.customer_of(laptop));
        assert_eq!(graph.display_id(graph.customer_of(phone)), "ann");
        assert_eq!(graph.n_customers(), 1);
    }

    #[test]
    fn two_identified_customers_are_not_merged_silently() {
        let mut graph = IdentityGraph::default();
        let (ann, bob, shared) = (
            graph.intern("user:ann"),
            graph.intern("user:bob"),
            graph.intern("anon:tablet"),
        );
        graph.link(ann, shared, EdgeReason::Identify, "m1", at(), false);
        let outcome = graph.link(bob, shared, EdgeReason::Identify, "m2", at(), false);
        assert!(
            matches!(outcome, LinkOutcome::Refused { ref warning, repeated: false } if warning.code == "both_identified")
        );
        assert_ne!(graph.customer_of(ann), graph.customer_of(bob));
        assert_eq!(graph.warnings().len(), 1);
        // Every later event from the shared device is refused again, but recorded only once.
        for message in ["m3", "m4", "m5"] {
            let again = graph.link(bob, shared, EdgeReason::Identify, message, at(), false);
            assert!(matches!(again, LinkOutcome::Refused { repeated: true, .. }));
        }
        assert_eq!(graph.warnings().len(), 1);
        let mut restored = IdentityGraph::restore(graph.snapshot());
        assert!(matches!(
            restored.link(bob, shared, EdgeReason::Identify, "m6", at(), false),
            LinkOutcome::Refused { repeated: true, .. }
        ));
        assert!(matches!(
            graph.link(bob, shared, EdgeReason::Manual, "", at(), true),
            LinkOutcome::Merged(_)
        ));
        assert_eq!(graph.customer_of(ann), graph.customer_of(bob));
    }

    #[test]
    fn unmerge_restores_both_customers_and_sticks() {
        let mut graph = IdentityGraph::default();
        let (ann, device) = (graph.intern("user:ann"), graph.intern("anon:d"));
        let LinkOutcome::Merged(edge) =
            graph.link(ann, device, EdgeReason::Identify, "m1", at(), false)
        else {
            panic!("expected a merge");
        };
        assert!(graph.unmerge(edge, Timestamp(2)));
        assert_ne!(graph.customer_of(ann), graph.customer_of(device));
        assert!(matches!(
            graph.link(ann, device, EdgeReason::Identify, "m3", at(), false),
            LinkOutcome::Refused { .. }
        ));
        let mut restored = IdentityGraph::restore(graph.snapshot());
        assert_ne!(restored.customer_of(ann), restored.customer_of(device));
        assert_eq!(restored.edges().len(), 1);
        assert!(!restored.unmerge(edge, Timestamp(3)));
    }
}
