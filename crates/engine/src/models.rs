//! Trained models: a spec (what to predict, the goal, the horizon, friction's conventions for "stuck", which
//! journeys), trained on the store's journeys, evaluated with the chronological split, then fitted again on every
//! journey and saved in the data directory (`models/NAME.json`) with its spec, training window and evaluation;
//! scored for any customer or for every in-flight one.
//!
//! What counts as the goal and as being stuck is read here — the goal's conditions, friction's signals
//! ([`waymark_analytics::StuckSignal`]) — and handed to the `predict` crate as outcome positions, so prediction
//! itself knows no business.

use crate::{Engine, Error};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::PathBuf;
use waymark_analytics::query::{parse_duration, required_goals};
pub use waymark_analytics::StuckSignal;
use waymark_analytics::{Condition, DataInfo, FrictionRequest, Scope};
use waymark_model::{JourneySet, Timestamp};
use waymark_predict::{
    BinaryTarget, NextStepEvaluation, OutcomeEvaluation, Outcomes, Predictor,
    RemainingTimeEvaluation, Score, Sequences, TrainedModel,
};

/// What a model predicts from a journey prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// The next step, top three with probabilities (the journey's end is one of them).
    NextStep,
    /// The probability of reaching the goal within the horizon.
    Goal,
    /// The probability of getting stuck (friction's signals) within the horizon.
    Stuck,
    /// The time until the journey's last event, in days.
    RemainingTime,
}

impl Target {
    pub fn name(self) -> &'static str {
        match self {
            Target::NextStep => "next step",
            Target::Goal => "P(goal)",
            Target::Stuck => "P(stuck)",
            Target::RemainingTime => "remaining time",
        }
    }
}

/// What to train. Everything but the target is optional; defaults suit any Segment-shaped data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    pub target: Target,
    /// Goal steps (names or `*` patterns) for `goal`, and for `stuck`'s dead ends. Default: the first of the
    /// usual goal names the data has (Order Completed, Purchase, Signed Up, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub goals: Vec<String>,
    /// Only an outcome within this long after the prefix's last event counts (`goal`, `stuck`), e.g. `7d`.
    /// Default: 7d for the goal, 1d for getting stuck.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub horizon: Option<String>,
    /// The signals that count as stuck (default all: loop, error_streak, dead_end, slow_step).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stuck_signals: Option<Vec<StuckSignal>>,
    /// Friction's conventions for `stuck` (error words, channels, standard times, …), as the friction analysis
    /// takes them; its goals are this spec's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub friction: Option<FrictionRequest>,
    /// `next_step`: the n-gram's order (1 to 8); default chosen on the latest fifth of the training journeys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<usize>,
    /// `next_step`: also train gradient-boosted trees, kept where they measure better than the n-gram.
    #[serde(default)]
    pub boosted: bool,
    /// Event properties the models read as features, the latest value so far (a dotted name as it is; a bare
    /// name from the event's properties or the customer's traits). Default: friction's segments —
    /// context.device.type, context.os.name, region, country, plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features_from: Option<Vec<String>>,
    /// Which journeys to train on (time range, channels, conditions, instances).
    #[serde(default)]
    pub filter: Scope,
}

/// How a model measured, on the chronological split, by target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Evaluation {
    NextStep(NextStepEvaluation),
    Outcome(OutcomeEvaluation),
    RemainingTime(RemainingTimeEvaluation),
}

/// The journeys a model was fitted on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TrainingWindow {
    /// The earliest and latest event times.
    pub from: Timestamp,
    pub to: Timestamp,
    pub journeys: usize,
    pub events: usize,
}

/// A model as it is listed: everything but its parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ModelInfo {
    pub name: String,
    pub spec: ModelSpec,
    pub trained_at: Timestamp,
    /// Seconds the training took (evaluation and the final fit).
    pub training_seconds: f64,
    pub window: TrainingWindow,
    /// Measured on the chronological split (the earliest two thirds trained on, the rest scored); the saved
    /// model is then fitted on every journey of the window.
    pub evaluation: Evaluation,
    /// The horizon in µs, as parsed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub horizon_us: Option<i64>,
    /// The features that matter most to the fitted model (their shares of the trees' total gain).
    #[serde(default)]
    pub features: Vec<waymark_predict::outcome::Contribution>,
}

/// This process's record of a model in training, shown by the live status and removed when training ends,
/// however it ends.
struct TrainingEntry<'e> {
    engine: &'e Engine,
    name: String,
}

