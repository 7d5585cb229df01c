//! The agent on explicit time, without sockets: a small simulator plays the DNS server and
//! scripted SIP servers, feeds the agent their answers at the very instant it acts (no
//! latency), and moves time to the agent's next deadline when nothing else is pending. Tests
//! are named after the CONFORMANCE.md ids they show; each fault they use must make them fail.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use hickory_server::proto::op::Message as DnsMessage;
use hickory_server::proto::rr::{Name, Record, RecordType};
use rstest::rstest;

use super::*;
use crate::model::profile::FailbackMode;
use crate::sip::{Message, response_to_with_tag};
use crate::timeline::Transport;
use crate::ua::dns_cache::answers::{a, answer, name, naptr, nxdomain, srv};
use crate::ua::fault::Faults;

const DOMAIN: &str = "snom.rocks.";
const HOST52: &str = "sipserver52.snom.rocks.";
const HOST114: &str = "sipserver114.snom.rocks.";
const T1: Duration = Duration::from_millis(500);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn s52() -> SocketAddr {
    "127.0.0.52:5060".parse().unwrap()
}

fn s114() -> SocketAddr {
    "127.0.0.114:5060".parse().unwrap()
}

/// The seed example's other server.
fn other(addr: SocketAddr) -> SocketAddr {
    if addr == s52() { s114() } else { s52() }
}

fn uri() -> SipUri {
    SipUri::parse("sip:snom.rocks").unwrap()
}

fn config() -> UaConfig {
    UaConfig::default()
}

fn with_fault(mut config: UaConfig, fault: Fault) -> UaConfig {
    config.faults = Faults::one(fault);
    config
}

/// How a scripted server answers.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Behaviour {
    /// 200 to everything; an INVITE gets 100, 180 and a 200 with a To tag and a Contact.
    Accept,
    /// Never answers.
    Stall,
    /// UDP: a transport error right after the attempt's first send; TCP and TLS: the
    /// connection is refused.
    Refuse,
    /// TLS: the connection opens, the handshake fails.
    BadHandshake,
    /// This final status to every request (200 to a BYE), with Retry-After if given.
    Reply {
        status: u16,
        retry_after: Option<u32>,
    },
    /// 401 to a request without Authorization; with one, like `Accept`.
    Challenge,
}

/// DNS records by (name, type); anything else is NXDOMAIN with the zone's SOA (negative TTL
/// 60 s).
type Zone = HashMap<(Name, RecordType), Vec<Record>>;

/// The seed example: NAPTR 1 60 "s" "SIP+D2U" → _sip._udp.snom.rocks. (SIP+D2T →
/// _sip._tcp for TCP), two SRV 1 50 5060 to sipserver52 and sipserver114, their A records
/// 127.0.0.52 and 127.0.0.114, TTL 300.
fn seed_zone(transport: Transport) -> Zone {
    let (service, srv_name) = match transport {
        Transport::Udp => ("SIP+D2U", "_sip._udp.snom.rocks."),
        Transport::Tcp => ("SIP+D2T", "_sip._tcp.snom.rocks."),
        Transport::Tls => ("SIPS+D2T", "_sips._tcp.snom.rocks."),
    };
    let mut zone = Zone::new();
    zone.insert(
        (name(DOMAIN), RecordType::NAPTR),
        vec![naptr(DOMAIN, 1, 60, "s", service, srv_name)],
    );
    zone.insert(
        (name(srv_name), RecordType::SRV),
        vec![
            srv(srv_name, 300, 1, 50, 5060, HOST52),
            srv(srv_name, 300, 1, 50, 5060, HOST114),
        ],
    );
    zone.insert(
        (name(HOST52), RecordType::A),
        vec![a(HOST52, 300, "127.0.0.52")],
    );
    zone.insert(
        (name(HOST114), RecordType::A),
        vec![a(HOST114, 300, "127.0.0.114")],
    );
    zone
}

/// A message the agent sent, as the simulator read it.
#[derive(Clone, Debug)]
struct Sent {
    at: Duration,
    job: JobId,
    /// `None` for a `SendElsewhere`.
    attempt: Option<u32>,
    to: SocketAddr,
    transport: Transport,
    message: Message,
}

impl Sent {
    fn method(&self) -> &str {
        self.message.method().unwrap_or("?")
    }

    fn branch(&self) -> String {
        self.message
            .top_via()
            .and_then(|v| v.branch().map(str::to_owned))
            .unwrap_or_default()
    }

    fn via_transport(&self) -> String {
        self.message
            .top_via()
            .map(|v| v.transport)
            .unwrap_or_default()
    }

    fn call_id(&self) -> &str {
        self.message.call_id().unwrap_or_default()
    }

    fn caller_tag(&self) -> &str {
        self.message.from_tag().unwrap_or_default()
    }

    fn cseq(&self) -> (u32, String) {
        self.message.cseq().unwrap_or_default()
    }
}

#[derive(Clone, Debug)]
enum Entry {
    Query {
        at: Duration,
        job: JobId,
        name: Name,
        rtype: RecordType,
    },
    Send(Sent),
    Elsewhere(Sent),
    Attempt(AttemptReport),
    Done {
        at: Duration,
        job: JobId,
        outcome: Outcome,
    },
}

/// What the agent is told next.
enum Input {
    Dns {
        job: JobId,
        name: Name,
        rtype: RecordType,
        answer: Box<DnsMessage>,
    },
    Opened {
        job: JobId,
        attempt: u32,
    },
    Message {
        job: JobId,
        attempt: u32,
        bytes: Vec<u8>,
    },
    TransportError {
        job: JobId,
        attempt: u32,
    },
    HandshakeFailed {
        job: JobId,
        attempt: u32,
    },
}

struct Sim {
    agent: Agent,
    now: Duration,
    zone: Zone,
    servers: HashMap<(Transport, SocketAddr), Behaviour>,
    attempts: HashMap<(JobId, u32), Target>,
    closed: HashSet<(JobId, u32)>,
    refused: HashSet<(JobId, u32)>,
    inputs: VecDeque<Input>,
    log: Vec<Entry>,
}

impl Sim {
    /// The seed zone over `transport`, both servers accepting.
    fn new(config: UaConfig, transport: Transport) -> Self {
        let mut sim = Self {
            agent: Agent::new(config, "alice"),
            now: Duration::ZERO,
            zone: seed_zone(transport),
            servers: HashMap::new(),
            attempts: HashMap::new(),
            closed: HashSet::new(),
            refused: HashSet::new(),
            inputs: VecDeque::new(),
            log: Vec::new(),
        };
        sim.server(transport, s52(), Behaviour::Accept);
        sim.server(transport, s114(), Behaviour::Accept);
        sim
    }

    fn udp(config: UaConfig) -> Self {
        Self::new(config, Transport::Udp)
    }

    fn server(&mut self, transport: Transport, addr: SocketAddr, behaviour: Behaviour) {
        self.servers.insert((transport, addr), behaviour);
    }

    /// Moves time forward to `at` (between requests).
    fn at(&mut self, at: Duration) -> &mut Self {
        assert!(at >= self.now, "time runs forward: {at:?} < {:?}", self.now);
        self.now = at;
        self
    }

