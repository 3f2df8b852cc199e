//! State-machine tests for the faults outside testing found (issue 8,
//! items 6–10), in the simulated World (`sim_ring.rs`).

use super::api_wire::{text_key, ApiMsg, MAX_VALUE};
use super::node::{DEFAULT_MAX_CLIENTS, MAX_OPS_PER_CLIENT};
use super::output_budget::PAYOFF;
use super::ring_check::check_stable;
use super::sim_ring::Ring as Sim;
use std::time::Duration;

fn converged(n: usize) -> Sim {
    let mut sim = Sim::new(0, 4, 3);
    sim.add(None);
    for i in 1..n {
        sim.add(Some(i * 7 % i));
        sim.run_for(Duration::from_millis(50));
    }
    for _ in 0..600 {
        if check_stable(&sim.states()).is_ok() {
            return sim;
        }
        sim.run_for(Duration::from_millis(100));
    }
    check_stable(&sim.states()).unwrap();
    sim
}

fn put(key: &str, value: &[u8]) -> ApiMsg {
    ApiMsg::Put {
        ttl: 3600,
        replication: 3,
        key: text_key(key),
        value: value.to_vec(),
    }
}

/// Item 6: a client that sends PUTs and closes at once (as `peerloop dht
/// put` does) loses none of them, in flight or still backlogged.
#[test]
fn puts_read_before_the_client_closes_are_carried_out() {
    let mut sim = converged(8);
    let c = sim.client(0);
    let puts = MAX_OPS_PER_CLIENT + 300;
    for k in 0..puts {
        sim.client_send(c, &put(&format!("close{k}"), b"kept"));
    }
    sim.client_close(c);
    sim.run_for(Duration::from_secs(2));
    let lost: Vec<usize> = (0..puts)
        .filter(|k| sim.get(k % 8, text_key(&format!("close{k}"))).is_none())
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {puts} PUTs lost: {lost:?}",
        lost.len()
    );
}

/// Item 7: 2,000 pipelined PUTs then 2,000 GETs on one connection: all
/// stored, every GET answered with its value (none refused, no FAILURE).
#[test]
fn pipelining_far_past_the_in_flight_limit_waits_instead_of_refusing() {
    let mut sim = converged(8);
    let c = sim.client(3);
    for k in 0..2000 {
        sim.client_send(c, &put(&format!("pipe{k}"), format!("v{k}").as_bytes()));
    }
    sim.run_for(Duration::from_secs(1));
    for k in 0..2000 {
        sim.client_send(
            c,
            &ApiMsg::Get {
                key: text_key(&format!("pipe{k}")),
            },
        );
    }
    let mut answers = Vec::new();
    for _ in 0..100 {
        sim.run_for(Duration::from_millis(100));
        answers.extend(sim.client_answers(c));
        if answers.len() >= 2000 {
            break;
        }
    }
    assert_eq!(answers.len(), 2000, "every GET is answered");
    let mut found = 0;
    for answer in &answers {
        match answer {
            ApiMsg::Success { key, value } => {
                let k = (0..2000)
                    .find(|k| text_key(&format!("pipe{k}")) == *key)
                    .expect("a key we asked for");
                assert_eq!(value, format!("v{k}").as_bytes());
                found += 1;
            }
            other => panic!("a GET of a stored key answered {other:?}"),
        }
    }
    assert_eq!(found, 2000);
}

