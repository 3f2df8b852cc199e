//! `peerloop test --report`: the pages, opened in a real browser (headless
//! Chromium), against the runs they draw; the ShiViz export against
//! ShiViz's documented format.

mod common;

use regex::Regex;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

// ---- ShiViz ---------------------------------------------------------------

/// Read a ShiViz upload file the way ShiViz does: its first line is the
/// parser expression (with named groups event, host, clock), the second the
/// execution delimiter, the rest the log. Checks every vector clock: a
/// host's own entry counts its events 1, 2, 3…, and each receive's clock
/// dominates the clock of its send (paired first-in first-out per sender,
/// receiver and frame). Returns (events, receives paired).
fn check_shiviz(text: &str) -> (usize, usize) {
    let mut lines = text.splitn(3, '\n');
    let expression = lines.next().unwrap();
    assert_eq!(
        expression, r"(?<event>.*)\n(?<host>\S*) (?<clock>{.*})",
        "ShiViz's documented default expression"
    );
    assert_eq!(lines.next().unwrap(), "", "no execution delimiter");
    let log = lines.next().unwrap_or("");
    // JavaScript takes a lone `{` literally; Rust's regex wants it escaped.
    let rust = expression.replace("{.*}", r"\{.*\}");
    let re = Regex::new(&rust).unwrap();
    let mut own: HashMap<String, u64> = HashMap::new();
    let mut sends: HashMap<(String, String, String), VecDeque<BTreeMap<String, u64>>> =
        HashMap::new();
    let (mut events, mut paired) = (0, 0);
    let mut covered = 0;
    for m in re.captures_iter(log) {
        let (event, host, clock) = (&m["event"], &m["host"], &m["clock"]);
        assert!(!host.is_empty(), "an event without a host: {event}");
        let clock: BTreeMap<String, u64> = serde_json::from_str(clock)
            .unwrap_or_else(|e| panic!("clock {clock} is not JSON host→count: {e}"));
        let n = own.entry(host.to_string()).or_insert(0);
        *n += 1;
        assert_eq!(clock.get(host), Some(&*n), "{host}'s own count at {event}");
        if let Some(rest) = event.strip_prefix("sent to ") {
            let (to, what) = rest.split_once(": ").unwrap();
            sends
                .entry((host.to_string(), to.to_string(), what.to_string()))
                .or_default()
                .push_back(clock);
        } else if let Some(rest) = event.strip_prefix("received from ") {
            let (from, what) = rest.split_once(": ").unwrap();
            if let Some(sent) = sends
                .get_mut(&(from.to_string(), host.to_string(), what.to_string()))
                .and_then(|q| q.pop_front())
            {
                for (h, count) in &sent {
                    assert!(
                        clock.get(h).copied().unwrap_or(0) >= *count,
                        "{host}'s receive of {what} does not dominate {from}'s send: {clock:?} vs {sent:?}"
                    );
                }
                paired += 1;
            }
        } else {
            panic!("unknown event {event}");
        }
        events += 1;
        covered += m.get(0).unwrap().as_str().len() + 1;
    }
    assert_eq!(
        covered,
        log.len(),
        "every line of the log is part of an event"
    );
    (events, paired)
}

#[test]
fn the_shipped_shiviz_log_parses_with_the_documented_expression_and_its_clocks_agree() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/report/crc_chat.shiviz.log");
    let text = std::fs::read_to_string(&path).unwrap();
    let (events, paired) = check_shiviz(&text);
    assert!(events > 100, "{events} events");
    assert!(paired > 50, "{paired} receives paired with their sends");
    assert!(
        text.contains("sent to h1: CHAT 101→104"),
        "decoded frames, not hex"
    );
}

// ---- the browser ----------------------------------------------------------

fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|p| p.is_file())
}

fn browser(chromium: &Path, what: &[&str], page: &Path) -> Vec<u8> {
    let profile = tempdir("chromium-profile");
    let output = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1400,1000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(what)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("start chromium");
    let _ = std::fs::remove_dir_all(&profile);
    assert!(
        output.status.success(),
        "chromium failed on {}",
        page.display()
    );
    output.stdout
}

fn dump_dom(chromium: &Path, page: &Path) -> String {
    let dom = String::from_utf8(browser(chromium, &["--dump-dom"], page)).unwrap();
    assert!(
        dom.contains("data-rendered=\"yes\""),
        "the page's script did not finish: {}",
        page.display()
    );
    dom
}

