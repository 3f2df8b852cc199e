//! Replica-to-replica messages on the shared 4-byte framing.
//!
//! Every link starts with a challenge-response handshake: the accepting side
//! sends a fresh random CHALLENGE, the connecting side answers with a HELLO
//! signed over both names, that challenge and a challenge of its own, and the
//! accepting side proves itself with a signed WELCOME over both. A recorded
//! handshake is worthless on a new connection. The HELLO also carries a
//! link key sealed to the accepting side's public key; every later frame on
//! the link is followed by a MAC frame (see `mac`), so what arrives on it is
//! known to come from that replica, in order, once. Phase-1b messages are
//! signed on their own, because the leader relays them as proof; so are 2b
//! votes, because a quorum of them is a slot's decision certificate, which
//! catch-up hands on (one correct replica holding it is enough).

use super::crypto::MAX_SIGNATURE;
use super::op::{Batch, Digest};
use crate::wire::{write_frame, Reader, TooLarge};

pub const HELLO: u16 = 601;
pub const STATUS: u16 = 602;
pub const ONE_A: u16 = 603;
pub const ONE_B: u16 = 604;
pub const REFUSE: u16 = 605;
pub const ONE_C: u16 = 606;
pub const TWO_AV: u16 = 607;
pub const TWO_B: u16 = 608;
pub const CATCHUP_REQUEST: u16 = 609;
pub const CATCHUP_REPLY: u16 = 610;
pub const CHALLENGE: u16 = 611;
pub const WELCOME: u16 = 612;
pub const MAC: u16 = 613;
pub const FORWARD: u16 = 614;

/// Bytes of a handshake nonce (from the operating system's random source).
pub const NONCE_LEN: usize = 32;
pub type Nonce = [u8; NONCE_LEN];

/// Most earlier-vote records a 1b may report (a correct replica keeps 3).
pub const MAX_REPORTED: usize = 8;
pub const KEPT_REPORTS: usize = 3;
const MAX_NAME: usize = 64;

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

    pub fn decode(r: &mut Reader<'_>, group_size: usize) -> Result<Certificate, String> {
        let ballot = r.u64()?;
        let count = r.u8()? as usize;
        if count > group_size {
            return Err(format!(
                "certificate carries {count} votes for {group_size} replicas"
            ));
        }
        let mut votes = Vec::with_capacity(count);
        for _ in 0..count {
            let acceptor = r.u8()? as usize;
            if acceptor >= group_size {
                return Err(format!("certificate vote from unknown replica #{acceptor}"));
            }
            let signature = blob(r)?.to_vec();
            if signature.len() > MAX_SIGNATURE {
                return Err("signature too long".into());
            }
            votes.push((acceptor, signature));
        }
        Ok(Certificate { ballot, votes })
    }
}

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

const ONE_B_TAG: &[u8] = b"BPCON-1B";
const TWO_B_TAG: &[u8] = b"BPCON-2B";
const HELLO_TAG: &[u8] = b"BPCON-HELLO2";
const WELCOME_TAG: &[u8] = b"BPCON-WELCOME";

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
    pub fn parse(bytes: &[u8], group_size: usize) -> Result<OneB, String> {
        let mut r = Reader::new(bytes);
        if r.bytes(ONE_B_TAG.len())? != ONE_B_TAG {
            return Err("1b without its tag".into());
        }
        let acceptor = r.u8()? as usize;
        if acceptor >= group_size {
            return Err(format!("1b from unknown replica #{acceptor}"));
        }
        let slot = r.u64()?;
        let ballot = r.u64()?;
        let voted = match r.u8()? {
            0 => None,
            1 => Some((r.u64()?, digest(&mut r)?)),
            other => return Err(format!("bad vote flag {other}")),
        };
        let count = r.u8()? as usize;
        if count > MAX_REPORTED {
            return Err(format!("1b reports {count} votes, over {MAX_REPORTED}"));
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
            return Err(format!(
                "1b for ballot {ballot} reports a vote at or above it"
            ));
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
    fn encode(&self, out: &mut Vec<u8>) {
        put_blob(out, &self.bytes);
        put_blob(out, &self.signature);
    }

    fn decode(r: &mut Reader<'_>, group_size: usize) -> Result<SignedOneB, String> {
        let bytes = blob(r)?.to_vec();
        let signature = blob(r)?.to_vec();
        if signature.len() > MAX_SIGNATURE {
            return Err("signature too long".into());
        }
        let body = OneB::parse(&bytes, group_size)?;
        Ok(SignedOneB {
            body,
            bytes,
            signature,
        })
    }
}

/// Every message between replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerMsg {
    /// First on an accepted link: the nonce the connecting side must sign.
    Challenge {
        nonce: Nonce,
    },
    /// The connecting side's answer: signed over both names, the
    /// challenge, its own nonce for the accepting side to sign, and the
    /// link key sealed to the accepting side's public key.
    Hello {
        from: String,
        to: String,
        nonce: Nonce,
        sealed_key: Vec<u8>,
        signature: Vec<u8>,
    },
    /// After the handshake, follows every frame on the link: the HMAC of
    /// the link's sequence number and that frame.
    Mac {
        tag: [u8; 20],
    },
    /// The accepting side's proof of who it is: signed over both names and
    /// both nonces.
    Welcome {
        signature: Vec<u8>,
    },
    /// How many slots the sender has decided, and the highest ballot it
    /// promised in the next one (its current slot).
    Status {
        committed: u64,
        max_ballot: Option<u64>,
    },
    OneA {
        slot: u64,
        ballot: u64,
    },
    /// A signed 1b, with the values its digests name (checked by hashing).
    OneB {
        signed: SignedOneB,
        values: Vec<Batch>,
    },
    /// "I already promised a higher ballot, or this slot is decided."
    Refuse {
        slot: u64,
        max_ballot: Option<u64>,
        committed: u64,
    },
    OneC {
        slot: u64,
        ballot: u64,
        value: Batch,
        proofs: Vec<SignedOneB>,
    },
    TwoAv {
        slot: u64,
        ballot: u64,
        value: Batch,
    },
    /// A vote, signed over [`two_b_bytes`].
    TwoB {
        slot: u64,
        ballot: u64,
        digest: Digest,
        signature: Vec<u8>,
    },
    CatchupRequest {
        from_slot: u64,
    },
    /// Client requests a replica that does not lead passes on to the
    /// replica it takes for the leader (it answers its clients itself, once
    /// the requests are committed).
    Forward {
        requests: Batch,
    },
    /// A decided slot's value, with its decision certificate if the sender
    /// has one (it saw the 2b quorum itself, or was given the certificate).
    CatchupReply {
        slot: u64,
        committed: u64,
        value: Batch,
        proof: Option<Certificate>,
    },
}

