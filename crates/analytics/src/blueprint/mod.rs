//! Blueprints: the journey a business designed — stages in order, each with the steps it expects (in sequence or
//! in any order, some optional, some with alternatives), the channels it is meant for and its standard times,
//! and the goal — and conformance: how the journeys customers take compare with it.
//!
//! Conformance is measured two ways, from one walk over each journey:
//! - **token-based replay fitness** on the blueprint's Petri net ([`net`]), the process-mining measure pm4py
//!   reports (`log_fitness`, the share of fitting journeys, the mean journey fitness);
//! - **per-stage deviations** a CX team reads: required steps skipped (a later step of the design happened, this
//!   one never did), unexpected steps (in no stage of the design, counted in the stage the customer was in),
//!   steps out of order (an earlier stage's step after a later stage's), repeated steps, steps on a channel the
//!   stage is not designed for, and time in a stage or to a step beyond its standard time; each with the goal
//!   rate of the journeys that show it against those that reached the same stage without it.
//!
//! [`JourneyConformance`] is the same walk for one customer: where their journey left the design.

pub mod net;

use crate::query::parse_duration;
use crate::AnalyticsError;
use net::{NetTransition, PetriNet, Tokens};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use waymark_model::{JourneyRef, JourneySet};

/// A designed journey (a TOML or JSON file, or a request body).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Blueprint {
    /// Lower-case letters, digits, `-` and `_` (used in URLs and file names). A saved blueprint's name is its
    /// file's (`blueprints/NAME.toml`) and the path's (`PUT /v1/blueprints/NAME`), so it may be left out there.
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The step that completes the journey (a `*` pattern allowed, as in every step pattern); the goal rate of deviating journeys is
    /// compared with that of the rest. Optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goal: Option<String>,
    /// The stages, in the order the customer is meant to pass them.
    pub stages: Vec<StageDesign>,
    /// Steps that are not the customer's (by default the identity calls `identify`, `alias`, `group`): neither
    /// designed nor unexpected, they are passed over. A step the stages name is never ignored.
    #[serde(default = "Blueprint::default_ignore_steps")]
    pub ignore_steps: Vec<String>,
}

impl Blueprint {
    /// Each stage's name and the step patterns it expects (every alternative), in stage order.
    pub fn stage_patterns(&self) -> Vec<(String, Vec<String>)> {
        self.stages
            .iter()
            .map(|stage| {
                (
                    stage.name.clone(),
                    stage
                        .steps
                        .iter()
                        .flat_map(StepDesign::alternatives)
                        .collect(),
                )
            })
            .collect()
    }

    fn default_ignore_steps() -> Vec<String> {
        waymark_model::IDENTITY_STEPS.map(String::from).to_vec()
    }
}

/// One stage of a blueprint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StageDesign {
    pub name: String,
    /// The steps the stage expects.
    pub steps: Vec<StepDesign>,
    /// `sequence` (the default): in the order listed; `any`: in any order.
    #[serde(default)]
    pub order: StageOrder,
    /// The channels the stage is designed for; its steps on any other channel are deviations. Empty: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub channels: Vec<String>,
    /// The standard time in the stage, from its first event to the first event of a later stage (`2d`, `4h`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standard_time: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StageOrder {
    #[default]
    Sequence,
    Any,
}

/// An expected step: a step name (or `*` pattern), or `one_of` alternatives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum StepDesign {
    Name(String),
    Detailed(DetailedStep),
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DetailedStep {
    /// The step (an exact name, or a pattern where `*` matches any run of characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// Alternatives: any one of these steps does (instead of `step`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub one_of: Vec<String>,
    /// The design allows skipping it.
    #[serde(default)]
    pub optional: bool,
    /// The standard time from the previous designed step's first event to this step's first (`1h`, `3d`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standard_time: Option<String>,
}

