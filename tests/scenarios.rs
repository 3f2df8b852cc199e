//! Every scenario suite of `testcases/`, replayed by `peerloop test` with
//! real processes and in the simulator (`--sim`), and the runner's own verdicts.

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

/// The counts of the summary line `N passed, M failed[, K skipped]` ending `out`.
fn summary(out: &str) -> (usize, usize, usize) {
    let last = out.lines().last().unwrap_or_default();
    let numbers: Vec<usize> = last
        .split(", ")
        .map(|part| {
            part.split(' ')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("not a summary line: {last}\n{out}"))
        })
        .collect();
    (numbers[0], numbers[1], numbers.get(2).copied().unwrap_or(0))
}

fn scenario_files(dir: &str) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "cfg")
        })
        .count()
}

/// Replay the folder `testcases/<suite>`: it must pass whole, every file
/// counted; files this mode cannot run are skipped with a line saying why.
fn assert_suite_passes(suite: &str, extra: &[&str]) {
    let dir = format!("{}/testcases/{suite}", env!("CARGO_MANIFEST_DIR"));
    let mut args = vec!["--jobs", "2"];
    args.extend_from_slice(extra);
    args.push(&dir);
    let (ok, out) = run_suite(&args);
    assert!(ok, "{out}");
    let total = scenario_files(&dir);
    assert!(total > 0, "no scenarios in {dir}");
    let (passed, failed, skipped) = summary(&out);
    assert_eq!(failed, 0, "{out}");
    assert!(passed > 0, "{out}");
    assert_eq!(passed + skipped, total, "{out}");
    assert_eq!(
        out.matches("\nSKIP ").count() + usize::from(out.starts_with("SKIP ")),
        skipped,
        "{out}"
    );
}

#[test]
fn our_fault_scenarios_pass_and_the_sim_only_one_is_skipped_in_real_mode() {
    assert_suite_passes("faults", &["--strict"]);
    let dir = format!("{}/testcases/faults", env!("CARGO_MANIFEST_DIR"));
    let (_, out) = run_suite(&[&dir]);
    assert!(
        out.contains("SKIP 01_crc_partition_heal: uses PARTITION, HEAL, DELAY, which only the simulator can do (run it with --sim)\n"),
        "{out}"
    );
    assert!(out.ends_with("1 passed, 0 failed, 1 skipped\n"), "{out}");
}

/// Every scenario file (ours and the course's, when present) in the
/// simulator: each one runs and passes, BPCon's too.
#[test]
fn every_scenario_file_runs_in_the_simulator() {
    let root = env!("CARGO_MANIFEST_DIR");
    let testcases = format!("{root}/testcases");
    let course = Path::new("../shared/crc-testcases/TestCases");
    let mut args = vec!["--sim", "--seed", "1", testcases.as_str()];
    if course.exists() {
        args.push(course.to_str().unwrap());
    }
    let (ok, out) = run_suite(&args);
    assert!(ok, "{out}");
    assert!(
        out.starts_with("simulation seed 1 (the same run again: --sim --seed 1)\n"),
        "{out}"
    );
    let (passed, failed, skipped) = summary(&out);
    assert_eq!(failed, 0, "{out}");
    // Every type runs there, BPCon included: nothing is skipped.
    let mut total = 0;
    let mut crc = 0;
    for suite in ["crc", "faults", "gossip", "chord", "paxos"] {
        let n = scenario_files(&format!("{testcases}/{suite}"));
        total += n;
        if suite == "crc" || suite == "faults" {
            crc += n;
        }
    }
    if course.exists() {
        total += 20;
    }
    assert_eq!(skipped, 0, "{out}");
    assert_eq!(passed, total, "{out}");
    for file in std::fs::read_dir(format!("{testcases}/paxos")).unwrap() {
        let path = file.unwrap().path();
        if path.extension().is_some_and(|x| x == "cfg") {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            assert!(out.contains(&format!("PASS {name} ")), "{name}: {out}");
        }
    }
    assert!(
        out.contains(" s of virtual time in ") && out.contains("x real time)"),
        "{out}"
    );
    // Our CRC suites also pass the strict checks there.
    let strict: Vec<String> = ["crc", "faults"]
        .iter()
        .map(|s| format!("{testcases}/{s}"))
        .collect();
    let (ok, out) = run_suite(&["--sim", "--seed", "2", "--strict", &strict[0], &strict[1]]);
    assert!(ok, "{out}");
    assert_eq!(summary(&out), (crc, 0, 0), "{out}");
}