/// Item 8: a value the API frame can carry but a STORE frame cannot is
/// refused at the API; no peer is declared dead over it, and the largest
/// value allowed travels the ring.
#[test]
fn a_value_the_ring_cannot_carry_is_refused_and_no_live_peer_looks_dead() {
    let mut sim = converged(6);
    let c = sim.client(0);
    for (k, size) in (MAX_VALUE + 1..=MAX_VALUE + 6).enumerate() {
        sim.client_send(c, &put(&format!("big{k}"), &vec![7; size]));
    }
    sim.client_send(c, &put("largest", &vec![9; MAX_VALUE]));
    sim.run_for(Duration::from_secs(20));
    check_stable(&sim.states()).expect("the ring is intact");
    for i in sim.live() {
        assert!(
            sim.node(i).ring().dead().is_empty(),
            "node {i} thinks {:?} died",
            sim.node(i).ring().dead().keys().collect::<Vec<_>>()
        );
        let now = sim.now();
        for k in 0..6 {
            assert!(sim
                .node(i)
                .store()
                .get(&text_key(&format!("big{k}")), now)
                .is_none());
        }
    }
    for via in 0..6 {
        assert_eq!(
            sim.get(via, text_key("largest")).map(|v| v.len()),
            Some(MAX_VALUE)
        );
    }
}

/// Item 8, the other half: a request whose frame cannot be written is not
/// left pending, so its time-out cannot mark the peer dead.
#[test]
fn a_request_that_was_not_sent_is_not_waited_for() {
    let mut sim = converged(3);
    let me = 0;
    let other = sim.node(1).me();
    let now = sim.now();
    let node = sim.node(me);
    let mut out = crate::reactor::Actions::new();
    // Ring upkeep may be waiting on answers already: nothing may be added.
    let before = node.pending_requests();
    let sent = node.request(
        now,
        other.addr,
        Some(other.id),
        super::rpc::Waiting::Ping,
        |req| {
            super::peer_wire::PeerMsg::Store(super::peer_wire::StoreMsg {
                req,
                flags: 0,
                hops_left: 0,
                ttl_ms: 1000,
                stamp: 1,
                key: [1; 32],
                value: vec![0; MAX_VALUE + 1],
            })
        },
        &mut out,
    );
    assert!(!sent);
    assert_eq!(
        node.pending_requests(),
        before,
        "nothing waits for an unsent frame"
    );
}

/// Item 10: more idle API clients than their limit leave the ring peers'
/// room alone: a new node still joins through that node.
#[test]
fn api_clients_cannot_take_the_room_of_ring_peers() {
    let mut sim = converged(4);
    // More than the old shared cap of 2,048 connections.
    let clients: Vec<_> = (0..2100).map(|_| sim.client(0)).collect();
    sim.settle();
    let refused = clients.iter().filter(|c| sim.client_closed(**c)).count();
    assert_eq!(
        refused,
        2100 - DEFAULT_MAX_CLIENTS,
        "clients over their limit"
    );
    sim.add(Some(0));
    for _ in 0..300 {
        if check_stable(&sim.states()).is_ok() {
            break;
        }
        sim.run_for(Duration::from_millis(100));
    }
    check_stable(&sim.states()).expect("the newcomer joined the ring");
    assert_eq!(sim.live().len(), 5);
}

/// Item 9: clients that ask for a large value and never read cannot make
/// the node produce more than its budget (plus what time pays off).
#[test]
fn answers_produced_for_clients_stay_within_the_node_budget() {
    let mut sim = Sim::new(0, 4, 3);
    sim.client_memory = 4 << 20;
    sim.add(None);
    sim.put(0, text_key("big"), &vec![1; 60_000]);
    let clients: Vec<_> = (0..32).map(|_| sim.client(0)).collect();
    for c in &clients {
        for _ in 0..400 {
            sim.client_send(
                *c,
                &ApiMsg::Get {
                    key: text_key("big"),
                },
            );
        }
    }
    let span = Duration::from_secs(2);
    sim.run_for(span);
    let produced: usize = clients
        .iter()
        .map(|c| {
            sim.client_answers(*c)
                .iter()
                .map(|a| a.to_bytes().len())
                .sum::<usize>()
        })
        .sum();
    let budget = 4usize << 20;
    let allowed = budget + budget * span.as_millis() as usize / PAYOFF.as_millis() as usize;
    assert!(
        produced <= allowed,
        "{produced} bytes of answers produced in {span:?}; allowed {allowed}"
    );
    assert!(produced > budget / 2, "answers still flow: {produced}");
    let node = sim.node(0);
    assert!(node.dht().output_charged() <= node.dht().output_limit());
}

