//! The replica on the reactor: peer links (authenticated by a signed
//! HELLO), the client API, the write-ahead log and the clock tick.
//! Everything BPCon decides is in [`Replica`]; this file moves bytes.

use super::api::ApiMsg;
use super::crypto::{PrivateKey, PublicKey};
use super::messages::{hello_bytes, PeerMsg};
use super::op::{RequestId, MAX_OP_LEN};
use super::replica::{Dest, Output, Replica, CODE_FAILED, TICK_MS};
use super::wal::Wal;
use crate::reactor::{Actions, CloseReason, ConnId, ListenerId, Protocol};
use crate::wire::split_frame;
use log::{error, info, warn};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub const PEER_LISTENER: ListenerId = 0;
pub const API_LISTENER: ListenerId = 1;

const TICK_TOKEN: u64 = 0;
const RECONNECT_TOKEN: u64 = 1_000;
const RECONNECT_AFTER: Duration = Duration::from_millis(300);
/// Keys and values in a dump frame stay well under a frame.
const MAX_DUMP_FIELD: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    /// Accepted on the peer port; must say HELLO first.
    Unknown,
    /// A replica's authenticated link to us (we receive on it).
    From(usize),
    /// Our link to a replica (we send on it).
    To(usize),
    /// A client of the API, with its reply handle.
    Client(u64),
}

pub struct Node {
    replica: Replica,
    wal: Option<Wal>,
    peers: Vec<Option<SocketAddr>>,
    keys: Vec<PublicKey>,
    /// Our signed HELLO for each peer.
    hellos: Vec<Vec<u8>>,
    links: HashMap<ConnId, Link>,
    outgoing: Vec<Option<ConnId>>,
    clients: HashMap<u64, ConnId>,
    next_client: u64,
    /// Time spent in fsync and in handling events (for the benchmark).
    fsync_us: u64,
    busy_us: u64,
    started: Instant,
    failed: bool,
}

impl Node {
    pub fn new(
        replica: Replica,
        wal: Option<Wal>,
        peers: Vec<Option<SocketAddr>>,
        key: &PrivateKey,
        keys: Vec<PublicKey>,
    ) -> Node {
        let me = replica.name().to_string();
        let hellos = replica
            .group()
            .names
            .iter()
            .map(|to| key.sign(&hello_bytes(&me, to)))
            .collect();
        let n = peers.len();
        Node {
            replica,
            wal,
            peers,
            keys,
            hellos,
            links: HashMap::new(),
            outgoing: vec![None; n],
            clients: HashMap::new(),
            next_client: 1,
            fsync_us: 0,
            busy_us: 0,
            started: Instant::now(),
            failed: false,
        }
    }

    /// Carry out the replica's output: records to disk first, then the rest.
    fn flush(&mut self, out: &mut Actions) {
        let Output {
            persist,
            sends,
            replies,
        } = self.replica.take_output();
        if let Some(wal) = &mut self.wal {
            let started = Instant::now();
            if let Err(e) = wal.append(&persist) {
                // Answering without the record on disk could break a promise.
                error!("{e}; stopping");
                self.failed = true;
                out.stop();
                return;
            }
            self.fsync_us += started.elapsed().as_micros() as u64;
        }
        for (dest, msg) in sends {
            let frame = match msg.to_frame() {
                Ok(f) => f,
                Err(e) => {
                    warn!("not sending a message: {e}");
                    continue;
                }
            };
            match dest {
                Dest::Peer(p) => {
                    if let Some(conn) = self.outgoing[p] {
                        out.send(conn, &frame);
                    }
                }
                Dest::All => {
                    for conn in self.outgoing.iter().flatten() {
                        out.send(*conn, &frame);
                    }
                }
            }
        }
        for reply in replies {
            if let Some(&conn) = self.clients.get(&reply.client) {
                let msg = ApiMsg::Result {
                    client: reply.id.client,
                    seq: reply.id.seq,
                    code: reply.code,
                    message: reply.message,
                };
                out.send_with(conn, |o| msg.encode(o));
            }
        }
    }

    pub fn failed(&self) -> bool {
        self.failed
    }

