//! Where a replica's durable records go: behind a small trait, so the node
//! runs the same on a real disk (the fsync'd [`Wal`]) and in the simulator
//! ([`MemStorage`], whose contents outlive a simulated crash).

use super::wal::{Record, Wal};
use std::cell::RefCell;
use std::rc::Rc;

/// Durable storage for a replica's records. `append` writes them in order;
/// they may be lost in a crash until `sync` returns, which makes them (and
/// every one appended before) survive one: the node sends nothing that
/// depends on them before.
pub trait Storage {
    fn append(&mut self, records: &[Record]) -> Result<(), String>;
    /// Wait until every record appended so far would survive a crash.
    fn sync(&mut self) -> Result<(), String>;
}

impl Storage for Wal {
    fn append(&mut self, records: &[Record]) -> Result<(), String> {
        Wal::append(self, records)
    }

    fn sync(&mut self) -> Result<(), String> {
        Wal::sync(self)
    }
}

/// Records kept in memory, shared between a simulated node's incarnations:
/// the simulator's crash drops the node (its memory) but not this, and the
/// restart's factory hands a clone of it to the new incarnation. Records
/// appended stay pending until the next `sync`, and a restart does not see
/// them (as a crash before the fsync would lose them).
#[derive(Debug, Clone, Default)]
pub struct MemStorage(Rc<RefCell<MemDisk>>);

#[derive(Debug, Default)]
pub struct MemDisk {
    synced: Vec<Record>,
    pending: Vec<Record>,
}

impl MemStorage {
    pub fn new() -> MemStorage {
        MemStorage::default()
    }

    /// Everything that survived (was synced), for a restarted replica to
    /// read back. Called at a restart: what was pending is lost then.
    pub fn records(&self) -> Vec<Record> {
        let mut disk = self.0.borrow_mut();
        disk.pending.clear();
        disk.synced.clone()
    }

    /// Records on the disk, synced or not.
    pub fn len(&self) -> usize {
        let disk = self.0.borrow();
        disk.synced.len() + disk.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Storage for MemStorage {
    fn append(&mut self, records: &[Record]) -> Result<(), String> {
        self.0.borrow_mut().pending.extend_from_slice(records);
        Ok(())
    }

    fn sync(&mut self) -> Result<(), String> {
        let mut disk = self.0.borrow_mut();
        let pending = std::mem::take(&mut disk.pending);
        disk.synced.extend(pending);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_storage_is_shared_between_incarnations() {
        let disk = MemStorage::new();
        let mut first: Box<dyn Storage> = Box::new(disk.clone());
        first
            .append(&[Record::Promise { slot: 0, ballot: 4 }])
            .unwrap();
        first.sync().unwrap();
        first
            .append(&[Record::Promise { slot: 0, ballot: 5 }])
            .unwrap();
        drop(first); // the crash: the unsynced record is lost
        assert_eq!(disk.records(), vec![Record::Promise { slot: 0, ballot: 4 }]);
        assert_eq!(disk.len(), 1);
    }
}
