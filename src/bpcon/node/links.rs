//! Peer links: the challenge-response handshake (see `messages`), the MAC
//! on every frame after it, the peer frames handed to the replica, the
//! expiry of handshakes that never complete, dialling, and the line that
//! says a quorum of links is up.

use super::{Node, NodeOut, HANDSHAKE_TICKS};
use crate::bpcon::mac::{LinkKey, LinkMac, KEY_LEN};
use crate::bpcon::messages::{
    hello_bytes, welcome_bytes, LinkFrames, LinkUnit, Nonce, PeerMsg, MAC, NONCE_LEN,
};
use crate::bpcon::replica::TICK_MS;
use crate::logging::RepeatedWarning;
use crate::reactor::ConnId;
use crate::wire::{decode_each, Stopped};
use log::{info, warn};
use rand::rngs::StdRng;
use rand::RngCore;
use std::ops::ControlFlow;
use std::time::Instant;

/// What a connection is, and how far its handshake went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Link {
    /// Accepted on the peer port; we sent this challenge and wait for HELLO.
    Challenged(Nonce),
    /// A replica's authenticated link to us (we receive on it).
    From(usize),
    /// Our connection to a replica, waiting for its challenge.
    Dialing(usize),
    /// We sent HELLO with our nonce (and its challenge) and the link key;
    /// waiting for WELCOME.
    Greeted(usize, Nonce, Nonce, LinkKey),
    /// Our authenticated link to a replica (we send on it).
    To(usize),
    /// A client of the API, with its reply handle.
    Client(u64),
}

/// A fresh handshake nonce.
pub(super) fn fresh_nonce(rng: &mut StdRng) -> Nonce {
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut nonce);
    nonce
}

/// A fresh link key, likewise.
pub(super) fn fresh_key(rng: &mut StdRng) -> LinkKey {
    let mut key = [0u8; KEY_LEN];
    rng.fill_bytes(&mut key);
    key
}

impl Node {
    pub(super) fn expire_handshakes(&mut self, now_at: Instant, out: &mut NodeOut) {
        let now = self.replica.tick();
        let stale: Vec<ConnId> = self
            .handshakes
            .iter()
            .filter(|(_, started)| now.saturating_sub(**started) >= HANDSHAKE_TICKS)
            .map(|(conn, _)| *conn)
            .collect();
        for conn in stale {
            self.handshakes.remove(&conn);
            let limiter = self
                .closing
                .entry("a peer that never completed its handshake".into())
                .or_insert_with(RepeatedWarning::per_second);
            crate::warn_repeated!(
                limiter,
                now_at,
                "closing a link whose handshake did not complete within {} s",
                HANDSHAKE_TICKS * TICK_MS / 1000
            );
            out.close(conn);
        }
    }

    /// Print one line when links to a quorum come up, warn when they are lost.
    pub(super) fn check_joined(&mut self, out: &mut NodeOut) {
        let group = self.replica.group();
        let up: Vec<&str> = (0..self.outgoing.len())
            .filter(|&p| self.outgoing[p].is_some())
            .map(|p| group.names[p].as_str())
            .collect();
        let joined = up.len() + 1 >= group.quorum;
        if joined && !self.joined {
            let with = if up.is_empty() {
                "alone (n = 1)".to_string()
            } else {
                format!("links up to {}", up.join(","))
            };
            let line = format!(
                "replica {}: {} the group: {with}, a quorum of {} of {} replicas",
                self.replica.name(),
                if self.announced_join {
                    "back in"
                } else {
                    "joined"
                },
                group.quorum,
                group.n()
            );
            info!("{line}");
            out.print(line);
            self.announced_join = true;
        } else if !joined && self.joined {
            warn!(
                "replica {}: links up to {} of {} peers only: below a quorum of {}, nothing can commit until more are back",
                self.replica.name(),
                up.len(),
                group.n() - 1,
                group.quorum
            );
        }
        self.joined = joined;
    }

    pub(super) fn connect(&mut self, peer: usize, out: &mut NodeOut) {
        if let Some(addr) = self.peers[peer] {
            out.connect(addr, peer);
        }
    }

