//! The lift of a moment: the goal rate of customers who did it against comparable customers who did not.
//!
//! Comparable means exactly matched on a stratum: the `prefix` steps just before the moment and how far into the
//! journey it came (events since the entry, up to 20) — for a customer who did it, at its first occurrence; a
//! customer who did not is a control at every position of their journey, its end included (they were there and
//! could have done it next) — and, with `segment_by`, the customer's first value of that property (a trait such as
//! `traits.plan`, or an event property). Matching on the depth keeps a step done early (while deciding) from being
//! compared with the same step seen late (browsing after having given up). The effect is
//! the average effect on the treated: per stratum the treated goal rate minus the control goal rate, weighted by
//! the treated in it, over the strata that have controls. Its interval is a stratified bootstrap — each stratum's
//! treated and control goal counts redrawn from binomials at their observed rates, `bootstrap` times, from `seed`
//! — so the same request always gives the same interval, on any number of threads.

use super::{Candidate, PreparedMoments};
use crate::{Analysis, AnalyticsError, Runner};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Binomial, Distribution, Normal};
use rustc_hash::FxHashMap;
use schemars::JsonSchema;
use serde::Serialize;
use waymark_model::{JourneyRef, JourneySet};

/// The longest prefix matched on.
pub const MAX_PREFIX: usize = 3;

/// Stands for "before the journey's first event" in a prefix.
const START: u32 = u32::MAX;
/// Fills the unused places of a prefix shorter than [`MAX_PREFIX`].
const UNUSED: u32 = u32::MAX - 1;
/// The segment of a customer with no value.
const NO_SEGMENT: u32 = u32::MAX;

/// How comparable customers are found.
#[derive(Debug, Clone, PartialEq)]
pub struct LiftOptions {
    /// Steps before the moment matched exactly (0 to [`MAX_PREFIX`]; 0: only the segment).
    pub prefix: usize,
    /// A property (`traits.plan`, `context.device.type`) whose first value in the journey is matched too.
    pub segment_by: Option<String>,
    /// Bootstrap resamples (0: no interval).
    pub bootstrap: usize,
    pub seed: u64,
}

impl Default for LiftOptions {
    fn default() -> LiftOptions {
        LiftOptions {
            prefix: 1,
            segment_by: None,
            bootstrap: 500,
            seed: 42,
        }
    }
}

impl LiftOptions {
    pub(super) fn check(&self) -> Result<(), AnalyticsError> {
        if self.prefix > MAX_PREFIX {
            return Err(AnalyticsError::field(
                "lift_prefix",
                format!(
                    "lift_prefix must be between 0 and {MAX_PREFIX}; got {}",
                    self.prefix
                ),
            ));
        }
        if self.bootstrap > 100_000 {
            return Err(AnalyticsError::field(
                "bootstrap",
                format!(
                    "bootstrap must be at most 100000 resamples; got {}",
                    self.bootstrap
                ),
            ));
        }
        Ok(())
    }

    pub(super) fn matched_on(&self) -> String {
        let steps = match self.prefix {
            0 => "how far into the journey it came".to_string(),
            1 => "the step just before the moment and how far into the journey it came".to_string(),
            k => {
                format!("the {k} steps just before the moment and how far into the journey it came")
            }
        };
        match &self.segment_by {
            Some(segment) => format!("{steps} and {segment}"),
            None => steps,
        }
    }
}

/// A moment's effect on the goal rate of those who did it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, JsonSchema)]
pub struct Lift {
    /// Customers who did it.
    pub treated: u64,
    /// Of them, those in a stratum with comparable customers (the effect is theirs).
    pub matched: u64,
    /// Comparable customers (a customer counts once per stratum they fall in).
    pub controls: u64,
    /// Strata with both treated and comparable customers.
    pub strata: usize,
    /// Goal rate of the matched treated.
    pub treated_rate: f64,
    /// Goal rate the matched treated would have had at their comparable customers' rates.
    pub control_rate: f64,
    /// `treated_rate − control_rate`: the effect in goal-rate points (0.05 = five points).
    pub difference: f64,
    /// The bootstrap interval of `difference` (absent without resamples).
    pub low: Option<f64>,
    pub high: Option<f64>,
    /// `difference / control_rate`.
    pub relative: Option<f64>,
    pub bootstrap: usize,
    pub seed: u64,
}

