//! Client operations (`P,key,value` / `D,key,`), the requests that carry
//! them, and batches: one slot's value is a batch of requests.

use crate::wire::Reader;
use sha1::{Digest as _, Sha1};
use std::fmt;

/// Longest operation text a client may send.
pub const MAX_OP_LEN: usize = 1024;
/// Most requests in one batch (one slot's value).
pub const MAX_BATCH_OPS: usize = 256;
/// Most encoded bytes in one batch, so a 1b carrying a few values still fits a frame.
pub const MAX_BATCH_BYTES: usize = 12 * 1024;

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
    pub fn parse(text: &str) -> Result<Op, String> {
        if text.len() > MAX_OP_LEN {
            return Err(format!(
                "operation of {} bytes is over the {MAX_OP_LEN}-byte limit",
                text.len()
            ));
        }
        let Some((kind, rest)) = text.split_once(',') else {
            return Err(format!(
                "'{}' has no comma: expected P,<key>,<value> or D,<key>,",
                short(text)
            ));
        };
        let Some((key, value)) = rest.split_once(',') else {
            return Err(format!(
                "'{}' has one comma: expected P,<key>,<value> or D,<key>,",
                short(text)
            ));
        };
        if key.is_empty() {
            return Err("the key is empty".into());
        }
        if key.chars().any(|c| c.is_control()) || value.chars().any(|c| c.is_control()) {
            return Err("control characters are not allowed in keys or values".into());
        }
        match kind {
            "P" => Ok(Op::Put {
                key: key.into(),
                value: value.into(),
            }),
            "D" if value.is_empty() => Ok(Op::Delete { key: key.into() }),
            "D" => Err(format!(
                "delete takes no value: expected D,{key}, (got value '{}')",
                short(value)
            )),
            other => Err(format!(
                "unknown operation '{}': only P (put) and D (delete)",
                short(other)
            )),
        }
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

/// One slot's value: requests in the order they are applied.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Batch {
    pub requests: Vec<Request>,
}

impl Batch {
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.requests.len() as u16).to_be_bytes());
        for r in &self.requests {
            out.extend_from_slice(&r.id.client.to_be_bytes());
            out.extend_from_slice(&r.id.seq.to_be_bytes());
            let text = r.op.to_string();
            out.extend_from_slice(&(text.len() as u16).to_be_bytes());
            out.extend_from_slice(text.as_bytes());
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }

    pub fn decode(r: &mut Reader<'_>) -> Result<Batch, String> {
        let count = r.u16()? as usize;
        if count > MAX_BATCH_OPS {
            return Err(format!("batch of {count} operations over the limit"));
        }
        let mut requests = Vec::with_capacity(count);
        for _ in 0..count {
            let client = r.u64()?;
            let seq = r.u64()?;
            let len = r.u16()? as usize;
            let text = std::str::from_utf8(r.bytes(len)?)
                .map_err(|_| "operation is not UTF-8".to_string())?;
            let op = Op::parse(text).map_err(|e| format!("bad operation in batch: {e}"))?;
            requests.push(Request {
                id: RequestId { client, seq },
                op,
            });
        }
        Ok(Batch { requests })
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Batch, String> {
        let mut r = Reader::new(bytes);
        let batch = Batch::decode(&mut r)?;
        r.finish()?;
        Ok(batch)
    }

    pub fn digest(&self) -> Digest {
        sha1(&self.to_bytes())
    }

    /// Bytes this request adds to an encoded batch.
    pub fn request_cost(request: &Request) -> usize {
        18 + request.op.to_string().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(Op::parse("X,a,b")
            .unwrap_err()
            .contains("unknown operation"));
        assert!(Op::parse("Pab").unwrap_err().contains("no comma"));
        assert!(Op::parse("P,ab").unwrap_err().contains("one comma"));
        assert!(Op::parse("P,,b").unwrap_err().contains("key is empty"));
        assert!(Op::parse("D,a,b").unwrap_err().contains("no value"));
        assert!(Op::parse(&"P,a,".repeat(400))
            .unwrap_err()
            .contains("limit"));
    }

    #[test]
    fn batches_round_trip() {
        let batch = Batch {
            requests: vec![Request {
                id: RequestId { client: 7, seq: 9 },
                op: Op::parse("P,k,v").unwrap(),
            }],
        };
        assert_eq!(Batch::from_bytes(&batch.to_bytes()), Ok(batch.clone()));
        assert!(Batch::from_bytes(&batch.to_bytes()[..5]).is_err());
    }
}
