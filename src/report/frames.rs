//! From the machines' wire traces to frames: each TCP stream is rebuilt per
//! direction, cut into frames with the protocol's own decoder, and each
//! frame's send is matched with its receive by (sender address → receiver
//! address, byte offset), exact even across processes.

use crate::reactor::{Described, Describer};
use std::collections::{BTreeMap, HashMap};

/// One line of a trace file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub micros: u64,
    pub sending: bool,
    pub local: String,
    pub peer: String,
    pub offset: u64,
    pub bytes: Vec<u8>,
}

/// Parse one trace line (see `reactor::trace`); `None` for a damaged one
/// (the last line of a machine killed mid-write, say).
pub fn parse_chunk(line: &str) -> Option<Chunk> {
    let mut parts = line.split(' ');
    let micros = parts.next()?.parse().ok()?;
    let sending = match parts.next()? {
        "S" => true,
        "R" => false,
        _ => return None,
    };
    let local = parts.next()?.to_string();
    let peer = parts.next()?.to_string();
    let offset = parts.next()?.parse().ok()?;
    let len: usize = parts.next()?.parse().ok()?;
    let hex = parts.next()?;
    if hex.len() != len.checked_mul(2)? || parts.next().is_some() {
        return None;
    }
    let bytes = (0..len)
        .map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    Some(Chunk {
        micros,
        sending,
        local,
        peer,
        offset,
        bytes,
    })
}

/// A machine's trace: its name and the describer for its protocol.
pub struct Traced {
    pub machine: String,
    pub describer: Option<Describer>,
    pub chunks: Vec<Chunk>,
}

/// Where one end of a frame is: a traced machine, or an address no trace
/// knows (the scenario runner's own connections).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum End {
    Machine(usize),
    Outside(String),
}

#[derive(Debug, Clone)]
pub struct Frame {
    pub from: End,
    pub to: End,
    pub from_addr: String,
    pub to_addr: String,
    /// When the sender queued its first byte (if the sender is traced).
    pub sent: Option<u64>,
    /// When the receiver read its last byte (if it did, and is traced).
    pub received: Option<u64>,
    pub offset: u64,
    pub label: String,
    pub fields: String,
    pub bytes: Vec<u8>,
}

impl Frame {
    /// Both ends traced and the frame arrived: an arrow from send to receive.
    pub fn matched(&self) -> bool {
        matches!((&self.from, &self.to), (End::Machine(_), End::Machine(_)))
            && self.sent.is_some()
            && self.received.is_some()
    }

    /// The first word of the label (`CHAT`, `1b`, …), for filtering.
    pub fn kind(&self) -> &str {
        self.label.split(' ').next().unwrap_or("")
    }
}

/// One direction of one connection as one side saw it: (offset, micros, bytes).
type Side = Vec<(u64, u64, Vec<u8>)>;

struct Direction {
    sender: Option<(usize, Side)>,
    receiver: Option<(usize, Side)>,
}

/// Bytes kept of each frame for the report (a frame is at most 64 KiB).
const KEPT_BYTES: usize = 512;

/// Every frame of every traced stream, in send (or receive) order.
pub fn frames(traces: &[Traced]) -> Vec<Frame> {
    // Which machine owns each local address.
    let mut owner: HashMap<&str, usize> = HashMap::new();
    for (i, t) in traces.iter().enumerate() {
        for c in &t.chunks {
            owner.entry(c.local.as_str()).or_insert(i);
        }
    }
    let mut streams: BTreeMap<(String, String), Direction> = BTreeMap::new();
    for (i, t) in traces.iter().enumerate() {
        for c in &t.chunks {
            let key = if c.sending {
                (c.local.clone(), c.peer.clone())
            } else {
                (c.peer.clone(), c.local.clone())
            };
            let d = streams.entry(key).or_insert(Direction {
                sender: None,
                receiver: None,
            });
            let side = if c.sending {
                &mut d.sender
            } else {
                &mut d.receiver
            };
            side.get_or_insert_with(|| (i, Vec::new())).1.push((
                c.offset,
                c.micros,
                c.bytes.clone(),
            ));
        }
    }
    let mut out = Vec::new();
    for ((from_addr, to_addr), mut d) in streams {
        for side in [&mut d.sender, &mut d.receiver].into_iter().flatten() {
            side.1.sort_by_key(|c| c.0);
        }
        let end = |addr: &str| match owner.get(addr) {
            Some(&m) => End::Machine(m),
            None => End::Outside(addr.to_string()),
        };
        let (from, to) = (end(&from_addr), end(&to_addr));
        // The bytes as the sender queued them, or as received when the sender is not traced.
        let Some((who, source)) = d.sender.as_ref().or(d.receiver.as_ref()) else {
            continue;
        };
        let Some(describe) = traces[*who]
            .describer
            .or_else(|| d.receiver.as_ref().and_then(|(m, _)| traces[*m].describer))
        else {
            continue;
        };
        let bytes = contiguous(source);
        let mut at = 0usize;
        while at < bytes.len() {
            let (len, label, fields) = match describe(&bytes[at..]) {
                Described::Frame { len, label, fields } if len > 0 => (len, label, fields),
                Described::Frame { .. } | Described::Incomplete => break,
                Described::Bad(why) => {
                    let rest = bytes.len() - at;
                    (rest, format!("UNDECODABLE {rest} bytes"), why)
                }
            };
            let start = at as u64;
            let last = start + len as u64 - 1;
            let sent = d.sender.as_ref().and_then(|(_, s)| time_of(s, start));
            let received = d.receiver.as_ref().and_then(|(_, s)| time_of(s, last));
            out.push(Frame {
                from: from.clone(),
                to: to.clone(),
                from_addr: from_addr.clone(),
                to_addr: to_addr.clone(),
                sent,
                received,
                offset: start,
                label,
                fields,
                bytes: bytes[at..(at + len).min(at + KEPT_BYTES)].to_vec(),
            });
            at += len;
        }
    }
    out.sort_by_key(|f| (f.sent.or(f.received).unwrap_or(0), f.offset));
    out
}

