//! What went over each socket, for people: a wire trace file and decoded
//! frame lines in the debug log.
//!
//! The trace (asked for with the `PEERLOOP_TRACE` environment variable,
//! which `peerloop test --report` sets for every machine it starts) has one
//! line per chunk queued for or read from a connection:
//!
//! ```text
//! <µs since 1970> <S|R> <local addr> <peer addr> <offset> <len> <hex bytes>
//! ```
//!
//! `offset` counts the bytes of that direction of the connection before
//! this chunk, so the report matches the sender's `S` line with the
//! receiver's `R` line by (sender address → receiver address, offset)
//! without any help from the protocol. The clock is the wall clock of the
//! `--log-file` lines.
//!
//! Independently, when the debug level is on and the node named a
//! [`Describer`], every whole frame sent or received is logged as one line
//! with its decoded fields.

use super::ConnId;
use log::debug;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

/// The environment variable naming the trace file.
pub const TRACE_ENV: &str = "PEERLOOP_TRACE";

/// What a protocol's describer found at the start of a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Described {
    /// A whole frame of `len` bytes: a short label (`CHAT 101→104 "Bye"`)
    /// and its fields in full.
    Frame {
        len: usize,
        label: String,
        fields: String,
    },
    /// Not all of the frame is there yet.
    Incomplete,
    /// Not a frame of this protocol (the rest of this stream is not described).
    Bad(String),
}

/// Cuts one frame off the start of a byte stream and says what it is,
/// using only the protocol's public decoders.
pub type Describer = fn(&[u8]) -> Described;

/// Bytes kept per direction while waiting for the rest of a frame; frames
/// are at most 64 KiB in every protocol here.
const MAX_PENDING: usize = 128 * 1024;

#[derive(Default)]
struct Direction {
    /// Bytes of this direction so far (the next chunk's offset).
    offset: u64,
    /// The start of a frame not yet whole (debug log only).
    pending: Vec<u8>,
    /// The describer gave up on this direction.
    broken: bool,
}

#[derive(Default)]
struct Stream {
    local: Option<SocketAddr>,
    sent: Direction,
    received: Direction,
}

#[derive(Default)]
pub struct Trace {
    file: Option<BufWriter<File>>,
    describer: Option<Describer>,
    streams: HashMap<ConnId, Stream>,
}

fn now_micros() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0)
}

impl Trace {
    /// A trace writing to the file `PEERLOOP_TRACE` names, if it is set
    /// (a file that can't be created is said once, and there is no trace).
    pub fn from_env() -> Trace {
        let file = std::env::var_os(TRACE_ENV).and_then(|path| match File::create(&path) {
            Ok(f) => Some(BufWriter::new(f)),
            Err(e) => {
                log::warn!(
                    "cannot create the trace file {}: {e}",
                    path.to_string_lossy()
                );
                None
            }
        });
        Trace {
            file,
            ..Trace::default()
        }
    }

    pub fn set_describer(&mut self, describer: Describer) {
        self.describer = Some(describer);
    }

    /// Is there anything to do for a chunk? (Checked before any work.)
    pub fn active(&self) -> bool {
        self.file.is_some() || (self.describer.is_some() && log::log_enabled!(log::Level::Debug))
    }

    /// `data` was queued for `peer` on connection `id`.
    pub fn sent(
        &mut self,
        id: ConnId,
        local: impl FnOnce() -> Option<SocketAddr>,
        peer: Option<SocketAddr>,
        data: &[u8],
    ) {
        self.chunk(id, local, peer, data, true);
    }

    /// `data` was read from `peer` on connection `id`.
    pub fn received(
        &mut self,
        id: ConnId,
        local: impl FnOnce() -> Option<SocketAddr>,
        peer: Option<SocketAddr>,
        data: &[u8],
    ) {
        self.chunk(id, local, peer, data, false);
    }

    /// Connection `id` is gone: its offsets start again with its slot's next tenant.
    pub fn forget(&mut self, id: ConnId) {
        self.streams.remove(&id);
    }

