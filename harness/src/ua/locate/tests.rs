//! Server location against hand-built answers, with explicit time; named after the checklist
//! ids they show.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use hickory_server::proto::op::Message;
use hickory_server::proto::rr::{Name, Record, RecordType};

use super::{Next, Resolution};
use crate::model::profile::AddressFamily;
use crate::sip::uri::SipUri;
use crate::timeline::Transport;
use crate::ua::config::UaConfig;
use crate::ua::dirty::DirtyHosts;
use crate::ua::dns_cache::DnsCache;
use crate::ua::dns_cache::answers::*;
use crate::ua::fault::{Fault, Faults};
use crate::ua::rng::Rng;
use crate::ua::target::Target;

const ZONE: &str = "example.test.";
const UDP: &str = "_sip._udp.example.test.";
const TCP: &str = "_sip._tcp.example.test.";

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// What the caller saw, one line per step.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Ev {
    Query(String),
    Target(String),
    Exhausted(String),
}

fn q(rtype: &str, name: &str) -> Ev {
    Ev::Query(format!("{rtype} {name}"))
}

fn t(text: &str) -> Ev {
    Ev::Target(text.to_owned())
}

fn x(why: &str) -> Ev {
    Ev::Exhausted(why.to_owned())
}

fn show(target: &Target) -> String {
    format!("{} {}", target.transport, target.addr)
}

/// A zone as the caller's DNS would answer it: a response per (name, type); anything else is
/// NXDOMAIN (negative TTL 60 s); `timeouts` are never answered.
#[derive(Clone, Default)]
struct Zone {
    answers: HashMap<(Name, RecordType), Message>,
    timeouts: HashSet<(Name, RecordType)>,
}

impl Zone {
    fn with(mut self, owner: &str, rtype: RecordType, message: Message) -> Self {
        self.answers.insert((name(owner), rtype), message);
        self
    }

    fn records(self, owner: &str, rtype: RecordType, records: Vec<Record>) -> Self {
        self.with(owner, rtype, answer(records))
    }

    fn timeout(mut self, owner: &str, rtype: RecordType) -> Self {
        self.timeouts.insert((name(owner), rtype));
        self
    }

    fn answer(&self, owner: &Name, rtype: RecordType) -> Option<Message> {
        if self.timeouts.contains(&(owner.clone(), rtype)) {
            return None;
        }
        Some(
            self.answers
                .get(&(owner.clone(), rtype))
                .cloned()
                .unwrap_or_else(|| nxdomain(ZONE, 60, 60)),
        )
    }
}

/// The caller: a UA with its cache, dirty hosts and generator.
struct Ua {
    config: UaConfig,
    cache: DnsCache,
    dirty: DirtyHosts,
    rng: Rng,
    zone: Zone,
}

impl Ua {
    fn new(zone: Zone) -> Self {
        Self::with_config(zone, UaConfig::default())
    }

    fn with_fault(zone: Zone, fault: Fault) -> Self {
        Self::with_config(
            zone,
            UaConfig {
                faults: Faults::one(fault),
                ..UaConfig::default()
            },
        )
    }

    fn with_config(zone: Zone, config: UaConfig) -> Self {
        Self {
            cache: DnsCache::new(config.dns_cache, config.faults.has(Fault::IgnoreDnsTtl)),
            dirty: DirtyHosts::new(),
            rng: Rng::new(config.seed),
            config,
            zone,
        }
    }

    fn start(&self, uri: &str) -> Resolution {
        Resolution::new(&SipUri::parse(uri).expect("test URIs parse"), &self.config)
    }

    /// One step as the I/O layer takes it: a query is answered (or times out) at `now`.
    fn step(&mut self, resolution: &mut Resolution, now: Duration) -> (Ev, Option<Target>) {
        match resolution.next(&self.cache, &self.dirty, &mut self.rng, now) {
            Next::Query { name, rtype } => {
                match self.zone.answer(&name, rtype) {
                    Some(response) => self.cache.insert(&name, rtype, &response, now),
                    None => resolution.on_query_failed(&name, rtype),
                }
                (Ev::Query(format!("{rtype} {name}")), None)
            }
            Next::Target(target) => (Ev::Target(show(&target)), Some(target)),
            Next::Exhausted { why } => (Ev::Exhausted(why), None),
        }
    }

    /// Every step of a request whose every target fails, up to Exhausted.
    fn resolve_all(&mut self, uri: &str, now: Duration) -> Vec<Ev> {
        let mut resolution = self.start(uri);
        self.run(&mut resolution, now)
    }

    fn run(&mut self, resolution: &mut Resolution, now: Duration) -> Vec<Ev> {
        let mut events = Vec::new();
        for _ in 0..200 {
            let (event, _) = self.step(resolution, now);
            let done = matches!(event, Ev::Exhausted(_));
            events.push(event);
            if done {
                return events;
            }
        }
        panic!("no end after 200 steps: {events:?}");
    }

    /// The first target of a fresh request, and the queries it took.
    fn first_target(&mut self, uri: &str, now: Duration) -> (Vec<Ev>, Option<Target>) {
        let mut resolution = self.start(uri);
        let mut events = Vec::new();
        for _ in 0..50 {
            let (event, target) = self.step(&mut resolution, now);
            if target.is_some() || matches!(event, Ev::Exhausted(_)) {
                return (events, target);
            }
            events.push(event);
        }
        panic!("no target after 50 steps: {events:?}");
    }
}

fn targets(events: &[Ev]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Ev::Target(t) => Some(t.clone()),
            _ => None,
        })
        .collect()
}

fn queries(events: &[Ev]) -> Vec<Ev> {
    events
        .iter()
        .filter(|e| matches!(e, Ev::Query(_)))
        .cloned()
        .collect()
}

/// Two priority groups: 10 with sip1 (weight 60) and sip2 (40), 20 with sip3; each server
/// one address 127.0.0.N. The SRV answer carries no additional records.
fn two_priorities() -> Zone {
    Zone::default()
        .records(
            UDP,
            RecordType::SRV,
            vec![
                srv(UDP, 300, 20, 0, 5062, "sip3.example.test."),
                srv(UDP, 300, 10, 60, 5060, "sip1.example.test."),
                srv(UDP, 300, 10, 40, 5061, "sip2.example.test."),
            ],
        )
        .records(
            "sip1.example.test.",
            RecordType::A,
            vec![a("sip1.example.test.", 300, "127.0.0.1")],
        )
        .records(
            "sip2.example.test.",
            RecordType::A,
            vec![a("sip2.example.test.", 300, "127.0.0.2")],
        )
        .records(
            "sip3.example.test.",
            RecordType::A,
            vec![a("sip3.example.test.", 300, "127.0.0.3")],
        )
}

// ---------------------------------------------------------------------------------------------
// L1–L7: which queries, which transport and port.

