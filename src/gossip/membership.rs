//! Membership: the peers a node knows, whom it dials, and when it holds
//! back: peers that closed on it wait for the next maintenance tick, peers
//! cut off for flooding are shunned for a while, and asking for more
//! addresses backs off while nobody new turns up.
//!
//! It owns the random source (the order of dials and of the addresses it
//! hands out) and reads the open links it is given; it opens none itself
//! but asks for dials through the actions list.

use super::known::KnownPeers;
use super::links::Links;
use super::node::{NodeConfig, NodeOut, Timer};
use super::p2p;
use crate::logging::RepeatedWarning;
use crate::reactor::ConnId;
use crate::warn_repeated;
use log::{debug, info};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

/// What an outgoing connection is for: the number of the dial it answers.
pub type DialId = u64;

pub const DIAL_TIMEOUT: Duration = Duration::from_secs(5);
/// Asking peers for more peers backs off up to this many maintenance ticks.
const MAX_PULL_BACKOFF: u32 = 16;
/// A peer we dialled and cut off for flooding is not dialled again for this long.
pub const SHUN_TIME: Duration = Duration::from_secs(120);
/// At most this many addresses are shunned at once (the oldest go first).
const SHUN_LIMIT: usize = 1024;
/// While joining keeps failing, one warning per this long.
const JOIN_WARNING_EVERY: Duration = Duration::from_secs(10);

pub struct Membership {
    own: SocketAddrV4,
    bootstrapper: Option<SocketAddrV4>,
    degree: usize,
    /// The maintenance period (the join warning says it).
    maintenance: Duration,
    rng: StdRng,
    known: KnownPeers,
    dialing: BTreeMap<DialId, SocketAddrV4>,
    next_tag: DialId,
    pull_backoff: u32,
    ticks_to_pull: u32,
    /// Peers that closed on us since the last maintenance tick: not
    /// redialled before it. At most one entry per dial, and dials go only
    /// to addresses not in it, so it holds at most the known addresses.
    closed_on_us: BTreeSet<SocketAddrV4>,
    /// Addresses cut off for flooding, until when.
    shunned: BTreeMap<SocketAddrV4, Instant>,
    join_warning: RepeatedWarning,
}

impl Membership {
    /// `cfg` as the node settled it (degree at least 1, no bootstrapper that is ourselves).
    pub fn new(cfg: &NodeConfig) -> Self {
        Membership {
            own: cfg.p2p_address,
            bootstrapper: cfg.bootstrapper,
            degree: cfg.degree,
            maintenance: cfg.maintenance,
            rng: StdRng::seed_from_u64(cfg.seed),
            known: KnownPeers::new(cfg.p2p_address),
            dialing: BTreeMap::new(),
            next_tag: 1,
            pull_backoff: 1,
            ticks_to_pull: 1,
            closed_on_us: BTreeSet::new(),
            shunned: BTreeMap::new(),
            join_warning: RepeatedWarning::new(JOIN_WARNING_EVERY),
        }
    }

    pub fn dialing_count(&self) -> usize {
        self.dialing.len()
    }

    pub fn known_count(&self) -> usize {
        self.known.len()
    }

    pub fn shunned_count(&self) -> usize {
        self.shunned.len()
    }

    /// At start: join through the bootstrapper, if there is one.
    pub fn start(&mut self, out: &mut NodeOut) {
        match self.bootstrapper {
            Some(boot) => {
                info!("joining the network through bootstrapper {boot}");
                self.known.learn(boot, &mut self.rng);
                self.dial(boot, out);
            }
            None => info!("starting a new network"),
        }
    }

    fn dial(&mut self, addr: SocketAddrV4, out: &mut NodeOut) {
        let tag = self.next_tag;
        self.next_tag += 1;
        self.dialing.insert(tag, addr);
        debug!("dialling {addr}");
        out.connect(SocketAddr::V4(addr), tag);
        out.timer(DIAL_TIMEOUT, Timer::DialTimeout(tag));
    }

    /// Open connections until `degree` are open or being opened, except to
    /// peers that closed on us since the last maintenance tick: they are
    /// tried again at the next tick at the earliest, not at once (a full
    /// node answers and closes; redialling it at once would loop at network
    /// speed, and so would alternating between two full nodes, which the
    /// gossip fuzzer found when only the last one was avoided).
    pub fn refill(&mut self, links: &Links, allow_bootstrap: bool, out: &mut NodeOut) {
        let active = links.peer_count() + self.dialing.len();
        if active >= self.degree {
            return;
        }
        let busy: BTreeSet<SocketAddrV4> = links
            .peers()
            .filter_map(|(_, p)| p.addr)
            .chain(self.dialing.values().copied())
            .collect();
        let mut candidates: Vec<SocketAddrV4> = self
            .known
            .iter()
            .copied()
            .filter(|a| !busy.contains(a) && !self.closed_on_us.contains(a))
            .collect();
        candidates.shuffle(&mut self.rng);
        candidates.truncate(self.degree - active);
        let none = candidates.is_empty();
        for addr in candidates {
            self.dial(addr, out);
        }
        if none && allow_bootstrap && links.peer_count() == 0 && self.dialing.is_empty() {
            if let Some(boot) = self.bootstrapper.filter(|b| !self.shunned.contains_key(b)) {
                info!("no peers: contacting bootstrapper {boot} again");
                self.dial(boot, out);
            }
        }
    }