/// The same seed twice: byte-identical transcripts, file for file.
#[test]
fn one_seed_gives_byte_identical_transcripts() {
    let dir = scratch_dir("sim-logs");
    let testcases = format!("{}/testcases", env!("CARGO_MANIFEST_DIR"));
    let mut runs = Vec::new();
    for run in ["a", "b"] {
        let logs = dir.join(run);
        let (ok, out) = run_suite(&[
            "--sim",
            "--seed",
            "77",
            "--logs",
            logs.to_str().unwrap(),
            &testcases,
        ]);
        assert!(ok, "{out}");
        let mut files: Vec<(String, String)> = std::fs::read_dir(&logs)
            .unwrap()
            .map(|e| {
                let path = e.unwrap().path();
                (
                    path.file_name().unwrap().to_string_lossy().into_owned(),
                    std::fs::read_to_string(&path).unwrap(),
                )
            })
            .collect();
        files.sort();
        runs.push(files);
    }
    assert!(runs[0].len() >= 10, "{:?}", runs[0].len());
    assert_eq!(runs[0], runs[1]);
    let (_, partition) = runs[0]
        .iter()
        .find(|(name, _)| name == "01_crc_partition_heal.log")
        .expect("the partition scenario's transcript");
    assert!(
        partition.contains("*SIM.........\tsimulated, seed 77"),
        "{partition}"
    );
    assert!(partition.contains("[sam] \t"), "{partition}");
    // Machines' log lines are there too: the chat waits at the cut and
    // crosses it only after HEAL.
    let lines: Vec<&str> = partition.lines().collect();
    let at = |what: &str| {
        lines
            .iter()
            .position(|l| {
                l.contains(what) && (what.contains("HEAL") || l.contains("across the cut"))
            })
            .unwrap_or_else(|| panic!("no line with {what}: {partition}"))
    };
    let heal = at("Running: HEAL");
    let sent = at("[one] \tSending message to Host ID #2");
    let crossed = at("[two] \tReceived message from Host ID #101");
    assert!(sent < heal && heal < crossed, "{partition}");
    // BPCon's transcripts are among them: the killed replica comes back
    // from its kept storage and catches up, the same way both times.
    let (_, paxos) = runs[0]
        .iter()
        .find(|(name, _)| name == "04_crash_then_catch_up.log")
        .expect("the BPCon restart scenario's transcript");
    let lines: Vec<&str> = paxos.lines().collect();
    let restart = lines
        .iter()
        .position(|l| l.ends_with("Running: RESTARTPAXOS D"))
        .unwrap_or_else(|| panic!("{paxos}"));
    assert!(
        lines[restart..]
            .iter()
            .any(|l| l.starts_with("[D] \t") && l.contains("committed (caught up)")),
        "{paxos}"
    );
    let _ = std::fs::remove_dir_all(dir);
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
    let (dir, file) = scenario_file(
        "wrong",
        "wrong.cfg",
        r#"{"type": "CRC_functionality",
            "commands": ["LAUNCHSERVER --id 1 --servername one --port 5001 --info \"x\"",
                         "LAUNCHSERVER --id 2 --servername two --port 5002 --info \"y\" --connect_to_host one --connect_to_port 5001",
                         "WAIT 0.1", "KILL ALL"],
            "final_state": {"one": {"hosts_db": [2, 3], "adjacent_server_ids": [2, 7]}}}"#,
    );
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

/// A machine that cannot start is reported with what it said, not only as
/// "did not answer": here the second node's port is the first one's.
#[test]
fn a_machine_that_exits_at_start_is_reported_with_its_own_words() {
    let (dir, file) = scenario_file(
        "exits-at-start",
        "taken.cfg",
        r#"{"type": "gossip",
            "commands": ["LAUNCHGOSSIP --name alpha --p2p 6001 --api 7001",
                         "LAUNCHGOSSIP --name beta --p2p 6001 --api 7002",
                         "KILL ALL"],
            "final_state": {}}"#,
    );
    let (ok, out) = run_suite(&[file.to_str().unwrap()]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("beta did not start listening: it exited"),
        "{out}"
    );
    assert!(out.contains("cannot listen"), "{out}");
    assert!(out.contains("address already in use"), "{out}");
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

/// A fresh scratch folder holding one scenario file `name` with `json`.
fn scenario_file(what: &str, name: &str, json: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = scratch_dir(what);
    let file = dir.join(name);
    std::fs::write(&file, json).unwrap();
    (dir, file)
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
    let (dir, file) = scenario_file(
        "typo",
        "typo.cfg",
        r#"{"type": "chrod", "commands": ["WAIT 0"], "final_state": {}}"#,
    );
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
    let (dir, file) = scenario_file(
        "logs",
        "ports.cfg",
        r#"{"type": "CRC_functionality",
            "commands": ["LAUNCHSERVER --id 1 --servername one --port 5001 --info \"x\"",
                         "LAUNCHSERVER --id 2 --servername two --port 5002 --info \"y\" --connect_to_host one --connect_to_port 5001",
                         "KILL ALL"],
            "final_state": {"one": {"hosts_db": [2]}}}"#,
    );
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
