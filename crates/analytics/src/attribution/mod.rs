//! `attribution`: how much credit each touchpoint (a channel, or a step) deserves for the conversions that followed
//! it — first touch, last touch, linear, position-based, time decay, and the Markov-chain removal effect of order k.
//!
//! Journeys become paths: the touchpoints since the previous conversion (within a lookback window before the
//! conversion) form a converting path; what follows a customer's last conversion, when it has touchpoints, is a
//! path that did not convert. The paths are aggregated into ChannelAttribution's path table, which every model but
//! time decay reads (time decay needs each touch's time, so it is credited during the pass). A path table can also
//! be given directly ([`PathTable::parse_channelattribution`], `waymark attribution --paths FILE`).

mod heuristic;
mod markov;
pub mod paths;

pub use heuristic::{heuristics, Credit, HeuristicSums, Heuristics};
pub use markov::{share_out, Chain, ChainCounts, RemovalEffects, Transition};
pub use paths::{PathCounts, PathOutcome, PathTable};

use crate::condition::{wildcard_match, Compiled};
use crate::{Analysis, AnalyticsError, Condition, Runner};
use rustc_hash::FxHashSet;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use waymark_model::{JourneyRef, JourneySet, IDENTITY_STEPS};

/// What a touchpoint is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TouchpointKind {
    /// The channel of each event (web, app, email, call_center, …).
    #[default]
    Channel,
    /// The step of each event.
    Step,
}

/// Time-decay credit is kept in billionths of a conversion, as integers, so that it does not depend on the order
/// (or the number of threads) in which journeys are read, and each conversion's shares add up to exactly one.
const CREDIT_UNIT: i128 = 1_000_000_000;

/// The analysis as asked for: what converts, what a touchpoint is, and how paths are cut.
#[derive(Debug, Clone)]
pub struct Attribution {
    pub kind: TouchpointKind,
    /// Reaching any of these is a conversion (each goal event closes a path).
    pub goals: Vec<Condition>,
    /// Touchpoints that count (channel or step names, `*` patterns); empty: every channel, or every step but the
    /// identity calls ([`IDENTITY_STEPS`]).
    pub touchpoints: Vec<String>,
    /// Touches older than this before the conversion (or the journey's last event) are left out.
    pub lookback_us: Option<i64>,
    /// Consecutive touches of the same touchpoint are one touch.
    pub collapse_repeats: bool,
    /// The goal event's property holding a conversion's value (a number, or text that reads as one).
    pub value_property: Option<String>,
    /// The Markov chain's order: a state is the last `order` touchpoints.
    pub order: usize,
    /// Time decay: a touch this long before the conversion counts half as much as one at the conversion.
    pub half_life_us: i64,
    pub transition_matrix: bool,
}

impl Attribution {
    /// The property columns the goals and the value read.
    pub fn properties(&self) -> Vec<String> {
        let mut properties = Vec::new();
        for goal in &self.goals {
            goal.properties(&mut properties);
        }
        properties.extend(self.value_property.iter().cloned());
        properties.sort();
        properties.dedup();
        properties
    }

    /// Binds the analysis to `journeys`' dictionaries.
    pub fn prepare(
        &self,
        journeys: &JourneySet,
    ) -> Result<PreparedAttribution<'_>, AnalyticsError> {
        check_order(self.order)?;
        if self.goals.is_empty() {
            return Err(AnalyticsError::field(
                "goals",
                "name at least one goal step",
            ));
        }
        let mut warnings = Vec::new();
        let mut goals = Vec::with_capacity(self.goals.len());
        for goal in &self.goals {
            let compiled = goal.compile(journeys)?;
            warnings.extend(goal.unmatched(&compiled, journeys, "The goal"));
            goals.push(compiled);
        }
        let names = match self.kind {
            TouchpointKind::Channel => &journeys.channel_names,
            TouchpointKind::Step => &journeys.step_names,
        };
        let touchpoints = if !self.touchpoints.is_empty() {
            Some(
                names
                    .iter()
                    .map(|name| {
                        self.touchpoints
                            .iter()
                            .any(|pattern| wildcard_match(pattern, name))
                    })
                    .collect::<Vec<bool>>(),
            )
        } else if self.kind == TouchpointKind::Step {
            // Identity calls are not touches unless named.
            Some(
                names
                    .iter()
                    .map(|name| !IDENTITY_STEPS.contains(&name.as_str()))
                    .collect(),
            )
        } else {
            None
        };
        for pattern in &self.touchpoints {
            if !names.iter().any(|name| wildcard_match(pattern, name)) {
                warnings.push(format!(
                    "The touchpoint \"{pattern}\" matches no {} in the data.",
                    self.kind.noun()
                ));
            }
        }
        let goal = Compiled::Any(goals);
        Ok(PreparedAttribution {
            spec: self,
            goal_steps: goal.steps_only(),
            goal,
            touchpoints,
            value_column: self.value_property.as_ref().and_then(|property| {
                journeys
                    .properties
                    .iter()
                    .position(|column| &column.name == property)
            }),
            warnings,
        })
    }
}

