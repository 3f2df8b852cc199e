//! Hardening: a peer that floods one item is cut off and logged once
//! (issue 8, item 16); a flood of bad frames makes a bounded number of log
//! lines (issue 8, item 11). Real node processes, raw TCP sockets.

use crate::support::*;
use crate::{wait_subscribed, TYPE};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::mpsc::channel;
use std::time::Instant;

#[test]
fn a_peer_flooding_one_item_is_disconnected_logged_once_and_the_node_serves_on() {
    let dir = scratch_dir("flood");
    let stderr = dir.join("a.stderr");
    let mut a = start_node_logging(None, 3, None, Some(&stderr));
    let mut b = start_node(Some(a.p2p), 3, None);
    settle(std::slice::from_mut(&mut b), 1);
    let module_a = RawModule::start(a.api, TYPE, true);
    let module_b = RawModule::start(b.api, TYPE, true);
    wait_subscribed(&mut a, 1);
    wait_subscribed(&mut b, 1);

    // A peer that PUSHes itself, then sends one item over and over, as two
    // linked seed peers do.
    let mut flooder = TcpStream::connect(a.p2p).unwrap();
    flooder
        .write_all(&frame(506, &[127, 0, 0, 1, 0, 9]))
        .unwrap();
    let mut reader = flooder.try_clone().unwrap();
    let (closed_tx, closed) = channel();
    std::thread::spawn(move || {
        // Read what the node sends (so it never waits on us) until it closes.
        let mut buf = [0u8; 4096];
        while matches!(reader.read(&mut buf), Ok(n) if n > 0) {}
        let _ = closed_tx.send(());
    });
    let batch = send_content(0, TYPE, b"bounce").repeat(100);
    let end = Instant::now() + DEADLINE;
    let mut copies = 0u64;
    let mut seen_closed = false;
    while !seen_closed && flooder.write_all(&batch).is_ok() {
        copies += 100;
        seen_closed = closed.try_recv().is_ok();
        assert!(
            Instant::now() < end,
            "still connected after {copies} copies of one item"
        );
    }
    if !seen_closed {
        // The write failed: the node is closing; the reader sees it too.
        closed
            .recv_timeout(DEADLINE)
            .expect("the node closed the flooder");
    }

    let state = a.proc.wait_state("the flooder gone", |s| {
        s["rejected_connections"] == 1 && s["peer_count"] == 1
    });
    let why = state["last_rejection"].as_str().unwrap();
    assert!(why.contains("items we already had within 10 s"), "{why}");
    assert_eq!(
        module_a.count(b"bounce"),
        1,
        "the item itself was news once"
    );

    // The node serves on: an item from b's side reaches a's module, and back.
    let mut announcer = TcpStream::connect(b.api).unwrap();
    announcer
        .write_all(&announce(0, TYPE, b"after the flood"))
        .unwrap();
    eventually("a's module notified", || {
        module_a.count(b"after the flood") == 1
    });
    let mut announcer = TcpStream::connect(a.api).unwrap();
    announcer
        .write_all(&announce(0, TYPE, b"and back"))
        .unwrap();
    eventually("b's module notified", || module_b.count(b"and back") == 1);

    // Logged once, at the default level, naming what it did.
    let said: Vec<String> = lines_of(&stderr)
        .into_iter()
        .filter(|l| l.contains("items we already had"))
        .collect();
    assert_eq!(said.len(), 1, "{said:?}");
    assert!(
        said[0].contains("WARN") && said[0].contains("disconnected"),
        "{said:?}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// How many bad connections the node's warnings account for: each line
/// stands for one, plus the number it says it held back.
fn accounted(lines: &[String]) -> u64 {
    lines
        .iter()
        .map(|l| {
            if let Some(at) = l.find("(and ") {
                let n: String = l[at + 5..]
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                1 + n.parse::<u64>().unwrap()
            } else if l.contains("more connections closed for bad input") {
                let text = &l[l.find("] ").map_or(0, |i| i + 2)..];
                let n: String = text.chars().take_while(char::is_ascii_digit).collect();
                n.parse::<u64>().unwrap()
            } else {
                1
            }
        })
        .sum()
}

#[test]
fn a_flood_of_bad_frames_makes_a_bounded_number_of_log_lines() {
    let dir = scratch_dir("badflood");
    let stderr = dir.join("node.stderr");
    let mut node = start_node_logging(None, 3, None, Some(&stderr));
    let module = RawModule::start(node.api, TYPE, true);
    wait_subscribed(&mut node, 1);
    const BAD: u64 = 300;
    let started = Instant::now();
    for i in 0..BAD {
        let port = if i % 2 == 0 { node.p2p } else { node.api };
        let mut s = TcpStream::connect(port).unwrap();
        s.write_all(&frame(777, &[1, 2, 3])).unwrap();
        s.set_read_timeout(Some(DEADLINE)).unwrap();
        let mut buf = [0u8; 16];
        assert!(
            matches!(s.read(&mut buf), Ok(0) | Err(_)),
            "connection {i} was not closed"
        );
    }
    // Each was closed after its warning was written: stderr holds them all.
    // One line a second at most (plus the tail), not one per connection.
    let bound = 2 * (started.elapsed().as_secs() + 2);
    let all = lines_of(&stderr);
    assert!(
        all.len() as u64 <= bound,
        "{} log lines for {BAD} bad connections (at most {bound}): {all:?}",
        all.len()
    );
    let state = node.proc.wait_state("every bad connection counted", |s| {
        s["rejected_connections"] == BAD
    });
    assert!(state["last_rejection"]
        .as_str()
        .unwrap()
        .contains("unknown message type 777"));
    // The tail of the flood is reported by the periodic flush.
    let bad_lines = || -> Vec<String> {
        lines_of(&stderr)
            .into_iter()
            .filter(|l| l.contains("closed for bad input") || l.contains("; connection closed"))
            .collect()
    };
    eventually("every bad connection accounted for in the log", || {
        accounted(&bad_lines()) == BAD
    });
    let lines = bad_lines();
    let bound = 2 * (started.elapsed().as_secs() + 2);
    assert!(lines.len() as u64 <= bound, "{lines:?}");
    assert!(lines[0].contains("unknown message type 777"), "{lines:?}");
    // And the node still serves.
    let mut announcer = TcpStream::connect(node.api).unwrap();
    announcer.write_all(&announce(0, TYPE, b"calm")).unwrap();
    eventually("the module notified", || module.count(b"calm") == 1);
    let _ = std::fs::remove_dir_all(dir);
}