    fn connect(&mut self, peer: usize, out: &mut Actions) {
        if let Some(addr) = self.peers[peer] {
            out.connect(addr, RECONNECT_TOKEN + peer as u64);
        }
    }

    fn on_hello(&mut self, conn: ConnId, msg: PeerMsg) -> Result<(), String> {
        let PeerMsg::Hello {
            from,
            to,
            signature,
        } = msg
        else {
            return Err("a peer link must start with HELLO".into());
        };
        if to != self.replica.name() {
            return Err(format!(
                "HELLO for '{to}', but this is '{}'",
                self.replica.name()
            ));
        }
        let Some(index) = self.replica.group().index(&from) else {
            return Err(format!("HELLO from '{from}', who is not in the group"));
        };
        if !self.keys[index].verify(&hello_bytes(&from, &to), &signature) {
            self.replica.stats.forged_rejected += 1;
            return Err(format!(
                "forged HELLO claiming to be '{from}': signature does not verify"
            ));
        }
        info!("link from {from} authenticated");
        self.links.insert(conn, Link::From(index));
        Ok(())
    }

    fn on_peer_data(&mut self, conn: ConnId, link: Link, data: &[u8]) -> Result<usize, String> {
        let n = self.replica.group().n();
        let mut used = 0;
        let mut link = link;
        while let Some(frame) = split_frame(&data[used..]).map_err(|e| e.to_string())? {
            used += frame.len;
            let msg = PeerMsg::decode(frame.kind, frame.body, n)?;
            match link {
                Link::Unknown => {
                    self.on_hello(conn, msg)?;
                    link = self.links[&conn];
                }
                Link::From(peer) => self.replica.on_peer(peer, msg),
                _ => {} // replicas answer on their own links
            }
        }
        Ok(used)
    }

    fn on_client_data(
        &mut self,
        handle: u64,
        conn: ConnId,
        data: &[u8],
        out: &mut Actions,
    ) -> Result<usize, String> {
        let mut used = 0;
        while let Some(frame) = split_frame(&data[used..]).map_err(|e| e.to_string())? {
            used += frame.len;
            match ApiMsg::decode(frame.kind, frame.body)? {
                ApiMsg::Request { client, seq, text } => {
                    let id = RequestId { client, seq };
                    if text.len() > MAX_OP_LEN {
                        let msg = ApiMsg::Result {
                            client,
                            seq,
                            code: CODE_FAILED,
                            message: format!(
                                "bad request: operation of {} bytes is over the {MAX_OP_LEN}-byte limit",
                                text.len()
                            ),
                        };
                        out.send_with(conn, |o| msg.encode(o));
                        continue;
                    }
                    match std::str::from_utf8(&text) {
                        Ok(text) => self.replica.submit(handle, id, text),
                        Err(_) => {
                            let msg = ApiMsg::Result {
                                client,
                                seq,
                                code: CODE_FAILED,
                                message: "bad request: operation is not UTF-8".into(),
                            };
                            out.send_with(conn, |o| msg.encode(o));
                        }
                    }
                }
                ApiMsg::Get { key } => {
                    let value = self.replica.store().kv.get(&key).cloned();
                    out.send_with(conn, |o| ApiMsg::Value { value }.encode(o));
                }
                ApiMsg::Dump => {
                    let store = self.replica.store();
                    let mut entries = 0;
                    for (key, value) in &store.kv {
                        if key.len() + value.len() > MAX_DUMP_FIELD {
                            continue;
                        }
                        entries += 1;
                        let msg = ApiMsg::DumpEntry {
                            key: key.clone(),
                            value: value.clone(),
                        };
                        out.send_with(conn, |o| msg.encode(o));
                    }
                    let end = ApiMsg::DumpEnd {
                        entries,
                        committed: store.log.len() as u64,
                        digest: store.log_digest(),
                    };
                    out.send_with(conn, |o| end.encode(o));
                }
                other => return Err(format!("a client may not send {other:?}")),
            }
        }
        Ok(used)
    }

