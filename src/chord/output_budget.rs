//! The node-wide bound on what API clients can make this node hold in
//! answers (issue 8 item 9: 32 clients asking for a 60 KB value each, never
//! reading, took one node to 1.94 GiB).
//!
//! The reactor gives a protocol no word about how much of a connection's
//! output has been written, so the node cannot count queued bytes itself.
//! What it can bound is what it *produces*: every GET started reserves the
//! largest answer there can be, the answer's real size stays charged, and
//! charges are paid off at `limit / PAYOFF` bytes a second. A client that
//! reads nothing makes no write progress and the reactor drops it after its
//! write stall (3 s), so what such clients hold is at most what was produced
//! in the last few seconds: about `limit`. While the budget is spent, no new
//! GET starts: requests wait in their client's backlog (the node stops
//! reading them) and resume as the budget refills.
//!
//! Cleaner, with a reactor hook that reports each connection's queued
//! output (or pauses reading on one connection): charge what is really
//! queued and release it as it is written. See docs/chord.md.

use std::time::{Duration, Instant};

/// The largest answer a GET can produce: one full frame.
pub const MAX_ANSWER: usize = crate::wire::MAX_FRAME;
/// Charges are paid off over this long: longer than the reactor's write
/// stall, after which a client that reads nothing is dropped.
pub const PAYOFF: Duration = Duration::from_secs(4);

#[derive(Debug, Clone)]
pub struct OutputBudget {
    limit: usize,
    charged: usize,
    last: Option<Instant>,
}

impl OutputBudget {
    pub fn new(limit: usize) -> Self {
        OutputBudget {
            limit: limit.max(MAX_ANSWER),
            charged: 0,
            last: None,
        }
    }

    /// Pay off what time allows.
    fn settle(&mut self, now: Instant) {
        if let Some(last) = self.last {
            let elapsed = now.saturating_duration_since(last);
            let paid = (self.limit as u128)
                .saturating_mul(elapsed.as_micros())
                .checked_div(PAYOFF.as_micros())
                .unwrap_or(0);
            self.charged = self
                .charged
                .saturating_sub(usize::try_from(paid).unwrap_or(usize::MAX));
        }
        self.last = Some(now);
    }

    /// Reserve room for one GET answer; false when the budget is spent.
    pub fn reserve(&mut self, now: Instant) -> bool {
        self.settle(now);
        if self.charged.saturating_add(MAX_ANSWER) > self.limit {
            return false;
        }
        self.charged += MAX_ANSWER;
        true
    }

    /// A reserved answer went out with `size` bytes (0: it was dropped).
    pub fn answered(&mut self, now: Instant, size: usize) {
        self.settle(now);
        let refund = MAX_ANSWER.saturating_sub(size);
        self.charged = self.charged.saturating_sub(refund);
    }

    /// How long until one more answer fits.
    pub fn wait(&self) -> Duration {
        let over = self
            .charged
            .saturating_add(MAX_ANSWER)
            .saturating_sub(self.limit);
        let micros = (over as u128)
            .saturating_mul(PAYOFF.as_micros())
            .checked_div(self.limit as u128)
            .unwrap_or(0);
        Duration::from_micros(u64::try_from(micros).unwrap_or(u64::MAX))
            .clamp(Duration::from_millis(1), Duration::from_millis(100))
    }

    /// Bytes charged now (reserved or recently produced).
    pub fn charged(&self) -> usize {
        self.charged
    }

    pub fn limit(&self) -> usize {
        self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_stop_at_the_limit_and_refill_with_time() {
        let t0 = Instant::now();
        let mut b = OutputBudget::new(10 * MAX_ANSWER);
        for _ in 0..10 {
            assert!(b.reserve(t0));
        }
        assert!(!b.reserve(t0), "the eleventh does not fit");
        // Small answers give most of their reservation back at once.
        b.answered(t0, 100);
        b.answered(t0, 100);
        assert!(b.reserve(t0), "two small answers free one slot");
        assert!(!b.reserve(t0));
        assert!(b.wait() >= Duration::from_millis(1));
        assert!(b.reserve(t0 + PAYOFF), "paid off after PAYOFF");
        assert!(b.charged() <= b.limit());
    }
}
