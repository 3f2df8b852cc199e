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
use std::time::Instant;

#[derive(Debug, Clone)]
pub struct Options {
    pub binary: PathBuf,
    pub time_scale: f64,
    pub strict: bool,
    pub logs: Option<PathBuf>,
    /// `--report DIR`: machines are traced and a page per scenario is written.
    pub report: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct Outcome {
    pub name: String,
    pub passed: bool,
    pub problems: Vec<String>,
    pub seconds: f64,
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
    let (passed, problems) = match Scenario::load(path) {
        Ok(scenario) => run(&scenario, options, started),
        Err(e) => (false, vec![e]),
    };
    Outcome {
        name,
        passed,
        problems,
        seconds: started.elapsed().as_secs_f64(),
    }
}

fn run(scenario: &Scenario, options: &Options, started: Instant) -> (bool, Vec<String>) {
    let work_dir =
        std::env::temp_dir().join(format!("peerloop-{}-{}", scenario.name, std::process::id()));
    if let Err(e) = std::fs::create_dir_all(&work_dir) {
        return (
            false,
            vec![format!("cannot create {}: {e}", work_dir.display())],
        );
    }
    let mut ctx = Context::new(
        options.binary.clone(),
        options.time_scale,
        options.strict,
        work_dir.clone(),
    );
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
                    std::thread::sleep(ctx.scaled(seconds));
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
    if let Some(dir) = &options.logs {
        let text = transcript::merge(&ctx, &scenario.name, passed);
        let file = dir.join(format!("{}.log", scenario.name));
        if let Err(e) = std::fs::create_dir_all(dir).and_then(|_| std::fs::write(&file, text)) {
            problems.push(format!("cannot write {}: {e}", file.display()));
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
    let machines = ctx
        .machines
        .iter()
        .map(|m| crate::report::MachineRun {
            name: m.name.clone(),
            command: m.command.clone(),
            trace_file: m.trace_file.clone(),
            final_state: states.get(&m.name).cloned().unwrap_or_default(),
        })
        .collect();
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
