//! The learner: a quorum of 2b votes from distinct replicas decides the
//! slot, signed or not (an unsigned 2b is its sender's vote: peer links
//! are authenticated, frame by frame). Deciding (here or by catching up)
//! applies the batch, answers its clients and starts the next slot afresh.
//! The votes' signatures arrive later ([`PeerMsg::TwoBSigs`]); a quorum of
//! them for the decided value in the deciding ballot forms the slot's
//! decision certificate, kept here for the catch-up answers.

use super::heard::tally;
use super::{Replica, CODE_BEHIND, CODE_COMMITTED, KEPT_CERTIFICATES};
use crate::bpcon::messages::{votes_bytes, Certificate, PeerMsg, SignedVotes, Vote};
use crate::bpcon::op::{Batch, Digest, RequestId};
use crate::bpcon::wal::Record;
use log::info;
use std::collections::{BTreeMap, HashSet};

/// A slot decided here: what each replica voted in the deciding ballot,
/// and the signatures in so far.
#[derive(Debug, Clone)]
pub(super) struct Forming {
    pub(super) ballot: u64,
    pub(super) digest: Digest,
    /// Each replica's 2b in `ballot`, signed or not (for equivocation).
    pub(super) said: Vec<Option<Digest>>,
    /// Verified signatures covering (slot, `ballot`, `digest`).
    pub(super) signed: Vec<Option<SignedVotes>>,
}

impl Forming {
    /// The certificate, once a quorum of signatures is in.
    fn certificate(&self, quorum: usize) -> Option<Certificate> {
        let votes: Vec<(usize, SignedVotes)> = self
            .signed
            .iter()
            .enumerate()
            .filter_map(|(i, s)| Some((i, s.clone()?)))
            .take(quorum)
            .collect();
        (votes.len() >= quorum).then_some(Certificate {
            ballot: self.ballot,
            votes,
        })
    }
}

/// Decision certificates of the latest decided slots (see KEPT_CERTIFICATES),
/// for answering catch-up requests with proof; and for the slots decided
/// here, the deciding ballot's votes and signatures (until the certificate
/// is complete, and after, to tell late contradicting signatures).
#[derive(Debug, Default)]
pub(super) struct Certificates {
    kept: BTreeMap<u64, Certificate>,
    forming: BTreeMap<u64, Forming>,
    /// For slots committed here without the deciding ballot's votes
    /// (restored from the WAL, or caught up without a certificate): the
    /// verified signatures for the committed value, by (slot, ballot).
    gathering: BTreeMap<(u64, u64), Vec<Option<SignedVotes>>>,
}

/// (slot, ballot) pairs gathered at most: a liar signing many ballots
/// pushes out only the oldest slots' gathering.
const MAX_GATHERING: usize = 2 * KEPT_CERTIFICATES as usize;

impl Certificates {
    /// Keep `slot`'s certificate (if any), or what is known of it so far
    /// (`forming`), and forget those of old slots.
    pub(super) fn keep(&mut self, slot: u64, proof: Option<Certificate>, forming: Option<Forming>) {
        if let Some(c) = proof {
            self.kept.insert(slot, c);
        }
        if let Some(f) = forming {
            self.forming.insert(slot, f);
        }
        let oldest = slot.saturating_sub(KEPT_CERTIFICATES);
        self.kept = self.kept.split_off(&oldest);
        self.forming = self.forming.split_off(&oldest);
        self.gathering = self.gathering.split_off(&(oldest, 0));
    }

    /// A verified signature from `from` for the value committed in `slot`
    /// (whose deciding ballot is not known here), in `ballot`: a quorum of
    /// them in one ballot is the certificate.
    fn gather(
        &mut self,
        slot: u64,
        ballot: u64,
        from: usize,
        signed: &SignedVotes,
        n: usize,
        quorum: usize,
    ) {
        if self.kept.contains_key(&slot) {
            return;
        }
        if !self.gathering.contains_key(&(slot, ballot)) && self.gathering.len() >= MAX_GATHERING {
            self.gathering.pop_first();
        }
        let row = self
            .gathering
            .entry((slot, ballot))
            .or_insert_with(|| vec![None; n]);
        row[from].get_or_insert_with(|| signed.clone());
        let votes: Vec<(usize, SignedVotes)> = row
            .iter()
            .enumerate()
            .filter_map(|(i, s)| Some((i, s.clone()?)))
            .take(quorum)
            .collect();
        if votes.len() >= quorum {
            self.kept.insert(slot, Certificate { ballot, votes });
            self.gathering.retain(|(s, _), _| *s != slot);
        }
    }

