//! What the two sides of a new link sign in the handshake (see the
//! module comment): both names and both nonces, under different tags so a
//! HELLO cannot be reflected as a WELCOME.

use super::Nonce;

const HELLO_TAG: &[u8] = b"BPCON-HELLO2";
const WELCOME_TAG: &[u8] = b"BPCON-WELCOME";

fn handshake_bytes(tag: &[u8], names: [&str; 2], nonces: [&Nonce; 2]) -> Vec<u8> {
    let mut out = tag.to_vec();
    for name in names {
        out.push(0);
        out.extend_from_slice(name.as_bytes());
    }
    out.push(0);
    for nonce in nonces {
        out.extend_from_slice(nonce);
    }
    out
}

/// What the connecting replica `from` signs for `to`: both names, `to`'s
/// challenge, its own nonce and the sealed link key.
pub fn hello_bytes(
    from: &str,
    to: &str,
    challenge: &Nonce,
    nonce: &Nonce,
    sealed_key: &[u8],
) -> Vec<u8> {
    let mut out = handshake_bytes(HELLO_TAG, [from, to], [challenge, nonce]);
    out.extend_from_slice(sealed_key);
    out
}

/// What the accepting replica `me` signs for the connecting `peer`: both
/// names, `peer`'s nonce and the challenge it sent (a different tag, so a
/// HELLO cannot be reflected as a WELCOME).
pub fn welcome_bytes(me: &str, peer: &str, peer_nonce: &Nonce, challenge: &Nonce) -> Vec<u8> {
    handshake_bytes(WELCOME_TAG, [me, peer], [peer_nonce, challenge])
}