    /// Starts a request to sip:snom.rocks now and runs until it is done.
    fn request(&mut self, method: Method) -> JobId {
        let job = self.agent.start(method, uri(), self.now);
        self.run(job);
        job
    }

    /// Processes actions and inputs until nothing is pending, then moves time to the agent's
    /// deadline, until `job` is done (or nothing can happen any more, or an hour passed).
    fn run(&mut self, job: JobId) {
        let limit = self.now + secs(3600);
        loop {
            self.drain();
            if self.outcome(job).is_some() {
                return;
            }
            match self.agent.deadline() {
                Some(deadline) if deadline <= limit => {
                    self.now = self.now.max(deadline);
                    self.agent.on_timer(self.now);
                }
                _ => return,
            }
        }
    }

    fn drain(&mut self) {
        loop {
            if let Some(action) = self.agent.poll_action() {
                self.act(action);
            } else if let Some(input) = self.inputs.pop_front() {
                self.feed(input);
            } else {
                return;
            }
        }
    }

    fn feed(&mut self, input: Input) {
        let now = self.now;
        match input {
            Input::Dns {
                job,
                name,
                rtype,
                answer,
            } => self
                .agent
                .on_dns_answer(job, &name, rtype, Some(&answer), now),
            Input::Opened { job, attempt } => {
                let local = SocketAddr::from(([127, 0, 0, 1], 40_000 + attempt as u16));
                self.agent.on_opened(job, attempt, local, now);
            }
            Input::Message {
                job,
                attempt,
                bytes,
            } => self.agent.on_message(job, attempt, &bytes, now),
            Input::TransportError { job, attempt } => {
                self.agent.on_transport_error(job, attempt, now);
            }
            Input::HandshakeFailed { job, attempt } => {
                self.agent.on_handshake_failure(job, attempt, false, now);
            }
        }
    }

    fn act(&mut self, action: Action) {
        let at = self.now;
        match action {
            Action::Query { job, name, rtype } => {
                let answer = match self.zone.get(&(name.clone(), rtype)) {
                    Some(records) => answer(records.clone()),
                    None => nxdomain(DOMAIN, 60, 60),
                };
                self.log.push(Entry::Query {
                    at,
                    job,
                    name: name.clone(),
                    rtype,
                });
                self.inputs.push_back(Input::Dns {
                    job,
                    name,
                    rtype,
                    answer: Box::new(answer),
                });
            }
            Action::Open {
                job,
                attempt,
                target,
            } => {
                // A refused connection, or (TLS) a failed handshake: the attempt never opens.
                let refused = target.transport != Transport::Udp
                    && self.behaviour(&target) == Behaviour::Refuse;
                let bad_handshake = target.transport == Transport::Tls
                    && self.behaviour(&target) == Behaviour::BadHandshake;
                self.attempts.insert((job, attempt), target);
                self.inputs.push_back(if refused {
                    Input::TransportError { job, attempt }
                } else if bad_handshake {
                    Input::HandshakeFailed { job, attempt }
                } else {
                    Input::Opened { job, attempt }
                });
            }
            Action::Send {
                job,
                attempt,
                bytes,
            } => {
                assert!(
                    !self.closed.contains(&(job, attempt)),
                    "job {job} sent on attempt {attempt} after closing it (the message is lost)"
                );
                let target = self
                    .attempts
                    .get(&(job, attempt))
                    .unwrap_or_else(|| panic!("job {job} sent on attempt {attempt}, never opened"))
                    .clone();
                let message = Message::parse(&bytes).expect("the agent sends valid SIP");
                self.log.push(Entry::Send(Sent {
                    at,
                    job,
                    attempt: Some(attempt),
                    to: target.addr,
                    transport: target.transport,
                    message: message.clone(),
                }));
                self.answer(job, attempt, &target, &message);
            }
            Action::SendElsewhere { target, bytes } => {
                let message = Message::parse(&bytes).expect("the agent sends valid SIP");
                self.log.push(Entry::Elsewhere(Sent {
                    at,
                    job: 0,
                    attempt: None,
                    to: target.addr,
                    transport: target.transport,
                    message,
                }));
            }
            Action::Close { job, attempt } => {
                self.closed.insert((job, attempt));
            }
            Action::Attempt(report) => self.log.push(Entry::Attempt(report)),
            Action::Done { job, outcome } => self.log.push(Entry::Done { at, job, outcome }),
        }
    }

    fn behaviour(&self, target: &Target) -> Behaviour {
        self.servers
            .get(&target.key())
            .cloned()
            .unwrap_or(Behaviour::Stall)
    }

    /// The server's answer to `request`, delivered as inputs at the same instant.
    fn answer(&mut self, job: JobId, attempt: u32, target: &Target, request: &Message) {
        let method = request.method().unwrap_or_default();
        if method == "ACK" {
            return;
        }
        let tag = format!("tag-{}", target.addr.ip()).replace('.', "-");
        let responses = match self.behaviour(target) {
            Behaviour::Stall | Behaviour::BadHandshake => Vec::new(),
            Behaviour::Refuse => {
                if target.transport == Transport::Udp && self.refused.insert((job, attempt)) {
                    self.inputs
                        .push_back(Input::TransportError { job, attempt });
                }
                Vec::new()
            }
            Behaviour::Reply { .. } if method == "BYE" => {
                vec![response_to_with_tag(request, 200, "OK", Some(&tag))]
            }
            Behaviour::Reply {
                status,
                retry_after,
            } => {
                let mut response =
                    response_to_with_tag(request, status, reason(status), Some(&tag));
                if let Some(seconds) = retry_after {
                    response.set_header("Retry-After", seconds.to_string());
                }
                vec![response]
            }
            Behaviour::Challenge if request.header("Authorization").is_none() => {
                let mut response = response_to_with_tag(request, 401, reason(401), Some(&tag));
                response.set_header("WWW-Authenticate", "Digest realm=\"srvlab\", nonce=\"0\"");
                vec![response]
            }
            Behaviour::Accept | Behaviour::Challenge => accept(request, target, &tag),
        };
        for response in responses {
            self.inputs.push_back(Input::Message {
                job,
                attempt,
                bytes: response.with_content_length().to_bytes(),
            });
        }
    }

    // --- what the log shows ---

    fn outcome(&self, job: JobId) -> Option<&Outcome> {
        self.log.iter().find_map(|e| match e {
            Entry::Done {
                job: j, outcome, ..
            } if *j == job => Some(outcome),
            _ => None,
        })
    }

    fn done_at(&self, job: JobId) -> Option<Duration> {
        self.log.iter().find_map(|e| match e {
            Entry::Done { job: j, at, .. } if *j == job => Some(*at),
            _ => None,
        })
    }

    fn queries(&self, job: JobId) -> Vec<(Duration, String, RecordType)> {
        self.log
            .iter()
            .filter_map(|e| match e {
                Entry::Query {
                    at,
                    job: j,
                    name,
                    rtype,
                } if *j == job => Some((*at, name.to_ascii(), *rtype)),
                _ => None,
            })
            .collect()
    }

