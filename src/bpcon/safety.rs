//! Which values are safe at a ballot, judged from signed 1b reports: the
//! `KnowsSafeAt` condition of Lamport's BPCon. Both the leader (to choose)
//! and every acceptor (to check the leader's 1c) use it on the same proofs.
//!
//! v is safe at ballot b if, among the reports (one per acceptor),
//!  (a) a quorum reports no vote at all, or
//!  (b) for some c < b, a quorum reports votes at ballots <= c, those at
//!      exactly c being for v, and a weak quorum (f + 1, so at least one
//!      correct replica) reports having relayed v at a ballot >= c.
//!
//! (b) is what makes a lying acceptor harmless: it may invent a vote, but
//! one report is never enough to make its value safe, and its silence
//! cannot hide a chosen value, which a quorum of reports always contains.

use super::group::Group;
use super::messages::OneB;
use super::op::Digest;

/// What the reports allow the leader of `ballot` to propose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// Nothing can have been chosen: any value (the leader's own) is safe.
    Free,
    /// This earlier value is safe and must be proposed.
    Bound(Digest),
    /// Not enough reports yet to show any value safe.
    Unknown,
}

fn no_vote_quorum(group: &Group, reports: &[&OneB]) -> bool {
    reports.iter().filter(|r| r.voted.is_none()).count() >= group.quorum
}

/// Condition (b) for `value` with ballot `c`.
fn bound_at(group: &Group, reports: &[&OneB], c: u64, value: &Digest) -> bool {
    let quorum = reports
        .iter()
        .filter(|r| match r.voted {
            None => true,
            Some((bal, ref v)) => bal < c || (bal == c && v == value),
        })
        .count();
    if quorum < group.quorum {
        return false;
    }
    let weak = reports
        .iter()
        .filter(|r| r.reported.iter().any(|(bal, v)| *bal >= c && v == value))
        .count();
    weak >= group.weak_quorum()
}

/// Is `value` safe at the reports' ballot? (The reports were parsed, so
/// every ballot in them is below theirs.)
pub fn is_safe(group: &Group, reports: &[&OneB], value: &Digest) -> bool {
    if no_vote_quorum(group, reports) {
        return true;
    }
    is_safe_bound(group, reports, value)
}

/// What the leader must propose given these reports. A value reported by
/// earlier ballots wins over the leader's own when it is provably safe.
pub fn choose(group: &Group, reports: &[&OneB]) -> Choice {
    let mut values: Vec<Digest> = reports
        .iter()
        .flat_map(|r| r.reported.iter().map(|(_, v)| *v))
        .collect();
    values.sort_unstable();
    values.dedup();
    // The highest-voted safe value: prefer the one in the latest ballot.
    let mut best: Option<(u64, Digest)> = None;
    for v in values {
        if is_safe_bound(group, reports, &v) {
            let top = reports
                .iter()
                .flat_map(|r| r.reported.iter())
                .filter(|(_, d)| *d == v)
                .map(|(b, _)| *b)
                .max()
                .unwrap_or(0);
            if best.is_none_or(|(b, _)| top > b) {
                best = Some((top, v));
            }
        }
    }
    if let Some((_, v)) = best {
        return Choice::Bound(v);
    }
    if no_vote_quorum(group, reports) {
        Choice::Free
    } else {
        Choice::Unknown
    }
}

/// Condition (b) for some ballot. It is enough to try the ballots at which
/// v was reported relayed: if (b) holds for some c, it holds for the least
/// such ballot >= c.
fn is_safe_bound(group: &Group, reports: &[&OneB], value: &Digest) -> bool {
    let mut candidates: Vec<u64> = reports
        .iter()
        .flat_map(|r| r.reported.iter())
        .filter(|(_, v)| v == value)
        .map(|(bal, _)| *bal)
        .collect();
    candidates.sort_unstable();
    candidates.dedup();
    candidates
        .into_iter()
        .any(|c| bound_at(group, reports, c, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group4() -> Group {
        Group::new(vec!["a".into(), "b".into(), "c".into(), "d".into()]).unwrap()
    }

    fn report(acceptor: usize, voted: Option<(u64, u8)>, relayed: &[(u64, u8)]) -> OneB {
        OneB {
            acceptor,
            slot: 0,
            ballot: 10,
            voted: voted.map(|(b, v)| (b, [v; 20])),
            reported: relayed.iter().map(|&(b, v)| (b, [v; 20])).collect(),
        }
    }

    #[test]
    fn no_votes_in_a_quorum_leaves_the_leader_free() {
        let g = group4();
        let r: Vec<OneB> = (0..3).map(|a| report(a, None, &[])).collect();
        let refs: Vec<&OneB> = r.iter().collect();
        assert_eq!(choose(&g, &refs), Choice::Free);
        assert!(is_safe(&g, &refs, &[9; 20]));
        assert_eq!(choose(&g, &refs[..2]), Choice::Unknown);
    }

    #[test]
    fn a_chosen_value_stays_the_only_safe_one() {
        // Value 1 was chosen at ballot 5 by a, b and the liar d; d now hides it.
        let g = group4();
        let r = [
            report(0, Some((5, 1)), &[(5, 1)]),
            report(1, Some((5, 1)), &[(5, 1)]),
            report(2, None, &[]),
            report(3, None, &[]),
        ];
        let refs: Vec<&OneB> = r.iter().collect();
        assert_eq!(choose(&g, &refs), Choice::Bound([1; 20]));
        assert!(!is_safe(&g, &refs, &[2; 20]));
        // With only one honest witness among three reports nothing is provable.
        let partial = [&r[0], &r[2], &r[3]];
        assert_eq!(choose(&g, &partial), Choice::Unknown);
        assert!(!is_safe(&g, &partial, &[2; 20]));
        assert!(!is_safe(&g, &partial, &[1; 20]));
    }

    #[test]
    fn one_invented_vote_makes_nothing_safe() {
        // d claims it voted 7 at ballot 9; a, b, c never voted.
        let g = group4();
        let r = [
            report(0, None, &[]),
            report(1, None, &[]),
            report(2, None, &[]),
            report(3, Some((9, 7)), &[(9, 7)]),
        ];
        let refs: Vec<&OneB> = r.iter().collect();
        assert_eq!(choose(&g, &refs), Choice::Free);
        // 7 is "safe" only in the sense that anything is: nothing was chosen.
        let without_free = [&r[0], &r[1], &r[3]];
        assert_eq!(choose(&g, &without_free), Choice::Unknown);
        assert!(!is_safe(&g, &without_free, &[7; 20]));
    }

    #[test]
    fn the_latest_safe_value_wins() {
        let g = group4();
        let r = [
            report(0, Some((6, 2)), &[(3, 1), (6, 2)]),
            report(1, Some((6, 2)), &[(3, 1), (6, 2)]),
            report(2, Some((3, 1)), &[(3, 1)]),
        ];
        let refs: Vec<&OneB> = r.iter().collect();
        assert_eq!(choose(&g, &refs), Choice::Bound([2; 20]));
        assert!(!is_safe(&g, &refs, &[1; 20]));
    }
}
