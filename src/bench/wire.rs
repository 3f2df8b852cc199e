//! The bench's side of the CRC wire: the 64-byte chat frames it streams and
//! checks, and a blocking frame reader for the set-up phase.

use crate::crc::codec::{self, Message};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Every streamed chat frame is exactly this long on the wire, header included.
pub const FRAME_LEN: usize = 64;
/// Chat header: type, source, destination, text length.
const HEADER_LEN: usize = 13;
/// So the text is 51 bytes: sequence number, send stamp, then a filler
/// derived from the sequence number so any corruption shows.
pub const TEXT_LEN: usize = FRAME_LEN - HEADER_LEN;

pub const SENDER_ID: u32 = 1001;
pub const RECEIVER_ID: u32 = 1002;

/// Write chat frame `seq` (with send stamp `stamp`, 0 = not sampled) into `out`.
pub fn chat_frame(seq: u64, stamp: u64, out: &mut [u8]) {
    out[0] = codec::CLIENT_CHAT;
    out[1..5].copy_from_slice(&SENDER_ID.to_be_bytes());
    out[5..9].copy_from_slice(&RECEIVER_ID.to_be_bytes());
    out[9..13].copy_from_slice(&(TEXT_LEN as u32).to_be_bytes());
    out[13..21].copy_from_slice(&seq.to_be_bytes());
    out[21..29].copy_from_slice(&stamp.to_be_bytes());
    for (i, b) in out[29..FRAME_LEN].iter_mut().enumerate() {
        *b = b'a' + ((seq as usize + i) % 26) as u8;
    }
}

/// Check that `frame` is exactly chat frame `seq` as the sender built it;
/// returns its send stamp.
pub fn check_chat_frame(frame: &[u8], seq: u64) -> Result<u64, String> {
    if frame.len() != FRAME_LEN {
        return Err(format!(
            "frame {seq}: {} bytes, expected {FRAME_LEN}",
            frame.len()
        ));
    }
    let got_seq = u64::from_be_bytes(frame[13..21].try_into().unwrap());
    if got_seq != seq {
        return Err(format!(
            "frames out of order or lost: expected sequence number {seq}, got {got_seq}"
        ));
    }
    let stamp = u64::from_be_bytes(frame[21..29].try_into().unwrap());
    let mut expected = [0u8; FRAME_LEN];
    chat_frame(seq, stamp, &mut expected);
    if frame != expected {
        return Err(format!(
            "frame {seq} was changed in transit: {} instead of {}",
            crate::util::hex(frame),
            crate::util::hex(&expected)
        ));
    }
    Ok(stamp)
}

/// Registration frame of a bench client.
pub fn client_registration(id: u32, name: &str) -> Vec<u8> {
    codec::to_bytes(&Message::ClientRegistration {
        source: id,
        last_hop: 0,
        name: name.as_bytes(),
        info: b"",
    })
}

/// Connect to `server` and register as client `id`.
pub fn connect_client(server: SocketAddr, id: u32, name: &str) -> Result<TcpStream, String> {
    let mut stream =
        TcpStream::connect(server).map_err(|e| format!("cannot connect to {server}: {e}"))?;
    let _ = stream.set_nodelay(true);
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(&client_registration(id, name))
        .map_err(|e| format!("cannot register {name}: {e}"))?;
    Ok(stream)
}

/// Reads whole frames from a blocking stream; leftovers stay buffered.
#[derive(Default)]
pub struct FrameReader {
    pub buf: Vec<u8>,
}

impl FrameReader {
    /// The next whole frame (owned), reading as needed.
    pub fn next(&mut self, stream: &mut TcpStream) -> Result<Vec<u8>, String> {
        let mut chunk = [0u8; 4096];
        loop {
            if let Some((_, len)) = codec::decode(&self.buf).map_err(|e| e.to_string())? {
                return Ok(self.buf.drain(..len).collect());
            }
            let n = stream
                .read(&mut chunk)
                .map_err(|e| format!("reading from the server: {e}"))?;
            if n == 0 {
                return Err("the server closed the connection".into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Read until a frame that `want` accepts; a status other than welcome is an error.
    pub fn until(
        &mut self,
        stream: &mut TcpStream,
        what: &str,
        want: impl Fn(&Message<'_>) -> bool,
    ) -> Result<Vec<u8>, String> {
        loop {
            let frame = self.next(stream)?;
            let (message, _) = codec::decode(&frame)
                .map_err(|e| e.to_string())?
                .ok_or("short frame")?;
            if want(&message) {
                return Ok(frame);
            }
            refuse_bad_status(&message).map_err(|e| format!("while waiting for {what}: {e}"))?;
        }
    }
}

/// A status other than welcome means the run is broken (unknown ID, duplicate).
pub fn refuse_bad_status(message: &Message<'_>) -> Result<(), String> {
    match message {
        Message::Status { code, text, .. } if *code != codec::STATUS_WELCOME => Err(format!(
            "server sent status {code}: {}",
            String::from_utf8_lossy(text)
        )),
        _ => Ok(()),
    }
}

pub fn is_welcome(message: &Message<'_>) -> bool {
    matches!(message, Message::Status { code, .. } if *code == codec::STATUS_WELCOME)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chat_frame_is_64_bytes_of_valid_crc_and_checks_itself() {
        let mut frame = [0u8; FRAME_LEN];
        chat_frame(12345, 678, &mut frame);
        let (message, len) = codec::decode(&frame).unwrap().unwrap();
        assert_eq!(len, FRAME_LEN);
        assert!(
            matches!(message, Message::ClientChat { source: SENDER_ID, destination: RECEIVER_ID, text } if text.len() == TEXT_LEN)
        );
        assert_eq!(check_chat_frame(&frame, 12345), Ok(678));
        assert!(check_chat_frame(&frame, 12346).is_err());
        frame[40] ^= 1;
        assert!(check_chat_frame(&frame, 12345).is_err());
    }
}