    /// The latest slot with a certificate.
    pub(super) fn latest(&self) -> Option<u64> {
        self.kept.last_key_value().map(|(s, _)| *s)
    }

    pub(super) fn get(&self, slot: u64) -> Option<&Certificate> {
        self.kept.get(&slot)
    }
}

impl Replica {
    /// An unsigned 2b: its sender's vote, by the link it came on.
    pub(super) fn on_two_b(&mut self, from: usize, slot: u64, ballot: u64, digest: Digest) {
        if !self.current_slot(from, slot, false)
            || (from != self.me && self.out_of_reach(from, "2b", slot, ballot))
        {
            return;
        }
        self.count_vote(from, slot, ballot, digest, None);
    }

    /// `from`'s signature over some of its votes: checked once, then each
    /// vote counts as a 2b in the current slot, or joins the certificate
    /// of a slot decided here already. (A vote for a slot this replica has
    /// not reached is dropped: a correct sender was there, so this replica
    /// is behind and learns that slot by catching up, with a certificate
    /// if its sources have one.)
    pub(super) fn on_two_b_sigs(&mut self, from: usize, signed: SignedVotes) {
        // Our own signature needs no check.
        if from != self.me
            && !self.verify(from, &votes_bytes(from, &signed.votes), &signed.signature)
        {
            self.stats.forged_rejected += 1;
            let first = signed.votes[0];
            let what = format!(
                "forged 2b signature from {} over {} votes (the first for slot {} ballot {}): it does not verify; rejected",
                self.group.names[from],
                signed.votes.len(),
                first.slot,
                first.ballot
            );
            self.misbehaved(from, "a forged 2b signature", what);
            return;
        }
        for vote in signed.votes.clone() {
            // The slot moves on when a vote decides it: read it each time.
            if vote.slot < self.slot() {
                self.late_signature(from, vote, &signed);
            } else if self.current_slot(from, vote.slot, false)
                && !(from != self.me
                    && self.out_of_reach(from, "signed 2b", vote.slot, vote.ballot))
            {
                self.count_vote(from, vote.slot, vote.ballot, vote.digest, Some(&signed));
            }
        }
    }

    /// Count `from`'s vote in the current slot (with its signature if it
    /// came signed); a quorum for one value in one ballot decides.
    fn count_vote(
        &mut self,
        from: usize,
        slot: u64,
        ballot: u64,
        digest: Digest,
        signed: Option<&SignedVotes>,
    ) {
        self.check_against_my_relay(from, "2b", slot, ballot, &digest);
        let n = self.group.n();
        let Some(count) = tally(&mut self.heard.two_b, n, ballot, from, digest) else {
            self.stats.rejected += 1;
            let what = format!(
                "{} voted for two values in ballot {ballot} of slot {slot} (equivocation, signed or not): the second vote is ignored",
                self.group.names[from]
            );
            self.misbehaved(from, "equivocation (two 2b votes in one ballot)", what);
            return;
        };
        let heard = &mut self.heard;
        heard
            .two_b_signatures
            .retain(|b, _| heard.two_b.contains_key(b));
        if let Some(signed) = signed {
            let row = heard
                .two_b_signatures
                .entry(ballot)
                .or_insert_with(|| vec![None; n]);
            row[from].get_or_insert_with(|| signed.clone());
        }
        if count < self.group.quorum {
            return;
        }
        match self.known_value(&digest) {
            Some(value) => self.commit(slot, value, digest, Some(ballot)),
            None => {
                // Decided, but the 1c with the value never reached us (a
                // 2av names the value by digest): fetch it.
                self.catchup.decided_unseen = Some((ballot, digest));
                self.request_catchup();
            }
        }
    }

    /// The value of the current slot with this digest, if it reached this
    /// replica: relayed from a 1c now, or before a restart (the WAL).
    fn known_value(&self, digest: &Digest) -> Option<Batch> {
        if let Some(value) = self.heard.values.get(digest) {
            return Some(value.clone());
        }
        self.acc
            .relayed
            .iter()
            .find(|(_, d, _)| d == digest)
            .map(|(_, _, v)| v.clone())
    }

