//! The reference UA's core, free of I/O: it carries out requests (REGISTER, INVITE, OPTIONS)
//! by resolving the URI (RFC 3263), trying each target in turn with a new client transaction,
//! failing over on timeout, refusal and 503, and keeping failed targets aside for the
//! dirty-host TTL. It is driven by explicit time and tells its I/O shell what to do through
//! [`Action`]s, the way quinn-proto drives a connection.
//!
//! Registration (D4–D6): the server a REGISTER succeeded with is the registrar. A refresh goes
//! there first (D4), other requests only when configured to (`follow_registrar`), unless a
//! failback mode says otherwise (Yealink/Polycom: `new_requests` draws every request anew,
//! `registration` sends calls to the registrar and renewals back to the top of the list,
//! `dns_ttl` stays while the registrar's address is cached, `duration` for
//! `failback_timeout`). A registrar that is dirty is not stuck to. After a registration failed
//! at every target, the next REGISTER waits `retry_after_failed_register` ±10 % (D5): a
//! REGISTER asked for earlier is held until then, as a phone retries on its own schedule.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use hickory_server::proto::op::Message as DnsMessage;
use hickory_server::proto::rr::{Name, RecordType};

use super::config::UaConfig;
use super::dirty::DirtyHosts;
use super::dns_cache::DnsCache;
use super::fault::Fault;
use super::locate::{Next, Resolution};
use super::request::{RequestSpec, build_ack, build_request, new_branch, sdp_offer};
use super::rng::Rng;
use super::target::Target;
use super::transaction::{ClientTransaction, Kind, TxEvent};
use crate::model::profile::FailbackMode;
use crate::sip::Message;
use crate::sip::uri::SipUri;
use crate::timeline::Transport;

pub type JobId = u64;

/// What the UA is asked to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Register,
    Invite,
    Options,
}

impl Method {
    /// INVITE has a transaction of its own kind (RFC 3261 §17.1.1); the rest are non-INVITE.
    fn transaction_kind(self) -> Kind {
        match self {
            Self::Invite => Kind::Invite,
            Self::Register | Self::Options => Kind::NonInvite,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Register => "REGISTER",
            Self::Invite => "INVITE",
            Self::Options => "OPTIONS",
        }
    }
}

/// How one attempt (one target, one transaction) ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// A final response.
    Answered(u16),
    /// Timer B/F ran out without a final response.
    TimedOut,
    /// ICMP port unreachable / connection refused or reset.
    Refused,
}

/// One attempt, reported when it ends.
#[derive(Clone, Debug, PartialEq)]
pub struct AttemptReport {
    pub job: JobId,
    pub method: Method,
    pub target: Target,
    pub branch: String,
    /// When the request was first sent and when the attempt ended (UA time).
    pub sent: Duration,
    pub ended: Duration,
    pub outcome: AttemptOutcome,
}

/// How a request ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A 2xx from `target`.
    Succeeded { status: u16, target: Target },
    /// A final response that is not a reason to fail over (F4).
    Rejected { status: u16, target: Target },
    /// No target left, or none to begin with.
    Failed { why: String },
}

impl Outcome {
    pub fn is_success(&self) -> bool {
        matches!(self, Self::Succeeded { .. })
    }
}

/// What the I/O shell must do.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Send exactly one DNS query and report its answer (or its failure).
    Query {
        job: JobId,
        name: Name,
        rtype: RecordType,
    },
    /// Open a socket to the target for an attempt (UDP: connected, so ICMP errors surface;
    /// TCP: connect), then call `on_opened` or `on_transport_error`.
    Open {
        job: JobId,
        attempt: u32,
        target: Target,
    },
    /// Send on the attempt's socket.
    Send {
        job: JobId,
        attempt: u32,
        bytes: Vec<u8>,
    },
    /// Send once to another target without a transaction (the `retransmit-to-next-target`
    /// fault).
    SendElsewhere {
        target: Target,
        bytes: Vec<u8>,
    },
    /// The attempt's socket is no longer needed.
    Close {
        job: JobId,
        attempt: u32,
    },
    Attempt(AttemptReport),
    Done {
        job: JobId,
        outcome: Outcome,
    },
}

