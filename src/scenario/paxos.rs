//! BPCon scenario commands: launch replicas (honest or misbehaving),
//! propose operations with an expected result, restart a killed replica,
//! wait until replicas agree, and poke a replica with a malformed message.

use super::context::{Context, Extension};
use super::parse::{flag, unquote};
use crate::bpcon::byzantine::ALLOW_ENV;
use crate::bpcon::client::{ApiClient, Outcome};
use serde_json::Value;
use std::collections::HashMap;
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Default)]
pub struct PaxosExtension {
    /// The peerloop arguments each replica was launched with (for RESTARTPAXOS).
    launched: HashMap<String, Vec<String>>,
    apis: HashMap<String, String>,
    keys: Option<PathBuf>,
    /// PROPOSE --background runs, joined by WAITPROPOSALS.
    background: Vec<std::thread::JoinHandle<Result<String, String>>>,
    /// The same in the simulator: proposer nodes of the world.
    sim_background: Vec<SimProposal>,
}

/// A PROPOSE running on a proposer node of the simulated world.
struct SimProposal {
    node: crate::sim::NodeId,
    to: String,
    ops: usize,
    expect: Option<u8>,
}

/// How long a simulated proposer may run at most: its own time-out ends it
/// long before (this is a backstop against a replica that keeps it busy).
const SIM_PROPOSER_LIMIT: Duration = Duration::from_secs(3600);

/// PROPOSE's verdict on what came back: the note for the transcript, or
/// what went wrong (an error, or a code other than `--expect`).
fn verdict(
    to: &str,
    ops: usize,
    expect: Option<u8>,
    outcomes: Result<Vec<Outcome>, String>,
) -> Result<String, String> {
    let outcomes = outcomes?;
    let mut codes: std::collections::BTreeMap<u8, usize> = Default::default();
    for o in &outcomes {
        *codes.entry(o.code).or_default() += 1;
    }
    if let Some(want) = expect {
        if let Some(bad) = outcomes.iter().find(|o| o.code != want) {
            return Err(format!(
                "'{}' got code {} ({}), expected {want}",
                bad.op, bad.code, bad.message
            ));
        }
    }
    Ok(format!(
        "PROPOSE to {to}: {ops} operations, result codes {codes:?}"
    ))
}

/// `--peers "B=6002,C=6003"`: names with scenario ports (or host:port).
fn peer_list(spec: &str, ctx: &mut Context) -> Result<Vec<(String, String)>, String> {
    let mut peers = Vec::new();
    for entry in unquote(spec).split(',').filter(|e| !e.is_empty()) {
        let (name, addr) = entry
            .split_once('=')
            .ok_or_else(|| format!("peer '{entry}' is not NAME=PORT"))?;
        let addr = if addr.contains(':') {
            ctx.addr(addr)?
        } else {
            let port = crate::cli_words::connect_port(&format!("port of {name}"), addr)?;
            format!("127.0.0.1:{}", ctx.port(port))
        };
        peers.push((name.to_string(), addr));
    }
    Ok(peers)
}

fn port_arg(args: &[String], name: &str, ctx: &mut Context) -> Result<String, String> {
    let port = crate::cli_words::connect_port(
        name,
        flag(args, name).ok_or_else(|| format!("needs {name}"))?,
    )?;
    Ok(format!("127.0.0.1:{}", ctx.port(port)))
}

impl PaxosExtension {
    pub fn new() -> Self {
        Self::default()
    }

    /// Key pairs for `names`, made once per scenario (RSA-2048).
    fn ensure_keys(&mut self, names: &[String], ctx: &Context) -> Result<PathBuf, String> {
        let dir = ctx.work_dir.join("keys");
        for name in names {
            if dir.join(format!("{name}.pem")).exists() {
                continue;
            }
            // What `peerloop keygen --name NAME --out DIR` does, in process.
            crate::bpcon::crypto::keygen(&dir, name, crate::bpcon::crypto::KEY_BITS, false)
                .map_err(|e| format!("keygen for {name} failed: {e}"))?;
        }
        self.keys = Some(dir.clone());
        Ok(dir)
    }

