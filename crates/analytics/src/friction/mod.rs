//! Friction: a ranked report of where customers get stuck. Each journey is scanned once for the signals a CX team
//! looks for — dead ends, loops and rework, error events, self-service → assisted channel jumps, repeat contacts,
//! steps slower than their standard time or their own temporal profile, journeys stuck past a standard time, and
//! negative feedback — and every signal becomes a *candidate finding* keyed by the step (or step pair, or rated item)
//! it is about.
//!
//! Findings are ranked by an impact score in customers: the customers affected beyond what is normal for that kind
//! of signal (the median rate of the same signal across all steps, or zero where any occurrence is friction: errors,
//! breached standard times), plus the goal completions they lost against comparable customers (those exposed to the
//! same step without the signal). Every finding says in words what happened, how often against the norm, where it
//! concentrates (the segment value most over-represented among the affected), the goal rate of those affected
//! against everyone else's, and which customers are behind it.
//!
//! A first pass ([`TransitionProfile`]) measures every step-to-step transition (mean and standard deviation of its
//! time) so the second can flag slow transitions against `mean + k·std`.

use crate::condition::{wildcard_match, Compiled, Condition};
use crate::error::AnalyticsError;
use crate::Analysis;
use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use waymark_model::{JourneyRef, JourneySet};

mod report;
mod signals;

use report::ratio;
pub use report::{Concentration, Finding, FrictionReport};

const US_PER_HOUR: f64 = 3_600_000_000.0;

/// Friction settings; [`Friction::default`] suits Segment-style data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Friction {
    /// Reaching any of these is reaching the goal.
    pub goals: Vec<Condition>,
    /// Channels where a person helps the customer.
    pub assisted_channels: Vec<String>,
    /// Channels where customers help themselves (the origin of a channel jump). Others (e-mail, SMS, ads) are
    /// neither.
    pub self_service_channels: Vec<String>,
    /// A self-service step followed by an assisted contact within this window is a channel jump (µs).
    pub jump_window_us: i64,
    /// A second contact on the same assisted channel within this window is a repeat contact (µs).
    pub repeat_window_us: i64,
    /// Events on one assisted channel less than this apart belong to one contact (µs).
    pub contact_gap_us: i64,
    /// A transition is slow when it takes longer than its mean + `slow_k` standard deviations.
    pub slow_k: f64,
    /// Standard times per step (`*` patterns): the time to the next step should not exceed it (µs).
    pub standard_times: Vec<(String, i64)>,
    /// An event property holding its step's standard time in hours (default `standard_time_hours`; settable per
    /// request, `None` to read none).
    pub standard_time_property: Option<String>,
    /// Step names containing any of these (case-insensitive) are error events.
    pub error_words: Vec<String>,
    /// Feedback: a boolean property where `false` is negative …
    pub helpful_property: String,
    /// … or score properties where a value at most `negative_score` is negative.
    pub score_properties: Vec<String>,
    pub negative_score: f64,
    /// The property naming the step a feedback event rates (else the previous step).
    pub rated_step_property: String,
    /// Properties whose values are checked for concentration (event-level; `channel` is built in).
    pub segment_by: Vec<String>,
    /// A drop-off point is a step after which at least this share of customers reach the goal (the goal path).
    pub drop_off_min_progress: f64,
    /// Candidates with fewer affected customers are not reported.
    pub min_customers: u64,
    /// Findings reported.
    pub top: usize,
    /// Customer ids listed per finding.
    pub examples: usize,
}

impl Default for Friction {
    fn default() -> Friction {
        Friction {
            goals: Vec::new(),
            assisted_channels: vec!["call_center".into(), "store".into()],
            self_service_channels: vec!["web".into(), "app".into(), "chat".into()],
            jump_window_us: 86_400_000_000,
            repeat_window_us: 7 * 86_400_000_000,
            contact_gap_us: 3_600_000_000,
            slow_k: 2.0,
            standard_times: Vec::new(),
            standard_time_property: Some("standard_time_hours".into()),
            error_words: [
                "fail",
                "error",
                "declined",
                "denied",
                "timeout",
                "timed out",
                "exception",
                "crash",
                "invalid",
            ]
            .map(String::from)
            .to_vec(),
            helpful_property: "helpful".into(),
            score_properties: vec!["csat".into(), "rating".into(), "score".into()],
            negative_score: 2.0,
            rated_step_property: "rated_step".into(),
            segment_by: vec!["context.device.type".into(), "region".into()],
            drop_off_min_progress: 0.5,
            min_customers: 20,
            top: 15,
            examples: 10,
        }
    }
}

/// The kinds of friction signal.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    DropOff,
    DeadEnd,
    Loop,
    ErrorEvent,
    ChannelJump,
    RepeatContact,
    SlowStep,
    SlowAgainstStandard,
    Stuck,
    NegativeFeedback,
}

