//! The face of a protocol that the reactor and the simulator drive: its
//! timers and connect tags erased to numbers. [`Erased`] keeps the typed
//! values in slabs and hands them back to the protocol as they were given,
//! so the loop (real or simulated) stores only numbers and one loop serves
//! every protocol.

use super::protocol::{
    Action, Actions, CloseReason, ConnId, InputEnded, ListenerId, Out, Protocol,
};
use slab::Slab;
use std::net::SocketAddr;
use std::time::Instant;

/// A protocol as a loop sees it: the [`Protocol`] callbacks with numbers for
/// timers and tags.
pub trait Driven {
    fn on_start(&mut self, now: Instant, out: &mut Actions);
    fn on_accept(
        &mut self,
        now: Instant,
        listener: ListenerId,
        conn: ConnId,
        peer: SocketAddr,
        out: &mut Actions,
    );
    fn on_connected(&mut self, now: Instant, tag: u64, conn: ConnId, out: &mut Actions);
    fn on_connect_failed(&mut self, now: Instant, tag: u64, error: &str, out: &mut Actions);
    fn on_data(
        &mut self,
        now: Instant,
        conn: ConnId,
        data: &[u8],
        out: &mut Actions,
    ) -> Result<usize, String>;
    fn on_peer_finished_sending(
        &mut self,
        now: Instant,
        conn: ConnId,
        out: &mut Actions,
    ) -> InputEnded;
    fn on_closed(&mut self, now: Instant, conn: ConnId, reason: &CloseReason, out: &mut Actions);
    fn on_timer(&mut self, now: Instant, token: u64, out: &mut Actions);
    fn on_stdin_line(&mut self, now: Instant, line: &str, out: &mut Actions);
    fn on_stdin_closed(&mut self, now: Instant, out: &mut Actions);
    fn on_round_end(&mut self, now: Instant, out: &mut Actions);
    /// Give back buffers a burst grew past `max` bytes.
    fn trim(&mut self, max: usize);
}

/// A typed protocol behind the numbered face.
pub struct Erased<P: Protocol> {
    pub protocol: P,
    timers: Slab<P::Timer>,
    tags: Slab<P::Tag>,
    typed: Out<P>,
}

impl<P: Protocol> Erased<P> {
    pub fn new(protocol: P) -> Self {
        Erased {
            protocol,
            timers: Slab::new(),
            tags: Slab::new(),
            typed: Actions::default(),
        }
    }

    /// Timers set and not yet fired (a bound a test can check).
    pub fn pending_timers(&self) -> usize {
        self.timers.len()
    }

    /// Move what the protocol asked for into `out`, numbering its timers and
    /// tags. Sends move without copying when `out` is empty (the usual case).
    fn lower(&mut self, out: &mut Actions) {
        let typed = &mut self.typed;
        let offset = out.sends.len();
        if out.bytes.is_empty() && out.sends.is_empty() {
            std::mem::swap(&mut out.bytes, &mut typed.bytes);
            std::mem::swap(&mut out.sends, &mut typed.sends);
        } else {
            out.bytes.append(&mut typed.bytes);
            out.sends.append(&mut typed.sends);
        }
        for (action, at) in typed.other.drain(..).zip(typed.other_at.drain(..)) {
            let raw = match action {
                Action::Close(conn) => Action::Close(conn),
                Action::CloseAfterFlush(conn) => Action::CloseAfterFlush(conn),
                Action::Connect { addr, tag } => Action::Connect {
                    addr,
                    tag: self.tags.insert(tag) as u64,
                },
                Action::Timer { after, timer } => Action::Timer {
                    after,
                    timer: self.timers.insert(timer) as u64,
                },
                Action::Print(line) => Action::Print(line),
                Action::Stop => Action::Stop,
            };
            out.other.push(raw);
            out.other_at.push(at + offset);
        }
        typed.clear();
    }

    fn take_tag(&mut self, tag: u64) -> Option<P::Tag> {
        usize::try_from(tag)
            .ok()
            .and_then(|k| self.tags.try_remove(k))
    }
}

impl<P: Protocol> Driven for Erased<P> {
    fn on_start(&mut self, now: Instant, out: &mut Actions) {
        self.protocol.on_start(now, &mut self.typed);
        self.lower(out);
    }

    fn on_accept(
        &mut self,
        now: Instant,
        listener: ListenerId,
        conn: ConnId,
        peer: SocketAddr,
        out: &mut Actions,
    ) {
        self.protocol
            .on_accept(now, listener, conn, peer, &mut self.typed);
        self.lower(out);
    }

    fn on_connected(&mut self, now: Instant, tag: u64, conn: ConnId, out: &mut Actions) {
        if let Some(tag) = self.take_tag(tag) {
            self.protocol.on_connected(now, tag, conn, &mut self.typed);
            self.lower(out);
        }
    }

    fn on_connect_failed(&mut self, now: Instant, tag: u64, error: &str, out: &mut Actions) {
        if let Some(tag) = self.take_tag(tag) {
            self.protocol
                .on_connect_failed(now, tag, error, &mut self.typed);
            self.lower(out);
        }
    }

