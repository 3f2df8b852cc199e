//! `peerloop test --sim`: a scenario's machines as nodes of one simulated
//! [`World`] instead of processes. Each machine is built in-process from the
//! same launch arguments a process would get (through the protocol's own
//! `cli` constructor), standard input is [`World::type_line`], what it prints
//! is [`World::take_printed`], and time is the world's virtual clock: a WAIT
//! of ten seconds costs only the events in it.

use crate::sim::{host, ExtId, ExtState, Factory, Latency, NodeId, World};
use serde_json::Value;
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

/// The scenario types whose machines the simulator can build.
pub const SIM_TYPES: [&str; 5] = [
    "network_connectivity",
    "CRC_functionality",
    "chord",
    "gossip",
    "BPCon",
];

/// One machine of the scenario: a node of the world.
pub struct SimMachine {
    pub name: String,
    pub node: NodeId,
    /// Its launch arguments (`server --id 1 ...`), kept for RESTART.
    pub args: Vec<String>,
    /// Printed lines no waiter has consumed yet.
    lines: VecDeque<String>,
    /// What it printed, at virtual microseconds, for the transcript (the
    /// answers to `state` left out: the runner asks for them itself).
    pub log: Vec<(u128, String)>,
    /// The state read when it was killed or crashed.
    pub final_state: Option<Value>,
    /// Lines typed while it was paused, given to it when it resumes (as a
    /// stopped process finds them in its pipe).
    held_stdin: Option<Vec<String>>,
}

pub struct SimNet {
    pub world: World,
    pub machines: Vec<SimMachine>,
    /// The runner's own raw connections (RAWSEND), by name.
    raw: BTreeMap<String, ExtId>,
    /// Proposer nodes started so far (PROPOSE).
    proposers: usize,
}

