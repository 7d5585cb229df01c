//! The pcap rendering of a timeline, judged by tshark: every packet decodes, checksums are
//! right, TCP streams are whole, and what tshark reads matches the events.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hickory_server::proto::op::{Message, MessageType, OpCode, Query};
use hickory_server::proto::rr::rdata::SRV;
use hickory_server::proto::rr::{Name, RData, Record, RecordType};
use pcap_file::pcap::PcapReader;
use srvlab::capture::{CaptureError, PcapRecorder, write_pcap};
use srvlab::timeline::{
    CloseKind, DnsAnswer, DnsDropped, DnsQuery, Event, EventKind, PhaseChanged, RefusalSeen,
    Refused, SipMessage, SipSummary, TcpClosed, TcpConnection, Transport,
};

// ----- the world -------------------------------------------------------------------------

const DNS_SERVER: &str = "127.0.0.1:5353";
const DEVICE_SIP: &str = "127.0.0.1:5070";
const SERVER_UDP: &str = "127.0.0.52:5060";
const SERVER_TCP: &str = "127.0.0.52:5080";
const REFUSING_UDP: &str = "127.0.0.114:5060";
const REFUSING_TCP: &str = "127.0.0.114:5080";

/// 2023-11-14T22:13:20.123456789Z: nanoseconds on purpose, to see them carried over.
fn wall_start() -> SystemTime {
    UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789)
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn dns_query(id: u16, name: &str, qtype: RecordType) -> Vec<u8> {
    let mut message = Message::query();
    message.metadata.id = id;
    message.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    message.to_vec().unwrap()
}

fn dns_srv_answer(id: u16, name: &str, targets: &[(&str, u16)]) -> Vec<u8> {
    let mut message = Message::new(id, MessageType::Response, OpCode::Query);
    message.metadata.authoritative = true;
    let owner = Name::from_ascii(name).unwrap();
    message.add_query(Query::query(owner.clone(), RecordType::SRV));
    for (target, port) in targets {
        let srv = SRV::new(1, 50, *port, Name::from_ascii(target).unwrap());
        message.add_answer(Record::from_rdata(owner.clone(), 300, RData::SRV(srv)));
    }
    message.to_vec().unwrap()
}

/// What one SIP dialog in the test is about.
struct Sip {
    transport: &'static str,
    device: &'static str,
    branch: &'static str,
    call_id: &'static str,
    cseq: u32,
}

impl Sip {
    fn request(&self, method: &str, body: &str) -> Vec<u8> {
        let content_type = if body.is_empty() {
            String::new()
        } else {
            "Content-Type: application/sdp\r\n".to_owned()
        };
        format!(
            "{method} sip:sipserver52.snom.rocks SIP/2.0\r\n\
             Via: SIP/2.0/{t} {d};branch={b}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:phone@snom.rocks>;tag=1928301774\r\n\
             To: <sip:service@snom.rocks>\r\n\
             Call-ID: {c}\r\n\
             CSeq: {n} {method}\r\n\
             Contact: <sip:phone@{d}>\r\n\
             {content_type}\
             Content-Length: {len}\r\n\r\n{body}",
            t = self.transport,
            d = self.device,
            b = self.branch,
            c = self.call_id,
            n = self.cseq,
            len = body.len(),
        )
        .into_bytes()
    }

    fn response(&self, method: &str, status: u16, reason: &str) -> Vec<u8> {
        format!(
            "SIP/2.0 {status} {reason}\r\n\
             Via: SIP/2.0/{t} {d};branch={b}\r\n\
             From: <sip:phone@snom.rocks>;tag=1928301774\r\n\
             To: <sip:service@snom.rocks>;tag=a6c85cf\r\n\
             Call-ID: {c}\r\n\
             CSeq: {n} {method}\r\n\
             Content-Length: 0\r\n\r\n",
            t = self.transport,
            d = self.device,
            b = self.branch,
            c = self.call_id,
            n = self.cseq,
        )
        .into_bytes()
    }
}

