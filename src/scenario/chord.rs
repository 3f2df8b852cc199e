//! Chord scenario commands: launch nodes, put and get through the DHT API,
//! wait for the ring to stabilize, and check it against the sorted ring.
//! KILL (a crash) and `SEND name quit` (a polite leave) are the runner's own.

use super::context::{Context, Extension};
use super::parse::{flag, unquote};
use crate::chord::api_wire::{hex_key, text_key, ApiCodec, ApiMsg, Key};
use crate::chord::ring_check::{check_fingers, check_ring, check_stable};
use crate::wire::{Codec, Framed};
use serde_json::{json, Value};
use std::time::Duration;

const WORDS: &[&str] = &[
    "LAUNCHCHORD",
    "DHTPUT",
    "DHTGET",
    "DHTRAW",
    "WAITSTABLE",
    "CHECKRING",
];

struct ChordNode {
    name: String,
    listen: String,
    api: String,
    alive: bool,
}

#[derive(Default)]
pub struct ChordExtension {
    nodes: Vec<ChordNode>,
}

impl ChordExtension {
    pub fn new() -> Self {
        Self::default()
    }

    fn node(&self, name: &str) -> Result<&ChordNode, String> {
        self.nodes
            .iter()
            .find(|n| n.name == name && n.alive)
            .ok_or_else(|| format!("no running chord node named {name}"))
    }

