//! Iterative lookups: the node asking drives every step. It asks the
//! closest preceding node it knows; that node either names the owner (the
//! key falls before one of its successors) or a closer node to ask next.
//! Each question is one hop, so path lengths are counted where they start.
//! A node that does not answer is excluded (and named in later questions,
//! so others route around it too) and the lookup resumes from local tables.
//!
//! `Lookups` is a pure sub-state machine: it is handed a reply (or the news
//! that a question went unanswered) and a read-only `View` of the ring, and
//! answers with the next `Step`: a question to send, or the result. It
//! sends nothing and knows nothing of the node, so the node (`node_lookup.rs`)
//! carries the step out and acts on the result; that keeps the import graph
//! one-way (node → lookup → routing).

use super::id::Id;
use super::peer_wire::NodeRef;
use super::routing::Routing;
use log::debug;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Instant;

/// Longest lookup path before it is called a failure (loops, stale tables).
pub const MAX_HOPS: u32 = 32;
/// How many dead ends one lookup survives before it gives up.
const MAX_ATTEMPTS: u32 = 6;
/// Most excluded nodes one question carries.
const MAX_EXCLUDE: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Serving the DHT API request with this op number.
    Api(u64),
    /// Our own successor, through the bootstrap node.
    Join,
    /// Finger `bit` (fix fingers).
    Finger(usize),
    /// Our own successor, asked of a node we once found dead (see
    /// `Node::probe_lost_peers`): how a ring split by a partition heals.
    /// `tries`: probes of that node that failed before this one.
    Rejoin { id: Id, addr: SocketAddr, tries: u8 },
}

#[derive(Debug, Clone)]
pub struct Lookup {
    pub target: Id,
    pub purpose: Purpose,
    pub exclude: Vec<Id>,
    pub hops: u32,
    pub attempts: u32,
}

/// What a lookup decides from needs of the node: its tables, whether it is
/// in the ring yet, the node it joins by, and the nodes it found dead.
pub struct View<'a> {
    pub routing: &'a Routing,
    pub joined: bool,
    pub bootstrap: Option<SocketAddr>,
    pub dead: &'a BTreeMap<Id, Instant>,
}

/// The next thing a lookup needs done.
#[derive(Debug)]
pub enum Step {
    /// Send FIND_SUCCESSOR(`target`, `exclude`) to `addr` (the node `peer`,
    /// when known). If it cannot be sent, hand the lookup to `Lookups::fail`.
    Ask {
        lookup: u64,
        addr: SocketAddr,
        peer: Option<Id>,
        target: Id,
        exclude: Vec<Id>,
    },
    /// Finished: `owners` are successor(target) and the nodes after it.
    Done {
        lookup: Lookup,
        owners: Vec<NodeRef>,
    },
    /// Given up. `dead_end`: a node was asked and its answer (or silence)
    /// led nowhere, as opposed to running out of hops or a question that
    /// could not be sent.
    Failed { lookup: Lookup, dead_end: bool },
}

/// The lookups in flight, by number.
#[derive(Debug, Default)]
pub struct Lookups {
    active: BTreeMap<u64, Lookup>,
    next: u64,
}

impl Lookups {
    pub fn contains(&self, id: u64) -> bool {
        self.active.contains_key(&id)
    }

    /// Start looking up successor(`target`), routing around `exclude`d
    /// nodes: its number and first step (which may be the result).
    pub fn start(
        &mut self,
        target: Id,
        purpose: Purpose,
        exclude: Vec<Id>,
        view: &View,
    ) -> (u64, Option<Step>) {
        self.next += 1;
        let id = self.next;
        self.active.insert(
            id,
            Lookup {
                target,
                purpose,
                exclude,
                hops: 0,
                attempts: 0,
            },
        );
        let step = if let Purpose::Rejoin { addr, .. } = purpose {
            self.ask(id, addr, None)
        } else if purpose == Purpose::Join {
            match view.bootstrap {
                Some(addr) => self.ask(id, addr, None),
                None => self.fail(id),
            }
        } else {
            self.step(id, view)
        };
        (id, step)
    }

