//! The CRC server as a state machine: registrations, routing, statuses,
//! quits and lost links. It does no I/O; the reactor drives it.
//!
//! The rooms: this file holds the server's tables and the helpers every
//! room uses (sending, learning and forgetting hosts); `registration`
//! admits servers and clients and tells the network, `routing` handles
//! every other frame and lost links, `protocol` is the reactor's face (the
//! relay fast path in `on_data`), and `state` is the `state` answer.

mod protocol;
mod registration;
mod routing;
mod state;
#[cfg(test)]
mod tests;

pub use state::ServerState;

use super::codec::{self, Message};
use crate::reactor::{ConnId, Out};
use log::{info, log_enabled, Level};
use std::collections::HashMap;
use std::net::SocketAddr;

/// The actions list this file fills.
type ServerOut = Out<Server>;

/// What `peerloop server` was started with.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub id: u32,
    pub name: String,
    pub info: String,
    /// The server to join at start, if any.
    pub connect_to: Option<SocketAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Server,
    Client,
}

/// What a connection carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    /// Accepted, nothing registered yet.
    Incoming,
    /// Our own connection to the server we joined, before it introduced itself.
    Outgoing,
    Server(u32),
    Client(u32),
}

/// Another machine of the network.
#[derive(Debug, Clone)]
struct Host {
    kind: Kind,
    /// The adjacent connection through which it is reached.
    first_link: ConnId,
    name: Vec<u8>,
    info: Vec<u8>,
}

impl Host {
    fn new(kind: Kind, first_link: ConnId, name: &[u8], info: &[u8]) -> Host {
        Host {
            kind,
            first_link,
            name: name.to_vec(),
            info: info.to_vec(),
        }
    }
}

pub struct Server {
    config: ServerConfig,
    links: HashMap<ConnId, Link>,
    hosts: HashMap<u32, Host>,
    /// Host IDs in the order they were learnt: newcomers are told in this order.
    learnt: Vec<u32>,
    /// Adjacent servers and clients, in the order they registered.
    adjacent_servers: Vec<(u32, ConnId)>,
    adjacent_clients: Vec<(u32, ConnId)>,
    status_updates_log: Vec<String>,
    scratch: Vec<u8>,
}

impl Server {
    pub fn new(config: ServerConfig) -> Self {
        Server {
            config,
            links: HashMap::new(),
            hosts: HashMap::new(),
            learnt: Vec::new(),
            adjacent_servers: Vec::new(),
            adjacent_clients: Vec::new(),
            status_updates_log: Vec::new(),
            scratch: Vec::new(),
        }
    }

    fn link_id(&self, conn: ConnId) -> u32 {
        match self.links.get(&conn) {
            Some(Link::Server(id)) | Some(Link::Client(id)) => *id,
            _ => 0,
        }
    }

    /// Queue `frame` for `conn`, logging it as the reference does.
    fn send(&self, conn: ConnId, frame: &[u8], out: &mut ServerOut) {
        if log_enabled!(Level::Info) {
            let to = self.link_id(conn);
            if to == 0 {
                info!(
                    "Sending message to an unknown IO device \"{}\"",
                    codec::python_repr(frame)
                );
            } else {
                info!(
                    "Sending message to Host ID #{to} \"{}\"",
                    codec::python_repr(frame)
                );
            }
        }
        out.send(conn, frame);
    }

    /// Send `frame` to every adjacent server except the one on `except`.
    fn to_servers(&self, frame: &[u8], except: Option<ConnId>, out: &mut ServerOut) {
        for &(_, conn) in &self.adjacent_servers {
            if Some(conn) != except {
                self.send(conn, frame, out);
            }
        }
    }

    fn to_clients(&self, frame: &[u8], except: Option<ConnId>, out: &mut ServerOut) {
        for &(_, conn) in &self.adjacent_clients {
            if Some(conn) != except {
                self.send(conn, frame, out);
            }
        }
    }

    fn learn(&mut self, id: u32, host: Host) {
        self.hosts.insert(id, host);
        self.learnt.push(id);
    }

    fn forget(&mut self, id: u32) -> Option<Host> {
        let host = self.hosts.remove(&id)?;
        self.learnt.retain(|&h| h != id);
        self.adjacent_servers.retain(|a| a.0 != id);
        self.adjacent_clients.retain(|a| a.0 != id);
        Some(host)
    }

    /// The server named by --connect_to_host/--connect_to_port, in words.
    fn join_address(&self) -> String {
        join_address(&self.config)
    }

    /// The join failed: the server keeps running on its own (the course's
    /// scenarios expect it to) and says so once, with the address and why.
    fn runs_alone(&self, why: &str, out: &mut ServerOut) {
        let line = could_not_join(&self.config, why);
        info!("{line}");
        out.print(line);
    }

    fn is_taken(&self, id: u32) -> bool {
        id == self.config.id || self.hosts.contains_key(&id)
    }
}

/// The address a server joins through, in words.
pub fn join_address(config: &ServerConfig) -> String {
    match config.connect_to {
        Some(addr) => addr.to_string(),
        None => "no address".into(),
    }
}

/// The one line a server prints when it cannot join the network.
pub fn could_not_join(config: &ServerConfig, why: &str) -> String {
    format!(
        "could not join the network through {}: {why}; running alone",
        join_address(config)
    )
}

/// The machine a frame speaks for, as the reference names it in its logs.
pub fn source_of(message: &Message<'_>) -> u32 {
    match *message {
        Message::ServerRegistration { source, .. }
        | Message::Status { source, .. }
        | Message::ServerQuit { source, .. }
        | Message::ClientRegistration { source, .. }
        | Message::ClientChat { source, .. }
        | Message::ClientQuit { source, .. } => source,
    }
}
