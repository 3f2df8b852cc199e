//! Carrying out a lookup's steps: `Lookups` (lookup.rs) is pure and only
//! says what to do next; this sends its questions until it waits for an
//! answer or ends. The end goes back to whoever asked: the ring (joins,
//! fingers, rejoins) or the DHT (the holders of a key), each acting on its
//! own lookups, so neither calls the other.

use super::lookup::{Lookups, Step};
use super::peer_wire::PeerMsg;
use super::rpc::{Ctx, Waiting};

/// Send what `step` asks for; a question that cannot be sent gives the
/// lookup up. The lookup's end (`Step::Done` or `Step::Failed`) when it
/// came, None while it waits for an answer.
pub fn drive(lookups: &mut Lookups, mut step: Option<Step>, cx: &mut Ctx) -> Option<Step> {
    loop {
        match step {
            None => return None,
            Some(Step::Ask {
                lookup,
                addr,
                peer,
                target,
                exclude,
            }) => {
                let make = |req| PeerMsg::FindSuccessor {
                    req,
                    target,
                    exclude,
                };
                if cx.request(addr, peer, Waiting::Find { lookup }, make) {
                    return None;
                }
                step = lookups.fail(lookup);
            }
            ended => return ended,
        }
    }
}