    /// Decide from our own tables: done, or whom to ask.
    fn step(&mut self, id: u64, view: &View) -> Option<Step> {
        let lookup = self.active.get(&id)?;
        if !view.joined {
            // Not in the ring yet, our tables say we are alone, which is
            // false: taking a PUT as owner here would lose it once we join.
            // Go through the node we join by; if it cannot help, fail.
            return match (lookup.hops, view.bootstrap) {
                (0, Some(addr)) => self.ask(id, addr, None),
                _ => self.fail(id),
            };
        }
        let (target, exclude) = (lookup.target, lookup.exclude.clone());
        let routing = view.routing;
        if routing.owns(&target) {
            let mut owners = vec![routing.me];
            owners.extend(
                routing
                    .successors
                    .iter()
                    .filter(|n| !exclude.contains(&n.id)),
            );
            self.done(id, owners)
        } else if let Some(owners) = routing.owner_among_successors(&target, &exclude) {
            self.done(id, owners)
        } else if let Some(next) = routing.closest_preceding(&target, &exclude) {
            self.ask(id, next.addr, Some(next.id))
        } else {
            self.fail(id)
        }
    }

    /// One more hop: the question to send, unless the path is too long.
    fn ask(&mut self, id: u64, addr: SocketAddr, peer: Option<Id>) -> Option<Step> {
        let lookup = self.active.get_mut(&id)?;
        lookup.hops += 1;
        if lookup.hops > MAX_HOPS {
            debug!("lookup {id} passed {MAX_HOPS} hops; giving up");
            return self.fail(id);
        }
        Some(Step::Ask {
            lookup: id,
            addr,
            peer,
            target: lookup.target,
            exclude: lookup.exclude.clone(),
        })
    }

    /// A FIND_REPLY to lookup `id`'s question to `asked` (None: asked by
    /// address only, the bootstrap or a lost peer).
    pub fn on_reply(
        &mut self,
        id: u64,
        asked: Option<Id>,
        found: bool,
        nodes: Vec<NodeRef>,
        view: &View,
    ) -> Option<Step> {
        let lookup = self.active.get(&id)?;
        if found {
            let exclude = lookup.exclude.clone();
            let owners: Vec<NodeRef> = nodes
                .into_iter()
                .enumerate()
                .filter(|(i, n)| {
                    *i == 0 || !(exclude.contains(&n.id) || view.dead.contains_key(&n.id))
                })
                .map(|(_, n)| n)
                .collect();
            return self.done(id, owners);
        }
        let next = nodes[0];
        // Each step must get strictly closer to the target, or we are going round in circles.
        let progress = match asked {
            Some(asked) => next.id.in_open(&asked, &lookup.target),
            None => true,
        };
        if next.id == view.routing.me.id || !progress || lookup.exclude.contains(&next.id) {
            let past = asked.map_or_else(|| "the bootstrap node".to_string(), |a| a.to_string());
            debug!("lookup {id}: no progress past {past}");
            self.retry(id, asked, view)
        } else {
            self.ask(id, next.addr, Some(next.id))
        }
    }

    /// Lookup `id`'s question to `asked` got no answer (the node marks
    /// `asked` dead first): route around it.
    pub fn on_no_answer(&mut self, id: u64, asked: Option<Id>, view: &View) -> Option<Step> {
        self.retry(id, asked, view)
    }

    /// Route around `asked` from our own tables.
    fn retry(&mut self, id: u64, asked: Option<Id>, view: &View) -> Option<Step> {
        let lookup = self.active.get_mut(&id)?;
        lookup.attempts += 1;
        if let Some(peer) = asked {
            if !lookup.exclude.contains(&peer) && lookup.exclude.len() < MAX_EXCLUDE {
                lookup.exclude.push(peer);
            }
        }
        let through_one = matches!(lookup.purpose, Purpose::Join | Purpose::Rejoin { .. });
        if lookup.attempts > MAX_ATTEMPTS || through_one {
            let lookup = self.active.remove(&id)?;
            Some(Step::Failed {
                lookup,
                dead_end: true,
            })
        } else {
            self.step(id, view)
        }
    }

    fn done(&mut self, id: u64, owners: Vec<NodeRef>) -> Option<Step> {
        let lookup = self.active.remove(&id)?;
        Some(Step::Done { lookup, owners })
    }

    /// Give lookup `id` up (its question could not be sent, say).
    pub fn fail(&mut self, id: u64) -> Option<Step> {
        let lookup = self.active.remove(&id)?;
        Some(Step::Failed {
            lookup,
            dead_end: false,
        })
    }
}
