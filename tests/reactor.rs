//! The reactor on real loopback sockets, driven by tiny test protocols:
//! backpressure only on the connections that feed a congested one (issue 8
//! item 12), half-close and protocol errors still deliver the answers
//! (item 13), and stale connection IDs are harmless (item 14). The last
//! tests check the half-close and protocol-error answers end to end on a
//! real CRC server process.

mod common;

use peerloop::crc::codec::{self, Message};
use peerloop::reactor::{CloseReason, ConnId, InputEnded, Limits, Out, Protocol, Reactor};
use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Generous: the machine is small and shared; nothing here waits this long when it works.
const DEADLINE: Duration = Duration::from_secs(120);

/// Run `protocol` on a reactor in its own thread; the listener's address.
fn start<P: Protocol + Send + 'static>(protocol: P, limits: Option<Limits>) -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut reactor = Reactor::new(vec![listener], false).unwrap();
        if let Some(limits) = limits {
            reactor.set_limits(limits);
        }
        let mut protocol = protocol;
        reactor.run(&mut protocol).unwrap();
    });
    addr
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    stream
}

fn read_n(stream: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    stream.read_exact(&mut buf).expect("read from the reactor");
    buf
}

/// Everything until the reactor closes the connection.
fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    stream.read_to_end(&mut all).expect("read until closed");
    all
}

// ---------------------------------------------------------------------------
// Item 12: one slow reader pauses only the connections that feed it.

/// The first byte of a connection names its role. A's input is relayed to
/// B (which does not read); C's to D and D's to C (ping-pong).
struct Relay {
    roles: HashMap<ConnId, u8>,
    by_role: HashMap<u8, ConnId>,
    read_from_a: Arc<AtomicU64>,
    b_closed: Arc<AtomicBool>,
}

impl Protocol for Relay {
    type Timer = u64;
    type Tag = u64;

    fn on_data(
        &mut self,
        _now: Instant,
        conn: ConnId,
        data: &[u8],
        out: &mut Out<Self>,
    ) -> Result<usize, String> {
        let (role, rest) = match self.roles.get(&conn) {
            Some(&role) => (role, data),
            None => {
                self.roles.insert(conn, data[0]);
                self.by_role.insert(data[0], conn);
                out.send(conn, b"ok");
                (data[0], &data[1..])
            }
        };
        let to = match role {
            b'A' => {
                self.read_from_a
                    .fetch_add(rest.len() as u64, Ordering::SeqCst);
                b'B'
            }
            b'C' => b'D',
            b'D' => b'C',
            _ => return Ok(data.len()),
        };
        if let Some(&to) = self.by_role.get(&to) {
            out.send(to, rest);
        }
        Ok(data.len())
    }

    fn on_closed(
        &mut self,
        _now: Instant,
        conn: ConnId,
        _reason: &CloseReason,
        _out: &mut Out<Self>,
    ) {
        if self.roles.get(&conn) == Some(&b'B') {
            self.b_closed.store(true, Ordering::SeqCst);
        }
    }
}

fn pattern(at: u64) -> u8 {
    (at % 251) as u8
}

