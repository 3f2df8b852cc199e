//! An in-memory network of Chord state machines for deterministic tests:
//! connections are pairs of endpoints, bytes arrive in order and at once,
//! and time moves only from timer to timer.

use super::api_wire::{ApiMsg, Key};
use super::id::Id;
use super::node::{Config, Node, API_LISTENER, PEER_LISTENER};
use crate::reactor::{Action, Actions, CloseReason, ConnId, InputEnded};
use crate::wire::split_frame;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Endpoints at or above this are test clients, not nodes.
const CLIENT_BASE: usize = 1_000_000;

type End = (usize, ConnId);

enum Event {
    Accept {
        node: usize,
        conn: ConnId,
        listener: usize,
    },
    Connected {
        node: usize,
        tag: u64,
        conn: ConnId,
    },
    ConnectFailed {
        node: usize,
        tag: u64,
    },
    Data {
        end: End,
        bytes: Vec<u8>,
    },
    Closed {
        end: End,
    },
    /// An end closes once what it sent before is delivered.
    CloseFrom {
        end: End,
    },
    /// The client half-closed: the node hears its input ended.
    InputEnded {
        end: End,
    },
    /// A stopping node goes once what it queued is delivered.
    Stop {
        node: usize,
    },
}

pub struct Sim {
    pub nodes: Vec<Option<Node>>,
    by_addr: HashMap<SocketAddr, usize>,
    links: HashMap<End, End>,
    read_bufs: HashMap<End, Vec<u8>>,
    next_conn: usize,
    timers: BinaryHeap<Reverse<(Instant, u64, usize, u64)>>,
    timer_seq: u64,
    events: VecDeque<Event>,
    pub now: Instant,
    pub stabilize: Duration,
    pub successors: usize,
    pub replicas: usize,
    pub max_clients: usize,
    pub client_memory: usize,
    clients: usize,
}

pub fn addr_of(i: usize) -> SocketAddr {
    SocketAddr::from(([10, 0, (i / 250) as u8, (i % 250) as u8 + 1], 4000))
}

impl Sim {
    pub fn new(successors: usize, replicas: usize) -> Sim {
        Sim {
            nodes: Vec::new(),
            by_addr: HashMap::new(),
            links: HashMap::new(),
            read_bufs: HashMap::new(),
            next_conn: 0,
            timers: BinaryHeap::new(),
            timer_seq: 0,
            events: VecDeque::new(),
            now: Instant::now(),
            stabilize: Duration::from_millis(100),
            successors,
            replicas,
            max_clients: super::node::DEFAULT_MAX_CLIENTS,
            client_memory: super::node::DEFAULT_CLIENT_MEMORY,
            clients: 0,
        }
    }

    /// Add a node (ID = SHA-1 of its address text, or `id`), joining through node `via`.
    pub fn add(&mut self, via: Option<usize>, id: Option<Id>) -> usize {
        let i = self.nodes.len();
        let listen = addr_of(i);
        let cfg = Config {
            listen,
            api: SocketAddr::from(([10, 1, 0, 1], 5000 + i as u16)),
            id: id.unwrap_or_else(|| Id::hash(listen.to_string().as_bytes())),
            join: via.map(addr_of),
            successors: self.successors,
            replicas: self.replicas,
            stabilize: self.stabilize,
            max_clients: self.max_clients,
            client_memory: self.client_memory,
        };
        self.nodes.push(Some(Node::new(cfg)));
        self.by_addr.insert(listen, i);
        let mut out = Actions::new();
        let now = self.now;
        self.nodes[i].as_mut().unwrap().on_start(now, &mut out);
        self.apply(i, out);
        i
    }

    pub fn node(&self, i: usize) -> &Node {
        self.nodes[i].as_ref().expect("live node")
    }

