//! The gossip node: a state machine that does no I/O. Listener 0 is the API
//! port (local modules), listener 1 the P2P port (other nodes).
//!
//! This file routes the events: it keeps the open links (`links.rs`), cuts
//! each connection's input into frames, hands a module's frames and a
//! peer's items to spreading (`spreading.rs`: items, verdicts, forwarding)
//! and a peer's addresses and the dials to membership (`membership.rs`:
//! known peers, dialing, back-off), and closes a connection that breaks
//! the rules.
//!
//! Time comes in with every event (`Protocol` callbacks carry it); nothing here reads a clock.

use super::api::{ApiCodec, ApiMessage};
use super::budget::{self, PeerDuplicates};
use super::links::{Link, Links, Module, Peer, Role};
use super::membership::{Membership, SHUN_TIME};
use super::p2p::{self, P2pCodec, P2pMessage};
use super::spreading::Spreading;
use super::state::{Sources, State};
use crate::cli_words::plain_error;
use crate::logging::RepeatedWarning;
use crate::reactor::{CloseReason, ConnId, ListenerId, Out, Protocol};
use crate::warn_repeated;
use crate::wire::{decode_each, Framed, Stopped};
use log::{debug, info, warn};
use std::collections::BTreeSet;
use std::net::{SocketAddr, SocketAddrV4};
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

pub use super::links::{API_LISTENER, P2P_LISTENER};
pub use super::membership::DialId;

/// A gossip node's timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// Refill connections, pull, report held-back warnings.
    Maintenance,
    /// The dial with this number has had no answer for `DIAL_TIMEOUT`.
    DialTimeout(DialId),
}

/// The actions list the node fills.
pub(super) type NodeOut = Out<Node>;
/// A module may not hold more subscriptions than this.
const MAX_SUBSCRIPTIONS: usize = 1024;
/// API connections allowed beside the peer connections.
const MAX_MODULES: usize = 1024;

/// What a node is told at start.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Our P2P listen address as peers should dial it (the bound one).
    pub p2p_address: SocketAddrV4,
    /// The bound API address (for the state output).
    pub api_address: SocketAddr,
    /// `None` starts a new network.
    pub bootstrapper: Option<SocketAddrV4>,
    pub degree: usize,
    pub cache_size: usize,
    pub seed: u64,
    /// How often connections are refilled.
    pub maintenance: Duration,
}

pub struct Node {
    cfg: NodeConfig,
    links: Links,
    membership: Membership,
    spreading: Spreading,
    /// Printed "joined" once a first peer link was up.
    joined: bool,
    /// Connections closed for bad input, and why the last one was.
    rejected_connections: u64,
    last_rejection: Option<String>,
    warnings: Warnings,
}

/// One rate limiter per warning a peer or module can trigger again and
/// again at this level (spreading and membership keep their own).
struct Warnings {
    bad_input: RepeatedWarning,
    flooding: RepeatedWarning,
    refused: RepeatedWarning,
}

impl Warnings {
    fn new() -> Self {
        Warnings {
            bad_input: RepeatedWarning::per_second(),
            flooding: RepeatedWarning::per_second(),
            refused: RepeatedWarning::per_second(),
        }
    }

    /// Report the held-back tail of each flood (from the maintenance timer).
    fn flush(&mut self, now: Instant) {
        for (w, what) in [
            (&mut self.bad_input, "connections closed for bad input"),
            (&mut self.flooding, "peers cut off for sending duplicates"),
            (&mut self.refused, "connections refused: too many"),
        ] {
            if let Some(held) = w.flush(now) {
                warn!("{held} more {what} since the last report");
            }
        }
    }
}

/// Why a connection's input was refused.
enum Rejected {
    /// A frame that breaks the spec.
    BadInput(String),
    /// A peer that went over its budget of duplicate items.
    Flooding(budget::Overrun),
    /// A peer naming an address we cut off for flooding.
    Shunned(SocketAddrV4),
}

impl Node {
    pub fn new(cfg: NodeConfig) -> Self {
        let bootstrapper = cfg.bootstrapper.filter(|b| *b != cfg.p2p_address);
        let cfg = NodeConfig {
            bootstrapper,
            degree: cfg.degree.max(1),
            ..cfg
        };
        Node {
            links: Links::default(),
            membership: Membership::new(&cfg),
            spreading: Spreading::new(cfg.cache_size),
            joined: false,
            rejected_connections: 0,
            last_rejection: None,
            warnings: Warnings::new(),
            cfg,
        }
    }

    /// Incoming peers beyond this are answered and let go.
    fn peer_capacity(&self) -> usize {
        self.cfg.degree * 2
    }

