//! BPCon end to end: real replica processes on loopback, real TCP, real
//! RSA-2048 keys, driven by the `propose` and `kv` commands.

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_peerloop");
const NAMES: [&str; 4] = ["A", "B", "C", "D"];

fn temp_dir(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "peerloop-bpcon-{label}-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::SeqCst)
}

/// RSA-2048 keys for A-D, generated once per test run.
fn keys() -> &'static Path {
    static KEYS: OnceLock<PathBuf> = OnceLock::new();
    KEYS.get_or_init(|| {
        let dir = temp_dir("keys");
        for name in NAMES {
            let out = Command::new(BIN)
                .args(["keygen", "--name", name, "--out"])
                .arg(&dir)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        dir
    })
}

/// A free port below Linux's ephemeral range (32768+), so the outgoing
/// connections of tests running in parallel cannot take it meanwhile.
fn free_port() -> u16 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    loop {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(rand_suffix());
        let port = 20_000 + (h.finish() % 12_000) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

struct Replica {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
}

struct Cluster {
    dir: PathBuf,
    peer_ports: Vec<u16>,
    api_ports: Vec<u16>,
    names: Vec<&'static str>,
    replicas: Vec<Option<Replica>>,
    modes: Vec<Option<&'static str>>,
}

impl Cluster {
    fn start(n: usize, modes: Vec<Option<&'static str>>) -> Cluster {
        let mut cluster = Cluster {
            dir: temp_dir("cluster"),
            peer_ports: (0..n).map(|_| free_port()).collect(),
            api_ports: (0..n).map(|_| free_port()).collect(),
            names: NAMES[..n].to_vec(),
            replicas: (0..n).map(|_| None).collect(),
            modes,
        };
        for i in 0..n {
            cluster.launch(i);
        }
        cluster
    }

    fn api(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.api_ports[i])
    }

    fn launch(&mut self, i: usize) {
        // The whole group, this replica included (the same list everywhere).
        let peers: Vec<String> = (0..self.names.len())
            .map(|j| format!("{}=127.0.0.1:{}", self.names[j], self.peer_ports[j]))
            .collect();
        let name = self.names[i];
        let mut cmd = Command::new(BIN);
        cmd.args(["paxos", "--id", name])
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.peer_ports[i]))
            .arg("--peers")
            .arg(peers.join(","))
            .arg("--key")
            .arg(keys().join(format!("{name}.pem")))
            .arg("--peer-keys")
            .arg(keys())
            .arg("--api")
            .arg(self.api(i))
            .arg("--data")
            .arg(self.dir.join(format!("data-{name}")))
            .arg("--log-file")
            .arg(self.dir.join(format!("{name}.log")))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(mode) = self.modes[i] {
            cmd.args(["--byzantine", mode])
                .env("PEERLOOP_ALLOW_BYZANTINE", "1");
        }
        let mut child = cmd.spawn().unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Wait until the API answers.
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(self.api(i)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("replica {name} exited at start ({status}): port taken?");
            }
            assert!(Instant::now() < deadline, "replica {name} did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        self.replicas[i] = Some(Replica {
            child,
            stdin,
            lines: rx,
        });
    }

    fn kill(&mut self, i: usize) {
        if let Some(mut r) = self.replicas[i].take() {
            let _ = r.child.kill();
            let _ = r.child.wait();
        }
    }

    fn state(&mut self, i: usize) -> Value {
        let r = self.replicas[i].as_mut().expect("running");
        writeln!(r.stdin, "state").unwrap();
        loop {
            let line = r
                .lines
                .recv_timeout(Duration::from_secs(10))
                .expect("a state line");
            if line.starts_with('{') {
                return serde_json::from_str(&line).unwrap();
            }
        }
    }

    /// Poll until every running correct replica has `count` operations
    /// and they all agree; returns their states.
    fn wait_agreement(&mut self, count: u64) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let running: Vec<usize> = (0..self.names.len())
                .filter(|&i| self.replicas[i].is_some() && self.modes[i].is_none())
                .collect();
            let states: Vec<Value> = running.iter().map(|&i| self.state(i)).collect();
            let done = states.iter().all(|s| {
                s["committed"] == count
                    && s["log_digest"] == states[0]["log_digest"]
                    && s["store"] == states[0]["store"]
            });
            if done {
                return states;
            }
            if Instant::now() > deadline {
                let summary: Vec<String> = states
                    .iter()
                    .map(|s| format!("{} {} {}", s["id"], s["committed"], s["log_digest"]))
                    .collect();
                panic!("no agreement on {count} operations: {summary:?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.dir.join(format!("{}.log", self.names[i]))).unwrap_or_default()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.replicas.len() {
            self.kill(i);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn propose(api: &str, extra: &[&str], ops: &[String]) -> Output {
    let mut child = Command::new(BIN)
        .args(["propose", "--api", api])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(ops.join("\n").as_bytes()).unwrap();
    drop(stdin);
    child.wait_with_output().unwrap()
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn four_replicas_two_concurrent_proposers_commit_1000_operations_identically() {
    let mut cluster = Cluster::start(4, vec![None; 4]);
    let ops =
        |p: usize| -> Vec<String> { (0..500).map(|k| format!("P,k{},{p}-{k}", k % 50)).collect() };
    let (a, c) = (cluster.api(0), cluster.api(2));
    let (ops0, ops2) = (ops(0), ops(2));
    let first =
        std::thread::spawn(move || propose(&a, &["--window", "64", "--retry", "5", "-q"], &ops0));
    let second = propose(&c, &["--window", "64", "--retry", "5", "-q"], &ops2);
    let first = first.join().unwrap();
    assert!(first.status.success(), "{}", text(&first));
    assert!(second.status.success(), "{}", text(&second));
    let states = cluster.wait_agreement(1000);
    let log = states[0]["log"].as_array().unwrap();
    let unique: std::collections::HashSet<&str> = log.iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(unique.len(), 1000, "an operation committed twice");
}

#[test]
fn operations_commit_with_one_replica_down_and_it_catches_up_after_restart() {
    let mut cluster = Cluster::start(4, vec![None; 4]);
    let warmup: Vec<String> = (0..10).map(|k| format!("P,w{k},1")).collect();
    assert!(propose(&cluster.api(0), &["--window", "10"], &warmup)
        .status
        .success());
    cluster.wait_agreement(10);
    cluster.kill(3);
    let ops: Vec<String> = (0..100).map(|k| format!("P,d{k},{k}")).collect();
    let out = propose(&cluster.api(1), &["--window", "20"], &ops);
    assert!(out.status.success(), "{}", text(&out));
    cluster.wait_agreement(110);
    // Restarted with the same data directory: it remembers, then catches up.
    cluster.launch(3);
    let states = cluster.wait_agreement(110);
    assert_eq!(states.len(), 4);
    assert!(cluster.log(3).contains("restored"), "{}", cluster.log(3));
    // And it leads ballots again.
    let out = propose(&cluster.api(3), &[], &["P,back,1".to_string()]);
    assert!(text(&out).starts_with("0 committed"), "{}", text(&out));
    cluster.wait_agreement(111);
}

fn misbehaving_replica(mode: &'static str) {
    let mut cluster = Cluster::start(4, vec![None, Some(mode), None, None]);
    let honest = |p: usize| -> Vec<String> { (0..60).map(|k| format!("P,{p}k{k},{k}")).collect() };
    let byz_api = cluster.api(1);
    // The misbehaving replica leads ballots of its own at the same time.
    let byz = std::thread::spawn(move || {
        let ops: Vec<String> = (0..20).map(|k| format!("P,byz{k},{k}")).collect();
        propose(&byz_api, &["--window", "4", "--timeout", "15"], &ops)
    });
    let (a, c) = (cluster.api(0), cluster.api(2));
    let (ops0, ops2) = (honest(0), honest(2));
    let first = std::thread::spawn(move || propose(&a, &["--window", "8", "--retry", "5"], &ops0));
    let second = propose(&c, &["--window", "8", "--retry", "5"], &ops2);
    let first = first.join().unwrap();
    assert!(first.status.success(), "{mode}: {}", text(&first));
    assert!(second.status.success(), "{mode}: {}", text(&second));
    let _ = byz.join();
    // Correct replicas agree (they may hold extra operations the misbehaving one got in).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let states: Vec<Value> = [0, 2, 3].iter().map(|&i| cluster.state(i)).collect();
        let same = states.iter().all(|s| {
            s["log_digest"] == states[0]["log_digest"] && s["store"] == states[0]["store"]
        });
        let committed = states[0]["committed"].as_u64().unwrap();
        if same && committed >= 120 {
            if mode == "forge" {
                let rejected: u64 = states
                    .iter()
                    .map(|s| s["forged_rejected"].as_u64().unwrap())
                    .sum();
                assert!(rejected > 0, "forged proofs were not noticed");
                assert!((0..4).any(|i| cluster.log(i).contains("forged")));
            }
            if mode == "lie" {
                assert!(states[0]["store"].get("byzantine").is_none());
            }
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{mode}: correct replicas disagree or stall"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn correct_replicas_agree_next_to_a_forger() {
    misbehaving_replica("forge");
}

#[test]
fn correct_replicas_agree_next_to_an_equivocator() {
    misbehaving_replica("equivocate");
}

#[test]
fn correct_replicas_agree_next_to_a_liar() {
    misbehaving_replica("lie");
}

#[test]
fn misbehaving_needs_an_explicit_opt_in() {
    let out = Command::new(BIN)
        .args([
            "paxos",
            "--id",
            "A",
            "--listen",
            "127.0.0.1:0",
            "--api",
            "127.0.0.1:0",
        ])
        .arg("--key")
        .arg(keys().join("A.pem"))
        .args(["--byzantine", "forge"])
        .env_remove("PEERLOOP_ALLOW_BYZANTINE")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("PEERLOOP_ALLOW_BYZANTINE"));
}

#[test]
fn a_lone_replica_commits_and_bad_input_gets_code_1_or_a_closed_link() {
    let mut cluster = Cluster::start(1, vec![None]);
    let api = cluster.api(0);
    let out = propose(&api, &[], &["P,a,1".into(), "D,a,".into(), "P,b,2".into()]);
    assert!(out.status.success(), "{}", text(&out));
    let bad = vec![
        "X,a,b".to_string(),
        "Pab".to_string(),
        format!("P,a,{}", "v".repeat(5000)),
    ];
    let out = propose(&api, &["--window", "3"], &bad);
    let lines = text(&out);
    assert!(!out.status.success());
    assert!(
        lines.contains("1 failed (X,a,b): bad request: unknown operation"),
        "{lines}"
    );
    assert!(lines.contains("no comma"), "{lines}");
    assert!(lines.contains("over the 1024-byte limit"), "{lines}");
    // Garbage on the replica port, and a forged HELLO: those links close.
    let peer = format!("127.0.0.1:{}", cluster.peer_ports[0]);
    for bytes in [vec![0u8, 2, 0, 0], vec![0, 9, 2, 89, 1, 65, 1, 65, 0]] {
        let mut s = TcpStream::connect(&peer).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(&bytes).unwrap();
        let mut buf = [0u8; 16];
        assert!(
            matches!(s.read(&mut buf), Ok(0) | Err(_)),
            "link stayed open"
        );
    }
    // An unknown client message type closes that client only.
    let mut s = TcpStream::connect(&api).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(&[0, 4, 0, 1]).unwrap();
    let mut buf = [0u8; 16];
    assert!(matches!(s.read(&mut buf), Ok(0) | Err(_)));
    let out = propose(&api, &[], &["P,still,ok".into()]);
    assert!(text(&out).starts_with("0 committed"), "{}", text(&out));
    let state = cluster.state(0);
    assert_eq!(state["store"]["b"], "2");
    assert_eq!(state["store"]["still"], "ok");
    assert_eq!(state["quorum"], 1);
    let kv = Command::new(BIN)
        .args(["kv", "--api", &api, "get", "b"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&kv.stdout).trim(), "2");
}
