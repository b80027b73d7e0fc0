//! Retention: customers grouped into cohorts by the calendar period (UTC day, Monday-based week, or month) of
//! their first start event — or, recurring, of every start event (PostHog's two kinds) — and for each later
//! period, how many of them did the return event in it.

use crate::condition::{Compiled, Condition};
use crate::error::AnalyticsError;
use crate::Analysis;
use chrono::{DateTime, Datelike};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use waymark_model::{JourneyRef, JourneySet};

/// Cohort period.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    Day,
    #[default]
    Week,
    Month,
}

impl Period {
    /// The period index of a time (µs since the epoch): days, Monday-based weeks or months since 1970-01.
    fn index(self, ts: i64) -> i64 {
        let day = ts.div_euclid(86_400_000_000);
        match self {
            Period::Day => day,
            // 1970-01-01 was a Thursday: shifting by 3 days starts weeks on Monday.
            Period::Week => (day + 3).div_euclid(7),
            Period::Month => {
                let date = DateTime::from_timestamp_micros(ts).unwrap_or_default();
                i64::from(date.year() - 1970) * 12 + i64::from(date.month0())
            }
        }
    }

    /// The first day of period `index`, as `YYYY-MM-DD`.
    fn label(self, index: i64) -> String {
        let day = match self {
            Period::Day => index,
            Period::Week => index * 7 - 3,
            Period::Month => {
                let (year, month) = (1970 + index.div_euclid(12), index.rem_euclid(12) + 1);
                return format!("{year:04}-{month:02}-01");
            }
        };
        DateTime::from_timestamp(day * 86_400, 0)
            .unwrap_or_default()
            .format("%Y-%m-%d")
            .to_string()
    }
}

/// Who is in a cohort.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum RetentionMode {
    /// A customer is in one cohort: the period of their first start event (PostHog's "first time" retention,
    /// Amplitude's "new users").
    #[default]
    FirstTime,
    /// Each period's cohort is everyone who did the start event in it, so a customer is in as many cohorts as
    /// periods they started in (PostHog's default, "recurring" retention).
    Recurring,
}

/// A retention query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Retention {
    /// The event that puts a customer in a cohort (its first occurrence).
    pub start: Condition,
    /// The event that counts as coming back.
    pub returning: Condition,
    #[serde(default)]
    pub period: Period,
    /// Periods after the cohort's own (0 is the cohort's period itself).
    pub periods: usize,
    #[serde(default)]
    pub mode: RetentionMode,
}

/// Partial retention: cohort period → (customers, customers returning in period k).
pub type RetentionState = FxHashMap<i64, (u64, Vec<u64>)>;

/// A retention query bound to a journey set.
pub struct PreparedRetention<'r> {
    retention: &'r Retention,
    start: Compiled,
    returning: Compiled,
    warnings: Vec<String>,
}

impl Retention {
    pub fn prepare<'r>(
        &'r self,
        journeys: &JourneySet,
    ) -> Result<PreparedRetention<'r>, AnalyticsError> {
        if self.periods == 0 || self.periods > 366 {
            return Err(AnalyticsError::field(
                "periods",
                format!("periods must be between 1 and 366; got {}", self.periods),
            ));
        }
        let (start, returning) = (
            self.start.compile(journeys)?,
            self.returning.compile(journeys)?,
        );
        let warnings = [
            self.start.unmatched(&start, journeys, "The start step"),
            self.returning
                .unmatched(&returning, journeys, "The return step"),
        ]
        .into_iter()
        .flatten()
        .collect();
        Ok(PreparedRetention {
            retention: self,
            start,
            returning,
            warnings,
        })
    }

    /// The property columns the conditions read.
    pub fn properties(&self) -> Vec<String> {
        let mut names = Vec::new();
        self.start.properties(&mut names);
        self.returning.properties(&mut names);
        names
    }
}

