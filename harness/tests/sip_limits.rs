//! The scripted SIP servers under bad or hostile input (issue 13): what a device sends that never
//! becomes a message is still recorded, and the limits on connections, idle time, slow messages
//! and pending bytes bite with a note on the timeline.
//!
//! Real sockets on loopback; every test has its own addresses in 127.0.92.0/24.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use srvlab::timeline::{EventKind, TcpUnframed, Transport, UnframedWhy};
use srvlab::world::World;
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
