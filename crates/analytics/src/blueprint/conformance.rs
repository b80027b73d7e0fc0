//! `conformance`: every journey against a blueprint — fitness, stages, and the deviations that cost goals.

use super::net::Tokens;
use super::{Blueprint, CompiledBlueprint, DeviationKind};
use crate::query::{run_plan, DataInfo, Query, Scope, Spec};
use crate::stats::quantile_unsorted;
use crate::{Analysis, AnalyticsError, Runner};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::fmt::Write;
use waymark_model::{JourneyRef, JourneySet};

/// `conformance` options.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConformanceRequest {
    /// The designed journey to compare with: a saved blueprint's name, or the blueprint itself.
    pub blueprint: BlueprintRef,
    /// Deviations listed, most journeys first (default 20).
    #[serde(default = "ConformanceRequest::default_top")]
    pub top: usize,
    #[serde(default)]
    pub filter: Scope,
}

/// A saved blueprint by name (the engine looks it up in the data directory), or one given in full.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum BlueprintRef {
    Saved(String),
    Given(Blueprint),
}

impl BlueprintRef {
    /// The blueprint given in full, its structure checked (the steps are checked against the data when it
    /// runs); a saved one's name should have been looked up by the engine before the request got here.
    pub fn given(&self) -> Result<&Blueprint, AnalyticsError> {
        match self {
            BlueprintRef::Given(blueprint) => {
                blueprint.compile(&JourneySet::default())?;
                Ok(blueprint)
            }
            BlueprintRef::Saved(name) => Err(AnalyticsError::field(
                "blueprint",
                format!("blueprint: there is no saved blueprint {name:?} to look up here; give the blueprint itself"),
            )),
        }
    }
}

impl Default for BlueprintRef {
    fn default() -> Self {
        BlueprintRef::Given(Blueprint::default())
    }
}

impl ConformanceRequest {
    fn default_top() -> usize {
        20
    }
}

/// The analysis: a compiled blueprint.
#[derive(Debug, Clone)]
pub struct Conformance {
    pub blueprint: Blueprint,
    pub top: usize,
}

/// Fixed-point scale of summed journey fitness, so that any split of the journeys sums to the same total.
const FITNESS_SCALE: f64 = 1e15;

#[derive(Debug, Clone, Default)]
pub struct ConformanceState {
    journeys: u64,
    fitting: u64,
    fitness_sum: u128,
    tokens: Tokens,
    goal: u64,
    fitting_goal: u64,
    stages: Vec<StageState>,
    findings: BTreeMap<FindingKey, (u64, u64)>,
    /// (from stage, to stage) → journeys; `usize::MAX` as `to` is the journey's end.
    flows: BTreeMap<(usize, usize), u64>,
}

#[derive(Debug, Clone, Default)]
struct StageState {
    entered: u64,
    entered_goal: u64,
    ended_here: u64,
    times: Vec<i64>,
}

/// (kind, stage index — `usize::MAX` before the first stage —, step, channel)
type FindingKey = (DeviationKind, usize, String, String);

/// Token-replay fitness of the journeys on the blueprint's Petri net, as pm4py reports it.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct FitnessReport {
    /// `½(1 − Σmissing/Σconsumed) + ½(1 − Σremaining/Σproduced)` over all journeys (pm4py's `log_fitness`).
    pub log_fitness: f64,
    /// The mean of the journeys' own fitness (pm4py's `average_trace_fitness`).
    pub average_journey_fitness: f64,
    /// Journeys replayed with nothing missing or left (pm4py's fitting traces).
    pub fitting_journeys: u64,
    pub fitting_share: f64,
    pub tokens: Tokens,
}

/// One stage: who reached it, who stopped there, and the time spent in it.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct StageReport {
    pub name: String,
    /// Journeys with at least one of the stage's steps.
    pub entered: u64,
    /// Journeys whose furthest stage this is.
    pub ended_here: u64,
    /// Goal rate of the journeys that entered the stage.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub goal_rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub standard_time_secs: Option<f64>,
    /// Time in the stage (its first event to the first of a later stage, or to its last event where the journey
    /// ended): median and 90th percentile over the journeys that entered it (numpy's linear interpolation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub median_secs: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p90_secs: Option<f64>,
    /// Journeys whose time in the stage exceeded its standard time.
    pub over_standard: u64,
}

/// Journeys going from one stage straight to another (or ending there).
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct StageFlow {
    pub from: String,
    /// Empty: the journey ended in `from`.
    pub to: String,
    pub journeys: u64,
    /// `next` (the designed next stage), `skip` (a later one, passing stages over), `back` (an earlier one) or
    /// `end`.
    pub kind: String,
}

