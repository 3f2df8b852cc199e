//! The client protocol (ours, on the shared 4-byte framing):
//!
//! | type | name        | body                                                    |
//! |------|-------------|---------------------------------------------------------|
//! | 651  | REQUEST     | client u64, seq u64, operation text (rest, UTF-8)       |
//! | 652  | RESULT      | client u64, seq u64, code u8, message text (rest)       |
//! | 653  | GET         | key text (rest)                                         |
//! | 654  | VALUE       | found u8, value text (rest)                             |
//! | 655  | DUMP        | (empty)                                                 |
//! | 656  | DUMP_ENTRY  | key length u16, key, value (rest)                       |
//! | 657  | DUMP_END    | entries u32, committed operations u64, log digest [20]  |
//! | 658  | INFO        | (empty)                                                 |
//! | 659  | GROUP       | n u8, f u8, quorum u8, authenticated links to peers u8  |
//!
//! (client, seq) names a request: sending it again never commits it twice.

use super::op::Digest;
use crate::wire::{write_frame, BodyCodec, BodyError, FrameError, Reader};
use std::fmt;

pub const REQUEST: u16 = 651;
pub const RESULT: u16 = 652;
pub const GET: u16 = 653;
pub const VALUE: u16 = 654;
pub const DUMP: u16 = 655;
pub const DUMP_ENTRY: u16 = 656;
pub const DUMP_END: u16 = 657;
pub const INFO: u16 = 658;
pub const GROUP: u16 = 659;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiMsg {
    /// The text stays raw bytes: a bad one gets a code-1 answer, not a closed link.
    Request {
        client: u64,
        seq: u64,
        text: Vec<u8>,
    },
    Result {
        client: u64,
        seq: u64,
        code: u8,
        message: String,
    },
    Get {
        key: String,
    },
    Value {
        value: Option<String>,
    },
    Dump,
    DumpEntry {
        key: String,
        value: String,
    },
    DumpEnd {
        entries: u32,
        committed: u64,
        digest: Digest,
    },
    /// "Who is your group?" (so a client can say what a time-out may mean).
    Info,
    Group {
        n: u8,
        f: u8,
        quorum: u8,
        links: u8,
    },
}

/// A client-protocol frame that is not a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    Frame(FrameError),
    Body(BodyError),
    TextNotUtf8,
    KeyNotUtf8,
    BadFoundFlag(u8),
    UnknownType(u16),
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::Frame(e) => e.fmt(f),
            ApiError::Body(e) => e.fmt(f),
            ApiError::TextNotUtf8 => write!(f, "text is not UTF-8"),
            ApiError::KeyNotUtf8 => write!(f, "key is not UTF-8"),
            ApiError::BadFoundFlag(flag) => write!(f, "bad found flag {flag}"),
            ApiError::UnknownType(kind) => write!(f, "unknown client message type {kind}"),
        }
    }
}

impl std::error::Error for ApiError {}

impl From<FrameError> for ApiError {
    fn from(e: FrameError) -> Self {
        ApiError::Frame(e)
    }
}

impl From<BodyError> for ApiError {
    fn from(e: BodyError) -> Self {
        ApiError::Body(e)
    }
}

/// The body decoder of the client API, both directions.
pub struct ApiCodec;

impl BodyCodec for ApiCodec {
    type Message<'a> = ApiMsg;
    type Error = ApiError;
    fn decode_body(&self, kind: u16, body: &[u8]) -> Result<ApiMsg, ApiError> {
        ApiMsg::decode(kind, body)
    }
}

fn text(r: &mut Reader<'_>) -> Result<String, ApiError> {
    String::from_utf8(r.rest().to_vec()).map_err(|_| ApiError::TextNotUtf8)
}

impl ApiMsg {
    pub fn encode(&self, out: &mut Vec<u8>) {
        let result = match self {
            ApiMsg::Request { client, seq, text } => write_frame(out, REQUEST, |o| {
                o.extend_from_slice(&client.to_be_bytes());
                o.extend_from_slice(&seq.to_be_bytes());
                o.extend_from_slice(text);
            }),
            ApiMsg::Result {
                client,
                seq,
                code,
                message,
            } => write_frame(out, RESULT, |o| {
                o.extend_from_slice(&client.to_be_bytes());
                o.extend_from_slice(&seq.to_be_bytes());
                o.push(*code);
                o.extend_from_slice(message.as_bytes());
            }),
            ApiMsg::Get { key } => write_frame(out, GET, |o| o.extend_from_slice(key.as_bytes())),
            ApiMsg::Value { value } => write_frame(out, VALUE, |o| match value {
                None => o.push(0),
                Some(v) => {
                    o.push(1);
                    o.extend_from_slice(v.as_bytes());
                }
            }),
            ApiMsg::Dump => write_frame(out, DUMP, |_| {}),
            ApiMsg::DumpEntry { key, value } => write_frame(out, DUMP_ENTRY, |o| {
                o.extend_from_slice(&(key.len() as u16).to_be_bytes());
                o.extend_from_slice(key.as_bytes());
                o.extend_from_slice(value.as_bytes());
            }),
            ApiMsg::DumpEnd {
                entries,
                committed,
                digest,
            } => write_frame(out, DUMP_END, |o| {
                o.extend_from_slice(&entries.to_be_bytes());
                o.extend_from_slice(&committed.to_be_bytes());
                o.extend_from_slice(digest);
            }),
            ApiMsg::Info => write_frame(out, INFO, |_| {}),
            ApiMsg::Group {
                n,
                f,
                quorum,
                links,
            } => write_frame(out, GROUP, |o| {
                o.extend_from_slice(&[*n, *f, *quorum, *links])
            }),
        };
        // Every field is bounded well under a frame (keys, values and
        // messages are limited), so this cannot fail; a request text the
        // user made too long is cut off instead and refused by the replica.
        if result.is_err() {
            debug_assert!(false, "API message over a frame");
        }
    }

