//! What one journey says: its friction signals (drop-offs, dead ends, loops, errors, channel jumps, repeat
//! contacts, slow and stuck steps, negative feedback) and what it was exposed to, read from a [`View`] of the
//! journey without its identity calls.

use super::*;

/// One journey as friction sees it: only the events that are journey steps, with where the goal was reached and
/// the assisted contacts that followed each position.
pub(super) struct View<'j> {
    pub(super) journey: JourneyRef<'j>,
    /// Journey-relative positions of the journey's steps.
    positions: Vec<usize>,
    steps: Vec<u32>,
    pub(super) feedback: Vec<bool>,
    /// Assisted contacts begun after each position.
    pub(super) contacts_after: Vec<u32>,
    /// The position of the first goal event.
    pub(super) goal_at: Option<usize>,
}

impl View<'_> {
    pub(super) fn len(&self) -> usize {
        self.positions.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.positions.is_empty()
    }

    /// The canonical step at position `p`.
    pub(super) fn step(&self, p: usize) -> u32 {
        self.steps[p]
    }

    /// The step code as stored.
    pub(super) fn raw(&self, p: usize) -> usize {
        self.journey.step[self.positions[p]] as usize
    }

    pub(super) fn ts(&self, p: usize) -> i64 {
        self.journey.ts[self.positions[p]]
    }

    pub(super) fn channel(&self, p: usize) -> usize {
        self.journey.channel[self.positions[p]] as usize
    }

    /// The event's index in the journey set.
    pub(super) fn event(&self, p: usize) -> usize {
        self.journey.start + self.positions[p]
    }

    /// Whether position `p` comes after the customer reached the goal.
    pub(super) fn after_goal(&self, p: usize) -> bool {
        self.goal_at.is_some_and(|goal| p > goal)
    }
}

