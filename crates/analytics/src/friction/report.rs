//! Merging candidate findings and the report: each compared with its norm and with comparable customers, scored
//! by its harm, located in a segment and explained.

use super::*;
use std::collections::hash_map::Entry;

impl Analysis for PreparedFriction<'_> {
    type State = FrictionState;
    type Report = FrictionReport;

    fn new_state(&self, _journeys: &JourneySet) -> FrictionState {
        FrictionState::default()
    }

    fn update(&self, state: &mut FrictionState, journey: JourneyRef<'_>) {
        let view = self.view(&journey);
        let n = view.len();
        if n == 0 {
            return;
        }
        let goal = view.goal_at.is_some();
        state.customers += 1;
        state.goal_customers += u64::from(goal);
        let segments = self.segments.len();
        let mut codes = std::mem::take(&mut state.scratch);
        self.segment_codes(&view, &mut codes);
        state.all_segments.resize(segments, FxHashMap::default());
        for (counts, codes) in state.all_segments.iter_mut().zip(&codes) {
            for code in codes {
                *counts.entry(*code).or_default() += 1;
            }
        }
        // Step exposure by phase, measured from each step's first time in the phase.
        let mut first: FxHashMap<(u32, bool), usize> = FxHashMap::default();
        for p in 0..n {
            first.entry((view.step(p), view.after_goal(p))).or_insert(p);
        }
        for (&(step, after), &p) in &first {
            state
                .step_exposed
                .entry((step, after))
                .or_default()
                .add(goal, view.contacts_after[p]);
            for (index, codes) in codes.iter().enumerate() {
                *state
                    .step_segments
                    .entry((step, after, index))
                    .or_default()
                    .entry(codes[p])
                    .or_default() += 1;
            }
        }
        let mut own = Vec::new();
        self.own_exposure(&view, &mut own);
        let mut own_first: FxHashMap<Key, usize> = FxHashMap::default();
        for (key, p) in own {
            if let Entry::Vacant(entry) = own_first.entry(key) {
                entry.insert(p);
                let candidate = candidate(state, key, segments);
                candidate.exposed.add(goal, view.contacts_after[p]);
                for (index, codes) in codes.iter().enumerate() {
                    *candidate.exposed_segments[index]
                        .entry(codes[p])
                        .or_default() += 1;
                }
            }
        }
        let mut signals = Vec::new();
        self.signals(&view, &mut signals);
        let mut counted: FxHashSet<Key> = FxHashSet::default();
        for signal in signals {
            let is_first = counted.insert(signal.key);
            let candidate = candidate(state, signal.key, segments);
            candidate.occurrences += 1;
            if let Some(related) = signal.related {
                *candidate.related.entry(related).or_default() += 1;
            }
            if let Some(duration) = signal.duration {
                candidate.durations.push(duration);
            }
            candidate.delay_us += i128::from(signal.delay.max(0));
            if !is_first {
                continue;
            }
            // The affected are measured as their exposure is, from the same position.
            let (kind, step, _, after) = signal.key;
            let exposure_at = match kind {
                FindingKind::SlowStep
                | FindingKind::NegativeFeedback
                | FindingKind::RepeatContact => own_first.get(&signal.key).copied(),
                FindingKind::ErrorEvent => signal
                    .related
                    .and_then(|before| first.get(&(before, after)).copied()),
                _ => first.get(&(step, after)).copied(),
            }
            .unwrap_or(signal.at);
            let contacts = view.contacts_after[exposure_at];
            candidate.affected.add(goal, contacts);
            if kind == FindingKind::ErrorEvent {
                candidate
                    .by_predecessor
                    .entry(signal.related.unwrap_or(step))
                    .or_default()
                    .add(goal, contacts);
            }
            for (index, codes) in codes.iter().enumerate() {
                *candidate.segments[index]
                    .entry(codes[signal.at])
                    .or_default() += 1;
            }
            if candidate.examples.len() < self.settings.examples {
                candidate.examples.push(journey.index as u32);
            }
        }
        state.scratch = codes;
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
        for (key, outcome) in other.step_exposed {
            state.step_exposed.entry(key).or_default().merge(outcome);
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
            into.affected.merge(part.affected);
            into.exposed.merge(part.exposed);
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
            for (code, outcome) in part.by_predecessor {
                into.by_predecessor.entry(code).or_default().merge(outcome);
            }
            into.durations.extend(part.durations);
            into.delay_us += part.delay_us;
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
        // Who could have shown the signal, and the affected among them measured the same way; for errors, the
        // customers at the step the error most often interrupted.
        let exposure = |key: &Key, candidate: &Candidate| -> (Outcome, Outcome, Option<u32>) {
            let at_step = |step: u32| {
                state
                    .step_exposed
                    .get(&(step, key.3))
                    .copied()
                    .unwrap_or_default()
            };
            match key.0 {
                FindingKind::SlowStep
                | FindingKind::NegativeFeedback
                | FindingKind::RepeatContact => (candidate.exposed, candidate.affected, None),
                FindingKind::ErrorEvent => match candidate
                    .by_predecessor
                    .iter()
                    .filter(|(step, _)| **step != key.1)
                    .max_by(|a, b| a.1.customers.cmp(&b.1.customers).then(b.0.cmp(a.0)))
                {
                    Some((before, part)) => (at_step(*before), *part, Some(*before)),
                    None => (at_step(key.1), candidate.affected, None),
                },
                _ => (at_step(key.1), candidate.affected, None),
            }
        };
        // The norm for each kind: the median rate across candidates with enough exposure. Page and screen views
        // are compared with views, other steps with other steps.
        let class = |key: &Key| -> (FindingKind, bool, bool) {
            let view = key.1 != u32::MAX && self.is_view[key.1 as usize];
            (key.0, view, key.3)
        };
        let mut rates: FxHashMap<(FindingKind, bool, bool), Vec<f64>> = FxHashMap::default();
        for (key, candidate) in &state.candidates {
            let (exposed, part, _) = exposure(key, candidate);
            if exposed.customers >= self.settings.min_customers {
                rates
                    .entry(class(key))
                    .or_default()
                    .push(part.customers as f64 / exposed.customers as f64);
            }
        }
        // Steps with no signal of a kind have rate 0 too: count them so the norm is over all exposed steps.
        let exposed_steps = |view: bool, after: bool| {
            state
                .step_exposed
                .iter()
                .filter(|((step, phase), outcome)| {
                    outcome.customers >= self.settings.min_customers
                        && self.is_view[*step as usize] == view
                        && *phase == after
                })
                .count()
        };
        let norm = |(kind, view, after): (FindingKind, bool, bool)| -> f64 {
            if kind.any_occurrence_counts() {
                return 0.0;
            }
            let mut values = rates.get(&(kind, view, after)).cloned().unwrap_or_default();
            if matches!(
                kind,
                FindingKind::Loop | FindingKind::ChannelJump | FindingKind::DeadEnd
            ) {
                values.resize(values.len().max(exposed_steps(view, after)), 0.0);
            }
            values.sort_by(f64::total_cmp);
            crate::stats::quantile(&values, 0.5).unwrap_or(0.0)
        };
        let norms: FxHashMap<(FindingKind, bool, bool), f64> =
            rates.keys().map(|class| (*class, norm(*class))).collect();
        let overall_goal_rate = ratio(state.goal_customers, state.customers);
        let mut findings: Vec<Finding> = state
            .candidates
            .iter()
            .filter(|(_, candidate)| candidate.affected.customers >= self.settings.min_customers)
            .filter_map(|(key, candidate)| {
                let (exposure, part, before) = exposure(key, candidate);
                let affected = candidate.affected;
                let exposed = exposure.customers.max(part.customers);
                let rate = ratio(part.customers, exposed);
                let norm = norms.get(&class(key)).copied().unwrap_or(0.0);
                let goal_rate = ratio(affected.goal, affected.customers);
                let others_goal_rate = ratio(
                    state.goal_customers - affected.goal,
                    state.customers - affected.customers,
                );
                // Comparable customers: exposed to the same thing without the signal (else everyone else).
                let comparable = exposure.without(part);
                let enough = comparable.customers >= self.settings.min_customers;
                let (comparable_goal_rate, comparable_n) = if enough {
                    (
                        ratio(comparable.goal, comparable.customers),
                        comparable.customers,
                    )
                } else {
                    (others_goal_rate, state.customers - affected.customers)
                };
                let n = affected.customers as f64;
                let contacts = affected.contacts as f64 / n;
                let comparable_contacts =
                    enough.then(|| comparable.contacts as f64 / comparable.customers as f64);
                let after = key.3;
                // A difference counts as harm only beyond two standard errors: noise is not friction.
                let lost = if after {
                    0.0
                } else {
                    let gap = comparable_goal_rate - goal_rate;
                    let se = (goal_rate * (1.0 - goal_rate) / n
                        + comparable_goal_rate * (1.0 - comparable_goal_rate)
                            / comparable_n.max(1) as f64)
                        .sqrt();
                    if gap > 2.0 * se {
                        n * gap
                    } else {
                        0.0
                    }
                };
                // Every repeat contact is one a resolved first contact would have saved.
                let extra = if key.0 == FindingKind::RepeatContact {
                    candidate.occurrences as f64
                } else {
                    comparable_contacts.map_or(0.0, |typical| {
                        let gap = contacts - typical;
                        let se = (contacts / n + typical / comparable.customers as f64).sqrt();
                        if gap > 2.0 * se {
                            n * gap
                        } else {
                            0.0
                        }
                    })
                };
                // Customers who do no worse than comparable ones — reach the goal as often, contact no more — are
                // not shown friction, unless the signal is friction by definition.
                if !key.0.by_definition() && lost <= 0.0 && extra <= 0.0 {
                    return None;
                }
                // Dead ends are judged by how unusual ending there is (their lost goals are the drop-off's).
                let lost_goals = if key.0 == FindingKind::DeadEnd {
                    0.0
                } else {
                    lost.max(0.0)
                };
                let extra_contacts = extra.max(0.0);
                let excess = if key.0 == FindingKind::DropOff {
                    0.0
                } else {
                    (affected.customers as f64 - exposed as f64 * norm).max(0.0)
                };
                let concentration = self.concentration(key, candidate, &state);
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
                let delay_days = matches!(
                    key.0,
                    FindingKind::SlowStep | FindingKind::SlowAgainstStandard | FindingKind::Stuck
                )
                .then(|| candidate.delay_us as f64 / 86_400e6);
                let typical_secs = (key.0 == FindingKind::SlowStep)
                    .then(|| self.slow.get(&(key.1, key.2)))
                    .flatten()
                    .map(|slow| slow.median_us as f64 / 1e6);
                let measures = Measures {
                    exposed,
                    rate,
                    norm,
                    goal_rate,
                    others_goal_rate,
                    comparable_goal_rate,
                    contacts,
                    comparable_contacts,
                    lost_goals,
                    extra_contacts,
                    excess,
                    median_secs,
                    typical_secs,
                    delay_days,
                };
                let mut title = match key.0 {
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
                if after {
                    title.push_str(" (after the goal)");
                }
                let explanation = self.explain(
                    key,
                    candidate,
                    &measures,
                    &related,
                    before.map(name),
                    &concentration,
                    &name,
                );
                let harm = harm(&measures, key.0);
                let headline = headline(&title, &harm);
                Some(Finding {
                    kind: key.0,
                    headline,
                    title,
                    step: name(key.1),
                    after_goal: after,
                    harm,
                    explanation,
                    customers: affected.customers,
                    occurrences: candidate.occurrences,
                    exposed,
                    rate,
                    typical_rate: norm,
                    goal_rate,
                    others_goal_rate,
                    comparable_goal_rate,
                    lost_goals,
                    contacts_per_customer: contacts,
                    comparable_contacts_per_customer: comparable_contacts,
                    extra_contacts,
                    excess_customers: excess,
                    impact: excess + lost_goals + extra_contacts,
                    concentration,
                    median_secs,
                    delay_days,
                    example_customers: candidate
                        .examples
                        .iter()
                        .map(|journey| journeys.customer_ids[*journey as usize].to_string())
                        .collect(),
                })
            })
            .filter(|finding| finding.impact >= 1.0)
            .collect();
        // A dead end where most of its customers also drop off says nothing the drop-off does not.
        let drop_offs: FxHashMap<(String, bool), u64> = findings
            .iter()
            .filter(|finding| finding.kind == FindingKind::DropOff)
            .map(|finding| {
                (
                    (finding.step.clone(), finding.after_goal),
                    finding.customers,
                )
            })
            .collect();
        findings.retain(|finding| {
            finding.kind != FindingKind::DeadEnd
                || drop_offs
                    .get(&(finding.step.clone(), finding.after_goal))
                    .is_none_or(|customers| (*customers as f64) < 0.8 * finding.customers as f64)
        });
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
            as_of: waymark_model::Timestamp(self.now).to_rfc3339(),
            candidates: total,
            findings,
        }
    }
}

