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
    // A node that passes an item on as it arrives, before its modules
    // judged it: invalid items spread.
    ("gossip.forward-before-verdict", "gossip", 50),
    // TTL 0 read as "one hop left" instead of "unlimited": items stop
    // after the first node that judges them.
    ("gossip.ttl-zero-spent", "gossip", 50),
    // A node avoiding only the last peer that closed on it: between two
    // full peers that answer and close, it redials at network speed
    // (found by the gossip fuzzer itself before the fix).
    ("gossip.redial-alternating-full-peers", "gossip", 3000),
    // A second copy arriving while the first awaits its verdict is taken
    // for a new item (recognising items by content only once judged).
    ("gossip.no-dedup-while-awaiting", "gossip", 500),
    // BPCon, the hardening issue's (a): next_ballot = candidate + n
    // unchecked, and no bound on the rounds an acceptor takes part in: a
    // ballot exhauster halts the group.
    ("bpcon.ballot-overflow", "bpcon", 40),
    // (c): a catch-up reply adopted unasked, from one replica.
    ("bpcon.unsolicited-catchup", "bpcon", 40),
    // (b): a HELLO signed over the names alone is taken, so a recorded one
    // lets a replay attacker pose as a correct replica. (Its two matching
    // catch-up lies must now arrive before an honest reply with a decision
    // certificate, which is adopted at once: found at seed 50, not 28.)
    ("bpcon.replayable-hello", "bpcon", 100),
    // A DHT client that closes right after its PUTs (as `peerloop dht put`
    // does): the node dropped the PUTs still in flight or backlogged.
    ("chord.put-lost-on-close", "chord", 200),
    // Values without versions: whichever copy arrives last is kept, so a
    // stale copy (re-replication, hand-over) overwrites a newer PUT.
    ("chord.unversioned-overwrite", "chord", 300),
    // In a ring smaller than the successor list, a GET asked only the
    // owner and the asker's successors after it: a stale owner's value
    // hid the newer copies on the others.
    ("chord.small-ring-holders-cut", "chord", 300),
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
