//! A gossip network in the simulated world (`crate::sim::World`): real
//! [`Node`]s, each wrapped in a [`Watched`] that checks two invariants on
//! everything the node sends, and modules that are the world's test
//! connections speaking the API frames (so a test decides each verdict,
//! including never answering). Used by the gossip simulation tests, the
//! gossip fuzzer and `peerloop sim gossip`.

use super::api::{self, ApiCodec, ApiMessage};
use super::items::{digest, Digest};
use super::node::{DialId, Node, NodeConfig, Timer, API_LISTENER};
use super::p2p::{P2pCodec, P2pMessage};
use crate::reactor::{Action, CloseReason, ConnId, InputEnded, ListenerId, Out, Protocol};
use crate::sim::{host, ExtId, ExtState, NodeId, World};
use crate::wire::{decode_each, Framed};
use serde_json::Value;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::ops::ControlFlow;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// The P2P address of node `i` (10.x.y.z, port 7000).
pub fn p2p_addr(i: usize) -> SocketAddrV4 {
    let [_, a, b, c] = (i as u32).to_be_bytes();
    SocketAddrV4::new(Ipv4Addr::new(10, a, b, c), 7000)
}

/// The API address of node `i` (same host, port 7001).
pub fn api_addr(i: usize) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(*p2p_addr(i).ip(), 7001))
}

/// Invariants broken, shared by every [`Watched`] of a network (and kept
/// across crashes, which lose the node's memory but not what it did).
pub type Violations = Rc<RefCell<Vec<(String, String)>>>;

pub const TWICE: &str = "no module is notified twice of one item";
pub const EARLY: &str = "nothing is forwarded before a valid verdict";
pub const FAST_DIALS: &str = "no node dials at network speed";
/// Far above what refilling needs in the small networks the fuzzer builds
/// (one dial per known address per maintenance tick at most), far below a
/// redial loop at network speed (thousands a second).
const MAX_DIALS_PER_SECOND: usize = 64;

/// Where `out` stands: (sends, other actions) so far.
fn mark(out: &Out<Node>) -> (usize, usize) {
    (out.sent().len(), out.others().len())
}

enum Role {
    Module {
        subscriptions: BTreeSet<u16>,
        notified: BTreeSet<Digest>,
    },
    Peer,
}

/// A gossip node with a checker around it: it sees every frame a module
/// sends the node and every frame the node sends, and records a violation
/// when the node notifies one module connection twice of one item, or
/// sends an item to a peer before the item was announced here or one of
/// the modules subscribed to its type called it valid.
pub struct Watched {
    pub node: Node,
    index: usize,
    roles: BTreeMap<ConnId, Role>,
    /// Items this node may pass on: announced here, or judged valid here.
    cleared: BTreeSet<Digest>,
    /// The item each message ID was last used for.
    ids: BTreeMap<u16, (Digest, u16)>,
    /// When the node asked for connections, over the last second.
    dials: VecDeque<Instant>,
    violations: Violations,
}

impl Watched {
    pub fn new(node: Node, index: usize, violations: Violations) -> Self {
        Watched {
            node,
            index,
            roles: BTreeMap::new(),
            cleared: BTreeSet::new(),
            ids: BTreeMap::new(),
            dials: VecDeque::new(),
            violations,
        }
    }

    fn violate(&self, invariant: &str, detail: String) {
        self.violations.borrow_mut().push((
            invariant.to_string(),
            format!("node {}: {detail}", self.index),
        ));
    }

    /// What a module sent (the frames the node took).
    fn saw_module_input(&mut self, conn: ConnId, data: &[u8]) {
        decode_each(&Framed(ApiCodec), data, |message| {
            let Some(Role::Module { subscriptions, .. }) = self.roles.get_mut(&conn) else {
                return ControlFlow::Break(());
            };
            match message {
                ApiMessage::Notify { data_type } => {
                    subscriptions.insert(data_type);
                }
                ApiMessage::Announce {
                    data_type, data, ..
                } => {
                    self.cleared.insert(digest(data_type, data));
                }
                ApiMessage::Validation { msg_id, valid } => {
                    if let Some(&(d, data_type)) = self.ids.get(&msg_id) {
                        if valid && subscriptions.contains(&data_type) {
                            self.cleared.insert(d);
                        }
                    }
                }
                ApiMessage::Notification { .. } => {}
            }
            ControlFlow::Continue(())
        });
    }

