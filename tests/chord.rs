//! End-to-end Chord tests: real `peerloop chord` processes on loopback.

use peerloop::chord::api_wire::text_key;
use peerloop::chord::harness::{start_ring, states, total_keys, wait_for, Client, NodeProcess};
use peerloop::chord::ring_check::{check_ring, check_stable};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_peerloop"))
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// 32 processes: the ring converges to the sorted order, 1,000 keys put
/// through random nodes are all found from random nodes, then a quarter of
/// the nodes are killed at once and every key is still found.
#[test]
fn ring_of_32_converges_finds_every_key_and_survives_a_quarter_crashing() {
    let common = args(&[
        "--stabilize-ms",
        "50",
        "--successors",
        "5",
        "--replicas",
        "3",
    ]);
    let mut nodes = start_ring(exe(), 32, &common, |i| (i * 7919) % i).unwrap();
    let took = wait_for(&mut nodes, Duration::from_secs(40), check_stable).unwrap();
    eprintln!("32 nodes converged in {took:?}");

    let keys = 1000;
    let mut clients: Vec<Client> = nodes
        .iter()
        .map(|n| Client::connect(&n.api).unwrap())
        .collect();
    for k in 0..keys {
        let value = format!("value {k}");
        clients[(k * 13) % 32]
            .put(text_key(&format!("key {k}")), value.as_bytes(), 600)
            .unwrap();
    }
    let copies = (keys * 3) as u64;
    wait_for(&mut nodes, Duration::from_secs(30), |s| {
        let held = total_keys(s);
        if held >= copies {
            Ok(())
        } else {
            Err(format!("{held} of {copies} copies stored"))
        }
    })
    .unwrap();
    let lookups_before = hop_totals(&mut nodes);
    for k in 0..keys {
        let got = clients[(k * 29 + 3) % 32]
            .get(text_key(&format!("key {k}")))
            .unwrap();
        assert_eq!(got, Some(format!("value {k}").into_bytes()), "key {k}");
    }
    let lookups_after = hop_totals(&mut nodes);
    let lookups = lookups_after.0 - lookups_before.0;
    let mean = (lookups_after.1 - lookups_before.1) as f64 / lookups as f64;
    assert_eq!(lookups, keys as u64, "one lookup per GET");
    assert!(
        mean <= 0.6 * 5.0,
        "mean lookup path {mean} hops in a ring of 32"
    );

    // Kill every fourth node in ring order, so no three neighbours die together.
    let mut order: Vec<usize> = (0..32).collect();
    order.sort_by(|a, b| nodes[*a].id.cmp(&nodes[*b].id));
    let mut victims: Vec<usize> = order.iter().step_by(4).copied().collect();
    victims.sort_unstable_by(|a, b| b.cmp(a));
    for v in &victims {
        nodes[*v].kill();
    }
    for v in &victims {
        nodes.remove(*v);
        clients.remove(*v);
    }
    let took = wait_for(&mut nodes, Duration::from_secs(40), check_ring).unwrap();
    eprintln!("24 survivors re-converged in {took:?}");
    for k in 0..keys {
        let key = text_key(&format!("key {k}"));
        let got = clients[k % 24].get(key).unwrap();
        if got.is_none() {
            panic!(
                "key {k} lost after the crash; {}",
                where_is(&mut nodes, &key)
            );
        }
        assert_eq!(got, Some(format!("value {k}").into_bytes()), "key {k}");
    }
}

/// (lookups, hops) summed over every node's counters.
fn hop_totals(nodes: &mut [NodeProcess]) -> (u64, u64) {
    let s = states(nodes).unwrap();
    let sum = |f: &str| s.iter().map(|st| st[f].as_u64().unwrap()).sum::<u64>();
    (sum("lookups"), sum("lookup_hops_total"))
}

