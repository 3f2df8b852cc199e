//! `peerloop client` driven as a user or a script would drive it.

mod common;

use common::{crc_server, read_exact, BIN};
use peerloop::crc::codec::{self, Message};
use std::io::Write;
use std::net::TcpStream;
use std::process::{Command, Stdio};

#[test]
fn a_piped_script_is_sent_whole_then_the_client_leaves() {
    let (_server, addr) = crc_server(1, "hub", None);
    let mut listener = TcpStream::connect(addr).unwrap();
    listener
        .write_all(&codec::to_bytes(&Message::ClientRegistration {
            source: 101,
            last_hop: 0,
            name: b"reader",
            info: b"",
        }))
        .unwrap();
    let welcome_len = 15 + "Welcome to the Clemson Relay Chat network reader".len();
    read_exact(&mut listener, welcome_len);
    // The lines are all typed before the connection exists; none may be lost.
    let port = addr.port().to_string();
    let mut client = Command::new(BIN)
        .args([
            "client",
            "--id",
            "102",
            "--serverhost",
            "127.0.0.1",
            "--serverport",
            &port,
        ])
        .args(["--username", "script", "--info", "x"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    client
        .stdin
        .take()
        .unwrap()
        .write_all(b"/msg 101 first\n/msg 101 second\n")
        .unwrap();
    assert!(client.wait().unwrap().success());
    // What the reader gets: the script's registration, then both chats in order.
    let registration = codec::to_bytes(&Message::ClientRegistration {
        source: 102,
        last_hop: 1,
        name: b"script",
        info: b"x",
    });
    assert_eq!(read_exact(&mut listener, registration.len()), registration);
    for text in [&b"first"[..], b"second"] {
        let chat = codec::to_bytes(&Message::ClientChat {
            source: 102,
            destination: 101,
            text,
        });
        assert_eq!(read_exact(&mut listener, chat.len()), chat);
    }
}

#[test]
fn a_client_that_cannot_connect_says_why_and_fails() {
    // Bind and drop: nothing listens on this port any more.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let output = Command::new(BIN)
        .args([
            "client",
            "--id",
            "5",
            "--serverhost",
            "127.0.0.1",
            "--serverport",
            &port.to_string(),
        ])
        .args(["--username", "u", "--info", "x"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("could not connect to 127.0.0.1"),
        "{stderr}"
    );
}
