//! The reactor's warnings that peers can trigger over and over (a flood of
//! bad or slow connections): each goes through a [`RepeatedWarning`], so a
//! flood costs one line a second plus a count, not one line per peer.

use crate::logging::RepeatedWarning;
use log::warn;
use std::time::Instant;

pub struct Warnings {
    pub accept_failed: RepeatedWarning,
    pub register_failed: RepeatedWarning,
    pub protocol_error: RepeatedWarning,
    pub partial_frame: RepeatedWarning,
    pub slow_peer: RepeatedWarning,
}

impl Warnings {
    pub fn new() -> Self {
        Warnings {
            accept_failed: RepeatedWarning::per_second(),
            register_failed: RepeatedWarning::per_second(),
            protocol_error: RepeatedWarning::per_second(),
            partial_frame: RepeatedWarning::per_second(),
            slow_peer: RepeatedWarning::per_second(),
        }
    }

    fn all(&mut self) -> [(&mut RepeatedWarning, &'static str); 5] {
        [
            (&mut self.accept_failed, "failed accepts"),
            (
                &mut self.register_failed,
                "connections that could not be registered",
            ),
            (
                &mut self.protocol_error,
                "connections closed for a protocol error",
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
        self.all().iter().any(|(w, _)| w.held() > 0)
    }

    /// Report the tail of a flood once its window has passed.
    pub fn flush(&mut self, now: Instant) {
        for (warning, what) in self.all() {
            if let Some(held) = warning.flush(now) {
                warn!("{held} more {what} since the last report");
            }
        }
    }
}
