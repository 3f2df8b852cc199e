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
        eprintln!("skipping: {} is not here", course.display());
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
