//! KPI monitors: a metric over a sliding window, read every `every` along the journeys' history, and judged
//! against a threshold or against its own history at the same time of the week (day-of-week seasonality).
//!
//! Readings are made at the ends of `every`-long buckets aligned to the epoch (UTC), each over the `window` that
//! ends there. A conversion is read `within` late: the window then holds only starts whose time to convert has
//! passed, so a reading never changes once made.

use crate::condition::Condition;
use crate::AnalyticsError;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;
use waymark_model::JourneySet;

const WEEK: i64 = 7 * 86_400_000_000;

/// What a monitor measures.
#[derive(Debug, Clone, PartialEq)]
pub enum Metric {
    /// Events matching `events` per event matching `of` (a step's failure rate: failures per attempt).
    Rate { events: Condition, of: Condition },
    /// Events matching `events`.
    Count { events: Condition },
    /// The mean of `property` over events matching `events` (true counts 1, false 0): average feedback.
    Mean { events: Condition, property: String },
    /// Of the events matching `from`, the share followed in the same journey by one matching `to` within
    /// `within` µs: a funnel's conversion.
    Conversion {
        from: Condition,
        to: Condition,
        within: i64,
    },
}

/// A monitor's series: the metric, an optional condition every counted event must meet, the window and the
/// reading interval (µs; `window` a multiple of `every`).
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesSpec {
    pub metric: Metric,
    pub filter: Option<Condition>,
    pub window: i64,
    pub every: i64,
}

/// One reading: the metric over the window ending at `at`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, JsonSchema)]
pub struct Reading {
    /// The window's end, µs.
    pub at: i64,
    /// `None` when nothing was counted (a rate or mean of no events).
    pub value: Option<f64>,
    /// The events the value rests on: the denominator of a rate or conversion, the events of a count or mean.
    pub events: u64,
}

/// How a reading is judged.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Test {
    /// Alert when the value exceeds this.
    Above(f64),
    /// Alert when the value falls below this.
    Below(f64),
    /// Alert when the value leaves `expected ± sd × spread`, expected and spread from the readings at the same
    /// time of the week in the previous `weeks` weeks (every one of them judged).
    Anomaly {
        sd: f64,
        weeks: usize,
        direction: Direction,
    },
}

/// Which departures from the expected value an anomaly test alerts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Above,
    Below,
    Both,
}

/// A judged reading.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, JsonSchema)]
pub struct Judged {
    #[serde(flatten)]
    pub reading: Reading,
    /// What the anomaly test expected, and the band it allowed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub low: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub high: Option<f64>,
    /// Whether the reading was judged (enough events, enough history).
    pub judged: bool,
    /// In alert: this reading, or the last judged one before it, broke the test.
    pub alert: bool,
    /// An alert begins here: the moment the monitor fires.
    pub fired: bool,
}

/// The noise a reading has anyway, the least spread an anomaly test allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Noise {
    /// A share of events: binomial.
    Share,
    /// A count: Poisson.
    Count,
    /// Anything else: a twentieth of its level.
    Level,
}

impl SeriesSpec {
    /// The noise of this metric's readings.
    pub fn noise(&self) -> Noise {
        match self.metric {
            Metric::Rate { .. } | Metric::Conversion { .. } => Noise::Share,
            Metric::Count { .. } => Noise::Count,
            Metric::Mean { .. } => Noise::Level,
        }
    }

    /// The property columns the series reads.
    pub fn properties(&self) -> Vec<String> {
        let mut names = Vec::new();
        let conditions: Vec<&Condition> = match &self.metric {
            Metric::Rate { events, of } => vec![events, of],
            Metric::Count { events } => vec![events],
            Metric::Mean { events, property } => {
                names.push(property.clone());
                vec![events]
            }
            Metric::Conversion { from, to, .. } => vec![from, to],
        };
        for condition in conditions.into_iter().chain(&self.filter) {
            condition.properties(&mut names);
        }
        names.sort();
        names.dedup();
        names
    }

