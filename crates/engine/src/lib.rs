//! Waymark's engine: the one way into the product for the server and the CLI. An [`Engine`] owns the journey
//! store and offers ingest (parse → validate → stitch → append), bulk import and export, identity operations,
//! customer views and every analysis of the [`registry`].
//!
//! - [`ingest`]: Segment wire-format bodies → accepted events plus failed-event records with reasons.
//! - [`import`]: CSV, JSON Lines, Parquet and XES files (optionally gzip-compressed), streamed in constant memory.
//! - [`demo`]: a seeded smart-home retailer with planted friction, documented in `docs/demo.md`.
//! - [`registry`]: every analysis, declared once; routes, subcommands and schemas come from it.
//! - [`synthetic`]: seeded benchmark journeys.

pub mod blueprints;
pub mod demo;
mod error;
mod filter_notes;
pub mod fuzzing;
pub mod import;
pub mod ingest;
pub mod keys;
pub mod lift;
pub mod live;
pub mod models;
pub mod monitors;
pub mod nba;
pub mod registry;
mod report;
pub mod rights;
pub mod rules;
pub mod simulate;
pub mod synthetic;

pub use error::Error;
pub use report::ReportOptions;
pub use waymark_analytics::query::text::thousands;
pub use waymark_analytics::{Direction, FlowsRequest, FunnelRequest, Query, Scope};
pub use waymark_model::Identifier;
/// Prediction's types (evaluations, models), reached through the engine like every other product type.
pub use waymark_predict as predict;
pub use waymark_store::{
    AppendOutcome, EdgeReason, FailedEvent, IdentityWarning, MergeEdge, StoreOptions, StoreStats,
};

use schemars::JsonSchema;
use serde::Serialize;
use std::path::Path;
use std::sync::Arc;
use waymark_analytics::{DataInfo, Runner, Spec};
use waymark_model::{JourneySet, Timestamp};
use waymark_store::{LinkOutcome, Store};

/// The journey engine over one data directory.
pub struct Engine {
    store: Store,
    runner: Runner,
    live: live::Live,
    rules: rules::RulesLive,
    nba: nba::NbaLive,
    /// The last views [`Engine::customer_view`] derived: the view it looked at, the scope's choices, and the
    /// result (`None`: the view itself).
    derived: DerivedViews,
}

/// Recently derived views, newest last: (source view, (test traffic, identity steps, split platforms), result).
type DerivedViews = std::sync::Mutex<
    Vec<(
        std::sync::Weak<JourneySet>,
        (bool, bool, bool),
        Option<Arc<JourneySet>>,
    )>,
>;

/// Derived views kept: one per journey view an analysis reads (its property columns), for the pages in use.
const DERIVED_VIEWS: usize = 8;

/// What an ingest call did: JSON `{success, accepted, duplicates, failed, errors}`, the collector's answer.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct IngestOutcome {
    pub success: bool,
    /// New events made durable.
    pub accepted: usize,
    /// Events whose `messageId` was already stored; stored once.
    pub duplicates: usize,
    /// Invalid events of the request, kept in the failed-events log.
    pub failed: usize,
    /// The first 20 of those, with their reasons.
    pub errors: Vec<EventProblem>,
}

/// Why one event of a request was refused.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct EventProblem {
    /// The event's position in the batch (from 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    /// The event's `messageId`, when it had one.
    #[serde(default, rename = "messageId", skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    pub code: String,
    pub message: String,
}

/// One event of a customer's timeline.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct TimelineEvent {
    pub time: Timestamp,
    pub channel: String,
    pub device: Option<String>,
    pub step: String,
    /// The identifier the event came with (`user:…` or `anon:…`).
    pub identifier: String,
    #[serde(rename = "type")]
    pub event_type: String,
    #[serde(rename = "messageId")]
    pub message_id: String,
    pub properties: serde_json::Value,
    pub traits: serde_json::Value,
    /// The answer this event carries ("was this helpful?", a rating, NPS, a comment), read with the feedback
    /// analysis's default field names; absent when it carries none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feedback: Option<waymark_analytics::feedback::EventFeedback>,
}

