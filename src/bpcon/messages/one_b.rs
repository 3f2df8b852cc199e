//! The signed part of a phase-1b message, and a 1b with its signature as a
//! leader relays it in a 1c (so the others can check what it was told).

use super::error::{OneBError, PeerMsgError};
use super::fields::{blob, digest, put_blob};
use super::MAX_REPORTED;
use crate::bpcon::crypto::MAX_SIGNATURE;
use crate::bpcon::op::Digest;
use crate::wire::Reader;

const ONE_B_TAG: &[u8] = b"BPCON-1B";

/// What an acceptor promises and reports in phase 1b (the signed part).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OneB {
    pub acceptor: usize,
    pub slot: u64,
    pub ballot: u64,
    /// Its last vote (maxVBal, maxVVal): the ballot and the value's digest.
    pub voted: Option<(u64, Digest)>,
    /// For each value it relayed in a 2av, the highest such ballot (Lamport's m2av).
    pub reported: Vec<(u64, Digest)>,
}

impl OneB {
    /// The bytes that are signed: a tag, then the fields.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut out = ONE_B_TAG.to_vec();
        out.push(self.acceptor as u8);
        out.extend_from_slice(&self.slot.to_be_bytes());
        out.extend_from_slice(&self.ballot.to_be_bytes());
        match &self.voted {
            None => out.push(0),
            Some((bal, digest)) => {
                out.push(1);
                out.extend_from_slice(&bal.to_be_bytes());
                out.extend_from_slice(digest);
            }
        }
        out.push(self.reported.len() as u8);
        for (bal, digest) in &self.reported {
            out.extend_from_slice(&bal.to_be_bytes());
            out.extend_from_slice(digest);
        }
        out
    }

    /// Parse signed bytes and check they describe a possible 1b.
    pub fn parse(bytes: &[u8], group_size: usize) -> Result<OneB, OneBError> {
        let mut r = Reader::new(bytes);
        if r.bytes(ONE_B_TAG.len())? != ONE_B_TAG {
            return Err(OneBError::NoTag);
        }
        let acceptor = r.u8()? as usize;
        if acceptor >= group_size {
            return Err(OneBError::UnknownReplica(acceptor));
        }
        let slot = r.u64()?;
        let ballot = r.u64()?;
        let voted = match r.u8()? {
            0 => None,
            1 => Some((r.u64()?, digest(&mut r)?)),
            other => return Err(OneBError::BadVoteFlag(other)),
        };
        let count = r.u8()? as usize;
        if count > MAX_REPORTED {
            return Err(OneBError::TooManyReports(count));
        }
        let mut reported = Vec::with_capacity(count);
        for _ in 0..count {
            reported.push((r.u64()?, digest(&mut r)?));
        }
        r.finish()?;
        // A vote reported in a 1b for ballot b was cast before b.
        if voted.is_some_and(|(bal, _)| bal >= ballot)
            || reported.iter().any(|(bal, _)| *bal >= ballot)
        {
            return Err(OneBError::VoteNotBelow(ballot));
        }
        Ok(OneB {
            acceptor,
            slot,
            ballot,
            voted,
            reported,
        })
    }
}

/// A 1b with its signature, as relayed in a 1c.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedOneB {
    pub body: OneB,
    pub bytes: Vec<u8>,
    pub signature: Vec<u8>,
}

impl SignedOneB {
    pub(super) fn encode(&self, out: &mut Vec<u8>) {
        put_blob(out, &self.bytes);
        put_blob(out, &self.signature);
    }

    pub(super) fn decode(
        r: &mut Reader<'_>,
        group_size: usize,
    ) -> Result<SignedOneB, PeerMsgError> {
        let bytes = blob(r)?.to_vec();
        let signature = blob(r)?.to_vec();
        if signature.len() > MAX_SIGNATURE {
            return Err(PeerMsgError::SignatureTooLong);
        }
        let body = OneB::parse(&bytes, group_size)?;
        Ok(SignedOneB {
            body,
            bytes,
            signature,
        })
    }
}
