//! Iterative lookups: the node asking drives every step. It asks the
//! closest preceding node it knows; that node either names the owner (the
//! key falls before one of its successors) or a closer node to ask next.
//! Each question is one hop, so path lengths are counted where they start.
//! A node that does not answer is excluded (and named in later questions,
//! so others route around it too) and the lookup resumes from local tables.

use super::id::Id;
use super::node::NodeOut;
use super::node::{Node, Waiting, MAX_HOPS};
use super::peer_wire::{NodeRef, PeerMsg};
use crate::warn_repeated;
use log::debug;
use std::net::SocketAddr;
use std::time::Instant;

/// How many dead ends one lookup survives before it gives up.
const MAX_ATTEMPTS: u32 = 6;
/// Most excluded nodes one question carries.
const MAX_EXCLUDE: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Serving the DHT API request with this op number.
    Api(u64),
    /// Our own successor, through the bootstrap node.
    Join,
    /// Finger `bit` (fix fingers).
    Finger(usize),
    /// Our own successor, asked of a node we once found dead (see
    /// `Node::probe_lost_peers`): how a ring split by a partition heals.
    /// `tries`: probes of that node that failed before this one.
    Rejoin { id: Id, addr: SocketAddr, tries: u8 },
}

#[derive(Debug, Clone)]
pub struct Lookup {
    pub target: Id,
    pub purpose: Purpose,
    pub exclude: Vec<Id>,
    pub hops: u32,
    pub attempts: u32,
}

impl Node {
    /// Start looking up successor(`target`), routing around `exclude`d
    /// nodes; may finish before returning.
    pub(super) fn start_lookup(
        &mut self,
        now: Instant,
        target: Id,
        purpose: Purpose,
        exclude: Vec<Id>,
        out: &mut NodeOut,
    ) -> u64 {
        self.next_lookup += 1;
        let id = self.next_lookup;
        self.lookups.insert(
            id,
            Lookup {
                target,
                purpose,
                exclude,
                hops: 0,
                attempts: 0,
            },
        );
        if let Purpose::Rejoin { addr, .. } = purpose {
            self.ask(now, id, addr, None, out);
        } else if purpose == Purpose::Join {
            match self.bootstrap() {
                Some(addr) => self.ask(now, id, addr, None, out),
                None => self.lookup_failed(now, id, out),
            }
        } else {
            self.lookup_step(now, id, out);
        }
        id
    }

    /// Decide from our own tables: done, or whom to ask.
    fn lookup_step(&mut self, now: Instant, id: u64, out: &mut NodeOut) {
        let Some(lookup) = self.lookups.get(&id) else {
            return;
        };
        if !self.joined {
            // Not in the ring yet, our tables say we are alone, which is
            // false: taking a PUT as owner here would lose it once we join.
            // Go through the node we join by; if it cannot help, fail.
            match (lookup.hops, self.bootstrap()) {
                (0, Some(addr)) => self.ask(now, id, addr, None, out),
                _ => self.lookup_failed(now, id, out),
            }
            return;
        }
        let (target, exclude) = (lookup.target, lookup.exclude.clone());
        if self.routing.owns(&target) {
            let mut owners = vec![self.me()];
            owners.extend(
                self.routing
                    .successors
                    .iter()
                    .filter(|n| !exclude.contains(&n.id)),
            );
            self.lookup_done(now, id, owners, out);
        } else if let Some(owners) = self.routing.owner_among_successors(&target, &exclude) {
            self.lookup_done(now, id, owners, out);
        } else if let Some(next) = self.routing.closest_preceding(&target, &exclude) {
            self.ask(now, id, next.addr, Some(next.id), out);
        } else {
            self.lookup_failed(now, id, out);
        }
    }

    fn ask(
        &mut self,
        now: Instant,
        id: u64,
        addr: SocketAddr,
        peer: Option<Id>,
        out: &mut NodeOut,
    ) {
        let Some(lookup) = self.lookups.get_mut(&id) else {
            return;
        };
        lookup.hops += 1;
        if lookup.hops > MAX_HOPS {
            debug!("lookup {id} passed {MAX_HOPS} hops; giving up");
            self.lookup_failed(now, id, out);
            return;
        }
        let target = lookup.target;
        let exclude = lookup.exclude.clone();
        let make = |req| PeerMsg::FindSuccessor {
            req,
            target,
            exclude,
        };
        if !self.request(now, addr, peer, Waiting::Find { lookup: id }, make, out) {
            self.lookup_failed(now, id, out);
        }
    }

