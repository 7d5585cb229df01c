//! Client transactions on the wire (RFC 3261 §17.1, RFC 3263 §4.3): T5 every copy of one
//! transaction goes where its first copy went, T6 each new attempt to another target is a new
//! transaction of the same call.

use std::collections::HashMap;
use std::net::SocketAddr;

use serde_json::json;

use super::Context;
use super::attempts::{Attempt, Request};
use super::failures::is_failover_status;
use super::measure::secs;
use super::verdict::{Findings, Level, Verdict};
use crate::sip::Message;
use crate::timeline::{EventKind, Transport};

/// The SIP message the device sent as event `seq`, parsed from its raw bytes.
pub(super) fn parsed(ctx: &Context, seq: u64) -> Option<Message> {
    ctx.events.iter().find(|e| e.seq == seq).and_then(|e| {
        let EventKind::SipReceived(message) = &e.kind else {
            return None;
        };
        Message::parse(&message.raw).ok()
    })
}

fn transport_name(transport: Transport) -> &'static str {
    match transport {
        Transport::Udp => "UDP",
        Transport::Tcp => "TCP",
        Transport::Tls => "TLS",
    }
}

/// T5: all messages of one client transaction — retransmissions, the ACK of a non-2xx and a
/// CANCEL, which carry the request's branch — go to the address, port and transport of its
/// first copy. Copies the kernel refused count: they were sent there.
pub fn t5(ctx: &Context) -> Verdict {
    let level = Level::Must;
    type Key = (Option<String>, String, String);
    // Per transaction: where its first copy went, and how many copies followed.
    let mut first: HashMap<Key, (SocketAddr, Transport, u64, String, u64)> = HashMap::new();
    let mut order: Vec<Key> = Vec::new();
    let mut copies: HashMap<Key, usize> = HashMap::new();
    let mut flagged: Vec<Key> = Vec::new();
    let mut found = Findings::default();
    let mut ordered: Vec<_> = ctx.events.iter().collect();
    ordered.sort_by_key(|e| (e.t_ns, e.seq));
    for event in ordered {
        let (summary, address, transport, server) = match &event.kind {
            EventKind::SipReceived(m) => (&m.summary, m.local, m.transport, &m.server),
            EventKind::Refused(r) => (&r.summary, r.local, r.transport, &r.server),
            _ => continue,
        };
        let Some(branch) = summary.branch.clone() else {
            continue;
        };
        let Some(method) = summary.method.as_deref().map(str::to_ascii_uppercase) else {
            continue;
        };
        let transaction = if method == "ACK" || method == "CANCEL" {
            "INVITE".to_owned()
        } else {
            method.clone()
        };
        let key: Key = (summary.call_id.clone(), branch.clone(), transaction);
        let Some(&(to, via, seq, ref name, _)) = first.get(&key) else {
            first.insert(
                key.clone(),
                (address, transport, event.seq, server.clone(), event.t_ns),
            );
            order.push(key);
            continue;
        };
        *copies.entry(key.clone()).or_default() += 1;
        if to != address || via != transport {
            if flagged.contains(&key) {
                continue; // one violation per transaction
            }
            flagged.push(key.clone());
            found.bad.push((
                format!(
                    "{method} with branch {branch} went to {server} {transport} {address} at {} although the transaction's first copy went to {name} {via} {to}",
                    secs(event.t_ns)
                ),
                vec![seq, event.seq],
            ));
        } else {
            found.evidence.push(event.seq);
        }
    }
    found.judged = copies.len();
    let total: usize = copies.values().sum();
    let pass = format!(
        "{total} later cop(ies) of {} transaction(s) (retransmissions, ACKs, CANCELs) all went to the address, port and transport of the first copy",
        copies.len()
    );
    found.verdict(
        "T5",
        level,
        pass,
        "no transaction sent more than one copy, so no destination could change",
        json!({"transactions": order.len(), "with_copies": copies.len(), "copies": total}),
    )
}

/// What T6 compares of an attempt: its first copy's From tag and top Via transport.
struct Headers {
    from_tag: Option<String>,
    via_transport: Option<String>,
}

fn headers(ctx: &Context, attempt: &Attempt) -> Headers {
    let message = attempt
        .sends
        .iter()
        .filter(|s| !s.refused)
        .find_map(|s| parsed(ctx, s.seq));
    Headers {
        from_tag: message
            .as_ref()
            .and_then(|m| m.from_tag().map(str::to_owned)),
        via_transport: message
            .as_ref()
            .and_then(|m| m.top_via())
            .map(|v| v.transport.to_ascii_uppercase()),
    }
}

fn failed(ctx: &Context, request: &Request) -> bool {
    request.attempts.last().is_some_and(|a| match a.end {
        super::AttemptEnd::Answered(status) => is_failover_status(ctx, status),
        _ => true,
    })
}

