//! The rules at work: each customer's journey facts, segment memberships and trigger states, and the timers,
//! advanced by events, scores and a clock the caller passes in (no hidden `now`: the same inputs in the same
//! order give the same decisions, which is what makes a dry run against history and a restart exact).
//!
//! Time: an event is evaluated at its own time; a timer at its due time. [`Rules::tick`] runs every timer due
//! at or before the clock it is given. Windows (`count(step, "1h")`) end at the evaluation time.

use crate::defs::{QuietPolicy, Reentry, RuleSet, Trigger, When};
use crate::expr::{
    duration_value, json_map, json_value, map_value, Bindings, Condition, Fact, FactValues, Latest,
};
use cel::Value;
use chrono::{Datelike, TimeZone, Timelike};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use waymark_model::{Event, EventType, Identifier};

const DAY_US: i64 = 86_400_000_000;

/// The compiled definitions with their indexes.
pub struct Rules {
    pub set: RuleSet,
    /// Per step the facts read: the longest window (µs; 0 for none).
    fact_steps: HashMap<String, i64>,
    /// Every fact any condition reads.
    facts: Vec<Fact>,
    /// Event triggers by step, and those on every event.
    event_by_step: HashMap<String, Vec<usize>>,
    event_any: Vec<usize>,
    absence_by_after: HashMap<String, Vec<usize>>,
    absence_by_missing: HashMap<String, Vec<usize>>,
    /// Whether any condition reads the customer's traits (so they are bound).
    reads_traits: bool,
}

/// One step's facts for one customer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct StepFacts {
    pub(crate) count: u64,
    pub(crate) last: i64,
    /// Times within the longest window read, oldest first.
    pub(crate) recent: VecDeque<i64>,
}

/// One trigger's state for one customer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct TriggerState {
    /// Fired (or capped, or held out) and not exited since.
    entered: bool,
    /// Instances ever, of this version.
    instances: u32,
    version: u32,
    /// The local calendar day (days since 1970-01-01) of `day_count`.
    day: i64,
    day_count: u32,
    /// An absence timer waiting: (due, message id of the event that started it).
    pending: Option<(i64, String)>,
}

/// What the rules hold about one customer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CustomerState {
    traits: serde_json::Map<String, serde_json::Value>,
    identifiers: BTreeSet<String>,
    steps: HashMap<String, StepFacts>,
    last_step: Option<String>,
    previous_step: Option<String>,
    channel: Option<String>,
    current_stage: Option<String>,
    last_time: i64,
    segments: BTreeSet<String>,
    scores: BTreeMap<String, f64>,
    triggers: HashMap<String, TriggerState>,
    /// When time-dependent segments are next re-evaluated.
    recheck_at: Option<i64>,
}

impl CustomerState {
    pub fn segments(&self) -> &BTreeSet<String> {
        &self.segments
    }

    /// The identifier keys (`user:…`, `anon:…`) seen on the customer's events.
    pub fn identifiers(&self) -> &BTreeSet<String> {
        &self.identifiers
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
enum TimerKind {
    /// Re-evaluate the customer's time-dependent segments.
    Recheck,
    /// An absence trigger's wait ends.
    Absence { trigger: String },
}

/// Everything the rules hold: serialisable, so a caller can snapshot it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RulesState {
    customers: HashMap<String, CustomerState>,
    /// (due, customer, kind).
    timers: BTreeSet<(i64, String, TimerKind)>,
    /// Per trigger: (local day, instances that day), all customers.
    global_days: HashMap<String, (i64, u32)>,
}

impl RulesState {
    pub fn customer(&self, id: &str) -> Option<&CustomerState> {
        self.customers.get(id)
    }

    pub fn customers(&self) -> usize {
        self.customers.len()
    }

    /// Members of `segment` now.
    pub fn members<'a>(&'a self, segment: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.customers
            .iter()
            .filter(move |(_, state)| state.segments.contains(segment))
            .map(|(id, _)| id.as_str())
    }

    /// Removes customers `ids` (their facts, segment memberships, trigger states and timers): a deleted
    /// customer. Returns how many were held.
    pub fn forget(&mut self, ids: &std::collections::HashSet<String>) -> usize {
        let before = self.customers.len();
        self.customers.retain(|id, _| !ids.contains(id));
        self.timers
            .retain(|(_, customer, _)| !ids.contains(customer));
        before - self.customers.len()
    }

    /// Timers waiting.
    pub fn timers(&self) -> usize {
        self.timers.len()
    }

    /// Takes the triggers' part of `old` (each customer's trigger states, absence waits and the global day
    /// counts) into this state, rebuilt from history after the definitions changed: re-entry modes and caps
    /// keep counting what was decided before; a trigger whose version changed starts afresh when next
    /// considered.
    pub fn carry_triggers_from(&mut self, old: RulesState) {
        for (id, customer) in old.customers {
            if customer.triggers.is_empty() {
                continue;
            }
            self.customers.entry(id).or_default().triggers = customer.triggers;
        }
        for timer in old.timers {
            if matches!(timer.2, TimerKind::Absence { .. }) {
                self.timers.insert(timer);
            }
        }
        self.global_days = old.global_days;
    }
}

