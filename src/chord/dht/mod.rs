//! The DHT room: the pairs this node holds, the DHT API requests being
//! served, the API clients with what each has in flight and waiting, and
//! the node-wide budgets for them. It owns all of that, and the one
//! invariant that spans it lives here: an op of a live client counts in
//! that client's `in_flight` from the moment it starts until it ends
//! (`take_request`, `finish_op`, `client_closed`, the only code that
//! touches both). It reads the ring (`&Ring`) and starts its own lookups;
//! it never changes the ring: what the ring must learn (a holder that did
//! not answer) the node tells it.
//!
//! requests.rs serves the API requests, pairs.rs moves pairs between
//! nodes, clients.rs holds the API connections and their backlogs.

mod clients;
mod pairs;
mod requests;

pub use clients::{ApiClient, MAX_BACKLOG_PER_CLIENT, MAX_OPS_PER_CLIENT};
pub use pairs::MAX_REPAIRS_PER_TICK;
pub use requests::{ApiOp, OpKind};

use super::actions::NodeOut;
use super::api_wire::ApiMsg;
use super::config::Config;
use super::lookup::MAX_HOPS;
use super::output_budget::OutputBudget;
use super::store::Store;
use super::version::Clock;
use crate::reactor::ConnId;
use std::collections::BTreeMap;
use std::time::Instant;

/// Default node-wide bound on what API clients can make the node hold
/// (`--max-client-memory`), applied to each of: the requests waiting in all
/// backlogs together, and the answers produced for them (the output budget).
pub const DEFAULT_CLIENT_MEMORY: usize = 64 << 20;

#[derive(Debug, Default, Clone)]
pub struct Stats {
    /// Lookups made for DHT API requests, by path length in hops.
    pub hops_histogram: Vec<u64>,
    pub lookups_failed: u64,
    pub gets_found: u64,
    pub gets_failed: u64,
    pub puts: u64,
}

impl Stats {
    pub fn record_hops(&mut self, hops: u32) {
        let slot = hops.min(MAX_HOPS) as usize;
        if self.hops_histogram.len() <= slot {
            self.hops_histogram.resize(slot + 1, 0);
        }
        self.hops_histogram[slot] += 1;
    }
}

pub struct Dht {
    cfg: Config,
    store: Store,
    /// Stamps the versions of the values this node accepts PUTs for.
    clock: Clock,
    ops: BTreeMap<u64, ApiOp>,
    next_op: u64,
    clients: BTreeMap<ConnId, ApiClient>,
    next_client: u64,
    /// Clients that may start backlogged requests now.
    ready: Vec<ConnId>,
    /// Bytes held in every client's backlog.
    backlog_total: usize,
    /// Bounds the answers the node produces for clients (node-wide).
    budget: OutputBudget,
    /// Clients waiting for the budget; Timer::Pump is set while any wait.
    blocked: Vec<ConnId>,
    /// The connection whose input is being handled now, if any.
    feeding: Option<ConnId>,
    /// Answers for clients that completed while another connection's input
    /// was handled (a peer's FETCH_REPLY, say). The reactor pauses the input
    /// that produced output for a congested connection; sent from there, a
    /// client that does not read would pause a ring link. They go out from
    /// Timer::Outbox (zero delay), which pauses nobody.
    outbox: Vec<(ConnId, u64, Vec<u8>)>,
    ticks: u64,
    /// Stale copies answered with ours since the last tick (bounded: a
    /// peer sending tiny old copies must not make us send big values back
    /// without end).
    repairs: usize,
    /// (replica holders, predecessor) when our keys were last copied out.
    replicated_for: (Vec<super::id::Id>, Option<super::id::Id>),
    stats: Stats,
}

