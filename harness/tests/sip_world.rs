//! The SIP world on real sockets, judged by clients we did not write: sipsak (OPTIONS over UDP
//! and TCP) and SIPp (INVITE). Each behaviour, each way a phase ends, refusals as the client
//! and the timeline see them, and the pcap as tshark reads it.
//!
//! Each test has its own loopback addresses (127.0.0.6x/7x) so the tests run in parallel.

mod support;

use std::process::Output;
use std::time::{Duration, Instant};

use rstest::rstest;
use srvlab::timeline::{Event, EventKind, RefusalSeen, SipMessage, Transport};
use srvlab::world::World;
use support::root;

/// A world from case YAML; the DNS listens on a free port of 127.0.0.1.
async fn world(yaml: &str) -> World {
    let world = support::world_from("test-case.yaml", yaml, &root().join("fixtures/cases")).await;
    assert!(
        world.sees_refusals(),
        "these tests run as root (CI does) so that raw sockets can see refusals"
    );
    world
}

/// A case with one server at `address` running `script` (YAML flow sequence).
fn one_server(address: &str, transports: &str, script: &str) -> String {
    format!(
        "id: t\nzone:\n  origin: lab.test.\n  ttl: 60\n  records:\n    - A: {{name: sip, address: {address}}}\n\
         servers:\n  - host: sip.lab.test.\n    transports: {transports}\n    script: {script}\n"
    )
}

async fn run(program: &str, args: &[&str]) -> (Output, Duration) {
    let started = Instant::now();
    let dir = std::env::temp_dir().join(format!("srvlab-tools-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let output = tokio::process::Command::new(program)
        .args(args)
        .current_dir(&dir)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap_or_else(|err| {
            panic!("{program} is needed (scripts/test installs it from Debian's packages): {err}")
        });
    (output, started.elapsed())
}

fn shown(output: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// sipsak sends one OPTIONS (and retransmits it over UDP).
async fn sipsak_options(target: &str, transport: Transport) -> Output {
    let uri = format!("sip:srvlab@{target}");
    let mut args = vec!["-s", uri.as_str(), "-vv"];
    if transport == Transport::Tcp {
        args.extend(["-E", "tcp"]);
    }
    run("sipsak", &args).await.0
}

/// SIPp as a UAC: one call, `scenario` either a built-in (`-sn uac`) or a file.
async fn sipp(target: &str, transport: Transport, scenario: &[&str]) -> (Output, Duration) {
    let mode = match transport {
        Transport::Udp => "u1",
        Transport::Tcp => "t1",
        Transport::Tls => "l1",
    };
    let mut args = vec![target, "-m", "1", "-t", mode, "-i", "127.0.0.1", "-nostdin"];
    args.extend(["-timeout", "20s", "-timeout_error", "-s", "100"]);
    args.extend(scenario);
    run("sipp", &args).await
}

/// sipsak's exit code for a refused attempt: 3 (remote error, the ICMP) over UDP; over TCP it
/// counts the refused connect as a local error, 2.
fn refused_exit(transport: Transport) -> i32 {
    match transport {
        Transport::Udp => 3,
        Transport::Tcp | Transport::Tls => 2,
    }
}

fn sip_events(events: &[Event]) -> Vec<(&'static str, &SipMessage)> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::SipReceived(m) => Some(("in", m)),
            EventKind::SipSent(m) => Some(("out", m)),
            _ => None,
        })
        .collect()
}

/// "in OPTIONS", "out 200", … in order.
fn ladder(events: &[Event]) -> Vec<String> {
    sip_events(events)
        .into_iter()
        .map(|(dir, m)| match (&m.summary.method, m.summary.status) {
            (Some(method), _) => format!("{dir} {method}"),
            (None, Some(status)) => format!("{dir} {status}"),
            _ => format!("{dir} ?"),
        })
        .collect()
}

#[rstest]
#[case::udp(Transport::Udp, "127.0.0.61")]
#[case::tcp(Transport::Tcp, "127.0.0.62")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_answers_sipsak_options(#[case] transport: Transport, #[case] address: &str) {
    let world = world(&one_server(address, "[udp, tcp]", "[{behaviour: accept}]")).await;
    let out = sipsak_options(&format!("{address}:5060"), transport).await;
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    let events = world.timeline().events();
    assert_eq!(ladder(&events), vec!["in OPTIONS", "out 200"]);
    let sip = sip_events(&events);
    assert_eq!(sip[0].1.transport, transport);
    assert_eq!(sip[0].1.summary.call_id, sip[1].1.summary.call_id);
    assert_eq!(sip[0].1.summary.branch, sip[1].1.summary.branch);
    assert_eq!(sip[0].1.local.to_string(), format!("{address}:5060"));
    if transport == Transport::Tcp {
        assert!(
            events
                .iter()
                .any(|e| matches!(e.kind, EventKind::TcpConnected(_)))
        );
    }
    world.shutdown().await.unwrap();
}

