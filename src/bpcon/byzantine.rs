//! Test-only misbehaviour, so tests can check that correct replicas stay
//! safe next to a Byzantine one. Refused unless the environment variable
//! `PEERLOOP_ALLOW_BYZANTINE=1` is set.
//!
//! `forge`, `equivocate` and `lie` live in the replica; the newer attacks
//! (`huge-ballot`, `catchup-lie`) only rewrite or add to an honest
//! replica's output ([`tamper`]), outside the replica's logic.

use super::group::Group;
use super::messages::{OneB, PeerMsg};
use super::op::{Batch, Op, Request, RequestId};
use super::replica::Dest;
use rand::Rng;

pub const ALLOW_ENV: &str = "PEERLOOP_ALLOW_BYZANTINE";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Signs its 1b messages with garbage and, leading, sends 1c messages
    /// whose proofs are 1b messages it made up for the other replicas.
    Forge,
    /// Leading, sends different values to different acceptors in one
    /// ballot; as an acceptor, relays and votes for two values in one ballot.
    Equivocate,
    /// Its 1b messages report a vote it never cast (or hide its real ones).
    Lie,
    /// Its 1a messages (and refusals, and status claims) carry the highest
    /// ballot it may lead, near 2^64 - 1: the seed's ballot exhaustion.
    HugeBallot,
    /// Sends every replica, unasked, catch-up replies for its current slot
    /// with a value nobody proposed, and answers catch-up requests with it.
    CatchupLie,
}

impl Mode {
    pub fn parse(text: &str) -> Result<Mode, String> {
        match text {
            "forge" => Ok(Mode::Forge),
            "equivocate" => Ok(Mode::Equivocate),
            "lie" => Ok(Mode::Lie),
            "huge-ballot" => Ok(Mode::HugeBallot),
            "catchup-lie" => Ok(Mode::CatchupLie),
            other => Err(format!(
                "unknown misbehaviour '{other}': forge, equivocate, lie, huge-ballot or catchup-lie"
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Mode::Forge => "forge",
            Mode::Equivocate => "equivocate",
            Mode::Lie => "lie",
            Mode::HugeBallot => "huge-ballot",
            Mode::CatchupLie => "catchup-lie",
        }
    }

    /// Misbehaving is only for tests: it needs an explicit opt-in.
    pub fn allowed() -> bool {
        std::env::var(ALLOW_ENV).is_ok_and(|v| v == "1")
    }
}

/// A value no client asked for.
pub fn other_value(value: &Batch, rng: &mut impl Rng) -> Batch {
    let mut other = value.clone();
    other.requests.push(Request {
        id: RequestId {
            client: rng.gen(),
            seq: 0,
        },
        op: Op::Put {
            key: "byzantine".into(),
            value: format!("{}", rng.gen::<u32>()),
        },
    });
    other
}

/// A 1b claiming a vote in the ballot just below, for an invented value;
/// in ballot 0, where no earlier vote is possible, it hides its votes.
pub fn lying_one_b(honest: OneB, rng: &mut impl Rng) -> (OneB, Vec<Batch>) {
    if honest.ballot == 0 {
        return (
            OneB {
                voted: None,
                reported: vec![],
                ..honest
            },
            vec![],
        );
    }
    let fake = other_value(&Batch::default(), rng);
    let digest = fake.digest();
    let claimed = honest.ballot - 1;
    (
        OneB {
            voted: Some((claimed, digest)),
            reported: vec![(claimed, digest)],
            ..honest
        },
        vec![fake],
    )
}

/// The highest ballot of `slot` that replica `me` leads.
pub fn huge_ballot(group: &Group, me: usize, slot: u64) -> u64 {
    let mut b = u64::MAX;
    while group.leader(slot, b) != me {
        b -= 1;
    }
    b
}

/// The value a catch-up liar pushes.
pub fn pwned() -> Batch {
    Batch {
        requests: vec![Request {
            id: RequestId {
                client: 0x0bad,
                seq: 1,
            },
            op: Op::Put {
                key: "pwned".into(),
                value: "yes".into(),
            },
        }],
    }
}

/// The attacks that act on an honest replica's output: rewrite what it
/// sends and, on a clock tick, add messages nobody asked for. `slot` is the
/// replica's current slot.
pub fn tamper(
    mode: Mode,
    group: &Group,
    me: usize,
    slot: u64,
    sends: &mut Vec<(Dest, PeerMsg)>,
    tick: u64,
) {
    match mode {
        Mode::HugeBallot => {
            for (_, msg) in sends.iter_mut() {
                match msg {
                    PeerMsg::OneA { slot, ballot } => *ballot = huge_ballot(group, me, *slot),
                    PeerMsg::Refuse {
                        max_ballot: Some(b),
                        ..
                    } => *b = u64::MAX,
                    PeerMsg::Status { max_ballot, .. } => *max_ballot = Some(u64::MAX),
                    _ => {}
                }
            }
        }
        Mode::CatchupLie => {
            for (_, msg) in sends.iter_mut() {
                if let PeerMsg::CatchupReply { value, .. } = msg {
                    *value = pwned();
                }
            }
            if tick > 0 && tick.is_multiple_of(10) && group.n() > 1 {
                for s in slot..slot.saturating_add(3) {
                    sends.push((
                        Dest::All,
                        PeerMsg::CatchupReply {
                            slot: s,
                            committed: s.saturating_add(1),
                            value: pwned(),
                        },
                    ));
                }
            }
        }
        Mode::Forge | Mode::Equivocate | Mode::Lie => {}
    }
}
