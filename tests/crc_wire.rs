//! CRC on the wire, against real server processes: a client written from
//! the spec alone, and peers that misbehave.

mod common;

use common::{crc_server, crc_server_with, read_exact};
use peerloop::crc::codec::{self, Message};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A client speaking raw bytes, as someone else's client would.
fn register(addr: SocketAddr, id: u32, name: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).unwrap();
    let frame = codec::to_bytes(&Message::ClientRegistration {
        source: id,
        last_hop: 0,
        name: name.as_bytes(),
        info: b"\"Test info\"",
    });
    stream.write_all(&frame).unwrap();
    stream
}

/// Read one whole frame (header first, then the lengths it gives).
fn read_frame(stream: &mut TcpStream) -> Vec<u8> {
    let mut frame = read_exact(stream, 1);
    let header = match frame[0] {
        0x00 | 0x80 => 12,
        0x01 => 15,
        0x02 | 0x81 => 13,
        0x82 => 9,
        other => panic!("unknown frame type {other:#x}"),
    };
    frame.extend(read_exact(stream, header - 1));
    loop {
        match codec::decode(&frame) {
            Ok(Some((_, len))) => {
                assert_eq!(len, frame.len());
                return frame;
            }
            Ok(None) => frame.extend(read_exact(stream, 1)),
            Err(e) => panic!("bad frame from server: {e}"),
        }
    }
}

/// Wait for the server to close `stream` (EOF or reset), discarding what it sends.
fn assert_closed_by_server(stream: &mut TcpStream) {
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => continue,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                panic!("server did not close the connection")
            }
            Err(_) => return, // reset
        }
    }
}

#[test]
fn a_spec_client_gets_the_reference_bytes_in_order() {
    let (_shire, shire) = crc_server(1, "theshire", None);
    let mut frodo = register(shire, 101, "frodobaggins");
    // From 5_3_DuplicateID_Client.log: theshire's welcome to frodobaggins.
    assert_eq!(
        read_frame(&mut frodo),
        b"\x01\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x006Welcome to the Clemson Relay Chat network frodobaggins"
    );
    let mut sam = register(shire, 102, "samgamgee");
    // The welcome first, then every known client with last hop = the server.
    assert_eq!(
        read_frame(&mut sam),
        b"\x01\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x003Welcome to the Clemson Relay Chat network samgamgee"
    );
    assert_eq!(
        read_frame(&mut sam),
        b"\x80\x00\x00\x00e\x00\x00\x00\x01\x0c\x00\x0bfrodobaggins\"Test info\""
    );
    // The newcomer is announced to the clients already there.
    assert_eq!(
        read_frame(&mut frodo),
        b"\x80\x00\x00\x00f\x00\x00\x00\x01\x09\x00\x0bsamgamgee\"Test info\""
    );
    // A duplicate gets the refusal, byte for byte, and is closed.
    let mut gollum = register(shire, 102, "gollum");
    assert_eq!(
        read_frame(&mut gollum),
        b"\x01\x00\x00\x00\x01\x00\x00\x00\x00\x00\x02\x00\x00\x00*Someone has already registered with ID 102"
    );
    assert_closed_by_server(&mut gollum);
    // A chat is relayed unchanged; an unknown ID comes back as a status.
    let chat = codec::to_bytes(&Message::ClientChat {
        source: 102,
        destination: 101,
        text: b"\"Bye Frodo\"",
    });
    sam.write_all(&chat).unwrap();
    assert_eq!(read_frame(&mut frodo), chat);
    let lost = codec::to_bytes(&Message::ClientChat {
        source: 102,
        destination: 201,
        text: b"x",
    });
    sam.write_all(&lost).unwrap();
    assert_eq!(
        read_frame(&mut sam),
        b"\x01\x00\x00\x00\x01\x00\x00\x00\x00\x00\x01\x00\x00\x00\x0eUnknown ID 201"
    );
}

#[test]
fn a_server_joining_gets_everything_known_in_order() {
    let (_shire, shire) = crc_server(1, "theshire", None);
    let (_riv, _) = crc_server(2, "rivendale", Some(shire));
    let mut frodo = register(shire, 101, "frodobaggins");
    read_frame(&mut frodo);
    // A server written from the spec joins with last hop 0.
    let mut grey = TcpStream::connect(shire).unwrap();
    grey.write_all(&codec::to_bytes(&Message::ServerRegistration {
        source: 3,
        last_hop: 0,
        name: b"grey_havens",
        info: b"\"Gates to the Blessed Realm\"",
    }))
    .unwrap();
    // From 5_3: theshire, then rivendale, then frodobaggins, all with last hop 1.
    assert_eq!(
        read_frame(&mut grey),
        b"\x00\x00\x00\x00\x01\x00\x00\x00\x01\x08\x00\x06theshire\"test\""
    );
    assert_eq!(
        read_frame(&mut grey),
        b"\x00\x00\x00\x00\x02\x00\x00\x00\x01\x09\x00\x06rivendale\"test\""
    );
    assert_eq!(
        read_frame(&mut grey),
        b"\x80\x00\x00\x00e\x00\x00\x00\x01\x0c\x00\x0bfrodobaggins\"Test info\""
    );
}

