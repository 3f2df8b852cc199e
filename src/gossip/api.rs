//! The API port's messages (module ⇄ gossip node), types 500–503.

use crate::wire::{write_frame, BodyCodec, BodyError, FrameError, Reader, TooLarge};
use std::fmt;

pub const ANNOUNCE: u16 = 500;
pub const NOTIFY: u16 = 501;
pub const NOTIFICATION: u16 = 502;
pub const VALIDATION: u16 = 503;

/// Largest data an ANNOUNCE can carry: 65535 minus header, TTL, reserved, type.
pub const MAX_ANNOUNCE_DATA: usize = u16::MAX as usize - 8;

/// One decoded API message; `data` borrows from the frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiMessage<'a> {
    Announce {
        ttl: u8,
        data_type: u16,
        data: &'a [u8],
    },
    Notify {
        data_type: u16,
    },
    Notification {
        msg_id: u16,
        data_type: u16,
        data: &'a [u8],
    },
    Validation {
        msg_id: u16,
        valid: bool,
    },
}

/// Why an API frame was refused (the connection is closed for it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// The frame header itself is bad.
    Frame(FrameError),
    /// The body ends inside a field or runs past the last one.
    Body(BodyError),
    /// A type the API port does not carry.
    UnknownType(u16),
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::Frame(e) => e.fmt(f),
            ApiError::Body(e) => e.fmt(f),
            ApiError::UnknownType(kind) => {
                write!(f, "unknown message type {kind} on the API port")
            }
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

/// The API port's messages on the shared framing
/// (`wire::decode_each(&Framed(ApiCodec), …)`).
pub struct ApiCodec;

impl BodyCodec for ApiCodec {
    type Message<'a> = ApiMessage<'a>;
    type Error = ApiError;
    fn decode_body<'a>(&self, kind: u16, body: &'a [u8]) -> Result<ApiMessage<'a>, ApiError> {
        decode(kind, body)
    }
}

/// Decode the body of a frame of type `kind`; anything else is an error
/// that closes the connection.
pub fn decode(kind: u16, body: &[u8]) -> Result<ApiMessage<'_>, ApiError> {
    let mut r = Reader::new(body);
    let message = match kind {
        ANNOUNCE => {
            let ttl = r.u8()?;
            let _reserved = r.u8()?;
            let data_type = r.u16()?;
            ApiMessage::Announce {
                ttl,
                data_type,
                data: r.rest(),
            }
        }
        NOTIFY => {
            let _reserved = r.u16()?;
            ApiMessage::Notify {
                data_type: r.u16()?,
            }
        }
        NOTIFICATION => {
            let msg_id = r.u16()?;
            let data_type = r.u16()?;
            ApiMessage::Notification {
                msg_id,
                data_type,
                data: r.rest(),
            }
        }
        VALIDATION => {
            let msg_id = r.u16()?;
            // 15 reserved bits, then the valid bit.
            let flags = r.u16()?;
            ApiMessage::Validation {
                msg_id,
                valid: flags & 1 == 1,
            }
        }
        other => return Err(ApiError::UnknownType(other)),
    };
    r.finish()?;
    Ok(message)
}

pub fn write_announce(
    out: &mut Vec<u8>,
    ttl: u8,
    data_type: u16,
    data: &[u8],
) -> Result<(), TooLarge> {
    write_frame(out, ANNOUNCE, |o| {
        o.push(ttl);
        o.push(0);
        o.extend_from_slice(&data_type.to_be_bytes());
        o.extend_from_slice(data);
    })
}

pub fn write_notify(out: &mut Vec<u8>, data_type: u16) -> Result<(), TooLarge> {
    write_frame(out, NOTIFY, |o| {
        o.extend_from_slice(&[0, 0]);
        o.extend_from_slice(&data_type.to_be_bytes());
    })
}

pub fn write_notification(
    out: &mut Vec<u8>,
    msg_id: u16,
    data_type: u16,
    data: &[u8],
) -> Result<(), TooLarge> {
    write_frame(out, NOTIFICATION, |o| {
        o.extend_from_slice(&msg_id.to_be_bytes());
        o.extend_from_slice(&data_type.to_be_bytes());
        o.extend_from_slice(data);
    })
}

pub fn write_validation(out: &mut Vec<u8>, msg_id: u16, valid: bool) -> Result<(), TooLarge> {
    write_frame(out, VALIDATION, |o| {
        o.extend_from_slice(&msg_id.to_be_bytes());
        o.extend_from_slice(&u16::from(valid).to_be_bytes());
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::split_frame;

    fn roundtrip(bytes: &[u8]) -> ApiMessage<'_> {
        let frame = split_frame(bytes).unwrap().unwrap();
        assert_eq!(frame.len, bytes.len());
        decode(frame.kind, frame.body).unwrap()
    }

    #[test]
    fn messages_have_the_course_layout() {
        let mut out = Vec::new();
        write_announce(&mut out, 3, 42, b"hi").unwrap();
        assert_eq!(out, [0, 10, 1, 244, 3, 0, 0, 42, b'h', b'i']);
        assert_eq!(
            roundtrip(&out),
            ApiMessage::Announce {
                ttl: 3,
                data_type: 42,
                data: b"hi"
            }
        );
        out.clear();
        write_notify(&mut out, 7).unwrap();
        assert_eq!(out, [0, 8, 1, 245, 0, 0, 0, 7]);
        out.clear();
        write_notification(&mut out, 9, 7, b"x").unwrap();
        assert_eq!(out, [0, 9, 1, 246, 0, 9, 0, 7, b'x']);
        out.clear();
        write_validation(&mut out, 9, true).unwrap();
        assert_eq!(out, [0, 8, 1, 247, 0, 9, 0, 1]);
        assert_eq!(
            roundtrip(&out),
            ApiMessage::Validation {
                msg_id: 9,
                valid: true
            }
        );
    }

    #[test]
    fn only_the_lowest_bit_is_the_verdict() {
        assert_eq!(
            decode(VALIDATION, &[0, 1, 0xff, 0xfe]),
            Ok(ApiMessage::Validation {
                msg_id: 1,
                valid: false
            })
        );
    }

    #[test]
    fn short_or_unknown_messages_are_errors() {
        assert!(decode(NOTIFY, &[0, 0, 0]).is_err());
        assert!(decode(NOTIFY, &[0, 0, 0, 1, 9]).is_err());
        assert!(decode(ANNOUNCE, &[1, 0, 0]).is_err());
        assert!(decode(VALIDATION, &[0]).is_err());
        assert_eq!(
            decode(600, &[]).unwrap_err().to_string(),
            "unknown message type 600 on the API port"
        );
        assert_eq!(
            decode(NOTIFY, &[0, 0, 0, 1, 9]).unwrap_err().to_string(),
            "1 unexpected bytes at the end"
        );
    }
}
