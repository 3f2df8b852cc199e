//! One BPCon replica as a state machine without I/O.
//!
//! The log is a sequence of slots; each slot's value (a batch of client
//! requests) is decided by BPCon ballots: 1a, signed 1b, 1c carrying the
//! signed 1bs as proof, 2av (every acceptor relays the 1c value it checked;
//! a Byzantine leader cannot get two values voted in one ballot), and 2b
//! once a quorum relayed the same value. A quorum of 2b decides the slot.
//! A stable leader runs phase 1 once and then only 1c, 2av and 2b per
//! slot. The 2b goes out unsigned (the link says who sent it); the votes
//! are signed afterwards, on the clock, for the decision certificates.
//! A replica works on one slot at a time: the first one it has not decided.
//!
//! The replica that receives a client request leads a ballot for it. Inputs
//! are calls (`on_peer`, `submit`, `on_tick`); outputs pile up in
//! [`Output`]: records to make durable first, then messages and replies.

//!
//! The rooms, each owning its state:
//! - `acceptor`: promises, relays and votes (durable) and the 1a/1c/2av
//!   answers;
//! - `heard`: what others reached in this slot (ballots in reach) and the
//!   2av/2b tallies;
//! - `leader`: the ballot this replica leads (1a, 1bs, 1c, back-off);
//! - `learner`: 2b quorums, decision certificates and committing;
//! - `catch_up`: others' progress and fetching decided values;
//! - `queue`: the client requests waiting for a slot;
//! - `report` and `signing`: rate-limited misbehaviour logs, counted
//!   signatures and the votes waiting to be signed.
//!
//! This file is the dispatcher: inputs, the tick, outputs and the state line.

mod acceptor;
mod catch_up;
mod heard;
mod leader;
mod learner;
mod queue;
mod report;
mod signing;

use super::crypto::{PrivateKey, PublicKey};
use super::group::Group;
use super::messages::{self, PeerMsg};
use super::op::{hex, Batch, RequestId};
use super::store::Store;
use super::wal::Record;
use acceptor::{Acceptor, VerifiedProofs};
use catch_up::Catchup;
use heard::Heard;
use leader::Leader;
use learner::Certificates;
use log::info;
use queue::Queue;
use report::Reports;
pub use signing::SIGN_EVERY;
use signing::{Signer, Unsigned};
use std::collections::VecDeque;

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
/// (in memory; in its slot's WAL record when complete at the decision). Only the last slots
/// can be decided with fewer than f + 1 correct replicas knowing it: a
/// quorum deciding slot s + 1 holds f + 1 correct replicas that decided s.
const KEPT_CERTIFICATES: u64 = CATCHUP_WINDOW;
/// Early messages (for the next slot) kept, per replica in the group.
const EARLY_KEPT_PER_REPLICA: usize = 4;
/// A replica that does not lead passes its clients' requests on to the
/// leader; if none of them commits within this many ticks (times the
/// back-off), it runs phase 1 itself: a silent or Byzantine leader that
/// ignores them is replaced.
const FORWARD_TIMEOUT: u64 = 50;
/// Requests forwarded and not yet committed are sent again this often
/// (and at once to a new leader).
const FORWARD_EVERY: u64 = 20;
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
    /// Whether `persist` must be on disk (fsync'd) before anything is sent:
    /// true once it holds a promise, relay or vote; a commit record alone
    /// need not be (see `Replica::commit`).
    pub sync: bool,
    /// How many of `sends` were made before the first record that must be
    /// on disk: they depend on none of this output's records and may leave
    /// before the fsync (a stable leader's 1c, made before its own relay of
    /// it is logged; an acceptor's relay is what must be durable, not the
    /// leader's proposal). Meaningful only with `sync`.
    pub free: usize,
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

pub struct Replica {
    group: Group,
    me: usize,
    signer: Signer,
    /// 2b votes sent unsigned, to sign on the next signing tick.
    unsigned: Unsigned,
    tick: u64,
    log: Vec<Batch>,
    certificates: Certificates,
    store: Store,
    acc: Acceptor,
    verified_proofs: VerifiedProofs,
    /// Ballot messages for the next slot that came before this replica
    /// decided the current one (a stable leader's next 1c often does):
    /// handled once it moves on. Bounded (oldest dropped).
    early: VecDeque<(usize, PeerMsg)>,
    heard: Heard,
    lead: Leader,
    queue: Queue,
    catchup: Catchup,
    inbox: VecDeque<PeerMsg>,
    /// Early messages of the slot just moved to, handled after the inbox.
    replay: VecDeque<(usize, PeerMsg)>,
    out: Output,
    pub stats: Stats,
    reports: Reports,
}

