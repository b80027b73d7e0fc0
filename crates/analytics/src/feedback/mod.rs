//! `feedback`: satisfaction per step — "was this helpful?", ratings, CSAT and NPS — on the step each answer rates,
//! per channel and (with a blueprint) per stage, with the comments searchable per step.
//!
//! A feedback event is any event with a feedback field (settable: `helpful`, `rating`/`csat`, `nps`, `comment`).
//! It rates the step its `rated_step` property names (the latest earlier event of that step is the instance
//! rated, and its channel the channel), else the customer's previous step that is not feedback itself.
//!
//! The measures are their owners' definitions: **CSAT** (the American Customer Satisfaction Index's top-two-box
//! form) is the share of ratings at or above `satisfied_from` on the rating scale (4 and 5 of 1–5); **NPS**
//! (Reichheld, Bain & Company) is the share of promoters (9–10 on 0–10) minus the share of detractors (0–6), ×100.

use crate::blueprint::{BlueprintRef, CompiledBlueprint};
use crate::query::{run_plan, DataInfo, Query, Scope, Spec};
use crate::{Analysis, AnalyticsError, Runner};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write;
use waymark_model::{JourneyRef, JourneySet, Timestamp};

/// `feedback` options. Every field name is settable, for any business's survey tool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedbackRequest {
    /// The yes/no property of "was this helpful?" (true/false, yes/no).
    #[serde(default = "FeedbackRequest::default_helpful")]
    pub helpful_property: String,
    /// Rating properties, the first present counting (numbers on the `rating_scale`).
    #[serde(default = "FeedbackRequest::default_ratings")]
    pub rating_properties: Vec<String>,
    /// The top of the rating scale (5: ratings 1–5).
    #[serde(default = "FeedbackRequest::default_scale")]
    pub rating_scale: f64,
    /// Ratings at or above this are satisfied, for CSAT (default 4 of 5).
    #[serde(default = "FeedbackRequest::default_satisfied")]
    pub satisfied_from: f64,
    /// The likelihood-to-recommend property, 0–10.
    #[serde(default = "FeedbackRequest::default_nps")]
    pub nps_property: String,
    /// The free-text comment property.
    #[serde(default = "FeedbackRequest::default_comment")]
    pub comment_property: String,
    /// The property naming the step an answer rates (else the previous step).
    #[serde(default = "FeedbackRequest::default_rated_step")]
    pub rated_step_property: String,
    /// Comments listed per step are those containing this text (case-insensitive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<String>,
    /// Comments listed per step, latest first (default 5).
    #[serde(default = "FeedbackRequest::default_comments")]
    pub comments: usize,
    /// With a blueprint (a saved one's name, or one given), satisfaction per stage too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blueprint: Option<BlueprintRef>,
    /// Steps listed, most answers first (default 30).
    #[serde(default = "FeedbackRequest::default_top")]
    pub top: usize,
    #[serde(default)]
    pub filter: Scope,
}

impl FeedbackRequest {
    fn default_helpful() -> String {
        "helpful".into()
    }
    fn default_ratings() -> Vec<String> {
        vec!["rating".into(), "csat".into()]
    }
    fn default_scale() -> f64 {
        5.0
    }
    fn default_satisfied() -> f64 {
        4.0
    }
    fn default_nps() -> String {
        "nps".into()
    }
    fn default_comment() -> String {
        "comment".into()
    }
    fn default_rated_step() -> String {
        "rated_step".into()
    }
    fn default_comments() -> usize {
        5
    }
    fn default_top() -> usize {
        30
    }
}

/// One event's answer, read with a request's field names: what the customer page shows beside the step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, JsonSchema)]
pub struct EventFeedback {
    /// "Was this helpful?": yes or no.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub helpful: Option<bool>,
    /// The first rating property present, on the rating scale.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rating: Option<f64>,
    /// The rating scale's top (5: 1–5), when there is a rating.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rating_scale: Option<f64>,
    /// Likelihood to recommend, 0–10.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nps: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// The step it rates, when the answer names it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rated_step: Option<String>,
}