/// Which nodes hold `key` and which should: for failure messages.
fn where_is(nodes: &mut [NodeProcess], key: &[u8; 32]) -> String {
    let s = states(nodes).unwrap();
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    let ring_id = peerloop::chord::id::Id::hash(key).to_hex();
    let mut ids: Vec<(String, bool, String)> = s
        .iter()
        .map(|st| {
            let held = st["stored"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k == &serde_json::json!(hex));
            (
                st["id"].as_str().unwrap().to_string(),
                held,
                format!(
                    "failed lookups {} gets {}",
                    st["lookups_failed"], st["gets_failed"]
                ),
            )
        })
        .collect();
    ids.sort();
    let owner = ids.iter().position(|(id, ..)| *id >= ring_id).unwrap_or(0);
    let around: Vec<String> = (0..4)
        .map(|i| {
            let (id, held, stats) = &ids[(owner + ids.len() - 1 + i) % ids.len()];
            format!(
                "{}{} {}",
                &id[..8],
                if *held { " HOLDS" } else { "" },
                stats
            )
        })
        .collect();
    format!(
        "key at {}; nodes around it: {}",
        &ring_id[..8],
        around.join(", ")
    )
}

/// A client written from the spec alone (raw bytes, no project code) works;
/// garbage on the API port or the peer port closes only that connection.
#[test]
fn a_client_from_the_spec_works_and_bad_input_closes_only_its_connection() {
    let common = args(&["--stabilize-ms", "50"]);
    let mut nodes = start_ring(exe(), 3, &common, |_| 0).unwrap();
    wait_for(&mut nodes, Duration::from_secs(20), check_ring).unwrap();

    let key = [0x42u8; 32];
    let mut put = vec![0, 0, 0x02, 0x8a, 0x00, 0x3c, 3, 0];
    put.extend_from_slice(&key);
    put.extend_from_slice(b"hello dht");
    let size = put.len() as u16;
    put[..2].copy_from_slice(&size.to_be_bytes());
    let mut api = TcpStream::connect(&nodes[0].api).unwrap();
    api.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    api.write_all(&put).unwrap();
    // Garbage on another API connection and on the peer port.
    let mut bad_api = TcpStream::connect(&nodes[0].api).unwrap();
    bad_api.write_all(&[0, 2, 0, 0]).unwrap();
    let mut bad_peer = TcpStream::connect(&nodes[0].listen).unwrap();
    bad_peer.write_all(&[0, 8, 0x02, 0xa8, 1, 2, 3, 4]).unwrap();
    for bad in [&mut bad_api, &mut bad_peer] {
        bad.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(
            bad.read(&mut buf).unwrap_or(0),
            0,
            "the node closes a connection that sent garbage"
        );
    }

    // Three GETs in flight at once on another node: two hits, one miss.
    let mut other = TcpStream::connect(&nodes[2].api).unwrap();
    other
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    // The PUT has no answer; wait until the pair is stored somewhere.
    wait_for(&mut nodes, Duration::from_secs(10), |s| {
        if total_keys(s) > 0 {
            Ok(())
        } else {
            Err("not stored yet".into())
        }
    })
    .unwrap();
    let mut gets = Vec::new();
    for k in [key, [7u8; 32], key] {
        gets.extend_from_slice(&[0, 36, 0x02, 0x8b]);
        gets.extend_from_slice(&k);
    }
    other.write_all(&gets).unwrap();
    let mut answers = Vec::new();
    let mut buf = Vec::new();
    while answers.len() < 3 {
        let mut chunk = [0u8; 1024];
        let n = other.read(&mut chunk).unwrap();
        assert!(n > 0, "connection closed early");
        buf.extend_from_slice(&chunk[..n]);
        while buf.len() >= 4 && buf.len() >= u16::from_be_bytes([buf[0], buf[1]]) as usize {
            let size = u16::from_be_bytes([buf[0], buf[1]]) as usize;
            let kind = u16::from_be_bytes([buf[2], buf[3]]);
            answers.push((kind, buf[4..36].to_vec(), buf[36..size].to_vec()));
            buf.drain(..size);
        }
    }
    let hits = answers
        .iter()
        .filter(|(kind, k, v)| *kind == 652 && k[..] == key && v == b"hello dht")
        .count();
    let misses = answers
        .iter()
        .filter(|(kind, k, _)| *kind == 653 && k[..] == [7u8; 32])
        .count();
    assert_eq!((hits, misses), (2, 1), "answers: {answers:?}");
    // The node is still well and its ring intact.
    check_ring(&states(&mut nodes).unwrap()).unwrap();
}

