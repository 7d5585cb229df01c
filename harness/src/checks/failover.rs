//! What makes a device move on to the next target (RFC 3263 §4.3, RFC 3261 §17.1): F1 a
//! timeout after Timer B (by Timer B when the vendor declares an earlier time, which T4
//! judges), F2 a refusal at once, F3 a 503 (or a profile failover code) with a new request,
//! ACKed for INVITE.

use std::time::Duration;

use serde_json::json;

use super::Context;
use super::attempts::{Attempt, AttemptEnd, Request, cut_short_by, cut_short_left_out, retried_by};
use super::failures::{Failure, failures, is_failover_status};
use super::measure::{duration, in_t1, millis, ns, secs, tolerance, within};
use super::resolution::untried;
use super::verdict::{Findings, Level, Verdict};
use crate::timeline::{EventKind, Transport};

/// The targets `request` could still have moved on to at `t_ns`, named for a sentence.
pub(super) fn left_over(
    ctx: &Context,
    request: &Request,
    all: &[Failure],
    t_ns: u64,
) -> Vec<String> {
    untried(ctx, request, all, t_ns)
        .iter()
        .map(|r| r.target.to_string())
        .collect()
}

/// What followed a failed attempt after which no other target was tried, for a sentence: the
/// device's new transaction to the same target (a retry, not a failover), if it began one.
fn retry_clause(requests: &[Request], attempt: &Attempt, failed_ns: u64) -> String {
    retried_by(requests, attempt).map_or_else(String::new, |retry| {
        format!(
            "; {} later the device began a new transaction to the same target",
            duration(retry.first_sent().saturating_sub(failed_ns))
        )
    })
}

/// F1: an attempt without any response is followed by the next attempt, to another target, at
/// Timer B (64·T1) ± 10 %. When the profile declares an earlier failover, F1 only asks that
/// the move came by Timer B (+10 %): how it compares with the declared time is T4's verdict,
/// so one wrong wait is not counted twice. A new transaction to the same target after Timer
/// B/F is the device retrying, not moving on (see [`super::attempts`]): the attempt is judged
/// as one after which no other target was tried. An attempt cut short by a request srvlab's
/// trigger asked for is not judged.
pub fn f1(ctx: &Context) -> Verdict {
    let level = Level::Must;
    let t1 = ctx.profile.t1;
    let timer_b = ctx.profile.timer_b();
    let declared = ctx.profile.failover_after;
    let latest = ns(timer_b.saturating_add(tolerance(timer_b)));
    let in_time = |gap: u64| match declared {
        Some(_) => gap <= latest,
        None => within(gap, timer_b),
    };
    let expectation = match declared {
        Some(after) => format!(
            "expected by Timer B = 64·T1 = {} + 10 % (T1 = {}); the declared {} is T4's to judge",
            secs(ns(timer_b)),
            millis(ns(t1)),
            millis(ns(after))
        ),
        None => format!(
            "expected 64·T1 = {} ± 10 % (T1 = {})",
            secs(ns(timer_b)),
            millis(ns(t1))
        ),
    };
    let end_ns = ctx.end_ns();
    let mut found = Findings::default();
    let requests = ctx.requests();
    let all = failures(ctx, &requests);
    let mut cut: Vec<&str> = Vec::new();
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
                    if !in_time(gap) {
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
                    let due = start.saturating_add(latest);
                    if let Some(asked) = cut_short_by(&requests, attempt, due) {
                        cut.push(&asked.method);
                        continue;
                    }
                    let left = left_over(ctx, request, &all, due);
                    if end_ns < due || left.is_empty() {
                        continue;
                    }
                    found.judged += 1;
                    let fired = start.saturating_add(ns(timer_b));
                    let sentence = match retried_by(&requests, attempt) {
                        Some(_) => format!(
                            "{} fired at {} for {} to {} (64·T1 after it began at {}); no {} target was tried although {} remained{}; {expectation}",
                            if attempt.method == "INVITE" {
                                "Timer B"
                            } else {
                                "Timer F"
                            },
                            secs(fired),
                            attempt.method,
                            attempt.describe(),
                            secs(start),
                            if i == 0 { "other" } else { "further" },
                            left.join(", "),
                            retry_clause(&requests, attempt, fired)
                        ),
                        None => format!(
                            "{} to {} got no response and no next attempt followed by {} although {} remained; {expectation}",
                            attempt.method,
                            attempt.describe(),
                            secs(end_ns),
                            left.join(", ")
                        ),
                    };
                    found.bad.push((sentence, vec![attempt.first_seq()]));
                }
            }
        }
    }
    let pass = match declared {
        Some(_) => format!(
            "{} unanswered attempt(s) moved on to another target {}",
            found.judged,
            expectation.trim_start_matches("expected ")
        ),
        None => format!(
            "{} unanswered attempt(s) moved on to another target after Timer B ({})",
            found.judged,
            expectation.trim_start_matches("expected ")
        ),
    };
    found.left_out.extend(cut_short_left_out(
        cut.len(),
        "unanswered attempt",
        cut.first().copied().unwrap_or("request"),
    ));
    found.verdict(
        "F1",
        level,
        pass,
        "no attempt went without any response until the device moved on",
        json!({"timer_b_ms": ns(timer_b) as f64 / 1e6,
            "declared_failover_after_ms": declared.map(|d| ns(d) as f64 / 1e6),
            "tolerance_ms": ns(tolerance(timer_b)) as f64 / 1e6}),
    )
}

