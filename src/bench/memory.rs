//! `peerloop bench memory`: the resident memory of one idle node of each
//! protocol, in one table. Each protocol runs a small real network of
//! `nodes` processes on loopback (CRC: a chain of servers; Gossip: nodes
//! bootstrapped through the first; Chord: a ring joined through the first;
//! BPCon: one group with RSA-2048 keys and logs on disk), waits until every
//! node is part of it, lets it idle, then reads each process's `VmRSS`.
//! The floor beside it is the same binary doing nothing but wait
//! (`peerloop relay`, listening, no connection): what a node costs above
//! the program itself.

use super::process::{rss_bytes, TempDir};
use crate::testkit::Proc;
use crate::util::{free_ports, nearest_rank};
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// How long every network gets to form, and to sit idle before measuring.
const FORM: Duration = Duration::from_secs(30);
const IDLE: Duration = Duration::from_millis(1500);

/// One protocol's row: RSS of each node, bytes.
pub struct MemoryRow {
    pub protocol: &'static str,
    pub what: String,
    pub rss: Vec<u64>,
}

fn command(exe: &Path, args: &[String]) -> Command {
    let mut c = Command::new(exe);
    // Start-up warnings (a replica dialling one not started yet) would
    // interleave with the table; a node that fails shows as a wait that
    // names it.
    c.args(args)
        .env("RUST_LOG", "warn")
        .stderr(std::process::Stdio::null());
    c
}

fn addr(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

fn settle_and_measure(procs: &[Proc]) -> Result<Vec<u64>, String> {
    std::thread::sleep(IDLE); // idle time is what is measured: nothing to await
    procs.iter().map(|p| rss_bytes(p.pid())).collect()
}

fn crc(exe: &Path, n: usize) -> Result<Vec<u64>, String> {
    let ports = free_ports(n)?;
    let mut procs: Vec<Proc> = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let mut args: Vec<String> = ["server", "--id", &(i + 1).to_string()]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend(["--servername".into(), format!("s{}", i + 1)]);
        args.extend([
            "--port".into(),
            port.to_string(),
            "--bind".into(),
            "127.0.0.1".into(),
        ]);
        if i > 0 {
            args.extend(["--connect_to_host".into(), "127.0.0.1".into()]);
            args.extend(["--connect_to_port".into(), ports[i - 1].to_string()]);
        }
        let mut p = Proc::spawn(&format!("CRC server {}", i + 1), command(exe, &args), true)?;
        p.wait_line(FORM, "its listening line", |l| {
            l.starts_with("listening on")
        })?;
        // Joined before the next one joins it: a joining server tells the
        // network only of itself, so a server that joined this one before
        // this one was in the network would stay unknown beyond it.
        p.wait_state("every earlier server in hosts_db", FORM, |s| {
            s["hosts_db"].as_array().map(Vec::len) == Some(i)
        })?;
        procs.push(p);
    }
    for p in &mut procs {
        p.wait_state("every server in hosts_db", FORM, |s| {
            s["hosts_db"].as_array().map(Vec::len) == Some(n - 1)
        })?;
    }
    settle_and_measure(&procs)
}

fn gossip(exe: &Path, n: usize) -> Result<Vec<u64>, String> {
    let ports = free_ports(2 * n)?;
    let mut procs: Vec<Proc> = Vec::new();
    for i in 0..n {
        let mut args: Vec<String> = vec![
            "gossip".into(),
            "--p2p-address".into(),
            addr(ports[2 * i]),
            "--api-address".into(),
            addr(ports[2 * i + 1]),
            "--degree".into(),
            "8".into(),
        ];
        if i > 0 {
            args.extend(["--bootstrapper".into(), addr(ports[0])]);
        }
        procs.push(Proc::spawn(
            &format!("gossip node {i}"),
            command(exe, &args),
            true,
        )?);
    }
    for p in &mut procs {
        p.wait_state("a peer", FORM, |s| s["peer_count"].as_u64() >= Some(1))?;
    }
    settle_and_measure(&procs)
}

fn chord(exe: &Path, n: usize) -> Result<Vec<u64>, String> {
    let ports = free_ports(2 * n)?;
    let mut procs: Vec<Proc> = Vec::new();
    for i in 0..n {
        let mut args: Vec<String> = vec![
            "chord".into(),
            "--listen".into(),
            addr(ports[2 * i]),
            "--api".into(),
            addr(ports[2 * i + 1]),
        ];
        if i > 0 {
            args.extend(["--join".into(), addr(ports[0])]);
        }
        let mut p = Proc::spawn(&format!("chord node {i}"), command(exe, &args), true)?;
        p.wait_state("joined", FORM, |s| s["joined"] == Value::Bool(true))?;
        procs.push(p);
    }
    for p in &mut procs {
        p.wait_state("a predecessor", FORM, |s| !s["predecessor"].is_null())?;
    }
    settle_and_measure(&procs)
}

