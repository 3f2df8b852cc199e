//! Real node processes for end-to-end tests, the benchmark and scenarios:
//! start `peerloop chord` on loopback port 0, read the bound addresses from
//! its state, talk to it on standard input and through the DHT API.

use super::api_wire::{ApiMsg, Key};
use super::dht_cli::read_answer;
use crate::testkit::Proc;
use serde_json::Value;
use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long a node gets to answer `state` before the harness gives up on it.
const STATE_TIMEOUT: Duration = Duration::from_secs(60);

/// A `peerloop chord` process (a [`crate::testkit::Proc`]: killed when
/// dropped) and the addresses it bound.
pub struct NodeProcess {
    proc: Proc,
    pub id: String,
    pub listen: String,
    pub api: String,
}

impl NodeProcess {
    /// Start `exe chord --listen 127.0.0.1:0 --api 127.0.0.1:0 <extra>`.
    pub fn start(exe: &Path, extra: &[String]) -> Result<NodeProcess, String> {
        Self::start_with_stderr(exe, extra, Stdio::null())
    }

    /// The same, with standard error going to `stderr` (a file, to count log lines).
    pub fn start_with_stderr(
        exe: &Path,
        extra: &[String],
        stderr: Stdio,
    ) -> Result<NodeProcess, String> {
        let mut command = Command::new(exe);
        command
            .args(["chord", "--listen", "127.0.0.1:0", "--api", "127.0.0.1:0"])
            .args(extra)
            .stderr(stderr);
        let mut node = NodeProcess {
            proc: Proc::spawn("a chord node", command, true)?,
            id: String::new(),
            listen: String::new(),
            api: String::new(),
        };
        let state = node.state()?;
        let text = |f: &str| state[f].as_str().unwrap_or_default().to_string();
        node.id = text("id");
        node.listen = text("listen");
        node.api = text("api");
        Ok(node)
    }

    pub fn send_line(&mut self, line: &str) -> Result<(), String> {
        self.proc.send_line(line)
    }

    /// Ask for `state` and read lines until the JSON one.
    pub fn state(&mut self) -> Result<Value, String> {
        self.proc.state(STATE_TIMEOUT)
    }

    /// The operating system's process ID (to read /proc/PID/status).
    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// Stop it at once, without a word to its peers.
    pub fn kill(&mut self) {
        self.proc.kill();
    }

    /// Wait (up to `limit`) for the process to exit by itself.
    pub fn wait_exit(&mut self, limit: Duration) -> bool {
        self.proc.wait_exit_within(limit).is_some()
    }
}

/// Start `n` nodes, each joining through a node started before it
/// (picked by `pick(i)`, which must return less than i).
pub fn start_ring(
    exe: &Path,
    n: usize,
    args: &[String],
    pick: impl Fn(usize) -> usize,
) -> Result<Vec<NodeProcess>, String> {
    let mut nodes: Vec<NodeProcess> = Vec::with_capacity(n);
    for i in 0..n {
        let mut extra = args.to_vec();
        if i > 0 {
            extra.push("--join".into());
            extra.push(nodes[pick(i)].listen.clone());
        }
        nodes.push(NodeProcess::start(exe, &extra)?);
    }
    Ok(nodes)
}

pub fn states(nodes: &mut [NodeProcess]) -> Result<Vec<Value>, String> {
    nodes.iter_mut().map(|n| n.state()).collect()
}

/// Poll the nodes' states until `ok` accepts them or `limit` passes;
/// the error carries what `ok` said last.
pub fn wait_for(
    nodes: &mut [NodeProcess],
    limit: Duration,
    ok: impl Fn(&[Value]) -> Result<(), String>,
) -> Result<Duration, String> {
    let start = Instant::now();
    loop {
        let verdict = ok(&states(nodes)?);
        match verdict {
            Ok(()) => return Ok(start.elapsed()),
            Err(e) if start.elapsed() > limit => return Err(format!("not within {limit:?}: {e}")),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// A DHT API connection.
pub struct Client {
    stream: TcpStream,
}

impl Client {
    pub fn connect(api: &str) -> Result<Client, String> {
        let stream = TcpStream::connect(api).map_err(|e| format!("cannot reach {api}: {e}"))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(|e| e.to_string())?;
        let _ = stream.set_nodelay(true);
        Ok(Client { stream })
    }

    pub fn put(&mut self, key: Key, value: &[u8], ttl: u16) -> Result<(), String> {
        let msg = ApiMsg::Put {
            ttl,
            replication: 3,
            key,
            value: value.to_vec(),
        };
        self.stream
            .write_all(&msg.to_bytes())
            .map_err(|e| e.to_string())
    }

    pub fn get(&mut self, key: Key) -> Result<Option<Vec<u8>>, String> {
        self.stream
            .write_all(&ApiMsg::Get { key }.to_bytes())
            .map_err(|e| e.to_string())?;
        match read_answer(&mut self.stream)? {
            ApiMsg::Success { key: k, value } if k == key => Ok(Some(value)),
            ApiMsg::Failure { key: k } if k == key => Ok(None),
            other => Err(format!("unexpected answer {other:?}")),
        }
    }
}

/// Total pairs held across nodes (copies included).
pub fn total_keys(states: &[Value]) -> u64 {
    states.iter().filter_map(|s| s["keys"].as_u64()).sum()
}