/// Why a trigger instance exists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Cause {
    Event {
        message_id: String,
        step: String,
    },
    Absence {
        after_message_id: String,
        missing: String,
        due: i64,
    },
    SegmentEntry {
        segment: String,
    },
    Score {
        model: String,
        value: f64,
    },
    /// A KPI monitor's reading broke its test (the instance's trigger is `monitor:NAME`, its customer empty).
    Monitor {
        monitor: String,
        value: f64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expected: Option<f64>,
    },
}

/// What became of a trigger instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The actions are to run (at `deliver_at`).
    Fired,
    /// A frequency cap stopped the actions; the customer advanced.
    Capped,
    /// In the holdout: no actions, kept to measure lift.
    HeldOut,
    /// Due in quiet hours with `quiet = "skip"`.
    Quiet,
}

/// One trigger instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Instance {
    pub trigger: String,
    pub version: u32,
    pub customer: String,
    /// When it was decided (µs): the event's time or the timer's due time.
    pub at: i64,
    /// When its actions are to run: `at`, or the end of quiet hours.
    pub deliver_at: i64,
    /// The same for every delivery attempt of this instance, and across restarts.
    pub key: String,
    pub status: Status,
    /// Which cap, when capped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capped_by: Option<String>,
    pub priority: i32,
    pub cause: Cause,
}

/// What the rules decided.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    SegmentEntered {
        segment: String,
        customer: String,
        at: i64,
    },
    SegmentExited {
        segment: String,
        customer: String,
        at: i64,
    },
    Trigger(Instance),
    /// A condition could not be evaluated (counted, not fatal: the condition was false).
    Error {
        rule: String,
        customer: String,
        message: String,
    },
}

/// Whether triggers act: `Backfill` builds facts and segments from history without deciding any trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Live,
    Backfill,
}

impl Rules {
    pub fn new(set: RuleSet) -> Rules {
        let mut rules = Rules {
            set,
            fact_steps: HashMap::new(),
            facts: Vec::new(),
            event_by_step: HashMap::new(),
            event_any: Vec::new(),
            absence_by_after: HashMap::new(),
            absence_by_missing: HashMap::new(),
            reads_traits: false,
        };
        let conditions: Vec<&Condition> = rules
            .set
            .segments
            .iter()
            .map(|segment| &segment.condition)
            .chain(
                rules
                    .set
                    .triggers
                    .iter()
                    .filter_map(|t| t.condition.as_ref()),
            )
            .collect();
        let mut facts = BTreeSet::new();
        for condition in &conditions {
            rules.reads_traits |= condition.reads().traits;
            for fact in &condition.reads().facts {
                facts.insert(fact.clone());
                if let Some(step) = fact.step() {
                    let window = match fact {
                        Fact::Count {
                            window: Some(window),
                            ..
                        } => *window,
                        _ => 0,
                    };
                    let entry = rules.fact_steps.entry(step.to_string()).or_insert(0);
                    *entry = (*entry).max(window);
                }
            }
        }
        rules.facts = facts.into_iter().collect();
        for (index, trigger) in rules.set.triggers.iter().enumerate() {
            match &trigger.when {
                When::Event { step: Some(step) } => rules
                    .event_by_step
                    .entry(step.clone())
                    .or_default()
                    .push(index),
                When::Event { step: None } => rules.event_any.push(index),
                When::Absence { after, missing, .. } => {
                    rules
                        .absence_by_after
                        .entry(after.clone())
                        .or_default()
                        .push(index);
                    rules
                        .absence_by_missing
                        .entry(missing.clone())
                        .or_default()
                        .push(index);
                }
                _ => {}
            }
        }
        rules
    }

    /// The earliest timer due, if any.
    /// Whether any definition follows events: with no segment, trigger, stage or monitor (monitors read the
    /// events' clock when the rules run in event time) there is nothing to keep, so a worker need not read the
    /// events at all (loading definitions rebuilds from history anyway).
    pub fn follows_events(&self) -> bool {
        !(self.set.segments.is_empty()
            && self.set.triggers.is_empty()
            && self.set.stages.is_empty()
            && self.set.monitors.is_empty())
    }

    pub fn next_due(&self, state: &RulesState) -> Option<i64> {
        state.timers.first().map(|(due, _, _)| *due)
    }

