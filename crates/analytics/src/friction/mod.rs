//! Friction: a ranked report of where customers get stuck. Each journey is scanned once for the signals a CX team
//! looks for — dead ends, loops and rework, error events, self-service → assisted channel jumps, repeat contacts,
//! steps slower than their standard time or their own temporal profile, journeys stuck past a standard time, and
//! negative feedback — and every signal becomes a *candidate finding* keyed by the step (or step pair, or rated item)
//! it is about, and by whether it came before the customer reached the goal or after (delivery, activation,
//! installation and support are friction too, and cost contacts rather than goals).
//!
//! Identity calls (`identify`, `alias`, `group`: [`Friction::ignore_steps`]) are not journey steps here: they are
//! skipped before any signal is looked for.
//!
//! Findings are ranked by their harm, in customers: the customers affected beyond what is normal for that kind of
//! signal (the median rate of the same signal across all steps, or zero where any occurrence is friction: errors,
//! breached standard times), plus the goal completions they lost against comparable customers (those exposed to the
//! same step without the signal; for an error, those at the step before it without the error), plus the extra
//! assisted contacts (calls, store visits) they made afterwards against the same comparable customers. A candidate
//! whose customers do at least as well as the comparable ones on both counts (no goals lost, no extra contacts) is
//! not friction and is not reported, unless it is friction by definition (an error, a breached standard time, a
//! stuck journey, negative feedback). Every finding says in words what happened, how often against the norm, where
//! it concentrates (the segment value most over-represented among the affected), and which customers are behind it.
//!
//! A first pass ([`TransitionProfile`]) measures every step-to-step transition as a histogram of log-times. Where
//! the times form two groups — a typical one and a slow one of 5–50 % at least `slow_factor` times slower, found
//! by a two-component Gaussian mixture that explains the times better than one component does (BIC) — the slow
//! group is slow; otherwise a time is slow beyond the median by `slow_k` robust deviations (1.4826 × the median
//! absolute deviation of the log-time) and by `slow_factor`. A slow group of a third of the customers would inflate
//! a mean and standard deviation until it hid itself; neither test is moved by it. The same pass finds
//! the analysis's "now" (for stuck journeys): the 99.9th percentile of the journeys' last event times, ignoring
//! times in the future of the machine's clock, so one event dated years ahead does not make every journey stuck.

use crate::condition::{wildcard_match, Compiled, Condition};
use crate::error::AnalyticsError;
use crate::Analysis;
use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use waymark_model::{JourneyRef, JourneySet};

mod report;
mod signals;

use report::ratio;
pub use report::{Concentration, Finding, FrictionReport};

const US_PER_HOUR: f64 = 3_600_000_000.0;
/// Log-time histogram resolution: buckets per doubling of a transition's time.
const BUCKETS_PER_OCTAVE: f64 = 8.0;
/// The share of journeys whose last event may lie after the analysis's "now".
const NOW_QUANTILE: f64 = 0.999;