impl Analysis for PreparedRetention<'_> {
    type State = RetentionState;
    type Report = RetentionReport;

    fn new_state(&self, _journeys: &JourneySet) -> RetentionState {
        FxHashMap::default()
    }

    fn update(&self, state: &mut RetentionState, journey: JourneyRef<'_>) {
        let set = journey.set;
        let period = self.retention.period;
        let buckets = self.retention.periods + 1;
        // The cohorts this customer is in, with the event that put them there: the first start event of the
        // journey, or (recurring) the first of each period with one.
        let mut cohorts: Vec<(i64, usize)> = Vec::new();
        for i in 0..journey.len() {
            if self.start.matches(set, journey.start + i) {
                let cohort = period.index(journey.ts[i]);
                if cohorts.last().is_none_or(|(last, _)| *last != cohort) {
                    cohorts.push((cohort, i));
                }
                if self.retention.mode == RetentionMode::FirstTime {
                    break;
                }
            }
        }
        for (cohort, first) in cohorts {
            let entry = state.entry(cohort).or_insert_with(|| (0, vec![0; buckets]));
            entry.0 += 1;
            let mut returned = vec![false; buckets];
            for i in first + 1..journey.len() {
                if self.returning.matches(set, journey.start + i) {
                    let offset = period.index(journey.ts[i]) - cohort;
                    if offset >= buckets as i64 {
                        break;
                    }
                    if offset >= 0 {
                        returned[offset as usize] = true;
                    }
                }
            }
            for (count, hit) in entry.1.iter_mut().zip(returned) {
                *count += u64::from(hit);
            }
        }
    }

    fn merge(&self, state: &mut RetentionState, other: RetentionState) {
        for (cohort, (customers, returned)) in other {
            let entry = state
                .entry(cohort)
                .or_insert_with(|| (0, vec![0; returned.len()]));
            entry.0 += customers;
            for (count, part) in entry.1.iter_mut().zip(returned) {
                *count += part;
            }
        }
    }

    fn finish(
        &self,
        state: RetentionState,
        journeys: &JourneySet,
        _runner: &crate::Runner,
    ) -> RetentionReport {
        let ordered: BTreeMap<i64, (u64, Vec<u64>)> = state.into_iter().collect();
        // The period of the data's last event: later periods of a cohort have not happened yet.
        let last = journeys
            .ts
            .iter()
            .copied()
            .max()
            .map(|ts| self.retention.period.index(ts));
        let cohorts = ordered
            .into_iter()
            .map(|(index, (customers, returned))| RetentionCohort {
                cohort: self.retention.period.label(index),
                customers,
                observed_periods: last.map_or(0, |last| {
                    (last - index).clamp(0, self.retention.periods as i64) as usize
                }),
                rates: returned
                    .iter()
                    .map(|count| *count as f64 / customers.max(1) as f64)
                    .collect(),
                returned,
            })
            .collect::<Vec<_>>();
        let customers: u64 = cohorts.iter().map(|cohort| cohort.customers).sum();
        // Period k over the cohorts old enough to have had it (what a retention curve shows): a recent cohort's
        // periods still to come would otherwise count as customers who did not come back.
        let overall = (0..=self.retention.periods)
            .map(|k| {
                let (returned, of) = cohorts
                    .iter()
                    .filter(|cohort| cohort.observed_periods >= k)
                    .fold((0u64, 0u64), |(returned, of), cohort| {
                        (returned + cohort.returned[k], of + cohort.customers)
                    });
                (of > 0).then(|| returned as f64 / of as f64)
            })
            .collect();
        RetentionReport {
            period: self.retention.period,
            periods: self.retention.periods,
            mode: self.retention.mode,
            customers,
            overall,
            cohorts,
            warnings: self.warnings.clone(),
        }
    }
}

/// One cohort's row of the matrix.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct RetentionCohort {
    /// The first day of the cohort's period (`YYYY-MM-DD`).
    pub cohort: String,
    pub customers: u64,
    /// Periods after the cohort's own that the data reaches (the last event's period minus the cohort's): rates of
    /// later periods are 0 because those periods have not happened, not because nobody came back.
    pub observed_periods: usize,
    /// Customers who returned in period k after the cohort's (k = 0: the same period, after starting).
    pub returned: Vec<u64>,
    pub rates: Vec<f64>,
}