/// How long an INVITE may stay without a final response after a provisional one (the TU's
/// timer; RFC 3261 leaves it to the UA). Then the UA cancels and gives up, without failover.
const INVITE_PROCEEDING_LIMIT: Duration = Duration::from_secs(180);

struct Attempt {
    number: u32,
    target: Target,
    branch: String,
    sent: Duration,
    request: Option<Message>,
    tx: Option<ClientTransaction>,
    /// After a 2xx to an INVITE: the BYE that ends the call, in its own transaction.
    bye: Option<(Message, ClientTransaction)>,
    /// INVITE after a provisional: when the UA gives up waiting.
    proceeding_limit: Option<Duration>,
    final_status: Option<u16>,
}

struct Job {
    method: Method,
    uri: SipUri,
    call_id: String,
    from_tag: String,
    cseq: u32,
    resolution: Resolution,
    awaiting_query: bool,
    /// Every query this request made (the `resolve-per-retransmission` fault repeats them).
    queried: Vec<(Name, RecordType)>,
    attempt: Option<Attempt>,
    attempts: u32,
    first_branch: Option<String>,
    /// A target taken from the resolution early (`retransmit-to-next-target`).
    peeked: Option<Target>,
    /// A target to try before resolving (after a 401, or the registrar's).
    retry_first: Option<Target>,
    authorize: bool,
    /// A REGISTER waiting out the retry time after a failed registration (D5).
    held_until: Option<Duration>,
}

impl Job {
    /// The query the resolution asked for: the job waits for it, and remembers it (the
    /// `resolve-per-retransmission` fault repeats what was asked).
    fn ask(&mut self, id: JobId, name: Name, rtype: RecordType) -> Action {
        self.awaiting_query = true;
        self.queried.push((name.clone(), rtype));
        Action::Query {
            job: id,
            name,
            rtype,
        }
    }
}

/// The server the last registration succeeded with.
#[derive(Clone, Debug)]
struct Registrar {
    target: Target,
    /// When it took over (its first success; refreshes there do not restart the clock).
    since: Duration,
}

pub struct Agent {
    config: UaConfig,
    rng: Rng,
    cache: DnsCache,
    dirty: DirtyHosts,
    /// Where the last registration succeeded (D4/D6).
    registrar: Option<Registrar>,
    /// No REGISTER before this, after one failed at every target (D5).
    register_hold_until: Option<Duration>,
    register_call_id: String,
    register_cseq: u32,
    user: String,
    jobs: BTreeMap<JobId, Job>,
    next_job: JobId,
    actions: VecDeque<Action>,
}

impl Agent {
    pub fn new(config: UaConfig, user: &str) -> Self {
        let mut rng = Rng::new(config.seed);
        let register_call_id = format!("{}@srvlab", rng.token(20));
        // A disabled cache still lets a resolution read the answers to its own queries.
        let cache = DnsCache::new(config.dns_cache, config.faults.has(Fault::IgnoreDnsTtl));
        Self {
            config,
            rng,
            cache,
            dirty: DirtyHosts::default(),
            registrar: None,
            register_hold_until: None,
            register_call_id,
            register_cseq: 0,
            user: user.to_string(),
            jobs: BTreeMap::new(),
            next_job: 1,
            actions: VecDeque::new(),
        }
    }

    pub fn config(&self) -> &UaConfig {
        &self.config
    }

    pub fn dirty_hosts(&self) -> &DirtyHosts {
        &self.dirty
    }

    /// The next thing the shell must do.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// Starts a request to `uri`.
    pub fn start(&mut self, method: Method, uri: SipUri, now: Duration) -> JobId {
        let id = self.next_job;
        self.next_job += 1;
        let (call_id, cseq) = if method == Method::Register {
            self.register_cseq += 1;
            (self.register_call_id.clone(), self.register_cseq)
        } else {
            (format!("{}@srvlab", self.rng.token(20)), 1)
        };
        let held_until = self
            .register_hold_until
            .filter(|until| method == Method::Register && *until > now);
        // A held REGISTER decides where it goes when it is let go.
        let retry_first = match held_until {
            Some(_) => None,
            None => self.registrar_first(method, now),
        };
        let job = Job {
            method,
            resolution: Resolution::new(&uri, &self.config),
            uri,
            call_id,
            from_tag: self.rng.token(10),
            cseq,
            awaiting_query: false,
            queried: Vec::new(),
            attempt: None,
            attempts: 0,
            first_branch: None,
            peeked: None,
            retry_first,
            authorize: false,
            held_until,
        };
        self.jobs.insert(id, job);
        if held_until.is_none() {
            self.advance(id, now);
        }
        id
    }