/// A deviation and what it costs: the journeys showing it and their goal rate against the journeys that reached
/// the same stage without it.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct DeviationFinding {
    pub kind: DeviationKind,
    /// The stage (empty for an unexpected step before any designed step).
    pub stage: String,
    pub step: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub channel: String,
    pub journeys: u64,
    /// `journeys` over the journeys that entered the stage.
    pub share: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub goal_rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub goal_rate_without: Option<f64>,
    /// Goals these journeys would have reached at the rate of the rest (negative: they did better).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub goals_lost: Option<f64>,
    /// The finding in a sentence that states the harm.
    pub headline: String,
}

/// JSON `{"blueprint", "journeys", "fitness", "stages", "deviations", ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct ConformanceReport {
    pub blueprint: String,
    pub journeys: u64,
    pub fitness: FitnessReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub goal: Option<String>,
    /// Goal rate of the fitting journeys and of the rest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub goal_rate_fitting: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub goal_rate_deviating: Option<f64>,
    pub stages: Vec<StageReport>,
    /// The `top` deviations by goals lost (then by journeys).
    pub deviations: Vec<DeviationFinding>,
    /// Distinct deviations found (before `top`).
    pub n_deviations: usize,
    /// Designed step names no event has (a misspelling, or a step not tracked yet).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unknown_steps: Vec<String>,
    /// How journeys actually moved between the designed stages (the stages in the order each journey entered
    /// them): forward as designed, skipping a stage, back to an earlier one, or ending.
    pub stage_flows: Vec<StageFlow>,
    /// The blueprint's Petri net, as replayed (for overlays and for checking the fitness with other tools).
    pub petri_net: super::net::PetriNet,
}

impl Analysis for CompiledBlueprint {
    type State = ConformanceState;
    type Report = ConformanceState;

    fn new_state(&self, _journeys: &JourneySet) -> ConformanceState {
        ConformanceState {
            stages: vec![StageState::default(); self.stages()],
            ..ConformanceState::default()
        }
    }

    fn update(&self, state: &mut ConformanceState, journey: JourneyRef<'_>) {
        if journey.is_empty() {
            return;
        }
        let result = self.conform(journey);
        state.journeys += 1;
        state.tokens.add(result.tokens);
        state.fitness_sum += (result.fitness * FITNESS_SCALE).round() as u128;
        let goal = u64::from(result.reached_goal);
        state.goal += goal;
        if result.fits {
            state.fitting += 1;
            state.fitting_goal += goal;
        }
        let furthest = result.stages.iter().map(|visit| visit.index).max();
        for pair in result.stages.windows(2) {
            *state
                .flows
                .entry((pair[0].index, pair[1].index))
                .or_default() += 1;
        }
        if let Some(last) = result.stages.last() {
            *state.flows.entry((last.index, usize::MAX)).or_default() += 1;
        }
        for visit in &result.stages {
            let s = &mut state.stages[visit.index];
            s.entered += 1;
            s.entered_goal += goal;
            s.times.push(visit.duration_us);
        }
        if let Some(stage) = furthest {
            state.stages[stage].ended_here += 1;
        }
        let stage_index = |name: &str| {
            self.blueprint
                .stages
                .iter()
                .position(|s| s.name == name)
                .unwrap_or(usize::MAX)
        };
        let mut seen: HashSet<FindingKey> = HashSet::new();
        for deviation in result.deviations {
            let key = (
                deviation.kind,
                stage_index(&deviation.stage),
                deviation.step,
                deviation.channel.unwrap_or_default(),
            );
            if seen.insert(key.clone()) {
                let entry = state.findings.entry(key).or_default();
                entry.0 += 1;
                entry.1 += goal;
            }
        }
    }

    fn merge(&self, state: &mut ConformanceState, other: ConformanceState) {
        state.journeys += other.journeys;
        state.fitting += other.fitting;
        state.fitness_sum += other.fitness_sum;
        state.tokens.add(other.tokens);
        state.goal += other.goal;
        state.fitting_goal += other.fitting_goal;
        for (into, from) in state.stages.iter_mut().zip(other.stages) {
            into.entered += from.entered;
            into.entered_goal += from.entered_goal;
            into.ended_here += from.ended_here;
            into.times.extend(from.times);
        }
        for (key, journeys) in other.flows {
            *state.flows.entry(key).or_default() += journeys;
        }
        for (key, (journeys, goal)) in other.findings {
            let entry = state.findings.entry(key).or_default();
            entry.0 += journeys;
            entry.1 += goal;
        }
    }

    fn finish(
        &self,
        state: ConformanceState,
        _journeys: &JourneySet,
        _runner: &Runner,
    ) -> ConformanceState {
        state
    }
}

