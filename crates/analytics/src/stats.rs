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

/// The `q`-th quantile of unsorted integer `values` with the same convention as [`quantile`], found by selection
/// in linear time (the values are reordered); `None` when empty.
pub(crate) fn quantile_unsorted(values: &mut [i64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let position = q * (values.len() - 1) as f64;
    let lower = position.floor() as usize;
    let fraction = position - lower as f64;
    let (_, low, above) = values.select_nth_unstable(lower);
    let low = *low as f64;
    if fraction == 0.0 {
        return Some(low);
    }
    let high = *above
        .iter()
        .min()
        .expect("a fractional rank has a value above it") as f64;
    Some(low + (high - low) * fraction)
}

#[cfg(test)]
mod tests {
    use super::{quantile, quantile_unsorted};

    #[test]
    fn selection_equals_sorting() {
        let values: Vec<i64> = (0..1000).map(|i| (i * 7919) % 1009 - 300).collect();
        let mut sorted = values.clone();
        sorted.sort_unstable();
        let sorted: Vec<f64> = sorted.iter().map(|v| *v as f64).collect();
        for q in [0.0, 0.1, 0.5, 0.9, 0.95, 1.0] {
            let mut scratch = values.clone();
            assert_eq!(quantile_unsorted(&mut scratch, q), quantile(&sorted, q));
        }
        assert_eq!(quantile_unsorted(&mut [], 0.5), None);
    }

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
