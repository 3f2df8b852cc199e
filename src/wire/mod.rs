//! The 4-byte framing shared by the Gossip, DHT, Chord and BPCon messages:
//! `size (u16, whole message) | type (u16) | body`, big-endian.

use byteorder::{BigEndian, ByteOrder};
use std::fmt;

pub const HEADER_LEN: usize = 4;
pub const MAX_FRAME: usize = u16::MAX as usize;

/// A framing error: the connection that sent it must be closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// `size` below the 4-byte header.
    SizeTooSmall(u16),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::SizeTooSmall(size) => {
                write!(f, "message size {size} is under the 4-byte header")
            }
        }
    }
}

/// One whole frame found at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    pub kind: u16,
    pub body: &'a [u8],
    /// Bytes of the buffer this frame used.
    pub len: usize,
}

/// Find the frame at the start of `buf`: `Ok(None)` until all of it is there.
pub fn split_frame(buf: &[u8]) -> Result<Option<Frame<'_>>, FrameError> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    let size = BigEndian::read_u16(&buf[0..2]);
    if (size as usize) < HEADER_LEN {
        return Err(FrameError::SizeTooSmall(size));
    }
    let size = size as usize;
    if buf.len() < size {
        return Ok(None);
    }
    Ok(Some(Frame {
        kind: BigEndian::read_u16(&buf[2..4]),
        body: &buf[HEADER_LEN..size],
        len: size,
    }))
}

/// Error for a body that would make a frame over 65535 bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooLarge(pub usize);

impl fmt::Display for TooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a message of {} bytes exceeds the 65535-byte limit",
            self.0
        )
    }
}

/// Append a frame of `kind` whose body `fill` writes.
pub fn write_frame(
    out: &mut Vec<u8>,
    kind: u16,
    fill: impl FnOnce(&mut Vec<u8>),
) -> Result<(), TooLarge> {
    let start = out.len();
    out.extend_from_slice(&[0, 0, 0, 0]);
    BigEndian::write_u16(&mut out[start + 2..start + 4], kind);
    fill(out);
    let size = out.len() - start;
    if size > MAX_FRAME {
        out.truncate(start);
        return Err(TooLarge(size));
    }
    BigEndian::write_u16(&mut out[start..start + 2], size as u16);
    Ok(())
}

/// A frame as its own Vec.
pub fn frame(kind: u16, body: &[u8]) -> Result<Vec<u8>, TooLarge> {
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    write_frame(&mut out, kind, |o| o.extend_from_slice(body))?;
    Ok(out)
}

/// A body that does not hold the fields its type says it has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// The body ended inside a field.
    Truncated {
        wanted: usize,
        at: usize,
        left: usize,
    },
    /// Bytes left over after the last field.
    Trailing(usize),
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyError::Truncated { wanted, at, left } => write!(
                f,
                "truncated: wanted {wanted} bytes at offset {at}, only {left} left"
            ),
            BodyError::Trailing(n) => write!(f, "{n} unexpected bytes at the end"),
        }
    }
}

impl std::error::Error for BodyError {}

impl std::error::Error for FrameError {}

/// Reads big-endian fields from a body, failing cleanly on a short one.
pub struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Reader { data, at: 0 }
    }

    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], BodyError> {
        let left = self.data.len() - self.at;
        if left < n {
            return Err(BodyError::Truncated {
                wanted: n,
                at: self.at,
                left,
            });
        }
        let slice = &self.data[self.at..self.at + n];
        self.at += n;
        Ok(slice)
    }

    pub fn u8(&mut self) -> Result<u8, BodyError> {
        Ok(self.bytes(1)?[0])
    }

    pub fn u16(&mut self) -> Result<u16, BodyError> {
        Ok(BigEndian::read_u16(self.bytes(2)?))
    }

    pub fn u32(&mut self) -> Result<u32, BodyError> {
        Ok(BigEndian::read_u32(self.bytes(4)?))
    }

    pub fn u64(&mut self) -> Result<u64, BodyError> {
        Ok(BigEndian::read_u64(self.bytes(8)?))
    }

    /// Everything not read yet.
    pub fn rest(&mut self) -> &'a [u8] {
        let slice = &self.data[self.at..];
        self.at = self.data.len();
        slice
    }

    pub fn remaining(&self) -> usize {
        self.data.len() - self.at
    }

    /// Fail unless every byte was read.
    pub fn finish(&self) -> Result<(), BodyError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(BodyError::Trailing(n)),
        }
    }
}

