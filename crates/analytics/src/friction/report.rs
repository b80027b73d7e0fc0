//! Merging candidate findings and the report: each compared with its norm, scored in customers, located in a
//! segment and explained.

use super::*;

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

pub(super) fn ratio(part: u64, whole: u64) -> f64 {
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
