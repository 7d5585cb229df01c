//! D3 (INFO): what a dirty-host mark covers — the transport, address and port that failed,
//! the whole host, or the whole domain — read from what the device chose while a mark ran.
//!
//! Only opening requests that begin while a mark runs, and whose resolved SRV records offer a
//! **neighbour** of the failed target (the same address on another port or transport), can
//! tell: going first to the neighbour shows a mark per transport:host:port; passing over a
//! neighbour of better priority for another host shows a mark per host; going back to the
//! failed target itself shows no mark at all (or one over the whole domain, where every
//! target is dirty and the order starts over). Equal priorities leave it to the weighted draw
//! and are counted, not read.

use std::net::SocketAddr;

use serde_json::json;

use super::Context;
use super::failures::failures;
use super::measure::{ns, secs};
use super::resolution::resolved_set;
use super::targets::SrvTarget;
use super::verdict::{Level, Status, Verdict};
use crate::timeline::Transport;

/// Whether `record` leads to `key` (its address, port and transport).
fn leads_to(record: &SrvTarget, key: (Transport, SocketAddr)) -> bool {
    record.addresses.contains(&key.1.ip())
        && record.port == key.1.port()
        && record.transport.is_none_or(|t| t == key.0)
}

/// Whether `record` is on the same address as `key` without being it.
fn neighbour_of(record: &SrvTarget, key: (Transport, SocketAddr)) -> bool {
    record.addresses.contains(&key.1.ip()) && !leads_to(record, key)
}

pub fn d3(ctx: &Context) -> Verdict {
    let requests = ctx.requests();
    let all = failures(ctx, &requests);
    let mut per_target = Vec::new();
    let mut per_host = Vec::new();
    let mut not_avoided = Vec::new();
    let mut by_chance = 0usize;
    let mut marks = 0usize;
    let mut measured = Vec::new();
    for failure in &all {
        let Some(avoid) = failure.avoid else { continue };
        marks += 1;
        let until = failure.t_ns.saturating_add(ns(avoid));
        for (r, request) in requests.iter().enumerate() {
            let Some(first) = request.attempts.first() else {
                continue;
            };
            let t = first.first_sent();
            if !request.opening || r == failure.request || t <= failure.t_ns || t >= until {
                continue;
            }
            let Some(records) = resolved_set(ctx, first) else {
                continue;
            };
            let neighbours: Vec<&SrvTarget> = records
                .iter()
                .filter(|rec| neighbour_of(rec, failure.key))
                .collect();
            if neighbours.is_empty() {
                continue;
            }
            let chosen = records
                .iter()
                .filter(|rec| rec.matches(first))
                .map(|rec| rec.priority)
                .min();
            let seen = (first.first_seq(), first.describe());
            let outcome = if first.target_key() == failure.key {
                not_avoided.push(seen);
                "went to the failed target itself"
            } else if neighbours.iter().any(|n| n.matches(first)) {
                per_target.push(seen);
                "went to the same host on another port or transport"
            } else if chosen.is_some_and(|c| neighbours.iter().any(|n| n.priority < c)) {
                per_host.push(seen);
                "passed over the same host's better target"
            } else {
                by_chance += 1;
                "went elsewhere (the draw could have done so)"
            };
            measured.push(json!({"failed": failure.server, "failed_key": format!("{} {}", failure.key.0, failure.key.1),
                "request_at_ms": t as f64 / 1e6, "first": first.describe(), "reading": outcome}));
        }
    }
    let figures = json!({"marks": marks, "per_transport_host_port": per_target.len(),
        "per_host": per_host.len(), "not_avoided": not_avoided.len(),
        "undecided": by_chance, "requests": measured});
    let read = per_target.len() + per_host.len() + not_avoided.len();
    if read == 0 {
        return Verdict::new(
            "D3",
            Level::Info,
            Status::Inconclusive,
            if marks == 0 {
                "no target failed, so no mark to look at".to_owned()
            } else {
                format!(
                    "{marks} mark(s), but no request while one ran could choose between the failed target and another on the same host ({by_chance} undecided by the draw)"
                )
            },
        )
        .with_figures(figures);
    }
    let scope = match (
        per_target.is_empty(),
        per_host.is_empty(),
        not_avoided.is_empty(),
    ) {
        (false, true, true) => "the mark covers the failed transport, address and port only",
        (true, false, true) => "the mark covers the whole host",
        (true, true, false) => {
            "the failed target was not avoided: no mark, or one over the whole domain"
        }
        _ => "the readings disagree",
    };
    let first_failure = all
        .iter()
        .find(|f| f.avoid.is_some())
        .map(|f| {
            format!(
                " (first: {} {} {} failed at {})",
                f.server,
                f.key.0,
                f.key.1,
                secs(f.t_ns)
            )
        })
        .unwrap_or_default();
    let evidence: Vec<u64> = per_target
        .iter()
        .chain(&per_host)
        .chain(&not_avoided)
        .map(|(seq, _)| *seq)
        .collect();
    Verdict::new(
        "D3",
        Level::Info,
        Status::Info,
        format!(
            "while a failed target was avoided{first_failure}, {} request(s) went first to the same host on another port or transport, {} passed over it for another host, {} went back to the failed target: {scope}",
            per_target.len(),
            per_host.len(),
            not_avoided.len()
        ),
    )
    .with_evidence(evidence)
    .with_figures(figures)
}