    pub fn to_frame(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }

    pub fn decode(kind: u16, body: &[u8]) -> Result<ApiMsg, ApiError> {
        let mut r = Reader::new(body);
        let msg = match kind {
            REQUEST => ApiMsg::Request {
                client: r.u64()?,
                seq: r.u64()?,
                text: r.rest().to_vec(),
            },
            RESULT => ApiMsg::Result {
                client: r.u64()?,
                seq: r.u64()?,
                code: r.u8()?,
                message: text(&mut r)?,
            },
            GET => ApiMsg::Get { key: text(&mut r)? },
            VALUE => match r.u8()? {
                0 => ApiMsg::Value { value: None },
                1 => ApiMsg::Value {
                    value: Some(text(&mut r)?),
                },
                other => return Err(ApiError::BadFoundFlag(other)),
            },
            DUMP => ApiMsg::Dump,
            DUMP_ENTRY => {
                let len = r.u16()? as usize;
                let key =
                    String::from_utf8(r.bytes(len)?.to_vec()).map_err(|_| ApiError::KeyNotUtf8)?;
                ApiMsg::DumpEntry {
                    key,
                    value: text(&mut r)?,
                }
            }
            DUMP_END => {
                let entries = r.u32()?;
                let committed = r.u64()?;
                let mut digest = [0; 20];
                digest.copy_from_slice(r.bytes(20)?);
                ApiMsg::DumpEnd {
                    entries,
                    committed,
                    digest,
                }
            }
            INFO => ApiMsg::Info,
            GROUP => ApiMsg::Group {
                n: r.u8()?,
                f: r.u8()?,
                quorum: r.u8()?,
                links: r.u8()?,
            },
            other => return Err(ApiError::UnknownType(other)),
        };
        r.finish()?;
        Ok(msg)
    }
}

/// What a result code means, for people.
pub fn code_meaning(code: u8) -> &'static str {
    match code {
        0 => "committed",
        1 => "failed",
        2 => "failed: replica was behind and has caught up; retry",
        _ => "unknown code",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::split_frame;

    #[test]
    fn api_messages_round_trip() {
        let all = vec![
            ApiMsg::Request {
                client: 1,
                seq: 2,
                text: b"P,a,b".to_vec(),
            },
            ApiMsg::Result {
                client: 1,
                seq: 2,
                code: 0,
                message: "ok".into(),
            },
            ApiMsg::Get { key: "a".into() },
            ApiMsg::Value { value: None },
            ApiMsg::Value {
                value: Some("v".into()),
            },
            ApiMsg::Dump,
            ApiMsg::DumpEntry {
                key: "k".into(),
                value: "v,w".into(),
            },
            ApiMsg::DumpEnd {
                entries: 3,
                committed: 9,
                digest: [5; 20],
            },
            ApiMsg::Info,
            ApiMsg::Group {
                n: 4,
                f: 1,
                quorum: 3,
                links: 2,
            },
        ];
        for msg in all {
            let bytes = msg.to_frame();
            let f = split_frame(&bytes).unwrap().unwrap();
            assert_eq!(ApiMsg::decode(f.kind, f.body), Ok(msg));
        }
        let why = |kind: u16, body: &[u8]| ApiMsg::decode(kind, body).unwrap_err().to_string();
        assert_eq!(
            why(REQUEST, &[0; 15]),
            "truncated: wanted 8 bytes at offset 8, only 7 left"
        );
        assert_eq!(why(999, &[]), "unknown client message type 999");
        assert_eq!(why(VALUE, &[2]), "bad found flag 2");
        assert_eq!(why(GET, &[0xff]), "text is not UTF-8");
        assert_eq!(why(DUMP_ENTRY, &[0, 1, 0xff]), "key is not UTF-8");
        assert_eq!(why(DUMP, &[0]), "1 unexpected bytes at the end");
    }

    #[test]
    fn the_codec_decodes_whole_frames_and_refuses_a_bad_size() {
        use crate::wire::{Codec, Framed};
        let frame = ApiMsg::Get { key: "k".into() }.to_frame();
        assert_eq!(
            Framed(ApiCodec).decode(&frame),
            Ok(Some((ApiMsg::Get { key: "k".into() }, frame.len())))
        );
        assert_eq!(Framed(ApiCodec).decode(&frame[..4]), Ok(None));
        assert_eq!(
            Framed(ApiCodec).decode(&[0, 3, 2, 141]),
            Err(ApiError::Frame(FrameError::SizeTooSmall(3)))
        );
    }
}
