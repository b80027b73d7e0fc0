//! Funnels: how far each customer gets through an ordered list of steps within a conversion window, with
//! ClickHouse's `windowFunnel` semantics (and modes) for the level each customer reaches, plus what a CX team needs
//! around it — conversion per step, time to convert, a breakdown by a property, and who dropped where and what they
//! did next.
//!
//! The level of one journey follows ClickHouse 26.9's `windowFunnel(window, modes…)(time, cond1, …)`: each event
//! contributes one entry per condition it satisfies (in condition order), a chain starts at every step-1 entry and
//! step `k` extends a chain at step `k − 1` whose first event is at most `window` earlier (inclusive). The one
//! deliberate difference: events with equal times keep their arrival order, where ClickHouse orders them by
//! condition number.

use crate::condition::{Compiled, Condition};
use crate::error::AnalyticsError;
use crate::stats::quantile_unsorted;
use crate::Analysis;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use waymark_model::{JourneyRef, JourneySet};

/// At most this many steps, as in ClickHouse.
pub const MAX_STEPS: usize = 32;

/// One step of a funnel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FunnelStep {
    /// The label shown for the step.
    pub name: String,
    /// Which events count as this step.
    pub condition: Condition,
    /// Optional per-step window: at most this many µs after the previous step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within_us: Option<i64>,
}

impl FunnelStep {
    /// A step matching events whose step name is `name` (or matches the `*` pattern).
    pub fn named(name: &str) -> FunnelStep {
        FunnelStep {
            name: name.to_string(),
            condition: Condition::step(name),
            within_us: None,
        }
    }
}

/// ClickHouse's `windowFunnel` modes, plus any-order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FunnelMode {
    /// No other event may come between the steps of a chain once it has started.
    StrictOrder,
    /// A step repeated within a chain stops the search.
    StrictDeduplication,
    /// Each step must be strictly later than the previous one.
    StrictIncrease,
    /// Each event counts for at most one step of a chain.
    StrictOnce,
    /// With `strict_order`: a later step seen too early is skipped instead of stopping the search.
    AllowReentry,
    /// The steps may happen in any order within the window (not a ClickHouse mode).
    AnyOrder,
}

impl FunnelMode {
    pub fn parse(text: &str) -> Option<FunnelMode> {
        serde_json::from_value(serde_json::Value::String(text.to_string())).ok()
    }
}

/// What one funnel count is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum CountBy {
    /// Each customer once, at the furthest level they reached (the journey set decides what a journey is: split
    /// journeys into instances first to count per instance).
    #[default]
    Customer,
    /// Each step-1 event starts an attempt that runs until the next one; every attempt counts.
    Attempt,
}

/// Which event of a customer's chain a breakdown value is read from.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Attribution {
    /// The step-1 event.
    #[default]
    FirstTouch,
    /// The furthest step reached.
    LastTouch,
    /// Step N (1-based); customers who did not reach it are grouped as `(not reached)`.
    Step(usize),
}

/// Breakdown of the funnel by a property value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Breakdown {
    pub property: String,
    #[serde(default)]
    pub attribution: Attribution,
    /// The most common values (by step-1 count) are shown; the rest are summed as `(other)`.
    #[serde(default = "default_breakdown_top")]
    pub top: usize,
}

fn default_breakdown_top() -> usize {
    10
}

/// Customers who do an excluded event after reaching step `after` and before reaching step `before` (1-based) lose
/// that chain: they count as if that attempt had not happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Exclusion {
    pub condition: Condition,
    #[serde(default = "one")]
    pub after: usize,
    /// Defaults to the last step.
    #[serde(default)]
    pub before: Option<usize>,
}

fn one() -> usize {
    1
}

/// A funnel definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Funnel {
    pub steps: Vec<FunnelStep>,
    /// Conversion window in µs, measured inclusively from step 1.
    pub window_us: i64,
    #[serde(default)]
    pub modes: Vec<FunnelMode>,
    #[serde(default)]
    pub exclusions: Vec<Exclusion>,
    #[serde(default)]
    pub count_by: CountBy,
    #[serde(default)]
    pub breakdown: Option<Breakdown>,
    /// How many customers to list per drop-off.
    #[serde(default = "default_drill_down")]
    pub drill_down: usize,
}

fn default_drill_down() -> usize {
    20
}

impl Funnel {
    /// An ordered funnel over step names with a window in µs.
    pub fn new(steps: &[&str], window_us: i64) -> Funnel {
        Funnel {
            steps: steps.iter().map(|name| FunnelStep::named(name)).collect(),
            window_us,
            modes: Vec::new(),
            exclusions: Vec::new(),
            count_by: CountBy::Customer,
            breakdown: None,
            drill_down: default_drill_down(),
        }
    }

    pub fn with_modes(mut self, modes: &[FunnelMode]) -> Funnel {
        self.modes = modes.to_vec();
        self
    }

    /// The property columns the funnel reads (load them into the journey set).
    pub fn properties(&self) -> Vec<String> {
        let mut names = Vec::new();
        for step in &self.steps {
            step.condition.properties(&mut names);
        }
        for exclusion in &self.exclusions {
            exclusion.condition.properties(&mut names);
        }
        if let Some(breakdown) = &self.breakdown {
            if !names.contains(&breakdown.property) {
                names.push(breakdown.property.clone());
            }
        }
        names
    }

    fn has(&self, mode: FunnelMode) -> bool {
        self.modes.contains(&mode)
    }

