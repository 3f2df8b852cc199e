//! The client request queue: requests wait here until a slot decides them
//! or their deadline passes; the leader batches from its front. A replica
//! that does not lead forwards its clients' requests to the leader (and
//! keeps them, to answer its clients when they commit); the leader queues
//! what it is forwarded like its own, without a client to answer. Bounded
//! by MAX_PENDING (forwarded requests by half of it), so neither clients
//! nor other replicas can grow it without limit.

use super::{
    Replica, CODE_COMMITTED, CODE_FAILED, FORWARD_EVERY, MAX_PENDING, REQUEST_TIMEOUT, TICK_MS,
};
use crate::bpcon::messages::PeerMsg;
use crate::bpcon::op::{Batch, Op, Request, RequestId, MAX_BATCH_OPS};
use log::info;
use std::collections::{HashSet, VecDeque};

#[derive(Debug)]
struct Pending {
    request: Request,
    /// The client to answer; none for a request another replica forwarded.
    client: Option<u64>,
    deadline: u64,
    /// Forwarded to this replica at this tick.
    forwarded: Option<(usize, u64)>,
}

/// The queued requests, oldest first.
#[derive(Debug, Default)]
pub(super) struct Queue {
    pending: VecDeque<Pending>,
    /// The IDs in `pending`: a new request is checked against the queue
    /// without walking it (thousands may be queued when clients pipeline).
    ids: HashSet<RequestId>,
}

impl Queue {
    pub(super) fn len(&self) -> usize {
        self.pending.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// A retried request already queued: answer the newest connection.
    /// False if `id` is not queued.
    fn retry(&mut self, id: RequestId, client: u64) -> bool {
        if !self.ids.contains(&id) {
            return false;
        }
        match self.pending.iter_mut().find(|p| p.request.id == id) {
            Some(p) => {
                p.client = Some(client);
                true
            }
            None => false,
        }
    }

    pub(super) fn contains(&self, id: RequestId) -> bool {
        self.ids.contains(&id)
    }

    /// Queue `p` last.
    fn push(&mut self, p: Pending) {
        self.ids.insert(p.request.id);
        self.pending.push_back(p);
    }

    /// This replica's clients' requests to forward to `leader` now: those
    /// not sent to it yet, or not for FORWARD_EVERY ticks; as many as fit
    /// a batch. With `newest_only`, only those queued after the last one
    /// forwarded (what a new request adds, without walking the whole
    /// queue for each of thousands in flight; the tick walks it all).
    fn due_to_forward(
        &mut self,
        leader: usize,
        now: u64,
        max_bytes: usize,
        newest_only: bool,
    ) -> Batch {
        let start = if newest_only {
            self.pending
                .iter()
                .rposition(|p| p.client.is_some() && p.forwarded.is_some())
                .map_or(0, |i| i + 1)
        } else {
            0
        };
        let mut requests = Vec::new();
        let mut bytes = 2;
        for p in self
            .pending
            .range_mut(start..)
            .filter(|p| p.client.is_some())
        {
            let fresh = p
                .forwarded
                .is_some_and(|(to, at)| to == leader && now < at.saturating_add(FORWARD_EVERY));
            if fresh {
                continue;
            }
            let cost = Batch::request_cost(&p.request);
            if requests.len() >= MAX_BATCH_OPS || bytes + cost > max_bytes {
                break;
            }
            bytes += cost;
            p.forwarded = Some((leader, now));
            requests.push(p.request.clone());
        }
        Batch {
            requests: requests.into(),
        }
    }

    /// The batch a new ballot proposes: the oldest requests that fit in
    /// `max_bytes` (the group's batch limit).
    pub(super) fn batch(&self, max_bytes: usize) -> Batch {
        let mut own = Vec::new();
        let mut bytes = 2;
        for p in &self.pending {
            let cost = Batch::request_cost(&p.request);
            if own.len() >= MAX_BATCH_OPS || bytes + cost > max_bytes {
                break;
            }
            bytes += cost;
            own.push(p.request.clone());
        }
        Batch {
            requests: own.into(),
        }
    }

    /// Remove the requests due by tick `now`: (client, id) of each, in order.
    fn expire(&mut self, now: u64) -> Vec<(Option<u64>, RequestId)> {
        let mut expired = Vec::new();
        let ids = &mut self.ids;
        self.pending.retain(|p| {
            if p.deadline <= now {
                ids.remove(&p.request.id);
                expired.push((p.client, p.request.id));
                false
            } else {
                true
            }
        });
        expired
    }

    /// Remove the requests in `ids`: (client, id) of each, in queue order.
    pub(super) fn take(&mut self, ids: &HashSet<RequestId>) -> Vec<(Option<u64>, RequestId)> {
        let mut taken = Vec::new();
        if ids.is_empty() {
            return taken;
        }
        let queued = &mut self.ids;
        self.pending.retain(|p| {
            if ids.contains(&p.request.id) {
                queued.remove(&p.request.id);
                taken.push((p.client, p.request.id));
                false
            } else {
                true
            }
        });
        taken
    }
}

impl Replica {
    /// A client request. Malformed ones are refused at once (code 1).
    pub fn submit(&mut self, client: u64, id: RequestId, text: &str) {
        let op = match Op::parse(text) {
            Ok(op) => op,
            Err(why) => {
                info!("refused request {}:{}: {why}", id.client, id.seq);
                self.reply(client, id, CODE_FAILED, format!("bad request: {why}"));
                return;
            }
        };
        if self.store.contains(&id) {
            self.reply(client, id, CODE_COMMITTED, "already committed".into());
            return;
        }
        if self.queue.retry(id, client) {
            return;
        }
        if self.queue.len() >= MAX_PENDING {
            self.reply(
                client,
                id,
                CODE_FAILED,
                "replica overloaded: too many queued requests".into(),
            );
            return;
        }
        self.queue.push(Pending {
            request: Request { id, op },
            client: Some(client),
            deadline: self.tick + REQUEST_TIMEOUT,
            forwarded: None,
        });
        self.maybe_lead();
        self.drain_inbox();
    }

