//! Probabilities of an outcome from a journey prefix — reaching the goal within a horizon, getting stuck — by
//! gradient-boosted trees (log-loss) over the prefix's [features](crate::features), and their evaluation as a
//! forecaster is judged: AUC (does the score rank the journeys that will have the outcome above those that will
//! not), Brier score and log-loss (are the probabilities right), a calibration table (of the prefixes given about
//! 30 %, do 30 % have the outcome), beside two baselines measured in the same run: the base rate, and the rate
//! after the current step.
//!
//! What counts as the outcome is given from outside ([`Outcomes`]: per journey, the positions where it is observed;
//! the engine finds them with the goal's condition or friction's signals), so the model knows nothing of any
//! business.
//!
//! A prefix's label: the outcome is observed at a position after the prefix's end, within the horizon of the
//! prefix's last event. A prefix whose horizon reaches beyond the data's last event without the outcome is
//! *censored* — nobody knows yet — and is neither trained on nor scored. For an outcome that happens once (the
//! goal), prefixes after it happened are not asked about.

use crate::boosted::training_prefixes;
use crate::features::{column_major, FeatureLayout};
use crate::sequences::{chronological_split, Sequences};
use forust_ml::gradientbooster::ContributionsMethod;
use forust_ml::objective::ObjectiveType;
use forust_ml::{GradientBooster, Matrix};
use serde::{Deserialize, Serialize};

/// Boosting rounds, learning rate and depth of an outcome's booster.
pub const ROUNDS: usize = 100;
pub const LEARNING_RATE: f32 = 0.1;
pub const DEPTH: usize = 5;
/// Training prefixes at most (a uniform sample of them beyond): a probability needs fewer rows than a ranking
/// over dozens of next steps, and this keeps training on a million journeys within a minute.
pub const MAX_ROWS: usize = 250_000;
/// Bins of the calibration table (equal widths of predicted probability).
pub const CALIBRATION_BINS: usize = 10;

/// Per journey, the sequence positions where the outcome is observed, ascending; a position at or beyond the
/// journey's length is its end (a dead end is observed when the journey stops).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcomes {
    offsets: Vec<usize>,
    positions: Vec<u32>,
}

impl Outcomes {
    /// From each journey's positions, in journey order (sorted here).
    pub fn new(per_journey: impl IntoIterator<Item = Vec<u32>>) -> Outcomes {
        let mut outcomes = Outcomes {
            offsets: vec![0],
            positions: Vec::new(),
        };
        for mut positions in per_journey {
            positions.sort_unstable();
            positions.dedup();
            outcomes.positions.extend(positions);
            outcomes.offsets.push(outcomes.positions.len());
        }
        outcomes
    }

    /// Journey `index`'s positions.
    pub fn of(&self, index: usize) -> &[u32] {
        self.offsets
            .get(index + 1)
            .map_or(&[], |end| &self.positions[self.offsets[index]..*end])
    }
}

/// What a binary target asks of a prefix.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BinaryTarget {
    /// The outcome happens once (the goal): prefixes after it are not asked about.
    pub once: bool,
    /// Only an outcome within this long after the prefix's last event counts (µs); `None`: any time.
    pub horizon_us: Option<i64>,
}

impl BinaryTarget {
    /// The label of the first `length` steps of `journey`, or `None` when the prefix is not asked about (the
    /// outcome already happened once) or its answer is not known yet (censored at `as_of`).
    pub fn label(
        &self,
        sequences: &Sequences,
        outcomes: &Outcomes,
        as_of: i64,
        journey: usize,
        length: usize,
    ) -> Option<bool> {
        let positions = outcomes.of(journey);
        let times = sequences.times_of(journey);
        if self.once
            && positions
                .first()
                .is_some_and(|first| (*first as usize) < length)
        {
            return None;
        }
        let now = times[length - 1];
        let time_at = |position: u32| times[(position as usize).min(times.len() - 1)];
        let within = |time: i64| self.horizon_us.is_none_or(|horizon| time - now <= horizon);
        let start = positions.partition_point(|position| (*position as usize) < length);
        if positions[start..]
            .iter()
            .any(|position| within(time_at(*position)))
        {
            return Some(true);
        }
        match self.horizon_us {
            Some(horizon) if now.saturating_add(horizon) > as_of => None,
            _ => Some(false),
        }
    }
}