/// The numbers behind one finding.
struct Measures {
    exposed: u64,
    rate: f64,
    norm: f64,
    goal_rate: f64,
    others_goal_rate: f64,
    comparable_goal_rate: f64,
    contacts: f64,
    comparable_contacts: Option<f64>,
    lost_goals: f64,
    extra_contacts: f64,
    excess: f64,
    median_secs: Option<f64>,
    typical_secs: Option<f64>,
    delay_days: Option<f64>,
}

/// The harm in one line: the parts of the impact, largest first, and the delay.
fn harm(measures: &Measures, kind: FindingKind) -> String {
    let mut parts: Vec<(f64, String)> = Vec::new();
    if measures.lost_goals >= 0.5 {
        parts.push((
            measures.lost_goals,
            format!("{} goals lost", thousands(measures.lost_goals)),
        ));
    }
    if measures.extra_contacts >= 0.5 {
        parts.push((
            measures.extra_contacts,
            format!("{} extra contacts", thousands(measures.extra_contacts)),
        ));
    }
    if measures.excess >= 0.5 {
        let what = if kind.any_occurrence_counts() {
            "customers affected"
        } else {
            "customers beyond the norm"
        };
        parts.push((
            measures.excess,
            format!("{} {what}", thousands(measures.excess)),
        ));
    }
    parts.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut parts: Vec<String> = parts.into_iter().map(|(_, text)| text).collect();
    if let Some(days) = measures.delay_days.filter(|days| *days >= 0.5) {
        parts.push(format!("{} days of delay", thousands(days)));
    }
    parts.join(" · ")
}

