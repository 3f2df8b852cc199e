//! A replay attacker around a Byzantine replica (tests and the simulator
//! only): the replica runs as usual (wrapped in a catch-up liar, see
//! [`super::byzantine`]), and the attacker also dials the correct replicas
//! with handshakes it recorded, posing as another replica, to double the
//! liar's voice. A recorded HELLO is what a replica of the seed sent: a
//! signature over the two names alone. The challenge-response handshake
//! refuses it; with the seeded bug `bpcon.replayable-hello` it is taken.

use super::byzantine::pwned;
use super::crypto::PrivateKey;
use super::messages::{hello_bytes, PeerMsg, NONCE_LEN};
use super::node::{Node, PeerIndex, Timer as NodeTimer};
use super::simnet::peer_addr;
use crate::reactor::{
    Action, Actions, CloseReason, ConnId, InputEnded, ListenerId, Out, Protocol, Step,
};
use crate::wire::split_frame;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How often the attacker tries its replays and repeats its lies.
const EVERY: Duration = Duration::from_millis(700);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    Node(NodeTimer),
    Replay,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tag {
    Node(PeerIndex),
    /// A replay to `target` posing as `victim`.
    Replay {
        target: usize,
        victim: usize,
    },
}

/// A recorded handshake, in the seed's form: HELLO from `victim` to
/// `target`, signed over the names only.
fn recorded_hello(names: &[String], victim: usize, target: usize, key: &PrivateKey) -> Vec<u8> {
    let zero = [0u8; NONCE_LEN];
    let signature = key.sign(&hello_bytes(
        &names[victim],
        &names[target],
        &zero,
        &zero,
        &[],
    ));
    PeerMsg::Hello {
        from: names[victim].clone(),
        to: names[target].clone(),
        nonce: zero,
        sealed_key: Vec::new(),
        signature,
    }
    .to_frame()
    .expect("a HELLO fits a frame")
}

pub struct Impostor {
    inner: Node,
    /// (target, victim) -> the recorded HELLO.
    recordings: BTreeMap<(usize, usize), Vec<u8>>,
    /// Our replay connections: (target, victim, handshake sent).
    conns: BTreeMap<ConnId, (usize, usize, bool)>,
    buffers: BTreeMap<ConnId, Vec<u8>>,
}

impl Impostor {
    /// `keys` are every replica's private keys: the harness hands the
    /// attacker what it could have recorded on the network.
    pub fn new(inner: Node, me: usize, names: &[String], keys: &[PrivateKey]) -> Impostor {
        let n = names.len();
        let mut recordings = BTreeMap::new();
        for target in (0..n).filter(|&t| t != me) {
            // Pose as the next correct replica after the target.
            let victim = (1..n)
                .map(|d| (target + d) % n)
                .find(|&v| v != me)
                .expect("n > 2");
            recordings.insert(
                (target, victim),
                recorded_hello(names, victim, target, &keys[victim]),
            );
        }
        Impostor {
            inner,
            recordings,
            conns: BTreeMap::new(),
            buffers: BTreeMap::new(),
        }
    }

    pub fn node(&self) -> &Node {
        &self.inner
    }

    fn pass(from: Actions<NodeTimer, PeerIndex>, out: &mut Out<Self>) {
        for step in from.steps() {
            match step {
                Step::Send(conn, bytes) => out.send(conn, bytes),
                Step::Other(action) => match action {
                    Action::Close(c) => out.close(*c),
                    Action::CloseAfterFlush(c) => out.close_after_flush(*c),
                    Action::Connect { addr, tag } => out.connect(*addr, Tag::Node(*tag)),
                    Action::Timer { after, timer } => out.timer(*after, Timer::Node(*timer)),
                    Action::Print(line) => out.print(line.clone()),
                    Action::Stop => out.stop(),
                },
            }
        }
    }

    fn with_inner(
        &mut self,
        out: &mut Out<Self>,
        f: impl FnOnce(&mut Node, &mut Actions<NodeTimer, PeerIndex>),
    ) {
        let mut inner_out = Actions::new();
        f(&mut self.inner, &mut inner_out);
        Self::pass(inner_out, out);
    }

    /// Lies in the victim's name on an accepted replay link: the liar's
    /// slot is decided (prompting a catch-up request), with `pwned` in it.
    fn lie(&self, conn: ConnId, out: &mut Out<Self>) {
        let slot = self.inner.replica().slot();
        for s in slot.saturating_sub(1)..slot.saturating_add(2) {
            let msgs = [
                PeerMsg::Status {
                    committed: s.saturating_add(1),
                    max_ballot: None,
                },
                PeerMsg::CatchupReply {
                    slot: s,
                    committed: s.saturating_add(1),
                    value: pwned(),
                    proof: None,
                },
            ];
            for msg in msgs {
                if let Ok(frame) = msg.to_frame() {
                    out.send(conn, &frame);
                }
            }
        }
    }
}