    fn chunk(
        &mut self,
        id: ConnId,
        local: impl FnOnce() -> Option<SocketAddr>,
        peer: Option<SocketAddr>,
        data: &[u8],
        sending: bool,
    ) {
        if data.is_empty() || !self.active() {
            return;
        }
        let stream = self.streams.entry(id).or_default();
        if stream.local.is_none() {
            stream.local = local();
        }
        let local = stream.local;
        let direction = if sending {
            &mut stream.sent
        } else {
            &mut stream.received
        };
        if let Some(file) = &mut self.file {
            let mut line = String::with_capacity(64 + data.len() * 2);
            let show = |a: Option<SocketAddr>| a.map_or_else(|| "-".to_string(), |a| a.to_string());
            let _ = write!(
                line,
                "{} {} {} {} {} {} ",
                now_micros(),
                if sending { 'S' } else { 'R' },
                show(local),
                show(peer),
                direction.offset,
                data.len()
            );
            for b in data {
                let _ = write!(line, "{b:02x}");
            }
            line.push('\n');
            // Flushed line by line: a machine killed without warning keeps its trace.
            let _ = file.write_all(line.as_bytes()).and_then(|_| file.flush());
        }
        direction.offset += data.len() as u64;
        if let Some(describe) = self.describer {
            if log::log_enabled!(log::Level::Debug) && !direction.broken {
                log_frames(describe, direction, data, sending, peer);
            }
        }
    }
}

/// One debug line per whole frame in `pending` + `data`.
fn log_frames(
    describe: Describer,
    direction: &mut Direction,
    data: &[u8],
    sending: bool,
    peer: Option<SocketAddr>,
) {
    direction.pending.extend_from_slice(data);
    let peer = peer.map_or_else(|| "address unknown".to_string(), |a| a.to_string());
    let mut at = 0;
    while at < direction.pending.len() {
        match describe(&direction.pending[at..]) {
            Described::Frame { len, label, fields } => {
                if sending {
                    debug!("sent to {peer}: {label} ({fields})");
                } else {
                    debug!("received from {peer}: {label} ({fields})");
                }
                at += len.max(1);
            }
            Described::Incomplete => break,
            Described::Bad(why) => {
                debug!("frames from here on are not described ({peer}): {why}");
                direction.broken = true;
                direction.pending = Vec::new();
                return;
            }
        }
    }
    direction.pending.drain(..at.min(direction.pending.len()));
    if direction.pending.len() > MAX_PENDING {
        direction.broken = true;
        direction.pending = Vec::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_byte_frames(buf: &[u8]) -> Described {
        match buf.first() {
            None => Described::Incomplete,
            Some(0xff) => Described::Bad("0xff".into()),
            Some(&n) if buf.len() > n as usize => Described::Frame {
                len: n as usize + 1,
                label: format!("F{n}"),
                fields: String::new(),
            },
            Some(_) => Described::Incomplete,
        }
    }

    #[test]
    fn frames_split_over_chunks_are_described_once_whole_and_the_buffer_is_bounded() {
        let mut d = Direction::default();
        log_frames(one_byte_frames, &mut d, &[2, 9], true, None);
        assert_eq!(d.pending, vec![2, 9], "a partial frame waits");
        log_frames(one_byte_frames, &mut d, &[9, 0, 1], true, None);
        assert_eq!(
            d.pending,
            vec![1],
            "two whole frames taken, one partial left"
        );
        log_frames(one_byte_frames, &mut d, &[5, 0xff], true, None);
        assert!(d.broken && d.pending.is_empty());
    }

    #[test]
    fn offsets_count_each_direction_of_each_connection() {
        let path = std::env::temp_dir().join(format!("peerloop-trace-{}", std::process::id()));
        let mut t = Trace {
            file: Some(BufWriter::new(File::create(&path).unwrap())),
            ..Trace::default()
        };
        let a: SocketAddr = "127.0.0.1:1000".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:2000".parse().unwrap();
        t.sent(7, || Some(a), Some(b), b"ab");
        t.sent(7, || None, Some(b), b"c");
        t.received(7, || None, Some(b), b"xyz");
        t.forget(7);
        t.sent(7, || Some(a), Some(b), b"d");
        drop(t);
        let text = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        let fields: Vec<Vec<&str>> = text
            .lines()
            .map(|l| l.split(' ').skip(1).collect())
            .collect();
        assert_eq!(
            fields[0],
            ["S", "127.0.0.1:1000", "127.0.0.1:2000", "0", "2", "6162"]
        );
        assert_eq!(
            fields[1],
            ["S", "127.0.0.1:1000", "127.0.0.1:2000", "2", "1", "63"]
        );
        assert_eq!(
            fields[2],
            ["R", "127.0.0.1:1000", "127.0.0.1:2000", "0", "3", "78797a"]
        );
        assert_eq!(fields[3][3], "0", "a new connection starts at 0");
    }
}
