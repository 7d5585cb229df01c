//! The scripted SIP servers under bad or hostile input (issue 13): what a device sends that never
//! becomes a message is still recorded, and the limits on connections, idle time, slow messages
//! and pending bytes bite with a note on the timeline.
//!
//! Real sockets on loopback; every test has its own addresses in 127.0.92.0/24.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use srvlab::model::case::Case;
use srvlab::model::diag::SourceFile;
use srvlab::servers::ConnectionLimits;
use srvlab::timeline::{EventKind, TcpUnframed, Timeline, Transport, UnframedWhy};
use srvlab::world::{World, WorldOptions};
use support::root;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A case with one server at `address` over `transports` that accepts everything.
fn one_server(address: &str, transports: &str) -> String {
    format!(
        "id: t\nzone:\n  origin: lab.test.\n  ttl: 60\n  records:\n    - A: {{name: sip, address: {address}}}\n\
         servers:\n  - host: sip.lab.test.\n    transports: {transports}\n    script: [{{behaviour: accept}}]\n"
    )
}

async fn world(yaml: &str) -> World {
    support::world_from("test-case.yaml", yaml, &root().join("fixtures/cases")).await
}

fn unframed(world: &World) -> Vec<TcpUnframed> {
    world
        .timeline()
        .events()
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::TcpUnframed(u) => Some(u),
            _ => None,
        })
        .collect()
}

/// Waits (at most 5 s) until `done` holds for the world's timeline.
async fn until(world: &World, what: &str, done: impl Fn(&[srvlab::timeline::Event]) -> bool) {
    for _ in 0..500 {
        if done(&world.timeline().events()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let shown: Vec<String> = world
        .timeline()
        .events()
        .iter()
        .map(ToString::to_string)
        .collect();
    panic!("{what} never happened; the timeline:\n{}", shown.join("\n"));
}

fn closed(events: &[srvlab::timeline::Event], remote: SocketAddr) -> bool {
    events
        .iter()
        .any(|e| matches!(&e.kind, EventKind::TcpClosed(c) if c.remote == remote))
}

const PARTIAL: &[u8] = b"OPTIONS sip:srvlab@sip.lab.test SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5";

/// A header block begun, then the device closes: the bytes are a `tcp_unframed` event before the
/// close, and the capture carries them in the connection's stream (tshark follows it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_of_a_connection_closed_mid_message_are_recorded_and_captured() {
    let world = world(&one_server("127.0.92.1", "[tcp]")).await;
    let mut tcp = TcpStream::connect("127.0.92.1:5060").await.unwrap();
    let me = tcp.local_addr().unwrap();
    tcp.write_all(b"\r\n\r\n").await.unwrap(); // a keep-alive first: no unframed byte
    tcp.write_all(PARTIAL).await.unwrap();
    tcp.shutdown().await.unwrap();
    drop(tcp);
    until(&world, "the close", |events| closed(events, me)).await;
    let events = world.timeline().events();
    let wall_start = world.timeline().wall_start();
    let found = unframed(&world);
    world.shutdown().await.unwrap();

    assert_eq!(found.len(), 1, "{found:#?}");
    let u = &found[0];
    assert_eq!(u.raw, PARTIAL);
    assert_eq!(
        (u.why, u.transport, u.remote, u.server.as_str()),
        (UnframedWhy::Closed, Transport::Tcp, me, "sip.lab.test.")
    );
    let at = |pred: &dyn Fn(&EventKind) -> bool| events.iter().position(|e| pred(&e.kind));
    assert!(
        at(&|k| matches!(k, EventKind::TcpUnframed(_)))
            < at(&|k| matches!(k, EventKind::TcpClosed(_))),
        "recorded before the close"
    );
    let line = events
        .iter()
        .find(|e| matches!(e.kind, EventKind::TcpUnframed(_)))
        .unwrap()
        .to_string();
    assert!(
        line.contains(&format!(
            "tcp {me} → 127.0.92.1:5060 [sip.lab.test.] {} unframed bytes: the connection closed before the message completed",
            PARTIAL.len()
        )),
        "{line}"
    );

    let pcap = std::env::temp_dir().join(format!("srvlab-unframed-{}.pcap", std::process::id()));
    srvlab::capture::write_pcap(&pcap, wall_start, &events).unwrap();
    let tshark = |args: &[&str]| {
        let out = std::process::Command::new("tshark")
            .arg("-r")
            .arg(&pcap)
            .args(args)
            .output()
            .expect("tshark is needed (scripts/test installs it)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let followed = tshark(&["-q", "-z", "follow,tcp,raw,0"]);
    let hex: String = PARTIAL.iter().map(|b| format!("{b:02x}")).collect();
    assert!(
        followed.lines().any(|l| l.trim() == hex),
        "the stream carries the bytes:\n{followed}"
    );
    // Sequence numbers hang together: no "previous segment not captured" and the like.
    assert_eq!(
        tshark(&["-Y", "tcp.analysis.flags && !tcp.analysis.window_update"]),
        ""
    );
    let _ = std::fs::remove_file(&pcap);
}

/// Over TLS: the decrypted bytes of a message begun when the device closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_bytes_of_a_connection_closed_mid_message_are_recorded() {
    let world = world(&one_server("127.0.92.2", "[tls]")).await;
    let config = world
        .pki()
        .unwrap()
        .client_config(srvlab::tls::CertificateCheck::Full)
        .unwrap();
    let tcp = TcpStream::connect("127.0.92.2:5061").await.unwrap();
    let me = tcp.local_addr().unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::clone(&config));
    let name = tokio_rustls::rustls::pki_types::ServerName::try_from("sip.lab.test").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    tls.write_all(PARTIAL).await.unwrap();
    tls.flush().await.unwrap();
    tls.shutdown().await.unwrap();
    let mut rest = Vec::new();
    let _ = tls.read_to_end(&mut rest).await;
    drop(tls);
    until(&world, "the close", |events| closed(events, me)).await;
    let found = unframed(&world);
    world.shutdown().await.unwrap();
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].raw, PARTIAL);
    assert_eq!(
        (found[0].why, found[0].transport),
        (UnframedWhy::Closed, Transport::Tls)
    );
}

