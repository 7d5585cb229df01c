//! Every check on hand-built timelines: one where it passes and one where it fails (and the
//! Inconclusive / NotApplicable cases), without sockets.

use std::net::SocketAddr;
use std::time::Duration;

use super::*;
use crate::model::diag::SourceFile;
use crate::model::profile::AddressFamily;
use crate::model::zone::Zone;
use crate::timeline::{
    DnsQuery, EventKind, RefusalSeen, Refused, SipMessage, SipSummary, Transport,
};
use crate::ua::Rng;

mod device_decisions;
mod dual_stack_checks;
mod keep_alive_checks;
mod registration_checks;
mod timer_checks;

const ZONE: &str = r#"
origin: snom.rocks.
ttl: 300
records:
  - SRV: {name: _sip._udp, priority: 1, weight: 50, port: 5060, target: sipserver52}
  - SRV: {name: _sip._udp, priority: 1, weight: 50, port: 5060, target: sipserver114}
  - SRV: {name: _sip._udp, priority: 2, weight: 0, port: 5060, target: backup}
  - SRV: {name: _sip._tcp, priority: 1, weight: 1, port: 5060, target: sipserver52}
  - SRV: {name: _sips._tcp, priority: 0, weight: 0, port: 0, target: .}
  - A: {name: sipserver52, address: 127.0.0.52}
  - A: {name: sipserver114, address: 127.0.0.114}
  - A: {name: backup, address: 127.0.0.7}
  - A: {name: "@", address: 127.0.0.1}
"#;

const UDP: &str = "_sip._udp.snom.rocks.";
const S52: &str = "127.0.0.52:5060";
const S114: &str = "127.0.0.114:5060";
const BACKUP: &str = "127.0.0.7:5060";
const DOMAIN: &str = "127.0.0.1:5060";
const DEVICE: &str = "127.0.0.200:5062";

fn zones(text: &str) -> ZoneSet {
    let (zone, diagnostics) = Zone::parse(&SourceFile::new("test-zone.yaml", text));
    let zone = zone.unwrap_or_else(|| panic!("{diagnostics}"));
    ZoneSet::new(vec![zone]).0
}

fn profile(dirty: Option<u64>) -> Profile {
    Profile {
        device: "reference".into(),
        name: "test".into(),
        firmware: None,
        t1: Duration::from_millis(20),
        t2: Duration::from_secs(4),
        dirty_host_ttl: dirty.map(Duration::from_secs),
        transports: vec![Transport::Udp, Transport::Tcp],
        failover_codes: Vec::new(),
        naptr: None,
        a_record_fallback: None,
        refusal_failover: None,
        failover_after: None,
        retry_after_failed_register: None,
        failback_mode: None,
        failback_timeout: None,
        address_families: vec![AddressFamily::Ipv4],
    }
}

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

fn server_name(address: &str) -> String {
    match address {
        S52 => "sipserver52.snom.rocks.",
        S114 => "sipserver114.snom.rocks.",
        BACKUP => "backup.snom.rocks.",
        _ => "snom.rocks.",
    }
    .to_owned()
}

/// A timeline under construction: events in any order, numbered in time order at the end.
#[derive(Clone, Default)]
struct Tl {
    events: Vec<(u64, EventKind)>,
}

fn ms(t: f64) -> u64 {
    (t * 1e6) as u64
}

impl Tl {
    fn at(&mut self, t_ms: f64, kind: EventKind) -> &mut Self {
        self.events.push((ms(t_ms), kind));
        self
    }

    /// The last message came from the device's port `remote` (another connection).
    fn sent_from(&mut self, remote: &str) -> &mut Self {
        if let Some((_, EventKind::SipReceived(message))) = self.events.last_mut() {
            message.remote = addr(remote);
        }
        self
    }

    fn query(&mut self, name: &str, qtype: &str, t_ms: f64) -> &mut Self {
        self.at(
            t_ms,
            EventKind::DnsQuery(DnsQuery {
                transport: Transport::Udp,
                client: addr("127.0.0.200:40000"),
                server: addr("127.0.0.53:53"),
                id: 1,
                name: name.into(),
                qtype: qtype.into(),
                raw: Vec::new(),
            }),
        )
    }

    fn message(
        server: &str,
        transport: Transport,
        summary: SipSummary,
        raw: Vec<u8>,
    ) -> SipMessage {
        SipMessage {
            seen_ns: None,
            server: server_name(server),
            transport,
            local: addr(server),
            remote: addr(DEVICE),
            summary,
            raw,
        }
    }

    /// The device sends `method` (CSeq `cseq method`) to `server`.
    #[allow(clippy::too_many_arguments)]
    fn send(
        &mut self,
        method: &str,
        server: &str,
        transport: Transport,
        branch: &str,
        call_id: &str,
        cseq: u32,
        t_ms: f64,
    ) -> &mut Self {
        let cseq_method = if method == "ACK" || method == "CANCEL" {
            if method == "ACK" { "ACK" } else { "CANCEL" }
        } else {
            method
        };
        let summary = SipSummary {
            method: Some(method.into()),
            call_id: Some(call_id.into()),
            cseq: Some(format!("{cseq} {cseq_method}")),
            branch: Some(branch.into()),
            ..SipSummary::default()
        };
        self.at(
            t_ms,
            EventKind::SipReceived(Self::message(server, transport, summary, Vec::new())),
        )
    }

    fn invite(&mut self, server: &str, branch: &str, call_id: &str, t_ms: f64) -> &mut Self {
        self.send("INVITE", server, Transport::Udp, branch, call_id, 1, t_ms)
    }

    fn ack(&mut self, server: &str, branch: &str, call_id: &str, t_ms: f64) -> &mut Self {
        self.send("ACK", server, Transport::Udp, branch, call_id, 1, t_ms)
    }

    /// `server` answers the INVITE of `branch` with `status`.
    fn respond(
        &mut self,
        server: &str,
        status: u16,
        branch: &str,
        call_id: &str,
        t_ms: f64,
    ) -> &mut Self {
        let reason = match status {
            100 => "Trying",
            200 => "OK",
            503 => "Service Unavailable",
            _ => "Whatever",
        };
        let raw = format!(
            "SIP/2.0 {status} {reason}\r\nVia: SIP/2.0/UDP {DEVICE};branch={branch}\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
        );
        let summary = SipSummary {
            status: Some(status),
            reason: Some(reason.into()),
            call_id: Some(call_id.into()),
            cseq: Some("1 INVITE".into()),
            branch: Some(branch.into()),
            ..SipSummary::default()
        };
        self.at(
            t_ms,
            EventKind::SipSent(Self::message(
                server,
                Transport::Udp,
                summary,
                raw.into_bytes(),
            )),
        )
    }

    /// ICMP port unreachable for an INVITE whose quote shows the branch and Call-ID.
    fn refused_udp(&mut self, server: &str, branch: &str, call_id: &str, t_ms: f64) -> &mut Self {
        self.at(
            t_ms,
            EventKind::Refused(Refused {
                seen_ns: None,
                server: server_name(server),
                transport: Transport::Udp,
                local: addr(server),
                remote: addr(DEVICE),
                seen: RefusalSeen::Icmp,
                summary: SipSummary {
                    method: Some("INVITE".into()),
                    call_id: Some(call_id.into()),
                    cseq: Some("1 INVITE".into()),
                    branch: Some(branch.into()),
                    ..SipSummary::default()
                },
                raw: Vec::new(),
            }),
        )
    }

    /// A TCP SYN answered by RST: nothing of the request is quoted.
    fn refused_tcp(&mut self, server: &str, t_ms: f64) -> &mut Self {
        self.at(
            t_ms,
            EventKind::Refused(Refused {
                seen_ns: None,
                server: server_name(server),
                transport: Transport::Tcp,
                local: addr(server),
                remote: addr(DEVICE),
                seen: RefusalSeen::Rst,
                summary: SipSummary::default(),
                raw: Vec::new(),
            }),
        )
    }

    fn step(&mut self, name: &str, t_ms: f64) -> &mut Self {
        self.at(t_ms, EventKind::Step { name: name.into() })
    }

    fn note(&mut self, t_ms: f64) -> &mut Self {
        self.at(t_ms, EventKind::Note { text: "end".into() })
    }

    /// An unanswered UDP INVITE with RFC 3261 retransmissions until `until_ms`.
    fn stalled_invite(
        &mut self,
        server: &str,
        branch: &str,
        call_id: &str,
        t_ms: f64,
        until_ms: f64,
    ) -> &mut Self {
        let mut offset = 0.0;
        let mut interval = 20.0;
        while t_ms + offset < until_ms {
            self.invite(server, branch, call_id, t_ms + offset);
            offset += interval;
            interval *= 2.0;
        }
        self
    }

    fn events(&self) -> Vec<Event> {
        let mut events: Vec<(u64, EventKind)> = self.events.clone();
        events.sort_by_key(|(t, _)| *t);
        events
            .into_iter()
            .enumerate()
            .map(|(seq, (t_ns, kind))| Event {
                seq: seq as u64,
                t_ns,
                kind,
            })
            .collect()
    }
}

fn run(id: &str, tl: &Tl, profile: &Profile) -> Verdict {
    run_in(ZONE, id, tl, profile)
}

fn status(id: &str, tl: &Tl) -> Status {
    run(id, tl, &profile(Some(2))).status
}

// ---------------------------------------------------------------------------------------------
// Grouping.

