//! `peerloop chord`: run one Chord node.

use super::driver::Driver;
use super::id::Id;
use super::node::{Config, Node};
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

fn resolve(what: &str, text: &str) -> Result<SocketAddr, String> {
    text.to_socket_addrs()
        .map_err(|e| format!("{what} '{text}': {e}"))?
        .next()
        .ok_or_else(|| format!("{what} '{text}' resolves to no address"))
}

fn number<T>(m: &getopts::Matches, name: &str, default: T, min: T) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display,
{
    match m.opt_str(name) {
        None => Ok(default),
        Some(text) => match text.parse::<T>() {
            Ok(v) if v >= min => Ok(v),
            _ => Err(format!(
                "--{name} '{text}' must be a number of at least {min}"
            )),
        },
    }
}

fn run(m: &getopts::Matches) -> Result<(), String> {
    crate::logging::init(m.opt_str("log-file").as_deref())?;
    let listen = m.opt_str("listen").ok_or("--listen ADDR is required")?;
    let api = m.opt_str("api").ok_or("--api ADDR is required")?;
    let listen = resolve("--listen", &listen)?;
    let api = resolve("--api", &api)?;
    let join = m
        .opt_str("join")
        .map(|j| resolve("--join", &j))
        .transpose()?;
    let successors: usize = number(m, "successors", 4, 1)?;
    let replicas: usize = number(m, "replicas", 3, 1)?;
    let stabilize_ms: u64 = number(m, "stabilize-ms", 500, 5)?;
    if successors > super::peer_wire::MAX_NODES {
        return Err(format!(
            "--successors {successors} is over {}",
            super::peer_wire::MAX_NODES
        ));
    }
    if replicas > successors + 1 {
        return Err(format!(
            "--replicas {replicas} needs a successor list of at least {} (--successors)",
            replicas - 1
        ));
    }
    let peer_listener =
        TcpListener::bind(listen).map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let api_listener =
        TcpListener::bind(api).map_err(|e| format!("cannot listen on {api}: {e}"))?;
    let listen = peer_listener.local_addr().map_err(|e| e.to_string())?;
    let api = api_listener.local_addr().map_err(|e| e.to_string())?;
    if listen.ip().is_unspecified() {
        return Err(format!(
            "--listen {listen}: give the address peers should use, not a wildcard"
        ));
    }
    let id = match m.opt_str("id") {
        Some(hex) => Id::from_hex(&hex)?,
        None => Id::hash(listen.to_string().as_bytes()),
    };
    let cfg = Config {
        listen,
        api,
        id,
        join,
        successors,
        replicas,
        stabilize: Duration::from_millis(stabilize_ms),
    };
    let mut reactor = Reactor::new(vec![peer_listener, api_listener], true)
        .map_err(|e| format!("cannot start the event loop: {e}"))?;
    reactor.describe_frames_with(super::describe::describe);
    let mut driver = Driver {
        node: Node::new(cfg),
    };
    reactor
        .run(&mut driver)
        .map_err(|e| format!("event loop failed: {e}"))
}
