//! Catch-up: a replica that f + 1 others say is behind (or that saw a slot
//! decided without its value) asks for the decided values it lacks. A
//! value is believed with a valid decision certificate or from f + 1
//! matching replies, and only in answer to its own outstanding request.

use super::{Dest, Replica, CATCHUP_ANSWER_TICKS, CATCHUP_BATCH, CATCHUP_EVERY, CATCHUP_WINDOW};
use crate::bpcon::messages::{Certificate, PeerMsg};
use crate::bpcon::op::{Batch, Digest};
use std::collections::{BTreeMap, HashMap, HashSet};

/// What this replica knows about the others' progress, and the catch-up
/// replies gathered for the slots it lacks.
#[derive(Debug, Default)]
pub(super) struct Catchup {
    pub(super) last_request: Option<u64>,
    /// The slots the outstanding request asked for, `[from, to)`; replies
    /// for anything else are unsolicited and dropped.
    pub(super) asked: Option<(u64, u64)>,
    /// How many slots each replica says it has decided. One replica's claim
    /// may be a lie; f + 1 claims include a correct replica's.
    pub(super) claims: Vec<u64>,
    /// A quorum voted for this digest in this ballot of the current slot,
    /// but the value never reached us: one reply whose value has that
    /// digest is enough (the quorum vouched for the digest, the hash for
    /// the value).
    pub(super) decided_unseen: Option<(u64, Digest)>,
    /// slot -> per-replica digest of the value it says was committed.
    pub(super) replies: BTreeMap<u64, Vec<Option<Digest>>>,
    /// slot -> a value some reply proved decided with a valid certificate.
    pub(super) proven: BTreeMap<u64, (Digest, Certificate)>,
    pub(super) values: HashMap<Digest, Batch>,
}

impl Catchup {
    pub(super) fn new(n: usize) -> Catchup {
        Catchup {
            claims: vec![0; n],
            ..Catchup::default()
        }
    }

    /// At `tick`: replies to a request older than CATCHUP_ANSWER_TICKS are
    /// no longer answers (they would be unsolicited).
    pub(super) fn stop_answers(&mut self, tick: u64) {
        if self
            .last_request
            .is_some_and(|t| tick >= t.saturating_add(CATCHUP_ANSWER_TICKS))
        {
            self.asked = None;
        }
    }

    pub(super) fn claim(&mut self, from: usize, committed: u64) {
        let c = &mut self.claims[from];
        *c = (*c).max(committed);
    }

    /// The number of slots that f + 1 replicas say are decided.
    fn decided_elsewhere(&self, weak_quorum: usize) -> u64 {
        let mut claims = self.claims.clone();
        claims.sort_unstable_by(|a, b| b.cmp(a));
        claims[weak_quorum - 1]
    }

    /// `slot` was decided here (by `me`, which has now decided
    /// `committed` slots): forget what was gathered for it.
    pub(super) fn decided(&mut self, slot: u64, me: usize, committed: u64) {
        self.replies.remove(&slot);
        self.proven.remove(&slot);
        self.decided_unseen = None;
        self.claims[me] = committed;
    }
}

impl Replica {
    /// Whether f + 1 replicas say more is decided than this one knows, or
    /// a quorum decided a value that never reached it.
    pub(super) fn behind(&self) -> bool {
        self.catchup.decided_unseen.is_some()
            || self.catchup.decided_elsewhere(self.group.weak_quorum()) > self.slot()
    }

    pub(super) fn request_catchup(&mut self) {
        if self.group.n() == 1 {
            return;
        }
        if self
            .catchup
            .last_request
            .is_some_and(|t| self.tick < t + CATCHUP_EVERY)
        {
            return;
        }
        self.catchup.last_request = Some(self.tick);
        let from = self.slot();
        self.catchup.asked = Some((from, from.saturating_add(CATCHUP_WINDOW)));
        self.out.sends.push((
            Dest::All,
            PeerMsg::CatchupRequest {
                from_slot: self.slot(),
            },
        ));
    }

    pub(super) fn on_catchup_request(&mut self, from: usize, from_slot: u64) {
        let end = self.slot().min(from_slot.saturating_add(CATCHUP_BATCH));
        for slot in from_slot..end {
            let value = self.log[slot as usize].clone();
            let proof = self.certificates.get(slot).cloned();
            self.send(
                from,
                PeerMsg::CatchupReply {
                    slot,
                    committed: self.slot(),
                    value,
                    proof,
                },
            );
        }
    }

