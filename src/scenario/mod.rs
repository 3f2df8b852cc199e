//! `peerloop test`: replay scenario files (the course's TestCases format)
//! against real `peerloop` processes on loopback, and check their final state.

pub mod check;
pub mod chord;
pub mod context;
pub mod crc;
pub mod gossip;
pub mod machine;
pub mod parse;
pub mod paxos;
pub mod runner;
pub mod sim_log;
pub mod sim_net;
pub mod transcript;

pub use context::{Context, Extension};
pub use parse::{flag, split_args, unquote};

use getopts::Options as Getopts;
use runner::{Options, Outcome};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const USAGE: &str =
    "usage: peerloop test [--sim [--seed N]] [--jobs N] [--time-scale X] [--logs DIR] [--report DIR] [--strict] PATH...

Runs scenario files (a file, or a folder searched for .cfg files) with real
processes on loopback, compares each machine's final state with the file's
final_state, and ends with `N passed, M failed` (exit 1 on any failure).
--sim runs every machine as a node of one simulated network instead, on a
virtual clock, with every random choice drawn from the seed it prints: the
same --seed gives the same run (and the same --logs transcripts). Files
that cannot run in the chosen mode are skipped with the reason.
--report DIR writes DIR/index.html and, per scenario, a page with its
message diagram and topology, a decoded frame log and a ShiViz log.";

/// Scenario files under `path`, sorted.
fn collect(path: &Path, into: &mut Vec<PathBuf>) -> Result<(), String> {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for entry in entries {
            if entry.is_dir() || entry.extension().is_some_and(|e| e == "cfg") {
                collect(&entry, into)?;
            }
        }
        Ok(())
    } else if path.exists() {
        into.push(path.to_path_buf());
        Ok(())
    } else {
        Err(format!("{}: no such file or folder", path.display()))
    }
}

pub fn test_main(args: &[String]) -> u8 {
    let mut opts = Getopts::new();
    opts.optopt("", "jobs", "run N scenarios side by side (default 1)", "N");
    opts.optopt(
        "",
        "time-scale",
        "multiply every WAIT by X (default 1)",
        "X",
    );
    opts.optopt(
        "",
        "logs",
        "write one merged transcript per scenario into DIR",
        "DIR",
    );
    opts.optopt(
        "",
        "report",
        "write an HTML report (index.html, one page per scenario) into DIR",
        "DIR",
    );
    opts.optflag(
        "",
        "strict",
        "also check adjacency and log order; name suspect expectations",
    );
    opts.optflag(
        "",
        "child",
        "internal: run one scenario and print its outcome as JSON",
    );
    opts.optflag(
        "",
        "sim",
        "run in the simulator (virtual time, seeded, deterministic)",
    );
    opts.optopt(
        "",
        "seed",
        "the simulator's seed (default: one chosen now, and printed)",
        "N",
    );
    opts.optflag("h", "help", "print this help");
    let command = crate::cli::Command::new("peerloop test", opts, USAGE)
        .parse_errors(crate::cli::ParseErrors::BareWithUsage);
    let m = match command.parse(args) {
        Ok(m) => m,
        Err(code) => return code,
    };
    let jobs: usize = match m.opt_str("jobs").map(|j| j.parse()) {
        None => 1,
        Some(Ok(j)) if j > 0 => j,
        Some(_) => {
            eprintln!("peerloop test: --jobs takes a whole number above 0");
            return 2;
        }
    };
    let time_scale: f64 = match m.opt_str("time-scale").map(|t| t.parse::<f64>()) {
        None => 1.0,
        Some(Ok(t)) if t >= 0.0 && t.is_finite() => t,
        Some(_) => {
            eprintln!("peerloop test: --time-scale takes a number of 0 or more");
            return 2;
        }
    };
    let sim = match (m.opt_present("sim"), m.opt_str("seed")) {
        (false, Some(_)) => {
            eprintln!("peerloop test: --seed goes with --sim");
            return 2;
        }
        (false, None) => None,
        (true, Some(seed)) => {
            match crate::cli_words::number_in_range("--seed", &seed, 0u64, u64::MAX) {
                Ok(seed) => Some(seed),
                Err(e) => {
                    eprintln!("peerloop test: {e}");
                    return 2;
                }
            }
        }
        (true, None) => Some(fresh_seed()),
    };
    if m.free.is_empty() {
        let none = "name at least one scenario file or folder".to_string();
        return command.fail(&crate::cli::Failure::UsageWithHelp(none));
    }
    let mut files = Vec::new();
    for path in &m.free {
        let before = files.len();
        if let Err(e) = collect(Path::new(path), &mut files) {
            eprintln!("peerloop test: {e}");
            return 2;
        }
        if files.len() == before {
            // Nothing to run is not a pass.
            eprintln!("peerloop test: no scenario files (.cfg) found in {path}");
            return 2;
        }
    }
    let binary = match std::env::current_exe() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("peerloop test: cannot find my own binary: {e}");
            return 1;
        }
    };
    let options = Options {
        binary,
        time_scale,
        strict: m.opt_present("strict"),
        logs: m.opt_str("logs").map(PathBuf::from),
        report: m.opt_str("report").map(PathBuf::from),
        sim,
    };
    if m.opt_present("child") {
        let outcome = runner::run_file(&files[0], &options);
        println!(
            "{}",
            serde_json::json!({"name": outcome.name, "passed": outcome.passed, "problems": outcome.problems, "seconds": outcome.seconds, "skipped": outcome.skipped})
        );
        return 0;
    }
    if let Some(seed) = sim {
        sim_log::install();
        println!("simulation seed {seed} (the same run again: --sim --seed {seed})");
    }
    let wall = std::time::Instant::now();
    // Simulated scenarios take milliseconds: side by side would only cost processes.
    let outcomes = if jobs == 1 || files.len() == 1 || sim.is_some() {
        files
            .iter()
            .map(|f| {
                let outcome = runner::run_file(f, &options);
                report(&outcome);
                outcome
            })
            .collect()
    } else {
        run_parallel(&files, &options, jobs)
    };
    let skipped = outcomes.iter().filter(|o| o.skipped.is_some()).count();
    let passed = outcomes
        .iter()
        .filter(|o| o.passed && o.skipped.is_none())
        .count();
    let failed = outcomes.len() - passed - skipped;
    if let Some(dir) = &options.report {
        let entries: Vec<crate::report::IndexEntry> = outcomes
            .iter()
            .map(|o| crate::report::IndexEntry {
                name: o.name.clone(),
                passed: o.passed,
                seconds: o.seconds,
                problems: o.problems.clone(),
            })
            .collect();
        match crate::report::write_index(dir, &entries) {
            Ok(()) => println!("report: {}", dir.join("index.html").display()),
            Err(e) => {
                eprintln!("peerloop test: {e}");
                return 1;
            }
        }
    }
    if sim.is_some() {
        let covered: f64 = outcomes.iter().filter_map(|o| o.virtual_seconds).sum();
        let took = wall.elapsed().as_secs_f64();
        println!(
            "simulated {covered:.1} s of virtual time in {took:.2} s of wall time ({:.0}x real time)",
            covered / took.max(1e-6)
        );
    }
    if skipped > 0 {
        println!("{passed} passed, {failed} failed, {skipped} skipped");
    } else {
        println!("{passed} passed, {failed} failed");
    }
    if failed == 0 {
        0
    } else {
        1
    }
}

