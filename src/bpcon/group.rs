//! The replica group: names, f, quorum sizes and who leads which ballot.

/// The largest group (frames are sized for it: `messages::limits`).
pub const MAX_REPLICAS: usize = 64;

/// The quorum of a group of `n` (at least 1) replicas: ceil((n + f + 1) / 2)
/// with f = (n - 1) / 3. A const fn, so frame limits can be sized by it.
pub const fn quorum_of(n: usize) -> usize {
    let f = n.saturating_sub(1) / 3;
    (n + f + 1).div_ceil(2)
}

/// Replicas are numbered by their names in sorted order, so every replica
/// numbers the group the same way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub names: Vec<String>,
    /// Byzantine replicas tolerated: the largest f with n >= 3f + 1.
    pub f: usize,
    /// ceil((n + f + 1) / 2): any two quorums share at least f + 1 replicas.
    pub quorum: usize,
}

impl Group {
    pub fn new(mut names: Vec<String>) -> Result<Group, String> {
        if names.is_empty() {
            return Err("a group needs at least one replica".into());
        }
        names.sort();
        for pair in names.windows(2) {
            if pair[0] == pair[1] {
                return Err(format!("replica name '{}' appears twice", pair[0]));
            }
        }
        if names.len() > MAX_REPLICAS {
            return Err(format!("at most {MAX_REPLICAS} replicas"));
        }
        let n = names.len();
        let f = (n - 1) / 3;
        Ok(Group {
            names,
            f,
            quorum: quorum_of(n),
        })
    }

    pub fn n(&self) -> usize {
        self.names.len()
    }

    /// The most encoded bytes one slot's batch may have in this group.
    pub fn max_batch_bytes(&self) -> usize {
        crate::bpcon::messages::limits::max_batch_bytes(self.n())
    }

    /// A weak quorum holds at least one correct replica.
    pub fn weak_quorum(&self) -> usize {
        self.f + 1
    }

    pub fn index(&self, name: &str) -> Option<usize> {
        self.names.binary_search_by(|n| n.as_str().cmp(name)).ok()
    }

    /// The replica that may lead ballot `ballot`, in every slot: ballot
    /// b belongs to replica b mod n. Ballots are global (a leader's phase 1
    /// covers every slot from the one it ran in), so ownership does not
    /// rotate with the slot: a stable leader keeps its ballot.
    pub fn leader(&self, ballot: u64) -> usize {
        (ballot % self.n() as u64) as usize
    }

    /// The smallest ballot of `replica` above `above` (or its first one);
    /// `None` if the ballot space above `above` holds none of its ballots
    /// (checked arithmetic: a ballot a peer reported may be anything up to
    /// 2^64 - 1).
    pub fn next_ballot(&self, replica: usize, above: Option<u64>) -> Option<u64> {
        let n = self.n() as u64;
        let rank = replica as u64;
        match above {
            None => Some(rank),
            Some(b) if crate::sim::bugs::seeded("bpcon.ballot-overflow") => {
                // The seed's bug: candidate + n unchecked (wrapping in release).
                let candidate = (b / n).wrapping_mul(n).wrapping_add(rank);
                Some(if candidate > b {
                    candidate
                } else {
                    candidate.wrapping_add(n)
                })
            }
            Some(b) => {
                let candidate = (b / n).checked_mul(n)?.checked_add(rank)?;
                if candidate > b {
                    Some(candidate)
                } else {
                    candidate.checked_add(n)
                }
            }
        }
    }

    /// The round of a ballot: ballots are (round, leader) pairs packed as
    /// `round * n + leader`.
    pub fn round(&self, ballot: u64) -> u64 {
        ballot / self.n() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(n: usize) -> Group {
        Group::new((0..n).map(|i| format!("r{i}")).collect()).unwrap()
    }

    #[test]
    fn quorum_sizes_follow_n_at_least_3f_plus_1() {
        let sizes: Vec<(usize, usize)> = [1, 2, 3, 4, 5, 7, 10]
            .iter()
            .map(|&n| (group(n).f, group(n).quorum))
            .collect();
        assert_eq!(
            sizes,
            vec![(0, 1), (0, 2), (0, 2), (1, 3), (1, 4), (2, 5), (3, 7)]
        );
        for n in 1..30 {
            let g = group(n);
            // Two quorums intersect in more than f replicas.
            assert!(2 * g.quorum - n > g.f, "n={n}");
            // The correct replicas alone form a quorum.
            assert!(n - g.f >= g.quorum, "n={n}");
        }
    }

    #[test]
    fn ballots_belong_to_one_leader_and_increase() {
        let g = group(4);
        for r in 0..4 {
            let mut b = g.next_ballot(r, None).unwrap();
            for _ in 0..5 {
                assert_eq!(g.leader(b), r);
                let next = g.next_ballot(r, Some(b)).unwrap();
                assert!(next > b);
                b = next;
            }
            assert!(g.next_ballot(r, Some(37)).unwrap() > 37);
        }
    }

    #[test]
    fn ballots_near_the_top_of_the_space_never_overflow() {
        // The seed computed `candidate + n` and overflowed (a panic in
        // debug builds, a wrap-around in release).
        for n in [1, 3, 4, 7] {
            let g = group(n);
            for r in 0..n {
                for above in [u64::MAX, u64::MAX - 1, u64::MAX - n as u64] {
                    if let Some(b) = g.next_ballot(r, Some(above)) {
                        assert!(b > above);
                        assert_eq!(g.leader(b), r);
                    }
                }
                assert_eq!(g.next_ballot(r, Some(u64::MAX)), None);
            }
        }
    }

    #[test]
    fn duplicate_names_are_refused() {
        assert!(Group::new(vec!["a".into(), "a".into()]).is_err());
        assert_eq!(group(4).index("r2"), Some(2));
    }
}
