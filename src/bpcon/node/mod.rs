//! The replica on the reactor: peer links (authenticated by a
//! challenge-response handshake, see `messages`), the client API, the
//! write-ahead log and the clock tick. Everything BPCon decides is in
//! [`Replica`]; this module moves bytes.
//!
//! Its rooms: `links` (the handshake, MACs and peer frames, dialling and
//! the quorum-joined line), `client` (the client API), and this file,
//! the glue: the node's state, carrying out the replica's output, the
//! `state` line and the reactor's events.

mod client;
mod links;
#[cfg(test)]
mod tests;

use links::{fresh_nonce, Link};

use super::api::ApiMsg;
use super::crypto::{PrivateKey, PublicKey};
use super::mac::LinkMac;
use super::messages::PeerMsg;
use super::replica::{Dest, Output, Replica, Reply, TICK_MS};
use super::storage::Storage;
use crate::cli_words::plain_error;
use crate::logging::RepeatedWarning;
use crate::reactor::{CloseReason, ConnId, ListenerId, Out, Protocol};
use log::{error, info, warn};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub const PEER_LISTENER: ListenerId = 0;
pub const API_LISTENER: ListenerId = 1;

/// A replica node's timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// The replica's periodic tick (time-outs, retries, handshake expiry).
    Tick,
    /// Dial replica `peer` again.
    Reconnect(usize),
}

/// What an outgoing connection is for: the index of the replica dialled.
pub type PeerIndex = usize;

/// The actions list the node fills.
type NodeOut = Out<Node>;
const RECONNECT_AFTER: Duration = Duration::from_millis(300);
/// Keys and values in a dump frame stay well under a frame.
const MAX_DUMP_FIELD: usize = 16 * 1024;
/// A link whose handshake has not completed after this many ticks (10 s)
/// is closed: strangers cannot hold the peer port's connections.
const HANDSHAKE_TICKS: u64 = 1000;
/// A peer we cannot reach is reported at most this often.
const UNREACHABLE_EVERY: Duration = Duration::from_secs(5);

/// Something that sits between the replica and its links and may rewrite
/// what the replica sends: the hook a test adversary
/// ([`super::byzantine::Adversary`]) uses. Honest nodes have none.
pub trait OutputFilter {
    /// Rewrite `sends` (the replica is at `slot`; `on_tick` on a clock tick).
    fn filter(&mut self, slot: u64, sends: &mut Vec<(Dest, PeerMsg)>, on_tick: bool);
    /// What it does, for the `state` line.
    fn name(&self) -> &'static str;
}

pub struct Node {
    replica: Replica,
    storage: Option<Box<dyn Storage>>,
    /// Nonces and link keys: from the operating system's random source,
    /// or from a seed in the simulator (see [`Node::with_seed`]).
    rng: StdRng,
    filter: Option<Box<dyn OutputFilter>>,
    peers: Vec<Option<SocketAddr>>,
    key: PrivateKey,
    keys: Vec<PublicKey>,
    links: HashMap<ConnId, Link>,
    outgoing: Vec<Option<ConnId>>,
    clients: HashMap<u64, ConnId>,
    next_client: u64,
    /// Time spent in fsync and in handling events, and since start (for the
    /// benchmark's breakdown). These are the one wall-clock reads here on
    /// purpose: they measure what the work costs on this machine, never
    /// decide anything, and no check or transcript reads them.
    fsync_us: u64,
    busy_us: u64,
    started: Instant,
    failed: bool,
    /// Links to a quorum are up (announced once on standard output).
    joined: bool,
    announced_join: bool,
    /// Rate limits: per unreachable peer, and per kind of closed link.
    unreachable: Vec<RepeatedWarning>,
    closing: HashMap<String, RepeatedWarning>,
    /// Links still in their handshake, with the tick it started.
    handshakes: HashMap<ConnId, u64>,
    /// MAC state of our authenticated link to each peer, and of each
    /// authenticated link from a peer.
    send_macs: Vec<Option<LinkMac>>,
    recv_macs: HashMap<ConnId, LinkMac>,
    /// Records written since the last fsync that what is held depends on:
    /// the round's one fsync (`on_round_end`) takes them to disk.
    unsynced: bool,
    /// Messages and replies waiting for that fsync, in the order the
    /// replica made them.
    held: Vec<(Dest, PeerMsg)>,
    held_replies: Vec<Reply>,
}

