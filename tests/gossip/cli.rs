//! The gossip commands as a new user meets them (issue 9, items 1, 2, 4
//! and 5): each mistake one clear line, the right exit code, nothing said
//! twice. Runs the binary; checks stdout, stderr and the exit code.

use crate::support::*;
use std::net::TcpListener;

#[test]
fn client_commands_fail_at_once_with_one_line_when_nothing_listens() {
    let api = format!("127.0.0.1:{}", dead_port());
    for command in [&["notify", "42"][..], &["announce", "42", "hello"][..]] {
        let mut args = vec!["gossip-client", "--api", &api];
        args.extend_from_slice(command);
        let (code, out, err) = run_to_end(&args);
        assert_eq!(code, 1, "{command:?}: {err}");
        assert_eq!(out, "", "{command:?}");
        assert_eq!(
            err,
            format!(
                "peerloop gossip-client: cannot connect to the gossip node at {api}: connection refused\n"
            ),
            "{command:?}"
        );
    }
}

#[test]
fn a_module_whose_node_goes_away_says_so_once_and_exits_1() {
    let mut node = start_node(None, 3, None);
    let stderr = scratch_dir("gone").join("client.stderr");
    let mut client = Node::start_logging(
        &[
            "gossip-client".into(),
            "--api".into(),
            node.api.to_string(),
            "notify".into(),
            "42".into(),
        ],
        Some(&stderr),
    );
    client.wait_state("connected", |s| s["connected"] == true);
    node.proc.wait_state("subscribed", |s| s["modules"] == 1);
    node.proc.kill();
    let status = client.wait_exit();
    assert_eq!(status.code(), Some(1));
    let said = lines_of(&stderr);
    let closed = format!(
        "peerloop gossip-client: the gossip node closed the connection ({})",
        node.api
    );
    let reset = format!(
        "peerloop gossip-client: lost the gossip node: socket error: Connection reset by peer ({})",
        node.api
    );
    assert!(
        said.len() == 1 && (said[0] == closed || said[0] == reset),
        "{said:?}"
    );
}

#[test]
fn numbers_ports_and_addresses_are_refused_in_words_with_exit_2() {
    let any = "127.0.0.1:0";
    let cases: &[(&[&str], &str)] = &[
        (
            &["gossip", "--p2p-address", "127.0.0.1:99999", "--api-address", any],
            "peerloop gossip: --p2p-address '127.0.0.1:99999': port 99999 is out of range (0–65535)",
        ),
        (
            &["gossip", "--p2p-address", any, "--api-address", "localhost:http"],
            "peerloop gossip: --api-address 'localhost:http': port 'http' is not a number",
        ),
        (
            &["gossip", "--p2p-address", any, "--api-address", any, "--bootstrapper", "no-such-host.invalid:6001"],
            "peerloop gossip: --bootstrapper 'no-such-host.invalid:6001': host 'no-such-host.invalid' not found",
        ),
        (
            &["gossip", "--p2p-address", any, "--api-address", any, "--degree", "99999999999999999999"],
            "peerloop gossip: --degree 99999999999999999999 is out of range (1–1000)",
        ),
        (
            &["gossip", "--p2p-address", any, "--api-address", any, "--cache-size", "0"],
            "peerloop gossip: --cache-size 0 is out of range (1–65535)",
        ),
        (
            &["gossip", "--p2p-address", any, "--api-address", any, "--seed", "x"],
            "peerloop gossip: --seed 'x' is not a number",
        ),
        (
            &["gossip-client", "--api", "127.0.0.1:99999", "notify", "42"],
            "peerloop gossip-client: --api '127.0.0.1:99999': port 99999 is out of range (1–65535)",
        ),
        (
            &["gossip-client", "--api", "127.0.0.1:7001", "notify", "70000"],
            "peerloop gossip-client: data type 70000 is out of range (0–65535)",
        ),
        (
            &["gossip-client", "--api", "127.0.0.1:7001", "--ttl", "256", "announce", "42", "x"],
            "peerloop gossip-client: --ttl 256 is out of range (0–255)",
        ),
    ];
    for (args, said) in cases {
        let (code, out, err) = run_to_end(args);
        assert_eq!((code, out.as_str()), (2, ""), "{args:?}: {err}");
        assert_eq!(err, format!("{said}\n"), "{args:?}");
    }
}

#[test]
fn a_port_in_use_is_said_once() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (code, out, err) = run_to_end(&[
        "gossip",
        "--p2p-address",
        &addr,
        "--api-address",
        "127.0.0.1:0",
    ]);
    assert_eq!(code, 1);
    assert_eq!(out, "");
    assert_eq!(
        err,
        format!("peerloop gossip: cannot listen for peers on {addr}: address already in use\n")
    );
}

#[test]
fn joining_through_a_dead_bootstrapper_warns_at_the_default_level_then_says_when_joined() {
    let dir = scratch_dir("join");
    let stderr = dir.join("node.stderr");
    let log = dir.join("node.log");
    let port = dead_port();
    let boot = format!("127.0.0.1:{port}");
    let mut node = Node::start_logging(
        &[
            "gossip".into(),
            "--p2p-address".into(),
            "127.0.0.1:0".into(),
            "--api-address".into(),
            "127.0.0.1:0".into(),
            "--bootstrapper".into(),
            boot.clone(),
            "--maintenance-ms".into(),
            "50".into(),
            "--log-file".into(),
            log.display().to_string(),
        ],
        Some(&stderr),
    );
    node.line(|l| l.starts_with("gossip node listening"));
    // Retries every 50 ms: wait for a dozen of them (the transcript has them all).
    eventually("a dozen retries", || {
        lines_of(&log)
            .iter()
            .filter(|l| l.contains("contacting bootstrapper"))
            .count()
            >= 12
    });
    let warnings = lines_of(&stderr);
    assert!(!warnings.is_empty(), "nothing said at the default level");
    assert!(
        warnings.len() <= 2,
        "rate-limited, not once per retry: {warnings:?}"
    );
    assert!(
        warnings[0].contains("WARN")
            && warnings[0].contains(&format!(
                "cannot join the network through bootstrapper {boot}: connection refused"
            )),
        "{warnings:?}"
    );
    // The bootstrapper comes up: the node joins and says so once.
    let _boot = start_node_at(&boot);
    let joined = node.line(|l| l.starts_with("gossip node joined"));
    assert!(
        joined.contains(&format!("first peer link with peer {boot}")),
        "{joined}"
    );
    node.send("quit");
    assert!(node.wait_exit().success());
    let _ = std::fs::remove_dir_all(dir);
}

/// A node listening on a given P2P address (a new network).
fn start_node_at(p2p: &str) -> Node {
    let mut proc = Node::start_logging(
        &[
            "gossip".into(),
            "--p2p-address".into(),
            p2p.into(),
            "--api-address".into(),
            "127.0.0.1:0".into(),
        ],
        None,
    );
    proc.line(|l| l.starts_with("gossip node listening"));
    proc
}
