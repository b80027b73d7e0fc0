//! What one journey says: its friction signals (drop-offs, dead ends, loops, errors, channel jumps, repeat
//! contacts, slow and stuck steps, negative feedback) and the steps it was exposed to.

use super::*;

impl PreparedFriction<'_> {
    pub(super) fn step(&self, journey: &JourneyRef<'_>, i: usize) -> u32 {
        self.canonical[journey.step[i] as usize]
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

    pub(super) fn signals(&self, journey: &JourneyRef<'_>, goal: bool, out: &mut Vec<Signal>) {
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
    pub(super) fn own_exposure(&self, journey: &JourneyRef<'_>, out: &mut Vec<(Key, usize)>) {
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
    pub(super) fn starts_contact(&self, journey: &JourneyRef<'_>, i: usize) -> bool {
        i == 0
            || journey.channel[i - 1] != journey.channel[i]
            || journey.ts[i] - journey.ts[i - 1] > self.settings.contact_gap_us
    }

    /// The last self-service event (feedback skipped) before event `i`.
    pub(super) fn origin(
        &self,
        journey: &JourneyRef<'_>,
        i: usize,
        feedback: &[bool],
    ) -> Option<usize> {
        (0..i)
            .rev()
            .find(|j| self.self_service[journey.channel[*j] as usize] && !feedback[*j])
    }
}
