//! srvlab's DNS server against hostile or careless clients (issue 13), on real sockets of
//! 127.0.91.0/24: UDP answers capped at the server's maximum, queries it cannot parse recorded,
//! TCP connections that idle or crowd in bounded.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use hickory_server::proto::op::{Edns, Message, Query};
use hickory_server::proto::rr::{Name, RecordType};
use srvlab::dns::{DnsLimits, DnsServer};
use srvlab::model::zone::ZoneSet;
use srvlab::timeline::{EventKind, Timeline};
use support::zones_from;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// Where this file's servers listen (a block of its own: other suites run at the same time).
const LISTEN: &str = "127.0.91.1:0";
const CLIENT: &str = "127.0.91.2:0";
/// Loopback answers come in milliseconds; this only guards against a hang.
const WAIT: Duration = Duration::from_secs(5);

/// One SRV name with `targets` targets, each with an A record: the amplifier.
fn wide_zone(targets: usize) -> ZoneSet {
    let mut yaml = String::from("origin: wide.test.\nttl: 60\nadditional: all\nrecords:\n");
    for i in 0..targets {
        yaml.push_str(&format!(
            "  - SRV: {{name: _sip._udp, priority: 1, weight: 1, port: 5060, target: sip{i}}}\n"
        ));
        yaml.push_str(&format!(
            "  - A: {{name: sip{i}, address: 127.0.91.{}}}\n",
            10 + i
        ));
    }
    zones_from(&[&yaml])
}

async fn start(zones: ZoneSet) -> DnsServer {
    DnsServer::start(zones, &[LISTEN.parse().unwrap()], Timeline::new())
        .await
        .expect("start the DNS server")
}

/// A query for `name`/`qtype`, with an OPT record advertising `edns` bytes, or none.
fn query_bytes(name: &str, qtype: RecordType, edns: Option<u16>) -> Vec<u8> {
    let mut message = Message::query();
    message.metadata.recursion_desired = false;
    message.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    message.edns = edns.map(|size| {
        let mut edns = Edns::new();
        edns.set_max_payload(size);
        edns
    });
    message.to_vec().unwrap()
}

/// Sends one datagram and returns the answer's bytes, if one comes.
async fn udp_exchange(server: SocketAddr, bytes: &[u8]) -> Option<Vec<u8>> {
    let socket = UdpSocket::bind(CLIENT).await.unwrap();
    socket.send_to(bytes, server).await.unwrap();
    let mut buf = vec![0; 65_535];
    let (len, _) = tokio::time::timeout(WAIT, socket.recv_from(&mut buf))
        .await
        .ok()?
        .unwrap();
    buf.truncate(len);
    Some(buf)
}

/// Sends one length-prefixed message over a fresh connection and returns the answer's bytes.
async fn tcp_exchange(server: SocketAddr, bytes: &[u8]) -> Option<Vec<u8>> {
    let mut stream = TcpStream::connect(server).await.unwrap();
    let len = u16::try_from(bytes.len()).unwrap().to_be_bytes();
    stream.write_all(&[&len[..], bytes].concat()).await.unwrap();
    let exchange = async {
        let length = usize::from(stream.read_u16().await.ok()?);
        let mut buf = vec![0; length];
        stream.read_exact(&mut buf).await.ok()?;
        Some(buf)
    };
    tokio::time::timeout(WAIT, exchange).await.ok()?
}

/// Issue 13, defect 6: a 100-target SRV answer is 14 kB; over UDP it must not go out larger
/// than the server's maximum (1,232 bytes, DNS Flag Day 2020), however large the client's
/// EDNS buffer; TC tells the client to come back over TCP, where the whole answer goes.
#[tokio::test]
async fn udp_answers_are_capped_at_the_servers_maximum_with_tc() {
    let server = start(wide_zone(100)).await;
    let query = query_bytes("_sip._udp.wide.test.", RecordType::SRV, Some(65_535));
    let udp = udp_exchange(server.addr(), &query)
        .await
        .expect("a UDP answer");
    assert!(
        udp.len() <= 1232,
        "a {}-byte query drew a {}-byte UDP answer",
        query.len(),
        udp.len()
    );
    let udp = Message::from_vec(&udp).expect("the truncated answer decodes");
    assert!(udp.metadata.truncation, "TC is set");

    let tcp = tcp_exchange(server.addr(), &query)
        .await
        .expect("a TCP answer");
    let tcp = Message::from_vec(&tcp).unwrap();
    assert!(!tcp.metadata.truncation);
    assert_eq!(tcp.answers.len(), 100, "every SRV record over TCP");
    assert_eq!(
        tcp.additionals.len(),
        100,
        "every target's address over TCP"
    );
}