    /// The accepting side: the HELLO must name both ends and be signed
    /// over the challenge we sent on this connection.
    fn on_hello(
        &mut self,
        conn: ConnId,
        challenge: &Nonce,
        msg: PeerMsg,
        out: &mut NodeOut,
    ) -> Result<(), String> {
        let PeerMsg::Hello {
            from,
            to,
            nonce,
            sealed_key,
            signature,
        } = msg
        else {
            return Err("a peer link must start with HELLO".into());
        };
        let me = self.replica.name().to_string();
        if to != me {
            return Err(format!("HELLO for '{to}', but this is '{me}'"));
        }
        let Some(index) = self.replica.group().index(&from) else {
            return Err(format!("HELLO from '{from}', who is not in the group"));
        };
        if from == me {
            return Err(format!(
                "HELLO from '{from}', which is this replica's own name"
            ));
        }
        if crate::sim::bugs::seeded("bpcon.replayable-hello") {
            let zero = [0u8; NONCE_LEN];
            let old = hello_bytes(&from, &to, &zero, &zero, &[]);
            if self.keys[index].verify(&old, &signature) {
                // The seed's bug: a signature over the names alone (no
                // challenge, no link key, no MACs) authenticates the link.
                self.handshakes.remove(&conn);
                self.links.insert(conn, Link::From(index));
                return Ok(());
            }
        }
        let signed = hello_bytes(&from, &to, challenge, &nonce, &sealed_key);
        if !self.keys[index].verify(&signed, &signature) {
            self.replica.stats.forged_rejected += 1;
            return Err(format!(
                "forged or replayed HELLO claiming to be '{from}': its signature does not cover this connection's challenge"
            ));
        }
        let key: LinkKey = self
            .key
            .open(&sealed_key)?
            .try_into()
            .map_err(|_| format!("HELLO from '{from}' seals a link key of the wrong size"))?;
        info!("link from {from} authenticated");
        self.handshakes.remove(&conn);
        self.recv_macs.insert(conn, LinkMac::new(key));
        self.links.insert(conn, Link::From(index));
        let welcome = PeerMsg::Welcome {
            signature: self.key.sign(&welcome_bytes(&me, &from, &nonce, challenge)),
        };
        if let Ok(frame) = welcome.to_frame() {
            out.send(conn, &frame);
        }
        Ok(())
    }

    /// The connecting side: answer the challenge with a signed HELLO that
    /// carries a challenge of our own.
    fn on_challenge(
        &mut self,
        conn: ConnId,
        peer: usize,
        msg: PeerMsg,
        out: &mut NodeOut,
    ) -> Result<(), String> {
        let PeerMsg::Challenge { nonce: challenge } = msg else {
            return Err("a replica must send its challenge first".into());
        };
        let me = self.replica.name().to_string();
        let to = self.name(peer).to_string();
        let nonce = fresh_nonce(&mut self.rng);
        let key = fresh_key(&mut self.rng);
        let sealed_key = self.keys[peer].seal_with(&mut self.rng, &key)?;
        let hello = PeerMsg::Hello {
            signature: self
                .key
                .sign(&hello_bytes(&me, &to, &challenge, &nonce, &sealed_key)),
            from: me,
            to,
            nonce,
            sealed_key,
        };
        if let Ok(frame) = hello.to_frame() {
            out.send(conn, &frame);
        }
        self.links
            .insert(conn, Link::Greeted(peer, nonce, challenge, key));
        Ok(())
    }

    /// The connecting side: the replica we dialled proves it holds its key.
    fn on_welcome(
        &mut self,
        conn: ConnId,
        peer: usize,
        (nonce, challenge, key): (&Nonce, &Nonce, LinkKey),
        msg: PeerMsg,
        out: &mut NodeOut,
    ) -> Result<(), String> {
        let PeerMsg::Welcome { signature } = msg else {
            return Err("a replica must answer HELLO with WELCOME".into());
        };
        let me = self.replica.name().to_string();
        let to = self.name(peer).to_string();
        if !self.keys[peer].verify(&welcome_bytes(&to, &me, nonce, challenge), &signature) {
            self.replica.stats.forged_rejected += 1;
            return Err(format!(
                "forged or replayed WELCOME from the replica at {to}'s address: its signature does not verify"
            ));
        }
        info!("link to {to} up (authenticated)");
        self.handshakes.remove(&conn);
        self.links.insert(conn, Link::To(peer));
        if let Some(old) = self.outgoing[peer].replace(conn) {
            out.close(old);
        }
        self.send_macs[peer] = Some(LinkMac::new(key));
        self.replica.on_peer_up(peer);
        self.check_joined(out);
        Ok(())
    }

