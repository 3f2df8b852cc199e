//! Versions of stored values, so that a stale copy never overwrites a newer
//! PUT. Every value carries a *stamp*: a hybrid logical clock reading in
//! milliseconds (Kulkarni et al., "Logical Physical Clocks", 2014), taken by
//! the node that accepts the PUT as the key's owner. A stamp is at least the
//! owner's wall-clock milliseconds, greater than every stamp the node has
//! issued or accepted, and greater than the stamp of the copy it replaces, so
//! a PUT made after another one completed always wins on every holder.
//! Copies (replication, hand-over, repair, a leaver's keys) keep their stamp;
//! a holder keeps the newest: the higher stamp, and on equal stamps (two
//! owners in the same millisecond) the larger value bytes, so every holder
//! picks the same one.
//!
//! Stamps from peers are peer input. A stamp more than [`MAX_AHEAD`] past
//! our own wall clock is refused (the copy is dropped, and logged), so a
//! peer can never pin a key to its value for longer than that, nor push our
//! clock further ahead than that; nothing here overflows.
//!
//! Protocol logic reads no clock: the wall clock is `now` (the instant every
//! event comes with) placed on the Unix time line by a [`WallClock`] the
//! caller sets once (the CLI from the system clock; the simulator from its
//! virtual clock, the same for every node).

use std::cmp::Ordering;
use std::time::{Duration, Instant};

/// How far past our wall clock a peer's stamp may be. Bounds clock skew
/// between honest machines and what a lying peer can do.
pub const MAX_AHEAD: Duration = Duration::from_secs(60);

/// An instant and the Unix time in ms it corresponds to.
#[derive(Debug, Clone, Copy)]
pub struct WallClock {
    pub at: Instant,
    pub unix_ms: u64,
}

impl WallClock {
    /// Milliseconds since the Unix epoch at `now` (never before `at`).
    pub fn ms(&self, now: Instant) -> u64 {
        let since = now.saturating_duration_since(self.at).as_millis();
        self.unix_ms
            .saturating_add(u64::try_from(since).unwrap_or(u64::MAX))
    }
}

/// The node's hybrid logical clock.
#[derive(Debug, Clone)]
pub struct Clock {
    wall: WallClock,
    /// The highest stamp issued or accepted.
    last: u64,
}

/// A peer's stamp too far ahead of our clock.
#[derive(Debug, PartialEq, Eq)]
pub struct TooFarAhead {
    pub stamp: u64,
    pub ours: u64,
}

impl Clock {
    pub fn new(wall: WallClock) -> Clock {
        Clock { wall, last: 0 }
    }

    /// A fresh stamp for a PUT replacing a value stamped `replaces` (if any):
    /// above the wall clock, above everything seen, above `replaces`.
    pub fn stamp(&mut self, now: Instant, replaces: Option<u64>) -> u64 {
        let floor = self.last.max(replaces.unwrap_or(0));
        let next = self.wall.ms(now).max(floor.saturating_add(1));
        self.last = next;
        next
    }

    /// A stamp from a peer: accepted (and our clock moves up to it) unless
    /// it is more than MAX_AHEAD past our wall clock.
    pub fn observe(&mut self, now: Instant, stamp: u64) -> Result<(), TooFarAhead> {
        let ours = self.wall.ms(now);
        let ahead = MAX_AHEAD.as_millis() as u64;
        if stamp > ours.saturating_add(ahead) {
            return Err(TooFarAhead { stamp, ours });
        }
        self.last = self.last.max(stamp);
        Ok(())
    }

    pub fn last(&self) -> u64 {
        self.last
    }
}

/// The order of two versions of a key's value: by stamp, then by bytes.
pub fn compare(a_stamp: u64, a_value: &[u8], b_stamp: u64, b_value: &[u8]) -> Ordering {
    a_stamp.cmp(&b_stamp).then_with(|| a_value.cmp(b_value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock() -> (Clock, Instant) {
        let at = Instant::now();
        let wall = WallClock {
            at,
            unix_ms: 1_000_000,
        };
        (Clock::new(wall), at)
    }

    #[test]
    fn stamps_follow_the_wall_clock_and_never_repeat() {
        let (mut c, t0) = clock();
        assert_eq!(c.stamp(t0, None), 1_000_000);
        // Same millisecond: still strictly increasing.
        assert_eq!(c.stamp(t0, None), 1_000_001);
        assert_eq!(c.stamp(t0 + Duration::from_secs(1), None), 1_001_000);
    }

    #[test]
    fn a_stamp_is_above_the_value_it_replaces_whatever_the_wall_clock_says() {
        let (mut c, t0) = clock();
        // A copy stamped later than our clock (a peer's clock runs ahead).
        assert_eq!(c.stamp(t0, Some(1_030_000)), 1_030_001);
    }

    #[test]
    fn stamps_seen_from_peers_move_the_clock_up_to_a_bound() {
        let (mut c, t0) = clock();
        assert!(c.observe(t0, 1_020_000).is_ok());
        assert_eq!(c.stamp(t0, None), 1_020_001);
        let too_far = 1_000_000 + MAX_AHEAD.as_millis() as u64 + 1;
        assert_eq!(
            c.observe(t0, too_far),
            Err(TooFarAhead {
                stamp: too_far,
                ours: 1_000_000
            })
        );
        assert_eq!(
            c.last(),
            1_020_001,
            "a refused stamp does not move the clock"
        );
        assert!(c.observe(t0, u64::MAX).is_err(), "no overflow, refused");
    }

    #[test]
    fn the_newest_wins_by_stamp_then_by_bytes() {
        assert_eq!(compare(2, b"a", 1, b"z"), Ordering::Greater);
        assert_eq!(compare(1, b"z", 2, b"a"), Ordering::Less);
        assert_eq!(compare(5, b"b", 5, b"a"), Ordering::Greater);
        assert_eq!(compare(5, b"a", 5, b"a"), Ordering::Equal);
    }
}
