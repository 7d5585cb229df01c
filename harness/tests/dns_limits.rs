//! srvlab's DNS server against hostile or careless clients (issue 13), on real sockets of
//! 127.0.91.0/24: UDP answers capped at the server's maximum, queries it cannot parse recorded,
//! TCP connections that idle or crowd in bounded.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use hickory_server::proto::op::{Edns, Message, Query, ResponseCode};
use hickory_server::proto::rr::{Name, RecordType};
use rstest::rstest;
use srvlab::dns::{DnsLimits, DnsServer};
use srvlab::model::zone::ZoneSet;
use srvlab::timeline::{DnsMalformed, EventKind, Timeline, Transport};
use support::zones_from;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream, UdpSocket};

/// Where this file's servers listen (a block of its own: other suites run at the same time).
const LISTEN: &str = "127.0.91.1:0";
const CLIENT: &str = "127.0.91.2:0";
/// Loopback answers come in milliseconds; this only guards against a hang.
const WAIT: Duration = Duration::from_secs(5);

/// One SRV name with `targets` targets, each with an A record: the issue's amplifier.
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
    udp_exchange_within(server, bytes, WAIT).await
}

async fn udp_exchange_within(server: SocketAddr, bytes: &[u8], wait: Duration) -> Option<Vec<u8>> {
    let socket = UdpSocket::bind(CLIENT).await.unwrap();
    socket.send_to(bytes, server).await.unwrap();
    let mut buf = vec![0; 65_535];
    let (len, _) = tokio::time::timeout(wait, socket.recv_from(&mut buf))
        .await
        .ok()?
        .unwrap();
    buf.truncate(len);
    Some(buf)
}

/// A connection from this file's client address.
async fn connect(server: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(CLIENT.parse().unwrap()).unwrap();
    socket.connect(server).await.unwrap()
}

/// Sends one length-prefixed message over a fresh connection and returns the answer's bytes.
async fn tcp_exchange(server: SocketAddr, bytes: &[u8]) -> Option<Vec<u8>> {
    tcp_exchange_within(server, bytes, WAIT).await
}

async fn tcp_exchange_within(server: SocketAddr, bytes: &[u8], wait: Duration) -> Option<Vec<u8>> {
    let mut stream = connect(server).await;
    let len = u16::try_from(bytes.len()).unwrap().to_be_bytes();
    stream.write_all(&[&len[..], bytes].concat()).await.unwrap();
    let exchange = async {
        let length = usize::from(stream.read_u16().await.ok()?);
        let mut buf = vec![0; length];
        stream.read_exact(&mut buf).await.ok()?;
        Some(buf)
    };
    tokio::time::timeout(wait, exchange).await.ok()?
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

/// A query whose header promises a question that is cut off after two bytes of its name.
fn cut_query() -> Vec<u8> {
    let mut bytes = query_bytes("_sip._udp.wide.test.", RecordType::SRV, None);
    bytes.truncate(14);
    bytes
}

/// What came in that hickory cannot take as a query, each as the client sends it.
fn unparseable() -> Vec<(&'static str, Vec<u8>)> {
    let mut response = query_bytes("wide.test.", RecordType::A, None);
    response[2] |= 0x80; // QR: a response, which a server never answers (no reflection)
    vec![
        ("shorter than a header", b"\x12\x34\x01".to_vec()),
        ("a question cut short", cut_query()),
        ("garbage", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
        ("a response", response),
    ]
}

/// Issue 13, defect 5: every message that reaches the server is on the timeline with its bytes,
/// parseable or not, over UDP and over TCP.
#[tokio::test]
async fn every_message_received_is_on_the_timeline() {
    let server = start(wide_zone(1)).await;
    for (what, bytes) in unparseable() {
        udp_exchange_within(server.addr(), &bytes, Duration::from_millis(300)).await;
        tcp_exchange_within(server.addr(), &bytes, Duration::from_millis(300)).await;
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let events = server.timeline().events();
        let carrying = events
            .iter()
            .filter(|e| serde_json::to_string(e).unwrap().contains(&hex))
            .count();
        assert_eq!(carrying, 2, "{what} over UDP and TCP: {events:#?}");
    }
}

fn malformed(server: &DnsServer) -> Vec<DnsMalformed> {
    server
        .timeline()
        .events()
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::DnsMalformed(m) => Some(m),
            _ => None,
        })
        .collect()
}

