//! Where a replica's durable records go: behind a small trait, so the node
//! runs the same on a real disk (the fsync'd [`Wal`]) and in the simulator
//! ([`MemStorage`], whose contents outlive a simulated crash).

use super::wal::{Record, Wal};
use std::cell::RefCell;
use std::rc::Rc;

/// Durable storage for a replica's records. `append` returns only once the
/// records would survive a crash: the node sends nothing that depends on
/// them before.
pub trait Storage {
    fn append(&mut self, records: &[Record]) -> Result<(), String>;
}

impl Storage for Wal {
    fn append(&mut self, records: &[Record]) -> Result<(), String> {
        Wal::append(self, records)
    }
}

/// Records kept in memory, shared between a simulated node's incarnations:
/// the simulator's crash drops the node (its memory) but not this, and the
/// restart's factory hands a clone of it to the new incarnation.
#[derive(Debug, Clone, Default)]
pub struct MemStorage(Rc<RefCell<Vec<Record>>>);

impl MemStorage {
    pub fn new() -> MemStorage {
        MemStorage::default()
    }

    /// Everything appended so far, for a restarted replica to read back.
    pub fn records(&self) -> Vec<Record> {
        self.0.borrow().clone()
    }

    pub fn len(&self) -> usize {
        self.0.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Storage for MemStorage {
    fn append(&mut self, records: &[Record]) -> Result<(), String> {
        self.0.borrow_mut().extend_from_slice(records);
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
        drop(first); // the crash
        assert_eq!(disk.records(), vec![Record::Promise { slot: 0, ballot: 4 }]);
    }
}
