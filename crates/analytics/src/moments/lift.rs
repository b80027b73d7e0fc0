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

/// The first pass: per chosen moment, its treated per stratum (the stratum of its first occurrence) and its first
/// journeys.
#[derive(Debug, Clone, Default)]
struct TreatedState {
    cells: Vec<FxHashMap<Stratum, Cell>>,
    examples: Vec<Vec<u32>>,
    /// Buffer reused from journey to journey (not merged).
    scratch_first: Vec<Option<usize>>,
}

/// The second pass: per (moment, treated stratum) slot, the customers passing through the stratum who never did the
/// moment — counted directly, and only where a moment has treated, so each journey costs one lookup per stratum it
/// passes through.
#[derive(Debug, Clone, Default)]
struct ControlState {
    controls: Vec<Count>,
    /// Per treated stratum: the last journey counted in it (journeys count once per stratum; not merged).
    seen: Vec<u32>,
    scratch_first: Vec<Option<usize>>,
}

struct LiftPass<'p, 'a> {
    moments: &'p PreparedMoments<'a>,
    window_us: Option<i64>,
    chosen: &'p [Candidate],
    /// Per step: the chosen moments on it.
    by_step: Vec<Vec<usize>>,
}

struct TreatedPass<'r, 'p, 'a>(&'r LiftPass<'p, 'a>);

struct ControlPass<'r, 'p, 'a> {
    lift: &'r LiftPass<'p, 'a>,
    /// Every stratum some moment has treated in, numbered.
    strata: FxHashMap<Stratum, u32>,
    /// Per numbered stratum: the moments treated in it, with their slot.
    slots: Vec<Vec<(u32, u32)>>,
    n_slots: usize,
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

    /// What both passes read of a journey: its window, its segment, whether it reached the goal, and each chosen
    /// moment's first occurrence in the window (into `first`); `None` without a window.
    fn seen(&self, journey: JourneyRef<'_>, first: &mut Vec<Option<usize>>) -> Option<Seen> {
        let window = self.moments.window(journey, self.window_us)?;
        let set = journey.set;
        first.clear();
        first.resize(self.chosen.len(), None);
        for event in window.from..window.to {
            for moment in &self.by_step[set.step[event] as usize] {
                if first[*moment].is_none() && self.matches(set, event, *moment) {
                    first[*moment] = Some(event);
                }
            }
        }
        Some(Seen {
            from: window.from,
            to: window.to,
            segment: self.segment(journey),
            reached: u64::from(window.reached),
        })
    }
}

/// A journey's window (`from..to`, positions), segment, and whether it reached the goal (0 or 1).
struct Seen {
    from: usize,
    to: usize,
    segment: u32,
    reached: u64,
}

impl Analysis for TreatedPass<'_, '_, '_> {
    type State = TreatedState;
    type Report = TreatedState;

    fn new_state(&self, _journeys: &JourneySet) -> TreatedState {
        TreatedState {
            cells: vec![FxHashMap::default(); self.0.chosen.len()],
            examples: vec![Vec::new(); self.0.chosen.len()],
            scratch_first: Vec::new(),
        }
    }

    fn update(&self, state: &mut TreatedState, journey: JourneyRef<'_>) {
        let lift = self.0;
        let mut first = std::mem::take(&mut state.scratch_first);
        let Some(Seen {
            from,
            segment,
            reached,
            ..
        }) = lift.seen(journey, &mut first)
        else {
            state.scratch_first = first;
            return;
        };
        let set = journey.set;
        for (moment, first) in first.iter().enumerate() {
            let Some(event) = first else {
                continue;
            };
            let cell = state.cells[moment]
                .entry(lift.stratum(set, journey.start, from, *event, segment))
                .or_default();
            cell.treated += 1;
            cell.treated_goals += reached;
            let examples = &mut state.examples[moment];
            if examples.len() < lift.moments.spec.examples {
                examples.push(journey.index as u32);
            }
        }
        state.scratch_first = first;
    }

    fn merge(&self, state: &mut TreatedState, other: TreatedState) {
        for (into, from) in state.cells.iter_mut().zip(other.cells) {
            for (stratum, cell) in from {
                let into = into.entry(stratum).or_default();
                into.treated += cell.treated;
                into.treated_goals += cell.treated_goals;
            }
        }
        for (into, from) in state.examples.iter_mut().zip(other.examples) {
            // Partitions are merged in order, so the first journeys stay first.
            into.extend(from);
            into.truncate(self.0.moments.spec.examples);
        }
    }

    fn finish(
        &self,
        state: TreatedState,
        _journeys: &JourneySet,
        _runner: &Runner,
    ) -> TreatedState {
        state
    }
}