    fn all_queries(&self) -> usize {
        self.log
            .iter()
            .filter(|e| matches!(e, Entry::Query { .. }))
            .count()
    }

    /// Every message sent for `job`, in order.
    fn sends(&self, job: JobId) -> Vec<&Sent> {
        self.log
            .iter()
            .filter_map(|e| match e {
                Entry::Send(sent) if sent.job == job => Some(sent),
                _ => None,
            })
            .collect()
    }

    /// The requests of `job`'s own method (INVITE, OPTIONS, REGISTER), retransmissions too.
    fn requests(&self, job: JobId, method: Method) -> Vec<&Sent> {
        self.sends(job)
            .into_iter()
            .filter(|s| s.method() == method.as_str())
            .collect()
    }

    /// The first request of each attempt of `job`.
    fn attempt_starts(&self, job: JobId, method: Method) -> Vec<&Sent> {
        let mut seen = HashSet::new();
        self.requests(job, method)
            .into_iter()
            .filter(|s| seen.insert(s.attempt))
            .collect()
    }

    fn elsewhere(&self) -> Vec<&Sent> {
        self.log
            .iter()
            .filter_map(|e| match e {
                Entry::Elsewhere(sent) => Some(sent),
                _ => None,
            })
            .collect()
    }

    fn reports(&self, job: JobId) -> Vec<&AttemptReport> {
        self.log
            .iter()
            .filter_map(|e| match e {
                Entry::Attempt(report) if report.job == job => Some(report),
                _ => None,
            })
            .collect()
    }

    /// The log as text, for failure messages.
    fn trace(&self) -> String {
        let mut out = String::new();
        for entry in &self.log {
            let line = match entry {
                Entry::Query {
                    at,
                    job,
                    name,
                    rtype,
                } => format!("{at:>12?} job {job} query {rtype} {name}"),
                Entry::Send(s) | Entry::Elsewhere(s) => format!(
                    "{:>12?} job {} {} {} {} {} {:?} branch={} via={} call-id={} from-tag={}",
                    s.at,
                    s.job,
                    if s.attempt.is_some() {
                        "send"
                    } else {
                        "send-elsewhere"
                    },
                    s.transport,
                    s.to,
                    s.method(),
                    s.cseq(),
                    s.branch(),
                    s.via_transport(),
                    s.call_id(),
                    s.caller_tag()
                ),
                Entry::Attempt(r) => format!(
                    "{:>12?} job {} attempt {} {} sent {:?}: {:?}",
                    r.ended, r.job, r.branch, r.target, r.sent, r.outcome
                ),
                Entry::Done { at, job, outcome } => {
                    format!("{at:>12?} job {job} done: {outcome:?}")
                }
            };
            out.push_str(&line);
            out.push('\n');
        }
        out
    }
}

fn accept(request: &Message, target: &Target, tag: &str) -> Vec<Message> {
    if request.method() != Some("INVITE") {
        return vec![response_to_with_tag(request, 200, "OK", Some(tag))];
    }
    let mut ok = response_to_with_tag(request, 200, "OK", Some(tag));
    ok.set_header("Contact", format!("<sip:bob@{}>", target.addr));
    vec![
        response_to_with_tag(request, 100, "Trying", None),
        response_to_with_tag(request, 180, "Ringing", Some(tag)),
        ok,
    ]
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        401 => "Unauthorized",
        404 => "Not Found",
        480 => "Temporarily Unavailable",
        486 => "Busy Here",
        500 => "Server Internal Error",
        503 => "Service Unavailable",
        _ => "Whatever",
    }
}

/// Where the first request of a fresh agent with `config` goes (the same seed draws the same
/// first target whatever the servers do).
fn first_target(config: &UaConfig, transport: Transport, method: Method) -> SocketAddr {
    let mut sim = Sim::new(config.clone(), transport);
    let job = sim.request(method);
    sim.requests(job, method)
        .first()
        .map(|s| s.to)
        .expect("the probe sent a request")
}

fn succeeded_at(outcome: Option<&Outcome>, addr: SocketAddr) -> bool {
    matches!(outcome, Some(Outcome::Succeeded { target, .. }) if target.addr == addr)
}

// --- F1: timeout ---

#[test]
fn f1_timer_b_moves_on_at_exactly_64_t1_after_retransmissions_at_t1_3t1_7t1() {
    let config = config();
    let first = first_target(&config, Transport::Udp, Method::Invite);
    let mut sim = Sim::udp(config);
    sim.server(Transport::Udp, first, Behaviour::Stall);
    let job = sim.request(Method::Invite);
    let trace = sim.trace();
    assert!(succeeded_at(sim.outcome(job), other(first)), "{trace}");
    let invites = sim.requests(job, Method::Invite);
    let (to_first, to_next): (Vec<&Sent>, Vec<&Sent>) = invites.iter().partition(|s| s.to == first);
    let start = to_first[0].at;
    // T5: retransmissions go to the same address and transport, in the same transaction.
    for sent in &to_first {
        assert_eq!(
            (sent.transport, sent.branch()),
            (Transport::Udp, to_first[0].branch()),
            "{trace}"
        );
    }
    let offsets: Vec<Duration> = to_first.iter().map(|s| s.at - start).collect();
    let expected: Vec<Duration> = [0, 1, 3, 7, 15, 31, 63].iter().map(|k| T1 * *k).collect();
    assert_eq!(offsets, expected, "{trace}");
    assert_eq!(to_next[0].at - start, T1 * 64, "{trace}");
    // Nothing goes to the first target once it is abandoned.
    assert!(
        sim.sends(job)
            .iter()
            .all(|s| s.to == other(first) || s.at < start + T1 * 64),
        "{trace}"
    );
    let reports = sim.reports(job);
    assert_eq!(reports[0].outcome, AttemptOutcome::TimedOut, "{trace}");
    assert_eq!(reports[0].ended - reports[0].sent, T1 * 64, "{trace}");
}

// --- F2: refusal ---

#[rstest]
fn f2_refusal_moves_on_at_once_and_the_fault_waits_for_timer_b(
    #[values(Transport::Udp, Transport::Tcp)] transport: Transport,
    #[values(false, true)] fault: bool,
) {
    let config = if fault {
        with_fault(config(), Fault::WaitTimerBOnRefusal)
    } else {
        config()
    };
    let first = first_target(&config, transport, Method::Options);
    let mut sim = Sim::new(config, transport);
    sim.server(transport, first, Behaviour::Refuse);
    let job = sim.request(Method::Options);
    let trace = sim.trace();
    assert!(succeeded_at(sim.outcome(job), other(first)), "{trace}");
    let next = sim
        .attempt_starts(job, Method::Options)
        .into_iter()
        .find(|s| s.to == other(first))
        .map(|s| s.at)
        .expect("the next target was tried");
    let expected = if fault { T1 * 64 } else { Duration::ZERO };
    assert_eq!(next, expected, "{trace}");
    let reports = sim.reports(job);
    let outcome = if fault {
        AttemptOutcome::TimedOut
    } else {
        AttemptOutcome::Refused
    };
    assert_eq!(reports[0].outcome, outcome, "{trace}");
}

