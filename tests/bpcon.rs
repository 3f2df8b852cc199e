//! BPCon end to end: real replica processes on loopback, real TCP, real
//! RSA-2048 keys, driven by the `propose` and `kv` commands.

use peerloop::testkit::Proc;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
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

struct Cluster {
    dir: PathBuf,
    peer_ports: Vec<u16>,
    api_ports: Vec<u16>,
    names: Vec<&'static str>,
    replicas: Vec<Option<Proc>>,
    modes: Vec<Option<&'static str>>,
}

impl Cluster {
    /// A group of `modes.len()` replicas, every one started.
    fn start(modes: Vec<Option<&'static str>>) -> Cluster {
        let n = modes.len();
        let mut cluster = Cluster::unstarted("cluster", modes);
        for i in 0..n {
            cluster.launch(i);
        }
        cluster
    }

    /// A group of `modes.len()` replicas with ports and keys' folder chosen,
    /// none started yet (tests start the ones they need).
    fn unstarted(label: &str, modes: Vec<Option<&'static str>>) -> Cluster {
        let n = modes.len();
        Cluster {
            dir: temp_dir(label),
            peer_ports: peerloop::util::free_ports(n).expect("free ports"),
            api_ports: peerloop::util::free_ports(n).expect("free ports"),
            names: NAMES[..n].to_vec(),
            replicas: (0..n).map(|_| None).collect(),
            modes,
        }
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
            .stderr(Stdio::null());
        if let Some(mode) = self.modes[i] {
            cmd.args(["--byzantine", mode])
                .env("PEERLOOP_ALLOW_BYZANTINE", "1");
        }
        let mut replica = Proc::spawn(&format!("replica {name}"), cmd, true).unwrap();
        // Wait until the API answers.
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(self.api(i)).is_err() {
            if let Some(status) = replica.exit_status() {
                panic!("replica {name} exited at start ({status}): port taken?");
            }
            assert!(Instant::now() < deadline, "replica {name} did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        self.replicas[i] = Some(replica);
    }

    /// Stop replica `i` at once (SIGKILL; dropping it does that).
    fn kill(&mut self, i: usize) {
        self.replicas[i] = None;
    }

    fn state(&mut self, i: usize) -> Value {
        let r = self.replicas[i].as_mut().expect("running");
        r.state(Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Poll until replica `i` holds the decision certificate of the last
    /// slot it decided.
    fn wait_certified(&mut self, i: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let s = self.state(i);
            let last = s["slots"].as_u64().and_then(|n| n.checked_sub(1));
            if last.is_some() && s["certified"].as_u64() == last {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no certificate for the last slot: {s}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Poll until every running correct replica has `count` operations
    /// and they all agree; returns their states.
    fn wait_agreement(&mut self, count: u64) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(90);
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

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Whether the other end closes the connection (within 10 s), whatever it
/// sent first (a replica's peer port sends a challenge).
fn closes(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 512];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

/// One whole frame (`size u16 | type u16 | body`) read from a stream.
fn read_frame(s: &mut TcpStream) -> Vec<u8> {
    let mut head = [0u8; 4];
    s.read_exact(&mut head).unwrap();
    let size = u16::from_be_bytes([head[0], head[1]]) as usize;
    let mut frame = head.to_vec();
    frame.resize(size, 0);
    s.read_exact(&mut frame[4..]).unwrap();
    frame
}

#[test]
fn four_replicas_two_concurrent_proposers_commit_1000_operations_identically() {
    let mut cluster = Cluster::start(vec![None; 4]);
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
    let mut cluster = Cluster::start(vec![None; 4]);
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
    let mut cluster = Cluster::start(vec![None, Some(mode), None, None]);
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
                // The forger's 2b signatures go out on its clock (every
                // 50 ms), so on a loaded machine the run can end before one
                // arrives: give it slots to vote in and sign until one has.
                let deadline = Instant::now() + Duration::from_secs(30);
                let mut more = 0;
                loop {
                    let rejected: u64 = [0, 2, 3]
                        .iter()
                        .map(|&i| cluster.state(i)["forged_rejected"].as_u64().unwrap())
                        .sum();
                    if rejected > 0 && [0, 2, 3].iter().any(|&i| cluster.log(i).contains("forged"))
                    {
                        break;
                    }
                    assert!(Instant::now() < deadline, "forged proofs were not noticed");
                    more += 1;
                    let out = propose(&cluster.api(0), &[], &[format!("P,more{more},1")]);
                    assert!(out.status.success(), "{}", text(&out));
                }
            }
            if mode == "lie" {
                assert!(states[0]["store"].get("byzantine").is_none());
            }
            // Correct replicas log what they detect (rate-limited).
            let detected = match mode {
                "equivocate" => Some("equivocation"),
                "huge-ballot" => Some("rounds above"),
                _ => None,
            };
            if let Some(needle) = detected {
                let deadline = Instant::now() + Duration::from_secs(30);
                while ![0, 2, 3].iter().any(|&i| cluster.log(i).contains(needle)) {
                    assert!(Instant::now() < deadline, "{mode}: nothing logged");
                    std::thread::sleep(Duration::from_millis(100));
                }
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
    let mut cluster = Cluster::start(vec![None]);
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
        s.write_all(&bytes).unwrap();
        assert!(closes(&mut s), "link stayed open");
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

// ---- hardening (issue 8) ---------------------------------------------------

/// A replica that sends 1a messages (and refusals, and status claims) with a
/// ballot near 2^64 - 1: with the seed, every correct replica promised it
/// and the group never committed again.
#[test]
fn correct_replicas_keep_committing_next_to_a_ballot_exhauster() {
    misbehaving_replica("huge-ballot");
}

/// A network attacker records C's HELLO (posing as A at A's address before
/// A is up) and replays it to the real A: with the seed's deterministic
/// HELLO, A took the attacker for C.
#[test]
fn a_replayed_hello_is_refused_and_logged() {
    let mut cluster = Cluster::unstarted("replay", vec![None; 4]);
    let fake_a = TcpListener::bind(("127.0.0.1", cluster.peer_ports[0])).unwrap();
    cluster.launch(2);
    let (mut from_c, _) = fake_a.accept().unwrap();
    // If C waits to be challenged, send a challenge (CHALLENGE, 611) as a
    // real replica would; the seed's HELLO came unasked.
    from_c
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    if from_c.peek(&mut [0u8; 1]).is_err() {
        let mut challenge = vec![0, 36, 2, 99];
        challenge.extend_from_slice(&[7; 32]);
        from_c.write_all(&challenge).unwrap();
    }
    from_c
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let hello = read_frame(&mut from_c);
    assert_eq!(u16::from_be_bytes([hello[2], hello[3]]), 601, "not a HELLO");
    drop(from_c);
    drop(fake_a);
    cluster.launch(0);
    let mut attacker =
        TcpStream::connect(("127.0.0.1", cluster.peer_ports[0])).expect("A's peer port");
    attacker.write_all(&hello).unwrap();
    assert!(closes(&mut attacker), "A took a replayed HELLO");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cluster.log(0).contains("replayed HELLO claiming to be 'C'") {
        assert!(Instant::now() < deadline, "not logged: {}", cluster.log(0));
        std::thread::sleep(Duration::from_millis(50));
    }
    // The real C still gets through, and with B and D the group commits.
    cluster.launch(1);
    cluster.launch(3);
    let out = propose(&cluster.api(2), &[], &["P,after,replay".into()]);
    assert!(text(&out).starts_with("0 committed"), "{}", text(&out));
    cluster.wait_agreement(1);
}

/// B sends every replica catch-up replies nobody asked for, and answers
/// real catch-up requests with a value nobody proposed; D is killed and
/// restarted, so it catches up while B lies to it. No correct replica
/// adopts B's value; they agree and keep committing.
#[test]
fn a_catch_up_liar_cannot_make_a_correct_replica_diverge() {
    let mut cluster = Cluster::start(vec![None, Some("catchup-lie"), None, None]);
    let ops = |tag: &str| -> Vec<String> { (0..30).map(|k| format!("P,{tag}{k},{k}")).collect() };
    let out = propose(
        &cluster.api(0),
        &["--window", "8", "--retry", "5"],
        &ops("a"),
    );
    assert!(out.status.success(), "{}", text(&out));
    cluster.kill(3);
    let out = propose(
        &cluster.api(2),
        &["--window", "8", "--retry", "5"],
        &ops("c"),
    );
    assert!(out.status.success(), "{}", text(&out));
    cluster.launch(3);
    let out = propose(&cluster.api(3), &["--retry", "5"], &["P,d,1".to_string()]);
    assert!(text(&out).starts_with("0 committed"), "{}", text(&out));
    let states = cluster.wait_agreement(61);
    for s in &states {
        assert!(
            s["store"].get("pwned").is_none(),
            "{} adopted a lie",
            s["id"]
        );
    }
    assert!(
        [0, 2, 3]
            .iter()
            .any(|&i| cluster.log(i).contains("unsolicited catch-up value")),
        "the unsolicited replies were not logged"
    );
}

/// The slots a replica missed are known to one correct replica only, next
/// to a catch-up liar (the fuzzer's stuck shape, on real processes): D is
/// down while A, B (the liar) and C commit; then C is down and D comes
/// back. f + 1 = 2 matching catch-up replies can never come (A tells the
/// truth, B lies), so D catches up from A's decision certificate alone, and
/// the next slot, which needs D, commits.
#[test]
fn a_replica_catches_up_from_one_correct_replica_next_to_a_catch_up_liar() {
    let mut cluster = Cluster::start(vec![None, Some("catchup-lie"), None, None]);
    cluster.kill(3);
    let ops: Vec<String> = (0..20).map(|k| format!("P,a{k},{k}")).collect();
    let out = propose(&cluster.api(0), &["--window", "4"], &ops);
    assert!(out.status.success(), "{}", text(&out));
    cluster.wait_agreement(20);
    // The votes are signed after the decision (on the clock): A holds its
    // last slot's certificate once C's signature is in. Only then is C
    // taken down, or that slot would have no proof anywhere.
    cluster.wait_certified(0);
    cluster.kill(2);
    cluster.launch(3);
    // Only A, the liar and D are up: this commits only once D caught up.
    let out = propose(&cluster.api(3), &["--retry", "5"], &["P,d,1".to_string()]);
    assert!(text(&out).starts_with("0 committed"), "{}", text(&out));
    let states = cluster.wait_agreement(21);
    assert_eq!(states.len(), 2, "A and D");
    for s in &states {
        assert!(
            s["store"].get("pwned").is_none(),
            "{} adopted a lie",
            s["id"]
        );
    }
    // Whether D ever sees the liar's reply depends on which answer comes
    // first (A's certificate settles the slot and later replies are not
    // looked at), so no log line is asserted here: the lie not adopted and
    // the commit that needs D are the proof.
}

fn paxos_cmd(args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("paxos")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn assert_one_line_exit_2(out: &Output, needle: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.contains(needle), "{err}");
}

/// A replica checks who it is before it starts: its ID in --peers, its
/// private key the one the others hold, a public key for every replica.
#[test]
fn a_replica_refuses_to_start_as_someone_it_is_not() {
    let k = keys().to_str().unwrap().to_string();
    let peers = "A=127.0.0.1:1,B=127.0.0.1:2,C=127.0.0.1:3,D=127.0.0.1:4";
    let common = |id: &'static str, key: String, dir: String| -> Vec<String> {
        [
            "--id",
            id,
            "--listen",
            "127.0.0.1:0",
            "--api",
            "127.0.0.1:0",
            "--peers",
            peers,
            "--key",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([key, "--peer-keys".into(), dir])
        .collect()
    };
    let run = |args: Vec<String>| paxos_cmd(&args.iter().map(String::as_str).collect::<Vec<_>>());
    // --id E with a group of A-D (the seed started a 5-replica group).
    let out = run(common("E", format!("{k}/A.pem"), k.clone()));
    assert_one_line_exit_2(&out, "replica 'E' is not in --peers (A,B,C,D)");
    // --id A --key B.pem.
    let out = run(common("A", format!("{k}/B.pem"), k.clone()));
    assert_one_line_exit_2(&out, "is not replica A's key");
    // A key directory without C's public key.
    let partial = temp_dir("partial-keys");
    for name in ["A", "B", "D"] {
        std::fs::copy(
            keys().join(format!("{name}.pub.pem")),
            partial.join(format!("{name}.pub.pem")),
        )
        .unwrap();
    }
    let out = run(common(
        "A",
        format!("{k}/A.pem"),
        partial.to_str().unwrap().into(),
    ));
    assert_one_line_exit_2(&out, "no usable public key for replica C");
    let _ = std::fs::remove_dir_all(&partial);
}

#[test]
fn keygen_refuses_to_overwrite_a_key_pair_without_force() {
    let dir = temp_dir("keygen");
    let keygen = |extra: &[&str]| {
        Command::new(BIN)
            .args(["keygen", "--name", "X", "--bits", "1024", "--out"])
            .arg(&dir)
            .args(extra)
            .output()
            .unwrap()
    };
    assert!(keygen(&[]).status.success());
    let before = std::fs::read(dir.join("X.pem")).unwrap();
    let out = keygen(&[]);
    assert_one_line_exit_2(&out, "already exists");
    assert!(stderr(&out).contains("--force"));
    assert_eq!(std::fs::read(dir.join("X.pem")).unwrap(), before);
    assert!(keygen(&["--force"]).status.success());
    assert_ne!(std::fs::read(dir.join("X.pem")).unwrap(), before);
    let _ = std::fs::remove_dir_all(&dir);
}

/// One flipped byte in the middle of the WAL: the seed cut everything after
/// it off and went on voting; now the replica refuses to start.
#[test]
fn a_replica_with_a_corrupt_wal_refuses_to_start_and_says_where() {
    let mut cluster = Cluster::start(vec![None]);
    let ops: Vec<String> = (0..20).map(|k| format!("P,w{k},{k}")).collect();
    assert!(propose(&cluster.api(0), &["--window", "4"], &ops)
        .status
        .success());
    cluster.kill(0);
    let wal = cluster.dir.join("data-A").join("bpcon.wal");
    let mut bytes = std::fs::read(&wal).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    std::fs::write(&wal, &bytes).unwrap();
    let out = paxos_cmd(&[
        "--id",
        "A",
        "--listen",
        "127.0.0.1:0",
        "--api",
        "127.0.0.1:0",
        "--key",
        keys().join("A.pem").to_str().unwrap(),
        "--data",
        cluster.dir.join("data-A").to_str().unwrap(),
    ]);
    assert_one_line_exit_2(&out, "bpcon.wal is corrupt");
    assert!(stderr(&out).contains("byte offset"), "{}", stderr(&out));
    assert_eq!(std::fs::read(&wal).unwrap(), bytes, "the file was changed");
}

/// `propose` to a replica whose group has no quorum: it says it timed out
/// and what may be missing, not "Resource temporarily unavailable".
#[test]
fn propose_on_a_time_out_says_a_quorum_may_be_missing() {
    let mut cluster = Cluster::unstarted("no-quorum", vec![None; 4]);
    cluster.launch(0);
    let out = propose(&cluster.api(0), &["--timeout", "2"], &["P,a,1".into()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("timed out"), "{err}");
    assert!(err.contains("needs 3 of 4 replicas"), "{err}");
    assert!(!err.contains("os error"), "{err}");
}

/// A replica says when it has joined its group, and warns (default level,
/// with the address and the reason) while it cannot reach a peer.
#[test]
fn a_replica_says_when_it_joins_and_warns_while_peers_are_unreachable() {
    let mut cluster = Cluster::unstarted("join", vec![None; 4]);
    cluster.launch(0);
    let unreachable = format!(
        "cannot reach replica B at 127.0.0.1:{}: ",
        cluster.peer_ports[1]
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cluster.log(0).contains(&unreachable) {
        assert!(Instant::now() < deadline, "no warning: {}", cluster.log(0));
        std::thread::sleep(Duration::from_millis(50));
    }
    cluster.launch(1);
    cluster.launch(2);
    let line = cluster.replicas[0]
        .as_mut()
        .unwrap()
        .wait_line(Duration::from_secs(30), "a joined line", |l| {
            l.starts_with("replica A: joined the group: links up to")
        })
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(line.contains("a quorum of 3 of 4"), "{line}");
    // Rate-limited: a few lines, not one per attempt (every 300 ms).
    let warnings = cluster.log(0).matches("cannot reach replica B").count();
    assert!(warnings <= 3, "{warnings} warnings: {}", cluster.log(0));
}
