//! The reference point: the same chain measured with ngIRCd. Three ngircd
//! servers linked in a chain on loopback, an IRC client at each end, the
//! sender streaming PRIVMSGs to the receiver.
//!
//! ngIRCd throttles ordinary users hard (a penalty second after a few
//! commands), so the sender becomes an IRC operator and sets user mode +F
//! ("relaxed flood protection"), which lifts the penalty; that is the
//! fastest a single ngIRCd user can send.

use super::process::{Proc, TempDir};
use super::stats::Percentiles;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const PASSWORD: &str = "peerloopbench";
const STALL: Duration = Duration::from_secs(20);
/// Length of each message's text, as the CRC frames' text (51 bytes).
const TEXT_LEN: usize = 51;

pub struct NgircdReport {
    pub version: String,
    pub messages: u64,
    pub elapsed: Duration,
    pub quiet: Percentiles,
    pub loaded: Percentiles,
}

impl NgircdReport {
    pub fn messages_per_sec(&self) -> f64 {
        self.messages as f64 / self.elapsed.as_secs_f64()
    }
}

/// The ngircd binary, if installed.
pub fn find_ngircd() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/local/sbin".into()])
        .map(|dir| dir.join("ngircd"))
        .find(|p| p.is_file())
}

fn version(ngircd: &Path) -> String {
    Command::new(ngircd)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(|l| l.split('-').next().unwrap_or(l).trim().to_string())
        })
        .unwrap_or_else(|| "ngIRCd".into())
}

/// The config of server `i` (1..=3) of the chain; server i joins server i-1.
fn config(dir: &Path, i: usize, ports: &[u16]) -> String {
    let mut conf = format!(
        "[Global]\n\tName = irc{i}.bench\n\tInfo = peerloop bench {i}\n\
         \tListen = 127.0.0.1\n\tPorts = {port}\n\tMotdPhrase = bench\n\
         \tPidFile = {dir}/irc{i}.pid\n\
         [Limits]\n\tMaxConnections = 0\n\tMaxConnectionsIP = 0\n\
         \tPingTimeout = 600\n\tPongTimeout = 600\n\tConnectRetry = 5\n\
         [Options]\n\tPAM = no\n\tIdent = no\n\tDNS = no\n\tOperCanUseMode = yes\n\
         [Operator]\n\tName = bench\n\tPassword = {PASSWORD}\n",
        port = ports[i - 1],
        dir = dir.display(),
    );
    for peer in [i - 1, i + 1] {
        if peer == 0 || peer > 3 {
            continue;
        }
        conf += &format!(
            "[Server]\n\tName = irc{peer}.bench\n\tMyPassword = {PASSWORD}\n\
             \tPeerPassword = {PASSWORD}\n"
        );
        if peer < i {
            // The newer server connects to the older one.
            conf += &format!("\tHost = 127.0.0.1\n\tPort = {}\n", ports[peer - 1]);
        }
    }
    conf
}

/// An IRC connection that reads lines.
struct Irc {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    nick: String,
}

