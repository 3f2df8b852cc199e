//! Gossip: the course's API for local modules (ANNOUNCE, NOTIFY,
//! NOTIFICATION, VALIDATION) and push/pull spreading between nodes (PULL,
//! PULL RESPONSE, PUSH, SEND CONTENT). See docs/gossip.md.

pub mod api;
pub mod bench;
pub mod budget;
pub mod cli;
pub mod client;
pub mod config;
pub mod describe;
pub mod items;
pub mod known;
mod links;
mod membership;
pub mod node;
pub mod p2p;
pub mod sim_net;
pub mod sim_scale;
mod spreading;
pub mod state;

#[cfg(test)]
mod node_tests;
#[cfg(test)]
mod sim_tests;