    /// Connections beyond this are closed on accept.
    fn connection_limit(&self) -> usize {
        self.peer_capacity() + 16
    }

    /// The P2P addresses of the peers it gossips with (not transient
    /// ones), sorted: what the simulator's checks build the graph from.
    pub fn peer_addrs(&self) -> Vec<SocketAddrV4> {
        self.links.peer_addrs()
    }

    /// The node's checkable state, as one JSON value.
    pub fn state(&self) -> serde_json::Value {
        self.snapshot().to_json()
    }

    /// The node's checkable state.
    pub fn snapshot(&self) -> State {
        State::gather(Sources {
            cfg: &self.cfg,
            links: &self.links,
            membership: &self.membership,
            spreading: &self.spreading,
            joined: self.joined,
            rejected_connections: self.rejected_connections,
            last_rejection: self.last_rejection.as_deref(),
        })
    }
}

/// The events the reactor (or the simulator) reports, each with the time.
impl Protocol for Node {
    type Timer = Timer;
    type Tag = DialId;

    fn on_start(&mut self, _now: Instant, out: &mut NodeOut) {
        info!(
            "gossip node: P2P on {}, API on {}, degree {}, cache {}",
            self.cfg.p2p_address, self.cfg.api_address, self.cfg.degree, self.cfg.cache_size
        );
        out.print(format!(
            "gossip node listening: p2p {} api {}",
            self.cfg.p2p_address, self.cfg.api_address
        ));
        self.membership.start(out);
        out.timer(self.cfg.maintenance, Timer::Maintenance);
    }

    fn on_accept(
        &mut self,
        now: Instant,
        listener: ListenerId,
        conn: ConnId,
        peer: SocketAddr,
        out: &mut NodeOut,
    ) {
        if self.links.count() >= self.connection_limit() + MAX_MODULES {
            warn_repeated!(
                self.warnings.refused,
                now,
                "too many connections: refusing {peer}"
            );
            out.close(conn);
            return;
        }
        let role = if listener == API_LISTENER {
            info!("module connected from {peer}");
            Role::Api(Module {
                subscriptions: BTreeSet::new(),
            })
        } else {
            if self.links.p2p_count() >= self.connection_limit() {
                warn_repeated!(
                    self.warnings.refused,
                    now,
                    "too many peer connections: refusing {peer}"
                );
                out.close(conn);
                return;
            }
            let transient = self.links.peer_count() >= self.peer_capacity();
            info!(
                "peer connection from {peer}{}",
                if transient {
                    " (no room: will answer and close)"
                } else {
                    ""
                }
            );
            Role::P2p(Peer {
                addr: None,
                outgoing: false,
                transient,
                duplicates: PeerDuplicates::default(),
            })
        };
        let p2p = matches!(role, Role::P2p(_));
        self.links.insert(
            conn,
            Link {
                role,
                remote: Some(peer),
                partial: 0,
            },
        );
        if p2p {
            self.note_joined(conn, out);
        }
    }

    fn on_connected(&mut self, _now: Instant, tag: DialId, conn: ConnId, out: &mut NodeOut) {
        let Some(addr) = self.membership.connected(tag) else {
            // The dial timed out and was given up; too late now.
            out.close(conn);
            return;
        };
        info!("connected to peer {addr}");
        self.links.insert(
            conn,
            Link {
                role: Role::P2p(Peer {
                    addr: Some(addr),
                    outgoing: true,
                    transient: false,
                    duplicates: PeerDuplicates::default(),
                }),
                remote: Some(SocketAddr::V4(addr)),
                partial: 0,
            },
        );
        // Tell it where we listen, and ask whom it knows.
        let own = self.cfg.p2p_address;
        out.send_with(conn, |o| {
            p2p::write_push(o, &own);
            p2p::write_pull(o, &own);
        });
        self.note_joined(conn, out);
    }

    fn on_connect_failed(&mut self, now: Instant, tag: DialId, error: &str, out: &mut NodeOut) {
        let why = plain_error(error);
        self.membership
            .connect_failed(now, tag, &why, &self.links, out);
    }

