//! The CRC fuzzer: a random tree of servers with clients, random chats
//! (some to unknown IDs), and random faults — server crashes and restarts,
//! reset links, clients quitting, joining, or claiming a taken ID — in the
//! simulated world. After every step the network is run to quiescence and
//! checked against a model of what it must look like:
//!
//! - every live server's `hosts_db` holds exactly the other live machines of
//!   its tree component;
//! - a chat to a client of the sender's component arrives exactly once, and
//!   chats between one pair arrive in the order they were sent;
//! - a chat to an ID outside the component is answered "Unknown ID" to its
//!   sender, once per chat;
//! - a client that claims a taken ID is refused and is not registered.

use super::{FaultSet, Outcome, Violation};
use crate::crc::client::{Client, ClientConfig};
use crate::crc::server::{Server, ServerConfig};
use crate::sim::{host, Latency, NodeId, World};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

/// The faults this fuzzer can inject (`--faults`).
pub const FAULTS: &[&str] = &["crash", "reset"];

/// Which faults a run may inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Faults {
    crash: bool,
    reset: bool,
}

/// What one seed did (beyond the common counts).
#[derive(Debug, Clone, Default)]
struct Counts {
    chats: usize,
    faults: usize,
}

/// The longest any step may take to settle, in virtual time.
const SETTLE: Duration = Duration::from_secs(30);
const FIRST_PORT: u16 = 2000;
const FIRST_CLIENT_ID: u32 = 100;
/// IDs no machine ever has.
const UNUSED_ID: u32 = 9000;

struct ServerModel {
    node: NodeId,
    id: u32,
    parent: Option<usize>,
    alive: bool,
}

struct ClientModel {
    node: NodeId,
    id: u32,
    server: usize,
    registered: bool,
    /// Chats sent by this client that must be answered "Unknown ID".
    unknown_expected: usize,
}

struct Run {
    w: World,
    rng: StdRng,
    servers: Vec<ServerModel>,
    clients: Vec<ClientModel>,
    /// Live server-to-server links, as (child, parent) server indexes.
    edges: BTreeSet<(usize, usize)>,
    /// Chats sent, per (from client index, to client index), by sequence number.
    sent: BTreeMap<(usize, usize), Vec<u64>>,
    next_chat: u64,
    counts: Counts,
    faults: Faults,
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Run one seed; `Err` names the first invariant broken.
pub fn run(seed: u64, faults: &FaultSet, trace: bool) -> Result<Outcome, Violation> {
    let faults = Faults {
        crash: faults.contains("crash"),
        reset: faults.contains("reset"),
    };
    let mut w = World::new(seed);
    if trace {
        w.enable_trace();
    }
    w.set_latency(Latency::Exponential {
        min: Duration::from_micros(20),
        mean: Duration::from_millis(1),
    });
    let mut run = Run {
        w,
        rng: StdRng::seed_from_u64(seed ^ 0x5eed_c0de),
        servers: Vec::new(),
        clients: Vec::new(),
        edges: BTreeSet::new(),
        sent: BTreeMap::new(),
        next_chat: 0,
        counts: Counts::default(),
        faults,
    };
    run.go().map_err(|(invariant, detail)| Violation {
        seed,
        invariant,
        detail,
        trace: run.w.trace().to_vec(),
    })?;
    Ok(Outcome {
        events: run.w.stats.events,
        virtual_time: run.w.now(),
        summary: format!("{} chats, {} faults", run.counts.chats, run.counts.faults),
    })
}

type Check = Result<(), (String, String)>;

fn broken(invariant: &str, detail: String) -> Check {
    Err((invariant.to_string(), detail))
}

impl Run {
    fn go(&mut self) -> Check {
        let n = self.rng.gen_range(2..=7);
        for i in 0..n {
            let parent = (i > 0).then(|| self.rng.gen_range(0..i));
            self.add_server(parent);
            self.settle()?;
        }
        for _ in 0..self.rng.gen_range(2..=8) {
            let server = self.rng.gen_range(0..n);
            self.add_client(server, None);
        }
        self.settle()?;
        self.check_hosts()?;
        for _ in 0..self.rng.gen_range(3..=8) {
            self.chats()?;
            self.fault();
            self.settle()?;
            self.check_hosts()?;
            self.check_refusals()?;
        }
        self.chats()
    }

