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
    /// An event property holding its step's standard time in hours (as the demo's `standard_time_hours`).
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

impl PreparedFriction<'_> {
    fn step(&self, journey: &JourneyRef<'_>, i: usize) -> u32 {
        self.canonical[journey.step[i] as usize]
    }

    fn is_feedback(&self, set: &JourneySet, event: usize) -> bool {
        self.helpful
            .is_some_and(|column| set.properties[column].codes[event] != 0)
            || self
                .scores
                .iter()
                .any(|column| set.properties[*column].codes[event] != 0)
    }

    fn is_negative(&self, set: &JourneySet, event: usize) -> bool {
        self.helpful
            .is_some_and(|column| matches!(set.properties[column].value(event), Value::Bool(false)))
            || self.scores.iter().any(|column| {
                let value = set.properties[*column].value(event);
                value
                    .as_f64()
                    .or_else(|| value.as_str().and_then(|text| text.parse().ok()))
                    .is_some_and(|score| score <= self.settings.negative_score)
            })
    }

    /// The standard time of event `event`'s step, if it has one.
    fn standard_time(&self, set: &JourneySet, event: usize) -> Option<i64> {
        self.standard[set.step[event] as usize].or_else(|| {
            let column = self.standard_property?;
            let value = set.properties[column].value(event);
            let hours = value
                .as_f64()
                .or_else(|| value.as_str().and_then(|text| text.parse().ok()))?;
            Some((hours * US_PER_HOUR) as i64)
        })
    }

    fn signals(&self, journey: &JourneyRef<'_>, goal: bool, out: &mut Vec<Signal>) {
        let set = journey.set;
        let n = journey.len();
        let at = |i: usize| journey.start + i;
        let signal = |kind, step, second, event, related, duration| Signal {
            key: (kind, step, second),
            event,
            related,
            duration,
        };
        let feedback: Vec<bool> = (0..n).map(|i| self.is_feedback(set, at(i))).collect();
        for i in 0..n {
            let step = self.step(journey, i);
            let raw = journey.step[i] as usize;
            // Error events.
            if self.is_error[raw] {
                out.push(signal(FindingKind::ErrorEvent, step, 0, at(i), None, None));
            }
            // Loops and rework: a self-service action (not a page view) again within the next three events; a
            // ping-pong A → B → A is one loop between A and B.
            if !self.is_view[raw] && !feedback[i] && self.self_service[journey.channel[i] as usize]
            {
                if let Some(j) = (i + 1..(i + 4).min(n)).find(|j| self.step(journey, *j) == step) {
                    let via = if j > i + 1 {
                        self.step(journey, i + 1)
                    } else {
                        step
                    };
                    out.push(signal(
                        FindingKind::Loop,
                        step.min(via),
                        step.max(via),
                        at(i),
                        None,
                        None,
                    ));
                }
            }
            if i + 1 < n {
                let next = self.step(journey, i + 1);
                let gap = journey.ts[i + 1] - journey.ts[i];
                // Slow against the step's standard time, or against the transition's own profile.
                if let Some(standard) = self.standard_time(set, at(i)) {
                    if gap > standard {
                        out.push(signal(
                            FindingKind::SlowAgainstStandard,
                            step,
                            0,
                            at(i),
                            Some(next),
                            Some(gap),
                        ));
                    }
                }
                if let Some(threshold) = self.slow.get(&(step, next)) {
                    if gap > *threshold {
                        out.push(signal(
                            FindingKind::SlowStep,
                            step,
                            next,
                            at(i),
                            Some(next),
                            Some(gap),
                        ));
                    }
                }
            }
            // Negative feedback, about the rated step (or the previous one).
            if feedback[i] && self.is_negative(set, at(i)) {
                let rated = self
                    .rated_step
                    .as_ref()
                    .and_then(|(column, steps)| {
                        steps[set.properties[*column].codes[at(i)] as usize]
                    })
                    .or_else(|| (i > 0).then(|| self.step(journey, i - 1)));
                if let Some(rated) = rated {
                    out.push(signal(
                        FindingKind::NegativeFeedback,
                        rated,
                        0,
                        at(i),
                        None,
                        None,
                    ));
                }
            }
        }
        // Assisted contacts: a jump from the last self-service step before them, and a repeat when the same
        // contact step happened on the same channel within the repeat window.
        for i in 0..n {
            if !self.assisted[journey.channel[i] as usize] {
                continue;
            }
            let contact = self.step(journey, i);
            let origin = self.origin(journey, i, &feedback);
            if i == 0 || !self.assisted[journey.channel[i - 1] as usize] {
                if let Some(j) = origin
                    .filter(|j| journey.ts[i] - journey.ts[*j] <= self.settings.jump_window_us)
                {
                    out.push(signal(
                        FindingKind::ChannelJump,
                        self.step(journey, j),
                        0,
                        at(j),
                        Some(contact),
                        None,
                    ));
                }
            }
            let starts_contact = self.starts_contact(journey, i);
            let earlier = (0..i).rev().filter(|_| starts_contact).find(|k| {
                journey.step[*k] == journey.step[i] && journey.channel[*k] == journey.channel[i]
            });
            if let Some(k) =
                earlier.filter(|k| journey.ts[i] - journey.ts[*k] <= self.settings.repeat_window_us)
            {
                let origin = self
                    .origin(journey, k, &feedback)
                    .map_or(u32::MAX, |j| self.step(journey, j));
                out.push(signal(
                    FindingKind::RepeatContact,
                    origin,
                    contact,
                    at(k),
                    Some(contact),
                    None,
                ));
            }
        }
        if !goal && n > 0 {
            // Drop-off: the furthest step towards the goal (highest goal rate among those who reach it) that this
            // customer reached.
            let furthest = (0..n).filter(|i| !feedback[*i]).max_by(|a, b| {
                let (a_step, b_step) = (self.step(journey, *a), self.step(journey, *b));
                self.progress[a_step as usize]
                    .total_cmp(&self.progress[b_step as usize])
                    .then(a.cmp(b))
            });
            // Only a step on the goal path (most who reach it go on to the goal) is a drop-off point.
            let on_the_way = |i: &usize| {
                self.progress[self.step(journey, *i) as usize]
                    >= self.settings.drop_off_min_progress
            };
            if let Some(i) = furthest.filter(on_the_way) {
                out.push(signal(
                    FindingKind::DropOff,
                    self.step(journey, i),
                    0,
                    at(i),
                    None,
                    None,
                ));
            }
        }
        if n > 0 {
            let last = n - 1;
            let step = self.step(journey, last);
            if !goal {
                out.push(signal(FindingKind::DeadEnd, step, 0, at(last), None, None));
            }
            // Stuck: the journey's last step has a standard time, and the customer has waited longer.
            if let Some(standard) = self.standard_time(set, at(last)) {
                let idle = self.now - journey.ts[last];
                if idle > standard {
                    out.push(signal(
                        FindingKind::Stuck,
                        step,
                        0,
                        at(last),
                        None,
                        Some(idle),
                    ));
                }
            }
        }
    }

    /// Exposure of candidates not keyed by one step: who could have shown the signal.
    fn own_exposure(&self, journey: &JourneyRef<'_>, out: &mut Vec<(Key, usize)>) {
        let set = journey.set;
        let n = journey.len();
        for i in 0..n {
            let step = self.step(journey, i);
            if i + 1 < n && self.slow.contains_key(&(step, self.step(journey, i + 1))) {
                out.push((
                    (FindingKind::SlowStep, step, self.step(journey, i + 1)),
                    journey.start + i,
                ));
            }
            if self.is_feedback(set, journey.start + i) {
                let rated = self
                    .rated_step
                    .as_ref()
                    .and_then(|(column, steps)| {
                        steps[set.properties[*column].codes[journey.start + i] as usize]
                    })
                    .or_else(|| (i > 0).then(|| self.step(journey, i - 1)));
                if let Some(rated) = rated {
                    out.push(((FindingKind::NegativeFeedback, rated, 0), journey.start + i));
                }
            }
        }
        // Repeat contacts: exposed are those who had the contact after the same origin.
        let feedback: Vec<bool> = (0..n)
            .map(|i| self.is_feedback(set, journey.start + i))
            .collect();
        for i in 0..n {
            if !self.assisted[journey.channel[i] as usize] || !self.starts_contact(journey, i) {
                continue;
            }
            let origin = self
                .origin(journey, i, &feedback)
                .map_or(u32::MAX, |j| self.step(journey, j));
            out.push((
                (FindingKind::RepeatContact, origin, self.step(journey, i)),
                journey.start + i,
            ));
        }
    }

    /// Whether event `i` (on an assisted channel) begins a contact: the previous event is on another channel or
    /// more than `contact_gap` earlier.
    fn starts_contact(&self, journey: &JourneyRef<'_>, i: usize) -> bool {
        i == 0
            || journey.channel[i - 1] != journey.channel[i]
            || journey.ts[i] - journey.ts[i - 1] > self.settings.contact_gap_us
    }

    /// The last self-service event (feedback skipped) before event `i`.
    fn origin(&self, journey: &JourneyRef<'_>, i: usize, feedback: &[bool]) -> Option<usize> {
        (0..i)
            .rev()
            .find(|j| self.self_service[journey.channel[*j] as usize] && !feedback[*j])
    }
}

