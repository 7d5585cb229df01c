//! Which target the device chose (RFC 3263 §4.4, RFC 2782): L8 lowest priority first, L10 the
//! "." record, L11 priority groups in order, L12 no fallback to the domain's A record.
//!
//! Requests judged for ordering are the opening ones (first of their Call-ID): a BYE, a
//! refresh or a re-send after a 401 may stick to the server that answered (D4, D6), which is
//! not a fresh choice. Targets the device holds dirty (D1) count as failed: the reference UA
//! and Snom put them behind every clean target.

use serde_json::json;

use super::Context;
use super::attempts::{Attempt, Request};
use super::failures::{Failure, failure_of, failures, srv_is_dirty};
use super::measure::secs;
use super::targets::{SrvTarget, addresses, srv_owners, srv_queried, srv_records};
use super::verdict::{Level, Status, Verdict};

/// The non-"." SRV records of the first queried name that has one matching `attempt`, with
/// that name's full record list.
pub(super) fn resolved_set(ctx: &Context, attempt: &Attempt) -> Option<Vec<SrvTarget>> {
    srv_queried(ctx.events, attempt.first_sent())
        .into_iter()
        .map(|(name, _)| srv_records(ctx.zones, &name))
        .find(|records| records.iter().any(|r| !r.is_dot() && r.matches(attempt)))
        .map(|records| records.into_iter().filter(|r| !r.is_dot()).collect())
}

/// Whether `record` failed in `request` before attempt `before`, or was dirty when that
/// attempt began.
fn failed_before(
    ctx: &Context,
    request: &Request,
    before: usize,
    record: &SrvTarget,
    all_failures: &[Failure],
) -> bool {
    // Dirtiness is judged when attempt `before` began, or at the end of the run after the last.
    let end_ns = ctx.end_ns();
    let at = request
        .attempts
        .get(before)
        .map_or(end_ns, Attempt::first_sent);
    let before = before.min(request.attempts.len());
    let failed_here = request.attempts[..before].iter().enumerate().any(|(j, a)| {
        record.matches(a) && failure_of(ctx, a, request.attempts.get(j + 1), end_ns).is_some()
    });
    failed_here || srv_is_dirty(all_failures, record, at)
}

/// L8: the first attempt of each opening request goes to a target of the lowest priority the
/// zone gives for the name the device resolved (among targets not dirty).
pub fn l8(ctx: &Context) -> Verdict {
    let level = Level::Must;
    let requests = ctx.requests();
    let all_failures = failures(ctx, &requests);
    let mut judged = 0usize;
    let mut bad: Vec<(String, u64)> = Vec::new();
    let mut evidence = Vec::new();
    let mut priorities = Vec::new();
    for request in requests.iter().filter(|r| r.opening) {
        let Some(first) = request.attempts.first() else {
            continue;
        };
        let queried: Vec<Vec<SrvTarget>> = srv_queried(ctx.events, first.first_sent())
            .into_iter()
            .map(|(name, _)| srv_records(ctx.zones, &name))
            .filter(|records| records.iter().any(|r| !r.is_dot()))
            .collect();
        if queried.is_empty() {
            continue;
        }
        judged += 1;
        let Some(records) = resolved_set(ctx, first) else {
            bad.push((
                format!(
                    "{} went first to {}, which is no target of the SRV records it resolved",
                    request.method,
                    first.describe()
                ),
                first.first_seq(),
            ));
            continue;
        };
        let clean: Vec<&SrvTarget> = records
            .iter()
            .filter(|r| !srv_is_dirty(&all_failures, r, first.first_sent()))
            .collect();
        let pool: Vec<&SrvTarget> = if clean.is_empty() {
            records.iter().collect()
        } else {
            clean
        };
        // Either the best priority of all, or — for a device that avoids dirty hosts (D1) —
        // the best priority among the targets not failed recently. Whether it should have
        // avoided a dirty target is D1's question, not L8's.
        let lowest = pool.iter().map(|r| r.priority).min().unwrap_or(0);
        let lowest_of_all = records.iter().map(|r| r.priority).min().unwrap_or(0);
        let chosen = records
            .iter()
            .filter(|r| r.matches(first))
            .map(|r| r.priority)
            .min()
            .unwrap_or(u16::MAX);
        priorities.push(json!({"seq": first.first_seq(), "priority": chosen, "lowest": lowest}));
        if pool
            .iter()
            .any(|r| r.priority == lowest && r.matches(first))
            || records
                .iter()
                .any(|r| r.priority == lowest_of_all && r.matches(first))
        {
            evidence.push(first.first_seq());
        } else {
            bad.push((
                format!(
                    "{} went first to {} (priority {chosen}) at {} while priority {lowest} was available",
                    request.method,
                    first.describe(),
                    secs(first.first_sent())
                ),
                first.first_seq(),
            ));
        }
    }
    let figures = json!({"requests_judged": judged, "first_attempts": priorities});
    if let Some((sentence, seq)) = bad.first() {
        return Verdict::new(
            "L8",
            level,
            Verdict::violation(level),
            format!("{sentence} ({} of {judged} requests)", bad.len()),
        )
        .with_evidence(bad.iter().map(|(_, s)| *s).chain([*seq]).collect())
        .with_figures(figures);
    }
    if judged == 0 {
        return Verdict::new(
            "L8",
            level,
            Status::Inconclusive,
            "no opening request followed SRV records the device had resolved",
        )
        .with_figures(figures);
    }
    Verdict::new(
        "L8",
        level,
        Status::Pass,
        format!("the first attempt of each of {judged} requests went to a target of the lowest available SRV priority"),
    )
    .with_evidence(evidence)
    .with_figures(figures)
}

