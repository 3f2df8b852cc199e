use super::fields::put_batch;
use super::*;
use crate::bpcon::crypto::MAX_SIGNATURE;
use crate::bpcon::op::{Op, Request, RequestId};
use crate::wire::split_frame;
use crate::wire::Reader;

fn value() -> Batch {
    Batch {
        requests: vec![Request {
            id: RequestId { client: 1, seq: 2 },
            op: Op::parse("P,k,v").unwrap(),
        }]
        .into(),
    }
}

/// `count` votes of consecutive slots under `signature`.
fn signed_votes(count: usize, signature: Vec<u8>) -> SignedVotes {
    SignedVotes {
        votes: (0..count as u64)
            .map(|k| Vote {
                slot: 10 + k,
                ballot: 4,
                digest: [k as u8; 20],
            })
            .collect(),
        signature,
    }
}

#[test]
fn every_message_round_trips_and_truncation_is_an_error() {
    let one_b = OneB {
        acceptor: 2,
        slot: 5,
        ballot: 9,
        voted: Some((4, [7; 20])),
        reported: vec![(4, [7; 20]), (1, [3; 20])],
    };
    let signed = SignedOneB {
        bytes: one_b.signed_bytes(),
        body: one_b,
        signature: vec![1, 2, 3],
    };
    let messages = vec![
        PeerMsg::Challenge { nonce: [5; 32] },
        PeerMsg::Hello {
            from: "a".into(),
            to: "b".into(),
            nonce: [6; 32],
            sealed_key: vec![4; 256],
            signature: vec![9; 256],
        },
        PeerMsg::Mac { tag: [3; 20] },
        PeerMsg::Welcome {
            signature: vec![8; 256],
        },
        PeerMsg::Status {
            committed: 3,
            max_ballot: Some(u64::MAX),
        },
        PeerMsg::Status {
            committed: 3,
            max_ballot: None,
        },
        PeerMsg::OneA { slot: 1, ballot: 2 },
        PeerMsg::OneB {
            signed: signed.clone(),
            values: vec![value()],
        },
        PeerMsg::Refuse {
            slot: 1,
            max_ballot: Some(8),
            committed: 4,
        },
        PeerMsg::OneC {
            slot: 1,
            ballot: 9,
            value: value(),
            proofs: vec![signed.clone(), signed],
        },
        PeerMsg::TwoAv {
            slot: 1,
            ballot: 2,
            digest: value().digest(),
        },
        // Unsigned: the link names the voter.
        PeerMsg::TwoB {
            slot: 1,
            ballot: 2,
            digest: [1; 20],
        },
        PeerMsg::TwoBSigs {
            signed: signed_votes(3, vec![7; 128]),
        },
        PeerMsg::TwoBSigs {
            signed: signed_votes(MAX_SIGNED_VOTES, vec![7; MAX_SIGNATURE]),
        },
        PeerMsg::CatchupRequest { from_slot: 3 },
        PeerMsg::Forward { requests: value() },
        PeerMsg::CatchupReply {
            slot: 3,
            committed: 5,
            value: value(),
            proof: None,
        },
        PeerMsg::CatchupReply {
            slot: 3,
            committed: 5,
            value: value(),
            proof: Some(Certificate {
                ballot: 9,
                votes: vec![
                    (0, signed_votes(1, vec![1; 128])),
                    (3, signed_votes(2, vec![2; 128])),
                    (2, signed_votes(1, vec![])),
                ],
            }),
        },
    ];
    for msg in messages {
        let bytes = msg.to_frame().unwrap();
        let frame = split_frame(&bytes).unwrap().unwrap();
        assert_eq!(PeerMsg::decode(frame.kind, frame.body, 4), Ok(msg.clone()));
        for cut in 0..frame.body.len() {
            assert!(
                PeerMsg::decode(frame.kind, &frame.body[..cut], 4).is_err(),
                "{msg:?} cut at {cut}"
            );
        }
    }
}

#[test]
fn a_1b_reporting_a_vote_at_its_own_ballot_is_malformed() {
    let one_b = OneB {
        acceptor: 0,
        slot: 0,
        ballot: 4,
        voted: Some((4, [0; 20])),
        reported: vec![],
    };
    assert!(OneB::parse(&one_b.signed_bytes(), 4).is_err());
    let one_b = OneB {
        acceptor: 5,
        voted: None,
        ..one_b
    };
    assert!(OneB::parse(&one_b.signed_bytes(), 4).is_err());
}

