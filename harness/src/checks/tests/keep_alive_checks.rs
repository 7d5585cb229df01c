//! Keep-alives (RFC 5626) between the device's requests are none of its attempts: a double CRLF
//! refused by a closed port, or received by a listening server, neither opens an attempt nor
//! moves a request on (issue 14.1).

use super::*;

/// "\r\n\r\n" to `server`'s closed port, as the refusal watcher recorded it before keep-alives
/// had an event of their own: a `Refused` quoting nothing but the CRLFs.
fn refused_ping(tl: &mut Tl, server: &str, t_ms: f64) {
    tl.at(
        t_ms,
        EventKind::Refused(Refused {
            seen_ns: None,
            server: server_name(server),
            transport: Transport::Udp,
            local: addr(server),
            remote: addr(DEVICE),
            seen: RefusalSeen::Icmp,
            summary: crate::sip::summarize_partial(b"\r\n\r\n"),
            raw: b"\r\n\r\n".to_vec(),
        }),
    );
}

fn keep_alive(tl: &mut Tl, server: &str, t_ms: f64, refused: bool) {
    tl.at(
        t_ms,
        EventKind::KeepAlive(crate::timeline::KeepAlive {
            server: server_name(server),
            transport: Transport::Udp,
            local: addr(server),
            remote: addr(DEVICE),
            flow: crate::timeline::Flow::ToServer,
            kind: crate::timeline::KeepAliveKind::DoubleCrlf,
            refused,
            seen_ns: None,
            raw: b"\r\n\r\n".to_vec(),
        }),
    );
}

/// "\r\n\r\n" to `server`'s closed port as it is recorded now: a refused keep-alive.
fn refused_keep_alive(tl: &mut Tl, server: &str, t_ms: f64) {
    keep_alive(tl, server, t_ms, true);
}

/// The same to a listening server (recorded as `sip_malformed` before, which no check read;
/// it kept a lab step open: tests/keep_alives.rs).
fn received_keep_alive(tl: &mut Tl, server: &str, t_ms: f64) {
    keep_alive(tl, server, t_ms, false);
}

/// A call refused by 52 and taken by 114 at once; then the device pings the closed 52 every
/// 2.5 s until its next call, to 114, at 9 s: all inside 52's dirty-host TTL of 10 s (D1,
/// which needs a request of its own inside the mark to pass).
fn pings_between_calls(ping: fn(&mut Tl, &str, f64)) -> Tl {
    let mut tl = Tl::default();
    tl.query(UDP, "SRV", 0.0)
        .refused_udp(S52, "b1", "c1", 1.0)
        .invite(S114, "b2", "c1", 3.0)
        .respond(S114, 200, "b2", "c1", 4.0)
        .ack(S114, "b2x", "c1", 5.0);
    for t in [1_500.0, 4_000.0, 6_500.0, 8_990.0] {
        ping(&mut tl, S52, t);
    }
    tl.invite(S114, "b3", "c2", 9_000.0)
        .respond(S114, 200, "b3", "c2", 9_001.0)
        .ack(S114, "b3x", "c2", 9_002.0)
        .note(31_000.0);
    tl
}

/// 52 stalls the INVITE until Timer B; meanwhile the device pings the backup (priority 2, a
/// closed port); at Timer B it moves on to 114.
fn ping_during_timer_b(ping: fn(&mut Tl, &str, f64)) -> Tl {
    let mut tl = Tl::default();
    tl.query(UDP, "SRV", 0.0)
        .stalled_invite(S52, "b1", "c1", 1.0, 1281.0);
    ping(&mut tl, BACKUP, 600.0);
    tl.invite(S114, "b2", "c1", 1281.0)
        .respond(S114, 200, "b2", "c1", 1282.0)
        .ack(S114, "b2x", "c1", 1283.0)
        .note(2_000.0);
    tl
}

fn judged(id: &str, tl: &Tl) -> Verdict {
    let mut claimed = profile(Some(10));
    claimed.refusal_failover = Some(true);
    run(id, tl, &claimed)
}

#[test]
fn a_keep_alive_is_no_attempt() {
    // Before the fix (the pings then at 7, 14, 21, 28 s): F2 "… was refused at 7.000 s but the next attempt … began only 7.000 s
    // later = 350.0·T1 … (4 of 5 cases)", D1 "INVITE went to sipserver52 … at 7.000 s, 6.999 s
    // after it failed", F1 "abandoned at 0.599 s = 29.9·T1 for backup", L11 "went to backup
    // (priority 2) at 0.600 s before sipserver114 … had failed": every ping an attempt.
    for ping in [
        refused_ping as fn(&mut Tl, &str, f64),
        refused_keep_alive,
        received_keep_alive,
    ] {
        let between = pings_between_calls(ping);
        let during = ping_during_timer_b(ping);
        let verdicts = [
            judged("F2", &between),
            judged("D1", &between),
            judged("F1", &during),
        ];
        for verdict in &verdicts {
            assert_eq!(
                verdict.status,
                Status::Pass,
                "{}: {}",
                verdict.id,
                verdict.sentence
            );
        }
        assert!(
            verdicts[0].sentence.contains("each of 1 refusal(s)"),
            "{}",
            verdicts[0].sentence
        );
        // Only the best priority was ever tried: the backup's ping says nothing of the order.
        let l11 = judged("L11", &during);
        assert_eq!(l11.status, Status::Inconclusive, "L11: {}", l11.sentence);
        let requests = attempts::group(&between.events(), &profile(Some(10)));
        let attempts: Vec<usize> = requests.iter().map(|r| r.attempts.len()).collect();
        assert_eq!(attempts, [2, 1], "{requests:#?}");
    }
}