/// What a launch of `peerloop <args>` becomes in the world: the addresses it
/// listens on, the factory that makes its protocol (at start and at every
/// restart), and what its `main` prints before the loop starts.
struct Built {
    listen: Vec<SocketAddr>,
    make: Factory,
    banner: Vec<String>,
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn build(args: &[String]) -> Result<Built, String> {
    let (command, rest) = args.split_first().ok_or("nothing to launch")?;
    match command.as_str() {
        "server" => {
            let launch = crate::crc::cli::server_launch(rest)?;
            if launch.port == 0 {
                return Err("the simulator needs a fixed --port (not 0)".into());
            }
            let addr = loopback(launch.port);
            let config = launch.config;
            let make: Factory = if launch.record_only {
                Box::new(move |_| host(crate::crc::recorder::Recorder::new(config.clone())))
            } else {
                Box::new(move |_| host(crate::crc::server::Server::new(config.clone())))
            };
            Ok(Built {
                listen: vec![addr],
                make,
                banner: vec![format!("listening on {addr}")],
            })
        }
        "client" => {
            // Driven by the runner, not typed at a terminal.
            let config = crate::crc::cli::client_config(rest, false)?;
            Ok(Built {
                listen: Vec::new(),
                make: Box::new(move |_| host(crate::crc::client::Client::new(config.clone()))),
                banner: Vec::new(),
            })
        }
        "chord" => {
            let config = crate::chord::cli::config(rest)?;
            if config.listen.port() == 0 || config.api.port() == 0 {
                return Err("the simulator needs fixed ports (not 0)".into());
            }
            let listen = vec![config.listen, config.api];
            Ok(Built {
                listen,
                make: Box::new(move |_| host(crate::chord::node::Node::new(config.clone()))),
                banner: Vec::new(),
            })
        }
        "gossip" => {
            let mut config = crate::gossip::cli::config(rest)?;
            if config.p2p_address.port() == 0 || config.api_address.port() == 0 {
                return Err("the simulator needs fixed addresses (not port 0)".into());
            }
            // Without --seed a process seeds from the clock; here the world's seed decides.
            let seeded = rest.iter().any(|a| a == "--seed");
            let listen = vec![config.api_address, SocketAddr::V4(config.p2p_address)];
            Ok(Built {
                listen,
                make: Box::new(move |rng| {
                    if !seeded {
                        config.seed = rand::Rng::gen(rng);
                    }
                    host(crate::gossip::node::Node::new(config.clone()))
                }),
                banner: Vec::new(),
            })
        }
        "gossip-client" => {
            crate::gossip::client::notify_module(rest)?;
            let args = rest.to_vec();
            Ok(Built {
                listen: Vec::new(),
                make: Box::new(move |_| {
                    host(
                        crate::gossip::client::notify_module(&args)
                            .expect("the same arguments parsed at launch"),
                    )
                }),
                banner: Vec::new(),
            })
        }
        "paxos" => paxos(rest),
        other => Err(format!(
            "the simulator cannot run `peerloop {other}` machines yet (it runs: server, client, chord, gossip, gossip-client, paxos)"
        )),
    }
}

/// `peerloop paxos ...` as a node of the world: the same options as
/// `bpcon::cli`'s replica, but its key pair is the group's simulated one
/// ([`crate::bpcon::crypto::sim_keys`], by the replica's place in the
/// sorted group), and its write-ahead log is a
/// [`crate::bpcon::storage::MemStorage`] made at launch that every
/// restart reads back (`--key`, `--peer-keys` and `--data` are accepted and
/// not read). `--byzantine MODE` wraps it in that adversary (the simulator
/// needs no opt-in variable: the scenario file asked for it).
fn paxos(rest: &[String]) -> Result<Built, String> {
    use crate::bpcon::{cli::PaxosArgs, simnet::ReplicaSpec};
    let args = PaxosArgs::from_args(rest)?;
    if args.listen.port() == 0 || args.api.port() == 0 {
        return Err("the simulator needs fixed ports (not 0)".into());
    }
    const KEYS: usize = 8;
    if args.group.n() > KEYS {
        return Err(format!(
            "the simulator has key pairs for groups of up to {KEYS} replicas, not {}",
            args.group.n()
        ));
    }
    let banner = args.banner(args.listen, args.api);
    let seed = args.seed;
    let spec = ReplicaSpec {
        group: args.group,
        me: args.index,
        peers: args.peers,
        disk: crate::bpcon::storage::MemStorage::new(),
        mode: args.byzantine,
    };
    Ok(Built {
        listen: vec![args.listen, args.api],
        // Without --seed a process seeds from the system; here the world's seed decides.
        make: Box::new(move |rng| spec.host(seed.unwrap_or_else(|| rand::Rng::gen(rng)))),
        banner,
    })
}

impl SimNet {
    pub fn new(seed: u64) -> SimNet {
        SimNet {
            world: World::new(seed),
            machines: Vec::new(),
            raw: BTreeMap::new(),
            proposers: 0,
        }
    }

    /// Virtual microseconds since the world began (the transcript's clock).
    pub fn micros(&self) -> u128 {
        self.world.now().as_micros()
    }

    fn index(&self, name: &str) -> Result<usize, String> {
        // The latest of that name: a restarted machine replaces the old one.
        self.machines
            .iter()
            .rposition(|m| m.name == name)
            .ok_or_else(|| format!("no machine named {name}"))
    }

    pub fn launch(&mut self, name: &str, args: Vec<String>) -> Result<(), String> {
        if self.machines.iter().any(|m| m.name == name) {
            return Err(format!("a machine named {name} is already running"));
        }
        let built = build(&args).map_err(|e| format!("cannot start {name}: {e}"))?;
        let index = self.machines.len();
        let base = self.world.instant() - self.world.now();
        let mut make = built.make;
        let named: Factory = Box::new(move |rng| {
            Box::new(super::sim_log::Named {
                index,
                base,
                inner: make(rng),
            })
        });
        let node = self.world.add_node(name, built.listen, named);
        let at = self.micros();
        let mut machine = SimMachine {
            name: name.to_string(),
            node,
            args,
            lines: VecDeque::new(),
            log: Vec::new(),
            final_state: None,
            held_stdin: None,
        };
        for line in built.banner {
            machine.log.push((at, line.clone()));
            machine.lines.push_back(line);
        }
        self.machines.push(machine);
        self.collect(self.machines.len() - 1);
        Ok(())
    }

