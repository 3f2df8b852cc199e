//! The acceptor: its durable promise (global: a 1b for slot s promises
//! its ballot in every slot from s on), its relays and vote in the slot
//! being decided, and its answers to 1a, 1c and 2av (the 2bs are counted by
//! the learner; the check against this acceptor's relay serves both). A correct acceptor
//! takes part only in ballots of the current slot within reach (see
//! `Heard::in_reach`), from the ballot's leader, with valid proofs. A 1c
//! may carry the 1bs of its ballot's phase 1 from an earlier slot (a
//! stable leader runs phase 1 once); a set of proofs verified once is
//! remembered by digest, so the steady state verifies no signature here.
//! Its 2b goes out unsigned; the signature follows (`signing`).

use super::heard::tally;
use super::{Replica, MAX_ROUND_STEP};
use crate::bpcon::messages::{OneB, PeerMsg, SignedOneB, Vote, KEPT_REPORTS};
use crate::bpcon::op::{sha1, Batch, Digest};
use crate::bpcon::safety;
use crate::bpcon::wal::Record;

/// Proof sets (the 1bs a 1c carries) whose signatures verified here, by
/// digest: a stable leader sends the same set with every 1c of its ballot.
#[derive(Debug, Default)]
pub(super) struct VerifiedProofs {
    digests: std::collections::VecDeque<Digest>,
}

/// Proof sets remembered (a few leaders' ballots).
const KEPT_PROOF_SETS: usize = 8;

impl VerifiedProofs {
    /// The digest of a proof set: every 1b's signed bytes and signature.
    pub(super) fn digest(proofs: &[SignedOneB]) -> Digest {
        let mut all = Vec::new();
        for p in proofs {
            all.extend_from_slice(&(p.bytes.len() as u32).to_be_bytes());
            all.extend_from_slice(&p.bytes);
            all.extend_from_slice(&(p.signature.len() as u32).to_be_bytes());
            all.extend_from_slice(&p.signature);
        }
        sha1(&all)
    }

    pub(super) fn contains(&self, digest: &Digest) -> bool {
        self.digests.contains(digest)
    }

    pub(super) fn insert(&mut self, digest: Digest) {
        if self.digests.len() >= KEPT_PROOF_SETS {
            self.digests.pop_front();
        }
        self.digests.push_back(digest);
    }
}

/// Acceptor state (durable): the promise, and the current slot's relays
/// and vote.
#[derive(Debug, Default, Clone)]
pub(super) struct Acceptor {
    /// The highest ballot promised in a 1b, for this slot and every later
    /// one (a 1b for slot s promises its ballot from s on).
    pub(super) promise: Option<u64>,
    /// The highest ballot taken part in in this slot (promised, relayed
    /// or voted); at least `promise`.
    pub(super) max_bal: Option<u64>,
    pub(super) voted: Option<(u64, Digest)>,
    /// (ballot, digest, value) of the 2av messages sent, highest ballot per value.
    pub(super) relayed: Vec<(u64, Digest, Batch)>,
}

impl Acceptor {
    /// The state for the next slot: the promise holds on, nothing relayed
    /// or voted yet. (Only 1b promises carry over: a relay or vote raised
    /// `max_bal` in its slot alone, and the others' safety rests on 1bs.)
    pub(super) fn next_slot(&self) -> Acceptor {
        Acceptor {
            promise: self.promise,
            max_bal: self.promise,
            ..Acceptor::default()
        }
    }

    pub(super) fn remember_relayed(&mut self, ballot: u64, digest: Digest, value: Batch) {
        self.relayed.retain(|(_, d, _)| *d != digest);
        self.relayed.push((ballot, digest, value));
        // Forgetting old reports is safe (it only makes fewer values provably safe).
        self.relayed.sort_by_key(|(b, _, _)| std::cmp::Reverse(*b));
        self.relayed.truncate(KEPT_REPORTS);
    }

    /// This acceptor's (honest) 1b for `ballot`, and the values it reports.
    pub(super) fn one_b(&self, me: usize, slot: u64, ballot: u64) -> (OneB, Vec<Batch>) {
        let honest = OneB {
            acceptor: me,
            slot,
            ballot,
            voted: self.voted,
            reported: self.relayed.iter().map(|(b, d, _)| (*b, *d)).collect(),
        };
        let values = self.relayed.iter().map(|(_, _, v)| v.clone()).collect();
        (honest, values)
    }

    /// Whether this acceptor relayed another value than `digest` in `ballot`.
    pub(super) fn relayed_other(&self, ballot: u64, digest: &Digest) -> bool {
        self.relayed
            .iter()
            .any(|(b, d, _)| *b == ballot && d != digest)
    }
}

impl Replica {
    /// Common checks for a message about `slot`: false if it is not about
    /// the current one (answering or catching up as needed).
    pub(super) fn current_slot(&mut self, from: usize, slot: u64, refuse_old: bool) -> bool {
        let current = self.slot();
        if slot < current {
            if refuse_old && from != self.me {
                self.send(
                    from,
                    PeerMsg::Refuse {
                        slot,
                        max_ballot: None,
                        committed: current,
                    },
                );
            }
            return false;
        }
        if slot > current {
            // A correct replica only moves on once a slot is decided.
            self.catchup.claim(from, slot);
            self.request_catchup();
            return false;
        }
        if from != self.me {
            self.heard.from_others = true;
        }
        true
    }

