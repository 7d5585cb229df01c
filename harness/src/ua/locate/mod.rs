//! Server location (RFC 3263 §4, RFC 2782, RFC 3403), free of I/O: a [`Resolution`] per
//! request (transaction) says which DNS query it needs next or which target to try next, so
//! the caller can fail over one target at a time. Comments carry the CONFORMANCE.md ids.
//!
//! Policies where the RFCs leave a choice, all recorded in the trace:
//! - L6: without NAPTR, SRV names are queried one at a time in the configured transport order
//!   and the first with records wins.
//! - L5: a NAPTR whose SRV name yields nothing usable gives way to the next NAPTR; when every
//!   NAPTR failed, or none was usable (unsupported services only), the domain is treated as
//!   having no SRV (L7) or no NAPTR (L6) respectively.
//! - D1: dirty targets are put aside, and tried after every clean one (of every priority)
//!   rather than not at all: a resolution whose targets all failed recently still gets its
//!   request out, which keeps calls working and is what the phones we know do.
//! - A target (transport, address, port) is tried at most once per resolution, even when two
//!   SRV records lead to it.
//! - A query is asked at most once per resolution: an answer the caller did not store (a
//!   SERVFAIL passed to `DnsCache::insert`) counts as a failure, so `next` cannot loop.
//! - L13 (RFC 7984, RFC 3263 §4.2): a dual-stack UA looks up a host's AAAA and A in the
//!   configured family order, lazily, and tries every address of one SRV target (both
//!   families) before it draws the next target: "SRV-major" order. An AAAA that came in the
//!   SRV answer's additional section is used without a query, like an A.

mod naptr;
mod srv;
#[cfg(test)]
mod tests;

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_server::proto::rr::{Name, RData, Record, RecordType};

use super::config::UaConfig;
use super::dirty::DirtyHosts;
use super::dns_cache::DnsCache;
use super::fault::{Fault, Faults};
use super::rng::Rng;
use super::target::{SrvOrigin, Target, TargetKey};
use crate::model::profile::AddressFamily;
use crate::sip::uri::{Host, Scheme, SipUri};
use crate::timeline::Transport;

/// What the caller does next.
// A `Target` is handed out once per attempt, by value: boxing it would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Next {
    /// Send this DNS query, store the answer with `DnsCache::insert` (or report a timeout or
    /// SERVFAIL with [`Resolution::on_query_failed`]), then call `next` again.
    Query { name: Name, rtype: RecordType },
    /// Try this target; after a failure, call `next` again for the one after.
    Target(Target),
    /// Nothing (more) to try.
    Exhausted { why: String },
}

impl fmt::Display for Next {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Query { name, rtype } => write!(f, "query {rtype} {name}"),
            Self::Target(target) => write!(f, "target {target}"),
            Self::Exhausted { why } => write!(f, "exhausted: {why}"),
        }
    }
}

/// The server location of one request.
#[derive(Clone, Debug)]
pub struct Resolution {
    faults: Faults,
    scheme: Scheme,
    /// RFC 3263 §4.1's transport when nothing chose one: UDP for sip if enabled.
    default_transport: Transport,
    transports: Vec<Transport>,
    /// Address record types looked up per host, in the configured family order (RFC 3263
    /// §4.2, RFC 7984): A for IPv4, AAAA for IPv6.
    address_types: Vec<RecordType>,
    /// Fault `target-major-skip`: the host whose first address was handed out last.
    last_host: Option<Name>,
    stage: Stage,
    /// Targets found and not yet handed out, in the order to try them.
    ready: VecDeque<Target>,
    /// Dirty targets put aside (D1), handed out only when nothing clean is left.
    deferred: VecDeque<Target>,
    /// Every target ever queued, so none is tried twice.
    seen: HashSet<TargetKey>,
    pending: Option<Pending>,
    failed: Vec<(Name, RecordType)>,
    /// `now` of the first `next`: what arrived since is this resolution's own.
    started: Option<Duration>,
    trace: Vec<String>,
}

/// The query `next` last asked for.
#[derive(Clone, Debug)]
struct Pending {
    name: Name,
    rtype: RecordType,
    asked_at: Duration,
}

