//! `peerloop client` driven as a user or a script would drive it.

mod common;

use common::{crc_server, crc_server_with, read_exact, Node, BIN};
use peerloop::crc::codec::{self, Message};
use std::io::Write;
use std::net::TcpStream;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

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

/// A port nothing listens on: bound, then dropped.
fn dead_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `peerloop client` against 127.0.0.1:`port`, standard input piped.
fn client(id: &str, port: u16) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(["client", "--id", id, "--serverhost", "127.0.0.1"])
        .args(["--serverport", &port.to_string()])
        .args(["--username", "u", "--info", "x"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Wait for `child` to exit (20 s at most, then it is killed and the test fails).
fn finish(mut child: Child) -> Output {
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the process did not exit within 20 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Run `peerloop args...` to its end, standard input empty.
fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn a_client_that_cannot_connect_says_why_once_and_fails_at_once() {
    let port = dead_port();
    // Standard input stays open, as at a terminal: the client must not wait on it.
    let mut child = client("5", port).spawn().unwrap();
    let _stdin = child.stdin.take();
    let output = finish(child);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(text(&output.stdout), "", "nothing on stdout");
    let stderr = text(&output.stderr);
    let prefix = format!("peerloop: could not connect to 127.0.0.1:{port}: ");
    assert!(stderr.starts_with(&prefix), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one error, once: {stderr}");
}

#[test]
fn a_client_refused_as_a_duplicate_exits_1_with_the_servers_reason() {
    let (_server, addr) = crc_server(1, "hub", None);
    let mut first = TcpStream::connect(addr).unwrap();
    first
        .write_all(&codec::to_bytes(&Message::ClientRegistration {
            source: 101,
            last_hop: 0,
            name: b"first",
            info: b"",
        }))
        .unwrap();
    read_exact(
        &mut first,
        15 + "Welcome to the Clemson Relay Chat network first".len(),
    );
    let mut child = client("101", addr.port()).spawn().unwrap();
    // Standard input closes at once: the client still waits for the server's answer.
    drop(child.stdin.take());
    let output = finish(child);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert_eq!(
        text(&output.stderr),
        "peerloop: the server refused this client: Someone has already registered with ID 101\n"
    );
}

#[test]
fn end_of_input_quits_politely() {
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
    read_exact(
        &mut listener,
        15 + "Welcome to the Clemson Relay Chat network reader".len(),
    );
    let mut child = client("102", addr.port()).spawn().unwrap();
    drop(child.stdin.take());
    let output = finish(child);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert_eq!(text(&output.stderr), "");
    let registration = codec::to_bytes(&Message::ClientRegistration {
        source: 102,
        last_hop: 1,
        name: b"u",
        info: b"x",
    });
    assert_eq!(read_exact(&mut listener, registration.len()), registration);
    // A quit, not the "Connection lost" the server says for a dropped link.
    let quit = codec::to_bytes(&Message::ClientQuit {
        source: 102,
        text: b"",
    });
    assert_eq!(read_exact(&mut listener, quit.len()), quit);
}

#[test]
fn numbers_out_of_range_are_said_in_words_with_exit_2() {
    let cases: [(&[&str], &str); 4] = [
        (
            &[
                "server",
                "--id",
                "1",
                "--servername",
                "a",
                "--port",
                "99999",
            ],
            "peerloop: --port 99999 is out of range (0–65535)\n",
        ),
        (
            &[
                "server",
                "--id",
                "4294967296",
                "--servername",
                "a",
                "--port",
                "0",
            ],
            "peerloop: --id 4294967296 is out of range (1–4294967295)\n",
        ),
        (
            &[
                "server",
                "--id",
                "1",
                "--servername",
                "a",
                "--port",
                "0",
                "--connect_to_host",
                "127.0.0.1",
                "--connect_to_port",
                "0",
            ],
            "peerloop: --connect_to_port 0 is out of range (1–65535)\n",
        ),
        (
            &[
                "client",
                "--id",
                "5",
                "--serverhost",
                "127.0.0.1",
                "--serverport",
                "70000",
                "--username",
                "u",
            ],
            "peerloop: --serverport 70000 is out of range (1–65535)\n",
        ),
    ];
    for (args, want) in cases {
        let output = run(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert_eq!(text(&output.stderr), want, "{args:?}");
        assert_eq!(text(&output.stdout), "", "{args:?}");
    }
}

#[test]
fn a_server_that_cannot_join_says_where_and_why_and_runs_alone() {
    let port = dead_port();
    let (mut node, _) = crc_server_with(
        2,
        "late",
        None,
        &[
            "--connect_to_host",
            "127.0.0.1",
            "--connect_to_port",
            &port.to_string(),
        ],
    );
    let line = node.line_starting("could not join");
    assert!(
        line.starts_with(&format!(
            "could not join the network through 127.0.0.1:{port}: "
        )) && line.ends_with("; running alone"),
        "{line}"
    );
    assert!(!line.contains("Some("), "{line}");
    assert_eq!(node.state()["id"], 2, "still running");
}

#[test]
fn a_server_refused_as_a_duplicate_says_so_and_runs_alone() {
    let (_first, addr) = crc_server(1, "first", None);
    let (mut second, _) = crc_server_with(
        1,
        "second",
        None,
        &[
            "--connect_to_host",
            "127.0.0.1",
            "--connect_to_port",
            &addr.port().to_string(),
        ],
    );
    let line = second.line_starting("could not join");
    assert_eq!(
        line,
        format!(
            "could not join the network through {addr}: server 1 refused us: A machine has already registered with ID 1; running alone"
        )
    );
    assert!(second.is_running());
    assert_eq!(second.state()["hosts_db"], serde_json::json!([]));
}

#[test]
fn a_joined_server_says_through_which_server() {
    let (_first, addr) = crc_server(1, "first", None);
    let (mut second, _) = crc_server_with(
        2,
        "second",
        None,
        &[
            "--connect_to_host",
            "127.0.0.1",
            "--connect_to_port",
            &addr.port().to_string(),
        ],
    );
    assert_eq!(
        second.line_starting("joined"),
        format!("joined the network through server 1 at {addr}")
    );
}

#[test]
fn by_default_a_server_listens_on_every_interface() {
    let mut node = Node::start(&["server", "--id", "1", "--servername", "a", "--port", "0"]);
    let line = node.line_starting("listening on");
    assert!(line.starts_with("listening on 0.0.0.0:"), "{line}");
    let help = text(&run(&["server", "--help"]).stdout);
    assert!(help.contains("--bind HOST"), "{help}");
    assert!(help.contains("0.0.0.0"), "{help}");
}

#[test]
fn server_and_client_usage_mark_info_optional() {
    for command in ["server", "client"] {
        let help = text(&run(&[command, "--help"]).stdout);
        let usage = help.lines().next().unwrap();
        assert!(usage.contains("[--info TEXT]"), "{usage}");
    }
}
