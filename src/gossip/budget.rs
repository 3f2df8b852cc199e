//! How many duplicate items a peer may send before it is cut off.
//!
//! A duplicate is a SEND CONTENT whose item this node already knows. Honest
//! peers send some: a node of ours sends each item at most once per
//! connection, but two neighbours that got an item at about the same time
//! each send it to the other; the seed's Python peer sends every copy it
//! receives to every connection, the sender included, so it repeats an item
//! once per neighbour that sent it one. Both are bounded by the items that
//! are new in the network: at most a few copies per new item and per peer.
//! What is not bounded is a loop (two linked Python peers bounce an item
//! thousands of times a second) or a peer replaying items on purpose.
//!
//! So duplicates are counted per peer in windows of [`WINDOW`], and a peer
//! may send [`base`] plus [`PER_NEW_ITEM`] for every item this node learnt in
//! this window and the one before; past that it is disconnected. A peer that
//! floods one item gets only the base; heavy honest traffic earns its own
//! allowance. Time is passed in: the budget reads no clock.

use std::time::{Duration, Instant};

/// The window duplicates are counted in.
pub const WINDOW: Duration = Duration::from_secs(10);

/// Duplicates any peer may send in a window, whatever the traffic: enough
/// for late copies (a module that validates a backlog at once makes its
/// node forward the whole backlog, up to its cache, long after we saw it).
pub const BASE: u64 = 1000;

/// Duplicates allowed per item learnt (from anyone) in this window or the
/// last: a Python peer repeats an item once per neighbour that sent it one,
/// and its default degree is 30.
pub const PER_NEW_ITEM: u64 = 32;

/// The base allowance for a node holding `cache_size` items: peers usually
/// share the cache size, and a backlog validated at once is one cache.
pub fn base(cache_size: usize) -> u64 {
    BASE.max((cache_size as u64).saturating_mul(2))
}

/// The node's side: its windows and the new items counted in them.
#[derive(Debug, Clone)]
pub struct DuplicateBudget {
    base: u64,
    /// Start of the current window (set by the first event), and its number.
    start: Option<Instant>,
    window: u64,
    /// Items first seen in the current window and in the one before.
    new_now: u64,
    new_before: u64,
}

/// A peer's side: its duplicates in one window.
#[derive(Debug, Clone, Default)]
pub struct PeerDuplicates {
    window: u64,
    count: u64,
}

/// A peer went over its budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overrun {
    pub count: u64,
    pub allowed: u64,
}

impl DuplicateBudget {
    pub fn new(cache_size: usize) -> Self {
        DuplicateBudget {
            base: base(cache_size),
            start: None,
            window: 0,
            new_now: 0,
            new_before: 0,
        }
    }

    /// Move the windows up to `now` (time never runs backwards here).
    fn roll(&mut self, now: Instant) {
        let start = *self.start.get_or_insert(now);
        let elapsed = now.saturating_duration_since(start);
        let passed = (elapsed.as_nanos() / WINDOW.as_nanos()) as u64;
        if passed == 0 {
            return;
        }
        self.new_before = if passed == 1 { self.new_now } else { 0 };
        self.new_now = 0;
        self.window = self.window.saturating_add(passed);
        // `passed` windows fit in `elapsed`, so this cannot overflow.
        self.start = start.checked_add(WINDOW * u32::try_from(passed).unwrap_or(u32::MAX));
    }

    /// The node learnt an item it had not seen before.
    pub fn new_item(&mut self, now: Instant) {
        self.roll(now);
        self.new_now = self.new_now.saturating_add(1);
    }

    /// What a peer may send in the current window.
    pub fn allowed(&mut self, now: Instant) -> u64 {
        self.roll(now);
        let new = self.new_now.saturating_add(self.new_before);
        self.base.saturating_add(new.saturating_mul(PER_NEW_ITEM))
    }

    /// `peer` sent a duplicate at `now`: fine, or over its budget.
    pub fn charge(&mut self, peer: &mut PeerDuplicates, now: Instant) -> Result<(), Overrun> {
        let allowed = self.allowed(now);
        if peer.window != self.window {
            peer.window = self.window;
            peer.count = 0;
        }
        peer.count = peer.count.saturating_add(1);
        if peer.count > allowed {
            Err(Overrun {
                count: peer.count,
                allowed,
            })
        } else {
            Ok(())
        }
    }
}

impl PeerDuplicates {
    /// Duplicates counted in the peer's current window.
    pub fn count(&self) -> u64 {
        self.count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_item_flooded_is_cut_at_the_base() {
        let t0 = Instant::now();
        let mut budget = DuplicateBudget::new(50);
        let mut peer = PeerDuplicates::default();
        budget.new_item(t0);
        let allowed = BASE + PER_NEW_ITEM;
        // 5,000 copies a second of the one item: over the budget within the window.
        let mut cut = None;
        for i in 0..10_000u64 {
            let at = t0 + Duration::from_micros(200 * i);
            if let Err(over) = budget.charge(&mut peer, at) {
                cut = Some((i, over));
                break;
            }
        }
        let (i, over) = cut.expect("the flood was never cut");
        assert_eq!(i, allowed, "cut at the first duplicate past the budget");
        assert_eq!(
            over,
            Overrun {
                count: allowed + 1,
                allowed
            }
        );
    }

    #[test]
    fn the_count_starts_again_each_window() {
        let t0 = Instant::now();
        let mut budget = DuplicateBudget::new(50);
        let mut peer = PeerDuplicates::default();
        // A steady trickle just under the base in every window, for a minute.
        for w in 0..6u32 {
            for i in 0..BASE {
                let at = t0 + WINDOW * w + Duration::from_millis(i * 9);
                assert_eq!(budget.charge(&mut peer, at), Ok(()), "window {w}, copy {i}");
            }
        }
        assert_eq!(peer.count(), BASE);
    }

    #[test]
    fn new_items_earn_allowance_for_two_windows_then_it_lapses() {
        let t0 = Instant::now();
        let mut budget = DuplicateBudget::new(50);
        for _ in 0..100 {
            budget.new_item(t0);
        }
        assert_eq!(budget.allowed(t0), BASE + 100 * PER_NEW_ITEM);
        // Copies of those items that arrive just after the window turns still count as earned.
        assert_eq!(budget.allowed(t0 + WINDOW), BASE + 100 * PER_NEW_ITEM);
        assert_eq!(budget.allowed(t0 + WINDOW * 2), BASE);
        // A long silence forgets everything at once.
        budget.new_item(t0 + WINDOW * 2);
        assert_eq!(budget.allowed(t0 + WINDOW * 9), BASE);
    }

    #[test]
    fn a_large_cache_raises_the_base() {
        assert_eq!(base(50), BASE);
        assert_eq!(base(65_535), 131_070);
    }
}
