//! The client driven by hand: no sockets, no terminal.
use super::*;
use crate::reactor::Action;
use crate::reactor::Actions;

const SERVER: ConnId = 7;

fn client(exit_on_quit: bool) -> Client {
    Client::new(ClientConfig {
        id: 101,
        username: "frodo".into(),
        info: "hi".into(),
        server: "127.0.0.1:1".parse().unwrap(),
        exit_on_quit,
    })
}

/// A client whose connection is made (its registration is sent).
fn connected(exit_on_quit: bool) -> Client {
    let mut c = client(exit_on_quit);
    c.on_start(Instant::now(), &mut Actions::new());
    c.on_connected(Instant::now(), (), SERVER, &mut Actions::new());
    c
}

fn status(code: u16, text: &[u8]) -> Vec<u8> {
    codec::to_bytes(&Message::Status {
        source: 1,
        destination: 0,
        code,
        text,
    })
}

fn welcomed() -> Client {
    let mut c = connected(false);
    c.on_data(
        Instant::now(),
        SERVER,
        &status(codec::STATUS_WELCOME, b"Welcome"),
        &mut Actions::new(),
    )
    .unwrap();
    c
}

fn printed<T, G>(out: &Actions<T, G>) -> Vec<String> {
    out.others()
        .iter()
        .filter_map(|a| match a {
            Action::Print(line) => Some(line.clone()),
            _ => None,
        })
        .collect()
}

fn typed(c: &mut Client, line: &str) -> ClientOut {
    let mut out = Actions::new();
    c.on_stdin_line(Instant::now(), line, &mut out);
    out
}

#[test]
fn plain_text_suggests_msg() {
    let mut c = welcomed();
    let out = typed(&mut c, "hello there");
    assert_eq!(
        printed(&out),
        ["'hello there' is not a command: to chat, type /msg <id> <text> (/help lists the commands)"]
    );
    assert!(out.sent().is_empty());
    let out = typed(&mut c, "/frobnicate");
    assert!(printed(&out)[0].starts_with("unknown command '/frobnicate'; commands: /msg"));
}

#[test]
fn msg_without_text_is_refused_and_sends_nothing() {
    let mut c = welcomed();
    for line in ["/msg 102", "/msg 102   ", "/msg"] {
        let out = typed(&mut c, line);
        assert!(out.sent().is_empty(), "{line} sent a frame");
        let said = printed(&out);
        assert_eq!(said.len(), 1, "{line}: {said:?}");
        assert!(
            said[0].ends_with("usage: /msg <id> <text>"),
            "{line}: {said:?}"
        );
    }
    assert_eq!(
        printed(&typed(&mut c, "/msg 102")),
        ["no text to send to 102; usage: /msg <id> <text>"]
    );
}

#[test]
fn msg_ids_out_of_range_are_said_in_words() {
    let mut c = welcomed();
    let out = typed(&mut c, "/msg 4294967296 hi");
    assert_eq!(
        printed(&out),
        ["ID 4294967296 is out of range (1–4294967295); usage: /msg <id> <text>"]
    );
    assert!(out.sent().is_empty());
    assert_eq!(
        printed(&typed(&mut c, "/msg bob hi")),
        ["ID 'bob' is not a number; usage: /msg <id> <text>"]
    );
    let out = typed(&mut c, "/msg 102 hi there");
    assert_eq!(
        out.sent(),
        [(
            SERVER,
            &codec::to_bytes(&Message::ClientChat {
                source: 101,
                destination: 102,
                text: b"hi there"
            })[..]
        )]
    );
}

#[test]
fn joins_and_quits_without_text_end_without_a_colon() {
    let mut c = welcomed();
    let mut out = Actions::new();
    let join = |info: &'static [u8]| {
        codec::to_bytes(&Message::ClientRegistration {
            source: 102,
            last_hop: 1,
            name: b"sam",
            info,
        })
    };
    c.on_data(Instant::now(), SERVER, &join(b""), &mut out)
        .unwrap();
    let quit = codec::to_bytes(&Message::ClientQuit {
        source: 102,
        text: b"",
    });
    c.on_data(Instant::now(), SERVER, &quit, &mut out).unwrap();
    c.on_data(Instant::now(), SERVER, &join(b"back"), &mut out)
        .unwrap();
    assert_eq!(
        printed(&out),
        [
            "* sam (#102) joined",
            "* sam (#102) left",
            "* sam (#102) joined: back"
        ]
    );
}

#[test]
fn a_chat_to_oneself_shows_ones_own_name() {
    let mut c = welcomed();
    let mut out = Actions::new();
    let chat = codec::to_bytes(&Message::ClientChat {
        source: 101,
        destination: 101,
        text: b"note to self",
    });
    c.on_data(Instant::now(), SERVER, &chat, &mut out).unwrap();
    assert_eq!(printed(&out), ["<frodo> note to self"]);
}

#[test]
fn end_of_input_sends_a_quit_then_stops() {
    let mut c = welcomed();
    let mut out = Actions::new();
    c.on_stdin_closed(Instant::now(), &mut out);
    let quit = codec::to_bytes(&Message::ClientQuit {
        source: 101,
        text: b"",
    });
    assert_eq!(out.sent(), [(SERVER, &quit[..])]);
    assert_eq!(out.others(), &[Action::Stop]);
}