    /// Move what machine `i` printed into its lines and its log (and what
    /// every machine logged into its log).
    fn collect(&mut self, i: usize) {
        for (machine, at, text) in super::sim_log::take() {
            if let Some(m) = self.machines.get_mut(machine) {
                m.log.push((at, text));
            }
        }
        let at = self.micros();
        let printed = self.world.take_printed(self.machines[i].node);
        let machine = &mut self.machines[i];
        for line in printed {
            if !line.starts_with('{') {
                machine.log.push((at, line.clone()));
            }
            machine.lines.push_back(line);
        }
    }

    fn collect_all(&mut self) {
        for i in 0..self.machines.len() {
            self.collect(i);
        }
    }

    pub fn is_up(&self, name: &str) -> bool {
        self.index(name)
            .is_ok_and(|i| self.world.is_up(self.machines[i].node))
    }

    /// Run the world until machine `name` prints a line satisfying `wanted`
    /// (it and the lines before it are consumed), for at most `timeout` of
    /// virtual time; None if it did not, or if the machine is down.
    pub fn wait_line(
        &mut self,
        name: &str,
        timeout: Duration,
        wanted: impl Fn(&str) -> bool,
    ) -> Option<String> {
        let i = self.index(name).ok()?;
        let deadline = self.world.now().saturating_add(timeout);
        loop {
            self.collect(i);
            let machine = &mut self.machines[i];
            if let Some(at) = machine.lines.iter().position(|l| wanted(l)) {
                let line = machine.lines[at].clone();
                machine.lines.drain(..=at);
                return Some(line);
            }
            if !self.world.is_up(machine.node) {
                return None;
            }
            match self.world.next_event_at() {
                Some(at) if at <= deadline => {
                    self.world.step();
                }
                _ => {
                    // As a process that never says it: the whole wait passes.
                    self.world.run_until_time(deadline);
                    return None;
                }
            }
        }
    }

    pub fn send_line(&mut self, name: &str, line: &str) -> Result<(), String> {
        let i = self.index(name)?;
        let node = self.machines[i].node;
        if !self.world.is_up(node) {
            return Err(format!("{name} is stopped"));
        }
        if let Some(held) = &mut self.machines[i].held_stdin {
            held.push(line.to_string());
            return Ok(());
        }
        self.world.type_line(node, line);
        self.collect(i);
        Ok(())
    }

    /// Ask for the state (`state` on its standard input) and parse the line it prints.
    pub fn state(&mut self, name: &str) -> Result<Value, String> {
        let i = self.index(name)?;
        if let Some(state) = &self.machines[i].final_state {
            return Ok(state.clone());
        }
        let node = self.machines[i].node;
        if !self.world.is_up(node) {
            return Err(format!("{name} did not answer `state` (it is down)"));
        }
        self.collect(i);
        self.world.type_line(node, "state");
        let printed = self.world.take_printed(node);
        let mut answer = None;
        let at = self.micros();
        for line in printed {
            if answer.is_none() && line.starts_with('{') {
                answer = Some(line);
            } else {
                self.machines[i].log.push((at, line.clone()));
                self.machines[i].lines.push_back(line);
            }
        }
        let line = answer.ok_or_else(|| format!("{name} did not answer `state`"))?;
        serde_json::from_str(&line).map_err(|e| format!("{name} printed bad state JSON: {e}"))
    }

    pub fn run_for(&mut self, d: Duration) {
        self.world.run_for(d);
        self.collect_all();
    }

    /// Record the state of `name`, then crash it (its memory is gone; its
    /// peers see their connections reset, as after SIGKILL).
    pub fn kill(&mut self, name: &str) -> Result<(), String> {
        let i = self.index(name)?;
        if self.machines[i].final_state.is_none() {
            self.machines[i].final_state = self.state(name).ok();
        }
        self.machines[i].held_stdin = None;
        self.world.crash(self.machines[i].node);
        Ok(())
    }

