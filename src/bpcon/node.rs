//! The replica on the reactor: peer links (authenticated by a
//! challenge-response handshake, see `messages`), the client API, the
//! write-ahead log and the clock tick. Everything BPCon decides is in
//! [`Replica`]; this file moves bytes.

use super::api::ApiMsg;
use super::crypto::{PrivateKey, PublicKey};
use super::mac::{LinkKey, LinkMac, KEY_LEN};
use super::messages::{hello_bytes, welcome_bytes, Nonce, PeerMsg, MAC, NONCE_LEN};
use super::op::{RequestId, MAX_OP_LEN};
use super::replica::{Dest, Output, Replica, CODE_FAILED, TICK_MS};
use super::storage::Storage;
use crate::cli_words::plain_error;
use crate::logging::RepeatedWarning;
use crate::reactor::{CloseReason, ConnId, ListenerId, Out, Protocol};
use crate::wire::split_frame;
use log::{error, info, warn};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub const PEER_LISTENER: ListenerId = 0;
pub const API_LISTENER: ListenerId = 1;

/// A replica node's timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// The replica's periodic tick (time-outs, retries, handshake expiry).
    Tick,
    /// Dial replica `peer` again.
    Reconnect(usize),
}

/// What an outgoing connection is for: the index of the replica dialled.
pub type PeerIndex = usize;

/// The actions list the node fills.
type NodeOut = Out<Node>;
const RECONNECT_AFTER: Duration = Duration::from_millis(300);
/// Keys and values in a dump frame stay well under a frame.
const MAX_DUMP_FIELD: usize = 16 * 1024;
/// A link whose handshake has not completed after this many ticks (10 s)
/// is closed: strangers cannot hold the peer port's connections.
const HANDSHAKE_TICKS: u64 = 1000;
/// A peer we cannot reach is reported at most this often.
const UNREACHABLE_EVERY: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    /// Accepted on the peer port; we sent this challenge and wait for HELLO.
    Challenged(Nonce),
    /// A replica's authenticated link to us (we receive on it).
    From(usize),
    /// Our connection to a replica, waiting for its challenge.
    Dialing(usize),
    /// We sent HELLO with our nonce (and its challenge) and the link key;
    /// waiting for WELCOME.
    Greeted(usize, Nonce, Nonce, LinkKey),
    /// Our authenticated link to a replica (we send on it).
    To(usize),
    /// A client of the API, with its reply handle.
    Client(u64),
}

/// A fresh handshake nonce.
fn fresh_nonce(rng: &mut StdRng) -> Nonce {
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut nonce);
    nonce
}

/// A fresh link key, likewise.
fn fresh_key(rng: &mut StdRng) -> LinkKey {
    let mut key = [0u8; KEY_LEN];
    rng.fill_bytes(&mut key);
    key
}

/// Something that sits between the replica and its links and may rewrite
/// what the replica sends: the hook a test adversary
/// ([`super::byzantine::Adversary`]) uses. Honest nodes have none.
pub trait OutputFilter {
    /// Rewrite `sends` (the replica is at `slot`; `on_tick` on a clock tick).
    fn filter(&mut self, slot: u64, sends: &mut Vec<(Dest, PeerMsg)>, on_tick: bool);
    /// What it does, for the `state` line.
    fn name(&self) -> &'static str;
}

pub struct Node {
    replica: Replica,
    storage: Option<Box<dyn Storage>>,
    /// Nonces and link keys: from the operating system's random source,
    /// or from a seed in the simulator (see [`Node::with_seed`]).
    rng: StdRng,
    filter: Option<Box<dyn OutputFilter>>,
    peers: Vec<Option<SocketAddr>>,
    key: PrivateKey,
    keys: Vec<PublicKey>,
    links: HashMap<ConnId, Link>,
    outgoing: Vec<Option<ConnId>>,
    clients: HashMap<u64, ConnId>,
    next_client: u64,
    /// Time spent in fsync and in handling events, and since start (for the
    /// benchmark's breakdown). These are the one wall-clock reads here on
    /// purpose: they measure what the work costs on this machine, never
    /// decide anything, and no check or transcript reads them.
    fsync_us: u64,
    busy_us: u64,
    started: Instant,
    failed: bool,
    /// Links to a quorum are up (announced once on standard output).
    joined: bool,
    announced_join: bool,
    /// Rate limits: per unreachable peer, and per kind of closed link.
    unreachable: Vec<RepeatedWarning>,
    closing: HashMap<String, RepeatedWarning>,
    /// Links still in their handshake, with the tick it started.
    handshakes: HashMap<ConnId, u64>,
    /// MAC state of our authenticated link to each peer, and of each
    /// authenticated link from a peer.
    send_macs: Vec<Option<LinkMac>>,
    recv_macs: HashMap<ConnId, LinkMac>,
}

