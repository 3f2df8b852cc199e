//! The gossip node: a state machine that does no I/O. Listener 0 is the API
//! port (local modules), listener 1 the P2P port (other nodes).
//!
//! Spreading: an item is sent to every peer connection except those it came
//! from — at most once per node, since items are recognised by content. An
//! item from a peer is first shown to the local modules subscribed to its
//! type and forwarded only after one of them calls it valid.
//!
//! Time comes in with every event (`Protocol` callbacks carry it); nothing here reads a clock.

use super::api::{self, ApiMessage};
use super::budget::{self, DuplicateBudget, PeerDuplicates};
use super::items::{self, Digest, Held, ItemStore, Record, Verdict};
use super::known::KnownPeers;
use super::p2p::{self, P2pMessage};
use crate::cli_words::plain_error;
use crate::logging::RepeatedWarning;
use crate::reactor::{CloseReason, ConnId, ListenerId, Out, Protocol};
use crate::warn_repeated;
use crate::wire::split_frame;
use log::{debug, info, warn};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

pub const API_LISTENER: ListenerId = 0;
pub const P2P_LISTENER: ListenerId = 1;

/// A gossip node's timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// Refill connections, pull, report held-back warnings.
    Maintenance,
    /// The dial with this number has had no answer for `DIAL_TIMEOUT`.
    DialTimeout(u64),
}

/// What an outgoing connection is for: the number of the dial it answers.
pub type DialId = u64;

/// The actions list the node fills.
type NodeOut = Out<Node>;
const DIAL_TIMEOUT: Duration = Duration::from_secs(5);
/// A module may not hold more subscriptions than this.
const MAX_SUBSCRIPTIONS: usize = 1024;
/// The state output lists this many of the most recent items.
const STATE_ITEMS: usize = 200;
/// Asking peers for more peers backs off up to this many maintenance ticks.
const MAX_PULL_BACKOFF: u32 = 16;
/// A peer we dialled and cut off for flooding is not dialled again for this long.
const SHUN_TIME: Duration = Duration::from_secs(120);
/// At most this many addresses are shunned at once (the oldest go first).
const SHUN_LIMIT: usize = 1024;
/// While joining keeps failing, one warning per this long.
const JOIN_WARNING_EVERY: Duration = Duration::from_secs(10);

/// What a node is told at start.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Our P2P listen address as peers should dial it (the bound one).
    pub p2p_address: SocketAddrV4,
    /// The bound API address (for the state output).
    pub api_address: SocketAddr,
    /// `None` starts a new network.
    pub bootstrapper: Option<SocketAddrV4>,
    pub degree: usize,
    pub cache_size: usize,
    pub seed: u64,
    /// How often connections are refilled.
    pub maintenance: Duration,
}

/// A local module's connection.
struct Module {
    subscriptions: BTreeSet<u16>,
}

/// A connection to another node.
struct Peer {
    /// Its P2P listen address: known when we dialled it, else once it PUSHes or PULLs.
    addr: Option<SocketAddrV4>,
    outgoing: bool,
    /// Accepted beyond our capacity: answered (PULL) and closed, never gossiped on.
    transient: bool,
    /// Items it sent that we already knew, in the current window.
    duplicates: PeerDuplicates,
}

enum Role {
    Module(Module),
    Peer(Peer),
}

struct Link {
    role: Role,
    remote: Option<SocketAddr>,
    /// Bytes of an incomplete frame waiting in the reactor's buffer.
    partial: usize,
}

/// Counters for the state output and the benchmark.
#[derive(Debug, Default, Clone)]
struct Stats {
    /// SEND CONTENT frames sent.
    items_sent: u64,
    /// SEND CONTENT frames received.
    items_received: u64,
    announced: u64,
    notifications: u64,
    /// SEND CONTENT frames carrying an item this node already knew.
    duplicates: u64,
}

pub struct Node {
    cfg: NodeConfig,
    rng: StdRng,
    links: BTreeMap<ConnId, Link>,
    dialing: BTreeMap<u64, SocketAddrV4>,
    next_tag: u64,
    known: KnownPeers,
    items: ItemStore,
    stats: Stats,
    pull_backoff: u32,
    ticks_to_pull: u32,
    /// Reused to encode a frame once and send it to many peers.
    scratch: Vec<u8>,
    duplicates: DuplicateBudget,
    /// Peers that closed on us since the last maintenance tick: not
    /// redialled before it. At most one entry per dial, and dials go only
    /// to addresses not in it, so it holds at most the known addresses.
    closed_on_us: BTreeSet<SocketAddrV4>,
    /// Addresses cut off for flooding, until when.
    shunned: BTreeMap<SocketAddrV4, Instant>,
    /// Printed "joined" once a first peer link was up.
    joined: bool,
    /// Connections closed for bad input, and why the last one was.
    rejected_connections: u64,
    last_rejection: Option<String>,
    warnings: Warnings,
}

