//! KPI monitors over the stored journeys: the board (each monitor's readings along the history, judged, with the
//! moments it fired) and the readings the rules worker checks as its clock advances. Both read the same series
//! (`waymark_analytics::monitor`), so the board shows what the worker fires on.

use crate::{Engine, Error};
use schemars::JsonSchema;
use serde::Serialize;
use waymark_analytics::monitor::{judge, Judged, Metric, Test};
use waymark_rules::monitors::Monitor;
use waymark_rules::RulesFile;

const WEEK: i64 = 7 * 86_400_000_000;

/// Every monitor of a definition set, read along the stored history.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct MonitorsReport {
    /// The latest event time (µs): the board's readings end there.
    pub data_end: i64,
    pub monitors: Vec<MonitorBoard>,
}

/// One monitor on the KPI board.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct MonitorBoard {
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// What it measures, in words.
    pub metric: String,
    /// When it fires, in words.
    pub test: String,
    pub window: String,
    pub every: String,
    /// Whether the latest judged reading is in alert.
    pub alert: bool,
    /// The moments it fired (µs), oldest first.
    pub fired: Vec<i64>,
    /// The latest reading.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last: Option<Judged>,
    pub readings: Vec<Judged>,
    /// The state in a sentence.
    pub headline: String,
}

impl Engine {
    /// The KPI board: every monitor of `file` (default: the definitions in force) read along the history.
    pub fn monitors_report(&self, file: Option<&RulesFile>) -> Result<MonitorsReport, Error> {
        let file = match file {
            Some(file) => file.clone(),
            None => self.rules_file()?,
        };
        let rules = self.compile_rules(&file)?;
        let journeys = self.journeys();
        let data_end = journeys.ts.iter().copied().max().unwrap_or(0);
        let data_start = journeys.ts.iter().copied().min().unwrap_or(0);
        let mut monitors = Vec::new();
        for monitor in &rules.set.monitors {
            let readings = self.monitor_readings(monitor, data_start, data_end)?;
            let fired: Vec<i64> = readings
                .iter()
                .filter(|j| j.fired)
                .map(|j| j.reading.at)
                .collect();
            let last = readings.last().copied();
            let alert = readings
                .iter()
                .rev()
                .find(|j| j.judged)
                .is_some_and(|j| j.alert);
            let headline = board_headline(monitor, &readings, &fired, alert);
            monitors.push(MonitorBoard {
                name: monitor.name.clone(),
                description: monitor.spec.description.clone(),
                metric: metric_words(monitor),
                test: test_words(monitor.test),
                window: monitor.spec.window.clone(),
                every: monitor.spec.every.clone(),
                alert,
                fired,
                last,
                readings,
                headline,
            });
        }
        Ok(MonitorsReport { data_end, monitors })
    }

    /// `monitor`'s judged readings from `start` to `end` (µs), with the history its test needs before `start`
    /// read but not returned.
    pub(crate) fn monitor_readings(
        &self,
        monitor: &Monitor,
        start: i64,
        end: i64,
    ) -> Result<Vec<Judged>, Error> {
        let journeys = self.store.journey_view(&monitor.series.properties())?;
        // Nothing is read before the first event (a fresh worker's clock starts at the beginning of time).
        let Some(data_start) = journeys.ts.iter().copied().min() else {
            return Ok(Vec::new());
        };
        let start = start.max(data_start);
        if end < start {
            return Ok(Vec::new());
        }
        let lookback = match monitor.test {
            Test::Anomaly { weeks, .. } => weeks as i64 * WEEK,
            _ => 0,
        } + monitor.series.window;
        let readings = monitor
            .series
            .series(&journeys, start.saturating_sub(lookback), end)?;
        let judged = judge(
            &readings,
            monitor.series.every,
            monitor.test,
            monitor.min_events,
            monitor.series.noise(),
            // Re-armed after a whole window of passing readings.
            (monitor.series.window / monitor.series.every) as usize,
        );
        // Readings before `start` only served as history.
        let first = start.div_euclid(monitor.series.every) * monitor.series.every;
        Ok(judged
            .into_iter()
            .filter(|j| j.reading.at > first)
            .collect())
    }
}

fn metric_words(monitor: &Monitor) -> String {
    let label = |c: &waymark_analytics::Condition| c.words();
    let base = match &monitor.series.metric {
        Metric::Rate { events, of } => format!("{} per {}", label(events), label(of)),
        Metric::Count { events } => format!("{} events", label(events)),
        Metric::Mean { events, property } => format!("mean {property} of {}", label(events)),
        Metric::Conversion { from, to, .. } => format!(
            "share of {} followed by {} within {}",
            label(from),
            label(to),
            monitor.spec.within.as_deref().unwrap_or_default()
        ),
    };
    let filtered = monitor
        .series
        .filter
        .as_ref()
        .map(|f| format!(" where {}", f.words()))
        .unwrap_or_default();
    format!("{base}{filtered}, over {}", monitor.spec.window)
}

fn test_words(test: Test) -> String {
    match test {
        Test::Above(limit) => format!("above {limit}"),
        Test::Below(limit) => format!("below {limit}"),
        Test::Anomaly {
            sd,
            weeks,
            direction,
        } => format!(
            "more than {sd} spreads {} the same hour of the previous {weeks} weeks",
            match direction {
                waymark_analytics::monitor::Direction::Above => "above",
                waymark_analytics::monitor::Direction::Below => "below",
                waymark_analytics::monitor::Direction::Both => "away from",
            }
        ),
    }
}

fn board_headline(monitor: &Monitor, readings: &[Judged], fired: &[i64], alert: bool) -> String {
    let day = |at: i64| waymark_model::Timestamp(at).to_rfc3339()[..16].replace('T', " ");
    let value = |j: &Judged| {
        j.reading
            .value
            .map(|v| format_value(&monitor.series.metric, v))
            .unwrap_or_else(|| "no data".into())
    };
    let latest = readings.iter().rev().find(|j| j.judged);
    match (alert, latest) {
        (true, Some(j)) => format!(
            "{} is in alert: {} at {} ({}), since {}",
            monitor.name,
            value(j),
            day(j.reading.at),
            test_words(monitor.test),
            fired.last().map(|at| day(*at)).unwrap_or_default()
        ),
        (false, Some(j)) if !fired.is_empty() => format!(
            "{} fired {} time{} (last at {}); now {} at {}",
            monitor.name,
            fired.len(),
            if fired.len() == 1 { "" } else { "s" },
            day(*fired.last().expect("not empty")),
            value(j),
            day(j.reading.at)
        ),
        (false, Some(j)) => format!(
            "{} never fired: now {} at {}",
            monitor.name,
            value(j),
            day(j.reading.at)
        ),
        (_, None) => format!(
            "{} has no judged reading yet (fewer than {} events per window{})",
            monitor.name,
            monitor.min_events,
            if matches!(monitor.test, Test::Anomaly { .. }) {
                ", or too little history"
            } else {
                ""
            }
        ),
    }
}

fn format_value(metric: &Metric, value: f64) -> String {
    match metric {
        Metric::Rate { .. } | Metric::Conversion { .. } => format!("{:.1}%", value * 100.0),
        Metric::Count { .. } => format!("{value:.0}"),
        Metric::Mean { .. } => format!("{value:.2}"),
    }
}