    /// An event of `customer`: facts, segments, then the triggers it can set off. `identifiers` are the
    /// customer's identifier keys, for `customer.identifiers`.
    pub fn on_event(
        &self,
        state: &mut RulesState,
        customer: &str,
        event: &Event,
        mode: Mode,
    ) -> Vec<Decision> {
        let at = event.timestamp.0;
        let step = event.step();
        let mut decisions = Vec::new();
        let customer_state = state.customers.entry(customer.to_string()).or_default();
        let first = customer_state.last_step.is_none() && customer_state.steps.is_empty();
        self.observe(customer_state, event, &step);
        let changed_traits =
            matches!(event.event_type, EventType::Identify) && !event.traits.is_empty();
        let event_value = event_value(event, &step);
        // Segments that can have changed.
        self.update_segments(
            state,
            customer,
            at,
            Some(&event_value),
            &mut |condition: &Condition| {
                let reads = condition.reads();
                first
                    || reads.latest
                    || reads.now
                    || reads.steps().any(|s| s == step)
                    || (changed_traits && reads.traits)
                    || reads.time_dependent()
            },
            mode,
            &mut decisions,
        );
        if mode == Mode::Live {
            self.event_triggers(state, customer, event, &step, &event_value, &mut decisions);
        }
        self.schedule_recheck(state, customer, at);
        sort_by_priority(&mut decisions);
        decisions
    }

    /// An event on the data's own clock (event time, for dry runs against history and replays): first the
    /// timers due by the latest time seen (`clock`, advanced to the event's time), then the event.
    pub fn on_event_in_event_time(
        &self,
        state: &mut RulesState,
        customer: &str,
        event: &Event,
        clock: &mut i64,
        mode: Mode,
    ) -> Vec<Decision> {
        *clock = (*clock).max(event.timestamp.0);
        let mut decisions = self.tick(state, *clock, mode);
        decisions.extend(self.on_event(state, customer, event, mode));
        decisions
    }

    /// `model`'s new score of `customer`, computed at `at`.
    pub fn on_score(
        &self,
        state: &mut RulesState,
        customer: &str,
        model: &str,
        value: f64,
        at: i64,
        mode: Mode,
    ) -> Vec<Decision> {
        let mut decisions = Vec::new();
        let customer_state = state.customers.entry(customer.to_string()).or_default();
        let previous = customer_state.scores.insert(model.to_string(), value);
        if previous == Some(value) {
            return decisions;
        }
        self.update_segments(
            state,
            customer,
            at,
            None,
            &mut |condition: &Condition| {
                let reads = condition.reads();
                reads.all_scores || reads.models().any(|m| m == model)
            },
            mode,
            &mut decisions,
        );
        if mode == Mode::Live {
            for (index, trigger) in self.set.triggers.iter().enumerate() {
                let When::Score {
                    model: wanted,
                    above,
                } = &trigger.when
                else {
                    continue;
                };
                if wanted != model {
                    continue;
                }
                let crossed = value >= *above && previous.is_none_or(|previous| previous < *above);
                if value < *above {
                    self.exit(state, customer, trigger);
                } else if crossed {
                    let cause = Cause::Score {
                        model: model.to_string(),
                        value,
                    };
                    if let Some(decision) = self.consider(
                        state,
                        customer,
                        index,
                        at,
                        None,
                        cause,
                        &format!("{model}@{at}"),
                    ) {
                        decisions.push(decision);
                    }
                }
            }
        }
        sort_by_priority(&mut decisions);
        decisions
    }

    /// Runs every timer due at or before `now`, in due order.
    pub fn tick(&self, state: &mut RulesState, now: i64, mode: Mode) -> Vec<Decision> {
        let mut decisions = Vec::new();
        while let Some((due, _, _)) = state.timers.first() {
            if *due > now {
                break;
            }
            let Some((due, customer, kind)) = state.timers.pop_first() else {
                break;
            };
            match kind {
                TimerKind::Recheck => {
                    if let Some(customer_state) = state.customers.get_mut(&customer) {
                        if customer_state.recheck_at == Some(due) {
                            customer_state.recheck_at = None;
                        } else {
                            continue;
                        }
                    }
                    self.update_segments(
                        state,
                        &customer,
                        due,
                        None,
                        &mut |condition: &Condition| condition.reads().time_dependent(),
                        mode,
                        &mut decisions,
                    );
                    self.schedule_recheck(state, &customer, due);
                }
                TimerKind::Absence { trigger } => {
                    let Some(index) = self.set.triggers.iter().position(|t| t.name == trigger)
                    else {
                        continue;
                    };
                    let rule = &self.set.triggers[index];
                    let When::Absence { missing, .. } = &rule.when else {
                        continue;
                    };
                    let Some(trigger_state) = state
                        .customers
                        .get_mut(&customer)
                        .and_then(|c| c.triggers.get_mut(&trigger))
                    else {
                        continue;
                    };
                    let Some((pending_due, started_by)) = trigger_state.pending.clone() else {
                        continue;
                    };
                    if pending_due != due {
                        continue;
                    }
                    trigger_state.pending = None;
                    if mode == Mode::Live {
                        let cause = Cause::Absence {
                            after_message_id: started_by.clone(),
                            missing: missing.clone(),
                            due,
                        };
                        if let Some(decision) =
                            self.consider(state, &customer, index, due, None, cause, &started_by)
                        {
                            decisions.push(decision);
                        }
                    }
                }
            }
        }
        sort_by_priority(&mut decisions);
        decisions
    }

