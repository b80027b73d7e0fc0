//! Waymark's journey analyses: pure functions of journeys, no IO.
//!
//! Every analysis follows one contract — *update per partition, merge, finish* — so the same code runs on one
//! core, on every core ([`run`]), or on a distributed engine:
//!
//! ```
//! use waymark_analytics::{run, ProcessMap};
//! use waymark_model::JourneySet;
//! let journeys = JourneySet::from_journeys([
//!     ("ann".to_string(), vec![(0, "view", "web"), (5_000_000, "buy", "web")]),
//!     ("bob".to_string(), vec![(0, "view", "app")]),
//! ]);
//! let map = run(&ProcessMap, &journeys, 2);
//! assert_eq!(map.cases, 2);
//! assert_eq!((map.edges[0].count, map.edges[0].mean_secs), (1, 5.0));
//! ```

pub mod attribution;
pub mod blueprint;
pub mod condition;
mod error;
pub mod feedback;
pub mod flows;
pub mod friction;
pub mod funnel;
pub mod lift;
pub mod moments;
pub mod monitor;
pub mod overview;
pub mod personas;
mod process_map;
pub mod query;
pub mod retention;
pub mod rules;
pub mod scope;
mod stats;
pub mod step_counts;
mod variants;

pub use attribution::{AttributionReport, PathTable, TouchpointKind};
pub use condition::{Condition, Op};
pub use error::AnalyticsError;
pub use flows::{Direction, FlowLink, FlowNode, Flows, FlowsReport, NodeKind, PreparedFlows};
pub use friction::{
    Concentration, Finding, FindingKind, Friction, FrictionReport, PreparedFriction, StuckSignal,
};
pub use funnel::{
    Attribution, Breakdown, CountBy, Exclusion, Funnel, FunnelMode, FunnelReport, FunnelStep,
    PreparedFunnel,
};
pub use moments::{Moment, Moments, MomentsReport};
pub use overview::{Overview, OverviewReport};
pub use process_map::{EdgeReport, ProcessMap, ProcessMapReport};
pub use query::{
    AnchorSpec, AttributionRequest, DataInfo, Flag, FlowsRequest, FrictionRequest, FunnelRequest,
    MomentsRequest, OverviewRequest, ProcessMapRequest, Query, RetentionRequest, Scope, Spec,
    StepSpec, VariantsRequest,
};
pub use retention::{Period, PreparedRetention, Retention, RetentionMode, RetentionReport};
pub use rules::{
    apply_step_rules, collapse_repeats, customer_step_codes, rule_properties, StepRule,
};
pub use scope::{split_at_events, split_instances, Filter};
pub use variants::{VariantReport, Variants, VariantsReport};
use waymark_model::{JourneyRef, JourneySet};

