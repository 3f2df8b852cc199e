//! The proposer: run a list of operations against one replica's client API,
//! keeping up to `window` in flight and retrying code-2 answers.
//!
//! [`Pipeline`] is the bookkeeping, with no I/O and no clock of its own: the
//! blocking [`super::client::ApiClient`] (real mode, `peerloop propose`,
//! scenario PROPOSE) drives it with wall-clock time, and [`Proposer`], a
//! sans-I/O [`Protocol`], drives it inside the simulator (scenario PROPOSE
//! under `peerloop test --sim`), where its time-out runs on the virtual
//! clock. Both say a time-out in the same words ([`timed_out_words`]).

use super::api::{ApiCodec, ApiMsg};
use super::client::Outcome;
use crate::reactor::{CloseReason, ConnId, Out, Protocol};
use crate::wire::{decode_each, split_frame, Framed, Stopped};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

/// Code of an answer that says "cut off, caught up since: retry".
pub const CODE_RETRY: u8 = 2;

/// Which operations are sent, in flight and done.
pub struct Pipeline {
    client: u64,
    ops: Vec<String>,
    window: usize,
    retries: u32,
    results: Vec<Option<Outcome>>,
    /// seq -> (index of the operation, when first sent, attempts so far).
    in_flight: BTreeMap<u64, (usize, Instant, u32)>,
    next: usize,
    done: usize,
}

impl Pipeline {
    /// `client` names the requests (with seq 1, 2, ...): sending one again
    /// never commits it twice.
    pub fn new(client: u64, ops: Vec<String>, window: usize, retries: u32) -> Pipeline {
        let results = vec![None; ops.len()];
        Pipeline {
            client,
            ops,
            window: window.max(1),
            retries,
            results,
            in_flight: BTreeMap::new(),
            next: 0,
            done: 0,
        }
    }

    fn request(&self, seq: u64, index: usize) -> ApiMsg {
        ApiMsg::Request {
            client: self.client,
            seq,
            text: self.ops[index].as_bytes().to_vec(),
        }
    }

    /// The requests to send now to fill the window.
    pub fn fill(&mut self, now: Instant) -> Vec<ApiMsg> {
        let mut sends = Vec::new();
        while self.next < self.ops.len() && self.in_flight.len() < self.window {
            let seq = self.next as u64 + 1;
            sends.push(self.request(seq, self.next));
            self.in_flight.insert(seq, (self.next, now, 1));
            self.next += 1;
        }
        sends
    }

    /// The answer to `seq` came: a code-2 one with retries left is sent
    /// again (the returned request); otherwise the operation is done and
    /// `each` hears of it. An answer to nothing in flight is ignored.
    pub fn on_result(
        &mut self,
        now: Instant,
        seq: u64,
        code: u8,
        message: String,
        mut each: impl FnMut(usize, &Outcome),
    ) -> Option<ApiMsg> {
        let (index, sent, attempts) = self.in_flight.remove(&seq)?;
        if code == CODE_RETRY && attempts <= self.retries {
            self.in_flight
                .insert(seq, (index, sent, attempts.saturating_add(1)));
            return Some(self.request(seq, index));
        }
        let outcome = Outcome {
            op: self.ops[index].clone(),
            code,
            message,
            latency: now.saturating_duration_since(sent),
            attempts,
        };
        each(index, &outcome);
        self.results[index] = Some(outcome);
        self.done += 1;
        None
    }

