//! The node-to-node protocol: this project's own, on the shared 4-byte
//! framing (size u16, type u16, big-endian). Requests carry a `req` number
//! that the answer echoes; requests go out on the asker's own connection to
//! that peer and the answer comes back on it. See docs/chord.md for the table.

use super::id::{Id, ID_LEN};
use crate::wire::{write_frame, BodyCodec, BodyError, FrameError, Reader, TooLarge};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

pub const FIND_SUCCESSOR: u16 = 680;
pub const FIND_REPLY: u16 = 681;
pub const GET_NEIGHBOURS: u16 = 682;
pub const NEIGHBOURS: u16 = 683;
pub const NOTIFY: u16 = 684;
pub const STORE: u16 = 685;
pub const STORE_ACK: u16 = 686;
pub const FETCH: u16 = 687;
pub const FETCH_REPLY: u16 = 688;
pub const PING: u16 = 689;
pub const PONG: u16 = 690;
pub const LEAVING: u16 = 691;

/// Most node references one message may carry (successor lists, excludes).
pub const MAX_NODES: usize = 64;

/// A node: its ring ID and the address its peers reach it on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NodeRef {
    pub id: Id,
    pub addr: SocketAddr,
}

/// STORE flag: the receiver owns the key and copies it to its successors.
pub const STORE_AS_OWNER: u8 = 1;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerMsg {
    /// Which node follows `target`? `exclude` names nodes the asker found dead.
    FindSuccessor {
        req: u32,
        target: Id,
        exclude: Vec<Id>,
    },
    /// `found`: `nodes` = the owner then its successors. Otherwise `nodes[0]`
    /// is a closer node to ask next.
    FindReply {
        req: u32,
        found: bool,
        nodes: Vec<NodeRef>,
    },
    /// Stabilize: your predecessor and successor list, please.
    GetNeighbours {
        req: u32,
    },
    Neighbours {
        req: u32,
        predecessor: Option<NodeRef>,
        successors: Vec<NodeRef>,
    },
    /// "I think I am your predecessor."
    Notify {
        node: NodeRef,
    },
    /// Keep this pair (see [`StoreMsg`]).
    Store(StoreMsg),
    StoreAck {
        req: u32,
    },
    Fetch {
        req: u32,
        key: [u8; 32],
    },
    /// The value held and its version stamp, if any.
    FetchReply {
        req: u32,
        value: Option<(u64, Vec<u8>)>,
    },
    Ping {
        req: u32,
    },
    Pong {
        req: u32,
    },
    /// A polite goodbye, sent to the predecessor and the successor after the
    /// keys: splice me out.
    Leaving {
        node: NodeRef,
        predecessor: Option<NodeRef>,
        successors: Vec<NodeRef>,
    },
}

fn put_node(out: &mut Vec<u8>, node: &NodeRef) {
    out.extend_from_slice(&node.id.0);
    match node.addr.ip() {
        IpAddr::V4(ip) => {
            out.push(4);
            out.extend_from_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            out.push(6);
            out.extend_from_slice(&ip.octets());
        }
    }
    out.extend_from_slice(&node.addr.port().to_be_bytes());
}

fn put_nodes(out: &mut Vec<u8>, nodes: &[NodeRef]) {
    let nodes = &nodes[..nodes.len().min(MAX_NODES)];
    out.push(nodes.len() as u8);
    for node in nodes {
        put_node(out, node);
    }
}

fn put_optional_node(out: &mut Vec<u8>, node: &Option<NodeRef>) {
    match node {
        Some(node) => {
            out.push(1);
            put_node(out, node);
        }
        None => out.push(0),
    }
}

/// A STORE: keep this pair. `req` 0 asks for no STORE_ACK; `hops_left`
/// bounds how often a misdirected owner-store is passed back to a
/// predecessor. `stamp` is the value's version (version.rs); 0 on an
/// owner-store fresh from a client asks the owner to stamp it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreMsg {
    pub req: u32,
    /// STORE_AS_OWNER, or 0 for a plain copy.
    pub flags: u8,
    pub hops_left: u8,
    /// What is left of the pair's TTL, in milliseconds.
    pub ttl_ms: u32,
    pub stamp: u64,
    pub key: [u8; 32],
    pub value: Vec<u8>,
}

