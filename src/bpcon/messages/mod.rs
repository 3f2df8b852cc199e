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
//! signed on their own, because the leader relays them as proof. A 2b vote
//! goes out unsigned (its link says who cast it, all a learner needs to
//! count it); its signature follows later in a 2b-signature message, one
//! signature for several slots' votes, because a quorum of signed votes is
//! a slot's decision certificate, which catch-up hands on (one correct
//! replica holding it is enough).

mod certificate;
mod codec;
mod error;
mod fields;
mod handshake;
pub mod limits;
mod one_b;
#[cfg(test)]
mod tests;

pub use certificate::{votes_bytes, Certificate, SignedVotes, Vote, MAX_SIGNED_VOTES};
pub use codec::{LinkFrames, LinkUnit, PeerCodec};
pub use error::{CertificateError, OneBError, PeerMsgError};
pub use handshake::{hello_bytes, welcome_bytes};
pub use one_b::{OneB, SignedOneB};

use crate::bpcon::op::{Batch, Digest};

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
pub const TWO_B_SIGS: u16 = 615;

/// Bytes of a handshake nonce (from the operating system's random source).
pub const NONCE_LEN: usize = 32;
pub type Nonce = [u8; NONCE_LEN];

/// Most earlier-vote records a 1b may report (a correct replica keeps 3).
pub const MAX_REPORTED: usize = 8;
pub const KEPT_REPORTS: usize = 3;
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
    /// "I relay the value of this ballot's 1c", by its digest: the value
    /// itself went to every acceptor in the 1c, and a vote needs a quorum
    /// of relays, at least f + 1 of them from correct acceptors that hold
    /// it (so a learner that missed the 1c can fetch it, see `learner`).
    TwoAv {
        slot: u64,
        ballot: u64,
        digest: Digest,
    },
    /// A vote, unsigned: the link it arrives on names its sender, so it
    /// counts towards a decision as soon as it arrives.
    TwoB {
        slot: u64,
        ballot: u64,
        digest: Digest,
    },
    /// The sender's signature over some of its votes (sent after their
    /// unsigned 2bs, off the critical path): what decision certificates are
    /// made of. Each signed vote also counts as a 2b.
    TwoBSigs {
        signed: SignedVotes,
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
