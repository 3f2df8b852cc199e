//! The BPCon benchmark: four replica processes with RSA-2048 keys on
//! loopback (write-ahead log fsync'd), measured from clients, with where
//! the time goes per operation (the replicas' own counters) and the floor
//! (`floor.rs`) measured in the same run.
//! Run with `peerloop bench bpcon` or `cargo bench --bench bpcon` (release build).

use super::client::{percentile_ms, ApiClient};
use super::crypto::{self, PrivateKey};
use super::floor::{self, ms, CriticalPath, FSYNC_SAMPLES, ROUND_TRIPS, RSA_SAMPLES};
use super::messages::limits::max_batch_bytes;
use super::op::{Batch, Op, Request, RequestId, MAX_BATCH_OPS};
use crate::bench::process::TempDir;
use crate::testkit::Proc;
use serde_json::Value;
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const NAMES: [&str; 4] = ["A", "B", "C", "D"];
/// How long a replica may take to answer `state`.
const STATE_TIMEOUT: Duration = Duration::from_secs(10);

fn run_ops(api: &str, ops: &[String], window: usize) -> Result<Vec<Duration>, String> {
    let mut client = ApiClient::connect(api, Duration::from_secs(60))?;
    let outcomes = client.run(ops, window, 5, |_, _| {})?;
    if let Some(bad) = outcomes.iter().find(|o| o.code != 0) {
        return Err(format!("'{}' failed: {}", bad.op, bad.message));
    }
    Ok(outcomes.iter().map(|o| o.latency).collect())
}

/// One row of the first table; the p50 in ms.
fn report(label: &str, ops: usize, elapsed: Duration, mut latencies: Vec<Duration>) -> f64 {
    latencies.sort();
    let p50 = percentile_ms(&latencies, 0.5);
    println!(
        "| {label} | {ops} | {:.0} | {p50:.2} | {:.2} |",
        ops as f64 / elapsed.as_secs_f64(),
        percentile_ms(&latencies, 0.99)
    );
    p50
}

fn states(procs: &mut [Proc]) -> Result<Vec<Value>, String> {
    procs.iter_mut().map(|p| p.state(STATE_TIMEOUT)).collect()
}

/// A counter's growth between two `state` lines.
fn grew(before: &Value, after: &Value, field: &str) -> u64 {
    let at = |s: &Value| s[field].as_u64().unwrap_or(0);
    at(after).saturating_sub(at(before))
}

/// What one run cost, per operation, from the replicas' counters.
struct Spent {
    label: String,
    ops: usize,
    wall: Duration,
    before: Vec<Value>,
    after: Vec<Value>,
}

impl Spent {
    /// (sign, verify, fsync, other CPU, network and waiting) in ms per
    /// operation at replica `i`.
    fn per_op(&self, i: usize) -> [f64; 5] {
        let (a, b) = (&self.before[i], &self.after[i]);
        let per_op = |us: u64| us as f64 / 1000.0 / self.ops as f64;
        let (sign, verify) = (grew(a, b, "sign_us"), grew(a, b, "verify_us"));
        let (fsync, busy) = (grew(a, b, "fsync_us"), grew(a, b, "busy_us"));
        let other = busy.saturating_sub(sign + verify + fsync);
        let waiting = (self.wall.as_micros() as u64).saturating_sub(busy);
        [
            per_op(sign),
            per_op(verify),
            per_op(fsync),
            per_op(other),
            per_op(waiting),
        ]
    }

    fn print_rows(&self) {
        let wall_ms = ms(self.wall) / self.ops as f64;
        let row = |who: &str, t: [f64; 5]| {
            println!(
                "| {} | {who} | {wall_ms:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} |",
                self.label, t[0], t[1], t[2], t[3], t[4]
            )
        };
        row("A (the client's)", self.per_op(0));
        let mut mean = [0.0; 5];
        for i in 0..self.after.len() {
            for (m, t) in mean.iter_mut().zip(self.per_op(i)) {
                *m += t / self.after.len() as f64;
            }
        }
        row("mean of the 4", mean);
    }

