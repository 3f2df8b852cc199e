//! The node's dispatch of what comes in: frames from peers and clients,
//! answers to our requests, requests that failed, and the tick. Each is
//! handed to the room it concerns, and what that room returns (a new
//! predecessor, a lookup's end) to the room that acts on it.

use super::{cx, Node, NodeOut, Role};
use crate::chord::api_wire::ApiCodec;
use crate::chord::lookup::{Purpose, Step};
use crate::chord::lookup_steps;
use crate::chord::peer_wire::PeerCodec;
use crate::chord::peer_wire::PeerMsg;
use crate::chord::rpc::{Pending, Waiting};
use crate::reactor::ConnId;
use crate::warn_repeated;
use crate::wire::{decode_each, Framed, Stopped};
use log::{debug, info};
use std::fmt;
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::time::Instant;

/// An answer came on a connection a peer opened to us: we ask only on
/// our own links, so the peer is broken.
#[derive(Debug)]
struct UnaskedAnswer;

impl fmt::Display for UnaskedAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an answer on a connection we did not ask on")
    }
}

/// Why a run of input stopped, in the words the log shows.
fn reason<D: fmt::Display>(stopped: Stopped<D, String>) -> String {
    match stopped {
        Stopped::Decode(e) => e.to_string(),
        Stopped::Handler(why) => why,
    }
}

impl Node {
    /// Handle every whole frame of `data`; how many bytes they took, or
    /// why the connection must close (in the user's words).
    pub(super) fn frames(
        &mut self,
        now: Instant,
        conn: ConnId,
        role: Role,
        data: &[u8],
        out: &mut NodeOut,
    ) -> Result<usize, String> {
        let (used, stopped) = match role {
            Role::Api => {
                let (used, stopped) = decode_each(&Framed(ApiCodec), data, |msg| {
                    match self.dht.on_api_message(conn, msg, &mut cx!(self, now, out)) {
                        Ok(()) => ControlFlow::Continue(()),
                        Err(e) => ControlFlow::Break(e.to_string()),
                    }
                });
                (used, stopped.map(reason))
            }
            Role::PeerIn | Role::PeerOut => {
                let (used, stopped) = decode_each(&Framed(PeerCodec), data, |msg| {
                    match self.on_peer_message(now, conn, role, msg, out) {
                        Ok(()) => ControlFlow::Continue(()),
                        Err(e) => ControlFlow::Break(e.to_string()),
                    }
                });
                (used, stopped.map(reason))
            }
        };
        match stopped {
            None => Ok(used),
            Some(why) => Err(why),
        }
    }

    fn on_peer_message(
        &mut self,
        now: Instant,
        conn: ConnId,
        role: Role,
        msg: PeerMsg,
        out: &mut NodeOut,
    ) -> Result<(), UnaskedAnswer> {
        let mut cx = cx!(self, now, out);
        match msg {
            PeerMsg::FindSuccessor {
                req,
                target,
                exclude,
            } => {
                let (found, nodes) = self.ring.routing().answer_find(&target, &exclude);
                cx.reply(conn, &PeerMsg::FindReply { req, found, nodes });
            }
            PeerMsg::GetNeighbours { req } => {
                let routing = self.ring.routing();
                let answer = PeerMsg::Neighbours {
                    req,
                    predecessor: routing.predecessor,
                    successors: routing.successors.clone(),
                };
                cx.reply(conn, &answer);
            }
            PeerMsg::Notify { node } => {
                if let Some(pred) = self.ring.on_notify(node) {
                    self.dht.hand_over_to_predecessor(pred, &self.ring, &mut cx);
                }
            }
            PeerMsg::Store(store) => {
                let req = store.req;
                self.dht.on_store(conn, store, &self.ring, &mut cx);
                if req != 0 {
                    cx.reply(conn, &PeerMsg::StoreAck { req });
                }
            }
            PeerMsg::Fetch { req, key } => {
                let value = self.dht.fetch(now, &key);
                cx.reply(conn, &PeerMsg::FetchReply { req, value });
            }
            PeerMsg::Ping { req } => cx.reply(conn, &PeerMsg::Pong { req }),
            PeerMsg::Leaving {
                node,
                predecessor,
                successors,
            } => self.ring.on_leaving(node, predecessor, successors, &mut cx),
            PeerMsg::FindReply { req, .. }
            | PeerMsg::Neighbours { req, .. }
            | PeerMsg::StoreAck { req }
            | PeerMsg::FetchReply { req, .. }
            | PeerMsg::Pong { req } => {
                if role != Role::PeerOut {
                    return Err(UnaskedAnswer);
                }
                let from = self.rpc.peer_of(conn);
                match self.rpc.take_answer(req, from) {
                    Some(pending) => self.on_answer(now, pending, msg, out),
                    None => debug!("late or unknown answer {req} from {from:?}"),
                }
            }
        }
        Ok(())
    }