/// After a fatal framing error, what came with the broken header block is not lost either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_after_a_fatal_framing_error_are_recorded() {
    let world = world(&one_server("127.0.92.3", "[tcp]")).await;
    let mut tcp = TcpStream::connect("127.0.92.3:5060").await.unwrap();
    let me = tcp.local_addr().unwrap();
    let head = b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/TCP h\r\n\r\n"; // no Content-Length
    tcp.write_all(&[&head[..], b"and then this"].concat())
        .await
        .unwrap();
    until(&world, "the reset", |events| closed(events, me)).await;
    let found = unframed(&world);
    let malformed: Vec<Vec<u8>> = world
        .timeline()
        .events()
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::SipMalformed(m) => Some(m.raw),
            _ => None,
        })
        .collect();
    world.shutdown().await.unwrap();
    assert_eq!(malformed, vec![head.to_vec()]);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(
        (found[0].raw.as_slice(), found[0].why),
        (&b"and then this"[..], UnframedWhy::FramingError)
    );
}

/// A world whose servers have `limits`; the DNS listens on a free port of 127.0.0.1.
async fn world_with(yaml: &str, limits: ConnectionLimits) -> World {
    let (case, diagnostics) = Case::parse(&SourceFile::new("test-case.yaml", yaml), &root());
    let case = case.unwrap_or_else(|| panic!("the case does not validate:\n{diagnostics}"));
    let options = WorldOptions {
        connection_limits: limits,
        ..WorldOptions::default()
    };
    World::start(&case, &options, Timeline::new())
        .await
        .expect("the world comes up")
}

fn notes(world: &World) -> Vec<String> {
    world
        .timeline()
        .events()
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::Note { text } => Some(text),
            _ => None,
        })
        .collect()
}

/// Reads until the server closes (FIN or RST); how long that took. Panics after `within`.
async fn closes_within(stream: &mut (impl AsyncReadExt + Unpin), within: Duration) -> Duration {
    let started = std::time::Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(within, stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return started.elapsed(),
            Ok(Ok(_)) => {}
            Err(_) => panic!("still open after {within:?}"),
        }
    }
}

