//! End-to-end tests of `peerloop gossip` and `peerloop gossip-client`:
//! real processes, real TCP on loopback.

mod cli;
#[path = "../common/mod.rs"]
mod common;
mod flood;
mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;
use support::*;

pub(crate) const TYPE: u16 = 4242;

/// The subscription is registered once the node says so.
pub(crate) fn wait_subscribed(node: &mut GossipNode, modules: u64) {
    node.proc.wait_state("subscriptions", |s| {
        s["modules"].as_u64() >= Some(modules)
            && s["subscriptions"]
                .as_array()
                .unwrap()
                .contains(&TYPE.into())
    });
}

#[test]
fn a_client_written_from_the_spec_works_unchanged() {
    let mut a = start_node(None, 3, None);
    let mut b = start_node(Some(a.p2p), 3, None);
    settle(std::slice::from_mut(&mut b), 1);

    // On b: NOTIFY, then wait for the NOTIFICATION and answer VALIDATION.
    let mut listener = TcpStream::connect(b.api).unwrap();
    listener.write_all(&notify(TYPE)).unwrap();
    // On a: one module subscribes, another connection announces.
    let mut local = TcpStream::connect(a.api).unwrap();
    local.write_all(&notify(TYPE)).unwrap();
    wait_subscribed(&mut a, 1);
    wait_subscribed(&mut b, 1);
    let mut announcer = TcpStream::connect(a.api).unwrap();
    announcer
        .write_all(&announce(0, TYPE, b"hello gossip"))
        .unwrap();

    listener.set_read_timeout(Some(DEADLINE)).unwrap();
    let (kind, body) = read_frame(&mut listener).unwrap();
    let (id, data_type, data) = parse_notification(kind, &body);
    assert_eq!((data_type, &data[..]), (TYPE, &b"hello gossip"[..]));
    listener.write_all(&validation(id, true)).unwrap();

    // The other local module on a is notified too; the announcer is not.
    local.set_read_timeout(Some(DEADLINE)).unwrap();
    let (kind, body) = read_frame(&mut local).unwrap();
    assert_eq!(parse_notification(kind, &body).2, b"hello gossip");
    announcer
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut byte = [0u8; 1];
    assert!(
        announcer.read(&mut byte).is_err(),
        "the announcer got something"
    );

    let state = b
        .proc
        .wait_state("the verdict", |s| s["items"][0]["verdict"] == "valid");
    assert_eq!(state["items"][0]["data"], "hello gossip");
    let state = a.proc.state();
    assert_eq!(state["items"][0]["verdict"], "local");
    assert_eq!(state["max_forwards"], 1);
}

