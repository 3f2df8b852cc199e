//! DHT API clients as connections: what each has in flight and waiting in
//! its backlog (bounded per client and for the node), starting backlogged
//! requests as room appears, and the outbox of answers that completed
//! during another connection's input. The requests themselves are
//! requests.rs.

use super::Dht;
use crate::chord::api_wire::{ApiMsg, MAX_VALUE};
use crate::chord::lookup::Lookups;
use crate::chord::ring::Ring;
use crate::chord::rpc::Ctx;
use crate::reactor::ConnId;
use crate::warn_repeated;
use std::collections::VecDeque;
use std::fmt;

/// Most requests one API connection has in flight; past it, what it sends
/// waits in its backlog (read, and carried out in order as answers go out).
pub const MAX_OPS_PER_CLIENT: usize = 512;
/// Most bytes of requests one API connection may have waiting in its
/// backlog; a client further ahead of its answers is disconnected (the
/// PUTs already read are still carried out).
pub const MAX_BACKLOG_PER_CLIENT: usize = 4 << 20;

/// One DHT API connection.
#[derive(Debug)]
pub struct ApiClient {
    /// Unique for the node's lifetime: a reused ConnId is another client.
    pub serial: u64,
    pub in_flight: usize,
    /// Requests read but not started (the client is at MAX_OPS_PER_CLIENT).
    pub backlog: VecDeque<ApiMsg>,
    pub backlog_bytes: usize,
    /// It sent its last request (half-close, or a bad frame after good
    /// ones): answer what it asked, then close.
    pub finishing: bool,
}

/// Bytes a backlogged request holds (its value plus bookkeeping).
pub(super) fn held_bytes(msg: &ApiMsg) -> usize {
    let value = match msg {
        ApiMsg::Put { value, .. } => value.len(),
        _ => 0,
    };
    value + 96
}

/// Why a client's request ends its connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientError {
    /// It sent SUCCESS or FAILURE, which only a node sends.
    SentAnAnswer,
    /// The connection is not (or no longer) a client's.
    NotAClient,
    /// Its backlog is over the bound (per client or for the node).
    TooFarAhead {
        backlog: usize,
        per_client: usize,
        node: usize,
    },
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::SentAnAnswer => write!(f, "a DHT client sent an answer message"),
            ClientError::NotAClient => {
                write!(f, "a request on a connection that is not a client")
            }
            ClientError::TooFarAhead {
                backlog,
                per_client,
                node,
            } => write!(
                f,
                "client is {backlog} bytes of requests ahead of its answers (limit {per_client} per client, {node} for the node)"
            ),
        }
    }
}

impl Dht {
    pub fn has_client(&self, conn: ConnId) -> bool {
        self.clients.contains_key(&conn)
    }

    /// Has this client sent its last request (its input is ignored now)?
    pub fn is_finishing(&self, conn: ConnId) -> bool {
        self.clients.get(&conn).is_some_and(|c| c.finishing)
    }

    /// A client connected.
    pub fn add_client(&mut self, conn: ConnId) {
        self.next_client += 1;
        self.clients.insert(
            conn,
            ApiClient {
                serial: self.next_client,
                in_flight: 0,
                backlog: VecDeque::new(),
                backlog_bytes: 0,
                finishing: false,
            },
        );
    }

