//! One deterministic simulator for every protocol: the same [`Protocol`]
//! state machines that run on real sockets run here on a virtual clock, over
//! simulated TCP links, with every random choice drawn from one seed. A
//! failing seed replays exactly.
//!
//! [`Protocol`]: crate::reactor::Protocol

pub mod bugs;
pub mod cli;
mod latency;
mod world;

pub use latency::Latency;
pub use world::{host, ExtId, ExtState, Factory, Hosted, NodeId, Stats, World};

#[cfg(test)]
mod crc_tests;
