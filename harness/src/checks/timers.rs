//! RFC 3261 §17.1 client transaction timers as the servers saw them: T1 Timer A's doubling
//! retransmissions of an unanswered UDP INVITE, T2 Timer E's (capped at T2) of a non-INVITE,
//! T3 no retransmission where there must be none, T4 a vendor's failover earlier than Timer B.

use std::time::Duration;

use serde_json::json;

use super::Context;
use super::attempts::{Attempt, AttemptEnd, Request, cut_short_by, cut_short_left_out};
use super::failover::left_over;
use super::failures::failures;
use super::measure::{FLOOR, duration, in_t1, millis, ns, plus_minus, secs, tolerance, within};
use super::verdict::Findings;
use super::verdict::{Level, Status, Verdict};
use crate::timeline::EventKind;
use crate::timeline::Transport;

/// When a request's copies are due: each interval twice the last from T1, capped at T2 for a
/// non-INVITE (Timer E), uncapped for an INVITE (Timer A).
#[derive(Clone, Copy, Debug)]
struct Schedule {
    t1: Duration,
    cap: Option<Duration>,
}

impl Schedule {
    /// The interval between copy `k + 1` and copy `k + 2` (k from 0).
    fn interval(self, k: usize) -> Duration {
        let doubled = self
            .t1
            .saturating_mul(1u32.checked_shl(k as u32).unwrap_or(u32::MAX));
        self.cap.map_or(doubled, |cap| doubled.min(cap))
    }

    /// Whether interval `k` is the cap rather than a doubling.
    fn capped(self, k: usize) -> bool {
        self.cap.is_some_and(|cap| {
            self.t1
                .saturating_mul(1u32.checked_shl(k as u32).unwrap_or(u32::MAX))
                >= cap
        })
    }

    /// When copy `n + 1` is due, counted from the first.
    fn offset(self, n: usize) -> Duration {
        (0..n).fold(Duration::ZERO, |sum, k| {
            sum.saturating_add(self.interval(k))
        })
    }

    /// `4·T1`, or `T2` once capped.
    fn name(self, k: usize) -> String {
        if self.capped(k) {
            "T2".to_owned()
        } else {
            format!("{}·T1", 1u64.checked_shl(k as u32).unwrap_or(u64::MAX))
        }
    }
}

/// What judging the copies of unanswered UDP attempts found.
#[derive(Default)]
struct Copies {
    judged: usize,
    bad: Vec<(String, Vec<u64>)>,
    measured: Vec<serde_json::Value>,
    evidence: Vec<u64>,
    /// Attempts with at least one interval judged at the cap.
    capped: usize,
    /// Intervals out of tolerance that srvlab's host made so: the reference UA reported the
    /// copy late (`EventKind::HostDelay`). Left out, and said so.
    host_delayed: Vec<String>,
}

impl Copies {
    /// "; 1 interval not judged: …" for a verdict's sentence, or nothing.
    fn host_delay_clause(&self) -> String {
        match self.host_delayed.as_slice() {
            [] => String::new(),
            delayed => format!(
                "; {} interval(s) not judged because srvlab's host ran the reference UA late ({})",
                delayed.len(),
                delayed.join(", ")
            ),
        }
    }
}

/// How late the host ran the reference UA for the copy the server stamped at `copy_ns`, when
/// it said so: its report comes right after the copy went out.
fn host_delay(ctx: &Context, copy_ns: u64) -> Option<u64> {
    ctx.events.iter().find_map(|event| match event.kind {
        EventKind::HostDelay { late_ns }
            if event.t_ns + 1_000_000 >= copy_ns && event.t_ns <= copy_ns + 5_000_000 =>
        {
            Some(late_ns)
        }
        _ => None,
    })
}