    pub(super) fn on_find_reply(
        &mut self,
        now: Instant,
        id: u64,
        asked: Option<Id>,
        found: bool,
        nodes: Vec<NodeRef>,
        out: &mut NodeOut,
    ) {
        let Some(lookup) = self.lookups.get(&id) else {
            return;
        };
        if found {
            let exclude = lookup.exclude.clone();
            let owners: Vec<NodeRef> = nodes
                .into_iter()
                .enumerate()
                .filter(|(i, n)| *i == 0 || !(exclude.contains(&n.id) || self.is_dead(&n.id)))
                .map(|(_, n)| n)
                .collect();
            self.lookup_done(now, id, owners, out);
            return;
        }
        let next = nodes[0];
        // Each step must get strictly closer to the target, or we are going round in circles.
        let progress = match asked {
            Some(asked) => next.id.in_open(&asked, &lookup.target),
            None => true,
        };
        if next.id == self.cfg.id || !progress || lookup.exclude.contains(&next.id) {
            let past = asked.map_or_else(|| "the bootstrap node".to_string(), |a| a.to_string());
            debug!("lookup {id}: no progress past {past}");
            self.retry_lookup(now, id, asked, out);
        } else {
            self.ask(now, id, next.addr, Some(next.id), out);
        }
    }

    pub(super) fn on_find_failed(
        &mut self,
        now: Instant,
        id: u64,
        asked: Option<Id>,
        out: &mut NodeOut,
    ) {
        if let Some(peer) = asked {
            self.mark_dead(now, peer);
        }
        self.retry_lookup(now, id, asked, out);
    }

    /// Route around `asked` from our own tables.
    fn retry_lookup(&mut self, now: Instant, id: u64, asked: Option<Id>, out: &mut NodeOut) {
        let Some(lookup) = self.lookups.get_mut(&id) else {
            return;
        };
        lookup.attempts += 1;
        if let Some(peer) = asked {
            if !lookup.exclude.contains(&peer) && lookup.exclude.len() < MAX_EXCLUDE {
                lookup.exclude.push(peer);
            }
        }
        if lookup.purpose == Purpose::Join && self.join_error.is_none() {
            self.join_error = Some("its answer led to no successor".into());
        }
        let through_one = matches!(lookup.purpose, Purpose::Join | Purpose::Rejoin { .. });
        if lookup.attempts > MAX_ATTEMPTS || through_one {
            self.lookup_failed(now, id, out);
        } else {
            self.lookup_step(now, id, out);
        }
    }

    fn lookup_done(&mut self, now: Instant, id: u64, owners: Vec<NodeRef>, out: &mut NodeOut) {
        let Some(lookup) = self.lookups.remove(&id) else {
            return;
        };
        match lookup.purpose {
            Purpose::Api(op) => {
                self.stats.record_hops(lookup.hops);
                self.holders_found(now, op, owners, out);
            }
            Purpose::Join => self.join_found(now, owners, out),
            Purpose::Rejoin { .. } => self.rejoin_found(now, owners, out),
            Purpose::Finger(bit) => {
                self.fixing_finger = None;
                self.next_finger = self.routing.set_finger_run(bit, owners[0]);
            }
        }
    }

    fn lookup_failed(&mut self, now: Instant, id: u64, out: &mut NodeOut) {
        let Some(lookup) = self.lookups.remove(&id) else {
            return;
        };
        match lookup.purpose {
            Purpose::Api(op) => {
                self.stats.lookups_failed += 1;
                self.op_failed(now, op, out);
            }
            Purpose::Join => {
                self.join_lookup = None;
                let through = self
                    .bootstrap()
                    .map_or_else(|| "no member".to_string(), |a| a.to_string());
                let why = self
                    .join_error
                    .take()
                    .unwrap_or_else(|| "it did not answer".to_string());
                warn_repeated!(
                    self.warnings.join_failing,
                    now,
                    "cannot join the ring through {through}: {why}; still trying"
                );
            }
            Purpose::Finger(_) => self.fixing_finger = None,
            // Still unreachable (the partition may not have healed yet):
            // asked again after another spell in `dead`, a few times.
            Purpose::Rejoin { id, addr, tries } => {
                if tries + 1 < super::node::MAX_REJOIN_PROBES
                    && self.lost_peers.len() < super::node::MAX_LOST_PEERS
                {
                    self.dead.insert(id, now);
                    self.lost_peers.insert(id, (addr, tries + 1));
                }
            }
        }
    }

    /// Answer a FIND_SUCCESSOR from our tables: (found, nodes).
    pub(super) fn answer_find(&self, target: &Id, exclude: &[Id]) -> (bool, Vec<NodeRef>) {
        if self.routing.owns(target) && !exclude.contains(&self.cfg.id) {
            let mut owners = vec![self.me()];
            owners.extend(
                self.routing
                    .successors
                    .iter()
                    .filter(|n| !exclude.contains(&n.id)),
            );
            return (true, owners);
        }
        if let Some(owners) = self.routing.owner_among_successors(target, exclude) {
            return (true, owners);
        }
        match self.routing.closest_preceding(target, exclude) {
            Some(next) => (false, vec![next]),
            // Nothing better known: our successor is the best guess.
            None => (true, vec![self.routing.successor()]),
        }
    }
}
