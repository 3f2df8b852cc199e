//! The BPCon fuzzer: n = 3f + 1 replicas, 4 (`peerloop fuzz bpcon`, f = 1)
//! or 7 (`peerloop fuzz bpcon-7`, f = 2) — the whole node: handshake,
//! MACs, catch-up, client API — in the simulated world, at most f of them
//! Byzantine, each in a mode chosen at random (forge, equivocate, lie, ballot
//! exhaustion, catch-up lies, random garbage), random client proposals to
//! the correct ones, and random network faults: partitions and heals,
//! connection resets, slow links, crashes and restarts of correct replicas
//! (their records kept), pauses. Checked as the run goes and at the end:
//!
//! - agreement: no two correct replicas ever commit different batches for
//!   one slot (remembered across crashes: a slot decided once stays decided);
//! - no operation applied twice at a correct replica, and every correct
//!   replica's applied sequence is a prefix of the longest one;
//! - progress: once every fault is healed (all correct replicas up, linked,
//!   unpaused), a new proposal at each correct replica commits at every
//!   correct replica within a bounded virtual time, and so does every
//!   proposal a client was told had committed.

use super::{FaultSet, Outcome, Violation};
use crate::bpcon::byzantine::{Mode, MODES};
use crate::bpcon::op::{Digest, RequestId};
use crate::bpcon::replica::CODE_COMMITTED;
use crate::bpcon::simnet::Net;
use crate::sim::{Latency, World};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// The faults this fuzzer can inject (`--faults`).
pub const FAULTS: &[&str] = &["byzantine", "partition", "reset", "crash", "pause", "delay"];

/// After the last heal, how long every new proposal may take to commit everywhere.
const PROGRESS_WITHIN: Duration = Duration::from_secs(60);

struct Run {
    net: Net,
    /// Replicas in the group.
    n: usize,
    rng: StdRng,
    faults: FaultSet,
    /// slot -> (digest of the batch first seen committed, by which replica).
    decided: BTreeMap<u64, (Digest, usize)>,
    /// Proposals made, with the client they went on.
    proposed: Vec<(RequestId, usize, String)>,
    /// The client of each correct replica (reopened after a crash).
    client_of: BTreeMap<usize, usize>,
    next_seq: u64,
    crashed: BTreeSet<usize>,
    paused: BTreeSet<usize>,
    faults_done: usize,
}

type Broken = (String, String);

impl Run {
    fn has(&self, fault: &str) -> bool {
        self.faults.contains(fault)
    }

    /// Agreement and no double application, on every correct replica up now.
    fn check(&mut self) -> Result<(), Broken> {
        for i in self.net.correct() {
            let Some(r) = self.net.replica(i) else {
                continue;
            };
            let digests: Vec<Digest> = r.committed().iter().map(|b| b.digest()).collect();
            let mut seen = BTreeSet::new();
            for (id, _) in &r.store().log {
                if !seen.insert(*id) {
                    return Err((
                        "an operation is committed twice".into(),
                        format!("r{i} applied request {id:?} twice"),
                    ));
                }
            }
            for (slot, d) in digests.into_iter().enumerate() {
                match self.decided.get(&(slot as u64)) {
                    Some((other, by)) if *other != d => {
                        return Err((
                            "two correct replicas commit different batches for one slot".into(),
                            format!(
                                "slot {slot}: r{by} committed {}, r{i} committed {}",
                                hex(other),
                                hex(&d)
                            ),
                        ));
                    }
                    Some(_) => {}
                    None => {
                        self.decided.insert(slot as u64, (d, i));
                    }
                }
            }
        }
        Ok(())
    }

    fn propose(&mut self, i: usize) {
        let Some(&c) = self.client_of.get(&i) else {
            return;
        };
        self.next_seq += 1;
        let id = RequestId {
            client: 1000 + i as u64,
            seq: self.next_seq,
        };
        let text = format!("P,k{},v{}", self.next_seq % 7, self.next_seq);
        self.net.submit(c, id, &text);
        self.proposed.push((id, c, text));
    }