    /// A ballot more than MAX_ROUND_STEP rounds above what f + 1 replicas
    /// reached: refused (and logged), so no one can exhaust the space.
    pub(super) fn out_of_reach(&mut self, from: usize, what: &str, slot: u64, ballot: u64) -> bool {
        self.heard.note_ballot(from, ballot);
        if self.heard.in_reach(&self.group, self.me, ballot) {
            return false;
        }
        self.stats.rejected += 1;
        let base = match self.heard.credible_ballot(&self.group, self.me) {
            Some(b) => format!("ballot {b}"),
            None => "ballot 0".into(),
        };
        let msg = format!(
            "{what} for slot {slot} ballot {ballot} from {} is more than {MAX_ROUND_STEP} rounds above {base}, the highest f + 1 replicas reached: refused",
            self.group.names[from]
        );
        self.misbehaved(from, "a ballot out of reach", msg);
        true
    }

    pub(super) fn on_one_a(&mut self, from: usize, slot: u64, ballot: u64) {
        if !self.current_slot(from, slot, true) {
            return;
        }
        if self.group.leader(ballot) != from {
            self.stats.rejected += 1;
            let what = format!(
                "1a for slot {slot} ballot {ballot} from {}, who does not lead it: rejected",
                self.group.names[from]
            );
            self.misbehaved(from, "a 1a for another leader's ballot", what);
            return;
        }
        if self.acc.max_bal.is_some_and(|m| m >= ballot)
            || (from != self.me && self.out_of_reach(from, "1a", slot, ballot))
        {
            self.send(
                from,
                PeerMsg::Refuse {
                    slot,
                    max_ballot: self.acc.max_bal,
                    committed: self.slot(),
                },
            );
            return;
        }
        if from != self.me
            && self
                .lead
                .leading
                .as_ref()
                .is_some_and(|l| l.ballot < ballot)
        {
            self.step_down("another leader started a higher ballot");
        }
        self.acc.max_bal = Some(ballot);
        self.acc.promise = Some(ballot);
        self.persist(Record::PromiseFrom { slot, ballot }, true);
        let (body, values) = self.acc.one_b(self.me, slot, ballot);
        let bytes = body.signed_bytes();
        let signature = self.sign(&bytes);
        self.send(
            from,
            PeerMsg::OneB {
                signed: SignedOneB {
                    body,
                    bytes,
                    signature,
                },
                values,
            },
        );
    }

