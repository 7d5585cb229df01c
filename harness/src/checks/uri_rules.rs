//! What the URI alone decides (RFC 3263 §4.1, §4.2): L1 a numeric host needs no DNS and goes
//! to its default port over UDP (sip) or TCP (sips), L2 an explicit port allows only address
//! lookups, L3 a `transport` parameter rules out NAPTR and every other transport's SRV name.
//!
//! Each opening request is judged by its own Request-URI (see [`super::lookups`]), so a case
//! may mix URIs: a REGISTER to a bare domain and calls to a numeric host are judged apart.

use std::net::{IpAddr, SocketAddr};

use hickory_server::proto::rr::{Name, RecordType};
use serde_json::json;

use super::Context;
use super::lookups::{Host, Located, Query, RequestUri, Scheme, domain_of, located, name_of};
use super::measure::secs;
use super::targets::addresses;
use super::verdict::{Findings, Level, Status, Verdict};
use crate::model::zone::RecordData;
use crate::timeline::Transport;

/// Why a check has nothing to judge: no request showed its URI, or none had the property.
fn not_exercised(id: &str, level: Level, all: &[Located], what: &str) -> Verdict {
    if all.is_empty() {
        return Verdict::new(
            id,
            level,
            Status::Inconclusive,
            "the device sent no request whose Request-URI the timeline shows",
        );
    }
    let uris: Vec<&str> = all.iter().map(|l| l.uri.text.as_str()).collect();
    Verdict::new(
        id,
        level,
        Status::NotApplicable,
        format!("no request's URI {what} (URIs: {})", uris.join(", ")),
    )
    .with_figures(json!({ "uris": uris }))
}

/// The names a query for `ip` could carry: the address as text (as if it were a domain name,
/// also under `_service._proto` labels) and its reverse name.
fn is_about_ip(query: &str, ip: IpAddr) -> bool {
    let Some(name) = name_of(query) else {
        return false;
    };
    let text = domain_of(&name).to_ascii().to_ascii_lowercase();
    let text = text.trim_end_matches('.');
    text == ip.to_string() || text == reverse_name(ip)
}

/// `10.30.0.127.in-addr.arpa` / the nibbles of `ip6.arpa` (RFC 1035 §3.5, RFC 3596 §2.5).
fn reverse_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            format!("{d}.{c}.{b}.{a}.in-addr.arpa")
        }
        IpAddr::V6(v6) => {
            let mut labels: Vec<String> = Vec::new();
            for byte in v6.octets().iter().rev() {
                labels.push(format!("{:x}", byte & 0x0f));
                labels.push(format!("{:x}", byte >> 4));
            }
            format!("{}.ip6.arpa", labels.join("."))
        }
    }
}

fn describe_query(query: &Query) -> String {
    let (_, t, q) = query;
    format!("{} {} at {}", q.qtype, q.name, secs(*t))
}

/// L1 (MUST): a request whose Request-URI has a numeric host is sent without any DNS query for
/// that host, to that address on the URI's port (default 5060 for sip, 5061 for sips), over
/// the `transport` parameter's transport, else UDP for sip and TCP (TLS) for sips.
pub fn l1(ctx: &Context) -> Verdict {
    let level = Level::Must;
    let all = located(ctx);
    let numeric: Vec<&Located> = all
        .iter()
        .filter(|l| matches!(l.uri.host, Host::Ip(_)))
        .collect();
    if numeric.is_empty() {
        return not_exercised("L1", level, &all, "had a numeric host");
    }
    let mut findings = Findings::default();
    let mut unjudged: Vec<String> = Vec::new();
    for located in numeric {
        let uri = &located.uri;
        let Host::Ip(ip) = uri.host else {
            continue;
        };
        let expected_transport = match (&uri.transport, uri.scheme) {
            (None, Scheme::Sip) => Transport::Udp,
            (None, Scheme::Sips) => Transport::Tls,
            (Some(_), _) => match uri.transport_param() {
                Some(transport) => transport,
                None => {
                    unjudged.push(format!(
                        "{}: srvlab serves no transport {}",
                        uri.text,
                        uri.transport.as_deref().unwrap_or_default()
                    ));
                    continue;
                }
            },
        };
        let expected = SocketAddr::new(ip, uri.port.unwrap_or(uri.default_port()));
        let Some(attempt) = located.request.attempts.first() else {
            continue;
        };
        findings.judged += 1;
        findings.measured.push(json!({"uri": uri.text,
            "expected": format!("{expected_transport} {expected}"),
            "first_attempt": format!("{} {}", attempt.transport, attempt.address),
            "queries": located.queries.iter().filter(|q| is_about_ip(&q.2.name, ip)).count()}));
        if let Some(query) = located.queries.iter().find(|q| is_about_ip(&q.2.name, ip)) {
            findings.bad.push((
                format!(
                    "{} to {} was preceded by a DNS query for its numeric host: {}",
                    attempt.method,
                    uri.text,
                    describe_query(query)
                ),
                vec![query.0, attempt.first_seq()],
            ));
            continue;
        }
        if attempt.address != expected || attempt.transport != expected_transport {
            findings.bad.push((
                format!(
                    "{} to {} went to {} at {}, not to {expected_transport} {expected}",
                    attempt.method,
                    uri.text,
                    attempt.describe(),
                    secs(attempt.first_sent())
                ),
                vec![attempt.first_seq()],
            ));
            continue;
        }
        findings.evidence.push(attempt.first_seq());
    }
    let pass = format!(
        "{} request(s) to a numeric host went straight to it without a DNS query, on the URI's port and transport (first: {})",
        findings.judged,
        findings
            .measured
            .first()
            .and_then(|m| m["expected"].as_str())
            .unwrap_or_default()
    );
    let figures = json!({ "not_judged": unjudged });
    findings.verdict(
        "L1",
        level,
        pass,
        "no request to a numeric host could be judged",
        figures,
    )
}

