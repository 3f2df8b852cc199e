//! Warnings a peer can trigger once per frame must not flood the log: a
//! [`RepeatedWarning`] lets the first one through, then at most one line per
//! window that says how many were held back. The caller passes the time (a
//! state machine reads no clock of its own), so a simulated run logs the same
//! lines every time.

use std::time::{Duration, Instant};

/// One kind of repeated warning (a site in the code, or a site per peer).
#[derive(Debug, Clone)]
pub struct RepeatedWarning {
    every: Duration,
    /// When the last line was let through.
    last: Option<Instant>,
    /// Occurrences held back since then.
    held: u64,
}

impl RepeatedWarning {
    /// At most one line per `every`.
    pub const fn new(every: Duration) -> Self {
        RepeatedWarning {
            every,
            last: None,
            held: 0,
        }
    }

    /// One line a second: the default for warnings a peer can trigger.
    pub const fn per_second() -> Self {
        Self::new(Duration::from_secs(1))
    }

    /// Another occurrence at `now`. `Some(held)` means log it now, mentioning
    /// the `held` occurrences not logged since the last line; `None`, hold it.
    pub fn admit(&mut self, now: Instant) -> Option<u64> {
        let due = self
            .last
            .is_none_or(|last| now.saturating_duration_since(last) >= self.every);
        if due {
            self.last = Some(now);
            Some(std::mem::take(&mut self.held))
        } else {
            self.held = self.held.saturating_add(1);
            None
        }
    }

    /// Occurrences held back and not yet reported, if the window has passed:
    /// call it from a periodic timer so the tail of a flood is counted too.
    pub fn flush(&mut self, now: Instant) -> Option<u64> {
        let due = self
            .last
            .is_some_and(|last| now.saturating_duration_since(last) >= self.every);
        if due && self.held > 0 {
            self.last = Some(now);
            Some(std::mem::take(&mut self.held))
        } else {
            None
        }
    }

    /// How many occurrences are held back right now.
    pub fn held(&self) -> u64 {
        self.held
    }
}

/// `warn_repeated!(limiter, now, "format", args…)`: a `log::warn!` through a
/// [`RepeatedWarning`]; lines after the first say how many were held back.
#[macro_export]
macro_rules! warn_repeated {
    ($limiter:expr, $now:expr, $($arg:tt)+) => {
        if let Some(held) = $limiter.admit($now) {
            if held == 0 {
                log::warn!($($arg)+);
            } else {
                log::warn!("{} (and {} more like it since the last report)", format_args!($($arg)+), held);
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_passes_then_one_line_per_window_with_the_count() {
        let t0 = Instant::now();
        let mut w = RepeatedWarning::per_second();
        assert_eq!(w.admit(t0), Some(0));
        for i in 1..=1000 {
            assert_eq!(w.admit(t0 + Duration::from_micros(i)), None);
        }
        assert_eq!(w.held(), 1000);
        assert_eq!(w.admit(t0 + Duration::from_secs(1)), Some(1000));
        assert_eq!(w.held(), 0);
    }

    #[test]
    fn flush_reports_the_tail_of_a_flood_once() {
        let t0 = Instant::now();
        let mut w = RepeatedWarning::per_second();
        w.admit(t0);
        w.admit(t0 + Duration::from_millis(10));
        w.admit(t0 + Duration::from_millis(20));
        assert_eq!(
            w.flush(t0 + Duration::from_millis(500)),
            None,
            "window not over"
        );
        assert_eq!(w.flush(t0 + Duration::from_secs(2)), Some(2));
        assert_eq!(w.flush(t0 + Duration::from_secs(4)), None, "nothing held");
    }
}
