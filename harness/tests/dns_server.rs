//! srvlab's DNS server on real sockets, judged on the wire, grouped by the RFC rule at stake.
//! Every table runs over UDP and over TCP.

mod support;

use std::time::Duration;

use hickory_server::proto::op::{Message, ResponseCode};
use hickory_server::proto::rr::{RData, RecordType};
use rstest::rstest;
use srvlab::model::zone::{DnsFault, DnsFaultKind};
use srvlab::timeline::{EventKind, Transport};
use support::{fixture_zones, query, query_within, start, zones_from};

fn sorted(records: &[hickory_server::proto::rr::Record]) -> Vec<String> {
    let mut shown: Vec<String> = records.iter().map(ToString::to_string).collect();
    shown.sort();
    shown
}

fn example() -> srvlab::model::zone::ZoneSet {
    fixture_zones("fixtures/zones/example-test.yaml")
}

/// RFC 1035 §4.1.1, RFC 2782, RFC 3403: every record type is answered authoritatively,
/// with the TTL written in the zone.
#[rstest]
#[case::naptr("example.test.", RecordType::NAPTR, &[
    "example.test. 300 IN NAPTR 10 10 \"s\" \"SIPS+D2T\" \"\" _sips._tcp.example.test.",
    "example.test. 300 IN NAPTR 20 10 \"s\" \"SIP+D2T\" \"\" _sip._tcp.example.test.",
    "example.test. 300 IN NAPTR 30 10 \"s\" \"SIP+D2U\" \"\" _sip._udp.example.test.",
])]
#[case::srv("_sip._udp.example.test.", RecordType::SRV, &[
    "_sip._udp.example.test. 300 IN SRV 10 60 5060 sip1.example.test.",
    "_sip._udp.example.test. 300 IN SRV 10 40 5060 sip2.example.test.",
    "_sip._udp.example.test. 300 IN SRV 20 0 5070 sip3.example.test.",
])]
#[case::srv_own_ttl("_sip._tcp.example.test.", RecordType::SRV, &[
    "_sip._tcp.example.test. 120 IN SRV 10 1 5060 sip1.example.test.",
])]
#[case::srv_no_service("_sip._sctp.example.test.", RecordType::SRV, &[
    "_sip._sctp.example.test. 300 IN SRV 0 0 0 .",
])]
#[case::a("sip1.example.test.", RecordType::A, &["sip1.example.test. 60 IN A 127.0.0.11"])]
#[case::aaaa("sip2.example.test.", RecordType::AAAA, &["sip2.example.test. 300 IN AAAA ::1"])]
#[case::cname("www.example.test.", RecordType::CNAME, &[
    "www.example.test. 300 IN CNAME sip1.example.test.",
])]
#[case::a_through_cname("www.example.test.", RecordType::A, &[
    "www.example.test. 300 IN CNAME sip1.example.test.",
    "sip1.example.test. 60 IN A 127.0.0.11",
])]
#[case::case_insensitive("SIP1.Example.TEST.", RecordType::A, &[
    "sip1.example.test. 60 IN A 127.0.0.11",
])]
#[tokio::test]
async fn answers_every_record_type_authoritatively(
    #[values(Transport::Udp, Transport::Tcp)] transport: Transport,
    #[case] name: &str,
    #[case] qtype: RecordType,
    #[case] expected: &[&str],
) {
    let server = start(example()).await;
    let answer = query(server.addr(), transport, name, qtype).await;
    assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
    assert!(answer.metadata.authoritative, "aa must be set");
    assert!(!answer.metadata.recursion_available, "ra must be clear");
    assert!(!answer.metadata.truncation);
    let mut expected: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
    expected.sort();
    // Names come back in the case they are stored in; compare without case.
    let got: Vec<String> = sorted(&answer.answers)
        .into_iter()
        .map(|s| s.to_lowercase())
        .collect();
    let expected: Vec<String> = expected.into_iter().map(|s| s.to_lowercase()).collect();
    assert_eq!(got, expected);
}