    fn launch(&mut self, args: &[String], ctx: &mut Context) -> Result<(), String> {
        let id = flag(args, "--id")
            .ok_or("LAUNCHPAXOS needs --id")?
            .to_string();
        let listen = port_arg(args, "--port", ctx)?;
        let listen_arg = listen.clone();
        let api = port_arg(args, "--api", ctx)?;
        let peers = match flag(args, "--peers") {
            Some(spec) => peer_list(spec, ctx)?,
            None => Vec::new(),
        };
        let mut argv: Vec<String> = vec![
            "paxos".into(),
            "--id".into(),
            id.clone(),
            "--listen".into(),
            listen_arg,
            "--api".into(),
            api.clone(),
        ];
        if ctx.sim.is_none() {
            // A process needs key files and a WAL directory; a simulated
            // replica has the group's simulated keys and a disk in memory
            // that survives its crashes (see sim_net.rs).
            let mut names: Vec<String> = peers.iter().map(|(n, _)| n.clone()).collect();
            names.push(id.clone());
            let keys = self.ensure_keys(&names, ctx)?;
            argv.extend([
                "--key".into(),
                keys.join(format!("{id}.pem")).display().to_string(),
                "--peer-keys".into(),
                keys.display().to_string(),
                "--data".into(),
                ctx.work_dir
                    .join(format!("data-{id}"))
                    .display()
                    .to_string(),
            ]);
        }
        if !peers.is_empty() {
            // A replica's --peers names the whole group, itself included;
            // scenario files list the others, so its own entry is added here.
            let mut list: Vec<String> = peers.iter().map(|(n, a)| format!("{n}={a}")).collect();
            list.push(format!("{id}={listen}"));
            argv.extend(["--peers".into(), list.join(",")]);
        }
        if let Some(mode) = flag(args, "--byzantine") {
            // A scenario that asks for a misbehaving replica opts in for it
            // (the simulator needs no opt-in).
            if ctx.sim.is_none() {
                std::env::set_var(ALLOW_ENV, "1");
            }
            argv.extend(["--byzantine".into(), mode.to_string()]);
        }
        self.launched.insert(id.clone(), argv.clone());
        self.apis.insert(id.clone(), api);
        self.start(&id, argv, ctx)
    }

