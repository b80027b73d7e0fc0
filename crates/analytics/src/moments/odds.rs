//! The statistics of a moment: PostHog's odds ratio (with its prior of one customer in every cell), its Wald
//! confidence interval and p-value on the log scale, and the Benjamini–Hochberg q-values across every candidate.

use statrs::distribution::{ContinuousCDF, Normal};

/// A 2×2 table of customers: `s` of the `S` who reached the goal did the step, `f` of the `F` who did not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Contingency {
    pub s: u64,
    pub f: u64,
    pub reached: u64,
    pub not_reached: u64,
}

/// The odds ratio with its interval and the two-sided p-value of "no association".
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OddsRatio {
    pub odds_ratio: f64,
    pub low: f64,
    pub high: f64,
    pub p_value: f64,
}

/// The prior count PostHog adds to every cell, so that a step no failing customer did has a finite ratio.
const PRIOR: f64 = 1.0;

impl Contingency {
    /// `((s+1)(F−f+1)) / ((S−s+1)(f+1))`, PostHog's definition; the interval is
    /// `exp(ln OR ± z·sqrt(Σ 1/cell))` over the same four cells, and the p-value the normal test of `ln OR = 0`.
    pub fn odds_ratio(&self, confidence: f64) -> OddsRatio {
        let cells = [
            self.s as f64 + PRIOR,
            (self.not_reached - self.f) as f64 + PRIOR,
            (self.reached - self.s) as f64 + PRIOR,
            self.f as f64 + PRIOR,
        ];
        let odds_ratio = (cells[0] * cells[1]) / (cells[2] * cells[3]);
        let se = cells.iter().map(|cell| 1.0 / cell).sum::<f64>().sqrt();
        let normal = Normal::standard();
        let z = normal.inverse_cdf(0.5 + confidence / 2.0);
        let log = odds_ratio.ln();
        OddsRatio {
            odds_ratio,
            low: (log - z * se).exp(),
            high: (log + z * se).exp(),
            p_value: (2.0 * (1.0 - normal.cdf((log / se).abs()))).clamp(0.0, 1.0),
        }
    }

    /// Whether too few customers did the step to say anything, as PostHog decides it: fewer than
    /// `min(min_customers, min_share × everyone)`.
    pub fn too_small(&self, min_customers: u64, min_share: f64) -> bool {
        let threshold =
            (min_customers as f64).min(min_share * (self.reached + self.not_reached) as f64);
        ((self.s + self.f) as f64) < threshold
    }
}

/// Benjamini–Hochberg q-values, in the order of `p_values`: `q_(i) = min over j ≥ i of p_(j)·m/j` (ranks by
/// increasing p), at most 1.
pub fn benjamini_hochberg(p_values: &[f64]) -> Vec<f64> {
    let m = p_values.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|a, b| p_values[*a].total_cmp(&p_values[*b]).then(a.cmp(b)));
    let mut q = vec![1.0; m];
    let mut running = 1.0f64;
    for (rank, index) in order.iter().enumerate().rev() {
        running = running.min(p_values[*index] * m as f64 / (rank + 1) as f64);
        q[*index] = running.min(1.0);
    }
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PostHog's worked case: 7 reached the goal, 11 did not; 5 and 1 of them did the step.
    #[test]
    fn posthog_worked_case() {
        let table = Contingency {
            s: 5,
            f: 1,
            reached: 7,
            not_reached: 11,
        };
        let ratio = table.odds_ratio(0.95);
        assert!((ratio.odds_ratio - 11.0).abs() < 1e-12);
        // ln 11 ± 1.96·sqrt(1/6 + 1/11 + 1/3 + 1/2).
        let se = (1.0f64 / 6.0 + 1.0 / 11.0 + 1.0 / 3.0 + 1.0 / 2.0).sqrt();
        assert!((ratio.low - (11f64.ln() - 1.959_963_984_540_054 * se).exp()).abs() < 1e-9);
        assert!(ratio.low > 1.0 && ratio.high > ratio.low);
        assert!(
            ratio.p_value < 0.05 && ratio.p_value > 0.01,
            "{}",
            ratio.p_value
        );
        assert!(!table.too_small(25, 0.02));
    }

    #[test]
    fn no_association_is_a_ratio_of_one_with_p_one() {
        let ratio = Contingency {
            s: 9,
            f: 9,
            reached: 19,
            not_reached: 19,
        }
        .odds_ratio(0.95);
        assert!((ratio.odds_ratio - 1.0).abs() < 1e-12);
        assert!((ratio.p_value - 1.0).abs() < 1e-12);
    }

    #[test]
    fn q_values_follow_benjamini_hochberg() {
        // m = 4, by rank: p·m/rank = 0.04, 0.06, 0.0533, 0.2 → the running minimum from the top: 0.04, 0.0533, 0.0533, 0.2.
        let q = benjamini_hochberg(&[0.03, 0.01, 0.2, 0.04]);
        let expected = [0.16 / 3.0, 0.04, 0.2, 0.16 / 3.0];
        for (got, want) in q.iter().zip(expected) {
            assert!((got - want).abs() < 1e-12, "{q:?}");
        }
        assert!(benjamini_hochberg(&[]).is_empty());
    }
}