const SDP: &str = "v=0\r\no=phone 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n\
                   t=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

fn message(transport: Transport, local: &str, remote: &str, raw: Vec<u8>) -> SipMessage {
    let text = String::from_utf8_lossy(&raw).into_owned();
    let header = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_owned()))
    };
    SipMessage {
        seen_ns: None,
        server: "sipserver52.snom.rocks.".into(),
        transport,
        local: addr(local),
        remote: addr(remote),
        summary: SipSummary {
            call_id: header("Call-ID:"),
            cseq: header("CSeq:"),
            branch: header("Via:").and_then(|v| v.split("branch=").nth(1).map(str::to_owned)),
            ..SipSummary::default()
        },
        raw,
    }
}

fn connection(local: &str, remote: &str) -> TcpConnection {
    TcpConnection {
        server: "sipserver52.snom.rocks.".into(),
        local: addr(local),
        remote: addr(remote),
    }
}

fn closed(local: &str, remote: &str, how: CloseKind) -> TcpClosed {
    TcpClosed {
        server: "sipserver52.snom.rocks.".into(),
        local: addr(local),
        remote: addr(remote),
        how,
    }
}

fn answer(query: &DnsQuery, raw: Vec<u8>) -> DnsAnswer {
    DnsAnswer {
        transport: query.transport,
        client: query.client,
        server: query.server,
        id: query.id,
        name: query.name.clone(),
        qtype: query.qtype.clone(),
        rcode: "NOERROR".into(),
        aa: true,
        tc: false,
        answers: vec![],
        authority_count: 0,
        additionals: vec![],
        fault: None,
        raw,
    }
}

fn query(transport: Transport, client: &str, id: u16, name: &str) -> DnsQuery {
    DnsQuery {
        transport,
        client: addr(client),
        server: addr(DNS_SERVER),
        id,
        name: name.into(),
        qtype: "SRV".into(),
        raw: dns_query(id, name, RecordType::SRV),
    }
}

const UDP_DIALOG: Sip = Sip {
    transport: "UDP",
    device: DEVICE_SIP,
    branch: "z9hG4bK-abc",
    call_id: "a84b4c76e66710@127.0.0.1",
    cseq: 1,
};
const TCP_DIALOG: Sip = Sip {
    transport: "TCP",
    device: "127.0.0.1:40001",
    branch: "z9hG4bK-tcp-invite",
    call_id: "tcp-invite-1@127.0.0.1",
    cseq: 20,
};
const TCP_SERVER_CLOSE: Sip = Sip {
    transport: "TCP",
    device: "127.0.0.1:40004",
    branch: "z9hG4bK-tcp-options",
    call_id: "tcp-options-2@127.0.0.1",
    cseq: 3,
};
const REFUSED_DIALOG: Sip = Sip {
    transport: "UDP",
    device: DEVICE_SIP,
    branch: "z9hG4bK-refused",
    call_id: "refused-3@127.0.0.1",
    cseq: 2,
};
const V6_DIALOG: Sip = Sip {
    transport: "UDP",
    device: "[::1]:5070",
    branch: "z9hG4bK-v6",
    call_id: "v6-4@::1",
    cseq: 1,
};