#[test]
fn end_of_input_before_the_answer_waits_for_it() {
    let mut c = connected(false);
    let mut out = Actions::new();
    c.on_stdin_closed(Instant::now(), &mut out);
    assert!(out.sent().is_empty());
    assert!(!out.others().contains(&Action::Stop));
    let mut out = Actions::new();
    c.on_data(
        Instant::now(),
        SERVER,
        &status(codec::STATUS_WELCOME, b"Welcome"),
        &mut out,
    )
    .unwrap();
    assert_eq!(out.sent().len(), 1, "the quit");
    assert!(out.others().contains(&Action::Stop));
    // A server that never answers does not keep the client: the timer ends it.
    let mut silent = connected(false);
    let mut out = Actions::new();
    silent.on_stdin_closed(Instant::now(), &mut out);
    let mut out = Actions::new();
    silent.on_timer(Instant::now(), Timer::Leave, &mut out);
    assert_eq!(out.others(), &[Action::Stop]);
}

#[test]
fn a_refused_id_is_a_failure_with_the_servers_reason() {
    let text = b"Someone has already registered with ID 101";
    // At a terminal: stop at once; the exit error says it (once).
    let mut c = connected(true);
    let mut out = Actions::new();
    c.on_data(
        Instant::now(),
        SERVER,
        &status(codec::STATUS_DUPLICATE_ID, text),
        &mut out,
    )
    .unwrap();
    assert_eq!(out.others(), &[Action::Stop]);
    assert_eq!(
        c.failure(),
        Some("the server refused this client: Someone has already registered with ID 101")
    );
    // Driven: the status is printed and kept for `state`; end of input ends it.
    let mut c = connected(false);
    let mut out = Actions::new();
    c.on_data(
        Instant::now(),
        SERVER,
        &status(codec::STATUS_DUPLICATE_ID, text),
        &mut out,
    )
    .unwrap();
    assert_eq!(
        printed(&out),
        ["* [duplicate ID] Someone has already registered with ID 101"]
    );
    assert!(c.failure().is_some());
    let mut out = Actions::new();
    c.on_closed(Instant::now(), SERVER, &CloseReason::PeerClosed, &mut out);
    assert!(printed(&out).is_empty(), "{:?}", printed(&out));
    c.on_stdin_closed(Instant::now(), &mut out);
    assert!(out.sent().is_empty(), "no quit for a refused client");
    assert_eq!(out.others(), &[Action::Stop]);
}

#[test]
fn a_lost_server_ends_a_terminal_client_with_a_reason() {
    let mut c = connected(true);
    let mut out = Actions::new();
    c.on_closed(Instant::now(), SERVER, &CloseReason::PeerClosed, &mut out);
    assert_eq!(out.others(), &[Action::Stop]);
    assert_eq!(
        c.failure(),
        Some("the server closed the connection (closed by the peer)")
    );
    // After /quit, the close is expected: no failure.
    let mut c = connected(true);
    c.on_stdin_line(Instant::now(), "/quit bye", &mut Actions::new());
    c.on_closed(
        Instant::now(),
        SERVER,
        &CloseReason::PeerClosed,
        &mut Actions::new(),
    );
    assert_eq!(c.failure(), None);
    // Driven: said on stdout, the client stays for `state`.
    let mut c = connected(false);
    let mut out = Actions::new();
    c.on_closed(Instant::now(), SERVER, &CloseReason::PeerClosed, &mut out);
    assert_eq!(
        printed(&out),
        ["* the server closed the connection (closed by the peer)"]
    );
    assert!(!out.others().contains(&Action::Stop));
}

#[test]
fn a_failed_connection_stops_at_once_and_says_nothing_itself() {
    let mut c = client(true);
    let mut out = Actions::new();
    c.on_connect_failed(Instant::now(), (), "Connection refused", &mut out);
    assert_eq!(out.others(), &[Action::Stop]);
    assert_eq!(
        c.failure(),
        Some("could not connect to 127.0.0.1:1: Connection refused")
    );
}

/// What `state` printed when it was built by hand with `json!` (a map, so
/// its keys sorted): the struct must print the same bytes.
fn state_by_hand(c: &Client) -> String {
    let s = c.state();
    serde_json::json!({
        "id": s.id,
        "username": s.username,
        "connected": s.connected,
        "connected_user_ids": s.connected_user_ids,
        "status_updates_log": s.status_updates_log,
        "chat_messages_log": s.chat_messages_log,
    })
    .to_string()
}

#[test]
fn the_state_json_is_the_checked_contract() {
    let c = client(false);
    let line = c.state().to_json().to_string();
    assert_eq!(
        line,
        r#"{"chat_messages_log":[],"connected":false,"connected_user_ids":[],"id":101,"status_updates_log":[],"username":"frodo"}"#
    );
    assert_eq!(line, state_by_hand(&c));
    let mut c = welcomed();
    let mut out = Actions::new();
    let join = codec::to_bytes(&Message::ClientRegistration {
        source: 102,
        last_hop: 1,
        name: b"sam",
        info: b"",
    });
    let chat = codec::to_bytes(&Message::ClientChat {
        source: 102,
        destination: 101,
        text: b"hi \"frodo\"",
    });
    c.on_data(Instant::now(), SERVER, &join, &mut out).unwrap();
    c.on_data(Instant::now(), SERVER, &chat, &mut out).unwrap();
    let line = c.state().to_json().to_string();
    assert!(
        line.starts_with(r#"{"chat_messages_log":["#)
            && line.contains(r#""connected":true,"connected_user_ids":[102]"#),
        "{line}"
    );
    assert_eq!(line, state_by_hand(&c));
}
