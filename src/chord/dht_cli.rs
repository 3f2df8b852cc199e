//! `peerloop dht`: a DHT API client for people at a terminal.

use super::api_wire::{hex_key, text_key, ApiCodec, ApiMsg, Key, MAX_VALUE};
use crate::cli::address::{option_address, PortUse};
use crate::cli::{number_or, Command, Failure};
use crate::wire::{Codec, Framed};
use getopts::Options;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

const ABOUT: &str =
    "usage: peerloop dht --api ADDR put KEY VALUE [--ttl S] [--replication N] [--hex]
       peerloop dht --api ADDR get KEY [--hex]

Talks to a DHT node's API (PUT 650, GET 651, SUCCESS 652, FAILURE 653).
A KEY typed as text becomes 32 bytes: the 20-byte SHA-1 of the text, then
the first 12 bytes of the SHA-1 of those 20 bytes. With --hex it is 64 hex
digits taken as is. The node places the 32-byte key on the ring at its SHA-1.
`put` sends the PUT and waits until the node has read it (the API gives a
PUT no answer; a GET behind it does), then prints 'sent'; the node carries
it out after this command exits. A value is at most 65481 bytes.
`get` prints the value (exit 0) or 'not found' (exit 1).";

pub fn main(args: &[String]) -> u8 {
    let mut opts = Options::new();
    opts.optopt("", "api", "the node's DHT API address (required)", "ADDR");
    opts.optopt("", "ttl", "seconds to keep the value (default 3600)", "S");
    opts.optopt(
        "",
        "replication",
        "replication hint sent with PUT (default 3)",
        "N",
    );
    opts.optopt(
        "",
        "timeout",
        "seconds to wait for the node's answer (default 15)",
        "S",
    );
    opts.optflag("", "hex", "KEY is 64 hex digits");
    opts.optflag("h", "help", "print this help");
    // Every failure, not reaching the node too, is exit 2: exit 1 means
    // "not found".
    Command::new("peerloop dht", opts, ABOUT).run(args, |m| run(m).map_err(Failure::Usage))
}

fn run(m: &getopts::Matches) -> Result<u8, String> {
    let api = m.opt_str("api").ok_or("--api ADDR is required")?;
    let addr = option_address("--api", &api, PortUse::Connect)?;
    let parse_key = |text: &str| -> Result<Key, String> {
        if m.opt_present("hex") {
            hex_key(text)
        } else {
            Ok(text_key(text))
        }
    };
    let ttl: u16 = number_or(m, "ttl", 3600, 0, u16::MAX)?;
    let replication: u8 = number_or(m, "replication", 3, 0, u8::MAX)?;
    let timeout = Duration::from_secs(number_or(m, "timeout", 15, 1, 3600)?);
    let words = &m.free;
    let mut stream = TcpStream::connect(addr).map_err(|e| format!("cannot reach {addr}: {e}"))?;
    match words
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["put", key, value] => {
            if value.len() > MAX_VALUE {
                return Err(format!("a value is at most {MAX_VALUE} bytes"));
            }
            let key = parse_key(key)?;
            let msg = ApiMsg::Put {
                ttl,
                replication,
                key,
                value: value.as_bytes().to_vec(),
            };
            // A PUT has no answer. A GET behind it on the same connection
            // does, and the node reads requests in order: its answer means
            // the node has read the PUT, which it then carries out even
            // after we close. A node that refused the connection says so.
            let mut both = msg.to_bytes();
            both.extend_from_slice(&ApiMsg::Get { key }.to_bytes());
            stream
                .write_all(&both)
                .map_err(|e| format!("sending to {addr}: {e}"))?;
            stream
                .set_read_timeout(Some(timeout))
                .map_err(|e| e.to_string())?;
            read_answer(&mut stream)
                .map_err(|e| format!("the node at {addr} did not take the PUT: {e}"))?;
            println!("sent");
            Ok(0)
        }
        ["get", key] => {
            let key = parse_key(key)?;
            stream
                .write_all(&ApiMsg::Get { key }.to_bytes())
                .map_err(|e| format!("sending to {addr}: {e}"))?;
            stream
                .set_read_timeout(Some(timeout))
                .map_err(|e| e.to_string())?;
            match read_answer(&mut stream)? {
                ApiMsg::Success { value, .. } => {
                    match String::from_utf8(value) {
                        Ok(text) => println!("{text}"),
                        Err(e) => println!("{}", super::node::hex(e.as_bytes())),
                    }
                    Ok(0)
                }
                _ => {
                    println!("not found");
                    Ok(1)
                }
            }
        }
        _ => Err(format!("expected 'put KEY VALUE' or 'get KEY'\n\n{ABOUT}")),
    }
}

/// Read one SUCCESS or FAILURE.
pub fn read_answer(stream: &mut TcpStream) -> Result<ApiMsg, String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some((msg, _)) = Framed(ApiCodec).decode(&buf).map_err(|e| e.to_string())? {
            return Ok(msg);
        }
        let n = stream
            .read(&mut chunk)
            .map_err(|e| format!("waiting for the answer: {e}"))?;
        if n == 0 {
            return Err("the node closed the connection without answering".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}
