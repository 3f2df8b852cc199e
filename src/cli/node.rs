//! The one start-up sequence of every node process (CRC server and
//! client, gossip node and module, Chord node, BPCon replica): bind the
//! listeners, each failure said in the user's words, build the reactor
//! with standard input, hook the protocol's frame describer (the trace),
//! make the protocol from the bound addresses, print its listening lines,
//! run. Logging is started before, by [`super::start_logging`], right
//! after the arguments parse.

use super::Failure;
use crate::cli_words::io_error;
use crate::reactor::{Describer, Protocol, Reactor};
use std::net::{SocketAddr, TcpListener};

/// One listener a node needs: where (a host as typed, or an address), and
/// the words its failure starts with ("cannot listen for peers on
/// 127.0.0.1:27266", then ": address already in use").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    pub host: String,
    pub port: u16,
    pub failure: String,
}

impl Listen {
    /// `addr`, failing as "cannot listen on ADDR".
    pub fn on(addr: SocketAddr) -> Listen {
        Listen::said_as(addr, format!("cannot listen on {addr}"))
    }

    /// `addr`, failing as `failure` (then ": why").
    pub fn said_as(addr: SocketAddr, failure: String) -> Listen {
        Listen {
            host: addr.ip().to_string(),
            port: addr.port(),
            failure,
        }
    }

    fn bind(&self) -> Result<TcpListener, Failure> {
        TcpListener::bind((self.host.as_str(), self.port))
            .map_err(|e| Failure::Runtime(format!("{}: {}", self.failure, io_error(&e))))
    }
}

/// What the protocol's maker gives back: the protocol, and the lines the
/// node prints once it is listening ("listening on 0.0.0.0:4000").
pub struct Made<P> {
    pub protocol: P,
    pub banner: Vec<String>,
}

impl<P> Made<P> {
    pub fn quiet(protocol: P) -> Made<P> {
        Made {
            protocol,
            banner: Vec::new(),
        }
    }
}

/// Bind every listener of `listen` in order (the first that cannot be
/// bound is the failure), then `make` the protocol from the bound
/// addresses (port 0 resolved), build the reactor (standard input on,
/// frames described by `describe`), print the banner and run until the
/// protocol stops. The protocol comes back for its verdict (a client's
/// failure, a replica's).
pub fn run_node<P: Protocol>(
    listen: &[Listen],
    describe: Describer,
    make: impl FnOnce(&[SocketAddr]) -> Result<Made<P>, Failure>,
) -> Result<P, Failure> {
    let (listeners, bound) = bind_all(listen)?;
    let Made {
        mut protocol,
        banner,
    } = make(&bound)?;
    let mut reactor = Reactor::new(listeners, true)
        .map_err(|e| Failure::Runtime(format!("cannot start the event loop: {e}")))?;
    reactor.describe_frames_with(describe);
    for line in banner {
        println!("{line}");
    }
    reactor
        .run(&mut protocol)
        .map_err(|e| Failure::Runtime(format!("event loop failed: {e}")))?;
    Ok(protocol)
}

/// The listeners of `listen`, bound in order, and their addresses.
fn bind_all(listen: &[Listen]) -> Result<(Vec<TcpListener>, Vec<SocketAddr>), Failure> {
    let mut listeners = Vec::new();
    let mut bound = Vec::new();
    for l in listen {
        let listener = l.bind()?;
        bound.push(
            listener
                .local_addr()
                .map_err(|e| Failure::Runtime(format!("{}: {}", l.failure, io_error(&e))))?,
        );
        listeners.push(listener);
    }
    Ok((listeners, bound))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listeners_bind_in_order_and_port_0_is_resolved() {
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let (listeners, bound) = bind_all(&[Listen::on(any), Listen::on(any)]).unwrap();
        assert_eq!(listeners.len(), 2);
        assert!(bound.iter().all(|a| a.port() != 0 && a.ip() == any.ip()));
        assert_ne!(bound[0], bound[1]);
        assert_eq!(listeners[1].local_addr().unwrap(), bound[1]);
    }

    #[test]
    fn a_port_in_use_is_said_in_words_and_exits_1() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let peers = Listen::said_as(addr, format!("cannot listen for peers on {addr}"));
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let failure = bind_all(&[Listen::on(any), peers]).unwrap_err();
        assert_eq!(
            failure,
            Failure::Runtime(format!(
                "cannot listen for peers on {addr}: address already in use"
            ))
        );
        assert_eq!(failure.code(), 1);
    }

    #[test]
    fn a_host_that_does_not_resolve_fails_to_listen_in_words() {
        let listen = Listen {
            host: "no-such-host.invalid".into(),
            port: 1,
            failure: "cannot listen on no-such-host.invalid:1".into(),
        };
        let failure = bind_all(&[listen]).unwrap_err();
        assert!(
            failure
                .message()
                .starts_with("cannot listen on no-such-host.invalid:1: "),
            "{failure:?}"
        );
        assert!(!failure.message().contains("os error"), "{failure:?}");
    }

    #[test]
    fn the_maker_sees_the_bound_addresses_and_its_failure_stops_the_start() {
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let seen = std::cell::Cell::new(0u16);
        let failure = run_node::<crate::crc::server::Server>(
            &[Listen::on(any)],
            crate::crc::describe::describe,
            |bound| {
                seen.set(bound[0].port());
                Err(Failure::Usage("no".into()))
            },
        );
        assert_eq!(failure.err(), Some(Failure::Usage("no".into())));
        assert_ne!(seen.get(), 0);
    }
}
