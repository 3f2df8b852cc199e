//! Correct replicas agree next to Byzantine ones: each kind of liar,
//! random schedules, equivocation floods, a liar pumping one acceptor.

use super::*;

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
                sim.tick();
            }
            sim.run_until(20_000, |s| all_answered(s, &honest));
            for id in &honest {
                assert_eq!(sim.answered(*id), Some(CODE_COMMITTED), "{mode:?}");
            }
            sim.assert_agreement();
            // A forger's garbage 2b signatures come on its signing clock
            // (a vote waits up to SIGN_EVERY ticks for its signature).
            for _ in 0..2 * crate::bpcon::replica::SIGN_EVERY {
                sim.tick();
            }
            if mode != Mode::Lie {
                let detected: u64 = [0, 2, 3]
                    .iter()
                    .map(|&i| sim.replica(i).stats.misbehaviour)
                    .sum();
                assert!(detected > 0, "{mode:?} was not noticed");
            }
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
            if sim.is_up(at) {
                sim.submit(at, 1 + at as u64, &format!("P,k{},{k}", k % 7));
            }
            if k % 40 == 20 {
                let victim = (rng_state >> 40) as usize % 4;
                if modes[victim].is_none() && sim.is_up(victim) {
                    sim.crash(victim);
                }
            }
            if k % 40 == 35 {
                for i in 0..4 {
                    if !sim.is_up(i) {
                        sim.start(i);
                    }
                }
            }
            sim.net
                .world
                .run_for(Duration::from_micros((rng_state >> 20) % 20_000));
            sim.tick();
            sim.assert_agreement();
        }
        for i in 0..4 {
            if !sim.is_up(i) {
                sim.start(i);
            }
        }
        sim.net.world.run_for(Duration::from_secs(5));
        sim.assert_agreement();
        for (i, mode) in modes.iter().enumerate() {
            if mode.is_none() {
                assert!(!sim.replica(i).store().kv.contains_key("byzantine"));
            }
        }
    }
}

// ---- hardening (issue 8) ---------------------------------------------------
/// A flood of equivocations is counted, and logged through a rate limit.
#[test]
fn a_flood_of_equivocations_is_counted_and_rate_limited() {
    let mut sim = Sim::new(4, vec![None; 4], 25);
    let a = pwned();
    let mut b = pwned();
    std::sync::Arc::make_mut(&mut b.requests)[0].id.seq = 2;
    sim.deliver(
        1,
        0,
        PeerMsg::TwoAv {
            slot: 0,
            ballot: 1,
            digest: a.digest(),
        },
    );
    for _ in 0..1000 {
        sim.deliver(
            1,
            0,
            PeerMsg::TwoAv {
                slot: 0,
                ballot: 1,
                digest: b.digest(),
            },
        );
    }
    assert_eq!(sim.replica(0).stats.misbehaviour, 1000);
    assert_eq!(
        sim.replica(0).warnings_held(),
        999,
        "one line, 999 held back"
    );
}

/// A liar raises one correct acceptor step by step (each 1a just within
/// reach of the last), then falls silent: that acceptor must not run so far
/// ahead of the others that no honest ballot suits a quorum again.
#[test]
fn a_liar_cannot_pump_one_acceptor_out_of_the_others_reach() {
    use crate::bpcon::replica::MAX_ROUND_STEP;
    let mut sim = Sim::new(4, vec![None; 4], 26);
    let group = sim.replica(0).group().clone();
    for k in 1..=50u64 {
        let above = k * MAX_ROUND_STEP * 4;
        let ballot = group.next_ballot(1, Some(above)).unwrap();
        sim.deliver(1, 0, PeerMsg::OneA { slot: 0, ballot });
    }
    let pumped = sim.replica(0).max_ballot().unwrap_or(0);
    assert!(
        group.round(pumped) <= MAX_ROUND_STEP + 1,
        "pumped to round {}",
        group.round(pumped)
    );
    let ids = submit_everywhere(&mut sim, &[0, 2, 3], 20, "p");
    assert_all_committed(&mut sim, &ids);
}
