//! The process map: the directly-follows graph of steps with frequencies and times, plus step, start and end
//! counts — equal to pm4py's DFG, start and end activities on the same log.

use crate::{Analysis, Plan, Runner};
use rustc_hash::FxHashMap;
use serde::Serialize;
use std::collections::BTreeMap;
use waymark_model::{JourneyRef, JourneySet};

/// The directly-follows graph over steps. Each pair of consecutive events in a journey is one edge occurrence; its
/// time is the gap between the two events.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessMap;

/// Step dictionaries up to this size index edges through a dense `from × to` table; larger ones through a hash map.
const DENSE_STEPS: usize = 1024;

/// Step dictionaries up to this size give the second pass its gap ranges by `from × to` directly (32 bytes per
/// pair: 2 MB at this size).
const PAIR_RANGES_STEPS: usize = 256;

/// Log-linear buckets of gaps (16 per power of two, exact below 16 µs), for exact quantiles without keeping the gaps:
/// finer buckets cost more histogram memory in the first pass but leave fewer gaps to collect in the second.
const BUCKETS: usize = 960;

/// The bucket of a gap in µs; buckets are ordered like the gaps (bucket 0 also holds negative gaps).
#[inline]
fn bucket(gap: i64) -> usize {
    let gap = gap.max(0) as u64;
    if gap < 16 {
        return gap as usize;
    }
    let exponent = 63 - gap.leading_zeros() as usize;
    (exponent - 3) * 16 + ((gap >> (exponent - 4)) & 15) as usize
}

/// The smallest gap in bucket `bucket` (0..=BUCKETS; bucket `BUCKETS` is the end of the last): `i64::MIN` for
/// bucket 0, which holds every gap up to 0.
fn bucket_start(bucket: usize) -> i128 {
    match bucket {
        0 => i128::from(i64::MIN),
        1..16 => bucket as i128,
        _ => ((16 + bucket % 16) as i128) << (bucket / 16 - 1),
    }
}

/// A range of gaps the second pass keeps for one edge: those with `gap − low` (as unsigned) below `width`. An empty
/// range has width 0.
#[derive(Debug, Clone, Copy, Default)]
struct GapRange {
    low: i64,
    width: u64,
}

impl GapRange {
    /// The gaps of buckets `first..=last`.
    fn of_buckets(first: usize, last: usize) -> GapRange {
        let low = bucket_start(first);
        let width = (bucket_start(last + 1) - low).min(i128::from(u64::MAX));
        GapRange {
            low: low as i64,
            width: width as u64,
        }
    }

    #[inline(always)]
    fn holds(self, gap: i64) -> bool {
        (gap.wrapping_sub(self.low) as u64) < self.width
    }
}

/// Partial process map: per edge the sum of its gaps and a histogram of them (its count is the histogram's total).
/// The median and p90 are found exactly in `finish`: the histograms say which buckets hold each needed rank, and a
/// second pass over the journeys keeps only the gaps in those buckets. Step counts are derived from the edges:
/// every event but a journey's first ends exactly one edge.
#[derive(Debug, Clone, Default)]
pub struct ProcessMapState {
    cases: u64,
    events: u64,
    start: Vec<u64>,
    end: Vec<u64>,
    edges: EdgeIndex,
    /// Per edge, the sum of its gaps modulo 2^64 (one add per event instead of a 128-bit one). It is the exact sum
    /// when no gap is negative and all gaps together (`spans`) stay below 2^64, since each edge's sum then lies
    /// between 0 and `spans`; otherwise the second pass sums again in 128 bits.
    sums: Vec<u64>,
    /// The sum of every journey's last minus first time: the sum of all gaps.
    spans: i128,
    /// Whether some gap was negative (a journey out of time order).
    negative: bool,
    /// Per edge, 16-bit counts per bucket (half the cache footprint of 32-bit ones); every wrap past 65,535 is
    /// counted in `carries`.
    histograms: Vec<[u16; BUCKETS]>,
    carries: FxHashMap<(u32, u16), u64>,
}
/// Edge ids: a dense `from × to` table when the step dictionary is small, a hash map otherwise.
#[derive(Debug, Clone, Default)]
struct EdgeIndex {
    /// Edge ids by `from * n_steps + to` (`u32::MAX`: not seen yet).
    dense: Vec<u32>,
    n_steps: usize,
    sparse: FxHashMap<(u32, u32), u32>,
    /// Per edge id: (from, to).
    pairs: Vec<(u32, u32)>,
}

