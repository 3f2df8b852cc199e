//! `peerloop sim chord --nodes N`: a Chord ring of N unmodified nodes in the
//! simulated world (one process, virtual clock), to see the protocol at a
//! size real processes cannot reach on one machine. It reports the wall
//! time, events per second, peak memory, the virtual time until the ring is
//! exact (every successor and predecessor right), and lookup path lengths.

use super::api_wire::{ApiMsg, Key};
use super::id::Id;
use super::sim_ring::{addr_of, Ring};
use crate::cli::{Command, Failure, FreeWords};
use crate::sim::{ExtId, Latency};
use getopts::Options;
use rand::{Rng, RngCore};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const USAGE: &str =
    "usage: peerloop sim chord [--nodes N] [--seed S] [--keys K] [--limit SECS] [--random-joins]

Runs N Chord nodes (the same code as `peerloop chord`, stabilize 100 ms,
successor list 4, 3 copies) in the deterministic simulator. Nodes join in
waves, one every stabilize period, each wave half as large as the ring
already there, every node through the member just before it on the ring
(the node a real deployment would know as a neighbour; with --random-joins,
through a random earlier node instead, all 1 ms apart). Then the ring runs
until every successor and predecessor is right, and until every finger is.
Then K keys are PUT and GET through random nodes. Prints wall time,
events/s, peak memory, the virtual time to an exact ring and to exact
fingers, and the lookup hops.";

struct Args {
    nodes: usize,
    seed: u64,
    keys: usize,
    limit: Duration,
    random_joins: bool,
}

fn options() -> Options {
    let mut opts = Options::new();
    opts.optflag("h", "help", "show this help");
    opts.optopt("", "nodes", "ring size (default 1000)", "N");
    opts.optopt("", "seed", "the seed (default 1)", "S");
    opts.optopt("", "keys", "keys PUT then GET (default 1000)", "K");
    opts.optflag(
        "",
        "random-joins",
        "every node joins through a random earlier one, 1 ms apart",
    );
    opts.optopt(
        "",
        "limit",
        "most virtual seconds to wait for an exact ring (default 600)",
        "SECS",
    );
    opts
}

/// `peerloop sim chord --help`.
pub fn help() -> String {
    options().usage(USAGE)
}

fn parse(m: &getopts::Matches) -> Result<Args, Failure> {
    use crate::cli::number_or;
    let parsed = (|| {
        Ok::<_, String>(Args {
            nodes: number_or(m, "nodes", 1000, 1, 1_000_000)?,
            seed: number_or(m, "seed", 1, 0, u64::MAX)?,
            keys: number_or(m, "keys", 1000, 0, 1_000_000)?,
            limit: Duration::from_secs(number_or(m, "limit", 600, 1, 86_400)?),
            random_joins: m.opt_present("random-joins"),
        })
    })();
    parsed.map_err(Failure::Usage)
}

/// Mistakes said as `peerloop sim gossip` says them: one line, and a
/// parse error with the options after it.
pub fn main(args: &[String]) -> u8 {
    let command =
        Command::new("peerloop sim chord", options(), USAGE).free_words(FreeWords::Refused);
    command.run(args, |m| {
        run(&parse(m)?).map_err(Failure::Runtime)?;
        Ok(0)
    })
}

