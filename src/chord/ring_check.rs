//! Checks a set of node states (the `state` JSON) against the ring sorted
//! by ID: used by the tests, the scenario runner and the benchmark.

use super::id::{Id, ID_BITS};
use serde_json::Value;

fn id_of(state: &Value, field: &str) -> Option<Id> {
    Id::from_hex(state.get(field)?.as_str()?).ok()
}

/// The owner of `target` among sorted `ids`: the first at or after it
/// (a binary search: the 10 000-node simulation checks 160 fingers a node).
pub fn successor_of(ids: &[Id], target: &Id) -> Id {
    let at = ids.partition_point(|id| id < target);
    *ids.get(at).unwrap_or(&ids[0])
}

/// Every node's successor and predecessor match the sorted ring.
pub fn check_ring(states: &[Value]) -> Result<(), String> {
    let mut ids: Vec<Id> = states
        .iter()
        .map(|s| id_of(s, "id").ok_or_else(|| format!("a state without an id: {s}")))
        .collect::<Result<_, _>>()?;
    ids.sort();
    let n = ids.len();
    let mut problems = Vec::new();
    for state in states {
        let me = id_of(state, "id").expect("checked above");
        let at = ids.binary_search(&me).expect("present");
        let want_succ = ids[(at + 1) % n];
        let want_pred = ids[(at + n - 1) % n];
        let succ = id_of(state, "successor");
        let pred = id_of(state, "predecessor");
        if n == 1 {
            if succ != Some(me) {
                problems.push(format!("{me}: alone but successor {succ:?}"));
            }
            continue;
        }
        if succ != Some(want_succ) {
            problems.push(format!("{me}: successor {succ:?}, want {want_succ}"));
        }
        if pred != Some(want_pred) {
            problems.push(format!("{me}: predecessor {pred:?}, want {want_pred}"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} of {n} nodes wrong: {}",
            problems.len(),
            problems.join("; ")
        ))
    }
}

/// Every node's successor list holds the next `successor_list_length`
/// nodes of the sorted ring (fewer in a smaller ring).
pub fn check_successor_lists(states: &[Value]) -> Result<(), String> {
    let mut ids: Vec<Id> = states.iter().filter_map(|s| id_of(s, "id")).collect();
    ids.sort();
    let n = ids.len();
    for state in states {
        let me = id_of(state, "id").ok_or("a state without an id")?;
        let at = ids.binary_search(&me).expect("present");
        let length = state["successor_list_length"].as_u64().unwrap_or(1) as usize;
        let want: Vec<Id> = (1..=length.min(n - 1)).map(|i| ids[(at + i) % n]).collect();
        let shown: Vec<Id> = state["successors"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| Id::from_hex(s["id"].as_str()?).ok())
                    .collect()
            })
            .unwrap_or_default();
        if shown != want {
            return Err(format!("{me}: successor list {shown:?}, want {want:?}"));
        }
    }
    Ok(())
}

/// Successors, predecessors and successor lists all right: stabilized.
pub fn check_stable(states: &[Value]) -> Result<(), String> {
    check_ring(states)?;
    check_successor_lists(states)
}

/// The finger runs (first bit, node) a node should show for this ring.
pub fn ideal_fingers(ids: &[Id], me: &Id) -> Vec<(usize, Id)> {
    let mut runs: Vec<(usize, Id)> = Vec::new();
    for bit in 0..ID_BITS {
        let owner = successor_of(ids, &me.add_pow2(bit));
        if owner == *me {
            break;
        }
        if runs.last().is_none_or(|(_, last)| *last != owner) {
            runs.push((bit, owner));
        }
    }
    runs
}

/// Every node's finger table is exactly right.
pub fn check_fingers(states: &[Value]) -> Result<(), String> {
    let mut ids: Vec<Id> = states.iter().filter_map(|s| id_of(s, "id")).collect();
    ids.sort();
    let mut wrong = 0;
    let mut first = String::new();
    for state in states {
        let me = id_of(state, "id").ok_or("a state without an id")?;
        let shown: Vec<(usize, Id)> = state["fingers"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|f| {
                        Some((
                            f["bit"].as_u64()? as usize,
                            Id::from_hex(f["id"].as_str()?).ok()?,
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        if shown != ideal_fingers(&ids, &me) {
            wrong += 1;
            if first.is_empty() {
                first = format!(
                    "{me}: fingers {shown:?}, want {:?}",
                    ideal_fingers(&ids, &me)
                );
            }
        }
    }
    if wrong == 0 {
        Ok(())
    } else {
        Err(format!("{wrong} nodes with wrong fingers, e.g. {first}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_right_ring_passes_and_a_wrong_one_is_named() {
        let a = "10".to_string();
        let b = "80".to_string();
        let c = "c0".to_string();
        let good = vec![
            json!({"id": a, "successor": b, "predecessor": c}),
            json!({"id": b, "successor": c, "predecessor": a}),
            json!({"id": c, "successor": a, "predecessor": b}),
        ];
        assert!(check_ring(&good).is_ok());
        let mut bad = good.clone();
        bad[0]["successor"] = json!(c);
        assert!(check_ring(&bad).unwrap_err().contains("successor"));
    }

    #[test]
    fn ideal_fingers_stop_where_the_ring_wraps() {
        let ids = vec![Id::from_hex("0").unwrap(), Id::from_hex("8").unwrap()];
        let runs = ideal_fingers(&ids, &ids[0]);
        assert_eq!(runs, vec![(0, ids[1])]);
    }
}