impl EdgeIndex {
    fn new(n_steps: usize) -> EdgeIndex {
        EdgeIndex {
            dense: if n_steps <= DENSE_STEPS {
                vec![u32::MAX; n_steps * n_steps]
            } else {
                Vec::new()
            },
            n_steps,
            ..EdgeIndex::default()
        }
    }

    /// Gives an edge not seen yet the next id.
    fn insert(&mut self, from: u32, to: u32) -> usize {
        debug_assert!(
            self.get(from, to).is_none(),
            "edge {from}→{to} already has an id"
        );
        let id = self.pairs.len() as u32;
        if self.dense.is_empty() {
            self.sparse.insert((from, to), id);
        } else {
            self.dense[from as usize * self.n_steps + to as usize] = id;
        }
        self.pairs.push((from, to));
        id as usize
    }

    /// The id of a known edge.
    #[inline]
    fn get(&self, from: u32, to: u32) -> Option<usize> {
        let id = if self.dense.is_empty() {
            *self.sparse.get(&(from, to))?
        } else {
            self.dense[from as usize * self.n_steps + to as usize]
        };
        (id != u32::MAX).then_some(id as usize)
    }
}

impl ProcessMapState {
    /// The id of an edge, registered when new. Known edges take the short path (one table lookup), kept small
    /// enough to inline into the per-event loop.
    #[inline(always)]
    fn edge(&mut self, from: u32, to: u32) -> usize {
        match self.edges.get(from, to) {
            Some(id) => id,
            None => self.register(from, to),
        }
    }

    /// Adds `count` (below 65,536) gaps to bucket `bucket` of edge `id`.
    #[inline(always)]
    fn count_gap(&mut self, id: usize, bucket: usize, count: u32) {
        let total = u32::from(self.histograms[id][bucket]) + count;
        self.histograms[id][bucket] = total as u16;
        if total > u32::from(u16::MAX) {
            self.carry(id, bucket, u64::from(total >> 16));
        }
    }

    #[cold]
    #[inline(never)]
    fn carry(&mut self, id: usize, bucket: usize, wraps: u64) {
        *self.carries.entry((id as u32, bucket as u16)).or_default() += wraps;
    }

    /// Edge `id`'s full counts per bucket, given its carries as (bucket, wraps).
    fn bucket_counts(&self, id: usize, carried: &[(u16, u64)]) -> Vec<u64> {
        let mut counts: Vec<u64> = self.histograms[id]
            .iter()
            .map(|count| u64::from(*count))
            .collect();
        for (bucket, wraps) in carried {
            counts[usize::from(*bucket)] += wraps << 16;
        }
        counts
    }

    /// Adds `other`'s histogram to edge `id`'s: lane-wise when no bucket wraps (the usual case), else bucket by
    /// bucket with carries.
    fn add_histogram(&mut self, id: usize, other: &[u16; BUCKETS]) {
        let histogram = &mut self.histograms[id];
        let wraps = histogram
            .iter()
            .zip(other)
            .fold(false, |wraps, (count, added)| {
                wraps | (count.wrapping_add(*added) < *added)
            });
        if !wraps {
            for (count, added) in histogram.iter_mut().zip(other) {
                *count = count.wrapping_add(*added);
            }
            return;
        }
        for (bucket, added) in other.iter().enumerate() {
            if *added > 0 {
                self.count_gap(id, bucket, u32::from(*added));
            }
        }
    }

    /// A new edge: an id and empty counters.
    #[cold]
    #[inline(never)]
    fn register(&mut self, from: u32, to: u32) -> usize {
        let id = self.edges.insert(from, to);
        self.sums.push(0);
        self.histograms.push([0; BUCKETS]);
        id
    }

    /// Whether `sums` are the exact sums (see there).
    fn sums_exact(&self) -> bool {
        !self.negative && self.spans < 1i128 << 64
    }
}

/// One edge of the map.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct EdgeReport {
    pub from: String,
    pub to: String,
    pub count: u64,
    pub mean_secs: f64,
    pub median_secs: f64,
    pub p90_secs: f64,
    /// With `precedence`: the share of the journeys with this transition in which `from` first occurs before
    /// `to` (below one half: a step back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precedence: Option<f64>,
}