/// An analysis over journeys. `update` sees each journey once, in any partitioning; `merge` combines partial
/// states; `finish` turns the final state into the report. Implementations guarantee that
/// `finish(merge(update(A), update(B))) == finish(update(A ∪ B))` for any split of the journeys.
pub trait Analysis: Sync {
    type State: Send;
    type Report;
    /// An empty state for this journey set (dictionary sizes are known up front).
    fn new_state(&self, journeys: &JourneySet) -> Self::State;
    fn update(&self, state: &mut Self::State, journey: JourneyRef<'_>);
    fn merge(&self, state: &mut Self::State, other: Self::State);
    /// The report from the merged state; `runner` spreads per-item work (never another scan of the journeys:
    /// that is a second pass, see [`Plan`]).
    fn finish(&self, state: Self::State, journeys: &JourneySet, runner: &Runner) -> Self::Report;
}

/// Reorders `values` (and `keys` with them) so that values with equal keys are together, keys in increasing order,
/// in place — an American flag sort: every swap puts one value where it belongs, so no second buffer is needed.
/// Returns where each key's values start, plus the end. Keys are below `n_keys`.
pub(crate) fn group_by_key<V>(keys: &mut [u32], values: &mut [V], n_keys: usize) -> Vec<usize> {
    debug_assert_eq!(keys.len(), values.len());
    let mut offsets = vec![0usize; n_keys + 1];
    for key in keys.iter() {
        offsets[*key as usize + 1] += 1;
    }
    for key in 0..n_keys {
        offsets[key + 1] += offsets[key];
    }
    // The next position to fill in each key's region.
    let mut next = offsets[..n_keys].to_vec();
    for key in 0..n_keys {
        while next[key] < offsets[key + 1] {
            let at = next[key];
            let home = keys[at] as usize;
            if home == key {
                next[key] += 1;
            } else {
                let to = next[home];
                keys.swap(at, to);
                values.swap(at, to);
                next[home] += 1;
            }
        }
    }
    offsets
}

/// Splits the journeys into `parts` contiguous ranges holding about as many events each (journey lengths are
/// heavy-tailed, so equal journey counts would leave one core waiting for the other).
pub fn partitions(journeys: &JourneySet, parts: usize) -> Vec<std::ops::Range<usize>> {
    let n = journeys.n_journeys();
    let parts = parts.clamp(1, n.max(1));
    let events = journeys.n_events();
    let bounds: Vec<usize> = (0..=parts)
        .map(|part| match part {
            0 => 0,
            part if part == parts => n,
            part => journeys.offsets[..n].partition_point(|offset| *offset < events * part / parts),
        })
        .collect();
    bounds
        .windows(2)
        .map(|pair| pair[0]..pair[1].max(pair[0]))
        .collect()
}

/// `work` on each of `ranges`, one thread per range, results in the ranges' order.
fn each_range<T: Send>(
    ranges: Vec<std::ops::Range<usize>>,
    work: impl Fn(std::ops::Range<usize>) -> T + Sync,
) -> Vec<T> {
    std::thread::scope(|scope| {
        let workers: Vec<_> = ranges
            .into_iter()
            .map(|range| {
                let work = &work;
                scope.spawn(move || work(range))
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| worker.join().expect("analysis workers do not panic"))
            .collect()
    })
}

/// Where analyses run: the one place that decides threads. A pass over the journeys splits them into contiguous
/// partitions of about equal event counts, one per thread, and merges the partial states in partition order;
/// per-item work in a `finish` (quantiles per edge, say) is spread the same way.
#[derive(Debug, Clone, Copy)]
pub struct Runner {
    threads: usize,
}

impl Runner {
    /// A runner on `threads` threads (at least one).
    pub fn new(threads: usize) -> Runner {
        Runner {
            threads: threads.max(1),
        }
    }

    /// A runner on every core the process may use.
    pub fn all_cores() -> Runner {
        Runner::new(std::thread::available_parallelism().map_or(1, |threads| threads.get()))
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    /// One pass of `analysis` over every journey: update per partition, merge in order, finish.
    pub fn pass<A: Analysis>(&self, analysis: &A, journeys: &JourneySet) -> A::Report {
        let states = each_range(partitions(journeys, self.threads), |range| {
            let mut state = analysis.new_state(journeys);
            for journey in journeys.journeys(range) {
                analysis.update(&mut state, journey);
            }
            state
        });
        let mut states = states.into_iter();
        let mut total = states
            .next()
            .unwrap_or_else(|| analysis.new_state(journeys));
        for state in states {
            analysis.merge(&mut total, state);
        }
        analysis.finish(total, journeys, self)
    }

    /// `work` over `0..n` split into contiguous ranges, one per thread, results in order (work per item of a
    /// finished state, not per journey).
    pub fn map<T: Send>(
        &self,
        n: usize,
        work: impl Fn(std::ops::Range<usize>) -> Vec<T> + Sync,
    ) -> Vec<T> {
        let threads = self.threads.clamp(1, n.max(1));
        let ranges = (0..threads)
            .map(|part| n * part / threads..n * (part + 1) / threads)
            .collect();
        each_range(ranges, work).into_iter().flatten().collect()
    }
}

/// An analysis as it runs: one [`Analysis`] pass, or several in a row where a pass needs what the one before it
/// found (the process map's exact quantiles, friction's transition profile). The passes are written out in
/// `execute`, each run by the [`Runner`]; a `finish` never scans the journeys again.
pub trait Plan: Sync {
    type Report;
    fn execute(&self, journeys: &JourneySet, runner: &Runner) -> Self::Report;
}

impl<A: Analysis> Plan for A {
    type Report = A::Report;
    fn execute(&self, journeys: &JourneySet, runner: &Runner) -> A::Report {
        runner.pass(self, journeys)
    }
}

/// Runs `plan` over every journey on `threads` threads.
pub fn run<P: Plan>(plan: &P, journeys: &JourneySet, threads: usize) -> P::Report {
    plan.execute(journeys, &Runner::new(threads))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_are_grouped_by_key_in_place() {
        let mut slots: Vec<u32> = (0..1_000u32).map(|index| (index * 7_919) % 13).collect();
        let mut gaps: Vec<i64> = slots
            .iter()
            .enumerate()
            .map(|(index, slot)| i64::from(*slot) * 10_000 + index as i64)
            .collect();
        let offsets = group_by_key(&mut slots, &mut gaps, 16);
        assert_eq!((offsets.len(), offsets[16]), (17, 1_000));
        for slot in 0..16 {
            let held = &gaps[offsets[slot]..offsets[slot + 1]];
            assert!(
                held.iter().all(|gap| gap / 10_000 == slot as i64),
                "slot {slot}: {held:?}"
            );
            assert!(slots[offsets[slot]..offsets[slot + 1]]
                .iter()
                .all(|held| *held as usize == slot));
        }
        let mut all = gaps.clone();
        all.sort_unstable();
        let mut expected: Vec<i64> = (0..1_000i64)
            .map(|index| ((index * 7_919) % 13) * 10_000 + index)
            .collect();
        expected.sort_unstable();
        assert_eq!(all, expected, "every gap kept once");
    }
}