    fn start(&mut self, id: &str, argv: Vec<String>, ctx: &mut Context) -> Result<(), String> {
        ctx.launch(id, argv)?;
        // Up when it answers `state` and its API accepts connections (a
        // simulated node listens from its start).
        ctx.wait_for(id, Duration::from_secs(10), |_| true)?;
        if ctx.sim.is_some() {
            return Ok(());
        }
        let api = self.apis[id].clone();
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(&api).is_err() {
            if Instant::now() > deadline {
                return Err(format!("{id}'s API on {api} never opened"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    fn restart(&mut self, args: &[String], ctx: &mut Context) -> Result<(), String> {
        let id = args
            .first()
            .ok_or("RESTARTPAXOS needs a replica name")?
            .clone();
        let argv = self
            .launched
            .get(&id)
            .cloned()
            .ok_or_else(|| format!("{id} was never launched"))?;
        if let Some(sim) = &ctx.sim {
            // The world builds it again from its launch arguments, with
            // the disk it had (its records come back from it).
            if sim.is_up(&id) {
                return Err(format!("{id} is still running: KILL it first"));
            }
            ctx.restart(&id)?;
            ctx.wait_for(&id, Duration::from_secs(10), |_| true)?;
            return Ok(());
        }
        if ctx
            .machines
            .iter_mut()
            .any(|m| m.name == id && m.is_running())
        {
            return Err(format!("{id} is still running: KILL it first"));
        }
        // The new process takes the old one's place (same data directory).
        ctx.machines.retain(|m| m.name != id);
        self.start(&id, argv, ctx)
    }

    fn propose(&mut self, args: &[String], ctx: &mut Context) -> Result<(), String> {
        let to = flag(args, "--to").ok_or("PROPOSE needs --to NAME")?;
        let api = self
            .apis
            .get(to)
            .cloned()
            .ok_or_else(|| format!("no replica named {to}"))?;
        let number = |name: &str, default: u64| -> Result<u64, String> {
            match flag(args, name) {
                Some(v) => v.parse().map_err(|_| format!("{name} is not a number")),
                None => Ok(default),
            }
        };
        let expect = flag(args, "--expect")
            .map(|v| {
                v.parse::<u8>()
                    .map_err(|_| "--expect is not a code".to_string())
            })
            .transpose()?;
        let window = number("--window", 1)? as usize;
        let retries = number("--retry", 0)? as u32;
        let repeat = number("--repeat", 1)?;
        let timeout = ctx.scaled(number("--timeout", 30)? as f64);
        // Operations: the arguments that are not options or option values.
        let mut templates = Vec::new();
        let mut skip = false;
        for arg in args {
            if skip {
                skip = false;
            } else if arg == "--background" {
            } else if arg.starts_with("--") {
                skip = true;
            } else {
                templates.push(unquote(arg).to_string());
            }
        }
        if templates.is_empty() {
            return Err("PROPOSE needs at least one operation".into());
        }
        let ops: Vec<String> = (0..repeat)
            .flat_map(|i| {
                templates
                    .iter()
                    .map(move |t| t.replace("{i}", &i.to_string()))
            })
            .collect();
        let to = to.to_string();
        let background = args.iter().any(|a| a == "--background");
        if let Some(sim) = &mut ctx.sim {
            // A proposer node of the world: the same client API bytes, its
            // time-out on the virtual clock.
            let count = ops.len();
            let node = sim.start_proposer(&api, ops, window, retries, timeout)?;
            let proposal = SimProposal {
                node,
                to,
                ops: count,
                expect,
            };
            if background {
                self.sim_background.push(proposal);
                return Ok(());
            }
            let outcomes = sim.wait_proposer(node, SIM_PROPOSER_LIMIT);
            ctx.note(verdict(&proposal.to, count, expect, outcomes)?);
            return Ok(());
        }
        let run = move || -> Result<String, String> {
            let outcomes = ApiClient::connect(&api, timeout)
                .and_then(|mut client| client.run(&ops, window, retries, |_, _| {}));
            verdict(&to, ops.len(), expect, outcomes)
        };
        if background {
            self.background.push(std::thread::spawn(run));
            return Ok(());
        }
        ctx.note(run()?);
        Ok(())
    }

    fn wait_proposals(&mut self, ctx: &mut Context) -> Result<(), String> {
        let mut problems = Vec::new();
        for proposal in std::mem::take(&mut self.sim_background) {
            let Some(sim) = &mut ctx.sim else { break };
            let outcomes = sim.wait_proposer(proposal.node, SIM_PROPOSER_LIMIT);
            match verdict(&proposal.to, proposal.ops, proposal.expect, outcomes) {
                Ok(note) => ctx.note(note),
                Err(e) => problems.push(e),
            }
        }
        for handle in self.background.drain(..) {
            match handle.join() {
                Ok(Ok(note)) => ctx.note(note),
                Ok(Err(e)) => problems.push(e),
                Err(_) => problems.push("a proposer thread panicked".into()),
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }

    /// WAITAGREE A B C [--committed N] [--timeout S]: the named replicas reach
    /// the same committed sequence and store; each gets `agrees: true`.
    fn wait_agree(&mut self, args: &[String], ctx: &mut Context) -> Result<(), String> {
        let mut names = Vec::new();
        let mut it = args.iter();
        let mut committed = 0u64;
        let mut timeout = 30.0;
        while let Some(arg) = it.next() {
            match arg.as_str() {
                "--committed" => {
                    committed = it
                        .next()
                        .and_then(|v| v.parse().ok())
                        .ok_or("--committed needs a number")?
                }
                "--timeout" => {
                    timeout = it
                        .next()
                        .and_then(|v| v.parse().ok())
                        .ok_or("--timeout needs seconds")?
                }
                name => names.push(name.to_string()),
            }
        }
        if names.is_empty() {
            return Err("WAITAGREE needs replica names".into());
        }
        // On the scenario's clock: virtual time in the simulator.
        let deadline = ctx.clock() + ctx.scaled(timeout);
        loop {
            let mut states = Vec::new();
            for name in &names {
                states.push(ctx.state(name)?);
            }
            let agree = states.iter().all(|s| {
                s["log_digest"] == states[0]["log_digest"]
                    && s["store"] == states[0]["store"]
                    && s["committed"].as_u64().unwrap_or(0) >= committed
            });
            if agree {
                for name in &names {
                    ctx.record(name, "agrees", Value::Bool(true));
                }
                return Ok(());
            }
            if ctx.clock() > deadline {
                let seen: Vec<String> = states
                    .iter()
                    .map(|s| {
                        format!(
                            "{}: {} ops, digest {}",
                            s["id"], s["committed"], s["log_digest"]
                        )
                    })
                    .collect();
                return Err(format!("replicas do not agree: {}", seen.join("; ")));
            }
            ctx.sleep(Duration::from_millis(100));
        }
    }

    /// BADPEER --port P --hex BYTES: the replica must close that link.
    fn bad_peer(&mut self, args: &[String], ctx: &mut Context) -> Result<(), String> {
        let addr = port_arg(args, "--port", ctx)?;
        let hex = unquote(flag(args, "--hex").ok_or("BADPEER needs --hex")?).replace(' ', "");
        let bytes = (0..hex.len() / 2)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16))
            .collect::<Result<Vec<u8>, _>>()
            .map_err(|_| "bad --hex")?;
        // Through the runner's own connection: a socket, or a test
        // connection of the simulated world.
        let conn = ctx.open_conn(&addr)?;
        if let Err(e) = ctx.write_conn(conn, &bytes) {
            ctx.close_conn(conn);
            return Err(e);
        }
        // A replica's peer port opens with its CHALLENGE (36 bytes); past
        // that it must close the link, not answer or keep it open.
        let read = ctx.read_conn(conn, Duration::from_secs(5), |got| got.len() > 36);
        ctx.close_conn(conn);
        match read {
            Ok((_, true)) => Ok(()),
            Ok((_, false)) => Err("the replica answered instead of closing the link".into()),
            Err(e) => Err(format!("the replica kept the link open ({e})")),
        }
    }
}

impl Extension for PaxosExtension {
    fn handles(&self, word: &str) -> bool {
        matches!(
            word,
            "LAUNCHPAXOS" | "RESTARTPAXOS" | "PROPOSE" | "WAITPROPOSALS" | "WAITAGREE" | "BADPEER"
        )
    }

    fn run(&mut self, word: &str, args: &[String], ctx: &mut Context) -> Result<(), String> {
        match word {
            "LAUNCHPAXOS" => self.launch(args, ctx),
            "RESTARTPAXOS" => self.restart(args, ctx),
            "PROPOSE" => self.propose(args, ctx),
            "WAITPROPOSALS" => self.wait_proposals(ctx),
            "WAITAGREE" => self.wait_agree(args, ctx),
            _ => self.bad_peer(args, ctx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::parse::split_args;

    fn sim() -> Context {
        Context::simulated(3, 1.0, false, std::env::temp_dir())
    }

    fn command(ext: &mut PaxosExtension, ctx: &mut Context, line: &str) -> Result<(), String> {
        let args = split_args(line);
        ext.run(&args[0], &args[1..], ctx)
    }

    /// In the simulator a killed replica comes back from the disk it had
    /// (its committed store is there before any catch-up: it is alone);
    /// a running one is not restarted.
    #[test]
    fn restartpaxos_in_the_simulator_keeps_the_disk_and_refuses_a_running_replica() {
        let mut ctx = sim();
        let mut ext = PaxosExtension::new();
        command(
            &mut ext,
            &mut ctx,
            "LAUNCHPAXOS --id A --port 6001 --api 7001",
        )
        .unwrap();
        command(&mut ext, &mut ctx, "PROPOSE --to A --expect 0 \"P,a,1\"").unwrap();
        assert_eq!(
            command(&mut ext, &mut ctx, "RESTARTPAXOS A").unwrap_err(),
            "A is still running: KILL it first"
        );
        ctx.kill("A").unwrap();
        command(&mut ext, &mut ctx, "RESTARTPAXOS A").unwrap();
        let state = ctx.state("A").unwrap();
        assert_eq!(state["store"], serde_json::json!({"a": "1"}), "{state}");
        assert_eq!(state["committed"], 1, "{state}");
    }

    /// A replica with no quorum never answers: PROPOSE fails after its
    /// --timeout of virtual time, saying what may be missing (as a real
    /// client does), and --expect cannot hide it.
    #[test]
    fn a_proposal_without_a_quorum_times_out_on_the_virtual_clock_in_words() {
        let mut ctx = sim();
        let mut ext = PaxosExtension::new();
        command(
            &mut ext,
            &mut ctx,
            "LAUNCHPAXOS --id A --port 6001 --api 7001 --peers \"B=6002,C=6003,D=6004\"",
        )
        .unwrap();
        let before = ctx.clock();
        let err = command(&mut ext, &mut ctx, "PROPOSE --to A --timeout 5 \"P,a,1\"").unwrap_err();
        assert_eq!(
            err,
            "timed out: no answer from the replica at 127.0.0.1:7001 within 5 s; a quorum may be missing: its group needs 3 of 4 replicas, and it is linked to 0 of its 3 peers"
        );
        let waited = ctx.clock() - before;
        assert!(waited >= Duration::from_secs(5), "{waited:?}");
        // In the background too: WAITPROPOSALS reports it.
        command(
            &mut ext,
            &mut ctx,
            "PROPOSE --to A --timeout 2 --background \"P,b,1\"",
        )
        .unwrap();
        assert!(command(&mut ext, &mut ctx, "WAITPROPOSALS")
            .unwrap_err()
            .starts_with("timed out: no answer from the replica at 127.0.0.1:7001 within 2 s"));
    }

    #[test]
    fn a_group_the_simulator_has_no_keys_for_is_refused_in_words() {
        let mut ctx = sim();
        let mut ext = PaxosExtension::new();
        let peers: Vec<String> = (1..9).map(|i| format!("R{i}={}", 6001 + i)).collect();
        let line = format!(
            "LAUNCHPAXOS --id A --port 6001 --api 7001 --peers \"{}\"",
            peers.join(",")
        );
        assert_eq!(
            command(&mut ext, &mut ctx, &line).unwrap_err(),
            "cannot start A: the simulator has key pairs for groups of up to 8 replicas, not 9"
        );
    }
}
