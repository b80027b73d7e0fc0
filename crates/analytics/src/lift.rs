//! Lift against a holdout: did the customers a trigger treated reach the goal more often, or sooner, than the
//! customers its holdout kept untreated? Customers are the unit (the holdout is drawn per customer), each counted
//! from their first exposure: whether they reach a goal step within the window after it, and how long that took.
//!
//! The goal rate difference has a Wald interval and the pooled two-proportion z-test's p-value; the time to goal
//! (among those who reached it) Welch's t interval and p-value. Customers whose window has not closed by the end of
//! the data are in flight and left out of both arms, so a young trigger does not read as a failing one.

use crate::condition::wildcard_match;
use crate::stats::quantile;
use schemars::JsonSchema;
use serde::Serialize;
use statrs::distribution::{ContinuousCDF, Normal, StudentsT};
use waymark_model::JourneySet;

/// A customer's first exposure to a trigger version: treated (its actions were due) or held out.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Exposure {
    /// The customer's journey in the set; `None` when the customer has no journey (their events were deleted).
    pub journey: Option<usize>,
    /// When the trigger decided, µs.
    pub at: i64,
    pub treated: bool,
}

/// One arm's outcome.
#[derive(Debug, Clone, Default, PartialEq, Serialize, JsonSchema)]
pub struct Arm {
    /// Customers whose window has closed.
    pub customers: u64,
    /// Of them, those who reached a goal within the window.
    pub reached: u64,
    pub goal_rate: f64,
    /// Hours from exposure to the first goal, among those who reached it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub median_hours_to_goal: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean_hours_to_goal: Option<f64>,
}

/// A difference (treated minus held out) with its interval and the two-sided p-value of "no difference".
#[derive(Debug, Clone, Copy, PartialEq, Serialize, JsonSchema)]
pub struct Difference {
    pub value: f64,
    pub low: f64,
    pub high: f64,
    pub p_value: f64,
}

/// Treated against held out, for one trigger version.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct LiftStats {
    pub treated: Arm,
    pub held_out: Arm,
    /// Exposed customers whose window is still open at the end of the data (in neither arm).
    pub in_flight: u64,
    /// Goal rate, treated minus held out (0.05: five points more treated customers reach the goal).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub goal_rate_difference: Option<Difference>,
    /// The goal rate difference relative to the held-out rate (0.5: half as many again).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relative_lift: Option<f64>,
    /// Mean hours to goal, treated minus held out (negative: treated customers get there sooner).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hours_to_goal_difference: Option<Difference>,
}

/// The step codes of `journeys` that `goals` (names or `*` patterns) name.
pub fn goal_steps(journeys: &JourneySet, goals: &[String]) -> Vec<bool> {
    journeys
        .step_names
        .iter()
        .map(|name| goals.iter().any(|goal| wildcard_match(goal, name)))
        .collect()
}

/// The time from `at` to the journey's first goal step at or after `at` and within `window` µs, if any.
pub fn time_to_goal(
    journeys: &JourneySet,
    journey: usize,
    is_goal: &[bool],
    at: i64,
    window: i64,
) -> Option<i64> {
    let (start, end) = (journeys.offsets[journey], journeys.offsets[journey + 1]);
    let ts = &journeys.ts[start..end];
    let first = ts.partition_point(|&t| t < at);
    ts[first..]
        .iter()
        .zip(&journeys.step[start + first..end])
        .take_while(|(&t, _)| t - at <= window)
        .find(|(_, &step)| is_goal.get(step as usize).copied().unwrap_or(false))
        .map(|(&t, _)| t - at)
}

