//! The CRC ceiling: `peerloop relay`, a process that forwards bytes and
//! parses nothing (blocking read, then write_all, 256 KiB at a time), and a
//! chain of three of them between the same sender and receiver as the CRC
//! chain. No server can relay frames faster than this on the same machine,
//! so `peerloop bench crc` reports peerloop as a share of it.
//!
//! A relay is a bench instrument, not a node: it runs no reactor and serves
//! exactly one stream.

use super::crc::{self, ChainReport};
use super::process::Proc;
use getopts::Options;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Bytes per read: as the ceiling measured in the performance issue.
const CHUNK: usize = 256 * 1024;

const USAGE: &str = "usage: peerloop relay --listen ADDR --next ADDR

A byte-forwarding relay for the CRC benchmark's ceiling: accepts one
connection on ADDR, connects to --next, and copies every byte it reads to it
(blocking reads and writes, 256 KiB at a time) until the input ends. Parses
nothing. Prints 'listening on ADDR' once bound.";

pub fn relay_main(args: &[String]) -> u8 {
    let mut opts = Options::new();
    opts.optopt(
        "",
        "listen",
        "address to accept the one input on (port 0: any)",
        "ADDR",
    );
    opts.optopt("", "next", "address to forward to", "ADDR");
    opts.optflag("h", "help", "print this help");
    let m = match crate::cli::Command::bare("peerloop relay", opts, USAGE).parse(args) {
        Ok(m) => m,
        Err(code) => return code,
    };
    let addr = |name: &str| -> Result<SocketAddr, String> {
        let text = m
            .opt_str(name)
            .ok_or_else(|| format!("--{name} is required"))?;
        text.parse()
            .map_err(|_| format!("--{name} '{text}' is not an address like 127.0.0.1:4000"))
    };
    let (listen, next) = match (addr("listen"), addr("next")) {
        (Ok(l), Ok(n)) => (l, n),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("peerloop relay: {e}");
            return 2;
        }
    };
    match relay(listen, next) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("peerloop relay: {e}");
            1
        }
    }
}

fn relay(listen: SocketAddr, next: SocketAddr) -> Result<(), String> {
    let listener = TcpListener::bind(listen).map_err(|e| {
        format!(
            "cannot listen on {listen}: {}",
            crate::cli_words::io_error(&e)
        )
    })?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    println!("listening on {bound}");
    let _ = std::io::stdout().flush();
    let (mut input, _) = listener
        .accept()
        .map_err(|e| format!("accept failed: {e}"))?;
    let mut output = TcpStream::connect(next).map_err(|e| {
        format!(
            "cannot connect to {next}: {}",
            crate::cli_words::io_error(&e)
        )
    })?;
    let _ = input.set_nodelay(true);
    let _ = output.set_nodelay(true);
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("read failed: {e}")),
        };
        output
            .write_all(&buf[..n])
            .map_err(|e| format!("write to {next} failed: {e}"))?;
    }
}

fn start_relay(exe: &Path, n: u32, next: SocketAddr) -> Result<(Proc, SocketAddr), String> {
    let mut command = Command::new(exe);
    command.args([
        "relay",
        "--listen",
        "127.0.0.1:0",
        "--next",
        &next.to_string(),
    ]);
    let mut proc = Proc::spawn(&format!("relay {n}"), command, true)?;
    let line = proc.wait_line(Duration::from_secs(20), "'listening on' line", |l| {
        l.starts_with("listening on ")
    })?;
    let addr = line["listening on ".len()..]
        .trim()
        .parse()
        .map_err(|e| format!("relay {n}: bad address in '{line}': {e}"))?;
    Ok((proc, addr))
}

/// The same measurement as the CRC chain, through three relays.
pub fn run_relay_chain(
    exe: &Path,
    frames: u64,
    sample: u64,
    quiet_frames: u64,
) -> Result<ChainReport, String> {
    let sink = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("receiver: {e}"))?;
    let sink_addr = sink.local_addr().map_err(|e| e.to_string())?;
    let (r3, a3) = start_relay(exe, 3, sink_addr)?;
    let (r2, a2) = start_relay(exe, 2, a3)?;
    let (r1, a1) = start_relay(exe, 1, a2)?;
    let _relays = [r1, r2, r3];
    let sender = TcpStream::connect(a1).map_err(|e| format!("sender: cannot connect: {e}"))?;
    let _ = sender.set_nodelay(true);
    // Each relay dials the next once its input arrives, so the receiver's
    // connection comes in as soon as the sender's has reached the first.
    let (receiver, _) = sink
        .accept()
        .map_err(|e| format!("receiver: accept failed: {e}"))?;
    let _ = receiver.set_nodelay(true);
    crc::measure(sender, receiver, Vec::new(), frames, sample, quiet_frames)
}
