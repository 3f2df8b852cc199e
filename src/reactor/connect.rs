//! Connections coming and going: accepting, registering a socket with
//! its generation-tagged ID, an outgoing connect completing, a socket that
//! failed or hung up, and closing (which releases whoever waited on it).

use super::connection::{Connection, Phase};
use super::{close_reason, slot_of, Reactor, CONN_BASE, DISCARD_BUDGET, SLOT_BITS, SLOT_MASK};
use crate::cli_words::io_error;
use crate::reactor::{CloseReason, ConnId, Driven, ListenerId};
use crate::warn_repeated;
use log::{debug, info};
use mio::net::TcpStream;
use mio::{Interest, Token};
use std::io;
use std::net::SocketAddr;
use std::time::Instant;

impl Reactor {
    pub(super) fn accept<D: Driven + ?Sized>(&mut self, listener: ListenerId, protocol: &mut D) {
        loop {
            let (stream, peer) = match self.listeners[listener].accept() {
                Ok(pair) => pair,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Out of descriptors, say: the pending connection stays queued.
                    warn_repeated!(
                        self.warnings.accept_failed,
                        Instant::now(),
                        "could not accept a connection: {}",
                        io_error(&e)
                    );
                    return;
                }
            };
            let _ = stream.set_nodelay(true);
            let Some(id) = self.insert(stream, Some(peer), Phase::Open, Interest::READABLE) else {
                continue;
            };
            debug!("accepted {peer} as connection {id}");
            protocol.on_accept(Instant::now(), listener, id, peer, &mut self.actions);
            self.apply(protocol);
            // Bytes may have arrived with the connection.
            self.on_readable(id, protocol);
        }
    }

    pub(super) fn insert(
        &mut self,
        mut stream: TcpStream,
        peer: Option<SocketAddr>,
        phase: Phase,
        interest: Interest,
    ) -> Option<ConnId> {
        let entry = self.conns.vacant_entry();
        let slot = entry.key();
        if slot > SLOT_MASK {
            return None; // more connections than IDs can tell apart: never on 64 bits
        }
        if self.generations.len() <= slot {
            self.generations.resize(slot + 1, 0);
        }
        let id = self.generations[slot] << SLOT_BITS | slot;
        if let Err(e) =
            self.poll
                .registry()
                .register(&mut stream, Token(slot + CONN_BASE), interest)
        {
            warn_repeated!(
                self.warnings.register_failed,
                Instant::now(),
                "could not watch a new connection: {}",
                io_error(&e)
            );
            return None;
        }
        let mut conn = Connection::new(id, stream, peer, phase);
        conn.wants_write = interest.is_writable();
        self.writers += usize::from(conn.wants_write);
        entry.insert(conn);
        Some(id)
    }

    pub(super) fn on_writable<D: Driven + ?Sized>(&mut self, id: ConnId, protocol: &mut D) {
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        if let Phase::Connecting { tag } = conn.phase {
            let failure = match conn.stream.take_error() {
                Ok(Some(e)) | Err(e) => Some(io_error(&e)),
                Ok(None) => match conn.stream.peer_addr() {
                    Ok(_) => None,
                    Err(e) if e.kind() == io::ErrorKind::NotConnected => return, // not yet
                    Err(e) => Some(io_error(&e)),
                },
            };
            match failure {
                Some(error) => {
                    self.remove(id);
                    protocol.on_connect_failed(Instant::now(), tag, &error, &mut self.actions);
                }
                None => {
                    conn.phase = Phase::Open;
                    let _ = conn.stream.set_nodelay(true);
                    protocol.on_connected(Instant::now(), tag, id, &mut self.actions);
                }
            }
            self.apply(protocol);
            self.dirty.push(id);
            return;
        }
        self.dirty.push(id);
    }

    /// An error event on a connection we no longer read (its input ended):
    /// close it if the socket failed, as nothing else would notice. One
    /// still read learns of it from its reads, after the bytes before it.
    pub(super) fn socket_failed<D: Driven + ?Sized>(
        &mut self,
        id: ConnId,
        protocol: &mut D,
    ) -> bool {
        let Some(conn) = self.conn_mut(id) else {
            return true;
        };
        if !conn.input_ended {
            return false;
        }
        match conn.stream.take_error() {
            Ok(Some(e)) | Err(e) => {
                let reason = close_reason(conn.input_ended, &e);
                self.close(id, reason, protocol);
                true
            }
            Ok(None) => false,
        }
    }

    /// The peer can take no more bytes (hung up both ways). A connection
    /// still being read learns it from its reads; one whose input ended
    /// would otherwise wait for a write to fail.
    pub(super) fn peer_gone<D: Driven + ?Sized>(&mut self, id: ConnId, protocol: &mut D) {
        if self.conn(id).is_some_and(|c| c.input_ended) {
            self.close(id, CloseReason::PeerClosed, protocol);
        }
    }

    /// Close `id` and tell the protocol (unless it let the connection go itself).
    pub(super) fn close<D: Driven + ?Sized>(
        &mut self,
        id: ConnId,
        reason: CloseReason,
        protocol: &mut D,
    ) {
        let Some(conn) = self.remove(id) else {
            return;
        };
        let peer = conn.peer_label();
        match &reason {
            CloseReason::PeerClosed => debug!("connection {id} ({peer}) closed by the peer"),
            // Logged, rate-limited, where the cause was found.
            CloseReason::SlowPeer | CloseReason::ProtocolError(_) => {
                debug!("connection {id} ({peer}) closed: {reason}")
            }
            _ => info!("connection {id} ({peer}) closed: {reason}"),
        }
        if conn.phase == Phase::Draining {
            return; // the protocol already let it go
        }
        protocol.on_closed(Instant::now(), id, &reason, &mut self.actions);
        self.apply(protocol);
    }

    pub(super) fn remove(&mut self, id: ConnId) -> Option<Connection> {
        let slot = slot_of(id);
        self.conn(id)?;
        let mut conn = self.conns.remove(slot);
        self.trace.forget(id);
        // The slot's next tenant gets a new ID; this one goes stale.
        self.generations[slot] = ((id >> SLOT_BITS) + 1) & SLOT_MASK;
        self.writers -= usize::from(conn.wants_write);
        let _ = self.poll.registry().deregister(&mut conn.stream);
        conn.discard_input(&mut self.scratch, DISCARD_BUDGET);
        for congested in std::mem::take(&mut conn.waiting_on) {
            if let Some(c) = self.conn_mut(congested) {
                c.waiters.retain(|&w| w != id);
            }
        }
        let waiters = std::mem::take(&mut conn.waiters);
        self.release(id, waiters);
        Some(conn)
    }
}