    /// The readings from the bucket holding `start` to the last whose window has ended by `end` (µs).
    pub fn series(
        &self,
        journeys: &JourneySet,
        start: i64,
        end: i64,
    ) -> Result<Vec<Reading>, AnalyticsError> {
        if self.every <= 0 || self.window < self.every || self.window % self.every != 0 {
            return Err(AnalyticsError::field(
                "window",
                "the window must be a whole number of reading intervals (`every`)",
            ));
        }
        let every = self.every;
        let origin = start.div_euclid(every) * every;
        let lag = match self.metric {
            Metric::Conversion { within, .. } => (within + every - 1).div_euclid(every),
            _ => 0,
        };
        // Readings at origin + (k + 1)·every for every k whose window (shifted by the lag) has ended by `end`.
        let n_readings = ((end - origin).div_euclid(every) - lag).max(0) as usize;
        if n_readings == 0 {
            return Ok(Vec::new());
        }
        let n_buckets = n_readings;
        let mut numerator = vec![0.0f64; n_buckets];
        let mut denominator = vec![0u64; n_buckets];
        let bucket = |t: i64| -> Option<usize> {
            let b = (t - origin).div_euclid(every);
            (0..n_buckets as i64).contains(&b).then_some(b as usize)
        };
        let filter = self
            .filter
            .as_ref()
            .map(|f| f.compile(journeys))
            .transpose()?;
        let passes = |event: usize| filter.as_ref().is_none_or(|f| f.matches(journeys, event));
        match &self.metric {
            Metric::Rate { events, of } => {
                let (events, of) = (events.compile(journeys)?, of.compile(journeys)?);
                for event in 0..journeys.ts.len() {
                    let Some(b) = bucket(journeys.ts[event]) else {
                        continue;
                    };
                    if !passes(event) {
                        continue;
                    }
                    if events.matches(journeys, event) {
                        numerator[b] += 1.0;
                    }
                    if of.matches(journeys, event) {
                        denominator[b] += 1;
                    }
                }
            }
            Metric::Count { events } => {
                let events = events.compile(journeys)?;
                for event in 0..journeys.ts.len() {
                    if let Some(b) = bucket(journeys.ts[event]) {
                        if passes(event) && events.matches(journeys, event) {
                            numerator[b] += 1.0;
                            denominator[b] += 1;
                        }
                    }
                }
            }
            Metric::Mean { events, property } => {
                let events = events.compile(journeys)?;
                let column = journeys.property(property).ok_or_else(|| {
                    AnalyticsError::condition(format!(
                        "property `{property}` was not loaded for this query"
                    ))
                })?;
                for event in 0..journeys.ts.len() {
                    let Some(b) = bucket(journeys.ts[event]) else {
                        continue;
                    };
                    if !passes(event) || !events.matches(journeys, event) {
                        continue;
                    }
                    let value = match column.value(event) {
                        Value::Bool(true) => Some(1.0),
                        Value::Bool(false) => Some(0.0),
                        Value::Number(n) => n.as_f64(),
                        Value::String(s) => s.trim().parse().ok(),
                        _ => None,
                    };
                    if let Some(value) = value {
                        numerator[b] += value;
                        denominator[b] += 1;
                    }
                }
            }
            Metric::Conversion { from, to, within } => {
                let (from, to) = (from.compile(journeys)?, to.compile(journeys)?);
                for journey in 0..journeys.n_journeys() {
                    let (first, last) = (journeys.offsets[journey], journeys.offsets[journey + 1]);
                    // The time of the next `to` event after each position, scanning backwards.
                    let mut next_to = i64::MAX;
                    for event in (first..last).rev() {
                        let t = journeys.ts[event];
                        if from.matches(journeys, event) && passes(event) {
                            if let Some(b) = bucket(t) {
                                denominator[b] += 1;
                                if next_to != i64::MAX && next_to - t <= *within {
                                    numerator[b] += 1.0;
                                }
                            }
                        }
                        if to.matches(journeys, event) {
                            next_to = t;
                        }
                    }
                }
            }
        }
        let per_window = (self.window / every) as usize;
        let is_count = matches!(self.metric, Metric::Count { .. });
        let mut readings = Vec::with_capacity(n_readings);
        let (mut sum, mut count) = (0.0, 0u64);
        for k in 0..n_readings {
            sum += numerator[k];
            count += denominator[k];
            if k >= per_window {
                sum -= numerator[k - per_window];
                count -= denominator[k - per_window];
            }
            let value = if is_count {
                Some(sum)
            } else {
                (count > 0).then(|| sum / count as f64)
            };
            readings.push(Reading {
                at: origin + (k as i64 + 1 + lag) * every,
                value,
                events: count,
            });
        }
        Ok(readings)
    }
}

