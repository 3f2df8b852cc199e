//! A replica's answer to `state`: what scenarios (`testcases/paxos`), the
//! fuzzer's checks, `tests/bpcon.rs` and `peerloop bench bpcon` read. The
//! field names are the contract; the JSON is printed with its keys in
//! alphabetical order (`serde_json` without `preserve_order`), as it was
//! when it was built by hand with `json!`.

use serde::Serialize;
use std::collections::BTreeMap;

/// The replica state machine's part: agreement, the store, counters.
#[derive(Debug, Clone, Serialize)]
pub struct ReplicaState {
    pub id: String,
    pub n: usize,
    pub f: usize,
    pub quorum: usize,
    /// The slot the replica works on (slots below it are decided).
    pub slots: u64,
    /// Operations committed (the log's length).
    pub committed: usize,
    /// SHA-1 of the committed log, in hex: equal logs, equal digests.
    pub log_digest: String,
    pub store: BTreeMap<String, String>,
    /// The committed operations as `P,key,value` / `D,key,`, in order.
    pub log: Vec<String>,
    /// Client requests waiting for a slot.
    pub pending: usize,
    /// The highest ballot promised in the current slot.
    pub max_ballot: Option<u64>,
    pub signs: u64,
    pub verifies: u64,
    pub sign_us: u64,
    pub verify_us: u64,
    pub ballots: u64,
    pub forged_rejected: u64,
    pub rejected: u64,
    pub misbehaviour_detected: u64,
    /// The latest decided slot whose decision certificate this replica
    /// holds (its votes' signatures come after the decision: until then
    /// the latest slots have none).
    pub certified: Option<u64>,
}

/// The whole `state` line: the replica's part and the node's.
#[derive(Debug, Clone, Serialize)]
pub struct State {
    #[serde(flatten)]
    pub replica: ReplicaState,
    /// Time in fsync of the write-ahead log (µs since start).
    pub fsync_us: u64,
    /// Time handling input and timers, fsync included (µs since start).
    pub busy_us: u64,
    pub uptime_us: u64,
    /// The replicas this one has an authenticated link to, in group order.
    pub links: Vec<String>,
    /// The misbehaviour this replica was started with (`--byzantine`), if any.
    pub byzantine: Option<&'static str>,
}

impl ReplicaState {
    /// As a JSON value (keys sorted).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("a replica state is always JSON")
    }
}

impl State {
    /// As a JSON value (keys sorted).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("a replica state is always JSON")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(byzantine: Option<&'static str>, max_ballot: Option<u64>) -> State {
        State {
            replica: ReplicaState {
                id: "B".into(),
                n: 4,
                f: 1,
                quorum: 3,
                slots: 7,
                committed: 2,
                log_digest: "00ff".into(),
                store: [("k".to_string(), "v \"q\"".to_string())].into(),
                log: vec!["P,k,v".into(), "D,old,".into()],
                pending: 1,
                max_ballot,
                signs: 11,
                verifies: 12,
                sign_us: 13,
                verify_us: 14,
                ballots: 15,
                forged_rejected: 16,
                rejected: 17,
                misbehaviour_detected: 18,
                certified: Some(6),
            },
            fsync_us: 19,
            busy_us: 20,
            uptime_us: 21,
            links: vec!["A".into(), "C".into()],
            byzantine,
        }
    }

    /// The line as the replica and the node built it by hand before the
    /// struct: `json!` for the replica's part, five keys set by the node.
    fn by_hand(s: &State) -> String {
        let r = &s.replica;
        let store: serde_json::Map<String, serde_json::Value> = r
            .store
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        let mut state = serde_json::json!({
            "id": r.id,
            "n": r.n,
            "f": r.f,
            "quorum": r.quorum,
            "slots": r.slots,
            "committed": r.committed,
            "log_digest": r.log_digest,
            "store": store,
            "log": r.log,
            "pending": r.pending,
            "max_ballot": r.max_ballot,
            "signs": r.signs,
            "verifies": r.verifies,
            "sign_us": r.sign_us,
            "verify_us": r.verify_us,
            "ballots": r.ballots,
            "forged_rejected": r.forged_rejected,
            "rejected": r.rejected,
            "misbehaviour_detected": r.misbehaviour_detected,
            "certified": r.certified,
        });
        state["fsync_us"] = s.fsync_us.into();
        state["busy_us"] = s.busy_us.into();
        state["uptime_us"] = s.uptime_us.into();
        state["links"] = serde_json::json!(s.links);
        state["byzantine"] = s.byzantine.into();
        state.to_string()
    }

    #[test]
    fn the_state_json_is_the_checked_contract() {
        let s = sample(Some("forge"), Some(9));
        assert_eq!(
            s.to_json().to_string(),
            concat!(
                r#"{"ballots":15,"busy_us":20,"byzantine":"forge","certified":6,"committed":2,"#,
                r#""f":1,"forged_rejected":16,"fsync_us":19,"id":"B","#,
                r#""links":["A","C"],"log":["P,k,v","D,old,"],"log_digest":"00ff","#,
                r#""max_ballot":9,"misbehaviour_detected":18,"n":4,"pending":1,"#,
                r#""quorum":3,"rejected":17,"sign_us":13,"signs":11,"slots":7,"#,
                r#""store":{"k":"v \"q\""},"uptime_us":21,"verifies":12,"verify_us":14}"#
            )
        );
        for s in [s, sample(None, None), sample(Some("lie"), Some(u64::MAX))] {
            assert_eq!(s.to_json().to_string(), by_hand(&s));
        }
        let none = sample(None, None).to_json();
        assert!(none["byzantine"].is_null() && none["max_ballot"].is_null());
    }
}