    fn add_server(&mut self, parent: Option<usize>) {
        let index = self.servers.len();
        let id = index as u32 + 1;
        let config = ServerConfig {
            id,
            name: format!("server{id}"),
            info: String::new(),
            connect_to: parent.map(|p| addr(FIRST_PORT + p as u16)),
        };
        let node = self.w.add_node(
            format!("server{id}"),
            vec![addr(FIRST_PORT + index as u16)],
            Box::new(move |_| host(Server::new(config.clone()))),
        );
        self.servers.push(ServerModel {
            node,
            id,
            parent,
            alive: true,
        });
        if let Some(p) = parent {
            if self.servers[p].alive {
                self.edges.insert((index, p));
            }
        }
    }

    /// A new client on `server`; `claim` is a taken ID it tries to register with.
    fn add_client(&mut self, server: usize, claim: Option<u32>) {
        let id = claim.unwrap_or(FIRST_CLIENT_ID + self.clients.len() as u32);
        let config = ClientConfig {
            id,
            username: format!("user{}", self.clients.len()),
            info: String::new(),
            server: addr(FIRST_PORT + server as u16),
            exit_on_quit: false,
        };
        let node = self.w.add_node(
            format!("client{}", self.clients.len()),
            Vec::new(),
            Box::new(move |_| host(Client::new(config.clone()))),
        );
        // A client is registered if its server is up and (for a claim) never.
        let registered = self.servers[server].alive && claim.is_none();
        self.clients.push(ClientModel {
            node,
            id,
            server,
            registered,
            unknown_expected: 0,
        });
    }

    fn settle(&mut self) -> Check {
        if self.w.run_until_idle(SETTLE) {
            Ok(())
        } else {
            broken(
                "quiescence",
                format!("still busy after {SETTLE:?} of virtual time"),
            )
        }
    }

    /// The live servers reachable from `s` over live links.
    fn component(&self, s: usize) -> BTreeSet<usize> {
        let mut seen = BTreeSet::from([s]);
        let mut todo = vec![s];
        while let Some(x) = todo.pop() {
            for &(a, b) in &self.edges {
                for (from, to) in [(a, b), (b, a)] {
                    if from == x && seen.insert(to) {
                        todo.push(to);
                    }
                }
            }
        }
        seen
    }

    fn registered_clients_of(&self, servers: &BTreeSet<usize>) -> Vec<usize> {
        (0..self.clients.len())
            .filter(|&c| self.clients[c].registered && servers.contains(&self.clients[c].server))
            .collect()
    }

    fn check_hosts(&mut self) -> Check {
        for s in 0..self.servers.len() {
            if !self.servers[s].alive {
                continue;
            }
            let component = self.component(s);
            let mut expected: Vec<u64> = component
                .iter()
                .filter(|&&x| x != s)
                .map(|&x| u64::from(self.servers[x].id))
                .chain(
                    self.registered_clients_of(&component)
                        .iter()
                        .map(|&c| u64::from(self.clients[c].id)),
                )
                .collect();
            expected.sort_unstable();
            let node = self.servers[s].node;
            let state = self
                .w
                .protocol::<Server>(node)
                .expect("a live server")
                .state();
            let found: Vec<u64> = state.hosts_db.iter().map(|&id| u64::from(id)).collect();
            if found != expected {
                return broken(
                    "hosts_db equals the live hosts of the server's tree component",
                    format!(
                        "server {} has {found:?}, expected {expected:?}",
                        self.servers[s].id
                    ),
                );
            }
        }
        Ok(())
    }

