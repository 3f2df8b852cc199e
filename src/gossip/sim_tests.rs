//! Gossip networks in the simulated world: real nodes over simulated TCP,
//! modules and hand-driven peers as the world's test connections (see
//! `sim_net`). Every node is watched: a module notified twice or an item
//! forwarded before a valid verdict fails the test that caused it.

use super::api;
use super::p2p::{self, P2pCodec, P2pMessage};
use super::sim_net::{p2p_addr, Answer, GossipNet, Policy};
use crate::sim::{ExtId, ExtState, Latency, NodeId, World};
use crate::wire::{decode_each, Framed, Stopped};
use std::collections::BTreeSet;
use std::net::{SocketAddr, SocketAddrV4};
use std::ops::ControlFlow;
use std::time::Duration;

const TYPE: u16 = 42;
const TICK: Duration = Duration::from_secs(1);

fn net(seed: u64) -> GossipNet {
    let mut w = World::new(seed);
    w.enable_trace();
    GossipNet::new(w)
}

fn always(verdict: Option<bool>) -> Policy {
    Policy::Always(Answer::from_option(verdict))
}

trait Helpers {
    fn settle(&mut self);
    fn ticks(&mut self, n: u32);
    fn module(&mut self, node: NodeId, types: &[u16], verdict: Option<bool>) -> usize;
    fn say(&mut self, m: usize, ttl: u8, data: &[u8]);
    fn count(&mut self, i: NodeId, key: &str) -> u64;
    fn check(&mut self);
}

impl Helpers for GossipNet {
    /// Long enough for anything in flight to arrive (links take < 1 ms).
    fn settle(&mut self) {
        self.run_for(Duration::from_millis(200));
        self.check();
    }

    fn ticks(&mut self, n: u32) {
        self.run_for(TICK * n);
        self.check();
    }

    fn module(&mut self, node: NodeId, types: &[u16], verdict: Option<bool>) -> usize {
        let m = self.add_module(node, types, always(verdict));
        self.settle();
        m
    }

    fn say(&mut self, m: usize, ttl: u8, data: &[u8]) {
        self.announce(m, ttl, TYPE, data);
        self.settle();
    }

    fn count(&mut self, i: NodeId, key: &str) -> u64 {
        self.state(i)[key].as_u64().unwrap()
    }

    /// The watched invariants held.
    fn check(&mut self) {
        let broken = self.take_violations();
        assert!(broken.is_empty(), "{broken:?}");
    }
}

/// `n` nodes all joining through node 0, settled.
fn joined(seed: u64, n: usize, degree: usize) -> GossipNet {
    joined_cache(seed, n, degree, 50)
}

fn joined_cache(seed: u64, n: usize, degree: usize, cache: usize) -> GossipNet {
    let mut net = net(seed);
    net.add_node(None, degree, cache);
    for _ in 1..n {
        net.add_node(Some(0), degree, cache);
        net.run_for(Duration::from_millis(10));
    }
    net.ticks(8);
    net
}

/// a — b — c: b has room for two peers, a and c for one.
fn chain3(seed: u64) -> (GossipNet, [NodeId; 3]) {
    let mut net = net(seed);
    let a = net.add_node(None, 1, 50);
    net.settle();
    let b = net.add_node(Some(a), 2, 50);
    net.settle();
    let c = net.add_node(Some(b), 1, 50);
    net.ticks(2);
    (net, [a, b, c])
}

