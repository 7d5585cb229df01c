//! What the device decided by itself (CONFORMANCE: "Every check judges only what the device
//! decided by itself"): requests srvlab's trigger asked for, new transactions after an old one
//! ended, and in-dialog requests, on hand-built timelines.

use super::*;

/// srvlab fires the lab's `action` at `t_ms`; the device has `within_ms` to act on it.
fn trigger(tl: &mut Tl, action: &str, t_ms: f64, within_ms: f64) {
    let method = match action {
        "register" => "REGISTER",
        "call" => "INVITE",
        _ => "OPTIONS",
    };
    tl.at(
        t_ms,
        EventKind::Trigger {
            action: action.into(),
            method: Some(method.into()),
            within_ns: ms(within_ms),
        },
    );
}

/// An unanswered UDP REGISTER (branch, Call-ID "reg", `cseq`) from `t_ms` with RFC 3261
/// retransmissions (T1 = 20 ms, T2 = 4 s) until `until_ms`.
fn stalled_register(tl: &mut Tl, server: &str, branch: &str, cseq: u32, t_ms: f64, until_ms: f64) {
    let mut offset = 0.0;
    let mut interval = 20.0;
    while t_ms + offset < until_ms {
        tl.send(
            "REGISTER",
            server,
            Transport::Udp,
            branch,
            "reg",
            cseq,
            t_ms + offset,
        );
        offset += interval;
        interval *= 2.0;
    }
}