/// Treated and control customers of one stratum, with how many of each reached the goal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Cell {
    treated: u64,
    treated_goals: u64,
    controls: u64,
    control_goals: u64,
}

/// The steps before, the segment, and how far into the window (events since its start, capped).
type Stratum = ([u32; MAX_PREFIX], u32, u16);

/// Depths from here on are one stratum: deep into a journey, the exact position says little.
const MAX_DEPTH: usize = 20;

/// Customers in a stratum, and of them those who reached the goal.
type Count = [u64; 2];

/// Controls are counted as everyone in a stratum less those who did the moment: each journey's strata are counted
/// once for all moments, and again only for the moments it did (far fewer than the moments it did not do).
#[derive(Debug, Clone, Default)]
struct LiftState {
    /// Per chosen moment: its treated per stratum.
    cells: Vec<FxHashMap<Stratum, Cell>>,
    /// Every journey, in every stratum it passes through.
    all: FxHashMap<Stratum, Count>,
    /// Per chosen moment: the journeys that did it, in every stratum they pass through.
    both: Vec<FxHashMap<Stratum, Count>>,
    /// Per chosen moment: the first journeys (by index) that did it.
    examples: Vec<Vec<u32>>,
    /// Buffers reused from journey to journey (not merged).
    scratch_first: Vec<Option<usize>>,
    scratch_strata: Vec<Stratum>,
}

struct LiftPass<'p, 'a> {
    moments: &'p PreparedMoments<'a>,
    window_us: Option<i64>,
    chosen: &'p [Candidate],
    /// Per step: the chosen moments on it.
    by_step: Vec<Vec<usize>>,
}

impl LiftPass<'_, '_> {
    /// The stratum of position `at` of the window starting at `from`: the `prefix` steps before it (START-padded),
    /// the segment and the depth.
    fn stratum(
        &self,
        set: &JourneySet,
        journey_start: usize,
        from: usize,
        at: usize,
        segment: u32,
    ) -> Stratum {
        let depth = (at - from).min(MAX_DEPTH) as u16;
        (self.context(set, journey_start, at), segment, depth)
    }

    /// The `prefix` steps before position `at`, START-padded.
    fn context(&self, set: &JourneySet, journey_start: usize, at: usize) -> [u32; MAX_PREFIX] {
        let mut context = [UNUSED; MAX_PREFIX];
        let k = self.moments.spec.lift.prefix;
        for (back, slot) in context.iter_mut().enumerate().take(k) {
            *slot = match at.checked_sub(back + 1) {
                Some(event) if event >= journey_start => set.step[event],
                _ => START,
            };
        }
        context
    }

    fn segment(&self, journey: JourneyRef<'_>) -> u32 {
        let Some(column) = self.moments.segment else {
            return NO_SEGMENT;
        };
        let codes = &journey.set.properties[column].codes;
        (journey.start..journey.start + journey.len())
            .map(|event| codes[event])
            .find(|code| *code != 0)
            .unwrap_or(NO_SEGMENT)
    }

    fn matches(&self, set: &JourneySet, event: usize, moment: usize) -> bool {
        match self.chosen[moment].value {
            None => true,
            Some((index, code)) => {
                set.properties[self.moments.columns[index as usize]].codes[event] == code
            }
        }
    }
}

impl Analysis for LiftPass<'_, '_> {
    type State = LiftState;
    type Report = LiftState;

    fn new_state(&self, _journeys: &JourneySet) -> LiftState {
        LiftState {
            cells: vec![FxHashMap::default(); self.chosen.len()],
            all: FxHashMap::default(),
            both: vec![FxHashMap::default(); self.chosen.len()],
            examples: vec![Vec::new(); self.chosen.len()],
            scratch_first: Vec::new(),
            scratch_strata: Vec::new(),
        }
    }

