//! Connections opened by test code ([`World::ext_connect`]): raw bytes in,
//! what the node answers out, closed or reset when the test says.

use super::{End, Event, ExtEnd, ExtId, ExtState, World};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

impl World {
    /// Open a connection from outside the nodes (a test client) to `addr`.
    pub fn ext_connect(&mut self, addr: SocketAddr) -> ExtId {
        let id = self.exts.len();
        let link = self.new_link(End::Ext(id));
        self.exts.push(ExtEnd {
            link,
            state: ExtState::Connecting,
            received: Vec::new(),
            pending: Vec::new(),
            shutdown_pending: false,
        });
        let from_addr = SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, 250)),
            40_000 + (id % 20_000) as u16,
        );
        self.open_link(link, None, addr, from_addr);
        id
    }

    /// Write raw bytes on a test connection (sent once it is up).
    pub fn ext_send(&mut self, ext: ExtId, bytes: &[u8]) {
        match self.exts[ext].state {
            ExtState::Connecting => self.exts[ext].pending.extend_from_slice(bytes),
            ExtState::Open => {
                let link = self.exts[ext].link;
                self.send_on_link(link, 0, bytes.to_vec());
            }
            _ => {}
        }
    }

    /// Half-close a test connection: no more bytes from it (the node sees
    /// its input end), but what the node still writes is received.
    pub fn ext_shutdown_write(&mut self, ext: ExtId) {
        if self.exts[ext].state == ExtState::Connecting {
            self.exts[ext].shutdown_pending = true;
        } else if self.exts[ext].state == ExtState::Open {
            let link = self.exts[ext].link;
            let delay = self.delay_on(link);
            self.schedule_on_link(
                link,
                1,
                delay,
                Event::Fin {
                    link,
                    to_side: 1,
                    reset: false,
                },
            );
        }
    }

    /// Close a test connection in an orderly way.
    pub fn ext_close(&mut self, ext: ExtId) {
        if matches!(self.exts[ext].state, ExtState::Open | ExtState::Connecting) {
            self.exts[ext].state = ExtState::Closed("closed by the test".into());
            let link = self.exts[ext].link;
            self.close_side(link, 0, false);
        }
    }

    /// Close a test connection abortively, after what it sent: the node
    /// reads those bytes first, then sees the connection reset (a client
    /// killed, or closing with unread answers, sends an RST).
    pub fn ext_abort(&mut self, ext: ExtId) {
        if self.exts[ext].state == ExtState::Open {
            self.exts[ext].state = ExtState::Closed("reset by the test".into());
            let link = self.exts[ext].link;
            self.close_side(link, 0, true);
        }
    }

    pub fn ext_state(&self, ext: ExtId) -> &ExtState {
        &self.exts[ext].state
    }

    /// Everything received on a test connection so far.
    pub fn ext_received(&self, ext: ExtId) -> &[u8] {
        &self.exts[ext].received
    }

    /// Take the bytes received on a test connection so far.
    pub fn ext_take(&mut self, ext: ExtId) -> Vec<u8> {
        std::mem::take(&mut self.exts[ext].received)
    }
}
