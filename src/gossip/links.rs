//! The node's open connections and what each one is: a local module on the
//! API port or another node on the P2P port. Membership and spreading read
//! them; only the node's event routing (`node.rs`) adds and removes them.

use super::budget::PeerDuplicates;
use crate::reactor::{ConnId, ListenerId};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{SocketAddr, SocketAddrV4};

pub const API_LISTENER: ListenerId = 0;
pub const P2P_LISTENER: ListenerId = 1;

/// A local module's connection.
pub struct Module {
    pub subscriptions: BTreeSet<u16>,
}

/// A connection to another node.
pub struct Peer {
    /// Its P2P listen address: known when we dialled it, else once it PUSHes or PULLs.
    pub addr: Option<SocketAddrV4>,
    pub outgoing: bool,
    /// Accepted beyond our capacity: answered (PULL) and closed, never gossiped on.
    pub transient: bool,
    /// Items it sent that we already knew, in the current window.
    pub duplicates: PeerDuplicates,
}

/// Which port a connection came in on (or, for our dials, P2P), with what
/// the node keeps for it.
pub enum Role {
    /// A local module on the API port.
    Api(Module),
    /// Another node on the P2P port.
    P2p(Peer),
}

impl fmt::Display for Role {
    /// The port's name, as the log lines say it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Api(_) => "API",
            Role::P2p(_) => "P2P",
        })
    }
}

pub struct Link {
    pub role: Role,
    pub remote: Option<SocketAddr>,
    /// Bytes of an incomplete frame waiting in the reactor's buffer.
    pub partial: usize,
}

/// Every open connection, by id.
#[derive(Default)]
pub struct Links {
    map: BTreeMap<ConnId, Link>,
}

impl Links {
    /// Open connections of both kinds.
    pub fn count(&self) -> usize {
        self.map.len()
    }

    pub fn get(&self, conn: ConnId) -> Option<&Link> {
        self.map.get(&conn)
    }

    pub fn get_mut(&mut self, conn: ConnId) -> Option<&mut Link> {
        self.map.get_mut(&conn)
    }

    pub fn insert(&mut self, conn: ConnId, link: Link) {
        self.map.insert(conn, link);
    }

    pub fn remove(&mut self, conn: ConnId) -> Option<Link> {
        self.map.remove(&conn)
    }

    pub fn module(&self, conn: ConnId) -> Option<&Module> {
        match self.get(conn).map(|l| &l.role) {
            Some(Role::Api(m)) => Some(m),
            _ => None,
        }
    }

    pub fn module_mut(&mut self, conn: ConnId) -> Option<&mut Module> {
        match self.get_mut(conn).map(|l| &mut l.role) {
            Some(Role::Api(m)) => Some(m),
            _ => None,
        }
    }

    pub fn peer(&self, conn: ConnId) -> Option<&Peer> {
        match self.get(conn).map(|l| &l.role) {
            Some(Role::P2p(p)) => Some(p),
            _ => None,
        }
    }

    pub fn peer_mut(&mut self, conn: ConnId) -> Option<&mut Peer> {
        match self.get_mut(conn).map(|l| &mut l.role) {
            Some(Role::P2p(p)) => Some(p),
            _ => None,
        }
    }

    /// The peers it gossips with: every P2P link but the transient ones.
    pub fn peers(&self) -> impl Iterator<Item = (ConnId, &Peer)> + '_ {
        self.map.iter().filter_map(|(&id, link)| match &link.role {
            Role::P2p(p) if !p.transient => Some((id, p)),
            _ => None,
        })
    }

    pub fn peer_count(&self) -> usize {
        self.peers().count()
    }

    /// P2P links, transient ones included.
    pub fn p2p_count(&self) -> usize {
        self.modules_and_p2p().1
    }

    pub fn module_count(&self) -> usize {
        self.modules_and_p2p().0
    }

    fn modules_and_p2p(&self) -> (usize, usize) {
        let modules = self
            .map
            .values()
            .filter(|l| matches!(l.role, Role::Api(_)))
            .count();
        (modules, self.map.len() - modules)
    }

    /// The peers' connections but `except`, in order.
    pub fn peer_conns_except(&self, except: &[ConnId]) -> Vec<ConnId> {
        self.peers()
            .map(|(id, _)| id)
            .filter(|id| !except.contains(id))
            .collect()
    }

    /// The modules subscribed to `data_type` but `except`, in order.
    pub fn subscribers(&self, data_type: u16, except: Option<ConnId>) -> Vec<ConnId> {
        self.map
            .iter()
            .filter_map(|(&id, link)| match &link.role {
                Role::Api(m) if Some(id) != except && m.subscriptions.contains(&data_type) => {
                    Some(id)
                }
                _ => None,
            })
            .collect()
    }

    /// Every type some module subscribed to.
    pub fn subscriptions(&self) -> BTreeSet<u16> {
        self.map
            .values()
            .filter_map(|l| match &l.role {
                Role::Api(m) => Some(m.subscriptions.iter().copied()),
                _ => None,
            })
            .flatten()
            .collect()
    }

    /// The P2P addresses of the peers it gossips with, sorted.
    pub fn peer_addrs(&self) -> Vec<SocketAddrV4> {
        let mut addrs: Vec<SocketAddrV4> = self.peers().filter_map(|(_, p)| p.addr).collect();
        addrs.sort_unstable();
        addrs
    }

    /// Who is at the other end, for log lines.
    pub fn describe(&self, conn: ConnId) -> String {
        match self.map.get(&conn) {
            Some(Link {
                role: Role::P2p(Peer { addr: Some(a), .. }),
                ..
            }) => format!("peer {a}"),
            Some(Link {
                remote: Some(r),
                role,
                ..
            }) => match role {
                Role::P2p(_) => format!("peer connection from {r}"),
                Role::Api(_) => format!("module {r}"),
            },
            _ => format!("connection {conn}"),
        }
    }
}
