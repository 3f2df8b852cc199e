//! Run one scenario: its commands in order against real processes, then
//! the comparison of final states.

use super::check;
use super::chord::ChordExtension;
use super::context::{Context, Extension};
use super::crc::CrcExtension;
use super::gossip::GossipExtension;
use super::parse::{split_args, Scenario};
use super::paxos::PaxosExtension;
use super::transcript;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Options {
    pub binary: PathBuf,
    pub time_scale: f64,
    pub strict: bool,
    pub logs: Option<PathBuf>,
    /// `--report DIR`: machines are traced and a page per scenario is written.
    pub report: Option<PathBuf>,
    /// `--sim`: run in the simulator with this seed.
    pub sim: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct Outcome {
    pub name: String,
    pub passed: bool,
    pub problems: Vec<String>,
    pub seconds: f64,
    /// Not run, and why (a sim-only command in real mode, a type the simulator cannot run).
    pub skipped: Option<String>,
    /// Virtual time the scenario covered (simulator only).
    pub virtual_seconds: Option<f64>,
}

/// Fault commands only the simulator can carry out.
pub const SIM_ONLY: [&str; 3] = ["PARTITION", "HEAL", "DELAY"];

/// Why `scenario` cannot run in this mode, if it cannot.
pub fn skip_reason(scenario: &Scenario, sim: bool) -> Option<String> {
    if sim {
        if !super::sim_net::SIM_TYPES.contains(&scenario.kind.as_str()) {
            return Some(format!(
                "type \"{}\" does not run in the simulator yet (it runs: {})",
                scenario.kind,
                super::sim_net::SIM_TYPES.join(", ")
            ));
        }
        return None;
    }
    let used: Vec<&str> = SIM_ONLY
        .into_iter()
        .filter(|word| {
            scenario
                .commands
                .iter()
                .any(|c| split_args(c).first().map(String::as_str) == Some(*word))
        })
        .collect();
    (!used.is_empty()).then(|| {
        format!(
            "uses {}, which only the simulator can do (run it with --sim)",
            used.join(", ")
        )
    })
}

/// Every protocol's scenario commands.
fn extensions(scenario: &Scenario) -> Vec<Box<dyn Extension>> {
    vec![
        Box::new(CrcExtension::new(&scenario.kind)),
        Box::new(GossipExtension::new()),
        Box::new(ChordExtension::new()),
        Box::new(PaxosExtension::new()),
    ]
}

pub fn run_file(path: &Path, options: &Options) -> Outcome {
    let started = Instant::now();
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut virtual_seconds = None;
    let mut skipped = None;
    let (passed, problems) = match Scenario::load(path) {
        Ok(scenario) => match skip_reason(&scenario, options.sim.is_some()) {
            Some(why) => {
                skipped = Some(why);
                (true, Vec::new())
            }
            None => run(&scenario, options, started, &mut virtual_seconds),
        },
        Err(e) => (false, vec![e]),
    };
    Outcome {
        name,
        passed,
        problems,
        seconds: started.elapsed().as_secs_f64(),
        skipped,
        virtual_seconds,
    }
}

/// `a,b c,d` (PARTITION's two sets of machine names).
fn machine_set(word: &str, text: Option<&String>) -> Result<Vec<String>, String> {
    let text =
        text.ok_or_else(|| format!("{word} needs two sets of machines, e.g. {word} a,b c,d"))?;
    Ok(text
        .split(',')
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .collect())
}

/// The fault commands of both modes (see testcases/README.md).
fn fault(
    word: &str,
    rest: &[String],
    ctx: &mut Context,
    extensions: &mut [Box<dyn Extension>],
) -> Result<(), String> {
    let name = || {
        rest.first()
            .map(String::as_str)
            .ok_or_else(|| format!("{word} needs a machine name"))
    };
    match word {
        "CRASH" => {
            let name = name()?;
            extensions.iter_mut().for_each(|e| e.on_kill(name));
            ctx.kill(name)
        }
        "RESTART" => {
            let name = name()?;
            ctx.restart(name)?;
            extensions.iter_mut().for_each(|e| e.on_restart(name));
            Ok(())
        }
        "PAUSE" => ctx.pause(name()?, true),
        "RESUME" => ctx.pause(name()?, false),
        "PARTITION" => {
            let a = machine_set(word, rest.first())?;
            let b = machine_set(word, rest.get(1))?;
            ctx.partition(&a, &b)
        }
        "HEAL" => ctx.heal(),
        "DELAY" => {
            let (between, ms) = match rest {
                [ms] => (None, ms),
                [a, b, ms] => (Some((a.as_str(), b.as_str())), ms),
                _ => return Err("DELAY takes MS, or A B MS (milliseconds, one way)".into()),
            };
            let ms: f64 = ms
                .parse()
                .ok()
                .filter(|ms: &f64| ms.is_finite() && *ms >= 0.0 && *ms <= 60_000.0)
                .ok_or_else(|| format!("DELAY {ms}: not a number of milliseconds (0–60000)"))?;
            ctx.delay(between, Duration::from_secs_f64(ms / 1000.0))
        }
        _ => unreachable!("not a fault command: {word}"),
    }
}

const FAULTS: [&str; 7] = [
    "CRASH",
    "RESTART",
    "PAUSE",
    "RESUME",
    "PARTITION",
    "HEAL",
    "DELAY",
];

fn run(
    scenario: &Scenario,
    options: &Options,
    started: Instant,
    virtual_seconds: &mut Option<f64>,
) -> (bool, Vec<String>) {
    let work_dir =
        std::env::temp_dir().join(format!("peerloop-{}-{}", scenario.name, std::process::id()));
    if let Err(e) = std::fs::create_dir_all(&work_dir) {
        return (
            false,
            vec![format!(
                "cannot create {}: {}",
                work_dir.display(),
                crate::cli_words::io_error(&e)
            )],
        );
    }
    let mut ctx = match options.sim {
        Some(seed) => {
            Context::simulated(seed, options.time_scale, options.strict, work_dir.clone())
        }
        None => Context::new(
            options.binary.clone(),
            options.time_scale,
            options.strict,
            work_dir.clone(),
        ),
    };
    ctx.traced = options.report.is_some();
    let mut extensions = extensions(scenario);
    let mut problems = Vec::new();
    let mut states = None;
    for (number, line) in scenario.commands.iter().enumerate() {
        let args = split_args(line);
        let Some(word) = args.first().map(String::as_str) else {
            continue;
        };
        let rest = &args[1..];
        ctx.note(match word {
            "WAIT" => format!("Waiting... {}", rest.join(" ")),
            _ => format!("Running: {line}"),
        });
        let result = match word {
            "WAIT" => match rest.first().and_then(|s| s.parse::<f64>().ok()) {
                Some(seconds) => {
                    let d = ctx.scaled(seconds);
                    ctx.sleep(d);
                    Ok(())
                }
                None => Err("WAIT needs a number of seconds".to_string()),
            },
            "KILL" if rest.first().map(String::as_str) == Some("ALL") => {
                states = Some(ctx.final_states());
                ctx.stop_all();
                break;
            }
            "SEND" => match rest.split_first() {
                Some((name, words)) if !words.is_empty() => {
                    if words.len() == 1 && words[0] == "quit" {
                        // The machine leaves: extensions stop counting it as linked.
                        extensions.iter_mut().for_each(|e| e.on_kill(name));
                    }
                    ctx.send_line(name, &words.join(" "))
                }
                _ => Err("SEND needs a machine name and a line".to_string()),
            },
            "KILL" => match rest.first() {
                Some(name) => {
                    extensions.iter_mut().for_each(|e| e.on_kill(name));
                    ctx.kill(name)
                }
                None => Err("KILL needs a machine name or ALL".to_string()),
            },
            word if FAULTS.contains(&word) => fault(word, rest, &mut ctx, &mut extensions),
            _ => match extensions.iter_mut().find(|e| e.handles(word)) {
                Some(extension) => extension.run(word, rest, &mut ctx),
                None => Err(format!("unknown command {word}")),
            },
        };
        if let Err(e) = result {
            problems.push(format!("command {} ({line}): {e}", number + 1));
            break;
        }
    }
    let states = match states {
        Some(states) => states,
        None => {
            let states = ctx.final_states();
            ctx.stop_all();
            states
        }
    };
    problems.extend(check::compare(
        &scenario.final_state,
        &states,
        options.strict,
    ));
    if options.strict {
        for extension in &extensions {
            problems.extend(extension.strict_check(&ctx, scenario));
        }
    }
    let passed = problems.is_empty();
    if let Some(sim) = &ctx.sim {
        *virtual_seconds = Some(sim.world.now().as_secs_f64());
    }
    if let Some(dir) = &options.logs {
        let text = transcript::merge(&ctx, &scenario.name, passed);
        let file = dir.join(format!("{}.log", scenario.name));
        if let Err(e) = std::fs::create_dir_all(dir).and_then(|_| std::fs::write(&file, text)) {
            problems.push(format!(
                "cannot write {}: {}",
                file.display(),
                crate::cli_words::io_error(&e)
            ));
        }
    }
    if let Some(dir) = &options.report {
        if let Err(e) = write_report(dir, scenario, &ctx, &states, &problems, started) {
            problems.push(e);
        }
    }
    drop(ctx);
    let _ = std::fs::remove_dir_all(&work_dir);
    (passed && problems.is_empty(), problems)
}

/// The scenario's page, frame log and ShiViz log (`--report`).
fn write_report(
    dir: &Path,
    scenario: &Scenario,
    ctx: &Context,
    states: &std::collections::HashMap<String, serde_json::Value>,
    problems: &[String],
    started: Instant,
) -> Result<(), String> {
    let mut machines: Vec<crate::report::MachineRun> = ctx
        .machines
        .iter()
        .map(|m| crate::report::MachineRun {
            name: m.name.clone(),
            command: m.command.clone(),
            trace_file: m.trace_file.clone(),
            final_state: states.get(&m.name).cloned().unwrap_or_default(),
        })
        .collect();
    if let Some(sim) = &ctx.sim {
        // Simulated nodes write no wire traces: the page has states and notes, no diagram.
        machines.extend(sim.machines.iter().map(|m| crate::report::MachineRun {
            name: m.name.clone(),
            command: m.args.first().cloned().unwrap_or_default(),
            trace_file: None,
            final_state: states.get(&m.name).cloned().unwrap_or_default(),
        }));
    }
    crate::report::write_scenario(
        dir,
        &crate::report::ScenarioRun {
            name: &scenario.name,
            passed: problems.is_empty(),
            seconds: started.elapsed().as_secs_f64(),
            problems,
            machines,
            notes: &ctx.notes,
            expected: &scenario.final_state,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn faults(file: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testcases/faults")
            .join(file)
    }

    fn sim_options(seed: u64, logs: &Path) -> Options {
        Options {
            binary: PathBuf::from("peerloop"),
            time_scale: 1.0,
            strict: true,
            logs: Some(logs.to_path_buf()),
            report: None,
            sim: Some(seed),
        }
    }

    #[test]
    fn a_scenario_replayed_in_process_with_one_seed_gives_one_transcript() {
        let dir = std::env::temp_dir().join(format!("peerloop-sim-replay-{}", std::process::id()));
        let mut transcripts = Vec::new();
        for run in ["a", "b"] {
            let logs = dir.join(run);
            let outcome = run_file(&faults("01_crc_partition_heal.cfg"), &sim_options(5, &logs));
            assert!(outcome.passed, "{:?}", outcome.problems);
            assert_eq!(outcome.skipped, None);
            assert!(outcome.virtual_seconds.unwrap() > 6.0, "{outcome:?}");
            transcripts
                .push(std::fs::read_to_string(logs.join("01_crc_partition_heal.log")).unwrap());
        }
        assert_eq!(transcripts[0], transcripts[1]);
        assert!(transcripts[0].contains("Running: PARTITION one two,three"));
        let _ = std::fs::remove_dir_all(dir);
    }

    fn paxos(file: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testcases/paxos")
            .join(file)
    }

    /// A BPCon scenario in the simulator: a replica killed, the others
    /// commit without it, RESTARTPAXOS brings it back from its kept storage
    /// and it catches up; one seed gives one transcript.
    #[test]
    fn a_bpcon_scenario_with_a_restart_runs_in_the_simulator_with_one_transcript() {
        let dir = std::env::temp_dir().join(format!("peerloop-sim-paxos-{}", std::process::id()));
        let mut transcripts = Vec::new();
        for run in ["a", "b"] {
            let logs = dir.join(run);
            let file = paxos("04_crash_then_catch_up.cfg");
            let outcome = run_file(&file, &sim_options(11, &logs));
            assert_eq!(outcome.skipped, None);
            assert!(outcome.passed, "{:?}", outcome.problems);
            transcripts
                .push(std::fs::read_to_string(logs.join("04_crash_then_catch_up.log")).unwrap());
        }
        assert_eq!(transcripts[0], transcripts[1]);
        assert!(transcripts[0].contains("Running: RESTARTPAXOS D"));
        assert!(transcripts[0].contains("PROPOSE to B: 30 operations, result codes {0: 30}"));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn each_mode_names_what_it_cannot_run() {
        let scenario = Scenario::load(&faults("01_crc_partition_heal.cfg")).unwrap();
        assert_eq!(
            skip_reason(&scenario, false).as_deref(),
            Some(
                "uses PARTITION, HEAL, DELAY, which only the simulator can do (run it with --sim)"
            )
        );
        assert_eq!(skip_reason(&scenario, true), None);
        let mut bpcon = scenario.clone();
        bpcon.kind = "BPCon".into();
        assert_eq!(skip_reason(&bpcon, true), None);
        let mut unknown = scenario.clone();
        unknown.kind = "raft".into();
        assert_eq!(
            skip_reason(&unknown, true).as_deref(),
            Some("type \"raft\" does not run in the simulator yet (it runs: network_connectivity, CRC_functionality, chord, gossip, BPCon)")
        );
        // Both-mode faults run in real mode.
        let both = Scenario::load(&faults("02_crc_crash_restart_pause.cfg")).unwrap();
        assert_eq!(skip_reason(&both, false), None);
    }

    #[test]
    fn real_mode_refuses_sim_only_faults_in_words() {
        let mut ctx = Context::new(PathBuf::from("peerloop"), 1.0, false, std::env::temp_dir());
        let mut extensions = Vec::new();
        let words = |line: &str| split_args(line);
        let err = fault("PARTITION", &words("a,b c"), &mut ctx, &mut extensions).unwrap_err();
        assert_eq!(
            err,
            "PARTITION needs the simulator (peerloop test --sim): processes on loopback cannot be cut apart"
        );
        assert!(fault("DELAY", &words("5"), &mut ctx, &mut extensions)
            .unwrap_err()
            .starts_with("DELAY needs the simulator"));
        assert_eq!(
            fault("DELAY", &words("a 5"), &mut ctx, &mut extensions).unwrap_err(),
            "DELAY takes MS, or A B MS (milliseconds, one way)"
        );
        assert_eq!(
            fault("CRASH", &[], &mut ctx, &mut extensions).unwrap_err(),
            "CRASH needs a machine name"
        );
    }
}
