//! RFC 3261 §17.1.1 client transaction timers as the servers saw them: T1 Timer A's doubling
//! retransmissions of an unanswered UDP INVITE, T3 no retransmission where there must be none.

use std::time::Duration;

use serde_json::json;

use super::Context;
use super::attempts::Attempt;
use super::measure::{FLOOR, in_t1, millis, ns, secs, tolerance, within};
use super::verdict::{Level, Status, Verdict};
use crate::timeline::Transport;

/// T1: an unanswered UDP INVITE is sent at 0, T1, 3T1, 7T1… (each interval twice the last,
/// no cap) until the device moves on. Every interval is judged against its expected value
/// (±10 % or ±2 ms, whichever is larger), and every copy the device had time to send must be
/// there.
pub fn t1(ctx: &Context) -> Verdict {
    let level = Level::Must;
    let t1 = ctx.profile.t1;
    let end_ns = ctx.end_ns();
    let requests = ctx.requests();
    let mut judged = 0usize;
    let mut bad: Vec<(String, Vec<u64>)> = Vec::new();
    let mut measured = Vec::new();
    let mut evidence = Vec::new();
    for request in &requests {
        for (index, attempt) in request.attempts.iter().enumerate() {
            let unanswered_udp_invite = attempt.transport == Transport::Udp
                && attempt.method == "INVITE"
                && attempt.responses.is_empty()
                && attempt.refusal().is_none();
            if !unanswered_udp_invite {
                continue;
            }
            let first = attempt.first_sent();
            // How long the device had: until it moved on, Timer B, or the end of the run.
            let until = request
                .attempts
                .get(index + 1)
                .map_or(end_ns, Attempt::first_sent)
                .min(first.saturating_add(ns(ctx.timeout())));
            let window = until.saturating_sub(first);
            if window <= ns(t1.saturating_add(tolerance(t1))) {
                continue;
            }
            judged += 1;
            let copies: Vec<_> = attempt.received().copied().collect();
            let offsets: Vec<u64> = copies.iter().map(|c| c.t_ns - first).collect();
            measured.push(json!({
                "attempt": attempt.describe(),
                "offsets_ms": offsets.iter().map(|o| *o as f64 / 1e6).collect::<Vec<_>>(),
            }));
            evidence.extend(copies.iter().map(|c| c.seq));
            let mut problem = None;
            for (k, pair) in copies.windows(2).enumerate() {
                let interval = pair[1].t_ns.saturating_sub(pair[0].t_ns);
                let factor = 1u32.checked_shl(k as u32).unwrap_or(u32::MAX);
                let expected = t1.saturating_mul(factor);
                if !within(interval, expected) {
                    problem = Some((
                        format!(
                            "{} to {}: copy {} came {} ({}) after copy {}; expected {} = {factor}·T1 ± {} (T1 = {})",
                            attempt.method,
                            attempt.describe(),
                            k + 2,
                            millis(interval),
                            in_t1(interval, t1),
                            k + 1,
                            millis(ns(expected)),
                            millis(ns(tolerance(expected))),
                            millis(ns(t1))
                        ),
                        vec![pair[0].seq, pair[1].seq],
                    ));
                    break;
                }
            }
            if problem.is_none() {
                // Copies the device had time to send: offsets (2^k − 1)·T1 well inside the window.
                let due = (0..32u32)
                    .map(|k| t1.saturating_mul((1u32 << k) - 1))
                    .take_while(|offset| ns(offset.saturating_add(tolerance(*offset))) < window)
                    .count();
                if copies.len() < due {
                    let missing = t1.saturating_mul((1u32 << copies.len()) - 1);
                    problem = Some((
                        format!(
                            "{} to {}: {} copies in {} without a response, expected {due} (the next at {} = {}·T1, T1 = {})",
                            attempt.method,
                            attempt.describe(),
                            copies.len(),
                            secs(window),
                            secs(ns(missing)),
                            (1u32 << copies.len()) - 1,
                            millis(ns(t1))
                        ),
                        copies.iter().map(|c| c.seq).collect(),
                    ));
                }
            }
            bad.extend(problem);
        }
    }
    let figures = json!({
        "t1_ms": ns(t1) as f64 / 1e6,
        "tolerance": "±10 % of each expected interval, at least ±2 ms",
        "attempts": measured,
    });
    if let Some((sentence, seqs)) = bad.first() {
        return Verdict::new("T1", level, Verdict::violation(level), sentence.clone())
            .with_evidence(seqs.clone())
            .with_figures(figures);
    }
    if judged == 0 {
        return Verdict::new(
            "T1",
            level,
            Status::Inconclusive,
            "no UDP INVITE went unanswered long enough to be retransmitted",
        )
        .with_figures(figures);
    }
    Verdict::new(
        "T1",
        level,
        Status::Pass,
        format!(
            "{judged} unanswered UDP INVITE attempt(s) were retransmitted at T1, 3·T1, 7·T1… within ±10 % or ±2 ms (T1 = {})",
            millis(ns(t1))
        ),
    )
    .with_evidence(evidence)
    .with_figures(figures)
}

