//! Order statistics with numpy's conventions (pm4py computes with numpy): the median of an even count is the mean
//! of the two middle values, percentiles interpolate linearly between closest ranks.

/// The `q`-th quantile (0 ≤ q ≤ 1) of `sorted` values, linear interpolation; `None` when empty.
pub(crate) fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let position = q * (sorted.len() - 1) as f64;
    let lower = position.floor() as usize;
    let upper = position.ceil() as usize;
    let fraction = position - lower as f64;
    Some(sorted[lower] + (sorted[upper] - sorted[lower]) * fraction)
}

#[cfg(test)]
mod tests {
    use super::quantile;

    #[test]
    fn matches_numpy_conventions() {
        assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0], 0.5), Some(2.5));
        assert_eq!(quantile(&[1.0, 2.0, 3.0], 0.5), Some(2.0));
        // numpy.percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 90) == 9.1
        let values: Vec<f64> = (1..=10).map(f64::from).collect();
        assert!((quantile(&values, 0.9).unwrap() - 9.1).abs() < 1e-12);
        assert_eq!(quantile(&[], 0.5), None);
    }
}