/// RFC 2308: NXDOMAIN for a name that does not exist, NODATA (NOERROR, empty answer) for a
/// name without that type, both with the SOA whose MINIMUM is the zone's negative TTL;
/// an empty non-terminal is NODATA too.
#[rstest]
#[case::nxdomain("nope.example.test.", RecordType::A, ResponseCode::NXDomain)]
#[case::nodata("sip1.example.test.", RecordType::AAAA, ResponseCode::NoError)]
#[case::nodata_at_origin("example.test.", RecordType::SRV, ResponseCode::NoError)]
#[case::empty_non_terminal("_udp.example.test.", RecordType::SRV, ResponseCode::NoError)]
#[tokio::test]
async fn negative_answers_carry_the_soa(
    #[values(Transport::Udp, Transport::Tcp)] transport: Transport,
    #[case] name: &str,
    #[case] qtype: RecordType,
    #[case] rcode: ResponseCode,
) {
    let server = start(example()).await;
    let answer = query(server.addr(), transport, name, qtype).await;
    assert_eq!(answer.metadata.response_code, rcode);
    assert!(answer.metadata.authoritative);
    assert!(answer.answers.is_empty());
    let soa = answer
        .authorities
        .iter()
        .find_map(|r| match &r.data {
            RData::SOA(soa) => Some(soa),
            _ => None,
        })
        .expect("an SOA in the authority section");
    assert_eq!(soa.minimum, 30, "SOA MINIMUM is the zone's negative_ttl");
}

/// Never an open resolver: a name outside every zone is REFUSED, not looked up.
#[rstest]
#[case::other_domain("example.com.", RecordType::A)]
#[case::parent_of_zone("test.", RecordType::NAPTR)]
#[case::root(".", RecordType::NS)]
#[tokio::test]
async fn names_outside_the_zones_are_refused(
    #[values(Transport::Udp, Transport::Tcp)] transport: Transport,
    #[case] name: &str,
    #[case] qtype: RecordType,
) {
    let server = start(example()).await;
    let answer = query(server.addr(), transport, name, qtype).await;
    assert_eq!(answer.metadata.response_code, ResponseCode::Refused);
    assert!(!answer.metadata.authoritative);
    assert!(answer.answers.is_empty());
}

/// SOA and NS are made for every zone.
#[rstest]
#[tokio::test]
async fn soa_and_ns_are_made(#[values(Transport::Udp, Transport::Tcp)] transport: Transport) {
    let server = start(example()).await;
    let soa = query(server.addr(), transport, "example.test.", RecordType::SOA).await;
    assert_eq!(soa.answers.len(), 1);
    assert_eq!(soa.answers[0].ttl, 300);
    let ns = query(server.addr(), transport, "example.test.", RecordType::NS).await;
    assert_eq!(
        sorted(&ns.answers),
        vec!["example.test. 300 IN NS ns.example.test.".to_string()]
    );
}

fn additional(answer: &Message) -> Vec<String> {
    sorted(&answer.additionals)
}

/// `additional: all` gives every SRV target's A and AAAA (hickory alone gives the first
/// target's only); `none` gives nothing; other answers are left alone.
#[rstest]
#[tokio::test]
async fn srv_answers_carry_the_additional_section_the_zone_asks_for(
    #[values(Transport::Udp, Transport::Tcp)] transport: Transport,
) {
    let server = start(example()).await;
    let answer = query(
        server.addr(),
        transport,
        "_sip._udp.example.test.",
        RecordType::SRV,
    )
    .await;
    assert_eq!(
        additional(&answer),
        vec![
            "sip1.example.test. 60 IN A 127.0.0.11",
            "sip2.example.test. 300 IN A 127.0.0.12",
            "sip2.example.test. 300 IN AAAA ::1",
            "sip3.example.test. 300 IN AAAA fd00::3",
        ]
    );
    let none = "origin: bare.test.\nttl: 60\nadditional: none\nrecords:\n\
        - SRV: {name: _sip._udp, priority: 1, weight: 1, port: 5060, target: a}\n\
        - SRV: {name: _sip._udp, priority: 1, weight: 1, port: 5060, target: b}\n\
        - A: {name: a, address: 127.0.0.21}\n\
        - A: {name: b, address: 127.0.0.22}\n";
    let server = start(zones_from(&[none])).await;
    let answer = query(
        server.addr(),
        transport,
        "_sip._udp.bare.test.",
        RecordType::SRV,
    )
    .await;
    assert_eq!(answer.answers.len(), 2);
    assert!(answer.additionals.is_empty(), "{:?}", additional(&answer));
}