impl Analysis for PreparedFriction<'_> {
    type State = FrictionState;
    type Report = FrictionReport;

    fn new_state(&self, _journeys: &JourneySet) -> FrictionState {
        FrictionState::default()
    }

    fn update(&self, state: &mut FrictionState, journey: JourneyRef<'_>) {
        let set = journey.set;
        let n = journey.len();
        if n == 0 {
            return;
        }
        let goal = (journey.start..journey.start + n)
            .any(|event| self.goals.iter().any(|g| g.matches(set, event)));
        state.customers += 1;
        state.goal_customers += u64::from(goal);
        let segments = self.segments.len();
        state.all_segments.resize(segments, FxHashMap::default());
        for (index, (_, column)) in self.segments.iter().enumerate() {
            let counts = &mut state.all_segments[index];
            for code in &set.properties[*column].codes[journey.start..journey.start + n] {
                *counts.entry(*code).or_default() += 1;
            }
        }
        // Step exposure, with the segment values of each step's first event.
        let mut seen: FxHashSet<u32> = FxHashSet::default();
        for i in 0..n {
            let step = self.step(&journey, i);
            if seen.insert(step) {
                let exposed = state.step_exposed.entry(step).or_default();
                exposed.0 += 1;
                exposed.1 += u64::from(goal);
                for (index, (_, column)) in self.segments.iter().enumerate() {
                    let code = set.properties[*column].codes[journey.start + i];
                    *state
                        .step_segments
                        .entry((step, index))
                        .or_default()
                        .entry(code)
                        .or_default() += 1;
                }
            }
        }
        let mut own = Vec::new();
        self.own_exposure(&journey, &mut own);
        let mut counted: FxHashSet<Key> = FxHashSet::default();
        for (key, event) in own {
            if counted.insert(key) {
                let candidate = candidate(state, key, segments);
                candidate.exposed += 1;
                candidate.exposed_goal += u64::from(goal);
                for (index, (_, column)) in self.segments.iter().enumerate() {
                    *candidate.exposed_segments[index]
                        .entry(set.properties[*column].codes[event])
                        .or_default() += 1;
                }
            }
        }
        let mut signals = Vec::new();
        self.signals(&journey, goal, &mut signals);
        let mut counted: FxHashSet<Key> = FxHashSet::default();
        for signal in signals {
            let first = counted.insert(signal.key);
            let candidate = candidate(state, signal.key, segments);
            candidate.occurrences += 1;
            if let Some(related) = signal.related {
                *candidate.related.entry(related).or_default() += 1;
            }
            if let Some(duration) = signal.duration {
                candidate.durations.push(duration);
            }
            if first {
                candidate.affected += 1;
                candidate.affected_goal += u64::from(goal);
                for (index, (_, column)) in self.segments.iter().enumerate() {
                    *candidate.segments[index]
                        .entry(set.properties[*column].codes[signal.event])
                        .or_default() += 1;
                }
                if candidate.examples.len() < self.settings.examples {
                    candidate.examples.push(journey.index as u32);
                }
            }
        }
    }

    fn merge(&self, state: &mut FrictionState, other: FrictionState) {
        state.customers += other.customers;
        state.goal_customers += other.goal_customers;
        state.all_segments.resize(
            other.all_segments.len().max(state.all_segments.len()),
            FxHashMap::default(),
        );
        for (into, from) in state.all_segments.iter_mut().zip(other.all_segments) {
            for (code, count) in from {
                *into.entry(code).or_default() += count;
            }
        }
        for (step, (exposed, goal)) in other.step_exposed {
            let into = state.step_exposed.entry(step).or_default();
            into.0 += exposed;
            into.1 += goal;
        }
        for (key, values) in other.step_segments {
            let into = state.step_segments.entry(key).or_default();
            for (code, count) in values {
                *into.entry(code).or_default() += count;
            }
        }
        let segments = self.segments.len();
        for (key, part) in other.candidates {
            let into = candidate(state, key, segments);
            into.affected += part.affected;
            into.affected_goal += part.affected_goal;
            into.exposed += part.exposed;
            into.exposed_goal += part.exposed_goal;
            into.occurrences += part.occurrences;
            into.examples.extend(part.examples);
            into.examples.sort_unstable();
            into.examples.truncate(self.settings.examples);
            for (into, from) in into.segments.iter_mut().zip(part.segments) {
                for (code, count) in from {
                    *into.entry(code).or_default() += count;
                }
            }
            for (into, from) in into.exposed_segments.iter_mut().zip(part.exposed_segments) {
                for (code, count) in from {
                    *into.entry(code).or_default() += count;
                }
            }
            for (code, count) in part.related {
                *into.related.entry(code).or_default() += count;
            }
            into.durations.extend(part.durations);
        }
    }

    fn finish(
        &self,
        state: FrictionState,
        journeys: &JourneySet,
        _runner: &crate::Runner,
    ) -> FrictionReport {
        let name = |code: u32| -> String {
            if code == u32::MAX {
                "(no self-service step)".to_string()
            } else {
                view_name(&journeys.step_names[code as usize]).to_string()
            }
        };
        let exposure = |key: &Key, candidate: &Candidate| -> (u64, u64) {
            match key.0 {
                FindingKind::SlowStep
                | FindingKind::NegativeFeedback
                | FindingKind::RepeatContact => (candidate.exposed, candidate.exposed_goal),
                _ => state.step_exposed.get(&key.1).copied().unwrap_or((0, 0)),
            }
        };
        // The norm for each kind: the median rate across candidates with enough exposure. Page and screen views
        // are compared with views, other steps with other steps.
        let class = |key: &Key| -> (FindingKind, bool) {
            let view = key.1 != u32::MAX && self.is_view[key.1 as usize];
            (key.0, view)
        };
        let mut rates: FxHashMap<(FindingKind, bool), Vec<f64>> = FxHashMap::default();
        for (key, candidate) in &state.candidates {
            let (exposed, _) = exposure(key, candidate);
            if exposed >= self.settings.min_customers {
                rates
                    .entry(class(key))
                    .or_default()
                    .push(candidate.affected as f64 / exposed as f64);
            }
        }
        // Steps with no signal of a kind have rate 0 too: count them so the norm is over all exposed steps.
        let exposed_steps = |view: bool| {
            state
                .step_exposed
                .iter()
                .filter(|(step, (exposed, _))| {
                    *exposed >= self.settings.min_customers && self.is_view[**step as usize] == view
                })
                .count()
        };
        let norm = |(kind, view): (FindingKind, bool)| -> f64 {
            match kind {
                FindingKind::ErrorEvent | FindingKind::SlowAgainstStandard | FindingKind::Stuck => {
                    0.0
                }
                kind => {
                    let mut values = rates.get(&(kind, view)).cloned().unwrap_or_default();
                    if matches!(
                        kind,
                        FindingKind::Loop | FindingKind::ChannelJump | FindingKind::DeadEnd
                    ) {
                        values.resize(values.len().max(exposed_steps(view)), 0.0);
                    }
                    values.sort_by(f64::total_cmp);
                    crate::stats::quantile(&values, 0.5).unwrap_or(0.0)
                }
            }
        };
        let norms: FxHashMap<(FindingKind, bool), f64> =
            rates.keys().map(|class| (*class, norm(*class))).collect();
        let overall_goal_rate = ratio(state.goal_customers, state.customers);
        let mut findings: Vec<Finding> = state
            .candidates
            .iter()
            .filter(|(_, candidate)| candidate.affected >= self.settings.min_customers)
            .map(|(key, candidate)| {
                let (exposed, exposed_goal) = exposure(key, candidate);
                let exposed = exposed.max(candidate.affected);
                let rate = ratio(candidate.affected, exposed);
                let norm = norms.get(&class(key)).copied().unwrap_or(0.0);
                let goal_rate = ratio(candidate.affected_goal, candidate.affected);
                let others_goal_rate = ratio(
                    state.goal_customers - candidate.affected_goal,
                    state.customers - candidate.affected,
                );
                // Comparable customers: exposed to the same thing without the signal.
                let comparable = exposed - candidate.affected;
                let comparable_goal_rate = if comparable >= self.settings.min_customers {
                    ratio(
                        exposed_goal.saturating_sub(candidate.affected_goal),
                        comparable,
                    )
                } else {
                    others_goal_rate
                };
                // Dead ends are judged by how unusual ending there is, drop-offs by the goals lost; the rest by both.
                let lost_goals = if key.0 == FindingKind::DeadEnd {
                    0.0
                } else {
                    candidate.affected as f64 * (comparable_goal_rate - goal_rate).max(0.0)
                };
                let excess = if key.0 == FindingKind::DropOff {
                    0.0
                } else {
                    (candidate.affected as f64 - exposed as f64 * norm).max(0.0)
                };
                let concentration = self.concentration(key, candidate, &state, journeys);
                let related = candidate
                    .related
                    .iter()
                    .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
                    .map(|(code, count)| (name(*code), *count));
                let median_secs = if candidate.durations.is_empty() {
                    None
                } else {
                    let mut durations = candidate.durations.clone();
                    durations.sort_unstable();
                    Some(durations[durations.len() / 2] as f64 / 1e6)
                };

                let title = match key.0 {
                    FindingKind::DropOff => format!("Drop-off after {}", name(key.1)),
                    FindingKind::DeadEnd => format!("Dead end at {}", name(key.1)),
                    FindingKind::Loop if key.1 == key.2 => format!("Loop on {}", name(key.1)),
                    FindingKind::Loop => {
                        format!("Loop between {} and {}", name(key.1), name(key.2))
                    }
                    FindingKind::ErrorEvent => format!("Errors: {}", name(key.1)),
                    FindingKind::ChannelJump => format!(
                        "Channel jump: {} → {}",
                        name(key.1),
                        related
                            .as_ref()
                            .map_or("an assisted channel".to_string(), |(step, _)| step.clone())
                    ),
                    FindingKind::RepeatContact => {
                        format!(
                            "Repeat contacts: {} again after {}",
                            name(key.2),
                            name(key.1)
                        )
                    }
                    FindingKind::SlowStep => {
                        format!("Slow step: {} → {}", name(key.1), name(key.2))
                    }
                    FindingKind::SlowAgainstStandard => {
                        format!("{} exceeds its standard time", name(key.1))
                    }
                    FindingKind::Stuck => format!("Stuck at {}", name(key.1)),
                    FindingKind::NegativeFeedback => {
                        format!("Negative feedback on {}", name(key.1))
                    }
                };
                let explanation = self.explain(
                    key,
                    candidate,
                    exposed,
                    rate,
                    norm,
                    &related,
                    median_secs,
                    &concentration,
                    goal_rate,
                    others_goal_rate,
                    &name,
                    comparable_goal_rate,
                );
                Finding {
                    kind: key.0,
                    title,
                    step: name(key.1),
                    explanation,
                    customers: candidate.affected,
                    occurrences: candidate.occurrences,
                    exposed,
                    rate,
                    typical_rate: norm,
                    goal_rate,
                    others_goal_rate,
                    lost_goals,
                    impact: excess + lost_goals,
                    concentration,
                    median_secs,
                    example_customers: candidate
                        .examples
                        .iter()
                        .map(|journey| journeys.customer_ids[*journey as usize].to_string())
                        .collect(),
                }
            })
            .filter(|finding| finding.impact >= 1.0)
            .collect();
        findings.sort_by(|a, b| {
            b.impact
                .total_cmp(&a.impact)
                .then_with(|| a.title.cmp(&b.title))
        });
        let total = findings.len();
        findings.truncate(self.settings.top);
        FrictionReport {
            customers: state.customers,
            goal_rate: overall_goal_rate,
            goals: self.settings.goals.iter().map(Condition::label).collect(),
            candidates: total,
            findings,
        }
    }
}