/// The hand-made timeline, with the number of packets each event must become.
fn timeline() -> Vec<(EventKind, usize)> {
    let q_udp = query(
        Transport::Udp,
        "127.0.0.1:40000",
        0x1111,
        "_sip._udp.snom.rocks.",
    );
    let a_udp = answer(
        &q_udp,
        dns_srv_answer(
            0x1111,
            "_sip._udp.snom.rocks.",
            &[
                ("sipserver52.snom.rocks.", 5060),
                ("sipserver114.snom.rocks.", 5060),
            ],
        ),
    );
    let q_tcp = query(
        Transport::Tcp,
        "127.0.0.1:40002",
        0x2222,
        "_sip._tcp.snom.rocks.",
    );
    let a_tcp = answer(
        &q_tcp,
        dns_srv_answer(
            0x2222,
            "_sip._tcp.snom.rocks.",
            &[("sipserver52.snom.rocks.", 5080)],
        ),
    );
    let q_dropped = query(
        Transport::Udp,
        "127.0.0.1:40000",
        0x3333,
        "_sips._tcp.snom.rocks.",
    );
    let dropped = DnsDropped {
        transport: q_dropped.transport,
        client: q_dropped.client,
        server: q_dropped.server,
        id: q_dropped.id,
        name: q_dropped.name.clone(),
        qtype: q_dropped.qtype.clone(),
        fault: srvlab::model::zone::DnsFaultKind::Timeout,
    };
    let tcp_dev = TCP_DIALOG.device;
    let tcp_dev2 = TCP_SERVER_CLOSE.device;
    vec![
        (
            EventKind::Step {
                name: "locate".into(),
            },
            0,
        ),
        (EventKind::DnsQuery(q_udp), 1),
        (EventKind::DnsAnswer(a_udp), 1),
        // First sight of a DNS TCP flow: handshake, data, ACK.
        (EventKind::DnsQuery(q_tcp), 5),
        (EventKind::DnsAnswer(a_tcp), 2),
        (EventKind::DnsQuery(q_dropped), 1),
        (EventKind::DnsDropped(dropped), 0),
        (
            EventKind::SipReceived(message(
                Transport::Udp,
                SERVER_UDP,
                DEVICE_SIP,
                UDP_DIALOG.request("OPTIONS", ""),
            )),
            1,
        ),
        (
            EventKind::SipSent(message(
                Transport::Udp,
                SERVER_UDP,
                DEVICE_SIP,
                UDP_DIALOG.response("OPTIONS", 200, "OK"),
            )),
            1,
        ),
        (EventKind::TcpConnected(connection(SERVER_TCP, tcp_dev)), 3),
        (
            EventKind::SipReceived(message(
                Transport::Tcp,
                SERVER_TCP,
                tcp_dev,
                TCP_DIALOG.request("INVITE", SDP),
            )),
            2,
        ),
        (
            EventKind::SipSent(message(
                Transport::Tcp,
                SERVER_TCP,
                tcp_dev,
                TCP_DIALOG.response("INVITE", 503, "Service Unavailable"),
            )),
            2,
        ),
        (
            EventKind::TcpClosed(closed(SERVER_TCP, tcp_dev, CloseKind::Peer)),
            3,
        ),
        (
            EventKind::PhaseChanged(PhaseChanged {
                server: "sipserver114.snom.rocks.".into(),
                phase: 1,
                behaviour: "refuse".into(),
                reason: "after 1 requests".into(),
            }),
            0,
        ),
        (
            EventKind::Refused(Refused {
                seen_ns: None,
                server: "sipserver114.snom.rocks.".into(),
                transport: Transport::Udp,
                local: addr(REFUSING_UDP),
                remote: addr(DEVICE_SIP),
                seen: RefusalSeen::Icmp,
                summary: SipSummary::default(),
                raw: REFUSED_DIALOG.request("OPTIONS", ""),
            }),
            2,
        ),
        (
            EventKind::Refused(Refused {
                seen_ns: None,
                server: "sipserver114.snom.rocks.".into(),
                transport: Transport::Tcp,
                local: addr(REFUSING_TCP),
                remote: addr("127.0.0.1:40003"),
                seen: RefusalSeen::Rst,
                summary: SipSummary::default(),
                raw: vec![],
            }),
            2,
        ),
        (EventKind::TcpConnected(connection(SERVER_TCP, tcp_dev2)), 3),
        (
            EventKind::SipReceived(message(
                Transport::Tcp,
                SERVER_TCP,
                tcp_dev2,
                TCP_SERVER_CLOSE.request("OPTIONS", ""),
            )),
            2,
        ),
        (
            EventKind::SipSent(message(
                Transport::Tcp,
                SERVER_TCP,
                tcp_dev2,
                TCP_SERVER_CLOSE.response("OPTIONS", 200, "OK"),
            )),
            2,
        ),
        (
            EventKind::TcpClosed(closed(SERVER_TCP, tcp_dev2, CloseKind::Server)),
            3,
        ),
        (
            EventKind::SipReceived(message(
                Transport::Udp,
                "[::1]:5060",
                V6_DIALOG.device,
                V6_DIALOG.request("OPTIONS", ""),
            )),
            1,
        ),
        (
            EventKind::SipSent(message(
                Transport::Udp,
                "[::1]:5060",
                V6_DIALOG.device,
                V6_DIALOG.response("OPTIONS", 200, "OK"),
            )),
            1,
        ),
        (
            EventKind::Note {
                text: "done".into(),
            },
            0,
        ),
    ]
}