impl Node {
    pub fn new(
        replica: Replica,
        storage: Option<Box<dyn Storage>>,
        peers: Vec<Option<SocketAddr>>,
        key: &PrivateKey,
        keys: Vec<PublicKey>,
    ) -> Node {
        let n = peers.len();
        Node {
            replica,
            storage,
            rng: StdRng::from_entropy(),
            filter: None,
            peers,
            key: key.clone(),
            keys,
            links: HashMap::new(),
            outgoing: vec![None; n],
            clients: HashMap::new(),
            next_client: 1,
            fsync_us: 0,
            busy_us: 0,
            started: Instant::now(),
            failed: false,
            joined: false,
            announced_join: false,
            unreachable: vec![RepeatedWarning::new(UNREACHABLE_EVERY); n],
            closing: HashMap::new(),
            handshakes: HashMap::new(),
            send_macs: vec![None; n],
            recv_macs: HashMap::new(),
            unsynced: false,
            held: Vec::new(),
            held_replies: Vec::new(),
        }
    }

    /// Draw nonces and link keys from `seed` (deterministic runs in the
    /// simulator; a real replica keeps the operating system's randomness).
    pub fn with_seed(mut self, seed: u64) -> Node {
        self.rng = StdRng::seed_from_u64(seed);
        self
    }

    /// Pass everything the replica sends through `filter` (tests only: a
    /// Byzantine adversary).
    pub fn with_filter(mut self, filter: Box<dyn OutputFilter>) -> Node {
        self.filter = Some(filter);
        self
    }

    pub fn replica(&self) -> &Replica {
        &self.replica
    }

    /// Replace the output filter (tests).
    #[cfg(test)]
    pub fn set_filter(&mut self, filter: Box<dyn OutputFilter>) {
        self.filter = Some(filter);
    }

    #[cfg(test)]
    pub fn replica_mut(&mut self) -> &mut Replica {
        &mut self.replica
    }

    /// The peers this node has an authenticated link to (it sends on it).
    pub fn links_up(&self) -> Vec<usize> {
        (0..self.outgoing.len())
            .filter(|&p| self.outgoing[p].is_some())
            .collect()
    }

    /// Close links whose handshake did not complete in time.
    fn name(&self, peer: usize) -> &str {
        &self.replica.group().names[peer]
    }

    /// Carry out the replica's output. Its records are written at once but
    /// fsync'd once per poll round (`on_round_end`), for every event of the
    /// round together: what depends on them (everything from the first
    /// record that must be durable on) is held until then. The messages
    /// made before that record depend on none of this turn's (a stable
    /// leader's 1c, made before its own relay is logged) and leave now,
    /// unless earlier ones are still held (order is kept).
    fn flush(&mut self, out: &mut NodeOut, on_tick: bool) {
        let Output {
            persist,
            sync,
            free,
            mut sends,
            replies,
        } = self.replica.take_output();
        let mut free = if sync {
            free.min(sends.len())
        } else {
            sends.len()
        };
        if let Some(filter) = &mut self.filter {
            filter.filter(self.replica.slot(), &mut sends, on_tick);
            // The rewritten list has no known prefix: hold all of it.
            free = if sync { 0 } else { sends.len() };
        }
        // Records of an earlier turn still wait for the fsync: everything
        // made now may depend on them.
        let waiting = self.unsynced;
        if let Some(storage) = &mut self.storage {
            if let Err(e) = storage.append(&persist) {
                // Answering without the record on disk could break a promise.
                error!("{e}; stopping");
                self.failed = true;
                out.stop();
                return;
            }
            self.unsynced |= sync;
        }
        if !self.unsynced {
            self.send_all(sends, out);
            self.send_replies(replies, out);
            return;
        }
        if waiting {
            free = 0;
        }
        let later = sends.split_off(free);
        self.send_all(sends, out);
        self.held.extend(later);
        self.held_replies.extend(replies);
    }

    /// The end of a poll round: one fsync for the round's records, then
    /// what waited for it.
    fn release_held(&mut self, out: &mut NodeOut) {
        if !self.unsynced {
            return;
        }
        if let Some(storage) = &mut self.storage {
            let started = Instant::now();
            if let Err(e) = storage.sync() {
                error!("{e}; stopping");
                self.failed = true;
                out.stop();
                return;
            }
            self.fsync_us += started.elapsed().as_micros() as u64;
        }
        self.unsynced = false;
        let sends = std::mem::take(&mut self.held);
        let replies = std::mem::take(&mut self.held_replies);
        self.send_all(sends, out);
        self.send_replies(replies, out);
    }