#[test]
fn l1_numeric_host_needs_no_dns() {
    let mut ua = Ua::new(Zone::default());
    assert_eq!(
        ua.resolve_all("sip:100@127.0.0.1", secs(0)),
        [
            t("udp 127.0.0.1:5060"),
            x("the numeric host was the only target")
        ]
    );
    assert_eq!(
        ua.resolve_all("sip:100@[::1]:5062;transport=tcp", secs(0)),
        [
            t("tcp [::1]:5062"),
            x("the numeric host was the only target")
        ]
    );
}

fn with_tls() -> UaConfig {
    UaConfig {
        transports: vec![Transport::Udp, Transport::Tcp, Transport::Tls],
        ..UaConfig::default()
    }
}

#[test]
fn l1_sips_needs_tls_enabled() {
    let mut ua = Ua::new(Zone::default());
    for uri in ["sips:100@127.0.0.1", "sips:100@example.test"] {
        assert_eq!(
            ua.resolve_all(uri, secs(0)),
            [x(
                "a sips URI needs TLS, which is not enabled in the configuration"
            )],
            "{uri}"
        );
    }
    assert_eq!(
        ua.resolve_all("sip:100@example.test;transport=tls", secs(0)),
        [x("transport tls is not enabled in the configuration")]
    );
    assert_eq!(
        ua.resolve_all("sip:100@example.test;transport=sctp", secs(0)),
        [x("transport `sctp` is not supported")]
    );
}

#[test]
fn l1_sips_goes_over_tls_on_5061_and_the_fault_sends_it_over_udp() {
    let mut ua = Ua::with_config(Zone::default(), with_tls());
    assert_eq!(
        ua.resolve_all("sips:100@127.0.0.1", secs(0)),
        [
            t("tls 127.0.0.1:5061"),
            x("the numeric host was the only target")
        ]
    );
    // RFC 3261 §26.2.2: sips with transport=tcp is TLS over TCP; never UDP.
    assert_eq!(
        ua.resolve_all("sips:100@127.0.0.1;transport=tcp", secs(0))[0],
        t("tls 127.0.0.1:5061")
    );
    assert_eq!(
        ua.resolve_all("sips:100@127.0.0.1;transport=udp", secs(0)),
        [x("a sips URI cannot use transport=udp")]
    );
    let mut faulty = Ua::with_config(
        Zone::default(),
        UaConfig {
            faults: Faults::one(Fault::SipsOverUdp),
            ..with_tls()
        },
    );
    assert_eq!(
        faulty.resolve_all("sips:100@127.0.0.1", secs(0))[0],
        t("udp 127.0.0.1:5061")
    );
}

#[test]
fn l5_sips_takes_sips_services_only_and_their_srv_over_tls() {
    const SIPS: &str = "_sips._tcp.example.test.";
    let zone = Zone::default()
        .records(
            ZONE,
            RecordType::NAPTR,
            vec![
                naptr(ZONE, 10, 10, "s", "SIP+D2U", UDP),
                naptr(ZONE, 20, 10, "s", "SIPS+D2T", SIPS),
            ],
        )
        .records(
            SIPS,
            RecordType::SRV,
            vec![srv(SIPS, 300, 1, 1, 5061, "sip1.example.test.")],
        )
        .records(
            UDP,
            RecordType::SRV,
            vec![srv(UDP, 300, 1, 1, 5060, "sip1.example.test.")],
        )
        .records(
            "sip1.example.test.",
            RecordType::A,
            vec![a("sip1.example.test.", 300, "127.0.0.1")],
        );
    let mut ua = Ua::with_config(zone.clone(), with_tls());
    assert_eq!(
        ua.resolve_all("sips:100@example.test", secs(0))[..4],
        [
            q("NAPTR", ZONE),
            q("SRV", SIPS),
            q("A", "sip1.example.test."),
            t("tls 127.0.0.1:5061")
        ]
    );
    // A sip URI takes the most preferred service, UDP here.
    let mut ua = Ua::with_config(zone, with_tls());
    let events = ua.resolve_all("sip:100@example.test", secs(0));
    assert!(events.contains(&t("udp 127.0.0.1:5060")), "{events:?}");
}

#[test]
fn l2_explicit_port_looks_up_addresses_only() {
    let zone = two_priorities()
        .records(
            ZONE,
            RecordType::NAPTR,
            vec![naptr(ZONE, 10, 10, "s", "SIP+D2U", UDP)],
        )
        .records(
            ZONE,
            RecordType::A,
            vec![a(ZONE, 300, "127.0.0.10"), a(ZONE, 300, "127.0.0.11")],
        );
    let mut ua = Ua::new(zone);
    assert_eq!(
        ua.resolve_all("sip:100@example.test:5070", secs(0)),
        [
            q("A", ZONE),
            t("udp 127.0.0.10:5070"),
            t("udp 127.0.0.11:5070"),
            x("every address of example.test. was tried")
        ]
    );
    let events = ua.resolve_all("sip:example.test:5070;transport=tcp", secs(1));
    assert_eq!(
        targets(&events),
        ["tcp 127.0.0.10:5070", "tcp 127.0.0.11:5070"]
    );
}

#[test]
fn l3_transport_parameter_skips_naptr_and_other_transports() {
    let zone = two_priorities()
        .records(
            ZONE,
            RecordType::NAPTR,
            vec![naptr(ZONE, 10, 10, "s", "SIP+D2U", UDP)],
        )
        .records(
            TCP,
            RecordType::SRV,
            vec![srv(TCP, 300, 1, 1, 5080, "sip1.example.test.")],
        );
    let mut ua = Ua::new(zone);
    assert_eq!(
        ua.resolve_all("sip:100@example.test;transport=tcp", secs(0)),
        [
            q("SRV", TCP),
            q("A", "sip1.example.test."),
            t("tcp 127.0.0.1:5080"),
            x("every SRV target was tried")
        ]
    );
}

#[test]
fn l3_transport_parameter_without_srv_uses_the_address_on_5060() {
    let zone = Zone::default().records(ZONE, RecordType::A, vec![a(ZONE, 300, "127.0.0.10")]);
    let mut ua = Ua::new(zone);
    assert_eq!(
        ua.resolve_all("sip:100@example.test;transport=tcp", secs(0)),
        [
            q("SRV", TCP),
            q("A", ZONE),
            t("tcp 127.0.0.10:5060"),
            x("every address of example.test. was tried")
        ]
    );
}

#[test]
fn l4_naptr_is_queried_first() {
    let mut ua = Ua::new(two_priorities());
    let (events, _) = ua.first_target("sip:100@example.test", secs(0));
    assert_eq!(events.first(), Some(&q("NAPTR", ZONE)));
}