    pub fn finished(&self) -> bool {
        self.done >= self.ops.len()
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Every operation's outcome, in the order given (those done so far).
    pub fn outcomes(&self) -> Vec<Outcome> {
        self.results.iter().flatten().cloned().collect()
    }
}

/// What a time-out may mean, in words: `group` is the replica's answer to
/// INFO on a fresh connection (n, f, quorum, links), if it gave one.
pub fn timed_out_words(addr: &str, timeout: Duration, group: Option<(u8, u8, u8, u8)>) -> String {
    let head = format!(
        "timed out: no answer from the replica at {addr} within {} s",
        timeout.as_secs()
    );
    match group {
        Some((n, _, quorum, links)) => format!(
            "{head}; a quorum may be missing: its group needs {quorum} of {n} replicas, and it is linked to {links} of its {} peers",
            n.saturating_sub(1)
        ),
        None => format!(
            "{head}; the replica does not answer at all (is it overloaded or stopped?), or a quorum of its group may be missing"
        ),
    }
}

/// How long the question after a time-out may take (as the blocking client's).
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// Nothing arrived for `timeout` since answer number N.
    Silence(u64),
    /// The INFO question after a time-out went unanswered.
    Probe,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tag {
    Main,
    Probe,
}

/// A proposer as a protocol node: it connects to `addr`, runs its
/// [`Pipeline`] there and keeps the result in [`Proposer::result`]. A
/// time-out (no answer for `timeout`) asks the replica INFO on a second
/// connection, then fails with [`timed_out_words`], as the blocking client does.
pub struct Proposer {
    addr: SocketAddr,
    timeout: Duration,
    pipeline: Pipeline,
    conn: Option<ConnId>,
    probe: Option<ConnId>,
    /// Bumped at every arrival: an older [`Timer::Silence`] is stale.
    heard: u64,
    /// None while running; then every outcome, or why it stopped.
    pub result: Option<Result<Vec<Outcome>, String>>,
}

impl Proposer {
    pub fn new(addr: SocketAddr, pipeline: Pipeline, timeout: Duration) -> Proposer {
        Proposer {
            addr,
            timeout,
            pipeline,
            conn: None,
            probe: None,
            heard: 0,
            result: None,
        }
    }

    fn finish(&mut self, result: Result<Vec<Outcome>, String>, out: &mut Out<Self>) {
        if self.result.is_none() {
            self.result = Some(result);
        }
        for conn in [self.conn.take(), self.probe.take()].into_iter().flatten() {
            out.close(conn);
        }
    }

    fn fail(&mut self, why: String, out: &mut Out<Self>) {
        self.finish(Err(why), out);
    }

    fn send_window(&mut self, now: Instant, out: &mut Out<Self>) {
        let Some(conn) = self.conn else { return };
        for msg in self.pipeline.fill(now) {
            out.send_with(conn, |o| msg.encode(o));
        }
    }

    fn on_main_data(
        &mut self,
        now: Instant,
        conn: ConnId,
        data: &[u8],
        out: &mut Out<Self>,
    ) -> Result<usize, String> {
        self.heard = self.heard.wrapping_add(1);
        let pipeline = &mut self.pipeline;
        let (used, stopped) = decode_each(&Framed(ApiCodec), data, |msg| match msg {
            ApiMsg::Result {
                seq, code, message, ..
            } => {
                if let Some(again) = pipeline.on_result(now, seq, code, message, |_, _| {}) {
                    out.send_with(conn, |o| again.encode(o));
                }
                ControlFlow::Continue(())
            }
            other => ControlFlow::Break(format!("unexpected answer {other:?}")),
        });
        match stopped {
            None => {}
            Some(Stopped::Decode(e)) => {
                self.fail(e.to_string(), out);
                return Ok(data.len());
            }
            Some(Stopped::Handler(why)) => {
                self.fail(why, out);
                return Ok(data.len());
            }
        }
        if self.pipeline.finished() {
            let outcomes = self.pipeline.outcomes();
            self.finish(Ok(outcomes), out);
        } else {
            self.send_window(now, out);
            out.timer(self.timeout, Timer::Silence(self.heard));
        }
        Ok(used)
    }

    fn on_probe_data(&mut self, data: &[u8], out: &mut Out<Self>) -> Result<usize, String> {
        let group = match split_frame(data) {
            Ok(None) => return Ok(0),
            Ok(Some(frame)) => match ApiMsg::decode(frame.kind, frame.body) {
                Ok(ApiMsg::Group {
                    n,
                    f,
                    quorum,
                    links,
                }) => Some((n, f, quorum, links)),
                _ => None,
            },
            Err(_) => None,
        };
        let words = timed_out_words(&self.addr.to_string(), self.timeout, group);
        self.fail(words, out);
        Ok(data.len())
    }
}

impl Protocol for Proposer {
    type Timer = Timer;
    type Tag = Tag;

    fn on_start(&mut self, _now: Instant, out: &mut Out<Self>) {
        if self.pipeline.is_empty() {
            self.result = Some(Ok(Vec::new()));
            return;
        }
        out.connect(self.addr, Tag::Main);
    }

