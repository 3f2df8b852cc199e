//! The Chord fuzzer: a random ring (each node joins through a random
//! member), random DHT clients (a PUT and an immediate close, a PUT and a
//! half-close, pipelined PUTs and GETs on one connection, single GETs) and
//! random faults within Chord's fault model — crashes of up to K − 1 nodes
//! at once (K = copies kept), restarts, connection resets, short partitions
//! that heal, pauses — in the simulated world. Chord's periodic timers keep
//! the world busy forever, so each phase runs for bounded virtual time.
//!
//! Invariants:
//! - after the faults stop and the ring has had time to stabilize, every
//!   live node's successor and predecessor are its neighbours on the true
//!   SHA-1 ring of the live nodes;
//! - a GET never returns a wrong value: only a value PUT for that key, and
//!   never one older than the last PUT that had time to complete before
//!   the GET was sent (not-found is allowed while faults go on);
//! - no key is lost (at the end every key answers its last value) unless,
//!   at some crash, every node holding its last value was among the nodes
//!   crashed (the holders are read from the stores at each crash);
//! - every GET sent to a node that never crashed is answered.
//!
//! The faults are faults.rs, the invariants' checks checks.rs.

mod checks;
mod faults;
#[cfg(test)]
mod tests;

use super::{FaultSet, Outcome, Violation};
use crate::chord::api_wire::{text_key, ApiMsg, Key};
use crate::chord::sim_ring::Ring;
use crate::sim::{ExtId, Latency};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::collections::BTreeSet;
use std::time::Duration;

/// The faults this fuzzer can inject (`--faults`).
pub const FAULTS: &[&str] = &["crash", "restart", "reset", "partition", "pause"];

/// Copies of each key (the K of the fault model) and successor-list length.
const REPLICAS: usize = 3;
const SUCCESSORS: usize = 4;
/// Keys the workload uses: few, so each is PUT again and again and read
/// often (stale copies overwriting newer PUTs show).
const KEYS: usize = 16;
/// A key is PUT again only this long after its last PUT: longer than a
/// PUT may take (the node's op deadline), so "the last PUT" is well defined.
const REPUT_GAP: Duration = Duration::from_secs(8);
/// Crashes are this far apart, time for the ring to copy keys again.
const CRASH_GAP: Duration = Duration::from_secs(5);
/// Longest partition or pause, in ms: shorter than the failure detector
/// (a peer is dead after 1 s without an answer). A longer one can leave a
/// node alone on its own ring, which Chord never merges back (the ring
/// invariant would fail for that reason, not for the values).
const LONGEST_FAULT_MS: u64 = 700;
/// Most virtual time the ring gets to become exact at the end.
const CONVERGE: Duration = Duration::from_secs(60);

struct Put {
    value: Vec<u8>,
    at: Duration,
    /// The node the client sent it to.
    entry: usize,
}

struct Get {
    key: usize,
    at: Duration,
    entry: usize,
}

struct Client {
    ext: ExtId,
    entry: usize,
    /// GETs sent and not answered yet, in order.
    gets: Vec<Get>,
}

#[derive(Default)]
struct Counts {
    puts: usize,
    gets: usize,
    faults: usize,
    lost: usize,
}

struct Run {
    ring: Ring,
    rng: StdRng,
    faults: BTreeSet<String>,
    /// Every PUT of each key, in the order sent.
    puts: Vec<Vec<Put>>,
    /// Keys whose every holder of the last value crashed at once.
    lost: BTreeSet<usize>,
    clients: Vec<Client>,
    /// Nodes that crashed at some time (their clients may go unanswered).
    ever_crashed: BTreeSet<usize>,
    down: BTreeSet<usize>,
    last_crash: Option<Duration>,
    next_value: u64,
    counts: Counts,
    /// The faults injected, with their times (shown with a violation).
    log: Vec<String>,
}

type Check = Result<(), (String, String)>;

fn broken(invariant: &str, detail: String) -> Check {
    Err((invariant.to_string(), detail))
}

fn key_of(k: usize) -> Key {
    text_key(&format!("k{k}"))
}

pub fn run(seed: u64, faults: &FaultSet, trace: bool) -> Result<Outcome, Violation> {
    run_traced(seed, faults, trace).0
}

/// A run and its world's trace (empty unless traced).
fn run_traced(
    seed: u64,
    faults: &FaultSet,
    trace: bool,
) -> (Result<Outcome, Violation>, Vec<String>) {
    let mut ring = Ring::new(seed, SUCCESSORS, REPLICAS);
    if trace {
        ring.world.enable_trace();
    }
    ring.world.set_latency(Latency::Exponential {
        min: Duration::from_micros(20),
        mean: Duration::from_millis(1),
    });
    let mut run = Run {
        ring,
        rng: StdRng::seed_from_u64(seed ^ 0xc40d_5eed),
        faults: faults.clone(),
        puts: (0..KEYS).map(|_| Vec::new()).collect(),
        lost: BTreeSet::new(),
        clients: Vec::new(),
        ever_crashed: BTreeSet::new(),
        down: BTreeSet::new(),
        last_crash: None,
        next_value: 0,
        counts: Counts::default(),
        log: Vec::new(),
    };
    let result = run.go();
    let trace = run.ring.world.trace().to_vec();
    let result = match result {
        Ok(()) => Ok(Outcome {
            events: run.ring.world.stats.events,
            virtual_time: run.ring.world.now(),
            summary: format!(
                "{} nodes, {} PUTs, {} GETs, {} faults, {} keys legitimately lost",
                run.ring.world.node_count(),
                run.counts.puts,
                run.counts.gets,
                run.counts.faults,
                run.counts.lost
            ),
        }),
        Err((invariant, detail)) => Err(Violation {
            seed,
            invariant,
            detail: format!("{detail}\n  faults: {}", run.log.join("; ")),
            trace: trace.clone(),
        }),
    };
    (result, trace)
}