impl<'e> TrainingEntry<'e> {
    fn start(engine: &'e Engine, name: &str, target: Target) -> TrainingEntry<'e> {
        engine.training().push(crate::live::Training {
            name: name.to_string(),
            target,
            started_at: Timestamp::now(),
            phase: "evaluating".into(),
            done: 0,
            total: 0,
        });
        TrainingEntry {
            engine,
            name: name.to_string(),
        }
    }

    fn update(&self, phase: Phase, done: usize, total: usize) {
        if let Some(entry) = self
            .engine
            .training()
            .iter_mut()
            .find(|entry| entry.name == self.name)
        {
            entry.phase = match phase {
                Phase::Evaluating => "evaluating",
                Phase::Fitting => "fitting",
            }
            .into();
            (entry.done, entry.total) = (done, total);
        }
    }
}

impl Drop for TrainingEntry<'_> {
    fn drop(&mut self) {
        self.engine
            .training()
            .retain(|entry| entry.name != self.name);
    }
}

/// A saved model file.
#[derive(Serialize, Deserialize)]
struct SavedModel {
    /// The file format's version.
    format: u32,
    info: ModelInfo,
    model: TrainedModel,
}

const FORMAT: u32 = 2;

/// A model loaded for scoring.
pub struct LoadedModel {
    pub info: ModelInfo,
    model: TrainedModel,
}

impl LoadedModel {
    pub(crate) fn model(&self) -> &TrainedModel {
        &self.model
    }
}

/// The spec's goals compiled against `journeys` (the usual goal names when none are given).
fn compile_goals(
    spec: &ModelSpec,
    journeys: &JourneySet,
) -> Result<Vec<waymark_analytics::condition::Compiled>, Error> {
    Ok(required_goals(&spec.goals, &journeys.step_names)?
        .into_iter()
        .map(Condition::step)
        .map(|goal| goal.compile(journeys))
        .collect::<Result<_, _>>()?)
}

/// The first position of journey `index` that meets one of `goals`.
fn first_goal(
    goals: &[waymark_analytics::condition::Compiled],
    journeys: &JourneySet,
    index: usize,
) -> Option<usize> {
    let journey = journeys.journey(index);
    (0..journey.len()).find(|at| {
        goals
            .iter()
            .any(|goal| goal.matches(journeys, journey.start + at))
    })
}

/// Whether journey `index` of `journeys` has reached one of the spec's goals.
pub(crate) fn reached_goal(
    spec: &ModelSpec,
    journeys: &JourneySet,
    index: usize,
) -> Result<bool, Error> {
    Ok(first_goal(&compile_goals(spec, journeys)?, journeys, index).is_some())
}

/// One customer's score.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct CustomerScore {
    pub customer_id: String,
    /// Journey steps so far (identity calls left out).
    pub steps: usize,
    pub last_step: String,
    pub last_event: Timestamp,
    #[serde(flatten)]
    pub score: Score,
}

/// What the training is doing, for a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Evaluating,
    Fitting,
}

/// Model names are file names: letters, digits, `-` and `_`.
/// A bad value of the spec's (or the request's) `field`.
fn field_error(field: &str, message: &str) -> Error {
    Error::Analysis(waymark_analytics::AnalyticsError::field(
        field,
        message.to_string(),
    ))
}

/// The n-gram order, when given, is one the model keeps.
fn check_order(order: Option<usize>) -> Result<(), Error> {
    match order.filter(|order| !(1..=waymark_predict::ngram::MAX_ORDER).contains(order)) {
        Some(order) => Err(field_error(
            "order",
            &format!(
                "order must be between 1 and {}; got {order}",
                waymark_predict::ngram::MAX_ORDER
            ),
        )),
        None => Ok(()),
    }
}

fn check_name(name: &str) -> Result<(), Error> {
    let fine = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if fine {
        Ok(())
    } else {
        Err(field_error(
            "name",
            &format!("a model name is 1 to 64 letters, digits, '-' or '_', not {name:?}"),
        ))
    }
}

/// The outcome a binary target predicts, and where each journey shows it.
struct Labelled {
    target: BinaryTarget,
    outcomes: Outcomes,
}

