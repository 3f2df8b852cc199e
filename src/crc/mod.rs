//! CRC, the Clemson Relay Chat: servers in a spanning tree, clients attached.

pub mod cli;
pub mod client;
pub mod codec;
pub mod describe;
pub mod recorder;
pub mod server;