// --- TLS: SIPS+D2T, reliable, failover on a failed connection ---

#[test]
fn tls_targets_get_via_tls_no_retransmissions_and_fail_over_when_refused() {
    let config = UaConfig {
        transports: vec![Transport::Udp, Transport::Tcp, Transport::Tls],
        ..config()
    };
    let first = first_target(&config, Transport::Tls, Method::Options);
    let mut sim = Sim::new(config.clone(), Transport::Tls);
    sim.server(Transport::Tls, first, Behaviour::Refuse);
    let job = sim.request(Method::Options);
    let trace = sim.trace();
    assert!(succeeded_at(sim.outcome(job), other(first)), "{trace}");
    let sent = sim.requests(job, Method::Options);
    assert_eq!(sent.len(), 1, "{trace}");
    assert_eq!(sent[0].at, Duration::ZERO, "moved on at once: {trace}");
    assert_eq!(sent[0].transport, Transport::Tls, "{trace}");
    assert_eq!(
        sent[0].message.top_via().map(|v| v.transport.clone()),
        Some("TLS".to_owned()),
        "{trace}"
    );

    // A silent TLS server: one copy (TLS is reliable), given up at Timer B.
    let mut sim = Sim::new(config, Transport::Tls);
    sim.server(Transport::Tls, first, Behaviour::Stall);
    let job = sim.request(Method::Options);
    let trace = sim.trace();
    let to_first: Vec<&Sent> = sim
        .requests(job, Method::Options)
        .into_iter()
        .filter(|s| s.to == first)
        .collect();
    assert_eq!(to_first.len(), 1, "no retransmission over TLS: {trace}");
    assert!(succeeded_at(sim.outcome(job), other(first)), "{trace}");
}

/// A failed TLS handshake is a transport error: the next target at once; the fault gives the
/// request up there.
#[rstest]
#[case::clean(false)]
#[case::tls_failure_is_final(true)]
fn a_failed_tls_handshake_moves_on_at_once_unless_the_fault_ends_the_request(#[case] fault: bool) {
    let config = UaConfig {
        transports: vec![Transport::Udp, Transport::Tcp, Transport::Tls],
        ..config()
    };
    let config = if fault {
        with_fault(config, Fault::TlsFailureIsFinal)
    } else {
        config
    };
    let first = first_target(&config, Transport::Tls, Method::Options);
    let mut sim = Sim::new(config, Transport::Tls);
    sim.server(Transport::Tls, first, Behaviour::BadHandshake);
    let job = sim.request(Method::Options);
    let trace = sim.trace();
    let reports = sim.reports(job);
    assert_eq!(reports[0].outcome, AttemptOutcome::Refused, "{trace}");
    if fault {
        assert!(
            matches!(sim.outcome(job), Some(Outcome::Failed { why }) if why.contains("TLS handshake")),
            "{trace}"
        );
        assert!(sim.requests(job, Method::Options).is_empty(), "{trace}");
    } else {
        assert!(succeeded_at(sim.outcome(job), other(first)), "{trace}");
        assert_eq!(
            sim.requests(job, Method::Options)[0].at,
            Duration::ZERO,
            "{trace}"
        );
    }
}

// --- F3/F4: failover responses and the others ---

/// The INVITE attempts of `job` and the ACK of the first one's final response.
fn ack_of_first_attempt(sim: &Sim, job: JobId) -> (&Sent, Option<&Sent>) {
    let invite = sim.attempt_starts(job, Method::Invite)[0];
    let ack = sim
        .sends(job)
        .into_iter()
        .find(|s| s.method() == "ACK" && s.attempt == invite.attempt);
    (invite, ack)
}

#[rstest]
#[case::service_unavailable(503, vec![])]
#[case::profile_code(480, vec![480])]
fn f3_a_failover_response_is_acked_and_the_next_target_gets_a_new_request(
    #[case] status: u16,
    #[case] failover_codes: Vec<u16>,
) {
    let config = UaConfig {
        failover_codes,
        ..config()
    };
    let first = first_target(&config, Transport::Udp, Method::Invite);
    let mut sim = Sim::udp(config);
    sim.server(
        Transport::Udp,
        first,
        Behaviour::Reply {
            status,
            retry_after: None,
        },
    );
    let job = sim.request(Method::Invite);
    let trace = sim.trace();
    assert!(succeeded_at(sim.outcome(job), other(first)), "{trace}");
    let (invite, ack) = ack_of_first_attempt(&sim, job);
    let ack = ack.unwrap_or_else(|| panic!("the {status} is not ACKed\n{trace}"));
    assert_eq!(invite.to, first, "{trace}");
    // §17.1.1.3: the ACK belongs to the INVITE transaction, and goes where it went (T5).
    assert_eq!(
        (ack.to, ack.transport, ack.branch(), ack.cseq().0),
        (
            invite.to,
            invite.transport,
            invite.branch(),
            invite.cseq().0
        ),
        "{trace}"
    );
    let starts = sim.attempt_starts(job, Method::Invite);
    assert_eq!(starts.len(), 2, "{trace}");
    assert_eq!(starts[1].to, other(first), "{trace}");
    assert_ne!(starts[1].branch(), invite.branch(), "{trace}");
    assert_eq!(starts[1].at, invite.at, "{trace}");
    assert_eq!(
        sim.reports(job)[0].outcome,
        AttemptOutcome::Answered(status),
        "{trace}"
    );
}

#[test]
fn f3_fault_no_failover_on_503_gives_up() {
    let config = with_fault(config(), Fault::NoFailoverOn503);
    let first = first_target(&config, Transport::Udp, Method::Invite);
    let mut sim = Sim::udp(config);
    sim.server(
        Transport::Udp,
        first,
        Behaviour::Reply {
            status: 503,
            retry_after: None,
        },
    );
    let job = sim.request(Method::Invite);
    let trace = sim.trace();
    assert!(
        matches!(sim.outcome(job), Some(Outcome::Rejected { status: 503, target }) if target.addr == first),
        "{trace}"
    );
    assert!(sim.sends(job).iter().all(|s| s.to == first), "{trace}");
}

#[rstest]
fn f4_other_final_responses_do_not_fail_over(
    #[values(404, 480, 486, 500)] status: u16,
    #[values(Method::Invite, Method::Options)] method: Method,
) {
    let config = config();
    let first = first_target(&config, Transport::Udp, method);
    let mut sim = Sim::udp(config);
    sim.server(
        Transport::Udp,
        first,
        Behaviour::Reply {
            status,
            retry_after: None,
        },
    );
    let job = sim.request(method);
    let trace = sim.trace();
    assert!(
        matches!(sim.outcome(job), Some(Outcome::Rejected { status: s, target }) if *s == status && target.addr == first),
        "{trace}"
    );
    assert!(sim.sends(job).iter().all(|s| s.to == first), "{trace}");
    assert_eq!(sim.attempt_starts(job, method).len(), 1, "{trace}");
    if method == Method::Invite {
        let (invite, ack) = ack_of_first_attempt(&sim, job);
        let ack = ack.unwrap_or_else(|| panic!("the {status} is not ACKed\n{trace}"));
        assert_eq!(
            (ack.to, ack.branch()),
            (invite.to, invite.branch()),
            "{trace}"
        );
    }
}

