//! One BPCon replica as a state machine without I/O.
//!
//! The log is a sequence of slots; each slot's value (a batch of client
//! requests) is decided by BPCon ballots: 1a, signed 1b, 1c carrying the
//! signed 1bs as proof, 2av (every acceptor relays the 1c value it checked;
//! a Byzantine leader cannot get two values voted in one ballot), and 2b
//! once a quorum relayed the same value. A quorum of 2b decides the slot.
//! A replica works on one slot at a time: the first one it has not decided.
//!
//! The replica that receives a client request leads a ballot for it. Inputs
//! are calls (`on_peer`, `submit`, `on_tick`); outputs pile up in
//! [`Output`]: records to make durable first, then messages and replies.

use super::crypto::{PrivateKey, PublicKey};
use super::group::Group;
use super::messages::{two_b_bytes, Certificate, OneB, PeerMsg, SignedOneB, KEPT_REPORTS};
use super::op::{hex, Batch, Digest, Op, Request, RequestId, MAX_BATCH_BYTES, MAX_BATCH_OPS};
use super::safety::{self, Choice};
use super::store::Store;
use super::wal::Record;
use crate::logging::RepeatedWarning;
use log::{debug, info, warn};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

/// The logical clock: `on_tick` is called every TICK_MS.
pub const TICK_MS: u64 = 10;
/// A client request not committed after this many ticks fails (code 1).
pub const REQUEST_TIMEOUT: u64 = 1000;
/// A ballot that has not decided its slot after this many ticks is retried higher.
const BALLOT_TIMEOUT: u64 = 50;
/// Each ballot of a slot that times out doubles the next one's time-out
/// (and the back-off after stepping down), up to this many times the
/// first: over links slower than the first time-out allows, a fixed one
/// lets two proposers pre-empt each other for ever (found by the fuzzer).
const MAX_BACKOFF: u64 = 64;
/// How long a leader that saw a higher ballot waits before competing again.
const YIELD_MIN: u64 = 3;
const YIELD_MAX: u64 = 25;
/// Status heartbeats let a lagging replica notice it is behind.
const STATUS_EVERY: u64 = 50;
/// Catch-up requests are sent at most this often.
const CATCHUP_EVERY: u64 = 5;
/// Slots fetched per catch-up request, and how far ahead replies are kept.
pub const CATCHUP_BATCH: u64 = 16;
const CATCHUP_WINDOW: u64 = 64;
/// Decision certificates kept for this many of the latest decided slots
/// (in memory; each is also in its slot's WAL record). Only the last slots
/// can be decided with fewer than f + 1 correct replicas knowing it: a
/// quorum deciding slot s + 1 holds f + 1 correct replicas that decided s.
const KEPT_CERTIFICATES: u64 = CATCHUP_WINDOW;
/// Queued client requests a replica accepts before answering "overloaded".
pub const MAX_PENDING: usize = 20_000;
/// Ballots of the current slot whose 2av/2b tallies are kept.
const TRACKED_BALLOTS: usize = 16;
/// A correct acceptor takes part in a ballot at most this many rounds above
/// the highest ballot that f + 1 other replicas (so at least one correct
/// one) are known to have reached in the slot. Byzantine replicas can then
/// never push the ballot space out of reach: correct acceptors move up at
/// most this step at a time, each step needing f + 1 others to follow
/// (2^64 / (1024 n) steps, each costing them a signature and an fsync, to
/// exhaust it), and honest leaders, which pick a ballot one round below
/// that reach at most, stay in reach once the claims have spread (STATUS
/// carries them every 0.5 s).
pub const MAX_ROUND_STEP: u64 = 1024;
/// A catch-up request is answered for this many ticks; replies after that
/// (or for slots never asked) are unsolicited and dropped.
const CATCHUP_ANSWER_TICKS: u64 = 200;

/// Result codes sent to clients (as in the seed).
pub const CODE_COMMITTED: u8 = 0;
pub const CODE_FAILED: u8 = 1;
pub const CODE_BEHIND: u8 = 2;

/// Where a message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dest {
    Peer(usize),
    /// Every other replica.
    All,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The driver's handle for the client connection.
    pub client: u64,
    pub id: RequestId,
    pub code: u8,
    pub message: String,
}

/// What the driver must do, in this order: persist, then send and reply.
#[derive(Debug, Default)]
pub struct Output {
    pub persist: Vec<Record>,
    pub sends: Vec<(Dest, PeerMsg)>,
    pub replies: Vec<Reply>,
}

/// Counters for the state line and the benchmark.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub signs: u64,
    pub verifies: u64,
    /// Messages refused because a signature did not verify.
    pub forged_rejected: u64,
    /// Messages refused for any other reason (bad proofs, wrong leader...).
    pub rejected: u64,
    pub ballots_started: u64,
    /// Equivocations, lies and other misbehaviour detected (each logged,
    /// rate-limited per peer and kind).
    pub misbehaviour: u64,
    /// Time spent signing and verifying (measured for the benchmark only;
    /// no decision depends on it).
    pub sign_us: u64,
    pub verify_us: u64,
}

pub struct Config {
    pub group: Group,
    pub me: usize,
    pub key: PrivateKey,
    /// Everyone's public key, by group index (including this replica's).
    pub keys: Vec<PublicKey>,
    pub seed: u64,
}

/// Acceptor state for the current slot (durable).
#[derive(Debug, Default, Clone)]
struct Acceptor {
    max_bal: Option<u64>,
    voted: Option<(u64, Digest)>,
    /// (ballot, digest, value) of the 2av messages sent, highest ballot per value.
    relayed: Vec<(u64, Digest, Batch)>,
}

/// What this replica heard about the current slot from others.
#[derive(Debug)]
struct Heard {
    /// The highest ballot each replica is known to have reached in this
    /// slot (what it led, promised, relayed or voted, or said it promised).
    /// One replica's claim may be a lie; the (f + 1)-th highest is not.
    ballots: Vec<Option<u64>>,
    /// Another replica's ballot messages for this slot arrived: this
    /// replica is taking part, not cut off.
    from_others: bool,
    two_av: BTreeMap<u64, Vec<Option<Digest>>>,
    two_b: BTreeMap<u64, Vec<Option<Digest>>>,
    /// The 2b signatures behind `two_b` (verified), for the certificate.
    two_b_signatures: BTreeMap<u64, Vec<Option<Vec<u8>>>>,
    values: HashMap<Digest, Batch>,
}