impl Friction {
    /// The property columns friction reads.
    pub fn properties(&self) -> Vec<String> {
        let mut names = Vec::new();
        for goal in &self.goals {
            goal.properties(&mut names);
        }
        let mut add = |name: &String| {
            if !names.contains(name) {
                names.push(name.clone());
            }
        };
        add(&self.helpful_property);
        self.score_properties.iter().for_each(&mut add);
        add(&self.rated_step_property);
        if let Some(property) = &self.standard_time_property {
            add(property);
        }
        self.segment_by.iter().for_each(add);
        names
    }

    /// Binds the settings to a journey set and measures its transitions: the first of friction's two passes (the
    /// prepared analysis is the second).
    pub fn prepare<'f>(
        &'f self,
        journeys: &JourneySet,
        runner: &crate::Runner,
    ) -> Result<PreparedFriction<'f>, AnalyticsError> {
        if self.goals.is_empty() {
            return Err(AnalyticsError::field("goals", "friction needs a goal: the step (or condition) that counts as success, e.g. \"Order Completed\""));
        }
        let goals = self
            .goals
            .iter()
            .map(|goal| goal.compile(journeys))
            .collect::<Result<Vec<_>, _>>()?;
        let column = |name: &str| {
            journeys
                .properties
                .iter()
                .position(|column| column.name == name)
        };
        // Views of the same screen on web and app (`page:X`, `screen:X`) are one step here.
        let mut by_name: FxHashMap<&str, u32> = FxHashMap::default();
        let canonical: Vec<u32> = journeys
            .step_names
            .iter()
            .enumerate()
            .map(|(code, name)| *by_name.entry(view_name(name)).or_insert(code as u32))
            .collect();
        let lower: Vec<String> = journeys
            .step_names
            .iter()
            .map(|name| name.to_lowercase())
            .collect();
        let is_error = lower
            .iter()
            .map(|name| {
                self.error_words
                    .iter()
                    .any(|word| name.contains(&word.to_lowercase()))
            })
            .collect();
        let is_view = journeys
            .step_names
            .iter()
            .map(|name| name.starts_with("page:") || name.starts_with("screen:"))
            .collect();
        let standard = journeys
            .step_names
            .iter()
            .map(|name| {
                self.standard_times
                    .iter()
                    .find(|(pattern, _)| wildcard_match(pattern, name))
                    .map(|(_, us)| *us)
            })
            .collect();
        let assisted = journeys
            .channel_names
            .iter()
            .map(|name| self.assisted_channels.contains(name))
            .collect();
        let self_service = journeys
            .channel_names
            .iter()
            .map(|name| self.self_service_channels.contains(name))
            .collect();
        let rated_step = column(&self.rated_step_property).map(|index| {
            let step_codes: FxHashMap<&str, u32> = journeys
                .step_names
                .iter()
                .enumerate()
                .map(|(code, name)| (name.as_str(), canonical[code]))
                .collect();
            let values = journeys.properties[index]
                .values
                .iter()
                .map(|value| {
                    value
                        .as_str()
                        .and_then(|name| step_codes.get(name).copied())
                })
                .collect::<Vec<_>>();
            (index, values)
        });
        let mut prepared = PreparedFriction {
            settings: self,
            goals,
            canonical,
            is_error,
            is_view,
            standard,
            assisted,
            self_service,
            progress: Vec::new(),
            helpful: column(&self.helpful_property),
            scores: self
                .score_properties
                .iter()
                .filter_map(|name| column(name))
                .collect(),
            rated_step,
            standard_property: self.standard_time_property.as_deref().and_then(column),
            segments: self
                .segment_by
                .iter()
                .filter_map(|name| column(name).map(|index| (name.clone(), index)))
                .collect(),
            slow: FxHashMap::default(),
            now: journeys.ts.iter().copied().max().unwrap_or(0),
        };
        let profile = runner.pass(
            &TransitionProfile {
                friction: &prepared,
            },
            journeys,
        );
        let mut progress = vec![0.0; journeys.step_names.len()];
        for (step, (exposed, goal)) in &profile.steps {
            progress[*step as usize] = ratio(*goal, *exposed);
        }
        prepared.progress = progress;
        prepared.slow = profile
            .transitions
            .into_iter()
            .filter(|(_, stats)| stats.count >= 30)
            .map(|(key, stats)| {
                let n = stats.count as f64;
                let mean = stats.sum as f64 / n;
                let variance = (stats.sum_squares as f64 / n - mean * mean).max(0.0);
                (key, (mean + self.slow_k * variance.sqrt()) as i64)
            })
            .collect();
        Ok(prepared)
    }
}

/// `page:Help` and `screen:Help` are both `Help`.
fn view_name(name: &str) -> &str {
    name.strip_prefix("page:")
        .or_else(|| name.strip_prefix("screen:"))
        .unwrap_or(name)
}