    /// Start a crashed or stopped machine again from its launch arguments.
    pub fn restart(&mut self, name: &str) -> Result<(), String> {
        let i = self.index(name)?;
        let node = self.machines[i].node;
        if self.world.is_up(node) {
            return Err(format!("{name} is running (CRASH or KILL it first)"));
        }
        self.machines[i].final_state = None;
        self.machines[i].lines.clear();
        self.world.restart(node);
        self.collect(i);
        Ok(())
    }

    /// PAUSE / RESUME. While paused, lines typed to it wait; `state` is
    /// still answered (the runner's view of it, which a stopped process
    /// could not give).
    pub fn pause(&mut self, name: &str, paused: bool) -> Result<(), String> {
        let i = self.index(name)?;
        let node = self.machines[i].node;
        if !self.world.is_up(node) {
            return Err(format!("{name} is stopped"));
        }
        if paused {
            self.world.pause(node);
            self.machines[i].held_stdin.get_or_insert_with(Vec::new);
        } else {
            self.world.resume(node);
            for line in self.machines[i].held_stdin.take().unwrap_or_default() {
                self.world.type_line(node, &line);
            }
            self.collect(i);
        }
        Ok(())
    }

    fn nodes(&self, names: &[String]) -> Result<Vec<NodeId>, String> {
        names
            .iter()
            .map(|n| self.index(n).map(|i| self.machines[i].node))
            .collect()
    }

    pub fn partition(&mut self, a: &[String], b: &[String]) -> Result<(), String> {
        let (a, b) = (self.nodes(a)?, self.nodes(b)?);
        self.world.partition(&a, &b);
        Ok(())
    }

    pub fn heal(&mut self) {
        self.world.heal();
    }

    /// One-way delay `delay` between `between` (both directions), or on every link.
    pub fn delay(&mut self, between: Option<(&str, &str)>, delay: Duration) -> Result<(), String> {
        let latency = Latency::Fixed(delay);
        match between {
            Some((a, b)) => {
                let a = self.machines[self.index(a)?].node;
                let b = self.machines[self.index(b)?].node;
                self.world.set_link_latency(a, b, latency);
            }
            None => self.world.set_latency(latency),
        }
        Ok(())
    }

    /// RAWSEND: bytes from the runner's own connection `name`, opened to
    /// `port` on first use.
    pub fn raw_send(&mut self, name: &str, port: Option<u16>, bytes: &[u8]) -> Result<(), String> {
        let ext = match self.raw.get(name) {
            Some(&ext) => ext,
            None => {
                let port = port.ok_or("the first RAWSEND of a name needs --port")?;
                let ext = self.world.ext_connect(loopback(port));
                self.raw.insert(name.to_string(), ext);
                ext
            }
        };
        self.world.ext_send(ext, bytes);
        Ok(())
    }

    /// The runner's own connection to `addr`, once it is up.
    pub fn open_conn(&mut self, addr: &str) -> Result<ExtId, String> {
        let to: SocketAddr = addr
            .parse()
            .map_err(|_| format!("'{addr}' is not an address"))?;
        let ext = self.world.ext_connect(to);
        let limit = Duration::from_secs(10);
        self.world
            .run_until(limit, |w| *w.ext_state(ext) != ExtState::Connecting);
        self.collect_all();
        match self.world.ext_state(ext) {
            ExtState::Open => Ok(ext),
            ExtState::Failed(why) | ExtState::Closed(why) => {
                Err(format!("cannot connect to {addr}: {why}"))
            }
            ExtState::Connecting => Err(format!("cannot connect to {addr}: timed out")),
        }
    }

    pub fn write_conn(&mut self, ext: ExtId, bytes: &[u8]) -> Result<(), String> {
        match self.world.ext_state(ext) {
            ExtState::Open | ExtState::Connecting => {
                self.world.ext_send(ext, bytes);
                Ok(())
            }
            ExtState::Failed(why) | ExtState::Closed(why) => {
                Err(format!("the connection is closed ({why})"))
            }
        }
    }

