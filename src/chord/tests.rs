//! Whole-ring tests in the simulated World (`sim_ring.rs`): the Chord algorithm itself,
//! deterministic and in simulated time.

use super::api_wire::{text_key, ApiMsg};
use super::id::Id;
use super::ring_check::{check_fingers, check_ring, check_stable};
use super::sim_ring::Ring as Sim;
use std::time::Duration;

fn ring(n: usize, successors: usize, replicas: usize) -> Sim {
    let mut sim = Sim::new(0, successors, replicas);
    sim.add(None);
    for i in 1..n {
        // Join through any earlier member.
        sim.add(Some(i * 7 % i));
        sim.run_for(Duration::from_millis(50));
    }
    sim
}

fn converge(sim: &mut Sim, limit_secs: u64) {
    for _ in 0..limit_secs * 10 {
        if check_stable(&sim.states()).is_ok() && check_fingers(&sim.states()).is_ok() {
            return;
        }
        sim.run_for(Duration::from_millis(100));
    }
    check_stable(&sim.states()).unwrap();
    check_fingers(&sim.states()).unwrap();
}

fn mean_hops(sim: &mut Sim) -> f64 {
    let (mut lookups, mut hops) = (0u64, 0u64);
    for i in sim.live() {
        for (h, n) in sim.node(i).stats().hops_histogram.iter().enumerate() {
            lookups += n;
            hops += h as u64 * n;
        }
    }
    hops as f64 / lookups as f64
}

#[test]
fn a_ring_of_32_converges_with_exact_fingers() {
    let mut sim = ring(32, 5, 3);
    converge(&mut sim, 60);
}

#[test]
fn every_key_put_is_found_from_any_node_in_few_hops() {
    let mut sim = ring(32, 5, 3);
    converge(&mut sim, 60);
    for k in 0..300 {
        sim.put(
            k * 13 % 32,
            text_key(&format!("key{k}")),
            format!("value{k}").as_bytes(),
        );
    }
    sim.run_for(Duration::from_secs(1));
    for i in sim.live() {
        sim.node(i).reset_stats();
    }
    for k in 0..300 {
        let got = sim.get(k * 5 % 32, text_key(&format!("key{k}")));
        assert_eq!(
            got.as_deref(),
            Some(format!("value{k}").as_bytes()),
            "key{k}"
        );
    }
    let mean = mean_hops(&mut sim);
    assert!(mean <= 0.6 * 5.0, "mean path {mean} hops in a ring of 32");
    assert_eq!(sim.get(3, text_key("never stored")), None);
}

#[test]
fn each_pair_lives_on_its_owner_and_the_next_replicas() {
    let mut sim = ring(12, 4, 3);
    converge(&mut sim, 60);
    for k in 0..50 {
        sim.put(k % 12, text_key(&format!("k{k}")), b"v");
    }
    sim.run_for(Duration::from_secs(2));
    let mut nodes: Vec<(Id, usize)> = sim
        .live()
        .iter()
        .map(|i| (sim.node(*i).me().id, *i))
        .collect();
    nodes.sort();
    for k in 0..50 {
        let key = text_key(&format!("k{k}"));
        let at = Id::hash(&key);
        let owner = nodes.iter().position(|(id, _)| *id >= at).unwrap_or(0);
        for copy in 0..3 {
            let holder = nodes[(owner + copy) % nodes.len()].1;
            let now = sim.now();
            assert!(
                sim.node(holder).store().get(&key, now).is_some(),
                "k{k} missing on copy {copy}"
            );
        }
    }
}