/// The seed zone: NAPTR to the SRV name, two SRV at 1/50 with both A records in the
/// additional section.
#[rstest]
#[tokio::test]
async fn the_seed_zone_is_served_as_written(
    #[values(Transport::Udp, Transport::Tcp)] transport: Transport,
) {
    let server = start(fixture_zones("fixtures/zones/snom-rocks.yaml")).await;
    let naptr = query(server.addr(), transport, "snom.rocks.", RecordType::NAPTR).await;
    assert_eq!(
        sorted(&naptr.answers),
        vec!["snom.rocks. 300 IN NAPTR 1 60 \"s\" \"SIP+D2U\" \"\" _sip._udp.snom.rocks."]
    );
    let srv = query(
        server.addr(),
        transport,
        "_sip._udp.snom.rocks.",
        RecordType::SRV,
    )
    .await;
    assert!(srv.metadata.authoritative);
    assert_eq!(
        sorted(&srv.answers),
        vec![
            "_sip._udp.snom.rocks. 300 IN SRV 1 50 5060 sipserver114.snom.rocks.",
            "_sip._udp.snom.rocks. 300 IN SRV 1 50 5060 sipserver52.snom.rocks.",
        ]
    );
    assert_eq!(
        additional(&srv),
        vec![
            "sipserver114.snom.rocks. 300 IN A 127.0.0.114",
            "sipserver52.snom.rocks. 300 IN A 127.0.0.52",
        ]
    );
}

fn fault(spec: &str) -> DnsFault {
    spec.parse().unwrap()
}

/// Scripted faults, per name and optionally per type.
#[rstest]
#[case::servfail(
    "_sip._udp.example.test./SRV=servfail",
    Some(ResponseCode::ServFail),
    false
)]
#[case::servfail_any_type(
    "_sip._udp.example.test.=servfail",
    Some(ResponseCode::ServFail),
    false
)]
#[case::timeout("_sip._udp.example.test./SRV=timeout", None, false)]
#[case::truncate(
    "_sip._udp.example.test./SRV=truncate",
    Some(ResponseCode::NoError),
    true
)]
#[tokio::test]
async fn faults_shape_the_answer(
    #[values(Transport::Udp, Transport::Tcp)] transport: Transport,
    #[case] spec: &str,
    #[case] rcode: Option<ResponseCode>,
    #[case] truncated_over_udp: bool,
) {
    let server = start(example()).await;
    server.set_faults(vec![fault(spec)]);
    let answer = query_within(
        server.addr(),
        transport,
        "_sip._udp.example.test.",
        RecordType::SRV,
        Duration::from_millis(700),
    )
    .await;
    let events = server.timeline().events();
    match rcode {
        None => {
            assert!(answer.is_none(), "a timeout fault sends nothing");
            assert!(events.iter().any(|e| matches!(
                &e.kind,
                EventKind::DnsDropped(d) if d.fault == DnsFaultKind::Timeout && d.transport == transport
            )));
        }
        Some(rcode) => {
            let answer = answer.expect("an answer");
            assert_eq!(answer.metadata.response_code, rcode);
            let truncated = truncated_over_udp && transport == Transport::Udp;
            assert_eq!(answer.metadata.truncation, truncated);
            if truncated {
                assert!(answer.answers.is_empty(), "TC answer is empty");
                assert!(answer.metadata.authoritative);
            } else if rcode == ResponseCode::NoError {
                // Truncation concerns UDP only: TCP gets the whole answer.
                assert_eq!(answer.answers.len(), 3);
            }
        }
    }
    // Other names and types are not affected.
    let other = query(
        server.addr(),
        transport,
        "sip1.example.test.",
        RecordType::A,
    )
    .await;
    assert_eq!(other.metadata.response_code, ResponseCode::NoError);
    assert_eq!(other.answers.len(), 1);
}

