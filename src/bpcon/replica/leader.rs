//! The leader, Multi-Paxos style: a replica with queued requests and no
//! leader to forward them to runs phase 1 once (1a, a quorum of signed
//! 1bs) in its current slot; the 1bs promise its ballot in that slot and
//! every later one, so from then on each slot costs one 1c carrying the
//! same 1bs as proof (the value they make safe in the slot phase 1 ran in,
//! its own batch in later ones). Pre-empted or timed out, it backs off
//! (doubling, up to MAX_BACKOFF) and tries higher. A replica that does not
//! lead forwards its clients' requests to the leader, and replaces a
//! leader that commits none of them in time (FORWARD_TIMEOUT).

use super::{Replica, BALLOT_TIMEOUT, FORWARD_TIMEOUT, MAX_BACKOFF, YIELD_MAX, YIELD_MIN};
use crate::bpcon::messages::{OneB, PeerMsg, SignedOneB};
use crate::bpcon::op::{Batch, Digest};
use crate::bpcon::safety::{self, Choice};
use log::{debug, info, warn};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;

/// The leader's state: the ballot led (if any), the back-off, and the
/// time-out on the leader this replica forwards to.
pub(super) struct Leader {
    pub(super) leading: Option<Leading>,
    /// Not leading again before this tick (after being pre-empted).
    pub(super) yield_until: Option<u64>,
    /// Multiplier of the time-outs and the back-off in this slot.
    pub(super) backoff: u64,
    /// Picks the back-off (seeded: runs repeat).
    pub(super) rng: StdRng,
    /// While this replica forwards requests to another leader: the tick by
    /// which one of them must commit, or it runs phase 1 itself.
    pub(super) forward_deadline: Option<u64>,
}

impl Leader {
    pub(super) fn new(seed: u64) -> Leader {
        Leader {
            leading: None,
            yield_until: None,
            backoff: 1,
            rng: StdRng::seed_from_u64(seed),
            forward_deadline: None,
        }
    }
}

/// The ballot this replica leads, from the slot its phase 1 ran in on.
#[derive(Debug)]
pub(super) struct Leading {
    pub(super) ballot: u64,
    /// The slot phase 1 ran in (its 1bs are for it).
    pub(super) from_slot: u64,
    pub(super) one_bs: Vec<Option<SignedOneB>>,
    pub(super) values: HashMap<Digest, Batch>,
    /// Phase 1 done: a quorum of signed 1bs, the proofs of every 1c of
    /// this ballot, and the value they bind in `from_slot` (None: free).
    pub(super) proofs: Option<(Vec<SignedOneB>, Option<Batch>)>,
    /// The slot worked on (phase 1, or the 1c sent).
    pub(super) slot: u64,
    /// The batch of this replica's queue proposed in `slot`.
    pub(super) own: Batch,
    pub(super) proposed: Option<Digest>,
    /// When phase 1 or the proposal in `slot` started (for the time-out).
    pub(super) started: u64,
    /// Replicas that refused this ballot for a higher one.
    pub(super) refused: Vec<bool>,
    /// A refusal said the slot was decided elsewhere: this replica was behind.
    pub(super) behind: bool,
}

impl Leading {
    /// `slot` was decided: the same ballot goes on in the next one.
    pub(super) fn next_slot(&mut self, tick: u64) {
        self.slot = self.slot.saturating_add(1);
        self.own = Batch::default();
        self.proposed = None;
        self.started = tick;
        self.refused.iter_mut().for_each(|r| *r = false);
    }
}

impl Replica {
    /// The replica this one takes for the leader: the owner of the highest
    /// ballot it promised or took part in, or that f + 1 others reached.
    pub(super) fn known_leader(&self) -> Option<usize> {
        let credible = self.heard.credible_ballot(&self.group, self.me);
        let highest = self.acc.max_bal.max(credible)?;
        Some(self.group.leader(highest))
    }

    /// The clock for the leader: retry a ballot that timed out (higher, with
    /// a doubled time-out), end a back-off that is over, and replace a
    /// leader that ignores what it is forwarded.
    pub(super) fn leader_tick(&mut self) {
        if let Some(l) = &self.lead.leading {
            let busy = l.proofs.is_none() || l.proposed.is_some();
            if busy && self.tick >= l.started + BALLOT_TIMEOUT * self.lead.backoff {
                self.lead.backoff = (self.lead.backoff * 2).min(MAX_BACKOFF);
                debug!(
                    "ballot {} in slot {} timed out; retrying higher",
                    l.ballot, l.slot
                );
                let slot = self.slot();
                self.start_ballot(slot);
            }
        }
        if self.lead.yield_until.is_some_and(|t| self.tick >= t) {
            self.lead.yield_until = None;
        }
        self.forward_tick();
    }

