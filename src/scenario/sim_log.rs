//! The log lines of simulated machines, for `--sim` transcripts. A process
//! writes its log to its own file; in the simulator every node shares one
//! process, so each node's protocol is wrapped ([`Named`]) to say which
//! machine is running (and at what virtual time) while its callback runs,
//! and a logger ([`install`]) files each info-or-higher line under it.

use crate::reactor::{Actions, CloseReason, ConnId, Driven, InputEnded, ListenerId};
use crate::sim::Hosted;
use log::{Level, LevelFilter, Log, Metadata, Record};
use std::any::Any;
use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::time::Instant;

thread_local! {
    /// The machine whose callback runs now, and the virtual time in microseconds.
    static RUNNING: Cell<Option<(usize, u128)>> = const { Cell::new(None) };
    /// Lines logged since the last [`take`]: (machine, virtual micros, text).
    static CAUGHT: RefCell<Vec<(usize, u128, String)>> = const { RefCell::new(Vec::new()) };
}

struct CaptureLogger;

impl Log for CaptureLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= Level::Info && RUNNING.with(Cell::get).is_some()
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        if let Some((machine, at)) = RUNNING.with(Cell::get) {
            let text = record.args().to_string().replace('\n', "\\n");
            CAUGHT.with(|c| c.borrow_mut().push((machine, at, text)));
        }
    }

    fn flush(&self) {}
}

/// Make this process's logger the capturing one. Once per process; where a
/// logger is already installed (a test binary) the transcripts simply have
/// no log lines.
pub fn install() {
    if log::set_boxed_logger(Box::new(CaptureLogger)).is_ok() {
        log::set_max_level(LevelFilter::Info);
    }
}

/// The lines logged since the last call.
pub fn take() -> Vec<(usize, u128, String)> {
    CAUGHT.with(|c| std::mem::take(&mut *c.borrow_mut()))
}

/// A node's protocol that marks machine `index` as running during each callback.
pub struct Named {
    pub index: usize,
    /// The world's `instant()` at virtual time zero.
    pub base: Instant,
    pub inner: Box<dyn Hosted>,
}

impl Named {
    fn during<R>(&mut self, now: Instant, call: impl FnOnce(&mut dyn Hosted) -> R) -> R {
        let at = now.saturating_duration_since(self.base).as_micros();
        let before = RUNNING.with(|r| r.replace(Some((self.index, at))));
        let result = call(self.inner.as_mut());
        RUNNING.with(|r| r.set(before));
        result
    }
}

impl Driven for Named {
    fn on_start(&mut self, now: Instant, out: &mut Actions) {
        self.during(now, |p| p.on_start(now, out))
    }

    fn on_accept(
        &mut self,
        now: Instant,
        listener: ListenerId,
        conn: ConnId,
        peer: SocketAddr,
        out: &mut Actions,
    ) {
        self.during(now, |p| p.on_accept(now, listener, conn, peer, out))
    }

    fn on_connected(&mut self, now: Instant, tag: u64, conn: ConnId, out: &mut Actions) {
        self.during(now, |p| p.on_connected(now, tag, conn, out))
    }

    fn on_connect_failed(&mut self, now: Instant, tag: u64, error: &str, out: &mut Actions) {
        self.during(now, |p| p.on_connect_failed(now, tag, error, out))
    }

    fn on_data(
        &mut self,
        now: Instant,
        conn: ConnId,
        data: &[u8],
        out: &mut Actions,
    ) -> Result<usize, String> {
        self.during(now, |p| p.on_data(now, conn, data, out))
    }

    fn on_peer_finished_sending(
        &mut self,
        now: Instant,
        conn: ConnId,
        out: &mut Actions,
    ) -> InputEnded {
        self.during(now, |p| p.on_peer_finished_sending(now, conn, out))
    }

    fn on_closed(&mut self, now: Instant, conn: ConnId, reason: &CloseReason, out: &mut Actions) {
        self.during(now, |p| p.on_closed(now, conn, reason, out))
    }

    fn on_timer(&mut self, now: Instant, token: u64, out: &mut Actions) {
        self.during(now, |p| p.on_timer(now, token, out))
    }

    fn on_stdin_line(&mut self, now: Instant, line: &str, out: &mut Actions) {
        self.during(now, |p| p.on_stdin_line(now, line, out))
    }

    fn on_stdin_closed(&mut self, now: Instant, out: &mut Actions) {
        self.during(now, |p| p.on_stdin_closed(now, out))
    }

    fn on_round_end(&mut self, now: Instant, out: &mut Actions) {
        self.during(now, |p| p.on_round_end(now, out))
    }

    fn trim(&mut self, max: usize) {
        self.inner.trim(max)
    }
}

impl Hosted for Named {
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self.inner.as_any_mut()
    }
    fn as_any(&self) -> &dyn Any {
        self.inner.as_any()
    }
}
