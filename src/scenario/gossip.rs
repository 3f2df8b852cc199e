//! Gossip scenario commands: launch nodes and modules, announce, set a
//! module's verdict, and wait for the network rather than for the clock.
//! Modules are `peerloop gossip-client notify` machines: their state lists
//! the data they were notified of (`notifications`).

use super::context::{Context, Extension};
use super::parse::{flag, unquote};
use serde_json::Value;
use std::collections::HashMap;
use std::time::Duration;

/// How long a launch may take to show the node up (or a module subscribed).
const SETTLE: Duration = Duration::from_secs(5);
/// Default limit of the AWAIT commands.
const AWAIT: f64 = 20.0;

const WORDS: [&str; 7] = [
    "LAUNCHGOSSIP",
    "LAUNCHMODULE",
    "ANNOUNCE",
    "VERDICT",
    "AWAITPEERS",
    "AWAITNOTIFIED",
    "RAWGOSSIP",
];

struct Node {
    p2p: String,
    api: String,
    alive: bool,
    /// Modules launched on it and still running.
    modules: usize,
}

struct Module {
    node: String,
    alive: bool,
}

#[derive(Default)]
pub struct GossipExtension {
    nodes: Vec<(String, Node)>,
    modules: Vec<(String, Module)>,
    /// Connections the runner holds to a node's API port (ANNOUNCE --node), by node.
    raw: HashMap<String, usize>,
}

fn need<'a>(word: &str, args: &'a [String], name: &str) -> Result<&'a str, String> {
    flag(args, name)
        .map(unquote)
        .ok_or_else(|| format!("{word} needs {name}"))
}

fn number<T: std::str::FromStr>(word: &str, name: &str, text: &str) -> Result<T, String> {
    text.parse()
        .map_err(|_| format!("{word} {name} '{text}' is not a number"))
}

impl GossipExtension {
    pub fn new() -> Self {
        Self::default()
    }

