//! How large a batch the frames that carry whole batches can hold at
//! worst, from their layouts (see `codec.rs`): the batch limit
//! (`op::MAX_BATCH_BYTES`) is derived here, so a frame a correct replica
//! builds never exceeds the 65,535-byte limit, whatever the others sent.
//! Computed at compile time with checked arithmetic: an overflow or a
//! layout that leaves no room stops the build.

use super::{KEPT_REPORTS, MAX_REPORTED, MAX_SIGNED_VOTES};
use crate::bpcon::crypto::MAX_SIGNATURE;
use crate::bpcon::group::{quorum_of, MAX_REPLICAS};
use crate::wire::{HEADER_LEN, MAX_FRAME};

const fn add(a: usize, b: usize) -> usize {
    match a.checked_add(b) {
        Some(v) => v,
        None => panic!("batch limit: overflow"),
    }
}

const fn mul(a: usize, b: usize) -> usize {
    match a.checked_mul(b) {
        Some(v) => v,
        None => panic!("batch limit: overflow"),
    }
}

const fn sub(a: usize, b: usize) -> usize {
    match a.checked_sub(b) {
        Some(v) => v,
        None => panic!("batch limit: a frame has no room left for a batch"),
    }
}

const fn min(a: usize, b: usize) -> usize {
    if a < b {
        a
    } else {
        b
    }
}

const U64: usize = 8;
const DIGEST: usize = 20;
/// A `u16` length in front of a blob (a batch, a signature, 1b bytes).
const BLOB_LEN: usize = 2;

/// The longest signed 1b bytes the decoder accepts: tag, acceptor, slot,
/// ballot, vote flag and vote, report count and `MAX_REPORTED` reports.
pub const MAX_ONE_B_BYTES: usize = add(
    add(8 + 1 + U64 + U64 + 1 + U64 + DIGEST, 1),
    mul(MAX_REPORTED, U64 + DIGEST),
);

/// One relayed 1b in a 1c: its bytes and its signature, each a blob.
pub const MAX_PROOF_BYTES: usize =
    add(add(BLOB_LEN, MAX_ONE_B_BYTES), add(BLOB_LEN, MAX_SIGNATURE));

/// A 1c in a group of `n`: header, slot, ballot, the batch blob, proof
/// count, and a 1b from every replica of the group (a leader waiting for a
/// report that makes a value safe gathers more than a quorum).
const fn one_c_room(n: usize) -> usize {
    sub(
        sub(MAX_FRAME, HEADER_LEN + U64 + U64 + BLOB_LEN + 1),
        mul(n, MAX_PROOF_BYTES),
    )
}

/// A 1b: header, its signed bytes and signature, the value count and the
/// values a correct acceptor reports (at most `KEPT_REPORTS`, each a blob).
const ONE_B_ROOM: usize = sub(
    sub(sub(MAX_FRAME, HEADER_LEN), add(MAX_PROOF_BYTES, 1)),
    mul(KEPT_REPORTS, BLOB_LEN),
) / KEPT_REPORTS;

/// One signed run of votes: count, the votes, the signature blob.
pub const MAX_SIGNED_VOTES_BYTES: usize = add(
    add(1, mul(MAX_SIGNED_VOTES, U64 + U64 + DIGEST)),
    add(BLOB_LEN, MAX_SIGNATURE),
);

/// A catch-up reply in a group of `n`: header, slot, committed, the batch
/// blob, the flag and a certificate with the most votes it may carry (a
/// quorum of the group), each a signer and its signed votes.
const fn catchup_room(n: usize) -> usize {
    sub(
        sub(MAX_FRAME, HEADER_LEN + U64 + U64 + BLOB_LEN + 1 + U64 + 1),
        mul(quorum_of(n), 1 + MAX_SIGNED_VOTES_BYTES),
    )
}

/// The certificate's size must never be what bounds a batch: checked at
/// compile time, so a larger MAX_SIGNED_VOTES that breaks it stops the build.
const _: () = assert!(catchup_room(MAX_REPLICAS) > one_c_room(MAX_REPLICAS));

/// The most encoded bytes a batch may have in a group of `n` (1 to
/// `MAX_REPLICAS`): what the tightest of the frames above leaves (a 2av,
/// a batch and two numbers, is never tighter). A small group's 1c carries
/// few proofs, so its batches are larger (a 1b carrying `KEPT_REPORTS`
/// values binds then: 21,576 bytes up to 54 replicas, 14,632 at 64).
/// A correct acceptor relays no larger batch: its 1b could not carry it.
pub const fn max_batch_bytes(n: usize) -> usize {
    min(min(one_c_room(n), ONE_B_ROOM), catchup_room(n))
}

/// The largest batch of any group (the smallest group's): what decoders
/// accept at most.
pub const MAX_BATCH_IN_A_FRAME: usize = max_batch_bytes(1);

const _: () = assert!(max_batch_bytes(1) >= max_batch_bytes(MAX_REPLICAS));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tightest_frame_is_a_1c_in_the_largest_group_and_a_1b_in_small_ones() {
        assert_eq!(MAX_ONE_B_BYTES, 279);
        assert_eq!(MAX_PROOF_BYTES, 795);
        assert_eq!(one_c_room(MAX_REPLICAS), 65_535 - 23 - 64 * 795);
        assert_eq!(
            max_batch_bytes(MAX_REPLICAS),
            one_c_room(MAX_REPLICAS),
            "64 replicas: the 1c binds"
        );
        // A certificate of 43 votes (the quorum of 64), each a signer, 16
        // votes of 36 bytes and a signature, leaves more than a 1c does.
        assert_eq!(MAX_SIGNED_VOTES_BYTES, 1 + 16 * 36 + 2 + 512);
        assert_eq!(ONE_B_ROOM, (65_535 - 4 - 796 - 6) / 3);
        assert_eq!(catchup_room(MAX_REPLICAS), 65_535 - 32 - 43 * 1092);
        // Four replicas: the 1b with three values binds, at 21,576 bytes.
        assert_eq!(max_batch_bytes(4), 21_576);
        assert_eq!(MAX_BATCH_IN_A_FRAME, 21_576);
        for n in 1..=MAX_REPLICAS {
            let limit = max_batch_bytes(n);
            assert!(limit <= one_c_room(n) && limit <= ONE_B_ROOM && limit <= catchup_room(n));
        }
    }
}