fn candidate(state: &mut FrictionState, key: Key, segments: usize) -> &mut Candidate {
    state.candidates.entry(key).or_insert_with(|| Candidate {
        segments: vec![FxHashMap::default(); segments],
        exposed_segments: vec![FxHashMap::default(); segments],
        ..Candidate::default()
    })
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

fn percent(value: f64) -> String {
    if value > 0.0 && value < 0.01 {
        "<1%".to_string()
    } else {
        format!("{:.0}%", value * 100.0)
    }
}

fn duration(secs: f64) -> String {
    match secs {
        s if s < 90.0 => format!("{s:.0} s"),
        s if s < 5_400.0 => format!("{:.0} min", s / 60.0),
        s if s < 172_800.0 => format!("{:.1} h", s / 3_600.0),
        s => format!("{:.1} days", s / 86_400.0),
    }
}

impl PreparedFriction<'_> {
    /// The segment value most over-represented among the affected, against the exposed.
    fn concentration(
        &self,
        key: &Key,
        candidate: &Candidate,
        state: &FrictionState,
        journeys: &JourneySet,
    ) -> Option<Concentration> {
        let mut best: Option<Concentration> = None;
        for (index, (property, column)) in self.segments.iter().enumerate() {
            let baseline: FxHashMap<u32, u64> = match key.0 {
                FindingKind::SlowStep
                | FindingKind::NegativeFeedback
                | FindingKind::RepeatContact => candidate.exposed_segments[index].clone(),
                // Everyone at an error step or a drop-off point is affected: compare with all events.
                FindingKind::ErrorEvent
                | FindingKind::DropOff
                | FindingKind::DeadEnd
                | FindingKind::Stuck => state.all_segments.get(index).cloned().unwrap_or_default(),
                _ => state
                    .step_segments
                    .get(&(key.1, index))
                    .cloned()
                    .unwrap_or_default(),
            };
            let affected_known: u64 = candidate.segments[index]
                .iter()
                .filter(|(code, _)| **code != 0)
                .map(|(_, n)| n)
                .sum();
            let baseline_known: u64 = baseline
                .iter()
                .filter(|(code, _)| **code != 0)
                .map(|(_, n)| n)
                .sum();
            if affected_known < self.settings.min_customers || baseline_known == 0 {
                continue;
            }
            for (code, count) in &candidate.segments[index] {
                if *code == 0 {
                    continue;
                }
                let share = *count as f64 / affected_known as f64;
                let base = baseline.get(code).copied().unwrap_or(0) as f64 / baseline_known as f64;
                let lift = if base > 0.0 {
                    share / base
                } else {
                    f64::INFINITY
                };
                if share >= 0.3 && lift >= 1.5 && best.as_ref().is_none_or(|best| lift > best.lift)
                {
                    let value = match &journeys.properties[*column].values[*code as usize] {
                        Value::String(text) => text.clone(),
                        other => other.to_string(),
                    };
                    best = Some(Concentration {
                        property: property.clone(),
                        value,
                        share,
                        baseline_share: base,
                        lift,
                    });
                }
            }
        }
        best
    }

    #[allow(clippy::too_many_arguments)]
    fn explain(
        &self,
        key: &Key,
        candidate: &Candidate,
        exposed: u64,
        rate: f64,
        norm: f64,
        related: &Option<(String, u64)>,
        median_secs: Option<f64>,
        concentration: &Option<Concentration>,
        goal_rate: f64,
        others_goal_rate: f64,
        name: &dyn Fn(u32) -> String,
        comparable_goal_rate: f64,
    ) -> String {
        let step = name(key.1);
        let affected = candidate.affected;
        let typical = if norm > 0.0 {
            format!(" (typical for a step: {})", percent(norm))
        } else {
            String::new()
        };
        let mut text = match key.0 {
            FindingKind::DropOff => format!(
                "{affected} customers get as far as {step} and never reach the goal, while {} of the others who reach {step} do.",
                percent(comparable_goal_rate)
            ),
            FindingKind::DeadEnd => format!(
                "{affected} customers' journeys end at {step} without reaching the goal: {} of everyone who gets there{typical}.",
                percent(rate)
            ),
            FindingKind::Loop if key.1 == key.2 => format!(
                "{affected} customers ({} of those at {step}) repeat {step} within three steps{typical}, {} times in all.",
                percent(rate),
                candidate.occurrences
            ),
            FindingKind::Loop => format!(
                "{affected} customers ({} of those at {step}) go back and forth between {step} and {}{typical}, {} times in all.",
                percent(rate),
                name(key.2),
                candidate.occurrences
            ),
            FindingKind::ErrorEvent => format!(
                "{affected} customers hit the error event {step}, {} times in all.",
                candidate.occurrences
            ),
            FindingKind::ChannelJump => format!(
                "{affected} customers ({}) go from {step} to an assisted channel{} within {}{typical}.",
                percent(rate),
                related.as_ref().map_or(String::new(), |(contact, _)| format!(" ({contact})")),
                duration(self.settings.jump_window_us as f64 / 1e6)
            ),
            FindingKind::RepeatContact => format!(
                "{affected} of {exposed} customers ({}) with {} after {step} have it again within {}{}.",
                percent(rate),
                name(key.2),
                duration(self.settings.repeat_window_us as f64 / 1e6),
                if norm > 0.0 { format!(" (typical: {})", percent(norm)) } else { String::new() }
            ),
            FindingKind::SlowStep => format!(
                "{affected} customers ({}) take longer than usual (mean + {}·std) from {step} to {}; median of the slow ones {}.",
                percent(rate),
                self.settings.slow_k,
                name(key.2),
                duration(median_secs.unwrap_or(0.0))
            ),
            FindingKind::SlowAgainstStandard => format!(
                "{affected} customers ({} of those at {step}) wait longer than its standard time for the next step{}; median {}.",
                percent(rate),
                related.as_ref().map_or(String::new(), |(next, _)| format!(" ({next})")),
                duration(median_secs.unwrap_or(0.0))
            ),
            FindingKind::Stuck => format!(
                "{affected} customers are still at {step} past its standard time, idle for a median {}.",
                duration(median_secs.unwrap_or(0.0))
            ),
            FindingKind::NegativeFeedback => format!(
                "{affected} of {exposed} customers who rated {step} found it unhelpful ({}){}.",
                percent(rate),
                if norm > 0.0 { format!("; typical for rated steps: {}", percent(norm)) } else { String::new() }
            ),
        };
        if let Some(concentration) = concentration {
            text.push_str(&format!(
                " Concentrated in {} = {}: {} of them against {} {}.",
                concentration.property,
                concentration.value,
                percent(concentration.share),
                percent(concentration.baseline_share),
                match key.0 {
                    FindingKind::ErrorEvent
                    | FindingKind::DropOff
                    | FindingKind::DeadEnd
                    | FindingKind::Stuck => "of all events",
                    _ => "of everyone at this step",
                }
            ));
        }
        text.push_str(&format!(
            " Their goal rate is {} against {} for everyone else.",
            percent(goal_rate),
            percent(others_goal_rate)
        ));
        if key.0 != FindingKind::DropOff && goal_rate < comparable_goal_rate - 0.005 {
            text.push_str(&format!(
                " Comparable customers without it reach the goal {}: about {:.0} goals lost.",
                percent(comparable_goal_rate),
                candidate.affected as f64 * (comparable_goal_rate - goal_rate)
            ));
        }
        text
    }
}