/// The process map: JSON `{"cases", "events", "steps", "start", "end", "edges"}`; edges by count, then names.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct ProcessMapReport {
    pub cases: u64,
    pub events: u64,
    pub steps: BTreeMap<String, u64>,
    pub start: BTreeMap<String, u64>,
    pub end: BTreeMap<String, u64>,
    pub edges: Vec<EdgeReport>,
    /// With `feedback`: satisfaction on each rated step (the `feedback` analysis's measures, default fields).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub feedback: BTreeMap<String, crate::feedback::FeedbackMetrics>,
}

fn add_counts(into: &mut [u64], from: &[u64]) {
    for (total, part) in into.iter_mut().zip(from) {
        *total += part;
    }
}

fn named(counts: &[u64], names: &[String]) -> BTreeMap<String, u64> {
    counts
        .iter()
        .enumerate()
        .filter(|(_, count)| **count > 0)
        .map(|(code, count)| (names[code].clone(), *count))
        .collect()
}

/// What the second pass keeps per edge, and where each needed rank is found in it.
#[derive(Debug, Clone, Copy, Default)]
struct EdgePlan {
    /// The edge's count.
    count: u64,
    /// For the median and the p90: numpy's lower rank, fraction and upper rank.
    quantiles: [(usize, f64, usize); 2],
    /// Slot 0 holds the median's buckets, slot 1 the p90's (empty when the median's range already covers them).
    ranges: [GapRange; 2],
    /// For the median's lower and upper rank and the p90's: (slot, gaps below the slot's range).
    ranks: [(usize, u64); 4],
    /// How many gaps each range holds (all threads together).
    held: [u64; 2],
}

/// One thread's second pass: the gaps kept, written straight into their slot's region (`edge * 2 + slot`; region
/// `starts[slot]..starts[slot + 1]`, sized for every thread's gaps of the slot from the histograms), this
/// thread's filled up to `ends[slot]`; plus the edges' exact sums when the first pass's are not.
struct Kept {
    gaps: Vec<i64>,
    ends: Vec<usize>,
    sums: Option<Vec<i128>>,
}

impl Analysis for EdgeHistograms {
    type State = ProcessMapState;
    type Report = ProcessMapState;

    fn new_state(&self, journeys: &JourneySet) -> ProcessMapState {
        let n_steps = journeys.step_names.len();
        ProcessMapState {
            start: vec![0; n_steps],
            end: vec![0; n_steps],
            edges: EdgeIndex::new(n_steps),
            ..ProcessMapState::default()
        }
    }

    fn update(&self, state: &mut ProcessMapState, journey: JourneyRef<'_>) {
        let (Some(first), Some(last)) = (journey.step.first(), journey.step.last()) else {
            return;
        };
        state.cases += 1;
        state.events += journey.len() as u64;
        state.start[*first as usize] += 1;
        state.end[*last as usize] += 1;
        state.spans += i128::from(journey.ts[journey.len() - 1]) - i128::from(journey.ts[0]);
        let mut signs = 0i64;
        for (pair, times) in journey.step.windows(2).zip(journey.ts.windows(2)) {
            let gap = times[1] - times[0];
            signs |= gap;
            let id = state.edge(pair[0], pair[1]);
            state.sums[id] = state.sums[id].wrapping_add(gap as u64);
            state.count_gap(id, bucket(gap), 1);
        }
        state.negative |= signs < 0;
    }

    fn merge(&self, state: &mut ProcessMapState, other: ProcessMapState) {
        state.cases += other.cases;
        state.events += other.events;
        state.spans += other.spans;
        state.negative |= other.negative;
        add_counts(&mut state.start, &other.start);
        add_counts(&mut state.end, &other.end);
        let mut remap = Vec::with_capacity(other.edges.pairs.len());
        for (id, (from, to)) in other.edges.pairs.iter().enumerate() {
            let into = state.edge(*from, *to);
            remap.push(into);
            state.sums[into] = state.sums[into].wrapping_add(other.sums[id]);
            state.add_histogram(into, &other.histograms[id]);
        }
        for ((id, bucket), wraps) in other.carries {
            state.carry(remap[id as usize], usize::from(bucket), wraps);
        }
    }

    fn finish(
        &self,
        state: ProcessMapState,
        _journeys: &JourneySet,
        _runner: &Runner,
    ) -> ProcessMapState {
        state
    }
}

/// The first pass: edge histograms, counts and sums (the merged state, as it is).
struct EdgeHistograms;

/// The second pass, planned from the first: which gaps each edge keeps and where they go.
struct GapPass {
    state: ProcessMapState,
    planned: Vec<EdgePlan>,
    ranges: Vec<[GapRange; 2]>,
    by_pair: Vec<[GapRange; 2]>,
    exact_sums: bool,
    starts: Vec<usize>,
}

