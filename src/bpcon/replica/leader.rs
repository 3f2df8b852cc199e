//! The leader: a replica with queued requests starts a ballot (1a),
//! gathers a quorum of signed 1bs, and proposes (1c) the value they make
//! safe, or its own batch if none is bound. Pre-empted or timed out, it
//! backs off (doubling, up to MAX_BACKOFF) and tries higher.

use super::{Replica, BALLOT_TIMEOUT, MAX_BACKOFF, YIELD_MAX, YIELD_MIN};
use crate::bpcon::messages::{OneB, PeerMsg, SignedOneB};
use crate::bpcon::op::{Batch, Digest};
use crate::bpcon::safety::{self, Choice};
use log::{debug, info, warn};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;

/// The leader's state: the ballot led (if any) and the back-off between
/// ballots of the current slot.
pub(super) struct Leader {
    pub(super) leading: Option<Leading>,
    /// Not leading again before this tick (after being pre-empted).
    pub(super) yield_until: Option<u64>,
    /// Multiplier of the ballot time-out and the back-off in this slot.
    pub(super) backoff: u64,
    /// Picks the back-off (seeded: runs repeat).
    pub(super) rng: StdRng,
}

impl Leader {
    pub(super) fn new(seed: u64) -> Leader {
        Leader {
            leading: None,
            yield_until: None,
            backoff: 1,
            rng: StdRng::seed_from_u64(seed),
        }
    }
}

/// The ballot this replica leads in the current slot.
#[derive(Debug)]
pub(super) struct Leading {
    pub(super) slot: u64,
    pub(super) ballot: u64,
    pub(super) own: Batch,
    pub(super) one_bs: Vec<Option<SignedOneB>>,
    pub(super) values: HashMap<Digest, Batch>,
    pub(super) proposed: Option<Digest>,
    pub(super) started: u64,
    /// Replicas that refused this ballot for a higher one.
    pub(super) refused: Vec<bool>,
    /// A refusal said the slot was decided elsewhere: this replica was behind.
    pub(super) behind: bool,
}

impl Replica {
    /// The clock for the leader: retry a ballot that timed out (higher, with
    /// a doubled time-out), and end a back-off that is over.
    pub(super) fn leader_tick(&mut self) {
        if let Some(l) = &self.lead.leading {
            if self.tick >= l.started + BALLOT_TIMEOUT * self.lead.backoff {
                self.lead.backoff = (self.lead.backoff * 2).min(MAX_BACKOFF);
                debug!(
                    "ballot {} of slot {} timed out; retrying higher",
                    l.ballot, l.slot
                );
                let slot = l.slot;
                self.start_ballot(slot);
            }
        }
        if self.lead.yield_until.is_some_and(|t| self.tick >= t) {
            self.lead.yield_until = None;
        }
    }

    pub(super) fn maybe_lead(&mut self) {
        if self.lead.leading.is_some()
            || self.queue.is_empty()
            || self.lead.yield_until.is_some()
            || self.behind()
        {
            return;
        }
        let slot = self.slot();
        self.start_ballot(slot);
    }

    pub(super) fn start_ballot(&mut self, slot: u64) {
        let above = self
            .heard
            .leader_above(&self.group, self.me, self.acc.max_bal);
        let Some(ballot) = self.group.next_ballot(self.me, slot, above) else {
            warn!(
                "no ballot of ours is left above ballot {} in slot {slot}; leaving it to others",
                above.unwrap_or(0)
            );
            self.lead.leading = None;
            self.lead.yield_until = Some(self.tick + YIELD_MAX);
            return;
        };
        let behind = self.lead.leading.as_ref().is_some_and(|l| l.behind);
        let own = self.queue.batch();
        debug!(
            "leading slot {slot} ballot {ballot} with {} operations",
            own.requests.len()
        );
        self.stats.ballots_started += 1;
        self.lead.leading = Some(Leading {
            slot,
            ballot,
            own,
            one_bs: vec![None; self.group.n()],
            values: HashMap::new(),
            proposed: None,
            started: self.tick,
            refused: vec![false; self.group.n()],
            behind,
        });
        self.broadcast(PeerMsg::OneA { slot, ballot });
    }

    /// Stop leading the current ballot and let a higher one finish. Being
    /// pre-empted doubles the back-off (and the next ballot's time-out) as
    /// a time-out does: over slow links, proposers that came back after a
    /// fixed wait pre-empted each other for ever (found by the fuzzer).
    pub(super) fn step_down(&mut self, why: &str) {
        if let Some(l) = self.lead.leading.take() {
            debug!("leaving ballot {} of slot {}: {why}", l.ballot, l.slot);
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
        if body.slot != l.slot || body.ballot != l.ballot || l.proposed.is_some() {
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
        let value = match safety::choose(&self.group, &reports) {
            Choice::Free => l.own.clone(),
            Choice::Bound(d) => match l.values.get(&d) {
                Some(v) => {
                    if *v != l.own {
                        info!(
                            "slot {}: a value voted in an earlier ballot is safe; proposing it ({} ops) instead of ours",
                            l.slot,
                            v.requests.len()
                        );
                    }
                    v.clone()
                }
                None => return,
            },
            Choice::Unknown => return, // wait for more reports
        };
        let (slot, ballot) = (l.slot, l.ballot);
        l.proposed = Some(value.digest());
        self.broadcast(PeerMsg::OneC {
            slot,
            ballot,
            value,
            proofs,
        });
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
