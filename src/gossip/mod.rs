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
pub mod node;
pub mod p2p;
pub mod sim_net;
pub mod sim_scale;

#[cfg(test)]
mod node_tests;
#[cfg(test)]
mod sim_tests;

/// An OS error in words: "connection refused", not "Connection refused (os error 111)".
pub(crate) fn plain_error(error: &str) -> String {
    let plain = match error.rfind(" (os error ") {
        Some(at) if error.ends_with(')') => &error[..at],
        _ => error,
    };
    // The reactor words its errors in lower case ("connection refused");
    // the standard library's start with a capital. Say them one way.
    let mut chars = plain.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}