/// GETs of keys held elsewhere, then the client half-closes (or sends a
/// bad frame): every GET is still answered, then the node closes.
#[test]
fn a_client_that_stops_sending_still_gets_every_answer_then_the_close() {
    let mut sim = converged(6);
    for k in 0..40 {
        sim.put(k % 6, text_key(&format!("half{k}")), b"there");
    }
    sim.run_for(Duration::from_secs(1));
    for ending in ["half-close", "bad frame"] {
        let c = sim.client(2);
        for k in 0..40 {
            sim.client_send(
                c,
                &ApiMsg::Get {
                    key: text_key(&format!("half{k}")),
                },
            );
        }
        if ending == "half-close" {
            sim.client_half_close(c);
        } else {
            // A SUCCESS from a client is a protocol error.
            sim.client_send(
                c,
                &ApiMsg::Success {
                    key: [0; 32],
                    value: vec![],
                },
            );
        }
        let mut answers = Vec::new();
        for _ in 0..50 {
            sim.run_for(Duration::from_millis(100));
            answers.extend(sim.client_answers(c));
            if sim.client_closed(c) {
                break;
            }
        }
        assert_eq!(answers.len(), 40, "{ending}: every GET answered");
        assert!(
            answers
                .iter()
                .all(|a| matches!(a, ApiMsg::Success { value, .. } if value == b"there")),
            "{ending}"
        );
        assert!(sim.client_closed(c), "{ending}: then the node closes");
    }
}

/// A link closed to stay under MAX_LINKS while a room was sending: the
/// requests waiting on it fail once that room is done (at the end of the
/// event; a room never calls another), each peer asked is marked dead,
/// and the requests on the links kept still wait.
#[test]
fn requests_on_a_link_closed_for_room_fail_at_the_end_of_the_event() {
    use super::id::Id;
    use super::links::MAX_LINKS;
    use super::node::Timer;
    use super::peer_wire::PeerMsg;
    use super::rpc::Waiting;
    use crate::reactor::Protocol;
    let mut sim = converged(3);
    let now = sim.now();
    let node = sim.node(0);
    let mut out = crate::reactor::Actions::new();
    let asked = MAX_LINKS + 44;
    let peers: Vec<(std::net::SocketAddr, Id)> = (0..asked)
        .map(|i| {
            let addr = format!("10.9.{}.{}:4000", i / 200, i % 200 + 1)
                .parse()
                .unwrap();
            (addr, Id::hash(format!("fake {i}").as_bytes()))
        })
        .collect();
    let before = node.pending_requests();
    for (i, (addr, id)) in peers.iter().enumerate() {
        // Each a little later, so the least recently used is the first asked.
        let at = now + Duration::from_micros(i as u64 + 1);
        let make = |req| PeerMsg::Ping { req };
        assert!(node.request(at, *addr, Some(*id), Waiting::Ping, make, &mut out));
    }
    // The ring links and the first 44 asked were closed for room, but
    // until the event ends their requests still wait.
    assert_eq!(node.pending_requests(), before + asked);
    assert!(peers
        .iter()
        .all(|(_, id)| !node.ring().dead().contains_key(id)));
    node.on_timer(now, Timer::Ready, &mut out);
    let (closed, kept) = peers.split_at(asked - MAX_LINKS);
    assert!(
        closed
            .iter()
            .all(|(_, id)| node.ring().dead().contains_key(id)),
        "every peer whose link was closed for room is marked dead"
    );
    assert!(
        kept.iter()
            .all(|(_, id)| !node.ring().dead().contains_key(id)),
        "the peers whose links were kept still have their requests"
    );
    assert_eq!(node.pending_requests(), MAX_LINKS);
}
