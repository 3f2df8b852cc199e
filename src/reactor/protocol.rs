//! The contract between the reactor and a protocol state machine.
//!
//! A protocol never touches a socket and reads no clock: it is told what
//! happened and when (a [`Protocol`] callback with `now`: real time from the
//! reactor, virtual time from the simulator) and answers by filling an
//! [`Actions`] list that is carried out afterwards. Its timers and the tags
//! of its outgoing connections are its own types ([`Protocol::Timer`],
//! [`Protocol::Tag`]), handed back as they were given. Unit tests drive the
//! same callbacks by hand.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Identifies one connection (accepted, or opened with [`Actions::connect`]).
///
/// Treat it as opaque: compare it, hash it, log it, never compute with it.
/// The reactor never hands out the same ID twice in a row for one slot (it
/// carries a generation), so an ID kept after its connection closed is
/// harmless: sends and closes to it are ignored, they never reach the peer
/// that took the slot next.
pub type ConnId = usize;

/// Identifies one listening socket, in the order they were handed to the reactor.
pub type ListenerId = usize;

/// Why the reactor closed a connection (or learnt that the peer did).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The peer finished sending (read returned 0) and everything queued
    /// for it was written (or it was gone when we wrote).
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

/// What the protocol wants done; filled during a callback, executed after it,
/// in the order the protocol wrote it: `send(a, x); close_after_flush(a)`
/// writes x then closes; `close_after_flush(a); send(a, x)` never sends x.
///
/// Sends are kept apart from the other actions so that a relay appends
/// bytes to one shared buffer without allocating; `other_at` puts the two
/// lists back into program order.
///
/// `T` and `G` are the protocol's timer and connect-tag types; the reactor
/// and the simulator see them as numbers (the defaults), see [`Driven`].
#[derive(Debug)]
pub struct Actions<T = u64, G = u64> {
    /// Bytes to send, all concatenated; `sends` cuts them per connection.
    pub(crate) bytes: Vec<u8>,
    pub(crate) sends: Vec<(ConnId, usize)>,
    pub(crate) other: Vec<Action<T, G>>,
    /// For each entry of `other`, how many entries of `sends` come before it.
    pub(crate) other_at: Vec<usize>,
}

/// One action of an [`Actions`] list, in program order (see [`Actions::steps`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step<'a, T = u64, G = u64> {
    Send(ConnId, &'a [u8]),
    Other(&'a Action<T, G>),
}

impl<T, G> Default for Actions<T, G> {
    fn default() -> Self {
        Actions {
            bytes: Vec::new(),
            sends: Vec::new(),
            other: Vec::new(),
            other_at: Vec::new(),
        }
    }
}

/// Every action but `send` (kept apart so a relay appends bytes without allocating).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action<T = u64, G = u64> {
    /// Close now. What was queued before it (earlier sends in the same list
    /// included) gets one immediate, non-blocking write: what the socket
    /// takes at that moment goes out, as with `write` then `close`; the rest
    /// is dropped, and so is anything sent to the connection afterwards.
    /// For a reply that must arrive whole, use [`Action::CloseAfterFlush`].
    Close(ConnId),
    /// Stop reading, write everything queued before it, then close.
    /// Sends to the connection after it are ignored.
    CloseAfterFlush(ConnId),
    /// Open a TCP connection; `tag` comes back in `on_connected`/`on_connect_failed`.
    Connect { addr: SocketAddr, tag: G },
    /// Call `on_timer(timer)` after `after`.
    Timer { after: Duration, timer: T },
    /// Print a line on standard output (the `state` answer, a received chat).
    Print(String),
    /// Stop the loop after flushing what is queued.
    Stop,
}

