//! The Chord node state machine: it is handed events with the current time
//! and answers with reactor `Actions`; it never touches a socket or a clock.
//! The periodic work (stabilize, fix fingers, check predecessor, replica
//! upkeep, timeouts) runs on one timer, every `stabilize` interval.
//!
//! This file holds the node's state and dispatches events; the work is in
//! sibling files, each one job: `rpc.rs` (requests to peers, what they
//! wait on, timeouts), `maintenance.rs` (the ring: join, stabilize,
//! fingers, dead nodes, leave), `node_lookup.rs` (starting lookups and
//! acting on their results; the lookup logic itself is the pure `Lookups`
//! of `lookup.rs`), `clients.rs` (API connections and their backlogs),
//! `dht.rs` (the API requests), `pairs.rs` (pairs between nodes: copies,
//! hand-over) and `state.rs` (the `state` JSON).

use super::api_wire::{ApiMsg, Key};
use super::clients::ApiClient;
use super::id::Id;
use super::links::Links;
use super::peer_wire::{NodeRef, PeerMsg};
use super::routing::Routing;
use super::rpc::{reply, Pending, Requests, Waiting};
use super::store::Store;
use super::warnings::Warnings;
use crate::reactor::{CloseReason, ConnId, InputEnded, ListenerId, Out, Protocol};
use crate::warn_repeated;
use crate::wire::split_frame;
use log::{debug, info};
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub const PEER_LISTENER: ListenerId = 0;
pub const API_LISTENER: ListenerId = 1;

/// A node's timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Timer {
    /// Stabilize, fix fingers, check the predecessor, expire keys.
    Tick,
    /// Starts backlogged GETs once the output budget has room again.
    Pump,
    /// Sends the answers that completed while another connection's input
    /// was being handled (see `Node::outbox`).
    Outbox,
    /// Starts backlogged requests of clients that got room during a peer's input.
    Ready,
}

/// What an outgoing connection is for: the number `Links` gave the dial.
pub type LinkTag = u64;

/// The actions list the node (and every file of it) fills.
pub type NodeOut = Out<Node>;

/// Most DHT API clients served at once (default of `--max-clients`).
pub const DEFAULT_MAX_CLIENTS: usize = 1024;
/// Most ring peers that may connect to us at once: their own room, which
/// API clients cannot take.
pub const MAX_PEERS_IN: usize = 1024;
/// Most requests one API connection has in flight; past it, what it sends
/// waits in its backlog (read, and carried out in order as answers go out).
pub const MAX_OPS_PER_CLIENT: usize = 512;
/// Most bytes of requests one API connection may have waiting in its
/// backlog; a client further ahead of its answers is disconnected (the
/// PUTs already read are still carried out).
pub const MAX_BACKLOG_PER_CLIENT: usize = 4 << 20;
/// Default node-wide bound on what API clients can make the node hold
/// (`--max-client-memory`), applied to each of: the requests waiting in all
/// backlogs together, and the answers produced for them (the output budget).
pub const DEFAULT_CLIENT_MEMORY: usize = 64 << 20;
/// Most requests this node waits on at once.
pub const MAX_PENDING: usize = 16_384;
/// Most dead peers remembered to be asked again after a partition.
pub const MAX_LOST_PEERS: usize = 64;
/// How often a lost peer is asked for our successor before we give up on
/// it (one probe per spell in `dead`, max(30·T, 3 s): about a minute at
/// most by default).
pub const MAX_REJOIN_PROBES: u8 = 20;
pub use super::lookup::MAX_HOPS;

pub use super::config::Config;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    PeerIn,
    PeerOut,
    Api,
}

#[derive(Debug, Default, Clone)]
pub struct Stats {
    /// Lookups made for DHT API requests, by path length in hops.
    pub hops_histogram: Vec<u64>,
    pub lookups_failed: u64,
    pub gets_found: u64,
    pub gets_failed: u64,
    pub puts: u64,
}

impl Stats {
    pub fn record_hops(&mut self, hops: u32) {
        let slot = hops.min(MAX_HOPS) as usize;
        if self.hops_histogram.len() <= slot {
            self.hops_histogram.resize(slot + 1, 0);
        }
        self.hops_histogram[slot] += 1;
    }
}

