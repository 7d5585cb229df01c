//! T2, T4 and F1 beside a declared early failover, on hand-built timelines.

use super::*;

/// An unanswered UDP `method` with copies at the offsets Timer E gives for `t2_ms` (T1 = 20 ms),
/// from `t_ms` until `until_ms`; `cap: false` keeps doubling as Timer A does.
#[allow(clippy::too_many_arguments)]
fn stalled(
    tl: &mut Tl,
    method: &str,
    server: &str,
    branch: &str,
    call_id: &str,
    (t_ms, until_ms): (f64, f64),
    t2_ms: f64,
    cap: bool,
) {
    let mut offset = 0.0;
    let mut interval = 20.0f64;
    while t_ms + offset < until_ms {
        tl.send(
            method,
            server,
            Transport::Udp,
            branch,
            call_id,
            1,
            t_ms + offset,
        );
        offset += interval;
        interval = if cap {
            (interval * 2.0).min(t2_ms)
        } else {
            interval * 2.0
        };
    }
}

fn with_t2(t2_ms: u64) -> Profile {
    Profile {
        t2: Duration::from_millis(t2_ms),
        ..profile(None)
    }
}

/// A REGISTER stalled at sipserver52 until Timer F, then answered by sipserver114.
fn register_timer_f(t2_ms: f64, cap: bool) -> Tl {
    let mut tl = Tl::default();
    tl.query(UDP, "SRV", 0.0);
    stalled(
        &mut tl,
        "REGISTER",
        S52,
        "b1",
        "r",
        (1.0, 1281.0),
        t2_ms,
        cap,
    );
    tl.send("REGISTER", S114, Transport::Udp, "b2", "r", 1, 1281.0);
    tl.note(1300.0);
    tl
}

#[test]
fn t2_timer_e_doubles_up_to_t2() {
    let verdict = run("T2", &register_timer_f(80.0, true), &with_t2(80));
    assert_eq!(verdict.status, Status::Pass, "{}", verdict.sentence);
    assert!(
        verdict.sentence.contains("up to T2 = 80 ms (4.0·T1)"),
        "{}",
        verdict.sentence
    );
    assert_eq!(verdict.figures["t2_cap_exercised"], true);

    // The device kept doubling past T2: copy 5 came 160 ms after copy 4.
    let verdict = run("T2", &register_timer_f(80.0, false), &with_t2(80));
    assert_eq!(verdict.status, Status::Fail);
    assert_eq!(verdict.level, Level::Must);
    assert!(
        verdict
            .sentence
            .contains("copy 5 came 160 ms (8.0·T1) after copy 4; expected 80 ms = T2"),
        "{}",
        verdict.sentence
    );
}

#[test]
fn t2_with_t2_beyond_timer_f_judges_the_doubling_and_says_the_cap_was_not_reached() {
    let verdict = run("T2", &register_timer_f(4000.0, true), &profile(None));
    assert_eq!(verdict.status, Status::Pass, "{}", verdict.sentence);
    assert!(
        verdict.sentence.contains("was not exercised"),
        "{}",
        verdict.sentence
    );
    assert_eq!(verdict.figures["t2_cap_exercised"], false);

    // Never doubled: every 20 ms.
    let mut flat = Tl::default();
    for k in 0..20 {
        flat.send(
            "OPTIONS",
            S52,
            Transport::Udp,
            "b1",
            "o",
            1,
            1.0 + 20.0 * f64::from(k),
        );
    }
    flat.note(2000.0);
    let verdict = run("T2", &flat, &profile(None));
    assert_eq!(verdict.status, Status::Fail);
    assert!(verdict.sentence.contains("copy 3"), "{}", verdict.sentence);

    // Sent once and never again in 1.28 s.
    let mut once = Tl::default();
    once.send("OPTIONS", S52, Transport::Udp, "b1", "o", 1, 1.0)
        .send("OPTIONS", S114, Transport::Udp, "b2", "o", 1, 1281.0);
    assert_eq!(run("T2", &once, &profile(None)).status, Status::Fail);
}