/// One rate limiter per warning a peer or module can trigger again and again.
struct Warnings {
    bad_input: RepeatedWarning,
    flooding: RepeatedWarning,
    refused: RepeatedWarning,
    too_big: RepeatedWarning,
    no_ids: RepeatedWarning,
    join: RepeatedWarning,
}

impl Warnings {
    fn new() -> Self {
        Warnings {
            bad_input: RepeatedWarning::per_second(),
            flooding: RepeatedWarning::per_second(),
            refused: RepeatedWarning::per_second(),
            too_big: RepeatedWarning::per_second(),
            no_ids: RepeatedWarning::per_second(),
            join: RepeatedWarning::new(JOIN_WARNING_EVERY),
        }
    }

    /// Report the held-back tail of each flood (from the maintenance timer).
    fn flush(&mut self, now: Instant) {
        for (w, what) in [
            (&mut self.bad_input, "connections closed for bad input"),
            (&mut self.flooding, "peers cut off for sending duplicates"),
            (&mut self.refused, "connections refused: too many"),
            (&mut self.too_big, "items too large to pass on"),
            (&mut self.no_ids, "items dropped: every message ID in use"),
        ] {
            if let Some(held) = w.flush(now) {
                warn!("{held} more {what} since the last report");
            }
        }
        // `join` is not flushed: a failing join fails again every tick,
        // and that line names the address and the reason.
    }
}

impl Node {
    pub fn new(cfg: NodeConfig) -> Self {
        let bootstrapper = cfg.bootstrapper.filter(|b| *b != cfg.p2p_address);
        let cfg = NodeConfig {
            bootstrapper,
            degree: cfg.degree.max(1),
            ..cfg
        };
        Node {
            rng: StdRng::seed_from_u64(cfg.seed),
            links: BTreeMap::new(),
            dialing: BTreeMap::new(),
            next_tag: 1,
            known: KnownPeers::new(cfg.p2p_address),
            items: ItemStore::new(cfg.cache_size),
            stats: Stats::default(),
            pull_backoff: 1,
            ticks_to_pull: 1,
            scratch: Vec::new(),
            duplicates: DuplicateBudget::new(cfg.cache_size),
            shunned: BTreeMap::new(),
            closed_on_us: BTreeSet::new(),
            joined: false,
            rejected_connections: 0,
            last_rejection: None,
            warnings: Warnings::new(),
            cfg,
        }
    }

    /// Incoming peers beyond this are answered and let go.
    fn peer_capacity(&self) -> usize {
        self.cfg.degree * 2
    }

    /// Connections beyond this are closed on accept.
    fn connection_limit(&self) -> usize {
        self.peer_capacity() + 16
    }