/// Judges every unanswered, unrefused UDP attempt `wanted` picks: each interval between copies
/// against `schedule` (±10 % or ±2 ms), and that every copy due before the device moved on,
/// gave up waiting (Timer B/F or the declared failover time) or the run ended was sent.
fn judge_copies(ctx: &Context, wanted: fn(&Attempt) -> bool, schedule: Schedule) -> Copies {
    let t1 = schedule.t1;
    let end_ns = ctx.end_ns();
    let mut found = Copies::default();
    let requests = ctx.requests();
    for request in &requests {
        for (index, attempt) in request.attempts.iter().enumerate() {
            let unanswered_udp = attempt.transport == Transport::Udp
                && attempt.responses.is_empty()
                && attempt.refusal().is_none();
            if !unanswered_udp || !wanted(attempt) {
                continue;
            }
            let first = attempt.first_sent();
            // How long the device had: until it moved on, it gave up, srvlab's trigger asked for
            // a new request, or the run ended.
            let until = request
                .attempts
                .get(index + 1)
                .map_or(end_ns, Attempt::first_sent)
                .min(first.saturating_add(ns(ctx.timeout())))
                .min(cut_short_by(&requests, attempt, u64::MAX).map_or(u64::MAX, Request::start));
            let window = until.saturating_sub(first);
            if window <= ns(t1.saturating_add(tolerance(t1))) {
                continue;
            }
            found.judged += 1;
            let copies: Vec<_> = attempt.received().copied().collect();
            let offsets: Vec<u64> = copies.iter().map(|c| c.t_ns - first).collect();
            found.measured.push(json!({
                "attempt": attempt.describe(),
                "offsets_ms": offsets.iter().map(|o| *o as f64 / 1e6).collect::<Vec<_>>(),
            }));
            found.evidence.extend(copies.iter().map(|c| c.seq));
            if (0..copies.len().saturating_sub(1)).any(|k| schedule.capped(k)) {
                found.capped += 1;
            }
            let mut problem = None;
            for (k, pair) in copies.windows(2).enumerate() {
                let interval = pair[1].t_ns.saturating_sub(pair[0].t_ns);
                let expected = schedule.interval(k);
                if !within(interval, expected) {
                    let late =
                        host_delay(ctx, pair[1].t_ns).or_else(|| host_delay(ctx, pair[0].t_ns));
                    if let Some(late_ns) = late {
                        found.host_delayed.push(format!(
                            "copy {} of {} {}: {} after copy {}, the copy {} late",
                            k + 2,
                            attempt.method,
                            attempt.describe(),
                            millis(interval),
                            k + 1,
                            millis(late_ns)
                        ));
                        continue;
                    }
                    problem = Some((
                        format!(
                            "{} to {}: copy {} came {} ({}) after copy {}; expected {} = {} ± {} (T1 = {}{})",
                            attempt.method,
                            attempt.describe(),
                            k + 2,
                            millis(interval),
                            in_t1(interval, t1),
                            k + 1,
                            millis(ns(expected)),
                            schedule.name(k),
                            millis(ns(tolerance(expected))),
                            millis(ns(t1)),
                            schedule
                                .cap
                                .map(|t2| format!(", T2 = {}", millis(ns(t2))))
                                .unwrap_or_default()
                        ),
                        vec![pair[0].seq, pair[1].seq],
                    ));
                    break;
                }
            }
            if problem.is_none() {
                // Copies the device had time to send: offsets well inside the window.
                let due = (0..64usize)
                    .map(|n| schedule.offset(n))
                    .take_while(|offset| ns(offset.saturating_add(tolerance(*offset))) < window)
                    .count();
                if copies.len() < due {
                    let missing = schedule.offset(copies.len());
                    problem = Some((
                        format!(
                            "{} to {}: {} copies in {} without a response, expected {due} (the next at {} = {}, T1 = {})",
                            attempt.method,
                            attempt.describe(),
                            copies.len(),
                            secs(window),
                            secs(ns(missing)),
                            in_t1(ns(missing), t1),
                            millis(ns(t1))
                        ),
                        copies.iter().map(|c| c.seq).collect(),
                    ));
                }
            }
            found.bad.extend(problem);
        }
    }
    found
}

/// T1: an unanswered UDP INVITE is sent at 0, T1, 3T1, 7T1… (each interval twice the last,
/// no cap) until the device moves on. Every interval is judged against its expected value
/// (±10 % or ±2 ms, whichever is larger), and every copy the device had time to send must be
/// there. When it moved on is F1's (and T4's) to judge.
pub fn t1(ctx: &Context) -> Verdict {
    let level = Level::Must;
    let t1 = ctx.profile.t1;
    let found = judge_copies(ctx, |a| a.method == "INVITE", Schedule { t1, cap: None });
    let figures = json!({
        "t1_ms": ns(t1) as f64 / 1e6,
        "tolerance": "±10 % of each expected interval, at least ±2 ms",
        "attempts": found.measured,
        "host_delayed": found.host_delayed,
    });
    if let Some((sentence, seqs)) = found.bad.first() {
        return Verdict::new("T1", level, Verdict::violation(level), sentence.clone())
            .with_evidence(seqs.clone())
            .with_figures(figures);
    }
    if found.judged == 0 {
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
            "{} unanswered UDP INVITE attempt(s) were retransmitted at T1, 3·T1, 7·T1… within ±10 % or ±2 ms (T1 = {}){}",
            found.judged,
            millis(ns(t1)),
            found.host_delay_clause()
        ),
    )
    .with_evidence(found.evidence)
    .with_figures(figures)
}

/// Whether an attempt is a non-INVITE request with a transaction of its own (ACK and CANCEL
/// ride on the INVITE's).
fn non_invite(attempt: &Attempt) -> bool {
    !matches!(attempt.method.as_str(), "INVITE" | "ACK" | "CANCEL")
}