/// Friction settings; [`Friction::default`] suits Segment-style data of any business.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Friction {
    /// Reaching any of these is reaching the goal.
    pub goals: Vec<Condition>,
    /// Channels where a person helps the customer.
    pub assisted_channels: Vec<String>,
    /// Channels where customers help themselves (the origin of a channel jump). Others (e-mail, SMS, ads) are
    /// neither.
    pub self_service_channels: Vec<String>,
    /// A self-service step followed by an assisted contact within this window is a channel jump (µs).
    pub jump_window_us: i64,
    /// A second contact on the same assisted channel within this window is a repeat contact (µs).
    pub repeat_window_us: i64,
    /// Events on one assisted channel less than this apart belong to one contact (µs).
    pub contact_gap_us: i64,
    /// A transition is slow beyond its median log-time plus `slow_k` robust deviations (1.4826 × the median
    /// absolute deviation of the log-time) …
    pub slow_k: f64,
    /// … and beyond `slow_factor` times its median time.
    pub slow_factor: f64,
    /// Standard times per step (`*` patterns): the time to the next step should not exceed it (µs).
    pub standard_times: Vec<(String, i64)>,
    /// An event property holding its step's standard time in hours (default `standard_time_hours`; settable per
    /// request, `None` to read none).
    pub standard_time_property: Option<String>,
    /// Step names containing any of these (case-insensitive) are error events.
    pub error_words: Vec<String>,
    /// Steps that are not journey steps (identity calls): skipped before signals are looked for.
    pub ignore_steps: Vec<String>,
    /// Feedback: a boolean property where `false` is negative …
    pub helpful_property: String,
    /// … or score properties where a value at most `negative_score` is negative.
    pub score_properties: Vec<String>,
    pub negative_score: f64,
    /// The property naming the step a feedback event rates (else the previous step).
    pub rated_step_property: String,
    /// Where a finding concentrates: a dotted name (`context.device.type`, `traits.plan`) is read as it is; a bare
    /// name (`plan`) from the event's properties or the customer's traits (`traits.plan`, `context.traits.plan`),
    /// whichever the event has. A value holds for the customer's later events until another replaces it (and for
    /// the events before the first one), so a trait sent once with `identify` segments the whole journey.
    pub segment_by: Vec<String>,
    /// A drop-off point is a step after which at least this share of customers reach the goal (the goal path).
    pub drop_off_min_progress: f64,
    /// Candidates with fewer affected customers are not reported.
    pub min_customers: u64,
    /// The analysis's "now" for stuck journeys (µs since the epoch); default: the 99.9th percentile of the
    /// journeys' last event times, ignoring those after the machine's clock.
    pub as_of_us: Option<i64>,
    /// Findings reported.
    pub top: usize,
    /// Customer ids listed per finding.
    pub examples: usize,
}

impl Default for Friction {
    fn default() -> Friction {
        Friction {
            goals: Vec::new(),
            assisted_channels: vec!["call_center".into(), "store".into()],
            self_service_channels: vec!["web".into(), "app".into(), "chat".into()],
            jump_window_us: 86_400_000_000,
            repeat_window_us: 7 * 86_400_000_000,
            contact_gap_us: 3_600_000_000,
            slow_k: 3.0,
            slow_factor: 2.0,
            standard_times: Vec::new(),
            standard_time_property: Some("standard_time_hours".into()),
            error_words: [
                "fail",
                "error",
                "declined",
                "denied",
                "timeout",
                "timed out",
                "exception",
                "crash",
                "invalid",
            ]
            .map(String::from)
            .to_vec(),
            ignore_steps: waymark_model::IDENTITY_STEPS.map(String::from).to_vec(),
            helpful_property: "helpful".into(),
            score_properties: vec!["csat".into(), "rating".into(), "score".into()],
            negative_score: 2.0,
            rated_step_property: "rated_step".into(),
            segment_by: vec![
                "context.device.type".into(),
                "context.os.name".into(),
                "region".into(),
                "country".into(),
                "plan".into(),
            ],
            drop_off_min_progress: 0.5,
            min_customers: 20,
            as_of_us: None,
            top: 15,
            examples: 10,
        }
    }
}

/// The kinds of friction signal.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    DropOff,
    DeadEnd,
    Loop,
    ErrorEvent,
    ChannelJump,
    RepeatContact,
    SlowStep,
    SlowAgainstStandard,
    Stuck,
    NegativeFeedback,
}

impl FindingKind {
    /// Friction whatever the outcome: the customer hit an error, waited far longer than usual or past a standard,
    /// is stuck, had to contact again, or said so. Other kinds are friction only where their customers fare worse
    /// than comparable ones.
    fn by_definition(self) -> bool {
        matches!(
            self,
            FindingKind::ErrorEvent
                | FindingKind::SlowStep
                | FindingKind::SlowAgainstStandard
                | FindingKind::Stuck
                | FindingKind::RepeatContact
                | FindingKind::NegativeFeedback
        )
    }

    /// Kinds where every occurrence counts, whatever other steps show: their norm is zero.
    fn any_occurrence_counts(self) -> bool {
        matches!(
            self,
            FindingKind::ErrorEvent | FindingKind::SlowAgainstStandard | FindingKind::Stuck
        )
    }
}

/// The signals that say a customer is stuck (what a prediction of "getting stuck" predicts): friction's
/// definition, each observed at the event that shows it.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum StuckSignal {
    /// A self-service action done again within three steps: observed at the repeat.
    Loop,
    /// An error event within three steps of another: observed at the second.
    ErrorStreak,
    /// The journey ends without the goal: observed at its end.
    DeadEnd,
    /// A step slower than its transition's typical time or its standard time, or a journey idle past its last
    /// step's standard time: observed at the step that ends the wait (the end, for an idle journey).
    SlowStep,
}