    /// Folds `from`'s state into `into` (two identifiers found to be one customer).
    pub fn merge_customers(
        &self,
        state: &mut RulesState,
        from: &str,
        into: &str,
        at: i64,
        mode: Mode,
    ) -> Vec<Decision> {
        let mut decisions = Vec::new();
        if from == into {
            return decisions;
        }
        let Some(source) = state.customers.remove(from) else {
            return decisions;
        };
        // `from` is gone: it leaves its segments, and the merged customer's memberships are decided afresh below.
        let mut left: Vec<&String> = source.segments.iter().collect();
        left.sort();
        for segment in left {
            decisions.push(Decision::SegmentExited {
                segment: segment.clone(),
                customer: from.to_string(),
                at,
            });
        }
        let target = state.customers.entry(into.to_string()).or_default();
        for (key, value) in source.traits {
            target.traits.entry(key).or_insert(value);
        }
        target.identifiers.extend(source.identifiers);
        for (step, facts) in source.steps {
            let entry = target.steps.entry(step).or_default();
            entry.count += facts.count;
            entry.last = entry.last.max(facts.last);
            let mut recent: Vec<i64> = entry.recent.drain(..).chain(facts.recent).collect();
            recent.sort_unstable();
            entry.recent = recent.into();
        }
        if source.last_time > target.last_time {
            target.last_step = source.last_step;
            target.previous_step = source.previous_step;
            target.channel = source.channel;
            target.current_stage = source.current_stage;
            target.last_time = source.last_time;
        }
        for (model, value) in source.scores {
            target.scores.entry(model).or_insert(value);
        }
        for (name, trigger) in source.triggers {
            let entry = target.triggers.entry(name).or_default();
            entry.entered |= trigger.entered;
            entry.instances += trigger.instances;
            if trigger.day == entry.day {
                entry.day_count += trigger.day_count;
            } else if trigger.day > entry.day {
                entry.day = trigger.day;
                entry.day_count = trigger.day_count;
            }
            if entry.pending.is_none() {
                entry.pending = trigger.pending;
            }
        }
        let moved: Vec<(i64, String, TimerKind)> = state
            .timers
            .iter()
            .filter(|(_, customer, _)| customer == from)
            .cloned()
            .collect();
        for (due, _, kind) in moved {
            state.timers.remove(&(due, from.to_string(), kind.clone()));
            state.timers.insert((due, into.to_string(), kind));
        }
        if let Some(target) = state.customers.get_mut(into) {
            target.recheck_at = state
                .timers
                .iter()
                .find(|(_, customer, kind)| customer == into && *kind == TimerKind::Recheck)
                .map(|(due, _, _)| *due);
        }
        self.update_segments(state, into, at, None, &mut |_| true, mode, &mut decisions);
        decisions
    }

    /// Records the event in the customer's facts.
    fn observe(&self, customer: &mut CustomerState, event: &Event, step: &str) {
        let at = event.timestamp.0;
        note_identity(event, &mut customer.identifiers, &mut customer.traits);
        if let Some(window) = self.fact_steps.get(step) {
            let facts = customer.steps.entry(step.to_string()).or_default();
            facts.count += 1;
            facts.last = facts.last.max(at);
            if *window > 0 {
                let position = facts.recent.partition_point(|time| *time <= at);
                facts.recent.insert(position, at);
                let newest = *facts.recent.back().unwrap_or(&at);
                while facts
                    .recent
                    .front()
                    .is_some_and(|time| *time <= newest - window)
                {
                    facts.recent.pop_front();
                }
            }
        }
        if at >= customer.last_time || customer.last_step.is_none() {
            customer.previous_step = customer.last_step.take();
            customer.last_step = Some(step.to_string());
            customer.channel = Some(event.channel.clone());
            customer.last_time = at;
            if let Some(stage) = self.set.stages.iter().find(|stage| stage.matches(step)) {
                customer.current_stage = Some(stage.name.clone());
            }
        }
    }

    /// The facts' values for `customer` at `at`.
    fn fact_values(&self, customer: &CustomerState, at: i64) -> FactValues {
        fact_values(
            &self.facts,
            &customer.steps,
            &customer.scores,
            &customer.segments,
            at,
        )
    }

    fn bindings(
        &self,
        state: &RulesState,
        customer_id: &str,
        at: i64,
        event: Option<&Value>,
    ) -> Bindings {
        let empty = CustomerState::default();
        let customer = state.customers.get(customer_id).unwrap_or(&empty);
        let no_traits = serde_json::Map::new();
        let customer_value = customer_value(
            customer_id,
            if self.reads_traits {
                &customer.traits
            } else {
                &no_traits
            },
            &customer.segments,
            &customer.scores,
            &customer.identifiers,
            None,
        );
        let latest = Latest {
            last_step: customer.last_step.as_deref(),
            previous_step: customer.previous_step.as_deref(),
            current_stage: customer.current_stage.as_deref(),
            channel: customer.channel.as_deref(),
        };
        Bindings::new(
            event.cloned(),
            customer_value,
            &latest,
            at,
            self.fact_values(customer, at),
        )
    }