    /// Checks the definition and binds it to `journeys`' dictionaries.
    pub fn prepare<'f>(
        &'f self,
        journeys: &JourneySet,
    ) -> Result<PreparedFunnel<'f>, AnalyticsError> {
        let n = self.steps.len();
        if n == 0 {
            return Err(AnalyticsError::field(
                "steps",
                "a funnel needs at least one step",
            ));
        }
        if n > MAX_STEPS {
            return Err(AnalyticsError::field(
                "steps",
                format!("a funnel has at most {MAX_STEPS} steps; this one has {n}"),
            ));
        }
        if self.window_us < 0 {
            return Err(AnalyticsError::field(
                "window",
                "the conversion window must not be negative",
            ));
        }
        if self.has(FunnelMode::AllowReentry) && !self.has(FunnelMode::StrictOrder) {
            return Err(AnalyticsError::field(
                "modes",
                "mode allow_reentry needs strict_order as well",
            ));
        }
        if self.has(FunnelMode::AnyOrder) && self.modes.len() > 1 {
            return Err(AnalyticsError::field(
                "modes",
                "mode any_order cannot be combined with other modes",
            ));
        }
        if let Some(Breakdown {
            attribution: Attribution::Step(step),
            ..
        }) = &self.breakdown
        {
            if *step == 0 || *step > n {
                return Err(AnalyticsError::field(
                    "breakdown.attribution",
                    format!(
                    "breakdown attribution step {step} is not one of the funnel's steps 1..={n}"
                ),
                ));
            }
        }
        let conditions: Vec<Compiled> = self
            .steps
            .iter()
            .map(|step| step.condition.compile(journeys))
            .collect::<Result<_, _>>()?;
        let step_masks: Option<Vec<u32>> = conditions
            .iter()
            .map(Compiled::step_table)
            .collect::<Option<Vec<&[bool]>>>()
            .map(|tables| {
                (0..journeys.step_names.len())
                    .map(|step| {
                        tables
                            .iter()
                            .enumerate()
                            .filter(|(_, table)| table[step])
                            .fold(0u32, |mask, (bit, _)| mask | (1 << bit))
                    })
                    .collect()
            });
        let mut exclusions = Vec::new();
        for exclusion in &self.exclusions {
            let before = exclusion.before.unwrap_or(n);
            if exclusion.after == 0 || exclusion.after >= before || before > n {
                return Err(AnalyticsError::field("exclusions", format!(
                    "an exclusion applies between two steps: after {} and before {before} must satisfy 1 ≤ after < before ≤ {n}",
                    exclusion.after
                )));
            }
            exclusions.push((
                exclusion.condition.compile(journeys)?,
                exclusion.after - 1,
                before - 1,
            ));
        }
        let breakdown_column = match &self.breakdown {
            Some(breakdown) => Some(
                journeys
                    .properties
                    .iter()
                    .position(|column| column.name == breakdown.property)
                    .ok_or_else(|| {
                        AnalyticsError::condition(format!(
                            "breakdown property `{}` was not loaded for this query",
                            breakdown.property
                        ))
                    })?,
            ),
            None => None,
        };
        let flags = Flags {
            strict_order: self.has(FunnelMode::StrictOrder),
            dedup: self.has(FunnelMode::StrictDeduplication),
            increase: self.has(FunnelMode::StrictIncrease),
            reentry: self.has(FunnelMode::AllowReentry),
            strict_once: self.has(FunnelMode::StrictOnce),
            any_order: self.has(FunnelMode::AnyOrder),
        };
        let warnings = self
            .steps
            .iter()
            .zip(&conditions)
            .enumerate()
            .filter_map(|(index, (step, compiled))| {
                step.condition
                    .unmatched(compiled, journeys, &format!("Step {}", index + 1))
            })
            .collect();
        Ok(PreparedFunnel {
            funnel: self,
            warnings,
            flags,
            conditions,
            exclusions,
            breakdown_column,
            plain_levels: step_masks
                .as_ref()
                .filter(|masks| {
                    self.exclusions.is_empty()
                        && !flags.strict_order
                        && !flags.dedup
                        && !flags.increase
                        && masks.iter().all(|mask| mask.count_ones() <= 1)
                })
                .map(|masks| {
                    masks
                        .iter()
                        .map(|mask| match mask {
                            0 => n as u8 + 1,
                            mask => mask.trailing_zeros() as u8 + 1,
                        })
                        .collect()
                }),
            step_masks,
            within: self
                .steps
                .iter()
                .map(|step| step.within_us.unwrap_or(i64::MAX))
                .collect(),
        })
    }
}

/// The modes, as flags read once per journey.
#[derive(Debug, Clone, Copy, Default)]
struct Flags {
    strict_order: bool,
    dedup: bool,
    increase: bool,
    reentry: bool,
    strict_once: bool,
    any_order: bool,
}

/// A funnel bound to one journey set; run it with [`crate::run`].
pub struct PreparedFunnel<'f> {
    funnel: &'f Funnel,
    flags: Flags,
    conditions: Vec<Compiled>,
    /// Step → condition bits, when every step condition reads the step alone (the fast path).
    step_masks: Option<Vec<u32>>,
    /// (condition, first 0-based level it voids, first level it does not).
    exclusions: Vec<(Compiled, usize, usize)>,
    breakdown_column: Option<usize>,
    within: Vec<i64>,
    /// Step → funnel level (1-based; `n + 1`: no step) when there is no strict mode and no exclusion, and each
    /// step name matches at most one funnel step: the ordered loop's fast path.
    plain_levels: Option<Vec<u8>>,
    /// What the report should tell about the definition (a step named like no step in the data).
    warnings: Vec<String>,
}

/// How far one unit got: `level` steps, and the event (index into the set's columns) of each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub level: usize,
    pub path: [u32; MAX_STEPS],
}

impl Outcome {
    fn none() -> Outcome {
        Outcome {
            level: 0,
            path: [0; MAX_STEPS],
        }
    }
}

