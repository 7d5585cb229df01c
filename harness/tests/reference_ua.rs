//! The reference UA against the world on loopback (T1 = 20 ms), judged on the world's
//! timeline; and against SIPp as a UAS, a server we did not write.
//!
//! Each test has its own loopback addresses (127.0.N.x) so the tests run in parallel.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use srvlab::sip::uri::SipUri;
use srvlab::timeline::{Event, EventKind};
use srvlab::ua::UaConfig;
use srvlab::ua::agent::{AttemptOutcome, Method, Outcome};
use srvlab::ua::io::{Progress, Ua};
use srvlab::world::World;
use support::root;

const T1: Duration = Duration::from_millis(20);

/// The seed's world on `127.0.N.52` and `127.0.N.114`, each server with its own script.
async fn seed_world(net: u8, script52: &str, script114: &str) -> World {
    let yaml = format!(
        "id: seed\nzone:\n  origin: snom.rocks.\n  ttl: 300\n  records:\n\
         \x20   - NAPTR: {{name: \"@\", order: 1, preference: 60, flags: s, service: SIP+D2U, regexp: \"\", replacement: _sip._udp}}\n\
         \x20   - SRV: {{name: _sip._udp, priority: 1, weight: 50, port: 5060, target: sipserver52}}\n\
         \x20   - SRV: {{name: _sip._udp, priority: 1, weight: 50, port: 5060, target: sipserver114}}\n\
         \x20   - A: {{name: sipserver52, address: 127.0.{net}.52}}\n\
         \x20   - A: {{name: sipserver114, address: 127.0.{net}.114}}\n\
         servers:\n  - host: sipserver52.snom.rocks.\n    script: {script52}\n\
         \x20 - host: sipserver114.snom.rocks.\n    script: {script114}\n"
    );
    support::world_from("seed.yaml", &yaml, &root()).await
}

fn config(seed: u64, dirty_host_ttl: Option<Duration>) -> UaConfig {
    UaConfig {
        t1: T1,
        dirty_host_ttl,
        seed,
        ..UaConfig::default()
    }
}

/// Calls `sip:100@snom.rocks` `count` times; the outcomes.
async fn calls(ua: &mut Ua, count: usize) -> Vec<Outcome> {
    let uri = SipUri::parse("sip:100@snom.rocks").unwrap();
    let mut outcomes = Vec::new();
    for _ in 0..count {
        outcomes.push(ua.run(Method::Invite, uri.clone(), |_| {}).await);
    }
    outcomes
}

/// The INVITE transactions the world saw, in order: (time, server address, branch),
/// retransmissions folded into their first send.
fn invites(events: &[Event]) -> Vec<(Duration, SocketAddr, String)> {
    let mut seen: Vec<(Duration, SocketAddr, String)> = Vec::new();
    for event in events {
        let (local, summary) = match &event.kind {
            EventKind::SipReceived(m) => (m.local, &m.summary),
            EventKind::Refused(r) => (r.local, &r.summary),
            _ => continue,
        };
        if summary.method.as_deref() != Some("INVITE") {
            continue;
        }
        let branch = summary.branch.clone().unwrap_or_default();
        if !seen.iter().any(|(_, _, b)| *b == branch) {
            seen.push((event.at(), local, branch));
        }
    }
    seen
}

fn is_52(addr: SocketAddr) -> bool {
    addr.ip().to_string().ends_with(".52")
}

/// 52 stalls: every call still succeeds; when 52 was first, the INVITE reaches 114 at
/// 64·T1 ± 10 % after the first send to 52 (Timer B, F1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalling_server_is_left_after_timer_b() {
    let world = seed_world(1, "[{behaviour: stall}]", "[{behaviour: accept}]").await;
    let mut ua = Ua::new(config(7, None), "alice", world.dns().addr());
    let outcomes = calls(&mut ua, 6).await;
    assert!(outcomes.iter().all(Outcome::is_success), "{outcomes:#?}");
    let invites = invites(&world.timeline().events());
    let timer_b = T1 * 64;
    let mut failovers = 0;
    for pair in invites.windows(2) {
        let (at52, addr52, _) = &pair[0];
        let (at114, addr114, _) = &pair[1];
        if is_52(*addr52) {
            assert!(!is_52(*addr114), "after 52 comes 114: {invites:?}");
            let gap = *at114 - *at52;
            let tolerance = timer_b / 10;
            assert!(
                gap >= timer_b - tolerance && gap <= timer_b + tolerance,
                "failover after {gap:?}, expected 64·T1 = {timer_b:?} ± 10 %"
            );
            failovers += 1;
        }
    }
    assert!(
        failovers >= 1,
        "seed 7 makes 52 first at least once: {invites:?}"
    );
    world.shutdown().await.unwrap();
}

/// 52 refuses: the UA moves on to 114 at once (F2), not after Timer B.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_server_is_left_at_once() {
    let world = seed_world(2, "[{behaviour: refuse}]", "[{behaviour: accept}]").await;
    let mut ua = Ua::new(config(7, None), "alice", world.dns().addr());
    let mut refused = 0;
    let uri = SipUri::parse("sip:100@snom.rocks").unwrap();
    for _ in 0..6 {
        let outcome = ua
            .run(Method::Invite, uri.clone(), |p| {
                if let Progress::Attempt(report) = p
                    && report.outcome == AttemptOutcome::Refused
                {
                    refused += 1;
                    assert!(
                        report.ended - report.sent < Duration::from_millis(100),
                        "refusal noticed at once: {report:?}"
                    );
                }
            })
            .await;
        assert!(outcome.is_success(), "{outcome:?}");
    }
    assert!(refused >= 1, "seed 7 makes 52 first at least once");
    let invites = invites(&world.timeline().events());
    for pair in invites.windows(2) {
        if is_52(pair[0].1) {
            let gap = pair[1].0 - pair[0].0;
            assert!(
                gap < Duration::from_millis(100),
                "failover after {gap:?}: {invites:?}"
            );
        }
    }
    world.shutdown().await.unwrap();
}