fn handshake_bytes(tag: &[u8], names: [&str; 2], nonces: [&Nonce; 2]) -> Vec<u8> {
    let mut out = tag.to_vec();
    for name in names {
        out.push(0);
        out.extend_from_slice(name.as_bytes());
    }
    out.push(0);
    for nonce in nonces {
        out.extend_from_slice(nonce);
    }
    out
}

/// What the connecting replica `from` signs for `to`: both names, `to`'s
/// challenge, its own nonce and the sealed link key.
pub fn hello_bytes(
    from: &str,
    to: &str,
    challenge: &Nonce,
    nonce: &Nonce,
    sealed_key: &[u8],
) -> Vec<u8> {
    let mut out = handshake_bytes(HELLO_TAG, [from, to], [challenge, nonce]);
    out.extend_from_slice(sealed_key);
    out
}

/// What the accepting replica `me` signs for the connecting `peer`: both
/// names, `peer`'s nonce and the challenge it sent (a different tag, so a
/// HELLO cannot be reflected as a WELCOME).
pub fn welcome_bytes(me: &str, peer: &str, peer_nonce: &Nonce, challenge: &Nonce) -> Vec<u8> {
    handshake_bytes(WELCOME_TAG, [me, peer], [peer_nonce, challenge])
}

fn nonce(r: &mut Reader<'_>) -> Result<Nonce, String> {
    let mut n = [0u8; NONCE_LEN];
    n.copy_from_slice(r.bytes(NONCE_LEN)?);
    Ok(n)
}

fn put_ballot(out: &mut Vec<u8>, ballot: Option<u64>) {
    match ballot {
        None => out.push(0),
        Some(b) => {
            out.push(1);
            out.extend_from_slice(&b.to_be_bytes());
        }
    }
}

fn ballot(r: &mut Reader<'_>) -> Result<Option<u64>, String> {
    match r.u8()? {
        0 => Ok(None),
        1 => Ok(Some(r.u64()?)),
        other => Err(format!("bad ballot flag {other}")),
    }
}

fn put_blob(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(&(data.len() as u16).to_be_bytes());
    out.extend_from_slice(data);
}

fn blob<'a>(r: &mut Reader<'a>) -> Result<&'a [u8], String> {
    let len = r.u16()? as usize;
    Ok(r.bytes(len)?)
}

fn digest(r: &mut Reader<'_>) -> Result<Digest, String> {
    let mut d = [0u8; 20];
    d.copy_from_slice(r.bytes(20)?);
    Ok(d)
}

fn name(r: &mut Reader<'_>) -> Result<String, String> {
    let len = r.u8()? as usize;
    if len > MAX_NAME {
        return Err("name too long".into());
    }
    String::from_utf8(r.bytes(len)?.to_vec()).map_err(|_| "name is not UTF-8".into())
}

fn put_batch(out: &mut Vec<u8>, batch: &Batch) {
    let at = out.len();
    out.extend_from_slice(&[0, 0]);
    batch.encode(out);
    let len = (out.len() - at - 2) as u16;
    out[at..at + 2].copy_from_slice(&len.to_be_bytes());
}