impl Node {
    pub fn new(
        replica: Replica,
        storage: Option<Box<dyn Storage>>,
        peers: Vec<Option<SocketAddr>>,
        key: &PrivateKey,
        keys: Vec<PublicKey>,
    ) -> Node {
        let n = peers.len();
        Node {
            replica,
            storage,
            rng: StdRng::from_entropy(),
            filter: None,
            peers,
            key: key.clone(),
            keys,
            links: HashMap::new(),
            outgoing: vec![None; n],
            clients: HashMap::new(),
            next_client: 1,
            fsync_us: 0,
            busy_us: 0,
            started: Instant::now(),
            failed: false,
            joined: false,
            announced_join: false,
            unreachable: vec![RepeatedWarning::new(UNREACHABLE_EVERY); n],
            closing: HashMap::new(),
            handshakes: HashMap::new(),
            send_macs: vec![None; n],
            recv_macs: HashMap::new(),
        }
    }

    /// Draw nonces and link keys from `seed` (deterministic runs in the
    /// simulator; a real replica keeps the operating system's randomness).
    pub fn with_seed(mut self, seed: u64) -> Node {
        self.rng = StdRng::seed_from_u64(seed);
        self
    }

    /// Pass everything the replica sends through `filter` (tests only: a
    /// Byzantine adversary).
    pub fn with_filter(mut self, filter: Box<dyn OutputFilter>) -> Node {
        self.filter = Some(filter);
        self
    }

    pub fn replica(&self) -> &Replica {
        &self.replica
    }

    /// Replace the output filter (tests).
    #[cfg(test)]
    pub fn set_filter(&mut self, filter: Box<dyn OutputFilter>) {
        self.filter = Some(filter);
    }

    #[cfg(test)]
    pub fn replica_mut(&mut self) -> &mut Replica {
        &mut self.replica
    }

    /// The peers this node has an authenticated link to (it sends on it).
    pub fn links_up(&self) -> Vec<usize> {
        (0..self.outgoing.len())
            .filter(|&p| self.outgoing[p].is_some())
            .collect()
    }

    /// Close links whose handshake did not complete in time.
    fn expire_handshakes(&mut self, now_at: Instant, out: &mut NodeOut) {
        let now = self.replica.tick();
        let stale: Vec<ConnId> = self
            .handshakes
            .iter()
            .filter(|(_, started)| now.saturating_sub(**started) >= HANDSHAKE_TICKS)
            .map(|(conn, _)| *conn)
            .collect();
        for conn in stale {
            self.handshakes.remove(&conn);
            let limiter = self
                .closing
                .entry("a peer that never completed its handshake".into())
                .or_insert_with(RepeatedWarning::per_second);
            crate::warn_repeated!(
                limiter,
                now_at,
                "closing a link whose handshake did not complete within {} s",
                HANDSHAKE_TICKS * TICK_MS / 1000
            );
            out.close(conn);
        }
    }

    fn name(&self, peer: usize) -> &str {
        &self.replica.group().names[peer]
    }

    /// Print one line when links to a quorum come up, warn when they are lost.
    fn check_joined(&mut self, out: &mut NodeOut) {
        let group = self.replica.group();
        let up: Vec<&str> = (0..self.outgoing.len())
            .filter(|&p| self.outgoing[p].is_some())
            .map(|p| group.names[p].as_str())
            .collect();
        let joined = up.len() + 1 >= group.quorum;
        if joined && !self.joined {
            let with = if up.is_empty() {
                "alone (n = 1)".to_string()
            } else {
                format!("links up to {}", up.join(","))
            };
            let line = format!(
                "replica {}: {} the group: {with}, a quorum of {} of {} replicas",
                self.replica.name(),
                if self.announced_join {
                    "back in"
                } else {
                    "joined"
                },
                group.quorum,
                group.n()
            );
            info!("{line}");
            out.print(line);
            self.announced_join = true;
        } else if !joined && self.joined {
            warn!(
                "replica {}: links up to {} of {} peers only: below a quorum of {}, nothing can commit until more are back",
                self.replica.name(),
                up.len(),
                group.n() - 1,
                group.quorum
            );
        }
        self.joined = joined;
    }