// --- F5: Retry-After ---

#[test]
fn f5_retry_after_keeps_requests_away_for_its_duration() {
    let config = config();
    let first = first_target(&config, Transport::Udp, Method::Options);
    let mut sim = Sim::udp(config);
    sim.server(
        Transport::Udp,
        first,
        Behaviour::Reply {
            status: 503,
            retry_after: Some(10),
        },
    );
    let job = sim.request(Method::Options);
    assert_eq!(sim.requests(job, Method::Options)[0].to, first);
    let mut later = Vec::new();
    for t in 1..=9 {
        let job = sim.at(secs(t)).request(Method::Options);
        assert!(
            sim.sends(job).iter().all(|s| s.to != first),
            "a request at {t} s went to the server that asked for 10 s\n{}",
            sim.trace()
        );
    }
    for t in 10..40 {
        later.push(sim.at(secs(t)).request(Method::Options));
    }
    assert!(
        later
            .iter()
            .any(|job| sim.sends(*job).iter().any(|s| s.to == first)),
        "the server is never tried again after its Retry-After\n{}",
        sim.trace()
    );
}

// --- T6: a new transaction per target ---

#[rstest]
fn t6_each_target_gets_a_new_branch_in_the_same_call(
    #[values(Transport::Udp, Transport::Tcp)] transport: Transport,
    #[values(false, true)] fault: bool,
) {
    let config = if fault {
        with_fault(config(), Fault::ReuseBranch)
    } else {
        config()
    };
    let first = first_target(&config, transport, Method::Invite);
    let mut sim = Sim::new(config, transport);
    sim.server(
        transport,
        first,
        Behaviour::Reply {
            status: 503,
            retry_after: None,
        },
    );
    let job = sim.request(Method::Invite);
    let trace = sim.trace();
    let starts = sim.attempt_starts(job, Method::Invite);
    assert_eq!(starts.len(), 2, "{trace}");
    let (a, b) = (starts[0], starts[1]);
    assert_eq!(a.branch() == b.branch(), fault, "{trace}");
    assert_eq!(
        (a.call_id(), a.caller_tag()),
        (b.call_id(), b.caller_tag()),
        "{trace}"
    );
    let via = match transport {
        Transport::Udp => "UDP",
        Transport::Tcp => "TCP",
        Transport::Tls => "TLS",
    };
    for sent in [a, b] {
        assert_eq!(sent.transport, transport, "{trace}");
        assert_eq!(sent.via_transport(), via, "{trace}");
    }
}

// --- D1/D2: dirty hosts ---

/// Requests every second from 0 s, sipserver52 refusing and sipserver114 accepting; returns
/// when the first refusal happened and, per later request, its time and whether it went to
/// sipserver52. Runs until `until`.
fn dirty_host_run(config: UaConfig, until: u64) -> (Sim, u64, Vec<(u64, bool)>) {
    let mut sim = Sim::udp(config);
    sim.server(Transport::Udp, s52(), Behaviour::Refuse);
    let mut refused_at = None;
    let mut later = Vec::new();
    for t in 0..until {
        let job = sim.at(secs(t)).request(Method::Options);
        let to52 = sim.sends(job).iter().any(|s| s.to == s52());
        assert!(succeeded_at(sim.outcome(job), s114()), "{}", sim.trace());
        match refused_at {
            None if to52 => refused_at = Some(t),
            None => {}
            Some(_) => later.push((t, to52)),
        }
    }
    let refused_at = refused_at.expect("sipserver52 was tried at least once");
    (sim, refused_at, later)
}

#[test]
fn d1_d2_a_failed_target_is_avoided_for_the_ttl_then_chosen_again() {
    let config = UaConfig {
        dirty_host_ttl: Some(secs(30)),
        ..config()
    };
    let (sim, refused_at, later) = dirty_host_run(config, 120);
    let within: Vec<u64> = later
        .iter()
        .filter(|(t, to52)| *to52 && *t < refused_at + 30)
        .map(|(t, _)| *t)
        .collect();
    assert!(
        within.is_empty(),
        "refused at {refused_at} s, tried again at {within:?} s\n{}",
        sim.trace()
    );
    assert!(
        later.iter().any(|(t, to52)| *to52 && *t >= refused_at + 30),
        "never tried again after the TTL\n{}",
        sim.trace()
    );
}

#[test]
fn d1_fault_no_dirty_host_tries_it_again_within_the_ttl() {
    let config = UaConfig {
        dirty_host_ttl: Some(secs(30)),
        ..with_fault(config(), Fault::NoDirtyHost)
    };
    let (sim, refused_at, later) = dirty_host_run(config, 40);
    assert!(
        later.iter().any(|(t, to52)| *to52 && *t < refused_at + 30),
        "{}",
        sim.trace()
    );
}

#[test]
fn d2_fault_dirty_host_forever_never_tries_it_again() {
    let config = UaConfig {
        dirty_host_ttl: Some(secs(30)),
        ..with_fault(config(), Fault::DirtyHostForever)
    };
    let (sim, refused_at, later) = dirty_host_run(config, 150);
    assert!(later.len() >= 100, "ran well past the TTL");
    assert!(
        later.iter().all(|(_, to52)| !to52),
        "refused at {refused_at} s, tried again\n{}",
        sim.trace()
    );
}

// --- C1: one resolution per transaction ---

/// Both servers behave alike. The queries made while the first attempt ran (up to, not at,
/// its end, when the failover's own query is made; all of them if it ended at once), and the
/// requests sent to its target.
fn first_attempt_queries(config: UaConfig, behaviour: Behaviour) -> (Sim, usize, usize) {
    let mut sim = Sim::udp(config);
    sim.server(Transport::Udp, s52(), behaviour.clone());
    sim.server(Transport::Udp, s114(), behaviour);
    let job = sim.request(Method::Invite);
    let first = sim.reports(job)[0].clone();
    let queries = sim
        .queries(job)
        .into_iter()
        .filter(|(at, _, _)| *at < first.ended || first.ended == first.sent)
        .count();
    let sends = sim
        .requests(job, Method::Invite)
        .iter()
        .filter(|s| s.to == first.target.addr)
        .count();
    (sim, queries, sends)
}

#[rstest]
fn c1_one_resolution_per_transaction_not_per_retransmission(#[values(false, true)] fault: bool) {
    let config = if fault {
        with_fault(config(), Fault::ResolvePerRetransmission)
    } else {
        config()
    };
    let (_, answered, _) = first_attempt_queries(config.clone(), Behaviour::Accept);
    let (sim, stalled, sends) = first_attempt_queries(config, Behaviour::Stall);
    assert_eq!(answered, 3, "NAPTR, SRV, A");
    assert_eq!(
        sends,
        7,
        "the INVITE and 6 retransmissions\n{}",
        sim.trace()
    );
    assert_eq!(stalled == answered, !fault, "{}", sim.trace());
}

