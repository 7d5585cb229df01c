//! How the device finds the transport and the first server (RFC 3263 §4.1, §4.2): L4 NAPTR is
//! queried first, L5 the most preferred supported NAPTR service decides the transport, L7
//! without SRV records the domain's own address on 5060 over UDP.

use hickory_server::proto::rr::{Name, RecordType};
use serde_json::json;

use super::Context;
use super::attempts::Attempt;
use super::lookups::{Scheme, domain_of, located, name_of, queries};
use super::measure::secs;
use super::targets::{addresses, srv_owners, srv_records};
use super::verdict::{Level, Status, Verdict};
use crate::model::zone::RecordData;
use crate::timeline::{EventKind, Transport};

/// The first attempt of the run that began at or after `t_ns`.
fn first_attempt_after(ctx: &Context, t_ns: u64) -> Option<Attempt> {
    ctx.requests()
        .into_iter()
        .filter_map(|r| r.attempts.into_iter().next())
        .find(|a| a.first_sent() >= t_ns)
}

/// L4 (SHOULD): the first DNS query of the run, about the domain, asks for NAPTR.
pub fn l4(ctx: &Context) -> Verdict {
    // A SHOULD; a profile that claims NAPTR support makes it the device's own promise.
    let claimed = ctx.profile.naptr == Some(true);
    let level = if claimed {
        Level::Profile
    } else {
        Level::Should
    };
    if !ctx.profile.queries_naptr() {
        return Verdict::new(
            "L4",
            level,
            Status::NotApplicable,
            format!(
                "the profile {} declares that the device does not query NAPTR",
                ctx.profile.name
            ),
        );
    }
    let all = queries(ctx);
    let Some(&(seq, t, query)) = all.first() else {
        return Verdict::new(
            "L4",
            level,
            Status::Inconclusive,
            "the device sent no DNS query",
        );
    };
    let domain = name_of(&query.name)
        .map(|n| domain_of(&n).to_string())
        .unwrap_or_else(|| query.name.clone());
    let figures = json!({"first_query": {"name": query.name, "qtype": query.qtype,
        "at_ms": t as f64 / 1e6}, "domain": domain});
    if query.qtype.eq_ignore_ascii_case("NAPTR") {
        return Verdict::new(
            "L4",
            level,
            Status::Pass,
            format!(
                "the first query, at {}, was NAPTR for {}",
                secs(t),
                query.name
            ),
        )
        .with_evidence(vec![seq])
        .with_figures(figures);
    }
    Verdict::new(
        "L4",
        level,
        Verdict::violation(level),
        format!(
            "the first query, at {}, was {} {}, not NAPTR {domain}{}",
            secs(t),
            query.qtype,
            query.name,
            if claimed {
                format!(" (the profile {} declares NAPTR support)", ctx.profile.name)
            } else {
                String::new()
            }
        ),
    )
    .with_evidence(vec![seq])
    .with_figures(figures)
}

/// The transport a NAPTR service stands for, among those srvlab serves.
pub(super) fn service_transport(service: &str) -> Option<Transport> {
    match service.to_ascii_uppercase().as_str() {
        "SIP+D2U" => Some(Transport::Udp),
        "SIP+D2T" => Some(Transport::Tcp),
        "SIPS+D2T" => Some(Transport::Tls),
        _ => None,
    }
}

/// One NAPTR record: order, preference, service, replacement.
type Naptr = (u16, u16, String, Name);

/// The NAPTR records at `owner`, most preferred first.
fn naptrs(ctx: &Context, owner: &Name) -> Vec<Naptr> {
    let mut out: Vec<Naptr> = ctx
        .zones
        .records_at(owner, RecordType::NAPTR)
        .filter_map(|r| match &r.data {
            RecordData::Naptr {
                order,
                preference,
                service,
                replacement,
                ..
            } => Some((*order, *preference, service.clone(), replacement.clone())),
            _ => None,
        })
        .collect();
    out.sort_by_key(|(order, preference, _, _)| (*order, *preference));
    out.dedup();
    out
}

/// Every name in the zones that has NAPTR records.
fn naptr_owners(ctx: &Context) -> Vec<Name> {
    let mut owners: Vec<Name> = Vec::new();
    for zone in &ctx.zones.zones {
        for record in &zone.records {
            if record.data.record_type() == RecordType::NAPTR && !owners.contains(&record.name) {
                owners.push(record.name.clone());
            }
        }
    }
    owners
}