/// Everything held about one customer: identifiers, merge history, refused merges and the time-ordered journey
/// across channels and devices. The same document for `GET /v1/customers/{id}` and `waymark identity show`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct CustomerDoc {
    pub customer_id: String,
    pub identifiers: Vec<Identifier>,
    pub merges: Vec<MergeEdge>,
    pub warnings: Vec<IdentityWarning>,
    pub n_events: usize,
    pub events: Vec<TimelineEvent>,
    /// Every saved model's score of the customer now, with what drove it (empty without models).
    pub scores: Vec<live::ModelScore>,
}

/// What a merge did.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct MergeOutcome {
    pub merged: bool,
    /// The new edge's id, when merged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edge: Option<u32>,
    /// Why not, when not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Engine {
    /// Opens (or creates) the store in `dir`; analyses run on every core.
    pub fn open(dir: impl AsRef<Path>, options: StoreOptions) -> Result<Engine, Error> {
        Ok(Engine {
            store: Store::open(dir, options)?,
            runner: Runner::all_cores(),
            live: live::Live::default(),
            rules: rules::RulesLive::default(),
            nba: nba::NbaLive::default(),
            derived: Default::default(),
        })
    }

    pub fn dir(&self) -> &Path {
        self.store.dir()
    }

    pub fn stats(&self) -> StoreStats {
        self.store.stats()
    }

    /// While the disk refuses writes (full, or read-only): which, and the last refusal's message.
    pub fn disk_fault(&self) -> Option<(waymark_store::DiskFault, String)> {
        self.store.disk_fault()
    }

    /// Appends a parsed request's events (and records its refused ones), durably: returns once they are fsynced.
    pub fn ingest(&self, parsed: ingest::ParsedRequest) -> Result<IngestOutcome, Error> {
        let errors = parsed
            .failed
            .iter()
            .enumerate()
            .take(20)
            .map(|(n, failed)| {
                let (index, message_id) = parsed.failed_at.get(n).cloned().unzip();
                EventProblem {
                    index,
                    message_id: message_id.flatten(),
                    code: failed.code.clone(),
                    message: failed.message.clone(),
                }
            })
            .collect();
        let rescore = self.rescoring_keys(&parsed.events);
        let outcome = self.store.append(parsed.events, parsed.failed)?;
        self.queue_rescoring(rescore);
        if outcome.accepted > 0 {
            self.rules_events_stored();
        }
        Ok(IngestOutcome {
            success: true,
            accepted: outcome.accepted,
            duplicates: outcome.duplicates,
            failed: outcome.failed,
            errors,
        })
    }

    /// Imports one file; `progress(bytes_read, total_bytes)` after every batch.
    pub fn import_file(
        &self,
        path: &Path,
        options: &import::ImportOptions,
        progress: &dyn Fn(u64, u64),
    ) -> Result<import::ImportReport, Error> {
        Ok(import::import_file(&self.store, path, options, progress)?)
    }

    /// Generates and ingests a demo business; `on_customer` after each customer. With the planted intervention
    /// the demo's trigger is saved first and the rules worker decides it live on the data's clock while the
    /// events arrive in time order, its reminders written into the journeys (returns once all are).
    pub fn ingest_demo(
        self: &Arc<Self>,
        config: demo::DemoConfig,
        on_customer: &mut dyn FnMut(),
    ) -> Result<(), Error> {
        for text in demo::blueprints(config.business) {
            self.save_blueprint(&blueprints::parse_blueprint(text, "the demo's blueprint")?)?;
        }
        if let Some(text) = demo::catalogue(config.business) {
            self.save_catalogue(&nba::CatalogueFile::from_toml(text).map_err(Error::Catalogue)?)?;
        }
        if let Some(text) = demo::planted_rules(config.plant) {
            self.save_rules(&rules::RulesFile::from_toml(&text).map_err(Error::Rules)?)?;
        }
        if !config.plant.intervention {
            return Ok(demo::ingest(&self.store, config, on_customer, &mut || {})?);
        }
        self.start_rules(rules::RulesOptions {
            clock: rules::RulesClock::EventTime,
            min_backoff: std::time::Duration::from_millis(50),
            max_backoff: std::time::Duration::from_secs(1),
            ..rules::RulesOptions::default()
        })
        .map_err(|error| Error::Model(format!("the rules worker did not start: {error}")))?;
        let ingested = demo::ingest(&self.store, config, on_customer, &mut || {
            self.rules_catch_up_hint()
        });
        let settled = ingested
            .map_err(Error::from)
            .and_then(|()| self.rules_settle());
        self.stop_rules();
        settled
    }

    /// Every event to a Parquet file, in journey order; `progress(rows)` as it goes. Returns the rows written.
    pub fn export_parquet(&self, path: &Path, progress: impl FnMut(u64)) -> Result<u64, Error> {
        Ok(waymark_store::export_parquet(&self.store, path, progress)?)
    }

    /// The customer `identifier` (a `userId`, an `anonymousId`, or a `user:`/`anon:` key) belongs to.
    pub fn customer(&self, identifier: &str) -> Result<Option<CustomerDoc>, Error> {
        let Some(view) = self.store.customer(identifier)? else {
            return Ok(None);
        };
        let answers = waymark_analytics::feedback::FeedbackRequest::default();
        let events: Vec<TimelineEvent> = view
            .events
            .into_iter()
            .map(|entry| TimelineEvent {
                feedback: answers.answer(&entry.event.properties),
                time: entry.time,
                channel: entry.channel,
                device: entry.device,
                step: entry.step,
                identifier: entry.identifier,
                event_type: serde_json::to_value(entry.event.event_type)
                    .ok()
                    .and_then(|kind| kind.as_str().map(str::to_string))
                    .unwrap_or_default(),
                message_id: entry.event.message_id,
                properties: serde_json::to_value(&entry.event.properties)
                    .unwrap_or(serde_json::Value::Null),
                traits: serde_json::to_value(&entry.event.traits)
                    .unwrap_or(serde_json::Value::Null),
            })
            .collect();
        // A model that cannot be read does not hide the customer: it is logged and left out.
        let scores = self
            .customer_scores(identifier)
            .unwrap_or_else(|error| {
                tracing::warn!(%error, "scoring a customer failed");
                None
            })
            .unwrap_or_default();
        Ok(Some(CustomerDoc {
            scores,
            customer_id: view.customer_id,
            identifiers: view.identifiers,
            merges: view.merges,
            warnings: view.warnings,
            n_events: events.len(),
            events,
        }))
    }

    /// The arrival sequence number of the latest stored event, if any (what the rules worker has read through
    /// is compared with it).
    pub fn last_seq(&self) -> Option<u64> {
        self.store.last_seq()
    }

    /// Merges every segment into one, re-clustered by the current customers (what `waymark compact` runs).
    pub fn compact(&self) -> Result<(), Error> {
        Ok(self.store.compact()?)
    }

    /// Forces `a` and `b` into one customer (an operator's merge; guards bypassed, recorded as `manual`).
    pub fn merge(&self, a: &str, b: &str) -> Result<MergeOutcome, Error> {
        Ok(match self.store.merge(a, b)? {
            LinkOutcome::Merged(edge) => MergeOutcome {
                merged: true,
                edge: Some(edge),
                reason: None,
            },
            LinkOutcome::AlreadyLinked => MergeOutcome {
                merged: false,
                edge: None,
                reason: Some("already one customer".into()),
            },
            LinkOutcome::Refused { warning, .. } => MergeOutcome {
                merged: false,
                edge: None,
                reason: Some(warning.message),
            },
        })
    }

    /// Undoes merge edge `edge`; an edge that is not active is not found.
    pub fn unmerge(&self, edge: u32) -> Result<(), Error> {
        if self.store.unmerge(edge)? {
            Ok(())
        } else {
            Err(Error::NotFound(format!(
                "there is no active merge edge {edge}; list them with GET /v1/identity/edges or `waymark identity edges`"
            )))
        }
    }

    /// Every merge edge, active and undone, with provenance.
    pub fn merge_edges(&self) -> Vec<MergeEdge> {
        self.store.merge_edges()
    }

    /// The newest `limit` failed (refused) events.
    pub fn failed_events(&self, limit: usize) -> Result<Vec<FailedEvent>, Error> {
        Ok(self.store.failed_events(limit)?)
    }

    /// Runs one analysis: the request checked, the journeys loaded with the columns it reads, scoped, analysed.
    pub fn analyse<Q: Query>(&self, request: &Q) -> Result<Q::Report, Error> {
        Ok(self.analyse_with_notes(request)?.0)
    }

    /// [`Engine::analyse`], and the notes on its filter (a property no event has, a value it never takes, a step
    /// or channel pattern that matches nothing: what would otherwise read as a result of zero).
    pub fn analyse_with_notes<Q: Query>(
        &self,
        request: &Q,
    ) -> Result<(Q::Report, Vec<String>), Error> {
        let step_names = self.store.step_names();
        let spec = request.spec(&DataInfo {
            step_names: &step_names,
        })?;
        let scope = request.scope().plan()?;
        let mut properties = spec.properties();
        for name in &scope.properties {
            if !properties.contains(name) {
                properties.push(name.clone());
            }
        }
        let (scores, properties): (Vec<String>, Vec<String>) = properties
            .into_iter()
            .partition(|name| live::is_score_column(name));
        let (segments, properties): (Vec<String>, Vec<String>) = properties
            .into_iter()
            .partition(|name| rules::is_segment_column(name));
        let view = self.store.journey_view(&properties)?;
        let view = self.customer_view(view, request.scope());
        let notes = self.filter_notes(request.scope(), &view);
        let view = if scores.is_empty() {
            view
        } else {
            Arc::new(self.with_score_columns(&view, &scores)?)
        };
        let view = if segments.is_empty() {
            view
        } else {
            Arc::new(self.with_segment_columns(&view, &segments)?)
        };
        let journeys = scope.apply(view)?;
        Ok((spec.run(&journeys, &self.runner)?, notes))
    }

    /// Runs the analysis `name` for a JSON request (as `POST /v1/analyses/{name}` gets it); with `rows`, the
    /// report as a table too.
    pub fn analyse_json(
        &self,
        name: &str,
        request: serde_json::Value,
        rows: Option<usize>,
    ) -> Result<registry::Ran, Error> {
        registry::analysis(name)?.run(self, request, rows)
    }

    /// Journey views built so far: (from every segment, extended with the events appended since another).
    pub fn view_builds(&self) -> (u64, u64) {
        self.store.view_builds()
    }

    /// Every journey (hot columns only), as analyses read them.
    pub fn journeys(&self) -> Arc<JourneySet> {
        self.store
            .journey_view(&[])
            .expect("a view without property columns reads no payloads")
    }

    /// Builds the journey views the UI's first pages read (the overview's and friction's property columns) so the
    /// first visitor does not wait. Returns how many were built.
    pub fn warm_up(&self) -> usize {
        let step_names = self.store.step_names();
        let data = DataInfo {
            step_names: &step_names,
        };
        let mut views: Vec<Vec<String>> = Vec::new();
        if let Ok(spec) = waymark_analytics::OverviewRequest::default().spec(&data) {
            views.push(spec.properties());
        }
        // Friction's columns at its defaults (its goals are step names, which read no column).
        views.push(waymark_analytics::Friction::default().properties());
        views
            .iter()
            .filter(|properties| self.store.journey_view(properties).is_ok())
            .count()
    }

    /// Builds what the first write needs (the exactly-once key set) now rather than at the first append.
    pub fn prepare_writes(&self) {
        self.store.prepare_writes()
    }

    /// Writes the in-memory table out as a segment.
    pub fn flush(&self) -> Result<(), Error> {
        Ok(self.store.flush()?)
    }

    /// Flushes and closes the store.
    pub fn close(&self) -> Result<(), Error> {
        Ok(self.store.close()?)
    }

    /// The journeys as analyses see them by default ([`customer_view_of`]: test traffic out, traits on every
    /// event, customer steps), cached per view and scope choices.
    fn customer_view(
        &self,
        view: Arc<JourneySet>,
        scope: &waymark_analytics::Scope,
    ) -> Arc<JourneySet> {
        let key = (
            scope.test_traffic,
            scope.identity_steps,
            scope.split_platforms,
        );
        let mut cache = self
            .derived
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        cache.retain(|(seen, _, _)| seen.strong_count() > 0);
        if let Some((_, _, derived)) = cache.iter().find(|(seen, choices, _)| {
            *choices == key && seen.upgrade().is_some_and(|seen| Arc::ptr_eq(&seen, &view))
        }) {
            return derived.clone().unwrap_or(view);
        }
        let derived = customer_view_of(&view, scope).map(Arc::new);
        if cache.len() >= DERIVED_VIEWS {
            cache.remove(0);
        }
        cache.push((Arc::downgrade(&view), key, derived.clone()));
        derived.unwrap_or(view)
    }

    /// Stops as a crash would (tests only): nothing flushed, the lock released.
    pub fn simulate_crash(self) {
        self.store.simulate_crash()
    }
}