impl Run {
    fn go(&mut self) -> Check {
        let n = self.rng.gen_range(3..=8);
        self.ring.add(None);
        for _ in 1..n {
            let live = self.ring.live();
            let via = *live.choose(&mut self.rng).expect("a member");
            self.ring.add(Some(via));
            let pause = self.rng.gen_range(0..300);
            self.ring.run_for(Duration::from_millis(pause));
        }
        self.converge("the ring of joined nodes is exact")?;
        let rounds = self.rng.gen_range(6..=12);
        for _ in 0..rounds {
            let ops = self.rng.gen_range(1..=4);
            for _ in 0..ops {
                self.client_op();
            }
            let step = self.rng.gen_range(200..1500);
            self.run_for(Duration::from_millis(step))?;
            if self.rng.gen_bool(0.6) {
                self.fault()?;
            }
        }
        // Faults over: everyone back on the network, then quiescence.
        self.ring.world.heal();
        let live = self.ring.live();
        for i in live {
            self.ring.world.resume(i);
        }
        self.run_for(REPUT_GAP)?;
        self.converge("after the faults, the ring equals the true SHA-1 ring of live nodes")?;
        // Copies are made on a slower beat than stabilization.
        self.run_for(Duration::from_secs(3))?;
        self.check_unanswered()?;
        self.check_every_key()
    }

    fn run_for(&mut self, span: Duration) -> Check {
        let end = self.ring.world.now() + span;
        while self.ring.world.now() < end {
            self.ring
                .run_for(Duration::from_millis(100).min(end - self.ring.world.now()));
            self.collect_answers()?;
        }
        Ok(())
    }

    fn converge(&mut self, invariant: &str) -> Check {
        let ring = &mut self.ring;
        let mut exact = ring.ring_exact().is_ok();
        let deadline = ring.world.now() + CONVERGE;
        while !exact && ring.world.now() < deadline {
            ring.run_for(Duration::from_millis(100));
            exact = ring.ring_exact().is_ok();
        }
        self.collect_answers()?;
        match self.ring.ring_exact() {
            Ok(()) => Ok(()),
            Err(e) => broken(invariant, format!("after {CONVERGE:?} more: {e}")),
        }
    }

    fn live_up(&mut self) -> Vec<usize> {
        self.ring.live()
    }

    fn fresh_value(&mut self, k: usize) -> Vec<u8> {
        self.next_value += 1;
        format!("k{k}-v{}", self.next_value).into_bytes()
    }

    /// A key that may be PUT now (its last PUT is REPUT_GAP old).
    fn puttable_key(&mut self) -> Option<usize> {
        let now = self.ring.world.now();
        let free: Vec<usize> = (0..self.puts.len())
            .filter(|k| match self.puts[*k].last() {
                None => true,
                Some(p) => now >= p.at + REPUT_GAP,
            })
            .collect();
        free.choose(&mut self.rng).copied()
    }

    fn put_on(&mut self, ext: ExtId, entry: usize) -> bool {
        let Some(k) = self.puttable_key() else {
            return false;
        };
        let value = self.fresh_value(k);
        self.ring.client_send(
            ext,
            &ApiMsg::Put {
                ttl: 3600,
                replication: REPLICAS as u8,
                key: key_of(k),
                value: value.clone(),
            },
        );
        self.puts[k].push(Put {
            value,
            at: self.ring.world.now(),
            entry,
        });
        self.counts.puts += 1;
        true
    }

    fn get_on(&mut self, c: usize) {
        let k = self.rng.gen_range(0..self.puts.len());
        let ext = self.clients[c].ext;
        self.ring.client_send(ext, &ApiMsg::Get { key: key_of(k) });
        let get = Get {
            key: k,
            at: self.ring.world.now(),
            entry: self.clients[c].entry,
        };
        self.clients[c].gets.push(get);
        self.counts.gets += 1;
    }

    fn client_op(&mut self) {
        let live = self.live_up();
        let Some(&entry) = live.choose(&mut self.rng) else {
            return;
        };
        let ext = self.ring.client(entry);
        self.clients.push(Client {
            ext,
            entry,
            gets: Vec::new(),
        });
        let c = self.clients.len() - 1;
        match self.rng.gen_range(0..4) {
            // PUTs, then close at once (as `peerloop dht put` does), or
            // reset (a client killed right after writing).
            0 => {
                for _ in 0..self.rng.gen_range(1..=3) {
                    self.put_on(ext, entry);
                }
                if self.rng.gen_bool(0.5) {
                    self.ring.client_close(ext);
                } else {
                    self.ring.client_abort(ext);
                }
            }
            // PUTs and GETs, then a half-close: every GET still answered.
            1 => {
                for _ in 0..self.rng.gen_range(1..=4) {
                    if self.rng.gen_bool(0.5) {
                        self.put_on(ext, entry);
                    } else {
                        self.get_on(c);
                    }
                }
                self.ring.client_half_close(ext);
            }
            // A pipeline of many requests on one connection, kept open.
            2 => {
                for _ in 0..self.rng.gen_range(5..=40) {
                    if self.rng.gen_bool(0.3) {
                        self.put_on(ext, entry);
                    } else {
                        self.get_on(c);
                    }
                }
            }
            _ => self.get_on(c),
        }
    }
}