    /// Re-evaluates the segments `affected` selects, in definition order (a segment reads only earlier ones, so
    /// a change is seen by the later ones), recording entries and exits and the segment-entry triggers they set
    /// off.
    #[allow(clippy::too_many_arguments)]
    fn update_segments(
        &self,
        state: &mut RulesState,
        customer: &str,
        at: i64,
        event: Option<&Value>,
        affected: &mut dyn FnMut(&Condition) -> bool,
        mode: Mode,
        decisions: &mut Vec<Decision>,
    ) {
        let mut bindings: Option<Bindings> = None;
        let mut changed: Vec<String> = Vec::new();
        for segment in &self.set.segments {
            let reads_changed = segment
                .condition
                .reads()
                .segments()
                .any(|name| changed.iter().any(|c| c == name))
                || (segment.condition.reads().all_segments && !changed.is_empty());
            if !reads_changed && !affected(&segment.condition) {
                continue;
            }
            if bindings.is_none() || reads_changed {
                bindings = Some(self.bindings(state, customer, at, event));
            }
            let Some(current) = bindings.as_ref() else {
                continue;
            };
            let member = match segment.condition.evaluate(current) {
                Ok(value) => value,
                Err(message) => {
                    if !message.contains("never did") && !message.contains("no score") {
                        decisions.push(Decision::Error {
                            rule: format!("segments[{}]", segment.name),
                            customer: customer.to_string(),
                            message,
                        });
                    }
                    false
                }
            };
            let Some(customer_state) = state.customers.get_mut(customer) else {
                continue;
            };
            let was = customer_state.segments.contains(&segment.name);
            if member == was {
                continue;
            }
            changed.push(segment.name.clone());
            if member {
                customer_state.segments.insert(segment.name.clone());
                decisions.push(Decision::SegmentEntered {
                    segment: segment.name.clone(),
                    customer: customer.to_string(),
                    at,
                });
            } else {
                customer_state.segments.remove(&segment.name);
                decisions.push(Decision::SegmentExited {
                    segment: segment.name.clone(),
                    customer: customer.to_string(),
                    at,
                });
            }
        }
        // Segment-entry triggers.
        for name in changed {
            let entered = state
                .customers
                .get(customer)
                .is_some_and(|c| c.segments.contains(&name));
            for (index, trigger) in self.set.triggers.iter().enumerate() {
                if !matches!(&trigger.when, When::SegmentEntry { segment } if *segment == name) {
                    continue;
                }
                if !entered {
                    self.exit(state, customer, trigger);
                    continue;
                }
                if mode != Mode::Live {
                    continue;
                }
                let cause = Cause::SegmentEntry {
                    segment: name.clone(),
                };
                if let Some(decision) = self.consider(
                    state,
                    customer,
                    index,
                    at,
                    event,
                    cause,
                    &format!("{name}@{at}"),
                ) {
                    decisions.push(decision);
                }
            }
        }
    }

    fn event_triggers(
        &self,
        state: &mut RulesState,
        customer: &str,
        event: &Event,
        step: &str,
        event_value: &Value,
        decisions: &mut Vec<Decision>,
    ) {
        let at = event.timestamp.0;
        // The missing step ends waits and counts as the exit.
        if let Some(indexes) = self.absence_by_missing.get(step) {
            for index in indexes {
                let trigger = &self.set.triggers[*index];
                if let Some(trigger_state) = state
                    .customers
                    .get_mut(customer)
                    .and_then(|c| c.triggers.get_mut(&trigger.name))
                {
                    if let Some((due, _)) = trigger_state.pending.take() {
                        if at <= due {
                            state.timers.remove(&(
                                due,
                                customer.to_string(),
                                TimerKind::Absence {
                                    trigger: trigger.name.clone(),
                                },
                            ));
                        } else {
                            // The wait is over already; its timer fires (or has fired).
                            trigger_state.pending = Some((due, String::new()));
                        }
                    }
                    trigger_state.entered = false;
                }
            }
        }
        let candidates = self
            .event_by_step
            .get(step)
            .into_iter()
            .flatten()
            .chain(self.event_any.iter())
            .chain(self.absence_by_after.get(step).into_iter().flatten());
        let candidates: Vec<usize> = candidates.copied().collect();
        if candidates.is_empty() {
            return;
        }
        let bindings = self.bindings(state, customer, at, Some(event_value));
        for index in candidates {
            let trigger = &self.set.triggers[index];
            let holds = match &trigger.condition {
                None => true,
                Some(condition) => match condition.evaluate(&bindings) {
                    Ok(value) => value,
                    Err(message) => {
                        if !message.contains("never did") && !message.contains("no score") {
                            decisions.push(Decision::Error {
                                rule: format!("triggers[{}]", trigger.name),
                                customer: customer.to_string(),
                                message,
                            });
                        }
                        false
                    }
                },
            };
            match &trigger.when {
                When::Absence { within, .. } => {
                    if !holds || !self.active(trigger, at) {
                        continue;
                    }
                    let trigger_state = self.trigger_state(state, customer, trigger);
                    let allowed = match trigger.reentry {
                        Reentry::Once => trigger_state.instances == 0,
                        Reentry::AfterExit => !trigger_state.entered,
                        Reentry::EveryTime => true,
                    };
                    if !allowed || trigger_state.pending.is_some() {
                        continue;
                    }
                    let due = at + within;
                    trigger_state.pending = Some((due, event.message_id.clone()));
                    state.timers.insert((
                        due,
                        customer.to_string(),
                        TimerKind::Absence {
                            trigger: trigger.name.clone(),
                        },
                    ));
                }
                _ => {
                    if !holds {
                        self.exit(state, customer, trigger);
                        continue;
                    }
                    let cause = Cause::Event {
                        message_id: event.message_id.clone(),
                        step: step.to_string(),
                    };
                    if let Some(decision) = self.consider(
                        state,
                        customer,
                        index,
                        at,
                        Some(event_value),
                        cause,
                        &event.message_id,
                    ) {
                        decisions.push(decision);
                    }
                }
            }
        }
    }

