//! Chord: a distributed hash table on a 160-bit SHA-1 ring (Stoica et al.,
//! SIGCOMM 2001), behind the course's DHT API. See docs/chord.md.

pub mod actions;
pub mod api_wire;
pub mod bench;
pub mod cli;
pub mod config;
pub mod describe;
pub mod dht;
pub mod dht_cli;
#[cfg(test)]
mod hardening_tests;
pub mod harness;
pub mod id;
pub mod links;
pub mod lookup;
pub mod lookup_steps;
#[cfg(test)]
mod lookup_tests;
pub mod node;
pub mod output_budget;
pub mod peer_wire;
pub mod ring;
pub mod ring_check;
pub mod routing;
pub mod rpc;
pub mod sim_ring;
pub mod sim_scale;
pub mod state;
#[cfg(test)]
mod state_tests;
pub mod store;
#[cfg(test)]
mod tests;
pub mod version;
#[cfg(test)]
mod version_tests;
pub mod warnings;