/// Partial funnel results.
#[derive(Debug, Clone, Default)]
pub struct FunnelState {
    units: u64,
    reached: Vec<u64>,
    /// Per step: µs from step 1, one per unit that reached it, in unit order.
    since_start: Vec<Vec<i64>>,
    /// The level of each unit that reached step 2 or further, in the same order: which entries of `since_start`
    /// are one unit's, so `finish` derives the µs from each step to the next from them (one byte per unit instead
    /// of another duration per unit and step).
    levels: Vec<u8>,
    /// Per step: the smallest journey indexes of units that stopped there.
    dropped: Vec<Vec<u32>>,
    /// Per step: what the units that stopped there did next (step code, or `u32::MAX` for nothing).
    next: Vec<FxHashMap<u32, u64>>,
    /// Breakdown value code (`u32::MAX`: step not reached) → units reaching each step.
    groups: FxHashMap<u32, Vec<u64>>,
    /// Scratch space for the chains' paths (not part of the result).
    scratch: Scratch,
}

/// Reusable buffers for the chains' paths: copied arrays (general loop) or a linked list (fast loop).
#[derive(Debug, Clone, Default)]
struct Scratch {
    paths: Vec<[u32; MAX_STEPS]>,
    nodes: Vec<(u32, u32)>,
}