#[test]
fn a_slow_reader_pauses_only_the_connection_that_feeds_it() {
    let read_from_a = Arc::new(AtomicU64::new(0));
    let b_closed = Arc::new(AtomicBool::new(false));
    let soft = 256 << 10;
    let limits = Limits {
        soft_write_buffer: soft,
        // Far below what A sends beyond every socket buffer: if A kept being
        // read, B would pass it and be dropped.
        hard_write_buffer: 24 << 20,
        write_stall: Duration::from_secs(3600),
        ..Limits::default()
    };
    let addr = start(
        Relay {
            roles: HashMap::new(),
            by_role: HashMap::new(),
            read_from_a: read_from_a.clone(),
            b_closed: b_closed.clone(),
        },
        Some(limits),
    );
    let joined = |role: u8| {
        let mut s = connect(addr);
        s.write_all(&[role]).unwrap();
        assert_eq!(read_n(&mut s, 2), b"ok");
        s
    };
    let mut b = joined(b'B');
    let mut c = joined(b'C');
    let mut d = joined(b'D');
    let mut a = joined(b'A');

    // A sends far more than socket buffers and the hard limit hold.
    const TOTAL: u64 = 128 << 20;
    let writer_done = Arc::new(AtomicBool::new(false));
    let done = writer_done.clone();
    let writer = std::thread::spawn(move || {
        let mut at = 0u64;
        let mut chunk = vec![0u8; 64 << 10];
        while at < TOTAL {
            for byte in chunk.iter_mut() {
                *byte = pattern(at);
                at += 1;
            }
            a.write_all(&chunk).unwrap();
        }
        done.store(true, Ordering::SeqCst);
        a
    });

    // C and D keep talking while B is congested; A stops being read.
    let deadline = Instant::now() + DEADLINE;
    let mut round_trips = 0u64;
    let mut a_still_since = 0u64;
    let mut a_seen = u64::MAX;
    loop {
        assert!(
            !b_closed.load(Ordering::SeqCst),
            "B was dropped: A's input kept being read past the hard limit"
        );
        assert!(
            !writer_done.load(Ordering::SeqCst),
            "A's whole {TOTAL} bytes were read while B read nothing"
        );
        assert!(Instant::now() < deadline, "A was never paused");
        let ping = round_trips.to_be_bytes();
        c.write_all(&ping).unwrap();
        assert_eq!(read_n(&mut d, 8), ping);
        d.write_all(&ping).unwrap();
        assert_eq!(read_n(&mut c, 8), ping);
        round_trips += 1;
        let now_a = read_from_a.load(Ordering::SeqCst);
        if now_a != a_seen {
            a_seen = now_a;
            a_still_since = round_trips;
        }
        // A has not been read for 200 round trips, after more than the
        // soft limit went to B: A waits on B.
        if now_a > soft as u64 && round_trips - a_still_since >= 200 {
            break;
        }
    }

    // B reads: A resumes, and B gets every byte A sent, in order.
    let mut got = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    while got < TOTAL {
        let n = b.read(&mut buf).expect("B reads");
        assert!(n > 0, "B was closed after {got} bytes");
        for &byte in &buf[..n] {
            assert_eq!(byte, pattern(got), "byte {got} to B");
            got += 1;
        }
    }
    writer.join().unwrap();
    assert_eq!(read_from_a.load(Ordering::SeqCst), TOTAL);
    assert!(!b_closed.load(Ordering::SeqCst));
}

// ---------------------------------------------------------------------------
// Item 13: half-close and protocol errors still get their answers.

/// What the test protocols saw, in order.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Finished(ConnId),
    Closed(ConnId, CloseReason),
}

/// Lines: `get` is answered with a big answer (far more than socket
/// buffers hold, so most of it is still queued when the input ends);
/// anything else is a protocol error.
struct Answer {
    seen: Sender<Seen>,
    answer: Vec<u8>,
    /// Answer later (on a timer), keeping the half-closed connection open.
    deferred: Option<ConnId>,
    defer: bool,
}

impl Answer {
    fn new(defer: bool) -> (Self, Receiver<Seen>) {
        let (seen, rx) = channel();
        let answer = (0..32u32 << 20).map(|i| (i % 253) as u8).collect();
        (
            Answer {
                seen,
                answer,
                deferred: None,
                defer,
            },
            rx,
        )
    }
}

impl Protocol for Answer {
    type Timer = u64;
    type Tag = u64;

    fn on_data(
        &mut self,
        _now: Instant,
        conn: ConnId,
        data: &[u8],
        out: &mut Out<Self>,
    ) -> Result<usize, String> {
        let mut used = 0;
        while let Some(end) = data[used..].iter().position(|&b| b == b'\n') {
            let line = &data[used..used + end];
            if line != b"get" {
                return Err("not a get".into());
            }
            used += end + 1;
            if self.defer {
                self.deferred = Some(conn);
                out.timer(Duration::from_millis(20), 1);
            } else {
                out.send(conn, &self.answer);
            }
        }
        Ok(used)
    }

    fn on_peer_finished_sending(
        &mut self,
        _now: Instant,
        conn: ConnId,
        _out: &mut Out<Self>,
    ) -> InputEnded {
        let _ = self.seen.send(Seen::Finished(conn));
        if self.deferred == Some(conn) {
            InputEnded::KeepOpen
        } else {
            InputEnded::CloseWhenFlushed
        }
    }

    fn on_timer(&mut self, _now: Instant, _token: Self::Timer, out: &mut Out<Self>) {
        if let Some(conn) = self.deferred.take() {
            out.send(conn, &self.answer);
            out.close_after_flush(conn);
        }
    }

