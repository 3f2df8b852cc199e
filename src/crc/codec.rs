//! The CRC wire format: six frame types, big-endian, no delimiters.
//! `decode` is incremental: it finds one whole frame at the start of a
//! buffer, says it needs more bytes, or rejects the input, and it checks
//! every length against [`MAX_FRAME`] before anything is allocated.

use byteorder::{BigEndian, ByteOrder};
use std::fmt::{self, Write as _};

pub const SERVER_REGISTRATION: u8 = 0x00;
pub const STATUS: u8 = 0x01;
pub const SERVER_QUIT: u8 = 0x02;
pub const CLIENT_REGISTRATION: u8 = 0x80;
pub const CLIENT_CHAT: u8 = 0x81;
pub const CLIENT_QUIT: u8 = 0x82;

/// The largest frame accepted, header included.
pub const MAX_FRAME: usize = 64 * 1024;

pub const STATUS_WELCOME: u16 = 0x00;
pub const STATUS_UNKNOWN_ID: u16 = 0x01;
pub const STATUS_DUPLICATE_ID: u16 = 0x02;

/// One decoded frame; the byte fields borrow from the input buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message<'a> {
    ServerRegistration {
        source: u32,
        last_hop: u32,
        name: &'a [u8],
        info: &'a [u8],
    },
    Status {
        source: u32,
        destination: u32,
        code: u16,
        text: &'a [u8],
    },
    ServerQuit {
        source: u32,
        replacement: u32,
        text: &'a [u8],
    },
    ClientRegistration {
        source: u32,
        last_hop: u32,
        name: &'a [u8],
        info: &'a [u8],
    },
    ClientChat {
        source: u32,
        destination: u32,
        text: &'a [u8],
    },
    ClientQuit {
        source: u32,
        text: &'a [u8],
    },
}

/// Why a byte stream is not CRC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    UnknownType(u8),
    TooLarge { kind: u8, length: u64 },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::UnknownType(kind) => write!(f, "unknown frame type 0x{kind:02x}"),
            DecodeError::TooLarge { kind, length } => write!(
                f,
                "frame type 0x{kind:02x} claims {length} bytes, over the {MAX_FRAME}-byte limit"
            ),
        }
    }
}

/// CRC's own framing as a [`crate::wire::Codec`], for
/// [`crate::wire::decode_each`]: each message comes with the bytes of its
/// frame, which servers relay and logs quote as they came.
pub struct CrcCodec;

impl crate::wire::Codec for CrcCodec {
    type Message<'a> = (Message<'a>, &'a [u8]);
    type Error = DecodeError;
    fn decode<'a>(
        &self,
        buf: &'a [u8],
    ) -> Result<Option<((Message<'a>, &'a [u8]), usize)>, DecodeError> {
        Ok(decode(buf)?.map(|(message, len)| ((message, &buf[..len]), len)))
    }
}

/// Header length (type byte included) of each frame type.
fn header_len(kind: u8) -> Option<usize> {
    match kind {
        SERVER_REGISTRATION | CLIENT_REGISTRATION => Some(12),
        STATUS => Some(15),
        SERVER_QUIT => Some(13),
        CLIENT_CHAT => Some(13),
        CLIENT_QUIT => Some(9),
        _ => None,
    }
}

/// The frame at the start of `buf`, with the number of bytes it takes.
pub fn decode(buf: &[u8]) -> Result<Option<(Message<'_>, usize)>, DecodeError> {
    let Some(&kind) = buf.first() else {
        return Ok(None);
    };
    let header = header_len(kind).ok_or(DecodeError::UnknownType(kind))?;
    if buf.len() < header {
        return Ok(None);
    }
    let u32_at = |at: usize| BigEndian::read_u32(&buf[at..at + 4]);
    let variable: u64 = match kind {
        SERVER_REGISTRATION | CLIENT_REGISTRATION => {
            buf[9] as u64 + BigEndian::read_u16(&buf[10..12]) as u64
        }
        STATUS => u32_at(11) as u64,
        SERVER_QUIT | CLIENT_CHAT => u32_at(9) as u64,
        _ => u32_at(5) as u64, // CLIENT_QUIT
    };
    let total = header as u64 + variable;
    if total > MAX_FRAME as u64 {
        return Err(DecodeError::TooLarge {
            kind,
            length: total,
        });
    }
    let total = total as usize;
    if buf.len() < total {
        return Ok(None);
    }
    let rest = &buf[header..total];
    let message = match kind {
        SERVER_REGISTRATION | CLIENT_REGISTRATION => {
            let (name, info) = rest.split_at(buf[9] as usize);
            let (source, last_hop) = (u32_at(1), u32_at(5));
            if kind == SERVER_REGISTRATION {
                Message::ServerRegistration {
                    source,
                    last_hop,
                    name,
                    info,
                }
            } else {
                Message::ClientRegistration {
                    source,
                    last_hop,
                    name,
                    info,
                }
            }
        }
        STATUS => Message::Status {
            source: u32_at(1),
            destination: u32_at(5),
            code: BigEndian::read_u16(&buf[9..11]),
            text: rest,
        },
        SERVER_QUIT => Message::ServerQuit {
            source: u32_at(1),
            replacement: u32_at(5),
            text: rest,
        },
        CLIENT_CHAT => Message::ClientChat {
            source: u32_at(1),
            destination: u32_at(5),
            text: rest,
        },
        _ => Message::ClientQuit {
            source: u32_at(1),
            text: rest,
        },
    };
    Ok(Some((message, total)))
}