    fn on_data(
        &mut self,
        now: Instant,
        conn: ConnId,
        data: &[u8],
        out: &mut NodeOut,
    ) -> Result<usize, String> {
        let Some(link) = self.links.get(conn) else {
            return Ok(data.len()); // let go already: discard
        };
        // The handler stops with `None` when a frame closed the link (the
        // rest is discarded), else with why the link is rejected.
        let (used, stopped) = if matches!(link.role, Role::Api(_)) {
            in_words(decode_each(&Framed(ApiCodec), data, |message| {
                let result = self
                    .on_module_message(now, conn, message, out)
                    .map_err(Rejected::BadInput);
                self.after_message(conn, result)
            }))
        } else {
            in_words(decode_each(&Framed(P2pCodec), data, |message| {
                let result = self.on_peer_message(now, conn, message, out);
                self.after_message(conn, result)
            }))
        };
        match stopped {
            None => {}
            Some(Stopped::Decode(e)) => {
                self.reject(now, conn, Rejected::BadInput(e), out);
                return Ok(data.len());
            }
            Some(Stopped::Handler(Some(why))) => {
                self.reject(now, conn, why, out);
                return Ok(data.len());
            }
            Some(Stopped::Handler(None)) => return Ok(data.len()),
        }
        if let Some(link) = self.links.get_mut(conn) {
            link.partial = data.len() - used;
        }
        Ok(used)
    }

    fn on_closed(&mut self, _now: Instant, conn: ConnId, reason: &CloseReason, out: &mut NodeOut) {
        let who = self.links.describe(conn);
        let Some(link) = self.forget_link(conn) else {
            return;
        };
        if link.partial > 0 {
            info!(
                "{who} closed in the middle of a message ({} bytes of it arrived)",
                link.partial
            );
        }
        match link.role {
            Role::Api(_) => info!("{who} disconnected"),
            Role::P2p(p) if !p.transient => {
                info!("{who} gone: {reason}");
                self.membership.peer_closed(p.addr, &self.links, out);
            }
            Role::P2p(_) => {}
        }
    }

    fn on_timer(&mut self, now: Instant, timer: Timer, out: &mut NodeOut) {
        match timer {
            Timer::Maintenance => {
                self.warnings.flush(now);
                self.spreading.flush_warnings(now);
                // Membership's join warning is not flushed: a failing join
                // fails again every tick, and that line names the address
                // and the reason.
                self.membership.tick(now, &self.links, out);
                out.timer(self.cfg.maintenance, Timer::Maintenance);
            }
            Timer::DialTimeout(tag) => self.membership.dial_timed_out(now, tag, &self.links),
        }
    }

    fn on_stdin_line(&mut self, _now: Instant, line: &str, out: &mut NodeOut) {
        match line.trim() {
            "state" => out.print(self.state().to_string()),
            "quit" | "exit" => out.stop(),
            "" => {}
            other => out.print(format!("unknown command '{other}' (try: state, quit)")),
        }
    }
}

/// A run of input's decode error in words (the two ports' decoders have
/// error types of their own; the log says them the same way).
fn in_words<E: std::fmt::Display, H>(
    (used, stopped): (usize, Option<Stopped<E, H>>),
) -> (usize, Option<Stopped<String, H>>) {
    let stopped = stopped.map(|s| match s {
        Stopped::Decode(e) => Stopped::Decode(e.to_string()),
        Stopped::Handler(h) => Stopped::Handler(h),
    });
    (used, stopped)
}

/// Frame routing: a module's frames and a peer's frames.
impl Node {
    /// After one message: go on; or stop, with why the link is rejected,
    /// or without a word when the message closed the link.
    fn after_message(
        &self,
        conn: ConnId,
        result: Result<(), Rejected>,
    ) -> ControlFlow<Option<Rejected>> {
        match result {
            Err(why) => ControlFlow::Break(Some(why)),
            Ok(()) if self.links.get(conn).is_none() => ControlFlow::Break(None),
            Ok(()) => ControlFlow::Continue(()),
        }
    }

    fn on_module_message(
        &mut self,
        now: Instant,
        conn: ConnId,
        message: ApiMessage<'_>,
        out: &mut NodeOut,
    ) -> Result<(), String> {
        match message {
            ApiMessage::Announce {
                ttl,
                data_type,
                data,
            } => self
                .spreading
                .announce(now, &self.links, conn, ttl, data_type, data, out),
            ApiMessage::Notify { data_type } => {
                let who = self.links.describe(conn);
                if let Some(m) = self.links.module_mut(conn) {
                    if m.subscriptions.len() >= MAX_SUBSCRIPTIONS
                        && !m.subscriptions.contains(&data_type)
                    {
                        return Err(format!("more than {MAX_SUBSCRIPTIONS} subscriptions"));
                    }
                    m.subscriptions.insert(data_type);
                    info!("{who} subscribed to type {data_type}");
                }
            }
            ApiMessage::Validation { msg_id, valid } => {
                self.spreading
                    .validation(now, &self.links, conn, msg_id, valid, out)
            }
            ApiMessage::Notification { .. } => {
                return Err("a module sent a NOTIFICATION, which only a node sends".into())
            }
        }
        Ok(())
    }

