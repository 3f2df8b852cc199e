//! The stable leader's new paths: a leader that ignores the requests
//! forwarded to it is replaced; a Byzantine leader that equivocates while
//! reusing its phase-1 proofs slot after slot splits nobody; proofs from an
//! earlier slot are refused by an acceptor that voted in the slot they are
//! reused for (crafted by hand, with real signatures). Each test also runs
//! the deliberately broken variant (a seeded bug, `sim::bugs`) it must catch.

use super::byzantine::Mode;
use super::crypto::sim_keys;
use super::group::Group;
use super::messages::{OneB, PeerMsg, SignedOneB};
use super::op::{Batch, Op, Request, RequestId};
use super::replica::{Config, Replica, CODE_COMMITTED};
use super::simnet::Net;
use super::wal::Record;
use crate::sim::{bugs, World};
use std::time::Duration;

fn request(client: u64, seq: u64, text: &str) -> Request {
    Request {
        id: RequestId { client, seq },
        op: Op::parse(text).unwrap(),
    }
}

/// Submit `text` at replica `i` (client connection `c`).
fn submit(net: &mut Net, c: usize, seq: u64, text: &str) -> RequestId {
    let id = RequestId { client: 7, seq };
    net.submit(c, id, text);
    id
}

/// Run until every request in `ids` is answered, at most `limit` of
/// virtual time; whether they all were.
fn run_until_answered(net: &mut Net, ids: &[RequestId], limit: Duration) -> bool {
    let step = Duration::from_millis(50);
    let mut spent = Duration::ZERO;
    while spent < limit {
        net.poll_clients();
        if ids.iter().all(|id| net.answer(*id).is_some()) {
            return true;
        }
        net.world.run_for(step);
        spent += step;
    }
    false
}

/// Replica 0 (Byzantine) becomes the stable leader, then drops every 1c:
/// the requests the others forward to it go nowhere. Returns whether the
/// correct replicas' requests all committed (before their 10 s time-out).
fn silent_leader_run() -> bool {
    let mut net = Net::new(
        World::new(41),
        vec![Some(Mode::SilentLeader), None, None, None],
    );
    let clients: Vec<usize> = (0..4).map(|i| net.connect_client(i)).collect();
    net.world.run_for(Duration::from_millis(500)); // links up
    submit(&mut net, clients[0], 1, "P,first,0");
    net.world.run_for(Duration::from_millis(300));
    // Every correct replica promised replica 0's ballot: it is the leader.
    let group = net.replica_ref(1).unwrap().group().clone();
    for i in 1..4 {
        let b = net.replica_ref(i).unwrap().max_ballot();
        assert_eq!(
            b.map(|b| group.leader(b)),
            Some(0),
            "r{i} promised {b:?}: {}",
            net.replica_ref(i).unwrap().state().to_json()
        );
    }
    let ids: Vec<RequestId> = (1..4)
        .map(|i| submit(&mut net, clients[i], 10 + i as u64, &format!("P,k{i},v")))
        .collect();
    // (Not answered, or answered "time-out" after 10 s, is not replaced.)
    run_until_answered(&mut net, &ids, Duration::from_secs(20))
        && ids
            .iter()
            .all(|id| net.answer(*id).map(|a| a.code) == Some(CODE_COMMITTED))
}

#[test]
fn a_leader_that_ignores_forwarded_requests_is_replaced() {
    assert!(silent_leader_run(), "the silent leader was never replaced");
    // Broken variant: the forwarding time-out never takes over.
    assert!(
        !bugs::with("bpcon.leader-never-replaced", silent_leader_run),
        "the test cannot tell a leader that is never replaced"
    );
}