    fn on_connected(&mut self, now: Instant, tag: Tag, conn: ConnId, out: &mut Out<Self>) {
        if self.result.is_some() {
            out.close(conn);
            return;
        }
        match tag {
            Tag::Main => {
                self.conn = Some(conn);
                self.send_window(now, out);
                out.timer(self.timeout, Timer::Silence(self.heard));
            }
            Tag::Probe => {
                self.probe = Some(conn);
                out.send_with(conn, |o| ApiMsg::Info.encode(o));
            }
        }
    }

    fn on_connect_failed(&mut self, _now: Instant, tag: Tag, error: &str, out: &mut Out<Self>) {
        let why = match tag {
            Tag::Main => format!("cannot connect to {}: {error}", self.addr),
            Tag::Probe => timed_out_words(&self.addr.to_string(), self.timeout, None),
        };
        self.fail(why, out);
    }

    fn on_data(
        &mut self,
        now: Instant,
        conn: ConnId,
        data: &[u8],
        out: &mut Out<Self>,
    ) -> Result<usize, String> {
        if self.result.is_some() {
            return Ok(data.len());
        }
        if Some(conn) == self.conn {
            self.on_main_data(now, conn, data, out)
        } else if Some(conn) == self.probe {
            self.on_probe_data(data, out)
        } else {
            Ok(data.len())
        }
    }

    fn on_closed(
        &mut self,
        _now: Instant,
        conn: ConnId,
        reason: &CloseReason,
        out: &mut Out<Self>,
    ) {
        if self.result.is_some() {
            return;
        }
        if Some(conn) == self.conn {
            self.conn = None;
            let why = match reason {
                CloseReason::PeerClosed => "the replica closed the connection".to_string(),
                other => format!("lost the connection to {}: {other}", self.addr),
            };
            self.fail(why, out);
        } else if Some(conn) == self.probe {
            self.probe = None;
            let words = timed_out_words(&self.addr.to_string(), self.timeout, None);
            self.fail(words, out);
        }
    }

