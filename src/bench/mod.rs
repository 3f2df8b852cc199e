//! `peerloop bench <benchmark>`: benchmarks that start real node processes
//! (this same binary) on loopback and print figures.

pub mod crc;
pub mod idle;
pub mod memory;
pub mod ngircd;
pub mod process;
pub mod relay;
pub mod stats;
pub mod wire;

use getopts::Options;
use stats::{grouped, Percentiles};
use std::path::{Path, PathBuf};
use std::time::Duration;

const USAGE: &str =
    "usage: peerloop bench <benchmark> [options]   (peerloop bench <benchmark> --help)

benchmarks:
  crc     frames/s and latency through a chain of 3 CRC servers, the same through
          3 byte-forwarding relays (the ceiling), memory per idle client, and ngIRCd
          through the same chain when it is installed
  gossip  time for one announcement to reach every module, messages per node
  chord   lookup hops and latency on rings of 16, 32 and 64 nodes
  bpcon   committed operations/s and latency for 4 replicas with RSA-2048
  memory  resident memory of one idle node of each protocol, in one table
";

pub fn bench_main(args: &[String]) -> u8 {
    match args.first().map(String::as_str) {
        Some("crc") => crc_main(&args[1..]),
        Some("gossip") => crate::gossip::bench::main(&args[1..]),
        Some("chord") => crate::chord::bench::main(&args[1..]),
        Some("bpcon" | "paxos") => bpcon_main(&args[1..]),
        Some("memory") => memory_main(&args[1..]),
        Some("-h" | "--help" | "help") => {
            print!("{USAGE}");
            0
        }
        Some(other) => {
            eprintln!("peerloop bench: unknown benchmark '{other}'\n\n{USAGE}");
            2
        }
        None => {
            eprint!("{USAGE}");
            2
        }
    }
}

/// `peerloop bench memory [--nodes N]`: RSS per idle node, every protocol.
fn memory_main(args: &[String]) -> u8 {
    let mut opts = Options::new();
    opts.optopt("", "nodes", "nodes per protocol (default 4, 4 to 32)", "N");
    opts.optflag("h", "help", "print this help");
    let usage = "usage: peerloop bench memory [--nodes N]\n\n\
                 Starts a small real network of each protocol on loopback (a CRC \
                 chain, a Gossip network, a Chord ring, a BPCon group with RSA-2048 \
                 keys), waits until every node is part of it, lets it idle, and \
                 prints each protocol's resident memory per node (VmRSS) next to \
                 the same binary idle on one socket.";
    let m = match crate::cli::Command::bare("peerloop bench memory", opts, usage).parse(args) {
        Ok(m) => m,
        Err(code) => return code,
    };
    let nodes = match m.opt_str("nodes") {
        None => 4,
        Some(text) => match crate::cli_words::number_in_range("--nodes", &text, 4usize, 32) {
            Ok(n) => n,
            Err(e) => {
                eprintln!("peerloop bench memory: {e}");
                return 2;
            }
        },
    };
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("peerloop bench memory: cannot find my own binary: {e}");
            return 1;
        }
    };
    match memory::run(&exe, nodes) {
        Ok((rows, floor)) => {
            memory::print(&rows, floor);
            0
        }
        Err(e) => {
            eprintln!("peerloop bench memory: {e}");
            1
        }
    }
}

/// `peerloop bench bpcon [--ops N]`: the BPCon benchmark on this binary.
fn bpcon_main(args: &[String]) -> u8 {
    let mut opts = Options::new();
    opts.optopt("", "ops", "operations per proposer (default 10000)", "N");
    opts.optflag("h", "help", "print this help");
    let usage = "usage: peerloop bench bpcon [--ops N]\n\n\
                 Four replicas (one process each, RSA-2048, fsync'd logs) on loopback: \
                 one operation alone, one proposer, two proposers.";
    let m = match crate::cli::Command::bare("peerloop bench bpcon", opts, usage).parse(args) {
        Ok(m) => m,
        Err(code) => return code,
    };
    let ops = match m.opt_str("ops").map(|n| n.parse::<usize>()) {
        None => 10_000,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("peerloop bench bpcon: --ops takes a whole number above 0");
            return 2;
        }
    };
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("peerloop bench bpcon: cannot find my own binary: {e}");
            return 1;
        }
    };
    match crate::bpcon::bench::run(&exe, ops) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("peerloop bench bpcon: {e}");
            1
        }
    }
}

/// What `peerloop bench crc` runs.
#[derive(Debug, Clone)]
pub struct CrcBench {
    /// The peerloop binary the servers run.
    pub exe: PathBuf,
    pub frames: u64,
    /// Every `sample`-th streamed frame carries a send stamp.
    pub sample: u64,
    /// Frames sent one at a time (each after the previous arrived) for the unloaded latency.
    pub quiet_frames: u64,
    /// Idle clients for the memory figure (0 skips it).
    pub clients: usize,
    /// ngIRCd: None skips it; Some(path) runs it with that binary.
    pub ngircd: Option<PathBuf>,
    pub ngircd_messages: u64,
    /// Measure the byte-forwarding ceiling in the same run.
    pub ceiling: bool,
}