impl StepDesign {
    fn alternatives(&self) -> Vec<String> {
        match self {
            StepDesign::Name(name) => vec![name.clone()],
            StepDesign::Detailed(d) => d
                .step
                .iter()
                .cloned()
                .chain(d.one_of.iter().cloned())
                .collect(),
        }
    }

    fn optional(&self) -> bool {
        matches!(self, StepDesign::Detailed(d) if d.optional)
    }

    fn standard_time(&self) -> Option<&str> {
        match self {
            StepDesign::Name(_) => None,
            StepDesign::Detailed(d) => d.standard_time.as_deref(),
        }
    }

    /// How the step is written in reports: `A` or `A | B`.
    pub fn label(&self) -> String {
        self.alternatives().join(" | ")
    }
}

/// Step patterns are the analyses' own: `*` matches any run of characters (`page:*Help*`).
use crate::condition::wildcard_match as matches;

/// Whether `name` can name a blueprint: lower-case letters, digits, `-` and `_`, at least one (it goes in URLs
/// and file names).
pub fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// A designed step's place in the blueprint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Position {
    stage: usize,
    /// The step's index among all designed steps (stages in order, steps in order).
    step: usize,
}

/// A blueprint checked and compiled against a journey set's dictionaries.
#[derive(Debug, Clone)]
pub struct CompiledBlueprint {
    pub blueprint: Blueprint,
    pub net: PetriNet,
    /// Per step code: the designed step it is (the first that matches), if any.
    position_of: Vec<Option<Position>>,
    /// Per step code: the net's transitions labelled with it.
    transitions_of: Vec<Vec<usize>>,
    /// Per designed step: its stage, label, whether it is required, its standard time (µs).
    steps: Vec<CompiledStep>,
    /// Per stage: the standard time (µs), and per channel code whether the stage allows it (empty: all).
    stage_standard: Vec<Option<i64>>,
    stage_channels: Vec<Vec<bool>>,
    goal: Option<Vec<bool>>,
    /// Per step code: passed over (`ignore_steps`, unless designed).
    ignored: Vec<bool>,
    /// Designed step names (not patterns) that no event has.
    pub unknown_steps: Vec<String>,
}

#[derive(Debug, Clone)]
struct CompiledStep {
    stage: usize,
    label: String,
    required: bool,
    standard_us: Option<i64>,
}

