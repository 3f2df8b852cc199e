//! One node driven by hand, for what the simulated world cannot stage: a
//! peer the node dials that is not a node (the world's test connections
//! only connect to nodes, they do not listen), so a test can play the
//! flooding or vanishing bootstrapper exactly.

use super::node::{Node, NodeConfig, Timer, P2P_LISTENER};
use super::p2p;
use crate::reactor::{Action, Actions, CloseReason, ConnId, Out, Protocol};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

const TYPE: u16 = 42;

fn addr(i: u16) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::LOCALHOST, 10_000 + i)
}

/// A node whose bootstrapper is played by the test.
struct Solo {
    node: Node,
    now: Instant,
    next_conn: ConnId,
    /// Connections the node made, in order (the test accepts them all).
    dialled: Vec<ConnId>,
}

impl Solo {
    fn new(boot: SocketAddrV4) -> Self {
        let node = Node::new(NodeConfig {
            p2p_address: addr(0),
            api_address: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 20_000)),
            bootstrapper: Some(boot),
            degree: 4,
            cache_size: 50,
            seed: 1,
            maintenance: Duration::from_secs(1),
        });
        let mut solo = Solo {
            node,
            now: Instant::now(),
            next_conn: 1,
            dialled: Vec::new(),
        };
        solo.call(|n, now, out| n.on_start(now, out));
        solo
    }

    fn call(&mut self, f: impl FnOnce(&mut Node, Instant, &mut Out<Node>)) -> Vec<ConnId> {
        let mut out = Actions::new();
        f(&mut self.node, self.now, &mut out);
        self.carry(out)
    }

    /// Carry out a callback's actions: dials are answered at once
    /// (connected); returns the connections the node closed.
    fn carry(&mut self, out: Out<Node>) -> Vec<ConnId> {
        let mut closed = Vec::new();
        for action in out.others() {
            match action {
                Action::Connect { tag, .. } => {
                    let conn = self.next_conn;
                    self.next_conn += 1;
                    self.dialled.push(conn);
                    let mut more = Actions::new();
                    self.node.on_connected(self.now, *tag, conn, &mut more);
                    closed.extend(self.carry(more));
                }
                Action::Close(c) | Action::CloseAfterFlush(c) => closed.push(*c),
                _ => {}
            }
        }
        closed
    }

    fn accept(&mut self) -> ConnId {
        let conn = self.next_conn;
        self.next_conn += 1;
        let from = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 60_000));
        self.call(|n, now, out| n.on_accept(now, P2P_LISTENER, conn, from, out));
        conn
    }

    /// Bytes from `conn`; true if the node closed it.
    fn send(&mut self, conn: ConnId, bytes: &[u8]) -> bool {
        let closed = self.call(|n, now, out| {
            assert_eq!(n.on_data(now, conn, bytes, out), Ok(bytes.len()));
        });
        closed.contains(&conn)
    }

    fn tick(&mut self) {
        self.call(|n, now, out| n.on_timer(now, Timer::Maintenance, out));
    }

    fn state(&self) -> serde_json::Value {
        self.node.state()
    }
}

fn content(data: &[u8]) -> Vec<u8> {
    let mut frame = Vec::new();
    p2p::write_content(&mut frame, 0, TYPE, data).unwrap();
    frame
}

#[test]
fn a_flooder_we_dialled_is_not_dialled_again_until_its_shun_lapses() {
    let flooder = addr(66);
    let mut solo = Solo::new(flooder);
    assert_eq!(solo.dialled.len(), 1, "the node dialled its bootstrapper");
    assert_eq!(solo.state()["outgoing"], 1);
    let link = solo.dialled[0];
    // (No module is subscribed: every copy after the first is a duplicate all the same.)
    let item = content(b"loop");
    let mut copies = 0;
    while !solo.send(link, &item) {
        copies += 1;
        assert!(copies < 5000, "never cut off");
    }
    let state = solo.state();
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
        solo.now += Duration::from_secs(1);
        solo.tick();
    }
    assert_eq!(solo.dialled.len(), 1, "the flooder was dialled again");
    // Coming back on its own, naming itself, it is turned away quietly.
    let comeback = solo.accept();
    let mut push = Vec::new();
    p2p::write_push(&mut push, &addr(99));
    assert!(!solo.send(comeback, &push));
    let back = solo.accept();
    let mut push = Vec::new();
    p2p::write_push(&mut push, &flooder);
    assert!(solo.send(back, &push), "a shunned address is refused");
    assert!(!solo.send(comeback, &item), "others are not");
    // Once the shun lapses, the bootstrapper is tried again (when alone).
    solo.call(|n, now, out| n.on_closed(now, comeback, &CloseReason::PeerClosed, out));
    solo.now += Duration::from_secs(120);
    solo.tick();
    solo.tick();
    assert_eq!(solo.state()["shunned"], 0);
    assert_eq!(solo.dialled.len(), 2, "the bootstrapper is dialled again");
}

#[test]
fn a_peer_that_closes_at_once_is_not_redialled_at_once() {
    // A full node answers a newcomer's PULL and closes. Redialling it at
    // once would loop at network speed; the next maintenance tick may.
    let mut solo = Solo::new(addr(55));
    assert_eq!(solo.dialled.len(), 1);
    for round in 1..=3 {
        let link = solo.dialled[round - 1];
        solo.call(|n, now, out| n.on_closed(now, link, &CloseReason::PeerClosed, out));
        assert_eq!(solo.dialled.len(), round, "redialled at once");
        solo.tick();
        assert_eq!(solo.dialled.len(), round + 1, "tried again at the tick");
    }
}

