//! The node's links and handshake, driven by hand (no reactor).

use super::*;
use crate::bpcon::crypto::tests::test_keys;
use crate::bpcon::group::Group;
use crate::bpcon::messages::hello_bytes;
use crate::bpcon::replica::Config;
use crate::reactor::Actions;
use crate::wire::split_frame;

/// The reactor's handle for a connection (one place to adapt if it changes).
fn conn(n: usize) -> ConnId {
    n
}

fn node(me: usize) -> Node {
    let group = Group::new(vec!["A".into(), "B".into()]).unwrap();
    let keys = test_keys(2);
    let public: Vec<PublicKey> = keys.iter().map(|k| k.public()).collect();
    let replica = Replica::new(
        Config {
            group,
            me,
            key: keys[me].clone(),
            keys: public.clone(),
            seed: 1,
        },
        Vec::new(),
    );
    let peers = vec![Some("127.0.0.1:1".parse().unwrap()); 2];
    Node::new(replica, None, peers, &keys[me], public)
}

fn sent(out: &NodeOut, to: ConnId) -> Vec<u8> {
    out.sent()
        .into_iter()
        .filter(|(c, _)| *c == to)
        .flat_map(|(_, b)| b.to_vec())
        .collect()
}

fn first_frame(bytes: &[u8]) -> PeerMsg {
    let frame = split_frame(bytes).unwrap().unwrap();
    PeerMsg::decode(frame.kind, frame.body, 2).unwrap()
}

/// B dials A: A's challenge, B's HELLO, A's WELCOME. Returns the frames.
fn handshake(a: &mut Node, b: &mut Node, at_a: ConnId, at_b: ConnId) -> (Vec<u8>, Vec<u8>) {
    let addr: SocketAddr = "127.0.0.1:2".parse().unwrap();
    let mut out = Actions::new();
    a.on_accept(Instant::now(), PEER_LISTENER, at_a, addr, &mut out);
    let challenge = sent(&out, at_a);
    assert!(matches!(first_frame(&challenge), PeerMsg::Challenge { .. }));
    let mut out = Actions::new();
    b.on_connected(Instant::now(), 0, at_b, &mut out);
    assert_eq!(
        b.on_data(Instant::now(), at_b, &challenge, &mut out),
        Ok(challenge.len())
    );
    let hello = sent(&out, at_b);
    assert!(matches!(first_frame(&hello), PeerMsg::Hello { .. }));
    let mut out = Actions::new();
    assert_eq!(
        a.on_data(Instant::now(), at_a, &hello, &mut out),
        Ok(hello.len())
    );
    let welcome = sent(&out, at_a);
    assert!(matches!(first_frame(&welcome), PeerMsg::Welcome { .. }));
    let mut out = Actions::new();
    assert_eq!(
        b.on_data(Instant::now(), at_b, &welcome, &mut out),
        Ok(welcome.len())
    );
    // B's first frames on the new link (its STATUS), MACs and all.
    let after = sent(&out, at_b);
    assert!(!after.is_empty());
    let mut out = Actions::new();
    assert_eq!(
        a.on_data(Instant::now(), at_a, &after, &mut out),
        Ok(after.len())
    );
    (hello, welcome)
}

#[test]
fn both_ends_authenticate_and_a_recorded_handshake_is_worthless() {
    let (mut a, mut b) = (node(0), node(1));
    let (hello, welcome) = handshake(&mut a, &mut b, conn(5), conn(6));
    assert_eq!(a.links[&conn(5)], Link::From(1));
    assert_eq!(b.links[&conn(6)], Link::To(0));
    assert_eq!(b.outgoing[0], Some(conn(6)));

    // Someone who recorded B's HELLO replays it on a new connection: A
    // challenged that one with a fresh nonce, so it does not verify.
    let mut out = Actions::new();
    a.on_accept(
        Instant::now(),
        PEER_LISTENER,
        conn(7),
        "127.0.0.1:3".parse().unwrap(),
        &mut out,
    );
    let err = a
        .on_data(Instant::now(), conn(7), &hello, &mut out)
        .unwrap_err();
    assert!(err.contains("replayed HELLO"), "{err}");
    assert!(!matches!(a.links.get(&conn(7)), Some(Link::From(_))));

    // Someone posing as A at A's address replays A's WELCOME to B.
    let mut fake_a = node(0);
    let mut out = Actions::new();
    fake_a.on_accept(
        Instant::now(),
        PEER_LISTENER,
        conn(8),
        "127.0.0.1:4".parse().unwrap(),
        &mut out,
    );
    let challenge = sent(&out, conn(8));
    let mut out = Actions::new();
    b.on_connected(Instant::now(), 0, conn(9), &mut out);
    b.on_data(Instant::now(), conn(9), &challenge, &mut out)
        .unwrap();
    let err = b
        .on_data(Instant::now(), conn(9), &welcome, &mut out)
        .unwrap_err();
    assert!(err.contains("WELCOME"), "{err}");
    assert_ne!(b.links.get(&conn(9)), Some(&Link::To(0)));
}

