//! The `state` JSON is the contract scenarios, benches and tests check:
//! its field names, order (sorted keys) and values must not change when
//! the code behind it does.

use super::api_wire::text_key;
use super::node::Node;
use super::peer_wire::NodeRef;
use super::ring_check::check_stable;
use super::sim_ring::Ring as Sim;
use crate::util::hex;
use serde_json::json;
use std::time::{Duration, Instant};

/// The state as it was built by hand with `json!` before it was a type,
/// from the node's read-only accessors: the reference the struct must match.
fn state_by_hand(node: &Node, now: Instant) -> serde_json::Value {
    let routing = node.routing();
    let store = node.store();
    let stats = node.stats();
    let dht = node.dht();
    let state = node.state_json(now);
    let n = |n: &NodeRef| json!({"id": n.id.to_hex(), "addr": n.addr.to_string()});
    let fingers: Vec<_> = routing
        .finger_runs()
        .iter()
        .map(|(bit, n)| json!({"bit": bit, "id": n.id.to_hex(), "addr": n.addr.to_string()}))
        .collect();
    let mut stored: Vec<String> = store
        .iter()
        .filter(|(_, item)| item.expires > now)
        .map(|(key, _)| hex(key))
        .collect();
    stored.sort();
    let owned = store
        .iter()
        .filter(|(_, item)| routing.owns(&item.ring_id))
        .count();
    let lookups: u64 = stats.hops_histogram.iter().sum();
    let total_hops: u64 = stats
        .hops_histogram
        .iter()
        .enumerate()
        .map(|(h, n)| h as u64 * n)
        .sum();
    json!({
        "id": routing.me.id.to_hex(),
        "listen": routing.me.addr.to_string(),
        "api": state["api"],
        "joined": node.is_joined(),
        "predecessor": routing.predecessor.map(|p| p.id.to_hex()),
        "predecessor_addr": routing.predecessor.map(|p| p.addr.to_string()),
        "successor": routing.successor().id.to_hex(),
        "successors": routing.successors.iter().map(n).collect::<Vec<_>>(),
        "successor_list_length": routing.max_successors,
        "fingers": fingers,
        "keys": stored.len(),
        "owned_keys": owned,
        "stored": stored,
        "lookups": lookups,
        "lookup_hops_total": total_hops,
        "lookup_hops_histogram": stats.hops_histogram,
        "lookups_failed": stats.lookups_failed,
        "gets_found": stats.gets_found,
        "gets_failed": stats.gets_failed,
        "links": state["links"],
        "clients": dht.client_count(),
        "client_backlog_bytes": dht.backlog_bytes(),
        "client_output_charged": dht.output_charged(),
        "client_memory": state["client_memory"],
    })
}

fn three_nodes_with_a_key() -> Sim {
    let mut sim = Sim::new(0, 2, 2);
    sim.add(None);
    for via in 0..2 {
        sim.add(Some(via));
        sim.run_for(Duration::from_millis(50));
    }
    for _ in 0..100 {
        if check_stable(&sim.states()).is_ok() {
            break;
        }
        sim.run_for(Duration::from_millis(100));
    }
    sim.run_for(Duration::from_secs(3));
    sim.put(1, text_key("colour"), b"blue");
    assert_eq!(
        sim.get(2, text_key("colour")).as_deref(),
        Some(&b"blue"[..])
    );
    sim
}

/// Every node's state is what the hand-built JSON was, to the byte.
#[test]
fn the_state_json_matches_the_hand_built_one() {
    let mut sim = three_nodes_with_a_key();
    let now = sim.now();
    for i in 0..3 {
        let node = sim.node(i);
        assert_eq!(
            node.state_json(now).to_string(),
            state_by_hand(node, now).to_string(),
            "node {i}"
        );
    }
}

/// The field names, their order and the values are the contract:
/// pinned to the byte for a node of a three-node ring that served a GET,
/// so a renamed, reordered or reformatted field fails here first.
#[test]
fn the_state_json_is_the_checked_contract() {
    let mut sim = three_nodes_with_a_key();
    let now = sim.now();
    assert_eq!(sim.node(2).state_json(now).to_string(), PINNED);
}

const PINNED: &str = concat!(
    r#"{"api":"10.0.0.2:5000","#,
    r#""client_backlog_bytes":0,"#,
    r#""client_memory":67108864,"#,
    r#""client_output_charged":0,"#,
    r#""clients":1,"#,
    r#""fingers":[{"addr":"10.0.0.1:4000","bit":0,"id":"2b45b454da1ba888d6d1ea26af6d3c263656af04"},"#,
    r#"{"addr":"10.0.0.0:4000","bit":158,"id":"7dceec9891122fec22f8016cd089b7a37039f14e"}],"#,
    r#""gets_failed":0,"#,
    r#""gets_found":1,"#,
    r#""id":"0b3371f09d3a91494e497e075eecee490e065bd4","#,
    r#""joined":true,"#,
    r#""keys":1,"#,
    r#""links":2,"#,
    r#""listen":"10.0.0.2:4000","#,
    r#""lookup_hops_histogram":[1],"#,
    r#""lookup_hops_total":0,"#,
    r#""lookups":1,"#,
    r#""lookups_failed":0,"#,
    r#""owned_keys":1,"#,
    r#""predecessor":"7dceec9891122fec22f8016cd089b7a37039f14e","#,
    r#""predecessor_addr":"10.0.0.0:4000","#,
    r#""stored":["79d41a47e8fec55856a6a6c5ba53c2462be4852eda86bea481d6f4291770b36d"],"#,
    r#""successor":"2b45b454da1ba888d6d1ea26af6d3c263656af04","#,
    r#""successor_list_length":2,"#,
    r#""successors":[{"addr":"10.0.0.1:4000","id":"2b45b454da1ba888d6d1ea26af6d3c263656af04"},"#,
    r#"{"addr":"10.0.0.0:4000","id":"7dceec9891122fec22f8016cd089b7a37039f14e"}]}"#,
);
