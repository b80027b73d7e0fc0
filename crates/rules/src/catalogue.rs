//! Next best action: a catalogue of content and offers, each with who may see it (a CEL condition over the
//! customer and their journey, as in `rules.toml`), where (placements), when (start and end), how often (an
//! impression cap, hidden after a click), and how it ranks — points from its priority, from affinities (values
//! of the customer's attributes: device platform, products owned, the current stage), from rule boosts (CEL
//! conditions) and from a model's score. Pure: the customer's events, segments, scores and a clock in; the
//! ranked items with their reasons out.
//!
//! Attributes are what a business knows of a customer from their events: each is the distinct values one or more
//! event fields took (`context.os.name`, `properties.product` on `Order Completed`), newest first. The defaults
//! (`platform`, `device`, `products`) read Segment's own fields and e-commerce spec, so they mean the same in any
//! business that sends Segment events; a catalogue's `[attributes]` table replaces them.

use crate::defs::{DefinitionError, DefinitionErrors, Known, Stage};
use crate::expr::{Bindings, Condition, Fact, Latest, Vocabulary};
use crate::runtime::{customer_value, fact_values, in_holdout, note_identity, StepFacts};
use cel::Value;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use waymark_model::Event;

/// The name an item's exposures carry in the lift report and the holdout hash: `offer:ID`.
pub const OFFER_PREFIX: &str = "offer:";

/// The catalogue as written (`catalogue.toml` in the data directory, or JSON through the API).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CatalogueFile {
    #[serde(default)]
    pub settings: CatalogueSettings,
    /// Customer attributes by name, read from the customer's events. Without this table: `platform`
    /// (`context.os.name`), `device` (`context.device.model`, `context.device.type`) and `products`
    /// (`properties.product`, `properties.product_id`, `properties.products.name` on `Order Completed`).
    #[serde(default = "default_attributes")]
    pub attributes: BTreeMap<String, AttributeSpec>,
    /// The content and offers, in editorial order (which breaks ties in points).
    #[serde(default)]
    pub items: Vec<ItemSpec>,
}

impl Default for CatalogueFile {
    fn default() -> Self {
        CatalogueFile {
            settings: CatalogueSettings::default(),
            attributes: default_attributes(),
            items: Vec::new(),
        }
    }
}

/// Conventions every business sets for itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CatalogueSettings {
    /// Items returned when the request names no limit.
    pub limit: usize,
    /// Points an item gains for each of its affinities the customer matches.
    pub affinity_points: f64,
    /// The event a client sends when it shows an item (Segment's e-commerce spec: `Promotion Viewed`).
    pub impression_step: String,
    /// The event a client sends when the customer clicks an item (`Promotion Clicked`).
    pub click_step: String,
    /// The property of those events naming the item (`promotion_id`).
    pub item_property: String,
    /// A saved blueprint whose stages give `current_stage` (the stage of the customer's latest step that belongs
    /// to one); without it, the stages of `rules.toml`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blueprint: Option<String>,
}

impl Default for CatalogueSettings {
    fn default() -> Self {
        CatalogueSettings {
            limit: 3,
            affinity_points: 10.0,
            impression_step: "Promotion Viewed".into(),
            click_step: "Promotion Clicked".into(),
            item_property: "promotion_id".into(),
            blueprint: None,
        }
    }
}

/// One customer attribute: the values its fields took on the customer's events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AttributeSpec {
    /// Dotted paths into an event: `properties.…`, `traits.…`, `context.…`, or `channel`. A path through a list
    /// reads every element (`properties.products.name`).
    pub fields: Vec<String>,
    /// Only events of these steps (`*` patterns allowed); empty: every event.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<String>,
}

fn default_attributes() -> BTreeMap<String, AttributeSpec> {
    let attribute = |fields: &[&str], steps: &[&str]| AttributeSpec {
        fields: fields.iter().map(|f| f.to_string()).collect(),
        steps: steps.iter().map(|s| s.to_string()).collect(),
    };
    BTreeMap::from([
        ("platform".to_string(), attribute(&["context.os.name"], &[])),
        (
            "device".to_string(),
            attribute(&["context.device.model", "context.device.type"], &[]),
        ),
        (
            "products".to_string(),
            attribute(
                &[
                    "properties.product",
                    "properties.product_id",
                    "properties.products.name",
                ],
                &["Order Completed"],
            ),
        ),
    ])
}

/// `content` (help, articles, guidance) or `offer` (products, promotions): said back, and a filter.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    #[default]
    Offer,
    Content,
}

