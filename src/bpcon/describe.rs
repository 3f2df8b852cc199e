//! BPCon frames (replica links 601–610, client API 651–657) in words, for
//! the debug log and the run report, from the public decoders alone
//! (`1b slot 7 ballot 12 from #2 (signed)`). Replicas are named by their
//! index in the group: a frame alone doesn't carry the group's names.

use super::api::{self, ApiMsg};
use super::messages::{self, PeerMsg};
use crate::reactor::Described;
use crate::wire::describe_frame;

/// Group sizes are at most this (replica indices are one byte).
const ANY_GROUP: usize = 256;

fn short(bytes: &[u8]) -> String {
    bytes
        .iter()
        .take(4)
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
        + "…"
}

fn describe_peer(msg: &PeerMsg) -> (String, String) {
    match msg {
        PeerMsg::Challenge { nonce } => (
            "CHALLENGE".into(),
            format!("nonce={}", super::op::hex(&nonce[..])),
        ),
        PeerMsg::Mac { .. } => ("MAC".into(), "HMAC-SHA1 of the frame before".into()),
        PeerMsg::Welcome { .. } => ("WELCOME".into(), "(signed)".into()),
        PeerMsg::Hello { from, to, .. } => (
            format!("HELLO {from}→{to}"),
            format!("from={from} to={to} (signed)"),
        ),
        PeerMsg::Status {
            committed,
            max_ballot,
        } => (
            format!("STATUS committed {committed}"),
            match max_ballot {
                Some(b) => format!("committed={committed} max_ballot={b}"),
                None => format!("committed={committed} max_ballot=none"),
            },
        ),
        PeerMsg::Forward { requests } => (
            format!("FORWARD ({} ops)", requests.requests.len()),
            format!("ops={}", requests.requests.len()),
        ),
        PeerMsg::OneA { slot, ballot } => (
            format!("1a slot {slot} ballot {ballot}"),
            format!("slot={slot} ballot={ballot}"),
        ),
        PeerMsg::OneB { signed, values } => {
            let b = &signed.body;
            (
                format!(
                    "1b slot {} ballot {} from #{} (signed)",
                    b.slot, b.ballot, b.acceptor
                ),
                format!(
                    "acceptor=#{} slot={} ballot={} voted={} reported={} values={}",
                    b.acceptor,
                    b.slot,
                    b.ballot,
                    b.voted
                        .map(|(bal, d)| format!("{bal}:{}", short(&d)))
                        .unwrap_or_else(|| "none".into()),
                    b.reported.len(),
                    values.len()
                ),
            )
        }
        PeerMsg::Refuse {
            slot,
            max_ballot,
            committed,
        } => (
            format!("REFUSE slot {slot}"),
            format!("slot={slot} max_ballot={max_ballot:?} committed={committed}"),
        ),
        PeerMsg::OneC {
            slot,
            ballot,
            value,
            proofs,
        } => (
            format!(
                "1c slot {slot} ballot {ballot} ({} ops)",
                value.requests.len()
            ),
            format!(
                "slot={slot} ballot={ballot} ops={} proofs={}",
                value.requests.len(),
                proofs.len()
            ),
        ),
        PeerMsg::TwoAv {
            slot,
            ballot,
            digest,
        } => (
            format!("2av slot {slot} ballot {ballot}"),
            format!("slot={slot} ballot={ballot} digest={}", short(digest)),
        ),
        PeerMsg::TwoB {
            slot,
            ballot,
            digest,
        } => (
            format!("2b slot {slot} ballot {ballot}"),
            format!("slot={slot} ballot={ballot} digest={}", short(digest)),
        ),
        PeerMsg::TwoBSigs { signed } => {
            let slots = |v: &[crate::bpcon::messages::Vote]| {
                let first = v.first().map_or(0, |v| v.slot);
                let last = v.last().map_or(0, |v| v.slot);
                (first, last)
            };
            let (first, last) = slots(&signed.votes);
            (
                format!("2b signatures, slots {first}..={last}"),
                format!(
                    "votes={} first_slot={first} last_slot={last}",
                    signed.votes.len()
                ),
            )
        }
        PeerMsg::CatchupRequest { from_slot } => (
            format!("CATCHUP_REQUEST from {from_slot}"),
            format!("from_slot={from_slot}"),
        ),
        PeerMsg::CatchupReply {
            slot,
            committed,
            value,
            proof,
        } => (
            format!("CATCHUP_REPLY slot {slot}"),
            format!(
                "slot={slot} committed={committed} ops={} certificate={}",
                value.requests.len(),
                match proof {
                    Some(c) => format!("{} votes in ballot {}", c.votes.len(), c.ballot),
                    None => "none".into(),
                }
            ),
        ),
    }
}

fn describe_api(msg: &ApiMsg) -> (String, String) {
    match msg {
        ApiMsg::Request { client, seq, text } => {
            let text = String::from_utf8_lossy(text);
            (
                format!("REQUEST {client}/{seq} {text:?}"),
                format!("client={client} seq={seq} text={text:?}"),
            )
        }
        ApiMsg::Result {
            client,
            seq,
            code,
            message,
        } => (
            format!("RESULT {client}/{seq} {}", api::code_meaning(*code)),
            format!("client={client} seq={seq} code={code} message={message:?}"),
        ),
        ApiMsg::Get { key } => (format!("GET {key:?}"), format!("key={key:?}")),
        ApiMsg::Value { value } => (format!("VALUE {value:?}"), format!("value={value:?}")),
        ApiMsg::Dump => ("DUMP".into(), String::new()),
        ApiMsg::Info => ("INFO".into(), String::new()),
        ApiMsg::Group {
            n,
            f,
            quorum,
            links,
        } => (
            format!("GROUP n={n} f={f} quorum={quorum} links={links}"),
            format!("n={n} f={f} quorum={quorum} links={links}"),
        ),
        ApiMsg::DumpEntry { key, value } => (
            format!("DUMP_ENTRY {key:?}"),
            format!("key={key:?} value={value:?}"),
        ),
        ApiMsg::DumpEnd {
            entries,
            committed,
            digest,
        } => (
            format!("DUMP_END {entries} entries"),
            format!(
                "entries={entries} committed={committed} digest={}",
                short(digest)
            ),
        ),
    }
}

/// The frame at the start of `buf`, described.
pub fn describe(buf: &[u8]) -> Described {
    describe_frame(buf, |kind, body| {
        if (messages::HELLO..=messages::CATCHUP_REPLY).contains(&kind) {
            PeerMsg::decode(kind, body, ANY_GROUP)
                .map(|m| describe_peer(&m))
                .map_err(|e| e.to_string())
        } else {
            ApiMsg::decode(kind, body)
                .map(|m| describe_api(&m))
                .map_err(|e| e.to_string())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_1a_and_a_get_are_named() {
        let frame = PeerMsg::OneA {
            slot: 7,
            ballot: 12,
        }
        .to_frame()
        .unwrap();
        let Described::Frame { len, label, .. } = describe(&frame) else {
            panic!()
        };
        assert_eq!((len, label.as_str()), (frame.len(), "1a slot 7 ballot 12"));
        let get = ApiMsg::Get { key: "k".into() }.to_frame();
        let Described::Frame { label, .. } = describe(&get) else {
            panic!()
        };
        assert_eq!(label, "GET \"k\"");
    }
}
