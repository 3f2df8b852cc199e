//! Chord frames (DHT API 650–653, node-to-node 680–691) in words, for the
//! debug log and the run report, from the public decoders alone.

use super::api_wire::{self, ApiMsg};
use super::peer_wire::{NodeRef, PeerMsg};
use crate::reactor::Described;
use crate::wire::describe_frame;

fn short(bytes: &[u8]) -> String {
    let hex: String = bytes.iter().take(4).map(|b| format!("{b:02x}")).collect();
    format!("{hex}…")
}

fn preview(data: &[u8]) -> String {
    let text = String::from_utf8_lossy(&data[..data.len().min(32)]).into_owned();
    format!(
        "{text:?}{} ({} bytes)",
        if data.len() > 32 { "…" } else { "" },
        data.len()
    )
}

fn node(n: &NodeRef) -> String {
    format!("{}@{}", n.id, n.addr)
}

fn nodes(list: &[NodeRef]) -> String {
    list.iter().map(node).collect::<Vec<_>>().join(",")
}

fn describe_peer(msg: &PeerMsg) -> (String, String) {
    match msg {
        PeerMsg::FindSuccessor {
            req,
            target,
            exclude,
        } => (
            format!("FIND_SUCCESSOR key={target}… req {req}"),
            format!("req={req} target={} exclude={exclude:?}", target.to_hex()),
        ),
        PeerMsg::FindReply {
            req,
            found,
            nodes: list,
        } => (
            format!(
                "FIND_REPLY req {req} {} {}",
                if *found { "owner" } else { "ask" },
                list.first().map(node).unwrap_or_default()
            ),
            format!("req={req} found={found} nodes={}", nodes(list)),
        ),
        PeerMsg::GetNeighbours { req } => {
            (format!("GET_NEIGHBOURS req {req}"), format!("req={req}"))
        }
        PeerMsg::Neighbours {
            req,
            predecessor,
            successors,
        } => (
            format!("NEIGHBOURS req {req} {} succ", successors.len()),
            format!(
                "req={req} predecessor={} successors={}",
                predecessor
                    .as_ref()
                    .map(node)
                    .unwrap_or_else(|| "none".into()),
                nodes(successors)
            ),
        ),
        PeerMsg::Notify { node: n } => (format!("NOTIFY {}", n.id), format!("node={}", node(n))),
        PeerMsg::Store(s) => (
            format!("STORE key={} req {}", short(&s.key), s.req),
            format!(
                "req={} flags={} hops_left={} ttl_ms={} stamp={} key={} value={}",
                s.req,
                s.flags,
                s.hops_left,
                s.ttl_ms,
                s.stamp,
                short(&s.key),
                preview(&s.value)
            ),
        ),
        PeerMsg::StoreAck { req } => (format!("STORE_ACK req {req}"), format!("req={req}")),
        PeerMsg::Fetch { req, key } => (
            format!("FETCH key={} req {req}", short(key)),
            format!("req={req} key={}", short(key)),
        ),
        PeerMsg::FetchReply { req, value } => (
            format!(
                "FETCH_REPLY req {req} {}",
                if value.is_some() { "found" } else { "none" }
            ),
            format!(
                "req={req} value={}",
                value
                    .as_ref()
                    .map(|(stamp, v)| format!("{} stamp={stamp}", preview(v)))
                    .unwrap_or_else(|| "none".into())
            ),
        ),
        PeerMsg::Ping { req } => (format!("PING req {req}"), format!("req={req}")),
        PeerMsg::Pong { req } => (format!("PONG req {req}"), format!("req={req}")),
        PeerMsg::Leaving {
            node: n,
            predecessor,
            successors,
        } => (
            format!("LEAVING {}", n.id),
            format!(
                "node={} predecessor={} successors={}",
                node(n),
                predecessor
                    .as_ref()
                    .map(node)
                    .unwrap_or_else(|| "none".into()),
                nodes(successors)
            ),
        ),
    }
}

fn describe_api(msg: &ApiMsg) -> (String, String) {
    match msg {
        ApiMsg::Put {
            ttl,
            replication,
            key,
            value,
        } => (
            format!("DHT_PUT key={}", short(key)),
            format!(
                "ttl={ttl} replication={replication} key={} value={}",
                short(key),
                preview(value)
            ),
        ),
        ApiMsg::Get { key } => (
            format!("DHT_GET key={}", short(key)),
            format!("key={}", short(key)),
        ),
        ApiMsg::Success { key, value } => (
            format!("DHT_SUCCESS key={}", short(key)),
            format!("key={} value={}", short(key), preview(value)),
        ),
        ApiMsg::Failure { key } => (
            format!("DHT_FAILURE key={}", short(key)),
            format!("key={}", short(key)),
        ),
    }
}

/// The frame at the start of `buf`, described.
pub fn describe(buf: &[u8]) -> Described {
    describe_frame(buf, |kind, body| {
        if (api_wire::DHT_PUT..=api_wire::DHT_FAILURE).contains(&kind) {
            ApiMsg::decode(kind, body)
                .map(|m| describe_api(&m))
                .map_err(|e| e.to_string())
        } else {
            PeerMsg::decode(kind, body)
                .map(|m| describe_peer(&m))
                .map_err(|e| e.to_string())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_and_dht_get_are_named() {
        let mut out = Vec::new();
        PeerMsg::Ping { req: 9 }.write(&mut out).unwrap();
        let ping = out.len();
        ApiMsg::Get { key: [0xab; 32] }.write(&mut out).unwrap();
        let Described::Frame { len, label, .. } = describe(&out) else {
            panic!()
        };
        assert_eq!((len, label.as_str()), (ping, "PING req 9"));
        let Described::Frame { label, .. } = describe(&out[ping..]) else {
            panic!()
        };
        assert_eq!(label, "DHT_GET key=abababab…");
        assert_eq!(describe(&out[..2]), Described::Incomplete);
    }
}
