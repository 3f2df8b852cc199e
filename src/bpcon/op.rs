//! Client operations (`P,key,value` / `D,key,`), the requests that carry
//! them, and batches: one slot's value is a batch of requests.

use crate::wire::{BodyError, Reader};
use sha1::{Digest as _, Sha1};
use std::fmt;

/// Longest operation text a client may send.
pub const MAX_OP_LEN: usize = 1024;
/// Most encoded bytes in one batch of any group: what the tightest frame
/// that carries a whole batch leaves in the smallest group, 21,576 bytes
/// (`messages::limits`). A group's own limit is
/// `messages::limits::max_batch_bytes(n)` (14,632 bytes at 64 replicas).
pub const MAX_BATCH_BYTES: usize = crate::bpcon::messages::limits::MAX_BATCH_IN_A_FRAME;
/// What the shortest request adds to a batch (`D,k,`: ids and length, 4 bytes of text).
pub const MIN_REQUEST_COST: usize = 18 + 4;
/// Most requests in one batch (one slot's value): as many of the shortest
/// as `MAX_BATCH_BYTES` holds, so the byte limit is the one that binds
/// (980).
pub const MAX_BATCH_OPS: usize = MAX_BATCH_BYTES / MIN_REQUEST_COST;

/// A 20-byte SHA-1 digest naming a value.
pub type Digest = [u8; 20];

pub fn sha1(data: &[u8]) -> Digest {
    let mut hasher = Sha1::new();
    hasher.update(data);
    hasher.finalize().into()
}

pub use crate::util::hex;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Put { key: String, value: String },
    Delete { key: String },
}

impl Op {
    /// Parse the request text; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<Op, OpError> {
        if text.len() > MAX_OP_LEN {
            return Err(OpError::TooLong(text.len()));
        }
        let Some((kind, rest)) = text.split_once(',') else {
            return Err(OpError::NoComma(short(text)));
        };
        let Some((key, value)) = rest.split_once(',') else {
            return Err(OpError::OneComma(short(text)));
        };
        if key.is_empty() {
            return Err(OpError::EmptyKey);
        }
        if key.chars().any(|c| c.is_control()) || value.chars().any(|c| c.is_control()) {
            return Err(OpError::ControlCharacters);
        }
        match kind {
            "P" => Ok(Op::Put {
                key: key.into(),
                value: value.into(),
            }),
            "D" if value.is_empty() => Ok(Op::Delete { key: key.into() }),
            "D" => Err(OpError::DeleteWithValue {
                key: key.into(),
                value: short(value),
            }),
            other => Err(OpError::UnknownKind(short(other))),
        }
    }
}

/// What is wrong with an operation's text (the user's words, shown to
/// the client that sent it). The texts are cut to 40 bytes (`short`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpError {
    TooLong(usize),
    NoComma(String),
    OneComma(String),
    EmptyKey,
    ControlCharacters,
    DeleteWithValue { key: String, value: String },
    UnknownKind(String),
}

impl fmt::Display for OpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpError::TooLong(len) => write!(
                f,
                "operation of {len} bytes is over the {MAX_OP_LEN}-byte limit"
            ),
            OpError::NoComma(text) => write!(
                f,
                "'{text}' has no comma: expected P,<key>,<value> or D,<key>,"
            ),
            OpError::OneComma(text) => write!(
                f,
                "'{text}' has one comma: expected P,<key>,<value> or D,<key>,"
            ),
            OpError::EmptyKey => write!(f, "the key is empty"),
            OpError::ControlCharacters => {
                write!(f, "control characters are not allowed in keys or values")
            }
            OpError::DeleteWithValue { key, value } => write!(
                f,
                "delete takes no value: expected D,{key}, (got value '{value}')"
            ),
            OpError::UnknownKind(kind) => {
                write!(f, "unknown operation '{kind}': only P (put) and D (delete)")
            }
        }
    }
}

impl std::error::Error for OpError {}

/// An encoded batch that does not decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchError {
    Body(BodyError),
    TooManyOps(usize),
    NotUtf8,
    BadOp(OpError),
}

impl fmt::Display for BatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BatchError::Body(e) => e.fmt(f),
            BatchError::TooManyOps(count) => {
                write!(f, "batch of {count} operations over the limit")
            }
            BatchError::NotUtf8 => write!(f, "operation is not UTF-8"),
            BatchError::BadOp(e) => write!(f, "bad operation in batch: {e}"),
        }
    }
}

impl std::error::Error for BatchError {}

impl From<BodyError> for BatchError {
    fn from(e: BodyError) -> Self {
        BatchError::Body(e)
    }
}

fn short(text: &str) -> String {
    if text.len() <= 40 {
        text.to_string()
    } else {
        let mut end = 40;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &text[..end])
    }
}

impl Op {
    /// The parts of the text form `P,<key>,<value>` / `D,<key>,`.
    pub fn text_parts(&self) -> [&str; 4] {
        match self {
            Op::Put { key, value } => ["P,", key, ",", value],
            Op::Delete { key } => ["D,", key, ",", ""],
        }
    }

    /// Bytes of the text form, without building it (batches measure and
    /// encode thousands of operations per slot).
    pub fn text_len(&self) -> usize {
        self.text_parts().iter().map(|p| p.len()).sum()
    }

    /// Append the text form (the same bytes as `to_string`).
    pub fn write_text(&self, out: &mut Vec<u8>) {
        for part in self.text_parts() {
            out.extend_from_slice(part.as_bytes());
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Put { key, value } => write!(f, "P,{key},{value}"),
            Op::Delete { key } => write!(f, "D,{key},"),
        }
    }
}

/// Identifies a client request; a request id commits at most once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId {
    pub client: u64,
    pub seq: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub id: RequestId,
    pub op: Op,
}

