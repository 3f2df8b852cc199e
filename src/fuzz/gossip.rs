//! The gossip fuzzer: random bootstrap topologies (chains and trees of
//! 2–16 nodes of random degree), random announcements from random modules, random
//! verdicts (valid, invalid, never), random faults, and three invariants:
//!
//! - no module is notified twice of one item (checked on every frame a
//!   node sends, by [`Watched`](crate::gossip::sim_net::Watched));
//! - nothing is forwarded before a valid verdict: a node sends an item to a
//!   peer only once it was announced there or a module subscribed to its
//!   type called it valid (checked on every frame too);
//! - no node dials at network speed (at most 64 connection attempts in
//!   any second, checked on every action);
//! - with TTL 0 every connected subscribed node is reached: after a quiet
//!   period (faults healed, crashed nodes restarted, 8 s of virtual time),
//!   a probe item is announced; every node reachable from the announcer's
//!   node over live gossip links, through nodes whose modules pass it on,
//!   must notify each of its modules exactly once. "Live links" are the
//!   peer links both ends hold as gossip links, both when the probe is
//!   announced and 3 s later (gossip keeps refilling, so the world never goes idle: the
//!   check is made at the end of quiet periods, not at idleness).

use super::{FaultSet, Outcome, Violation};
use crate::gossip::sim_net::{GossipNet, Policy};
use crate::sim::{ExtState, Latency, NodeId, World};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeSet, VecDeque};
use std::time::Duration;

pub const FAULTS: &[&str] = &["crash", "reset", "partition", "pause"];

/// The workload's item types.
const TYPES: [u16; 3] = [1, 2, 3];
/// The probes' type: every module subscribes to it and calls it valid.
const PROBE: u16 = 9;
const QUIET: Duration = Duration::from_secs(8);
const PROBE_TIME: Duration = Duration::from_secs(3);

type Check = Result<(), (String, String)>;

pub fn run(seed: u64, faults: &FaultSet, trace: bool) -> Result<Outcome, Violation> {
    run_traced(seed, faults, trace).0
}

/// A run and its trace (empty unless traced).
pub fn run_traced(
    seed: u64,
    faults: &FaultSet,
    trace: bool,
) -> (Result<Outcome, Violation>, Vec<String>) {
    let mut w = World::new(seed);
    if trace {
        w.enable_trace();
    }
    w.set_latency(Latency::Exponential {
        min: Duration::from_micros(50),
        mean: Duration::from_millis(2),
    });
    let mut run = Run {
        net: GossipNet::new(w),
        rng: StdRng::seed_from_u64(seed ^ 0x6055_1b00),
        faults: faults.clone(),
        crashed: BTreeSet::new(),
        paused: BTreeSet::new(),
        announced: 0,
        fault_count: 0,
        probes: 0,
    };
    let result = run.go();
    let trace = run.net.w.trace().to_vec();
    let result = match result {
        Ok(()) => Ok(Outcome {
            events: run.net.w.stats.events,
            virtual_time: run.net.w.now(),
            summary: format!(
                "{} nodes, {} modules, {} items, {} faults, {} probes",
                run.net.w.node_count(),
                run.net.modules.len(),
                run.announced,
                run.fault_count,
                run.probes
            ),
        }),
        Err((invariant, detail)) => Err(Violation {
            seed,
            invariant,
            detail,
            trace: trace.clone(),
        }),
    };
    (result, trace)
}

struct Run {
    net: GossipNet,
    rng: StdRng,
    faults: FaultSet,
    crashed: BTreeSet<NodeId>,
    paused: BTreeSet<NodeId>,
    announced: u64,
    fault_count: u64,
    probes: u64,
}

