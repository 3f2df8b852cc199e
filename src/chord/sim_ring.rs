//! A Chord ring in the simulated [`World`]: unmodified [`Node`]s, each
//! listening for peers and for DHT API clients, and clients that are World
//! test connections speaking the DHT API frames. Used by the ring tests,
//! the fuzzer (`peerloop fuzz chord`) and `peerloop sim chord`.

use super::api_wire::{ApiCodec, ApiMsg, Key};
use super::id::Id;
use super::node::{Config, Node};
use crate::sim::{host, ExtId, ExtState, NodeId, World};
use crate::wire::{decode_each, split_frame, Framed, Stopped};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// The peer address of node `i` (its ID is the SHA-1 of this address's text).
pub fn addr_of(i: usize) -> SocketAddr {
    SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 4000))
}

/// The DHT API address of node `i`.
pub fn api_of(i: usize) -> SocketAddr {
    SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 5000))
}

/// The Unix time (ms) virtual time 0 stands for: 2026-01-01.
pub const SIM_UNIX_MS: u64 = 1_767_225_600_000;

/// Time one `settle` lets pass: a few round trips on the default LAN latency.
const SETTLE: Duration = Duration::from_millis(50);

pub struct Ring {
    pub world: World,
    pub stabilize: Duration,
    pub successors: usize,
    pub replicas: usize,
    pub max_clients: usize,
    pub client_memory: usize,
    /// Each node's join address, read by its factory at start and restart
    /// (set it to a live member before restarting a node).
    joins: Vec<Rc<Cell<Option<SocketAddr>>>>,
    /// Bytes received by each client and not yet decoded.
    unread: BTreeMap<ExtId, Vec<u8>>,
}

impl Ring {
    pub fn new(seed: u64, successors: usize, replicas: usize) -> Ring {
        Ring {
            world: World::new(seed),
            stabilize: Duration::from_millis(100),
            successors,
            replicas,
            max_clients: super::node::DEFAULT_MAX_CLIENTS,
            client_memory: super::node::DEFAULT_CLIENT_MEMORY,
            joins: Vec::new(),
            unread: BTreeMap::new(),
        }
    }

    /// Add a node (ID = SHA-1 of its address text), joining through node `via`.
    pub fn add(&mut self, via: Option<usize>) -> usize {
        let i = self.world.node_count();
        let join = Rc::new(Cell::new(via.map(addr_of)));
        self.joins.push(join.clone());
        let base = Config {
            listen: addr_of(i),
            api: api_of(i),
            id: Id::hash(addr_of(i).to_string().as_bytes()),
            join: None,
            successors: self.successors,
            replicas: self.replicas,
            stabilize: self.stabilize,
            max_clients: self.max_clients,
            client_memory: self.client_memory,
            // One virtual clock for every node: time 0 is a fixed Unix time.
            wall: super::version::WallClock {
                at: self.world.instant() - self.world.now(),
                unix_ms: SIM_UNIX_MS,
            },
        };
        let node = self.world.add_node(
            format!("n{i}"),
            vec![addr_of(i), api_of(i)],
            Box::new(move |_| {
                let mut cfg = base.clone();
                cfg.join = join.get();
                host(Node::new(cfg))
            }),
        );
        debug_assert_eq!(node, i);
        i
    }

    /// Set the address node `i` joins through when it next (re)starts.
    pub fn set_join(&mut self, i: usize, via: Option<usize>) {
        self.joins[i].set(via.map(addr_of));
    }

    pub fn now(&self) -> Instant {
        self.world.instant()
    }

    /// Node `i`'s state machine (panics if it is down).
    pub fn node(&mut self, i: NodeId) -> &mut Node {
        self.world.protocol::<Node>(i).expect("live node")
    }

    pub fn is_live(&mut self, i: NodeId) -> bool {
        self.world
            .protocol::<Node>(i)
            .is_some_and(|n| !n.is_stopped())
    }

    pub fn live(&mut self) -> Vec<usize> {
        (0..self.world.node_count())
            .filter(|i| self.is_live(*i))
            .collect()
    }

    /// Every live node's `state` JSON.
    pub fn states(&mut self) -> Vec<serde_json::Value> {
        let now = self.now();
        self.live()
            .into_iter()
            .map(|i| self.node(i).state_json(now))
            .collect()
    }

    pub fn crash(&mut self, i: usize) {
        self.world.crash(i);
    }

    /// Type a line on node `i`'s standard input; what it printed.
    pub fn stdin(&mut self, i: usize, line: &str) -> Vec<String> {
        self.world.take_printed(i);
        self.world.type_line(i, line);
        self.world.take_printed(i)
    }