impl FeedbackRequest {
    /// The feedback an event's properties carry under this request's field names; `None` when it carries none.
    pub fn answer(&self, properties: &serde_json::Map<String, Value>) -> Option<EventFeedback> {
        let helpful = properties.get(&self.helpful_property).and_then(truthy);
        let rating = self
            .rating_properties
            .iter()
            .find_map(|name| properties.get(name).and_then(number));
        let nps = properties.get(&self.nps_property).and_then(number);
        let comment = properties
            .get(&self.comment_property)
            .and_then(Value::as_str)
            .filter(|text| !text.trim().is_empty())
            .map(str::to_string);
        if helpful.is_none() && rating.is_none() && nps.is_none() && comment.is_none() {
            return None;
        }
        Some(EventFeedback {
            helpful,
            rating,
            rating_scale: rating.map(|_| self.rating_scale),
            nps,
            comment,
            rated_step: properties
                .get(&self.rated_step_property)
                .and_then(Value::as_str)
                .map(str::to_string),
        })
    }
}

impl Default for FeedbackRequest {
    fn default() -> Self {
        serde_json::from_value(serde_json::json!({})).expect("every field has a default")
    }
}

/// The analysis, bound to its settings.
#[derive(Debug, Clone)]
pub struct Feedback {
    pub request: FeedbackRequest,
    pub blueprint: Option<crate::blueprint::Blueprint>,
}

/// Answers counted, as the measures need them.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Tally {
    responses: u64,
    helpful: u64,
    not_helpful: u64,
    ratings: u64,
    rating_sum: f64,
    satisfied: u64,
    nps_answers: u64,
    promoters: u64,
    detractors: u64,
    comments: u64,
}

impl Tally {
    fn add(&mut self, other: &Tally) {
        self.responses += other.responses;
        self.helpful += other.helpful;
        self.not_helpful += other.not_helpful;
        self.ratings += other.ratings;
        self.rating_sum += other.rating_sum;
        self.satisfied += other.satisfied;
        self.nps_answers += other.nps_answers;
        self.promoters += other.promoters;
        self.detractors += other.detractors;
        self.comments += other.comments;
    }

    fn metrics(&self) -> FeedbackMetrics {
        let share = |part: u64, whole: u64| (whole > 0).then(|| part as f64 / whole as f64);
        FeedbackMetrics {
            responses: self.responses,
            helpful: self.helpful,
            not_helpful: self.not_helpful,
            helpful_rate: share(self.helpful, self.helpful + self.not_helpful),
            ratings: self.ratings,
            mean_rating: (self.ratings > 0).then(|| self.rating_sum / self.ratings as f64),
            csat: share(self.satisfied, self.ratings).map(|s| s * 100.0),
            nps_answers: self.nps_answers,
            promoters: self.promoters,
            detractors: self.detractors,
            nps: (self.nps_answers > 0).then(|| {
                (self.promoters as f64 - self.detractors as f64) / self.nps_answers as f64 * 100.0
            }),
            comments: self.comments,
        }
    }
}

/// Satisfaction measures over a set of answers.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct FeedbackMetrics {
    /// Feedback events.
    pub responses: u64,
    /// "Was this helpful?" answered yes / no.
    pub helpful: u64,
    pub not_helpful: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub helpful_rate: Option<f64>,
    pub ratings: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_rating: Option<f64>,
    /// Percent of ratings at or above `satisfied_from`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csat: Option<f64>,
    pub nps_answers: u64,
    pub promoters: u64,
    pub detractors: u64,
    /// Percent promoters minus percent detractors (−100 to 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nps: Option<f64>,
    pub comments: u64,
}

/// A comment, where it was left.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct FeedbackComment {
    pub customer: String,
    pub at: Timestamp,
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub helpful: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rating: Option<f64>,
}

/// One rated step: its measures, per channel, and its comments.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct StepFeedback {
    pub step: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    #[serde(flatten)]
    pub metrics: FeedbackMetrics,
    /// The same measures per channel of the rated step.
    pub channels: BTreeMap<String, FeedbackMetrics>,
    /// Comments matching `search` (all comments without it).
    pub matching_comments: u64,
    /// The latest of those, up to `comments`.
    pub latest_comments: Vec<FeedbackComment>,
}