/// The journeys as analyses see them by default, made in one copy of `view`: without the simulated customers of
/// scenario runs (ids starting [`simulate::TEST_PREFIX`]) unless the scope includes test traffic; with each
/// `traits.NAME` column as a customer trait — an `identify` call states it on its own event, and it belongs to every
/// event of the customer: each journey's latest value (PostHog's person properties, as of now), so a filter on a
/// trait keeps or leaves out whole customers (`traits.email!~@acme.com`) and a breakdown by one groups them; and
/// with the customer steps of [`waymark_analytics::customer_step_codes`] (identity calls out, an app screen named like a
/// web page counted as that page) unless the scope keeps them. `None` when none of it changes anything.
fn customer_view_of(view: &JourneySet, scope: &waymark_analytics::Scope) -> Option<JourneySet> {
    let n = view.n_journeys();
    let test: Option<Vec<bool>> = (!scope.test_traffic)
        .then(|| {
            (0..n)
                .map(|j| view.customer_ids[j].starts_with(simulate::TEST_PREFIX))
                .collect::<Vec<bool>>()
        })
        .filter(|test| test.contains(&true));
    let steps = waymark_analytics::customer_step_codes(
        &view.step_names,
        scope.identity_steps,
        scope.split_platforms,
    );
    // Per trait column, each journey's latest value — read before identity calls are dropped: those calls are
    // where the traits are.
    let traits: Vec<(usize, Vec<u32>)> = view
        .properties
        .iter()
        .enumerate()
        .filter(|(_, column)| column.name.starts_with("traits."))
        .map(|(index, column)| {
            let latest = (0..n)
                .map(|j| {
                    column.codes[view.offsets[j]..view.offsets[j + 1]]
                        .iter()
                        .rev()
                        .find(|code| **code != 0)
                        .copied()
                        .unwrap_or(0)
                })
                .collect();
            (index, latest)
        })
        .collect();
    if test.is_none() && steps.is_none() && traits.is_empty() {
        return None;
    }
    let drops_step = steps
        .as_ref()
        .is_some_and(|(target, _)| target.contains(&u32::MAX));
    let (mut set, origins) = if test.is_some() || drops_step {
        let mut journey = 0;
        view.select_with_origins(|event| {
            // Events are asked for in order, so the journey only moves forward.
            while view.offsets[journey + 1] <= event {
                journey += 1;
            }
            !test.as_ref().is_some_and(|test| test[journey])
                && steps
                    .as_ref()
                    .is_none_or(|(target, _)| target[view.step[event] as usize] != u32::MAX)
        })
    } else {
        (view.clone(), (0..n).collect())
    };
    if let Some((target, names)) = steps {
        for step in &mut set.step {
            *step = target[*step as usize];
        }
        set.step_names = names;
    }
    for (index, latest) in traits {
        let codes = &mut set.properties[index].codes;
        for (journey, origin) in origins.iter().enumerate() {
            if latest[*origin] != 0 {
                codes[set.offsets[journey]..set.offsets[journey + 1]].fill(latest[*origin]);
            }
        }
    }
    Some(set)
}

/// Attribution over a path table in ChannelAttribution's format (`path;total_conversions;total_conversion_value;
/// total_null`, touchpoints joined by `>`), read from `text`: every model but time decay (a path table has no
/// times), the Markov chain of order `order`. The report as JSON, and as a table of `rows` touchpoints.
pub fn attribute_path_table(
    text: &str,
    order: usize,
    transition_matrix: bool,
    rows: usize,
) -> Result<registry::Ran, Error> {
    use waymark_analytics::attribution::{attribute, check_order, PathTable};
    check_order(order)?;
    let table = PathTable::parse_channelattribution(text)?;
    let report = attribute(&table, order, None, transition_matrix);
    Ok(registry::Ran {
        json: serde_json::to_value(&report).expect("reports serialise"),
        text: Some(waymark_analytics::query::attribution_text(&report, rows)),
        notes: Vec::new(),
    })
}
