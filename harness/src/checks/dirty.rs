//! Dirty hosts, judged against the TTL the profile declares: D1 a failed target is avoided
//! while its mark runs, D2 it is chosen again after.
//!
//! A mark lasts the profile's `dirty_host_ttl`, or a 503's Retry-After when it carried one
//! (Snom and the reference UA both mark for Retry-After then). A target is keyed by transport,
//! address and port (D3's finest scope). When every other target of a request was already
//! tried (or is dirty too), trying a dirty one is allowed: better than giving up, and what the
//! reference UA does.

use serde_json::json;

use super::Context;
use super::attempts::{Attempt, Request};
use super::failures::{Failure, failures, srv_is_dirty};
use super::measure::{ns, secs, tolerance};
use super::resolution::resolved_set;
use super::verdict::{Level, Status, Verdict};
use super::weights::first_choice_probabilities;

/// Whether attempt `k` of `request` had nothing else left: every other record of what the
/// request resolved was tried before it or is dirty.
fn nothing_else_left(ctx: &Context, request: &Request, k: usize, all: &[Failure]) -> bool {
    let Some(attempt) = request.attempts.get(k) else {
        return false;
    };
    let Some(records) = request.attempts.iter().find_map(|a| resolved_set(ctx, a)) else {
        return false;
    };
    records.iter().filter(|r| !r.matches(attempt)).all(|r| {
        request.attempts[..k].iter().any(|a| r.matches(a))
            || srv_is_dirty(all, r, attempt.first_sent())
    })
}

/// The dirty-host TTL the profile declares; without one, D1 and D2 do not apply.
fn declared_ttl(ctx: &Context, id: &str) -> Result<std::time::Duration, Verdict> {
    ctx.profile.dirty_host_ttl.ok_or_else(|| {
        Verdict::new(
            id,
            Level::Profile,
            Status::NotApplicable,
            format!(
                "the profile `{}` declares no dirty-host TTL",
                ctx.profile.device
            ),
        )
    })
}

/// D1 (PROFILE): no attempt goes to a failed target before its mark ran out.
pub fn d1(ctx: &Context) -> Verdict {
    let level = Level::Profile;
    let ttl = match declared_ttl(ctx, "D1") {
        Ok(ttl) => ttl,
        Err(not_applicable) => return not_applicable,
    };
    let slack = ns(tolerance(ctx.profile.t1));
    let requests = ctx.requests();
    let all = failures(ctx, &requests);
    let mut marks = 0usize;
    let mut later = 0usize;
    let mut bad: Vec<(String, Vec<u64>)> = Vec::new();
    let mut evidence = Vec::new();
    // Each mark as D1 reads it, for the report's dirty-host bar.
    let mut mark_spans = Vec::new();
    for failure in &all {
        let Some(avoid) = failure.avoid else { continue };
        marks += 1;
        let until = failure.t_ns.saturating_add(ns(avoid));
        mark_spans.push(json!({"server": failure.server,
            "target": format!("{} {}", failure.key.0, failure.key.1),
            "from_ms": failure.t_ns as f64 / 1e6, "until_ms": until as f64 / 1e6,
            "how": failure.how, "seq": failure.seq}));
        let own = (failure.request, failure.attempt);
        for (r, request) in requests.iter().enumerate() {
            for (k, attempt) in request.attempts.iter().enumerate() {
                let t = attempt.first_sent();
                if (r, k) == own || t < failure.t_ns || t.saturating_add(slack) >= until {
                    continue;
                }
                // The failed request's own next attempts are its failover: they may not go
                // back (checked below), but going elsewhere shows no memory of the mark. Only
                // another request is evidence that the device avoids it (issue 14: D1 passed
                // on a failover and a BYE alone).
                let other_request = r != failure.request;
                if other_request {
                    later += 1;
                }
                if attempt.target_key() != failure.key {
                    if other_request {
                        evidence.push(attempt.first_seq());
                    }
                    continue;
                }
                if nothing_else_left(ctx, request, k, &all) {
                    continue;
                }
                bad.push((
                    format!(
                        "{} went to {} at {}, {} after it failed ({}) at {}; the mark lasts {}",
                        attempt.method,
                        attempt.describe(),
                        secs(t),
                        secs(t - failure.t_ns),
                        failure.how,
                        secs(failure.t_ns),
                        secs(ns(avoid))
                    ),
                    vec![failure.seq, attempt.first_seq()],
                ));
            }
        }
    }
    let figures = json!({"dirty_host_ttl_ms": ns(ttl) as f64 / 1e6, "failures": marks,
        "attempts_during_marks": later, "slack_ms": slack as f64 / 1e6, "marks": mark_spans});
    if let Some((sentence, seqs)) = bad.first() {
        return Verdict::new("D1", level, Verdict::violation(level), sentence.clone())
            .with_evidence(seqs.clone())
            .with_figures(figures);
    }
    if marks == 0 {
        return Verdict::new("D1", level, Status::Inconclusive, "no target failed")
            .with_figures(figures);
    }
    if later == 0 {
        return Verdict::new(
            "D1",
            level,
            Status::Inconclusive,
            format!(
                "{marks} target failure(s), but no other request began while a mark ran (the failed requests' own failovers show no memory of the mark)"
            ),
        )
        .with_figures(figures);
    }
    Verdict::new(
        "D1",
        level,
        Status::Pass,
        format!("{later} attempt(s) of other requests during the marks of {marks} failed target(s) (TTL {}) all avoided them", secs(ns(ttl))),
    )
    .with_evidence(evidence)
    .with_figures(figures)
}

