//! Spreading: the items a node knows, the local modules' verdicts on them,
//! and passing them on.
//!
//! An item is sent to every peer connection except those it came from — at
//! most once per node, since items are recognised by content. An item from
//! a peer is first shown to the local modules subscribed to its type and
//! forwarded only after one of them calls it valid. A peer that keeps
//! sending items the node already has goes over its duplicate budget and is
//! reported to the caller (`Err(Overrun)`) to be cut off.

use super::api;
use super::budget::{self, DuplicateBudget};
use super::items::{self, Digest, Held, ItemStore, Record, Verdict};
use super::links::Links;
use super::node::NodeOut;
use super::p2p;
use crate::logging::RepeatedWarning;
use crate::reactor::ConnId;
use crate::warn_repeated;
use log::{debug, info, warn};
use std::time::Instant;

/// Counters for the state output and the benchmark.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    /// SEND CONTENT frames sent.
    pub items_sent: u64,
    /// SEND CONTENT frames received.
    pub items_received: u64,
    pub announced: u64,
    pub notifications: u64,
    /// SEND CONTENT frames carrying an item this node already knew.
    pub duplicates: u64,
}

pub struct Spreading {
    pub items: ItemStore,
    pub stats: Stats,
    duplicates: DuplicateBudget,
    /// Reused to encode a frame once and send it to many connections.
    scratch: Vec<u8>,
    too_big: RepeatedWarning,
    no_ids: RepeatedWarning,
}

impl Spreading {
    pub fn new(cache_size: usize) -> Self {
        Spreading {
            items: ItemStore::new(cache_size),
            stats: Stats::default(),
            duplicates: DuplicateBudget::new(cache_size),
            scratch: Vec::new(),
            too_big: RepeatedWarning::per_second(),
            no_ids: RepeatedWarning::per_second(),
        }
    }

    /// Report the held-back tail of each flood (from the maintenance timer).
    pub fn flush_warnings(&mut self, now: Instant) {
        for (w, what) in [
            (&mut self.too_big, "items too large to pass on"),
            (&mut self.no_ids, "items dropped: every message ID in use"),
        ] {
            if let Some(held) = w.flush(now) {
                warn!("{held} more {what} since the last report");
            }
        }
    }

    /// `conn` is gone: it is no longer a sender to skip.
    pub fn forget_conn(&mut self, conn: ConnId) {
        self.items.forget_conn(conn);
    }

    /// Send an item to every peer but `except`: one forwarding round.
    #[allow(clippy::too_many_arguments)]
    fn spread(
        &mut self,
        now: Instant,
        links: &Links,
        digest: &Digest,
        ttl: u8,
        data_type: u16,
        data: &[u8],
        except: &[ConnId],
        out: &mut NodeOut,
    ) {
        if data.len() > p2p::MAX_CONTENT_DATA {
            warn_repeated!(
                self.too_big,
                now,
                "item {} has {} bytes, more than a SEND CONTENT carries: not spread",
                items::short(digest),
                data.len()
            );
            return;
        }
        self.scratch.clear();
        p2p::write_content(&mut self.scratch, ttl, data_type, data).expect("size was checked");
        let targets = links.peer_conns_except(except);
        for &conn in &targets {
            out.send(conn, &self.scratch);
        }
        self.stats.items_sent += targets.len() as u64;
        if let Some(record) = self.items.record_mut(digest) {
            record.forwards += 1;
        }
        info!(
            "item {} (type {data_type}, ttl {ttl}) sent to {} peer(s)",
            items::short(digest),
            targets.len()
        );
    }

    /// Notify `modules` of an item as `msg_id`.
    fn notify(
        &mut self,
        now: Instant,
        modules: &[ConnId],
        msg_id: u16,
        data_type: u16,
        data: &[u8],
        out: &mut NodeOut,
    ) {
        self.scratch.clear();
        if api::write_notification(&mut self.scratch, msg_id, data_type, data).is_err() {
            warn_repeated!(
                self.too_big,
                now,
                "an item of {} bytes does not fit a NOTIFICATION",
                data.len()
            );
            return;
        }
        for &conn in modules {
            out.send(conn, &self.scratch);
        }
        self.stats.notifications += modules.len() as u64;
    }

    fn hold(&mut self, item: Held) {
        if let Some(old) = self.items.hold(item) {
            debug!("cache full: item {} dropped", items::short(&old.digest));
        }
    }

    /// An ANNOUNCE from the module on `conn`.
    #[allow(clippy::too_many_arguments)]
    pub fn announce(
        &mut self,
        now: Instant,
        links: &Links,
        conn: ConnId,
        ttl: u8,
        data_type: u16,
        data: &[u8],
        out: &mut NodeOut,
    ) {
        let digest = items::digest(data_type, data);
        if self.items.record(&digest).is_some() {
            info!(
                "{} announced item {} (type {data_type}) again: already known, not announced twice",
                links.describe(conn),
                items::short(&digest)
            );
            return;
        }
        info!(
            "{} announced item {} (type {data_type}, ttl {ttl}, {} bytes)",
            links.describe(conn),
            items::short(&digest),
            data.len()
        );
        self.stats.announced += 1;
        self.duplicates.new_item(now);
        self.items
            .remember(digest, Record::new(data_type, data, Verdict::Local));
        let others = links.subscribers(data_type, Some(conn));
        // The other modules get an ID like any notification; their verdicts
        // are accepted but change nothing: the item is already spreading.
        let msg_id = if others.is_empty() {
            None
        } else {
            self.items.allocate_id()
        };
        if let Some(id) = msg_id {
            self.notify(now, &others, id, data_type, data, out);
        }
        self.hold(Held {
            digest,
            ttl,
            data_type,
            data: data.to_vec(),
            msg_id,
            from: Vec::new(),
        });
        // The originating node sends the module's TTL as is.
        self.spread(now, links, &digest, ttl, data_type, data, &[], out);
    }