#[test]
fn one_announcement_reaches_every_module_and_each_node_forwards_once() {
    let mut net = joined(1, 50, 4);
    for i in 0..50 {
        let peers = net.count(i, "peer_count");
        assert!((1..=8).contains(&peers), "node {i} has {peers} peers");
    }
    let subscribed: Vec<usize> = (0..50)
        .map(|i| net.module(i, &[TYPE], Some(true)))
        .collect();
    let announcer = net.module(0, &[], Some(true));
    net.say(announcer, 0, b"hello");
    for (i, &m) in subscribed.iter().enumerate() {
        assert_eq!(net.notified(m, b"hello"), 1, "module of node {i}");
        let item = net.item(i, "hello").unwrap();
        assert_eq!(item["forwards"], 1, "node {i}: {item}");
    }
    assert!(
        net.modules[announcer].notified.is_empty(),
        "the announcer is not notified"
    );
    let sent: u64 = (0..50).map(|i| net.count(i, "items_sent")).sum();
    let received: u64 = (0..50).map(|i| net.count(i, "items_received")).sum();
    assert_eq!(sent, received);
    // The same item announced again goes nowhere.
    net.say(announcer, 0, b"hello");
    let again: u64 = (0..50).map(|i| net.count(i, "items_sent")).sum();
    assert_eq!(again, sent);
}

#[test]
fn a_module_judging_invalid_stops_the_item_at_its_node() {
    let (mut net, [a, b, c]) = chain3(2);
    assert_eq!(net.state(a)["peer_count"], 1);
    assert_eq!(net.state(b)["peer_count"], 2);
    assert_eq!(net.state(c)["peer_count"], 1);
    let ma = net.module(a, &[TYPE], Some(true));
    let mb = net.module(b, &[TYPE], Some(false));
    let mc = net.module(c, &[TYPE], Some(true));
    net.say(ma, 0, b"fake news");
    assert_eq!(net.notified(mb, b"fake news"), 1);
    assert_eq!(net.item(b, "fake news").unwrap()["verdict"], "invalid");
    assert_eq!(net.item(b, "fake news").unwrap()["forwards"], 0);
    assert_eq!(net.notified(mc, b"fake news"), 0);
    assert!(net.item(c, "fake news").is_none());
    // A valid item still gets through b.
    net.modules[mb].policy = always(Some(true));
    net.say(ma, 0, b"true news");
    assert_eq!(net.notified(mc, b"true news"), 1);
}

#[test]
fn nothing_is_forwarded_before_a_valid_verdict() {
    let (mut net, [a, b, c]) = chain3(3);
    let ma = net.module(a, &[TYPE], Some(true));
    let mb = net.module(b, &[TYPE], None);
    let mc = net.module(c, &[TYPE], Some(true));
    net.say(ma, 0, b"wait");
    net.ticks(3);
    assert_eq!(net.item(b, "wait").unwrap()["verdict"], "awaiting");
    assert!(net.item(c, "wait").is_none());
    let msg_id = net.modules[mb].notified[0].0;
    // A verdict from a connection not subscribed to the type counts for nothing.
    let stranger = net.module(b, &[7], None);
    let mut verdict = Vec::new();
    api::write_validation(&mut verdict, msg_id, true).unwrap();
    net.module_sends(stranger, &verdict);
    net.settle();
    assert!(net.item(c, "wait").is_none());
    net.module_sends(mb, &verdict);
    net.settle();
    assert_eq!(net.notified(mc, b"wait"), 1);
}

#[test]
fn items_of_a_type_nobody_subscribed_to_are_not_forwarded() {
    let (mut net, [a, b, c]) = chain3(4);
    let ma = net.module(a, &[], Some(true));
    let mc = net.module(c, &[TYPE], Some(true));
    net.say(ma, 0, b"nobody here");
    assert_eq!(
        net.item(b, "nobody here").unwrap()["verdict"],
        "unsubscribed"
    );
    assert_eq!(net.notified(mc, b"nobody here"), 0);
}