#[test]
fn a_joining_node_takes_exactly_the_keys_it_now_owns() {
    let mut sim = ring(6, 4, 1);
    converge(&mut sim, 30);
    for k in 0..200 {
        sim.put(k % 6, text_key(&format!("k{k}")), b"v");
    }
    sim.run_for(Duration::from_secs(1));
    let total: usize = sim.live().iter().map(|i| sim.node(*i).store().len()).sum();
    assert_eq!(total, 200, "one copy of each key");
    let newcomer = sim.add(Some(2));
    converge(&mut sim, 30);
    sim.run_for(Duration::from_secs(1));
    let node = sim.node(newcomer);
    let pred = node.routing().predecessor.unwrap().id;
    let me = node.me().id;
    let expected = (0..200)
        .filter(|k| Id::hash(&text_key(&format!("k{k}"))).in_half_open(&pred, &me))
        .count();
    assert!(expected > 0, "the newcomer should own some of 200 keys");
    assert_eq!(node.store().len(), expected);
    // Nobody else kept them: still one copy each, every one on its owner.
    let total: usize = sim.live().iter().map(|i| sim.node(*i).store().len()).sum();
    assert_eq!(total, 200);
    for i in sim.live() {
        let n = sim.node(i);
        assert!(n
            .store()
            .iter()
            .all(|(_, item)| n.routing().owns(&item.ring_id)));
    }
}

#[test]
fn a_node_leaving_politely_hands_every_key_over() {
    let mut sim = ring(6, 4, 1);
    converge(&mut sim, 30);
    for k in 0..200 {
        sim.put(k % 6, text_key(&format!("k{k}")), b"v");
    }
    sim.run_for(Duration::from_secs(1));
    let leaver = (0..6).max_by_key(|i| sim.node(*i).store().len()).unwrap();
    assert!(!sim.node(leaver).store().is_empty());
    sim.stdin(leaver, "quit");
    sim.settle();
    assert!(!sim.is_live(leaver), "the node stopped");
    converge(&mut sim, 30);
    let total: usize = sim.live().iter().map(|i| sim.node(*i).store().len()).sum();
    assert_eq!(total, 200);
    for k in 0..200 {
        assert!(sim
            .get(
                k % 5 + usize::from(k % 5 >= leaver),
                text_key(&format!("k{k}"))
            )
            .is_some());
    }
}

/// 32 nodes, 5 successors, 3 copies, converged, holding keys k0..k299.
fn converged_ring_with_300_keys() -> Sim {
    let mut sim = ring(32, 5, 3);
    converge(&mut sim, 60);
    for k in 0..300 {
        sim.put(
            k % 32,
            text_key(&format!("k{k}")),
            format!("v{k}").as_bytes(),
        );
    }
    sim.run_for(Duration::from_secs(2));
    sim
}

/// Every fourth node by ring position: a quarter of the ring, never three
/// neighbours at once (with 3 copies, three neighbours hold a key's only copies).
fn every_fourth_by_ring_position(sim: &mut Sim) -> Vec<usize> {
    let mut by_id: Vec<(Id, usize)> = sim
        .live()
        .iter()
        .map(|i| (sim.node(*i).me().id, *i))
        .collect();
    by_id.sort();
    by_id.iter().step_by(4).map(|(_, i)| *i).collect()
}

#[test]
fn a_quarter_of_the_ring_crashing_at_once_loses_no_key() {
    let mut sim = converged_ring_with_300_keys();
    let victims = every_fourth_by_ring_position(&mut sim);
    assert_eq!(victims.len(), 8);
    for v in &victims {
        sim.crash(*v);
    }
    converge(&mut sim, 60);
    let live = sim.live();
    for k in 0..300 {
        let via = live[k % live.len()];
        let got = sim.get(via, text_key(&format!("k{k}")));
        assert_eq!(
            got.as_deref(),
            Some(format!("v{k}").as_bytes()),
            "k{k} lost"
        );
    }
    // Copies are back to three on the new owners' successors.
    sim.run_for(Duration::from_secs(5));
    let copies: usize = live.iter().map(|i| sim.node(*i).store().len()).sum();
    assert!(copies >= 900, "only {copies} copies of 300 keys");
}

