//! The CRC client as a state machine: registers, keeps the list of other
//! clients, records statuses and chats, and turns typed commands into frames.

use super::codec::{self, CrcCodec, Message};
use crate::cli_words::number_in_range;
use crate::reactor::{CloseReason, ConnId, Out, Protocol};
use crate::wire::{self, Stopped};
use log::{info, log_enabled, warn, Level};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::time::Instant;

/// A client's answer to `state`: what the course's scenarios read. The
/// fields are in alphabetical order, the order the JSON has always had (it
/// was a `serde_json` map, which sorts its keys).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ClientState {
    /// The texts of the chat messages received, in arrival order.
    pub chat_messages_log: Vec<String>,
    pub connected: bool,
    /// The users this client knows of, sorted.
    pub connected_user_ids: Vec<u32>,
    pub id: u32,
    /// The texts of the statuses received, in arrival order.
    pub status_updates_log: Vec<String>,
    pub username: String,
}

impl ClientState {
    /// As a JSON value (keys sorted).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("a client state is always JSON")
    }
}

/// The actions list this file fills.
type ClientOut = Out<Client>;

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
    /// The server answered our registration (welcome or refusal).
    answered: bool,
    /// Why this client failed (no connection, or its ID was refused): the
    /// command exits non-zero with it.
    failure: Option<String>,
}

/// The client's one timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// Ends a client waiting for the server's answer after standard input
    /// closed: a silent server must not keep it forever.
    Leave,
}
const LEAVE_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