#[rstest]
#[case::udp(Transport::Udp, "127.0.0.63")]
#[case::tcp(Transport::Tcp, "127.0.0.64")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_completes_a_sipp_call(#[case] transport: Transport, #[case] address: &str) {
    let world = world(&one_server(address, "[udp, tcp]", "[{behaviour: accept}]")).await;
    let (out, _) = sipp(&format!("{address}:5060"), transport, &["-sn", "uac"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    let events = world.timeline().events();
    assert_eq!(
        ladder(&events),
        vec![
            "in INVITE",
            "out 100",
            "out 180",
            "out 200",
            "in ACK",
            "in BYE",
            "out 200"
        ]
    );
    let ok = sip_events(&events)[3].1;
    let text = String::from_utf8_lossy(&ok.raw);
    assert!(text.contains("Content-Type: application/sdp"), "{text}");
    assert!(text.contains("\r\n\r\nv=0\r\n"), "{text}");
    world.shutdown().await.unwrap();
}

#[rstest]
#[case::udp(Transport::Udp, "127.0.0.65")]
#[case::tcp(Transport::Tcp, "127.0.0.66")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reply_503_carries_retry_after_and_is_acked(
    #[case] transport: Transport,
    #[case] address: &str,
) {
    let world = world(&one_server(
        address,
        "[udp, tcp]",
        "[{behaviour: reply, status: 503, retry_after: 30}]",
    ))
    .await;
    let scenario = root().join("fixtures/sipp/uac-503.xml");
    let (out, _) = sipp(
        &format!("{address}:5060"),
        transport,
        &["-sf", scenario.to_str().unwrap()],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    let events = world.timeline().events();
    assert_eq!(ladder(&events), vec!["in INVITE", "out 503", "in ACK"]);
    let reply = sip_events(&events)[1].1;
    assert!(String::from_utf8_lossy(&reply.raw).contains("\r\nRetry-After: 30\r\n"));
    world.shutdown().await.unwrap();
}

/// A stalling server answers nothing within 64·T1 (T1 = 50 ms in the scenario): SIPp gives
/// up, having retransmitted over UDP; with `trying` the INVITE gets a 100 and nothing more.
#[rstest]
#[case::udp(Transport::Udp, "127.0.0.67", false)]
#[case::udp_trying(Transport::Udp, "127.0.0.68", true)]
#[case::tcp(Transport::Tcp, "127.0.0.69", false)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stall_answers_nothing_within_64_t1(
    #[case] transport: Transport,
    #[case] address: &str,
    #[case] trying: bool,
) {
    let script = format!("[{{behaviour: stall, trying: {trying}}}]");
    let world = world(&one_server(address, "[udp, tcp]", &script)).await;
    let scenario = root().join("fixtures/sipp/uac-stall.xml");
    let (out, took) = sipp(
        &format!("{address}:5060"),
        transport,
        &["-sf", scenario.to_str().unwrap()],
    )
    .await;
    assert_ne!(
        out.status.code(),
        Some(0),
        "the call must fail: {}",
        shown(&out)
    );
    assert!(
        took >= Duration::from_millis(3200),
        "SIPp waited 64·T1: {took:?}"
    );
    let events = world.timeline().events();
    let ladder = ladder(&events);
    let sent: Vec<&String> = ladder.iter().filter(|l| l.starts_with("out")).collect();
    if trying {
        assert_eq!(sent, vec!["out 100"], "{ladder:?}");
    } else {
        assert!(sent.is_empty(), "{ladder:?}");
    }
    let invites = ladder.iter().filter(|l| *l == "in INVITE").count();
    match (transport, trying) {
        (Transport::Udp, false) => assert!(invites > 1, "UDP retransmissions arrive: {ladder:?}"),
        _ => assert_eq!(invites, 1, "{ladder:?}"),
    }
    world.shutdown().await.unwrap();
}

