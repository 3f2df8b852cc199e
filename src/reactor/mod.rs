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

mod connect;
mod connection;
mod driven;
mod heap;
mod protocol;
mod read;
mod stdin;
#[cfg(test)]
mod tests;
mod timers;
mod trace;
mod warnings;
mod write;

pub use driven::{Driven, Erased};
pub use protocol::{
    Action, Actions, CloseReason, ConnId, InputEnded, ListenerId, Out, Protocol, Step,
};
pub use trace::{Described, Describer, TRACE_ENV};

use crate::cli_words::io_error;
use crate::warn_repeated;
use connection::{Connection, Phase};
use heap::HeapTrim;
use log::debug;
use mio::net::{TcpListener, TcpStream};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use slab::Slab;
use std::io::{self, Write};
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
            protocol.on_round_end(Instant::now(), &mut self.actions);
            if !self.actions.is_empty() {
                self.apply(protocol);
                self.flush_dirty(protocol);
            }
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
