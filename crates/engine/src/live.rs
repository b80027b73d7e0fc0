//! Live scores: while a server runs, every saved model's score of every customer, kept current as events arrive.
//!
//! An accepted event queues its customer (after the event is durable, so the acknowledgement never waits for a
//! model); one worker thread re-scores queued customers from their journey as the store holds it
//! ([`waymark_store::Store::customer_journey`]: the same steps, order and properties the full view has) and keeps
//! the latest score per customer and model. At start the worker scores every customer once from the full view.
//! A score is a pure function of the saved model and the customer's stored events, so after a restart the same
//! events give the same scores, whichever path computed them — what trigger rules firing on scores rely on.

use crate::models::{LoadedModel, ModelInfo};
use crate::{Engine, Error};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, PoisonError, RwLock};
use std::time::{Instant, SystemTime};
use waymark_model::JourneySet;
use waymark_predict::{Score, Sequences};

/// Histogram of the time to re-score one customer with every model (seconds).
pub const SCORING_LATENCY: &str = "waymark_scoring_seconds";

/// One model's current score of one customer.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct ModelScore {
    pub model: String,
    pub target: crate::models::Target,
    /// The probability, the days, or the likeliest next step's probability.
    pub value: f64,
    /// The score with what drove it.
    pub score: Score,
}

/// What the live scorer keeps of one model's score of one customer: the value, and what tells whether the
/// customer is still in flight for the model (so a ranking of the riskiest customers need not read every
/// customer's journey to leave out those who are not).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LiveValue {
    pub model: String,
    pub value: f64,
    /// The time of the customer's last event the model reads (µs).
    pub last_event: i64,
    /// For a goal model: the customer has reached the goal.
    pub reached_goal: bool,
}

impl LiveValue {
    /// `model`'s value of journey `index` of `sequences` as it stands (`reached_goal` as the caller found it);
    /// `None` when the journey has no step the model reads.
    pub(crate) fn of(
        model: &LoadedModel,
        sequences: &Sequences,
        index: usize,
        reached_goal: bool,
    ) -> Option<LiveValue> {
        let length = sequences.get(index).len();
        (length > 0).then(|| LiveValue {
            model: model.info.name.clone(),
            value: model.model().value(sequences, index, length),
            last_event: sequences.times_of(index)[length - 1],
            reached_goal,
        })
    }
}

/// The saved models, reloaded when their files change.
#[derive(Default)]
struct ModelCache {
    /// (name, modified, length) of each file when loaded.
    stamp: Vec<(String, Option<SystemTime>, u64)>,
    models: Vec<Arc<LoadedModel>>,
    /// Bumped at every reload.
    generation: u64,
}

/// Analyses read a saved model's current scores as a customer property: `score:NAME` (the score to three
/// decimals: the probability, the days, or the likeliest next step's probability) and `score-band:NAME` (its
/// tenth, "0.7–0.8", for breakdowns). Every event of a customer carries the customer's score now. (A colon is in
/// no property path, so no event property is shadowed.)
pub const SCORE_COLUMN: &str = "score:";
pub const SCORE_BAND_COLUMN: &str = "score-band:";

/// Whether a property name is a score column.
pub fn is_score_column(name: &str) -> bool {
    name.starts_with(SCORE_COLUMN) || name.starts_with(SCORE_BAND_COLUMN)
}

/// Customers re-scored between two messages to the rules worker.
const RESCORE_BATCH: usize = 256;

/// Queued instead of a customer key: the models changed, score everyone again.
const ALL: &str = "\0all";

/// The live state an engine keeps for a server.
#[derive(Default)]
pub(crate) struct Live {
    queue: Mutex<Option<mpsc::Sender<String>>>,
    /// Customer id → every model's latest score of the customer.
    scores: RwLock<HashMap<String, Vec<LiveValue>>>,
    models: Mutex<ModelCache>,
    /// The first full scoring is done.
    ready: AtomicBool,
    /// The model generation the live values are of.
    scored_generation: AtomicU64,
    /// Customers re-scored since start.
    rescored: AtomicU64,
    /// Models this process is training now.
    pub(crate) training: Mutex<Vec<Training>>,
    /// The latest event time scored (µs): where "now" is for the data, to tell in-flight journeys from those
    /// whose horizon has passed.
    latest: std::sync::atomic::AtomicI64,
}

/// A model being trained by this process, for a progress display.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Training {
    pub name: String,
    pub target: crate::models::Target,
    pub started_at: crate::Timestamp,
    /// `evaluating` (on the chronological split) or `fitting` (on every journey).
    pub phase: String,
    /// Boosting rounds done of the phase's total (0 of 0 while the journeys are read).
    pub done: usize,
    pub total: usize,
}

