//! A node's view of the ring: predecessor, successor list and finger table,
//! and the routing decisions made from them.

use super::id::{Id, ID_BITS};
use super::peer_wire::NodeRef;

pub struct Routing {
    pub me: NodeRef,
    pub predecessor: Option<NodeRef>,
    /// Nearest nodes clockwise, nearest first; never holds `me`. Empty means
    /// the node believes it is alone.
    pub successors: Vec<NodeRef>,
    /// `fingers[i]` = successor(me + 2^i), when known.
    pub fingers: Vec<Option<NodeRef>>,
    pub max_successors: usize,
}

impl Routing {
    pub fn new(me: NodeRef, max_successors: usize) -> Self {
        Routing {
            me,
            predecessor: None,
            successors: Vec::new(),
            fingers: vec![None; ID_BITS],
            max_successors: max_successors.max(1),
        }
    }

    pub fn successor(&self) -> NodeRef {
        self.successors.first().copied().unwrap_or(self.me)
    }

    pub fn alone(&self) -> bool {
        self.successors.is_empty()
    }

    /// Does this node own `target` (does it lie in (predecessor, me])?
    /// Without a predecessor only a lone node knows it owns everything.
    pub fn owns(&self, target: &Id) -> bool {
        match &self.predecessor {
            Some(pred) => target.in_half_open(&pred.id, &self.me.id),
            None => self.alone(),
        }
    }

    /// Replace the successor list with `first` followed by `rest` (the
    /// successor's own list): cut where it comes back round to me, skip
    /// `skip`ped (dead) nodes and repeats, keep `max_successors`.
    pub fn set_successors(&mut self, first: NodeRef, rest: &[NodeRef], skip: impl Fn(&Id) -> bool) {
        let mut list: Vec<NodeRef> = Vec::with_capacity(self.max_successors);
        for node in std::iter::once(&first).chain(rest) {
            if node.id == self.me.id {
                break;
            }
            if skip(&node.id) || list.iter().any(|n| n.id == node.id) {
                continue;
            }
            list.push(*node);
            if list.len() == self.max_successors {
                break;
            }
        }
        self.successors = list;
    }

    /// Answer a FIND_SUCCESSOR from our tables: (found, nodes).
    pub fn answer_find(&self, target: &Id, exclude: &[Id]) -> (bool, Vec<NodeRef>) {
        if self.owns(target) && !exclude.contains(&self.me.id) {
            let mut owners = vec![self.me];
            owners.extend(self.successors.iter().filter(|n| !exclude.contains(&n.id)));
            return (true, owners);
        }
        if let Some(owners) = self.owner_among_successors(target, exclude) {
            return (true, owners);
        }
        match self.closest_preceding(target, exclude) {
            Some(next) => (false, vec![next]),
            // Nothing better known: our successor is the best guess.
            None => (true, vec![self.successor()]),
        }
    }

    /// If `target` falls before some successor, the owner and the nodes
    /// after it (its replica holders), skipping excluded nodes.
    pub fn owner_among_successors(&self, target: &Id, exclude: &[Id]) -> Option<Vec<NodeRef>> {
        let mut previous = self.me.id;
        for (i, node) in self.successors.iter().enumerate() {
            if exclude.contains(&node.id) {
                continue;
            }
            if target.in_half_open(&previous, &node.id) {
                let mut owners = vec![*node];
                owners.extend(
                    self.successors[i + 1..]
                        .iter()
                        .filter(|n| !exclude.contains(&n.id)),
                );
                return Some(owners);
            }
            previous = node.id;
        }
        None
    }

    /// The known node closest before `target` (fingers and successors), the
    /// greedy Chord routing step.
    pub fn closest_preceding(&self, target: &Id, exclude: &[Id]) -> Option<NodeRef> {
        let mut best: Option<(Id, NodeRef)> = None;
        let candidates = self.fingers.iter().flatten().chain(self.successors.iter());
        for node in candidates {
            if !node.id.in_open(&self.me.id, target) || exclude.contains(&node.id) {
                continue;
            }
            let gap = node.id.distance_to(target);
            if best.as_ref().is_none_or(|(g, _)| gap < *g) {
                best = Some((gap, *node));
            }
        }
        best.map(|(_, node)| node)
    }

    /// Where finger `bit` starts: me + 2^bit.
    pub fn finger_start(&self, bit: usize) -> Id {
        self.me.id.add_pow2(bit)
    }