/// The destination and length of the complete, valid client chat frame at
/// the start of `buf`, reading only its header: the relay's fast path.
/// None for anything else (another type, a partial or oversized frame),
/// which [`decode`] then handles; where both answer, they agree.
#[inline]
pub fn peek_chat(buf: &[u8]) -> Option<(u32, usize)> {
    const HEADER: usize = 13;
    if buf.len() < HEADER || buf[0] != CLIENT_CHAT {
        return None;
    }
    let text = BigEndian::read_u32(&buf[9..13]) as usize;
    let total = HEADER.checked_add(text)?;
    if total > MAX_FRAME || buf.len() < total {
        return None;
    }
    Some((BigEndian::read_u32(&buf[5..9]), total))
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// Append the wire form of `message`. Names are cut to 255 bytes and
/// infos to 65535 (their length fields' range).
pub fn encode(message: &Message<'_>, out: &mut Vec<u8>) {
    match *message {
        Message::ServerRegistration {
            source,
            last_hop,
            name,
            info,
        }
        | Message::ClientRegistration {
            source,
            last_hop,
            name,
            info,
        } => {
            let kind = if matches!(message, Message::ServerRegistration { .. }) {
                SERVER_REGISTRATION
            } else {
                CLIENT_REGISTRATION
            };
            let name = &name[..name.len().min(255)];
            let info = &info[..info.len().min(65535)];
            out.push(kind);
            put_u32(out, source);
            put_u32(out, last_hop);
            out.push(name.len() as u8);
            out.extend_from_slice(&(info.len() as u16).to_be_bytes());
            out.extend_from_slice(name);
            out.extend_from_slice(info);
        }
        Message::Status {
            source,
            destination,
            code,
            text,
        } => {
            out.push(STATUS);
            put_u32(out, source);
            put_u32(out, destination);
            out.extend_from_slice(&code.to_be_bytes());
            put_u32(out, text.len() as u32);
            out.extend_from_slice(text);
        }
        Message::ServerQuit {
            source,
            replacement,
            text,
        } => {
            out.push(SERVER_QUIT);
            put_u32(out, source);
            put_u32(out, replacement);
            put_u32(out, text.len() as u32);
            out.extend_from_slice(text);
        }
        Message::ClientChat {
            source,
            destination,
            text,
        } => {
            out.push(CLIENT_CHAT);
            put_u32(out, source);
            put_u32(out, destination);
            put_u32(out, text.len() as u32);
            out.extend_from_slice(text);
        }
        Message::ClientQuit { source, text } => {
            out.push(CLIENT_QUIT);
            put_u32(out, source);
            put_u32(out, text.len() as u32);
            out.extend_from_slice(text);
        }
    }
}

/// `message` as a new Vec.
pub fn to_bytes(message: &Message<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    encode(message, &mut out);
    out
}

/// Bytes as Python prints a `bytes` value (`b'\x00\x00\x00\x01rivendale'`):
/// the reference transcripts show frames this way.
pub fn python_repr(bytes: &[u8]) -> String {
    let quote = if bytes.contains(&b'\'') && !bytes.contains(&b'"') {
        '"'
    } else {
        '\''
    };
    let mut s = String::with_capacity(bytes.len() + 3);
    s.push('b');
    s.push(quote);
    for &b in bytes {
        match b {
            b'\\' => s.push_str("\\\\"),
            b'\t' => s.push_str("\\t"),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            _ if b as char == quote => {
                s.push('\\');
                s.push(quote);
            }
            0x20..=0x7e => s.push(b as char),
            _ => {
                let _ = write!(s, "\\x{b:02x}");
            }
        }
    }
    s.push(quote);
    s
}

/// The status texts of the spec, exactly.
pub fn welcome_text(client_name: &[u8]) -> Vec<u8> {
    let mut text = b"Welcome to the Clemson Relay Chat network ".to_vec();
    text.extend_from_slice(client_name);
    text
}

pub fn unknown_id_text(id: u32) -> Vec<u8> {
    format!("Unknown ID {id}").into_bytes()
}

pub fn duplicate_server_text(id: u32) -> Vec<u8> {
    format!("A machine has already registered with ID {id}").into_bytes()
}

pub fn duplicate_client_text(id: u32) -> Vec<u8> {
    format!("Someone has already registered with ID {id}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_kinds() -> Vec<Message<'static>> {
        vec![
            Message::ServerRegistration {
                source: 45678,
                last_hop: 0,
                name: b"rivendale",
                info: b"\"Elrond's House\"",
            },
            Message::Status {
                source: 1,
                destination: 0,
                code: 2,
                text: b"Someone has already registered with ID 102",
            },
            Message::ServerQuit {
                source: 3,
                replacement: 0,
                text: b"bye",
            },
            Message::ClientRegistration {
                source: 101,
                last_hop: 1,
                name: b"frodobaggins",
                info: b"\"Test info\"",
            },
            Message::ClientChat {
                source: 103,
                destination: 104,
                text: b"\"Bye Bilbo\"",
            },
            Message::ClientQuit {
                source: 104,
                text: b"",
            },
        ]
    }

    /// The relay's header-only read says what the full decoder says, on
    /// every kind of frame, every prefix of one, oversized claims and noise.
    #[test]
    fn peek_chat_agrees_with_decode_wherever_it_answers() {
        use rand::{Rng, SeedableRng};
        let mut inputs: Vec<Vec<u8>> = Vec::new();
        for message in all_kinds() {
            let bytes = to_bytes(&message);
            for cut in 0..=bytes.len() {
                inputs.push(bytes[..cut].to_vec());
            }
        }
        let mut huge = to_bytes(&all_kinds()[4]);
        huge[9..13].copy_from_slice(&u32::MAX.to_be_bytes());
        inputs.push(huge);
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..20_000 {
            let len = rng.gen_range(0..40);
            let mut noise: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            if !noise.is_empty() && rng.gen_bool(0.5) {
                noise[0] = CLIENT_CHAT;
            }
            if noise.len() >= 13 && rng.gen_bool(0.5) {
                let text = rng.gen_range(0..30u32);
                noise[9..13].copy_from_slice(&text.to_be_bytes());
            }
            inputs.push(noise);
        }
        let mut answered = 0;
        for input in &inputs {
            if let Some((destination, len)) = peek_chat(input) {
                answered += 1;
                match decode(input) {
                    Ok(Some((Message::ClientChat { destination: d, .. }, l))) => {
                        assert_eq!((destination, len), (d, l), "{input:?}")
                    }
                    other => panic!("peek_chat answered, decode said {other:?}: {input:?}"),
                }
            } else if let Ok(Some((Message::ClientChat { .. }, _))) = decode(input) {
                panic!("decode found a chat peek_chat missed: {input:?}");
            }
        }
        assert!(answered > 100, "too few chats among the inputs: {answered}");
    }

    #[test]
    fn registration_matches_the_course_bytes() {
        // 1_1_TwoConnections: what theshire must read from rivendale.
        let bytes = to_bytes(&all_kinds()[0]);
        assert_eq!(
            crate::util::hex(&bytes),
            "000000b26e00000000090010726976656e64616c6522456c726f6e64277320486f75736522"
        );
    }

    #[test]
    fn status_matches_the_reference_transcript() {
        let bytes = to_bytes(&all_kinds()[1]);
        assert_eq!(
            python_repr(&bytes),
            "b'\\x01\\x00\\x00\\x00\\x01\\x00\\x00\\x00\\x00\\x00\\x02\\x00\\x00\\x00*Someone has already registered with ID 102'"
        );
    }

    #[test]
    fn every_kind_round_trips_and_every_prefix_is_incomplete() {
        for message in all_kinds() {
            let bytes = to_bytes(&message);
            assert_eq!(decode(&bytes), Ok(Some((message, bytes.len()))));
            for cut in 0..bytes.len() {
                assert_eq!(decode(&bytes[..cut]), Ok(None), "{message:?} cut at {cut}");
            }
        }
    }

    #[test]
    fn several_frames_in_one_buffer_decode_one_by_one() {
        let mut stream = Vec::new();
        for message in all_kinds() {
            encode(&message, &mut stream);
        }
        let mut at = 0;
        let mut seen = Vec::new();
        while let Some((message, used)) = decode(&stream[at..]).unwrap() {
            seen.push(message);
            at += used;
        }
        assert_eq!(seen, all_kinds());
        assert_eq!(at, stream.len());
    }

    #[test]
    fn unknown_type_is_an_error() {
        assert_eq!(decode(&[0x7f, 0, 0]), Err(DecodeError::UnknownType(0x7f)));
    }

    #[test]
    fn a_huge_length_is_refused_from_the_header_alone() {
        // A chat claiming 4 GiB - 1 of text: refused before the text arrives.
        let header = [CLIENT_CHAT, 0, 0, 0, 1, 0, 0, 0, 2, 0xff, 0xff, 0xff, 0xff];
        assert!(matches!(decode(&header), Err(DecodeError::TooLarge { .. })));
    }

    #[test]
    fn python_repr_escapes_like_python() {
        assert_eq!(python_repr(b"\x00\tn'\\"), "b\"\\x00\\tn'\\\\\"");
        assert_eq!(python_repr(b"a\"b'"), "b'a\"b\\''");
    }
}
