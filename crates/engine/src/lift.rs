//! The lift report: each trigger version's treated customers against its holdout, from the instances the rules
//! worker decided (its journal) and the journeys as stored now. The statistics are `waymark_analytics::lift`'s.

use crate::rules::read_journal;
use crate::{Engine, Error};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use waymark_analytics::lift::{goal_steps, lift, Exposure};
pub use waymark_analytics::lift::{Arm, Difference, LiftStats};
use waymark_analytics::query::{parse_duration, required_goals};
use waymark_analytics::AnalyticsError;
use waymark_rules::{RulesFile, Status};

/// The window a goal is counted in after exposure when none is given.
pub const DEFAULT_LIFT_WINDOW: &str = "7d";

/// `POST /v1/rules/lift`, `waymark rules lift`. JSON: `{"goals", "window", "trigger", "confidence"}`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LiftRequest {
    /// Goal steps (names or `*` patterns). Default: the first of the usual goal names the data has (Order
    /// Completed, Purchase, Signed Up, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub goals: Vec<String>,
    /// How long after exposure a goal counts (`7d`, `48h`). Default `7d`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
    /// Only this trigger's versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<String>,
    /// The confidence of the intervals, above 0 and below 1. Default 0.95.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
}

/// Every trigger version's lift.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct LiftReport {
    pub goals: Vec<String>,
    pub window: String,
    pub confidence: f64,
    /// The latest event time (µs): a window that ends after it is still open.
    pub data_end: i64,
    pub triggers: Vec<TriggerLift>,
}

/// One trigger version's treated customers against its held-out ones.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct TriggerLift {
    pub trigger: String,
    pub version: u32,
    /// The holdout share of this version's definition, when its history is kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holdout: Option<f64>,
    /// Treated customers whose actions went out (the rest were kept quiet); the treated arm counts both, as it
    /// was assigned.
    pub delivered: u64,
    /// Customers only ever capped: never assigned to an arm.
    pub capped: u64,
    /// For a catalogue item (`offer:ID`): treated customers who clicked it after the first offer (`delivered`
    /// counts those who were shown it: an impression event after the first offer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clicked: Option<u64>,
    #[serde(flatten)]
    pub stats: LiftStats,
    /// The result in a sentence.
    pub headline: String,
}

