//! `peerloop fuzz`: random workloads and random faults in the simulated
//! world, with invariants checked as the run goes. A violation prints the
//! seed, the invariant and the end of the run's trace; `--seed S` replays
//! that run exactly.
//!
//! Each protocol's fuzzer is one file with `FAULTS` (the faults it can
//! inject) and `run(seed, faults, trace)`, and one row of [`FUZZERS`].

pub mod bpcon;
pub mod chord;
pub mod crc;
pub mod gossip;
#[cfg(test)]
mod seeded_bugs;

use getopts::Options;
use std::collections::BTreeSet;
use std::fmt;
use std::time::{Duration, Instant};

/// The faults a run may inject, by name.
pub type FaultSet = BTreeSet<String>;

/// One fuzzer: its name, the faults it knows, and a run of one seed.
pub struct Fuzzer {
    pub name: &'static str,
    pub faults: &'static [&'static str],
    pub run: fn(u64, &FaultSet, bool) -> Result<Outcome, Violation>,
}

/// Every protocol's fuzzer.
pub const FUZZERS: &[Fuzzer] = &[
    Fuzzer {
        name: "crc",
        faults: crc::FAULTS,
        run: crc::run,
    },
    Fuzzer {
        name: "gossip",
        faults: gossip::FAULTS,
        run: gossip::run,
    },
    Fuzzer {
        name: "bpcon",
        faults: bpcon::FAULTS,
        run: bpcon::run,
    },
    // n = 7, up to f = 2 Byzantine replicas.
    Fuzzer {
        name: "bpcon-7",
        faults: bpcon::FAULTS,
        run: bpcon::run_seven,
    },
    Fuzzer {
        name: "chord",
        faults: chord::FAULTS,
        run: chord::run,
    },
];

/// What one seed did.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub events: u64,
    pub virtual_time: Duration,
    /// What the workload did, in words ("48 chats, 7 faults").
    pub summary: String,
}

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

/// Every fault a fuzzer knows.
pub fn all_faults(known: &[&str]) -> FaultSet {
    known.iter().map(|f| f.to_string()).collect()
}

/// `all`, `none` or a comma-separated list of `known` faults.
pub fn parse_faults(text: &str, known: &[&str]) -> Result<FaultSet, String> {
    match text {
        "all" => return Ok(all_faults(known)),
        "none" => return Ok(FaultSet::new()),
        _ => {}
    }
    let mut faults = FaultSet::new();
    for word in text.split(',').map(str::trim) {
        if !known.contains(&word) {
            return Err(format!(
                "unknown fault '{word}' (known: {}; or all, none)",
                known.join(", ")
            ));
        }
        faults.insert(word.to_string());
    }
    Ok(faults)
}

/// The fuzzers that find each seeded bug: how many seeds and how long.
#[derive(Debug, Clone)]
pub struct Hunt {
    pub seeds: u64,
    pub elapsed: Duration,
    pub violation: Option<Violation>,
}

/// Run seeds from `first` until one breaks an invariant or `budget` seeds
/// have run.
pub fn hunt(fuzzer: &Fuzzer, faults: &FaultSet, first: u64, budget: u64) -> Hunt {
    let started = Instant::now();
    for (n, seed) in (first..first.saturating_add(budget)).enumerate() {
        if let Err(v) = (fuzzer.run)(seed, faults, false) {
            return Hunt {
                seeds: n as u64 + 1,
                elapsed: started.elapsed(),
                violation: Some(v),
            };
        }
    }
    Hunt {
        seeds: budget,
        elapsed: started.elapsed(),
        violation: None,
    }
}

/// For each fuzzer's own test: seeds `0..seeds` of fuzzer `name`, every
/// fault on, must break no invariant (the first violation is the panic).
#[cfg(test)]
pub(crate) fn assert_seeds_hold(name: &str, seeds: u64) {
    let fuzzer = FUZZERS
        .iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("no fuzzer {name}"));
    let run = hunt(fuzzer, &all_faults(fuzzer.faults), 0, seeds);
    if let Some(v) = run.violation {
        panic!("{v}");
    }
    eprintln!(
        "{name} fuzz: {seeds} seeds in {:.1} s",
        run.elapsed.as_secs_f64()
    );
}

