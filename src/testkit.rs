//! "A node process I can ask for its state": the one way the benches and
//! the end-to-end tests start a child process (this binary or another),
//! read its stdout lines, send it `state` and poll until a condition on the
//! JSON holds. The child is killed and reaped when dropped, so nothing
//! outlives a bench or a test, even on an error path.
//!
//! Errors are `String`s in words naming the process; tests `expect` them.

use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// How often [`Proc::wait_state`] asks again.
const POLL: Duration = Duration::from_millis(20);

/// A running child; killed and reaped on drop.
pub struct Proc {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    /// Lines the child printed on stdout (read by a helper thread).
    lines: Option<Receiver<String>>,
}

impl Proc {
    /// Start `command`; with `capture` its stdin and stdout are piped
    /// (stdout lines come back through [`Proc::wait_line`]).
    pub fn spawn(name: &str, mut command: Command, capture: bool) -> Result<Proc, String> {
        if capture {
            command.stdin(Stdio::piped()).stdout(Stdio::piped());
        } else {
            command.stdin(Stdio::null()).stdout(Stdio::null());
        }
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot start {name} ({:?}): {e}", command.get_program()))?;
        let stdin = child.stdin.take();
        let lines = child.stdout.take().map(|stdout| {
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
            rx
        });
        Ok(Proc {
            name: name.to_string(),
            child,
            stdin,
            lines,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Wait for a stdout line that `want` accepts; returns it.
    pub fn wait_line(
        &mut self,
        timeout: Duration,
        what: &str,
        want: impl Fn(&str) -> bool,
    ) -> Result<String, String> {
        let lines = self
            .lines
            .as_ref()
            .ok_or_else(|| format!("{}: stdout not captured", self.name))?;
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) if want(&line) => return Ok(line),
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!("{}: no {what} within {timeout:?}", self.name))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.child.try_wait().ok().flatten();
                    return Err(format!(
                        "{}: exited before {what} (status {status:?})",
                        self.name
                    ));
                }
            }
        }
    }

    pub fn send_line(&mut self, line: &str) -> Result<(), String> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| format!("{}: stdin not captured", self.name))?;
        writeln!(stdin, "{line}").map_err(|e| format!("{}: cannot write stdin: {e}", self.name))
    }

    /// Send `state` and read the JSON line it answers.
    pub fn state(&mut self, timeout: Duration) -> Result<Value, String> {
        self.send_line("state")?;
        let line = self.wait_line(timeout, "state line", |l| l.starts_with('{'))?;
        serde_json::from_str(&line)
            .map_err(|e| format!("{}: unreadable state ({e}): {line}", self.name))
    }

    /// Ask for the state until `ok` holds; after `timeout`, an error with
    /// the last state seen.
    pub fn wait_state(
        &mut self,
        what: &str,
        timeout: Duration,
        ok: impl Fn(&Value) -> bool,
    ) -> Result<Value, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let state = self.state(left.max(POLL))?;
            if ok(&state) {
                return Ok(state);
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{}: timed out after {timeout:?} waiting for {what}; last state {state}",
                    self.name
                ));
            }
            std::thread::sleep(POLL);
        }
    }

    /// Wait for the process to end by itself.
    pub fn wait_exit(&mut self) -> Result<ExitStatus, String> {
        self.child
            .wait()
            .map_err(|e| format!("{}: cannot wait for it: {e}", self.name))
    }

    /// Kill it now (dropping it does the same).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Still running?
    pub fn check_alive(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!("{} exited ({status})", self.name)),
            Err(e) => Err(format!("{}: {e}", self.name)),
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in node: says hello, then answers every line with a state
    /// whose `n` counts the questions.
    fn counter() -> Proc {
        let mut command = Command::new("sh");
        command.args([
            "-c",
            r#"echo hello; n=0; while read l; do n=$((n+1)); echo "{\"n\":$n}"; done"#,
        ]);
        Proc::spawn("counter", command, true).expect("sh starts")
    }

    #[test]
    fn a_state_is_asked_for_until_the_condition_holds() {
        let mut p = counter();
        let t = Duration::from_secs(20);
        assert_eq!(p.wait_line(t, "hello", |l| l == "hello").unwrap(), "hello");
        assert_eq!(p.state(t).unwrap()["n"], 1);
        let state = p.wait_state("n = 3", t, |s| s["n"] == 3).unwrap();
        assert_eq!(state["n"], 3);
        p.check_alive().unwrap();
    }

    #[test]
    fn a_condition_that_never_holds_fails_with_the_last_state() {
        let mut p = counter();
        let err = p
            .wait_state("n < 0", Duration::from_millis(100), |s| s["n"] == -1)
            .unwrap_err();
        assert!(err.starts_with("counter: timed out after"), "{err}");
        assert!(err.contains("last state {\"n\":"), "{err}");
    }

    #[test]
    fn a_process_that_ends_is_reported_not_waited_for() {
        let mut command = Command::new("sh");
        command.args(["-c", "exit 3"]);
        let mut p = Proc::spawn("quitter", command, true).unwrap();
        let err = p.state(Duration::from_secs(20)).unwrap_err();
        assert!(err.contains("quitter"), "{err}");
        assert_eq!(p.wait_exit().unwrap().code(), Some(3));
    }
}
