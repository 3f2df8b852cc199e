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
use super::impostor::Impostor;
use super::node::Node;
use super::op::RequestId;
use super::replica::{Config, Replica};
use super::storage::MemStorage;
use crate::sim::{host, ExtId, Hosted, NodeId, World};
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

impl Client {
    /// Drop a non-committed answer to `id`; whether there was one.
    pub fn forget_failed(&mut self, id: RequestId) -> bool {
        let before = self.answers.len();
        self.answers
            .retain(|a| a.id != id || a.code == super::replica::CODE_COMMITTED);
        self.answers.len() < before
    }
}

/// What one simulated replica is made of, at start and at every restart.
pub struct ReplicaSpec {
    pub group: Group,
    /// Its index in the group.
    pub me: usize,
    /// Every other replica's peer address (None for itself).
    pub peers: Vec<Option<SocketAddr>>,
    /// Its durable records, kept across crashes.
    pub disk: MemStorage,
    /// Misbehaving, and how.
    pub mode: Option<Mode>,
}

impl ReplicaSpec {
    /// The whole node, ready for the world: the group's keys from
    /// [`sim_keys`], its records read back from its disk, its randomness
    /// from `seed`, wrapped in its adversary if it misbehaves.
    pub fn host(&self, seed: u64) -> Box<dyn Hosted> {
        let n = self.group.n();
        let i = self.me;
        let keys = sim_keys(n);
        let public: Vec<PublicKey> = keys.iter().map(|k| k.public()).collect();
        let replica = Replica::new(
            Config {
                group: self.group.clone(),
                me: i,
                key: keys[i].clone(),
                keys: public.clone(),
                seed,
            },
            self.disk.records(),
        );
        let mut node = Node::new(
            replica,
            Some(Box::new(self.disk.clone())),
            self.peers.clone(),
            &keys[i],
            public,
        )
        .with_seed(seed.rotate_left(17));
        if let Some(mode) = self.mode {
            node = node.with_filter(Box::new(Adversary::new(
                mode,
                self.group.clone(),
                i,
                keys[i].clone(),
                seed,
            )));
        }
        if self.mode == Some(Mode::ReplayHello) {
            return host(Impostor::new(node, i, &self.group.names, &keys));
        }
        host(node)
    }
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
            let spec = ReplicaSpec {
                group: net.group.clone(),
                me: i,
                peers: (0..n).map(|p| (p != i).then(|| peer_addr(p))).collect(),
                disk: net.disks[i].clone(),
                mode: net.modes[i],
            };
            let node = net.world.add_node(
                format!("r{i}"),
                vec![peer_addr(i), api_addr(i)],
                Box::new(move |rng| spec.host(rng.gen())),
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

    /// Replica `i`, read-only (None if down or Byzantine with a wrapper).
    pub fn replica_ref(&self, i: usize) -> Option<&Replica> {
        self.world
            .protocol_ref::<Node>(self.nodes[i])
            .map(|n| n.replica())
    }

    /// Hand replica `to` a message as if from `from` on its authenticated
    /// link (a test playing a Byzantine peer); what it answers goes out
    /// with its next event.
    #[cfg(test)]
    pub fn inject(&mut self, from: usize, to: usize, msg: super::messages::PeerMsg) {
        if let Some(node) = self.node(to) {
            node.replica_mut().on_peer(from, msg);
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bpcon::byzantine::{MODES, SIGNING_MODES};
    use std::time::Duration;

    fn logs(net: &mut Net, who: &[usize]) -> Vec<Vec<String>> {
        who.iter()
            .map(|&i| {
                net.replica(i)
                    .map(|r| r.store().log.iter().map(|(_, op)| op.to_string()).collect())
                    .unwrap_or_default()
            })
            .collect()
    }

    fn committed_everywhere(net: &mut Net, who: &[usize], ids: &[RequestId]) -> bool {
        who.iter().all(|&i| {
            net.replica(i)
                .is_some_and(|r| ids.iter().all(|id| r.store().contains(id)))
        })
    }

    /// The whole node on the World: clients on two replicas, a crash, more
    /// proposals, a restart from the kept storage, and the restarted replica
    /// catches up to the same sequence.
    #[test]
    fn replicas_on_the_world_commit_and_a_restarted_one_catches_up_from_its_storage() {
        let mut net = Net::new(World::new(9), vec![None; 4]);
        let (c0, c1) = (net.connect_client(0), net.connect_client(1));
        let mut ids = Vec::new();
        for seq in 0..4 {
            let id = RequestId { client: 1, seq };
            net.submit(
                if seq % 2 == 0 { c0 } else { c1 },
                id,
                &format!("P,k{seq},v"),
            );
            ids.push(id);
        }
        let all = [0, 1, 2, 3];
        let done = {
            let mut ok = false;
            for _ in 0..300 {
                net.world.run_for(Duration::from_millis(100));
                if committed_everywhere(&mut net, &all, &ids) {
                    ok = true;
                    break;
                }
            }
            ok
        };
        assert!(done, "not committed: {:?}", logs(&mut net, &all));
        net.poll_clients();
        assert!(ids
            .iter()
            .all(|id| net.answer(*id).is_some_and(|a| a.code == 0)));
        let kept = net.disks[3].len();
        assert!(kept > 0, "r3 wrote nothing to its storage");
        net.crash(3);
        let more: Vec<RequestId> = (10..13)
            .map(|seq| {
                let id = RequestId { client: 2, seq };
                net.submit(c0, id, &format!("P,m{seq},w"));
                id
            })
            .collect();
        let mut ok = false;
        for _ in 0..300 {
            net.world.run_for(Duration::from_millis(100));
            if committed_everywhere(&mut net, &[0, 1, 2], &more) {
                ok = true;
                break;
            }
        }
        assert!(ok, "three replicas cannot commit without the fourth");
        net.restart(3);
        // Back from its storage (not from nothing), then caught up.
        assert!(net.replica(3).unwrap().slot() >= 1);
        let everything: Vec<RequestId> = ids.iter().chain(&more).copied().collect();
        let mut ok = false;
        for _ in 0..300 {
            net.world.run_for(Duration::from_millis(100));
            if committed_everywhere(&mut net, &all, &everything) {
                ok = true;
                break;
            }
        }
        assert!(ok, "r3 did not catch up: {:?}", logs(&mut net, &all));
        let l = logs(&mut net, &all);
        assert!(l.iter().all(|x| *x == l[0]), "{l:?}");
    }

    /// Each kind of adversary, wrapped around replica r3: the three correct
    /// replicas commit every proposal, in one order.
    #[test]
    fn correct_replicas_agree_on_the_world_next_to_each_kind_of_adversary() {
        for (k, &mode) in MODES.iter().chain(SIGNING_MODES).enumerate() {
            let mut net = Net::new(
                World::new(40 + k as u64),
                vec![None, None, None, Some(mode)],
            );
            let (c0, c1) = (net.connect_client(0), net.connect_client(1));
            let ids: Vec<RequestId> = (0..4)
                .map(|seq| {
                    let id = RequestId { client: 7, seq };
                    net.submit(
                        if seq % 2 == 0 { c0 } else { c1 },
                        id,
                        &format!("P,k{seq},v"),
                    );
                    id
                })
                .collect();
            let correct = [0, 1, 2];
            let mut ok = false;
            for _ in 0..600 {
                net.world.run_for(Duration::from_millis(100));
                if committed_everywhere(&mut net, &correct, &ids) {
                    ok = true;
                    break;
                }
            }
            assert!(
                ok,
                "{}: not committed: {:?}",
                mode.name(),
                logs(&mut net, &correct)
            );
            net.world.run_for(Duration::from_secs(1));
            let l = logs(&mut net, &correct);
            let shortest = l.iter().map(Vec::len).min().unwrap();
            assert!(
                l.iter().all(|x| x[..shortest] == l[0][..shortest]),
                "{}: correct replicas diverged: {l:?}",
                mode.name()
            );
            for x in &l {
                assert!(
                    !x.iter().any(|op| op.contains("pwned")),
                    "{}: {x:?}",
                    mode.name()
                );
            }
        }
    }

    /// Found by the fuzzer (seed 47): with every link slower than a fixed
    /// ballot time-out allows (here ~150 ms a hop, a ballot needs four), two
    /// proposers pre-empt each other for ever. Time-outs must grow.
    #[test]
    fn two_proposers_commit_over_slow_links_next_to_a_liar() {
        let mut w = World::new(47);
        w.set_latency(crate::sim::Latency::Exponential {
            min: Duration::from_millis(50),
            mean: Duration::from_millis(150),
        });
        let mut net = Net::new(w, vec![None, None, None, Some(Mode::Lie)]);
        let (c0, c1) = (net.connect_client(0), net.connect_client(1));
        let ids = [
            RequestId { client: 1, seq: 1 },
            RequestId { client: 2, seq: 1 },
        ];
        net.submit(c0, ids[0], "P,a,1");
        net.submit(c1, ids[1], "P,b,2");
        let mut ok = false;
        for _ in 0..1200 {
            net.world.run_for(Duration::from_millis(100));
            if committed_everywhere(&mut net, &[0, 1, 2], &ids) {
                ok = true;
                break;
            }
        }
        assert!(
            ok,
            "not committed after 120 s: {:?}",
            logs(&mut net, &[0, 1, 2])
        );
    }
}