/// The timeline as events: 12.5 ms apart, with odd nanoseconds so rounding would show.
fn events() -> Vec<(Event, usize)> {
    timeline()
        .into_iter()
        .enumerate()
        .map(|(i, (kind, packets))| {
            let seq = i as u64;
            let event = Event {
                seq,
                t_ns: seq * 12_500_000 + seq * 1_337,
                kind,
            };
            (event, packets)
        })
        .collect()
}

// ----- tshark ----------------------------------------------------------------------------

fn tshark() -> Command {
    let found = Command::new("tshark")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "tshark is not installed: run scripts/test, which installs Debian's `tshark` package"
    );
    Command::new("tshark")
}

/// Our SIP and DNS ports are not all the well-known ones: tell tshark.
const DECODE_AS: &[&str] = &[
    "-d",
    "udp.port==5353,dns",
    "-d",
    "tcp.port==5353,dns",
    "-d",
    "udp.port==5070,sip",
    "-d",
    "tcp.port==5080,sip",
    "-o",
    "ip.check_checksum:TRUE",
    "-o",
    "udp.check_checksum:TRUE",
    "-o",
    "tcp.check_checksum:TRUE",
];

/// One row per frame, one column per field (all occurrences, comma-separated). Tab-separated:
/// the Info column may hold a `|`.
fn fields(pcap: &Path, names: &[&str]) -> Vec<BTreeMap<String, String>> {
    let mut command = tshark();
    command.arg("-r").arg(pcap).args(DECODE_AS);
    command.args(["-T", "fields", "-E", "separator=/t", "-E", "occurrence=a"]);
    for name in names {
        command.args(["-e", name]);
    }
    let output = command.output().expect("tshark runs");
    assert!(
        output.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("tshark prints UTF-8")
        .lines()
        .map(|line| {
            let values: Vec<&str> = line.split('\t').collect();
            assert_eq!(values.len(), names.len(), "odd tshark line {line:?}");
            names
                .iter()
                .zip(values)
                .map(|(n, v)| ((*n).to_owned(), v.to_owned()))
                .collect()
        })
        .collect()
}

fn temp_pcap(name: &str) -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    std::env::temp_dir().join(format!(
        "srvlab-capture-{name}-{}-{nanos}.pcap",
        std::process::id()
    ))
}

const FIELDS: &[&str] = &[
    "frame.number",
    "frame.time_epoch",
    "ip.src",
    "ipv6.src",
    "udp.srcport",
    "tcp.srcport",
    "dns.id",
    "dns.qry.name",
    "dns.srv.target",
    "sip.Call-ID",
    "sip.Method",
    "sip.Status-Code",
    "sip.Via.branch",
    "icmp.type",
    "icmp.code",
    "icmpv6.type",
    "icmpv6.code",
    "tcp.flags.syn",
    "tcp.flags.reset",
    "tcp.flags.fin",
    "ip.checksum.status",
    "udp.checksum.status",
    "tcp.checksum.status",
    "icmp.checksum.status",
    "icmpv6.checksum.status",
    "_ws.col.Protocol",
    "_ws.col.Info",
    "_ws.expert.message",
    "_ws.expert.severity",
];

/// Wireshark's expert severity for "warning" (errors are above it).
const PI_WARN: u64 = 0x0060_0000;