/// Why a frame from a peer is not a message of the node-to-node protocol
/// (the connection that sent it is closed, with this as the reason).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerWireError {
    /// The frame header is wrong.
    Frame(FrameError),
    /// The body is short, or longer than its fields.
    Body(BodyError),
    UnknownType(u16),
    /// More excluded IDs in a FIND_SUCCESSOR than MAX_NODES.
    TooManyExcluded(usize),
    /// A node list longer than MAX_NODES.
    TooManyNodes(usize),
    /// A node address family other than 4 or 6.
    AddressFamily(u8),
    /// A "has predecessor" flag other than 0 or 1.
    PresenceFlag(u8),
    /// A "found" flag other than 0 or 1.
    FoundFlag(u8),
    /// A FIND_REPLY naming no node.
    EmptyFindReply,
}

impl fmt::Display for PeerWireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerWireError::Frame(e) => write!(f, "{e}"),
            PeerWireError::Body(e) => write!(f, "{e}"),
            PeerWireError::UnknownType(kind) => write!(f, "unknown peer message type {kind}"),
            PeerWireError::TooManyExcluded(n) => {
                write!(f, "{n} excluded nodes (limit {MAX_NODES})")
            }
            PeerWireError::TooManyNodes(n) => {
                write!(f, "{n} nodes in one message (limit {MAX_NODES})")
            }
            PeerWireError::AddressFamily(v) => {
                write!(f, "address family {v} is neither 4 nor 6")
            }
            PeerWireError::PresenceFlag(v) => write!(f, "presence flag {v} is neither 0 nor 1"),
            PeerWireError::FoundFlag(v) => write!(f, "found flag {v} is neither 0 nor 1"),
            PeerWireError::EmptyFindReply => write!(f, "a FIND_REPLY without a node"),
        }
    }
}

impl std::error::Error for PeerWireError {}

impl From<BodyError> for PeerWireError {
    fn from(e: BodyError) -> Self {
        PeerWireError::Body(e)
    }
}

impl From<FrameError> for PeerWireError {
    fn from(e: FrameError) -> Self {
        PeerWireError::Frame(e)
    }
}

/// The node-to-node protocol as a [`BodyCodec`] (wrap it in
/// [`crate::wire::Framed`] to read frames).
pub struct PeerCodec;

impl BodyCodec for PeerCodec {
    type Message<'a> = PeerMsg;
    type Error = PeerWireError;
    fn decode_body(&self, kind: u16, body: &[u8]) -> Result<PeerMsg, PeerWireError> {
        PeerMsg::decode(kind, body)
    }
}

fn read_id(r: &mut Reader) -> Result<Id, PeerWireError> {
    let mut id = [0; ID_LEN];
    id.copy_from_slice(r.bytes(ID_LEN)?);
    Ok(Id(id))
}

fn read_key(r: &mut Reader) -> Result<[u8; 32], PeerWireError> {
    let mut key = [0; 32];
    key.copy_from_slice(r.bytes(32)?);
    Ok(key)
}

fn read_node(r: &mut Reader) -> Result<NodeRef, PeerWireError> {
    let id = read_id(r)?;
    let ip = match r.u8()? {
        4 => {
            let b = r.bytes(4)?;
            IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
        }
        6 => {
            let mut b = [0; 16];
            b.copy_from_slice(r.bytes(16)?);
            IpAddr::V6(Ipv6Addr::from(b))
        }
        other => return Err(PeerWireError::AddressFamily(other)),
    };
    let port = r.u16()?;
    Ok(NodeRef {
        id,
        addr: SocketAddr::new(ip, port),
    })
}

