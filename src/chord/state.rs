//! The `state` JSON a node prints on request: what scenarios, benches and
//! tests check (the field names are the contract; docs/chord.md shows
//! them). Printed with its keys in alphabetical order, as `serde_json`
//! without `preserve_order` keeps them, as it always was. `State::gather`
//! reads it from the node's rooms.

use super::config::Config;
use super::dht::Dht;
use super::peer_wire::NodeRef;
use super::ring::Ring;
use crate::util::hex;
use serde::Serialize;
use std::time::Instant;

#[derive(Debug, Clone, Serialize)]
pub struct State {
    pub id: String,
    pub listen: String,
    pub api: String,
    pub joined: bool,
    pub predecessor: Option<String>,
    pub predecessor_addr: Option<String>,
    pub successor: String,
    pub successors: Vec<NodeState>,
    pub successor_list_length: usize,
    /// Each distinct finger once, at the first bit where it starts.
    pub fingers: Vec<FingerState>,
    /// Pairs held (own and replicas) and not expired.
    pub keys: usize,
    /// Pairs in (predecessor, id].
    pub owned_keys: usize,
    /// The keys held, in hex, sorted.
    pub stored: Vec<String>,
    /// Lookups made for DHT API requests started here, and their hops.
    pub lookups: u64,
    pub lookup_hops_total: u64,
    pub lookup_hops_histogram: Vec<u64>,
    pub lookups_failed: u64,
    pub gets_found: u64,
    pub gets_failed: u64,
    pub links: usize,
    pub clients: usize,
    pub client_backlog_bytes: usize,
    pub client_output_charged: usize,
    pub client_memory: usize,
}

/// A node in `State::successors`.
#[derive(Debug, Clone, Serialize)]
pub struct NodeState {
    pub id: String,
    pub addr: String,
}

/// A finger in `State::fingers`.
#[derive(Debug, Clone, Serialize)]
pub struct FingerState {
    pub bit: usize,
    pub id: String,
    pub addr: String,
}

impl NodeState {
    fn of(n: &NodeRef) -> NodeState {
        NodeState {
            id: n.id.to_hex(),
            addr: n.addr.to_string(),
        }
    }
}

impl State {
    pub fn gather(cfg: &Config, ring: &Ring, dht: &Dht, links: usize, now: Instant) -> State {
        let routing = ring.routing();
        let store = dht.store();
        let stats = dht.stats();
        let fingers = routing
            .finger_runs()
            .iter()
            .map(|(bit, n)| FingerState {
                bit: *bit,
                id: n.id.to_hex(),
                addr: n.addr.to_string(),
            })
            .collect();
        let mut stored: Vec<String> = store
            .iter()
            .filter(|(_, item)| item.expires > now)
            .map(|(key, _)| hex(key))
            .collect();
        stored.sort();
        let owned_keys = store
            .iter()
            .filter(|(_, item)| routing.owns(&item.ring_id))
            .count();
        let lookups: u64 = stats.hops_histogram.iter().sum();
        let lookup_hops_total: u64 = stats
            .hops_histogram
            .iter()
            .enumerate()
            .map(|(h, n)| h as u64 * n)
            .sum();
        State {
            id: cfg.id.to_hex(),
            listen: cfg.listen.to_string(),
            api: cfg.api.to_string(),
            joined: ring.is_joined(),
            predecessor: routing.predecessor.map(|p| p.id.to_hex()),
            predecessor_addr: routing.predecessor.map(|p| p.addr.to_string()),
            successor: routing.successor().id.to_hex(),
            successors: routing.successors.iter().map(NodeState::of).collect(),
            successor_list_length: routing.max_successors,
            fingers,
            keys: stored.len(),
            owned_keys,
            stored,
            lookups,
            lookup_hops_total,
            lookup_hops_histogram: stats.hops_histogram.clone(),
            lookups_failed: stats.lookups_failed,
            gets_found: stats.gets_found,
            gets_failed: stats.gets_failed,
            links,
            clients: dht.client_count(),
            client_backlog_bytes: dht.backlog_bytes(),
            client_output_charged: dht.output_charged(),
            client_memory: cfg.client_memory,
        }
    }

    /// As a JSON value (keys sorted, as `serde_json` without
    /// `preserve_order` keeps them).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("a chord state is always JSON")
    }
}