impl PreparedFunnel<'_> {
    #[inline]
    fn mask(&self, journeys: &JourneySet, event: usize) -> u32 {
        match &self.step_masks {
            Some(masks) => masks[journeys.step[event] as usize],
            None => self
                .conditions
                .iter()
                .enumerate()
                .filter(|(_, condition)| condition.matches(journeys, event))
                .fold(0, |mask, (bit, _)| mask | (1 << bit)),
        }
    }

    /// The exclusion that voids levels `from..to` at this event, if any.
    fn excluded(&self, journeys: &JourneySet, event: usize) -> Option<(usize, usize)> {
        self.exclusions
            .iter()
            .find(|(condition, _, _)| condition.matches(journeys, event))
            .map(|(_, from, to)| (*from, *to))
    }

    /// The level reached by events `range` of the set (one unit), ClickHouse's algorithm for the chosen modes.
    pub fn outcome(&self, journeys: &JourneySet, range: std::ops::Range<usize>) -> Outcome {
        self.outcome_with(journeys, range, &mut Scratch::default())
    }

    /// [`PreparedFunnel::outcome`] with a reusable buffer for the chains' paths.
    fn outcome_with(
        &self,
        journeys: &JourneySet,
        range: std::ops::Range<usize>,
        scratch: &mut Scratch,
    ) -> Outcome {
        if self.flags.any_order {
            self.any_order(journeys, range)
        } else if self.flags.strict_once {
            self.strict_once(journeys, range)
        } else {
            match &self.plain_levels {
                Some(levels) => Self::ordered_plain(
                    self.funnel.window_us,
                    &self.within,
                    levels,
                    journeys,
                    range,
                    &mut scratch.nodes,
                ),
                None => {
                    let paths = &mut scratch.paths;
                    paths.resize(self.funnel.steps.len(), [0; MAX_STEPS]);
                    self.ordered(journeys, range, paths)
                }
            }
        }
    }

    /// [`PreparedFunnel::ordered`] for the common case — no strict mode, no exclusion, each event matching at most
    /// one step by its name — without branches on the data: every event updates "its" level with conditional moves
    /// (an unmatched event targets a level that cannot be reached), and the chains' paths are a linked list in
    /// `nodes` (event, previous node) instead of copied arrays. The levels and paths equal the general loop's.
    fn ordered_plain(
        window: i64,
        within: &[i64],
        levels: &[u8],
        journeys: &JourneySet,
        range: std::ops::Range<usize>,
        nodes: &mut Vec<(u32, u32)>,
    ) -> Outcome {
        const NONE: u32 = u32::MAX;
        let n = within.len();
        // Index 0 is a virtual level before step 1, always reached at the current event; index j ≥ 1 is step j.
        let mut first = [0i64; MAX_STEPS + 2];
        let mut last = [0i64; MAX_STEPS + 2];
        let mut node = [NONE; MAX_STEPS + 2];
        let mut limit = [i64::MAX; MAX_STEPS + 2];
        limit[2..=n].copy_from_slice(&within[1..]);
        let mut reached: u64 = 1;
        let done: u64 = 1 << n;
        let start_event = range.start;
        let steps = &journeys.step[range.clone()];
        let times = &journeys.ts[range];
        nodes.clear();
        nodes.resize(steps.len(), (0, NONE));
        let mut used = 0usize;
        for (offset, (step, ts)) in steps.iter().zip(times).enumerate() {
            let j = levels[*step as usize] as usize;
            let p = j - 1;
            let ts = *ts;
            first[0] = ts;
            last[0] = ts;
            let ok = ((reached >> p) & 1 == 1)
                & (ts <= first[p].saturating_add(window))
                & (ts - last[p] <= limit[j]);
            nodes[used] = ((start_event + offset) as u32, node[p]);
            first[j] = if ok { first[p] } else { first[j] };
            last[j] = if ok { ts } else { last[j] };
            node[j] = if ok { used as u32 } else { node[j] };
            used += usize::from(ok);
            reached |= u64::from(ok) << j;
            if reached & done != 0 {
                break;
            }
        }
        let level = 63 - reached.leading_zeros() as usize;
        let mut outcome = Outcome::none();
        outcome.level = level;
        let mut at = node[level];
        for position in (0..level).rev() {
            let (event, previous) = nodes[at as usize];
            outcome.path[position] = event;
            at = previous;
        }
        outcome
    }

    fn ordered(
        &self,
        journeys: &JourneySet,
        range: std::ops::Range<usize>,
        paths: &mut [[u32; MAX_STEPS]],
    ) -> Outcome {
        let n = self.funnel.steps.len();
        let window = self.funnel.window_us;
        let Flags {
            strict_order,
            dedup,
            increase,
            reentry,
            ..
        } = self.flags;
        let mut set = [false; MAX_STEPS];
        let mut first = [0i64; MAX_STEPS];
        let mut last = [0i64; MAX_STEPS];
        let mut started = false;
        let highest = |set: &[bool; MAX_STEPS], paths: &[[u32; MAX_STEPS]]| match (0..n)
            .rev()
            .find(|level| set[*level])
        {
            Some(level) => Outcome {
                level: level + 1,
                path: paths[level],
            },
            None => Outcome::none(),
        };
        let has_exclusions = !self.exclusions.is_empty();
        let start_event = range.start;
        let steps = &journeys.step[range.clone()];
        let times = &journeys.ts[range];
        for (offset, (step, ts)) in steps.iter().zip(times).enumerate() {
            let event = start_event + offset;
            if has_exclusions {
                if let Some((from, to)) = self.excluded(journeys, event) {
                    set[from..to].iter_mut().for_each(|level| *level = false);
                }
            }
            let mut mask = match &self.step_masks {
                Some(masks) => masks[*step as usize],
                None => self.mask(journeys, event),
            };
            if mask == 0 {
                if strict_order && started {
                    break;
                }
                continue;
            }
            let ts = *ts;
            while mask != 0 {
                let k = mask.trailing_zeros() as usize;
                mask &= mask - 1;
                if k == 0 {
                    set[0] = true;
                    first[0] = ts;
                    last[0] = ts;
                    paths[0][0] = event as u32;
                    started = true;
                    if n == 1 {
                        // Like longer funnels, a one-step funnel stops at its first complete chain.
                        return Outcome {
                            level: 1,
                            path: paths[0],
                        };
                    }
                } else if dedup && set[k] {
                    return highest(&set, paths);
                } else if strict_order && started && !set[k - 1] {
                    if reentry {
                        continue;
                    }
                    let level = (0..n).find(|level| !set[*level]).unwrap_or(n);
                    return Outcome {
                        level,
                        path: if level == 0 {
                            [0; MAX_STEPS]
                        } else {
                            paths[level - 1]
                        },
                    };
                } else if set[k - 1] {
                    let start = first[k - 1];
                    let matched = ts <= start.saturating_add(window)
                        && (!increase || last[k - 1] < ts)
                        && ts - last[k - 1] <= self.within[k];
                    if matched {
                        set[k] = true;
                        first[k] = start;
                        last[k] = ts;
                        // Only the first k entries of a level-k path are meaningful.
                        let (before, after) = paths.split_at_mut(k);
                        after[0][..k].copy_from_slice(&before[k - 1][..k]);
                        after[0][k] = event as u32;
                        if k + 1 == n {
                            return Outcome {
                                level: n,
                                path: paths[k],
                            };
                        }
                    }
                }
            }
        }
        highest(&set, paths)
    }

    fn strict_once(&self, journeys: &JourneySet, range: std::ops::Range<usize>) -> Outcome {
        #[derive(Clone)]
        struct Chain {
            first: i64,
            last: i64,
            path: [u32; MAX_STEPS],
        }
        let n = self.funnel.steps.len();
        let window = self.funnel.window_us;
        let Flags {
            strict_order,
            dedup,
            increase,
            reentry,
            ..
        } = self.flags;
        let mut levels: Vec<Vec<Chain>> = vec![Vec::new(); n];
        let mut started = false;
        let highest =
            |levels: &[Vec<Chain>]| match (0..n).rev().find(|level| !levels[*level].is_empty()) {
                Some(level) => Outcome {
                    level: level + 1,
                    path: levels[level][0].path,
                },
                None => Outcome::none(),
            };
        for event in range {
            let ts = journeys.ts[event];
            if !self.exclusions.is_empty() {
                if let Some((from, to)) = self.excluded(journeys, event) {
                    levels[from..to].iter_mut().for_each(Vec::clear);
                }
            }
            let mut mask = self.mask(journeys, event);
            if mask == 0 {
                if strict_order && started {
                    break;
                }
                continue;
            }
            let id = event as u32;
            while mask != 0 {
                let k = mask.trailing_zeros() as usize;
                mask &= mask - 1;
                if k == 0 {
                    let mut path = [0; MAX_STEPS];
                    path[0] = id;
                    levels[0].push(Chain {
                        first: ts,
                        last: ts,
                        path,
                    });
                    started = true;
                } else if dedup && !levels[k].is_empty() {
                    return highest(&levels);
                } else if strict_order && started && levels[k - 1].is_empty() {
                    if reentry {
                        continue;
                    }
                    let level = (0..n).find(|level| levels[*level].is_empty()).unwrap_or(n);
                    return Outcome {
                        level,
                        path: if level == 0 {
                            [0; MAX_STEPS]
                        } else {
                            levels[level - 1][0].path
                        },
                    };
                } else if !levels[k - 1].is_empty() {
                    let (before, after) = levels.split_at_mut(k);
                    let previous = &mut before[k - 1];
                    let current = &mut after[0];
                    let mut index = 0;
                    while index < previous.len() {
                        let chain = &previous[index];
                        let in_window = ts <= chain.first.saturating_add(window);
                        if !in_window && previous.len() > 1 {
                            previous.remove(index);
                            continue;
                        }
                        let matched = in_window
                            && !chain.path[..k].contains(&id)
                            && (!increase || chain.last < ts)
                            && ts - chain.last <= self.within[k];
                        if matched {
                            let mut path = chain.path;
                            path[k] = id;
                            current.push(Chain {
                                first: chain.first,
                                last: ts,
                                path,
                            });
                            if k + 1 == n {
                                return Outcome { level: n, path };
                            }
                        }
                        index += 1;
                    }
                }
            }
        }
        highest(&levels)
    }

    /// Any order: the most steps, counted as a prefix 1..k of the funnel, all seen within `window` of a step event.
    fn any_order(&self, journeys: &JourneySet, range: std::ops::Range<usize>) -> Outcome {
        let n = self.funnel.steps.len();
        let window = self.funnel.window_us;
        let events: Vec<(usize, u32)> = range
            .filter_map(|event| {
                let mask = self.mask(journeys, event);
                (mask != 0).then_some((event, mask))
            })
            .collect();
        let mut counts = [0u32; MAX_STEPS];
        let mut best = (0usize, 0usize);
        let mut end = 0;
        for (start, (event, _)) in events.iter().enumerate() {
            let limit = journeys.ts[*event].saturating_add(window);
            while end < events.len() && journeys.ts[events[end].0] <= limit {
                let mut mask = events[end].1;
                while mask != 0 {
                    counts[mask.trailing_zeros() as usize] += 1;
                    mask &= mask - 1;
                }
                end += 1;
            }
            let level = (0..n).find(|step| counts[*step] == 0).unwrap_or(n);
            if level > best.0 {
                best = (level, start);
            }
            let mut mask = events[start].1;
            while mask != 0 {
                counts[mask.trailing_zeros() as usize] -= 1;
                mask &= mask - 1;
            }
        }
        let mut outcome = Outcome::none();
        outcome.level = best.0;
        let limit = events.get(best.1).map_or(i64::MIN, |(event, _)| {
            journeys.ts[*event].saturating_add(window)
        });
        for step in 0..best.0 {
            if let Some((event, _)) = events[best.1..]
                .iter()
                .take_while(|(event, _)| journeys.ts[*event] <= limit)
                .find(|(_, mask)| mask & (1 << step) != 0)
            {
                outcome.path[step] = *event as u32;
            }
        }
        outcome
    }

    fn record(
        &self,
        state: &mut FunnelState,
        journeys: &JourneySet,
        journey: usize,
        end: usize,
        outcome: Outcome,
    ) {
        let n = self.funnel.steps.len();
        state.units += 1;
        let level = outcome.level;
        for step in 0..level {
            state.reached[step] += 1;
            if step > 0 {
                let ts = |position: usize| journeys.ts[outcome.path[position] as usize];
                state.since_start[step].push(ts(step) - ts(0));
            }
        }
        if level >= 2 {
            state.levels.push(level as u8);
        }
        if level > 0 && level < n {
            let dropped = &mut state.dropped[level - 1];
            if dropped.len() < self.funnel.drill_down
                || dropped.last().is_some_and(|last| *last > journey as u32)
            {
                dropped.push(journey as u32);
                dropped.sort_unstable();
                dropped.dedup();
                dropped.truncate(self.funnel.drill_down);
            }
            let after = outcome.path[level - 1] as usize + 1;
            let next = if after < end {
                journeys.step[after]
            } else {
                u32::MAX
            };
            *state.next[level - 1].entry(next).or_default() += 1;
        }
        if let (Some(column), Some(breakdown)) = (self.breakdown_column, &self.funnel.breakdown) {
            if level > 0 {
                let at = match breakdown.attribution {
                    Attribution::FirstTouch => Some(0),
                    Attribution::LastTouch => Some(level - 1),
                    Attribution::Step(step) => (step <= level).then_some(step - 1),
                };
                let code = at.map_or(u32::MAX, |position| {
                    journeys.properties[column].codes[outcome.path[position] as usize]
                });
                let counts = state.groups.entry(code).or_insert_with(|| vec![0; n]);
                counts[..level].iter_mut().for_each(|count| *count += 1);
            }
        }
    }
}

