//! An in-memory network of replicas for deterministic tests: messages are
//! delivered in a seeded random order, replicas can be cut off, crashed
//! and restarted from their durable records, or made Byzantine.

use super::byzantine::{Adversary, Mode};
use super::crypto::tests::test_keys;
use super::group::Group;
use super::messages::PeerMsg;
use super::node::OutputFilter;
use super::op::RequestId;
use super::replica::{Config, Dest, Replica, Reply};
use super::wal::Record;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub struct Sim {
    pub replicas: Vec<Option<Replica>>,
    pub disk: Vec<Vec<Record>>,
    pub modes: Vec<Option<Mode>>,
    advs: Vec<Option<Adversary>>,
    /// (from, to, message) in flight.
    pub wire: Vec<(usize, usize, PeerMsg)>,
    pub replies: Vec<(usize, Reply)>,
    /// Links that drop everything (both directions) for a replica.
    pub cut: Vec<bool>,
    rng: StdRng,
    group: Group,
    next_seq: u64,
}

impl Sim {
    pub fn new(n: usize, modes: Vec<Option<Mode>>, seed: u64) -> Sim {
        let group = Group::new((0..n).map(|i| format!("r{i}")).collect()).unwrap();
        let mut sim = Sim {
            replicas: (0..n).map(|_| None).collect(),
            disk: vec![Vec::new(); n],
            advs: Vec::new(),
            modes,
            wire: Vec::new(),
            replies: Vec::new(),
            cut: vec![false; n],
            rng: StdRng::seed_from_u64(seed),
            group,
            next_seq: 0,
        };
        for i in 0..n {
            sim.start(i);
        }
        sim
    }

    /// Start (or restart) replica `i` from what it wrote to disk.
    pub fn start(&mut self, i: usize) {
        let keys = test_keys(self.group.n());
        let replica = Replica::new(
            Config {
                group: self.group.clone(),
                me: i,
                key: keys[i].clone(),
                keys: keys.iter().map(|k| k.public()).collect(),
                seed: self.rng.gen(),
            },
            self.disk[i].clone(),
        );
        self.replicas[i] = Some(replica);
        while self.advs.len() <= i {
            self.advs.push(None);
        }
        let seed = self.rng.gen();
        self.advs[i] =
            self.modes[i].map(|m| Adversary::new(m, self.group.clone(), i, keys[i].clone(), seed));
        self.cut[i] = false;
        for peer in 0..self.group.n() {
            if peer != i {
                self.with(i, |r| r.on_peer_up(peer));
            }
        }
    }

    pub fn crash(&mut self, i: usize) {
        self.replicas[i] = None;
        self.wire.retain(|(from, to, _)| *from != i && *to != i);
    }

    pub fn replica(&self, i: usize) -> &Replica {
        self.replicas[i].as_ref().unwrap()
    }

    fn with(&mut self, i: usize, f: impl FnOnce(&mut Replica)) {
        self.with_ticking(i, false, f)
    }

    /// Run `f` on replica `i` and collect its output (passed through its
    /// test adversary, if it has one, as the node layer does).
    fn with_ticking(&mut self, i: usize, ticking: bool, f: impl FnOnce(&mut Replica)) {
        let Some(r) = self.replicas[i].as_mut() else {
            return;
        };
        f(r);
        let mut out = r.take_output();
        if let Some(adv) = self.advs[i].as_mut() {
            adv.filter(r.slot(), &mut out.sends, ticking);
        }
        self.disk[i].extend(out.persist);
        for (dest, msg) in out.sends {
            let targets: Vec<usize> = match dest {
                Dest::Peer(p) => vec![p],
                Dest::All => (0..self.group.n()).filter(|&p| p != i).collect(),
            };
            for to in targets {
                if !self.cut[i] && !self.cut[to] {
                    self.wire.push((i, to, msg.clone()));
                }
            }
        }
        self.replies.extend(out.replies.into_iter().map(|r| (i, r)));
    }

    /// A client request to replica `i`; returns its id.
    pub fn submit(&mut self, i: usize, client: u64, text: &str) -> RequestId {
        self.next_seq += 1;
        let id = RequestId {
            client,
            seq: self.next_seq,
        };
        let text = text.to_string();
        self.with(i, |r| r.submit(client, id, &text));
        id
    }

    /// Deliver one message chosen at random; false if none are in flight.
    pub fn step(&mut self) -> bool {
        if self.wire.is_empty() {
            return false;
        }
        // Mostly in order, sometimes out of order.
        let at = if self.rng.gen_bool(0.8) {
            0
        } else {
            self.rng.gen_range(0..self.wire.len())
        };
        let (from, to, msg) = self.wire.remove(at);
        self.with(to, |r| r.on_peer(from, msg));
        true
    }

    pub fn tick(&mut self) {
        for i in 0..self.group.n() {
            self.with_ticking(i, true, |r| r.on_tick());
        }
    }

    /// Run until `done` holds, ticking when the network is quiet or every
    /// `per_tick` deliveries. Panics after `max_ticks`.
    pub fn run_until(&mut self, max_ticks: u64, mut done: impl FnMut(&Sim) -> bool) {
        let mut ticks = 0;
        loop {
            if done(self) {
                return;
            }
            for _ in 0..200 {
                if !self.step() {
                    break;
                }
            }
            self.tick();
            ticks += 1;
            assert!(ticks < max_ticks, "not done after {max_ticks} ticks");
        }
    }

    /// Deliver a message to `to` at once, as if from `from`.
    pub fn deliver(&mut self, from: usize, to: usize, msg: PeerMsg) {
        self.with(to, |r| r.on_peer(from, msg));
    }

    pub fn answered(&self, id: RequestId) -> Option<u8> {
        self.replies
            .iter()
            .find(|(_, r)| r.id == id)
            .map(|(_, r)| r.code)
    }

    /// Every running correct replica's committed sequence is a prefix of the
    /// longest one's, and equal-length ones have equal stores.
    pub fn assert_agreement(&self) {
        let correct: Vec<&Replica> = (0..self.group.n())
            .filter(|&i| self.modes[i].is_none())
            .filter_map(|i| self.replicas[i].as_ref())
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
