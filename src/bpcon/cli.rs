//! The BPCon subcommands: keygen, paxos (a replica), propose, kv.

use super::byzantine::{Adversary, Mode, ALLOW_ENV};
use super::client::{describe, percentile_ms, ApiClient};
use super::crypto::{self, PrivateKey, PublicKey, KEY_BITS};
use super::group::Group;
use super::node::Node;
use super::replica::{Config, Replica};
use super::storage::Storage;
use super::wal::Wal;
use crate::cli::address::{option_address, PortUse};
use crate::cli::node::{run_node, Listen, Made};
use crate::cli::{number, number_or, start_logging, Command, Failure, ParseErrors};
use getopts::{Matches, Options};
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// A BPCon command: every mistake and every refusal to start is one line,
/// `peerloop paxos: ...`, and exit 2 (docs/bpcon.md); what a command
/// returns as `Ok(code)` it has said itself.
fn bpcon_command(
    name: &str,
    opts: Options,
    usage: &str,
    body: impl FnOnce(&Matches) -> Result<u8, String>,
    args: &[String],
) -> u8 {
    Command::new(&format!("peerloop {name}"), opts, usage)
        .parse_errors(ParseErrors::Named)
        .run(args, |m| body(m).map_err(Failure::Usage))
}

fn required(m: &Matches, name: &str) -> Result<String, String> {
    crate::cli::required(m, name).map_err(|e| format!("{e} (see --help)"))
}

// ---- keygen --------------------------------------------------------------

pub fn keygen_main(args: &[String]) -> u8 {
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
    bpcon_command("keygen", opts, usage, keygen, args)
}

fn keygen(m: &Matches) -> Result<u8, String> {
    let name = required(m, "name")?;
    check_name(&name)?;
    let out = required(m, "out")?;
    let bits = number(m, "bits", 1024usize, 4096)?.unwrap_or(KEY_BITS);
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
    let usage = "usage: peerloop paxos --id NAME --listen ADDR --peers NAME=ADDR,... --key FILE --peer-keys DIR --api ADDR [--data DIR]\n\nRuns one BPCon replica. --peers lists the whole group, this replica included\n(the same list on every replica). At start it checks that --id is in --peers,\nthat --key matches --peer-keys/ID.pub.pem and that every replica has a public\nkey there. Reads `state` and `quit` on standard input.";
    Command::new("peerloop paxos", paxos_options(), usage)
        .parse_errors(ParseErrors::Named)
        .run(args, |m| paxos(m).map_err(Failure::as_usage))
}

fn paxos_options() -> Options {
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
    opts
}

/// `peerloop paxos` options, parsed once: the replica process and the
/// simulator (`peerloop test --sim`, which has its own keys and disk and
/// reads neither `--key`, `--peer-keys` nor `--data`) both build on this.
#[derive(Debug, Clone)]
pub struct PaxosArgs {
    pub me: String,
    /// `--listen` and `--api` as given (port 0: the process picks one).
    pub listen: SocketAddr,
    pub api: SocketAddr,
    /// The whole group, this replica included (alone without `--peers`).
    pub group: Group,
    /// This replica's place in the group.
    pub index: usize,
    /// Every replica's address by its place in the group; `None` for this one.
    pub peers: Vec<Option<SocketAddr>>,
    pub key: Option<String>,
    pub peer_keys: Option<String>,
    pub data: Option<String>,
    pub byzantine: Option<Mode>,
    /// `--seed`; without it a process seeds from the system, the simulator
    /// from the world's seed.
    pub seed: Option<u64>,
}

impl PaxosArgs {
    /// `peerloop paxos ARGS` (without the command word).
    pub fn from_args(args: &[String]) -> Result<PaxosArgs, String> {
        let m = paxos_options().parse(args).map_err(|e| e.to_string())?;
        PaxosArgs::from_matches(&m)
    }

    fn from_matches(m: &Matches) -> Result<PaxosArgs, String> {
        let me = required(m, "id")?;
        check_name(&me)?;
        let listen = option_address("--listen", &required(m, "listen")?, PortUse::Listen)?;
        let api = option_address("--api", &required(m, "api")?, PortUse::Listen)?;
        let byzantine = m
            .opt_str("byzantine")
            .map(|b| Mode::parse(&b))
            .transpose()?;
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
            addresses.push((
                name.to_string(),
                option_address("--peers", addr, PortUse::Connect)?,
            ));
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
        let mut peers = vec![None; group.n()];
        for (name, addr) in &addresses {
            peers[group.index(name).expect("listed")] = Some(*addr);
        }
        Ok(PaxosArgs {
            me,
            listen,
            api,
            group,
            index,
            peers,
            key: m.opt_str("key"),
            peer_keys: m.opt_str("peer-keys"),
            data: m.opt_str("data"),
            byzantine,
            seed: number(m, "seed", 0u64, u64::MAX)?,
        })
    }