fn options_request(branch: &str) -> Vec<u8> {
    format!(
        "OPTIONS sip:srvlab@sip.lab.test SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bK-{branch}\r\n\
         From: <sip:t@lab.test>;tag=1\r\nTo: <sip:srvlab@sip.lab.test>\r\nCall-ID: {branch}\r\n\
         CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// Sends an OPTIONS and reads the response's status line.
async fn options(stream: &mut TcpStream, branch: &str) -> String {
    stream.write_all(&options_request(branch)).await.unwrap();
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    while !response.windows(4).any(|w| w == b"\r\n\r\n") {
        let len = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("an answer within 5 s")
            .unwrap();
        assert!(len > 0, "closed before answering");
        response.extend_from_slice(&buf[..len]);
    }
    let text = String::from_utf8_lossy(&response).into_owned();
    text.lines().next().unwrap_or_default().to_owned()
}

/// Slowloris: a header block trickling in a byte at a time is closed at the message time
/// limit (the idle limit alone would never bite), with the note and the bytes it had sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_trickling_in_is_closed_at_the_message_time_limit() {
    let limits = ConnectionLimits {
        message: Duration::from_millis(400),
        ..ConnectionLimits::default()
    };
    let world = world_with(&one_server("127.0.92.10", "[tcp]"), limits).await;
    let mut tcp = TcpStream::connect("127.0.92.10:5060").await.unwrap();
    let me = tcp.local_addr().unwrap();
    let mut sent = Vec::new();
    let started = std::time::Instant::now();
    let mut closed_after = None;
    for byte in PARTIAL.iter().cycle().take(200) {
        if tcp.write_all(&[*byte]).await.is_err() {
            break;
        }
        sent.push(*byte);
        let mut buf = [0u8; 64];
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_millis(50), tcp.read(&mut buf)).await
        {
            closed_after = Some(started.elapsed());
            break;
        }
    }
    let closed_after = closed_after.expect("the server never closed the slow connection (10 s)");
    // Tolerance: the limit counts from the first byte; the close is seen within a poll or two.
    assert!(
        closed_after >= Duration::from_millis(400) && closed_after < Duration::from_secs(3),
        "closed after {closed_after:?}"
    );
    until(&world, "the close", |events| closed(events, me)).await;
    let found = unframed(&world);
    let notes = notes(&world);
    world.shutdown().await.unwrap();
    assert!(
        notes.iter().any(|n| n.starts_with(&format!(
            "sip.lab.test.: closed the tcp connection from {me} to 127.0.92.10:5060: a message begun 400ms before was still incomplete ("
        ))),
        "{notes:#?}"
    );
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(sent.starts_with(&found[0].raw), "{found:?}");
    assert!(!found[0].raw.is_empty());
}

/// The same over TLS: the message time limit counts for the SIP inside, and for a handshake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_a_trickling_message_and_a_handshake_never_finished_are_closed() {
    let limits = ConnectionLimits {
        message: Duration::from_millis(400),
        ..ConnectionLimits::default()
    };
    let world = world_with(&one_server("127.0.92.11", "[tls]"), limits).await;
    let config = world
        .pki()
        .unwrap()
        .client_config(srvlab::tls::CertificateCheck::Full)
        .unwrap();
    let tcp = TcpStream::connect("127.0.92.11:5061").await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::clone(&config));
    let name = tokio_rustls::rustls::pki_types::ServerName::try_from("sip.lab.test").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    tls.write_all(&PARTIAL[..10]).await.unwrap();
    tls.flush().await.unwrap();
    let after = closes_within(&mut tls, Duration::from_secs(5)).await;
    assert!(
        after >= Duration::from_millis(300),
        "closed after {after:?}"
    );

    // A handshake begun (a byte of a ClientHello) and never finished.
    let mut raw = TcpStream::connect("127.0.92.11:5061").await.unwrap();
    let me = raw.local_addr().unwrap();
    raw.write_all(&[0x16]).await.unwrap();
    closes_within(&mut raw, Duration::from_secs(5)).await;
    until(&world, "the close", |events| closed(events, me)).await;
    let notes = notes(&world);
    world.shutdown().await.unwrap();
    assert!(
        notes
            .iter()
            .any(|n| n.contains("to 127.0.92.11:5061: a message begun 400ms before")),
        "{notes:#?}"
    );
    assert!(
        notes.iter().any(|n| n
            == &format!("sip.lab.test.: closed the tls connection from {me} to 127.0.92.11:5061: its TLS handshake was not complete within 400ms (message time limit)")),
        "{notes:#?}"
    );
}

