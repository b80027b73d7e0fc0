//! `personas`: customers clustered by the shape of their journeys, each cluster explained — its size, goal rate,
//! channels, typical path and the steps that set it apart — and named by those steps.
//!
//! Each journey becomes a vector: log(1 + count) of each of the `vocabulary` steps most customers have, the share
//! of its events on each channel, log(1 + events) and log(1 + days from first to last event); identity calls
//! (`ignore_steps`) are left out. Columns are standardised (z-scores over the fitted sample) and clustered by
//! k-means (`linfa-clustering`, k-means++ seeding with a fixed seed and the best of 10 restarts, so a run is
//! repeatable), on the sample; without `k` the k in 3–8 (2–8 below 30 journeys) with the best mean silhouette is
//! used, each k fitted on at most 5,000 journeys of the sample and its silhouette measured on 1,500 of them.
//! Every journey is then assigned to its nearest centre.

use crate::query::{goals_or_usual, DataInfo, Query, Scope, Spec};
use crate::{AnalyticsError, Runner};
use linfa::prelude::*;
use linfa_clustering::KMeans;
use ndarray::{Array1, Array2, ArrayView1};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt::Write;
use waymark_model::JourneySet;

/// The weight of the channel-share columns against a step's.
const CHANNEL_WEIGHT: f64 = 0.5;

/// `personas` options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PersonasRequest {
    /// Personas to find (2–20); default: the k in 3–8 whose clusters separate best (mean silhouette).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k: Option<usize>,
    /// Goal steps for each persona's goal rate (default: the usual goal the data has).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub goals: Vec<String>,
    /// Steps used as features: the N most customers have (default 40).
    #[serde(default = "PersonasRequest::default_vocabulary")]
    pub vocabulary: usize,
    /// Journeys the clustering is fitted on (every journey is then assigned; default 20,000).
    #[serde(default = "PersonasRequest::default_sample")]
    pub sample: usize,
    /// Steps that are not the customer's (default: the identity calls).
    #[serde(default = "PersonasRequest::default_ignore")]
    pub ignore_steps: Vec<String>,
    /// Customer ids listed per persona (default 10).
    #[serde(default = "PersonasRequest::default_examples")]
    pub examples: usize,
    #[serde(default)]
    pub filter: Scope,
}

impl PersonasRequest {
    fn default_vocabulary() -> usize {
        40
    }
    fn default_sample() -> usize {
        20_000
    }
    fn default_ignore() -> Vec<String> {
        waymark_model::IDENTITY_STEPS.map(String::from).to_vec()
    }
    fn default_examples() -> usize {
        10
    }
}

impl Default for PersonasRequest {
    fn default() -> Self {
        serde_json::from_value(serde_json::json!({})).expect("every field has a default")
    }
}

/// A step that sets a persona apart.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct DistinctiveStep {
    pub step: String,
    /// Share of the persona's customers with the step, and of all customers.
    pub share: f64,
    pub share_overall: f64,
}

/// One persona.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct Persona {
    /// 1, 2, …: largest first.
    pub id: usize,
    /// Its most distinctive steps, joined.
    pub name: String,
    pub customers: u64,
    pub share: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goal_rate: Option<f64>,
    /// Share of its events per channel, largest first.
    pub channels: Vec<(String, f64)>,
    /// The most common path among its customers (repeats collapsed, first 12 steps), and how many follow it.
    pub typical_path: Vec<String>,
    pub typical_path_customers: u64,
    /// Steps far more common in it than overall, most distinctive first.
    pub distinctive_steps: Vec<DistinctiveStep>,
    pub median_events: f64,
    pub median_days: f64,
    pub examples: Vec<String>,
    /// A real-time segment condition (CEL, as in rules.toml) that picks this persona's customers from the steps
    /// they did and did not do, with how well it agrees with the clustering: save it as a segment
    /// (`PUT /v1/segments/{name}`, `waymark rules add-segment`) to follow the persona live and act on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<SegmentRule>,
}

