//! D3–D6 on hand-built timelines.

use super::*;
use crate::model::profile::FailbackMode;

/// A registration with sipserver114 at 0 s and a refresh to `refresh_to` at 1 s.
fn refresh(refresh_to: &str) -> Tl {
    let mut tl = Tl::default();
    tl.query(UDP, "SRV", 0.0);
    registered(&mut tl, S114, "b1", 1, 1.0);
    registered(&mut tl, refresh_to, "b2", 2, 1000.0);
    tl
}

fn with_failback(mode: FailbackMode, timeout_ms: Option<u64>) -> Profile {
    Profile {
        failback_mode: Some(mode),
        failback_timeout: timeout_ms.map(Duration::from_millis),
        ..profile(Some(2))
    }
}

#[test]
fn d4_a_refresh_goes_to_the_registrar() {
    let verdict = run("D4", &refresh(S114), &profile(Some(2)));
    assert_eq!(
        (verdict.status, verdict.level),
        (Status::Pass, Level::Should),
        "{}",
        verdict.sentence
    );

    let verdict = run("D4", &refresh(S52), &profile(Some(2)));
    assert_eq!(
        (verdict.status, verdict.level),
        (Status::Warn, Level::Should)
    );
    assert!(
        verdict.sentence.contains(
            "the REGISTER refresh at 1.000 s went to sipserver52.snom.rocks. udp 127.0.0.52:5060, not to the registrar sipserver114.snom.rocks. udp 127.0.0.114:5060"
        ),
        "{}",
        verdict.sentence
    );

    // A device that claims to stay with its registrar (Yealink failback mode duration) breaks
    // its own declaration.
    let sticky = with_failback(FailbackMode::Duration, None);
    let verdict = run("D4", &refresh(S52), &sticky);
    assert_eq!(
        (verdict.status, verdict.level),
        (Status::Fail, Level::Profile)
    );
    assert!(
        verdict.sentence.contains("failback_mode duration"),
        "{}",
        verdict.sentence
    );
    assert_eq!(run("D4", &refresh(S114), &sticky).status, Status::Pass);
    // Past its failback timeout it may draw anew: not judged.
    let short = with_failback(FailbackMode::Duration, Some(500));
    assert_eq!(
        run("D4", &refresh(S52), &short).status,
        Status::Inconclusive
    );
    // dns_ttl: the records live 300 s, counted from the SRV query at 0 s.
    let dns = with_failback(FailbackMode::DnsTtl, None);
    assert_eq!(run("D4", &refresh(S52), &dns).status, Status::Fail);
    // A device that declares it sends renewals back to the top of the list still gets the
    // SHOULD's warning, with its declaration in the sentence.
    let fresh = with_failback(FailbackMode::NewRequests, None);
    let verdict = run("D4", &refresh(S52), &fresh);
    assert_eq!(
        (verdict.status, verdict.level),
        (Status::Warn, Level::Should)
    );
    assert!(
        verdict.sentence.contains("new_requests"),
        "{}",
        verdict.sentence
    );
}

#[test]
fn d4_is_not_judged_while_the_registrar_is_known_to_have_failed() {
    let mut tl = Tl::default();
    tl.query(UDP, "SRV", 0.0);
    registered(&mut tl, S114, "b1", 1, 1.0);
    tl.refused_udp(S114, "b2", "call", 500.0)
        .invite(S52, "b3", "call", 501.0)
        .respond(S52, 200, "b3", "call", 502.0);
    registered(&mut tl, S52, "b4", 2, 1000.0);
    let verdict = run("D4", &tl, &profile(Some(2)));
    assert_eq!(verdict.status, Status::Inconclusive);
    assert!(
        verdict
            .sentence
            .contains("1 came after the registrar failed"),
        "{}",
        verdict.sentence
    );

    // A device that changes its Call-ID for the refresh is held to its latest registration.
    let mut other = Tl::default();
    registered(&mut other, S114, "b1", 1, 1.0);
    other.send("REGISTER", S52, Transport::Udp, "b2", "another", 1, 1000.0);
    assert_eq!(status("D4", &other), Status::Warn);
}