    fn peers(&self) -> impl Iterator<Item = (ConnId, &Peer)> + '_ {
        self.links
            .iter()
            .filter_map(|(&id, link)| match &link.role {
                Role::Peer(p) if !p.transient => Some((id, p)),
                _ => None,
            })
    }

    fn peer_count(&self) -> usize {
        self.peers().count()
    }

    fn describe(&self, conn: ConnId) -> String {
        match self.links.get(&conn) {
            Some(Link {
                role: Role::Peer(Peer { addr: Some(a), .. }),
                ..
            }) => format!("peer {a}"),
            Some(Link {
                remote: Some(r),
                role,
                ..
            }) => match role {
                Role::Peer(_) => format!("peer connection from {r}"),
                Role::Module(_) => format!("module {r}"),
            },
            _ => format!("connection {conn}"),
        }
    }

    fn dial(&mut self, addr: SocketAddrV4, out: &mut NodeOut) {
        let tag = self.next_tag;
        self.next_tag += 1;
        self.dialing.insert(tag, addr);
        debug!("dialling {addr}");
        out.connect(SocketAddr::V4(addr), tag);
        out.timer(DIAL_TIMEOUT, Timer::DialTimeout(tag));
    }

    /// Open connections until `degree` are open or being opened, except to
    /// peers that closed on us since the last maintenance tick: they are
    /// tried again at the next tick at the earliest, not at once (a full
    /// node answers and closes; redialling it at once would loop at network
    /// speed, and so would alternating between two full nodes, which the
    /// gossip fuzzer found when only the last one was avoided).
    fn refill(&mut self, allow_bootstrap: bool, out: &mut NodeOut) {
        let active = self.peer_count() + self.dialing.len();
        if active >= self.cfg.degree {
            return;
        }
        let busy: BTreeSet<SocketAddrV4> = self
            .peers()
            .filter_map(|(_, p)| p.addr)
            .chain(self.dialing.values().copied())
            .collect();
        let mut candidates: Vec<SocketAddrV4> = self
            .known
            .iter()
            .copied()
            .filter(|a| !busy.contains(a) && !self.closed_on_us.contains(a))
            .collect();
        candidates.shuffle(&mut self.rng);
        candidates.truncate(self.cfg.degree - active);
        let none = candidates.is_empty();
        for addr in candidates {
            self.dial(addr, out);
        }
        if none && allow_bootstrap && self.peer_count() == 0 && self.dialing.is_empty() {
            if let Some(boot) = self
                .cfg
                .bootstrapper
                .filter(|b| !self.shunned.contains_key(b))
            {
                info!("no peers: contacting bootstrapper {boot} again");
                self.dial(boot, out);
            }
        }
    }

    fn peer_conns_except(&self, except: &[ConnId]) -> Vec<ConnId> {
        let mut conns: Vec<ConnId> = self
            .peers()
            .map(|(id, _)| id)
            .filter(|id| !except.contains(id))
            .collect();
        conns.sort_unstable();
        conns
    }

    /// Send an item to every peer but `except`: one forwarding round.
    #[allow(clippy::too_many_arguments)]
    fn spread(
        &mut self,
        now: Instant,
        digest: &Digest,
        ttl: u8,
        data_type: u16,
        data: &[u8],
        except: &[ConnId],
        out: &mut NodeOut,
    ) {
        if data.len() > p2p::MAX_CONTENT_DATA {
            warn_repeated!(
                self.warnings.too_big,
                now,
                "item {} has {} bytes, more than a SEND CONTENT carries: not spread",
                items::short(digest),
                data.len()
            );
            return;
        }
        self.scratch.clear();
        p2p::write_content(&mut self.scratch, ttl, data_type, data).expect("size was checked");
        let targets = self.peer_conns_except(except);
        for &conn in &targets {
            out.send(conn, &self.scratch);
        }
        self.stats.items_sent += targets.len() as u64;
        if let Some(record) = self.items.record_mut(digest) {
            record.forwards += 1;
        }
        info!(
            "item {} (type {data_type}, ttl {ttl}) sent to {} peer(s)",
            items::short(digest),
            targets.len()
        );
    }

    fn subscribers(&self, data_type: u16, except: Option<ConnId>) -> Vec<ConnId> {
        let mut conns: Vec<ConnId> = self
            .links
            .iter()
            .filter_map(|(&id, link)| match &link.role {
                Role::Module(m) if Some(id) != except && m.subscriptions.contains(&data_type) => {
                    Some(id)
                }
                _ => None,
            })
            .collect();
        conns.sort_unstable();
        conns
    }

    /// Notify `modules` of an item as `msg_id`.
    fn notify(
        &mut self,
        now: Instant,
        modules: &[ConnId],
        msg_id: u16,
        data_type: u16,
        data: &[u8],
        out: &mut NodeOut,
    ) {
        self.scratch.clear();
        if api::write_notification(&mut self.scratch, msg_id, data_type, data).is_err() {
            warn_repeated!(
                self.warnings.too_big,
                now,
                "an item of {} bytes does not fit a NOTIFICATION",
                data.len()
            );
            return;
        }
        for &conn in modules {
            out.send(conn, &self.scratch);
        }
        self.stats.notifications += modules.len() as u64;
    }

    fn hold(&mut self, item: Held) {
        if let Some(old) = self.items.hold(item) {
            debug!("cache full: item {} dropped", items::short(&old.digest));
        }
    }

    fn on_announce(
        &mut self,
        now: Instant,
        conn: ConnId,
        ttl: u8,
        data_type: u16,
        data: &[u8],
        out: &mut NodeOut,
    ) {
        let digest = items::digest(data_type, data);
        if self.items.record(&digest).is_some() {
            info!(
                "{} announced item {} (type {data_type}) again: already known, not announced twice",
                self.describe(conn),
                items::short(&digest)
            );
            return;
        }
        info!(
            "{} announced item {} (type {data_type}, ttl {ttl}, {} bytes)",
            self.describe(conn),
            items::short(&digest),
            data.len()
        );
        self.stats.announced += 1;
        self.duplicates.new_item(now);
        self.items
            .remember(digest, Record::new(data_type, data, Verdict::Local));
        let others = self.subscribers(data_type, Some(conn));
        // The other modules get an ID like any notification; their verdicts
        // are accepted but change nothing: the item is already spreading.
        let msg_id = if others.is_empty() {
            None
        } else {
            self.items.allocate_id()
        };
        if let Some(id) = msg_id {
            self.notify(now, &others, id, data_type, data, out);
        }
        self.hold(Held {
            digest,
            ttl,
            data_type,
            data: data.to_vec(),
            msg_id,
            from: Vec::new(),
        });
        // The originating node sends the module's TTL as is.
        self.spread(now, &digest, ttl, data_type, data, &[], out);
    }

    /// A SEND CONTENT from a peer. `Err` means the peer went over its
    /// budget of duplicates and must be cut off.
    fn on_content(
        &mut self,
        now: Instant,
        conn: ConnId,
        ttl: u8,
        data_type: u16,
        data: &[u8],
        out: &mut NodeOut,
    ) -> Result<(), budget::Overrun> {
        self.stats.items_received += 1;
        let digest = items::digest(data_type, data);
        let forgetful = crate::sim::bugs::seeded("gossip.no-dedup-while-awaiting")
            && self
                .items
                .record(&digest)
                .is_some_and(|r| r.verdict == Verdict::Awaiting);
        if let Some(record) = self.items.record_mut(&digest).filter(|_| !forgetful) {
            record.copies = record.copies.saturating_add(1);
            self.stats.duplicates += 1;
            self.items.note_sender(&digest, conn);
            debug!(
                "item {} again from connection {conn}",
                items::short(&digest)
            );
            if let Some(Role::Peer(p)) = self.links.get_mut(&conn).map(|l| &mut l.role) {
                self.duplicates.charge(&mut p.duplicates, now)?;
            }
            return Ok(());
        }
        self.duplicates.new_item(now);
        let mut record = Record::new(data_type, data, Verdict::Awaiting);
        record.copies = 1;
        let modules = self.subscribers(data_type, None);
        if modules.is_empty() {
            record.verdict = Verdict::Unsubscribed;
            self.items.remember(digest, record);
            info!(
                "item {} (type {data_type}) from {}: no module subscribed, not forwarded",
                items::short(&digest),
                self.describe(conn)
            );
            return Ok(());
        }
        let Some(msg_id) = self.items.allocate_id() else {
            warn_repeated!(
                self.warnings.no_ids,
                now,
                "every message ID is awaiting a verdict: item dropped"
            );
            return Ok(());
        };
        self.items.remember(digest, record);
        if crate::sim::bugs::seeded("gossip.forward-before-verdict") {
            // The old bug: passing an item on as it arrives, before any
            // module has judged it.
            self.spread(
                now,
                &digest,
                ttl.saturating_sub(1),
                data_type,
                data,
                &[conn],
                out,
            );
        }
        self.notify(now, &modules, msg_id, data_type, data, out);
        self.hold(Held {
            digest,
            ttl,
            data_type,
            data: data.to_vec(),
            msg_id: Some(msg_id),
            from: vec![conn],
        });
        info!(
            "item {} (type {data_type}, ttl {ttl}) from {}: notified {} module(s) as message {msg_id}",
            items::short(&digest),
            self.describe(conn),
            modules.len()
        );
        Ok(())
    }

    fn on_validation(
        &mut self,
        now: Instant,
        conn: ConnId,
        msg_id: u16,
        valid: bool,
        out: &mut NodeOut,
    ) {
        let Some(digest) = self.items.awaited(msg_id) else {
            debug!("validation of message {msg_id}, which awaits none: ignored");
            return;
        };
        let Some(record) = self.items.record(&digest) else {
            self.items.settle(msg_id);
            return;
        };
        let subscribed = matches!(
            self.links.get(&conn).map(|l| &l.role),
            Some(Role::Module(m)) if m.subscriptions.contains(&record.data_type)
        );
        if !subscribed {
            info!(
                "{} judged message {msg_id} without subscribing to its type: ignored",
                self.describe(conn)
            );
            return;
        }
        if record.verdict == Verdict::Local {
            self.items.settle(msg_id);
            return;
        }
        let Some(held) = self.items.settle(msg_id) else {
            return;
        };
        let (ttl, data_type, data, from) = (
            held.ttl,
            held.data_type,
            std::mem::take(&mut held.data),
            std::mem::take(&mut held.from),
        );
        if !valid {
            if let Some(record) = self.items.record_mut(&digest) {
                record.verdict = Verdict::Invalid;
            }
            self.items.drop_held(&digest);
            info!(
                "item {} judged invalid by {}: dropped for good",
                items::short(&digest),
                self.describe(conn)
            );
            return;
        }
        if let Some(record) = self.items.record_mut(&digest) {
            record.verdict = Verdict::Valid;
        }
        // TTL counts the hop just made: 1 was the last hop; 0 is unlimited.
        let spent = ttl == 1 || (ttl == 0 && crate::sim::bugs::seeded("gossip.ttl-zero-spent"));
        match ttl {
            _ if spent => info!(
                "item {} judged valid; its TTL is spent, not forwarded",
                items::short(&digest)
            ),
            _ => {
                let next = ttl.saturating_sub(1);
                self.spread(now, &digest, next, data_type, &data, &from, out);
            }
        }
        // Keep the data cached (it is what the cache is for) without the senders.
        if let Some(held) = self.items.held_mut(&digest) {
            held.data = data;
        }
    }

    fn on_module_frame(
        &mut self,
        now: Instant,
        conn: ConnId,
        kind: u16,
        body: &[u8],
        out: &mut NodeOut,
    ) -> Result<(), String> {
        match api::decode(kind, body)? {
            ApiMessage::Announce {
                ttl,
                data_type,
                data,
            } => self.on_announce(now, conn, ttl, data_type, data, out),
            ApiMessage::Notify { data_type } => {
                let who = self.describe(conn);
                if let Some(Role::Module(m)) = self.links.get_mut(&conn).map(|l| &mut l.role) {
                    if m.subscriptions.len() >= MAX_SUBSCRIPTIONS
                        && !m.subscriptions.contains(&data_type)
                    {
                        return Err(format!("more than {MAX_SUBSCRIPTIONS} subscriptions"));
                    }
                    m.subscriptions.insert(data_type);
                    info!("{who} subscribed to type {data_type}");
                }
            }
            ApiMessage::Validation { msg_id, valid } => {
                self.on_validation(now, conn, msg_id, valid, out)
            }
            ApiMessage::Notification { .. } => {
                return Err("a module sent a NOTIFICATION, which only a node sends".into())
            }
        }
        Ok(())
    }

    /// One frame from a peer. `Err(Rejected::Flooding)` when it went over
    /// its budget of duplicates, `Err(Rejected::BadInput)` for a bad frame.
    fn on_peer_frame(
        &mut self,
        now: Instant,
        conn: ConnId,
        kind: u16,
        body: &[u8],
        out: &mut NodeOut,
    ) -> Result<(), Rejected> {
        match p2p::decode(kind, body).map_err(Rejected::BadInput)? {
            P2pMessage::Push(addr) => {
                self.identify(conn, addr)?;
                debug!("{} pushed itself", self.describe(conn));
            }
            P2pMessage::Pull(addr) => {
                self.identify(conn, addr)?;
                let list = self.known.sample(Some(addr), &mut self.rng);
                out.send_with(conn, |o| p2p::write_pull_response(o, &list));
                debug!(
                    "{} pulled: sent {} addresses",
                    self.describe(conn),
                    list.len()
                );
                let transient = matches!(
                    self.links.get(&conn).map(|l| &l.role),
                    Some(Role::Peer(Peer {
                        transient: true,
                        ..
                    }))
                );
                if transient {
                    info!(
                        "{} answered; closing it: no room for more peers",
                        self.describe(conn)
                    );
                    self.links.remove(&conn);
                    self.items.forget_conn(conn);
                    out.close_after_flush(conn);
                }
            }
            P2pMessage::PullResponse(list) => {
                let mut new = 0;
                for addr in list {
                    if self.learn(addr) {
                        new += 1;
                    }
                }
                debug!("{} told us {new} new address(es)", self.describe(conn));
                if new > 0 {
                    self.pull_backoff = 1;
                }
                self.refill(false, out);
            }
            P2pMessage::Content {
                ttl,
                data_type,
                data,
            } => self
                .on_content(now, conn, ttl, data_type, data, out)
                .map_err(Rejected::Flooding)?,
        }
        Ok(())
    }

    /// A peer told us its listen address: one we cut off for flooding is
    /// refused (only addresses we dialled ourselves are ever shunned, so
    /// nobody can get another node shunned by naming it).
    fn identify(&mut self, conn: ConnId, addr: SocketAddrV4) -> Result<(), Rejected> {
        if self.shunned.contains_key(&addr) {
            return Err(Rejected::Shunned(addr));
        }
        self.learn(addr);
        if let Some(Role::Peer(p)) = self.links.get_mut(&conn).map(|l| &mut l.role) {
            if p.addr.is_none() {
                p.addr = Some(addr);
            }
        }
        Ok(())
    }

    /// Learn a peer's address unless it is shunned; true if it was new.
    fn learn(&mut self, addr: SocketAddrV4) -> bool {
        !self.shunned.contains_key(&addr) && self.known.learn(addr, &mut self.rng)
    }

    fn maintenance(&mut self, now: Instant, out: &mut NodeOut) {
        self.warnings.flush(now);
        self.shunned.retain(|_, until| *until > now);
        self.closed_on_us.clear();
        self.refill(true, out);
        let peers = self.peer_count();
        if peers < self.cfg.degree && peers > 0 {
            self.ticks_to_pull = self.ticks_to_pull.saturating_sub(1);
            if self.ticks_to_pull == 0 {
                // Short of peers and nobody left to dial: ask for more addresses.
                let own = self.cfg.p2p_address;
                let conns = self.peer_conns_except(&[]);
                for conn in conns {
                    out.send_with(conn, |o| p2p::write_pull(o, &own));
                }
                self.pull_backoff = (self.pull_backoff * 2).min(MAX_PULL_BACKOFF);
                self.ticks_to_pull = self.pull_backoff;
            }
        }
        out.timer(self.cfg.maintenance, Timer::Maintenance);
    }

    /// The P2P addresses of the peers it gossips with (not transient
    /// ones), sorted: what the simulator's checks build the graph from.
    pub fn peer_addrs(&self) -> Vec<SocketAddrV4> {
        let mut addrs: Vec<SocketAddrV4> = self.peers().filter_map(|(_, p)| p.addr).collect();
        addrs.sort_unstable();
        addrs
    }

    /// The node's checkable state, as one JSON value.
    pub fn state(&self) -> serde_json::Value {
        let mut peers: Vec<String> = self
            .peers()
            .map(|(id, p)| {
                p.addr
                    .map_or_else(|| format!("connection {id}"), |a| a.to_string())
            })
            .collect();
        peers.sort();
        let modules = self
            .links
            .values()
            .filter(|l| matches!(l.role, Role::Module(_)))
            .count();
        let subscriptions: BTreeSet<u16> = self
            .links
            .values()
            .filter_map(|l| match &l.role {
                Role::Module(m) => Some(m.subscriptions.iter().copied()),
                _ => None,
            })
            .flatten()
            .collect();
        let records: Vec<_> = self.items.records().rev().take(STATE_ITEMS).collect();
        let max_forwards = self
            .items
            .records()
            .map(|(_, r)| r.forwards)
            .max()
            .unwrap_or(0);
        let items: Vec<serde_json::Value> = records
            .iter()
            .rev()
            .map(|(d, r)| {
                json!({
                    "id": items::short(d),
                    "type": r.data_type,
                    "data": r.preview,
                    "verdict": r.verdict.name(),
                    "forwards": r.forwards,
                    "copies": r.copies,
                })
            })
            .collect();
        let data_where = |keep: &dyn Fn(&Record) -> bool| -> Vec<String> {
            records
                .iter()
                .filter(|(_, r)| keep(r))
                .map(|(_, r)| r.preview.clone())
                .collect()
        };
        json!({
            "role": "gossip",
            "seen": data_where(&|_| true),
            "forwarded": data_where(&|r| r.forwards > 0),
            "rejected": data_where(&|r| r.verdict == Verdict::Invalid),
            "p2p_address": self.cfg.p2p_address.to_string(),
            "api_address": self.cfg.api_address.to_string(),
            "degree": self.cfg.degree,
            "peers": peers,
            "peer_count": self.peer_count(),
            "outgoing": self.peers().filter(|(_, p)| p.outgoing).count(),
            "dialing": self.dialing.len(),
            "known_peers": self.known.len(),
            "modules": modules,
            "subscriptions": subscriptions,
            "cache_limit": self.cfg.cache_size,
            "cached": self.items.held_count(),
            "awaiting_verdict": self.items.awaiting_count(),
            "items": items,
            "max_forwards": max_forwards,
            "items_sent": self.stats.items_sent,
            "items_received": self.stats.items_received,
            "announced": self.stats.announced,
            "notifications_sent": self.stats.notifications,
            "duplicates_received": self.stats.duplicates,
            "most_duplicates_from_one_peer": self
                .peers()
                .map(|(_, p)| p.duplicates.count())
                .max()
                .unwrap_or(0),
            "joined": self.joined,
            "rejected_connections": self.rejected_connections,
            "last_rejection": self.last_rejection,
            "shunned": self.shunned.len(),
        })
    }
}

