//! An in-memory network of gossip nodes: the Actions one node returns are
//! carried to the others, in order, with no sockets and no clock. Modules
//! are simulated API connections that answer each notification at once.

use super::api::{self, ApiMessage};
use super::node::{Node, NodeConfig, Timer, P2P_LISTENER};
use super::p2p;
use crate::reactor::{Action, Actions, CloseReason, ConnId, Out, Protocol};
use crate::wire::split_frame;
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

const TYPE: u16 = 42;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct End {
    node: usize,
    conn: ConnId,
}

#[derive(Clone, Copy, Debug)]
enum Other {
    Peer(End),
    Module(usize),
}

struct SimModule {
    end: End,
    /// `None`: never answers.
    verdict: Option<bool>,
    notified: Vec<(u16, Vec<u8>)>,
    ids: Vec<u16>,
    buf: Vec<u8>,
}

enum Event {
    Deliver(End, Vec<u8>),
    Closed(End),
}

struct Net {
    nodes: Vec<Option<Node>>,
    addrs: Vec<SocketAddrV4>,
    next_conn: Vec<ConnId>,
    links: HashMap<End, Other>,
    bufs: HashMap<End, Vec<u8>>,
    modules: Vec<SimModule>,
    queue: VecDeque<Event>,
    /// Connections a node's on_data rejected, with why.
    rejected: Vec<(End, String)>,
    /// The simulated clock every event is stamped with.
    now: Instant,
    /// Addresses that accept connections driven by hand, and the nodes'
    /// ends of the connections made to them, in order.
    raw_listeners: Vec<SocketAddrV4>,
    raw_dialled: Vec<(SocketAddrV4, End)>,
}

fn addr(i: usize) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::LOCALHOST, 10_000 + i as u16)
}

impl Net {
    fn new() -> Self {
        Net {
            nodes: Vec::new(),
            addrs: Vec::new(),
            next_conn: Vec::new(),
            links: HashMap::new(),
            bufs: HashMap::new(),
            modules: Vec::new(),
            queue: VecDeque::new(),
            rejected: Vec::new(),
            now: Instant::now(),
            raw_listeners: Vec::new(),
            raw_dialled: Vec::new(),
        }
    }