    fn active(&self, trigger: &Trigger, at: i64) -> bool {
        trigger.starts.is_none_or(|starts| at >= starts)
            && trigger.ends.is_none_or(|ends| at < ends)
    }

    /// The customer's state of `trigger`, reset when the trigger's version changed.
    fn trigger_state<'a>(
        &self,
        state: &'a mut RulesState,
        customer: &str,
        trigger: &Trigger,
    ) -> &'a mut TriggerState {
        let entry = state
            .customers
            .entry(customer.to_string())
            .or_default()
            .triggers
            .entry(trigger.name.clone())
            .or_default();
        if entry.version != trigger.version {
            *entry = TriggerState {
                version: trigger.version,
                ..TriggerState::default()
            };
        }
        entry
    }

    fn exit(&self, state: &mut RulesState, customer: &str, trigger: &Trigger) {
        if let Some(trigger_state) = state
            .customers
            .get_mut(customer)
            .and_then(|c| c.triggers.get_mut(&trigger.name))
        {
            trigger_state.entered = false;
        }
    }

    /// A trigger matched: applies its window, re-entry mode, caps, holdout and quiet hours.
    #[allow(clippy::too_many_arguments)]
    fn consider(
        &self,
        state: &mut RulesState,
        customer: &str,
        index: usize,
        at: i64,
        event: Option<&Value>,
        cause: Cause,
        instance_of: &str,
    ) -> Option<Decision> {
        let trigger = &self.set.triggers[index];
        if !self.active(trigger, at) {
            return None;
        }
        // Segment-entry and score triggers may have a condition too (over the customer).
        if !matches!(trigger.when, When::Event { .. } | When::Absence { .. }) {
            if let Some(condition) = &trigger.condition {
                let bindings = self.bindings(state, customer, at, event);
                if condition.evaluate(&bindings) != Ok(true) {
                    return None;
                }
            }
        }
        let zone = self.zone_of(state, customer);
        let settings_zone = self.set.timezone;
        let local_day = local_day_in(zone, at);
        let global_day = local_day_in(settings_zone, at);
        let trigger_state = self.trigger_state(state, customer, trigger);
        let allowed = match trigger.reentry {
            Reentry::Once => trigger_state.instances == 0,
            Reentry::AfterExit => !trigger_state.entered,
            Reentry::EveryTime => true,
        };
        if !allowed {
            return None;
        }
        trigger_state.entered = true;
        trigger_state.instances += 1;
        if trigger_state.day != local_day {
            trigger_state.day = local_day;
            trigger_state.day_count = 0;
        }
        let mut capped_by = None;
        if let Some(cap) = trigger.cap_per_customer_per_day {
            if trigger_state.day_count >= cap {
                capped_by = Some(format!("cap_per_customer_per_day = {cap}"));
            }
        }
        if capped_by.is_none() {
            trigger_state.day_count += 1;
        }
        let global = state
            .global_days
            .entry(trigger.name.clone())
            .or_insert((global_day, 0));
        if global.0 != global_day {
            *global = (global_day, 0);
        }
        if capped_by.is_none() {
            if let Some(cap) = trigger.cap_global_per_day {
                if global.1 >= cap {
                    capped_by = Some(format!("cap_global_per_day = {cap}"));
                    if let Some(trigger_state) = state
                        .customers
                        .get_mut(customer)
                        .and_then(|c| c.triggers.get_mut(&trigger.name))
                    {
                        trigger_state.day_count -= 1;
                    }
                }
            }
        }
        if capped_by.is_none() {
            if let Some(global) = state.global_days.get_mut(&trigger.name) {
                global.1 += 1;
            }
        }
        let key = format!(
            "{}.v{}.{:016x}",
            trigger.name,
            trigger.version,
            xxhash_rust::xxh3::xxh3_64(format!("{customer}\u{1f}{instance_of}").as_bytes())
        );
        let mut deliver_at = at;
        let status = if capped_by.is_some() {
            Status::Capped
        } else if in_holdout(&trigger.name, customer, trigger.holdout) {
            Status::HeldOut
        } else if let Some(end) = trigger
            .quiet_hours
            .and_then(|hours| quiet_until(zone, at, hours))
        {
            match trigger.quiet {
                QuietPolicy::Delay => {
                    deliver_at = end;
                    Status::Fired
                }
                QuietPolicy::Skip => Status::Quiet,
            }
        } else {
            Status::Fired
        };
        Some(Decision::Trigger(Instance {
            trigger: trigger.name.clone(),
            version: trigger.version,
            customer: customer.to_string(),
            at,
            deliver_at,
            key,
            status,
            capped_by,
            priority: trigger.priority,
            cause,
        }))
    }

    /// The customer's time zone: their trait, else the settings'.
    fn zone_of(&self, state: &RulesState, customer: &str) -> chrono_tz::Tz {
        state
            .customers
            .get(customer)
            .and_then(|c| c.traits.get(&self.set.settings.timezone_trait))
            .and_then(|value| value.as_str())
            .and_then(|name| name.parse::<chrono_tz::Tz>().ok())
            .unwrap_or(self.set.timezone)
    }

    /// Schedules the next re-evaluation of the customer's time-dependent segments: the next instant a windowed
    /// count loses an event, a `days_since` passes a whole day, or a `since` passes a duration the conditions
    /// name.
    fn schedule_recheck(&self, state: &mut RulesState, customer: &str, now: i64) {
        let timed: Vec<&Condition> = self
            .set
            .segments
            .iter()
            .map(|segment| &segment.condition)
            .filter(|condition| condition.reads().time_dependent())
            .collect();
        if timed.is_empty() {
            return;
        }
        let Some(customer_state) = state.customers.get(customer) else {
            return;
        };
        let mut next: Option<i64> = None;
        let mut consider = |instant: i64| {
            if instant > now {
                next = Some(next.map_or(instant, |n| n.min(instant)));
            }
        };
        for condition in timed {
            for fact in &condition.reads().facts {
                let Some(facts) = fact.step().and_then(|s| customer_state.steps.get(s)) else {
                    continue;
                };
                match fact {
                    Fact::Count {
                        window: Some(window),
                        ..
                    } => {
                        if let Some(time) = facts.recent.iter().find(|t| **t + window > now) {
                            consider(time + window);
                        }
                    }
                    Fact::DaysSince { .. } if facts.count > 0 => {
                        let days = (now - facts.last).max(0) / DAY_US;
                        consider(facts.last + (days + 1) * DAY_US);
                    }
                    Fact::Since { .. } if facts.count > 0 => {
                        for duration in &condition.reads().durations {
                            // Strictly after the instant, so `>` comparisons have flipped.
                            consider(facts.last + duration + 1);
                        }
                    }
                    _ => {}
                }
            }
        }
        let Some(customer_state) = state.customers.get_mut(customer) else {
            return;
        };
        if customer_state.recheck_at == next {
            return;
        }
        if let Some(old) = customer_state.recheck_at.take() {
            state
                .timers
                .remove(&(old, customer.to_string(), TimerKind::Recheck));
        }
        if let Some(due) = next {
            customer_state.recheck_at = Some(due);
            state
                .timers
                .insert((due, customer.to_string(), TimerKind::Recheck));
        }
    }
}