fn read_nodes(r: &mut Reader) -> Result<Vec<NodeRef>, PeerWireError> {
    let count = r.u8()? as usize;
    if count > MAX_NODES {
        return Err(PeerWireError::TooManyNodes(count));
    }
    (0..count).map(|_| read_node(r)).collect()
}

fn read_optional_node(r: &mut Reader) -> Result<Option<NodeRef>, PeerWireError> {
    match r.u8()? {
        0 => Ok(None),
        1 => Ok(Some(read_node(r)?)),
        other => Err(PeerWireError::PresenceFlag(other)),
    }
}

/// Bytes a STORE frame carries besides its value: header, req, flags,
/// hops left, TTL, stamp, key.
pub const STORE_OVERHEAD: usize = 4 + 4 + 1 + 1 + 4 + 8 + 32;
/// The largest value the ring can move: what fits in one STORE frame.
pub const MAX_STORE_VALUE: usize = crate::wire::MAX_FRAME - STORE_OVERHEAD;

impl PeerMsg {
    /// The message's name, for log lines (never its payload).
    pub fn name(&self) -> &'static str {
        match self {
            PeerMsg::FindSuccessor { .. } => "FIND_SUCCESSOR",
            PeerMsg::FindReply { .. } => "FIND_REPLY",
            PeerMsg::GetNeighbours { .. } => "GET_NEIGHBOURS",
            PeerMsg::Neighbours { .. } => "NEIGHBOURS",
            PeerMsg::Notify { .. } => "NOTIFY",
            PeerMsg::Store(_) => "STORE",
            PeerMsg::StoreAck { .. } => "STORE_ACK",
            PeerMsg::Fetch { .. } => "FETCH",
            PeerMsg::FetchReply { .. } => "FETCH_REPLY",
            PeerMsg::Ping { .. } => "PING",
            PeerMsg::Pong { .. } => "PONG",
            PeerMsg::Leaving { .. } => "LEAVING",
        }
    }

    /// Append this message as one frame.
    pub fn write(&self, out: &mut Vec<u8>) -> Result<(), TooLarge> {
        match self {
            PeerMsg::FindSuccessor {
                req,
                target,
                exclude,
            } => write_frame(out, FIND_SUCCESSOR, |o| {
                o.extend_from_slice(&req.to_be_bytes());
                o.extend_from_slice(&target.0);
                let exclude = &exclude[..exclude.len().min(MAX_NODES)];
                o.push(exclude.len() as u8);
                for id in exclude {
                    o.extend_from_slice(&id.0);
                }
            }),
            PeerMsg::FindReply { req, found, nodes } => write_frame(out, FIND_REPLY, |o| {
                o.extend_from_slice(&req.to_be_bytes());
                o.push(*found as u8);
                put_nodes(o, nodes);
            }),
            PeerMsg::GetNeighbours { req } => write_frame(out, GET_NEIGHBOURS, |o| {
                o.extend_from_slice(&req.to_be_bytes())
            }),
            PeerMsg::Neighbours {
                req,
                predecessor,
                successors,
            } => write_frame(out, NEIGHBOURS, |o| {
                o.extend_from_slice(&req.to_be_bytes());
                put_optional_node(o, predecessor);
                put_nodes(o, successors);
            }),
            PeerMsg::Notify { node } => write_frame(out, NOTIFY, |o| put_node(o, node)),
            PeerMsg::Store(store) => write_frame(out, STORE, |o| {
                o.extend_from_slice(&store.req.to_be_bytes());
                o.push(store.flags);
                o.push(store.hops_left);
                o.extend_from_slice(&store.ttl_ms.to_be_bytes());
                o.extend_from_slice(&store.stamp.to_be_bytes());
                o.extend_from_slice(&store.key);
                o.extend_from_slice(&store.value);
            }),
            PeerMsg::StoreAck { req } => {
                write_frame(out, STORE_ACK, |o| o.extend_from_slice(&req.to_be_bytes()))
            }
            PeerMsg::Fetch { req, key } => write_frame(out, FETCH, |o| {
                o.extend_from_slice(&req.to_be_bytes());
                o.extend_from_slice(key);
            }),
            PeerMsg::FetchReply { req, value } => write_frame(out, FETCH_REPLY, |o| {
                o.extend_from_slice(&req.to_be_bytes());
                match value {
                    Some((stamp, value)) => {
                        o.push(1);
                        o.extend_from_slice(&stamp.to_be_bytes());
                        o.extend_from_slice(value);
                    }
                    None => o.push(0),
                }
            }),
            PeerMsg::Ping { req } => {
                write_frame(out, PING, |o| o.extend_from_slice(&req.to_be_bytes()))
            }
            PeerMsg::Pong { req } => {
                write_frame(out, PONG, |o| o.extend_from_slice(&req.to_be_bytes()))
            }
            PeerMsg::Leaving {
                node,
                predecessor,
                successors,
            } => write_frame(out, LEAVING, |o| {
                put_node(o, node);
                put_optional_node(o, predecessor);
                put_nodes(o, successors);
            }),
        }
    }

    /// Decode the body of a frame of type `kind`; anything off is an error
    /// that closes the connection.
    pub fn decode(kind: u16, body: &[u8]) -> Result<PeerMsg, PeerWireError> {
        let mut r = Reader::new(body);
        let msg = match kind {
            FIND_SUCCESSOR => {
                let req = r.u32()?;
                let target = read_id(&mut r)?;
                let count = r.u8()? as usize;
                if count > MAX_NODES {
                    return Err(PeerWireError::TooManyExcluded(count));
                }
                let exclude = (0..count)
                    .map(|_| read_id(&mut r))
                    .collect::<Result<_, _>>()?;
                PeerMsg::FindSuccessor {
                    req,
                    target,
                    exclude,
                }
            }
            FIND_REPLY => {
                let req = r.u32()?;
                let found = match r.u8()? {
                    0 => false,
                    1 => true,
                    other => return Err(PeerWireError::FoundFlag(other)),
                };
                let nodes = read_nodes(&mut r)?;
                if nodes.is_empty() {
                    return Err(PeerWireError::EmptyFindReply);
                }
                PeerMsg::FindReply { req, found, nodes }
            }
            GET_NEIGHBOURS => PeerMsg::GetNeighbours { req: r.u32()? },
            NEIGHBOURS => PeerMsg::Neighbours {
                req: r.u32()?,
                predecessor: read_optional_node(&mut r)?,
                successors: read_nodes(&mut r)?,
            },
            NOTIFY => PeerMsg::Notify {
                node: read_node(&mut r)?,
            },
            STORE => PeerMsg::Store(StoreMsg {
                req: r.u32()?,
                flags: r.u8()?,
                hops_left: r.u8()?,
                ttl_ms: r.u32()?,
                stamp: r.u64()?,
                key: read_key(&mut r)?,
                value: r.rest().to_vec(),
            }),
            STORE_ACK => PeerMsg::StoreAck { req: r.u32()? },
            FETCH => PeerMsg::Fetch {
                req: r.u32()?,
                key: read_key(&mut r)?,
            },
            FETCH_REPLY => {
                let req = r.u32()?;
                let value = match r.u8()? {
                    0 => None,
                    1 => Some((r.u64()?, r.rest().to_vec())),
                    other => return Err(PeerWireError::FoundFlag(other)),
                };
                PeerMsg::FetchReply { req, value }
            }
            PING => PeerMsg::Ping { req: r.u32()? },
            PONG => PeerMsg::Pong { req: r.u32()? },
            LEAVING => PeerMsg::Leaving {
                node: read_node(&mut r)?,
                predecessor: read_optional_node(&mut r)?,
                successors: read_nodes(&mut r)?,
            },
            other => return Err(PeerWireError::UnknownType(other)),
        };
        r.finish()?;
        Ok(msg)
    }
}

#[cfg(test)]
#[path = "peer_wire_tests.rs"]
mod tests;
