//! What a node is started with (from the command line or a simulation),
//! and the time limits derived from its stabilize interval.

use super::id::Id;
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Config {
    /// The bound peer address, which peers are told and which the ID hashes.
    pub listen: SocketAddr,
    /// The bound DHT API address (shown in the state).
    pub api: SocketAddr,
    pub id: Id,
    pub join: Option<SocketAddr>,
    pub successors: usize,
    pub replicas: usize,
    pub stabilize: Duration,
    /// Most API clients at once; ring peers have their own room.
    pub max_clients: usize,
    /// Node-wide bound on bytes held for API clients (see DEFAULT_CLIENT_MEMORY).
    pub client_memory: usize,
    /// Where `now` sits on the Unix time line: the wall clock value
    /// versions are stamped from (version.rs).
    pub wall: super::version::WallClock,
}

impl Config {
    /// How long a peer has to answer a request.
    pub fn rpc_timeout(&self) -> Duration {
        (self.stabilize * 5).max(Duration::from_millis(1000))
    }

    /// How long an API request may take before it is answered with FAILURE.
    pub fn op_deadline(&self) -> Duration {
        (self.rpc_timeout() * 4).max(Duration::from_secs(5))
    }

    /// How long a node found dead is kept out of routing tables learnt from others.
    pub fn dead_memory(&self) -> Duration {
        (self.stabilize * 30).max(Duration::from_secs(3))
    }
}