#[test]
fn ttl_counts_hops_and_zero_is_unlimited() {
    // A chain of five: each node dials one peer, the one before it.
    let mut net = net(5);
    net.add_node(None, 1, 50);
    for i in 1..5 {
        net.settle();
        net.add_node(Some(i - 1), 1, 50);
    }
    net.ticks(2);
    let counts: Vec<u64> = (0..5).map(|i| net.count(i, "peer_count")).collect();
    assert_eq!(counts, [1, 2, 2, 2, 1]);
    let modules: Vec<usize> = (0..5).map(|i| net.module(i, &[TYPE], Some(true))).collect();
    let announcer = net.module(0, &[], Some(true));
    net.say(announcer, 2, b"two hops");
    let reached: Vec<usize> = (0..5)
        .map(|i| net.notified(modules[i], b"two hops"))
        .collect();
    assert_eq!(reached, [1, 1, 1, 0, 0]);
    net.say(announcer, 0, b"everywhere");
    let reached: Vec<usize> = (0..5)
        .map(|i| net.notified(modules[i], b"everywhere"))
        .collect();
    assert_eq!(reached, [1, 1, 1, 1, 1]);
}

#[test]
fn after_a_fifth_of_the_nodes_die_announcements_still_reach_every_live_node() {
    let mut net = joined(6, 50, 4);
    let modules: Vec<usize> = (0..50)
        .map(|i| net.module(i, &[TYPE], Some(true)))
        .collect();
    let announcer = net.module(0, &[], Some(true));
    net.say(announcer, 0, b"before");
    let dead: BTreeSet<NodeId> = (5..50).step_by(5).chain([1]).collect();
    for &i in &dead {
        net.w.crash(i);
    }
    net.ticks(5);
    net.say(announcer, 0, b"after");
    for (i, &m) in modules.iter().enumerate() {
        if !dead.contains(&i) {
            assert_eq!(net.notified(m, b"after"), 1, "node {i}");
            assert_eq!(net.item(i, "after").unwrap()["forwards"], 1);
        }
    }
}

#[test]
fn message_ids_are_unique_while_awaited_and_the_cache_is_bounded() {
    let mut net = net(7);
    let a = net.add_node(None, 1, 100);
    net.settle();
    let b = net.add_node(Some(a), 1, 10);
    net.settle();
    let ma = net.module(a, &[], Some(true));
    let silent = net.module(b, &[TYPE], None);
    for k in 0..10 {
        net.say(ma, 0, format!("item {k}").as_bytes());
    }
    let state = net.state(b);
    assert_eq!(state["cached"], 10);
    assert_eq!(state["awaiting_verdict"], 10);
    let ids: BTreeSet<u16> = net.modules[silent].notified.iter().map(|n| n.0).collect();
    assert_eq!(
        ids.len(),
        10,
        "every item awaiting a verdict has its own ID"
    );
    for k in 10..25 {
        net.say(ma, 0, format!("item {k}").as_bytes());
    }
    let state = net.state(b);
    assert_eq!(state["cached"], 10, "cache_size bounds the items held");
    assert_eq!(state["awaiting_verdict"], 10);
    assert_eq!(net.item(b, "item 0").unwrap()["verdict"], "expired");
}

fn api_of(net: &GossipNet, i: NodeId) -> SocketAddr {
    net.configs[i].api_address
}

fn p2p_of(net: &GossipNet, i: NodeId) -> SocketAddr {
    SocketAddr::V4(net.configs[i].p2p_address)
}

fn closed(net: &GossipNet, ext: ExtId) -> bool {
    matches!(net.w.ext_state(ext), ExtState::Closed(_))
}

#[test]
fn malformed_frames_close_only_that_connection() {
    let mut net = joined(8, 3, 2);
    let m = net.module(0, &[TYPE], Some(true));
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
        let to = if port == "api" {
            api_of(&net, 0)
        } else {
            p2p_of(&net, 0)
        };
        let ext = net.w.ext_connect(to);
        net.w.ext_send(ext, &bytes);
        net.settle();
        assert!(
            closed(&net, ext),
            "{port} {bytes:?}: {:?}",
            net.w.ext_state(ext)
        );
        let why_closed = net.state(0)["last_rejection"].to_string();
        assert!(why_closed.contains(why), "{why_closed}");
    }
    // A frame that has not all arrived is waited for, and its sender may leave.
    let ext = net.w.ext_connect(p2p_of(&net, 0));
    net.w.ext_send(ext, &[0, 200, 1, 251, 0]);
    net.settle();
    assert_eq!(*net.w.ext_state(ext), ExtState::Open);
    net.w.ext_close(ext);
    net.settle();
    // The node still serves its module.
    let other = net.module(1, &[], Some(true));
    net.say(other, 0, b"still here");
    assert_eq!(net.notified(m, b"still here"), 1);
}

