//! `moments`: the moments of truth — which steps (and step × property values) decide whether a customer reaches
//! the goal, with effect sizes a CX team can trust.
//!
//! Two passes. The first counts, per candidate, the customers who did it among those who reached the goal (`s` of
//! `S`) and among those who did not (`f` of `F`), from the events strictly after the customer's entry (the journey's
//! start, or the first entry event) and before the first goal (or the end of the window): PostHog's correlation
//! analysis, odds ratio `((s+1)(F−f+1)) / ((S−s+1)(f+1))`, dropped below PostHog's minimum support, flagged when the
//! classes are skewed past 10:1. Beyond PostHog, each ratio gets a confidence interval and a p-value, and the
//! Benjamini–Hochberg correction across every candidate tested decides which are significant.
//!
//! The second pass measures, for the moments reported, the **lift**: the goal rate of the customers who did the
//! moment against comparable customers who did not, matched exactly on the steps just before it and on a segment
//! (see [`lift`]), with a stratified bootstrap interval from a seed.

pub mod lift;
mod odds;

pub use lift::{Lift, LiftOptions};
pub use odds::{benjamini_hochberg, Contingency, OddsRatio};

use crate::condition::Compiled;
use crate::{Analysis, AnalyticsError, Condition, Plan, Runner};
use rustc_hash::FxHashMap;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;
use waymark_model::{JourneyRef, JourneySet, IDENTITY_STEPS};

/// Candidates per side whose lift is measured, per moment shown.
const POOL: usize = 3;

/// One class is more than this many times the other: PostHog's warning that the ratios are unreliable.
const SKEW: f64 = 10.0;

/// The analysis as asked for.
#[derive(Debug, Clone)]
pub struct Moments {
    /// Reaching any of these is the outcome; their steps are not candidates.
    pub goals: Vec<Condition>,
    /// Journeys count from their first entry event (and journeys without one are left out); `None`: from the start.
    pub entry: Option<Condition>,
    /// Only what happens within this long after the entry counts, the goal included.
    pub window_us: Option<i64>,
    /// Event properties whose values, per step, are candidates too (`context.device.type`, `article`).
    pub properties: Vec<String>,
    /// PostHog's minimum support: a candidate needs `min(min_customers, min_share × customers)` customers.
    pub min_customers: u64,
    pub min_share: f64,
    /// Of the odds ratios' intervals and the lift's bootstrap interval.
    pub confidence: f64,
    /// The false-discovery rate: a moment is significant when its Benjamini–Hochberg q-value is at most this.
    pub fdr: f64,
    /// Moments shown per side (raising and lowering the goal rate).
    pub top: usize,
    /// Show moments whose q-value is above `fdr` too (marked as not significant).
    pub include_insignificant: bool,
    pub lift: LiftOptions,
    /// Customers listed per moment.
    pub examples: usize,
    /// Without a `window`: the window is the time within which this share of the customers who reach the goal
    /// do so (from the entry), so that both sides are watched for as long — otherwise what non-converters do days
    /// after giving up (browsing, support) would count against steps that converters never had time for. `None`:
    /// no window, every later event counts.
    pub auto_window_quantile: Option<f64>,
    /// A step after which at least `1 − settled_share` reach the goal, or without which at most `settled_share` do,
    /// all but settles the outcome (it is on the goal's own path, or a way of giving up): it is reported apart
    /// from the moments, which leave the outcome open (0: nothing is set apart).
    pub settled_share: f64,
}

impl Default for Moments {
    fn default() -> Moments {
        Moments {
            goals: Vec::new(),
            entry: None,
            window_us: None,
            properties: Vec::new(),
            min_customers: 25,
            min_share: 0.02,
            confidence: 0.95,
            fdr: 0.05,
            top: 10,
            include_insignificant: false,
            lift: LiftOptions::default(),
            examples: 5,
            auto_window_quantile: Some(0.9),
            settled_share: 0.05,
        }
    }
}

