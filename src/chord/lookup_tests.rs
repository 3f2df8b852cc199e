//! `Lookups` on its own: a reply in, the next step or the result out, with
//! no node, socket or clock around it.

use super::id::Id;
use super::lookup::{Lookups, Purpose, Step, View, MAX_HOPS};
use super::peer_wire::NodeRef;
use super::routing::Routing;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Instant;

fn id(first: u8) -> Id {
    let mut bytes = [0u8; 20];
    bytes[0] = first;
    Id(bytes)
}

fn node(first: u8) -> NodeRef {
    let addr: SocketAddr = format!("127.0.0.1:{}", 4000 + first as u16)
        .parse()
        .unwrap();
    NodeRef {
        id: id(first),
        addr,
    }
}

fn view<'a>(routing: &'a Routing, joined: bool, dead: &'a BTreeMap<Id, Instant>) -> View<'a> {
    View {
        routing,
        joined,
        bootstrap: Some(node(200).addr),
        dead,
    }
}

#[test]
fn a_node_alone_in_its_ring_owns_every_key_at_once() {
    let routing = Routing::new(node(10), 3);
    let dead = BTreeMap::new();
    let mut lookups = Lookups::default();
    let (n, step) = lookups.start(
        id(99),
        Purpose::Api(7),
        Vec::new(),
        &view(&routing, true, &dead),
    );
    match step {
        Some(Step::Done { lookup, owners }) => {
            assert_eq!(lookup.purpose, Purpose::Api(7));
            assert_eq!(lookup.hops, 0);
            assert_eq!(owners, vec![node(10)]);
        }
        other => panic!("expected the result at once, got {other:?}"),
    }
    assert!(!lookups.contains(n), "a finished lookup is forgotten");
}

#[test]
fn before_joining_a_lookup_asks_the_bootstrap_and_keeps_the_first_owner_even_if_dead() {
    let routing = Routing::new(node(10), 3);
    let mut dead = BTreeMap::new();
    dead.insert(id(60), Instant::now());
    let mut lookups = Lookups::default();
    let v = view(&routing, false, &dead);
    let (n, step) = lookups.start(id(50), Purpose::Api(1), Vec::new(), &v);
    match step {
        Some(Step::Ask {
            lookup,
            addr,
            peer,
            target,
            ..
        }) => {
            assert_eq!(
                (lookup, addr, peer, target),
                (n, node(200).addr, None, id(50))
            );
        }
        other => panic!("expected a question to the bootstrap, got {other:?}"),
    }
    // The owner is named (dead or not); a dead node after it is left out.
    let nodes = vec![node(60), node(60), node(70)];
    match lookups.on_reply(n, None, true, nodes, &v) {
        Some(Step::Done { lookup, owners }) => {
            assert_eq!(lookup.hops, 1);
            assert_eq!(owners, vec![node(60), node(70)]);
        }
        other => panic!("expected the result, got {other:?}"),
    }
    // A late second reply to a finished lookup is ignored.
    assert!(lookups
        .on_reply(n, None, true, vec![node(60)], &v)
        .is_none());
}

#[test]
fn a_join_whose_answer_leads_back_to_us_is_a_dead_end() {
    let routing = Routing::new(node(10), 3);
    let dead = BTreeMap::new();
    let mut lookups = Lookups::default();
    let v = view(&routing, false, &dead);
    let (n, _) = lookups.start(id(10), Purpose::Join, Vec::new(), &v);
    match lookups.on_reply(n, None, false, vec![node(10)], &v) {
        Some(Step::Failed { lookup, dead_end }) => {
            assert!(dead_end);
            assert_eq!(lookup.purpose, Purpose::Join);
            assert_eq!(lookup.attempts, 1);
        }
        other => panic!("expected a failed join, got {other:?}"),
    }
}

#[test]
fn a_question_that_could_not_be_sent_fails_the_lookup_but_not_as_a_dead_end() {
    let routing = Routing::new(node(10), 3);
    let dead = BTreeMap::new();
    let mut lookups = Lookups::default();
    let (n, _) = lookups.start(
        id(10),
        Purpose::Join,
        Vec::new(),
        &view(&routing, false, &dead),
    );
    assert!(matches!(
        lookups.fail(n),
        Some(Step::Failed {
            dead_end: false,
            ..
        })
    ));
    assert!(lookups.fail(n).is_none(), "failed once only");
}

#[test]
fn a_path_longer_than_max_hops_is_given_up() {
    let routing = Routing::new(node(0), 3);
    let dead = BTreeMap::new();
    let mut lookups = Lookups::default();
    let v = view(&routing, false, &dead);
    let target = id(250);
    let (n, step) = lookups.start(target, Purpose::Api(3), Vec::new(), &v);
    assert!(matches!(step, Some(Step::Ask { .. })));
    // Every answer names a node strictly closer to the target.
    let mut asked = None;
    for hop in 1..=MAX_HOPS {
        let next = node(hop as u8 + 1);
        let step = lookups.on_reply(n, asked, false, vec![next], &v);
        if hop < MAX_HOPS {
            assert!(
                matches!(step, Some(Step::Ask { .. })),
                "hop {hop}: {step:?}"
            );
        } else {
            match step {
                Some(Step::Failed { lookup, dead_end }) => {
                    assert!(!dead_end);
                    assert_eq!(lookup.hops, MAX_HOPS + 1);
                }
                other => panic!("expected to give up, got {other:?}"),
            }
        }
        asked = Some(next.id);
    }
    assert!(!lookups.contains(n));
}