/// Judges `readings` (made every `every` µs) with `test`; readings resting on fewer than `min_events` events
/// are not judged and keep the alert state as it was. An alert ends only after `clear_after` judged readings in
/// a row pass the test, so a metric wavering about its threshold fires once, not at every crossing.
pub fn judge(
    readings: &[Reading],
    every: i64,
    test: Test,
    min_events: u64,
    noise: Noise,
    clear_after: usize,
) -> Vec<Judged> {
    let mut passes = 0usize;
    let enough = |r: &Reading| r.value.is_some() && r.events >= min_events;
    let week = (WEEK / every.max(1)) as usize;
    let mut alert = false;
    let mut out = Vec::with_capacity(readings.len());
    for (index, reading) in readings.iter().enumerate() {
        let mut judged = Judged {
            reading: *reading,
            expected: None,
            low: None,
            high: None,
            judged: false,
            alert,
            fired: false,
        };
        if enough(reading) {
            let value = reading.value.expect("enough readings have a value");
            let verdict = match test {
                Test::Above(limit) => Some(value > limit),
                Test::Below(limit) => Some(value < limit),
                Test::Anomaly {
                    sd,
                    weeks,
                    direction,
                } => {
                    let history: Option<Vec<f64>> = (1..=weeks)
                        .map(|k| {
                            let earlier = index.checked_sub(k * week)?;
                            let r = &readings[earlier];
                            enough(r).then(|| r.value.expect("judged"))
                        })
                        .collect();
                    history.filter(|h| h.len() >= 2).map(|history| {
                        let n = history.len() as f64;
                        let mean = history.iter().sum::<f64>() / n;
                        let spread = (history.iter().map(|v| (v - mean).powi(2)).sum::<f64>()
                            / (n - 1.0))
                            .sqrt();
                        // The noise a reading of this many events has anyway: binomial for a share, Poisson
                        // for a count, a twentieth of the level otherwise; a flat history cannot make it zero.
                        let floor = match noise {
                            Noise::Share => {
                                (mean * (1.0 - mean) / reading.events.max(1) as f64).sqrt()
                            }
                            Noise::Count => mean.max(1.0).sqrt(),
                            Noise::Level => 0.05 * mean.abs(),
                        };
                        let band = sd * spread.max(floor).max(1e-9);
                        judged.expected = Some(mean);
                        judged.low = Some(mean - band);
                        judged.high = Some(mean + band);
                        match direction {
                            Direction::Above => value > mean + band,
                            Direction::Below => value < mean - band,
                            Direction::Both => (value - mean).abs() > band,
                        }
                    })
                }
            };
            if let Some(broken) = verdict {
                judged.judged = true;
                judged.fired = broken && !alert;
                if broken {
                    passes = 0;
                    alert = true;
                } else {
                    passes += 1;
                    if passes >= clear_after.max(1) {
                        alert = false;
                    }
                }
                judged.alert = alert;
            }
        }
        out.push(judged);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000_000;

    fn journeys() -> JourneySet {
        // Two attempts an hour for 48 hours; between hours 30 and 34 every attempt fails, else one in four.
        let mut events = Vec::new();
        for h in 0..48i64 {
            for a in 0..4 {
                let t = h * HOUR + a * 600_000_000;
                events.push((t, "try", "app"));
                let fails = (30..34).contains(&h) || a == 0;
                if fails {
                    events.push((t + 1_000_000, "fail", "app"));
                } else {
                    events.push((t + 1_000_000, "done", "app"));
                }
            }
        }
        JourneySet::from_journeys([("ann".to_string(), events)])
    }

    fn rate(window: i64) -> SeriesSpec {
        SeriesSpec {
            metric: Metric::Rate {
                events: Condition::step("fail"),
                of: Condition::step("try"),
            },
            filter: None,
            window,
            every: HOUR,
        }
    }

    #[test]
    fn a_rate_is_read_over_its_sliding_window() {
        let set = journeys();
        let readings = rate(2 * HOUR).series(&set, 0, 48 * HOUR).unwrap();
        assert_eq!(readings.len(), 48);
        assert_eq!(readings[0].at, HOUR);
        assert_eq!((readings[0].value, readings[0].events), (Some(0.25), 4));
        assert_eq!(readings[1].events, 8);
        // Hours 30 and 31 all fail: the window ending at 32 h is all failures.
        assert_eq!(readings[31].value, Some(1.0));
        assert_eq!(readings[30].value, Some((4.0 + 1.0) / 8.0));
        let judged = judge(&readings, HOUR, Test::Above(0.5), 5, Noise::Share, 1);
        let fired: Vec<i64> = judged
            .iter()
            .filter(|j| j.fired)
            .map(|j| j.reading.at / HOUR)
            .collect();
        assert_eq!(
            fired,
            vec![31],
            "one alert, as the failures take over the window"
        );
        assert!(!judged[0].judged, "four events are too few");
        assert!(
            judged[34].alert && !judged[35].alert,
            "the alert ends with the failures' last hour"
        );
        // Cleared only after two passing readings in a row: a reading back above the line is the same alert.
        let mut wavering = readings.clone();
        wavering[36].value = Some(0.6);
        let judged = judge(&wavering, HOUR, Test::Above(0.5), 5, Noise::Share, 2);
        let fired: Vec<i64> = judged
            .iter()
            .filter(|j| j.fired)
            .map(|j| j.reading.at / HOUR)
            .collect();
        assert_eq!(fired, vec![31]);
        assert!(judged[35].alert && judged[37].alert && !judged[38].alert);
    }

    #[test]
    fn counts_means_and_conversions() {
        let set = journeys();
        let count = SeriesSpec {
            metric: Metric::Count {
                events: Condition::step("done"),
            },
            ..rate(HOUR)
        };
        let readings = count.series(&set, 0, 48 * HOUR).unwrap();
        assert_eq!(readings[0].value, Some(3.0));
        assert_eq!(readings[30].value, Some(0.0));
        // Conversion: a try followed by `done` within a minute; read a minute (one bucket) late.
        let conversion = SeriesSpec {
            metric: Metric::Conversion {
                from: Condition::step("try"),
                to: Condition::step("done"),
                within: 60_000_000,
            },
            ..rate(HOUR)
        };
        let readings = conversion.series(&set, 0, 48 * HOUR).unwrap();
        assert_eq!(readings.len(), 47);
        assert_eq!(
            readings[0].at,
            2 * HOUR,
            "the first hour's tries, read an hour on"
        );
        assert_eq!(readings[0].value, Some(0.75));
        assert_eq!(readings[30].value, Some(0.0));
        assert!(rate(90 * 60_000_000).series(&set, 0, HOUR).is_err());
    }

    #[test]
    fn anomalies_are_judged_against_the_same_hour_of_earlier_weeks() {
        let week = WEEK / HOUR;
        let readings: Vec<Reading> = (0..4 * week)
            .map(|k| Reading {
                at: (k + 1) * HOUR,
                // A weekly cycle (busy afternoons), then one odd hour in the fourth week.
                value: Some(if k == 3 * week + 15 {
                    0.8
                } else if k % 24 > 12 {
                    0.5
                } else {
                    0.2
                }),
                events: 400,
            })
            .collect();
        let test = Test::Anomaly {
            sd: 3.0,
            weeks: 3,
            direction: Direction::Both,
        };
        let judged = judge(&readings, HOUR, test, 20, Noise::Share, 1);
        assert!(
            judged[..3 * week as usize].iter().all(|j| !j.judged),
            "three weeks of history first"
        );
        let fired: Vec<usize> = judged
            .iter()
            .enumerate()
            .filter(|(_, j)| j.fired)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(
            fired,
            vec![3 * week as usize + 15],
            "the busy afternoons are expected, the odd hour not"
        );
        assert_eq!(judged[3 * week as usize + 15].expected, Some(0.5));
    }
}
