//! The stored pairs between nodes: STOREs from peers (as owner, as a copy,
//! or a stale copy answered with ours), the copies on the next
//! `replicas - 1` successors, and keys handed over when a predecessor
//! joins or when this node leaves. The DHT API requests that use them are
//! in requests.rs.

use super::Dht;
use crate::chord::api_wire::Key;
use crate::chord::id::Id;
use crate::chord::peer_wire::{NodeRef, PeerMsg, StoreMsg, STORE_AS_OWNER};
use crate::chord::ring::Ring;
use crate::chord::rpc::Ctx;
use crate::chord::store::Merge;
use crate::chord::version;
use crate::reactor::ConnId;
use crate::warn_repeated;
use log::{debug, info};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How often a misdirected owner-store is passed back to a predecessor.
pub(super) const STORE_HOPS: u8 = 3;
/// Most stale copies answered with ours per tick (repairs).
pub const MAX_REPAIRS_PER_TICK: usize = 256;
/// Pushes of every owned pair to its replica holders happen at least this
/// often (in ticks of four), even when nothing changed.
const FULL_PUSH_EVERY: u64 = 8;

/// A TTL as the milliseconds a STORE carries (at most u32::MAX, 49 days:
/// far above the 65,535 s a PUT can ask for).
pub(super) fn ttl_ms(ttl: Duration) -> u32 {
    u32::try_from(ttl.as_millis()).unwrap_or(u32::MAX)
}

impl Dht {
    /// A peer's STORE, which came on `conn`.
    pub fn on_store(&mut self, conn: ConnId, store: StoreMsg, ring: &Ring, cx: &mut Ctx) {
        let now = cx.now;
        let StoreMsg {
            flags,
            hops_left,
            ttl_ms,
            stamp,
            key,
            value,
            ..
        } = store;
        let ttl = Duration::from_millis(ttl_ms as u64);
        if let Err(e) = self.clock.observe(now, stamp) {
            warn_repeated!(
                cx.warnings.stamp_too_far_ahead,
                now,
                "refusing a STORE stamped {} ms, more than {:?} past our clock ({} ms)",
                e.stamp,
                version::MAX_AHEAD,
                e.ours
            );
            return;
        }
        if flags & STORE_AS_OWNER != 0 {
            self.keep_as_owner(key, value, ttl, stamp, hops_left, ring, cx);
        } else if stamp == 0 {
            // Only a PUT on its way to the owner has no version yet.
            warn_repeated!(
                cx.warnings.stamp_too_far_ahead,
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
                        cx.reply(conn, &msg);
                    }
                }
                // Past the bound the sender is repaired by a later copy.
                Merge::Older => {}
                Merge::Full => warn_repeated!(
                    cx.warnings.store_full,
                    now,
                    "store full; a copy was refused"
                ),
            }
        }
    }

    /// A peer's FETCH: the value we hold, with its stamp.
    pub fn fetch(&self, now: Instant, key: &Key) -> Option<(u64, Vec<u8>)> {
        self.store
            .get(key, now)
            .map(|item| (item.stamp, item.value.clone()))
    }

    /// Keep a pair we were told we own, copy it to the replica holders, and
    /// pass it back to our predecessor if that one owns it now (it joined
    /// after the sender looked us up). `stamp` 0 is a PUT fresh from a
    /// client: it gets its version here, above the one we hold.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn keep_as_owner(
        &mut self,
        key: Key,
        value: Vec<u8>,
        ttl: Duration,
        stamp: u64,
        hops_left: u8,
        ring: &Ring,
        cx: &mut Ctx,
    ) {
        let now = cx.now;
        let ttl_ms = ttl_ms(ttl);
        let stamp = if stamp == 0 {
            let held = self.store.stamp(&key, now);
            self.clock.stamp(now, held)
        } else {
            stamp
        };
        let ring_id = Id::hash(&key);
        let routing = ring.routing();
        if let Some(pred) = routing
            .predecessor
            .filter(|_| !routing.owns(&ring_id) && hops_left > 0)
        {
            // Misdirected (the sender's tables were stale): the owner is
            // behind us and copies the pair to its successors itself. We keep
            // one only as its likely first replica holder.
            let msg = PeerMsg::Store(StoreMsg {
                req: 0,
                flags: STORE_AS_OWNER,
                hops_left: hops_left - 1,
                ttl_ms,
                stamp,
                key,
                value: value.clone(),
            });
            cx.send(pred.addr, &msg);
            if self.cfg.replicas > 1 && self.store.merge(key, value, stamp, ttl, now) == Merge::Full
            {
                warn_repeated!(
                    cx.warnings.store_full,
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
                warn_repeated!(cx.warnings.store_full, now, "store full; a PUT was refused");
                return;
            }
        }
        for holder in self.replica_holders(ring) {
            let msg = PeerMsg::Store(StoreMsg {
                req: 0,
                flags: 0,
                hops_left: 0,
                ttl_ms,
                stamp,
                key,
                value: value.clone(),
            });
            cx.send(holder.addr, &msg);
        }
    }

    fn replica_holders(&self, ring: &Ring) -> Vec<NodeRef> {
        let copies = self.cfg.replicas.max(1) - 1;
        ring.routing()
            .successors
            .iter()
            .take(copies)
            .copied()
            .collect()
    }

    /// Send one pair we hold to `to` as a plain copy (flags) with its remaining TTL.
    fn send_pair(&mut self, to: SocketAddr, key: &Key, flags: u8, cx: &mut Ctx) {
        if let Some(msg) = self.pair_message(cx.now, key, flags) {
            cx.send(to, &msg);
        }
    }

    /// A STORE of one pair we hold, with its version and remaining TTL.
    fn pair_message(&self, now: Instant, key: &Key, flags: u8) -> Option<PeerMsg> {
        let item = self.store.get(key, now)?;
        let ttl_ms = ttl_ms(item.expires.duration_since(now));
        Some(PeerMsg::Store(StoreMsg {
            req: 0,
            flags,
            hops_left: 0,
            ttl_ms,
            stamp: item.stamp,
            key: *key,
            value: item.value.clone(),
        }))
    }

    /// A new predecessor: it owns what lies before it now. With one copy per
    /// key we let those go; with more we are its first replica holder.
    pub fn hand_over_to_predecessor(&mut self, pred: NodeRef, ring: &Ring, cx: &mut Ctx) {
        let me = ring.me().id;
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
            self.send_pair(pred.addr, key, 0, cx);
        }
        if self.cfg.replicas <= 1 {
            for key in &theirs {
                self.store.remove(key);
            }
        }
    }

    /// Leaving: every pair we hold goes to `successor`.
    pub fn hand_all_to(&mut self, successor: NodeRef, cx: &mut Ctx) {
        let keys: Vec<_> = self.store.iter().map(|(key, _)| *key).collect();
        info!("leaving: handing {} pairs to {}", keys.len(), successor.id);
        for key in keys {
            self.send_pair(successor.addr, &key, 0, cx);
        }
    }

    /// Drop the pairs whose TTL is over.
    pub fn expire(&mut self, now: Instant) {
        let expired = self.store.expire(now);
        if expired > 0 {
            info!("{expired} pairs expired");
        }
    }

    /// Copy the pairs we own to the next `replicas - 1` successors when they
    /// or our range changed, and now and then regardless (a holder may have
    /// restarted).
    pub fn replicate(&mut self, ring: &Ring, cx: &mut Ctx) {
        let holders = self.replica_holders(ring);
        let Some(pred) = ring.routing().predecessor else {
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
        let me = ring.me().id;
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
                self.send_pair(holder.addr, key, 0, cx);
            }
        }
    }
}
