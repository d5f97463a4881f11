//! Percentiles and the median of per-round figures.

use std::time::Duration;

/// Nearest-rank percentile (`q` in 0..=1) of unsorted samples; `None` when empty.
pub fn percentile(samples: &[Duration], q: f64) -> Option<Duration> {
    if samples.is_empty() {
        return None;
    }
    let mut v = samples.to_vec();
    v.sort_unstable();
    Some(sorted_percentile(&v, q))
}

pub fn sorted_percentile(sorted: &[Duration], q: f64) -> Duration {
    let n = sorted.len();
    let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
    sorted[rank - 1]
}

/// The median of per-round figures (the upper one of the two middle ones for an even count
/// would bias up; the mean of the two middle ones is used instead).
pub fn median_f64(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

pub fn max_f64(values: &[f64]) -> Option<f64> {
    values.iter().copied().reduce(f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_micros).collect();
        assert_eq!(percentile(&v, 0.5), Some(Duration::from_micros(50)));
        assert_eq!(percentile(&v, 0.99), Some(Duration::from_micros(99)));
        assert_eq!(percentile(&v, 1.0), Some(Duration::from_micros(100)));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn median_of_rounds() {
        assert_eq!(median_f64(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median_f64(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
    }
}
