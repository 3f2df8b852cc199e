//! The key-value pairs a node holds (its own and replicas), with TTL expiry
//! and limits on what others can make it keep.

use super::api_wire::Key;
use super::id::Id;
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
    pub expires: Instant,
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

    /// Keep `value` under `key` for `ttl` from `now`. Refused (false) when
    /// the store is full and the key is new.
    pub fn put(&mut self, key: Key, value: Vec<u8>, ttl: Duration, now: Instant) -> bool {
        let size = value.len() + 32;
        let old = self.items.get(&key).map_or(0, |item| item.value.len() + 32);
        if old == 0 && (self.items.len() >= MAX_ITEMS || self.bytes + size > MAX_BYTES) {
            return false;
        }
        self.bytes = self.bytes + size - old;
        self.items.insert(
            key,
            Item {
                ring_id: Id::hash(&key),
                value,
                expires: now + ttl,
            },
        );
        true
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
        assert!(store.put([1; 32], b"a".to_vec(), Duration::from_secs(5), now));
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
        store.put([1; 32], vec![0; 10], Duration::from_secs(5), now);
        store.put([1; 32], vec![0; 3], Duration::from_secs(5), now);
        assert_eq!(store.bytes, 35);
        store.remove(&[1; 32]);
        assert_eq!(store.bytes, 0);
    }
}
