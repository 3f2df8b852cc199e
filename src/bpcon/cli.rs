//! The BPCon subcommands: keygen, paxos (a replica), propose, kv.

use super::byzantine::{Adversary, Mode, ALLOW_ENV};
use super::client::{describe, percentile_ms, ApiClient};
use super::crypto::{self, PrivateKey, PublicKey, KEY_BITS};
use super::group::Group;
use super::node::Node;
use super::replica::{Config, Replica};
use super::storage::Storage;
use super::wal::Wal;
use crate::cli_words::number_in_range;
use crate::reactor::Reactor;
use getopts::Options;
use std::io::BufRead;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::path::Path;
use std::time::Duration;

fn parse(opts: &Options, args: &[String], usage: &str) -> Result<Option<getopts::Matches>, String> {
    let matches = opts.parse(args).map_err(|e| e.to_string())?;
    if matches.opt_present("h") {
        print!("{}", opts.usage(usage));
        return Ok(None);
    }
    Ok(Some(matches))
}

fn required(m: &getopts::Matches, name: &str) -> Result<String, String> {
    m.opt_str(name)
        .ok_or_else(|| format!("--{name} is required (see --help)"))
}

fn finish(command: &str, result: Result<u8, String>) -> u8 {
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("peerloop {command}: {e}");
            2
        }
    }
}

// ---- keygen --------------------------------------------------------------

pub fn keygen_main(args: &[String]) -> u8 {
    finish("keygen", keygen(args))
}

fn keygen(args: &[String]) -> Result<u8, String> {
    let mut opts = Options::new();
    opts.optflag("h", "help", "show this help");
    opts.optopt(
        "",
        "name",
        "replica name (letters, digits, - and _)",
        "NAME",
    );
    opts.optopt(
        "",
        "out",
        "directory for NAME.pem (private) and NAME.pub.pem (public)",
        "DIR",
    );
    opts.optopt("", "bits", "key size (default 2048)", "BITS");
    opts.optflag(
        "",
        "force",
        "replace an existing key pair (the other replicas then need the new public key)",
    );
    let usage = "usage: peerloop keygen --name NAME --out DIR [--force]\n\nWrites an RSA key pair (PEM) for one BPCon replica; refuses to overwrite one without --force.";
    let Some(m) = parse(&opts, args, usage)? else {
        return Ok(0);
    };
    let name = required(&m, "name")?;
    check_name(&name)?;
    let out = required(&m, "out")?;
    let bits = match m.opt_str("bits") {
        Some(b) => number_in_range("--bits", &b, 1024usize, 4096)?,
        None => KEY_BITS,
    };
    let dir = Path::new(&out);
    crypto::keygen(dir, &name, bits, m.opt_present("force"))?;
    println!(
        "wrote {} and {}",
        crypto::private_key_file(dir, &name).display(),
        crypto::public_key_file(dir, &name).display()
    );
    Ok(0)
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 32
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(format!(
            "replica name '{name}': 1-32 letters, digits, '-' or '_'"
        ));
    }
    Ok(())
}

// ---- paxos (a replica) ---------------------------------------------------

pub fn paxos_main(args: &[String]) -> u8 {
    finish("paxos", paxos(args))
}

fn resolve(addr: &str) -> Result<SocketAddr, String> {
    addr.to_socket_addrs()
        .map_err(|e| format!("bad address '{addr}': {e}"))?
        .next()
        .ok_or_else(|| format!("address '{addr}' resolves to nothing"))
}

fn bind(addr: &str, what: &str) -> Result<TcpListener, String> {
    TcpListener::bind(resolve(addr)?).map_err(|e| {
        format!(
            "cannot listen on {addr} ({what}): {}",
            crate::cli_words::io_error(&e)
        )
    })
}

