//! The reactor's warnings that peers can trigger over and over (a flood of
//! bad or slow connections): each goes through a [`RepeatedWarning`], so a
//! flood costs one line a second plus a count, not one line per peer.

use crate::logging::RepeatedWarning;
use log::warn;
use std::collections::HashMap;
use std::time::Instant;

/// Protocol errors are limited per reason, so that each kind of bad input
/// is still named in the log while a flood of one kind is summarised; past
/// this many reasons at once, the rest share one limiter.
const MAX_REASONS: usize = 64;

pub struct Warnings {
    pub accept_failed: RepeatedWarning,
    pub register_failed: RepeatedWarning,
    protocol_errors: HashMap<String, RepeatedWarning>,
    other_protocol_errors: RepeatedWarning,
    pub partial_frame: RepeatedWarning,
    pub slow_peer: RepeatedWarning,
}

impl Warnings {
    pub fn new() -> Self {
        Warnings {
            accept_failed: RepeatedWarning::per_second(),
            register_failed: RepeatedWarning::per_second(),
            protocol_errors: HashMap::new(),
            other_protocol_errors: RepeatedWarning::per_second(),
            partial_frame: RepeatedWarning::per_second(),
            slow_peer: RepeatedWarning::per_second(),
        }
    }

    /// The limiter for protocol errors saying `why`.
    pub fn protocol_error(&mut self, why: &str) -> &mut RepeatedWarning {
        if !self.protocol_errors.contains_key(why) {
            if self.protocol_errors.len() >= MAX_REASONS {
                return &mut self.other_protocol_errors;
            }
            self.protocol_errors
                .insert(why.to_string(), RepeatedWarning::per_second());
        }
        self.protocol_errors.get_mut(why).expect("just inserted")
    }

    fn all(&mut self) -> [(&mut RepeatedWarning, &'static str); 5] {
        [
            (&mut self.accept_failed, "failed accepts"),
            (
                &mut self.register_failed,
                "connections that could not be registered",
            ),
            (
                &mut self.other_protocol_errors,
                "connections closed for other protocol errors",
            ),
            (
                &mut self.partial_frame,
                "peers that stopped sending in the middle of a frame",
            ),
            (&mut self.slow_peer, "peers dropped for not reading"),
        ]
    }

    /// Whether some occurrences wait to be counted in a summary line.
    pub fn holding(&mut self) -> bool {
        self.protocol_errors.values().any(|w| w.held() > 0)
            || self.all().iter().any(|(w, _)| w.held() > 0)
    }

    /// Report the tail of a flood once its window has passed.
    pub fn flush(&mut self, now: Instant) {
        for (warning, what) in self.all() {
            if let Some(held) = warning.flush(now) {
                warn!("{held} more {what} since the last report");
            }
        }
        self.protocol_errors.retain(|why, warning| {
            if let Some(held) = warning.flush(now) {
                warn!("{held} more connections closed for a protocol error ({why}) since the last report");
            }
            // A reason with nothing held back is forgotten: the map stays small.
            warning.held() > 0
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn each_protocol_error_reason_is_named_and_a_flood_of_one_is_held_back() {
        let t0 = Instant::now();
        let mut w = Warnings::new();
        assert_eq!(w.protocol_error("bad type 7").admit(t0), Some(0));
        assert_eq!(w.protocol_error("too long").admit(t0), Some(0));
        for _ in 0..1000 {
            assert_eq!(w.protocol_error("bad type 7").admit(t0), None);
        }
        assert!(w.holding());
        w.flush(t0 + Duration::from_secs(2));
        assert!(!w.holding());
        // Reasons without a held count are forgotten; the map stays bounded.
        for i in 0..10 * MAX_REASONS {
            w.protocol_error(&format!("reason {i}")).admit(t0);
        }
        assert!(w.protocol_errors.len() <= MAX_REASONS);
        assert!(w.other_protocol_errors.held() > 0);
    }
}
