//! The field encodings the peer messages share: length-prefixed blobs,
//! optional ballots, digests, nonces, names and batches.

use super::error::PeerMsgError;
use super::{Nonce, NONCE_LEN};
use crate::bpcon::op::{Batch, Digest};
use crate::wire::{BodyError, Reader};

/// Longest replica name a handshake may carry.
const MAX_NAME: usize = 64;

pub(super) fn nonce(r: &mut Reader<'_>) -> Result<Nonce, BodyError> {
    let mut n = [0u8; NONCE_LEN];
    n.copy_from_slice(r.bytes(NONCE_LEN)?);
    Ok(n)
}

pub(super) fn put_ballot(out: &mut Vec<u8>, ballot: Option<u64>) {
    match ballot {
        None => out.push(0),
        Some(b) => {
            out.push(1);
            out.extend_from_slice(&b.to_be_bytes());
        }
    }
}

pub(super) fn ballot(r: &mut Reader<'_>) -> Result<Option<u64>, PeerMsgError> {
    match r.u8()? {
        0 => Ok(None),
        1 => Ok(Some(r.u64()?)),
        other => Err(PeerMsgError::BadBallotFlag(other)),
    }
}

/// `len u16 | bytes`; a caller never passes more than a frame holds.
pub(super) fn put_blob(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(&(data.len() as u16).to_be_bytes());
    out.extend_from_slice(data);
}

pub(super) fn blob<'a>(r: &mut Reader<'a>) -> Result<&'a [u8], BodyError> {
    let len = r.u16()? as usize;
    r.bytes(len)
}

pub(super) fn digest(r: &mut Reader<'_>) -> Result<Digest, BodyError> {
    let mut d = [0u8; 20];
    d.copy_from_slice(r.bytes(20)?);
    Ok(d)
}

pub(super) fn name(r: &mut Reader<'_>) -> Result<String, PeerMsgError> {
    let len = r.u8()? as usize;
    if len > MAX_NAME {
        return Err(PeerMsgError::NameTooLong);
    }
    String::from_utf8(r.bytes(len)?.to_vec()).map_err(|_| PeerMsgError::NameNotUtf8)
}

pub(super) fn put_batch(out: &mut Vec<u8>, batch: &Batch) {
    let at = out.len();
    out.extend_from_slice(&[0, 0]);
    batch.encode(out);
    let len = (out.len() - at - 2) as u16;
    out[at..at + 2].copy_from_slice(&len.to_be_bytes());
}

pub(super) fn batch(r: &mut Reader<'_>) -> Result<Batch, PeerMsgError> {
    Ok(Batch::from_bytes(blob(r)?)?)
}
