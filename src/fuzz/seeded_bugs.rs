//! The fuzzer is worth something only if it finds real bugs by itself:
//! each row puts back one bug a protocol really had (see `sim::bugs`) and
//! runs that protocol's fuzzer until an invariant breaks. The figures it
//! prints (seeds, seconds) are the table in docs/sim.md.

use super::{all_faults, hunt, FUZZERS};
use crate::sim::bugs;

/// (bug, fuzzer, most seeds allowed).
const SEEDED: &[(&str, &str, u64)] = &[
    // A server that loses a client's link forgets it but never tells the
    // other servers: their hosts_db keeps a client that is gone.
    ("crc.lost-client-not-announced", "crc", 500),
    // A DHT client that closes right after its PUTs (as `peerloop dht put`
    // does): the node dropped the PUTs still in flight or backlogged.
    ("chord.put-lost-on-close", "chord", 200),
];

#[test]
fn the_fuzzer_finds_every_seeded_bug() {
    let mut report = Vec::new();
    for &(bug, name, budget) in SEEDED {
        let fuzzer = FUZZERS
            .iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("no fuzzer {name}"));
        let faults = all_faults(fuzzer.faults);
        // Honest code passes the same seeds: the bug, not the fuzzer, breaks them.
        let clean = hunt(fuzzer, &faults, 0, budget.min(50));
        assert!(
            clean.violation.is_none(),
            "{bug}: the honest code fails: {:?}",
            clean.violation
        );
        let found = bugs::with(bug, || hunt(fuzzer, &faults, 0, budget));
        let Some(violation) = found.violation else {
            panic!("{bug}: {name} fuzzer ran {budget} seeds and found nothing");
        };
        report.push(format!(
            "{bug:<36} {name:<7} seed {:<5} after {:>4} seeds, {:>7.3} s: {}",
            violation.seed,
            found.seeds,
            found.elapsed.as_secs_f64(),
            violation.invariant
        ));
    }
    eprintln!(
        "seeded bugs found by the fuzzer:\n  {}",
        report.join("\n  ")
    );
}