    /// The registrar, when a request of `method` starting at `now` should go there first.
    fn registrar_first(&self, method: Method, now: Duration) -> Option<Target> {
        let registrar = self.registrar.as_ref()?;
        if self.dirty.is_dirty(registrar.target.key(), now) {
            return None; // it failed since: draw anew (D1)
        }
        let refresh = method == Method::Register;
        if refresh && self.config.faults.has(Fault::RefreshRedraws) {
            return None;
        }
        let stick = match self.config.failback_mode {
            None if refresh => true,
            None => self.config.follow_registrar,
            Some(FailbackMode::NewRequests) => false,
            Some(FailbackMode::Registration) => !refresh,
            Some(FailbackMode::DnsTtl) => registrar.target.host.as_ref().is_none_or(|host| {
                self.cache
                    .lookup(host, RecordType::A, now)
                    .is_some_and(|cached| !cached.records().is_empty())
            }),
            Some(FailbackMode::Duration) => self
                .config
                .failback_timeout
                .is_none_or(|timeout| now < registrar.since.saturating_add(timeout)),
        };
        stick.then(|| registrar.target.clone())
    }

    /// Every target of a registration failed at `now`: no registrar any more, and the next
    /// REGISTER waits the retry time, spread ±10 % (Snom's `retry_after_failed_register`).
    fn registration_failed(&mut self, now: Duration) {
        self.registrar = None;
        if self.config.faults.has(Fault::ReregisterAtOnce) {
            return;
        }
        let spread = 0.9 + 0.2 * self.rng.up_to(1000) as f64 / 1000.0;
        let wait = self.config.retry_after_failed_register.mul_f64(spread);
        self.register_hold_until = Some(now.saturating_add(wait));
    }

    /// The earliest time `on_timer` must be called.
    pub fn deadline(&self) -> Option<Duration> {
        let attempts = self
            .jobs
            .values()
            .filter_map(|job| job.attempt.as_ref())
            .flat_map(|a| {
                [
                    a.tx.as_ref().and_then(ClientTransaction::deadline),
                    a.bye.as_ref().and_then(|(_, tx)| tx.deadline()),
                    a.proceeding_limit,
                ]
            })
            .flatten();
        let held = self.jobs.values().filter_map(|job| job.held_until);
        attempts.chain(held).min()
    }

    pub fn on_timer(&mut self, now: Duration) {
        let ids: Vec<JobId> = self.jobs.keys().copied().collect();
        for id in ids {
            let released = self
                .jobs
                .get(&id)
                .and_then(|job| job.held_until.map(|until| (until, job.method)))
                .filter(|(until, _)| *until <= now);
            if let Some((_, method)) = released {
                let first = self.registrar_first(method, now);
                if let Some(job) = self.jobs.get_mut(&id) {
                    job.held_until = None;
                    job.retry_first = first;
                }
                self.advance(id, now);
                continue;
            }
            let Some(attempt) = self.jobs.get_mut(&id).and_then(|j| j.attempt.as_mut()) else {
                continue;
            };
            let events = match attempt.tx.as_mut() {
                Some(tx) if tx.deadline().is_some_and(|d| d <= now) => tx.on_timer(now),
                _ => Vec::new(),
            };
            let bye_events = match attempt.bye.as_mut() {
                Some((_, tx)) if tx.deadline().is_some_and(|d| d <= now) => tx.on_timer(now),
                _ => Vec::new(),
            };
            let gave_up = attempt.proceeding_limit.is_some_and(|d| d <= now);
            self.on_tx_events(id, events, None, now);
            self.on_bye_events(id, bye_events, now);
            if gave_up {
                self.give_up_proceeding(id, now);
            }
        }
    }