impl<T, G> Actions<T, G> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Queue `data` for `conn`. Consecutive sends to one connection (with
    /// no other action between them) are merged.
    pub fn send(&mut self, conn: ConnId, data: &[u8]) {
        self.bytes.extend_from_slice(data);
        self.sent_bytes(conn, data.len());
    }

    /// Queue bytes written by `fill` into the shared buffer (no temporary Vec).
    pub fn send_with(&mut self, conn: ConnId, fill: impl FnOnce(&mut Vec<u8>)) {
        let before = self.bytes.len();
        fill(&mut self.bytes);
        let added = self.bytes.len() - before;
        self.sent_bytes(conn, added);
    }

    /// Account for `added` bytes just appended for `conn`.
    fn sent_bytes(&mut self, conn: ConnId, added: usize) {
        // An action written after the last send splits the run: merging
        // across it would move these bytes before it.
        let other_since = self.other_at.last() == Some(&self.sends.len());
        match self.sends.last_mut() {
            Some((last, len)) if *last == conn && !other_since => *len += added,
            _ => self.sends.push((conn, added)),
        }
    }

    fn push(&mut self, action: Action<T, G>) {
        self.other_at.push(self.sends.len());
        self.other.push(action);
    }

    /// See [`Action::Close`]: close now; what the socket takes at once of
    /// what was queued before goes out, the rest is dropped.
    pub fn close(&mut self, conn: ConnId) {
        self.push(Action::Close(conn));
    }

    /// See [`Action::CloseAfterFlush`]: write what was queued before, then close.
    pub fn close_after_flush(&mut self, conn: ConnId) {
        self.push(Action::CloseAfterFlush(conn));
    }

    /// Open a connection to `addr`; `tag` comes back with the outcome.
    pub fn connect(&mut self, addr: SocketAddr, tag: G) {
        self.push(Action::Connect { addr, tag });
    }

    /// Call `on_timer(timer)` after `after`.
    pub fn timer(&mut self, after: Duration, timer: T) {
        self.push(Action::Timer { after, timer });
    }

    pub fn print(&mut self, line: impl Into<String>) {
        self.push(Action::Print(line.into()));
    }

    pub fn stop(&mut self) {
        self.push(Action::Stop);
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
    pub fn others(&self) -> &[Action<T, G>] {
        &self.other
    }

    /// Every action, sends and others, in the order the protocol wrote them
    /// (the order the reactor carries them out).
    pub fn steps(&self) -> impl Iterator<Item = Step<'_, T, G>> + '_ {
        let mut others = self.other.iter().zip(&self.other_at).peekable();
        // Sends done so far, and where the next one's bytes start.
        let (mut done, mut at) = (0, 0);
        std::iter::from_fn(move || {
            if let Some(&(action, &before)) = others.peek() {
                if before == done {
                    others.next();
                    return Some(Step::Other(action));
                }
            }
            let &(conn, len) = self.sends.get(done)?;
            let data = &self.bytes[at..at + len];
            (done, at) = (done + 1, at + len);
            Some(Step::Send(conn, data))
        })
    }

    /// Empty the list, keeping its allocations.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.sends.clear();
        self.other.clear();
        self.other_at.clear();
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

/// What becomes of a connection whose peer finished sending
/// (see [`Protocol::on_peer_finished_sending`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputEnded {
    /// Write what is queued (sends made until then included), close, and
    /// call `on_closed` with [`CloseReason::PeerClosed`].
    CloseWhenFlushed,
    /// Keep the connection open for writing; the protocol closes it itself
    /// (`close_after_flush` once its last answer is queued).
    KeepOpen,
}

/// The actions list of protocol `P`.
pub type Out<P> = Actions<<P as Protocol>::Timer, <P as Protocol>::Tag>;

/// A protocol state machine driven by the reactor (or the simulator). Every
/// method but `on_data` has a default that does nothing, so a protocol
/// implements only what it uses. `now` is the time of the event; it is the
/// only clock a protocol may read.
pub trait Protocol {
    /// What a timer of this protocol is for, handed back when it fires.
    type Timer;
    /// What an outgoing connection is for, handed back with its outcome.
    type Tag;

    /// Called once, before the first poll.
    fn on_start(&mut self, _now: Instant, _out: &mut Out<Self>) {}

    /// A listener accepted `conn` from `peer`.
    fn on_accept(
        &mut self,
        _now: Instant,
        _listener: ListenerId,
        _conn: ConnId,
        _peer: SocketAddr,
        _out: &mut Out<Self>,
    ) {
    }

    /// An outgoing connection asked for with `tag` is established as `conn`.
    fn on_connected(
        &mut self,
        _now: Instant,
        _tag: Self::Tag,
        _conn: ConnId,
        _out: &mut Out<Self>,
    ) {
    }

    /// An outgoing connection asked for with `tag` could not be made.
    fn on_connect_failed(
        &mut self,
        _now: Instant,
        _tag: Self::Tag,
        _error: &str,
        _out: &mut Out<Self>,
    ) {
    }

    /// Bytes arrived on `conn`; `data` holds everything not yet consumed.
    /// Return how many bytes were used (whole frames), or an error that
    /// closes the connection (the reactor logs it).
    fn on_data(
        &mut self,
        now: Instant,
        conn: ConnId,
        data: &[u8],
        out: &mut Out<Self>,
    ) -> Result<usize, String>;

    /// The peer on `conn` finished sending: it half-closed its end (or
    /// closed it). Every byte it sent has been handed to `on_data`; no more
    /// will come. What was queued for it is still written. The default,
    /// [`InputEnded::CloseWhenFlushed`], closes the connection once that is
    /// done and then calls `on_closed` with [`CloseReason::PeerClosed`]; a
    /// protocol with answers still to come (a lookup in flight) returns
    /// [`InputEnded::KeepOpen`] and closes it itself when it has answered.
    fn on_peer_finished_sending(
        &mut self,
        _now: Instant,
        _conn: ConnId,
        _out: &mut Out<Self>,
    ) -> InputEnded {
        InputEnded::CloseWhenFlushed
    }

    /// `conn` is gone (by either side): sends to it from here on are
    /// ignored. Not called for a connection the protocol closed itself with
    /// `close` or `close_after_flush` — it already knows. After a protocol
    /// error (`on_data` returned `Err`) it is called at once, while the
    /// answers queued before the error are still being written.
    fn on_closed(
        &mut self,
        _now: Instant,
        _conn: ConnId,
        _reason: &CloseReason,
        _out: &mut Out<Self>,
    ) {
    }

    /// A timer set with [`Actions::timer`] fired.
    fn on_timer(&mut self, _now: Instant, _timer: Self::Timer, _out: &mut Out<Self>) {}

    /// A line typed on standard input (without its line end).
    fn on_stdin_line(&mut self, _now: Instant, _line: &str, _out: &mut Out<Self>) {}

    /// Standard input reached its end.
    fn on_stdin_closed(&mut self, _now: Instant, _out: &mut Out<Self>) {}

    /// Every event of one poll round has been handled and what they sent
    /// has been written: a protocol that held sends back (behind one fsync
    /// for the whole round, say) lets them go here. What it sends now is
    /// written before the loop waits again. The simulator calls it after
    /// each callback (each is a round of its own there).
    fn on_round_end(&mut self, _now: Instant, _out: &mut Out<Self>) {}
}

/// A protocol driven through a mutable reference is the protocol itself
/// (so `reactor.run(&mut node)` leaves `node` with the caller).
impl<P: Protocol + ?Sized> Protocol for &mut P {
    type Timer = P::Timer;
    type Tag = P::Tag;

    fn on_start(&mut self, now: Instant, out: &mut Out<Self>) {
        (**self).on_start(now, out)
    }
    fn on_accept(
        &mut self,
        now: Instant,
        listener: ListenerId,
        conn: ConnId,
        peer: SocketAddr,
        out: &mut Out<Self>,
    ) {
        (**self).on_accept(now, listener, conn, peer, out)
    }
    fn on_connected(&mut self, now: Instant, tag: Self::Tag, conn: ConnId, out: &mut Out<Self>) {
        (**self).on_connected(now, tag, conn, out)
    }
    fn on_connect_failed(
        &mut self,
        now: Instant,
        tag: Self::Tag,
        error: &str,
        out: &mut Out<Self>,
    ) {
        (**self).on_connect_failed(now, tag, error, out)
    }
    fn on_data(
        &mut self,
        now: Instant,
        conn: ConnId,
        data: &[u8],
        out: &mut Out<Self>,
    ) -> Result<usize, String> {
        (**self).on_data(now, conn, data, out)
    }
    fn on_peer_finished_sending(
        &mut self,
        now: Instant,
        conn: ConnId,
        out: &mut Out<Self>,
    ) -> InputEnded {
        (**self).on_peer_finished_sending(now, conn, out)
    }
    fn on_closed(&mut self, now: Instant, conn: ConnId, reason: &CloseReason, out: &mut Out<Self>) {
        (**self).on_closed(now, conn, reason, out)
    }
    fn on_timer(&mut self, now: Instant, timer: Self::Timer, out: &mut Out<Self>) {
        (**self).on_timer(now, timer, out)
    }
    fn on_stdin_line(&mut self, now: Instant, line: &str, out: &mut Out<Self>) {
        (**self).on_stdin_line(now, line, out)
    }
    fn on_stdin_closed(&mut self, now: Instant, out: &mut Out<Self>) {
        (**self).on_stdin_closed(now, out)
    }
    fn on_round_end(&mut self, now: Instant, out: &mut Out<Self>) {
        (**self).on_round_end(now, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_action_between_two_sends_keeps_them_apart_and_in_order() {
        let mut out: Actions = Actions::new();
        out.send(1, b"a");
        out.send(1, b"b");
        out.close_after_flush(1);
        out.send(1, b"c");
        out.send(2, b"d");
        out.close(2);
        assert_eq!(
            out.sent(),
            vec![(1, &b"ab"[..]), (1, &b"c"[..]), (2, &b"d"[..])]
        );
        assert_eq!(
            out.others(),
            &[Action::CloseAfterFlush(1), Action::Close(2)]
        );
        let steps: Vec<Step> = out.steps().collect();
        assert_eq!(
            steps,
            vec![
                Step::Send(1, b"ab"),
                Step::Other(&Action::CloseAfterFlush(1)),
                Step::Send(1, b"c"),
                Step::Send(2, b"d"),
                Step::Other(&Action::Close(2)),
            ]
        );
        out.clear();
        assert!(out.is_empty());
        assert_eq!(out.steps().count(), 0);
    }

    #[test]
    fn actions_before_any_send_come_first() {
        let mut out: Actions = Actions::new();
        out.timer(Duration::from_secs(1), 7);
        out.stop();
        out.send_with(3, |b| b.extend_from_slice(b"x"));
        let steps: Vec<Step> = out.steps().collect();
        assert_eq!(
            steps,
            vec![
                Step::Other(&Action::Timer {
                    after: Duration::from_secs(1),
                    timer: 7
                }),
                Step::Other(&Action::Stop),
                Step::Send(3, b"x"),
            ]
        );
    }
}