impl Irc {
    fn connect(addr: SocketAddr, nick: &str, deadline: Instant) -> Result<Irc, String> {
        // The server may still be starting: retry until the deadline.
        let stream = loop {
            match TcpStream::connect(addr) {
                Ok(s) => break s,
                Err(e) if Instant::now() > deadline => {
                    return Err(format!("ngircd at {addr} does not accept connections: {e}"))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        let _ = stream.set_nodelay(true);
        stream
            .set_read_timeout(Some(STALL))
            .map_err(|e| e.to_string())?;
        let writer = stream.try_clone().map_err(|e| e.to_string())?;
        let mut irc = Irc {
            reader: BufReader::with_capacity(256 * 1024, stream),
            writer,
            nick: nick.to_string(),
        };
        irc.send(&format!("NICK {nick}\r\nUSER {nick} 0 * :bench\r\n"))?;
        irc.until("welcome (001)", |l| l.contains(" 001 "))?;
        Ok(irc)
    }

    fn send(&mut self, text: &str) -> Result<(), String> {
        self.writer
            .write_all(text.as_bytes())
            .map_err(|e| format!("{}: write: {e}", self.nick))
    }

    /// Next line (without CR LF); answers PINGs on the way.
    fn line(&mut self, line: &mut String) -> Result<(), String> {
        loop {
            line.clear();
            let n = self
                .reader
                .read_line(line)
                .map_err(|e| format!("{}: read: {e}", self.nick))?;
            if n == 0 {
                return Err(format!("{}: ngircd closed the connection", self.nick));
            }
            while line.ends_with('\n') || line.ends_with('\r') {
                line.pop();
            }
            if let Some(token) = line.strip_prefix("PING ") {
                let pong = format!("PONG {token}\r\n");
                self.send(&pong)?;
                continue;
            }
            if line.starts_with("ERROR") {
                return Err(format!("{}: {line}", self.nick));
            }
            return Ok(());
        }
    }

    fn until(&mut self, what: &str, want: impl Fn(&str) -> bool) -> Result<String, String> {
        let mut line = String::new();
        loop {
            self.line(&mut line)
                .map_err(|e| format!("waiting for {what}: {e}"))?;
            if want(&line) {
                return Ok(line);
            }
        }
    }
}

fn text(seq: u64, stamp: u64) -> String {
    let mut t = format!("{seq:016x} {stamp:016x} ");
    while t.len() < TEXT_LEN {
        t.push((b'a' + ((seq as usize + t.len()) % 26) as u8) as char);
    }
    t
}

/// Check a received line is PRIVMSG `seq`; returns its stamp.
fn check(line: &str, seq: u64) -> Result<Option<u64>, String> {
    let Some(at) = line.find(" PRIVMSG receiver :") else {
        return Ok(None); // a notice or numeric: not ours
    };
    let body = &line[at + " PRIVMSG receiver :".len()..];
    let got = u64::from_str_radix(body.get(..16).unwrap_or(""), 16)
        .map_err(|_| format!("unreadable PRIVMSG '{line}'"))?;
    if got != seq {
        return Err(format!(
            "ngIRCd: expected message {seq}, got {got}: lost or out of order"
        ));
    }
    let stamp = u64::from_str_radix(body.get(17..33).unwrap_or(""), 16)
        .map_err(|_| format!("unreadable PRIVMSG '{line}'"))?;
    if body != text(seq, stamp) {
        return Err(format!(
            "ngIRCd: message {seq} changed in transit: '{body}'"
        ));
    }
    Ok(Some(stamp))
}

/// Start the chain, then stream `messages` PRIVMSGs end to end.
pub fn run_ngircd(
    ngircd: &Path,
    messages: u64,
    sample: u64,
    quiet_messages: u64,
) -> Result<NgircdReport, String> {
    let dir = TempDir::new("ngircd")?;
    let ports = crate::util::free_ports(3)?;
    let mut servers = Vec::new();
    for i in 1..=3 {
        let conf = dir.path().join(format!("irc{i}.conf"));
        std::fs::write(&conf, config(dir.path(), i, &ports))
            .map_err(|e| format!("cannot write {}: {e}", conf.display()))?;
        let log = std::fs::File::create(dir.path().join(format!("irc{i}.log")))
            .map_err(|e| e.to_string())?;
        let mut command = Command::new(ngircd);
        command.arg("--nodaemon").arg("--config").arg(&conf);
        command.stderr(log);
        servers.push(Proc::spawn(&format!("ngircd {i}"), command, false)?);
    }
    let _servers = servers;
    let deadline = Instant::now() + Duration::from_secs(30);
    let addr = |i: usize| SocketAddr::from(([127, 0, 0, 1], ports[i]));
    let mut sender = Irc::connect(addr(0), "sender", deadline)?;
    sender.send(&format!("OPER bench {PASSWORD}\r\n"))?;
    sender.until("OPER reply (381)", |l| l.contains(" 381 "))?;
    sender.send("MODE sender +F\r\n")?;
    sender.until("mode +F", |l| {
        l.contains(" MODE sender ") && l.contains('F')
    })?;
    let mut receiver = Irc::connect(addr(2), "receiver", deadline)?;
    // The servers link on their own schedule: wait until the first knows the receiver.
    loop {
        sender.send("ISON receiver\r\n")?;
        let reply = sender.until("ISON reply (303)", |l| l.contains(" 303 "))?;
        if reply.ends_with(":receiver") || reply.contains(":receiver ") {
            break;
        }
        if Instant::now() > deadline {
            return Err("the three ngircd servers did not link within 30 s".into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }

    let origin = Instant::now();
    let stamp_now = move || origin.elapsed().as_nanos() as u64;
    let mut quiet = Vec::new();
    let mut line = String::new();
    for seq in 0..quiet_messages {
        let stamp = stamp_now();
        sender.send(&format!("PRIVMSG receiver :{}\r\n", text(seq, stamp)))?;
        loop {
            receiver.line(&mut line)?;
            if check(&line, seq)?.is_some() {
                break;
            }
        }
        quiet.push(stamp_now() - stamp);
    }

    let mut writer = sender.writer.try_clone().map_err(|e| e.to_string())?;
    let start = Instant::now();
    let streamer = std::thread::spawn(move || -> Result<(), String> {
        let mut batch = String::with_capacity(1 << 17);
        let mut seq = 0;
        while seq < messages {
            batch.clear();
            while seq < messages && batch.len() < 64 * 1024 {
                let stamp = if seq % sample == 0 {
                    stamp_now().max(1)
                } else {
                    0
                };
                batch += "PRIVMSG receiver :";
                batch += &text(seq, stamp);
                batch += "\r\n";
                seq += 1;
            }
            writer
                .write_all(batch.as_bytes())
                .map_err(|e| format!("ngIRCd sender: write failed near message {seq}: {e}"))?;
        }
        Ok(())
    });
    let received = (|| -> Result<Vec<u64>, String> {
        let mut samples = Vec::new();
        let mut next = 0;
        while next < messages {
            receiver
                .line(&mut line)
                .map_err(|e| format!("after {next} of {messages} messages: {e}"))?;
            if let Some(stamp) = check(&line, next)? {
                if stamp != 0 {
                    samples.push(stamp_now().saturating_sub(stamp));
                }
                next += 1;
            }
        }
        Ok(samples)
    })();
    let elapsed = start.elapsed();
    let _ = sender.writer.shutdown(std::net::Shutdown::Both);
    let sent = streamer
        .join()
        .map_err(|_| "the ngIRCd sender thread panicked".to_string())?;
    let samples = received.map_err(|e| {
        let log = std::fs::read_to_string(dir.path().join("irc1.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(5).collect();
        format!("{e} (irc1 log ends: {tail:?})")
    })?;
    sent?;
    Ok(NgircdReport {
        version: version(ngircd),
        messages,
        elapsed,
        quiet: Percentiles::of(quiet),
        loaded: Percentiles::of(samples),
    })
}