    /// The answer to a query (`None`: timeout or SERVFAIL).
    pub fn on_dns_answer(
        &mut self,
        job: JobId,
        name: &Name,
        rtype: RecordType,
        answer: Option<&DnsMessage>,
        now: Duration,
    ) {
        let Some(state) = self.jobs.get_mut(&job) else {
            return;
        };
        match answer {
            Some(message) => self.cache.insert(name, rtype, message, now),
            None => state.resolution.on_query_failed(name, rtype),
        }
        if state.awaiting_query {
            state.awaiting_query = false;
            if state.attempt.is_none() {
                self.advance(job, now);
            }
        }
    }

    /// The attempt's socket is ready; `local` is its address (for Via and Contact).
    pub fn on_opened(&mut self, job: JobId, attempt: u32, local: SocketAddr, now: Duration) {
        let user = self.user.clone();
        let expires = self.config.register_expires;
        let reuse = self.config.faults.has(Fault::ReuseBranch);
        let Some(state) = self.jobs.get_mut(&job) else {
            return;
        };
        let Some((target, branch)) = state
            .attempt
            .as_ref()
            .filter(|a| a.number == attempt)
            .map(|a| (a.target.clone(), a.branch.clone()))
        else {
            return;
        };
        if reuse && state.first_branch.is_none() {
            state.first_branch = Some(branch.clone());
        }
        let request = build_for(state, &target, &branch, &user, local, expires);
        let Some(current) = state.attempt.as_mut() else {
            return;
        };
        let reliable = current.target.transport != Transport::Udp;
        let kind = state.method.transaction_kind();
        current.tx = Some(ClientTransaction::new(kind, reliable, &self.config, now));
        current.sent = now;
        let bytes = request.to_bytes();
        current.request = Some(request);
        self.actions.push_back(Action::Send {
            job,
            attempt,
            bytes,
        });
    }

    /// A message arrived on an attempt's socket.
    pub fn on_message(&mut self, job: JobId, attempt: u32, bytes: &[u8], now: Duration) {
        let Ok(response) = Message::parse(bytes) else {
            return; // not for us to judge; the world records malformed traffic
        };
        let Some(status) = response.status() else {
            return;
        };
        let Some(current) = self
            .jobs
            .get_mut(&job)
            .and_then(|j| j.attempt.as_mut())
            .filter(|a| a.number == attempt)
        else {
            return;
        };
        let branch = response
            .top_via()
            .and_then(|v| v.branch().map(str::to_string));
        let method = response.cseq().map(|(_, m)| m);
        if method.as_deref() == Some("BYE") {
            let events = match current.bye.as_mut() {
                Some((bye, tx))
                    if branch.as_deref() == bye.top_via().as_ref().and_then(|v| v.branch()) =>
                {
                    tx.on_response(status, now)
                }
                _ => Vec::new(),
            };
            self.on_bye_events(job, events, now);
            return;
        }
        if branch.as_deref() != Some(current.branch.as_str()) {
            return; // a stray response (another transaction's)
        }
        let events = match current.tx.as_mut() {
            Some(tx) => tx.on_response(status, now),
            None => Vec::new(),
        };
        self.on_tx_events(job, events, Some(&response), now);
    }

    /// The attempt's transport failed: ICMP port unreachable (a connected UDP socket sees
    /// ECONNREFUSED), or the TCP connection was refused or reset.
    pub fn on_transport_error(&mut self, job: JobId, attempt: u32, now: Duration) {
        let Some(state) = self.jobs.get_mut(&job) else {
            return;
        };
        let kind = state.method.transaction_kind();
        let Some(current) = state.attempt.as_mut().filter(|a| a.number == attempt) else {
            return;
        };
        if self.config.faults.has(Fault::WaitTimerBOnRefusal) {
            // The bug: as if the socket never told us. A connection that never opened has no
            // transaction yet; without one nothing would ever time out and the request would
            // hang, so Timer B/F runs from the refusal, as if the request had gone out.
            if current.tx.is_none() {
                current.tx = Some(ClientTransaction::new(kind, true, &self.config, now));
                current.sent = now;
            }
            return;
        }
        let events = match current.tx.as_mut() {
            Some(tx) => tx.on_transport_error(now),
            // The connection could not even be opened.
            None => vec![TxEvent::TransportError],
        };
        self.on_tx_events(job, events, None, now);
    }