/// One slot's value: requests in the order they are applied. Shared, not
/// copied: one slot's batch sits in the 1c, the relay, its WAL records,
/// the tallies and the log at once (hundreds of requests, each two
/// strings), so a clone is a reference count. Build one from a `Vec`
/// (`requests.into()`); `Arc::make_mut` changes one in place.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Batch {
    pub requests: std::sync::Arc<Vec<Request>>,
}

impl Batch {
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.requests.len() as u16).to_be_bytes());
        for r in self.requests.iter() {
            out.extend_from_slice(&r.id.client.to_be_bytes());
            out.extend_from_slice(&r.id.seq.to_be_bytes());
            out.extend_from_slice(&(r.op.text_len() as u16).to_be_bytes());
            r.op.write_text(out);
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode(&mut out);
        out
    }

    pub fn decode(r: &mut Reader<'_>) -> Result<Batch, BatchError> {
        let count = r.u16()? as usize;
        if count > MAX_BATCH_OPS {
            return Err(BatchError::TooManyOps(count));
        }
        let mut requests = Vec::with_capacity(count);
        for _ in 0..count {
            let client = r.u64()?;
            let seq = r.u64()?;
            let len = r.u16()? as usize;
            let text = std::str::from_utf8(r.bytes(len)?).map_err(|_| BatchError::NotUtf8)?;
            let op = Op::parse(text).map_err(BatchError::BadOp)?;
            requests.push(Request {
                id: RequestId { client, seq },
                op,
            });
        }
        Ok(Batch {
            requests: requests.into(),
        })
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Batch, BatchError> {
        let mut r = Reader::new(bytes);
        let batch = Batch::decode(&mut r)?;
        r.finish()?;
        Ok(batch)
    }

    pub fn digest(&self) -> Digest {
        sha1(&self.to_bytes())
    }

    /// Bytes of the encoded batch (`to_bytes().len()`), without encoding it.
    pub fn encoded_len(&self) -> usize {
        2 + self.requests.iter().map(Batch::request_cost).sum::<usize>()
    }

    /// Bytes this request adds to an encoded batch.
    pub fn request_cost(request: &Request) -> usize {
        18 + request.op.text_len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_form_is_written_without_formatting_as_display_writes_it() {
        let ops = [
            Op::parse("P,k,v").unwrap(),
            Op::parse("P,ключ,значение, с запятой").unwrap(),
            Op::parse("P,k,").unwrap(),
            Op::parse("D,k\u{e9},").unwrap(),
        ];
        let mut batch = Batch::default();
        for (seq, op) in ops.iter().enumerate() {
            let mut out = Vec::new();
            op.write_text(&mut out);
            assert_eq!(out, op.to_string().as_bytes());
            assert_eq!(op.text_len(), op.to_string().len());
            std::sync::Arc::make_mut(&mut batch.requests).push(Request {
                id: RequestId {
                    client: 1,
                    seq: seq as u64,
                },
                op: op.clone(),
            });
        }
        let bytes = batch.to_bytes();
        let cost: usize = batch.requests.iter().map(Batch::request_cost).sum();
        assert_eq!(bytes.len(), 2 + cost);
        assert_eq!(Batch::from_bytes(&bytes).unwrap(), batch);
    }

    #[test]
    fn operations_parse_or_say_why_not() {
        assert_eq!(
            Op::parse("P,a,b,c"),
            Ok(Op::Put {
                key: "a".into(),
                value: "b,c".into()
            })
        );
        assert_eq!(Op::parse("D,a,"), Ok(Op::Delete { key: "a".into() }));
        let why = |text: &str| Op::parse(text).unwrap_err().to_string();
        assert_eq!(
            why("X,a,b"),
            "unknown operation 'X': only P (put) and D (delete)"
        );
        assert_eq!(
            why("Pab"),
            "'Pab' has no comma: expected P,<key>,<value> or D,<key>,"
        );
        assert_eq!(
            why("P,ab"),
            "'P,ab' has one comma: expected P,<key>,<value> or D,<key>,"
        );
        assert_eq!(why("P,,b"), "the key is empty");
        assert_eq!(
            why("P,a\tb,c"),
            "control characters are not allowed in keys or values"
        );
        assert_eq!(
            why("D,a,b"),
            "delete takes no value: expected D,a, (got value 'b')"
        );
        assert_eq!(
            why(&"P,a,".repeat(400)),
            "operation of 1600 bytes is over the 1024-byte limit"
        );
        assert_eq!(
            why(&"x".repeat(50)),
            format!(
                "'{}...' has no comma: expected P,<key>,<value> or D,<key>,",
                "x".repeat(40)
            )
        );
    }

    #[test]
    fn batches_round_trip() {
        let batch = Batch {
            requests: vec![Request {
                id: RequestId { client: 7, seq: 9 },
                op: Op::parse("P,k,v").unwrap(),
            }]
            .into(),
        };
        assert_eq!(Batch::from_bytes(&batch.to_bytes()), Ok(batch.clone()));
        assert!(matches!(
            Batch::from_bytes(&batch.to_bytes()[..5]),
            Err(BatchError::Body(BodyError::Truncated { .. }))
        ));
        let mut bad = batch.to_bytes();
        let last = bad.len() - 1;
        bad[last] = 0xff;
        assert_eq!(
            Batch::from_bytes(&bad).unwrap_err().to_string(),
            "operation is not UTF-8"
        );
        let mut many = batch.to_bytes();
        many[..2].copy_from_slice(&((MAX_BATCH_OPS + 1) as u16).to_be_bytes());
        assert_eq!(
            Batch::from_bytes(&many).unwrap_err().to_string(),
            format!("batch of {} operations over the limit", MAX_BATCH_OPS + 1)
        );
    }
}