/// A connection over which nothing crosses is closed at the idle limit; CRLF keep-alives keep
/// another one open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_is_closed_and_keep_alives_keep_one_open() {
    let limits = ConnectionLimits {
        idle: Duration::from_millis(500),
        message: Duration::from_millis(200),
        ..ConnectionLimits::default()
    };
    let world = world_with(&one_server("127.0.92.12", "[tcp]"), limits).await;
    let mut idle = TcpStream::connect("127.0.92.12:5060").await.unwrap();
    let me = idle.local_addr().unwrap();
    let mut kept = TcpStream::connect("127.0.92.12:5060").await.unwrap();
    let started = std::time::Instant::now();
    // CRLF pairs more often than the idle limit, over longer than the message limit.
    while started.elapsed() < Duration::from_millis(1200) {
        kept.write_all(b"\r\n\r\n").await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after = closes_within(&mut idle, Duration::from_secs(5)).await;
    assert!(after <= Duration::from_secs(3), "closed after {after:?}");
    assert_eq!(options(&mut kept, "kept").await, "SIP/2.0 200 OK");
    let notes = notes(&world);
    let events = world.timeline().events();
    world.shutdown().await.unwrap();
    assert!(
        notes.contains(&format!(
            "sip.lab.test.: closed the tcp connection from {me} to 127.0.92.12:5060: no byte crossed it for 500ms (idle limit)"
        )),
        "{notes:#?}"
    );
    assert_eq!(
        notes
            .iter()
            .filter(|n| n.contains("closed the tcp"))
            .count(),
        1
    );
    assert!(closed(&events, me));
}

/// At the connection cap a new device still gets in: the connection idle the longest is
/// closed for it, with a note.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_connection_cap_the_longest_idle_makes_room_for_a_new_device() {
    let limits = ConnectionLimits {
        connections: 3,
        ..ConnectionLimits::default()
    };
    let world = world_with(&one_server("127.0.92.13", "[tcp]"), limits).await;
    let mut idle = Vec::new();
    for _ in 0..3 {
        let tcp = TcpStream::connect("127.0.92.13:5060").await.unwrap();
        idle.push(tcp);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let oldest = idle[0].local_addr().unwrap();
    let mut device = TcpStream::connect("127.0.92.13:5060").await.unwrap();
    assert_eq!(options(&mut device, "new").await, "SIP/2.0 200 OK");
    closes_within(&mut idle[0], Duration::from_secs(5)).await;
    let mut rest = idle.split_off(1);
    assert_eq!(options(&mut rest[0], "second").await, "SIP/2.0 200 OK");
    let notes = notes(&world);
    world.shutdown().await.unwrap();
    let cut: Vec<&String> = notes
        .iter()
        .filter(|n| n.contains("closed the tcp"))
        .collect();
    assert_eq!(cut.len(), 1, "{notes:#?}");
    assert!(
        cut[0].starts_with(&format!(
            "sip.lab.test.: closed the tcp connection from {oldest} to 127.0.92.13:5060: a new connection came with the server at its limit of 3 connections, and this one had been idle the longest ("
        )),
        "{cut:?}"
    );
}