impl StuckSignal {
    pub const ALL: [StuckSignal; 4] = [
        StuckSignal::Loop,
        StuckSignal::ErrorStreak,
        StuckSignal::DeadEnd,
        StuckSignal::SlowStep,
    ];
}

/// The property columns a segment reads, and their values coded in one dictionary.
#[derive(Debug)]
struct SegmentSource {
    name: String,
    /// Column index, and its codes remapped to the segment's (0: no value).
    columns: Vec<(usize, Vec<u32>)>,
    values: Vec<Value>,
}

/// The columns a segment name reads: a bare name from the properties and the traits.
fn segment_columns(name: &str) -> Vec<String> {
    if name.contains('.') {
        vec![name.to_string()]
    } else {
        vec![
            name.to_string(),
            format!("traits.{name}"),
            format!("context.traits.{name}"),
        ]
    }
}

impl Friction {
    /// The property columns friction reads.
    pub fn properties(&self) -> Vec<String> {
        let mut names = Vec::new();
        for goal in &self.goals {
            goal.properties(&mut names);
        }
        let mut add = |name: &String| {
            if !names.contains(name) {
                names.push(name.clone());
            }
        };
        add(&self.helpful_property);
        self.score_properties.iter().for_each(&mut add);
        add(&self.rated_step_property);
        if let Some(property) = &self.standard_time_property {
            add(property);
        }
        for segment in &self.segment_by {
            segment_columns(segment).iter().for_each(&mut add);
        }
        names
    }