/// An SRV name to try, with the transport its targets use.
#[derive(Clone, Debug)]
struct SrvCandidate {
    name: Name,
    transport: Transport,
}

/// The addresses of one host, to be tried on one port and transport.
#[derive(Clone, Debug)]
struct AddressJob {
    host: Name,
    port: u16,
    transport: Transport,
    srv: Option<SrvOrigin>,
    /// Index into `address_types` of the next lookup.
    step: usize,
}

#[derive(Clone, Debug)]
enum Stage {
    /// L4: the domain's NAPTR records.
    Naptr {
        domain: Name,
    },
    /// L5/L6/L3: SRV names tried in turn; the first with records wins. None left: L7's A
    /// lookup on the default port over `fallback`.
    SrvSearch {
        domain: Name,
        candidates: VecDeque<SrvCandidate>,
        fallback: Transport,
    },
    /// L8–L12: targets drawn from the chosen SRV records, a priority group at a time.
    Srv {
        domain: Name,
        groups: VecDeque<Vec<SrvOrigin>>,
        transport: Transport,
        /// The record drawn last, whose addresses are being looked up.
        current: Option<AddressJob>,
    },
    /// L2/L7 (and fault `a-record-fallback`): a host's addresses; then done with `why`.
    Addresses {
        job: AddressJob,
        why: String,
    },
    /// Fault `resolve-numeric-host`: lookups of the address as if it were a domain name,
    /// whose answers are ignored; then the address itself, as L1 wants it.
    NumericLookups {
        lookups: VecDeque<(Name, RecordType)>,
        target: Box<Target>,
    },
    Done {
        why: String,
    },
}

/// What advancing the stage led to.
enum Step {
    Ask(Name, RecordType),
    Continue,
    Finished,
}

/// What looking up an address job led to.
enum JobStep {
    Ask(Name, RecordType),
    More,
    Done,
}

impl Resolution {
    pub fn new(uri: &SipUri, config: &UaConfig) -> Self {
        // RFC 3263 §4.1: a sips URI is reached over TLS only.
        let transports: Vec<Transport> = if uri.scheme == Scheme::Sips {
            config
                .transports
                .iter()
                .copied()
                .filter(|t| *t == Transport::Tls)
                .collect()
        } else {
            config.transports.clone()
        };
        let default_transport = if transports.contains(&Transport::Udp) {
            Some(Transport::Udp)
        } else {
            transports.first().copied()
        };
        let mut resolution = Self {
            faults: config.faults.clone(),
            scheme: uri.scheme,
            default_transport: default_transport.unwrap_or(Transport::Udp),
            transports,
            address_types: address_types(config),
            last_host: None,
            stage: Stage::Done { why: String::new() },
            ready: VecDeque::new(),
            deferred: VecDeque::new(),
            seen: HashSet::new(),
            pending: None,
            failed: Vec::new(),
            started: None,
            trace: Vec::new(),
        };
        resolution.stage = match default_transport {
            Some(_) => resolution.plan(uri),
            None if uri.scheme == Scheme::Sips => resolution
                .give_up("a sips URI needs TLS, which is not enabled in the configuration"),
            None => resolution.give_up("no transport is enabled in the configuration"),
        };
        resolution
    }

