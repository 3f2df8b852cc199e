//! Every frame but a registration: chats and statuses routed toward their
//! destination, quits, and what a lost link takes with it.

use super::{Kind, Link, Server, ServerOut};
use crate::crc::codec::{self, Message};
use crate::reactor::ConnId;
use log::{info, warn};

impl Server {
    /// Route a frame toward `destination`; false if it is unknown.
    pub(super) fn route(&self, destination: u32, frame: &[u8], out: &mut ServerOut) -> bool {
        match self.hosts.get(&destination) {
            Some(host) => {
                self.send(host.first_link, frame, out);
                true
            }
            None => false,
        }
    }

    /// Send a status from us to `to`, arriving by `via`.
    pub(super) fn status_to(
        &self,
        to: u32,
        via: ConnId,
        code: u16,
        text: &[u8],
        out: &mut ServerOut,
    ) {
        // An adjacent machine is addressed as 0, "the other end of this link".
        let destination = if self.link_id(via) == to { 0 } else { to };
        let frame = codec::to_bytes(&Message::Status {
            source: self.config.id,
            destination,
            code,
            text,
        });
        self.send(via, &frame, out);
    }

    pub(super) fn on_message(
        &mut self,
        conn: ConnId,
        message: Message<'_>,
        frame: &[u8],
        out: &mut ServerOut,
    ) -> Result<(), String> {
        let link = *self
            .links
            .get(&conn)
            .ok_or("frame on an unknown connection")?;
        match message {
            Message::ClientChat {
                source,
                destination,
                ..
            } => {
                if matches!(link, Link::Incoming | Link::Outgoing) {
                    return Err("chat before registration".into());
                }
                if !self.route(destination, frame, out) {
                    let text = codec::unknown_id_text(destination);
                    match self.hosts.get(&source) {
                        Some(host) => self.status_to(
                            source,
                            host.first_link,
                            codec::STATUS_UNKNOWN_ID,
                            &text,
                            out,
                        ),
                        None => self.status_to(source, conn, codec::STATUS_UNKNOWN_ID, &text, out),
                    }
                }
            }
            Message::ServerRegistration {
                source,
                last_hop,
                name,
                info,
            } => {
                self.on_server_registration(conn, link, (source, last_hop, name, info), out)?;
            }
            Message::ClientRegistration {
                source,
                last_hop,
                name,
                info,
            } => {
                self.on_client_registration(conn, link, (source, last_hop, name, info), out)?;
            }
            Message::Status {
                source,
                destination,
                text,
                ..
            } => {
                if destination == 0 || destination == self.config.id {
                    if link == Link::Outgoing {
                        let why = format!(
                            "server {source} refused us: {}",
                            String::from_utf8_lossy(text)
                        );
                        self.runs_alone(&why, out);
                    }
                    self.status_updates_log
                        .push(String::from_utf8_lossy(text).into_owned());
                } else if !self.route(destination, frame, out) {
                    warn!("dropping a status for unknown ID {destination}");
                }
            }
            Message::ClientQuit { source, .. } => match link {
                Link::Client(id) if id == source => {
                    self.forget(source);
                    self.to_servers(frame, Some(conn), out);
                    self.to_clients(frame, Some(conn), out);
                    self.links.remove(&conn);
                    out.close_after_flush(conn);
                }
                Link::Server(_) => {
                    if self.forget(source).is_some() {
                        self.to_servers(frame, Some(conn), out);
                        self.to_clients(frame, None, out);
                    }
                }
                _ => {
                    return Err(format!(
                        "quit for client {source} on a link that is not its own"
                    ))
                }
            },
            Message::ServerQuit { source, .. } => match link {
                Link::Server(id) if id == source => {
                    // The neighbour leaves: everything behind it goes with it.
                    self.drop_link(conn, out);
                    self.links.remove(&conn);
                    out.close_after_flush(conn);
                }
                Link::Server(_) => {
                    if self.forget(source).is_some() {
                        self.to_servers(frame, Some(conn), out);
                    }
                }
                _ => {
                    return Err(format!(
                        "server quit for {source} on a link that is not a server's"
                    ))
                }
            },
        }
        Ok(())
    }

    /// A link is gone: forget every machine reached through it and tell the rest.
    pub(super) fn drop_link(&mut self, conn: ConnId, out: &mut ServerOut) {
        let lost: Vec<u32> = self
            .learnt
            .iter()
            .copied()
            .filter(|id| self.hosts[id].first_link == conn)
            .collect();
        for id in lost {
            let Some(host) = self.forget(id) else {
                continue;
            };
            let mut frame = Vec::new();
            match host.kind {
                Kind::Client => {
                    info!("Client {id} is no longer reachable");
                    codec::encode(
                        &Message::ClientQuit {
                            source: id,
                            text: b"Connection lost",
                        },
                        &mut frame,
                    );
                    // Seeded bug (tests only): the other servers never hear of it.
                    if !crate::sim::bugs::seeded("crc.lost-client-not-announced") {
                        self.to_servers(&frame, Some(conn), out);
                    }
                    self.to_clients(&frame, Some(conn), out);
                }
                Kind::Server => {
                    info!("Server {id} is no longer reachable");
                    codec::encode(
                        &Message::ServerQuit {
                            source: id,
                            replacement: 0,
                            text: b"Connection lost",
                        },
                        &mut frame,
                    );
                    self.to_servers(&frame, Some(conn), out);
                }
            }
        }
    }
}
