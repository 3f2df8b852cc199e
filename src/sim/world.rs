//! The simulated world: nodes running unmodified [`Protocol`] state machines,
//! TCP-like links between them, a virtual clock and one seeded random source.
//!
//! What a link models: a connection is set up (SYN there, SYN-ACK back, each a
//! one-way delay), carries bytes in order in each direction (every chunk
//! arrives no earlier than the one sent before it on that connection, so
//! reordering happens only across connections), and ends with an orderly
//! close or a reset. What it does not model: bandwidth, loss inside a
//! connection (TCP hides it), socket buffer limits, Nagle.
//!
//! Faults: partitions (bytes across the cut are held until it heals, and new
//! connections across it time out), connection resets, crashes (the
//! protocol's memory is lost; its factory makes a fresh one on restart, which
//! is where durable storage kept outside the node comes back), and pauses
//! (nothing is delivered to the node, timers included, until it resumes).
//! Test code opens its own connections ([`World::ext_connect`]) to inject raw
//! bytes and read what comes back.

mod actions;
mod delivery;
mod ext;
mod faults;

use super::latency::Latency;
use crate::reactor::{
    Action, Actions, CloseReason, ConnId, Driven, Erased, InputEnded, ListenerId, Protocol, Step,
};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::any::Any;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

/// A node of the world, by the order it was added.
pub type NodeId = usize;
/// A connection opened by test code, by the order it was opened.
pub type ExtId = usize;

/// A protocol the world can host: any [`Protocol`] behind the numbered face
/// the reactor drives too ([`Driven`]), plus a way back to its concrete type
/// for reading its state.
pub trait Hosted: Driven {
    fn as_any_mut(&mut self) -> &mut dyn Any;
    fn as_any(&self) -> &dyn Any;
}

impl<P: Protocol + Any> Hosted for Erased<P> {
    fn as_any_mut(&mut self) -> &mut dyn Any {
        &mut self.protocol
    }
    fn as_any(&self) -> &dyn Any {
        &self.protocol
    }
}

/// `protocol`, ready for [`World::add_node`]'s factory.
pub fn host<P: Protocol + Any>(protocol: P) -> Box<dyn Hosted> {
    Box::new(Erased::new(protocol))
}

/// Makes a node's protocol at start and at every restart; it is handed the
/// world's random source so the node's own seed follows the world's.
pub type Factory = Box<dyn FnMut(&mut StdRng) -> Box<dyn Hosted>>;

/// After this long without being able to reach the other side, a connection
/// attempt fails as "connection timed out".
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

type LinkId = u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum End {
    Node { node: NodeId, conn: ConnId },
    Ext(ExtId),
}

impl End {
    fn node(self) -> Option<NodeId> {
        match self {
            End::Node { node, .. } => Some(node),
            End::Ext(_) => None,
        }
    }
}

/// One connection: side 0 opened it, side 1 accepted it.
struct Link {
    ends: [Option<End>; 2],
    /// Whether each side can still be delivered to.
    open: [bool; 2],
    /// The latest arrival scheduled toward each side (keeps each direction in order).
    last_arrival: [Duration; 2],
}

struct ConnState {
    link: LinkId,
    side: usize,
    read_buf: Vec<u8>,
    /// Set while our connection attempt is under way.
    connecting: Option<u64>,
}

struct SimNode {
    name: String,
    listen: Vec<SocketAddr>,
    make: Factory,
    proto: Option<Box<dyn Hosted>>,
    incarnation: u32,
    paused: bool,
    /// Events that arrived while paused, in order.
    held: Vec<Event>,
    conns: BTreeMap<ConnId, ConnState>,
    next_conn: ConnId,
    printed: Vec<String>,
}

/// The state of a connection opened by test code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtState {
    Connecting,
    Open,
    /// The connection could not be made, with why.
    Failed(String),
    /// The node closed it (or reset it), with why.
    Closed(String),
}

struct ExtEnd {
    link: LinkId,
    state: ExtState,
    received: Vec<u8>,
    /// Bytes written before the connection was up.
    pending: Vec<u8>,
    /// A half-close asked for before the connection was up.
    shutdown_pending: bool,
}

