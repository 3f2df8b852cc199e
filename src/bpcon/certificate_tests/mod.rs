//! Replica state machines wired by hand (no node, no simulated network):
//! the "decided by a minority of correct replicas" shape the fuzzer found
//! (seeds 105, 247, 355, 406 of 0–505), forged decision certificates, and
//! replicas that sign their votes wrongly, late or never.

use super::byzantine::{pwned, Adversary, Mode};
use super::crypto::sim_keys;
use super::group::Group;
use super::messages::{votes_bytes, Certificate, PeerMsg, SignedVotes, Vote};
use super::node::OutputFilter;
use super::op::{Batch, RequestId};
use super::replica::{Config, Dest, Replica, SIGN_EVERY};

/// Whether a message from `from` to `to` is lost.
type Lost = Box<dyn Fn(usize, usize, &PeerMsg) -> bool>;

/// Four replicas; r3 is Byzantine (by default the `catchup-lie` adversary).
struct Hand {
    replicas: Vec<Replica>,
    liar: Adversary,
    /// (from, to, message) in flight.
    queue: std::collections::VecDeque<(usize, usize, PeerMsg)>,
    drop: Lost,
    /// Every record each replica persisted (its WAL, for restarts).
    records: Vec<Vec<super::wal::Record>>,
}

const LIAR: usize = 3;

impl Hand {
    fn new() -> Hand {
        Hand::with(Mode::CatchupLie)
    }

    fn with(mode: Mode) -> Hand {
        let n = 4;
        let group = Group::new((0..n).map(|i| format!("r{i}")).collect()).unwrap();
        let keys = sim_keys(n);
        let public: Vec<_> = keys.iter().map(|k| k.public()).collect();
        let replicas = (0..n)
            .map(|i| {
                Replica::new(
                    Config {
                        group: group.clone(),
                        me: i,
                        key: keys[i].clone(),
                        keys: public.clone(),
                        seed: i as u64,
                    },
                    Vec::new(),
                )
            })
            .collect();
        Hand {
            replicas,
            liar: Adversary::new(mode, group, LIAR, keys[LIAR].clone(), 1),
            queue: Default::default(),
            drop: Box::new(|_, _, _| false),
            records: vec![Vec::new(); n],
        }
    }

    /// Move every replica's output into the queue (the liar's through its
    /// adversary), then deliver until nothing is left.
    fn settle(&mut self, on_tick: bool) {
        for _ in 0..10_000 {
            for i in 0..self.replicas.len() {
                let mut out = self.replicas[i].take_output();
                self.records[i].extend(out.persist);
                if i == LIAR {
                    let slot = self.replicas[i].slot();
                    self.liar.filter(slot, &mut out.sends, on_tick);
                }
                for (dest, msg) in out.sends {
                    let to: Vec<usize> = match dest {
                        Dest::Peer(p) => vec![p],
                        Dest::All => (0..self.replicas.len()).filter(|&p| p != i).collect(),
                    };
                    for p in to {
                        if !(self.drop)(i, p, &msg) {
                            self.queue.push_back((i, p, msg.clone()));
                        }
                    }
                }
            }
            let Some((from, to, msg)) = self.queue.pop_front() else {
                return;
            };
            self.replicas[to].on_peer(from, msg);
        }
        panic!("messages never stopped");
    }

    /// Replica `i` crashes and restarts from its records.
    fn restart(&mut self, i: usize) {
        let group = self.replicas[i].group().clone();
        let keys = sim_keys(group.n());
        self.replicas[i] = Replica::new(
            Config {
                group,
                me: i,
                key: keys[i].clone(),
                keys: keys.iter().map(|k| k.public()).collect(),
                seed: i as u64,
            },
            self.records[i].clone(),
        );
    }

    /// Replica `i`'s certificate for `slot`, from its catch-up answer.
    fn certificate(&mut self, i: usize, slot: u64) -> Option<(Batch, Certificate)> {
        let asker = (i + 1) % self.replicas.len();
        self.replicas[i].on_peer(asker, PeerMsg::CatchupRequest { from_slot: slot });
        self.replicas[i]
            .take_output()
            .sends
            .into_iter()
            .find_map(|(_, m)| match m {
                PeerMsg::CatchupReply {
                    slot: s,
                    value,
                    proof: Some(proof),
                    ..
                } if s == slot => Some((value, proof)),
                _ => None,
            })
    }

    fn ticks(&mut self, n: usize) {
        for _ in 0..n {
            for r in &mut self.replicas {
                r.on_tick();
            }
            self.settle(true);
        }
    }
}