    /// Add a node bootstrapping from node `boot` (None: a new network).
    fn add_node(&mut self, boot: Option<usize>, degree: usize, cache_size: usize) -> usize {
        let i = self.nodes.len();
        let node = Node::new(NodeConfig {
            p2p_address: addr(i),
            api_address: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 20_000 + i as u16)),
            bootstrapper: boot.map(addr),
            degree,
            cache_size,
            seed: i as u64,
            maintenance: Duration::from_secs(1),
        });
        self.nodes.push(Some(node));
        self.addrs.push(addr(i));
        self.next_conn.push(0);
        self.call(i, |n, now, out| n.on_start(now, out));
        self.run();
        i
    }

    fn new_conn(&mut self, node: usize) -> End {
        let conn = self.next_conn[node];
        self.next_conn[node] += 1;
        End { node, conn }
    }

    fn call(&mut self, i: usize, f: impl FnOnce(&mut Node, Instant, &mut Out<Node>)) {
        let mut out = Actions::new();
        let now = self.now;
        let Some(node) = self.nodes[i].as_mut() else {
            return;
        };
        f(node, now, &mut out);
        self.carry_out(i, out);
    }

    fn carry_out(&mut self, i: usize, out: Out<Node>) {
        for (conn, bytes) in out.sent() {
            let end = End { node: i, conn };
            match self.links.get(&end).copied() {
                Some(Other::Peer(to)) => self.queue.push_back(Event::Deliver(to, bytes.to_vec())),
                Some(Other::Module(m)) => self.deliver_to_module(m, bytes),
                None => {}
            }
        }
        for action in out.others() {
            match action {
                Action::Connect { addr, tag } => {
                    let raw = self
                        .raw_listeners
                        .iter()
                        .find(|a| SocketAddr::V4(**a) == *addr)
                        .copied();
                    if let Some(raw) = raw {
                        let a = self.new_conn(i);
                        self.raw_dialled.push((raw, a));
                        let tag = *tag;
                        self.call(i, |n, now, out| n.on_connected(now, tag, a.conn, out));
                        continue;
                    }
                    let target = self
                        .addrs
                        .iter()
                        .position(|a| SocketAddr::V4(*a) == *addr)
                        .filter(|&j| self.nodes[j].is_some());
                    match target {
                        Some(j) => {
                            let a = self.new_conn(i);
                            let b = self.new_conn(j);
                            self.links.insert(a, Other::Peer(b));
                            self.links.insert(b, Other::Peer(a));
                            let from = SocketAddr::V4(SocketAddrV4::new(
                                Ipv4Addr::LOCALHOST,
                                40_000 + a.conn as u16,
                            ));
                            self.call(j, |n, now, out| {
                                n.on_accept(now, P2P_LISTENER, b.conn, from, out)
                            });
                            let tag = *tag;
                            self.call(i, |n, now, out| n.on_connected(now, tag, a.conn, out));
                        }
                        None => {
                            let tag = *tag;
                            self.call(i, |n, now, out| {
                                n.on_connect_failed(now, tag, "refused", out)
                            });
                        }
                    }
                }
                Action::Close(conn) | Action::CloseAfterFlush(conn) => {
                    let end = End {
                        node: i,
                        conn: *conn,
                    };
                    if let Some(Other::Peer(to)) = self.links.remove(&end) {
                        self.queue.push_back(Event::Closed(to));
                    }
                }
                Action::Timer { .. } | Action::Print(_) | Action::Stop => {}
            }
        }
    }

    fn deliver_to_module(&mut self, m: usize, bytes: &[u8]) {
        let module = &mut self.modules[m];
        module.buf.extend_from_slice(bytes);
        let mut used = 0;
        let mut replies = Vec::new();
        while let Some(frame) = split_frame(&module.buf[used..]).unwrap() {
            used += frame.len;
            match api::decode(frame.kind, frame.body).unwrap() {
                ApiMessage::Notification {
                    msg_id,
                    data_type,
                    data,
                } => {
                    module.notified.push((data_type, data.to_vec()));
                    module.ids.push(msg_id);
                    if let Some(valid) = module.verdict {
                        api::write_validation(&mut replies, msg_id, valid).unwrap();
                    }
                }
                other => panic!("module got {other:?}"),
            }
        }
        module.buf.drain(..used);
        if !replies.is_empty() {
            self.queue
                .push_back(Event::Deliver(self.modules[m].end, replies));
        }
    }

    /// Connect a module to `node`, subscribed to `types`.
    fn add_module(&mut self, node: usize, types: &[u16], verdict: Option<bool>) -> usize {
        let end = self.new_conn(node);
        let m = self.modules.len();
        self.modules.push(SimModule {
            end,
            verdict,
            notified: Vec::new(),
            ids: Vec::new(),
            buf: Vec::new(),
        });
        self.links.insert(end, Other::Module(m));
        let from = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 50_000 + m as u16));
        self.call(node, |n, now, out| n.on_accept(now, 0, end.conn, from, out));
        let mut bytes = Vec::new();
        for &t in types {
            api::write_notify(&mut bytes, t).unwrap();
        }
        self.queue.push_back(Event::Deliver(end, bytes));
        self.run();
        m
    }

    fn module_sends(&mut self, m: usize, bytes: Vec<u8>) {
        self.queue
            .push_back(Event::Deliver(self.modules[m].end, bytes));
        self.run();
    }

    fn announce(&mut self, m: usize, ttl: u8, data: &[u8]) {
        let mut bytes = Vec::new();
        api::write_announce(&mut bytes, ttl, TYPE, data).unwrap();
        self.module_sends(m, bytes);
    }

    fn run(&mut self) {
        let mut steps = 0;
        while let Some(event) = self.queue.pop_front() {
            steps += 1;
            assert!(steps < 1_000_000, "the network does not settle");
            match event {
                Event::Deliver(end, bytes) => {
                    if !self.links.contains_key(&end) || self.nodes[end.node].is_none() {
                        continue;
                    }
                    let mut buf = self.bufs.remove(&end).unwrap_or_default();
                    buf.extend_from_slice(&bytes);
                    let mut out = Actions::new();
                    let node = self.nodes[end.node].as_mut().unwrap();
                    match node.on_data(self.now, end.conn, &buf, &mut out) {
                        Ok(used) => {
                            buf.drain(..used);
                            self.bufs.insert(end, buf);
                            self.carry_out(end.node, out);
                        }
                        Err(why) => {
                            self.carry_out(end.node, out);
                            self.rejected.push((end, why));
                            if let Some(Other::Peer(to)) = self.links.remove(&end) {
                                self.queue.push_back(Event::Closed(to));
                            }
                        }
                    }
                }
                Event::Closed(end) => {
                    if self.links.remove(&end).is_some() {
                        self.bufs.remove(&end);
                        self.call(end.node, |n, now, out| {
                            n.on_closed(now, end.conn, &CloseReason::PeerClosed, out)
                        });
                    }
                }
            }
        }
    }

    /// One maintenance round on every node.
    fn tick(&mut self) {
        for i in 0..self.nodes.len() {
            self.call(i, |n, now, out| n.on_timer(now, Timer::Maintenance, out));
            self.run();
        }
    }

    fn kill(&mut self, i: usize) {
        self.nodes[i] = None;
        let ends: Vec<End> = self.links.keys().copied().filter(|e| e.node == i).collect();
        for end in ends {
            if let Some(Other::Peer(to)) = self.links.remove(&end) {
                self.queue.push_back(Event::Closed(to));
            }
        }
        self.run();
    }

    fn state(&self, i: usize) -> Value {
        self.nodes[i].as_ref().unwrap().state()
    }

    fn item(&self, i: usize, data: &str) -> Option<Value> {
        self.state(i)["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|it| it["data"] == data)
            .cloned()
    }

    fn notified(&self, m: usize, data: &[u8]) -> usize {
        self.modules[m]
            .notified
            .iter()
            .filter(|(_, d)| d == data)
            .count()
    }

    /// A network of `n` nodes all joining through node 0, settled.
    fn joined(n: usize, degree: usize) -> Net {
        let mut net = Net::new();
        net.add_node(None, degree, 50);
        for _ in 1..n {
            net.add_node(Some(0), degree, 50);
        }
        for _ in 0..8 {
            net.tick();
        }
        net
    }
}

