//! The ring room: this node's place on the circle. It owns the routing
//! tables (predecessor, successor list, fingers), the nodes found dead and
//! the lost peers to probe after a partition, and the state of the join,
//! stabilize, check-predecessor, fix-fingers and leave steps; only its own
//! methods change them, so a dead node is forgotten everywhere at once.
//! It talks to peers through a `Ctx` and starts its own lookups (join,
//! fingers, rejoins); what another room must do (hand pairs to a new
//! predecessor, or to the successor when leaving) it returns to the node.
//! The steps of the paper are in maintenance.rs.

mod maintenance;

use super::id::Id;
use super::lookup::{Lookup, Lookups, Purpose, Step, View};
use super::peer_wire::NodeRef;
use super::routing::Routing;
use super::rpc::Ctx;
use crate::warn_repeated;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Most dead peers remembered to be asked again after a partition.
pub const MAX_LOST_PEERS: usize = 64;
/// How often a lost peer is asked for our successor before we give up on
/// it (one probe per spell in `dead`, max(30·T, 3 s): about a minute at
/// most by default).
pub const MAX_REJOIN_PROBES: u8 = 20;

pub struct Ring {
    routing: Routing,
    /// The member we join through (`--join`).
    bootstrap: Option<SocketAddr>,
    /// Nodes found dead, and when: kept out of lists learnt from others.
    dead: BTreeMap<Id, Instant>,
    /// Where the nodes found dead were, to ask them once more when their
    /// time in `dead` is over (at most MAX_LOST_PEERS).
    lost_peers: BTreeMap<Id, (SocketAddr, u8)>,
    joined: bool,
    join_lookup: Option<u64>,
    /// Why the last join attempt failed, for the warning.
    join_error: Option<String>,
    stabilizing: bool,
    pinging: bool,
    fixing_finger: Option<u64>,
    next_finger: usize,
    leaving_since: Option<Instant>,
    stopped: bool,
}

impl Ring {
    pub fn new(me: NodeRef, successors: usize, bootstrap: Option<SocketAddr>) -> Ring {
        Ring {
            routing: Routing::new(me, successors),
            bootstrap,
            dead: BTreeMap::new(),
            lost_peers: BTreeMap::new(),
            joined: bootstrap.is_none(),
            join_lookup: None,
            join_error: None,
            stabilizing: false,
            pinging: false,
            fixing_finger: None,
            next_finger: 0,
            leaving_since: None,
            stopped: false,
        }
    }

    pub fn routing(&self) -> &Routing {
        &self.routing
    }

    pub fn me(&self) -> NodeRef {
        self.routing.me
    }

    pub fn is_joined(&self) -> bool {
        self.joined
    }

    pub fn is_leaving(&self) -> bool {
        self.leaving_since.is_some()
    }

    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    pub fn is_joining(&self) -> bool {
        self.join_lookup.is_some()
    }

    pub fn bootstrap(&self) -> Option<SocketAddr> {
        self.bootstrap
    }

    /// The nodes found dead (for tests and the fuzzer's checks).
    pub fn dead(&self) -> &BTreeMap<Id, Instant> {
        &self.dead
    }

