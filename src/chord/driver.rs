//! The reactor's view of a node: the only place that reads the clock,
//! handing `Instant::now()` to the state machine with every event.

use super::node::Node;
use crate::reactor::{Actions, CloseReason, ConnId, InputEnded, ListenerId, Protocol};
use std::net::SocketAddr;
use std::time::Instant;

pub struct Driver {
    pub node: Node,
}

impl Protocol for Driver {
    fn on_start(&mut self, out: &mut Actions) {
        self.node.on_start(Instant::now(), out);
    }

    fn on_accept(
        &mut self,
        listener: ListenerId,
        conn: ConnId,
        peer: SocketAddr,
        out: &mut Actions,
    ) {
        self.node
            .on_accept(Instant::now(), listener, conn, peer, out);
    }

    fn on_connected(&mut self, tag: u64, conn: ConnId, out: &mut Actions) {
        self.node.on_connected(Instant::now(), tag, conn, out);
    }

    fn on_connect_failed(&mut self, tag: u64, error: &str, out: &mut Actions) {
        self.node.on_connect_failed(Instant::now(), tag, error, out);
    }

    fn on_data(&mut self, conn: ConnId, data: &[u8], out: &mut Actions) -> Result<usize, String> {
        self.node.on_data(Instant::now(), conn, data, out)
    }

    fn on_peer_finished_sending(&mut self, conn: ConnId, out: &mut Actions) -> InputEnded {
        self.node.on_input_ended(Instant::now(), conn, out)
    }

    fn on_closed(&mut self, conn: ConnId, reason: &CloseReason, out: &mut Actions) {
        self.node.on_closed(Instant::now(), conn, reason, out);
    }

    fn on_timer(&mut self, token: u64, out: &mut Actions) {
        self.node.on_timer(Instant::now(), token, out);
    }

    fn on_stdin_line(&mut self, line: &str, out: &mut Actions) {
        self.node.on_stdin_line(Instant::now(), line, out);
    }
}