/// Why a connection's input was refused.
enum Rejected {
    /// A frame that breaks the spec.
    BadInput(String),
    /// A peer that went over its budget of duplicate items.
    Flooding(budget::Overrun),
    /// A peer naming an address we cut off for flooding.
    Shunned(SocketAddrV4),
}

/// The events the reactor (or the simulator) reports, each with the time.
impl Protocol for Node {
    type Timer = Timer;
    type Tag = DialId;

    fn on_start(&mut self, _now: Instant, out: &mut NodeOut) {
        info!(
            "gossip node: P2P on {}, API on {}, degree {}, cache {}",
            self.cfg.p2p_address, self.cfg.api_address, self.cfg.degree, self.cfg.cache_size
        );
        out.print(format!(
            "gossip node listening: p2p {} api {}",
            self.cfg.p2p_address, self.cfg.api_address
        ));
        match self.cfg.bootstrapper {
            Some(boot) => {
                info!("joining the network through bootstrapper {boot}");
                self.known.learn(boot, &mut self.rng);
                self.dial(boot, out);
            }
            None => info!("starting a new network"),
        }
        out.timer(self.cfg.maintenance, Timer::Maintenance);
    }

    fn on_accept(
        &mut self,
        now: Instant,
        listener: ListenerId,
        conn: ConnId,
        peer: SocketAddr,
        out: &mut NodeOut,
    ) {
        if self.links.len() >= self.connection_limit() + MAX_MODULES {
            warn_repeated!(
                self.warnings.refused,
                now,
                "too many connections: refusing {peer}"
            );
            out.close(conn);
            return;
        }
        let role = if listener == API_LISTENER {
            info!("module connected from {peer}");
            Role::Module(Module {
                subscriptions: BTreeSet::new(),
            })
        } else {
            let incoming = self
                .links
                .values()
                .filter(|l| matches!(l.role, Role::Peer(_)))
                .count();
            if incoming >= self.connection_limit() {
                warn_repeated!(
                    self.warnings.refused,
                    now,
                    "too many peer connections: refusing {peer}"
                );
                out.close(conn);
                return;
            }
            let transient = self.peer_count() >= self.peer_capacity();
            info!(
                "peer connection from {peer}{}",
                if transient {
                    " (no room: will answer and close)"
                } else {
                    ""
                }
            );
            Role::Peer(Peer {
                addr: None,
                outgoing: false,
                transient,
                duplicates: PeerDuplicates::default(),
            })
        };
        self.links.insert(
            conn,
            Link {
                role,
                remote: Some(peer),
                partial: 0,
            },
        );
        if listener != API_LISTENER {
            self.note_joined(conn, out);
        }
    }