/// A seed for a run that was given none: different every time, printed so it can be replayed.
fn fresh_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    (nanos as u64) ^ ((std::process::id() as u64) << 32)
}

fn report(outcome: &Outcome) {
    if let Some(why) = &outcome.skipped {
        println!("SKIP {}: {why}", outcome.name);
        return;
    }
    let verdict = if outcome.passed { "PASS" } else { "FAIL" };
    match outcome.virtual_seconds {
        Some(virt) => println!(
            "{verdict} {} ({:.2} s, {virt:.1} s virtual)",
            outcome.name, outcome.seconds
        ),
        None => println!("{verdict} {} ({:.1} s)", outcome.name, outcome.seconds),
    }
    for problem in &outcome.problems {
        println!("    {problem}");
    }
}

/// Each scenario in its own `peerloop test --child` process, `jobs` at a time;
/// outcomes are printed in file order.
fn run_parallel(files: &[PathBuf], options: &Options, jobs: usize) -> Vec<Outcome> {
    let spawn = |file: &PathBuf| -> std::io::Result<Child> {
        let mut command = Command::new(&options.binary);
        command
            .arg("test")
            .arg("--child")
            .arg("--time-scale")
            .arg(options.time_scale.to_string());
        if options.strict {
            command.arg("--strict");
        }
        if let Some(logs) = &options.logs {
            command.arg("--logs").arg(logs);
        }
        if let Some(report) = &options.report {
            command.arg("--report").arg(report);
        }
        command
            .arg(file)
            .stdout(Stdio::piped())
            .stdin(Stdio::null())
            .spawn()
    };
    let mut results: Vec<Option<Outcome>> = vec![None; files.len()];
    let mut running: Vec<(usize, Child)> = Vec::new();
    let mut next = 0;
    let mut printed = 0;
    while printed < files.len() {
        while running.len() < jobs && next < files.len() {
            match spawn(&files[next]) {
                Ok(child) => running.push((next, child)),
                Err(e) => {
                    results[next] = Some(failed_outcome(&files[next], format!("cannot start: {e}")))
                }
            }
            next += 1;
        }
        let mut finished = Vec::new();
        for (i, (_, child)) in running.iter_mut().enumerate() {
            if !matches!(child.try_wait(), Ok(None)) {
                finished.push(i);
            }
        }
        for i in finished.into_iter().rev() {
            let (index, child) = running.remove(i);
            results[index] = Some(read_child(&files[index], child));
        }
        while printed < files.len() {
            match &results[printed] {
                Some(outcome) => {
                    report(outcome);
                    printed += 1;
                }
                None => break,
            }
        }
        if printed < files.len() {
            // Children are whole scenarios lasting seconds: checking 20 times a second is plenty.
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    results.into_iter().flatten().collect()
}

fn failed_outcome(file: &Path, problem: String) -> Outcome {
    Outcome {
        name: file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
        passed: false,
        problems: vec![problem],
        seconds: 0.0,
        skipped: None,
        virtual_seconds: None,
    }
}

fn read_child(file: &Path, child: Child) -> Outcome {
    let output = match child.wait_with_output() {
        Ok(o) => o,
        Err(e) => return failed_outcome(file, format!("lost the scenario process: {e}")),
    };
    let text = String::from_utf8_lossy(&output.stdout);
    let Some(json) = text
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
    else {
        return failed_outcome(
            file,
            format!(
                "the scenario process printed no outcome ({})",
                output.status
            ),
        );
    };
    Outcome {
        name: json["name"].as_str().unwrap_or_default().to_string(),
        passed: json["passed"].as_bool().unwrap_or(false),
        problems: json["problems"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|p| p.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
        seconds: json["seconds"].as_f64().unwrap_or(0.0),
        skipped: json["skipped"].as_str().map(str::to_string),
        virtual_seconds: None,
    }
}