#[derive(Debug, Clone)]
enum Event {
    Syn {
        link: LinkId,
        to: NodeId,
        listener: ListenerId,
        from_addr: SocketAddr,
    },
    SynAck {
        link: LinkId,
    },
    Refused {
        link: LinkId,
        error: String,
    },
    Data {
        link: LinkId,
        to_side: usize,
        bytes: Vec<u8>,
    },
    Fin {
        link: LinkId,
        to_side: usize,
        reset: bool,
    },
    Timer {
        node: NodeId,
        incarnation: u32,
        token: u64,
    },
}

impl Event {
    /// The node an event is delivered to, when it is a node.
    fn target(&self, links: &BTreeMap<LinkId, Link>) -> Option<NodeId> {
        let end = |link: &LinkId, side: usize| {
            links
                .get(link)
                .and_then(|l| l.ends[side])
                .and_then(End::node)
        };
        match self {
            Event::Syn { to, .. } => Some(*to),
            Event::SynAck { link } | Event::Refused { link, .. } => end(link, 0),
            Event::Data { link, to_side, .. } | Event::Fin { link, to_side, .. } => {
                end(link, *to_side)
            }
            Event::Timer { node, .. } => Some(*node),
        }
    }
}

/// Counters of what the world did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stats {
    pub events: u64,
    pub bytes_delivered: u64,
    pub connections: u64,
}

pub struct World {
    now: Duration,
    base: Instant,
    rng: StdRng,
    seed: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<(Duration, u64, usize)>>,
    /// Event bodies by slot, so the heap orders only small keys.
    bodies: Vec<Option<Event>>,
    free_bodies: Vec<usize>,
    nodes: Vec<SimNode>,
    /// Who listens on each address (the first node to claim it): a
    /// connection finds its listener without scanning every node.
    listeners: BTreeMap<SocketAddr, (NodeId, ListenerId)>,
    links: BTreeMap<LinkId, Link>,
    next_link: LinkId,
    exts: Vec<ExtEnd>,
    latency: Latency,
    link_latency: BTreeMap<(NodeId, NodeId), Latency>,
    /// Unordered node pairs that cannot reach each other.
    cut: BTreeSet<(NodeId, NodeId)>,
    /// Bytes and closes held at a cut, in order, until it heals.
    held_at_cut: Vec<Event>,
    trace: Option<Vec<String>>,
    /// The last ephemeral port handed out.
    next_port: u16,
    pub stats: Stats,
    actions: Actions,
}