    /// The attempt's TLS handshake failed (the certificate did not verify, the server sent an
    /// alert): a transport error like any other (RFC 3261 §8.1.3.1). One never answered
    /// (`timed_out`, after 64·T1) is the attempt's timeout.
    pub fn on_handshake_failure(
        &mut self,
        job: JobId,
        attempt: u32,
        timed_out: bool,
        now: Duration,
    ) {
        if timed_out {
            let current = self
                .jobs
                .get(&job)
                .and_then(|j| j.attempt.as_ref())
                .is_some_and(|a| a.number == attempt);
            if current {
                self.attempt_failed(job, AttemptOutcome::TimedOut, None, now);
            }
            return;
        }
        if !self.config.faults.has(Fault::TlsFailureIsFinal) {
            return self.on_transport_error(job, attempt, now);
        }
        // The bug: a failed handshake ends the request, whatever targets are left.
        let Some(target) = self
            .jobs
            .get(&job)
            .and_then(|j| j.attempt.as_ref())
            .filter(|a| a.number == attempt)
            .map(|a| a.target.clone())
        else {
            return;
        };
        self.report(job, AttemptOutcome::Refused, now);
        self.finish(
            job,
            Outcome::Failed {
                why: format!("the TLS handshake with {} failed", target.addr),
            },
        );
    }

    /// Resolves on until there is a target to try, a query to wait for, or nothing left.
    fn advance(&mut self, id: JobId, now: Duration) {
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        let target = if let Some(target) = job.retry_first.take() {
            // Tried outside the resolution: it does not come again from there.
            job.resolution.exclude(target.key());
            Some(target)
        } else if let Some(target) = job.peeked.take() {
            Some(target)
        } else {
            match job
                .resolution
                .next(&self.cache, &self.dirty, &mut self.rng, now)
            {
                Next::Query { name, rtype } => {
                    self.actions.push_back(job.ask(id, name, rtype));
                    return;
                }
                Next::Target(target) => Some(target),
                Next::Exhausted { why } => {
                    let why = if job.attempts == 0 {
                        why
                    } else {
                        format!("every target failed ({why})")
                    };
                    if job.method == Method::Register {
                        self.registration_failed(now);
                    }
                    self.finish(id, Outcome::Failed { why });
                    return;
                }
            }
        };
        if let Some(target) = target {
            self.begin_attempt(id, target, now);
        }
    }

    fn begin_attempt(&mut self, id: JobId, target: Target, now: Duration) {
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        job.attempts += 1;
        let branch = match &job.first_branch {
            Some(first) if self.config.faults.has(Fault::ReuseBranch) => first.clone(),
            _ => new_branch(&mut self.rng),
        };
        let number = job.attempts;
        job.attempt = Some(Attempt {
            number,
            target: target.clone(),
            branch,
            sent: now,
            request: None,
            tx: None,
            bye: None,
            proceeding_limit: None,
            final_status: None,
        });
        self.actions.push_back(Action::Open {
            job: id,
            attempt: number,
            target,
        });
    }

    fn on_tx_events(
        &mut self,
        id: JobId,
        events: Vec<TxEvent>,
        response: Option<&Message>,
        now: Duration,
    ) {
        // The ACK of a non-2xx final goes out on the attempt's socket first: handling the final
        // closes the attempt (and may open the next one), after which it could not be sent.
        if events.contains(&TxEvent::SendAck) {
            self.send_ack(id, response);
        }
        for event in events {
            match event {
                TxEvent::Retransmit => self.retransmit(id, now),
                TxEvent::Provisional(_) => {
                    if let Some(attempt) = self.jobs.get_mut(&id).and_then(|j| j.attempt.as_mut())
                        && attempt.proceeding_limit.is_none()
                    {
                        attempt.proceeding_limit = Some(now + INVITE_PROCEEDING_LIMIT);
                    }
                }
                TxEvent::SendAck => {} // sent above
                TxEvent::Final(status) => self.on_final(id, status, response, now),
                TxEvent::TimedOut => self.attempt_failed(id, AttemptOutcome::TimedOut, None, now),
                TxEvent::TransportError => {
                    self.attempt_failed(id, AttemptOutcome::Refused, None, now);
                }
                TxEvent::Terminated => {}
            }
        }
    }