/// A protocol's decoder for the messages one kind of connection carries:
/// the message at the start of a buffer and the bytes it used, `Ok(None)`
/// until all of it has arrived. Every protocol's input goes through one of
/// these and [`decode_each`], so the frame loop is written once. The wire
/// framing above is [`Framed`] around a [`BodyCodec`]; CRC, with its own
/// framing, implements `Codec` directly.
pub trait Codec {
    type Message<'a>;
    type Error: fmt::Display;
    fn decode<'a>(&self, buf: &'a [u8]) -> Result<Option<(Self::Message<'a>, usize)>, Self::Error>;
}

/// The body decoder of one of the protocols on the shared framing.
pub trait BodyCodec {
    type Message<'a>;
    /// Must say what a bad frame header is too.
    type Error: fmt::Display + From<FrameError>;
    fn decode_body<'a>(&self, kind: u16, body: &'a [u8]) -> Result<Self::Message<'a>, Self::Error>;
}

/// A [`BodyCodec`] on the shared `size | type | body` framing.
pub struct Framed<B>(pub B);

impl<B: BodyCodec> Codec for Framed<B> {
    type Message<'a> = B::Message<'a>;
    type Error = B::Error;
    fn decode<'a>(&self, buf: &'a [u8]) -> Result<Option<(B::Message<'a>, usize)>, B::Error> {
        match split_frame(buf)? {
            None => Ok(None),
            Some(frame) => Ok(Some((
                self.0.decode_body(frame.kind, frame.body)?,
                frame.len,
            ))),
        }
    }
}

/// How a run of input ended, when it did not simply run out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stopped<D, H> {
    /// A message did not decode: the connection must be closed.
    Decode(D),
    /// The handler asked to stop (it closed the connection, say).
    Handler(H),
}

