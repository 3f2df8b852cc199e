//! Writing: sends are queued per connection (or written at once when
//! large and nothing is queued), a feeder waits while a peer it feeds is
//! over the soft limit, and each touched connection is flushed at the end
//! of the turn, with WRITABLE interest only while bytes remain.

use super::connection::Phase;
use super::{close_reason, slot_of, Reactor, CONN_BASE, WRITE_NOW};
use crate::reactor::{CloseReason, ConnId, Driven};
use crate::warn_repeated;
use log::debug;
use mio::{Interest, Token};
use std::time::Instant;

impl Reactor {
    /// Queue bytes for `id`; if its backlog is over the soft limit, the
    /// connection whose input is being handled waits for it.
    pub(super) fn queue(&mut self, id: ConnId, data: &[u8]) {
        let soft = self.limits.soft_write_buffer;
        let Some(conn) = self.conns.get_mut(slot_of(id)).filter(|c| c.id == id) else {
            return; // a stale ID: that connection is gone
        };
        if conn.phase == Phase::Draining {
            return;
        }
        self.heap.queued(data.len());
        if self.trace.active() {
            let (stream, peer) = (&conn.stream, conn.peer);
            self.trace.sent(id, || stream.local_addr().ok(), peer, data);
        }
        let mut rest = data;
        let writable = matches!(conn.phase, Phase::Open | Phase::Finishing);
        if writable && rest.len() >= WRITE_NOW && conn.pending_write() == 0 {
            // On an error the bytes are queued and the end-of-turn flush
            // meets it again and closes the connection, as it would have.
            if let Ok(taken) = conn.write_now(rest) {
                rest = &rest[taken..];
            }
        }
        conn.queue(rest);
        self.dirty.push(id);
        if conn.pending_write() > soft {
            if let Some(feeder) = self.feeding {
                self.wait(feeder, id);
            }
        }
    }

    /// `feeder` is not read until `congested` drains below the soft limit.
    pub(super) fn wait(&mut self, feeder: ConnId, congested: ConnId) {
        let Some(f) = self.conn_mut(feeder) else {
            return;
        };
        if f.waiting_on.contains(&congested) {
            return;
        }
        f.waiting_on.push(congested);
        if let Some(c) = self.conn_mut(congested) {
            c.waiters.push(feeder);
        }
    }

    /// `congested` drained (or closed): its waiters may be read again.
    pub(super) fn release(&mut self, congested: ConnId, waiters: Vec<ConnId>) {
        for feeder in waiters {
            let Some(f) = self.conn_mut(feeder) else {
                continue;
            };
            f.waiting_on.retain(|&c| c != congested);
            if f.waiting_on.is_empty() && f.read_pending {
                self.deferred_reads.push(feeder);
            }
        }
    }

    /// Write what each touched connection has queued; keep WRITABLE interest
    /// only where bytes remain.
    pub(super) fn flush_dirty<D: Driven + ?Sized>(&mut self, protocol: &mut D) {
        while !self.dirty.is_empty() {
            let mut dirty = std::mem::take(&mut self.dirty);
            dirty.sort_unstable();
            dirty.dedup();
            for &id in &dirty {
                self.flush_one(id, protocol);
            }
            if self.dirty.is_empty() {
                dirty.clear();
                self.dirty = dirty; // keep the allocation
            }
        }
    }

    pub(super) fn flush_one<D: Driven + ?Sized>(&mut self, id: ConnId, protocol: &mut D) {
        let soft = self.limits.soft_write_buffer;
        let hard = self.limits.hard_write_buffer;
        let Some(conn) = self.conns.get_mut(slot_of(id)).filter(|c| c.id == id) else {
            return;
        };
        if matches!(conn.phase, Phase::Connecting { .. }) {
            return;
        }
        if let Err(e) = conn.flush() {
            let reason = close_reason(conn.input_ended, &e);
            self.close(id, reason, protocol);
            return;
        }
        let pending = conn.pending_write();
        if pending == 0 {
            match conn.phase {
                Phase::Draining => {
                    debug!(
                        "connection {id} ({}) closed after its last bytes",
                        conn.peer_label()
                    );
                    self.remove(id);
                    return;
                }
                Phase::Finishing => {
                    self.close(id, CloseReason::PeerClosed, protocol);
                    return;
                }
                _ => {}
            }
        }
        if pending > hard {
            let peer = conn.peer_label();
            warn_repeated!(
                self.warnings.slow_peer,
                Instant::now(),
                "connection {id} ({peer}): {pending} bytes queued for a peer that is not reading; dropping it"
            );
            self.close(id, CloseReason::SlowPeer, protocol);
            return;
        }
        let want = pending > 0;
        if want != conn.wants_write {
            conn.wants_write = want;
            if want {
                self.writers += 1;
            } else {
                self.writers -= 1;
            }
            let interest = if want {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            let _ = self.poll.registry().reregister(
                &mut conn.stream,
                Token(slot_of(id) + CONN_BASE),
                interest,
            );
        }
        if pending <= soft && !conn.waiters.is_empty() {
            let waiters = std::mem::take(&mut conn.waiters);
            self.release(id, waiters);
        }
    }
}
