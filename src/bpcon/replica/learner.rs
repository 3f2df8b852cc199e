//! The learner: a quorum of signed 2b votes decides the slot; deciding
//! (here or by catching up) applies the batch, answers its clients and
//! starts the next slot afresh. Decision certificates are kept here for
//! the catch-up answers.

use super::heard::tally;
use super::{Replica, CODE_BEHIND, CODE_COMMITTED, KEPT_CERTIFICATES};
use crate::bpcon::messages::{two_b_bytes, Certificate, PeerMsg};
use crate::bpcon::op::{Batch, Digest, RequestId};
use crate::bpcon::wal::Record;
use log::info;
use std::collections::{BTreeMap, HashSet};

/// Decision certificates of the latest decided slots (see KEPT_CERTIFICATES),
/// for answering catch-up requests with proof.
#[derive(Debug, Default)]
pub(super) struct Certificates {
    kept: BTreeMap<u64, Certificate>,
}

impl Certificates {
    /// Keep `slot`'s certificate (if any) and forget those of old slots.
    pub(super) fn keep(&mut self, slot: u64, proof: Option<Certificate>) {
        if let Some(c) = proof {
            self.kept.insert(slot, c);
        }
        let oldest = slot.saturating_sub(KEPT_CERTIFICATES);
        while self
            .kept
            .first_key_value()
            .is_some_and(|(s, _)| *s < oldest)
        {
            self.kept.pop_first();
        }
    }

    pub(super) fn get(&self, slot: u64) -> Option<&Certificate> {
        self.kept.get(&slot)
    }
}

impl Replica {
    pub(super) fn on_two_b(
        &mut self,
        from: usize,
        slot: u64,
        ballot: u64,
        digest: Digest,
        signature: Vec<u8>,
    ) {
        if !self.current_slot(from, slot, false)
            || (from != self.me && self.out_of_reach(from, "2b", slot, ballot))
        {
            return;
        }
        // Our own vote needs no check.
        if from != self.me
            && !self.verify(from, &two_b_bytes(from, slot, ballot, &digest), &signature)
        {
            self.stats.forged_rejected += 1;
            let what = format!(
                "forged 2b from {} for slot {slot} ballot {ballot}: signature does not verify; rejected",
                self.group.names[from]
            );
            self.misbehaved(from, "a forged 2b", what);
            return;
        }
        self.check_against_my_relay(from, "2b", slot, ballot, &digest);
        let n = self.group.n();
        let Some(count) = tally(&mut self.heard.two_b, n, ballot, from, digest) else {
            self.stats.rejected += 1;
            let what = format!(
                "{} voted for two values in ballot {ballot} of slot {slot} (equivocation): the second vote is ignored",
                self.group.names[from]
            );
            self.misbehaved(from, "equivocation (two 2b votes in one ballot)", what);
            return;
        };
        let heard = &mut self.heard;
        heard
            .two_b_signatures
            .retain(|b, _| heard.two_b.contains_key(b));
        heard
            .two_b_signatures
            .entry(ballot)
            .or_insert_with(|| vec![None; n])[from] = Some(signature);
        if count < self.group.quorum {
            return;
        }
        // The quorum's signed votes: this slot's decision certificate.
        let votes: Vec<(usize, Vec<u8>)> = (0..n)
            .filter(|&i| self.heard.two_b[&ballot][i] == Some(digest))
            .filter_map(|i| Some((i, self.heard.two_b_signatures[&ballot][i].clone()?)))
            .take(self.group.quorum)
            .collect();
        let proof = Certificate { ballot, votes };
        match self.heard.values.get(&digest).cloned() {
            Some(value) => self.commit(slot, value, Some(proof), false),
            None => {
                // Decided, but we never saw the value: fetch it.
                self.catchup.decided_unseen = true;
                self.request_catchup();
            }
        }
    }

    /// Whether `proof` shows that `slot` was decided for the batch whose
    /// digest is `digest`: a quorum of distinct replicas of the group, each
    /// signature verifying for this slot, ballot and digest. Err says why not.
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
            let bytes = two_b_bytes(*signer, slot, proof.ballot, digest);
            if !self.verify(*signer, &bytes, signature) {
                return Err(format!(
                    "{}'s vote in ballot {} does not verify for this slot and value",
                    self.group.names[*signer], proof.ballot
                ));
            }
        }
        Ok(())
    }

    /// Decide `slot` (with its certificate if known): seen in a ballot
    /// here, or `caught_up` from others' replies.
    pub(super) fn commit(
        &mut self,
        slot: u64,
        value: Batch,
        proof: Option<Certificate>,
        caught_up: bool,
    ) {
        debug_assert_eq!(slot, self.slot());
        let ballot = proof.as_ref().map(|c| c.ballot).filter(|_| !caught_up);
        // Not fsync'd before the clients hear "committed": the decision is
        // already durable without it, in the fsync'd vote records of a
        // quorum (at least f + 1 correct replicas, which never vote against
        // it), and every later vote or promise of this replica is fsync'd
        // after this record, taking it to disk. Lost in a crash, it is
        // learnt again by catching up, like any slot decided while down.
        self.persist(
            Record::Committed {
                slot,
                value: value.clone(),
                proof: proof.clone(),
            },
            false,
        );
        self.certificates.keep(slot, proof);
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
        let committed: HashSet<RequestId> = value.requests.iter().map(|r| r.id).collect();
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
