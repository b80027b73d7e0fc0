//! Variants: the distinct step sequences of journeys, with counts, share and cumulative coverage — equal to pm4py's
//! variants on the same log.

use crate::Analysis;
use rustc_hash::FxHashMap;
use serde::Serialize;
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

impl Analysis for Variants {
    type State = FxHashMap<Vec<u32>, u64>;
    type Report = VariantsReport;

    fn new_state(&self, journeys: &JourneySet) -> Self::State {
        // Most journeys of large, varied sets are distinct variants; growing the map from empty rehashes often.
        FxHashMap::with_capacity_and_hasher(
            (journeys.n_journeys() / 8).min(1 << 20),
            Default::default(),
        )
    }

    fn update(&self, state: &mut Self::State, journey: JourneyRef<'_>) {
        if journey.is_empty() {
            return;
        }
        match state.get_mut(journey.step) {
            Some(count) => *count += 1,
            None => {
                state.insert(journey.step.to_vec(), 1);
            }
        }
    }

    fn merge(&self, state: &mut Self::State, other: Self::State) {
        for (steps, count) in other {
            *state.entry(steps).or_default() += count;
        }
    }

    fn finish(&self, state: Self::State, journeys: &JourneySet) -> VariantsReport {
        let cases: u64 = state.values().sum();
        let n_variants = state.len() as u64;
        let names = &journeys.step_names;
        // By count, then by the step names; only the reported variants are ordered and named.
        let order = |a: &(Vec<u32>, u64), b: &(Vec<u32>, u64)| {
            b.1.cmp(&a.1).then_with(|| {
                let a_names = a.0.iter().map(|step| &names[*step as usize]);
                a_names.cmp(b.0.iter().map(|step| &names[*step as usize]))
            })
        };
        let mut variants: Vec<(Vec<u32>, u64)> = state.into_iter().collect();
        let top = self.top.unwrap_or(usize::MAX).min(variants.len());
        if top > 0 && top < variants.len() {
            // The k-th largest count first (counts only), so names are compared only among variants tied at it.
            variants.select_nth_unstable_by(top - 1, |a, b| b.1.cmp(&a.1));
            let cut = variants[top - 1].1;
            variants.retain(|(_, count)| *count >= cut);
            if variants.len() > top {
                variants.select_nth_unstable_by(top - 1, order);
                variants.truncate(top);
            }
        }
        variants.sort_unstable_by(order);
        let mut covered = 0u64;
        let reports = variants
            .into_iter()
            .take(top)
            .map(|(steps, count)| {
                covered += count;
                VariantReport {
                    steps: steps
                        .iter()
                        .map(|step| names[*step as usize].clone())
                        .collect(),
                    count,
                    share: count as f64 / cases as f64,
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