    /// What comes next. On `Query`, the caller sends exactly that DNS query, feeds the answer
    /// into the cache with `DnsCache::insert` (or calls `on_query_failed` on timeout/SERVFAIL),
    /// then calls `next` again. On `Target`, the caller tries it; after a failure it calls
    /// `next` again for the one after.
    pub fn next(
        &mut self,
        cache: &DnsCache,
        dirty: &DirtyHosts,
        rng: &mut Rng,
        now: Duration,
    ) -> Next {
        let started = *self.started.get_or_insert(now);
        loop {
            while let Some(target) = self.ready.pop_front() {
                // D1: a target that failed recently waits until every clean one was tried.
                if dirty.is_dirty(target.key(), now) {
                    self.note(format!("D1: {target} is dirty: put aside"));
                    self.deferred.push_back(target);
                    continue;
                }
                if self.faults.has(Fault::TargetMajorSkip)
                    && target.srv.is_some()
                    && target.host.is_some()
                    && target.host == self.last_host
                {
                    self.note(format!(
                        "fault target-major-skip: {target} skipped, its host's first address was tried"
                    ));
                    continue;
                }
                if target.srv.is_some() {
                    self.last_host.clone_from(&target.host);
                }
                self.note(format!("try {target}"));
                return Next::Target(target);
            }
            match self.advance(cache, rng, now, started) {
                Step::Ask(name, rtype) => return Next::Query { name, rtype },
                Step::Continue => {}
                Step::Finished => break,
            }
        }
        if let Some(target) = self.deferred.pop_front() {
            self.note(format!(
                "D1: every clean target was tried: trying dirty {target} anyway"
            ));
            return Next::Target(target);
        }
        let why = match &self.stage {
            Stage::Done { why } => why.clone(),
            _ => "resolution stopped".to_owned(),
        };
        Next::Exhausted { why }
    }

    /// The query (`name`, `rtype`) timed out or failed (SERVFAIL, REFUSED…): taken as no
    /// records of that type, as RFC 3263 moves on.
    pub fn on_query_failed(&mut self, name: &Name, rtype: RecordType) {
        if self
            .pending
            .as_ref()
            .is_some_and(|p| p.rtype == rtype && p.name == *name)
        {
            self.pending = None;
        }
        self.note(format!("query {rtype} {name} failed: taken as no records"));
        self.failed.push((name.clone(), rtype));
    }

    /// `key` was tried outside this resolution (the registrar, the retry after a challenge):
    /// it is not handed out again.
    pub fn exclude(&mut self, key: TargetKey) {
        self.seen.insert(key);
    }

    /// Why the targets came in this order, for reports: e.g. the NAPTR chosen, the SRV order
    /// drawn.
    pub fn trace(&self) -> &[String] {
        &self.trace
    }

    fn note(&mut self, line: String) {
        self.trace.push(line);
    }

    fn give_up(&mut self, why: &str) -> Stage {
        self.note(format!("no target: {why}"));
        Stage::Done {
            why: why.to_owned(),
        }
    }

    /// The first stage, from the URI alone (RFC 3263 §4.1, §4.2).
    fn plan(&mut self, uri: &SipUri) -> Stage {
        let sips = uri.scheme == Scheme::Sips;
        let explicit = match uri.transport.as_deref() {
            None => None,
            Some("udp") if sips => return self.give_up("a sips URI cannot use transport=udp"),
            Some("udp") => Some(Transport::Udp),
            // RFC 3261 §26.2.2: sips with transport=tcp is TLS over TCP.
            Some("tcp") if sips => Some(Transport::Tls),
            Some("tcp") => Some(Transport::Tcp),
            Some("tls") => Some(Transport::Tls),
            Some(other) => return self.give_up(&format!("transport `{other}` is not supported")),
        };
        if let Some(transport) = explicit
            && !self.transports.contains(&transport)
        {
            return self.give_up(&format!(
                "transport {transport} is not enabled in the configuration"
            ));
        }
        let transport = explicit.unwrap_or(self.default_transport);
        let host = match &uri.host {
            Host::Ip(ip) => return self.numeric(*ip, uri.port, explicit),
            Host::Name(host) => host.clone(),
        };
        if let Some(port) = uri.port {
            if self.faults.has(Fault::SrvDespitePort) {
                self.note(format!(
                    "fault srv-despite-port: port {port} ignored, {host} resolved as without it"
                ));
            } else {
                // L2: an explicit port: only address records.
                self.note(format!(
                    "L2: explicit port {port}: address records of {host} only, {transport}"
                ));
                return Stage::Addresses {
                    job: AddressJob::new(host.clone(), port, transport, None),
                    why: format!("every address of {host} was tried"),
                };
            }
        }
        if let Some(transport) = explicit {
            if self.faults.has(Fault::NaptrDespiteTransport) {
                self.note(format!(
                    "fault naptr-despite-transport: transport={transport} ignored, NAPTR first"
                ));
                return Stage::Naptr { domain: host };
            }
            // L3: the transport is chosen: no NAPTR, SRV of that transport only.
            self.note(format!("L3: transport={transport}: no NAPTR"));
            return self.srv_search(host, &[transport], transport);
        }
        if self.faults.has(Fault::SkipNaptr) {
            self.note("fault skip-naptr: NAPTR not queried".to_owned());
            return self.transport_srv_search(host);
        }
        // L4: a bare host name: NAPTR first.
        Stage::Naptr { domain: host }
    }