    /// A SEND CONTENT from the peer on `conn`. `Err` means the peer went
    /// over its budget of duplicates and must be cut off.
    #[allow(clippy::too_many_arguments)]
    pub fn content(
        &mut self,
        now: Instant,
        links: &mut Links,
        conn: ConnId,
        ttl: u8,
        data_type: u16,
        data: &[u8],
        out: &mut NodeOut,
    ) -> Result<(), budget::Overrun> {
        self.stats.items_received += 1;
        let digest = items::digest(data_type, data);
        let forgetful = crate::sim::bugs::seeded("gossip.no-dedup-while-awaiting")
            && self
                .items
                .record(&digest)
                .is_some_and(|r| r.verdict == Verdict::Awaiting);
        if let Some(record) = self.items.record_mut(&digest).filter(|_| !forgetful) {
            record.copies = record.copies.saturating_add(1);
            self.stats.duplicates += 1;
            self.items.note_sender(&digest, conn);
            debug!(
                "item {} again from connection {conn}",
                items::short(&digest)
            );
            if let Some(p) = links.peer_mut(conn) {
                self.duplicates.charge(&mut p.duplicates, now)?;
            }
            return Ok(());
        }
        self.duplicates.new_item(now);
        let mut record = Record::new(data_type, data, Verdict::Awaiting);
        record.copies = 1;
        let modules = links.subscribers(data_type, None);
        if modules.is_empty() {
            record.verdict = Verdict::Unsubscribed;
            self.items.remember(digest, record);
            info!(
                "item {} (type {data_type}) from {}: no module subscribed, not forwarded",
                items::short(&digest),
                links.describe(conn)
            );
            return Ok(());
        }
        let Some(msg_id) = self.items.allocate_id() else {
            warn_repeated!(
                self.no_ids,
                now,
                "every message ID is awaiting a verdict: item dropped"
            );
            return Ok(());
        };
        self.items.remember(digest, record);
        if crate::sim::bugs::seeded("gossip.forward-before-verdict") {
            // The old bug: passing an item on as it arrives, before any
            // module has judged it.
            let next = ttl.saturating_sub(1);
            self.spread(now, links, &digest, next, data_type, data, &[conn], out);
        }
        self.notify(now, &modules, msg_id, data_type, data, out);
        self.hold(Held {
            digest,
            ttl,
            data_type,
            data: data.to_vec(),
            msg_id: Some(msg_id),
            from: vec![conn],
        });
        info!(
            "item {} (type {data_type}, ttl {ttl}) from {}: notified {} module(s) as message {msg_id}",
            items::short(&digest),
            links.describe(conn),
            modules.len()
        );
        Ok(())
    }

    /// A VALIDATION from the module on `conn`: a valid item goes on (TTL
    /// permitting), an invalid one is dropped for good.
    pub fn validation(
        &mut self,
        now: Instant,
        links: &Links,
        conn: ConnId,
        msg_id: u16,
        valid: bool,
        out: &mut NodeOut,
    ) {
        let Some(digest) = self.items.awaited(msg_id) else {
            debug!("validation of message {msg_id}, which awaits none: ignored");
            return;
        };
        let Some(record) = self.items.record(&digest) else {
            self.items.settle(msg_id);
            return;
        };
        let subscribed = links
            .module(conn)
            .is_some_and(|m| m.subscriptions.contains(&record.data_type));
        if !subscribed {
            info!(
                "{} judged message {msg_id} without subscribing to its type: ignored",
                links.describe(conn)
            );
            return;
        }
        if record.verdict == Verdict::Local {
            self.items.settle(msg_id);
            return;
        }
        let Some(held) = self.items.settle(msg_id) else {
            return;
        };
        let (ttl, data_type, data, from) = (
            held.ttl,
            held.data_type,
            std::mem::take(&mut held.data),
            std::mem::take(&mut held.from),
        );
        if !valid {
            if let Some(record) = self.items.record_mut(&digest) {
                record.verdict = Verdict::Invalid;
            }
            self.items.drop_held(&digest);
            info!(
                "item {} judged invalid by {}: dropped for good",
                items::short(&digest),
                links.describe(conn)
            );
            return;
        }
        if let Some(record) = self.items.record_mut(&digest) {
            record.verdict = Verdict::Valid;
        }
        // TTL counts the hop just made: 1 was the last hop; 0 is unlimited.
        let spent = ttl == 1 || (ttl == 0 && crate::sim::bugs::seeded("gossip.ttl-zero-spent"));
        if spent {
            info!(
                "item {} judged valid; its TTL is spent, not forwarded",
                items::short(&digest)
            );
        } else {
            let next = ttl.saturating_sub(1);
            self.spread(now, links, &digest, next, data_type, &data, &from, out);
        }
        // Keep the data cached (it is what the cache is for) without the senders.
        if let Some(held) = self.items.held_mut(&digest) {
            held.data = data;
        }
    }
}
