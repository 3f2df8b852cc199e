//! Outgoing peer connections: at most one per peer address, opened on first
//! use and reused; frames wait in a bounded queue while it connects.

use super::actions::NodeOut;
use super::peer_wire::PeerMsg;
use crate::reactor::ConnId;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Instant;

/// Most outgoing connections kept open; the least recently used goes first.
pub const MAX_LINKS: usize = 256;
/// Most bytes queued for a peer that is still connecting.
pub const MAX_QUEUED: usize = 1 << 20;

/// What became of a message handed to [`Links::send`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    /// Written (or queued while the link connects).
    Yes,
    /// It does not fit in a frame: nothing was written.
    TooLarge(String),
    /// The link is still connecting and its queue is full: dropped.
    QueueFull,
}

struct Link {
    conn: Option<ConnId>,
    tag: u64,
    queued: Vec<u8>,
    last_used: Instant,
}

#[derive(Default)]
pub struct Links {
    links: BTreeMap<SocketAddr, Link>,
    by_conn: BTreeMap<ConnId, SocketAddr>,
    by_tag: BTreeMap<u64, SocketAddr>,
    next_tag: u64,
}

impl Links {
    /// Send `msg` to `addr`, connecting first if needed. Says whether it
    /// was sent, and names a link closed to stay under MAX_LINKS, whose
    /// requests have failed.
    pub fn send(
        &mut self,
        addr: SocketAddr,
        msg: &PeerMsg,
        now: Instant,
        out: &mut NodeOut,
    ) -> (Sent, Option<SocketAddr>) {
        let mut evicted = None;
        if !self.links.contains_key(&addr) {
            if self.links.len() >= MAX_LINKS {
                evicted = self.evict_oldest(out);
            }
            self.next_tag += 1;
            let tag = self.next_tag;
            self.by_tag.insert(tag, addr);
            self.links.insert(
                addr,
                Link {
                    conn: None,
                    tag,
                    queued: Vec::new(),
                    last_used: now,
                },
            );
            out.connect(addr, tag);
        }
        let link = self.links.get_mut(&addr).expect("link just ensured");
        link.last_used = now;
        let written = match link.conn {
            Some(conn) => {
                let mut written = Ok(());
                out.send_with(conn, |buf| written = msg.write(buf));
                written
            }
            None if link.queued.len() > MAX_QUEUED => return (Sent::QueueFull, evicted),
            None => msg.write(&mut link.queued),
        };
        match written {
            Ok(()) => (Sent::Yes, evicted),
            Err(e) => (Sent::TooLarge(e.to_string()), evicted),
        }
    }

    fn evict_oldest(&mut self, out: &mut NodeOut) -> Option<SocketAddr> {
        let oldest = *self
            .links
            .iter()
            .min_by_key(|(_, link)| link.last_used)
            .map(|(addr, _)| addr)?;
        self.remove(&oldest, out);
        Some(oldest)
    }

    /// The connection asked for with `tag` is up: send what waited.
    pub fn connected(&mut self, tag: u64, conn: ConnId, out: &mut NodeOut) -> Option<SocketAddr> {
        let addr = self.by_tag.remove(&tag)?;
        let link = self.links.get_mut(&addr)?;
        link.conn = Some(conn);
        self.by_conn.insert(conn, addr);
        if !link.queued.is_empty() {
            out.send(conn, &link.queued);
            link.queued = Vec::new();
        }
        Some(addr)
    }

    pub fn connect_failed(&mut self, tag: u64) -> Option<SocketAddr> {
        let addr = self.by_tag.remove(&tag)?;
        self.links.remove(&addr);
        Some(addr)
    }

    /// `conn` closed; if it was one of our links, forget it and say whose.
    pub fn closed(&mut self, conn: ConnId) -> Option<SocketAddr> {
        let addr = self.by_conn.remove(&conn)?;
        self.links.remove(&addr);
        Some(addr)
    }

    /// Close the link to `addr` ourselves (peer unresponsive, or evicted).
    pub fn remove(&mut self, addr: &SocketAddr, out: &mut NodeOut) {
        if let Some(link) = self.links.remove(addr) {
            self.by_tag.remove(&link.tag);
            if let Some(conn) = link.conn {
                self.by_conn.remove(&conn);
                out.close(conn);
            }
        }
    }

    /// Which peer an outgoing connection leads to.
    pub fn peer_of(&self, conn: ConnId) -> Option<SocketAddr> {
        self.by_conn.get(&conn).copied()
    }

    /// No message waits for a connection to open (a leaving node may stop).
    pub fn all_handed_over(&self) -> bool {
        self.links
            .values()
            .all(|link| link.conn.is_some() || link.queued.is_empty())
    }

    pub fn len(&self) -> usize {
        self.links.len()
    }

    pub fn is_empty(&self) -> bool {
        self.links.is_empty()
    }
}