/// Friction bound to a journey set.
pub struct PreparedFriction<'f> {
    settings: &'f Friction,
    goals: Vec<Compiled>,
    canonical: Vec<u32>,
    is_error: Vec<bool>,
    is_view: Vec<bool>,
    standard: Vec<Option<i64>>,
    assisted: Vec<bool>,
    self_service: Vec<bool>,
    /// Per canonical step: the goal rate of customers who reach it — how far along the way to the goal it is.
    progress: Vec<f64>,
    helpful: Option<usize>,
    scores: Vec<usize>,
    /// Column of the rated step, and its values resolved to canonical step codes.
    rated_step: Option<(usize, Vec<Option<u32>>)>,
    standard_property: Option<usize>,
    segments: Vec<(String, usize)>,
    /// (from, to) canonical steps → slow threshold in µs.
    slow: FxHashMap<(u32, u32), i64>,
    /// The latest event time: journeys idle since their last event are measured against it.
    now: i64,
}

/// The first pass: time statistics of every canonical transition (exact integer sums, so any partitioning agrees)
/// and the goal rate of every step.
struct TransitionProfile<'a, 'f> {
    friction: &'a PreparedFriction<'f>,
}

#[derive(Debug, Default)]
struct Profile {
    transitions: FxHashMap<(u32, u32), Moments>,
    /// Canonical step → (customers, of whom reached the goal).
    steps: FxHashMap<u32, (u64, u64)>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Moments {
    count: u64,
    sum: i128,
    sum_squares: i128,
}

impl Analysis for TransitionProfile<'_, '_> {
    type State = Profile;
    type Report = Profile;

    fn new_state(&self, _journeys: &JourneySet) -> Self::State {
        Profile::default()
    }

    fn update(&self, state: &mut Self::State, journey: JourneyRef<'_>) {
        let set = journey.set;
        let goal = (journey.start..journey.start + journey.len())
            .any(|event| self.friction.goals.iter().any(|g| g.matches(set, event)));
        let mut seen: FxHashSet<u32> = FxHashSet::default();
        for step in journey.step {
            let step = self.friction.canonical[*step as usize];
            if seen.insert(step) {
                let entry = state.steps.entry(step).or_default();
                entry.0 += 1;
                entry.1 += u64::from(goal);
            }
        }
        for i in 1..journey.len() {
            let key = (
                self.friction.canonical[journey.step[i - 1] as usize],
                self.friction.canonical[journey.step[i] as usize],
            );
            let gap = i128::from(journey.ts[i] - journey.ts[i - 1]);
            let moments = state.transitions.entry(key).or_default();
            moments.count += 1;
            moments.sum += gap;
            moments.sum_squares += gap * gap;
        }
    }

    fn merge(&self, state: &mut Self::State, other: Self::State) {
        for (step, (exposed, goal)) in other.steps {
            let into = state.steps.entry(step).or_default();
            into.0 += exposed;
            into.1 += goal;
        }
        for (key, moments) in other.transitions {
            let into = state.transitions.entry(key).or_default();
            into.count += moments.count;
            into.sum += moments.sum;
            into.sum_squares += moments.sum_squares;
        }
    }

    fn finish(
        &self,
        state: Self::State,
        _journeys: &JourneySet,
        _runner: &crate::Runner,
    ) -> Self::Report {
        state
    }
}

/// What one candidate finding has gathered.
#[derive(Debug, Clone, Default)]
struct Candidate {
    affected: u64,
    affected_goal: u64,
    /// Own exposure (customers who could have shown the signal), for candidates not keyed by a step alone.
    exposed: u64,
    exposed_goal: u64,
    occurrences: u64,
    examples: Vec<u32>,
    /// Segment value codes of the affected customers' triggering events, per segment property.
    segments: Vec<FxHashMap<u32, u64>>,
    /// Own exposure's segment values.
    exposed_segments: Vec<FxHashMap<u32, u64>>,
    /// A related step and how often (the step in between for loops, the contact for jumps, …).
    related: FxHashMap<u32, u64>,
    /// Times involved (µs), for slow steps.
    durations: Vec<i64>,
}

/// Candidate key: kind, the step / item (canonical code), and a second code (the next step, the channel, …).
type Key = (FindingKind, u32, u32);

/// Partial friction results.
#[derive(Debug, Clone, Default)]
pub struct FrictionState {
    customers: u64,
    goal_customers: u64,
    candidates: FxHashMap<Key, Candidate>,
    /// Per canonical step: customers who did it, and of those who reached the goal.
    step_exposed: FxHashMap<u32, (u64, u64)>,
    /// Per canonical step and segment property: value code → customers.
    step_segments: FxHashMap<(u32, usize), FxHashMap<u32, u64>>,
    /// Per segment property: value code → events, over all events.
    all_segments: Vec<FxHashMap<u32, u64>>,
}

/// What one journey showed, before it is folded into the state.
struct Signal {
    key: Key,
    /// The event that shows it (for segments).
    event: usize,
    related: Option<u32>,
    duration: Option<i64>,
}

#[cfg(test)]
mod tests;