/// Each message hickory cannot take as a query is a `dns_malformed` event with its exact
/// bytes, why, and the FORMERR as the client got it: hickory's answer (the request's header,
/// no question) where hickory answers, nothing where it does not (a response is never
/// answered: that would reflect it).
#[rstest]
#[tokio::test]
async fn unparseable_messages_are_recorded_with_why_and_the_formerr(
    #[values(Transport::Udp, Transport::Tcp)] transport: Transport,
) {
    for (what, bytes) in unparseable() {
        let server = start(wide_zone(1)).await;
        let wait = Duration::from_millis(300);
        let got = match transport {
            Transport::Udp => udp_exchange_within(server.addr(), &bytes, wait).await,
            _ => tcp_exchange_within(server.addr(), &bytes, wait).await,
        };
        let events = malformed(&server);
        let [event] = &events[..] else {
            panic!("{what}: one event: {events:#?}")
        };
        assert_eq!(event.transport, transport);
        assert_eq!(
            event.client.ip(),
            CLIENT.parse::<SocketAddr>().unwrap().ip()
        );
        assert_eq!(event.server, server.addr());
        assert_eq!(event.raw, bytes, "{what}: the bytes as sent");
        assert!(!event.cut_short);
        let formerr = what == "a question cut short" || what == "garbage";
        assert_eq!(
            event.id,
            (bytes.len() >= 12).then(|| u16::from_be_bytes([bytes[0], bytes[1]])),
            "{what}"
        );
        match got {
            Some(answer) => {
                assert!(formerr, "{what} got an answer");
                assert_eq!(event.answer, answer, "{what}: the FORMERR as sent");
                let answer = Message::from_vec(&answer).unwrap();
                assert_eq!(answer.metadata.response_code, ResponseCode::FormErr);
                assert_eq!(Some(answer.metadata.id), event.id);
                assert!(answer.queries.is_empty() && answer.edns.is_none());
            }
            None => {
                assert!(!formerr, "{what} got no FORMERR");
                assert!(event.answer.is_empty());
            }
        }
        let shown = server.timeline().events().last().unwrap().to_string();
        assert!(
            shown.contains(&format!("dns {transport} ")) && shown.contains(" malformed ("),
            "{shown}"
        );
        assert_eq!(shown.contains("answered FORMERR"), formerr, "{shown}");
        // timeline.jsonl is read back by reports: the event round-trips.
        for event in server.timeline().events() {
            let line = serde_json::to_string(&event).unwrap();
            let back: srvlab::timeline::Event = serde_json::from_str(&line).unwrap();
            assert_eq!(back, event);
        }
    }
}