    /// A verified signature for a vote in `vote.slot`, decided here
    /// already: it joins that slot's forming certificate if it is for the
    /// deciding ballot and value. A signed vote for another value in that
    /// ballot or a later one is a lie: a value decided in ballot b is the
    /// only one a correct acceptor votes for there and above (BPCon's
    /// safety), so no correct replica signs it. One in an earlier ballot
    /// may be honest (an undecided ballot) and is no part of the proof.
    fn late_signature(&mut self, from: usize, vote: Vote, signed: &SignedVotes) {
        let quorum = self.group.quorum;
        let Some(forming) = self.certificates.forming.get_mut(&vote.slot) else {
            // Committed here without the deciding ballot's votes (restored
            // or caught up): a signature for the committed value counts in
            // its ballot. One for another value says nothing (it may be
            // from an undecided earlier ballot) and is dropped.
            let recent = vote.slot.saturating_add(KEPT_CERTIFICATES) >= self.slot();
            let committed = usize::try_from(vote.slot)
                .ok()
                .and_then(|s| self.log.get(s))
                .filter(|_| recent)
                .is_some_and(|value| value.digest() == vote.digest);
            if committed {
                let n = self.group.n();
                self.certificates
                    .gather(vote.slot, vote.ballot, from, signed, n, quorum);
            }
            return;
        };
        if vote.ballot < forming.ballot {
            return;
        }
        let contradiction = if vote.digest != forming.digest {
            Some("a signed vote against a decision")
        } else if vote.ballot == forming.ballot
            && forming.said[from].is_some_and(|d| d != vote.digest)
        {
            Some("equivocation (two 2b votes in one ballot)")
        } else {
            None
        };
        if let Some(kind) = contradiction {
            let decided_in = forming.ballot;
            self.stats.rejected += 1;
            let what = format!(
                "{} signed a vote in ballot {} of slot {} for another value than it was decided for in ballot {decided_in}, or than its own 2b said: the signature is ignored",
                self.group.names[from], vote.ballot, vote.slot
            );
            self.misbehaved(from, kind, what);
            return;
        }
        if vote.ballot != forming.ballot || self.certificates.kept.contains_key(&vote.slot) {
            return; // the decided value in a later ballot, or proven already
        }
        forming.signed[from].get_or_insert_with(|| signed.clone());
        if let Some(c) = forming.certificate(quorum) {
            self.certificates.kept.insert(vote.slot, c);
        }
    }

    /// Whether `proof` shows that `slot` was decided for the batch whose
    /// digest is `digest`: a quorum of distinct replicas of the group, each
    /// with signed votes that cover this slot, ballot and digest and
    /// verify. Err says why not.
    pub(super) fn check_certificate(
        &mut self,
        slot: u64,
        digest: &Digest,
        proof: &Certificate,
    ) -> Result<(), String> {
        let n = self.group.n();
        if proof.votes.len() < self.group.quorum {
            return Err(format!(
                "{} votes do not form a quorum of {}",
                proof.votes.len(),
                self.group.quorum
            ));
        }
        let mut seen = vec![false; n];
        for (signer, _) in &proof.votes {
            if *signer >= n {
                return Err(format!("a vote from replica #{signer}, not in the group"));
            }
            if std::mem::replace(&mut seen[*signer], true) {
                return Err(format!("two votes from {}", self.group.names[*signer]));
            }
        }
        for (signer, signature) in &proof.votes {
            if !signature.covers(slot, proof.ballot, digest) {
                return Err(format!(
                    "{}'s signed votes hold none for this slot, ballot {} and value",
                    self.group.names[*signer], proof.ballot
                ));
            }
            let bytes = votes_bytes(*signer, &signature.votes);
            if !self.verify(*signer, &bytes, &signature.signature) {
                return Err(format!(
                    "{}'s signed votes (ballot {}) do not verify",
                    self.group.names[*signer], proof.ballot
                ));
            }
        }
        Ok(())
    }

    /// Decide `slot`, seen decided here in `ballot` (the certificate is
    /// whatever signatures are in so far) or caught up (`ballot` None) from
    /// others' replies, with their certificate if one came.
    /// `digest` is `value`'s, known to every caller (hashing a full batch
    /// again per slot is not free).
    pub(super) fn commit(&mut self, slot: u64, value: Batch, digest: Digest, ballot: Option<u64>) {
        self.commit_with(slot, value, digest, ballot, None)
    }