/// After a bad peer is dropped, the server still serves everyone else.
fn assert_still_serving(server: SocketAddr, id: u32) -> TcpStream {
    let mut late = register(server, id, "latecomer");
    let welcome = read_frame(&mut late);
    assert_eq!(welcome[0], codec::STATUS);
    assert!(welcome.ends_with(b"Welcome to the Clemson Relay Chat network latecomer"));
    late
}

/// A temporary log file path for one test.
fn log_path(test: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("peerloop-{test}-{}.log", std::process::id()))
}

/// Send `bytes` from a fresh connection; the server must drop that
/// connection, say why in its log (`reason`), and keep serving the rest.
fn bad_peer_is_dropped(test: &str, bytes: &[u8], close_after: bool, reason: &str) {
    let log = log_path(test);
    let (mut node, addr) =
        crc_server_with(1, "target", None, &["--log-file", log.to_str().unwrap()]);
    let mut good = register(addr, 101, "good");
    read_frame(&mut good);
    let mut bad = TcpStream::connect(addr).unwrap();
    bad.write_all(bytes).unwrap();
    if close_after {
        drop(bad);
    } else {
        assert_closed_by_server(&mut bad);
    }
    let _late = assert_still_serving(addr, 102);
    // The good client was told about the latecomer: its link survived.
    assert_eq!(read_frame(&mut good)[0], codec::CLIENT_REGISTRATION);
    assert!(node.is_running());
    let state = node.state();
    assert_eq!(state["adjacent_user_ids"], serde_json::json!([101, 102]));
    // The state answer came after the drop, and log lines are flushed as written.
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains(reason), "log has no {reason:?}:\n{text}");
    let _ = std::fs::remove_file(log);
}

#[test]
fn an_unknown_type_closes_only_that_connection() {
    bad_peer_is_dropped(
        "unknown-type",
        &[0x7f, 1, 2, 3],
        false,
        "unknown frame type 0x7f",
    );
}

#[test]
fn a_4_gib_length_closes_only_that_connection() {
    // A chat whose text length is 0xffffffff: refused from the header alone.
    bad_peer_is_dropped(
        "huge-length",
        &[0x81, 0, 0, 0, 5, 0, 0, 0, 6, 0xff, 0xff, 0xff, 0xff],
        false,
        "claims 4294967308 bytes, over the 65536-byte limit",
    );
}

#[test]
fn a_registration_twice_on_one_link_closes_it() {
    let reg = codec::to_bytes(&Message::ClientRegistration {
        source: 7,
        last_hop: 0,
        name: b"twice",
        info: b"",
    });
    let mut bytes = reg.clone();
    bytes.extend_from_slice(&reg);
    bad_peer_is_dropped(
        "twice",
        &bytes,
        false,
        "unexpected client registration from ID 7",
    );
}

#[test]
fn half_a_frame_then_close_leaves_nothing_behind() {
    let reg = codec::to_bytes(&Message::ClientRegistration {
        source: 55,
        last_hop: 0,
        name: b"halfway",
        info: b"",
    });
    bad_peer_is_dropped(
        "half",
        &reg[..reg.len() / 2],
        true,
        "unread bytes of a partial frame",
    );
}

#[test]
fn a_peer_that_never_reads_is_dropped_and_others_keep_chatting() {
    let log = log_path("never-reads");
    let (mut node, addr) =
        crc_server_with(1, "target", None, &["--log-file", log.to_str().unwrap()]);
    // `sleeper` registers and then never reads a byte.
    let _sleeper = register(addr, 101, "sleeper");
    let mut chatter = register(addr, 102, "chatter");
    read_frame(&mut chatter);
    read_frame(&mut chatter);
    // Discard everything the server sends the chatter, so only the sleeper backs up.
    let mut drain = chatter.try_clone().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        while matches!(drain.read(&mut buf), Ok(n) if n > 0) {}
    });
    let mut flood = chatter.try_clone().unwrap();
    std::thread::spawn(move || {
        let text = vec![b'z'; 60_000];
        let frame = codec::to_bytes(&Message::ClientChat {
            source: 102,
            destination: 101,
            text: &text,
        });
        // ~120 MB at most: far more than socket buffers and the server's limits.
        for _ in 0..2000 {
            if flood.write_all(&frame).is_err() {
                break;
            }
        }
    });
    node.wait_state("the sleeper to be dropped", |s| {
        s["adjacent_user_ids"] == serde_json::json!([102])
    });
    // Everyone else still gets served.
    let mut a = register(addr, 201, "alice");
    read_frame(&mut a);
    let mut b = register(addr, 202, "bob");
    read_frame(&mut b);
    let chat = codec::to_bytes(&Message::ClientChat {
        source: 202,
        destination: 201,
        text: b"still here",
    });
    b.write_all(&chat).unwrap();
    loop {
        let frame = read_frame(&mut a);
        if frame[0] == codec::CLIENT_CHAT {
            assert_eq!(frame, chat);
            break;
        }
    }
}