/// The stream's bytes from offset 0 up to the first gap.
fn contiguous(side: &Side) -> Vec<u8> {
    let mut bytes = Vec::new();
    for (offset, _, chunk) in side {
        let have = bytes.len() as u64;
        if *offset > have {
            break;
        }
        let skip = (have - offset) as usize;
        if skip < chunk.len() {
            bytes.extend_from_slice(&chunk[skip..]);
        }
    }
    bytes
}

/// When the chunk holding byte `at` of the stream was seen.
fn time_of(side: &Side, at: u64) -> Option<u64> {
    let i = side.partition_point(|c| c.0 <= at).checked_sub(1)?;
    let (offset, micros, bytes) = &side[i];
    (at < offset + bytes.len() as u64).then_some(*micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_byte_frames(buf: &[u8]) -> Described {
        if buf.len() < 2 {
            return Described::Incomplete;
        }
        Described::Frame {
            len: 2,
            label: format!("F{}", buf[0]),
            fields: String::new(),
        }
    }

    fn chunk(line: &str) -> Chunk {
        parse_chunk(line).unwrap()
    }

    #[test]
    fn a_send_matches_its_receive_across_chunking() {
        let a = Traced {
            machine: "a".into(),
            describer: Some(two_byte_frames),
            chunks: vec![
                chunk("100 S 127.0.0.1:1 127.0.0.1:2 0 3 010203"),
                chunk("110 S 127.0.0.1:1 127.0.0.1:2 3 1 04"),
                // Something the runner sent to a: only a's side is known.
                chunk("120 R 127.0.0.1:5 127.0.0.1:9 0 2 0909"),
            ],
        };
        let b = Traced {
            machine: "b".into(),
            describer: Some(two_byte_frames),
            chunks: vec![
                chunk("105 R 127.0.0.1:2 127.0.0.1:1 0 1 01"),
                chunk("106 R 127.0.0.1:2 127.0.0.1:1 1 2 0203"),
            ],
        };
        let frames = frames(&[a, b]);
        assert_eq!(frames.len(), 3, "{frames:?}");
        let (f1, f2) = (&frames[0], &frames[1]);
        assert_eq!(
            (f1.sent, f1.received, f1.label.as_str()),
            (Some(100), Some(106), "F1")
        );
        assert!(f1.matched());
        assert_eq!(
            (f2.sent, f2.received),
            (Some(100), None),
            "the second frame never fully arrived"
        );
        assert!(!f2.matched());
        let outside = &frames[2];
        assert_eq!(outside.from, End::Outside("127.0.0.1:9".into()));
        assert_eq!((outside.sent, outside.received), (None, Some(120)));
    }

    #[test]
    fn damaged_trace_lines_are_skipped() {
        assert!(parse_chunk("1 S a b 0 2 01").is_none(), "short hex");
        assert!(parse_chunk("1 X a b 0 1 01").is_none());
        assert!(parse_chunk("1 S a b 0 1 zz").is_none());
        assert!(parse_chunk("1 S a b 0 99999999999999999999 01").is_none());
    }
}
