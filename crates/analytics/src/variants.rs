//! Variants: the distinct step sequences of journeys, with counts, share and cumulative coverage — equal to pm4py's
//! variants on the same log.

use crate::Analysis;
use rustc_hash::FxHasher;
use serde::Serialize;
use std::hash::{Hash, Hasher};
use waymark_model::{JourneyRef, JourneySet};

/// Distinct step sequences. `top` keeps only the most frequent ones in the report (counts and shares are always of
/// all journeys).
#[derive(Debug, Clone, Copy, Default)]
pub struct Variants {
    pub top: Option<usize>,
    /// Keep the most frequent variants until they cover this share of the journeys (with `top` too, whichever
    /// keeps fewer).
    pub coverage: Option<f64>,
}

/// One variant.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct VariantReport {
    pub steps: Vec<String>,
    pub count: u64,
    /// Share of all journeys.
    pub share: f64,
    /// Share of all journeys covered by this variant and every more frequent one.
    pub coverage: f64,
}

/// JSON `{"cases", "n_variants", "variants": [...]}`; variants by count, then by their step names.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct VariantsReport {
    pub cases: u64,
    pub n_variants: u64,
    pub variants: Vec<VariantReport>,
}

/// Partial variants: one `(hash of the step sequence, journey index)` per journey. Grouping waits for `finish`,
/// which sorts the pairs by hash and checks every member of a hash group against its group's representatives
/// (so hash collisions cannot merge different sequences). Sorting a few bytes per journey beats inserting every
/// distinct sequence into a hash table when most journeys are distinct, and merging partial states is a concat.
pub type VariantsState = Vec<(u64, u32)>;

fn hash_of(steps: &[u32]) -> u64 {
    let mut hasher = FxHasher::default();
    steps.hash(&mut hasher);
    hasher.finish()
}