impl Plan for ProcessMap {
    type Report = ProcessMapReport;

    /// Two passes: histograms first, then only the gaps in the buckets that hold each edge's median and p90.
    fn execute(&self, journeys: &JourneySet, runner: &Runner) -> ProcessMapReport {
        let histograms = runner.pass(&EdgeHistograms, journeys);
        let gaps = GapPass::plan(histograms, runner);
        let kept = runner.pass(&gaps, journeys);
        gaps.report(kept, journeys, runner)
    }
}

impl GapPass {
    fn plan(mut state: ProcessMapState, runner: &Runner) -> GapPass {
        let n_edges = state.edges.pairs.len();
        // The carries grouped by edge once, instead of a lookup per bucket of every edge.
        let mut carried: Vec<Vec<(u16, u64)>> = vec![Vec::new(); n_edges];
        for ((id, bucket), wraps) in &state.carries {
            carried[*id as usize].push((*bucket, *wraps));
        }
        // Per edge: its count, and the ranks it needs (numpy's linear interpolation between floor and ceil of
        // q·(n−1)) with the plan for finding them, from one scan of its histogram — on every core.
        let plan_edge = |id: usize| -> EdgePlan {
            let counts = state.bucket_counts(id, &carried[id]);
            let count: u64 = counts.iter().sum();
            let ranks = [0.5, 0.9].map(|q| {
                let position = q * (count - 1) as f64;
                let lower = position.floor() as usize;
                (lower, position - lower as f64, position.ceil() as usize)
            });
            let [(median_low, _, median_high), (p90_low, _, p90_high)] = ranks;
            // (bucket, gaps in lower buckets) of each needed rank, taking the ranks in increasing order (the p90's
            // lower rank can be below the median's upper one).
            let needed = [median_low, median_high, p90_low, p90_high].map(|rank| rank as u64);
            let mut order = [0, 1, 2, 3];
            order.sort_by_key(|which| needed[*which]);
            let mut found = [(0usize, 0u64); 4];
            let (mut below, mut next) = (0u64, 0usize);
            for (index, count) in counts.iter().enumerate() {
                while next < 4 && needed[order[next]] < below + count {
                    found[order[next]] = (index, below);
                    next += 1;
                }
                if next == 4 {
                    break;
                }
                below += count;
            }
            assert_eq!(
                next, 4,
                "every rank below the edge's count falls in a bucket"
            );
            // The median's buckets, and the p90's unless they meet the median's (then one range holds both).
            let (median_first, median_below) = found[0];
            let median_last = found[1].0;
            let (p90_first, p90_below) = found[2];
            let p90_last = found[3].0;
            let held = |first: usize, last: usize| counts[first..=last].iter().sum::<u64>();
            if p90_first <= median_last {
                EdgePlan {
                    count,
                    quantiles: ranks,
                    ranges: [
                        GapRange::of_buckets(median_first, p90_last.max(median_last)),
                        GapRange::default(),
                    ],
                    ranks: [(0, median_below); 4],
                    held: [held(median_first, p90_last.max(median_last)), 0],
                }
            } else {
                EdgePlan {
                    count,
                    quantiles: ranks,
                    ranges: [
                        GapRange::of_buckets(median_first, median_last),
                        GapRange::of_buckets(p90_first, p90_last),
                    ],
                    ranks: [
                        (0, median_below),
                        (0, median_below),
                        (1, p90_below),
                        (1, p90_below),
                    ],
                    held: [held(median_first, median_last), held(p90_first, p90_last)],
                }
            }
        };
        let planned: Vec<EdgePlan> = runner.map(n_edges, |range| range.map(plan_edge).collect());
        // The plans hold all the histograms still had to say; the second pass's buffers take their place.
        drop(std::mem::take(&mut state.histograms));
        // The ranges by edge id, or straight by `from × to` when the step dictionary is small (one lookup per
        // event instead of two).
        let ranges: Vec<[GapRange; 2]> = planned.iter().map(|plan| plan.ranges).collect();
        let n_steps = state.edges.n_steps;
        let by_pair: Vec<[GapRange; 2]> =
            if n_steps <= PAIR_RANGES_STEPS && !state.edges.dense.is_empty() {
                state
                    .edges
                    .dense
                    .iter()
                    .map(|id| ranges.get(*id as usize).copied().unwrap_or_default())
                    .collect()
            } else {
                Vec::new()
            };
        let exact_sums = state.sums_exact();
        // Each slot's region: room for all its gaps, whichever thread finds them.
        let mut starts = Vec::with_capacity(n_edges * 2 + 1);
        starts.push(0usize);
        for plan in &planned {
            for held in plan.held {
                starts.push(starts[starts.len() - 1] + held as usize);
            }
        }
        GapPass {
            state,
            planned,
            ranges,
            by_pair,
            exact_sums,
            starts,
        }
    }