/// One item of the catalogue.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemSpec {
    /// Lower-case letters, digits, `-` and `_`: the `promotion_id` its impressions and clicks carry.
    pub id: String,
    pub title: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default)]
    pub kind: ItemKind,
    /// Where it may be shown (`home`, `checkout`, `support`); empty: anywhere.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub placements: Vec<String>,
    /// Who may see it: a CEL condition over `customer` (with `customer.attributes`), the journey functions
    /// (`count`, `did`, `since`, `days_since`, `score`, `in_segment`), `last_step`, `current_stage`, `channel`
    /// and `now`. Empty: everyone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eligible: Option<String>,
    /// Base points (editorial priority).
    #[serde(default)]
    pub priority: f64,
    /// Attribute values that suit it: each attribute of which the customer has one of the values earns
    /// `settings.affinity_points`. The key `stage` reads the customer's current stage.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub affinity: BTreeMap<String, Vec<String>>,
    /// Points while a condition holds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub boosts: Vec<BoostSpec>,
    /// Points in proportion to a model's score of the customer (`points × score`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<ScoreSpec>,
    /// Not offered again to a customer who was shown it this many times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_impressions: Option<u32>,
    /// Whether a customer who clicked it is offered it again. Default false.
    #[serde(default)]
    pub repeat_after_click: bool,
    /// The share of eligible customers never shown it, to measure its lift (0 to below 1).
    #[serde(default)]
    pub holdout: f64,
    /// Offered from this time (RFC 3339 or a date) and before `ends`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends: Option<String>,
    /// Steps the conditions may name before any stored event has them (a new product's page).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expect_steps: Vec<String>,
    /// What the client renders (URL, image, text, …), returned as written.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub content: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BoostSpec {
    /// A CEL condition, as `eligible`.
    pub when: String,
    /// Points while it holds (negative to demote).
    pub points: f64,
    /// Said as the reason; default: the condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScoreSpec {
    /// A saved model (`waymark model list`).
    pub model: String,
    /// Points at a score of 1 (negative: the likelier the outcome, the lower the item).
    pub points: f64,
}

/// A validated, compiled item.
#[derive(Debug)]
pub struct Item {
    pub spec: ItemSpec,
    pub version: u32,
    eligible: Option<Condition>,
    boosts: Vec<(Condition, f64, String)>,
    starts: Option<i64>,
    ends: Option<i64>,
}

/// A validated, compiled catalogue.
#[derive(Debug)]
pub struct Catalogue {
    pub file: CatalogueFile,
    pub items: Vec<Item>,
    /// Every journey fact the conditions read.
    facts: Vec<Fact>,
    /// Per step the facts read, and whether any reads a window (then every time is kept).
    fact_steps: HashMap<String, bool>,
}