fn paxos(args: &[String]) -> Result<u8, String> {
    let mut opts = Options::new();
    opts.optflag("h", "help", "show this help");
    opts.optopt("", "id", "this replica's name", "NAME");
    opts.optopt("", "listen", "address for replica links", "ADDR");
    opts.optopt(
        "",
        "peers",
        "every replica of the group, this one included: NAME=ADDR,... (the same list on every replica; without it the replica commits alone)",
        "LIST",
    );
    opts.optopt("", "key", "this replica's private key (PEM)", "FILE");
    opts.optopt(
        "",
        "peer-keys",
        "directory holding NAME.pub.pem for every replica",
        "DIR",
    );
    opts.optopt("", "api", "address for clients", "ADDR");
    opts.optopt(
        "",
        "data",
        "directory for the write-ahead log (durable state)",
        "DIR",
    );
    opts.optopt(
        "",
        "byzantine",
        &format!("misbehave: forge|equivocate|lie|huge-ballot|catchup-lie (tests only; needs {ALLOW_ENV}=1)"),
        "MODE",
    );
    opts.optopt("", "seed", "seed for random choices", "N");
    opts.optopt("", "log-file", "write this node's transcript here", "FILE");
    let usage = "usage: peerloop paxos --id NAME --listen ADDR --peers NAME=ADDR,... --key FILE --peer-keys DIR --api ADDR [--data DIR]\n\nRuns one BPCon replica. --peers lists the whole group, this replica included\n(the same list on every replica). At start it checks that --id is in --peers,\nthat --key matches --peer-keys/ID.pub.pem and that every replica has a public\nkey there. Reads `state` and `quit` on standard input.";
    let Some(m) = parse(&opts, args, usage)? else {
        return Ok(0);
    };
    crate::logging::init(m.opt_str("log-file").as_deref())?;
    let me = required(&m, "id")?;
    check_name(&me)?;
    let listen = required(&m, "listen")?;
    let api = required(&m, "api")?;
    let key_file = required(&m, "key")?;
    let byzantine = match m.opt_str("byzantine") {
        None => None,
        Some(mode) => {
            let mode = Mode::parse(&mode)?;
            if !Mode::allowed() {
                return Err(format!(
                    "--byzantine is for tests only: set {ALLOW_ENV}=1 to allow it"
                ));
            }
            Some(mode)
        }
    };
    let mut addresses: Vec<(String, SocketAddr)> = Vec::new();
    let mut listed = Vec::new();
    for entry in m
        .opt_str("peers")
        .unwrap_or_default()
        .split(',')
        .filter(|e| !e.is_empty())
    {
        let (name, addr) = entry
            .split_once('=')
            .ok_or_else(|| format!("--peers entry '{entry}' is not NAME=ADDR"))?;
        check_name(name)?;
        listed.push(name.to_string());
        if name == me {
            continue;
        }
        addresses.push((name.to_string(), resolve(addr)?));
    }
    if !listed.is_empty() && !listed.contains(&me) {
        return Err(format!(
            "replica '{me}' is not in --peers ({}): list the whole group, this replica included, with the same --peers on every replica",
            listed.join(",")
        ));
    }
    let mut names: Vec<String> = addresses.iter().map(|(n, _)| n.clone()).collect();
    names.push(me.clone());
    let group = Group::new(names)?;
    let index = group.index(&me).expect("me is in the group");
    let key = PrivateKey::load(Path::new(&key_file))?;
    let peer_keys = match m.opt_str("peer-keys") {
        Some(dir) => Some(dir),
        None if group.n() > 1 => {
            return Err("--peer-keys is required when there are peers (a directory with NAME.pub.pem for every replica)".into())
        }
        None => None,
    };
    let mut keys = Vec::new();
    for name in &group.names {
        let Some(dir) = &peer_keys else {
            keys.push(key.public()); // alone, with no key directory
            continue;
        };
        let file = crypto::public_key_file(Path::new(dir), name);
        let public = PublicKey::load(&file).map_err(|e| {
            format!("no usable public key for replica {name} ({e}): every replica in --peers needs NAME.pub.pem in --peer-keys")
        })?;
        if *name == me && !public.same_key(&key.public()) {
            return Err(format!(
                "--key {key_file} is not replica {me}'s key: it does not match {}, the key the other replicas check {me}'s signatures with",
                file.display()
            ));
        }
        keys.push(public);
    }
    let mut peers = vec![None; group.n()];
    for (name, addr) in &addresses {
        peers[group.index(name).expect("listed")] = Some(*addr);
    }
    let (storage, records): (Option<Box<dyn Storage>>, _) = match m.opt_str("data") {
        Some(dir) => {
            let (wal, records) = Wal::open(Path::new(&dir))?;
            (Some(Box::new(wal)), records)
        }
        None => (None, Vec::new()),
    };
    let seed = match m.opt_str("seed") {
        Some(s) => number_in_range("--seed", &s, 0u64, u64::MAX)?,
        None => rand::random(),
    };
    let peer_listener = bind(&listen, "replica links")?;
    let api_listener = bind(&api, "clients")?;
    let peer_addr = peer_listener.local_addr().map_err(|e| e.to_string())?;
    let api_addr = api_listener.local_addr().map_err(|e| e.to_string())?;
    let replica = Replica::new(
        Config {
            group: group.clone(),
            me: index,
            key: key.clone(),
            keys: keys.clone(),
            seed,
        },
        records,
    );
    println!(
        "replica {me}: group of n = {} ({}), f = {}, quorum = {}",
        group.n(),
        group.names.join(","),
        group.f,
        group.quorum
    );
    println!("replica {me}: peer address {peer_addr}, api address {api_addr}");
    log::info!(
        "replica {me} starting: n = {}, f = {}, quorum = {}, peers on {peer_addr}, clients on {api_addr}",
        group.n(),
        group.f,
        group.quorum
    );
    if let Some(mode) = byzantine {
        println!("replica {me}: MISBEHAVING ({}) for tests", mode.name());
        log::warn!("replica {me} misbehaves on purpose: {}", mode.name());
    }
    let mut node = Node::new(replica, storage, peers, &key, keys.clone());
    if let Some(mode) = byzantine {
        // The misbehaviour wraps the honest replica's output (see byzantine.rs).
        node = node.with_filter(Box::new(Adversary::new(mode, group, index, key, seed)));
    }
    let mut reactor =
        Reactor::new(vec![peer_listener, api_listener], true).map_err(|e| e.to_string())?;
    reactor.describe_frames_with(super::describe::describe);
    reactor.run(&mut node).map_err(|e| e.to_string())?;
    Ok(if node.failed() { 1 } else { 0 })
}