/// With a dirty-host TTL, 52 is not tried again until the TTL has run (D1), then it is (D2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_server_is_avoided_for_the_dirty_host_ttl() {
    let ttl = Duration::from_millis(1500);
    let world = seed_world(3, "[{behaviour: refuse}]", "[{behaviour: accept}]").await;
    let mut ua = Ua::new(config(11, Some(ttl)), "alice", world.dns().addr());
    let uri = SipUri::parse("sip:100@snom.rocks").unwrap();
    let deadline = tokio::time::Instant::now() + ttl * 3;
    while tokio::time::Instant::now() < deadline {
        let outcome = ua.run(Method::Invite, uri.clone(), |_| {}).await;
        assert!(outcome.is_success(), "{outcome:?}");
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    let tries_52: Vec<Duration> = invites(&world.timeline().events())
        .into_iter()
        .filter(|(_, addr, _)| is_52(*addr))
        .map(|(at, _, _)| at)
        .collect();
    assert!(
        tries_52.len() >= 2,
        "52 tried, and tried again after the TTL: {tries_52:?}"
    );
    for pair in tries_52.windows(2) {
        assert!(
            pair[1] - pair[0] >= ttl,
            "52 tried again {:?} after it failed; the TTL is {ttl:?}",
            pair[1] - pair[0]
        );
    }
    world.shutdown().await.unwrap();
}

/// SIPp as the UAS: the UA registers with it and calls it (INVITE, ACK, BYE).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn it_registers_with_and_calls_sipp() {
    let yaml = "id: sipp\nzone:\n  origin: sipp.test.\n  ttl: 60\n  records:\n\
        \x20   - SRV: {name: _sip._udp, priority: 1, weight: 1, port: 5060, target: uas}\n\
        \x20   - A: {name: uas, address: 127.0.4.1}\nservers: []\n";
    let world = support::world_from("sipp.yaml", yaml, &root()).await;
    let dir = std::env::temp_dir().join(format!("srvlab-sipp-uas-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let register = root().join("fixtures/sipp/uas-register.xml");
    for (scenario, method) in [
        (vec!["-sf", register.to_str().unwrap()], Method::Register),
        (vec!["-sn", "uas"], Method::Invite),
    ] {
        let mut sipp = tokio::process::Command::new("sipp")
            .args([
                "-i",
                "127.0.4.1",
                "-p",
                "5060",
                "-m",
                "1",
                "-nostdin",
                "-timeout",
                "20s",
            ])
            .args(&scenario)
            .current_dir(&dir)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("sipp is needed (scripts/test installs Debian's sip-tester)");
        // SIPp needs a moment to bind its socket.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut ua = Ua::new(config(1, None), "alice", world.dns().addr());
        let uri = SipUri::parse("sip:100@sipp.test").unwrap();
        let outcome = ua.run(method, uri, |_| {}).await;
        assert!(outcome.is_success(), "{method:?}: {outcome:?}");
        let status = tokio::time::timeout(Duration::from_secs(20), sipp.wait())
            .await
            .expect("SIPp ends")
            .unwrap();
        assert!(
            status.success(),
            "SIPp judged the {method:?} exchange good: {status}"
        );
    }
    world.shutdown().await.unwrap();
}

/// Over TCP, one connection carries every call to the same server (RFC 3261 §18.1.1): the
/// world sees one connect, and every INVITE from the same port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_to_one_tcp_server_reuse_its_connection() {
    let yaml = "id: reuse\nzone:\n  origin: reuse.test.\n  ttl: 300\n  records:\n\
         \x20   - NAPTR: {name: \"@\", order: 10, preference: 10, flags: s, service: SIP+D2T, regexp: \"\", replacement: _sip._tcp}\n\
         \x20   - SRV: {name: _sip._tcp, priority: 1, weight: 1, port: 5060, target: pbx}\n\
         \x20   - A: {name: pbx, address: 127.0.5.1}\n\
         servers:\n  - host: pbx.reuse.test.\n    transports: [tcp]\n    script: [{behaviour: accept}]\n";
    let world = support::world_from("reuse.yaml", yaml, &root()).await;
    let mut ua = Ua::new(config(1, None), "alice", world.dns().addr());
    let uri = SipUri::parse("sip:100@reuse.test").unwrap();
    for _ in 0..3 {
        let outcome = ua.run(Method::Invite, uri.clone(), |_| {}).await;
        assert!(outcome.is_success(), "{outcome:?}");
    }
    let events = world.timeline().events();
    let connects = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::TcpConnected(_)))
        .count();
    let ports: std::collections::BTreeSet<SocketAddr> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::SipReceived(m) if m.summary.method.as_deref() == Some("INVITE") => {
                Some(m.remote)
            }
            _ => None,
        })
        .collect();
    assert_eq!((connects, ports.len()), (1, 1), "{ports:?}");
    world.shutdown().await.unwrap();
}