    /// A request read from a client: kept in the client's backlog and
    /// started from there (`pump_backlogs`) as soon as it has room, which
    /// is at once below MAX_OPS_PER_CLIENT in flight (never refused).
    pub fn on_api_message(
        &mut self,
        conn: ConnId,
        msg: ApiMsg,
        cx: &mut Ctx,
    ) -> Result<(), ClientError> {
        match &msg {
            ApiMsg::Success { .. } | ApiMsg::Failure { .. } => {
                return Err(ClientError::SentAnAnswer);
            }
            ApiMsg::Put { value, .. } if value.len() > MAX_VALUE => {
                warn_repeated!(
                    cx.warnings.value_too_large,
                    cx.now,
                    "refusing a PUT from client {conn}: its value of {} bytes is over the {MAX_VALUE}-byte limit",
                    value.len()
                );
                return Ok(());
            }
            ApiMsg::Put { .. } | ApiMsg::Get { .. } => {}
        }
        let held = held_bytes(&msg);
        let total = self.backlog_total;
        let Some(client) = self.clients.get_mut(&conn) else {
            return Err(ClientError::NotAClient);
        };
        if client.backlog_bytes + held > MAX_BACKLOG_PER_CLIENT
            || total + held > self.cfg.client_memory
        {
            // No reactor hook pauses reading from one connection, so a
            // client this far ahead of its answers is let go instead.
            return Err(ClientError::TooFarAhead {
                backlog: client.backlog_bytes,
                per_client: MAX_BACKLOG_PER_CLIENT,
                node: self.cfg.client_memory,
            });
        }
        client.backlog_bytes += held;
        client.backlog.push_back(msg);
        self.backlog_total += held;
        if !self.ready.contains(&conn) {
            self.ready.push(conn);
        }
        Ok(())
    }

    /// Start backlogged requests of every client that has room now. Called
    /// at the end of each event, so an answer that leaves starts the next
    /// request without recursion.
    pub fn pump_backlogs(&mut self, ring: &Ring, lookups: &mut Lookups, cx: &mut Ctx) {
        while let Some(conn) = self.ready.pop() {
            while let Some((serial, msg)) = self.take_request(cx.now, conn, cx.out) {
                self.start_op(conn, Some(serial), msg, ring, lookups, cx);
            }
            let done = self
                .clients
                .get(&conn)
                .is_some_and(|c| c.finishing && c.in_flight == 0 && c.backlog.is_empty());
            if done {
                // Every request of a client that sent its last one is answered.
                self.send_outbox(Some(conn), cx);
                cx.out.close_after_flush(conn);
                self.clients.remove(&conn);
                self.blocked.retain(|c| *c != conn);
            }
        }
    }

    /// No more requests from this client: answer those it made, then close.
    pub fn client_finished_sending(
        &mut self,
        conn: ConnId,
        ring: &Ring,
        lookups: &mut Lookups,
        cx: &mut Ctx,
    ) {
        if let Some(client) = self.clients.get_mut(&conn) {
            client.finishing = true;
        }
        if !self.ready.contains(&conn) {
            self.ready.push(conn);
        }
        self.pump_backlogs(ring, lookups, cx);
    }

    /// Send what waited in the outbox (only `conn`'s, when given).
    pub fn send_outbox(&mut self, only: Option<ConnId>, cx: &mut Ctx) {
        let mut kept = Vec::new();
        for (conn, serial, bytes) in std::mem::take(&mut self.outbox) {
            if only.is_some_and(|c| c != conn) {
                kept.push((conn, serial, bytes));
            } else if self.clients.get(&conn).is_some_and(|c| c.serial == serial) {
                cx.out.send(conn, &bytes);
            }
        }
        self.outbox = kept;
    }

    /// A client closed: its GETs are dropped (nobody to answer), its PUTs,
    /// in flight or backlogged, are carried out all the same.
    pub fn api_closed(&mut self, conn: ConnId, ring: &Ring, lookups: &mut Lookups, cx: &mut Ctx) {
        if !self.clients.contains_key(&conn) {
            return;
        }
        // The bug the hardening issue found: a client's PUTs dropped with it.
        let drop_puts = crate::sim::bugs::seeded("chord.put-lost-on-close");
        let Some(client) = self.client_closed(cx.now, conn, drop_puts) else {
            return;
        };
        for msg in client.backlog {
            if !drop_puts && matches!(msg, ApiMsg::Put { .. }) {
                self.start_op(conn, None, msg, ring, lookups, cx);
            }
        }
    }
}
