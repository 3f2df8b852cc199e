//! Hostile values from a peer: ballots and slots near u64::MAX,
//! catch-up replies nobody asked for, a ballot exhauster.

use super::*;

/// The seed's ballot exhaustion: one replica sends a 1a with the highest
/// ballot it leads; correct replicas promised it, and the next leader's
/// ballot computation overflowed (a panic, or a wrap-around after which
/// every ballot was refused for ever).
#[test]
fn a_1a_near_the_top_of_the_ballot_space_cannot_halt_the_group() {
    let mut sim = Sim::new(4, vec![None; 4], 21);
    let group = sim.replica(0).group().clone();
    let huge = crate::bpcon::byzantine::huge_ballot(&group, 1);
    assert!(huge > u64::MAX - 4);
    for to in [0, 2, 3] {
        sim.deliver(
            1,
            to,
            PeerMsg::OneA {
                slot: 0,
                ballot: huge,
            },
        );
    }
    sim.tick();
    for i in [0, 2, 3] {
        assert!(
            sim.replica(i).max_ballot().is_none_or(|b| b < 1 << 20),
            "replica {i} promised {:?}",
            sim.replica(i).max_ballot()
        );
    }
    let ids = submit_everywhere(&mut sim, &[0, 2, 3], 30, "h");
    assert_all_committed(&mut sim, &ids);
    let detected: u64 = [0, 2, 3]
        .iter()
        .map(|&i| sim.replica(i).stats.misbehaviour)
        .sum();
    assert!(detected >= 3, "the out-of-reach ballot was not noticed");
}

/// Slots and ballots near 2^64 - 1 in every kind of message: no overflow,
/// no allocation, and the group keeps committing.
#[test]
fn slots_and_ballots_near_u64_max_from_a_peer_change_nothing() {
    let mut sim = Sim::new(4, vec![None; 4], 22);
    let big = u64::MAX;
    let value = pwned();
    let messages = vec![
        PeerMsg::OneA {
            slot: big,
            ballot: big,
        },
        PeerMsg::OneC {
            slot: big - 1,
            ballot: big,
            value: value.clone(),
            proofs: vec![],
        },
        PeerMsg::TwoAv {
            slot: big,
            ballot: big,
            digest: value.digest(),
        },
        PeerMsg::TwoB {
            slot: big,
            ballot: big,
            digest: value.digest(),
        },
        PeerMsg::TwoAv {
            slot: 0,
            ballot: big - 2,
            digest: value.digest(),
        },
        PeerMsg::TwoB {
            slot: 0,
            ballot: big - 2,
            digest: value.digest(),
        },
        PeerMsg::Refuse {
            slot: big,
            max_ballot: Some(big),
            committed: big,
        },
        PeerMsg::Refuse {
            slot: 0,
            max_ballot: Some(big),
            committed: 0,
        },
        PeerMsg::Status {
            committed: 0,
            max_ballot: Some(big),
        },
        PeerMsg::Status {
            committed: big,
            max_ballot: Some(big),
        },
        PeerMsg::CatchupRequest { from_slot: big },
        PeerMsg::CatchupRequest { from_slot: big - 3 },
        PeerMsg::CatchupReply {
            slot: big,
            committed: big,
            value: value.clone(),
            proof: None,
        },
    ];
    for msg in messages {
        for to in [0, 2, 3] {
            sim.deliver(1, to, msg.clone());
        }
    }
    let ids = submit_everywhere(&mut sim, &[0, 2, 3], 20, "s");
    assert_all_committed(&mut sim, &ids);
    for i in [0, 2, 3] {
        assert!(!sim.replica(i).store().kv.contains_key("pwned"));
    }
}

/// With the seed's replayable HELLO, an attacker spoke as a second
/// replica; catch-up took CATCHUP_REPLY messages nobody asked for, and f + 1
/// of them made a correct replica commit a value the others never chose.
#[test]
fn catch_up_replies_nobody_asked_for_are_dropped_even_from_f_plus_1_replicas() {
    let mut sim = Sim::new(4, vec![None; 4], 23);
    for from in [1, 3] {
        for slot in 0..3 {
            sim.deliver(
                from,
                0,
                PeerMsg::CatchupReply {
                    slot,
                    committed: 3,
                    value: pwned(),
                    proof: None,
                },
            );
        }
    }
    assert_eq!(
        sim.replica(0).store().log.len(),
        0,
        "adopted unasked values"
    );
    let ids = submit_everywhere(&mut sim, &[0, 2], 10, "c");
    assert_all_committed(&mut sim, &ids);
    assert!(!sim.replica(0).store().kv.contains_key("pwned"));
    assert!(sim.replica(0).stats.misbehaviour >= 2);
}

