//! Links and RPC: requests to peers and what they wait on. A request is
//! sent on our own link to the peer (links.rs) and remembered in `Requests`
//! until its answer comes back, its link fails, or it times out; a failed
//! request is handed back to whichever part of the node made it.

use super::id::Id;
use super::links::Sent;
use super::node::{Node, NodeOut, Role, MAX_PENDING};
use super::peer_wire::PeerMsg;
use crate::reactor::ConnId;
use crate::warn_repeated;
use log::info;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// What an outstanding request was for.
#[derive(Debug, Clone, Copy)]
pub enum Waiting {
    Find { lookup: u64 },
    Neighbours,
    Ping,
    Fetch { op: u64 },
    Store { op: u64 },
}

#[derive(Debug, Clone, Copy)]
pub struct Pending {
    pub addr: SocketAddr,
    /// The ID of the node asked, when known (a join asks an address).
    pub peer: Option<Id>,
    pub sent: Instant,
    pub what: Waiting,
}

/// The requests waiting for an answer, by request number: the table
/// only this file writes, so every way a request ends (answered, its link
/// failed, timed out) goes through here.
#[derive(Debug, Default)]
pub struct Requests {
    waiting: BTreeMap<u32, Pending>,
    last: u32,
}

impl Requests {
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// A number for the next request; never 0, which in a STORE means
    /// "no acknowledgement wanted".
    fn next_number(&mut self) -> u32 {
        self.last = self.last.wrapping_add(1).max(1);
        self.last
    }

    /// The request answer `req` from `from` is for, taken out: only the
    /// peer that was asked may answer (another one's number is ignored).
    pub fn take_answer(&mut self, req: u32, from: Option<SocketAddr>) -> Option<Pending> {
        match self.waiting.get(&req) {
            Some(p) if Some(p.addr) == from => self.waiting.remove(&req),
            _ => None,
        }
    }

    /// The numbers of the requests waiting on `addr`.
    fn to(&self, addr: SocketAddr) -> Vec<u32> {
        self.waiting
            .iter()
            .filter(|(_, p)| p.addr == addr)
            .map(|(req, _)| *req)
            .collect()
    }

    fn any_to(&self, addr: SocketAddr) -> bool {
        self.waiting.values().any(|p| p.addr == addr)
    }

    /// Where the requests older than `timeout` went (one entry each).
    fn late(&self, now: Instant, timeout: Duration) -> Vec<SocketAddr> {
        self.waiting
            .values()
            .filter(|p| now.duration_since(p.sent) > timeout)
            .map(|p| p.addr)
            .collect()
    }
}

impl Node {
    /// Send a request and remember what it was for. False when too many wait.
    pub(super) fn request(
        &mut self,
        now: Instant,
        to: SocketAddr,
        peer: Option<Id>,
        what: Waiting,
        make: impl FnOnce(u32) -> PeerMsg,
        out: &mut NodeOut,
    ) -> bool {
        if self.requests.len() >= MAX_PENDING {
            warn_repeated!(
                self.warnings.too_many_pending,
                now,
                "{MAX_PENDING} requests outstanding; not asking {to}"
            );
            return false;
        }
        let req = self.requests.next_number();
        // Only a request that reached the wire may time out: a frame we
        // could not send must never make a live peer look dead.
        if !self.send_peer(now, to, &make(req), out) {
            return false;
        }
        self.requests.waiting.insert(
            req,
            Pending {
                addr: to,
                peer,
                sent: now,
                what,
            },
        );
        true
    }

    /// Send `msg` to the peer at `to`; false (logged) when it was not sent.
    pub(super) fn send_peer(
        &mut self,
        now: Instant,
        to: SocketAddr,
        msg: &PeerMsg,
        out: &mut NodeOut,
    ) -> bool {
        if to == self.cfg.listen {
            warn_repeated!(
                self.warnings.to_myself,
                now,
                "not sending {} to myself",
                msg.name()
            );
            return false;
        }
        let (sent, evicted) = self.links.send(to, msg, now, out);
        if let Some(evicted) = evicted {
            self.forget_closed_links();
            self.link_failed(now, evicted, out);
        }
        match sent {
            Sent::Yes => true,
            Sent::TooLarge(why) => {
                warn_repeated!(
                    self.warnings.not_sent,
                    now,
                    "not sending {} to {to}: {why}",
                    msg.name()
                );
                false
            }
            Sent::QueueFull => {
                warn_repeated!(
                    self.warnings.link_queue_full,
                    now,
                    "{to} is still connecting with {} bytes queued; dropping a {}",
                    super::links::MAX_QUEUED,
                    msg.name()
                );
                false
            }
        }
    }

    /// Close our link to `addr` (its requests are failed by the caller).
    pub(super) fn drop_link(&mut self, addr: SocketAddr, out: &mut NodeOut) {
        self.links.remove(&addr, out);
        self.forget_closed_links();
    }

    /// The reactor does not report connections we closed ourselves.
    pub(super) fn forget_closed_links(&mut self) {
        let links = &self.links;
        self.roles
            .retain(|conn, role| *role != Role::PeerOut || links.peer_of(*conn).is_some());
    }

    /// Every request waiting on `addr` has failed.
    pub(super) fn link_failed(&mut self, now: Instant, addr: SocketAddr, out: &mut NodeOut) {
        // One by one: failing a request may end or add others.
        for req in self.requests.to(addr) {
            if let Some(pending) = self.requests.waiting.remove(&req) {
                self.request_failed(now, pending, out);
            }
        }
    }

    pub(super) fn request_failed(&mut self, now: Instant, pending: Pending, out: &mut NodeOut) {
        match pending.what {
            Waiting::Find { lookup } => self.on_find_failed(now, lookup, pending.peer, out),
            Waiting::Neighbours => {
                self.stabilizing = false;
                if let Some(id) = pending.peer {
                    info!("successor {id} did not answer; dropping it");
                    self.mark_dead(now, id);
                    self.stabilize(now, out);
                }
            }
            Waiting::Ping => {
                self.pinging = false;
                if let Some(id) = pending.peer {
                    info!("predecessor {id} did not answer; dropping it");
                    self.mark_dead(now, id);
                }
            }
            Waiting::Fetch { op } | Waiting::Store { op } => {
                if let Some(id) = pending.peer {
                    self.mark_dead(now, id);
                    if let Some(entry) = self.ops.get_mut(&op) {
                        entry.unreachable.push(id);
                    }
                }
                self.try_next_holder(now, op, out);
            }
        }
    }

    pub(super) fn expire_requests(&mut self, now: Instant, out: &mut NodeOut) {
        let timeout = self.cfg.rpc_timeout();
        for addr in self.requests.late(now, timeout) {
            if self.requests.any_to(addr) {
                info!("{addr} did not answer within {timeout:?}; closing the link");
                if Some(addr) == self.cfg.join && !self.joined {
                    self.join_error = Some(format!("it did not answer within {timeout:?}"));
                }
                self.drop_link(addr, out);
                self.link_failed(now, addr, out);
            }
        }
        self.expire_ops(now, out);
    }
}

/// Answer a peer on the connection it asked on. Every answer we build fits
/// a frame (values are bounded at the API, node lists at MAX_NODES).
pub(super) fn reply(out: &mut NodeOut, conn: ConnId, msg: &PeerMsg) {
    out.send_with(conn, |buf| {
        if let Err(e) = msg.write(buf) {
            debug_assert!(false, "answer too large: {e}");
            log::error!("answer {} too large: {e}", msg.name());
        }
    });
}