/// A candidate moment: a step, or a step with one value of a property.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Candidate {
    pub step: u32,
    /// `(index into the prepared property columns, value code)`; `None`: the step whatever its properties.
    pub value: Option<(u16, u32)>,
}

/// One moment of truth.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct Moment {
    pub step: String,
    /// With a property value: the property, and the value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub property: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    /// `Step`, or `Step · property = value`.
    pub label: String,
    /// Customers who did it and reached the goal (PostHog's success count).
    pub reached_with: u64,
    /// Customers who did it and did not reach the goal (PostHog's failure count).
    pub not_reached_with: u64,
    /// Goal rate of the customers who did it, and of those who did not.
    pub goal_rate_with: f64,
    pub goal_rate_without: f64,
    pub odds_ratio: f64,
    /// The odds ratio's confidence interval.
    pub odds_ratio_low: f64,
    pub odds_ratio_high: f64,
    pub p_value: f64,
    /// Benjamini–Hochberg, across every candidate tested.
    pub q_value: f64,
    pub significant: bool,
    /// Goals gained (or, negative, lost) by the customers who did it against comparable customers: the lift times
    /// the matched customers. Moments are ranked by it.
    pub goals_changed: Option<f64>,
    /// The goal rate against matched comparable customers.
    pub lift: Option<Lift>,
    /// Some customers who did it (the first in customer order).
    pub example_customers: Vec<String>,
}

