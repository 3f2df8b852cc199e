//! The BPCon benchmark: four replica processes with RSA-2048 keys on
//! loopback (write-ahead log fsync'd), measured from clients.
//! Run with `cargo bench --bench bpcon` (release build).

use super::client::{percentile_ms, ApiClient};
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

struct Proc {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<std::process::ChildStdout>,
}

impl Proc {
    fn state(&mut self) -> Value {
        writeln!(self.stdin, "state").unwrap();
        let mut line = String::new();
        loop {
            line.clear();
            if self.stdout.read_line(&mut line).unwrap_or(0) == 0 {
                return Value::Null;
            }
            if line.starts_with('{') {
                return serde_json::from_str(&line).unwrap_or(Value::Null);
            }
        }
    }
}

fn run_ops(api: &str, ops: &[String], window: usize) -> Result<Vec<Duration>, String> {
    let mut client = ApiClient::connect(api, Duration::from_secs(60))?;
    let outcomes = client.run(ops, window, 5, |_, _| {})?;
    if let Some(bad) = outcomes.iter().find(|o| o.code != 0) {
        return Err(format!("'{}' failed: {}", bad.op, bad.message));
    }
    Ok(outcomes.iter().map(|o| o.latency).collect())
}

fn report(label: &str, ops: usize, elapsed: Duration, mut latencies: Vec<Duration>) {
    latencies.sort();
    println!(
        "| {label} | {ops} | {:.0} | {:.2} | {:.2} |",
        ops as f64 / elapsed.as_secs_f64(),
        percentile_ms(&latencies, 0.5),
        percentile_ms(&latencies, 0.99)
    );
}

pub fn run(binary: &Path, ops_per_proposer: usize) -> Result<(), String> {
    let dir: PathBuf =
        std::env::temp_dir().join(format!("peerloop-bpcon-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let names = ["A", "B", "C", "D"];
    let keys = dir.join("keys");
    for name in names {
        let out = Command::new(binary)
            .args(["keygen", "--name", name, "--out"])
            .arg(&keys)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
    }
    let mut peer_ports = crate::util::free_ports(8)?;
    let api_ports = peer_ports.split_off(4);
    let mut procs = Vec::new();
    for (i, name) in names.iter().enumerate() {
        // The whole group, this replica included.
        let peers: Vec<String> = (0..4)
            .map(|j| format!("{}=127.0.0.1:{}", names[j], peer_ports[j]))
            .collect();
        let mut child = Command::new(binary)
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
            .arg(dir.join(format!("data-{name}")))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?;
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        procs.push(Proc {
            child,
            stdin,
            stdout,
        });
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

    println!("n = 4, f = 1, quorum = 3, RSA-2048 PKCS#1 v1.5/SHA-1, one process per replica, WAL fsync'd\n");
    println!("({})\n", crate::util::PERCENTILE_RULE);
    println!("| run | operations | committed ops/s | p50 ms | p99 ms |");
    println!("|---|---|---|---|---|");
    // One operation at a time: the latency of a lone operation.
    let ops: Vec<String> = (0..200).map(|k| format!("P,solo{k},{k}")).collect();
    let started = Instant::now();
    let lat = run_ops(&api(0), &ops, 1)?;
    report(
        "1 proposer, 1 op in flight",
        ops.len(),
        started.elapsed(),
        lat,
    );

    let before: Vec<Value> = procs.iter_mut().map(Proc::state).collect();
    let wall = Instant::now();
    // One proposer with a deep pipeline: requests queue up and are batched.
    let ops: Vec<String> = (0..ops_per_proposer)
        .map(|k| format!("P,one{k},{k}"))
        .collect();
    let started = Instant::now();
    let lat = run_ops(&api(0), &ops, 256)?;
    report(
        "1 proposer, 256 in flight",
        ops.len(),
        started.elapsed(),
        lat,
    );
    // Two proposers at two replicas, competing for slots.
    let started = Instant::now();
    let mut threads = Vec::new();
    for (p, at) in [0usize, 2].into_iter().enumerate() {
        let addr = api(at);
        let ops: Vec<String> = (0..ops_per_proposer)
            .map(|k| format!("P,two{p}-{k},{k}"))
            .collect();
        threads.push(std::thread::spawn(move || run_ops(&addr, &ops, 256)));
    }
    let mut lat = Vec::new();
    for t in threads {
        lat.extend(t.join().map_err(|_| "proposer panicked")??);
    }
    report(
        "2 proposers, 256 in flight each",
        2 * ops_per_proposer,
        started.elapsed(),
        lat,
    );
    let wall = wall.elapsed();
    let after: Vec<Value> = procs.iter_mut().map(Proc::state).collect();

    println!(
        "\nWhere the time went during the two pipelined runs ({:.2} s wall):\n",
        wall.as_secs_f64()
    );
    println!("| replica | slots | signs | verifies | signing ms | verifying ms | fsync ms | other work ms | idle (waiting on the network) |");
    println!("|---|---|---|---|---|---|---|---|---|");
    let d = |a: &Value, b: &Value, f: &str| {
        b[f].as_u64()
            .unwrap_or(0)
            .saturating_sub(a[f].as_u64().unwrap_or(0))
    };
    for (a, b) in before.iter().zip(&after) {
        let sign = d(a, b, "sign_us");
        let verify = d(a, b, "verify_us");
        let fsync = d(a, b, "fsync_us");
        let busy = d(a, b, "busy_us");
        let other = busy.saturating_sub(sign + verify + fsync);
        let idle = (wall.as_micros() as u64).saturating_sub(busy);
        println!(
            "| {} | {} | {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0}% |",
            b["id"].as_str().unwrap_or("?"),
            d(a, b, "slots"),
            d(a, b, "signs"),
            d(a, b, "verifies"),
            sign as f64 / 1000.0,
            verify as f64 / 1000.0,
            fsync as f64 / 1000.0,
            other as f64 / 1000.0,
            100.0 * idle as f64 / wall.as_micros() as f64
        );
    }
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
        let _ = writeln!(p.stdin, "quit");
        let _ = p.child.wait();
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