impl Blueprint {
    /// Checks the blueprint (every problem names its field) and compiles it for `journeys`.
    pub fn compile(&self, journeys: &JourneySet) -> Result<CompiledBlueprint, AnalyticsError> {
        if !is_name(&self.name) {
            return Err(AnalyticsError::field(
                "name",
                format!(
                    "name: {:?} must be lower-case letters, digits, - or _ (e.g. \"purchase\")",
                    self.name
                ),
            ));
        }
        if self.stages.is_empty() {
            return Err(AnalyticsError::field(
                "stages",
                "stages: a blueprint needs at least one stage with at least one step",
            ));
        }
        let mut steps = Vec::new();
        let mut stage_standard = Vec::new();
        let mut stage_channels = Vec::new();
        for (s, stage) in self.stages.iter().enumerate() {
            let field = format!("stages[{s}]");
            if stage.name.trim().is_empty() {
                return Err(AnalyticsError::field(
                    format!("{field}.name"),
                    format!("{field}.name: a stage needs a name"),
                ));
            }
            if let Some(other) = self.stages[..s].iter().position(|o| o.name == stage.name) {
                return Err(AnalyticsError::field(
                    format!("{field}.name"),
                    format!(
                        "{field}.name: {:?} is also the name of stages[{other}]",
                        stage.name
                    ),
                ));
            }
            if stage.steps.is_empty() {
                return Err(AnalyticsError::field(
                    format!("{field}.steps"),
                    format!("{field}.steps: stage {:?} expects no step", stage.name),
                ));
            }
            for (i, step) in stage.steps.iter().enumerate() {
                let step_field = format!("{field}.steps[{i}]");
                if let StepDesign::Detailed(d) = step {
                    if d.step.is_some() != d.one_of.is_empty() {
                        return Err(AnalyticsError::field(
                            step_field.clone(),
                            format!(
                                "{step_field}: give either `step` or `one_of`, not both or neither"
                            ),
                        ));
                    }
                }
                if step.alternatives().iter().any(|a| a.trim().is_empty()) {
                    return Err(AnalyticsError::field(
                        step_field.clone(),
                        format!("{step_field}: a step name is empty"),
                    ));
                }
                let standard_us = step
                    .standard_time()
                    .map(|text| parse_duration(&format!("{step_field}.standard_time"), text))
                    .transpose()?;
                steps.push(CompiledStep {
                    stage: s,
                    label: step.label(),
                    required: !step.optional(),
                    standard_us,
                });
            }
            stage_standard.push(
                stage
                    .standard_time
                    .as_deref()
                    .map(|text| parse_duration(&format!("{field}.standard_time"), text))
                    .transpose()?,
            );
            let mut allowed = vec![stage.channels.is_empty(); journeys.channel_names.len()];
            for channel in &stage.channels {
                if let Some(code) = journeys.channel_names.iter().position(|c| c == channel) {
                    allowed[code] = true;
                }
            }
            stage_channels.push(allowed);
        }
        // Each step code is the first designed step whose pattern it matches.
        let alternatives: Vec<Vec<String>> = self
            .stages
            .iter()
            .flat_map(|stage| stage.steps.iter().map(StepDesign::alternatives))
            .collect();
        let position_of: Vec<Option<Position>> = journeys
            .step_names
            .iter()
            .map(|name| {
                alternatives
                    .iter()
                    .position(|alts| alts.iter().any(|a| matches(a, name)))
                    .map(|step| Position {
                        stage: steps[step].stage,
                        step,
                    })
            })
            .collect();
        let mut unknown_steps: Vec<String> = alternatives
            .iter()
            .flatten()
            .filter(|a| !a.contains('*') && !journeys.step_names.iter().any(|n| n == *a))
            .cloned()
            .collect();
        unknown_steps.dedup();
        let (net, labels) = self.petri_net();
        let transitions_of = journeys
            .step_names
            .iter()
            .map(|name| {
                labels
                    .iter()
                    .enumerate()
                    .filter(|(_, label)| label.as_deref().is_some_and(|l| matches(l, name)))
                    .map(|(t, _)| t)
                    .collect()
            })
            .collect();
        let goal = self.goal.as_ref().map(|goal| {
            journeys
                .step_names
                .iter()
                .map(|name| matches(goal, name))
                .collect()
        });
        let ignored = journeys
            .step_names
            .iter()
            .zip(&position_of)
            .map(|(name, position)| {
                position.is_none()
                    && self
                        .ignore_steps
                        .iter()
                        .any(|pattern| matches(pattern, name))
            })
            .collect();
        Ok(CompiledBlueprint {
            ignored,
            blueprint: self.clone(),
            net,
            position_of,
            transitions_of,
            steps,
            stage_standard,
            stage_channels,
            goal,
            unknown_steps,
        })
    }