/// A delaying server answers, late.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delay_answers_after_its_delay() {
    let world = world(&one_server(
        "127.0.0.70",
        "[udp]",
        "[{behaviour: delay, delay: 700ms}]",
    ))
    .await;
    let out = sipsak_options("127.0.0.70:5060", Transport::Udp).await;
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    let events = world.timeline().events();
    let first_in = events
        .iter()
        .find(|e| matches!(e.kind, EventKind::SipReceived(_)))
        .unwrap();
    let answer = events
        .iter()
        .find(|e| matches!(e.kind, EventKind::SipSent(_)))
        .unwrap();
    let late = answer.at() - first_in.at();
    assert!(late >= Duration::from_millis(700), "{late:?}");
    assert!(late < Duration::from_millis(1700), "{late:?}");
    // sipsak retransmitted meanwhile (T1 = 500 ms); the retransmission got no early answer.
    let outs = ladder(&events)
        .iter()
        .filter(|l| l.starts_with("out"))
        .count();
    assert_eq!(outs, 1, "{:?}", ladder(&events));
    world.shutdown().await.unwrap();
}

/// Refusing is a closed port: the client gets ICMP port unreachable / a refused connection,
/// and the attempt still lands on the timeline.
#[rstest]
#[case::udp(Transport::Udp, "127.0.0.71", RefusalSeen::Icmp)]
#[case::tcp(Transport::Tcp, "127.0.0.72", RefusalSeen::Rst)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuse_is_a_closed_port_and_is_seen(
    #[case] transport: Transport,
    #[case] address: &str,
    #[case] seen: RefusalSeen,
) {
    let world = world(&one_server(address, "[udp, tcp]", "[{behaviour: refuse}]")).await;
    let out = sipsak_options(&format!("{address}:5060"), transport).await;
    assert_eq!(
        out.status.code(),
        Some(refused_exit(transport)),
        "a remote error: {}",
        shown(&out)
    );
    let text = shown(&out).to_lowercase();
    assert!(
        text.contains("refused") || text.contains("unreachable"),
        "the client sees the refusal: {text}"
    );
    // The raw socket reader may lag the client by a moment.
    let mut refused = Vec::new();
    for _ in 0..50 {
        refused = world
            .timeline()
            .events()
            .into_iter()
            .filter_map(|e| match e.kind {
                EventKind::Refused(r) => Some(r),
                _ => None,
            })
            .collect();
        if !refused.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let first = refused
        .first()
        .expect("the refused attempt is on the timeline");
    assert_eq!((first.transport, first.seen), (transport, seen));
    assert_eq!(first.local.to_string(), format!("{address}:5060"));
    assert_eq!(first.server, "sip.lab.test.");
    if transport == Transport::Udp {
        assert_eq!(first.summary.method.as_deref(), Some("OPTIONS"));
        assert!(
            first.summary.call_id.is_some(),
            "the ICMP quote shows the Call-ID"
        );
    }
    assert!(sip_events(&world.timeline().events()).is_empty());
    world.shutdown().await.unwrap();
}

/// `until: {requests: 2}`: the second request is still accepted, the third gets the next phase.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phase_ends_at_its_request_count() {
    let world = world(&one_server(
        "127.0.0.73",
        "[udp]",
        "[{behaviour: accept, until: {requests: 2}}, {behaviour: reply, status: 503}]",
    ))
    .await;
    let mut codes = Vec::new();
    for _ in 0..3 {
        codes.push(
            sipsak_options("127.0.0.73:5060", Transport::Udp)
                .await
                .status
                .code(),
        );
    }
    assert_eq!(codes, vec![Some(0), Some(0), Some(1)]);
    let events = world.timeline().events();
    let order: Vec<String> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::SipSent(m) => m.summary.status.map(|s| format!("out {s}")),
            EventKind::PhaseChanged(p) => Some(format!("phase {} {}", p.behaviour, p.reason)),
            _ => None,
        })
        .collect();
    assert_eq!(
        order,
        vec![
            "out 200",
            "out 200",
            "phase reply 503 after 2 requests",
            "out 503"
        ]
    );
    world.shutdown().await.unwrap();
}

