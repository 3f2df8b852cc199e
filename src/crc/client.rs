//! The CRC client as a state machine: registers, keeps the list of other
//! clients, records statuses and chats, and turns typed commands into frames.

use super::codec::{self, Message};
use crate::reactor::{Actions, CloseReason, ConnId, Protocol};
use log::{info, log_enabled, warn, Level};
use serde_json::json;
use std::net::SocketAddr;

#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub id: u32,
    pub username: String,
    pub info: String,
    pub server: SocketAddr,
    /// Leave when the user types `/quit` (a person at a terminal); a driven
    /// client stays up so its final state can still be read.
    pub exit_on_quit: bool,
}

pub struct Client {
    config: ClientConfig,
    server: Option<ConnId>,
    /// Other clients, in the order they were announced: (id, name).
    users: Vec<(u32, String)>,
    status_updates_log: Vec<String>,
    chat_messages_log: Vec<String>,
    quitting: bool,
    /// True until the connection to the server is made or has failed.
    connecting: bool,
    /// Chats and quits typed before the server answered: sent once it does.
    typed_early: Vec<String>,
    stdin_closed: bool,
    /// Why the connection to the server could not be made, if it could not.
    connect_error: Option<String>,
}

pub const HELP: &str = "commands: /msg <id> <text>, /quit [text], /who, /state, /help";

impl Client {
    pub fn new(config: ClientConfig) -> Self {
        Client {
            config,
            server: None,
            users: Vec::new(),
            status_updates_log: Vec::new(),
            chat_messages_log: Vec::new(),
            quitting: false,
            connecting: true,
            typed_early: Vec::new(),
            stdin_closed: false,
            connect_error: None,
        }
    }

    pub fn state(&self) -> serde_json::Value {
        let mut ids: Vec<u32> = self.users.iter().map(|u| u.0).collect();
        ids.sort_unstable();
        json!({
            "id": self.config.id,
            "username": self.config.username,
            "connected": self.server.is_some(),
            "connected_user_ids": ids,
            "status_updates_log": self.status_updates_log,
            "chat_messages_log": self.chat_messages_log,
        })
    }

    /// Why the client never reached its server, if it never did.
    pub fn connect_error(&self) -> Option<&str> {
        self.connect_error.as_deref()
    }

    /// The connection attempt is settled: run what was typed meanwhile, and
    /// stop if standard input already ended.
    fn settle(&mut self, out: &mut Actions) {
        self.connecting = false;
        for line in std::mem::take(&mut self.typed_early) {
            self.command(&line, out);
        }
        if self.stdin_closed {
            out.stop();
        }
    }

    fn name_of(&self, id: u32) -> String {
        self.users
            .iter()
            .find(|u| u.0 == id)
            .map(|u| u.1.clone())
            .unwrap_or_else(|| format!("#{id}"))
    }

    /// Tell the person at the terminal (and the log).
    fn say(&self, line: String, out: &mut Actions) {
        out.print(line);
    }

    fn send(&self, frame: &[u8], out: &mut Actions) -> bool {
        match self.server {
            Some(conn) => {
                info!("Sending message to {}", codec::python_repr(frame));
                out.send(conn, frame);
                true
            }
            None => false,
        }
    }

    fn on_message(&mut self, message: Message<'_>, out: &mut Actions) {
        match message {
            Message::Status { text, code, .. } => {
                let text = String::from_utf8_lossy(text).into_owned();
                let kind = match code {
                    codec::STATUS_WELCOME => "welcome",
                    codec::STATUS_UNKNOWN_ID => "unknown ID",
                    codec::STATUS_DUPLICATE_ID => "duplicate ID",
                    _ => "status",
                };
                self.say(format!("* [{kind}] {text}"), out);
                self.status_updates_log.push(text);
            }
            Message::ClientRegistration {
                source, name, info, ..
            } => {
                if source != self.config.id && !self.users.iter().any(|u| u.0 == source) {
                    let name = String::from_utf8_lossy(name).into_owned();
                    self.say(
                        format!(
                            "* {name} (#{source}) joined: {}",
                            String::from_utf8_lossy(info)
                        ),
                        out,
                    );
                    self.users.push((source, name));
                }
            }
            Message::ClientChat { source, text, .. } => {
                let text = String::from_utf8_lossy(text).into_owned();
                self.say(format!("<{}> {text}", self.name_of(source)), out);
                self.chat_messages_log.push(text);
            }
            Message::ClientQuit { source, text } => {
                let name = self.name_of(source);
                self.users.retain(|u| u.0 != source);
                self.say(
                    format!(
                        "* {name} (#{source}) left: {}",
                        String::from_utf8_lossy(text)
                    ),
                    out,
                );
            }
            Message::ServerRegistration { .. } | Message::ServerQuit { .. } => {
                warn!("ignoring a server-only frame sent to a client");
            }
        }
    }

