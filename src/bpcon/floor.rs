//! The physical floor under a BPCon operation, measured by `peerloop bench
//! bpcon` in the same run as the replicas: what an fsync'd append, an
//! RSA-2048 signature and verification and a loopback round trip cost on
//! this machine, and how many of each a lone operation waits for.

use crate::bpcon::crypto::PrivateKey;
use crate::util::nearest_rank;
use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

/// What one operation alone waits for, from the client's request to its
/// answer, in today's protocol's steady state: a stable leader (phase 1
/// ran once, for an earlier slot), one slot at a time, 2b votes sent
/// unsigned. Following the messages (n = 4, quorum q = 3; the leader is one
/// of the acceptors and answers its own messages without the network):
///
/// 1. client → leader: hop 1; the 1c goes out at once (its phase-1 proofs
///    were verified once, when the ballot began; it leaves before the
///    leader's own relay of it is on disk, which it does not depend on):
///    hop 2;
/// 2. every acceptor, the leader too, fsyncs its relay (fsync 1, in
///    parallel) and broadcasts its 2av: hop 3;
/// 3. on q 2avs (not signed: the link MAC authenticates them) it fsyncs its
///    vote (fsync 2) and broadcasts its 2b, unsigned: hop 4;
/// 4. on q 2bs (unsigned too: the link names the voter) the leader decides,
///    writes the commit record without fsync (see `Replica::commit`) and
///    answers the client: hop 5.
///
/// No signature or verification is on it: the acceptors sign their votes
/// later, on the clock and several slots at once, for the decision
/// certificates, which no decision waits for. Acceptors work in parallel,
/// so each step counts once (a node fsyncs once per poll round for all of
/// its records: more records in a round cost no more fsyncs). Whoever
/// shortens or lengthens the path changes this, and only this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CriticalPath {
    pub fsyncs: u32,
    pub signs: u32,
    pub verifies: u32,
    /// One-way loopback hops, the two between client and leader included.
    pub hops: u32,
}

/// Hops between the client and the leader, included in `hops`.
pub const CLIENT_HOPS: u32 = 2;

impl CriticalPath {
    /// A lone operation's path (the same for every group size: with no
    /// verification on it, the quorum does not count).
    pub fn lone_op() -> CriticalPath {
        CriticalPath {
            fsyncs: 2,
            signs: 0,
            verifies: 0,
            hops: 5,
        }
    }

    /// One slot's path: the same without the client's two hops (with
    /// requests queued, the next batch is already at the leader).
    pub fn slot(self) -> CriticalPath {
        CriticalPath {
            hops: self.hops.saturating_sub(CLIENT_HOPS),
            ..self
        }
    }

    /// The time this path takes at the measured costs.
    pub fn time(self, costs: &Costs) -> Duration {
        costs.fsync * self.fsyncs
            + costs.sign * self.signs
            + costs.verify * self.verifies
            + costs.round_trip / 2 * self.hops
    }

    /// "4 fsync + 2 sign + 7 verify + 7 hops", with the costs.
    pub fn formula(self, costs: &Costs) -> String {
        format!(
            "{} fsync ({:.3} ms) + {} sign ({:.3} ms) + {} verify ({:.3} ms) + {} one-way hops ({:.3} ms)",
            self.fsyncs,
            ms(costs.fsync),
            self.signs,
            ms(costs.sign),
            self.verifies,
            ms(costs.verify),
            self.hops,
            ms(costs.round_trip / 2)
        )
    }
}

/// Medians (nearest rank) of what the floor is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Costs {
    /// A 4 KiB append with `fsync` (`sync_data`, as the WAL does).
    pub fsync: Duration,
    pub sign: Duration,
    pub verify: Duration,
    /// A one-byte ping-pong on a loopback TCP connection.
    pub round_trip: Duration,
}

impl Costs {
    /// Each cost the lower of two measurements: a floor is a lower bound,
    /// and on a shared machine the disk's load changes within a run.
    pub fn lower(self, other: Costs) -> Costs {
        Costs {
            fsync: self.fsync.min(other.fsync),
            sign: self.sign.min(other.sign),
            verify: self.verify.min(other.verify),
            round_trip: self.round_trip.min(other.round_trip),
        }
    }
}

pub const FSYNC_SAMPLES: usize = 200;
pub const RSA_SAMPLES: usize = 40;
pub const ROUND_TRIPS: usize = 1000;

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    nearest_rank(&samples, 0.5).unwrap_or_default()
}