/// Decode every whole message at the front of `data` and hand each, in
/// order, to `on_message`, until the data runs out (a partial message is
/// left for the next read), a message does not decode, or the handler
/// breaks. Returns the bytes used by the messages handed over (the one the
/// handler broke on included, a message that did not decode not), so the
/// answers to the frames before a bad one can still be flushed.
pub fn decode_each<C: Codec, H>(
    codec: &C,
    data: &[u8],
    mut on_message: impl FnMut(C::Message<'_>) -> std::ops::ControlFlow<H>,
) -> (usize, Option<Stopped<C::Error, H>>) {
    let mut used = 0;
    loop {
        match codec.decode(&data[used..]) {
            Ok(None) => return (used, None),
            Err(e) => return (used, Some(Stopped::Decode(e))),
            Ok(Some((message, len))) => {
                // A codec must make progress, or this loop never ends.
                debug_assert!(len > 0, "a codec returned a zero-length message");
                used += len.max(1);
                if let std::ops::ControlFlow::Break(h) = on_message(message) {
                    return (used, Some(Stopped::Handler(h)));
                }
            }
        }
    }
}

/// The frame at the start of `buf`, described by `decode` (its kind and
/// body in; a short label and the fields out), for the debug log and the
/// run report. A frame the decoder refuses is still one frame, labelled bad.
pub fn describe_frame(
    buf: &[u8],
    decode: impl FnOnce(u16, &[u8]) -> Result<(String, String), String>,
) -> crate::reactor::Described {
    use crate::reactor::Described;
    let frame = match split_frame(buf) {
        Ok(Some(frame)) => frame,
        Ok(None) => return Described::Incomplete,
        Err(e) => return Described::Bad(e.to_string()),
    };
    let (label, fields) = decode(frame.kind, frame.body)
        .unwrap_or_else(|e| (format!("type {} (bad)", frame.kind), e));
    Described::Frame {
        len: frame.len,
        label,
        fields,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_found_whole_or_not_at_all() {
        let bytes = frame(501, &[0, 0, 0, 7]).unwrap();
        assert_eq!(bytes, vec![0, 8, 1, 245, 0, 0, 0, 7]);
        for cut in 0..bytes.len() {
            assert_eq!(split_frame(&bytes[..cut]), Ok(None));
        }
        let mut two = bytes.clone();
        two.extend_from_slice(&bytes);
        let first = split_frame(&two).unwrap().unwrap();
        assert_eq!(
            (first.kind, first.body, first.len),
            (501, &[0, 0, 0, 7][..], 8)
        );
    }

    #[test]
    fn a_size_under_the_header_is_an_error() {
        assert_eq!(
            split_frame(&[0, 3, 1, 245]),
            Err(FrameError::SizeTooSmall(3))
        );
    }

    #[test]
    fn an_oversized_body_is_refused_and_leaves_nothing_behind() {
        let mut out = vec![9];
        assert!(write_frame(&mut out, 1, |o| o.resize(o.len() + 70_000, 0)).is_err());
        assert_eq!(out, vec![9]);
    }

    /// A toy body codec: kind 1 carries a u16, anything else is refused.
    struct Numbers;

    #[derive(Debug, PartialEq)]
    enum NumberError {
        Frame(FrameError),
        Body(BodyError),
        Kind(u16),
    }

    impl fmt::Display for NumberError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "{self:?}")
        }
    }

    impl From<FrameError> for NumberError {
        fn from(e: FrameError) -> Self {
            NumberError::Frame(e)
        }
    }

    impl BodyCodec for Numbers {
        type Message<'a> = u16;
        type Error = NumberError;
        fn decode_body(&self, kind: u16, body: &[u8]) -> Result<u16, NumberError> {
            if kind != 1 {
                return Err(NumberError::Kind(kind));
            }
            let mut r = Reader::new(body);
            let n = r.u16().map_err(NumberError::Body)?;
            r.finish().map_err(NumberError::Body)?;
            Ok(n)
        }
    }

    fn number(n: u16) -> Vec<u8> {
        frame(1, &n.to_be_bytes()).unwrap()
    }

    #[test]
    fn decode_each_hands_over_whole_messages_and_leaves_a_partial_one() {
        let mut data = [number(7), number(8), number(9)].concat();
        data.truncate(data.len() - 1);
        let mut seen = Vec::new();
        let (used, stopped) = decode_each(&Framed(Numbers), &data, |n| {
            seen.push(n);
            std::ops::ControlFlow::<()>::Continue(())
        });
        assert_eq!((seen, used, stopped), (vec![7, 8], 12, None));
    }

    #[test]
    fn decode_each_stops_at_a_bad_message_after_the_good_ones() {
        let data = [
            number(7),
            frame(2, &[0, 1]).unwrap(),
            number(9),
            frame(1, &[0]).unwrap(),
        ]
        .concat();
        let mut seen = Vec::new();
        let (used, stopped) = decode_each(&Framed(Numbers), &data, |n| {
            seen.push(n);
            std::ops::ControlFlow::<()>::Continue(())
        });
        assert_eq!(seen, vec![7]);
        assert_eq!(used, 6);
        assert_eq!(stopped, Some(Stopped::Decode(NumberError::Kind(2))));
        let (used, stopped) = decode_each(&Framed(Numbers), &data[12..], |_| {
            std::ops::ControlFlow::<()>::Continue(())
        });
        assert_eq!(used, 6);
        assert_eq!(
            stopped,
            Some(Stopped::Decode(NumberError::Body(BodyError::Truncated {
                wanted: 2,
                at: 0,
                left: 1
            })))
        );
        let bad_size = decode_each(&Framed(Numbers), &[0, 2, 0, 1], |_| {
            std::ops::ControlFlow::<()>::Continue(())
        });
        assert_eq!(
            bad_size,
            (
                0,
                Some(Stopped::Decode(NumberError::Frame(
                    FrameError::SizeTooSmall(2)
                )))
            )
        );
    }

    #[test]
    fn decode_each_stops_where_the_handler_says() {
        let data = [number(1), number(2), number(3)].concat();
        let (used, stopped) = decode_each(&Framed(Numbers), &data, |n| {
            if n == 2 {
                std::ops::ControlFlow::Break("closed")
            } else {
                std::ops::ControlFlow::Continue(())
            }
        });
        assert_eq!((used, stopped), (12, Some(Stopped::Handler("closed"))));
    }

    #[test]
    fn reader_reports_truncation() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert_eq!(r.u16(), Ok(0x0102));
        assert!(r.u16().is_err());
        assert_eq!(r.u8(), Ok(3));
        assert!(r.finish().is_ok());
    }
}
