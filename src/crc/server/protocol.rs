//! The server as the reactor drives it: links opened and closed, input
//! (with the relay fast path for runs of chats), standard input.

use super::{source_of, Link, Server};
use crate::crc::codec::{self, Message};
use crate::reactor::{CloseReason, ConnId, ListenerId, Out, Protocol};
use log::{info, log_enabled, Level};
use std::net::SocketAddr;
use std::time::Instant;

impl Protocol for Server {
    type Timer = std::convert::Infallible;
    type Tag = ();

    fn on_start(&mut self, _now: Instant, out: &mut Out<Self>) {
        if let Some(addr) = self.config.connect_to {
            info!("Connecting to remote server {addr}...");
            out.connect(addr, ());
        }
    }

    fn on_accept(
        &mut self,
        _now: Instant,
        _listener: ListenerId,
        conn: ConnId,
        _peer: SocketAddr,
        _out: &mut Out<Self>,
    ) {
        self.links.insert(conn, Link::Incoming);
    }

    fn on_connected(&mut self, _now: Instant, _tag: Self::Tag, conn: ConnId, out: &mut Out<Self>) {
        self.links.insert(conn, Link::Outgoing);
        let mut frame = Vec::new();
        self.own_registration(0, &mut frame);
        self.send(conn, &frame, out);
    }

    fn on_connect_failed(
        &mut self,
        _now: Instant,
        _tag: Self::Tag,
        error: &str,
        out: &mut Out<Self>,
    ) {
        self.runs_alone(error, out);
    }

    fn on_data(
        &mut self,
        _now: Instant,
        conn: ConnId,
        data: &[u8],
        out: &mut Out<Self>,
    ) -> Result<usize, String> {
        // Not `wire::decode_each`: the relay fast path below reads a chat
        // from its header alone (`codec::peek_chat`) and queues a run of
        // them as one slice, which needs the byte offsets a per-message
        // callback does not see. Other frames are decoded with
        // `codec::decode`, the decoder `CrcCodec` wraps.
        let mut used = 0;
        // Where the last chat of this read went, as (destination, next hop).
        // A chat changes no link and no route, so the chats after it that go
        // to the same destination take the same hop without being looked up
        // again; and when nothing is logged per frame, such a run of chats
        // is queued as one slice (`run`: its hop and byte range), not frame
        // by frame. In a stream of chats most frames cost a header read only.
        let mut last_chat: Option<(u32, ConnId)> = None;
        let batch = !log_enabled!(Level::Info);
        let mut run: Option<(ConnId, usize, usize)> = None;
        loop {
            if batch {
                // The run's next frame, if it is one, read from its header alone.
                if let (Some((known, via)), Some((to, len))) =
                    (last_chat, codec::peek_chat(&data[used..]))
                {
                    if to == known {
                        let start = used;
                        used += len;
                        match &mut run {
                            Some((hop, _, end)) if *hop == via && *end == start => *end = used,
                            _ => {
                                if let Some((hop, from, end)) = run.take() {
                                    out.send(hop, &data[from..end]);
                                }
                                run = Some((via, start, used));
                            }
                        }
                        continue;
                    }
                }
            }
            let (message, len) = match codec::decode(&data[used..]) {
                Ok(Some(decoded)) => decoded,
                done => {
                    // The chats before a bad frame still go out, as they
                    // would have frame by frame.
                    if let Some((hop, from, end)) = run {
                        out.send(hop, &data[from..end]);
                    }
                    return done.map(|_| used).map_err(|e| e.to_string());
                }
            };
            let start = used;
            let frame = &data[start..start + len];
            if log_enabled!(Level::Info) {
                info!(
                    "Received message from Host ID #{} \"{}\"",
                    source_of(&message),
                    codec::python_repr(frame)
                );
            }
            used += len;
            let chat_to = match message {
                Message::ClientChat { destination, .. } => Some(destination),
                _ => None,
            };
            if let (Some(to), Some((known, via))) = (chat_to, last_chat) {
                // (When batching, such a chat took the fast path above.)
                if to == known && !batch {
                    self.send(via, frame, out);
                    continue;
                }
            }
            if let Some((hop, from, end)) = run.take() {
                out.send(hop, &data[from..end]);
            }
            self.on_message(conn, message, frame, out)?;
            match chat_to {
                Some(to) => {
                    last_chat = self.hosts.get(&to).map(|host| (to, host.first_link));
                }
                None => {
                    last_chat = None;
                    if !self.links.contains_key(&conn) {
                        return Ok(used); // refused or closed while handling
                    }
                }
            }
        }
    }

    fn on_closed(
        &mut self,
        _now: Instant,
        conn: ConnId,
        reason: &CloseReason,
        out: &mut Out<Self>,
    ) {
        match self.links.remove(&conn) {
            Some(Link::Client(id)) => {
                info!("Client {id} disconnected without a quit ({reason})");
                self.drop_link(conn, out);
            }
            Some(Link::Server(id)) => {
                info!("Server {id} disconnected ({reason})");
                self.drop_link(conn, out);
            }
            Some(Link::Outgoing) => info!("The server we joined closed the link ({reason})"),
            Some(Link::Incoming) | None => {}
        }
    }

    fn on_stdin_line(&mut self, _now: Instant, line: &str, out: &mut Out<Self>) {
        match line.trim() {
            "state" => out.print(self.state_line()),
            "quit" => {
                info!("Cleaning up the server");
                let mut frame = Vec::new();
                codec::encode(
                    &Message::ServerQuit {
                        source: self.config.id,
                        replacement: 0,
                        text: b"Server shutting down",
                    },
                    &mut frame,
                );
                self.to_servers(&frame, None, out);
                out.stop();
            }
            "" => {}
            other => out.print(format!("unknown command '{other}' (commands: state, quit)")),
        }
    }
}
