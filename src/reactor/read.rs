//! Reading: each read goes into the reactor's one scratch buffer and is
//! handed to the protocol at once; a connection keeps only the partial
//! frame left over. Reading pauses for backpressure and for the per-turn
//! budget; the end of input and refused input are handled here.

use super::connection::Phase;
use super::{close_reason, slot_of, Reactor};
use crate::reactor::{CloseReason, ConnId, Driven, InputEnded};
use crate::warn_repeated;
use std::time::Instant;

impl Reactor {
    /// Read what `id` has, one read at a time, each handed to the protocol
    /// at once: from the reactor's one scratch buffer, so a connection keeps
    /// only the partial frame left at the end of a read, not a buffer of
    /// its own. A long partial frame is read onto instead of moved.
    pub(super) fn on_readable<D: Driven + ?Sized>(&mut self, id: ConnId, protocol: &mut D) {
        let budget = self.limits.read_budget;
        let max_read = self.limits.max_read_buffer;
        let mut total = 0;
        loop {
            let Some(conn) = self.conns.get_mut(slot_of(id)).filter(|c| c.id == id) else {
                return;
            };
            if conn.input_ended || matches!(conn.phase, Phase::Connecting { .. }) {
                return;
            }
            if total == 0 && !conn.waiting_on.is_empty() {
                // Backpressure: read once the peers this input feeds have
                // drained. (Checked once per turn, not between the reads of
                // one turn: those go on to the budget or the end of input,
                // so a request and its half-close are both seen at once.)
                conn.read_pending = true;
                return;
            }
            if total >= budget {
                // Leave the rest for the next turn, so one peer can't starve the others.
                conn.read_pending = true;
                self.deferred_reads.push(id);
                return;
            }
            conn.read_pending = false;
            let tail = conn.read_buf.len();
            let in_scratch = tail <= self.scratch.len() / 4;
            let read = if in_scratch {
                self.scratch[..tail].copy_from_slice(&conn.read_buf);
                conn.read_some(&mut self.scratch[tail..])
            } else {
                conn.read_appending(self.scratch.len())
            };
            let n = match read {
                Ok(Some(n)) if n > 0 => n,
                Ok(Some(_)) => return self.input_ended(id, protocol),
                Ok(None) => return,
                Err(e) => {
                    let reason = close_reason(false, &e);
                    return self.close(id, reason, protocol);
                }
            };
            total += n;
            let data: &[u8] = if in_scratch {
                conn.read_buf.clear();
                &self.scratch[..tail + n]
            } else {
                &conn.read_buf
            };
            if self.trace.active() {
                let (stream, peer) = (&conn.stream, conn.peer);
                let local = || stream.local_addr().ok();
                self.trace.received(id, local, peer, &data[tail..]);
            }
            if conn.phase == Phase::Draining {
                conn.read_buf.clear();
                continue;
            }
            self.feeding = Some(id);
            let result = protocol.on_data(Instant::now(), id, data, &mut self.actions);
            let mut unframed = false;
            if let Ok(used) = result {
                let used = used.min(data.len());
                if in_scratch {
                    conn.read_buf
                        .extend_from_slice(&self.scratch[used..tail + n]);
                } else {
                    conn.read_buf.drain(..used);
                }
                if conn.read_buf.is_empty() && conn.read_buf.capacity() > 64 * 1024 {
                    conn.read_buf = Vec::new();
                }
                unframed = conn.read_buf.len() > max_read;
            }
            // The answers to the frames before an error are queued first.
            self.apply(protocol);
            self.feeding = None;
            match result {
                Err(why) => return self.fail(id, why, protocol),
                Ok(_) if unframed => {
                    return self.fail(id, "unframed input over the limit".into(), protocol)
                }
                Ok(_) => {}
            }
        }
    }

    /// The peer finished sending: stop reading; what is queued is still written.
    pub(super) fn input_ended<D: Driven + ?Sized>(&mut self, id: ConnId, protocol: &mut D) {
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        conn.input_ended = true;
        let partial = std::mem::take(&mut conn.read_buf).len();
        if conn.phase != Phase::Open {
            return; // draining: it closes once flushed
        }
        if partial > 0 {
            let peer = conn.peer_label();
            warn_repeated!(
                self.warnings.partial_frame,
                Instant::now(),
                "connection {id} ({peer}): the peer stopped sending with {partial} unread bytes of a partial frame"
            );
        }
        let next = protocol.on_peer_finished_sending(Instant::now(), id, &mut self.actions);
        self.apply(protocol);
        if next == InputEnded::CloseWhenFlushed {
            if let Some(conn) = self.conn_mut(id) {
                if conn.phase == Phase::Open {
                    conn.phase = Phase::Finishing;
                    self.dirty.push(id);
                }
            }
        }
    }

    /// The protocol refused `id`'s input: tell it now, write the answers
    /// queued before the error, then close.
    pub(super) fn fail<D: Driven + ?Sized>(&mut self, id: ConnId, why: String, protocol: &mut D) {
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        if conn.phase == Phase::Draining {
            return; // the protocol had already let it go
        }
        conn.phase = Phase::Draining;
        conn.read_buf = Vec::new();
        let peer = conn.peer_label();
        self.dirty.push(id);
        warn_repeated!(
            self.warnings.protocol_error(&why),
            Instant::now(),
            "connection {id} ({peer}) closed: protocol error: {why}"
        );
        protocol.on_closed(
            Instant::now(),
            id,
            &CloseReason::ProtocolError(why),
            &mut self.actions,
        );
        self.apply(protocol);
    }

    /// Read the connections whose reading was put off, if they may be read now.
    pub(super) fn resume_deferred_reads<D: Driven + ?Sized>(&mut self, protocol: &mut D) {
        if self.deferred_reads.is_empty() {
            return;
        }
        let mut ids = std::mem::take(&mut self.deferred_reads);
        for &id in &ids {
            // A connection still waiting is listed again when it is released.
            let ready = self
                .conn(id)
                .is_some_and(|c| c.read_pending && c.waiting_on.is_empty());
            if ready {
                self.on_readable(id, protocol);
            }
        }
        if self.deferred_reads.is_empty() {
            ids.clear();
            self.deferred_reads = ids; // keep the allocation
        }
    }
}
