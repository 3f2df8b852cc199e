//! Throughput and latency through a chain of three real `peerloop server`
//! processes: a sender client on the first, a receiver on the last.

use super::process::Proc;
use super::stats::Percentiles;
use super::wire::{self, FrameReader, FRAME_LEN, RECEIVER_ID, SENDER_ID};
use crate::crc::codec::{CrcCodec, Message};
use crate::wire::Stopped;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::ops::ControlFlow;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Frames per `write` from the sender: 64 KiB.
const BATCH: usize = 1024;
/// A receiver that gets nothing for this long declares the run stalled.
const STALL: Duration = Duration::from_secs(20);

pub struct ChainReport {
    pub frames: u64,
    pub elapsed: Duration,
    /// One-way latency of single frames sent one at a time.
    pub quiet: Percentiles,
    /// One-way latency of sampled frames while the stream runs at full speed.
    pub loaded: Percentiles,
    /// CPU time (user + system) the three relaying processes spent on the
    /// stream, if /proc could tell: on a machine shared with other work
    /// the CPU per frame is steadier than the wall-clock rate.
    pub relay_cpu: Option<Duration>,
}

impl ChainReport {
    pub fn frames_per_sec(&self) -> f64 {
        self.frames as f64 / self.elapsed.as_secs_f64()
    }

    /// Nanoseconds of relaying CPU per frame (all three processes).
    pub fn relay_cpu_ns_per_frame(&self) -> Option<f64> {
        self.relay_cpu
            .map(|cpu| cpu.as_nanos() as f64 / self.frames.max(1) as f64)
    }
}

/// CPU time (user + system) process `pid` has used so far, from
/// /proc/PID/stat (in clock ticks, usually 10 ms).
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; the fields after it don't.
    let fields: Vec<&str> = stat
        .get(stat.rfind(')')? + 1..)?
        .split_whitespace()
        .collect();
    // utime and stime are fields 14 and 15, so 11 and 12 after the name.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let per_sec = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let per_sec = u64::try_from(per_sec).ok().filter(|&t| t > 0)?;
    Some(Duration::from_nanos(
        ticks.checked_mul(1_000_000_000)? / per_sec,
    ))
}

/// The CPU time the processes `pids` have used so far, all together.
pub fn total_cpu(pids: &[u32]) -> Option<Duration> {
    pids.iter().map(|&pid| cpu_time(pid)).sum()
}

/// Start `peerloop server` number `id` on a free loopback port, joined to
/// `join` if given; returns once it listens (and has joined).
pub fn start_server(
    exe: &Path,
    id: u32,
    join: Option<SocketAddr>,
) -> Result<(Proc, SocketAddr), String> {
    let mut command = Command::new(exe);
    command.args(["server", "--id", &id.to_string()]);
    command.args(["--servername", &format!("bench{id}"), "--info", "bench"]);
    command.args(["--port", "0", "--bind", "127.0.0.1"]);
    if let Some(join) = join {
        command.args(["--connect_to_host", "127.0.0.1"]);
        command.args(["--connect_to_port", &join.port().to_string()]);
    }
    // Info logging costs a formatted line per frame; keep nodes quiet.
    command.env("RUST_LOG", "warn");
    let mut proc = Proc::spawn(&format!("server {id}"), command, true)?;
    let wait = Duration::from_secs(20);
    let line = proc.wait_line(wait, "'listening on' line", |l| {
        l.starts_with("listening on ")
    })?;
    let addr: SocketAddr = line["listening on ".len()..]
        .trim()
        .parse()
        .map_err(|e| format!("server {id}: bad address in '{line}': {e}"))?;
    if join.is_some() {
        proc.wait_line(wait, "join", |l| l.starts_with("joined the network"))?;
    }
    Ok((proc, addr))
}

/// Run the chain bench: `frames` streamed frames (latency sampled every
/// `sample`-th), after `quiet_frames` sent one at a time.
pub fn run_chain(
    exe: &Path,
    frames: u64,
    sample: u64,
    quiet_frames: u64,
) -> Result<ChainReport, String> {
    let (s1, a1) = start_server(exe, 1, None)?;
    let (s2, a2) = start_server(exe, 2, Some(a1))?;
    let (s3, a3) = start_server(exe, 3, Some(a2))?;
    let servers = [s1, s2, s3];
    let pids: Vec<u32> = servers.iter().map(Proc::pid).collect();

    let mut sender = wire::connect_client(a1, SENDER_ID, "sender")?;
    let mut sender_in = FrameReader::default();
    sender_in.until(&mut sender, "the sender's welcome", wire::is_welcome)?;
    let mut receiver = wire::connect_client(a3, RECEIVER_ID, "receiver")?;
    let mut receiver_in = FrameReader::default();
    receiver_in.until(&mut receiver, "the receiver's welcome", wire::is_welcome)?;
    // Once the sender hears of the receiver, its server can route to it.
    sender_in.until(
        &mut sender,
        "the receiver's registration",
        |m| matches!(m, Message::ClientRegistration { source, .. } if *source == RECEIVER_ID),
    )?;

    measure(
        sender,
        receiver,
        receiver_in.buf,
        Stream {
            frames,
            sample,
            quiet_frames,
        },
        &pids,
    )
}

/// What [`measure`] sends.
pub struct Stream {
    /// Frames streamed at full speed.
    pub frames: u64,
    /// Every `sample`-th streamed frame is stamped for latency.
    pub sample: u64,
    /// Frames sent one at a time first.
    pub quiet_frames: u64,
}

