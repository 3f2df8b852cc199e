//! `peerloop gossip-client`: a module for the terminal.
//!
//! `notify TYPE` subscribes, prints every NOTIFICATION as it arrives and
//! answers each with a VALIDATION (valid, or invalid with `--invalid`).
//! Standard input takes `state` (one JSON line: what it was notified of),
//! `valid` / `invalid` (the verdict from now on), `announce [--ttl N] TYPE DATA`
//! (sent on this same connection) and `quit`.
//!
//! `announce TYPE DATA [--ttl N]` sends one ANNOUNCE and exits.
//!
//! Both fail at once, with one line and exit code 1, when the node cannot
//! be reached (nothing listening, or no answer within [`CONNECT_TIMEOUT`]).

use super::api::{self, ApiCodec, ApiMessage};
use super::config;
use crate::cli::node::{run_node, Made};
use crate::cli::{start_logging, usage_error, Command, Failure};
use crate::cli_words::number_in_range;
use crate::cli_words::plain_error;
use crate::reactor::{CloseReason, ConnId, Out, Protocol};
use crate::wire::{decode_each, Framed, Stopped};
use getopts::Options;
use log::info;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::ops::ControlFlow;
use std::time::Duration;
use std::time::Instant;

/// The actions list this file fills.
type ModuleOut = Out<Module>;

/// A node that does not accept within this long is not there.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Notifications kept for the state output.
const KEPT_NOTIFICATIONS: usize = 10_000;

/// One NOTIFICATION received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notified {
    pub msg_id: u16,
    pub data_type: u16,
    pub data: Vec<u8>,
}

/// The subscribing module as a state machine.
pub struct Module {
    api: SocketAddr,
    data_type: u16,
    valid: bool,
    conn: Option<ConnId>,
    /// Frames typed before the connection was up.
    queued: Vec<u8>,
    pub notified: Vec<Notified>,
    /// Why the module stopped, if it failed: printed once, exit code 1.
    pub failure: Option<String>,
}

/// A module's answer to `state`: what the Gossip scenarios read. Printed
/// through a JSON value, so its keys are sorted, as they always were.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ModuleState {
    /// The API address it talks to.
    pub api: String,
    pub connected: bool,
    /// The notified texts, in arrival order.
    pub notifications: Vec<String>,
    /// The same notifications with their message ID and data type.
    pub notified: Vec<NotifiedState>,
    pub role: &'static str,
    /// The data type it announces and subscribes to.
    #[serde(rename = "type")]
    pub data_type: u16,
    /// What it answers every notification: "valid" or "invalid".
    pub verdict: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NotifiedState {
    pub data: String,
    pub id: u16,
    #[serde(rename = "type")]
    pub data_type: u16,
}

impl ModuleState {
    /// As a JSON value (keys sorted).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("a module state is always JSON")
    }
}

impl Module {
    pub fn new(api: SocketAddr, data_type: u16, valid: bool) -> Self {
        Module {
            api,
            data_type,
            valid,
            conn: None,
            queued: Vec::new(),
            notified: Vec::new(),
            failure: None,
        }
    }

    /// The state a scenario checks (`state` on standard input).
    pub fn state(&self) -> ModuleState {
        ModuleState {
            api: self.api.to_string(),
            connected: self.conn.is_some(),
            notifications: self
                .notified
                .iter()
                .map(|n| String::from_utf8_lossy(&n.data).into_owned())
                .collect(),
            notified: self
                .notified
                .iter()
                .map(|n| NotifiedState {
                    data: String::from_utf8_lossy(&n.data).into_owned(),
                    id: n.msg_id,
                    data_type: n.data_type,
                })
                .collect(),
            role: "module",
            data_type: self.data_type,
            verdict: if self.valid { "valid" } else { "invalid" },
        }
    }

    fn send(&mut self, frame: &[u8], out: &mut ModuleOut) {
        match self.conn {
            Some(conn) => out.send(conn, frame),
            None => self.queued.extend_from_slice(frame),
        }
    }

    fn announce(
        &mut self,
        ttl: u8,
        data_type: u16,
        data: &str,
        out: &mut ModuleOut,
    ) -> Result<(), String> {
        let mut frame = Vec::new();
        api::write_announce(&mut frame, ttl, data_type, data.as_bytes())
            .map_err(|e| e.to_string())?;
        self.send(&frame, out);
        info!("announced '{data}' as type {data_type} with TTL {ttl}");
        Ok(())
    }

    fn command(&mut self, line: &str, out: &mut ModuleOut) -> Result<(), String> {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            [] => {}
            ["state"] => out.print(self.state().to_json().to_string()),
            ["valid"] => self.valid = true,
            ["invalid"] => self.valid = false,
            ["quit"] | ["exit"] => out.stop(),
            ["announce", "--ttl", ttl, data_type, data @ ..] if !data.is_empty() => {
                let ttl = number_in_range("TTL", ttl, 0, u8::MAX)?;
                self.announce(ttl, parse_type(data_type)?, &data.join(" "), out)?;
            }
            ["announce", data_type, data @ ..] if !data.is_empty() => {
                self.announce(0, parse_type(data_type)?, &data.join(" "), out)?;
            }
            _ => {
                return Err(format!(
                "unknown command '{line}' (state, valid, invalid, announce [--ttl N] TYPE DATA, quit)"
            ))
            }
        }
        Ok(())
    }
}