#[test]
fn attempts_group_retransmissions_acks_and_steps() {
    let mut tl = Tl::default();
    tl.query(UDP, "SRV", 0.0)
        .stalled_invite(S52, "z9hG4bKa", "c1", 1.0, 1281.0)
        .invite(S114, "z9hG4bKb", "c1", 1281.0)
        .respond(S114, 503, "z9hG4bKb", "c1", 1282.0)
        .ack(S114, "z9hG4bKb", "c1", 1283.0)
        .step("again", 2000.0)
        .send("INVITE", S114, Transport::Udp, "z9hG4bKc", "c1", 2, 2001.0)
        .refused_tcp(S52, 2500.0)
        .invite(BACKUP, "z9hG4bKd", "c2", 2501.0);
    let events = tl.events();
    let requests = attempts::group(&events, &profile(None));
    assert_eq!(requests.len(), 3, "{requests:#?}");
    let first = &requests[0];
    assert!(first.opening);
    assert_eq!(first.attempts.len(), 2);
    assert_eq!(first.attempts[0].sends.len(), 7);
    assert_eq!(first.attempts[0].end, AttemptEnd::Unanswered);
    assert_eq!(first.attempts[1].end, AttemptEnd::Answered(503));
    assert_eq!(first.attempts[1].acks.len(), 1);
    assert!(
        !requests[1].opening,
        "same Call-ID after a step: a new request, not opening"
    );
    // The RST quotes nothing: tied to the request whose attempt follows it closest.
    assert_eq!(requests[2].attempts.len(), 2);
    assert!(!requests[2].attempts[0].tied);
    assert_eq!(requests[2].attempts[0].end, AttemptEnd::Refused);
}

#[test]
fn weird_timelines_do_not_panic() {
    let mut tl = Tl::default();
    tl.respond(S52, 200, "nobody", "x", 0.0)
        .ack(S52, "nobody", "x", 1.0)
        .refused_tcp(S52, 2.0)
        .at(
            3.0,
            EventKind::SipReceived(Tl::message(
                S52,
                Transport::Udp,
                SipSummary {
                    method: Some("INVITE".into()),
                    ..SipSummary::default()
                },
                Vec::new(),
            )),
        )
        .query("not a name..", "SRV", 4.0);
    let events = tl.events();
    let zones = zones(ZONE);
    for dirty in [None, Some(0), Some(2)] {
        let profile = profile(dirty);
        let ctx = Context {
            profile: &profile,
            zones: &zones,
            servers: &[],
            events: &events,
        };
        for id in IMPLEMENTED {
            judge(id, &ctx).unwrap();
        }
        let empty = Context { events: &[], ..ctx };
        for id in IMPLEMENTED {
            assert_ne!(
                judge(id, &empty).unwrap().status,
                Status::Pass,
                "{id} passed vacuously"
            );
        }
    }
}

#[test]
fn every_row_has_its_level_and_checks_judge_at_it() {
    let zones = zones(ZONE);
    let profile = profile(Some(2));
    let ctx = Context {
        profile: &profile,
        zones: &zones,
        servers: &[],
        events: &[],
    };
    for id in crate::model::steps::CHECKLIST {
        let level = crate::checks::level_of(id).unwrap_or_else(|| panic!("no level for {id}"));
        assert_eq!(judge(id, &ctx).unwrap().level, level, "{id}");
    }
}

#[test]
fn unknown_ids_are_errors() {
    let zones = zones(ZONE);
    let profile = profile(None);
    let ctx = Context {
        profile: &profile,
        zones: &zones,
        servers: &[],
        events: &[],
    };
    assert_eq!(judge("X9", &ctx), Err(CheckError::Unknown("X9".to_owned())));
}

#[test]
fn verdicts_serialize_in_snake_case() {
    let verdict = Verdict::new("F2", Level::Should, Status::NotApplicable, "x");
    let json = serde_json::to_value(&verdict).unwrap();
    assert_eq!(json["level"], "should");
    assert_eq!(json["status"], "not_applicable");
    let back: Verdict = serde_json::from_value(json).unwrap();
    assert_eq!(back, verdict);
}

// ---------------------------------------------------------------------------------------------
// Resolution.

#[test]
fn l8_first_attempt_goes_to_the_best_priority() {
    let mut pass = Tl::default();
    pass.query(UDP, "SRV", 0.0)
        .invite(S114, "b1", "c1", 1.0)
        .respond(S114, 200, "b1", "c1", 2.0);
    assert_eq!(status("L8", &pass), Status::Pass);

    let mut fail = Tl::default();
    fail.query(UDP, "SRV", 0.0)
        .invite(BACKUP, "b1", "c1", 1.0)
        .respond(BACKUP, 200, "b1", "c1", 2.0);
    let verdict = run("L8", &fail, &profile(None));
    assert_eq!(verdict.status, Status::Fail);
    assert!(
        verdict.sentence.contains("priority 2"),
        "{}",
        verdict.sentence
    );

    let mut no_srv = Tl::default();
    no_srv.invite(S52, "b1", "c1", 1.0);
    assert_eq!(status("L8", &no_srv), Status::Inconclusive);
}

#[test]
fn l8_lets_a_dirty_best_target_be_skipped() {
    let mut tl = Tl::default();
    tl.query(UDP, "SRV", 0.0)
        .refused_udp(S52, "b1", "c1", 1.0)
        .refused_udp(S114, "b2", "c1", 2.0)
        .invite(BACKUP, "b3", "c1", 3.0)
        .respond(BACKUP, 200, "b3", "c1", 4.0)
        .invite(BACKUP, "b4", "c2", 500.0)
        .respond(BACKUP, 200, "b4", "c2", 501.0);
    assert_eq!(status("L8", &tl), Status::Pass);
    // Without a dirty-host TTL the second call should have gone back to priority 1.
    assert_eq!(run("L8", &tl, &profile(None)).status, Status::Fail);
}

#[test]
fn l8_lets_a_device_mark_an_ignored_refusal_when_it_gives_up() {
    // The device ignored both refusals and moved on only at Timer B (1.28 s); it may hold the
    // primaries dirty for the TTL (2 s) from then, so the call at 2.5 s may start at BACKUP.
    let mut tl = Tl::default();
    tl.query(UDP, "SRV", 0.0)
        .refused_udp(S52, "b1", "c1", 1.0)
        .refused_udp(S114, "b2", "c1", 1281.0)
        .invite(BACKUP, "b3", "c1", 2562.0)
        .respond(BACKUP, 200, "b3", "c1", 2563.0)
        .invite(BACKUP, "b4", "c2", 2600.0)
        .respond(BACKUP, 200, "b4", "c2", 2601.0);
    assert_eq!(status("L8", &tl), Status::Pass);
    // Past that reading of the mark, the best priority is due again.
    let mut late = tl.clone();
    late.invite(BACKUP, "b5", "c3", 4700.0)
        .respond(BACKUP, 200, "b5", "c3", 4701.0);
    assert_eq!(status("L8", &late), Status::Fail);
}

#[test]
fn l8_leaves_going_back_to_a_dirty_best_target_to_d1() {
    // S52 failed and is dirty; the next call tries it first anyway: a device without a
    // dirty-host policy does that, and D1 judges the policy, not L8.
    let mut tl = Tl::default();
    tl.query(UDP, "SRV", 0.0)
        .refused_udp(S52, "b1", "c1", 1.0)
        .invite(S114, "b2", "c1", 2.0)
        .respond(S114, 200, "b2", "c1", 3.0)
        .invite(S52, "b3", "c2", 10.0)
        .respond(S52, 200, "b3", "c2", 11.0);
    assert_eq!(status("L8", &tl), Status::Pass);
    assert_eq!(status("D1", &tl), Status::Fail);
}

#[test]
fn l11_priority_groups_in_order() {
    let mut pass = Tl::default();
    pass.query(UDP, "SRV", 0.0)
        .refused_udp(S52, "b1", "c1", 1.0)
        .refused_udp(S114, "b2", "c1", 2.0)
        .invite(BACKUP, "b3", "c1", 3.0);
    assert_eq!(status("L11", &pass), Status::Pass);

    let mut fail = Tl::default();
    fail.query(UDP, "SRV", 0.0)
        .refused_udp(S52, "b1", "c1", 1.0)
        .invite(BACKUP, "b3", "c1", 2.0);
    let verdict = status("L11", &fail);
    assert_eq!(verdict, Status::Fail);

    let mut only_best = Tl::default();
    only_best
        .query(UDP, "SRV", 0.0)
        .invite(S52, "b1", "c1", 1.0);
    assert_eq!(status("L11", &only_best), Status::Inconclusive);
}

#[test]
fn l12_no_fallback_to_the_domain_address() {
    let mut exhausted = Tl::default();
    exhausted
        .query(UDP, "SRV", 0.0)
        .refused_udp(S52, "b1", "c1", 1.0)
        .refused_udp(S114, "b2", "c1", 2.0)
        .refused_udp(BACKUP, "b3", "c1", 3.0)
        .note(100.0);
    assert_eq!(status("L12", &exhausted), Status::Pass);

    let mut fallback = Tl::default();
    fallback
        .query(UDP, "SRV", 0.0)
        .refused_udp(S52, "b1", "c1", 1.0)
        .refused_udp(S114, "b2", "c1", 2.0)
        .refused_udp(BACKUP, "b3", "c1", 3.0)
        .query("snom.rocks.", "A", 4.0)
        .invite(DOMAIN, "b4", "c1", 5.0);
    assert_eq!(status("L12", &fallback), Status::Warn);
    // A profile that declares no fallback makes it a claim, and breaking it fails.
    let mut claimed = profile(Some(2));
    claimed.a_record_fallback = Some(false);
    let verdict = run("L12", &fallback, &claimed);
    assert_eq!(
        (verdict.level, verdict.status),
        (Level::Profile, Status::Fail)
    );
    assert_eq!(run("L12", &exhausted, &claimed).status, Status::Pass);

    let mut answered = Tl::default();
    answered
        .query(UDP, "SRV", 0.0)
        .invite(S52, "b1", "c1", 1.0)
        .respond(S52, 200, "b1", "c1", 2.0);
    assert_eq!(status("L12", &answered), Status::Inconclusive);
}

