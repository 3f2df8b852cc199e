//! The node's answer to `state`: what scenarios, benches and tests check.
//! The field names are the contract (`testcases/gossip`, `sim_net`'s
//! checks, the benches read them); the JSON is printed with its keys in
//! alphabetical order, as it always was. `State::gather` reads it from the
//! node's rooms (links, membership, spreading) and its own counters.

use super::items::{self, Record, Verdict};
use super::links::Links;
use super::membership::Membership;
use super::node::NodeConfig;
use super::spreading::Spreading;
use serde::Serialize;
use std::collections::BTreeSet;

/// The state output lists this many of the most recent items.
const STATE_ITEMS: usize = 200;

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

/// What the state is read from: the node's rooms and its own counters.
pub(super) struct Sources<'a> {
    pub cfg: &'a NodeConfig,
    pub links: &'a Links,
    pub membership: &'a Membership,
    pub spreading: &'a Spreading,
    pub joined: bool,
    pub rejected_connections: u64,
    pub last_rejection: Option<&'a str>,
}

impl State {
    pub(super) fn gather(s: Sources<'_>) -> State {
        let items = &s.spreading.items;
        let stats = &s.spreading.stats;
        let mut peers: Vec<String> = s
            .links
            .peers()
            .map(|(id, p)| {
                p.addr
                    .map_or_else(|| format!("connection {id}"), |a| a.to_string())
            })
            .collect();
        peers.sort();
        // The most recent items, newest first.
        let records: Vec<_> = items.records().rev().take(STATE_ITEMS).collect();
        let data_where = |keep: &dyn Fn(&Record) -> bool| -> Vec<String> {
            records
                .iter()
                .filter(|(_, r)| keep(r))
                .map(|(_, r)| r.preview.clone())
                .collect()
        };
        State {
            role: "gossip",
            seen: data_where(&|_| true),
            forwarded: data_where(&|r| r.forwards > 0),
            rejected: data_where(&|r| r.verdict == Verdict::Invalid),
            p2p_address: s.cfg.p2p_address.to_string(),
            api_address: s.cfg.api_address.to_string(),
            degree: s.cfg.degree,
            peers,
            peer_count: s.links.peer_count(),
            outgoing: s.links.peers().filter(|(_, p)| p.outgoing).count(),
            dialing: s.membership.dialing_count(),
            known_peers: s.membership.known_count(),
            modules: s.links.module_count(),
            subscriptions: s.links.subscriptions(),
            cache_limit: s.cfg.cache_size,
            cached: items.held_count(),
            awaiting_verdict: items.awaiting_count(),
            items: records
                .iter()
                .rev()
                .map(|(d, r)| ItemState {
                    id: items::short(d),
                    data_type: r.data_type,
                    data: r.preview.clone(),
                    verdict: r.verdict.name(),
                    forwards: r.forwards,
                    copies: r.copies,
                })
                .collect(),
            max_forwards: items.records().map(|(_, r)| r.forwards).max().unwrap_or(0),
            items_sent: stats.items_sent,
            items_received: stats.items_received,
            announced: stats.announced,
            notifications_sent: stats.notifications,
            duplicates_received: stats.duplicates,
            most_duplicates_from_one_peer: s
                .links
                .peers()
                .map(|(_, p)| p.duplicates.count())
                .max()
                .unwrap_or(0),
            joined: s.joined,
            rejected_connections: s.rejected_connections,
            last_rejection: s.last_rejection.map(str::to_string),
            shunned: s.membership.shunned_count(),
        }
    }

    /// As a JSON value (keys sorted, as `serde_json` without
    /// `preserve_order` keeps them).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("a gossip state is always JSON")
    }
}