    /// Check what the node did in `out` since `from` (see [`mark`]).
    fn check_sends(&mut self, now: Instant, out: &Out<Node>, from: (usize, usize)) {
        let dials = out.others()[from.1..]
            .iter()
            .filter(|a| matches!(a, Action::Connect { .. }))
            .count();
        for _ in 0..dials {
            self.dials.push_back(now);
        }
        while self
            .dials
            .front()
            .is_some_and(|&t| now.duration_since(t) >= Duration::from_secs(1))
        {
            self.dials.pop_front();
        }
        if dials > 0 && self.dials.len() > MAX_DIALS_PER_SECOND {
            self.dials.clear();
            self.violate(
                FAST_DIALS,
                format!("more than {MAX_DIALS_PER_SECOND} connection attempts within 1 s"),
            );
        }
        for (conn, bytes) in out.sent().into_iter().skip(from.0) {
            match self.roles.get(&conn) {
                Some(Role::Peer) => {
                    decode_each(&Framed(P2pCodec), bytes, |message| {
                        if let P2pMessage::Content {
                            data_type, data, ..
                        } = message
                        {
                            let d = digest(data_type, data);
                            if !self.cleared.contains(&d) {
                                let text = String::from_utf8_lossy(data).into_owned();
                                self.violate(
                                    EARLY,
                                    format!("sent item {text:?} to a peer with no valid verdict"),
                                );
                            }
                        }
                        ControlFlow::<()>::Continue(())
                    });
                }
                Some(Role::Module { .. }) => {
                    decode_each(&Framed(ApiCodec), bytes, |message| {
                        let ApiMessage::Notification {
                            msg_id,
                            data_type,
                            data,
                        } = message
                        else {
                            return ControlFlow::<()>::Continue(());
                        };
                        let Some(Role::Module { notified, .. }) = self.roles.get_mut(&conn) else {
                            return ControlFlow::Break(());
                        };
                        let d = digest(data_type, data);
                        let again = !notified.insert(d);
                        self.ids.insert(msg_id, (d, data_type));
                        if again {
                            let text = String::from_utf8_lossy(data).into_owned();
                            self.violate(TWICE, format!("notified one module of {text:?} twice"));
                        }
                        ControlFlow::Continue(())
                    });
                }
                None => {}
            }
        }
    }
}

impl Protocol for Watched {
    type Timer = Timer;
    type Tag = DialId;

    fn on_start(&mut self, now: Instant, out: &mut Out<Self>) {
        let from = mark(out);
        self.node.on_start(now, out);
        self.check_sends(now, out, from);
    }

    fn on_accept(
        &mut self,
        now: Instant,
        listener: ListenerId,
        conn: ConnId,
        peer: SocketAddr,
        out: &mut Out<Self>,
    ) {
        let role = if listener == API_LISTENER {
            Role::Module {
                subscriptions: BTreeSet::new(),
                notified: BTreeSet::new(),
            }
        } else {
            Role::Peer
        };
        self.roles.insert(conn, role);
        let from = mark(out);
        self.node.on_accept(now, listener, conn, peer, out);
        self.check_sends(now, out, from);
    }

    fn on_connected(&mut self, now: Instant, tag: DialId, conn: ConnId, out: &mut Out<Self>) {
        self.roles.insert(conn, Role::Peer);
        let from = mark(out);
        self.node.on_connected(now, tag, conn, out);
        self.check_sends(now, out, from);
    }

    fn on_connect_failed(&mut self, now: Instant, tag: DialId, error: &str, out: &mut Out<Self>) {
        let from = mark(out);
        self.node.on_connect_failed(now, tag, error, out);
        self.check_sends(now, out, from);
    }

    fn on_data(
        &mut self,
        now: Instant,
        conn: ConnId,
        data: &[u8],
        out: &mut Out<Self>,
    ) -> Result<usize, String> {
        let from = mark(out);
        let result = self.node.on_data(now, conn, data, out);
        if let Ok(used) = result {
            if matches!(self.roles.get(&conn), Some(Role::Module { .. })) {
                self.saw_module_input(conn, &data[..used.min(data.len())]);
            }
        }
        self.check_sends(now, out, from);
        result
    }

    fn on_peer_finished_sending(
        &mut self,
        now: Instant,
        conn: ConnId,
        out: &mut Out<Self>,
    ) -> InputEnded {
        let from = mark(out);
        let ended = self.node.on_peer_finished_sending(now, conn, out);
        self.check_sends(now, out, from);
        ended
    }

    fn on_closed(&mut self, now: Instant, conn: ConnId, reason: &CloseReason, out: &mut Out<Self>) {
        let from = mark(out);
        self.node.on_closed(now, conn, reason, out);
        self.check_sends(now, out, from);
        self.roles.remove(&conn);
    }

