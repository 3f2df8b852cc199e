//! Why a replica-to-replica message did not decode. Each of these closes
//! the link it came on; the words are those of the log line that says so.

use super::MAX_REPORTED;
use crate::bpcon::op::BatchError;
use crate::wire::{BodyError, FrameError};
use std::fmt;

/// A decision certificate that cannot be one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertificateError {
    Body(BodyError),
    TooManyVotes {
        count: usize,
        group_size: usize,
    },
    UnknownReplica(usize),
    SignatureTooLong,
    /// A signature over no votes, or over more than `MAX_SIGNED_VOTES`.
    SignedVoteCount(usize),
}

impl fmt::Display for CertificateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CertificateError::Body(e) => e.fmt(f),
            CertificateError::TooManyVotes { count, group_size } => write!(
                f,
                "certificate carries {count} votes, more than a quorum of {group_size} replicas"
            ),
            CertificateError::UnknownReplica(acceptor) => {
                write!(f, "certificate vote from unknown replica #{acceptor}")
            }
            CertificateError::SignatureTooLong => write!(f, "signature too long"),
            CertificateError::SignedVoteCount(count) => write!(
                f,
                "a signature over {count} votes (1 to {} allowed)",
                super::MAX_SIGNED_VOTES
            ),
        }
    }
}

/// Signed 1b bytes that do not describe a possible 1b.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OneBError {
    Body(BodyError),
    NoTag,
    UnknownReplica(usize),
    BadVoteFlag(u8),
    TooManyReports(usize),
    /// A vote reported at or above the 1b's own ballot.
    VoteNotBelow(u64),
}

impl fmt::Display for OneBError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OneBError::Body(e) => e.fmt(f),
            OneBError::NoTag => write!(f, "1b without its tag"),
            OneBError::UnknownReplica(acceptor) => {
                write!(f, "1b from unknown replica #{acceptor}")
            }
            OneBError::BadVoteFlag(flag) => write!(f, "bad vote flag {flag}"),
            OneBError::TooManyReports(count) => {
                write!(f, "1b reports {count} votes, over {MAX_REPORTED}")
            }
            OneBError::VoteNotBelow(ballot) => {
                write!(f, "1b for ballot {ballot} reports a vote at or above it")
            }
        }
    }
}

/// A peer frame that is not a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerMsgError {
    Frame(FrameError),
    Body(BodyError),
    Batch(BatchError),
    OneB(OneBError),
    Certificate(CertificateError),
    SignatureTooLong,
    SignatureOrKeyTooLong,
    NameTooLong,
    NameNotUtf8,
    BadBallotFlag(u8),
    BadCertificateFlag(u8),
    TooManyValues,
    TooManyProofs { count: usize, group_size: usize },
    UnknownType(u16),
}

impl fmt::Display for PeerMsgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerMsgError::Frame(e) => e.fmt(f),
            PeerMsgError::Body(e) => e.fmt(f),
            PeerMsgError::Batch(e) => e.fmt(f),
            PeerMsgError::OneB(e) => e.fmt(f),
            PeerMsgError::Certificate(e) => e.fmt(f),
            PeerMsgError::SignatureTooLong => write!(f, "signature too long"),
            PeerMsgError::SignatureOrKeyTooLong => write!(f, "signature or sealed key too long"),
            PeerMsgError::NameTooLong => write!(f, "name too long"),
            PeerMsgError::NameNotUtf8 => write!(f, "name is not UTF-8"),
            PeerMsgError::BadBallotFlag(flag) => write!(f, "bad ballot flag {flag}"),
            PeerMsgError::BadCertificateFlag(flag) => write!(f, "bad certificate flag {flag}"),
            PeerMsgError::TooManyValues => write!(f, "1b carries too many values"),
            PeerMsgError::TooManyProofs { count, group_size } => {
                write!(f, "1c carries {count} proofs for {group_size} replicas")
            }
            PeerMsgError::UnknownType(kind) => write!(f, "unknown peer message type {kind}"),
        }
    }
}

impl std::error::Error for CertificateError {}
impl std::error::Error for OneBError {}
impl std::error::Error for PeerMsgError {}

impl From<BodyError> for CertificateError {
    fn from(e: BodyError) -> Self {
        CertificateError::Body(e)
    }
}

impl From<BodyError> for OneBError {
    fn from(e: BodyError) -> Self {
        OneBError::Body(e)
    }
}

impl From<FrameError> for PeerMsgError {
    fn from(e: FrameError) -> Self {
        PeerMsgError::Frame(e)
    }
}

impl From<BodyError> for PeerMsgError {
    fn from(e: BodyError) -> Self {
        PeerMsgError::Body(e)
    }
}

impl From<BatchError> for PeerMsgError {
    fn from(e: BatchError) -> Self {
        PeerMsgError::Batch(e)
    }
}

impl From<OneBError> for PeerMsgError {
    fn from(e: OneBError) -> Self {
        PeerMsgError::OneB(e)
    }
}

impl From<CertificateError> for PeerMsgError {
    fn from(e: CertificateError) -> Self {
        PeerMsgError::Certificate(e)
    }
}