/// T2: an unanswered UDP non-INVITE (REGISTER, OPTIONS…) is sent at intervals doubling from T1
/// up to the profile's T2, then every T2 (Timer E), until the device moves on (Timer F, judged
/// by F1). Same tolerances as T1. With T2 beyond what fits before Timer F (4 s against 64·T1 =
/// 1.28 s at T1 = 20 ms), the doubling is judged and the verdict says the cap was not reached.
pub fn t2(ctx: &Context) -> Verdict {
    let level = Level::Must;
    let (t1, t2) = (ctx.profile.t1, ctx.profile.t2);
    let schedule = Schedule { t1, cap: Some(t2) };
    let found = judge_copies(ctx, non_invite, schedule);
    let figures = json!({
        "t1_ms": ns(t1) as f64 / 1e6,
        "t2_ms": ns(t2) as f64 / 1e6,
        "t2_cap_exercised": found.capped > 0,
        "tolerance": "±10 % of each expected interval, at least ±2 ms",
        "attempts": found.measured,
        "host_delayed": found.host_delayed,
    });
    if let Some((sentence, seqs)) = found.bad.first() {
        return Verdict::new("T2", level, Verdict::violation(level), sentence.clone())
            .with_evidence(seqs.clone())
            .with_figures(figures);
    }
    if found.judged == 0 {
        return Verdict::new(
            "T2",
            level,
            Status::Inconclusive,
            "no UDP non-INVITE request went unanswered long enough to be retransmitted",
        )
        .with_figures(figures);
    }
    let tolerance = format!("within ±10 % or ±2 ms (T1 = {})", millis(ns(t1)));
    let sentence = if found.capped > 0 {
        format!(
            "{} unanswered UDP non-INVITE attempt(s) were retransmitted at intervals doubling from T1 up to T2 = {} ({}), then every T2, {tolerance}; {} of them reached T2",
            found.judged,
            duration(ns(t2)),
            in_t1(ns(t2), t1),
            found.capped
        )
    } else {
        format!(
            "{} unanswered UDP non-INVITE attempt(s) were retransmitted at intervals doubling from T1, {tolerance}; the T2 cap ({} = {}) was not reached before the device moved on ({}), so it was not exercised",
            found.judged,
            duration(ns(t2)),
            in_t1(ns(t2), t1),
            match ctx.profile.failover_after {
                Some(after) => format!("the declared failover time, {}", duration(ns(after))),
                None => format!("Timer F = 64·T1 = {}", secs(ns(ctx.profile.timer_b()))),
            }
        )
    };
    let sentence = sentence + &found.host_delay_clause();
    Verdict::new("T2", level, Status::Pass, sentence)
        .with_evidence(found.evidence)
        .with_figures(figures)
}

/// A retransmission sent this soon after a provisional response crossed it on the wire.
const CROSSING: Duration = FLOOR;