/// The highest Markov order: states are sequences of up to this many touchpoints.
pub const MAX_ORDER: usize = 4;

/// `order` as a request gives it: 1 to [`MAX_ORDER`].
pub fn check_order(order: usize) -> Result<(), AnalyticsError> {
    if (1..=MAX_ORDER).contains(&order) {
        return Ok(());
    }
    Err(AnalyticsError::field(
        "order",
        format!("order must be between 1 and {MAX_ORDER}; got {order}"),
    ))
}

impl TouchpointKind {
    fn noun(self) -> &'static str {
        match self {
            TouchpointKind::Channel => "channel",
            TouchpointKind::Step => "step",
        }
    }
}

/// The analysis bound to one journey set.
#[derive(Debug, Clone)]
pub struct PreparedAttribution<'a> {
    spec: &'a Attribution,
    goal: Compiled,
    /// The goal as a per-step table, when it depends on the step alone.
    goal_steps: Option<Vec<bool>>,
    /// Per touchpoint code (channel or step): whether it counts as a touchpoint (`None`: every one does).
    touchpoints: Option<Vec<bool>>,
    /// The property column (index in the journey set) holding a conversion's value.
    value_column: Option<usize>,
    warnings: Vec<String>,
}

/// Everything the models read from paths, summed so that it does not depend on the order (or the number of
/// threads) in which the paths are added: no path table is kept or sorted.
#[derive(Debug, Clone, Default)]
pub struct PathSums {
    /// The distinct paths, by a 128-bit fingerprint of their codes (a collision among even 10^12 paths has a chance
    /// below 10^-14).
    distinct: FxHashSet<u128>,
    totals: PathOutcome,
    /// Per touchpoint: whether some path touches it.
    seen: Vec<bool>,
    heuristics: HeuristicSums,
    chain: ChainCounts,
    /// The path's bytes being fingerprinted (reused).
    bytes: Vec<u8>,
}

impl PathSums {
    /// Sums for paths over `n_touchpoints` codes and a chain of `order`.
    pub fn new(n_touchpoints: usize, order: usize) -> PathSums {
        PathSums {
            seen: vec![false; n_touchpoints],
            heuristics: HeuristicSums::new(n_touchpoints),
            chain: ChainCounts::new(order),
            ..PathSums::default()
        }
    }

    /// The sums of a path table's paths.
    pub fn of_table(table: &PathTable, order: usize) -> PathSums {
        let mut sums = PathSums::new(table.touchpoints.len(), order);
        for (path, outcome) in &table.paths {
            sums.add(path, outcome);
        }
        sums
    }

    pub fn add(&mut self, path: &[u32], outcome: &PathOutcome) {
        self.bytes.clear();
        for code in path {
            self.bytes.extend_from_slice(&code.to_le_bytes());
            self.seen[*code as usize] = true;
        }
        self.distinct
            .insert(xxhash_rust::xxh3::xxh3_128(&self.bytes));
        self.totals.add(*outcome);
        self.heuristics.add(path, outcome);
        self.chain.add(path, outcome);
    }

    pub fn merge(&mut self, other: PathSums) {
        if self.distinct.len() < other.distinct.len() {
            let mine = std::mem::replace(&mut self.distinct, other.distinct);
            self.distinct.extend(mine);
        } else {
            self.distinct.extend(other.distinct);
        }
        self.totals.add(other.totals);
        for (into, from) in self.seen.iter_mut().zip(other.seen) {
            *into |= from;
        }
        self.heuristics.merge(other.heuristics);
        self.chain.merge(other.chain);
    }
}

