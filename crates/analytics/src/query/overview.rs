//! `overview`: customers, events, channels, devices and goal rate — the UI's first page.

use super::{goals_or_usual, run_plan, DataInfo, Query, Scope, Spec};
use crate::{AnalyticsError, Condition, Overview, OverviewReport, Runner};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt::Write;
use waymark_model::JourneySet;

/// Where Segment sources put the device type: the overview's default device property.
pub const DEVICE_PROPERTY: &str = "context.device.type";

/// `overview` options. JSON: `{"goals", "device_property", "filter"}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OverviewRequest {
    /// Goal steps for the goal rate; default: the first of the usual goal names found in the data.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub goals: Vec<String>,
    /// The property naming a customer's device (default `context.device.type`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_property: Option<String>,
    #[serde(default)]
    pub filter: Scope,
}

impl Spec for Overview {
    type Report = OverviewReport;
    fn properties(&self) -> Vec<String> {
        let mut names: Vec<String> = self.device_property.iter().cloned().collect();
        for goal in &self.goals {
            goal.properties(&mut names);
        }
        names
    }
    fn run(
        &self,
        journeys: &JourneySet,
        runner: &Runner,
    ) -> Result<OverviewReport, AnalyticsError> {
        run_plan(self.prepare(journeys), journeys, runner)
    }
}

impl Query for OverviewRequest {
    const NAME: &'static str = "overview";
    const HELP: &'static str = "Customers, events, goal rate, channels and devices, and activity per day: the first look at a store.";
    const EXAMPLE: &'static str = "--goal \"Order Completed\"";
    const FLAGS: &'static [super::Flag] = &[super::Flag::alias("goal", "goals")];
    type Report = OverviewReport;
    type Spec = Overview;

    fn scope(&self) -> &Scope {
        &self.filter
    }

    fn spec(&self, data: &DataInfo<'_>) -> Result<Overview, AnalyticsError> {
        Ok(Overview {
            device_property: Some(
                self.device_property
                    .clone()
                    .unwrap_or_else(|| DEVICE_PROPERTY.to_string()),
            ),
            goals: goals_or_usual(&self.goals, data.step_names)
                .into_iter()
                .map(Condition::step)
                .collect(),
        })
    }

    fn text(&self, report: &OverviewReport, rows: usize) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} customers, {} events; {:.1}% reach the goal ({} customers; goals: {})",
            report.customers,
            report.events,
            report.goal_rate * 100.0,
            report.goal_customers,
            if self.goals.is_empty() {
                "the usual goal names".to_string()
            } else {
                self.goals.join(" or ")
            }
        );
        let _ = writeln!(
            out,
            "
{:<16}  {:>10}  {:>10}",
            "channel", "events", "customers"
        );
        for channel in report.channels.iter().take(rows) {
            let _ = writeln!(
                out,
                "{:<16}  {:>10}  {:>10}",
                channel.channel, channel.events, channel.customers
            );
        }
        if !report.devices.is_empty() {
            let _ = writeln!(
                out,
                "
{:<16}  {:>10}",
                "device", "customers"
            );
            for device in report.devices.iter().take(rows) {
                let _ = writeln!(out, "{:<16}  {:>10}", device.device, device.customers);
            }
        }
        if let (Some(first), Some(last)) = (report.days.first(), report.days.last()) {
            let _ = writeln!(
                out,
                "
{} active days from {} to {} (--json for events per day)",
                report.days.len(),
                first.day,
                last.day
            );
        }
        out
    }
}