/// The words of a decode error end up in the log line that closes the
/// link: they are pinned here as they were when decoders returned strings.
#[test]
fn decode_errors_say_what_is_wrong_in_the_same_words() {
    let why = |kind: u16, body: &[u8]| PeerMsg::decode(kind, body, 4).unwrap_err().to_string();
    assert_eq!(why(999, &[]), "unknown peer message type 999");
    assert_eq!(
        why(ONE_A, &[0; 9]),
        "truncated: wanted 8 bytes at offset 8, only 1 left"
    );
    assert_eq!(
        why(CATCHUP_REQUEST, &[0; 9]),
        "1 unexpected bytes at the end"
    );
    assert_eq!(
        why(STATUS, &[0, 0, 0, 0, 0, 0, 0, 0, 2]),
        "bad ballot flag 2"
    );
    let mut hello = vec![65];
    hello.extend_from_slice(&[b'a'; 65]);
    assert_eq!(why(HELLO, &hello), "name too long");
    assert_eq!(why(HELLO, &[1, 0xff]), "name is not UTF-8");
    let long = |len: usize| {
        let mut body = (len as u16).to_be_bytes().to_vec();
        body.resize(2 + len, 0);
        body
    };
    assert_eq!(why(WELCOME, &long(MAX_SIGNATURE + 1)), "signature too long");
    let one_c = |count: u8| {
        let mut body = vec![0; 16];
        put_batch(&mut body, &value());
        body.push(count);
        body
    };
    assert_eq!(why(ONE_C, &one_c(5)), "1c carries 5 proofs for 4 replicas");
    let over = crate::bpcon::op::MAX_BATCH_OPS + 1;
    let mut bad_batch = vec![0; 16];
    bad_batch.extend_from_slice(&[0, 2]);
    bad_batch.extend_from_slice(&(over as u16).to_be_bytes());
    assert_eq!(
        why(ONE_C, &bad_batch),
        format!("batch of {over} operations over the limit")
    );
    let one_b = OneB {
        acceptor: 3,
        slot: 0,
        ballot: 4,
        voted: Some((4, [0; 20])),
        reported: vec![],
    };
    assert_eq!(
        OneB::parse(&one_b.signed_bytes(), 4)
            .unwrap_err()
            .to_string(),
        "1b for ballot 4 reports a vote at or above it"
    );
    assert_eq!(
        OneB::parse(&one_b.signed_bytes(), 3).unwrap_err(),
        OneBError::UnknownReplica(3)
    );
    assert_eq!(
        OneB::parse(b"BPCON-1X", 4).unwrap_err().to_string(),
        "1b without its tag"
    );
    let mut cert = vec![0; 8];
    cert.extend_from_slice(&[1, 7]);
    assert_eq!(
        Certificate::decode(&mut Reader::new(&cert), 4)
            .unwrap_err()
            .to_string(),
        "certificate vote from unknown replica #7"
    );
    let codec = crate::wire::Framed(PeerCodec { group_size: 4 });
    assert_eq!(
        crate::wire::Codec::decode(&codec, &[0, 2, 2, 91]).unwrap_err(),
        PeerMsgError::Frame(crate::wire::FrameError::SizeTooSmall(2))
    );
}

/// On an authenticated link a frame is handed over only with the MAC
/// frame after it; before, frame by frame.
#[test]
fn link_frames_pair_each_frame_with_its_mac_once_asked_to() {
    use crate::wire::{decode_each, Codec};
    let one_a = PeerMsg::OneA { slot: 1, ballot: 2 }.to_frame().unwrap();
    let mac = PeerMsg::Mac { tag: [3; 20] }.to_frame().unwrap();
    let data = [one_a.clone(), mac.clone(), one_a.clone()].concat();
    let paired = LinkFrames { with_mac: true };
    let mut units = Vec::new();
    let (used, stopped) = decode_each(&paired, &data, |unit| {
        units.push((unit.bytes.to_vec(), unit.mac.map(|m| m.kind)));
        std::ops::ControlFlow::<()>::Continue(())
    });
    // The second 1a waits for its MAC.
    assert_eq!(
        (units, used, stopped),
        (
            vec![(one_a.clone(), Some(MAC))],
            one_a.len() + mac.len(),
            None
        )
    );
    let alone = LinkFrames { with_mac: false };
    let (unit, len) = alone.decode(&data).unwrap().unwrap();
    assert_eq!((unit.bytes, unit.mac, len), (&one_a[..], None, one_a.len()));
    assert_eq!(
        paired.decode(&[&one_a[..], &[0, 1, 0, 0]].concat()),
        Err(crate::wire::FrameError::SizeTooSmall(1))
    );
    assert_eq!(paired.decode(&one_a[..one_a.len() - 1]), Ok(None));
}

/// A batch of exactly `bytes` encoded bytes, of operations as long as allowed.
fn batch_of(bytes: usize) -> Batch {
    use crate::bpcon::op::{MAX_OP_LEN, MIN_REQUEST_COST};
    let mut requests = Vec::new();
    let mut left = bytes - 2;
    let mut seq = 0;
    while left > 0 {
        let cost = if left >= MAX_OP_LEN + 18 + MIN_REQUEST_COST {
            MAX_OP_LEN + 18
        } else {
            left
        };
        let text = format!("P,k,{}", "v".repeat(cost - 18 - 4));
        requests.push(Request {
            id: RequestId {
                client: u64::MAX,
                seq,
            },
            op: Op::parse(&text).unwrap(),
        });
        seq += 1;
        left -= cost;
    }
    let batch = Batch {
        requests: requests.into(),
    };
    assert_eq!(batch.to_bytes().len(), bytes);
    batch
}

