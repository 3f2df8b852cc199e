//! The stored pairs between nodes: STOREs from peers (as owner, as a copy,
//! or a stale copy answered with ours), the copies on the next
//! `replicas - 1` successors, and keys handed over when a predecessor
//! joins. The DHT API requests that use them are in dht.rs.

use super::api_wire::{Key, KEY_LEN};
use super::id::Id;
use super::node::{Node, NodeOut};
use super::peer_wire::{NodeRef, PeerMsg, STORE_AS_OWNER};
use super::store::Merge;
use super::version;
use crate::reactor::ConnId;
use crate::warn_repeated;
use log::{debug, info};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How often a misdirected owner-store is passed back to a predecessor.
pub(super) const STORE_HOPS: u8 = 3;
/// Most stale copies answered with ours per tick (repairs).
pub(super) const MAX_REPAIRS_PER_TICK: usize = 256;
/// Pushes of every owned pair to its replica holders happen at least this
/// often (in ticks of four), even when nothing changed.
const FULL_PUSH_EVERY: u64 = 8;

impl Node {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_store(
        &mut self,
        now: Instant,
        conn: ConnId,
        flags: u8,
        hops_left: u8,
        ttl_ms: u32,
        stamp: u64,
        key: [u8; KEY_LEN],
        value: Vec<u8>,
        out: &mut NodeOut,
    ) {
        let ttl = Duration::from_millis(ttl_ms as u64);
        if let Err(e) = self.clock.observe(now, stamp) {
            warn_repeated!(
                self.warnings.stamp_too_far_ahead,
                now,
                "refusing a STORE stamped {} ms, more than {:?} past our clock ({} ms)",
                e.stamp,
                version::MAX_AHEAD,
                e.ours
            );
            return;
        }
        if flags & STORE_AS_OWNER != 0 {
            self.keep_as_owner(now, key, value, ttl, stamp, hops_left, out);
        } else if stamp == 0 {
            // Only a PUT on its way to the owner has no version yet.
            warn_repeated!(
                self.warnings.stamp_too_far_ahead,
                now,
                "refusing a replica copy without a version stamp"
            );
        } else {
            match self.store.merge(key, value, stamp, ttl, now) {
                Merge::Stored => {}
                // The sender (an owner copying to us, or handing over) is
                // behind: repair it, on the connection the copy came on.
                Merge::Older if self.repairs < MAX_REPAIRS_PER_TICK => {
                    if let Some(msg) = self.pair_message(now, &key, 0) {
                        self.repairs += 1;
                        super::rpc::reply(out, conn, &msg);
                    }
                }
                // Past the bound the sender is repaired by a later copy.
                Merge::Older => {}
                Merge::Full => warn_repeated!(
                    self.warnings.store_full,
                    now,
                    "store full; a copy was refused"
                ),
            }
        }
    }

    /// Keep a pair we were told we own, copy it to the replica holders, and
    /// pass it back to our predecessor if that one owns it now (it joined
    /// after the sender looked us up). `stamp` 0 is a PUT fresh from a
    /// client: it gets its version here, above the one we hold.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn keep_as_owner(
        &mut self,
        now: Instant,
        key: Key,
        value: Vec<u8>,
        ttl: Duration,
        stamp: u64,
        hops_left: u8,
        out: &mut NodeOut,
    ) {
        let ttl_ms = ttl.as_millis().min(u32::MAX as u128) as u32;
        let stamp = if stamp == 0 {
            let held = self.store.stamp(&key, now);
            self.clock.stamp(now, held)
        } else {
            stamp
        };
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
                stamp,
                key,
                value: value.clone(),
            };
            self.send_peer(now, pred.addr, &msg, out);
            if self.cfg.replicas > 1 && self.store.merge(key, value, stamp, ttl, now) == Merge::Full
            {
                warn_repeated!(
                    self.warnings.store_full,
                    now,
                    "store full; a copy was refused"
                );
            }
            return;
        }
        match self.store.merge(key, value.clone(), stamp, ttl, now) {
            Merge::Stored => {}
            // A newer version is here already (and copied on its own).
            Merge::Older => return,
            Merge::Full => {
                warn_repeated!(
                    self.warnings.store_full,
                    now,
                    "store full; a PUT was refused"
                );
                return;
            }
        }
        for holder in self.replica_holders() {
            let msg = PeerMsg::Store {
                req: 0,
                flags: 0,
                hops_left: 0,
                ttl_ms,
                stamp,
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
        out: &mut NodeOut,
    ) {
        if let Some(msg) = self.pair_message(now, key, flags) {
            self.send_peer(now, to, &msg, out);
        }
    }

    /// A STORE of one pair we hold, with its version and remaining TTL.
    fn pair_message(&self, now: Instant, key: &Key, flags: u8) -> Option<PeerMsg> {
        let ttl_ms = self.key_ttl_ms(now, key)?;
        let item = self.store.get(key, now)?;
        Some(PeerMsg::Store {
            req: 0,
            flags,
            hops_left: 0,
            ttl_ms,
            stamp: item.stamp,
            key: *key,
            value: item.value.clone(),
        })
    }

    /// A new predecessor: it owns what lies before it now. With one copy per
    /// key we let those go; with more we are its first replica holder.
    pub(super) fn hand_over_to_predecessor(
        &mut self,
        now: Instant,
        pred: NodeRef,
        out: &mut NodeOut,
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
    pub(super) fn replicate(&mut self, now: Instant, out: &mut NodeOut) {
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