#[test]
fn one_announcement_reaches_every_module_and_each_node_forwards_once() {
    let mut net = Net::joined(50, 4);
    for i in 0..50 {
        let peers = net.state(i)["peer_count"].as_u64().unwrap();
        assert!((1..=8).contains(&peers), "node {i} has {peers} peers");
    }
    let subscribed: Vec<usize> = (0..50)
        .map(|i| net.add_module(i, &[TYPE], Some(true)))
        .collect();
    let announcer = net.add_module(0, &[], Some(true));
    net.announce(announcer, 0, b"hello");
    for (i, &m) in subscribed.iter().enumerate() {
        assert_eq!(net.notified(m, b"hello"), 1, "module of node {i}");
        let item = net.item(i, "hello").unwrap();
        assert_eq!(item["forwards"], 1, "node {i}: {item}");
    }
    assert!(
        net.modules[announcer].notified.is_empty(),
        "the announcer is not notified"
    );
    let sent: u64 = (0..50)
        .map(|i| net.state(i)["items_sent"].as_u64().unwrap())
        .sum();
    let received: u64 = (0..50)
        .map(|i| net.state(i)["items_received"].as_u64().unwrap())
        .sum();
    assert_eq!(sent, received);
    // The same item announced again goes nowhere.
    net.announce(announcer, 0, b"hello");
    let again: u64 = (0..50)
        .map(|i| net.state(i)["items_sent"].as_u64().unwrap())
        .sum();
    assert_eq!(again, sent);
}

#[test]
fn a_module_judging_invalid_stops_the_item_at_its_node() {
    // A chain a - b - c: c's only peer is b.
    let mut net = Net::new();
    let a = net.add_node(None, 1, 50);
    let b = net.add_node(Some(a), 2, 50);
    let c = net.add_node(Some(b), 1, 50);
    net.tick();
    net.tick();
    assert_eq!(net.state(a)["peer_count"], 1);
    assert_eq!(net.state(b)["peer_count"], 2);
    assert_eq!(net.state(c)["peer_count"], 1);
    let ma = net.add_module(a, &[TYPE], Some(true));
    let mb = net.add_module(b, &[TYPE], Some(false));
    let mc = net.add_module(c, &[TYPE], Some(true));
    net.announce(ma, 0, b"fake news");
    assert_eq!(net.notified(mb, b"fake news"), 1);
    assert_eq!(net.item(b, "fake news").unwrap()["verdict"], "invalid");
    assert_eq!(net.item(b, "fake news").unwrap()["forwards"], 0);
    assert_eq!(net.notified(mc, b"fake news"), 0);
    assert!(net.item(c, "fake news").is_none());
    // A valid item still gets through b.
    net.modules[mb].verdict = Some(true);
    net.announce(ma, 0, b"true news");
    assert_eq!(net.notified(mc, b"true news"), 1);
}