    fn client_state(&mut self, c: usize) -> serde_json::Value {
        let node = self.clients[c].node;
        self.w
            .protocol::<Client>(node)
            .map(|client| client.state().to_json())
            .unwrap_or_default()
    }

    /// A claim of a taken ID never registers the claimant.
    fn check_refusals(&mut self) -> Check {
        for c in 0..self.clients.len() {
            let state = self.client_state(c);
            let connected = state["connected"].as_bool().unwrap_or(false);
            if !self.clients[c].registered
                && connected
                && self.servers[self.clients[c].server].alive
            {
                // Unregistered and still connected: only a refused claimant
                // could be in that state, and it must have been closed.
                return broken(
                    "a client claiming a taken ID is refused",
                    format!("client #{} is still connected", self.clients[c].id),
                );
            }
        }
        Ok(())
    }

    /// Random chats between registered clients, some to IDs outside the
    /// sender's component; run to quiescence and check every delivery.
    fn chats(&mut self) -> Check {
        let senders: Vec<usize> = (0..self.clients.len())
            .filter(|&c| self.clients[c].registered)
            .collect();
        if senders.is_empty() {
            return Ok(());
        }
        for _ in 0..self.rng.gen_range(5..=30) {
            let from = senders[self.rng.gen_range(0..senders.len())];
            let component = self.component(self.clients[from].server);
            let reachable = self.registered_clients_of(&component);
            let roll = self.rng.gen_range(0..10);
            let to = if roll < 8 && !reachable.is_empty() {
                Some(reachable[self.rng.gen_range(0..reachable.len())])
            } else if roll < 9 {
                // A client that exists but not in this component (or not at all).
                let reachable_ids: BTreeSet<u32> =
                    reachable.iter().map(|&c| self.clients[c].id).collect();
                let outside: Vec<usize> = (0..self.clients.len())
                    .filter(|c| !reachable_ids.contains(&self.clients[*c].id))
                    .collect();
                outside
                    .get(self.rng.gen_range(0..outside.len().max(1)))
                    .copied()
                    .map(|c| c + usize::MAX / 2) // marks "unknown, but a real client"
            } else {
                None
            };
            let seq = self.next_chat;
            self.next_chat += 1;
            self.counts.chats += 1;
            let (dest_id, known) = match to {
                Some(c) if c < usize::MAX / 2 => (self.clients[c].id, Some(c)),
                Some(marked) => (self.clients[marked - usize::MAX / 2].id, None),
                None => (UNUSED_ID + self.rng.gen_range(0..100), None),
            };
            match known {
                Some(c) => self.sent.entry((from, c)).or_default().push(seq),
                None => self.clients[from].unknown_expected += 1,
            }
            let node = self.clients[from].node;
            self.w
                .type_line(node, &format!("/msg {dest_id} c{seq}.{from}"));
        }
        self.settle()?;
        self.check_chats()
    }

    fn check_chats(&mut self) -> Check {
        let mut logs: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        for c in 0..self.clients.len() {
            let state = self.client_state(c);
            let log = state["chat_messages_log"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            logs.insert(c, log);
            let unknown = state["status_updates_log"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter(|v| v.as_str().is_some_and(|t| t.starts_with("Unknown ID")))
                        .count()
                })
                .unwrap_or(0);
            if self.clients[c].registered && unknown != self.clients[c].unknown_expected {
                return broken(
                    "a chat to an unknown ID is answered, once",
                    format!(
                        "client #{} got {unknown} Unknown ID answers for {} such chats",
                        self.clients[c].id, self.clients[c].unknown_expected
                    ),
                );
            }
        }
        for (&(from, to), seqs) in &self.sent {
            if !self.clients[to].registered || !self.clients[from].registered {
                continue;
            }
            let log = &logs[&to];
            let mut at = Vec::new();
            for seq in seqs {
                let text = format!("c{seq}.{from}");
                let hits: Vec<usize> = log
                    .iter()
                    .enumerate()
                    .filter(|(_, l)| **l == text)
                    .map(|(i, _)| i)
                    .collect();
                if hits.len() != 1 {
                    return broken(
                        "a chat to a reachable client arrives exactly once",
                        format!(
                            "chat {text} from #{} to #{} arrived {} times",
                            self.clients[from].id,
                            self.clients[to].id,
                            hits.len()
                        ),
                    );
                }
                at.push(hits[0]);
            }
            if at.windows(2).any(|p| p[0] > p[1]) {
                return broken(
                    "chats between one pair arrive in the order sent",
                    format!(
                        "from #{} to #{}: sent {seqs:?}, log positions {at:?}",
                        self.clients[from].id, self.clients[to].id
                    ),
                );
            }
        }
        // Chats already checked are not checked again after the topology changes.
        self.sent.clear();
        Ok(())
    }

