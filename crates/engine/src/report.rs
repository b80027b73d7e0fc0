//! The analyses one self-contained HTML report shows (`waymark report`): overview, friction, moments of truth,
//! attribution, journey map, process map and a funnel, with defaults read from the data when not given.

use crate::{Engine, Error};
use serde_json::{json, Value};
use waymark_analytics::{
    AttributionRequest, Direction, FlowsRequest, FrictionRequest, FunnelRequest, MomentsRequest,
    OverviewRequest, ProcessMapRequest,
};
use waymark_model::Timestamp;

/// What a report shows beyond its defaults.
#[derive(Debug, Clone, Default)]
pub struct ReportOptions {
    /// The goal of friction, moments of truth, attribution and the funnel's last step (default: the first of the
    /// usual goal names the data has).
    pub goals: Vec<String>,
    /// Funnel steps, in order (default: the most common first step, then the goal).
    pub funnel_steps: Vec<String>,
    /// Funnel window (default 7d).
    pub window: Option<String>,
    /// The journey map's anchor (default: the most common first step).
    pub anchor: Option<String>,
}

impl Engine {
    /// The report's analyses as one JSON document (the UI renders it offline).
    pub fn report(&self, options: &ReportOptions) -> Result<Value, Error> {
        if self.stats().events == 0 {
            return Err(Error::Malformed(format!(
                "the store in {} holds no events: import or collect some first",
                self.dir().display()
            )));
        }
        let overview = self.analyse(&OverviewRequest::default())?;
        let map = self.analyse(&ProcessMapRequest {
            precedence: true,
            ..ProcessMapRequest::default()
        })?;
        let first_step = map
            .start
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
            .map(|(step, _)| step.clone())
            .unwrap_or_default();
        let friction = self.analyse(&FrictionRequest {
            goals: options.goals.clone(),
            top: Some(10),
            ..Default::default()
        })?;
        let anchor = options.anchor.clone().unwrap_or_else(|| first_step.clone());
        let flows = self.analyse(&FlowsRequest::new(&anchor, Direction::Forward))?;
        let steps: Vec<String> = if options.funnel_steps.is_empty() {
            let mut steps = vec![first_step];
            steps.extend(friction.goals.iter().cloned());
            steps
        } else {
            options.funnel_steps.clone()
        };
        let window = options
            .window
            .clone()
            .unwrap_or_else(|| FunnelRequest::default().window);
        let funnel = self.analyse(&FunnelRequest::new(
            &steps.iter().map(String::as_str).collect::<Vec<_>>(),
            &window,
        ))?;
        let moments = self.analyse(&MomentsRequest {
            goals: friction.goals.clone(),
            top: 8,
            ..MomentsRequest::default()
        })?;
        let attribution = self.analyse(&AttributionRequest {
            goals: friction.goals.clone(),
            ..AttributionRequest::default()
        })?;
        Ok(json!({
            "generated_at": Timestamp::now(),
            "overview": overview,
            "friction": friction,
            "moments": moments,
            "attribution": attribution,
            "flows": flows,
            "flows_anchor": anchor,
            "process_map": map,
            "funnel": funnel,
            "funnel_window": window,
        }))
    }
}
