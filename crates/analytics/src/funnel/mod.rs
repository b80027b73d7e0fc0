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
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use waymark_model::JourneySet;

mod matching;
mod report;
#[cfg(test)]
mod tests;

pub use report::{
    BreakdownGroup, BreakdownReport, Bucket, FunnelReport, FunnelStepReport, NextStep, Timing,
};

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
    /// The steps may happen in any order within the window: a unit is at step k when it did any k distinct steps of
    /// the funnel within the window (PostHog's and Mixpanel's unordered funnels; not a ClickHouse mode).
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
    /// Per step: units that stopped there but did the next step later (outside the window or the mode's rules).
    next_later: Vec<u64>,
    /// Per step: units that stopped there but did the last step later anyway (another way: out of order, outside
    /// the window, without the steps between).
    last_later: Vec<u64>,
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