    fn retransmit(&mut self, id: JobId, now: Duration) {
        let faults = self.config.faults.clone();
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        if faults.has(Fault::ResolvePerRetransmission) {
            // The bug: every retransmission looks the names up again.
            for (name, rtype) in job.queried.clone() {
                self.actions.push_back(Action::Query {
                    job: id,
                    name,
                    rtype,
                });
            }
        }
        let Some((number, bytes)) = job
            .attempt
            .as_ref()
            .and_then(|a| Some((a.number, a.request.as_ref()?.to_bytes())))
        else {
            return;
        };
        if faults.has(Fault::RetransmitToNextTarget) {
            if job.peeked.is_none() {
                match job
                    .resolution
                    .next(&self.cache, &self.dirty, &mut self.rng, now)
                {
                    Next::Target(next) => job.peeked = Some(next),
                    // The next target's address is not known yet: ask for it (a query the
                    // resolution asked for and never got counts as failed, which would drop
                    // that target altogether), and send elsewhere once it is known.
                    Next::Query { name, rtype } => self.actions.push_back(job.ask(id, name, rtype)),
                    Next::Exhausted { .. } => {}
                }
            }
            if let Some(next) = job.peeked.clone() {
                self.actions.push_back(Action::SendElsewhere {
                    target: next,
                    bytes,
                });
                return;
            }
        }
        self.actions.push_back(Action::Send {
            job: id,
            attempt: number,
            bytes,
        });
    }

    fn send_ack(&mut self, id: JobId, response: Option<&Message>) {
        let Some(attempt) = self.jobs.get(&id).and_then(|j| j.attempt.as_ref()) else {
            return;
        };
        let (Some(request), Some(response)) = (attempt.request.as_ref(), response) else {
            return;
        };
        let ack = build_ack(request, response);
        self.actions.push_back(Action::Send {
            job: id,
            attempt: attempt.number,
            bytes: ack.to_bytes(),
        });
    }

    fn on_final(&mut self, id: JobId, status: u16, response: Option<&Message>, now: Duration) {
        let failover_codes = self.config.failover_codes.clone();
        let no_failover_503 = self.config.faults.has(Fault::NoFailoverOn503);
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        let Some(attempt) = job.attempt.as_mut() else {
            return;
        };
        attempt.final_status = Some(status);
        attempt.proceeding_limit = None;
        let target = attempt.target.clone();
        match status {
            200..=299 => {
                self.report(id, AttemptOutcome::Answered(status), now);
                if job_method(&self.jobs, id) == Some(Method::Invite) {
                    self.ack_and_hang_up(id, response, now);
                } else {
                    if job_method(&self.jobs, id) == Some(Method::Register) {
                        let since = match &self.registrar {
                            Some(old) if old.target.key() == target.key() => old.since,
                            _ => now,
                        };
                        self.registrar = Some(Registrar {
                            target: target.clone(),
                            since,
                        });
                    }
                    self.finish(id, Outcome::Succeeded { status, target });
                }
            }
            401 | 407 if !job.authorize => {
                // Answer the challenge once, at the same target, in a new transaction.
                job.authorize = true;
                job.cseq += 1;
                job.retry_first = Some(target);
                self.report(id, AttemptOutcome::Answered(status), now);
                self.close_attempt(id);
                self.advance(id, now);
            }
            503 if no_failover_503 => {
                self.report(id, AttemptOutcome::Answered(status), now);
                self.finish(id, Outcome::Rejected { status, target });
            }
            _ if status == 503 || failover_codes.contains(&status) => {
                let retry_after = response.and_then(Message::retry_after);
                self.attempt_failed(id, AttemptOutcome::Answered(status), retry_after, now);
            }
            _ => {
                self.report(id, AttemptOutcome::Answered(status), now);
                self.finish(id, Outcome::Rejected { status, target });
            }
        }
    }