#[test]
fn l5_naptr_by_order_then_preference_supported_services_only() {
    let zone = Zone::default()
        .records(
            ZONE,
            RecordType::NAPTR,
            vec![
                naptr(ZONE, 20, 10, "s", "SIP+D2U", UDP),
                naptr(ZONE, 10, 5, "s", "SIPS+D2T", "_sips._tcp.example.test."),
                naptr(ZONE, 10, 8, "a", "SIP+D2U", UDP),
                naptr(ZONE, 10, 9, "s", "SIP+D2S", "_sip._sctp.example.test."),
                naptr(ZONE, 10, 50, "S", "sip+d2t", TCP),
                naptr(ZONE, 10, 40, "s", "E2U+sip", "x.example.test."),
            ],
        )
        .records(
            UDP,
            RecordType::SRV,
            vec![srv(UDP, 300, 1, 1, 5060, "sip1.example.test.")],
        )
        .records(
            TCP,
            RecordType::SRV,
            vec![srv(TCP, 300, 1, 1, 5090, "sip2.example.test.")],
        )
        .records(
            "sip1.example.test.",
            RecordType::A,
            vec![a("sip1.example.test.", 300, "127.0.0.1")],
        )
        .records(
            "sip2.example.test.",
            RecordType::A,
            vec![a("sip2.example.test.", 300, "127.0.0.2")],
        );
    let mut ua = Ua::new(zone);
    let mut resolution = ua.start("sip:100@example.test");
    let events = ua.run(&mut resolution, secs(0));
    assert_eq!(
        events[..4],
        [
            q("NAPTR", ZONE),
            q("SRV", TCP),
            q("A", "sip2.example.test."),
            t("tcp 127.0.0.2:5090")
        ]
    );
    let trace = resolution.trace().join("\n");
    assert!(
        trace.contains(
            "L5: NAPTR order 10 preference 50 sip+d2t → SRV _sip._tcp.example.test. over tcp"
        ),
        "{trace}"
    );
    assert!(
        trace.contains("skipped: tls is not enabled in the configuration"),
        "{trace}"
    );
    assert!(trace.contains("flag is not \"s\""), "{trace}");
}

#[test]
fn l5_naptr_of_a_transport_not_enabled_is_skipped() {
    let zone = Zone::default()
        .records(
            ZONE,
            RecordType::NAPTR,
            vec![
                naptr(ZONE, 10, 10, "s", "SIP+D2T", TCP),
                naptr(ZONE, 20, 10, "s", "SIP+D2U", UDP),
            ],
        )
        .records(
            UDP,
            RecordType::SRV,
            vec![srv(UDP, 300, 1, 1, 5060, "sip1.example.test.")],
        )
        .records(
            TCP,
            RecordType::SRV,
            vec![srv(TCP, 300, 1, 1, 5090, "sip2.example.test.")],
        )
        .records(
            "sip1.example.test.",
            RecordType::A,
            vec![a("sip1.example.test.", 300, "127.0.0.1")],
        );
    let mut ua = Ua::with_config(
        zone,
        UaConfig {
            transports: vec![Transport::Udp],
            ..UaConfig::default()
        },
    );
    let (events, target) = ua.first_target("sip:100@example.test", secs(0));
    assert_eq!(events[..2], [q("NAPTR", ZONE), q("SRV", UDP)]);
    assert_eq!(
        target.map(|t| show(&t)).as_deref(),
        Some("udp 127.0.0.1:5060")
    );
}

#[test]
fn l5_the_next_naptr_when_its_srv_yields_nothing() {
    let zone = Zone::default()
        .records(
            ZONE,
            RecordType::NAPTR,
            vec![
                naptr(ZONE, 10, 10, "s", "SIP+D2T", TCP),
                naptr(ZONE, 10, 20, "s", "SIP+D2U", UDP),
            ],
        )
        .records(
            UDP,
            RecordType::SRV,
            vec![srv(UDP, 300, 1, 1, 5060, "sip1.example.test.")],
        )
        .records(
            "sip1.example.test.",
            RecordType::A,
            vec![a("sip1.example.test.", 300, "127.0.0.1")],
        );
    let mut ua = Ua::new(zone);
    assert_eq!(
        ua.resolve_all("sip:100@example.test", secs(0)),
        [
            q("NAPTR", ZONE),
            q("SRV", TCP),
            q("SRV", UDP),
            q("A", "sip1.example.test."),
            t("udp 127.0.0.1:5060"),
            x("every SRV target was tried")
        ]
    );
}

#[test]
fn l6_without_naptr_srv_in_the_configured_transport_order() {
    let zone = Zone::default()
        .records(
            UDP,
            RecordType::SRV,
            vec![srv(UDP, 300, 1, 1, 5060, "sip1.example.test.")],
        )
        .records(
            "sip1.example.test.",
            RecordType::A,
            vec![a("sip1.example.test.", 300, "127.0.0.1")],
        );
    let mut ua = Ua::with_config(
        zone,
        UaConfig {
            transports: vec![Transport::Tcp, Transport::Udp],
            ..UaConfig::default()
        },
    );
    let (events, target) = ua.first_target("sip:100@example.test", secs(0));
    assert_eq!(
        events,
        [
            q("NAPTR", ZONE),
            q("SRV", TCP),
            q("SRV", UDP),
            q("A", "sip1.example.test.")
        ]
    );
    assert_eq!(
        target.map(|t| show(&t)).as_deref(),
        Some("udp 127.0.0.1:5060")
    );
}

#[test]
fn l6_the_first_transport_with_records_wins() {
    let zone = two_priorities().records(
        TCP,
        RecordType::SRV,
        vec![srv(TCP, 300, 1, 1, 5090, "sip1.example.test.")],
    );
    let mut ua = Ua::new(zone);
    let events = ua.resolve_all("sip:100@example.test", secs(0));
    assert!(!queries(&events).contains(&q("SRV", TCP)), "{events:?}");
    assert!(
        targets(&events).iter().all(|t| t.starts_with("udp")),
        "{events:?}"
    );
}