/// JSON `{"goals", "customers", "reached", "not_reached", "goal_rate", "skewed", "tested", "significant",
/// "positive": [...], "negative": [...], "settled": [...], …}`; `positive` raise the goal rate, `negative` lower it,
/// each by the goals gained or lost against comparable customers, most first.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct MomentsReport {
    pub goals: Vec<String>,
    /// Customers (journeys) in the analysis: with an entry event when one is set.
    pub customers: u64,
    pub reached: u64,
    pub not_reached: u64,
    pub goal_rate: f64,
    /// One class outnumbers the other more than 10:1; the ratios are then unreliable (PostHog's warning).
    pub skewed: bool,
    /// Candidates with enough support, all tested (the false-discovery correction is over these).
    pub tested: usize,
    /// Candidates left out for too little support.
    pub too_small: usize,
    /// Tested candidates whose q-value is at most `fdr`.
    pub significant: usize,
    /// The support a candidate needed, in customers.
    pub min_support: f64,
    pub confidence: f64,
    pub fdr: f64,
    /// The window every journey was watched for after its entry, seconds (given, or the time within which the
    /// chosen share of converters convert); absent: no window.
    pub window_secs: Option<f64>,
    pub positive: Vec<Moment>,
    pub negative: Vec<Moment>,
    /// Steps that all but settle the outcome — nearly everyone who did them reached the goal, or nearly no one
    /// without them did (the goal's own path, or ways of giving up) — by odds ratio, furthest from 1 first.
    pub settled: Vec<Moment>,
    /// What the lift's comparable customers are matched on.
    pub lift_matched_on: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl Moments {
    /// The property columns the conditions, candidates and segment read.
    pub fn properties(&self) -> Vec<String> {
        let mut properties = self.properties.clone();
        for goal in self.goals.iter().chain(&self.entry) {
            goal.properties(&mut properties);
        }
        properties.extend(self.lift.segment_by.iter().cloned());
        properties.sort();
        properties.dedup();
        properties
    }

    pub fn prepare(&self, journeys: &JourneySet) -> Result<PreparedMoments<'_>, AnalyticsError> {
        if self.goals.is_empty() {
            return Err(AnalyticsError::field(
                "goals",
                "name at least one goal step",
            ));
        }
        if !(self.confidence > 0.5 && self.confidence < 1.0) {
            return Err(AnalyticsError::field(
                "confidence",
                format!(
                    "confidence must be between 0.5 and 1 (e.g. 0.95); got {}",
                    self.confidence
                ),
            ));
        }
        if !(self.fdr > 0.0 && self.fdr < 1.0) {
            return Err(AnalyticsError::field(
                "fdr",
                format!("fdr must be between 0 and 1 (e.g. 0.05); got {}", self.fdr),
            ));
        }
        if self
            .auto_window_quantile
            .is_some_and(|quantile| !(quantile > 0.0 && quantile <= 1.0))
        {
            return Err(AnalyticsError::field(
                "auto_window_quantile",
                "auto_window_quantile must be above 0 and at most 1 (e.g. 0.9)",
            ));
        }
        if !(0.0..0.5).contains(&self.settled_share) {
            return Err(AnalyticsError::field(
                "settled_share",
                "settled_share must be at least 0 and below 0.5",
            ));
        }
        if !(0.0..=1.0).contains(&self.min_share) {
            return Err(AnalyticsError::field(
                "min_share",
                "min_share must be between 0 and 1",
            ));
        }
        self.lift.check()?;
        let mut warnings = Vec::new();
        let mut goals = Vec::new();
        let mut candidate = vec![true; journeys.step_names.len()];
        for goal in &self.goals {
            let compiled = goal.compile(journeys)?;
            warnings.extend(goal.unmatched(&compiled, journeys, "The goal"));
            exclude_steps(&compiled, &mut candidate);
            goals.push(compiled);
        }
        let entry = match &self.entry {
            Some(entry) => {
                let compiled = entry.compile(journeys)?;
                warnings.extend(entry.unmatched(&compiled, journeys, "The entry step"));
                exclude_steps(&compiled, &mut candidate);
                Some(compiled)
            }
            None => None,
        };
        for (step, name) in journeys.step_names.iter().enumerate() {
            if IDENTITY_STEPS.contains(&name.as_str()) {
                candidate[step] = false;
            }
        }
        let column = |name: &str| {
            journeys
                .properties
                .iter()
                .position(|column| column.name == name)
        };
        let columns = self
            .properties
            .iter()
            .map(|name| {
                column(name).ok_or_else(|| {
                    AnalyticsError::field(
                        "properties",
                        format!("property `{name}` was not loaded for this query"),
                    )
                })
            })
            .collect::<Result<Vec<usize>, _>>()?;
        for (name, at) in self.properties.iter().zip(&columns) {
            if journeys.properties[*at].values.len() <= 1 {
                warnings.push(format!(
                    "No event has the property `{name}`; it adds no candidates."
                ));
            }
        }
        let segment = self.lift.segment_by.as_deref().and_then(column);
        if let (Some(name), None) = (&self.lift.segment_by, segment) {
            return Err(AnalyticsError::field(
                "segment_by",
                format!("property `{name}` was not loaded for this query"),
            ));
        }
        if let (Some(name), Some(at)) = (&self.lift.segment_by, segment) {
            if journeys.properties[at].values.len() <= 1 {
                warnings.push(format!(
                    "No event has the segment property `{name}`; the lift is matched on the steps before the moment only."
                ));
            }
        }
        let goal = Compiled::Any(goals);
        Ok(PreparedMoments {
            spec: self,
            goal_steps: goal.steps_only(),
            goal,
            entry,
            candidate,
            columns,
            segment,
            warnings,
        })
    }
}

/// Steps a step condition matches are not candidates (the goal's own steps, the entry's).
fn exclude_steps(compiled: &Compiled, candidate: &mut [bool]) {
    match compiled {
        Compiled::Step(table) => {
            for (keep, matched) in candidate.iter_mut().zip(table) {
                *keep &= !matched;
            }
        }
        Compiled::Any(parts) => parts.iter().for_each(|part| exclude_steps(part, candidate)),
        _ => {}
    }
}

