//! Timers: a min-heap of deadlines; the poll timeout is the nearest one.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

#[derive(Default)]
pub struct Timers {
    // (deadline, sequence, token): the sequence keeps equal deadlines in order.
    heap: BinaryHeap<Reverse<(Instant, u64, u64)>>,
    sequence: u64,
}

impl Timers {
    pub fn add(&mut self, now: Instant, after: Duration, token: u64) {
        self.sequence += 1;
        self.heap.push(Reverse((now + after, self.sequence, token)));
    }

    /// How long poll may sleep before the nearest deadline.
    pub fn timeout(&self, now: Instant) -> Option<Duration> {
        self.heap
            .peek()
            .map(|Reverse((at, _, _))| at.saturating_duration_since(now))
    }

    /// Remove and return the token of one timer that is due, if any.
    pub fn pop_due(&mut self, now: Instant) -> Option<u64> {
        match self.heap.peek() {
            Some(Reverse((at, _, _))) if *at <= now => self.heap.pop().map(|Reverse(t)| t.2),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_timers_come_out_in_deadline_order() {
        let now = Instant::now();
        let mut timers = Timers::default();
        timers.add(now, Duration::from_millis(30), 3);
        timers.add(now, Duration::from_millis(10), 1);
        timers.add(now, Duration::from_millis(20), 2);
        assert_eq!(timers.timeout(now), Some(Duration::from_millis(10)));
        assert_eq!(timers.pop_due(now), None);
        let later = now + Duration::from_millis(25);
        assert_eq!(timers.pop_due(later), Some(1));
        assert_eq!(timers.pop_due(later), Some(2));
        assert_eq!(timers.pop_due(later), None);
    }
}
