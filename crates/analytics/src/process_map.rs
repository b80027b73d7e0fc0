//! The process map: the directly-follows graph of steps with frequencies and times, plus step, start and end
//! counts — equal to pm4py's DFG, start and end activities on the same log.

use crate::Analysis;
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

/// Log-linear buckets of gaps (16 per power of two, exact below 16 µs), for exact quantiles without keeping the gaps:
/// finer buckets cost more histogram memory in the first pass but leave fewer gaps to collect in the second.
const BUCKETS: usize = 960;

/// The bucket of a gap in µs; buckets are ordered like the gaps.
#[inline]
fn bucket(gap: i64) -> usize {
    let gap = gap.max(0) as u64;
    if gap < 16 {
        return gap as usize;
    }
    let exponent = 63 - gap.leading_zeros() as usize;
    (exponent - 3) * 16 + ((gap >> (exponent - 4)) & 15) as usize
}

/// Partial process map: per edge a count, an exact sum and a histogram of its gaps. The median and p90 are found
/// exactly in `finish`: the histograms say which bucket holds each needed rank, and a second pass over the
/// journeys collects only the gaps in those buckets.
#[derive(Debug, Clone, Default)]
pub struct ProcessMapState {
    cases: u64,
    events: u64,
    steps: Vec<u64>,
    start: Vec<u64>,
    end: Vec<u64>,
    edges: EdgeIndex,
    counts: Vec<u64>,
    sums: Vec<i128>,
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
    /// Adds `count` occurrences of an edge with gaps summing to `sum`; returns the edge's id. Known edges take the
    /// short path (one table lookup), kept small enough to inline into the per-event loop.
    #[inline(always)]
    fn add(&mut self, from: u32, to: u32, count: u64, sum: i128) -> usize {
        let id = match self.edges.get(from, to) {
            Some(id) => id,
            None => self.register(from, to),
        };
        self.counts[id] += count;
        self.sums[id] += sum;
        id
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

    /// A new edge: an id and empty counters.
    #[cold]
    #[inline(never)]
    fn register(&mut self, from: u32, to: u32) -> usize {
        let id = self.edges.insert(from, to);
        self.counts.push(0);
        self.sums.push(0);
        self.histograms.push([0; BUCKETS]);
        id
    }
}

/// One edge of the map.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EdgeReport {
    pub from: String,
    pub to: String,
    pub count: u64,
    pub mean_secs: f64,
    pub median_secs: f64,
    pub p90_secs: f64,
}

/// The process map: JSON `{"cases", "events", "steps", "start", "end", "edges"}`; edges by count, then names.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProcessMapReport {
    pub cases: u64,
    pub events: u64,
    pub steps: BTreeMap<String, u64>,
    pub start: BTreeMap<String, u64>,
    pub end: BTreeMap<String, u64>,
    pub edges: Vec<EdgeReport>,
}