/// `until: {after: 1s}` then refuse: the crash happens at 1 s, not at the next request, and a
/// request afterwards is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phase_ends_at_its_time() {
    let world = world(&one_server(
        "127.0.0.74",
        "[udp, tcp]",
        "[{behaviour: accept, until: {after: 1s}}, {behaviour: refuse}]",
    ))
    .await;
    let out = sipsak_options("127.0.0.74:5060", Transport::Udp).await;
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    // A connection open when the server crashes is reset, as a crashed host's would be.
    let mut open = tokio::net::TcpStream::connect("127.0.0.74:5060")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let mut buf = [0u8; 16];
    let read = tokio::io::AsyncReadExt::read(&mut open, &mut buf).await;
    assert_eq!(
        read.map_err(|e| e.kind()).err(),
        Some(std::io::ErrorKind::ConnectionReset),
        "the open connection was reset"
    );
    let events = world.timeline().events();
    let change = events
        .iter()
        .find(|e| matches!(e.kind, EventKind::PhaseChanged(_)))
        .expect("the phase changed by itself");
    // The server started right after the timeline; its phase began then.
    assert!(change.at() >= Duration::from_secs(1), "{:?}", change.at());
    assert!(
        change.at() < Duration::from_millis(1250),
        "{:?}",
        change.at()
    );
    assert!(events.iter().any(|e| matches!(
        &e.kind,
        EventKind::TcpClosed(c) if c.how == srvlab::timeline::CloseKind::ServerReset
    )));
    let out = sipsak_options("127.0.0.74:5060", Transport::Tcp).await;
    assert_eq!(
        out.status.code(),
        Some(refused_exit(Transport::Tcp)),
        "{}",
        shown(&out)
    );
    assert!(
        shown(&out).contains("Connection refused"),
        "{}",
        shown(&out)
    );
    world.shutdown().await.unwrap();
}

/// `until: {step: recover}`: the phase ends when the case reaches the step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phase_ends_at_its_step() {
    let world = world(&one_server(
        "127.0.0.75",
        "[udp]",
        "[{behaviour: reply, status: 486, until: {step: recover}}, {behaviour: accept}]",
    ))
    .await;
    assert_eq!(
        sipsak_options("127.0.0.75:5060", Transport::Udp)
            .await
            .status
            .code(),
        Some(1)
    );
    world.step("recover");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        sipsak_options("127.0.0.75:5060", Transport::Udp)
            .await
            .status
            .code(),
        Some(0)
    );
    let kinds: Vec<&str> = world
        .timeline()
        .events()
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Step { .. } => Some("step"),
            EventKind::PhaseChanged(_) => Some("phase"),
            _ => None,
        })
        .collect();
    assert_eq!(kinds, vec!["step", "phase"]);
    world.shutdown().await.unwrap();
}

/// Garbage from a device is kept whole with the reason; the server carries on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_packets_are_recorded_and_survived() {
    let world = world(&one_server(
        "127.0.0.76",
        "[udp, tcp]",
        "[{behaviour: accept}]",
    ))
    .await;
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let garbage = b"HELLO sip:x SIP/9.9\r\n\xff\xfe\r\n\r\n".to_vec();
    socket.send_to(&garbage, "127.0.0.76:5060").await.unwrap();
    let mut tcp = tokio::net::TcpStream::connect("127.0.0.76:5060")
        .await
        .unwrap();
    tokio::io::AsyncWriteExt::write_all(
        &mut tcp,
        b"OPTIONS sip:x SIP/2.0\r\nVia: nonsense\r\n\r\n",
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let out = sipsak_options("127.0.0.76:5060", Transport::Udp).await;
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    let malformed: Vec<_> = world
        .timeline()
        .events()
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::SipMalformed(m) => Some(m),
            _ => None,
        })
        .collect();
    assert_eq!(malformed.len(), 2, "{malformed:#?}");
    // The UDP and TCP readers are separate tasks: either may record first.
    let udp = malformed
        .iter()
        .find(|m| m.raw == garbage)
        .unwrap_or_else(|| panic!("the UDP garbage is not on the timeline: {malformed:#?}"));
    assert!(!udp.reason.is_empty());
    assert!(malformed.iter().all(|m| !m.reason.is_empty()));
    world.shutdown().await.unwrap();
}

