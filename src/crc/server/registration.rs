//! Admitting servers and clients: a newcomer is told the whole network
//! and the network is told of it; a taken ID is refused.

use super::{Host, Kind, Link, Server, ServerOut};
use crate::crc::codec::{self, Message};
use crate::reactor::ConnId;
use log::{info, warn};

impl Server {
    pub(super) fn own_registration(&self, last_hop: u32, out: &mut Vec<u8>) {
        codec::encode(
            &Message::ServerRegistration {
                source: self.config.id,
                last_hop,
                name: self.config.name.as_bytes(),
                info: self.config.info.as_bytes(),
            },
            out,
        );
    }

    /// Refuse a newcomer whose ID is taken: tell it why, then close.
    pub(super) fn refuse_duplicate(
        &mut self,
        conn: ConnId,
        id: u32,
        kind: Kind,
        out: &mut ServerOut,
    ) {
        let text = match kind {
            Kind::Server => codec::duplicate_server_text(id),
            Kind::Client => codec::duplicate_client_text(id),
        };
        warn!("refusing a second machine with ID {id}");
        let frame = codec::to_bytes(&Message::Status {
            source: self.config.id,
            destination: 0,
            code: codec::STATUS_DUPLICATE_ID,
            text: &text,
        });
        self.send(conn, &frame, out);
        self.links.remove(&conn);
        out.close_after_flush(conn);
    }

    /// Re-encode a registration with our ID as the last hop.
    pub(super) fn relayed_registration(&mut self, kind: Kind, id: u32) -> Vec<u8> {
        let host = &self.hosts[&id];
        self.scratch.clear();
        let (name, info) = (host.name.as_slice(), host.info.as_slice());
        let last_hop = self.config.id;
        let message = match kind {
            Kind::Server => Message::ServerRegistration {
                source: id,
                last_hop,
                name,
                info,
            },
            Kind::Client => Message::ClientRegistration {
                source: id,
                last_hop,
                name,
                info,
            },
        };
        codec::encode(&message, &mut self.scratch);
        std::mem::take(&mut self.scratch)
    }

    /// A registration a neighbouring server passes on: learn the machine
    /// and tell the other servers (and, of a client, our clients).
    fn learn_relayed(
        &mut self,
        conn: ConnId,
        source: u32,
        last_hop: u32,
        host: Host,
        out: &mut ServerOut,
    ) {
        let kind = host.kind;
        if self.is_taken(source) {
            // Two machines took one ID in different parts of the tree: keep the first.
            let what = match kind {
                Kind::Server => "server",
                Kind::Client => "client",
            };
            warn!("ignoring registration of {what} {source} via {last_hop}: ID already known");
            return;
        }
        self.learn(source, host);
        let frame = self.relayed_registration(kind, source);
        self.to_servers(&frame, Some(conn), out);
        if kind == Kind::Client {
            self.to_clients(&frame, None, out);
        }
    }

    pub(super) fn on_server_registration(
        &mut self,
        conn: ConnId,
        link: Link,
        (source, last_hop, name, info): (u32, u32, &[u8], &[u8]),
        out: &mut ServerOut,
    ) -> Result<(), String> {
        let host = Host::new(Kind::Server, conn, name, info);
        match link {
            Link::Incoming if last_hop == 0 => {
                if self.is_taken(source) {
                    self.refuse_duplicate(conn, source, Kind::Server, out);
                    return Ok(());
                }
                info!("Accepted a connection from another server");
                self.learn(source, host);
                self.links.insert(conn, Link::Server(source));
                // Tell the newcomer everything we know: ourselves, servers, then clients.
                let mut dump = Vec::new();
                self.own_registration(self.config.id, &mut dump);
                self.send(conn, &dump, out);
                for kind in [Kind::Server, Kind::Client] {
                    let ids: Vec<u32> = self
                        .learnt
                        .iter()
                        .copied()
                        .filter(|id| *id != source && self.hosts[id].kind == kind)
                        .collect();
                    for id in ids {
                        let frame = self.relayed_registration(kind, id);
                        self.send(conn, &frame, out);
                    }
                }
                let frame = self.relayed_registration(Kind::Server, source);
                self.to_servers(&frame, None, out);
                self.adjacent_servers.push((source, conn));
            }
            Link::Outgoing => {
                // The server we joined introduces itself first.
                if self.is_taken(source) {
                    return Err(format!(
                        "the server we joined uses ID {source}, which is already known"
                    ));
                }
                info!("Connected to another server");
                out.print(format!(
                    "joined the network through server {source} at {}",
                    self.join_address()
                ));
                self.learn(source, host);
                self.links.insert(conn, Link::Server(source));
                let frame = self.relayed_registration(Kind::Server, source);
                self.to_servers(&frame, None, out);
                self.adjacent_servers.push((source, conn));
            }
            Link::Server(_) if last_hop != 0 => {
                self.learn_relayed(conn, source, last_hop, host, out)
            }
            _ => {
                return Err(format!(
                    "unexpected server registration from ID {source} (last hop {last_hop})"
                ))
            }
        }
        Ok(())
    }

    pub(super) fn on_client_registration(
        &mut self,
        conn: ConnId,
        link: Link,
        (source, last_hop, name, info): (u32, u32, &[u8], &[u8]),
        out: &mut ServerOut,
    ) -> Result<(), String> {
        let host = Host::new(Kind::Client, conn, name, info);
        match link {
            Link::Incoming if last_hop == 0 => {
                if self.is_taken(source) {
                    self.refuse_duplicate(conn, source, Kind::Client, out);
                    return Ok(());
                }
                let known: Vec<u32> = self
                    .learnt
                    .iter()
                    .copied()
                    .filter(|id| self.hosts[id].kind == Kind::Client)
                    .collect();
                self.learn(source, host);
                self.links.insert(conn, Link::Client(source));
                let frame = self.relayed_registration(Kind::Client, source);
                self.to_servers(&frame, None, out);
                let welcome = codec::to_bytes(&Message::Status {
                    source: self.config.id,
                    destination: 0,
                    code: codec::STATUS_WELCOME,
                    text: &codec::welcome_text(name),
                });
                self.send(conn, &welcome, out);
                for id in known {
                    let other = self.relayed_registration(Kind::Client, id);
                    self.send(conn, &other, out);
                }
                self.to_clients(&frame, None, out);
                self.adjacent_clients.push((source, conn));
            }
            Link::Server(_) if last_hop != 0 => {
                self.learn_relayed(conn, source, last_hop, host, out)
            }
            _ => {
                return Err(format!(
                    "unexpected client registration from ID {source} (last hop {last_hop})"
                ))
            }
        }
        Ok(())
    }
}
