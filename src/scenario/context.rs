//! What a scenario command can do: launch machines, talk to them, read
//! their state. Extensions (one per protocol) use only this.

use super::machine::Machine;
use super::sim_net::SimNet;
use serde_json::Value;
use std::collections::HashMap;
use std::io::Write;
use std::net::TcpStream;
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
    /// Machine `name` was started again by a RESTART command.
    fn on_restart(&mut self, _name: &str) {}
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
    /// The remapped ports, held so no scenario beside this one gets them.
    leases: Vec<crate::port_lease::PortLease>,
    records: HashMap<String, serde_json::Map<String, Value>>,
    /// Lines the runner itself adds to the transcript: (micros, text).
    pub notes: Vec<(u128, String)>,
    /// Machines write wire traces (for `--report`).
    pub traced: bool,
    /// `--sim`: the machines are nodes of this simulated world, not processes.
    pub sim: Option<SimNet>,
    /// The runner's own raw TCP connections (RAWSEND), by name (real mode).
    raw: HashMap<String, TcpStream>,
    /// The runner's own API connections ([`Context::open_conn`]), real mode.
    conns: Vec<Option<TcpStream>>,
    started: Instant,
}

/// What only the simulator can do, said when real mode is asked for it.
fn sim_only(word: &str, why: &str) -> String {
    format!("{word} needs the simulator (peerloop test --sim): {why}")
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
            leases: Vec::new(),
            records: HashMap::new(),
            notes: Vec::new(),
            traced: false,
            sim: None,
            raw: HashMap::new(),
            conns: Vec::new(),
            started: Instant::now(),
        }
    }

    /// A context whose machines run in a simulated world seeded with `seed`.
    pub fn simulated(seed: u64, time_scale: f64, strict: bool, work_dir: PathBuf) -> Self {
        let mut ctx = Context::new(PathBuf::from("peerloop"), time_scale, strict, work_dir);
        ctx.sim = Some(SimNet::new(seed));
        ctx
    }

    /// The scenario's clock: virtual time in the simulator, wall time since
    /// the start otherwise. Deadlines are measured on it.
    pub fn clock(&self) -> Duration {
        match &self.sim {
            Some(sim) => sim.world.now(),
            None => self.started.elapsed(),
        }
    }

    /// Let `d` pass: sleep, or run the simulated world for that long.
    pub fn sleep(&mut self, d: Duration) {
        match &mut self.sim {
            Some(sim) => sim.run_for(d),
            None => std::thread::sleep(d),
        }
    }

    /// Note a runner line in the transcript (`*CMD.........` lines).
    pub fn note(&mut self, text: String) {
        let at = match &self.sim {
            Some(sim) => sim.micros(),
            None => super::transcript::now_micros(),
        };
        self.notes.push((at, text));
    }

    /// Start `peerloop <args>` as machine `name`.
    pub fn launch(&mut self, name: &str, args: Vec<String>) -> Result<(), String> {
        if let Some(sim) = &mut self.sim {
            return sim.launch(name, args);
        }
        if self.machines.iter().any(|m| m.name == name) {
            return Err(format!("a machine named {name} is already running"));
        }
        self.spawn_machine(name, &args)
    }

    /// Start process `name` with `args`, its log (and trace) numbered by
    /// launch order, so a restarted machine writes new files.
    fn spawn_machine(&mut self, name: &str, args: &[String]) -> Result<(), String> {
        let log = self
            .work_dir
            .join(format!("{}.{}.log", self.machines.len(), sanitize(name)));
        let trace = self.traced.then(|| log.with_extension("trace"));
        let machine = Machine::spawn(name, &self.binary, args, log, trace)?;
        self.machines.push(machine);
        Ok(())
    }

    /// Machine `name`'s process (real mode; the latest of that name, as
    /// RESTART starts a new one).
    pub fn machine(&mut self, name: &str) -> Result<&mut Machine, String> {
        self.machines
            .iter_mut()
            .rev()
            .find(|m| m.name == name)
            .ok_or_else(|| format!("no machine named {name}"))
    }

    /// Wait until `name` prints a line satisfying `wanted` (consumed with the
    /// lines before it), at most `timeout`; None if it did not.
    pub fn wait_line(
        &mut self,
        name: &str,
        timeout: Duration,
        wanted: impl Fn(&str) -> bool,
    ) -> Option<String> {
        match &mut self.sim {
            Some(sim) => sim.wait_line(name, timeout, wanted),
            None => self.machine(name).ok()?.wait_line(timeout, wanted),
        }
    }

    /// `what` happened to `name`, with why if its process has exited
    /// (its status and last words on standard error).
    pub fn failed(&mut self, name: &str, what: &str) -> String {
        let why = match &self.sim {
            Some(_) => None,
            None => self.machine(name).ok().and_then(|m| m.exit_reason()),
        };
        match why {
            Some(why) => format!("{name} {what}: {why}"),
            None => format!("{name} {what}"),
        }
    }

    /// A free port standing for the scenario's port `original`, the same one
    /// every time. Chosen at random below Linux's ephemeral range (see
    /// [`crate::util::FREE_PORTS`]: a port handed out by binding port 0 could
    /// be taken by an outgoing connection before the machine that needs it
    /// starts) and leased for the scenario's life, not the process's as
    /// [`crate::util::free_ports`] does: `peerloop test` runs many scenarios.
    pub fn port(&mut self, original: u16) -> u16 {
        if self.sim.is_some() {
            // A simulated world has every port to itself.
            return original;
        }
        if let Some(&port) = self.ports.get(&original) {
            return port;
        }
        let port = match crate::port_lease::lease_free_port() {
            Some(lease) => {
                let port = lease.port;
                self.leases.push(lease);
                port
            }
            None => original,
        };
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
        match &mut self.sim {
            Some(sim) => sim.send_line(name, line),
            None => self.machine(name)?.send_line(line),
        }
    }

    pub fn state(&mut self, name: &str) -> Result<Value, String> {
        match &mut self.sim {
            Some(sim) => sim.state(name),
            None => self.machine(name)?.query_state(),
        }
    }

    /// Poll `name`'s state until `done` holds or `timeout` passes.
    pub fn wait_for(
        &mut self,
        name: &str,
        timeout: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Result<Value, String> {
        let deadline = self.clock() + timeout;
        loop {
            let state = self.state(name)?;
            if done(&state) {
                return Ok(state);
            }
            if self.clock() >= deadline {
                return Err(format!(
                    "{name} did not reach the awaited state within {:.1} s; last state: {state}",
                    timeout.as_secs_f64()
                ));
            }
            // Between two questions the machine needs a moment to make progress.
            self.sleep(Duration::from_millis(50));
        }
    }

    /// Record the state of `name`, then kill it without warning.
    pub fn kill(&mut self, name: &str) -> Result<(), String> {
        if let Some(sim) = &mut self.sim {
            return sim.kill(name);
        }
        self.machine(name)?.kill();
        Ok(())
    }

    /// RESTART: start a killed or crashed machine again with its launch
    /// arguments (a new process in real mode; its factory in the simulator).
    pub fn restart(&mut self, name: &str) -> Result<(), String> {
        if let Some(sim) = &mut self.sim {
            return sim.restart(name);
        }
        let machine = self.machine(name)?;
        if machine.is_running() {
            return Err(format!("{name} is running (CRASH or KILL it first)"));
        }
        let args = machine.args.clone();
        self.spawn_machine(name, &args)?;
        // Up once it prints its first line (`listening on`, a client's status).
        self.wait_line(name, Duration::from_secs(3), |_| true);
        Ok(())
    }

    /// PAUSE / RESUME: SIGSTOP / SIGCONT in real mode, [`crate::sim::World::pause`]
    /// in the simulator.
    pub fn pause(&mut self, name: &str, paused: bool) -> Result<(), String> {
        match &mut self.sim {
            Some(sim) => sim.pause(name, paused),
            None => self
                .machine(name)?
                .signal(if paused { libc::SIGSTOP } else { libc::SIGCONT }),
        }
    }

    pub fn partition(&mut self, a: &[String], b: &[String]) -> Result<(), String> {
        match &mut self.sim {
            Some(sim) => sim.partition(a, b),
            None => Err(sim_only(
                "PARTITION",
                "processes on loopback cannot be cut apart",
            )),
        }
    }

    pub fn heal(&mut self) -> Result<(), String> {
        match &mut self.sim {
            Some(sim) => {
                sim.heal();
                Ok(())
            }
            None => Err(sim_only("HEAL", "real mode has no partitions to heal")),
        }
    }

    pub fn delay(&mut self, between: Option<(&str, &str)>, delay: Duration) -> Result<(), String> {
        match &mut self.sim {
            Some(sim) => sim.delay(between, delay),
            None => Err(sim_only(
                "DELAY",
                "loopback latency cannot be set per scenario",
            )),
        }
    }

    /// RAWSEND: `bytes` on the runner's own connection `name`, opened to the
    /// machine listening on the scenario's `port` on first use.
    pub fn raw_send(&mut self, name: &str, port: Option<u16>, bytes: &[u8]) -> Result<(), String> {
        if let Some(sim) = &mut self.sim {
            return sim.raw_send(name, port, bytes);
        }
        if !self.raw.contains_key(name) {
            let port = port.ok_or("the first RAWSEND of a name needs --port")?;
            let stream = TcpStream::connect(("127.0.0.1", self.port(port)))
                .map_err(|e| format!("RAWSEND: {e}"))?;
            self.raw.insert(name.to_string(), stream);
        }
        let stream = self.raw.get_mut(name).expect("inserted above");
        stream
            .write_all(bytes)
            .map_err(|e| format!("RAWSEND {name}: {e}"))
    }

    /// Open the runner's own connection to `addr` (an API client, raw bytes).
    pub fn open_conn(&mut self, addr: &str) -> Result<usize, String> {
        if let Some(sim) = &mut self.sim {
            return sim.open_conn(addr);
        }
        let stream = TcpStream::connect(addr).map_err(|e| {
            format!(
                "cannot connect to {addr}: {}",
                crate::cli_words::io_error(&e)
            )
        })?;
        self.conns.push(Some(stream));
        Ok(self.conns.len() - 1)
    }

    pub fn write_conn(&mut self, conn: usize, bytes: &[u8]) -> Result<(), String> {
        if let Some(sim) = &mut self.sim {
            return sim.write_conn(conn, bytes);
        }
        let stream = self
            .conns
            .get_mut(conn)
            .and_then(Option::as_mut)
            .ok_or("that connection is closed")?;
        stream.write_all(bytes).map_err(|e| e.to_string())
    }

    /// Read from a connection until `complete` holds for what arrived, or the
    /// other side closes it: (the bytes, whether it was closed). An error
    /// after `timeout` with neither.
    pub fn read_conn(
        &mut self,
        conn: usize,
        timeout: Duration,
        complete: impl Fn(&[u8]) -> bool,
    ) -> Result<(Vec<u8>, bool), String> {
        if let Some(sim) = &mut self.sim {
            return sim.read_conn(conn, timeout, complete);
        }
        let stream = self
            .conns
            .get_mut(conn)
            .and_then(Option::as_mut)
            .ok_or("that connection is closed")?;
        let deadline = Instant::now() + timeout;
        let mut got = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            if complete(&got) {
                return Ok((got, false));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!(
                    "nothing complete within {:.1} s",
                    timeout.as_secs_f64()
                ));
            }
            stream
                .set_read_timeout(Some(left))
                .map_err(|e| e.to_string())?;
            match std::io::Read::read(stream, &mut chunk) {
                Ok(0) => return Ok((got, true)),
                Ok(n) => got.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                    return Ok((got, true))
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    }

    pub fn close_conn(&mut self, conn: usize) {
        match &mut self.sim {
            Some(sim) => sim.close_conn(conn),
            None => {
                if let Some(slot) = self.conns.get_mut(conn) {
                    *slot = None;
                }
            }
        }
    }

    pub fn raw_close(&mut self, name: &str) {
        match &mut self.sim {
            Some(sim) => sim.raw_close(name),
            None => {
                self.raw.remove(name);
            }
        }
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
        if let Some(sim) = &mut self.sim {
            states.extend(sim.final_states());
        }
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

/// A machine name as part of a file name (its log, its trace).
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