    /// What a lookup decides from.
    pub fn view(&self) -> View<'_> {
        View {
            routing: &self.routing,
            joined: self.joined,
            bootstrap: self.bootstrap,
            dead: &self.dead,
        }
    }

    /// Something went wrong with the link to `addr`: if it is the member
    /// we are still joining through, `why` is what the next warning says.
    pub fn note_join_error(&mut self, addr: SocketAddr, why: impl FnOnce() -> String) {
        if Some(addr) == self.bootstrap && !self.joined {
            self.join_error = Some(why());
        }
    }

    /// Start a lookup of our own and carry out its first steps.
    fn start_lookup(
        &mut self,
        lookups: &mut Lookups,
        target: Id,
        purpose: Purpose,
        cx: &mut Ctx,
    ) -> u64 {
        let (id, step) = lookups.start(target, purpose, Vec::new(), &self.view());
        if let Some(end) = super::lookup_steps::drive(lookups, step, cx) {
            self.lookup_ended(end, cx);
        }
        id
    }

    /// One of the ring's lookups (join, finger, rejoin) ended.
    pub fn lookup_ended(&mut self, end: Step, cx: &mut Ctx) {
        match end {
            Step::Done { lookup, owners } => self.lookup_done(lookup, owners, cx),
            Step::Failed { lookup, dead_end } => {
                if dead_end && lookup.purpose == Purpose::Join && self.join_error.is_none() {
                    self.join_error = Some("its answer led to no successor".into());
                }
                self.lookup_failed(lookup, cx);
            }
            Step::Ask { .. } => debug_assert!(false, "drive hands over ends only"),
        }
    }

    fn lookup_done(&mut self, lookup: Lookup, owners: Vec<NodeRef>, cx: &mut Ctx) {
        match lookup.purpose {
            Purpose::Join => self.join_found(owners, cx),
            Purpose::Rejoin { .. } => self.rejoin_found(owners, cx),
            Purpose::Finger(bit) => {
                self.fixing_finger = None;
                self.next_finger = self.routing.set_finger_run(bit, owners[0]);
            }
            Purpose::Api(_) => debug_assert!(false, "the DHT's lookups end there"),
        }
    }

    fn lookup_failed(&mut self, lookup: Lookup, cx: &mut Ctx) {
        let now = cx.now;
        match lookup.purpose {
            Purpose::Join => {
                self.join_lookup = None;
                let through = self
                    .bootstrap
                    .map_or_else(|| "no member".to_string(), |a| a.to_string());
                let why = self
                    .join_error
                    .take()
                    .unwrap_or_else(|| "it did not answer".to_string());
                warn_repeated!(
                    cx.warnings.join_failing,
                    now,
                    "cannot join the ring through {through}: {why}; still trying"
                );
            }
            Purpose::Finger(_) => self.fixing_finger = None,
            // Still unreachable (the partition may not have healed yet):
            // asked again after another spell in `dead`, a few times.
            Purpose::Rejoin { id, addr, tries } => {
                if tries + 1 < MAX_REJOIN_PROBES && self.lost_peers.len() < MAX_LOST_PEERS {
                    self.dead.insert(id, now);
                    self.lost_peers.insert(id, (addr, tries + 1));
                }
            }
            Purpose::Api(_) => debug_assert!(false, "the DHT's lookups end there"),
        }
    }

    /// Forget deaths older than `memory`: those nodes count again.
    pub fn forget_old_deaths(&mut self, now: Instant, memory: Duration) {
        self.dead
            .retain(|_, since| now.duration_since(*since) < memory);
    }

    /// A node stopped answering: out of every table, and ignored in lists
    /// from others for a while.
    pub fn mark_dead(&mut self, now: Instant, id: Id) {
        if id == self.routing.me.id {
            return;
        }
        self.dead.insert(id, now);
        let r = &self.routing;
        let known = r
            .successors
            .iter()
            .chain(r.predecessor.iter())
            .chain(r.fingers.iter().flatten())
            .find(|n| n.id == id)
            .map(|n| n.addr);
        if let Some(addr) = known {
            if self.lost_peers.len() < MAX_LOST_PEERS || self.lost_peers.contains_key(&id) {
                self.lost_peers.insert(id, (addr, 0));
            }
        }
        self.routing.forget(&id);
        if self.routing.successors.is_empty() && self.joined {
            // Every successor gone: fall back on the nearest finger or the
            // predecessor; stabilization walks on from there.
            let fallback = self.routing.nearest_finger().or(self.routing.predecessor);
            if let Some(node) = fallback {
                self.routing.successors = vec![node];
            }
        }
    }
}
