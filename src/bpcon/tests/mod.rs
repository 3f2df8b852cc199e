//! Whole-protocol tests: replicas (the whole node) in the simulated world,
//! through [`Sim`], a thin layer over [`Net`] with the vocabulary of these
//! tests (submit at a replica, run until, crash, start, cut off, inject a
//! message as if from a peer).

use super::byzantine::Mode;
use super::messages::PeerMsg;
use super::op::{Batch, Op, Request, RequestId};
use super::replica::{Replica, CODE_BEHIND, CODE_COMMITTED, CODE_FAILED};
use super::simnet::Net;
use crate::sim::World;
use std::collections::HashSet;
use std::time::Duration;

mod byzantine;
mod commit;
mod hostile_input;
mod leadership;

/// One step of [`Sim::run_until`]: a replica tick.
const STEP: Duration = Duration::from_millis(10);

struct Sim {
    net: Net,
    /// The client connection to each replica (reopened after a restart).
    clients: Vec<usize>,
    modes: Vec<Option<Mode>>,
    next_seq: u64,
}

impl Sim {
    fn new(n: usize, modes: Vec<Option<Mode>>, seed: u64) -> Sim {
        let mut net = Net::new(World::new(seed), modes.clone());
        let clients = (0..n).map(|i| net.connect_client(i)).collect();
        Sim {
            net,
            clients,
            modes,
            next_seq: 0,
        }
    }

    fn replica(&self, i: usize) -> &Replica {
        self.net.replica_ref(i).expect("replica is up")
    }

    fn is_up(&self, i: usize) -> bool {
        self.net.replica_ref(i).is_some()
    }

    fn crash(&mut self, i: usize) {
        self.net.crash(i);
    }

    /// Start replica `i` again from its storage.
    fn start(&mut self, i: usize) {
        self.net.restart(i);
        self.clients[i] = self.net.connect_client(i);
    }

    /// Cut replica `i` off from the others (both directions).
    fn cut(&mut self, i: usize) {
        let others: Vec<usize> = (0..self.modes.len()).filter(|&p| p != i).collect();
        self.net.world.partition(&[i], &others);
    }

    fn heal(&mut self) {
        self.net.world.heal();
    }

    fn submit(&mut self, i: usize, client: u64, text: &str) -> RequestId {
        self.next_seq += 1;
        let id = RequestId {
            client,
            seq: self.next_seq,
        };
        self.net.submit(self.clients[i], id, text);
        id
    }

    /// Deliver `msg` to `to` now, as if `from` sent it on its link.
    fn deliver(&mut self, from: usize, to: usize, msg: super::messages::PeerMsg) {
        self.net.inject(from, to, msg);
    }

    fn tick(&mut self) {
        self.net.world.run_for(STEP);
        self.net.poll_clients();
    }

    fn answered(&self, id: RequestId) -> Option<u8> {
        self.net.answer(id).map(|a| a.code)
    }

    /// Run until `done` holds; panics after `max_steps` ticks of virtual time.
    fn run_until(&mut self, max_steps: u64, mut done: impl FnMut(&Sim) -> bool) {
        for _ in 0..max_steps {
            self.net.poll_clients();
            if done(self) {
                return;
            }
            self.tick();
        }
        panic!("not done after {max_steps} steps");
    }

    /// Every running correct replica's committed sequence is a prefix of the
    /// longest one's.
    fn assert_agreement(&self) {
        let correct: Vec<&Replica> = (0..self.modes.len())
            .filter(|&i| self.modes[i].is_none())
            .filter_map(|i| self.net.replica_ref(i))
            .collect();
        let longest = correct.iter().max_by_key(|r| r.store().log.len()).unwrap();
        for r in &correct {
            let log = &r.store().log;
            assert_eq!(
                log[..],
                longest.store().log[..log.len()],
                "{} diverged",
                r.name()
            );
        }
    }
}

fn all_answered(sim: &Sim, ids: &[RequestId]) -> bool {
    ids.iter().all(|id| sim.answered(*id).is_some())
}

fn submit_everywhere(sim: &mut Sim, at: &[usize], count: usize, tag: &str) -> Vec<RequestId> {
    let mut ids = Vec::new();
    for k in 0..count {
        ids.push(sim.submit(at[k % at.len()], 7, &format!("P,{tag}{k},{k}")));
        sim.tick();
    }
    ids
}

fn assert_all_committed(sim: &mut Sim, ids: &[RequestId]) {
    sim.run_until(20_000, |s| all_answered(s, ids));
    for id in ids {
        assert_eq!(sim.answered(*id), Some(CODE_COMMITTED), "{id:?}");
    }
    sim.assert_agreement();
}

fn pwned() -> Batch {
    Batch {
        requests: vec![Request {
            id: RequestId { client: 99, seq: 1 },
            op: Op::parse("P,pwned,yes").unwrap(),
        }]
        .into(),
    }
}