/// Which of an edge's wanted buckets holds `bucket`: the first, when a bucket is wanted twice (buckets of one
/// histogram are equal or disjoint, so a gap in it is collected into that first slot).
fn slot_of(wanted: &[u16; 4], bucket: u16) -> Option<usize> {
    wanted.iter().position(|held| *held == bucket)
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

impl Analysis for ProcessMap {
    type State = ProcessMapState;
    type Report = ProcessMapReport;

    fn new_state(&self, journeys: &JourneySet) -> ProcessMapState {
        let n_steps = journeys.step_names.len();
        ProcessMapState {
            steps: vec![0; n_steps],
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
        state.steps[*first as usize] += 1;
        for (pair, times) in journey.step.windows(2).zip(journey.ts.windows(2)) {
            let gap = times[1] - times[0];
            state.steps[pair[1] as usize] += 1;
            let id = state.add(pair[0], pair[1], 1, i128::from(gap));
            state.count_gap(id, bucket(gap), 1);
        }
    }

    fn merge(&self, state: &mut ProcessMapState, other: ProcessMapState) {
        state.cases += other.cases;
        state.events += other.events;
        add_counts(&mut state.steps, &other.steps);
        add_counts(&mut state.start, &other.start);
        add_counts(&mut state.end, &other.end);
        let mut remap = Vec::with_capacity(other.edges.pairs.len());
        for (id, (from, to)) in other.edges.pairs.iter().enumerate() {
            let into = state.add(*from, *to, other.counts[id], other.sums[id]);
            remap.push(into);
            for (bucket, count) in other.histograms[id].iter().enumerate() {
                if *count > 0 {
                    state.count_gap(into, bucket, u32::from(*count));
                }
            }
        }
        for ((id, bucket), wraps) in other.carries {
            state.carry(remap[id as usize], usize::from(bucket), wraps);
        }
    }

    fn finish(&self, state: ProcessMapState, journeys: &JourneySet) -> ProcessMapReport {
        let names = &journeys.step_names;
        let n_edges = state.counts.len();
        // The ranks each edge needs (numpy's linear interpolation between floor and ceil of q·(n−1)), and the
        // buckets that hold them.
        let ranks: Vec<[(usize, f64, usize); 2]> = state
            .counts
            .iter()
            .map(|count| {
                [0.5, 0.9].map(|q| {
                    let position = q * (*count - 1) as f64;
                    let lower = position.floor() as usize;
                    (lower, position - lower as f64, position.ceil() as usize)
                })
            })
            .collect();
        // The carries grouped by edge once, instead of a lookup per bucket of every edge.
        let mut carried: Vec<Vec<(u16, u64)>> = vec![Vec::new(); n_edges];
        for ((id, bucket), wraps) in &state.carries {
            carried[*id as usize].push((*bucket, *wraps));
        }
        // Per edge, where each needed rank falls — (bucket, gaps in lower buckets) for the lower and upper rank of
        // the median and of the p90 — from one scan of its histogram, taking the ranks in increasing order (the
        // p90's lower rank can be below the median's upper one).
        let located: Vec<[(usize, u64); 4]> = (0..n_edges)
            .map(|id| {
                let [(median_low, _, median_high), (p90_low, _, p90_high)] = ranks[id];
                let needed = [median_low, median_high, p90_low, p90_high].map(|rank| rank as u64);
                let mut order = [0, 1, 2, 3];
                order.sort_by_key(|which| needed[*which]);
                let mut found = [(0usize, 0u64); 4];
                let (mut below, mut next) = (0u64, 0usize);
                for (index, count) in state
                    .bucket_counts(id, &carried[id])
                    .into_iter()
                    .enumerate()
                {
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
                found
            })
            .collect();
        // Per edge, the (at most 4) buckets holding a needed rank, in a flat array the second pass can test
        // without branching.
        let wanted: Vec<[u16; 4]> = located
            .iter()
            .map(|found| found.map(|(bucket, _)| bucket as u16))
            .collect();
        // Second pass, on every core: only the gaps in the wanted buckets.
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let edges = &state.edges;
        let collected: Vec<Vec<Vec<i64>>> = std::thread::scope(|scope| {
            let workers: Vec<_> = crate::partitions(journeys, threads)
                .into_iter()
                .map(|range| {
                    let wanted = &wanted;
                    scope.spawn(move || {
                        // Per edge and wanted slot: the gaps in the slot's bucket (buckets of one histogram are
                        // equal or disjoint; a bucket wanted twice fills its first slot).
                        let mut found: Vec<Vec<i64>> = vec![Vec::new(); n_edges * 4];
                        for journey in journeys.journeys(range) {
                            for (pair, times) in journey.step.windows(2).zip(journey.ts.windows(2))
                            {
                                let gap = times[1] - times[0];
                                let id = edges.get(pair[0], pair[1]).unwrap_or(0);
                                let held = bucket(gap) as u16;
                                let [a, b, c, d] = wanted[id];
                                if (a == held) | (b == held) | (c == held) | (d == held) {
                                    let slot = slot_of(&wanted[id], held).unwrap_or(0);
                                    found[id * 4 + slot].push(gap);
                                }
                            }
                        }
                        found
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|worker| worker.join().expect("process map workers do not panic"))
                .collect()
        });
        // Per edge, median and p90 from the collected gaps; edges spread over the cores in ranges of about equal
        // collected size.
        let quantiles_of = |id: usize| -> [f64; 2] {
            let mut slots: [Vec<i64>; 4] = std::array::from_fn(|slot| {
                collected
                    .iter()
                    .flat_map(|part| part[id * 4 + slot].iter().copied())
                    .collect()
            });
            // The value at a rank: the (rank − gaps below its bucket)-th smallest gap of the bucket, by
            // selection (linear time) among the gaps collected for that bucket.
            let mut value_at = |which: usize, rank: usize| -> f64 {
                let (wanted_bucket, below) = located[id][which];
                let slot = slot_of(&wanted[id], wanted_bucket as u16)
                    .expect("every needed rank's bucket was collected");
                *slots[slot].select_nth_unstable(rank - below as usize).1 as f64
            };
            [0, 1].map(|quantile| {
                let (lower, fraction, upper) = ranks[id][quantile];
                let low = value_at(2 * quantile, lower);
                if fraction == 0.0 {
                    low
                } else {
                    low + (value_at(2 * quantile + 1, upper) - low) * fraction
                }
            })
        };
        let sizes: Vec<usize> = (0..n_edges)
            .map(|id| {
                collected
                    .iter()
                    .map(|part| part[id * 4..id * 4 + 4].iter().map(Vec::len).sum::<usize>())
                    .sum()
            })
            .collect();
        let total: usize = sizes.iter().sum();
        let mut bounds = vec![0usize];
        let mut running = 0usize;
        for (id, size) in sizes.iter().enumerate() {
            running += size;
            if bounds.len() < threads && running * threads >= total * bounds.len() {
                bounds.push(id + 1);
            }
        }
        bounds.push(n_edges);
        let quantiles: Vec<[f64; 2]> = std::thread::scope(|scope| {
            let workers: Vec<_> = bounds
                .windows(2)
                .map(|range| {
                    let (first, last) = (range[0], range[1].max(range[0]));
                    let quantiles_of = &quantiles_of;
                    scope.spawn(move || (first..last).map(quantiles_of).collect::<Vec<_>>())
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|worker| worker.join().expect("process map workers do not panic"))
                .collect()
        });
        let mut edges: Vec<EdgeReport> = (0..n_edges)
            .map(|id| {
                let (from, to) = state.edges.pairs[id];
                let count = state.counts[id];
                let [median, p90] = quantiles[id];
                EdgeReport {
                    from: names[from as usize].clone(),
                    to: names[to as usize].clone(),
                    count,
                    mean_secs: state.sums[id] as f64 / 1e6 / count as f64,
                    median_secs: median / 1e6,
                    p90_secs: p90 / 1e6,
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
            steps: named(&state.steps, names),
            start: named(&state.start, names),
            end: named(&state.end, names),
            edges,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run;

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
            let mut state = ProcessMap.new_state(&journeys);
            for journey in journeys.journeys(0..journeys.n_journeys()) {
                ProcessMap.update(&mut state, journey);
            }
            state
        };
        assert!(!state.carries.is_empty(), "the test must make a count wrap");
    }
}