    /// One message from a peer. `Err(Rejected::Flooding)` when it went
    /// over its budget of duplicates.
    fn on_peer_message(
        &mut self,
        now: Instant,
        conn: ConnId,
        message: P2pMessage<'_>,
        out: &mut NodeOut,
    ) -> Result<(), Rejected> {
        match message {
            P2pMessage::Push(addr) => {
                self.identify(conn, addr)?;
                debug!("{} pushed itself", self.links.describe(conn));
            }
            P2pMessage::Pull(addr) => {
                self.identify(conn, addr)?;
                let list = self.membership.sample_for(addr);
                out.send_with(conn, |o| p2p::write_pull_response(o, &list));
                debug!(
                    "{} pulled: sent {} addresses",
                    self.links.describe(conn),
                    list.len()
                );
                if self.links.peer(conn).is_some_and(|p| p.transient) {
                    info!(
                        "{} answered; closing it: no room for more peers",
                        self.links.describe(conn)
                    );
                    self.forget_link(conn);
                    out.close_after_flush(conn);
                }
            }
            P2pMessage::PullResponse(list) => {
                self.membership.pull_response(conn, list, &self.links, out)
            }
            P2pMessage::Content {
                ttl,
                data_type,
                data,
            } => self
                .spreading
                .content(now, &mut self.links, conn, ttl, data_type, data, out)
                .map_err(Rejected::Flooding)?,
        }
        Ok(())
    }

    /// A peer told us its listen address: one we cut off for flooding is
    /// refused (only addresses we dialled ourselves are ever shunned, so
    /// nobody can get another node shunned by naming it).
    fn identify(&mut self, conn: ConnId, addr: SocketAddrV4) -> Result<(), Rejected> {
        if self.membership.is_shunned(&addr) {
            return Err(Rejected::Shunned(addr));
        }
        self.membership.learn(addr);
        if let Some(p) = self.links.peer_mut(conn) {
            if p.addr.is_none() {
                p.addr = Some(addr);
            }
        }
        Ok(())
    }

    /// The first peer link is up: say so once.
    fn note_joined(&mut self, conn: ConnId, out: &mut NodeOut) {
        if self.joined || self.links.peer_count() == 0 {
            return;
        }
        self.joined = true;
        let line = format!(
            "gossip node joined the network: first peer link with {}",
            self.links.describe(conn)
        );
        info!("{line}");
        out.print(line);
    }

    /// Close `conn` for what it sent, after the answers to its earlier
    /// frames; log it through a rate limiter: a flood of bad connections
    /// (or a flooder that keeps coming back) makes one line a second.
    fn reject(&mut self, now: Instant, conn: ConnId, why: Rejected, out: &mut NodeOut) {
        let who = self.links.describe(conn);
        let Some(link) = self.forget_link(conn) else {
            return;
        };
        out.close_after_flush(conn);
        if !matches!(why, Rejected::Shunned(_)) {
            self.rejected_connections += 1;
        }
        let line = match why {
            Rejected::BadInput(why) => {
                let line = format!("{} port, {who}: {why}; connection closed", link.role);
                warn_repeated!(self.warnings.bad_input, now, "{line}");
                line
            }
            Rejected::Flooding(over) => {
                let mut line = format!(
                    "{who} sent {} items we already had within {} s (allowed {}): disconnected",
                    over.count,
                    budget::WINDOW.as_secs(),
                    over.allowed
                );
                if let Role::P2p(Peer {
                    addr: Some(addr),
                    outgoing: true,
                    ..
                }) = link.role
                {
                    // We dialled it, so the address is really its own.
                    self.membership.shun(now, addr);
                    line.push_str(&format!(
                        "; not dialled again for {} s",
                        SHUN_TIME.as_secs()
                    ));
                }
                warn_repeated!(self.warnings.flooding, now, "{line}");
                line
            }
            Rejected::Shunned(addr) => {
                // Said once when it was cut off; its comebacks are no news.
                debug!("{who} says it is {addr}, cut off for flooding: closed");
                return;
            }
        };
        self.last_rejection = Some(line);
        if matches!(link.role, Role::P2p(_)) {
            self.membership.refill(&self.links, false, out);
        }
    }

    fn forget_link(&mut self, conn: ConnId) -> Option<Link> {
        let link = self.links.remove(conn)?;
        self.spreading.forget_conn(conn);
        Some(link)
    }
}