/// A persona as a condition on the journey.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct SegmentRule {
    /// `did("Store Visit") && !did("Order Completed")`.
    pub condition: String,
    /// Of the customers the condition picks, the share in the persona.
    pub precision: f64,
    /// Of the persona's customers, the share the condition picks.
    pub recall: f64,
}

/// A CEL string literal of `text`.
fn cel_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The conjunction of at most three literals (`did(step)` or `!did(step)`, over the `candidates` steps) that
/// best picks the rows of `cluster` == `target` among `rows` (F1, greedily, a literal kept only when it gains at
/// least a point), with its precision and recall on every row. `did[row]` has bit `i` for candidate `i`.
fn segment_rule(
    did: &[u64],
    cluster: &[usize],
    target: usize,
    rows: &[usize],
    candidates: &[&str],
) -> Option<SegmentRule> {
    let f1 = |literals: &[(usize, bool)], rows: &mut dyn Iterator<Item = usize>| {
        let (mut tp, mut fp, mut fneg) = (0u64, 0u64, 0u64);
        for row in rows {
            let picked = literals
                .iter()
                .all(|(bit, wanted)| ((did[row] >> bit) & 1 == 1) == *wanted);
            match (picked, cluster[row] == target) {
                (true, true) => tp += 1,
                (true, false) => fp += 1,
                (false, true) => fneg += 1,
                _ => {}
            }
        }
        (tp, fp, fneg)
    };
    let score =
        |(tp, fp, fneg): (u64, u64, u64)| 2.0 * tp as f64 / (2 * tp + fp + fneg).max(1) as f64;
    let mut literals: Vec<(usize, bool)> = Vec::new();
    let mut best = 0.0;
    while literals.len() < 3 {
        let mut round: Option<((usize, bool), f64)> = None;
        for bit in 0..candidates.len() {
            if literals.iter().any(|(b, _)| *b == bit) {
                continue;
            }
            for wanted in [true, false] {
                let mut trial = literals.clone();
                trial.push((bit, wanted));
                let s = score(f1(&trial, &mut rows.iter().copied()));
                if round.as_ref().is_none_or(|(_, r)| s > *r + 1e-12) {
                    round = Some(((bit, wanted), s));
                }
            }
        }
        match round {
            Some((literal, s)) if s >= best + 0.01 => {
                literals.push(literal);
                best = s;
            }
            _ => break,
        }
    }
    if literals.is_empty() {
        return None;
    }
    let (tp, fp, fneg) = f1(&literals, &mut (0..did.len()));
    Some(SegmentRule {
        condition: literals
            .iter()
            .map(|(bit, wanted)| {
                format!(
                    "{}did({})",
                    if *wanted { "" } else { "!" },
                    cel_string(candidates[*bit])
                )
            })
            .collect::<Vec<_>>()
            .join(" && "),
        precision: tp as f64 / (tp + fp).max(1) as f64,
        recall: tp as f64 / (tp + fneg).max(1) as f64,
    })
}

/// JSON `{"k", "silhouette", "personas", ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct PersonasReport {
    pub customers: u64,
    pub k: usize,
    /// Mean silhouette of the fitted sample (−1 to 1; above 0.25 the clusters are distinct).
    pub silhouette: f64,
    /// Silhouette per k tried, when k was chosen.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub silhouette_by_k: Vec<(usize, f64)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub goals: Vec<String>,
    pub personas: Vec<Persona>,
    /// Each journey's persona id, in journey order (for saving a persona, and for measuring against labels).
    #[serde(skip)]
    pub assignment: Vec<usize>,
    pub features: Vec<String>,
}

/// The bound analysis.
#[derive(Debug, Clone)]
pub struct Personas {
    pub request: PersonasRequest,
}

/// The median (numpy's: the mean of the two middle values of an even count); 0 when empty.
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    crate::stats::quantile(values, 0.5).unwrap_or(0.0)
}

