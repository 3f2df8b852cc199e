//! The Chord fuzzer's own tests: a fixed budget of seeds and the seeds
//! that found bugs.

use super::*;

fn all() -> FaultSet {
    crate::fuzz::all_faults(FAULTS)
}

/// The fixed budget `cargo test` runs (`peerloop fuzz chord` runs more).
#[test]
fn five_hundred_seeds_with_every_fault_hold_every_invariant() {
    crate::fuzz::assert_seeds_hold("chord", 500);
}

/// Found by this fuzzer: a reset made both nodes of a 2-node ring find
/// each other dead; the one probe each made 3 s later fell in a
/// partition, and neither asked again: two rings for good. A failed
/// probe is now repeated after another spell in `dead`.
#[test]
fn seed_4901_a_rejoin_probe_lost_in_a_partition_is_tried_again() {
    if let Err(v) = run(4901, &all(), false) {
        panic!("{}: {}", v.invariant, v.detail);
    }
}

/// Same seed, same run, event for event: nothing in Chord's output
/// depends on hash order or the real clock.
#[test]
fn a_traced_seed_gives_an_identical_trace_twice() {
    let (a, trace_a) = run_traced(7, &all(), true);
    let (b, trace_b) = run_traced(7, &all(), true);
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(trace_a.len() > 1000, "a real run: {} lines", trace_a.len());
    assert_eq!(a.events, b.events);
    assert_eq!(a.summary, b.summary);
    if let Some(i) = (0..trace_a.len().min(trace_b.len())).find(|i| trace_a[*i] != trace_b[*i]) {
        panic!("traces differ at line {i}:\n{}\n{}", trace_a[i], trace_b[i]);
    }
    assert_eq!(trace_a.len(), trace_b.len());
    assert!(a.summary.contains("PUTs") && !a.summary.contains(" 0 PUTs"));
}
