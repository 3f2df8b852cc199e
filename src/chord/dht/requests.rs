//! The DHT API requests (PUT, GET, SUCCESS, FAILURE): the lookup of each
//! key's holders, asking them in turn, and the answer. How the pairs move
//! between nodes (copies, hand-over) is in pairs.rs.

use super::Dht;
use crate::chord::actions::Timer;
use crate::chord::api_wire::{ApiMsg, Key};
use crate::chord::id::Id;
use crate::chord::lookup::{Lookups, Purpose, Step};
use crate::chord::lookup_steps;
use crate::chord::peer_wire::{NodeRef, PeerMsg, StoreMsg, STORE_AS_OWNER};
use crate::chord::ring::Ring;
use crate::chord::rpc::{Ctx, Waiting};
use crate::chord::version;
use crate::reactor::ConnId;
use crate::util::hex;
use crate::warn_repeated;
use log::debug;
use std::time::{Duration, Instant};

use super::pairs::{ttl_ms, STORE_HOPS};

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

impl Dht {
    pub(super) fn start_op(
        &mut self,
        conn: ConnId,
        client: Option<u64>,
        msg: ApiMsg,
        ring: &Ring,
        lookups: &mut Lookups,
        cx: &mut Ctx,
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
                started: cx.now,
                unreachable: Vec::new(),
                relookups: 0,
                best: None,
            },
        );
        self.look_up(op, key, Vec::new(), ring, lookups, cx);
    }

    /// Look up the holders of `key` for `op`, routing around `exclude`.
    fn look_up(
        &mut self,
        op: u64,
        key: Key,
        exclude: Vec<Id>,
        ring: &Ring,
        lookups: &mut Lookups,
        cx: &mut Ctx,
    ) {
        let (_, step) = lookups.start(Id::hash(&key), Purpose::Api(op), exclude, &ring.view());
        if let Some(end) = lookup_steps::drive(lookups, step, cx) {
            self.lookup_ended(end, ring, lookups, cx);
        }
    }

    /// One of the DHT's lookups ended.
    pub fn lookup_ended(&mut self, end: Step, ring: &Ring, lookups: &mut Lookups, cx: &mut Ctx) {
        match end {
            Step::Done { lookup, owners } => {
                if let Purpose::Api(op) = lookup.purpose {
                    self.stats.record_hops(lookup.hops);
                    self.holders_found(op, owners, ring, lookups, cx);
                }
            }
            Step::Failed { lookup, .. } => {
                if let Purpose::Api(op) = lookup.purpose {
                    self.stats.lookups_failed += 1;
                    self.op_failed(op, cx);
                }
            }
            Step::Ask { .. } => debug_assert!(false, "drive hands over ends only"),
        }
    }

    /// The lookup named the owner and its successors.
    fn holders_found(
        &mut self,
        op: u64,
        owners: Vec<NodeRef>,
        ring: &Ring,
        lookups: &mut Lookups,
        cx: &mut Ctx,
    ) {
        let replicas = self.cfg.replicas.max(1);
        let mut holders = owners;
        let routing = ring.routing();
        // The bug: the holders' list ended with our successor list.
        let cut = crate::sim::bugs::seeded("chord.small-ring-holders-cut");
        if routing.successors.len() < self.cfg.successors && !cut {
            // Our successor list is cut at ourselves: the ring is this
            // small, and after its end come we and our successors again.
            // A list found among our successors then ends too early (the
            // owner's own replica holders are missing; a GET would miss a
            // newer copy on them).
            for node in std::iter::once(routing.me).chain(routing.successors.iter().copied()) {
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
        self.try_next_holder(op, ring, lookups, cx);
    }

    /// The holder asked for `op` did not answer (the node has marked it dead).
    pub fn holder_failed(
        &mut self,
        op: u64,
        holder: Option<Id>,
        ring: &Ring,
        lookups: &mut Lookups,
        cx: &mut Ctx,
    ) {
        if let Some(id) = holder {
            if let Some(entry) = self.ops.get_mut(&op) {
                entry.unreachable.push(id);
            }
        }
        self.try_next_holder(op, ring, lookups, cx);
    }

    fn try_next_holder(&mut self, op: u64, ring: &Ring, lookups: &mut Lookups, cx: &mut Ctx) {
        let now = cx.now;
        let Some(entry) = self.ops.get_mut(&op) else {
            return;
        };
        let Some(holder) = entry.holders.get(entry.next).copied() else {
            if matches!(entry.kind, OpKind::Get) {
                if let Some((_, value)) = entry.best.take() {
                    self.get_found(op, value, cx);
                    return;
                }
                // No holder named had it, but we may hold a copy ourselves
                // (a replica whose owner lost its own, after crashes): answer it.
                let key = entry.key;
                if let Some(value) = self.store.get(&key, now).map(|item| item.value.clone()) {
                    self.get_found(op, value, cx);
                    return;
                }
            }
            // A lookup answered from the end of someone's successor list may
            // name only a dead owner: look again, around the dead.
            if !entry.unreachable.is_empty() && entry.relookups < MAX_RELOOKUPS {
                entry.relookups += 1;
                let (key, exclude) = (entry.key, entry.unreachable.clone());
                self.look_up(op, key, exclude, ring, lookups, cx);
            } else {
                self.op_failed(op, cx);
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
                    self.on_fetched(op, value, ring, lookups, cx);
                }
                OpKind::Put { value, ttl } => {
                    let (value, ttl) = (value.clone(), *ttl);
                    self.keep_as_owner(key, value, ttl, 0, STORE_HOPS, ring, cx);
                    self.on_stored(op);
                }
            }
            return;
        }
        let sent = match &entry.kind {
            OpKind::Get => {
                let make = |req| PeerMsg::Fetch { req, key };
                cx.request(holder.addr, Some(holder.id), Waiting::Fetch { op }, make)
            }
            OpKind::Put { value, ttl } => {
                let value = value.clone();
                let ttl_ms = ttl_ms(*ttl);
                // Unstamped: the owner stamps it, above the value it holds.
                let make = |req| {
                    PeerMsg::Store(StoreMsg {
                        req,
                        flags: STORE_AS_OWNER,
                        hops_left: STORE_HOPS,
                        ttl_ms,
                        stamp: 0,
                        key,
                        value,
                    })
                };
                cx.request(holder.addr, Some(holder.id), Waiting::Store { op }, make)
            }
        };
        if !sent {
            // Not sent (nothing waits on it): the next holder may have it.
            self.try_next_holder(op, ring, lookups, cx);
        }
    }

    /// A holder's answer to a GET: kept if it is the newest so far; then
    /// the next holder is asked (a stale copy on the first holder must not
    /// hide a newer one on another; the answer comes once all were asked).
    pub fn on_fetched(
        &mut self,
        op: u64,
        value: Option<(u64, Vec<u8>)>,
        ring: &Ring,
        lookups: &mut Lookups,
        cx: &mut Ctx,
    ) {
        if let Some((stamp, value)) = value {
            if let Err(e) = self.clock.observe(cx.now, stamp) {
                // The same bound as on a STORE: a peer cannot make its
                // value win every GET by stamping it far in the future.
                warn_repeated!(
                    cx.warnings.stamp_too_far_ahead,
                    cx.now,
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
        self.try_next_holder(op, ring, lookups, cx)
    }

    fn get_found(&mut self, op: u64, value: Vec<u8>, cx: &mut Ctx) {
        if let Some(entry) = self.finish_op(op) {
            self.stats.gets_found += 1;
            let msg = ApiMsg::Success {
                key: entry.key,
                value,
            };
            self.answer(&entry, &msg, cx);
        }
    }

    pub fn on_stored(&mut self, op: u64) {
        if self.finish_op(op).is_some() {
            self.stats.puts += 1;
        }
    }

    fn op_failed(&mut self, op: u64, cx: &mut Ctx) {
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
                self.answer(&entry, &msg, cx);
            }
            OpKind::Get => {
                self.stats.gets_failed += 1;
                let msg = ApiMsg::Failure { key: entry.key };
                self.answer(&entry, &msg, cx);
            }
            OpKind::Put { .. } => warn_repeated!(
                cx.warnings.put_not_placed,
                cx.now,
                "PUT of key {}… could not be placed: no holder answered within {:?}",
                hex(&entry.key[..8]),
                self.cfg.op_deadline()
            ),
        }
    }

    /// Send a GET's answer (its client is live: a closed client's GETs are
    /// dropped) and charge it to the output budget.
    fn answer(&mut self, entry: &super::ApiOp, msg: &ApiMsg, cx: &mut Ctx) {
        let bytes = msg.to_bytes();
        self.budget.answered(cx.now, bytes.len());
        let Some(serial) = entry.client else {
            return;
        };
        if self.feeding == Some(entry.conn) {
            // Produced by the client's own input: if it does not read, the
            // reactor stops reading from it (and only it).
            cx.out.send(entry.conn, &bytes);
        } else {
            if self.outbox.is_empty() {
                cx.out.timer(Duration::ZERO, Timer::Outbox);
            }
            self.outbox.push((entry.conn, serial, bytes));
        }
    }

    /// A GET is always answered: those past the deadline get FAILURE.
    pub fn expire_ops(&mut self, cx: &mut Ctx) {
        let deadline = self.cfg.op_deadline();
        let now = cx.now;
        let late: Vec<u64> = self
            .ops
            .iter()
            .filter(|(_, op)| now.duration_since(op.started) > deadline)
            .map(|(id, _)| *id)
            .collect();
        for op in late {
            debug!("request {op} ran out of time");
            self.op_failed(op, cx);
        }
    }
}