impl Engine {
    /// The lift of every trigger version with instances (or of `request.trigger`'s).
    pub fn rules_lift(&self, request: &LiftRequest) -> Result<LiftReport, Error> {
        let window_text = request
            .window
            .clone()
            .unwrap_or_else(|| DEFAULT_LIFT_WINDOW.to_string());
        let window = parse_duration("window", &window_text)?;
        let confidence = request.confidence.unwrap_or(0.95);
        if !(confidence > 0.0 && confidence < 1.0) {
            return Err(AnalyticsError::field(
                "confidence",
                format!("confidence: {confidence} is not above 0 and below 1; write e.g. 0.95"),
            )
            .into());
        }
        let goals = required_goals(&request.goals, &self.store.step_names())?;
        let (instances, _) = read_journal(&self.rules_dir().join("journal.log"));
        let offers = self.offer_exposures();
        if let Some(trigger) = &request.trigger {
            if !instances.iter().any(|(_, i)| &i.trigger == trigger)
                && !offers.keys().any(|(item, _)| item == trigger)
            {
                let mut known: Vec<String> = self
                    .rules_file()?
                    .triggers
                    .into_iter()
                    .map(|t| t.name)
                    .chain(instances.iter().map(|(_, i)| i.trigger.clone()))
                    .chain(offers.keys().map(|(item, _)| item.clone()))
                    .collect();
                known.sort();
                known.dedup();
                return Err(Error::NotFound(format!(
                    "trigger {trigger:?} has no instances; the triggers are: {}",
                    if known.is_empty() {
                        "none yet".to_string()
                    } else {
                        known.join(", ")
                    }
                )));
            }
        }
        // Per trigger version and customer: the first instance that was assigned an arm (capped ones were not).
        #[derive(Default)]
        struct Version {
            first: HashMap<String, (i64, bool, bool)>,
            capped: HashMap<String, ()>,
        }
        let mut versions: BTreeMap<(String, u32), Version> = BTreeMap::new();
        let mut seen = std::collections::HashSet::new();
        for (_, instance) in &instances {
            // A monitor's instances are the business's, not a customer's: no arm to be in.
            if instance.trigger.starts_with(crate::rules::MONITOR_PREFIX)
                || request
                    .trigger
                    .as_ref()
                    .is_some_and(|t| t != &instance.trigger)
                || !seen.insert(instance.key.as_str())
            {
                continue;
            }
            let version = versions
                .entry((instance.trigger.clone(), instance.version))
                .or_default();
            let (treated, delivered) = match instance.status {
                Status::Capped => {
                    version.capped.insert(instance.customer.clone(), ());
                    continue;
                }
                Status::HeldOut => (false, false),
                Status::Fired => (true, true),
                Status::Quiet => (true, false),
            };
            let entry = version.first.entry(instance.customer.clone()).or_insert((
                instance.at,
                treated,
                delivered,
            ));
            if instance.at < entry.0 {
                *entry = (instance.at, treated, delivered);
            }
        }
        let journeys = self.journeys();
        let is_goal = goal_steps(&journeys, &goals);
        let mut finder = JourneyFinder::new(&journeys);
        let data_end = journeys.ts.iter().copied().max().unwrap_or(0);
        let mut journey_of = |customer: &str| finder.find(self, customer);
        let mut triggers = Vec::new();
        for ((trigger, version), found) in versions {
            let mut delivered = 0;
            let exposures: Vec<Exposure> = found
                .first
                .iter()
                .map(|(customer, &(at, treated, was_delivered))| {
                    delivered += u64::from(was_delivered);
                    Exposure {
                        journey: journey_of(customer),
                        at,
                        treated,
                    }
                })
                .collect();
            let capped = found
                .capped
                .keys()
                .filter(|c| !found.first.contains_key(*c))
                .count() as u64;
            let stats = lift(
                &journeys, &is_goal, &exposures, window, data_end, confidence,
            );
            let holdout = self.holdout_of(&trigger, version);
            let headline = headline(&trigger, version, &goals, &window_text, confidence, &stats);
            triggers.push(TriggerLift {
                trigger,
                version,
                holdout,
                delivered,
                capped,
                clicked: None,
                stats,
                headline,
            });
        }
        let offers: BTreeMap<(String, u32), HashMap<String, (i64, bool)>> = offers
            .into_iter()
            .filter(|((item, _), _)| request.trigger.as_ref().is_none_or(|t| t == item))
            .collect();
        if !offers.is_empty() {
            triggers.extend(self.offer_lifts(offers, &goals, window, &window_text, confidence)?);
        }
        Ok(LiftReport {
            goals,
            window: window_text,
            confidence,
            data_end,
            triggers,
        })
    }

    /// The lift of each catalogue item version offered: treated = offered it (first offer), control = held out;
    /// shown and clicked from the impression and click events that name it after the first offer.
    fn offer_lifts(
        &self,
        offers: BTreeMap<(String, u32), HashMap<String, (i64, bool)>>,
        goals: &[String],
        window: i64,
        window_text: &str,
        confidence: f64,
    ) -> Result<Vec<TriggerLift>, Error> {
        let settings = self.catalogue_file()?.settings;
        let journeys = self
            .store
            .journey_view(std::slice::from_ref(&settings.item_property))?;
        let is_goal = goal_steps(&journeys, goals);
        let mut finder = JourneyFinder::new(&journeys);
        let data_end = journeys.ts.iter().copied().max().unwrap_or(0);
        let code = |name: &str| journeys.step_names.iter().position(|s| s == name);
        let (impression, click) = (code(&settings.impression_step), code(&settings.click_step));
        let items = journeys.property(&settings.item_property);
        // Whether journey `j` has a `step` event naming `item` at or after `at`.
        let did = |j: usize, step: Option<usize>, item: &str, at: i64| -> bool {
            let (Some(step), Some(items)) = (step, items) else {
                return false;
            };
            (journeys.offsets[j]..journeys.offsets[j + 1]).any(|e| {
                journeys.step[e] as usize == step
                    && journeys.ts[e] >= at
                    && items.value(e).as_str() == Some(item)
            })
        };
        let mut out = Vec::new();
        for ((trigger, version), first) in offers {
            let item = &trigger[waymark_rules::catalogue::OFFER_PREFIX.len()..];
            let (mut shown, mut clicked) = (0, 0);
            let exposures: Vec<Exposure> = first
                .iter()
                .map(|(customer, &(at, held_out))| {
                    let journey = finder.find(self, customer);
                    if let (Some(j), false) = (journey, held_out) {
                        shown += u64::from(did(j, impression, item, at));
                        clicked += u64::from(did(j, click, item, at));
                    }
                    Exposure {
                        journey,
                        at,
                        treated: !held_out,
                    }
                })
                .collect();
            let stats = lift(
                &journeys, &is_goal, &exposures, window, data_end, confidence,
            );
            let headline = headline(&trigger, version, goals, window_text, confidence, &stats);
            out.push(TriggerLift {
                holdout: self.offer_holdout(item),
                trigger,
                version,
                delivered: shown,
                capped: 0,
                clicked: Some(clicked),
                stats,
                headline,
            });
        }
        Ok(out)
    }

