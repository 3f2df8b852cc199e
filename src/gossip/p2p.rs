//! The P2P port's messages (gossip node ⇄ gossip node), types 504–507.

use crate::wire::{write_frame, BodyCodec, BodyError, FrameError, Reader, TooLarge};
use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};

pub const PULL: u16 = 504;
pub const PULL_RESPONSE: u16 = 505;
pub const PUSH: u16 = 506;
pub const SEND_CONTENT: u16 = 507;

/// The inner message type a SEND CONTENT carries.
const INNER_ANNOUNCE: u16 = 500;

/// Largest data a SEND CONTENT can carry: outer header, inner header, TTL,
/// reserved and data type take 12 of the 65535 bytes.
pub const MAX_CONTENT_DATA: usize = u16::MAX as usize - 12;

/// Most addresses one PULL RESPONSE may list (it must fit one frame).
pub const MAX_ADDRESSES: usize = (u16::MAX as usize - 6) / 6;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum P2pMessage<'a> {
    /// Carries the sender's own listen address.
    Pull(SocketAddrV4),
    PullResponse(Vec<SocketAddrV4>),
    /// Carries the sender's own listen address.
    Push(SocketAddrV4),
    Content {
        ttl: u8,
        data_type: u16,
        data: &'a [u8],
    },
}

/// Why a P2P frame was refused (its sender's link is closed for it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum P2pError {
    /// The frame header itself is bad.
    Frame(FrameError),
    /// The body ends inside a field or runs past the last one.
    Body(BodyError),
    /// A PULL RESPONSE whose count disagrees with its length.
    AddressCount { count: usize, bytes: usize },
    /// A SEND CONTENT whose inner size is not the body's.
    InnerSize { claimed: usize, arrived: usize },
    /// A SEND CONTENT carrying something other than an ANNOUNCE.
    InnerType(u16),
    /// A type the P2P port does not carry.
    UnknownType(u16),
}

impl fmt::Display for P2pError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            P2pError::Frame(e) => e.fmt(f),
            P2pError::Body(e) => e.fmt(f),
            P2pError::AddressCount { count, bytes } => write!(
                f,
                "PULL RESPONSE lists {count} addresses but carries {bytes} bytes for them"
            ),
            P2pError::InnerSize { claimed, arrived } => write!(
                f,
                "SEND CONTENT's inner message claims {claimed} bytes but {arrived} arrived"
            ),
            P2pError::InnerType(inner) => write!(
                f,
                "SEND CONTENT carries message type {inner}, not {INNER_ANNOUNCE}"
            ),
            P2pError::UnknownType(kind) => {
                write!(f, "unknown message type {kind} on the P2P port")
            }
        }
    }
}

impl std::error::Error for P2pError {}

impl From<FrameError> for P2pError {
    fn from(e: FrameError) -> Self {
        P2pError::Frame(e)
    }
}

impl From<BodyError> for P2pError {
    fn from(e: BodyError) -> Self {
        P2pError::Body(e)
    }
}

/// The P2P port's messages on the shared framing
/// (`wire::decode_each(&Framed(P2pCodec), …)`).
pub struct P2pCodec;

impl BodyCodec for P2pCodec {
    type Message<'a> = P2pMessage<'a>;
    type Error = P2pError;
    fn decode_body<'a>(&self, kind: u16, body: &'a [u8]) -> Result<P2pMessage<'a>, P2pError> {
        decode(kind, body)
    }
}

fn read_addr(r: &mut Reader<'_>) -> Result<SocketAddrV4, BodyError> {
    let ip = r.u32()?;
    let port = r.u16()?;
    Ok(SocketAddrV4::new(Ipv4Addr::from(ip), port))
}

fn put_addr(out: &mut Vec<u8>, addr: &SocketAddrV4) {
    out.extend_from_slice(&addr.ip().octets());
    out.extend_from_slice(&addr.port().to_be_bytes());
}

pub fn decode(kind: u16, body: &[u8]) -> Result<P2pMessage<'_>, P2pError> {
    let mut r = Reader::new(body);
    let message = match kind {
        PULL => P2pMessage::Pull(read_addr(&mut r)?),
        PUSH => P2pMessage::Push(read_addr(&mut r)?),
        PULL_RESPONSE => {
            let count = r.u16()? as usize;
            if r.remaining() != count * 6 {
                return Err(P2pError::AddressCount {
                    count,
                    bytes: r.remaining(),
                });
            }
            let mut list = Vec::with_capacity(count);
            for _ in 0..count {
                list.push(read_addr(&mut r)?);
            }
            P2pMessage::PullResponse(list)
        }
        SEND_CONTENT => {
            let size = r.u16()? as usize;
            let inner = r.u16()?;
            if size != body.len() {
                return Err(P2pError::InnerSize {
                    claimed: size,
                    arrived: body.len(),
                });
            }
            if inner != INNER_ANNOUNCE {
                return Err(P2pError::InnerType(inner));
            }
            let ttl = r.u8()?;
            let _reserved = r.u8()?;
            let data_type = r.u16()?;
            P2pMessage::Content {
                ttl,
                data_type,
                data: r.rest(),
            }
        }
        other => return Err(P2pError::UnknownType(other)),
    };
    r.finish()?;
    Ok(message)
}