/// Measure every cost: fsyncs in `dir` (the replicas' disk), signatures
/// with `key` (a bench replica's RSA-2048 key).
pub fn measure(dir: &Path, key: &PrivateKey) -> Result<Costs, String> {
    Ok(Costs {
        fsync: fsync_append(dir)?,
        sign: time_each(RSA_SAMPLES, || {
            key.sign(SIGNED);
        }),
        verify: {
            let public = key.public();
            let signature = key.sign(SIGNED);
            let mut ok = true;
            let d = time_each(RSA_SAMPLES, || ok &= public.verify(SIGNED, &signature));
            if !ok {
                return Err("a signature of the floor measurement did not verify".into());
            }
            d
        },
        round_trip: loopback_round_trip()?,
    })
}

/// About the size of a signed 1b.
const SIGNED: &[u8] = &[0x5a; 70];

fn time_each(samples: usize, mut work: impl FnMut()) -> Duration {
    let times = (0..samples)
        .map(|_| {
            let started = Instant::now();
            work();
            started.elapsed()
        })
        .collect();
    median(times)
}

fn fsync_append(dir: &Path) -> Result<Duration, String> {
    let path = dir.join("floor-fsync.bin");
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    let block = [0xa5u8; 4096];
    let mut times = Vec::with_capacity(FSYNC_SAMPLES);
    for _ in 0..FSYNC_SAMPLES {
        let started = Instant::now();
        file.write_all(&block)
            .and_then(|_| file.sync_data())
            .map_err(|e| format!("cannot append to {}: {e}", path.display()))?;
        times.push(started.elapsed());
    }
    drop(file);
    let _ = std::fs::remove_file(&path);
    Ok(median(times))
}

fn loopback_round_trip() -> Result<Duration, String> {
    let words = |e: std::io::Error| format!("loopback round trip: {e}");
    let listener = TcpListener::bind("127.0.0.1:0").map_err(words)?;
    let addr = listener.local_addr().map_err(words)?;
    // The echo side: a thread of the bench process, not a node.
    let echo = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut conn, _) = listener.accept()?;
        conn.set_nodelay(true)?;
        let mut byte = [0u8; 1];
        for _ in 0..ROUND_TRIPS {
            conn.read_exact(&mut byte)?;
            conn.write_all(&byte)?;
        }
        Ok(())
    });
    let mut conn = TcpStream::connect(addr).map_err(words)?;
    conn.set_nodelay(true).map_err(words)?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(words)?;
    let mut byte = [7u8; 1];
    let mut times = Vec::with_capacity(ROUND_TRIPS);
    for _ in 0..ROUND_TRIPS {
        let started = Instant::now();
        conn.write_all(&byte).map_err(words)?;
        conn.read_exact(&mut byte).map_err(words)?;
        times.push(started.elapsed());
    }
    echo.join()
        .map_err(|_| "loopback round trip: the echo thread panicked".to_string())?
        .map_err(words)?;
    Ok(median(times))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn todays_lone_operation_waits_for_two_fsyncs_five_hops_and_no_signature() {
        let path = CriticalPath::lone_op();
        assert_eq!(
            path,
            CriticalPath {
                fsyncs: 2,
                signs: 0,
                verifies: 0,
                hops: 5
            }
        );
        assert_eq!(path.slot().hops, 3);
        let costs = Costs {
            fsync: Duration::from_micros(300),
            sign: Duration::from_micros(1000),
            verify: Duration::from_micros(50),
            round_trip: Duration::from_micros(40),
        };
        // 0.6 + 0.1 ms.
        assert_eq!(path.time(&costs), Duration::from_micros(700));
        assert_eq!(
            path.formula(&costs),
            "2 fsync (0.300 ms) + 0 sign (1.000 ms) + 0 verify (0.050 ms) + 5 one-way hops (0.020 ms)"
        );
    }

    #[test]
    fn the_floor_takes_the_lower_of_two_measurements_per_cost() {
        let us = Duration::from_micros;
        let a = Costs {
            fsync: us(300),
            sign: us(900),
            verify: us(50),
            round_trip: us(20),
        };
        let b = Costs {
            fsync: us(200),
            sign: us(1000),
            verify: us(40),
            round_trip: us(30),
        };
        assert_eq!(
            a.lower(b),
            Costs {
                fsync: us(200),
                sign: us(900),
                verify: us(40),
                round_trip: us(20)
            }
        );
    }
}
