//! What makes a device move on to the next target (RFC 3263 §4.3, RFC 3261 §17.1): F1 a
//! timeout after Timer B (or the vendor's declared time, T4), F2 a refusal at once, F3 a 503
//! (or a profile failover code) with a new request, ACKed for INVITE.

use std::time::Duration;

use serde_json::json;

use super::Context;
use super::attempts::{AttemptEnd, Request};
use super::failures::{Failure, failures, is_failover_status};
use super::measure::{in_t1, millis, ns, secs, tolerance, within};
use super::resolution::untried;
use super::verdict::{Findings, Level, Verdict};

/// Findings of one check: violations, instances judged, evidence of the good ones.
/// The targets `request` could still have moved on to at `t_ns`, named for a sentence.
fn left_over(ctx: &Context, request: &Request, all: &[Failure], t_ns: u64) -> Vec<String> {
    untried(ctx, request, all, t_ns)
        .iter()
        .map(|r| r.target.to_string())
        .collect()
}

/// F1: an attempt without any response is followed by the next attempt, to another target, at
/// Timer B (64·T1) ± 10 % — or at the failover time the profile declares (judged as T4).
pub fn f1(ctx: &Context) -> Verdict {
    let level = Level::Must;
    let t1 = ctx.profile.t1;
    let expected = ctx.timeout();
    let declared = ctx.profile.failover_after.is_some();
    let expectation = if declared {
        format!(
            "expected the declared failover time {} (T4) ± {}",
            secs(ns(expected)),
            millis(ns(tolerance(expected)))
        )
    } else {
        format!(
            "expected 64·T1 = {} ± 10 % (T1 = {})",
            secs(ns(expected)),
            millis(ns(t1))
        )
    };
    let end_ns = ctx.end_ns();
    let mut found = Findings::default();
    let requests = ctx.requests();
    let all = failures(ctx, &requests);
    for request in &requests {
        for (i, attempt) in request.attempts.iter().enumerate() {
            if attempt.end != AttemptEnd::Unanswered || !attempt.responses.is_empty() {
                continue;
            }
            let start = attempt.first_sent();
            match request.attempts.get(i + 1) {
                Some(next) => {
                    found.judged += 1;
                    let gap = next.first_sent().saturating_sub(start);
                    found.measured.push(json!({"attempt": attempt.describe(),
                        "abandoned_after_ms": gap as f64 / 1e6, "next": next.describe()}));
                    if !within(gap, expected) {
                        found.bad.push((
                            format!(
                                "{} to {} abandoned at {} = {} for {}; {expectation}",
                                attempt.method,
                                attempt.describe(),
                                secs(gap),
                                in_t1(gap, t1),
                                next.describe()
                            ),
                            vec![attempt.first_seq(), next.first_seq()],
                        ));
                    } else if next.target_key() == attempt.target_key() {
                        found.bad.push((
                            format!(
                                "{} to {} timed out and the next attempt went to the same target",
                                attempt.method,
                                attempt.describe()
                            ),
                            vec![attempt.first_seq(), next.first_seq()],
                        ));
                    } else {
                        found
                            .evidence
                            .extend([attempt.first_seq(), next.first_seq()]);
                    }
                }
                None => {
                    let due =
                        start.saturating_add(ns(expected.saturating_add(tolerance(expected))));
                    let left = left_over(ctx, request, &all, due);
                    if end_ns < due || left.is_empty() {
                        continue;
                    }
                    found.judged += 1;
                    found.bad.push((
                        format!(
                            "{} to {} got no response and no next attempt followed by {} although {} remained; {expectation}",
                            attempt.method,
                            attempt.describe(),
                            secs(end_ns),
                            left.join(", ")
                        ),
                        vec![attempt.first_seq()],
                    ));
                }
            }
        }
    }
    let pass = format!(
        "{} unanswered attempt(s) moved on to another target after {} ({})",
        found.judged,
        if declared {
            "the declared failover time"
        } else {
            "Timer B"
        },
        expectation.trim_start_matches("expected ")
    );
    found.verdict(
        "F1",
        level,
        pass,
        "no attempt went without any response until the device moved on",
        json!({"expected_ms": ns(expected) as f64 / 1e6, "declared_failover_after": declared,
            "tolerance_ms": ns(tolerance(expected)) as f64 / 1e6}),
    )
}

