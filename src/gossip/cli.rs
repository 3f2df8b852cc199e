//! `peerloop gossip`: run one gossip node.

use super::config::{self, FileSettings};
use super::node::{Node, NodeConfig};
use crate::cli::node::{run_node, Listen, Made};
use crate::cli::{number, start_logging, Command, Failure, FreeWords};
use getopts::Options;
use std::net::SocketAddr;
use std::time::Duration;

const DEFAULT_DEGREE: usize = 30;
const DEFAULT_CACHE_SIZE: usize = 50;
const MAX_DEGREE: usize = 1000;

fn options() -> Options {
    let mut opts = Options::new();
    opts.optopt(
        "c",
        "config",
        "the course's INI file ([gossip] section)",
        "FILE",
    );
    opts.optopt(
        "",
        "api-address",
        "where local modules connect (host:port; port 0 = any)",
        "ADDR",
    );
    opts.optopt(
        "",
        "p2p-address",
        "where other nodes connect (IPv4 host:port; port 0 = any)",
        "ADDR",
    );
    opts.optopt(
        "",
        "bootstrapper",
        "a node of the network to join (omit or own address: new network)",
        "ADDR",
    );
    opts.optopt(
        "",
        "degree",
        &format!("peer connections to keep open (default {DEFAULT_DEGREE})"),
        "N",
    );
    opts.optopt(
        "",
        "cache-size",
        &format!("items held for spreading (default {DEFAULT_CACHE_SIZE})"),
        "N",
    );
    opts.optopt(
        "",
        "seed",
        "seed for the node's random choices (default: from the clock)",
        "N",
    );
    opts.optopt(
        "",
        "maintenance-ms",
        "how often lost peers are replaced (default 1000)",
        "MS",
    );
    opts.optopt("", "log-file", "write this node's transcript here", "FILE");
    opts.optflag("h", "help", "print this help");
    opts
}

const ABOUT: &str = "usage: peerloop gossip [-c FILE] [--api-address ADDR] [--p2p-address ADDR] \
     [--bootstrapper ADDR] [--degree N] [--cache-size N]\n\n\
     Runs a gossip node. Flags override the file. Standard input takes\n\
     `state` (one JSON line on standard output) and `quit`.";

/// Everything needed to start a node, before binding.
#[derive(Debug)]
struct Settings {
    api_address: SocketAddr,
    p2p_address: std::net::SocketAddrV4,
    bootstrapper: Option<std::net::SocketAddrV4>,
    degree: usize,
    cache_size: usize,
    seed: u64,
    maintenance: Duration,
}

/// An address flag: the error names the flag and what was typed.
fn flag<T>(
    matches: &getopts::Matches,
    name: &str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Option<T>, String> {
    match matches.opt_str(name) {
        None => Ok(None),
        Some(text) => parse(&text)
            .map(Some)
            .map_err(|why| format!("--{name} '{text}': {why}")),
    }
}

fn settings(matches: &getopts::Matches) -> Result<Settings, String> {
    let file = match matches.opt_str("c") {
        Some(path) => config::load(&path)?,
        None => FileSettings::default(),
    };
    let source = matches
        .opt_str("c")
        .map_or("no config file given".to_string(), |p| {
            format!("not in {p}")
        });
    let p2p_address = flag(matches, "p2p-address", config::parse_v4)?
        .or(file.p2p_address)
        .ok_or_else(|| {
            format!("no P2P address: give --p2p-address or [gossip] p2p_address ({source})")
        })?;
    let api_address = flag(matches, "api-address", config::parse_addr)?
        .or(file.api_address)
        .ok_or_else(|| {
            format!("no API address: give --api-address or [gossip] api_address ({source})")
        })?;
    let bootstrapper = flag(matches, "bootstrapper", config::parse_v4)?.or(file.bootstrapper);
    let degree = number(matches, "degree", 1, MAX_DEGREE)?
        .or(file.degree)
        .unwrap_or(DEFAULT_DEGREE);
    let cache_size = number(matches, "cache-size", 1, u16::MAX as usize)?
        .or(file.cache_size)
        .unwrap_or(DEFAULT_CACHE_SIZE);
    let seed = number(matches, "seed", 0, u64::MAX)?.unwrap_or_else(clock_seed);
    let maintenance = number(matches, "maintenance-ms", 1u64, 600_000)?
        .map_or(Duration::from_secs(1), Duration::from_millis);
    Ok(Settings {
        api_address,
        p2p_address,
        // Our own address as bootstrapper means: start a new network.
        bootstrapper: bootstrapper.filter(|b| *b != p2p_address),
        degree,
        cache_size,
        seed,
        maintenance,
    })
}

fn clock_seed() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    nanos ^ (u64::from(std::process::id()) << 32)
}

pub fn main(args: &[String]) -> u8 {
    let command = Command::new("peerloop gossip", options(), ABOUT).free_words(FreeWords::Refused);
    command.run(args, |matches| {
        start_logging(matches)?;
        // A mistake in the flags or the file: usage error, exit 2.
        let settings = settings(matches).map_err(Failure::Usage)?;
        // Said once, plainly (not again as an ERROR log line).
        run(settings)?;
        Ok(0)
    })
}

/// `peerloop gossip ARGS` (without the command word) as the node's
/// configuration, its addresses as given: the real `main` (which binds them
/// first) and the simulator (`peerloop test --sim`) both build the node so.
pub fn config(args: &[String]) -> Result<NodeConfig, String> {
    let matches = options().parse(args).map_err(|e| e.to_string())?;
    let settings = settings(&matches)?;
    Ok(node_config(
        &settings,
        settings.p2p_address,
        settings.api_address,
    ))
}

fn node_config(
    settings: &Settings,
    p2p_address: std::net::SocketAddrV4,
    api_address: SocketAddr,
) -> NodeConfig {
    NodeConfig {
        p2p_address,
        api_address,
        bootstrapper: settings.bootstrapper,
        degree: settings.degree,
        cache_size: settings.cache_size,
        seed: settings.seed,
        maintenance: settings.maintenance,
    }
}

fn run(settings: Settings) -> Result<(), Failure> {
    let listen = [
        Listen::said_as(
            settings.api_address,
            format!("cannot listen for modules on {}", settings.api_address),
        ),
        Listen::said_as(
            SocketAddr::V4(settings.p2p_address),
            format!("cannot listen for peers on {}", settings.p2p_address),
        ),
    ];
    run_node(&listen, super::describe::describe, |bound| {
        let p2p_address = match bound[1] {
            SocketAddr::V4(v4) => v4,
            other => {
                return Err(Failure::Runtime(format!(
                    "P2P listener bound to {other}, not IPv4"
                )))
            }
        };
        if p2p_address.ip().is_unspecified() {
            log::warn!("P2P address {p2p_address} is unspecified: peers are told it as is and cannot dial it; give a concrete IPv4 address");
        }
        Ok(Made::quiet(Node::new(node_config(
            &settings,
            p2p_address,
            bound[0],
        ))))
    })?;
    Ok(())
}
