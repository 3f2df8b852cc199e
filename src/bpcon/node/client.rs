//! The client API: requests go to the replica (oversized or non-UTF-8
//! ones are refused here), reads are answered from the store at once.

use super::{Node, NodeOut, MAX_DUMP_FIELD};
use crate::bpcon::api::{ApiCodec, ApiMsg};
use crate::bpcon::op::{RequestId, MAX_OP_LEN};
use crate::bpcon::replica::CODE_FAILED;
use crate::reactor::ConnId;
use crate::wire::{decode_each, Framed, Stopped};
use std::ops::ControlFlow;

impl Node {
    pub(super) fn on_client_data(
        &mut self,
        handle: u64,
        conn: ConnId,
        data: &[u8],
        out: &mut NodeOut,
    ) -> Result<usize, String> {
        let (used, stopped) = decode_each(&Framed(ApiCodec), data, |msg| {
            match msg {
                ApiMsg::Request { client, seq, text } => {
                    let id = RequestId { client, seq };
                    if text.len() > MAX_OP_LEN {
                        let msg = ApiMsg::Result {
                            client,
                            seq,
                            code: CODE_FAILED,
                            message: format!(
                                "bad request: operation of {} bytes is over the {MAX_OP_LEN}-byte limit",
                                text.len()
                            ),
                        };
                        out.send_with(conn, |o| msg.encode(o));
                        return ControlFlow::Continue(());
                    }
                    match std::str::from_utf8(&text) {
                        Ok(text) => self.replica.submit(handle, id, text),
                        Err(_) => {
                            let msg = ApiMsg::Result {
                                client,
                                seq,
                                code: CODE_FAILED,
                                message: "bad request: operation is not UTF-8".into(),
                            };
                            out.send_with(conn, |o| msg.encode(o));
                        }
                    }
                }
                ApiMsg::Get { key } => {
                    let value = self.replica.store().kv.get(&key).cloned();
                    out.send_with(conn, |o| ApiMsg::Value { value }.encode(o));
                }
                ApiMsg::Dump => {
                    let store = self.replica.store();
                    let mut entries = 0;
                    for (key, value) in &store.kv {
                        if key.len() + value.len() > MAX_DUMP_FIELD {
                            continue;
                        }
                        entries += 1;
                        let msg = ApiMsg::DumpEntry {
                            key: key.clone(),
                            value: value.clone(),
                        };
                        out.send_with(conn, |o| msg.encode(o));
                    }
                    let end = ApiMsg::DumpEnd {
                        entries,
                        committed: store.log.len() as u64,
                        digest: store.log_digest(),
                    };
                    out.send_with(conn, |o| end.encode(o));
                }
                ApiMsg::Info => {
                    let group = self.replica.group();
                    let links = self.outgoing.iter().flatten().count();
                    let msg = ApiMsg::Group {
                        n: group.n() as u8,
                        f: group.f as u8,
                        quorum: group.quorum as u8,
                        links: links as u8,
                    };
                    out.send_with(conn, |o| msg.encode(o));
                }
                other => return ControlFlow::Break(format!("a client may not send {other:?}")),
            }
            ControlFlow::Continue(())
        });
        match stopped {
            None => Ok(used),
            Some(Stopped::Decode(e)) => Err(e.to_string()),
            Some(Stopped::Handler(why)) => Err(why),
        }
    }
}