    /// The holdout share of a trigger version, from its kept definition.
    fn holdout_of(&self, trigger: &str, version: u32) -> Option<f64> {
        let history = self
            .rules_dir()
            .join("history")
            .join(format!("{trigger}.v{version}.toml"));
        let text = std::fs::read_to_string(history).ok()?;
        let file = RulesFile::from_toml(&text).ok()?;
        file.triggers.into_iter().next().map(|t| t.holdout)
    }
}

/// A decided customer's journey in a view: by its id, or — decided while anonymous and merged into another since
/// — through the identity graph (looked up once per customer).
struct JourneyFinder<'v> {
    index: HashMap<&'v str, usize>,
    resolved: HashMap<String, Option<usize>>,
}

impl<'v> JourneyFinder<'v> {
    fn new(journeys: &'v waymark_model::JourneySet) -> JourneyFinder<'v> {
        JourneyFinder {
            index: (0..journeys.n_journeys())
                .map(|j| (&journeys.customer_ids[j], j))
                .collect(),
            resolved: HashMap::new(),
        }
    }

    fn find(&mut self, engine: &Engine, customer: &str) -> Option<usize> {
        if let Some(&j) = self.index.get(customer) {
            return Some(j);
        }
        let index = &self.index;
        *self
            .resolved
            .entry(customer.to_string())
            .or_insert_with(|| {
                let view = engine.store.customer_journey(customer, &[]).ok()??;
                index.get(&view.customer_ids[0]).copied()
            })
    }
}

/// The lift in a sentence, harm first: a trigger that lowers the goal rate says so, and one whose interval
/// includes zero says the difference is not shown, whatever its sign.
fn headline(
    trigger: &str,
    version: u32,
    goals: &[String],
    window: &str,
    confidence: f64,
    stats: &LiftStats,
) -> String {
    let goal = goals.join(" or ");
    let name = format!("{trigger} v{version}");
    let Some(d) = stats.goal_rate_difference else {
        return format!(
            "{name}: no comparison yet — {} treated and {} held-out customers have a closed {window} window",
            stats.treated.customers, stats.held_out.customers
        );
    };
    let points = |v: f64| format!("{:.1}", v.abs() * 100.0);
    let interval = format!(
        "{:.0}% CI {:+.1} to {:+.1} points, p {}",
        confidence * 100.0,
        d.low * 100.0,
        d.high * 100.0,
        p_text(d.p_value)
    );
    let counts = format!(
        "{} treated, {} held out",
        stats.treated.customers, stats.held_out.customers
    );
    if d.low > 0.0 {
        format!(
            "{name} raises reaching {goal} within {window} by {} points ({:.1}% → {:.1}%; {interval}; {counts})",
            points(d.value),
            stats.held_out.goal_rate * 100.0,
            stats.treated.goal_rate * 100.0
        )
    } else if d.high < 0.0 {
        format!(
            "{name} lowers reaching {goal} within {window} by {} points: treated customers do worse than held-out ones ({:.1}% against {:.1}%; {interval}; {counts})",
            points(d.value),
            stats.treated.goal_rate * 100.0,
            stats.held_out.goal_rate * 100.0
        )
    } else {
        format!(
            "{name} shows no lift on {goal} within {window}: the difference of {:+.1} points could be chance ({interval}; {counts})",
            d.value * 100.0
        )
    }
}

/// A p-value as people read it: `< 0.001`, or `= 0.042`.
pub fn p_text(p: f64) -> String {
    if p < 0.001 {
        "< 0.001".to_string()
    } else {
        format!("= {p:.3}")
    }
}