#[test]
fn two_full_peers_closing_in_turn_are_not_redialled_before_the_tick() {
    // The bootstrapper tells us of a second node; both are full: each
    // answers and closes. Avoiding only the last one that closed, the node
    // went back and forth between the two at network speed (the gossip
    // fuzzer found it).
    let mut solo = Solo::new(addr(55));
    let boot = solo.dialled[0];
    let mut reply = Vec::new();
    p2p::write_pull_response(&mut reply, &[addr(56)]);
    assert!(!solo.send(boot, &reply));
    assert_eq!(solo.dialled.len(), 2, "the second node is dialled");
    let second = solo.dialled[1];
    solo.call(|n, now, out| n.on_closed(now, boot, &CloseReason::PeerClosed, out));
    solo.call(|n, now, out| n.on_closed(now, second, &CloseReason::PeerClosed, out));
    assert_eq!(
        solo.dialled.len(),
        2,
        "a peer that closed on us was redialled at once"
    );
    solo.tick();
    assert_eq!(solo.dialled.len(), 4, "both are tried again at the tick");
}

#[test]
fn the_test_above_fails_on_the_old_rule() {
    // The old rule (avoid only the last peer that closed) redials the
    // first full peer the moment the second closes.
    crate::sim::bugs::with("gossip.redial-alternating-full-peers", || {
        let mut solo = Solo::new(addr(55));
        let boot = solo.dialled[0];
        let mut reply = Vec::new();
        p2p::write_pull_response(&mut reply, &[addr(56)]);
        solo.send(boot, &reply);
        let second = solo.dialled[1];
        solo.call(|n, now, out| n.on_closed(now, boot, &CloseReason::PeerClosed, out));
        solo.call(|n, now, out| n.on_closed(now, second, &CloseReason::PeerClosed, out));
        assert_eq!(solo.dialled.len(), 3, "redialled at once");
    });
}

/// The `state` JSON the scenarios check, to the byte, after a module and
/// two peers have done a little of everything: its field names and their
/// order are the contract (the struct behind it must not change them).
#[test]
fn the_state_json_is_the_checked_contract() {
    use super::api;
    use super::node::API_LISTENER;
    let mut solo = Solo::new(addr(55));
    let boot = solo.dialled[0];
    let module = solo.next_conn;
    solo.next_conn += 1;
    let from = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 50_000));
    solo.call(|n, now, out| n.on_accept(now, API_LISTENER, module, from, out));
    let mut frames = Vec::new();
    api::write_notify(&mut frames, TYPE).unwrap();
    api::write_announce(&mut frames, 3, TYPE, b"mine").unwrap();
    assert!(!solo.send(module, &frames));
    // One item judged valid, one invalid.
    assert!(!solo.send(boot, &content(b"good")));
    assert!(!solo.send(boot, &content(b"bad")));
    let mut verdicts = Vec::new();
    api::write_validation(&mut verdicts, 0, true).unwrap();
    api::write_validation(&mut verdicts, 1, false).unwrap();
    assert!(!solo.send(module, &verdicts));
    assert!(!solo.send(boot, &content(b"good")), "a duplicate");
    // A second module sends nonsense and is closed: a rejection on the API port.
    let rude = solo.next_conn;
    solo.next_conn += 1;
    solo.call(|n, now, out| n.on_accept(now, API_LISTENER, rude, from, out));
    assert!(solo.send(rude, &[0, 4, 0x01, 0xF4]));
    assert_eq!(
        solo.state().to_string(),
        concat!(
            r#"{"announced":1,"#,
            r#""api_address":"127.0.0.1:20000","#,
            r#""awaiting_verdict":0,"#,
            r#""cache_limit":50,"#,
            r#""cached":2,"#,
            r#""degree":4,"#,
            r#""dialing":0,"#,
            r#""duplicates_received":1,"#,
            r#""forwarded":["good","mine"],"#,
            r#""items":[{"copies":0,"#,
            r#""data":"mine","#,
            r#""forwards":1,"#,
            r#""id":"846f3967","#,
            r#""type":42,"#,
            r#""verdict":"local"},{"copies":2,"#,
            r#""data":"good","#,
            r#""forwards":1,"#,
            r#""id":"975bad80","#,
            r#""type":42,"#,
            r#""verdict":"valid"},{"copies":1,"#,
            r#""data":"bad","#,
            r#""forwards":0,"#,
            r#""id":"ee53484b","#,
            r#""type":42,"#,
            r#""verdict":"invalid"}],"#,
            r#""items_received":3,"#,
            r#""items_sent":1,"#,
            r#""joined":true,"#,
            r#""known_peers":1,"#,
            r#""last_rejection":"API port, module 127.0.0.1:50000: truncated: wanted 1 bytes at offset 0, only 0 left; connection closed","#,
            r#""max_forwards":1,"#,
            r#""modules":1,"#,
            r#""most_duplicates_from_one_peer":1,"#,
            r#""notifications_sent":2,"#,
            r#""outgoing":1,"p2p_address":"127.0.0.1:10000","#,
            r#""peer_count":1,"#,
            r#""peers":["127.0.0.1:10055"],"#,
            r#""rejected":["bad"],"#,
            r#""rejected_connections":1,"#,
            r#""role":"gossip","#,
            r#""seen":["bad","good","mine"],"#,
            r#""shunned":0,"#,
            r#""subscriptions":[42]}"#,
        )
    );
}
