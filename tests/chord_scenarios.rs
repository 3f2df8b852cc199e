//! The Chord scenarios (testcases/chord), replayed by `peerloop test`.

use std::process::Command;

#[test]
fn our_chord_scenarios_pass() {
    let output = Command::new(env!("CARGO_BIN_EXE_peerloop"))
        .args(["test", "--jobs", "2", "testcases/chord"])
        .output()
        .expect("run peerloop test");
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{out}");
    let total = std::fs::read_dir("testcases/chord")
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "cfg")
        })
        .count();
    assert!(
        out.ends_with(&format!("{total} passed, 0 failed\n")),
        "{out}"
    );
}
