//! What a node knows about items: the content digests it has seen (for
//! duplicate suppression, kept longer than the items themselves), the items
//! it holds (at most `cache_size`, oldest dropped first), and the message IDs
//! of the items waiting for a module's verdict.

use crate::reactor::ConnId;
use sha1::{Digest as _, Sha1};
use std::collections::{BTreeMap, VecDeque};

/// An item's identity: SHA-1 of its data type and data.
pub type Digest = [u8; 20];

pub fn digest(data_type: u16, data: &[u8]) -> Digest {
    let mut hasher = Sha1::new();
    hasher.update(data_type.to_be_bytes());
    hasher.update(data);
    hasher.finalize().into()
}

/// Short hex form of a digest for logs and state.
pub fn short(digest: &Digest) -> String {
    crate::util::hex(&digest[..4])
}

/// Where an item stands at this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Announced by a local module: spread without asking.
    Local,
    /// Modules were notified; no verdict yet.
    Awaiting,
    Valid,
    Invalid,
    /// Arrived while no module was subscribed to its type: not forwarded.
    Unsubscribed,
    /// Dropped from the cache before any verdict came.
    Expired,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Local => "local",
            Verdict::Awaiting => "awaiting",
            Verdict::Valid => "valid",
            Verdict::Invalid => "invalid",
            Verdict::Unsubscribed => "unsubscribed",
            Verdict::Expired => "expired",
        }
    }
}

/// What is remembered of every item seen (no data).
#[derive(Debug, Clone)]
pub struct Record {
    pub data_type: u16,
    /// The data as text, cut short, for the state output.
    pub preview: String,
    pub verdict: Verdict,
    /// Times this node sent the item on to its peers (one round each).
    pub forwards: u32,
    /// Copies received from peers.
    pub copies: u32,
}

impl Record {
    pub fn new(data_type: u16, data: &[u8], verdict: Verdict) -> Self {
        const PREVIEW: usize = 64;
        let cut = &data[..data.len().min(PREVIEW)];
        Record {
            data_type,
            preview: String::from_utf8_lossy(cut).into_owned(),
            verdict,
            forwards: 0,
            copies: 0,
        }
    }
}

/// An item held for spreading.
#[derive(Debug, Clone)]
pub struct Held {
    pub digest: Digest,
    pub ttl: u8,
    pub data_type: u16,
    pub data: Vec<u8>,
    /// The message ID its notification carried, while a verdict is awaited.
    pub msg_id: Option<u16>,
    /// Peers that sent it to us: it is not sent back to them.
    pub from: Vec<ConnId>,
}

pub struct ItemStore {
    records: BTreeMap<Digest, Record>,
    record_order: VecDeque<Digest>,
    record_limit: usize,
    held: VecDeque<Held>,
    cache_size: usize,
    awaiting: BTreeMap<u16, Digest>,
    next_id: u16,
}

impl ItemStore {
    /// Holds at most `cache_size` items; remembers the digests of many more
    /// so that an item circling back after leaving the cache still dies.
    pub fn new(cache_size: usize) -> Self {
        let cache_size = cache_size.clamp(1, u16::MAX as usize);
        ItemStore {
            records: BTreeMap::new(),
            record_order: VecDeque::new(),
            record_limit: (cache_size * 16).max(4096),
            held: VecDeque::new(),
            cache_size,
            awaiting: BTreeMap::new(),
            next_id: 0,
        }
    }

    pub fn record(&self, digest: &Digest) -> Option<&Record> {
        self.records.get(digest)
    }

    pub fn record_mut(&mut self, digest: &Digest) -> Option<&mut Record> {
        self.records.get_mut(digest)
    }

    /// Remember a new item; the oldest record goes when there are too many.
    pub fn remember(&mut self, digest: Digest, record: Record) {
        if self.records.insert(digest, record).is_none() {
            self.record_order.push_back(digest);
        }
        while self.record_order.len() > self.record_limit {
            if let Some(old) = self.record_order.pop_front() {
                self.records.remove(&old);
            }
        }
    }

    /// Hold an item; returns the one pushed out of a full cache.
    pub fn hold(&mut self, item: Held) -> Option<Held> {
        if let Some(id) = item.msg_id {
            self.awaiting.insert(id, item.digest);
        }
        self.held.push_back(item);
        if self.held.len() <= self.cache_size {
            return None;
        }
        let old = self.held.pop_front()?;
        if let Some(id) = old.msg_id {
            self.awaiting.remove(&id);
            if let Some(record) = self.records.get_mut(&old.digest) {
                if record.verdict == Verdict::Awaiting {
                    record.verdict = Verdict::Expired;
                }
            }
        }
        Some(old)
    }