    fn node(&self, name: &str) -> Result<&Node, String> {
        self.nodes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, node)| node)
            .ok_or_else(|| format!("no gossip node named {name}"))
    }

    fn launch_node(&mut self, args: &[String], ctx: &mut Context) -> Result<(), String> {
        let word = "LAUNCHGOSSIP";
        let name = need(word, args, "--name")?.to_string();
        let p2p_port: u16 = number(word, "--p2p", need(word, args, "--p2p")?)?;
        let api_port: u16 = number(word, "--api", need(word, args, "--api")?)?;
        let p2p = format!("127.0.0.1:{}", ctx.port(p2p_port));
        let api = format!("127.0.0.1:{}", ctx.port(api_port));
        let mut argv: Vec<String> = vec![
            "gossip".into(),
            "--p2p-address".into(),
            p2p.clone(),
            "--api-address".into(),
            api.clone(),
        ];
        let boot = match flag(args, "--bootstrapper") {
            Some(port) => Some(ctx.port(number(word, "--bootstrapper", port)?)),
            None => None,
        };
        if let Some(port) = boot {
            argv.extend(["--bootstrapper".into(), format!("127.0.0.1:{port}")]);
        }
        for (ours, theirs) in [
            ("--degree", "--degree"),
            ("--cache-size", "--cache-size"),
            ("--seed", "--seed"),
        ] {
            if let Some(value) = flag(args, ours) {
                argv.extend([theirs.into(), unquote(value).to_string()]);
            }
        }
        argv.extend(["--maintenance-ms".into(), "300".into()]);
        ctx.launch(&name, argv)?;
        if ctx
            .wait_line(&name, SETTLE, |l| l.starts_with("gossip node listening"))
            .is_none()
        {
            return Err(ctx.failed(&name, "did not start listening"));
        }
        // Joining (not starting) a network: wait until it has a peer.
        if boot.is_some() && boot != Some(ctx.port(p2p_port)) {
            ctx.wait_for(&name, SETTLE, |s| s["peer_count"].as_u64() >= Some(1))
                .map_err(|e| format!("{name} did not join: {e}"))?;
        }
        self.nodes.push((
            name,
            Node {
                p2p,
                api,
                alive: true,
                modules: 0,
            },
        ));
        Ok(())
    }

    fn launch_module(&mut self, args: &[String], ctx: &mut Context) -> Result<(), String> {
        let word = "LAUNCHMODULE";
        let name = need(word, args, "--name")?.to_string();
        let node_name = need(word, args, "--node")?.to_string();
        let data_type: u16 = number(word, "--type", need(word, args, "--type")?)?;
        let api = self.node(&node_name)?.api.clone();
        let mut argv: Vec<String> = vec![
            "gossip-client".into(),
            "--api".into(),
            api,
            "notify".into(),
            data_type.to_string(),
        ];
        if args.iter().any(|a| a == "--invalid") {
            argv.push("--invalid".into());
        }
        ctx.launch(&name, argv)?;
        let node = self
            .nodes
            .iter_mut()
            .find(|(n, _)| *n == node_name)
            .map(|(_, n)| n)
            .expect("looked up above");
        node.modules += 1;
        let expected = node.modules as u64;
        // Subscribed once the node counts the module and lists the type.
        ctx.wait_for(&node_name, SETTLE, |s| {
            s["modules"].as_u64() >= Some(expected)
                && s["subscriptions"]
                    .as_array()
                    .is_some_and(|t| t.contains(&Value::from(data_type)))
        })
        .map_err(|e| format!("{name} did not subscribe: {e}"))?;
        self.modules.push((
            name,
            Module {
                node: node_name,
                alive: true,
            },
        ));
        Ok(())
    }

    /// The runner's own API connection to `node`, opened on first use.
    fn raw_conn(&mut self, node: &str, ctx: &mut Context) -> Result<usize, String> {
        if let Some(&conn) = self.raw.get(node) {
            return Ok(conn);
        }
        let api = self.node(node)?.api.clone();
        let conn = ctx.open_conn(&api)?;
        self.raw.insert(node.to_string(), conn);
        Ok(conn)
    }

    fn announce(&mut self, args: &[String], ctx: &mut Context) -> Result<(), String> {
        let word = "ANNOUNCE";
        let data_type: u16 = number(word, "--type", need(word, args, "--type")?)?;
        let data = need(word, args, "--data")?;
        let ttl: u8 = match flag(args, "--ttl") {
            Some(t) => number(word, "--ttl", t)?,
            None => 0,
        };
        if let Some(module) = flag(args, "--module") {
            return ctx.send_line(module, &format!("announce --ttl {ttl} {data_type} {data}"));
        }
        let node = flag(args, "--node")
            .ok_or("ANNOUNCE needs --module or --node")?
            .to_string();
        let mut frame = Vec::new();
        crate::gossip::api::write_announce(&mut frame, ttl, data_type, data.as_bytes())
            .map_err(|e| e.to_string())?;
        let conn = self.raw_conn(&node, ctx)?;
        ctx.write_conn(conn, &frame)
            .map_err(|e| format!("cannot announce on {node}: {e}"))
    }

    fn verdict(&mut self, args: &[String], ctx: &mut Context) -> Result<(), String> {
        let module = need("VERDICT", args, "--module")?;
        match args
            .iter()
            .map(String::as_str)
            .find(|a| *a == "valid" || *a == "invalid")
        {
            Some(verdict) => ctx.send_line(module, verdict),
            None => Err("VERDICT needs 'valid' or 'invalid'".into()),
        }
    }

    fn await_peers(&mut self, args: &[String], ctx: &mut Context) -> Result<(), String> {
        let word = "AWAITPEERS";
        let min: u64 = match flag(args, "--min") {
            Some(m) => number(word, "--min", m)?,
            None => 1,
        };
        let timeout: f64 = match flag(args, "--timeout") {
            Some(t) => number(word, "--timeout", t)?,
            None => AWAIT,
        };
        let dead: Vec<Value> = self
            .nodes
            .iter()
            .filter(|(_, n)| !n.alive)
            .map(|(_, n)| Value::from(n.p2p.clone()))
            .collect();
        let live: Vec<String> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.alive)
            .map(|(name, _)| name.clone())
            .collect();
        for name in live {
            ctx.wait_for(
                &name,
                ctx.scaled(timeout).max(Duration::from_secs(1)),
                |s| {
                    let peers = s["peers"].as_array().cloned().unwrap_or_default();
                    peers.len() as u64 >= min
                        && s["dialing"] == 0
                        && !peers.iter().any(|p| dead.contains(p))
                },
            )?;
        }
        Ok(())
    }

    fn await_notified(&mut self, args: &[String], ctx: &mut Context) -> Result<(), String> {
        let word = "AWAITNOTIFIED";
        let data = Value::from(need(word, args, "--data")?);
        let timeout: f64 = match flag(args, "--timeout") {
            Some(t) => number(word, "--timeout", t)?,
            None => AWAIT,
        };
        let names: Vec<String> = match flag(args, "--modules") {
            Some(list) => unquote(list)
                .split(',')
                .map(|s| s.trim().to_string())
                .collect(),
            None => self
                .modules
                .iter()
                .filter(|(_, m)| m.alive && self.node(&m.node).is_ok_and(|n| n.alive))
                .map(|(name, _)| name.clone())
                .collect(),
        };
        for name in names {
            ctx.wait_for(
                &name,
                ctx.scaled(timeout).max(Duration::from_secs(1)),
                |s| {
                    s["notifications"]
                        .as_array()
                        .is_some_and(|n| n.contains(&data))
                },
            )?;
        }
        Ok(())
    }

    /// `RAWGOSSIP --node N --port api|p2p --hex BYTES`: raw bytes from a
    /// fresh connection the runner then drops (bad-input scenarios).
    fn raw(&mut self, args: &[String], ctx: &mut Context) -> Result<(), String> {
        let word = "RAWGOSSIP";
        let node = self.node(need(word, args, "--node")?)?;
        let addr = match need(word, args, "--port")? {
            "api" => node.api.clone(),
            "p2p" => node.p2p.clone(),
            other => return Err(format!("{word} --port is api or p2p, not {other}")),
        };
        let hex: String = need(word, args, "--hex")?
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        if !hex.len().is_multiple_of(2) {
            return Err(format!("{word} --hex has an odd number of digits"));
        }
        let bytes = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16))
            .collect::<Result<Vec<u8>, _>>()
            .map_err(|_| format!("{word} --hex is not hexadecimal"))?;
        let conn = ctx.open_conn(&addr)?;
        let sent = ctx.write_conn(conn, &bytes);
        ctx.close_conn(conn);
        sent
    }
}