/// Replica 1 (Byzantine) leads, sending two values per slot (one to each
/// half of the group) with the same phase-1 proofs in every slot; the
/// correct replicas must agree on every slot, and keep committing.
#[test]
fn an_equivocating_stable_leader_reusing_its_proofs_splits_no_one() {
    for seed in 0..3 {
        let mut modes = vec![None; 4];
        modes[1] = Some(Mode::Equivocate);
        let mut net = Net::new(World::new(60 + seed), modes);
        let clients: Vec<usize> = (0..4).map(|i| net.connect_client(i)).collect();
        net.world.run_for(Duration::from_millis(500));
        submit(&mut net, clients[1], 1, "P,lead,1");
        net.world.run_for(Duration::from_millis(300));
        let group = net.replica_ref(0).unwrap().group().clone();
        let promised = net.replica_ref(0).unwrap().max_ballot();
        assert_eq!(promised.map(|b| group.leader(b)), Some(1), "seed {seed}");
        let mut ids = Vec::new();
        for k in 0..30u64 {
            let at = [0, 2, 3][k as usize % 3];
            ids.push(submit(
                &mut net,
                clients[at],
                100 + k,
                &format!("P,k{k},{k}"),
            ));
            net.world.run_for(Duration::from_millis(20));
        }
        assert!(
            run_until_answered(&mut net, &ids, Duration::from_secs(60)),
            "seed {seed}: not all committed"
        );
        let logs: Vec<Vec<Batch>> = [0, 2, 3]
            .iter()
            .map(|&i| net.replica_ref(i).unwrap().committed().to_vec())
            .collect();
        let shortest = logs.iter().map(Vec::len).min().unwrap();
        assert!(shortest > 1, "seed {seed}: slots {shortest}");
        for log in &logs[1..] {
            assert_eq!(log[..shortest], logs[0][..shortest], "seed {seed}: split");
        }
        let detected: u64 = [0, 2, 3]
            .iter()
            .map(|&i| net.replica_ref(i).unwrap().stats.misbehaviour)
            .sum();
        assert!(detected > 0, "seed {seed}: the equivocation went unnoticed");
    }
}

/// A replica in slot 1 that voted there (ballot 5), and one that did not,
/// each given a 1c for slot 1 in ballot 9 whose proofs are the 1bs of
/// ballot 9's phase 1 in slot 0 (validly signed by r1, r2, r3). The one
/// that voted must refuse it; the other relays it. Returns (whether the
/// voter relayed, whether the other relayed).
fn reused_proofs_run() -> (bool, bool) {
    let group = Group::new((0..4).map(|i| format!("r{i}")).collect()).unwrap();
    let keys = sim_keys(4);
    let public: Vec<_> = keys.iter().map(|k| k.public()).collect();
    let ballot = 9; // led by r1 (9 mod 4)
    let proofs: Vec<SignedOneB> = (1..4)
        .map(|a| {
            let body = OneB {
                acceptor: a,
                slot: 0,
                ballot,
                voted: None,
                reported: vec![],
            };
            let bytes = body.signed_bytes();
            let signature = keys[a].sign(&bytes);
            SignedOneB {
                body,
                bytes,
                signature,
            }
        })
        .collect();
    let value = Batch {
        requests: vec![request(3, 1, "P,reused,1")].into(),
    };
    let one_c = PeerMsg::OneC {
        slot: 1,
        ballot,
        value,
        proofs,
    };
    let slot_0 = Record::Committed {
        slot: 0,
        value: Batch {
            requests: vec![request(3, 0, "P,zero,0")].into(),
        },
        proof: None,
    };
    let relays = |records: Vec<Record>| {
        let mut r = Replica::new(
            Config {
                group: group.clone(),
                me: 0,
                key: keys[0].clone(),
                keys: public.clone(),
                seed: 0,
            },
            records,
        );
        assert_eq!(r.slot(), 1);
        r.on_peer(1, one_c.clone());
        let out = r.take_output();
        out.sends
            .iter()
            .any(|(_, m)| matches!(m, PeerMsg::TwoAv { slot: 1, .. }))
    };
    let voted = Record::Voted {
        slot: 1,
        ballot: 5,
        digest: [7; 20],
    };
    (relays(vec![slot_0.clone(), voted]), relays(vec![slot_0]))
}

#[test]
fn proofs_from_an_earlier_slot_are_refused_where_the_acceptor_voted() {
    assert_eq!(reused_proofs_run(), (false, true));
    // Broken variant: the acceptor does not look at its own vote.
    assert_eq!(
        bugs::with("bpcon.reused-proofs-past-a-vote", reused_proofs_run),
        (true, true),
        "the test cannot tell an acceptor that ignores its vote"
    );
}
