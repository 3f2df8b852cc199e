//! What every room of the node fills: the reactor actions of one event,
//! with the node's timers and link tags. A leaf module, so the rooms
//! (`ring/`, `dht/`, `rpc.rs`) name the actions type without importing the
//! node that dispatches to them.

use crate::reactor::Actions;

/// A node's timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Timer {
    /// Stabilize, fix fingers, check the predecessor, expire keys.
    Tick,
    /// Starts backlogged GETs once the output budget has room again.
    Pump,
    /// Sends the answers that completed while another connection's input
    /// was being handled (see `Dht::answer`).
    Outbox,
    /// Starts backlogged requests of clients that got room during a peer's input.
    Ready,
}

/// What an outgoing connection is for: the number `Links` gave the dial.
pub type LinkTag = u64;

/// The actions list the node (and every room of it) fills.
pub type NodeOut = Actions<Timer, LinkTag>;
