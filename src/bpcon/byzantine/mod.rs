//! Test-only misbehaviour, so tests can check that correct replicas stay
//! safe next to a Byzantine one. Refused on the command line unless the
//! environment variable `PEERLOOP_ALLOW_BYZANTINE=1` is set.
//!
//! Every attack lives here, outside the honest code: an [`Adversary`] sits
//! between an honest replica and its links and rewrites, splits, drops or
//! adds to what the replica sends (the node calls it through its output
//! filter hook). The replica itself has no idea it is Byzantine.

use super::crypto::PrivateKey;
use super::group::Group;
use super::messages::{votes_bytes, Certificate, OneB, PeerMsg, SignedOneB, SignedVotes, Vote};
use super::node::OutputFilter;
use super::op::{Batch, Op, Request, RequestId};
use super::replica::Dest;
use super::safety;
use log::warn;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

mod garbage;
mod signing;

pub const ALLOW_ENV: &str = "PEERLOOP_ALLOW_BYZANTINE";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Signs its 1b messages and its 2b votes with garbage and, leading, sends 1c
    /// messages whose proofs are 1b messages it made up for the other
    /// replicas; its catch-up certificates carry garbage signatures.
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
    /// Drops some of its honest messages and sends random well-formed ones
    /// (any kind, random slots, ballots, values and digests) in between.
    Garbage,
    /// A catch-up liar that also replays recorded handshakes to pose as a
    /// correct replica and lie twice (simulator only: see impostor.rs).
    ReplayHello,
    /// Leads as an honest replica would, but never proposes: its 1c
    /// messages are dropped, so the requests forwarded to it go nowhere.
    SilentLeader,
    /// Sends its unsigned 2bs for one value, then validly signs votes for
    /// another value in the same ballots.
    SignOther,
    /// Votes, but never signs its votes: certificates need the others.
    NeverSign,
    /// Besides its honest signatures, validly signs votes in ballots it
    /// never voted in (for another value), and replays its old signatures,
    /// as they were and moved to newer slots.
    StraySign,
}

/// The modes fuzzers choose one from at random (the signing modes are not
/// among them, so a seed draws the adversary it drew before they existed).
pub const MODES: &[Mode] = &[
    Mode::Forge,
    Mode::Equivocate,
    Mode::Lie,
    Mode::HugeBallot,
    Mode::CatchupLie,
    Mode::Garbage,
    Mode::ReplayHello,
    Mode::SilentLeader,
];

/// The modes that sign their 2b votes wrongly, late or never.
pub const SIGNING_MODES: &[Mode] = &[Mode::SignOther, Mode::NeverSign, Mode::StraySign];

