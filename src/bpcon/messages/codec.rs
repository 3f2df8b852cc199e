//! Peer messages to and from frames: [`PeerMsg::encode`], the body
//! decoder ([`PeerCodec`], a `wire::BodyCodec`), and [`LinkFrames`], the
//! raw frames of a link paired with the MAC frame that follows each.

use super::error::PeerMsgError;
use super::fields::{ballot, batch, blob, digest, name, nonce, put_ballot, put_batch, put_blob};
use super::*;
use crate::bpcon::crypto::MAX_SIGNATURE;
use crate::wire::{
    split_frame, write_frame, BodyCodec, Codec, Frame, FrameError, Reader, TooLarge,
};

impl PeerMsg {
    /// Append this message as one frame.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), TooLarge> {
        match self {
            PeerMsg::Challenge { nonce } => {
                write_frame(out, CHALLENGE, |o| o.extend_from_slice(nonce))
            }
            PeerMsg::Hello {
                from,
                to,
                nonce,
                sealed_key,
                signature,
            } => write_frame(out, HELLO, |o| {
                o.push(from.len() as u8);
                o.extend_from_slice(from.as_bytes());
                o.push(to.len() as u8);
                o.extend_from_slice(to.as_bytes());
                o.extend_from_slice(nonce);
                put_blob(o, sealed_key);
                put_blob(o, signature);
            }),
            PeerMsg::Mac { tag } => write_frame(out, MAC, |o| o.extend_from_slice(tag)),
            PeerMsg::Welcome { signature } => write_frame(out, WELCOME, |o| put_blob(o, signature)),
            PeerMsg::Status {
                committed,
                max_ballot,
            } => write_frame(out, STATUS, |o| {
                o.extend_from_slice(&committed.to_be_bytes());
                put_ballot(o, *max_ballot);
            }),
            PeerMsg::OneA { slot, ballot } => write_frame(out, ONE_A, |o| {
                o.extend_from_slice(&slot.to_be_bytes());
                o.extend_from_slice(&ballot.to_be_bytes());
            }),
            PeerMsg::OneB { signed, values } => write_frame(out, ONE_B, |o| {
                signed.encode(o);
                o.push(values.len() as u8);
                for v in values {
                    put_batch(o, v);
                }
            }),
            PeerMsg::Refuse {
                slot,
                max_ballot,
                committed,
            } => write_frame(out, REFUSE, |o| {
                o.extend_from_slice(&slot.to_be_bytes());
                put_ballot(o, *max_ballot);
                o.extend_from_slice(&committed.to_be_bytes());
            }),
            PeerMsg::OneC {
                slot,
                ballot,
                value,
                proofs,
            } => write_frame(out, ONE_C, |o| {
                o.extend_from_slice(&slot.to_be_bytes());
                o.extend_from_slice(&ballot.to_be_bytes());
                put_batch(o, value);
                o.push(proofs.len() as u8);
                for p in proofs {
                    p.encode(o);
                }
            }),
            PeerMsg::TwoAv {
                slot,
                ballot,
                digest,
            } => write_frame(out, TWO_AV, |o| {
                o.extend_from_slice(&slot.to_be_bytes());
                o.extend_from_slice(&ballot.to_be_bytes());
                o.extend_from_slice(digest);
            }),
            PeerMsg::TwoB {
                slot,
                ballot,
                digest,
            } => write_frame(out, TWO_B, |o| {
                o.extend_from_slice(&slot.to_be_bytes());
                o.extend_from_slice(&ballot.to_be_bytes());
                o.extend_from_slice(digest);
            }),
            PeerMsg::TwoBSigs { signed } => write_frame(out, TWO_B_SIGS, |o| signed.encode(o)),
            PeerMsg::CatchupRequest { from_slot } => write_frame(out, CATCHUP_REQUEST, |o| {
                o.extend_from_slice(&from_slot.to_be_bytes())
            }),
            PeerMsg::Forward { requests } => write_frame(out, FORWARD, |o| put_batch(o, requests)),
            PeerMsg::CatchupReply {
                slot,
                committed,
                value,
                proof,
            } => write_frame(out, CATCHUP_REPLY, |o| {
                o.extend_from_slice(&slot.to_be_bytes());
                o.extend_from_slice(&committed.to_be_bytes());
                put_batch(o, value);
                match proof {
                    None => o.push(0),
                    Some(c) => {
                        o.push(1);
                        c.encode(o);
                    }
                }
            }),
        }
    }

    pub fn to_frame(&self) -> Result<Vec<u8>, TooLarge> {
        let mut out = Vec::new();
        self.encode(&mut out)?;
        Ok(out)
    }

    /// Decode one frame's body; any error closes the link it came on.
    pub fn decode(kind: u16, body: &[u8], group_size: usize) -> Result<PeerMsg, PeerMsgError> {
        let mut r = Reader::new(body);
        let msg = match kind {
            CHALLENGE => PeerMsg::Challenge {
                nonce: nonce(&mut r)?,
            },
            HELLO => {
                let from = name(&mut r)?;
                let to = name(&mut r)?;
                let nonce = nonce(&mut r)?;
                let sealed_key = blob(&mut r)?.to_vec();
                let signature = blob(&mut r)?.to_vec();
                if signature.len() > MAX_SIGNATURE || sealed_key.len() > MAX_SIGNATURE {
                    return Err(PeerMsgError::SignatureOrKeyTooLong);
                }
                PeerMsg::Hello {
                    from,
                    to,
                    nonce,
                    sealed_key,
                    signature,
                }
            }
            MAC => {
                let mut tag = [0u8; 20];
                tag.copy_from_slice(r.bytes(20)?);
                PeerMsg::Mac { tag }
            }
            WELCOME => {
                let signature = blob(&mut r)?.to_vec();
                if signature.len() > MAX_SIGNATURE {
                    return Err(PeerMsgError::SignatureTooLong);
                }
                PeerMsg::Welcome { signature }
            }
            STATUS => PeerMsg::Status {
                committed: r.u64()?,
                max_ballot: ballot(&mut r)?,
            },
            ONE_A => PeerMsg::OneA {
                slot: r.u64()?,
                ballot: r.u64()?,
            },
            ONE_B => {
                let signed = SignedOneB::decode(&mut r, group_size)?;
                let count = r.u8()? as usize;
                if count > MAX_REPORTED {
                    return Err(PeerMsgError::TooManyValues);
                }
                let mut values = Vec::with_capacity(count);
                for _ in 0..count {
                    values.push(batch(&mut r)?);
                }
                PeerMsg::OneB { signed, values }
            }
            REFUSE => {
                let slot = r.u64()?;
                let max_ballot = ballot(&mut r)?;
                PeerMsg::Refuse {
                    slot,
                    max_ballot,
                    committed: r.u64()?,
                }
            }
            ONE_C => {
                let slot = r.u64()?;
                let ballot = r.u64()?;
                let value = batch(&mut r)?;
                let count = r.u8()? as usize;
                if count > group_size {
                    return Err(PeerMsgError::TooManyProofs { count, group_size });
                }
                let mut proofs = Vec::with_capacity(count);
                for _ in 0..count {
                    proofs.push(SignedOneB::decode(&mut r, group_size)?);
                }
                PeerMsg::OneC {
                    slot,
                    ballot,
                    value,
                    proofs,
                }
            }
            TWO_AV => PeerMsg::TwoAv {
                slot: r.u64()?,
                ballot: r.u64()?,
                digest: digest(&mut r)?,
            },
            TWO_B => PeerMsg::TwoB {
                slot: r.u64()?,
                ballot: r.u64()?,
                digest: digest(&mut r)?,
            },
            TWO_B_SIGS => PeerMsg::TwoBSigs {
                signed: SignedVotes::decode(&mut r)?,
            },
            CATCHUP_REQUEST => PeerMsg::CatchupRequest {
                from_slot: r.u64()?,
            },
            FORWARD => PeerMsg::Forward {
                requests: batch(&mut r)?,
            },
            CATCHUP_REPLY => {
                let slot = r.u64()?;
                let committed = r.u64()?;
                let value = batch(&mut r)?;
                let proof = match r.u8()? {
                    0 => None,
                    1 => Some(Certificate::decode(&mut r, group_size)?),
                    other => return Err(PeerMsgError::BadCertificateFlag(other)),
                };
                PeerMsg::CatchupReply {
                    slot,
                    committed,
                    value,
                    proof,
                }
            }
            other => return Err(PeerMsgError::UnknownType(other)),
        };
        r.finish()?;
        Ok(msg)
    }
}

