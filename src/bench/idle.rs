//! Memory per idle client: many raw TCP clients register with one server;
//! the server's RSS before and after, divided by the number of clients.
//!
//! CRC tells every client about every other one, so n clients make the
//! server send n welcomes and n·(n-1) registrations. The bench reads them
//! all (one mio poll over every socket) and checks the count: when each
//! client has heard of every other, the server is idle and its buffers
//! drained, and that is when RSS is read.

use super::crc::start_server;
use super::process::{rss_bytes, Proc};
use super::wire;
use crate::crc::codec::{self, Message};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

/// Client IDs start here (the server is 1).
const FIRST_ID: u32 = 1_000_000;
/// Clients connected between two polls of what the server sent.
const CONNECT_BATCH: usize = 100;
/// How long the clients stay idle before the second reading.
pub const IDLE_WAIT: Duration = Duration::from_millis(1500);

pub struct IdleReport {
    pub clients: usize,
    pub rss_before: u64,
    /// Right when the last frame arrived.
    pub rss_busy: u64,
    /// After `IDLE_WAIT` of quiet.
    pub rss_after: u64,
    /// Time for every client to register and hear of every other.
    pub settle: Duration,
}

impl IdleReport {
    pub fn bytes_per_client(&self) -> f64 {
        self.rss_after.saturating_sub(self.rss_before) as f64 / self.clients as f64
    }
}

struct BenchClient {
    stream: TcpStream,
    pending: Vec<u8>,
    frames: usize,
}

pub fn run_idle(exe: &Path, clients: usize, timeout: Duration) -> Result<IdleReport, String> {
    let (mut server, addr) = start_server(exe, 1, None)?;
    // A `state` answer proves the loop is up and idle before the first reading.
    server.state(Duration::from_secs(10))?;
    let rss_before = rss_bytes(server.pid())?;

    let started = Instant::now();
    let mut c = Clients {
        poll: Poll::new().map_err(|e| e.to_string())?,
        events: Events::with_capacity(1024),
        conns: Vec::with_capacity(clients),
        scratch: vec![0u8; 64 * 1024],
        received: 0,
    };
    let expected_total = clients * clients;
    let deadline = started + timeout;
    while c.conns.len() < clients {
        let batch_start = c.conns.len();
        let batch_end = (batch_start + CONNECT_BATCH).min(clients);
        for i in batch_start..batch_end {
            let client = connect(&c.poll, addr, i)?;
            c.conns.push(client);
        }
        // Wait for this batch's welcomes: connecting faster than the server
        // accepts overflows its accept queue, and a dropped SYN costs a 1 s retry.
        c.read_until(
            &mut server,
            deadline,
            |c| c.conns[batch_start..].iter().all(|x| x.frames > 0),
            |_| {
                format!(
                    "after {timeout:?} clients {batch_start}..{batch_end} were still not welcomed"
                )
            },
        )?;
    }
    c.read_until(
        &mut server,
        deadline,
        |c| c.received >= expected_total,
        |c| {
            format!(
                "after {timeout:?} the {clients} clients had received {} of the \
                 {expected_total} frames (welcome + every other client's registration)",
                c.received
            )
        },
    )?;
    let settle = started.elapsed();
    let rss_busy = rss_bytes(server.pid())?;
    // Idle means quiet for a while: the server gives back freed heap at most
    // once a second after a burst (see reactor/heap.rs).
    std::thread::sleep(IDLE_WAIT);
    let rss_after = rss_bytes(server.pid())?;

    // The server agrees: it knows every client.
    let state = server.state(Duration::from_secs(30))?;
    let known = state["adjacent_user_ids"].as_array().map_or(0, |a| a.len());
    if known != clients {
        return Err(format!(
            "the server lists {known} adjacent clients, expected {clients}"
        ));
    }
    drop(c);
    Ok(IdleReport {
        clients,
        rss_before,
        rss_busy,
        rss_after,
        settle,
    })
}

/// The bench's clients and what they have read.
struct Clients {
    poll: Poll,
    events: Events,
    conns: Vec<BenchClient>,
    scratch: Vec<u8>,
    /// Frames received so far, by every client.
    received: usize,
}

impl Clients {
    /// Read what arrives until `done` holds; past `deadline`, the error
    /// `late` words (or, if the server has exited, that).
    fn read_until(
        &mut self,
        server: &mut Proc,
        deadline: Instant,
        done: impl Fn(&Clients) -> bool,
        late: impl Fn(&Clients) -> String,
    ) -> Result<(), String> {
        while !done(self) {
            if Instant::now() > deadline {
                server.check_alive()?;
                return Err(late(self));
            }
            self.received += pump(
                &mut self.poll,
                &mut self.events,
                &mut self.conns,
                &mut self.scratch,
                Duration::from_millis(100),
            )?;
        }
        Ok(())
    }
}

fn connect(poll: &Poll, addr: SocketAddr, index: usize) -> Result<BenchClient, String> {
    let id = FIRST_ID + index as u32;
    let mut std_stream = std::net::TcpStream::connect(addr)
        .map_err(|e| format!("client {index}: cannot connect to {addr}: {e}"))?;
    std_stream
        .write_all(&wire::client_registration(id, &format!("c{index}")))
        .map_err(|e| format!("client {index}: cannot register: {e}"))?;
    std_stream
        .set_nonblocking(true)
        .map_err(|e| e.to_string())?;
    let mut stream = TcpStream::from_std(std_stream);
    poll.registry()
        .register(&mut stream, Token(index), Interest::READABLE)
        .map_err(|e| format!("client {index}: cannot poll: {e}"))?;
    Ok(BenchClient {
        stream,
        pending: Vec::new(),
        frames: 0,
    })
}

/// Read whatever the server sent within `timeout`; returns the number of
/// frames that arrived.
fn pump(
    poll: &mut Poll,
    events: &mut Events,
    conns: &mut [BenchClient],
    scratch: &mut [u8],
    timeout: Duration,
) -> Result<usize, String> {
    match poll.poll(events, Some(timeout)) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(0),
        Err(e) => return Err(e.to_string()),
    }
    let mut frames = 0;
    for event in events.iter() {
        let index = event.token().0;
        frames += drain(index, &mut conns[index], scratch)?;
    }
    Ok(frames)
}

/// Read until the socket is empty (edge-triggered) and count whole frames.
fn drain(index: usize, client: &mut BenchClient, scratch: &mut [u8]) -> Result<usize, String> {
    let mut frames = 0;
    loop {
        match client.stream.read(scratch) {
            Ok(0) => return Err(format!("client {index}: the server closed the connection")),
            Ok(n) => {
                client.pending.extend_from_slice(&scratch[..n]);
                let mut at = 0;
                while let Some((message, len)) = codec::decode(&client.pending[at..])
                    .map_err(|e| format!("client {index}: {e}"))?
                {
                    check_frame(index, client.frames, &message)?;
                    client.frames += 1;
                    frames += 1;
                    at += len;
                }
                client.pending.drain(..at);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(frames),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("client {index}: {e}")),
        }
    }
}

/// First the welcome, then only other clients' registrations.
fn check_frame(index: usize, nth: usize, message: &Message<'_>) -> Result<(), String> {
    let ok = if nth == 0 {
        wire::is_welcome(message)
    } else {
        matches!(message, Message::ClientRegistration { .. })
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "client {index}: unexpected frame #{nth} from the server: {message:?}"
        ))
    }
}