/// The analysis bound to one journey set.
pub struct PreparedMoments<'a> {
    spec: &'a Moments,
    goal: Compiled,
    /// The goal as a per-step table, when it depends on the step alone.
    goal_steps: Option<Vec<bool>>,
    entry: Option<Compiled>,
    /// Per step: whether it may be a moment.
    candidate: Vec<bool>,
    /// The candidate property columns, as indices into the journey set.
    columns: Vec<usize>,
    /// The segment property column for the lift.
    segment: Option<usize>,
    warnings: Vec<String>,
}

/// The part of a journey that counts: events `from..to` (absolute indices), and whether the goal was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    pub from: usize,
    pub to: usize,
    pub reached: bool,
}

impl PreparedMoments<'_> {
    /// The journey's window of `window_us` after the entry (`None`: to the end), or `None` when it has no entry
    /// event.
    pub(crate) fn window(&self, journey: JourneyRef<'_>, window_us: Option<i64>) -> Option<Window> {
        let set = journey.set;
        let (start, end) = (journey.start, journey.start + journey.len());
        let from = match &self.entry {
            Some(entry) => (start..end).find(|event| entry.matches(set, *event))? + 1,
            None => start,
        };
        let deadline = window_us
            .map(|window| set.ts[from.saturating_sub(1).max(start)].saturating_add(window));
        for event in from..end {
            if deadline.is_some_and(|deadline| set.ts[event] > deadline) {
                return Some(Window {
                    from,
                    to: event,
                    reached: false,
                });
            }
            let is_goal = match &self.goal_steps {
                Some(table) => table[set.step[event] as usize],
                None => self.goal.matches(set, event),
            };
            if is_goal {
                return Some(Window {
                    from,
                    to: event,
                    reached: true,
                });
            }
        }
        Some(Window {
            from,
            to: end,
            reached: false,
        })
    }

    /// The step × value candidates event `event` is (its step being a candidate): its step with each candidate
    /// property's value.
    pub(crate) fn value_candidates_of(
        &self,
        set: &JourneySet,
        event: usize,
        into: &mut Vec<Candidate>,
    ) {
        let step = set.step[event];
        for (index, column) in self.columns.iter().enumerate() {
            let code = set.properties[*column].codes[event];
            if code != 0 {
                into.push(Candidate {
                    step,
                    value: Some((index as u16, code)),
                });
            }
        }
    }

    fn label(
        &self,
        journeys: &JourneySet,
        candidate: Candidate,
    ) -> (String, Option<String>, Option<Value>) {
        let step = journeys.step_names[candidate.step as usize].clone();
        match candidate.value {
            None => (step.clone(), None, None),
            Some((index, code)) => {
                let property = self.spec.properties[index as usize].clone();
                let value =
                    journeys.properties[self.columns[index as usize]].values[code as usize].clone();
                let text = match &value {
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                };
                (
                    format!("{step} · {property} = {text}"),
                    Some(property),
                    Some(value),
                )
            }
        }
    }
}

/// The correlation pass's state: customers per class, and per candidate — steps in a dense table, step × value
/// candidates in a map.
#[derive(Debug, Clone, Default)]
pub struct CorrelationState {
    reached: u64,
    not_reached: u64,
    /// Per step: `[reached, not reached]` customers who did it.
    steps: Vec<[u64; 2]>,
    /// Per step: the last journey (index + 1) counted, so a step counts once per journey without sorting.
    stamp: Vec<u32>,
    /// Per step × value candidate: `[reached, not reached]` customers who did it.
    values: FxHashMap<Candidate, [u64; 2]>,
}

struct CorrelationPass<'p, 'a>(&'p PreparedMoments<'a>, Option<i64>);

/// The time from the entry to the goal of every customer who reaches it, in µs.
struct TimeToGoal<'p, 'a>(&'p PreparedMoments<'a>);

impl Analysis for TimeToGoal<'_, '_> {
    type State = Vec<i64>;
    type Report = Vec<i64>;

