//! "A node process I can ask for its state": the one way the benches and
//! the end-to-end tests start a child process (this binary or another),
//! read its stdout lines, send it `state` and poll until a condition on the
//! JSON holds. The child is killed and reaped when dropped, so nothing
//! outlives a bench or a test, even on an error path.
//!
//! Errors are `String`s in words naming the process; tests `expect` them.

use serde_json::Value;
use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// How often [`Proc::wait_state`] asks again, and [`Proc::wait_exit_within`]
/// looks again.
const POLL: Duration = Duration::from_millis(20);

/// A running child; killed and reaped on drop.
pub struct Proc {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    /// Lines the child printed on stdout (read by a helper thread).
    lines: Option<Receiver<String>>,
    /// Lines received that no [`Proc::wait_line`] has consumed yet.
    unread: VecDeque<String>,
    /// Where its standard error goes, when [`Proc::spawn_logged`] chose.
    stderr_file: Option<PathBuf>,
}

/// The last non-empty line of `text`, if any.
fn last_line(text: &str) -> Option<&str> {
    text.lines().rev().map(str::trim).find(|l| !l.is_empty())
}

impl Proc {
    /// Start `command`; with `capture` its stdin and stdout are piped
    /// (stdout lines come back through [`Proc::wait_line`]).
    pub fn spawn(name: &str, command: Command, capture: bool) -> Result<Proc, String> {
        let program = command.get_program().to_owned();
        Self::start(name, command, capture, None)
            .map_err(|e| format!("cannot start {name} ({program:?}): {e}"))
    }

    /// The same, with standard error going to a new file `stderr_file`: a
    /// process that cannot start says why there, and [`Proc::exit_reason`]
    /// quotes it. Errors: "cannot create FILE: …", "cannot start NAME: …".
    pub fn spawn_logged(
        name: &str,
        mut command: Command,
        capture: bool,
        stderr_file: PathBuf,
    ) -> Result<Proc, String> {
        let stderr = std::fs::File::create(&stderr_file).map_err(|e| {
            format!(
                "cannot create {}: {}",
                stderr_file.display(),
                crate::cli_words::io_error(&e)
            )
        })?;
        command.stderr(stderr);
        Self::start(name, command, capture, Some(stderr_file))
            .map_err(|e| format!("cannot start {name}: {e}"))
    }

    fn start(
        name: &str,
        mut command: Command,
        capture: bool,
        stderr_file: Option<PathBuf>,
    ) -> io::Result<Proc> {
        if capture {
            command.stdin(Stdio::piped()).stdout(Stdio::piped());
        } else {
            command.stdin(Stdio::null()).stdout(Stdio::null());
        }
        let mut child = command.spawn()?;
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
            unread: VecDeque::new(),
            stderr_file,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its standard error file ([`Proc::spawn_logged`]).
    pub fn stderr_file(&self) -> Option<&Path> {
        self.stderr_file.as_deref()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Wait for a stdout line that `want` accepts; returns it. It and the
    /// lines before it are consumed; lines looked at by a wait that failed
    /// stay for the next one.
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
        if let Some(i) = self.unread.iter().position(|l| want(l)) {
            let line = self.unread.drain(..=i).next_back();
            return Ok(line.expect("drained up to a line"));
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) if want(&line) => {
                    self.unread.clear();
                    return Ok(line);
                }
                Ok(line) => self.unread.push_back(line),
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!("{}: no {what} within {timeout:?}", self.name))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    // Its stdout closed because it is exiting; the exit
                    // itself may not be reaped yet. Wait for it, so that
                    // what comes next (`exit_reason`) can say how it ended.
                    let status = self.wait_exit_within(left.min(Duration::from_secs(5)));
                    return Err(format!(
                        "{}: exited before {what} (status {status:?})",
                        self.name
                    ));
                }
            }
        }
    }

    /// Write `line` and a newline to its stdin (unbuffered: it is sent
    /// now). `NotConnected` once stdin is closed or was never piped.
    pub fn write_line(&mut self, line: &str) -> io::Result<()> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))?;
        writeln!(stdin, "{line}").and_then(|_| stdin.flush())
    }

    pub fn send_line(&mut self, line: &str) -> Result<(), String> {
        if self.stdin.is_none() {
            return Err(format!("{}: stdin not captured", self.name));
        }
        self.write_line(line)
            .map_err(|e| format!("{}: cannot write stdin: {e}", self.name))
    }

    /// Close its stdin (a node reading it sees the end of its input).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
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

    /// Wait at most `limit` for the process to end by itself; its status if
    /// it did. (A child's exit wakes nothing we can wait on with a time
    /// limit, so this looks every 20 ms.)
    pub fn wait_exit_within(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.exit_status() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(POLL.min(deadline.saturating_duration_since(Instant::now())));
        }
    }

    /// Kill it now (dropping it does the same).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Send it `signal` (SIGSTOP, SIGCONT, …).
    pub fn signal(&mut self, signal: i32) -> io::Result<()> {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: a signal to our own child; it has not been reaped (the
        // callers check it still runs), so the pid is still its own.
        if unsafe { libc::kill(pid, signal) } == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// How it ended; `None` while it runs.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Why it is not running, in one line: its exit status and the last line
    /// it wrote to standard error (with [`Proc::spawn_logged`]). None while
    /// it runs.
    pub fn exit_reason(&mut self) -> Option<String> {
        let status = self.exit_status()?;
        let stderr = self
            .stderr_file
            .as_ref()
            .and_then(|f| std::fs::read_to_string(f).ok())
            .unwrap_or_default();
        Some(match last_line(&stderr) {
            Some(line) => format!("it exited ({status}): {line}"),
            None => format!("it exited ({status})"),
        })
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
    fn lines_a_failed_wait_looked_at_are_left_for_the_next() {
        let mut command = Command::new("sh");
        command.args(["-c", "echo one; echo two; read l; echo three"]);
        let mut p = Proc::spawn("printer", command, true).unwrap();
        let t = Duration::from_secs(20);
        // Whether or not the lines arrived within it, this wait fails...
        assert!(p
            .wait_line(Duration::from_millis(200), "x", |l| l == "x")
            .is_err());
        // ...and leaves them: "one" is still there, "two" after it.
        assert_eq!(p.wait_line(t, "one", |l| l == "one").unwrap(), "one");
        assert_eq!(p.wait_line(t, "two", |l| l == "two").unwrap(), "two");
        p.send_line("").unwrap();
        assert_eq!(p.wait_line(t, "three", |l| l == "three").unwrap(), "three");
        // A match consumes the lines before it.
        let mut command = Command::new("sh");
        command.args(["-c", "echo one; echo two"]);
        let mut p = Proc::spawn("printer", command, true).unwrap();
        assert_eq!(p.wait_line(t, "two", |l| l == "two").unwrap(), "two");
        let err = p.wait_line(t, "one", |l| l == "one").unwrap_err();
        assert!(err.contains("exited before one"), "{err}");
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
    fn exit_reason_quotes_the_last_words_on_standard_error() {
        let file =
            std::env::temp_dir().join(format!("peerloop-testkit-{}-stderr", std::process::id()));
        let mut command = Command::new("sh");
        command.args(["-c", "echo starting >&2; echo 'port taken' >&2; exit 4"]);
        let mut p = Proc::spawn_logged("failer", command, true, file.clone()).unwrap();
        assert!(p.wait_exit_within(Duration::from_secs(20)).is_some());
        assert_eq!(
            p.exit_reason().as_deref(),
            Some("it exited (exit status: 4): port taken")
        );
        assert!(!p.is_running());
        let _ = std::fs::remove_file(file);
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