    /// One random fault or membership change.
    fn fault(&mut self) {
        self.counts.faults += 1;
        let alive: Vec<usize> = (0..self.servers.len())
            .filter(|&s| self.servers[s].alive)
            .collect();
        let choice = self.rng.gen_range(0..6);
        match choice {
            0 if self.faults.crash && alive.len() > 1 => {
                let s = alive[self.rng.gen_range(0..alive.len())];
                self.w.crash(self.servers[s].node);
                self.servers[s].alive = false;
                self.edges.retain(|&(a, b)| a != s && b != s);
                for c in &mut self.clients {
                    if c.server == s {
                        c.registered = false;
                    }
                }
            }
            1 if self.faults.crash => {
                let dead: Vec<usize> = (0..self.servers.len())
                    .filter(|&s| !self.servers[s].alive)
                    .collect();
                if let Some(&s) = dead.get(self.rng.gen_range(0..dead.len().max(1))) {
                    self.w.restart(self.servers[s].node);
                    self.servers[s].alive = true;
                    if let Some(p) = self.servers[s].parent {
                        if self.servers[p].alive {
                            self.edges.insert((s, p));
                        }
                    }
                }
            }
            2 if self.faults.reset && !self.edges.is_empty() => {
                let edges: Vec<(usize, usize)> = self.edges.iter().copied().collect();
                let (a, b) = edges[self.rng.gen_range(0..edges.len())];
                self.w
                    .reset_between(self.servers[a].node, self.servers[b].node);
                self.edges.remove(&(a, b));
            }
            3 => {
                let registered: Vec<usize> = (0..self.clients.len())
                    .filter(|&c| self.clients[c].registered)
                    .collect();
                if let Some(&c) = registered.get(self.rng.gen_range(0..registered.len().max(1))) {
                    self.w.type_line(self.clients[c].node, "/quit bye");
                    self.clients[c].registered = false;
                }
            }
            4 => {
                // A claim of an ID taken in the claimant's component.
                let s = alive[self.rng.gen_range(0..alive.len())];
                let component = self.component(s);
                let taken = self.registered_clients_of(&component);
                if let Some(&c) = taken.get(self.rng.gen_range(0..taken.len().max(1))) {
                    let id = self.clients[c].id;
                    self.add_client(s, Some(id));
                }
            }
            _ => {
                let s = alive[self.rng.gen_range(0..alive.len())];
                self.add_client(s, None);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifty_seeds_with_every_fault_hold_every_invariant() {
        crate::fuzz::assert_seeds_hold("crc", 50);
    }

    #[test]
    fn a_seed_replays_exactly() {
        let all = super::super::all_faults(FAULTS);
        let a = run(11, &all, true).unwrap();
        let b = run(11, &all, true).unwrap();
        assert_eq!(a.events, b.events);
        assert_eq!(a.virtual_time, b.virtual_time);
        assert!(a.summary.contains("faults") && !a.summary.starts_with("0 chats"));
    }
}