/// A retransmission sent this soon after a provisional response crossed it on the wire.
const CROSSING: Duration = FLOOR;

/// T3: no retransmission over TCP; no INVITE retransmission once a provisional response came.
pub fn t3(ctx: &Context) -> Verdict {
    let level = Level::Must;
    let requests = ctx.requests();
    let mut tcp = 0usize;
    let mut provisional = 0usize;
    let mut bad: Vec<(String, Vec<u64>)> = Vec::new();
    let mut evidence = Vec::new();
    for attempt in requests.iter().flat_map(|r| &r.attempts) {
        let copies: Vec<_> = attempt.received().copied().collect();
        if attempt.transport == Transport::Tcp && !copies.is_empty() {
            tcp += 1;
            evidence.push(copies[0].seq);
            if let Some(second) = copies.get(1) {
                bad.push((
                    format!(
                        "{} to {} was retransmitted over TCP at {} ({} copies)",
                        attempt.method,
                        attempt.describe(),
                        secs(second.t_ns),
                        copies.len()
                    ),
                    copies.iter().map(|c| c.seq).collect(),
                ));
            }
        }
        let first_provisional = attempt.responses.iter().find(|r| r.status < 200);
        if let (true, Some(response)) = (attempt.method == "INVITE", first_provisional) {
            provisional += 1;
            evidence.push(response.seq);
            let limit = response.t_ns.saturating_add(ns(CROSSING));
            if let Some(late) = copies.iter().find(|c| c.t_ns > limit) {
                bad.push((
                    format!(
                        "INVITE to {} was retransmitted at {}, {} after the {} at {}",
                        attempt.describe(),
                        secs(late.t_ns),
                        millis(late.t_ns - response.t_ns),
                        response.status,
                        secs(response.t_ns)
                    ),
                    vec![response.seq, late.seq],
                ));
            }
        }
    }
    let figures = json!({"tcp_attempts": tcp, "invites_with_provisional": provisional,
        "crossing_allowance_ms": ns(CROSSING) as f64 / 1e6});
    if let Some((sentence, seqs)) = bad.first() {
        return Verdict::new("T3", level, Verdict::violation(level), sentence.clone())
            .with_evidence(seqs.clone())
            .with_figures(figures);
    }
    if tcp + provisional == 0 {
        return Verdict::new(
            "T3",
            level,
            Status::Inconclusive,
            "no attempt over TCP and no INVITE with a provisional response",
        )
        .with_figures(figures);
    }
    Verdict::new(
        "T3",
        level,
        Status::Pass,
        format!("{tcp} TCP attempt(s) and {provisional} INVITE(s) with a provisional response, none retransmitted"),
    )
    .with_evidence(evidence)
    .with_figures(figures)
}