    /// Forwarding: send what the leader has not been sent lately; if it
    /// committed none of this replica's requests in time, take over.
    fn forward_tick(&mut self) {
        if self.lead.leading.is_some() || self.queue.is_empty() {
            self.lead.forward_deadline = None;
            return;
        }
        let Some(leader) = self.known_leader().filter(|&l| l != self.me) else {
            return;
        };
        let timeout = FORWARD_TIMEOUT * self.lead.backoff;
        let deadline = *self
            .lead
            .forward_deadline
            .get_or_insert(self.tick + timeout);
        if self.tick < deadline {
            self.forward(leader, false);
            return;
        }
        if crate::sim::bugs::seeded("bpcon.leader-never-replaced") {
            return; // broken on purpose (tests): wait on the leader for ever
        }
        self.lead.forward_deadline = None;
        if self.behind() {
            return;
        }
        info!(
            "leader {} committed none of our requests in {} ms; running phase 1",
            self.group.names[leader],
            timeout * super::TICK_MS
        );
        self.lead.backoff = (self.lead.backoff * 2).min(MAX_BACKOFF);
        let slot = self.slot();
        self.start_ballot(slot);
    }

    pub(super) fn maybe_lead(&mut self) {
        if self.queue.is_empty() || self.behind() {
            return;
        }
        if self.lead.leading.is_some() {
            self.propose();
            return;
        }
        if let Some(leader) = self.known_leader().filter(|&l| l != self.me) {
            if self.lead.forward_deadline.is_none() {
                self.lead.forward_deadline = Some(self.tick + FORWARD_TIMEOUT * self.lead.backoff);
            }
            self.forward(leader, true);
            return;
        }
        if self.lead.yield_until.is_some() {
            return;
        }
        let slot = self.slot();
        self.start_ballot(slot);
    }

    pub(super) fn start_ballot(&mut self, slot: u64) {
        let above = self
            .heard
            .leader_above(&self.group, self.me, self.acc.max_bal);
        let Some(ballot) = self.group.next_ballot(self.me, above) else {
            warn!(
                "no ballot of ours is left above ballot {}; leaving it to others",
                above.unwrap_or(0)
            );
            self.lead.leading = None;
            self.lead.yield_until = Some(self.tick + YIELD_MAX);
            return;
        };
        let behind = self.lead.leading.as_ref().is_some_and(|l| l.behind);
        debug!("running phase 1 of ballot {ballot} in slot {slot}");
        self.stats.ballots_started += 1;
        self.lead.forward_deadline = None;
        self.lead.leading = Some(Leading {
            ballot,
            from_slot: slot,
            one_bs: vec![None; self.group.n()],
            values: HashMap::new(),
            proofs: None,
            slot,
            own: Batch::default(),
            proposed: None,
            started: self.tick,
            refused: vec![false; self.group.n()],
            behind,
        });
        self.broadcast(PeerMsg::OneA { slot, ballot });
    }

    /// Phase 1 is done: send the current slot's 1c, if there is something
    /// to propose (the value bound where phase 1 ran, or queued requests).
    fn propose(&mut self) {
        let slot = self.slot();
        let Some(l) = &mut self.lead.leading else {
            return;
        };
        let Some((proofs, bound)) = &l.proofs else {
            return;
        };
        if (l.slot == slot && l.proposed.is_some()) || slot < l.from_slot {
            return;
        }
        let bound = bound.clone().filter(|_| slot == l.from_slot);
        if bound.is_none() && self.queue.is_empty() {
            return;
        }
        let own = self.queue.batch(self.group.max_batch_bytes());
        let value = match bound {
            Some(v) => {
                if v != own {
                    info!(
                        "slot {slot}: a value voted in an earlier ballot is safe; proposing it ({} ops) instead of ours",
                        v.requests.len()
                    );
                }
                v
            }
            None => own.clone(),
        };
        let proofs = proofs.clone();
        let ballot = l.ballot;
        l.slot = slot;
        l.own = own;
        l.proposed = Some(value.digest());
        l.started = self.tick;
        self.broadcast(PeerMsg::OneC {
            slot,
            ballot,
            value,
            proofs,
        });
    }