    fn run_checked(&mut self, d: Duration) -> Result<(), Broken> {
        let end = self.net.world.now() + d;
        while self.net.world.now() < end {
            let step = Duration::from_millis(50).min(end - self.net.world.now());
            self.net.world.run_for(step);
            self.check()?;
        }
        Ok(())
    }

    fn random_fault(&mut self) {
        let correct = self.net.correct();
        let pick = |rng: &mut StdRng, v: &[usize]| v[rng.gen_range(0..v.len())];
        match self.rng.gen_range(0..6) {
            0 if self.has("partition") => {
                let n = self.n;
                let mut side: Vec<usize> = (0..n).filter(|_| self.rng.gen_bool(0.5)).collect();
                if side.is_empty() {
                    side.push(self.rng.gen_range(0..n));
                }
                let other: Vec<usize> = (0..n).filter(|i| !side.contains(i)).collect();
                self.net.world.partition(&side, &other);
            }
            1 if self.has("partition") => self.net.world.heal(),
            2 if self.has("reset") => {
                let a = self.rng.gen_range(0..self.n);
                let b = (a + self.rng.gen_range(1..self.n)) % self.n;
                self.net.world.reset_between(a, b);
            }
            3 if self.has("crash") => {
                let up: Vec<usize> = correct
                    .iter()
                    .copied()
                    .filter(|i| !self.crashed.contains(i))
                    .collect();
                // At most f + 1 correct replicas down at once (2 of 4, 3 of 7).
                if self.crashed.len() <= (self.n - 1) / 3 && !up.is_empty() {
                    let i = pick(&mut self.rng, &up);
                    self.net.crash(i);
                    self.crashed.insert(i);
                    self.client_of.remove(&i);
                } else if let Some(&i) = self.crashed.iter().next() {
                    self.restart(i);
                }
            }
            4 if self.has("pause") => {
                if let Some(&i) = self.paused.iter().next() {
                    self.net.world.resume(i);
                    self.paused.remove(&i);
                } else {
                    let i = self.rng.gen_range(0..self.n);
                    self.net.world.pause(i);
                    self.paused.insert(i);
                }
            }
            5 if self.has("delay") => {
                let a = self.rng.gen_range(0..self.n);
                let b = (a + self.rng.gen_range(1..self.n)) % self.n;
                let mean = Duration::from_millis(self.rng.gen_range(5..200));
                self.net.world.set_link_latency(
                    a,
                    b,
                    Latency::Exponential {
                        min: Duration::from_millis(1),
                        mean,
                    },
                );
            }
            _ => return,
        }
        self.faults_done += 1;
    }

    fn restart(&mut self, i: usize) {
        self.net.restart(i);
        self.crashed.remove(&i);
        let c = self.net.connect_client(i);
        self.client_of.insert(i, c);
    }