    /// The workflow net: stages in sequence; in a `sequence` stage each step is a place-to-place hop with one
    /// transition per alternative (and an invisible skip when optional); an `any` stage splits into one branch
    /// per step and joins them, through invisible transitions.
    pub fn petri_net(&self) -> (PetriNet, Vec<Option<String>>) {
        let mut places = vec!["source".to_string()];
        let mut transitions: Vec<NetTransition> = Vec::new();
        let place = |name: String, places: &mut Vec<String>| {
            places.push(name);
            places.len() - 1
        };
        let hop =
            |from: usize, to: usize, step: &StepDesign, transitions: &mut Vec<NetTransition>| {
                for alternative in step.alternatives() {
                    transitions.push(NetTransition {
                        name: alternative.clone(),
                        label: Some(alternative),
                        inputs: vec![from],
                        outputs: vec![to],
                    });
                }
                if step.optional() {
                    transitions.push(NetTransition {
                        name: format!("skip {}", step.label()),
                        label: None,
                        inputs: vec![from],
                        outputs: vec![to],
                    });
                }
            };
        let mut current = 0;
        for stage in &self.stages {
            match stage.order {
                StageOrder::Sequence => {
                    for (i, step) in stage.steps.iter().enumerate() {
                        let next = place(format!("{} {}", stage.name, i + 1), &mut places);
                        hop(current, next, step, &mut transitions);
                        current = next;
                    }
                }
                StageOrder::Any => {
                    let mut branches_in = Vec::new();
                    let mut branches_out = Vec::new();
                    for (i, step) in stage.steps.iter().enumerate() {
                        let before = place(format!("{} before {}", stage.name, i + 1), &mut places);
                        let after = place(format!("{} after {}", stage.name, i + 1), &mut places);
                        hop(before, after, step, &mut transitions);
                        branches_in.push(before);
                        branches_out.push(after);
                    }
                    let done = place(format!("{} done", stage.name), &mut places);
                    transitions.push(NetTransition {
                        name: format!("{} split", stage.name),
                        label: None,
                        inputs: vec![current],
                        outputs: branches_in,
                    });
                    transitions.push(NetTransition {
                        name: format!("{} join", stage.name),
                        label: None,
                        inputs: branches_out,
                        outputs: vec![done],
                    });
                    current = done;
                }
            }
        }
        places[current] = "sink".to_string();
        let labels = transitions.iter().map(|t| t.label.clone()).collect();
        (
            PetriNet {
                places,
                transitions,
                source: 0,
                sink: current,
            },
            labels,
        )
    }
}

/// What one journey did against the design.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct JourneyConformance {
    pub tokens: Tokens,
    pub fitness: f64,
    pub fits: bool,
    pub reached_goal: bool,
    /// The furthest stage reached (by name), if any designed step happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub furthest_stage: Option<String>,
    /// Every deviation, in journey order (skipped steps at the time the customer went past them; a dead end
    /// last).
    pub deviations: Vec<Deviation>,
    /// The stages entered, in the order entered, with the time spent in each.
    pub stages: Vec<StageVisit>,
}

/// A stage the journey entered: when, and how long it stayed (from the stage's first event to the first event
/// of a later stage, or to its own last event for the stage the journey ended in).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StageVisit {
    pub stage: String,
    /// The stage's index in the blueprint.
    #[serde(skip)]
    pub index: usize,
    pub entered_us: i64,
    pub duration_us: i64,
}

/// One departure from the design.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Deviation {
    pub kind: DeviationKind,
    pub stage: String,
    /// The designed step (`A | B` for alternatives) or, for an unexpected step, the step taken; for a stage's
    /// standard time, empty.
    pub step: String,
    /// When it showed (µs since the epoch).
    pub at_us: i64,
    /// For a channel deviation, the channel; for a breached standard time, the time taken and the standard (µs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub took_us: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standard_us: Option<i64>,
}

