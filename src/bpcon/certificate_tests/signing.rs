//! Votes signed after they are cast: decided on unsigned votes, the
//! certificate formed afterwards, and replicas that sign wrongly, late or
//! never.

use super::*;

/// Whether `proof` proves `value` decided in `slot`: a quorum of distinct
/// replicas whose signed votes cover it and verify.
fn is_genuine(hand: &Hand, slot: u64, value: &Batch, proof: &Certificate) -> bool {
    let keys: Vec<_> = sim_keys(4).iter().map(|k| k.public()).collect();
    let quorum = hand.replicas[0].group().quorum;
    let mut signers: Vec<usize> = proof.votes.iter().map(|(i, _)| *i).collect();
    signers.sort_unstable();
    signers.dedup();
    signers.len() == proof.votes.len()
        && proof.votes.len() >= quorum
        && proof.votes.iter().all(|(i, signed)| {
            signed.covers(slot, proof.ballot, &value.digest())
                && keys[*i].verify(&votes_bytes(*i, &signed.votes), &signed.signature)
        })
}

/// A lone operation of a stable leader is decided everywhere before anyone
/// signs anything: the 2bs go unsigned. The next signing tick signs each
/// replica's vote once, and every replica then holds the slot's
/// certificate (a quorum of signatures that came after the decision).
#[test]
fn a_slot_is_decided_on_unsigned_votes_and_its_certificate_forms_afterwards() {
    let mut hand = Hand::new();
    hand.replicas[0].submit(1, RequestId { client: 7, seq: 1 }, "P,a,1");
    hand.settle(false);
    hand.ticks(SIGN_EVERY as usize); // phase 1's 1bs, slot 0's votes signed
    let signs: Vec<u64> = hand.replicas.iter().map(|r| r.stats.signs).collect();
    let verifies: Vec<u64> = hand.replicas.iter().map(|r| r.stats.verifies).collect();
    hand.replicas[0].submit(1, RequestId { client: 7, seq: 2 }, "P,b,2");
    hand.settle(false);
    for (i, r) in hand.replicas.iter().enumerate() {
        assert_eq!(r.slot(), 2, "r{i} decided slot 1");
        assert_eq!(r.stats.signs, signs[i], "r{i} signed on the critical path");
        assert_eq!(r.stats.verifies, verifies[i], "r{i} verified on it");
    }
    hand.ticks(SIGN_EVERY as usize);
    for (i, &signed_before) in signs.iter().enumerate() {
        assert_eq!(
            hand.replicas[i].stats.signs,
            signed_before + 1,
            "one signature"
        );
        hand.replicas[i].on_peer((i + 1) % 4, PeerMsg::CatchupRequest { from_slot: 1 });
        let proof = hand.replicas[i]
            .take_output()
            .sends
            .into_iter()
            .find_map(|(_, m)| match m {
                PeerMsg::CatchupReply {
                    slot: 1,
                    value,
                    proof,
                    ..
                } => Some((value, proof)),
                _ => None,
            });
        let (value, proof) = proof.expect("an answer for slot 1");
        let proof = proof.unwrap_or_else(|| panic!("r{i} has no certificate for slot 1"));
        assert!(is_genuine(&hand, 1, &value, &proof), "r{i}");
    }
}

/// r3 signs wrongly: signatures for other values than its unsigned 2bs
/// (sign-other), none at all (never-sign), signatures for ballots it never
/// voted in and replays of its old signatures, as they were and moved to
/// newer slots (stray-sign), split votes (equivocate), garbage (forge).
/// The correct replicas agree and commit everything; each certificate they
/// hold is genuine (so none carries a wrong signature); what can be told
/// wrong is refused and counted.
#[test]
fn replicas_that_sign_wrongly_or_never_cannot_split_the_correct_ones_or_forge_certificates() {
    let modes = [
        Mode::SignOther,
        Mode::NeverSign,
        Mode::StraySign,
        Mode::Equivocate,
        Mode::Forge,
    ];
    for mode in modes {
        let mut hand = Hand::with(mode);
        let mut ids = Vec::new();
        for k in 0..12u64 {
            let at = (k % 3) as usize;
            let id = RequestId {
                client: 20 + at as u64,
                seq: k,
            };
            hand.replicas[at].submit(1, id, &format!("P,k{k},{k}"));
            hand.settle(false);
            hand.ticks(2);
            ids.push(id);
        }
        hand.ticks(200);
        let slots = (0..3).map(|i| hand.replicas[i].slot()).min().unwrap();
        assert!(slots >= 2, "{mode:?}: only {slots} slots");
        let mut proofs = 0;
        for i in 0..3 {
            let r = &hand.replicas[i];
            assert_eq!(
                r.committed()[..slots as usize],
                hand.replicas[0].committed()[..slots as usize],
                "{mode:?}: r{i} disagrees"
            );
            for id in &ids {
                assert!(r.store().contains(id), "{mode:?}: r{i} lacks {id:?}");
            }
            hand.replicas[i].on_peer((i + 1) % 3, PeerMsg::CatchupRequest { from_slot: 0 });
            for (_, msg) in hand.replicas[i].take_output().sends {
                if let PeerMsg::CatchupReply {
                    slot,
                    value,
                    proof: Some(proof),
                    ..
                } = msg
                {
                    assert!(
                        is_genuine(&hand, slot, &value, &proof),
                        "{mode:?}: r{i}'s certificate for slot {slot}"
                    );
                    proofs += 1;
                }
            }
        }
        assert!(
            proofs >= slots,
            "{mode:?}: {proofs} certificates for {slots} slots at 3 replicas"
        );
        let sum = |f: fn(&Replica) -> u64| (0..3).map(|i| f(&hand.replicas[i])).sum::<u64>();
        let misbehaviour = sum(|r| r.stats.misbehaviour);
        let forged = sum(|r| r.stats.forged_rejected);
        match mode {
            Mode::SignOther | Mode::Equivocate => {
                assert!(misbehaviour > 0, "{mode:?} not noticed")
            }
            Mode::StraySign | Mode::Forge => {
                assert!(forged > 0, "{mode:?}: no forged signature refused")
            }
            _ => {}
        }
        if mode == Mode::StraySign {
            assert!(
                misbehaviour > forged,
                "stray votes against decisions not noticed"
            );
        }
    }
}