fn rate(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

impl CompiledBlueprint {
    /// The report from the merged state.
    pub fn report(&self, mut state: ConformanceState, top: usize) -> ConformanceReport {
        let has_goal = self.goal.is_some();
        let goal_rate = |part: u64, whole: u64| if has_goal { rate(part, whole) } else { None };
        let stages: Vec<StageReport> = self
            .blueprint
            .stages
            .iter()
            .zip(state.stages.iter_mut())
            .zip(&self.stage_standard)
            .map(|((design, s), standard)| StageReport {
                name: design.name.clone(),
                entered: s.entered,
                ended_here: s.ended_here,
                goal_rate: goal_rate(s.entered_goal, s.entered),
                standard_time_secs: standard.map(|us| us as f64 / 1e6),
                median_secs: quantile_unsorted(&mut s.times, 0.5).map(|us| us / 1e6),
                p90_secs: quantile_unsorted(&mut s.times, 0.9).map(|us| us / 1e6),
                over_standard: standard.map_or(0, |limit| {
                    s.times.iter().filter(|t| **t > limit).count() as u64
                }),
            })
            .collect();
        let mut deviations: Vec<DeviationFinding> = state
            .findings
            .iter()
            .map(|((kind, stage, step, channel), (journeys, goal))| {
                let (entered, entered_goal, stage_name) = match state.stages.get(*stage) {
                    Some(s) => (
                        s.entered,
                        s.entered_goal,
                        self.blueprint.stages[*stage].name.clone(),
                    ),
                    None => (state.journeys, state.goal, String::new()),
                };
                let without = entered.saturating_sub(*journeys);
                let without_goal = entered_goal.saturating_sub(*goal);
                let rate_with = goal_rate(*goal, *journeys);
                let rate_without = goal_rate(without_goal, without);
                let goals_lost = rate_with
                    .zip(rate_without)
                    .map(|(with, without)| (without - with) * *journeys as f64);
                DeviationFinding {
                    kind: *kind,
                    stage: stage_name.clone(),
                    step: step.clone(),
                    channel: channel.clone(),
                    journeys: *journeys,
                    share: *journeys as f64 / entered.max(1) as f64,
                    goal_rate: rate_with,
                    goal_rate_without: rate_without,
                    goals_lost,
                    headline: headline(*kind, &stage_name, step, channel, *journeys, goals_lost),
                }
            })
            .collect();
        deviations.sort_by(|a, b| {
            let lost = |d: &DeviationFinding| d.goals_lost.unwrap_or(0.0);
            lost(b)
                .total_cmp(&lost(a))
                .then(b.journeys.cmp(&a.journeys))
                .then_with(|| (a.kind, &a.stage, &a.step).cmp(&(b.kind, &b.stage, &b.step)))
        });
        let n_deviations = deviations.len();
        deviations.truncate(top);
        let deviating = state.journeys - state.fitting;
        ConformanceReport {
            blueprint: self.blueprint.name.clone(),
            journeys: state.journeys,
            fitness: FitnessReport {
                log_fitness: state.tokens.fitness(),
                average_journey_fitness: if state.journeys == 0 {
                    1.0
                } else {
                    state.fitness_sum as f64 / FITNESS_SCALE / state.journeys as f64
                },
                fitting_journeys: state.fitting,
                fitting_share: state.fitting as f64 / state.journeys.max(1) as f64,
                tokens: state.tokens,
            },
            goal: self.blueprint.goal.clone(),
            goal_rate_fitting: goal_rate(state.fitting_goal, state.fitting),
            goal_rate_deviating: goal_rate(state.goal - state.fitting_goal, deviating),
            stages,
            deviations,
            n_deviations,
            unknown_steps: self.unknown_steps.clone(),
            stage_flows: state
                .flows
                .iter()
                .map(|(&(from, to), &journeys)| StageFlow {
                    from: self.blueprint.stages[from].name.clone(),
                    to: self
                        .blueprint
                        .stages
                        .get(to)
                        .map(|s| s.name.clone())
                        .unwrap_or_default(),
                    journeys,
                    kind: match to {
                        usize::MAX => "end",
                        to if to == from + 1 => "next",
                        to if to > from => "skip",
                        _ => "back",
                    }
                    .into(),
                })
                .collect(),
            petri_net: self.net.clone(),
        }
    }
}

fn headline(
    kind: DeviationKind,
    stage: &str,
    step: &str,
    channel: &str,
    journeys: u64,
    goals_lost: Option<f64>,
) -> String {
    let what = match kind {
        DeviationKind::Skipped => format!("skipped {step} in {stage}"),
        DeviationKind::Unexpected if stage.is_empty() => {
            format!("did {step}, which the design does not have, before any designed step")
        }
        DeviationKind::Unexpected => {
            format!("did {step} in {stage}, which the design does not have")
        }
        DeviationKind::OutOfOrder => format!("did {step} ({stage}) out of the designed order"),
        DeviationKind::Repeated => format!("repeated {step} in {stage}"),
        DeviationKind::OffChannel => {
            format!("did {step} ({stage}) on {channel}, a channel the stage is not designed for")
        }
        DeviationKind::OverStandardTime if step.is_empty() => {
            format!("spent longer in {stage} than its standard time")
        }
        DeviationKind::OverStandardTime => {
            format!("took longer than the standard time to reach {step} ({stage})")
        }
        DeviationKind::DeadEnd => format!("went no further than {step} ({stage})"),
    };
    let customers = if journeys == 1 {
        "1 journey"
    } else {
        &format!("{journeys} journeys")
    };
    match goals_lost {
        Some(lost) if lost.round() >= 1.0 => {
            let goals = if lost.round() == 1.0 { "goal" } else { "goals" };
            format!("{lost:.0} {goals} lost: {customers} {what}")
        }
        _ => format!("{customers} {what}"),
    }
}

impl Spec for Conformance {
    type Report = ConformanceReport;

    fn run(
        &self,
        journeys: &JourneySet,
        runner: &Runner,
    ) -> Result<ConformanceReport, AnalyticsError> {
        let compiled = self.blueprint.compile(journeys)?;
        let state = run_plan(Ok(compiled.clone()), journeys, runner)?;
        Ok(compiled.report(state, self.top))
    }
}

impl Query for ConformanceRequest {
    const NAME: &'static str = "conformance";
    const HELP: &'static str = "Journeys against a blueprint (the designed journey; --blueprint NAME for a saved one, a FILE, or JSON): token-replay fitness, time and drop-off per stage, and the deviations (skipped, unexpected, out-of-order, repeated, off-channel, over standard time) by goals lost.";
    const EXAMPLE: &'static str = r#"--blueprint '{"name": "purchase", "goal": "Order Completed", "stages": [{"name": "Explore", "steps": ["Product Viewed"]}, {"name": "Buy", "steps": ["Added to Cart", "Checkout Started", "Order Completed"], "standard_time": "1h"}]}'"#;
    type Report = ConformanceReport;
    type Spec = Conformance;

    fn scope(&self) -> &Scope {
        &self.filter
    }

    fn spec(&self, _data: &DataInfo<'_>) -> Result<Conformance, AnalyticsError> {
        if self.top == 0 {
            return Err(AnalyticsError::field(
                "top",
                "top must be at least 1 deviation",
            ));
        }
        let blueprint = self.blueprint.given()?;
        Ok(Conformance {
            blueprint: blueprint.clone(),
            top: self.top,
        })
    }

    fn text(&self, report: &ConformanceReport, rows: usize) -> String {
        let mut out = String::new();
        let f = &report.fitness;
        let _ = writeln!(
            out,
            "Blueprint {}: {} of {} journeys fit the design ({:.1}%); fitness {:.3} (mean per journey {:.3})",
            report.blueprint,
            f.fitting_journeys,
            report.journeys,
            f.fitting_share * 100.0,
            f.log_fitness,
            f.average_journey_fitness
        );
        if let (Some(fit), Some(dev)) = (report.goal_rate_fitting, report.goal_rate_deviating) {
            let _ = writeln!(
                out,
                "Goal {}: {:.1}% of journeys that left the design reached it, {:.1}% of those that fit",
                report.goal.as_deref().unwrap_or(""),
                dev * 100.0,
                fit * 100.0
            );
        }
        let _ = writeln!(
            out,
            "\n{:>8}  {:>8}  {:>6}  {:>10}  {:>10}  {:>10}  stage",
            "entered", "ended", "goal", "median", "p90", "standard"
        );
        let time = |secs: Option<f64>| {
            secs.map(crate::query::text::duration)
                .unwrap_or_else(|| "-".into())
        };
        for stage in &report.stages {
            let _ = writeln!(
                out,
                "{:>8}  {:>8}  {:>6}  {:>10}  {:>10}  {:>10}  {}{}",
                stage.entered,
                stage.ended_here,
                stage
                    .goal_rate
                    .map(|r| format!("{:.1}%", r * 100.0))
                    .unwrap_or_else(|| "-".into()),
                time(stage.median_secs),
                time(stage.p90_secs),
                time(stage.standard_time_secs),
                stage.name,
                if stage.over_standard > 0 {
                    format!(" ({} over standard)", stage.over_standard)
                } else {
                    String::new()
                }
            );
        }
        let _ = writeln!(out, "\nDeviations ({} kinds):", report.n_deviations);
        for deviation in report.deviations.iter().take(rows) {
            let _ = writeln!(out, "  {}", deviation.headline);
        }
        crate::query::text::more(&mut out, report.deviations.len(), rows, "deviations");
        if !report.unknown_steps.is_empty() {
            let _ = writeln!(
                out,
                "\nNote: no event has the designed steps {}",
                report.unknown_steps.join(", ")
            );
        }
        out
    }
}
