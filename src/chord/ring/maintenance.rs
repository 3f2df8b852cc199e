//! Keeping the ring right, as in the Chord paper: join, stabilize, notify,
//! fix fingers, check predecessor, and the polite leave.

use super::Ring;
use crate::chord::id::{Id, ID_BITS};
use crate::chord::lookup::{Lookups, Purpose};
use crate::chord::peer_wire::{NodeRef, PeerMsg};
use crate::chord::rpc::{Ctx, Waiting};
use crate::warn_repeated;
use log::{debug, info};
use std::time::{Duration, Instant};

/// How long a leaving node waits for its hand-over to reach the wire.
const LEAVE_GRACE: Duration = Duration::from_secs(3);

impl Ring {
    pub fn start_join(&mut self, lookups: &mut Lookups, cx: &mut Ctx) {
        let target = self.routing.me.id;
        self.join_lookup = Some(0);
        let id = self.start_lookup(lookups, target, Purpose::Join, cx);
        if self.join_lookup.is_some() && lookups.contains(id) {
            self.join_lookup = Some(id);
        }
    }

    pub(super) fn join_found(&mut self, owners: Vec<NodeRef>, cx: &mut Ctx) {
        self.join_lookup = None;
        let successor = owners[0];
        let me = self.me();
        if successor.id == me.id {
            warn_repeated!(
                cx.warnings.id_taken,
                cx.now,
                "node {} already holds my ID {}; choose another address or --id",
                successor.addr,
                me.id.to_hex()
            );
            return;
        }
        let through = self
            .bootstrap
            .map_or_else(String::new, |a| format!(" through {a}"));
        cx.out.print(format!(
            "joined the ring{through}: successor {} at {}",
            successor.id, successor.addr
        ));
        self.joined = true;
        self.routing
            .set_successors(successor, &owners[1..], |_| false);
        cx.send(successor.addr, &PeerMsg::Notify { node: me });
    }

    /// A node we once found dead names our successor: if it is nearer
    /// than ours (or we are alone), it is ours now, and stabilization goes
    /// on from there. Two rings a partition made merge back this way.
    pub(super) fn rejoin_found(&mut self, owners: Vec<NodeRef>, cx: &mut Ctx) {
        let Some(&found) = owners.first() else {
            return;
        };
        let me = self.routing.me.id;
        if found.id == me || !self.joined || self.leaving_since.is_some() {
            return;
        }
        let nearer = self.routing.alone() || found.id.in_open(&me, &self.routing.successor().id);
        if nearer {
            info!("a lost peer named a nearer successor {}", found.id);
            self.dead.remove(&found.id);
            self.routing
                .set_successors(found, &owners[1..], |id| *id == me);
            cx.send(found.addr, &PeerMsg::Notify { node: self.me() });
        }
    }

    /// Peers found dead whose time in `dead` is over are asked, once, for
    /// our successor: after a partition they are alive on the other side.
    pub fn probe_lost_peers(&mut self, lookups: &mut Lookups, cx: &mut Ctx) {
        let expired: Vec<Id> = self
            .lost_peers
            .keys()
            .filter(|id| !self.dead.contains_key(id))
            .copied()
            .collect();
        for id in expired {
            if let Some((addr, tries)) = self.lost_peers.remove(&id) {
                let target = self.routing.me.id;
                let purpose = Purpose::Rejoin { id, addr, tries };
                self.start_lookup(lookups, target, purpose, cx);
            }
        }
    }

    /// Ask the successor for its predecessor and list (the answer goes to
    /// `on_neighbours`). A node alone adopts whoever notified it.
    pub fn stabilize(&mut self, cx: &mut Ctx) {
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
        self.stabilizing = cx.request(
            successor.addr,
            Some(successor.id),
            Waiting::Neighbours,
            make,
        );
    }

    pub fn on_neighbours(
        &mut self,
        asked: Option<Id>,
        predecessor: Option<NodeRef>,
        successors: Vec<NodeRef>,
        cx: &mut Ctx,
    ) {
        self.stabilizing = false;
        let successor = self.routing.successor();
        if asked != Some(successor.id) {
            return; // the successor changed meanwhile; the next round asks the new one
        }
        let me = self.routing.me.id;
        let dead = &self.dead;
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
        self.notify_successor(cx);
    }

    /// Tell our successor we might be its predecessor (unless we are alone).
    fn notify_successor(&mut self, cx: &mut Ctx) {
        let successor = self.routing.successor();
        if successor.id != self.routing.me.id {
            cx.send(successor.addr, &PeerMsg::Notify { node: self.me() });
        }
    }

    /// Our successor did not answer GET_NEIGHBOURS.
    pub fn neighbours_failed(&mut self, peer: Option<Id>, cx: &mut Ctx) {
        self.stabilizing = false;
        if let Some(id) = peer {
            info!("successor {id} did not answer; dropping it");
            self.mark_dead(cx.now, id);
            self.stabilize(cx);
        }
    }