impl Heard {
    fn new(n: usize) -> Heard {
        Heard {
            ballots: vec![None; n],
            from_others: false,
            two_av: BTreeMap::new(),
            two_b: BTreeMap::new(),
            two_b_signatures: BTreeMap::new(),
            values: HashMap::new(),
        }
    }
}

#[derive(Debug)]
struct Leading {
    slot: u64,
    ballot: u64,
    own: Batch,
    one_bs: Vec<Option<SignedOneB>>,
    values: HashMap<Digest, Batch>,
    proposed: Option<Digest>,
    started: u64,
    /// Replicas that refused this ballot for a higher one.
    refused: Vec<bool>,
    /// A refusal said the slot was decided elsewhere: this replica was behind.
    behind: bool,
}

#[derive(Debug)]
struct Pending {
    request: Request,
    client: u64,
    deadline: u64,
}

#[derive(Debug, Default)]
struct Catchup {
    last_request: Option<u64>,
    /// The slots the outstanding request asked for, `[from, to)`; replies
    /// for anything else are unsolicited and dropped.
    asked: Option<(u64, u64)>,
    /// How many slots each replica says it has decided. One replica's claim
    /// may be a lie; f + 1 claims include a correct replica's.
    claims: Vec<u64>,
    /// A quorum voted in this slot but the value never reached us.
    decided_unseen: bool,
    /// slot -> per-replica digest of the value it says was committed.
    replies: BTreeMap<u64, Vec<Option<Digest>>>,
    /// slot -> a value some reply proved decided with a valid certificate.
    proven: BTreeMap<u64, (Digest, Certificate)>,
    values: HashMap<Digest, Batch>,
}

pub struct Replica {
    group: Group,
    me: usize,
    key: PrivateKey,
    keys: Vec<PublicKey>,
    rng: StdRng,
    tick: u64,
    log: Vec<Batch>,
    /// Decision certificates of the latest decided slots (see KEPT_CERTIFICATES).
    certificates: BTreeMap<u64, Certificate>,
    store: Store,
    acc: Acceptor,
    heard: Heard,
    leading: Option<Leading>,
    yield_until: Option<u64>,
    /// Multiplier of the ballot time-out and the back-off in this slot.
    backoff: u64,
    pending: VecDeque<Pending>,
    catchup: Catchup,
    inbox: VecDeque<PeerMsg>,
    out: Output,
    pub stats: Stats,
    /// Rate limits for warnings a peer can trigger, per (peer, kind).
    warnings: HashMap<(usize, &'static str), RepeatedWarning>,
    /// The instant of tick 0: warnings are rate-limited in logical time.
    epoch: Instant,
}

impl Replica {
    /// A replica restored from its durable records (none for a new one).
    pub fn new(config: Config, records: Vec<Record>) -> Replica {
        let n = config.group.n();
        let mut replica = Replica {
            rng: StdRng::seed_from_u64(config.seed),
            group: config.group,
            me: config.me,
            key: config.key,
            keys: config.keys,
            tick: 0,
            log: Vec::new(),
            certificates: BTreeMap::new(),
            store: Store::default(),
            acc: Acceptor::default(),
            heard: Heard::new(n),
            leading: None,
            yield_until: None,
            backoff: 1,
            pending: VecDeque::new(),
            catchup: Catchup {
                claims: vec![0; n],
                ..Catchup::default()
            },
            inbox: VecDeque::new(),
            out: Output::default(),
            stats: Stats::default(),
            warnings: HashMap::new(),
            epoch: Instant::now(),
        };
        debug_assert_eq!(replica.keys.len(), n);
        for record in records {
            replica.restore(record);
        }
        replica.catchup.claims[replica.me] = replica.slot();
        if !replica.log.is_empty() || replica.acc.max_bal.is_some() {
            info!(
                "restored {} committed slots ({} operations); slot {} promised ballot {:?}, voted {:?}",
                replica.log.len(),
                replica.store.log.len(),
                replica.log.len(),
                replica.acc.max_bal,
                replica.acc.voted.map(|(b, d)| (b, hex(&d[..4])))
            );
        }
        replica
    }

    fn restore(&mut self, record: Record) {
        let current = self.slot();
        match record {
            Record::Committed { slot, value, proof } if slot == current => {
                self.store.apply(&value);
                self.log.push(value);
                self.acc = Acceptor::default();
                self.keep_certificate(slot, proof);
            }
            Record::Promise { slot, ballot } if slot == current => {
                self.acc.max_bal = self.acc.max_bal.max(Some(ballot));
            }
            Record::Relayed {
                slot,
                ballot,
                value,
            } if slot == current => {
                self.acc.max_bal = self.acc.max_bal.max(Some(ballot));
                self.remember_relayed(ballot, value);
            }
            Record::Voted {
                slot,
                ballot,
                digest,
            } if slot == current => {
                self.acc.max_bal = self.acc.max_bal.max(Some(ballot));
                self.acc.voted = Some((ballot, digest));
            }
            _ => {} // about a slot decided since
        }
    }

    // ---- accessors -------------------------------------------------------

    /// The slot being decided: the first one not committed here.
    pub fn slot(&self) -> u64 {
        self.log.len() as u64
    }

    pub fn group(&self) -> &Group {
        &self.group
    }

    pub fn name(&self) -> &str {
        &self.group.names[self.me]
    }