    fn update(&self, state: &mut LiftState, journey: JourneyRef<'_>) {
        let Some(window) = self.moments.window(journey, self.window_us) else {
            return;
        };
        let set = journey.set;
        let journey_start = journey.start;
        let mut first = std::mem::take(&mut state.scratch_first);
        first.clear();
        first.resize(self.chosen.len(), None);
        for event in window.from..window.to {
            for moment in &self.by_step[set.step[event] as usize] {
                if first[*moment].is_none() && self.matches(set, event, *moment) {
                    first[*moment] = Some(event);
                }
            }
        }
        let segment = self.segment(journey);
        let reached = u64::from(window.reached);
        let mut strata = std::mem::take(&mut state.scratch_strata);
        strata.clear();
        strata.extend(
            (window.from..=window.to)
                .map(|at| self.stratum(set, journey_start, window.from, at, segment)),
        );
        strata.sort_unstable();
        strata.dedup();
        for stratum in &strata {
            let count = state.all.entry(*stratum).or_default();
            count[0] += 1;
            count[1] += reached;
        }
        for (moment, first) in first.iter().enumerate() {
            let Some(event) = first else {
                continue;
            };
            let cell = state.cells[moment]
                .entry(self.stratum(set, journey_start, window.from, *event, segment))
                .or_default();
            cell.treated += 1;
            cell.treated_goals += reached;
            let both = &mut state.both[moment];
            for stratum in &strata {
                let count = both.entry(*stratum).or_default();
                count[0] += 1;
                count[1] += reached;
            }
            let examples = &mut state.examples[moment];
            if examples.len() < self.moments.spec.examples {
                examples.push(journey.index as u32);
            }
        }
        state.scratch_first = first;
        state.scratch_strata = strata;
    }

    fn merge(&self, state: &mut LiftState, other: LiftState) {
        for (into, from) in state.cells.iter_mut().zip(other.cells) {
            for (stratum, cell) in from {
                let into = into.entry(stratum).or_default();
                into.treated += cell.treated;
                into.treated_goals += cell.treated_goals;
            }
        }
        let add = |into: &mut FxHashMap<Stratum, Count>, from: FxHashMap<Stratum, Count>| {
            for (stratum, [customers, goals]) in from {
                let into = into.entry(stratum).or_default();
                into[0] += customers;
                into[1] += goals;
            }
        };
        add(&mut state.all, other.all);
        for (into, from) in state.both.iter_mut().zip(other.both) {
            add(into, from);
        }
        for (into, from) in state.examples.iter_mut().zip(other.examples) {
            // Partitions are merged in order, so the first journeys stay first.
            into.extend(from);
            into.truncate(self.moments.spec.examples);
        }
    }

    /// Controls per treated stratum: everyone there less those who did the moment.
    fn finish(&self, mut state: LiftState, _journeys: &JourneySet, _runner: &Runner) -> LiftState {
        for (cells, both) in state.cells.iter_mut().zip(&state.both) {
            for (stratum, cell) in cells.iter_mut() {
                let all = state.all.get(stratum).copied().unwrap_or_default();
                let did = both.get(stratum).copied().unwrap_or_default();
                cell.controls = all[0] - did[0];
                cell.control_goals = all[1] - did[1];
            }
        }
        state
    }
}

/// The lift of each chosen moment, with its example journeys.
/// A chosen moment's point estimate, its first journeys, and the strata the estimate is over (for its interval).
pub(super) struct Measured {
    pub lift: Option<Lift>,
    pub examples: Vec<u32>,
    pub cells: Vec<Cell>,
}

/// The lift of each chosen moment (point estimates: the interval is drawn for the moments shown, by [`interval`]),
/// with its example journeys.
pub(super) fn measure(
    moments: &PreparedMoments<'_>,
    window_us: Option<i64>,
    chosen: &[Candidate],
    journeys: &JourneySet,
    runner: &Runner,
) -> Vec<Measured> {
    if chosen.is_empty() {
        return Vec::new();
    }
    let mut by_step = vec![Vec::new(); journeys.step_names.len()];
    for (index, candidate) in chosen.iter().enumerate() {
        by_step[candidate.step as usize].push(index);
    }
    let pass = LiftPass {
        moments,
        window_us,
        chosen,
        by_step,
    };
    let state = runner.pass(&pass, journeys);
    let options = &moments.spec.lift;
    state
        .cells
        .into_iter()
        .zip(state.examples)
        .map(|(cells, examples)| {
            let treated = cells.values().map(|cell| cell.treated).sum();
            let cells = matched(&cells);
            Measured {
                lift: estimate(treated, &cells, options),
                examples,
                cells,
            }
        })
        .collect()
}