    /// Pass this replica's clients' requests on to `leader` (those not
    /// sent to it lately; with `newest_only`, those queued since the last
    /// one forwarded).
    pub(super) fn forward(&mut self, leader: usize, newest_only: bool) {
        let max_bytes = self.group.max_batch_bytes();
        let requests = self
            .queue
            .due_to_forward(leader, self.tick, max_bytes, newest_only);
        if !requests.requests.is_empty() {
            self.send(leader, PeerMsg::Forward { requests });
        }
    }

    /// Requests another replica forwarded: queued like a client's (without
    /// one to answer) if this replica is, or is about to be, the leader.
    pub(super) fn on_forward(&mut self, from: usize, requests: Batch) {
        if from == self.me || self.known_leader() != Some(self.me) {
            return; // it will send them to the leader it learns of
        }
        for request in requests.requests.iter().cloned() {
            let id = request.id;
            if self.store.contains(&id) || self.queue.contains(id) {
                continue;
            }
            if self.queue.len() >= MAX_PENDING / 2 {
                break;
            }
            self.queue.push(Pending {
                request,
                client: None,
                deadline: self.tick + REQUEST_TIMEOUT,
                forwarded: None,
            });
        }
        self.maybe_lead();
    }

    pub(super) fn expire_requests(&mut self) {
        let now = self.tick;
        let in_flight: Vec<RequestId> = match &self.lead.leading {
            Some(l) if l.proposed.is_some() => l.own.requests.iter().map(|r| r.id).collect(),
            _ => Vec::new(),
        };
        let expired = self.queue.expire(now);
        for (client, id) in expired {
            let secs = REQUEST_TIMEOUT * TICK_MS / 1000;
            let message = if in_flight.contains(&id) {
                format!("time-out: not committed within {secs} s (its ballot may still decide it)")
            } else {
                format!(
                    "time-out: not committed within {secs} s; a quorum of {} of the {} replicas may be missing or unreachable",
                    self.group.quorum,
                    self.group.n()
                )
            };
            info!("request {}:{} failed: {message}", id.client, id.seq);
            if let Some(client) = client {
                self.reply(client, id, CODE_FAILED, message);
            }
        }
    }
}