/// A stream of forged signatures from one replica: each refused and
/// counted, one log line (the rest held back by the rate limit).
#[test]
fn a_flood_of_forged_signatures_is_refused_and_logged_once() {
    let mut hand = Hand::new();
    let forged = PeerMsg::TwoBSigs {
        signed: SignedVotes {
            votes: vec![Vote {
                slot: 0,
                ballot: 1,
                digest: [9; 20],
            }],
            signature: vec![7; 256],
        },
    };
    let r0 = &mut hand.replicas[0];
    for _ in 0..100 {
        r0.on_peer(LIAR, forged.clone());
    }
    assert_eq!(
        (r0.stats.forged_rejected, r0.stats.misbehaviour),
        (100, 100)
    );
    assert_eq!(r0.warnings_held(), 99, "one line, 99 held back");
    assert_eq!(r0.slot(), 0);
}

/// Signatures are sent once, and a link can be down then; a replica that
/// decided on the unsigned 2bs still gets them: a replica sends its recent
/// signatures again when its link to a peer comes up, signs its WAL's votes
/// again after a restart, and a replica restarted without the deciding
/// ballot's votes gathers the late signatures for its committed value.
#[test]
fn lost_signatures_are_sent_again_and_a_restart_signs_again() {
    // Slot 0 (phase 1) settles with every signature delivered.
    let mut hand = Hand::new();
    hand.replicas[0].submit(1, RequestId { client: 7, seq: 1 }, "P,a,1");
    hand.settle(false);
    hand.ticks(SIGN_EVERY as usize);
    // Slot 1: r1's and r2's signatures to r0 are lost (their links down).
    hand.drop = Box::new(|from, to, msg| {
        matches!(msg, PeerMsg::TwoBSigs { .. }) && to == 0 && (from == 1 || from == 2)
    });
    hand.replicas[0].submit(1, RequestId { client: 7, seq: 2 }, "P,b,2");
    hand.settle(false);
    hand.ticks(SIGN_EVERY as usize);
    assert_eq!(hand.replicas[0].slot(), 2);
    assert!(hand.certificate(0, 1).is_none(), "2 signatures of 3");
    hand.drop = Box::new(|_, _, _| false);
    // r1's link to r0 comes back: r0 gets r1's signature, and the proof.
    hand.replicas[1].on_peer_up(0);
    hand.settle(false);
    let (value, proof) = hand.certificate(0, 1).expect("r1's signature came again");
    assert!(is_genuine(&hand, 1, &value, &proof));

    // Slot 2: r1 and r2's signatures are lost, then r1 crashes before
    // its link comes back: restarted, it signs its WAL's vote again.
    hand.drop = Box::new(|from, _, msg| {
        matches!(msg, PeerMsg::TwoBSigs { .. }) && (from == 1 || from == 2)
    });
    hand.replicas[0].submit(1, RequestId { client: 7, seq: 3 }, "P,c,3");
    hand.settle(false);
    hand.ticks(SIGN_EVERY as usize);
    assert!(hand.certificate(0, 2).is_none());
    hand.drop = Box::new(|_, _, _| false);
    hand.restart(1);
    hand.ticks(SIGN_EVERY as usize);
    let (value, proof) = hand.certificate(0, 2).expect("r1 signed again");
    assert!(is_genuine(&hand, 2, &value, &proof));

    // r0 restarts: its WAL's commit records carry no certificate (the
    // signatures came after them), nor does it know the deciding ballots.
    // The others' signatures, sent again as its links come up, make them.
    hand.restart(0);
    assert!(hand.certificate(0, 2).is_none());
    for i in 1..4 {
        hand.replicas[i].on_peer_up(0);
    }
    hand.settle(false);
    for slot in [1, 2] {
        let (value, proof) = hand.certificate(0, slot).expect("gathered again");
        assert!(is_genuine(&hand, slot, &value, &proof), "slot {slot}");
    }
}
