//! Two live leaders: losing slots to the other is retried, not answered
//! with code 2.

use super::*;

/// Two live leaders: replica 3's higher ballot for slot 0 arrives after
/// replica 2 decided slots 0 and 1 (replica 3 took part in them but saw none
/// of their votes). That is contention, not being behind: its request is retried in
/// a later slot and commits (the seed answered code 2).
#[test]
fn losing_slots_to_another_live_leader_is_retried_not_code_2() {
    use crate::bpcon::node::OutputFilter;
    use crate::bpcon::replica::Dest;
    use std::cell::{Cell, RefCell};
    use std::rc::Rc;

    fn blinded(msg: &PeerMsg) -> bool {
        matches!(
            msg,
            PeerMsg::TwoAv { .. }
                | PeerMsg::TwoB { .. }
                | PeerMsg::CatchupReply { .. }
                | PeerMsg::Status { .. }
        )
    }
    /// While `on`, replica 3 gets none of this replica's votes or claims.
    struct Blind {
        me: usize,
        on: Rc<Cell<bool>>,
    }
    impl OutputFilter for Blind {
        fn filter(&mut self, _: u64, sends: &mut Vec<(Dest, PeerMsg)>, _: bool) {
            if !self.on.get() {
                return;
            }
            let mut out = Vec::new();
            for (dest, msg) in sends.drain(..) {
                match dest {
                    Dest::All if blinded(&msg) => out.extend(
                        (0..4)
                            .filter(|&p| p != 3 && p != self.me)
                            .map(|p| (Dest::Peer(p), msg.clone())),
                    ),
                    Dest::Peer(3) if blinded(&msg) => {}
                    _ => out.push((dest, msg)),
                }
            }
            *sends = out;
        }
        fn name(&self) -> &'static str {
            "blind"
        }
    }
    /// While `on`, replica 3's messages are held back; then sent first.
    struct Hold {
        on: Rc<Cell<bool>>,
        held: Rc<RefCell<Vec<(Dest, PeerMsg)>>>,
    }
    impl OutputFilter for Hold {
        fn filter(&mut self, _: u64, sends: &mut Vec<(Dest, PeerMsg)>, _: bool) {
            let mut held = self.held.borrow_mut();
            if self.on.get() {
                held.append(sends);
            } else if !held.is_empty() {
                held.append(sends);
                *sends = std::mem::take(&mut *held);
            }
        }
        fn name(&self) -> &'static str {
            "hold"
        }
    }

    let mut sim = Sim::new(4, vec![None; 4], 24);
    sim.net.world.run_for(Duration::from_millis(500)); // links up
    let on = Rc::new(Cell::new(true));
    for me in 0..3 {
        let blind = Blind { me, on: on.clone() };
        sim.net.node(me).unwrap().set_filter(Box::new(blind));
    }
    let hold = Hold {
        on: on.clone(),
        held: Rc::default(),
    };
    sim.net.node(3).unwrap().set_filter(Box::new(hold));
    let mine = sim.submit(3, 1, "P,mine,1");
    for (k, text) in ["P,theirs,1", "P,theirs,2"].iter().enumerate() {
        sim.submit(2, 2, text);
        sim.run_until(3000, |s| s.replica(2).store().log.len() > k);
    }
    assert_eq!(sim.replica(3).store().log.len(), 0);
    on.set(false);
    sim.run_until(3000, |s| s.answered(mine).is_some());
    assert_eq!(sim.answered(mine), Some(CODE_COMMITTED));
    sim.assert_agreement();
}
