//! The event loop: one thread, one `mio::Poll`, every socket, the timers and
//! standard input. It knows no protocol; see [`Protocol`].
//!
//! Input is read into one scratch buffer for the whole loop and handed to
//! the protocol read by read; a connection keeps only a partial frame.
//! Writes are buffered per connection and flushed at the end of each poll
//! turn, so the many frames a turn produces for one peer leave in one
//! syscall; a large send to a connection with nothing queued is written at
//! once instead (only what the socket does not take is buffered). WRITABLE
//! interest is registered only while bytes are pending.
//!
//! Actions run in the order the protocol wrote them. Backpressure is per
//! connection: while the reactor hands a connection's input to the
//! protocol, it notes which connections the answers were queued for; if one
//! of them is over the soft limit, that input connection (only it) is not
//! read until they drain. Output made by timers, standard input or accepts
//! pauses nobody. A peer that never drains is dropped by the write-stall
//! limit, which releases its feeders; that also breaks a cycle of links
//! each waiting on the next (possible between nodes that forward to each
//! other under a flood). A peer that finishes sending (half-close) still
//! gets everything queued for it before the connection closes.

mod connection;
mod driven;
mod heap;
mod protocol;
mod stdin;
#[cfg(test)]
mod tests;
mod timers;
mod trace;
mod warnings;

pub use driven::{Driven, Erased};
pub use protocol::{
    Action, Actions, CloseReason, ConnId, InputEnded, ListenerId, Out, Protocol, Step,
};
pub use trace::{Described, Describer, TRACE_ENV};

use crate::cli_words::io_error;
use crate::warn_repeated;
use connection::{Connection, Phase};
use heap::HeapTrim;
use log::{debug, info};
use mio::net::{TcpListener, TcpStream};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use slab::Slab;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use stdin::StdinLines;
use timers::Timers;
use trace::Trace;
use warnings::Warnings;

const STDIN_TOKEN: Token = Token(usize::MAX - 1);
const CONN_BASE: usize = 1 << 16;

/// A [`ConnId`] is `generation << SLOT_BITS | slot`: the slot finds the
/// connection, the generation tells a stale ID from the slot's new tenant.
const SLOT_BITS: u32 = usize::BITS / 2;
const SLOT_MASK: usize = (1 << SLOT_BITS) - 1;

fn slot_of(id: ConnId) -> usize {
    id & SLOT_MASK
}

/// Limits on what a peer can make the reactor hold.
#[derive(Debug, Clone)]
pub struct Limits {
    /// A connection whose input queued bytes for a peer with more than this
    /// pending is not read until that peer drains below it.
    pub soft_write_buffer: usize,
    /// A peer with more than this queued is dropped.
    pub hard_write_buffer: usize,
    /// A peer that accepts no bytes for this long while some are queued is
    /// dropped (and the connections waiting on it are read again).
    pub write_stall: Duration,
    /// Unconsumed input above this closes the connection (the protocol failed to frame it).
    pub max_read_buffer: usize,
    /// Bytes read from one connection per poll turn, so one peer can't starve the rest.
    pub read_budget: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            soft_write_buffer: 1 << 20,
            hard_write_buffer: 64 << 20,
            write_stall: Duration::from_secs(3),
            max_read_buffer: 1 << 20,
            read_budget: 1 << 20,
        }
    }
}

/// Bytes of send actions kept allocated between poll turns (a relay turn
/// reads at most `read_budget` per connection, so this rarely reallocates).
const MAX_RETAINED_ACTIONS: usize = 2 << 20;
/// Bytes asked of the socket per read (the reactor's one scratch buffer):
/// as much as a loopback socket usually holds, so a streaming peer costs
/// few reads and few protocol calls.
const READ_CHUNK: usize = 256 * 1024;
/// A send at least this long, to a connection with nothing queued, is
/// written at once and only what the socket does not take is queued: no
/// copy into the write buffer. Shorter sends wait for the end of the turn,
/// so the many small frames a turn makes for one peer leave in one write.
const WRITE_NOW: usize = 16 * 1024;
/// How often write stalls are looked for.
const HOUSEKEEPING: Duration = Duration::from_millis(250);
/// Bytes read and thrown away from a socket about to be closed.
const DISCARD_BUDGET: usize = 1 << 20;
/// How long a stopping loop waits for write buffers to drain.
const STOP_GRACE: Duration = Duration::from_secs(2);