#[test]
fn nothing_but_the_handshake_is_taken_before_it_completes() {
    let mut a = node(0);
    let mut out = Actions::new();
    a.on_accept(
        Instant::now(),
        PEER_LISTENER,
        conn(1),
        "127.0.0.1:3".parse().unwrap(),
        &mut out,
    );
    // A protocol message instead of HELLO closes the link.
    let status = PeerMsg::Status {
        committed: 5,
        max_ballot: None,
    }
    .to_frame()
    .unwrap();
    assert!(a
        .on_data(Instant::now(), conn(1), &status, &mut out)
        .is_err());
    // And a HELLO in the name of the replica itself.
    let mut out = Actions::new();
    a.on_accept(
        Instant::now(),
        PEER_LISTENER,
        conn(2),
        "127.0.0.1:3".parse().unwrap(),
        &mut out,
    );
    let PeerMsg::Challenge { nonce: challenge } = first_frame(&sent(&out, conn(2))) else {
        panic!("no challenge");
    };
    let nonce = fresh_nonce(&mut StdRng::seed_from_u64(3));
    let sealed_key = test_keys(1)[0].public().seal(&[1; 32]).unwrap();
    let hello = PeerMsg::Hello {
        from: "A".into(),
        to: "A".into(),
        nonce,
        signature: test_keys(1)[0].sign(&hello_bytes("A", "A", &challenge, &nonce, &sealed_key)),
        sealed_key,
    }
    .to_frame()
    .unwrap();
    assert!(a
        .on_data(Instant::now(), conn(2), &hello, &mut out)
        .is_err());
}

#[test]
fn a_handshake_that_never_completes_is_closed() {
    let mut a = node(0);
    let mut out = Actions::new();
    a.on_accept(
        Instant::now(),
        PEER_LISTENER,
        conn(3),
        "127.0.0.1:3".parse().unwrap(),
        &mut out,
    );
    let mut b = node(1);
    handshake(&mut a, &mut b, conn(4), conn(5));
    let mut closed = Vec::new();
    for _ in 0..HANDSHAKE_TICKS + 100 {
        let mut out = Actions::new();
        a.on_timer(Instant::now(), Timer::Tick, &mut out);
        for action in out.others() {
            if let crate::reactor::Action::Close(c) = action {
                closed.push(*c);
            }
        }
    }
    assert_eq!(closed, vec![conn(3)], "only the silent stranger is closed");
}

/// After the handshake every frame needs its MAC: an attacker who took
/// over the connection cannot inject, replay or reorder frames.
#[test]
fn frames_after_the_handshake_need_their_mac() {
    let (mut a, mut b) = (node(0), node(1));
    handshake(&mut a, &mut b, conn(5), conn(6));
    let status = PeerMsg::Status {
        committed: 0,
        max_ballot: None,
    }
    .to_frame()
    .unwrap();
    let mac = |b: &mut Node, frame: &[u8]| {
        PeerMsg::Mac {
            tag: b.send_macs[0].as_mut().unwrap().tag(frame),
        }
        .to_frame()
        .unwrap()
    };
    let mut out = Actions::new();
    // With its MAC: taken. A frame whose MAC has not arrived waits.
    let first = [status.clone(), mac(&mut b, &status)].concat();
    assert_eq!(
        a.on_data(Instant::now(), conn(5), &first, &mut out),
        Ok(first.len())
    );
    assert_eq!(a.on_data(Instant::now(), conn(5), &status, &mut out), Ok(0));
    // Replayed: the sequence number moved on.
    let err = a
        .on_data(Instant::now(), conn(5), &first, &mut out)
        .unwrap_err();
    assert!(err.contains("MAC does not verify"), "{err}");
    // Without a MAC at all.
    let (mut a, mut b) = (node(0), node(1));
    handshake(&mut a, &mut b, conn(5), conn(6));
    let bare = [status.clone(), status.clone()].concat();
    let err = a
        .on_data(Instant::now(), conn(5), &bare, &mut out)
        .unwrap_err();
    assert!(err.contains("without its MAC"), "{err}");
    // And the node's own sends carry MACs that verify at the other end.
    let (mut a, mut b) = (node(0), node(1));
    handshake(&mut a, &mut b, conn(5), conn(6));
    let mut out = Actions::new();
    b.on_timer(Instant::now(), Timer::Tick, &mut out);
    for _ in 0..60 {
        b.on_timer(Instant::now(), Timer::Tick, &mut out);
    }
    let sent = sent(&out, conn(6));
    assert!(!sent.is_empty(), "B sent nothing (a STATUS was due)");
    let mut out = Actions::new();
    assert_eq!(
        a.on_data(Instant::now(), conn(5), &sent, &mut out),
        Ok(sent.len())
    );
}

