//! C1: one resolution per transaction. A device may resolve again for a new request or a new
//! attempt, but not between the retransmissions of one attempt.

use serde_json::json;

use super::Context;
use super::measure::secs;
use super::verdict::{Level, Status, Verdict};
use crate::timeline::EventKind;

pub fn c1(ctx: &Context) -> Verdict {
    let level = Level::Must;
    let requests = ctx.requests();
    let starts: Vec<u64> = requests.iter().map(|r| r.start()).collect();
    let queries: Vec<(u64, u64, String, String)> = ctx
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::DnsQuery(q) => Some((
                e.seq,
                e.t_ns,
                q.name.to_ascii_lowercase(),
                q.qtype.to_ascii_uppercase(),
            )),
            _ => None,
        })
        .collect();
    let mut judged = 0usize;
    let mut bad: Vec<(String, Vec<u64>)> = Vec::new();
    for attempt in requests.iter().flat_map(|r| &r.attempts) {
        let copies: Vec<_> = attempt.sends.iter().collect();
        if copies.len() < 2 {
            continue;
        }
        let first = attempt.first_sent();
        // A device srvlab saw resolve nothing before the attempt (it had the answer cached, or
        // asked DNS from an address not judged) shows nothing about resolving per
        // retransmission (issue 14: such a C1 passed).
        if !queries.iter().any(|q| q.1 < first) {
            continue;
        }
        judged += 1;
        for pair in copies.windows(2) {
            let (from, to) = (pair[0].t_ns, pair[1].t_ns);
            for (seq, t, name, qtype) in queries.iter().filter(|q| q.1 > from && q.1 <= to) {
                let known = queries
                    .iter()
                    .any(|q| q.1 < first && q.2 == *name && q.3 == *qtype);
                // A query answered for another request that began meanwhile is that request's.
                let for_other = starts.iter().any(|s| *s > *t && *s <= to && *s != first);
                if known && !for_other {
                    bad.push((
                        format!(
                            "{qtype} {name} was queried again at {} between retransmissions of {} to {} (sent at {} and {})",
                            secs(*t),
                            attempt.method,
                            attempt.describe(),
                            secs(from),
                            secs(to)
                        ),
                        vec![pair[0].seq, *seq, pair[1].seq],
                    ));
                }
            }
        }
    }
    let figures = json!({"attempts_with_retransmissions": judged, "requeries": bad.len()});
    if let Some((sentence, seqs)) = bad.first() {
        return Verdict::new("C1", level, Verdict::violation(level), sentence.clone())
            .with_evidence(seqs.clone())
            .with_figures(figures);
    }
    if judged == 0 {
        return Verdict::new(
            "C1",
            level,
            Status::Inconclusive,
            "no attempt that followed a DNS query of the device was retransmitted, so no resolution between retransmissions could be seen",
        )
        .with_figures(figures);
    }
    Verdict::new(
        "C1",
        level,
        Status::Pass,
        format!("no name was queried again between the retransmissions of {judged} attempt(s)"),
    )
    .with_figures(figures)
}