    fn new_state(&self, _journeys: &JourneySet) -> Vec<i64> {
        Vec::new()
    }

    fn update(&self, state: &mut Vec<i64>, journey: JourneyRef<'_>) {
        let Some(window) = self.0.window(journey, self.0.spec.window_us) else {
            return;
        };
        if window.reached {
            let entry = window.from.saturating_sub(1).max(journey.start);
            state.push(journey.set.ts[window.to] - journey.set.ts[entry]);
        }
    }

    fn merge(&self, state: &mut Vec<i64>, other: Vec<i64>) {
        state.extend(other);
    }

    fn finish(&self, state: Vec<i64>, _journeys: &JourneySet, _runner: &Runner) -> Vec<i64> {
        state
    }
}

impl Analysis for CorrelationPass<'_, '_> {
    type State = CorrelationState;
    type Report = CorrelationState;

    fn new_state(&self, journeys: &JourneySet) -> CorrelationState {
        CorrelationState {
            steps: vec![[0; 2]; journeys.step_names.len()],
            stamp: vec![0; journeys.step_names.len()],
            ..CorrelationState::default()
        }
    }

    fn update(&self, state: &mut CorrelationState, journey: JourneyRef<'_>) {
        let Some(window) = self.0.window(journey, self.1) else {
            return;
        };
        let class = usize::from(!window.reached);
        if window.reached {
            state.reached += 1;
        } else {
            state.not_reached += 1;
        }
        let set = journey.set;
        let stamp = journey.index as u32 + 1;
        let mut values = Vec::new();
        for event in window.from..window.to {
            let step = set.step[event] as usize;
            if !self.0.candidate[step] {
                continue;
            }
            if state.stamp[step] != stamp {
                state.stamp[step] = stamp;
                state.steps[step][class] += 1;
            }
            if !self.0.columns.is_empty() {
                self.0.value_candidates_of(set, event, &mut values);
            }
        }
        values.sort_unstable();
        values.dedup();
        for candidate in values {
            state.values.entry(candidate).or_default()[class] += 1;
        }
    }

    fn merge(&self, state: &mut CorrelationState, other: CorrelationState) {
        state.reached += other.reached;
        state.not_reached += other.not_reached;
        for (into, [s, f]) in state.steps.iter_mut().zip(other.steps) {
            into[0] += s;
            into[1] += f;
        }
        for (candidate, [s, f]) in other.values {
            let into = state.values.entry(candidate).or_default();
            into[0] += s;
            into[1] += f;
        }
    }

    fn finish(
        &self,
        state: CorrelationState,
        _journeys: &JourneySet,
        _runner: &Runner,
    ) -> CorrelationState {
        state
    }
}

/// A candidate with its statistics, before the lift.
#[derive(Debug, Clone, Copy)]
struct Tested {
    candidate: Candidate,
    table: Contingency,
    ratio: OddsRatio,
    q_value: f64,
}