/// What the live scorer has done.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct LiveStatus {
    /// Every customer has been scored once since start.
    pub ready: bool,
    pub customers: usize,
    pub rescored: u64,
    pub models: Vec<String>,
    /// Models this process is training now (they are scored as soon as they are saved).
    pub training: Vec<Training>,
}

/// The earliest last-event time of a journey still in flight for `model`, when the data ends at `latest`: a
/// journey idle for longer than the model's horizon has its answer already (it did not reach the goal, or did
/// not get stuck, in time), so a score of it is history, not a prediction. Models without a horizon: every
/// journey.
pub(crate) fn in_flight_since(model: &LoadedModel, latest: i64) -> i64 {
    match model.info.horizon_us {
        Some(horizon) if latest > i64::MIN => latest.saturating_sub(horizon),
        _ => i64::MIN,
    }
}

impl Engine {
    /// Drops a deleted customer's live scores (filed under any of `ids`).
    pub(crate) fn forget_scores(&self, ids: &std::collections::HashSet<String>) -> usize {
        let mut scores = self
            .live
            .scores
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let before = scores.len();
        scores.retain(|customer, _| !ids.contains(customer));
        before - scores.len()
    }

    /// The models this process is training.
    pub(crate) fn training(&self) -> std::sync::MutexGuard<'_, Vec<Training>> {
        self.live
            .training
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The saved models, reloaded only when a model file changed.
    pub fn current_models(&self) -> Result<Vec<Arc<LoadedModel>>, Error> {
        Ok(self.models_and_generation()?.0)
    }

    /// The saved models and their generation (bumped whenever a model file changes); a change queues a full
    /// re-scoring when a live scorer runs.
    fn models_and_generation(&self) -> Result<(Vec<Arc<LoadedModel>>, u64), Error> {
        let dir = self.dir().join("models");
        let mut stamp: Vec<(String, Option<SystemTime>, u64)> = match std::fs::read_dir(&dir) {
            Ok(entries) => entries
                .filter_map(|entry| entry.ok())
                .filter_map(|entry| {
                    let name = entry.file_name().into_string().ok()?;
                    let stem = name.strip_suffix(".json")?.to_string();
                    if stem.starts_with('.') {
                        return None;
                    }
                    let metadata = entry.metadata().ok()?;
                    Some((stem, metadata.modified().ok(), metadata.len()))
                })
                .collect(),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(error) => return Err(Error::Model(format!("reading {}: {error}", dir.display()))),
        };
        stamp.sort();
        let mut cache = self
            .live
            .models
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if cache.stamp != stamp {
            cache.models = stamp
                .iter()
                .map(|(name, _, _)| self.load_model(name).map(Arc::new))
                .collect::<Result<_, _>>()?;
            cache.stamp = stamp;
            cache.generation += 1;
            self.queue_rescoring(vec![ALL.to_string()]);
        }
        Ok((cache.models.clone(), cache.generation))
    }

    /// Every saved model's score of the customer `identifier` belongs to, from its journey as stored now, with
    /// what drove each; `None` when no customer has the identifier.
    pub fn customer_scores(&self, identifier: &str) -> Result<Option<Vec<ModelScore>>, Error> {
        let models = self.current_models()?;
        if models.is_empty() {
            return Ok(self.store.customer(identifier)?.map(|_| Vec::new()));
        }
        let Some(journey) = self
            .store
            .customer_journey(identifier, &feature_union(&models))?
        else {
            return Ok(None);
        };
        Ok(Some(
            models
                .iter()
                .filter_map(|model| {
                    let sequences = model.sequences(&journey);
                    let length = sequences.get(0).len();
                    (length > 0).then(|| {
                        let score = model.model().score(&sequences, 0, length);
                        ModelScore {
                            model: model.info.name.clone(),
                            target: model.info.spec.target,
                            value: score.value(),
                            score,
                        }
                    })
                })
                .collect(),
        ))
    }

    /// Re-scores the customer `identifier` belongs to with every model and keeps the values.
    pub fn rescore(&self, identifier: &str) -> Result<(), Error> {
        self.rescore_many(&[identifier.to_string()])
    }