fn first(row: &BTreeMap<String, String>, field: &str) -> String {
    row[field].split(',').next().unwrap_or("").to_owned()
}

fn is_set(value: &str) -> bool {
    matches!(value, "1" | "True")
}

// ----- tests -----------------------------------------------------------------------------

#[test]
fn tshark_decodes_every_packet_as_the_timeline_says() {
    let events = events();
    let pcap = temp_pcap("whole");
    let plain: Vec<Event> = events.iter().map(|(e, _)| e.clone()).collect();
    write_pcap(&pcap, wall_start(), &plain).expect("the pcap is written");
    let rows = fields(&pcap, FIELDS);
    for row in &rows {
        eprintln!(
            "{}",
            FIELDS
                .iter()
                .map(|f| row[*f].as_str())
                .collect::<Vec<_>>()
                .join("|")
        );
    }

    // Every event became exactly its packets, in order, stamped wall_start + t_ns.
    let expected_total: usize = events.iter().map(|(_, n)| n).sum();
    assert_eq!(rows.len(), expected_total);
    let start = wall_start().duration_since(UNIX_EPOCH).unwrap();
    let mut row = 0;
    for (event, packets) in &events {
        let expected = (start + Duration::from_nanos(event.t_ns)).as_micros();
        for r in &rows[row..row + packets] {
            let (secs, frac) = r["frame.time_epoch"].split_once('.').unwrap();
            let micros: u128 =
                secs.parse::<u128>().unwrap() * 1_000_000 + frac[..6].parse::<u128>().unwrap();
            assert_eq!(
                micros, expected,
                "frame {} of event #{}",
                r["frame.number"], event.seq
            );
        }
        row += packets;
    }

    // Every packet decodes cleanly, with good checksums and no TCP analysis warnings.
    for r in &rows {
        let frame = &r["frame.number"];
        for column in ["_ws.col.Protocol", "_ws.col.Info"] {
            assert!(!r[column].contains("Malformed"), "frame {frame}: {r:?}");
        }
        let message = r["_ws.expert.message"].to_lowercase();
        for bad in [
            "malformed",
            "checksum",
            "not captured",
            "acked",
            "retransmission",
            "out-of-order",
            "dup ack",
            "window",
        ] {
            assert!(!message.contains(bad), "frame {frame}: {bad}: {r:?}");
        }
        for severity in r["_ws.expert.severity"]
            .split(',')
            .filter(|s| !s.is_empty())
        {
            let severity: u64 = severity.parse().unwrap();
            // The one warning we want: "Connection reset (RST)".
            if severity >= PI_WARN {
                assert!(
                    is_set(&first(r, "tcp.flags.reset")) && message.contains("reset"),
                    "frame {frame}: expert warning: {r:?}"
                );
            }
        }
        // Checksum status 1 is "Good"; the first value is the outer packet's.
        for field in [
            "ip.checksum.status",
            "udp.checksum.status",
            "tcp.checksum.status",
            "icmp.checksum.status",
            "icmpv6.checksum.status",
        ] {
            let status = first(r, field);
            assert!(
                status.is_empty() || status == "1",
                "frame {frame}: {field}={status}: {r:?}"
            );
        }
    }

    // DNS: the names and SRV targets; the dropped query is there, unanswered.
    let dns = |id: &str| -> Vec<&BTreeMap<String, String>> {
        rows.iter().filter(|r| r["dns.id"] == id).collect()
    };
    let udp = dns("0x1111");
    assert_eq!(udp.len(), 2, "query and answer over UDP");
    assert!(
        udp.iter()
            .all(|r| r["dns.qry.name"] == "_sip._udp.snom.rocks")
    );
    assert_eq!(
        udp[1]["dns.srv.target"],
        "sipserver52.snom.rocks,sipserver114.snom.rocks"
    );
    let tcp = dns("0x2222");
    assert_eq!(tcp.len(), 2, "query and answer over TCP");
    assert!(
        tcp.iter()
            .all(|r| r["dns.qry.name"] == "_sip._tcp.snom.rocks")
    );
    assert!(tcp.iter().all(|r| !r["tcp.srcport"].is_empty()));
    assert_eq!(tcp[1]["dns.srv.target"], "sipserver52.snom.rocks");
    let dropped = dns("0x3333");
    assert_eq!(dropped.len(), 1);
    assert_eq!(dropped[0]["dns.qry.name"], "_sips._tcp.snom.rocks");

    // SIP: Call-ID, method or status, branch, over the right transport and addresses.
    let sip = |call_id: &str| -> Vec<&BTreeMap<String, String>> {
        rows.iter()
            .filter(|r| r["sip.Call-ID"] == call_id && r["icmp.type"].is_empty())
            .collect()
    };
    for (dialog, method, status, port_field) in [
        (&UDP_DIALOG, "OPTIONS", "200", "udp.srcport"),
        (&TCP_DIALOG, "INVITE", "503", "tcp.srcport"),
        (&TCP_SERVER_CLOSE, "OPTIONS", "200", "tcp.srcport"),
        (&V6_DIALOG, "OPTIONS", "200", "udp.srcport"),
    ] {
        let frames = sip(dialog.call_id);
        assert_eq!(frames.len(), 2, "{}: request and response", dialog.call_id);
        assert_eq!(frames[0]["sip.Method"], method);
        assert_eq!(frames[1]["sip.Status-Code"], status);
        assert!(frames.iter().all(|r| r["sip.Via.branch"] == dialog.branch));
        let device_port = dialog.device.rsplit(':').next().unwrap();
        assert_eq!(frames[0][port_field], device_port);
    }
    let v6 = sip(V6_DIALOG.call_id);
    assert_eq!(v6[0]["ipv6.src"], "::1");
    assert!(v6[0]["ip.src"].is_empty());

    // TCP: handshakes and closes as the events say.
    let syns = rows.iter().filter(|r| is_set(&r["tcp.flags.syn"])).count();
    assert_eq!(
        syns,
        2 * 3 + 1,
        "SYN and SYN/ACK per connection, one refused SYN"
    );
    let fins = rows.iter().filter(|r| is_set(&r["tcp.flags.fin"])).count();
    assert_eq!(fins, 4, "two FINs per closed connection");

    // The ICMP refusal quotes the refused OPTIONS.
    let icmp: Vec<_> = rows.iter().filter(|r| !r["icmp.type"].is_empty()).collect();
    assert_eq!(icmp.len(), 1);
    assert_eq!(icmp[0]["icmp.type"], "3");
    assert_eq!(icmp[0]["icmp.code"], "3");
    assert_eq!(first(icmp[0], "ip.src"), "127.0.0.114");
    assert_eq!(icmp[0]["sip.Call-ID"], REFUSED_DIALOG.call_id);
    assert_eq!(icmp[0]["sip.Via.branch"], REFUSED_DIALOG.branch);
    let refused_datagram = sip(REFUSED_DIALOG.call_id);
    assert_eq!(refused_datagram.len(), 1, "the refused datagram itself");

    // The RST refusal: SYN to the closed port, RST/ACK from it.
    let rst: Vec<_> = rows
        .iter()
        .filter(|r| is_set(&r["tcp.flags.reset"]))
        .collect();
    assert_eq!(rst.len(), 1);
    assert_eq!(first(rst[0], "ip.src"), "127.0.0.114");
    assert_eq!(rst[0]["tcp.srcport"], "5080");

    std::fs::remove_file(&pcap).unwrap();
}