// ---- propose -------------------------------------------------------------

pub fn propose_main(args: &[String]) -> u8 {
    finish("propose", propose(args))
}

fn propose(args: &[String]) -> Result<u8, String> {
    let mut opts = Options::new();
    opts.optflag("h", "help", "show this help");
    opts.optopt("", "api", "a replica's client address", "ADDR");
    opts.optopt(
        "",
        "window",
        "operations in flight at once (default 1)",
        "N",
    );
    opts.optopt(
        "",
        "retry",
        "retry an operation answered with code 2 up to N times (default 0)",
        "N",
    );
    opts.optopt(
        "",
        "timeout",
        "seconds to wait for an answer (default 30)",
        "SECS",
    );
    opts.optflag("q", "quiet", "print only the summary");
    let usage = "usage: peerloop propose --api ADDR \"P,key,value\" [\"D,key,\" ...]\n\nSends operations to a BPCon replica and prints each result code and what it means:\n0 committed, 1 failed, 2 failed because the replica had been cut off (it caught up: retry).\nWith no operation arguments, reads one operation per line on standard input.\nExit status: 0 if every operation committed, 1 otherwise (also when the replica\ncannot be reached or does not answer in time: it says what may be missing).";
    let Some(m) = parse(&opts, args, usage)? else {
        return Ok(0);
    };
    let api = required(&m, "api")?;
    let number = |name: &str, default: u64, max: u64| -> Result<u64, String> {
        match m.opt_str(name) {
            Some(v) => number_in_range(&format!("--{name}"), &v, u64::from(name != "retry"), max),
            None => Ok(default),
        }
    };
    let window = number("window", 1, 100_000)? as usize;
    let retries = number("retry", 0, 1000)? as u32;
    let timeout_secs = number("timeout", 30, 86_400)?;
    let timeout = Duration::from_secs(timeout_secs);
    let ops: Vec<String> = if m.free.is_empty() {
        std::io::stdin()
            .lock()
            .lines()
            .map_while(Result::ok)
            .filter(|l| !l.trim().is_empty())
            .collect()
    } else {
        m.free.clone()
    };
    if ops.is_empty() {
        return Err("no operation given (see --help)".into());
    }
    let quiet = m.opt_present("q");
    let started = std::time::Instant::now();
    // Failing to reach the replica, or no answer in time: a runtime
    // failure (exit 1), said once.
    let outcomes = match ApiClient::connect(&api, timeout).and_then(|mut client| {
        client.run(&ops, window, retries, |_, o| {
            if !quiet {
                println!("{}", describe(o));
            }
        })
    }) {
        Ok(outcomes) => outcomes,
        Err(e) => {
            eprintln!("peerloop propose: {e}");
            return Ok(1);
        }
    };
    let elapsed = started.elapsed();
    let ok = outcomes.iter().filter(|o| o.code == 0).count();
    if ops.len() > 1 || quiet {
        let mut latencies: Vec<Duration> = outcomes.iter().map(|o| o.latency).collect();
        latencies.sort();
        println!(
            "{} operations: {ok} committed, {} failed; {:.0} ops/s, latency p50 {:.2} ms, p99 {:.2} ms",
            ops.len(),
            ops.len() - ok,
            ops.len() as f64 / elapsed.as_secs_f64(),
            percentile_ms(&latencies, 0.5),
            percentile_ms(&latencies, 0.99)
        );
    }
    Ok(if ok == ops.len() { 0 } else { 1 })
}