    fn on_timer(&mut self, now: Instant, timer: Timer, out: &mut Out<Self>) {
        let from = mark(out);
        self.node.on_timer(now, timer, out);
        self.check_sends(now, out, from);
    }

    fn on_stdin_line(&mut self, now: Instant, line: &str, out: &mut Out<Self>) {
        self.node.on_stdin_line(now, line, out);
    }
}

/// How a module answers a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Valid,
    Invalid,
    Never,
}

impl Answer {
    pub fn from_option(verdict: Option<bool>) -> Answer {
        match verdict {
            Some(true) => Answer::Valid,
            Some(false) => Answer::Invalid,
            None => Answer::Never,
        }
    }
}

/// How a module decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    Always(Answer),
    /// Drawn from the item and this number, so modules differ and a seed replays:
    /// 70 % valid, 15 % invalid, 15 % never; items of type `valid_type` always valid.
    Mixed {
        salt: u64,
        valid_type: u16,
    },
}

impl Policy {
    fn answer(&self, data_type: u16, data: &[u8]) -> Answer {
        match *self {
            Policy::Always(a) => a,
            Policy::Mixed { .. } if Some(data_type) == self.valid_type() => Answer::Valid,
            Policy::Mixed { salt, .. } => {
                // FNV-1a: a fixed hash (std's is keyed at random per run).
                let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ salt;
                for &b in data.iter().chain(&data_type.to_be_bytes()) {
                    h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
                }
                match h % 100 {
                    0..=69 => Answer::Valid,
                    70..=84 => Answer::Invalid,
                    _ => Answer::Never,
                }
            }
        }
    }

    fn valid_type(&self) -> Option<u16> {
        match *self {
            Policy::Mixed { valid_type, .. } => Some(valid_type),
            Policy::Always(_) => None,
        }
    }
}

/// A module: a test connection to a node's API port.
pub struct SimModule {
    pub node: NodeId,
    pub types: Vec<u16>,
    pub policy: Policy,
    /// The connection of its current session (a new one after the node restarts).
    pub ext: ExtId,
    /// Every NOTIFICATION received, over all sessions: (message ID, type, data).
    pub notified: Vec<(u16, u16, Vec<u8>)>,
    buf: Vec<u8>,
}

/// Gossip nodes and their modules in one world.
pub struct GossipNet {
    pub w: World,
    pub modules: Vec<SimModule>,
    pub violations: Violations,
    /// Each node's config (restarts reuse it).
    pub configs: Vec<NodeConfig>,
}

impl GossipNet {
    pub fn new(w: World) -> Self {
        GossipNet {
            w,
            modules: Vec::new(),
            violations: Rc::new(RefCell::new(Vec::new())),
            configs: Vec::new(),
        }
    }

    /// The config of the next node, bootstrapping through node `boot`.
    pub fn config(&self, boot: Option<usize>, degree: usize, cache_size: usize) -> NodeConfig {
        let i = self.w.node_count();
        NodeConfig {
            p2p_address: p2p_addr(i),
            api_address: api_addr(i),
            bootstrapper: boot.map(p2p_addr),
            degree,
            cache_size,
            seed: i as u64,
            maintenance: Duration::from_secs(1),
        }
    }

    /// Add a node (it starts at once) bootstrapping through node `boot`.
    pub fn add_node(&mut self, boot: Option<usize>, degree: usize, cache_size: usize) -> NodeId {
        let cfg = self.config(boot, degree, cache_size);
        self.add_node_with(cfg)
    }

    pub fn add_node_with(&mut self, cfg: NodeConfig) -> NodeId {
        let i = self.w.node_count();
        let violations = self.violations.clone();
        let listen = vec![cfg.api_address, SocketAddr::V4(cfg.p2p_address)];
        self.configs.push(cfg.clone());
        let id = self.w.add_node(
            format!("g{i}"),
            listen,
            Box::new(move |_| host(Watched::new(Node::new(cfg.clone()), i, violations.clone()))),
        );
        debug_assert_eq!(id, i);
        id
    }

    /// The node itself (None while it is down).
    pub fn node(&mut self, i: NodeId) -> Option<&mut Node> {
        self.w.protocol::<Watched>(i).map(|w| &mut w.node)
    }

    pub fn state(&mut self, i: NodeId) -> Value {
        self.node(i).expect("node is up").state()
    }

