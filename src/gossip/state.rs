//! The node's answer to `state`: what scenarios, benches and tests check.
//! The field names are the contract (`testcases/gossip`, `sim_net`'s
//! checks, the benches read them); the JSON is printed with its keys in
//! alphabetical order, as it always was.

use serde::Serialize;
use std::collections::BTreeSet;

#[derive(Debug, Clone, Serialize)]
pub struct State {
    /// Always "gossip".
    pub role: &'static str,
    /// The data of the items listed in `items`, newest first…
    pub seen: Vec<String>,
    /// …of those among them sent on at least once…
    pub forwarded: Vec<String>,
    /// …and of those a module judged invalid.
    pub rejected: Vec<String>,
    pub p2p_address: String,
    pub api_address: String,
    pub degree: usize,
    /// The peers' P2P addresses (or "connection N" before one is known), sorted.
    pub peers: Vec<String>,
    pub peer_count: usize,
    /// Peers this node dialled.
    pub outgoing: usize,
    /// Dials under way.
    pub dialing: usize,
    pub known_peers: usize,
    pub modules: usize,
    pub subscriptions: BTreeSet<u16>,
    pub cache_limit: usize,
    pub cached: usize,
    pub awaiting_verdict: usize,
    /// The most recent items (at most `STATE_ITEMS`), oldest first.
    pub items: Vec<ItemState>,
    /// The most times any known item was sent on.
    pub max_forwards: u32,
    pub items_sent: u64,
    pub items_received: u64,
    pub announced: u64,
    pub notifications_sent: u64,
    pub duplicates_received: u64,
    pub most_duplicates_from_one_peer: u64,
    /// A first peer link was up.
    pub joined: bool,
    pub rejected_connections: u64,
    pub last_rejection: Option<String>,
    pub shunned: usize,
}

/// One item in `State::items`.
#[derive(Debug, Clone, Serialize)]
pub struct ItemState {
    /// The digest's first bytes, in hex.
    pub id: String,
    #[serde(rename = "type")]
    pub data_type: u16,
    /// The data, shortened, as text.
    pub data: String,
    /// "local", "awaiting", "valid", "invalid", "unsubscribed" or "expired".
    pub verdict: &'static str,
    pub forwards: u32,
    pub copies: u32,
}

impl State {
    /// As a JSON value (keys sorted, as `serde_json` without
    /// `preserve_order` keeps them).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("a gossip state is always JSON")
    }
}
