//! `peerloop bench chord`: rings of real node processes; lookup path
//! lengths (counted by the nodes, in hops) and GET latency for random keys.

use super::harness::{start_ring, states, total_keys, wait_for, Client};
use super::ring_check::{check_fingers, check_stable};
use getopts::Options;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use std::time::{Duration, Instant};

const ABOUT: &str = "usage: peerloop bench chord [--sizes 16,32,64] [--keys 1000] [options]

For each ring size: start that many `peerloop chord` processes on loopback,
wait until every successor, predecessor and finger is right, PUT the keys
through random nodes, then GET each from a random node (one at a time) and
report the lookup path length in hops (counted by the nodes) and latency.";

pub fn main(args: &[String]) -> u8 {
    let mut opts = Options::new();
    opts.optopt("", "sizes", "ring sizes (default 16,32,64)", "N,N");
    opts.optopt("", "keys", "random keys per ring (default 1000)", "K");
    opts.optopt(
        "",
        "stabilize-ms",
        "node stabilize period (default 100)",
        "T",
    );
    opts.optopt("", "successors", "successor list length (default 4)", "R");
    opts.optopt("", "replicas", "copies per key (default 3)", "K");
    opts.optopt("", "seed", "random seed (default 1)", "S");
    opts.optflag("h", "help", "print this help");
    let m = match crate::cli::Command::new("peerloop bench chord", opts, ABOUT).parse(args) {
        Ok(m) => m,
        Err(code) => return code,
    };
    let parse = |name: &str, default: u64| -> Result<u64, String> {
        m.opt_str(name).map_or(Ok(default), |t| {
            t.parse()
                .map_err(|_| format!("--{name} '{t}' is not a number"))
        })
    };
    let run = || -> Result<(), String> {
        let sizes: Vec<usize> = m
            .opt_str("sizes")
            .unwrap_or_else(|| "16,32,64".into())
            .split(',')
            .map(|s| s.trim().parse().map_err(|_| format!("bad ring size '{s}'")))
            .collect::<Result<_, _>>()?;
        let setup = Setup {
            keys: parse("keys", 1000)? as usize,
            stabilize_ms: parse("stabilize-ms", 100)?,
            successors: parse("successors", 4)?,
            replicas: parse("replicas", 3)?,
            seed: parse("seed", 1)?,
        };
        println!(
            "chord lookup benchmark: {} random keys, {} copies, successor list {}, stabilize {} ms; iterative lookups, hops = FIND_SUCCESSOR questions",
            setup.keys, setup.replicas, setup.successors, setup.stabilize_ms
        );
        println!("({})", crate::util::PERCENTILE_RULE);
        println!("| nodes | ½·log2 N | target 0.6·log2 N | mean hops | p99 hops | found | GET mean | GET p50 | GET p99 | converged in |");
        println!("|---|---|---|---|---|---|---|---|---|---|");
        for n in sizes {
            if n < 2 {
                return Err("ring sizes start at 2".into());
            }
            let row = bench_ring(n, &setup)?;
            println!("{row}");
        }
        Ok(())
    };
    match run() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("peerloop bench chord: {e}");
            1
        }
    }
}

struct Setup {
    keys: usize,
    stabilize_ms: u64,
    successors: u64,
    replicas: u64,
    seed: u64,
}

fn histogram(states: &[Value]) -> Vec<u64> {
    let mut sum: Vec<u64> = Vec::new();
    for state in states {
        if let Some(h) = state["lookup_hops_histogram"].as_array() {
            for (i, n) in h.iter().enumerate() {
                if sum.len() <= i {
                    sum.resize(i + 1, 0);
                }
                sum[i] += n.as_u64().unwrap_or(0);
            }
        }
    }
    sum
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    crate::util::nearest_rank(sorted, p).unwrap_or_default()
}

fn bench_ring(n: usize, setup: &Setup) -> Result<String, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find peerloop itself: {e}"))?;
    let mut rng = StdRng::seed_from_u64(setup.seed ^ n as u64);
    let picks: Vec<usize> = (0..n)
        .map(|i| if i == 0 { 0 } else { rng.gen_range(0..i) })
        .collect();
    let args: Vec<String> = [
        "--stabilize-ms".to_string(),
        setup.stabilize_ms.to_string(),
        "--successors".into(),
        setup.successors.to_string(),
        "--replicas".into(),
        setup.replicas.to_string(),
    ]
    .to_vec();
    let started = Instant::now();
    let mut nodes = start_ring(&exe, n, &args, |i| picks[i])?;
    wait_for(&mut nodes, Duration::from_secs(180), |s| {
        check_stable(s)?;
        check_fingers(s)
    })?;
    let converged = started.elapsed();

    let keys: Vec<[u8; 32]> = (0..setup.keys).map(|_| rng.gen()).collect();
    let mut clients: Vec<Client> = nodes
        .iter()
        .map(|node| Client::connect(&node.api))
        .collect::<Result<_, _>>()?;
    for (k, key) in keys.iter().enumerate() {
        clients[rng.gen_range(0..n)].put(*key, format!("value {k}").as_bytes(), 3600)?;
    }
    let copies = (setup.keys as u64) * setup.replicas.min(n as u64);
    wait_for(&mut nodes, Duration::from_secs(60), |s| {
        let held = total_keys(s);
        if held >= copies {
            Ok(())
        } else {
            Err(format!("{held} of {copies} copies stored"))
        }
    })?;

    let before = histogram(&states(&mut nodes)?);
    let mut latencies = Vec::with_capacity(keys.len());
    let mut found = 0;
    for (k, key) in keys.iter().enumerate() {
        let client = &mut clients[rng.gen_range(0..n)];
        let start = Instant::now();
        let value = client.get(*key)?;
        latencies.push(start.elapsed());
        if value.as_deref() == Some(format!("value {k}").as_bytes()) {
            found += 1;
        }
    }
    let after = histogram(&states(&mut nodes)?);
    let mut diff: Vec<u64> = after
        .iter()
        .enumerate()
        .map(|(i, a)| a - before.get(i).copied().unwrap_or(0))
        .collect();
    while diff.last() == Some(&0) {
        diff.pop();
    }
    let lookups: u64 = diff.iter().sum();
    let mean_hops = diff
        .iter()
        .enumerate()
        .map(|(h, c)| h as u64 * c)
        .sum::<u64>() as f64
        / lookups.max(1) as f64;
    let mut seen = 0;
    let mut p99_hops = 0;
    for (h, c) in diff.iter().enumerate() {
        seen += c;
        if seen as f64 >= 0.99 * lookups as f64 {
            p99_hops = h;
            break;
        }
    }
    latencies.sort();
    let mean_latency = latencies.iter().sum::<Duration>() / latencies.len().max(1) as u32;
    let log2n = (n as f64).log2();
    Ok(format!(
        "| {n} | {:.2} | {:.2} | {mean_hops:.2} | {p99_hops} | {:.1}% | {:.0} µs | {:.0} µs | {:.0} µs | {:.1} s |",
        0.5 * log2n,
        0.6 * log2n,
        100.0 * found as f64 / keys.len().max(1) as f64,
        mean_latency.as_secs_f64() * 1e6,
        percentile(&latencies, 0.5).as_secs_f64() * 1e6,
        percentile(&latencies, 0.99).as_secs_f64() * 1e6,
        converged.as_secs_f64(),
    ))
}
