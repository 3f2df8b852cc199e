//! Links and RPC: the node's connections to peers and the requests waiting
//! for answers. A request is sent on our own link to the peer (links.rs)
//! and remembered in `Requests` until its answer comes back, its link
//! fails, or it times out. `Rpc` never decides what a failed request means:
//! it hands the `Pending` back, and the node gives it to the room that made
//! it. The rooms talk to peers through a [`Ctx`].

use super::actions::NodeOut;
use super::id::Id;
use super::links::{Links, Sent};
use super::peer_wire::PeerMsg;
use super::warnings::Warnings;
use crate::reactor::ConnId;
use crate::warn_repeated;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Most requests this node waits on at once.
pub const MAX_PENDING: usize = 16_384;

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

/// The requests waiting for an answer, by request number: every way a
/// request ends (answered, its link failed, timed out) goes through here.
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

/// Which side of a ring connection we are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerRole {
    /// A peer connected to us: its requests come in on it.
    In,
    /// Our link to a peer: our requests go out and their answers come back.
    Out,
}

/// The ring connections and the requests on them.
pub struct Rpc {
    /// Our own peer address: nothing is sent to it.
    me: SocketAddr,
    links: Links,
    roles: BTreeMap<ConnId, PeerRole>,
    requests: Requests,
    /// Links closed to stay under `MAX_LINKS` while a room was sending:
    /// their requests have failed, and the node hands them back once the
    /// room is done (a room never calls another one).
    evicted: Vec<SocketAddr>,
}

impl Rpc {
    pub fn new(me: SocketAddr) -> Rpc {
        Rpc {
            me,
            links: Links::default(),
            roles: BTreeMap::new(),
            requests: Requests::default(),
            evicted: Vec::new(),
        }
    }

    pub fn role(&self, conn: ConnId) -> Option<PeerRole> {
        self.roles.get(&conn).copied()
    }

    pub fn accepted(&mut self, conn: ConnId) {
        self.roles.insert(conn, PeerRole::In);
    }

    pub fn peers_in(&self) -> usize {
        self.roles.values().filter(|r| **r == PeerRole::In).count()
    }

    /// The link asked for with `tag` is up: send what waited.
    pub fn connected(&mut self, tag: u64, conn: ConnId, out: &mut NodeOut) {
        if self.links.connected(tag, conn, out).is_some() {
            self.roles.insert(conn, PeerRole::Out);
        }
    }

    /// A dial failed: whose.
    pub fn connect_failed(&mut self, tag: u64) -> Option<SocketAddr> {
        self.links.connect_failed(tag)
    }

    /// `conn` closed: if it was our link, whose (its requests have failed:
    /// see [`Rpc::waiting_on`]).
    pub fn closed(&mut self, conn: ConnId) -> Option<SocketAddr> {
        match self.roles.remove(&conn) {
            Some(PeerRole::Out) => self.links.closed(conn),
            _ => None,
        }
    }

    /// Which peer one of our links leads to.
    pub fn peer_of(&self, conn: ConnId) -> Option<SocketAddr> {
        self.links.peer_of(conn)
    }

    pub fn take_answer(&mut self, req: u32, from: Option<SocketAddr>) -> Option<Pending> {
        self.requests.take_answer(req, from)
    }

    /// Close our link to `addr` (its requests are failed by the caller).
    pub fn drop_link(&mut self, addr: SocketAddr, out: &mut NodeOut) {
        self.links.remove(&addr, out);
        self.forget_closed_links();
    }

    /// The reactor does not report connections we closed ourselves.
    fn forget_closed_links(&mut self) {
        let links = &self.links;
        self.roles
            .retain(|conn, role| *role != PeerRole::Out || links.peer_of(*conn).is_some());
    }

    /// The numbers of the requests waiting on `addr` now: the node fails
    /// them one by one ([`Rpc::take`]), as failing one may end others.
    pub fn waiting_on(&self, addr: SocketAddr) -> Vec<u32> {
        self.requests.to(addr)
    }

    /// Request `req`, taken out, if it still waits.
    pub fn take(&mut self, req: u32) -> Option<Pending> {
        self.requests.waiting.remove(&req)
    }

    /// A link closed while sending, whose requests must now fail.
    pub fn take_evicted(&mut self) -> Option<SocketAddr> {
        if self.evicted.is_empty() {
            None
        } else {
            Some(self.evicted.remove(0))
        }
    }

    /// The peers with a request older than `timeout` (each once its turn
    /// comes: an earlier one's failure may have ended its requests).
    pub fn late(&self, now: Instant, timeout: Duration) -> Vec<SocketAddr> {
        self.requests.late(now, timeout)
    }

    pub fn waits_on(&self, addr: SocketAddr) -> bool {
        self.requests.any_to(addr)
    }

    /// No message waits for a connection to open (a leaving node may stop).
    pub fn all_handed_over(&self) -> bool {
        self.links.all_handed_over()
    }

    pub fn pending_count(&self) -> usize {
        self.requests.len()
    }

    pub fn link_count(&self) -> usize {
        self.links.len()
    }
}

/// What a room is handed to talk to peers in one event: the time, the
/// links and requests, the warnings, and the actions list.
pub struct Ctx<'a> {
    pub now: Instant,
    pub rpc: &'a mut Rpc,
    pub warnings: &'a mut Warnings,
    pub out: &'a mut NodeOut,
}

impl Ctx<'_> {
    /// Send a request and remember what it was for. False when it was not
    /// sent (too many wait, or it could not go out): nothing waits on it.
    pub fn request(
        &mut self,
        to: SocketAddr,
        peer: Option<Id>,
        what: Waiting,
        make: impl FnOnce(u32) -> PeerMsg,
    ) -> bool {
        if self.rpc.requests.len() >= MAX_PENDING {
            warn_repeated!(
                self.warnings.too_many_pending,
                self.now,
                "{MAX_PENDING} requests outstanding; not asking {to}"
            );
            return false;
        }
        let req = self.rpc.requests.next_number();
        // Only a request that reached the wire may time out: a frame we
        // could not send must never make a live peer look dead.
        if !self.send(to, &make(req)) {
            return false;
        }
        self.rpc.requests.waiting.insert(
            req,
            Pending {
                addr: to,
                peer,
                sent: self.now,
                what,
            },
        );
        true
    }

    /// Send `msg` to the peer at `to`; false (logged) when it was not sent.
    pub fn send(&mut self, to: SocketAddr, msg: &PeerMsg) -> bool {
        let now = self.now;
        if to == self.rpc.me {
            warn_repeated!(
                self.warnings.to_myself,
                now,
                "not sending {} to myself",
                msg.name()
            );
            return false;
        }
        let (sent, evicted) = self.rpc.links.send(to, msg, now, self.out);
        if let Some(evicted) = evicted {
            self.rpc.forget_closed_links();
            self.rpc.evicted.push(evicted);
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

    /// Answer a peer on the connection it asked on.
    pub fn reply(&mut self, conn: ConnId, msg: &PeerMsg) {
        reply(self.out, conn, msg);
    }
}

/// Answer a peer on the connection it asked on. Every answer we build fits
/// a frame (values are bounded at the API, node lists at MAX_NODES).
pub fn reply(out: &mut NodeOut, conn: ConnId, msg: &PeerMsg) {
    out.send_with(conn, |buf| {
        if let Err(e) = msg.write(buf) {
            debug_assert!(false, "answer too large: {e}");
            log::error!("answer {} too large: {e}", msg.name());
        }
    });
}
