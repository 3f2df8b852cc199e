//! 2b votes and decision certificates: what an acceptor signs when it
//! votes, and a quorum of those signatures as proof that a slot is decided.

use super::error::CertificateError;
use super::fields::{blob, put_blob};
use crate::bpcon::crypto::MAX_SIGNATURE;
use crate::bpcon::op::Digest;
use crate::wire::Reader;

const TWO_B_TAG: &[u8] = b"BPCON-2B";

/// What `acceptor` signs when it votes for `digest` in `ballot` of `slot`.
pub fn two_b_bytes(acceptor: usize, slot: u64, ballot: u64, digest: &Digest) -> Vec<u8> {
    let mut out = TWO_B_TAG.to_vec();
    out.push(acceptor as u8);
    out.extend_from_slice(&slot.to_be_bytes());
    out.extend_from_slice(&ballot.to_be_bytes());
    out.extend_from_slice(digest);
    out
}

/// A slot's decision certificate: a quorum's signed 2b votes for one value
/// in one ballot (the slot and the value's digest are those of the
/// catch-up reply or WAL record that carries it). Checked by the receiver:
/// at least a quorum of distinct replicas of the group, every signature
/// over [`two_b_bytes`] for that slot, ballot and the digest of the batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    pub ballot: u64,
    /// (acceptor, its 2b signature).
    pub votes: Vec<(usize, Vec<u8>)>,
}

impl Certificate {
    /// `ballot u64, count u8, (acceptor u8, signature)*`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.ballot.to_be_bytes());
        out.push(self.votes.len() as u8);
        for (acceptor, signature) in &self.votes {
            out.push(*acceptor as u8);
            put_blob(out, signature);
        }
    }

    pub fn decode(r: &mut Reader<'_>, group_size: usize) -> Result<Certificate, CertificateError> {
        let ballot = r.u64()?;
        let count = r.u8()? as usize;
        if count > group_size {
            return Err(CertificateError::TooManyVotes { count, group_size });
        }
        let mut votes = Vec::with_capacity(count);
        for _ in 0..count {
            let acceptor = r.u8()? as usize;
            if acceptor >= group_size {
                return Err(CertificateError::UnknownReplica(acceptor));
            }
            let signature = blob(r)?.to_vec();
            if signature.len() > MAX_SIGNATURE {
                return Err(CertificateError::SignatureTooLong);
            }
            votes.push((acceptor, signature));
        }
        Ok(Certificate { ballot, votes })
    }
}
