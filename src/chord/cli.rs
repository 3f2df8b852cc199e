//! `peerloop chord`: run one Chord node.

use super::id::Id;
use super::node::{Config, Node, DEFAULT_CLIENT_MEMORY, DEFAULT_MAX_CLIENTS, MAX_PEERS_IN};
use crate::cli_words::{connect_port, listen_port, number_in_range};
use crate::reactor::Reactor;
use getopts::Options;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::time::Duration;

const ABOUT: &str = "usage: peerloop chord --listen ADDR --api ADDR [--join ADDR] [options]

Runs one node of a Chord ring (160-bit SHA-1 IDs) serving the DHT API.
The node ID is the SHA-1 of the bound peer address as text (e.g.
\"127.0.0.1:4000\") unless --id is given. Port 0 picks a free port; `state`
shows the bound addresses.

Standard input: `state` prints the node's state as one line of JSON;
`quit` hands every pair to the successor and leaves the ring.";

fn options() -> Options {
    let mut opts = Options::new();
    opts.optopt("", "listen", "address for other nodes (required)", "ADDR");
    opts.optopt("", "api", "address for DHT API clients (required)", "ADDR");
    opts.optopt("", "join", "join the ring through this member", "ADDR");
    opts.optopt("", "successors", "successor list length R (default 4)", "R");
    opts.optopt(
        "",
        "replicas",
        "copies of each pair K, on K successive nodes (default 3)",
        "K",
    );
    opts.optopt(
        "",
        "stabilize-ms",
        "period of stabilize/fix-fingers/check-predecessor (default 500)",
        "T",
    );
    opts.optopt(
        "",
        "id",
        "node ID as hex digits (high end first) instead of SHA-1 of --listen",
        "HEX",
    );
    opts.optopt(
        "",
        "max-clients",
        "most DHT API clients at once (default 1024); ring peers have their own room",
        "N",
    );
    opts.optopt(
        "",
        "max-client-memory",
        "node-wide bound on what DHT clients can make the node hold, in MiB (default 64)",
        "MIB",
    );
    opts.optopt("", "log-file", "write this node's transcript here", "FILE");
    opts.optflag("h", "help", "print this help");
    opts
}

pub fn main(args: &[String]) -> u8 {
    let opts = options();
    let matches = match opts.parse(args) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("peerloop chord: {e}\n\n{}", opts.usage(ABOUT));
            return 2;
        }
    };
    if matches.opt_present("help") {
        print!("{}", opts.usage(ABOUT));
        return 0;
    }
    match run(&matches) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("peerloop chord: {e}");
            1
        }
    }
}

/// `HOST:PORT` to listen on (port 0 picks one) or to connect to, with
/// errors in words: "--join port 99999 is out of range (1–65535)".
pub fn address(what: &str, text: &str, listen: bool) -> Result<SocketAddr, String> {
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err(format!("{what} '{text}' is not HOST:PORT"));
    };
    let port = if listen {
        listen_port(&format!("{what} port"), port)?
    } else {
        connect_port(&format!("{what} port"), port)?
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("{what} '{text}' has no host"));
    }
    (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("{what} '{text}': cannot resolve {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{what} '{text}' resolves to no address"))
}

/// `--name N` in `min..=max`, or `default`; errors in words ("--successors
/// 0 is out of range (1–64)").
fn number<T>(m: &getopts::Matches, name: &str, default: T, min: T, max: T) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy + TryFrom<i128>,
{
    match m.opt_str(name) {
        None => Ok(default),
        Some(text) => number_in_range(&format!("--{name}"), &text, min, max),
    }
}

/// Room for ring peers is only real if the process may open that many
/// descriptors: raise the open-file limit for clients plus every peer and
/// link, and where it cannot go that high, serve fewer clients (said once).
fn fit_descriptors(max_clients: usize) -> usize {
    let ring = MAX_PEERS_IN + super::links::MAX_LINKS + 64;
    let want = (max_clients + ring) as u64;
    let limit = match crate::bench::process::raise_nofile(want) {
        Ok(limit) => limit,
        Err(e) => {
            log::warn!(
                "cannot read or raise the open-file limit: {}",
                crate::cli_words::plain_error(&e)
            );
            return max_clients;
        }
    };
    if limit >= want {
        return max_clients;
    }
    let fit = usize::try_from(limit / 2).unwrap_or(usize::MAX).max(1);
    log::warn!(
        "the open-file limit is {limit}: serving at most {fit} DHT clients (not {max_clients}) so ring peers keep room; raise `ulimit -n` for more"
    );
    fit.min(max_clients)
}