impl PreparedFriction<'_> {
    /// The journey without its identity calls.
    pub(super) fn view<'j>(&self, journey: &JourneyRef<'j>) -> View<'j> {
        let set = journey.set;
        let positions: Vec<usize> = (0..journey.len())
            .filter(|i| !self.ignored[journey.step[*i] as usize])
            .collect();
        let steps = positions
            .iter()
            .map(|i| self.canonical[journey.step[*i] as usize])
            .collect();
        let feedback = positions
            .iter()
            .map(|i| self.is_feedback(set, journey.start + i))
            .collect();
        let goal_at = positions.iter().position(|i| {
            self.goals
                .iter()
                .any(|goal| goal.matches(set, journey.start + i))
        });
        let mut view = View {
            journey: *journey,
            positions,
            steps,
            feedback,
            contacts_after: Vec::new(),
            goal_at,
        };
        let mut contacts = 0;
        let mut after = vec![0; view.len()];
        for p in (0..view.len()).rev() {
            after[p] = contacts;
            if self.assisted[view.channel(p)] && self.starts_contact(&view, p) {
                contacts += 1;
            }
        }
        view.contacts_after = after;
        view
    }

    /// Per segment, the value code at each position of the view: the event's own value, else the latest one
    /// before it, else the customer's first one.
    pub(super) fn segment_codes(&self, view: &View<'_>, out: &mut Vec<Vec<u32>>) {
        out.resize(self.segments.len(), Vec::new());
        let journey = &view.journey;
        let own = |segment: &SegmentSource, i: usize| {
            segment
                .columns
                .iter()
                .map(|(column, remap)| {
                    remap[journey.set.properties[*column].codes[journey.start + i] as usize]
                })
                .find(|code| *code != 0)
                .unwrap_or(0)
        };
        for (segment, codes) in self.segments.iter().zip(out.iter_mut()) {
            codes.clear();
            let first = (0..journey.len())
                .map(|i| own(segment, i))
                .find(|code| *code != 0)
                .unwrap_or(0);
            let mut current = first;
            let mut next = 0;
            for i in 0..journey.len() {
                let code = own(segment, i);
                if code != 0 {
                    current = code;
                }
                if view.positions.get(next) == Some(&i) {
                    codes.push(current);
                    next += 1;
                }
            }
        }
    }

    pub(super) fn is_feedback(&self, set: &JourneySet, event: usize) -> bool {
        self.helpful
            .is_some_and(|column| set.properties[column].codes[event] != 0)
            || self
                .scores
                .iter()
                .any(|column| set.properties[*column].codes[event] != 0)
    }

    pub(super) fn is_negative(&self, set: &JourneySet, event: usize) -> bool {
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
    pub(super) fn standard_time(&self, set: &JourneySet, event: usize) -> Option<i64> {
        self.standard[set.step[event] as usize].or_else(|| {
            let column = self.standard_property?;
            let value = set.properties[column].value(event);
            let hours = value
                .as_f64()
                .or_else(|| value.as_str().and_then(|text| text.parse().ok()))?;
            Some((hours * US_PER_HOUR) as i64)
        })
    }

    /// The step a feedback event at position `p` rates: its rated-step property, else the step before it.
    fn rated(&self, view: &View<'_>, p: usize) -> Option<u32> {
        let set = view.journey.set;
        self.rated_step
            .as_ref()
            .and_then(|(column, steps)| {
                steps[set.properties[*column].codes[view.event(p)] as usize]
            })
            .or_else(|| (p > 0).then(|| view.step(p - 1)))
    }

    pub(super) fn signals(&self, view: &View<'_>, out: &mut Vec<Signal>) {
        let set = view.journey.set;
        let n = view.len();
        let goal = view.goal_at.is_some();
        let signal = |kind, step, second, at: usize, related, duration, delay| Signal {
            key: (kind, step, second, view.after_goal(at)),
            at,
            related,
            duration,
            delay,
        };
        for p in 0..n {
            let step = view.step(p);
            let raw = view.raw(p);
            // Error events, with the step they interrupted.
            if self.is_error[raw] {
                let before = (p > 0).then(|| view.step(p - 1));
                out.push(signal(FindingKind::ErrorEvent, step, 0, p, before, None, 0));
            }
            // Loops and rework: a self-service action (not a page view) again within the next three steps; a
            // ping-pong A → B → A is one loop between A and B.
            if !self.is_view[raw] && !view.feedback[p] && self.self_service[view.channel(p)] {
                if let Some(q) = (p + 1..(p + 4).min(n)).find(|q| view.step(*q) == step) {
                    let via = if q > p + 1 { view.step(p + 1) } else { step };
                    out.push(signal(
                        FindingKind::Loop,
                        step.min(via),
                        step.max(via),
                        p,
                        None,
                        None,
                        0,
                    ));
                }
            }
            if p + 1 < n {
                let next = view.step(p + 1);
                let gap = view.ts(p + 1) - view.ts(p);
                // Slow against the step's standard time, or against the transition's own profile.
                if let Some(standard) = self.standard_time(set, view.event(p)) {
                    if gap > standard {
                        out.push(signal(
                            FindingKind::SlowAgainstStandard,
                            step,
                            0,
                            p,
                            Some(next),
                            Some(gap),
                            gap - standard,
                        ));
                    }
                }
                if let Some(slow) = self.slow.get(&(step, next)) {
                    if gap > slow.threshold_us {
                        out.push(signal(
                            FindingKind::SlowStep,
                            step,
                            next,
                            p,
                            Some(next),
                            Some(gap),
                            gap - slow.median_us,
                        ));
                    }
                }
            }
            // Negative feedback, about the rated step (or the previous one).
            if view.feedback[p] && self.is_negative(set, view.event(p)) {
                if let Some(rated) = self.rated(view, p) {
                    out.push(signal(
                        FindingKind::NegativeFeedback,
                        rated,
                        0,
                        p,
                        None,
                        None,
                        0,
                    ));
                }
            }
        }
        // Assisted contacts: a jump from the last self-service step before them, and a repeat when the same
        // contact step happened on the same channel within the repeat window.
        for p in 0..n {
            if !self.assisted[view.channel(p)] {
                continue;
            }
            let contact = view.step(p);
            if p == 0 || !self.assisted[view.channel(p - 1)] {
                if let Some(q) = self
                    .origin(view, p)
                    .filter(|q| view.ts(p) - view.ts(*q) <= self.settings.jump_window_us)
                {
                    out.push(signal(
                        FindingKind::ChannelJump,
                        view.step(q),
                        0,
                        q,
                        Some(contact),
                        None,
                        0,
                    ));
                }
            }
            if !self.starts_contact(view, p) {
                continue;
            }
            let earlier = (0..p).rev().find(|q| {
                view.raw(*q) == view.raw(p)
                    && view.channel(*q) == view.channel(p)
                    && self.starts_contact(view, *q)
            });
            if let Some(q) =
                earlier.filter(|q| view.ts(p) - view.ts(*q) <= self.settings.repeat_window_us)
            {
                let origin = self.origin(view, q).map_or(u32::MAX, |o| view.step(o));
                out.push(signal(
                    FindingKind::RepeatContact,
                    origin,
                    contact,
                    q,
                    Some(contact),
                    None,
                    0,
                ));
            }
        }
        if !goal && n > 0 {
            // Drop-off: the furthest step towards the goal (highest goal rate among those who reach it) that this
            // customer reached.
            let furthest = (0..n).filter(|p| !view.feedback[*p]).max_by(|a, b| {
                self.progress[view.step(*a) as usize]
                    .total_cmp(&self.progress[view.step(*b) as usize])
                    .then(a.cmp(b))
            });
            // Only a step on the goal path (most who reach it go on to the goal) is a drop-off point.
            let on_the_way = |p: &usize| {
                self.progress[view.step(*p) as usize] >= self.settings.drop_off_min_progress
            };
            if let Some(p) = furthest.filter(on_the_way) {
                out.push(signal(
                    FindingKind::DropOff,
                    view.step(p),
                    0,
                    p,
                    None,
                    None,
                    0,
                ));
            }
        }
        if n > 0 {
            let last = n - 1;
            let step = view.step(last);
            if !goal {
                out.push(signal(FindingKind::DeadEnd, step, 0, last, None, None, 0));
            }
            // Stuck: the journey's last step has a standard time, and the customer has waited longer.
            if let Some(standard) = self.standard_time(set, view.event(last)) {
                let idle = self.now - view.ts(last);
                if idle > standard {
                    out.push(signal(
                        FindingKind::Stuck,
                        step,
                        0,
                        last,
                        None,
                        Some(idle),
                        idle - standard,
                    ));
                }
            }
        }
    }

    /// Where `journey` shows one of `kinds` of being stuck: the positions (in the journey, identity calls
    /// counted) of the events that show it, ascending, `journey.len()` for its end.
    pub fn stuck_positions(&self, journey: &JourneyRef<'_>, kinds: &[StuckSignal]) -> Vec<usize> {
        let view = self.view(journey);
        let mut signals = Vec::new();
        self.signals(&view, &mut signals);
        let at_event = |p: usize| {
            if p < view.len() {
                view.positions[p]
            } else {
                journey.len()
            }
        };
        let mut positions: Vec<usize> = signals
            .iter()
            .filter_map(|signal| {
                let p = signal.at;
                let (kind, observed) = match signal.key.0 {
                    FindingKind::Loop => {
                        let step = view.step(p);
                        let q = (p + 1..(p + 4).min(view.len())).find(|q| view.step(*q) == step)?;
                        (StuckSignal::Loop, q)
                    }
                    FindingKind::ErrorEvent => {
                        let streak = (p.saturating_sub(3)..p).any(|q| self.is_error[view.raw(q)]);
                        if !streak {
                            return None;
                        }
                        (StuckSignal::ErrorStreak, p)
                    }
                    FindingKind::DeadEnd => (StuckSignal::DeadEnd, view.len()),
                    FindingKind::SlowStep | FindingKind::SlowAgainstStandard => {
                        (StuckSignal::SlowStep, p + 1)
                    }
                    FindingKind::Stuck => (StuckSignal::SlowStep, view.len()),
                    _ => return None,
                };
                kinds.contains(&kind).then(|| at_event(observed))
            })
            .collect();
        positions.sort_unstable();
        positions.dedup();
        positions
    }

    /// Exposure of candidates not keyed by one step (who could have shown the signal), with the position.
    pub(super) fn own_exposure(&self, view: &View<'_>, out: &mut Vec<(Key, usize)>) {
        let n = view.len();
        for p in 0..n {
            let step = view.step(p);
            let after = view.after_goal(p);
            if p + 1 < n && self.slow.contains_key(&(step, view.step(p + 1))) {
                out.push(((FindingKind::SlowStep, step, view.step(p + 1), after), p));
            }
            if view.feedback[p] {
                if let Some(rated) = self.rated(view, p) {
                    out.push(((FindingKind::NegativeFeedback, rated, 0, after), p));
                }
            }
            // Repeat contacts: exposed are those who had the contact after the same origin.
            if self.assisted[view.channel(p)] && self.starts_contact(view, p) {
                let origin = self.origin(view, p).map_or(u32::MAX, |o| view.step(o));
                out.push(((FindingKind::RepeatContact, origin, view.step(p), after), p));
            }
        }
    }

    /// Whether position `p` (on an assisted channel) begins a contact: the step before is on another channel or
    /// more than `contact_gap` earlier.
    pub(super) fn starts_contact(&self, view: &View<'_>, p: usize) -> bool {
        p == 0
            || view.channel(p - 1) != view.channel(p)
            || view.ts(p) - view.ts(p - 1) > self.settings.contact_gap_us
    }

    /// The last self-service step (feedback skipped) before position `p`.
    pub(super) fn origin(&self, view: &View<'_>, p: usize) -> Option<usize> {
        (0..p)
            .rev()
            .find(|q| self.self_service[view.channel(*q)] && !view.feedback[*q])
    }
}
