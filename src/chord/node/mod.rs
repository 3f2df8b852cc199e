//! The Chord node state machine: it is handed events with the current time
//! and answers with reactor actions; it never touches a socket or a clock.
//! The periodic work (stabilize, fix fingers, check predecessor, replica
//! upkeep, timeouts) runs on one timer, every `stabilize` interval.
//!
//! The node holds its rooms and only dispatches: `Ring` (ring/: routing,
//! dead nodes, join, stabilize, fingers, leave), `Dht` (dht/: the pairs,
//! the API requests and clients, their budgets), `Rpc` (rpc.rs: links and
//! the requests waiting on peers) and the pure `Lookups` (lookup.rs) both
//! rooms start lookups on. Each room owns its state; a room never calls
//! another: what one must do for the other comes back here (a new
//! predecessor to hand pairs to, a request that failed). The events are
//! taken apart in events.rs; `state` is state.rs.

mod events;

use super::dht::Dht;
use super::lookup::Lookups;
use super::peer_wire::NodeRef;
use super::ring::Ring;
use super::routing::Routing;
use super::rpc::Rpc;
use super::store::Store;
use super::warnings::Warnings;
use crate::reactor::{CloseReason, ConnId, InputEnded, ListenerId, Protocol};
use crate::warn_repeated;
use log::debug;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub use super::actions::{LinkTag, NodeOut, Timer};
pub use super::config::Config;
pub use super::dht::{Stats, DEFAULT_CLIENT_MEMORY, MAX_BACKLOG_PER_CLIENT, MAX_OPS_PER_CLIENT};
pub use super::lookup::MAX_HOPS;
pub use super::ring::{MAX_LOST_PEERS, MAX_REJOIN_PROBES};
pub use super::rpc::MAX_PENDING;
pub use crate::util::hex;

pub const PEER_LISTENER: ListenerId = 0;
pub const API_LISTENER: ListenerId = 1;

/// Most DHT API clients served at once (default of `--max-clients`).
pub const DEFAULT_MAX_CLIENTS: usize = 1024;
/// Most ring peers that may connect to us at once: their own room, which
/// API clients cannot take.
pub const MAX_PEERS_IN: usize = 1024;

/// What a connection is to the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    PeerIn,
    PeerOut,
    Api,
}

pub struct Node {
    cfg: Config,
    ring: Ring,
    dht: Dht,
    rpc: Rpc,
    lookups: Lookups,
    warnings: Warnings,
    /// Timer::Ready is set.
    ready_timer: bool,
}

/// The context a room talks to peers through, borrowing only the node's
/// `rpc` and `warnings` (a macro, so the rooms stay free to be borrowed
/// beside it).
macro_rules! cx {
    ($node:ident, $now:expr, $out:expr) => {
        $crate::chord::rpc::Ctx {
            now: $now,
            rpc: &mut $node.rpc,
            warnings: &mut $node.warnings,
            out: $out,
        }
    };
}
pub(super) use cx;

impl Node {
    pub fn new(cfg: Config) -> Node {
        let me = NodeRef {
            id: cfg.id,
            addr: cfg.listen,
        };
        Node {
            ring: Ring::new(me, cfg.successors, cfg.join),
            dht: Dht::new(&cfg),
            rpc: Rpc::new(cfg.listen),
            lookups: Lookups::default(),
            warnings: Warnings::default(),
            ready_timer: false,
            cfg,
        }
    }

    pub fn me(&self) -> NodeRef {
        self.ring.me()
    }

    pub fn routing(&self) -> &Routing {
        self.ring.routing()
    }

    pub fn ring(&self) -> &Ring {
        &self.ring
    }

    pub fn store(&self) -> &Store {
        self.dht.store()
    }

    #[cfg(test)]
    pub(super) fn store_mut(&mut self) -> &mut Store {
        self.dht.store_mut()
    }

    /// Send a request as the rooms do (tests of what waits on what).
    #[cfg(test)]
    pub(super) fn request(
        &mut self,
        now: Instant,
        to: SocketAddr,
        peer: Option<super::id::Id>,
        what: super::rpc::Waiting,
        make: impl FnOnce(u32) -> super::peer_wire::PeerMsg,
        out: &mut NodeOut,
    ) -> bool {
        cx!(self, now, out).request(to, peer, what, make)
    }

