//! `flows`: the Sankey after (or before) an anchor step.

use super::{run_plan, AnchorSpec, DataInfo, Flag, Query, Scope, Spec};
use crate::{AnalyticsError, Direction, Flows, FlowsReport, Runner};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use waymark_model::JourneySet;

/// `flows` options. JSON: `{"anchor", "direction", "depth", "top", "collapse_repeats", "filter"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FlowsRequest {
    /// A step name (or `*` pattern), or a condition.
    pub anchor: AnchorSpec,
    /// forward: what customers did after the anchor's first occurrence; backward: what led to its last.
    #[serde(default)]
    pub direction: Direction,
    /// Levels to follow.
    #[serde(default = "FlowsRequest::default_depth")]
    pub depth: usize,
    /// Steps shown per level; the rest are (other).
    #[serde(default = "FlowsRequest::default_top")]
    pub top: usize,
    /// Count a step repeated back to back once.
    #[serde(default)]
    pub collapse_repeats: bool,
    #[serde(default)]
    pub filter: Scope,
}

impl FlowsRequest {
    fn default_depth() -> usize {
        4
    }

    fn default_top() -> usize {
        6
    }

    /// Flows from (or to) the step `anchor`, everything else at its default.
    pub fn new(anchor: &str, direction: Direction) -> FlowsRequest {
        FlowsRequest {
            anchor: AnchorSpec::Name(anchor.into()),
            direction,
            ..FlowsRequest::default()
        }
    }
}

impl Default for FlowsRequest {
    fn default() -> FlowsRequest {
        FlowsRequest {
            anchor: AnchorSpec::default(),
            direction: Direction::Forward,
            depth: FlowsRequest::default_depth(),
            top: FlowsRequest::default_top(),
            collapse_repeats: false,
            filter: Scope::default(),
        }
    }
}

impl Spec for Flows {
    type Report = FlowsReport;
    fn properties(&self) -> Vec<String> {
        Flows::properties(self)
    }
    fn run(&self, journeys: &JourneySet, runner: &Runner) -> Result<FlowsReport, AnalyticsError> {
        run_plan(self.prepare(journeys), journeys, runner)
    }
}

impl Query for FlowsRequest {
    const NAME: &'static str = "flows";
    const HELP: &'static str =
        "Where customers go after a step (or how they got to it), level by level, with drop-off.";
    const EXAMPLE: &'static str = "--after \"Login Attempted\" --depth 4";
    const FLAGS: &'static [Flag] = &[
        Flag {
            name: "after",
            field: "anchor",
            presets: &[("direction", "\"forward\"")],
            help: "The anchor step: flows run forward from its first occurrence.",
        },
        Flag {
            name: "before",
            field: "anchor",
            presets: &[("direction", "\"backward\"")],
            help: "The anchor step: flows run backward from its last occurrence.",
        },
    ];
    type Report = FlowsReport;
    type Spec = Flows;

    fn scope(&self) -> &Scope {
        &self.filter
    }

    fn spec(&self, _data: &DataInfo<'_>) -> Result<Flows, AnalyticsError> {
        if matches!(&self.anchor, AnchorSpec::Name(name) if name.is_empty()) {
            return Err(AnalyticsError::field(
                "anchor",
                "anchor: name the step the flows start from (--after STEP or --before STEP)",
            ));
        }
        Ok(Flows {
            anchor: self.anchor.condition(),
            direction: self.direction,
            depth: self.depth,
            top: self.top,
            collapse_repeats: self.collapse_repeats,
        })
    }

    fn text(&self, report: &FlowsReport, _rows: usize) -> String {
        super::text::flows(report, &self.anchor.condition().label())
    }
}
