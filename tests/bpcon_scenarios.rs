//! The BPCon scenarios (testcases/paxos), replayed by `peerloop test`.

use std::process::Command;

#[test]
fn our_bpcon_scenarios_pass() {
    let output = Command::new(env!("CARGO_BIN_EXE_peerloop"))
        .args(["test", "--jobs", "2", "testcases/paxos"])
        .output()
        .expect("run peerloop test");
    let out = String::from_utf8_lossy(&output.stdout);
    let total = std::fs::read_dir("testcases/paxos")
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "cfg")
        })
        .count();
    assert!(output.status.success(), "{out}");
    assert!(
        out.ends_with(&format!("{total} passed, 0 failed\n")),
        "{out}"
    );
}