/// How good a set of probabilities is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ProbabilityScore {
    /// The chance that a prefix with the outcome scores above one without (0.5: no better than a coin).
    pub auc: f64,
    /// Mean squared error of the probabilities (lower is better).
    pub brier: f64,
    /// Mean negative log-likelihood (lower is better).
    pub log_loss: f64,
}

/// One row of the calibration table.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CalibrationBin {
    /// Predicted probabilities in `[from, to)`.
    pub from: f64,
    pub to: f64,
    pub prefixes: u64,
    pub mean_predicted: f64,
    /// The share of them with the outcome.
    pub observed: f64,
}

/// One evaluation of an outcome's probabilities on the chronological split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OutcomeEvaluation {
    pub train_journeys: usize,
    pub test_journeys: usize,
    /// Training prefixes learnt from (labelled, sampled).
    pub train_prefixes: u64,
    /// Test prefixes scored (labelled).
    pub prefixes: u64,
    /// Test prefixes left out because their answer is not known yet (censored by the data's end).
    pub censored: u64,
    /// The test prefixes with the outcome.
    pub positives: u64,
    /// The share of training prefixes with the outcome.
    pub base_rate: f64,
    pub model: ProbabilityScore,
    /// Every prefix given the training base rate.
    pub baseline_base_rate: ProbabilityScore,
    /// Every prefix given the training rate of prefixes ending at the same step.
    pub baseline_current_step: ProbabilityScore,
    pub calibration: Vec<CalibrationBin>,
    /// Expected calibration error: the prefix-weighted mean gap between predicted and observed per bin.
    pub calibration_error: f64,
}

/// Gradient-boosted trees for one outcome.
#[derive(Serialize, Deserialize)]
pub struct OutcomeModel {
    pub target: BinaryTarget,
    layout: FeatureLayout,
    #[serde(with = "one_booster")]
    booster: GradientBooster,
    /// The training base rate (what a log too small to learn from is given).
    pub base_rate: f64,
    /// Whether the booster was fitted (both labels were seen).
    fitted: bool,
}