#[test]
fn icmpv6_port_unreachable_for_an_ipv6_refusal() {
    let pcap = temp_pcap("icmpv6");
    let event = Event {
        seq: 0,
        t_ns: 1_000,
        kind: EventKind::Refused(Refused {
            seen_ns: None,
            server: "sipserver52.snom.rocks.".into(),
            transport: Transport::Udp,
            local: addr("[::1]:5060"),
            remote: addr(V6_DIALOG.device),
            seen: RefusalSeen::Icmp,
            summary: SipSummary::default(),
            raw: V6_DIALOG.request("OPTIONS", ""),
        }),
    };
    write_pcap(&pcap, wall_start(), &[event]).unwrap();
    let rows = fields(&pcap, FIELDS);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1]["icmpv6.type"], "1");
    assert_eq!(rows[1]["icmpv6.code"], "4");
    assert_eq!(first(&rows[1], "icmpv6.checksum.status"), "1");
    assert_eq!(rows[1]["sip.Call-ID"], V6_DIALOG.call_id);
    std::fs::remove_file(&pcap).unwrap();
}

#[test]
fn the_recorder_flushes_after_every_event() {
    let pcap = temp_pcap("streaming");
    let mut recorder = PcapRecorder::create(&pcap, wall_start()).unwrap();
    let mut written = 0;
    for (event, packets) in events() {
        recorder.record(&event).unwrap();
        written += packets;
        // Read back while the recorder still holds the file, never finished.
        let file = std::fs::File::open(&pcap).unwrap();
        let mut reader = PcapReader::new(file).expect("a pcap header is there from the start");
        let mut seen = 0;
        while let Some(packet) = reader.next_packet() {
            packet.expect("no partly written packet");
            seen += 1;
        }
        assert_eq!(seen, written, "after event #{}", event.seq);
    }
    assert_eq!(fields(&pcap, &["frame.number"]).len(), written);
    drop(recorder);
    std::fs::remove_file(&pcap).unwrap();
}

