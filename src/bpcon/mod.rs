//! BPCon: Lamport's Byzantine Paxos, deciding a log of batches of key-value
//! operations. See docs/bpcon.md for the design and the wire formats.

pub mod api;
pub mod bench;
pub mod byzantine;
#[cfg(test)]
mod certificate_tests;
pub mod cli;
pub mod client;
pub mod crypto;
pub mod describe;
pub mod floor;
pub mod group;
pub mod impostor;
#[cfg(test)]
mod leader_tests;
pub mod mac;
pub mod messages;
pub mod node;
pub mod op;
pub mod proposer;
pub mod replica;
pub mod safety;
pub mod simnet;
pub mod state;
pub mod storage;
pub mod store;
#[cfg(test)]
mod tests;
pub mod wal;