pub struct Node {
    pub(super) cfg: Config,
    pub(super) routing: Routing,
    pub(super) store: Store,
    /// Stamps the versions of the values this node accepts PUTs for.
    pub(super) clock: super::version::Clock,
    pub(super) links: Links,
    pub(super) roles: BTreeMap<ConnId, Role>,
    pub(super) requests: Requests,
    pub(super) lookups: super::lookup::Lookups,
    pub(super) ops: BTreeMap<u64, super::dht::ApiOp>,
    pub(super) next_op: u64,
    pub(super) clients: BTreeMap<ConnId, ApiClient>,
    pub(super) next_client: u64,
    /// Clients that may start backlogged requests now.
    pub(super) ready: Vec<ConnId>,
    /// Bytes held in every client's backlog.
    pub(super) backlog_total: usize,
    /// Bounds the answers the node produces for clients (node-wide).
    pub(super) budget: super::output_budget::OutputBudget,
    /// Clients waiting for the budget; Timer::Pump is set while any wait.
    pub(super) blocked: Vec<ConnId>,
    /// The connection whose input is being handled now, if any.
    pub(super) feeding: Option<ConnId>,
    /// Answers for clients that completed while another connection's input
    /// was handled (a peer's FETCH_REPLY, say). The reactor pauses the input
    /// that produced output for a congested connection; sent from there, a
    /// client that does not read would pause a ring link. They go out from
    /// Timer::Outbox (zero delay), which pauses nobody.
    pub(super) outbox: Vec<(ConnId, u64, Vec<u8>)>,
    /// Timer::Ready is set.
    pub(super) ready_timer: bool,
    pub(super) warnings: Warnings,
    /// Why the last join attempt failed, for the warning.
    pub(super) join_error: Option<String>,
    /// Nodes found dead, and when: kept out of lists learnt from others.
    pub(super) dead: BTreeMap<Id, Instant>,
    /// Where the nodes found dead were, to ask them once more when their
    /// time in `dead` is over (at most MAX_LOST_PEERS).
    pub(super) lost_peers: BTreeMap<Id, (SocketAddr, u8)>,
    pub(super) joined: bool,
    pub(super) join_lookup: Option<u64>,
    pub(super) stabilizing: bool,
    pub(super) pinging: bool,
    pub(super) fixing_finger: Option<u64>,
    pub(super) next_finger: usize,
    pub(super) ticks: u64,
    /// Stale copies answered with ours since the last tick (bounded: a
    /// peer sending tiny old copies must not make us send big values back
    /// without end).
    pub(super) repairs: usize,
    /// (replica holders, predecessor) when our keys were last copied out.
    pub(super) replicated_for: (Vec<Id>, Option<Id>),
    pub(super) leaving_since: Option<Instant>,
    pub(super) stopped: bool,
    pub stats: Stats,
}

impl Node {
    pub fn new(cfg: Config) -> Node {
        let me = NodeRef {
            id: cfg.id,
            addr: cfg.listen,
        };
        let budget = super::output_budget::OutputBudget::new(cfg.client_memory);
        Node {
            routing: Routing::new(me, cfg.successors),
            joined: cfg.join.is_none(),
            clock: super::version::Clock::new(cfg.wall),
            cfg,
            store: Store::default(),
            links: Links::default(),
            roles: BTreeMap::new(),
            requests: Requests::default(),
            lookups: super::lookup::Lookups::default(),
            ops: BTreeMap::new(),
            next_op: 0,
            clients: BTreeMap::new(),
            next_client: 0,
            ready: Vec::new(),
            backlog_total: 0,
            budget,
            blocked: Vec::new(),
            feeding: None,
            outbox: Vec::new(),
            ready_timer: false,
            warnings: Warnings::default(),
            join_error: None,
            dead: BTreeMap::new(),
            lost_peers: BTreeMap::new(),
            join_lookup: None,
            stabilizing: false,
            pinging: false,
            fixing_finger: None,
            next_finger: 0,
            ticks: 0,
            repairs: 0,
            replicated_for: (Vec::new(), None),
            leaving_since: None,
            stopped: false,
            stats: Stats::default(),
        }
    }

    pub fn me(&self) -> NodeRef {
        self.routing.me
    }