impl Mode {
    pub fn parse(text: &str) -> Result<Mode, String> {
        match text {
            "forge" => Ok(Mode::Forge),
            "equivocate" => Ok(Mode::Equivocate),
            "lie" => Ok(Mode::Lie),
            "huge-ballot" => Ok(Mode::HugeBallot),
            "catchup-lie" => Ok(Mode::CatchupLie),
            "garbage" => Ok(Mode::Garbage),
            "silent-leader" => Ok(Mode::SilentLeader),
            "sign-other" => Ok(Mode::SignOther),
            "never-sign" => Ok(Mode::NeverSign),
            "stray-sign" => Ok(Mode::StraySign),
            other => Err(format!(
                "unknown misbehaviour '{other}': forge, equivocate, lie, huge-ballot, catchup-lie, garbage, silent-leader, sign-other, never-sign or stray-sign"
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
            Mode::Garbage => "garbage",
            Mode::ReplayHello => "replay-hello",
            Mode::SilentLeader => "silent-leader",
            Mode::SignOther => "sign-other",
            Mode::NeverSign => "never-sign",
            Mode::StraySign => "stray-sign",
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
    std::sync::Arc::make_mut(&mut other.requests).push(Request {
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

/// The highest ballot that replica `me` leads.
pub fn huge_ballot(group: &Group, me: usize) -> u64 {
    let mut b = u64::MAX;
    while group.leader(b) != me {
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
        }]
        .into(),
    }
}

/// A Byzantine replica's misbehaviour, wrapped around an honest replica:
/// it sees everything the replica sends and rewrites it. It holds the
/// replica's own key (a Byzantine replica can sign anything in its name).
pub struct Adversary {
    mode: Mode,
    group: Group,
    me: usize,
    key: PrivateKey,
    rng: StdRng,
    ticks: u64,
    /// Its last signatures, for replays (stray-sign).
    recorded: Vec<SignedVotes>,
}

/// Another digest than `d` (for a second vote).
fn flipped(mut d: [u8; 20]) -> [u8; 20] {
    d[0] ^= 0xff;
    d
}

impl Adversary {
    pub fn new(mode: Mode, group: Group, me: usize, key: PrivateKey, seed: u64) -> Adversary {
        Adversary {
            mode,
            group,
            me,
            key,
            rng: StdRng::seed_from_u64(seed ^ 0xbad_5eed),
            ticks: 0,
            recorded: Vec::new(),
        }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The peers split in two halves (by index) for equivocation.
    fn halves(&self) -> (Vec<usize>, Vec<usize>) {
        let others: Vec<usize> = (0..self.group.n()).filter(|&i| i != self.me).collect();
        let half = others.len().div_ceil(2);
        (others[..half].to_vec(), others[half..].to_vec())
    }

    fn garbage_signature(&mut self, len: usize) -> Vec<u8> {
        (0..len.max(1)).map(|_| self.rng.gen()).collect()
    }

    /// A 1c for `slot`/`ballot` whose proofs are 1bs made up for everyone.
    fn forged_one_c(&mut self, slot: u64, ballot: u64) -> PeerMsg {
        let value = other_value(&Batch::default(), &mut self.rng);
        let proofs = (0..self.group.n())
            .map(|a| {
                let body = OneB {
                    acceptor: a,
                    slot,
                    ballot,
                    voted: None,
                    reported: vec![],
                };
                SignedOneB {
                    bytes: body.signed_bytes(),
                    body,
                    signature: self.garbage_signature(128),
                }
            })
            .collect();
        warn!("BYZANTINE forge: a 1c for slot {slot} ballot {ballot} with forged proofs");
        PeerMsg::OneC {
            slot,
            ballot,
            value,
            proofs,
        }
    }

    fn forge(&mut self, sends: &mut Vec<(Dest, PeerMsg)>) {
        let mut extra = Vec::new();
        for (_, msg) in sends.iter_mut() {
            match msg {
                PeerMsg::OneB { signed, .. } => {
                    signed.signature = self.garbage_signature(signed.signature.len());
                }
                PeerMsg::OneA { slot, ballot } => {
                    extra.push((Dest::All, self.forged_one_c(*slot, *ballot)));
                }
                PeerMsg::TwoBSigs { signed } => {
                    signed.signature = self.garbage_signature(signed.signature.len());
                }
                // Its catch-up answers carry certificates with garbage for
                // every signature but the first (its own or a real one).
                PeerMsg::CatchupReply {
                    proof: Some(proof), ..
                } => {
                    for (_, signed) in proof.votes.iter_mut().skip(1) {
                        signed.signature = self.garbage_signature(signed.signature.len());
                    }
                }
                _ => {}
            }
        }
        sends.extend(extra);
    }

    fn lie(&mut self, sends: &mut [(Dest, PeerMsg)]) {
        for (_, msg) in sends.iter_mut() {
            if let PeerMsg::OneB { signed, values } = msg {
                let (body, fake) = lying_one_b(signed.body.clone(), &mut self.rng);
                let bytes = body.signed_bytes();
                let signature = self.key.sign(&bytes);
                *signed = SignedOneB {
                    body,
                    bytes,
                    signature,
                };
                *values = fake;
            }
        }
    }

    /// Broadcasts of 1c, 2av and 2b go out with one value to half the
    /// peers and another to the other half.
    fn equivocate(&mut self, sends: &mut Vec<(Dest, PeerMsg)>) {
        let (first, second) = self.halves();
        let mut out = Vec::with_capacity(sends.len());
        for (dest, msg) in sends.drain(..) {
            let alt = match (&dest, &msg) {
                (
                    Dest::All,
                    PeerMsg::OneC {
                        slot,
                        ballot,
                        value,
                        proofs,
                    },
                ) => {
                    let other = other_value(value, &mut self.rng);
                    let reports: Vec<&OneB> = proofs.iter().map(|p| &p.body).collect();
                    if !safety::is_safe(&self.group, &reports, &other.digest()) {
                        None
                    } else {
                        warn!("BYZANTINE equivocate: two 1c values in slot {slot} ballot {ballot}");
                        Some(PeerMsg::OneC {
                            slot: *slot,
                            ballot: *ballot,
                            value: other,
                            proofs: proofs.clone(),
                        })
                    }
                }
                (
                    Dest::All,
                    PeerMsg::TwoAv {
                        slot,
                        ballot,
                        digest,
                    },
                ) => {
                    warn!(
                        "BYZANTINE equivocate: relaying two values in slot {slot} ballot {ballot}"
                    );
                    Some(PeerMsg::TwoAv {
                        slot: *slot,
                        ballot: *ballot,
                        digest: flipped(*digest),
                    })
                }
                (
                    Dest::All,
                    PeerMsg::TwoB {
                        slot,
                        ballot,
                        digest,
                    },
                ) => {
                    warn!("BYZANTINE equivocate: voting for two values in slot {slot} ballot {ballot}");
                    Some(PeerMsg::TwoB {
                        slot: *slot,
                        ballot: *ballot,
                        digest: flipped(*digest),
                    })
                }
                // The second half gets signatures for its second votes:
                // signed with its own key, real second votes.
                (Dest::All, PeerMsg::TwoBSigs { signed }) => Some(PeerMsg::TwoBSigs {
                    signed: self.signed_flipped(signed),
                }),
                _ => None,
            };
            match alt {
                Some(alt) => {
                    out.extend(first.iter().map(|&p| (Dest::Peer(p), msg.clone())));
                    out.extend(second.iter().map(|&p| (Dest::Peer(p), alt.clone())));
                }
                None => out.push((dest, msg)),
            }
        }
        *sends = out;
    }
}

impl OutputFilter for Adversary {
    fn filter(&mut self, slot: u64, sends: &mut Vec<(Dest, PeerMsg)>, on_tick: bool) {
        if on_tick {
            self.ticks += 1;
        }
        let tick = if on_tick { self.ticks } else { 0 };
        match self.mode {
            Mode::Forge => self.forge(sends),
            Mode::Lie => self.lie(sends),
            Mode::Equivocate => self.equivocate(sends),
            Mode::Garbage => self.garbage(slot, sends, on_tick),
            Mode::HugeBallot | Mode::CatchupLie => {
                tamper(self.mode, &self.group, self.me, slot, sends, tick)
            }
            Mode::ReplayHello => tamper(Mode::CatchupLie, &self.group, self.me, slot, sends, tick),
            Mode::SilentLeader => silent_leader(sends),
            Mode::SignOther | Mode::NeverSign => self.sign_wrong(sends),
            Mode::StraySign => self.stray_sign(sends),
        }
    }

    fn name(&self) -> &'static str {
        self.mode.name()
    }
}

/// The attacks that rewrite ballots and catch-up replies. `slot` is the
/// replica's current slot; `tick` counts ticks (0 when not on one).
fn tamper(
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
                    // It leads (with its huge ballot) instead of forwarding.
                    PeerMsg::Forward { .. } => {
                        *msg = PeerMsg::OneA {
                            slot,
                            ballot: huge_ballot(group, me),
                        }
                    }
                    PeerMsg::OneA { ballot, .. } => *ballot = huge_ballot(group, me),
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
                // The honest certificate no longer matches the value.
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
                            proof: None,
                        },
                    ));
                }
            }
        }
        _ => {}
    }
}