impl Replica {
    /// A replica restored from its durable records (none for a new one).
    pub fn new(config: Config, records: Vec<Record>) -> Replica {
        let n = config.group.n();
        let mut replica = Replica {
            lead: Leader::new(config.seed),
            group: config.group,
            me: config.me,
            signer: Signer::new(config.key, config.keys),
            unsigned: Unsigned::default(),
            tick: 0,
            log: Vec::new(),
            certificates: Certificates::default(),
            store: Store::default(),
            acc: Acceptor::default(),
            verified_proofs: VerifiedProofs::default(),
            early: VecDeque::new(),
            heard: Heard::new(n),
            queue: Queue::default(),
            catchup: Catchup::new(n),
            inbox: VecDeque::new(),
            replay: VecDeque::new(),
            out: Output::default(),
            stats: Stats::default(),
            reports: Reports::new(),
        };
        debug_assert_eq!(replica.signer.len(), n);
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
                self.acc = self.acc.next_slot();
                self.certificates.keep(slot, proof, None);
            }
            // A promise of an old log: for its slot only.
            Record::Promise { slot, ballot } if slot == current => {
                self.acc.max_bal = self.acc.max_bal.max(Some(ballot));
            }
            // A stable leader's ballot: promised from its slot on.
            Record::PromiseFrom { slot, ballot } if slot <= current => {
                self.acc.promise = self.acc.promise.max(Some(ballot));
                self.acc.max_bal = self.acc.max_bal.max(Some(ballot));
            }
            Record::Relayed {
                slot,
                ballot,
                value,
            } if slot == current => {
                self.acc.max_bal = self.acc.max_bal.max(Some(ballot));
                self.acc.remember_relayed(ballot, value.digest(), value);
            }
            Record::Voted {
                slot,
                ballot,
                digest,
            } if slot == current => {
                self.acc.max_bal = self.acc.max_bal.max(Some(ballot));
                self.acc.voted = Some((ballot, digest));
                // Signed again after a restart: whether the signature left
                // before the crash is unknown, and a slot decided with this
                // vote may need it for its certificate (a duplicate is
                // ignored by the others).
                self.unsigned.push(
                    messages::Vote {
                        slot,
                        ballot,
                        digest,
                    },
                    self.tick,
                );
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
        self.queue.len()
    }

    /// Logical time: ticks since start.
    pub fn tick(&self) -> u64 {
        self.tick
    }

    pub fn max_ballot(&self) -> Option<u64> {
        self.acc.max_bal
    }

    /// The (f + 1)-th highest ballot the other replicas reached in this
    /// slot (see `heard`).
    pub fn credible_ballot(&self) -> Option<u64> {
        self.heard.credible_ballot(&self.group, self.me)
    }

    /// Warnings held back by the rate limits right now.
    pub fn warnings_held(&self) -> u64 {
        self.reports.held()
    }

    pub fn take_output(&mut self) -> Output {
        std::mem::take(&mut self.out)
    }

    /// The `state` line's part from the replica: everything a checker
    /// compares between replicas.
    pub fn state(&self) -> crate::bpcon::state::ReplicaState {
        crate::bpcon::state::ReplicaState {
            id: self.name().to_string(),
            n: self.group.n(),
            f: self.group.f,
            quorum: self.group.quorum,
            slots: self.slot(),
            committed: self.store.log.len(),
            log_digest: hex(&self.store.log_digest()),
            store: self.store.kv.clone(),
            log: self
                .store
                .log
                .iter()
                .map(|(_, op)| op.to_string())
                .collect(),
            pending: self.queue.len(),
            max_ballot: self.acc.max_bal,
            signs: self.stats.signs,
            verifies: self.stats.verifies,
            sign_us: self.stats.sign_us,
            verify_us: self.stats.verify_us,
            ballots: self.stats.ballots_started,
            forged_rejected: self.stats.forged_rejected,
            rejected: self.stats.rejected,
            misbehaviour_detected: self.stats.misbehaviour,
            certified: self.certificates.latest(),
        }
    }

    // ---- misbehaviour and signatures ---------------------------------------