    fn go(&mut self) -> Result<(), Broken> {
        for i in self.net.correct() {
            let c = self.net.connect_client(i);
            self.client_of.insert(i, c);
        }
        self.run_checked(Duration::from_millis(200))?;
        let steps = self.rng.gen_range(5..25);
        for _ in 0..steps {
            if self.rng.gen_bool(0.6) {
                let correct = self.net.correct();
                let i = correct[self.rng.gen_range(0..correct.len())];
                self.propose(i);
            } else {
                self.random_fault();
            }
            let d = Duration::from_millis(self.rng.gen_range(10..400));
            self.run_checked(d)?;
        }
        // Heal everything: from here on a quorum of correct replicas is
        // connected, so everything must commit.
        self.net.world.heal();
        for i in std::mem::take(&mut self.paused) {
            self.net.world.resume(i);
        }
        for i in self.crashed.clone() {
            self.restart(i);
        }
        let healed_at = self.net.world.now();
        let mut wanted = Vec::new();
        for i in self.net.correct() {
            self.propose(i);
            wanted.push(self.proposed.last().expect("just proposed").0);
        }
        self.net.poll_clients();
        let told: Vec<RequestId> = self
            .proposed
            .iter()
            .filter(|(id, _, _)| {
                self.net
                    .answer(*id)
                    .is_some_and(|a| a.code == CODE_COMMITTED)
            })
            .map(|(id, _, _)| *id)
            .collect();
        let finals: Vec<(RequestId, usize, String)> =
            self.proposed[self.proposed.len() - wanted.len()..].to_vec();
        wanted.extend(told);
        let correct = self.net.correct();
        let deadline = healed_at + PROGRESS_WITHIN;
        loop {
            let missing: Vec<(usize, RequestId)> = correct
                .iter()
                .flat_map(|&i| {
                    let applied: BTreeSet<RequestId> = self
                        .net
                        .replica(i)
                        .map(|r| r.store().log.iter().map(|(id, _)| *id).collect())
                        .unwrap_or_default();
                    wanted
                        .iter()
                        .filter(move |id| !applied.contains(id))
                        .map(move |id| (i, *id))
                        .collect::<Vec<_>>()
                })
                .collect();
            if missing.is_empty() {
                return Ok(());
            }
            if self.net.world.now() >= deadline {
                let (i, id) = missing[0];
                let slots = self.net.replica(i).map(|r| r.slot()).unwrap_or(0);
                let states: Vec<String> = (0..self.n)
                    .map(|j| match self.net.node(j) {
                        Some(node) => {
                            let r = node.replica();
                            format!(
                                "r{j}: slot {} pending {} max_ballot {:?} links to {:?}",
                                r.slot(),
                                r.pending_len(),
                                r.max_ballot(),
                                node.links_up()
                            )
                        }
                        None => format!("r{j}: down"),
                    })
                    .collect();
                return Err((
                    "progress: after the last heal every proposal commits at every correct replica".into(),
                    format!(
                        "{} s after the heal, {} (request, replica) pairs are not committed, e.g. {id:?} at r{i} (at slot {slots})",
                        PROGRESS_WITHIN.as_secs(),
                        missing.len()
                    ) + &format!("; {}", states.join("; ")),
                ));
            }
            self.run_checked(Duration::from_millis(200))?;
            // A client told "failed" (timed out while its replica had no
            // quorum, say) tries again, as a real one would.
            self.net.poll_clients();
            for (id, c, text) in &finals {
                if self.net.clients[*c].forget_failed(*id) {
                    self.net.submit(*c, *id, text);
                }
            }
        }
    }
}

/// A digest's first 4 bytes, enough to tell two batches apart in a report.
fn hex(d: &Digest) -> String {
    crate::bpcon::op::hex(&d[..4])
}

/// One seed of n = 4 (f = 1): `peerloop fuzz bpcon`.
pub fn run(seed: u64, faults: &FaultSet, trace: bool) -> Result<Outcome, Violation> {
    run_group(4, seed, faults, trace)
}

/// One seed of n = 7 (f = 2): `peerloop fuzz bpcon-7`.
pub fn run_seven(seed: u64, faults: &FaultSet, trace: bool) -> Result<Outcome, Violation> {
    run_group(7, seed, faults, trace)
}