/// F2 (SHOULD): after a refusal the next attempt begins within one Timer A interval (T1) plus
/// tolerance.
pub fn f2(ctx: &Context) -> Verdict {
    // A SHOULD; a profile declaring immediate failover on refusal makes it a claim.
    let level = if ctx.profile.refusal_failover == Some(true) {
        Level::Profile
    } else {
        Level::Should
    };
    let t1 = ctx.profile.t1;
    let allowed: Duration = t1.saturating_add(tolerance(t1));
    let end_ns = ctx.end_ns();
    let mut found = Findings::default();
    let requests = ctx.requests();
    let all = failures(ctx, &requests);
    for request in &requests {
        for (i, attempt) in request.attempts.iter().enumerate() {
            let Some(refusal) = attempt
                .refusal()
                .filter(|_| attempt.end == AttemptEnd::Refused)
            else {
                continue;
            };
            match request.attempts.get(i + 1) {
                Some(next) => {
                    found.judged += 1;
                    let delay = next.first_sent().saturating_sub(refusal.t_ns);
                    found.measured.push(json!({"attempt": attempt.describe(),
                        "delay_ms": delay as f64 / 1e6, "next": next.describe()}));
                    if delay > ns(allowed) {
                        found.bad.push((
                            format!(
                                "{} to {} was refused at {} but the next attempt ({}) began only {} later = {}; expected within T1 + tolerance = {}",
                                attempt.method,
                                attempt.describe(),
                                secs(refusal.t_ns),
                                next.describe(),
                                secs(delay),
                                in_t1(delay, t1),
                                millis(ns(allowed))
                            ),
                            vec![refusal.seq, next.first_seq()],
                        ));
                    } else {
                        found.evidence.extend([refusal.seq, next.first_seq()]);
                    }
                }
                None => {
                    let due = refusal.t_ns.saturating_add(ns(allowed));
                    let left = left_over(ctx, request, &all, due);
                    if end_ns < due || left.is_empty() {
                        continue;
                    }
                    found.judged += 1;
                    found.bad.push((
                        format!(
                            "{} to {} was refused at {} and no next attempt followed although {} remained",
                            attempt.method,
                            attempt.describe(),
                            secs(refusal.t_ns),
                            left.join(", ")
                        ),
                        vec![refusal.seq],
                    ));
                }
            }
        }
    }
    let pass = format!(
        "after each of {} refusal(s) the next attempt began within T1 + tolerance = {}",
        found.judged,
        millis(ns(allowed))
    );
    found.verdict(
        "F2",
        level,
        pass,
        "no refused attempt was followed by another",
        json!({"allowed_ms": ns(allowed) as f64 / 1e6, "t1_ms": ns(t1) as f64 / 1e6}),
    )
}

/// F3: a 503 (or a code the profile declares) leads to a new attempt to another target, and
/// the 503 of an INVITE is ACKed with the INVITE's branch.
pub fn f3(ctx: &Context) -> Verdict {
    let level = Level::Must;
    let mut found = Findings::default();
    let requests = ctx.requests();
    let all = failures(ctx, &requests);
    for request in &requests {
        for (i, attempt) in request.attempts.iter().enumerate() {
            let Some(response) = attempt
                .final_response()
                .filter(|r| is_failover_status(ctx, r.status))
            else {
                continue;
            };
            found.judged += 1;
            let status = response.status;
            if attempt.method == "INVITE" {
                if let Some(ack) = attempt.acks.iter().find(|a| a.t_ns >= response.t_ns) {
                    found.evidence.extend([response.seq, ack.seq]);
                } else {
                    found.bad.push((
                        format!(
                            "the {status} to the INVITE at {} from {} was never ACKed with the INVITE's branch",
                            secs(response.t_ns),
                            attempt.describe()
                        ),
                        vec![attempt.first_seq(), response.seq],
                    ));
                }
            }
            match request.attempts.get(i + 1) {
                Some(next) if next.target_key() == attempt.target_key() => {
                    found.bad.push((
                        format!(
                            "after the {status} from {} at {} the next attempt went to the same target",
                            attempt.describe(),
                            secs(response.t_ns)
                        ),
                        vec![response.seq, next.first_seq()],
                    ));
                }
                Some(next) => {
                    found
                        .measured
                        .push(json!({"status": status, "from": attempt.describe(),
                        "next": next.describe(),
                        "delay_ms": next.first_sent().saturating_sub(response.t_ns) as f64 / 1e6}));
                    found.evidence.push(next.first_seq());
                }
                None => {
                    let left = left_over(ctx, request, &all, response.t_ns);
                    if !left.is_empty() {
                        found.bad.push((
                            format!(
                                "after the {status} from {} at {} no new attempt followed although {} remained",
                                attempt.describe(),
                                secs(response.t_ns),
                                left.join(", ")
                            ),
                            vec![response.seq],
                        ));
                    }
                }
            }
        }
    }
    let codes: Vec<u16> = std::iter::once(503)
        .chain(ctx.profile.failover_codes.iter().copied())
        .collect();
    let pass = format!(
        "{} failover response(s) ({}) each led to a new attempt elsewhere (or no target was left) and were ACKed",
        found.judged,
        codes
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    found.verdict(
        "F3",
        level,
        pass,
        "no server answered 503 or a declared failover code",
        json!({"failover_codes": codes}),
    )
}
