//! Helpers for end-to-end tests: real `peerloop` processes on loopback.

#![allow(dead_code)]

pub use peerloop::testkit::Proc;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

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

/// How long a test waits for a line or a state before it fails.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// A running `peerloop` process (the shared `peerloop::testkit::Proc`,
/// failing the test where that returns an error).
pub struct Node {
    pub proc: Proc,
}

impl Node {
    pub fn start(args: &[&str]) -> Node {
        let mut command = Command::new(BIN);
        command.args(args).stderr(Stdio::null());
        Node {
            proc: Proc::spawn("peerloop", command, true).expect("start peerloop"),
        }
    }

    /// `peerloop ARGS` with `RUST_LOG` unset (the default log level) and
    /// standard error written to `stderr`, or dropped.
    pub fn start_logging(args: &[String], stderr: Option<&Path>) -> Node {
        let err = match stderr {
            Some(path) => Stdio::from(std::fs::File::create(path).unwrap()),
            None => Stdio::null(),
        };
        let mut command = Command::new(BIN);
        command.args(args).env_remove("RUST_LOG").stderr(err);
        Node {
            proc: Proc::spawn("peerloop", command, true).expect("start peerloop"),
        }
    }

    /// The next stdout line that satisfies `want`.
    pub fn line(&mut self, want: impl Fn(&str) -> bool) -> String {
        self.proc
            .wait_line(DEADLINE, "expected line", want)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Wait for a stdout line starting with `prefix`.
    pub fn line_starting(&mut self, prefix: &str) -> String {
        self.proc
            .wait_line(DEADLINE, &format!("line starting with {prefix:?}"), |l| {
                l.starts_with(prefix)
            })
            .unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn send(&mut self, line: &str) {
        self.proc.send_line(line).unwrap_or_else(|e| panic!("{e}"));
    }

    pub fn state(&mut self) -> Value {
        self.proc.state(DEADLINE).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Poll the state until `done` holds (20 s at most), or fail with the
    /// last state seen.
    pub fn wait_state(&mut self, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        self.proc
            .wait_state(what, DEADLINE, done)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn is_running(&mut self) -> bool {
        self.proc.check_alive().is_ok()
    }

    /// Wait for it to exit by itself.
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        self.proc.wait_exit().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Kill it now (dropping it does the same).
    pub fn kill(&mut self) {
        self.proc.kill();
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