    fn report(&self, kept: Vec<Kept>, journeys: &JourneySet, runner: &Runner) -> ProcessMapReport {
        let names = &journeys.step_names;
        let (state, planned, starts) = (&self.state, &self.planned, &self.starts);
        let n_edges = state.edges.pairs.len();
        let exact_sums = self.exact_sums;
        // Per edge, median and p90 from the kept gaps: each needed value is the (rank − gaps below its range)-th
        // smallest gap of its slot, by selection (linear time). Edges spread over the cores.
        let quantiles_of = |id: usize| -> [f64; 2] {
            let plan = &planned[id];
            let mut slots: [Vec<i64>; 2] = std::array::from_fn(|slot| {
                kept.iter()
                    .flat_map(|part| {
                        part.gaps[starts[id * 2 + slot]..part.ends[id * 2 + slot]]
                            .iter()
                            .copied()
                    })
                    .collect()
            });
            let mut value_at = |which: usize, rank: usize| -> f64 {
                let (slot, below) = plan.ranks[which];
                *slots[slot].select_nth_unstable(rank - below as usize).1 as f64
            };
            [0, 1].map(|quantile| {
                let (lower, fraction, upper) = plan.quantiles[quantile];
                let low = value_at(2 * quantile, lower);
                if fraction == 0.0 {
                    low
                } else {
                    low + (value_at(2 * quantile + 1, upper) - low) * fraction
                }
            })
        };
        let quantiles: Vec<[f64; 2]> =
            runner.map(n_edges, |range| range.map(quantiles_of).collect());
        let sums: Vec<i128> = if exact_sums {
            state.sums.iter().map(|sum| i128::from(*sum)).collect()
        } else {
            let mut sums = vec![0i128; n_edges];
            for part in &kept {
                add_sums(&mut sums, part.sums.as_deref().unwrap_or_default());
            }
            sums
        };
        // Every event but a journey's first ends exactly one edge.
        let mut steps = state.start.clone();
        for (id, (_, to)) in state.edges.pairs.iter().enumerate() {
            steps[*to as usize] += planned[id].count;
        }
        let mut edges: Vec<EdgeReport> = (0..n_edges)
            .map(|id| {
                let (from, to) = state.edges.pairs[id];
                let count = planned[id].count;
                let [median, p90] = quantiles[id];
                EdgeReport {
                    from: names[from as usize].clone(),
                    to: names[to as usize].clone(),
                    count,
                    mean_secs: sums[id] as f64 / 1e6 / count as f64,
                    median_secs: median / 1e6,
                    p90_secs: p90 / 1e6,
                    precedence: None,
                }
            })
            .collect();
        edges.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| a.from.cmp(&b.from))
                .then_with(|| a.to.cmp(&b.to))
        });
        ProcessMapReport {
            cases: state.cases,
            events: state.events,
            steps: named(&steps, names),
            start: named(&state.start, names),
            end: named(&state.end, names),
            edges,
            feedback: BTreeMap::new(),
        }
    }
}

impl Analysis for GapPass {
    /// One thread's kept gaps; merging keeps each thread's buffer (the quantiles select over all of them).
    type State = Vec<Kept>;
    type Report = Vec<Kept>;

    fn new_state(&self, _journeys: &JourneySet) -> Vec<Kept> {
        let n_edges = self.state.edges.pairs.len();
        // Room for all of a slot's gaps, whichever thread finds them. Every thread has the whole layout (zeroed
        // memory the system maps on first write: each touches about its share), so gaps land grouped by slot as
        // they are found, with no grouping pass after.
        vec![Kept {
            gaps: vec![0; self.starts[n_edges * 2]],
            ends: self.starts[..n_edges * 2].to_vec(),
            sums: (!self.exact_sums).then(|| vec![0i128; n_edges]),
        }]
    }

