//! peerloop: four classic peer-to-peer protocols on one single-threaded
//! `mio` event loop. Each protocol is a state machine that does no I/O
//! (see `reactor::Protocol`); the reactor moves the bytes.

pub mod bench;
pub mod bpcon;
pub mod chord;
pub mod cli;
pub mod cli_words;
pub mod crc;
pub mod fuzz;
pub mod gossip;
pub mod logging;
pub mod port_lease;
pub mod reactor;
pub mod report;
pub mod scenario;
pub mod sim;
pub mod testkit;
pub mod util;
pub mod wire;