#[test]
fn nothing_is_forwarded_before_a_valid_verdict() {
    let mut net = Net::new();
    let a = net.add_node(None, 1, 50);
    let b = net.add_node(Some(a), 2, 50);
    let c = net.add_node(Some(b), 1, 50);
    let ma = net.add_module(a, &[TYPE], Some(true));
    let mb = net.add_module(b, &[TYPE], None);
    let mc = net.add_module(c, &[TYPE], Some(true));
    net.announce(ma, 0, b"wait");
    assert_eq!(net.item(b, "wait").unwrap()["verdict"], "awaiting");
    assert!(net.item(c, "wait").is_none());
    // A verdict from a connection not subscribed to the type counts for nothing.
    let stranger = net.add_module(b, &[7], None);
    let mut verdict = Vec::new();
    api::write_validation(&mut verdict, 0, true).unwrap();
    net.module_sends(stranger, verdict.clone());
    assert!(net.item(c, "wait").is_none());
    net.module_sends(mb, verdict);
    assert_eq!(net.notified(mc, b"wait"), 1);
}

#[test]
fn items_of_a_type_nobody_subscribed_to_are_not_forwarded() {
    let mut net = Net::new();
    let a = net.add_node(None, 1, 50);
    let b = net.add_node(Some(a), 2, 50);
    let c = net.add_node(Some(b), 1, 50);
    let ma = net.add_module(a, &[], Some(true));
    let mc = net.add_module(c, &[TYPE], Some(true));
    net.announce(ma, 0, b"nobody here");
    assert_eq!(
        net.item(b, "nobody here").unwrap()["verdict"],
        "unsubscribed"
    );
    assert_eq!(net.notified(mc, b"nobody here"), 0);
}

#[test]
fn ttl_counts_hops_and_zero_is_unlimited() {
    // A chain of five: each node dials one peer, the one before it.
    let mut net = Net::new();
    net.add_node(None, 1, 50);
    for i in 1..5 {
        net.add_node(Some(i - 1), 1, 50);
    }
    net.tick();
    let counts: Vec<u64> = (0..5)
        .map(|i| net.state(i)["peer_count"].as_u64().unwrap())
        .collect();
    assert_eq!(counts, [1, 2, 2, 2, 1]);
    let modules: Vec<usize> = (0..5)
        .map(|i| net.add_module(i, &[TYPE], Some(true)))
        .collect();
    let announcer = net.add_module(0, &[], Some(true));
    net.announce(announcer, 2, b"two hops");
    let reached: Vec<usize> = (0..5)
        .map(|i| net.notified(modules[i], b"two hops"))
        .collect();
    assert_eq!(reached, [1, 1, 1, 0, 0]);
    net.announce(announcer, 0, b"everywhere");
    let reached: Vec<usize> = (0..5)
        .map(|i| net.notified(modules[i], b"everywhere"))
        .collect();
    assert_eq!(reached, [1, 1, 1, 1, 1]);
}

#[test]
fn after_a_fifth_of_the_nodes_die_announcements_still_reach_every_live_node() {
    let mut net = Net::joined(50, 4);
    let modules: Vec<usize> = (0..50)
        .map(|i| net.add_module(i, &[TYPE], Some(true)))
        .collect();
    let announcer = net.add_module(0, &[], Some(true));
    net.announce(announcer, 0, b"before");
    for i in (5..50).step_by(5) {
        net.kill(i);
    }
    net.kill(1);
    for _ in 0..5 {
        net.tick();
    }
    net.announce(announcer, 0, b"after");
    for (i, &m) in modules.iter().enumerate() {
        if net.nodes[i].is_some() {
            assert_eq!(net.notified(m, b"after"), 1, "node {i}");
            assert_eq!(net.item(i, "after").unwrap()["forwards"], 1);
        }
    }
}

