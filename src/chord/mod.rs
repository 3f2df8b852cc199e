//! Chord: a distributed hash table on a 160-bit SHA-1 ring (Stoica et al.,
//! SIGCOMM 2001), behind the course's DHT API. See docs/chord.md.

pub mod api_wire;
pub mod dht;
pub mod id;
pub mod links;
pub mod lookup;
pub mod maintenance;
pub mod node;
pub mod peer_wire;
pub mod routing;
pub mod store;
pub mod cli;
pub mod driver;
pub mod dht_cli;
