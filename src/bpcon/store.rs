//! The replicated key-value store and the committed sequence of operations.

use super::op::{Batch, Digest, Op, RequestId};
use sha1::{Digest as _, Sha1};
use std::collections::{BTreeMap, HashSet};

#[derive(Debug, Default, Clone)]
pub struct Store {
    pub kv: BTreeMap<String, String>,
    applied: HashSet<RequestId>,
    /// Every operation applied, in order (duplicates skipped).
    pub log: Vec<(RequestId, Op)>,
    /// A hash chain over `log`: equal digests mean equal sequences.
    chain: Digest,
}

impl Store {
    pub fn contains(&self, id: &RequestId) -> bool {
        self.applied.contains(id)
    }

    /// Apply a committed batch. A request id seen before is skipped, so a
    /// request never commits twice even if a leader proposes it again.
    pub fn apply(&mut self, batch: &Batch) -> Vec<RequestId> {
        let mut applied = Vec::new();
        for request in batch.requests.iter() {
            if !self.applied.insert(request.id) {
                continue;
            }
            match &request.op {
                Op::Put { key, value } => {
                    self.kv.insert(key.clone(), value.clone());
                }
                Op::Delete { key } => {
                    self.kv.remove(key);
                }
            }
            // sha1(chain ‖ client ‖ seq ‖ text), fed in parts (no copy).
            let mut link = Sha1::new();
            link.update(self.chain);
            link.update(request.id.client.to_be_bytes());
            link.update(request.id.seq.to_be_bytes());
            for part in request.op.text_parts() {
                link.update(part.as_bytes());
            }
            self.chain = link.finalize().into();
            self.log.push((request.id, request.op.clone()));
            applied.push(request.id);
        }
        applied
    }

    pub fn log_digest(&self) -> Digest {
        self.chain
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bpcon::op::Request;

    fn req(seq: u64, text: &str) -> Request {
        Request {
            id: RequestId { client: 1, seq },
            op: Op::parse(text).unwrap(),
        }
    }

    #[test]
    fn a_request_id_applies_once() {
        let mut store = Store::default();
        let batch = Batch {
            requests: vec![req(1, "P,a,1"), req(2, "P,b,2"), req(1, "P,a,1")].into(),
        };
        assert_eq!(store.apply(&batch).len(), 2);
        assert_eq!(
            store
                .apply(&Batch {
                    requests: vec![req(2, "P,b,2"), req(3, "D,a,")].into()
                })
                .len(),
            1
        );
        assert_eq!(store.kv.len(), 1);
        assert_eq!(store.log.len(), 3);
    }
}