    /// How many requests wait for an answer.
    pub fn pending_requests(&self) -> usize {
        self.rpc.pending_count()
    }

    pub fn dht(&self) -> &Dht {
        &self.dht
    }

    pub fn stats(&self) -> &Stats {
        self.dht.stats()
    }

    pub fn reset_stats(&mut self) {
        self.dht.reset_stats();
    }

    pub fn is_joined(&self) -> bool {
        self.ring.is_joined()
    }

    pub fn is_stopped(&self) -> bool {
        self.ring.is_stopped()
    }

    /// The `state` JSON.
    pub fn state_json(&self, now: Instant) -> serde_json::Value {
        super::state::State::gather(&self.cfg, &self.ring, &self.dht, self.rpc.link_count(), now)
            .to_json()
    }

    /// What a connection is, if the node knows it.
    fn role(&self, conn: ConnId) -> Option<Role> {
        if self.dht.has_client(conn) {
            return Some(Role::Api);
        }
        self.rpc.role(conn).map(|role| match role {
            super::rpc::PeerRole::In => Role::PeerIn,
            super::rpc::PeerRole::Out => Role::PeerOut,
        })
    }

    /// The end of every event: the requests of links closed while sending
    /// fail now, then clients with room start their backlogged requests.
    fn settle(&mut self, now: Instant, out: &mut NodeOut) {
        while let Some(addr) = self.rpc.take_evicted() {
            self.link_failed(now, addr, out);
        }
    }

    fn pump_backlogs(&mut self, now: Instant, out: &mut NodeOut) {
        self.settle(now, out);
        let mut cx = cx!(self, now, out);
        self.dht
            .pump_backlogs(&self.ring, &mut self.lookups, &mut cx);
        self.settle(now, out);
    }

    fn maybe_finish_leaving(&mut self, now: Instant, out: &mut NodeOut) {
        self.ring.maybe_finish_leaving(&mut cx!(self, now, out));
    }

    /// `quit`: hand every pair to the successor, tell both neighbours, and
    /// stop once that is on the wire.
    fn leave(&mut self, now: Instant, out: &mut NodeOut) {
        if self.ring.is_leaving() {
            return;
        }
        let mut cx = cx!(self, now, out);
        if let Some(successor) = self.ring.start_leaving(now, self.dht.store().len()) {
            self.dht.hand_all_to(successor, &mut cx);
            self.ring.say_goodbye(successor, &mut cx);
        }
        self.ring.maybe_finish_leaving(&mut cx);
        self.settle(now, out);
    }
}

/// The events the reactor (or the simulator) reports, each with its time.
impl Protocol for Node {
    type Timer = Timer;
    type Tag = LinkTag;

    fn on_start(&mut self, now: Instant, out: &mut NodeOut) {
        out.print(format!(
            "chord node {} listening: peers {} api {}",
            self.cfg.id.to_hex(),
            self.cfg.listen,
            self.cfg.api
        ));
        out.timer(self.cfg.stabilize, Timer::Tick);
        if self.cfg.join.is_some() {
            self.ring
                .start_join(&mut self.lookups, &mut cx!(self, now, out));
            self.settle(now, out);
        } else {
            out.print("started a new ring (no --join); others join through this node");
        }
    }

    fn on_accept(
        &mut self,
        now: Instant,
        listener: ListenerId,
        conn: ConnId,
        peer: SocketAddr,
        out: &mut NodeOut,
    ) {
        let (role, open, limit, what) = if listener == API_LISTENER {
            (
                Role::Api,
                self.dht.client_count(),
                self.cfg.max_clients,
                "DHT clients",
            )
        } else {
            (
                Role::PeerIn,
                self.rpc.peers_in(),
                MAX_PEERS_IN,
                "ring peers",
            )
        };
        if open >= limit {
            warn_repeated!(
                self.warnings.refused_connection,
                now,
                "refusing {peer}: {limit} {what} already connected"
            );
            out.close(conn);
            return;
        }
        debug!("accepted {peer} as {role:?} connection {conn}");
        if role == Role::Api {
            self.dht.add_client(conn);
        } else {
            self.rpc.accepted(conn);
        }
    }

    fn on_connected(&mut self, now: Instant, tag: LinkTag, conn: ConnId, out: &mut NodeOut) {
        self.rpc.connected(tag, conn, out);
        self.maybe_finish_leaving(now, out);
        self.pump_backlogs(now, out);
    }