    pub fn held_count(&self) -> usize {
        self.held.len()
    }

    pub fn awaiting_count(&self) -> usize {
        self.awaiting.len()
    }

    /// A message ID no item awaiting a verdict uses.
    pub fn allocate_id(&mut self) -> Option<u16> {
        if self.awaiting.len() > u16::MAX as usize {
            return None;
        }
        loop {
            let id = self.next_id;
            self.next_id = self.next_id.wrapping_add(1);
            if !self.awaiting.contains_key(&id) {
                return Some(id);
            }
        }
    }

    /// The digest of the item notified as `msg_id`, if still awaited.
    pub fn awaited(&self, msg_id: u16) -> Option<Digest> {
        self.awaiting.get(&msg_id).copied()
    }

    /// Stop waiting for `msg_id`; the held item (if still cached) comes back.
    pub fn settle(&mut self, msg_id: u16) -> Option<&mut Held> {
        let digest = self.awaiting.remove(&msg_id)?;
        let held = self.held.iter_mut().find(|h| h.digest == digest)?;
        held.msg_id = None;
        Some(held)
    }

    pub fn held_mut(&mut self, digest: &Digest) -> Option<&mut Held> {
        self.held.iter_mut().find(|h| &h.digest == digest)
    }

    /// Forget an item's data (an invalid verdict).
    pub fn drop_held(&mut self, digest: &Digest) {
        self.held.retain(|h| &h.digest != digest);
    }

    /// Note that `conn` also sent us this item (so it is not sent back).
    pub fn note_sender(&mut self, digest: &Digest, conn: ConnId) {
        if let Some(held) = self.held.iter_mut().find(|h| &h.digest == digest) {
            if held.msg_id.is_some() && !held.from.contains(&conn) {
                held.from.push(conn);
            }
        }
    }

    /// A connection closed: its id may be reused, so forget it.
    pub fn forget_conn(&mut self, conn: ConnId) {
        for held in &mut self.held {
            held.from.retain(|&c| c != conn);
        }
    }

    /// Records, oldest first.
    pub fn records(&self) -> impl DoubleEndedIterator<Item = (&Digest, &Record)> {
        self.record_order
            .iter()
            .filter_map(|d| self.records.get(d).map(|r| (d, r)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(data: &[u8], msg_id: Option<u16>) -> Held {
        Held {
            digest: digest(1, data),
            ttl: 0,
            data_type: 1,
            data: data.to_vec(),
            msg_id,
            from: vec![],
        }
    }

    #[test]
    fn digests_depend_on_type_and_data() {
        assert_eq!(digest(1, b"a"), digest(1, b"a"));
        assert_ne!(digest(1, b"a"), digest(2, b"a"));
        assert_ne!(digest(1, b"a"), digest(1, b"b"));
    }

    #[test]
    fn the_cache_drops_the_oldest_and_expires_its_wait() {
        let mut store = ItemStore::new(2);
        for (i, data) in [b"a", b"b", b"c"].iter().enumerate() {
            let item = held(*data, Some(i as u16));
            store.remember(item.digest, Record::new(1, *data, Verdict::Awaiting));
            let evicted = store.hold(item);
            assert_eq!(evicted.is_some(), i == 2);
        }
        assert_eq!(store.held_count(), 2);
        assert_eq!(store.awaited(0), None);
        assert_eq!(
            store.record(&digest(1, b"a")).unwrap().verdict,
            Verdict::Expired
        );
        assert!(store.settle(1).is_some());
        assert_eq!(store.awaiting_count(), 1);
    }

    #[test]
    fn message_ids_skip_those_in_use() {
        let mut store = ItemStore::new(10);
        store.next_id = u16::MAX;
        store.hold(held(b"x", Some(0)));
        assert_eq!(store.allocate_id(), Some(u16::MAX));
        assert_eq!(store.allocate_id(), Some(1));
    }

    #[test]
    fn records_are_bounded() {
        let mut store = ItemStore::new(1);
        for i in 0..5000u32 {
            let data = i.to_be_bytes();
            store.remember(digest(1, &data), Record::new(1, &data, Verdict::Valid));
        }
        assert_eq!(store.records().count(), 4096);
        assert!(store.record(&digest(1, &0u32.to_be_bytes())).is_none());
    }
}