    /// Carry out the replica's output: records to disk first, then the rest.
    fn flush(&mut self, out: &mut NodeOut, on_tick: bool) {
        let Output {
            persist,
            mut sends,
            replies,
        } = self.replica.take_output();
        if let Some(filter) = &mut self.filter {
            filter.filter(self.replica.slot(), &mut sends, on_tick);
        }
        if let Some(storage) = &mut self.storage {
            let started = Instant::now();
            if let Err(e) = storage.append(&persist) {
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
            let peers = match dest {
                Dest::Peer(p) => p..p + 1,
                Dest::All => 0..self.outgoing.len(),
            };
            for p in peers {
                if let (Some(conn), Some(mac)) = (self.outgoing[p], self.send_macs[p].as_mut()) {
                    out.send(conn, &frame);
                    if let Ok(tag) = (PeerMsg::Mac {
                        tag: mac.tag(&frame),
                    })
                    .to_frame()
                    {
                        out.send(conn, &tag);
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

    fn connect(&mut self, peer: usize, out: &mut NodeOut) {
        if let Some(addr) = self.peers[peer] {
            out.connect(addr, peer);
        }
    }

    /// The accepting side: the HELLO must name both ends and be signed
    /// over the challenge we sent on this connection.
    fn on_hello(
        &mut self,
        conn: ConnId,
        challenge: &Nonce,
        msg: PeerMsg,
        out: &mut NodeOut,
    ) -> Result<(), String> {
        let PeerMsg::Hello {
            from,
            to,
            nonce,
            sealed_key,
            signature,
        } = msg
        else {
            return Err("a peer link must start with HELLO".into());
        };
        let me = self.replica.name().to_string();
        if to != me {
            return Err(format!("HELLO for '{to}', but this is '{me}'"));
        }
        let Some(index) = self.replica.group().index(&from) else {
            return Err(format!("HELLO from '{from}', who is not in the group"));
        };
        if from == me {
            return Err(format!(
                "HELLO from '{from}', which is this replica's own name"
            ));
        }
        if crate::sim::bugs::seeded("bpcon.replayable-hello") {
            let zero = [0u8; NONCE_LEN];
            let old = hello_bytes(&from, &to, &zero, &zero, &[]);
            if self.keys[index].verify(&old, &signature) {
                // The seed's bug: a signature over the names alone (no
                // challenge, no link key, no MACs) authenticates the link.
                self.handshakes.remove(&conn);
                self.links.insert(conn, Link::From(index));
                return Ok(());
            }
        }
        let signed = hello_bytes(&from, &to, challenge, &nonce, &sealed_key);
        if !self.keys[index].verify(&signed, &signature) {
            self.replica.stats.forged_rejected += 1;
            return Err(format!(
                "forged or replayed HELLO claiming to be '{from}': its signature does not cover this connection's challenge"
            ));
        }
        let key: LinkKey = self
            .key
            .open(&sealed_key)?
            .try_into()
            .map_err(|_| format!("HELLO from '{from}' seals a link key of the wrong size"))?;
        info!("link from {from} authenticated");
        self.handshakes.remove(&conn);
        self.recv_macs.insert(conn, LinkMac::new(key));
        self.links.insert(conn, Link::From(index));
        let welcome = PeerMsg::Welcome {
            signature: self.key.sign(&welcome_bytes(&me, &from, &nonce, challenge)),
        };
        if let Ok(frame) = welcome.to_frame() {
            out.send(conn, &frame);
        }
        Ok(())
    }

    /// The connecting side: answer the challenge with a signed HELLO that
    /// carries a challenge of our own.
    fn on_challenge(
        &mut self,
        conn: ConnId,
        peer: usize,
        msg: PeerMsg,
        out: &mut NodeOut,
    ) -> Result<(), String> {
        let PeerMsg::Challenge { nonce: challenge } = msg else {
            return Err("a replica must send its challenge first".into());
        };
        let me = self.replica.name().to_string();
        let to = self.name(peer).to_string();
        let nonce = fresh_nonce(&mut self.rng);
        let key = fresh_key(&mut self.rng);
        let sealed_key = self.keys[peer].seal_with(&mut self.rng, &key)?;
        let hello = PeerMsg::Hello {
            signature: self
                .key
                .sign(&hello_bytes(&me, &to, &challenge, &nonce, &sealed_key)),
            from: me,
            to,
            nonce,
            sealed_key,
        };
        if let Ok(frame) = hello.to_frame() {
            out.send(conn, &frame);
        }
        self.links
            .insert(conn, Link::Greeted(peer, nonce, challenge, key));
        Ok(())
    }

    /// The connecting side: the replica we dialled proves it holds its key.
    fn on_welcome(
        &mut self,
        conn: ConnId,
        peer: usize,
        (nonce, challenge, key): (&Nonce, &Nonce, LinkKey),
        msg: PeerMsg,
        out: &mut NodeOut,
    ) -> Result<(), String> {
        let PeerMsg::Welcome { signature } = msg else {
            return Err("a replica must answer HELLO with WELCOME".into());
        };
        let me = self.replica.name().to_string();
        let to = self.name(peer).to_string();
        if !self.keys[peer].verify(&welcome_bytes(&to, &me, nonce, challenge), &signature) {
            self.replica.stats.forged_rejected += 1;
            return Err(format!(
                "forged or replayed WELCOME from the replica at {to}'s address: its signature does not verify"
            ));
        }
        info!("link to {to} up (authenticated)");
        self.handshakes.remove(&conn);
        self.links.insert(conn, Link::To(peer));
        if let Some(old) = self.outgoing[peer].replace(conn) {
            out.close(old);
        }
        self.send_macs[peer] = Some(LinkMac::new(key));
        self.replica.on_peer_up(peer);
        self.check_joined(out);
        Ok(())
    }

    fn on_peer_data(
        &mut self,
        conn: ConnId,
        data: &[u8],
        out: &mut NodeOut,
    ) -> Result<usize, String> {
        let n = self.replica.group().n();
        let mut used = 0;
        while let Some(frame) = split_frame(&data[used..]).map_err(|e| e.to_string())? {
            let Some(&link) = self.links.get(&conn) else {
                break;
            };
            if let Link::From(peer) = link {
                if crate::sim::bugs::seeded("bpcon.replayable-hello")
                    && !self.recv_macs.contains_key(&conn)
                {
                    used += frame.len;
                    let msg = PeerMsg::decode(frame.kind, frame.body, n)?;
                    self.replica.on_peer(peer, msg);
                    continue;
                }
                // A frame counts only with the MAC frame that follows it.
                let bytes = &data[used..used + frame.len];
                let Some(mac) =
                    split_frame(&data[used + frame.len..]).map_err(|e| e.to_string())?
                else {
                    break; // wait for it
                };
                let tag = match PeerMsg::decode(mac.kind, mac.body, n) {
                    Ok(PeerMsg::Mac { tag }) if mac.kind == MAC => tag,
                    _ => return Err("a frame without its MAC".into()),
                };
                let verified = self
                    .recv_macs
                    .get_mut(&conn)
                    .is_some_and(|m| m.check(bytes, &tag));
                if !verified {
                    self.replica.stats.forged_rejected += 1;
                    return Err(
                        "a frame whose MAC does not verify (injected, replayed or reordered)"
                            .into(),
                    );
                }
                used += frame.len + mac.len;
                let msg = PeerMsg::decode(frame.kind, frame.body, n)?;
                if matches!(
                    msg,
                    PeerMsg::Challenge { .. }
                        | PeerMsg::Hello { .. }
                        | PeerMsg::Welcome { .. }
                        | PeerMsg::Mac { .. }
                ) {
                    return Err("a handshake message after the handshake".into());
                }
                self.replica.on_peer(peer, msg);
                continue;
            }
            used += frame.len;
            let msg = PeerMsg::decode(frame.kind, frame.body, n)?;
            match link {
                Link::Challenged(challenge) => self.on_hello(conn, &challenge, msg, out)?,
                Link::Dialing(peer) => self.on_challenge(conn, peer, msg, out)?,
                Link::Greeted(peer, nonce, challenge, key) => {
                    self.on_welcome(conn, peer, (&nonce, &challenge, key), msg, out)?
                }
                // Replicas answer on their own links.
                Link::From(_) | Link::To(_) | Link::Client(_) => {}
            }
        }
        Ok(used)
    }

    fn on_client_data(
        &mut self,
        handle: u64,
        conn: ConnId,
        data: &[u8],
        out: &mut NodeOut,
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
                ApiMsg::Info => {
                    let group = self.replica.group();
                    let links = self.outgoing.iter().flatten().count();
                    let msg = ApiMsg::Group {
                        n: group.n() as u8,
                        f: group.f as u8,
                        quorum: group.quorum as u8,
                        links: links as u8,
                    };
                    out.send_with(conn, |o| msg.encode(o));
                }
                other => return Err(format!("a client may not send {other:?}")),
            }
        }
        Ok(used)
    }

    #[cfg(test)]
    pub fn state_line_for_tests(&self) -> String {
        self.state_line()
    }

    fn state_line(&self) -> String {
        let mut state = self.replica.state_json();
        state["fsync_us"] = self.fsync_us.into();
        state["busy_us"] = self.busy_us.into();
        state["uptime_us"] = (self.started.elapsed().as_micros() as u64).into();
        let links: Vec<&str> = (0..self.outgoing.len())
            .filter(|&p| self.outgoing[p].is_some())
            .map(|p| self.name(p))
            .collect();
        state["links"] = serde_json::json!(links);
        state["byzantine"] = self.filter.as_ref().map(|f| f.name()).into();
        state.to_string()
    }
}

impl Node {
    fn flush_warnings(&mut self, now: Instant) {
        for (peer, limiter) in self.unreachable.iter_mut().enumerate() {
            if let Some(held) = limiter.flush(now) {
                warn!(
                    "still cannot reach replica {} ({held} more failed attempts)",
                    self.replica.group().names[peer]
                );
            }
        }
        for (who, limiter) in self.closing.iter_mut() {
            if let Some(held) = limiter.flush(now) {
                warn!("closed {held} more links with {who} since the last report");
            }
        }
    }
}

impl Protocol for Node {
    type Timer = Timer;
    type Tag = PeerIndex;

    fn on_start(&mut self, _now: Instant, out: &mut Out<Self>) {
        for peer in 0..self.peers.len() {
            self.connect(peer, out);
        }
        self.check_joined(out);
        out.timer(Duration::from_millis(TICK_MS), Timer::Tick);
    }

    fn on_accept(
        &mut self,
        _now: Instant,
        listener: ListenerId,
        conn: ConnId,
        peer: SocketAddr,
        out: &mut Out<Self>,
    ) {
        let link = if listener == API_LISTENER {
            let handle = self.next_client;
            self.next_client += 1;
            self.clients.insert(handle, conn);
            info!("client {peer} connected");
            Link::Client(handle)
        } else {
            let nonce = fresh_nonce(&mut self.rng);
            if let Ok(frame) = (PeerMsg::Challenge { nonce }).to_frame() {
                out.send(conn, &frame);
            }
            self.handshakes.insert(conn, self.replica.tick());
            Link::Challenged(nonce)
        };
        self.links.insert(conn, link);
    }

    fn on_connected(&mut self, _now: Instant, tag: Self::Tag, conn: ConnId, _out: &mut Out<Self>) {
        let peer = tag;
        info!(
            "connected to {}; waiting for its challenge",
            self.name(peer)
        );
        self.handshakes.insert(conn, self.replica.tick());
        self.links.insert(conn, Link::Dialing(peer));
    }

    fn on_connect_failed(
        &mut self,
        now: Instant,
        tag: Self::Tag,
        error: &str,
        out: &mut Out<Self>,
    ) {
        let peer = tag;
        if let Some(addr) = self.peers.get(peer).copied().flatten() {
            let name = self.replica.group().names[peer].clone();
            crate::warn_repeated!(
                self.unreachable[peer],
                now,
                "cannot reach replica {name} at {addr}: {}; retrying every {} ms",
                plain_error(error),
                RECONNECT_AFTER.as_millis()
            );
        }
        out.timer(RECONNECT_AFTER, Timer::Reconnect(peer));
    }

    fn on_data(
        &mut self,
        now: Instant,
        conn: ConnId,
        data: &[u8],
        out: &mut Out<Self>,
    ) -> Result<usize, String> {
        let started = Instant::now();
        let Some(&link) = self.links.get(&conn) else {
            return Ok(data.len());
        };
        let result = match link {
            Link::Client(handle) => self.on_client_data(handle, conn, data, out),
            _ => self.on_peer_data(conn, data, out),
        };
        self.flush(out, false);
        self.busy_us += started.elapsed().as_micros() as u64;
        if let Err(why) = &result {
            let who = match link {
                Link::From(p) | Link::To(p) => format!("replica {}", self.name(p)),
                Link::Dialing(p) | Link::Greeted(p, _, _, _) => {
                    format!("the replica at {}'s address", self.name(p))
                }
                Link::Client(_) => "a client".into(),
                Link::Challenged(_) => "an unauthenticated peer".into(),
            };
            // Bounded: one limiter per replica name and per kind of stranger.
            let limiter = self
                .closing
                .entry(who.clone())
                .or_insert_with(RepeatedWarning::per_second);
            crate::warn_repeated!(limiter, now, "closing the link with {who}: {why}");
        }
        result
    }

    fn on_closed(&mut self, now: Instant, conn: ConnId, reason: &CloseReason, out: &mut Out<Self>) {
        self.handshakes.remove(&conn);
        self.recv_macs.remove(&conn);
        match self.links.remove(&conn) {
            Some(Link::To(peer)) => {
                info!("link to {} down ({reason})", self.name(peer));
                if self.outgoing[peer] == Some(conn) {
                    self.outgoing[peer] = None;
                    self.send_macs[peer] = None;
                    out.timer(RECONNECT_AFTER, Timer::Reconnect(peer));
                }
                self.check_joined(out);
            }
            Some(Link::Dialing(peer)) | Some(Link::Greeted(peer, _, _, _)) => {
                let addr = self.peers[peer].map(|a| a.to_string()).unwrap_or_default();
                let name = self.name(peer).to_string();
                crate::warn_repeated!(
                    self.unreachable[peer],
                    now,
                    "cannot reach replica {name} at {addr}: the handshake did not complete ({reason}); retrying every {} ms",
                    RECONNECT_AFTER.as_millis()
                );
                if self.outgoing[peer].is_none() {
                    out.timer(RECONNECT_AFTER, Timer::Reconnect(peer));
                }
            }
            Some(Link::Client(handle)) => {
                self.clients.remove(&handle);
            }
            _ => {}
        }
    }

    fn on_timer(&mut self, now: Instant, timer: Timer, out: &mut Out<Self>) {
        if timer == Timer::Tick {
            let started = Instant::now();
            self.replica.on_tick();
            self.flush(out, true);
            if self.replica.tick().is_multiple_of(100) {
                self.flush_warnings(now);
                self.expire_handshakes(now, out);
            }
            self.busy_us += started.elapsed().as_micros() as u64;
            out.timer(Duration::from_millis(TICK_MS), Timer::Tick);
        } else if let Timer::Reconnect(peer) = timer {
            if peer < self.outgoing.len() && self.outgoing[peer].is_none() {
                self.connect(peer, out);
            }
        }
    }

    fn on_stdin_line(&mut self, _now: Instant, line: &str, out: &mut Out<Self>) {
        // (the `state` line's "links" lists authenticated links only)
        match line.trim() {
            "state" => out.print(self.state_line()),
            "quit" => out.stop(),
            "" => {}
            other => out.print(format!("unknown command '{other}': state, quit")),
        }
    }

    fn on_stdin_closed(&mut self, _now: Instant, _out: &mut Out<Self>) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bpcon::crypto::tests::test_keys;
    use crate::bpcon::group::Group;
    use crate::bpcon::replica::Config;
    use crate::reactor::Actions;

    /// The reactor's handle for a connection (one place to adapt if it changes).
    fn conn(n: usize) -> ConnId {
        n
    }

    fn node(me: usize) -> Node {
        let group = Group::new(vec!["A".into(), "B".into()]).unwrap();
        let keys = test_keys(2);
        let public: Vec<PublicKey> = keys.iter().map(|k| k.public()).collect();
        let replica = Replica::new(
            Config {
                group,
                me,
                key: keys[me].clone(),
                keys: public.clone(),
                seed: 1,
            },
            Vec::new(),
        );
        let peers = vec![Some("127.0.0.1:1".parse().unwrap()); 2];
        Node::new(replica, None, peers, &keys[me], public)
    }

    fn sent(out: &NodeOut, to: ConnId) -> Vec<u8> {
        out.sent()
            .into_iter()
            .filter(|(c, _)| *c == to)
            .flat_map(|(_, b)| b.to_vec())
            .collect()
    }

    fn first_frame(bytes: &[u8]) -> PeerMsg {
        let frame = split_frame(bytes).unwrap().unwrap();
        PeerMsg::decode(frame.kind, frame.body, 2).unwrap()
    }

    /// B dials A: A's challenge, B's HELLO, A's WELCOME. Returns the frames.
    fn handshake(a: &mut Node, b: &mut Node, at_a: ConnId, at_b: ConnId) -> (Vec<u8>, Vec<u8>) {
        let addr: SocketAddr = "127.0.0.1:2".parse().unwrap();
        let mut out = Actions::new();
        a.on_accept(Instant::now(), PEER_LISTENER, at_a, addr, &mut out);
        let challenge = sent(&out, at_a);
        assert!(matches!(first_frame(&challenge), PeerMsg::Challenge { .. }));
        let mut out = Actions::new();
        b.on_connected(Instant::now(), 0, at_b, &mut out);
        assert_eq!(
            b.on_data(Instant::now(), at_b, &challenge, &mut out),
            Ok(challenge.len())
        );
        let hello = sent(&out, at_b);
        assert!(matches!(first_frame(&hello), PeerMsg::Hello { .. }));
        let mut out = Actions::new();
        assert_eq!(
            a.on_data(Instant::now(), at_a, &hello, &mut out),
            Ok(hello.len())
        );
        let welcome = sent(&out, at_a);
        assert!(matches!(first_frame(&welcome), PeerMsg::Welcome { .. }));
        let mut out = Actions::new();
        assert_eq!(
            b.on_data(Instant::now(), at_b, &welcome, &mut out),
            Ok(welcome.len())
        );
        // B's first frames on the new link (its STATUS), MACs and all.
        let after = sent(&out, at_b);
        assert!(!after.is_empty());
        let mut out = Actions::new();
        assert_eq!(
            a.on_data(Instant::now(), at_a, &after, &mut out),
            Ok(after.len())
        );
        (hello, welcome)
    }

    #[test]
    fn both_ends_authenticate_and_a_recorded_handshake_is_worthless() {
        let (mut a, mut b) = (node(0), node(1));
        let (hello, welcome) = handshake(&mut a, &mut b, conn(5), conn(6));
        assert_eq!(a.links[&conn(5)], Link::From(1));
        assert_eq!(b.links[&conn(6)], Link::To(0));
        assert_eq!(b.outgoing[0], Some(conn(6)));

        // Someone who recorded B's HELLO replays it on a new connection: A
        // challenged that one with a fresh nonce, so it does not verify.
        let mut out = Actions::new();
        a.on_accept(
            Instant::now(),
            PEER_LISTENER,
            conn(7),
            "127.0.0.1:3".parse().unwrap(),
            &mut out,
        );
        let err = a
            .on_data(Instant::now(), conn(7), &hello, &mut out)
            .unwrap_err();
        assert!(err.contains("replayed HELLO"), "{err}");
        assert!(!matches!(a.links.get(&conn(7)), Some(Link::From(_))));

        // Someone posing as A at A's address replays A's WELCOME to B.
        let mut fake_a = node(0);
        let mut out = Actions::new();
        fake_a.on_accept(
            Instant::now(),
            PEER_LISTENER,
            conn(8),
            "127.0.0.1:4".parse().unwrap(),
            &mut out,
        );
        let challenge = sent(&out, conn(8));
        let mut out = Actions::new();
        b.on_connected(Instant::now(), 0, conn(9), &mut out);
        b.on_data(Instant::now(), conn(9), &challenge, &mut out)
            .unwrap();
        let err = b
            .on_data(Instant::now(), conn(9), &welcome, &mut out)
            .unwrap_err();
        assert!(err.contains("WELCOME"), "{err}");
        assert_ne!(b.links.get(&conn(9)), Some(&Link::To(0)));
    }

    #[test]
    fn nothing_but_the_handshake_is_taken_before_it_completes() {
        let mut a = node(0);
        let mut out = Actions::new();
        a.on_accept(
            Instant::now(),
            PEER_LISTENER,
            conn(1),
            "127.0.0.1:3".parse().unwrap(),
            &mut out,
        );
        // A protocol message instead of HELLO closes the link.
        let status = PeerMsg::Status {
            committed: 5,
            max_ballot: None,
        }
        .to_frame()
        .unwrap();
        assert!(a
            .on_data(Instant::now(), conn(1), &status, &mut out)
            .is_err());
        // And a HELLO in the name of the replica itself.
        let mut out = Actions::new();
        a.on_accept(
            Instant::now(),
            PEER_LISTENER,
            conn(2),
            "127.0.0.1:3".parse().unwrap(),
            &mut out,
        );
        let PeerMsg::Challenge { nonce: challenge } = first_frame(&sent(&out, conn(2))) else {
            panic!("no challenge");
        };
        let nonce = fresh_nonce(&mut StdRng::seed_from_u64(3));
        let sealed_key = test_keys(1)[0].public().seal(&[1; 32]).unwrap();
        let hello = PeerMsg::Hello {
            from: "A".into(),
            to: "A".into(),
            nonce,
            signature: test_keys(1)[0].sign(&hello_bytes(
                "A",
                "A",
                &challenge,
                &nonce,
                &sealed_key,
            )),
            sealed_key,
        }
        .to_frame()
        .unwrap();
        assert!(a
            .on_data(Instant::now(), conn(2), &hello, &mut out)
            .is_err());
    }

    #[test]
    fn a_handshake_that_never_completes_is_closed() {
        let mut a = node(0);
        let mut out = Actions::new();
        a.on_accept(
            Instant::now(),
            PEER_LISTENER,
            conn(3),
            "127.0.0.1:3".parse().unwrap(),
            &mut out,
        );
        let mut b = node(1);
        handshake(&mut a, &mut b, conn(4), conn(5));
        let mut closed = Vec::new();
        for _ in 0..HANDSHAKE_TICKS + 100 {
            let mut out = Actions::new();
            a.on_timer(Instant::now(), Timer::Tick, &mut out);
            for action in out.others() {
                if let crate::reactor::Action::Close(c) = action {
                    closed.push(*c);
                }
            }
        }
        assert_eq!(closed, vec![conn(3)], "only the silent stranger is closed");
    }

    /// After the handshake every frame needs its MAC: an attacker who took
    /// over the connection cannot inject, replay or reorder frames.
    #[test]
    fn frames_after_the_handshake_need_their_mac() {
        let (mut a, mut b) = (node(0), node(1));
        handshake(&mut a, &mut b, conn(5), conn(6));
        let status = PeerMsg::Status {
            committed: 0,
            max_ballot: None,
        }
        .to_frame()
        .unwrap();
        let mac = |b: &mut Node, frame: &[u8]| {
            PeerMsg::Mac {
                tag: b.send_macs[0].as_mut().unwrap().tag(frame),
            }
            .to_frame()
            .unwrap()
        };
        let mut out = Actions::new();
        // With its MAC: taken. A frame whose MAC has not arrived waits.
        let first = [status.clone(), mac(&mut b, &status)].concat();
        assert_eq!(
            a.on_data(Instant::now(), conn(5), &first, &mut out),
            Ok(first.len())
        );
        assert_eq!(a.on_data(Instant::now(), conn(5), &status, &mut out), Ok(0));
        // Replayed: the sequence number moved on.
        let err = a
            .on_data(Instant::now(), conn(5), &first, &mut out)
            .unwrap_err();
        assert!(err.contains("MAC does not verify"), "{err}");
        // Without a MAC at all.
        let (mut a, mut b) = (node(0), node(1));
        handshake(&mut a, &mut b, conn(5), conn(6));
        let bare = [status.clone(), status.clone()].concat();
        let err = a
            .on_data(Instant::now(), conn(5), &bare, &mut out)
            .unwrap_err();
        assert!(err.contains("without its MAC"), "{err}");
        // And the node's own sends carry MACs that verify at the other end.
        let (mut a, mut b) = (node(0), node(1));
        handshake(&mut a, &mut b, conn(5), conn(6));
        let mut out = Actions::new();
        b.on_timer(Instant::now(), Timer::Tick, &mut out);
        for _ in 0..60 {
            b.on_timer(Instant::now(), Timer::Tick, &mut out);
        }
        let sent = sent(&out, conn(6));
        assert!(!sent.is_empty(), "B sent nothing (a STATUS was due)");
        let mut out = Actions::new();
        assert_eq!(
            a.on_data(Instant::now(), conn(5), &sent, &mut out),
            Ok(sent.len())
        );
    }

    #[test]
    fn nonces_are_fresh() {
        let mut rng = StdRng::from_entropy();
        assert_ne!(fresh_nonce(&mut rng), fresh_nonce(&mut rng));
    }
}