#[test]
fn message_ids_are_unique_while_awaited_and_the_cache_is_bounded() {
    let mut net = Net::new();
    let a = net.add_node(None, 1, 100);
    let b = net.add_node(Some(a), 1, 10);
    let ma = net.add_module(a, &[], Some(true));
    let silent = net.add_module(b, &[TYPE], None);
    for k in 0..10 {
        net.announce(ma, 0, format!("item {k}").as_bytes());
    }
    let state = net.state(b);
    assert_eq!(state["cached"], 10);
    assert_eq!(state["awaiting_verdict"], 10);
    let mut ids = net.modules[silent].ids.clone();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(
        ids.len(),
        10,
        "every item awaiting a verdict has its own ID"
    );
    for k in 10..25 {
        net.announce(ma, 0, format!("item {k}").as_bytes());
    }
    let state = net.state(b);
    assert_eq!(state["cached"], 10, "cache_size bounds the items held");
    assert_eq!(state["awaiting_verdict"], 10);
    assert_eq!(net.item(b, "item 0").unwrap()["verdict"], "expired");
}

#[test]
fn malformed_frames_close_only_that_connection() {
    let mut net = Net::joined(3, 2);
    let m = net.add_module(0, &[TYPE], Some(true));
    for (port, bytes, why) in [
        ("api", vec![0, 3, 1, 244], "under the 4-byte header"),
        ("api", vec![0, 4, 3, 9], "unknown message type 777"),
        ("p2p", vec![0, 4, 3, 9], "unknown message type 777"),
        (
            "p2p",
            vec![0, 12, 1, 249, 0, 2, 127, 0, 0, 1, 0, 1],
            "lists 2 addresses",
        ),
    ] {
        let end = net.new_conn(0);
        let from = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 1));
        let listener = if port == "api" { 0 } else { P2P_LISTENER };
        net.call(0, |n, now, out| {
            n.on_accept(now, listener, end.conn, from, out)
        });
        let mut out = Actions::new();
        let now = net.now;
        let node = net.nodes[0].as_mut().unwrap();
        assert_eq!(
            node.on_data(now, end.conn, &bytes, &mut out),
            Ok(bytes.len())
        );
        assert_eq!(out.others(), [Action::CloseAfterFlush(end.conn)]);
        let why_closed = net.state(0)["last_rejection"].to_string();
        assert!(why_closed.contains(why), "{why_closed}");
    }
    // A frame that has not all arrived is waited for.
    let end = net.new_conn(0);
    let from = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 2));
    net.call(0, |n, now, out| {
        n.on_accept(now, P2P_LISTENER, end.conn, from, out)
    });
    let mut out = Actions::new();
    let now = net.now;
    let node = net.nodes[0].as_mut().unwrap();
    assert_eq!(
        node.on_data(now, end.conn, &[0, 200, 1, 251, 0], &mut out),
        Ok(0)
    );
    node.on_closed(now, end.conn, &CloseReason::PeerClosed, &mut out);
    // The node still serves its module.
    let other = net.add_module(1, &[], Some(true));
    net.announce(other, 0, b"still here");
    assert_eq!(net.notified(m, b"still here"), 1);
}

#[test]
fn a_pull_is_answered_with_known_peers() {
    let mut net = Net::joined(4, 3);
    let end = net.new_conn(0);
    let from = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 3));
    net.call(0, |n, now, out| {
        n.on_accept(now, P2P_LISTENER, end.conn, from, out)
    });
    let mut pull = Vec::new();
    p2p::write_pull(&mut pull, &addr(99));
    let mut out = Actions::new();
    net.nodes[0]
        .as_mut()
        .unwrap()
        .on_data(net.now, end.conn, &pull, &mut out)
        .unwrap();
    let sent = out.sent();
    let frame = split_frame(sent[0].1).unwrap().unwrap();
    match p2p::decode(frame.kind, frame.body).unwrap() {
        p2p::P2pMessage::PullResponse(list) => {
            let mut ports: Vec<u16> = list.iter().map(|a| a.port()).collect();
            ports.sort();
            assert_eq!(ports, [10_001, 10_002, 10_003]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(net.state(0)["known_peers"], 4, "the puller was learnt");
}

// ---- the duplicate budget (hardening item 16) ----

impl Net {
    /// A peer connection to `node` driven by hand: nothing the node sends
    /// it is delivered anywhere. It PUSHes `listen` as its address.
    fn raw_peer(&mut self, node: usize, listen: SocketAddrV4) -> End {
        let end = self.new_conn(node);
        let from = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 60_000));
        self.call(node, |n, now, out| {
            n.on_accept(now, P2P_LISTENER, end.conn, from, out)
        });
        let mut push = Vec::new();
        p2p::write_push(&mut push, &listen);
        assert!(!self.raw_send(end, &push));
        end
    }

    /// `bytes` from a hand-driven connection; true if the node closed it.
    fn raw_send(&mut self, end: End, bytes: &[u8]) -> bool {
        let mut out = Actions::new();
        let now = self.now;
        let node = self.nodes[end.node].as_mut().unwrap();
        assert_eq!(
            node.on_data(now, end.conn, bytes, &mut out),
            Ok(bytes.len())
        );
        let closed = out
            .others()
            .iter()
            .any(|a| matches!(a, Action::Close(c) | Action::CloseAfterFlush(c) if *c == end.conn));
        self.carry_out(end.node, out);
        self.run();
        closed
    }
}