/// r0's and the liar's votes in slot 0, unsigned or signed, are lost on
/// their way to r1 and r2.
fn slot_0_votes_lost() -> Lost {
    Box::new(|from, to, msg| {
        let slot_0 = match msg {
            PeerMsg::TwoB { slot, .. } => *slot == 0,
            PeerMsg::TwoBSigs { signed } => signed.votes.iter().any(|v| v.slot == 0),
            _ => false,
        };
        slot_0 && (from == 0 || from == LIAR) && (to == 1 || to == 2)
    })
}

/// Slot 0 is decided with r0 and the liar seeing the 2b quorum, while r1
/// and r2 voted but never saw a quorum of 2bs (those of r0 and r3 to them
/// are lost, and so are their signatures). r0 moves on to slot 1, which needs r1 or r2. Catch-up by
/// f + 1 matching replies cannot help: only r0 tells the truth about slot
/// 0, the liar contradicts it. r0's decision certificate (the quorum's
/// signed 2b votes) must be enough on its own.
#[test]
fn a_slot_decided_by_one_correct_replica_and_a_liar_is_learnt_from_its_certificate() {
    let mut hand = Hand::new();
    hand.drop = slot_0_votes_lost();
    let first = RequestId { client: 7, seq: 1 };
    hand.replicas[0].submit(1, first, "P,a,1");
    hand.settle(false);
    assert_eq!(hand.replicas[0].slot(), 1, "r0 decides slot 0");
    assert_eq!(hand.replicas[LIAR].slot(), 1, "the liar decides slot 0");
    for i in [1, 2] {
        assert_eq!(hand.replicas[i].slot(), 0, "r{i} missed the 2b quorum");
        assert!(hand.replicas[i].max_ballot().is_some(), "r{i} took part");
    }
    // From now on every other message arrives (slot 0's votes stay lost:
    // signed late, they would decide it at r1 and r2 without catch-up).
    // New requests at r0, r1 and r2.
    let later = [
        (0, RequestId { client: 7, seq: 2 }),
        (1, RequestId { client: 8, seq: 1 }),
        (2, RequestId { client: 9, seq: 1 }),
    ];
    for (i, id) in later {
        hand.replicas[i].submit(1, id, &format!("P,k{i},v"));
    }
    hand.ticks(3000); // 30 s of ticks
    for i in 0..3 {
        let r = &hand.replicas[i];
        assert!(
            r.slot() >= 2,
            "r{i} is stuck at slot {} (r0 at {})",
            r.slot(),
            hand.replicas[0].slot()
        );
        assert!(!r.store().kv.contains_key("pwned"), "r{i} adopted the lie");
        assert!(r.store().contains(&first));
        for (_, id) in later {
            assert!(r.store().contains(&id), "r{i} lacks {id:?}");
        }
        assert_eq!(r.committed()[..2], hand.replicas[0].committed()[..2]);
    }
}

/// The stuck shape of the test above, up to r1 asking for catch-up; and
/// r0's genuine answer for slot 0 (its value and certificate).
fn r1_behind() -> (Hand, Batch, Certificate) {
    let mut hand = Hand::new();
    hand.drop = slot_0_votes_lost();
    hand.replicas[0].submit(1, RequestId { client: 7, seq: 1 }, "P,a,1");
    hand.settle(false);
    assert_eq!((hand.replicas[0].slot(), hand.replicas[1].slot()), (1, 0));
    // Decided on unsigned votes; the signatures come on the next signing
    // tick, and r0's certificate with them.
    hand.ticks(SIGN_EVERY as usize);
    assert_eq!((hand.replicas[0].slot(), hand.replicas[1].slot()), (1, 0));
    hand.replicas[0].on_peer(1, PeerMsg::CatchupRequest { from_slot: 0 });
    let reply = hand.replicas[0]
        .take_output()
        .sends
        .into_iter()
        .find_map(|(_, m)| match m {
            PeerMsg::CatchupReply { value, proof, .. } => Some((value, proof)),
            _ => None,
        });
    let (value, proof) = reply.expect("r0 answers");
    let proof = proof.expect("r0 saw the 2b quorum and the signatures: it has the certificate");
    // f + 1 claims that slot 0 is decided: r1 asks everyone.
    for from in [0, 2] {
        hand.replicas[1].on_peer(
            from,
            PeerMsg::Status {
                committed: 1,
                max_ballot: None,
            },
        );
    }
    let asked = hand.replicas[1].take_output().sends;
    assert!(asked
        .iter()
        .any(|(_, m)| matches!(m, PeerMsg::CatchupRequest { from_slot: 0 })));
    (hand, value, proof)
}

fn reply(value: &Batch, proof: Option<Certificate>) -> PeerMsg {
    PeerMsg::CatchupReply {
        slot: 0,
        committed: 1,
        value: value.clone(),
        proof,
    }
}