#[test]
fn l7_no_srv_falls_back_to_the_address_on_5060_udp() {
    let zone = Zone::default().records(ZONE, RecordType::A, vec![a(ZONE, 300, "127.0.0.10")]);
    let mut ua = Ua::new(zone);
    assert_eq!(
        ua.resolve_all("sip:100@example.test", secs(0)),
        [
            q("NAPTR", ZONE),
            q("SRV", UDP),
            q("SRV", TCP),
            q("A", ZONE),
            t("udp 127.0.0.10:5060"),
            x("every address of example.test. was tried")
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// L8–L12: the order of targets.

#[test]
fn l8_first_target_is_of_the_lowest_priority() {
    let mut ua = Ua::new(two_priorities());
    for seed in 0..300 {
        ua.rng = Rng::new(seed);
        let (_, target) = ua.first_target("sip:100@example.test", secs(0));
        let target = target.expect("a first target");
        let origin = target.srv.expect("from SRV");
        assert_eq!(origin.priority, 10, "seed {seed}: {}", target.addr);
    }
}

#[test]
fn l11_lower_priority_only_after_every_better_target() {
    let mut ua = Ua::new(two_priorities());
    let mut firsts = HashSet::new();
    for seed in 0..100 {
        ua.rng = Rng::new(seed);
        let events = ua.resolve_all("sip:100@example.test", secs(0));
        let order = targets(&events);
        assert_eq!(order.len(), 3, "{events:?}");
        assert_eq!(order[2], "udp 127.0.0.3:5062", "seed {seed}: {order:?}");
        firsts.insert(order[0].clone());
    }
    // Both members of the better group come first sometimes: the draw is really random.
    assert_eq!(firsts.len(), 2, "{firsts:?}");
}

#[test]
fn srv_targets_carry_the_srv_port_transport_and_origin() {
    let zone = Zone::default()
        .records(
            TCP,
            RecordType::SRV,
            vec![srv(TCP, 300, 5, 7, 5090, "sip1.example.test.")],
        )
        .records(
            "sip1.example.test.",
            RecordType::A,
            vec![
                a("sip1.example.test.", 300, "127.0.0.2"),
                a("sip1.example.test.", 300, "127.0.0.1"),
            ],
        );
    let mut ua = Ua::new(zone);
    let mut resolution = ua.start("sip:example.test;transport=tcp");
    let events = ua.run(&mut resolution, secs(0));
    // Addresses in DNS order.
    assert_eq!(
        targets(&events),
        ["tcp 127.0.0.2:5090", "tcp 127.0.0.1:5090"]
    );
    let mut resolution = ua.start("sip:example.test;transport=tcp");
    let (_, target) = ua.step(&mut resolution, secs(1));
    let target = target.expect("cached, so a target at once");
    assert_eq!(target.host, Some(name("sip1.example.test.")));
    let origin = target.srv.expect("from SRV");
    assert_eq!(
        (
            origin.name,
            origin.priority,
            origin.weight,
            origin.port,
            origin.target
        ),
        (name(TCP), 5, 7, 5090, name("sip1.example.test."))
    );
}

/// L9 over 20,000 draws of a group with weights 60/40/0: the first choice's frequencies match
/// w/(S+1) within 5 standard deviations of a binomial.
fn first_choice_frequencies(ua: &mut Ua, trials: u32) -> HashMap<String, u32> {
    let mut counts: HashMap<String, u32> = HashMap::new();
    for _ in 0..trials {
        let (_, target) = ua.first_target("sip:100@example.test", secs(0));
        *counts.entry(show(&target.expect("a target"))).or_default() += 1;
    }
    counts
}

fn weights_60_40_0() -> Zone {
    Zone::default()
        .records(
            UDP,
            RecordType::SRV,
            vec![
                srv(UDP, 300, 10, 60, 5060, "sip1.example.test."),
                srv(UDP, 300, 10, 40, 5060, "sip2.example.test."),
                srv(UDP, 300, 10, 0, 5060, "sip3.example.test."),
            ],
        )
        .records(
            "sip1.example.test.",
            RecordType::A,
            vec![a("sip1.example.test.", 300, "127.0.0.1")],
        )
        .records(
            "sip2.example.test.",
            RecordType::A,
            vec![a("sip2.example.test.", 300, "127.0.0.2")],
        )
        .records(
            "sip3.example.test.",
            RecordType::A,
            vec![a("sip3.example.test.", 300, "127.0.0.3")],
        )
}

#[test]
fn l9_first_choice_follows_the_weights() {
    const TRIALS: u32 = 20_000;
    let mut ua = Ua::new(weights_60_40_0());
    let counts = first_choice_frequencies(&mut ua, TRIALS);
    let n = f64::from(TRIALS);
    for (target, weight) in [
        ("udp 127.0.0.1:5060", 60.0),
        ("udp 127.0.0.2:5060", 40.0),
        ("udp 127.0.0.3:5060", 0.0),
    ] {
        // The weight-0 record is placed first, so draw 0 picks it: 1/(S+1).
        let p: f64 = if weight == 0.0 {
            1.0 / 101.0
        } else {
            weight / 101.0
        };
        let expected = n * p;
        let sd = (n * p * (1.0 - p)).sqrt();
        let seen = f64::from(counts.get(target).copied().unwrap_or(0));
        eprintln!(
            "L9 {target} weight {weight}: seen {seen} of {TRIALS} ({:.4}), expected {expected:.1} ({p:.4}), |z| = {:.2}",
            seen / n,
            ((seen - expected) / sd).abs()
        );
        assert!(
            (seen - expected).abs() <= 5.0 * sd,
            "{target}: {seen} vs {expected:.1} ± {:.1}",
            5.0 * sd
        );
    }
}

#[test]
fn l9_each_record_is_drawn_once() {
    let mut ua = Ua::new(weights_60_40_0());
    for seed in 0..50 {
        ua.rng = Rng::new(seed);
        let events = ua.resolve_all("sip:100@example.test", secs(0));
        let mut order = targets(&events);
        order.sort();
        assert_eq!(
            order,
            [
                "udp 127.0.0.1:5060",
                "udp 127.0.0.2:5060",
                "udp 127.0.0.3:5060"
            ]
        );
    }
}

#[test]
fn l10_a_lone_dot_target_means_no_service() {
    let zone = Zone::default()
        .records(UDP, RecordType::SRV, vec![srv(UDP, 300, 0, 0, 0, ".")])
        .records(
            TCP,
            RecordType::SRV,
            vec![srv(TCP, 300, 1, 1, 5060, "sip1.example.test.")],
        )
        .records(ZONE, RecordType::A, vec![a(ZONE, 300, "127.0.0.10")]);
    let mut ua = Ua::new(zone);
    assert_eq!(
        ua.resolve_all("sip:100@example.test", secs(0)),
        [
            q("NAPTR", ZONE),
            q("SRV", UDP),
            x("no service (SRV target \".\")")
        ]
    );
}

#[test]
fn a_dot_target_next_to_real_ones_is_ignored() {
    let zone = Zone::default()
        .records(
            UDP,
            RecordType::SRV,
            vec![
                srv(UDP, 300, 0, 0, 0, "."),
                srv(UDP, 300, 1, 1, 5060, "sip1.example.test."),
            ],
        )
        .records(
            "sip1.example.test.",
            RecordType::A,
            vec![a("sip1.example.test.", 300, "127.0.0.1")],
        );
    let mut ua = Ua::new(zone);
    let events = ua.resolve_all("sip:100@example.test", secs(0));
    assert_eq!(targets(&events), ["udp 127.0.0.1:5060"]);
}

#[test]
fn l12_no_fallback_to_the_domain_after_every_srv_target() {
    let zone = two_priorities().records(ZONE, RecordType::A, vec![a(ZONE, 300, "127.0.0.10")]);
    let mut ua = Ua::new(zone);
    let events = ua.resolve_all("sip:100@example.test", secs(0));
    assert_eq!(targets(&events).len(), 3);
    assert!(!queries(&events).contains(&q("A", ZONE)), "{events:?}");
    assert_eq!(events.last(), Some(&x("every SRV target was tried")));
}

#[test]
fn a_target_without_address_is_passed_over() {
    let zone = two_priorities()
        .timeout("sip1.example.test.", RecordType::A)
        .records("sip2.example.test.", RecordType::A, vec![]);
    let mut ua = Ua::new(zone);
    let events = ua.resolve_all("sip:100@example.test", secs(0));
    assert_eq!(targets(&events), ["udp 127.0.0.3:5062"], "{events:?}");
}

#[test]
fn a_target_reached_twice_is_tried_once() {
    let zone = Zone::default()
        .records(
            UDP,
            RecordType::SRV,
            vec![
                srv(UDP, 300, 1, 0, 5060, "sip1.example.test."),
                srv(UDP, 300, 2, 0, 5060, "alias.example.test."),
            ],
        )
        .records(
            "sip1.example.test.",
            RecordType::A,
            vec![a("sip1.example.test.", 300, "127.0.0.1")],
        )
        .records(
            "alias.example.test.",
            RecordType::A,
            vec![a("alias.example.test.", 300, "127.0.0.1")],
        );
    let mut ua = Ua::new(zone);
    let events = ua.resolve_all("sip:100@example.test", secs(0));
    assert_eq!(targets(&events), ["udp 127.0.0.1:5060"]);
}

#[test]
fn exhausted_stays_exhausted() {
    let mut ua = Ua::new(Zone::default());
    let mut resolution = ua.start("sip:100@127.0.0.1");
    ua.run(&mut resolution, secs(0));
    let (event, _) = ua.step(&mut resolution, secs(1));
    assert_eq!(event, x("the numeric host was the only target"));
}

// ---------------------------------------------------------------------------------------------
// Query failures.

#[test]
fn a_failed_query_counts_as_no_records() {
    let zone = two_priorities()
        .timeout(ZONE, RecordType::NAPTR)
        .timeout(UDP, RecordType::SRV)
        .records(
            TCP,
            RecordType::SRV,
            vec![srv(TCP, 300, 1, 1, 5090, "sip1.example.test.")],
        );
    let mut ua = Ua::new(zone);
    let events = ua.resolve_all("sip:100@example.test", secs(0));
    assert_eq!(
        events,
        [
            q("NAPTR", ZONE),
            q("SRV", UDP),
            q("SRV", TCP),
            q("A", "sip1.example.test."),
            t("tcp 127.0.0.1:5090"),
            x("every SRV target was tried")
        ]
    );
}

#[test]
fn a_servfail_stored_in_the_cache_is_not_asked_again() {
    let zone = two_priorities().with(UDP, RecordType::SRV, servfail());
    let mut ua = Ua::new(zone);
    let mut resolution = ua.start("sip:100@example.test");
    let events = ua.run(&mut resolution, secs(0));
    assert_eq!(
        queries(&events)
            .iter()
            .filter(|e| **e == q("SRV", UDP))
            .count(),
        1
    );
    assert!(
        resolution
            .trace()
            .iter()
            .any(|l| l.contains("no answer stored"))
    );
}

// ---------------------------------------------------------------------------------------------
// C1–C3: the cache.

#[test]
fn c1_c2_next_never_asks_for_a_fresh_answer_and_asks_again_after_the_ttl() {
    let zone = Zone::default()
        .records(
            UDP,
            RecordType::SRV,
            vec![srv(UDP, 100, 1, 1, 5060, "sip1.example.test.")],
        )
        .records(
            "sip1.example.test.",
            RecordType::A,
            vec![a("sip1.example.test.", 50, "127.0.0.1")],
        );
    let mut ua = Ua::new(zone);
    let first = ua.resolve_all("sip:100@example.test", secs(0));
    assert_eq!(
        queries(&first),
        [
            q("NAPTR", ZONE),
            q("SRV", UDP),
            q("A", "sip1.example.test.")
        ]
    );
    // The negative NAPTR/SRV answers live 60 s, the A 50 s, the SRV 100 s.
    assert_eq!(
        queries(&ua.resolve_all("sip:100@example.test", secs(49))),
        []
    );
    assert_eq!(
        queries(&ua.resolve_all("sip:100@example.test", secs(50))),
        [q("A", "sip1.example.test.")]
    );
    assert_eq!(
        queries(&ua.resolve_all("sip:100@example.test", secs(60))),
        [q("NAPTR", ZONE)]
    );
    assert_eq!(
        queries(&ua.resolve_all("sip:100@example.test", secs(100))),
        [q("SRV", UDP), q("A", "sip1.example.test.")]
    );
}

#[test]
fn additional_addresses_spare_the_address_query() {
    let zone = Zone::default().with(
        UDP,
        RecordType::SRV,
        answer_with_additionals(
            vec![srv(UDP, 300, 1, 1, 5060, "sip1.example.test.")],
            vec![a("sip1.example.test.", 300, "127.0.0.1")],
        ),
    );
    let mut ua = Ua::new(zone);
    assert_eq!(
        ua.resolve_all("sip:100@example.test", secs(0)),
        [
            q("NAPTR", ZONE),
            q("SRV", UDP),
            t("udp 127.0.0.1:5060"),
            x("every SRV target was tried")
        ]
    );
}

#[test]
fn c3_a_disabled_cache_resolves_every_transaction_but_uses_its_own_answers() {
    let zone = Zone::default().with(
        UDP,
        RecordType::SRV,
        answer_with_additionals(
            vec![srv(UDP, 300, 1, 1, 5060, "sip1.example.test.")],
            vec![a("sip1.example.test.", 300, "127.0.0.1")],
        ),
    );
    let mut ua = Ua::with_config(
        zone,
        UaConfig {
            dns_cache: false,
            ..UaConfig::default()
        },
    );
    let expected = [
        q("NAPTR", ZONE),
        q("SRV", UDP),
        t("udp 127.0.0.1:5060"),
        x("every SRV target was tried"),
    ];
    assert_eq!(ua.resolve_all("sip:100@example.test", secs(0)), expected);
    assert_eq!(ua.resolve_all("sip:100@example.test", secs(1)), expected);
}

#[test]
fn a_ttl_0_answer_serves_the_transaction_that_asked() {
    let zone = Zone::default()
        .records(
            UDP,
            RecordType::SRV,
            vec![srv(UDP, 0, 1, 1, 5060, "sip1.example.test.")],
        )
        .records(
            "sip1.example.test.",
            RecordType::A,
            vec![a("sip1.example.test.", 0, "127.0.0.1")],
        );
    let mut ua = Ua::new(zone);
    for now in [0, 1] {
        let events = ua.resolve_all("sip:100@example.test", secs(now));
        assert_eq!(targets(&events), ["udp 127.0.0.1:5060"]);
        assert!(queries(&events).contains(&q("SRV", UDP)));
    }
}

#[test]
fn fault_ignore_dns_ttl_uses_answers_after_their_ttl() {
    let zone = Zone::default()
        .records(
            UDP,
            RecordType::SRV,
            vec![srv(UDP, 100, 1, 1, 5060, "sip1.example.test.")],
        )
        .records(
            "sip1.example.test.",
            RecordType::A,
            vec![a("sip1.example.test.", 50, "127.0.0.1")],
        );
    let mut clean = Ua::new(zone_copy(&zone));
    let mut faulty = Ua::with_fault(zone, Fault::IgnoreDnsTtl);
    clean.resolve_all("sip:100@example.test", secs(0));
    faulty.resolve_all("sip:100@example.test", secs(0));
    assert_eq!(
        queries(&clean.resolve_all("sip:100@example.test", secs(3600))).len(),
        3
    );
    assert_eq!(
        queries(&faulty.resolve_all("sip:100@example.test", secs(3600))),
        []
    );
}

fn zone_copy(zone: &Zone) -> Zone {
    Zone {
        answers: zone.answers.clone(),
        timeouts: zone.timeouts.clone(),
    }
}

// ---------------------------------------------------------------------------------------------
// D1–D2: dirty hosts.

fn key(text: &str) -> crate::ua::target::TargetKey {
    (
        Transport::Udp,
        text.parse().expect("test socket addresses are valid"),
    )
}

#[test]
fn d1_d2_a_dirty_target_is_skipped_during_its_ttl_and_eligible_after() {
    let mut ua = Ua::new(weights_60_40_0());
    let ttl = Some(secs(30));
    let faults = Faults::none();
    ua.dirty
        .mark(key("127.0.0.1:5060"), secs(100), ttl, &faults);
    for _ in 0..200 {
        let (_, target) = ua.first_target("sip:100@example.test", secs(129));
        assert_ne!(show(&target.expect("a target")), "udp 127.0.0.1:5060");
    }
    let counts = first_choice_frequencies_at(&mut ua, 200, secs(130));
    assert!(
        counts.get("udp 127.0.0.1:5060").copied().unwrap_or(0) > 60,
        "{counts:?}"
    );
}

fn first_choice_frequencies_at(ua: &mut Ua, trials: u32, now: Duration) -> HashMap<String, u32> {
    let mut counts: HashMap<String, u32> = HashMap::new();
    for _ in 0..trials {
        let (_, target) = ua.first_target("sip:100@example.test", now);
        *counts.entry(show(&target.expect("a target"))).or_default() += 1;
    }
    counts
}

#[test]
fn d1_dirty_targets_come_after_clean_ones_of_every_priority() {
    let mut ua = Ua::new(two_priorities());
    let faults = Faults::none();
    ua.dirty
        .mark(key("127.0.0.1:5060"), secs(0), Some(secs(60)), &faults);
    ua.dirty
        .mark(key("127.0.0.2:5061"), secs(0), Some(secs(60)), &faults);
    let events = ua.resolve_all("sip:100@example.test", secs(1));
    let order = targets(&events);
    assert_eq!(order[0], "udp 127.0.0.3:5062", "{order:?}");
    assert_eq!(order.len(), 3);
}

#[test]
fn d1_when_every_target_is_dirty_they_are_tried_anyway() {
    let mut ua = Ua::new(two_priorities());
    let faults = Faults::none();
    for k in ["127.0.0.1:5060", "127.0.0.2:5061", "127.0.0.3:5062"] {
        ua.dirty.mark(key(k), secs(0), Some(secs(60)), &faults);
    }
    let mut resolution = ua.start("sip:100@example.test");
    let events = ua.run(&mut resolution, secs(1));
    let order = targets(&events);
    assert_eq!(order.len(), 3, "{events:?}");
    // In their normal order: the better priority first.
    assert_eq!(order[2], "udp 127.0.0.3:5062");
    assert!(
        resolution
            .trace()
            .iter()
            .any(|l| l.contains("trying dirty"))
    );
}

#[test]
fn f5_retry_after_keeps_the_target_aside() {
    let mut ua = Ua::new(weights_60_40_0());
    ua.dirty.mark_for(key("127.0.0.1:5060"), secs(0), secs(120));
    let counts = first_choice_frequencies_at(&mut ua, 200, secs(119));
    assert_eq!(counts.get("udp 127.0.0.1:5060"), None, "{counts:?}");
    let counts = first_choice_frequencies_at(&mut ua, 200, secs(120));
    assert!(counts.contains_key("udp 127.0.0.1:5060"), "{counts:?}");
}

// ---------------------------------------------------------------------------------------------
// Faults: what each changes compared to the clean UA.

#[test]
fn fault_ignore_priority_lets_a_worse_priority_come_first() {
    let mut clean = Ua::new(two_priorities());
    let mut faulty = Ua::with_fault(two_priorities(), Fault::IgnorePriority);
    let worse = |ua: &mut Ua| {
        (0..2000)
            .filter(|_| {
                let (_, target) = ua.first_target("sip:100@example.test", secs(0));
                target.and_then(|t| t.srv).is_some_and(|s| s.priority == 20)
            })
            .count()
    };
    assert_eq!(worse(&mut clean), 0);
    // One group 0/60/40: the weight-0 record of priority 20 comes first with p = 1/101.
    let worse_first = worse(&mut faulty);
    eprintln!("ignore-priority: priority 20 first {worse_first} of 2000");
    assert!(worse_first > 0);
}

#[test]
fn fault_ignore_weights_always_takes_dns_order() {
    let mut clean = Ua::new(weights_60_40_0());
    let mut faulty = Ua::with_fault(weights_60_40_0(), Fault::IgnoreWeights);
    let clean_counts = first_choice_frequencies(&mut clean, 500);
    let faulty_counts = first_choice_frequencies(&mut faulty, 500);
    assert!(clean_counts.len() >= 2, "{clean_counts:?}");
    assert_eq!(
        faulty_counts.get("udp 127.0.0.1:5060"),
        Some(&500),
        "{faulty_counts:?}"
    );
}

#[test]
fn fault_weight_zero_first_always_takes_the_weight_0_record() {
    let mut clean = Ua::new(weights_60_40_0());
    let mut faulty = Ua::with_fault(weights_60_40_0(), Fault::WeightZeroFirst);
    let clean_counts = first_choice_frequencies(&mut clean, 500);
    let faulty_counts = first_choice_frequencies(&mut faulty, 500);
    assert!(
        clean_counts.get("udp 127.0.0.3:5060").copied().unwrap_or(0) < 50,
        "{clean_counts:?}"
    );
    assert_eq!(
        faulty_counts.get("udp 127.0.0.3:5060"),
        Some(&500),
        "{faulty_counts:?}"
    );
}

#[test]
fn fault_skip_naptr_misses_the_preferred_transport() {
    let zone = || {
        two_priorities()
            .records(
                ZONE,
                RecordType::NAPTR,
                vec![naptr(ZONE, 10, 10, "s", "SIP+D2T", TCP)],
            )
            .records(
                TCP,
                RecordType::SRV,
                vec![srv(TCP, 300, 1, 1, 5090, "sip1.example.test.")],
            )
    };
    let mut clean = Ua::new(zone());
    let mut faulty = Ua::with_fault(zone(), Fault::SkipNaptr);
    let (clean_queries, clean_target) = clean.first_target("sip:100@example.test", secs(0));
    let (faulty_queries, faulty_target) = faulty.first_target("sip:100@example.test", secs(0));
    assert_eq!(clean_queries[..2], [q("NAPTR", ZONE), q("SRV", TCP)]);
    assert_eq!(clean_target.map(|t| t.transport), Some(Transport::Tcp));
    assert_eq!(faulty_queries[0], q("SRV", UDP));
    assert!(!faulty_queries.contains(&q("NAPTR", ZONE)));
    assert_eq!(faulty_target.map(|t| t.transport), Some(Transport::Udp));
}

#[test]
fn fault_resolve_numeric_host_looks_the_address_up_as_a_name_first() {
    let mut clean = Ua::new(two_priorities());
    let mut faulty = Ua::with_fault(two_priorities(), Fault::ResolveNumericHost);
    let uri = "sip:100@127.0.0.9";
    assert_eq!(queries(&clean.resolve_all(uri, secs(0))), []);
    let events = faulty.resolve_all(uri, secs(0));
    assert_eq!(
        events,
        [
            q("NAPTR", "127.0.0.9."),
            q("SRV", "_sip._udp.127.0.0.9."),
            q("SRV", "_sip._tcp.127.0.0.9."),
            t("udp 127.0.0.9:5060"),
            x("the numeric host was the only target")
        ]
    );
    // An IPv6 address written as text is no domain name: nothing to look up.
    assert_eq!(
        faulty.resolve_all("sip:100@[::1]", secs(1)),
        [
            t("udp [::1]:5060"),
            x("the numeric host was the only target")
        ]
    );
}

#[test]
fn fault_numeric_host_default_tcp_ignores_rfc_3263s_udp() {
    let mut clean = Ua::new(Zone::default());
    let mut faulty = Ua::with_fault(Zone::default(), Fault::NumericHostDefaultTcp);
    let uri = "sip:100@127.0.0.9";
    assert_eq!(
        targets(&clean.resolve_all(uri, secs(0))),
        ["udp 127.0.0.9:5060"]
    );
    assert_eq!(
        targets(&faulty.resolve_all(uri, secs(0))),
        ["tcp 127.0.0.9:5060"]
    );
    // An explicit transport is still obeyed.
    assert_eq!(
        targets(&faulty.resolve_all("sip:100@127.0.0.9;transport=udp", secs(0))),
        ["udp 127.0.0.9:5060"]
    );
}

#[test]
fn fault_srv_despite_port_goes_where_srv_says() {
    let zone = || {
        two_priorities()
            .records(
                ZONE,
                RecordType::NAPTR,
                vec![naptr(ZONE, 10, 10, "s", "SIP+D2U", UDP)],
            )
            .records(ZONE, RecordType::A, vec![a(ZONE, 300, "127.0.0.10")])
    };
    let mut clean = Ua::new(zone());
    let mut faulty = Ua::with_fault(zone(), Fault::SrvDespitePort);
    let uri = "sip:100@example.test:5070";
    let (clean_queries, clean_target) = clean.first_target(uri, secs(0));
    assert_eq!(clean_queries, [q("A", ZONE)]);
    assert_eq!(
        clean_target.map(|t| show(&t)).as_deref(),
        Some("udp 127.0.0.10:5070")
    );
    let (faulty_queries, faulty_target) = faulty.first_target(uri, secs(0));
    assert_eq!(faulty_queries[..2], [q("NAPTR", ZONE), q("SRV", UDP)]);
    assert_eq!(faulty_target.map(|t| t.addr.port()), Some(5060));
}

#[test]
fn fault_naptr_despite_transport_follows_the_naptr() {
    let zone = || {
        two_priorities()
            .records(
                ZONE,
                RecordType::NAPTR,
                vec![naptr(ZONE, 10, 10, "s", "SIP+D2U", UDP)],
            )
            .records(
                TCP,
                RecordType::SRV,
                vec![srv(TCP, 300, 1, 1, 5080, "sip1.example.test.")],
            )
    };
    let mut clean = Ua::new(zone());
    let mut faulty = Ua::with_fault(zone(), Fault::NaptrDespiteTransport);
    let uri = "sip:100@example.test;transport=tcp";
    let (clean_queries, clean_target) = clean.first_target(uri, secs(0));
    assert_eq!(clean_queries[0], q("SRV", TCP));
    assert_eq!(clean_target.map(|t| t.transport), Some(Transport::Tcp));
    let (faulty_queries, faulty_target) = faulty.first_target(uri, secs(0));
    assert_eq!(faulty_queries[..2], [q("NAPTR", ZONE), q("SRV", UDP)]);
    assert_eq!(faulty_target.map(|t| t.transport), Some(Transport::Udp));
}

#[test]
fn fault_a_record_fallback_tries_the_domain_on_5060() {
    let zone = || two_priorities().records(ZONE, RecordType::A, vec![a(ZONE, 300, "127.0.0.10")]);
    let mut clean = Ua::new(zone());
    let mut faulty = Ua::with_fault(zone(), Fault::ARecordFallback);
    let clean_events = clean.resolve_all("sip:100@example.test", secs(0));
    let faulty_events = faulty.resolve_all("sip:100@example.test", secs(0));
    assert_eq!(targets(&clean_events).len(), 3);
    let faulty_targets = targets(&faulty_events);
    assert_eq!(faulty_targets.len(), 4);
    assert_eq!(faulty_targets[3], "udp 127.0.0.10:5060");
}

#[test]
fn fault_no_dirty_host_tries_the_failed_target_again() {
    let ttl = Some(secs(30));
    let mut tries_of_failed = Vec::new();
    for faults in [Faults::none(), Faults::one(Fault::NoDirtyHost)] {
        let mut ua = Ua::with_fault(two_priorities(), Fault::IgnoreWeights);
        // sip1 (first in DNS order) fails at 0 s.
        ua.dirty.mark(key("127.0.0.1:5060"), secs(0), ttl, &faults);
        let (_, target) = ua.first_target("sip:100@example.test", secs(10));
        tries_of_failed.push(show(&target.expect("a target")));
    }
    assert_eq!(
        tries_of_failed,
        ["udp 127.0.0.2:5061", "udp 127.0.0.1:5060"]
    );
}

#[test]
fn fault_dirty_host_forever_never_tries_it_first_again() {
    let ttl = Some(secs(30));
    let mut firsts = Vec::new();
    for faults in [Faults::none(), Faults::one(Fault::DirtyHostForever)] {
        let mut ua = Ua::with_fault(two_priorities(), Fault::IgnoreWeights);
        ua.dirty.mark(key("127.0.0.1:5060"), secs(0), ttl, &faults);
        let (_, target) = ua.first_target("sip:100@example.test", secs(3600));
        firsts.push(show(&target.expect("a target")));
    }
    assert_eq!(firsts, ["udp 127.0.0.1:5060", "udp 127.0.0.2:5061"]);
}

#[test]
fn the_trace_explains_the_order() {
    let zone = two_priorities().records(
        ZONE,
        RecordType::NAPTR,
        vec![naptr(ZONE, 10, 10, "s", "SIP+D2U", UDP)],
    );
    let mut ua = Ua::new(zone);
    let mut resolution = ua.start("sip:100@example.test");
    ua.run(&mut resolution, secs(0));
    let trace = resolution.trace().join("\n");
    eprintln!("{trace}");
    for expected in [
        "L5: NAPTR order 10 preference 10",
        "L8: priority groups",
        "L9: priority 10",
        "L12:",
        "try udp",
    ] {
        assert!(trace.contains(expected), "missing {expected:?} in\n{trace}");
    }
}

// ---------------------------------------------------------------------------------------------
// L13: dual stack (RFC 3263 §4.2, RFC 7984): both families of a target before the next.

/// Priority 10: sip1 with AAAA fd00::1 and A 127.0.0.1; priority 20: sip2 with A 127.0.0.2.
fn dual_stack_zone(additionals: Vec<Record>) -> Zone {
    Zone::default()
        .with(
            UDP,
            RecordType::SRV,
            answer_with_additionals(
                vec![
                    srv(UDP, 300, 10, 0, 5060, "sip1.example.test."),
                    srv(UDP, 300, 20, 0, 5061, "sip2.example.test."),
                ],
                additionals,
            ),
        )
        .records(
            "sip1.example.test.",
            RecordType::AAAA,
            vec![a("sip1.example.test.", 300, "fd00::1")],
        )
        .records(
            "sip1.example.test.",
            RecordType::A,
            vec![a("sip1.example.test.", 300, "127.0.0.1")],
        )
        .records(
            "sip2.example.test.",
            RecordType::A,
            vec![a("sip2.example.test.", 300, "127.0.0.2")],
        )
}

fn with_families(families: &[AddressFamily], faults: Faults) -> UaConfig {
    UaConfig {
        address_families: families.to_vec(),
        faults,
        ..UaConfig::default()
    }
}

const DUAL: [AddressFamily; 2] = [AddressFamily::Ipv6, AddressFamily::Ipv4];
const URI_UDP: &str = "sip:example.test;transport=udp";

#[test]
fn l13_dual_stack_tries_both_families_of_a_target_before_the_next() {
    let mut ua = Ua::with_config(
        dual_stack_zone(Vec::new()),
        with_families(&DUAL, Faults::none()),
    );
    let events = ua.resolve_all(URI_UDP, secs(0));
    assert_eq!(
        targets(&events),
        [
            "udp [fd00::1]:5060",
            "udp 127.0.0.1:5060",
            "udp 127.0.0.2:5061"
        ]
    );
    assert_eq!(
        queries(&events),
        [
            q("SRV", UDP),
            q("AAAA", "sip1.example.test."),
            q("A", "sip1.example.test."),
            q("AAAA", "sip2.example.test."),
            q("A", "sip2.example.test."),
        ]
    );
}

#[test]
fn l13_the_family_order_is_the_configured_one() {
    let ipv4_first = [AddressFamily::Ipv4, AddressFamily::Ipv6];
    let mut ua = Ua::with_config(
        dual_stack_zone(Vec::new()),
        with_families(&ipv4_first, Faults::none()),
    );
    let events = ua.resolve_all(URI_UDP, secs(0));
    assert_eq!(
        targets(&events),
        [
            "udp 127.0.0.1:5060",
            "udp [fd00::1]:5060",
            "udp 127.0.0.2:5061"
        ]
    );
}

#[test]
fn l13_an_ipv4_only_ua_never_asks_for_aaaa() {
    let mut ua = Ua::new(dual_stack_zone(Vec::new()));
    let events = ua.resolve_all(URI_UDP, secs(0));
    assert_eq!(
        targets(&events),
        ["udp 127.0.0.1:5060", "udp 127.0.0.2:5061"]
    );
    assert!(
        !queries(&events)
            .iter()
            .any(|e| matches!(e, Ev::Query(text) if text.starts_with("AAAA")))
    );
}

#[test]
fn l13_an_aaaa_in_the_srv_answer_is_used_without_a_query() {
    let additionals = vec![
        a("sip1.example.test.", 300, "fd00::1"),
        a("sip1.example.test.", 300, "127.0.0.1"),
    ];
    let mut ua = Ua::with_config(
        dual_stack_zone(additionals),
        with_families(&DUAL, Faults::none()),
    );
    let events = ua.resolve_all(URI_UDP, secs(0));
    assert_eq!(
        queries(&events),
        [
            q("SRV", UDP),
            q("AAAA", "sip2.example.test."),
            q("A", "sip2.example.test."),
        ]
    );
    assert_eq!(targets(&events)[0], "udp [fd00::1]:5060");
}

#[test]
fn l13_an_aaaa_only_target_is_reached_over_ipv6() {
    let zone = Zone::default()
        .records(
            UDP,
            RecordType::SRV,
            vec![srv(UDP, 300, 10, 0, 5060, "sip1.example.test.")],
        )
        .records(
            "sip1.example.test.",
            RecordType::AAAA,
            vec![a("sip1.example.test.", 300, "fd00::1")],
        );
    let mut ua = Ua::with_config(zone, with_families(&DUAL, Faults::none()));
    let events = ua.resolve_all(URI_UDP, secs(0));
    assert_eq!(targets(&events), ["udp [fd00::1]:5060"]);
}

#[test]
fn fault_ipv4_only_ignores_the_configured_ipv6() {
    let mut ua = Ua::with_config(
        dual_stack_zone(Vec::new()),
        with_families(&DUAL, Faults::one(Fault::Ipv4Only)),
    );
    let events = ua.resolve_all(URI_UDP, secs(0));
    assert_eq!(
        targets(&events),
        ["udp 127.0.0.1:5060", "udp 127.0.0.2:5061"]
    );
}

#[test]
fn fault_target_major_skip_leaves_a_target_after_its_first_address() {
    let mut ua = Ua::with_config(
        dual_stack_zone(Vec::new()),
        with_families(&DUAL, Faults::one(Fault::TargetMajorSkip)),
    );
    let events = ua.resolve_all(URI_UDP, secs(0));
    assert_eq!(
        targets(&events),
        ["udp [fd00::1]:5060", "udp 127.0.0.2:5061"]
    );
    assert!(
        !events.contains(&q("A", "sip1.example.test.")),
        "{events:?}"
    );
}
