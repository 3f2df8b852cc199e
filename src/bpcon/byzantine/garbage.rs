//! The `garbage` mode: drop some of what the replica sends and add random
//! well-formed messages about nearby slots.

use super::*;

impl Adversary {
    /// A random well-formed message about slots near `slot`.
    pub(super) fn random_message(&mut self, slot: u64) -> PeerMsg {
        let r = &mut self.rng;
        let slot = match r.gen_range(0..4) {
            0 => r.gen(),
            _ => slot.saturating_add(r.gen_range(0..3)).saturating_sub(1),
        };
        let ballot = match r.gen_range(0..4) {
            0 => u64::MAX - r.gen_range(0..8),
            _ => r.gen_range(0..64),
        };
        let value = if r.gen_bool(0.5) {
            pwned()
        } else {
            other_value(&Batch::default(), r)
        };
        let mut digest = [0u8; 20];
        r.fill(&mut digest[..]);
        if r.gen_bool(0.5) {
            digest = value.digest();
        }
        match r.gen_range(0..9) {
            0 => PeerMsg::Status {
                committed: slot,
                max_ballot: Some(ballot),
            },
            1 => PeerMsg::OneA { slot, ballot },
            2 => PeerMsg::Refuse {
                slot,
                max_ballot: Some(ballot),
                committed: slot.saturating_add(1),
            },
            3 => PeerMsg::TwoAv {
                slot,
                ballot,
                digest,
            },
            4 => PeerMsg::TwoB {
                slot,
                ballot,
                digest,
            },
            8 => {
                // Half of them validly signed (its own vote, a wrong one), half not.
                let votes = vec![Vote {
                    slot,
                    ballot,
                    digest,
                }];
                if r.gen_bool(0.5) {
                    PeerMsg::TwoBSigs {
                        signed: self.sign_votes(votes),
                    }
                } else {
                    PeerMsg::TwoBSigs {
                        signed: SignedVotes {
                            votes,
                            signature: vec![r.gen(); 128],
                        },
                    }
                }
            }
            5 => PeerMsg::CatchupRequest { from_slot: slot },
            6 => {
                let proof =
                    forged_certificate(&self.group, self.me, &self.key, slot, ballot, &value, r);
                PeerMsg::CatchupReply {
                    slot,
                    committed: slot.saturating_add(1),
                    value,
                    proof,
                }
            }
            _ => {
                let body = OneB {
                    acceptor: self.me,
                    slot,
                    ballot,
                    voted: Some((ballot.saturating_sub(1), digest)),
                    reported: vec![(ballot.saturating_sub(1), digest)],
                };
                let bytes = body.signed_bytes();
                let signature = self.key.sign(&bytes);
                PeerMsg::OneB {
                    signed: SignedOneB {
                        body,
                        bytes,
                        signature,
                    },
                    values: vec![],
                }
            }
        }
    }

    pub(super) fn garbage(&mut self, slot: u64, sends: &mut Vec<(Dest, PeerMsg)>, on_tick: bool) {
        sends.retain(|_| self.rng.gen_bool(0.8));
        if on_tick && self.rng.gen_bool(0.2) {
            let n = self.group.n();
            for _ in 0..self.rng.gen_range(1..4) {
                let msg = self.random_message(slot);
                let to = self.rng.gen_range(0..n);
                if to != self.me {
                    sends.push((Dest::Peer(to), msg));
                }
            }
        }
    }
}