/// The addresses of the first message received on a test connection,
/// which must be a PULL RESPONSE.
fn first_pull_response(bytes: &[u8]) -> Vec<SocketAddrV4> {
    let (_, stopped) = decode_each(&Framed(P2pCodec), bytes, |message| match message {
        P2pMessage::PullResponse(list) => ControlFlow::Break(Ok(list)),
        other => ControlFlow::Break(Err(format!("{other:?}"))),
    });
    match stopped {
        Some(Stopped::Handler(Ok(list))) => list,
        Some(Stopped::Handler(Err(other))) => panic!("not a PULL RESPONSE: {other}"),
        Some(Stopped::Decode(e)) => panic!("{e}"),
        None => panic!("no whole message"),
    }
}

#[test]
fn a_pull_is_answered_with_known_peers() {
    let mut net = joined(9, 4, 3);
    let ext = net.w.ext_connect(p2p_of(&net, 0));
    let mut pull = Vec::new();
    p2p::write_pull(&mut pull, &p2p_addr(99));
    net.w.ext_send(ext, &pull);
    net.settle();
    let listed: BTreeSet<SocketAddrV4> = first_pull_response(net.w.ext_received(ext))
        .into_iter()
        .collect();
    let others: BTreeSet<SocketAddrV4> = (1..4).map(p2p_addr).collect();
    assert_eq!(listed, others);
    assert_eq!(net.state(0)["known_peers"], 4, "the puller was learnt");
}

// ---- the duplicate budget (hardening item 16) ----

/// A hand-driven peer connection to `node` that PUSHes `listen` as its address.
fn raw_peer(net: &mut GossipNet, node: NodeId, listen: SocketAddrV4) -> ExtId {
    let ext = net.w.ext_connect(p2p_of(net, node));
    let mut push = Vec::new();
    p2p::write_push(&mut push, &listen);
    net.w.ext_send(ext, &push);
    net.settle();
    assert_eq!(*net.w.ext_state(ext), ExtState::Open);
    ext
}

fn content(data: &[u8]) -> Vec<u8> {
    let mut frame = Vec::new();
    p2p::write_content(&mut frame, 0, TYPE, data).unwrap();
    frame
}

fn fast_net(seed: u64) -> GossipNet {
    let mut net = net(seed);
    net.w.set_latency(Latency::Fixed(Duration::from_micros(20)));
    net
}