    fn on_connect_failed(&mut self, now: Instant, tag: LinkTag, error: &str, out: &mut NodeOut) {
        if let Some(addr) = self.rpc.connect_failed(tag) {
            debug!("cannot reach {addr}: {error}");
            self.ring.note_join_error(addr, || error.to_string());
            self.link_failed(now, addr, out);
        }
        self.maybe_finish_leaving(now, out);
        self.pump_backlogs(now, out);
    }

    fn on_closed(&mut self, now: Instant, conn: ConnId, reason: &CloseReason, out: &mut NodeOut) {
        if self.dht.has_client(conn) {
            let mut cx = cx!(self, now, out);
            self.dht
                .api_closed(conn, &self.ring, &mut self.lookups, &mut cx);
        } else if let Some(addr) = self.rpc.closed(conn) {
            debug!("link to {addr} closed: {reason}");
            self.ring
                .note_join_error(addr, || format!("the connection was {reason}"));
            self.link_failed(now, addr, out);
        }
        self.pump_backlogs(now, out);
    }

    /// Whole frames are decoded and handled; anything malformed closes the
    /// connection (the error goes back to the reactor, which logs it).
    fn on_data(
        &mut self,
        now: Instant,
        conn: ConnId,
        data: &[u8],
        out: &mut NodeOut,
    ) -> Result<usize, String> {
        let role = self.role(conn).ok_or("data on an unknown connection")?;
        if role == Role::Api && self.dht.is_finishing(conn) {
            return Ok(data.len()); // after its last request: ignored
        }
        self.dht.feeding(Some(conn));
        let result = self.frames(now, conn, role, data, out);
        if role == Role::Api {
            self.pump_backlogs(now, out);
        } else {
            self.settle(now, out);
            if self.dht.has_ready() && !self.ready_timer {
                // Requests of clients that got room go out from a timer: sent
                // from here, a congested peer they go to would pause this link.
                self.ready_timer = true;
                out.timer(Duration::ZERO, Timer::Ready);
            }
        }
        self.dht.feeding(None);
        match result {
            Err(why) if role == Role::Api => {
                // The requests before the bad frame are still answered
                // (lookups may be in flight); then the node closes.
                warn_repeated!(
                    self.warnings.bad_request,
                    now,
                    "closing DHT client {conn}: {why}"
                );
                let mut cx = cx!(self, now, out);
                self.dht
                    .client_finished_sending(conn, &self.ring, &mut self.lookups, &mut cx);
                self.settle(now, out);
                Ok(data.len())
            }
            other => other,
        }
    }

    /// The peer on `conn` sent its last byte (half-close or close). A client
    /// keeps its connection until every request it made is answered, and
    /// the node closes it then (at once when none is left); a ring
    /// connection closes once what is queued is written.
    fn on_peer_finished_sending(
        &mut self,
        now: Instant,
        conn: ConnId,
        out: &mut NodeOut,
    ) -> InputEnded {
        if !self.dht.has_client(conn) {
            return InputEnded::CloseWhenFlushed;
        }
        let mut cx = cx!(self, now, out);
        self.dht
            .client_finished_sending(conn, &self.ring, &mut self.lookups, &mut cx);
        self.settle(now, out);
        InputEnded::KeepOpen
    }

    fn on_timer(&mut self, now: Instant, timer: Timer, out: &mut NodeOut) {
        match timer {
            Timer::Pump => {
                self.dht.unblock();
                self.pump_backlogs(now, out);
            }
            Timer::Ready => {
                self.ready_timer = false;
                self.pump_backlogs(now, out);
            }
            Timer::Outbox => self.dht.send_outbox(None, &mut cx!(self, now, out)),
            Timer::Tick if !self.ring.is_stopped() => {
                self.tick(now, out);
                self.settle(now, out);
                self.warnings.flush(now);
                self.pump_backlogs(now, out);
                out.timer(self.cfg.stabilize, Timer::Tick);
            }
            Timer::Tick => {}
        }
    }

    fn on_stdin_line(&mut self, now: Instant, line: &str, out: &mut NodeOut) {
        match line.trim() {
            "state" => out.print(self.state_json(now).to_string()),
            "quit" => self.leave(now, out),
            "" => {}
            other => out.print(format!("unknown command '{other}' (state, quit)")),
        }
    }
}