fn content(data: &[u8]) -> Vec<u8> {
    let mut frame = Vec::new();
    p2p::write_content(&mut frame, 0, TYPE, data).unwrap();
    frame
}

#[test]
fn a_peer_flooding_one_item_is_cut_off_once_and_the_node_serves_on() {
    let mut net = Net::joined(2, 4);
    let m0 = net.add_module(0, &[TYPE], Some(true));
    let m1 = net.add_module(1, &[TYPE], Some(true));
    let flooder = net.raw_peer(0, addr(77));
    assert_eq!(net.state(0)["peer_count"], 2);
    let item = content(b"again and again");
    assert!(!net.raw_send(flooder, &item), "the first copy is news");
    assert_eq!(net.notified(m0, b"again and again"), 1);
    // 5,000 copies a second, as two linked seed peers bounce an item.
    let allowed = super::budget::BASE + super::budget::PER_NEW_ITEM;
    let mut cut_at = None;
    for i in 1..=20_000u64 {
        net.now += Duration::from_micros(200);
        if net.raw_send(flooder, &item) {
            cut_at = Some(i);
            break;
        }
    }
    assert_eq!(
        cut_at,
        Some(allowed + 1),
        "cut at the first copy past the budget"
    );
    let state = net.state(0);
    assert_eq!(state["rejected_connections"], 1);
    let why = state["last_rejection"].as_str().unwrap();
    assert!(
        why.contains(&format!(
            "sent {} items we already had within 10 s (allowed {allowed})",
            allowed + 1
        )),
        "{why}"
    );
    assert_eq!(state["peer_count"], 1, "only the flooder is gone: {state}");
    // What it sends after the cut is discarded unread.
    assert!(!net.raw_send(flooder, &item));
    assert_eq!(net.state(0)["rejected_connections"], 1, "cut off once");
    assert_eq!(net.notified(m0, b"again and again"), 1);
    // The node serves on: an announcement still crosses to node 1.
    let announcer = net.add_module(0, &[], Some(true));
    net.announce(announcer, 0, b"after the flood");
    assert_eq!(net.notified(m1, b"after the flood"), 1);
}

#[test]
fn a_flooder_we_dialled_is_not_dialled_again_until_its_shun_lapses() {
    let mut net = Net::new();
    let flooder = addr(66);
    net.raw_listeners.push(flooder);
    let victim = net.add_node(Some(66), 4, 50);
    net.add_module(victim, &[TYPE], Some(true));
    assert_eq!(
        net.raw_dialled.len(),
        1,
        "the victim dialled its bootstrapper"
    );
    assert_eq!(net.state(victim)["outgoing"], 1);
    let link = net.raw_dialled[0].1;
    let item = content(b"loop");
    let mut copies = 0;
    while !net.raw_send(link, &item) {
        copies += 1;
        assert!(copies < 5000, "never cut off");
    }
    let state = net.state(victim);
    assert_eq!(state["rejected_connections"], 1, "{state}");
    assert_eq!(state["shunned"], 1);
    assert!(
        state["last_rejection"]
            .as_str()
            .unwrap()
            .ends_with("disconnected; not dialled again for 120 s"),
        "{state}"
    );
    for _ in 0..5 {
        net.now += Duration::from_secs(1);
        net.tick();
    }
    assert_eq!(net.raw_dialled.len(), 1, "the flooder was dialled again");
    // Coming back on its own, naming itself, it is turned away quietly.
    let comeback = net.raw_peer(victim, addr(99));
    let mut push = Vec::new();
    p2p::write_push(&mut push, &flooder);
    let back = net.new_conn(victim);
    let from = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 61_000));
    net.call(victim, |n, now, out| {
        n.on_accept(now, P2P_LISTENER, back.conn, from, out)
    });
    assert!(net.raw_send(back, &push), "a shunned address is refused");
    assert!(!net.raw_send(comeback, &item), "others are not");
    // Once the shun lapses, the bootstrapper is tried again (when alone).
    net.call(victim, |n, now, out| {
        n.on_closed(now, comeback.conn, &CloseReason::PeerClosed, out)
    });
    net.now += Duration::from_secs(120);
    net.tick();
    net.tick();
    assert_eq!(net.state(victim)["shunned"], 0);
    assert_eq!(
        net.raw_dialled.len(),
        2,
        "the bootstrapper is dialled again"
    );
}