fn sort_by_priority(decisions: &mut [Decision]) {
    decisions.sort_by_key(|decision| match decision {
        Decision::Trigger(instance) => -(instance.priority as i64),
        _ => i64::MIN,
    });
}

/// The event as conditions see it.
fn event_value(event: &Event, step: &str) -> Value {
    let text = |s: &str| Value::String(Arc::new(s.to_string()));
    let optional = |s: &Option<String>| s.as_deref().map(text).unwrap_or(Value::Null);
    map_value([
        ("name".to_string(), text(step)),
        ("type".to_string(), text(event.event_type.as_str())),
        ("channel".to_string(), text(&event.channel)),
        (
            "time".to_string(),
            crate::expr::timestamp_value(event.timestamp.0),
        ),
        ("message_id".to_string(), text(&event.message_id)),
        ("user_id".to_string(), optional(&event.user_id)),
        ("anonymous_id".to_string(), optional(&event.anonymous_id)),
        ("properties".to_string(), json_map(&event.properties)),
        ("traits".to_string(), json_map(&event.traits)),
        (
            "context".to_string(),
            json_value(&serde_json::Value::Object(event.context.clone())),
        ),
    ])
}

/// What the rules and the catalogue keep of every event: the identifier keys it carries and, for an identify,
/// its traits (the latest value of each).
pub(crate) fn note_identity(
    event: &Event,
    identifiers: &mut BTreeSet<String>,
    traits: &mut serde_json::Map<String, serde_json::Value>,
) {
    if let Some(user) = &event.user_id {
        identifiers.insert(Identifier::user(user.as_str()).key());
    }
    if let Some(anonymous) = &event.anonymous_id {
        identifiers.insert(Identifier::anonymous(anonymous.as_str()).key());
    }
    if matches!(event.event_type, EventType::Identify) {
        for (key, value) in &event.traits {
            traits.insert(key.clone(), value.clone());
        }
    }
}

