//! Known bugs put back on purpose, to prove that the fuzzer finds them.
//!
//! Honest code marks the spot of a real bug it once had with
//! `if crate::sim::bugs::seeded("crc.forget-keeps-hosts") { … old behaviour … }`.
//! Outside `cargo test` builds [`seeded`] is the constant `false`, so the
//! branch compiles away; in tests, [`with`] turns one bug on for the calls
//! made inside it (the simulator runs in one thread, so a thread-local set
//! is exact and tests running side by side do not see each other's bugs).

#[cfg(test)]
use std::cell::RefCell;
#[cfg(test)]
use std::collections::BTreeSet;

#[cfg(test)]
thread_local! {
    static ON: RefCell<BTreeSet<&'static str>> = const { RefCell::new(BTreeSet::new()) };
}

/// Whether the bug `name` is switched on (never, outside tests).
#[inline(always)]
pub fn seeded(name: &str) -> bool {
    #[cfg(test)]
    {
        ON.with(|on| on.borrow().contains(name))
    }
    #[cfg(not(test))]
    {
        let _ = name;
        false
    }
}

/// Run `f` with the bug `name` switched on.
#[cfg(test)]
pub fn with<R>(name: &'static str, f: impl FnOnce() -> R) -> R {
    struct Off(&'static str);
    impl Drop for Off {
        fn drop(&mut self) {
            ON.with(|on| on.borrow_mut().remove(self.0));
        }
    }
    ON.with(|on| on.borrow_mut().insert(name));
    let _off = Off(name);
    f()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_bug_is_on_only_inside_with() {
        assert!(!super::seeded("x"));
        assert!(super::with("x", || super::seeded("x")));
        assert!(!super::seeded("x"));
        assert!(!super::with("x", || super::seeded("y")));
    }
}