    /// Stop leading and let a higher ballot finish. Being
    /// pre-empted doubles the back-off (and the next ballot's time-out) as
    /// a time-out does: over slow links, proposers that came back after a
    /// fixed wait pre-empted each other for ever (found by the fuzzer).
    pub(super) fn step_down(&mut self, why: &str) {
        if let Some(l) = self.lead.leading.take() {
            debug!("leaving ballot {} in slot {}: {why}", l.ballot, l.slot);
            self.lead.backoff = (self.lead.backoff * 2).min(MAX_BACKOFF);
            let wait = self
                .lead
                .rng
                .gen_range(YIELD_MIN..=YIELD_MAX * self.lead.backoff);
            self.lead.yield_until = Some(self.tick + wait);
        }
    }

    pub(super) fn on_one_b(&mut self, from: usize, signed: SignedOneB, values: Vec<Batch>) {
        let body = &signed.body;
        let Some(l) = &self.lead.leading else { return };
        if body.slot != l.from_slot || body.ballot != l.ballot || l.proofs.is_some() {
            return;
        }
        if body.acceptor != from {
            self.stats.rejected += 1;
            let what = format!(
                "1b on {}'s link claims to be from {}: rejected",
                self.group.names[from], self.group.names[body.acceptor]
            );
            self.misbehaved(from, "a 1b in another replica's name", what);
            return;
        }
        // Our own 1b needs no check.
        if from != self.me && !self.verify(from, &signed.bytes, &signed.signature) {
            self.stats.forged_rejected += 1;
            let what = format!(
                "forged 1b from {} for slot {} ballot {}: signature does not verify; rejected",
                self.group.names[from], body.slot, body.ballot
            );
            self.misbehaved(from, "a forged 1b", what);
            return;
        }
        self.heard.note_ballot(from, body.ballot);
        let Some(l) = &mut self.lead.leading else {
            return;
        };
        for v in values {
            let d = v.digest();
            if body.reported.iter().any(|(_, r)| *r == d) {
                l.values.insert(d, v);
            }
        }
        l.one_bs[from] = Some(signed);
        let proofs: Vec<SignedOneB> = l.one_bs.iter().flatten().cloned().collect();
        if proofs.len() < self.group.quorum {
            return;
        }
        let reports: Vec<&OneB> = proofs.iter().map(|p| &p.body).collect();
        let bound = match safety::choose(&self.group, &reports) {
            Choice::Free => None,
            Choice::Bound(d) => match l.values.get(&d) {
                Some(v) => Some(v.clone()),
                None => return,
            },
            Choice::Unknown => return, // wait for more reports
        };
        l.proofs = Some((proofs, bound));
        self.propose();
    }

    pub(super) fn on_refuse(
        &mut self,
        from: usize,
        slot: u64,
        max_ballot: Option<u64>,
        committed: u64,
    ) {
        if committed > self.slot() {
            debug!(
                "{} says {committed} slots are decided; we have {}",
                self.group.names[from],
                self.slot()
            );
            self.catchup.claim(from, committed);
            // Behind by more than the slot being led, and no other
            // replica's ballot for it ever reached us: we were cut off and
            // decisions were missed. (Losing slots to a faster leader while
            // taking part is ordinary contention, not being behind: those
            // requests stay queued and go into the next slot.)
            let cut_off = !self.heard.from_others;
            if let Some(l) = &mut self.lead.leading {
                if cut_off && committed > l.slot.saturating_add(1) {
                    l.behind = true;
                }
            }
            self.request_catchup();
            return;
        }
        if slot != self.slot() {
            return;
        }
        if let Some(b) = max_ballot {
            self.heard.note_ballot(from, b);
        }
        let quorum = self.group.quorum;
        let n = self.group.n();
        let Some(l) = &mut self.lead.leading else {
            return;
        };
        if slot == l.slot && max_ballot.is_some_and(|b| b > l.ballot) {
            // Step down once a quorum of 1bs is out of reach, not on one
            // refusal: a single Byzantine replica could refuse every ballot.
            l.refused[from] = true;
            let refused = l.refused.iter().filter(|r| **r).count();
            if refused > n - quorum {
                self.step_down("acceptors promised a higher ballot");
            }
        }
    }
}