    fn command(&mut self, line: &str, out: &mut Actions) {
        let line = line.trim();
        let (word, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let rest = rest.trim_start();
        match word {
            "" => {}
            "state" | "/state" => out.print(self.state().to_string()),
            "quit" => out.stop(),
            "/help" | "help" => out.print(HELP),
            "/who" => {
                if self.users.is_empty() {
                    out.print("nobody else is here");
                }
                for (id, name) in &self.users {
                    out.print(format!("#{id} {name}"));
                }
            }
            "/msg" => {
                let (id, text) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
                let Ok(destination) = id.parse::<u32>() else {
                    out.print(format!(
                        "usage: /msg <id> <text>  ('{id}' is not a numeric ID)"
                    ));
                    return;
                };
                let frame = codec::to_bytes(&Message::ClientChat {
                    source: self.config.id,
                    destination,
                    text: text.as_bytes(),
                });
                if frame.len() > codec::MAX_FRAME {
                    out.print(format!(
                        "message too long ({} bytes; limit {})",
                        text.len(),
                        codec::MAX_FRAME - 13
                    ));
                } else if !self.send(&frame, out) {
                    out.print("not connected to a server");
                }
            }
            "/quit" => {
                let frame = codec::to_bytes(&Message::ClientQuit {
                    source: self.config.id,
                    text: rest.as_bytes(),
                });
                self.quitting = true;
                self.send(&frame, out);
                if self.config.exit_on_quit {
                    out.stop();
                }
            }
            other => out.print(format!("unknown command '{other}'; {HELP}")),
        }
    }
}

impl Protocol for Client {
    fn on_start(&mut self, out: &mut Actions) {
        info!("Launching client {}...", self.config.username);
        out.connect(self.config.server, 0);
    }

    fn on_connected(&mut self, _tag: u64, conn: ConnId, out: &mut Actions) {
        self.server = Some(conn);
        let frame = codec::to_bytes(&Message::ClientRegistration {
            source: self.config.id,
            last_hop: 0,
            name: self.config.username.as_bytes(),
            info: self.config.info.as_bytes(),
        });
        self.send(&frame, out);
        self.settle(out);
    }

    fn on_connect_failed(&mut self, _tag: u64, error: &str, out: &mut Actions) {
        let error = format!("could not connect to {}: {error}", self.config.server);
        warn!("{error}");
        self.say(format!("* [error] {error}"), out);
        self.connect_error = Some(error);
        self.settle(out);
    }

    fn on_data(&mut self, _conn: ConnId, data: &[u8], out: &mut Actions) -> Result<usize, String> {
        let mut used = 0;
        while let Some((message, len)) = codec::decode(&data[used..]).map_err(|e| e.to_string())? {
            if log_enabled!(Level::Info) {
                info!(
                    "Received message from Host ID #{} \"{}\"",
                    super::server::source_of(&message),
                    codec::python_repr(&data[used..used + len])
                );
            }
            used += len;
            self.on_message(message, out);
        }
        Ok(used)
    }

    fn on_closed(&mut self, _conn: ConnId, reason: &CloseReason, out: &mut Actions) {
        self.server = None;
        info!("Server has disconnected!");
        if !self.quitting {
            self.say(
                format!("* the server closed the connection ({reason})"),
                out,
            );
        }
    }

    fn on_stdin_line(&mut self, line: &str, out: &mut Actions) {
        let sends = line.trim_start().starts_with("/msg") || line.trim_start().starts_with("/quit");
        if self.connecting && sends {
            self.typed_early.push(line.to_string());
        } else {
            self.command(line, out);
        }
    }

    fn on_stdin_closed(&mut self, out: &mut Actions) {
        // Ctrl-D, or the end of a script piped in: leave once what was typed is sent.
        self.stdin_closed = true;
        if !self.connecting {
            out.stop();
        }
    }
}