// --- C2/C3: the DNS cache ---

/// A request at each of `times` (seconds); the first target of the first one refuses, so
/// both A records are looked up at 0 s. The queries of each request.
fn cache_run(config: UaConfig, times: &[u64]) -> (Sim, Vec<Vec<(String, RecordType)>>) {
    let first = first_target(&config, Transport::Udp, Method::Options);
    let mut sim = Sim::udp(config);
    sim.server(Transport::Udp, first, Behaviour::Refuse);
    let mut queries = Vec::new();
    for &t in times {
        let job = sim.at(secs(t)).request(Method::Options);
        assert!(
            succeeded_at(sim.outcome(job), other(first)),
            "{}",
            sim.trace()
        );
        let asked: Vec<(String, RecordType)> = sim
            .queries(job)
            .into_iter()
            .map(|(_, name, rtype)| (name, rtype))
            .collect();
        queries.push(asked);
    }
    let total: usize = queries.iter().map(Vec::len).sum();
    assert_eq!(sim.all_queries(), total);
    (sim, queries)
}

/// Requests at 0, 10, 100, 299 s (within the TTL of 300 s) and 301 s (after it); whether
/// each one resolves afresh.
#[rstest]
#[case::cached(config(), [true, false, false, false, true])]
#[case::cache_off(UaConfig { dns_cache: false, ..config() }, [true; 5])]
#[case::fault_ignore_dns_ttl(with_fault(config(), Fault::IgnoreDnsTtl), [true, false, false, false, false])]
fn c2_cached_answers_are_used_for_their_ttl_only(
    #[case] config: UaConfig,
    #[case] resolves: [bool; 5],
) {
    let (sim, queries) = cache_run(config, &[0, 10, 100, 299, 301]);
    let trace = sim.trace();
    for (asked, resolves) in queries.iter().zip(resolves) {
        if resolves {
            // NAPTR, SRV, the A of the target tried first (and of the other one, after a
            // refusal).
            assert_eq!(
                asked.first(),
                Some(&(DOMAIN.to_owned(), RecordType::NAPTR)),
                "{trace}"
            );
            assert!((3..=4).contains(&asked.len()), "{trace}");
        } else {
            assert_eq!(asked, &[], "{trace}");
        }
    }
    assert_eq!(queries[0].len(), 4, "both A records at 0 s\n{trace}");
}

// --- faults of timing and destination ---

#[test]
fn t5_fault_retransmit_to_next_target_sends_retransmissions_elsewhere() {
    for fault in [false, true] {
        let config = if fault {
            with_fault(config(), Fault::RetransmitToNextTarget)
        } else {
            config()
        };
        let first = first_target(&config, Transport::Udp, Method::Invite);
        let mut sim = Sim::udp(config);
        sim.server(Transport::Udp, first, Behaviour::Stall);
        let job = sim.request(Method::Invite);
        let trace = sim.trace();
        let to_first = sim
            .requests(job, Method::Invite)
            .iter()
            .filter(|s| s.to == first)
            .count();
        let elsewhere = sim.elsewhere();
        if fault {
            assert!(!elsewhere.is_empty(), "{trace}");
            assert!(elsewhere.iter().all(|s| s.to != first), "{trace}");
            assert!(to_first < 7, "{trace}");
        } else {
            assert!(elsewhere.is_empty(), "{trace}");
            assert_eq!(to_first, 7, "{trace}");
        }
    }
}

#[rstest]
#[case::timer_b(false, ms(1280))]
#[case::fault_timer_b_fixed_32s(true, secs(32))]
fn t1_timer_b_is_64_t1_and_the_fault_makes_it_32_s(
    #[case] fault: bool,
    #[case] failover: Duration,
) {
    let config = UaConfig {
        t1: ms(20),
        ..if fault {
            with_fault(config(), Fault::TimerBFixed32s)
        } else {
            config()
        }
    };
    let first = first_target(&config, Transport::Udp, Method::Invite);
    let mut sim = Sim::udp(config);
    sim.server(Transport::Udp, first, Behaviour::Stall);
    let job = sim.request(Method::Invite);
    let trace = sim.trace();
    let starts = sim.attempt_starts(job, Method::Invite);
    assert_eq!(starts.len(), 2, "{trace}");
    assert_eq!(starts[1].at - starts[0].at, failover, "{trace}");
}

// --- the requests themselves ---

#[rstest]
fn a_401_is_answered_once_at_the_same_target(
    #[values(Method::Invite, Method::Register)] method: Method,
) {
    let config = config();
    let first = first_target(&config, Transport::Udp, method);
    let mut sim = Sim::udp(config);
    sim.server(Transport::Udp, first, Behaviour::Challenge);
    let job = sim.request(method);
    let trace = sim.trace();
    assert!(succeeded_at(sim.outcome(job), first), "{trace}");
    let starts = sim.attempt_starts(job, method);
    assert_eq!(starts.len(), 2, "{trace}");
    let (a, b) = (starts[0], starts[1]);
    assert_eq!((a.to, b.to), (first, first), "{trace}");
    assert!(a.message.header("Authorization").is_none(), "{trace}");
    assert!(b.message.header("Authorization").is_some(), "{trace}");
    assert_eq!(b.cseq().0, a.cseq().0 + 1, "{trace}");
    assert_ne!(a.branch(), b.branch(), "{trace}");
    assert_eq!(
        (a.call_id(), a.caller_tag()),
        (b.call_id(), b.caller_tag()),
        "{trace}"
    );
    if method == Method::Invite {
        let (_, ack) = ack_of_first_attempt(&sim, job);
        let ack = ack.unwrap_or_else(|| panic!("the 401 is not ACKed\n{trace}"));
        assert_eq!(ack.branch(), a.branch(), "{trace}");
    }
}

#[rstest]
fn d4_d6_invites_follow_the_registrar_when_configured(#[values(false, true)] follow: bool) {
    let config = UaConfig {
        follow_registrar: follow,
        ..config()
    };
    let mut sim = Sim::udp(config);
    let register = sim.request(Method::Register);
    assert!(sim.outcome(register).is_some_and(Outcome::is_success));
    let registrar = sim.requests(register, Method::Register)[0].to;
    let firsts: Vec<SocketAddr> = (1..=12)
        .map(|t| {
            let job = sim.at(secs(t)).request(Method::Invite);
            sim.requests(job, Method::Invite)[0].to
        })
        .collect();
    assert_eq!(
        firsts.iter().all(|to| *to == registrar),
        follow,
        "registrar {registrar}, INVITEs went first to {firsts:?}"
    );
}