impl Run {
    fn go(&mut self) -> Check {
        let n = self.rng.gen_range(2..=16);
        let chain = self.rng.gen_bool(0.3);
        for i in 0..n {
            let boot = match i {
                0 => None,
                _ if chain => Some(i - 1),
                _ => Some(self.rng.gen_range(0..i)),
            };
            let degree = self.rng.gen_range(1..=4);
            let cache = self.rng.gen_range(8..=64);
            self.net.add_node(boot, degree, cache);
            let pause = Duration::from_millis(self.rng.gen_range(1..100));
            self.net.run_for(pause);
        }
        for node in 0..n {
            // Some nodes have no module (they pass nothing on), some two.
            let count = *[0, 1, 1, 1, 1, 2].choose(&mut self.rng).expect("not empty");
            for _ in 0..count {
                let mut types: Vec<u16> = TYPES
                    .iter()
                    .copied()
                    .filter(|_| self.rng.gen_bool(0.6))
                    .collect();
                types.push(PROBE);
                let policy = Policy::Mixed {
                    salt: self.rng.gen(),
                    valid_type: PROBE,
                };
                self.net.add_module(node, &types, policy);
            }
        }
        self.net.run_for(QUIET);
        self.check_continuous()?;
        for round in 0..self.rng.gen_range(2..=4) {
            for k in 0..self.rng.gen_range(3..=12) {
                if self.rng.gen_bool(0.6) || self.faults.is_empty() {
                    self.announce_random(round, k);
                } else {
                    self.fault();
                }
                let gap = Duration::from_millis(self.rng.gen_range(0..400));
                self.net.run_for(gap);
                self.check_continuous()?;
            }
            self.recover();
            self.net.run_for(QUIET);
            self.check_continuous()?;
            self.probe(round)?;
            self.check_continuous()?;
        }
        Ok(())
    }

    fn check_continuous(&mut self) -> Check {
        match self.net.take_violations().into_iter().next() {
            Some(v) => Err(v),
            None => Ok(()),
        }
    }

    fn live_modules(&self) -> Vec<usize> {
        (0..self.net.modules.len())
            .filter(|&m| {
                let module = &self.net.modules[m];
                self.net.w.is_up(module.node)
                    && !self.paused.contains(&module.node)
                    && *self.net.w.ext_state(module.ext) == ExtState::Open
            })
            .collect()
    }

    fn announce_random(&mut self, round: u32, k: u32) {
        let live = self.live_modules();
        let Some(&m) = live.choose(&mut self.rng) else {
            return;
        };
        let data_type = *TYPES.choose(&mut self.rng).expect("not empty");
        let ttl = *[0, 0, 1, 2, 3].choose(&mut self.rng).expect("not empty");
        let data = format!("item {round}.{k} from module {m}");
        self.net.announce(m, ttl, data_type, data.as_bytes());
        self.announced += 1;
    }

    fn fault(&mut self) {
        let n = self.net.w.node_count();
        let kinds: Vec<&String> = self.faults.iter().collect();
        let kind = kinds.choose(&mut self.rng).expect("faults chosen").as_str();
        self.fault_count += 1;
        match kind {
            "crash" => {
                let node = self.rng.gen_range(0..n);
                if self.crashed.contains(&node) {
                    self.net.w.restart(node);
                    self.crashed.remove(&node);
                    self.net.reconnect_modules();
                } else if self.crashed.len() + 1 < n {
                    self.net.w.crash(node);
                    self.crashed.insert(node);
                    self.paused.remove(&node);
                }
            }
            "reset" => {
                let graph = self.net.peer_graph();
                let edges: Vec<(NodeId, NodeId)> = graph
                    .iter()
                    .enumerate()
                    .flat_map(|(i, peers)| peers.iter().map(move |&j| (i, j)))
                    .collect();
                if let Some(&(a, b)) = edges.choose(&mut self.rng) {
                    self.net.w.reset_between(a, b);
                }
            }
            "partition" => {
                let mut nodes: Vec<NodeId> = (0..n).collect();
                nodes.shuffle(&mut self.rng);
                let cut = self.rng.gen_range(1..n.max(2));
                let (a, b) = nodes.split_at(cut.min(n));
                self.net.w.partition(a, b);
            }
            "pause" => {
                let node = self.rng.gen_range(0..n);
                if self.paused.remove(&node) {
                    self.net.w.resume(node);
                } else if !self.crashed.contains(&node) {
                    self.net.w.pause(node);
                    self.paused.insert(node);
                }
            }
            other => unreachable!("unknown fault {other}"),
        }
    }

