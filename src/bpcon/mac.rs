//! Per-link message authentication: after the handshake, every frame on a
//! replica link is followed by a MAC frame holding HMAC-SHA1 (RFC 2104)
//! under the link's key over a sequence number and the frame. The
//! connecting side chose the key and sealed it to the accepting side's
//! public key in its HELLO, so a man in the middle that relayed the
//! handshake cannot speak on the link, and an injected, replayed, dropped
//! or reordered frame does not verify.

use sha1::{Digest as _, Sha1};

pub const KEY_LEN: usize = 32;
pub const TAG_LEN: usize = 20;
pub type LinkKey = [u8; KEY_LEN];
pub type Tag = [u8; TAG_LEN];

const BLOCK: usize = 64;

/// HMAC-SHA1 of the concatenated `parts`.
pub fn hmac_sha1(key: &[u8], parts: &[&[u8]]) -> Tag {
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..20].copy_from_slice(&Sha1::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha1::new();
    inner.update(block.map(|b| b ^ 0x36));
    for part in parts {
        inner.update(part);
    }
    let mut outer = Sha1::new();
    outer.update(block.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// One direction of a link: the key and the next frame's sequence number.
#[derive(Debug, Clone)]
pub struct LinkMac {
    key: LinkKey,
    seq: u64,
}

impl LinkMac {
    pub fn new(key: LinkKey) -> LinkMac {
        LinkMac { key, seq: 0 }
    }

    /// The tag of the next frame sent.
    pub fn tag(&mut self, frame: &[u8]) -> Tag {
        let tag = hmac_sha1(&self.key, &[&self.seq.to_be_bytes(), frame]);
        self.seq = self.seq.wrapping_add(1);
        tag
    }

    /// Whether `tag` is the next frame's (compared in constant time).
    pub fn check(&mut self, frame: &[u8], tag: &[u8]) -> bool {
        let expected = hmac_sha1(&self.key, &[&self.seq.to_be_bytes(), frame]);
        let same = tag.len() == TAG_LEN
            && expected
                .iter()
                .zip(tag)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        if same {
            self.seq = self.seq.wrapping_add(1);
        }
        same
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bpcon::op::hex;

    #[test]
    fn hmac_sha1_matches_rfc_2202() {
        assert_eq!(
            hex(&hmac_sha1(&[0x0b; 20], &[b"Hi There"])),
            "b617318655057264e28bc0b6fb378c8ef146be00"
        );
        assert_eq!(
            hex(&hmac_sha1(b"Jefe", &[b"what do ya want ", b"for nothing?"])),
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
        );
        assert_eq!(
            hex(&hmac_sha1(
                &[0xaa; 80],
                &[b"Test Using Larger Than Block-Size Key - Hash Key First"]
            )),
            "aa4ae5e15272d00e95705637ce8a3b55ed402112"
        );
    }

    #[test]
    fn a_tag_verifies_once_in_order_and_for_its_frame_only() {
        let (mut send, mut recv) = (LinkMac::new([1; 32]), LinkMac::new([1; 32]));
        let t0 = send.tag(b"first");
        let t1 = send.tag(b"second");
        assert!(!recv.check(b"second", &t1), "out of order");
        assert!(!recv.check(b"firsT", &t0), "another frame");
        assert!(recv.check(b"first", &t0));
        assert!(!recv.check(b"first", &t0), "replayed");
        assert!(recv.check(b"second", &t1));
        let mut other = LinkMac::new([2; 32]);
        assert!(!other.check(b"first", &t0), "another key");
    }
}