/// Peak resident memory of this process (VmHWM), in MiB, where Linux tells.
fn peak_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn run(args: &Args) -> Result<(), String> {
    let started = Instant::now();
    let mut ring = Ring::new(args.seed, 4, 3);
    ring.world.set_latency(Latency::Exponential {
        min: Duration::from_micros(20),
        mean: Duration::from_millis(1),
    });
    println!(
        "chord in simulation: {} nodes, seed {}",
        args.nodes, args.seed
    );
    let joined_at = if args.random_joins {
        join_randomly(&mut ring, args.nodes)
    } else {
        join_in_waves(&mut ring, args.nodes)
    };
    println!(
        "{} nodes added, the last at {:.1} s virtual",
        args.nodes,
        joined_at.as_secs_f64(),
    );
    let deadline = joined_at + args.limit;
    let mut exact = ring.ring_exact();
    let mut last_report = Instant::now();
    while exact.is_err() && ring.world.now() < deadline {
        ring.run_for(Duration::from_millis(500));
        exact = ring.ring_exact();
        if std::env::var_os("CHORD_SIM_DEBUG").is_some() {
            eprintln!(
                "  {:.1} s: {} wrong",
                ring.world.now().as_secs_f64(),
                wrong_count(&mut ring)
            );
        }
        if last_report.elapsed() > Duration::from_secs(10) {
            last_report = Instant::now();
            eprintln!(
                "  {:.1} s virtual, {} events, {:.0} s wall: {}",
                ring.world.now().as_secs_f64(),
                ring.world.stats.events,
                started.elapsed().as_secs_f64(),
                exact.as_ref().err().map_or("exact", |e| e.as_str())
            );
        }
    }
    let converged = ring.world.now();
    let conv_wall = started.elapsed();
    let conv_events = ring.world.stats.events;
    match &exact {
        Ok(()) => println!(
            "ring exact at {:.1} s virtual ({:.1} s after the last join), after {} events, {:.1} s wall",
            converged.as_secs_f64(),
            (converged - joined_at).as_secs_f64(),
            conv_events,
            conv_wall.as_secs_f64()
        ),
        Err(e) => println!(
            "ring NOT exact after {:.0} s virtual: {e}",
            args.limit.as_secs_f64()
        ),
    }
    if exact.is_ok() {
        fingers_exact(&mut ring, deadline, started);
    }
    let (found, asked, hops, lookups, max_hops) = lookups(&mut ring, args.keys);
    let wall = started.elapsed().as_secs_f64();
    let events = ring.world.stats.events;
    println!(
        "lookups: {found}/{asked} keys found; mean {:.2} hops (½·log2 N = {:.2}), max {max_hops}",
        hops as f64 / lookups.max(1) as f64,
        (args.nodes as f64).log2() / 2.0
    );
    println!(
        "wall {wall:.1} s, {events} events, {:.0} events/s, {:.1} s virtual ({:.1}x real time), peak memory {}",
        events as f64 / wall.max(1e-9),
        ring.world.now().as_secs_f64(),
        ring.world.now().as_secs_f64() / wall.max(1e-9),
        peak_mib().map_or("unknown".into(), |m| format!("{m:.0} MiB (VmHWM)"))
    );
    match exact {
        Ok(()) if found == asked => Ok(()),
        Ok(()) => Err(format!("{} of {asked} keys not found", asked - found)),
        Err(_) => Err("the ring did not become exact".into()),
    }
}

fn wrong_count(ring: &mut Ring) -> usize {
    let true_ring = ring.true_ring();
    let n = true_ring.len();
    let mut wrong = 0;
    for (pos, (_, i)) in true_ring.iter().enumerate() {
        let succ = true_ring[(pos + 1) % n].0;
        let pred = true_ring[(pos + n - 1) % n].0;
        let r = ring.node(*i).routing();
        if r.successor().id != succ || r.predecessor.map(|p| p.id) != Some(pred) {
            wrong += 1;
        }
    }
    wrong
}

/// The old driver: node i joins through a random earlier node, 1 ms after
/// node i − 1. Many joins race through a small, unsettled ring; with
/// thousands of nodes the ring can end in states stabilization does not
/// repair (a node whose true successor nobody names).
fn join_randomly(ring: &mut Ring, nodes: usize) -> Duration {
    ring.add(None);
    for i in 1..nodes {
        let via = ring.world.rng().gen_range(0..i);
        ring.add(Some(via));
        ring.run_for(Duration::from_millis(1));
    }
    ring.world.now()
}

/// Nodes join in waves one stabilize period apart, each wave half the size
/// of the ring before it (so about one newcomer per two gaps), every node
/// through its nearest predecessor among the earlier waves: its lookup
/// takes a hop or none and names its true successor among those nodes, so
/// the joins never tangle the ring. The protocol is untouched; only whom
/// each node is told to join through differs.
/// Most virtual time one wave is given to settle before the next joins.
const WAVE_SETTLE_LIMIT: Duration = Duration::from_secs(10);

