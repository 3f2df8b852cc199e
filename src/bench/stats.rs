//! Latency percentiles.

use std::fmt;
use std::time::Duration;

/// Nearest-rank percentiles of a set of nanosecond samples.
#[derive(Debug, Clone)]
pub struct Percentiles {
    sorted: Vec<u64>,
}

impl Percentiles {
    pub fn of(mut samples: Vec<u64>) -> Self {
        samples.sort_unstable();
        Percentiles { sorted: samples }
    }

    pub fn count(&self) -> usize {
        self.sorted.len()
    }

    /// The `q`-quantile (0 < q <= 1), or None without samples.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        crate::util::nearest_rank(&self.sorted, q).map(Duration::from_nanos)
    }
}

impl fmt::Display for Percentiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.quantile(0.5), self.quantile(0.99)) {
            (Some(p50), Some(p99)) => write!(
                f,
                "p50 {} / p99 {} ({} samples)",
                human(p50),
                human(p99),
                self.count()
            ),
            _ => write!(f, "no samples"),
        }
    }
}

/// A duration in µs or ms, three significant digits or so.
pub fn human(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 {
        format!("{us:.0} µs")
    } else {
        format!("{:.2} ms", us / 1000.0)
    }
}

/// 1234567 -> "1,234,567".
pub fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let p = Percentiles::of((1..=100).rev().collect());
        assert_eq!(p.quantile(0.5), Some(Duration::from_nanos(50)));
        assert_eq!(p.quantile(0.99), Some(Duration::from_nanos(99)));
        assert_eq!(Percentiles::of(vec![]).quantile(0.5), None);
        assert_eq!(grouped(1234567), "1,234,567");
        assert_eq!(grouped(999), "999");
    }
}