    /// Binds the settings to a journey set and measures its transitions: the first of friction's two passes (the
    /// prepared analysis is the second).
    pub fn prepare<'f>(
        &'f self,
        journeys: &JourneySet,
        runner: &crate::Runner,
    ) -> Result<PreparedFriction<'f>, AnalyticsError> {
        if self.goals.is_empty() {
            return Err(AnalyticsError::field("goals", "friction needs a goal: the step (or condition) that counts as success, e.g. \"Order Completed\""));
        }
        for (field, value) in [("slow_k", self.slow_k), ("slow_factor", self.slow_factor)] {
            if !(value.is_finite() && value > 0.0) {
                return Err(AnalyticsError::field(
                    field,
                    format!("{field} must be a positive number, not {value}"),
                ));
            }
        }
        let goals = self
            .goals
            .iter()
            .map(|goal| goal.compile(journeys))
            .collect::<Result<Vec<_>, _>>()?;
        let column = |name: &str| {
            journeys
                .properties
                .iter()
                .position(|column| column.name == name)
        };
        // Views of the same screen on web and app (`page:X`, `screen:X`) are one step here.
        let mut by_name: FxHashMap<&str, u32> = FxHashMap::default();
        let canonical: Vec<u32> = journeys
            .step_names
            .iter()
            .enumerate()
            .map(|(code, name)| *by_name.entry(view_name(name)).or_insert(code as u32))
            .collect();
        let is_error = journeys
            .step_names
            .iter()
            .map(|name| {
                let name = name.to_lowercase();
                self.error_words
                    .iter()
                    .any(|word| name.contains(&word.to_lowercase()))
            })
            .collect();
        let is_view = journeys
            .step_names
            .iter()
            .map(|name| name.starts_with("page:") || name.starts_with("screen:"))
            .collect();
        let ignored = journeys
            .step_names
            .iter()
            .map(|name| {
                self.ignore_steps
                    .iter()
                    .any(|pattern| wildcard_match(pattern, name))
            })
            .collect();
        let standard = journeys
            .step_names
            .iter()
            .map(|name| {
                self.standard_times
                    .iter()
                    .find(|(pattern, _)| wildcard_match(pattern, name))
                    .map(|(_, us)| *us)
            })
            .collect();
        let assisted = journeys
            .channel_names
            .iter()
            .map(|name| self.assisted_channels.contains(name))
            .collect();
        let self_service = journeys
            .channel_names
            .iter()
            .map(|name| self.self_service_channels.contains(name))
            .collect();
        let rated_step = column(&self.rated_step_property).map(|index| {
            let step_codes =
                crate::rules::step_codes_by_name(&journeys.step_names, |code| canonical[code]);
            let values = journeys.properties[index]
                .values
                .iter()
                .map(|value| {
                    value
                        .as_str()
                        .and_then(|name| step_codes.get(name).copied())
                })
                .collect::<Vec<_>>();
            (index, values)
        });
        let segments = self
            .segment_by
            .iter()
            .filter_map(|name| {
                let mut source = SegmentSource {
                    name: name.clone(),
                    columns: Vec::new(),
                    values: vec![Value::Null],
                };
                let mut coded: FxHashMap<String, u32> = FxHashMap::default();
                for column_name in segment_columns(name) {
                    let Some(index) = column(&column_name) else {
                        continue;
                    };
                    let remap = journeys.properties[index]
                        .values
                        .iter()
                        .enumerate()
                        .map(|(code, value)| {
                            if code == 0 || value.is_null() {
                                return 0;
                            }
                            let text = match value {
                                Value::String(text) => text.clone(),
                                other => other.to_string(),
                            };
                            *coded.entry(text).or_insert_with(|| {
                                source.values.push(value.clone());
                                (source.values.len() - 1) as u32
                            })
                        })
                        .collect();
                    source.columns.push((index, remap));
                }
                (source.values.len() > 1).then_some(source)
            })
            .collect();
        let mut prepared = PreparedFriction {
            settings: self,
            goals,
            canonical,
            is_error,
            is_view,
            ignored,
            standard,
            assisted,
            self_service,
            progress: Vec::new(),
            helpful: column(&self.helpful_property),
            scores: self
                .score_properties
                .iter()
                .filter_map(|name| column(name))
                .collect(),
            rated_step,
            standard_property: self.standard_time_property.as_deref().and_then(column),
            segments,
            slow: FxHashMap::default(),
            now: 0,
        };
        let profile = runner.pass(
            &TransitionProfile {
                friction: &prepared,
            },
            journeys,
        );
        let mut progress = vec![0.0; journeys.step_names.len()];
        for (step, (exposed, goal)) in &profile.steps {
            progress[*step as usize] = ratio(*goal, *exposed);
        }
        prepared.progress = progress;
        prepared.slow = slow_thresholds(&profile.transitions, self.slow_k, self.slow_factor);
        prepared.now = match self.as_of_us {
            Some(now) => now,
            None => {
                let clock = waymark_model::Timestamp::now().0;
                let mut last: Vec<i64> = profile
                    .last_times
                    .into_iter()
                    .filter(|ts| *ts <= clock)
                    .collect();
                if last.is_empty() {
                    0
                } else {
                    let rank = ((last.len() - 1) as f64 * NOW_QUANTILE).floor() as usize;
                    *last.select_nth_unstable(rank).1
                }
            }
        };
        Ok(prepared)
    }
}

/// Per transition with at least 30 occurrences: its typical time and the time beyond which it is slow, from its
/// log-time histogram (see the module documentation).
fn slow_thresholds(
    histograms: &FxHashMap<(u32, u32, u16), u64>,
    k: f64,
    factor: f64,
) -> FxHashMap<(u32, u32), SlowThreshold> {
    let mut by_transition: FxHashMap<(u32, u32), Vec<(u16, u64)>> = FxHashMap::default();
    for ((from, to, bucket), count) in histograms {
        by_transition
            .entry((*from, *to))
            .or_default()
            .push((*bucket, *count));
    }
    by_transition
        .into_iter()
        .filter_map(|(key, mut buckets)| {
            let total: u64 = buckets.iter().map(|(_, count)| count).sum();
            if total < 30 {
                return None;
            }
            buckets.sort_unstable();
            let bins: Vec<(f64, f64)> = buckets
                .iter()
                .map(|(bucket, count)| {
                    (
                        (f64::from(*bucket) + 0.5) / BUCKETS_PER_OCTAVE,
                        *count as f64,
                    )
                })
                .collect();
            let (typical, threshold) =
                slow_group(&bins, factor).unwrap_or_else(|| robust_tail(&bins, total, k, factor));
            Some((
                key,
                SlowThreshold {
                    median_us: typical.exp2() as i64,
                    threshold_us: threshold.exp2() as i64,
                },
            ))
        })
        .collect()
}