impl Deviation {
    /// A deviation with no channel or time attached.
    fn at(kind: DeviationKind, stage: String, step: String, at_us: i64) -> Deviation {
        Deviation {
            kind,
            stage,
            step,
            at_us,
            channel: None,
            took_us: None,
            standard_us: None,
        }
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum DeviationKind {
    /// A required step never happened although a later designed step did.
    Skipped,
    /// A step in no stage of the design, in the stage the customer was in.
    Unexpected,
    /// A step of an earlier stage (or earlier in a sequence stage) after a later one.
    OutOfOrder,
    /// A designed step again.
    Repeated,
    /// A stage's step on a channel the stage is not designed for.
    OffChannel,
    /// Time in the stage, or to the step, over its standard time.
    OverStandardTime,
    /// The journey went no further than this designed step and never reached the goal (without a goal: never
    /// reached the last stage).
    DeadEnd,
}

impl CompiledBlueprint {
    /// The stage count.
    pub fn stages(&self) -> usize {
        self.blueprint.stages.len()
    }

    /// The stage whose design step code `code` is, if any.
    pub fn stage_of(&self, code: u32) -> Option<usize> {
        self.position_of
            .get(code as usize)
            .copied()
            .flatten()
            .map(|p| p.stage)
    }

    /// Whether the journey's step `code` completes the goal.
    fn is_goal(&self, code: u32) -> bool {
        self.goal.as_ref().is_some_and(|goal| goal[code as usize])
    }

    /// Replays one journey on the net and walks it against the stages.
    pub fn conform(&self, journey: JourneyRef<'_>) -> JourneyConformance {
        let names = &journey.set.step_names;
        let stage_name = |s: usize| self.blueprint.stages[s].name.clone();
        let mut replay = self.net.start();
        let mut deviations = Vec::new();
        let n_steps = self.steps.len();
        let mut first_at: Vec<Option<i64>> = vec![None; n_steps];
        let mut stage_first: Vec<Option<i64>> = vec![None; self.stages()];
        let mut stage_last: Vec<i64> = vec![i64::MIN; self.stages()];
        // Stages in the order they were entered.
        let mut entered: Vec<usize> = Vec::new();
        // The latest designed position reached, and the stage the customer is in.
        let mut furthest: Option<Position> = None;
        let mut current_stage: Option<usize> = None;
        let mut previous_designed_at: Option<i64> = None;
        let mut reached_goal = false;
        for ((&code, &at), &channel) in journey.step.iter().zip(journey.ts).zip(journey.channel) {
            if self.ignored[code as usize] {
                continue;
            }
            reached_goal |= self.is_goal(code);
            let transitions = &self.transitions_of[code as usize];
            if !transitions.is_empty() {
                self.net.step(&mut replay, transitions);
            }
            let Some(position) = self.position_of[code as usize] else {
                deviations.push(Deviation::at(
                    DeviationKind::Unexpected,
                    current_stage.map(stage_name).unwrap_or_default(),
                    names[code as usize].clone(),
                    at,
                ));
                continue;
            };
            let step = &self.steps[position.step];
            if !self.stage_channels[position.stage][channel as usize] {
                deviations.push(Deviation {
                    kind: DeviationKind::OffChannel,
                    stage: stage_name(position.stage),
                    step: step.label.clone(),
                    at_us: at,
                    channel: journey.set.channel_names.get(channel as usize).cloned(),
                    took_us: None,
                    standard_us: None,
                });
            }
            if first_at[position.step].is_some() {
                deviations.push(Deviation::at(
                    DeviationKind::Repeated,
                    stage_name(position.stage),
                    step.label.clone(),
                    at,
                ));
            } else {
                let in_order = furthest.is_none_or(|f| {
                    let sequence =
                        self.blueprint.stages[position.stage].order == StageOrder::Sequence;
                    position.stage > f.stage
                        || (position.stage == f.stage && (!sequence || position.step > f.step))
                });
                if !in_order {
                    deviations.push(Deviation::at(
                        DeviationKind::OutOfOrder,
                        stage_name(position.stage),
                        step.label.clone(),
                        at,
                    ));
                }
                // Required steps before this one (earlier stages, or earlier in a sequence stage) never seen are
                // skipped now that the customer went past them.
                if in_order {
                    let from = furthest.map_or(0, |f| f.step + 1);
                    for (skipped, s) in self.steps.iter().enumerate().take(position.step).skip(from)
                    {
                        let same_any_stage = s.stage == position.stage
                            && self.blueprint.stages[s.stage].order == StageOrder::Any;
                        if s.required && first_at[skipped].is_none() && !same_any_stage {
                            deviations.push(Deviation::at(
                                DeviationKind::Skipped,
                                stage_name(s.stage),
                                s.label.clone(),
                                at,
                            ));
                        }
                    }
                    // An `any` stage's required steps are skipped once a later stage is entered.
                    if let Some(f) = furthest.filter(|f| position.stage > f.stage) {
                        for stage in f.stage..position.stage {
                            if self.blueprint.stages[stage].order != StageOrder::Any {
                                continue;
                            }
                            for (index, s) in self.steps.iter().enumerate() {
                                if s.stage == stage
                                    && s.required
                                    && first_at[index].is_none()
                                    && index < from
                                {
                                    deviations.push(Deviation::at(
                                        DeviationKind::Skipped,
                                        stage_name(stage),
                                        s.label.clone(),
                                        at,
                                    ));
                                }
                            }
                        }
                    }
                }
                if let (Some(standard), Some(previous)) = (step.standard_us, previous_designed_at) {
                    if at - previous > standard {
                        deviations.push(Deviation {
                            kind: DeviationKind::OverStandardTime,
                            stage: stage_name(position.stage),
                            step: step.label.clone(),
                            at_us: at,
                            channel: None,
                            took_us: Some(at - previous),
                            standard_us: Some(standard),
                        });
                    }
                }
                first_at[position.step] = Some(at);
                if in_order {
                    furthest = Some(position);
                }
            }
            // Time in a stage runs from its first event to the first event of a later stage.
            if stage_first[position.stage].is_none() {
                stage_first[position.stage] = Some(at);
                entered.push(position.stage);
                if let Some(left) = current_stage.filter(|s| *s < position.stage) {
                    self.stage_time(left, stage_first[left], Some(at), &mut deviations);
                }
            }
            stage_last[position.stage] = stage_last[position.stage].max(at);
            current_stage = Some(current_stage.map_or(position.stage, |s| s.max(position.stage)));
            previous_designed_at = Some(at);
        }
        // The stage the journey ended in: its time so far counts against its standard.
        if let Some(last) = current_stage {
            let end = stage_last[last];
            self.stage_time(last, stage_first[last], Some(end), &mut deviations);
        }
        if let (Some(f), Some(last)) = (furthest, current_stage) {
            let complete = match &self.goal {
                Some(_) => reached_goal,
                None => last + 1 == self.stages(),
            };
            if !complete {
                deviations.push(Deviation::at(
                    DeviationKind::DeadEnd,
                    stage_name(f.stage),
                    self.steps[f.step].label.clone(),
                    previous_designed_at.unwrap_or_default(),
                ));
            }
        }
        let stages = entered
            .iter()
            .enumerate()
            .map(|(order, &stage)| {
                let first = stage_first[stage].expect("entered stages have a first event");
                let next = entered[order + 1..]
                    .iter()
                    .filter(|later| **later > stage)
                    .filter_map(|later| stage_first[*later])
                    .min();
                StageVisit {
                    stage: stage_name(stage),
                    index: stage,
                    entered_us: first,
                    duration_us: next.unwrap_or(stage_last[stage]) - first,
                }
            })
            .collect();
        let tokens = self.net.finish(replay);
        JourneyConformance {
            tokens,
            fitness: tokens.fitness(),
            fits: tokens.fits(),
            reached_goal,
            furthest_stage: current_stage.map(stage_name),
            deviations,
            stages,
        }
    }

    fn stage_time(
        &self,
        stage: usize,
        entered: Option<i64>,
        left: Option<i64>,
        deviations: &mut Vec<Deviation>,
    ) {
        let (Some(standard), Some(entered), Some(left)) =
            (self.stage_standard[stage], entered, left)
        else {
            return;
        };
        if left - entered > standard {
            deviations.push(Deviation {
                kind: DeviationKind::OverStandardTime,
                stage: self.blueprint.stages[stage].name.clone(),
                step: String::new(),
                at_us: left,
                channel: None,
                took_us: Some(left - entered),
                standard_us: Some(standard),
            });
        }
    }
}

mod conformance;
pub use conformance::{
    BlueprintRef, Conformance, ConformanceReport, ConformanceRequest, DeviationFinding,
    FitnessReport, StageFlow, StageReport,
};

#[cfg(test)]
mod tests;
