//! Signing and verifying, counted (and timed, for the benchmark only: no
//! decision depends on the time) in the replica's [`Stats`]; and the 2b
//! votes cast but not signed yet.
//!
//! A 2b goes out unsigned (a learner needs no signature to count it: the
//! link names its sender). On a tick, once a full run of MAX_SIGNED_VOTES
//! votes is waiting or the oldest has waited SIGN_EVERY ticks, the replica
//! signs the votes cast since, up to MAX_SIGNED_VOTES under one signature,
//! and broadcasts them (`PeerMsg::TwoBSigs`) for the others' certificates.
//! On a tick, not right after the vote: then no slot waits for it (a lone
//! operation is decided within a few milliseconds, long before), and with
//! the votes of several slots under one signature the cost of signing,
//! which the replicas share the cores for, is bounded: at most one
//! signature per SIGN_EVERY ticks when few slots are decided, one per 16
//! votes when many are (signing was the costliest CPU step of a loaded
//! replica at one signature per 50 ms).

use super::{Dest, Replica, Stats, KEPT_CERTIFICATES};
use crate::bpcon::crypto::{PrivateKey, PublicKey};
use crate::bpcon::messages::{votes_bytes, PeerMsg, SignedVotes, Vote, MAX_SIGNED_VOTES};
use std::collections::VecDeque;
use std::time::Instant;

/// A vote waits at most this many ticks for its signature (a full run of
/// MAX_SIGNED_VOTES is signed at the next tick).
pub const SIGN_EVERY: u64 = 20;
/// Votes kept for signing at most (the oldest dropped first): a slot this
/// far back has no certificate kept anywhere (KEPT_CERTIFICATES).
const MAX_UNSIGNED: usize = KEPT_CERTIFICATES as usize;

/// Signed runs kept for sending again (see `recent`).
const MAX_SENT_RUNS: usize = KEPT_CERTIFICATES as usize;

/// The votes this replica cast and has not signed yet, oldest first, and
/// the signed runs of the latest slots. A signed run is sent once to each
/// link that is up; a peer whose link was down then (partition, reset)
/// gets the recent runs again when it comes back (`Replica::on_peer_up`):
/// it may have decided on the unsigned 2b and need the signature for its
/// certificate. Not durable: a restarted replica signs again the votes of
/// its WAL (`Replica::restore`).
#[derive(Debug, Default)]
pub(super) struct Unsigned {
    votes: VecDeque<Vote>,
    /// The tick the oldest of `votes` was cast at (or restored).
    oldest_at: Option<u64>,
    sent: VecDeque<SignedVotes>,
}

impl Unsigned {
    pub(super) fn push(&mut self, vote: Vote, tick: u64) {
        if self.votes.len() >= MAX_UNSIGNED {
            self.votes.pop_front();
        }
        self.votes.push_back(vote);
        self.oldest_at.get_or_insert(tick);
    }

    /// Whether to sign at `tick`: a full run is waiting, or the oldest vote
    /// has waited SIGN_EVERY ticks.
    pub(super) fn due(&self, tick: u64) -> bool {
        self.votes.len() >= MAX_SIGNED_VOTES
            || self
                .oldest_at
                .is_some_and(|t| tick >= t.saturating_add(SIGN_EVERY))
    }

    /// The signed runs still useful to a peer: those with a vote in the
    /// latest KEPT_CERTIFICATES slots.
    pub(super) fn recent(&self) -> Vec<SignedVotes> {
        self.sent.iter().cloned().collect()
    }

    fn sent(&mut self, signed: SignedVotes, oldest: u64) {
        self.sent
            .retain(|s| s.votes.iter().any(|v| v.slot >= oldest));
        if self.sent.len() >= MAX_SENT_RUNS {
            self.sent.pop_front();
        }
        self.sent.push_back(signed);
    }
}

impl Replica {
    /// Sign the votes cast since the last time, and send the signatures to
    /// everyone (this replica included: its certificates need its own).
    pub(super) fn sign_votes(&mut self) {
        let oldest = self.slot().saturating_sub(KEPT_CERTIFICATES);
        self.unsigned.oldest_at = None;
        let votes: Vec<Vote> = self
            .unsigned
            .votes
            .drain(..)
            .filter(|v| v.slot >= oldest)
            .collect();
        for chunk in votes.chunks(MAX_SIGNED_VOTES) {
            let signature = self.sign(&votes_bytes(self.me, chunk));
            let signed = SignedVotes {
                votes: chunk.to_vec(),
                signature,
            };
            self.unsigned.sent(signed.clone(), oldest);
            let msg = PeerMsg::TwoBSigs { signed };
            if self.group.n() > 1 {
                self.out.sends.push((Dest::All, msg.clone()));
            }
            self.inbox.push_back(msg);
        }
    }
}

pub(super) struct Signer {
    key: PrivateKey,
    /// Everyone's public key, by group index (including this replica's).
    keys: Vec<PublicKey>,
}

impl Signer {
    pub(super) fn new(key: PrivateKey, keys: Vec<PublicKey>) -> Signer {
        Signer { key, keys }
    }

    pub(super) fn len(&self) -> usize {
        self.keys.len()
    }

    pub(super) fn sign(&self, stats: &mut Stats, bytes: &[u8]) -> Vec<u8> {
        let started = Instant::now();
        let signature = self.key.sign(bytes);
        stats.signs += 1;
        stats.sign_us += started.elapsed().as_micros() as u64;
        signature
    }

    pub(super) fn verify(
        &self,
        stats: &mut Stats,
        signer: usize,
        bytes: &[u8],
        signature: &[u8],
    ) -> bool {
        let started = Instant::now();
        let ok = self.keys[signer].verify(bytes, signature);
        stats.verifies += 1;
        stats.verify_us += started.elapsed().as_micros() as u64;
        ok
    }
}