#[test]
fn fifty_nodes_reach_every_module_forward_once_and_survive_losing_a_fifth() {
    let mut nodes = start_network(50, 4, 2);
    let modules: Vec<RawModule> = nodes
        .iter()
        .map(|n| RawModule::start(n.api, TYPE, true))
        .collect();
    for node in nodes.iter_mut() {
        wait_subscribed(node, 1);
    }
    let mut announcer = TcpStream::connect(nodes[0].api).unwrap();
    announcer.write_all(&announce(0, TYPE, b"first")).unwrap();
    eventually("every module notified of 'first'", || {
        modules.iter().all(|m| m.count(b"first") == 1)
    });
    for (i, node) in nodes.iter_mut().enumerate() {
        let state = node
            .proc
            .wait_state("the item settled", |s| s["items"][0]["forwards"] == 1);
        assert_eq!(
            state["max_forwards"], 1,
            "node {i} forwarded an item twice: {state}"
        );
    }

    // Kill 10 of the 50 (never the announcer's node), mid-run.
    for i in (3..50).step_by(5) {
        nodes[i].proc.kill();
    }
    let live: Vec<usize> = (0..50).filter(|i| i % 5 != 3).collect();
    let dead: Vec<serde_json::Value> = (3..50)
        .step_by(5)
        .map(|i| nodes[i].p2p.to_string().into())
        .collect();
    for &i in &live {
        // Every live node has refilled: no dead peer left, none being dialled.
        let node = &mut nodes[i];
        node.proc.wait_state("refilled peers", |s| {
            let peers = s["peers"].as_array().unwrap();
            peers.len() >= 2 && s["dialing"] == 0 && !peers.iter().any(|p| dead.contains(p))
        });
    }
    announcer.write_all(&announce(0, TYPE, b"second")).unwrap();
    eventually("every live module notified of 'second'", || {
        live.iter().all(|&i| modules[i].count(b"second") == 1)
    });
    for &i in &live {
        let state = nodes[i].proc.wait_state("the item settled", |s| {
            s["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|it| it["data"] == "second" && it["forwards"] == 1)
        });
        assert_eq!(state["max_forwards"], 1, "node {i}: {state}");
    }
    assert!(live.iter().all(|&i| modules[i].count(b"first") == 1));
}

#[test]
fn an_invalid_verdict_stops_the_item_at_its_node() {
    // A chain a - b - c: each node dials one peer, the one before it.
    let mut a = start_node(None, 1, None);
    let mut b = start_node(Some(a.p2p), 1, None);
    settle(std::slice::from_mut(&mut b), 1);
    let mut c = start_node(Some(b.p2p), 1, None);
    settle(std::slice::from_mut(&mut c), 1);
    b.proc
        .wait_state("b linked to a and c", |s| s["peer_count"] == 2);
    a.proc.wait_state("a linked to b", |s| s["peer_count"] == 1);

    // b's module is the command-line client, told to reject everything.
    let mut judge = Node::start_logging(
        &[
            "gossip-client".into(),
            "--api".into(),
            b.api.to_string(),
            "notify".into(),
            TYPE.to_string(),
            "--invalid".into(),
        ],
        None,
    );
    let mut watcher = Node::start_logging(
        &[
            "gossip-client".into(),
            "--api".into(),
            c.api.to_string(),
            "notify".into(),
            TYPE.to_string(),
        ],
        None,
    );
    wait_subscribed(&mut b, 1);
    wait_subscribed(&mut c, 1);
    let status = Command::new(bin())
        .args([
            "gossip-client",
            "--api",
            &a.api.to_string(),
            "announce",
            &TYPE.to_string(),
            "rumour",
        ])
        .status()
        .unwrap();
    assert!(status.success());

    judge.line(|l| l.contains("rumour") && l.ends_with("invalid"));
    let state = b
        .proc
        .wait_state("b's verdict", |s| s["items"][0]["verdict"] == "invalid");
    assert_eq!(state["items"][0]["forwards"], 0);
    // b was c's only way to the item: c never sees it.
    let state = c.proc.state();
    assert_eq!(state["items"], serde_json::json!([]));
    assert_eq!(watcher.state()["notifications"], serde_json::json!([]));

    // Once the judge accepts, the next item gets through to c's module.
    judge.send("valid");
    Command::new(bin())
        .args([
            "gossip-client",
            "--api",
            &a.api.to_string(),
            "announce",
            &TYPE.to_string(),
            "truth",
        ])
        .status()
        .unwrap();
    watcher.wait_state("c's module notified", |s| {
        s["notifications"] == serde_json::json!(["truth"])
    });
    judge.send("quit");
    assert!(judge.wait_exit().success());
}

/// Connect, send `bytes`, and expect the node to close the connection.
fn expect_closed(addr: std::net::SocketAddr, bytes: &[u8]) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(bytes).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("the node did not close the connection: {other:?}"),
    }
}

