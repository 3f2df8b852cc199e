//! `peerloop sim gossip --nodes N`: the unmodified gossip node, N of them,
//! on the simulated network, each with the real subscribing module
//! (`gossip::client::Module`, itself a simulated node) that calls every
//! item valid. The network joins through a random bootstrap tree; then one
//! item is announced with TTL 0 and the run reports how long (virtual
//! time) it takes to reach every module, with the wall time, events per
//! second and peak memory of the run.

use super::api;
use super::client::Module;
use super::node::{Node, NodeConfig};
use super::sim_net::{api_addr, p2p_addr};
use crate::cli::{Command, FreeWords};
use crate::cli_words::number_in_range;
use crate::sim::{host, Latency, NodeId, World};
use getopts::Options;
use rand::Rng;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const DATA_TYPE: u16 = 1;

const ABOUT: &str =
    "usage: peerloop sim gossip [--nodes N] [--degree D] [--seed S] [--join SECONDS]\n\n\
     Runs N gossip nodes (each with a subscribing module) in the deterministic\n\
     simulator, lets them join for --join seconds of virtual time, announces\n\
     one item with TTL 0 and reports the virtual time until every module has it,\n\
     with wall time, events per second and peak memory.";

/// Peak resident memory of this process (VmHWM), in MiB, where /proc has it.
pub fn peak_memory_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

pub fn main(args: &[String]) -> u8 {
    let mut opts = Options::new();
    opts.optflag("h", "help", "show this help");
    opts.optopt("", "nodes", "how many gossip nodes (default 1000)", "N");
    opts.optopt("", "degree", "each node's degree (default 8)", "D");
    opts.optopt("", "seed", "the run's seed (default 1)", "S");
    opts.optopt(
        "",
        "join",
        "virtual seconds to join before the announcement (default 30)",
        "SECONDS",
    );
    let command = Command::new("peerloop sim gossip", opts, ABOUT).free_words(FreeWords::Refused);
    let m = match command.parse(args) {
        Ok(m) => m,
        Err(code) => return code,
    };
    let parse = |name: &str, default: u64, min: u64, max: u64| -> Result<u64, String> {
        match m.opt_str(name) {
            None => Ok(default),
            Some(text) => number_in_range(&format!("--{name}"), &text, min, max),
        }
    };
    let parsed = (|| {
        Ok::<_, String>((
            parse("nodes", 1000, 2, 1_000_000)? as usize,
            parse("degree", 8, 1, 64)? as usize,
            parse("seed", 1, 0, u64::MAX)?,
            parse("join", 30, 1, 3600)?,
        ))
    })();
    let (nodes, degree, seed, join) = match parsed {
        Ok(p) => p,
        Err(e) => {
            eprintln!("peerloop sim gossip: {e}");
            return 2;
        }
    };
    let report = run(nodes, degree, seed, Duration::from_secs(join));
    println!("{report}");
    if report.covered == report.nodes {
        0
    } else {
        1
    }
}

/// What a scale run measured.
#[derive(Debug, Clone)]
pub struct Report {
    pub nodes: usize,
    pub degree: usize,
    pub seed: u64,
    pub covered: usize,
    /// Virtual time from the announcement until the last module had it.
    pub coverage_time: Option<Duration>,
    /// Virtual time until half the modules had it.
    pub half_time: Option<Duration>,
    pub setup_wall: Duration,
    pub join_wall: Duration,
    pub spread_wall: Duration,
    pub events: u64,
    pub join_virtual: Duration,
    pub peak_mib: Option<f64>,
    pub mean_peers: f64,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let wall = self.setup_wall + self.join_wall + self.spread_wall;
        let ms = |d: Option<Duration>| {
            d.map_or("never".to_string(), |d| {
                format!("{:.2} ms", d.as_secs_f64() * 1e3)
            })
        };
        writeln!(
            f,
            "gossip sim: {} nodes, degree {}, seed {}, {} s virtual to join (mean {:.2} peers)",
            self.nodes,
            self.degree,
            self.seed,
            self.join_virtual.as_secs(),
            self.mean_peers
        )?;
        writeln!(
            f,
            "coverage: {}/{} modules; half in {}, all in {} (virtual)",
            self.covered,
            self.nodes,
            ms(self.half_time),
            ms(self.coverage_time)
        )?;
        write!(
            f,
            "wall {:.1} s (setup {:.1}, join {:.1}, spread {:.1}); {} events, {:.0} events/s; peak memory {}",
            wall.as_secs_f64(),
            self.setup_wall.as_secs_f64(),
            self.join_wall.as_secs_f64(),
            self.spread_wall.as_secs_f64(),
            self.events,
            self.events as f64 / wall.as_secs_f64().max(1e-9),
            self.peak_mib
                .map_or("unknown".into(), |m| format!("{m:.0} MiB (VmHWM)"))
        )
    }
}