pub fn write_pull(out: &mut Vec<u8>, own: &SocketAddrV4) {
    write_frame(out, PULL, |o| put_addr(o, own)).expect("a PULL is 10 bytes");
}

pub fn write_push(out: &mut Vec<u8>, own: &SocketAddrV4) {
    write_frame(out, PUSH, |o| put_addr(o, own)).expect("a PUSH is 10 bytes");
}

/// A PULL RESPONSE listing at most [`MAX_ADDRESSES`] of `addrs`.
pub fn write_pull_response(out: &mut Vec<u8>, addrs: &[SocketAddrV4]) {
    let addrs = &addrs[..addrs.len().min(MAX_ADDRESSES)];
    write_frame(out, PULL_RESPONSE, |o| {
        o.extend_from_slice(&(addrs.len() as u16).to_be_bytes());
        for addr in addrs {
            put_addr(o, addr);
        }
    })
    .expect("the address list was cut to fit");
}

pub fn write_content(
    out: &mut Vec<u8>,
    ttl: u8,
    data_type: u16,
    data: &[u8],
) -> Result<(), TooLarge> {
    write_frame(out, SEND_CONTENT, |o| {
        let inner = (8 + data.len()).min(u16::MAX as usize) as u16;
        o.extend_from_slice(&inner.to_be_bytes());
        o.extend_from_slice(&INNER_ANNOUNCE.to_be_bytes());
        o.push(ttl);
        o.push(0);
        o.extend_from_slice(&data_type.to_be_bytes());
        o.extend_from_slice(data);
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::split_frame;

    fn addr(port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 1), port)
    }

    fn decode_all(bytes: &[u8]) -> P2pMessage<'_> {
        let frame = split_frame(bytes).unwrap().unwrap();
        assert_eq!(frame.len, bytes.len());
        decode(frame.kind, frame.body).unwrap()
    }

    #[test]
    fn messages_roundtrip_with_the_seed_layout() {
        let mut out = Vec::new();
        write_pull(&mut out, &addr(6001));
        assert_eq!(out, [0, 10, 1, 248, 127, 0, 0, 1, 0x17, 0x71]);
        assert_eq!(decode_all(&out), P2pMessage::Pull(addr(6001)));
        out.clear();
        write_push(&mut out, &addr(6002));
        assert_eq!(decode_all(&out), P2pMessage::Push(addr(6002)));
        out.clear();
        write_pull_response(&mut out, &[addr(1), addr(2)]);
        assert_eq!(out.len(), 4 + 2 + 12);
        assert_eq!(
            decode_all(&out),
            P2pMessage::PullResponse(vec![addr(1), addr(2)])
        );
        out.clear();
        write_content(&mut out, 5, 42, b"abc").unwrap();
        assert_eq!(
            out,
            [0, 15, 1, 251, 0, 11, 1, 244, 5, 0, 0, 42, b'a', b'b', b'c']
        );
        assert_eq!(
            decode_all(&out),
            P2pMessage::Content {
                ttl: 5,
                data_type: 42,
                data: b"abc"
            }
        );
    }

    #[test]
    fn a_truncated_address_list_is_an_error() {
        let mut body = vec![0, 3];
        body.extend_from_slice(&[127, 0, 0, 1, 0, 1, 127, 0, 0, 1, 0]);
        let err = decode(PULL_RESPONSE, &body).unwrap_err();
        assert_eq!(
            err,
            P2pError::AddressCount {
                count: 3,
                bytes: 11
            }
        );
        assert_eq!(
            err.to_string(),
            "PULL RESPONSE lists 3 addresses but carries 11 bytes for them"
        );
    }

    #[test]
    fn bad_content_is_an_error() {
        // Inner size disagrees with the outer frame.
        assert!(decode(SEND_CONTENT, &[0, 20, 1, 244, 0, 0, 0, 1]).is_err());
        // Inner type is not an ANNOUNCE.
        assert!(decode(SEND_CONTENT, &[0, 8, 1, 245, 0, 0, 0, 1]).is_err());
        assert!(decode(SEND_CONTENT, &[0, 8, 1, 244, 0]).is_err());
        assert!(decode(PULL, &[1, 2, 3]).is_err());
        assert_eq!(
            decode(SEND_CONTENT, &[0, 20, 1, 244, 0, 0, 0, 1])
                .unwrap_err()
                .to_string(),
            "SEND CONTENT's inner message claims 20 bytes but 8 arrived"
        );
        assert_eq!(
            decode(SEND_CONTENT, &[0, 8, 1, 245, 0, 0, 0, 1])
                .unwrap_err()
                .to_string(),
            "SEND CONTENT carries message type 501, not 500"
        );
        assert_eq!(
            decode(PULL, &[1, 2, 3]).unwrap_err().to_string(),
            "truncated: wanted 4 bytes at offset 0, only 3 left"
        );
        assert_eq!(
            decode(503, &[]).unwrap_err().to_string(),
            "unknown message type 503 on the P2P port"
        );
    }

    #[test]
    fn a_huge_list_is_cut_to_one_frame() {
        let many: Vec<_> = (0..20_000).map(|p| addr(p as u16)).collect();
        let mut out = Vec::new();
        write_pull_response(&mut out, &many);
        match decode_all(&out) {
            P2pMessage::PullResponse(list) => assert_eq!(list.len(), MAX_ADDRESSES),
            other => panic!("{other:?}"),
        }
    }
}