/// A registration whose three targets all stall (REGISTER at 0, 1.28 and 2.56 s; it fails at
/// 3.84 s), then a new REGISTER `gap_ms` later, answered.
fn failed_then(gap_ms: Option<f64>) -> Tl {
    let mut tl = Tl::default();
    tl.query(UDP, "SRV", 0.0);
    for (k, server) in [S52, S114, BACKUP].into_iter().enumerate() {
        let start = 1.0 + 1280.0 * k as f64;
        let mut offset = 0.0;
        let mut interval = 20.0;
        while offset < 1280.0 {
            tl.send(
                "REGISTER",
                server,
                Transport::Udp,
                &format!("b{k}"),
                "reg",
                1,
                start + offset,
            );
            offset += interval;
            interval *= 2.0;
        }
    }
    match gap_ms {
        Some(gap) => registered(&mut tl, S52, "again", 2, 3841.0 + gap),
        None => {
            tl.note(7000.0);
        }
    }
    tl
}

fn retry_after(ms: u64) -> Profile {
    Profile {
        retry_after_failed_register: Some(Duration::from_millis(ms)),
        ..profile(None)
    }
}

#[test]
fn d5_no_register_right_after_a_registration_failed_everywhere() {
    let verdict = run("D5", &failed_then(Some(1500.0)), &profile(None));
    assert_eq!(
        (verdict.status, verdict.level),
        (Status::Pass, Level::Should),
        "{}",
        verdict.sentence
    );
    let verdict = run("D5", &failed_then(Some(1.0)), &profile(None));
    assert_eq!(
        (verdict.status, verdict.level),
        (Status::Warn, Level::Should)
    );
    assert!(
        verdict
            .sentence
            .contains("REGISTER went out again 1 ms after the registration failed at every target")
            && verdict
                .sentence
                .contains("at 3.841 s; expected none within 1.000 s"),
        "{}",
        verdict.sentence
    );
    // Snom's retry_after_failed_register = 2 s: 1.5 s is too early for the claim.
    let verdict = run("D5", &failed_then(Some(1500.0)), &retry_after(2000));
    assert_eq!(
        (verdict.status, verdict.level),
        (Status::Fail, Level::Profile)
    );
    assert!(
        verdict
            .sentence
            .contains("the profile declares retry_after_failed_register 2s ± 10 %"),
        "{}",
        verdict.sentence
    );
    assert_eq!(
        run("D5", &failed_then(Some(1850.0)), &retry_after(2000)).status,
        Status::Pass
    );
    // A declared time below the checklist's 1 s does not excuse an immediate retry.
    let verdict = run("D5", &failed_then(Some(600.0)), &retry_after(500));
    assert_eq!(
        (verdict.status, verdict.level),
        (Status::Warn, Level::Should)
    );
    // The run went on 3 s without a REGISTER: the rule was kept.
    assert_eq!(status("D5", &failed_then(None)), Status::Pass);
    // A new Call-ID does not make an immediate re-REGISTER any better.
    let mut new_call_id = failed_then(None);
    new_call_id.send("REGISTER", S52, Transport::Udp, "fresh", "reg-2", 1, 3850.0);
    assert_eq!(status("D5", &new_call_id), Status::Warn);
}

#[test]
fn d5_is_inconclusive_when_no_registration_failed() {
    assert_eq!(status("D5", &refresh(S114)), Status::Inconclusive);
    // A failover within the registration is no re-REGISTER.
    let mut tl = Tl::default();
    tl.query(UDP, "SRV", 0.0)
        .send("REGISTER", S52, Transport::Udp, "b1", "reg", 1, 1.0);
    sip_answer(&mut tl, S52, 503, "REGISTER", "b1", "reg", 1, 2.0);
    registered(&mut tl, S114, "b2", 2, 3.0);
    assert_eq!(status("D5", &tl), Status::Inconclusive);
}