/// The new test adversaries, next to crashes and restarts (so replicas
/// catch up with a liar among those answering).
#[test]
fn correct_replicas_keep_committing_next_to_a_ballot_exhauster_or_a_catch_up_liar() {
    for mode in [Mode::HugeBallot, Mode::CatchupLie] {
        for seed in 0..2 {
            let mut modes = vec![None; 4];
            modes[1] = Some(mode);
            let mut sim = Sim::new(4, modes, 300 + seed);
            let mut ids = Vec::new();
            for k in 0..60 {
                ids.push(sim.submit([0, 2][k % 2], 1, &format!("P,h{k},{k}")));
                if k % 5 == 0 {
                    sim.submit(1, 2, &format!("P,b{k},{k}"));
                }
                if k == 20 {
                    sim.crash(3);
                }
                if k == 40 {
                    sim.start(3);
                }
                sim.tick();
            }
            sim.run_until(20_000, |s| all_answered(s, &ids));
            for id in &ids {
                assert_eq!(sim.answered(*id), Some(CODE_COMMITTED), "{mode:?}");
            }
            let target = sim.replica(0).store().log.len();
            sim.run_until(20_000, |s| {
                [2, 3]
                    .iter()
                    .all(|&i| s.replica(i).store().log.len() == target)
            });
            sim.assert_agreement();
            for i in [0, 2, 3] {
                assert!(
                    !sim.replica(i).store().kv.contains_key("pwned"),
                    "{mode:?}: replica {i} adopted a lie"
                );
            }
            let detected: u64 = [0, 2, 3]
                .iter()
                .map(|&i| sim.replica(i).stats.misbehaviour)
                .sum();
            assert!(detected > 0, "{mode:?} was not noticed");
            // And it goes on committing.
            let id = sim.submit(2, 3, "P,after,1");
            sim.run_until(5_000, |s| s.answered(id).is_some());
            assert_eq!(sim.answered(id), Some(CODE_COMMITTED), "{mode:?}");
        }
    }
}

/// A leader's 1c with a batch over the group's limit (here with valid
/// proofs: the leader ran phase 1 honestly) is refused, not relayed: an
/// acceptor's 1bs carry the values it relayed, up to KEPT_REPORTS of them,
/// and with larger ones they would no longer fit a frame: a Byzantine
/// leader getting two such values relayed in one slot would leave correct
/// acceptors unable to send any 1b there, so no leader could take over.
#[test]
fn a_1c_with_a_batch_over_the_groups_limit_is_refused_with_valid_proofs() {
    use crate::bpcon::node::OutputFilter;
    use crate::bpcon::replica::Dest;

    fn oversized() -> Batch {
        let requests: Vec<Request> = (0..22)
            .map(|i| Request {
                id: RequestId {
                    client: 0xb16,
                    seq: i,
                },
                op: Op::parse(&format!("P,big{i},{}", "v".repeat(1000))).unwrap(),
            })
            .collect();
        Batch {
            requests: requests.into(),
        }
    }
    /// Replica 1 proposes the oversized batch in every 1c it leads.
    struct Oversize;
    impl OutputFilter for Oversize {
        fn filter(&mut self, _: u64, sends: &mut Vec<(Dest, PeerMsg)>, _: bool) {
            for (_, msg) in sends.iter_mut() {
                if let PeerMsg::OneC { value, .. } = msg {
                    *value = oversized();
                }
            }
        }
        fn name(&self) -> &'static str {
            "oversize"
        }
    }

    let big = oversized();
    let limit = crate::bpcon::messages::limits::max_batch_bytes(4);
    assert!(big.encoded_len() > limit && big.to_bytes().len() < 60_000);
    let mut modes = vec![None; 4];
    modes[1] = Some(Mode::Lie); // counted as the faulty one by the checks
    let mut sim = Sim::new(4, modes, 33);
    sim.net.world.run_for(Duration::from_millis(500)); // links up
    sim.net.node(1).unwrap().set_filter(Box::new(Oversize));
    sim.submit(1, 1, "P,from1,x");
    for _ in 0..30 {
        sim.tick();
    }
    let ids = submit_everywhere(&mut sim, &[0, 2, 3], 10, "h");
    assert_all_committed(&mut sim, &ids);
    for i in [0, 2, 3] {
        let r = sim.replica(i);
        assert!(
            r.committed().iter().all(|b| b.encoded_len() <= limit),
            "replica {i} committed an oversized batch"
        );
        assert!(r.stats.rejected > 0, "replica {i} did not refuse the 1c");
    }
}