/// The values of `facts` for a customer with these step facts, scores and segments, at `at`: what the journey
/// functions of a condition read (a step never done has no `since`, a model without a score no `score`).
pub(crate) fn fact_values(
    facts: &[Fact],
    steps: &HashMap<String, StepFacts>,
    scores: &BTreeMap<String, f64>,
    segments: &BTreeSet<String>,
    at: i64,
) -> FactValues {
    let mut values = FactValues::with_capacity(facts.len());
    for fact in facts {
        let done = fact.step().and_then(|step| steps.get(step));
        let value = match fact {
            Fact::Count { window, .. } => Some(Value::Int(match (done, window) {
                (None, _) => 0,
                (Some(facts), None) => facts.count as i64,
                (Some(facts), Some(window)) => facts
                    .recent
                    .iter()
                    .filter(|time| **time > at - window && **time <= at)
                    .count() as i64,
            })),
            Fact::Did { .. } => Some(Value::Bool(done.is_some_and(|facts| facts.count > 0))),
            Fact::Since { .. } => done
                .filter(|facts| facts.count > 0)
                .map(|facts| duration_value((at - facts.last).max(0))),
            Fact::DaysSince { .. } => done
                .filter(|facts| facts.count > 0)
                .map(|facts| Value::Int((at - facts.last).max(0) / DAY_US)),
            Fact::Score { model } => scores.get(model).map(|v| Value::Float(*v)),
            Fact::InSegment { name } => Some(Value::Bool(segments.contains(name))),
        };
        if let Some(value) = value {
            values.insert(fact.key(), value);
        }
    }
    values
}

/// The `customer` variable conditions read; `attributes` (a map of value lists) only where they are known (the
/// catalogue's conditions).
pub(crate) fn customer_value(
    id: &str,
    traits: &serde_json::Map<String, serde_json::Value>,
    segments: &BTreeSet<String>,
    scores: &BTreeMap<String, f64>,
    identifiers: &BTreeSet<String>,
    attributes: Option<Value>,
) -> Value {
    let text = |s: &str| Value::String(Arc::new(s.to_string()));
    let mut fields = vec![
        ("id".to_string(), text(id)),
        ("traits".to_string(), json_map(traits)),
        (
            "segments".to_string(),
            Value::List(Arc::new(segments.iter().map(|s| text(s)).collect())),
        ),
        (
            "scores".to_string(),
            map_value(
                scores
                    .iter()
                    .map(|(model, value)| (model.clone(), Value::Float(*value))),
            ),
        ),
        (
            "identifiers".to_string(),
            Value::List(Arc::new(identifiers.iter().map(|s| text(s)).collect())),
        ),
    ];
    if let Some(attributes) = attributes {
        fields.push(("attributes".to_string(), attributes));
    }
    map_value(fields)
}

/// Whether `customer` is in `trigger`'s holdout: a stable hash of both, below `share`.
pub fn in_holdout(trigger: &str, customer: &str, share: f64) -> bool {
    if share <= 0.0 {
        return false;
    }
    let hash = xxhash_rust::xxh3::xxh3_64(format!("{trigger}\u{1f}{customer}").as_bytes());
    (hash as f64 / u64::MAX as f64) < share
}

fn local_day_in(zone: chrono_tz::Tz, at: i64) -> i64 {
    let utc = chrono::DateTime::from_timestamp_micros(at).unwrap_or_default();
    let local = utc.with_timezone(&zone).date_naive();
    local.num_days_from_ce() as i64
}

/// When quiet hours `(start, end)` (minutes after local midnight) containing `at` end, or `None` outside them.
fn quiet_until(zone: chrono_tz::Tz, at: i64, (start, end): (u32, u32)) -> Option<i64> {
    let utc = chrono::DateTime::from_timestamp_micros(at)?;
    let local = utc.with_timezone(&zone);
    let minute = local.hour() * 60 + local.minute();
    let inside = if start < end {
        minute >= start && minute < end
    } else {
        minute >= start || minute < end
    };
    if !inside {
        return None;
    }
    let mut date = local.date_naive();
    if start > end && minute >= start {
        date = date.succ_opt()?;
    }
    let end_time = date.and_hms_opt(end / 60, end % 60, 0)?;
    let resolved = zone.from_local_datetime(&end_time).earliest().or_else(|| {
        zone.from_local_datetime(&(end_time + chrono::Duration::hours(1)))
            .earliest()
    })?;
    Some(resolved.timestamp_micros())
}