/// A blueprint stage's measures over the steps it designs.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct StageFeedback {
    pub stage: String,
    #[serde(flatten)]
    pub metrics: FeedbackMetrics,
}

/// JSON `{"overall", "steps", "channels", "stages", ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct FeedbackReport {
    pub overall: FeedbackMetrics,
    /// Rated steps, most answers first (`top` of them).
    pub steps: Vec<StepFeedback>,
    /// Distinct rated steps (before `top`).
    pub n_steps: usize,
    /// Per channel of the rated step.
    pub channels: BTreeMap<String, FeedbackMetrics>,
    /// Per blueprint stage (with a blueprint); answers on steps outside the design are not in any stage.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<StageFeedback>,
    /// Feedback with no step to rate here: nothing before it and no `rated_step`, or a `rated_step` this
    /// selection does not have (filtered out, or renamed by a step rule).
    pub unattributed: u64,
    /// The feedback fields no event has (a misspelt name, or feedback not collected yet).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_properties: Vec<String>,
    /// CSAT and NPS as defined for this report.
    pub definitions: String,
}

/// Per (rated step code, channel code): the tally; per step: comments (latest kept).
#[derive(Debug, Clone, Default)]
pub struct FeedbackState {
    cells: BTreeMap<(u32, u16), Tally>,
    comments: BTreeMap<u32, (u64, Vec<FeedbackComment>)>,
    overall: Tally,
    unattributed: u64,
}

/// The property columns, by role, once bound to a journey set.
struct Columns {
    helpful: Option<usize>,
    ratings: Vec<usize>,
    nps: Option<usize>,
    comment: Option<usize>,
    rated_step: Option<usize>,
}

fn truthy(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "y" | "1" => Some(true),
            "false" | "no" | "n" | "0" => Some(false),
            _ => None,
        },
        Value::Number(n) => n.as_f64().map(|n| n != 0.0),
        _ => None,
    }
}

fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|n: &f64| n.is_finite())
}

impl Feedback {
    fn columns(&self, journeys: &JourneySet) -> Columns {
        let find = |name: &str| journeys.properties.iter().position(|c| c.name == name);
        Columns {
            helpful: find(&self.request.helpful_property),
            ratings: self
                .request
                .rating_properties
                .iter()
                .filter_map(|name| find(name))
                .collect(),
            nps: find(&self.request.nps_property),
            comment: find(&self.request.comment_property),
            rated_step: find(&self.request.rated_step_property),
        }
    }

    fn compiled(&self, journeys: &JourneySet) -> Option<CompiledBlueprint> {
        self.blueprint
            .as_ref()
            .and_then(|blueprint| blueprint.compile(journeys).ok())
    }
}

/// The analysis bound to a journey set.
pub struct BoundFeedback<'a> {
    spec: &'a Feedback,
    columns: Columns,
    /// Per step name, for `rated_step` values: the code of the step named (a merged screen's name too).
    step_code: std::collections::HashMap<String, u32>,
    /// `search`, lower-cased once.
    search: Option<String>,
}

impl BoundFeedback<'_> {
    /// Whether event `i` (an index into the whole set) carries a feedback field.
    fn is_feedback(&self, set: &JourneySet, i: usize) -> bool {
        // Code 0 is null in every property column (and only code 0 is), so no value need be looked at.
        let has = |column: usize| set.properties[column].codes[i] != 0;
        self.columns.helpful.is_some_and(has)
            || self.columns.nps.is_some_and(has)
            || self.columns.comment.is_some_and(has)
            || self.columns.ratings.iter().any(|c| has(*c))
    }
}