    pub(super) fn commit_with(
        &mut self,
        slot: u64,
        value: Batch,
        digest: Digest,
        ballot: Option<u64>,
        caught_up_proof: Option<Certificate>,
    ) {
        debug_assert_eq!(slot, self.slot());
        debug_assert_eq!(digest, value.digest());
        let forming = ballot.map(|b| Forming {
            ballot: b,
            digest,
            said: self
                .heard
                .two_b
                .get(&b)
                .cloned()
                .unwrap_or_else(|| vec![None; self.group.n()]),
            signed: self
                .heard
                .two_b_signatures
                .get(&b)
                .cloned()
                .unwrap_or_else(|| vec![None; self.group.n()]),
        });
        let proof = match &forming {
            Some(f) => f.certificate(self.group.quorum),
            None => caught_up_proof,
        };
        // Not fsync'd before the clients hear "committed": the decision is
        // already durable without it, in the fsync'd vote records of a
        // quorum (at least f + 1 correct replicas, which never vote against
        // it), and every later vote or promise of this replica is fsync'd
        // after this record, taking it to disk. Lost in a crash, it is
        // learnt again by catching up, like any slot decided while down.
        // The proof is what this replica holds when it decides: the votes'
        // signatures come later, usually after this, and the record is not
        // written again for them; catch-up answers from the in-memory
        // certificates, which they complete (a restarted replica answers
        // for its older slots without one, and f + 1 matching answers are
        // believed too).
        self.persist(
            Record::Committed {
                slot,
                value: value.clone(),
                proof: proof.clone(),
            },
            false,
        );
        self.certificates.keep(slot, proof, forming);
        let applied = self.store.apply(&value);
        self.log.push(value.clone());
        self.acc = self.acc.next_slot();
        self.heard.next_slot();
        self.lead.backoff = 1;
        self.catchup.decided(slot, self.me, self.slot());
        // The early messages of the slot moved to are handled now.
        let current = self.slot();
        let early = std::mem::take(&mut self.early);
        self.replay
            .extend(early.into_iter().filter(|(_, msg)| match msg {
                PeerMsg::OneA { slot, .. }
                | PeerMsg::OneC { slot, .. }
                | PeerMsg::TwoAv { slot, .. }
                | PeerMsg::TwoB { slot, .. } => *slot == current,
                _ => false,
            }));
        match ballot {
            Some(b) => info!(
                "slot {slot} committed in ballot {b}: {} operations ({} new)",
                value.requests.len(),
                applied.len()
            ),
            None => info!(
                "slot {slot} committed (caught up): {} operations ({} new)",
                value.requests.len(),
                applied.len()
            ),
        }
        // Only the ones queued here have anyone to answer (most replicas
        // have none of a slot's requests queued).
        let committed: HashSet<RequestId> = value
            .requests
            .iter()
            .map(|r| r.id)
            .filter(|id| self.queue.contains(*id))
            .collect();
        let answers = self.queue.take(&committed);
        if answers.iter().any(|(client, _)| client.is_some()) {
            // The leader made progress on this replica's requests.
            self.lead.forward_deadline = None;
        }
        for (client, id) in answers {
            if let Some(client) = client {
                self.reply(
                    client,
                    id,
                    CODE_COMMITTED,
                    format!("committed in slot {slot}"),
                );
            }
        }
        let behind = self
            .lead
            .leading
            .as_ref()
            .is_some_and(|l| l.slot == slot && l.behind);
        if behind {
            // The seed's refusal path: this replica was behind; it caught
            // up, and its requests in that ballot were not decided.
            let l = self.lead.leading.take().expect("leading");
            let mine: HashSet<RequestId> = l.own.requests.iter().map(|r| r.id).collect();
            let failed = self.queue.take(&mine);
            for (client, id) in failed {
                if let Some(client) = client {
                    self.reply(
                        client,
                        id,
                        CODE_BEHIND,
                        format!(
                            "this replica was behind and caught up to slot {}; retry",
                            slot + 1
                        ),
                    );
                }
            }
        } else if let Some(l) = &mut self.lead.leading {
            // A stable leader goes on in the next slot with the same ballot.
            l.next_slot(self.tick);
        }
        self.lead.yield_until = None;
        self.maybe_lead();
    }
}