/// The body decoder of the replica links, for a group of `group_size`.
pub struct PeerCodec {
    pub group_size: usize,
}

impl BodyCodec for PeerCodec {
    type Message<'a> = PeerMsg;
    type Error = PeerMsgError;
    fn decode_body(&self, kind: u16, body: &[u8]) -> Result<PeerMsg, PeerMsgError> {
        PeerMsg::decode(kind, body, self.group_size)
    }
}

/// One unit of a replica link's input, not decoded yet: a link checks a
/// frame's MAC before it decodes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkUnit<'a> {
    pub frame: Frame<'a>,
    /// The frame's bytes, header included (what the MAC covers).
    pub bytes: &'a [u8],
    /// The frame that follows it, when the link pairs them.
    pub mac: Option<Frame<'a>>,
}

/// Cuts a link's input into frames, or, on an authenticated link
/// (`with_mac`), into a frame and the MAC frame after it: a frame whose
/// MAC has not arrived yet waits with it.
pub struct LinkFrames {
    pub with_mac: bool,
}

impl Codec for LinkFrames {
    type Message<'a> = LinkUnit<'a>;
    type Error = FrameError;
    fn decode<'a>(&self, buf: &'a [u8]) -> Result<Option<(LinkUnit<'a>, usize)>, FrameError> {
        let Some(frame) = split_frame(buf)? else {
            return Ok(None);
        };
        let bytes = &buf[..frame.len];
        if !self.with_mac {
            return Ok(Some((
                LinkUnit {
                    frame,
                    bytes,
                    mac: None,
                },
                frame.len,
            )));
        }
        let Some(mac) = split_frame(&buf[frame.len..])? else {
            return Ok(None);
        };
        let unit = LinkUnit {
            frame,
            bytes,
            mac: Some(mac),
        };
        Ok(Some((unit, frame.len + mac.len)))
    }
}