impl Analysis for BoundFeedback<'_> {
    type State = FeedbackState;
    type Report = FeedbackState;

    fn new_state(&self, _journeys: &JourneySet) -> FeedbackState {
        FeedbackState::default()
    }

    fn update(&self, state: &mut FeedbackState, journey: JourneyRef<'_>) {
        let set = journey.set;
        let request = &self.spec.request;
        for position in 0..journey.len() {
            let i = journey.start + position;
            if !self.is_feedback(set, i) {
                continue;
            }
            // The rated instance: the named step's latest earlier event, else the previous non-feedback event.
            let naming = self
                .columns
                .rated_step
                .and_then(|c| set.properties[c].value(i).as_str());
            let named = naming.and_then(|name| self.step_code.get(name).copied());
            // It names a step this selection does not have (filtered out, or renamed by a step rule): it rates
            // that step, not whatever came before.
            let named_elsewhere = naming.is_some() && named.is_none();
            let rated = (0..position).rev().find(|&earlier| {
                let e = journey.start + earlier;
                match named {
                    Some(code) => journey.step[earlier] == code,
                    None => !self.is_feedback(set, e),
                }
            });
            let rated = match (rated, named) {
                _ if named_elsewhere => None,
                (Some(earlier), _) => Some((journey.step[earlier], journey.channel[earlier])),
                (None, Some(code)) => Some((code, journey.channel[position])),
                (None, None) => None,
            };
            let mut tally = Tally {
                responses: 1,
                ..Tally::default()
            };
            let helpful = self
                .columns
                .helpful
                .and_then(|c| truthy(set.properties[c].value(i)));
            match helpful {
                Some(true) => tally.helpful = 1,
                Some(false) => tally.not_helpful = 1,
                None => {}
            }
            let rating = self
                .columns
                .ratings
                .iter()
                .find_map(|c| number(set.properties[*c].value(i)))
                .filter(|r| (0.0..=request.rating_scale).contains(r));
            if let Some(rating) = rating {
                tally.ratings = 1;
                tally.rating_sum = rating;
                tally.satisfied = u64::from(rating >= request.satisfied_from);
            }
            if let Some(score) = self
                .columns
                .nps
                .and_then(|c| number(set.properties[c].value(i)))
                .filter(|s| (0.0..=10.0).contains(s))
            {
                tally.nps_answers = 1;
                tally.promoters = u64::from(score >= 9.0);
                tally.detractors = u64::from(score <= 6.0);
            }
            let comment = self
                .columns
                .comment
                .and_then(|c| set.properties[c].value(i).as_str())
                .map(str::trim)
                .filter(|text| !text.is_empty());
            state.overall.add(&tally);
            let Some((step, channel)) = rated else {
                state.unattributed += 1;
                state.overall.comments += u64::from(comment.is_some());
                continue;
            };
            if let Some(text) = comment {
                tally.comments = 1;
                state.overall.comments += 1;
                let matches = self
                    .search
                    .as_ref()
                    .is_none_or(|needle| text.to_lowercase().contains(needle.as_str()));
                if matches {
                    let entry = state.comments.entry(step).or_default();
                    entry.0 += 1;
                    entry.1.push(FeedbackComment {
                        customer: set.customer_ids[journey.index].to_string(),
                        at: Timestamp(journey.ts[position]),
                        text: text.to_string(),
                        helpful,
                        rating,
                    });
                    keep_latest(&mut entry.1, request.comments);
                }
            }
            state.cells.entry((step, channel)).or_default().add(&tally);
        }
    }

    fn merge(&self, state: &mut FeedbackState, other: FeedbackState) {
        state.overall.add(&other.overall);
        state.unattributed += other.unattributed;
        for (key, tally) in other.cells {
            state.cells.entry(key).or_default().add(&tally);
        }
        for (step, (count, comments)) in other.comments {
            let entry = state.comments.entry(step).or_default();
            entry.0 += count;
            entry.1.extend(comments);
            keep_latest(&mut entry.1, self.spec.request.comments);
        }
    }

    fn finish(&self, state: FeedbackState, _: &JourneySet, _: &Runner) -> FeedbackState {
        state
    }
}

/// The latest `n` comments, in an order that does not depend on how the journeys were split.
fn keep_latest(comments: &mut Vec<FeedbackComment>, n: usize) {
    comments.sort_by(|a, b| {
        b.at.0
            .cmp(&a.at.0)
            .then_with(|| a.customer.cmp(&b.customer))
            .then_with(|| a.text.cmp(&b.text))
    });
    comments.truncate(n);
}

impl Spec for Feedback {
    type Report = FeedbackReport;