/// Distinct sequences as (representative journey, count), the representative being the smallest journey index of
/// its sequence. The pairs are bucketed by the hash's top byte, then each bucket is sorted and grouped on its own
/// (cache-sized work, spread over the cores); equal hashes are always in one bucket.
fn distinct<'j>(
    pairs: VariantsState,
    steps: &(impl Fn(u32) -> &'j [u32] + Sync),
    threads: usize,
) -> Vec<(u32, u64)> {
    const BUCKETS: usize = 256;
    // Bucketed in place (no second array of pairs).
    let mut sorted = pairs;
    let mut buckets: Vec<u32> = sorted.iter().map(|(hash, _)| (hash >> 56) as u32).collect();
    let starts = crate::group_by_key(&mut buckets, &mut sorted, BUCKETS);
    drop(buckets);
    // Buckets split between threads at about equal pair counts.
    let cuts: Vec<usize> = (0..=threads)
        .map(|part| {
            starts
                .partition_point(|start| *start < sorted.len() * part / threads)
                .min(BUCKETS)
        })
        .collect();
    let mut pieces: Vec<&mut [(u64, u32)]> = Vec::new();
    let mut rest = sorted.as_mut_slice();
    for part in 0..threads {
        let (piece, tail) = rest.split_at_mut(starts[cuts[part + 1]] - starts[cuts[part]]);
        pieces.push(piece);
        rest = tail;
    }
    std::thread::scope(|scope| {
        let workers: Vec<_> = pieces
            .into_iter()
            .enumerate()
            .map(|(part, piece)| {
                let (offset, buckets) = (starts[cuts[part]], cuts[part]..cuts[part + 1]);
                let starts = &starts;
                scope.spawn(move || {
                    let mut variants: Vec<(u32, u64)> = Vec::new();
                    for bucket in buckets {
                        let pairs =
                            &mut piece[starts[bucket] - offset..starts[bucket + 1] - offset];
                        pairs.sort_unstable();
                        let mut run_start = 0;
                        for index in 0..pairs.len() {
                            let (hash, journey) = pairs[index];
                            if index == 0 || pairs[index - 1].0 != hash {
                                run_start = variants.len();
                                variants.push((journey, 1));
                                continue;
                            }
                            let sequence = steps(journey);
                            match variants[run_start..]
                                .iter_mut()
                                .find(|(representative, _)| steps(*representative) == sequence)
                            {
                                Some((_, count)) => *count += 1,
                                None => variants.push((journey, 1)),
                            }
                        }
                    }
                    variants
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|worker| worker.join().expect("variant workers do not panic"))
            .collect()
    })
}

impl Analysis for Variants {
    type State = VariantsState;
    type Report = VariantsReport;

    fn new_state(&self, journeys: &JourneySet) -> Self::State {
        let parts = std::thread::available_parallelism().map_or(1, |n| n.get());
        Vec::with_capacity(journeys.n_journeys() / parts + 1)
    }

    fn update(&self, state: &mut Self::State, journey: JourneyRef<'_>) {
        if journey.is_empty() {
            return;
        }
        state.push((hash_of(journey.step), journey.index as u32));
    }

    fn merge(&self, state: &mut Self::State, other: Self::State) {
        state.extend(other);
    }

    fn finish(
        &self,
        state: Self::State,
        journeys: &JourneySet,
        runner: &crate::Runner,
    ) -> VariantsReport {
        let steps = |journey: u32| journeys.journey(journey as usize).step;
        let mut variants = distinct(state, &steps, runner.threads());
        let cases: u64 = variants.iter().map(|(_, count)| count).sum();
        let n_variants = variants.len() as u64;
        let names = &journeys.step_names;
        // Ties are ordered by the step names; comparing each step's rank among the sorted names orders sequences
        // exactly as comparing the names would, without touching strings.
        let mut by_name: Vec<usize> = (0..names.len()).collect();
        by_name.sort_by(|a, b| names[*a].cmp(&names[*b]));
        let mut rank = vec![0u32; names.len()];
        for (position, code) in by_name.into_iter().enumerate() {
            rank[code] = position as u32;
        }
        let mut top = self.top.unwrap_or(usize::MAX).min(variants.len());
        if let Some(coverage) = self.coverage.filter(|coverage| *coverage < 1.0) {
            // The fewest variants, most frequent first, whose journeys reach the share (ties at the cut are ordered
            // by names below, like any other cut).
            let mut counts: Vec<u64> = variants.iter().map(|(_, count)| *count).collect();
            counts.sort_unstable_by(|a, b| b.cmp(a));
            let wanted = (coverage.max(0.0) * cases as f64).ceil() as u64;
            let mut covered = 0;
            let needed = counts
                .iter()
                .position(|count| {
                    covered += count;
                    covered >= wanted
                })
                .map_or(counts.len(), |last| last + 1);
            top = top.min(needed.max(1));
        }
        if top > 0 && top < variants.len() {
            // The k-th largest count first (on the counts alone), so sequences are compared only among variants
            // tied at it.
            let mut counts: Vec<u64> = variants.iter().map(|(_, count)| *count).collect();
            let cut = *counts.select_nth_unstable_by(top - 1, |a, b| b.cmp(a)).1;
            variants.retain(|(_, count)| *count >= cut);
        }
        // Each candidate carries its first four name ranks packed into a u64 (rank + 1, so that a sequence ending
        // sorts before any continuation of it): most ties are settled without reading the sequences again.
        let packable = names.len() < usize::from(u16::MAX);
        let mut keyed: Vec<(u64, u64, u32)> = variants
            .iter()
            .map(|(journey, count)| {
                let key = if packable {
                    steps(*journey).iter().take(4).enumerate().fold(
                        0u64,
                        |key, (position, step)| {
                            key | (u64::from(rank[*step as usize] + 1) << (48 - 16 * position))
                        },
                    )
                } else {
                    0
                };
                (*count, key, *journey)
            })
            .collect();
        let order = |a: &(u64, u64, u32), b: &(u64, u64, u32)| {
            b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then_with(|| {
                let ranks = |journey: u32| steps(journey).iter().map(|step| rank[*step as usize]);
                ranks(a.2).cmp(ranks(b.2))
            })
        };
        if keyed.len() > top && top > 0 {
            keyed.select_nth_unstable_by(top - 1, order);
            keyed.truncate(top);
        }
        keyed.sort_unstable_by(order);
        let variants: Vec<(u32, u64)> = keyed
            .into_iter()
            .map(|(count, _, journey)| (journey, count))
            .collect();
        let mut covered = 0u64;
        let reports = variants
            .iter()
            .take(top)
            .map(|(journey, count)| {
                covered += count;
                VariantReport {
                    steps: steps(*journey)
                        .iter()
                        .map(|step| names[*step as usize].clone())
                        .collect(),
                    count: *count,
                    share: *count as f64 / cases as f64,
                    coverage: covered as f64 / cases as f64,
                }
            })
            .collect();
        VariantsReport {
            cases,
            n_variants,
            variants: reports,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run;

    fn set(journeys: &[&[&str]]) -> JourneySet {
        JourneySet::from_journeys(journeys.iter().enumerate().map(|(index, steps)| {
            (
                format!("c{index}"),
                steps
                    .iter()
                    .enumerate()
                    .map(|(position, step)| (position as i64, *step, "web"))
                    .collect(),
            )
        }))
    }

    #[test]
    fn colliding_hashes_keep_different_sequences_apart() {
        let journeys = set(&[&["a", "b"], &["b", "a"], &["a", "b"], &["a"], &["b", "a"]]);
        // Every journey gets the same hash: grouping must fall back to comparing the sequences.
        let pairs: VariantsState = (0..journeys.n_journeys() as u32)
            .map(|journey| (7, journey))
            .collect();
        let steps = |journey: u32| journeys.journey(journey as usize).step;
        let mut found = distinct(pairs, &steps, 3);
        found.sort_unstable();
        assert_eq!(found, [(0, 2), (1, 2), (3, 1)]);
    }

    #[test]
    fn ties_are_ordered_by_step_names_whatever_the_codes() {
        // Codes follow first appearance (b, a, c, d, e), not name order; the first four steps tie for three of
        // the sequences, and a sequence sorts before its continuations.
        let journeys = set(&[
            &["b"],
            &["a", "b", "c", "d", "e"],
            &["a", "b", "c", "d", "a"],
            &["a", "b"],
            &["a", "b", "c", "d"],
            &["b"],
        ]);
        let expected: Vec<Vec<&str>> = vec![
            vec!["b"],
            vec!["a", "b"],
            vec!["a", "b", "c", "d"],
            vec!["a", "b", "c", "d", "a"],
            vec!["a", "b", "c", "d", "e"],
        ];
        for top in [None, Some(3)] {
            let report = run(
                &Variants {
                    top,
                    coverage: None,
                },
                &journeys,
                2,
            );
            let got: Vec<Vec<&str>> = report
                .variants
                .iter()
                .map(|variant| variant.steps.iter().map(String::as_str).collect())
                .collect();
            assert_eq!(
                got,
                expected[..top.unwrap_or(expected.len())],
                "top {top:?}"
            );
            assert_eq!((report.cases, report.n_variants), (6, 5));
        }
    }
}
