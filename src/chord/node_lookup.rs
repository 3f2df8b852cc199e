//! The node's side of its lookups: it starts them, carries out the steps
//! `Lookups` (lookup.rs) decides on (sending the questions), and acts on
//! the results (the DHT op, the join, the finger, the rejoin waiting on
//! each). Kept apart from `Lookups` so the lookup logic stays pure.

use super::id::Id;
use super::lookup::{Lookup, Purpose, Step, View};
use super::node::{Node, NodeOut, MAX_LOST_PEERS, MAX_REJOIN_PROBES};
use super::peer_wire::{NodeRef, PeerMsg};
use super::rpc::Waiting;
use crate::warn_repeated;
use std::time::Instant;

/// The read-only view of the node that `Lookups` decides from; a macro,
/// not a method, so that it borrows only these fields and `self.lookups`
/// stays free to be borrowed mutably beside it.
macro_rules! view {
    ($node:expr) => {
        View {
            routing: &$node.routing,
            joined: $node.joined,
            bootstrap: $node.cfg.join,
            dead: &$node.dead,
        }
    };
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
        let (id, step) = self.lookups.start(target, purpose, exclude, &view!(self));
        self.lookup_step(now, step, out);
        id
    }

    /// Carry out what a lookup decided.
    fn lookup_step(&mut self, now: Instant, step: Option<Step>, out: &mut NodeOut) {
        match step {
            None => {}
            Some(Step::Ask {
                lookup,
                addr,
                peer,
                target,
                exclude,
            }) => {
                let make = |req| PeerMsg::FindSuccessor {
                    req,
                    target,
                    exclude,
                };
                if !self.request(now, addr, peer, Waiting::Find { lookup }, make, out) {
                    let step = self.lookups.fail(lookup);
                    self.lookup_step(now, step, out);
                }
            }
            Some(Step::Done { lookup, owners }) => self.lookup_done(now, lookup, owners, out),
            Some(Step::Failed { lookup, dead_end }) => {
                if dead_end && lookup.purpose == Purpose::Join && self.join_error.is_none() {
                    self.join_error = Some("its answer led to no successor".into());
                }
                self.lookup_failed(now, lookup, out);
            }
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
        let step = self.lookups.on_reply(id, asked, found, nodes, &view!(self));
        self.lookup_step(now, step, out);
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
        let step = self.lookups.on_no_answer(id, asked, &view!(self));
        self.lookup_step(now, step, out);
    }

    fn lookup_done(
        &mut self,
        now: Instant,
        lookup: Lookup,
        owners: Vec<NodeRef>,
        out: &mut NodeOut,
    ) {
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

    fn lookup_failed(&mut self, now: Instant, lookup: Lookup, out: &mut NodeOut) {
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
                if tries + 1 < MAX_REJOIN_PROBES && self.lost_peers.len() < MAX_LOST_PEERS {
                    self.dead.insert(id, now);
                    self.lost_peers.insert(id, (addr, tries + 1));
                }
            }
        }
    }
}