    fn send_all(&mut self, sends: Vec<(Dest, PeerMsg)>, out: &mut NodeOut) {
        for (dest, msg) in sends {
            let frame = match msg.to_frame() {
                Ok(f) => f,
                Err(e) => {
                    warn!("not sending a message: {e}");
                    continue;
                }
            };
            let peers = match dest {
                Dest::Peer(p) => p..p + 1,
                Dest::All => 0..self.outgoing.len(),
            };
            for p in peers {
                if let (Some(conn), Some(mac)) = (self.outgoing[p], self.send_macs[p].as_mut()) {
                    out.send(conn, &frame);
                    if let Ok(tag) = (PeerMsg::Mac {
                        tag: mac.tag(&frame),
                    })
                    .to_frame()
                    {
                        out.send(conn, &tag);
                    }
                }
            }
        }
    }

    fn send_replies(&mut self, replies: Vec<Reply>, out: &mut NodeOut) {
        for reply in replies {
            if let Some(&conn) = self.clients.get(&reply.client) {
                let msg = ApiMsg::Result {
                    client: reply.id.client,
                    seq: reply.id.seq,
                    code: reply.code,
                    message: reply.message,
                };
                out.send_with(conn, |o| msg.encode(o));
            }
        }
    }

    pub fn failed(&self) -> bool {
        self.failed
    }

    #[cfg(test)]
    pub fn state_line_for_tests(&self) -> String {
        self.state_line()
    }

    fn state_line(&self) -> String {
        crate::bpcon::state::State {
            replica: self.replica.state(),
            fsync_us: self.fsync_us,
            busy_us: self.busy_us,
            uptime_us: self.started.elapsed().as_micros() as u64,
            links: (0..self.outgoing.len())
                .filter(|&p| self.outgoing[p].is_some())
                .map(|p| self.name(p).to_string())
                .collect(),
            byzantine: self.filter.as_ref().map(|f| f.name()),
        }
        .to_json()
        .to_string()
    }
}

impl Node {
    fn flush_warnings(&mut self, now: Instant) {
        for (peer, limiter) in self.unreachable.iter_mut().enumerate() {
            if let Some(held) = limiter.flush(now) {
                warn!(
                    "still cannot reach replica {} ({held} more failed attempts)",
                    self.replica.group().names[peer]
                );
            }
        }
        for (who, limiter) in self.closing.iter_mut() {
            if let Some(held) = limiter.flush(now) {
                warn!("closed {held} more links with {who} since the last report");
            }
        }
    }
}

impl Protocol for Node {
    type Timer = Timer;
    type Tag = PeerIndex;

    fn on_start(&mut self, _now: Instant, out: &mut Out<Self>) {
        for peer in 0..self.peers.len() {
            self.connect(peer, out);
        }
        self.check_joined(out);
        out.timer(Duration::from_millis(TICK_MS), Timer::Tick);
    }

    fn on_accept(
        &mut self,
        _now: Instant,
        listener: ListenerId,
        conn: ConnId,
        peer: SocketAddr,
        out: &mut Out<Self>,
    ) {
        let link = if listener == API_LISTENER {
            let handle = self.next_client;
            self.next_client += 1;
            self.clients.insert(handle, conn);
            info!("client {peer} connected");
            Link::Client(handle)
        } else {
            let nonce = fresh_nonce(&mut self.rng);
            if let Ok(frame) = (PeerMsg::Challenge { nonce }).to_frame() {
                out.send(conn, &frame);
            }
            self.handshakes.insert(conn, self.replica.tick());
            Link::Challenged(nonce)
        };
        self.links.insert(conn, link);
    }

    fn on_connected(&mut self, _now: Instant, tag: Self::Tag, conn: ConnId, _out: &mut Out<Self>) {
        let peer = tag;
        info!(
            "connected to {}; waiting for its challenge",
            self.name(peer)
        );
        self.handshakes.insert(conn, self.replica.tick());
        self.links.insert(conn, Link::Dialing(peer));
    }

