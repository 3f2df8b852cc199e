//! Every scenario suite of `testcases/`, replayed by `peerloop test` with
//! real processes, and the runner's own verdicts.

mod common;

use std::path::Path;
use std::process::Command;

fn run_suite(args: &[&str]) -> (bool, String) {
    let output = Command::new(common::BIN)
        .arg("test")
        .args(args)
        .output()
        .expect("run peerloop test");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

/// Replay the folder `testcases/<suite>`: it must pass whole, every file counted.
fn assert_suite_passes(suite: &str, extra: &[&str]) {
    let dir = format!("{}/testcases/{suite}", env!("CARGO_MANIFEST_DIR"));
    let mut args = vec!["--jobs", "2"];
    args.extend_from_slice(extra);
    args.push(&dir);
    let (ok, out) = run_suite(&args);
    assert!(ok, "{out}");
    let total = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "cfg")
        })
        .count();
    assert!(total > 0, "no scenarios in {dir}");
    assert!(
        out.ends_with(&format!("{total} passed, 0 failed\n")),
        "{out}"
    );
}

#[test]
fn our_crc_scenarios_pass_strictly() {
    assert_suite_passes("crc", &["--strict"]);
}

#[test]
fn our_gossip_scenarios_pass() {
    assert_suite_passes("gossip", &[]);
}

#[test]
fn our_chord_scenarios_pass() {
    assert_suite_passes("chord", &[]);
}

#[test]
fn our_bpcon_scenarios_pass() {
    assert_suite_passes("paxos", &[]);
}

#[test]
fn the_course_scenarios_pass_when_present() {
    let course = Path::new("../shared/crc-testcases/TestCases");
    if !course.exists() {
        common::say_skipped(
            "the_course_scenarios_pass_when_present",
            &format!("{} is not here", course.display()),
        );
        return;
    }
    let (ok, out) = run_suite(&[
        "--jobs",
        "2",
        "--time-scale",
        "0.2",
        course.to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
    assert!(out.ends_with("20 passed, 0 failed\n"), "{out}");
    common::say(&format!(
        "RAN the course suite {}: 20 passed, 0 failed",
        course.display()
    ));
}

#[test]
fn a_wrong_expectation_fails_and_is_named() {
    let dir = std::env::temp_dir().join(format!("peerloop-wrong-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("wrong.cfg");
    std::fs::write(
        &file,
        r#"{"type": "CRC_functionality",
            "commands": ["LAUNCHSERVER --id 1 --servername one --port 5001 --info \"x\"",
                         "LAUNCHSERVER --id 2 --servername two --port 5002 --info \"y\" --connect_to_host one --connect_to_port 5001",
                         "WAIT 0.1", "KILL ALL"],
            "final_state": {"one": {"hosts_db": [2, 3], "adjacent_server_ids": [2, 7]}}}"#,
    )
    .unwrap();
    let (ok, out) = run_suite(&[file.to_str().unwrap()]);
    assert!(!ok, "{out}");
    assert!(out.contains("one: Missing from hosts_db: [3]"), "{out}");
    assert!(out.ends_with("0 passed, 1 failed\n"), "{out}");
    let (ok, out) = run_suite(&["--strict", file.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        out.contains("one: wrong expectation? adjacent_server_ids expects {2, 7}"),
        "{out}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// `peerloop test` with `args`: (exit code, stdout, stderr).
fn run_test(args: &[&str]) -> (Option<i32>, String, String) {
    let output = Command::new(common::BIN)
        .arg("test")
        .args(args)
        .output()
        .expect("run peerloop test");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn scratch_dir(what: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("peerloop-{what}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_folder_without_scenarios_is_an_error_not_a_pass() {
    let dir = scratch_dir("empty");
    std::fs::write(dir.join("notes.txt"), "not a scenario").unwrap();
    let (code, out, err) = run_test(&[dir.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{out}{err}");
    assert_eq!(out, "");
    assert_eq!(
        err,
        format!(
            "peerloop test: no scenario files (.cfg) found in {}\n",
            dir.display()
        )
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_scenario_of_unknown_type_is_refused_naming_the_known_types() {
    let dir = scratch_dir("typo");
    let file = dir.join("typo.cfg");
    std::fs::write(
        &file,
        r#"{"type": "chrod", "commands": ["WAIT 0"], "final_state": {}}"#,
    )
    .unwrap();
    let (code, out, _) = run_test(&[file.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.starts_with("FAIL typo"), "{out}");
    assert!(
        out.contains(r#"unknown "type" "chrod" (known types: network_connectivity, CRC_functionality, gossip, chord, BPCon)"#),
        "{out}"
    );
    assert!(out.ends_with("0 passed, 1 failed\n"), "{out}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_transcript_says_how_ports_were_remapped_once_at_the_top() {
    let dir = scratch_dir("logs");
    let file = dir.join("ports.cfg");
    std::fs::write(
        &file,
        r#"{"type": "CRC_functionality",
            "commands": ["LAUNCHSERVER --id 1 --servername one --port 5001 --info \"x\"",
                         "LAUNCHSERVER --id 2 --servername two --port 5002 --info \"y\" --connect_to_host one --connect_to_port 5001",
                         "KILL ALL"],
            "final_state": {"one": {"hosts_db": [2]}}}"#,
    )
    .unwrap();
    let logs = dir.join("logs");
    let (code, out, _) = run_test(&["--logs", logs.to_str().unwrap(), file.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}");
    let transcript = std::fs::read_to_string(logs.join("ports.log")).unwrap();
    let lines: Vec<&str> = transcript.lines().collect();
    assert_eq!(lines[2], "Beginning test ports", "{transcript}");
    let header = lines[4];
    assert!(
        header.starts_with("*PORTS.......\tthe file's ports run on free ones: 5001 -> "),
        "{transcript}"
    );
    assert!(header.contains(", 5002 -> "), "{header}");
    assert_eq!(transcript.matches("*PORTS").count(), 1, "{transcript}");
    // The port it names is the one the server says it listens on.
    let used = header
        .split("5001 -> ")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap();
    assert!(
        transcript.contains(&format!(
            "[one] \tListening for new connections on port {used}"
        )),
        "{transcript}"
    );
    let _ = std::fs::remove_dir_all(dir);
}
