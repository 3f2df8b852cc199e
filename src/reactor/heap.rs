//! Giving freed heap back to the system after a burst.
//!
//! glibc keeps the pages of freed memory for reuse. After a burst — one
//! client registering with a server that has 10,000 others queues
//! 10,000 announcements — the buffers are freed but the process keeps the
//! pages, so an idle server looks several KiB per client bigger than it is.
//! When the loop is about to wait after much traffic, `malloc_trim` hands
//! those pages back. It is rate-limited, so a busy relay pays for one trim
//! a second at most.

use std::time::{Duration, Instant};

/// Bytes queued since the last trim before a trim is worth its cost.
const CHURN: usize = 8 << 20;
/// At most one trim per this long.
const MIN_INTERVAL: Duration = Duration::from_secs(1);

pub struct HeapTrim {
    churn: usize,
    last: Instant,
}

impl HeapTrim {
    pub fn new() -> Self {
        HeapTrim {
            churn: 0,
            last: Instant::now(),
        }
    }

    /// `bytes` were queued for sending.
    pub fn queued(&mut self, bytes: usize) {
        self.churn = self.churn.saturating_add(bytes);
    }

    /// Called before the loop waits: trims if due, and returns how long
    /// the wait may last so that a trim still due is not forgotten.
    pub fn before_wait(&mut self, now: Instant) -> Option<Duration> {
        if self.churn < CHURN {
            return None;
        }
        let due = self.last + MIN_INTERVAL;
        if now < due {
            return Some(due - now);
        }
        trim();
        self.churn = 0;
        self.last = now;
        None
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: malloc_trim only releases free memory; no pointers are involved.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}