/// `peerloop chord ARGS` (without the command word) as the node's
/// configuration: the real `main` and the simulator (`peerloop test --sim`)
/// both build the node from this. The addresses are as given (`main` binds
/// them, and with port 0 puts the bound ones in).
pub fn config(args: &[String]) -> Result<Config, String> {
    let m = options().parse(args).map_err(|e| e.to_string())?;
    config_from(&m)
}

fn config_from(m: &getopts::Matches) -> Result<Config, String> {
    let listen = m.opt_str("listen").ok_or("--listen ADDR is required")?;
    let api = m.opt_str("api").ok_or("--api ADDR is required")?;
    let listen = address("--listen", &listen, true)?;
    let api = address("--api", &api, true)?;
    let join = m
        .opt_str("join")
        .map(|j| address("--join", &j, false))
        .transpose()?;
    let successors: usize = number(m, "successors", 4, 1, super::peer_wire::MAX_NODES)?;
    let replicas: usize = number(m, "replicas", 3, 1, super::peer_wire::MAX_NODES)?;
    let stabilize_ms: u64 = number(m, "stabilize-ms", 500, 5, 3_600_000)?;
    let max_clients: usize = number(m, "max-clients", DEFAULT_MAX_CLIENTS, 1, 1 << 20)?;
    let client_memory_mib: usize = number(
        m,
        "max-client-memory",
        DEFAULT_CLIENT_MEMORY >> 20,
        1,
        1 << 20,
    )?;
    let client_memory = client_memory_mib << 20;
    if replicas > successors + 1 {
        return Err(format!(
            "--replicas {replicas} needs a successor list of at least {} (--successors)",
            replicas - 1
        ));
    }
    if listen.ip().is_unspecified() {
        return Err(format!(
            "--listen {listen}: give the address peers should use, not a wildcard"
        ));
    }
    let id = match m.opt_str("id") {
        Some(hex) => Id::from_hex(&hex)?,
        None => Id::hash(listen.to_string().as_bytes()),
    };
    Ok(Config {
        listen,
        api,
        id,
        join,
        successors,
        replicas,
        stabilize: Duration::from_millis(stabilize_ms),
        max_clients,
        client_memory,
        wall: wall_clock(),
    })
}

/// The system clock read once at start, so the node's `now` instants map to
/// Unix time for version stamps (the protocol logic reads no clock).
fn wall_clock() -> super::version::WallClock {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    super::version::WallClock {
        at: std::time::Instant::now(),
        unix_ms: u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX),
    }
}

fn run(m: &getopts::Matches) -> Result<(), String> {
    crate::logging::init(m.opt_str("log-file").as_deref())?;
    let mut cfg = config_from(m)?;
    cfg.max_clients = fit_descriptors(cfg.max_clients);
    let peer_listener = TcpListener::bind(cfg.listen).map_err(|e| {
        format!(
            "cannot listen on {}: {}",
            cfg.listen,
            crate::cli_words::io_error(&e)
        )
    })?;
    let api_listener = TcpListener::bind(cfg.api).map_err(|e| {
        format!(
            "cannot listen on {}: {}",
            cfg.api,
            crate::cli_words::io_error(&e)
        )
    })?;
    let listen = peer_listener.local_addr().map_err(|e| e.to_string())?;
    if listen != cfg.listen && m.opt_str("id").is_none() {
        // Port 0: the ID hashes the address peers will really use.
        cfg.id = Id::hash(listen.to_string().as_bytes());
    }
    cfg.listen = listen;
    cfg.api = api_listener.local_addr().map_err(|e| e.to_string())?;
    let mut reactor = Reactor::new(vec![peer_listener, api_listener], true)
        .map_err(|e| format!("cannot start the event loop: {e}"))?;
    reactor.describe_frames_with(super::describe::describe);
    reactor
        .run(Node::new(cfg))
        .map_err(|e| format!("event loop failed: {e}"))
}