impl Analysis for PreparedFunnel<'_> {
    type State = FunnelState;
    type Report = FunnelReport;

    fn new_state(&self, _journeys: &JourneySet) -> FunnelState {
        let n = self.funnel.steps.len();
        FunnelState {
            units: 0,
            reached: vec![0; n],
            since_start: vec![Vec::new(); n],
            levels: Vec::new(),
            dropped: vec![Vec::new(); n],
            next: vec![FxHashMap::default(); n],
            groups: FxHashMap::default(),
            scratch: Scratch::default(),
        }
    }

    fn update(&self, state: &mut FunnelState, journey: JourneyRef<'_>) {
        let journeys = journey.set;
        let end = journey.start + journey.len();
        match self.funnel.count_by {
            CountBy::Customer => {
                let outcome = self.outcome_with(journeys, journey.start..end, &mut state.scratch);
                self.record(state, journeys, journey.index, end, outcome);
            }
            CountBy::Attempt => {
                let starts: Vec<usize> = (journey.start..end)
                    .filter(|event| self.mask(journeys, *event) & 1 != 0)
                    .collect();
                for (position, start) in starts.iter().enumerate() {
                    let stop = starts.get(position + 1).copied().unwrap_or(end);
                    let outcome = self.outcome_with(journeys, *start..stop, &mut state.scratch);
                    self.record(state, journeys, journey.index, stop, outcome);
                }
            }
        }
    }

    fn merge(&self, state: &mut FunnelState, other: FunnelState) {
        state.units += other.units;
        for (total, part) in state.reached.iter_mut().zip(&other.reached) {
            *total += part;
        }
        for (into, from) in state.since_start.iter_mut().zip(other.since_start) {
            into.extend(from);
        }
        state.levels.extend(other.levels);
        for (into, from) in state.dropped.iter_mut().zip(other.dropped) {
            into.extend(from);
            into.sort_unstable();
            into.dedup();
            into.truncate(self.funnel.drill_down);
        }
        for (into, from) in state.next.iter_mut().zip(other.next) {
            for (step, count) in from {
                *into.entry(step).or_default() += count;
            }
        }
        for (code, counts) in other.groups {
            let into = state
                .groups
                .entry(code)
                .or_insert_with(|| vec![0; counts.len()]);
            for (total, part) in into.iter_mut().zip(&counts) {
                *total += part;
            }
        }
    }

    fn finish(
        &self,
        mut state: FunnelState,
        journeys: &JourneySet,
        _runner: &crate::Runner,
    ) -> FunnelReport {
        let mut since_start = std::mem::take(&mut state.since_start);
        // Times from the previous step, one step at a time (before the selections reorder `since_start`): a unit of
        // level L has an entry for each step 1..L, so walking the units with a cursor per step pairs them up.
        let n = self.funnel.steps.len();
        let mut from_previous: Vec<Option<Timing>> = vec![None; n];
        for step in 1..n {
            let mut durations = Vec::with_capacity(since_start[step].len());
            let (mut at, mut before) = (0usize, 0usize);
            for level in state.levels.iter().map(|level| usize::from(*level)) {
                if level > step {
                    let previous = if step == 1 {
                        0
                    } else {
                        since_start[step - 1][before]
                    };
                    durations.push(since_start[step][at] - previous);
                    at += 1;
                }
                if step >= 2 && level > step - 1 {
                    before += 1;
                }
            }
            from_previous[step] = Timing::of(&mut durations);
        }
        let steps = self
            .funnel
            .steps
            .iter()
            .enumerate()
            .map(|(step, definition)| {
                let count = state.reached[step];
                let entered = state.reached[0];
                let previous = if step == 0 {
                    state.units
                } else {
                    state.reached[step - 1]
                };
                let next_count = state.reached.get(step + 1).copied();
                let mut next_steps: Vec<NextStep> = state.next[step]
                    .iter()
                    .map(|(code, count)| NextStep {
                        step: if *code == u32::MAX {
                            "(journey ended)".to_string()
                        } else {
                            journeys.step_names[*code as usize].clone()
                        },
                        count: *count,
                    })
                    .collect();
                next_steps.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.step.cmp(&b.step)));
                next_steps.truncate(10);
                FunnelStepReport {
                    name: definition.name.clone(),
                    count,
                    conversion: ratio(count, entered),
                    step_conversion: ratio(count, previous),
                    dropped: next_count.map_or(0, |next| count - next),
                    time_to_convert: (step > 0)
                        .then(|| Timing::of(&mut since_start[step]))
                        .flatten(),
                    time_from_previous: from_previous[step].take(),
                    dropped_customers: state.dropped[step]
                        .iter()
                        .map(|journey| journeys.customer_ids[*journey as usize].to_string())
                        .collect(),
                    next_steps,
                }
            });
        let breakdown = self
            .funnel
            .breakdown
            .as_ref()
            .zip(self.breakdown_column)
            .map(|(breakdown, column)| {
                let values = &journeys.properties[column].values;
                let mut groups: Vec<(String, Vec<u64>)> = state
                    .groups
                    .iter()
                    .map(|(code, counts)| {
                        let label = match *code {
                            u32::MAX => "(not reached)".to_string(),
                            0 => "(none)".to_string(),
                            code => match &values[code as usize] {
                                serde_json::Value::String(text) => text.clone(),
                                other => other.to_string(),
                            },
                        };
                        (label, counts.clone())
                    })
                    .collect();
                groups.sort_by(|a, b| b.1[0].cmp(&a.1[0]).then_with(|| a.0.cmp(&b.0)));
                let mut shown: Vec<(String, Vec<u64>)> = Vec::new();
                for (label, counts) in groups {
                    if shown.len() < breakdown.top {
                        shown.push((label, counts));
                    } else {
                        match shown.iter_mut().find(|(label, _)| label == "(other)") {
                            Some((_, total)) => total
                                .iter_mut()
                                .zip(&counts)
                                .for_each(|(total, part)| *total += part),
                            None => shown.push(("(other)".to_string(), counts)),
                        }
                    }
                }
                BreakdownReport {
                    property: breakdown.property.clone(),
                    attribution: breakdown.attribution,
                    groups: shown
                        .into_iter()
                        .map(|(value, counts)| BreakdownGroup {
                            conversion: ratio(counts[counts.len() - 1], counts[0]),
                            value,
                            counts,
                        })
                        .collect(),
                }
            });
        FunnelReport {
            units: match self.funnel.count_by {
                CountBy::Customer => "customers",
                CountBy::Attempt => "attempts",
            },
            total: state.units,
            window_secs: self.funnel.window_us as f64 / 1e6,
            modes: self.funnel.modes.clone(),
            steps: steps.collect(),
            breakdown,
            warnings: self.warnings.clone(),
        }
    }
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// The funnel report: JSON `{"units", "total", "window_secs", "modes", "steps": [...], "breakdown"}`.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct FunnelReport {
    /// What is counted: `customers` or `attempts`.
    pub units: &'static str,
    /// Units considered (whether or not they reached step 1).
    pub total: u64,
    pub window_secs: f64,
    pub modes: Vec<FunnelMode>,
    pub steps: Vec<FunnelStepReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breakdown: Option<BreakdownReport>,
    /// What to check in the definition: a step named like no step in the data (its count is then 0).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl FunnelReport {
    /// Units reaching each step.
    pub fn counts(&self) -> Vec<u64> {
        self.steps.iter().map(|step| step.count).collect()
    }
}