/// Whether `text` may name an item (and so a URL segment and a `promotion_id`).
pub fn is_item_id(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 64
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

fn plain(field: String, message: String) -> DefinitionError {
    DefinitionError {
        field,
        line: None,
        column: None,
        message,
    }
}

impl CatalogueFile {
    /// Parses TOML; a syntax or type error names its line and column.
    pub fn from_toml(text: &str) -> Result<CatalogueFile, DefinitionErrors> {
        crate::defs::parse_toml(text, "catalogue.toml")
    }

    /// Parses JSON (the API's form).
    pub fn from_json(text: &[u8]) -> Result<CatalogueFile, DefinitionErrors> {
        crate::defs::parse_json(text)
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }

    /// Validates and compiles the catalogue against what is known (steps, models) and the segments defined;
    /// `version(item)` gives each item's version. Every problem is reported, with its field.
    pub fn compile(
        &self,
        known: &Known,
        segments: &BTreeSet<String>,
        version: &dyn Fn(&ItemSpec) -> u32,
    ) -> Result<Catalogue, DefinitionErrors> {
        let mut errors = Vec::new();
        let settings = &self.settings;
        if settings.limit == 0 || settings.limit > 100 {
            errors.push(plain(
                "settings.limit".into(),
                format!("{} items is not a limit from 1 to 100", settings.limit),
            ));
        }
        if !settings.affinity_points.is_finite() {
            errors.push(plain(
                "settings.affinity_points".into(),
                "write a finite number of points, e.g. 10".into(),
            ));
        }
        for (key, value) in [
            ("impression_step", &settings.impression_step),
            ("click_step", &settings.click_step),
            ("item_property", &settings.item_property),
        ] {
            if value.trim().is_empty() {
                errors.push(plain(format!("settings.{key}"), "may not be empty".into()));
            }
        }
        for (name, attribute) in &self.attributes {
            let field = format!("attributes.{name}");
            if !is_item_id(name) {
                errors.push(plain(
                    field.clone(),
                    "an attribute's name is lower-case letters, digits, `-` and `_`".into(),
                ));
            }
            if name == "stage" {
                errors.push(plain(
                    field.clone(),
                    "`stage` is the customer's current stage; name the attribute otherwise".into(),
                ));
            }
            if attribute.fields.is_empty() {
                errors.push(plain(
                    format!("{field}.fields"),
                    "name at least one event field, e.g. \"context.os.name\"".into(),
                ));
            }
            for (index, path) in attribute.fields.iter().enumerate() {
                let root = path.split('.').next().unwrap_or("");
                let ok = match root {
                    "properties" | "traits" | "context" => path.split('.').count() > 1,
                    "channel" => path == "channel",
                    _ => false,
                };
                if !ok || path.split('.').any(str::is_empty) {
                    errors.push(plain(
                        format!("{field}.fields[{index}]"),
                        format!("'{path}' is not an event field: write properties.NAME, traits.NAME, context.NAME (dotted for nested fields) or channel"),
                    ));
                }
            }
        }
        let attributes: BTreeSet<String> = self.attributes.keys().cloned().collect();
        let compile =
            |errors: &mut Vec<DefinitionError>, spec: &ItemSpec, field: String, source: &str| {
                let vocabulary = Vocabulary {
                    steps: crate::defs::with_expected(&known.steps, &spec.expect_steps),
                    models: known.models.clone(),
                    segments: segments.clone(),
                    event: false,
                    attributes: Some(attributes.clone()),
                };
                match Condition::compile(source, &vocabulary) {
                    Ok(condition) => Some(condition),
                    Err(error) => {
                        errors.push(DefinitionError {
                            field,
                            line: Some(error.line),
                            column: Some(error.column),
                            message: error.message,
                        });
                        None
                    }
                }
            };
        let mut items = Vec::new();
        let mut ids = BTreeSet::new();
        for (index, spec) in self.items.iter().enumerate() {
            let field = if is_item_id(&spec.id) {
                format!("items[{}]", spec.id)
            } else {
                format!("items[{index}]")
            };
            if !is_item_id(&spec.id) {
                errors.push(plain(
                    format!("{field}.id"),
                    format!("'{}' is not an item id: lower-case letters, digits, `-` and `_`, at most 64", spec.id),
                ));
            } else if !ids.insert(spec.id.clone()) {
                errors.push(plain(
                    format!("{field}.id"),
                    format!("item '{}' is defined twice", spec.id),
                ));
            }
            if spec.title.trim().is_empty() {
                errors.push(plain(
                    format!("{field}.title"),
                    "an item needs a title".into(),
                ));
            }
            if !spec.priority.is_finite() {
                errors.push(plain(
                    format!("{field}.priority"),
                    "write a finite number".into(),
                ));
            }
            if !(0.0..1.0).contains(&spec.holdout) {
                errors.push(plain(
                    format!("{field}.holdout"),
                    format!(
                        "{} is not a share: write a number from 0 (no holdout) to below 1, e.g. 0.1",
                        spec.holdout
                    ),
                ));
            }
            if spec.max_impressions == Some(0) {
                errors.push(plain(
                    format!("{field}.max_impressions"),
                    "0 impressions would never show it; leave it out for no cap".into(),
                ));
            }
            for (index, placement) in spec.placements.iter().enumerate() {
                if placement.trim().is_empty() {
                    errors.push(plain(
                        format!("{field}.placements[{index}]"),
                        "a placement needs a name".into(),
                    ));
                }
            }
            for (attribute, values) in &spec.affinity {
                if attribute != "stage" && !attributes.contains(attribute) {
                    let hint =
                        crate::expr::closest(attribute, attributes.iter().map(String::as_str))
                            .map(|name| format!("did you mean `{name}`? "))
                            .unwrap_or_default();
                    errors.push(plain(
                        format!("{field}.affinity.{attribute}"),
                        format!(
                            "the catalogue has no attribute `{attribute}`: {hint}its attributes are {} (and `stage`)",
                            attributes.iter().cloned().collect::<Vec<_>>().join(", ")
                        ),
                    ));
                }
                if values.is_empty() {
                    errors.push(plain(
                        format!("{field}.affinity.{attribute}"),
                        "list at least one value".into(),
                    ));
                }
            }
            let eligible = spec
                .eligible
                .as_deref()
                .filter(|source| !source.trim().is_empty())
                .and_then(|source| compile(&mut errors, spec, format!("{field}.eligible"), source));
            let mut boosts = Vec::new();
            for (index, boost) in spec.boosts.iter().enumerate() {
                if !boost.points.is_finite() {
                    errors.push(plain(
                        format!("{field}.boosts[{index}].points"),
                        "write a finite number".into(),
                    ));
                }
                if let Some(condition) = compile(
                    &mut errors,
                    spec,
                    format!("{field}.boosts[{index}].when"),
                    &boost.when,
                ) {
                    let reason = boost.reason.clone().unwrap_or_else(|| boost.when.clone());
                    boosts.push((condition, boost.points, reason));
                }
            }
            if let Some(score) = &spec.score {
                if let Some(models) = &known.models {
                    if !models.contains(&score.model) {
                        errors.push(plain(
                            format!("{field}.score.model"),
                            format!(
                                "no saved model '{}'; the models are {}",
                                score.model,
                                if models.is_empty() {
                                    "none yet (waymark model train)".to_string()
                                } else {
                                    models.iter().cloned().collect::<Vec<_>>().join(", ")
                                }
                            ),
                        ));
                    }
                }
                if !score.points.is_finite() {
                    errors.push(plain(
                        format!("{field}.score.points"),
                        "write a finite number".into(),
                    ));
                }
            }
            let time = |errors: &mut Vec<DefinitionError>, key: &str, value: &Option<String>| {
                value.as_ref().and_then(|text| {
                    match waymark_analytics::query::parse_time(key, text) {
                        Ok(time) => Some(time),
                        Err(_) => {
                            errors.push(plain(
                                format!("{field}.{key}"),
                                format!("'{text}' is not a time; write a date (2027-01-31) or an RFC 3339 time (2027-01-31T00:00:00Z)"),
                            ));
                            None
                        }
                    }
                })
            };
            let starts = time(&mut errors, "starts", &spec.starts);
            let ends = time(&mut errors, "ends", &spec.ends);
            if let (Some(starts), Some(ends)) = (starts, ends) {
                if ends <= starts {
                    errors.push(plain(
                        format!("{field}.ends"),
                        "`ends` is not after `starts`".into(),
                    ));
                }
            }
            items.push(Item {
                spec: spec.clone(),
                version: version(spec),
                eligible,
                boosts,
                starts,
                ends,
            });
        }
        if !errors.is_empty() {
            return Err(DefinitionErrors(errors));
        }
        let mut facts = BTreeSet::new();
        for item in &items {
            for condition in item
                .eligible
                .iter()
                .chain(item.boosts.iter().map(|(condition, _, _)| condition))
            {
                facts.extend(condition.reads().facts.iter().cloned());
            }
        }
        let mut fact_steps: HashMap<String, bool> = HashMap::new();
        for fact in &facts {
            if let Some(step) = fact.step() {
                let windowed = matches!(
                    fact,
                    Fact::Count {
                        window: Some(_),
                        ..
                    }
                );
                *fact_steps.entry(step.to_string()).or_default() |= windowed;
            }
        }
        Ok(Catalogue {
            file: self.clone(),
            items,
            facts: facts.into_iter().collect(),
            fact_steps,
        })
    }
}

/// What the catalogue needs of one customer, derived from their events (and given their segments and scores).
#[derive(Debug, Clone, Default)]
pub struct CustomerFacts {
    pub id: String,
    traits: serde_json::Map<String, serde_json::Value>,
    identifiers: BTreeSet<String>,
    steps: HashMap<String, StepFacts>,
    last_step: Option<String>,
    previous_step: Option<String>,
    channel: Option<String>,
    pub current_stage: Option<String>,
    last_time: i64,
    /// Each attribute's distinct values, newest first.
    pub attributes: BTreeMap<String, Vec<String>>,
    impressions: HashMap<String, u32>,
    clicks: HashMap<String, u32>,
    /// The segments the customer is in now.
    pub segments: BTreeSet<String>,
    /// Every model's score of the customer now.
    pub scores: BTreeMap<String, f64>,
}

/// Why an item is ranked where it is: one term of its points.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Reason {
    /// `priority`, `affinity`, `boost` or `score`.
    pub kind: String,
    pub points: f64,
    /// The reason in words: "platform is iOS", "current stage is Buy", "score of p-goal 0.41".
    pub text: String,
}