    /// `owner` = successor(finger_start(bit)); it is also the successor of
    /// every later start up to it. Fill those in and return the next finger
    /// that needs a lookup of its own (ID_BITS when the round is done).
    pub fn set_finger_run(&mut self, bit: usize, owner: NodeRef) -> usize {
        if owner.id == self.me.id {
            // The ring wraps back to me before this start: no further fingers.
            for finger in &mut self.fingers[bit..] {
                *finger = None;
            }
            return ID_BITS;
        }
        let reach = self.me.id.distance_to(&owner.id);
        let mut next = bit;
        while next < ID_BITS {
            if next > bit && self.me.id.distance_to(&self.finger_start(next)) > reach {
                break;
            }
            self.fingers[next] = Some(owner);
            next += 1;
        }
        next
    }

    /// Drop every mention of `id`. Returns true if it was the successor.
    pub fn forget(&mut self, id: &Id) -> bool {
        let was_successor = self.successors.first().is_some_and(|n| n.id == *id);
        self.successors.retain(|n| n.id != *id);
        if self.predecessor.is_some_and(|p| p.id == *id) {
            self.predecessor = None;
        }
        for finger in &mut self.fingers {
            if finger.is_some_and(|f| f.id == *id) {
                *finger = None;
            }
        }
        was_successor
    }

    /// The finger nearest after me, to fall back on when every successor is gone.
    pub fn nearest_finger(&self) -> Option<NodeRef> {
        self.fingers.iter().flatten().copied().next()
    }

    /// Distinct finger entries as (first bit, node), for the state output.
    pub fn finger_runs(&self) -> Vec<(usize, NodeRef)> {
        let mut runs: Vec<(usize, NodeRef)> = Vec::new();
        for (bit, finger) in self.fingers.iter().enumerate() {
            if let Some(node) = finger {
                if runs.last().is_none_or(|(_, last)| last.id != node.id) {
                    runs.push((bit, *node));
                }
            }
        }
        runs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(hex: &str) -> NodeRef {
        NodeRef {
            id: Id::from_hex(hex).unwrap(),
            addr: "127.0.0.1:1".parse().unwrap(),
        }
    }

    #[test]
    fn successor_lists_stop_at_me_and_skip_the_dead() {
        let mut r = Routing::new(node("1"), 3);
        r.set_successors(
            node("3"),
            &[node("5"), node("7"), node("1"), node("9")],
            |id| *id == node("5").id,
        );
        let ids: Vec<Id> = r.successors.iter().map(|n| n.id).collect();
        assert_eq!(ids, vec![node("3").id, node("7").id]);
    }

    #[test]
    fn owner_is_found_in_the_successor_list() {
        let mut r = Routing::new(node("1"), 4);
        r.set_successors(node("3"), &[node("5"), node("7")], |_| false);
        let owners = r.owner_among_successors(&node("4").id, &[]).unwrap();
        assert_eq!(owners[0].id, node("5").id);
        let owners = r
            .owner_among_successors(&node("4").id, &[node("5").id])
            .unwrap();
        assert_eq!(owners[0].id, node("7").id);
        assert!(r.owner_among_successors(&node("9").id, &[]).is_none());
    }

    #[test]
    fn closest_preceding_prefers_the_node_nearest_the_target() {
        let mut r = Routing::new(node("1"), 4);
        r.set_successors(node("2"), &[], |_| false);
        r.fingers[150] = Some(node("4"));
        r.fingers[158] = Some(node("9"));
        assert_eq!(
            r.closest_preceding(&node("8").id, &[]).unwrap().id,
            node("4").id
        );
        assert_eq!(
            r.closest_preceding(&node("f").id, &[]).unwrap().id,
            node("9").id
        );
        assert_eq!(
            r.closest_preceding(&node("f").id, &[node("9").id])
                .unwrap()
                .id,
            node("4").id
        );
        assert!(r.closest_preceding(&node("15").id, &[]).is_none());
    }

    #[test]
    fn a_finger_run_covers_every_start_up_to_its_owner() {
        let mut r = Routing::new(node("0"), 4);
        let next = r.set_finger_run(0, node("1"));
        // starts 2^0 .. 2^156 are all at or before 0x1000..: 157 fingers.
        assert_eq!(next, 157);
        assert!(r.fingers[..157]
            .iter()
            .all(|f| f.unwrap().id == node("1").id));
        assert_eq!(r.set_finger_run(157, node("0")), ID_BITS);
        assert!(r.fingers[157..].iter().all(|f| f.is_none()));
        assert_eq!(r.finger_runs().len(), 1);
    }
}