    pub(super) fn on_one_c(
        &mut self,
        from: usize,
        slot: u64,
        ballot: u64,
        value: Batch,
        proofs: Vec<SignedOneB>,
    ) {
        if !self.current_slot(from, slot, true) {
            return;
        }
        let who = self.group.names[from].clone();
        if self.group.leader(ballot) != from {
            self.stats.rejected += 1;
            let what = format!(
                "1c for slot {slot} ballot {ballot} from {who}, who does not lead it: rejected"
            );
            self.misbehaved(from, "a 1c for another leader's ballot", what);
            return;
        }
        if from != self.me && self.out_of_reach(from, "1c", slot, ballot) {
            return;
        }
        if self.acc.max_bal.is_some_and(|m| m > ballot)
            || self.acc.relayed.iter().any(|(b, _, _)| *b >= ballot)
        {
            return; // promised higher, or already relayed a value in this ballot
        }
        let (len, limit) = (value.encoded_len(), self.group.max_batch_bytes());
        if len > limit {
            // Relayed, it would have to go in this acceptor's 1bs, which
            // hold up to KEPT_REPORTS values of at most the limit each: a
            // leader sending larger ones could leave correct acceptors
            // unable to send any 1b in this slot (no new leader then).
            self.stats.rejected += 1;
            let what = format!("1c from {who} for slot {slot} ballot {ballot} rejected: its batch of {len} bytes is over the group's limit of {limit}");
            self.misbehaved(from, "a 1c with a batch over the limit", what);
            return;
        }
        // The slot the proofs' phase 1 ran in: this one, or an earlier one
        // for a stable leader (its 1bs promise the ballot from there on).
        let from_slot = proofs.first().map_or(slot, |p| p.body.slot);
        let mut seen = vec![false; self.group.n()];
        for p in &proofs {
            let a = p.body.acceptor;
            if p.body.slot != from_slot || p.body.ballot != ballot || seen[a] || from_slot > slot {
                self.stats.rejected += 1;
                let what = format!("1c from {who} for slot {slot} ballot {ballot} rejected: a proof is for another slot or ballot, or repeated");
                self.misbehaved(from, "a 1c with bad proofs", what);
                return;
            }
            seen[a] = true;
        }
        if proofs.len() < self.group.quorum {
            self.stats.rejected += 1;
            let what = format!(
                "1c from {who} for slot {slot} ballot {ballot} rejected: {} proofs do not form a quorum of {}",
                proofs.len(),
                self.group.quorum
            );
            self.misbehaved(from, "a 1c with bad proofs", what);
            return;
        }
        let proof_set = VerifiedProofs::digest(&proofs);
        if !self.verified_proofs.contains(&proof_set) {
            for p in &proofs {
                let a = p.body.acceptor;
                if !self.verify(a, &p.bytes, &p.signature) {
                    self.stats.forged_rejected += 1;
                    let what = format!(
                        "1c from {who} for slot {slot} ballot {ballot} rejected: forged 1b signature for {}",
                        self.group.names[a]
                    );
                    self.misbehaved(from, "a 1c with forged proofs", what);
                    return;
                }
            }
            self.verified_proofs.insert(proof_set);
        }
        let digest = value.digest();
        if from_slot == slot {
            let reports: Vec<&OneB> = proofs.iter().map(|p| &p.body).collect();
            if !safety::is_safe(&self.group, &reports, &digest) {
                self.stats.rejected += 1;
                let what = format!("1c from {who} for slot {slot} ballot {ballot} rejected: its value is not safe given its proofs");
                self.misbehaved(from, "a 1c with an unsafe value", what);
                return;
            }
        } else if let Some((voted, _)) = self
            .acc
            .voted
            .filter(|_| !crate::sim::bugs::seeded("bpcon.reused-proofs-past-a-vote"))
        {
            // 1bs from slot `from_slot` speak for later slots only because
            // their senders had voted in none then and promised `ballot`
            // from there on: no value can have been chosen here below it.
            // This acceptor did vote here, outside those proofs: they say
            // nothing of its vote, so it wants proofs from this slot.
            self.stats.rejected += 1;
            let what = format!("1c from {who} for slot {slot} ballot {ballot} rejected: its proofs are from slot {from_slot}, but this replica voted in slot {slot} (ballot {voted}), which they cannot show");
            self.misbehaved(from, "a 1c reusing proofs past a vote", what);
            return;
        }
        if from != self.me
            && self
                .lead
                .leading
                .as_ref()
                .is_some_and(|l| l.ballot < ballot)
        {
            self.step_down("another leader proposes in a higher ballot");
        }
        self.acc.max_bal = Some(ballot);
        self.acc.remember_relayed(ballot, digest, value.clone());
        self.persist(
            Record::Relayed {
                slot,
                ballot,
                value: value.clone(),
            },
            true,
        );
        // The 2av names the value by its digest: every acceptor had the
        // value in the 1c, and the learner takes it from here.
        self.heard.values.entry(digest).or_insert(value);
        self.broadcast(PeerMsg::TwoAv {
            slot,
            ballot,
            digest,
        });
    }

    pub(super) fn on_two_av(&mut self, from: usize, slot: u64, ballot: u64, digest: Digest) {
        if !self.current_slot(from, slot, false)
            || (from != self.me && self.out_of_reach(from, "2av", slot, ballot))
        {
            return;
        }
        self.check_against_my_relay(from, "2av", slot, ballot, &digest);
        let n = self.group.n();
        let Some(count) = tally(&mut self.heard.two_av, n, ballot, from, digest) else {
            self.stats.rejected += 1;
            let what = format!(
                "{} relayed two values in ballot {ballot} of slot {slot} (equivocation): the second is ignored",
                self.group.names[from]
            );
            self.misbehaved(from, "equivocation (two 2av values in one ballot)", what);
            return;
        };
        if count < self.group.quorum
            || self.acc.max_bal.is_some_and(|m| m > ballot)
            || self.acc.voted.is_some_and(|(b, _)| b >= ballot)
        {
            return;
        }
        self.acc.max_bal = Some(ballot);
        self.acc.voted = Some((ballot, digest));
        self.persist(
            Record::Voted {
                slot,
                ballot,
                digest,
            },
            true,
        );
        // Unsigned: the learners count it by the link it arrives on, so no
        // signature (the costliest step of a slot) is on the way from the
        // 2av quorum to the decision. It is signed later, with the other
        // votes since the last signing (`sign_votes`), for the certificate.
        self.broadcast(PeerMsg::TwoB {
            slot,
            ballot,
            digest,
        });
        self.unsigned.push(
            Vote {
                slot,
                ballot,
                digest,
            },
            self.tick,
        );
    }

    /// A 2av or 2b for another value than the 1c of that ballot carried
    /// here: the sender or the ballot's leader equivocates (an equivocating
    /// leader or acceptor splits its messages, so no one replica sees both
    /// values from it; this is where the split shows).
    pub(super) fn check_against_my_relay(
        &mut self,
        from: usize,
        what: &str,
        slot: u64,
        ballot: u64,
        digest: &Digest,
    ) {
        if from == self.me {
            return;
        }
        if self.acc.relayed_other(ballot, digest) {
            let leader = self.group.leader(ballot);
            let text = format!(
                "{}'s {what} in ballot {ballot} of slot {slot} is for another value than the 1c of its leader {} carried here (equivocation by one of them)",
                self.group.names[from], self.group.names[leader]
            );
            self.misbehaved(from, "a message contradicting its ballot's 1c", text);
        }
    }
}