    /// Open a DHT API connection to node `i`, and wait until it is up (or
    /// failed): a test connection closed while still connecting would drop
    /// what was written on it, which a real client's close does not.
    pub fn client(&mut self, i: usize) -> ExtId {
        let c = self.world.ext_connect(api_of(i));
        self.world.run_until(Duration::from_secs(5), |w| {
            *w.ext_state(c) != ExtState::Connecting
        });
        c
    }

    pub fn client_send(&mut self, client: ExtId, msg: &ApiMsg) {
        self.world.ext_send(client, &msg.to_bytes());
    }

    /// Answers that reached the client since the last call.
    pub fn client_answers(&mut self, client: ExtId) -> Vec<ApiMsg> {
        let fresh = self.world.ext_take(client);
        let buf = self.unread.entry(client).or_default();
        buf.extend_from_slice(&fresh);
        let mut answers = Vec::new();
        let (used, stopped) = decode_each(&Framed(ApiCodec), buf, |msg| {
            answers.push(msg);
            ControlFlow::<()>::Continue(())
        });
        if let Some(Stopped::Decode(e)) = stopped {
            panic!("a node sent its client a bad answer: {e}");
        }
        buf.drain(..used);
        answers
    }

    /// The client half-closes: no more requests, it still reads.
    pub fn client_half_close(&mut self, client: ExtId) {
        self.world.ext_shutdown_write(client);
    }

    /// The client closes right after what it sent (which the node reads first).
    pub fn client_close(&mut self, client: ExtId) {
        self.world.ext_close(client);
    }

    /// The client resets the connection right after what it sent.
    pub fn client_abort(&mut self, client: ExtId) {
        self.world.ext_abort(client);
    }

    /// Whether the node closed (or refused) the client's connection.
    pub fn client_closed(&self, client: ExtId) -> bool {
        matches!(
            self.world.ext_state(client),
            ExtState::Closed(_) | ExtState::Failed(_)
        )
    }

    /// PUT through node `via` on a fresh connection, and let it settle.
    pub fn put(&mut self, via: usize, key: Key, value: &[u8]) {
        let c = self.client(via);
        self.client_send(
            c,
            &ApiMsg::Put {
                ttl: 3600,
                replication: 3,
                key,
                value: value.to_vec(),
            },
        );
        self.settle();
        self.client_close(c);
    }

    /// GET through node `via` on a fresh connection: the value, or None on FAILURE.
    pub fn get(&mut self, via: usize, key: Key) -> Option<Vec<u8>> {
        let c = self.client(via);
        self.client_send(c, &ApiMsg::Get { key });
        let mut answer = None;
        let answered = self.world.run_until(Duration::from_secs(30), |w| {
            !w.ext_received(c).is_empty()
                && split_frame(w.ext_received(c)).is_ok_and(|f| f.is_some())
        });
        assert!(answered, "a GET went unanswered");
        if let Some(a) = self.client_answers(c).pop() {
            answer = match a {
                ApiMsg::Success { value, .. } => Some(value),
                _ => None,
            };
        }
        self.client_close(c);
        answer
    }

    /// Let what is in flight arrive (a few round trips of virtual time).
    pub fn settle(&mut self) {
        self.world.run_for(SETTLE);
    }

    pub fn run_for(&mut self, span: Duration) {
        self.world.run_for(span);
    }

    /// The true ring of the live nodes: their IDs, sorted.
    pub fn true_ring(&mut self) -> Vec<(Id, usize)> {
        let mut ids: Vec<(Id, usize)> = self
            .live()
            .into_iter()
            .map(|i| (self.node(i).me().id, i))
            .collect();
        ids.sort();
        ids
    }

    /// Whether every live node's successor and predecessor are its true
    /// neighbours on the SHA-1 ring of live nodes; else the first that is not.
    pub fn ring_exact(&mut self) -> Result<(), String> {
        let ring = self.true_ring();
        let n = ring.len();
        for (pos, (id, i)) in ring.iter().enumerate() {
            let succ = ring[(pos + 1) % n].0;
            let pred = ring[(pos + n - 1) % n].0;
            let node = self.node(*i);
            if !node.is_joined() {
                return Err(format!("node {i} ({id}) has not joined"));
            }
            let r = node.routing();
            let got_succ = r.successor().id;
            let got_pred = r.predecessor.map(|p| p.id);
            if n == 1 {
                if got_succ != *id {
                    return Err(format!("node {i} is alone but names successor {got_succ}"));
                }
                continue;
            }
            if got_succ != succ {
                return Err(format!(
                    "node {i} ({id}): successor {got_succ}, truly {succ}"
                ));
            }
            if got_pred != Some(pred) {
                return Err(format!(
                    "node {i} ({id}): predecessor {got_pred:?}, truly {pred}"
                ));
            }
        }
        Ok(())
    }
}
