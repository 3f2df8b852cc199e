//! The node-to-node codec's tests: round trips, every truncation, and
//! the words of every decode error.

use super::*;
use crate::wire::split_frame;

fn node(n: u8) -> NodeRef {
    NodeRef {
        id: Id([n; 20]),
        addr: format!("127.0.0.{n}:{}", 4000 + n as u16).parse().unwrap(),
    }
}

fn round_trip(msg: PeerMsg) {
    let mut bytes = Vec::new();
    msg.write(&mut bytes).unwrap();
    let frame = split_frame(&bytes).unwrap().unwrap();
    assert_eq!(frame.len, bytes.len());
    assert_eq!(PeerMsg::decode(frame.kind, frame.body).unwrap(), msg);
    // Every truncation is refused, never a panic.
    for cut in 0..frame.body.len() {
        let _ = PeerMsg::decode(frame.kind, &frame.body[..cut]);
    }
}

#[test]
fn every_message_round_trips() {
    let v6 = NodeRef {
        id: Id([9; 20]),
        addr: "[::1]:7000".parse().unwrap(),
    };
    round_trip(PeerMsg::FindSuccessor {
        req: 7,
        target: Id([3; 20]),
        exclude: vec![Id([1; 20])],
    });
    round_trip(PeerMsg::FindReply {
        req: 7,
        found: true,
        nodes: vec![node(1), v6],
    });
    round_trip(PeerMsg::GetNeighbours { req: 1 });
    round_trip(PeerMsg::Neighbours {
        req: 1,
        predecessor: Some(node(2)),
        successors: vec![node(3), node(4)],
    });
    round_trip(PeerMsg::Neighbours {
        req: 1,
        predecessor: None,
        successors: vec![],
    });
    round_trip(PeerMsg::Notify { node: node(5) });
    round_trip(PeerMsg::Store(StoreMsg {
        req: 0,
        flags: STORE_AS_OWNER,
        hops_left: 2,
        ttl_ms: 1000,
        stamp: 1_764_000_000_000,
        key: [6; 32],
        value: b"hello".to_vec(),
    }));
    round_trip(PeerMsg::StoreAck { req: 3 });
    round_trip(PeerMsg::Fetch {
        req: 4,
        key: [1; 32],
    });
    round_trip(PeerMsg::FetchReply {
        req: 4,
        value: Some((7, vec![])),
    });
    round_trip(PeerMsg::FetchReply {
        req: 4,
        value: None,
    });
    round_trip(PeerMsg::Ping { req: 9 });
    round_trip(PeerMsg::Pong { req: 9 });
    round_trip(PeerMsg::Leaving {
        node: node(1),
        predecessor: None,
        successors: vec![node(2)],
    });
}

#[test]
fn malformed_bodies_are_errors() {
    assert!(PeerMsg::decode(999, &[]).is_err());
    assert!(PeerMsg::decode(PING, &[0, 0, 0, 1, 5]).is_err());
    let mut bad_family = vec![0; 20];
    bad_family.push(5);
    assert!(PeerMsg::decode(NOTIFY, &bad_family).is_err());
    let mut too_many = vec![0, 0, 0, 1, 0];
    too_many.push(200);
    assert!(PeerMsg::decode(NEIGHBOURS, &too_many).is_err());
}

/// The reasons a bad peer is dropped with are logged: the typed errors
/// say them in the words the log always had, through the codec too.
#[test]
fn bad_frames_are_refused_in_the_words_of_the_log() {
    use crate::wire::{Codec, Framed};
    let said = |kind, body: &[u8]| PeerMsg::decode(kind, body).unwrap_err().to_string();
    assert_eq!(said(999, &[]), "unknown peer message type 999");
    assert_eq!(
        said(PING, &[0, 0, 0, 1, 5]),
        "1 unexpected bytes at the end"
    );
    assert_eq!(
        said(PING, &[0, 0]),
        "truncated: wanted 4 bytes at offset 0, only 2 left"
    );
    let mut bad_family = vec![0; 20];
    bad_family.push(5);
    assert_eq!(
        said(NOTIFY, &bad_family),
        "address family 5 is neither 4 nor 6"
    );
    assert_eq!(
        said(NEIGHBOURS, &[0, 0, 0, 1, 0, 200]),
        "200 nodes in one message (limit 64)"
    );
    assert_eq!(
        said(NEIGHBOURS, &[0, 0, 0, 1, 2]),
        "presence flag 2 is neither 0 nor 1"
    );
    assert_eq!(
        said(FIND_REPLY, &[0, 0, 0, 1, 3]),
        "found flag 3 is neither 0 nor 1"
    );
    assert_eq!(
        said(FIND_REPLY, &[0, 0, 0, 1, 1, 0]),
        "a FIND_REPLY without a node"
    );
    let mut excluded = vec![0, 0, 0, 1];
    excluded.extend_from_slice(&[0; 20]);
    excluded.push(65);
    assert_eq!(
        said(FIND_SUCCESSOR, &excluded),
        "65 excluded nodes (limit 64)"
    );
    let codec = Framed(PeerCodec);
    assert_eq!(
        codec.decode(&[0, 3, 2, 177]).unwrap_err().to_string(),
        crate::wire::split_frame(&[0, 3, 2, 177])
            .unwrap_err()
            .to_string()
    );
    let ping = PeerMsg::Ping { req: 7 };
    let mut bytes = Vec::new();
    ping.write(&mut bytes).unwrap();
    assert_eq!(codec.decode(&bytes).unwrap(), Some((ping, bytes.len())));
    assert_eq!(codec.decode(&bytes[..bytes.len() - 1]).unwrap(), None);
}
