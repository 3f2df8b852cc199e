//! The course's first phase (`network_connectivity` scenarios): a server
//! that listens, joins, sends its own registration, and only records what
//! it reads — it answers nothing.

use super::codec::{self, CrcCodec, Message};
use super::server::ServerConfig;
use crate::reactor::{ConnId, Out, Protocol};
use crate::wire::{self, Stopped};
use log::info;
use std::convert::Infallible;
use std::ops::ControlFlow;
use std::time::Instant;

pub struct Recorder {
    config: ServerConfig,
    received: Vec<String>,
}

impl Recorder {
    pub fn new(config: ServerConfig) -> Self {
        Recorder {
            config,
            received: Vec::new(),
        }
    }

    /// The state a scenario checks. The course's reference never filled
    /// in what it sent; neither do we.
    pub fn state(&self) -> RecorderState {
        RecorderState {
            id: self.config.id,
            name: self.config.name.clone(),
            recvd_messages_asdqw: self.received.clone(),
            sent_messages_asdqw: Vec::new(),
        }
    }
}

/// A recording server's answer to `state`, with the course's field names.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RecorderState {
    pub id: u32,
    pub name: String,
    pub recvd_messages_asdqw: Vec<String>,
    pub sent_messages_asdqw: Vec<String>,
}

impl RecorderState {
    /// As a JSON value (keys sorted, as they always were).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("a recorder state is always JSON")
    }
}

impl Protocol for Recorder {
    type Timer = std::convert::Infallible;
    type Tag = ();

    fn on_start(&mut self, _now: Instant, out: &mut Out<Self>) {
        if let Some(addr) = self.config.connect_to {
            info!("Connecting to remote server {addr}...");
            out.connect(addr, ());
        }
    }

    fn on_connected(&mut self, _now: Instant, _tag: Self::Tag, conn: ConnId, out: &mut Out<Self>) {
        info!("Connected to another server");
        out.print(format!(
            "joined the network through {} (recording only)",
            super::server::join_address(&self.config)
        ));
        let frame = codec::to_bytes(&Message::ServerRegistration {
            source: self.config.id,
            last_hop: 0,
            name: self.config.name.as_bytes(),
            info: self.config.info.as_bytes(),
        });
        out.send(conn, &frame);
    }

    fn on_connect_failed(
        &mut self,
        _now: Instant,
        _tag: Self::Tag,
        error: &str,
        out: &mut Out<Self>,
    ) {
        let line = super::server::could_not_join(&self.config, error);
        info!("{line}");
        out.print(line);
    }

    fn on_data(
        &mut self,
        _now: Instant,
        _conn: ConnId,
        data: &[u8],
        _out: &mut Out<Self>,
    ) -> Result<usize, String> {
        // One record per frame; bytes that are not CRC are recorded as they came.
        let mut record = |bytes: &[u8]| {
            info!("Received {}", codec::python_repr(bytes));
            self.received.push(crate::util::hex(bytes));
        };
        let (used, stopped) = wire::decode_each(&CrcCodec, data, |(_, frame)| {
            record(frame);
            ControlFlow::<Infallible>::Continue(())
        });
        match stopped {
            Some(Stopped::Decode(_)) => {
                record(&data[used..]);
                Ok(data.len())
            }
            None | Some(Stopped::Handler(_)) => Ok(used),
        }
    }

    fn on_stdin_line(&mut self, _now: Instant, line: &str, out: &mut Out<Self>) {
        match line.trim() {
            "state" => out.print(self.state().to_json().to_string()),
            "quit" => {
                info!("Cleaning up the server");
                out.stop();
            }
            _ => {}
        }
    }
}