/// `probe` until it gives something, for at most WAIT.
async fn eventually<T>(what: &str, probe: impl Fn() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(found) = probe() {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {what} within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A message framed for TCP: its two-byte length, then itself.
fn framed(message: &[u8]) -> Vec<u8> {
    let mut bytes = u16::try_from(message.len()).unwrap().to_be_bytes().to_vec();
    bytes.extend_from_slice(message);
    bytes
}

/// Issue 13, defect 5 over TCP: bytes of a connection that ends before they make a whole
/// message are on the timeline as they came, length prefix and all, with where they stopped.
#[tokio::test]
async fn a_tcp_message_cut_short_is_recorded() {
    let server = start(wide_zone(1)).await;
    let query = framed(&query_bytes("sip0.wide.test.", RecordType::A, None));
    let sent = [query[..12].to_vec(), vec![0]];
    for bytes in &sent {
        let mut stream = connect(server.addr()).await;
        stream.write_all(bytes).await.unwrap();
        stream.shutdown().await.unwrap();
        let mut rest = Vec::new();
        let read = tokio::time::timeout(WAIT, stream.read_to_end(&mut rest)).await;
        assert!(
            matches!(read, Ok(Ok(0))),
            "closed without an answer: {read:?}"
        );
    }
    let events = eventually("two events", || {
        let events = malformed(&server);
        (events.len() == 2).then_some(events)
    })
    .await;
    for (event, bytes) in events.iter().zip(&sent) {
        assert_eq!(event.transport, Transport::Tcp);
        assert!(event.cut_short);
        assert_eq!(&event.raw, bytes);
        assert!(event.answer.is_empty());
    }
    assert_eq!(
        events[0].reason,
        format!(
            "the connection ended after 10 of the {} bytes its length prefix announced",
            query.len() - 2
        )
    );
    assert_eq!(events[0].id, Some(u16::from_be_bytes([query[2], query[3]])));
    assert_eq!(
        events[1].reason,
        "the connection ended inside a message's two-byte length prefix"
    );
    for event in server.timeline().events() {
        let line = serde_json::to_string(&event).unwrap();
        assert_eq!(
            serde_json::from_str::<srvlab::timeline::Event>(&line).unwrap(),
            event
        );
    }
}

/// The pcap shows what the timeline holds: each unparseable message as the DNS packet it was
/// (tshark flags it malformed), the FORMERR after it, a cut-short TCP message as its bytes.
#[tokio::test]
async fn tshark_reads_unparseable_messages_and_their_formerr_from_the_pcap() {
    let server = start(wide_zone(1)).await;
    let wait = Duration::from_millis(200);
    for (_, bytes) in unparseable() {
        udp_exchange_within(server.addr(), &bytes, wait).await;
        tcp_exchange_within(server.addr(), &bytes, wait).await;
    }
    let mut stream = connect(server.addr()).await;
    stream.write_all(&framed(&cut_query())[..6]).await.unwrap();
    drop(stream);
    let events = eventually("nine malformed events", || {
        let events = server.timeline().events();
        let malformed = events
            .iter()
            .filter(|e| matches!(e.kind, EventKind::DnsMalformed(_)))
            .count();
        (malformed == 9).then_some(events)
    })
    .await;
    let pcap = std::env::temp_dir().join(format!(
        "srvlab-dns-limits-{}-{}.pcap",
        std::process::id(),
        server.addr().port()
    ));
    srvlab::capture::write_pcap(&pcap, server.timeline().wall_start(), &events).unwrap();
    let port = server.addr().port();
    let output = std::process::Command::new("tshark")
        .arg("-r")
        .arg(&pcap)
        .args(["-d", &format!("udp.port=={port},dns")])
        .args(["-d", &format!("tcp.port=={port},dns")])
        .args(["-T", "fields", "-E", "separator=/t", "-E", "occurrence=a"])
        .args([
            "-e",
            "_ws.col.Protocol",
            "-e",
            "dns.id",
            "-e",
            "dns.flags.rcode",
        ])
        .args(["-e", "_ws.malformed", "-e", "tcp.len"])
        .output()
        .expect("tshark runs (Debian's tshark package; scripts/test installs it)");
    let _ = std::fs::remove_file(&pcap);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
    let recorded: Vec<DnsMalformed> = malformed(&server);
    // Each FORMERR decodes as one, with the id of the message it answers.
    let mut formerr: Vec<String> = rows
        .iter()
        .filter(|r| r[0] == "DNS" && r[2] == "1")
        .map(|r| r[1].to_owned())
        .collect();
    let mut answered: Vec<String> = recorded
        .iter()
        .filter(|m| !m.answer.is_empty())
        .map(|m| format!("0x{:04x}", m.id.unwrap()))
        .collect();
    formerr.sort();
    answered.sort();
    assert_eq!(formerr, answered, "{text}");
    assert_eq!(answered.len(), 4);
    // Less than a header, a question cut short and garbage, over UDP and TCP: six DNS packets
    // tshark calls malformed (a response is a well-formed packet, just not a query).
    let flagged = rows
        .iter()
        .filter(|r| r[0] == "DNS" && !r[3].is_empty())
        .count();
    assert_eq!(flagged, 6, "{text}");
    // The cut-short message: its six bytes in one segment, the connection's only data.
    assert_eq!(rows.iter().filter(|r| r[4] == "6").count(), 1, "{text}");
}

/// Whether the server closed `stream` (FIN or RST) within `wait`.
async fn closed_within(stream: &mut TcpStream, wait: Duration) -> bool {
    let mut buf = [0; 1];
    matches!(
        tokio::time::timeout(wait, stream.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

/// Issue 13, defect 4 (DNS): connections beyond the cap (64 by default) are closed at once, with
/// a note; the ones open keep working, and a place that frees up is taken again.
#[tokio::test]
async fn tcp_connections_beyond_the_cap_are_closed_at_once() {
    let cap = DnsLimits::TCP_CONNECTIONS;
    let server = start(wide_zone(1)).await;
    let query = query_bytes("sip0.wide.test.", RecordType::A, None);
    let mut open = Vec::new();
    for _ in 0..cap {
        open.push(connect(server.addr()).await);
    }
    let mut over = connect(server.addr()).await;
    assert!(
        closed_within(&mut over, Duration::from_secs(1)).await,
        "connection {} is closed at once",
        cap + 1
    );
    let note = eventually("a note of the cap", || {
        server
            .timeline()
            .events()
            .into_iter()
            .find_map(|e| match e.kind {
                EventKind::Note { text } if text.contains("connections are open") => Some(text),
                _ => None,
            })
    })
    .await;
    assert!(
        note.contains(&format!("{cap} connections are open")),
        "{note}"
    );
    // The first connection still answers.
    let stream = &mut open[0];
    stream.write_all(&framed(&query)).await.unwrap();
    let length = usize::from(stream.read_u16().await.unwrap());
    let mut answer = vec![0; length];
    stream.read_exact(&mut answer).await.unwrap();
    assert_eq!(Message::from_vec(&answer).unwrap().answers.len(), 1);
    // One closes; once the server has seen it go, the next connection is served.
    drop(open.pop());
    answered_over_tcp_again(&server, &query).await;
}

/// A connection gets an answer to `query` once the server has freed a place (it frees it as
/// it closes a connection, a moment after it noticed).
async fn answered_over_tcp_again(server: &DnsServer, query: &[u8]) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while tcp_exchange(server.addr(), query).await.is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "a freed place is taken again"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// RFC 7766 §6.2.3: a connection that brings no whole query for the idle time is closed, a
/// slowloris (a byte at a time) as much as a silent one — hickory's server did that too, but
/// silently, and the slowloris's bytes vanished. Now each close is a note and the bytes that
/// came are a `dns_malformed` event. A configured cap holds as the default one does.
#[tokio::test]
async fn idle_tcp_connections_are_closed_and_noted() {
    let idle = Duration::from_millis(300);
    let limits = DnsLimits {
        tcp_idle: idle,
        tcp_connections: 2,
        ..DnsLimits::default()
    };
    let server = DnsServer::start_with(
        wide_zone(1),
        &[LISTEN.parse().unwrap()],
        Timeline::new(),
        limits,
    )
    .await
    .unwrap();
    let started = tokio::time::Instant::now();
    let mut silent = connect(server.addr()).await;
    let slow = connect(server.addr()).await;
    let mut third = connect(server.addr()).await;
    assert!(
        closed_within(&mut third, Duration::from_millis(200)).await,
        "the cap is 2"
    );
    let query = framed(&query_bytes("sip0.wide.test.", RecordType::A, None));
    let (mut slow_read, mut slow_write) = slow.into_split();
    let trickle = query.clone();
    let writer = tokio::spawn(async move {
        let mut sent = Vec::new();
        for byte in trickle {
            if slow_write.write_all(&[byte]).await.is_err() {
                break;
            }
            sent.push(byte);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        sent
    });
    assert!(closed_within(&mut silent, WAIT).await);
    let mut buf = [0; 1];
    let slow_closed = tokio::time::timeout(WAIT, slow_read.read(&mut buf)).await;
    assert!(matches!(slow_closed, Ok(Ok(0) | Err(_))), "{slow_closed:?}");
    // Loopback: the close comes at the idle time, give or take the scheduler (5 s at most).
    assert!(started.elapsed() >= idle, "{:?}", started.elapsed());
    let sent = writer.await.unwrap();
    assert!(sent.len() < query.len(), "the query never came whole");

    let notes = eventually("two idle notes", || {
        let notes: Vec<String> = server
            .timeline()
            .events()
            .into_iter()
            .filter_map(|e| match e.kind {
                EventKind::Note { text } if text.contains("no whole query for 300ms") => Some(text),
                _ => None,
            })
            .collect();
        (notes.len() == 2).then_some(notes)
    })
    .await;
    assert!(
        notes
            .iter()
            .all(|n| n.starts_with("dns: closed the tcp connection from 127.0.91.2:"))
    );
    let [cut] = &malformed(&server)[..] else {
        panic!("one dns_malformed: {:#?}", malformed(&server))
    };
    assert!(cut.cut_short);
    // What the server read before it closed: a beginning of what the writer sent.
    assert!(
        !cut.raw.is_empty() && sent.starts_with(&cut.raw),
        "{cut:?} of {sent:?}"
    );
    assert!(
        cut.reason.starts_with("closed for idling "),
        "{}",
        cut.reason
    );
    answered_over_tcp_again(&server, &query[2..]).await;
}