impl Plan for PreparedMoments<'_> {
    type Report = MomentsReport;

    fn execute(&self, journeys: &JourneySet, runner: &Runner) -> MomentsReport {
        let spec = self.spec;
        let window_us = match (spec.window_us, spec.auto_window_quantile) {
            (Some(window), _) => Some(window),
            (None, None) => None,
            (None, Some(quantile)) => {
                let mut times = runner.pass(&TimeToGoal(self), journeys);
                crate::stats::quantile_unsorted(&mut times, quantile).map(|time| time.ceil() as i64)
            }
        };
        let state = runner.pass(&CorrelationPass(self, window_us), journeys);
        let (reached, not_reached) = (state.reached, state.not_reached);
        let customers = reached + not_reached;
        let mut warnings = self.warnings.clone();
        let skewed = reached as f64 > SKEW * not_reached as f64
            || not_reached as f64 > SKEW * reached as f64;
        if customers == 0 {
            warnings.push(match self.entry {
                Some(_) => "No journey has the entry step; nothing to compare.".to_string(),
                None => "No journey in the selection; nothing to compare.".to_string(),
            });
        } else if reached == 0 || not_reached == 0 {
            warnings.push(format!(
                "{} of the {customers} customers reached the goal: with no one on the other side there is nothing to compare.",
                if reached == 0 { "None" } else { "All" }
            ));
        } else if skewed {
            warnings.push(format!(
                "{reached} customers reached the goal and {not_reached} did not: one side outnumbers the other more than 10 to 1, so the odds ratios are unreliable; narrow the selection or pick a goal closer to 50 %."
            ));
        }
        let mut candidates: Vec<(Candidate, [u64; 2])> = state
            .steps
            .iter()
            .enumerate()
            .filter(|(_, [s, f])| s + f > 0)
            .map(|(step, counts)| {
                (
                    Candidate {
                        step: step as u32,
                        value: None,
                    },
                    *counts,
                )
            })
            .chain(state.values)
            .collect();
        candidates.sort_unstable_by_key(|(candidate, _)| *candidate);
        let mut too_small = 0;
        let mut tested: Vec<Tested> = Vec::new();
        if reached > 0 && not_reached > 0 {
            for (candidate, [s, f]) in candidates {
                let table = Contingency {
                    s,
                    f,
                    reached,
                    not_reached,
                };
                if table.too_small(spec.min_customers, spec.min_share) {
                    too_small += 1;
                    continue;
                }
                tested.push(Tested {
                    candidate,
                    table,
                    ratio: table.odds_ratio(spec.confidence),
                    q_value: 1.0,
                });
            }
        }
        let q = benjamini_hochberg(
            &tested
                .iter()
                .map(|test| test.ratio.p_value)
                .collect::<Vec<_>>(),
        );
        for (test, q) in tested.iter_mut().zip(q) {
            test.q_value = q;
        }
        let significant = tested
            .iter()
            .filter(|test| test.q_value <= spec.fdr)
            .count();
        let shown = |test: &&Tested| spec.include_insignificant || test.q_value <= spec.fdr;
        let settled_share = spec.settled_share;
        let is_settled = |test: &Tested| {
            let table = test.table;
            let with = table.s as f64 / (table.s + table.f).max(1) as f64;
            let without_customers = (table.reached - table.s) + (table.not_reached - table.f);
            let without = (table.reached - table.s) as f64 / without_customers.max(1) as f64;
            settled_share > 0.0
                && [with, without]
                    .iter()
                    .any(|rate| *rate <= settled_share || *rate >= 1.0 - settled_share)
        };
        // The lift is measured for a pool of the strongest odds ratios, three times the moments shown, which are
        // then ranked by the goals they gain or lose against comparable customers.
        let pool = spec.top.saturating_mul(POOL);
        let pick = |keep: &dyn Fn(&Tested) -> bool,
                    order: &dyn Fn(&Tested) -> f64,
                    limit: usize|
         -> Vec<Tested> {
            let mut picked: Vec<Tested> = tested
                .iter()
                .filter(|test| keep(test))
                .filter(shown)
                .copied()
                .collect();
            picked.sort_by(|a, b| {
                order(b)
                    .total_cmp(&order(a))
                    .then(a.candidate.cmp(&b.candidate))
            });
            picked.truncate(limit);
            picked
        };
        let positive = pick(
            &|test| test.ratio.odds_ratio > 1.0 && !is_settled(test),
            &|test| test.ratio.odds_ratio,
            pool,
        );
        let negative = pick(
            &|test| test.ratio.odds_ratio < 1.0 && !is_settled(test),
            &|test| -test.ratio.odds_ratio,
            pool,
        );
        let settled = pick(
            &|test| is_settled(test),
            &|test| test.ratio.odds_ratio.ln().abs(),
            spec.top,
        );
        let chosen: Vec<Candidate> = positive
            .iter()
            .chain(&negative)
            .chain(&settled)
            .map(|test| test.candidate)
            .collect();
        let measured = lift::measure(self, window_us, &chosen, journeys, runner);
        let mut measured = measured.into_iter();
        let mut moment = |test: &Tested| -> (Moment, Vec<lift::Cell>, Candidate) {
            let (label, property, value) = self.label(journeys, test.candidate);
            let lift::Measured {
                lift,
                examples,
                cells,
            } = measured.next().expect("one lift per chosen moment");
            let table = test.table;
            let without = (table.reached - table.s) + (table.not_reached - table.f);
            let moment = Moment {
                step: journeys.step_names[test.candidate.step as usize].clone(),
                property,
                value,
                label,
                reached_with: table.s,
                not_reached_with: table.f,
                goal_rate_with: table.s as f64 / (table.s + table.f) as f64,
                goal_rate_without: if without > 0 {
                    (table.reached - table.s) as f64 / without as f64
                } else {
                    0.0
                },
                odds_ratio: test.ratio.odds_ratio,
                odds_ratio_low: test.ratio.low,
                odds_ratio_high: test.ratio.high,
                p_value: test.ratio.p_value,
                q_value: test.q_value,
                significant: test.q_value <= spec.fdr,
                goals_changed: lift.map(|lift| lift.difference * lift.matched as f64),
                lift,
                example_customers: examples
                    .iter()
                    .map(|journey| journeys.customer_ids[*journey as usize].to_string())
                    .collect(),
            };
            (moment, cells, test.candidate)
        };
        type Shown = (Moment, Vec<lift::Cell>, Candidate);
        let by_impact = |mut moments: Vec<Shown>, sign: f64| -> Vec<Shown> {
            // Moments without comparable customers keep their odds-ratio order, after those with a lift.
            let impact = |moment: &Moment| {
                moment
                    .goals_changed
                    .map_or(f64::NEG_INFINITY, |goals| sign * goals)
            };
            moments.sort_by(|a, b| impact(&b.0).total_cmp(&impact(&a.0)));
            moments.truncate(spec.top);
            moments
        };
        // Intervals for the moments shown only, spread over the threads.
        let with_intervals = |shown: Vec<Shown>| -> Vec<Moment> {
            let shown: Vec<std::sync::Mutex<Option<Shown>>> = shown
                .into_iter()
                .map(|item| std::sync::Mutex::new(Some(item)))
                .collect();
            runner.map(shown.len(), |range| {
                range
                    .map(|index| {
                        let (mut moment, cells, candidate) = shown[index]
                            .lock()
                            .expect("not poisoned")
                            .take()
                            .expect("each once");
                        if let Some(lift) = moment.lift.as_mut() {
                            lift::interval(lift, &cells, &spec.lift, spec.confidence, candidate);
                        }
                        moment
                    })
                    .collect()
            })
        };
        let positive = with_intervals(by_impact(positive.iter().map(&mut moment).collect(), 1.0));
        let negative = with_intervals(by_impact(negative.iter().map(&mut moment).collect(), -1.0));
        let settled = with_intervals(settled.iter().map(&mut moment).collect());
        MomentsReport {
            goals: spec.goals.iter().map(Condition::label).collect(),
            customers,
            reached,
            not_reached,
            goal_rate: if customers > 0 {
                reached as f64 / customers as f64
            } else {
                0.0
            },
            skewed,
            tested: tested.len(),
            too_small,
            significant,
            min_support: (spec.min_customers as f64).min(spec.min_share * customers as f64),
            confidence: spec.confidence,
            fdr: spec.fdr,
            window_secs: window_us.map(|window| window as f64 / 1e6),
            positive,
            negative,
            settled,
            lift_matched_on: spec.lift.matched_on(),
            warnings,
        }
    }
}

#[cfg(test)]
mod tests;