/// The events a client sends back when it shows an item and when the customer clicks it (through `/v1/track`).
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Tracking {
    pub impression: TrackingEvent,
    pub click: TrackingEvent,
}

#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct TrackingEvent {
    pub event: String,
    pub properties: serde_json::Map<String, serde_json::Value>,
}

/// One ranked item.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Offer {
    pub id: String,
    pub version: u32,
    pub title: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    pub kind: ItemKind,
    /// 1 = best.
    pub rank: usize,
    pub points: f64,
    /// The terms of `points`, largest first.
    pub reasons: Vec<Reason>,
    pub content: serde_json::Map<String, serde_json::Value>,
    pub tracking: Tracking,
}

/// An item that ranked within the limit but was held out for this customer (never shown: the lift's control).
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct HeldOut {
    pub id: String,
    pub version: u32,
    /// Where it would have ranked.
    pub rank: usize,
}

/// An item not offered, and why.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Excluded {
    pub id: String,
    pub why: String,
}

/// The decision for one customer and placement.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Ranking {
    pub items: Vec<Offer>,
    pub held_out: Vec<HeldOut>,
    /// Items that were not candidates, with the reason (eligibility, placement, dates, caps, clicks).
    pub excluded: Vec<Excluded>,
}

/// A value at a dotted path of a JSON object, descending into every element of a list; scalars as text.
fn values_at(value: &serde_json::Value, path: &[&str], out: &mut Vec<String>) {
    match (value, path.split_first()) {
        (serde_json::Value::Array(items), _) => {
            for item in items {
                values_at(item, path, out);
            }
        }
        (serde_json::Value::Object(object), Some((first, rest))) => {
            if let Some(inner) = object.get(*first) {
                values_at(inner, rest, out);
            }
        }
        (serde_json::Value::String(text), None) if !text.is_empty() => out.push(text.clone()),
        (serde_json::Value::Number(n), None) => out.push(n.to_string()),
        (serde_json::Value::Bool(b), None) => out.push(b.to_string()),
        _ => {}
    }
}