/// Paths so far plus time-decay credit per touchpoint.
#[derive(Debug, Clone, Default)]
pub struct AttributionState {
    paths: PathSums,
    /// Per touchpoint: time-decay conversions, in [`CREDIT_UNIT`]s.
    decay_conversions: Vec<i128>,
    /// Per touchpoint: time-decay value, in millionths × [`CREDIT_UNIT`].
    decay_value: Vec<i128>,
    /// Conversions with no touchpoint in the lookback window (not attributed to anything).
    unattributed_conversions: u64,
    unattributed_value: i128,
    /// Buffers reused from conversion to conversion (not merged).
    scratch_weights: Vec<f64>,
    scratch_shares: Vec<i128>,
    scratch_touches: Vec<(u32, i64)>,
    scratch_path: Vec<u32>,
    scratch_times: Vec<i64>,
}

/// Conversions and value one model credits to one touchpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, JsonSchema)]
pub struct ModelCredit {
    pub conversions: f64,
    pub value: f64,
}

/// One touchpoint's credit under every model.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct TouchpointCredit {
    pub touchpoint: String,
    pub first_touch: ModelCredit,
    pub last_touch: ModelCredit,
    pub linear: ModelCredit,
    /// 40 % first touch, 40 % last, 20 % shared by the touches between.
    pub position_based: ModelCredit,
    /// Touches weighted by `2^(−age / half_life)`; absent for a path table, which has no times.
    pub time_decay: Option<ModelCredit>,
    /// The Markov model: conversions and value shared in proportion to the removal effects.
    pub markov: ModelCredit,
    /// The share of conversions lost when this touchpoint is removed from the chain (`1 − P(without) / P(with)`).
    pub removal_effect: f64,
    /// The same for conversion value.
    pub value_removal_effect: f64,
}

/// One transition of the Markov chain.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct TransitionRow {
    /// `(start)`, or a state: the last `order` touchpoints, joined by `,`.
    pub from: String,
    /// A state, `(conversion)` or `(null)`.
    pub to: String,
    pub probability: f64,
}

/// JSON `{"touchpoint_kind", "order", "conversions", "value", "null_paths", "paths", "touchpoints": [...], …}`,
/// touchpoints by Markov conversions, most first.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct AttributionReport {
    pub touchpoint_kind: TouchpointKind,
    pub order: usize,
    /// Conversions on paths with at least one touchpoint (what every model shares out).
    pub conversions: u64,
    pub value: f64,
    /// Journeys (or journey tails) with touchpoints that did not convert.
    pub null_paths: u64,
    /// Distinct touchpoint paths.
    pub paths: u64,
    /// Conversions with no touchpoint in the lookback window, credited to nothing.
    pub unattributed_conversions: u64,
    /// The Markov chain's probability of converting from its start.
    pub conversion_probability: f64,
    pub touchpoints: Vec<TouchpointCredit>,
    /// The chain's transitions, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transition_matrix: Option<Vec<TransitionRow>>,
    /// Goals or touchpoints that match nothing in the data.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl PreparedAttribution<'_> {
    fn n_touchpoints(&self, journeys: &JourneySet) -> usize {
        match self.spec.kind {
            TouchpointKind::Channel => journeys.channel_names.len(),
            TouchpointKind::Step => journeys.step_names.len(),
        }
    }

    fn touchpoint_names(&self, journeys: &JourneySet) -> Vec<String> {
        match self.spec.kind {
            TouchpointKind::Channel => journeys.channel_names.clone(),
            TouchpointKind::Step => journeys.step_names.clone(),
        }
    }

    /// The conversion value at `event`: a number, or text that reads as one; anything else is 0.
    fn value_at(&self, journeys: &JourneySet, event: usize) -> f64 {
        let Some(column) = self.value_column else {
            return 0.0;
        };
        match journeys.properties[column].value(event) {
            serde_json::Value::Number(number) => number.as_f64().unwrap_or(0.0),
            serde_json::Value::String(text) => text.trim().parse().unwrap_or(0.0),
            _ => 0.0,
        }
        .max(0.0)
    }

    /// The touches of a path ending at `end_us`: within the lookback window, repeats collapsed if asked.
    fn path_of(
        &self,
        touches: &[(u32, i64)],
        end_us: i64,
        path: &mut Vec<u32>,
        times: &mut Vec<i64>,
    ) {
        path.clear();
        times.clear();
        let since = self
            .spec
            .lookback_us
            .map_or(i64::MIN, |lookback| end_us.saturating_sub(lookback));
        for (code, ts) in touches.iter().filter(|(_, ts)| *ts >= since) {
            if self.spec.collapse_repeats && path.last() == Some(code) {
                // The touch nearest the conversion stands for the run.
                *times.last_mut().expect("times follow the path") = *ts;
                continue;
            }
            path.push(*code);
            times.push(*ts);
        }
    }

    fn credit_decay(
        &self,
        state: &mut AttributionState,
        path: &[u32],
        times: &[i64],
        end_us: i64,
        value: i128,
    ) {
        let mut weights = std::mem::take(&mut state.scratch_weights);
        let mut shares = std::mem::take(&mut state.scratch_shares);
        weights.clear();
        let rate = std::f64::consts::LN_2 / self.spec.half_life_us.max(1) as f64;
        weights.extend(
            times
                .iter()
                .map(|ts| (-((end_us - ts).max(0) as f64) * rate).exp()),
        );
        split_exact(CREDIT_UNIT, &weights, &mut shares);
        for (touch, share) in path.iter().zip(&shares) {
            state.decay_conversions[*touch as usize] += share;
            state.decay_value[*touch as usize] += value * share;
        }
        state.scratch_weights = weights;
        state.scratch_shares = shares;
    }
}