#[test]
fn t2_is_inconclusive_without_an_unanswered_udp_non_invite() {
    // An unanswered INVITE is T1's.
    let mut invite = Tl::default();
    invite
        .stalled_invite(S52, "b1", "c1", 1.0, 1281.0)
        .invite(S114, "b2", "c1", 1281.0);
    assert_eq!(status("T2", &invite), Status::Inconclusive);
    // Over TCP nothing is retransmitted.
    let mut tcp = Tl::default();
    tcp.send("REGISTER", S52, Transport::Tcp, "b1", "r", 1, 1.0)
        .note(2000.0);
    assert_eq!(status("T2", &tcp), Status::Inconclusive);
}

/// An INVITE stalled at sipserver52 abandoned after `gap_ms` for sipserver114.
fn moved_on_after(gap_ms: f64) -> Tl {
    let mut tl = Tl::default();
    tl.query(UDP, "SRV", 0.0)
        .stalled_invite(S52, "b1", "c1", 1.0, 1.0 + gap_ms)
        .invite(S114, "b2", "c1", 1.0 + gap_ms)
        .respond(S114, 200, "b2", "c1", 2.0 + gap_ms);
    tl
}

fn early(after_ms: u64) -> Profile {
    Profile {
        failover_after: Some(Duration::from_millis(after_ms)),
        ..profile(None)
    }
}

#[test]
fn t4_the_declared_failover_time_is_judged_and_reported() {
    let verdict = run("T4", &moved_on_after(301.0), &early(300));
    assert_eq!(verdict.status, Status::Pass, "{}", verdict.sentence);
    assert_eq!(verdict.level, Level::Profile);
    assert!(
        verdict.sentence.contains(
            "moved on after 0.301 s = 15.1·T1; the profile declares 300 ms ± 10 % (30 ms)"
        ),
        "{}",
        verdict.sentence
    );
    // F1 takes a move before Timer B as the vendor's business.
    assert_eq!(
        run("F1", &moved_on_after(301.0), &early(300)).status,
        Status::Pass
    );

    // The device ignored its own setting and waited for Timer B: T4 fails, F1 does not.
    let waited = moved_on_after(1280.0);
    let verdict = run("T4", &waited, &early(300));
    assert_eq!(verdict.status, Status::Fail);
    assert!(
        verdict
            .sentence
            .contains("moved on after 1.280 s = 64.0·T1"),
        "{}",
        verdict.sentence
    );
    assert_eq!(run("F1", &waited, &early(300)).status, Status::Pass);
    // Later than Timer B breaks the MUST too.
    assert_eq!(
        run("F1", &moved_on_after(2000.0), &early(300)).status,
        Status::Fail
    );

    // Still waiting at the end of the run although sipserver114 was left.
    let mut stuck = Tl::default();
    stuck
        .query(UDP, "SRV", 0.0)
        .stalled_invite(S52, "b1", "c1", 1.0, 1000.0)
        .note(1000.0);
    let verdict = run("T4", &stuck, &early(300));
    assert_eq!(verdict.status, Status::Fail);
    assert!(
        verdict.sentence.contains("had not moved on"),
        "{}",
        verdict.sentence
    );

    let mut answered = Tl::default();
    answered
        .invite(S52, "b1", "c1", 1.0)
        .respond(S52, 200, "b1", "c1", 2.0);
    assert_eq!(
        run("T4", &answered, &early(300)).status,
        Status::Inconclusive
    );
}

#[test]
fn t4_without_a_declaration_reports_an_early_move_and_leaves_the_verdict_to_f1() {
    let verdict = run("T4", &moved_on_after(301.0), &profile(None));
    assert_eq!(verdict.status, Status::NotApplicable);
    assert!(
        verdict
            .sentence
            .contains("1 of 1 unanswered attempt(s) moved on early, after 0.301 s = 15.1·T1"),
        "{}",
        verdict.sentence
    );
    assert!(!verdict.evidence.is_empty());
    assert_eq!(
        run("F1", &moved_on_after(301.0), &profile(None)).status,
        Status::Fail
    );

    let verdict = run("T4", &moved_on_after(1280.0), &profile(None));
    assert_eq!(verdict.status, Status::NotApplicable);
    assert!(
        verdict.sentence.contains("after 1.280 s"),
        "{}",
        verdict.sentence
    );
}
