//! Gossip frames (API port 500–503, P2P port 504–507) in words, for the
//! debug log and the run report, from the public decoders alone.

use super::api::{self, ApiMessage};
use super::p2p::{self, P2pMessage};
use crate::reactor::Described;
use crate::wire::describe_frame;

fn preview(data: &[u8]) -> String {
    let text = String::from_utf8_lossy(&data[..data.len().min(40)]).into_owned();
    format!("{text:?}{}", if data.len() > 40 { "…" } else { "" })
}

/// The frame at the start of `buf`, described.
pub fn describe(buf: &[u8]) -> Described {
    describe_frame(buf, |kind, body| {
        Ok(if kind < p2p::PULL {
            match api::decode(kind, body) {
                Ok(ApiMessage::Announce {
                    ttl,
                    data_type,
                    data,
                }) => (
                    format!("ANNOUNCE {}", preview(data)),
                    format!("ttl={ttl} type={data_type} data={}", preview(data)),
                ),
                Ok(ApiMessage::Notify { data_type }) => (
                    format!("NOTIFY type {data_type}"),
                    format!("type={data_type}"),
                ),
                Ok(ApiMessage::Notification {
                    msg_id,
                    data_type,
                    data,
                }) => (
                    format!("NOTIFICATION #{msg_id} {}", preview(data)),
                    format!("msg_id={msg_id} type={data_type} data={}", preview(data)),
                ),
                Ok(ApiMessage::Validation { msg_id, valid }) => (
                    format!(
                        "VALIDATION #{msg_id} {}",
                        if valid { "valid" } else { "invalid" }
                    ),
                    format!("msg_id={msg_id} valid={valid}"),
                ),
                Err(e) => return Err(e.to_string()),
            }
        } else {
            match p2p::decode(kind, body) {
                Ok(P2pMessage::Pull(addr)) => {
                    (format!("PULL from {addr}"), format!("listen={addr}"))
                }
                Ok(P2pMessage::Push(addr)) => {
                    (format!("PUSH from {addr}"), format!("listen={addr}"))
                }
                Ok(P2pMessage::PullResponse(list)) => (
                    format!("PULL_RESPONSE {} peers", list.len()),
                    format!(
                        "peers={}",
                        list.iter()
                            .map(|a| a.to_string())
                            .collect::<Vec<_>>()
                            .join(",")
                    ),
                ),
                Ok(P2pMessage::Content {
                    ttl,
                    data_type,
                    data,
                }) => (
                    format!("CONTENT {} ttl {ttl}", preview(data)),
                    format!("ttl={ttl} type={data_type} data={}", preview(data)),
                ),
                Err(e) => return Err(e.to_string()),
            }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddrV4;

    #[test]
    fn push_and_content_frames_are_named() {
        let mut out = Vec::new();
        p2p::write_push(&mut out, &"127.0.0.1:7001".parse::<SocketAddrV4>().unwrap());
        let push_len = out.len();
        match describe(&out) {
            Described::Frame { len, label, .. } => {
                assert_eq!(len, push_len);
                assert_eq!(label, "PUSH from 127.0.0.1:7001");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(describe(&out[..3]), Described::Incomplete);
        assert!(matches!(describe(&[0, 1, 0, 0]), Described::Bad(_)));
    }
}
