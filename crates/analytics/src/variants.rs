//! Variants: the distinct step sequences of journeys, with counts, share and cumulative coverage — equal to pm4py's
//! variants on the same log.

use crate::Analysis;
use hashbrown::HashTable;
use rustc_hash::FxHasher;
use serde::Serialize;
use std::hash::{Hash, Hasher};
use waymark_model::{JourneyRef, JourneySet};

/// Distinct step sequences. `top` keeps only the most frequent ones in the report (counts and shares are always of
/// all journeys).
#[derive(Debug, Clone, Copy, Default)]
pub struct Variants {
    pub top: Option<usize>,
}

/// One variant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VariantReport {
    pub steps: Vec<String>,
    pub count: u64,
    /// Share of all journeys.
    pub share: f64,
    /// Share of all journeys covered by this variant and every more frequent one.
    pub coverage: f64,
}

/// JSON `{"cases", "n_variants", "variants": [...]}`; variants by count, then by their step names.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VariantsReport {
    pub cases: u64,
    pub n_variants: u64,
    pub variants: Vec<VariantReport>,
}

/// One distinct step sequence: its codes are `arena[start..start + len]`.
#[derive(Debug, Clone, Copy)]
struct Variant {
    start: usize,
    len: usize,
    count: u64,
    hash: u64,
}

/// Partial variants: each distinct sequence stored once, back to back in one arena (no allocation per variant),
/// found through a hash table of variant indexes.
#[derive(Debug, Clone, Default)]
pub struct VariantsState {
    arena: Vec<u32>,
    variants: Vec<Variant>,
    table: HashTable<u32>,
}

fn hash_of(steps: &[u32]) -> u64 {
    let mut hasher = FxHasher::default();
    steps.hash(&mut hasher);
    hasher.finish()
}

impl VariantsState {
    /// Adds `count` journeys with step sequence `steps` (whose hash is `hash`).
    #[inline]
    fn add(&mut self, steps: &[u32], hash: u64, count: u64) {
        let VariantsState {
            arena,
            variants,
            table,
        } = self;
        let found = table.find(hash, |index| {
            let variant = &variants[*index as usize];
            variant.hash == hash && &arena[variant.start..variant.start + variant.len] == steps
        });
        match found {
            Some(index) => variants[*index as usize].count += count,
            None => {
                let index = variants.len() as u32;
                variants.push(Variant {
                    start: arena.len(),
                    len: steps.len(),
                    count,
                    hash,
                });
                arena.extend_from_slice(steps);
                table.insert_unique(hash, index, |index| variants[*index as usize].hash);
            }
        }
    }

    fn steps(&self, variant: &Variant) -> &[u32] {
        &self.arena[variant.start..variant.start + variant.len]
    }
}

impl Analysis for Variants {
    type State = VariantsState;
    type Report = VariantsReport;

    fn new_state(&self, journeys: &JourneySet) -> Self::State {
        // Most journeys of large, varied sets are distinct variants: size the table and the arena for a partition
        // of them up front instead of growing (rehashing, copying) on the way. Unused capacity is never touched.
        let parts = std::thread::available_parallelism().map_or(1, |n| n.get());
        VariantsState {
            table: HashTable::with_capacity((journeys.n_journeys() / parts).min(1 << 22)),
            arena: Vec::with_capacity(journeys.n_events() / parts),
            ..VariantsState::default()
        }
    }

    fn update(&self, state: &mut Self::State, journey: JourneyRef<'_>) {
        if journey.is_empty() {
            return;
        }
        state.add(journey.step, hash_of(journey.step), 1);
    }

    fn merge(&self, state: &mut Self::State, other: Self::State) {
        let VariantsState {
            variants, table, ..
        } = state;
        table.reserve(other.variants.len(), |index| variants[*index as usize].hash);
        for variant in &other.variants {
            state.add(other.steps(variant), variant.hash, variant.count);
        }
    }

    fn finish(&self, state: Self::State, journeys: &JourneySet) -> VariantsReport {
        let cases: u64 = state.variants.iter().map(|variant| variant.count).sum();
        let n_variants = state.variants.len() as u64;
        let names = &journeys.step_names;
        // Ties are ordered by the step names; comparing each step's rank among the sorted names orders sequences
        // exactly as comparing the names would, without touching strings.
        let mut by_name: Vec<usize> = (0..names.len()).collect();
        by_name.sort_by(|a, b| names[*a].cmp(&names[*b]));
        let mut rank = vec![0u32; names.len()];
        for (position, code) in by_name.into_iter().enumerate() {
            rank[code] = position as u32;
        }
        let arena = &state.arena;
        let steps = |variant: &Variant| &arena[variant.start..variant.start + variant.len];
        let order = |a: &Variant, b: &Variant| {
            b.count.cmp(&a.count).then_with(|| {
                let ranks =
                    |variant: &Variant| steps(variant).iter().map(|step| rank[*step as usize]);
                ranks(a).cmp(ranks(b))
            })
        };
        let mut variants = state.variants;
        let top = self.top.unwrap_or(usize::MAX).min(variants.len());
        if top > 0 && top < variants.len() {
            // The k-th largest count first (on the counts alone), so sequences are compared only among variants
            // tied at it.
            let mut counts: Vec<u64> = variants.iter().map(|variant| variant.count).collect();
            let cut = *counts.select_nth_unstable_by(top - 1, |a, b| b.cmp(a)).1;
            variants.retain(|variant| variant.count >= cut);
            if variants.len() > top {
                variants.select_nth_unstable_by(top - 1, order);
                variants.truncate(top);
            }
        }
        variants.sort_unstable_by(order);
        let mut covered = 0u64;
        let reports = variants
            .iter()
            .take(top)
            .map(|variant| {
                covered += variant.count;
                VariantReport {
                    steps: steps(variant)
                        .iter()
                        .map(|step| names[*step as usize].clone())
                        .collect(),
                    count: variant.count,
                    share: variant.count as f64 / cases as f64,
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
