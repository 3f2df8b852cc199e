//! The `state` JSON a node prints on request: what scenarios and tests
//! check, built from every part of the node in one place.

use super::node::Node;
use super::peer_wire::NodeRef;
use crate::util::hex;
use serde_json::json;
use std::time::Instant;

impl Node {
    pub fn state_json(&self, now: Instant) -> serde_json::Value {
        let node = |n: &NodeRef| json!({"id": n.id.to_hex(), "addr": n.addr.to_string()});
        let fingers: Vec<_> = self
            .routing
            .finger_runs()
            .iter()
            .map(|(bit, n)| json!({"bit": bit, "id": n.id.to_hex(), "addr": n.addr.to_string()}))
            .collect();
        let mut stored: Vec<String> = self
            .store
            .iter()
            .filter(|(_, item)| item.expires > now)
            .map(|(key, _)| hex(key))
            .collect();
        stored.sort();
        let owned = self
            .store
            .iter()
            .filter(|(_, item)| self.routing.owns(&item.ring_id))
            .count();
        let lookups: u64 = self.stats.hops_histogram.iter().sum();
        let total_hops: u64 = self
            .stats
            .hops_histogram
            .iter()
            .enumerate()
            .map(|(h, n)| h as u64 * n)
            .sum();
        json!({
            "id": self.cfg.id.to_hex(),
            "listen": self.cfg.listen.to_string(),
            "api": self.cfg.api.to_string(),
            "joined": self.joined,
            "predecessor": self.routing.predecessor.map(|p| p.id.to_hex()),
            "predecessor_addr": self.routing.predecessor.map(|p| p.addr.to_string()),
            "successor": self.routing.successor().id.to_hex(),
            "successors": self.routing.successors.iter().map(node).collect::<Vec<_>>(),
            "successor_list_length": self.routing.max_successors,
            "fingers": fingers,
            "keys": stored.len(),
            "owned_keys": owned,
            "stored": stored,
            "lookups": lookups,
            "lookup_hops_total": total_hops,
            "lookup_hops_histogram": self.stats.hops_histogram,
            "lookups_failed": self.stats.lookups_failed,
            "gets_found": self.stats.gets_found,
            "gets_failed": self.stats.gets_failed,
            "links": self.links.len(),
            "clients": self.clients.len(),
            "client_backlog_bytes": self.backlog_total,
            "client_output_charged": self.budget.charged(),
            "client_memory": self.cfg.client_memory,
        })
    }
}
