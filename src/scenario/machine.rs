//! One machine of a scenario: a real `peerloop` process (a
//! [`crate::testkit::Proc`]) with its standard input and output piped to
//! the runner, its standard error in a file next to its log, and what the
//! runner keeps about it (its launch arguments, the state read when it was
//! stopped). The failure words here are the ones the runner reports.

use crate::testkit::Proc;
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

pub struct Machine {
    pub name: String,
    proc: Proc,
    /// `stop` closed its stdin: it takes no more lines.
    stopped: bool,
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

impl Machine {
    pub fn spawn(
        name: &str,
        binary: &PathBuf,
        args: &[String],
        log_file: PathBuf,
        trace_file: Option<PathBuf>,
    ) -> Result<Machine, String> {
        let stderr_file = log_file.with_extension("stderr");
        let mut command = Command::new(binary);
        command.args(args).arg("--log-file").arg(&log_file);
        if let Some(trace) = &trace_file {
            command.env(crate::reactor::TRACE_ENV, trace);
        }
        let proc = Proc::spawn_logged(name, command, true, stderr_file.clone())?;
        Ok(Machine {
            name: name.to_string(),
            proc,
            stopped: false,
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
        self.proc
            .signal(signal)
            .map_err(|e| format!("cannot signal {}: {e}", self.name))
    }

    pub fn is_running(&mut self) -> bool {
        self.proc.is_running()
    }

    /// Why it is not running, in one line: its exit status and the last line
    /// it wrote to standard error. None while it runs.
    pub fn exit_reason(&mut self) -> Option<String> {
        self.proc.exit_reason()
    }

    pub fn send_line(&mut self, line: &str) -> Result<(), String> {
        if self.stopped {
            return Err(format!("{} is stopped", self.name));
        }
        self.proc
            .write_line(line)
            .map_err(|e| match self.exit_reason() {
                Some(why) => format!("{} is not running: {why}", self.name),
                None => format!("cannot write to {}: {e}", self.name),
            })
    }

    /// Wait until a printed line satisfies `wanted`; it and the lines before
    /// it are consumed. None after `timeout`, or once the process has ended
    /// and every line it printed was looked at.
    pub fn wait_line(
        &mut self,
        timeout: Duration,
        wanted: impl Fn(&str) -> bool,
    ) -> Option<String> {
        self.proc.wait_line(timeout, "line", wanted).ok()
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
        self.proc.wait_exit_within(grace);
        self.proc.kill();
        self.proc.close_stdin();
        self.stopped = true;
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