    fn state_line(&self) -> String {
        let mut state = self.replica.state_json();
        state["fsync_us"] = self.fsync_us.into();
        state["busy_us"] = self.busy_us.into();
        state["uptime_us"] = (self.started.elapsed().as_micros() as u64).into();
        let links: Vec<&str> = (0..self.outgoing.len())
            .filter(|&p| self.outgoing[p].is_some())
            .map(|p| self.replica.group().names[p].as_str())
            .collect();
        state["links"] = serde_json::json!(links);
        state.to_string()
    }
}

impl Protocol for Node {
    fn on_start(&mut self, out: &mut Actions) {
        for peer in 0..self.peers.len() {
            self.connect(peer, out);
        }
        out.timer(Duration::from_millis(TICK_MS), TICK_TOKEN);
    }

    fn on_accept(
        &mut self,
        listener: ListenerId,
        conn: ConnId,
        peer: SocketAddr,
        _out: &mut Actions,
    ) {
        let link = if listener == API_LISTENER {
            let handle = self.next_client;
            self.next_client += 1;
            self.clients.insert(handle, conn);
            info!("client {peer} connected");
            Link::Client(handle)
        } else {
            Link::Unknown
        };
        self.links.insert(conn, link);
    }

    fn on_connected(&mut self, tag: u64, conn: ConnId, out: &mut Actions) {
        let peer = (tag - RECONNECT_TOKEN) as usize;
        let me = self.replica.name().to_string();
        let to = self.replica.group().names[peer].clone();
        let hello = PeerMsg::Hello {
            from: me,
            to: to.clone(),
            signature: self.hellos[peer].clone(),
        };
        if let Ok(frame) = hello.to_frame() {
            out.send(conn, &frame);
        }
        info!("link to {to} up");
        self.links.insert(conn, Link::To(peer));
        self.outgoing[peer] = Some(conn);
        self.replica.on_peer_up(peer);
        self.flush(out);
    }

    fn on_connect_failed(&mut self, tag: u64, _error: &str, out: &mut Actions) {
        out.timer(RECONNECT_AFTER, tag);
    }

    fn on_data(&mut self, conn: ConnId, data: &[u8], out: &mut Actions) -> Result<usize, String> {
        let started = Instant::now();
        let Some(&link) = self.links.get(&conn) else {
            return Ok(data.len());
        };
        let result = match link {
            Link::Client(handle) => self.on_client_data(handle, conn, data, out),
            _ => self.on_peer_data(conn, link, data),
        };
        self.flush(out);
        self.busy_us += started.elapsed().as_micros() as u64;
        if let Err(why) = &result {
            let who = match link {
                Link::From(p) | Link::To(p) => format!("replica {}", self.replica.group().names[p]),
                Link::Client(_) => "a client".into(),
                Link::Unknown => "an unauthenticated peer".into(),
            };
            warn!("closing the link with {who}: {why}");
        }
        result
    }

    fn on_closed(&mut self, conn: ConnId, reason: &CloseReason, out: &mut Actions) {
        match self.links.remove(&conn) {
            Some(Link::To(peer)) => {
                info!(
                    "link to {} down ({reason:?})",
                    self.replica.group().names[peer]
                );
                self.outgoing[peer] = None;
                out.timer(RECONNECT_AFTER, RECONNECT_TOKEN + peer as u64);
            }
            Some(Link::Client(handle)) => {
                self.clients.remove(&handle);
            }
            _ => {}
        }
    }

    fn on_timer(&mut self, token: u64, out: &mut Actions) {
        if token == TICK_TOKEN {
            let started = Instant::now();
            self.replica.on_tick();
            self.flush(out);
            self.busy_us += started.elapsed().as_micros() as u64;
            out.timer(Duration::from_millis(TICK_MS), TICK_TOKEN);
        } else if token >= RECONNECT_TOKEN {
            let peer = (token - RECONNECT_TOKEN) as usize;
            if peer < self.outgoing.len() && self.outgoing[peer].is_none() {
                self.connect(peer, out);
            }
        }
    }

    fn on_stdin_line(&mut self, line: &str, out: &mut Actions) {
        match line.trim() {
            "state" => out.print(self.state_line()),
            "quit" => out.stop(),
            "" => {}
            other => out.print(format!("unknown command '{other}': state, quit")),
        }
    }

    fn on_stdin_closed(&mut self, _out: &mut Actions) {}
}