    fn update(&self, state: &mut Vec<Kept>, journey: JourneyRef<'_>) {
        let Kept { gaps, ends, sums } = &mut state[0];
        let starts = &self.starts;
        let mut keep = |slot: usize, gap: i64| {
            debug_assert!(
                ends[slot] < starts[slot + 1],
                "slot {slot} overflows its region"
            );
            gaps[ends[slot]] = gap;
            ends[slot] += 1;
        };
        let edges = &self.state.edges;
        let n_steps = edges.n_steps;
        if sums.is_none() && !self.by_pair.is_empty() {
            for (pair, times) in journey.step.windows(2).zip(journey.ts.windows(2)) {
                let gap = times[1] - times[0];
                let at = pair[0] as usize * n_steps + pair[1] as usize;
                let [median, p90] = self.by_pair[at];
                let (in_median, in_p90) = (median.holds(gap), p90.holds(gap));
                if in_median | in_p90 {
                    keep(edges.dense[at] as usize * 2 + usize::from(in_p90), gap);
                }
            }
            return;
        }
        for (pair, times) in journey.step.windows(2).zip(journey.ts.windows(2)) {
            let gap = times[1] - times[0];
            let id = edges.get(pair[0], pair[1]).unwrap_or(0);
            let [median, p90] = self.ranges[id];
            let (in_median, in_p90) = (median.holds(gap), p90.holds(gap));
            if in_median | in_p90 {
                keep(id * 2 + usize::from(in_p90), gap);
            }
            if let Some(sums) = sums.as_mut() {
                sums[id] += i128::from(gap);
            }
        }
    }

    fn merge(&self, state: &mut Vec<Kept>, other: Vec<Kept>) {
        state.extend(other);
    }

    fn finish(&self, state: Vec<Kept>, _journeys: &JourneySet, _runner: &Runner) -> Vec<Kept> {
        state
    }
}

fn add_sums(into: &mut [i128], from: &[i128]) {
    for (total, part) in into.iter_mut().zip(from) {
        *total += part;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run;

    #[test]
    fn buckets_start_where_their_gaps_start() {
        assert_eq!(bucket_start(0), i128::from(i64::MIN));
        for index in 1..BUCKETS {
            let start = bucket_start(index) as i64;
            assert_eq!(bucket(start), index, "bucket {index} starts at {start}");
            assert_eq!(
                bucket(start - 1),
                index - 1,
                "bucket {index}'s predecessor ends at {}",
                start - 1
            );
        }
        assert_eq!(bucket_start(BUCKETS), 1i128 << 63);
        assert_eq!(bucket(i64::MAX), BUCKETS - 1);
        assert_eq!(bucket(-5), 0);
        let range = GapRange::of_buckets(0, BUCKETS - 1);
        assert!(range.holds(i64::MIN) && range.holds(0) && range.holds(i64::MAX - 1));
        assert!(!GapRange::default().holds(0));
    }

    #[test]
    fn bucket_counts_past_16_bits_are_carried() {
        // 200,000 gaps of one edge, mostly in one bucket: its 16-bit count wraps three times, in each partition
        // and again when partitions merge.
        let events: Vec<(i64, &str, &str)> = (0..200_001i64)
            .scan(0i64, |time, index| {
                *time += match index % 10 {
                    0 => 5_000_000,
                    1 | 2 => 1_000,
                    _ => 7_000_000,
                };
                Some((*time, "a", "web"))
            })
            .collect();
        let journeys = JourneySet::from_journeys(
            events
                .chunks(50_000)
                .enumerate()
                .map(|(index, chunk)| (format!("c{index}"), chunk.to_vec())),
        );
        let mut gaps: Vec<i64> = Vec::new();
        for journey in journeys.journeys(0..journeys.n_journeys()) {
            gaps.extend(journey.ts.windows(2).map(|pair| pair[1] - pair[0]));
        }
        gaps.sort_unstable();
        let sorted: Vec<f64> = gaps.iter().map(|gap| *gap as f64 / 1e6).collect();
        for threads in [1, 3] {
            let map = run(&ProcessMap, &journeys, threads);
            let edge = &map.edges[0];
            assert_eq!(edge.count as usize, gaps.len());
            assert_eq!(
                edge.median_secs,
                crate::stats::quantile(&sorted, 0.5).unwrap()
            );
            assert_eq!(edge.p90_secs, crate::stats::quantile(&sorted, 0.9).unwrap());
        }
        let state = {
            let mut state = EdgeHistograms.new_state(&journeys);
            for journey in journeys.journeys(0..journeys.n_journeys()) {
                EdgeHistograms.update(&mut state, journey);
            }
            state
        };
        assert!(!state.carries.is_empty(), "the test must make a count wrap");
    }
}
