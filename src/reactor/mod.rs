//! The event loop: one thread, one `mio::Poll`, every socket, the timers and
//! standard input. It knows no protocol; see [`Protocol`].
//!
//! Writes are buffered per connection and flushed at the end of each poll
//! turn, so the many frames a turn produces for one peer leave in one
//! syscall. WRITABLE interest is registered only while bytes are pending.

mod connection;
mod heap;
mod protocol;
mod stdin;
mod timers;

pub use protocol::{Action, Actions, CloseReason, ConnId, ListenerId, Protocol};

use connection::{Connection, Phase, ReadOutcome};
use heap::HeapTrim;
use log::{debug, info, warn};
use mio::net::{TcpListener, TcpStream};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use slab::Slab;
use std::io::{self, Write};
use std::time::{Duration, Instant};
use stdin::StdinLines;
use timers::Timers;

const STDIN_TOKEN: Token = Token(usize::MAX - 1);
const CONN_BASE: usize = 1 << 16;

/// Limits on what a peer can make the reactor hold.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Reading pauses while a peer that is still draining has more queued than this.
    pub soft_write_buffer: usize,
    /// A peer with more than this queued is dropped.
    pub hard_write_buffer: usize,
    /// A peer that accepts no bytes for this long while some are queued is dropped.
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
/// How often write stalls are looked for.
const HOUSEKEEPING: Duration = Duration::from_millis(250);
/// A congested peer that made progress this recently pauses reading.
const RECENT_PROGRESS: Duration = Duration::from_millis(200);
/// How long a stopping loop waits for write buffers to drain.
const STOP_GRACE: Duration = Duration::from_secs(2);

