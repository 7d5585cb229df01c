//! Datagrams the kernel drops because srvlab's receiver fell behind (issue 13): a burst into a
//! scripted SIP server's UDP socket and into the DNS server's, while the runtime that reads them
//! is blocked. What the timeline misses, it says: one note per burst, with the kernel's count —
//! every datagram sent is either on the timeline or counted in a note.
//!
//! Each test blocks its own single-threaded runtime (nothing reads), so the sockets' default
//! receive buffers overflow for certain. Addresses in 127.0.92.0/24.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use srvlab::timeline::{Event, EventKind};
use support::root;

const FLOOD: u32 = 3000;

/// Sends `FLOOD` datagrams of `payload` from a socket of its own; its address.
fn flood(to: SocketAddr, payload: Vec<u8>) -> std::thread::JoinHandle<SocketAddr> {
    std::thread::spawn(move || {
        let socket = std::net::UdpSocket::bind("127.0.92.99:0").unwrap();
        for _ in 0..FLOOD {
            socket.send_to(&payload, to).unwrap();
        }
        socket.local_addr().unwrap()
    })
}

/// The counts of every "the kernel dropped N datagram(s) to `to`/udp" note.
fn dropped(events: &[Event], to: SocketAddr) -> Vec<u32> {
    let prefix = "the kernel dropped ";
    let target = format!(" datagram(s) to {to}/udp (");
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Note { text } if text.starts_with(prefix) && text.contains(&target) => {
                Some(text[prefix.len()..].split(' ').next()?.parse().unwrap())
            }
            _ => None,
        })
        .collect()
}

/// Blocks the runtime's one thread while `flood` runs: nothing of srvlab's reads meanwhile.
fn blocked_while(flood: std::thread::JoinHandle<SocketAddr>) -> SocketAddr {
    let from = flood.join().unwrap();
    std::thread::sleep(Duration::from_millis(50));
    from
}

#[tokio::test(flavor = "current_thread")]
async fn a_burst_the_sip_server_could_not_read_is_a_note_with_the_kernels_count() {
    let yaml = "id: t\nzone:\n  origin: lab.test.\n  ttl: 60\n  records:\n    - A: {name: sip, address: 127.0.92.30}\n\
        servers:\n  - host: sip.lab.test.\n    transports: [udp]\n    script: [{behaviour: accept}]\n";
    let world = support::world_from("test-case.yaml", yaml, &root().join("fixtures/cases")).await;
    let to: SocketAddr = "127.0.92.30:5060".parse().unwrap();
    // Not SIP: each is recorded as malformed, and draws no answer.
    let from = blocked_while(flood(to, b"x".to_vec()));
    // Read what the buffer held; the burst's note comes at the first poll with no new drop.
    for _ in 0..300 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        if !dropped(&world.timeline().events(), to).is_empty() {
            break;
        }
    }
    let timeline = world.timeline().clone();
    world.shutdown().await.unwrap();
    let events = timeline.events();
    let received = events
        .iter()
        .filter(|e| matches!(&e.kind, EventKind::SipMalformed(m) if m.remote == from))
        .count() as u32;
    let notes = dropped(&events, to);
    assert_eq!(notes.len(), 1, "one burst, one note: {notes:?}");
    assert!(notes[0] > 0);
    assert_eq!(
        received + notes[0],
        FLOOD,
        "{received} on the timeline, {} counted dropped",
        notes[0]
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_burst_the_dns_server_could_not_read_is_a_note_with_the_kernels_count() {
    use hickory_server::proto::op::{Message, Query};
    use hickory_server::proto::rr::{Name, RecordType};
    let zones = support::zones_from(&[
        "origin: lab.test.\nttl: 60\nrecords:\n  - A: {name: sip, address: 127.0.92.31}\n",
    ]);
    let timeline = srvlab::timeline::Timeline::new();
    let dns =
        srvlab::dns::DnsServer::start(zones, &["127.0.92.32:0".parse().unwrap()], timeline.clone())
            .await
            .unwrap();
    let to = dns.addr();
    let mut query = Message::query();
    query.add_query(Query::query(
        Name::from_ascii("sip.lab.test.").unwrap(),
        RecordType::A,
    ));
    let from = blocked_while(flood(to, query.to_vec().unwrap()));
    for _ in 0..300 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        if !dropped(&timeline.events(), to).is_empty() {
            break;
        }
    }
    dns.shutdown().await.unwrap();
    let events = timeline.events();
    let received = events
        .iter()
        .filter(|e| matches!(&e.kind, EventKind::DnsQuery(q) if q.client == from))
        .count() as u32;
    let notes = dropped(&events, to);
    assert_eq!(notes.len(), 1, "one burst, one note: {notes:?}");
    assert!(notes[0] > 0);
    assert_eq!(
        received + notes[0],
        FLOOD,
        "{received} on the timeline, {} counted dropped",
        notes[0]
    );
}
