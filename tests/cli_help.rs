//! Every command's `--help` and `peerloop --version`: the help of every
//! command (and bench) starts the same way, `usage: peerloop <command>`.

mod common;

use std::process::{Command, Output, Stdio};

fn run(args: &[&str]) -> Output {
    Command::new(common::BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The names listed under `heading` (e.g. "commands:") in a help text: the
/// first word of each indented line that follows it.
fn listed(help: &str, heading: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| l.trim() != heading)
        .skip(1)
        .take_while(|l| l.starts_with("  ") || l.trim().is_empty())
        .filter(|l| l.starts_with("  ") && !l.starts_with("     "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

#[test]
fn every_commands_help_starts_with_the_same_usage_line() {
    let top = run(&["--help"]);
    assert_eq!(top.status.code(), Some(0));
    let top = stdout(&top);
    assert!(top.starts_with("usage: peerloop <command>"), "{top}");
    let commands = listed(&top, "commands:");
    assert!(commands.len() >= 12, "{commands:?}");
    let bench = stdout(&run(&["bench", "--help"]));
    let mut all: Vec<Vec<String>> = commands.iter().map(|c| vec![c.clone()]).collect();
    let benchmarks = listed(&bench, "benchmarks:");
    assert_eq!(benchmarks, ["crc", "gossip", "chord", "bpcon", "memory"]);
    for benchmark in benchmarks {
        all.push(vec!["bench".into(), benchmark]);
    }
    let mut wrong = Vec::new();
    for command in &all {
        let mut args: Vec<&str> = command.iter().map(String::as_str).collect();
        args.push("--help");
        let output = run(&args);
        let help = stdout(&output);
        let want = format!("usage: peerloop {}", command.join(" "));
        if output.status.code() != Some(0) || !help.starts_with(&want) || !output.stderr.is_empty()
        {
            wrong.push(format!(
                "`peerloop {}`: exit {:?}, starts {:?} (want {want:?}), stderr {:?}",
                args.join(" "),
                output.status.code(),
                help.lines().next().unwrap_or(""),
                String::from_utf8_lossy(&output.stderr)
            ));
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

#[test]
fn version_prints_the_crate_version() {
    for flag in ["--version", "-V"] {
        let output = run(&[flag]);
        assert_eq!(output.status.code(), Some(0), "{flag}");
        assert_eq!(
            stdout(&output),
            format!("peerloop {}\n", env!("CARGO_PKG_VERSION")),
            "{flag}"
        );
        assert!(output.stderr.is_empty());
    }
    assert!(stdout(&run(&["--help"])).contains("--version"));
}