/// Returns when the last node was added.
fn join_in_waves(ring: &mut Ring, nodes: usize) -> Duration {
    let mut members: BTreeMap<Id, usize> = BTreeMap::new();
    let first = ring.add(None);
    members.insert(ring.node(first).me().id, first);
    let period = ring.stabilize;
    let mut last_added = ring.world.now();
    while ring.world.node_count() < nodes {
        let wave = (members.len() / 2).clamp(1, nodes - ring.world.node_count());
        let gap = period / wave as u32;
        let mut added = Vec::with_capacity(wave);
        for _ in 0..wave {
            let i = ring.world.node_count();
            let id = Id::hash(addr_of(i).to_string().as_bytes());
            let via = members
                .range(..id)
                .next_back()
                .or_else(|| members.iter().next_back())
                .map(|(_, v)| *v)
                .expect("a member");
            ring.add(Some(via));
            last_added = ring.world.now();
            added.push((id, i));
            ring.run_for(gap);
        }
        members.extend(added);
        if ring.world.node_count() == nodes {
            break;
        }
        // The next wave joins a settled ring, so the predecessor it joins
        // through names its true successor.
        let settle_by = ring.world.now() + WAVE_SETTLE_LIMIT;
        while ring.ring_exact().is_err() && ring.world.now() < settle_by {
            ring.run_for(period);
        }
    }
    last_added
}

/// After the ring is exact: run until every node's fingers are what its
/// fix-fingers round makes of the true ring (checked every second).
fn fingers_exact(ring: &mut Ring, deadline: Duration, started: Instant) {
    let from = ring.world.now();
    loop {
        let states = ring.states();
        match super::ring_check::check_fingers(&states) {
            Ok(()) => {
                let at = ring.world.now();
                println!(
                    "fingers exact at {:.1} s virtual ({:.1} s after the ring), {:.1} s wall",
                    at.as_secs_f64(),
                    (at - from).as_secs_f64(),
                    started.elapsed().as_secs_f64()
                );
                return;
            }
            Err(e) if ring.world.now() >= deadline => {
                let e: String = e.chars().take(200).collect();
                println!("fingers NOT exact by the limit: {e}");
                return;
            }
            Err(_) => ring.run_for(Duration::from_secs(1)),
        }
    }
}

/// Whether a whole answer frame reached test client `c`.
fn answered(ring: &Ring, c: ExtId) -> bool {
    crate::wire::split_frame(ring.world.ext_received(c)).is_ok_and(|f| f.is_some())
}

/// PUT `keys` random keys through random nodes, then GET each through
/// another: (found, asked, total hops, lookups, longest path) of the GETs.
fn lookups(ring: &mut Ring, keys: usize) -> (usize, usize, u64, u64, usize) {
    let n = ring.world.node_count();
    let mut chosen: Vec<(Key, usize)> = Vec::with_capacity(keys);
    for k in 0..keys {
        let mut key = [0u8; 32];
        ring.world.rng().fill_bytes(&mut key);
        let via = ring.world.rng().gen_range(0..n);
        let c = ring.client(via);
        ring.client_send(
            c,
            &ApiMsg::Put {
                ttl: 3600,
                replication: 3,
                key,
                value: format!("v{k}").into_bytes(),
            },
        );
        ring.client_half_close(c);
        chosen.push((key, via));
    }
    ring.run_for(Duration::from_secs(2));
    for i in 0..n {
        ring.node(i).reset_stats();
    }
    let clients: Vec<(ExtId, usize)> = chosen
        .iter()
        .enumerate()
        .map(|(k, (key, _))| {
            let via = ring.world.rng().gen_range(0..n);
            let c = ring.client(via);
            ring.client_send(c, &ApiMsg::Get { key: *key });
            ring.client_half_close(c);
            (c, k)
        })
        .collect();
    // Until every GET is answered (a node answers each within its 5 s
    // deadline), checked every 50 ms of virtual time.
    let deadline = ring.world.now() + Duration::from_secs(6);
    while ring.world.now() < deadline && clients.iter().any(|(c, _)| !answered(ring, *c)) {
        ring.run_for(Duration::from_millis(50));
    }
    let mut found = 0;
    for (c, k) in clients {
        let want = format!("v{k}").into_bytes();
        if ring
            .client_answers(c)
            .iter()
            .any(|a| matches!(a, ApiMsg::Success { value, .. } if *value == want))
        {
            found += 1;
        }
    }
    let (mut hops, mut count, mut max) = (0u64, 0u64, 0usize);
    for i in 0..n {
        for (h, c) in ring.node(i).stats().hops_histogram.iter().enumerate() {
            hops += h as u64 * c;
            count += c;
            if *c > 0 {
                max = max.max(h);
            }
        }
    }
    (found, keys, hops, count, max)
}
