//! DHT API clients as connections: what each has in flight and waiting in
//! its backlog (bounded per client and for the node), starting backlogged
//! requests as room appears, and the outbox of answers that completed
//! during another connection's input. The requests themselves are dht.rs.

use super::api_wire::{ApiMsg, MAX_VALUE};
use super::node::{Node, NodeOut, Timer, MAX_BACKLOG_PER_CLIENT, MAX_OPS_PER_CLIENT};
use crate::reactor::ConnId;
use crate::warn_repeated;
use std::collections::VecDeque;
use std::time::Instant;

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

impl Node {
    /// A request read from a client: started now, or kept in the client's
    /// backlog while it has MAX_OPS_PER_CLIENT in flight (never refused).
    pub(super) fn on_api_message(
        &mut self,
        now: Instant,
        conn: ConnId,
        msg: ApiMsg,
        _out: &mut NodeOut,
    ) -> Result<(), String> {
        match &msg {
            ApiMsg::Success { .. } | ApiMsg::Failure { .. } => {
                return Err("a DHT client sent an answer message".into());
            }
            ApiMsg::Put { value, .. } if value.len() > MAX_VALUE => {
                warn_repeated!(
                    self.warnings.value_too_large,
                    now,
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
            return Err("a request on a connection that is not a client".into());
        };
        if client.backlog_bytes + held > MAX_BACKLOG_PER_CLIENT
            || total + held > self.cfg.client_memory
        {
            // No reactor hook pauses reading from one connection, so a
            // client this far ahead of its answers is let go instead.
            return Err(format!(
                "client is {} bytes of requests ahead of its answers (limit {} per client, {} for the node)",
                client.backlog_bytes,
                MAX_BACKLOG_PER_CLIENT,
                self.cfg.client_memory
            ));
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
    pub(super) fn pump_backlogs(&mut self, now: Instant, out: &mut NodeOut) {
        while let Some(conn) = self.ready.pop() {
            while let Some(client) = self.clients.get_mut(&conn) {
                if client.in_flight >= MAX_OPS_PER_CLIENT {
                    break;
                }
                let Some(next) = client.backlog.front() else {
                    break;
                };
                if matches!(next, ApiMsg::Get { .. }) && !self.budget.reserve(now) {
                    // The node has produced all the answers it may hold:
                    // this client's requests wait until the budget refills.
                    if self.blocked.is_empty() {
                        out.timer(self.budget.wait(), Timer::Pump);
                    }
                    if !self.blocked.contains(&conn) {
                        self.blocked.push(conn);
                    }
                    break;
                }
                let msg = client.backlog.pop_front().expect("front seen");
                let held = held_bytes(&msg);
                client.backlog_bytes -= held;
                client.in_flight += 1;
                let serial = client.serial;
                self.backlog_total -= held;
                self.start_op(now, conn, Some(serial), msg, out);
            }
            let done = self
                .clients
                .get(&conn)
                .is_some_and(|c| c.finishing && c.in_flight == 0 && c.backlog.is_empty());
            if done {
                // Every request of a client that sent its last one is answered.
                self.send_outbox(Some(conn), out);
                out.close_after_flush(conn);
                self.roles.remove(&conn);
                self.clients.remove(&conn);
                self.blocked.retain(|c| *c != conn);
            }
        }
    }

    /// No more requests from this client: answer those it made, then close.
    pub(super) fn client_finished_sending(
        &mut self,
        now: Instant,
        conn: ConnId,
        out: &mut NodeOut,
    ) {
        if let Some(client) = self.clients.get_mut(&conn) {
            client.finishing = true;
        }
        if !self.ready.contains(&conn) {
            self.ready.push(conn);
        }
        self.pump_backlogs(now, out);
    }

    /// Send what waited in the outbox (only `conn`'s, when given).
    pub(super) fn send_outbox(&mut self, only: Option<ConnId>, out: &mut NodeOut) {
        let mut kept = Vec::new();
        for (conn, serial, bytes) in std::mem::take(&mut self.outbox) {
            if only.is_some_and(|c| c != conn) {
                kept.push((conn, serial, bytes));
            } else if self.clients.get(&conn).is_some_and(|c| c.serial == serial) {
                out.send(conn, &bytes);
            }
        }
        self.outbox = kept;
    }
}