fn bpcon(exe: &Path, n: usize) -> Result<Vec<u64>, String> {
    let dir = TempDir::new("memory")?;
    let names: Vec<String> = (0..n).map(|i| format!("r{i}")).collect();
    for name in &names {
        crate::bpcon::crypto::keygen(dir.path(), name, crate::bpcon::crypto::KEY_BITS, false)?;
    }
    let ports = free_ports(2 * n)?;
    let peers: Vec<String> = names
        .iter()
        .enumerate()
        .map(|(i, name)| format!("{name}={}", addr(ports[2 * i])))
        .collect();
    let mut procs: Vec<Proc> = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let keys = dir.path().display().to_string();
        let args: Vec<String> = vec![
            "paxos".into(),
            "--id".into(),
            name.clone(),
            "--listen".into(),
            addr(ports[2 * i]),
            "--api".into(),
            addr(ports[2 * i + 1]),
            "--peers".into(),
            peers.join(","),
            "--key".into(),
            crate::bpcon::crypto::private_key_file(dir.path(), name)
                .display()
                .to_string(),
            "--peer-keys".into(),
            keys.clone(),
            "--data".into(),
            format!("{keys}/data-{name}"),
        ];
        procs.push(Proc::spawn(
            &format!("replica {name}"),
            command(exe, &args),
            true,
        )?);
    }
    for p in &mut procs {
        p.wait_state("links to every other replica", FORM, |s| {
            s["links"].as_array().map(Vec::len) == Some(n - 1)
        })?;
    }
    settle_and_measure(&procs)
}

/// The same binary waiting on one listening socket, nothing else.
fn floor(exe: &Path) -> Result<u64, String> {
    let ports = free_ports(2)?;
    let args: Vec<String> = vec![
        "relay".into(),
        "--listen".into(),
        addr(ports[0]),
        "--next".into(),
        addr(ports[1]),
    ];
    let p = Proc::spawn("idle peerloop", command(exe, &args), false)?;
    std::thread::sleep(IDLE);
    rss_bytes(p.pid())
}

/// Every protocol's row, and the floor.
pub fn run(exe: &Path, n: usize) -> Result<(Vec<MemoryRow>, u64), String> {
    let floor = floor(exe)?;
    let rows = vec![
        MemoryRow {
            protocol: "CRC",
            what: format!("server in a chain of {n}"),
            rss: crc(exe, n)?,
        },
        MemoryRow {
            protocol: "Gossip",
            what: format!("node of {n}, degree 8"),
            rss: gossip(exe, n)?,
        },
        MemoryRow {
            protocol: "Chord",
            what: format!("node of a {n}-node ring"),
            rss: chord(exe, n)?,
        },
        MemoryRow {
            protocol: "BPCon",
            what: format!("replica of {n}, RSA-2048"),
            rss: bpcon(exe, n)?,
        },
    ];
    Ok((rows, floor))
}

fn kib(bytes: u64) -> String {
    format!("{:.0} KiB", bytes as f64 / 1024.0)
}

pub fn print(rows: &[MemoryRow], floor: u64) {
    println!(
        "RSS per idle node (VmRSS after {} ms idle; median of the nodes, min–max):",
        IDLE.as_millis()
    );
    println!("(the median is p50; {})", crate::util::PERCENTILE_RULE);
    println!(
        "  {:<8} {:<28} {:>10} {:>19} {:>12}",
        "protocol", "node", "median", "min–max", "above floor"
    );
    for row in rows {
        let mut rss = row.rss.clone();
        rss.sort_unstable();
        let median = nearest_rank(&rss, 0.5).unwrap_or(0);
        let (min, max) = (
            rss.first().copied().unwrap_or(0),
            rss.last().copied().unwrap_or(0),
        );
        println!(
            "  {:<8} {:<28} {:>10} {:>19} {:>12}",
            row.protocol,
            row.what,
            kib(median),
            format!("{}–{}", kib(min), kib(max)),
            kib(median.saturating_sub(floor)),
        );
    }
    println!(
        "  floor: the same binary idle on one socket (`peerloop relay`): {}",
        kib(floor)
    );
}