/// The SRV names the zone's NAPTR records at `domain` lead to: queries for them are about
/// `domain` too.
fn naptr_replacements(ctx: &Context, domain: &Name) -> Vec<Name> {
    ctx.zones
        .records_at(domain, RecordType::NAPTR)
        .filter_map(|r| match &r.data {
            RecordData::Naptr { replacement, .. } => Some(replacement.clone()),
            _ => None,
        })
        .collect()
}

/// Whether a query is about `domain`: the domain itself, its `_service._proto` names, or the
/// SRV names its NAPTR records lead to.
fn is_about(query: &Query, domain: &Name, replacements: &[Name]) -> bool {
    name_of(&query.2.name).is_some_and(|n| domain_of(&n) == *domain || replacements.contains(&n))
}

/// L2 (MUST): a request whose Request-URI names a host with an explicit port is preceded by no
/// other lookup of that host than A/AAAA (no NAPTR, no SRV, also not of the SRV names its
/// NAPTR records lead to), and goes to that port (on an address of the host, when the zone
/// gives it one).
pub fn l2(ctx: &Context) -> Verdict {
    let level = Level::Must;
    let all = located(ctx);
    let with_port: Vec<(&Located, &Name, u16)> = all
        .iter()
        .filter_map(|l| Some((l, l.uri.domain()?, l.uri.port?)))
        .collect();
    if with_port.is_empty() {
        return not_exercised("L2", level, &all, "named a host with an explicit port");
    }
    let mut findings = Findings::default();
    for (located, domain, port) in with_port {
        let uri = &located.uri;
        let Some(attempt) = located.request.attempts.first() else {
            continue;
        };
        findings.judged += 1;
        let replacements = naptr_replacements(ctx, domain);
        let about: Vec<&Query> = located
            .queries
            .iter()
            .filter(|q| is_about(q, domain, &replacements))
            .collect();
        findings.measured.push(json!({"uri": uri.text,
            "queries": about.iter().map(|(_, _, q)| format!("{} {}", q.qtype, q.name)).collect::<Vec<_>>(),
            "first_attempt": attempt.describe()}));
        let not_address = about.iter().find(|(_, _, q)| {
            !(q.qtype.eq_ignore_ascii_case("A") || q.qtype.eq_ignore_ascii_case("AAAA"))
        });
        if let Some(query) = not_address {
            findings.bad.push((
                format!(
                    "{} to {} has an explicit port, so only A/AAAA lookups are allowed, but the device queried {}",
                    attempt.method,
                    uri.text,
                    describe_query(query)
                ),
                vec![query.0, attempt.first_seq()],
            ));
            continue;
        }
        let known = addresses(ctx.zones, domain);
        let right_address = known.is_empty() || known.contains(&attempt.address.ip());
        if attempt.address.port() != port || !right_address {
            let wanted = if known.is_empty() {
                format!("port {port}")
            } else {
                known
                    .iter()
                    .map(|ip| SocketAddr::new(*ip, port).to_string())
                    .collect::<Vec<_>>()
                    .join(" or ")
            };
            findings.bad.push((
                format!(
                    "{} to {} went to {} at {}, not to {wanted}",
                    attempt.method,
                    uri.text,
                    attempt.describe(),
                    secs(attempt.first_sent())
                ),
                vec![attempt.first_seq()],
            ));
            continue;
        }
        findings
            .evidence
            .extend(about.iter().map(|q| q.0).chain([attempt.first_seq()]));
    }
    let pass = format!(
        "{} request(s) to a host with an explicit port were preceded by A/AAAA lookups only and went to that port",
        findings.judged
    );
    findings.verdict(
        "L2",
        level,
        pass,
        "no request to a host with an explicit port could be judged",
        json!({}),
    )
}