impl Extension for GossipExtension {
    fn handles(&self, word: &str) -> bool {
        WORDS.contains(&word)
    }

    fn run(&mut self, word: &str, args: &[String], ctx: &mut Context) -> Result<(), String> {
        match word {
            "LAUNCHGOSSIP" => self.launch_node(args, ctx),
            "LAUNCHMODULE" => self.launch_module(args, ctx),
            "ANNOUNCE" => self.announce(args, ctx),
            "VERDICT" => self.verdict(args, ctx),
            "AWAITPEERS" => self.await_peers(args, ctx),
            "AWAITNOTIFIED" => self.await_notified(args, ctx),
            "RAWGOSSIP" => self.raw(args, ctx),
            other => Err(format!("not a gossip command: {other}")),
        }
    }

    fn on_kill(&mut self, name: &str) {
        if let Some((_, node)) = self.nodes.iter_mut().find(|(n, _)| n == name) {
            node.alive = false;
            self.raw.remove(name);
            // Its modules lose their connection and exit.
            for (_, module) in self.modules.iter_mut().filter(|(_, m)| m.node == name) {
                module.alive = false;
            }
        }
        if let Some((_, module)) = self.modules.iter_mut().find(|(n, _)| n == name) {
            if module.alive {
                module.alive = false;
                if let Some((_, node)) = self.nodes.iter_mut().find(|(n, _)| *n == module.node) {
                    node.modules = node.modules.saturating_sub(1);
                }
            }
        }
    }
}