/// `total` units split in proportion to `weights` into `parts`, each rounded down and what rounding left over (fewer
/// units than there are parts) given to the heaviest part (the first of equals), so the parts add up to `total`
/// exactly; all weights zero: everything to the last part.
fn split_exact(total: i128, weights: &[f64], parts: &mut Vec<i128>) {
    parts.clear();
    let sum: f64 = weights.iter().sum();
    if weights.is_empty() || sum.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
        parts.resize(weights.len(), 0);
        if let Some(last) = parts.last_mut() {
            *last = total;
        }
        return;
    }
    let scale = total as f64 / sum;
    parts.extend(
        weights
            .iter()
            .map(|weight| ((weight * scale) as i128).clamp(0, total)),
    );
    let left = total - parts.iter().sum::<i128>();
    let heaviest =
        weights.iter().enumerate().fold(
            0,
            |best, (index, weight)| if *weight > weights[best] { index } else { best },
        );
    parts[heaviest] += left;
}

impl Analysis for PreparedAttribution<'_> {
    type State = AttributionState;
    type Report = AttributionReport;

    fn new_state(&self, journeys: &JourneySet) -> AttributionState {
        let n = self.n_touchpoints(journeys);
        AttributionState {
            paths: PathSums::new(n, self.spec.order),
            decay_conversions: vec![0; n],
            decay_value: vec![0; n],
            ..AttributionState::default()
        }
    }

    fn update(&self, state: &mut AttributionState, journey: JourneyRef<'_>) {
        if journey.is_empty() {
            return;
        }
        let set = journey.set;
        let mut touches = std::mem::take(&mut state.scratch_touches);
        let mut path = std::mem::take(&mut state.scratch_path);
        let mut times = std::mem::take(&mut state.scratch_times);
        touches.clear();
        for event in journey.start..journey.start + journey.len() {
            let step = set.step[event] as usize;
            let ts = set.ts[event];
            let is_goal = match &self.goal_steps {
                Some(table) => table[step],
                None => self.goal.matches(set, event),
            };
            if is_goal {
                let value = paths::value_units(self.value_at(set, event));
                self.path_of(&touches, ts, &mut path, &mut times);
                if path.is_empty() {
                    state.unattributed_conversions += 1;
                    state.unattributed_value += value;
                } else {
                    state.paths.add(
                        &path,
                        &PathOutcome {
                            conversions: 1,
                            value,
                            nulls: 0,
                        },
                    );
                    self.credit_decay(state, &path, &times, ts, value);
                }
                touches.clear();
                continue;
            }
            let code = match self.spec.kind {
                TouchpointKind::Channel => u32::from(set.channel[event]),
                TouchpointKind::Step => step as u32,
            };
            if self
                .touchpoints
                .as_ref()
                .is_none_or(|touchpoints| touchpoints[code as usize])
            {
                touches.push((code, ts));
            }
        }
        if !touches.is_empty() {
            let end = set.ts[journey.start + journey.len() - 1];
            self.path_of(&touches, end, &mut path, &mut times);
            if !path.is_empty() {
                state.paths.add(
                    &path,
                    &PathOutcome {
                        conversions: 0,
                        value: 0,
                        nulls: 1,
                    },
                );
            }
        }
        state.scratch_touches = touches;
        state.scratch_path = path;
        state.scratch_times = times;
    }

    fn merge(&self, state: &mut AttributionState, other: AttributionState) {
        state.paths.merge(other.paths);
        for (into, from) in state
            .decay_conversions
            .iter_mut()
            .zip(other.decay_conversions)
        {
            *into += from;
        }
        for (into, from) in state.decay_value.iter_mut().zip(other.decay_value) {
            *into += from;
        }
        state.unattributed_conversions += other.unattributed_conversions;
        state.unattributed_value += other.unattributed_value;
    }

    fn finish(
        &self,
        state: AttributionState,
        journeys: &JourneySet,
        _runner: &Runner,
    ) -> AttributionReport {
        let names = self.touchpoint_names(journeys);
        let decay = Credit {
            conversions: state
                .decay_conversions
                .iter()
                .map(|units| *units as f64 / CREDIT_UNIT as f64)
                .collect(),
            value: state
                .decay_value
                .iter()
                .map(|units| *units as f64 / CREDIT_UNIT as f64 / paths::VALUE_UNIT)
                .collect(),
        };
        let mut report = attribute_sums(
            state.paths,
            &names,
            self.spec.order,
            Some(&decay),
            self.spec.transition_matrix,
        );
        report.touchpoint_kind = self.spec.kind;
        report.warnings = self.warnings.clone();
        report.unattributed_conversions = state.unattributed_conversions;
        report
    }
}