mod one_booster {
    use forust_ml::GradientBooster;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(booster: &GradientBooster, s: S) -> Result<S::Ok, S::Error> {
        booster
            .json_dump()
            .map_err(serde::ser::Error::custom)?
            .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<GradientBooster, D::Error> {
        GradientBooster::from_json(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// A feature's share in one score: its name and how far it moved the log-odds (positive: towards the outcome).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Contribution {
    pub feature: String,
    pub effect: f64,
}

impl OutcomeModel {
    /// Fits on the labelled prefixes of the `train` journeys; `progress(rounds done, rounds)`.
    pub fn train(
        sequences: &Sequences,
        train: &[usize],
        outcomes: &Outcomes,
        target: BinaryTarget,
        as_of: i64,
    ) -> (OutcomeModel, u64) {
        let layout = FeatureLayout::fit(sequences, train);
        let width = layout.width();
        let label = |journey: usize, length: usize| {
            target.label(sequences, outcomes, as_of, journey, length)
        };
        let prefixes = training_prefixes(sequences, train, MAX_ROWS, &|journey, length| {
            label(journey, length).is_some()
        });
        let y: Vec<f64> = prefixes
            .iter()
            .map(|(journey, length)| f64::from(u8::from(label(*journey, *length) == Some(true))))
            .collect();
        let positives: f64 = y.iter().sum();
        let base_rate = if y.is_empty() {
            0.0
        } else {
            positives / y.len() as f64
        };
        let mut booster = GradientBooster::default()
            .set_objective_type(ObjectiveType::LogLoss)
            .set_iterations(ROUNDS)
            .set_learning_rate(LEARNING_RATE)
            .set_max_depth(DEPTH)
            .set_nbins(crate::boosted::BINS)
            .set_initialize_base_score(true);
        let fitted = positives > 0.0 && positives < y.len() as f64;
        if fitted {
            let mut rows = Vec::with_capacity(prefixes.len() * width);
            for (journey, length) in &prefixes {
                layout.row(sequences, *journey, *length, &mut rows);
            }
            let columns = column_major(&rows, width);
            booster
                .fit_unweighted(&Matrix::new(&columns, prefixes.len(), width), &y, None)
                .expect("finite features and two classes");
        }
        (
            OutcomeModel {
                target,
                layout,
                booster,
                base_rate,
                fitted,
            },
            prefixes.len() as u64,
        )
    }

    /// The probability of the outcome after the first `length` steps of `journey`.
    pub fn probability(&self, sequences: &Sequences, journey: usize, length: usize) -> f64 {
        if !self.fitted {
            return self.base_rate;
        }
        let mut row = Vec::with_capacity(self.layout.width());
        self.layout.row(sequences, journey, length, &mut row);
        let logit = self
            .booster
            .predict(&Matrix::new(&row, 1, self.layout.width()), false)[0];
        1.0 / (1.0 + (-logit).exp())
    }

    /// The probabilities of many prefixes `(journey, length)`, predicted in blocks on every core.
    pub fn probabilities(&self, sequences: &Sequences, prefixes: &[(usize, usize)]) -> Vec<f64> {
        if !self.fitted {
            return vec![self.base_rate; prefixes.len()];
        }
        let width = self.layout.width();
        let mut out = Vec::with_capacity(prefixes.len());
        let mut rows = Vec::new();
        for block in prefixes.chunks(65_536) {
            rows.clear();
            for (journey, length) in block {
                self.layout.row(sequences, *journey, *length, &mut rows);
            }
            let columns = column_major(&rows, width);
            let logits = self
                .booster
                .predict(&Matrix::new(&columns, block.len(), width), true);
            out.extend(logits.into_iter().map(|logit| 1.0 / (1.0 + (-logit).exp())));
        }
        out
    }

    /// The `k` features that moved this prefix's score most (Shapley values in log-odds), largest first.
    pub fn explain(
        &self,
        sequences: &Sequences,
        journey: usize,
        length: usize,
        k: usize,
    ) -> Vec<Contribution> {
        if !self.fitted {
            return Vec::new();
        }
        let mut row = Vec::with_capacity(self.layout.width());
        self.layout.row(sequences, journey, length, &mut row);
        let width = self.layout.width();
        let contributions = self.booster.predict_contributions(
            &Matrix::new(&row, 1, width),
            ContributionsMethod::Shapley,
            false,
        );
        top_contributions(&self.layout.names(), &contributions[..width], k)
    }

    /// The features that matter most over the whole model (total gain, as shares), largest first.
    pub fn importance(&self, k: usize) -> Vec<Contribution> {
        if !self.fitted {
            return Vec::new();
        }
        importance(&self.booster, &self.layout.names(), k)
    }
}

/// A booster's `k` most important features by total gain, as shares of the whole.
pub(crate) fn importance(
    booster: &GradientBooster,
    names: &[String],
    k: usize,
) -> Vec<Contribution> {
    let gains = booster.calculate_feature_importance(
        forust_ml::gradientbooster::ImportanceMethod::TotalGain,
        true,
    );
    let mut ranked: Vec<Contribution> = gains
        .into_iter()
        .map(|(feature, gain)| Contribution {
            feature: names[feature].clone(),
            effect: f64::from(gain),
        })
        .collect();
    ranked.sort_by(|a, b| {
        b.effect
            .total_cmp(&a.effect)
            .then(a.feature.cmp(&b.feature))
    });
    ranked.truncate(k);
    ranked
}

/// The `k` largest effects by size, zero effects left out.
pub(crate) fn top_contributions(names: &[String], effects: &[f64], k: usize) -> Vec<Contribution> {
    let mut ranked: Vec<Contribution> = names
        .iter()
        .zip(effects)
        .filter(|(_, effect)| effect.abs() > 1e-9)
        .map(|(feature, effect)| Contribution {
            feature: feature.clone(),
            effect: *effect,
        })
        .collect();
    ranked.sort_by(|a, b| {
        b.effect
            .abs()
            .total_cmp(&a.effect.abs())
            .then(a.feature.cmp(&b.feature))
    });
    ranked.truncate(k);
    ranked
}

/// Scores probabilities against labels.
pub fn probability_score(scored: &[(f64, bool)]) -> ProbabilityScore {
    if scored.is_empty() {
        return ProbabilityScore::default();
    }
    let n = scored.len() as f64;
    let brier = scored
        .iter()
        .map(|(p, y)| (p - f64::from(u8::from(*y))).powi(2))
        .sum::<f64>()
        / n;
    let log_loss = scored
        .iter()
        .map(|(p, y)| {
            let p = p.clamp(1e-15, 1.0 - 1e-15);
            if *y {
                -p.ln()
            } else {
                -(1.0 - p).ln()
            }
        })
        .sum::<f64>()
        / n;
    ProbabilityScore {
        auc: auc(scored),
        brier,
        log_loss,
    }
}

/// The area under the ROC curve: the Mann–Whitney statistic with tied scores counted half.
pub fn auc(scored: &[(f64, bool)]) -> f64 {
    let mut sorted: Vec<(f64, bool)> = scored.to_vec();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let positives = sorted.iter().filter(|(_, y)| *y).count() as f64;
    let negatives = sorted.len() as f64 - positives;
    if positives == 0.0 || negatives == 0.0 {
        return 0.5;
    }
    // Sum of the positives' mid-ranks.
    let mut rank_sum = 0.0;
    let mut at = 0;
    while at < sorted.len() {
        let mut end = at;
        while end < sorted.len() && sorted[end].0 == sorted[at].0 {
            end += 1;
        }
        let mid_rank = (at + 1 + end) as f64 / 2.0;
        rank_sum += mid_rank * sorted[at..end].iter().filter(|(_, y)| *y).count() as f64;
        at = end;
    }
    (rank_sum - positives * (positives + 1.0) / 2.0) / (positives * negatives)
}

/// The calibration table and its expected calibration error.
pub fn calibration(scored: &[(f64, bool)]) -> (Vec<CalibrationBin>, f64) {
    let mut bins: Vec<(u64, f64, u64)> = vec![(0, 0.0, 0); CALIBRATION_BINS];
    for (p, y) in scored {
        let bin = ((p * CALIBRATION_BINS as f64) as usize).min(CALIBRATION_BINS - 1);
        bins[bin].0 += 1;
        bins[bin].1 += p;
        bins[bin].2 += u64::from(*y);
    }
    let total = scored.len().max(1) as f64;
    let mut error = 0.0;
    let table = bins
        .iter()
        .enumerate()
        .filter(|(_, (n, _, _))| *n > 0)
        .map(|(bin, (n, sum, hits))| {
            let mean_predicted = sum / *n as f64;
            let observed = *hits as f64 / *n as f64;
            error += (*n as f64 / total) * (mean_predicted - observed).abs();
            CalibrationBin {
                from: bin as f64 / CALIBRATION_BINS as f64,
                to: (bin + 1) as f64 / CALIBRATION_BINS as f64,
                prefixes: *n,
                mean_predicted,
                observed,
            }
        })
        .collect();
    (table, error)
}

/// Trains on the earliest two thirds and scores every labelled prefix of the rest.
pub fn evaluate_outcome(
    sequences: &Sequences,
    outcomes: &Outcomes,
    target: BinaryTarget,
) -> (OutcomeEvaluation, OutcomeModel) {
    let as_of = sequences.last_time();
    let (train, test) = chronological_split(sequences, crate::evaluate::TRAIN_SHARE);
    let (model, train_prefixes) = OutcomeModel::train(sequences, &train, outcomes, target, as_of);
    // The baseline per current step, from the same training prefixes.
    let mut per_step = vec![(0u64, 0u64); sequences.n_symbols()];
    for journey in &train {
        for length in 1..=sequences.get(*journey).len() {
            if let Some(label) = target.label(sequences, outcomes, as_of, *journey, length) {
                let step = sequences.get(*journey)[length - 1] as usize;
                per_step[step].0 += 1;
                per_step[step].1 += u64::from(label);
            }
        }
    }
    let (mut labelled, mut base, mut by_step) = (Vec::new(), Vec::new(), Vec::new());
    let mut censored = 0;
    for journey in &test {
        for length in 1..=sequences.get(*journey).len() {
            match target.label(sequences, outcomes, as_of, *journey, length) {
                Some(label) => {
                    labelled.push((*journey, length, label));
                    base.push((model.base_rate, label));
                    let (n, hits) = per_step[sequences.get(*journey)[length - 1] as usize];
                    let rate = if n == 0 {
                        model.base_rate
                    } else {
                        hits as f64 / n as f64
                    };
                    by_step.push((rate, label));
                }
                None => {
                    let once_done = target.once
                        && outcomes
                            .of(*journey)
                            .first()
                            .is_some_and(|first| (*first as usize) < length);
                    censored += u64::from(!once_done);
                }
            }
        }
    }
    let prefixes: Vec<(usize, usize)> = labelled.iter().map(|(j, l, _)| (*j, *l)).collect();
    let scored: Vec<(f64, bool)> = model
        .probabilities(sequences, &prefixes)
        .into_iter()
        .zip(&labelled)
        .map(|(p, (_, _, label))| (p, *label))
        .collect();
    let (table, error) = calibration(&scored);
    let evaluation = OutcomeEvaluation {
        train_journeys: train.len(),
        test_journeys: test.len(),
        train_prefixes,
        prefixes: scored.len() as u64,
        censored,
        positives: scored.iter().filter(|(_, y)| *y).count() as u64,
        base_rate: model.base_rate,
        model: probability_score(&scored),
        baseline_base_rate: probability_score(&base),
        baseline_current_step: probability_score(&by_step),
        calibration: table,
        calibration_error: error,
    };
    (evaluation, model)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_counts_ties_half_and_orders_right() {
        assert_eq!(auc(&[(0.1, false), (0.9, true)]), 1.0);
        assert_eq!(auc(&[(0.9, false), (0.1, true)]), 0.0);
        assert_eq!(auc(&[(0.5, false), (0.5, true)]), 0.5);
        // Two positives, two negatives: of 4 pairs, 3 ordered right.
        let scored = [(0.2, false), (0.4, true), (0.3, false), (0.9, true)];
        assert_eq!(auc(&scored), 1.0);
        let scored = [(0.2, false), (0.4, true), (0.5, false), (0.9, true)];
        assert_eq!(auc(&scored), 0.75);
    }

    #[test]
    fn labels_look_after_the_prefix_within_the_horizon_and_censor_at_the_data_end() {
        // One journey of four steps a second apart (times 0, 1, 2, 3 s), the outcome at position 2.
        let sequences = Sequences::from_lists(vec!["a".into()], &[(0, vec![0, 0, 0, 0])]);
        let outcomes = Outcomes::new([vec![2]]);
        let second = 1_000_000;
        let as_of = sequences.last_time();
        let once = BinaryTarget {
            once: true,
            horizon_us: Some(second),
        };
        let label =
            |target: &BinaryTarget, length| target.label(&sequences, &outcomes, as_of, 0, length);
        // After one step the outcome is 2 s away: beyond the horizon, and the horizon ends before the data does.
        assert_eq!(label(&once, 1), Some(false));
        assert_eq!(label(&once, 2), Some(true));
        // It happened in the prefix: a once outcome is not asked about again.
        assert_eq!(label(&once, 3), None);
        let recurring = BinaryTarget {
            once: false,
            horizon_us: Some(second),
        };
        // Nothing after position 3 and the horizon reaches past the data's end: not known yet.
        assert_eq!(label(&recurring, 4), None);
        let any_time = BinaryTarget {
            once: false,
            horizon_us: None,
        };
        assert_eq!(label(&any_time, 1), Some(true));
        assert_eq!(label(&any_time, 4), Some(false));
    }

    #[test]
    fn a_learnable_outcome_beats_both_baselines() {
        // After `a a`, the outcome (step `win` next) follows when the second `a` came quickly; the current step
        // alone cannot tell. Journeys start at every hour, so the time of day cannot tell either.
        let names = vec!["a".to_string(), "win".to_string()];
        let minute = 60_000_000i64;
        let mut sequences = Sequences {
            names,
            channel_names: vec!["web".into()],
            ..Sequences::default()
        };
        let mut positions = Vec::new();
        for journey in 0..1500i64 {
            let quick = journey % 3 != 0;
            let hour = (crate::features::unit_hash(journey as usize, 0, 9) * 24.0) as i64;
            let start = journey * 1_440 * minute + hour * 60 * minute;
            let gap = if quick { minute } else { 300 * minute };
            let mut events = vec![(0, start, 0), (0, start + gap, 0)];
            if quick {
                events.push((1, start + gap + minute, 0));
                positions.push(vec![2]);
            } else {
                positions.push(vec![]);
            }
            sequences.push(start, events);
        }
        let outcomes = Outcomes::new(positions);
        let target = BinaryTarget {
            once: true,
            horizon_us: None,
        };
        let (evaluation, model) = evaluate_outcome(&sequences, &outcomes, target);
        assert_eq!(evaluation.test_journeys, 500);
        // After the first step nobody can know (two in three win); after the second, the gap tells.
        assert!(evaluation.model.auc > 0.85, "{evaluation:?}");
        assert!(evaluation.model.brier < evaluation.baseline_current_step.brier);
        assert!(evaluation.baseline_base_rate.auc == 0.5);
        assert!(evaluation.calibration_error < 0.1, "{evaluation:?}");
        let top = model.explain(&sequences, 1, 2, 3);
        assert!(
            top.iter()
                .any(|c| c.feature.starts_with("time since the step before")),
            "time decides: {top:?}"
        );
    }
}