impl ModelSpec {
    /// The property columns read as features.
    pub(crate) fn feature_columns(&self) -> Vec<String> {
        let names = self
            .features_from
            .clone()
            .unwrap_or_else(|| waymark_analytics::Friction::default().segment_by);
        names
            .iter()
            .flat_map(|name| {
                if name.contains('.') {
                    vec![name.clone()]
                } else {
                    vec![
                        name.clone(),
                        format!("traits.{name}"),
                        format!("context.traits.{name}"),
                    ]
                }
            })
            .collect()
    }

    /// The property columns the spec reads (the features', the filter's, and friction's for `stuck`).
    fn properties(&self, friction: Option<&waymark_analytics::Friction>) -> Vec<String> {
        let mut names: Vec<String> = friction.map(|f| f.properties()).unwrap_or_default();
        for name in self.feature_columns() {
            if !names.contains(&name) {
                names.push(name);
            }
        }
        for name in &self
            .filter
            .plan()
            .map(|plan| plan.properties)
            .unwrap_or_default()
        {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        names
    }

    fn horizon_us(&self) -> Result<Option<i64>, Error> {
        let default = match self.target {
            Target::Goal => "7d",
            Target::Stuck => "1d",
            Target::NextStep | Target::RemainingTime => return Ok(None),
        };
        let text = self.horizon.as_deref().unwrap_or(default);
        let horizon = parse_duration("horizon", text)?;
        if horizon <= 0 {
            return Err(field_error(
                "horizon",
                &format!("horizon must be longer than zero, not {text:?}"),
            ));
        }
        Ok(Some(horizon))
    }

    /// Friction bound to this spec's goals (for `stuck`).
    fn friction(&self, step_names: &[String]) -> Result<waymark_analytics::Friction, Error> {
        let mut request = self.friction.clone().unwrap_or_default();
        request.goals = self.goals.clone();
        Ok(waymark_analytics::Query::spec(
            &request,
            &DataInfo { step_names },
        )?)
    }
}

/// Journey-relative event positions → sequence positions (the index of the first symbol at or after each).
fn to_sequence_positions(sequences: &Sequences, journey: usize, events: &[usize]) -> Vec<u32> {
    let kept = sequences.positions_of(journey);
    events
        .iter()
        .map(|event| kept.partition_point(|position| (*position as usize) < *event) as u32)
        .collect()
}

impl Engine {
    fn models_dir(&self) -> PathBuf {
        self.dir().join("models")
    }

    /// The journeys a spec trains on, with the columns it reads, and friction bound to them for `stuck`.
    fn model_journeys(
        &self,
        spec: &ModelSpec,
    ) -> Result<
        (
            std::sync::Arc<JourneySet>,
            Option<waymark_analytics::Friction>,
        ),
        Error,
    > {
        let step_names = self.store.step_names();
        let friction = match spec.target {
            Target::Stuck => Some(spec.friction(&step_names)?),
            _ => None,
        };
        let scope = spec.filter.plan()?;
        let journeys = scope.apply(
            self.store
                .journey_view(&spec.properties(friction.as_ref()))?,
        )?;
        Ok((journeys, friction))
    }

    /// Where each journey shows the spec's outcome, for a binary target.
    fn labels(
        &self,
        spec: &ModelSpec,
        journeys: &JourneySet,
        friction: Option<&waymark_analytics::Friction>,
        sequences: &Sequences,
    ) -> Result<Option<Labelled>, Error> {
        let Some(horizon_us) = spec.horizon_us()? else {
            return Ok(None);
        };
        let per_journey: Vec<Vec<u32>> = match spec.target {
            Target::Goal => {
                let goals = compile_goals(spec, journeys)?;
                (0..journeys.n_journeys())
                    .map(|index| {
                        let first = first_goal(&goals, journeys, index);
                        to_sequence_positions(
                            sequences,
                            index,
                            &first.into_iter().collect::<Vec<_>>(),
                        )
                    })
                    .collect()
            }
            Target::Stuck => {
                let friction = friction.expect("stuck binds friction");
                let prepared = friction.prepare(journeys, &self.runner)?;
                let kinds = spec
                    .stuck_signals
                    .clone()
                    .unwrap_or_else(|| StuckSignal::ALL.to_vec());
                (0..journeys.n_journeys())
                    .map(|index| {
                        let journey = journeys.journey(index);
                        to_sequence_positions(
                            sequences,
                            index,
                            &prepared.stuck_positions(&journey, &kinds),
                        )
                    })
                    .collect()
            }
            Target::NextStep | Target::RemainingTime => return Ok(None),
        };
        Ok(Some(Labelled {
            target: BinaryTarget {
                once: spec.target == Target::Goal,
                horizon_us: Some(horizon_us),
            },
            outcomes: Outcomes::new(per_journey),
        }))
    }