/// The largest signed 1b the decoder takes: every report slot used.
fn full_proof(acceptor: usize) -> SignedOneB {
    let body = OneB {
        acceptor,
        slot: u64::MAX,
        ballot: u64::MAX,
        voted: Some((u64::MAX - 1, [9; 20])),
        reported: vec![(u64::MAX - 1, [8; 20]); MAX_REPORTED],
    };
    let bytes = body.signed_bytes();
    assert_eq!(bytes.len(), limits::MAX_ONE_B_BYTES);
    SignedOneB {
        body,
        bytes,
        signature: vec![7; MAX_SIGNATURE],
    }
}

/// In every group size, every frame that carries a whole batch holds the
/// group's largest batch with the largest everything else (a 1c with a
/// full 1b from each replica, a 1b with its reported values, a catch-up
/// reply with a full certificate of a quorum); at 64 replicas one byte
/// more does not fit the tightest, the 1c.
#[test]
fn a_full_batch_with_a_full_proof_set_fits_one_frame() {
    use crate::bpcon::group::{quorum_of, MAX_REPLICAS};
    use crate::wire::MAX_FRAME;
    let one_c = |value: Batch, n: usize| PeerMsg::OneC {
        slot: u64::MAX,
        ballot: u64::MAX,
        value,
        proofs: (0..n).map(full_proof).collect(),
    };
    for n in [1, 4, 7, 54, 55, MAX_REPLICAS] {
        let full = batch_of(limits::max_batch_bytes(n));
        let frame = one_c(full.clone(), n).to_frame().unwrap();
        assert!(frame.len() <= MAX_FRAME);
        let body = split_frame(&frame).unwrap().unwrap();
        assert_eq!(
            PeerMsg::decode(body.kind, body.body, n),
            Ok(one_c(full.clone(), n))
        );
        let mut one_b = full_proof(0);
        one_b.body.reported.truncate(KEPT_REPORTS);
        one_b.bytes = one_b.body.signed_bytes();
        let one_b = PeerMsg::OneB {
            signed: one_b,
            values: vec![full.clone(); KEPT_REPORTS],
        };
        assert!(one_b.to_frame().unwrap().len() <= MAX_FRAME, "n = {n}");
        let reply = PeerMsg::CatchupReply {
            slot: u64::MAX,
            committed: u64::MAX,
            value: full,
            proof: Some(Certificate {
                ballot: u64::MAX,
                // The most a certificate may carry: a quorum of the group,
                // each with a full run of signed votes.
                votes: (0..quorum_of(n))
                    .map(|i| (i, signed_votes(MAX_SIGNED_VOTES, vec![1; MAX_SIGNATURE])))
                    .collect(),
            }),
        };
        assert!(reply.to_frame().unwrap().len() <= MAX_FRAME, "n = {n}");
    }
    let largest = limits::max_batch_bytes(MAX_REPLICAS);
    let frame = one_c(batch_of(largest), MAX_REPLICAS).to_frame().unwrap();
    assert_eq!(frame.len(), MAX_FRAME);
    assert!(one_c(batch_of(largest + 1), MAX_REPLICAS)
        .to_frame()
        .is_err());
}

/// A signature over no votes, or over more than MAX_SIGNED_VOTES, does not
/// decode; nor does a certificate with more votes than a quorum.
#[test]
fn a_signature_over_no_votes_or_too_many_does_not_decode() {
    for count in [0, MAX_SIGNED_VOTES + 1] {
        let msg = PeerMsg::TwoBSigs {
            signed: signed_votes(count, vec![1; 8]),
        };
        let bytes = msg.to_frame().unwrap();
        let frame = split_frame(&bytes).unwrap().unwrap();
        assert_eq!(
            PeerMsg::decode(frame.kind, frame.body, 4),
            Err(PeerMsgError::Certificate(
                CertificateError::SignedVoteCount(count)
            ))
        );
    }
    let reply = PeerMsg::CatchupReply {
        slot: 1,
        committed: 2,
        value: value(),
        proof: Some(Certificate {
            ballot: 1,
            votes: (0..4).map(|i| (i, signed_votes(1, vec![1; 8]))).collect(),
        }),
    };
    let bytes = reply.to_frame().unwrap();
    let frame = split_frame(&bytes).unwrap().unwrap();
    assert!(
        PeerMsg::decode(frame.kind, frame.body, 4).is_err(),
        "4 votes, quorum 3"
    );
}
