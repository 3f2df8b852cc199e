//! The client side: send operations to a replica's API and wait for their
//! results (pipelined on one connection), read the store.

use super::api::{code_meaning, ApiCodec, ApiMsg};
use super::op::hex;
use super::proposer::{timed_out_words, Pipeline};
use crate::wire::{Codec, Framed};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// A blocking connection to one replica's API.
pub struct ApiClient {
    stream: TcpStream,
    buf: Vec<u8>,
    addr: String,
    timeout: Duration,
}

/// The outcome of one operation.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub op: String,
    pub code: u8,
    pub message: String,
    pub latency: Duration,
    pub attempts: u32,
}

impl ApiClient {
    pub fn connect(addr: &str, timeout: Duration) -> Result<ApiClient, String> {
        let stream = TcpStream::connect(addr).map_err(|e| {
            format!(
                "cannot connect to {addr}: {}",
                crate::cli_words::io_error(&e)
            )
        })?;
        stream
            .set_read_timeout(Some(timeout))
            .map_err(|e| e.to_string())?;
        let _ = stream.set_nodelay(true);
        Ok(ApiClient {
            stream,
            buf: Vec::new(),
            addr: addr.to_string(),
            timeout,
        })
    }

    pub fn send(&mut self, msg: &ApiMsg) -> Result<(), String> {
        self.stream
            .write_all(&msg.to_frame())
            .map_err(|e| format!("cannot send: {e}"))
    }

    pub fn recv(&mut self) -> Result<ApiMsg, String> {
        loop {
            let next = Framed(ApiCodec).decode(&self.buf);
            if let Some((msg, len)) = next.map_err(|e| e.to_string())? {
                self.buf.drain(..len);
                return Ok(msg);
            }
            let mut chunk = [0u8; 16 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err("the replica closed the connection".into()),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(self.timed_out())
                }
                Err(e) => return Err(format!("lost the connection to {}: {e}", self.addr)),
            }
        }
    }

    /// Run `ops`, keeping up to `window` in flight; code-2 results are
    /// retried (same request id) up to `retries` times (see [`Pipeline`]).
    pub fn run(
        &mut self,
        ops: &[String],
        window: usize,
        retries: u32,
        mut each: impl FnMut(usize, &Outcome),
    ) -> Result<Vec<Outcome>, String> {
        let mut pipeline = Pipeline::new(rand::random(), ops.to_vec(), window, retries);
        while !pipeline.finished() {
            for msg in pipeline.fill(Instant::now()) {
                self.send(&msg)?;
            }
            match self.recv()? {
                ApiMsg::Result {
                    seq, code, message, ..
                } => {
                    if let Some(again) =
                        pipeline.on_result(Instant::now(), seq, code, message, &mut each)
                    {
                        self.send(&again)?;
                    }
                }
                other => return Err(format!("unexpected answer {other:?}")),
            }
        }
        Ok(pipeline.outcomes())
    }

    /// What a time-out may mean, asked on a fresh connection: the group's
    /// quorum and how many of its peers the replica is linked to.
    fn timed_out(&self) -> String {
        let group = ApiClient::connect(&self.addr, Duration::from_secs(2))
            .and_then(|mut c| c.info())
            .ok();
        timed_out_words(&self.addr, self.timeout, group)
    }

    /// The replica's group: (n, f, quorum, authenticated links to peers).
    pub fn info(&mut self) -> Result<(u8, u8, u8, u8), String> {
        self.send(&ApiMsg::Info)?;
        match self.recv()? {
            ApiMsg::Group {
                n,
                f,
                quorum,
                links,
            } => Ok((n, f, quorum, links)),
            other => Err(format!("unexpected answer {other:?}")),
        }
    }

    pub fn get(&mut self, key: &str) -> Result<Option<String>, String> {
        self.send(&ApiMsg::Get { key: key.into() })?;
        match self.recv()? {
            ApiMsg::Value { value } => Ok(value),
            other => Err(format!("unexpected answer {other:?}")),
        }
    }

    /// The whole store as JSON, with the committed count and log digest.
    pub fn dump(&mut self) -> Result<serde_json::Value, String> {
        self.send(&ApiMsg::Dump)?;
        let mut store = serde_json::Map::new();
        loop {
            match self.recv()? {
                ApiMsg::DumpEntry { key, value } => {
                    store.insert(key, value.into());
                }
                ApiMsg::DumpEnd {
                    committed, digest, ..
                } => {
                    return Ok(serde_json::json!({
                        "store": store,
                        "committed": committed,
                        "log_digest": hex(&digest),
                    }))
                }
                other => return Err(format!("unexpected answer {other:?}")),
            }
        }
    }
}

pub fn describe(outcome: &Outcome) -> String {
    format!(
        "{} {} ({}): {}",
        outcome.code,
        code_meaning(outcome.code),
        outcome.op,
        outcome.message
    )
}

/// Percentile of sorted durations by nearest rank (`util::nearest_rank`,
/// as every bench), in milliseconds; 0 without samples.
pub fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    crate::util::nearest_rank(sorted, p).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}