/// JSON `{"period", "periods", "mode", "customers", "overall", "cohorts": [...]}`.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct RetentionReport {
    pub period: Period,
    pub periods: usize,
    pub mode: RetentionMode,
    /// Customers in the cohorts (recurring: cohort memberships, a customer counted once per cohort).
    pub customers: u64,
    /// Share returning in period k of the customers of the cohorts the data reaches period k for; `null` when it
    /// reaches it for none.
    pub overall: Vec<Option<f64>>,
    pub cohorts: Vec<RetentionCohort>,
    /// What to check in the query: a start or return step named like no step in the data.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run;

    const DAY: i64 = 86_400_000_000;

    #[test]
    fn periods_index_and_label_calendar_days_weeks_and_months() {
        // 2026-08-05 is a Wednesday.
        let ts = DateTime::parse_from_rfc3339("2026-08-05T13:00:00Z")
            .unwrap()
            .timestamp_micros();
        assert_eq!(Period::Day.label(Period::Day.index(ts)), "2026-08-05");
        assert_eq!(Period::Week.label(Period::Week.index(ts)), "2026-08-03");
        assert_eq!(Period::Month.label(Period::Month.index(ts)), "2026-08-01");
        assert_eq!(Period::Week.index(ts + 5 * DAY) - Period::Week.index(ts), 1);
    }

    /// PostHog's two kinds on one hand-computed case, daily periods: ann starts on days 0 and 2 and comes back on
    /// days 1 and 3; bob starts on day 1 and comes back on day 2.
    #[test]
    fn first_time_and_recurring_cohorts_like_posthog() {
        let journeys = JourneySet::from_journeys([
            (
                "ann".to_string(),
                vec![
                    (0, "start", "web"),
                    (DAY + 1, "back", "web"),
                    (2 * DAY, "start", "web"),
                    (3 * DAY, "back", "web"),
                ],
            ),
            (
                "bob".to_string(),
                vec![(DAY, "start", "web"), (2 * DAY + 5, "back", "web")],
            ),
        ]);
        let mut retention = Retention {
            start: Condition::step("start"),
            returning: Condition::step("back"),
            period: Period::Day,
            periods: 3,
            mode: RetentionMode::FirstTime,
        };
        let cells = |report: &RetentionReport| -> Vec<(String, u64, Vec<u64>)> {
            report
                .cohorts
                .iter()
                .map(|c| (c.cohort.clone(), c.customers, c.returned.clone()))
                .collect()
        };
        let first = run(&retention.prepare(&journeys).unwrap(), &journeys, 1);
        // First time: ann in day 0 only (back on days 1 and 3), bob in day 1 (back on day 2, his +1).
        assert_eq!(
            cells(&first),
            [
                ("1970-01-01".to_string(), 1, vec![0, 1, 0, 1]),
                ("1970-01-02".to_string(), 1, vec![0, 1, 0, 0]),
            ]
        );
        retention.mode = RetentionMode::Recurring;
        let recurring = run(&retention.prepare(&journeys).unwrap(), &journeys, 1);
        // Recurring: ann is in day 0's cohort and in day 2's too (back on day 3, her +1 there).
        assert_eq!(
            cells(&recurring),
            [
                ("1970-01-01".to_string(), 1, vec![0, 1, 0, 1]),
                ("1970-01-02".to_string(), 1, vec![0, 1, 0, 0]),
                ("1970-01-03".to_string(), 1, vec![0, 1, 0, 0]),
            ]
        );
        assert_eq!(recurring.customers, 3, "cohort memberships, not people");
    }

    #[test]
    fn cohorts_count_returns_per_period() {
        let journeys = JourneySet::from_journeys([
            (
                "a".to_string(),
                vec![
                    (0, "signup", "web"),
                    (DAY / 2, "visit", "web"),
                    (2 * DAY, "visit", "app"),
                ],
            ),
            (
                "b".to_string(),
                vec![(DAY / 4, "signup", "web"), (3 * DAY, "visit", "web")],
            ),
            ("c".to_string(), vec![(DAY, "signup", "web")]),
            ("d".to_string(), vec![(0, "visit", "web")]),
        ]);
        let retention = Retention {
            start: Condition::step("signup"),
            returning: Condition::step("visit"),
            period: Period::Day,
            periods: 3,
            mode: RetentionMode::FirstTime,
        };
        let report = run(&retention.prepare(&journeys).unwrap(), &journeys, 2);
        assert_eq!(report.customers, 3);
        assert!(report.warnings.is_empty());
        let typo = Retention {
            returning: Condition::step("visits"),
            ..retention.clone()
        };
        assert_eq!(
            run(&typo.prepare(&journeys).unwrap(), &journeys, 2).warnings,
            ["The return step \"visits\" matches no step in the data (names are matched exactly, `*` as a wildcard); did you mean \"visit\"?"]
        );
        assert_eq!(report.cohorts[0].cohort, "1970-01-01");
        assert_eq!(
            (
                report.cohorts[0].customers,
                report.cohorts[0].returned.clone()
            ),
            (2, vec![1, 0, 1, 1])
        );
        assert_eq!(
            (
                report.cohorts[1].customers,
                report.cohorts[1].returned.clone()
            ),
            (1, vec![0, 0, 0, 0])
        );
    }

    #[test]
    fn periods_the_data_does_not_reach_are_not_counted_as_losses() {
        let journeys = JourneySet::from_journeys([
            (
                "a".to_string(),
                vec![(0, "start", "web"), (DAY + 5, "back", "web")],
            ),
            ("b".to_string(), vec![(2 * DAY, "start", "web")]),
        ]);
        let retention = Retention {
            start: Condition::step("start"),
            returning: Condition::step("back"),
            period: Period::Day,
            periods: 3,
            mode: RetentionMode::FirstTime,
        };
        let report = run(&retention.prepare(&journeys).unwrap(), &journeys, 2);
        let observed: Vec<usize> = report.cohorts.iter().map(|c| c.observed_periods).collect();
        assert_eq!(
            observed,
            [2, 0],
            "day 0's cohort is seen for two more days, day 2's for none"
        );
        // Day +1 counts only the first cohort (the second has not had a day +1), day +3 no cohort.
        assert_eq!(report.overall, [Some(0.0), Some(1.0), Some(0.0), None]);
    }
}