    /// Evaluates `spec` on the chronological split without saving anything.
    pub fn evaluate_model(
        &self,
        spec: &ModelSpec,
        progress: &dyn Fn(usize, usize),
    ) -> Result<Evaluation, Error> {
        let (journeys, friction) = self.model_journeys(spec)?;
        let sequences =
            Sequences::of(&journeys).with_properties(&journeys, &spec.feature_columns());
        Ok(self
            .evaluate_and_fit(
                spec,
                &journeys,
                friction.as_ref(),
                &sequences,
                false,
                progress,
            )?
            .0)
    }

    /// Evaluates a next-step `spec` on a split given by the caller (a published benchmark's folds): the journeys
    /// of the customers `test` (display ids) are scored, every other journey is trained on.
    pub fn evaluate_next_step_on(
        &self,
        spec: &ModelSpec,
        test: &[String],
        progress: &dyn Fn(usize, usize),
    ) -> Result<NextStepEvaluation, Error> {
        if spec.target != Target::NextStep {
            return Err(field_error(
                "test_journeys",
                "a given split is measured for the next step only; drop it or use --target next",
            ));
        }
        check_order(spec.order)?;
        let (journeys, _) = self.model_journeys(spec)?;
        let sequences =
            Sequences::of(&journeys).with_properties(&journeys, &spec.feature_columns());
        let index: HashMap<&str, usize> = journeys
            .customer_ids
            .iter()
            .enumerate()
            .map(|(at, id)| (id, at))
            .collect();
        let mut tested = vec![false; journeys.n_journeys()];
        for id in test {
            let at = index.get(id.as_str()).ok_or_else(|| {
                field_error(
                    "test_journeys",
                    &format!("no journey belongs to the customer {id:?}"),
                )
            })?;
            tested[*at] = true;
        }
        let (test, train): (Vec<usize>, Vec<usize>) =
            (0..journeys.n_journeys()).partition(|at| tested[*at]);
        Ok(waymark_predict::evaluate_next_step_on(
            &sequences,
            train,
            &test,
            spec.order,
            spec.boosted,
            progress,
        ))
    }

    /// Evaluation, and (with `fit`) the model fitted on every journey.
    fn evaluate_and_fit(
        &self,
        spec: &ModelSpec,
        journeys: &JourneySet,
        friction: Option<&waymark_analytics::Friction>,
        sequences: &Sequences,
        fit: bool,
        progress: &dyn Fn(usize, usize),
    ) -> Result<(Evaluation, Option<Predictor>), Error> {
        check_order(spec.order)?;
        let all: Vec<usize> = (0..sequences.len())
            .filter(|index| !sequences.get(*index).is_empty())
            .collect();
        Ok(match spec.target {
            Target::NextStep => {
                let evaluation = waymark_predict::evaluate_next_step_with_progress(
                    sequences,
                    spec.order,
                    spec.boosted,
                    progress,
                );
                let predictor = fit.then(|| {
                    let boosted_wins = evaluation.boosted.is_some_and(|boosted| {
                        boosted.accuracy_at_1 > evaluation.model.accuracy_at_1
                    });
                    Predictor::NextStep {
                        ngram: waymark_predict::NgramModel::train(
                            sequences,
                            &all,
                            evaluation.order,
                        ),
                        boosted: boosted_wins.then(|| {
                            waymark_predict::boosted::BoostedNextStep::train_with_progress(
                                sequences,
                                &all,
                                evaluation.order,
                                progress,
                            )
                        }),
                    }
                });
                (Evaluation::NextStep(evaluation), predictor)
            }
            Target::Goal | Target::Stuck => {
                let labelled = self
                    .labels(spec, journeys, friction, sequences)?
                    .expect("binary targets have a horizon");
                let (evaluation, _) = waymark_predict::evaluate_outcome(
                    sequences,
                    &labelled.outcomes,
                    labelled.target,
                );
                let predictor = fit.then(|| {
                    Predictor::Outcome(
                        waymark_predict::OutcomeModel::train(
                            sequences,
                            &all,
                            &labelled.outcomes,
                            labelled.target,
                            sequences.last_time(),
                        )
                        .0,
                    )
                });
                (Evaluation::Outcome(evaluation), predictor)
            }
            Target::RemainingTime => {
                let (evaluation, _) = waymark_predict::evaluate_remaining_time(sequences);
                let predictor = fit.then(|| {
                    Predictor::RemainingTime(
                        waymark_predict::RemainingTimeModel::train(sequences, &all).0,
                    )
                });
                (Evaluation::RemainingTime(evaluation), predictor)
            }
        })
    }

