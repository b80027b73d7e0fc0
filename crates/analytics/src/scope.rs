//! What every analysis can be narrowed to before it runs: a time range, channels, steps and property conditions
//! (events outside are dropped, customers left with none disappear), and journeys split into instances at an
//! inactivity gap. Both are transforms of a [`JourneySet`], so every analysis gets them for free.

use crate::condition::{Compiled, Condition};
use crate::error::AnalyticsError;
use waymark_model::JourneySet;

/// Event filters; every part must hold for an event to stay.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    /// Inclusive lower bound, µs since the epoch.
    pub from_us: Option<i64>,
    /// Exclusive upper bound, µs since the epoch.
    pub to_us: Option<i64>,
    /// Keep these channels only (empty: all).
    pub channels: Vec<String>,
    /// Keep these steps only (`*` patterns allowed; empty: all).
    pub steps: Vec<String>,
    /// Property (or any) conditions.
    pub conditions: Vec<Condition>,
}

impl Filter {
    pub fn is_empty(&self) -> bool {
        self.from_us.is_none()
            && self.to_us.is_none()
            && self.channels.is_empty()
            && self.steps.is_empty()
            && self.conditions.is_empty()
    }

    /// The property columns the filter reads.
    pub fn properties(&self, into: &mut Vec<String>) {
        for condition in &self.conditions {
            condition.properties(into);
        }
    }

    /// The events of `journeys` that pass, as a new set (dictionaries and property columns kept).
    pub fn apply(&self, journeys: &JourneySet) -> Result<JourneySet, AnalyticsError> {
        if self.is_empty() {
            return Ok(journeys.clone());
        }
        let any_of = |conditions: Vec<Condition>| Condition::Any { any: conditions };
        let mut parts: Vec<Compiled> = Vec::new();
        if !self.channels.is_empty() {
            parts.push(
                any_of(
                    self.channels
                        .iter()
                        .map(|channel| Condition::Channel {
                            channel: channel.clone(),
                        })
                        .collect(),
                )
                .compile(journeys)?,
            );
        }
        if !self.steps.is_empty() {
            parts.push(any_of(self.steps.iter().map(Condition::step).collect()).compile(journeys)?);
        }
        for condition in &self.conditions {
            parts.push(condition.compile(journeys)?);
        }
        let (from, to) = (
            self.from_us.unwrap_or(i64::MIN),
            self.to_us.unwrap_or(i64::MAX),
        );
        Ok(journeys.select(|event| {
            let ts = journeys.ts[event];
            ts >= from && ts < to && parts.iter().all(|part| part.matches(journeys, event))
        }))
    }
}

/// Splits every journey into instances wherever `gap_us` or more passes between two events. Instance `n > 1` of
/// customer `c` is named `c#n`.
pub fn split_instances(journeys: &JourneySet, gap_us: i64) -> JourneySet {
    split_where(journeys, |event| {
        journeys.ts[event] - journeys.ts[event - 1] >= gap_us
    })
}

/// Splits every journey into instances at events matching `before` (a new instance starts with them) and after
/// events matching `after` (an instance ends with them). Instance `n > 1` of customer `c` is named `c#n`.
pub fn split_at_events(
    journeys: &JourneySet,
    before: Option<&Condition>,
    after: Option<&Condition>,
) -> Result<JourneySet, AnalyticsError> {
    let before = before
        .map(|condition| condition.compile(journeys))
        .transpose()?;
    let after = after
        .map(|condition| condition.compile(journeys))
        .transpose()?;
    Ok(split_where(journeys, |event| {
        before
            .as_ref()
            .is_some_and(|condition| condition.matches(journeys, event))
            || after
                .as_ref()
                .is_some_and(|condition| condition.matches(journeys, event - 1))
    }))
}

/// A new instance starts at every event (not a journey's first) for which `starts_new(event)` holds.
fn split_where(journeys: &JourneySet, starts_new: impl Fn(usize) -> bool) -> JourneySet {
    let mut split = JourneySet {
        offsets: vec![0],
        ts: journeys.ts.clone(),
        step: journeys.step.clone(),
        channel: journeys.channel.clone(),
        step_names: journeys.step_names.clone(),
        channel_names: journeys.channel_names.clone(),
        properties: journeys.properties.clone(),
        ..JourneySet::default()
    };
    for journey in 0..journeys.n_journeys() {
        let (start, end) = (journeys.offsets[journey], journeys.offsets[journey + 1]);
        let customer = &journeys.customer_ids[journey];
        let mut instance = 1;
        split.customer_ids.push(customer);
        for event in start + 1..end {
            if starts_new(event) {
                split.offsets.push(event);
                instance += 1;
                split.customer_ids.push(&format!("{customer}#{instance}"));
            }
        }
        split.offsets.push(end);
    }
    split
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> JourneySet {
        JourneySet::from_journeys([
            (
                "ann".to_string(),
                vec![
                    (0, "view", "web"),
                    (10, "call", "phone"),
                    (1_000, "view", "app"),
                ],
            ),
            ("bob".to_string(), vec![(5, "call", "phone")]),
        ])
    }

    #[test]
    fn filters_drop_events_and_empty_journeys() {
        let journeys = sample();
        let filter = Filter {
            channels: vec!["web".into(), "app".into()],
            ..Filter::default()
        };
        let kept = filter.apply(&journeys).unwrap();
        assert_eq!(kept.customer_ids.iter().collect::<Vec<_>>(), ["ann"]);
        assert_eq!(kept.ts, [0, 1_000]);
        let window = Filter {
            from_us: Some(5),
            to_us: Some(1_000),
            ..Filter::default()
        };
        assert_eq!(window.apply(&journeys).unwrap().ts, [10, 5]);
        let steps = Filter {
            steps: vec!["vi*".into()],
            ..Filter::default()
        };
        assert_eq!(steps.apply(&journeys).unwrap().n_events(), 2);
    }

    #[test]
    fn instances_split_at_entry_and_goal_events() {
        let journeys = JourneySet::from_journeys([(
            "ann".to_string(),
            vec![
                (0, "view", "web"),
                (1, "buy", "web"),
                (2, "view", "web"),
                (3, "view", "web"),
            ],
        )]);
        let after = split_at_events(&journeys, None, Some(&Condition::step("buy"))).unwrap();
        assert_eq!(after.offsets, [0, 2, 4]);
        let before = split_at_events(&journeys, Some(&Condition::step("view")), None).unwrap();
        assert_eq!(
            before.customer_ids.iter().collect::<Vec<_>>(),
            ["ann", "ann#2", "ann#3"]
        );
        assert_eq!(before.offsets, [0, 2, 3, 4]);
    }

    #[test]
    fn instances_split_at_the_gap() {
        let split = split_instances(&sample(), 500);
        assert_eq!(
            split.customer_ids.iter().collect::<Vec<_>>(),
            ["ann", "ann#2", "bob"]
        );
        assert_eq!(split.offsets, [0, 2, 3, 4]);
    }
}
