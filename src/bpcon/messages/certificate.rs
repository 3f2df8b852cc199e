//! 2b votes and decision certificates. A 2b goes out unsigned at once
//! (the link MAC says who sent it, which is all a learner needs to count
//! it); the acceptor signs its votes afterwards, several slots under one
//! signature ([`SignedVotes`]), off the path of the operation. A quorum of
//! signed votes for one value in one ballot is a slot's decision
//! certificate, which catch-up hands on (one correct holder is enough).

use super::error::CertificateError;
use super::fields::{blob, digest, put_blob};
use crate::bpcon::crypto::MAX_SIGNATURE;
use crate::bpcon::group::quorum_of;
use crate::bpcon::op::Digest;
use crate::wire::Reader;

const VOTES_TAG: &[u8] = b"BPCON-2BS";

/// Most votes one signature covers. With the largest group's quorum of
/// votes in a certificate it keeps a catch-up reply roomier than a 1c
/// (see `limits`), so the batch limit does not depend on it.
pub const MAX_SIGNED_VOTES: usize = 16;

/// One vote: `digest` in `ballot` of `slot`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Vote {
    pub slot: u64,
    pub ballot: u64,
    pub digest: Digest,
}

/// What `acceptor` signs for a run of its votes: tag, acceptor, count and
/// the votes (slot, ballot, digest each).
pub fn votes_bytes(acceptor: usize, votes: &[Vote]) -> Vec<u8> {
    let mut out = VOTES_TAG.to_vec();
    out.push(acceptor as u8);
    out.push(votes.len() as u8);
    for v in votes {
        out.extend_from_slice(&v.slot.to_be_bytes());
        out.extend_from_slice(&v.ballot.to_be_bytes());
        out.extend_from_slice(&v.digest);
    }
    out
}

/// One acceptor's signature over 1 to [`MAX_SIGNED_VOTES`] of its votes
/// (the signer is the sender of the 2b-signature message, or named next to
/// it in a certificate).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedVotes {
    pub votes: Vec<Vote>,
    pub signature: Vec<u8>,
}

impl SignedVotes {
    /// `count u8, (slot u64, ballot u64, digest)*, signature blob`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.votes.len() as u8);
        for v in &self.votes {
            out.extend_from_slice(&v.slot.to_be_bytes());
            out.extend_from_slice(&v.ballot.to_be_bytes());
            out.extend_from_slice(&v.digest);
        }
        put_blob(out, &self.signature);
    }

    pub fn decode(r: &mut Reader<'_>) -> Result<SignedVotes, CertificateError> {
        let count = r.u8()? as usize;
        if count == 0 || count > MAX_SIGNED_VOTES {
            return Err(CertificateError::SignedVoteCount(count));
        }
        let mut votes = Vec::with_capacity(count);
        for _ in 0..count {
            votes.push(Vote {
                slot: r.u64()?,
                ballot: r.u64()?,
                digest: digest(r)?,
            });
        }
        let signature = blob(r)?.to_vec();
        if signature.len() > MAX_SIGNATURE {
            return Err(CertificateError::SignatureTooLong);
        }
        Ok(SignedVotes { votes, signature })
    }

    /// Whether it signs `digest` in `ballot` of `slot`.
    pub fn covers(&self, slot: u64, ballot: u64, digest: &Digest) -> bool {
        self.votes
            .iter()
            .any(|v| v.slot == slot && v.ballot == ballot && v.digest == *digest)
    }
}

/// A slot's decision certificate: a quorum's signed votes for one value in
/// one ballot (the slot and the value's digest are those of the catch-up
/// reply or WAL record that carries it). Checked by the receiver: exactly
/// a quorum's worth at most, of distinct replicas of the group, each
/// signature verifying over [`votes_bytes`] and covering that slot, ballot
/// and the digest of the batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    pub ballot: u64,
    /// (acceptor, its signed votes, one of which is this slot's).
    pub votes: Vec<(usize, SignedVotes)>,
}

impl Certificate {
    /// `ballot u64, count u8, (acceptor u8, signed votes)*`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.ballot.to_be_bytes());
        out.push(self.votes.len() as u8);
        for (acceptor, signed) in &self.votes {
            out.push(*acceptor as u8);
            signed.encode(out);
        }
    }

    /// More votes than a quorum of `group_size` are refused: a certificate
    /// needs no more, and the bound sizes the catch-up reply (`limits`).
    pub fn decode(r: &mut Reader<'_>, group_size: usize) -> Result<Certificate, CertificateError> {
        let ballot = r.u64()?;
        let count = r.u8()? as usize;
        if count > quorum_of(group_size.max(1)) {
            return Err(CertificateError::TooManyVotes { count, group_size });
        }
        let mut votes = Vec::with_capacity(count);
        for _ in 0..count {
            let acceptor = r.u8()? as usize;
            if acceptor >= group_size {
                return Err(CertificateError::UnknownReplica(acceptor));
            }
            votes.push((acceptor, SignedVotes::decode(r)?));
        }
        Ok(Certificate { ballot, votes })
    }
}