impl<'r, 'p, 'a> ControlPass<'r, 'p, 'a> {
    /// Numbers the strata in which the moments have treated, and gives each (moment, stratum) a slot.
    fn new(lift: &'r LiftPass<'p, 'a>, cells: &[FxHashMap<Stratum, Cell>]) -> Self {
        let mut strata: FxHashMap<Stratum, u32> = FxHashMap::default();
        let mut slots: Vec<Vec<(u32, u32)>> = Vec::new();
        let mut n_slots = 0;
        for (moment, cells) in cells.iter().enumerate() {
            for stratum in cells.keys() {
                let next = strata.len() as u32;
                let id = *strata.entry(*stratum).or_insert(next);
                if id as usize == slots.len() {
                    slots.push(Vec::new());
                }
                slots[id as usize].push((moment as u32, n_slots as u32));
                n_slots += 1;
            }
        }
        ControlPass {
            lift,
            strata,
            slots,
            n_slots,
        }
    }

    fn slot(&self, moment: usize, stratum: &Stratum) -> Option<usize> {
        let id = *self.strata.get(stratum)?;
        self.slots[id as usize]
            .iter()
            .find(|(treated, _)| *treated as usize == moment)
            .map(|(_, slot)| *slot as usize)
    }
}

impl Analysis for ControlPass<'_, '_, '_> {
    type State = ControlState;
    type Report = ControlState;

    fn new_state(&self, _journeys: &JourneySet) -> ControlState {
        ControlState {
            controls: vec![[0; 2]; self.n_slots],
            seen: vec![u32::MAX; self.slots.len()],
            scratch_first: Vec::new(),
        }
    }

    fn update(&self, state: &mut ControlState, journey: JourneyRef<'_>) {
        let lift = self.lift;
        let mut first = std::mem::take(&mut state.scratch_first);
        let Some(Seen {
            from,
            to,
            segment,
            reached,
        }) = lift.seen(journey, &mut first)
        else {
            state.scratch_first = first;
            return;
        };
        let set = journey.set;
        let stamp = journey.index as u32;
        // A customer who did not do a moment is comparable at every position of the window, its end included.
        for at in from..=to {
            let stratum = lift.stratum(set, journey.start, from, at, segment);
            let Some(id) = self.strata.get(&stratum) else {
                continue;
            };
            let id = *id as usize;
            if state.seen[id] == stamp {
                continue;
            }
            state.seen[id] = stamp;
            for (moment, slot) in &self.slots[id] {
                if first[*moment as usize].is_none() {
                    let count = &mut state.controls[*slot as usize];
                    count[0] += 1;
                    count[1] += reached;
                }
            }
        }
        state.scratch_first = first;
    }

    fn merge(&self, state: &mut ControlState, other: ControlState) {
        for (into, from) in state.controls.iter_mut().zip(other.controls) {
            into[0] += from[0];
            into[1] += from[1];
        }
    }

    fn finish(
        &self,
        state: ControlState,
        _journeys: &JourneySet,
        _runner: &Runner,
    ) -> ControlState {
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
    let mut state = runner.pass(&TreatedPass(&pass), journeys);
    let controls = ControlPass::new(&pass, &state.cells);
    let counted = runner.pass(&controls, journeys);
    for (moment, cells) in state.cells.iter_mut().enumerate() {
        for (stratum, cell) in cells.iter_mut() {
            let slot = controls
                .slot(moment, stratum)
                .expect("every treated stratum has a slot");
            [cell.controls, cell.control_goals] = counted.controls[slot];
        }
    }
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
