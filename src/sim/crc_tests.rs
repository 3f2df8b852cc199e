//! The CRC server and client, unmodified, in the simulated world.

use super::{host, ExtState, Latency, NodeId, World};
use crate::crc::client::{Client, ClientConfig};
use crate::crc::server::{Server, ServerConfig};
use serde_json::Value;
use std::net::SocketAddr;
use std::time::Duration;

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn add_server(w: &mut World, id: u32, port: u16, join: Option<u16>) -> NodeId {
    let config = ServerConfig {
        id,
        name: format!("s{id}"),
        info: String::new(),
        connect_to: join.map(addr),
    };
    w.add_node(
        format!("s{id}"),
        vec![addr(port)],
        Box::new(move |_| host(Server::new(config.clone()))),
    )
}

fn add_client(w: &mut World, id: u32, name: &str, server_port: u16) -> NodeId {
    let config = ClientConfig {
        id,
        username: name.into(),
        info: String::new(),
        server: addr(server_port),
        exit_on_quit: false,
    };
    w.add_node(
        name.to_string(),
        Vec::new(),
        Box::new(move |_| host(Client::new(config.clone()))),
    )
}

fn state(w: &mut World, node: NodeId) -> Value {
    w.take_printed(node);
    w.type_line(node, "state");
    let line = w.take_printed(node).pop().expect("a state line");
    serde_json::from_str(&line).expect("state is JSON")
}