/// Keys move on join (to the new owner, exactly) and on a polite leave.
#[test]
fn keys_move_on_join_and_on_polite_leave() {
    let common = args(&["--stabilize-ms", "50", "--replicas", "1"]);
    let mut nodes = start_ring(exe(), 4, &common, |_| 0).unwrap();
    wait_for(&mut nodes, Duration::from_secs(20), check_ring).unwrap();
    let mut client = Client::connect(&nodes[1].api).unwrap();
    for k in 0..200 {
        client.put(text_key(&format!("k{k}")), b"v", 600).unwrap();
    }
    wait_for(&mut nodes, Duration::from_secs(20), |s| {
        if total_keys(s) == 200 {
            Ok(())
        } else {
            Err(format!("{} keys", total_keys(s)))
        }
    })
    .unwrap();

    let mut extra = common.clone();
    extra.extend(args(&["--join", &nodes[2].listen]));
    nodes.push(NodeProcess::start(exe(), &extra).unwrap());
    // Every node holds exactly the keys it owns, and none is lost.
    wait_for(&mut nodes, Duration::from_secs(20), |s| {
        check_ring(s)?;
        for state in s {
            if state["keys"] != state["owned_keys"] {
                return Err(format!(
                    "{} holds {} keys, owns {}",
                    state["id"], state["keys"], state["owned_keys"]
                ));
            }
        }
        if total_keys(s) != 200 {
            return Err(format!("{} keys in all", total_keys(s)));
        }
        Ok(())
    })
    .unwrap();
    let newcomer = nodes[4].state().unwrap();
    assert!(
        newcomer["keys"].as_u64().unwrap() > 0,
        "the newcomer took its keys"
    );

    // The busiest node leaves politely: all its keys reach its successor.
    let s = states(&mut nodes).unwrap();
    let leaver = (0..5).max_by_key(|i| s[*i]["keys"].as_u64()).unwrap();
    nodes[leaver].send_line("quit").unwrap();
    assert!(
        nodes[leaver].wait_exit(Duration::from_secs(10)),
        "quit ends the process"
    );
    nodes.remove(leaver);
    wait_for(&mut nodes, Duration::from_secs(20), |s| {
        check_ring(s)?;
        if total_keys(s) == 200 {
            Ok(())
        } else {
            Err(format!("{} keys", total_keys(s)))
        }
    })
    .unwrap();
    let mut client = Client::connect(&nodes[0].api).unwrap();
    for k in 0..200 {
        assert!(
            client.get(text_key(&format!("k{k}"))).unwrap().is_some(),
            "k{k}"
        );
    }
}

#[test]
fn the_dht_command_puts_and_gets() {
    let mut nodes = start_ring(exe(), 2, &args(&["--stabilize-ms", "50"]), |_| 0).unwrap();
    wait_for(&mut nodes, Duration::from_secs(20), check_ring).unwrap();
    let run = |a: &[&str]| Command::new(exe()).arg("dht").args(a).output().unwrap();
    let put = run(&[
        "--api",
        &nodes[0].api,
        "put",
        "colour",
        "blue",
        "--ttl",
        "60",
    ]);
    assert!(put.status.success());
    let mut found = false;
    for _ in 0..50 {
        let get = run(&["--api", &nodes[1].api, "get", "colour"]);
        if get.status.success() {
            assert_eq!(String::from_utf8_lossy(&get.stdout).trim(), "blue");
            found = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(found, "the value never showed up");
    let missing = run(&["--api", &nodes[1].api, "get", "no such key"]);
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&missing.stdout).trim(), "not found");
    let bad = run(&["--api", &nodes[1].api, "get", "--hex", "zz"]);
    assert!(!bad.status.success());
    let help = Command::new(exe())
        .args(["chord", "--help"])
        .output()
        .unwrap();
    assert!(help.status.success());
    let missing_listen = Command::new(exe())
        .args(["chord", "--api", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!missing_listen.status.success());
    assert!(String::from_utf8_lossy(&missing_listen.stderr).contains("--listen"));
}