/// A registration with sipserver114, then calls each going first to `to(k)`.
fn calls_after_register(count: usize, to: impl Fn(usize) -> &'static str) -> Tl {
    let mut tl = Tl::default();
    tl.query(UDP, "SRV", 0.0);
    registered(&mut tl, S114, "b0", 1, 1.0);
    for k in 0..count {
        let t = 100.0 * (k + 1) as f64;
        let (branch, call) = (format!("i{k}"), format!("call{k}"));
        tl.invite(to(k), &branch, &call, t)
            .respond(to(k), 200, &branch, &call, t + 1.0);
    }
    tl
}

#[test]
fn d6_says_whether_calls_stick_to_the_registrar() {
    let verdict = run("D6", &calls_after_register(8, |_| S114), &profile(Some(2)));
    assert_eq!((verdict.status, verdict.level), (Status::Info, Level::Info));
    assert!(
        verdict
            .sentence
            .contains("8 of 8 INVITE/OPTIONS went first to the registrar")
            && verdict.sentence.contains("they stick to the registrar"),
        "{}",
        verdict.sentence
    );
    // Two fair draws landing there tell nothing.
    let verdict = run("D6", &calls_after_register(2, |_| S114), &profile(Some(2)));
    assert!(
        verdict.sentence.contains("that tells nothing"),
        "{}",
        verdict.sentence
    );
    let verdict = run(
        "D6",
        &calls_after_register(6, |k| if k % 2 == 0 { S52 } else { S114 }),
        &profile(Some(2)),
    );
    assert_eq!(verdict.status, Status::Info);
    assert!(
        verdict.sentence.contains("they draw anew"),
        "{}",
        verdict.sentence
    );

    let mut unregistered = Tl::default();
    unregistered
        .query(UDP, "SRV", 0.0)
        .invite(S52, "b1", "c1", 1.0)
        .respond(S52, 200, "b1", "c1", 2.0);
    assert_eq!(status("D6", &unregistered), Status::Inconclusive);
}

/// Calls after a registration with sipserver114, each after a fresh SRV answer whose first
/// record is `first(k)`, call k going to `to(k)`.
fn answers_then_calls(
    count: usize,
    first: impl Fn(usize) -> &'static str,
    to: impl Fn(usize) -> &'static str,
) -> Tl {
    const R52: &str = "_sip._udp.snom.rocks. 300 IN SRV 1 50 5060 sipserver52.snom.rocks.";
    const R114: &str = "_sip._udp.snom.rocks. 300 IN SRV 1 50 5060 sipserver114.snom.rocks.";
    let mut tl = Tl::default();
    tl.query(UDP, "SRV", 0.0)
        .answer(UDP, "SRV", &[R114, R52], 0.5);
    registered(&mut tl, S114, "b0", 1, 1.0);
    for k in 0..count {
        let t = 100.0 * (k + 1) as f64;
        let order = if first(k) == S52 {
            [R52, R114]
        } else {
            [R114, R52]
        };
        let to = to(k);
        let (branch, call) = (format!("i{k}"), format!("call{k}"));
        tl.query(UDP, "SRV", t - 2.0)
            .answer(UDP, "SRV", &order, t - 1.0)
            .invite(to, &branch, &call, t)
            .respond(to, 200, &branch, &call, t + 1.0);
    }
    tl
}

/// A device that always takes the first record of the answer, whatever the registrar or the
/// weights.
fn first_record_device(count: usize, first: impl Fn(usize) -> &'static str + Copy) -> Tl {
    answers_then_calls(count, first, first)
}