/// A run's pcap, read by tshark: every DNS and SIP packet decodes, with the Call-IDs and
/// branches of the timeline; refusals show as ICMP port unreachable and RST.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tshark_decodes_the_capture_of_a_run() {
    let yaml = "id: t\nzone:\n  origin: lab.test.\n  ttl: 60\n  records:\n\
        \x20   - A: {name: up, address: 127.0.0.77}\n    - A: {name: down, address: 127.0.0.78}\n\
        servers:\n  - host: up.lab.test.\n    script: [{behaviour: accept}]\n\
        \x20 - host: down.lab.test.\n    script: [{behaviour: refuse}]\n";
    let world = world(yaml).await;
    let dns = world.dns().addr();
    for transport in [Transport::Udp, Transport::Tcp] {
        support::query(
            dns,
            transport,
            "up.lab.test.",
            hickory_server::proto::rr::RecordType::A,
        )
        .await;
        assert_eq!(
            sipsak_options("127.0.0.77:5060", transport)
                .await
                .status
                .code(),
            Some(0)
        );
        assert_eq!(
            sipsak_options("127.0.0.78:5060", transport)
                .await
                .status
                .code(),
            Some(refused_exit(transport))
        );
    }
    let (out, _) = sipp("127.0.0.77:5060", Transport::Udp, &["-sn", "uac"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let events = world.timeline().events();
    let wall_start = world.timeline().wall_start();
    world.shutdown().await.unwrap();

    let pcap = std::env::temp_dir().join(format!("srvlab-run-{}.pcap", std::process::id()));
    srvlab::capture::write_pcap(&pcap, wall_start, &events).unwrap();
    let (tshark, _) = run(
        "tshark",
        &[
            "-r",
            pcap.to_str().unwrap(),
            "-d",
            &format!("udp.port=={},dns", dns.port()),
            "-d",
            &format!("tcp.port=={},dns", dns.port()),
            "-T",
            "fields",
            "-E",
            "separator=|",
            "-e",
            "_ws.col.Protocol",
            "-e",
            "sip.Call-ID",
            "-e",
            "sip.Via.branch",
            "-e",
            "dns.qry.name",
            "-e",
            "icmp.type",
            "-e",
            "icmp.code",
            "-e",
            "tcp.flags.reset",
            "-e",
            "_ws.malformed",
        ],
    )
    .await;
    assert!(tshark.status.success(), "{}", shown(&tshark));
    let rows: Vec<Vec<String>> = String::from_utf8_lossy(&tshark.stdout)
        .lines()
        .map(|l| l.split('|').map(str::to_string).collect())
        .collect();
    assert!(
        rows.iter().all(|r| r[7].is_empty()),
        "nothing malformed: {rows:?}"
    );
    for (_, message) in sip_events(&events) {
        let call_id = message.summary.call_id.clone().unwrap();
        let branch = message.summary.branch.clone().unwrap();
        assert!(
            rows.iter()
                .any(|r| r[1] == call_id && r[2].split(',').any(|b| b == branch)),
            "no packet with Call-ID {call_id} and branch {branch}: {rows:?}"
        );
    }
    let dns_rows = rows.iter().filter(|r| r[3] == "up.lab.test").count();
    assert_eq!(dns_rows, 4, "query and answer over UDP and TCP: {rows:?}");
    assert!(
        rows.iter()
            .any(|r| r[4].starts_with('3') && r[5].starts_with('3')),
        "ICMP port unreachable: {rows:?}"
    );
    assert!(
        rows.iter().any(|r| r[6] == "1" || r[6] == "True"),
        "RST: {rows:?}"
    );
    let _ = std::fs::remove_file(&pcap);
}