    /// Trains `spec` as model `name`: evaluated on the chronological split, fitted on every journey, saved in the
    /// data directory (replacing a model of the same name). `progress(phase)` as it goes.
    pub fn train_model(
        &self,
        name: &str,
        spec: &ModelSpec,
        progress: &dyn Fn(Phase, usize, usize),
    ) -> Result<ModelInfo, Error> {
        check_name(name)?;
        let started = std::time::Instant::now();
        let horizon_us = spec.horizon_us()?;
        let _training = TrainingEntry::start(self, name, spec.target);
        let progress = |phase: Phase, done: usize, total: usize| {
            _training.update(phase, done, total);
            progress(phase, done, total);
        };
        let (journeys, friction) = self.model_journeys(spec)?;
        let sequences =
            Sequences::of(&journeys).with_properties(&journeys, &spec.feature_columns());
        if sequences.symbols.is_empty() {
            return Err(field_error(
                "filter",
                "no journey steps to train on: the store (or the filter) holds no events",
            ));
        }
        progress(Phase::Evaluating, 0, 0);
        let (evaluation, predictor) = self.evaluate_and_fit(
            spec,
            &journeys,
            friction.as_ref(),
            &sequences,
            true,
            &|done, total| progress(Phase::Evaluating, done, total),
        )?;
        progress(Phase::Fitting, 0, 0);
        let model = TrainedModel {
            names: sequences.names.clone(),
            channel_names: sequences.channel_names.clone(),
            predictor: predictor.expect("fitted when asked"),
        };
        let info = ModelInfo {
            features: model.importance(10),
            name: name.to_string(),
            spec: spec.clone(),
            trained_at: Timestamp::now(),
            training_seconds: started.elapsed().as_secs_f64(),
            window: TrainingWindow {
                from: Timestamp(sequences.times.iter().copied().min().unwrap_or(0)),
                to: Timestamp(sequences.last_time()),
                journeys: sequences.len(),
                events: sequences.symbols.len(),
            },
            evaluation,
            horizon_us,
        };
        let saved = SavedModel {
            format: FORMAT,
            info: info.clone(),
            model,
        };
        let dir = self.models_dir();
        std::fs::create_dir_all(&dir)
            .map_err(|error| Error::Model(format!("creating {}: {error}", dir.display())))?;
        let path = dir.join(format!("{name}.json"));
        let temporary = dir.join(format!(".{name}.json.tmp"));
        let text = serde_json::to_vec(&saved)
            .map_err(|error| Error::Model(format!("encoding model {name}: {error}")))?;
        let write = || -> std::io::Result<()> {
            use std::io::Write;
            let mut file = std::fs::File::create(&temporary)?;
            file.write_all(&text)?;
            file.sync_all()?;
            std::fs::rename(&temporary, &path)?;
            std::fs::File::open(&dir)?.sync_all()
        };
        write().map_err(|error| Error::Model(format!("writing {}: {error}", path.display())))?;
        Ok(info)
    }

    /// Every saved model, by name.
    pub fn models(&self) -> Result<Vec<ModelInfo>, Error> {
        Ok(crate::live::infos(&self.current_models()?))
    }

