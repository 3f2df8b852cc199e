//! Standard input as one more event source: lines, read without blocking.

use std::io;
use std::os::fd::RawFd;

const STDIN_FD: RawFd = 0;

/// Splits what arrives on standard input into lines.
pub struct StdinLines {
    partial: Vec<u8>,
    saved_flags: Option<libc::c_int>,
}

/// The result of draining standard input.
pub struct StdinRead {
    pub lines: Vec<String>,
    pub closed: bool,
}

impl StdinLines {
    /// Put standard input in non-blocking mode (edge-triggered polling needs
    /// to read until it would block); the old flags come back on drop.
    pub fn new() -> Self {
        // SAFETY: fcntl on fd 0 with F_GETFL/F_SETFL has no memory effects.
        let flags = unsafe { libc::fcntl(STDIN_FD, libc::F_GETFL) };
        let saved_flags = if flags >= 0 {
            unsafe { libc::fcntl(STDIN_FD, libc::F_SETFL, flags | libc::O_NONBLOCK) };
            Some(flags)
        } else {
            None
        };
        StdinLines {
            partial: Vec::new(),
            saved_flags,
        }
    }

    /// Read until standard input would block or ends; whole lines come out.
    pub fn drain(&mut self) -> StdinRead {
        let mut buf = [0u8; 4096];
        let mut closed = false;
        loop {
            // SAFETY: reading into a stack buffer of the length given.
            let n = unsafe { libc::read(STDIN_FD, buf.as_mut_ptr().cast(), buf.len()) };
            if n > 0 {
                self.partial.extend_from_slice(&buf[..n as usize]);
                if self.partial.len() > 1 << 20 {
                    // A line longer than 1 MiB is nobody's command: drop it.
                    self.partial.clear();
                }
                continue;
            }
            if n == 0 {
                closed = true;
                break;
            }
            let err = io::Error::last_os_error();
            match err.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => break,
                _ => {
                    closed = true;
                    break;
                }
            }
        }
        let mut lines = Vec::new();
        while let Some(end) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            let text = String::from_utf8_lossy(&line[..line.len() - 1]);
            lines.push(text.trim_end_matches('\r').to_string());
        }
        if closed && !self.partial.is_empty() {
            lines.push(String::from_utf8_lossy(&self.partial).into_owned());
            self.partial.clear();
        }
        StdinRead { lines, closed }
    }
}

impl Drop for StdinLines {
    fn drop(&mut self) {
        if let Some(flags) = self.saved_flags {
            // SAFETY: restoring the flags read in `new`.
            unsafe { libc::fcntl(STDIN_FD, libc::F_SETFL, flags) };
        }
    }
}
