//! The DHT API (PUT, GET, SUCCESS, FAILURE) and the pairs: where a request
//! goes, copies on the next `replicas - 1` successors, and keys moving when
//! a predecessor joins.

use super::api_wire::{ApiMsg, Key, KEY_LEN};
use super::id::Id;
use super::lookup::Purpose;
use super::node::{Node, Waiting, MAX_OPS_PER_CLIENT};
use super::peer_wire::{NodeRef, PeerMsg, STORE_AS_OWNER};
use crate::reactor::{Actions, ConnId};
use log::{debug, info, warn};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How often a misdirected owner-store is passed back to a predecessor.
const STORE_HOPS: u8 = 3;
/// New lookups one request may make after its holders failed.
const MAX_RELOOKUPS: u8 = 2;
/// A TTL of 0 in a PUT means the longest a PUT can ask for.
const MAX_TTL: Duration = Duration::from_secs(u16::MAX as u64);
/// Pushes of every owned pair to its replica holders happen at least this
/// often (in ticks of four), even when nothing changed.
const FULL_PUSH_EVERY: u64 = 8;

#[derive(Debug)]
pub enum OpKind {
    Get,
    Put { value: Vec<u8>, ttl: Duration },
}

/// One DHT API request being served.
#[derive(Debug)]
pub struct ApiOp {
    pub conn: ConnId,
    pub key: Key,
    pub kind: OpKind,
    /// The owner then its successors: who to ask, in order.
    pub holders: Vec<NodeRef>,
    pub next: usize,
    pub started: Instant,
    /// Holders that did not answer: a new lookup routes around them.
    pub unreachable: Vec<Id>,
    pub relookups: u8,
}

impl Node {
    pub(super) fn on_api_message(
        &mut self,
        now: Instant,
        conn: ConnId,
        msg: ApiMsg,
        out: &mut Actions,
    ) -> Result<(), String> {
        let (key, kind) = match msg {
            ApiMsg::Get { key } => (key, OpKind::Get),
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
            ApiMsg::Success { .. } | ApiMsg::Failure { .. } => {
                return Err("a DHT client sent an answer message".into());
            }
        };
        let in_flight = self.ops_per_conn.entry(conn).or_insert(0);
        if *in_flight >= MAX_OPS_PER_CLIENT {
            warn!("client {conn} has {MAX_OPS_PER_CLIENT} requests in flight; refusing one");
            if matches!(kind, OpKind::Get) {
                out.send(conn, &ApiMsg::Failure { key }.to_bytes());
            }
            return Ok(());
        }
        *in_flight += 1;
        self.next_op += 1;
        let op = self.next_op;
        self.ops.insert(
            op,
            ApiOp {
                conn,
                key,
                kind,
                holders: Vec::new(),
                next: 0,
                started: now,
                unreachable: Vec::new(),
                relookups: 0,
            },
        );
        self.start_lookup(now, Id::hash(&key), Purpose::Api(op), Vec::new(), out);
        Ok(())
    }

    /// The lookup named the owner and its successors.
    pub(super) fn holders_found(
        &mut self,
        now: Instant,
        op: u64,
        owners: Vec<NodeRef>,
        out: &mut Actions,
    ) {
        let replicas = self.cfg.replicas.max(1);
        let Some(entry) = self.ops.get_mut(&op) else {
            return;
        };
        let mut holders = owners;
        // A GET may find the pair on any replica holder; a PUT falls back to
        // the next node, which becomes owner if the first is gone.
        holders.truncate(replicas.max(2));
        entry.holders = holders;
        entry.next = 0;
        self.try_next_holder(now, op, out);
    }

