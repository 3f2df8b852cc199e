//! Helpers for end-to-end tests: real `peerloop` processes on loopback.

#![allow(dead_code)]

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_peerloop");

/// Say that a test skipped, and why, where `cargo test` shows it: the test
/// harness captures `eprintln!` (shown only with `--nocapture`), not a write
/// to the standard error stream itself.
pub fn say_skipped(test: &str, why: &str) {
    say(&format!("SKIPPED {test}: {why}"));
}

/// One line in the normal `cargo test` output (see [`say_skipped`]).
pub fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// A running `peerloop` process; its stdout lines arrive on a channel.
pub struct Node {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
}

impl Node {
    pub fn start(args: &[&str]) -> Node {
        let mut child = Command::new(BIN)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start peerloop");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Node {
            child,
            stdin,
            lines,
        }
    }

    /// Wait for a stdout line starting with `prefix`.
    pub fn line_starting(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with(prefix) => return line,
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    panic!("no line starting with {prefix:?} within 20 s")
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("process ended before printing {prefix:?}")
                }
            }
        }
    }

    pub fn send(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
    }

    pub fn state(&mut self) -> Value {
        self.send("state");
        serde_json::from_str(&self.line_starting("{")).unwrap()
    }

    /// Poll the state until `done` holds (20 s at most).
    pub fn wait_state(&mut self, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let state = self.state();
            if done(&state) {
                return state;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; last state {state}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start a CRC server on a free port; returns it and its address.
pub fn crc_server(id: u32, name: &str, join: Option<SocketAddr>) -> (Node, SocketAddr) {
    crc_server_with(id, name, join, &[])
}

/// The same, with extra arguments (e.g. `--log-file`).
pub fn crc_server_with(
    id: u32,
    name: &str,
    join: Option<SocketAddr>,
    extra: &[&str],
) -> (Node, SocketAddr) {
    let id = id.to_string();
    let mut args = vec![
        "server",
        "--id",
        &id,
        "--servername",
        name,
        "--port",
        "0",
        "--bind",
        "127.0.0.1",
        "--info",
        "\"test\"",
    ];
    args.extend_from_slice(extra);
    let port;
    if let Some(addr) = join {
        port = addr.port().to_string();
        args.extend(["--connect_to_host", "127.0.0.1", "--connect_to_port", &port]);
    }
    let mut node = Node::start(&args);
    let line = node.line_starting("listening on");
    let addr: SocketAddr = line["listening on ".len()..].parse().unwrap();
    if join.is_some() {
        node.line_starting("joined");
    }
    (node, SocketAddr::from(([127, 0, 0, 1], addr.port())))
}

/// Read exactly `n` bytes or fail after 20 s.
pub fn read_exact(stream: &mut TcpStream, n: usize) -> Vec<u8> {
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut buf = vec![0; n];
    stream.read_exact(&mut buf).expect("read from server");
    buf
}