#[test]
fn many_gets_in_flight_on_one_connection_are_all_answered() {
    let mut sim = ring(8, 4, 2);
    converge(&mut sim, 30);
    sim.put(1, text_key("a"), b"A");
    let c = sim.client(5);
    for k in 0..50 {
        let key = if k % 2 == 0 {
            text_key("a")
        } else {
            text_key(&format!("missing{k}"))
        };
        sim.client_send(c, &ApiMsg::Get { key });
    }
    sim.run_for(Duration::from_secs(2));
    let answers = sim.client_answers(c);
    assert_eq!(answers.len(), 50);
    let found = answers
        .iter()
        .filter(|a| matches!(a, ApiMsg::Success { .. }))
        .count();
    assert_eq!(found, 25);
}

#[test]
fn malformed_input_closes_only_that_connection() {
    let mut sim = ring(4, 4, 2);
    converge(&mut sim, 30);
    let bad = sim.client(0);
    let good = sim.client(0);
    // A DHT SUCCESS from a client makes no sense.
    sim.client_send(
        bad,
        &ApiMsg::Success {
            key: [0; 32],
            value: vec![],
        },
    );
    sim.settle();
    assert!(sim.client_closed(bad));
    sim.client_send(good, &ApiMsg::Get { key: text_key("x") });
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.client_answers(good).len(), 1);
    check_ring(&sim.states()).unwrap();
}

#[test]
fn values_expire_after_their_ttl() {
    let mut sim = ring(4, 4, 2);
    converge(&mut sim, 30);
    let c = sim.client(1);
    sim.client_send(
        c,
        &ApiMsg::Put {
            ttl: 2,
            replication: 2,
            key: text_key("short"),
            value: b"x".to_vec(),
        },
    );
    sim.settle();
    assert!(sim.get(2, text_key("short")).is_some());
    sim.run_for(Duration::from_secs(3));
    assert!(sim.get(2, text_key("short")).is_none());
}

/// Lookups made while the dead are still in everyone's tables route around
/// them (a lookup may name a dead owner: the request looks again).
#[test]
fn keys_are_found_right_after_a_crash_before_repair() {
    let mut sim = converged_ring_with_300_keys();
    for v in every_fourth_by_ring_position(&mut sim) {
        sim.crash(v);
    }
    sim.settle();
    let live = sim.live();
    let mut lost = Vec::new();
    for k in 0..300 {
        let via = live[k % live.len()];
        if sim.get(via, text_key(&format!("k{k}"))).is_none() {
            lost.push(k);
        }
    }
    assert!(lost.is_empty(), "not found: {lost:?}");
}

/// Found by the fuzzer (seed 2, before the fix): a node that has not
/// joined yet believes it is alone, so it kept the PUTs sent to it as their
/// owner, and gave them up on joining; the ring kept the old values. Until
/// it joins, a node's lookups go through the node it joins by.
#[test]
fn a_node_still_joining_does_not_keep_puts_as_their_owner() {
    let mut sim = ring(6, 4, 3);
    converge(&mut sim, 30);
    for k in 0..20 {
        sim.put(k % 6, text_key(&format!("j{k}")), b"old");
    }
    sim.run_for(Duration::from_secs(1));
    // Its join (and its lookups) wait on the paused node 0.
    sim.world.pause(0);
    let newcomer = sim.add(Some(0));
    let c = sim.client(newcomer);
    for k in 0..20 {
        sim.client_send(
            c,
            &ApiMsg::Put {
                ttl: 3600,
                replication: 3,
                key: text_key(&format!("j{k}")),
                value: b"new".to_vec(),
            },
        );
    }
    sim.run_for(Duration::from_millis(300));
    assert!(!sim.node(newcomer).is_joined());
    assert_eq!(
        sim.node(newcomer).store().len(),
        0,
        "kept as owner while alone"
    );
    sim.world.resume(0);
    converge(&mut sim, 30);
    sim.run_for(Duration::from_secs(2));
    let new = (0..20)
        .filter(|k| sim.get(k % 6, text_key(&format!("j{k}"))).as_deref() == Some(b"new"))
        .count();
    assert_eq!(new, 20, "the PUTs went through node 0 to the owners");
}
