//! The overview: customers and events, per channel and per device, and events per day by channel — what the UI's
//! first page shows. Devices come from an optional property column (`context.device.type` by default).

use crate::condition::{Compiled, Condition};
use crate::error::AnalyticsError;
use crate::Analysis;
use serde::Serialize;
use std::collections::BTreeMap;
use waymark_model::{JourneyRef, JourneySet};

const DAY_US: i64 = 86_400_000_000;

/// Events per name (channel or device) on one day.
type Counts = BTreeMap<String, u64>;

/// The overview query.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Overview {
    /// The device property column's name, when loaded.
    pub device_property: Option<String>,
    /// Goal steps, for the goal rate.
    pub goals: Vec<Condition>,
}

/// Partial overview.
#[derive(Debug, Clone, Default)]
pub struct OverviewState {
    customers: u64,
    events: u64,
    goal_customers: u64,
    /// Per channel code: events, customers.
    channels: Vec<(u64, u64)>,
    /// Per device value code: customers.
    devices: BTreeMap<u32, u64>,
    /// (day, channel) → events.
    days: BTreeMap<(i64, u16), u64>,
    /// (day, device value code) → events.
    device_days: BTreeMap<(i64, u32), u64>,
    /// Day → customers active that day.
    active: BTreeMap<i64, u64>,
}

/// An overview bound to a journey set.
pub struct PreparedOverview<'o> {
    device_column: Option<usize>,
    goals: Vec<Compiled>,
    overview: &'o Overview,
}

impl Overview {
    pub fn prepare<'o>(
        &'o self,
        journeys: &JourneySet,
    ) -> Result<PreparedOverview<'o>, AnalyticsError> {
        Ok(PreparedOverview {
            device_column: self.device_property.as_ref().and_then(|name| {
                journeys
                    .properties
                    .iter()
                    .position(|column| &column.name == name)
            }),
            goals: self
                .goals
                .iter()
                .map(|goal| goal.compile(journeys))
                .collect::<Result<_, _>>()?,
            overview: self,
        })
    }
}

