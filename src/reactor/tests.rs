//! The reactor on real loopback sockets: actions run in the order the
//! protocol wrote them (issue 8 item 15).

use super::{ConnId, Out, Protocol, Reactor};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;
use std::time::Instant;

/// Each line names a sequence of actions on the connection it came from.
struct Orders;

impl Protocol for Orders {
    type Timer = u64;
    type Tag = u64;

    fn on_data(
        &mut self,
        _now: Instant,
        conn: ConnId,
        data: &[u8],
        out: &mut Out<Self>,
    ) -> Result<usize, String> {
        let Some(end) = data.iter().position(|&b| b == b'\n') else {
            return Ok(0);
        };
        match &data[..end] {
            b"send, close after flush, send" => {
                out.send(conn, b"before\n");
                out.close_after_flush(conn);
                out.send(conn, b"after\n");
            }
            b"send, close" => {
                out.send(conn, b"before\n");
                out.close(conn);
            }
            b"close, send" => {
                out.close(conn);
                out.send(conn, b"after\n");
            }
            b"close after flush, send, close" => {
                out.close_after_flush(conn);
                out.send(conn, b"after\n");
                out.close(conn);
            }
            other => return Err(format!("unknown order {other:?}")),
        }
        Ok(end + 1)
    }
}

fn start() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut reactor = Reactor::new(vec![listener], false).unwrap();
        reactor.run(&mut Orders).unwrap();
    });
    addr
}

/// What the reactor sends in answer to `order` before it closes the connection.
fn answer_to(addr: SocketAddr, order: &str) -> String {
    let mut client = TcpStream::connect(addr).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    client.write_all(format!("{order}\n").as_bytes()).unwrap();
    let mut answer = Vec::new();
    client
        .read_to_end(&mut answer)
        .expect("closed by the reactor");
    String::from_utf8(answer).unwrap()
}

#[test]
fn a_send_after_close_after_flush_is_not_sent() {
    let addr = start();
    assert_eq!(answer_to(addr, "send, close after flush, send"), "before\n");
    assert_eq!(answer_to(addr, "close after flush, send, close"), "");
}

#[test]
fn a_send_before_close_goes_out_and_one_after_it_does_not() {
    let addr = start();
    assert_eq!(answer_to(addr, "send, close"), "before\n");
    assert_eq!(answer_to(addr, "close, send"), "");
}