#[test]
fn an_uncreatable_file_is_an_error_naming_it() {
    let path = temp_pcap("missing-dir").join("run.pcap");
    let err = PcapRecorder::create(&path, wall_start()).unwrap_err();
    assert!(matches!(err, CaptureError::Create { .. }));
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
}

#[test]
fn messages_bigger_than_a_segment_are_split_into_a_clean_stream() {
    let pcap = temp_pcap("big");
    let body = "a=x-filler:".to_owned() + &"0123456789".repeat(15_000) + "\r\n";
    let invite = TCP_DIALOG.request("INVITE", &body);
    assert!(invite.len() > 2 * 65_483);
    let kinds = [
        EventKind::SipReceived(message(
            Transport::Tcp,
            SERVER_TCP,
            TCP_DIALOG.device,
            invite,
        )),
        EventKind::SipSent(message(
            Transport::Tcp,
            SERVER_TCP,
            TCP_DIALOG.device,
            TCP_DIALOG.response("INVITE", 503, "Service Unavailable"),
        )),
        // Nothing to send: no packets, no panic.
        EventKind::SipReceived(message(Transport::Udp, SERVER_UDP, DEVICE_SIP, vec![])),
    ];
    let events: Vec<Event> = kinds
        .into_iter()
        .enumerate()
        .map(|(i, kind)| Event {
            seq: i as u64,
            t_ns: i as u64 * 1_000_000,
            kind,
        })
        .collect();
    write_pcap(&pcap, wall_start(), &events).unwrap();
    let rows = fields(&pcap, FIELDS);
    // Handshake, three data segments with their ACKs, the response and its ACK, the empty
    // UDP datagram.
    assert_eq!(rows.len(), 3 + 3 * 2 + 2 + 1);
    for r in &rows {
        assert!(!r["_ws.expert.message"].contains("not captured"), "{r:?}");
        for severity in r["_ws.expert.severity"]
            .split(',')
            .filter(|s| !s.is_empty())
        {
            assert!(severity.parse::<u64>().unwrap() < PI_WARN, "{r:?}");
        }
        assert!(!r["_ws.col.Info"].contains("Malformed"), "{r:?}");
    }
    // Reassembled: the INVITE shows once, in the frame that completes it.
    let invites: Vec<_> = rows
        .iter()
        .filter(|r| r["sip.Method"] == "INVITE")
        .collect();
    assert_eq!(invites.len(), 1);
    assert_eq!(invites[0]["sip.Call-ID"], TCP_DIALOG.call_id);
    std::fs::remove_file(&pcap).unwrap();
}
