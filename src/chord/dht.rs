//! The DHT API (PUT, GET, SUCCESS, FAILURE): a client's requests, the
//! lookup of each key's holders, asking them in turn, and the answer. How
//! the pairs move between nodes (copies, hand-over) is in pairs.rs.

use super::api_wire::{ApiMsg, Key};
use super::id::Id;
use super::lookup::Purpose;
use super::node::NodeOut;
use super::node::{Node, Timer};
use super::pairs::STORE_HOPS;
use super::peer_wire::{NodeRef, PeerMsg, STORE_AS_OWNER};
use super::rpc::Waiting;
use super::version;
use crate::reactor::ConnId;
use crate::warn_repeated;
use log::debug;
use std::time::{Duration, Instant};

/// New lookups one request may make after its holders failed.
const MAX_RELOOKUPS: u8 = 2;
/// A TTL of 0 in a PUT means the longest a PUT can ask for.
const MAX_TTL: Duration = Duration::from_secs(u16::MAX as u64);

#[derive(Debug)]
pub enum OpKind {
    Get,
    Put { value: Vec<u8>, ttl: Duration },
}

/// One DHT API request being served.
#[derive(Debug)]
pub struct ApiOp {
    pub conn: ConnId,
    /// The serial of the client that asked; None once it closed (a PUT
    /// read is carried out anyway; a GET of a closed client is dropped).
    pub client: Option<u64>,
    pub key: Key,
    pub kind: OpKind,
    /// The owner then its successors: who to ask, in order.
    pub holders: Vec<NodeRef>,
    pub next: usize,
    pub started: Instant,
    /// Holders that did not answer: a new lookup routes around them.
    pub unreachable: Vec<Id>,
    pub relookups: u8,
    /// A GET asks every holder and answers the newest version found:
    /// the best so far (stamp, value).
    pub best: Option<(u64, Vec<u8>)>,
}

impl Node {
    pub(super) fn start_op(
        &mut self,
        now: Instant,
        conn: ConnId,
        client: Option<u64>,
        msg: ApiMsg,
        out: &mut NodeOut,
    ) {
        let (key, kind) = match msg {
            ApiMsg::Put {
                ttl, key, value, ..
            } => {
                let ttl = if ttl == 0 {
                    MAX_TTL
                } else {
                    Duration::from_secs(ttl as u64)
                };
                (key, OpKind::Put { value, ttl })
            }
            ApiMsg::Get { key } | ApiMsg::Success { key, .. } | ApiMsg::Failure { key } => {
                (key, OpKind::Get)
            }
        };
        self.next_op += 1;
        let op = self.next_op;
        self.ops.insert(
            op,
            ApiOp {
                conn,
                client,
                key,
                kind,
                holders: Vec::new(),
                next: 0,
                started: now,
                unreachable: Vec::new(),
                relookups: 0,
                best: None,
            },
        );
        self.start_lookup(now, Id::hash(&key), Purpose::Api(op), Vec::new(), out);
    }

    /// A client closed: its GETs are dropped (nobody to answer), its PUTs,
    /// in flight or backlogged, are carried out all the same.
    pub(super) fn api_closed(&mut self, now: Instant, conn: ConnId, out: &mut NodeOut) {
        let Some(client) = self.clients.remove(&conn) else {
            return;
        };
        self.backlog_total -= client.backlog_bytes;
        let before = self.ops.len();
        // The bug the hardening issue found: a client's PUTs dropped with it.
        let drop_puts = crate::sim::bugs::seeded("chord.put-lost-on-close");
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
        for msg in client.backlog {
            if !drop_puts && matches!(msg, ApiMsg::Put { .. }) {
                self.start_op(now, conn, None, msg, out);
            }
        }
    }