/// The segment value a finding concentrates in.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Concentration {
    pub property: String,
    pub value: String,
    /// Share of the affected with this value.
    pub share: f64,
    /// Share of everyone at the step (or exposed) with this value.
    pub baseline_share: f64,
    pub lift: f64,
}

/// One ranked finding.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Finding {
    pub kind: FindingKind,
    pub title: String,
    /// The step (or rated item, or origin step) the finding is about.
    pub step: String,
    /// What happened, how often against the norm, where it concentrates, and the goal rate — in words.
    pub explanation: String,
    /// Customers affected.
    pub customers: u64,
    pub occurrences: u64,
    /// Customers who could have been affected (at the step, rating it, contacting after it, …).
    pub exposed: u64,
    /// `customers / exposed`.
    pub rate: f64,
    /// The median rate of this kind of signal across steps (0 where any occurrence is friction).
    pub typical_rate: f64,
    /// Goal rate of the affected customers.
    pub goal_rate: f64,
    /// Goal rate of everyone else.
    pub others_goal_rate: f64,
    /// Goal completions lost against comparable customers.
    pub lost_goals: f64,
    /// Customers affected beyond the norm, plus lost goal completions.
    pub impact: f64,
    pub concentration: Option<Concentration>,
    /// Median duration involved (slow steps, stuck journeys), seconds.
    pub median_secs: Option<f64>,
    /// Some of the customers behind it (the first in customer order).
    pub example_customers: Vec<String>,
}

/// JSON `{"customers", "goal_rate", "goals", "candidates", "findings": [...]}`; findings by impact.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct FrictionReport {
    pub customers: u64,
    pub goal_rate: f64,
    pub goals: Vec<String>,
    /// Candidate findings before the top-k cut.
    pub candidates: usize,
    pub findings: Vec<Finding>,
}
