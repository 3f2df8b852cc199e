//! What a scenario command can do: launch machines, talk to them, read
//! their state. Extensions (one per protocol) use only this.

use super::machine::Machine;
use serde_json::Value;
use std::collections::HashMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// One protocol's scenario commands.
pub trait Extension {
    /// Does this extension handle the command word (e.g. "LAUNCHSERVER")?
    fn handles(&self, word: &str) -> bool;
    /// Run one command; `args` follow the word, split as the course splits them.
    fn run(&mut self, word: &str, args: &[String], ctx: &mut Context) -> Result<(), String>;
    /// Machine `name` was stopped by a KILL command.
    fn on_kill(&mut self, _name: &str) {}
    /// Extra checks at the end (the fields `--strict` adds); problems as text.
    fn strict_check(&self, _ctx: &Context, _scenario: &super::parse::Scenario) -> Vec<String> {
        Vec::new()
    }
}

pub struct Context {
    pub binary: PathBuf,
    pub time_scale: f64,
    pub strict: bool,
    /// Where machines write their transcripts.
    pub work_dir: PathBuf,
    /// Machines in launch order.
    pub machines: Vec<Machine>,
    ports: HashMap<u16, u16>,
    records: HashMap<String, serde_json::Map<String, Value>>,
    /// Lines the runner itself adds to the transcript: (micros, text).
    pub notes: Vec<(u128, String)>,
    /// Machines write wire traces (for `--report`).
    pub traced: bool,
}

impl Context {
    pub fn new(binary: PathBuf, time_scale: f64, strict: bool, work_dir: PathBuf) -> Self {
        Context {
            binary,
            time_scale,
            strict,
            work_dir,
            machines: Vec::new(),
            ports: HashMap::new(),
            records: HashMap::new(),
            notes: Vec::new(),
            traced: false,
        }
    }

    /// Note a runner line in the transcript (`*CMD.........` lines).
    pub fn note(&mut self, text: String) {
        self.notes.push((super::transcript::now_micros(), text));
    }

    /// Start `peerloop <args>` as machine `name`.
    pub fn launch(&mut self, name: &str, args: Vec<String>) -> Result<(), String> {
        if self.machines.iter().any(|m| m.name == name) {
            return Err(format!("a machine named {name} is already running"));
        }
        let log = self
            .work_dir
            .join(format!("{}.{}.log", self.machines.len(), sanitize(name)));
        let trace = self.traced.then(|| log.with_extension("trace"));
        let machine = Machine::spawn(name, &self.binary, &args, log, trace)?;
        self.machines.push(machine);
        Ok(())
    }

    pub fn machine(&mut self, name: &str) -> Result<&mut Machine, String> {
        self.machines
            .iter_mut()
            .find(|m| m.name == name)
            .ok_or_else(|| format!("no machine named {name}"))
    }

    /// A free port standing for the scenario's port `original`, the same one every time.
    pub fn port(&mut self, original: u16) -> u16 {
        if let Some(&port) = self.ports.get(&original) {
            return port;
        }
        let port = free_port_below_ephemeral().unwrap_or(original);
        self.ports.insert(original, port);
        port
    }

    /// Every remapped port as (the file's port, the port used), sorted.
    pub fn port_map(&self) -> Vec<(u16, u16)> {
        let mut map: Vec<(u16, u16)> = self.ports.iter().map(|(&a, &b)| (a, b)).collect();
        map.sort_unstable();
        map
    }

    /// `host:port` with the port remapped and the host made loopback.
    pub fn addr(&mut self, addr: &str) -> Result<String, String> {
        let (_, port) = addr
            .rsplit_once(':')
            .ok_or_else(|| format!("'{addr}' is not host:port"))?;
        let port: u16 = port.parse().map_err(|_| format!("bad port in '{addr}'"))?;
        Ok(format!("127.0.0.1:{}", self.port(port)))
    }

    pub fn send_line(&mut self, name: &str, line: &str) -> Result<(), String> {
        self.machine(name)?.send_line(line)
    }

    pub fn state(&mut self, name: &str) -> Result<Value, String> {
        self.machine(name)?.query_state()
    }

    /// Poll `name`'s state until `done` holds or `timeout` passes.
    pub fn wait_for(
        &mut self,
        name: &str,
        timeout: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Result<Value, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let state = self.state(name)?;
            if done(&state) {
                return Ok(state);
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{name} did not reach the awaited state within {:.1} s; last state: {state}",
                    timeout.as_secs_f64()
                ));
            }
            // Between two questions the machine needs a moment to make progress.
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Record the state of `name`, then kill it without warning.
    pub fn kill(&mut self, name: &str) -> Result<(), String> {
        self.machine(name)?.kill();
        Ok(())
    }

    /// A field the runner observed itself, added to `name`'s final state.
    pub fn record(&mut self, name: &str, field: &str, value: Value) {
        self.records
            .entry(name.to_string())
            .or_default()
            .insert(field.to_string(), value);
    }

    pub fn scaled(&self, seconds: f64) -> Duration {
        Duration::from_secs_f64((seconds * self.time_scale).max(0.0))
    }

    /// Every machine's final state (recorded fields merged in); running ones are asked now.
    pub fn final_states(&mut self) -> HashMap<String, Value> {
        let mut states = HashMap::new();
        for machine in &mut self.machines {
            let state = machine.query_state().unwrap_or(Value::Null);
            machine.final_state = Some(state.clone());
            states.insert(machine.name.clone(), state);
        }
        for (name, fields) in &self.records {
            let entry = states
                .entry(name.clone())
                .or_insert_with(|| Value::Object(Default::default()));
            if let Value::Object(map) = entry {
                for (k, v) in fields {
                    map.insert(k.clone(), v.clone());
                }
            }
        }
        states
    }

    /// Stop every machine (states are read first by the caller).
    pub fn stop_all(&mut self) {
        for machine in &mut self.machines {
            machine.request_quit();
        }
        for machine in &mut self.machines {
            machine.stop(Duration::from_secs(1));
        }
    }
}

/// A port that is free now, chosen at random below Linux's ephemeral range
/// (32768 and up): a port handed out by binding port 0 could be taken by
/// some outgoing connection before the machine that needs it starts.
fn free_port_below_ephemeral() -> Option<u16> {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    (0..200)
        .map(|_| rng.gen_range(20_000..32_000))
        .find(|&port| TcpListener::bind(("127.0.0.1", port)).is_ok())
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}
