//! The course's DHT API on the shared framing: PUT 650, GET 651,
//! SUCCESS 652, FAILURE 653.

use crate::wire::{write_frame, BodyCodec, BodyError, FrameError, Reader, TooLarge};
use std::fmt;

pub const DHT_PUT: u16 = 650;
pub const DHT_GET: u16 = 651;
pub const DHT_SUCCESS: u16 = 652;
pub const DHT_FAILURE: u16 = 653;

pub const KEY_LEN: usize = 32;
/// The largest value a PUT may carry: what the ring can move between nodes
/// in one STORE frame (65,481 bytes), not what fits in a PUT frame (65,495).
/// A larger PUT is refused and logged.
pub const MAX_VALUE: usize = super::peer_wire::MAX_STORE_VALUE;

pub type Key = [u8; KEY_LEN];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiMsg {
    Put {
        ttl: u16,
        replication: u8,
        key: Key,
        value: Vec<u8>,
    },
    Get {
        key: Key,
    },
    Success {
        key: Key,
        value: Vec<u8>,
    },
    Failure {
        key: Key,
    },
}

/// Why a frame on the DHT API port is not a DHT API message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiWireError {
    /// The frame header is wrong.
    Frame(FrameError),
    /// The body is short, or longer than its fields.
    Body(BodyError),
    UnknownType(u16),
}

impl fmt::Display for ApiWireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiWireError::Frame(e) => write!(f, "{e}"),
            ApiWireError::Body(e) => write!(f, "{e}"),
            ApiWireError::UnknownType(kind) => write!(f, "unknown DHT message type {kind}"),
        }
    }
}

impl std::error::Error for ApiWireError {}

impl From<BodyError> for ApiWireError {
    fn from(e: BodyError) -> Self {
        ApiWireError::Body(e)
    }
}

impl From<FrameError> for ApiWireError {
    fn from(e: FrameError) -> Self {
        ApiWireError::Frame(e)
    }
}

/// The DHT API as a [`BodyCodec`] (wrap it in [`crate::wire::Framed`] to
/// read frames).
pub struct ApiCodec;

impl BodyCodec for ApiCodec {
    type Message<'a> = ApiMsg;
    type Error = ApiWireError;
    fn decode_body(&self, kind: u16, body: &[u8]) -> Result<ApiMsg, ApiWireError> {
        ApiMsg::decode(kind, body)
    }
}

fn read_key(r: &mut Reader) -> Result<Key, ApiWireError> {
    let mut key = [0; KEY_LEN];
    key.copy_from_slice(r.bytes(KEY_LEN)?);
    Ok(key)
}

impl ApiMsg {
    pub fn write(&self, out: &mut Vec<u8>) -> Result<(), TooLarge> {
        match self {
            ApiMsg::Put {
                ttl,
                replication,
                key,
                value,
            } => write_frame(out, DHT_PUT, |o| {
                o.extend_from_slice(&ttl.to_be_bytes());
                o.push(*replication);
                o.push(0);
                o.extend_from_slice(key);
                o.extend_from_slice(value);
            }),
            ApiMsg::Get { key } => write_frame(out, DHT_GET, |o| o.extend_from_slice(key)),
            ApiMsg::Success { key, value } => write_frame(out, DHT_SUCCESS, |o| {
                o.extend_from_slice(key);
                o.extend_from_slice(value);
            }),
            ApiMsg::Failure { key } => write_frame(out, DHT_FAILURE, |o| o.extend_from_slice(key)),
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // Callers build messages from bounded parts; an oversized one is a bug upstream.
        self.write(&mut out).expect("DHT message within 64 KiB");
        out
    }

    pub fn decode(kind: u16, body: &[u8]) -> Result<ApiMsg, ApiWireError> {
        let mut r = Reader::new(body);
        let msg = match kind {
            DHT_PUT => {
                let ttl = r.u16()?;
                let replication = r.u8()?;
                let _reserved = r.u8()?;
                let key = read_key(&mut r)?;
                ApiMsg::Put {
                    ttl,
                    replication,
                    key,
                    value: r.rest().to_vec(),
                }
            }
            DHT_GET => ApiMsg::Get {
                key: read_key(&mut r)?,
            },
            DHT_SUCCESS => {
                let key = read_key(&mut r)?;
                ApiMsg::Success {
                    key,
                    value: r.rest().to_vec(),
                }
            }
            DHT_FAILURE => ApiMsg::Failure {
                key: read_key(&mut r)?,
            },
            other => return Err(ApiWireError::UnknownType(other)),
        };
        r.finish()?;
        Ok(msg)
    }
}

/// A key typed as text: SHA-1 of the text, then SHA-1 of that digest,
/// concatenated and cut to 32 bytes (the project has SHA-1 only).
pub fn text_key(text: &str) -> Key {
    use sha1::{Digest, Sha1};
    let first = Sha1::digest(text.as_bytes());
    let second = Sha1::digest(first);
    let mut key = [0; KEY_LEN];
    key[..20].copy_from_slice(&first);
    key[20..].copy_from_slice(&second[..12]);
    key
}

/// A key given as 64 hex digits.
pub fn hex_key(text: &str) -> Result<Key, String> {
    let text = text.trim();
    if text.len() != 2 * KEY_LEN {
        return Err(format!(
            "a hex key is 64 hex digits, not {} characters",
            text.len()
        ));
    }
    let mut key = [0; KEY_LEN];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16)
            .map_err(|_| format!("'{}' is not hex", &text[2 * i..2 * i + 2]))?;
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::split_frame;