    /// The saved model `name`.
    pub fn load_model(&self, name: &str) -> Result<LoadedModel, Error> {
        check_name(name)?;
        let path = self.models_dir().join(format!("{name}.json"));
        let text = match std::fs::read(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotFound(format!(
                    "there is no model {name:?}; train one with `waymark model train {name} --target goal` or list them with `waymark model list`"
                )))
            }
            Err(error) => return Err(Error::Model(format!("reading {}: {error}", path.display()))),
        };
        let saved: SavedModel = serde_json::from_slice(&text).map_err(|error| {
            Error::Model(format!(
                "{} is not a model this version can read ({error}); train it again",
                path.display()
            ))
        })?;
        if saved.format != FORMAT {
            return Err(Error::Model(format!(
                "{} has format {}, this version reads {FORMAT}; train it again",
                path.display(),
                saved.format
            )));
        }
        Ok(LoadedModel {
            info: saved.info,
            model: saved.model,
        })
    }

    /// Every journey a model scores (its spec's filter, its feature columns), and the same read in its
    /// vocabulary.
    fn scoring_journeys(
        &self,
        model: &LoadedModel,
    ) -> Result<(std::sync::Arc<JourneySet>, Sequences), Error> {
        let (journeys, _) = self.model_journeys(&ModelSpec {
            target: Target::NextStep,
            ..model.info.spec.clone()
        })?;
        let sequences = model.sequences(&journeys);
        Ok((journeys, sequences))
    }

    /// What the model says of each journey as it stood earlier: `at(journeys, index)` gives how many of the
    /// journey's events (identity calls counted) the prefix holds, `None` to skip the journey. Returns (customer,
    /// score value) for every journey scored, in journey order — for back-testing a model on what it would have
    /// said then.
    pub fn score_at(
        &self,
        model: &LoadedModel,
        at: &dyn Fn(&JourneySet, usize) -> Option<usize>,
    ) -> Result<Vec<(String, f64)>, Error> {
        let (journeys, sequences) = self.scoring_journeys(model)?;
        Ok((0..journeys.n_journeys())
            .filter_map(|index| {
                let events = at(&journeys, index)?;
                let length = sequences
                    .positions_of(index)
                    .partition_point(|position| (*position as usize) < events);
                (length > 0).then(|| {
                    (
                        journeys.customer_ids[index].to_string(),
                        model.model.value(&sequences, index, length),
                    )
                })
            })
            .collect())
    }

    /// Every journey's score now, for the live scorer: (customer, what it keeps of the customer) in journey order.
    pub(crate) fn score_every_customer(
        &self,
        model: &LoadedModel,
    ) -> Result<Vec<(String, crate::live::LiveValue)>, Error> {
        let (journeys, sequences) = self.scoring_journeys(model)?;
        let goals: Option<Vec<_>> = match model.info.spec.target {
            Target::Goal => Some(compile_goals(&model.info.spec, &journeys)?),
            _ => None,
        };
        Ok((0..journeys.n_journeys())
            .filter_map(|index| {
                let reached = goals
                    .as_ref()
                    .is_some_and(|goals| first_goal(goals, &journeys, index).is_some());
                crate::live::LiveValue::of(model, &sequences, index, reached)
                    .map(|value| (journeys.customer_ids[index].to_string(), value))
            })
            .collect())
    }

    /// Scores customers with a saved model: `customer` alone (any of its identifiers), or every customer still
    /// in flight (for the goal: not yet reached it; for a model with a horizon: active within the horizon before
    /// the data's last event), ranked by the score, highest first, the first `top`.
    pub fn score(
        &self,
        model: &LoadedModel,
        customer: Option<&str>,
        top: usize,
    ) -> Result<Vec<CustomerScore>, Error> {
        if let Some(identifier) = customer {
            if self.store.customer_journey(identifier, &[])?.is_none() {
                return Err(Error::NotFound(format!(
                    "no customer has the identifier {identifier:?}"
                )));
            }
            return Ok(self.score_one(model, identifier)?.into_iter().collect());
        }
        let spec = &model.info.spec;
        let (journeys, sequences) = self.scoring_journeys(model)?;
        let goals: Option<Vec<_>> = match spec.target {
            Target::Goal => Some(compile_goals(spec, &journeys)?),
            _ => None,
        };
        let since = crate::live::in_flight_since(model, sequences.last_time());
        let mut ranked = Vec::new();
        for index in 0..journeys.n_journeys() {
            let length = sequences.get(index).len();
            if length == 0 || sequences.times_of(index)[length - 1] < since {
                continue;
            }
            if goals
                .as_ref()
                .is_some_and(|goals| first_goal(goals, &journeys, index).is_some())
            {
                continue;
            }
            ranked.push((model.model.value(&sequences, index, length), index, length));
        }
        // Rank on the score alone; explain only what is shown.
        ranked.sort_by(|a, b| {
            b.0.total_cmp(&a.0)
                .then_with(|| journeys.customer_ids[a.1].cmp(&journeys.customer_ids[b.1]))
        });
        ranked.truncate(top);
        Ok(ranked
            .into_iter()
            .map(|(_, index, length)| {
                let last = sequences.get(index)[length - 1];
                CustomerScore {
                    customer_id: journeys.customer_ids[index].to_string(),
                    steps: length,
                    last_step: sequences.name(last).to_string(),
                    last_event: Timestamp(sequences.times_of(index)[length - 1]),
                    score: model.model.score(&sequences, index, length),
                }
            })
            .collect())
    }
}