fn hosts_db(w: &mut World, node: NodeId) -> Vec<u64> {
    state(w, node)["hosts_db"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect()
}

/// s1 — s2 — s3, frodo on s1, sam on s3.
fn chain(seed: u64) -> (World, [NodeId; 5]) {
    let mut w = World::new(seed);
    w.enable_trace();
    w.set_latency(Latency::Exponential {
        min: Duration::from_micros(20),
        mean: Duration::from_millis(2),
    });
    let s1 = add_server(&mut w, 1, 1001, None);
    w.run_for(Duration::from_millis(1));
    let s2 = add_server(&mut w, 2, 1002, Some(1001));
    w.run_for(Duration::from_millis(100));
    let s3 = add_server(&mut w, 3, 1003, Some(1002));
    w.run_for(Duration::from_millis(100));
    let frodo = add_client(&mut w, 101, "frodo", 1001);
    let sam = add_client(&mut w, 104, "sam", 1003);
    // A server's hosts_db holds every other machine of its tree.
    let converged = w.run_until(Duration::from_secs(5), |w| {
        hosts_db(w, s1) == vec![2, 3, 101, 104]
            && hosts_db(w, s2) == vec![1, 3, 101, 104]
            && hosts_db(w, s3) == vec![1, 2, 101, 104]
    });
    assert!(converged, "hosts_db never converged");
    (w, [s1, s2, s3, frodo, sam])
}

#[test]
fn a_chat_crosses_three_hops_in_virtual_time() {
    let (mut w, [_, _, _, frodo, sam]) = chain(1);
    w.take_printed(sam);
    w.type_line(frodo, "/msg 104 Bye Sam");
    let seen = w.run_until(Duration::from_secs(1), |w| {
        w.take_printed(sam).iter().any(|l| l.contains("Bye Sam"))
    });
    assert!(seen, "sam never got the chat");
    assert!(
        w.now() < Duration::from_secs(2),
        "virtual time ran far: {:?}",
        w.now()
    );
}

#[test]
fn the_same_seed_replays_the_same_trace_and_another_differs() {
    let run = |seed| {
        let (mut w, [_, _, _, frodo, _]) = chain(seed);
        w.type_line(frodo, "/msg 104 hello");
        w.run_for(Duration::from_secs(1));
        w.trace().to_vec()
    };
    let a = run(7);
    assert!(a.len() > 20, "a trace of some length: {}", a.len());
    assert_eq!(a, run(7));
    assert_ne!(a, run(8), "latencies follow the seed");
}

#[test]
fn a_crashed_middle_server_is_forgotten_and_a_restart_rejoins() {
    let (mut w, [s1, s2, s3, _, _]) = chain(3);
    w.crash(s2);
    // Without s2 the tree splits: s1 keeps itself and frodo, s3 itself and sam.
    let split = w.run_until(Duration::from_secs(5), |w| {
        hosts_db(w, s1) == vec![101] && hosts_db(w, s3) == vec![104]
    });
    assert!(
        split,
        "s1: {:?}, s3: {:?}",
        hosts_db(&mut w, s1),
        hosts_db(&mut w, s3)
    );
    // s2 restarts and joins s1 again (its factory keeps --connect_to); s3 is
    // not reconnected, since only s3 knew to dial s2.
    w.restart(s2);
    let rejoined = w.run_until(Duration::from_secs(5), |w| hosts_db(w, s1) == vec![2, 101]);
    assert!(rejoined, "s1: {:?}", hosts_db(&mut w, s1));
}

#[test]
fn bytes_across_a_partition_wait_for_the_heal_in_order() {
    let (mut w, [_, s2, s3, frodo, sam]) = chain(4);
    w.partition(&[s2], &[s3]);
    w.take_printed(sam);
    for i in 0..5 {
        w.type_line(frodo, &format!("/msg 104 m{i}"));
    }
    w.run_for(Duration::from_secs(1));
    assert!(
        !w.take_printed(sam).iter().any(|l| l.contains("m0")),
        "nothing crosses the cut"
    );
    w.heal();
    let mut got = Vec::new();
    w.run_until(Duration::from_secs(1), |w| {
        got.extend(w.take_printed(sam));
        got.iter().filter(|l| l.contains("> m")).count() == 5
    });
    let order: Vec<&String> = got.iter().filter(|l| l.contains("> m")).collect();
    assert_eq!(order.len(), 5, "{got:?}");
    for (i, line) in order.iter().enumerate() {
        assert!(line.ends_with(&format!("m{i}")), "in order: {order:?}");
    }
}

#[test]
fn raw_garbage_from_a_test_connection_closes_only_that_connection() {
    let (mut w, [s1, ..]) = chain(5);
    let ext = w.ext_connect(addr(1001));
    w.ext_send(ext, &[0xff; 64]);
    w.run_for(Duration::from_millis(100));
    assert!(
        matches!(w.ext_state(ext), ExtState::Closed(_)),
        "{:?}",
        w.ext_state(ext)
    );
    assert_eq!(hosts_db(&mut w, s1), vec![2, 3, 101, 104]);
    let refused = w.ext_connect(addr(9999));
    w.run_for(Duration::from_millis(100));
    assert_eq!(
        w.ext_state(refused),
        &ExtState::Failed("connection refused".into())
    );
}

#[test]
fn a_paused_server_delivers_nothing_until_it_resumes() {
    let (mut w, [_, s2, _, frodo, sam]) = chain(6);
    w.pause(s2);
    w.take_printed(sam);
    w.type_line(frodo, "/msg 104 later");
    w.run_for(Duration::from_secs(2));
    assert!(!w.take_printed(sam).iter().any(|l| l.contains("later")));
    w.resume(s2);
    let seen = w.run_until(Duration::from_secs(1), |w| {
        w.take_printed(sam).iter().any(|l| l.contains("later"))
    });
    assert!(seen);
}

#[test]
fn a_test_client_that_registers_and_half_closes_still_gets_its_welcome() {
    let (mut w, _) = chain(9);
    let ext = w.ext_connect(addr(1001));
    w.ext_send(ext, &crate::bench::wire::client_registration(150, "brief"));
    w.ext_shutdown_write(ext);
    w.run_for(Duration::from_millis(200));
    let got = w.ext_received(ext).to_vec();
    let (message, _) = crate::crc::codec::decode(&got)
        .expect("a frame")
        .expect("a whole frame");
    assert!(crate::bench::wire::is_welcome(&message), "{message:?}");
    let tail: Vec<&String> = w.trace().iter().rev().take(12).collect();
    assert!(
        matches!(w.ext_state(ext), ExtState::Closed(_)),
        "{:?} {tail:#?}",
        w.ext_state(ext)
    );
}
