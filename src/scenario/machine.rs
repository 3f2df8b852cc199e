//! One machine of a scenario: a real `peerloop` process with its standard
//! input and output piped to the runner.

use serde_json::Value;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Machine {
    pub name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: ChildStdout,
    pending: Vec<u8>,
    /// Every stdout line not yet consumed by a waiter.
    pub lines: Vec<String>,
    pub log_file: PathBuf,
    /// Its wire trace (`--report`), see `reactor::trace`.
    pub trace_file: Option<PathBuf>,
    /// The `peerloop` command it runs (`server`, `chord`, …).
    pub command: String,
    /// The state read when it was stopped.
    pub final_state: Option<Value>,
    /// Its launch arguments, for RESTART.
    pub args: Vec<String>,
    /// Where its standard error goes: a node that cannot start says why there.
    pub stderr_file: PathBuf,
}

/// The last non-empty line of `text`, if any.
fn last_line(text: &str) -> Option<&str> {
    text.lines().rev().map(str::trim).find(|l| !l.is_empty())
}

impl Machine {
    pub fn spawn(
        name: &str,
        binary: &PathBuf,
        args: &[String],
        log_file: PathBuf,
        trace_file: Option<PathBuf>,
    ) -> Result<Machine, String> {
        let stderr_file = log_file.with_extension("stderr");
        let stderr = std::fs::File::create(&stderr_file).map_err(|e| {
            format!(
                "cannot create {}: {}",
                stderr_file.display(),
                crate::cli_words::io_error(&e)
            )
        })?;
        let mut command = Command::new(binary);
        command
            .args(args)
            .arg("--log-file")
            .arg(&log_file)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr);
        if let Some(trace) = &trace_file {
            command.env(crate::reactor::TRACE_ENV, trace);
        }
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot start {name}: {e}"))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().ok_or("no stdout")?;
        // SAFETY: setting O_NONBLOCK on a pipe we own.
        unsafe {
            let fd = stdout.as_raw_fd();
            let flags = libc::fcntl(fd, libc::F_GETFL);
            libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
        }
        Ok(Machine {
            name: name.to_string(),
            child,
            stdin,
            stdout,
            pending: Vec::new(),
            lines: Vec::new(),
            log_file,
            trace_file,
            command: args.first().cloned().unwrap_or_default(),
            final_state: None,
            args: args.to_vec(),
            stderr_file,
        })
    }

    /// Send `signal` to the process (PAUSE and RESUME: SIGSTOP, SIGCONT).
    pub fn signal(&mut self, signal: i32) -> Result<(), String> {
        if !self.is_running() {
            return Err(format!("{} is stopped", self.name));
        }
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: a signal to our own child, which has not been reaped (it is running).
        if unsafe { libc::kill(pid, signal) } == 0 {
            Ok(())
        } else {
            Err(format!(
                "cannot signal {}: {}",
                self.name,
                io::Error::last_os_error()
            ))
        }
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Why it is not running, in one line: its exit status and the last line
    /// it wrote to standard error. None while it runs.
    pub fn exit_reason(&mut self) -> Option<String> {
        let status = match self.child.try_wait() {
            Ok(Some(status)) => status,
            _ => return None,
        };
        let stderr = std::fs::read_to_string(&self.stderr_file).unwrap_or_default();
        Some(match last_line(&stderr) {
            Some(line) => format!("it exited ({status}): {line}"),
            None => format!("it exited ({status})"),
        })
    }

    pub fn send_line(&mut self, line: &str) -> Result<(), String> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| format!("{} is stopped", self.name))?;
        let written = writeln!(stdin, "{line}").and_then(|_| stdin.flush());
        written.map_err(|e| match self.exit_reason() {
            Some(why) => format!("{} is not running: {why}", self.name),
            None => format!("cannot write to {}: {e}", self.name),
        })
    }

    /// Read what the process printed, waiting at most `timeout` for something.
    fn read_some(&mut self, timeout: Duration) -> io::Result<bool> {
        let mut pollfd = libc::pollfd {
            fd: self.stdout.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd.
        let ready = unsafe { libc::poll(&mut pollfd, 1, ms) };
        if ready <= 0 {
            return Ok(false);
        }
        let mut buf = [0u8; 8192];
        let mut got = false;
        loop {
            match self.stdout.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    self.pending.extend_from_slice(&buf[..n]);
                    got = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            self.lines
                .push(String::from_utf8_lossy(&line[..line.len() - 1]).into_owned());
        }
        Ok(got)
    }

    /// Wait until a printed line satisfies `wanted`; it and the lines before it are consumed.
    pub fn wait_line(
        &mut self,
        timeout: Duration,
        wanted: impl Fn(&str) -> bool,
    ) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(i) = self.lines.iter().position(|l| wanted(l)) {
                let line = self.lines[i].clone();
                self.lines.drain(..=i);
                return Some(line);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            match self.read_some(deadline - now) {
                Ok(true) => {}
                Ok(false) if !self.is_running() => return None,
                Ok(false) => {}
                Err(_) => return None,
            }
        }
    }

    /// Ask for the state (`state` on stdin) and parse the JSON line it prints.
    pub fn query_state(&mut self) -> Result<Value, String> {
        if let Some(state) = &self.final_state {
            return Ok(state.clone());
        }
        self.send_line("state")?;
        let line = self.wait_line(Duration::from_secs(10), |l| l.starts_with('{'));
        let line = match line {
            Some(line) => line,
            None => {
                return Err(match self.exit_reason() {
                    Some(why) => format!("{} did not answer `state`: {why}", self.name),
                    None => format!("{} did not answer `state`", self.name),
                })
            }
        };
        serde_json::from_str(&line)
            .map_err(|e| format!("{} printed bad state JSON: {e}", self.name))
    }

    /// Ask the process to quit; it gets `grace` before it is killed.
    pub fn request_quit(&mut self) {
        let _ = self.send_line("quit");
    }

    pub fn stop(&mut self, grace: Duration) {
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if !self.is_running() {
                break;
            }
            // Nothing to wait on but the exit itself: poll its stdout for EOF.
            let _ = self.read_some(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stdin = None;
    }

    /// Record the final state, then stop it without warning (SIGKILL): its
    /// peers see links drop with no quit, as after a crash.
    pub fn kill(&mut self) {
        if self.final_state.is_none() {
            self.final_state = self.query_state().ok();
        }
        self.stop(Duration::ZERO);
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