    fn on_closed(
        &mut self,
        _now: Instant,
        conn: ConnId,
        reason: &CloseReason,
        _out: &mut Out<Self>,
    ) {
        let _ = self.seen.send(Seen::Closed(conn, reason.clone()));
    }
}

fn expected_answer() -> Vec<u8> {
    Answer::new(false).0.answer
}

#[test]
fn a_request_then_half_close_gets_the_whole_answer() {
    let (protocol, seen) = Answer::new(false);
    let addr = start(protocol, None);
    let mut client = connect(addr);
    client.write_all(b"get\n").unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    // Read only once the reactor has seen the end of input, with most of
    // the answer still queued.
    let first = seen.recv_timeout(DEADLINE).unwrap();
    let answer = read_to_close(&mut client);
    assert!(answer.len() == 32 << 20, "got {} bytes", answer.len());
    assert!(answer == expected_answer());
    // The protocol was told the peer finished, then that it is closed.
    let Seen::Finished(conn) = first else {
        panic!("not told the peer finished sending first: {first:?}");
    };
    assert_eq!(
        seen.recv_timeout(DEADLINE).unwrap(),
        Seen::Closed(conn, CloseReason::PeerClosed)
    );
}

#[test]
fn a_protocol_can_answer_after_the_peer_half_closed() {
    let (protocol, seen) = Answer::new(true);
    let addr = start(protocol, None);
    let mut client = connect(addr);
    client.write_all(b"get\n").unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    assert!(read_to_close(&mut client) == expected_answer());
    assert!(matches!(seen.recv_timeout(DEADLINE), Ok(Seen::Finished(_))));
    // It closed the connection itself, so it is not told again.
    assert!(seen.recv_timeout(Duration::from_millis(100)).is_err());
}

#[test]
fn a_valid_request_then_garbage_still_gets_its_answer() {
    let (protocol, seen) = Answer::new(false);
    let addr = start(protocol, None);
    let mut client = connect(addr);
    client.write_all(b"get\n\xff\xfe garbage\n").unwrap();
    assert!(read_to_close(&mut client) == expected_answer());
    assert!(matches!(
        seen.recv_timeout(DEADLINE).unwrap(),
        Seen::Closed(_, CloseReason::ProtocolError(why)) if why == "not a get"
    ));
}

// ---------------------------------------------------------------------------
// Item 14: a stale connection ID never reaches the peer that reuses its slot.

/// Remembers the first connection; `old` sends to it, `close-old` closes it;
/// both answer `done` on the connection that asked.
struct Stale {
    first: Option<ConnId>,
    events: Sender<(&'static str, ConnId)>,
}

impl Protocol for Stale {
    type Timer = u64;
    type Tag = u64;

    fn on_accept(
        &mut self,
        _now: Instant,
        _: usize,
        conn: ConnId,
        _: SocketAddr,
        _out: &mut Out<Self>,
    ) {
        self.first.get_or_insert(conn);
        let _ = self.events.send(("accepted", conn));
    }

    fn on_data(
        &mut self,
        _now: Instant,
        conn: ConnId,
        data: &[u8],
        out: &mut Out<Self>,
    ) -> Result<usize, String> {
        let old = self.first.unwrap();
        let mut used = 0;
        while let Some(end) = data[used..].iter().position(|&b| b == b'\n') {
            match &data[used..used + end] {
                b"old" => out.send(old, b"stale\n"),
                b"close-old" => out.close(old),
                _ => {}
            }
            out.send(conn, b"done\n");
            used += end + 1;
        }
        Ok(used)
    }

