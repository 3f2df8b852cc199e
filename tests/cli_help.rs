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

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The shared command-line layer (`src/cli`) says each kind of mistake the
/// way that command always has, with its exit code: 2 for a mistake in the
/// arguments, 1 for a failure to run (chord says its option mistakes with
/// 1 too, and BPCon everything with 2, as their docs and tests expect).
#[test]
fn mistakes_are_said_once_in_each_commands_words_with_its_exit_code() {
    let cases: &[(&[&str], u8, &str)] = &[
        (&["paxos", "--nosuch"], 2, "peerloop paxos: Unrecognized option: 'nosuch'\n"),
        (&["gossip", "stray"], 2, "peerloop gossip: unexpected argument 'stray'\n"),
        (&["server", "--id", "1", "--servername", "s"], 2, "peerloop: --port is required\n"),
        (&["propose"], 2, "peerloop propose: --api is required (see --help)\n"),
        (&["chord", "--api", "127.0.0.1:0"], 1, "peerloop chord: --listen ADDR is required\n"),
        (
            &["dht", "--api", "127.0.0.1:99999", "get", "k"],
            2,
            "peerloop dht: --api port 99999 is out of range (1–65535)\n",
        ),
        (
            &["gossip-client", "--api", "127.0.0.1:99999", "notify", "1"],
            2,
            "peerloop gossip-client: --api '127.0.0.1:99999': port 99999 is out of range (1–65535)\n",
        ),
        (
            &["paxos", "--id", "a", "--listen", "127.0.0.1:99999", "--api", "127.0.0.1:0"],
            2,
            "peerloop paxos: --listen port 99999 is out of range (0–65535)\n",
        ),
        (
            &["keygen", "--name", "a", "--out", "/nowhere", "--bits", "10"],
            2,
            "peerloop keygen: --bits 10 is out of range (1024–4096)\n",
        ),
    ];
    for (args, code, want) in cases {
        let output = run(args);
        assert_eq!(output.status.code(), Some(i32::from(*code)), "{args:?}");
        assert_eq!(stderr(&output), *want, "{args:?}");
        assert_eq!(stdout(&output), "", "{args:?}");
    }
    // Mistakes said with the usage after them, as those commands always have.
    let with_usage: &[(&[&str], &str, &str)] = &[
        (
            &["server", "--nosuch"],
            "Unrecognized option: 'nosuch'\n\n",
            "server",
        ),
        (
            &["client", "stray"],
            "unexpected argument 'stray'\n\n",
            "client",
        ),
        (
            &["gossip", "--nosuch"],
            "peerloop gossip: Unrecognized option: 'nosuch'\n\n",
            "gossip",
        ),
        (
            &["gossip-client"],
            "peerloop gossip-client: usage: --api ADDR is required\n\n",
            "gossip-client",
        ),
        (&["fuzz"], "peerloop fuzz: which protocol? (", "fuzz"),
        (
            &["test"],
            "peerloop test: name at least one scenario file or folder\n\n",
            "test",
        ),
        (
            &["test", "--jobs"],
            "Argument to option 'jobs' missing\n\n",
            "test",
        ),
    ];
    for (args, starts, command) in with_usage {
        let output = run(args);
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.starts_with(starts), "{args:?}: {err}");
        assert!(
            err.contains(&format!("\n\nusage: peerloop {command}")),
            "{args:?}: {err}"
        );
        assert!(
            err.contains("\n    -h, --help "),
            "the options follow: {err}"
        );
    }
}

/// A port in use is one line in the user's words and exit 1, from the one
/// node start-up sequence every node command shares.
#[test]
fn a_port_in_use_is_one_line_and_exit_1_for_every_node() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let at = taken.local_addr().unwrap().to_string();
    let port = taken.local_addr().unwrap().port().to_string();
    let cases: &[(&[&str], String)] = &[
        (
            &[
                "server",
                "--id",
                "1",
                "--servername",
                "s",
                "--port",
                &port,
                "--bind",
                "127.0.0.1",
            ],
            format!("peerloop: cannot listen on {at}: address already in use"),
        ),
        (
            &[
                "gossip",
                "--p2p-address",
                &at,
                "--api-address",
                "127.0.0.1:0",
            ],
            format!("peerloop gossip: cannot listen for peers on {at}: address already in use"),
        ),
        (
            &[
                "gossip",
                "--p2p-address",
                "127.0.0.1:0",
                "--api-address",
                &at,
            ],
            format!("peerloop gossip: cannot listen for modules on {at}: address already in use"),
        ),
        (
            &["chord", "--listen", "127.0.0.1:0", "--api", &at],
            format!("peerloop chord: cannot listen on {at}: address already in use"),
        ),
    ];
    for (args, want) in cases {
        let output = run(args);
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {err}");
        // The last line: a node may warn first (a low open-file limit).
        assert_eq!(err.lines().last(), Some(want.as_str()), "{args:?}: {err}");
        assert_eq!(err.matches("already in use").count(), 1, "said once: {err}");
        assert_eq!(stdout(&output), "", "{args:?}");
    }
}