    /// Count and log (rate-limited) what `peer` did wrong.
    fn misbehaved(&mut self, peer: usize, kind: &'static str, what: String) {
        self.stats.misbehaviour += 1;
        self.reports.misbehaved(self.tick, peer, kind, what);
    }

    fn sign(&mut self, bytes: &[u8]) -> Vec<u8> {
        self.signer.sign(&mut self.stats, bytes)
    }

    fn verify(&mut self, signer: usize, bytes: &[u8], signature: &[u8]) -> bool {
        self.signer
            .verify(&mut self.stats, signer, bytes, signature)
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

    /// A record to write before this turn's messages leave; `sync`: it
    /// must be on disk (fsync'd) before they do.
    fn persist(&mut self, record: Record, sync: bool) {
        if sync && !self.out.sync {
            self.out.free = self.out.sends.len();
        }
        self.out.persist.push(record);
        self.out.sync |= sync;
    }

    fn reply(&mut self, client: u64, id: RequestId, code: u8, message: String) {
        self.out.replies.push(Reply {
            client,
            id,
            code,
            message,
        });
    }

    /// Handle what this replica sent itself, then the early messages of a
    /// slot it has just moved to.
    fn drain_inbox(&mut self) {
        loop {
            if let Some(msg) = self.inbox.pop_front() {
                self.handle(self.me, msg);
            } else if let Some((from, msg)) = self.replay.pop_front() {
                self.handle(from, msg);
            } else {
                break;
            }
        }
    }

    /// Keep a ballot message for the next slot until this replica decides
    /// the current one (true), instead of treating it as a sign of being
    /// behind: in the steady state a stable leader's next 1c, and the
    /// others' 2av and 2b, often arrive before the last 2b of this slot.
    fn keep_early(&mut self, from: usize, msg: &PeerMsg) -> bool {
        let slot = match msg {
            PeerMsg::OneA { slot, .. }
            | PeerMsg::OneC { slot, .. }
            | PeerMsg::TwoAv { slot, .. }
            | PeerMsg::TwoB { slot, .. } => *slot,
            _ => return false,
        };
        if Some(slot) != self.slot().checked_add(1) {
            return false;
        }
        if self.early.len() >= EARLY_KEPT_PER_REPLICA * self.group.n() {
            self.early.pop_front();
        }
        self.early.push_back((from, msg.clone()));
        true
    }

    // ---- inputs ----------------------------------------------------------

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
        // Signatures sent while the link was down were lost, and a peer
        // may have decided a slot on this replica's unsigned 2b: without
        // the signature it may never complete that slot's certificate.
        for signed in self.unsigned.recent() {
            self.send(peer, PeerMsg::TwoBSigs { signed });
        }
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
            self.reports.flush(self.tick, &self.group.names);
        }
        self.catchup.stop_answers(self.tick);
        if self.unsigned.due(self.tick) {
            self.sign_votes();
        }
        self.expire_requests();
        self.leader_tick();
        if self.behind() {
            self.request_catchup();
        }
        self.maybe_lead();
        self.drain_inbox();
    }

    // ---- dispatch --------------------------------------------------------

    fn handle(&mut self, from: usize, msg: PeerMsg) {
        if from != self.me && self.keep_early(from, &msg) {
            return;
        }
        match msg {
            PeerMsg::Challenge { .. }
            | PeerMsg::Hello { .. }
            | PeerMsg::Welcome { .. }
            | PeerMsg::Mac { .. } => {}
            PeerMsg::Status {
                committed,
                max_ballot,
            } => {
                // Ballots are global: what it promised counts in any slot.
                if let Some(b) = max_ballot {
                    self.heard.note_ballot(from, b);
                }
                self.catchup.claim(from, committed);
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
                digest,
            } => self.on_two_av(from, slot, ballot, digest),
            PeerMsg::TwoB {
                slot,
                ballot,
                digest,
            } => self.on_two_b(from, slot, ballot, digest),
            PeerMsg::TwoBSigs { signed } => self.on_two_b_sigs(from, signed),
            PeerMsg::CatchupRequest { from_slot } => self.on_catchup_request(from, from_slot),
            PeerMsg::Forward { requests } => self.on_forward(from, requests),
            PeerMsg::CatchupReply {
                slot,
                committed,
                value,
                proof,
            } => self.on_catchup_reply(from, slot, committed, value, proof),
        }
    }
}
