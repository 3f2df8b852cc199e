//! One TCP connection: its socket and its two buffers.

use super::ConnId;
use mio::net::TcpStream;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::Instant;

/// What a connection is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Outgoing connect in progress; `tag` goes back to the protocol.
    Connecting {
        tag: u64,
    },
    Open,
    /// The peer finished sending and the protocol let it go: closing once
    /// the write buffer is empty, then the protocol is told (`on_closed`).
    /// Sends are still taken until then.
    Finishing,
    /// Closing once the write buffer is empty; the protocol already knows
    /// (it asked, or was told of a protocol error). Sends are ignored and
    /// input is read and thrown away (so the close is not a reset).
    Draining,
}

pub struct Connection {
    /// The ID the protocol knows it by (slot and generation).
    pub id: ConnId,
    pub stream: TcpStream,
    /// Where it goes, for the logs (kept: a closed socket no longer says).
    pub peer: Option<SocketAddr>,
    pub phase: Phase,
    /// The peer finished sending (read returned 0): nothing more to read.
    pub input_ended: bool,
    /// Bytes read but not yet consumed by the protocol (a partial frame).
    pub read_buf: Vec<u8>,
    /// Bytes queued for the peer; `write_pos` of them already written.
    pub write_buf: Vec<u8>,
    pub write_pos: usize,
    /// Whether WRITABLE interest is registered.
    pub wants_write: bool,
    /// Edge-triggered readiness seen but not yet read (reading was paused).
    pub read_pending: bool,
    /// Last time the peer accepted bytes while some were pending.
    pub last_write_progress: Instant,
    /// Congested connections this one's input feeds: while any is listed,
    /// this one is not read (backpressure on exactly the feeders).
    pub waiting_on: Vec<ConnId>,
    /// Connections whose reading waits until this one drains below the soft limit.
    pub waiters: Vec<ConnId>,
}

impl Connection {
    pub fn new(id: ConnId, stream: TcpStream, peer: Option<SocketAddr>, phase: Phase) -> Self {
        Connection {
            id,
            stream,
            peer,
            phase,
            input_ended: false,
            read_buf: Vec::new(),
            write_buf: Vec::new(),
            write_pos: 0,
            wants_write: false,
            read_pending: false,
            last_write_progress: Instant::now(),
            waiting_on: Vec::new(),
            waiters: Vec::new(),
        }
    }

    /// The peer's address in words, for a log line.
    pub fn peer_label(&self) -> String {
        self.peer
            .map_or_else(|| "address unknown".to_string(), |a| a.to_string())
    }

    /// Read and throw away what has arrived (at most `budget` bytes), so
    /// that closing the socket sends a clean end of stream: closing with
    /// unread input makes the kernel reset the connection, which can lose
    /// the last answers on their way to the peer.
    pub fn discard_input(&mut self, scratch: &mut [u8], budget: usize) {
        if self.input_ended {
            return;
        }
        let mut total = 0;
        while total < budget {
            match self.stream.read(scratch) {
                Ok(0) => return,
                Ok(n) => total += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }

    pub fn pending_write(&self) -> usize {
        self.write_buf.len() - self.write_pos
    }

    pub fn queue(&mut self, data: &[u8]) {
        if self.pending_write() == 0 {
            self.last_write_progress = Instant::now();
        }
        self.write_buf.extend_from_slice(data);
    }

    /// One read into `buf`: `Some(0)` when the peer closed its end, `None`
    /// when nothing is waiting.
    pub fn read_some(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        loop {
            match self.stream.read(buf) {
                Ok(n) => return Ok(Some(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// One read of up to `chunk` bytes appended to `read_buf` (for a partial
    /// frame too long to move in front of the reactor's scratch buffer).
    pub fn read_appending(&mut self, chunk: usize) -> io::Result<Option<usize>> {
        let have = self.read_buf.len();
        self.read_buf.resize(have + chunk, 0);
        let result = loop {
            match self.stream.read(&mut self.read_buf[have..]) {
                Ok(n) => break Ok(Some(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => break Err(e),
            }
        };
        let got = match result {
            Ok(Some(n)) => n,
            _ => 0,
        };
        self.read_buf.truncate(have + got);
        result
    }

    /// Write what the socket takes of `data` now, which must come after
    /// everything queued (so nothing may be pending); returns how much it took.
    pub fn write_now(&mut self, data: &[u8]) -> io::Result<usize> {
        debug_assert_eq!(self.pending_write(), 0);
        let mut written = 0;
        while written < data.len() {
            match self.stream.write(&data[written..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // What was taken is gone; the next write meets the error again.
                Err(_) if written > 0 => break,
                Err(e) => return Err(e),
            }
        }
        if written > 0 {
            self.last_write_progress = Instant::now();
        }
        Ok(written)
    }

    /// Write as much of the write buffer as the socket takes.
    pub fn flush(&mut self) -> io::Result<()> {
        while self.write_pos < self.write_buf.len() {
            match self.stream.write(&self.write_buf[self.write_pos..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.write_pos += n;
                    self.last_write_progress = Instant::now();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        if self.write_pos == self.write_buf.len() {
            self.write_pos = 0;
            // An idle connection should cost little memory: give the buffer
            // back (one allocation per flush is nothing next to the write call).
            self.write_buf = Vec::new();
        } else if self.write_pos > 1 << 20 {
            self.write_buf.drain(..self.write_pos);
            self.write_pos = 0;
        }
        Ok(())
    }
}