    /// The lookup named the owner and its successors.
    pub(super) fn holders_found(
        &mut self,
        now: Instant,
        op: u64,
        owners: Vec<NodeRef>,
        out: &mut NodeOut,
    ) {
        let replicas = self.cfg.replicas.max(1);
        let mut holders = owners;
        // The bug: the holders' list ended with our successor list.
        let cut = crate::sim::bugs::seeded("chord.small-ring-holders-cut");
        if self.routing.successors.len() < self.cfg.successors && !cut {
            // Our successor list is cut at ourselves: the ring is this
            // small, and after its end come we and our successors again.
            // A list found among our successors then ends too early (the
            // owner's own replica holders are missing; a GET would miss a
            // newer copy on them).
            let me = self.me();
            for node in std::iter::once(me).chain(self.routing.successors.iter().copied()) {
                if !holders.iter().any(|h| h.id == node.id) {
                    holders.push(node);
                }
            }
        }
        // A GET may find the pair on any replica holder; a PUT falls back to
        // the next node, which becomes owner if the first is gone.
        holders.truncate(replicas.max(2));
        let Some(entry) = self.ops.get_mut(&op) else {
            return;
        };
        entry.holders = holders;
        entry.next = 0;
        self.try_next_holder(now, op, out);
    }

    pub(super) fn try_next_holder(&mut self, now: Instant, op: u64, out: &mut NodeOut) {
        let Some(entry) = self.ops.get_mut(&op) else {
            return;
        };
        let Some(holder) = entry.holders.get(entry.next).copied() else {
            if matches!(entry.kind, OpKind::Get) {
                if let Some((_, value)) = entry.best.take() {
                    self.get_found(now, op, value, out);
                    return;
                }
                // No holder named had it, but we may hold a copy ourselves
                // (a replica whose owner lost its own, after crashes): answer it.
                let key = entry.key;
                if let Some(value) = self.store.get(&key, now).map(|item| item.value.clone()) {
                    self.get_found(now, op, value, out);
                    return;
                }
            }
            // A lookup answered from the end of someone's successor list may
            // name only a dead owner: look again, around the dead.
            if !entry.unreachable.is_empty() && entry.relookups < MAX_RELOOKUPS {
                entry.relookups += 1;
                let (key, exclude) = (entry.key, entry.unreachable.clone());
                self.start_lookup(now, Id::hash(&key), Purpose::Api(op), exclude, out);
            } else {
                self.op_failed(now, op, out);
            }
            return;
        };
        entry.next += 1;
        let key = entry.key;
        if holder.id == self.cfg.id {
            match &entry.kind {
                OpKind::Get => {
                    let value = self
                        .store
                        .get(&key, now)
                        .map(|item| (item.stamp, item.value.clone()));
                    self.on_fetched(now, op, value, out);
                }
                OpKind::Put { value, ttl } => {
                    let (value, ttl) = (value.clone(), *ttl);
                    self.keep_as_owner(now, key, value, ttl, 0, STORE_HOPS, out);
                    self.on_stored(now, op);
                }
            }
            return;
        }
        let sent = match &entry.kind {
            OpKind::Get => {
                let make = |req| PeerMsg::Fetch { req, key };
                self.request(
                    now,
                    holder.addr,
                    Some(holder.id),
                    Waiting::Fetch { op },
                    make,
                    out,
                )
            }
            OpKind::Put { value, ttl } => {
                let value = value.clone();
                let ttl_ms = ttl.as_millis().min(u32::MAX as u128) as u32;
                // Unstamped: the owner stamps it, above the value it holds.
                let make = |req| PeerMsg::Store {
                    req,
                    flags: STORE_AS_OWNER,
                    hops_left: STORE_HOPS,
                    ttl_ms,
                    stamp: 0,
                    key,
                    value,
                };
                self.request(
                    now,
                    holder.addr,
                    Some(holder.id),
                    Waiting::Store { op },
                    make,
                    out,
                )
            }
        };
        if !sent {
            // Not sent (nothing waits on it): the next holder may have it.
            self.try_next_holder(now, op, out);
        }
    }