/// A leader that never proposes: it runs phase 1 as an honest replica
/// would (when it has requests and no leader to forward them to, or its
/// leader timed out), then drops its 1c messages, so the requests the
/// others forward to it never commit until they replace it.
fn silent_leader(sends: &mut Vec<(Dest, PeerMsg)>) {
    sends.retain(|(_, msg)| !matches!(msg, PeerMsg::OneC { .. }));
}

/// A decision certificate a Byzantine replica can make for `value`: its own
/// real vote and made-up ones, in one of the ways a forgery can be wrong
/// (too few votes, one signer twice, garbage signatures), or none at all.
pub fn forged_certificate(
    group: &Group,
    me: usize,
    key: &PrivateKey,
    slot: u64,
    ballot: u64,
    value: &Batch,
    rng: &mut StdRng,
) -> Option<Certificate> {
    let votes = vec![Vote {
        slot,
        ballot,
        digest: value.digest(),
    }];
    let mine = SignedVotes {
        signature: key.sign(&votes_bytes(me, &votes)),
        votes: votes.clone(),
    };
    let others = (0..group.n()).filter(|&i| i != me);
    let votes = match rng.gen_range(0..4) {
        0 => return None,
        // Its own vote only: short of a quorum.
        1 => vec![(me, mine)],
        // Its own vote again and again.
        2 => vec![(me, mine); group.quorum],
        // Its own and garbage in the others' names.
        _ => std::iter::once((me, mine))
            .chain(others.map(|i| {
                let signature = vec![rng.gen(); 128];
                (
                    i,
                    SignedVotes {
                        votes: votes.clone(),
                        signature,
                    },
                )
            }))
            .take(group.quorum)
            .collect(),
    };
    Some(Certificate { ballot, votes })
}