#[test]
fn an_answered_invite_is_acked_and_hung_up_at_the_same_address() {
    let mut sim = Sim::udp(config());
    let job = sim.request(Method::Invite);
    let trace = sim.trace();
    let sends = sim.sends(job);
    let methods: Vec<&str> = sends.iter().map(|s| s.method()).collect();
    assert_eq!(methods, ["INVITE", "ACK", "BYE"], "{trace}");
    let (invite, ack, bye) = (sends[0], sends[1], sends[2]);
    assert!(
        matches!(sim.outcome(job), Some(Outcome::Succeeded { status: 200, target }) if target.addr == invite.to),
        "{trace}"
    );
    for sent in [ack, bye] {
        assert_eq!(
            (sent.to, sent.transport),
            (invite.to, invite.transport),
            "{trace}"
        );
        assert_eq!(
            (sent.call_id(), sent.caller_tag()),
            (invite.call_id(), invite.caller_tag())
        );
        assert_ne!(sent.branch(), invite.branch(), "{trace}");
        // The dialog's remote tag and target, from the 200.
        let tag = format!("tag-{}", invite.to.ip()).replace('.', "-");
        assert_eq!(sent.message.to_tag(), Some(tag.as_str()), "{trace}");
        assert_eq!(
            sent.message.start.to_string(),
            format!("{} sip:bob@{} SIP/2.0", sent.method(), invite.to),
            "{trace}"
        );
    }
    assert_ne!(ack.branch(), bye.branch(), "{trace}");
    assert_eq!(ack.cseq(), (invite.cseq().0, "ACK".to_owned()), "{trace}");
    assert_eq!(
        bye.cseq(),
        (invite.cseq().0 + 1, "BYE".to_owned()),
        "{trace}"
    );
}

#[test]
fn l12_everything_fails_after_two_timer_bs_without_the_domains_a_record() {
    let mut sim = Sim::udp(config());
    sim.zone.insert(
        (name(DOMAIN), RecordType::A),
        vec![a(DOMAIN, 300, "127.0.0.99")],
    );
    let domain = "127.0.0.99:5060".parse().unwrap();
    sim.server(Transport::Udp, domain, Behaviour::Accept);
    sim.server(Transport::Udp, s52(), Behaviour::Stall);
    sim.server(Transport::Udp, s114(), Behaviour::Stall);
    let job = sim.request(Method::Invite);
    let trace = sim.trace();
    assert!(
        matches!(sim.outcome(job), Some(Outcome::Failed { .. })),
        "{trace}"
    );
    assert_eq!(sim.done_at(job), Some(T1 * 128), "{trace}");
    let starts = sim.attempt_starts(job, Method::Invite);
    let mut tried: Vec<SocketAddr> = starts.iter().map(|s| s.to).collect();
    tried.sort();
    let mut both = vec![s52(), s114()];
    both.sort();
    assert_eq!(tried, both, "{trace}");
    assert!(sim.sends(job).iter().all(|s| s.to != domain), "{trace}");
    assert!(
        sim.queries(job)
            .iter()
            .all(|(_, n, t)| !(n == DOMAIN && *t == RecordType::A)),
        "{trace}"
    );
}

#[rstest]
fn a_register_names_the_registrar_with_its_port_and_transport(
    #[values(
        ("sip:alice@snom.rocks", "sip:snom.rocks"),
        ("sip:alice@snom.rocks:5070;transport=tcp", "sip:snom.rocks:5070;transport=tcp"),
        ("sip:alice@127.0.0.52", "sip:127.0.0.52")
    )]
    aor_and_request_uri: (&str, &str),
) {
    let (aor, expected) = aor_and_request_uri;
    let mut sim = Sim::udp(config());
    sim.zone.insert(
        (name(DOMAIN), RecordType::A),
        vec![a(DOMAIN, 300, "127.0.0.52")],
    );
    sim.server(
        Transport::Tcp,
        "127.0.0.52:5070".parse().unwrap(),
        Behaviour::Accept,
    );
    let job = sim
        .agent
        .start(Method::Register, SipUri::parse(aor).unwrap(), sim.now);
    sim.run(job);
    let trace = sim.trace();
    assert!(sim.outcome(job).is_some_and(Outcome::is_success), "{trace}");
    let first = sim.requests(job, Method::Register)[0];
    let crate::sip::StartLine::Request { uri, .. } = &first.message.start else {
        panic!("not a request: {trace}");
    };
    assert_eq!(uri, expected, "{trace}");
}

// --- T4: a configured early failover ---

#[rstest]
#[case::early(false, ms(300))]
#[case::fault_ignores_it(true, ms(1280))]
fn t4_a_configured_early_failover_moves_on_before_timer_b(
    #[values(Method::Invite, Method::Register)] method: Method,
    #[case] fault: bool,
    #[case] failover: Duration,
) {
    let config = UaConfig {
        t1: ms(20),
        failover_after: Some(ms(300)),
        ..if fault {
            with_fault(config(), Fault::IgnoreFailoverAfter)
        } else {
            config()
        }
    };
    let first = first_target(&config, Transport::Udp, method);
    let mut sim = Sim::udp(config);
    sim.server(Transport::Udp, first, Behaviour::Stall);
    let job = sim.request(method);
    let trace = sim.trace();
    assert!(succeeded_at(sim.outcome(job), other(first)), "{trace}");
    let starts = sim.attempt_starts(job, method);
    assert_eq!(starts[1].at - starts[0].at, failover, "{trace}");
    assert_eq!(sim.reports(job)[0].outcome, AttemptOutcome::TimedOut);
}

// --- D4, D6: where requests go once registered ---

/// The seed zone with both servers accepting: a registration at 0 s, then one request of
/// `method` every second from 1 s to `count` s; where each request went first.
fn after_registering(
    config: UaConfig,
    method: Method,
    count: u64,
) -> (Sim, SocketAddr, Vec<SocketAddr>) {
    let mut sim = Sim::udp(config);
    let register = sim.request(Method::Register);
    assert!(sim.outcome(register).is_some_and(Outcome::is_success));
    let registrar = sim.requests(register, Method::Register)[0].to;
    let firsts = (1..=count)
        .map(|t| {
            let job = sim.at(secs(t)).request(method);
            sim.requests(job, method)[0].to
        })
        .collect();
    (sim, registrar, firsts)
}

#[rstest]
fn d4_refreshes_go_to_the_registrar_and_the_fault_draws_anew(#[values(false, true)] fault: bool) {
    let config = if fault {
        with_fault(config(), Fault::RefreshRedraws)
    } else {
        config()
    };
    let (sim, registrar, firsts) = after_registering(config, Method::Register, 12);
    // 12 fair draws all landing on the registrar by chance: 1 in 4096.
    assert_eq!(
        firsts.iter().all(|to| *to == registrar),
        !fault,
        "registrar {registrar}, refreshes went to {firsts:?}\n{}",
        sim.trace()
    );
}

#[test]
fn d4_a_refresh_whose_registrar_fails_moves_on_without_trying_it_twice() {
    let mut sim = Sim::udp(UaConfig {
        t1: ms(20),
        ..config()
    });
    let register = sim.request(Method::Register);
    let registrar = sim.requests(register, Method::Register)[0].to;
    sim.server(Transport::Udp, registrar, Behaviour::Stall);
    let refresh = sim.at(secs(10)).request(Method::Register);
    let trace = sim.trace();
    let tried: Vec<SocketAddr> = sim
        .attempt_starts(refresh, Method::Register)
        .iter()
        .map(|s| s.to)
        .collect();
    assert_eq!(tried, vec![registrar, other(registrar)], "{trace}");
    assert!(
        succeeded_at(sim.outcome(refresh), other(registrar)),
        "{trace}"
    );
    // The new registrar is where the next refresh goes.
    let next = sim.at(secs(20)).request(Method::Register);
    assert_eq!(sim.requests(next, Method::Register)[0].to, other(registrar));
}