#[test]
fn nonces_are_fresh() {
    let mut rng = StdRng::from_entropy();
    assert_ne!(fresh_nonce(&mut rng), fresh_nonce(&mut rng));
}

/// Storage that logs what it is asked, in order.
struct Logged(std::rc::Rc<std::cell::RefCell<Vec<&'static str>>>);

impl Storage for Logged {
    fn append(&mut self, records: &[crate::bpcon::wal::Record]) -> Result<(), String> {
        if !records.is_empty() {
            self.0.borrow_mut().push("append");
        }
        Ok(())
    }
    fn sync(&mut self) -> Result<(), String> {
        self.0.borrow_mut().push("sync");
        Ok(())
    }
}

/// Records are written as events come and fsync'd once per poll round:
/// what depends on them (here the answers, after the promise, relay and
/// vote a lone replica logs) waits for the round's end, and two requests
/// in one round cost one fsync, not one each.
#[test]
fn records_are_fsyncd_once_per_round_and_nothing_depending_on_them_leaves_before() {
    let group = Group::new(vec!["A".into()]).unwrap();
    let keys = test_keys(1);
    let public: Vec<PublicKey> = keys.iter().map(|k| k.public()).collect();
    let replica = Replica::new(
        Config {
            group,
            me: 0,
            key: keys[0].clone(),
            keys: public.clone(),
            seed: 1,
        },
        Vec::new(),
    );
    let log = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let storage: Box<dyn Storage> = Box::new(Logged(log.clone()));
    let mut node = Node::new(replica, Some(storage), vec![None], &keys[0], public);
    let client = conn(7);
    let addr: SocketAddr = "127.0.0.1:3".parse().unwrap();
    let mut out = Actions::new();
    node.on_accept(Instant::now(), API_LISTENER, client, addr, &mut out);
    for seq in [1, 2] {
        let request = ApiMsg::Request {
            client: 1,
            seq,
            text: format!("P,k{seq},v").into_bytes(),
        }
        .to_frame();
        let mut out = Actions::new();
        assert_eq!(
            node.on_data(Instant::now(), client, &request, &mut out),
            Ok(request.len())
        );
        assert!(sent(&out, client).is_empty(), "answered before the fsync");
    }
    assert!(
        log.borrow().iter().all(|e| *e == "append"),
        "{:?}",
        log.borrow()
    );
    let mut out = Actions::new();
    node.on_round_end(Instant::now(), &mut out);
    assert_eq!(log.borrow().iter().filter(|e| **e != "append").count(), 1);
    assert_eq!(log.borrow().last(), Some(&"sync"));
    let answers = sent(&out, client);
    let mut rest = &answers[..];
    let mut codes = Vec::new();
    while let Some(frame) = split_frame(rest).unwrap() {
        let len = crate::wire::HEADER_LEN + frame.body.len();
        match ApiMsg::decode(frame.kind, frame.body).unwrap() {
            ApiMsg::Result { code, .. } => codes.push(code),
            other => panic!("{other:?}"),
        }
        rest = &rest[len..];
    }
    assert_eq!(
        codes,
        [0, 0],
        "both committed, answered after the one fsync"
    );
    // Nothing waits: the next round end does not fsync again.
    node.on_round_end(Instant::now(), &mut Actions::new());
    assert_eq!(log.borrow().iter().filter(|e| **e == "sync").count(), 1);
}