    fn properties(&self) -> Vec<String> {
        let r = &self.request;
        let mut names = vec![r.helpful_property.clone()];
        names.extend(r.rating_properties.iter().cloned());
        names.extend([
            r.nps_property.clone(),
            r.comment_property.clone(),
            r.rated_step_property.clone(),
        ]);
        names.dedup();
        names
    }

    fn run(
        &self,
        journeys: &JourneySet,
        runner: &Runner,
    ) -> Result<FeedbackReport, AnalyticsError> {
        let compiled = self.compiled(journeys);
        let bound = BoundFeedback {
            spec: self,
            columns: self.columns(journeys),
            step_code: crate::rules::step_codes_by_name(&journeys.step_names, |code| code as u32),
            search: self.request.search.as_ref().map(|s| s.to_lowercase()),
        };
        let state = run_plan(Ok(bound), journeys, runner)?;
        Ok(self.report(state, journeys, compiled.as_ref()))
    }
}

impl Feedback {
    fn report(
        &self,
        mut state: FeedbackState,
        journeys: &JourneySet,
        compiled: Option<&CompiledBlueprint>,
    ) -> FeedbackReport {
        let r = &self.request;
        let channel_name = |code: u16| {
            journeys
                .channel_names
                .get(code as usize)
                .cloned()
                .unwrap_or_default()
        };
        let mut per_step: BTreeMap<u32, (Tally, BTreeMap<String, Tally>)> = BTreeMap::new();
        let mut per_channel: BTreeMap<String, Tally> = BTreeMap::new();
        let mut per_stage: BTreeMap<usize, Tally> = BTreeMap::new();
        for (&(step, channel), tally) in &state.cells {
            let entry = per_step.entry(step).or_default();
            entry.0.add(tally);
            entry.1.entry(channel_name(channel)).or_default().add(tally);
            per_channel
                .entry(channel_name(channel))
                .or_default()
                .add(tally);
            if let Some(stage) = compiled.and_then(|c| c.stage_of(step)) {
                per_stage.entry(stage).or_default().add(tally);
            }
        }
        let mut steps: Vec<StepFeedback> = per_step
            .into_iter()
            .map(|(step, (tally, channels))| {
                let (matching, latest) = state.comments.remove(&step).unwrap_or_default();
                StepFeedback {
                    step: journeys.step_names[step as usize].clone(),
                    stage: compiled
                        .and_then(|c| c.stage_of(step).map(|s| c.blueprint.stages[s].name.clone())),
                    metrics: tally.metrics(),
                    channels: channels
                        .into_iter()
                        .map(|(c, t)| (c, t.metrics()))
                        .collect(),
                    matching_comments: matching,
                    latest_comments: latest,
                }
            })
            .collect();
        steps.sort_by(|a, b| {
            b.metrics
                .responses
                .cmp(&a.metrics.responses)
                .then_with(|| a.step.cmp(&b.step))
        });
        let n_steps = steps.len();
        steps.truncate(self.request.top);
        let present = |name: &String| {
            journeys
                .properties
                .iter()
                .any(|c| &c.name == name && c.values.len() > 1)
        };
        // The rating properties are alternatives: missing only when none is there.
        let mut missing_properties: Vec<String> = Vec::new();
        if !present(&r.helpful_property) {
            missing_properties.push(r.helpful_property.clone());
        }
        if !r.rating_properties.iter().any(present) {
            missing_properties.extend(r.rating_properties.iter().cloned());
        }
        for name in [&r.nps_property, &r.comment_property] {
            if !present(name) {
                missing_properties.push(name.clone());
            }
        }
        FeedbackReport {
            overall: state.overall.metrics(),
            steps,
            n_steps,
            channels: per_channel.into_iter().map(|(c, t)| (c, t.metrics())).collect(),
            stages: per_stage
                .into_iter()
                .filter_map(|(stage, tally)| {
                    compiled.map(|c| StageFeedback {
                        stage: c.blueprint.stages[stage].name.clone(),
                        metrics: tally.metrics(),
                    })
                })
                .collect(),
            unattributed: state.unattributed,
            missing_properties,
            definitions: format!(
                "CSAT: percent of ratings ({}) at or above {} on a scale to {}. NPS: percent of {} answers at 9–10 minus percent at 0–6.",
                r.rating_properties.join(", "),
                r.satisfied_from,
                r.rating_scale,
                r.nps_property
            ),
        }
    }
}

