//! One TCP connection: its socket and its two buffers.

use mio::net::TcpStream;
use std::io::{self, Read, Write};
use std::time::Instant;

/// What a connection is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Outgoing connect in progress; `tag` goes back to the protocol.
    Connecting {
        tag: u64,
    },
    Open,
    /// Closing once the write buffer is empty.
    Draining,
}

pub struct Connection {
    pub stream: TcpStream,
    pub phase: Phase,
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
}

/// Outcome of reading what the socket has.
pub enum ReadOutcome {
    /// Read everything available (maybe nothing).
    Drained,
    /// Stopped because the per-turn budget was used; more may be waiting.
    Budget,
    /// The peer closed its end.
    Closed,
}

impl Connection {
    pub fn new(stream: TcpStream, phase: Phase) -> Self {
        Connection {
            stream,
            phase,
            read_buf: Vec::new(),
            write_buf: Vec::new(),
            write_pos: 0,
            wants_write: false,
            read_pending: false,
            last_write_progress: Instant::now(),
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

    /// Append what the socket has to `read_buf`, at most `budget` bytes.
    pub fn read_into_buffer(
        &mut self,
        scratch: &mut [u8],
        budget: usize,
    ) -> io::Result<ReadOutcome> {
        let mut total = 0;
        loop {
            match self.stream.read(scratch) {
                Ok(0) => return Ok(ReadOutcome::Closed),
                Ok(n) => {
                    self.read_buf.extend_from_slice(&scratch[..n]);
                    total += n;
                    if total >= budget {
                        return Ok(ReadOutcome::Budget);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(ReadOutcome::Drained),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
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