/// When `attempt` began, as seen after `after`: over TLS the device moves on when it connects,
/// and the handshake that comes before its first message is no delay of its decision.
fn attempt_began(ctx: &Context, attempt: &Attempt, after: u64) -> u64 {
    let first = attempt.first_sent();
    if attempt.transport != Transport::Tls {
        return first;
    }
    ctx.events
        .iter()
        .filter(|e| e.t_ns >= after && e.t_ns <= first)
        .filter_map(|e| match &e.kind {
            EventKind::TcpConnected(c) if c.local == attempt.address => Some(e.t_ns),
            _ => None,
        })
        .next_back()
        .unwrap_or(first)
}

/// F2 (SHOULD): after a refusal the next attempt begins within one Timer A interval (T1) plus
/// tolerance. A failed TLS handshake is a refusal too: the device knows at once (it rejected
/// the certificate, or the server sent an alert).
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
    // Next attempts late only by the host's stalls of the reference UA.
    let mut stalls: Vec<String> = Vec::new();
    let requests = ctx.requests();
    let all = failures(ctx, &requests);
    let mut cut: Vec<&str> = Vec::new();
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
                    let began = attempt_began(ctx, next, refusal.t_ns);
                    let delay = began.saturating_sub(refusal.t_ns);
                    // The device's own reaction: without the time the host did not run it.
                    let stalled = ctx.host_stalled_ns(refusal.t_ns, began);
                    let reaction = delay.saturating_sub(stalled);
                    found.measured.push(json!({"attempt": attempt.describe(),
                        "delay_ms": delay as f64 / 1e6, "host_stall_ms": stalled as f64 / 1e6,
                        "next": next.describe()}));
                    if delay > ns(allowed) && reaction <= ns(allowed) {
                        stalls.push(format!(
                            "{} {} later, {} of it stalled",
                            next.describe(),
                            secs(delay),
                            millis(stalled)
                        ));
                    }
                    if reaction > ns(allowed) {
                        found.bad.push((
                            format!(
                                "{} to {} {} at {} but the next attempt ({}) began only {} later = {}{}; expected within T1 + tolerance = {}",
                                attempt.method,
                                attempt.describe(),
                                attempt.refused_how(),
                                secs(refusal.t_ns),
                                next.describe(),
                                secs(delay),
                                in_t1(delay, t1),
                                if stalled > 0 {
                                    format!(
                                        " ({} of it srvlab's host not running the reference UA)",
                                        millis(stalled)
                                    )
                                } else {
                                    String::new()
                                },
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
                    if let Some(asked) = cut_short_by(&requests, attempt, due) {
                        cut.push(&asked.method);
                        continue;
                    }
                    let left = left_over(ctx, request, &all, due);
                    if end_ns < due || left.is_empty() {
                        continue;
                    }
                    found.judged += 1;
                    found.bad.push((
                        format!(
                            "{} to {} {} at {} and no next attempt followed although {} remained{}",
                            attempt.method,
                            attempt.describe(),
                            attempt.refused_how(),
                            secs(refusal.t_ns),
                            left.join(", "),
                            retry_clause(&requests, attempt, refusal.t_ns)
                        ),
                        vec![refusal.seq],
                    ));
                }
            }
        }
    }
    let mut pass = format!(
        "after each of {} refusal(s) the next attempt began within T1 + tolerance = {}",
        found.judged,
        millis(ns(allowed))
    );
    if !stalls.is_empty() {
        pass += &format!(
            ", not counting the time srvlab's host did not run the reference UA ({})",
            stalls.join("; ")
        );
    }
    found.left_out.extend(cut_short_left_out(
        cut.len(),
        "refused attempt",
        cut.first().copied().unwrap_or("request"),
    ));
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
    // The device learns of a 503 at once: a request srvlab asked for this soon after it cut
    // the move short (as for F2).
    let allowed = ns(ctx.profile.t1.saturating_add(tolerance(ctx.profile.t1)));
    let mut found = Findings::default();
    let requests = ctx.requests();
    let all = failures(ctx, &requests);
    let mut cut: Vec<&str> = Vec::new();
    for request in &requests {
        for (i, attempt) in request.attempts.iter().enumerate() {
            let Some(response) = attempt
                .final_response()
                .filter(|r| is_failover_status(ctx, r.status))
            else {
                continue;
            };
            let due = response.t_ns.saturating_add(allowed);
            let asked = request
                .attempts
                .get(i + 1)
                .map_or_else(|| cut_short_by(&requests, attempt, due), |_| None);
            if let Some(asked) = asked {
                cut.push(&asked.method);
                // Only the ACK of an INVITE's 503 is left to judge.
                if attempt.method != "INVITE" {
                    continue;
                }
            }
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
                None if asked.is_some() => {}
                None => {
                    let left = left_over(ctx, request, &all, response.t_ns);
                    if !left.is_empty() {
                        found.bad.push((
                            format!(
                                "after the {status} from {} at {} no new attempt followed although {} remained{}",
                                attempt.describe(),
                                secs(response.t_ns),
                                left.join(", "),
                                retry_clause(&requests, attempt, response.t_ns)
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
    found.left_out.extend(cut_short_left_out(
        cut.len(),
        "failover response",
        cut.first().copied().unwrap_or("request"),
    ));
    found.verdict(
        "F3",
        level,
        pass,
        "no server answered 503 or a declared failover code",
        json!({"failover_codes": codes}),
    )
}