    /// After a 2xx to the INVITE: ACK it, then end the call with a BYE.
    fn ack_and_hang_up(&mut self, id: JobId, response: Option<&Message>, now: Duration) {
        let user = self.user.clone();
        let branch = new_branch(&mut self.rng);
        let bye_branch = new_branch(&mut self.rng);
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        let Some(attempt) = job.attempt.as_mut() else {
            return;
        };
        let (Some(request), Some(response)) = (attempt.request.as_ref(), response) else {
            return;
        };
        let local = request
            .top_via()
            .and_then(|v| v.sent_by.parse::<SocketAddr>().ok())
            .unwrap_or(attempt.target.addr);
        let to = response.header("To").unwrap_or_default().to_string();
        let remote_uri = contact_uri(response).unwrap_or_else(|| job.uri.to_string());
        let from = format!("<sip:{user}@{}>;tag={}", host_of(&job.uri), job.from_tag);
        let in_dialog = |method: &str, cseq: u32, branch: &str| {
            let mut message = build_request(
                &RequestSpec {
                    method,
                    uri: &remote_uri,
                    from: &from,
                    to: &to,
                    call_id: &job.call_id,
                    from_tag: &job.from_tag,
                    cseq,
                    contact: None,
                    expires: None,
                    body: None,
                },
                local,
                attempt.target.transport,
                branch,
            );
            // build_request writes its own From/To from the spec; in a dialog they must be
            // exactly the dialog's.
            message.set_header("To", to.clone());
            message
        };
        let ack = in_dialog("ACK", job.cseq, &branch);
        let bye = in_dialog("BYE", job.cseq + 1, &bye_branch);
        let reliable = attempt.target.transport != Transport::Udp;
        let tx = ClientTransaction::new(Kind::NonInvite, reliable, &self.config, now);
        let number = attempt.number;
        let bye_bytes = bye.to_bytes();
        attempt.bye = Some((bye, tx));
        self.actions.push_back(Action::Send {
            job: id,
            attempt: number,
            bytes: ack.to_bytes(),
        });
        self.actions.push_back(Action::Send {
            job: id,
            attempt: number,
            bytes: bye_bytes,
        });
    }

    fn on_bye_events(&mut self, id: JobId, events: Vec<TxEvent>, now: Duration) {
        for event in events {
            match event {
                TxEvent::Retransmit => {
                    if let Some(attempt) = self.jobs.get(&id).and_then(|j| j.attempt.as_ref())
                        && let Some((bye, _)) = &attempt.bye
                    {
                        self.actions.push_back(Action::Send {
                            job: id,
                            attempt: attempt.number,
                            bytes: bye.to_bytes(),
                        });
                    }
                }
                // The call was answered; however the BYE ends, the INVITE succeeded.
                TxEvent::Final(_) | TxEvent::TimedOut | TxEvent::TransportError => {
                    let _ = now;
                    if let Some(attempt) = self.jobs.get(&id).and_then(|j| j.attempt.as_ref()) {
                        let status = attempt.final_status.unwrap_or(200);
                        let target = attempt.target.clone();
                        self.finish(id, Outcome::Succeeded { status, target });
                    }
                }
                _ => {}
            }
        }
    }

    /// An INVITE that got a provisional answer but no final one in time: cancelled, no
    /// failover (F4).
    fn give_up_proceeding(&mut self, id: JobId, now: Duration) {
        let Some(attempt) = self.jobs.get(&id).and_then(|j| j.attempt.as_ref()) else {
            return;
        };
        if let Some(request) = &attempt.request {
            let cancel = super::request::build_cancel(request);
            self.actions.push_back(Action::Send {
                job: id,
                attempt: attempt.number,
                bytes: cancel.to_bytes(),
            });
        }
        self.report(id, AttemptOutcome::TimedOut, now);
        self.finish(
            id,
            Outcome::Failed {
                why: "no final response after a provisional one".into(),
            },
        );
    }

    /// The attempt failed in a way that moves on to the next target.
    fn attempt_failed(
        &mut self,
        id: JobId,
        outcome: AttemptOutcome,
        retry_after: Option<u32>,
        now: Duration,
    ) {
        let Some(target) = self
            .jobs
            .get(&id)
            .and_then(|j| j.attempt.as_ref())
            .map(|a| a.target.clone())
        else {
            return;
        };
        match retry_after {
            // F5: a server that asks for time gets it, whatever the dirty-host setting.
            Some(seconds) if !self.config.faults.has(Fault::NoDirtyHost) => {
                self.dirty
                    .mark_for(target.key(), now, Duration::from_secs(u64::from(seconds)));
            }
            _ => self.dirty.mark(
                target.key(),
                now,
                self.config.dirty_host_ttl,
                &self.config.faults,
            ),
        }
        self.report(id, outcome, now);
        self.close_attempt(id);
        self.advance(id, now);
    }

