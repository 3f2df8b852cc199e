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

/// Reads big-endian fields from a body, failing cleanly on a short one.
pub struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Reader { data, at: 0 }
    }

    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.data.len() - self.at < n {
            return Err(format!(
                "truncated: wanted {n} bytes at offset {}, only {} left",
                self.at,
                self.data.len() - self.at
            ));
        }
        let slice = &self.data[self.at..self.at + n];
        self.at += n;
        Ok(slice)
    }

    pub fn u8(&mut self) -> Result<u8, String> {
        Ok(self.bytes(1)?[0])
    }

    pub fn u16(&mut self) -> Result<u16, String> {
        Ok(BigEndian::read_u16(self.bytes(2)?))
    }

    pub fn u32(&mut self) -> Result<u32, String> {
        Ok(BigEndian::read_u32(self.bytes(4)?))
    }

    pub fn u64(&mut self) -> Result<u64, String> {
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
    pub fn finish(&self) -> Result<(), String> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(format!("{n} unexpected bytes at the end")),
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

    #[test]
    fn reader_reports_truncation() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert_eq!(r.u16(), Ok(0x0102));
        assert!(r.u16().is_err());
        assert_eq!(r.u8(), Ok(3));
        assert!(r.finish().is_ok());
    }
}
