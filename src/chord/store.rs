//! The key-value pairs a node holds (its own and replicas), with TTL expiry
//! and limits on what others can make it keep. Each value carries its
//! version stamp (see `version.rs`); a merge keeps the newest.

use super::api_wire::Key;
use super::id::Id;
use super::version;
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

pub const MAX_ITEMS: usize = 200_000;
pub const MAX_BYTES: usize = 256 << 20;

#[derive(Debug, Clone)]
pub struct Item {
    /// Where the key sits on the ring (SHA-1 of the 32-byte key), kept to
    /// avoid rehashing on every range scan.
    pub ring_id: Id,
    pub value: Vec<u8>,
    /// The version stamp the key's owner gave this value.
    pub stamp: u64,
    pub expires: Instant,
}

/// What a merge did.
#[derive(Debug, PartialEq, Eq)]
pub enum Merge {
    /// The value is the one held now (new, newer, or the same one again).
    Stored,
    /// A newer value was held already; it stays.
    Older,
    /// The key is new and the store is full: refused.
    Full,
}

#[derive(Debug, Default)]
pub struct Store {
    items: BTreeMap<Key, Item>,
    bytes: usize,
}

impl Store {
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Merge `value`, stamped `stamp`, under `key` for `ttl` from `now`:
    /// kept unless a newer version is held (an expired one does not count).
    /// The same version again keeps the later expiry.
    pub fn merge(
        &mut self,
        key: Key,
        value: Vec<u8>,
        stamp: u64,
        ttl: Duration,
        now: Instant,
    ) -> Merge {
        let expires = now + ttl;
        // The bug versions fixed: the last copy to arrive won, however old.
        let unversioned = crate::sim::bugs::seeded("chord.unversioned-overwrite");
        if let Some(held) = self
            .items
            .get_mut(&key)
            .filter(|i| i.expires > now && !unversioned)
        {
            match version::compare(stamp, &value, held.stamp, &held.value) {
                Ordering::Less => return Merge::Older,
                Ordering::Equal => {
                    held.expires = held.expires.max(expires);
                    return Merge::Stored;
                }
                Ordering::Greater => {}
            }
        }
        let size = value.len() + 32;
        let old = self.items.get(&key).map_or(0, |item| item.value.len() + 32);
        if old == 0 && (self.items.len() >= MAX_ITEMS || self.bytes + size > MAX_BYTES) {
            return Merge::Full;
        }
        self.bytes = self.bytes + size - old;
        self.items.insert(
            key,
            Item {
                ring_id: Id::hash(&key),
                value,
                stamp,
                expires,
            },
        );
        Merge::Stored
    }

    /// The stamp of the live value held under `key`.
    pub fn stamp(&self, key: &Key, now: Instant) -> Option<u64> {
        self.get(key, now).map(|item| item.stamp)
    }

    pub fn get(&self, key: &Key, now: Instant) -> Option<&Item> {
        self.items.get(key).filter(|item| item.expires > now)
    }

    pub fn remove(&mut self, key: &Key) -> Option<Item> {
        let item = self.items.remove(key)?;
        self.bytes -= item.value.len() + 32;
        Some(item)
    }

    /// Drop what has expired; returns how many went.
    pub fn expire(&mut self, now: Instant) -> usize {
        let dead: Vec<Key> = self
            .items
            .iter()
            .filter(|(_, item)| item.expires <= now)
            .map(|(key, _)| *key)
            .collect();
        for key in &dead {
            self.remove(key);
        }
        dead.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Key, &Item)> {
        self.items.iter()
    }

    /// Keys whose ring position satisfies `keep`.
    pub fn keys_where(&self, keep: impl Fn(&Id) -> bool) -> Vec<Key> {
        self.items
            .iter()
            .filter(|(_, item)| keep(&item.ring_id))
            .map(|(key, _)| *key)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_expire_with_their_ttl() {
        let now = Instant::now();
        let mut store = Store::default();
        let put = store.merge([1; 32], b"a".to_vec(), 1, Duration::from_secs(5), now);
        assert_eq!(put, Merge::Stored);
        assert!(store.get(&[1; 32], now).is_some());
        assert!(store.get(&[1; 32], now + Duration::from_secs(6)).is_none());
        assert_eq!(store.expire(now + Duration::from_secs(6)), 1);
        assert!(store.is_empty());
        assert_eq!(store.bytes, 0);
    }

    #[test]
    fn replacing_a_value_keeps_the_byte_count_right() {
        let now = Instant::now();
        let mut store = Store::default();
        store.merge([1; 32], vec![0; 10], 1, Duration::from_secs(5), now);
        store.merge([1; 32], vec![0; 3], 2, Duration::from_secs(5), now);
        assert_eq!(store.bytes, 35);
        store.remove(&[1; 32]);
        assert_eq!(store.bytes, 0);
    }

    #[test]
    fn a_merge_keeps_the_newest_whatever_the_order() {
        let now = Instant::now();
        let ttl = Duration::from_secs(5);
        let versions: [(u64, &[u8]); 4] = [(3, b"c"), (1, b"a"), (3, b"b"), (2, b"z")];
        // Every arrival order ends with the same value: stamp 3, bytes "c".
        for rot in 0..versions.len() {
            let mut store = Store::default();
            for i in 0..versions.len() {
                let (stamp, value) = versions[(i + rot) % versions.len()];
                store.merge([1; 32], value.to_vec(), stamp, ttl, now);
            }
            let item = store.get(&[1; 32], now).unwrap();
            assert_eq!((item.stamp, item.value.as_slice()), (3, &b"c"[..]));
        }
    }

    #[test]
    fn an_older_copy_is_refused_and_the_same_one_extends_its_life() {
        let now = Instant::now();
        let mut store = Store::default();
        let short = Duration::from_secs(5);
        let long = Duration::from_secs(50);
        assert_eq!(
            store.merge([1; 32], b"new".to_vec(), 9, short, now),
            Merge::Stored
        );
        assert_eq!(
            store.merge([1; 32], b"old".to_vec(), 8, long, now),
            Merge::Older
        );
        assert_eq!(store.get(&[1; 32], now).unwrap().value, b"new");
        assert_eq!(
            store.merge([1; 32], b"new".to_vec(), 9, long, now),
            Merge::Stored
        );
        assert!(store.get(&[1; 32], now + Duration::from_secs(10)).is_some());
        assert_eq!(store.bytes, 35);
    }

    #[test]
    fn an_expired_value_does_not_block_an_older_stamp() {
        let now = Instant::now();
        let mut store = Store::default();
        store.merge([1; 32], b"gone".to_vec(), 9, Duration::from_secs(1), now);
        let later = now + Duration::from_secs(2);
        let again = store.merge([1; 32], b"back".to_vec(), 4, Duration::from_secs(5), later);
        assert_eq!(again, Merge::Stored);
        assert_eq!(store.get(&[1; 32], later).unwrap().value, b"back");
    }
}