fn field_values(event: &Event, path: &str, out: &mut Vec<String>) {
    let parts: Vec<&str> = path.split('.').collect();
    let root = match parts[0] {
        "properties" => &event.properties,
        "traits" => &event.traits,
        "context" => &event.context,
        "channel" => {
            out.push(event.channel.clone());
            return;
        }
        _ => return,
    };
    if let Some(inner) = root.get(parts[1]) {
        values_at(inner, &parts[2..], out);
    }
}

impl Catalogue {
    /// The customer's facts from their events (in time order), the current stage by `stages`.
    pub fn facts(&self, id: &str, events: &[Event], stages: &[Stage]) -> CustomerFacts {
        let settings = &self.file.settings;
        let mut facts = CustomerFacts {
            id: id.to_string(),
            ..CustomerFacts::default()
        };
        let mut seen: BTreeMap<&str, Vec<(i64, String)>> = BTreeMap::new();
        for event in events {
            let at = event.timestamp.0;
            let step = event.step();
            note_identity(event, &mut facts.identifiers, &mut facts.traits);
            if let Some(windowed) = self.fact_steps.get(&step) {
                let entry = facts.steps.entry(step.clone()).or_default();
                entry.count += 1;
                entry.last = entry.last.max(at);
                if *windowed {
                    let position = entry.recent.partition_point(|time| *time <= at);
                    entry.recent.insert(position, at);
                }
            }
            if step == settings.impression_step || step == settings.click_step {
                if let Some(item) = event
                    .properties
                    .get(&settings.item_property)
                    .and_then(|v| v.as_str())
                {
                    let counts = if step == settings.impression_step {
                        &mut facts.impressions
                    } else {
                        &mut facts.clicks
                    };
                    *counts.entry(item.to_string()).or_default() += 1;
                }
            }
            for (name, attribute) in &self.file.attributes {
                if !attribute.steps.is_empty()
                    && !attribute
                        .steps
                        .iter()
                        .any(|pattern| waymark_analytics::condition::wildcard_match(pattern, &step))
                {
                    continue;
                }
                let mut values = Vec::new();
                for path in &attribute.fields {
                    field_values(event, path, &mut values);
                }
                let entry = seen.entry(name.as_str()).or_default();
                entry.extend(values.into_iter().map(|value| (at, value)));
            }
            if at >= facts.last_time || facts.last_step.is_none() {
                facts.previous_step = facts.last_step.take();
                facts.last_step = Some(step.clone());
                facts.channel = Some(event.channel.clone());
                facts.last_time = at;
                if let Some(stage) = stages.iter().find(|stage| stage.matches(&step)) {
                    facts.current_stage = Some(stage.name.clone());
                }
            }
        }
        for (name, mut values) in seen {
            // Newest first, each value once (at its latest time).
            values.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
            let mut distinct: Vec<String> = Vec::new();
            for (_, value) in values {
                if !distinct.contains(&value) {
                    distinct.push(value);
                }
            }
            facts.attributes.insert(name.to_string(), distinct);
        }
        for name in self.file.attributes.keys() {
            facts.attributes.entry(name.clone()).or_default();
        }
        facts
    }

    fn bindings(&self, facts: &CustomerFacts, now: i64) -> Bindings {
        let text = |s: &str| Value::String(Arc::new(s.to_string()));
        let attributes = crate::expr::map_value(facts.attributes.iter().map(|(name, values)| {
            (
                name.clone(),
                Value::List(Arc::new(values.iter().map(|v| text(v)).collect())),
            )
        }));
        let customer = customer_value(
            &facts.id,
            &facts.traits,
            &facts.segments,
            &facts.scores,
            &facts.identifiers,
            Some(attributes),
        );
        let latest = Latest {
            last_step: facts.last_step.as_deref(),
            previous_step: facts.previous_step.as_deref(),
            current_stage: facts.current_stage.as_deref(),
            channel: facts.channel.as_deref(),
        };
        Bindings::new(
            None,
            customer,
            &latest,
            now,
            fact_values(
                &self.facts,
                &facts.steps,
                &facts.scores,
                &facts.segments,
                now,
            ),
        )
    }