#[test]
fn l10_a_lone_dot_means_no_request() {
    let mut pass = Tl::default();
    pass.query("_sips._tcp.snom.rocks.", "SRV", 0.0).note(500.0);
    assert_eq!(status("L10", &pass), Status::Pass);

    let mut fail = Tl::default();
    fail.query("_sips._tcp.snom.rocks.", "SRV", 0.0)
        .query("snom.rocks.", "A", 1.0)
        .send("INVITE", DOMAIN, Transport::Tcp, "b1", "c1", 1, 2.0);
    assert_eq!(status("L10", &fail), Status::Fail);

    let mut not_queried = Tl::default();
    not_queried
        .query(UDP, "SRV", 0.0)
        .invite(S52, "b1", "c1", 1.0);
    assert_eq!(status("L10", &not_queried), Status::Inconclusive);

    let zone = ZONE.replace(
        "  - SRV: {name: _sips._tcp, priority: 0, weight: 0, port: 0, target: .}\n",
        "",
    );
    let zones = zones(&zone);
    let profile = profile(None);
    let events = pass.events();
    let ctx = Context {
        profile: &profile,
        zones: &zones,
        servers: &[],
        events: &events,
    };
    assert_eq!(judge("L10", &ctx).unwrap().status, Status::NotApplicable);
}

// ---------------------------------------------------------------------------------------------
// Timers.

#[test]
fn t1_timer_a_doubles() {
    let mut pass = Tl::default();
    pass.query(UDP, "SRV", 0.0)
        .stalled_invite(S52, "b1", "c1", 1.0, 1281.0)
        .invite(S114, "b2", "c1", 1281.0)
        .respond(S114, 200, "b2", "c1", 1282.0);
    let verdict = run("T1", &pass, &profile(None));
    assert_eq!(verdict.status, Status::Pass, "{}", verdict.sentence);
    assert_eq!(
        verdict.figures["attempts"][0]["offsets_ms"],
        serde_json::json!([0.0, 20.0, 60.0, 140.0, 300.0, 620.0, 1260.0])
    );

    // No doubling: every 20 ms.
    let mut flat = Tl::default();
    flat.query(UDP, "SRV", 0.0);
    for k in 0..10 {
        flat.invite(S52, "b1", "c1", 1.0 + 20.0 * f64::from(k));
    }
    flat.note(2000.0);
    let verdict = run("T1", &flat, &profile(None));
    assert_eq!(verdict.status, Status::Fail);
    assert!(verdict.sentence.contains("copy 3"), "{}", verdict.sentence);

    // Sent once, never again, although it waited 1.28 s.
    let mut once = Tl::default();
    once.invite(S52, "b1", "c1", 1.0)
        .invite(S114, "b2", "c1", 1281.0);
    assert_eq!(status("T1", &once), Status::Fail);

    let mut answered = Tl::default();
    answered
        .invite(S52, "b1", "c1", 1.0)
        .respond(S52, 200, "b1", "c1", 2.0);
    assert_eq!(status("T1", &answered), Status::Inconclusive);
}

#[test]
fn t1_leaves_out_a_copy_the_host_delayed_and_says_so() {
    // Copy 2 went out 3.5 ms late: out of ±2 ms.
    let late = |tl: &mut Tl| {
        tl.query(UDP, "SRV", 0.0);
        for at in [1.0, 24.5, 61.0, 141.0, 301.0, 621.0, 1261.0] {
            tl.invite(S52, "b1", "c1", at);
        }
        tl.invite(S114, "b2", "c1", 1281.0)
            .respond(S114, 200, "b2", "c1", 1282.0);
    };
    let mut device = Tl::default();
    late(&mut device);
    assert_eq!(status("T1", &device), Status::Fail);
    // The same, with the reference UA's report that the host ran it late: not held against it.
    let mut harness = Tl::default();
    late(&mut harness);
    harness.at(24.6, EventKind::HostDelay { late_ns: 3_500_000 });
    let verdict = run("T1", &harness, &profile(None));
    assert_eq!(verdict.status, Status::Pass, "{}", verdict.sentence);
    assert!(
        verdict.sentence.contains("1 interval(s) not judged"),
        "{}",
        verdict.sentence
    );
    // A report about another moment excuses nothing.
    let mut elsewhere = Tl::default();
    late(&mut elsewhere);
    elsewhere.at(500.0, EventKind::HostDelay { late_ns: 3_500_000 });
    assert_eq!(status("T1", &elsewhere), Status::Fail);
}

#[test]
fn t3_no_retransmission_over_tcp_or_after_a_provisional() {
    let mut pass = Tl::default();
    pass.invite(S52, "b1", "c1", 1.0)
        .respond(S52, 100, "b1", "c1", 2.0)
        .note(3000.0)
        .send("INVITE", S114, Transport::Tcp, "b2", "c2", 1, 10.0);
    assert_eq!(status("T3", &pass), Status::Pass);

    let mut tcp = Tl::default();
    tcp.send("INVITE", S52, Transport::Tcp, "b1", "c1", 1, 1.0)
        .send("INVITE", S52, Transport::Tcp, "b1", "c1", 1, 21.0);
    assert_eq!(status("T3", &tcp), Status::Fail);

    let mut after_trying = Tl::default();
    after_trying
        .invite(S52, "b1", "c1", 1.0)
        .respond(S52, 100, "b1", "c1", 2.0)
        .invite(S52, "b1", "c1", 21.0);
    assert_eq!(status("T3", &after_trying), Status::Fail);

    let mut neither = Tl::default();
    neither.invite(S52, "b1", "c1", 1.0);
    assert_eq!(status("T3", &neither), Status::Inconclusive);
}

// ---------------------------------------------------------------------------------------------
// Failover.

#[test]
fn f1_moves_on_at_timer_b() {
    let mut pass = Tl::default();
    pass.query(UDP, "SRV", 0.0)
        .stalled_invite(S52, "b1", "c1", 1.0, 1283.0)
        .invite(S114, "b2", "c1", 1283.0);
    let verdict = run("F1", &pass, &profile(None));
    assert_eq!(verdict.status, Status::Pass, "{}", verdict.sentence);

    let mut early = Tl::default();
    early
        .query(UDP, "SRV", 0.0)
        .stalled_invite(S52, "b1", "c1", 1.0, 641.0)
        .invite(S114, "b2", "c1", 641.0);
    let verdict = run("F1", &early, &profile(None));
    assert_eq!(verdict.status, Status::Fail);
    assert!(verdict.sentence.contains("32.0·T1"), "{}", verdict.sentence);

    // The same early move is what a vendor declared: judged as T4 against its own time.
    let mut declared = profile(None);
    declared.failover_after = Some(Duration::from_millis(640));
    let verdict = run("F1", &early, &declared);
    assert_eq!(verdict.status, Status::Pass, "{}", verdict.sentence);
    assert!(
        verdict.sentence.contains("declared"),
        "{}",
        verdict.sentence
    );

    let mut never = Tl::default();
    never
        .query(UDP, "SRV", 0.0)
        .stalled_invite(S52, "b1", "c1", 1.0, 1281.0)
        .note(3000.0);
    assert_eq!(status("F1", &never), Status::Fail);

    let mut answered = Tl::default();
    answered
        .invite(S52, "b1", "c1", 1.0)
        .respond(S52, 200, "b1", "c1", 2.0);
    assert_eq!(status("F1", &answered), Status::Inconclusive);
}

#[test]
fn f2_moves_on_at_once_after_a_refusal() {
    let mut pass = Tl::default();
    pass.query(UDP, "SRV", 0.0)
        .refused_udp(S52, "b1", "c1", 1.0)
        .invite(S114, "b2", "c1", 2.0);
    assert_eq!(status("F2", &pass), Status::Pass);

    let mut tcp = Tl::default();
    tcp.query(UDP, "SRV", 0.0)
        .refused_tcp(S52, 1.0)
        .invite(S114, "b2", "c1", 3.0);
    assert_eq!(status("F2", &tcp), Status::Pass);

    let mut waited = Tl::default();
    waited
        .query(UDP, "SRV", 0.0)
        .refused_udp(S52, "b1", "c1", 1.0)
        .invite(S114, "b2", "c1", 1281.0);
    let verdict = run("F2", &waited, &profile(None));
    assert_eq!(verdict.status, Status::Warn);
    assert_eq!(verdict.level, Level::Should);
    // Claimed by the profile, the same wait is a broken promise.
    let mut claimed = profile(None);
    claimed.refusal_failover = Some(true);
    let verdict = run("F2", &waited, &claimed);
    assert_eq!(
        (verdict.level, verdict.status),
        (Level::Profile, Status::Fail)
    );
    assert_eq!(run("F2", &pass, &claimed).status, Status::Pass);

    let mut none = Tl::default();
    none.invite(S52, "b1", "c1", 1.0);
    assert_eq!(status("F2", &none), Status::Inconclusive);
}

#[test]
fn f2_takes_off_the_time_the_host_did_not_run_the_reference_ua() {
    // Refused at 5 ms, the next attempt at 29 ms: 24 ms > T1 + 2 ms.
    let late = |stall: Option<(f64, u64)>| {
        let mut tl = Tl::default();
        tl.query(UDP, "SRV", 0.0).refused_udp(S52, "b1", "c1", 5.0);
        if let Some((at, stalled_ns)) = stall {
            tl.at(at, EventKind::HostStall { stalled_ns });
        }
        tl.invite(S114, "b2", "c1", 29.0);
        tl
    };
    let mut claimed = profile(None);
    claimed.refusal_failover = Some(true);
    assert_eq!(run("F2", &late(None), &claimed).status, Status::Fail);
    // The watchdog saw the device's thread stopped from 6 to 28.5 ms: 1.5 ms of reaction.
    let verdict = run("F2", &late(Some((28.5, 22_500_000))), &claimed);
    assert_eq!(verdict.status, Status::Pass, "{}", verdict.sentence);
    assert!(
        verdict
            .sentence
            .contains("0.024 s later, 22.500 ms of it stalled"),
        "{}",
        verdict.sentence
    );
    // A stall before the refusal, or too short to explain the wait, excuses nothing.
    let before = run("F2", &late(Some((4.0, 22_500_000))), &claimed);
    assert_eq!(before.status, Status::Fail, "{}", before.sentence);
    let short = run("F2", &late(Some((28.5, 1_500_000))), &claimed);
    assert_eq!(short.status, Status::Fail, "{}", short.sentence);
    assert!(
        short.sentence.contains("(1.500 ms of it srvlab's host"),
        "{}",
        short.sentence
    );
}