    /// What a replica prints once it listens on `peer` and `api`.
    pub fn banner(&self, peer: SocketAddr, api: SocketAddr) -> Vec<String> {
        let (me, group) = (&self.me, &self.group);
        let mut lines = vec![
            format!(
                "replica {me}: group of n = {} ({}), f = {}, quorum = {}",
                group.n(),
                group.names.join(","),
                group.f,
                group.quorum
            ),
            format!("replica {me}: peer address {peer}, api address {api}"),
        ];
        if let Some(mode) = self.byzantine {
            lines.push(format!(
                "replica {me}: MISBEHAVING ({}) for tests",
                mode.name()
            ));
        }
        lines
    }
}

fn paxos(m: &Matches) -> Result<u8, Failure> {
    start_logging(m)?;
    let args = PaxosArgs::from_matches(m).map_err(Failure::Usage)?;
    paxos_run(args).map_err(Failure::Usage)
}

fn paxos_run(args: PaxosArgs) -> Result<u8, String> {
    let me = &args.me;
    let key_file = args.key.clone().ok_or("--key is required (see --help)")?;
    if args.byzantine.is_some() && !Mode::allowed() {
        return Err(format!(
            "--byzantine is for tests only: set {ALLOW_ENV}=1 to allow it"
        ));
    }
    let group = &args.group;
    let key = PrivateKey::load(Path::new(&key_file))?;
    let peer_keys = match &args.peer_keys {
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
        if name == me && !public.same_key(&key.public()) {
            return Err(format!(
                "--key {key_file} is not replica {me}'s key: it does not match {}, the key the other replicas check {me}'s signatures with",
                file.display()
            ));
        }
        keys.push(public);
    }
    let (storage, records): (Option<Box<dyn Storage>>, _) = match &args.data {
        Some(dir) => {
            let (wal, records) = Wal::open(Path::new(dir))?;
            (Some(Box::new(wal)), records)
        }
        None => (None, Vec::new()),
    };
    let seed = args.seed.unwrap_or_else(rand::random);
    let listen = [
        Listen::said_as(
            args.listen,
            format!("cannot listen on {} (replica links)", args.listen),
        ),
        Listen::said_as(args.api, format!("cannot listen on {} (clients)", args.api)),
    ];
    let node = run_node(&listen, super::describe::describe, |bound| {
        let (peer_addr, api_addr) = (bound[0], bound[1]);
        let replica = Replica::new(
            Config {
                group: group.clone(),
                me: args.index,
                key: key.clone(),
                keys: keys.clone(),
                seed,
            },
            records,
        );
        log::info!(
            "replica {me} starting: n = {}, f = {}, quorum = {}, peers on {peer_addr}, clients on {api_addr}",
            group.n(),
            group.f,
            group.quorum
        );
        let mut node = Node::new(replica, storage, args.peers.clone(), &key, keys.clone());
        if let Some(mode) = args.byzantine {
            log::warn!("replica {me} misbehaves on purpose: {}", mode.name());
            // The misbehaviour wraps the honest replica's output (see byzantine/).
            node = node.with_filter(Box::new(Adversary::new(
                mode,
                group.clone(),
                args.index,
                key.clone(),
                seed,
            )));
        }
        Ok(Made {
            protocol: node,
            banner: args.banner(peer_addr, api_addr),
        })
    })
    .map_err(|f| f.message().to_string())?;
    Ok(if node.failed() { 1 } else { 0 })
}

// ---- propose -------------------------------------------------------------

pub fn propose_main(args: &[String]) -> u8 {
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
    bpcon_command("propose", opts, usage, propose, args)
}

fn propose(m: &Matches) -> Result<u8, String> {
    let api = required(m, "api")?;
    let window: usize = number_or(m, "window", 1, 1, 100_000)?;
    let retries: u32 = number_or(m, "retry", 0, 0, 1000)?;
    let timeout = Duration::from_secs(number_or(m, "timeout", 30, 1, 86_400)?);
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
    let mut opts = Options::new();
    opts.optflag("h", "help", "show this help");
    opts.optopt("", "api", "a replica's client address", "ADDR");
    let usage = "usage: peerloop kv --api ADDR get KEY\n       peerloop kv --api ADDR dump\n\nReads a replica's store: one key, or all of it as JSON (with the number of\ncommitted operations and the digest of the committed sequence).";
    bpcon_command("kv", opts, usage, kv, args)
}

fn kv(m: &Matches) -> Result<u8, String> {
    let api = required(m, "api")?;
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