    fn on_connected(&mut self, _now: Instant, tag: DialId, conn: ConnId, out: &mut NodeOut) {
        let Some(addr) = self.dialing.remove(&tag) else {
            // The dial timed out and was given up; too late now.
            out.close(conn);
            return;
        };
        info!("connected to peer {addr}");
        self.links.insert(
            conn,
            Link {
                role: Role::Peer(Peer {
                    addr: Some(addr),
                    outgoing: true,
                    transient: false,
                    duplicates: PeerDuplicates::default(),
                }),
                remote: Some(SocketAddr::V4(addr)),
                partial: 0,
            },
        );
        // Tell it where we listen, and ask whom it knows.
        let own = self.cfg.p2p_address;
        out.send_with(conn, |o| {
            p2p::write_push(o, &own);
            p2p::write_pull(o, &own);
        });
        self.note_joined(conn, out);
    }

    fn on_connect_failed(&mut self, now: Instant, tag: DialId, error: &str, out: &mut NodeOut) {
        let Some(addr) = self.dialing.remove(&tag) else {
            return;
        };
        self.dial_failed(now, addr, &plain_error(error));
        self.known.forget(&addr);
        self.refill(false, out);
    }

    fn on_data(
        &mut self,
        now: Instant,
        conn: ConnId,
        data: &[u8],
        out: &mut NodeOut,
    ) -> Result<usize, String> {
        let mut used = 0;
        loop {
            let port = match self.links.get(&conn).map(|l| &l.role) {
                Some(Role::Module(_)) => "API",
                Some(Role::Peer(_)) => "P2P",
                None => return Ok(data.len()), // let go already: discard
            };
            let frame = match split_frame(&data[used..]) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(e) => {
                    self.reject(now, conn, port, Rejected::BadInput(e.to_string()), out);
                    return Ok(data.len());
                }
            };
            used += frame.len;
            let result = if port == "API" {
                self.on_module_frame(now, conn, frame.kind, frame.body, out)
                    .map_err(Rejected::BadInput)
            } else {
                self.on_peer_frame(now, conn, frame.kind, frame.body, out)
            };
            if let Err(why) = result {
                self.reject(now, conn, port, why, out);
                return Ok(data.len());
            }
        }
        if let Some(link) = self.links.get_mut(&conn) {
            link.partial = data.len() - used;
        }
        Ok(used)
    }

    fn on_closed(&mut self, _now: Instant, conn: ConnId, reason: &CloseReason, out: &mut NodeOut) {
        let who = self.describe(conn);
        let Some(link) = self.forget_link(conn) else {
            return;
        };
        if link.partial > 0 {
            info!(
                "{who} closed in the middle of a message ({} bytes of it arrived)",
                link.partial
            );
        }
        match link.role {
            Role::Module(_) => info!("{who} disconnected"),
            Role::Peer(p) => {
                if !p.transient {
                    info!("{who} gone: {reason}");
                    if crate::sim::bugs::seeded("gossip.redial-alternating-full-peers") {
                        // The old fix: avoid only the peer that just closed.
                        self.closed_on_us.clear();
                    }
                    if let Some(addr) = p.addr {
                        self.closed_on_us.insert(addr);
                    }
                    self.refill(false, out);
                }
            }
        }
    }

    fn on_timer(&mut self, now: Instant, timer: Timer, out: &mut NodeOut) {
        if timer == Timer::Maintenance {
            self.maintenance(now, out);
        } else if let Timer::DialTimeout(tag) = timer {
            if let Some(addr) = self.dialing.remove(&tag) {
                let why = format!("no answer within {} s", DIAL_TIMEOUT.as_secs());
                self.dial_failed(now, addr, &why);
                self.known.forget(&addr);
            }
        }
    }

    fn on_stdin_line(&mut self, _now: Instant, line: &str, out: &mut NodeOut) {
        match line.trim() {
            "state" => out.print(self.state().to_string()),
            "quit" | "exit" => out.stop(),
            "" => {}
            other => out.print(format!("unknown command '{other}' (try: state, quit)")),
        }
    }
}