impl Query for FeedbackRequest {
    const NAME: &'static str = "feedback";
    const HELP: &'static str = "Satisfaction on the step each answer rates: helpful rate, ratings, CSAT and NPS per step, channel and blueprint stage, with the comments searchable per step.";
    const EXAMPLE: &'static str = "--search password --comments 3";
    type Report = FeedbackReport;
    type Spec = Feedback;

    fn scope(&self) -> &Scope {
        &self.filter
    }

    fn spec(&self, _data: &DataInfo<'_>) -> Result<Feedback, AnalyticsError> {
        if self.top == 0 {
            return Err(AnalyticsError::field("top", "top must be at least 1 step"));
        }
        if !(self.rating_scale > 0.0 && self.rating_scale.is_finite()) {
            return Err(AnalyticsError::field(
                "rating_scale",
                format!(
                    "rating_scale must be above 0 (e.g. 5 for ratings 1–5), not {}",
                    self.rating_scale
                ),
            ));
        }
        if !(0.0..=self.rating_scale).contains(&self.satisfied_from) {
            return Err(AnalyticsError::field(
                "satisfied_from",
                format!(
                    "satisfied_from must be on the rating scale 0–{} (e.g. 4 of 5), not {}",
                    self.rating_scale, self.satisfied_from
                ),
            ));
        }
        let blueprint = self
            .blueprint
            .as_ref()
            .map(|b| b.given().cloned())
            .transpose()?;
        Ok(Feedback {
            request: self.clone(),
            blueprint,
        })
    }

    fn text(&self, report: &FeedbackReport, rows: usize) -> String {
        let mut out = String::new();
        let o = &report.overall;
        let percent = |v: Option<f64>| {
            v.map(|v| format!("{:.0}%", v * 100.0))
                .unwrap_or_else(|| "-".into())
        };
        let score = |v: Option<f64>| v.map(|v| format!("{v:.0}")).unwrap_or_else(|| "-".into());
        let _ = writeln!(
            out,
            "{} answers: helpful {} of {}, CSAT {} of {} ratings, NPS {} of {} answers, {} comments",
            o.responses,
            percent(o.helpful_rate),
            o.helpful + o.not_helpful,
            o.csat.map(|c| format!("{c:.0}%")).unwrap_or_else(|| "-".into()),
            o.ratings,
            score(o.nps),
            o.nps_answers,
            o.comments
        );
        let _ = writeln!(
            out,
            "\n{:>7}  {:>8}  {:>6}  {:>6}  {:>5}  rated step",
            "answers", "helpful", "CSAT", "rating", "NPS"
        );
        for step in report.steps.iter().take(rows) {
            let m = &step.metrics;
            let _ = writeln!(
                out,
                "{:>7}  {:>8}  {:>6}  {:>6}  {:>5}  {}{}",
                m.responses,
                percent(m.helpful_rate),
                m.csat
                    .map(|c| format!("{c:.0}%"))
                    .unwrap_or_else(|| "-".into()),
                m.mean_rating
                    .map(|r| format!("{r:.1}"))
                    .unwrap_or_else(|| "-".into()),
                score(m.nps),
                step.step,
                step.stage
                    .as_ref()
                    .map(|s| format!(" ({s})"))
                    .unwrap_or_default()
            );
            for comment in &step.latest_comments {
                let _ = writeln!(
                    out,
                    "           \"{}\" — {}",
                    comment.text, comment.customer
                );
            }
        }
        crate::query::text::more(&mut out, report.steps.len(), rows, "steps");
        if !report.missing_properties.is_empty() {
            let _ = writeln!(
                out,
                "\nNote: no event has {}; set the property names (--helpful-property, --rating-properties, --nps-property, --comment-property) to your survey's",
                report.missing_properties.join(", ")
            );
        }
        let _ = writeln!(out, "\n{}", report.definitions);
        out
    }
}

#[cfg(test)]
mod tests;
