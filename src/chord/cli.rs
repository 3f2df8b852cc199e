//! `peerloop chord`: run one Chord node.

use super::id::Id;
use super::node::{Config, Node, DEFAULT_CLIENT_MEMORY, DEFAULT_MAX_CLIENTS, MAX_PEERS_IN};
use crate::cli::address::{option_address, PortUse};
use crate::cli::node::{run_node, Listen, Made};
use crate::cli::{number_or, runtime_error, start_logging, Command, Failure};
use getopts::Options;
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
    // A mistake found after the options parse (`--listen` missing, a bad
    // address) has always been exit 1 here, unlike the other commands' 2.
    Command::new("peerloop chord", options(), ABOUT).run(args, |m| {
        run(m)?;
        Ok(0)
    })
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
    let listen = option_address("--listen", &listen, PortUse::Listen)?;
    let api = option_address("--api", &api, PortUse::Listen)?;
    let join = m
        .opt_str("join")
        .map(|j| option_address("--join", &j, PortUse::Connect))
        .transpose()?;
    let successors: usize = number_or(m, "successors", 4, 1, super::peer_wire::MAX_NODES)?;
    let replicas: usize = number_or(m, "replicas", 3, 1, super::peer_wire::MAX_NODES)?;
    let stabilize_ms: u64 = number_or(m, "stabilize-ms", 500, 5, 3_600_000)?;
    let max_clients: usize = number_or(m, "max-clients", DEFAULT_MAX_CLIENTS, 1, 1 << 20)?;
    let client_memory_mib: usize = number_or(
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

fn run(m: &getopts::Matches) -> Result<(), Failure> {
    start_logging(m)?;
    let mut cfg = runtime_error(config_from(m))?;
    cfg.max_clients = fit_descriptors(cfg.max_clients);
    let listen = [Listen::on(cfg.listen), Listen::on(cfg.api)];
    run_node(&listen, super::describe::describe, |bound| {
        if bound[0] != cfg.listen && m.opt_str("id").is_none() {
            // Port 0: the ID hashes the address peers will really use.
            cfg.id = Id::hash(bound[0].to_string().as_bytes());
        }
        cfg.listen = bound[0];
        cfg.api = bound[1];
        Ok(Made::quiet(Node::new(cfg)))
    })?;
    Ok(())
}