#[test]
fn malformed_input_on_either_port_closes_that_connection_and_the_node_serves_on() {
    let dir = scratch_dir("malformed");
    let log = dir.join("node.log");
    let mut node = start_node(None, 3, Some(&log));
    let module = RawModule::start(node.api, TYPE, true);
    wait_subscribed(&mut node, 1);

    // A stalled partial frame on each port stays open the whole time and blocks nothing.
    let mut stalled_api = TcpStream::connect(node.api).unwrap();
    stalled_api.write_all(&[0, 200, 1, 244, 1, 2, 3]).unwrap();
    let mut stalled_p2p = TcpStream::connect(node.p2p).unwrap();
    stalled_p2p.write_all(&[0, 200, 1, 251, 1, 2, 3]).unwrap();

    // Each is closed, and `state` says why the last one was.
    let (api, p2p) = (node.api, node.p2p);
    let mut closed = 0;
    let mut check = |node: &mut GossipNode, port, bytes: &[u8], why: &str| {
        expect_closed(port, bytes);
        closed += 1;
        node.proc.wait_state(why, |s| {
            s["rejected_connections"] == closed
                && s["last_rejection"].as_str().unwrap_or("").contains(why)
        });
    };
    for (port, name) in [(api, "API"), (p2p, "P2P")] {
        check(&mut node, port, &[0, 3, 1, 244], "under the 4-byte header");
        let why = format!("unknown message type 777 on the {name} port");
        check(&mut node, port, &frame(777, &[1, 2, 3]), &why);
    }
    // A P2P type on the API port, an API type on the P2P port.
    let p2p_type = frame(506, &[127, 0, 0, 1, 0, 1]);
    check(
        &mut node,
        api,
        &p2p_type,
        "unknown message type 506 on the API port",
    );
    let api_type = frame(501, &[0, 0, 0, 1]);
    check(
        &mut node,
        p2p,
        &api_type,
        "unknown message type 501 on the P2P port",
    );
    // A PULL RESPONSE whose address list is cut short.
    let short = frame(505, &[0, 3, 127, 0, 0, 1, 0x17, 0x71, 127, 0]);
    check(&mut node, p2p, &short, "lists 3 addresses");
    // Size larger than what arrives, then the sender goes away.
    for port in [node.api, node.p2p] {
        let mut s = TcpStream::connect(port).unwrap();
        s.write_all(&[0, 100, 1, 244, 9, 9]).unwrap();
        drop(s);
    }

    // The node still serves: state answers, announcements still flow.
    let mut announcer = TcpStream::connect(node.api).unwrap();
    announcer
        .write_all(&announce(0, TYPE, b"still serving"))
        .unwrap();
    eventually("the module notified", || {
        module.count(b"still serving") == 1
    });
    let state = node.proc.state();
    assert_eq!(
        state["modules"], 3,
        "module, stalled connection, announcer: {state}"
    );

    let transcript = || std::fs::read_to_string(&log).unwrap_or_default();
    // The transcript has the first bad connection in full; the rest, in a
    // burst, are counted (one line a second, not one per connection).
    eventually("log lines for the bad connections", || {
        let t = transcript();
        t.contains("under the 4-byte header; connection closed")
            && t.contains("more connections closed for bad input")
            && t.matches("closed in the middle of a message").count() >= 2
    });
    drop((stalled_api, stalled_p2p));
    let _ = std::fs::remove_dir_all(dir);
}

fn run_gossip(args: &[&str]) -> (i32, String) {
    let out = Command::new(bin())
        .arg("gossip")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn config_errors_name_file_line_and_key() {
    let dir = scratch_dir("config");
    let (code, err) = run_gossip(&["-c", "/nonexistent/gossip.ini"]);
    assert_ne!(code, 0);
    assert!(err.contains("/nonexistent/gossip.ini"), "{err}");

    let file = dir.join("bad.ini");
    std::fs::write(
        &file,
        "hostkey = k.pem\n\n[gossip]\ncache_size = 50\ndegree = many\np2p_address = 127.0.0.1:0\napi_address = 127.0.0.1:0\n",
    )
    .unwrap();
    let (code, err) = run_gossip(&["-c", file.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(
        err.contains(&format!("{}:5: key 'degree' = 'many'", file.display())),
        "{err}"
    );

    std::fs::write(&file, "[gossip]\ndegree = 3\napi_address = 127.0.0.1:0\n").unwrap();
    let (code, err) = run_gossip(&["-c", file.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(err.contains("p2p_address"), "{err}");

    let (code, err) = run_gossip(&[
        "--p2p-address",
        "127.0.0.1:0",
        "--api-address",
        "127.0.0.1:0",
        "--degree",
        "0",
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("--degree"), "{err}");

    // A good file starts a node that answers `state`.
    std::fs::write(
        &file,
        "hostkey = k.pem\n[gossip]\ncache_size = 7\ndegree = 3\nbootstrapper = 127.0.0.1:0\np2p_address = 127.0.0.1:0\napi_address = 127.0.0.1:0\n",
    )
    .unwrap();
    let mut node = Node::start_logging(
        &["gossip".into(), "-c".into(), file.display().to_string()],
        None,
    );
    let state = node.state();
    assert_eq!(state["cache_limit"], 7);
    assert_eq!(state["degree"], 3);
    node.send("quit");
    assert!(node.wait_exit().success());
    let _ = std::fs::remove_dir_all(dir);
}