/// Measure a path from `sender` to `receiver` (`leftover`: bytes the
/// receiver already read past its handshake) through the processes
/// `relays`: `quiet_frames` one at a time, then `frames` streamed, every
/// one checked in order and unchanged.
pub fn measure(
    mut sender: TcpStream,
    mut receiver: TcpStream,
    leftover: Vec<u8>,
    stream: Stream,
    relays: &[u32],
) -> Result<ChainReport, String> {
    let Stream {
        frames,
        sample,
        quiet_frames,
    } = stream;
    let mut receiver_in = FrameReader { buf: leftover };
    let origin = Instant::now();
    let quiet = quiet_latency(
        &mut sender,
        &mut receiver,
        &mut receiver_in,
        quiet_frames,
        origin,
    )?;

    // Stream: the sender writes from its own thread, this thread receives.
    let sender_end = sender.try_clone().map_err(|e| e.to_string())?;
    let cpu_before = total_cpu(relays);
    let start = Instant::now();
    let writer = std::thread::spawn(move || stream_frames(sender, frames, sample, origin));
    let received = receive_frames(&mut receiver, receiver_in.buf, frames, origin);
    let end = Instant::now();
    let relay_cpu = total_cpu(relays)
        .zip(cpu_before)
        .map(|(after, before)| after.saturating_sub(before));
    // Ends the sender thread whether it is still writing (on error) or waiting.
    let _ = sender_end.shutdown(std::net::Shutdown::Both);
    let sent = writer
        .join()
        .map_err(|_| "the sender thread panicked".to_string())?;
    let samples = received?;
    sent?;
    Ok(ChainReport {
        frames,
        elapsed: end - start,
        quiet,
        loaded: Percentiles::of(samples),
        relay_cpu,
    })
}

fn nanos_since(origin: Instant) -> u64 {
    origin.elapsed().as_nanos() as u64
}

/// Send frames one at a time, each after the previous one arrived.
fn quiet_latency(
    sender: &mut TcpStream,
    receiver: &mut TcpStream,
    receiver_in: &mut FrameReader,
    count: u64,
    origin: Instant,
) -> Result<Percentiles, String> {
    let mut samples = Vec::with_capacity(count as usize);
    let mut frame = [0u8; FRAME_LEN];
    for seq in 0..count {
        let stamp = nanos_since(origin);
        wire::chat_frame(seq, stamp, &mut frame);
        sender
            .write_all(&frame)
            .map_err(|e| format!("sender: {e}"))?;
        let got = receiver_in.until(receiver, "a chat frame", |m| {
            matches!(m, Message::ClientChat { .. })
        })?;
        wire::check_chat_frame(&got, seq)?;
        samples.push(nanos_since(origin) - stamp);
    }
    Ok(Percentiles::of(samples))
}

/// The sender: `frames` chat frames in 64 KiB writes.
fn stream_frames(
    mut sender: TcpStream,
    frames: u64,
    sample: u64,
    origin: Instant,
) -> Result<(), String> {
    let mut batch = vec![0u8; BATCH * FRAME_LEN];
    let mut seq = 0;
    while seq < frames {
        let count = (frames - seq).min(BATCH as u64) as usize;
        for slot in batch.chunks_exact_mut(FRAME_LEN).take(count) {
            let stamp = if seq % sample == 0 {
                nanos_since(origin).max(1)
            } else {
                0
            };
            wire::chat_frame(seq, stamp, slot);
            seq += 1;
        }
        sender
            .write_all(&batch[..count * FRAME_LEN])
            .map_err(|e| format!("sender: write failed after {seq} frames: {e}"))?;
    }
    // Keep the connection open until the receiver is done (it shuts this
    // socket down): closing it early would make the first server announce
    // our quit, which is not what is measured.
    let mut probe = [0u8; 4096];
    while matches!(sender.read(&mut probe), Ok(n) if n > 0) {}
    Ok(())
}

/// The receiver: every frame must arrive, in order, unchanged. Returns the
/// latency samples (ns) of the stamped frames.
fn receive_frames(
    receiver: &mut TcpStream,
    leftover: Vec<u8>,
    frames: u64,
    origin: Instant,
) -> Result<Vec<u64>, String> {
    receiver
        .set_read_timeout(Some(STALL))
        .map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut have = leftover.len();
    buf[..have].copy_from_slice(&leftover);
    let mut next = 0u64;
    let mut samples = Vec::new();
    while next < frames {
        let (at, stopped) =
            crate::wire::decode_each(&CrcCodec, &buf[..have], |(message, frame)| {
                let checked = match message {
                    Message::ClientChat { .. } => {
                        wire::check_chat_frame(frame, next).map(|stamp| {
                            if stamp != 0 {
                                samples.push(nanos_since(origin).saturating_sub(stamp));
                            }
                            next += 1;
                        })
                    }
                    other => wire::refuse_bad_status(&other)
                        .map_err(|e| format!("after {next} frames: {e}")),
                };
                match checked {
                    Ok(()) => ControlFlow::Continue(()),
                    Err(e) => ControlFlow::Break(e),
                }
            });
        match stopped {
            None => {}
            Some(Stopped::Handler(e)) => return Err(e),
            Some(Stopped::Decode(e)) => return Err(format!("after {next} frames: {e}")),
        }
        buf.copy_within(at..have, 0);
        have -= at;
        if next == frames {
            break;
        }
        match receiver.read(&mut buf[have..]) {
            Ok(0) => {
                return Err(format!(
                    "the last server closed the receiver after {next} of {frames} frames"
                ))
            }
            Ok(n) => have += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(format!(
                    "receiver got {next} of {frames} frames, then nothing for {STALL:?} ({e})"
                ))
            }
        }
    }
    Ok(samples)
}