/// One funnel step.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct FunnelStepReport {
    pub name: String,
    /// Units that reached this step.
    pub count: u64,
    /// Share of the units that reached step 1.
    pub conversion: f64,
    /// Share of the units that reached the previous step (step 1: of all units).
    pub step_conversion: f64,
    /// Units that reached this step but not the next.
    pub dropped: u64,
    /// Time from step 1 to this step.
    pub time_to_convert: Option<Timing>,
    /// Time from the previous step to this step.
    pub time_from_previous: Option<Timing>,
    /// Some of the customers who stopped at this step (the first in customer order).
    pub dropped_customers: Vec<String>,
    /// What those who stopped here did next (their next event's step).
    pub next_steps: Vec<NextStep>,
}

#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct NextStep {
    pub step: String,
    pub count: u64,
}

/// Durations: mean, median, p90 (numpy's linear quantiles) and a histogram.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Timing {
    pub mean_secs: f64,
    pub median_secs: f64,
    pub p90_secs: f64,
    /// Counts per bucket: durations ≤ `le_secs` and above the previous bucket's bound (last: unbounded).
    pub histogram: Vec<Bucket>,
}

#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Bucket {
    pub le_secs: Option<f64>,
    pub count: u64,
}

/// Histogram bucket bounds: 1 min, 5 min, 15 min, 1 h, 3 h, 12 h, 1 d, 3 d, 7 d, 14 d, 30 d, more.
const BUCKETS_SECS: [f64; 11] = [
    60.0, 300.0, 900.0, 3600.0, 10800.0, 43200.0, 86400.0, 259200.0, 604800.0, 1209600.0, 2592000.0,
];