/// Build, join, announce, measure.
pub fn run(nodes: usize, degree: usize, seed: u64, join: Duration) -> Report {
    let started = Instant::now();
    let mut w = World::new(seed);
    w.set_latency(Latency::default());
    let mut gossip: Vec<NodeId> = Vec::with_capacity(nodes);
    for i in 0..nodes {
        let boot = (i > 0).then(|| w.rng().gen_range(0..i));
        let cfg = NodeConfig {
            p2p_address: p2p_addr(i),
            api_address: api_addr(i),
            bootstrapper: boot.map(p2p_addr),
            degree,
            cache_size: 16,
            seed: seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
            maintenance: Duration::from_secs(1),
        };
        let listen = vec![cfg.api_address, SocketAddr::V4(cfg.p2p_address)];
        gossip.push(w.add_node(
            format!("g{i}"),
            listen,
            Box::new(move |_| host(Node::new(cfg.clone()))),
        ));
    }
    let modules: Vec<NodeId> = (0..nodes)
        .map(|i| {
            let api = api_addr(i);
            w.add_node(
                format!("m{i}"),
                Vec::new(),
                Box::new(move |_| host(Module::new(api, DATA_TYPE, true))),
            )
        })
        .collect();
    let setup_wall = started.elapsed();
    let joining = Instant::now();
    w.run_for(join);
    let join_wall = joining.elapsed();
    let join_events = w.stats.events;
    let mut peers = 0usize;
    for &g in &gossip {
        if let Some(n) = w.protocol::<Node>(g) {
            peers += n.peer_addrs().len();
        }
    }
    let spreading = Instant::now();
    // The announcer: a test connection to node 0's API port.
    let ext = w.ext_connect(api_addr(0));
    let mut frame = Vec::new();
    api::write_announce(&mut frame, 0, DATA_TYPE, b"one item for everyone").expect("small");
    w.ext_send(ext, &frame);
    let announced_at = w.now();
    // Modules yet to be notified, checked every 100 µs of virtual time.
    let mut waiting: Vec<NodeId> = modules.clone();
    let mut half_time = None;
    let mut coverage_time = None;
    let limit = announced_at + Duration::from_secs(60);
    while w.now() < limit {
        w.run_for(Duration::from_micros(100));
        // A module that stopped (lost its node) is still waiting.
        waiting.retain(|&m| {
            w.protocol::<Module>(m)
                .is_none_or(|module| module.notified.is_empty())
        });
        let covered = nodes - waiting.len();
        if half_time.is_none() && covered * 2 >= nodes {
            half_time = Some(w.now() - announced_at);
        }
        if waiting.is_empty() {
            coverage_time = Some(w.now() - announced_at);
            break;
        }
    }
    Report {
        nodes,
        degree,
        seed,
        covered: nodes - waiting.len(),
        coverage_time,
        half_time,
        setup_wall,
        join_wall,
        spread_wall: spreading.elapsed(),
        events: join_events.max(w.stats.events),
        join_virtual: join,
        peak_mib: peak_memory_mib(),
        mean_peers: peers as f64 / nodes as f64,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_small_network_is_covered_fully() {
        let report = super::run(200, 4, 3, std::time::Duration::from_secs(10));
        assert_eq!(report.covered, 200, "{report}");
        assert!(report.coverage_time.is_some());
        assert!(report.mean_peers >= 4.0, "{report}");
    }
}