/// A transition with one typical time: slow beyond its median log-time plus `k` robust deviations (1.4826 × the
/// median absolute deviation, at least one bucket) and beyond `factor` times the median. Returns (typical,
/// threshold) in log2 µs.
fn robust_tail(bins: &[(f64, f64)], total: u64, k: f64, factor: f64) -> (f64, f64) {
    let median = weighted_median(bins.iter().copied(), total);
    let mut deviations: Vec<(f64, f64)> = bins
        .iter()
        .map(|(x, count)| ((x - median).abs(), *count))
        .collect();
    deviations.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mad = weighted_median(deviations.into_iter(), total).max(1.0 / BUCKETS_PER_OCTAVE);
    (
        median,
        (median + k * 1.4826 * mad).max(median + factor.log2()),
    )
}

/// A transition whose times form two groups — a typical one and a slow one holding 5–50 % of them, at least
/// `factor` times slower and clearly apart — found by a two-component Gaussian mixture of the log-times (EM on the
/// histogram), kept only where it explains the times better than one component does (BIC). Returns (typical,
/// threshold) in log2 µs: the fast group's median and the time beyond which a transition more likely belongs to
/// the slow group.
fn slow_group(bins: &[(f64, f64)], factor: f64) -> Option<(f64, f64)> {
    let n: f64 = bins.iter().map(|(_, w)| w).sum();
    let floor = 1.0 / BUCKETS_PER_OCTAVE;
    let mean = bins.iter().map(|(x, w)| x * w).sum::<f64>() / n;
    let sd = (bins
        .iter()
        .map(|(x, w)| w * (x - mean).powi(2))
        .sum::<f64>()
        / n)
        .sqrt()
        .max(floor);
    let quantile = |q: f64| {
        let mut seen = 0.0;
        bins.iter()
            .find(|(_, w)| {
                seen += w;
                seen >= q * n
            })
            .map_or(mean, |(x, _)| *x)
    };
    let density = |x: f64, mu: f64, sigma: f64| {
        (-(x - mu).powi(2) / (2.0 * sigma * sigma)).exp()
            / (sigma * (2.0 * std::f64::consts::PI).sqrt())
    };
    let (mut pi, mut mu, mut sigma) = (
        [0.5, 0.5],
        [quantile(0.25), quantile(0.9)],
        [sd / 2.0, sd / 2.0],
    );
    sigma = sigma.map(|s| s.max(floor));
    let mut responsibility = vec![0.0; bins.len()];
    for _ in 0..200 {
        for ((x, _), r) in bins.iter().zip(responsibility.iter_mut()) {
            let fast = pi[0] * density(*x, mu[0], sigma[0]);
            let slow = pi[1] * density(*x, mu[1], sigma[1]);
            *r = if fast + slow > 0.0 {
                slow / (fast + slow)
            } else {
                f64::from(u8::from(*x > mean))
            };
        }
        let mut next = (pi, mu, sigma);
        for component in 0..2 {
            let weight = |r: f64| if component == 1 { r } else { 1.0 - r };
            let mass: f64 = bins
                .iter()
                .zip(&responsibility)
                .map(|((_, w), r)| w * weight(*r))
                .sum();
            if mass <= 0.0 {
                return None;
            }
            let m = bins
                .iter()
                .zip(&responsibility)
                .map(|((x, w), r)| w * weight(*r) * x)
                .sum::<f64>()
                / mass;
            let v = bins
                .iter()
                .zip(&responsibility)
                .map(|((x, w), r)| w * weight(*r) * (x - m).powi(2))
                .sum::<f64>()
                / mass;
            next.0[component] = mass / n;
            next.1[component] = m;
            next.2[component] = v.sqrt().max(floor);
        }
        let moved = (next.1[0] - mu[0]).abs() + (next.1[1] - mu[1]).abs();
        (pi, mu, sigma) = next;
        if moved < 1e-6 {
            break;
        }
    }
    let log_likelihood = |mix: &dyn Fn(f64) -> f64| {
        bins.iter()
            .map(|(x, w)| w * (mix(*x) * floor).max(1e-300).ln())
            .sum::<f64>()
    };
    let one = log_likelihood(&|x| density(x, mean, sd));
    let two = log_likelihood(&|x| {
        pi[0] * density(x, mu[0], sigma[0]) + pi[1] * density(x, mu[1], sigma[1])
    });
    let bic_one = 2.0 * n.ln() - 2.0 * one;
    let bic_two = 5.0 * n.ln() - 2.0 * two;
    let apart = mu[1] - mu[0] >= factor.log2().max(2.0 * sigma[0].max(sigma[1]));
    if !(bic_two + 10.0 < bic_one && apart && (0.05..=0.5).contains(&pi[1])) {
        return None;
    }
    // The fast group's median: the mixture's median of the times below the boundary.
    let boundary = bins
        .iter()
        .map(|(x, _)| *x)
        .filter(|x| *x > mu[0])
        .find(|x| pi[1] * density(*x, mu[1], sigma[1]) > pi[0] * density(*x, mu[0], sigma[0]))?;
    let fast: Vec<(f64, f64)> = bins
        .iter()
        .copied()
        .filter(|(x, _)| *x < boundary)
        .collect();
    let fast_total: f64 = fast.iter().map(|(_, w)| w).sum();
    let mut seen = 0.0;
    let typical = fast
        .iter()
        .find(|(_, w)| {
            seen += w;
            seen >= fast_total / 2.0
        })
        .map_or(mu[0], |(x, _)| *x);
    Some((typical, boundary.max(typical + factor.log2()) - 0.5 * floor))
}