/// Every model over a path table; `decay` is the time-decay credit when the paths had times.
pub fn attribute(
    table: &PathTable,
    order: usize,
    decay: Option<&Credit>,
    transition_matrix: bool,
) -> AttributionReport {
    attribute_sums(
        PathSums::of_table(table, order),
        &table.touchpoints,
        order,
        decay,
        transition_matrix,
    )
}

/// Every model over summed paths whose codes name `names`.
fn attribute_sums(
    sums: PathSums,
    names: &[String],
    order: usize,
    decay: Option<&Credit>,
    transition_matrix: bool,
) -> AttributionReport {
    let n = names.len();
    let totals = sums.totals;
    let models = sums.heuristics.finish();
    let chain = Chain::from_counts(sums.chain);
    let effects = chain.removal_effects(n);
    let markov_conversions = share_out(totals.conversions as f64, &effects.conversions);
    let markov_value = share_out(totals.value_f64(), &effects.value);
    let credit = |model: &Credit, touchpoint: usize| ModelCredit {
        conversions: model.conversions[touchpoint],
        value: model.value[touchpoint],
    };
    let mut touchpoints: Vec<TouchpointCredit> = (0..n)
        .filter(|touchpoint| sums.seen[*touchpoint])
        .map(|touchpoint| TouchpointCredit {
            touchpoint: names[touchpoint].clone(),
            first_touch: credit(&models.first, touchpoint),
            last_touch: credit(&models.last, touchpoint),
            linear: credit(&models.linear, touchpoint),
            position_based: credit(&models.position, touchpoint),
            time_decay: decay.map(|decay| credit(decay, touchpoint)),
            markov: ModelCredit {
                conversions: markov_conversions[touchpoint],
                value: markov_value[touchpoint],
            },
            removal_effect: effects.conversions[touchpoint],
            value_removal_effect: effects.value[touchpoint],
        })
        .collect();
    touchpoints.sort_by(|a, b| {
        b.markov
            .conversions
            .total_cmp(&a.markov.conversions)
            .then_with(|| a.touchpoint.cmp(&b.touchpoint))
    });
    AttributionReport {
        touchpoint_kind: TouchpointKind::Channel,
        order: order.max(1),
        conversions: totals.conversions,
        value: totals.value_f64(),
        null_paths: totals.nulls,
        paths: sums.distinct.len() as u64,
        unattributed_conversions: 0,
        conversion_probability: effects.conversion_probability,
        touchpoints,
        transition_matrix: transition_matrix.then(|| {
            chain
                .transitions(names)
                .into_iter()
                .map(|transition| TransitionRow {
                    from: transition.from,
                    to: transition.to,
                    probability: transition.probability,
                })
                .collect()
        }),
        warnings: Vec::new(),
    }
}

#[cfg(test)]
mod tests;
