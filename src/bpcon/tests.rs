//! Whole-protocol tests on the in-memory network (see `sim`).

use super::byzantine::Mode;
use super::replica::{CODE_BEHIND, CODE_COMMITTED, CODE_FAILED};
use super::sim::Sim;
use std::collections::HashSet;

fn all_answered(sim: &Sim, ids: &[super::op::RequestId]) -> bool {
    ids.iter().all(|id| sim.answered(*id).is_some())
}

#[test]
fn a_replica_with_no_peers_commits_alone() {
    let mut sim = Sim::new(1, vec![None], 1);
    let a = sim.submit(0, 1, "P,k,v");
    let b = sim.submit(0, 1, "D,k,");
    let c = sim.submit(0, 1, "P,x,1");
    sim.run_until(100, |s| all_answered(s, &[a, b, c]));
    assert_eq!(sim.answered(a), Some(CODE_COMMITTED));
    let store = &sim.replica(0).store().kv;
    assert_eq!(store.get("x").map(String::as_str), Some("1"));
    assert!(!store.contains_key("k"));
}

#[test]
fn malformed_requests_fail_at_once_with_the_reason() {
    let mut sim = Sim::new(4, vec![None; 4], 2);
    sim.wire.clear();
    for text in ["X,a,b", "Pab", "P,a", &format!("P,a,{}", "x".repeat(2000))] {
        let id = sim.submit(0, 1, text);
        let reply = sim.replies.iter().find(|(_, r)| r.id == id).unwrap();
        assert_eq!(reply.1.code, CODE_FAILED);
        assert!(
            reply.1.message.starts_with("bad request:"),
            "{}",
            reply.1.message
        );
    }
    assert!(sim.wire.is_empty(), "nothing reached the network");
}

/// Two proposers, many operations, messages reordered: every replica ends
/// with the same sequence, and each request commits exactly once.
fn concurrent_run(seed: u64, modes: Vec<Option<Mode>>, proposers: &[usize], ops: usize) -> Sim {
    let n = modes.len();
    let mut sim = Sim::new(n, modes, seed);
    let mut ids = Vec::new();
    for k in 0..ops {
        for (p, &at) in proposers.iter().enumerate() {
            ids.push(sim.submit(at, p as u64 + 1, &format!("P,k{},{p}-{k}", k % 17)));
        }
        if k % 10 == 0 {
            for _ in 0..30 {
                sim.step();
            }
            sim.tick();
        }
    }
    sim.run_until(5000, |s| all_answered(s, &ids));
    for id in &ids {
        assert_eq!(sim.answered(*id), Some(CODE_COMMITTED), "{id:?}");
    }
    // Let the last decisions reach everyone.
    sim.run_until(500, |s| {
        let lens: HashSet<usize> = (0..n)
            .filter(|&i| s.modes[i].is_none())
            .map(|i| s.replica(i).store().log.len())
            .collect();
        lens.len() == 1
    });
    sim.assert_agreement();
    let log = &sim.replica(proposers[0]).store().log;
    let unique: HashSet<_> = log.iter().map(|(id, _)| *id).collect();
    assert_eq!(unique.len(), log.len(), "a request committed twice");
    for id in &ids {
        assert!(unique.contains(id));
    }
    sim
}

#[test]
fn two_proposers_agree_on_one_sequence() {
    for seed in 0..3 {
        let sim = concurrent_run(seed, vec![None; 4], &[0, 2], 150);
        let s0 = sim.replica(0).store();
        for i in 1..4 {
            assert_eq!(sim.replica(i).store().kv, s0.kv);
            assert_eq!(sim.replica(i).store().log_digest(), s0.log_digest());
        }
    }
}

#[test]
fn operations_commit_with_one_replica_crashed_and_it_catches_up() {
    let mut sim = Sim::new(4, vec![None; 4], 9);
    sim.crash(3);
    let ids: Vec<_> = (0..40)
        .map(|k| sim.submit(k % 2, 5, &format!("P,a{k},{k}")))
        .collect();
    sim.run_until(2000, |s| all_answered(s, &ids));
    assert!(ids
        .iter()
        .all(|id| sim.answered(*id) == Some(CODE_COMMITTED)));
    sim.start(3);
    let target = sim.replica(0).store().log.len();
    sim.run_until(2000, |s| s.replica(3).store().log.len() == target);
    assert_eq!(sim.replica(3).store().kv, sim.replica(0).store().kv);
    // And it takes part again.
    let id = sim.submit(3, 6, "P,after,1");
    sim.run_until(2000, |s| s.answered(id).is_some());
    assert_eq!(sim.answered(id), Some(CODE_COMMITTED));
    sim.assert_agreement();
}