fn tempdir(what: &str) -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "peerloop-report-test-{what}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The data a page draws from (its JSON script element).
fn page_data(page: &Path) -> Value {
    let html = std::fs::read_to_string(page).unwrap();
    let start = html.find("id=\"data\">").unwrap() + "id=\"data\">".len();
    let end = start + html[start..].find("</script>").unwrap();
    serde_json::from_str(&html[start..end].replace("<\\/", "</")).unwrap()
}

/// Arrows drawn in the dumped DOM: (from, to, kind, frame index).
fn arrows(dom: &str) -> Vec<(String, String, String, usize)> {
    let re = Regex::new(
        r#"<line class="arrow k\d+" data-i="(\d+)" data-from="([^"]*)" data-to="([^"]*)" data-kind="([^"]*)""#,
    )
    .unwrap();
    re.captures_iter(dom)
        .map(|c| (c[2].into(), c[3].into(), c[4].into(), c[1].parse().unwrap()))
        .collect()
}

/// Topology edges in the dumped DOM: (class, from, to).
fn edges(dom: &str) -> HashSet<(String, String, String)> {
    let re =
        Regex::new(r#"<path class="edge ([^"]*)" data-from="([^"]*)" data-to="([^"]*)""#).unwrap();
    re.captures_iter(dom)
        .map(|c| (c[1].into(), c[2].into(), c[3].into()))
        .collect()
}

fn undirected(edges: &HashSet<(String, String, String)>, class: &str) -> HashSet<(String, String)> {
    edges
        .iter()
        .filter(|e| e.0 == class)
        .map(|(_, a, b)| {
            if a < b {
                (a.clone(), b.clone())
            } else {
                (b.clone(), a.clone())
            }
        })
        .collect()
}

fn scenario(path: &str) -> Value {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Every machine's final state as the page has it (what `state` printed).
fn states(data: &Value) -> HashMap<String, Value> {
    data["machines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["name"].as_str().unwrap().to_string(), m["state"].clone()))
        .collect()
}

/// The checks every page must pass: one arrow per matched frame, every
/// machine (those launched and those the scenario expects) has its lane.
fn check_common(dom: &str, data: &Value, expected: &Value) -> Vec<(String, String, String, usize)> {
    let drawn = arrows(dom);
    let matched = data["frames"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f[7] == Value::Bool(true))
        .count();
    assert!(matched > 0, "{}: no frame matched", data["name"]);
    assert_eq!(
        drawn.len(),
        matched,
        "{}: one arrow per matched frame",
        data["name"]
    );
    assert_eq!(data["matched"], matched);
    let mut names: Vec<String> = data["machines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap().to_string())
        .collect();
    names.extend(expected["final_state"].as_object().unwrap().keys().cloned());
    for name in names {
        assert!(
            dom.contains(&format!("<g class=\"lane\" data-machine=\"{name}\">")),
            "{}: no lane for {name}",
            data["name"]
        );
        assert!(
            Regex::new(&format!(
                r#"class="head[^"]*" data-machine="{}""#,
                regex::escape(&name)
            ))
            .unwrap()
            .is_match(dom),
            "{}: no heading for {name}",
            data["name"]
        );
    }
    drawn
}

/// The CRC picture: server links are the servers' adjacent_server_ids,
/// client links their adjacent_user_ids; each chat is drawn hop by hop
/// along those links.
fn check_crc(dom: &str, data: &Value, drawn: &[(String, String, String, usize)]) {
    let states = states(data);
    let by_id: HashMap<u64, String> = states
        .iter()
        .filter_map(|(n, s)| Some((s["id"].as_u64()?, n.clone())))
        .collect();
    let mut servers = HashSet::new();
    let mut clients = HashSet::new();
    for (name, s) in &states {
        for (field, into) in [
            ("adjacent_server_ids", &mut servers),
            ("adjacent_user_ids", &mut clients),
        ] {
            for id in s[field].as_array().into_iter().flatten() {
                let other = by_id[&id.as_u64().unwrap()].clone();
                into.insert(if *name < other {
                    (name.clone(), other)
                } else {
                    (other, name.clone())
                });
            }
        }
    }
    let e = edges(dom);
    assert_eq!(
        undirected(&e, "server-link"),
        servers,
        "server links = adjacent_server_ids"
    );
    assert_eq!(
        undirected(&e, "client-link"),
        clients,
        "client links = adjacent_user_ids"
    );
    // testcases/crc/06: each chat crosses as many server links as its text says.
    let frames = data["frames"].as_array().unwrap();
    for (text, hops) in [
        ("zero hops", 0),
        ("one hop", 1),
        ("three hops", 3),
        ("four hops away", 4),
    ] {
        let path: Vec<&(String, String, String, usize)> = drawn
            .iter()
            .filter(|a| {
                a.2 == "CHAT"
                    && frames[a.3][4]
                        .as_str()
                        .unwrap()
                        .contains(&format!("\\\"{text}\\\""))
            })
            .collect();
        assert_eq!(path.len(), hops + 2, "{text}: {path:?}");
        for pair in path.windows(2) {
            let (a, b) = (&frames[pair[0].3], &frames[pair[1].3]);
            assert_eq!(
                pair[0].1, pair[1].0,
                "{text}: the hops join up: {a} then {b}"
            );
            assert!(
                a[3].as_u64() <= b[2].as_u64(),
                "{text}: a hop is sent after the one before arrived: {a} then {b}"
            );
        }
        for hop in &path[1..path.len() - 1] {
            let key = if hop.0 < hop.1 {
                (hop.0.clone(), hop.1.clone())
            } else {
                (hop.1.clone(), hop.0.clone())
            };
            assert!(
                servers.contains(&key),
                "{text}: hop {hop:?} is not a server link"
            );
        }
    }
}

/// The Chord picture: one successor arrow per node, to the node whose ID
/// is its `successor`; the expected successors of the scenario file.
fn check_chord(dom: &str, data: &Value, expected: &Value) {
    let states = states(data);
    let by_id: HashMap<&str, &String> = states
        .iter()
        .filter_map(|(n, s)| Some((s["id"].as_str()?, n)))
        .collect();
    let succ: HashSet<(String, String)> = edges(dom)
        .into_iter()
        .filter(|e| e.0 == "succ")
        .map(|(_, a, b)| (a, b))
        .collect();
    let want: HashSet<(String, String)> = states
        .iter()
        .map(|(n, s)| (n.clone(), by_id[s["successor"].as_str().unwrap()].clone()))
        .collect();
    assert_eq!(succ, want, "successor arrows = each node's successor");
    for (name, fields) in expected["final_state"].as_object().unwrap() {
        if let Some(id) = fields["successor"].as_str() {
            assert!(
                succ.contains(&(name.clone(), by_id[id].clone())),
                "{name}'s expected successor"
            );
        }
    }
    assert!(edges(dom).iter().any(|e| e.0 == "finger"), "fingers drawn");
}

/// The Gossip picture: peer links are the nodes' `peers`; modules hang off
/// the node whose API they use; CONTENT forwards are drawn.
fn check_gossip(dom: &str, data: &Value, expected: &Value) {
    let states = states(data);
    let by_p2p: HashMap<&str, &String> = states
        .iter()
        .filter_map(|(n, s)| Some((s["p2p_address"].as_str()?, n)))
        .collect();
    let by_api: HashMap<&str, &String> = states
        .iter()
        .filter_map(|(n, s)| Some((s["api_address"].as_str()?, n)))
        .collect();
    let mut peers = HashSet::new();
    let mut modules = HashSet::new();
    for (name, s) in &states {
        for a in s["peers"].as_array().into_iter().flatten() {
            let other = by_p2p[a.as_str().unwrap()].clone();
            peers.insert(if *name < other {
                (name.clone(), other)
            } else {
                (other, name.clone())
            });
        }
        if let Some(api) = s["api"].as_str() {
            let node = by_api[api].clone();
            modules.insert(if *name < node {
                (name.clone(), node)
            } else {
                (node, name.clone())
            });
        }
    }
    let e = edges(dom);
    assert_eq!(undirected(&e, "peer"), peers, "peer links = peers");
    // (A module with no final state is placed by its traffic instead.)
    let stated: HashSet<(String, String)> = undirected(&e, "module-link")
        .into_iter()
        .filter(|(a, b)| [a, b].iter().any(|n| states[*n]["api"].is_string()))
        .collect();
    assert_eq!(stated, modules, "modules on their nodes");
    for (name, fields) in expected["final_state"].as_object().unwrap() {
        if let Some(n) = fields["peer_count"].as_u64() {
            let drawn = undirected(&e, "peer")
                .iter()
                .filter(|(a, b)| a == name || b == name)
                .count();
            assert_eq!(drawn as u64, n, "{name}'s expected peer_count");
        }
    }
    assert!(
        e.iter().any(|e| e.0 == "forward"),
        "who forwarded what is drawn"
    );
}

/// The BPCon picture: each replica shows what it committed.
fn check_paxos(dom: &str, data: &Value, expected: &Value) {
    let states = states(data);
    let re =
        Regex::new(r#"<g class="node replica[^"]*" data-machine="([^"]*)" data-committed="(\d+)""#)
            .unwrap();
    let shown: HashMap<String, u64> = re
        .captures_iter(dom)
        .map(|c| (c[1].to_string(), c[2].parse().unwrap()))
        .collect();
    let want: HashMap<String, u64> = states
        .iter()
        .filter_map(|(n, s)| Some((n.clone(), s["committed"].as_u64()?)))
        .collect();
    assert_eq!(shown, want, "committed counts as the replicas said");
    for (name, fields) in expected["final_state"].as_object().unwrap() {
        if let Some(n) = fields["committed"].as_u64() {
            assert_eq!(shown.get(name), Some(&n), "{name}'s expected committed");
        }
    }
}

#[test]
fn report_pages_show_every_frame_machine_topology_and_failure_in_a_browser() {
    let dir = tempdir("suite");
    let report = dir.join("report");
    // A copy of a passing scenario with one wrong expectation.
    let mut wrong = scenario("testcases/crc/02_two_servers.cfg");
    wrong["final_state"]["alpha"]["hosts_db"] = serde_json::json!([20, 99]);
    let wrong_path = dir.join("99_wrong_expectation.cfg");
    std::fs::write(&wrong_path, wrong.to_string()).unwrap();
    let files = [
        "testcases/crc/06_chat_zero_one_and_many_hops.cfg",
        "testcases/chord/02_put_get_three_copies.cfg",
        "testcases/gossip/01_announce_reaches_other_modules.cfg",
        "testcases/paxos/02_four_replicas_agree.cfg",
    ];
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = Command::new(common::BIN)
        .args(["test", "--jobs", "3", "--report"])
        .arg(&report)
        .args(files.iter().map(|f| root.join(f)))
        .arg(&wrong_path)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "one scenario fails: {out}");
    assert!(out.contains("4 passed, 1 failed"), "{out}");

    let index = std::fs::read_to_string(report.join("index.html")).unwrap();
    for f in &files {
        let name = Path::new(f).file_stem().unwrap().to_str().unwrap();
        assert!(
            index.contains(&format!(
                "<a href=\"{name}.html\">{name}</a></td><td class=\"pass\">PASS"
            )),
            "{name} in the index: {index}"
        );
        assert!(
            index.contains(&format!("<a href=\"{name}.frames.log\">frames</a>"))
                && index.contains(&format!("<a href=\"{name}.shiviz.log\">ShiViz</a>")),
            "{name}'s logs linked from the index"
        );
        let (events, paired) = check_shiviz(
            &std::fs::read_to_string(report.join(format!("{name}.shiviz.log"))).unwrap(),
        );
        assert!(events > 0 && paired > 0, "{name}'s ShiViz log");
        let log = std::fs::read_to_string(report.join(format!("{name}.frames.log"))).unwrap();
        assert!(
            log.lines().any(|l| l.contains(" S ")) && log.lines().any(|l| l.contains(" R ")),
            "{name}: sends and receives"
        );
    }
    assert!(index.contains("<td class=\"fail\">FAIL</td>"), "{index}");
    assert!(
        index.contains("alpha: "),
        "the failure's first problem: {index}"
    );

    let Some(chromium) = chromium() else {
        common::say_skipped(
            "report_pages_show_every_frame_machine_topology_and_failure_in_a_browser (browser part)",
            "chromium is not installed (apt-get install -y chromium)",
        );
        return;
    };
    for f in &files {
        let name = Path::new(f).file_stem().unwrap().to_str().unwrap();
        let page = report.join(format!("{name}.html"));
        let data = page_data(&page);
        let dom = dump_dom(&chromium, &page);
        let expected = scenario(f);
        let drawn = check_common(&dom, &data, &expected);
        match data["protocol"].as_str().unwrap() {
            "crc" => check_crc(&dom, &data, &drawn),
            "chord" => check_chord(&dom, &data, &expected),
            "gossip" => check_gossip(&dom, &data, &expected),
            "bpcon" => check_paxos(&dom, &data, &expected),
            other => panic!("protocol {other}"),
        }
    }
    // The failure: its differences next to the machine they concern.
    let page = report.join("99_wrong_expectation.html");
    let dom = dump_dom(&chromium, &page);
    check_common(&dom, &page_data(&page), &wrong);
    assert!(
        dom.contains("<table class=\"diff\" data-machine=\"alpha\">"),
        "the diff table"
    );
    assert!(
        dom.contains("class=\"head bad\" data-machine=\"alpha\""),
        "the lane heading marks it"
    );
    let node = dom
        .find("<g class=\"node server bad\" data-machine=\"alpha\">")
        .expect("alpha's node marked");
    let node = &dom[node..node + dom[node..].find("</g>").unwrap()];
    assert!(
        node.contains("✗ Missing from hosts_db"),
        "the difference beside the node: {node}"
    );
    assert!(
        !dom.contains("data-machine=\"beta\"><summary>⚠"),
        "beta is fine"
    );
    let shot = dir.join("shot.png");
    browser(
        &chromium,
        &[&format!("--screenshot={}", shot.display())],
        &report.join("06_chat_zero_one_and_many_hops.html"),
    );
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "a screenshot of the page"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The course's `4_3_Message_Three_Hops`: the chat goes client → three
/// servers → client, each arrow between the machines that are linked.
#[test]
fn the_course_three_hop_chat_is_drawn_hop_by_hop() {
    let course = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/crc-testcases/TestCases/4_3_Message_Three_Hops.cfg");
    if !course.exists() {
        common::say_skipped(
            "the_course_three_hop_chat_is_drawn_hop_by_hop",
            "../shared/crc-testcases is missing",
        );
        return;
    }
    let Some(chromium) = chromium() else {
        common::say_skipped(
            "the_course_three_hop_chat_is_drawn_hop_by_hop",
            "chromium is not installed",
        );
        return;
    };
    let dir = tempdir("course");
    let output = Command::new(common::BIN)
        .args(["test", "--time-scale", "0.5", "--report"])
        .arg(&dir)
        .arg(&course)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    let page = dir.join("4_3_Message_Three_Hops.html");
    let dom = dump_dom(&chromium, &page);
    let data = page_data(&page);
    let drawn = check_common(
        &dom,
        &data,
        &serde_json::from_str(&std::fs::read_to_string(&course).unwrap()).unwrap(),
    );
    let chat: Vec<(&str, &str)> = drawn
        .iter()
        .filter(|a| a.2 == "CHAT")
        .map(|a| (a.0.as_str(), a.1.as_str()))
        .collect();
    assert_eq!(
        chat.len(),
        4,
        "client→server, three servers, server→client: {chat:?}"
    );
    assert_eq!(chat[0].0, "sauron");
    assert_eq!(chat[3].1, "elrond");
    for pair in chat.windows(2) {
        assert_eq!(pair[0].1, pair[1].0, "{chat:?}");
    }
    let links = undirected(&edges(&dom), "server-link");
    for (a, b) in &chat[1..3] {
        let key = if a < b {
            (a.to_string(), b.to_string())
        } else {
            (b.to_string(), a.to_string())
        };
        assert!(
            links.contains(&key),
            "{a}→{b} is a server link in the picture"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// How long a page of 20,000 frames takes to load (printed, not asserted).
#[test]
fn a_page_of_20000_frames_loads_in_chromium() {
    use peerloop::report::frames::{End, Frame};
    let Some(chromium) = chromium() else {
        common::say_skipped(
            "a_page_of_20000_frames_loads_in_chromium",
            "chromium is not installed",
        );
        return;
    };
    let machines: Vec<peerloop::report::MachineRun> = (0..10)
        .map(|i| peerloop::report::MachineRun {
            name: format!("m{i}"),
            command: "chord".into(),
            trace_file: None,
            final_state: serde_json::json!({"id": format!("{:02x}{}", i * 25, "0".repeat(38)), "successor": format!("{:02x}{}", ((i + 1) % 10) * 25, "0".repeat(38))}),
        })
        .collect();
    let frames: Vec<Frame> = (0..20_000u64)
        .map(|n| Frame {
            from: End::Machine((n % 10) as usize),
            to: End::Machine(((n * 7 + 3) % 10) as usize),
            from_addr: "127.0.0.1:1".into(),
            to_addr: "127.0.0.1:2".into(),
            sent: Some(1_000_000 + n * 100),
            received: Some(1_000_000 + n * 100 + 250),
            offset: n * 12,
            label: format!("PING req {n}"),
            fields: format!("req={n}"),
            bytes: vec![0, 12, 2, 177, 0, 0, 0, 1],
        })
        .collect();
    let empty = serde_json::Map::new();
    let run = peerloop::report::ScenarioRun {
        name: "twenty_thousand",
        passed: true,
        seconds: 2.0,
        problems: &[],
        machines,
        notes: &[],
        expected: &empty,
    };
    let dir = tempdir("big");
    let page = dir.join("big.html");
    std::fs::write(
        &page,
        peerloop::report::html::page(&peerloop::report::page_data(&run, &frames)),
    )
    .unwrap();
    let started = Instant::now();
    let dom = dump_dom(&chromium, &page);
    let took = started.elapsed();
    assert_eq!(arrows(&dom).len(), 20_000);
    let script_ms = Regex::new(r#"data-render-ms="(\d+)""#)
        .unwrap()
        .captures(&dom)
        .unwrap()[1]
        .to_string();
    common::say(&format!(
        "MEASURED a report page of 20,000 frames loads and renders in headless Chromium in {:.2} s \
         (browser start included; the page's script took {script_ms} ms)",
        took.as_secs_f64()
    ));
    let _ = std::fs::remove_dir_all(&dir);
}

/// At debug level a node logs every frame it sends and receives, decoded.
#[test]
fn at_debug_level_every_frame_sent_and_received_is_one_decoded_line() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let dir = tempdir("debug-log");
    let start = |id: &str, name: &str, join: Option<u16>| {
        let log = dir.join(format!("{name}.stderr"));
        let mut command = Command::new(common::BIN);
        command
            .args([
                "server",
                "--id",
                id,
                "--servername",
                name,
                "--port",
                "0",
                "--bind",
                "127.0.0.1",
            ])
            .env("RUST_LOG", "debug")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap());
        if let Some(port) = join {
            command.args([
                "--connect_to_host",
                "127.0.0.1",
                "--connect_to_port",
                &port.to_string(),
            ]);
        }
        let mut child = command.spawn().unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        while !line.starts_with("listening on") {
            line.clear();
            assert!(out.read_line(&mut line).unwrap() > 0, "{name} exited");
        }
        let port: u16 = line.trim().rsplit(':').next().unwrap().parse().unwrap();
        (child, port, log)
    };
    let (mut a, port, a_log) = start("1", "alpha", None);
    let (mut b, _, b_log) = start("2", "beta", Some(port));
    let deadline = Instant::now() + std::time::Duration::from_secs(30);
    let found = |log: &Path, wanted: &str| {
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .lines()
            .any(|l| l.contains("DEBUG") && l.contains(wanted))
    };
    loop {
        let done = found(&b_log, "sent to 127.0.0.1:")
            && found(
                &b_log,
                ": SERVER_REG 2 beta (source=2 last_hop=0 name=\"beta\"",
            )
            && found(&a_log, "received from 127.0.0.1:")
            && found(&a_log, ": SERVER_REG 2 beta (")
            && found(&b_log, ": SERVER_REG 1 alpha (");
        if done {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no decoded frame lines:\n{}\n{}",
            std::fs::read_to_string(&a_log).unwrap_or_default(),
            std::fs::read_to_string(&b_log).unwrap_or_default()
        );
        // The logs are files other processes write: look again shortly.
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    for child in [&mut a, &mut b] {
        let _ = child.kill();
        let _ = child.wait();
    }
    let _ = std::fs::remove_dir_all(&dir);
}