impl Timing {
    /// The timing of `durations_us` (reordered: quantiles are found by selection, not by sorting).
    fn of(durations_us: &mut [i64]) -> Option<Timing> {
        if durations_us.is_empty() {
            return None;
        }
        let bounds_us = BUCKETS_SECS.map(|bound| (bound * 1e6) as i64);
        let mut histogram: Vec<Bucket> = BUCKETS_SECS
            .iter()
            .map(|bound| Bucket {
                le_secs: Some(*bound),
                count: 0,
            })
            .chain([Bucket {
                le_secs: None,
                count: 0,
            }])
            .collect();
        let mut sum = 0i128;
        for value in durations_us.iter() {
            sum += i128::from(*value);
            histogram[bounds_us.partition_point(|bound| bound < value)].count += 1;
        }
        Some(Timing {
            mean_secs: sum as f64 / 1e6 / durations_us.len() as f64,
            median_secs: quantile_unsorted(durations_us, 0.5)? / 1e6,
            p90_secs: quantile_unsorted(durations_us, 0.9)? / 1e6,
            histogram,
        })
    }
}

/// Counts per breakdown value.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct BreakdownReport {
    pub property: String,
    pub attribution: Attribution,
    pub groups: Vec<BreakdownGroup>,
}

#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct BreakdownGroup {
    pub value: String,
    /// Units reaching each step.
    pub counts: Vec<u64>,
    /// Last step over first.
    pub conversion: f64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run;

    fn set(journeys: &[(&str, &[(i64, &str)])]) -> JourneySet {
        JourneySet::from_journeys(journeys.iter().map(|(customer, events)| {
            (
                customer.to_string(),
                events
                    .iter()
                    .map(|(ts, step)| (*ts, *step, "web"))
                    .collect(),
            )
        }))
    }

    #[test]
    fn the_fast_ordered_loop_equals_the_general_one() {
        use proptest::prelude::*;
        let names = ["a", "b", "c", "d", "e"];
        let journey = prop::collection::vec((0i64..50, 0usize..5), 0..40);
        proptest!(|(events in journey, steps in prop::collection::vec(0usize..5, 1..6), window in 0i64..60, within in prop::option::of(0i64..20))| {
            let mut ts = 0;
            let events: Vec<(i64, &str, &str)> = events
                .iter()
                .map(|(gap, step)| {
                    ts += gap;
                    (ts, names[*step], "web")
                })
                .collect();
            let journeys = JourneySet::from_journeys([("x".to_string(), events)]);
            let step_names: Vec<&str> = steps.iter().map(|step| names[*step]).collect();
            let mut funnel = Funnel::new(&step_names, window);
            if let Some(within) = within {
                funnel.steps.last_mut().unwrap().within_us = Some(within);
            }
            let prepared = funnel.prepare(&journeys).unwrap();
            // Distinct step names take the fast loop (repeated ones that occur take the general loop only).
            let distinct = steps.iter().collect::<std::collections::HashSet<_>>().len() == steps.len();
            prop_assert!(!distinct || prepared.plain_levels.is_some());
            prop_assume!(prepared.plain_levels.is_some());
            let range = 0..journeys.n_events();
            let mut paths = vec![[0; MAX_STEPS]; steps.len()];
            let fast = PreparedFunnel::ordered_plain(
                funnel.window_us,
                &prepared.within,
                prepared.plain_levels.as_ref().unwrap(),
                &journeys,
                range.clone(),
                &mut Vec::new(),
            );
            let general = prepared.ordered(&journeys, range, &mut paths);
            prop_assert_eq!(fast.level, general.level);
            prop_assert_eq!(&fast.path[..fast.level], &general.path[..general.level]);
        });
    }

    #[test]
    fn times_between_steps_are_each_units_own() {
        use proptest::prelude::*;
        let names = ["a", "b", "c", "d"];
        let journey = prop::collection::vec((0i64..40, 0usize..4), 0..30);
        proptest!(|(journeys in prop::collection::vec(journey, 0..25), threads in 1usize..4)| {
            let journeys = JourneySet::from_journeys(journeys.iter().enumerate().map(|(index, events)| {
                let mut ts = 0;
                let events = events
                    .iter()
                    .map(|(gap, step)| {
                        ts += gap;
                        (ts * 1_000_000, names[*step], "web")
                    })
                    .collect();
                (format!("c{index}"), events)
            }));
            let funnel = Funnel::new(&names, 60_000_000);
            let prepared = funnel.prepare(&journeys).unwrap();
            let report = run(&prepared, &journeys, threads);
            // Each unit's own path, step by step.
            let mut expected: Vec<Vec<i64>> = vec![Vec::new(); names.len()];
            for index in 0..journeys.n_journeys() {
                let range = journeys.offsets[index]..journeys.offsets[index + 1];
                let outcome = prepared.outcome(&journeys, range);
                let ts = |position: usize| journeys.ts[outcome.path[position] as usize];
                for (step, durations) in expected.iter_mut().enumerate().take(outcome.level).skip(1) {
                    durations.push(ts(step) - ts(step - 1));
                }
            }
            for (step, report) in report.steps.iter().enumerate() {
                prop_assert_eq!(&report.time_from_previous, &Timing::of(&mut expected[step]), "step {}", step);
            }
        });
    }

    #[test]
    fn steps_named_like_nothing_in_the_data_are_pointed_out() {
        let journeys = set(&[
            ("ann", &[(0, "Searched"), (10, "Login Attempted")]),
            ("bob", &[(0, "Searched"), (10, "Order Completed")]),
        ]);
        let funnel = Funnel::new(&["searched", "Login*", "Nope", "Order"], 100);
        let report = run(&funnel.prepare(&journeys).unwrap(), &journeys, 1);
        assert_eq!(
            report.warnings,
            [
                "Step 1 \"searched\" matches no step in the data (names are matched exactly, `*` as a wildcard); did you mean \"Searched\"?",
                "Step 3 \"Nope\" matches no step in the data (names are matched exactly, `*` as a wildcard).",
                "Step 4 \"Order\" matches no step in the data (names are matched exactly, `*` as a wildcard); did you mean \"Order Completed\"?",
            ]
        );
        let fine = Funnel::new(&["Searched", "Login*"], 100);
        let report = run(&fine.prepare(&journeys).unwrap(), &journeys, 1);
        assert!(report.warnings.is_empty());
        assert!(!serde_json::to_string(&report).unwrap().contains("warnings"));
    }

    #[test]
    fn counts_reached_steps_inside_the_window() {
        let journeys = set(&[
            ("ann", &[(0, "view"), (10, "cart"), (20, "buy")]),
            ("bob", &[(0, "view"), (10, "cart"), (200, "buy")]),
            ("cat", &[(0, "cart"), (10, "buy")]),
            ("dan", &[(5, "view"), (6, "help")]),
        ]);
        let funnel = Funnel::new(&["view", "cart", "buy"], 100);
        let report = run(&funnel.prepare(&journeys).unwrap(), &journeys, 2);
        assert_eq!(report.counts(), [3, 2, 1]);
        assert_eq!(report.total, 4);
        assert_eq!(report.steps[0].dropped, 1);
        assert_eq!(report.steps[0].dropped_customers, ["dan"]);
        assert_eq!(report.steps[0].next_steps[0].step, "help");
        assert_eq!(report.steps[1].dropped_customers, ["bob"]);
        assert_eq!(report.steps[1].next_steps[0].step, "buy");
        let timing = report.steps[2].time_to_convert.as_ref().unwrap();
        assert_eq!(timing.median_secs, 20e-6);
    }

    #[test]
    fn breakdown_attributes_to_the_first_or_last_touch() {
        let mut journeys = set(&[
            ("ann", &[(0, "view"), (10, "buy")]),
            ("bob", &[(0, "view"), (10, "buy")]),
            ("cat", &[(0, "view")]),
        ]);
        let mut builder = waymark_model::PropertyColumnBuilder::new("source");
        for value in ["ad", "mail", "mail", "ad", "ad"] {
            builder.push(Some(&serde_json::json!(value)));
        }
        journeys.properties.push(builder.finish());
        let mut funnel = Funnel::new(&["view", "buy"], 100);
        funnel.breakdown = Some(Breakdown {
            property: "source".into(),
            attribution: Attribution::FirstTouch,
            top: 10,
        });
        let report = run(&funnel.prepare(&journeys).unwrap(), &journeys, 1);
        let groups = report.breakdown.unwrap().groups;
        assert_eq!(
            groups
                .iter()
                .map(|group| (group.value.as_str(), group.counts.clone()))
                .collect::<Vec<_>>(),
            [("ad", vec![2, 1]), ("mail", vec![1, 1])]
        );
        funnel.breakdown.as_mut().unwrap().attribution = Attribution::LastTouch;
        let report = run(&funnel.prepare(&journeys).unwrap(), &journeys, 1);
        let groups = report.breakdown.unwrap().groups;
        // ann ends on mail, bob on ad, cat (step 1 only) on ad.
        assert_eq!(
            groups
                .iter()
                .map(|group| (group.value.as_str(), group.counts.clone()))
                .collect::<Vec<_>>(),
            [("ad", vec![2, 1]), ("mail", vec![1, 1])]
        );
    }

    #[test]
    fn exclusions_void_the_chain_they_interrupt() {
        let journeys = set(&[
            ("ann", &[(0, "view"), (5, "error"), (10, "buy")]),
            ("bob", &[(0, "view"), (10, "buy"), (15, "error")]),
        ]);
        let mut funnel = Funnel::new(&["view", "buy"], 100);
        funnel.exclusions.push(Exclusion {
            condition: Condition::step("error"),
            after: 1,
            before: None,
        });
        let report = run(&funnel.prepare(&journeys).unwrap(), &journeys, 1);
        assert_eq!(report.counts(), [1, 1]);
    }

    #[test]
    fn any_order_and_attempts() {
        let journeys = set(&[(
            "ann",
            &[
                (0, "buy"),
                (10, "view"),
                (500, "view"),
                (900, "view"),
                (950, "buy"),
            ],
        )]);
        let mut funnel = Funnel::new(&["view", "buy"], 100);
        assert_eq!(
            run(&funnel.prepare(&journeys).unwrap(), &journeys, 1).counts(),
            [1, 1]
        );
        funnel.modes = vec![FunnelMode::AnyOrder];
        assert_eq!(
            run(&funnel.prepare(&journeys).unwrap(), &journeys, 1).counts(),
            [1, 1]
        );
        funnel.modes.clear();
        funnel.count_by = CountBy::Attempt;
        let report = run(&funnel.prepare(&journeys).unwrap(), &journeys, 1);
        assert_eq!((report.total, report.counts()), (3, vec![3, 1]));
    }

    #[test]
    fn bad_definitions_are_refused_with_a_reason() {
        let journeys = set(&[]);
        let funnel = Funnel::new(&["a", "b"], 10).with_modes(&[FunnelMode::AllowReentry]);
        assert!(funnel
            .prepare(&journeys)
            .err()
            .unwrap()
            .to_string()
            .contains("strict_order"));
        assert!(Funnel::new(&[], 10).prepare(&journeys).is_err());
        let mut funnel = Funnel::new(&["a"], 10);
        funnel.breakdown = Some(Breakdown {
            property: "plan".into(),
            attribution: Attribution::FirstTouch,
            top: 3,
        });
        assert!(funnel
            .prepare(&journeys)
            .err()
            .unwrap()
            .to_string()
            .contains("plan"));
    }
}