impl Dht {
    pub fn new(cfg: &Config) -> Dht {
        Dht {
            cfg: cfg.clone(),
            store: Store::default(),
            clock: Clock::new(cfg.wall),
            ops: BTreeMap::new(),
            next_op: 0,
            clients: BTreeMap::new(),
            next_client: 0,
            ready: Vec::new(),
            backlog_total: 0,
            budget: OutputBudget::new(cfg.client_memory),
            blocked: Vec::new(),
            feeding: None,
            outbox: Vec::new(),
            ticks: 0,
            repairs: 0,
            replicated_for: (Vec::new(), None),
            stats: Stats::default(),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    #[cfg(test)]
    pub fn store_mut(&mut self) -> &mut Store {
        &mut self.store
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn reset_stats(&mut self) {
        self.stats = Stats::default();
    }

    pub fn client_count(&self) -> usize {
        self.clients.len()
    }

    pub fn backlog_bytes(&self) -> usize {
        self.backlog_total
    }

    pub fn output_charged(&self) -> usize {
        self.budget.charged()
    }

    pub fn output_limit(&self) -> usize {
        self.budget.limit()
    }

    /// The highest version stamp issued or accepted.
    pub fn last_stamp(&self) -> u64 {
        self.clock.last()
    }

    /// A new tick: returns its number.
    pub fn new_tick(&mut self) -> u64 {
        self.ticks += 1;
        self.repairs = 0;
        self.ticks
    }

    /// The input of `conn` is being handled now (None: no input).
    pub fn feeding(&mut self, conn: Option<ConnId>) {
        self.feeding = conn;
    }

    /// Some client got room during this event.
    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    /// The budget refilled: the clients waiting on it may go on.
    pub fn unblock(&mut self) {
        self.ready.append(&mut self.blocked);
    }

    // ---- ops and the per-client counts: only these change both ----------

    /// The next request of `conn`'s backlog, now in flight for it (with the
    /// client's serial), when it has room and the budget allows.
    fn take_request(
        &mut self,
        now: Instant,
        conn: ConnId,
        out: &mut NodeOut,
    ) -> Option<(u64, ApiMsg)> {
        let client = self.clients.get_mut(&conn)?;
        if client.in_flight >= MAX_OPS_PER_CLIENT {
            return None;
        }
        let next = client.backlog.front()?;
        if matches!(next, ApiMsg::Get { .. }) && !self.budget.reserve(now) {
            // The node has produced all the answers it may hold:
            // this client's requests wait until the budget refills.
            if self.blocked.is_empty() {
                out.timer(self.budget.wait(), super::actions::Timer::Pump);
            }
            if !self.blocked.contains(&conn) {
                self.blocked.push(conn);
            }
            return None;
        }
        let msg = client.backlog.pop_front().expect("front seen");
        let held = clients::held_bytes(&msg);
        client.backlog_bytes -= held;
        client.in_flight += 1;
        let serial = client.serial;
        self.backlog_total -= held;
        Some((serial, msg))
    }

    /// The op is over: the client it came from may start another.
    fn finish_op(&mut self, op: u64) -> Option<ApiOp> {
        let entry = self.ops.remove(&op)?;
        if let Some(serial) = entry.client {
            if let Some(client) = self.clients.get_mut(&entry.conn) {
                if client.serial == serial {
                    client.in_flight = client.in_flight.saturating_sub(1);
                    let more = !client.backlog.is_empty() || client.finishing;
                    if more && !self.ready.contains(&entry.conn) {
                        self.ready.push(entry.conn);
                    }
                }
            }
        }
        Some(entry)
    }

    /// `conn`'s client is gone: its GETs are dropped (nobody to answer),
    /// its PUTs in flight carry on without it. What its backlog held.
    fn client_closed(&mut self, now: Instant, conn: ConnId, drop_puts: bool) -> Option<ApiClient> {
        let client = self.clients.remove(&conn)?;
        self.backlog_total -= client.backlog_bytes;
        let before = self.ops.len();
        self.ops.retain(|_, op| {
            op.conn != conn
                || op.client != Some(client.serial)
                || (!drop_puts && matches!(op.kind, OpKind::Put { .. }))
        });
        for _ in self.ops.len()..before {
            self.budget.answered(now, 0);
        }
        for op in self.ops.values_mut() {
            if op.conn == conn && op.client == Some(client.serial) {
                op.client = None;
            }
        }
        Some(client)
    }
}
