//! L13 (RFC 3263 §4.2, RFC 7984): a device that declares both IPv4 and IPv6 looks up AAAA for
//! the SRV targets it reaches for (or sends to their IPv6 addresses), and tries every address
//! of one SRV target, in both families, before it moves on to the next target ("SRV-major"
//! order). Which family comes first is the device's policy, never judged.
//!
//! Only a dual-stack profile is judged: a device that declares one family does what it says
//! by using it alone. Requests judged are the opening ones, as for L11; an address the device
//! held dirty (D1) when it moved on counts as tried.

use std::net::{IpAddr, SocketAddr};

use hickory_server::proto::rr::Name;
use serde_json::json;

use super::Context;
use super::failures::{failures, is_dirty};
use super::lookups::{name_of, queries};
use super::resolution::resolved_set;
use super::targets::{SrvTarget, srv_queried, srv_records};
use super::verdict::{Level, Status, Verdict};
use crate::model::profile::AddressFamily;
use crate::timeline::EventKind;

/// Whether two SRV records lead to the same place (the same target on the same port).
fn same_target(a: &SrvTarget, b: &SrvTarget) -> bool {
    a.target == b.target && a.port == b.port
}

pub fn l13(ctx: &Context) -> Verdict {
    let level = Level::Profile;
    if !ctx.profile.dual_stack() {
        let families: Vec<&str> = ctx
            .profile
            .address_families
            .iter()
            .map(|f| f.name())
            .collect();
        return Verdict::new(
            "L13",
            Level::Should,
            Status::NotApplicable,
            format!(
                "the profile declares {} only, not dual stack (address_families)",
                families.join(", ")
            ),
        );
    }
    let declared = &ctx.profile.address_families;
    let mut bad: Vec<(String, Vec<u64>)> = Vec::new();
    let mut evidence = Vec::new();
    let mut moves = 0usize;

    // Both families of a target before the next target.
    let requests = ctx.requests();
    let all_failures = failures(ctx, &requests);
    for request in requests.iter().filter(|r| r.opening) {
        let Some(records) = request.attempts.iter().find_map(|a| resolved_set(ctx, a)) else {
            continue;
        };
        let record_of = |k: usize| records.iter().find(|r| r.matches(&request.attempts[k]));
        for k in 0..request.attempts.len().saturating_sub(1) {
            let (Some(left), Some(next)) = (record_of(k), record_of(k + 1)) else {
                continue;
            };
            if same_target(left, next) {
                continue;
            }
            moves += 1;
            let tried: Vec<IpAddr> = request.attempts[..=k]
                .iter()
                .filter(|a| left.matches(a))
                .map(|a| a.address.ip())
                .collect();
            let attempt = &request.attempts[k + 1];
            let dirty = |ip: IpAddr| {
                let key = (attempt.transport, SocketAddr::new(ip, left.port));
                is_dirty(&all_failures, key, attempt.first_sent())
            };
            let untried: Vec<IpAddr> = left
                .addresses
                .iter()
                .copied()
                .filter(|ip| declared.contains(&AddressFamily::of(*ip)))
                .filter(|ip| !tried.contains(ip) && !dirty(*ip))
                .collect();
            if untried.is_empty() {
                evidence.push(attempt.first_seq());
            } else {
                let untried: Vec<String> = untried.iter().map(ToString::to_string).collect();
                bad.push((
                    format!(
                        "{} moved on from {} to {} although {} of it was never tried",
                        request.method,
                        left.target,
                        attempt.describe(),
                        untried.join(", ")
                    ),
                    request.attempts[..=k + 1]
                        .iter()
                        .map(|a| a.first_seq())
                        .collect(),
                ));
            }
        }
    }

    // A declared IPv6 is used: every SRV target with AAAA records that the device reached
    // for (looked up or sent to) had its AAAA asked for, or its IPv6 address tried.
    let all_queries = queries(ctx);
    let attempted: Vec<IpAddr> = requests
        .iter()
        .flat_map(|r| r.attempts.iter().map(|a| a.address.ip()))
        .collect();
    let ipv4_first = ctx.profile.address_families.first() == Some(&AddressFamily::Ipv4);
    let mut hosts: Vec<SrvTarget> = Vec::new();
    for (owner, _) in srv_queried(ctx.events, u64::MAX) {
        for record in srv_records(ctx.zones, &owner) {
            if !record.is_dot() && !hosts.iter().any(|h| h.target == record.target) {
                hosts.push(record);
            }
        }
    }
    let mut with_aaaa = 0usize;
    for host in &hosts {
        let v6: Vec<IpAddr> = host
            .addresses
            .iter()
            .copied()
            .filter(IpAddr::is_ipv6)
            .collect();
        if v6.is_empty() {
            continue;
        }
        let about_host = |text: &str| name_of(text).is_some_and(|n: Name| n == host.target);
        let lookups: Vec<u64> = all_queries
            .iter()
            .filter(|(_, _, q)| about_host(&q.name))
            .map(|(seq, _, _)| *seq)
            .collect();
        let reached = !lookups.is_empty() || host.addresses.iter().any(|ip| attempted.contains(ip));
        if !reached {
            continue;
        }
        with_aaaa += 1;
        let asked_aaaa = all_queries
            .iter()
            .any(|(_, _, q)| about_host(&q.name) && q.qtype.eq_ignore_ascii_case("AAAA"));
        let sent_v6 = v6.iter().any(|ip| attempted.contains(ip));
        // An IPv4-first device that got the AAAA in the SRV answer's additional section and
        // was answered over IPv4 had no reason to ask or to send over IPv6.
        let had_it = ipv4_first && additional_aaaa(ctx, host);
        if asked_aaaa || sent_v6 || had_it {
            continue;
        }
        bad.push((
            format!(
                "the profile declares IPv6, yet the device neither queried AAAA for {} nor sent to its IPv6 address {}",
                host.target,
                v6.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
            ),
            lookups,
        ));
    }

    let figures = json!({
        "target_moves": moves,
        "targets_with_aaaa": with_aaaa,
        "violations": bad.len(),
    });
    if let Some((sentence, seqs)) = bad.first() {
        return Verdict::new("L13", level, Verdict::violation(level), sentence.clone())
            .with_evidence(seqs.clone())
            .with_figures(figures);
    }
    if moves == 0 && with_aaaa == 0 {
        return Verdict::new(
            "L13",
            level,
            Status::Inconclusive,
            "no SRV target with an AAAA record was reached for and no request moved between targets, so dual stack was never exercised",
        )
        .with_figures(figures);
    }
    let order = if moves == 0 {
        "no request moved between SRV targets".to_owned()
    } else {
        format!(
            "{moves} move(s) to another SRV target, each after every address of the target left (both families) was tried"
        )
    };
    Verdict::new(
        "L13",
        level,
        Status::Pass,
        format!("{order}; AAAA looked up or IPv6 used for {with_aaaa} target(s) with AAAA records"),
    )
    .with_evidence(evidence)
    .with_figures(figures)
}

/// Whether an answer the device received carried `host`'s AAAA in its additional section.
fn additional_aaaa(ctx: &Context, host: &SrvTarget) -> bool {
    ctx.events.iter().any(|e| match &e.kind {
        EventKind::DnsAnswer(answer) => answer.additionals.iter().any(|line| {
            let mut fields = line.split_whitespace();
            let owner = fields.next().and_then(name_of);
            owner.is_some_and(|n| n == host.target) && line.split_whitespace().any(|f| f == "AAAA")
        }),
        _ => false,
    })
}