impl Protocol for Impostor {
    type Timer = Timer;
    type Tag = Tag;

    fn on_start(&mut self, now: Instant, out: &mut Out<Self>) {
        self.with_inner(out, |n, o| n.on_start(now, o));
        out.timer(EVERY, Timer::Replay);
    }

    fn on_accept(
        &mut self,
        now: Instant,
        listener: ListenerId,
        conn: ConnId,
        peer: SocketAddr,
        out: &mut Out<Self>,
    ) {
        self.with_inner(out, |n, o| n.on_accept(now, listener, conn, peer, o));
    }

    fn on_connected(&mut self, now: Instant, tag: Tag, conn: ConnId, out: &mut Out<Self>) {
        match tag {
            Tag::Node(t) => self.with_inner(out, |n, o| n.on_connected(now, t, conn, o)),
            Tag::Replay { target, victim } => {
                self.conns.insert(conn, (target, victim, false));
            }
        }
    }

    fn on_connect_failed(&mut self, now: Instant, tag: Tag, error: &str, out: &mut Out<Self>) {
        if let Tag::Node(t) = tag {
            self.with_inner(out, |n, o| n.on_connect_failed(now, t, error, o));
        }
    }

    fn on_data(
        &mut self,
        now: Instant,
        conn: ConnId,
        data: &[u8],
        out: &mut Out<Self>,
    ) -> Result<usize, String> {
        let Some(&(target, victim, sent)) = self.conns.get(&conn) else {
            let mut result = Ok(0);
            self.with_inner(out, |n, o| result = n.on_data(now, conn, data, o));
            return result;
        };
        let buf = self.buffers.entry(conn).or_default();
        buf.extend_from_slice(data);
        if !sent {
            if let Ok(Some(frame)) = split_frame(buf) {
                let len = frame.len;
                buf.drain(..len);
                if let Some(hello) = self.recordings.get(&(target, victim)) {
                    out.send(conn, hello);
                    self.conns.insert(conn, (target, victim, true));
                    self.lie(conn, out);
                }
            }
        }
        if let Some(buf) = self.buffers.get_mut(&conn) {
            buf.clear(); // whatever else it says is of no interest
        }
        Ok(data.len())
    }

    fn on_peer_finished_sending(
        &mut self,
        now: Instant,
        conn: ConnId,
        out: &mut Out<Self>,
    ) -> InputEnded {
        if self.conns.contains_key(&conn) {
            return InputEnded::CloseWhenFlushed;
        }
        let mut ended = InputEnded::CloseWhenFlushed;
        self.with_inner(out, |n, o| ended = n.on_peer_finished_sending(now, conn, o));
        ended
    }

    fn on_closed(&mut self, now: Instant, conn: ConnId, reason: &CloseReason, out: &mut Out<Self>) {
        if self.conns.remove(&conn).is_some() {
            self.buffers.remove(&conn);
            return;
        }
        self.with_inner(out, |n, o| n.on_closed(now, conn, reason, o));
    }

    fn on_timer(&mut self, now: Instant, timer: Timer, out: &mut Out<Self>) {
        match timer {
            Timer::Node(t) => self.with_inner(out, |n, o| n.on_timer(now, t, o)),
            Timer::Replay => {
                let open: Vec<(usize, usize)> =
                    self.conns.values().map(|&(t, v, _)| (t, v)).collect();
                for &(target, victim) in self.recordings.keys() {
                    if !open.contains(&(target, victim)) {
                        out.connect(peer_addr(target), Tag::Replay { target, victim });
                    }
                }
                let up: Vec<ConnId> = self
                    .conns
                    .iter()
                    .filter(|(_, (_, _, sent))| *sent)
                    .map(|(c, _)| *c)
                    .collect();
                for conn in up {
                    self.lie(conn, out);
                }
                out.timer(EVERY, Timer::Replay);
            }
        }
    }

    fn on_stdin_line(&mut self, now: Instant, line: &str, out: &mut Out<Self>) {
        self.with_inner(out, |n, o| n.on_stdin_line(now, line, o));
    }

    fn on_stdin_closed(&mut self, now: Instant, out: &mut Out<Self>) {
        self.with_inner(out, |n, o| n.on_stdin_closed(now, o));
    }

    fn on_round_end(&mut self, now: Instant, out: &mut Out<Self>) {
        self.with_inner(out, |n, o| n.on_round_end(now, o));
    }
}