    pub(super) fn try_next_holder(&mut self, now: Instant, op: u64, out: &mut Actions) {
        let Some(entry) = self.ops.get_mut(&op) else {
            return;
        };
        let Some(holder) = entry.holders.get(entry.next).copied() else {
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
                    let value = self.store.get(&key, now).map(|item| item.value.clone());
                    self.on_fetched(now, op, value, out);
                }
                OpKind::Put { value, ttl } => {
                    let (value, ttl) = (value.clone(), *ttl);
                    self.keep_as_owner(now, key, value, ttl, STORE_HOPS, out);
                    self.on_stored(op);
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
                let make = |req| PeerMsg::Store {
                    req,
                    flags: STORE_AS_OWNER,
                    hops_left: STORE_HOPS,
                    ttl_ms,
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
            self.op_failed(now, op, out);
        }
    }

    pub(super) fn on_fetched(
        &mut self,
        now: Instant,
        op: u64,
        value: Option<Vec<u8>>,
        out: &mut Actions,
    ) {
        match value {
            Some(value) => {
                if let Some(entry) = self.finish_op(op) {
                    self.stats.gets_found += 1;
                    out.send(
                        entry.conn,
                        &ApiMsg::Success {
                            key: entry.key,
                            value,
                        }
                        .to_bytes(),
                    );
                }
            }
            // Not there: a replica holder may have it (hand-over in progress).
            None => self.try_next_holder(now, op, out),
        }
    }

    pub(super) fn on_stored(&mut self, op: u64) {
        if self.finish_op(op).is_some() {
            self.stats.puts += 1;
        }
    }

    pub(super) fn op_failed(&mut self, _now: Instant, op: u64, out: &mut Actions) {
        let Some(entry) = self.finish_op(op) else {
            return;
        };
        match entry.kind {
            OpKind::Get => {
                self.stats.gets_failed += 1;
                out.send(entry.conn, &ApiMsg::Failure { key: entry.key }.to_bytes());
            }
            OpKind::Put { .. } => warn!(
                "PUT of {} could not be placed",
                super::node::hex(&entry.key[..8])
            ),
        }
    }

    fn finish_op(&mut self, op: u64) -> Option<ApiOp> {
        let entry = self.ops.remove(&op)?;
        if let Some(count) = self.ops_per_conn.get_mut(&entry.conn) {
            *count = count.saturating_sub(1);
        }
        Some(entry)
    }

    /// A GET is always answered: those past the deadline get FAILURE.
    pub(super) fn expire_ops(&mut self, now: Instant, out: &mut Actions) {
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

    // ---- pairs between nodes ------------------------------------------------

    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_store(
        &mut self,
        now: Instant,
        flags: u8,
        hops_left: u8,
        ttl_ms: u32,
        key: [u8; KEY_LEN],
        value: Vec<u8>,
        out: &mut Actions,
    ) {
        let ttl = Duration::from_millis(ttl_ms as u64);
        if flags & STORE_AS_OWNER != 0 {
            self.keep_as_owner(now, key, value, ttl, hops_left, out);
        } else if !self.store.put(key, value, ttl, now) {
            warn!("store full; a copy was refused");
        }
    }

    /// Keep a pair we were told we own, copy it to the replica holders, and
    /// pass it back to our predecessor if that one owns it now (it joined
    /// after the sender looked us up).
    fn keep_as_owner(
        &mut self,
        now: Instant,
        key: Key,
        value: Vec<u8>,
        ttl: Duration,
        hops_left: u8,
        out: &mut Actions,
    ) {
        let ttl_ms = ttl.as_millis().min(u32::MAX as u128) as u32;
        let ring_id = Id::hash(&key);
        let predecessor = self.routing.predecessor;
        if let Some(pred) = predecessor.filter(|_| !self.routing.owns(&ring_id) && hops_left > 0) {
            // Misdirected (the sender's tables were stale): the owner is
            // behind us and copies the pair to its successors itself. We keep
            // one only as its likely first replica holder.
            let msg = PeerMsg::Store {
                req: 0,
                flags: STORE_AS_OWNER,
                hops_left: hops_left - 1,
                ttl_ms,
                key,
                value: value.clone(),
            };
            self.send_peer(now, pred.addr, &msg, out);
            if self.cfg.replicas > 1 && !self.store.put(key, value, ttl, now) {
                warn!("store full; a copy was refused");
            }
            return;
        }
        if !self.store.put(key, value.clone(), ttl, now) {
            warn!("store full; a PUT was refused");
            return;
        }
        for holder in self.replica_holders() {
            let msg = PeerMsg::Store {
                req: 0,
                flags: 0,
                hops_left: 0,
                ttl_ms,
                key,
                value: value.clone(),
            };
            self.send_peer(now, holder.addr, &msg, out);
        }
    }

    fn replica_holders(&self) -> Vec<NodeRef> {
        let copies = self.cfg.replicas.max(1) - 1;
        self.routing
            .successors
            .iter()
            .take(copies)
            .copied()
            .collect()
    }

    /// Send one pair we hold to `to` as a plain copy (flags) with its remaining TTL.
    pub(super) fn send_pair(
        &mut self,
        now: Instant,
        to: SocketAddr,
        key: &Key,
        flags: u8,
        out: &mut Actions,
    ) {
        let Some(ttl_ms) = self.key_ttl_ms(now, key) else {
            return;
        };
        let Some(item) = self.store.get(key, now) else {
            return;
        };
        let msg = PeerMsg::Store {
            req: 0,
            flags,
            hops_left: 0,
            ttl_ms,
            key: *key,
            value: item.value.clone(),
        };
        self.send_peer(now, to, &msg, out);
    }

    /// A new predecessor: it owns what lies before it now. With one copy per
    /// key we let those go; with more we are its first replica holder.
    pub(super) fn hand_over_to_predecessor(
        &mut self,
        now: Instant,
        pred: NodeRef,
        out: &mut Actions,
    ) {
        let me = self.cfg.id;
        let theirs = self.store.keys_where(|id| !id.in_half_open(&pred.id, &me));
        if theirs.is_empty() {
            return;
        }
        info!(
            "handing {} pairs to new predecessor {}",
            theirs.len(),
            pred.id
        );
        for key in &theirs {
            self.send_pair(now, pred.addr, key, 0, out);
        }
        if self.cfg.replicas <= 1 {
            for key in &theirs {
                self.store.remove(key);
            }
        }
    }

    /// Copy the pairs we own to the next `replicas - 1` successors when they
    /// or our range changed, and now and then regardless (a holder may have
    /// restarted).
    pub(super) fn replicate(&mut self, now: Instant, out: &mut Actions) {
        let holders = self.replica_holders();
        let Some(pred) = self.routing.predecessor else {
            return;
        };
        if holders.is_empty() {
            return;
        }
        let snapshot = (
            holders.iter().map(|n| n.id).collect::<Vec<_>>(),
            Some(pred.id),
        );
        let periodic = (self.ticks / 4).is_multiple_of(FULL_PUSH_EVERY);
        if snapshot == self.replicated_for && !periodic {
            return;
        }
        self.replicated_for = snapshot;
        let me = self.cfg.id;
        let owned = self.store.keys_where(|id| id.in_half_open(&pred.id, &me));
        if !owned.is_empty() {
            debug!(
                "copying {} owned pairs to {} successors",
                owned.len(),
                holders.len()
            );
        }
        for holder in holders {
            for key in &owned {
                self.send_pair(now, holder.addr, key, 0, out);
            }
        }
    }
}