    /// A holder's answer to a GET: kept if it is the newest so far; then
    /// the next holder is asked (a stale copy on the first holder must not
    /// hide a newer one on another; the answer comes once all were asked).
    pub(super) fn on_fetched(
        &mut self,
        now: Instant,
        op: u64,
        value: Option<(u64, Vec<u8>)>,
        out: &mut NodeOut,
    ) {
        if let Some((stamp, value)) = value {
            if let Err(e) = self.clock.observe(now, stamp) {
                // The same bound as on a STORE: a peer cannot make its
                // value win every GET by stamping it far in the future.
                warn_repeated!(
                    self.warnings.stamp_too_far_ahead,
                    now,
                    "ignoring a FETCH_REPLY stamped {} ms, more than {:?} past our clock ({} ms)",
                    e.stamp,
                    version::MAX_AHEAD,
                    e.ours
                );
            } else if let Some(entry) = self.ops.get_mut(&op) {
                let newer = entry.best.as_ref().is_none_or(|(s, v)| {
                    version::compare(stamp, &value, *s, v) == std::cmp::Ordering::Greater
                });
                if newer {
                    entry.best = Some((stamp, value));
                }
            }
        }
        self.try_next_holder(now, op, out)
    }

    fn get_found(&mut self, now: Instant, op: u64, value: Vec<u8>, out: &mut NodeOut) {
        if let Some(entry) = self.finish_op(op) {
            self.stats.gets_found += 1;
            let msg = ApiMsg::Success {
                key: entry.key,
                value,
            };
            self.answer(now, &entry, &msg, out);
        }
    }

    pub(super) fn on_stored(&mut self, _now: Instant, op: u64) {
        if self.finish_op(op).is_some() {
            self.stats.puts += 1;
        }
    }

    pub(super) fn op_failed(&mut self, now: Instant, op: u64, out: &mut NodeOut) {
        let Some(entry) = self.finish_op(op) else {
            return;
        };
        match entry.kind {
            // Past the deadline with a value found: the newest seen so far.
            OpKind::Get if entry.best.is_some() => {
                let (_, value) = entry.best.clone().expect("seen");
                self.stats.gets_found += 1;
                let msg = ApiMsg::Success {
                    key: entry.key,
                    value,
                };
                self.answer(now, &entry, &msg, out);
            }
            OpKind::Get => {
                self.stats.gets_failed += 1;
                let msg = ApiMsg::Failure { key: entry.key };
                self.answer(now, &entry, &msg, out);
            }
            OpKind::Put { .. } => warn_repeated!(
                self.warnings.put_not_placed,
                now,
                "PUT of key {}… could not be placed: no holder answered within {:?}",
                super::node::hex(&entry.key[..8]),
                self.cfg.op_deadline()
            ),
        }
    }

    /// Send a GET's answer (its client is live: a closed client's GETs are
    /// dropped) and charge it to the output budget.
    fn answer(&mut self, now: Instant, entry: &ApiOp, msg: &ApiMsg, out: &mut NodeOut) {
        let bytes = msg.to_bytes();
        self.budget.answered(now, bytes.len());
        let Some(serial) = entry.client else {
            return;
        };
        if self.feeding == Some(entry.conn) {
            // Produced by the client's own input: if it does not read, the
            // reactor stops reading from it (and only it).
            out.send(entry.conn, &bytes);
        } else {
            if self.outbox.is_empty() {
                out.timer(Duration::ZERO, Timer::Outbox);
            }
            self.outbox.push((entry.conn, serial, bytes));
        }
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

    /// A GET is always answered: those past the deadline get FAILURE.
    pub(super) fn expire_ops(&mut self, now: Instant, out: &mut NodeOut) {
        let deadline = self.cfg.op_deadline();
        let late: Vec<u64> = self
            .ops
            .iter()
            .filter(|(_, op)| now.duration_since(op.started) > deadline)
            .map(|(id, _)| *id)
            .collect();
        for op in late {
            debug!("request {op} ran out of time");
            self.op_failed(now, op, out);
        }
    }
}