    fn report(&mut self, id: JobId, outcome: AttemptOutcome, now: Duration) {
        let Some(job) = self.jobs.get(&id) else {
            return;
        };
        let Some(attempt) = job.attempt.as_ref() else {
            return;
        };
        self.actions.push_back(Action::Attempt(AttemptReport {
            job: id,
            method: job.method,
            target: attempt.target.clone(),
            branch: attempt.branch.clone(),
            sent: attempt.sent,
            ended: now,
            outcome,
        }));
    }

    fn close_attempt(&mut self, id: JobId) {
        if let Some(attempt) = self.jobs.get_mut(&id).and_then(|j| j.attempt.take()) {
            self.actions.push_back(Action::Close {
                job: id,
                attempt: attempt.number,
            });
        }
    }

    fn finish(&mut self, id: JobId, outcome: Outcome) {
        self.close_attempt(id);
        self.jobs.remove(&id);
        self.actions.push_back(Action::Done { job: id, outcome });
    }
}

fn job_method(jobs: &BTreeMap<JobId, Job>, id: JobId) -> Option<Method> {
    jobs.get(&id).map(|j| j.method)
}

fn host_of(uri: &SipUri) -> String {
    match &uri.host {
        crate::sip::uri::Host::Name(name) => name.to_ascii().trim_end_matches('.').to_string(),
        crate::sip::uri::Host::Ip(ip) => ip.to_string(),
    }
}

/// The URI of the first Contact of a response (`<sip:…>` or bare).
fn contact_uri(response: &Message) -> Option<String> {
    let contact = response.header("Contact")?;
    let uri = match (contact.find('<'), contact.find('>')) {
        (Some(start), Some(end)) if start < end => &contact[start + 1..end],
        _ => contact.split(';').next()?,
    };
    Some(uri.trim().to_string())
}

/// The request of an attempt, from what the job says.
fn build_for(
    job: &Job,
    target: &Target,
    branch: &str,
    user: &str,
    local: SocketAddr,
    expires: u32,
) -> Message {
    let domain = host_of(&job.uri);
    let aor = format!("sip:{user}@{domain}");
    let (request_uri, to) = match job.method {
        // RFC 3261 §10.2: the registrar's URI, without userinfo; its port and transport stay,
        // as they decided where the request went (RFC 3263 §4 locates the Request-URI).
        Method::Register => (
            SipUri {
                user: None,
                ..job.uri.clone()
            }
            .to_string(),
            format!("<{aor}>"),
        ),
        Method::Invite | Method::Options => (job.uri.to_string(), format!("<{}>", job.uri)),
    };
    let transport = target.transport;
    let contact_host = match local {
        SocketAddr::V4(a) => a.to_string(),
        SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
    };
    let contact = format!("<sip:{user}@{contact_host};transport={transport}>");
    let body = (job.method == Method::Invite).then(|| ("application/sdp", sdp_offer(local)));
    let mut request = build_request(
        &RequestSpec {
            method: job.method.as_str(),
            uri: &request_uri,
            from: &format!("<{aor}>"),
            to: &to,
            call_id: &job.call_id,
            from_tag: &job.from_tag,
            cseq: job.cseq,
            contact: Some(contact),
            expires: (job.method == Method::Register).then_some(expires),
            body,
        },
        local,
        transport,
        branch,
    );
    if job.authorize {
        // The lab's servers take any credentials; a real digest is out of scope here.
        request.set_header(
            "Authorization",
            format!(
                "Digest username=\"{user}\", realm=\"srvlab\", nonce=\"0\", uri=\"{request_uri}\", response=\"00000000000000000000000000000000\""
            ),
        );
    }
    request
}

#[cfg(test)]
#[path = "agent_tests.rs"]
mod tests;