/// Compares the arms of `exposures`: goal within `window` µs of exposure, the data ending at `end`.
pub fn lift(
    journeys: &JourneySet,
    is_goal: &[bool],
    exposures: &[Exposure],
    window: i64,
    end: i64,
    confidence: f64,
) -> LiftStats {
    let mut in_flight = 0;
    let mut outcomes: [(u64, Vec<f64>); 2] = [(0, Vec::new()), (0, Vec::new())];
    for exposure in exposures {
        let reached = exposure
            .journey
            .and_then(|journey| time_to_goal(journeys, journey, is_goal, exposure.at, window));
        if reached.is_none() && exposure.at.saturating_add(window) > end {
            in_flight += 1;
            continue;
        }
        let arm = &mut outcomes[usize::from(exposure.treated)];
        arm.0 += 1;
        if let Some(micros) = reached {
            arm.1.push(micros as f64 / 3_600e6);
        }
    }
    let [(held_n, mut held_hours), (treated_n, mut treated_hours)] = outcomes;
    let treated = arm(treated_n, &mut treated_hours);
    let held_out = arm(held_n, &mut held_hours);
    let goal_rate_difference = rate_difference(&treated, &held_out, confidence);
    let relative_lift =
        (held_out.customers > 0 && held_out.goal_rate > 0.0 && treated.customers > 0)
            .then(|| treated.goal_rate / held_out.goal_rate - 1.0);
    LiftStats {
        hours_to_goal_difference: welch(&treated_hours, &held_hours, confidence),
        treated,
        held_out,
        in_flight,
        goal_rate_difference,
        relative_lift,
    }
}

fn arm(customers: u64, hours: &mut [f64]) -> Arm {
    hours.sort_by(f64::total_cmp);
    let reached = hours.len() as u64;
    Arm {
        customers,
        reached,
        goal_rate: if customers == 0 {
            0.0
        } else {
            reached as f64 / customers as f64
        },
        median_hours_to_goal: quantile(hours, 0.5),
        mean_hours_to_goal: (!hours.is_empty())
            .then(|| hours.iter().sum::<f64>() / hours.len() as f64),
    }
}

/// The two-proportion comparison: Wald interval of the difference, pooled z-test p-value. `None` without
/// customers in both arms.
fn rate_difference(treated: &Arm, held_out: &Arm, confidence: f64) -> Option<Difference> {
    if treated.customers == 0 || held_out.customers == 0 {
        return None;
    }
    let (n1, n2) = (treated.customers as f64, held_out.customers as f64);
    let (p1, p2) = (treated.goal_rate, held_out.goal_rate);
    let value = p1 - p2;
    let normal = Normal::standard();
    let z = normal.inverse_cdf(0.5 + confidence / 2.0);
    let se = (p1 * (1.0 - p1) / n1 + p2 * (1.0 - p2) / n2).sqrt();
    let pooled = (treated.reached + held_out.reached) as f64 / (n1 + n2);
    let pooled_se = (pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2)).sqrt();
    let p_value = if pooled_se > 0.0 {
        2.0 * (1.0 - normal.cdf((value / pooled_se).abs()))
    } else {
        1.0
    };
    Some(Difference {
        value,
        low: value - z * se,
        high: value + z * se,
        p_value,
    })
}