    /// Run the world until what `ext` received satisfies `complete`, or the
    /// node closed it: (the bytes, whether it was closed).
    pub fn read_conn(
        &mut self,
        ext: ExtId,
        timeout: Duration,
        complete: impl Fn(&[u8]) -> bool,
    ) -> Result<(Vec<u8>, bool), String> {
        let done = self.world.run_until(timeout, |w| {
            complete(w.ext_received(ext))
                || matches!(w.ext_state(ext), ExtState::Closed(_) | ExtState::Failed(_))
        });
        self.collect_all();
        let closed = matches!(
            self.world.ext_state(ext),
            ExtState::Closed(_) | ExtState::Failed(_)
        );
        let got = self.world.ext_take(ext);
        if done {
            let finished = complete(&got);
            Ok((got, closed && !finished))
        } else {
            Err(format!(
                "nothing complete within {:.1} s",
                timeout.as_secs_f64()
            ))
        }
    }

    pub fn close_conn(&mut self, ext: ExtId) {
        self.world.ext_close(ext);
    }

    pub fn raw_close(&mut self, name: &str) {
        if let Some(ext) = self.raw.remove(name) {
            self.world.ext_close(ext);
        }
    }

    /// A proposer (PROPOSE) on its own node of the world, connecting to the
    /// replica API at `addr`; it runs as the world runs.
    pub fn start_proposer(
        &mut self,
        addr: &str,
        ops: Vec<String>,
        window: usize,
        retries: u32,
        timeout: Duration,
    ) -> Result<NodeId, String> {
        use crate::bpcon::proposer::{Pipeline, Proposer};
        let to: SocketAddr = addr
            .parse()
            .map_err(|_| format!("'{addr}' is not an address"))?;
        self.proposers += 1;
        let mut ops = Some(ops);
        let node = self.world.add_node(
            format!("proposer-{}", self.proposers),
            Vec::new(),
            Box::new(move |rng| {
                // Its client ID follows the world's seed, as a process's follows the system.
                let client = rand::Rng::gen(rng);
                let ops = ops.take().unwrap_or_default();
                host(Proposer::new(
                    to,
                    Pipeline::new(client, ops, window, retries),
                    timeout,
                ))
            }),
        );
        self.collect_all();
        Ok(node)
    }

    /// Run the world until the proposer on `node` is done: its outcomes, or
    /// why it stopped (its own time-out ends it; `limit` of virtual time is
    /// a backstop).
    pub fn wait_proposer(
        &mut self,
        node: NodeId,
        limit: Duration,
    ) -> Result<Vec<crate::bpcon::client::Outcome>, String> {
        use crate::bpcon::proposer::Proposer;
        let deadline = self.world.now().saturating_add(limit);
        loop {
            self.collect_all();
            let result = self
                .world
                .protocol_ref::<Proposer>(node)
                .and_then(|p| p.result.clone());
            if let Some(result) = result {
                return result;
            }
            match self.world.next_event_at() {
                Some(at) if at <= deadline => {
                    self.world.step();
                }
                Some(_) => {
                    return Err(format!(
                        "the proposer was still running after {:.0} s",
                        limit.as_secs_f64()
                    ))
                }
                None => return Err("the proposer is stuck: nothing left to happen".into()),
            }
        }
    }

    /// Every machine's final state: the recorded one, or asked now.
    pub fn final_states(&mut self) -> Vec<(String, Value)> {
        let names: Vec<String> = self.machines.iter().map(|m| m.name.clone()).collect();
        let mut states = Vec::new();
        for (i, name) in names.into_iter().enumerate() {
            let state = match &self.machines[i].final_state {
                Some(state) => state.clone(),
                None => self.state(&name).unwrap_or(Value::Null),
            };
            self.machines[i].final_state = Some(state.clone());
            states.push((name, state));
        }
        states
    }
}