/// A certificate is believed only if it holds a quorum of distinct
/// replicas of the group whose signatures verify for this slot, ballot and
/// value: every forgery a liar can make is refused and logged, and the
/// genuine certificate still works afterwards.
#[test]
fn a_forged_or_incomplete_decision_certificate_is_refused() {
    let (_, value, genuine) = r1_behind();
    assert_eq!(genuine.votes.len(), 3, "a quorum of 3 of 4");
    let sig = |i: usize| genuine.votes[i].1.clone();
    let signer = |i: usize| genuine.votes[i].0;
    let forgeries: Vec<(&str, Batch, Certificate)> = vec![
        (
            "too few signers",
            value.clone(),
            Certificate {
                ballot: genuine.ballot,
                votes: genuine.votes[..2].to_vec(),
            },
        ),
        (
            "a duplicate signer",
            value.clone(),
            Certificate {
                ballot: genuine.ballot,
                votes: vec![
                    (signer(0), sig(0)),
                    (signer(1), sig(1)),
                    (signer(0), sig(0)),
                ],
            },
        ),
        (
            "the signatures of another value (wrong digest)",
            pwned(),
            genuine.clone(),
        ),
        (
            "another ballot",
            value.clone(),
            Certificate {
                ballot: genuine.ballot + 4,
                votes: genuine.votes.clone(),
            },
        ),
        (
            "a signer outside the group",
            value.clone(),
            Certificate {
                ballot: genuine.ballot,
                votes: vec![(signer(0), sig(0)), (signer(1), sig(1)), (9, sig(2))],
            },
        ),
        (
            "one signature under another signer's name",
            value.clone(),
            Certificate {
                ballot: genuine.ballot,
                votes: vec![
                    (signer(0), sig(0)),
                    (signer(1), sig(1)),
                    (if signer(2) == 2 { 3 } else { 2 }, sig(2)),
                ],
            },
        ),
        (
            "garbage signatures",
            value.clone(),
            Certificate {
                ballot: genuine.ballot,
                votes: genuine
                    .votes
                    .iter()
                    .map(|(i, signed)| {
                        let garbage = SignedVotes {
                            votes: signed.votes.clone(),
                            signature: vec![0x5a; 128],
                        };
                        (*i, garbage)
                    })
                    .collect(),
            },
        ),
    ];
    for (what, claimed, forged) in forgeries {
        let (mut hand, _, _) = r1_behind();
        let r1 = &mut hand.replicas[1];
        let (misbehaviour, forged_rejected) = (r1.stats.misbehaviour, r1.stats.forged_rejected);
        r1.on_peer(LIAR, reply(&claimed, Some(forged)));
        assert_eq!(r1.slot(), 0, "{what}: adopted");
        assert!(r1.stats.misbehaviour > misbehaviour, "{what}: not logged");
        assert!(
            r1.stats.forged_rejected > forged_rejected,
            "{what}: not counted"
        );
        // The real certificate, from the one correct replica that has it.
        r1.on_peer(0, reply(&value, Some(genuine.clone())));
        assert_eq!(
            r1.slot(),
            1,
            "{what}: the genuine certificate no longer works"
        );
        assert_eq!(r1.committed()[0], value, "{what}");
        assert!(!r1.store().kv.contains_key("pwned"), "{what}");
    }
    // One reply without a certificate is not enough (f + 1 = 2 are needed).
    let (mut hand, _, _) = r1_behind();
    hand.replicas[1].on_peer(0, reply(&value, None));
    assert_eq!(hand.replicas[1].slot(), 0);
    // A genuine certificate is proof whoever relays it.
    hand.replicas[1].on_peer(LIAR, reply(&value, Some(genuine)));
    assert_eq!(hand.replicas[1].slot(), 1);
}

/// The decoder refuses a certificate naming a replica outside the group,
/// or more votes than replicas.
#[test]
fn a_certificate_naming_a_replica_outside_the_group_does_not_decode() {
    let signed = |b: u8| SignedVotes {
        votes: vec![Vote {
            slot: 0,
            ballot: 1,
            digest: [b; 20],
        }],
        signature: vec![b; 8],
    };
    for votes in [
        vec![(0, signed(1)), (4, signed(2))],
        vec![(0, signed(1)); 5],
    ] {
        let msg = reply(&Batch::default(), Some(Certificate { ballot: 1, votes }));
        let bytes = msg.to_frame().unwrap();
        let frame = crate::wire::split_frame(&bytes).unwrap().unwrap();
        assert!(PeerMsg::decode(frame.kind, frame.body, 4).is_err());
    }
}

mod signing;