/// L11: within a request, a target of a worse priority only after every target of every
/// better priority failed.
pub fn l11(ctx: &Context) -> Verdict {
    let level = Level::Must;
    let requests = ctx.requests();
    let all_failures = failures(ctx, &requests);
    let mut exercised = 0usize;
    let mut bad: Vec<(String, Vec<u64>)> = Vec::new();
    let mut evidence = Vec::new();
    for request in requests.iter().filter(|r| r.opening) {
        let Some(records) = request.attempts.iter().find_map(|a| resolved_set(ctx, a)) else {
            continue;
        };
        let best = records.iter().map(|r| r.priority).min().unwrap_or(0);
        for (k, attempt) in request.attempts.iter().enumerate() {
            let Some(priority) = records
                .iter()
                .filter(|r| r.matches(attempt))
                .map(|r| r.priority)
                .min()
            else {
                continue;
            };
            if priority == best {
                continue;
            }
            exercised += 1;
            let pending: Vec<&SrvTarget> = records
                .iter()
                .filter(|r| r.priority < priority)
                .filter(|r| !failed_before(ctx, request, k, r, &all_failures))
                .collect();
            if pending.is_empty() {
                evidence.push(attempt.first_seq());
            } else {
                let names: Vec<String> = pending.iter().map(|r| r.label()).collect();
                bad.push((
                    format!(
                        "{} went to {} (priority {priority}) at {} before {} had failed",
                        request.method,
                        attempt.describe(),
                        secs(attempt.first_sent()),
                        names.join(", ")
                    ),
                    request.attempts[..=k]
                        .iter()
                        .map(Attempt::first_seq)
                        .collect(),
                ));
            }
        }
    }
    let figures = json!({"worse_priority_attempts": exercised, "violations": bad.len()});
    if let Some((sentence, seqs)) = bad.first() {
        return Verdict::new("L11", level, Verdict::violation(level), sentence.clone())
            .with_evidence(seqs.clone())
            .with_figures(figures);
    }
    if exercised == 0 {
        return Verdict::new(
            "L11",
            level,
            Status::Inconclusive,
            "no request went past the best SRV priority, so the order of priority groups was never exercised",
        )
        .with_figures(figures);
    }
    Verdict::new(
        "L11",
        level,
        Status::Pass,
        format!("{exercised} attempt(s) to a worse SRV priority, each after every better target had failed"),
    )
    .with_evidence(evidence)
    .with_figures(figures)
}