/// The one SRV name a `transport` parameter allows (RFC 3263 §4.2): `_sips._tcp` for a sips
/// URI or TLS, else `_sip._udp`, `_sip._tcp`, `_sip._sctp`; `None` for a transport RFC 3263
/// has no SRV name for.
fn srv_name_for(uri: &RequestUri, domain: &Name) -> Option<Name> {
    let transport = uri.transport.as_deref()?;
    let proto = match transport {
        "udp" => "_udp",
        "tcp" | "tls" => "_tcp",
        "sctp" | "tls-sctp" => "_sctp",
        _ => return None,
    };
    let service = if uri.scheme == Scheme::Sips || transport.starts_with("tls") {
        "_sips"
    } else {
        "_sip"
    };
    name_of(&format!("{service}.{proto}.{}", domain.to_ascii()))
}

/// L3 (MUST): a request whose Request-URI names a host and has a `transport` parameter is
/// preceded by no NAPTR query for the host and by SRV queries of that transport's name only,
/// and goes over that transport (TLS: over TCP).
pub fn l3(ctx: &Context) -> Verdict {
    let level = Level::Must;
    let all = located(ctx);
    let with_transport: Vec<(&Located, &Name)> = all
        .iter()
        .filter(|l| l.uri.transport.is_some())
        .filter_map(|l| Some((l, l.uri.domain()?)))
        .collect();
    if with_transport.is_empty() {
        return not_exercised(
            "L3",
            level,
            &all,
            "named a host with a `transport` parameter",
        );
    }
    let mut findings = Findings::default();
    let mut unjudged: Vec<String> = Vec::new();
    for (located, domain) in with_transport {
        let uri = &located.uri;
        let Some(allowed) = srv_name_for(uri, domain) else {
            unjudged.push(format!(
                "{}: RFC 3263 has no SRV name for transport {}",
                uri.text,
                uri.transport.as_deref().unwrap_or_default()
            ));
            continue;
        };
        let Some(attempt) = located.request.attempts.first() else {
            continue;
        };
        findings.judged += 1;
        let replacements = naptr_replacements(ctx, domain);
        let about: Vec<&Query> = located
            .queries
            .iter()
            .filter(|q| is_about(q, domain, &replacements))
            .collect();
        findings.measured.push(json!({"uri": uri.text, "allowed_srv": allowed.to_string(),
            "queries": about.iter().map(|(_, _, q)| format!("{} {}", q.qtype, q.name)).collect::<Vec<_>>(),
            "first_attempt": attempt.describe()}));
        let naptr = about
            .iter()
            .find(|(_, _, q)| q.qtype.eq_ignore_ascii_case("NAPTR"));
        let other_srv = about.iter().find(|(_, _, q)| {
            q.qtype.eq_ignore_ascii_case("SRV") && name_of(&q.name).is_none_or(|n| n != allowed)
        });
        if let Some(query) = naptr.or(other_srv) {
            let why = if naptr.is_some() {
                "no NAPTR lookup is allowed".to_owned()
            } else {
                format!("the only SRV name allowed is {allowed}")
            };
            findings.bad.push((
                format!(
                    "{} to {} names its transport, so {why}, but the device queried {}",
                    attempt.method,
                    uri.text,
                    describe_query(query)
                ),
                vec![query.0, attempt.first_seq()],
            ));
            continue;
        }
        if let Some(expected) = uri.transport_param()
            && attempt.transport != expected
        {
            findings.bad.push((
                format!(
                    "{} to {} went over {} to {} at {}, not over {expected}",
                    attempt.method,
                    uri.text,
                    attempt.transport,
                    attempt.describe(),
                    secs(attempt.first_sent())
                ),
                vec![attempt.first_seq()],
            ));
            continue;
        }
        findings
            .evidence
            .extend(about.iter().map(|q| q.0).chain([attempt.first_seq()]));
    }
    let pass = format!(
        "{} request(s) with a transport parameter were preceded by no NAPTR lookup and by SRV lookups of their transport only (first: {}), and went over it",
        findings.judged,
        findings
            .measured
            .first()
            .and_then(|m| m["allowed_srv"].as_str())
            .unwrap_or_default()
    );
    findings.verdict(
        "L3",
        level,
        pass,
        "no request with a transport parameter could be judged",
        json!({ "not_judged": unjudged }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_names() {
        assert_eq!(
            reverse_name("127.0.30.10".parse().unwrap()),
            "10.30.0.127.in-addr.arpa"
        );
        assert!(reverse_name("::1".parse().unwrap()).starts_with("1.0.0.0.0.0"));
        assert!(is_about_ip("127.0.30.10.", "127.0.30.10".parse().unwrap()));
        assert!(is_about_ip(
            "_sip._udp.127.0.30.10.",
            "127.0.30.10".parse().unwrap()
        ));
        assert!(is_about_ip(
            "10.30.0.127.in-addr.arpa.",
            "127.0.30.10".parse().unwrap()
        ));
        assert!(!is_about_ip(
            "example.test.",
            "127.0.30.10".parse().unwrap()
        ));
    }
}