#[test]
fn a_restarted_replica_keeps_its_promises() {
    let mut sim = Sim::new(4, vec![None; 4], 4);
    let id = sim.submit(1, 1, "P,a,1");
    sim.run_until(1000, |s| s.answered(id).is_some());
    let before = sim.replica(2).max_ballot();
    let store = sim.replica(2).store().kv.clone();
    let digest = sim.replica(2).store().log_digest();
    sim.crash(2);
    sim.start(2);
    assert_eq!(sim.replica(2).store().kv, store);
    assert_eq!(sim.replica(2).store().log_digest(), digest);
    assert_eq!(sim.replica(2).max_ballot(), before);
}

#[test]
fn a_lagging_leader_is_refused_catches_up_and_answers_code_2() {
    let mut sim = Sim::new(4, vec![None; 4], 5);
    sim.cut[3] = true;
    let ids: Vec<_> = (0..5)
        .map(|k| sim.submit(0, 1, &format!("P,a{k},1")))
        .collect();
    sim.run_until(1000, |s| all_answered(s, &ids));
    sim.cut[3] = false;
    // Replica 3 has not heard of those slots; its ballot for slot 0 is refused.
    let id = sim.submit(3, 2, "P,late,1");
    sim.run_until(1000, |s| s.answered(id).is_some());
    assert_eq!(sim.answered(id), Some(CODE_BEHIND));
    assert_eq!(sim.replica(3).store().kv, sim.replica(0).store().kv);
    // Retrying now succeeds.
    let again = sim.submit(3, 2, "P,late,1");
    sim.run_until(1000, |s| s.answered(again).is_some());
    assert_eq!(sim.answered(again), Some(CODE_COMMITTED));
}

#[test]
fn correct_replicas_agree_next_to_each_kind_of_byzantine_replica() {
    for mode in [Mode::Forge, Mode::Equivocate, Mode::Lie] {
        for seed in 0..2 {
            let mut modes = vec![None; 4];
            modes[1] = Some(mode);
            let mut sim = Sim::new(4, modes, 100 + seed);
            // The Byzantine replica leads ballots of its own too.
            let mut honest = Vec::new();
            for k in 0..60 {
                honest.push(sim.submit([0, 2, 3][k % 3], 1, &format!("P,h{k},{k}")));
                if k % 5 == 0 {
                    sim.submit(1, 2, &format!("P,b{k},{k}"));
                }
                for _ in 0..20 {
                    sim.step();
                }
                sim.tick();
            }
            sim.run_until(20_000, |s| all_answered(s, &honest));
            for id in &honest {
                assert_eq!(sim.answered(*id), Some(CODE_COMMITTED), "{mode:?}");
            }
            sim.assert_agreement();
            if mode == Mode::Forge {
                let rejected: u64 = [0, 2, 3]
                    .iter()
                    .map(|&i| sim.replica(i).stats.forged_rejected)
                    .sum();
                assert!(rejected > 0, "forged proofs were not noticed");
            }
        }
    }
}

#[test]
fn random_schedules_with_crashes_and_a_liar_never_disagree() {
    for seed in 0..12 {
        let mut modes = vec![None; 4];
        if seed % 2 == 1 {
            modes[(seed % 4) as usize] = Some(Mode::Lie);
        }
        let mut sim = Sim::new(4, modes.clone(), 1000 + seed);
        let mut rng_state = seed;
        for k in 0..120u64 {
            rng_state = rng_state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let at = (rng_state >> 33) as usize % 4;
            if sim.replicas[at].is_some() {
                sim.submit(at, 1 + at as u64, &format!("P,k{},{k}", k % 7));
            }
            if k % 40 == 20 {
                let victim = (rng_state >> 40) as usize % 4;
                if modes[victim].is_none() && sim.replicas[victim].is_some() {
                    sim.crash(victim);
                }
            }
            if k % 40 == 35 {
                for i in 0..4 {
                    if sim.replicas[i].is_none() {
                        sim.start(i);
                    }
                }
            }
            for _ in 0..((rng_state >> 20) % 40) {
                sim.step();
            }
            sim.tick();
            sim.assert_agreement();
        }
        for i in 0..4 {
            if sim.replicas[i].is_none() {
                sim.start(i);
            }
        }
        for _ in 0..300 {
            for _ in 0..100 {
                sim.step();
            }
            sim.tick();
        }
        sim.assert_agreement();
        for (i, mode) in modes.iter().enumerate() {
            if mode.is_none() {
                assert!(!sim.replica(i).store().kv.contains_key("byzantine"));
            }
        }
    }
}
