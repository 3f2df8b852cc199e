//! The faults the world can inject: crashes and restarts, pauses,
//! partitions and their healing, connection resets.

use super::{pair, End, Event, LinkId, NodeId, World};
use crate::reactor::ConnId;

impl World {
    /// Crash the node: its memory is gone, its peers see their connections reset.
    pub fn crash(&mut self, node: NodeId) {
        self.note(node, || "crash".into());
        self.take_down(node, true);
    }

    /// Start a crashed (or stopped) node again from its factory.
    pub fn restart(&mut self, node: NodeId) {
        if self.nodes[node].proto.is_none() {
            self.note(node, || "restart".into());
            self.start(node);
        }
    }

    /// Deliver nothing to the node (timers included) until [`World::resume`].
    pub fn pause(&mut self, node: NodeId) {
        self.note(node, || "pause".into());
        self.nodes[node].paused = true;
    }

    pub fn resume(&mut self, node: NodeId) {
        self.note(node, || "resume".into());
        self.nodes[node].paused = false;
        let held = std::mem::take(&mut self.nodes[node].held);
        for event in held {
            self.schedule_at(self.now, event);
        }
    }

    /// Cut every node of `a` off from every node of `b`.
    pub fn partition(&mut self, a: &[NodeId], b: &[NodeId]) {
        for &x in a {
            for &y in b {
                if x != y {
                    self.cut.insert(pair(x, y));
                }
            }
        }
        self.trace_line(|| format!("partition {a:?} | {b:?}"));
    }

    /// Remove every cut; what was held at them is delivered from now on, in order.
    pub fn heal(&mut self) {
        self.cut.clear();
        self.trace_line(|| "heal".into());
        let held = std::mem::take(&mut self.held_at_cut);
        for event in held {
            let (link, side) = match &event {
                Event::Data { link, to_side, .. } | Event::Fin { link, to_side, .. } => {
                    (*link, *to_side)
                }
                // A SYN-ACK held at the cut: the opener's connection comes up now
                // (dropping it left the opener waiting for ever).
                Event::SynAck { link } => (*link, 0),
                _ => continue,
            };
            let delay = self.delay_on(link);
            self.schedule_on_link(link, side, delay, event);
        }
    }

    /// Reset every connection between nodes `a` and `b`.
    pub fn reset_between(&mut self, a: NodeId, b: NodeId) {
        let ids: Vec<LinkId> = self
            .links
            .iter()
            .filter(|(_, l)| {
                let nodes = [l.ends[0].and_then(End::node), l.ends[1].and_then(End::node)];
                nodes == [Some(a), Some(b)] || nodes == [Some(b), Some(a)]
            })
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.reset_link(id);
        }
    }

    /// Reset one connection of a node (both sides see a reset).
    pub fn reset_conn(&mut self, node: NodeId, conn: ConnId) {
        if let Some(state) = self.nodes[node].conns.get(&conn) {
            let link = state.link;
            self.reset_link(link);
        }
    }
}
