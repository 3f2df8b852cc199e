//! A BPCon group in the simulated world ([`World`]): every replica is the
//! whole [`Node`] (handshake, MACs, catch-up, client API) on simulated TCP,
//! with real RSA keys ([`sim_keys`]), its records in a [`MemStorage`] that
//! survives [`World::crash`], and clients on test connections speaking the
//! client API. A Byzantine replica is an honest node wrapped in an
//! [`Adversary`].

use super::api::ApiMsg;
use super::byzantine::{Adversary, Mode};
use super::crypto::{sim_keys, PublicKey};
use super::group::Group;
use super::node::Node;
use super::op::RequestId;
use super::replica::{Config, Replica};
use super::storage::MemStorage;
use crate::sim::{host, ExtId, NodeId, World};
use crate::wire::split_frame;
use rand::Rng;
use std::net::SocketAddr;

/// A replica's peer port in the simulated world.
pub fn peer_addr(i: usize) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 1 + i as u8], 7000))
}

/// A replica's client port.
pub fn api_addr(i: usize) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 1 + i as u8], 8000))
}

/// A client's answer from a replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub id: RequestId,
    pub code: u8,
    pub message: String,
}

/// A client connection to one replica's API.
pub struct Client {
    pub ext: ExtId,
    pub replica: usize,
    buf: Vec<u8>,
    pub answers: Vec<Answer>,
}

pub struct Net {
    pub world: World,
    pub group: Group,
    /// Each replica's durable records: kept across crashes.
    pub disks: Vec<MemStorage>,
    pub modes: Vec<Option<Mode>>,
    pub nodes: Vec<NodeId>,
    pub clients: Vec<Client>,
}

impl Net {
    /// `modes.len()` replicas named r0, r1, ...; `Some(mode)` ones misbehave.
    pub fn new(world: World, modes: Vec<Option<Mode>>) -> Net {
        let n = modes.len();
        let group = Group::new((0..n).map(|i| format!("r{i}")).collect()).expect("a group");
        let mut net = Net {
            world,
            group,
            disks: (0..n).map(|_| MemStorage::new()).collect(),
            modes,
            nodes: Vec::new(),
            clients: Vec::new(),
        };
        for i in 0..n {
            let group = net.group.clone();
            let disk = net.disks[i].clone();
            let mode = net.modes[i];
            let node = net.world.add_node(
                format!("r{i}"),
                vec![peer_addr(i), api_addr(i)],
                Box::new(move |rng| {
                    let keys = sim_keys(n);
                    let public: Vec<PublicKey> = keys.iter().map(|k| k.public()).collect();
                    let seed: u64 = rng.gen();
                    let replica = Replica::new(
                        Config {
                            group: group.clone(),
                            me: i,
                            key: keys[i].clone(),
                            keys: public.clone(),
                            seed,
                        },
                        disk.records(),
                    );
                    let peers = (0..n).map(|p| (p != i).then(|| peer_addr(p))).collect();
                    let mut node = Node::new(
                        replica,
                        Some(Box::new(disk.clone())),
                        peers,
                        &keys[i],
                        public,
                    )
                    .with_seed(seed.rotate_left(17));
                    if let Some(mode) = mode {
                        node = node.with_filter(Box::new(Adversary::new(
                            mode,
                            group.clone(),
                            i,
                            keys[i].clone(),
                            seed,
                        )));
                    }
                    host(node)
                }),
            );
            net.nodes.push(node);
        }
        net
    }

    pub fn n(&self) -> usize {
        self.group.n()
    }

    /// The replicas that are not Byzantine.
    pub fn correct(&self) -> Vec<usize> {
        (0..self.n()).filter(|&i| self.modes[i].is_none()).collect()
    }

    /// Replica `i`'s node, if it is up.
    pub fn node(&mut self, i: usize) -> Option<&mut Node> {
        let id = self.nodes[i];
        self.world.protocol::<Node>(id)
    }

    pub fn replica(&mut self, i: usize) -> Option<&Replica> {
        self.node(i).map(|n| n.replica())
    }

    /// Open a client connection to replica `i`; its index in `clients`.
    pub fn connect_client(&mut self, i: usize) -> usize {
        let ext = self.world.ext_connect(api_addr(i));
        self.clients.push(Client {
            ext,
            replica: i,
            buf: Vec::new(),
            answers: Vec::new(),
        });
        self.clients.len() - 1
    }

    /// Send a request on client `c`.
    pub fn submit(&mut self, c: usize, id: RequestId, text: &str) {
        let msg = ApiMsg::Request {
            client: id.client,
            seq: id.seq,
            text: text.as_bytes().to_vec(),
        };
        let ext = self.clients[c].ext;
        self.world.ext_send(ext, &msg.to_frame());
    }

    /// Read every client's answers so far.
    pub fn poll_clients(&mut self) {
        for c in &mut self.clients {
            c.buf.extend(self.world.ext_take(c.ext));
            let mut used = 0;
            while let Ok(Some(frame)) = split_frame(&c.buf[used..]) {
                used += frame.len;
                if let Ok(ApiMsg::Result {
                    client,
                    seq,
                    code,
                    message,
                }) = ApiMsg::decode(frame.kind, frame.body)
                {
                    c.answers.push(Answer {
                        id: RequestId { client, seq },
                        code,
                        message,
                    });
                }
            }
            c.buf.drain(..used);
        }
    }

    /// The answer to `id` on any client, if one came.
    pub fn answer(&self, id: RequestId) -> Option<&Answer> {
        self.clients
            .iter()
            .flat_map(|c| c.answers.iter())
            .find(|a| a.id == id)
    }

    pub fn crash(&mut self, i: usize) {
        let id = self.nodes[i];
        self.world.crash(id);
    }

    pub fn restart(&mut self, i: usize) {
        let id = self.nodes[i];
        self.world.restart(id);
    }
}
