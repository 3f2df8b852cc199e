//! Keeping the ring right, as in the Chord paper: join, stabilize, notify,
//! fix fingers, check predecessor, and the polite leave.

use super::id::{Id, ID_BITS};
use super::lookup::Purpose;
use super::node::NodeOut;
use super::node::{Node, MAX_LOST_PEERS};
use super::peer_wire::{NodeRef, PeerMsg};
use super::rpc::Waiting;
use crate::warn_repeated;
use log::{debug, info};
use std::time::{Duration, Instant};

/// How long a leaving node waits for its hand-over to reach the wire.
const LEAVE_GRACE: Duration = Duration::from_secs(3);

impl Node {
    pub(super) fn start_join(&mut self, now: Instant, out: &mut NodeOut) {
        let target = self.cfg.id;
        self.join_lookup = Some(0);
        let id = self.start_lookup(now, target, Purpose::Join, Vec::new(), out);
        if self.join_lookup.is_some() && self.lookups.contains(id) {
            self.join_lookup = Some(id);
        }
    }

    pub(super) fn join_found(&mut self, now: Instant, owners: Vec<NodeRef>, out: &mut NodeOut) {
        self.join_lookup = None;
        let successor = owners[0];
        if successor.id == self.cfg.id {
            warn_repeated!(
                self.warnings.id_taken,
                now,
                "node {} already holds my ID {}; choose another address or --id",
                successor.addr,
                self.cfg.id.to_hex()
            );
            return;
        }
        let through = self
            .bootstrap()
            .map_or_else(String::new, |a| format!(" through {a}"));
        out.print(format!(
            "joined the ring{through}: successor {} at {}",
            successor.id, successor.addr
        ));
        self.joined = true;
        self.routing
            .set_successors(successor, &owners[1..], |_| false);
        self.send_peer(
            now,
            successor.addr,
            &PeerMsg::Notify { node: self.me() },
            out,
        );
    }

    /// A node we once found dead names our successor: if it is nearer
    /// than ours (or we are alone), it is ours now, and stabilization goes
    /// on from there. Two rings a partition made merge back this way.
    pub(super) fn rejoin_found(&mut self, now: Instant, owners: Vec<NodeRef>, out: &mut NodeOut) {
        let Some(&found) = owners.first() else {
            return;
        };
        let me = self.cfg.id;
        if found.id == me || !self.joined || self.leaving_since.is_some() {
            return;
        }
        let nearer = self.routing.alone() || found.id.in_open(&me, &self.routing.successor().id);
        if nearer {
            info!("a lost peer named a nearer successor {}", found.id);
            self.dead.remove(&found.id);
            self.routing
                .set_successors(found, &owners[1..], |id| *id == me);
            self.send_peer(now, found.addr, &PeerMsg::Notify { node: self.me() }, out);
        }
    }

    /// Peers found dead whose time in `dead` is over are asked, once, for
    /// our successor: after a partition they are alive on the other side.
    pub(super) fn probe_lost_peers(&mut self, now: Instant, out: &mut NodeOut) {
        let expired: Vec<Id> = self
            .lost_peers
            .keys()
            .filter(|id| !self.dead.contains_key(id))
            .copied()
            .collect();
        for id in expired {
            if let Some((addr, tries)) = self.lost_peers.remove(&id) {
                let target = self.cfg.id;
                let purpose = Purpose::Rejoin { id, addr, tries };
                self.start_lookup(now, target, purpose, Vec::new(), out);
            }
        }
    }

    /// Ask the successor for its predecessor and list (the answer goes to
    /// `on_neighbours`). A node alone adopts whoever notified it.
    pub(super) fn stabilize(&mut self, now: Instant, out: &mut NodeOut) {
        if self.stabilizing || self.leaving_since.is_some() {
            return;
        }
        if self.routing.alone() {
            if let Some(pred) = self.routing.predecessor {
                info!("no longer alone: successor {}", pred.id);
                self.routing.successors = vec![pred];
            } else {
                return;
            }
        }
        let successor = self.routing.successor();
        let make = |req| PeerMsg::GetNeighbours { req };
        self.stabilizing = self.request(
            now,
            successor.addr,
            Some(successor.id),
            Waiting::Neighbours,
            make,
            out,
        );
    }

    pub(super) fn on_neighbours(
        &mut self,
        now: Instant,
        asked: Option<Id>,
        predecessor: Option<NodeRef>,
        successors: Vec<NodeRef>,
        out: &mut NodeOut,
    ) {
        self.stabilizing = false;
        let successor = self.routing.successor();
        if asked != Some(successor.id) {
            return; // the successor changed meanwhile; the next round asks the new one
        }
        let me = self.cfg.id;
        let dead = self.dead.clone();
        match predecessor {
            Some(x) if x.id.in_open(&me, &successor.id) && !dead.contains_key(&x.id) => {
                info!("stabilize: new successor {} (was {})", x.id, successor.id);
                let mut rest = vec![successor];
                rest.extend(successors);
                self.routing
                    .set_successors(x, &rest, |id| dead.contains_key(id));
            }
            _ => {
                self.routing
                    .set_successors(successor, &successors, |id| dead.contains_key(id));
            }
        }
        let successor = self.routing.successor();
        if successor.id != me {
            self.send_peer(
                now,
                successor.addr,
                &PeerMsg::Notify { node: self.me() },
                out,
            );
        }
    }