#[rstest]
#[tokio::test]
async fn a_fault_limited_to_one_type_leaves_the_others_alone(
    #[values(Transport::Udp, Transport::Tcp)] transport: Transport,
) {
    let server = start(example()).await;
    server.set_faults(vec![fault("sip2.example.test./AAAA=servfail")]);
    let aaaa = query(
        server.addr(),
        transport,
        "sip2.example.test.",
        RecordType::AAAA,
    )
    .await;
    assert_eq!(aaaa.metadata.response_code, ResponseCode::ServFail);
    let a = query(
        server.addr(),
        transport,
        "sip2.example.test.",
        RecordType::A,
    )
    .await;
    assert_eq!(a.metadata.response_code, ResponseCode::NoError);
    assert_eq!(a.answers.len(), 1);
}

/// `times: N` faults only the first N matching queries, e.g. one lost answer then recovery.
#[rstest]
#[tokio::test]
async fn a_counted_fault_stops_after_its_count(
    #[values(Transport::Udp, Transport::Tcp)] transport: Transport,
) {
    let server = start(example()).await;
    server.set_faults(vec![fault("sip1.example.test./A=servfailx2")]);
    for _ in 0..2 {
        let answer = query(
            server.addr(),
            transport,
            "sip1.example.test.",
            RecordType::A,
        )
        .await;
        assert_eq!(answer.metadata.response_code, ResponseCode::ServFail);
    }
    let answer = query(
        server.addr(),
        transport,
        "sip1.example.test.",
        RecordType::A,
    )
    .await;
    assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
}

/// A truncated UDP answer makes the client come back over TCP, and that works.
#[tokio::test]
async fn truncation_forces_a_retry_over_tcp_that_succeeds() {
    let server = start(example()).await;
    server.set_faults(vec![fault("example.test./NAPTR=truncate")]);
    let udp = query(
        server.addr(),
        Transport::Udp,
        "example.test.",
        RecordType::NAPTR,
    )
    .await;
    assert!(udp.metadata.truncation);
    let tcp = query(
        server.addr(),
        Transport::Tcp,
        "example.test.",
        RecordType::NAPTR,
    )
    .await;
    assert!(!tcp.metadata.truncation);
    assert_eq!(tcp.answers.len(), 3);
}

/// Faults written in the zone file apply from the start.
#[tokio::test]
async fn faults_in_the_zone_file_apply() {
    let zone = "origin: f.test.\nttl: 60\nrecords:\n\
        - A: {name: a, address: 127.0.0.21}\n\
        faults:\n  - {name: a, type: A, fault: servfail, times: 1}\n";
    let server = start(zones_from(&[zone])).await;
    let first = query(server.addr(), Transport::Udp, "a.f.test.", RecordType::A).await;
    assert_eq!(first.metadata.response_code, ResponseCode::ServFail);
    let second = query(server.addr(), Transport::Udp, "a.f.test.", RecordType::A).await;
    assert_eq!(second.metadata.response_code, ResponseCode::NoError);
}

/// Zones are replaced while the server runs (cases change records mid-case to test caching):
/// the next query sees the new data and the SOA serial goes up.
#[rstest]
#[tokio::test]
async fn zones_are_replaced_while_serving(
    #[values(Transport::Udp, Transport::Tcp)] transport: Transport,
) {
    let before = "origin: r.test.\nttl: 60\nrecords:\n  - A: {name: sip, address: 127.0.0.31}\n";
    let after = "origin: r.test.\nttl: 5\nrecords:\n  - A: {name: sip, address: 127.0.0.32}\n";
    let server = start(zones_from(&[before])).await;
    let old = query(server.addr(), transport, "sip.r.test.", RecordType::A).await;
    assert_eq!(sorted(&old.answers), vec!["sip.r.test. 60 IN A 127.0.0.31"]);
    server.replace_zones(zones_from(&[after])).unwrap();
    let new = query(server.addr(), transport, "sip.r.test.", RecordType::A).await;
    assert_eq!(sorted(&new.answers), vec!["sip.r.test. 5 IN A 127.0.0.32"]);
    let soa = query(server.addr(), transport, "r.test.", RecordType::SOA).await;
    let RData::SOA(soa) = &soa.answers[0].data else {
        panic!("an SOA: {soa:?}")
    };
    assert_eq!(soa.serial, 2);
}