#[test]
fn f2_over_tls_the_next_attempt_begins_with_its_connection() {
    let connected = |tl: &mut Tl, t_ms: f64| {
        tl.at(
            t_ms,
            EventKind::TcpConnected(crate::timeline::TcpConnection {
                server: server_name(S114),
                local: addr(S114),
                remote: addr(DEVICE),
            }),
        );
    };
    // Connected 1 ms after the refusal; the handshake took the next 38 ms.
    let mut handshake = Tl::default();
    handshake.query(UDP, "SRV", 0.0).refused_tcp(S52, 1.0);
    connected(&mut handshake, 2.0);
    handshake.send("INVITE", S114, Transport::Tls, "b2", "c1", 1, 40.0);
    assert_eq!(status("F2", &handshake), Status::Pass);

    // A connection only as late as the message: the device itself waited.
    let mut late = Tl::default();
    late.query(UDP, "SRV", 0.0).refused_tcp(S52, 1.0);
    connected(&mut late, 39.0);
    late.send("INVITE", S114, Transport::Tls, "b2", "c1", 1, 40.0);
    assert_eq!(status("F2", &late), Status::Warn);

    // Over plain TCP the first message is the attempt's beginning, connection or not.
    let mut tcp = Tl::default();
    tcp.query(UDP, "SRV", 0.0).refused_tcp(S52, 1.0);
    connected(&mut tcp, 2.0);
    tcp.send("INVITE", S114, Transport::Tcp, "b2", "c1", 1, 40.0);
    assert_eq!(status("F2", &tcp), Status::Warn);
}

#[test]
fn f3_a_503_is_acked_and_moves_on() {
    let mut pass = Tl::default();
    pass.query(UDP, "SRV", 0.0)
        .invite(S52, "b1", "c1", 1.0)
        .respond(S52, 503, "b1", "c1", 2.0)
        .ack(S52, "b1", "c1", 3.0)
        .invite(S114, "b2", "c1", 4.0);
    assert_eq!(status("F3", &pass), Status::Pass);

    let mut no_ack = Tl::default();
    no_ack
        .query(UDP, "SRV", 0.0)
        .invite(S52, "b1", "c1", 1.0)
        .respond(S52, 503, "b1", "c1", 2.0)
        .invite(S114, "b2", "c1", 4.0);
    let verdict = run("F3", &no_ack, &profile(None));
    assert_eq!(verdict.status, Status::Fail);
    assert!(verdict.sentence.contains("ACK"), "{}", verdict.sentence);

    let mut stopped = Tl::default();
    stopped
        .query(UDP, "SRV", 0.0)
        .invite(S52, "b1", "c1", 1.0)
        .respond(S52, 503, "b1", "c1", 2.0)
        .ack(S52, "b1", "c1", 3.0)
        .note(2000.0);
    let verdict = run("F3", &stopped, &profile(None));
    assert_eq!(verdict.status, Status::Fail);
    assert!(
        verdict.sentence.contains("remained"),
        "{}",
        verdict.sentence
    );

    let mut none = Tl::default();
    none.invite(S52, "b1", "c1", 1.0)
        .respond(S52, 200, "b1", "c1", 2.0);
    assert_eq!(status("F3", &none), Status::Inconclusive);
}

// ---------------------------------------------------------------------------------------------
// Dirty hosts (TTL 2 s in these profiles).

fn refused_then(t_second_ms: f64, second: &str) -> Tl {
    let mut tl = Tl::default();
    tl.query(UDP, "SRV", 0.0)
        .refused_udp(S52, "b1", "c1", 1.0)
        .invite(S114, "b2", "c1", 2.0)
        .respond(S114, 200, "b2", "c1", 3.0)
        .invite(second, "b3", "c2", t_second_ms)
        .respond(second, 200, "b3", "c2", t_second_ms + 1.0);
    tl
}

#[test]
fn d1_a_failed_target_is_avoided_for_the_ttl() {
    assert_eq!(status("D1", &refused_then(1000.0, S114)), Status::Pass);
    let verdict = run("D1", &refused_then(1000.0, S52), &profile(Some(2)));
    assert_eq!(verdict.status, Status::Fail);
    assert_eq!(verdict.level, Level::Profile);
    assert_eq!(
        run("D1", &refused_then(1000.0, S52), &profile(None)).status,
        Status::NotApplicable
    );
    let mut no_failure = Tl::default();
    no_failure
        .query(UDP, "SRV", 0.0)
        .invite(S52, "b1", "c1", 1.0)
        .respond(S52, 200, "b1", "c1", 2.0);
    assert_eq!(status("D1", &no_failure), Status::Inconclusive);
    // After the TTL, going back is no D1 matter: only the failover to 114 ran during the mark,
    // and the failed request's own failover shows no memory of the mark (issue 14: this passed,
    // "1 attempt(s) during the marks … all avoided them").
    let verdict = run("D1", &refused_then(3000.0, S52), &profile(Some(2)));
    assert_eq!(verdict.status, Status::Inconclusive, "{}", verdict.sentence);
    assert!(
        verdict
            .sentence
            .contains("but no other request began while a mark ran"),
        "{}",
        verdict.sentence
    );
    assert_eq!(verdict.figures["attempts_during_marks"], 0);
    // Each mark, for the report's dirty-host bar: from the refusal, for the TTL.
    let marks = verdict.figures["marks"].as_array().expect("marks");
    assert_eq!(marks.len(), 1, "{marks:?}");
    assert_eq!(
        marks[0]["until_ms"].as_f64().unwrap() - marks[0]["from_ms"].as_f64().unwrap(),
        2000.0
    );
    // A failure with nothing after it.
    let mut alone = Tl::default();
    alone
        .query(UDP, "SRV", 0.0)
        .refused_udp(S52, "b1", "c1", 1.0);
    assert_eq!(status("D1", &alone), Status::Inconclusive);
}

#[test]
fn d2_a_failed_target_comes_back_after_the_ttl() {
    assert_eq!(status("D2", &refused_then(3000.0, S52)), Status::Pass);

    // Twelve later calls, all to 114: never choosing 52 (P = 0.50 each) is a 0.02 % chance.
    let mut sticky = refused_then(3000.0, S114);
    for k in 0..11 {
        let t = 4000.0 + 10.0 * f64::from(k);
        let (branch, call_id) = (format!("s{k}"), format!("call{k}"));
        sticky
            .invite(S114, &branch, &call_id, t)
            .respond(S114, 200, &branch, &call_id, t + 1.0);
    }
    let verdict = run("D2", &sticky, &profile(Some(2)));
    assert_eq!(verdict.status, Status::Fail, "{}", verdict.sentence);

    assert_eq!(
        status("D2", &refused_then(3000.0, S114)),
        Status::Inconclusive
    );
    assert_eq!(
        run("D2", &refused_then(3000.0, S52), &profile(None)).status,
        Status::NotApplicable
    );
}

// ---------------------------------------------------------------------------------------------
// Caching.

#[test]
fn c1_one_resolution_per_transaction() {
    let mut pass = Tl::default();
    pass.query(UDP, "SRV", 0.0)
        .query("sipserver52.snom.rocks.", "A", 0.5)
        .stalled_invite(S52, "b1", "c1", 1.0, 200.0);
    assert_eq!(status("C1", &pass), Status::Pass);

    let mut fail = Tl::default();
    fail.query(UDP, "SRV", 0.0)
        .query("sipserver52.snom.rocks.", "A", 0.5)
        .stalled_invite(S52, "b1", "c1", 1.0, 200.0)
        .query("sipserver52.snom.rocks.", "A", 15.0);
    let verdict = run("C1", &fail, &profile(None));
    assert_eq!(verdict.status, Status::Fail);
    assert!(
        verdict.sentence.contains("queried again"),
        "{}",
        verdict.sentence
    );

    let mut once = Tl::default();
    once.invite(S52, "b1", "c1", 1.0)
        .respond(S52, 200, "b1", "c1", 2.0);
    assert_eq!(status("C1", &once), Status::Inconclusive);

    // Retransmissions, but no query of the device at all (its resolver asks from an address
    // the lab does not name, or it had the answer cached): nothing to judge. It passed ("no
    // name was queried again …") on a proxy whose DNS came from another address (issue 14).
    let mut unseen = Tl::default();
    unseen.stalled_invite(S52, "b1", "c1", 1.0, 200.0);
    let verdict = run("C1", &unseen, &profile(None));
    assert_eq!(verdict.status, Status::Inconclusive, "{}", verdict.sentence);
}

/// Shared by the D3–D6 and device-decision tests.
/// `server` answers the `method` of `branch` (CSeq `cseq`) with `status`.
#[allow(clippy::too_many_arguments)]
fn sip_answer(
    tl: &mut Tl,
    server: &str,
    status: u16,
    method: &str,
    branch: &str,
    call_id: &str,
    cseq: u32,
    t_ms: f64,
) {
    let summary = SipSummary {
        status: Some(status),
        reason: Some("Whatever".into()),
        call_id: Some(call_id.into()),
        cseq: Some(format!("{cseq} {method}")),
        branch: Some(branch.into()),
        ..SipSummary::default()
    };
    tl.at(
        t_ms,
        EventKind::SipSent(Tl::message(server, Transport::Udp, summary, Vec::new())),
    );
}

/// A REGISTER (`cseq`) to `server` that gets a 200.
fn registered(tl: &mut Tl, server: &str, branch: &str, cseq: u32, t_ms: f64) {
    tl.send(
        "REGISTER",
        server,
        Transport::Udp,
        branch,
        "reg",
        cseq,
        t_ms,
    );
    sip_answer(tl, server, 200, "REGISTER", branch, "reg", cseq, t_ms + 1.0);
}