pub const HELP: &str = "commands: /msg <id> <text>, /quit [text], /who, /state, /help";
const MSG_USAGE: &str = "usage: /msg <id> <text>";

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
            answered: false,
            failure: None,
        }
    }

    /// The state a scenario checks (`state` on standard input).
    pub fn state(&self) -> ClientState {
        let mut connected_user_ids: Vec<u32> = self.users.iter().map(|u| u.0).collect();
        connected_user_ids.sort_unstable();
        ClientState {
            chat_messages_log: self.chat_messages_log.clone(),
            connected: self.server.is_some(),
            connected_user_ids,
            id: self.config.id,
            status_updates_log: self.status_updates_log.clone(),
            username: self.config.username.clone(),
        }
    }

    /// Why the client failed (it never reached its server, or the server
    /// refused its ID), if it did.
    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    /// The connection attempt is settled: run what was typed meanwhile, and
    /// leave if standard input already ended.
    fn settle(&mut self, out: &mut ClientOut) {
        self.connecting = false;
        for line in std::mem::take(&mut self.typed_early) {
            self.command(&line, out);
        }
        if self.stdin_closed {
            self.leave(out);
        }
    }

    /// Standard input ended: quit politely (a CLIENT QUIT, so the others see
    /// a quit rather than a lost connection), once the server has answered
    /// the registration; a refused or disconnected client just stops.
    fn leave(&mut self, out: &mut ClientOut) {
        if self.quitting || self.server.is_none() || self.failure.is_some() {
            out.stop();
        } else if !self.answered {
            out.timer(LEAVE_GRACE, Timer::Leave);
        } else {
            let frame = codec::to_bytes(&Message::ClientQuit {
                source: self.config.id,
                text: b"",
            });
            self.quitting = true;
            self.send(&frame, out);
            out.stop();
        }
    }

    fn name_of(&self, id: u32) -> String {
        if id == self.config.id {
            return self.config.username.clone();
        }
        self.users
            .iter()
            .find(|u| u.0 == id)
            .map(|u| u.1.clone())
            .unwrap_or_else(|| format!("#{id}"))
    }

    /// Tell the person at the terminal (and the log).
    fn say(&self, line: String, out: &mut ClientOut) {
        out.print(line);
    }

    fn send(&self, frame: &[u8], out: &mut ClientOut) -> bool {
        match self.server {
            Some(conn) => {
                info!("Sending message to {}", codec::python_repr(frame));
                out.send(conn, frame);
                true
            }
            None => false,
        }
    }

    fn on_message(&mut self, message: Message<'_>, out: &mut ClientOut) {
        match message {
            Message::Status { text, code, .. } => {
                let text = String::from_utf8_lossy(text).into_owned();
                let kind = match code {
                    codec::STATUS_WELCOME => "welcome",
                    codec::STATUS_UNKNOWN_ID => "unknown ID",
                    codec::STATUS_DUPLICATE_ID => "duplicate ID",
                    _ => "status",
                };
                let refused = code == codec::STATUS_DUPLICATE_ID && !self.answered;
                if code == codec::STATUS_WELCOME || refused {
                    self.answered = true;
                }
                if refused {
                    self.failure = Some(format!("the server refused this client: {text}"));
                }
                if refused && self.config.exit_on_quit {
                    // A person at the terminal: the exit error says it, once.
                    out.stop();
                } else {
                    self.say(format!("* [{kind}] {text}"), out);
                }
                self.status_updates_log.push(text);
                if self.stdin_closed {
                    self.leave(out);
                }
            }
            Message::ClientRegistration {
                source, name, info, ..
            } => {
                if source != self.config.id && !self.users.iter().any(|u| u.0 == source) {
                    let name = String::from_utf8_lossy(name).into_owned();
                    let line = match info {
                        [] => format!("* {name} (#{source}) joined"),
                        _ => format!(
                            "* {name} (#{source}) joined: {}",
                            String::from_utf8_lossy(info)
                        ),
                    };
                    self.say(line, out);
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
                let line = match text {
                    [] => format!("* {name} (#{source}) left"),
                    _ => format!(
                        "* {name} (#{source}) left: {}",
                        String::from_utf8_lossy(text)
                    ),
                };
                self.say(line, out);
            }
            Message::ServerRegistration { .. } | Message::ServerQuit { .. } => {
                warn!("ignoring a server-only frame sent to a client");
            }
        }
    }

    fn command(&mut self, line: &str, out: &mut ClientOut) {
        let line = line.trim();
        let (word, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let rest = rest.trim_start();
        match word {
            "" => {}
            "state" | "/state" => out.print(self.state().to_json().to_string()),
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
                let text = text.trim_start();
                if id.is_empty() {
                    out.print(MSG_USAGE);
                    return;
                }
                let destination = match number_in_range("ID", id, 1u32, u32::MAX) {
                    Ok(d) => d,
                    Err(e) => {
                        out.print(format!("{e}; {MSG_USAGE}"));
                        return;
                    }
                };
                if text.is_empty() {
                    out.print(format!("no text to send to {destination}; {MSG_USAGE}"));
                    return;
                }
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
            other if other.starts_with('/') => {
                out.print(format!("unknown command '{other}'; {HELP}"))
            }
            _ => out.print(format!(
                "'{line}' is not a command: to chat, type /msg <id> <text> (/help lists the commands)"
            )),
        }
    }
}

impl Protocol for Client {
    type Timer = Timer;
    type Tag = ();

    fn on_start(&mut self, _now: Instant, out: &mut Out<Self>) {
        info!("Launching client {}...", self.config.username);
        out.connect(self.config.server, ());
    }

    fn on_connected(&mut self, _now: Instant, _tag: Self::Tag, conn: ConnId, out: &mut Out<Self>) {
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

    fn on_connect_failed(
        &mut self,
        _now: Instant,
        _tag: Self::Tag,
        error: &str,
        out: &mut Out<Self>,
    ) {
        // Said once, by the command as it exits non-zero.
        self.failure = Some(format!(
            "could not connect to {}: {error}",
            self.config.server
        ));
        self.connecting = false;
        out.stop();
    }

    fn on_data(
        &mut self,
        _now: Instant,
        _conn: ConnId,
        data: &[u8],
        out: &mut Out<Self>,
    ) -> Result<usize, String> {
        let (used, stopped) = wire::decode_each(&CrcCodec, data, |(message, frame)| {
            if log_enabled!(Level::Info) {
                info!(
                    "Received message from Host ID #{} \"{}\"",
                    super::server::source_of(&message),
                    codec::python_repr(frame)
                );
            }
            self.on_message(message, out);
            ControlFlow::<Infallible>::Continue(())
        });
        match stopped {
            Some(Stopped::Decode(e)) => Err(e.to_string()),
            None | Some(Stopped::Handler(_)) => Ok(used),
        }
    }

    fn on_closed(
        &mut self,
        _now: Instant,
        _conn: ConnId,
        reason: &CloseReason,
        out: &mut Out<Self>,
    ) {
        self.server = None;
        info!("Server has disconnected!");
        let lost = !self.quitting && self.failure.is_none();
        if lost && self.config.exit_on_quit {
            // At a terminal, a client without its server has nothing left to
            // do: it exits 1, the reason said once by the command.
            self.failure = Some(format!("the server closed the connection ({reason})"));
            out.stop();
        } else if lost {
            // Driven: say it, and stay up so the final state can still be read.
            self.say(
                format!("* the server closed the connection ({reason})"),
                out,
            );
        }
        if self.stdin_closed {
            out.stop();
        }
    }

    fn on_timer(&mut self, _now: Instant, timer: Timer, out: &mut Out<Self>) {
        match timer {
            Timer::Leave => out.stop(),
        }
    }

    fn on_stdin_line(&mut self, _now: Instant, line: &str, out: &mut Out<Self>) {
        let sends = line.trim_start().starts_with("/msg") || line.trim_start().starts_with("/quit");
        if self.connecting && sends {
            self.typed_early.push(line.to_string());
        } else {
            self.command(line, out);
        }
    }

    fn on_stdin_closed(&mut self, _now: Instant, out: &mut Out<Self>) {
        // Ctrl-D, or the end of a script piped in: leave once what was typed is sent.
        self.stdin_closed = true;
        if !self.connecting {
            self.leave(out);
        }
    }
}

#[cfg(test)]
mod tests;