    #[test]
    fn layouts_match_the_spec() {
        let put = ApiMsg::Put {
            ttl: 0x0102,
            replication: 3,
            key: [7; 32],
            value: b"v".to_vec(),
        }
        .to_bytes();
        assert_eq!(put.len(), 4 + 4 + 32 + 1);
        assert_eq!(&put[..8], &[0, 41, 2, 138, 1, 2, 3, 0]);
        let get = ApiMsg::Get { key: [1; 32] }.to_bytes();
        assert_eq!(&get[..4], &[0, 36, 2, 139]);
        for msg in [
            ApiMsg::Success {
                key: [2; 32],
                value: vec![1, 2],
            },
            ApiMsg::Failure { key: [3; 32] },
        ] {
            let bytes = msg.to_bytes();
            let f = split_frame(&bytes).unwrap().unwrap();
            assert_eq!(ApiMsg::decode(f.kind, f.body).unwrap(), msg);
        }
    }

    /// The text-key rule as `peerloop dht --help` and testcases/README.md
    /// state it: SHA-1 of the text (20 bytes), then the first 12 bytes of
    /// the SHA-1 of those 20 bytes.
    #[test]
    fn a_text_key_is_what_the_help_says() {
        use sha1::{Digest, Sha1};
        let first: [u8; 20] = Sha1::digest(b"colour").into();
        let second: [u8; 20] = Sha1::digest(first).into();
        let key = text_key("colour");
        assert_eq!(key[..20], first);
        assert_eq!(key[20..], second[..12]);
    }

    #[test]
    fn the_value_limit_is_what_a_store_frame_carries() {
        use crate::chord::peer_wire::{PeerMsg, StoreMsg, STORE_AS_OWNER};
        let store = |len| {
            PeerMsg::Store(StoreMsg {
                req: 1,
                flags: STORE_AS_OWNER,
                hops_left: 3,
                ttl_ms: 1,
                stamp: u64::MAX,
                key: [0; KEY_LEN],
                value: vec![0; len],
            })
        };
        let mut out = Vec::new();
        assert!(store(MAX_VALUE).write(&mut out).is_ok());
        assert!(store(MAX_VALUE + 1).write(&mut out).is_err());
        // The answers to a GET of such a value fit too.
        let success = ApiMsg::Success {
            key: [0; KEY_LEN],
            value: vec![0; MAX_VALUE],
        };
        assert!(success.write(&mut out).is_ok());
    }

    #[test]
    fn short_or_long_bodies_are_errors() {
        assert!(ApiMsg::decode(DHT_GET, &[0; 31]).is_err());
        assert!(ApiMsg::decode(DHT_GET, &[0; 33]).is_err());
        assert!(ApiMsg::decode(DHT_PUT, &[0; 35]).is_err());
        assert!(ApiMsg::decode(700, &[]).is_err());
    }

    #[test]
    fn bad_requests_are_refused_in_the_words_of_the_log() {
        use crate::wire::{Codec, Framed};
        let said = |kind, body: &[u8]| ApiMsg::decode(kind, body).unwrap_err().to_string();
        assert_eq!(said(700, &[]), "unknown DHT message type 700");
        assert_eq!(said(DHT_GET, &[0; 33]), "1 unexpected bytes at the end");
        assert_eq!(
            said(DHT_GET, &[0; 31]),
            "truncated: wanted 32 bytes at offset 0, only 31 left"
        );
        let get = ApiMsg::Get { key: [3; KEY_LEN] };
        let bytes = get.to_bytes();
        let codec = Framed(ApiCodec);
        assert_eq!(codec.decode(&bytes).unwrap(), Some((get, bytes.len())));
        assert_eq!(codec.decode(&bytes[..5]).unwrap(), None);
        assert_eq!(
            codec.decode(&[0, 2, 2, 139]).unwrap_err().to_string(),
            "message size 2 is under the 4-byte header"
        );
    }
}