    fn on_answer(&mut self, now: Instant, pending: Pending, msg: PeerMsg, out: &mut NodeOut) {
        let mut cx = cx!(self, now, out);
        match (pending.what, msg) {
            (Waiting::Find { lookup }, PeerMsg::FindReply { found, nodes, .. }) => {
                let view = self.ring.view();
                let step = self
                    .lookups
                    .on_reply(lookup, pending.peer, found, nodes, &view);
                self.continue_lookup(step, now, out);
            }
            (
                Waiting::Neighbours,
                PeerMsg::Neighbours {
                    predecessor,
                    successors,
                    ..
                },
            ) => self
                .ring
                .on_neighbours(pending.peer, predecessor, successors, &mut cx),
            (Waiting::Ping, PeerMsg::Pong { .. }) => self.ring.on_pong(),
            (Waiting::Fetch { op }, PeerMsg::FetchReply { value, .. }) => {
                self.dht
                    .on_fetched(op, value, &self.ring, &mut self.lookups, &mut cx)
            }
            (Waiting::Store { op }, PeerMsg::StoreAck { .. }) => self.dht.on_stored(op),
            (what, msg) => {
                // A peer answering with the wrong kind is broken: treat as failed.
                warn_repeated!(
                    self.warnings.wrong_answer,
                    now,
                    "answer {} does not fit request {what:?}; dropping {}",
                    msg.name(),
                    pending.addr
                );
                self.rpc.drop_link(pending.addr, out);
                self.request_failed(now, pending, out);
                self.link_failed(now, pending.addr, out);
            }
        }
    }

    /// Carry a lookup on after an answer (or none), and give its end to
    /// the room that started it.
    fn continue_lookup(&mut self, step: Option<Step>, now: Instant, out: &mut NodeOut) {
        let mut cx = cx!(self, now, out);
        let Some(end) = lookup_steps::drive(&mut self.lookups, step, &mut cx) else {
            return;
        };
        let purpose = match &end {
            Step::Done { lookup, .. } | Step::Failed { lookup, .. } => lookup.purpose,
            Step::Ask { .. } => return,
        };
        match purpose {
            Purpose::Api(_) => self
                .dht
                .lookup_ended(end, &self.ring, &mut self.lookups, &mut cx),
            Purpose::Join | Purpose::Finger(_) | Purpose::Rejoin { .. } => {
                self.ring.lookup_ended(end, &mut cx)
            }
        }
    }

    /// Every request waiting on `addr` has failed.
    pub(super) fn link_failed(&mut self, now: Instant, addr: SocketAddr, out: &mut NodeOut) {
        // One by one: failing a request may end or add others.
        for req in self.rpc.waiting_on(addr) {
            if let Some(pending) = self.rpc.take(req) {
                self.request_failed(now, pending, out);
            }
        }
    }

    /// A request got no answer: the room that made it hears of it.
    fn request_failed(&mut self, now: Instant, pending: Pending, out: &mut NodeOut) {
        let mut cx = cx!(self, now, out);
        match pending.what {
            Waiting::Find { lookup } => {
                if let Some(peer) = pending.peer {
                    self.ring.mark_dead(now, peer);
                }
                let step = self
                    .lookups
                    .on_no_answer(lookup, pending.peer, &self.ring.view());
                self.continue_lookup(step, now, out);
            }
            Waiting::Neighbours => self.ring.neighbours_failed(pending.peer, &mut cx),
            Waiting::Ping => self.ring.ping_failed(now, pending.peer),
            Waiting::Fetch { op } | Waiting::Store { op } => {
                if let Some(id) = pending.peer {
                    self.ring.mark_dead(now, id);
                }
                self.dht
                    .holder_failed(op, pending.peer, &self.ring, &mut self.lookups, &mut cx);
            }
        }
    }

    fn expire_requests(&mut self, now: Instant, out: &mut NodeOut) {
        let timeout = self.cfg.rpc_timeout();
        for addr in self.rpc.late(now, timeout) {
            if self.rpc.waits_on(addr) {
                info!("{addr} did not answer within {timeout:?}; closing the link");
                self.ring
                    .note_join_error(addr, || format!("it did not answer within {timeout:?}"));
                self.rpc.drop_link(addr, out);
                self.link_failed(now, addr, out);
            }
        }
        self.dht.expire_ops(&mut cx!(self, now, out));
    }

    pub(super) fn tick(&mut self, now: Instant, out: &mut NodeOut) {
        let ticks = self.dht.new_tick();
        self.expire_requests(now, out);
        let mut cx = cx!(self, now, out);
        if self.ring.is_leaving() {
            self.ring.maybe_finish_leaving(&mut cx);
            return;
        }
        if !self.ring.is_joined() {
            if !self.ring.is_joining() {
                self.ring.start_join(&mut self.lookups, &mut cx);
            }
            return;
        }
        self.ring.stabilize(&mut cx);
        self.ring.check_predecessor(&mut cx);
        self.ring.fix_fingers(&mut self.lookups, &mut cx);
        if ticks.is_multiple_of(4) {
            self.ring.forget_old_deaths(now, self.cfg.dead_memory());
            self.ring.probe_lost_peers(&mut self.lookups, &mut cx);
            self.dht.expire(now);
            self.dht.replicate(&self.ring, &mut cx);
        }
    }
}