    pub fn live(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|i| self.nodes[*i].is_some())
            .collect()
    }

    pub fn states(&self) -> Vec<serde_json::Value> {
        self.live()
            .iter()
            .map(|i| self.node(*i).state_json(self.now))
            .collect()
    }

    /// The node disappears without a word; its peers see their connections drop.
    pub fn crash(&mut self, i: usize) {
        self.nodes[i] = None;
        self.by_addr.retain(|_, n| *n != i);
        let ends: Vec<End> = self.links.keys().filter(|e| e.0 == i).copied().collect();
        for end in ends {
            if let Some(other) = self.links.remove(&end) {
                self.links.remove(&other);
                self.events.push_back(Event::Closed { end: other });
            }
        }
    }

    pub fn stdin(&mut self, i: usize, line: &str) -> Vec<String> {
        let mut out = Actions::new();
        let now = self.now;
        self.nodes[i]
            .as_mut()
            .unwrap()
            .on_stdin_line(now, line, &mut out);
        let printed = out
            .others()
            .iter()
            .filter_map(|a| match a {
                Action::Print(line) => Some(line.clone()),
                _ => None,
            })
            .collect();
        self.apply(i, out);
        printed
    }

    /// Open an API connection to node `i`; returns the client's handle.
    pub fn client(&mut self, i: usize) -> End {
        self.clients += 1;
        let client: End = (CLIENT_BASE + self.clients, 0);
        self.next_conn += 1;
        let conn = self.next_conn;
        self.links.insert(client, (i, conn));
        self.links.insert((i, conn), client);
        self.deliver(Event::Accept {
            node: i,
            conn,
            listener: API_LISTENER,
        });
        client
    }

    pub fn client_send(&mut self, client: End, msg: &ApiMsg) {
        let to = self.links[&client];
        self.events.push_back(Event::Data {
            end: to,
            bytes: msg.to_bytes(),
        });
    }

    /// Answers that reached the client so far.
    pub fn client_answers(&mut self, client: End) -> Vec<ApiMsg> {
        let buf = self.read_bufs.entry(client).or_default();
        let mut answers = Vec::new();
        let mut used = 0;
        while let Ok(Some(frame)) = split_frame(&buf[used..]) {
            answers.push(ApiMsg::decode(frame.kind, frame.body).expect("valid answer"));
            used += frame.len;
        }
        buf.drain(..used);
        answers
    }

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
    }

    pub fn get(&mut self, via: usize, key: Key) -> Option<Vec<u8>> {
        let c = self.client(via);
        self.client_send(c, &ApiMsg::Get { key });
        let deadline = self.now + Duration::from_secs(30);
        loop {
            self.settle();
            if let Some(answer) = self.client_answers(c).pop() {
                return match answer {
                    ApiMsg::Success { value, .. } => Some(value),
                    _ => None,
                };
            }
            assert!(self.now < deadline, "a GET went unanswered");
            self.step_timer();
        }
    }

    /// Deliver everything in flight without moving time.
    pub fn settle(&mut self) {
        while let Some(event) = self.events.pop_front() {
            self.deliver(event);
        }
    }

    fn step_timer(&mut self) -> bool {
        let Some(Reverse((at, _, node, token))) = self.timers.pop() else {
            return false;
        };
        self.now = self.now.max(at);
        if let Some(n) = self.nodes[node].as_mut() {
            let mut out = Actions::new();
            n.on_timer(self.now, token, &mut out);
            self.apply(node, out);
        }
        self.settle();
        true
    }

    /// Let `span` of simulated time pass.
    pub fn run_for(&mut self, span: Duration) {
        let until = self.now + span;
        self.settle();
        while self
            .timers
            .peek()
            .is_some_and(|Reverse((at, ..))| *at <= until)
        {
            self.step_timer();
        }
        self.now = until;
    }

    fn deliver(&mut self, event: Event) {
        let now = self.now;
        match event {
            Event::Accept {
                node,
                conn,
                listener,
            } => {
                if let Some(n) = self.nodes[node].as_mut() {
                    let mut out = Actions::new();
                    n.on_accept(now, listener, conn, addr_of(0), &mut out);
                    self.apply(node, out);
                }
            }
            Event::Connected { node, tag, conn } => {
                if let Some(n) = self.nodes[node].as_mut() {
                    let mut out = Actions::new();
                    n.on_connected(now, tag, conn, &mut out);
                    self.apply(node, out);
                }
            }
            Event::ConnectFailed { node, tag } => {
                if let Some(n) = self.nodes[node].as_mut() {
                    let mut out = Actions::new();
                    n.on_connect_failed(now, tag, "connection refused", &mut out);
                    self.apply(node, out);
                }
            }
            Event::Data { end, bytes } => {
                if !self.links.contains_key(&end) {
                    return;
                }
                let buf = self.read_bufs.entry(end).or_default();
                buf.extend_from_slice(&bytes);
                if end.0 >= CLIENT_BASE {
                    return;
                }
                let data = std::mem::take(buf);
                let Some(n) = self.nodes[end.0].as_mut() else {
                    return;
                };
                let mut out = Actions::new();
                let result = n.on_data(now, end.1, &data, &mut out);
                match result {
                    Ok(used) => {
                        self.read_bufs.insert(end, data[used..].to_vec());
                        self.apply(end.0, out);
                    }
                    Err(why) => {
                        self.apply(end.0, out);
                        self.close_pair(end);
                        let mut out = Actions::new();
                        if let Some(n) = self.nodes[end.0].as_mut() {
                            n.on_closed(now, end.1, &CloseReason::ProtocolError(why), &mut out);
                        }
                        self.apply(end.0, out);
                    }
                }
            }
            Event::Stop { node } => self.crash(node),
            Event::CloseFrom { end } => self.close_pair(end),
            Event::InputEnded { end } => {
                let Some(n) = self.nodes[end.0].as_mut() else {
                    return;
                };
                if !self.links.contains_key(&end) {
                    return;
                }
                let mut out = Actions::new();
                let what = n.on_input_ended(now, end.1, &mut out);
                self.apply(end.0, out);
                if what == InputEnded::CloseWhenFlushed {
                    // As the reactor does: close, then tell the node.
                    self.close_pair(end);
                    let mut out = Actions::new();
                    if let Some(n) = self.nodes[end.0].as_mut() {
                        n.on_closed(now, end.1, &CloseReason::PeerClosed, &mut out);
                    }
                    self.apply(end.0, out);
                }
            }
            Event::Closed { end } => {
                if end.0 >= CLIENT_BASE {
                    return; // a client may still read what reached it
                }
                self.read_bufs.remove(&end);
                if let Some(n) = self.nodes[end.0].as_mut() {
                    let mut out = Actions::new();
                    n.on_closed(now, end.1, &CloseReason::PeerClosed, &mut out);
                    self.apply(end.0, out);
                }
            }
        }
    }

    /// Close both ends; only the other side hears about it.
    fn close_pair(&mut self, end: End) {
        self.read_bufs.remove(&end);
        if let Some(other) = self.links.remove(&end) {
            self.links.remove(&other);
            self.events.push_back(Event::Closed { end: other });
        }
    }

    /// The client half-closes right after what it sent: it still reads.
    pub fn client_half_close(&mut self, client: End) {
        let to = self.links[&client];
        self.events.push_back(Event::InputEnded { end: to });
    }

    /// The client closes its end right after what it sent (which the node
    /// still reads first, as over TCP).
    pub fn client_close(&mut self, client: End) {
        self.events.push_back(Event::CloseFrom { end: client });
    }

    pub fn client_closed(&self, client: End) -> bool {
        !self.links.contains_key(&client)
    }

    fn apply(&mut self, i: usize, out: Actions) {
        for (conn, bytes) in out.sent() {
            if let Some(other) = self.links.get(&(i, conn)) {
                self.events.push_back(Event::Data {
                    end: *other,
                    bytes: bytes.to_vec(),
                });
            }
        }
        for action in out.others() {
            match action {
                Action::Close(conn) => self.close_pair((i, *conn)),
                // What was sent before reaches the other end first.
                Action::CloseAfterFlush(conn) => {
                    self.events.push_back(Event::CloseFrom { end: (i, *conn) })
                }
                Action::Connect { addr, tag } => match self.by_addr.get(addr) {
                    Some(&j) => {
                        self.next_conn += 1;
                        let (a, b) = (self.next_conn, self.next_conn + 1);
                        self.next_conn += 1;
                        self.links.insert((i, a), (j, b));
                        self.links.insert((j, b), (i, a));
                        self.events.push_back(Event::Accept {
                            node: j,
                            conn: b,
                            listener: PEER_LISTENER,
                        });
                        self.events.push_back(Event::Connected {
                            node: i,
                            tag: *tag,
                            conn: a,
                        });
                    }
                    None => self
                        .events
                        .push_back(Event::ConnectFailed { node: i, tag: *tag }),
                },
                Action::Timer { after, token } => {
                    self.timer_seq += 1;
                    self.timers
                        .push(Reverse((self.now + *after, self.timer_seq, i, *token)));
                }
                Action::Print(_) => {}
                Action::Stop => {
                    // Stop after what was queued: the sends above are already in flight.
                    self.events.push_back(Event::Stop { node: i });
                }
            }
        }
    }
}