pub struct Reactor {
    poll: Poll,
    listeners: Vec<TcpListener>,
    conns: Slab<Connection>,
    /// The generation the next connection in each slot gets.
    generations: Vec<usize>,
    timers: Timers,
    stdin: Option<StdinLines>,
    limits: Limits,
    scratch: Vec<u8>,
    /// Connections with bytes queued during this turn, to flush at its end.
    dirty: Vec<ConnId>,
    /// Connections with input left to read (budget used up, or just
    /// released from waiting on a congested peer).
    deferred_reads: Vec<ConnId>,
    actions: Actions,
    /// The connection whose input the protocol is handling (its answers may pause it).
    feeding: Option<ConnId>,
    warnings: Warnings,
    stopping: Option<Instant>,
    next_housekeeping: Instant,
    /// How many connections have WRITABLE interest (so a turn need not scan them all).
    writers: usize,
    heap: HeapTrim,
    /// The wire trace and decoded frame log (see [`trace`]).
    trace: Trace,
}

impl Reactor {
    /// A reactor owning `listeners` (already bound); `with_stdin` makes
    /// standard input an event source.
    pub fn new(listeners: Vec<std::net::TcpListener>, with_stdin: bool) -> io::Result<Self> {
        let poll = Poll::new()?;
        let mut owned = Vec::new();
        for (i, listener) in listeners.into_iter().enumerate() {
            listener.set_nonblocking(true)?;
            let mut listener = TcpListener::from_std(listener);
            poll.registry()
                .register(&mut listener, Token(i), Interest::READABLE)?;
            owned.push(listener);
        }
        let stdin = if with_stdin {
            let lines = StdinLines::new();
            match poll
                .registry()
                .register(&mut SourceFd(&0), STDIN_TOKEN, Interest::READABLE)
            {
                Ok(()) => Some(lines),
                Err(e) => {
                    // A regular file or /dev/null can't be polled; it is read once at start.
                    debug!("standard input is not pollable ({e}); reading it once");
                    Some(lines)
                }
            }
        } else {
            None
        };
        Ok(Reactor {
            poll,
            listeners: owned,
            conns: Slab::new(),
            generations: Vec::new(),
            timers: Timers::default(),
            stdin,
            limits: Limits::default(),
            scratch: vec![0; READ_CHUNK],
            dirty: Vec::new(),
            deferred_reads: Vec::new(),
            actions: Actions::new(),
            feeding: None,
            warnings: Warnings::new(),
            stopping: None,
            next_housekeeping: Instant::now() + HOUSEKEEPING,
            writers: 0,
            heap: HeapTrim::new(),
            trace: Trace::from_env(),
        })
    }

    /// How this node's frames read in the debug log and the wire trace.
    pub fn describe_frames_with(&mut self, describer: Describer) {
        self.trace.set_describer(describer);
    }

    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// The address each listener is bound to.
    pub fn listener_addrs(&self) -> Vec<std::net::SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    /// Run until the protocol asks to stop.
    /// Run `protocol` until it asks to stop.
    pub fn run<P: Protocol>(&mut self, protocol: P) -> io::Result<()> {
        self.run_driven(&mut Erased::new(protocol))
    }

