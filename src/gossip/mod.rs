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
pub mod driver;
pub mod items;
pub mod known;
pub mod node;
pub mod p2p;

#[cfg(test)]
mod sim_tests;

/// An OS error in words: "Connection refused", not "Connection refused (os error 111)".
pub(crate) fn plain_error(error: &str) -> String {
    match error.rfind(" (os error ") {
        Some(at) if error.ends_with(')') => error[..at].to_string(),
        _ => error.to_string(),
    }
}