/// The index of the centre (a row of `centroids`) nearest to `row`.
fn nearest_centre(row: ArrayView1<f64>, centroids: &Array2<f64>) -> usize {
    (0..centroids.nrows())
        .min_by(|a, b| {
            distance2(row, centroids.row(*a)).total_cmp(&distance2(row, centroids.row(*b)))
        })
        .expect("k ≥ 1")
}

fn distance2(a: ArrayView1<f64>, b: ArrayView1<f64>) -> f64 {
    a.iter().zip(b.iter()).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// Mean silhouette (Rousseeuw 1987) of `labels` over the rows of `data`.
pub fn silhouette(data: &Array2<f64>, labels: &[usize], k: usize) -> f64 {
    Distances::new(data).silhouette(labels, k)
}

/// Every pairwise Euclidean distance of a set of rows, computed once so that the silhouettes of several
/// labellings of the same rows (one per k tried) cost a pass over the distances each, not over the features.
struct Distances {
    n: usize,
    /// Row-major n × n.
    between: Vec<f64>,
}

impl Distances {
    fn new(data: &Array2<f64>) -> Distances {
        let n = data.nrows();
        let mut between = vec![0.0; n * n];
        for i in 0..n {
            for j in (i + 1)..n {
                let distance = distance2(data.row(i), data.row(j)).sqrt();
                between[i * n + j] = distance;
                between[j * n + i] = distance;
            }
        }
        Distances { n, between }
    }

    fn silhouette(&self, labels: &[usize], k: usize) -> f64 {
        let n = self.n;
        if n < 2 || k < 2 {
            return 0.0;
        }
        let mut count = vec![0usize; k];
        for label in labels {
            count[*label] += 1;
        }
        let mut total = 0.0;
        let mut sum = vec![0.0; k];
        for i in 0..n {
            sum.fill(0.0);
            for (distance, label) in self.between[i * n..(i + 1) * n].iter().zip(labels) {
                sum[*label] += distance;
            }
            let own = labels[i];
            // The row itself is in its own cluster at distance 0.
            let others = count[own] - 1;
            if others == 0 {
                continue;
            }
            let a = sum[own] / others as f64;
            let b = (0..k)
                .filter(|c| *c != own && count[*c] > 0)
                .map(|c| sum[c] / count[c] as f64)
                .fold(f64::INFINITY, f64::min);
            if b.is_finite() {
                total += (b - a) / a.max(b).max(f64::MIN_POSITIVE);
            }
        }
        total / n as f64
    }
}

/// The adjusted Rand index (Hubert & Arabie 1985) of two labellings: 1 equal, about 0 for chance.
pub fn adjusted_rand_index(a: &[usize], b: &[usize]) -> f64 {
    assert_eq!(a.len(), b.len());
    let mut table: HashMap<(usize, usize), u64> = HashMap::new();
    let mut rows: HashMap<usize, u64> = HashMap::new();
    let mut columns: HashMap<usize, u64> = HashMap::new();
    for (x, y) in a.iter().zip(b) {
        *table.entry((*x, *y)).or_default() += 1;
        *rows.entry(*x).or_default() += 1;
        *columns.entry(*y).or_default() += 1;
    }
    let pairs = |n: u64| (n * n.saturating_sub(1)) as f64 / 2.0;
    let index: f64 = table.values().map(|n| pairs(*n)).sum();
    let row_sum: f64 = rows.values().map(|n| pairs(*n)).sum();
    let column_sum: f64 = columns.values().map(|n| pairs(*n)).sum();
    let expected = row_sum * column_sum / pairs(a.len() as u64).max(1.0);
    let max = (row_sum + column_sum) / 2.0;
    if (max - expected).abs() < f64::EPSILON {
        return 1.0;
    }
    (index - expected) / (max - expected)
}

/// Journeys at most that each k is fitted on when the k is to be chosen (six fits): thousands of points place
/// eight centres in a few dozen dimensions as well as the whole sample does, in a quarter of the time.
const SCAN_SAMPLE: usize = 5_000;

fn kmeans(data: &Array2<f64>, k: usize) -> Result<(Array2<f64>, Vec<usize>), AnalyticsError> {
    let dataset = DatasetBase::from(data.clone());
    let model = KMeans::params(k)
        .max_n_iterations(300)
        .tolerance(1e-6)
        .fit(&dataset)
        .map_err(|error| {
            AnalyticsError::field("k", format!("k-means did not converge: {error}"))
        })?;
    let labels: Array1<usize> = model.predict(data);
    Ok((model.centroids().clone(), labels.to_vec()))
}

impl Spec for Personas {
    type Report = PersonasReport;

    fn run(
        &self,
        journeys: &JourneySet,
        _runner: &Runner,
    ) -> Result<PersonasReport, AnalyticsError> {
        let r = &self.request;
        let n = journeys.n_journeys();
        let ignored: Vec<bool> = journeys
            .step_names
            .iter()
            .map(|name| {
                r.ignore_steps
                    .iter()
                    .any(|i| crate::condition::wildcard_match(i, name))
            })
            .collect();
        // A page on the web and the same screen in the app are one feature (`page:X`, `screen:X` → `X`).
        let mut key_names: Vec<String> = Vec::new();
        let mut key_index: HashMap<String, usize> = HashMap::new();
        let key_of: Vec<usize> = journeys
            .step_names
            .iter()
            .map(|name| {
                let base = name
                    .strip_prefix("page:")
                    .or_else(|| name.strip_prefix("screen:"))
                    .unwrap_or(name)
                    .to_string();
                *key_index.entry(base.clone()).or_insert_with(|| {
                    key_names.push(base);
                    key_names.len() - 1
                })
            })
            .collect();
        let mut key_customers = vec![0u64; key_names.len()];
        // Customers per step, for the vocabulary and the distinctive steps.
        let mut customers_with = vec![0u64; journeys.step_names.len()];
        let mut live: Vec<usize> = Vec::new();
        for index in 0..n {
            let journey = journeys.journey(index);
            let mut seen = vec![false; journeys.step_names.len()];
            let mut seen_key = vec![false; key_names.len()];
            let mut any = false;
            for &step in journey.step {
                if !ignored[step as usize] {
                    any = true;
                    if !seen[step as usize] {
                        seen[step as usize] = true;
                        customers_with[step as usize] += 1;
                    }
                    let key = key_of[step as usize];
                    if !seen_key[key] {
                        seen_key[key] = true;
                        key_customers[key] += 1;
                    }
                }
            }
            if any {
                live.push(index);
            }
        }
        let total = live.len();
        let need = r.k.unwrap_or(2) + 1;
        if total < need {
            return Err(AnalyticsError::field(
                "k",
                format!(
                    "{total} journeys in this selection: {} personas need at least {need}",
                    need - 1
                ),
            ));
        }
        let mut vocabulary: Vec<usize> = (0..key_names.len())
            .filter(|k| key_customers[*k] > 0)
            .collect();
        vocabulary.sort_by(|a, b| {
            key_customers[*b]
                .cmp(&key_customers[*a])
                .then_with(|| key_names[*a].cmp(&key_names[*b]))
        });
        vocabulary.truncate(r.vocabulary);
        let column_of_key: HashMap<usize, usize> = vocabulary
            .iter()
            .enumerate()
            .map(|(c, k)| (*k, c))
            .collect();
        let column_of: HashMap<usize, usize> = (0..journeys.step_names.len())
            .filter(|s| !ignored[*s])
            .filter_map(|s| column_of_key.get(&key_of[s]).map(|c| (s, *c)))
            .collect();
        let channels = journeys.channel_names.len();
        let width = vocabulary.len() + channels + 2;
        let mut features = Array2::<f64>::zeros((total, width));
        for (row, &index) in live.iter().enumerate() {
            let journey = journeys.journey(index);
            let mut events = 0usize;
            let (mut first, mut last) = (i64::MAX, i64::MIN);
            for ((&step, &channel), &ts) in journey.step.iter().zip(journey.channel).zip(journey.ts)
            {
                if ignored[step as usize] {
                    continue;
                }
                events += 1;
                first = first.min(ts);
                last = last.max(ts);
                if let Some(&c) = column_of.get(&(step as usize)) {
                    features[[row, c]] += 1.0;
                }
                features[[row, vocabulary.len() + channel as usize]] += 1.0;
            }
            for c in 0..vocabulary.len() {
                features[[row, c]] = features[[row, c]].ln_1p();
            }
            for c in 0..channels {
                features[[row, vocabulary.len() + c]] /= events.max(1) as f64;
            }
            features[[row, width - 2]] = (events as f64).ln_1p();
            features[[row, width - 1]] = ((last - first).max(0) as f64 / 86_400e6).ln_1p();
        }
        // Standardise each column (a constant column stays 0); the channel block counts half, so that the device a
        // customer happens to use does not outweigh what they do.
        for (c, mut column) in features.columns_mut().into_iter().enumerate() {
            let mean = column.mean().unwrap_or(0.0);
            let sd = column.std(0.0);
            let weight = if (vocabulary.len()..vocabulary.len() + channels).contains(&c) {
                CHANNEL_WEIGHT
            } else {
                1.0
            };
            column.mapv_inplace(|x| {
                if sd > 1e-12 {
                    weight * (x - mean) / sd
                } else {
                    0.0
                }
            });
        }
        // Fit on an evenly spread sample; measure the silhouette on a smaller one.
        let sample_rows: Vec<usize> = spread(total, r.sample.max(10));
        let sample = features.select(ndarray::Axis(0), &sample_rows);
        let check_rows = spread(sample.nrows(), 1_500);
        let check = sample.select(ndarray::Axis(0), &check_rows);
        let distances = Distances::new(&check);
        let mut silhouette_by_k = Vec::new();
        let (k, centroids) = match r.k {
            Some(k) => (k, kmeans(&sample, k)?.0),
            None => {
                // Each k is fitted on at most SCAN_SAMPLE journeys of the sample, its silhouette measured on the
                // check rows labelled by their nearest centre; the best fit's centres are kept.
                let scan = sample.select(ndarray::Axis(0), &spread(sample.nrows(), SCAN_SAMPLE));
                let mut best: Option<(usize, f64, Array2<f64>)> = None;
                // Two groups are rarely a useful set of personas; fewer than 30 journeys may only split in two.
                let low = if sample.nrows() >= 30 { 3 } else { 2 };
                for k in low..=8.min(scan.nrows() - 1).max(low) {
                    let (centroids, _) = kmeans(&scan, k)?;
                    let check_labels: Vec<usize> = check
                        .rows()
                        .into_iter()
                        .map(|row| nearest_centre(row, &centroids))
                        .collect();
                    let score = distances.silhouette(&check_labels, k);
                    silhouette_by_k.push((k, score));
                    if best.as_ref().is_none_or(|(_, s, _)| score > *s + 1e-12) {
                        best = Some((k, score, centroids));
                    }
                }
                let (k, _, centroids) = best.expect("at least k = 2 was tried");
                (k, centroids)
            }
        };
        let cluster: Vec<usize> = (0..total)
            .map(|row| nearest_centre(features.row(row), &centroids))
            .collect();
        let check_labels: Vec<usize> = check_rows
            .iter()
            .map(|i| cluster[sample_rows[*i]])
            .collect();
        let score = distances.silhouette(&check_labels, k);
        // What each customer did of the 64 most common steps, for the personas' segment conditions.
        let mut common: Vec<usize> = (0..journeys.step_names.len())
            .filter(|s| !ignored[*s] && customers_with[*s] > 0)
            .collect();
        common.sort_by(|a, b| {
            customers_with[*b]
                .cmp(&customers_with[*a])
                .then_with(|| a.cmp(b))
        });
        common.truncate(64);
        let bit_of: HashMap<usize, usize> =
            common.iter().enumerate().map(|(b, s)| (*s, b)).collect();
        let did: Vec<u64> = live
            .iter()
            .map(|&index| {
                journeys
                    .journey(index)
                    .step
                    .iter()
                    .fold(0u64, |bits, step| {
                        bits | bit_of.get(&(*step as usize)).map_or(0, |b| 1 << b)
                    })
            })
            .collect();
        let candidates: Vec<&str> = common
            .iter()
            .map(|s| journeys.step_names[*s].as_str())
            .collect();
        let goals = goals_or_usual(&r.goals, &journeys.step_names);
        let is_goal: Vec<bool> = journeys
            .step_names
            .iter()
            .map(|name| {
                goals
                    .iter()
                    .any(|g| crate::condition::wildcard_match(g, name))
            })
            .collect();
        let mut personas = Vec::new();
        for c in 0..k {
            let members: Vec<usize> = (0..total)
                .filter(|row| cluster[*row] == c)
                .map(|row| live[row])
                .collect();
            if members.is_empty() {
                continue;
            }
            let size = members.len() as u64;
            let mut with = vec![0u64; journeys.step_names.len()];
            let mut channel_events = vec![0u64; channels];
            let mut paths: HashMap<Vec<u32>, u64> = HashMap::new();
            let (mut goal, mut events, mut days) = (0u64, Vec::new(), Vec::new());
            for &index in &members {
                let journey = journeys.journey(index);
                let mut seen = vec![false; journeys.step_names.len()];
                let mut path: Vec<u32> = Vec::new();
                let mut reached = false;
                let (mut n_events, mut first, mut last) = (0usize, i64::MAX, i64::MIN);
                for ((&step, &channel), &ts) in
                    journey.step.iter().zip(journey.channel).zip(journey.ts)
                {
                    if ignored[step as usize] {
                        continue;
                    }
                    n_events += 1;
                    first = first.min(ts);
                    last = last.max(ts);
                    reached |= is_goal[step as usize];
                    channel_events[channel as usize] += 1;
                    if !seen[step as usize] {
                        seen[step as usize] = true;
                        with[step as usize] += 1;
                    }
                    if path.last() != Some(&step) && path.len() < 12 {
                        path.push(step);
                    }
                }
                goal += u64::from(reached);
                events.push(n_events as f64);
                days.push((last - first).max(0) as f64 / 86_400e6);
                *paths.entry(path).or_default() += 1;
            }
            let (typical, typical_count) = paths
                .into_iter()
                .max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(&a.0)))
                .expect("a persona has members");
            let mut distinctive: Vec<DistinctiveStep> = (0..journeys.step_names.len())
                .filter(|s| !ignored[*s] && with[*s] as f64 >= 0.2 * size as f64)
                .map(|s| DistinctiveStep {
                    step: journeys.step_names[s].clone(),
                    share: with[s] as f64 / size as f64,
                    share_overall: customers_with[s] as f64 / total as f64,
                })
                .filter(|d| d.share > d.share_overall * 1.15)
                .collect();
            let lift = |d: &DistinctiveStep| {
                (d.share - d.share_overall) * (d.share / d.share_overall.max(1e-9)).ln()
            };
            distinctive.sort_by(|a, b| {
                lift(b)
                    .total_cmp(&lift(a))
                    .then_with(|| a.step.cmp(&b.step))
            });
            distinctive.truncate(6);
            let all_events: u64 = channel_events.iter().sum();
            let mut channel_shares: Vec<(String, f64)> = channel_events
                .iter()
                .enumerate()
                .filter(|(_, e)| **e > 0)
                .map(|(c, e)| {
                    (
                        journeys.channel_names[c].clone(),
                        *e as f64 / all_events.max(1) as f64,
                    )
                })
                .collect();
            channel_shares.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            let name = if distinctive.is_empty() {
                // Nothing stands out: named by the steps most of its customers have.
                let mut common: Vec<usize> = (0..journeys.step_names.len())
                    .filter(|s| !ignored[*s] && with[*s] > 0)
                    .collect();
                common.sort_by(|a, b| with[*b].cmp(&with[*a]).then_with(|| a.cmp(b)));
                format!(
                    "mostly {}",
                    common
                        .iter()
                        .take(2)
                        .map(|s| journeys.step_names[*s].as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            } else {
                distinctive
                    .iter()
                    .take(2)
                    .map(|d| d.step.as_str())
                    .collect::<Vec<_>>()
                    .join(" + ")
            };
            personas.push((
                c,
                Persona {
                    id: 0,
                    name,
                    customers: size,
                    share: size as f64 / total as f64,
                    goal_rate: (!goals.is_empty()).then(|| goal as f64 / size as f64),
                    channels: channel_shares,
                    typical_path: typical
                        .iter()
                        .map(|s| journeys.step_names[*s as usize].clone())
                        .collect(),
                    typical_path_customers: typical_count,
                    distinctive_steps: distinctive,
                    median_events: median(&mut events),
                    median_days: median(&mut days),
                    examples: members
                        .iter()
                        .take(r.examples)
                        .map(|i| journeys.customer_ids[*i].to_string())
                        .collect(),
                    segment: segment_rule(&did, &cluster, c, &sample_rows, &candidates),
                },
            ));
        }
        personas.sort_by(|a, b| {
            b.1.customers
                .cmp(&a.1.customers)
                .then_with(|| a.1.name.cmp(&b.1.name))
        });
        // Two personas may share their two most distinctive steps: the later one adds its next one.
        for i in 1..personas.len() {
            let taken = personas[..i]
                .iter()
                .any(|(_, p)| p.name == personas[i].1.name);
            if taken {
                let p = &mut personas[i].1;
                let extra = p.distinctive_steps.get(2).map(|d| d.step.clone());
                p.name = match extra {
                    Some(step) => format!("{} + {step}", p.name),
                    None => format!("{} ({})", p.name, i + 1),
                };
            }
        }
        let mut id_of = vec![0usize; k];
        for (position, (c, persona)) in personas.iter_mut().enumerate() {
            persona.id = position + 1;
            id_of[*c] = position + 1;
        }
        let mut assignment = vec![0usize; n];
        for (row, index) in live.iter().enumerate() {
            assignment[*index] = id_of[cluster[row]];
        }
        let mut feature_names: Vec<String> = vocabulary
            .iter()
            .map(|k| format!("log(1 + count of {})", key_names[*k]))
            .collect();
        feature_names.extend(
            journeys
                .channel_names
                .iter()
                .map(|c| format!("share of events on {c}")),
        );
        feature_names.push("log(1 + events)".into());
        feature_names.push("log(1 + days from first to last event)".into());
        Ok(PersonasReport {
            customers: total as u64,
            k,
            silhouette: score,
            silhouette_by_k,
            goals,
            personas: personas.into_iter().map(|(_, p)| p).collect(),
            assignment,
            features: feature_names,
        })
    }
}

/// `want` indices spread evenly over `0..n` (all of them when `n ≤ want`).
fn spread(n: usize, want: usize) -> Vec<usize> {
    if n <= want {
        return (0..n).collect();
    }
    (0..want).map(|i| i * n / want).collect()
}

impl Query for PersonasRequest {
    const NAME: &'static str = "personas";
    const HELP: &'static str = "Customers clustered by journey shape (steps, channels, length, duration; k-means): each persona's size, goal rate, channels, typical path and distinctive steps.";
    const EXAMPLE: &'static str = "--k 4";
    type Report = PersonasReport;
    type Spec = Personas;

    fn scope(&self) -> &Scope {
        &self.filter
    }

    fn spec(&self, _data: &DataInfo<'_>) -> Result<Personas, AnalyticsError> {
        if let Some(k) = self.k {
            if !(2..=20).contains(&k) {
                return Err(AnalyticsError::field(
                    "k",
                    format!("k must be 2 to 20 personas, not {k}"),
                ));
            }
        }
        if self.vocabulary == 0 {
            return Err(AnalyticsError::field(
                "vocabulary",
                "vocabulary must be at least 1 step",
            ));
        }
        Ok(Personas {
            request: self.clone(),
        })
    }

    fn text(&self, report: &PersonasReport, rows: usize) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} personas among {} customers (silhouette {:.2})\n",
            report.k, report.customers, report.silhouette
        );
        for p in report.personas.iter().take(rows) {
            let _ = writeln!(
                out,
                "{}. {} — {} customers ({:.0}%){}",
                p.id,
                p.name,
                p.customers,
                p.share * 100.0,
                p.goal_rate
                    .map(|g| format!(", goal {:.0}%", g * 100.0))
                    .unwrap_or_default()
            );
            let _ = writeln!(
                out,
                "   channels: {}",
                p.channels
                    .iter()
                    .take(3)
                    .map(|(c, s)| format!("{c} {:.0}%", s * 100.0))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let _ = writeln!(
                out,
                "   typical path ({}): {}",
                p.typical_path_customers,
                p.typical_path.join(" → ")
            );
            if let Some(rule) = &p.segment {
                let _ = writeln!(
                    out,
                    "   as a segment: {}  (picks {:.0}% of them, {:.0}% of those it picks are in it; `waymark rules add-segment NAME --condition '…'` follows it live)",
                    rule.condition,
                    rule.recall * 100.0,
                    rule.precision * 100.0
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_adjusted_rand_index_is_one_for_equal_labellings_and_near_zero_for_unrelated() {
        assert!(
            (adjusted_rand_index(&[0, 0, 1, 1, 2, 2], &[5, 5, 3, 3, 9, 9]) - 1.0).abs() < 1e-12
        );
        // A hand-checked value: scikit-learn's adjusted_rand_score([0,0,1,1], [0,0,1,2]) = 0.5714285714.
        assert!((adjusted_rand_index(&[0, 0, 1, 1], &[0, 0, 1, 2]) - 0.571_428_571_4).abs() < 1e-9);
    }

    #[test]
    fn three_kinds_of_journey_are_told_apart_and_named_by_their_steps() {
        let mut journeys = Vec::new();
        for c in 0..90 {
            let steps: &[&str] = match c % 3 {
                0 => &["view", "cart", "pay", "buy"],
                1 => &["view", "help", "call", "call"],
                _ => &["view", "view", "view"],
            };
            let channel = if c % 3 == 1 { "call_center" } else { "web" };
            journeys.push((
                format!("c{c}"),
                steps
                    .iter()
                    .enumerate()
                    .map(|(i, s)| (i as i64 * 60_000_000 * (1 + (c % 3) as i64), *s, channel))
                    .collect::<Vec<_>>(),
            ));
        }
        let set = JourneySet::from_journeys(journeys);
        let request: PersonasRequest =
            serde_json::from_value(serde_json::json!({"goals": ["buy"]})).unwrap();
        let report = request
            .spec(&DataInfo { step_names: &[] })
            .unwrap()
            .run(&set, &Runner::new(1))
            .unwrap();
        assert_eq!(report.k, 3, "{:?}", report.silhouette_by_k);
        let truth: Vec<usize> = (0..90).map(|c| c % 3).collect();
        assert!((adjusted_rand_index(&truth, &report.assignment) - 1.0).abs() < 1e-12);
        let buyers = report
            .personas
            .iter()
            .find(|p| p.goal_rate == Some(1.0))
            .unwrap();
        assert!(
            buyers.name.contains("buy")
                || buyers.name.contains("pay")
                || buyers.name.contains("cart"),
            "{}",
            buyers.name
        );
        assert_eq!(buyers.typical_path, ["view", "cart", "pay", "buy"]);
        let callers = report
            .personas
            .iter()
            .find(|p| p.channels[0].0 == "call_center")
            .unwrap();
        assert_eq!(callers.customers, 30);
    }
}