/// T3: no retransmission over TCP (TLS included); no INVITE retransmission once a provisional response came.
pub fn t3(ctx: &Context) -> Verdict {
    let level = Level::Must;
    let requests = ctx.requests();
    let mut tcp = 0usize;
    let mut provisional = 0usize;
    let mut bad: Vec<(String, Vec<u64>)> = Vec::new();
    let mut evidence = Vec::new();
    for attempt in requests.iter().flat_map(|r| &r.attempts) {
        let copies: Vec<_> = attempt.received().copied().collect();
        // TLS runs over TCP: reliable, never retransmitted (RFC 3261 §17.1.1.2).
        if attempt.transport != Transport::Udp && !copies.is_empty() {
            tcp += 1;
            evidence.push(copies[0].seq);
            if let Some(second) = copies.get(1) {
                bad.push((
                    format!(
                        "{} to {} was retransmitted over {} at {} ({} copies)",
                        attempt.method,
                        attempt.describe(),
                        attempt.transport.to_string().to_uppercase(),
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

/// An unanswered attempt the device moved on from: how long it waited.
struct Move {
    gap_ns: u64,
    first: u64,
    next: u64,
    describe: String,
    method: String,
}

/// T4 (PROFILE): a device that fails over earlier than Timer B (a vendor policy such as
/// Yealink's retry counts) is reported with the time it used and judged against the time its
/// profile declares (`failover_after`, ±10 % or ±2 ms). Without a declaration T4 does not
/// apply: F1 judges every wait against Timer B (an early move fails there, once), and this
/// verdict only reports what was seen.
pub fn t4(ctx: &Context) -> Verdict {
    let level = Level::Profile;
    let t1 = ctx.profile.t1;
    let timer_b = ctx.profile.timer_b();
    let requests = ctx.requests();
    let mut moves = Vec::new();
    let mut stuck = Vec::new();
    let end_ns = ctx.end_ns();
    let all = failures(ctx, &requests);
    for request in &requests {
        for (i, attempt) in request.attempts.iter().enumerate() {
            if attempt.end != AttemptEnd::Unanswered || !attempt.responses.is_empty() {
                continue;
            }
            let start = attempt.first_sent();
            match request.attempts.get(i + 1) {
                Some(next) => moves.push(Move {
                    gap_ns: next.first_sent().saturating_sub(start),
                    first: attempt.first_seq(),
                    next: next.first_seq(),
                    describe: attempt.describe(),
                    method: attempt.method.clone(),
                }),
                None => stuck.push((request, attempt, start)),
            }
        }
    }
    let measured: Vec<serde_json::Value> = moves
        .iter()
        .map(|m| {
            json!({"attempt": m.describe, "moved_on_after_ms": m.gap_ns as f64 / 1e6,
            "in_t1": m.gap_ns as f64 / t1.as_nanos().max(1) as f64})
        })
        .collect();
    let range = |moves: &[&Move]| -> String {
        let low = moves.iter().map(|m| m.gap_ns).min().unwrap_or(0);
        let high = moves.iter().map(|m| m.gap_ns).max().unwrap_or(0);
        if high - low < 1_000_000 {
            format!("{} = {}", secs(low), in_t1(low, t1))
        } else {
            format!(
                "{}–{} = {}–{}",
                secs(low),
                secs(high),
                in_t1(low, t1),
                in_t1(high, t1)
            )
        }
    };
    let Some(declared) = ctx.profile.failover_after else {
        let early: Vec<&Move> = moves
            .iter()
            .filter(|m| m.gap_ns.saturating_add(ns(tolerance(timer_b))) < ns(timer_b))
            .collect();
        let seen = if !early.is_empty() {
            format!(
                "; {} of {} unanswered attempt(s) moved on early, after {} (F1 judges them against Timer B)",
                early.len(),
                moves.len(),
                range(&early)
            )
        } else if !moves.is_empty() {
            format!(
                "; {} unanswered attempt(s) moved on after {}",
                moves.len(),
                range(&moves.iter().collect::<Vec<_>>())
            )
        } else {
            String::new()
        };
        return Verdict::new(
            "T4",
            level,
            Status::NotApplicable,
            format!(
                "the profile `{}` declares no failover earlier than Timer B (failover_after){seen}",
                ctx.profile.device
            ),
        )
        .with_evidence(early.iter().flat_map(|m| [m.first, m.next]).collect())
        .with_figures(json!({"timer_b_ms": ns(timer_b) as f64 / 1e6, "attempts": measured}));
    };
    let claim = format!(
        "the profile declares {} {}",
        millis(ns(declared)),
        plus_minus(declared)
    );
    let mut found = Findings {
        measured,
        ..Findings::default()
    };
    for m in &moves {
        found.judged += 1;
        if within(m.gap_ns, declared) {
            found.evidence.extend([m.first, m.next]);
        } else {
            found.bad.push((
                format!(
                    "{} to {} moved on after {} = {}; {claim}",
                    m.method,
                    m.describe,
                    secs(m.gap_ns),
                    in_t1(m.gap_ns, t1)
                ),
                vec![m.first, m.next],
            ));
        }
    }
    // Still waiting well past the declared time, with somewhere left to go.
    let mut cut: Vec<&str> = Vec::new();
    for (request, attempt, start) in stuck {
        let due = start.saturating_add(ns(declared.saturating_add(tolerance(declared))));
        if let Some(asked) = cut_short_by(&requests, attempt, due) {
            cut.push(&asked.method);
            continue;
        }
        if end_ns < due || left_over(ctx, request, &all, due).is_empty() {
            continue;
        }
        found.judged += 1;
        found.bad.push((
            format!(
                "{} to {} got no response and the device had not moved on {} later (at the end of the run, {}); {claim}",
                attempt.method,
                attempt.describe(),
                secs(end_ns.saturating_sub(start)),
                secs(end_ns)
            ),
            vec![attempt.first_seq()],
        ));
    }
    found.left_out.extend(cut_short_left_out(
        cut.len(),
        "unanswered attempt",
        cut.first().copied().unwrap_or("request"),
    ));
    let pass = format!(
        "{} unanswered attempt(s) moved on after {}; {claim}",
        found.judged,
        range(&moves.iter().collect::<Vec<_>>())
    );
    found.verdict(
        "T4",
        level,
        pass,
        "no attempt went without any response until the device moved on",
        json!({"declared_ms": ns(declared) as f64 / 1e6,
            "tolerance_ms": ns(tolerance(declared)) as f64 / 1e6,
            "timer_b_ms": ns(timer_b) as f64 / 1e6}),
    )
}