    fn on_data(
        &mut self,
        now: Instant,
        conn: ConnId,
        data: &[u8],
        out: &mut Actions,
    ) -> Result<usize, String> {
        let result = self.protocol.on_data(now, conn, data, &mut self.typed);
        self.lower(out);
        result
    }

    fn on_peer_finished_sending(
        &mut self,
        now: Instant,
        conn: ConnId,
        out: &mut Actions,
    ) -> InputEnded {
        let verdict = self
            .protocol
            .on_peer_finished_sending(now, conn, &mut self.typed);
        self.lower(out);
        verdict
    }

    fn on_closed(&mut self, now: Instant, conn: ConnId, reason: &CloseReason, out: &mut Actions) {
        self.protocol.on_closed(now, conn, reason, &mut self.typed);
        self.lower(out);
    }

    fn on_timer(&mut self, now: Instant, token: u64, out: &mut Actions) {
        let timer = usize::try_from(token)
            .ok()
            .and_then(|k| self.timers.try_remove(k));
        if let Some(timer) = timer {
            self.protocol.on_timer(now, timer, &mut self.typed);
            self.lower(out);
        }
    }

    fn on_stdin_line(&mut self, now: Instant, line: &str, out: &mut Actions) {
        self.protocol.on_stdin_line(now, line, &mut self.typed);
        self.lower(out);
    }

    fn on_stdin_closed(&mut self, now: Instant, out: &mut Actions) {
        self.protocol.on_stdin_closed(now, &mut self.typed);
        self.lower(out);
    }

    fn on_round_end(&mut self, now: Instant, out: &mut Actions) {
        self.protocol.on_round_end(now, &mut self.typed);
        self.lower(out);
    }

    fn trim(&mut self, max: usize) {
        self.typed.trim(max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[derive(Debug, Clone, PartialEq)]
    enum Timer {
        Tick(u32),
    }

    #[derive(Debug, Clone, PartialEq)]
    enum Tag {
        Join(&'static str),
    }

    #[derive(Default)]
    struct Typed {
        fired: Vec<Timer>,
        connected: Vec<(Tag, ConnId)>,
    }

    impl Protocol for Typed {
        type Timer = Timer;
        type Tag = Tag;
        fn on_start(&mut self, _now: Instant, out: &mut Out<Self>) {
            out.send(1, b"a");
            out.timer(Duration::from_secs(1), Timer::Tick(7));
            out.send(1, b"b");
            out.connect("127.0.0.1:9".parse().unwrap(), Tag::Join("ring"));
        }
        fn on_data(
            &mut self,
            _: Instant,
            _: ConnId,
            d: &[u8],
            _: &mut Out<Self>,
        ) -> Result<usize, String> {
            Ok(d.len())
        }
        fn on_timer(&mut self, _now: Instant, timer: Timer, _out: &mut Out<Self>) {
            self.fired.push(timer);
        }
        fn on_connected(&mut self, _now: Instant, tag: Tag, conn: ConnId, _out: &mut Out<Self>) {
            self.connected.push((tag, conn));
        }
    }

    #[test]
    fn typed_timers_and_tags_come_back_as_given_and_only_once() {
        let now = Instant::now();
        let mut erased = Erased::new(Typed::default());
        let mut out = Actions::new();
        erased.on_start(now, &mut out);
        let steps: Vec<String> = out.steps().map(|s| format!("{s:?}")).collect();
        assert_eq!(steps.len(), 4, "{steps:?}");
        let (mut timer, mut tag) = (None, None);
        for action in out.others() {
            match action {
                Action::Timer { timer: t, .. } => timer = Some(*t),
                Action::Connect { tag: g, .. } => tag = Some(*g),
                _ => {}
            }
        }
        let (timer, tag) = (timer.unwrap(), tag.unwrap());
        out.clear();
        erased.on_timer(now, timer, &mut out);
        erased.on_timer(now, timer, &mut out);
        erased.on_timer(now, 999, &mut out);
        assert_eq!(
            erased.protocol.fired,
            vec![Timer::Tick(7)],
            "a timer fires once"
        );
        erased.on_connected(now, tag, 5, &mut out);
        erased.on_connected(now, tag, 6, &mut out);
        assert_eq!(erased.protocol.connected, vec![(Tag::Join("ring"), 5)]);
        assert_eq!(erased.pending_timers(), 0);
    }

    #[test]
    fn lowering_into_a_list_that_holds_actions_keeps_program_order() {
        let now = Instant::now();
        let mut erased = Erased::new(Typed::default());
        let mut out = Actions::new();
        out.send(9, b"x");
        out.close(9);
        erased.on_start(now, &mut out);
        let kinds: Vec<String> = out
            .steps()
            .map(|s| match s {
                crate::reactor::Step::Send(c, d) => {
                    format!("send {c} {}", String::from_utf8_lossy(d))
                }
                crate::reactor::Step::Other(a) => format!("{a:?}")
                    .split_whitespace()
                    .next()
                    .unwrap()
                    .to_string(),
            })
            .collect();
        assert_eq!(
            kinds,
            vec!["send 9 x", "Close(9)", "send 1 a", "Timer", "send 1 b", "Connect"]
        );
    }
}