/// The issue's memory reproducer, scaled down: connections each declaring a 1 MB body and
/// sending part of it. Each is refused as soon as its header says so (the body limit is the
/// connection's pending budget); and begun messages over the server's total budget close the
/// connection holding the most.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_bodies_are_bounded_per_connection_and_per_server() {
    let world = world_with(
        &one_server("127.0.92.14", "[tcp]"),
        ConnectionLimits::default(),
    )
    .await;
    let head = |length: usize| {
        format!(
            "MESSAGE sip:srvlab@sip.lab.test SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bK-m\r\n\
             From: <sip:t@lab.test>;tag=1\r\nTo: <sip:srvlab@sip.lab.test>\r\nCall-ID: m\r\n\
             CSeq: 1 MESSAGE\r\nContent-Type: text/plain\r\nContent-Length: {length}\r\n\r\n"
        )
        .into_bytes()
    };
    let mut big = Vec::new();
    for _ in 0..10 {
        let mut tcp = TcpStream::connect("127.0.92.14:5060").await.unwrap();
        tcp.write_all(&head(1_000_000)).await.unwrap();
        let _ = tcp.write_all(&vec![b'x'; 100_000]).await;
        big.push(tcp);
    }
    for tcp in &mut big {
        closes_within(tcp, Duration::from_secs(5)).await;
    }
    let malformed: Vec<String> = world
        .timeline()
        .events()
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::SipMalformed(m) => Some(m.reason),
            _ => None,
        })
        .collect();
    world.shutdown().await.unwrap();
    assert_eq!(malformed.len(), 10, "{malformed:#?}");
    assert!(
        malformed
            .iter()
            .all(|m| m == "Content-Length 1000000 exceeds the limit of 131072 bytes"),
        "{malformed:#?}"
    );

    // Within the per-connection budget, but over the server's: 8 × 100 KB against 256 KiB.
    let limits = ConnectionLimits {
        pending_per_server: 256 * 1024,
        ..ConnectionLimits::default()
    };
    let world = world_with(&one_server("127.0.92.15", "[tcp]"), limits).await;
    let mut conns = Vec::new();
    for _ in 0..8 {
        let mut tcp = TcpStream::connect("127.0.92.15:5060").await.unwrap();
        tcp.write_all(&head(120_000)).await.unwrap();
        let _ = tcp.write_all(&vec![b'x'; 100_000]).await;
        conns.push(tcp);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let notes = notes(&world);
    let cut: Vec<&String> = notes
        .iter()
        .filter(|n| n.contains("closed the tcp"))
        .collect();
    let mut open = 0;
    for tcp in &mut conns {
        let mut buf = [0u8; 16];
        if tokio::time::timeout(Duration::from_millis(50), tcp.read(&mut buf))
            .await
            .is_err()
        {
            open += 1;
        }
    }
    world.shutdown().await.unwrap();
    assert!(open <= 2, "{open} connections still hold ~100 KB each");
    assert_eq!(cut.len(), 8 - open, "{notes:#?}");
    assert!(
        cut.iter().all(|n| n.contains(
            "the server's connections held more than 262144 bytes that were not yet a whole message (its limit), this one the most ("
        )),
        "{cut:#?}"
    );
}

/// The issue's reproducer: `srvlab serve` under a 200-file limit (RLIMIT_NOFILE), 300 idle TCP
/// connections, then a device: it gets in (the idle longest give way within srvlab's
/// descriptor budget) instead of waiting behind connections srvlab could not accept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_a_200_file_limit_300_idle_connections_do_not_lock_a_device_out() {
    let dir = std::env::temp_dir().join(format!("srvlab-fd-limit-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let case = dir.join("case.yaml");
    std::fs::write(&case, one_server("127.0.92.20", "[tcp]")).unwrap();
    let out = dir.join("out");
    let mut serve = tokio::process::Command::new("prlimit")
        .arg("--nofile=200:200")
        .arg(env!("CARGO_BIN_EXE_srvlab"))
        .args([
            "serve",
            case.to_str().unwrap(),
            "--dns",
            "127.0.92.21:0",
            "--out",
        ])
        .arg(&out)
        .stdin(std::process::Stdio::piped())
        .stdout(std::fs::File::create(dir.join("stdout")).unwrap())
        .stderr(std::fs::File::create(dir.join("stderr")).unwrap())
        .kill_on_drop(true)
        .spawn()
        .expect("prlimit (util-linux) runs srvlab serve");
    let mut up = false;
    for _ in 0..500 {
        if TcpStream::connect("127.0.92.20:5060").await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        up,
        "serve did not come up: {}",
        std::fs::read_to_string(dir.join("stderr")).unwrap_or_default()
    );
    let mut idle = Vec::new();
    for _ in 0..300 {
        idle.push(TcpStream::connect("127.0.92.20:5060").await.unwrap());
    }
    let mut device = TcpStream::connect("127.0.92.20:5060").await.unwrap();
    let answered = tokio::time::timeout(Duration::from_secs(10), options(&mut device, "dev")).await;
    let _ = serve.start_kill();
    let _ = serve.wait().await;
    let timeline = std::fs::read_to_string(out.join("timeline.jsonl")).unwrap_or_default();
    assert_eq!(
        answered.as_deref(),
        Ok("SIP/2.0 200 OK"),
        "the device got no answer; {} events of {} lines",
        timeline.matches("\"event\"").count(),
        timeline.lines().count()
    );
    assert!(
        timeline.contains(
            "a new connection came with srvlab at its budget of 136 connections (from RLIMIT_NOFILE 200), and this one had been idle the longest"
        ),
        "{}",
        timeline.lines().rev().take(5).collect::<Vec<_>>().join("\n")
    );
    assert!(
        !timeline.contains("accepting on"),
        "accept never failed for want of descriptors"
    );
    drop(idle);
    let _ = std::fs::remove_dir_all(&dir);
}
