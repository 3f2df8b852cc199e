//! The P2P listen addresses a node has heard of: learnt from PULL
//! RESPONSEs, PUSHes and PULLs, forgotten when a connection to one fails.

use rand::seq::SliceRandom;
use rand::Rng;
use std::collections::BTreeSet;
use std::net::SocketAddrV4;

/// More addresses than this are not kept: a new one replaces a random old one.
pub const KNOWN_LIMIT: usize = 1024;

/// How many addresses a PULL RESPONSE lists at most.
pub const SHARE_LIMIT: usize = 64;

pub struct KnownPeers {
    own: SocketAddrV4,
    list: Vec<SocketAddrV4>,
    set: BTreeSet<SocketAddrV4>,
}

impl KnownPeers {
    pub fn new(own: SocketAddrV4) -> Self {
        KnownPeers {
            own,
            list: Vec::new(),
            set: BTreeSet::new(),
        }
    }

    /// Learn `addr`; true if it was new. Our own address and addresses no
    /// one can connect to are ignored.
    pub fn learn(&mut self, addr: SocketAddrV4, rng: &mut impl Rng) -> bool {
        if addr == self.own || addr.port() == 0 || addr.ip().is_unspecified() {
            return false;
        }
        if self.set.contains(&addr) {
            return false;
        }
        if self.list.len() >= KNOWN_LIMIT {
            let victim = rng.gen_range(0..self.list.len());
            self.set.remove(&self.list[victim]);
            self.list.swap_remove(victim);
        }
        self.list.push(addr);
        self.set.insert(addr);
        true
    }

    pub fn forget(&mut self, addr: &SocketAddrV4) {
        if self.set.remove(addr) {
            self.list.retain(|a| a != addr);
        }
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &SocketAddrV4> {
        self.list.iter()
    }

    /// A random sample to share with a peer, leaving out `except`.
    pub fn sample(&self, except: Option<SocketAddrV4>, rng: &mut impl Rng) -> Vec<SocketAddrV4> {
        let mut pool: Vec<SocketAddrV4> = self
            .list
            .iter()
            .copied()
            .filter(|a| Some(*a) != except)
            .collect();
        pool.shuffle(rng);
        pool.truncate(SHARE_LIMIT);
        pool
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use std::net::Ipv4Addr;

    fn addr(port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)
    }

    #[test]
    fn own_unreachable_and_repeated_addresses_are_ignored() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut known = KnownPeers::new(addr(1));
        assert!(!known.learn(addr(1), &mut rng));
        assert!(!known.learn(addr(0), &mut rng));
        assert!(!known.learn(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 5), &mut rng));
        assert!(known.learn(addr(2), &mut rng));
        assert!(!known.learn(addr(2), &mut rng));
        assert_eq!(known.len(), 1);
        known.forget(&addr(2));
        assert!(known.is_empty());
    }

    #[test]
    fn the_list_is_bounded() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut known = KnownPeers::new(addr(1));
        for port in 2..3000 {
            known.learn(addr(port), &mut rng);
        }
        assert_eq!(known.len(), KNOWN_LIMIT);
        let shared = known.sample(None, &mut rng);
        assert_eq!(shared.len(), SHARE_LIMIT);
    }
}