    /// The state of the item whose data is `data` at node `i`.
    pub fn item(&mut self, i: NodeId, data: &str) -> Option<Value> {
        self.state(i)["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|it| it["data"] == data)
            .cloned()
    }

    /// Connect a module to `node`, subscribed to `types`.
    pub fn add_module(&mut self, node: NodeId, types: &[u16], policy: Policy) -> usize {
        let ext = self.connect_module(node, types);
        self.modules.push(SimModule {
            node,
            types: types.to_vec(),
            policy,
            ext,
            notified: Vec::new(),
            buf: Vec::new(),
        });
        self.modules.len() - 1
    }

    fn connect_module(&mut self, node: NodeId, types: &[u16]) -> ExtId {
        let ext = self.w.ext_connect(self.configs[node].api_address);
        let mut bytes = Vec::new();
        for &t in types {
            api::write_notify(&mut bytes, t).expect("a NOTIFY is small");
        }
        self.w.ext_send(ext, &bytes);
        ext
    }

    /// Modules whose connection is gone connect again (after their node restarted).
    pub fn reconnect_modules(&mut self) {
        for m in 0..self.modules.len() {
            let gone = matches!(
                self.w.ext_state(self.modules[m].ext),
                ExtState::Closed(_) | ExtState::Failed(_)
            );
            if gone && self.w.is_up(self.modules[m].node) {
                let (node, types) = (self.modules[m].node, self.modules[m].types.clone());
                self.modules[m].ext = self.connect_module(node, &types);
                self.modules[m].buf.clear();
            }
        }
    }

    /// Raw frames from module `m`.
    pub fn module_sends(&mut self, m: usize, bytes: &[u8]) {
        let ext = self.modules[m].ext;
        self.w.ext_send(ext, bytes);
    }

    pub fn announce(&mut self, m: usize, ttl: u8, data_type: u16, data: &[u8]) {
        let mut bytes = Vec::new();
        api::write_announce(&mut bytes, ttl, data_type, data).expect("item fits");
        self.module_sends(m, &bytes);
    }

    /// How many times module `m` was notified of `data`.
    pub fn notified(&self, m: usize, data: &[u8]) -> usize {
        self.modules[m]
            .notified
            .iter()
            .filter(|(_, _, d)| d == data)
            .count()
    }

    /// Let every module read what arrived and answer.
    fn pump(&mut self) {
        for m in &mut self.modules {
            if self.w.ext_received(m.ext).is_empty() {
                continue;
            }
            m.buf.extend(self.w.ext_take(m.ext));
            let mut replies = Vec::new();
            let (used, _) = decode_each(&Framed(ApiCodec), &m.buf, |message| {
                if let ApiMessage::Notification {
                    msg_id,
                    data_type,
                    data,
                } = message
                {
                    m.notified.push((msg_id, data_type, data.to_vec()));
                    match m.policy.answer(data_type, data) {
                        Answer::Valid => api::write_validation(&mut replies, msg_id, true),
                        Answer::Invalid => api::write_validation(&mut replies, msg_id, false),
                        Answer::Never => Ok(()),
                    }
                    .expect("a VALIDATION is small");
                }
                ControlFlow::<()>::Continue(())
            });
            m.buf.drain(..used);
            if !replies.is_empty() {
                self.w.ext_send(m.ext, &replies);
            }
        }
    }

    /// Run `d` of virtual time, the modules answering as notifications arrive.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.w.now().saturating_add(d);
        self.pump();
        while self.w.next_event_at().is_some_and(|at| at <= end) {
            self.w.step();
            self.pump();
        }
        self.w.run_until_time(end);
    }

    /// Run until `done` holds (checked after every event) or `limit` passes.
    pub fn run_until(
        &mut self,
        limit: Duration,
        mut done: impl FnMut(&mut GossipNet) -> bool,
    ) -> bool {
        let end = self.w.now().saturating_add(limit);
        loop {
            self.pump();
            if done(self) {
                return true;
            }
            match self.w.next_event_at() {
                Some(at) if at <= end => {
                    self.w.step();
                }
                _ => {
                    self.w.run_until_time(end);
                    return done(self);
                }
            }
        }
    }

    /// The invariants broken so far.
    pub fn take_violations(&mut self) -> Vec<(String, String)> {
        std::mem::take(&mut *self.violations.borrow_mut())
    }

    /// Each live node's gossip peers, as node numbers (directed: i sends to j).
    pub fn peer_graph(&mut self) -> Vec<BTreeSet<NodeId>> {
        let by_addr: BTreeMap<SocketAddrV4, NodeId> = self
            .configs
            .iter()
            .enumerate()
            .map(|(i, c)| (c.p2p_address, i))
            .collect();
        (0..self.w.node_count())
            .map(|i| match self.node(i) {
                Some(n) => n
                    .peer_addrs()
                    .iter()
                    .filter_map(|a| by_addr.get(a).copied())
                    .collect(),
                None => BTreeSet::new(),
            })
            .collect()
    }
}
