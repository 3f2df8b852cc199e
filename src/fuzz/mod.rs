//! `peerloop fuzz`: random workloads and random faults in the simulated
//! world, with invariants checked as the run goes. A violation prints the
//! seed, the invariant and the end of the run's trace; `--seed S` replays
//! that run exactly.

pub mod crc;

use getopts::Options;
use std::fmt;
use std::time::Instant;

/// An invariant a run broke.
#[derive(Debug, Clone)]
pub struct Violation {
    pub seed: u64,
    pub invariant: String,
    pub detail: String,
    /// The run's trace, when it was traced.
    pub trace: Vec<String>,
}

/// Trace lines shown with a violation.
const TRACE_TAIL: usize = 40;

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "seed {}: invariant broken: {}",
            self.seed, self.invariant
        )?;
        writeln!(f, "  {}", self.detail)?;
        if !self.trace.is_empty() {
            let from = self.trace.len().saturating_sub(TRACE_TAIL);
            writeln!(f, "  last {} events (virtual µs):", self.trace.len() - from)?;
            for line in &self.trace[from..] {
                writeln!(f, "  {line}")?;
            }
        }
        Ok(())
    }
}

const USAGE: &str = "usage: peerloop fuzz crc [--seeds N | --seed S] [--first S] [--faults LIST]

Runs random workloads with random faults in the deterministic simulator and
checks the protocol's invariants (docs/sim.md lists them). On a violation it
prints the seed, the invariant and the end of the trace, and exits 1;
`--seed S` replays that seed exactly. Only CRC is in the fuzzer so far.";

pub fn fuzz_main(args: &[String]) -> u8 {
    let mut opts = Options::new();
    opts.optflag("h", "help", "show this help");
    opts.optopt("", "seeds", "how many seeds to run (default 200)", "N");
    opts.optopt("", "first", "the first seed of the range (default 0)", "S");
    opts.optopt("", "seed", "run (replay) this one seed, traced", "S");
    opts.optopt(
        "",
        "faults",
        "faults to inject: all (default), none, or a list of crash,reset",
        "LIST",
    );
    let m = match opts.parse(args) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("peerloop fuzz: {e}\n\n{}", opts.usage(USAGE));
            return 2;
        }
    };
    if m.opt_present("h") {
        print!("{}", opts.usage(USAGE));
        return 0;
    }
    let protocol = match m.free.as_slice() {
        [p] => p.as_str(),
        [] => {
            eprintln!(
                "peerloop fuzz: which protocol? (crc)\n\n{}",
                opts.usage(USAGE)
            );
            return 2;
        }
        [_, extra, ..] => {
            eprintln!("peerloop fuzz: unexpected argument '{extra}'");
            return 2;
        }
    };
    if protocol != "crc" {
        eprintln!("peerloop fuzz: '{protocol}' is not in the fuzzer yet; it knows: crc");
        return 2;
    }
    let number = |name: &str, default: u64| -> Result<u64, String> {
        match m.opt_str(name) {
            None => Ok(default),
            Some(text) => {
                crate::cli_words::number_in_range(&format!("--{name}"), &text, 0, u64::MAX)
            }
        }
    };
    let faults = match parse_faults(m.opt_str("faults").as_deref().unwrap_or("all")) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("peerloop fuzz: {e}");
            return 2;
        }
    };
    let (first, count, traced) = match (m.opt_str("seed"), number("seeds", 200), number("first", 0))
    {
        (Some(_), _, _) if m.opt_present("seeds") || m.opt_present("first") => {
            eprintln!("peerloop fuzz: --seed replays one seed; leave out --seeds and --first");
            return 2;
        }
        (Some(_), _, _) => match number("seed", 0) {
            Ok(s) => (s, 1, true),
            Err(e) => {
                eprintln!("peerloop fuzz: {e}");
                return 2;
            }
        },
        (None, Ok(n), Ok(first)) => (first, n, false),
        (None, Err(e), _) | (None, _, Err(e)) => {
            eprintln!("peerloop fuzz: {e}");
            return 2;
        }
    };
    let started = Instant::now();
    let mut events = 0u64;
    for seed in first..first.saturating_add(count) {
        match crc::run(seed, faults, traced) {
            Ok(outcome) => {
                events += outcome.events;
                if traced {
                    println!(
                        "seed {seed}: ok ({} chats, {} faults, {} events, {:.3} s virtual)",
                        outcome.chats,
                        outcome.faults,
                        outcome.events,
                        outcome.virtual_time.as_secs_f64()
                    );
                }
            }
            Err(violation) => {
                // Replay traced so the report shows what led to it.
                let shown = if traced {
                    violation
                } else {
                    crc::run(seed, faults, true).err().unwrap_or(violation)
                };
                print!("{shown}");
                println!(
                    "replay: peerloop fuzz crc --seed {seed}{}",
                    faults_flag(faults)
                );
                return 1;
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "crc: {count} seeds from {first}, no invariant broken ({events} events in {secs:.2} s, {:.0} events/s)",
        events as f64 / secs.max(1e-9)
    );
    0
}

fn parse_faults(text: &str) -> Result<crc::Faults, String> {
    match text {
        "all" => return Ok(crc::Faults::ALL),
        "none" => return Ok(crc::Faults::NONE),
        _ => {}
    }
    let mut faults = crc::Faults::NONE;
    for word in text.split(',') {
        match word.trim() {
            "crash" => faults.crash = true,
            "reset" => faults.reset = true,
            other => {
                return Err(format!(
                    "unknown fault '{other}' (known: crash, reset; or all, none)"
                ))
            }
        }
    }
    Ok(faults)
}

fn faults_flag(faults: crc::Faults) -> String {
    match (faults.crash, faults.reset) {
        (true, true) => String::new(),
        (false, false) => " --faults none".into(),
        (true, false) => " --faults crash".into(),
        (false, true) => " --faults reset".into(),
    }
}
