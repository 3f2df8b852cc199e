//! Ports handed to processes started later, that nobody else on this
//! machine who asks here can be handed at the same time.
//!
//! A scenario maps each of its file's ports to a free one when it first
//! sees it, but the machine that listens on it starts later; a test or a
//! bench picks ports for a replica group before starting it. These run side
//! by side (`--jobs`, and many tests under `cargo test`), so a port that was
//! free when probed could be given to two of them, and the second listener
//! dies with "address in use". Each port handed out is therefore leased: an
//! exclusive `flock` on a file named after it, held while it is in use
//! (a scenario's life; a test or bench process's life, see
//! [`crate::util::free_ports`]) and dropped by the kernel if the holder dies.

use std::fs::{File, OpenOptions};
use std::net::TcpListener;
use std::path::PathBuf;

/// Below Linux's ephemeral range, so no outgoing connection takes them.
const RANGE: std::ops::Range<u16> = crate::util::FREE_PORTS;

/// A port held until the lease is dropped.
pub struct PortLease {
    pub port: u16,
    _lock: File,
}

fn lease_dir() -> PathBuf {
    std::env::temp_dir().join("peerloop-port-leases")
}

/// Lease `port` if no other runner holds it and nothing listens on it now.
pub fn lease(port: u16) -> Option<PortLease> {
    let dir = lease_dir();
    std::fs::create_dir_all(&dir).ok()?;
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(port.to_string()))
        .ok()?;
    // Held by another runner (or by an earlier lease in this one).
    file.try_lock().ok()?;
    TcpListener::bind(("127.0.0.1", port)).ok()?;
    Some(PortLease { port, _lock: file })
}

/// A leased free port chosen at random in [`RANGE`].
pub fn lease_free_port() -> Option<PortLease> {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    (0..400).find_map(|_| lease(rng.gen_range(RANGE)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leased_port_is_not_leased_again_until_it_is_dropped() {
        let first = lease_free_port().expect("a free port");
        assert!(lease(first.port).is_none(), "leased twice");
        let port = first.port;
        drop(first);
        assert!(lease(port).is_some(), "not released");
    }

    #[test]
    fn a_port_something_listens_on_is_not_leased() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert!(lease(port).is_none());
    }
}