    /// L1: a numeric host is used as is, without DNS: its port or the scheme's default, the
    /// URI's transport or the default one (UDP for sip).
    fn numeric(&mut self, ip: IpAddr, port: Option<u16>, explicit: Option<Transport>) -> Stage {
        let transport = match explicit {
            None if self.faults.has(Fault::NumericHostDefaultTcp)
                && self.transports.contains(&Transport::Tcp) =>
            {
                self.note("fault numeric-host-default-tcp: TCP without transport=".to_owned());
                Transport::Tcp
            }
            given => given.unwrap_or(self.default_transport),
        };
        let target = Target {
            addr: SocketAddr::new(ip, port.unwrap_or(self.scheme.default_port())),
            transport,
            host: None,
            srv: None,
        };
        if self.faults.has(Fault::ResolveNumericHost) {
            // What a stack that runs RFC 3263 on every host asks: NAPTR, then SRV per
            // transport, of the address written as a name (IPv6 text is no name: nothing).
            let mut lookups = VecDeque::new();
            if let Ok(name) = Name::from_ascii(format!("{ip}.")) {
                lookups.push_back((name.clone(), RecordType::NAPTR));
                for &t in &self.transports {
                    if let Ok(srv) = srv_name(&name, t) {
                        lookups.push_back((srv, RecordType::SRV));
                    }
                }
            }
            self.note(format!(
                "fault resolve-numeric-host: {} lookup(s) of {ip} as a name first",
                lookups.len()
            ));
            return Stage::NumericLookups {
                lookups,
                target: Box::new(target),
            };
        }
        self.note(format!("L1: numeric host: no DNS, {target}"));
        self.push(target);
        Stage::Done {
            why: "the numeric host was the only target".to_owned(),
        }
    }