pub struct Reactor {
    poll: Poll,
    listeners: Vec<TcpListener>,
    conns: Slab<Connection>,
    timers: Timers,
    stdin: Option<StdinLines>,
    limits: Limits,
    scratch: Vec<u8>,
    /// Connections with bytes queued during this turn, to flush at its end.
    dirty: Vec<ConnId>,
    /// Connections whose pending output passed the soft limit.
    congested: Vec<ConnId>,
    /// Connections whose readiness was not acted on because reading was paused.
    deferred_reads: Vec<ConnId>,
    actions: Actions,
    stopping: Option<Instant>,
    next_housekeeping: Instant,
    /// How many connections have WRITABLE interest (so a turn need not scan them all).
    writers: usize,
    heap: HeapTrim,
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
            timers: Timers::default(),
            stdin,
            limits: Limits::default(),
            scratch: vec![0; 64 * 1024],
            dirty: Vec::new(),
            congested: Vec::new(),
            deferred_reads: Vec::new(),
            actions: Actions::new(),
            stopping: None,
            next_housekeeping: Instant::now() + HOUSEKEEPING,
            writers: 0,
            heap: HeapTrim::new(),
        })
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
    pub fn run<P: Protocol>(&mut self, protocol: &mut P) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        protocol.on_start(&mut self.actions);
        self.apply(protocol);
        if self.stdin.is_some() {
            self.read_stdin(protocol);
        }
        loop {
            self.flush_dirty(protocol);
            self.actions.trim(MAX_RETAINED_ACTIONS);
            if let Some(since) = self.stopping {
                let pending = self.conns.iter().any(|(_, c)| c.pending_write() > 0);
                if !pending || since.elapsed() > STOP_GRACE {
                    return Ok(());
                }
            }
            let now = Instant::now();
            let mut timeout = self.timers.timeout(now);
            if !self.deferred_reads.is_empty() && !self.reading_paused(now) {
                timeout = Some(Duration::ZERO);
            }
            if self.stopping.is_some() || self.writers > 0 {
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
                    let id = token.0 - CONN_BASE;
                    if event.is_writable() || event.is_error() {
                        self.on_writable(id, protocol);
                    }
                    if event.is_readable() || event.is_read_closed() || event.is_error() {
                        self.on_readable(id, protocol);
                    }
                }
            }
            self.resume_deferred_reads(protocol);
            self.fire_timers(protocol);
            self.housekeeping(protocol);
        }
    }

    fn read_stdin<P: Protocol>(&mut self, protocol: &mut P) {
        let Some(stdin) = self.stdin.as_mut() else {
            return;
        };
        let read = stdin.drain();
        for line in read.lines {
            protocol.on_stdin_line(&line, &mut self.actions);
            self.apply(protocol);
        }
        if read.closed {
            let _ = self.poll.registry().deregister(&mut SourceFd(&0));
            self.stdin = None;
            protocol.on_stdin_closed(&mut self.actions);
            self.apply(protocol);
        }
    }

    fn accept<P: Protocol>(&mut self, listener: ListenerId, protocol: &mut P) {
        loop {
            let (stream, peer) = match self.listeners[listener].accept() {
                Ok(pair) => pair,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Out of descriptors, say: the pending connection stays queued.
                    warn!("accept failed: {e}");
                    return;
                }
            };
            let _ = stream.set_nodelay(true);
            let Some(id) = self.insert(stream, Phase::Open, Interest::READABLE) else {
                continue;
            };
            debug!("accepted {peer} as connection {id}");
            protocol.on_accept(listener, id, peer, &mut self.actions);
            self.apply(protocol);
            // Bytes may have arrived with the connection.
            self.on_readable(id, protocol);
        }
    }

    fn insert(
        &mut self,
        mut stream: TcpStream,
        phase: Phase,
        interest: Interest,
    ) -> Option<ConnId> {
        let entry = self.conns.vacant_entry();
        let id = entry.key();
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut stream, Token(id + CONN_BASE), interest)
        {
            warn!("could not register a connection: {e}");
            return None;
        }
        let mut conn = Connection::new(stream, phase);
        conn.wants_write = interest.is_writable();
        self.writers += usize::from(conn.wants_write);
        entry.insert(conn);
        Some(id)
    }

    fn on_writable<P: Protocol>(&mut self, id: ConnId, protocol: &mut P) {
        let Some(conn) = self.conns.get_mut(id) else {
            return;
        };
        if let Phase::Connecting { tag } = conn.phase {
            let failure = match conn.stream.take_error() {
                Ok(Some(e)) | Err(e) => Some(e.to_string()),
                Ok(None) => match conn.stream.peer_addr() {
                    Ok(_) => None,
                    Err(e) if e.kind() == io::ErrorKind::NotConnected => return, // not yet
                    Err(e) => Some(e.to_string()),
                },
            };
            match failure {
                Some(error) => {
                    self.remove(id);
                    protocol.on_connect_failed(tag, &error, &mut self.actions);
                }
                None => {
                    conn.phase = Phase::Open;
                    let _ = conn.stream.set_nodelay(true);
                    protocol.on_connected(tag, id, &mut self.actions);
                }
            }
            self.apply(protocol);
            self.mark_dirty(id);
            return;
        }
        self.mark_dirty(id);
    }

    fn on_readable<P: Protocol>(&mut self, id: ConnId, protocol: &mut P) {
        if self.reading_paused(Instant::now()) {
            if let Some(conn) = self.conns.get_mut(id) {
                if !conn.read_pending {
                    conn.read_pending = true;
                    self.deferred_reads.push(id);
                }
            }
            return;
        }
        let budget = self.limits.read_budget;
        let Some(conn) = self.conns.get_mut(id) else {
            return;
        };
        if matches!(conn.phase, Phase::Connecting { .. }) {
            return;
        }
        conn.read_pending = false;
        let outcome = conn.read_into_buffer(&mut self.scratch, budget);
        // Hand over what was read even if the peer closed right after sending it.
        if !conn.read_buf.is_empty() && conn.phase == Phase::Open {
            let result = protocol.on_data(id, &conn.read_buf, &mut self.actions);
            match result {
                Ok(used) => {
                    conn.read_buf.drain(..used.min(conn.read_buf.len()));
                    if conn.read_buf.is_empty() && conn.read_buf.capacity() > 64 * 1024 {
                        conn.read_buf = Vec::new();
                    }
                    if conn.read_buf.len() > self.limits.max_read_buffer {
                        self.apply(protocol);
                        self.close(
                            id,
                            CloseReason::ProtocolError("unframed input over the limit".into()),
                            protocol,
                        );
                        return;
                    }
                }
                Err(why) => {
                    self.apply(protocol);
                    self.close(id, CloseReason::ProtocolError(why), protocol);
                    return;
                }
            }
            self.apply(protocol);
        } else if conn.phase == Phase::Draining {
            conn.read_buf.clear();
        }
        match outcome {
            Ok(ReadOutcome::Drained) => {}
            Ok(ReadOutcome::Budget) => {
                if let Some(conn) = self.conns.get_mut(id) {
                    if !conn.read_pending {
                        conn.read_pending = true;
                        self.deferred_reads.push(id);
                    }
                }
            }
            Ok(ReadOutcome::Closed) => self.close(id, CloseReason::PeerClosed, protocol),
            Err(e) => self.close(id, CloseReason::Io(e.to_string()), protocol),
        }
    }

    fn reading_paused(&mut self, now: Instant) -> bool {
        let soft = self.limits.soft_write_buffer;
        let conns = &self.conns;
        self.congested
            .retain(|&id| conns.get(id).is_some_and(|c| c.pending_write() > soft));
        self.congested
            .iter()
            .any(|&id| now.duration_since(self.conns[id].last_write_progress) < RECENT_PROGRESS)
    }

    fn resume_deferred_reads<P: Protocol>(&mut self, protocol: &mut P) {
        if self.deferred_reads.is_empty() || self.reading_paused(Instant::now()) {
            return;
        }
        let ids = std::mem::take(&mut self.deferred_reads);
        for id in ids {
            if let Some(conn) = self.conns.get_mut(id) {
                conn.read_pending = false;
                self.on_readable(id, protocol);
            }
        }
    }

    fn fire_timers<P: Protocol>(&mut self, protocol: &mut P) {
        let now = Instant::now();
        while let Some(token) = self.timers.pop_due(now) {
            protocol.on_timer(token, &mut self.actions);
            self.apply(protocol);
        }
    }

    /// Drop peers that stopped reading.
    fn housekeeping<P: Protocol>(&mut self, protocol: &mut P) {
        let now = Instant::now();
        if now < self.next_housekeeping {
            return;
        }
        self.next_housekeeping = now + HOUSEKEEPING;
        let stall = self.limits.write_stall;
        let stalled: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| {
                c.pending_write() > 0 && now.duration_since(c.last_write_progress) > stall
            })
            .map(|(id, _)| id)
            .collect();
        for id in stalled {
            warn!("connection {id}: peer read nothing for {stall:?}; dropping it");
            self.close(id, CloseReason::SlowPeer, protocol);
        }
    }

    /// Carry out what the protocol asked for.
    fn apply<P: Protocol>(&mut self, protocol: &mut P) {
        if self.actions.is_empty() {
            return;
        }
        let mut actions = std::mem::take(&mut self.actions);
        let mut at = 0;
        for &(id, len) in &actions.sends {
            let data = &actions.bytes[at..at + len];
            at += len;
            if let Some(conn) = self.conns.get_mut(id) {
                if conn.phase != Phase::Draining {
                    self.heap.queued(len);
                    conn.queue(data);
                    self.dirty.push(id);
                }
            }
        }
        let others = std::mem::take(&mut actions.other);
        actions.clear();
        self.actions = actions;
        for action in others {
            match action {
                Action::Close(id) => {
                    self.remove(id);
                }
                Action::CloseAfterFlush(id) => {
                    if let Some(conn) = self.conns.get_mut(id) {
                        conn.phase = Phase::Draining;
                        self.dirty.push(id);
                    }
                }
                Action::Connect { addr, tag } => match TcpStream::connect(addr) {
                    Ok(stream) => {
                        let interest = Interest::READABLE | Interest::WRITABLE;
                        if self
                            .insert(stream, Phase::Connecting { tag }, interest)
                            .is_none()
                        {
                            protocol.on_connect_failed(
                                tag,
                                "could not register",
                                &mut self.actions,
                            );
                        }
                    }
                    Err(e) => protocol.on_connect_failed(tag, &e.to_string(), &mut self.actions),
                },
                Action::Timer { after, token } => self.timers.add(Instant::now(), after, token),
                Action::Print(line) => {
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
        // Callbacks made above may have queued more.
        if !self.actions.is_empty() {
            self.apply(protocol);
        }
    }

    fn mark_dirty(&mut self, id: ConnId) {
        self.dirty.push(id);
    }

    /// Write what each touched connection has queued; keep WRITABLE interest
    /// only where bytes remain.
    fn flush_dirty<P: Protocol>(&mut self, protocol: &mut P) {
        while !self.dirty.is_empty() {
            let mut dirty = std::mem::take(&mut self.dirty);
            dirty.sort_unstable();
            dirty.dedup();
            for id in dirty {
                self.flush_one(id, protocol);
            }
        }
    }

    fn flush_one<P: Protocol>(&mut self, id: ConnId, protocol: &mut P) {
        let limits = self.limits.clone();
        let Some(conn) = self.conns.get_mut(id) else {
            return;
        };
        if matches!(conn.phase, Phase::Connecting { .. }) {
            return;
        }
        if let Err(e) = conn.flush() {
            self.close(id, CloseReason::Io(e.to_string()), protocol);
            return;
        }
        let pending = conn.pending_write();
        if pending == 0 && conn.phase == Phase::Draining {
            self.remove(id);
            return;
        }
        if pending > limits.hard_write_buffer {
            warn!("connection {id}: {pending} bytes queued for a peer that is not reading; dropping it");
            self.close(id, CloseReason::SlowPeer, protocol);
            return;
        }
        if pending > limits.soft_write_buffer && !self.congested.contains(&id) {
            self.congested.push(id);
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
            let _ =
                self.poll
                    .registry()
                    .reregister(&mut conn.stream, Token(id + CONN_BASE), interest);
        }
    }

    /// Close `id` and tell the protocol.
    fn close<P: Protocol>(&mut self, id: ConnId, reason: CloseReason, protocol: &mut P) {
        let Some(conn) = self.remove(id) else {
            return;
        };
        let peer = conn
            .stream
            .peer_addr()
            .map_or_else(|_| "?".to_string(), |a| a.to_string());
        match &reason {
            // A peer that hangs up mid-frame is worth a look; one that hangs up cleanly is not.
            CloseReason::PeerClosed if !conn.read_buf.is_empty() => warn!(
                "connection {id} ({peer}) closed by peer with {} unread bytes of a partial frame",
                conn.read_buf.len()
            ),
            CloseReason::PeerClosed => debug!("connection {id} ({peer}) closed by peer"),
            CloseReason::Io(_) => info!("connection {id} ({peer}) closed: {reason}"),
            _ => warn!("connection {id} ({peer}) closed: {reason}"),
        }
        if conn.phase == Phase::Draining {
            return; // the protocol already let it go
        }
        protocol.on_closed(id, &reason, &mut self.actions);
        self.apply(protocol);
    }

    fn remove(&mut self, id: ConnId) -> Option<Connection> {
        let mut conn = self.conns.try_remove(id)?;
        self.writers -= usize::from(conn.wants_write);
        let _ = self.poll.registry().deregister(&mut conn.stream);
        Some(conn)
    }
}