/// L5's sips rule (RFC 3263 §4.1, RFC 3261 §26.2): a request to a sips URI uses SIPS services
/// only, so every attempt of it goes over TLS; the first that does not fails L5.
fn sips_over_plain(ctx: &Context) -> Option<Verdict> {
    let level = Level::Must;
    located(ctx).into_iter().find_map(|located| {
        if located.uri.scheme != Scheme::Sips {
            return None;
        }
        let attempt = located
            .request
            .attempts
            .iter()
            .find(|a| a.transport != Transport::Tls)?;
        Some(
            Verdict::new(
                "L5",
                level,
                Verdict::violation(level),
                format!(
                    "{} to the sips URI {} went to {} over {} at {}, not over TLS",
                    attempt.method,
                    located.uri.text,
                    attempt.describe(),
                    attempt.transport.to_string().to_uppercase(),
                    secs(attempt.first_sent())
                ),
            )
            .with_evidence(attempt.sends.iter().map(|s| s.seq).collect())
            .with_figures(
                json!({"uri": located.uri.text, "transport": attempt.transport.to_string()}),
            ),
        )
    })
}

/// L5 (MUST): a request to a sips URI goes over TLS only; with NAPTR records for the domain,
/// the first attempt after the NAPTR query uses the transport of the most preferred (ORDER,
/// then PREFERENCE) service whose transport the profile supports and whose REPLACEMENT has SRV
/// records (SIP+D2U udp, SIP+D2T tcp, SIPS+D2T tls; SCTP is not supported). Judged only when
/// the NAPTR query was answered with records; a scripted fault on a replacement's SRV name
/// also allows the next service's transport.
pub fn l5(ctx: &Context) -> Verdict {
    let level = Level::Must;
    if let Some(verdict) = sips_over_plain(ctx) {
        return verdict;
    }
    let owners = naptr_owners(ctx);
    if owners.is_empty() {
        return Verdict::new(
            "L5",
            level,
            Status::Inconclusive,
            "the zone has no NAPTR records",
        );
    }
    let asked = queries(ctx).into_iter().find(|(_, _, q)| {
        q.qtype.eq_ignore_ascii_case("NAPTR")
            && name_of(&q.name).is_some_and(|n| owners.contains(&n))
    });
    let Some((query_seq, query_t, query)) = asked else {
        let status = if ctx.profile.queries_naptr() {
            Status::Inconclusive
        } else {
            Status::NotApplicable
        };
        // What the profile says, as it says it: a claim only where it makes one (issue 14:
        // "(profile naptr: true)" was printed for a profile silent about NAPTR).
        let declared = match ctx.profile.naptr {
            Some(true) => "; the profile claims NAPTR support".to_owned(),
            Some(false) => format!(
                "; the profile `{}` declares that the device does not query NAPTR",
                ctx.profile.device
            ),
            None => String::new(),
        };
        return Verdict::new(
            "L5",
            level,
            status,
            format!(
                "the device queried none of the NAPTR names {}{declared}",
                owners
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
        );
    };
    let owner = name_of(&query.name).unwrap_or_else(Name::root);
    let records = naptrs(ctx, &owner);
    let usable: Vec<&Naptr> = records
        .iter()
        .filter(|(_, _, service, replacement)| {
            service_transport(service).is_some_and(|t| ctx.profile.transports.contains(&t))
                && !srv_records(ctx.zones, replacement).is_empty()
        })
        .collect();
    // A scripted fault on a replacement's SRV name lets the device move on to the next
    // service: every service up to the first unfaulted one is allowed.
    let faulted = |name: &Name| ctx.zones.faults().any(|f| f.name == *name);
    let cut = usable
        .iter()
        .position(|(_, _, _, r)| !faulted(r))
        .unwrap_or(usable.len().saturating_sub(1));
    let allowed: Vec<Transport> = usable
        .iter()
        .take(cut + 1)
        .filter_map(|(_, _, s, _)| service_transport(s))
        .collect();
    let supported = usable.get(cut).copied();
    let offered: Vec<String> = records
        .iter()
        .map(|(o, p, s, r)| format!("{o} {p} {s} {r}"))
        .collect();
    let Some((order, preference, service, replacement)) = supported else {
        return Verdict::new(
            "L5",
            level,
            Status::Inconclusive,
            format!(
                "no NAPTR service of {owner} ({}) has a transport the profile supports and SRV records",
                offered.join("; ")
            ),
        )
        .with_evidence(vec![query_seq]);
    };
    let expected = service_transport(service).unwrap_or(Transport::Udp);
    let figures = json!({"naptr": offered, "chosen": format!("{order} {preference} {service} {replacement}"),
        "expected_transport": expected.to_string()});
    let Some(attempt) = first_attempt_after(ctx, query_t) else {
        return Verdict::new(
            "L5",
            level,
            Status::Inconclusive,
            format!(
                "the device queried NAPTR {owner} at {} but sent no request after it",
                secs(query_t)
            ),
        )
        .with_evidence(vec![query_seq])
        .with_figures(figures);
    };
    let answered = ctx.events.iter().find(|e| match &e.kind {
        EventKind::DnsAnswer(a) => {
            e.t_ns >= query_t
                && e.t_ns <= attempt.first_sent()
                && a.qtype.eq_ignore_ascii_case("NAPTR")
                && name_of(&a.name).is_some_and(|n| n == owner)
                && a.rcode.eq_ignore_ascii_case("NOERROR")
                && !a.answers.is_empty()
        }
        _ => false,
    });
    let Some(answered) = answered else {
        return Verdict::new(
            "L5",
            level,
            Status::Inconclusive,
            format!(
                "the device queried NAPTR {owner} at {} but got no answer with records before its first request",
                secs(query_t)
            ),
        )
        .with_evidence(vec![query_seq, attempt.first_seq()])
        .with_figures(figures);
    };
    let evidence = vec![query_seq, answered.seq, attempt.first_seq()];
    if !allowed.contains(&attempt.transport) {
        return Verdict::new(
            "L5",
            level,
            Verdict::violation(level),
            format!(
                "the first {} after NAPTR {owner} went over {} to {} at {}, but the most preferred supported service is {service} (order {order}, preference {preference}) → {expected} via {replacement}",
                attempt.method,
                attempt.transport,
                attempt.describe(),
                secs(attempt.first_sent())
            ),
        )
        .with_evidence(evidence)
        .with_figures(figures);
    }
    Verdict::new(
        "L5",
        level,
        Status::Pass,
        format!(
            "the first {} after NAPTR {owner} went over {expected} to {}, as its most preferred supported service {service} (order {order}, preference {preference}) says",
            attempt.method,
            attempt.describe()
        ),
    )
    .with_evidence(evidence)
    .with_figures(figures)
}

/// Whether the zones give `domain` SRV records: its own `_service._proto` names, or the
/// replacements of its NAPTR records.
fn has_srv(ctx: &Context, domain: &Name) -> bool {
    srv_owners(ctx.zones)
        .iter()
        .any(|o| o.num_labels() >= 2 && o.base_name().base_name() == *domain)
        || naptrs(ctx, domain)
            .iter()
            .any(|(_, _, _, r)| !srv_records(ctx.zones, r).is_empty())
}

/// L7 (MUST): when the zone has no SRV records for the domain, the first attempt goes to the
/// domain's A/AAAA address, port 5060, over UDP. The domain is the one the device's first query
/// was about (or the zone's origin when it sent none and there is one zone).
pub fn l7(ctx: &Context) -> Verdict {
    let level = Level::Must;
    if !ctx.profile.transports.contains(&Transport::Udp) {
        return Verdict::new(
            "L7",
            level,
            Status::NotApplicable,
            format!("the profile {} does not support UDP", ctx.profile.name),
        );
    }
    let first_query = queries(ctx).into_iter().next();
    let domain = match first_query {
        Some((_, _, q)) => name_of(&q.name).map(|n| domain_of(&n)),
        None if ctx.zones.zones.len() == 1 => Some(ctx.zones.zones[0].origin.clone()),
        None => None,
    };
    let Some(domain) = domain else {
        return Verdict::new(
            "L7",
            level,
            Status::Inconclusive,
            "the device sent no query that names a domain",
        );
    };
    if ctx.zones.zone_for(&domain).is_none() {
        return Verdict::new(
            "L7",
            level,
            Status::Inconclusive,
            format!("the device's first query was about {domain}, which no zone serves"),
        );
    }
    if has_srv(ctx, &domain) {
        return Verdict::new(
            "L7",
            level,
            Status::NotApplicable,
            format!("the zone has SRV records for {domain}"),
        );
    }
    let expected = addresses(ctx.zones, &domain);
    if expected.is_empty() {
        return Verdict::new(
            "L7",
            level,
            Status::NotApplicable,
            format!("{domain} has neither SRV nor A/AAAA records"),
        );
    }
    let figures = json!({"domain": domain.to_string(),
        "addresses": expected.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "port": 5060, "transport": "udp"});
    let Some(attempt) = first_attempt_after(ctx, 0) else {
        return Verdict::new(
            "L7",
            level,
            Status::Inconclusive,
            format!("{domain} has no SRV records but the device sent no request"),
        )
        .with_figures(figures);
    };
    let good = expected.contains(&attempt.address.ip())
        && attempt.address.port() == 5060
        && attempt.transport == Transport::Udp;
    let wanted = expected
        .iter()
        .map(|a| format!("udp {a}:5060"))
        .collect::<Vec<_>>()
        .join(" or ");
    if !good {
        return Verdict::new(
            "L7",
            level,
            Verdict::violation(level),
            format!(
                "{domain} has no SRV records, so the first request should go to {wanted}, but the first {} went to {} at {}",
                attempt.method,
                attempt.describe(),
                secs(attempt.first_sent())
            ),
        )
        .with_evidence(vec![attempt.first_seq()])
        .with_figures(figures);
    }
    Verdict::new(
        "L7",
        level,
        Status::Pass,
        format!(
            "{domain} has no SRV records and the first {} went to its address, {}, at {}",
            attempt.method,
            attempt.describe(),
            secs(attempt.first_sent())
        ),
    )
    .with_evidence(vec![attempt.first_seq()])
    .with_figures(figures)
}
