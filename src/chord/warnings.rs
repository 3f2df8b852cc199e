//! Every warning a peer or a client can trigger once per frame or request
//! goes through one of these limiters (`warn_repeated!`): the first line
//! passes, then at most one a second with the count held back, and the tick
//! reports the tail of a flood. A flood of bad requests costs a few lines.

use crate::logging::RepeatedWarning;
use log::warn;
use std::time::{Duration, Instant};

/// One limiter per kind of warning; `label` names the kind in tail reports.
#[derive(Debug, Clone)]
pub struct Limited {
    pub limiter: RepeatedWarning,
    label: &'static str,
}

impl Limited {
    fn new(label: &'static str) -> Self {
        Self::every(label, Duration::from_secs(1))
    }

    fn every(label: &'static str, every: Duration) -> Self {
        Limited {
            limiter: RepeatedWarning::new(every),
            label,
        }
    }

    /// `Some(held)` when a line is due now (see [`RepeatedWarning::admit`]).
    pub fn admit(&mut self, now: Instant) -> Option<u64> {
        self.limiter.admit(now)
    }

    fn flush(&mut self, now: Instant) {
        if let Some(held) = self.limiter.flush(now) {
            warn!("{}: {held} more since the last report", self.label);
        }
    }
}

#[derive(Debug, Clone)]
pub struct Warnings {
    pub value_too_large: Limited,
    pub bad_request: Limited,
    pub store_full: Limited,
    pub not_sent: Limited,
    pub link_queue_full: Limited,
    pub wrong_answer: Limited,
    pub too_many_pending: Limited,
    pub refused_connection: Limited,
    pub put_not_placed: Limited,
    pub to_myself: Limited,
    pub id_taken: Limited,
    /// Copies refused for a version stamp too far ahead (or none).
    pub stamp_too_far_ahead: Limited,
    /// A join that keeps failing is said at most every few seconds.
    pub join_failing: Limited,
}

/// How often a failing join is reported.
pub const JOIN_REPORT_EVERY: Duration = Duration::from_secs(5);

impl Default for Warnings {
    fn default() -> Self {
        Warnings {
            value_too_large: Limited::new("PUTs refused for a value over the limit"),
            bad_request: Limited::new("DHT clients closed for a bad request"),
            store_full: Limited::new("pairs refused because the store is full"),
            not_sent: Limited::new("messages too large to send"),
            link_queue_full: Limited::new("messages dropped for a peer still connecting"),
            wrong_answer: Limited::new("peers dropped for answers that fit no request"),
            too_many_pending: Limited::new("requests not sent because too many wait"),
            refused_connection: Limited::new("connections refused over the limit"),
            put_not_placed: Limited::new("PUTs that could not be placed"),
            to_myself: Limited::new("messages not sent to myself"),
            id_taken: Limited::every("joins refused: my ID is taken", JOIN_REPORT_EVERY),
            stamp_too_far_ahead: Limited::new("copies refused for their version stamp"),
            join_failing: Limited::every("failed join attempts", JOIN_REPORT_EVERY),
        }
    }
}

impl Warnings {
    /// Report what each limiter held back, once its window is over.
    pub fn flush(&mut self, now: Instant) {
        for w in [
            &mut self.value_too_large,
            &mut self.bad_request,
            &mut self.store_full,
            &mut self.not_sent,
            &mut self.link_queue_full,
            &mut self.wrong_answer,
            &mut self.too_many_pending,
            &mut self.refused_connection,
            &mut self.put_not_placed,
            &mut self.to_myself,
            &mut self.id_taken,
            &mut self.stamp_too_far_ahead,
            &mut self.join_failing,
        ] {
            w.flush(now);
        }
    }
}
