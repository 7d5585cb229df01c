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
    /// UDP: a transport error right after the attempt's first send; TCP: the connection is
    /// refused.
    Refuse,
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

    fn from_tag(&self) -> &str {
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
                let refused = target.transport == Transport::Tcp
                    && self.behaviour(&target) == Behaviour::Refuse;
                self.attempts.insert((job, attempt), target);
                self.inputs.push_back(if refused {
                    Input::TransportError { job, attempt }
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
            Behaviour::Stall => Vec::new(),
            Behaviour::Refuse => {
                if target.transport == Transport::Udp && self.refused.insert((job, attempt)) {
                    self.inputs
                        .push_back(Input::TransportError { job, attempt });
                }
                Vec::new()
            }
            Behaviour::Reply { status, .. } if method == "BYE" => {
                let _ = status;
                vec![response_to_with_tag(request, 200, "OK", Some(&tag))]
            }
            Behaviour::Reply {
                status,
                retry_after,
            } => {
                let mut response = response_to_with_tag(request, status, reason(status), Some(&tag));
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
            Entry::Done { job: j, outcome, .. } if *j == job => Some(outcome),
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
                    s.from_tag()
                ),
                Entry::Attempt(r) => format!(
                    "{:>12?} job {} attempt {} {} sent {:?}: {:?}",
                    r.ended, r.job, r.branch, r.target, r.sent, r.outcome
                ),
                Entry::Done { at, job, outcome } => format!("{at:>12?} job {job} done: {outcome:?}"),
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
    assert!(
        succeeded_at(sim.outcome(job), other(first)),
        "{trace}"
    );
    let invites = sim.requests(job, Method::Invite);
    let (to_first, to_next): (Vec<&Sent>, Vec<&Sent>) =
        invites.iter().partition(|s| s.to == first);
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
    assert!(
        succeeded_at(sim.outcome(job), other(first)),
        "{trace}"
    );
    let next = sim.attempt_starts(job, Method::Options)
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