/// Welch's t comparison of two means: interval with the Welch–Satterthwaite degrees of freedom, two-sided
/// p-value. `None` unless both samples have two values and some spread.
fn welch(a: &[f64], b: &[f64], confidence: f64) -> Option<Difference> {
    if a.len() < 2 || b.len() < 2 {
        return None;
    }
    let moments = |x: &[f64]| {
        let n = x.len() as f64;
        let mean = x.iter().sum::<f64>() / n;
        let variance = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
        (n, mean, variance / n)
    };
    let (na, ma, va) = moments(a);
    let (nb, mb, vb) = moments(b);
    let se = (va + vb).sqrt();
    if se <= 0.0 {
        return None;
    }
    let df = (va + vb).powi(2) / (va.powi(2) / (na - 1.0) + vb.powi(2) / (nb - 1.0));
    let t = StudentsT::new(0.0, 1.0, df).ok()?;
    let value = ma - mb;
    let quantile = t.inverse_cdf(0.5 + confidence / 2.0);
    Some(Difference {
        value,
        low: value - quantile * se,
        high: value + quantile * se,
        p_value: 2.0 * (1.0 - t.cdf((value / se).abs())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn journeys() -> JourneySet {
        let hour = 3_600_000_000;
        JourneySet::from_journeys([
            (
                "a".to_string(),
                vec![(0, "visit", "web"), (2 * hour, "buy", "web")],
            ),
            (
                "b".to_string(),
                vec![(0, "visit", "web"), (30 * hour, "buy", "web")],
            ),
            ("c".to_string(), vec![(0, "visit", "web")]),
            (
                "d".to_string(),
                vec![(-hour, "buy", "web"), (0, "visit", "web")],
            ),
        ])
    }

    #[test]
    fn the_goal_counts_only_after_exposure_and_within_the_window() {
        let set = journeys();
        let goal = goal_steps(&set, &["buy".to_string()]);
        let day = 24 * 3_600_000_000;
        assert_eq!(
            time_to_goal(&set, 0, &goal, 0, day),
            Some(2 * 3_600_000_000)
        );
        assert_eq!(
            time_to_goal(&set, 1, &goal, 0, day),
            None,
            "30 h is past a day"
        );
        assert_eq!(time_to_goal(&set, 3, &goal, 0, day), None, "bought before");
        assert_eq!(goal_steps(&set, &["b*".to_string()]), goal);
    }

    #[test]
    fn customers_whose_window_is_open_are_in_flight() {
        let set = journeys();
        let goal = goal_steps(&set, &["buy".to_string()]);
        let day = 24 * 3_600_000_000;
        let exposures = [
            Exposure {
                journey: Some(0),
                at: 0,
                treated: true,
            },
            Exposure {
                journey: Some(1),
                at: 0,
                treated: true,
            },
            Exposure {
                journey: Some(2),
                at: 0,
                treated: false,
            },
            Exposure {
                journey: Some(3),
                at: 0,
                treated: false,
            },
        ];
        // The data ends 20 h in: a reached goal counts, an unreached one waits for its window.
        let stats = lift(&set, &goal, &exposures, day, 20 * 3_600_000_000, 0.95);
        assert_eq!(stats.in_flight, 3);
        assert_eq!((stats.treated.customers, stats.treated.reached), (1, 1));
        assert_eq!(stats.held_out.customers, 0);
        assert!(stats.goal_rate_difference.is_none());
        let stats = lift(&set, &goal, &exposures, day, 10 * day, 0.95);
        assert_eq!(stats.in_flight, 0);
        assert_eq!((stats.treated.customers, stats.treated.reached), (2, 1));
        assert_eq!((stats.held_out.customers, stats.held_out.reached), (2, 0));
        assert_eq!(stats.treated.median_hours_to_goal, Some(2.0));
    }

    #[test]
    fn the_rate_difference_matches_the_textbook() {
        // 120/400 against 60/300: difference 0.1; unpooled SE sqrt(.3·.7/400 + .2·.8/300) = 0.032532;
        // pooled p = 180/700, SE sqrt(p(1-p)(1/400 + 1/300)) = 0.03338, z = 2.996, p = 0.00274.
        let treated = Arm {
            customers: 400,
            reached: 120,
            goal_rate: 0.3,
            ..Arm::default()
        };
        let held = Arm {
            customers: 300,
            reached: 60,
            goal_rate: 0.2,
            ..Arm::default()
        };
        let d = rate_difference(&treated, &held, 0.95).unwrap();
        assert!((d.value - 0.1).abs() < 1e-12);
        assert!(
            (d.high - d.value - 1.959964 * 0.032532).abs() < 1e-4,
            "{d:?}"
        );
        assert!((d.p_value - 0.00274).abs() < 1e-4, "{d:?}");
    }

    #[test]
    fn welch_matches_scipy() {
        // scipy.stats.ttest_ind([1, 2, 3, 4], [2, 4, 6, 8, 10], equal_var=False): t = -2.2514, p = 0.069134.
        let d = welch(&[1.0, 2.0, 3.0, 4.0], &[2.0, 4.0, 6.0, 8.0, 10.0], 0.95).unwrap();
        assert!((d.value + 3.5).abs() < 1e-12);
        assert!((d.p_value - 0.069134).abs() < 1e-5, "{d:?}");
        assert!(d.low < -3.5 && d.high > 0.0);
        assert!(welch(&[1.0], &[2.0, 3.0], 0.95).is_none());
    }
}