    /// L6: SRV names of the enabled transports, in the configured order.
    fn transport_srv_search(&mut self, domain: Name) -> Stage {
        let transports = self.transports.clone();
        self.note(format!(
            "L6: SRV for {} in the configured order; the first with records wins",
            transports
                .iter()
                .map(|t| t.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        self.srv_search(domain, &transports, self.default_transport)
    }

    fn srv_search(&mut self, domain: Name, transports: &[Transport], fallback: Transport) -> Stage {
        let mut candidates = VecDeque::new();
        for &transport in transports {
            match srv_name(&domain, transport) {
                Ok(name) => candidates.push_back(SrvCandidate { name, transport }),
                Err(why) => self.note(why),
            }
        }
        Stage::SrvSearch {
            domain,
            candidates,
            fallback,
        }
    }

    fn advance(
        &mut self,
        cache: &DnsCache,
        rng: &mut Rng,
        now: Duration,
        started: Duration,
    ) -> Step {
        let stage = std::mem::replace(&mut self.stage, Stage::Done { why: String::new() });
        let (stage, step) = match stage {
            Stage::Naptr { domain } => {
                match self.fetch(cache, &domain, RecordType::NAPTR, now, started) {
                    None => {
                        let ask = Step::Ask(domain.clone(), RecordType::NAPTR);
                        (Stage::Naptr { domain }, ask)
                    }
                    Some(records) => (self.after_naptr(domain, &records), Step::Continue),
                }
            }
            Stage::SrvSearch {
                domain,
                candidates,
                fallback,
            } => self.search_srv(cache, now, started, domain, candidates, fallback),
            Stage::Srv {
                domain,
                groups,
                transport,
                current: Some(mut job),
            } => {
                if self.faults.has(Fault::TargetMajorSkip)
                    && job.step > 0
                    && self.last_host.as_ref() == Some(&job.host)
                {
                    self.note(format!(
                        "fault target-major-skip: the other addresses of {} are not looked up",
                        job.host
                    ));
                    job.step = self.address_types.len();
                }
                let current = match self.look_up(cache, &mut job, now, started) {
                    JobStep::Ask(name, rtype) => {
                        let stage = Stage::Srv {
                            domain,
                            groups,
                            transport,
                            current: Some(job),
                        };
                        self.stage = stage;
                        return Step::Ask(name, rtype);
                    }
                    JobStep::More => Some(job),
                    JobStep::Done => None,
                };
                let stage = Stage::Srv {
                    domain,
                    groups,
                    transport,
                    current,
                };
                (stage, Step::Continue)
            }
            Stage::Srv {
                domain,
                groups,
                transport,
                current: None,
            } => (
                self.draw_next(domain, groups, transport, rng),
                Step::Continue,
            ),
            Stage::Addresses { mut job, why } => {
                match self.look_up(cache, &mut job, now, started) {
                    JobStep::Ask(name, rtype) => {
                        (Stage::Addresses { job, why }, Step::Ask(name, rtype))
                    }
                    JobStep::More => (Stage::Addresses { job, why }, Step::Continue),
                    JobStep::Done => (Stage::Done { why }, Step::Continue),
                }
            }
            Stage::NumericLookups {
                mut lookups,
                target,
            } => match lookups.front().cloned() {
                Some((name, rtype)) => {
                    let step = match self.fetch(cache, &name, rtype, now, started) {
                        None => Step::Ask(name, rtype),
                        Some(_) => {
                            lookups.pop_front();
                            Step::Continue
                        }
                    };
                    (Stage::NumericLookups { lookups, target }, step)
                }
                None => {
                    self.note(format!("numeric host after the lookups: {target}"));
                    self.push(*target);
                    let why = "the numeric host was the only target".to_owned();
                    (Stage::Done { why }, Step::Continue)
                }
            },
            Stage::Done { why } => (Stage::Done { why }, Step::Finished),
        };
        self.stage = stage;
        step
    }

    /// L5: the usable NAPTRs in order become SRV candidates; none usable: L6.
    fn after_naptr(&mut self, domain: Name, records: &[Record]) -> Stage {
        let (choices, notes) = naptr::choose(records, &self.transports);
        for note in notes {
            self.note(note);
        }
        if choices.is_empty() {
            self.note(format!("L6: no usable NAPTR for {domain}"));
            return self.transport_srv_search(domain);
        }
        let mut candidates = VecDeque::new();
        for choice in choices {
            self.note(format!(
                "L5: NAPTR order {} preference {} {} → SRV {} over {}",
                choice.order,
                choice.preference,
                choice.service,
                choice.replacement,
                choice.transport
            ));
            candidates.push_back(SrvCandidate {
                name: choice.replacement,
                transport: choice.transport,
            });
        }
        Stage::SrvSearch {
            domain,
            candidates,
            fallback: self.default_transport,
        }
    }

    fn search_srv(
        &mut self,
        cache: &DnsCache,
        now: Duration,
        started: Duration,
        domain: Name,
        mut candidates: VecDeque<SrvCandidate>,
        fallback: Transport,
    ) -> (Stage, Step) {
        let Some(candidate) = candidates.pop_front() else {
            // L7: no SRV records at all: the domain's addresses on the default port.
            let port = self.scheme.default_port();
            self.note(format!(
                "L7: no SRV records: address records of {domain}, port {port}, {fallback}"
            ));
            let stage = Stage::Addresses {
                job: AddressJob::new(domain.clone(), port, fallback, None),
                why: format!("every address of {domain} was tried"),
            };
            return (stage, Step::Continue);
        };
        let Some(answer) = self.fetch(cache, &candidate.name, RecordType::SRV, now, started) else {
            let ask = Step::Ask(candidate.name.clone(), RecordType::SRV);
            candidates.push_front(candidate);
            let stage = Stage::SrvSearch {
                domain,
                candidates,
                fallback,
            };
            return (stage, ask);
        };
        let records = srv::records(&answer, &candidate.name);
        let search_on = |candidates| Stage::SrvSearch {
            domain: domain.clone(),
            candidates,
            fallback,
        };
        if records.is_empty() {
            self.note(format!("no SRV records at {}", candidate.name));
            return (search_on(candidates), Step::Continue);
        }
        // L10: RFC 2782's "." target: the service is decidedly not available here. Several
        // "." records say the same; "." next to real targets is dropped.
        let (dots, usable): (Vec<SrvOrigin>, Vec<SrvOrigin>) =
            records.into_iter().partition(|r| r.target.is_root());
        if usable.is_empty() {
            let why = "no service (SRV target \".\")".to_owned();
            self.note(format!(
                "L10: {} has target \".\": no request",
                candidate.name
            ));
            return (Stage::Done { why }, Step::Continue);
        }
        if !dots.is_empty() {
            self.note(format!(
                "{} SRV record(s) with target \".\" next to real ones: ignored",
                dots.len()
            ));
        }
        let groups = srv::groups(usable, &self.faults);
        let summary = groups
            .iter()
            .map(|group| {
                group
                    .iter()
                    .map(|r| format!("{} {} {} {}", r.priority, r.weight, r.port, r.target))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .collect::<Vec<_>>()
            .join(" | ");
        let how = if self.faults.has(Fault::IgnorePriority) {
            "fault ignore-priority: one group"
        } else {
            "L8: priority groups"
        };
        self.note(format!(
            "SRV {} over {}: {how}: {summary}",
            candidate.name, candidate.transport
        ));
        let stage = Stage::Srv {
            domain,
            groups,
            transport: candidate.transport,
            current: None,
        };
        (stage, Step::Continue)
    }

    /// L8/L9/L11/L12: the next record of the best group left, or the end of SRV.
    fn draw_next(
        &mut self,
        domain: Name,
        mut groups: VecDeque<Vec<SrvOrigin>>,
        transport: Transport,
        rng: &mut Rng,
    ) -> Stage {
        while let Some(group) = groups.front_mut() {
            if let Some((record, how)) = srv::draw(group, rng, &self.faults) {
                self.note(format!(
                    "L9: priority {} weight {}: {}:{} ({how})",
                    record.priority, record.weight, record.target, record.port
                ));
                let job =
                    AddressJob::new(record.target.clone(), record.port, transport, Some(record));
                return Stage::Srv {
                    domain,
                    groups,
                    transport,
                    current: Some(job),
                };
            }
            // L11: a group is left only once every record of it was handed out.
            groups.pop_front();
        }
        if self.faults.has(Fault::ARecordFallback) {
            let port = self.scheme.default_port();
            self.note(format!(
                "fault a-record-fallback: every SRV target tried: {domain} port {port}"
            ));
            return Stage::Addresses {
                job: AddressJob::new(domain.clone(), port, self.default_transport, None),
                why: format!("every SRV target and every address of {domain} was tried"),
            };
        }
        // L12: no fallback to the domain's address records.
        self.note("L12: every SRV target was tried: no fallback to the domain".to_owned());
        Stage::Done {
            why: "every SRV target was tried".to_owned(),
        }
    }

    /// The next address lookup of `job`; its addresses become targets in DNS order.
    fn look_up(
        &mut self,
        cache: &DnsCache,
        job: &mut AddressJob,
        now: Duration,
        started: Duration,
    ) -> JobStep {
        let Some(rtype) = self.address_types.get(job.step).copied() else {
            return JobStep::Done;
        };
        let Some(records) = self.fetch(cache, &job.host, rtype, now, started) else {
            return JobStep::Ask(job.host.clone(), rtype);
        };
        job.step += 1;
        let addresses: Vec<IpAddr> = records
            .iter()
            .filter_map(|record| match &record.data {
                RData::A(a) if rtype == RecordType::A => Some(IpAddr::V4(a.0)),
                RData::AAAA(aaaa) if rtype == RecordType::AAAA => Some(IpAddr::V6(aaaa.0)),
                _ => None,
            })
            .collect();
        if addresses.is_empty() {
            self.note(format!("{rtype} {}: no address", job.host));
        }
        for ip in addresses {
            self.push(Target {
                addr: SocketAddr::new(ip, job.port),
                transport: job.transport,
                host: Some(job.host.clone()),
                srv: job.srv.clone(),
            });
        }
        if job.step < self.address_types.len() {
            JobStep::More
        } else {
            JobStep::Done
        }
    }

    /// The records of (`name`, `rtype`) (empty: none), or `None` when the query must be sent.
    /// Never asks for what the cache holds fresh (C1/C2).
    fn fetch(
        &mut self,
        cache: &DnsCache,
        name: &Name,
        rtype: RecordType,
        now: Duration,
        started: Duration,
    ) -> Option<Vec<Record>> {
        if self.failed.iter().any(|(n, t)| *t == rtype && n == name) {
            return Some(Vec::new());
        }
        if let Some(pending) = self
            .pending
            .take_if(|p| p.rtype == rtype && p.name == *name)
        {
            // The answer to our own question, even if its TTL is 0 (RFC 1035 §3.2.1) or the
            // cache is off.
            return match cache.received_since(name, rtype, pending.asked_at, now) {
                Some(received) => Some(received.cached.records().to_vec()),
                None => {
                    self.note(format!(
                        "no answer stored for {rtype} {name}: taken as failed"
                    ));
                    self.failed.push((name.clone(), rtype));
                    Some(Vec::new())
                }
            };
        }
        if let Some(cached) = cache.lookup(name, rtype, now) {
            self.note(format!("{rtype} {name} from the cache"));
            return Some(cached.records().to_vec());
        }
        // Received during this resolution (e.g. the additional section of its SRV answer)
        // and still fresh: usable even when the cache is off.
        if let Some(received) = cache.received_since(name, rtype, started, now)
            && received.fresh
        {
            return Some(received.cached.records().to_vec());
        }
        self.pending = Some(Pending {
            name: name.clone(),
            rtype,
            asked_at: now,
        });
        None
    }

    fn push(&mut self, mut target: Target) {
        if target.transport == Transport::Tls && self.faults.has(Fault::SipsOverUdp) {
            self.note(format!(
                "fault sips-over-udp: {target} over UDP instead of TLS"
            ));
            target.transport = Transport::Udp;
        }
        if self.seen.insert(target.key()) {
            self.ready.push_back(target);
        } else {
            self.note(format!("{target} already queued: not tried twice"));
        }
    }
}

impl AddressJob {
    fn new(host: Name, port: u16, transport: Transport, srv: Option<SrvOrigin>) -> Self {
        Self {
            host,
            port,
            transport,
            srv,
            step: 0,
        }
    }
}

/// The address record types of the configured families, in their order (fault `ipv4-only`:
/// A alone, whatever is configured).
fn address_types(config: &UaConfig) -> Vec<RecordType> {
    if config.faults.has(Fault::Ipv4Only) {
        return vec![RecordType::A];
    }
    let types: Vec<RecordType> = config
        .address_families
        .iter()
        .map(|family| match family {
            AddressFamily::Ipv4 => RecordType::A,
            AddressFamily::Ipv6 => RecordType::AAAA,
        })
        .collect();
    if types.is_empty() {
        vec![RecordType::A]
    } else {
        types
    }
}

/// `_sip._udp.<domain>` / `_sip._tcp.<domain>` / `_sips._tcp.<domain>` (RFC 3263 §4.1).
fn srv_name(domain: &Name, transport: Transport) -> Result<Name, String> {
    let (service, label) = match transport {
        Transport::Udp => ("_sip", "_udp"),
        Transport::Tcp => ("_sip", "_tcp"),
        // RFC 3263 §4.1: SIPS over TCP is `_sips._tcp`.
        Transport::Tls => ("_sips", "_tcp"),
    };
    domain
        .prepend_label(label)
        .and_then(|name| name.prepend_label(service))
        .map_err(|e| format!("no SRV name for {domain} over {transport}: {e}"))
}