#[test]
fn d4_a_dirty_registrar_is_not_stuck_to() {
    let config = UaConfig {
        dirty_host_ttl: Some(secs(30)),
        t1: ms(20),
        ..config()
    };
    let mut sim = Sim::udp(config);
    let register = sim.request(Method::Register);
    let registrar = sim.requests(register, Method::Register)[0].to;
    // A call finds the registrar refusing: it is dirty for 30 s.
    sim.server(Transport::Udp, registrar, Behaviour::Refuse);
    let mut t = 1;
    loop {
        let call = sim.at(secs(t)).request(Method::Invite);
        if sim.sends(call).iter().any(|s| s.to == registrar) {
            break;
        }
        t += 1;
        assert!(t < 60, "no call ever drew the registrar\n{}", sim.trace());
    }
    sim.server(Transport::Udp, registrar, Behaviour::Accept);
    let refresh = sim.at(secs(t + 1)).request(Method::Register);
    assert_eq!(
        sim.requests(refresh, Method::Register)[0].to,
        other(registrar),
        "{}",
        sim.trace()
    );
}

/// Where refreshes and calls go, per failback mode: (refreshes stick, calls stick) within the
/// mode's window.
#[rstest]
#[case::unset(None, true, false)]
#[case::new_requests(Some(FailbackMode::NewRequests), false, false)]
#[case::registration(Some(FailbackMode::Registration), false, true)]
#[case::dns_ttl(Some(FailbackMode::DnsTtl), true, true)]
#[case::duration(Some(FailbackMode::Duration), true, true)]
fn d4_d6_failback_modes_decide_what_stays_with_the_registrar(
    #[case] mode: Option<FailbackMode>,
    #[case] refreshes_stick: bool,
    #[case] calls_stick: bool,
) {
    let config = UaConfig {
        failback_mode: mode,
        ..config()
    };
    for (method, sticks) in [
        (Method::Register, refreshes_stick),
        (Method::Invite, calls_stick),
        (Method::Options, calls_stick),
    ] {
        let (sim, registrar, firsts) = after_registering(config.clone(), method, 12);
        assert_eq!(
            firsts.iter().all(|to| *to == registrar),
            sticks,
            "{mode:?} {method:?}: registrar {registrar}, went to {firsts:?}\n{}",
            sim.trace()
        );
    }
}

#[rstest]
#[case::duration(FailbackMode::Duration)]
#[case::dns_ttl(FailbackMode::DnsTtl)]
fn d4_d6_the_failback_window_ends(#[case] mode: FailbackMode) {
    // The seed zone's records live 300 s; the duration is 300 s too.
    let config = UaConfig {
        failback_mode: Some(mode),
        failback_timeout: Some(secs(300)),
        ..config()
    };
    let mut sim = Sim::udp(config);
    let register = sim.request(Method::Register);
    let registrar = sim.requests(register, Method::Register)[0].to;
    let within: Vec<SocketAddr> = (1..=12)
        .map(|t| {
            let job = sim.at(secs(t)).request(Method::Invite);
            sim.requests(job, Method::Invite)[0].to
        })
        .collect();
    assert!(within.iter().all(|to| *to == registrar), "{within:?}");
    // After the window, requests draw anew; each draw refreshes the cache, so under dns_ttl
    // the registrar is stuck to again for a while: look at the first requests after it.
    let after: Vec<SocketAddr> = (0..12)
        .map(|k| {
            let job = sim.at(secs(301 + 301 * k)).request(Method::Invite);
            sim.requests(job, Method::Invite)[0].to
        })
        .collect();
    assert!(
        after.iter().any(|to| *to != registrar),
        "{mode:?}: registrar {registrar}, after the window {after:?}\n{}",
        sim.trace()
    );
}

// --- D5: the next REGISTER after a registration failed everywhere ---

/// Both servers stall until `recover` is called: a registration at 0 s fails at 2 × Timer F
/// (T1 = 20 ms), the next REGISTER is asked for at once; when it was sent.
fn reregister(config: UaConfig) -> (Sim, Duration, Duration) {
    let mut sim = Sim::udp(UaConfig {
        t1: ms(20),
        retry_after_failed_register: secs(2),
        ..config
    });
    sim.server(Transport::Udp, s52(), Behaviour::Stall);
    sim.server(Transport::Udp, s114(), Behaviour::Stall);
    let failed = sim.request(Method::Register);
    let trace = sim.trace();
    assert!(
        matches!(sim.outcome(failed), Some(Outcome::Failed { .. })),
        "{trace}"
    );
    let failed_at = sim.done_at(failed).unwrap();
    assert_eq!(failed_at, ms(2560), "{trace}");
    sim.server(Transport::Udp, s52(), Behaviour::Accept);
    sim.server(Transport::Udp, s114(), Behaviour::Accept);
    let again = sim.request(Method::Register);
    let sent = sim.requests(again, Method::Register)[0].at;
    assert!(sim.outcome(again).is_some_and(Outcome::is_success));
    (sim, failed_at, sent)
}

#[test]
fn d5_a_failed_registration_is_retried_after_the_retry_time_spread_10_percent() {
    let mut waits = Vec::new();
    for seed in 1..=20 {
        let (sim, failed_at, sent) = reregister(UaConfig { seed, ..config() });
        let wait = sent - failed_at;
        assert!(
            (ms(1800)..=ms(2200)).contains(&wait),
            "seed {seed}: {wait:?}\n{}",
            sim.trace()
        );
        waits.push(wait);
    }
    waits.sort();
    waits.dedup();
    assert!(waits.len() > 10, "the spread is random: {waits:?}");

    // A registration that succeeded holds nothing back.
    let mut sim = Sim::udp(config());
    sim.request(Method::Register);
    let now = sim.now;
    let refresh = sim.request(Method::Register);
    assert_eq!(sim.requests(refresh, Method::Register)[0].at, now);
}

#[test]
fn d5_fault_reregister_at_once() {
    let (sim, failed_at, sent) = reregister(with_fault(config(), Fault::ReregisterAtOnce));
    assert_eq!(sent, failed_at, "{}", sim.trace());
}

#[test]
fn d5_calls_are_not_held_after_a_failed_registration() {
    let (mut sim, _, _) = reregister(config());
    let before = sim.now;
    sim.server(Transport::Udp, s52(), Behaviour::Stall);
    sim.server(Transport::Udp, s114(), Behaviour::Stall);
    let failed = sim.request(Method::Register);
    let failed_at = sim.done_at(failed).unwrap();
    assert!(failed_at > before);
    let call = sim.request(Method::Invite);
    assert_eq!(sim.requests(call, Method::Invite)[0].at, failed_at);
}