    /// `node` thinks it might be our predecessor.
    pub(super) fn on_notify(&mut self, now: Instant, node: NodeRef, out: &mut NodeOut) {
        if node.id == self.cfg.id || self.leaving_since.is_some() {
            return;
        }
        // It talks, so it lives.
        self.dead.remove(&node.id);
        if self.routing.alone() {
            self.routing.successors = vec![node];
        }
        let adopt = match self.routing.predecessor {
            None => true,
            Some(pred) => pred.id != node.id && node.id.in_open(&pred.id, &self.cfg.id),
        };
        if adopt {
            info!("new predecessor {} at {}", node.id, node.addr);
            self.routing.predecessor = Some(node);
            self.hand_over_to_predecessor(now, node, out);
        }
    }

    pub(super) fn check_predecessor(&mut self, now: Instant, out: &mut NodeOut) {
        if self.pinging {
            return;
        }
        if let Some(pred) = self.routing.predecessor {
            let make = |req| PeerMsg::Ping { req };
            self.pinging = self.request(now, pred.addr, Some(pred.id), Waiting::Ping, make, out);
        }
    }

    /// One finger lookup per tick; fingers answered from our own tables
    /// (the low ones, all equal to the successor) are filled at once.
    pub(super) fn fix_fingers(&mut self, now: Instant, out: &mut NodeOut) {
        if self.fixing_finger.is_some() {
            return;
        }
        for _ in 0..ID_BITS {
            if self.next_finger >= ID_BITS {
                self.next_finger = 0;
                return; // a round is done; the next starts next tick
            }
            let bit = self.next_finger;
            let start = self.routing.finger_start(bit);
            let id = self.start_lookup(now, start, Purpose::Finger(bit), Vec::new(), out);
            if self.lookups.contains(id) {
                self.fixing_finger = Some(id);
                return;
            }
            if self.next_finger == bit {
                return; // failed; try again next tick
            }
        }
    }

    /// A neighbour leaves politely: splice it out.
    pub(super) fn on_leaving(
        &mut self,
        now: Instant,
        node: NodeRef,
        predecessor: Option<NodeRef>,
        successors: Vec<NodeRef>,
        out: &mut NodeOut,
    ) {
        let was_successor = self.routing.successor().id == node.id;
        let was_predecessor = self.routing.predecessor.is_some_and(|p| p.id == node.id);
        // Only a neighbour leaving is news; any peer can send LEAVING frames.
        if was_successor || was_predecessor {
            info!("{} at {} is leaving", node.id, node.addr);
        } else {
            debug!("{} at {} is leaving", node.id, node.addr);
        }
        self.mark_dead(now, node.id);
        if was_predecessor {
            self.routing.predecessor = predecessor.filter(|p| p.id != self.cfg.id);
        }
        if was_successor {
            let dead = self.dead.clone();
            match successors.iter().position(|n| n.id != node.id) {
                Some(first) => {
                    let rest = successors[first + 1..].to_vec();
                    self.routing
                        .set_successors(successors[first], &rest, |id| dead.contains_key(id));
                }
                None => self.routing.successors.clear(),
            }
            let successor = self.routing.successor();
            if successor.id != self.cfg.id {
                self.send_peer(
                    now,
                    successor.addr,
                    &PeerMsg::Notify { node: self.me() },
                    out,
                );
            }
        }
    }

    /// `quit`: hand every pair to the successor, tell both neighbours, and
    /// stop once that is on the wire.
    pub(super) fn leave(&mut self, now: Instant, out: &mut NodeOut) {
        if self.leaving_since.is_some() {
            return;
        }
        self.leaving_since = Some(now);
        let successor = self.routing.successor();
        if successor.id == self.cfg.id {
            info!(
                "leaving an empty ring; {} pairs go with me",
                self.store.len()
            );
            self.maybe_finish_leaving(now, out);
            return;
        }
        let keys: Vec<_> = self.store.iter().map(|(key, _)| *key).collect();
        info!("leaving: handing {} pairs to {}", keys.len(), successor.id);
        for key in keys {
            self.send_pair(now, successor.addr, &key, 0, out);
        }
        let goodbye = PeerMsg::Leaving {
            node: self.me(),
            predecessor: self.routing.predecessor,
            successors: self.routing.successors.clone(),
        };
        self.send_peer(now, successor.addr, &goodbye, out);
        if let Some(pred) = self.routing.predecessor {
            if pred.id != successor.id {
                self.send_peer(now, pred.addr, &goodbye, out);
            }
        }
        self.maybe_finish_leaving(now, out);
    }

    pub(super) fn maybe_finish_leaving(&mut self, now: Instant, out: &mut NodeOut) {
        let Some(since) = self.leaving_since else {
            return;
        };
        if self.stopped {
            return;
        }
        if self.links.all_handed_over() || now.duration_since(since) > LEAVE_GRACE {
            info!("left the ring");
            self.stopped = true;
            out.stop();
        }
    }

    /// A node stopped answering: out of every table, and ignored in lists
    /// from others for a while.
    pub(super) fn mark_dead(&mut self, now: Instant, id: Id) {
        if id == self.cfg.id {
            return;
        }
        self.dead.insert(id, now);
        let r = &self.routing;
        let known = r
            .successors
            .iter()
            .chain(r.predecessor.iter())
            .chain(r.fingers.iter().flatten())
            .find(|n| n.id == id)
            .map(|n| n.addr);
        if let Some(addr) = known {
            if self.lost_peers.len() < MAX_LOST_PEERS || self.lost_peers.contains_key(&id) {
                self.lost_peers.insert(id, (addr, 0));
            }
        }
        self.routing.forget(&id);
        if self.routing.successors.is_empty() && self.joined {
            // Every successor gone: fall back on the nearest finger or the
            // predecessor; stabilization walks on from there.
            let fallback = self.routing.nearest_finger().or(self.routing.predecessor);
            if let Some(node) = fallback {
                self.routing.successors = vec![node];
            }
        }
    }
}