    pub fn routing(&self) -> &Routing {
        &self.routing
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn is_joined(&self) -> bool {
        self.joined
    }

    // ---- events ---------------------------------------------------------

    /// Handle every whole frame of `data`; how many bytes they took.
    fn frames(
        &mut self,
        now: Instant,
        conn: ConnId,
        role: Role,
        data: &[u8],
        out: &mut NodeOut,
    ) -> Result<usize, String> {
        let mut used = 0;
        while let Some(frame) = split_frame(&data[used..]).map_err(|e| e.to_string())? {
            used += frame.len;
            match role {
                Role::Api => ApiMsg::decode(frame.kind, frame.body)
                    .and_then(|msg| self.on_api_message(now, conn, msg, out))?,
                Role::PeerIn | Role::PeerOut => PeerMsg::decode(frame.kind, frame.body)
                    .and_then(|msg| self.on_peer_message(now, conn, role, msg, out))?,
            }
        }
        Ok(used)
    }

    // ---- peer messages ----------------------------------------------------

    fn on_peer_message(
        &mut self,
        now: Instant,
        conn: ConnId,
        role: Role,
        msg: PeerMsg,
        out: &mut NodeOut,
    ) -> Result<(), String> {
        match msg {
            PeerMsg::FindSuccessor {
                req,
                target,
                exclude,
            } => {
                let (found, nodes) = self.routing.answer_find(&target, &exclude);
                reply(out, conn, &PeerMsg::FindReply { req, found, nodes });
            }
            PeerMsg::GetNeighbours { req } => {
                let answer = PeerMsg::Neighbours {
                    req,
                    predecessor: self.routing.predecessor,
                    successors: self.routing.successors.clone(),
                };
                reply(out, conn, &answer);
            }
            PeerMsg::Notify { node } => self.on_notify(now, node, out),
            PeerMsg::Store {
                req,
                flags,
                hops_left,
                ttl_ms,
                stamp,
                key,
                value,
            } => {
                self.on_store(now, conn, flags, hops_left, ttl_ms, stamp, key, value, out);
                if req != 0 {
                    reply(out, conn, &PeerMsg::StoreAck { req });
                }
            }
            PeerMsg::Fetch { req, key } => {
                let value = self
                    .store
                    .get(&key, now)
                    .map(|item| (item.stamp, item.value.clone()));
                reply(out, conn, &PeerMsg::FetchReply { req, value });
            }
            PeerMsg::Ping { req } => reply(out, conn, &PeerMsg::Pong { req }),
            PeerMsg::Leaving {
                node,
                predecessor,
                successors,
            } => self.on_leaving(now, node, predecessor, successors, out),
            PeerMsg::FindReply { req, .. }
            | PeerMsg::Neighbours { req, .. }
            | PeerMsg::StoreAck { req }
            | PeerMsg::FetchReply { req, .. }
            | PeerMsg::Pong { req } => {
                if role != Role::PeerOut {
                    return Err("an answer on a connection we did not ask on".into());
                }
                let from = self.links.peer_of(conn);
                match self.requests.take_answer(req, from) {
                    Some(pending) => self.on_answer(now, pending, msg, out),
                    None => debug!("late or unknown answer {req} from {from:?}"),
                }
            }
        }
        Ok(())
    }

    fn on_answer(&mut self, now: Instant, pending: Pending, msg: PeerMsg, out: &mut NodeOut) {
        match (pending.what, msg) {
            (Waiting::Find { lookup }, PeerMsg::FindReply { found, nodes, .. }) => {
                self.on_find_reply(now, lookup, pending.peer, found, nodes, out)
            }
            (
                Waiting::Neighbours,
                PeerMsg::Neighbours {
                    predecessor,
                    successors,
                    ..
                },
            ) => self.on_neighbours(now, pending.peer, predecessor, successors, out),
            (Waiting::Ping, PeerMsg::Pong { .. }) => self.pinging = false,
            (Waiting::Fetch { op }, PeerMsg::FetchReply { value, .. }) => {
                self.on_fetched(now, op, value, out)
            }
            (Waiting::Store { op }, PeerMsg::StoreAck { .. }) => self.on_stored(now, op),
            (what, msg) => {
                // A peer answering with the wrong kind is broken: treat as failed.
                warn_repeated!(
                    self.warnings.wrong_answer,
                    now,
                    "answer {} does not fit request {what:?}; dropping {}",
                    msg.name(),
                    pending.addr
                );
                self.drop_link(pending.addr, out);
                self.request_failed(now, pending, out);
                self.link_failed(now, pending.addr, out);
            }
        }
    }

    // ---- periodic work --------------------------------------------------------

    fn tick(&mut self, now: Instant, out: &mut NodeOut) {
        self.ticks += 1;
        self.repairs = 0;
        self.expire_requests(now, out);
        if self.leaving_since.is_some() {
            self.maybe_finish_leaving(now, out);
            return;
        }
        if !self.joined {
            if self.join_lookup.is_none() {
                self.start_join(now, out);
            }
            return;
        }
        self.stabilize(now, out);
        self.check_predecessor(now, out);
        self.fix_fingers(now, out);
        if self.ticks.is_multiple_of(4) {
            let memory = self.cfg.dead_memory();
            self.dead
                .retain(|_, since| now.duration_since(*since) < memory);
            self.probe_lost_peers(now, out);
            let expired = self.store.expire(now);
            if expired > 0 {
                info!("{expired} pairs expired");
            }
            self.replicate(now, out);
        }
    }

    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    pub(super) fn bootstrap(&self) -> Option<SocketAddr> {
        self.cfg.join
    }

    pub(super) fn key_ttl_ms(&self, now: Instant, key: &Key) -> Option<u32> {
        self.store.get(key, now).map(|item| {
            item.expires
                .duration_since(now)
                .as_millis()
                .min(u32::MAX as u128) as u32
        })
    }
}

pub use crate::util::hex;

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
            self.start_join(now, out);
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
                self.clients.len(),
                self.cfg.max_clients,
                "DHT clients",
            )
        } else {
            let peers = self.roles.values().filter(|r| **r == Role::PeerIn).count();
            (Role::PeerIn, peers, MAX_PEERS_IN, "ring peers")
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
        self.roles.insert(conn, role);
        if role == Role::Api {
            self.next_client += 1;
            self.clients.insert(
                conn,
                ApiClient {
                    serial: self.next_client,
                    in_flight: 0,
                    backlog: VecDeque::new(),
                    backlog_bytes: 0,
                    finishing: false,
                },
            );
        }
    }

    fn on_connected(&mut self, now: Instant, tag: LinkTag, conn: ConnId, out: &mut NodeOut) {
        if self.links.connected(tag, conn, out).is_some() {
            self.roles.insert(conn, Role::PeerOut);
        }
        self.maybe_finish_leaving(now, out);
        self.pump_backlogs(now, out);
    }

    fn on_connect_failed(&mut self, now: Instant, tag: LinkTag, error: &str, out: &mut NodeOut) {
        if let Some(addr) = self.links.connect_failed(tag) {
            debug!("cannot reach {addr}: {error}");
            if Some(addr) == self.cfg.join && !self.joined {
                self.join_error = Some(error.to_string());
            }
            self.link_failed(now, addr, out);
        }
        self.maybe_finish_leaving(now, out);
        self.pump_backlogs(now, out);
    }

    fn on_closed(&mut self, now: Instant, conn: ConnId, reason: &CloseReason, out: &mut NodeOut) {
        match self.roles.remove(&conn) {
            Some(Role::Api) => self.api_closed(now, conn, out),
            Some(Role::PeerOut) => {
                if let Some(addr) = self.links.closed(conn) {
                    debug!("link to {addr} closed: {reason}");
                    if Some(addr) == self.cfg.join && !self.joined {
                        self.join_error = Some(format!("the connection was {reason}"));
                    }
                    self.link_failed(now, addr, out);
                }
            }
            Some(Role::PeerIn) | None => {}
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
        let role = *self
            .roles
            .get(&conn)
            .ok_or("data on an unknown connection")?;
        if role == Role::Api && self.clients.get(&conn).is_some_and(|c| c.finishing) {
            return Ok(data.len()); // after its last request: ignored
        }
        self.feeding = Some(conn);
        let result = self.frames(now, conn, role, data, out);
        if role == Role::Api {
            self.pump_backlogs(now, out);
        } else if !self.ready.is_empty() && !self.ready_timer {
            // Requests of clients that got room go out from a timer: sent
            // from here, a congested peer they go to would pause this link.
            self.ready_timer = true;
            out.timer(Duration::ZERO, Timer::Ready);
        }
        self.feeding = None;
        match result {
            Err(why) if role == Role::Api => {
                // The requests before the bad frame are still answered
                // (lookups may be in flight); then the node closes.
                warn_repeated!(
                    self.warnings.bad_request,
                    now,
                    "closing DHT client {conn}: {why}"
                );
                self.client_finished_sending(now, conn, out);
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
        if !self.clients.contains_key(&conn) {
            return InputEnded::CloseWhenFlushed;
        }
        self.client_finished_sending(now, conn, out);
        InputEnded::KeepOpen
    }

    fn on_timer(&mut self, now: Instant, timer: Timer, out: &mut NodeOut) {
        match timer {
            Timer::Pump => {
                self.ready.append(&mut self.blocked);
                self.pump_backlogs(now, out);
            }
            Timer::Ready => {
                self.ready_timer = false;
                self.pump_backlogs(now, out);
            }
            Timer::Outbox => self.send_outbox(None, out),
            Timer::Tick if !self.stopped => {
                self.tick(now, out);
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