/// Every query and answer is an event: time, client, server, transport, name, type, rcode,
/// answer count and the raw bytes, which decode to what the client got.
#[rstest]
#[tokio::test]
async fn queries_and_answers_land_on_the_timeline(
    #[values(Transport::Udp, Transport::Tcp)] transport: Transport,
) {
    let server = start(example()).await;
    let got = query(
        server.addr(),
        transport,
        "_sip._udp.example.test.",
        RecordType::SRV,
    )
    .await;
    let refused = query(server.addr(), transport, "example.com.", RecordType::A).await;
    let events = server.timeline().events();
    let dns: Vec<_> = events
        .iter()
        .filter(|e| !matches!(e.kind, EventKind::Note { .. }))
        .collect();
    assert_eq!(dns.len(), 4, "{dns:#?}");
    assert!(
        events
            .windows(2)
            .all(|w| w[0].t_ns <= w[1].t_ns && w[0].seq < w[1].seq)
    );

    let EventKind::DnsQuery(q) = &dns[0].kind else {
        panic!("first a query: {:?}", dns[0])
    };
    assert_eq!(q.transport, transport);
    assert_eq!(q.server, server.addr());
    assert_eq!(q.client.ip(), server.addr().ip());
    assert_eq!(q.name, "_sip._udp.example.test.");
    assert_eq!(q.qtype, "SRV");
    assert_eq!(q.id, got.metadata.id);
    let raw_query = Message::from_vec(&q.raw).unwrap();
    assert_eq!(
        raw_query.queries[0].name().to_ascii(),
        "_sip._udp.example.test."
    );

    let EventKind::DnsAnswer(a) = &dns[1].kind else {
        panic!("then its answer: {:?}", dns[1])
    };
    assert_eq!((a.client, a.server, a.id), (q.client, q.server, q.id));
    assert_eq!(a.rcode, "NOERROR");
    assert!(a.aa && !a.tc);
    assert_eq!(a.answers.len(), 3);
    assert_eq!(a.additionals.len(), 4);
    let raw_answer = Message::from_vec(&a.raw).unwrap();
    assert_eq!(sorted(&raw_answer.answers), sorted(&got.answers));
    assert_eq!(sorted(&raw_answer.additionals), sorted(&got.additionals));

    let EventKind::DnsAnswer(r) = &dns[3].kind else {
        panic!("the refused answer: {:?}", dns[3])
    };
    assert_eq!(r.rcode, "REFUSED");
    assert_eq!(r.id, refused.metadata.id);
    assert!(!r.aa);

    // The JSON form round-trips (timeline.jsonl is read back by reports).
    for event in &events {
        let line = serde_json::to_string(event).unwrap();
        let back: srvlab::timeline::Event = serde_json::from_str(&line).unwrap();
        assert_eq!(&back, event);
    }
}

/// Port in use: a clear error naming the address, never a panic.
#[tokio::test]
async fn a_port_in_use_is_a_clear_error() {
    let holder = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let taken = holder.local_addr().unwrap();
    let result =
        srvlab::dns::DnsServer::start(example(), &[taken], srvlab::timeline::Timeline::new()).await;
    let err = result.err().expect("binding a taken port fails");
    let text = err.to_string();
    assert!(text.contains(&taken.to_string()), "{text}");
    assert!(text.contains("udp"), "{text}");
    assert!(text.contains("another program holds this port"), "{text}");
}