impl World {
    /// An empty world whose every random choice follows `seed`.
    pub fn new(seed: u64) -> World {
        World {
            now: Duration::ZERO,
            base: Instant::now(),
            rng: StdRng::seed_from_u64(seed),
            seed,
            seq: 0,
            queue: BinaryHeap::new(),
            bodies: Vec::new(),
            free_bodies: Vec::new(),
            nodes: Vec::new(),
            listeners: BTreeMap::new(),
            links: BTreeMap::new(),
            next_link: 1,
            exts: Vec::new(),
            latency: Latency::default(),
            link_latency: BTreeMap::new(),
            cut: BTreeSet::new(),
            held_at_cut: Vec::new(),
            trace: None,
            next_port: 32_767,
            stats: Stats::default(),
            actions: Actions::new(),
        }
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Virtual time since the world began.
    pub fn now(&self) -> Duration {
        self.now
    }

    /// The virtual time as an `Instant`, for protocols that take one.
    pub fn instant(&self) -> Instant {
        self.base + self.now
    }

    /// The world's random source, for workloads that must replay with the seed.
    pub fn rng(&mut self) -> &mut StdRng {
        &mut self.rng
    }

    /// Record a line per event (see [`World::trace`]).
    pub fn enable_trace(&mut self) {
        self.trace = Some(Vec::new());
    }

    /// What happened, one line per event, when tracing: the same seed gives
    /// the same lines.
    pub fn trace(&self) -> &[String] {
        self.trace.as_deref().unwrap_or(&[])
    }

    /// Latency of every link without one of its own.
    pub fn set_latency(&mut self, latency: Latency) {
        self.latency = latency;
    }

    /// Latency between two nodes (both directions).
    pub fn set_link_latency(&mut self, a: NodeId, b: NodeId, latency: Latency) {
        self.link_latency.insert(pair(a, b), latency);
    }

    /// Add a node listening on `listen` (listener IDs in that order) and start it.
    pub fn add_node(
        &mut self,
        name: impl Into<String>,
        listen: Vec<SocketAddr>,
        make: Factory,
    ) -> NodeId {
        let id = self.nodes.len();
        for (l, addr) in listen.iter().enumerate() {
            self.listeners.entry(*addr).or_insert((id, l));
        }
        self.nodes.push(SimNode {
            name: name.into(),
            listen,
            make,
            proto: None,
            incarnation: 0,
            paused: false,
            held: Vec::new(),
            conns: BTreeMap::new(),
            next_conn: 1,
            printed: Vec::new(),
        });
        self.start(id);
        id
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    pub fn name(&self, node: NodeId) -> &str {
        &self.nodes[node].name
    }

    /// The node listening on `addr`, if any.
    pub fn node_at(&self, addr: SocketAddr) -> Option<NodeId> {
        self.listeners.get(&addr).map(|&(node, _)| node)
    }

    pub fn is_up(&self, node: NodeId) -> bool {
        self.nodes[node].proto.is_some()
    }

    /// The node's protocol as its concrete type (None if down or of another type).
    /// [`World::protocol`], read-only.
    pub fn protocol_ref<P: Any>(&self, node: NodeId) -> Option<&P> {
        self.nodes[node]
            .proto
            .as_ref()
            .and_then(|p| p.as_any().downcast_ref::<P>())
    }

    pub fn protocol<P: Any>(&mut self, node: NodeId) -> Option<&mut P> {
        self.nodes[node]
            .proto
            .as_mut()
            .and_then(|p| p.as_any_mut().downcast_mut::<P>())
    }

    /// Lines the node printed since the last call.
    pub fn take_printed(&mut self, node: NodeId) -> Vec<String> {
        std::mem::take(&mut self.nodes[node].printed)
    }

    /// Type a line on the node's standard input, now.
    pub fn type_line(&mut self, node: NodeId, line: &str) {
        self.note(node, || format!("stdin {line:?}"));
        self.call(node, |p, now, out| p.on_stdin_line(now, line, out));
    }

    /// Close the node's standard input, now.
    pub fn close_stdin(&mut self, node: NodeId) {
        self.call(node, |p, now, out| p.on_stdin_closed(now, out));
    }

    // ----- running -----

    /// Deliver the next event. False when nothing is left to happen.
    pub fn step(&mut self) -> bool {
        let Some(Reverse((at, _, slot))) = self.queue.pop() else {
            return false;
        };
        let event = self.bodies[slot].take().expect("scheduled event");
        self.free_bodies.push(slot);
        self.now = self.now.max(at);
        self.stats.events += 1;
        if let Some(node) = event.target(&self.links) {
            if self.nodes[node].paused {
                self.nodes[node].held.push(event);
                return true;
            }
        }
        self.deliver(event);
        true
    }

    /// The time of the next event, if any.
    pub fn next_event_at(&self) -> Option<Duration> {
        self.queue.peek().map(|Reverse((at, _, _))| *at)
    }

    /// Run every event due up to `now + d`, then set the clock there.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now.saturating_add(d);
        self.run_until_time(end);
    }

    /// Run every event due up to virtual time `end`, then set the clock there.
    pub fn run_until_time(&mut self, end: Duration) {
        while self.next_event_at().is_some_and(|at| at <= end) {
            self.step();
        }
        self.now = self.now.max(end);
    }

    /// Run until `done` holds (checked after every event) or `limit` of
    /// virtual time passes. Whether `done` held.
    pub fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&mut World) -> bool) -> bool {
        let end = self.now.saturating_add(limit);
        loop {
            if done(self) {
                return true;
            }
            match self.next_event_at() {
                Some(at) if at <= end => {
                    self.step();
                }
                _ => {
                    self.now = self.now.max(end);
                    return done(self);
                }
            }
        }
    }

    /// Run until nothing is left to happen or `limit` of virtual time
    /// passes. Whether the world went quiet (protocols with periodic timers
    /// never do: use [`World::run_for`] or [`World::run_until`]).
    pub fn run_until_idle(&mut self, limit: Duration) -> bool {
        let end = self.now.saturating_add(limit);
        while let Some(at) = self.next_event_at() {
            if at > end {
                self.now = end;
                return false;
            }
            self.step();
        }
        true
    }

    /// Whether any node is paused (its held events keep the world from being idle).
    pub fn any_paused(&self) -> bool {
        self.nodes.iter().any(|n| n.paused)
    }
}

fn pair(a: NodeId, b: NodeId) -> (NodeId, NodeId) {
    (a.min(b), a.max(b))
}