    /// The committed batches, by slot.
    pub fn committed(&self) -> &[Batch] {
        &self.log
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Logical time: ticks since start.
    pub fn tick(&self) -> u64 {
        self.tick
    }

    pub fn max_ballot(&self) -> Option<u64> {
        self.acc.max_bal
    }

    pub fn take_output(&mut self) -> Output {
        std::mem::take(&mut self.out)
    }

    /// The `state` line: everything a checker compares between replicas.
    pub fn state_json(&self) -> serde_json::Value {
        let store: serde_json::Map<String, serde_json::Value> = self
            .store
            .kv
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        let log: Vec<String> = self
            .store
            .log
            .iter()
            .map(|(_, op)| op.to_string())
            .collect();
        serde_json::json!({
            "id": self.name(),
            "n": self.group.n(),
            "f": self.group.f,
            "quorum": self.group.quorum,
            "slots": self.slot(),
            "committed": self.store.log.len(),
            "log_digest": hex(&self.store.log_digest()),
            "store": store,
            "log": log,
            "pending": self.pending.len(),
            "max_ballot": self.acc.max_bal,
            "signs": self.stats.signs,
            "verifies": self.stats.verifies,
            "sign_us": self.stats.sign_us,
            "verify_us": self.stats.verify_us,
            "ballots": self.stats.ballots_started,
            "forged_rejected": self.stats.forged_rejected,
            "rejected": self.stats.rejected,
            "misbehaviour_detected": self.stats.misbehaviour,
        })
    }

    // ---- ballots in reach --------------------------------------------------

    fn note_ballot(&mut self, from: usize, ballot: u64) {
        let b = &mut self.heard.ballots[from];
        *b = (*b).max(Some(ballot));
    }

    /// The (f + 1)-th highest ballot the *other* replicas reached in this
    /// slot: at least one correct replica reached it, so f liars cannot
    /// raise it. This replica's own promise does not count, so a liar
    /// cannot pump one correct acceptor up step by step on its own (each
    /// promise it got becoming the base of the next): a correct acceptor
    /// stays within MAX_ROUND_STEP rounds of what f + 1 others reached.
    pub fn credible_ballot(&self) -> Option<u64> {
        let mut claims: Vec<Option<u64>> = (0..self.group.n())
            .filter(|&i| i != self.me)
            .map(|i| self.heard.ballots[i])
            .collect();
        claims.sort_unstable_by(|a, b| b.cmp(a));
        claims.get(self.group.f).copied().flatten()
    }

    fn reach_round(&self) -> u64 {
        self.group
            .round(self.credible_ballot().unwrap_or(0))
            .saturating_add(MAX_ROUND_STEP)
    }

    /// Whether a correct acceptor may take part in `ballot` now.
    fn in_reach(&self, ballot: u64) -> bool {
        if crate::sim::bugs::seeded("bpcon.ballot-overflow") {
            return true; // the seed's bug: no bound on accepted rounds
        }
        self.group.n() == 1 || self.group.round(ballot) <= self.reach_round()
    }

    /// What a new ballot of ours must be above: every ballot reached here
    /// (so an acceptor that ran ahead alone, after a partition or pushed by
    /// a liar, is caught up with), but no further than one round below
    /// what acceptors take part in (so a claim near 2^64 - 1 does not drag
    /// leaders out of reach).
    fn leader_above(&self) -> Option<u64> {
        let highest = self
            .heard
            .ballots
            .iter()
            .copied()
            .chain([self.acc.max_bal])
            .max()
            .flatten()?;
        if self.group.n() == 1 || crate::sim::bugs::seeded("bpcon.ballot-overflow") {
            return Some(highest);
        }
        let n = self.group.n() as u64;
        // The last ballot of the round below the reach.
        let cap = self
            .reach_round()
            .checked_mul(n)
            .and_then(|b| b.checked_sub(1))
            .unwrap_or(u64::MAX);
        Some(highest.min(cap))
    }

    // ---- misbehaviour detected ---------------------------------------------

    fn now(&self) -> Instant {
        self.epoch + Duration::from_millis(self.tick.saturating_mul(TICK_MS))
    }

    /// Log what `peer` did wrong: the first of each kind at once, then at
    /// most one line a second per peer and kind, with the count held back.
    fn misbehaved(&mut self, peer: usize, kind: &'static str, what: String) {
        self.stats.misbehaviour += 1;
        let now = self.now();
        let limiter = self
            .warnings
            .entry((peer, kind))
            .or_insert_with(RepeatedWarning::per_second);
        crate::warn_repeated!(limiter, now, "{what}");
    }

    /// Warnings held back by the rate limits right now.
    pub fn warnings_held(&self) -> u64 {
        self.warnings.values().map(RepeatedWarning::held).sum()
    }

    /// The tail of a flood: the warnings held back, once their window ends.
    fn flush_warnings(&mut self) {
        let now = self.now();
        for ((peer, kind), limiter) in self.warnings.iter_mut() {
            if let Some(held) = limiter.flush(now) {
                warn!(
                    "{} more times since the last report: {kind} from {}",
                    held, self.group.names[*peer]
                );
            }
        }
    }

    // ---- signatures --------------------------------------------------------

    fn sign(&mut self, bytes: &[u8]) -> Vec<u8> {
        let started = std::time::Instant::now();
        let signature = self.key.sign(bytes);
        self.stats.signs += 1;
        self.stats.sign_us += started.elapsed().as_micros() as u64;
        signature
    }

    fn verify(&mut self, signer: usize, bytes: &[u8], signature: &[u8]) -> bool {
        let started = std::time::Instant::now();
        let ok = self.keys[signer].verify(bytes, signature);
        self.stats.verifies += 1;
        self.stats.verify_us += started.elapsed().as_micros() as u64;
        ok
    }

    // ---- sending ---------------------------------------------------------

    fn send(&mut self, to: usize, msg: PeerMsg) {
        if to == self.me {
            self.inbox.push_back(msg);
        } else {
            self.out.sends.push((Dest::Peer(to), msg));
        }
    }

    /// To every replica, this one included.
    fn broadcast(&mut self, msg: PeerMsg) {
        if self.group.n() > 1 {
            self.out.sends.push((Dest::All, msg.clone()));
        }
        self.inbox.push_back(msg);
    }

    fn reply(&mut self, client: u64, id: RequestId, code: u8, message: String) {
        self.out.replies.push(Reply {
            client,
            id,
            code,
            message,
        });
    }

    /// Handle what this replica sent itself.
    fn drain_inbox(&mut self) {
        while let Some(msg) = self.inbox.pop_front() {
            self.handle(self.me, msg);
        }
    }

    // ---- inputs ----------------------------------------------------------

    /// A client request. Malformed ones are refused at once (code 1).
    pub fn submit(&mut self, client: u64, id: RequestId, text: &str) {
        let op = match Op::parse(text) {
            Ok(op) => op,
            Err(why) => {
                info!("refused request {}:{}: {why}", id.client, id.seq);
                self.reply(client, id, CODE_FAILED, format!("bad request: {why}"));
                return;
            }
        };
        if self.store.contains(&id) {
            self.reply(client, id, CODE_COMMITTED, "already committed".into());
            return;
        }
        if let Some(p) = self.pending.iter_mut().find(|p| p.request.id == id) {
            p.client = client; // a retry: answer the newest connection
            return;
        }
        if self.pending.len() >= MAX_PENDING {
            self.reply(
                client,
                id,
                CODE_FAILED,
                "replica overloaded: too many queued requests".into(),
            );
            return;
        }
        self.pending.push_back(Pending {
            request: Request { id, op },
            client,
            deadline: self.tick + REQUEST_TIMEOUT,
        });
        self.maybe_lead();
        self.drain_inbox();
    }

    /// A message from replica `from` (authenticated by its link).
    pub fn on_peer(&mut self, from: usize, msg: PeerMsg) {
        if from >= self.group.n() || from == self.me {
            return;
        }
        self.handle(from, msg);
        self.drain_inbox();
    }

    /// A link to `peer` came up: tell it how far we are.
    pub fn on_peer_up(&mut self, peer: usize) {
        let status = self.status();
        self.send(peer, status);
    }

    fn status(&self) -> PeerMsg {
        PeerMsg::Status {
            committed: self.slot(),
            max_ballot: self.acc.max_bal,
        }
    }

    pub fn on_tick(&mut self) {
        self.tick += 1;
        if self.tick.is_multiple_of(STATUS_EVERY) && self.group.n() > 1 {
            let status = self.status();
            self.out.sends.push((Dest::All, status));
        }
        if self.tick.is_multiple_of(100) {
            self.flush_warnings();
        }
        if self
            .catchup
            .last_request
            .is_some_and(|t| self.tick >= t.saturating_add(CATCHUP_ANSWER_TICKS))
        {
            self.catchup.asked = None;
        }
        self.expire_requests();
        if let Some(l) = &self.leading {
            if self.tick >= l.started + BALLOT_TIMEOUT * self.backoff {
                self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                debug!(
                    "ballot {} of slot {} timed out; retrying higher",
                    l.ballot, l.slot
                );
                let slot = l.slot;
                self.start_ballot(slot);
            }
        }
        if self.yield_until.is_some_and(|t| self.tick >= t) {
            self.yield_until = None;
        }
        if self.behind() {
            self.request_catchup();
        }
        self.maybe_lead();
        self.drain_inbox();
    }

    fn expire_requests(&mut self) {
        let now = self.tick;
        let in_flight: Vec<RequestId> = match &self.leading {
            Some(l) if l.proposed.is_some() => l.own.requests.iter().map(|r| r.id).collect(),
            _ => Vec::new(),
        };
        let mut expired = Vec::new();
        self.pending.retain(|p| {
            if p.deadline <= now {
                expired.push((p.client, p.request.id));
                false
            } else {
                true
            }
        });
        for (client, id) in expired {
            let secs = REQUEST_TIMEOUT * TICK_MS / 1000;
            let message = if in_flight.contains(&id) {
                format!("time-out: not committed within {secs} s (its ballot may still decide it)")
            } else {
                format!(
                    "time-out: not committed within {secs} s; a quorum of {} of the {} replicas may be missing or unreachable",
                    self.group.quorum,
                    self.group.n()
                )
            };
            info!("request {}:{} failed: {message}", id.client, id.seq);
            self.reply(client, id, CODE_FAILED, message);
        }
    }

    // ---- leader ----------------------------------------------------------

    fn maybe_lead(&mut self) {
        if self.leading.is_some()
            || self.pending.is_empty()
            || self.yield_until.is_some()
            || self.behind()
        {
            return;
        }
        let slot = self.slot();
        self.start_ballot(slot);
    }

    fn start_ballot(&mut self, slot: u64) {
        let above = self.leader_above();
        let Some(ballot) = self.group.next_ballot(self.me, slot, above) else {
            warn!(
                "no ballot of ours is left above ballot {} in slot {slot}; leaving it to others",
                above.unwrap_or(0)
            );
            self.leading = None;
            self.yield_until = Some(self.tick + YIELD_MAX);
            return;
        };
        let behind = self.leading.as_ref().is_some_and(|l| l.behind);
        let mut own = Batch::default();
        let mut bytes = 2;
        for p in &self.pending {
            let cost = Batch::request_cost(&p.request);
            if own.requests.len() >= MAX_BATCH_OPS || bytes + cost > MAX_BATCH_BYTES {
                break;
            }
            bytes += cost;
            own.requests.push(p.request.clone());
        }
        debug!(
            "leading slot {slot} ballot {ballot} with {} operations",
            own.requests.len()
        );
        self.stats.ballots_started += 1;
        self.leading = Some(Leading {
            slot,
            ballot,
            own,
            one_bs: vec![None; self.group.n()],
            values: HashMap::new(),
            proposed: None,
            started: self.tick,
            refused: vec![false; self.group.n()],
            behind,
        });
        self.broadcast(PeerMsg::OneA { slot, ballot });
    }

    /// Stop leading the current ballot and let a higher one finish. Being
    /// pre-empted doubles the back-off (and the next ballot's time-out) as
    /// a time-out does: over slow links, proposers that came back after a
    /// fixed wait pre-empted each other for ever (found by the fuzzer).
    fn step_down(&mut self, why: &str) {
        if let Some(l) = self.leading.take() {
            debug!("leaving ballot {} of slot {}: {why}", l.ballot, l.slot);
            self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
            let wait = self.rng.gen_range(YIELD_MIN..=YIELD_MAX * self.backoff);
            self.yield_until = Some(self.tick + wait);
        }
    }

    fn on_one_b(&mut self, from: usize, signed: SignedOneB, values: Vec<Batch>) {
        let body = &signed.body;
        let Some(l) = &self.leading else { return };
        if body.slot != l.slot || body.ballot != l.ballot || l.proposed.is_some() {
            return;
        }
        if body.acceptor != from {
            self.stats.rejected += 1;
            let what = format!(
                "1b on {}'s link claims to be from {}: rejected",
                self.group.names[from], self.group.names[body.acceptor]
            );
            self.misbehaved(from, "a 1b in another replica's name", what);
            return;
        }
        // Our own 1b needs no check.
        if from != self.me && !self.verify(from, &signed.bytes, &signed.signature) {
            self.stats.forged_rejected += 1;
            let what = format!(
                "forged 1b from {} for slot {} ballot {}: signature does not verify; rejected",
                self.group.names[from], body.slot, body.ballot
            );
            self.misbehaved(from, "a forged 1b", what);
            return;
        }
        self.note_ballot(from, body.ballot);
        let Some(l) = &mut self.leading else { return };
        for v in values {
            let d = v.digest();
            if body.reported.iter().any(|(_, r)| *r == d) {
                l.values.insert(d, v);
            }
        }
        l.one_bs[from] = Some(signed);
        let proofs: Vec<SignedOneB> = l.one_bs.iter().flatten().cloned().collect();
        if proofs.len() < self.group.quorum {
            return;
        }
        let reports: Vec<&OneB> = proofs.iter().map(|p| &p.body).collect();
        let value = match safety::choose(&self.group, &reports) {
            Choice::Free => l.own.clone(),
            Choice::Bound(d) => match l.values.get(&d) {
                Some(v) => {
                    if *v != l.own {
                        info!(
                            "slot {}: a value voted in an earlier ballot is safe; proposing it ({} ops) instead of ours",
                            l.slot,
                            v.requests.len()
                        );
                    }
                    v.clone()
                }
                None => return,
            },
            Choice::Unknown => return, // wait for more reports
        };
        let (slot, ballot) = (l.slot, l.ballot);
        l.proposed = Some(value.digest());
        self.broadcast(PeerMsg::OneC {
            slot,
            ballot,
            value,
            proofs,
        });
    }

    fn on_refuse(&mut self, from: usize, slot: u64, max_ballot: Option<u64>, committed: u64) {
        if committed > self.slot() {
            debug!(
                "{} says {committed} slots are decided; we have {}",
                self.group.names[from],
                self.slot()
            );
            self.claim(from, committed);
            // Behind by more than the slot being led, and no other
            // replica's ballot for it ever reached us: we were cut off and
            // decisions were missed. (Losing slots to a faster leader while
            // taking part is ordinary contention, not being behind: those
            // requests stay queued and go into the next slot.)
            let cut_off = !self.heard.from_others;
            if let Some(l) = &mut self.leading {
                if cut_off && committed > l.slot.saturating_add(1) {
                    l.behind = true;
                }
            }
            self.request_catchup();
            return;
        }
        if slot != self.slot() {
            return;
        }
        if let Some(b) = max_ballot {
            self.note_ballot(from, b);
        }
        let quorum = self.group.quorum;
        let n = self.group.n();
        let Some(l) = &mut self.leading else { return };
        if slot == l.slot && max_ballot.is_some_and(|b| b > l.ballot) {
            // Step down once a quorum of 1bs is out of reach, not on one
            // refusal: a single Byzantine replica could refuse every ballot.
            l.refused[from] = true;
            let refused = l.refused.iter().filter(|r| **r).count();
            if refused > n - quorum {
                self.step_down("acceptors promised a higher ballot");
            }
        }
    }

    // ---- acceptor --------------------------------------------------------

    /// Common checks for a message about `slot`: false if it is not about
    /// the current one (answering or catching up as needed).
    fn current_slot(&mut self, from: usize, slot: u64, refuse_old: bool) -> bool {
        let current = self.slot();
        if slot < current {
            if refuse_old && from != self.me {
                self.send(
                    from,
                    PeerMsg::Refuse {
                        slot,
                        max_ballot: None,
                        committed: current,
                    },
                );
            }
            return false;
        }
        if slot > current {
            // A correct replica only moves on once a slot is decided.
            self.claim(from, slot);
            self.request_catchup();
            return false;
        }
        if from != self.me {
            self.heard.from_others = true;
        }
        true
    }

    /// A ballot more than MAX_ROUND_STEP rounds above what f + 1 replicas
    /// reached: refused (and logged), so no one can exhaust the space.
    fn out_of_reach(&mut self, from: usize, what: &str, slot: u64, ballot: u64) -> bool {
        self.note_ballot(from, ballot);
        if self.in_reach(ballot) {
            return false;
        }
        self.stats.rejected += 1;
        let base = match self.credible_ballot() {
            Some(b) => format!("ballot {b}"),
            None => "ballot 0".into(),
        };
        let msg = format!(
            "{what} for slot {slot} ballot {ballot} from {} is more than {MAX_ROUND_STEP} rounds above {base}, the highest f + 1 replicas reached: refused",
            self.group.names[from]
        );
        self.misbehaved(from, "a ballot out of reach", msg);
        true
    }

    fn on_one_a(&mut self, from: usize, slot: u64, ballot: u64) {
        if !self.current_slot(from, slot, true) {
            return;
        }
        if self.group.leader(slot, ballot) != from {
            self.stats.rejected += 1;
            let what = format!(
                "1a for slot {slot} ballot {ballot} from {}, who does not lead it: rejected",
                self.group.names[from]
            );
            self.misbehaved(from, "a 1a for another leader's ballot", what);
            return;
        }
        if self.acc.max_bal.is_some_and(|m| m >= ballot)
            || (from != self.me && self.out_of_reach(from, "1a", slot, ballot))
        {
            self.send(
                from,
                PeerMsg::Refuse {
                    slot,
                    max_ballot: self.acc.max_bal,
                    committed: self.slot(),
                },
            );
            return;
        }
        if from != self.me && self.leading.as_ref().is_some_and(|l| l.ballot < ballot) {
            self.step_down("another leader started a higher ballot");
        }
        self.acc.max_bal = Some(ballot);
        self.out.persist.push(Record::Promise { slot, ballot });
        let (body, values) = self.my_one_b(slot, ballot);
        let bytes = body.signed_bytes();
        let signature = self.sign(&bytes);
        self.send(
            from,
            PeerMsg::OneB {
                signed: SignedOneB {
                    body,
                    bytes,
                    signature,
                },
                values,
            },
        );
    }

    fn my_one_b(&mut self, slot: u64, ballot: u64) -> (OneB, Vec<Batch>) {
        let honest = OneB {
            acceptor: self.me,
            slot,
            ballot,
            voted: self.acc.voted,
            reported: self.acc.relayed.iter().map(|(b, d, _)| (*b, *d)).collect(),
        };
        let values = self.acc.relayed.iter().map(|(_, _, v)| v.clone()).collect();
        (honest, values)
    }

    fn on_one_c(
        &mut self,
        from: usize,
        slot: u64,
        ballot: u64,
        value: Batch,
        proofs: Vec<SignedOneB>,
    ) {
        if !self.current_slot(from, slot, true) {
            return;
        }
        let who = self.group.names[from].clone();
        if self.group.leader(slot, ballot) != from {
            self.stats.rejected += 1;
            let what = format!(
                "1c for slot {slot} ballot {ballot} from {who}, who does not lead it: rejected"
            );
            self.misbehaved(from, "a 1c for another leader's ballot", what);
            return;
        }
        if from != self.me && self.out_of_reach(from, "1c", slot, ballot) {
            return;
        }
        if self.acc.max_bal.is_some_and(|m| m > ballot)
            || self.acc.relayed.iter().any(|(b, _, _)| *b >= ballot)
        {
            return; // promised higher, or already relayed a value in this ballot
        }
        let mut seen = vec![false; self.group.n()];
        for p in &proofs {
            let a = p.body.acceptor;
            if p.body.slot != slot || p.body.ballot != ballot || seen[a] {
                self.stats.rejected += 1;
                let what = format!("1c from {who} for slot {slot} ballot {ballot} rejected: a proof is for another ballot or repeated");
                self.misbehaved(from, "a 1c with bad proofs", what);
                return;
            }
            seen[a] = true;
            if !self.verify(a, &p.bytes, &p.signature) {
                self.stats.forged_rejected += 1;
                let what = format!(
                    "1c from {who} for slot {slot} ballot {ballot} rejected: forged 1b signature for {}",
                    self.group.names[a]
                );
                self.misbehaved(from, "a 1c with forged proofs", what);
                return;
            }
        }
        if proofs.len() < self.group.quorum {
            self.stats.rejected += 1;
            let what = format!(
                "1c from {who} for slot {slot} ballot {ballot} rejected: {} proofs do not form a quorum of {}",
                proofs.len(),
                self.group.quorum
            );
            self.misbehaved(from, "a 1c with bad proofs", what);
            return;
        }
        let digest = value.digest();
        let reports: Vec<&OneB> = proofs.iter().map(|p| &p.body).collect();
        if !safety::is_safe(&self.group, &reports, &digest) {
            self.stats.rejected += 1;
            let what = format!("1c from {who} for slot {slot} ballot {ballot} rejected: its value is not safe given its proofs");
            self.misbehaved(from, "a 1c with an unsafe value", what);
            return;
        }
        self.acc.max_bal = Some(ballot);
        self.remember_relayed(ballot, value.clone());
        self.out.persist.push(Record::Relayed {
            slot,
            ballot,
            value: value.clone(),
        });
        self.broadcast(PeerMsg::TwoAv {
            slot,
            ballot,
            value,
        });
    }

    fn remember_relayed(&mut self, ballot: u64, value: Batch) {
        let digest = value.digest();
        self.acc.relayed.retain(|(_, d, _)| *d != digest);
        self.acc.relayed.push((ballot, digest, value));
        // Forgetting old reports is safe (it only makes fewer values provably safe).
        self.acc
            .relayed
            .sort_by_key(|(b, _, _)| std::cmp::Reverse(*b));
        self.acc.relayed.truncate(KEPT_REPORTS);
    }

    /// Record `from`'s message for `ballot` in a tally; false if it already
    /// said something else in that ballot (a Byzantine replica).
    fn tally(
        map: &mut BTreeMap<u64, Vec<Option<Digest>>>,
        n: usize,
        ballot: u64,
        from: usize,
        digest: Digest,
    ) -> Option<usize> {
        if !map.contains_key(&ballot) && map.len() >= TRACKED_BALLOTS {
            let lowest = *map.keys().next()?;
            if lowest > ballot {
                return None;
            }
            map.remove(&lowest);
        }
        let votes = map.entry(ballot).or_insert_with(|| vec![None; n]);
        match votes[from] {
            Some(d) if d != digest => return None,
            _ => votes[from] = Some(digest),
        }
        Some(votes.iter().filter(|v| **v == Some(digest)).count())
    }

    fn on_two_av(&mut self, from: usize, slot: u64, ballot: u64, value: Batch) {
        if !self.current_slot(from, slot, false)
            || (from != self.me && self.out_of_reach(from, "2av", slot, ballot))
        {
            return;
        }
        let digest = value.digest();
        self.check_against_my_relay(from, "2av", slot, ballot, &digest);
        let n = self.group.n();
        let Some(count) = Self::tally(&mut self.heard.two_av, n, ballot, from, digest) else {
            self.stats.rejected += 1;
            let what = format!(
                "{} relayed two values in ballot {ballot} of slot {slot} (equivocation): the second is ignored",
                self.group.names[from]
            );
            self.misbehaved(from, "equivocation (two 2av values in one ballot)", what);
            return;
        };
        self.heard.values.entry(digest).or_insert(value);
        if count < self.group.quorum
            || self.acc.max_bal.is_some_and(|m| m > ballot)
            || self.acc.voted.is_some_and(|(b, _)| b >= ballot)
        {
            return;
        }
        self.acc.max_bal = Some(ballot);
        self.acc.voted = Some((ballot, digest));
        self.out.persist.push(Record::Voted {
            slot,
            ballot,
            digest,
        });
        // Signed, so that a quorum of votes proves the decision to anyone.
        let signature = self.sign(&two_b_bytes(self.me, slot, ballot, &digest));
        self.broadcast(PeerMsg::TwoB {
            slot,
            ballot,
            digest,
            signature,
        });
    }

    fn on_two_b(
        &mut self,
        from: usize,
        slot: u64,
        ballot: u64,
        digest: Digest,
        signature: Vec<u8>,
    ) {
        if !self.current_slot(from, slot, false)
            || (from != self.me && self.out_of_reach(from, "2b", slot, ballot))
        {
            return;
        }
        // Our own vote needs no check.
        if from != self.me
            && !self.verify(from, &two_b_bytes(from, slot, ballot, &digest), &signature)
        {
            self.stats.forged_rejected += 1;
            let what = format!(
                "forged 2b from {} for slot {slot} ballot {ballot}: signature does not verify; rejected",
                self.group.names[from]
            );
            self.misbehaved(from, "a forged 2b", what);
            return;
        }
        self.check_against_my_relay(from, "2b", slot, ballot, &digest);
        let n = self.group.n();
        let Some(count) = Self::tally(&mut self.heard.two_b, n, ballot, from, digest) else {
            self.stats.rejected += 1;
            let what = format!(
                "{} voted for two values in ballot {ballot} of slot {slot} (equivocation): the second vote is ignored",
                self.group.names[from]
            );
            self.misbehaved(from, "equivocation (two 2b votes in one ballot)", what);
            return;
        };
        let heard = &mut self.heard;
        heard
            .two_b_signatures
            .retain(|b, _| heard.two_b.contains_key(b));
        heard
            .two_b_signatures
            .entry(ballot)
            .or_insert_with(|| vec![None; n])[from] = Some(signature);
        if count < self.group.quorum {
            return;
        }
        // The quorum's signed votes: this slot's decision certificate.
        let votes: Vec<(usize, Vec<u8>)> = (0..n)
            .filter(|&i| self.heard.two_b[&ballot][i] == Some(digest))
            .filter_map(|i| Some((i, self.heard.two_b_signatures[&ballot][i].clone()?)))
            .take(self.group.quorum)
            .collect();
        let proof = Certificate { ballot, votes };
        match self.heard.values.get(&digest).cloned() {
            Some(value) => self.commit(slot, value, Some(proof), false),
            None => {
                // Decided, but we never saw the value: fetch it.
                self.catchup.decided_unseen = true;
                self.request_catchup();
            }
        }
    }

    /// A 2av or 2b for another value than the 1c of that ballot carried
    /// here: the sender or the ballot's leader equivocates (an equivocating
    /// leader or acceptor splits its messages, so no one replica sees both
    /// values from it; this is where the split shows).
    fn check_against_my_relay(
        &mut self,
        from: usize,
        what: &str,
        slot: u64,
        ballot: u64,
        digest: &Digest,
    ) {
        if from == self.me {
            return;
        }
        let conflict = self
            .acc
            .relayed
            .iter()
            .any(|(b, d, _)| *b == ballot && d != digest);
        if conflict {
            let leader = self.group.leader(slot, ballot);
            let text = format!(
                "{}'s {what} in ballot {ballot} of slot {slot} is for another value than the 1c of its leader {} carried here (equivocation by one of them)",
                self.group.names[from], self.group.names[leader]
            );
            self.misbehaved(from, "a message contradicting its ballot's 1c", text);
        }
    }

    // ---- learning --------------------------------------------------------

    /// Keep `slot`'s certificate (if any) and forget those of old slots.
    fn keep_certificate(&mut self, slot: u64, proof: Option<Certificate>) {
        if let Some(c) = proof {
            self.certificates.insert(slot, c);
        }
        let oldest = slot.saturating_sub(KEPT_CERTIFICATES);
        while self
            .certificates
            .first_key_value()
            .is_some_and(|(s, _)| *s < oldest)
        {
            self.certificates.pop_first();
        }
    }

    /// Whether `proof` shows that `slot` was decided for the batch whose
    /// digest is `digest`: a quorum of distinct replicas of the group, each
    /// signature verifying for this slot, ballot and digest. Err says why not.
    fn check_certificate(
        &mut self,
        slot: u64,
        digest: &Digest,
        proof: &Certificate,
    ) -> Result<(), String> {
        let n = self.group.n();
        if proof.votes.len() < self.group.quorum {
            return Err(format!(
                "{} votes do not form a quorum of {}",
                proof.votes.len(),
                self.group.quorum
            ));
        }
        let mut seen = vec![false; n];
        for (signer, _) in &proof.votes {
            if *signer >= n {
                return Err(format!("a vote from replica #{signer}, not in the group"));
            }
            if std::mem::replace(&mut seen[*signer], true) {
                return Err(format!("two votes from {}", self.group.names[*signer]));
            }
        }
        for (signer, signature) in &proof.votes {
            let bytes = two_b_bytes(*signer, slot, proof.ballot, digest);
            if !self.verify(*signer, &bytes, signature) {
                return Err(format!(
                    "{}'s vote in ballot {} does not verify for this slot and value",
                    self.group.names[*signer], proof.ballot
                ));
            }
        }
        Ok(())
    }

    /// Decide `slot` (with its certificate if known): seen in a ballot
    /// here, or `caught_up` from others' replies.
    fn commit(&mut self, slot: u64, value: Batch, proof: Option<Certificate>, caught_up: bool) {
        debug_assert_eq!(slot, self.slot());
        let ballot = proof.as_ref().map(|c| c.ballot).filter(|_| !caught_up);
        self.out.persist.push(Record::Committed {
            slot,
            value: value.clone(),
            proof: proof.clone(),
        });
        self.keep_certificate(slot, proof);
        let applied = self.store.apply(&value);
        self.log.push(value.clone());
        self.acc = Acceptor::default();
        self.heard = Heard::new(self.group.n());
        self.backoff = 1;
        self.catchup.replies.remove(&slot);
        self.catchup.proven.remove(&slot);
        self.catchup.decided_unseen = false;
        self.catchup.claims[self.me] = self.slot();
        match ballot {
            Some(b) => info!(
                "slot {slot} committed in ballot {b}: {} operations ({} new)",
                value.requests.len(),
                applied.len()
            ),
            None => info!(
                "slot {slot} committed (caught up): {} operations ({} new)",
                value.requests.len(),
                applied.len()
            ),
        }
        let committed: std::collections::HashSet<RequestId> =
            value.requests.iter().map(|r| r.id).collect();
        let mut answers = Vec::new();
        self.pending.retain(|p| {
            if committed.contains(&p.request.id) {
                answers.push((p.client, p.request.id));
                false
            } else {
                true
            }
        });
        for (client, id) in answers {
            self.reply(
                client,
                id,
                CODE_COMMITTED,
                format!("committed in slot {slot}"),
            );
        }
        if let Some(l) = self.leading.take() {
            if l.slot == slot && l.behind {
                // The seed's refusal path: this replica was behind; it caught
                // up, and its requests in that ballot were not decided.
                let mine: std::collections::HashSet<RequestId> =
                    l.own.requests.iter().map(|r| r.id).collect();
                let mut failed = Vec::new();
                self.pending.retain(|p| {
                    if mine.contains(&p.request.id) {
                        failed.push((p.client, p.request.id));
                        false
                    } else {
                        true
                    }
                });
                for (client, id) in failed {
                    self.reply(
                        client,
                        id,
                        CODE_BEHIND,
                        format!(
                            "this replica was behind and caught up to slot {}; retry",
                            slot + 1
                        ),
                    );
                }
            } else if l.slot != slot {
                self.leading = Some(l);
            }
        }
        self.yield_until = None;
        self.maybe_lead();
    }

    fn claim(&mut self, from: usize, committed: u64) {
        let c = &mut self.catchup.claims[from];
        *c = (*c).max(committed);
    }

    /// The number of slots that f + 1 replicas say are decided.
    fn decided_elsewhere(&self) -> u64 {
        let mut claims = self.catchup.claims.clone();
        claims.sort_unstable_by(|a, b| b.cmp(a));
        claims[self.group.weak_quorum() - 1]
    }

    fn behind(&self) -> bool {
        self.catchup.decided_unseen || self.decided_elsewhere() > self.slot()
    }

    fn request_catchup(&mut self) {
        if self.group.n() == 1 {
            return;
        }
        if self
            .catchup
            .last_request
            .is_some_and(|t| self.tick < t + CATCHUP_EVERY)
        {
            return;
        }
        self.catchup.last_request = Some(self.tick);
        let from = self.slot();
        self.catchup.asked = Some((from, from.saturating_add(CATCHUP_WINDOW)));
        self.out.sends.push((
            Dest::All,
            PeerMsg::CatchupRequest {
                from_slot: self.slot(),
            },
        ));
    }

    fn on_catchup_request(&mut self, from: usize, from_slot: u64) {
        let end = self.slot().min(from_slot.saturating_add(CATCHUP_BATCH));
        for slot in from_slot..end {
            let value = self.log[slot as usize].clone();
            let proof = self.certificates.get(&slot).cloned();
            self.send(
                from,
                PeerMsg::CatchupReply {
                    slot,
                    committed: self.slot(),
                    value,
                    proof,
                },
            );
        }
    }

    fn on_catchup_reply(
        &mut self,
        from: usize,
        slot: u64,
        committed: u64,
        value: Batch,
        proof: Option<Certificate>,
    ) {
        let current = self.slot();
        if slot < current {
            return; // an answer to an earlier request, decided since
        }
        if crate::sim::bugs::seeded("bpcon.unsolicited-catchup") && slot == current {
            // The seed's bug: any reply, asked for or not, from one replica.
            self.commit(slot, value, None, true);
            return;
        }
        // Only answers to our own outstanding request count.
        let asked = self
            .catchup
            .asked
            .is_some_and(|(lo, hi)| slot >= lo && slot < hi);
        if !asked || committed <= slot {
            self.stats.rejected += 1;
            let asked = match self.catchup.asked {
                Some((lo, hi)) => format!("it asked for slots {lo} to {}", hi - 1),
                None => "it asked for nothing".into(),
            };
            let what = format!(
                "unsolicited catch-up value for slot {slot} from {} ({asked}): dropped",
                self.group.names[from]
            );
            self.misbehaved(from, "an unsolicited catch-up reply", what);
            return;
        }
        // Only f + 1 matching values are believed; the claim only prompts more requests.
        self.claim(from, committed.min(current.saturating_add(CATCHUP_WINDOW)));
        let digest = value.digest();
        let n = self.group.n();
        let votes = self
            .catchup
            .replies
            .entry(slot)
            .or_insert_with(|| vec![None; n]);
        if votes[from].is_some() {
            return; // one answer per replica and slot: it may not change it
        }
        votes[from] = Some(digest);
        // A valid decision certificate proves the value on its own (one
        // correct holder is enough); a bad one marks its sender as lying,
        // and its reply counts as one without.
        if let Some(proof) = proof {
            if !self.catchup.proven.contains_key(&slot) {
                match self.check_certificate(slot, &digest, &proof) {
                    Ok(()) => {
                        self.catchup.proven.insert(slot, (digest, proof));
                    }
                    Err(why) => {
                        self.stats.forged_rejected += 1;
                        let what = format!(
                            "catch-up value for slot {slot} from {} comes with a bad decision certificate ({why}): the certificate is refused",
                            self.group.names[from]
                        );
                        self.misbehaved(from, "a forged decision certificate", what);
                    }
                }
            }
        }
        self.catchup.values.entry(digest).or_insert(value);
        let before = self.slot();
        // Commit every slot proven by a certificate or that f + 1 replicas
        // (one of them correct) agree on.
        loop {
            let slot = self.slot();
            let Some(votes) = self.catchup.replies.get(&slot) else {
                break;
            };
            let proven = self.catchup.proven.get(&slot).cloned();
            let agreed = match &proven {
                Some((d, _)) => Some(*d),
                None => votes
                    .iter()
                    .flatten()
                    .find(|d| {
                        votes.iter().filter(|v| v.as_ref() == Some(*d)).count()
                            >= self.group.weak_quorum()
                    })
                    .copied(),
            };
            let Some(d) = agreed else { break };
            let Some(value) = self.catchup.values.get(&d).cloned() else {
                break;
            };
            let liars: Vec<usize> = votes
                .iter()
                .enumerate()
                .filter(|(_, v)| v.is_some_and(|v| v != d))
                .map(|(i, _)| i)
                .collect();
            let against = match &proven {
                Some(_) => "a decision certificate contradicts".to_string(),
                None => format!("{} other replicas contradict", self.group.weak_quorum()),
            };
            for liar in liars {
                let what = format!(
                    "{} sent a catch-up value for slot {slot} that {against} (a lie): ignored",
                    self.group.names[liar],
                );
                self.misbehaved(liar, "a false catch-up value", what);
            }
            self.commit(slot, value, proven.map(|(_, c)| c), true);
        }
        if self.slot() > before {
            let current = self.slot();
            self.catchup.replies.retain(|s, _| *s >= current);
            self.catchup.proven.retain(|s, _| *s >= current);
            let wanted: std::collections::HashSet<Digest> = self
                .catchup
                .replies
                .values()
                .flatten()
                .flatten()
                .copied()
                .collect();
            self.catchup.values.retain(|d, _| wanted.contains(d));
            if self.behind() {
                self.catchup.last_request = None;
                self.request_catchup();
            }
        }
    }

    // ---- dispatch --------------------------------------------------------

    fn handle(&mut self, from: usize, msg: PeerMsg) {
        match msg {
            PeerMsg::Challenge { .. }
            | PeerMsg::Hello { .. }
            | PeerMsg::Welcome { .. }
            | PeerMsg::Mac { .. } => {}
            PeerMsg::Status {
                committed,
                max_ballot,
            } => {
                if committed == self.slot() {
                    if let Some(b) = max_ballot {
                        self.note_ballot(from, b);
                    }
                }
                self.claim(from, committed);
                if self.behind() {
                    self.request_catchup();
                }
            }
            PeerMsg::OneA { slot, ballot } => self.on_one_a(from, slot, ballot),
            PeerMsg::OneB { signed, values } => self.on_one_b(from, signed, values),
            PeerMsg::Refuse {
                slot,
                max_ballot,
                committed,
            } => self.on_refuse(from, slot, max_ballot, committed),
            PeerMsg::OneC {
                slot,
                ballot,
                value,
                proofs,
            } => self.on_one_c(from, slot, ballot, value, proofs),
            PeerMsg::TwoAv {
                slot,
                ballot,
                value,
            } => self.on_two_av(from, slot, ballot, value),
            PeerMsg::TwoB {
                slot,
                ballot,
                digest,
                signature,
            } => self.on_two_b(from, slot, ballot, digest, signature),
            PeerMsg::CatchupRequest { from_slot } => self.on_catchup_request(from, from_slot),
            PeerMsg::CatchupReply {
                slot,
                committed,
                value,
                proof,
            } => self.on_catchup_reply(from, slot, committed, value, proof),
        }
    }
}