    /// `node` thinks it might be our predecessor. Returns it when it is our
    /// predecessor now: it owns what lies before it, and the DHT hands it over.
    pub fn on_notify(&mut self, node: NodeRef) -> Option<NodeRef> {
        if node.id == self.routing.me.id || self.leaving_since.is_some() {
            return None;
        }
        // It talks, so it lives.
        self.dead.remove(&node.id);
        if self.routing.alone() {
            self.routing.successors = vec![node];
        }
        let adopt = match self.routing.predecessor {
            None => true,
            Some(pred) => pred.id != node.id && node.id.in_open(&pred.id, &self.routing.me.id),
        };
        if !adopt {
            return None;
        }
        info!("new predecessor {} at {}", node.id, node.addr);
        self.routing.predecessor = Some(node);
        Some(node)
    }

    pub fn check_predecessor(&mut self, cx: &mut Ctx) {
        if self.pinging {
            return;
        }
        if let Some(pred) = self.routing.predecessor {
            let make = |req| PeerMsg::Ping { req };
            self.pinging = cx.request(pred.addr, Some(pred.id), Waiting::Ping, make);
        }
    }

    pub fn on_pong(&mut self) {
        self.pinging = false;
    }

    /// Our predecessor did not answer PING.
    pub fn ping_failed(&mut self, now: Instant, peer: Option<Id>) {
        self.pinging = false;
        if let Some(id) = peer {
            info!("predecessor {id} did not answer; dropping it");
            self.mark_dead(now, id);
        }
    }

    /// One finger lookup per tick; fingers answered from our own tables
    /// (the low ones, all equal to the successor) are filled at once.
    pub fn fix_fingers(&mut self, lookups: &mut Lookups, cx: &mut Ctx) {
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
            let id = self.start_lookup(lookups, start, Purpose::Finger(bit), cx);
            if lookups.contains(id) {
                self.fixing_finger = Some(id);
                return;
            }
            if self.next_finger == bit {
                return; // failed; try again next tick
            }
        }
    }

    /// A neighbour leaves politely: splice it out.
    pub fn on_leaving(
        &mut self,
        node: NodeRef,
        predecessor: Option<NodeRef>,
        successors: Vec<NodeRef>,
        cx: &mut Ctx,
    ) {
        let was_successor = self.routing.successor().id == node.id;
        let was_predecessor = self.routing.predecessor.is_some_and(|p| p.id == node.id);
        // Only a neighbour leaving is news; any peer can send LEAVING frames.
        if was_successor || was_predecessor {
            info!("{} at {} is leaving", node.id, node.addr);
        } else {
            debug!("{} at {} is leaving", node.id, node.addr);
        }
        self.mark_dead(cx.now, node.id);
        let me = self.routing.me.id;
        if was_predecessor {
            self.routing.predecessor = predecessor.filter(|p| p.id != me);
        }
        if was_successor {
            let dead = &self.dead;
            match successors.iter().position(|n| n.id != node.id) {
                Some(first) => {
                    let rest = successors[first + 1..].to_vec();
                    self.routing
                        .set_successors(successors[first], &rest, |id| dead.contains_key(id));
                }
                None => self.routing.successors.clear(),
            }
            self.notify_successor(cx);
        }
    }

    /// `quit`, first part: from now on we are leaving. The successor that
    /// takes every pair we hold (`pairs` of them), unless we are alone.
    pub fn start_leaving(&mut self, now: Instant, pairs: usize) -> Option<NodeRef> {
        if self.leaving_since.is_some() {
            return None;
        }
        self.leaving_since = Some(now);
        let successor = self.routing.successor();
        if successor.id == self.routing.me.id {
            info!("leaving an empty ring; {pairs} pairs go with me");
            return None;
        }
        Some(successor)
    }

    /// `quit`, once the pairs are on their way to `successor`: tell both
    /// neighbours.
    pub fn say_goodbye(&mut self, successor: NodeRef, cx: &mut Ctx) {
        let goodbye = PeerMsg::Leaving {
            node: self.me(),
            predecessor: self.routing.predecessor,
            successors: self.routing.successors.clone(),
        };
        cx.send(successor.addr, &goodbye);
        if let Some(pred) = self.routing.predecessor {
            if pred.id != successor.id {
                cx.send(pred.addr, &goodbye);
            }
        }
    }

    /// Stop once what we handed over is on the wire (or the grace is over).
    pub fn maybe_finish_leaving(&mut self, cx: &mut Ctx) {
        let Some(since) = self.leaving_since else {
            return;
        };
        if self.stopped {
            return;
        }
        if cx.rpc.all_handed_over() || cx.now.duration_since(since) > LEAVE_GRACE {
            info!("left the ring");
            self.stopped = true;
            cx.out.stop();
        }
    }
}