// ---------------------------------------------------------------------------------------------
// Weights.

/// One cold-cache call per trial, first to the target `choose` picks (0 = 52, 1 = 114).
fn trials(n: usize, mut choose: impl FnMut(usize) -> usize) -> Tl {
    let mut tl = Tl::default();
    tl.query(UDP, "SRV", 0.0);
    for k in 0..n {
        let t = 1.0 + 10.0 * k as f64;
        let server = if choose(k) == 0 { S52 } else { S114 };
        let (branch, call_id) = (format!("b{k}"), format!("call{k}"));
        tl.invite(server, &branch, &call_id, t)
            .respond(server, 200, &branch, &call_id, t + 1.0);
    }
    tl
}

#[test]
fn first_choice_probabilities_follow_rfc_2782() {
    let p = first_choice_probabilities(&[50, 50]);
    assert!((p[0] - 51.0 / 101.0).abs() < 1e-12 && (p[1] - 50.0 / 101.0).abs() < 1e-12);
    let p = first_choice_probabilities(&[10, 0, 0]);
    assert_eq!(p, vec![10.0 / 11.0, 1.0 / 11.0, 0.0]);
    assert_eq!(first_choice_probabilities(&[0, 0]), vec![1.0, 0.0]);
    assert!(first_choice_probabilities(&[]).is_empty());
}

use super::weights::{first_choice_probabilities, l9};

#[test]
fn l9_a_fair_draw_passes_and_a_biased_one_fails() {
    let zones = zones(ZONE);
    let profile = profile(None);
    let judge_l9 = |tl: &Tl| {
        let events = tl.events();
        let ctx = Context {
            profile: &profile,
            zones: &zones,
            servers: &[],
            events: &events,
        };
        l9(&ctx, 0.001)
    };

    // RFC 2782's draw, as the reference UA makes it: n in 0..=100, 52 when n ≤ 50.
    let mut rng = Rng::new(2782);
    let fair = judge_l9(&trials(600, |_| usize::from(rng.up_to(100) > 50)));
    eprintln!("L9 fair: {}", fair.sentence);
    eprintln!("L9 fair p-value: {}", fair.figures["p_value"]);
    assert_eq!(fair.status, Status::Pass, "{}", fair.sentence);

    let mut rng = Rng::new(2782);
    let biased = judge_l9(&trials(600, |_| usize::from(rng.up_to(99) >= 60)));
    eprintln!("L9 60/40: {}", biased.sentence);
    eprintln!("L9 60/40 p-value: {}", biased.figures["p_value"]);
    assert_eq!(biased.status, Status::Fail, "{}", biased.sentence);

    let alternating = judge_l9(&trials(600, |k| k % 2));
    eprintln!("L9 alternating p-value: {}", alternating.figures["p_value"]);
    assert_eq!(alternating.status, Status::Pass, "{}", alternating.sentence);
    assert!(alternating.sentence.contains("deterministic alternation"));

    // Issue 14: a device that always takes the answer's first record fails, and says so.
    let first = judge_l9(&trials(100, |_| 0));
    assert_eq!(first.status, Status::Fail, "{}", first.sentence);
    assert!(
        first.sentence.contains(
            "every first choice was the first record of the DNS answer (sipserver52.snom.rocks.): the device takes the first record rather than drawing by weight"
        ),
        "{}",
        first.sentence
    );
    assert!(!fair.sentence.contains("first record"), "{}", fair.sentence);

    let few = judge_l9(&trials(6, |k| k % 2));
    assert_eq!(few.status, Status::Inconclusive, "{}", few.sentence);

    let none = judge_l9(&Tl::default());
    assert_eq!(none.status, Status::Inconclusive);
}

// ---------------------------------------------------------------------------------------------
// Transactions (T5, T6), with raw bytes for the headers the summary lacks.