    fn on_timer(&mut self, _now: Instant, timer: Timer, out: &mut Out<Self>) {
        if self.result.is_some() {
            return;
        }
        match timer {
            Timer::Silence(heard) if heard == self.heard && self.probe.is_none() => {
                // As the blocking client: ask on a fresh connection what may be missing.
                out.connect(self.addr, Tag::Probe);
                out.timer(PROBE_TIMEOUT, Timer::Probe);
            }
            Timer::Silence(_) => {}
            Timer::Probe => {
                let words = timed_out_words(&self.addr.to_string(), self.timeout, None);
                self.fail(words, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("P,k{i},{i}")).collect()
    }

    fn seq_of(msg: &ApiMsg) -> u64 {
        match msg {
            ApiMsg::Request { seq, .. } => *seq,
            other => panic!("not a request: {other:?}"),
        }
    }

    #[test]
    fn the_window_bounds_what_is_in_flight_and_code_2_is_retried_with_the_same_request() {
        let t0 = Instant::now();
        let mut p = Pipeline::new(9, ops(3), 2, 1);
        let first: Vec<u64> = p.fill(t0).iter().map(seq_of).collect();
        assert_eq!(first, vec![1, 2]);
        assert!(p.fill(t0).is_empty(), "the window is full");
        // Code 2 with a retry left: the same request again, nothing done.
        let again = p.on_result(t0, 1, CODE_RETRY, "cut off".into(), |_, _| panic!());
        assert_eq!(again.as_ref().map(seq_of), Some(1));
        // The second code 2 is final (one retry only).
        let mut done = Vec::new();
        let again = p.on_result(t0, 1, CODE_RETRY, "cut off".into(), |i, o| {
            done.push((i, o.code, o.attempts))
        });
        assert_eq!(again, None);
        assert_eq!(done, vec![(0, 2, 2)]);
        // An answer to nothing in flight (a replay, a forged seq) is ignored.
        assert_eq!(p.on_result(t0, 1, 0, "dup".into(), |_, _| panic!()), None);
        assert_eq!(p.on_result(t0, 77, 0, "?".into(), |_, _| panic!()), None);
        assert_eq!(p.fill(t0).iter().map(seq_of).collect::<Vec<_>>(), vec![3]);
        p.on_result(t0, 2, 0, "ok".into(), |_, _| {});
        assert!(!p.finished());
        p.on_result(t0 + Duration::from_millis(5), 3, 0, "ok".into(), |_, _| {});
        assert!(p.finished());
        let outcomes = p.outcomes();
        let codes: Vec<u8> = outcomes.iter().map(|o| o.code).collect();
        assert_eq!(codes, vec![2, 0, 0]);
        assert_eq!(outcomes[2].latency, Duration::from_millis(5));
    }

    use crate::bpcon::simnet::{api_addr, Net};
    use crate::sim::{host, NodeId, World};

    fn add_proposer(net: &mut Net, to: usize, ops: Vec<String>, timeout: Duration) -> NodeId {
        let mut ops = Some(ops);
        net.world.add_node(
            "proposer",
            Vec::new(),
            Box::new(move |rng| {
                let pipeline = Pipeline::new(rand::Rng::gen(rng), ops.take().unwrap(), 3, 2);
                host(Proposer::new(api_addr(to), pipeline, timeout))
            }),
        )
    }

    fn result(net: &Net, node: NodeId) -> Option<Result<Vec<Outcome>, String>> {
        net.world
            .protocol_ref::<Proposer>(node)
            .and_then(|p| p.result.clone())
    }

    /// The simulated proposer speaks the real client API to a whole node:
    /// ten operations, three in flight, every one committed.
    #[test]
    fn a_proposer_node_commits_its_operations_through_a_replicas_client_api() {
        let mut net = Net::new(World::new(5), vec![None; 4]);
        let p = add_proposer(&mut net, 1, ops(10), Duration::from_secs(30));
        assert!(net.world.run_until(Duration::from_secs(60), |w| w
            .protocol_ref::<Proposer>(p)
            .is_some_and(|p| p.result.is_some())));
        let outcomes = result(&net, p).unwrap().expect("committed");
        assert_eq!(outcomes.len(), 10);
        assert!(outcomes.iter().all(|o| o.code == 0), "{outcomes:?}");
        assert_eq!(outcomes[9].op, "P,k9,9");
        // Replica 2 may still be waiting for the last slot's 2bs.
        net.world.run_for(Duration::from_secs(1));
        let store = &net.replica(2).unwrap().store().log;
        assert_eq!(store.len(), 10);
    }

    /// With no quorum left the replica stays silent: after `timeout` of
    /// virtual time (not wall time) the proposer asks INFO on a second
    /// connection and fails in the words the blocking client uses.
    #[test]
    fn a_proposer_times_out_on_the_virtual_clock_and_says_what_may_be_missing() {
        let mut net = Net::new(World::new(6), vec![None; 4]);
        net.world.run_for(Duration::from_secs(1));
        for i in 1..4 {
            net.crash(i);
        }
        let started = net.world.now();
        let p = add_proposer(&mut net, 0, ops(2), Duration::from_secs(5));
        assert!(net.world.run_until(Duration::from_secs(60), |w| w
            .protocol_ref::<Proposer>(p)
            .is_some_and(|p| p.result.is_some())));
        let took = net.world.now() - started;
        let why = result(&net, p).unwrap().unwrap_err();
        assert_eq!(
            why,
            "timed out: no answer from the replica at 10.0.0.1:8000 within 5 s; a quorum may be missing: its group needs 3 of 4 replicas, and it is linked to 0 of its 3 peers"
        );
        assert!(
            took >= Duration::from_secs(5) && took < Duration::from_secs(8),
            "{took:?}"
        );
    }

    #[test]
    fn a_time_out_says_what_may_be_missing() {
        let d = Duration::from_secs(15);
        assert_eq!(
            timed_out_words("10.0.0.1:8000", d, Some((4, 1, 3, 1))),
            "timed out: no answer from the replica at 10.0.0.1:8000 within 15 s; a quorum may be missing: its group needs 3 of 4 replicas, and it is linked to 1 of its 3 peers"
        );
        assert!(timed_out_words("x", d, None).ends_with("or a quorum of its group may be missing"));
    }
}