    /// Re-scores the customers of `identifiers` with every model and keeps the values: the models are looked up
    /// once, and the rules worker is told every new score in one message. A customer that cannot be read keeps
    /// its old scores and the others are re-scored; the first such error is returned.
    pub fn rescore_many(&self, identifiers: &[String]) -> Result<(), Error> {
        let models = self.current_models()?;
        if models.is_empty() || identifiers.is_empty() {
            return Ok(());
        }
        let columns = feature_union(&models);
        let mut changed = Vec::with_capacity(identifiers.len());
        let mut outcome = Ok(());
        for identifier in identifiers {
            match self.rescore_one(&models, &columns, identifier) {
                Ok(Some(scored)) => changed.push(scored),
                Ok(None) => {}
                Err(error) => {
                    if outcome.is_ok() {
                        outcome = Err(error);
                    }
                }
            }
        }
        self.rules_scores_changed(changed);
        outcome
    }

    /// One customer re-scored and its values kept: (display id, every model's value, its last event's time) for
    /// the rules worker; `None` when no customer has the identifier.
    fn rescore_one(
        &self,
        models: &[Arc<LoadedModel>],
        columns: &[String],
        identifier: &str,
    ) -> Result<Option<crate::rules::ScoreChange>, Error> {
        let started = Instant::now();
        let Some(journey) = self.store.customer_journey(identifier, columns)? else {
            return Ok(None);
        };
        let mut values: Vec<LiveValue> = Vec::with_capacity(models.len());
        for model in models {
            let reached = model.info.spec.target == crate::models::Target::Goal
                && crate::models::reached_goal(&model.info.spec, &journey, 0)?;
            values.extend(LiveValue::of(model, &model.sequences(&journey), 0, reached));
        }
        // "Now" for the data as the batch scorer has it: the latest event a model reads.
        if let Some(last) = values.iter().map(|value| value.last_event).max() {
            self.live.latest.fetch_max(last, Ordering::AcqRel);
        }
        let last = journey.ts.iter().max().copied().unwrap_or(0);
        let named: Vec<(String, f64)> = values
            .iter()
            .map(|value| (value.model.clone(), value.value))
            .collect();
        let customer = journey.customer_ids[0].to_string();
        self.live
            .scores
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(customer.clone(), values);
        self.live.rescored.fetch_add(1, Ordering::Relaxed);
        metrics::histogram!(SCORING_LATENCY).record(started.elapsed().as_secs_f64());
        Ok(Some((customer, named, last)))
    }

    /// Scores every customer with every model from the full journey view, replacing the live values.
    pub fn rescore_all(&self) -> Result<(), Error> {
        let (models, generation) = self.models_and_generation()?;
        let mut scores: HashMap<String, Vec<LiveValue>> = HashMap::new();
        let mut latest = i64::MIN;
        for model in &models {
            for (customer, value) in self.score_every_customer(model)? {
                latest = latest.max(value.last_event);
                scores.entry(customer).or_default().push(value);
            }
        }
        *self
            .live
            .scores
            .write()
            .unwrap_or_else(PoisonError::into_inner) = scores;
        self.live.latest.fetch_max(latest, Ordering::AcqRel);
        self.live
            .scored_generation
            .store(generation, Ordering::Release);
        self.live.ready.store(true, Ordering::Release);
        Ok(())
    }

    /// Starts the live scorer: a worker thread that scores every customer once, then re-scores each customer
    /// whose events arrive. Call once, from the process that serves.
    pub fn start_live_scoring(self: &Arc<Engine>) -> std::io::Result<()> {
        let (sender, receiver) = mpsc::channel::<String>();
        *self
            .live
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(sender);
        // The worker holds the engine only while it works, so dropping the last handle closes the store (and,
        // with it, the queue, which ends the worker).
        let weak = Arc::downgrade(self);
        std::thread::Builder::new()
            .name("live-scoring".into())
            .spawn(move || {
                // Scores trail their events by a moment when the cores are busy; pages and acknowledgements
                // do not wait for them.
                waymark_store::lower_thread_priority();
                if let Some(engine) = weak.upgrade() {
                    let started = Instant::now();
                    match engine.rescore_all() {
                        Ok(()) => tracing::info!(
                            seconds = started.elapsed().as_secs_f64(),
                            customers = engine
                                .live
                                .scores
                                .read()
                                .unwrap_or_else(PoisonError::into_inner)
                                .len(),
                            "every customer scored"
                        ),
                        Err(error) => tracing::warn!(%error, "scoring every customer failed"),
                    }
                }
                while let Ok(first) = receiver.recv() {
                    let Some(engine) = weak.upgrade() else {
                        break;
                    };
                    let mut queued = vec![first];
                    queued.extend(receiver.try_iter());
                    queued.sort_unstable();
                    queued.dedup();
                    if queued.iter().any(|key| key == ALL) {
                        let scored = engine.live.scored_generation.load(Ordering::Acquire);
                        let current = engine.models_and_generation().map(|(_, g)| g);
                        if current.as_ref().is_ok_and(|current| *current == scored) {
                            continue;
                        }
                        if let Err(error) = engine.rescore_all() {
                            tracing::warn!(%error, "scoring every customer failed");
                        }
                        continue;
                    }
                    // In bounded batches, so the rules worker hears of the first scores while the rest are made.
                    for batch in queued.chunks(RESCORE_BATCH) {
                        if let Err(error) = engine.rescore_many(batch) {
                            tracing::warn!(%error, "re-scoring failed");
                        }
                    }
                }
            })?;
        Ok(())
    }