// ---- kv ------------------------------------------------------------------

pub fn kv_main(args: &[String]) -> u8 {
    finish("kv", kv(args))
}

fn kv(args: &[String]) -> Result<u8, String> {
    let mut opts = Options::new();
    opts.optflag("h", "help", "show this help");
    opts.optopt("", "api", "a replica's client address", "ADDR");
    let usage = "usage: peerloop kv --api ADDR get KEY\n       peerloop kv --api ADDR dump\n\nReads a replica's store: one key, or all of it as JSON (with the number of\ncommitted operations and the digest of the committed sequence).";
    let Some(m) = parse(&opts, args, usage)? else {
        return Ok(0);
    };
    let api = required(&m, "api")?;
    let words: Vec<&str> = m.free.iter().map(String::as_str).collect();
    if !matches!(words.as_slice(), ["get", _] | ["dump"]) {
        return Err("expected `get KEY` or `dump` (see --help)".into());
    }
    // Not reaching the replica is a runtime failure (exit 1), said once.
    match kv_run(&api, &words) {
        Ok(code) => Ok(code),
        Err(e) => {
            eprintln!("peerloop kv: {e}");
            Ok(1)
        }
    }
}

fn kv_run(api: &str, words: &[&str]) -> Result<u8, String> {
    let mut client = ApiClient::connect(api, Duration::from_secs(10))?;
    match words {
        ["get", key] => match client.get(key)? {
            Some(value) => {
                println!("{value}");
                Ok(0)
            }
            None => {
                eprintln!("peerloop kv: no key '{key}'");
                Ok(1)
            }
        },
        ["dump"] => {
            println!("{}", client.dump()?);
            Ok(0)
        }
        _ => Err("expected `get KEY` or `dump` (see --help)".into()),
    }
}
