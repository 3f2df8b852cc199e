//! What this replica heard: the ballots the others reached (global, as
//! ballots are: they bound the ballots a correct acceptor takes part in)
//! and the current slot's 2av/2b tallies, forgotten when the slot is
//! decided. It lives apart from the durable acceptor state.

use super::super::group::Group;
use super::super::messages::SignedVotes;
use super::super::op::{Batch, Digest};
use super::{MAX_ROUND_STEP, TRACKED_BALLOTS};
use std::collections::{BTreeMap, HashMap};

/// What this replica heard about the current slot from others.
#[derive(Debug)]
pub(super) struct Heard {
    /// The highest ballot each replica is known to have reached (what it
    /// led, promised, relayed or voted, or said it promised), in any slot.
    /// One replica's claim may be a lie; the (f + 1)-th highest is not.
    pub(super) ballots: Vec<Option<u64>>,
    /// Another replica's ballot messages for this slot arrived: this
    /// replica is taking part, not cut off.
    pub(super) from_others: bool,
    pub(super) two_av: BTreeMap<u64, Vec<Option<Digest>>>,
    pub(super) two_b: BTreeMap<u64, Vec<Option<Digest>>>,
    /// The verified signatures of the votes in `two_b` that came signed
    /// (most come unsigned first), for the certificate.
    pub(super) two_b_signatures: BTreeMap<u64, Vec<Option<SignedVotes>>>,
    pub(super) values: HashMap<Digest, Batch>,
}

impl Heard {
    pub(super) fn new(n: usize) -> Heard {
        Heard {
            ballots: vec![None; n],
            from_others: false,
            two_av: BTreeMap::new(),
            two_b: BTreeMap::new(),
            two_b_signatures: BTreeMap::new(),
            values: HashMap::new(),
        }
    }

    /// For the next slot: the tallies are forgotten, the ballots kept.
    pub(super) fn next_slot(&mut self) {
        let ballots = std::mem::take(&mut self.ballots);
        *self = Heard {
            ballots,
            ..Heard::new(0)
        };
    }

    pub(super) fn note_ballot(&mut self, from: usize, ballot: u64) {
        let b = &mut self.ballots[from];
        *b = (*b).max(Some(ballot));
    }

    /// The (f + 1)-th highest ballot the *other* replicas reached in this
    /// slot: at least one correct replica reached it, so f liars cannot
    /// raise it. This replica's own promise does not count, so a liar
    /// cannot pump one correct acceptor up step by step on its own (each
    /// promise it got becoming the base of the next): a correct acceptor
    /// stays within MAX_ROUND_STEP rounds of what f + 1 others reached.
    pub(super) fn credible_ballot(&self, group: &Group, me: usize) -> Option<u64> {
        let mut claims: Vec<Option<u64>> = (0..group.n())
            .filter(|&i| i != me)
            .map(|i| self.ballots[i])
            .collect();
        claims.sort_unstable_by(|a, b| b.cmp(a));
        claims.get(group.f).copied().flatten()
    }

    fn reach_round(&self, group: &Group, me: usize) -> u64 {
        group
            .round(self.credible_ballot(group, me).unwrap_or(0))
            .saturating_add(MAX_ROUND_STEP)
    }

    /// Whether a correct acceptor may take part in `ballot` now.
    pub(super) fn in_reach(&self, group: &Group, me: usize, ballot: u64) -> bool {
        if crate::sim::bugs::seeded("bpcon.ballot-overflow") {
            return true; // the seed's bug: no bound on accepted rounds
        }
        group.n() == 1 || group.round(ballot) <= self.reach_round(group, me)
    }

    /// What a new ballot of ours must be above: every ballot reached here
    /// (so an acceptor that ran ahead alone, after a partition or pushed by
    /// a liar, is caught up with), but no further than one round below
    /// what acceptors take part in (so a claim near 2^64 - 1 does not drag
    /// leaders out of reach).
    pub(super) fn leader_above(
        &self,
        group: &Group,
        me: usize,
        max_bal: Option<u64>,
    ) -> Option<u64> {
        let highest = self
            .ballots
            .iter()
            .copied()
            .chain([max_bal])
            .max()
            .flatten()?;
        if group.n() == 1 || crate::sim::bugs::seeded("bpcon.ballot-overflow") {
            return Some(highest);
        }
        let n = group.n() as u64;
        // The last ballot of the round below the reach.
        let cap = self
            .reach_round(group, me)
            .checked_mul(n)
            .and_then(|b| b.checked_sub(1))
            .unwrap_or(u64::MAX);
        Some(highest.min(cap))
    }
}

/// Record `from`'s message for `ballot` in a tally; false if it already
/// said something else in that ballot (a Byzantine replica).
pub(super) fn tally(
    map: &mut BTreeMap<u64, Vec<Option<Digest>>>,
    n: usize,
    ballot: u64,
    from: usize,
    digest: Digest,
) -> Option<usize> {
    if !map.contains_key(&ballot) && map.len() >= TRACKED_BALLOTS {
        let lowest = *map.keys().next()?;
        if lowest > ballot {
            return None;
        }
        map.remove(&lowest);
    }
    let votes = map.entry(ballot).or_insert_with(|| vec![None; n]);
    match votes[from] {
        Some(d) if d != digest => return None,
        _ => votes[from] = Some(digest),
    }
    Some(votes.iter().filter(|v| **v == Some(digest)).count())
}