impl Tl {
    /// The device sends an INVITE with full headers: From tag and top Via transport as given.
    #[allow(clippy::too_many_arguments)]
    fn raw_invite(
        &mut self,
        server: &str,
        transport: Transport,
        via: &str,
        branch: &str,
        call_id: &str,
        from_tag: &str,
        t_ms: f64,
    ) -> &mut Self {
        let raw = format!(
            "INVITE sip:alice@snom.rocks SIP/2.0\r\nVia: SIP/2.0/{via} {DEVICE};branch={branch}\r\nFrom: <sip:bob@snom.rocks>;tag={from_tag}\r\nTo: <sip:alice@snom.rocks>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        );
        let summary = SipSummary {
            method: Some("INVITE".into()),
            call_id: Some(call_id.into()),
            cseq: Some("1 INVITE".into()),
            branch: Some(branch.into()),
            ..SipSummary::default()
        };
        self.at(
            t_ms,
            EventKind::SipReceived(Self::message(server, transport, summary, raw.into_bytes())),
        )
    }
}

#[test]
fn t5_copies_of_a_transaction_stay_with_their_server() {
    let mut good = Tl::default();
    good.stalled_invite(S52, "z9hG4bKa", "c1", 0.0, 200.0)
        .respond(S52, 486, "z9hG4bKa", "c1", 210.0)
        .ack(S52, "z9hG4bKa", "c1", 211.0);
    assert_eq!(status("T5", &good), Status::Pass);

    let mut bad = Tl::default();
    bad.invite(S52, "z9hG4bKa", "c1", 0.0)
        .invite(S114, "z9hG4bKa", "c1", 20.0)
        .invite(S114, "z9hG4bKa", "c1", 60.0);
    let verdict = run("T5", &bad, &profile(Some(2)));
    assert_eq!(verdict.status, Status::Fail);
    assert_eq!(verdict.evidence, vec![0, 1]);
    assert!(
        !verdict.sentence.contains(" of "),
        "one violation per transaction"
    );

    let mut single = Tl::default();
    single.invite(S52, "z9hG4bKa", "c1", 0.0);
    assert_eq!(status("T5", &single), Status::Inconclusive);
}

#[test]
fn t6_a_new_target_is_a_new_transaction() {
    let mut good = Tl::default();
    good.raw_invite(S52, Transport::Udp, "UDP", "z9hG4bKa", "c1", "f1", 0.0)
        .respond(S52, 503, "z9hG4bKa", "c1", 5.0)
        .ack(S52, "z9hG4bKa", "c1", 6.0)
        .raw_invite(S114, Transport::Udp, "UDP", "z9hG4bKb", "c1", "f1", 7.0);
    assert_eq!(status("T6", &good), Status::Pass);

    // The same branch to another target.
    let mut shared = Tl::default();
    shared
        .raw_invite(S52, Transport::Udp, "UDP", "z9hG4bKa", "c1", "f1", 0.0)
        .respond(S52, 503, "z9hG4bKa", "c1", 5.0)
        .raw_invite(S114, Transport::Udp, "UDP", "z9hG4bKa", "c1", "f1", 7.0);
    let verdict = run("T6", &shared, &profile(Some(2)));
    assert_eq!(verdict.status, Status::Fail);
    assert!(verdict.sentence.contains("reused the branch"));

    // A new From tag on failover.
    let mut tag = Tl::default();
    tag.raw_invite(S52, Transport::Udp, "UDP", "z9hG4bKa", "c1", "f1", 0.0)
        .respond(S52, 503, "z9hG4bKa", "c1", 5.0)
        .raw_invite(S114, Transport::Udp, "UDP", "z9hG4bKb", "c1", "f2", 7.0);
    assert_eq!(status("T6", &tag), Status::Fail);

    // A new Call-ID on failover, same From tag.
    let mut call = Tl::default();
    call.raw_invite(S52, Transport::Udp, "UDP", "z9hG4bKa", "c1", "f1", 0.0)
        .respond(S52, 503, "z9hG4bKa", "c1", 5.0)
        .raw_invite(S114, Transport::Udp, "UDP", "z9hG4bKb", "c2", "f1", 7.0);
    assert_eq!(status("T6", &call), Status::Fail);

    // A Via that names TCP over UDP.
    let mut via = Tl::default();
    via.raw_invite(S52, Transport::Udp, "TCP", "z9hG4bKa", "c1", "f1", 0.0)
        .respond(S52, 503, "z9hG4bKa", "c1", 5.0)
        .raw_invite(S114, Transport::Udp, "UDP", "z9hG4bKb", "c1", "f1", 7.0);
    let verdict = run("T6", &via, &profile(Some(2)));
    assert_eq!(verdict.status, Status::Fail);
    assert!(verdict.sentence.contains("top Via says TCP"));

    let mut once = Tl::default();
    once.raw_invite(S52, Transport::Udp, "UDP", "z9hG4bKa", "c1", "f1", 0.0);
    assert_eq!(status("T6", &once), Status::Inconclusive);
}

// ---------------------------------------------------------------------------------------------
// Other final responses (F4) and Retry-After (F5).

impl Tl {
    /// `server` answers 503 with Retry-After `seconds`.
    fn busy(
        &mut self,
        server: &str,
        seconds: u32,
        branch: &str,
        call_id: &str,
        t_ms: f64,
    ) -> &mut Self {
        let raw = format!(
            "SIP/2.0 503 Service Unavailable\r\nVia: SIP/2.0/UDP {DEVICE};branch={branch}\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\nRetry-After: {seconds}\r\nContent-Length: 0\r\n\r\n"
        );
        let summary = SipSummary {
            status: Some(503),
            reason: Some("Service Unavailable".into()),
            call_id: Some(call_id.into()),
            cseq: Some("1 INVITE".into()),
            branch: Some(branch.into()),
            ..SipSummary::default()
        };
        self.at(
            t_ms,
            EventKind::SipSent(Self::message(
                server,
                Transport::Udp,
                summary,
                raw.into_bytes(),
            )),
        )
    }
}

#[test]
fn f4_says_what_followed_a_486() {
    let mut stayed = Tl::default();
    stayed
        .invite(S52, "z9hG4bKa", "c1", 0.0)
        .respond(S52, 486, "z9hG4bKa", "c1", 5.0)
        .ack(S52, "z9hG4bKa", "c1", 6.0)
        .note(5000.0);
    let verdict = run("F4", &stayed, &profile(Some(2)));
    assert_eq!(verdict.status, Status::Info);
    assert!(verdict.sentence.contains("tried no other target"));

    let mut moved = Tl::default();
    moved
        .invite(S52, "z9hG4bKa", "c1", 0.0)
        .respond(S52, 486, "z9hG4bKa", "c1", 5.0)
        .ack(S52, "z9hG4bKa", "c1", 6.0)
        .invite(S114, "z9hG4bKb", "c1", 7.0);
    let verdict = run("F4", &moved, &profile(Some(2)));
    assert_eq!(verdict.status, Status::Info);
    assert!(verdict.sentence.contains("tried another target"));

    let mut none = Tl::default();
    none.invite(S52, "z9hG4bKa", "c1", 0.0)
        .respond(S52, 503, "z9hG4bKa", "c1", 5.0);
    assert_eq!(status("F4", &none), Status::Inconclusive);
}

#[test]
fn f5_retry_after_keeps_the_device_away() {
    let mut good = Tl::default();
    good.invite(S52, "z9hG4bKa", "c1", 0.0)
        .busy(S52, 2, "z9hG4bKa", "c1", 5.0)
        .ack(S52, "z9hG4bKa", "c1", 6.0)
        .invite(S114, "z9hG4bKb", "c1", 7.0)
        .respond(S114, 200, "z9hG4bKb", "c1", 8.0)
        .step("again", 1000.0)
        .invite(S114, "z9hG4bKc", "c2", 1001.0)
        .invite(S52, "z9hG4bKd", "c3", 2500.0);
    assert_eq!(status("F5", &good), Status::Pass);

    let mut bad = Tl::default();
    bad.invite(S52, "z9hG4bKa", "c1", 0.0)
        .busy(S52, 2, "z9hG4bKa", "c1", 5.0)
        .ack(S52, "z9hG4bKa", "c1", 6.0)
        .invite(S114, "z9hG4bKb", "c1", 7.0)
        .respond(S114, 200, "z9hG4bKb", "c1", 8.0)
        .step("again", 1000.0)
        .invite(S52, "z9hG4bKc", "c2", 1001.0);
    let verdict = run("F5", &bad, &profile(Some(2)));
    assert_eq!(verdict.status, Status::Warn);

    // Issue 14: a run watched through the whole interval, but the device sent nothing in it
    // (the 503's own request failed over, as F3 asks): no choice was made to judge. This
    // passed before ("after 1 503 response(s) … no request went to that server").
    let mut idle = Tl::default();
    idle.invite(S52, "z9hG4bKa", "c1", 0.0)
        .busy(S52, 2, "z9hG4bKa", "c1", 5.0)
        .ack(S52, "z9hG4bKa", "c1", 6.0)
        .invite(S114, "z9hG4bKb", "c1", 7.0)
        .respond(S114, 200, "z9hG4bKb", "c1", 8.0)
        .note(5000.0);
    let verdict = run("F5", &idle, &profile(Some(2)));
    assert_eq!(verdict.status, Status::Inconclusive, "{}", verdict.sentence);
    assert!(
        verdict
            .sentence
            .contains("no request began while a 503's Retry-After interval ran"),
        "{}",
        verdict.sentence
    );

    // A 503 without Retry-After is not F5's concern.
    let mut plain = Tl::default();
    plain
        .invite(S52, "z9hG4bKa", "c1", 0.0)
        .respond(S52, 503, "z9hG4bKa", "c1", 5.0)
        .note(5000.0);
    assert_eq!(status("F5", &plain), Status::Inconclusive);
}

// ---------------------------------------------------------------------------------------------
// NAPTR first (L4), the NAPTR transport (L5), no SRV at all (L7).

const NAPTR_ZONE: &str = r#"
origin: snom.rocks.
ttl: 300
records:
  - NAPTR: {name: "@", order: 1, preference: 10, flags: s, service: SIPS+D2T, regexp: "", replacement: _sips._tcp}
  - NAPTR: {name: "@", order: 2, preference: 10, flags: s, service: SIP+D2T, regexp: "", replacement: _sip._tcp}
  - NAPTR: {name: "@", order: 2, preference: 20, flags: s, service: SIP+D2U, regexp: "", replacement: _sip._udp}
  - SRV: {name: _sips._tcp, priority: 1, weight: 1, port: 5061, target: sipserver52}
  - SRV: {name: _sip._tcp, priority: 1, weight: 1, port: 5060, target: sipserver52}
  - SRV: {name: _sip._udp, priority: 1, weight: 1, port: 5060, target: sipserver52}
  - A: {name: sipserver52, address: 127.0.0.52}
"#;

const BARE_ZONE: &str = r#"
origin: snom.rocks.
ttl: 300
records:
  - A: {name: "@", address: 127.0.0.1}
  - A: {name: sipserver52, address: 127.0.0.52}
"#;

fn run_in(zone: &str, id: &str, tl: &Tl, profile: &Profile) -> Verdict {
    run_with(zone, &[], id, tl, profile)
}

/// Judges `id` on `tl` in `zone`, with the case's scripted `servers`.
fn run_with(
    zone: &str,
    servers: &[crate::model::case::ServerSpec],
    id: &str,
    tl: &Tl,
    profile: &Profile,
) -> Verdict {
    let zones = zones(zone);
    let events = tl.events();
    let ctx = Context {
        profile,
        zones: &zones,
        servers,
        events: &events,
    };
    let verdict = judge(id, &ctx).unwrap();
    eprintln!("{id}: {:?}: {}", verdict.status, verdict.sentence);
    verdict
}

#[test]
fn l4_naptr_is_queried_first() {
    let mut good = Tl::default();
    good.query("snom.rocks.", "NAPTR", 0.0)
        .query(UDP, "SRV", 1.0);
    assert_eq!(status("L4", &good), Status::Pass);

    let mut bad = Tl::default();
    bad.query(UDP, "SRV", 0.0)
        .query("snom.rocks.", "NAPTR", 1.0);
    let verdict = run("L4", &bad, &profile(Some(2)));
    assert_eq!(verdict.status, Status::Warn);
    assert!(verdict.sentence.contains("not NAPTR snom.rocks."));

    let mut without = profile(Some(2));
    without.naptr = Some(false);
    assert_eq!(run("L4", &bad, &without).status, Status::NotApplicable);

    // A profile that claims NAPTR support turns the SHOULD into its own promise.
    let mut claimed = profile(Some(2));
    claimed.naptr = Some(true);
    let verdict = run("L4", &bad, &claimed);
    assert_eq!(
        (verdict.level, verdict.status),
        (Level::Profile, Status::Fail)
    );
    assert!(
        verdict.sentence.contains("declares NAPTR support"),
        "{}",
        verdict.sentence
    );
    assert_eq!(run("L4", &good, &claimed).status, Status::Pass);
}

#[test]
fn l5_the_most_preferred_supported_naptr_service_decides_the_transport() {
    // SIPS+D2T is TLS, which the profile lacks; SIP+D2T has order 2 and the better preference.
    let naptr = [
        "snom.rocks. 300 IN NAPTR 1 10 \"s\" \"SIPS+D2T\" \"\" _sips._tcp.snom.rocks.",
        "snom.rocks. 300 IN NAPTR 2 10 \"s\" \"SIP+D2T\" \"\" _sip._tcp.snom.rocks.",
        "snom.rocks. 300 IN NAPTR 2 20 \"s\" \"SIP+D2U\" \"\" _sip._udp.snom.rocks.",
    ];
    let mut good = Tl::default();
    good.query("snom.rocks.", "NAPTR", 0.0)
        .answer("snom.rocks.", "NAPTR", &naptr, 0.5)
        .query("_sip._tcp.snom.rocks.", "SRV", 1.0)
        .send("INVITE", S52, Transport::Tcp, "z9hG4bKa", "c1", 1, 2.0);
    assert_eq!(
        run_in(NAPTR_ZONE, "L5", &good, &profile(Some(2))).status,
        Status::Pass
    );

    let mut bad = Tl::default();
    bad.query("snom.rocks.", "NAPTR", 0.0)
        .answer("snom.rocks.", "NAPTR", &naptr, 0.5)
        .query(UDP, "SRV", 1.0)
        .invite(S52, "z9hG4bKa", "c1", 2.0);
    let verdict = run_in(NAPTR_ZONE, "L5", &bad, &profile(Some(2)));
    assert_eq!(verdict.status, Status::Fail);
    assert_eq!(verdict.evidence, vec![0, 1, 3]);

    // A fault on _sip._tcp lets the device take the next service.
    let faulted =
        format!("{NAPTR_ZONE}faults:\n  - {{name: _sip._tcp, type: SRV, fault: servfail}}\n");
    assert_eq!(
        run_in(&faulted, "L5", &bad, &profile(Some(2))).status,
        Status::Pass
    );

    // Without an answer to the NAPTR query there is nothing to hold the device to.
    let mut unanswered = Tl::default();
    unanswered
        .query("snom.rocks.", "NAPTR", 0.0)
        .invite(S52, "z9hG4bKa", "c1", 2.0);
    assert_eq!(
        run_in(NAPTR_ZONE, "L5", &unanswered, &profile(Some(2))).status,
        Status::Inconclusive
    );

    // A UDP-only profile: SIP+D2U is its most preferred service.
    let mut udp_only = profile(Some(2));
    udp_only.transports = vec![Transport::Udp];
    assert_eq!(
        run_in(NAPTR_ZONE, "L5", &bad, &udp_only).status,
        Status::Pass
    );

    // No NAPTR records in the zone.
    assert_eq!(status("L5", &bad), Status::Inconclusive);

    // No NAPTR query: the sentence says what the profile declares, and nothing where it is
    // silent (issue 14: it read "(profile naptr: true)" for a profile that says nothing).
    let mut skipped = Tl::default();
    skipped
        .query(UDP, "SRV", 1.0)
        .invite(S52, "z9hG4bKa", "c1", 2.0);
    let silent = run_in(NAPTR_ZONE, "L5", &skipped, &profile(Some(2)));
    assert_eq!(silent.status, Status::Inconclusive);
    assert_eq!(
        silent.sentence,
        "the device queried none of the NAPTR names snom.rocks."
    );
    let mut claims = profile(Some(2));
    claims.naptr = Some(true);
    let claimed = run_in(NAPTR_ZONE, "L5", &skipped, &claims);
    assert!(
        claimed
            .sentence
            .ends_with("; the profile claims NAPTR support"),
        "{}",
        claimed.sentence
    );
    claims.naptr = Some(false);
    let declined = run_in(NAPTR_ZONE, "L5", &skipped, &claims);
    assert_eq!(declined.status, Status::NotApplicable);
    assert!(
        declined
            .sentence
            .ends_with("declares that the device does not query NAPTR"),
        "{}",
        declined.sentence
    );
}

/// The device sends an INVITE to `uri` at `server` over `transport`, its request line readable.
fn invite_to(tl: &mut Tl, uri: &str, server: &str, transport: Transport, t_ms: f64) {
    let summary = SipSummary {
        method: Some("INVITE".into()),
        call_id: Some("c1".into()),
        cseq: Some("1 INVITE".into()),
        branch: Some("z9hG4bKa".into()),
        ..SipSummary::default()
    };
    let raw = format!(
        "INVITE {uri} SIP/2.0\r\nVia: SIP/2.0/{} {DEVICE};branch=z9hG4bKa\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
        transport.to_string().to_uppercase()
    );
    tl.at(
        t_ms,
        EventKind::SipReceived(Tl::message(server, transport, summary, raw.into_bytes())),
    );
}

#[test]
fn l5_a_sips_uri_goes_over_tls_only() {
    let naptr = ["snom.rocks. 300 IN NAPTR 1 10 \"s\" \"SIPS+D2T\" \"\" _sips._tcp.snom.rocks."];
    let mut tls = profile(Some(2));
    tls.transports = vec![Transport::Udp, Transport::Tcp, Transport::Tls];
    let s52_tls = "127.0.0.52:5061";
    let mut good = Tl::default();
    good.query("snom.rocks.", "NAPTR", 0.0)
        .answer("snom.rocks.", "NAPTR", &naptr, 0.5)
        .query("_sips._tcp.snom.rocks.", "SRV", 1.0);
    invite_to(
        &mut good,
        "sips:100@snom.rocks",
        s52_tls,
        Transport::Tls,
        2.0,
    );
    assert_eq!(run_in(NAPTR_ZONE, "L5", &good, &tls).status, Status::Pass);

    // The same request over UDP: a sips URI is never sent in the clear, NAPTR or not.
    for zone in [NAPTR_ZONE, ZONE] {
        let mut bad = Tl::default();
        bad.query("snom.rocks.", "NAPTR", 0.0)
            .answer("snom.rocks.", "NAPTR", &naptr, 0.5)
            .query("_sips._tcp.snom.rocks.", "SRV", 1.0);
        invite_to(
            &mut bad,
            "sips:100@snom.rocks",
            s52_tls,
            Transport::Udp,
            2.0,
        );
        let verdict = run_in(zone, "L5", &bad, &tls);
        assert_eq!(verdict.status, Status::Fail);
        assert!(
            verdict.sentence.contains("not over TLS"),
            "{}",
            verdict.sentence
        );
        assert_eq!(verdict.evidence, vec![3]);
    }

    // A sip URI over UDP is no concern of this rule.
    let mut sip = Tl::default();
    invite_to(&mut sip, "sip:100@snom.rocks", S52, Transport::Udp, 2.0);
    assert_eq!(run_in(ZONE, "L5", &sip, &tls).status, Status::Inconclusive);
}

#[test]
fn l7_without_srv_the_domain_on_5060_over_udp() {
    let mut good = Tl::default();
    good.query("snom.rocks.", "NAPTR", 0.0)
        .query(UDP, "SRV", 1.0)
        .query("snom.rocks.", "A", 2.0)
        .invite(DOMAIN, "z9hG4bKa", "c1", 3.0);
    assert_eq!(
        run_in(BARE_ZONE, "L7", &good, &profile(Some(2))).status,
        Status::Pass
    );

    let mut tcp = Tl::default();
    tcp.query(UDP, "SRV", 1.0)
        .send("INVITE", DOMAIN, Transport::Tcp, "z9hG4bKa", "c1", 1, 3.0);
    assert_eq!(
        run_in(BARE_ZONE, "L7", &tcp, &profile(Some(2))).status,
        Status::Fail
    );

    let mut elsewhere = Tl::default();
    elsewhere
        .query(UDP, "SRV", 1.0)
        .invite(S52, "z9hG4bKa", "c1", 3.0);
    assert_eq!(
        run_in(BARE_ZONE, "L7", &elsewhere, &profile(Some(2))).status,
        Status::Fail
    );

    // The zone with SRV records: not L7's case.
    assert_eq!(status("L7", &good), Status::NotApplicable);
}

// ---------------------------------------------------------------------------------------------
// TTLs (C2).

impl Tl {
    /// srvlab answers `qtype name` with `records` (presentation format).
    fn answer(&mut self, name: &str, qtype: &str, records: &[&str], t_ms: f64) -> &mut Self {
        self.at(
            t_ms,
            EventKind::DnsAnswer(crate::timeline::DnsAnswer {
                transport: Transport::Udp,
                client: addr("127.0.0.200:40000"),
                server: addr("127.0.0.53:53"),
                id: 1,
                name: name.into(),
                qtype: qtype.into(),
                rcode: "NOERROR".into(),
                aa: true,
                tc: false,
                answers: records.iter().map(|r| (*r).to_owned()).collect(),
                authority_count: 0,
                additionals: Vec::new(),
                fault: None,
                raw: Vec::new(),
            }),
        )
    }