    fn on_closed(
        &mut self,
        _now: Instant,
        conn: ConnId,
        _reason: &CloseReason,
        _out: &mut Out<Self>,
    ) {
        let _ = self.events.send(("closed", conn));
    }
}

#[test]
fn a_stale_connection_id_does_not_reach_the_next_peer_in_its_slot() {
    let (events, rx) = channel();
    let addr = start(
        Stale {
            first: None,
            events,
        },
        None,
    );
    let first = connect(addr);
    let ("accepted", old) = rx.recv_timeout(DEADLINE).unwrap() else {
        panic!("first connection not accepted")
    };
    drop(first);
    assert_eq!(rx.recv_timeout(DEADLINE).unwrap(), ("closed", old));

    let mut second = connect(addr);
    let ("accepted", new) = rx.recv_timeout(DEADLINE).unwrap() else {
        panic!("second connection not accepted")
    };
    assert_ne!(new, old, "a reused slot must get a new ID");
    second.write_all(b"old\nclose-old\n").unwrap();
    assert_eq!(read_n(&mut second, 10), b"done\ndone\n");
    // Neither the stale send nor the stale close touched the second peer.
    second.write_all(b"again\n").unwrap();
    assert_eq!(read_n(&mut second, 5), b"done\n");
    second
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut more = [0u8; 16];
    match second.read(&mut more) {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => panic!("unexpected bytes or close after the answers: {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// Item 13 end to end: a real CRC server answers a registration that is
// followed by a half-close, or by garbage.

/// The registration of client `id`, as raw bytes.
fn registration(id: u32) -> Vec<u8> {
    codec::to_bytes(&Message::ClientRegistration {
        source: id,
        last_hop: 0,
        name: b"halfway",
        info: b"\"Test info\"",
    })
}

/// The first frame of `answer` is the server's welcome.
fn assert_welcomed(answer: &[u8]) {
    match codec::decode(answer) {
        Ok(Some((Message::Status { text, .. }, _))) => assert!(
            text.starts_with(b"Welcome"),
            "first status: {:?}",
            String::from_utf8_lossy(text)
        ),
        other => panic!("no welcome in {} bytes: {other:?}", answer.len()),
    }
}

#[test]
fn a_crc_client_that_registers_and_half_closes_is_welcomed() {
    let (mut server, addr) = common::crc_server(1, "target", None);
    let mut client = connect(addr);
    client.write_all(&registration(101)).unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    assert_welcomed(&read_to_close(&mut client));
    // The server let it go after answering.
    server.wait_state("the client to be gone", |s| {
        s["adjacent_user_ids"] == serde_json::json!([])
    });
}

#[test]
fn a_crc_registration_followed_by_garbage_is_still_answered() {
    let (mut server, addr) = common::crc_server(1, "target", None);
    let mut client = connect(addr);
    let mut bytes = registration(101);
    bytes.extend_from_slice(&[0x7f, 1, 2, 3]);
    client.write_all(&bytes).unwrap();
    assert_welcomed(&read_to_close(&mut client));
    assert!(server.is_running());
}

// ---------------------------------------------------------------------------
// Input read by read into the reactor's one scratch buffer, partial frames
// kept per connection; large sends written at once.

/// Every complete line comes back as `<` then the line: a short send then
/// one that may be written at once, to check they keep their order.
struct Echo;

impl Protocol for Echo {
    type Timer = u64;
    type Tag = u64;

    fn on_data(
        &mut self,
        _now: Instant,
        conn: ConnId,
        data: &[u8],
        out: &mut Out<Self>,
    ) -> Result<usize, String> {
        let mut used = 0;
        while let Some(end) = data[used..].iter().position(|&b| b == b'\n') {
            out.send(conn, b"<");
            out.send_with(conn, |buf| {
                buf.extend_from_slice(&data[used..used + end + 1])
            });
            used += end + 1;
        }
        Ok(used)
    }
}

/// Lines from empty to longer than a quarter of the read buffer (so a
/// partial one is read onto, not moved) and longer than one read, written
/// in chunks that cut them anywhere: every line comes back whole, in order.
#[test]
fn lines_cut_anywhere_come_back_whole_and_in_order() {
    let mut lines: Vec<Vec<u8>> = Vec::new();
    for (i, len) in [0usize, 1, 63, 64, 65, 5_000, 70_000, 1, 300_000, 17_000, 2]
        .iter()
        .cycle()
        .take(60)
        .enumerate()
    {
        let mut line: Vec<u8> = (0..*len).map(|j| b'a' + ((i + j) % 26) as u8).collect();
        line.push(b'\n');
        lines.push(line);
    }
    let input: Vec<u8> = lines.concat();
    let expected: Vec<u8> = lines.iter().flat_map(|l| [&b"<"[..], l].concat()).collect();
    let addr = start(Echo, None);
    let mut client = connect(addr);
    let mut writer = client.try_clone().unwrap();
    let sending = std::thread::spawn(move || {
        // Chunk sizes that fall on no line boundary in particular.
        let (mut at, mut step) = (0, 1);
        while at < input.len() {
            let end = (at + step).min(input.len());
            writer.write_all(&input[at..end]).unwrap();
            at = end;
            step = step * 7 % 100_003 + 1;
        }
    });
    let got = read_n(&mut client, expected.len());
    sending.join().unwrap();
    assert!(
        got == expected,
        "the echoed lines differ from what was sent"
    );
}