pub struct CrcResults {
    pub chain: crc::ChainReport,
    /// The same path through 3 byte-forwarding relays: the ceiling.
    pub ceiling: Option<crc::ChainReport>,
    pub idle: Option<idle::IdleReport>,
    pub ngircd: Option<Result<ngircd::NgircdReport, String>>,
}

fn crc_main(args: &[String]) -> u8 {
    let mut opts = Options::new();
    opts.optopt("", "frames", "chat frames to stream (default 1000000)", "N");
    opts.optopt(
        "",
        "sample",
        "stamp every N-th frame for latency (default 1000)",
        "N",
    );
    opts.optopt(
        "",
        "quiet-frames",
        "frames sent one at a time for unloaded latency (default 1000)",
        "N",
    );
    opts.optopt(
        "",
        "clients",
        "idle clients on one server for the memory figure (default 10000, 0 skips)",
        "N",
    );
    opts.optopt(
        "",
        "ngircd-messages",
        "PRIVMSGs to stream through ngIRCd (default 200000)",
        "N",
    );
    opts.optflag("", "no-ngircd", "skip the ngIRCd comparison");
    opts.optflag(
        "",
        "no-ceiling",
        "skip the ceiling (3 byte-forwarding relays on the same path)",
    );
    opts.optflag(
        "",
        "vs-ngircd",
        "require the ngIRCd comparison (fail if ngircd is missing)",
    );
    opts.optopt(
        "",
        "peerloop",
        "the peerloop binary to run servers with (default: this one)",
        "PATH",
    );
    opts.optflag("h", "help", "print this help");
    let usage = "usage: peerloop bench crc [options]\n\n\
        Starts 3 `peerloop server` processes linked in a chain on loopback, a client at each \
        end, and streams 64-byte chat frames (13-byte header + 51-byte text) from one end to \
        the other: frames/s and one-way latency. Then registers many idle raw TCP clients with \
        one server and reports its RSS growth per client. If ngircd is installed, the same \
        chain is measured with 3 linked ngIRCd servers in the same run.";
    let m = match crate::cli::Command::bare("peerloop bench crc", opts, usage).parse(args) {
        Ok(m) => m,
        Err(code) => return code,
    };
    let bench = match crc_options(&m) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("peerloop bench crc: {e}");
            return 2;
        }
    };
    match run_crc(&bench) {
        Ok(results) => {
            print_results(&bench, &results);
            // A failed ngIRCd run is reported but only fails the bench when asked for.
            match &results.ngircd {
                Some(Err(_)) if m.opt_present("vs-ngircd") => 1,
                _ => 0,
            }
        }
        Err(e) => {
            eprintln!("peerloop bench crc: FAILED: {e}");
            1
        }
    }
}

fn number<T: std::str::FromStr>(m: &getopts::Matches, name: &str, default: T) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    match m.opt_str(name) {
        None => Ok(default),
        Some(text) => text
            .replace('_', "")
            .parse()
            .map_err(|e| format!("--{name} '{text}': {e}")),
    }
}

fn crc_options(m: &getopts::Matches) -> Result<CrcBench, String> {
    let exe = match m.opt_str("peerloop") {
        Some(p) => PathBuf::from(p),
        None => std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?,
    };
    let ngircd = if m.opt_present("no-ngircd") {
        None
    } else {
        let found = ngircd::find_ngircd();
        if found.is_none() && m.opt_present("vs-ngircd") {
            return Err("--vs-ngircd: ngircd is not installed (apt-get install ngircd)".into());
        }
        found
    };
    let sample = number(m, "sample", 1000u64)?.max(1);
    Ok(CrcBench {
        exe,
        frames: number(m, "frames", 1_000_000)?,
        sample,
        quiet_frames: number(m, "quiet-frames", 1000)?,
        clients: number(m, "clients", 10_000)?,
        ngircd,
        ngircd_messages: number(m, "ngircd-messages", 200_000)?,
        ceiling: !m.opt_present("no-ceiling"),
    })
}

