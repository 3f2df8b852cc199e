//! The signing attacks: 2b signatures for other values than the votes,
//! votes never signed, signatures over votes never cast, and old ones
//! replayed (modes `sign-other`, `never-sign`, `stray-sign`).

use super::*;

impl Adversary {
    /// Its own valid signature over `signed`'s votes, each for another value.
    pub(super) fn signed_flipped(&self, signed: &SignedVotes) -> SignedVotes {
        let votes: Vec<Vote> = signed
            .votes
            .iter()
            .map(|v| Vote {
                digest: flipped(v.digest),
                ..*v
            })
            .collect();
        self.sign_votes(votes)
    }

    pub(super) fn sign_votes(&self, votes: Vec<Vote>) -> SignedVotes {
        let signature = self.key.sign(&votes_bytes(self.me, &votes));
        SignedVotes { votes, signature }
    }

    /// Unsigned 2bs as they were, signatures for other values (sign-other);
    /// no signatures at all (never-sign).
    pub(super) fn sign_wrong(&mut self, sends: &mut Vec<(Dest, PeerMsg)>) {
        if self.mode == Mode::NeverSign {
            sends.retain(|(_, msg)| !matches!(msg, PeerMsg::TwoBSigs { .. }));
            return;
        }
        for (_, msg) in sends.iter_mut() {
            if let PeerMsg::TwoBSigs { signed } = msg {
                let first = signed.votes[0];
                warn!(
                    "BYZANTINE sign-other: signing other values than its 2bs (from slot {} ballot {})",
                    first.slot, first.ballot
                );
                *signed = self.signed_flipped(signed);
            }
        }
    }

    /// Its honest signatures, and with each: a valid signature for votes in
    /// a ballot it never voted in (the next one, for another value), one of
    /// its old signatures replayed as it was, and that old signature moved
    /// onto the newest votes' slots (which it does not sign: forged).
    pub(super) fn stray_sign(&mut self, sends: &mut Vec<(Dest, PeerMsg)>) {
        let mut extra = Vec::new();
        for (_, msg) in sends.iter() {
            let PeerMsg::TwoBSigs { signed } = msg else {
                continue;
            };
            let stray: Vec<Vote> = signed
                .votes
                .iter()
                .map(|v| Vote {
                    ballot: v.ballot.saturating_add(1),
                    digest: flipped(v.digest),
                    ..*v
                })
                .collect();
            warn!(
                "BYZANTINE stray-sign: signing votes in ballots it never voted in, and replaying old signatures"
            );
            extra.push(PeerMsg::TwoBSigs {
                signed: self.sign_votes(stray),
            });
            if let Some(old) = self.recorded.first().cloned() {
                let newest = signed.votes[signed.votes.len() - 1];
                let moved = SignedVotes {
                    votes: old
                        .votes
                        .iter()
                        .map(|v| Vote {
                            slot: newest.slot,
                            ballot: newest.ballot,
                            ..*v
                        })
                        .collect(),
                    signature: old.signature.clone(),
                };
                extra.push(PeerMsg::TwoBSigs { signed: old });
                extra.push(PeerMsg::TwoBSigs { signed: moved });
            }
            if self.recorded.len() >= 4 {
                self.recorded.remove(0);
            }
            self.recorded.push(signed.clone());
        }
        sends.extend(extra.into_iter().map(|m| (Dest::All, m)));
    }
}