/// What the callbacks share.
impl Node {
    /// The first peer link is up: say so once.
    fn note_joined(&mut self, conn: ConnId, out: &mut NodeOut) {
        if self.joined || self.peer_count() == 0 {
            return;
        }
        self.joined = true;
        let line = format!(
            "gossip node joined the network: first peer link with {}",
            self.describe(conn)
        );
        info!("{line}");
        out.print(line);
    }

    /// A dial failed: while the node has no peer and it was the
    /// bootstrapper, joining is failing, which the user must see.
    fn dial_failed(&mut self, now: Instant, addr: SocketAddrV4, why: &str) {
        if Some(addr) == self.cfg.bootstrapper && self.peer_count() == 0 {
            warn_repeated!(
                self.warnings.join,
                now,
                "cannot join the network through bootstrapper {addr}: {why}; retrying every {} ms",
                self.cfg.maintenance.as_millis()
            );
        } else {
            info!("could not reach peer {addr}: {why}; forgetting it");
        }
    }

    /// Close `conn` for what it sent, after the answers to its earlier
    /// frames; log it through a rate limiter: a flood of bad connections
    /// (or a flooder that keeps coming back) makes one line a second.
    fn reject(&mut self, now: Instant, conn: ConnId, port: &str, why: Rejected, out: &mut NodeOut) {
        let who = self.describe(conn);
        let Some(link) = self.forget_link(conn) else {
            return;
        };
        out.close_after_flush(conn);
        if !matches!(why, Rejected::Shunned(_)) {
            self.rejected_connections += 1;
        }
        let line = match why {
            Rejected::BadInput(why) => {
                let line = format!("{port} port, {who}: {why}; connection closed");
                warn_repeated!(self.warnings.bad_input, now, "{line}");
                line
            }
            Rejected::Flooding(over) => {
                let mut line = format!(
                    "{who} sent {} items we already had within {} s (allowed {}): disconnected",
                    over.count,
                    budget::WINDOW.as_secs(),
                    over.allowed
                );
                if let Role::Peer(Peer {
                    addr: Some(addr),
                    outgoing: true,
                    ..
                }) = link.role
                {
                    // We dialled it, so the address is really its own.
                    self.shun(now, addr);
                    line.push_str(&format!(
                        "; not dialled again for {} s",
                        SHUN_TIME.as_secs()
                    ));
                }
                warn_repeated!(self.warnings.flooding, now, "{line}");
                line
            }
            Rejected::Shunned(addr) => {
                // Said once when it was cut off; its comebacks are no news.
                debug!("{who} says it is {addr}, cut off for flooding: closed");
                return;
            }
        };
        self.last_rejection = Some(line);
        if matches!(link.role, Role::Peer(_)) {
            self.refill(false, out);
        }
    }

    fn shun(&mut self, now: Instant, addr: SocketAddrV4) {
        self.known.forget(&addr);
        if self.shunned.len() >= SHUN_LIMIT {
            if let Some(oldest) = self
                .shunned
                .iter()
                .min_by_key(|(_, until)| **until)
                .map(|(a, _)| *a)
            {
                self.shunned.remove(&oldest);
            }
        }
        self.shunned.insert(addr, now + SHUN_TIME);
    }
}

/// API connections allowed beside the peer connections.
const MAX_MODULES: usize = 1024;

impl Node {
    fn forget_link(&mut self, conn: ConnId) -> Option<Link> {
        let link = self.links.remove(&conn)?;
        self.items.forget_conn(conn);
        Some(link)
    }
}
