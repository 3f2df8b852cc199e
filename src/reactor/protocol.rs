//! The contract between the reactor and a protocol state machine.
//!
//! A protocol never touches a socket: it is told what happened (an
//! [`Protocol`] callback) and answers by filling an [`Actions`] list that the
//! reactor carries out afterwards. Unit tests drive the same callbacks by hand.

use std::net::SocketAddr;
use std::time::Duration;

/// Identifies one connection (accepted, or opened with [`Actions::connect`]).
pub type ConnId = usize;

/// Identifies one listening socket, in the order they were handed to the reactor.
pub type ListenerId = usize;

/// Why the reactor closed a connection (or learnt that the peer did).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The peer closed its end (read returned 0).
    PeerClosed,
    /// A socket error (reset, refused, ...).
    Io(String),
    /// The protocol asked for it ([`Actions::close`] or [`Actions::close_after_flush`]).
    Requested,
    /// The peer stopped reading and its write buffer overflowed or stalled.
    SlowPeer,
    /// The protocol rejected what the peer sent.
    ProtocolError(String),
}

impl std::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CloseReason::PeerClosed => write!(f, "closed by the peer"),
            CloseReason::Io(e) => write!(f, "socket error: {e}"),
            CloseReason::Requested => write!(f, "closed by this node"),
            CloseReason::SlowPeer => write!(f, "the peer stopped reading what it is sent"),
            CloseReason::ProtocolError(why) => write!(f, "protocol error: {why}"),
        }
    }
}

/// What the protocol wants done; filled during a callback, executed after it.
#[derive(Debug, Default)]
pub struct Actions {
    /// Bytes to send, all concatenated; `sends` cuts them per connection.
    pub(crate) bytes: Vec<u8>,
    pub(crate) sends: Vec<(ConnId, usize)>,
    pub(crate) other: Vec<Action>,
}

/// Every action but `send` (kept apart so a relay appends bytes without allocating).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Close now, dropping anything not yet written.
    Close(ConnId),
    /// Close once everything queued so far has been written.
    CloseAfterFlush(ConnId),
    /// Open a TCP connection; `tag` comes back in `on_connected`/`on_connect_failed`.
    Connect { addr: SocketAddr, tag: u64 },
    /// Call `on_timer(token)` after `after`.
    Timer { after: Duration, token: u64 },
    /// Print a line on standard output (the `state` answer, a received chat).
    Print(String),
    /// Stop the loop after flushing what is queued.
    Stop,
}

impl Actions {
    pub fn new() -> Self {
        Self::default()
    }

    /// Queue `data` for `conn`. Consecutive sends to one connection are merged.
    pub fn send(&mut self, conn: ConnId, data: &[u8]) {
        self.bytes.extend_from_slice(data);
        match self.sends.last_mut() {
            Some((last, len)) if *last == conn => *len += data.len(),
            _ => self.sends.push((conn, data.len())),
        }
    }

    /// Queue bytes written by `fill` into the shared buffer (no temporary Vec).
    pub fn send_with(&mut self, conn: ConnId, fill: impl FnOnce(&mut Vec<u8>)) {
        let before = self.bytes.len();
        fill(&mut self.bytes);
        let added = self.bytes.len() - before;
        match self.sends.last_mut() {
            Some((last, len)) if *last == conn => *len += added,
            _ => self.sends.push((conn, added)),
        }
    }

    pub fn close(&mut self, conn: ConnId) {
        self.other.push(Action::Close(conn));
    }

    pub fn close_after_flush(&mut self, conn: ConnId) {
        self.other.push(Action::CloseAfterFlush(conn));
    }

    pub fn connect(&mut self, addr: SocketAddr, tag: u64) {
        self.other.push(Action::Connect { addr, tag });
    }

    pub fn timer(&mut self, after: Duration, token: u64) {
        self.other.push(Action::Timer { after, token });
    }

    pub fn print(&mut self, line: impl Into<String>) {
        self.other.push(Action::Print(line.into()));
    }

    pub fn stop(&mut self) {
        self.other.push(Action::Stop);
    }

    pub fn is_empty(&self) -> bool {
        self.sends.is_empty() && self.other.is_empty()
    }

    /// The sends in order, as (connection, bytes): for tests and in-memory networks.
    pub fn sent(&self) -> Vec<(ConnId, &[u8])> {
        let mut at = 0;
        self.sends
            .iter()
            .map(|&(conn, len)| {
                let slice = &self.bytes[at..at + len];
                at += len;
                (conn, slice)
            })
            .collect()
    }

    /// Every action other than sends, in order.
    pub fn others(&self) -> &[Action] {
        &self.other
    }

    /// Empty the list, keeping its allocations.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.sends.clear();
        self.other.clear();
    }

    /// Give back buffers a burst grew past `max` bytes: one announcement to
    /// thousands of clients must not keep its megabytes for the idle hours after.
    pub(crate) fn trim(&mut self, max: usize) {
        if self.bytes.capacity() > max {
            self.bytes = Vec::new();
        }
        if self.sends.capacity() * std::mem::size_of::<(ConnId, usize)>() > max {
            self.sends = Vec::new();
        }
    }
}

/// A protocol state machine driven by the reactor. Every method has a default
/// that does nothing, so a protocol implements only what it uses.
pub trait Protocol {
    /// Called once, before the first poll.
    fn on_start(&mut self, _out: &mut Actions) {}

    /// A listener accepted `conn` from `peer`.
    fn on_accept(
        &mut self,
        _listener: ListenerId,
        _conn: ConnId,
        _peer: SocketAddr,
        _out: &mut Actions,
    ) {
    }

    /// An outgoing connection asked for with `tag` is established as `conn`.
    fn on_connected(&mut self, _tag: u64, _conn: ConnId, _out: &mut Actions) {}

    /// An outgoing connection asked for with `tag` could not be made.
    fn on_connect_failed(&mut self, _tag: u64, _error: &str, _out: &mut Actions) {}

    /// Bytes arrived on `conn`; `data` holds everything not yet consumed.
    /// Return how many bytes were used (whole frames), or an error that
    /// closes the connection (the reactor logs it).
    fn on_data(&mut self, conn: ConnId, data: &[u8], out: &mut Actions) -> Result<usize, String>;

    /// `conn` is gone (by either side). Not called for a connection the
    /// protocol closed itself with `close` — it already knows.
    fn on_closed(&mut self, _conn: ConnId, _reason: &CloseReason, _out: &mut Actions) {}

    /// A timer set with `token` fired.
    fn on_timer(&mut self, _token: u64, _out: &mut Actions) {}

    /// A line typed on standard input (without its line end).
    fn on_stdin_line(&mut self, _line: &str, _out: &mut Actions) {}

    /// Standard input reached its end.
    fn on_stdin_closed(&mut self, _out: &mut Actions) {}
}