fn batch(r: &mut Reader<'_>) -> Result<Batch, String> {
    Batch::from_bytes(blob(r)?)
}

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
                value,
            } => write_frame(out, TWO_AV, |o| {
                o.extend_from_slice(&slot.to_be_bytes());
                o.extend_from_slice(&ballot.to_be_bytes());
                put_batch(o, value);
            }),
            PeerMsg::TwoB {
                slot,
                ballot,
                digest,
                signature,
            } => write_frame(out, TWO_B, |o| {
                o.extend_from_slice(&slot.to_be_bytes());
                o.extend_from_slice(&ballot.to_be_bytes());
                o.extend_from_slice(digest);
                put_blob(o, signature);
            }),
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
    pub fn decode(kind: u16, body: &[u8], group_size: usize) -> Result<PeerMsg, String> {
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
                    return Err("signature or sealed key too long".into());
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
                    return Err("signature too long".into());
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
                    return Err("1b carries too many values".into());
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
                    return Err(format!(
                        "1c carries {count} proofs for {group_size} replicas"
                    ));
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
                value: batch(&mut r)?,
            },
            TWO_B => {
                let slot = r.u64()?;
                let ballot = r.u64()?;
                let digest = digest(&mut r)?;
                let signature = blob(&mut r)?.to_vec();
                if signature.len() > MAX_SIGNATURE {
                    return Err("signature too long".into());
                }
                PeerMsg::TwoB {
                    slot,
                    ballot,
                    digest,
                    signature,
                }
            }
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
                    other => return Err(format!("bad certificate flag {other}")),
                };
                PeerMsg::CatchupReply {
                    slot,
                    committed,
                    value,
                    proof,
                }
            }
            other => return Err(format!("unknown peer message type {other}")),
        };
        r.finish()?;
        Ok(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bpcon::op::{Op, Request, RequestId};
    use crate::wire::split_frame;

    fn value() -> Batch {
        Batch {
            requests: vec![Request {
                id: RequestId { client: 1, seq: 2 },
                op: Op::parse("P,k,v").unwrap(),
            }],
        }
    }

    #[test]
    fn every_message_round_trips_and_truncation_is_an_error() {
        let one_b = OneB {
            acceptor: 2,
            slot: 5,
            ballot: 9,
            voted: Some((4, [7; 20])),
            reported: vec![(4, [7; 20]), (1, [3; 20])],
        };
        let signed = SignedOneB {
            bytes: one_b.signed_bytes(),
            body: one_b,
            signature: vec![1, 2, 3],
        };
        let messages = vec![
            PeerMsg::Challenge { nonce: [5; 32] },
            PeerMsg::Hello {
                from: "a".into(),
                to: "b".into(),
                nonce: [6; 32],
                sealed_key: vec![4; 256],
                signature: vec![9; 256],
            },
            PeerMsg::Mac { tag: [3; 20] },
            PeerMsg::Welcome {
                signature: vec![8; 256],
            },
            PeerMsg::Status {
                committed: 3,
                max_ballot: Some(u64::MAX),
            },
            PeerMsg::Status {
                committed: 3,
                max_ballot: None,
            },
            PeerMsg::OneA { slot: 1, ballot: 2 },
            PeerMsg::OneB {
                signed: signed.clone(),
                values: vec![value()],
            },
            PeerMsg::Refuse {
                slot: 1,
                max_ballot: Some(8),
                committed: 4,
            },
            PeerMsg::OneC {
                slot: 1,
                ballot: 9,
                value: value(),
                proofs: vec![signed.clone(), signed],
            },
            PeerMsg::TwoAv {
                slot: 1,
                ballot: 2,
                value: value(),
            },
            PeerMsg::TwoB {
                slot: 1,
                ballot: 2,
                digest: [1; 20],
                signature: vec![7; 128],
            },
            PeerMsg::CatchupRequest { from_slot: 3 },
            PeerMsg::Forward { requests: value() },
            PeerMsg::CatchupReply {
                slot: 3,
                committed: 5,
                value: value(),
                proof: None,
            },
            PeerMsg::CatchupReply {
                slot: 3,
                committed: 5,
                value: value(),
                proof: Some(Certificate {
                    ballot: 9,
                    votes: vec![(0, vec![1; 128]), (3, vec![2; 128]), (2, vec![])],
                }),
            },
        ];
        for msg in messages {
            let bytes = msg.to_frame().unwrap();
            let frame = split_frame(&bytes).unwrap().unwrap();
            assert_eq!(PeerMsg::decode(frame.kind, frame.body, 4), Ok(msg.clone()));
            for cut in 0..frame.body.len() {
                assert!(
                    PeerMsg::decode(frame.kind, &frame.body[..cut], 4).is_err(),
                    "{msg:?} cut at {cut}"
                );
            }
        }
    }

    #[test]
    fn a_1b_reporting_a_vote_at_its_own_ballot_is_malformed() {
        let one_b = OneB {
            acceptor: 0,
            slot: 0,
            ballot: 4,
            voted: Some((4, [0; 20])),
            reported: vec![],
        };
        assert!(OneB::parse(&one_b.signed_bytes(), 4).is_err());
        let one_b = OneB {
            acceptor: 5,
            voted: None,
            ..one_b
        };
        assert!(OneB::parse(&one_b.signed_bytes(), 4).is_err());
    }
}