    /// End every fault: heal, resume, restart; modules connect again.
    fn recover(&mut self) {
        self.net.w.heal();
        for node in std::mem::take(&mut self.paused) {
            self.net.w.resume(node);
        }
        for node in std::mem::take(&mut self.crashed) {
            self.net.w.restart(node);
        }
        self.net.run_for(Duration::from_millis(100));
        self.net.reconnect_modules();
    }

    /// Announce a probe with TTL 0 and check that it reached every
    /// connected subscribed node.
    fn probe(&mut self, round: u32) -> Check {
        let live = self.live_modules();
        let Some(&m) = live.choose(&mut self.rng) else {
            return Ok(());
        };
        self.probes += 1;
        let origin = self.net.modules[m].node;
        let data = format!("probe {round}");
        let before = self.net.peer_graph();
        let sessions: Vec<usize> = live.clone();
        self.net.announce(m, 0, PROBE, data.as_bytes());
        self.net.run_for(PROBE_TIME);
        let after = self.net.peer_graph();
        // Nodes with a live module pass the probe on (every module calls it valid).
        let forwards: BTreeSet<NodeId> =
            sessions.iter().map(|&s| self.net.modules[s].node).collect();
        let mut reached = BTreeSet::from([origin]);
        let mut queue = VecDeque::from([origin]);
        while let Some(i) = queue.pop_front() {
            if i != origin && !forwards.contains(&i) {
                continue;
            }
            // A live link: both ends hold it as a gossip link, at the
            // probe and 3 s later (a full node's answer-and-close
            // connection is held by one end only).
            let live = before[i]
                .intersection(&after[i])
                .filter(|&&j| before[j].contains(&i) && after[j].contains(&i));
            for &j in live {
                if reached.insert(j) {
                    queue.push_back(j);
                }
            }
        }
        for &s in &sessions {
            let node = self.net.modules[s].node;
            if s == m || !reached.contains(&node) {
                continue;
            }
            let got = self.net.notified(s, data.as_bytes());
            if got == 0 {
                return Err((
                    "with TTL 0 every connected subscribed node is reached".into(),
                    format!(
                        "{data:?} announced at node {origin} never reached module {s} of node {node}; \
                         links at the probe {:?}, 3 s later {:?}",
                        before, after
                    ),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzz::all_faults;

    #[test]
    fn a_fixed_budget_of_seeds_breaks_no_invariant() {
        crate::fuzz::assert_seeds_hold("gossip", SEEDS_IN_TESTS);
    }

    /// Seeds `cargo test` runs (about 2 s in the test profile on 2 cores).
    const SEEDS_IN_TESTS: u64 = 2000;

    #[test]
    fn the_same_seed_gives_the_same_trace() {
        let faults = all_faults(FAULTS);
        let (first, trace) = run_traced(7, &faults, true);
        let (second, again) = run_traced(7, &faults, true);
        assert!(first.is_ok() && second.is_ok());
        assert!(trace.len() > 300, "a real run: {} lines", trace.len());
        assert_eq!(trace, again);
        let (_, other) = run_traced(8, &faults, true);
        assert_ne!(trace, other, "another seed makes another run");
    }

    #[test]
    fn without_faults_every_probe_reaches_everyone() {
        let (result, _) = run_traced(3, &FaultSet::new(), false);
        let outcome = result.unwrap_or_else(|v| panic!("{v}"));
        assert!(outcome.summary.contains("probes"), "{}", outcome.summary);
    }
}
