//! `peerloop bench gossip`: start N node processes on loopback (each
//! joining through the first), subscribe one module per node (this process,
//! answering every notification valid), then time announcements from a
//! separate connection until every module has been notified, and count the
//! SEND CONTENT messages the nodes sent for it.

use super::api;
use crate::testkit::Proc;
use getopts::Options;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::time::{Duration, Instant};

const TYPE: u16 = 0xB0B;
const DEADLINE: Duration = Duration::from_secs(60);

struct NodeProc {
    proc: Proc,
    p2p: SocketAddr,
    api: SocketAddr,
}

impl NodeProc {
    fn start(bootstrapper: Option<SocketAddr>, degree: usize) -> Result<NodeProc, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut command = Command::new(exe);
        command.args([
            "gossip",
            "--p2p-address",
            "127.0.0.1:0",
            "--api-address",
            "127.0.0.1:0",
            "--degree",
            &degree.to_string(),
        ]);
        if let Some(b) = bootstrapper {
            command.args(["--bootstrapper", &b.to_string()]);
        }
        command.stderr(Stdio::null());
        let mut proc = Proc::spawn("a gossip node", command, true)?;
        let line = proc.wait_line(DEADLINE, "listening line", |l| {
            l.starts_with("gossip node listening")
        })?;
        // "gossip node listening: p2p ADDR api ADDR"
        let words: Vec<&str> = line.split_whitespace().collect();
        let parse = |i: usize| -> Result<SocketAddr, String> {
            words
                .get(i)
                .and_then(|w| w.parse().ok())
                .ok_or_else(|| format!("unexpected first line from a node: {line}"))
        };
        Ok(NodeProc {
            p2p: parse(4)?,
            api: parse(6)?,
            proc,
        })
    }

    fn state(&mut self) -> Result<Value, String> {
        self.proc.state(DEADLINE)
    }
}

/// A module: subscribes, answers valid, reports (data, when) for each notification.
fn start_module(
    api_addr: SocketAddr,
    seen: Sender<(Vec<u8>, Instant)>,
) -> Result<TcpStream, String> {
    let mut stream = TcpStream::connect(api_addr).map_err(|e| e.to_string())?;
    let mut frame = Vec::new();
    api::write_notify(&mut frame, TYPE).expect("small");
    stream.write_all(&frame).map_err(|e| e.to_string())?;
    let mut reader = stream.try_clone().map_err(|e| e.to_string())?;
    std::thread::spawn(move || loop {
        let mut header = [0u8; 4];
        if reader.read_exact(&mut header).is_err() {
            return;
        }
        let size = u16::from_be_bytes([header[0], header[1]]) as usize;
        let mut body = vec![0u8; size.saturating_sub(4)];
        if reader.read_exact(&mut body).is_err() || body.len() < 4 {
            return;
        }
        let now = Instant::now();
        let msg_id = u16::from_be_bytes([body[0], body[1]]);
        let mut reply = Vec::new();
        api::write_validation(&mut reply, msg_id, true).expect("small");
        if reader.write_all(&reply).is_err() || seen.send((body[4..].to_vec(), now)).is_err() {
            return;
        }
    });
    Ok(stream)
}

fn wait_all(
    nodes: &mut [NodeProc],
    what: &str,
    ok: impl Fn(&Value) -> bool,
) -> Result<Vec<Value>, String> {
    let end = Instant::now() + DEADLINE;
    let mut states = Vec::with_capacity(nodes.len());
    for node in nodes.iter_mut() {
        let left = end.saturating_duration_since(Instant::now());
        states.push(node.proc.wait_state(what, left, &ok)?);
    }
    Ok(states)
}

struct Figures {
    nodes: usize,
    avg_peers: f64,
    coverage_ms: Vec<f64>,
    messages_per_node: Vec<f64>,
    max_forwards: u64,
    setup_s: f64,
    /// Each node's resident memory once the rounds are over, bytes.
    rss: Vec<u64>,
}