fn usage() -> String {
    let names: Vec<&str> = FUZZERS.iter().map(|f| f.name).collect();
    let mut text = format!(
        "usage: peerloop fuzz <{}> [--seeds N | --seed S] [--first S] [--faults LIST]

Runs random workloads with random faults in the deterministic simulator and
checks the protocol's invariants (docs/sim.md lists them). On a violation it
prints the seed, the invariant and the end of the trace, and exits 1;
`--seed S` replays that seed exactly, traced.

faults:",
        names.join("|")
    );
    for f in FUZZERS {
        text.push_str(&format!("\n  {:<8} {}", f.name, f.faults.join(", ")));
    }
    text
}

pub fn fuzz_main(args: &[String]) -> u8 {
    let mut opts = Options::new();
    opts.optflag("h", "help", "show this help");
    opts.optopt("", "seeds", "how many seeds to run (default 200)", "N");
    opts.optopt("", "first", "the first seed of the range (default 0)", "S");
    opts.optopt("", "seed", "run (replay) this one seed, traced", "S");
    opts.optopt(
        "",
        "faults",
        "faults to inject: all (default), none, or a comma-separated list",
        "LIST",
    );
    let command = crate::cli::Command::new("peerloop fuzz", opts, usage());
    let m = match command.parse(args) {
        Ok(m) => m,
        Err(code) => return code,
    };
    let names: Vec<&str> = FUZZERS.iter().map(|f| f.name).collect();
    let fuzzer = match m.free.as_slice() {
        [p] => match FUZZERS.iter().find(|f| f.name == p) {
            Some(f) => f,
            None => {
                eprintln!(
                    "peerloop fuzz: '{p}' has no fuzzer; known: {}",
                    names.join(", ")
                );
                return 2;
            }
        },
        [] => {
            let which = format!("which protocol? ({})", names.join(", "));
            return command.fail(&crate::cli::Failure::UsageWithHelp(which));
        }
        [_, extra, ..] => {
            eprintln!("peerloop fuzz: unexpected argument '{extra}'");
            return 2;
        }
    };
    let number = |name: &str, default: u64| -> Result<u64, String> {
        match m.opt_str(name) {
            None => Ok(default),
            Some(text) => {
                crate::cli_words::number_in_range(&format!("--{name}"), &text, 0, u64::MAX)
            }
        }
    };
    let faults_text = m.opt_str("faults").unwrap_or_else(|| "all".into());
    let faults = match parse_faults(&faults_text, fuzzer.faults) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("peerloop fuzz: {e}");
            return 2;
        }
    };
    if m.opt_present("seed") && (m.opt_present("seeds") || m.opt_present("first")) {
        eprintln!("peerloop fuzz: --seed replays one seed; leave out --seeds and --first");
        return 2;
    }
    let parsed = if m.opt_present("seed") {
        number("seed", 0).map(|s| (s, 1, true))
    } else {
        number("seeds", 200).and_then(|n| number("first", 0).map(|first| (first, n, false)))
    };
    let (first, count, traced) = match parsed {
        Ok(p) => p,
        Err(e) => {
            eprintln!("peerloop fuzz: {e}");
            return 2;
        }
    };
    let started = Instant::now();
    let mut events = 0u64;
    let mut virtual_time = Duration::ZERO;
    for seed in first..first.saturating_add(count) {
        match (fuzzer.run)(seed, &faults, traced) {
            Ok(outcome) => {
                events += outcome.events;
                virtual_time += outcome.virtual_time;
                if traced {
                    println!(
                        "seed {seed}: ok ({}, {} events, {:.3} s virtual)",
                        outcome.summary,
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
                    (fuzzer.run)(seed, &faults, true).err().unwrap_or(violation)
                };
                print!("{shown}");
                let flag = if faults_text == "all" {
                    String::new()
                } else {
                    format!(" --faults {faults_text}")
                };
                println!("replay: peerloop fuzz {} --seed {seed}{flag}", fuzzer.name);
                return 1;
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{}: {count} seeds from {first}, no invariant broken ({events} events, {:.1} s virtual, in {secs:.2} s: {:.0} events/s, {:.0}x real time)",
        fuzzer.name,
        virtual_time.as_secs_f64(),
        events as f64 / secs.max(1e-9),
        virtual_time.as_secs_f64() / secs.max(1e-9)
    );
    0
}