/// The median of sorted `(value, count)` pairs holding `total` counts in all.
fn weighted_median(sorted: impl Iterator<Item = (f64, f64)>, total: u64) -> f64 {
    let half = total.div_ceil(2) as f64;
    let mut seen = 0.0;
    let mut last = 0.0;
    for (value, count) in sorted {
        seen += count;
        last = value;
        if seen >= half {
            break;
        }
    }
    last
}

/// The histogram bucket of a time: `BUCKETS_PER_OCTAVE` buckets per doubling.
fn log_bucket(us: i64) -> u16 {
    ((us.max(0) as f64 + 1.0).log2() * BUCKETS_PER_OCTAVE) as u16
}

/// `page:Help` and `screen:Help` are both `Help`.
fn view_name(name: &str) -> &str {
    name.strip_prefix("page:")
        .or_else(|| name.strip_prefix("screen:"))
        .unwrap_or(name)
}

/// A transition's typical time and the time beyond which it is slow.
#[derive(Debug, Clone, Copy)]
struct SlowThreshold {
    median_us: i64,
    threshold_us: i64,
}

/// Friction bound to a journey set.
pub struct PreparedFriction<'f> {
    settings: &'f Friction,
    goals: Vec<Compiled>,
    canonical: Vec<u32>,
    is_error: Vec<bool>,
    is_view: Vec<bool>,
    /// Per step: not a journey step ([`Friction::ignore_steps`]).
    ignored: Vec<bool>,
    standard: Vec<Option<i64>>,
    assisted: Vec<bool>,
    self_service: Vec<bool>,
    /// Per canonical step: the goal rate of customers who reach it — how far along the way to the goal it is.
    progress: Vec<f64>,
    helpful: Option<usize>,
    scores: Vec<usize>,
    /// Column of the rated step, and its values resolved to canonical step codes.
    rated_step: Option<(usize, Vec<Option<u32>>)>,
    standard_property: Option<usize>,
    segments: Vec<SegmentSource>,
    /// (from, to) canonical steps → slow threshold.
    slow: FxHashMap<(u32, u32), SlowThreshold>,
    /// Journeys idle since their last event are measured against this time.
    now: i64,
}

/// The first pass: log-time histograms of every canonical transition (exact integer counts, so any partitioning
/// agrees), the goal rate of every step, and every journey's last event time.
struct TransitionProfile<'a, 'f> {
    friction: &'a PreparedFriction<'f>,
}

#[derive(Debug, Default)]
struct Profile {
    /// (from, to, log-time bucket) → transitions.
    transitions: FxHashMap<(u32, u32, u16), u64>,
    /// Canonical step → (customers, of whom reached the goal).
    steps: FxHashMap<u32, (u64, u64)>,
    last_times: Vec<i64>,
}

impl Analysis for TransitionProfile<'_, '_> {
    type State = Profile;
    type Report = Profile;

    fn new_state(&self, _journeys: &JourneySet) -> Self::State {
        Profile::default()
    }