    /// Ranks the items for the customer at `placement` (any when `None`) at `now`: at most `limit` offers
    /// (the settings' limit when `None`), the held-out ones that ranked within it, and why every other item is
    /// not a candidate.
    pub fn rank(
        &self,
        facts: &CustomerFacts,
        placement: Option<&str>,
        now: i64,
        limit: Option<usize>,
    ) -> Ranking {
        let settings = &self.file.settings;
        let limit = limit.unwrap_or(settings.limit).max(1);
        let bindings = self.bindings(facts, now);
        let mut excluded = Vec::new();
        let mut candidates: Vec<(f64, usize, Vec<Reason>)> = Vec::new();
        for (index, item) in self.items.iter().enumerate() {
            let spec = &item.spec;
            let exclude = |why: String| Excluded {
                id: spec.id.clone(),
                why,
            };
            if let Some(placement) = placement {
                if !spec.placements.is_empty() && !spec.placements.iter().any(|p| p == placement) {
                    excluded.push(exclude(format!(
                        "not for placement '{placement}' (placements: {})",
                        spec.placements.join(", ")
                    )));
                    continue;
                }
            }
            if item.starts.is_some_and(|starts| now < starts) {
                excluded.push(exclude(format!(
                    "offered from {}",
                    spec.starts.clone().unwrap_or_default()
                )));
                continue;
            }
            if item.ends.is_some_and(|ends| now >= ends) {
                excluded.push(exclude(format!(
                    "ended {}",
                    spec.ends.clone().unwrap_or_default()
                )));
                continue;
            }
            let clicks = facts.clicks.get(&spec.id).copied().unwrap_or(0);
            if clicks > 0 && !spec.repeat_after_click {
                excluded.push(exclude(format!(
                    "clicked already ({clicks} {} event{})",
                    settings.click_step,
                    if clicks == 1 { "" } else { "s" }
                )));
                continue;
            }
            let shown = facts.impressions.get(&spec.id).copied().unwrap_or(0);
            if let Some(max) = spec.max_impressions {
                if shown >= max {
                    excluded.push(exclude(format!(
                        "shown {shown} times already (max_impressions {max})"
                    )));
                    continue;
                }
            }
            if let Some(condition) = &item.eligible {
                match condition.evaluate(&bindings) {
                    Ok(true) => {}
                    Ok(false) => {
                        excluded.push(exclude(format!("not eligible: {}", condition.source())));
                        continue;
                    }
                    Err(message) => {
                        excluded.push(exclude(format!(
                            "not eligible: {} ({message})",
                            condition.source()
                        )));
                        continue;
                    }
                }
            }
            let mut reasons = Vec::new();
            if spec.priority != 0.0 {
                reasons.push(Reason {
                    kind: "priority".into(),
                    points: spec.priority,
                    text: "editorial priority".into(),
                });
            }
            for (attribute, wanted) in &spec.affinity {
                let has: &[String] = if attribute == "stage" {
                    facts.current_stage.as_slice()
                } else {
                    facts
                        .attributes
                        .get(attribute)
                        .map(Vec::as_slice)
                        .unwrap_or(&[])
                };
                if let Some(value) = has.iter().find(|value| wanted.contains(value)) {
                    reasons.push(Reason {
                        kind: "affinity".into(),
                        points: settings.affinity_points,
                        text: if attribute == "stage" {
                            format!("current stage is {value}")
                        } else {
                            format!("{attribute} is {value}")
                        },
                    });
                }
            }
            for (condition, points, reason) in &item.boosts {
                if condition.evaluate(&bindings) == Ok(true) {
                    reasons.push(Reason {
                        kind: "boost".into(),
                        points: *points,
                        text: reason.clone(),
                    });
                }
            }
            if let Some(score) = &spec.score {
                if let Some(value) = facts.scores.get(&score.model) {
                    reasons.push(Reason {
                        kind: "score".into(),
                        points: score.points * value,
                        text: format!("score of {} is {value:.2}", score.model),
                    });
                }
            }
            reasons.sort_by(|a, b| b.points.abs().total_cmp(&a.points.abs()));
            let points = reasons.iter().fold(0.0, |sum, r| sum + r.points);
            candidates.push((points, index, reasons));
        }
        // Most points first; ties in editorial order.
        candidates.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let mut items = Vec::new();
        let mut held_out = Vec::new();
        for (position, (points, index, reasons)) in candidates.into_iter().enumerate() {
            let item = &self.items[index];
            let spec = &item.spec;
            if items.len() >= limit {
                excluded.push(Excluded {
                    id: spec.id.clone(),
                    why: format!("ranked below the limit of {limit} ({points:.1} points)"),
                });
                continue;
            }
            if in_holdout(
                &format!("{OFFER_PREFIX}{}", spec.id),
                &facts.id,
                spec.holdout,
            ) {
                held_out.push(HeldOut {
                    id: spec.id.clone(),
                    version: item.version,
                    rank: position + 1,
                });
                continue;
            }
            let rank = items.len() + 1;
            let mut properties = serde_json::Map::new();
            properties.insert(settings.item_property.clone(), spec.id.clone().into());
            properties.insert("name".into(), spec.title.clone().into());
            if let Some(placement) = placement {
                properties.insert("position".into(), placement.into());
            }
            properties.insert("rank".into(), rank.into());
            properties.insert("version".into(), item.version.into());
            items.push(Offer {
                id: spec.id.clone(),
                version: item.version,
                title: spec.title.clone(),
                description: spec.description.clone(),
                kind: spec.kind,
                rank,
                points,
                reasons,
                content: spec.content.clone(),
                tracking: Tracking {
                    impression: TrackingEvent {
                        event: settings.impression_step.clone(),
                        properties: properties.clone(),
                    },
                    click: TrackingEvent {
                        event: settings.click_step.clone(),
                        properties,
                    },
                },
            });
        }
        Ranking {
            items,
            held_out,
            excluded,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use waymark_model::{IngestContext, Timestamp};

    /// 2026-03-02T00:00:00Z, µs.
    const T0: i64 = 1_772_409_600_000_000;
    const HOUR: i64 = 3_600_000_000;

    fn event(user: &str, value: serde_json::Value, at: i64) -> Event {
        let mut value = value;
        value["userId"] = json!(user);
        value["timestamp"] = json!(chrono::DateTime::from_timestamp_micros(at)
            .unwrap()
            .to_rfc3339());
        value["messageId"] = json!(format!("m-{user}-{at}"));
        Event::from_segment_value(value, &IngestContext::at(Timestamp(at))).unwrap()
    }

    fn on(user: &str, os: &str, model: &str, step: &str, at: i64) -> Event {
        event(
            user,
            json!({"type": "track", "event": step,
                   "context": {"os": {"name": os}, "device": {"model": model}}}),
            at,
        )
    }

    const CATALOGUE: &str = r#"
[[items]]
id = "iphone-accessories"
title = "Accessories for your iPhone"
placements = ["home"]
eligible = 'customer.attributes.device.exists(d, d.startsWith("iPhone"))'
affinity = { platform = ["iOS"] }

[[items]]
id = "android-accessories"
title = "Accessories for your Android phone"
eligible = '"Android" in customer.attributes.platform'
affinity = { platform = ["Android"] }

[[items]]
id = "installation"
title = "Book an installation"
priority = 5
affinity = { products = ["Smart Lock"], stage = ["Buy"] }
boosts = [{ when = 'days_since("Order Completed") < 3', points = 4, reason = "ordered in the last 3 days" }]
max_impressions = 2

[[items]]
id = "newsletter"
title = "Our newsletter"
kind = "content"
priority = 1
ends = "2026-03-01"
"#;

    fn catalogue(text: &str) -> Catalogue {
        CatalogueFile::from_toml(text)
            .unwrap()
            .compile(&Known::default(), &BTreeSet::new(), &|_| 1)
            .unwrap_or_else(|errors| panic!("{errors}"))
    }

    fn stages() -> Vec<Stage> {
        vec![Stage::new(
            "Buy",
            vec!["Checkout*".into(), "Order Completed".into()],
        )]
    }

    #[test]
    fn an_iphone_owner_gets_iphone_accessories_first_and_an_android_owner_never() {
        let catalogue = catalogue(CATALOGUE);
        let iphone = [on("a", "iOS", "iPhone 15", "Product Viewed", T0)];
        let facts = catalogue.facts("a", &iphone, &stages());
        let ranking = catalogue.rank(&facts, Some("home"), T0 + HOUR, None);
        let ids: Vec<&str> = ranking.items.iter().map(|o| o.id.as_str()).collect();
        assert_eq!(ids, ["iphone-accessories", "installation"]);
        assert_eq!(ranking.items[0].points, 10.0);
        assert_eq!(ranking.items[0].reasons[0].text, "platform is iOS");
        assert_eq!(
            ranking.items[0].tracking.impression.properties["promotion_id"],
            "iphone-accessories"
        );
        let why: BTreeMap<&str, &str> = ranking
            .excluded
            .iter()
            .map(|e| (e.id.as_str(), e.why.as_str()))
            .collect();
        assert!(
            why["android-accessories"].starts_with("not eligible"),
            "{why:?}"
        );
        assert_eq!(why["newsletter"], "ended 2026-03-01");

        let android = [on("b", "Android", "Pixel 8", "Product Viewed", T0)];
        let facts = catalogue.facts("b", &android, &stages());
        let ranking = catalogue.rank(&facts, Some("home"), T0 + HOUR, None);
        assert!(ranking.items.iter().all(|o| o.id != "iphone-accessories"));
        assert_eq!(ranking.items[0].id, "android-accessories");
        assert_eq!(ranking.items[0].reasons[0].text, "platform is Android");
    }

    #[test]
    fn products_stage_boosts_and_impressions_rank_and_retire_an_item() {
        let catalogue = catalogue(CATALOGUE);
        let order = event(
            "c",
            json!({"type": "track", "event": "Order Completed", "properties": {"products": [{"name": "Smart Lock"}, {"name": "Bulb"}]}}),
            T0,
        );
        let facts = catalogue.facts("c", std::slice::from_ref(&order), &stages());
        assert_eq!(facts.attributes["products"], ["Bulb", "Smart Lock"]);
        assert_eq!(facts.current_stage.as_deref(), Some("Buy"));
        let ranking = catalogue.rank(&facts, None, T0 + HOUR, None);
        let install = &ranking.items[0];
        assert_eq!(install.id, "installation");
        // 5 priority + 10 product + 10 stage + 4 recent order.
        assert_eq!(install.points, 29.0);
        assert_eq!(install.reasons.len(), 4);
        // Four days later the boost is gone.
        let later = catalogue.rank(&facts, None, T0 + 96 * HOUR, None);
        assert_eq!(later.items[0].points, 25.0);
        // Shown twice: retired.
        let view = |at| {
            event(
                "c",
                json!({"type": "track", "event": "Promotion Viewed", "properties": {"promotion_id": "installation"}}),
                at,
            )
        };
        let events = [order.clone(), view(T0 + 1), view(T0 + 2)];
        let facts = catalogue.facts("c", &events, &stages());
        let ranking = catalogue.rank(&facts, None, T0 + HOUR, None);
        assert!(ranking.items.iter().all(|o| o.id != "installation"));
        assert!(ranking
            .excluded
            .iter()
            .any(|e| e.id == "installation" && e.why.contains("max_impressions 2")));
        // A click retires it at once.
        let click = event(
            "c",
            json!({"type": "track", "event": "Promotion Clicked", "properties": {"promotion_id": "installation"}}),
            T0 + 3,
        );
        let facts = catalogue.facts("c", &[order, click], &stages());
        let ranking = catalogue.rank(&facts, None, T0 + HOUR, None);
        assert!(ranking.items.iter().all(|o| o.id != "installation"));
    }

    #[test]
    fn a_model_score_and_segments_rank_items_and_say_so() {
        let catalogue = CatalogueFile::from_toml(
            r#"
[[items]]
id = "rescue"
title = "Help for customers at risk"
score = { model = "get-stuck", points = 50 }
[[items]]
id = "loyal"
title = "For our regulars"
priority = 10
eligible = 'in_segment("regulars")'
"#,
        )
        .unwrap()
        .compile(
            &Known {
                steps: None,
                models: Some(["get-stuck".to_string()].into_iter().collect()),
            },
            &["regulars".to_string()].into_iter().collect(),
            &|_| 1,
        )
        .unwrap_or_else(|errors| panic!("{errors}"));
        let mut facts = catalogue.facts("a", &[], &[]);
        // Without a score yet, the model term is absent; outside the segment, the item is not eligible.
        let ranking = catalogue.rank(&facts, None, T0, None);
        assert_eq!(ranking.items.len(), 1);
        assert_eq!(ranking.items[0].points, 0.0);
        facts.scores.insert("get-stuck".into(), 0.4);
        facts.segments.insert("regulars".into());
        let ranking = catalogue.rank(&facts, None, T0, None);
        let ids: Vec<&str> = ranking.items.iter().map(|o| o.id.as_str()).collect();
        assert_eq!(ids, ["rescue", "loyal"]);
        assert_eq!(ranking.items[0].points, 20.0);
        assert_eq!(
            ranking.items[0].reasons[0].text,
            "score of get-stuck is 0.40"
        );
    }

    #[test]
    fn held_out_customers_are_not_shown_the_item_and_are_said_to_be_held_out() {
        let catalogue = catalogue(
            r#"
[[items]]
id = "offer"
title = "An offer"
holdout = 0.5
[[items]]
id = "other"
title = "Another"
"#,
        );
        let mut held = 0;
        for index in 0..200 {
            let id = format!("u{index}");
            let facts = catalogue.facts(&id, &[], &[]);
            let ranking = catalogue.rank(&facts, None, T0, Some(1));
            if ranking.held_out.iter().any(|h| h.id == "offer") {
                held += 1;
                assert_eq!(ranking.items[0].id, "other");
                assert_eq!(ranking.held_out[0].rank, 1);
            } else {
                assert_eq!(ranking.items[0].id, "offer");
            }
        }
        assert!((70..130).contains(&held), "{held}");
    }

    #[test]
    fn a_bad_catalogue_is_refused_with_every_problem_named() {
        let file = CatalogueFile::from_toml(
            r#"
[[items]]
id = "Bad Id"
title = ""
eligible = 'customer.attributes.platfrom == []'
affinity = { plattform = ["iOS"] }
holdout = 1.5
[[items]]
id = "x"
title = "x"
boosts = [{ when = 'count("Nope") > 1', points = 1 }]
score = { model = "missing", points = 3 }
ends = "soon"
"#,
        )
        .unwrap();
        let known = Known {
            steps: Some(["Order Completed".to_string()].into_iter().collect()),
            models: Some(BTreeSet::new()),
        };
        let errors = file.compile(&known, &BTreeSet::new(), &|_| 1).unwrap_err();
        let text = errors.to_string();
        for expected in [
            "items[0].id: 'Bad Id' is not an item id",
            "items[0].title: an item needs a title",
            "items[0].holdout",
            "items[0].affinity.plattform: the catalogue has no attribute `plattform`: did you mean `platform`?",
            "items[0].eligible at 1:20: the catalogue defines no attribute `platfrom`: did you mean `customer.attributes.platform`?",
            "items[x].boosts[0].when at 1:7: unknown step 'Nope'",
            "items[x].score.model: no saved model 'missing'",
            "items[x].ends: 'soon' is not a time",
        ] {
            assert!(text.contains(expected), "{expected}\nnot in\n{text}");
        }
        // Attributes are the catalogue's: a segment's condition may not read them.
        let rules = crate::RulesFile::from_toml(
            "[[segments]]\nname = \"s\"\ncondition = '\"iOS\" in customer.attributes.platform'\n",
        )
        .unwrap();
        let error = rules.compile(&Known::default(), &|_| 1).unwrap_err();
        assert!(
            error.to_string().contains("known only in the catalogue"),
            "{error}"
        );
    }
}
