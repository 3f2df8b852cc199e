//! Signing and verifying, counted (and timed, for the benchmark only: no
//! decision depends on the time) in the replica's [`Stats`].

use super::Stats;
use crate::bpcon::crypto::{PrivateKey, PublicKey};
use std::time::Instant;

pub(super) struct Signer {
    key: PrivateKey,
    /// Everyone's public key, by group index (including this replica's).
    keys: Vec<PublicKey>,
}

impl Signer {
    pub(super) fn new(key: PrivateKey, keys: Vec<PublicKey>) -> Signer {
        Signer { key, keys }
    }

    pub(super) fn len(&self) -> usize {
        self.keys.len()
    }

    pub(super) fn sign(&self, stats: &mut Stats, bytes: &[u8]) -> Vec<u8> {
        let started = Instant::now();
        let signature = self.key.sign(bytes);
        stats.signs += 1;
        stats.sign_us += started.elapsed().as_micros() as u64;
        signature
    }

    pub(super) fn verify(
        &self,
        stats: &mut Stats,
        signer: usize,
        bytes: &[u8],
        signature: &[u8],
    ) -> bool {
        let started = Instant::now();
        let ok = self.keys[signer].verify(bytes, signature);
        stats.verifies += 1;
        stats.verify_us += started.elapsed().as_micros() as u64;
        ok
    }
}