    pub(super) fn on_peer_data(
        &mut self,
        conn: ConnId,
        data: &[u8],
        out: &mut NodeOut,
    ) -> Result<usize, String> {
        let n = self.replica.group().n();
        // A link's frames come paired with their MACs once it is
        // authenticated, so a handshake message that authenticates it ends
        // a run and the rest of the data is cut the new way.
        let with_mac = |node: &Node, link: Link| {
            matches!(link, Link::From(_))
                && (node.recv_macs.contains_key(&conn)
                    || !crate::sim::bugs::seeded("bpcon.replayable-hello"))
        };
        let mut used = 0;
        loop {
            let Some(&link) = self.links.get(&conn) else {
                return Ok(used);
            };
            let codec = LinkFrames {
                with_mac: with_mac(self, link),
            };
            let (took, stopped) = decode_each(&codec, &data[used..], |unit| {
                // Present and cut as this run cuts: checked after each unit.
                let link = self.links[&conn];
                if let Err(why) = self.on_link_unit(conn, link, unit, n, out) {
                    return ControlFlow::Break(Some(why));
                }
                match self.links.get(&conn) {
                    Some(&now) if with_mac(self, now) == codec.with_mac => {
                        ControlFlow::Continue(())
                    }
                    _ => ControlFlow::Break(None),
                }
            });
            used += took;
            match stopped {
                None => return Ok(used),
                Some(Stopped::Decode(e)) => return Err(e.to_string()),
                Some(Stopped::Handler(Some(why))) => return Err(why),
                Some(Stopped::Handler(None)) => {} // the link changed: go on with it
            }
        }
    }

    /// One frame (with its MAC on an authenticated link) from `link`.
    fn on_link_unit(
        &mut self,
        conn: ConnId,
        link: Link,
        unit: LinkUnit<'_>,
        n: usize,
        out: &mut NodeOut,
    ) -> Result<(), String> {
        let frame = unit.frame;
        if let Link::From(peer) = link {
            let Some(mac) = unit.mac else {
                // bpcon.replayable-hello: no MAC is asked for.
                let msg = PeerMsg::decode(frame.kind, frame.body, n).map_err(|e| e.to_string())?;
                self.replica.on_peer(peer, msg);
                return Ok(());
            };
            // A frame counts only with the MAC frame that follows it.
            let tag = match PeerMsg::decode(mac.kind, mac.body, n) {
                Ok(PeerMsg::Mac { tag }) if mac.kind == MAC => tag,
                _ => return Err("a frame without its MAC".into()),
            };
            let verified = self
                .recv_macs
                .get_mut(&conn)
                .is_some_and(|m| m.check(unit.bytes, &tag));
            if !verified {
                self.replica.stats.forged_rejected += 1;
                return Err(
                    "a frame whose MAC does not verify (injected, replayed or reordered)".into(),
                );
            }
            let msg = PeerMsg::decode(frame.kind, frame.body, n).map_err(|e| e.to_string())?;
            if matches!(
                msg,
                PeerMsg::Challenge { .. }
                    | PeerMsg::Hello { .. }
                    | PeerMsg::Welcome { .. }
                    | PeerMsg::Mac { .. }
            ) {
                return Err("a handshake message after the handshake".into());
            }
            self.replica.on_peer(peer, msg);
            return Ok(());
        }
        let msg = PeerMsg::decode(frame.kind, frame.body, n).map_err(|e| e.to_string())?;
        match link {
            Link::Challenged(challenge) => self.on_hello(conn, &challenge, msg, out)?,
            Link::Dialing(peer) => self.on_challenge(conn, peer, msg, out)?,
            Link::Greeted(peer, nonce, challenge, key) => {
                self.on_welcome(conn, peer, (&nonce, &challenge, key), msg, out)?
            }
            // Replicas answer on their own links.
            Link::From(_) | Link::To(_) | Link::Client(_) => {}
        }
        Ok(())
    }
}