/// Issue 14: a device that always takes the first record of the answer was called sticky when
/// the registrar was that record, and "draws anew" when it was not.
#[test]
fn d6_tells_the_first_record_from_the_registrar() {
    // The registrar is the first record of every answer: sticking cannot be told apart.
    // Before: "9 of 9 … they stick to the registrar".
    let verdict = run("D6", &first_record_device(8, |_| S114), &profile(Some(2)));
    assert_eq!(verdict.status, Status::Info);
    assert!(
        verdict
            .sentence
            .contains("8 of 8 INVITE/OPTIONS went first to the registrar")
            && verdict.sentence.contains(
                "but the registrar was also the first SRV record of every answer, so sticking to it cannot be told from always taking the first record"
            ),
        "{}",
        verdict.sentence
    );
    assert_eq!(verdict.figures["to_first_srv_record"], 8);
    // The order changes from answer to answer and the device follows it, not the registrar.
    // Before: "4 of 8 … they draw anew".
    let alternating = first_record_device(8, |k| if k % 2 == 0 { S52 } else { S114 });
    let verdict = run("D6", &alternating, &profile(Some(2)));
    assert!(
        verdict.sentence.contains(
            "every one went to the first SRV record of the answer it followed, also where the registrar was not that record (4 of 8): the device follows the answer's order"
        ),
        "{}",
        verdict.sentence
    );
    // The registrar is never first and the device never goes there.
    let verdict = run("D6", &first_record_device(6, |_| S52), &profile(Some(2)));
    assert!(
        verdict
            .sentence
            .contains("0 of 6 INVITE/OPTIONS went first to the registrar")
            && verdict
                .sentence
                .contains("the device follows the answer's order"),
        "{}",
        verdict.sentence
    );
    // A device that goes to the registrar although another record comes first: sticky.
    let verdict = run(
        "D6",
        &answers_then_calls(8, |_| S52, |_| S114),
        &profile(Some(2)),
    );
    assert!(
        verdict
            .sentence
            .contains("8 of 8 INVITE/OPTIONS went first to the registrar")
            && verdict.sentence.contains("they stick to the registrar"),
        "{}",
        verdict.sentence
    );
}

const SCOPE_ZONE: &str = r#"
origin: scope.test.
ttl: 300
records:
  - SRV: {name: _sip._udp, priority: 1, weight: 1, port: 5060, target: sip}
  - SRV: {name: _sip._udp, priority: 2, weight: 1, port: 5070, target: sip}
  - SRV: {name: _sip._udp, priority: 3, weight: 1, port: 5060, target: other}
  - A: {name: sip, address: 127.0.0.52}
  - A: {name: other, address: 127.0.0.114}
"#;

/// sip:5060 refuses the first call, which goes on to sip:5070; the second call, during the
/// mark, goes first to `second`.
fn scope(second: &str) -> Tl {
    const S52_5070: &str = "127.0.0.52:5070";
    let mut tl = Tl::default();
    tl.query("_sip._udp.scope.test.", "SRV", 0.0)
        .refused_udp(S52, "b1", "c1", 1.0)
        .invite(S52_5070, "b2", "c1", 2.0)
        .respond(S52_5070, 200, "b2", "c1", 3.0)
        .invite(second, "b3", "c2", 500.0)
        .respond(second, 200, "b3", "c2", 501.0);
    tl
}

#[test]
fn d3_reports_what_a_mark_covers() {
    let per_port = run_in(
        SCOPE_ZONE,
        "D3",
        &scope("127.0.0.52:5070"),
        &profile(Some(2)),
    );
    assert_eq!(
        (per_port.status, per_port.level),
        (Status::Info, Level::Info)
    );
    assert!(
        per_port
            .sentence
            .contains("the mark covers the failed transport, address and port only"),
        "{}",
        per_port.sentence
    );
    let per_host = run_in(SCOPE_ZONE, "D3", &scope(S114), &profile(Some(2)));
    assert!(
        per_host.sentence.contains("the mark covers the whole host"),
        "{}",
        per_host.sentence
    );
    let none = run_in(SCOPE_ZONE, "D3", &scope(S52), &profile(Some(2)));
    assert!(
        none.sentence.contains("the failed target was not avoided"),
        "{}",
        none.sentence
    );
    // Without a second port on the failed host nothing can be read.
    assert_eq!(
        status("D3", &refused_then(1000.0, S114)),
        Status::Inconclusive
    );
}
