//! Real `peerloop` processes on loopback, and a module written from the
//! spec alone (raw bytes over a blocking socket), for the gossip tests.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const DEADLINE: Duration = Duration::from_secs(20);

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_peerloop")
}

/// A directory of its own for one test's log files.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("peerloop-gossip-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A running `peerloop` process: the end-to-end tests' shared one.
pub use crate::common::Node;

/// A gossip node process with its bound addresses.
pub struct GossipNode {
    pub proc: Node,
    pub p2p: SocketAddr,
    pub api: SocketAddr,
}

pub fn start_node(
    bootstrapper: Option<SocketAddr>,
    degree: usize,
    log: Option<&PathBuf>,
) -> GossipNode {
    start_node_logging(bootstrapper, degree, log, None)
}

/// `start_node`, with the node's standard error kept in `stderr`.
pub fn start_node_logging(
    bootstrapper: Option<SocketAddr>,
    degree: usize,
    log: Option<&PathBuf>,
    stderr: Option<&Path>,
) -> GossipNode {
    let mut args: Vec<String> = [
        "gossip",
        "--p2p-address",
        "127.0.0.1:0",
        "--api-address",
        "127.0.0.1:0",
        "--degree",
        &degree.to_string(),
        "--maintenance-ms",
        "300",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if let Some(b) = bootstrapper {
        args.push("--bootstrapper".into());
        args.push(b.to_string());
    }
    if let Some(log) = log {
        args.push("--log-file".into());
        args.push(log.display().to_string());
    }
    let mut proc = Node::start_logging(&args, stderr);
    let line = proc.line(|l| l.starts_with("gossip node listening"));
    // "gossip node listening: p2p ADDR api ADDR"
    let words: Vec<&str> = line.split_whitespace().collect();
    let p2p = words[4].parse().unwrap();
    let api = words[6].parse().unwrap();
    GossipNode { proc, p2p, api }
}

/// Start `n` nodes, all joining through the first, and wait until every
/// one has at least `min_peers` peers and no connection attempt pending.
pub fn start_network(n: usize, degree: usize, min_peers: u64) -> Vec<GossipNode> {
    let first = start_node(None, degree, None);
    let boot = first.p2p;
    let mut nodes = vec![first];
    for _ in 1..n {
        nodes.push(start_node(Some(boot), degree, None));
    }
    settle(&mut nodes, min_peers);
    nodes
}

pub fn settle(nodes: &mut [GossipNode], min_peers: u64) {
    for node in nodes.iter_mut() {
        node.proc.wait_state("peers", |s| {
            s["peer_count"].as_u64().unwrap() >= min_peers && s["dialing"] == 0
        });
    }
}

// ---- raw API messages, written from the spec ----

pub fn frame(kind: u16, body: &[u8]) -> Vec<u8> {
    let mut out = ((body.len() + 4) as u16).to_be_bytes().to_vec();
    out.extend_from_slice(&kind.to_be_bytes());
    out.extend_from_slice(body);
    out
}

pub fn notify(data_type: u16) -> Vec<u8> {
    let mut body = vec![0, 0];
    body.extend_from_slice(&data_type.to_be_bytes());
    frame(501, &body)
}

pub fn announce(ttl: u8, data_type: u16, data: &[u8]) -> Vec<u8> {
    let mut body = vec![ttl, 0];
    body.extend_from_slice(&data_type.to_be_bytes());
    body.extend_from_slice(data);
    frame(500, &body)
}

pub fn validation(msg_id: u16, valid: bool) -> Vec<u8> {
    let mut body = msg_id.to_be_bytes().to_vec();
    body.extend_from_slice(&[0, u8::from(valid)]);
    frame(503, &body)
}

/// Read one whole frame: (type, body).
pub fn read_frame(stream: &mut TcpStream) -> std::io::Result<(u16, Vec<u8>)> {
    let mut header = [0u8; 4];
    stream.read_exact(&mut header)?;
    let size = u16::from_be_bytes([header[0], header[1]]) as usize;
    let kind = u16::from_be_bytes([header[2], header[3]]);
    let mut body = vec![0; size.saturating_sub(4)];
    stream.read_exact(&mut body)?;
    Ok((kind, body))
}

/// A NOTIFICATION: (message ID, data type, data).
pub fn parse_notification(kind: u16, body: &[u8]) -> (u16, u16, Vec<u8>) {
    assert_eq!(kind, 502, "expected a NOTIFICATION");
    (
        u16::from_be_bytes([body[0], body[1]]),
        u16::from_be_bytes([body[2], body[3]]),
        body[4..].to_vec(),
    )
}

/// A module in a thread: subscribes, records every notification's data,
/// answers `valid`.
pub struct RawModule {
    pub seen: Arc<Mutex<Vec<Vec<u8>>>>,
    /// Held so the subscription lives as long as the module.
    _stream: TcpStream,
}

impl RawModule {
    pub fn start(api: SocketAddr, data_type: u16, valid: bool) -> RawModule {
        let mut stream = TcpStream::connect(api).unwrap();
        stream.write_all(&notify(data_type)).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut reader = stream.try_clone().unwrap();
        let record = seen.clone();
        std::thread::spawn(move || {
            while let Ok((kind, body)) = read_frame(&mut reader) {
                let (id, _, data) = parse_notification(kind, &body);
                record.lock().unwrap().push(data);
                if reader.write_all(&validation(id, valid)).is_err() {
                    break;
                }
            }
        });
        RawModule {
            seen,
            _stream: stream,
        }
    }

    pub fn count(&self, data: &[u8]) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|d| d[..] == *data)
            .count()
    }
}

/// Wait until `ok` holds, polling; panic with `what` after the deadline.
pub fn eventually(what: &str, ok: impl Fn() -> bool) {
    let end = Instant::now() + DEADLINE;
    while !ok() {
        if Instant::now() > end {
            panic!("timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A SEND CONTENT frame, from the spec: inner ANNOUNCE (size, 500, TTL,
/// reserved, data type, data) inside a 507.
pub fn send_content(ttl: u8, data_type: u16, data: &[u8]) -> Vec<u8> {
    let inner = announce(ttl, data_type, data);
    frame(507, &inner)
}

/// The lines of a file (empty if it is not there yet).
pub fn lines_of(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Run `peerloop ARGS` to the end (killed after the deadline, which fails
/// the test): (exit code, stdout, stderr).
pub fn run_to_end(args: &[&str]) -> (i32, String, String) {
    let mut child = Command::new(bin())
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn peerloop");
    let end = Instant::now() + DEADLINE;
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > end {
            let _ = child.kill();
            panic!("peerloop {args:?} did not exit within {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A loopback port nothing listens on (bound, then let go).
pub fn dead_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