/// The headline: what happened and what it cost, never a comparison that flatters the affected customers.
fn headline(title: &str, harm: &str) -> String {
    if harm.is_empty() {
        title.to_string()
    } else {
        format!("{title}: {harm}")
    }
}

/// A count rounded, with thousands separated: 16,827.
fn thousands(value: f64) -> String {
    crate::query::text::thousands(value.max(0.0).round() as u64)
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
    ) -> Option<Concentration> {
        let mut best: Option<Concentration> = None;
        for (index, segment) in self.segments.iter().enumerate() {
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
                    .get(&(key.1, key.3, index))
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
                    let value = match &segment.values[*code as usize] {
                        Value::String(text) => text.clone(),
                        other => other.to_string(),
                    };
                    best = Some(Concentration {
                        property: segment.name.clone(),
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
        m: &Measures,
        related: &Option<(String, u64)>,
        before: Option<String>,
        concentration: &Option<Concentration>,
        name: &dyn Fn(u32) -> String,
    ) -> String {
        let step = name(key.1);
        let affected = thousands(candidate.affected.customers as f64);
        let exposed = thousands(m.exposed as f64);
        let occurrences = thousands(candidate.occurrences as f64);
        let typical = if m.norm > 0.0 {
            format!(" (typical for a step: {})", percent(m.norm))
        } else {
            String::new()
        };
        let mut text = match key.0 {
            FindingKind::DropOff => format!(
                "{affected} customers get as far as {step} and never reach the goal, while {} of the others who reach {step} do.",
                percent(m.comparable_goal_rate)
            ),
            FindingKind::DeadEnd => format!(
                "{affected} customers' journeys end at {step} without reaching the goal: {} of everyone who gets there{typical}.",
                percent(m.rate)
            ),
            FindingKind::Loop if key.1 == key.2 => format!(
                "{affected} customers ({} of those at {step}) repeat {step} within three steps{typical}, {} times in all.",
                percent(m.rate),
                occurrences
            ),
            FindingKind::Loop => format!(
                "{affected} customers ({} of those at {step}) go back and forth between {step} and {}{typical}, {} times in all.",
                percent(m.rate),
                name(key.2),
                occurrences
            ),
            FindingKind::ErrorEvent => match &before {
                Some(before) => format!(
                    "{affected} customers hit the error event {step}, {} times in all; {} of those at {before} hit it.",
                    occurrences,
                    percent(m.rate)
                ),
                None => format!(
                    "{affected} customers hit the error event {step}, {} times in all.",
                    occurrences
                ),
            },
            FindingKind::ChannelJump => format!(
                "{affected} customers ({}) go from {step} to an assisted channel{} within {}{typical}.",
                percent(m.rate),
                related.as_ref().map_or(String::new(), |(contact, _)| format!(" ({contact})")),
                duration(self.settings.jump_window_us as f64 / 1e6)
            ),
            FindingKind::RepeatContact => format!(
                "{affected} of {exposed} customers ({}) with {} after {step} have it again within {}{}.",
                percent(m.rate),
                name(key.2),
                duration(self.settings.repeat_window_us as f64 / 1e6),
                if m.norm > 0.0 { format!(" (typical: {})", percent(m.norm)) } else { String::new() }
            ),
            FindingKind::SlowStep => format!(
                "{affected} customers ({}) take far longer than usual from {step} to {}: a median {} against a typical {}{}.",
                percent(m.rate),
                name(key.2),
                duration(m.median_secs.unwrap_or(0.0)),
                duration(m.typical_secs.unwrap_or(0.0)),
                typical
            ),
            FindingKind::SlowAgainstStandard => format!(
                "{affected} customers ({} of those at {step}) wait longer than its standard time for the next step{}; median {}.",
                percent(m.rate),
                related.as_ref().map_or(String::new(), |(next, _)| format!(" ({next})")),
                duration(m.median_secs.unwrap_or(0.0))
            ),
            FindingKind::Stuck => format!(
                "{affected} customers are still at {step} past its standard time, idle for a median {}.",
                duration(m.median_secs.unwrap_or(0.0))
            ),
            FindingKind::NegativeFeedback => format!(
                "{affected} of {exposed} customers who rated {step} found it unhelpful ({}){}.",
                percent(m.rate),
                if m.norm > 0.0 { format!("; typical for rated steps: {}", percent(m.norm)) } else { String::new() }
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
        if key.3 {
            text.push_str(" This happens after they reached the goal.");
        } else {
            // The raw comparison with everyone else is shown only when it points at the harm: customers deep in a
            // journey reach the goal more often than the average customer even when a step costs them goals, and
            // "40% against 31%" would read as good news. The comparable customers' rate is the measure of harm.
            if m.goal_rate < m.others_goal_rate {
                text.push_str(&format!(
                    " Their goal rate is {} against {} for everyone else.",
                    percent(m.goal_rate),
                    percent(m.others_goal_rate)
                ));
            }
            if key.0 != FindingKind::DropOff && m.lost_goals >= 0.5 {
                text.push_str(&format!(
                    " Comparable customers without it reach the goal {}: about {} goals lost.",
                    percent(m.comparable_goal_rate),
                    thousands(m.lost_goals)
                ));
            }
        }
        if key.0 == FindingKind::RepeatContact {
            text.push_str(&format!(" {} repeat contacts in all.", occurrences));
        } else if let Some(typical) = m.comparable_contacts.filter(|_| m.extra_contacts >= 0.5) {
            text.push_str(&format!(
                " Afterwards they make {:.2} assisted contacts each against {:.2} for comparable customers: about {} extra contacts.",
                m.contacts, typical, thousands(m.extra_contacts)
            ));
        }
        if let Some(days) = m.delay_days.filter(|days| *days >= 0.5) {
            text.push_str(&format!(
                " {} customer-days of delay in all.",
                thousands(days)
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
    /// The title and its harm in one line, as lists and pages show it: "Loop on Login Failed: 120 goals lost".
    pub headline: String,
    /// What happened and where, without the harm: "Loop on Login Failed".
    pub title: String,
    /// The step (or rated item, or origin step) the finding is about.
    pub step: String,
    /// Whether it happens after the customers reached the goal (delivery, activation, support).
    pub after_goal: bool,
    /// The harm in one line: goals lost, extra contacts, customers beyond the norm, days of delay.
    pub harm: String,
    /// What happened, how often against the norm, where it concentrates, and what it cost — in words.
    pub explanation: String,
    /// Customers affected.
    pub customers: u64,
    pub occurrences: u64,
    /// Customers who could have been affected (at the step, rating it, contacting after it, at the step an error
    /// interrupts, …).
    pub exposed: u64,
    /// The affected share of the exposed.
    pub rate: f64,
    /// The median rate of this kind of signal across steps (0 where any occurrence is friction).
    pub typical_rate: f64,
    /// Goal rate of the affected customers.
    pub goal_rate: f64,
    /// Goal rate of everyone else.
    pub others_goal_rate: f64,
    /// Goal rate of comparable customers: exposed to the same thing without the signal (everyone else when
    /// fewer than the minimum).
    pub comparable_goal_rate: f64,
    /// Goal completions lost against comparable customers (0 after the goal and for dead ends).
    pub lost_goals: f64,
    /// Assisted contacts per affected customer from the exposure on …
    pub contacts_per_customer: f64,
    /// … and per comparable customer (none when too few are comparable).
    pub comparable_contacts_per_customer: Option<f64>,
    /// Assisted contacts beyond the comparable customers' rate.
    pub extra_contacts: f64,
    /// Customers affected beyond the norm for this kind of signal.
    pub excess_customers: f64,
    /// `excess_customers + lost_goals + extra_contacts`: the ranking.
    pub impact: f64,
    pub concentration: Option<Concentration>,
    /// Median duration involved (slow steps, stuck journeys), seconds.
    pub median_secs: Option<f64>,
    /// Slow and stuck steps: customer-days beyond the typical time (or the standard), summed.
    pub delay_days: Option<f64>,
    /// Some of the customers behind it (the first in customer order).
    pub example_customers: Vec<String>,
}

/// JSON `{"customers", "goal_rate", "goals", "as_of", "candidates", "findings": [...]}`; findings by impact.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct FrictionReport {
    pub customers: u64,
    pub goal_rate: f64,
    pub goals: Vec<String>,
    /// The "now" stuck journeys are measured against.
    pub as_of: String,
    /// Candidate findings before the top-k cut.
    pub candidates: usize,
    pub findings: Vec<Finding>,
}
