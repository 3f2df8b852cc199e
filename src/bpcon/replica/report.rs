//! Reporting misbehaviour: what a peer did wrong is logged at once the
//! first time, then at most once a second per peer and kind, in logical
//! time (ticks), so a flood from one peer costs a line a second, not one
//! per message, and simulated runs log the same lines every time.

use super::TICK_MS;
use crate::logging::RepeatedWarning;
use log::warn;
use std::collections::HashMap;
use std::time::{Duration, Instant};

pub(super) struct Reports {
    /// Rate limits for warnings a peer can trigger, per (peer, kind).
    warnings: HashMap<(usize, &'static str), RepeatedWarning>,
    /// The instant of tick 0: warnings are rate-limited in logical time.
    epoch: Instant,
}

impl Reports {
    pub(super) fn new() -> Reports {
        Reports {
            warnings: HashMap::new(),
            epoch: Instant::now(),
        }
    }

    fn now(&self, tick: u64) -> Instant {
        self.epoch + Duration::from_millis(tick.saturating_mul(TICK_MS))
    }

    /// Log what `peer` did wrong at `tick`: the first of each kind at once,
    /// then at most one line a second per peer and kind, with the count
    /// held back.
    pub(super) fn misbehaved(&mut self, tick: u64, peer: usize, kind: &'static str, what: String) {
        let now = self.now(tick);
        let limiter = self
            .warnings
            .entry((peer, kind))
            .or_insert_with(RepeatedWarning::per_second);
        crate::warn_repeated!(limiter, now, "{what}");
    }

    /// Warnings held back by the rate limits right now.
    pub(super) fn held(&self) -> u64 {
        self.warnings.values().map(RepeatedWarning::held).sum()
    }

    /// The tail of a flood: the warnings held back, once their window ends.
    pub(super) fn flush(&mut self, tick: u64, names: &[String]) {
        let now = self.now(tick);
        for ((peer, kind), limiter) in self.warnings.iter_mut() {
            if let Some(held) = limiter.flush(now) {
                warn!(
                    "{} more times since the last report: {kind} from {}",
                    held, names[*peer]
                );
            }
        }
    }
}