    fn on_connect_failed(
        &mut self,
        now: Instant,
        tag: Self::Tag,
        error: &str,
        out: &mut Out<Self>,
    ) {
        let peer = tag;
        if let Some(addr) = self.peers.get(peer).copied().flatten() {
            let name = self.replica.group().names[peer].clone();
            crate::warn_repeated!(
                self.unreachable[peer],
                now,
                "cannot reach replica {name} at {addr}: {}; retrying every {} ms",
                plain_error(error),
                RECONNECT_AFTER.as_millis()
            );
        }
        out.timer(RECONNECT_AFTER, Timer::Reconnect(peer));
    }

    fn on_data(
        &mut self,
        now: Instant,
        conn: ConnId,
        data: &[u8],
        out: &mut Out<Self>,
    ) -> Result<usize, String> {
        let started = Instant::now();
        let Some(&link) = self.links.get(&conn) else {
            return Ok(data.len());
        };
        let result = match link {
            Link::Client(handle) => self.on_client_data(handle, conn, data, out),
            _ => self.on_peer_data(conn, data, out),
        };
        self.flush(out, false);
        self.busy_us += started.elapsed().as_micros() as u64;
        if let Err(why) = &result {
            let who = match link {
                Link::From(p) | Link::To(p) => format!("replica {}", self.name(p)),
                Link::Dialing(p) | Link::Greeted(p, _, _, _) => {
                    format!("the replica at {}'s address", self.name(p))
                }
                Link::Client(_) => "a client".into(),
                Link::Challenged(_) => "an unauthenticated peer".into(),
            };
            // Bounded: one limiter per replica name and per kind of stranger.
            let limiter = self
                .closing
                .entry(who.clone())
                .or_insert_with(RepeatedWarning::per_second);
            crate::warn_repeated!(limiter, now, "closing the link with {who}: {why}");
        }
        result
    }

    fn on_closed(&mut self, now: Instant, conn: ConnId, reason: &CloseReason, out: &mut Out<Self>) {
        self.handshakes.remove(&conn);
        self.recv_macs.remove(&conn);
        match self.links.remove(&conn) {
            Some(Link::To(peer)) => {
                info!("link to {} down ({reason})", self.name(peer));
                if self.outgoing[peer] == Some(conn) {
                    self.outgoing[peer] = None;
                    self.send_macs[peer] = None;
                    out.timer(RECONNECT_AFTER, Timer::Reconnect(peer));
                }
                self.check_joined(out);
            }
            Some(Link::Dialing(peer)) | Some(Link::Greeted(peer, _, _, _)) => {
                let addr = self.peers[peer].map(|a| a.to_string()).unwrap_or_default();
                let name = self.name(peer).to_string();
                crate::warn_repeated!(
                    self.unreachable[peer],
                    now,
                    "cannot reach replica {name} at {addr}: the handshake did not complete ({reason}); retrying every {} ms",
                    RECONNECT_AFTER.as_millis()
                );
                if self.outgoing[peer].is_none() {
                    out.timer(RECONNECT_AFTER, Timer::Reconnect(peer));
                }
            }
            Some(Link::Client(handle)) => {
                self.clients.remove(&handle);
            }
            _ => {}
        }
    }

    fn on_timer(&mut self, now: Instant, timer: Timer, out: &mut Out<Self>) {
        if timer == Timer::Tick {
            let started = Instant::now();
            self.replica.on_tick();
            self.flush(out, true);
            if self.replica.tick().is_multiple_of(100) {
                self.flush_warnings(now);
                self.expire_handshakes(now, out);
            }
            self.busy_us += started.elapsed().as_micros() as u64;
            out.timer(Duration::from_millis(TICK_MS), Timer::Tick);
        } else if let Timer::Reconnect(peer) = timer {
            if peer < self.outgoing.len() && self.outgoing[peer].is_none() {
                self.connect(peer, out);
            }
        }
    }

    fn on_stdin_line(&mut self, _now: Instant, line: &str, out: &mut Out<Self>) {
        // (the `state` line's "links" lists authenticated links only)
        match line.trim() {
            "state" => out.print(self.state_line()),
            "quit" => out.stop(),
            "" => {}
            other => out.print(format!("unknown command '{other}': state, quit")),
        }
    }

    fn on_stdin_closed(&mut self, _now: Instant, _out: &mut Out<Self>) {}

    fn on_round_end(&mut self, _now: Instant, out: &mut Out<Self>) {
        if self.unsynced {
            let started = Instant::now();
            self.release_held(out);
            self.busy_us += started.elapsed().as_micros() as u64;
        }
    }
}