    fn run_driven<D: Driven + ?Sized>(&mut self, protocol: &mut D) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        protocol.on_start(Instant::now(), &mut self.actions);
        self.apply(protocol);
        if self.stdin.is_some() {
            self.read_stdin(protocol);
        }
        loop {
            self.flush_dirty(protocol);
            self.actions.trim(MAX_RETAINED_ACTIONS);
            protocol.trim(MAX_RETAINED_ACTIONS);
            if let Some(since) = self.stopping {
                let pending = self.conns.iter().any(|(_, c)| c.pending_write() > 0);
                if !pending || since.elapsed() > STOP_GRACE {
                    return Ok(());
                }
            }
            let now = Instant::now();
            let mut timeout = self.timers.timeout(now);
            if !self.deferred_reads.is_empty() {
                timeout = Some(Duration::ZERO);
            }
            if self.stopping.is_some() || self.writers > 0 || self.warnings.holding() {
                let house = self.next_housekeeping.saturating_duration_since(now);
                timeout = Some(timeout.map_or(house, |t| t.min(house)));
            }
            if timeout != Some(Duration::ZERO) {
                if let Some(trim_in) = self.heap.before_wait(now) {
                    timeout = Some(timeout.map_or(trim_in, |t| t.min(trim_in)));
                }
            }
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            for event in events.iter() {
                let token = event.token();
                if token == STDIN_TOKEN {
                    self.read_stdin(protocol);
                } else if token.0 < CONN_BASE {
                    self.accept(token.0, protocol);
                } else {
                    let Some(id) = self.conns.get(token.0 - CONN_BASE).map(|c| c.id) else {
                        continue;
                    };
                    if event.is_error() && self.socket_failed(id, protocol) {
                        continue;
                    }
                    if event.is_writable() || event.is_error() {
                        self.on_writable(id, protocol);
                    }
                    if event.is_readable() || event.is_read_closed() || event.is_error() {
                        self.on_readable(id, protocol);
                    }
                    if event.is_write_closed() {
                        self.peer_gone(id, protocol);
                    }
                }
            }
            self.resume_deferred_reads(protocol);
            self.fire_timers(protocol);
            self.housekeeping(protocol);
        }
    }

    fn conn(&self, id: ConnId) -> Option<&Connection> {
        self.conns.get(slot_of(id)).filter(|c| c.id == id)
    }

    fn conn_mut(&mut self, id: ConnId) -> Option<&mut Connection> {
        self.conns.get_mut(slot_of(id)).filter(|c| c.id == id)
    }

    fn read_stdin<D: Driven + ?Sized>(&mut self, protocol: &mut D) {
        let Some(stdin) = self.stdin.as_mut() else {
            return;
        };
        let read = stdin.drain();
        for line in read.lines {
            protocol.on_stdin_line(Instant::now(), &line, &mut self.actions);
            self.apply(protocol);
        }
        if read.closed {
            let _ = self.poll.registry().deregister(&mut SourceFd(&0));
            self.stdin = None;
            protocol.on_stdin_closed(Instant::now(), &mut self.actions);
            self.apply(protocol);
        }
    }

    fn accept<D: Driven + ?Sized>(&mut self, listener: ListenerId, protocol: &mut D) {
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

    fn insert(
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

    fn on_writable<D: Driven + ?Sized>(&mut self, id: ConnId, protocol: &mut D) {
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
    fn socket_failed<D: Driven + ?Sized>(&mut self, id: ConnId, protocol: &mut D) -> bool {
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
    fn peer_gone<D: Driven + ?Sized>(&mut self, id: ConnId, protocol: &mut D) {
        if self.conn(id).is_some_and(|c| c.input_ended) {
            self.close(id, CloseReason::PeerClosed, protocol);
        }
    }

    /// Read what `id` has, one read at a time, each handed to the protocol
    /// at once: from the reactor's one scratch buffer, so a connection keeps
    /// only the partial frame left at the end of a read, not a buffer of
    /// its own. A long partial frame is read onto instead of moved.
    fn on_readable<D: Driven + ?Sized>(&mut self, id: ConnId, protocol: &mut D) {
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
    fn input_ended<D: Driven + ?Sized>(&mut self, id: ConnId, protocol: &mut D) {
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
    fn fail<D: Driven + ?Sized>(&mut self, id: ConnId, why: String, protocol: &mut D) {
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
    fn resume_deferred_reads<D: Driven + ?Sized>(&mut self, protocol: &mut D) {
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

    fn fire_timers<D: Driven + ?Sized>(&mut self, protocol: &mut D) {
        let now = Instant::now();
        while let Some(token) = self.timers.pop_due(now) {
            protocol.on_timer(Instant::now(), token, &mut self.actions);
            self.apply(protocol);
        }
    }

    /// Drop peers that stopped reading; report the tails of warning floods.
    fn housekeeping<D: Driven + ?Sized>(&mut self, protocol: &mut D) {
        let now = Instant::now();
        if now < self.next_housekeeping {
            return;
        }
        self.next_housekeeping = now + HOUSEKEEPING;
        self.warnings.flush(now);
        if self.writers == 0 {
            return;
        }
        let stall = self.limits.write_stall;
        let stalled: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| {
                c.pending_write() > 0 && now.duration_since(c.last_write_progress) > stall
            })
            .map(|(_, c)| c.id)
            .collect();
        for id in stalled {
            let peer = self
                .conn(id)
                .map(Connection::peer_label)
                .unwrap_or_default();
            warn_repeated!(
                self.warnings.slow_peer,
                now,
                "connection {id} ({peer}): the peer read nothing for {:.1} s; dropping it",
                stall.as_secs_f64()
            );
            self.close(id, CloseReason::SlowPeer, protocol);
        }
    }

    /// Carry out what the protocol asked for, in the order it asked.
    fn apply<D: Driven + ?Sized>(&mut self, protocol: &mut D) {
        while !self.actions.is_empty() {
            let mut list = std::mem::take(&mut self.actions);
            // `other_at` says how many sends come before each other action.
            let (mut next, mut at) = (0, 0);
            for (action, &before) in list.other.iter().zip(&list.other_at) {
                while next < before {
                    let (id, len) = list.sends[next];
                    self.queue(id, &list.bytes[at..at + len]);
                    (next, at) = (next + 1, at + len);
                }
                self.carry_out(action, protocol);
            }
            for &(id, len) in &list.sends[next..] {
                self.queue(id, &list.bytes[at..at + len]);
                at += len;
            }
            list.clear();
            if self.actions.is_empty() {
                self.actions = list; // keep the allocations for the next turn
            }
            // Otherwise callbacks made above (a failed connect) queued more: go on.
        }
    }

    /// Queue bytes for `id`; if its backlog is over the soft limit, the
    /// connection whose input is being handled waits for it.
    fn queue(&mut self, id: ConnId, data: &[u8]) {
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
    fn wait(&mut self, feeder: ConnId, congested: ConnId) {
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
    fn release(&mut self, congested: ConnId, waiters: Vec<ConnId>) {
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

    fn carry_out<D: Driven + ?Sized>(&mut self, action: &Action, protocol: &mut D) {
        match *action {
            Action::Close(id) => {
                if let Some(conn) = self.conn_mut(id) {
                    if !matches!(conn.phase, Phase::Connecting { .. }) {
                        // What the socket takes now of what was sent before goes out.
                        let _ = conn.flush();
                    }
                    debug!(
                        "connection {id} ({}) closed by this node",
                        conn.peer_label()
                    );
                }
                self.remove(id);
            }
            Action::CloseAfterFlush(id) => {
                if let Some(conn) = self.conn_mut(id) {
                    if matches!(conn.phase, Phase::Connecting { .. }) {
                        self.remove(id);
                    } else {
                        conn.phase = Phase::Draining;
                        self.dirty.push(id);
                    }
                }
            }
            Action::Connect { addr, tag } => match TcpStream::connect(addr) {
                Ok(stream) => {
                    let interest = Interest::READABLE | Interest::WRITABLE;
                    if self
                        .insert(stream, Some(addr), Phase::Connecting { tag }, interest)
                        .is_none()
                    {
                        protocol.on_connect_failed(
                            Instant::now(),
                            tag,
                            "could not watch the connection",
                            &mut self.actions,
                        );
                    }
                }
                Err(e) => protocol.on_connect_failed(
                    Instant::now(),
                    tag,
                    &io_error(&e),
                    &mut self.actions,
                ),
            },
            Action::Timer { after, timer } => self.timers.add(Instant::now(), after, timer),
            Action::Print(ref line) => {
                let mut stdout = io::stdout().lock();
                let _ = writeln!(stdout, "{line}");
                let _ = stdout.flush();
            }
            Action::Stop => {
                if self.stopping.is_none() {
                    self.stopping = Some(Instant::now());
                }
            }
        }
    }

    /// Write what each touched connection has queued; keep WRITABLE interest
    /// only where bytes remain.
    fn flush_dirty<D: Driven + ?Sized>(&mut self, protocol: &mut D) {
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

    fn flush_one<D: Driven + ?Sized>(&mut self, id: ConnId, protocol: &mut D) {
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

    /// Close `id` and tell the protocol (unless it let the connection go itself).
    fn close<D: Driven + ?Sized>(&mut self, id: ConnId, reason: CloseReason, protocol: &mut D) {
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

    fn remove(&mut self, id: ConnId) -> Option<Connection> {
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

/// Why a connection whose socket failed with `e` closed: a peer that
/// already finished sending and then is gone simply closed.
fn close_reason(input_ended: bool, e: &io::Error) -> CloseReason {
    let gone = matches!(
        e.kind(),
        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
    );
    if input_ended && gone {
        CloseReason::PeerClosed
    } else {
        CloseReason::Io(io_error(e))
    }
}
