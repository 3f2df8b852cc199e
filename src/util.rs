//! Small helpers every protocol, bench and test shares: hex text, the one
//! percentile definition, and a free port for a process started later.

use std::fmt::Write as _;
use std::ops::Range;

/// Lower-case hex, two digits a byte (what the `state` outputs and the
/// course's `network_connectivity` records use).
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// How every bench computes its percentiles, as the bench output says it.
pub const PERCENTILE_RULE: &str =
    "percentiles by nearest rank: p50 is the ⌈0.5·n⌉-th smallest of n samples, p99 the ⌈0.99·n⌉-th";

/// The `q`-quantile (0 < q ≤ 1) of `sorted` by nearest rank: the ⌈q·n⌉-th
/// smallest sample (rank 1 at least), so p99 of 100 samples is the 99th and
/// p50 the 50th. `None` without samples. The one definition the benches use.
pub fn nearest_rank<T: Copy>(sorted: &[T], q: f64) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Ports handed out by [`free_port`]: below Linux's ephemeral range
/// (32768+), so no outgoing connection made meanwhile can take one.
pub const FREE_PORTS: Range<u16> = 20_000..32_000;

/// A loopback port that was free a moment ago, chosen at random in
/// [`FREE_PORTS`], for a process that is started later and cannot bind
/// port 0 and report it (ngircd, a replica set whose ports must be known
/// in advance). It is leased ([`crate::port_lease`]) for the rest of this
/// process's life, so no scenario, test or bench beside it is handed the
/// same port meanwhile.
pub fn free_port() -> Result<u16, String> {
    Ok(free_ports(1)?[0])
}

/// `n` different ports as [`free_port`] finds them (each one
/// [`crate::port_lease::lease_free_port`]'s pick, the one way a free port
/// is chosen here).
pub fn free_ports(n: usize) -> Result<Vec<u16>, String> {
    use crate::port_lease::{lease_free_port, PortLease};
    use std::sync::Mutex;
    // Held until the process exits: the processes these ports are for are
    // this one's children, or its threads' (a test binary's tests).
    static HELD: Mutex<Vec<PortLease>> = Mutex::new(Vec::new());
    let mut ports = Vec::with_capacity(n);
    while ports.len() < n {
        let leased = lease_free_port().ok_or_else(|| {
            format!(
                "no {n} free ports on 127.0.0.1 between {} and {}",
                FREE_PORTS.start, FREE_PORTS.end
            )
        })?;
        ports.push(leased.port);
        HELD.lock().unwrap_or_else(|e| e.into_inner()).push(leased);
    }
    Ok(ports)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_is_the_ceiling_of_q_n() {
        let samples: Vec<u32> = (1..=100).collect();
        assert_eq!(nearest_rank(&samples, 0.5), Some(50));
        assert_eq!(nearest_rank(&samples, 0.99), Some(99));
        assert_eq!(nearest_rank(&samples, 1.0), Some(100));
        assert_eq!(nearest_rank(&samples, 0.0), Some(1));
        assert_eq!(nearest_rank(&[7u32], 0.99), Some(7));
        assert_eq!(nearest_rank::<u32>(&[], 0.5), None);
        // Three samples: p50 is the 2nd (⌈1.5⌉), not an interpolation.
        assert_eq!(nearest_rank(&[10, 20, 30], 0.5), Some(20));
    }

    #[test]
    fn bpcon_and_chord_percentiles_are_nearest_rank_too() {
        use std::time::Duration;
        let ms: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        // BPCon's p50 used to round (n-1)·q: the 51st of 100.
        assert_eq!(crate::bpcon::client::percentile_ms(&ms, 0.5), 50.0);
        assert_eq!(crate::bpcon::client::percentile_ms(&ms, 0.99), 99.0);
        assert_eq!(crate::bpcon::client::percentile_ms(&[], 0.5), 0.0);
    }

    #[test]
    fn hex_is_two_lower_case_digits_a_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xab, 0xff]), "000fabff");
        assert_eq!(hex(&[]), "");
    }

    #[test]
    fn a_free_port_is_in_range_and_bindable() {
        let port = free_port().expect("a free port");
        assert!(FREE_PORTS.contains(&port));
        std::net::TcpListener::bind(("127.0.0.1", port)).expect("still free");
        assert!(
            crate::port_lease::lease(port).is_none(),
            "handed out but not leased"
        );
        let mut ports = free_ports(50).expect("50 free ports");
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), 50, "a port twice");
    }
}