/// Run everything `bench` asks for. A broken CRC run is an error; a broken
/// ngIRCd run is reported in the results.
pub fn run_crc(bench: &CrcBench) -> Result<CrcResults, String> {
    if bench.clients > 0 {
        // Children inherit the limit: the server needs one descriptor per client too.
        let want = bench.clients as u64 + 256;
        let got = process::raise_nofile(want)?;
        if got < want {
            return Err(format!(
                "the open-file limit is {got}, {want} are needed for {} clients",
                bench.clients
            ));
        }
    }
    let chain = crc::run_chain(&bench.exe, bench.frames, bench.sample, bench.quiet_frames)?;
    let ceiling = if bench.ceiling {
        Some(relay::run_relay_chain(
            &bench.exe,
            bench.frames,
            bench.sample,
            bench.quiet_frames,
        )?)
    } else {
        None
    };
    let ngircd = bench.ngircd.as_ref().map(|path| {
        ngircd::run_ngircd(
            path,
            bench.ngircd_messages,
            bench.sample,
            bench.quiet_frames,
        )
    });
    let idle = if bench.clients > 0 {
        let timeout =
            Duration::from_secs(120).max(Duration::from_millis(bench.clients as u64 * 30));
        Some(idle::run_idle(&bench.exe, bench.clients, timeout)?)
    } else {
        None
    };
    Ok(CrcResults {
        chain,
        ceiling,
        idle,
        ngircd,
    })
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

fn is_debug_build(exe: &Path) -> bool {
    cfg!(debug_assertions) || exe.components().any(|c| c.as_os_str() == "debug")
}

fn latency_line(label: &str, p: &Percentiles) {
    println!("  {label:<34} {p}");
}

fn print_results(bench: &CrcBench, r: &CrcResults) {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("peerloop bench crc — {cpus} CPUs, {}", cpu_model());
    if is_debug_build(&bench.exe) {
        println!("WARNING: debug build; figures mean little (cargo build --release)");
    }
    println!("({})", crate::util::PERCENTILE_RULE);
    let c = &r.chain;
    println!(
        "CRC, 3 peerloop servers in a chain, sender client -> receiver client:\n  \
         {} chat frames of 64 bytes each (13-byte header + 51-byte text), all arrived in order and unchanged",
        grouped(c.frames)
    );
    println!(
        "  {:<34} {} frames/s ({:.1} MB/s of frames, {:.2} s)",
        "throughput, end to end:",
        grouped(c.frames_per_sec() as u64),
        c.frames_per_sec() * 64.0 / 1e6,
        c.elapsed.as_secs_f64()
    );
    latency_line("latency, one frame at a time:", &c.quiet);
    latency_line(
        &format!("latency at full load (1 in {}):", bench.sample),
        &c.loaded,
    );
    if let Some(ceiling) = &r.ceiling {
        println!(
            "Ceiling, 3 `peerloop relay` processes forwarding bytes unparsed (blocking read, \
             write_all, 256 KiB), same sender and receiver:"
        );
        println!(
            "  {:<34} {} frames/s ({:.2} s)",
            "throughput, end to end:",
            grouped(ceiling.frames_per_sec() as u64),
            ceiling.elapsed.as_secs_f64()
        );
        latency_line("latency, one frame at a time:", &ceiling.quiet);
        latency_line(
            &format!("latency at full load (1 in {}):", bench.sample),
            &ceiling.loaded,
        );
        println!(
            "  peerloop / ceiling:                {:.2} ({:.0}%)",
            c.frames_per_sec() / ceiling.frames_per_sec(),
            100.0 * c.frames_per_sec() / ceiling.frames_per_sec()
        );
    }
    match &r.ngircd {
        None => println!("ngIRCd: not installed, comparison skipped (apt-get install ngircd)"),
        Some(Err(e)) => println!("ngIRCd: comparison FAILED: {e}"),
        Some(Ok(n)) => {
            println!(
                "{}, 3 servers in a chain, +F (unthrottled) sender -> receiver:\n  \
                 {} PRIVMSGs with 51-byte text, all arrived in order and unchanged",
                n.version,
                grouped(n.messages)
            );
            println!(
                "  {:<34} {} messages/s ({:.2} s)",
                "throughput, end to end:",
                grouped(n.messages_per_sec() as u64),
                n.elapsed.as_secs_f64()
            );
            latency_line("latency, one message at a time:", &n.quiet);
            latency_line(
                &format!("latency at full load (1 in {}):", bench.sample),
                &n.loaded,
            );
            println!(
                "  peerloop / ngIRCd:                 {:.1}x",
                c.frames_per_sec() / n.messages_per_sec()
            );
        }
    }
    if let Some(idle) = &r.idle {
        println!(
            "Memory: {} idle clients registered with one server (each told of every other; took {:.1} s):",
            grouped(idle.clients as u64),
            idle.settle.as_secs_f64()
        );
        println!(
            "  server RSS {:.1} MiB before; {:.1} MiB when the last frame arrived; after {:.1} s idle {:.1} MiB:\n  \
             {:.0} bytes ({:.2} KiB) per idle client",
            idle.rss_before as f64 / 1048576.0,
            idle.rss_busy as f64 / 1048576.0,
            idle::IDLE_WAIT.as_secs_f64(),
            idle.rss_after as f64 / 1048576.0,
            idle.bytes_per_client(),
            idle.bytes_per_client() / 1024.0
        );
    }
}