    /// The identity keys of `events`' customers when a live scorer runs (else none), taken before the events
    /// are handed to the store.
    pub(crate) fn rescoring_keys(&self, events: &[waymark_model::Event]) -> Vec<String> {
        if self
            .live
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_none()
        {
            return Vec::new();
        }
        let mut keys: Vec<String> = events
            .iter()
            .filter_map(|event| match (&event.user_id, &event.anonymous_id) {
                (Some(user), _) => Some(format!("user:{user}")),
                (None, Some(anonymous)) => Some(format!("anon:{anonymous}")),
                (None, None) => None,
            })
            .collect();
        keys.sort_unstable();
        keys.dedup();
        keys
    }

    /// Queues customers for re-scoring, once their events are durable (a no-op without a live scorer).
    pub(crate) fn queue_rescoring(&self, keys: Vec<String>) {
        if keys.is_empty() {
            return;
        }
        let queue = self
            .live
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(sender) = queue.as_ref() {
            for key in keys {
                let _ = sender.send(key);
            }
        }
    }

    /// The customers with the highest live value of model `name` (the riskiest for P(stuck), the most likely
    /// buyers for P(goal)), each scored afresh with its drivers; for P(goal), customers who reached the goal are
    /// left out.
    pub fn top_scores(
        &self,
        name: &str,
        top: usize,
    ) -> Result<Vec<crate::models::CustomerScore>, Error> {
        let (models, generation) = self.models_and_generation()?;
        let model = models
            .into_iter()
            .find(|model| model.info.name == name)
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "there is no model {name:?}; list them with GET /v1/models"
                ))
            })?;
        let current = self.live.ready.load(Ordering::Acquire)
            && self.live.scored_generation.load(Ordering::Acquire) == generation;
        if !current {
            // Not scored live yet (starting, or the model just changed): score every customer now.
            return self.score(&model, None, top);
        }
        // Rank the customers still in flight on their live values; each shown is read and explained afresh (its
        // events may have arrived since), so the check is made again on what is read.
        let since = in_flight_since(&model, self.live.latest.load(Ordering::Acquire));
        let mut ranked: Vec<(f64, String)> = self
            .live_values_of(name)
            .into_iter()
            .filter(|(_, value)| !value.reached_goal && value.last_event >= since)
            .map(|(customer, value)| (value.value, customer))
            .collect();
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let mut shown = Vec::new();
        for (_, customer) in ranked {
            if shown.len() >= top {
                break;
            }
            shown.extend(
                self.score_one(&model, &customer)?
                    .filter(|score| score.last_event.0 >= since),
            );
        }
        Ok(shown)
    }

    /// `journeys` with the score columns `columns` (`score:NAME`, `score-band:NAME`) added: the live values when
    /// the live scorer is current, otherwise every customer scored now.
    pub(crate) fn with_score_columns(
        &self,
        journeys: &JourneySet,
        columns: &[String],
    ) -> Result<JourneySet, Error> {
        let (models, generation) = self.models_and_generation()?;
        let live = self.live.ready.load(Ordering::Acquire)
            && self.live.scored_generation.load(Ordering::Acquire) == generation;
        let mut out = journeys.clone();
        for column in columns {
            let (name, band) = match column.strip_prefix(SCORE_BAND_COLUMN) {
                Some(name) => (name, true),
                None => (&column[SCORE_COLUMN.len()..], false),
            };
            let model = models
                .iter()
                .find(|model| model.info.name == name)
                .ok_or_else(|| {
                    Error::Analysis(waymark_analytics::AnalyticsError::field(
                        "filter",
                        format!(
                            "{column:?} names no saved model; the score columns are {}",
                            if models.is_empty() {
                                "none yet (train a model with `waymark model train`)".to_string()
                            } else {
                                models
                                    .iter()
                                    .map(|model| {
                                        format!("score:{0}, score-band:{0}", model.info.name)
                                    })
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            }
                        ),
                    ))
                })?;
            let values: HashMap<String, f64> = if live {
                self.live_values_of(name)
                    .into_iter()
                    .map(|(customer, value)| (customer, value.value))
                    .collect()
            } else {
                self.score_at(model, &|journeys, index| {
                    Some(journeys.journey(index).len())
                })?
                .into_iter()
                .collect()
            };
            let mut builder = waymark_model::PropertyColumnBuilder::new(column.clone());
            for index in 0..journeys.n_journeys() {
                let value = values.get(&journeys.customer_ids[index]).map(|value| {
                    if band {
                        let tenth = ((value * 10.0).floor() as i64).clamp(0, 9);
                        serde_json::Value::from(format!(
                            "{:.1}–{:.1}",
                            tenth as f64 / 10.0,
                            (tenth + 1) as f64 / 10.0
                        ))
                    } else {
                        serde_json::Value::from((value * 1000.0).round() / 1000.0)
                    }
                });
                for _ in 0..journeys.journey(index).len() {
                    builder.push(value.as_ref());
                }
            }
            out.properties.push(builder.finish());
        }
        Ok(out)
    }

    /// Every customer's live value of the model `name`.
    fn live_values_of(&self, name: &str) -> Vec<(String, LiveValue)> {
        self.live
            .scores
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter_map(|(customer, values)| {
                values
                    .iter()
                    .find(|value| value.model == name)
                    .map(|value| (customer.clone(), value.clone()))
            })
            .collect()
    }

    /// The live scorer's state.
    pub fn live_status(&self) -> Result<LiveStatus, Error> {
        let (models, generation) = self.models_and_generation()?;
        Ok(LiveStatus {
            ready: self.live.ready.load(Ordering::Acquire)
                && self.live.scored_generation.load(Ordering::Acquire) == generation,
            customers: self
                .live
                .scores
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .len(),
            rescored: self.live.rescored.load(Ordering::Relaxed),
            models: models.iter().map(|model| model.info.name.clone()).collect(),
            training: self.training().clone(),
        })
    }

    /// The live value of every model for the customer `customer_id` (a display id).
    pub fn live_values(&self, customer_id: &str) -> Vec<(String, f64)> {
        self.live
            .scores
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(customer_id)
            .map(|values| {
                values
                    .iter()
                    .map(|value| (value.model.clone(), value.value))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Engine {
    /// One customer's score with its drivers, from its journey as stored now; `None` when no customer has the
    /// identifier, it has no step the model knows, or (for P(goal)) it has reached the goal.
    pub fn score_one(
        &self,
        model: &LoadedModel,
        identifier: &str,
    ) -> Result<Option<crate::models::CustomerScore>, Error> {
        let spec = &model.info.spec;
        let Some(journey) = self
            .store
            .customer_journey(identifier, &spec.feature_columns())?
        else {
            return Ok(None);
        };
        if spec.target == crate::models::Target::Goal
            && crate::models::reached_goal(spec, &journey, 0)?
        {
            return Ok(None);
        }
        let sequences = model.sequences(&journey);
        let length = sequences.get(0).len();
        if length == 0 {
            return Ok(None);
        }
        let last = sequences.get(0)[length - 1];
        Ok(Some(crate::models::CustomerScore {
            customer_id: journey.customer_ids[0].to_string(),
            steps: length,
            last_step: sequences.name(last).to_string(),
            last_event: waymark_model::Timestamp(sequences.times_of(0)[length - 1]),
            score: model.model().score(&sequences, 0, length),
        }))
    }
}

impl LoadedModel {
    /// `journeys` read in this model's vocabulary, with its feature properties.
    pub(crate) fn sequences(&self, journeys: &waymark_model::JourneySet) -> Sequences {
        let model = self.model();
        Sequences::with_vocabulary(journeys, &model.names, &model.channel_names)
            .with_properties(journeys, &self.info.spec.feature_columns())
    }
}

/// The property columns any of `models` reads.
fn feature_union(models: &[Arc<LoadedModel>]) -> Vec<String> {
    let mut properties: Vec<String> = Vec::new();
    for model in models {
        for name in model.info.spec.feature_columns() {
            if !properties.contains(&name) {
                properties.push(name);
            }
        }
    }
    properties
}

/// A model's info, for listings.
pub fn infos(models: &[Arc<LoadedModel>]) -> Vec<ModelInfo> {
    models.iter().map(|model| model.info.clone()).collect()
}
