//! Versioned values in a simulated ring: a GET answers the newest copy, a
//! stale copy never overwrites a newer PUT, stale holders are repaired, and
//! a peer's stamps are bounded.

use super::api_wire::{text_key, Key};
use super::id::Id;
use super::peer_wire::{PeerMsg, StoreMsg, STORE_AS_OWNER};
use super::sim_ring::{addr_of, Ring, SIM_UNIX_MS};
use super::store::Merge;
use super::version::MAX_AHEAD;
use std::time::Duration;

/// A ring of 3 (smaller than the successor list of 4: every node holds
/// every key with 3 copies), exact.
fn ring3() -> Ring {
    let mut ring = Ring::new(5, 4, 3);
    ring.add(None);
    for _ in 1..3 {
        ring.add(Some(0));
        ring.run_for(Duration::from_millis(200));
    }
    for _ in 0..300 {
        if ring.ring_exact().is_ok() {
            break;
        }
        ring.run_for(Duration::from_millis(100));
    }
    ring.ring_exact().unwrap();
    // Replica sets settle on a slower beat than the ring.
    ring.run_for(Duration::from_secs(4));
    ring
}

fn owner_of(ring: &mut Ring, key: &Key) -> usize {
    let id = Id::hash(key);
    (0..3)
        .find(|i| ring.node(*i).routing().owns(&id))
        .expect("an owner")
}

/// What node `i` holds for `key`: (stamp, value).
fn held(ring: &mut Ring, i: usize, key: &Key) -> Option<(u64, Vec<u8>)> {
    let now = ring.now();
    let item = ring.node(i).store().get(key, now)?;
    Some((item.stamp, item.value.clone()))
}

/// The wall clock of the simulated nodes, in Unix ms.
fn wall_ms(ring: &Ring) -> u64 {
    SIM_UNIX_MS + ring.world.now().as_millis() as u64
}

/// A peer's raw STORE to node `i`'s peer port; returns the test connection.
fn forge_store(
    ring: &mut Ring,
    i: usize,
    flags: u8,
    stamp: u64,
    key: Key,
    value: &[u8],
) -> crate::sim::ExtId {
    let peer = ring.world.ext_connect(addr_of(i));
    let mut bytes = Vec::new();
    PeerMsg::Store(StoreMsg {
        req: 0,
        flags,
        hops_left: 0,
        ttl_ms: 3_600_000,
        stamp,
        key,
        value: value.to_vec(),
    })
    .write(&mut bytes)
    .unwrap();
    ring.world.ext_send(peer, &bytes);
    ring.settle();
    peer
}

#[test]
fn a_get_answers_the_newest_copy_even_when_the_owner_holds_an_older_one() {
    let mut ring = ring3();
    let key = text_key("colour");
    ring.put(0, key, b"red");
    let (old_stamp, _) = held(&mut ring, 0, &key).unwrap();
    ring.run_for(Duration::from_millis(20));
    ring.put(1, key, b"blue");
    let owner = owner_of(&mut ring, &key);
    // The owner missed the second PUT (as after a partition): it holds red.
    let now = ring.now();
    let store = ring.node(owner).store_mut();
    store.remove(&key);
    let back = store.merge(
        key,
        b"red".to_vec(),
        old_stamp,
        Duration::from_secs(60),
        now,
    );
    assert_eq!(back, Merge::Stored);
    for via in 0..3 {
        assert_eq!(
            ring.get(via, key).as_deref(),
            Some(&b"blue"[..]),
            "GET via n{via}"
        );
    }
    // The owner's next push of its copy meets newer ones: it is repaired.
    ring.run_for(Duration::from_secs(5));
    assert_eq!(held(&mut ring, owner, &key).unwrap().1, b"blue");
}