/// L12 (SHOULD): once every SRV target of a request failed, no attempt to the domain's own
/// address on port 5060.
pub fn l12(ctx: &Context) -> Verdict {
    // A SHOULD; a profile declaring that the device never falls back makes it a claim.
    let level = if ctx.profile.a_record_fallback == Some(false) {
        Level::Profile
    } else {
        Level::Should
    };
    let with_address = srv_owners(ctx.zones).into_iter().any(|owner| {
        let domain = owner.base_name().base_name();
        !addresses(ctx.zones, &domain).is_empty()
    });
    if !with_address {
        return Verdict::new(
            "L12",
            level,
            Status::NotApplicable,
            "no SRV domain of the zone has an A or AAAA record to fall back to",
        );
    }
    let requests = ctx.requests();
    let all_failures = failures(ctx, &requests);
    let mut exhausted = 0usize;
    let mut bad: Vec<(String, Vec<u64>)> = Vec::new();
    let mut evidence = Vec::new();
    for request in &requests {
        let Some((first_index, records)) = request
            .attempts
            .iter()
            .enumerate()
            .find_map(|(i, a)| resolved_set(ctx, a).map(|r| (i, r)))
        else {
            continue;
        };
        let domain = records[0].owner.base_name().base_name();
        let fallback = addresses(ctx.zones, &domain);
        // The first attempt after which every record has failed.
        let Some(k) = (first_index..request.attempts.len()).find(|&k| {
            records
                .iter()
                .all(|r| failed_before(ctx, request, k + 1, r, &all_failures))
        }) else {
            continue;
        };
        exhausted += 1;
        evidence.push(request.attempts[k].first_seq());
        for attempt in &request.attempts[k + 1..] {
            if fallback.contains(&attempt.address.ip()) && attempt.address.port() == 5060 {
                bad.push((
                    format!(
                        "after every SRV target of {} failed, {} went to the domain's address {} at {}",
                        records[0].owner,
                        request.method,
                        attempt.describe(),
                        secs(attempt.first_sent())
                    ),
                    vec![request.attempts[k].first_seq(), attempt.first_seq()],
                ));
            }
        }
    }
    let figures = json!({"requests_exhausted": exhausted, "fallback_attempts": bad.len()});
    if let Some((sentence, seqs)) = bad.first() {
        return Verdict::new("L12", level, Verdict::violation(level), sentence.clone())
            .with_evidence(seqs.clone())
            .with_figures(figures);
    }
    if exhausted == 0 {
        return Verdict::new(
            "L12",
            level,
            Status::Inconclusive,
            "no request saw every SRV target fail",
        )
        .with_figures(figures);
    }
    Verdict::new(
        "L12",
        level,
        Status::Pass,
        format!("{exhausted} request(s) saw every SRV target fail and none fell back to the domain's A/AAAA address on 5060"),
    )
    .with_evidence(evidence)
    .with_figures(figures)
}

/// L10: a lone SRV record with target "." means no service: no SIP request to anything but a
/// real SRV target of another name.
pub fn l10(ctx: &Context) -> Verdict {
    let level = Level::Must;
    let owners = srv_owners(ctx.zones);
    let dots: Vec<_> = owners
        .iter()
        .filter(|o| {
            let records = srv_records(ctx.zones, o);
            records.len() == 1 && records[0].is_dot()
        })
        .cloned()
        .collect();
    if dots.is_empty() {
        return Verdict::new(
            "L10",
            level,
            Status::NotApplicable,
            "the zone has no lone \".\" SRV record",
        );
    }
    let queried: Vec<_> = srv_queried(ctx.events, u64::MAX)
        .into_iter()
        .filter(|(name, _)| dots.contains(name))
        .collect();
    let Some((first_name, first_seq)) = queried.first().cloned() else {
        return Verdict::new(
            "L10",
            level,
            Status::Inconclusive,
            "the device never queried the SRV name whose only record is \".\"",
        );
    };
    let first_t = ctx
        .events
        .iter()
        .find(|e| e.seq == first_seq)
        .map_or(0, |e| e.t_ns);
    let real: Vec<SrvTarget> = owners
        .iter()
        .flat_map(|o| srv_records(ctx.zones, o))
        .filter(|r| !r.is_dot())
        .collect();
    let requests = ctx.requests();
    let attempts = requests.iter().flat_map(|r| &r.attempts);
    let mut elsewhere = 0usize;
    let mut offending: Vec<&Attempt> = Vec::new();
    for attempt in attempts.filter(|a| a.first_sent() >= first_t) {
        if real.iter().any(|r| r.matches(attempt)) {
            elsewhere += 1;
        } else {
            offending.push(attempt);
        }
    }
    let figures = json!({"dot_names": dots.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "offending_attempts": offending.len(), "attempts_to_other_srv_targets": elsewhere});
    if let Some(attempt) = offending.first() {
        return Verdict::new(
            "L10",
            level,
            Verdict::violation(level),
            format!(
                "{first_name} says \"no service\" (lone \".\" record), yet {} was sent to {} at {} ({} such attempt(s))",
                attempt.method,
                attempt.describe(),
                secs(attempt.first_sent()),
                offending.len()
            ),
        )
        .with_evidence(vec![first_seq, attempt.first_seq()])
        .with_figures(figures);
    }
    Verdict::new(
        "L10",
        level,
        Status::Pass,
        format!("after querying {first_name} (lone \".\" record) the device sent no SIP request outside the real SRV targets ({elsewhere} attempt(s) to them)"),
    )
    .with_evidence(vec![first_seq])
    .with_figures(figures)
}

/// The SRV records of the name `request` resolved that none of its attempts went to and that
/// are not dirty at `t_ns`: where a device could still fail over to.
pub(super) fn untried(
    ctx: &Context,
    request: &Request,
    all_failures: &[Failure],
    t_ns: u64,
) -> Vec<SrvTarget> {
    let Some(records) = request.attempts.iter().find_map(|a| resolved_set(ctx, a)) else {
        return Vec::new();
    };
    records
        .into_iter()
        .filter(|r| !request.attempts.iter().any(|a| r.matches(a)))
        .filter(|r| !srv_is_dirty(all_failures, r, t_ns))
        .collect()
}