    /// Slots decided and signatures made, at replica A.
    fn slots(&self) -> (u64, u64, u64) {
        let (a, b) = (&self.before[0], &self.after[0]);
        (
            grew(a, b, "slots"),
            grew(a, b, "signs"),
            grew(a, b, "verifies"),
        )
    }
}

/// The most of the bench's own operations one batch (slot) carries in its
/// group: the operation limit, or fewer if the byte limit binds first.
fn ops_per_full_batch(sample_op: &str) -> Result<usize, String> {
    let request = Request {
        id: RequestId { client: 0, seq: 0 },
        op: Op::parse(sample_op).map_err(|e| e.to_string())?,
    };
    let cost = Batch::request_cost(&request);
    Ok(MAX_BATCH_OPS.min((max_batch_bytes(NAMES.len()) - 2) / cost.max(1)))
}

/// The bench with `ops_per_proposer` operations per pipelined proposer,
/// each keeping `in_flight` of them outstanding.
pub fn run(
    binary: &std::path::Path,
    ops_per_proposer: usize,
    in_flight: usize,
) -> Result<(), String> {
    let dir = TempDir::new("bpcon")?;
    let keys = dir.path().join("keys");
    for name in NAMES {
        crypto::keygen(&keys, name, crypto::KEY_BITS, false)?;
    }
    let mut peer_ports = crate::util::free_ports(8)?;
    let api_ports = peer_ports.split_off(4);
    // The whole group, each replica included.
    let peers: Vec<String> = (0..4)
        .map(|j| format!("{}=127.0.0.1:{}", NAMES[j], peer_ports[j]))
        .collect();
    let mut procs = Vec::new();
    for (i, name) in NAMES.iter().enumerate() {
        let mut command = Command::new(binary);
        command
            .args(["paxos", "--id", name])
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", peer_ports[i]))
            .arg("--api")
            .arg(format!("127.0.0.1:{}", api_ports[i]))
            .arg("--peers")
            .arg(peers.join(","))
            .arg("--key")
            .arg(keys.join(format!("{name}.pem")))
            .arg("--peer-keys")
            .arg(&keys)
            .arg("--data")
            .arg(dir.path().join(format!("data-{name}")))
            .stderr(Stdio::null());
        procs.push(Proc::spawn(&format!("replica {name}"), command, true)?);
    }
    let api = |i: usize| format!("127.0.0.1:{}", api_ports[i]);
    let deadline = Instant::now() + Duration::from_secs(20);
    for i in 0..4 {
        while TcpStream::connect(api(i)).is_err() {
            if Instant::now() > deadline {
                return Err("replicas did not start".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    // Let every link come up.
    let _ = run_ops(&api(0), &["P,warmup,1".to_string()], 1)?;
    std::thread::sleep(Duration::from_millis(300));
    // The floor, on the same disk and cores, while the replicas idle.
    let key = PrivateKey::load(&keys.join("A.pem"))?;
    let costs_before = floor::measure(dir.path(), &key)?;

    println!("n = 4, f = 1, quorum = 3, RSA-2048 PKCS#1 v1.5/SHA-1, one process per replica, WAL fsync'd\n");
    println!("({})\n", crate::util::PERCENTILE_RULE);
    println!("| run | operations | committed ops/s | p50 ms | p99 ms |");
    println!("|---|---|---|---|---|");
    // One operation at a time: the latency of a lone operation.
    let ops: Vec<String> = (0..200).map(|k| format!("P,solo{k},{k}")).collect();
    let s0 = states(&mut procs)?;
    let started = Instant::now();
    let lat = run_ops(&api(0), &ops, 1)?;
    let lone_wall = started.elapsed();
    let lone_p50 = report("1 proposer, 1 op in flight", ops.len(), lone_wall, lat);
    let s1 = states(&mut procs)?;
    let lone = Spent {
        label: "1 op in flight".into(),
        ops: ops.len(),
        wall: lone_wall,
        before: s0,
        after: s1.clone(),
    };

    // One proposer with a deep pipeline: requests queue up and are batched.
    let ops: Vec<String> = (0..ops_per_proposer)
        .map(|k| format!("P,one{k},{k}"))
        .collect();
    // A proposer's batch is also bounded by what it keeps in flight.
    let batch = ops_per_full_batch(&ops[ops.len() - 1])?.min(in_flight);
    let started = Instant::now();
    let lat = run_ops(&api(0), &ops, in_flight)?;
    let piped_wall = started.elapsed();
    report(
        &format!("1 proposer, {in_flight} in flight"),
        ops.len(),
        piped_wall,
        lat,
    );
    let s2 = states(&mut procs)?;
    let piped = Spent {
        label: format!("{in_flight} in flight"),
        ops: ops.len(),
        wall: piped_wall,
        before: s1,
        after: s2,
    };
    let piped_rate = ops.len() as f64 / piped_wall.as_secs_f64();

    // Two proposers at two replicas, competing for slots.
    let started = Instant::now();
    let mut threads = Vec::new();
    for (p, at) in [0usize, 2].into_iter().enumerate() {
        let addr = api(at);
        let ops: Vec<String> = (0..ops_per_proposer)
            .map(|k| format!("P,two{p}-{k},{k}"))
            .collect();
        threads.push(std::thread::spawn(move || run_ops(&addr, &ops, in_flight)));
    }
    let mut lat = Vec::new();
    for t in threads {
        lat.extend(t.join().map_err(|_| "proposer panicked")??);
    }
    report(
        &format!("2 proposers, {in_flight} in flight each"),
        2 * ops_per_proposer,
        started.elapsed(),
        lat,
    );
    let after = states(&mut procs)?;
    let costs = costs_before.lower(floor::measure(dir.path(), &key)?);

    println!("\nWhere the time goes, ms per operation (the replicas' counters; wall = the run's time / operations; network and waiting = wall − the replica's busy time):\n");
    println!("| run | replica | wall | sign | verify | fsync | other CPU | network and waiting |");
    println!("|---|---|---|---|---|---|---|---|");
    lone.print_rows();
    piped.print_rows();
    for run in [&lone, &piped] {
        let (slots, signs, verifies) = run.slots();
        println!(
            "\n{}: {slots} slots at A, {:.1} operations per slot, {signs} signatures and {verifies} verifications at A",
            run.label,
            run.ops as f64 / slots.max(1) as f64
        );
    }

    let path = CriticalPath::lone_op();
    let floor = path.time(&costs);
    println!(
        "\nFloor, measured in this run (medians, each the lower of a measurement before the runs and one after): fsync'd 4 KiB append {:.3} ms ({FSYNC_SAMPLES} samples, same disk as the logs), \
         RSA-2048 sign {:.3} ms and verify {:.3} ms ({RSA_SAMPLES} each), loopback round trip {:.3} ms ({ROUND_TRIPS})",
        ms(costs.fsync),
        ms(costs.sign),
        ms(costs.verify),
        ms(costs.round_trip)
    );
    println!(
        "floor for one operation = {} = {:.2} ms",
        path.formula(&costs),
        ms(floor)
    );
    println!(
        "p50 / floor = {lone_p50:.2} / {:.2} = {:.1}",
        ms(floor),
        lone_p50 / ms(floor)
    );
    // One slot is decided at a time, so a slot's latency bounds the rate:
    // at most a full batch per slot floor. CPU the four processes share
    // (more replicas than cores here) is not in it: a ceiling, not a forecast.
    let slot_floor = path.slot().time(&costs);
    let ceiling = batch as f64 / slot_floor.as_secs_f64();
    println!(
        "pipelined ceiling = {batch} operations per batch (the batch limit for these operations, or the operations in flight) / slot floor {:.2} ms (the same path without the client's 2 hops; one slot at a time) = {ceiling:.0} ops/s; measured / ceiling = {piped_rate:.0} / {ceiling:.0} = {:.2}",
        ms(slot_floor),
        piped_rate / ceiling
    );

    let digests: Vec<&Value> = after.iter().map(|s| &s["log_digest"]).collect();
    println!(
        "\nreplicas agree: {}",
        if digests.iter().all(|d| *d == digests[0]) {
            "yes"
        } else {
            "not yet (still committing)"
        }
    );
    for mut p in procs {
        let _ = p.send_line("quit");
        let _ = p.wait_exit();
    }
    Ok(())
}