/// T6: each attempt of a request to another target than the ones before it carries a new Via
/// branch, the same Call-ID and the same From tag; every attempt's top Via names the transport
/// it went over. A failover that changed the Call-ID shows as a new request with the same From
/// tag right after a failed one, in the same step of the case.
pub fn t6(ctx: &Context) -> Verdict {
    let level = Level::Must;
    let requests = ctx.requests();
    let mut found = Findings::default();
    let mut via_checked = 0usize;
    let mut via_bad: Vec<(String, Vec<u64>)> = Vec::new();
    for request in &requests {
        let heads: Vec<Headers> = request.attempts.iter().map(|a| headers(ctx, a)).collect();
        for (i, attempt) in request.attempts.iter().enumerate() {
            if let Some(via) = &heads[i].via_transport {
                via_checked += 1;
                if via != transport_name(attempt.transport) {
                    via_bad.push((
                        format!(
                            "{} to {} went over {} but its top Via says {via}",
                            attempt.method,
                            attempt.describe(),
                            attempt.transport
                        ),
                        vec![attempt.first_seq()],
                    ));
                }
            }
            if i == 0 || !attempt.tied {
                continue;
            }
            let earlier = &request.attempts[..i];
            if earlier
                .iter()
                .any(|a| a.target_key() == attempt.target_key())
            {
                continue; // not another target
            }
            let Some(previous) = earlier.iter().rev().find(|a| a.tied) else {
                continue;
            };
            let first = &request.attempts[0];
            found.judged += 1;
            let seqs = vec![previous.first_seq(), attempt.first_seq()];
            found.measured.push(json!({"attempt": attempt.describe(),
                "branch": attempt.branch, "previous_branch": previous.branch}));
            if let Some(shared) = earlier
                .iter()
                .find(|a| attempt.branch.is_some() && a.branch == attempt.branch)
            {
                found.bad.push((
                    format!(
                        "{} to {} at {} reused the branch {} of the attempt to {}; a new target needs a new transaction",
                        attempt.method,
                        attempt.describe(),
                        secs(attempt.first_sent()),
                        attempt.branch.as_deref().unwrap_or("?"),
                        shared.describe()
                    ),
                    vec![shared.first_seq(), attempt.first_seq()],
                ));
            } else if attempt.branch.is_none() {
                found.bad.push((
                    format!(
                        "{} to {} at {} carried no Via branch",
                        attempt.method,
                        attempt.describe(),
                        secs(attempt.first_sent())
                    ),
                    vec![attempt.first_seq()],
                ));
            } else if attempt.call_id != first.call_id {
                found.bad.push((
                    format!(
                        "{} to {} changed the Call-ID from {:?} to {:?}",
                        attempt.method,
                        attempt.describe(),
                        first.call_id,
                        attempt.call_id
                    ),
                    seqs,
                ));
            } else if let (Some(was), Some(now)) = (&heads[0].from_tag, &heads[i].from_tag)
                && was != now
            {
                found.bad.push((
                    format!(
                        "{} to {} at {} changed the From tag from {was} to {now} on failover from {}",
                        attempt.method,
                        attempt.describe(),
                        secs(attempt.first_sent()),
                        previous.describe()
                    ),
                    vec![first.first_seq(), attempt.first_seq()],
                ));
            } else {
                found.evidence.extend(seqs);
            }
        }
    }
    // A failover under a new Call-ID: a new request with the From tag of a failed one.
    for pair in requests.windows(2) {
        let (before, after) = (&pair[0], &pair[1]);
        let (Some(last), Some(next)) = (before.attempts.last(), after.attempts.first()) else {
            continue;
        };
        // A request srvlab's trigger asked for is no failover, whatever its Call-ID.
        if !after.opening
            || after.asked.is_some()
            || after.method != before.method
            || after.call_id == before.call_id
            || !failed(ctx, before)
            || next.target_key() == last.target_key()
        {
            continue;
        }
        let stepped = ctx.events.iter().any(|e| {
            matches!(e.kind, EventKind::Step { .. })
                && e.t_ns >= last.first_sent()
                && e.t_ns <= next.first_sent()
        });
        let (was, now) = (headers(ctx, last).from_tag, headers(ctx, next).from_tag);
        if stepped || was.is_none() || was != now {
            continue;
        }
        found.judged += 1;
        found.bad.push((
            format!(
                "after {} to {} failed, {} to {} at {} kept the From tag {} but changed the Call-ID from {:?} to {:?}",
                last.method,
                last.describe(),
                next.method,
                next.describe(),
                secs(next.first_sent()),
                was.as_deref().unwrap_or("?"),
                last.call_id,
                next.call_id
            ),
            vec![last.first_seq(), next.first_seq()],
        ));
    }
    let failovers = found.judged;
    if let Some(first) = via_bad.first().cloned() {
        found.bad.insert(0, first);
        found.judged += via_bad.len();
    }
    let pass = format!(
        "{failovers} attempt(s) to another target each had a new branch, the same Call-ID and From tag; {via_checked} top Via(s) named the transport used"
    );
    found.verdict(
        "T6",
        level,
        pass,
        "no request moved on to another target, so no new transaction could be compared",
        json!({"failovers": failovers, "vias_checked": via_checked, "via_mismatches": via_bad.len()}),
    )
}
