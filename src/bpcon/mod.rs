//! BPCon: Lamport's Byzantine Paxos, deciding a log of batches of key-value
//! operations. See docs/bpcon.md for the design and the wire formats.

pub mod crypto;
pub mod group;
pub mod messages;
pub mod op;
pub mod safety;