    fn update(&self, state: &mut Self::State, journey: JourneyRef<'_>) {
        let view = self.friction.view(&journey);
        if view.is_empty() {
            return;
        }
        let goal = view.goal_at.is_some();
        let mut seen: FxHashSet<u32> = FxHashSet::default();
        for p in 0..view.len() {
            let step = view.step(p);
            if seen.insert(step) {
                let entry = state.steps.entry(step).or_default();
                entry.0 += 1;
                entry.1 += u64::from(goal);
            }
            if p > 0 {
                let gap = view.ts(p) - view.ts(p - 1);
                *state
                    .transitions
                    .entry((view.step(p - 1), step, log_bucket(gap)))
                    .or_default() += 1;
            }
        }
        state.last_times.push(view.ts(view.len() - 1));
    }

    fn merge(&self, state: &mut Self::State, other: Self::State) {
        for (step, (exposed, goal)) in other.steps {
            let into = state.steps.entry(step).or_default();
            into.0 += exposed;
            into.1 += goal;
        }
        for (key, count) in other.transitions {
            *state.transitions.entry(key).or_default() += count;
        }
        state.last_times.extend(other.last_times);
    }

    fn finish(
        &self,
        state: Self::State,
        _journeys: &JourneySet,
        _runner: &crate::Runner,
    ) -> Self::Report {
        state
    }
}

/// How customers exposed to something fared: how many, how many reached the goal, and the assisted contacts they
/// started afterwards.
#[derive(Debug, Clone, Copy, Default)]
struct Outcome {
    customers: u64,
    goal: u64,
    contacts: u64,
}

impl Outcome {
    fn add(&mut self, goal: bool, contacts: u32) {
        self.customers += 1;
        self.goal += u64::from(goal);
        self.contacts += u64::from(contacts);
    }

    fn merge(&mut self, other: Outcome) {
        self.customers += other.customers;
        self.goal += other.goal;
        self.contacts += other.contacts;
    }

    /// These outcomes without `part` (a subset of them).
    fn without(self, part: Outcome) -> Outcome {
        Outcome {
            customers: self.customers.saturating_sub(part.customers),
            goal: self.goal.saturating_sub(part.goal),
            contacts: self.contacts.saturating_sub(part.contacts),
        }
    }
}

/// What one candidate finding has gathered.
#[derive(Debug, Clone, Default)]
struct Candidate {
    affected: Outcome,
    /// Own exposure (customers who could have shown the signal), for candidates not keyed by a step alone.
    exposed: Outcome,
    occurrences: u64,
    examples: Vec<u32>,
    /// Segment value codes of the affected customers' triggering events, per segment.
    segments: Vec<FxHashMap<u32, u64>>,
    /// Own exposure's segment values.
    exposed_segments: Vec<FxHashMap<u32, u64>>,
    /// A related step and how often (the step in between for loops, the contact for jumps, the next step for
    /// slow steps, the step before for errors).
    related: FxHashMap<u32, u64>,
    /// Errors: the affected customers by the step before their first error.
    by_predecessor: FxHashMap<u32, Outcome>,
    /// Times involved (µs), for slow steps.
    durations: Vec<i64>,
    /// Slow steps: the time beyond the transition's median, summed (µs).
    delay_us: i128,
}

/// Candidate key: kind, the step / item (canonical code), a second code (the next step, the channel, …), and
/// whether it came after the customer reached the goal.
type Key = (FindingKind, u32, u32, bool);

/// Partial friction results.
#[derive(Debug, Clone, Default)]
pub struct FrictionState {
    customers: u64,
    goal_customers: u64,
    candidates: FxHashMap<Key, Candidate>,
    /// Per canonical step and phase (after the goal or not): the customers who did it, from its first time.
    step_exposed: FxHashMap<(u32, bool), Outcome>,
    /// Per canonical step, phase and segment: value code → customers.
    step_segments: FxHashMap<(u32, bool, usize), FxHashMap<u32, u64>>,
    /// Per segment: value code → events, over all events.
    all_segments: Vec<FxHashMap<u32, u64>>,
    /// Reused per journey: segment codes per position.
    scratch: Vec<Vec<u32>>,
}

/// What one journey showed, before it is folded into the state.
struct Signal {
    key: Key,
    /// The position in the journey's view that shows it.
    at: usize,
    related: Option<u32>,
    duration: Option<i64>,
    /// Time beyond the typical (slow steps) or the standard (breached standards), µs.
    delay: i64,
}

#[cfg(test)]
mod tests;