    /// The names of the nodes still running.
    fn live_names(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| n.alive)
            .map(|n| n.name.clone())
            .collect()
    }

    fn live_states(&self, ctx: &mut Context) -> Result<Vec<Value>, String> {
        self.live_names().iter().map(|n| ctx.state(n)).collect()
    }

    /// `LAUNCHCHORD --name N --listen H:P --api H:P [--join H:P] [--id HEX]
    /// [--successors R] [--replicas K] [--stabilize-ms T]`
    fn launch(&mut self, args: &[String], ctx: &mut Context) -> Result<(), String> {
        let need = |name: &str| flag(args, name).ok_or_else(|| format!("LAUNCHCHORD needs {name}"));
        let name = unquote(need("--name")?).to_string();
        let listen = ctx.addr(need("--listen")?)?;
        let api = ctx.addr(need("--api")?)?;
        let mut argv = vec![
            "chord".to_string(),
            "--listen".into(),
            listen.clone(),
            "--api".into(),
            api.clone(),
        ];
        if let Some(join) = flag(args, "--join") {
            argv.extend(["--join".into(), ctx.addr(join)?]);
        }
        for option in ["--id", "--successors", "--replicas", "--stabilize-ms"] {
            if let Some(value) = flag(args, option) {
                argv.extend([option.to_string(), unquote(value).to_string()]);
            }
        }
        ctx.launch(&name, argv)?;
        // Up when it answers `state`.
        ctx.state(&name)?;
        self.nodes.retain(|n| n.name != name);
        self.nodes.push(ChordNode {
            name,
            listen,
            api,
            alive: true,
        });
        Ok(())
    }

    fn key(args: &[String], word: &str) -> Result<(String, Key), String> {
        let text =
            unquote(flag(args, "--key").ok_or_else(|| format!("{word} needs --key"))?).to_string();
        let key = if args.iter().any(|a| a == "--hex") {
            hex_key(&text)?
        } else {
            text_key(&text)
        };
        Ok((text, key))
    }

    /// `DHTPUT --node N --key K --value V [--ttl S] [--hex]`: waits until
    /// some node holds the pair (a PUT has no answer).
    fn put(&mut self, args: &[String], ctx: &mut Context) -> Result<(), String> {
        let node = unquote(flag(args, "--node").ok_or("DHTPUT needs --node")?).to_string();
        let (text, key) = Self::key(args, "DHTPUT")?;
        let value = unquote(flag(args, "--value").ok_or("DHTPUT needs --value")?)
            .as_bytes()
            .to_vec();
        let ttl: u16 = match flag(args, "--ttl") {
            Some(t) => t
                .parse()
                .map_err(|_| format!("DHTPUT --ttl '{t}' is not a number of seconds"))?,
            None => 3600,
        };
        let api = self.node(&node)?.api.clone();
        let conn = ctx
            .open_conn(&api)
            .map_err(|e| format!("cannot reach {node}'s API: {e}"))?;
        let msg = ApiMsg::Put {
            ttl,
            replication: 3,
            key,
            value,
        };
        ctx.write_conn(conn, &msg.to_bytes())
            .map_err(|e| format!("PUT to {node}: {e}"))?;
        let hex = crate::chord::node::hex(&key);
        let deadline = ctx.clock() + ctx.scaled(10.0);
        loop {
            let states = self.live_states(ctx)?;
            if states.iter().any(|s| {
                s["stored"]
                    .as_array()
                    .is_some_and(|a| a.contains(&json!(hex)))
            }) {
                ctx.close_conn(conn);
                return Ok(());
            }
            if ctx.clock() > deadline {
                ctx.close_conn(conn);
                return Err(format!(
                    "the PUT of '{text}' through {node} was stored nowhere"
                ));
            }
            ctx.sleep(Duration::from_millis(50));
        }
    }

    /// `DHTGET --node N --key K (--expect V | --expect-failure) [--hex]`;
    /// the answer is also recorded in N's final state as `get <key>`.
    fn get(&mut self, args: &[String], ctx: &mut Context) -> Result<(), String> {
        let node = unquote(flag(args, "--node").ok_or("DHTGET needs --node")?).to_string();
        let (text, key) = Self::key(args, "DHTGET")?;
        let expect_failure = args.iter().any(|a| a == "--expect-failure");
        let expect = flag(args, "--expect").map(|v| unquote(v).to_string());
        if expect.is_none() && !expect_failure {
            return Err("DHTGET needs --expect VALUE or --expect-failure".into());
        }
        let api = self.node(&node)?.api.clone();
        let conn = ctx
            .open_conn(&api)
            .map_err(|e| format!("cannot reach {node}'s API: {e}"))?;
        ctx.write_conn(conn, &ApiMsg::Get { key }.to_bytes())
            .map_err(|e| format!("GET to {node}: {e}"))?;
        let timeout = ctx.scaled(30.0);
        let (bytes, _) = ctx
            .read_conn(conn, timeout, |b| {
                matches!(Framed(ApiCodec).decode(b), Ok(Some(_)) | Err(_))
            })
            .map_err(|e| format!("GET '{text}' from {node}: waiting for the answer: {e}"))?;
        ctx.close_conn(conn);
        let answer = match Framed(ApiCodec).decode(&bytes) {
            Ok(Some((msg, _))) => msg,
            Ok(None) => return Err("the node closed the connection without answering".into()),
            Err(e) => return Err(e.to_string()),
        };
        let got = match answer {
            ApiMsg::Success { key: k, value } if k == key => {
                Some(String::from_utf8_lossy(&value).into_owned())
            }
            ApiMsg::Failure { key: k } if k == key => None,
            other => {
                return Err(format!(
                    "GET '{text}' from {node}: unexpected answer {other:?}"
                ))
            }
        };
        ctx.record(&node, &format!("get {text}"), json!(got));
        match (&got, &expect) {
            (Some(value), Some(want)) if value == want => Ok(()),
            (None, None) => Ok(()),
            _ => Err(format!(
                "GET '{text}' from {node} answered {}, expected {}",
                got.map_or("FAILURE".to_string(), |v| format!("'{v}'")),
                expect.map_or("FAILURE".to_string(), |v| format!("'{v}'"))
            )),
        }
    }

    /// `DHTRAW --node N [--peer] --hex BYTES`: raw bytes to N's API (or peer)
    /// port on a fresh connection, which the node must close; the node must
    /// stay up.
    fn raw(&mut self, args: &[String], ctx: &mut Context) -> Result<(), String> {
        let node = unquote(flag(args, "--node").ok_or("DHTRAW needs --node")?).to_string();
        let hex = unquote(flag(args, "--hex").ok_or("DHTRAW needs --hex")?).replace(' ', "");
        let bytes = (0..hex.len() / 2)
            .map(|i| {
                u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
                    .map_err(|_| format!("bad hex '{hex}'"))
            })
            .collect::<Result<Vec<u8>, _>>()?;
        let target = self.node(&node)?;
        let addr = if args.iter().any(|a| a == "--peer") {
            target.listen.clone()
        } else {
            target.api.clone()
        };
        let conn = ctx
            .open_conn(&addr)
            .map_err(|e| format!("cannot reach {addr}: {e}"))?;
        ctx.write_conn(conn, &bytes)?;
        let timeout = ctx.scaled(10.0);
        match ctx.read_conn(conn, timeout, |b| !b.is_empty()) {
            Ok((_, true)) => {}
            Ok((_, false)) => return Err(format!("{node} answered garbage instead of closing")),
            Err(e) => {
                return Err(format!(
                    "{node} kept a connection that sent garbage open ({e})"
                ))
            }
        }
        ctx.close_conn(conn);
        ctx.state(&node).map(|_| ())
    }

    /// `WAITSTABLE [--timeout S] [--fingers]`: every live node's successor,
    /// predecessor and successor list (and with --fingers, every finger)
    /// match the sorted ring.
    fn wait_stable(&mut self, args: &[String], ctx: &mut Context) -> Result<(), String> {
        let seconds: f64 = flag(args, "--timeout")
            .and_then(|t| t.parse().ok())
            .unwrap_or(20.0);
        let fingers = args.iter().any(|a| a == "--fingers");
        let deadline = ctx.clock() + ctx.scaled(seconds);
        loop {
            let states = self.live_states(ctx)?;
            let verdict = check_stable(&states).and_then(|_| {
                if fingers {
                    check_fingers(&states)
                } else {
                    Ok(())
                }
            });
            match verdict {
                Ok(()) => return Ok(()),
                Err(e) if ctx.clock() > deadline => {
                    return Err(format!("no stable ring after {seconds} s: {e}"))
                }
                Err(_) => ctx.sleep(Duration::from_millis(100)),
            }
        }
    }

    /// `CHECKRING`: records `ring_ok` (true or the problem) on every live node.
    fn check(&mut self, ctx: &mut Context) -> Result<(), String> {
        let states = self.live_states(ctx)?;
        let verdict = match check_ring(&states) {
            Ok(()) => json!(true),
            Err(e) => json!(e),
        };
        for name in self.live_names() {
            ctx.record(&name, "ring_ok", verdict.clone());
        }
        Ok(())
    }
}

impl Extension for ChordExtension {
    fn handles(&self, word: &str) -> bool {
        WORDS.contains(&word)
    }

    fn run(&mut self, word: &str, args: &[String], ctx: &mut Context) -> Result<(), String> {
        match word {
            "LAUNCHCHORD" => self.launch(args, ctx),
            "DHTPUT" => self.put(args, ctx),
            "DHTGET" => self.get(args, ctx),
            "DHTRAW" => self.raw(args, ctx),
            "WAITSTABLE" => self.wait_stable(args, ctx),
            "CHECKRING" => self.check(ctx),
            other => Err(format!("unknown chord command {other}")),
        }
    }

    fn on_kill(&mut self, name: &str) {
        for node in self.nodes.iter_mut().filter(|n| n.name == name) {
            node.alive = false;
        }
    }
}