/// The chance a clean trial puts `key`'s record first, when it is in the best priority group
/// of what `request` resolved.
fn first_choice_chance(ctx: &Context, request: &Request, attempt: &Attempt) -> Option<f64> {
    let records = request.attempts.iter().find_map(|a| resolved_set(ctx, a))?;
    let best = records.iter().map(|r| r.priority).min()?;
    let group: Vec<_> = records.iter().filter(|r| r.priority == best).collect();
    let index = group.iter().position(|r| r.matches(attempt))?;
    let weights: Vec<u16> = group.iter().map(|r| r.weight).collect();
    first_choice_probabilities(&weights).get(index).copied()
}

/// D2 (PROFILE): once its mark ran out, a failed target is chosen again, given enough later
/// requests that never choosing it would be a one-in-a-thousand chance.
pub fn d2(ctx: &Context) -> Verdict {
    let level = Level::Profile;
    const NEVER_CHANCE: f64 = 0.001;
    let ttl = match declared_ttl(ctx, "D2") {
        Ok(ttl) => ttl,
        Err(not_applicable) => return not_applicable,
    };
    let slack = ns(tolerance(ctx.profile.t1));
    let requests = ctx.requests();
    let all = failures(ctx, &requests);
    let mut judged = 0usize;
    let mut waiting = Vec::new();
    let mut bad: Vec<(String, Vec<u64>)> = Vec::new();
    let mut evidence = Vec::new();
    for failure in &all {
        // The mark may run from when the device moved on (a device ignoring a refusal marks
        // the target when it gives up on it): eligible again only after that reading ran out.
        let Some(mark_end) = failure.lenient_until() else {
            continue;
        };
        let until = mark_end.saturating_add(slack);
        // A later failure of the same target restarts its mark: judge only the last one.
        if all
            .iter()
            .any(|f| f.key == failure.key && f.t_ns > failure.t_ns && f.t_ns < until)
        {
            continue;
        }
        let Some(failed) = requests
            .get(failure.request)
            .and_then(|r| r.attempts.get(failure.attempt).map(|a| (r, a)))
        else {
            continue;
        };
        let after: Vec<&Request> = requests
            .iter()
            .filter(|r| r.opening && r.start() >= until)
            .collect();
        if let Some(back) = after
            .iter()
            .flat_map(|r| &r.attempts)
            .find(|a| a.target_key() == failure.key)
        {
            judged += 1;
            evidence.extend([failure.seq, back.first_seq()]);
            continue;
        }
        let chance = first_choice_chance(ctx, failed.0, failed.1);
        let needed = chance
            .filter(|p| *p > 0.0 && *p < 1.0)
            .map(|p| (NEVER_CHANCE.ln() / (1.0 - p).ln()).ceil() as usize);
        match needed {
            Some(needed) if after.len() >= needed => {
                judged += 1;
                bad.push((
                    format!(
                        "{} failed ({}) at {}; its mark ended at {}, yet none of the {} later requests chose it (P(first) = {:.2} each; {needed} requests make never choosing it a 0.1 % chance)",
                        failed.1.describe(),
                        failure.how,
                        secs(failure.t_ns),
                        secs(mark_end),
                        after.len(),
                        chance.unwrap_or(0.0)
                    ),
                    vec![failure.seq],
                ));
            }
            _ => waiting.push(
                json!({"target": failed.1.describe(), "later_requests": after.len(),
                "needed": needed}),
            ),
        }
    }
    let figures = json!({"dirty_host_ttl_ms": ns(ttl) as f64 / 1e6, "judged": judged,
        "not_enough_later_requests": waiting});
    if let Some((sentence, seqs)) = bad.first() {
        return Verdict::new("D2", level, Verdict::violation(level), sentence.clone())
            .with_evidence(seqs.clone())
            .with_figures(figures);
    }
    if judged == 0 {
        return Verdict::new(
            "D2",
            level,
            Status::Inconclusive,
            "no failed target was seen again after its mark, and too few requests followed to expect it",
        )
        .with_figures(figures);
    }
    Verdict::new(
        "D2",
        level,
        Status::Pass,
        format!(
            "{judged} failed target(s) were chosen again after their mark (TTL {}) ran out",
            secs(ns(ttl))
        ),
    )
    .with_evidence(evidence)
    .with_figures(figures)
}