#[test]
fn the_grouping_marks_retries_requests_srvlab_asked_for_and_dialogs() {
    let mut tl = Tl::default();
    tl.query(UDP, "SRV", 0.0);
    stalled_register(&mut tl, S52, "b1", 1, 1.0, 1281.0);
    // A new transaction to the same target after Timer F: a retry, a request of its own.
    stalled_register(&mut tl, S52, "b2", 2, 2500.0, 2600.0);
    // One srvlab asked for, while b2 still runs.
    trigger(&mut tl, "register", 2700.0, 10_000.0);
    registered(&mut tl, S114, "b3", 3, 2701.0);
    // A call, its BYE, and a refresh that copies the registrar's To tag (still no dialog).
    tl.invite(S114, "i1", "c1", 4000.0)
        .respond(S114, 200, "i1", "c1", 4001.0);
    in_dialog(&mut tl, "BYE", S114, "bye1", "c1", 4100.0);
    in_dialog(&mut tl, "REGISTER", S114, "b4", "reg", 5000.0);
    let events = tl.events();
    let requests = attempts::group(&events, &profile(None));
    let seen: Vec<(&str, usize, bool, bool)> = requests
        .iter()
        .map(|r| {
            (
                r.method.as_str(),
                r.attempts.len(),
                r.asked.is_some(),
                r.in_dialog,
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("REGISTER", 1, false, false),
            ("REGISTER", 1, false, false),
            ("REGISTER", 1, true, false),
            ("INVITE", 1, false, false),
            ("BYE", 1, false, true),
            ("REGISTER", 1, false, false),
        ],
        "{requests:#?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Item 2: what srvlab's trigger asked for is not the device's decision.

#[test]
fn a_register_asked_for_inside_a_running_transaction_is_no_retry_and_no_failover() {
    // The device's REGISTER to sipserver52 runs (Timer F would fire at 1.281 s); srvlab fires
    // `register` at 400 ms and the device starts a new REGISTER transaction at once.
    let mut tl = Tl::default();
    tl.query(UDP, "SRV", 0.0);
    stalled_register(&mut tl, S52, "b1", 1, 1.0, 400.0);
    trigger(&mut tl, "register", 400.0, 10_000.0);
    registered(&mut tl, S52, "b2", 2, 401.0);
    tl.note(5000.0);

    let verdict = run("D5", &tl, &profile(None));
    assert_eq!(verdict.status, Status::Inconclusive, "{}", verdict.sentence);
    assert!(
        verdict
            .sentence
            .contains("(1 REGISTER srvlab's trigger asked for is left out)"),
        "{}",
        verdict.sentence
    );
    // Nor did the device give sipserver52 up early: srvlab cut the transaction short.
    let verdict = run("F1", &tl, &profile(None));
    assert_eq!(verdict.status, Status::Inconclusive, "{}", verdict.sentence);
    assert!(
        verdict.sentence.contains(
            "(1 unanswered attempt cut short by a REGISTER srvlab's trigger asked for is left out)"
        ),
        "{}",
        verdict.sentence
    );
}

#[test]
fn a_failover_the_device_makes_by_itself_after_a_trigger_stays_its_own() {
    // srvlab asks at 400 ms, the device goes on waiting and moves on at Timer F by itself.
    let mut tl = Tl::default();
    tl.query(UDP, "SRV", 0.0);
    stalled_register(&mut tl, S52, "b1", 1, 1.0, 1281.0);
    trigger(&mut tl, "register", 400.0, 10_000.0);
    registered(&mut tl, S114, "b2", 1, 1281.0);
    let verdict = run("F1", &tl, &profile(None));
    assert_eq!(verdict.status, Status::Pass, "{}", verdict.sentence);
}

/// A registration whose three targets all stall (it fails at 3.841 s), then srvlab asks for
/// `register` `after_ms` later and the device registers at once.
fn failed_then_asked(after_ms: f64) -> Tl {
    let mut tl = Tl::default();
    tl.query(UDP, "SRV", 0.0);
    for (k, server) in [S52, S114, BACKUP].into_iter().enumerate() {
        let start = 1.0 + 1280.0 * k as f64;
        stalled_register(&mut tl, server, &format!("b{k}"), 1, start, start + 1280.0);
    }
    tl.step("back", 3841.0);
    trigger(&mut tl, "register", 3841.0 + after_ms, 10_000.0);
    registered(&mut tl, S52, "again", 2, 3842.0 + after_ms);
    tl
}

#[test]
fn d5_leaves_out_a_register_srvlab_asked_for_after_a_failed_registration() {
    let verdict = run("D5", &failed_then_asked(10.0), &profile(None));
    assert_eq!(verdict.status, Status::Inconclusive, "{}", verdict.sentence);
    assert!(
        verdict
            .sentence
            .contains("(1 REGISTER srvlab's trigger asked for is left out)"),
        "{}",
        verdict.sentence
    );
    // Quiet by itself for 1.5 s before srvlab asked: the rule was kept that long.
    let verdict = run("D5", &failed_then_asked(1500.0), &profile(None));
    assert_eq!(verdict.status, Status::Pass, "{}", verdict.sentence);
    assert!(
        verdict
            .sentence
            .contains("(1 REGISTER srvlab's trigger asked for is left out)"),
        "{}",
        verdict.sentence
    );
    // A `call` explains no REGISTER: one right after the failure is the device's own.
    let mut tl = failed_then_asked(10.0);
    tl.events.retain(|(_, kind)| !is_trigger(kind));
    trigger(&mut tl, "call", 3845.0, 10_000.0);
    assert_eq!(run("D5", &tl, &profile(None)).status, Status::Warn);
    // Nor does a trigger explain a REGISTER long after the device's time to act ran out.
    let mut late = failed_then_asked(10.0);
    late.events.retain(|(_, kind)| !is_trigger(kind));
    trigger(&mut late, "register", 3840.0, 0.5);
    assert_eq!(run("D5", &late, &profile(None)).status, Status::Warn);
}

fn is_trigger(kind: &EventKind) -> bool {
    matches!(kind, EventKind::Trigger { .. })
}

#[test]
fn d4_leaves_out_registers_srvlab_asked_for() {
    // Registered with sipserver114; srvlab asks twice, and the device registers afresh with
    // sipserver52 each time (a new draw): no refresh of its own to judge.
    let mut tl = Tl::default();
    tl.query(UDP, "SRV", 0.0);
    registered(&mut tl, S114, "b1", 1, 1.0);
    trigger(&mut tl, "register", 999.0, 10_000.0);
    registered(&mut tl, S52, "b2", 2, 1000.0);
    trigger(&mut tl, "register", 1999.0, 10_000.0);
    registered(&mut tl, S52, "b3", 3, 2000.0);
    let verdict = run("D4", &tl, &profile(None));
    assert_eq!(verdict.status, Status::Inconclusive, "{}", verdict.sentence);
    assert!(
        verdict.sentence.contains(
            "no REGISTER refresh of the device's own followed a successful registration (2 REGISTERs srvlab's trigger asked for are left out)"
        ),
        "{}",
        verdict.sentence
    );
    // A refresh of its own, later, is judged, and the sentence still says what was left out.
    registered(&mut tl, S52, "b4", 4, 20_000.0);
    let verdict = run("D4", &tl, &profile(None));
    assert_eq!(verdict.status, Status::Pass, "{}", verdict.sentence);
    assert!(
        verdict
            .sentence
            .contains("(2 REGISTERs srvlab's trigger asked for are left out)"),
        "{}",
        verdict.sentence
    );
}

// ---------------------------------------------------------------------------------------------
// Item 3: a new transaction to the same target after the old one ended is no late failover.

/// REGISTER to sipserver52 unanswered until Timer F (1.281 s), then `second` at 2.5 s:
/// (server, branch).
fn timer_f_then(server: &str, branch: &str) -> Tl {
    let mut tl = Tl::default();
    tl.query(UDP, "SRV", 0.0);
    stalled_register(&mut tl, S52, "b1", 1, 1.0, 1281.0);
    stalled_register(&mut tl, server, branch, 2, 2500.0, 3780.0);
    tl.note(4000.0);
    tl
}

#[test]
fn a_new_transaction_to_the_same_target_after_timer_f_is_a_retry_not_a_late_failover() {
    let tl = timer_f_then(S52, "b2");
    let verdict = run("F1", &tl, &profile(None));
    assert_eq!(verdict.status, Status::Fail, "{}", verdict.sentence);
    assert!(
        verdict.sentence.contains(
            "Timer F fired at 1.281 s for REGISTER to sipserver52.snom.rocks. udp 127.0.0.52:5060 (64·T1 after it began at 0.001 s); no other target was tried although"
        ) && verdict
            .sentence
            .contains("remained; 1.219 s later the device began a new transaction to the same target"),
        "{}",
        verdict.sentence
    );
    assert!(
        !verdict.sentence.contains("abandoned"),
        "{}",
        verdict.sentence
    );
    // T4 saw no move to another target.
    let verdict = run("T4", &tl, &profile(None));
    assert!(
        !verdict.sentence.contains("moved on"),
        "{}",
        verdict.sentence
    );
    // Each transaction's own copies are judged by T2, neither cut by the other.
    assert_eq!(run("T2", &tl, &profile(None)).status, Status::Pass);

    // A late move to another target is still a late failover.
    let verdict = run("F1", &timer_f_then(S114, "b2"), &profile(None));
    assert_eq!(verdict.status, Status::Fail, "{}", verdict.sentence);
    assert!(
        verdict.sentence.contains("abandoned at 2.499 s"),
        "{}",
        verdict.sentence
    );
    // A copy of the old transaction (its branch) after Timer F is a retransmission: T2's.
    let verdict = run("T2", &timer_f_then(S52, "b1"), &profile(None));
    assert_eq!(verdict.status, Status::Fail, "{}", verdict.sentence);
}

#[test]
fn a_new_transaction_to_a_refused_target_later_is_no_slow_failover() {
    let mut tl = Tl::default();
    tl.query(UDP, "SRV", 0.0)
        .refused_udp(S52, "b1", "c1", 1.0)
        .invite(S52, "b2", "c1", 3000.0)
        .respond(S52, 200, "b2", "c1", 3001.0);
    let verdict = run("F2", &tl, &profile(None));
    assert_eq!(verdict.status, Status::Warn, "{}", verdict.sentence);
    assert!(
        verdict
            .sentence
            .contains("was refused at 0.001 s and no next attempt followed although")
            && verdict.sentence.contains(
                "remained; 2.999 s later the device began a new transaction to the same target"
            ),
        "{}",
        verdict.sentence
    );
}

// ---------------------------------------------------------------------------------------------
// Item 5: in-dialog requests follow the dialog, not DNS.

/// The device sends `method` inside the dialog of `call_id` (its To header has a tag).
fn in_dialog(tl: &mut Tl, method: &str, server: &str, branch: &str, call_id: &str, t_ms: f64) {
    let raw = format!(
        "{method} sip:100@{server} SIP/2.0\r\nVia: SIP/2.0/UDP {DEVICE};branch={branch}\r\nFrom: <sip:200@snom.rocks>;tag=dev\r\nTo: <sip:100@snom.rocks>;tag=srv\r\nCall-ID: {call_id}\r\nCSeq: 2 {method}\r\nContent-Length: 0\r\n\r\n"
    );
    let summary = SipSummary {
        method: Some(method.into()),
        call_id: Some(call_id.into()),
        cseq: Some(format!("2 {method}")),
        branch: Some(branch.into()),
        ..SipSummary::default()
    };
    tl.at(
        t_ms,
        EventKind::SipReceived(Tl::message(
            server,
            Transport::Udp,
            summary,
            raw.into_bytes(),
        )),
    );
}

#[test]
fn a_bye_to_a_server_marked_since_the_call_began_is_no_d1_failure() {
    let mut tl = Tl::default();
    tl.query(UDP, "SRV", 0.0)
        // Call 1 is answered by sipserver114.
        .invite(S114, "i1", "c1", 1.0)
        .respond(S114, 200, "i1", "c1", 2.0);
    in_dialog(&mut tl, "ACK", S114, "a1", "c1", 3.0);
    // Call 2: sipserver114 is out of service now (503), sipserver52 takes it.
    tl.invite(S114, "i2", "c2", 100.0)
        .respond(S114, 503, "i2", "c2", 101.0)
        .ack(S114, "i2", "c2", 102.0)
        .invite(S52, "i3", "c2", 103.0)
        .respond(S52, 200, "i3", "c2", 104.0);
    in_dialog(&mut tl, "ACK", S52, "a3", "c2", 105.0);
    // Call 1 ends: its BYE follows the dialog to sipserver114, marked dirty since 101 ms.
    in_dialog(&mut tl, "BYE", S114, "bye1", "c1", 500.0);
    in_dialog(&mut tl, "BYE", S52, "bye2", "c2", 600.0);
    // Call 3, inside the mark, avoids sipserver114: what D1 needs to pass.
    tl.invite(S52, "i4", "c3", 700.0)
        .respond(S52, 200, "i4", "c3", 701.0);
    let verdict = run("D1", &tl, &profile(Some(2)));
    assert_eq!(verdict.status, Status::Pass, "{}", verdict.sentence);
    assert!(
        verdict
            .sentence
            .starts_with("1 attempt(s) of other requests during the marks of 1 failed target(s)"),
        "{}",
        verdict.sentence
    );
}