    /// SRV and A of sipserver52 with `ttl`, queried and answered at `t_ms`.
    fn resolve52(&mut self, ttl: u32, t_ms: f64) -> &mut Self {
        let srv = format!("{UDP} {ttl} IN SRV 1 50 5060 sipserver52.snom.rocks.");
        let a = format!("sipserver52.snom.rocks. {ttl} IN A 127.0.0.52");
        self.query(UDP, "SRV", t_ms)
            .answer(UDP, "SRV", &[&srv], t_ms + 0.5)
            .query("sipserver52.snom.rocks.", "A", t_ms + 1.0)
            .answer("sipserver52.snom.rocks.", "A", &[&a], t_ms + 1.5)
    }
}

#[test]
fn c2_no_record_is_used_after_its_ttl_without_a_new_query() {
    let mut good = Tl::default();
    good.resolve52(2, 0.0)
        .invite(S52, "z9hG4bKa", "c1", 2.0)
        .respond(S52, 200, "z9hG4bKa", "c1", 3.0)
        // The BYE of a long call follows the dialog: no query needed.
        .send("BYE", S52, Transport::Udp, "z9hG4bKy", "c1", 2, 4900.0)
        .step("later", 5000.0)
        .resolve52(2, 5001.0)
        .invite(S52, "z9hG4bKb", "c2", 5003.0);
    let verdict = run("C2", &good, &profile(Some(2)));
    assert_eq!(verdict.status, Status::Pass);

    let mut bad = Tl::default();
    bad.resolve52(2, 0.0)
        .invite(S52, "z9hG4bKa", "c1", 2.0)
        .respond(S52, 200, "z9hG4bKa", "c1", 3.0)
        .step("later", 5000.0)
        .invite(S52, "z9hG4bKb", "c2", 5003.0);
    let verdict = run("C2", &bad, &profile(Some(2)));
    assert_eq!(verdict.status, Status::Fail);
    assert!(verdict.sentence.contains("TTL 2 s"));

    // Within the TTL: nothing to judge.
    let mut early = Tl::default();
    early
        .resolve52(300, 0.0)
        .invite(S52, "z9hG4bKa", "c1", 2.0)
        .respond(S52, 200, "z9hG4bKa", "c1", 3.0)
        .step("later", 5000.0)
        .invite(S52, "z9hG4bKb", "c2", 5003.0);
    assert_eq!(status("C2", &early), Status::Inconclusive);
}

// The URI rules (L1–L3), SRV without NAPTR (L6) and cache reuse (C3) read each request's
// Request-URI from its raw bytes: their timelines are built in a module of their own.
#[path = "tests_uri.rs"]
mod uri;

// --- TLS handshakes that carried no request ---

/// A TLS connection from the device to `server` at `t_ms`, its ClientHello just after, and
/// (when `answered`) the server's first flight.
fn tls_connection(tl: &mut Tl, server: &str, remote: &str, t_ms: f64, answered: bool) {
    tl.at(
        t_ms,
        EventKind::TcpConnected(crate::timeline::TcpConnection {
            server: server_name(server),
            local: addr(server),
            remote: addr(remote),
        }),
    );
    let bytes = |flow| {
        EventKind::TlsBytes(crate::timeline::TlsBytes {
            server: server_name(server),
            local: addr(server),
            remote: addr(remote),
            flow,
            seen_ns: None,
            raw: vec![0x16, 3, 1, 0, 0],
        })
    };
    tl.at(t_ms + 0.1, bytes(crate::timeline::Flow::ToServer));
    if answered {
        tl.at(t_ms + 0.2, bytes(crate::timeline::Flow::ToDevice));
    }
}

fn tls_failed(tl: &mut Tl, server: &str, remote: &str, t_ms: f64) {
    tl.at(
        t_ms,
        EventKind::TlsFailed(crate::timeline::TlsFailed {
            server: server_name(server),
            local: addr(server),
            remote: addr(remote),
            reason: "received fatal alert: UnknownCA".into(),
        }),
    );
}

const DEVICE_2: &str = "127.0.0.200:5063";

#[test]
fn a_failed_tls_handshake_is_an_attempt_refused_at_once() {
    let failed_then = |next_ms: f64| {
        let mut tl = Tl::default();
        tl.query(UDP, "SRV", 0.0);
        tls_connection(&mut tl, S52, DEVICE, 1.0, true);
        tls_failed(&mut tl, S52, DEVICE, 2.0);
        tls_connection(&mut tl, S114, DEVICE_2, next_ms, true);
        tl.send("INVITE", S114, Transport::Tls, "b2", "c1", 1, next_ms + 1.0);
        tl
    };
    let quick = failed_then(3.0);
    let requests = crate::checks::attempts::group(&quick.events(), &profile(None));
    assert_eq!(requests.len(), 1, "{requests:?}");
    let first = &requests[0].attempts[0];
    assert_eq!(
        (first.address, first.end, first.method.as_str()),
        (addr(S52), AttemptEnd::Refused, "INVITE")
    );
    assert!(first.handshake.is_some() && first.received().next().is_none());
    assert_eq!(status("F2", &quick), Status::Pass);
    assert_eq!(status("L11", &quick), Status::Inconclusive);

    let waited = run("F2", &failed_then(1290.0), &profile(None));
    assert_eq!(waited.status, Status::Warn);
    assert!(
        waited
            .sentence
            .contains("failed its TLS handshake (received fatal alert: UnknownCA)"),
        "{}",
        waited.sentence
    );
    // No retransmission is read into a handshake: T3 counts the one request over TLS.
    assert_eq!(status("T3", &quick), Status::Pass);
}

#[test]
fn a_tls_handshake_never_answered_times_out_at_timer_b() {
    let stalled_then = |next_ms: f64| {
        let mut tl = Tl::default();
        tl.query(UDP, "SRV", 0.0);
        tls_connection(&mut tl, S52, DEVICE, 1.0, false);
        tls_connection(&mut tl, S114, DEVICE_2, next_ms, true);
        tl.send("INVITE", S114, Transport::Tls, "b2", "c1", 1, next_ms + 1.0);
        tl
    };
    let requests = crate::checks::attempts::group(&stalled_then(1281.0).events(), &profile(None));
    assert_eq!(requests[0].attempts[0].end, AttemptEnd::Unanswered);
    assert_eq!(status("F1", &stalled_then(1281.0)), Status::Pass);
    assert_eq!(status("F1", &stalled_then(300.0)), Status::Fail);

    // A handshake the server answered, with no request after it, is no attempt.
    let mut idle = Tl::default();
    idle.query(UDP, "SRV", 0.0);
    tls_connection(&mut idle, S52, DEVICE, 1.0, true);
    idle.send("INVITE", S52, Transport::Tls, "b1", "c1", 1, 5.0);
    tls_connection(&mut idle, S114, DEVICE_2, 6.0, true);
    let requests = crate::checks::attempts::group(&idle.events(), &profile(None));
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].attempts.len(), 1);
}