#[test]
fn a_stale_copy_from_a_peer_never_overwrites_a_newer_put() {
    let mut ring = ring3();
    let key = text_key("colour");
    ring.put(0, key, b"red");
    let (red_stamp, _) = held(&mut ring, 0, &key).unwrap();
    ring.run_for(Duration::from_millis(20));
    ring.put(2, key, b"blue");
    let (blue_stamp, _) = held(&mut ring, 0, &key).unwrap();
    assert!(blue_stamp > red_stamp);
    // An old copy replayed, as a replica copy and as an owner-store.
    for i in 0..3 {
        let peer = forge_store(&mut ring, i, 0, red_stamp, key, b"red");
        // The sender was behind: it is sent the newer copy back.
        let back = ring.world.ext_take(peer);
        let frame = crate::wire::split_frame(&back).unwrap().expect("a repair");
        match PeerMsg::decode(frame.kind, frame.body).unwrap() {
            PeerMsg::Store(StoreMsg { stamp, value, .. }) => {
                assert_eq!((stamp, value.as_slice()), (blue_stamp, &b"blue"[..]))
            }
            other => panic!("{other:?}"),
        }
        forge_store(&mut ring, i, STORE_AS_OWNER, red_stamp, key, b"red");
    }
    ring.run_for(Duration::from_secs(5));
    for i in 0..3 {
        assert_eq!(
            held(&mut ring, i, &key).unwrap(),
            (blue_stamp, b"blue".to_vec()),
            "n{i}"
        );
        assert_eq!(ring.get(i, key).as_deref(), Some(&b"blue"[..]));
    }
}

#[test]
fn a_peer_cannot_pin_a_key_with_a_stamp_from_the_future() {
    let mut ring = ring3();
    let key = text_key("colour");
    ring.put(0, key, b"red");
    let ahead = MAX_AHEAD.as_millis() as u64;
    // Past the bound: refused everywhere, and the clocks do not move.
    for i in 0..3 {
        let far = wall_ms(&ring) + ahead + 1_000;
        forge_store(&mut ring, i, 0, far, key, b"pinned");
        forge_store(&mut ring, i, STORE_AS_OWNER, far, key, b"pinned");
        forge_store(&mut ring, i, 0, u64::MAX, key, b"pinned");
    }
    for i in 0..3 {
        assert_eq!(held(&mut ring, i, &key).unwrap().1, b"red", "n{i}");
        assert!(ring.node(i).dht().last_stamp() < wall_ms(&ring) + 1_000);
    }
    // Within the bound a forged stamp is taken, but the owner stamps the
    // next PUT above what it holds: that PUT still wins at once.
    for i in 0..3 {
        let near = wall_ms(&ring) + ahead - 1_000;
        forge_store(&mut ring, i, 0, near, key, b"pinned");
    }
    ring.put(1, key, b"blue");
    ring.run_for(Duration::from_secs(1));
    for i in 0..3 {
        assert_eq!(held(&mut ring, i, &key).unwrap().1, b"blue", "n{i}");
        assert_eq!(ring.get(i, key).as_deref(), Some(&b"blue"[..]));
    }
}

#[test]
fn a_copy_without_a_version_is_refused() {
    let mut ring = ring3();
    let key = text_key("fresh");
    for i in 0..3 {
        forge_store(&mut ring, i, 0, 0, key, b"unversioned");
        assert!(held(&mut ring, i, &key).is_none());
    }
}

#[test]
fn a_flood_of_stale_copies_gets_a_bounded_number_of_repairs() {
    let mut ring = ring3();
    let key = text_key("big");
    ring.put(0, key, &vec![7; 60_000]);
    let (stamp, _) = held(&mut ring, 0, &key).unwrap();
    let peer = ring.world.ext_connect(addr_of(0));
    let mut bytes = Vec::new();
    for _ in 0..2_000 {
        PeerMsg::Store(StoreMsg {
            req: 0,
            flags: 0,
            hops_left: 0,
            ttl_ms: 3_600_000,
            stamp: stamp - 1,
            key,
            value: vec![],
        })
        .write(&mut bytes)
        .unwrap();
    }
    // All in one delivery: within one tick.
    ring.world.ext_send(peer, &bytes);
    ring.settle();
    let back = ring.world.ext_take(peer);
    let repairs = back.len() / 60_000;
    assert!(
        (1..=super::dht::MAX_REPAIRS_PER_TICK).contains(&repairs),
        "{repairs} repairs for 2,000 stale copies"
    );
    assert_eq!(held(&mut ring, 0, &key).unwrap().0, stamp);
}