fn run_one(n: usize, degree: usize, rounds: usize) -> Result<Figures, String> {
    let setup = Instant::now();
    let first = NodeProc::start(None, degree)?;
    let boot = first.p2p;
    let mut nodes = vec![first];
    for _ in 1..n {
        nodes.push(NodeProc::start(Some(boot), degree)?);
    }
    let min_peers = (degree.min(n - 1)) as u64;
    let states = wait_all(&mut nodes, "peers", |s| {
        s["peer_count"].as_u64() >= Some(min_peers) && s["dialing"] == 0
    })?;
    let avg_peers = states
        .iter()
        .map(|s| s["peer_count"].as_u64().unwrap_or(0) as f64)
        .sum::<f64>()
        / n as f64;
    let (tx, rx): (_, Receiver<(Vec<u8>, Instant)>) = channel();
    let mut modules = Vec::new();
    for node in &nodes {
        modules.push(start_module(node.api, tx.clone())?);
    }
    wait_all(&mut nodes, "subscriptions", |s| s["modules"] == 1)?;
    let mut announcer = TcpStream::connect(nodes[0].api).map_err(|e| e.to_string())?;
    let setup_s = setup.elapsed().as_secs_f64();

    let sent = |nodes: &mut [NodeProc]| -> Result<u64, String> {
        let mut total = 0;
        for node in nodes.iter_mut() {
            total += node.state()?["items_sent"].as_u64().unwrap_or(0);
        }
        Ok(total)
    };
    let mut coverage_ms = Vec::new();
    let mut messages_per_node = Vec::new();
    for round in 0..rounds {
        let before = sent(&mut nodes)?;
        let data = format!("bench {n} nodes, round {round}").into_bytes();
        let mut frame = Vec::new();
        api::write_announce(&mut frame, 0, TYPE, &data).expect("small");
        let start = Instant::now();
        announcer.write_all(&frame).map_err(|e| e.to_string())?;
        let mut reached = 0;
        let mut last = start;
        while reached < n {
            let left = (start + DEADLINE).saturating_duration_since(Instant::now());
            let (got, at) = rx
                .recv_timeout(left)
                .map_err(|_| format!("round {round}: only {reached} of {n} modules notified"))?;
            if got == data {
                reached += 1;
                last = last.max(at);
            }
        }
        coverage_ms.push((last - start).as_secs_f64() * 1000.0);
        // Every node has forwarded (or been told of) the item once coverage
        // is complete, apart from copies still in flight: let them land.
        std::thread::sleep(Duration::from_millis(200));
        let after = sent(&mut nodes)?;
        messages_per_node.push((after - before) as f64 / n as f64);
    }
    let mut max_forwards = 0;
    for node in nodes.iter_mut() {
        max_forwards = max_forwards.max(node.state()?["max_forwards"].as_u64().unwrap_or(0));
    }
    let mut rss = Vec::with_capacity(n);
    for node in &nodes {
        rss.push(crate::bench::process::rss_bytes(node.proc.pid())?);
    }
    rss.sort_unstable();
    drop(modules);
    Ok(Figures {
        nodes: n,
        avg_peers,
        coverage_ms,
        messages_per_node,
        max_forwards,
        setup_s,
        rss,
    })
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    sorted[sorted.len() / 2]
}

fn options() -> Options {
    let mut opts = Options::new();
    opts.optopt(
        "",
        "nodes",
        "network sizes to measure (default 10,50,100)",
        "LIST",
    );
    opts.optopt("", "degree", "each node's degree (default 4)", "N");
    opts.optopt(
        "",
        "rounds",
        "announcements timed per size (default 5)",
        "N",
    );
    opts.optflag("h", "help", "print this help");
    opts
}

pub fn main(args: &[String]) -> u8 {
    let command = crate::cli::Command::new(
        "peerloop bench gossip",
        options(),
        "usage: peerloop bench gossip [--nodes 10,50,100] [--degree 4] [--rounds 5]\n\n\
         One process per node on loopback; one module per node. Reports the\n\
         time until every module is notified of one announcement and the\n\
         SEND CONTENT messages sent per node for it.",
    );
    let matches = match command.parse(args) {
        Ok(m) => m,
        Err(code) => return code,
    };
    let count = |name: &str, default: usize| -> Result<usize, String> {
        match matches.opt_str(name) {
            None => Ok(default),
            Some(t) => {
                super::config::parse_count(&t, 100_000).map_err(|e| format!("--{name} '{t}': {e}"))
            }
        }
    };
    let parsed = (|| -> Result<(Vec<usize>, usize, usize), String> {
        let sizes = match matches.opt_str("nodes") {
            None => vec![10, 50, 100],
            Some(list) => list
                .split(',')
                .map(|s| match s.trim().parse::<usize>() {
                    Ok(n) if n >= 2 => Ok(n),
                    _ => Err(format!("--nodes: '{s}' is not a number of at least 2")),
                })
                .collect::<Result<_, _>>()?,
        };
        Ok((sizes, count("degree", 4)?, count("rounds", 5)?))
    })();
    let (sizes, degree, rounds) = match parsed {
        Ok(p) => p,
        Err(e) => {
            eprintln!("peerloop bench gossip: {e}");
            return 2;
        }
    };
    println!("gossip benchmark: degree {degree}, {rounds} announcements per size, one process per node, loopback");
    println!("| nodes | avg peers | full coverage, median (ms) | worst (ms) | SEND CONTENT per node per announcement | max forwards of an item by a node | RSS per node, median (max) | setup (s) |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for n in sizes {
        match run_one(n, degree, rounds) {
            Ok(f) => println!(
                "| {} | {:.1} | {:.2} | {:.2} | {:.2} | {} | {} KiB ({} KiB) | {:.1} |",
                f.nodes,
                f.avg_peers,
                median(&f.coverage_ms),
                f.coverage_ms.iter().copied().fold(0.0, f64::max),
                median(&f.messages_per_node),
                f.max_forwards,
                crate::util::nearest_rank(&f.rss, 0.5).unwrap_or(0) / 1024,
                f.rss.last().copied().unwrap_or(0) / 1024,
                f.setup_s
            ),
            Err(e) => {
                eprintln!("peerloop bench gossip: {n} nodes: {e}");
                return 1;
            }
        }
    }
    0
}