/// One seed with `n` replicas: the Byzantine replicas and their modes, the
/// schedule and the faults all follow from it.
pub fn run_group(
    n: usize,
    seed: u64,
    faults: &FaultSet,
    trace: bool,
) -> Result<Outcome, Violation> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x00b9_c011);
    let mut modes: Vec<Option<Mode>> = vec![None; n];
    let f = (n - 1) / 3;
    if faults.contains("byzantine") && rng.gen_bool(0.85) {
        // 1 to f of them (n = 4 draws exactly what it drew before n = 7
        // existed, so its seeds replay as they did).
        let count = if f > 1 { rng.gen_range(1..=f) } else { 1 };
        for _ in 0..count {
            let honest: Vec<usize> = (0..n).filter(|&i| modes[i].is_none()).collect();
            let b = honest[rng.gen_range(0..honest.len())];
            modes[b] = Some(MODES[rng.gen_range(0..MODES.len())]);
        }
    }
    let mut world = World::new(seed);
    if trace {
        world.enable_trace();
    }
    world.set_latency(Latency::Exponential {
        min: Duration::from_micros(200),
        mean: Duration::from_millis(2),
    });
    let byzantine: Vec<String> = modes
        .iter()
        .enumerate()
        .filter_map(|(i, m)| m.map(|m| format!("r{i} {}", m.name())))
        .collect();
    let byzantine = if byzantine.is_empty() {
        "none".to_string()
    } else {
        byzantine.join(", ")
    };
    let mut run = Run {
        net: Net::new(world, modes),
        n,
        rng,
        faults: faults.clone(),
        decided: BTreeMap::new(),
        proposed: Vec::new(),
        client_of: BTreeMap::new(),
        next_seq: 0,
        crashed: BTreeSet::new(),
        paused: BTreeSet::new(),
        faults_done: 0,
    };
    let result = run.go();
    let trace_lines = run.net.world.trace().to_vec();
    result.map_err(|(invariant, detail)| Violation {
        seed,
        invariant,
        detail: format!("{detail} (Byzantine: {byzantine})"),
        trace: trace_lines,
    })?;
    Ok(Outcome {
        events: run.net.world.stats.events,
        virtual_time: run.net.world.now(),
        summary: format!(
            "{} proposals, {} slots, {} faults, Byzantine: {byzantine}",
            run.proposed.len(),
            run.decided.len(),
            run.faults_done
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzz::all_faults;

    /// About 5 s in the test profile on a loaded 2-core machine.
    const SEEDS_IN_TESTS: u64 = 30;

    #[test]
    fn a_fixed_budget_of_seeds_breaks_no_invariant() {
        crate::fuzz::assert_seeds_hold("bpcon", SEEDS_IN_TESTS);
    }

    /// Seed 237 broke progress: a connection reset while its opener was
    /// still waiting for it to come up reached the opener as the close of
    /// a connection it never had, so it never dialled again (a World bug).
    #[test]
    fn seed_237_a_reset_while_connecting_is_a_failed_connect() {
        if let Err(v) = run(237, &all_faults(FAULTS), false) {
            panic!("{v}");
        }
    }

    /// Seeds 105, 247, 355 and 406 broke progress (honest code, a
    /// catch-up liar): a slot was decided where only one correct replica
    /// and the liar saw the 2b quorum, the other correct replicas never got
    /// f + 1 matching catch-up replies, and the next slot needed one of
    /// them. Fixed by decision certificates (signed 2b votes) in catch-up.
    #[test]
    fn seeds_105_247_355_406_learn_a_slot_decided_by_one_correct_replica_and_a_liar() {
        for seed in [105, 247, 355, 406] {
            if let Err(v) = run(seed, &all_faults(FAULTS), false) {
                panic!("{v}");
            }
        }
    }

    /// n = 7 seeds (f = 2: up to two Byzantine replicas); about 10 s here.
    const SEVEN_SEEDS_IN_TESTS: u64 = 8;

    #[test]
    fn a_fixed_budget_of_seven_replica_seeds_breaks_no_invariant() {
        crate::fuzz::assert_seeds_hold("bpcon-7", SEVEN_SEEDS_IN_TESTS);
    }

    #[test]
    fn a_seed_replays_exactly() {
        let faults = all_faults(FAULTS);
        let a = run(3, &faults, true).map(|o| o.summary);
        let b = run(3, &faults, true).map(|o| o.summary);
        assert_eq!(a.is_ok(), b.is_ok());
        let trace = |seed| {
            let mut world = World::new(seed);
            world.enable_trace();
            let mut net = Net::new(world, vec![None, None, None, Some(Mode::Garbage)]);
            net.world.run_for(Duration::from_secs(2));
            net.world.trace().to_vec()
        };
        assert_eq!(trace(5), trace(5));
        assert_eq!(a.ok(), b.ok());
    }
}
