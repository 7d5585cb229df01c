//! What final responses that are no failover reason lead to (F4, informational), and whether a
//! 503's Retry-After keeps the device away from that server (F5, RFC 3261 §21.5.4).

use serde_json::json;

use super::Context;
use super::failures::is_failover_status;
use super::measure::secs;
use super::verdict::Findings;
use super::verdict::{Level, Status, Verdict};

/// F4 (INFO): after a final 4xx, 5xx or 6xx response that is neither 503 nor a code the
/// profile fails over on, whether the device tried another target. Says what happened.
pub fn f4(ctx: &Context) -> Verdict {
    let level = Level::Info;
    let requests = ctx.requests();
    let mut seen: Vec<String> = Vec::new();
    let mut evidence: Vec<u64> = Vec::new();
    let mut measured: Vec<serde_json::Value> = Vec::new();
    let mut moved = 0usize;
    for (r, request) in requests.iter().enumerate() {
        for (i, attempt) in request.attempts.iter().enumerate() {
            let Some(response) = attempt
                .final_response()
                .filter(|r| r.status >= 400 && !is_failover_status(ctx, r.status))
            else {
                continue;
            };
            let status = response.status;
            // The same request's next attempt, else the next request of the same call and method.
            let next = request.attempts.get(i + 1).or_else(|| {
                requests[r + 1..]
                    .iter()
                    .find(|n| n.call_id == request.call_id && n.method == request.method)
                    .and_then(|n| n.attempts.first())
            });
            evidence.push(response.seq);
            let what = match next.filter(|n| n.first_sent() >= response.t_ns) {
                Some(n) if n.target_key() != attempt.target_key() => {
                    moved += 1;
                    evidence.push(n.first_seq());
                    format!(
                        "after the {status} from {} at {} the device tried another target, {} at {}",
                        attempt.describe(),
                        secs(response.t_ns),
                        n.describe(),
                        secs(n.first_sent())
                    )
                }
                Some(n) => {
                    evidence.push(n.first_seq());
                    format!(
                        "after the {status} from {} at {} the device sent its next {} to the same target at {}",
                        attempt.describe(),
                        secs(response.t_ns),
                        n.method,
                        secs(n.first_sent())
                    )
                }
                None => format!(
                    "after the {status} from {} at {} the device tried no other target",
                    attempt.describe(),
                    secs(response.t_ns)
                ),
            };
            measured.push(json!({"status": status, "from": attempt.describe(),
                "next": next.map(|n| n.describe())}));
            seen.push(what);
        }
    }
    let figures = json!({"responses": seen.len(), "moved_on": moved, "measured": measured,
        "failover_codes": ctx.profile.failover_codes});
    if seen.is_empty() {
        return Verdict::new(
            "F4",
            level,
            Status::Inconclusive,
            "no server gave a final 4xx, 5xx or 6xx response other than a failover code",
        )
        .with_figures(figures);
    }
    let sentence = if seen.len() == 1 {
        seen.remove(0)
    } else {
        format!(
            "{} ({moved} of {} such responses led to another target)",
            seen[0],
            seen.len()
        )
    };
    Verdict::new("F4", level, Status::Info, sentence)
        .with_evidence(evidence)
        .with_figures(figures)
}

/// F5 (SHOULD): after a 503 with Retry-After N, no request goes to that server (address, port
/// and transport) for N seconds. Judged when another request began within the N seconds or
/// the run was watched for all of them.
pub fn f5(ctx: &Context) -> Verdict {
    let level = Level::Should;
    let requests = ctx.requests();
    // Each attempt with the index of its request.
    let attempts: Vec<_> = requests
        .iter()
        .enumerate()
        .flat_map(|(i, r)| r.attempts.iter().map(move |a| (i, a)))
        .collect();
    let mut found = Findings::default();
    for &(own, attempt) in &attempts {
        let Some((response, n)) = attempt
            .final_response()
            .filter(|r| r.status == 503)
            .and_then(|r| Some((r, r.retry_after.filter(|n| *n > 0)?)))
        else {
            continue;
        };
        let until = response
            .t_ns
            .saturating_add(u64::from(n).saturating_mul(1_000_000_000));
        let inside = |a: &super::Attempt| a.first_sent() > response.t_ns && a.first_sent() < until;
        let again = attempts
            .iter()
            .map(|(_, a)| *a)
            .find(|a| a.target_key() == attempt.target_key() && inside(a));
        // Exercised only when the device chose a target inside the interval: another request
        // began there (or this one went back). A device that sent nothing at all while the
        // interval ran made no choice to judge, however long the run was watched; the
        // failover of the 503's own request is F3's, not a sign of honouring Retry-After.
        let other = attempts.iter().any(|(i, a)| *i != own && inside(a));
        if again.is_none() && !other {
            continue;
        }
        found.judged += 1;
        found
            .measured
            .push(json!({"server": attempt.describe(), "retry_after_s": n,
            "at_ms": response.t_ns as f64 / 1e6}));
        match again {
            Some(a) => found.bad.push((
                format!(
                    "{} answered 503 with Retry-After {n} at {} but the device sent {} there again at {}, {} later",
                    attempt.describe(),
                    secs(response.t_ns),
                    a.method,
                    secs(a.first_sent()),
                    secs(a.first_sent() - response.t_ns)
                ),
                vec![response.seq, a.first_seq()],
            )),
            None => found.evidence.push(response.seq),
        }
    }
    let pass = format!(
        "after {} 503 response(s) with Retry-After no request went to that server before the interval ended",
        found.judged
    );
    found.verdict(
        "F5",
        level,
        pass,
        "no request began while a 503's Retry-After interval ran, so whether the device keeps away for it was not exercised",
        json!({}),
    )
}