impl Module {
    /// Stop with `why` (the caller prints it once).
    fn fail(&mut self, why: String, out: &mut ModuleOut) {
        if self.failure.is_none() {
            self.failure = Some(why);
        }
        out.stop();
    }
}

fn cannot_connect(api: SocketAddr, why: &str) -> String {
    format!("cannot connect to the gossip node at {api}: {why}")
}

/// The module's one timer: the node did not answer in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectTimeout;

impl Protocol for Module {
    type Timer = ConnectTimeout;
    type Tag = ();

    fn on_start(&mut self, _now: Instant, out: &mut Out<Self>) {
        out.connect(self.api, ());
        out.timer(CONNECT_TIMEOUT, ConnectTimeout);
    }

    fn on_connected(&mut self, _now: Instant, _tag: Self::Tag, conn: ConnId, out: &mut Out<Self>) {
        info!(
            "connected to {}; subscribing to type {}",
            self.api, self.data_type
        );
        self.conn = Some(conn);
        let mut frame = Vec::new();
        api::write_notify(&mut frame, self.data_type).expect("a NOTIFY is 8 bytes");
        out.send(conn, &frame);
        let queued = std::mem::take(&mut self.queued);
        out.send(conn, &queued);
    }

    fn on_connect_failed(
        &mut self,
        _now: Instant,
        _tag: Self::Tag,
        error: &str,
        out: &mut Out<Self>,
    ) {
        self.fail(cannot_connect(self.api, &plain_error(error)), out);
    }

    fn on_timer(&mut self, _now: Instant, _token: Self::Timer, out: &mut Out<Self>) {
        if self.conn.is_none() && self.failure.is_none() {
            let why = format!("no answer within {} s", CONNECT_TIMEOUT.as_secs());
            self.fail(cannot_connect(self.api, &why), out);
        }
    }

    fn on_data(
        &mut self,
        _now: Instant,
        conn: ConnId,
        data: &[u8],
        out: &mut Out<Self>,
    ) -> Result<usize, String> {
        let (used, stopped) = decode_each(&Framed(ApiCodec), data, |message| match message {
            ApiMessage::Notification {
                msg_id,
                data_type,
                data,
            } => {
                let text = String::from_utf8_lossy(data);
                out.print(format!(
                    "notification {msg_id} (type {data_type}): {text} -> {}",
                    if self.valid { "valid" } else { "invalid" }
                ));
                info!("notified of '{text}' (type {data_type}, message {msg_id})");
                let mut reply = Vec::new();
                api::write_validation(&mut reply, msg_id, self.valid)
                    .expect("a VALIDATION is 8 bytes");
                out.send(conn, &reply);
                if self.notified.len() < KEPT_NOTIFICATIONS {
                    self.notified.push(Notified {
                        msg_id,
                        data_type,
                        data: data.to_vec(),
                    });
                }
                ControlFlow::Continue(())
            }
            other => ControlFlow::Break(format!("a node sent a module {other:?}")),
        });
        match stopped {
            None => Ok(used),
            Some(Stopped::Decode(e)) => Err(e.to_string()),
            Some(Stopped::Handler(why)) => Err(why),
        }
    }

    fn on_closed(
        &mut self,
        _now: Instant,
        _conn: ConnId,
        reason: &CloseReason,
        out: &mut Out<Self>,
    ) {
        self.conn = None;
        let why = match reason {
            CloseReason::PeerClosed => "the gossip node closed the connection".to_string(),
            CloseReason::Io(e) => format!("lost the gossip node: socket error: {}", plain_error(e)),
            other => format!("lost the gossip node: {other}"),
        };
        self.fail(format!("{why} ({})", self.api), out);
    }

    fn on_stdin_line(&mut self, _now: Instant, line: &str, out: &mut Out<Self>) {
        if let Err(e) = self.command(line.trim(), out) {
            out.print(e);
        }
    }
}

fn parse_type(text: &str) -> Result<u16, String> {
    number_in_range("data type", text, 0, u16::MAX)
}

fn options() -> Options {
    let mut opts = Options::new();
    opts.optopt(
        "",
        "api",
        "the gossip node's API address (host:port)",
        "ADDR",
    );
    opts.optflag("", "invalid", "notify: answer every notification 'invalid'");
    opts.optopt(
        "",
        "ttl",
        "announce: hop budget, 0 = unlimited (default 0)",
        "N",
    );
    opts.optopt("", "log-file", "write a transcript here", "FILE");
    opts.optflag("h", "help", "print this help");
    opts
}

const ABOUT: &str = "usage: peerloop gossip-client --api ADDR notify TYPE [--invalid]\n       \
     peerloop gossip-client --api ADDR announce TYPE DATA [--ttl N]\n\n\
     notify: subscribe to TYPE, print notifications as they arrive and answer\n\
     each with a verdict. Standard input: state, valid, invalid,\n\
     announce [--ttl N] TYPE DATA, quit.\n\
     announce: send one item of TYPE to the node and exit.";

