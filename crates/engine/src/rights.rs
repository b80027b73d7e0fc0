//! Data subjects' rights: everything held about a customer, exported as one document (GDPR art. 15 and 20), and
//! deleted everywhere it is held (art. 17) — the store (events, identifiers, merges, refused events), the rules
//! (state, segment history, trigger instances, deliveries still due), live scores, catalogue offers, and saved models that learned
//! a value only that customer had.

use crate::rules::{CustomerRules, Forgetting, ForgottenRules};
use crate::{CustomerDoc, Engine, Error, TimelineEvent};
use schemars::JsonSchema;
use serde::Serialize;
use std::collections::HashSet;
use waymark_model::Timestamp;
use waymark_store::{FailedEvent, ForgetOutcome};

/// Everything Waymark holds about one customer.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct CustomerExport {
    /// When the export was made.
    pub exported_at: Timestamp,
    /// Identifiers, merge history, refused merges, every event with its properties and traits, and every saved
    /// model's score now.
    pub customer: CustomerDoc,
    /// The events that give feedback on a step (they carry the feedback fields the friction analysis reads:
    /// `helpful` or a score property by default).
    pub feedback: Vec<TimelineEvent>,
    /// Segments, segment history, trigger instances and their deliveries.
    pub rules: CustomerRules,
    /// Refused events that name one of the customer's identifiers.
    pub failed_events: Vec<FailedEvent>,
    /// Catalogue items offered to the customer (or held out), first offer of each.
    pub offers: Vec<crate::nba::OfferRecord>,
}

/// What deleting a customer removed.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct CustomerDeletion {
    /// Events, identifiers and refused events removed from the store.
    pub store: ForgetOutcome,
    /// What the rules held.
    pub rules: ForgottenRules,
    /// Live scores dropped.
    pub scores: usize,
    /// Offer records removed (`nba/offers.log`).
    pub offers: usize,
    /// Saved models trained again because they had kept a value only this customer had.
    pub models_retrained: Vec<String>,
}

/// The ids a customer is filed under outside the store (each identifier's value: the rules and live scores key
/// customers by display id, which is one of them).
pub(crate) fn filed_ids(
    identifiers: &[waymark_model::Identifier],
    customer_id: &str,
) -> HashSet<String> {
    let mut ids: HashSet<String> = identifiers
        .iter()
        .map(|identifier| identifier.value.clone())
        .collect();
    ids.insert(customer_id.to_string());
    ids
}

/// Whether an event carries feedback as the friction analysis reads it.
fn is_feedback(event: &TimelineEvent) -> bool {
    let settings = waymark_analytics::Friction::default();
    let Some(properties) = event.properties.as_object() else {
        return false;
    };
    properties.contains_key(&settings.helpful_property)
        || settings
            .score_properties
            .iter()
            .any(|name| properties.contains_key(name))
}

impl Engine {
    /// Everything held about the customer `identifier` belongs to; `None` when no customer has it.
    pub fn export_customer(&self, identifier: &str) -> Result<Option<CustomerExport>, Error> {
        let Some(customer) = self.customer(identifier)? else {
            return Ok(None);
        };
        let ids = filed_ids(&customer.identifiers, &customer.customer_id);
        let keys: Vec<String> = customer
            .identifiers
            .iter()
            .map(|identifier| identifier.key())
            .collect();
        let feedback = customer
            .events
            .iter()
            .filter(|event| is_feedback(event))
            .cloned()
            .collect();
        Ok(Some(CustomerExport {
            exported_at: Timestamp::now(),
            rules: self.customer_rules(&ids)?,
            failed_events: self.store.failed_events_naming(&keys)?,
            offers: self
                .offer_records()
                .into_iter()
                .filter(|record| ids.contains(&record.customer))
                .collect(),
            feedback,
            customer,
        }))
    }

    /// Deletes the customer `identifier` belongs to from everything Waymark keeps (see the module doc); a
    /// deletion record keeps its identifiers out of everything appended, replayed or imported later. `None` when
    /// no customer has it.
    pub fn delete_customer(&self, identifier: &str) -> Result<Option<CustomerDeletion>, Error> {
        let Some(view) = self.store.customer(identifier)? else {
            return Ok(None);
        };
        let ids = filed_ids(&view.identifiers, &view.customer_id);
        let keys: Vec<String> = view
            .identifiers
            .iter()
            .map(|identifier| identifier.key())
            .collect();
        // The values each model reads that this customer had, to see afterwards which only it had.
        let models = self.current_models().unwrap_or_default();
        let mut model_values: Vec<(String, Vec<String>, HashSet<String>)> = Vec::new();
        for model in &models {
            let columns = model.info.spec.feature_columns();
            let mut values = HashSet::new();
            if let Some(journey) = self.store.customer_journey(identifier, &columns)? {
                for column in &journey.properties {
                    values.extend(
                        column
                            .values
                            .iter()
                            .filter_map(|v| v.as_str().map(String::from)),
                    );
                }
            }
            model_values.push((model.info.name.clone(), columns, values));
        }
        let Some(store) = self.store.forget(identifier)? else {
            return Ok(None);
        };
        let rules = self.forget_in_rules(Forgetting {
            customers: ids.clone(),
            keys,
        })?;
        let scores = self.forget_scores(&ids);
        let offers = self.forget_offers(&ids)?;
        let mut models_retrained = Vec::new();
        for (name, columns, values) in model_values {
            let remaining: HashSet<String> = self
                .store
                .journey_view(&columns)?
                .properties
                .iter()
                .flat_map(|column| column.values.iter())
                .filter_map(|value| value.as_str().map(String::from))
                .collect();
            let only_theirs: Vec<&String> = values
                .iter()
                .filter(|value| !remaining.contains(*value))
                .chain(ids.iter())
                .collect();
            let path = self.dir().join("models").join(format!("{name}.json"));
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            let holds = only_theirs
                .iter()
                .any(|value| text.contains(&serde_json::to_string(value).unwrap_or_default()));
            if holds {
                let spec = self.load_model(&name)?.info.spec;
                self.train_model(&name, &spec, &|_, _, _| {})?;
                models_retrained.push(name);
            }
        }
        Ok(Some(CustomerDeletion {
            store,
            rules,
            scores,
            offers,
            models_retrained,
        }))
    }
}