#[test]
fn a_peer_flooding_one_item_is_cut_off_once_and_the_node_serves_on() {
    let mut net = fast_net(10);
    net.add_node(None, 4, 50);
    net.settle();
    net.add_node(Some(0), 4, 50);
    net.ticks(3);
    let m0 = net.module(0, &[TYPE], Some(true));
    let m1 = net.module(1, &[TYPE], Some(true));
    let flooder = raw_peer(&mut net, 0, p2p_addr(77));
    assert_eq!(net.state(0)["peer_count"], 2);
    let item = content(b"again and again");
    net.w.ext_send(flooder, &item);
    net.settle();
    assert!(!closed(&net, flooder), "the first copy is news");
    assert_eq!(net.notified(m0, b"again and again"), 1);
    // 5,000 copies a second, as two linked seed peers bounce an item.
    let allowed = super::budget::BASE + super::budget::PER_NEW_ITEM;
    let mut cut_at = None;
    for i in 1..=20_000u64 {
        net.w.ext_send(flooder, &item);
        net.run_for(Duration::from_micros(200));
        if closed(&net, flooder) {
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
    assert_eq!(net.notified(m0, b"again and again"), 1);
    // The node serves on: an announcement still crosses to node 1.
    let announcer = net.module(0, &[], Some(true));
    net.say(announcer, 0, b"after the flood");
    assert_eq!(net.notified(m1, b"after the flood"), 1);
}

#[test]
fn honest_heavy_traffic_in_a_dense_network_never_trips_the_budget() {
    // Ten nodes all linked to each other; 3,000 items at one instant, so
    // every neighbour forwards each item at about the same time and many
    // arrive twice over one link: more duplicates than the base allows.
    // The cache holds the whole burst: the verdicts come back over the
    // network, after the burst has arrived (a smaller cache would expire
    // most items before their verdict, and they would go no further).
    let mut net = joined_cache(11, 10, 9, 4000);
    for i in 0..10 {
        assert_eq!(
            net.state(i)["peer_count"],
            9,
            "node {i} is not fully linked"
        );
    }
    let modules: Vec<usize> = (0..10)
        .map(|i| net.module(i, &[TYPE], Some(true)))
        .collect();
    let announcer = net.module(0, &[], Some(true));
    for k in 0..3000 {
        net.announce(announcer, 0, TYPE, format!("burst {k}").as_bytes());
    }
    net.ticks(2);
    let most = (0..10)
        .map(|i| net.count(i, "most_duplicates_from_one_peer"))
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
    let mut net = fast_net(12);
    net.add_node(None, 4, 50);
    net.settle();
    net.add_node(Some(0), 4, 50);
    net.ticks(3);
    net.module(0, &[TYPE], Some(true));
    let announcer = net.module(0, &[], Some(true));
    let seed = raw_peer(&mut net, 0, p2p_addr(88));
    let mut reply = Vec::new();
    let listed: Vec<SocketAddrV4> = [0, 1, 88, 0, 1].iter().map(|&i| p2p_addr(i)).collect();
    p2p::write_pull_response(&mut reply, &listed);
    let mut push = Vec::new();
    p2p::write_push(&mut push, &p2p_addr(88));
    for k in 0..1500 {
        let data = format!("startup {k}");
        net.announce(announcer, 0, TYPE, data.as_bytes());
        net.run_for(Duration::from_micros(500));
        let echo = content(data.as_bytes());
        let mut burst = echo.repeat(30);
        burst.extend_from_slice(&reply);
        burst.extend_from_slice(&push);
        net.w.ext_send(seed, &burst);
        net.run_for(Duration::from_micros(4500));
        assert!(!closed(&net, seed), "cut at item {k}");
    }
    net.check();
    let state = net.state(0);
    assert_eq!(state["rejected_connections"], 0, "{state}");
    assert_eq!(state["peer_count"], 2);
    assert!(state["duplicates_received"].as_u64().unwrap() >= 45_000);
}

#[test]
fn a_crashed_and_restarted_node_rejoins_and_is_reached_again() {
    let mut net = joined(13, 6, 2);
    let modules: Vec<usize> = (0..6).map(|i| net.module(i, &[TYPE], Some(true))).collect();
    let announcer = net.module(0, &[], Some(true));
    net.w.crash(3);
    net.ticks(2);
    net.w.restart(3);
    net.reconnect_modules();
    net.ticks(5);
    net.say(announcer, 0, b"welcome back");
    for (i, &m) in modules.iter().enumerate() {
        assert_eq!(net.notified(m, b"welcome back"), 1, "node {i}");
    }
}

#[test]
fn the_same_seed_gives_the_same_trace() {
    let run = |seed| {
        let mut net = joined(seed, 12, 3);
        let modules: Vec<usize> = (0..12)
            .map(|i| net.module(i, &[TYPE], Some(true)))
            .collect();
        net.say(modules[5], 0, b"once");
        net.w.trace().to_vec()
    };
    let trace = run(14);
    assert!(
        trace.len() > 300,
        "{} lines: {:?}",
        trace.len(),
        &trace[..trace.len().min(30)]
    );
    assert_eq!(trace, run(14));
}