#[test]
fn honest_heavy_traffic_in_a_dense_network_never_trips_the_budget() {
    // Ten nodes all linked to each other; 3,000 items at one instant, so
    // every neighbour forwards each item at about the same time and many
    // arrive twice over one link: more duplicates than the base allows.
    let mut net = Net::joined(10, 9);
    for i in 0..10 {
        assert_eq!(
            net.state(i)["peer_count"],
            9,
            "node {i} is not fully linked"
        );
    }
    let modules: Vec<usize> = (0..10)
        .map(|i| net.add_module(i, &[TYPE], Some(true)))
        .collect();
    let announcer = net.add_module(0, &[], Some(true));
    for k in 0..3000 {
        net.announce(announcer, 0, format!("burst {k}").as_bytes());
    }
    let most = (0..10)
        .map(|i| {
            net.state(i)["most_duplicates_from_one_peer"]
                .as_u64()
                .unwrap()
        })
        .max()
        .unwrap();
    assert!(
        most > super::budget::BASE,
        "the test must exceed the base to show the allowance matters: {most}"
    );
    for (i, &m) in modules.iter().enumerate() {
        let state = net.state(i);
        assert_eq!(state["rejected_connections"], 0, "node {i}: {state}");
        assert_eq!(state["peer_count"], 9, "node {i}");
        assert_eq!(net.modules[m].notified.len(), 3000, "node {i}");
    }
}

#[test]
fn a_seed_peer_echoing_every_copy_and_repeating_pull_replies_is_not_cut() {
    // The seed's Python peer sends each copy it receives to every
    // connection, the sender included: with 30 neighbours, each item comes
    // back to us up to 30 times. Its PULL RESPONSE lists its whole peer
    // list (us included, with duplicates), and it answers every PULL.
    let mut net = Net::joined(2, 4);
    net.add_module(0, &[TYPE], Some(true));
    let announcer = net.add_module(0, &[], Some(true));
    let seed = net.raw_peer(0, addr(88));
    let mut reply = Vec::new();
    let listed: Vec<SocketAddrV4> = [0, 1, 88, 0, 1].iter().map(|&i| addr(i)).collect();
    p2p::write_pull_response(&mut reply, &listed);
    let mut push = Vec::new();
    p2p::write_push(&mut push, &addr(88));
    for k in 0..1500 {
        let data = format!("startup {k}");
        net.announce(announcer, 0, data.as_bytes());
        let echo = content(data.as_bytes());
        for _ in 0..30 {
            assert!(!net.raw_send(seed, &echo), "cut at item {k}");
        }
        assert!(!net.raw_send(seed, &reply));
        assert!(!net.raw_send(seed, &push));
        net.now += Duration::from_millis(5);
    }
    let state = net.state(0);
    assert_eq!(state["rejected_connections"], 0, "{state}");
    assert_eq!(state["peer_count"], 2);
    assert!(state["duplicates_received"].as_u64().unwrap() >= 45_000);
}

#[test]
fn a_peer_that_closes_at_once_is_not_redialled_at_once() {
    // A full node answers a newcomer's PULL and closes. Redialling it at
    // once would loop at network speed; the next maintenance tick may.
    let mut net = Net::new();
    net.raw_listeners.push(addr(55));
    let x = net.add_node(Some(55), 1, 50);
    assert_eq!(net.raw_dialled.len(), 1);
    for round in 1..=3 {
        let link = net.raw_dialled[round - 1].1;
        net.call(x, |n, now, out| {
            n.on_closed(now, link.conn, &CloseReason::PeerClosed, out)
        });
        assert_eq!(net.raw_dialled.len(), round, "redialled at once");
        net.tick();
        assert_eq!(net.raw_dialled.len(), round + 1, "tried again at the tick");
    }
}