// --- T7: connection reuse ---

#[test]
fn t7_says_whether_requests_reuse_an_open_connection() {
    let connect = |tl: &mut Tl, remote: &str, t_ms: f64| {
        tl.at(
            t_ms,
            EventKind::TcpConnected(crate::timeline::TcpConnection {
                server: server_name(S52),
                local: addr(S52),
                remote: addr(remote),
            }),
        );
    };
    // Two calls over one connection.
    let mut reused = Tl::default();
    connect(&mut reused, DEVICE, 1.0);
    reused
        .send("INVITE", S52, Transport::Tcp, "b1", "c1", 1, 2.0)
        .send("INVITE", S52, Transport::Tcp, "b2", "c2", 1, 50.0);
    let verdict = run("T7", &reused, &profile(None));
    assert_eq!((verdict.level, verdict.status), (Level::Info, Status::Info));
    assert!(
        verdict
            .sentence
            .contains("went over 1 connection(s): 1 reused"),
        "{}",
        verdict.sentence
    );
    // A new connection for the second call while the first is open.
    let mut fresh = Tl::default();
    connect(&mut fresh, DEVICE, 1.0);
    fresh.send("INVITE", S52, Transport::Tcp, "b1", "c1", 1, 2.0);
    connect(&mut fresh, DEVICE_2, 40.0);
    fresh
        .send("INVITE", S52, Transport::Tcp, "b2", "c2", 1, 50.0)
        .sent_from(DEVICE_2);
    let verdict = run("T7", &fresh, &profile(None));
    assert!(
        verdict
            .sentence
            .contains("2 connection(s): 0 reused an open connection, 1 opened a new one"),
        "{}",
        verdict.sentence
    );
    // After the first closed, a new one is no missed reuse.
    let mut closed = Tl::default();
    connect(&mut closed, DEVICE, 1.0);
    closed.send("INVITE", S52, Transport::Tcp, "b1", "c1", 1, 2.0);
    closed.at(
        30.0,
        EventKind::TcpClosed(crate::timeline::TcpClosed {
            server: server_name(S52),
            local: addr(S52),
            remote: addr(DEVICE),
            how: crate::timeline::CloseKind::Peer,
        }),
    );
    connect(&mut closed, DEVICE_2, 40.0);
    closed
        .send("INVITE", S52, Transport::Tcp, "b2", "c2", 1, 50.0)
        .sent_from(DEVICE_2);
    assert!(
        run("T7", &closed, &profile(None))
            .sentence
            .contains("0 opened a new one")
    );
    // One request per target shows nothing; UDP is not looked at.
    let mut one = Tl::default();
    connect(&mut one, DEVICE, 1.0);
    one.send("INVITE", S52, Transport::Tcp, "b1", "c1", 1, 2.0)
        .invite(S114, "b2", "c2", 3.0);
    assert_eq!(status("T7", &one), Status::Inconclusive);
}

#[test]
fn a_connection_the_server_reset_under_a_waiting_request_is_a_refusal() {
    let reset_then = |next_ms: f64, stopped_first: bool| {
        let mut tl = Tl::default();
        tl.query(UDP, "SRV", 0.0).at(
            1.0,
            EventKind::TcpConnected(crate::timeline::TcpConnection {
                server: server_name(S52),
                local: addr(S52),
                remote: addr(DEVICE),
            }),
        );
        tl.send("INVITE", S52, Transport::Tcp, "b1", "c1", 1, 2.0);
        if stopped_first {
            tl.at(
                5.0,
                EventKind::Stopped {
                    text: "stopped".into(),
                },
            );
        }
        tl.at(
            6.0,
            EventKind::TcpClosed(crate::timeline::TcpClosed {
                server: server_name(S52),
                local: addr(S52),
                remote: addr(DEVICE),
                how: crate::timeline::CloseKind::ServerReset,
            }),
        );
        tl.send("INVITE", S114, Transport::Tcp, "b2", "c1", 1, next_ms);
        tl
    };
    let quick = reset_then(8.0, false);
    let requests = crate::checks::attempts::group(&quick.events(), &profile(None));
    assert_eq!(requests[0].attempts[0].end, AttemptEnd::Refused);
    assert_eq!(status("F2", &quick), Status::Pass);
    let waited = run("F2", &reset_then(1290.0, false), &profile(None));
    assert_eq!(waited.status, Status::Warn);
    assert!(
        waited
            .sentence
            .contains("had its connection reset by the server at 0.006 s"),
        "{}",
        waited.sentence
    );
    // The world resetting what is left once srvlab stopped watching is no failure.
    let after = reset_then(1290.0, true);
    let requests = crate::checks::attempts::group(&after.events(), &profile(None));
    assert_eq!(requests[0].attempts[0].end, AttemptEnd::Unanswered);
}

// --- F6: certificates the device must reject ---

#[test]
fn f6_no_request_goes_over_a_certificate_the_device_must_reject() {
    use crate::model::case::{Behaviour, Phase, ServerSpec, TlsFailure, TlsSpec};
    let spec = |address: &str, fail: Option<TlsFailure>| ServerSpec {
        host: crate::model::zone::parse_absolute(&server_name(address)).unwrap(),
        addresses: vec![addr(address).ip()],
        port: 5060,
        transports: vec![Transport::Tls],
        tls: TlsSpec { fail },
        script: vec![Phase {
            behaviour: Behaviour::Stall { trying: false },
            until: None,
        }],
        span: crate::model::diag::Span::new(&SourceFile::new("case.yaml", ""), 1, 1),
    };
    let servers = [
        spec(S52, Some(TlsFailure::BadCertificate)),
        spec(S114, Some(TlsFailure::WrongName)),
    ];
    let judge_f6 = |tl: &Tl| run_with(ZONE, &servers, "F6", tl, &profile(None));
    // Both rejected: connections, no request.
    let mut rejected = Tl::default();
    tls_connection(&mut rejected, S52, DEVICE, 1.0, true);
    tls_failed(&mut rejected, S52, DEVICE, 2.0);
    tls_connection(&mut rejected, S114, DEVICE_2, 3.0, true);
    let verdict = judge_f6(&rejected);
    assert_eq!((verdict.level, verdict.status), (Level::Must, Status::Pass));
    // An INVITE over the wrongly named one: the name was never checked.
    let mut trusted = Tl::default();
    tls_connection(&mut trusted, S114, DEVICE, 1.0, true);
    trusted.send("INVITE", S114, Transport::Tls, "b1", "c1", 1, 2.0);
    let verdict = judge_f6(&trusted);
    assert_eq!(verdict.status, Status::Fail);
    assert!(
        verdict.sentence.contains("for another name"),
        "{}",
        verdict.sentence
    );
    // Never near such a server: nothing to say.
    let mut elsewhere = Tl::default();
    elsewhere.invite(BACKUP, "b1", "c1", 1.0);
    assert_eq!(judge_f6(&elsewhere).status, Status::Inconclusive);
}