pub fn main(args: &[String]) -> u8 {
    Command::new("peerloop gossip-client", options(), ABOUT).run(args, |matches| {
        start_logging(matches)?;
        run(matches)?;
        Ok(0)
    })
}

/// `peerloop gossip-client --api ADDR notify TYPE [--invalid]` (without the
/// command word) as its module: the simulator (`peerloop test --sim`) builds
/// it so, and `main` through the same [`notify`].
pub fn notify_module(args: &[String]) -> Result<Module, String> {
    let matches = options().parse(args).map_err(|e| e.to_string())?;
    let api_text = matches.opt_str("api").ok_or("--api ADDR is required")?;
    let api =
        config::parse_connect_addr(&api_text).map_err(|e| format!("--api '{api_text}': {e}"))?;
    match matches.free.as_slice() {
        [word, data_type] if word == "notify" => notify(&matches, api, data_type),
        _ => Err("only `notify TYPE` runs as a module".into()),
    }
}

fn notify(matches: &getopts::Matches, api: SocketAddr, data_type: &str) -> Result<Module, String> {
    let data_type = parse_type(data_type)?;
    Ok(Module::new(api, data_type, !matches.opt_present("invalid")))
}

fn run(matches: &getopts::Matches) -> Result<(), Failure> {
    let api_text = matches
        .opt_str("api")
        .ok_or_else(|| Failure::UsageWithHelp("usage: --api ADDR is required".into()))?;
    let api = config::parse_connect_addr(&api_text)
        .map_err(|e| Failure::Usage(format!("--api '{api_text}': {e}")))?;
    let free: Vec<&str> = matches.free.iter().map(String::as_str).collect();
    match free.as_slice() {
        ["notify", data_type] => {
            let module = notify(matches, api, data_type).map_err(Failure::Usage)?;
            let module = run_node(&[], super::describe::describe, |_| Ok(Made::quiet(module)))?;
            match module.failure {
                Some(why) => Err(Failure::Runtime(why)),
                None => Ok(()),
            }
        }
        ["announce", data_type, data] => {
            let data_type = parse_type(data_type).map_err(Failure::Usage)?;
            let ttl = match matches.opt_str("ttl") {
                None => 0,
                Some(t) => usage_error(number_in_range("--ttl", &t, 0, u8::MAX))?,
            };
            let mut frame = Vec::new();
            api::write_announce(&mut frame, ttl, data_type, data.as_bytes())
                .map_err(|e| Failure::Usage(e.to_string()))?;
            let mut stream = TcpStream::connect_timeout(&api, CONNECT_TIMEOUT)
                .map_err(|e| Failure::Runtime(cannot_connect(api, &plain_error(&e.to_string()))))?;
            stream
                .write_all(&frame)
                .and_then(|()| stream.flush())
                .map_err(|e| {
                    Failure::Runtime(format!(
                        "cannot send to {api}: {}",
                        plain_error(&e.to_string())
                    ))
                })?;
            println!("announced '{data}' as type {data_type} with TTL {ttl} to {api}");
            Ok(())
        }
        _ => Err(Failure::UsageWithHelp(
            "usage: expected 'notify TYPE' or 'announce TYPE DATA'".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reactor::Actions;

    #[test]
    fn notifications_are_answered_with_the_current_verdict() {
        let mut module = Module::new("127.0.0.1:1".parse().unwrap(), 7, true);
        let mut out = Actions::new();
        module.on_connected(Instant::now(), (), 3, &mut out);
        assert_eq!(out.sent()[0].1, [0, 8, 1, 245, 0, 0, 0, 7]);
        out.clear();
        module.on_stdin_line(Instant::now(), "invalid", &mut out);
        let mut frame = Vec::new();
        api::write_notification(&mut frame, 9, 7, b"hi").unwrap();
        let used = module.on_data(Instant::now(), 3, &frame, &mut out).unwrap();
        assert_eq!(used, frame.len());
        assert_eq!(out.sent(), vec![(3, &[0, 8, 1, 247, 0, 9, 0, 0][..])]);
        assert_eq!(module.state().notifications, ["hi"]);
        assert_eq!(
            module.state().to_json().to_string(),
            r#"{"api":"127.0.0.1:1","connected":true,"notifications":["hi"],"notified":[{"data":"hi","id":9,"type":7}],"role":"module","type":7,"verdict":"invalid"}"#
        );
    }

    #[test]
    fn announce_lines_take_an_optional_ttl() {
        let mut module = Module::new("127.0.0.1:1".parse().unwrap(), 7, true);
        let mut out = Actions::new();
        module.on_stdin_line(Instant::now(), "announce --ttl 3 7 hello world", &mut out);
        let mut expected = Vec::new();
        api::write_announce(&mut expected, 3, 7, b"hello world").unwrap();
        module.on_stdin_line(Instant::now(), "announce 7 room 101", &mut out);
        api::write_announce(&mut expected, 0, 7, b"room 101").unwrap();
        assert_eq!(module.queued, expected);
    }
}