impl Analysis for PreparedOverview<'_> {
    type State = OverviewState;
    type Report = OverviewReport;

    fn new_state(&self, journeys: &JourneySet) -> OverviewState {
        OverviewState {
            channels: vec![(0, 0); journeys.channel_names.len()],
            ..OverviewState::default()
        }
    }

    fn update(&self, state: &mut OverviewState, journey: JourneyRef<'_>) {
        if journey.is_empty() {
            return;
        }
        let set = journey.set;
        state.customers += 1;
        state.events += journey.len() as u64;
        let range = journey.start..journey.start + journey.len();
        if range
            .clone()
            .any(|event| self.goals.iter().any(|goal| goal.matches(set, event)))
        {
            state.goal_customers += 1;
        }
        let mut seen_channels: Vec<u16> = Vec::new();
        // Events are in time order, so the days a customer is active come in order too.
        let mut last_day = None;
        for ts in journey.ts {
            let day = ts.div_euclid(DAY_US);
            if last_day != Some(day) {
                *state.active.entry(day).or_default() += 1;
                last_day = Some(day);
            }
        }
        for (channel, ts) in journey.channel.iter().zip(journey.ts) {
            state.channels[*channel as usize].0 += 1;
            if !seen_channels.contains(channel) {
                seen_channels.push(*channel);
                state.channels[*channel as usize].1 += 1;
            }
            *state
                .days
                .entry((ts.div_euclid(DAY_US), *channel))
                .or_default() += 1;
        }
        if let Some(column) = self.device_column {
            let mut seen: Vec<u32> = Vec::new();
            for event in range {
                let code = set.properties[column].codes[event];
                if code != 0 {
                    *state
                        .device_days
                        .entry((set.ts[event].div_euclid(DAY_US), code))
                        .or_default() += 1;
                }
                if code != 0 && !seen.contains(&code) {
                    seen.push(code);
                    *state.devices.entry(code).or_default() += 1;
                }
            }
        }
    }

    fn merge(&self, state: &mut OverviewState, other: OverviewState) {
        state.customers += other.customers;
        state.events += other.events;
        state.goal_customers += other.goal_customers;
        for (into, from) in state.channels.iter_mut().zip(other.channels) {
            into.0 += from.0;
            into.1 += from.1;
        }
        for (code, count) in other.devices {
            *state.devices.entry(code).or_default() += count;
        }
        for (key, count) in other.days {
            *state.days.entry(key).or_default() += count;
        }
        for (key, count) in other.device_days {
            *state.device_days.entry(key).or_default() += count;
        }
        for (day, count) in other.active {
            *state.active.entry(day).or_default() += count;
        }
    }

    fn finish(
        &self,
        state: OverviewState,
        journeys: &JourneySet,
        _runner: &crate::Runner,
    ) -> OverviewReport {
        let channels = state
            .channels
            .iter()
            .enumerate()
            .filter(|(_, (events, _))| *events > 0)
            .map(|(code, (events, customers))| ChannelCount {
                channel: journeys.channel_names[code].clone(),
                events: *events,
                customers: *customers,
            })
            .collect();
        let devices = self
            .device_column
            .map(|column| {
                let values = &journeys.properties[column].values;
                let mut devices: Vec<DeviceCount> = state
                    .devices
                    .iter()
                    .map(|(code, customers)| DeviceCount {
                        device: values[*code as usize]
                            .as_str()
                            .map_or_else(|| values[*code as usize].to_string(), String::from),
                        customers: *customers,
                    })
                    .collect();
                devices.sort_by(|a, b| {
                    b.customers
                        .cmp(&a.customers)
                        .then_with(|| a.device.cmp(&b.device))
                });
                devices
            })
            .unwrap_or_default();
        let mut days: BTreeMap<i64, (Counts, Counts)> = BTreeMap::new();
        for ((day, channel), count) in &state.days {
            days.entry(*day)
                .or_default()
                .0
                .insert(journeys.channel_names[*channel as usize].clone(), *count);
        }
        if let Some(column) = self.device_column {
            let values = &journeys.properties[column].values;
            for ((day, code), count) in &state.device_days {
                let name = values[*code as usize]
                    .as_str()
                    .map_or_else(|| values[*code as usize].to_string(), String::from);
                days.entry(*day).or_default().1.insert(name, *count);
            }
        }
        OverviewReport {
            goals: self.overview.goals.iter().map(Condition::label).collect(),
            customers: state.customers,
            events: state.events,
            goal_customers: state.goal_customers,
            goal_rate: if state.customers == 0 {
                0.0
            } else {
                state.goal_customers as f64 / state.customers as f64
            },
            channels,
            devices,
            days: days
                .into_iter()
                .map(|(day, (channels, devices))| DayCount {
                    day: chrono::DateTime::from_timestamp(day * 86_400, 0)
                        .unwrap_or_default()
                        .format("%Y-%m-%d")
                        .to_string(),
                    customers: state.active.get(&day).copied().unwrap_or(0),
                    channels,
                    devices,
                })
                .collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct ChannelCount {
    pub channel: String,
    pub events: u64,
    pub customers: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct DeviceCount {
    pub device: String,
    pub customers: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct DayCount {
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    /// Customers with at least one event that day.
    pub customers: u64,
    /// Events per channel that day.
    pub channels: BTreeMap<String, u64>,
    /// Events per device that day (when the device property is known).
    pub devices: BTreeMap<String, u64>,
}

/// JSON `{"customers", "events", "goal_customers", "goal_rate", "channels", "devices", "days"}`.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct OverviewReport {
    /// The goal steps the goal rate counts (empty: none given and none of the usual goal names is in the data).
    pub goals: Vec<String>,
    pub customers: u64,
    pub events: u64,
    pub goal_customers: u64,
    pub goal_rate: f64,
    pub channels: Vec<ChannelCount>,
    pub devices: Vec<DeviceCount>,
    pub days: Vec<DayCount>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run;

    #[test]
    fn counts_channels_days_and_goal_rate() {
        let journeys = JourneySet::from_journeys([
            (
                "a".to_string(),
                vec![(0, "view", "web"), (DAY_US + 1, "buy", "app")],
            ),
            (
                "b".to_string(),
                vec![(5, "view", "web"), (6, "view", "web")],
            ),
        ]);
        let overview = Overview {
            device_property: None,
            goals: vec![Condition::step("buy")],
        };
        let report = run(&overview.prepare(&journeys).unwrap(), &journeys, 2);
        assert_eq!(
            (report.customers, report.events, report.goal_rate),
            (2, 4, 0.5)
        );
        assert_eq!(
            report.channels[0],
            ChannelCount {
                channel: "web".into(),
                events: 3,
                customers: 2
            }
        );
        assert_eq!(report.days.len(), 2);
        assert_eq!(report.days[0].day, "1970-01-01");
        assert_eq!(report.days[1].channels["app"], 1);
        assert_eq!((report.days[0].customers, report.days[1].customers), (2, 1));
    }
}
