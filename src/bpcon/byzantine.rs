//! Test-only misbehaviour, so tests can check that correct replicas stay
//! safe next to a Byzantine one. Refused unless the environment variable
//! `PEERLOOP_ALLOW_BYZANTINE=1` is set.

use super::messages::OneB;
use super::op::{Batch, Op, Request, RequestId};
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
}

impl Mode {
    pub fn parse(text: &str) -> Result<Mode, String> {
        match text {
            "forge" => Ok(Mode::Forge),
            "equivocate" => Ok(Mode::Equivocate),
            "lie" => Ok(Mode::Lie),
            other => Err(format!(
                "unknown misbehaviour '{other}': forge, equivocate or lie"
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Mode::Forge => "forge",
            Mode::Equivocate => "equivocate",
            Mode::Lie => "lie",
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