    pub(super) fn on_catchup_reply(
        &mut self,
        from: usize,
        slot: u64,
        committed: u64,
        value: Batch,
        proof: Option<Certificate>,
    ) {
        let current = self.slot();
        if slot < current {
            return; // an answer to an earlier request, decided since
        }
        if crate::sim::bugs::seeded("bpcon.unsolicited-catchup") && slot == current {
            // The seed's bug: any reply, asked for or not, from one replica.
            let digest = value.digest();
            self.commit_with(slot, value, digest, None, None);
            return;
        }
        // Only answers to our own outstanding request count.
        let asked = self
            .catchup
            .asked
            .is_some_and(|(lo, hi)| slot >= lo && slot < hi);
        if !asked || committed <= slot {
            self.stats.rejected += 1;
            let asked = match self.catchup.asked {
                Some((lo, hi)) => format!("it asked for slots {lo} to {}", hi - 1),
                None => "it asked for nothing".into(),
            };
            let what = format!(
                "unsolicited catch-up value for slot {slot} from {} ({asked}): dropped",
                self.group.names[from]
            );
            self.misbehaved(from, "an unsolicited catch-up reply", what);
            return;
        }
        // Only f + 1 matching values are believed; the claim only prompts more requests.
        self.catchup
            .claim(from, committed.min(current.saturating_add(CATCHUP_WINDOW)));
        let digest = value.digest();
        let n = self.group.n();
        let votes = self
            .catchup
            .replies
            .entry(slot)
            .or_insert_with(|| vec![None; n]);
        if votes[from].is_some() {
            return; // one answer per replica and slot: it may not change it
        }
        votes[from] = Some(digest);
        // A valid decision certificate proves the value on its own (one
        // correct holder is enough); a bad one marks its sender as lying,
        // and its reply counts as one without.
        if let Some(proof) = proof {
            if !self.catchup.proven.contains_key(&slot) {
                match self.check_certificate(slot, &digest, &proof) {
                    Ok(()) => {
                        self.catchup.proven.insert(slot, (digest, proof));
                    }
                    Err(why) => {
                        self.stats.forged_rejected += 1;
                        let what = format!(
                            "catch-up value for slot {slot} from {} comes with a bad decision certificate ({why}): the certificate is refused",
                            self.group.names[from]
                        );
                        self.misbehaved(from, "a forged decision certificate", what);
                    }
                }
            }
        }
        self.catchup.values.entry(digest).or_insert(value);
        let before = self.slot();
        // Commit every slot proven by a certificate or that f + 1 replicas
        // (one of them correct) agree on.
        loop {
            let slot = self.slot();
            let Some(votes) = self.catchup.replies.get(&slot) else {
                break;
            };
            let proven = self.catchup.proven.get(&slot).cloned();
            // The quorum of 2bs this replica counted itself, if any.
            let seen = self
                .catchup
                .decided_unseen
                .filter(|(_, d)| votes.contains(&Some(*d)));
            let agreed = match (&proven, seen) {
                (Some((d, _)), _) => Some(*d),
                (None, Some((_, d))) => Some(d),
                (None, None) => votes
                    .iter()
                    .flatten()
                    .find(|d| {
                        votes.iter().filter(|v| v.as_ref() == Some(*d)).count()
                            >= self.group.weak_quorum()
                    })
                    .copied(),
            };
            let Some(d) = agreed else { break };
            let Some(value) = self.catchup.values.get(&d).cloned() else {
                break;
            };
            let liars: Vec<usize> = votes
                .iter()
                .enumerate()
                .filter(|(_, v)| v.is_some_and(|v| v != d))
                .map(|(i, _)| i)
                .collect();
            let against = match (&proven, seen) {
                (Some(_), _) => "a decision certificate contradicts".to_string(),
                (None, Some(_)) => "a quorum of 2b votes seen here contradicts".to_string(),
                (None, None) => format!("{} other replicas contradict", self.group.weak_quorum()),
            };
            for liar in liars {
                let what = format!(
                    "{} sent a catch-up value for slot {slot} that {against} (a lie): ignored",
                    self.group.names[liar],
                );
                self.misbehaved(liar, "a false catch-up value", what);
            }
            match (proven, seen) {
                (Some((_, c)), _) => self.commit_with(slot, value, d, None, Some(c)),
                // Decided in this ballot as seen here: its certificate
                // forms from the votes counted here, as for any decision.
                (None, Some((ballot, _))) => self.commit(slot, value, d, Some(ballot)),
                (None, None) => self.commit_with(slot, value, d, None, None),
            }
        }
        if self.slot() > before {
            let current = self.slot();
            self.catchup.replies.retain(|s, _| *s >= current);
            self.catchup.proven.retain(|s, _| *s >= current);
            let wanted: HashSet<Digest> = self
                .catchup
                .replies
                .values()
                .flatten()
                .flatten()
                .copied()
                .collect();
            self.catchup.values.retain(|d, _| wanted.contains(d));
            if self.behind() {
                self.catchup.last_request = None;
                self.request_catchup();
            }
        }
    }
}