    /// The dial `tag` connected: its address, or `None` if it was given up.
    pub fn connected(&mut self, tag: DialId) -> Option<SocketAddrV4> {
        self.dialing.remove(&tag)
    }

    /// The dial `tag` failed for `why`: forget the address and dial another.
    pub fn connect_failed(
        &mut self,
        now: Instant,
        tag: DialId,
        why: &str,
        links: &Links,
        out: &mut NodeOut,
    ) {
        let Some(addr) = self.dialing.remove(&tag) else {
            return;
        };
        self.dial_failed(now, addr, why, links);
        self.known.forget(&addr);
        self.refill(links, false, out);
    }

    /// The dial `tag` had no answer in time (unless it was answered meanwhile).
    pub fn dial_timed_out(&mut self, now: Instant, tag: DialId, links: &Links) {
        if let Some(addr) = self.dialing.remove(&tag) {
            let why = format!("no answer within {} s", DIAL_TIMEOUT.as_secs());
            self.dial_failed(now, addr, &why, links);
            self.known.forget(&addr);
        }
    }

    /// A dial failed: while the node has no peer and it was the
    /// bootstrapper, joining is failing, which the user must see.
    fn dial_failed(&mut self, now: Instant, addr: SocketAddrV4, why: &str, links: &Links) {
        if Some(addr) == self.bootstrapper && links.peer_count() == 0 {
            warn_repeated!(
                self.join_warning,
                now,
                "cannot join the network through bootstrapper {addr}: {why}; retrying every {} ms",
                self.maintenance.as_millis()
            );
        } else {
            info!("could not reach peer {addr}: {why}; forgetting it");
        }
    }

    /// A peer we gossiped with (listening at `addr`, if known) closed on us.
    pub fn peer_closed(&mut self, addr: Option<SocketAddrV4>, links: &Links, out: &mut NodeOut) {
        if crate::sim::bugs::seeded("gossip.redial-alternating-full-peers") {
            // The old fix: avoid only the peer that just closed.
            self.closed_on_us.clear();
        }
        if let Some(addr) = addr {
            self.closed_on_us.insert(addr);
        }
        self.refill(links, false, out);
    }

    pub fn is_shunned(&self, addr: &SocketAddrV4) -> bool {
        self.shunned.contains_key(addr)
    }

    /// Learn a peer's address unless it is shunned; true if it was new.
    pub fn learn(&mut self, addr: SocketAddrV4) -> bool {
        !self.shunned.contains_key(&addr) && self.known.learn(addr, &mut self.rng)
    }

    /// The addresses to answer a PULL from `asker` with.
    pub fn sample_for(&mut self, asker: SocketAddrV4) -> Vec<SocketAddrV4> {
        self.known.sample(Some(asker), &mut self.rng)
    }

    /// A PULL RESPONSE from `conn`: learn the addresses; any new one ends the back-off.
    pub fn pull_response(
        &mut self,
        conn: ConnId,
        list: Vec<SocketAddrV4>,
        links: &Links,
        out: &mut NodeOut,
    ) {
        let mut new = 0;
        for addr in list {
            if self.learn(addr) {
                new += 1;
            }
        }
        debug!("{} told us {new} new address(es)", links.describe(conn));
        if new > 0 {
            self.pull_backoff = 1;
        }
        self.refill(links, false, out);
    }

    /// Cut `addr` off for flooding: forgotten, and not dialled for `SHUN_TIME`.
    pub fn shun(&mut self, now: Instant, addr: SocketAddrV4) {
        self.known.forget(&addr);
        if self.shunned.len() >= SHUN_LIMIT {
            if let Some(oldest) = self
                .shunned
                .iter()
                .min_by_key(|(_, until)| **until)
                .map(|(a, _)| *a)
            {
                self.shunned.remove(&oldest);
            }
        }
        self.shunned.insert(addr, now + SHUN_TIME);
    }

    /// The maintenance tick: lapse shuns, refill, and while short of peers
    /// with nobody left to dial, ask the peers for more addresses (backing off).
    pub fn tick(&mut self, now: Instant, links: &Links, out: &mut NodeOut) {
        self.shunned.retain(|_, until| *until > now);
        self.closed_on_us.clear();
        self.refill(links, true, out);
        let peers = links.peer_count();
        if peers < self.degree && peers > 0 {
            self.ticks_to_pull = self.ticks_to_pull.saturating_sub(1);
            if self.ticks_to_pull == 0 {
                let own = self.own;
                let conns: Vec<ConnId> = links.peer_conns_except(&[]);
                for conn in conns {
                    out.send_with(conn, |o| p2p::write_pull(o, &own));
                }
                self.pull_backoff = (self.pull_backoff * 2).min(MAX_PULL_BACKOFF);
                self.ticks_to_pull = self.pull_backoff;
            }
        }
    }
}