/// RFC 1035 §4.2.1: without EDNS a UDP answer is at most 512 bytes.
#[tokio::test]
async fn udp_answers_without_edns_stay_within_512_bytes() {
    let server = start(wide_zone(100)).await;
    let query = query_bytes("_sip._udp.wide.test.", RecordType::SRV, None);
    let udp = udp_exchange(server.addr(), &query)
        .await
        .expect("a UDP answer");
    assert!(udp.len() <= 512, "{} bytes", udp.len());
    assert!(Message::from_vec(&udp).unwrap().metadata.truncation);
}

/// RFC 2181 §9: additional data that does not fit is left out without TC (hickory alone sets
/// TC); the answer itself is whole.
#[tokio::test]
async fn additional_data_that_does_not_fit_is_left_out_without_tc() {
    // Ten SRV records fit in 512 bytes (SRV targets are never compressed), their A records not.
    let server = start(wide_zone(10)).await;
    let query = query_bytes("_sip._udp.wide.test.", RecordType::SRV, None);
    let udp = udp_exchange(server.addr(), &query)
        .await
        .expect("a UDP answer");
    assert!(udp.len() <= 512, "{} bytes", udp.len());
    let udp = Message::from_vec(&udp).unwrap();
    assert!(!udp.metadata.truncation, "TC only when the answer is cut");
    assert_eq!(udp.answers.len(), 10);
    assert!(
        !udp.additionals.is_empty() && udp.additionals.len() < 10,
        "{} additional records",
        udp.additionals.len()
    );
}

/// The server's maximum is the caller's to set, up and down; the OPT record of the answer
/// says it (RFC 6891 §6.2.3), and the timeline holds the bytes the client got.
#[tokio::test]
async fn the_configured_maximum_is_honoured() {
    let query = query_bytes("_sip._udp.wide.test.", RecordType::SRV, Some(65_535));
    // 600: not even the SRV records fit; 4096: they do, some of their addresses not; 16384:
    // the whole 6 kB answer.
    for (udp_max, tc, additionals) in [
        (600, true, 0..1),
        (4096, false, 1..100),
        (16_384, false, 100..101),
    ] {
        let limits = DnsLimits {
            udp_max,
            ..DnsLimits::default()
        };
        let server = DnsServer::start_with(
            wide_zone(100),
            &[LISTEN.parse().unwrap()],
            Timeline::new(),
            limits,
        )
        .await
        .unwrap();
        let bytes = udp_exchange(server.addr(), &query)
            .await
            .expect("a UDP answer");
        assert!(bytes.len() <= usize::from(udp_max), "{} bytes", bytes.len());
        let answer = Message::from_vec(&bytes).unwrap();
        assert_eq!(answer.metadata.truncation, tc, "udp_max {udp_max}");
        assert_eq!(answer.answers.len(), if tc { 0 } else { 100 });
        assert!(
            additionals.contains(&answer.additionals.len()),
            "udp_max {udp_max}: {} additional records",
            answer.additionals.len()
        );
        assert_eq!(answer.edns.as_ref().map(Edns::max_payload), Some(udp_max));
        let recorded = server
            .timeline()
            .events()
            .into_iter()
            .find_map(|e| match e.kind {
                EventKind::DnsAnswer(a) => Some(a),
                _ => None,
            });
        let recorded = recorded.expect("the answer is on the timeline");
        assert_eq!(recorded.raw, bytes, "the bytes on the wire");
        assert_eq!(recorded.tc, tc);
    }
}