/// The strata with both treated and controls, in a fixed order (so resamples are drawn the same way whatever the
/// hash map's order).
fn matched(cells: &FxHashMap<Stratum, Cell>) -> Vec<Cell> {
    let mut matched: Vec<(Stratum, Cell)> = cells
        .iter()
        .filter(|(_, cell)| cell.treated > 0 && cell.controls > 0)
        .map(|(stratum, cell)| (*stratum, *cell))
        .collect();
    matched.sort_unstable_by_key(|(stratum, _)| *stratum);
    matched.into_iter().map(|(_, cell)| cell).collect()
}

/// `(treated goal rate, control goal rate)` of the matched treated, with each stratum's goal counts from `draw`.
fn rates(cells: &[Cell], draw: &mut dyn FnMut(&Cell) -> (u64, u64)) -> (f64, f64) {
    let weight: u64 = cells.iter().map(|cell| cell.treated).sum();
    let (mut treated_goals, mut expected) = (0.0, 0.0);
    for cell in cells {
        let (t, c) = draw(cell);
        treated_goals += t as f64;
        expected += cell.treated as f64 * c as f64 / cell.controls as f64;
    }
    (treated_goals / weight as f64, expected / weight as f64)
}

/// The average effect on the treated over the matched `cells` (no interval yet); `treated` counts those without
/// comparable customers too.
fn estimate(treated: u64, cells: &[Cell], options: &LiftOptions) -> Option<Lift> {
    if cells.is_empty() {
        return None;
    }
    let (treated_rate, control_rate) =
        rates(cells, &mut |cell| (cell.treated_goals, cell.control_goals));
    let difference = treated_rate - control_rate;
    Some(Lift {
        treated,
        matched: cells.iter().map(|cell| cell.treated).sum(),
        controls: cells.iter().map(|cell| cell.controls).sum(),
        strata: cells.len(),
        treated_rate,
        control_rate,
        difference,
        low: None,
        high: None,
        relative: (control_rate > 0.0).then(|| difference / control_rate),
        bootstrap: options.bootstrap,
        seed: options.seed,
    })
}

/// A cell with at least this many expected goals and as many expected non-goals is redrawn from the normal
/// approximation of its binomial (the usual rule for when the two agree), the rest from the binomial itself.
const NORMAL_FROM: f64 = 10.0;

/// One resampled goal count of `n` customers at the observed rate `k / n`.
fn redraw(n: u64, k: u64, rng: &mut ChaCha8Rng) -> u64 {
    if k == 0 || k == n {
        return k;
    }
    let p = k as f64 / n as f64;
    if n as f64 * p >= NORMAL_FROM && n as f64 * (1.0 - p) >= NORMAL_FROM {
        let normal = Normal::new(n as f64 * p, (n as f64 * p * (1.0 - p)).sqrt())
            .expect("a positive spread");
        return normal.sample(rng).round().clamp(0.0, n as f64) as u64;
    }
    Binomial::new(n, p)
        .expect("a rate is a probability")
        .sample(rng)
}

/// The stratified bootstrap interval of `lift`'s difference: `options.bootstrap` resamples from a generator seeded
/// by `options.seed` and the moment itself, so each moment's interval is the same whatever else is reported.
pub(super) fn interval(
    lift: &mut Lift,
    cells: &[Cell],
    options: &LiftOptions,
    confidence: f64,
    candidate: Candidate,
) {
    if options.bootstrap == 0 || cells.is_empty() {
        return;
    }
    let key = (u64::from(candidate.step) << 32)
        ^ candidate.value.map_or(0, |(column, code)| {
            (u64::from(column) << 24) ^ u64::from(code) ^ (1 << 63)
        });
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed ^ key.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut differences: Vec<f64> = (0..options.bootstrap)
        .map(|_| {
            let (t, c) = rates(cells, &mut |cell| {
                (
                    redraw(cell.treated, cell.treated_goals, &mut rng),
                    redraw(cell.controls, cell.control_goals, &mut rng),
                )
            });
            t - c
        })
        .collect();
    differences.sort_by(f64::total_cmp);
    let tail = (1.0 - confidence) / 2.0;
    lift.low = crate::stats::quantile(&differences, tail);
    lift.high = crate::stats::quantile(&differences, 1.0 - tail);
}
