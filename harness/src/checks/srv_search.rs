//! L6: without NAPTR, which SRV names the device asks for, and in which order (RFC 3263 §4.1
//! leaves the order to the client: "the client SHOULD query SRV records for the transports it
//! supports"). Informational: the order is the device's policy, the report records it.

use hickory_server::proto::rr::{Name, RecordType};
use serde_json::json;

use super::Context;
use super::discovery::service_transport;
use super::lookups::{Located, Query, Reply, domain_of, located, name_of, reply_to};
use super::verdict::{Level, Status, Verdict};
use crate::model::zone::RecordData;
use crate::timeline::Transport;

/// How a query was answered, in a word: `2 record(s)`, `NXDOMAIN`, `NODATA`, `no answer`.
fn reply_word(ctx: &Context, query: &Query) -> String {
    match reply_to(ctx, query) {
        Reply::Answered { answer, .. } => match answer.rcode.to_ascii_uppercase().as_str() {
            "NOERROR" if answer.answers.is_empty() => "NODATA".to_owned(),
            "NOERROR" => format!("{} record(s)", answer.answers.len()),
            other => other.to_owned(),
        },
        Reply::Dropped { .. } | Reply::Missing => "no answer".to_owned(),
    }
}

/// One request's reading: why NAPTR gave nothing, and the SRV queries in order.
struct Reading {
    domain: Name,
    naptr: &'static str,
    srv: Vec<(u64, Name, String)>,
    first_attempt: (u64, String),
}

fn read(ctx: &Context, located: &Located, domain: &Name) -> Option<Reading> {
    let naptr_query = located.queries.iter().find(|q| {
        q.2.qtype.eq_ignore_ascii_case("NAPTR") && name_of(&q.2.name).is_some_and(|n| n == *domain)
    });
    let services: Vec<Option<Transport>> = ctx
        .zones
        .records_at(domain, RecordType::NAPTR)
        .filter_map(|r| match &r.data {
            RecordData::Naptr { service, .. } => Some(service_transport(service)),
            _ => None,
        })
        .collect();
    let usable = services
        .iter()
        .flatten()
        .any(|t| ctx.profile.transports.contains(t));
    // The L6 situation (RFC 3263 §4.1): the zone has no NAPTR, or none with a service the
    // device supports, or the device did not ask (then which SRV names it asks for is just as
    // much its own policy).
    let naptr = match (services.is_empty(), usable, naptr_query) {
        (true, _, Some(_)) => "queried, none in the zone",
        (true, _, None) => "none in the zone, not queried",
        (false, false, Some(_)) => "queried, no service the profile supports",
        (false, _, None) => "not queried",
        (false, true, Some(_)) => return None,
    };
    let mut srv: Vec<(u64, Name, String)> = Vec::new();
    for query in &located.queries {
        let Some(name) = name_of(&query.2.name) else {
            continue;
        };
        if query.2.qtype.eq_ignore_ascii_case("SRV")
            && domain_of(&name) == *domain
            && !srv.iter().any(|(_, n, _)| *n == name)
        {
            srv.push((query.0, name, reply_word(ctx, query)));
        }
    }
    let attempt = located.request.attempts.first()?;
    Some(Reading {
        domain: domain.clone(),
        naptr,
        srv,
        first_attempt: (
            attempt.first_seq(),
            format!(
                "{} over {} to {}",
                attempt.method,
                attempt.transport,
                attempt.describe()
            ),
        ),
    })
}

/// `_sip._udp.` or `_sip._tcp.` + the domain: the SRV names of the profile's transports.
fn supported_names(ctx: &Context, domain: &Name) -> Vec<Name> {
    ctx.profile
        .transports
        .iter()
        .filter_map(|t| {
            let (service, proto) = match t {
                Transport::Udp => ("_sip", "_udp"),
                Transport::Tcp => ("_sip", "_tcp"),
                Transport::Tls => ("_sips", "_tcp"),
            };
            name_of(&format!("{service}.{proto}.{}", domain.to_ascii()))
        })
        .collect()
}

/// L6 (INFO): for requests to a bare domain (no port, no transport parameter) that got no
/// NAPTR to follow, the SRV names the device queried, in order, with their answers.
pub fn l6(ctx: &Context) -> Verdict {
    let level = Level::Info;
    let all = located(ctx);
    if all.is_empty() {
        return from_queries_alone(ctx);
    }
    let mut applicable = 0usize;
    let mut readings: Vec<Reading> = Vec::new();
    for located in &all {
        let uri = &located.uri;
        let Some(domain) = uri.domain() else {
            continue;
        };
        if uri.port.is_some() || uri.transport.is_some() {
            continue;
        }
        let Some(reading) = read(ctx, located, domain) else {
            continue;
        };
        applicable += 1;
        // Answers from the cache show no order: only requests that asked count.
        if !reading.srv.is_empty() {
            readings.push(reading);
        }
    }
    if applicable == 0 {
        return Verdict::new(
            "L6",
            level,
            Status::NotApplicable,
            "no request went to a bare domain without NAPTR records to follow",
        );
    }
    let Some(first) = readings.first() else {
        return Verdict::new(
            "L6",
            level,
            Status::Inconclusive,
            format!(
                "{applicable} request(s) to a domain without NAPTR sent no SRV query (answers from the cache)"
            ),
        );
    };
    let order =
        |r: &Reading| -> Vec<String> { r.srv.iter().map(|(_, n, _)| n.to_string()).collect() };
    let queried: Vec<String> = first
        .srv
        .iter()
        .map(|(_, name, word)| format!("{name} ({word})"))
        .collect();
    let supported = supported_names(ctx, &first.domain);
    let not_queried: Vec<String> = supported
        .iter()
        .filter(|n| !first.srv.iter().any(|(_, q, _)| q == *n))
        .map(ToString::to_string)
        .collect();
    let mut sentence = format!(
        "no NAPTR for {} ({}): the device queried SRV {}; then sent its first {}",
        first.domain,
        first.naptr,
        queried.join(" then "),
        first.first_attempt.1
    );
    if !not_queried.is_empty() {
        sentence.push_str(&format!(
            "; not queried: {} (profile transports: {})",
            not_queried.join(", "),
            ctx.profile
                .transports
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let orders: Vec<Vec<String>> = {
        let mut orders: Vec<Vec<String>> = Vec::new();
        for reading in &readings {
            let o = order(reading);
            if !orders.contains(&o) {
                orders.push(o);
            }
        }
        orders
    };
    if orders.len() > 1 {
        sentence.push_str(&format!(
            "; {} different orders over {} requests",
            orders.len(),
            readings.len()
        ));
    }
    let evidence: Vec<u64> = readings
        .iter()
        .flat_map(|r| {
            r.srv
                .iter()
                .map(|(seq, _, _)| *seq)
                .chain([r.first_attempt.0])
        })
        .collect();
    let figures = json!({
        "domain": first.domain.to_string(),
        "naptr": first.naptr,
        "srv_queries": first.srv.iter().map(|(_, n, w)| json!({"name": n.to_string(), "answer": w})).collect::<Vec<_>>(),
        "not_queried": not_queried,
        "profile_transports": ctx.profile.transports,
        "orders": orders,
        "requests_read": readings.len(),
        "requests_applicable": applicable,
    });
    Verdict::new("L6", level, Status::Info, sentence)
        .with_evidence(evidence)
        .with_figures(figures)
}

/// L6 when no request of the device reached a server (all refused without a quote, or none
/// sent): the queries alone still show which SRV names it asked for, and in which order
/// (issue 14: it said only "the device sent no request whose Request-URI the timeline shows").
fn from_queries_alone(ctx: &Context) -> Verdict {
    let level = Level::Info;
    let all = super::lookups::queries(ctx);
    let mut asked: Vec<(u64, Name, String)> = Vec::new();
    let mut naptr: Vec<String> = Vec::new();
    for query in &all {
        let Some(name) = name_of(&query.2.name) else {
            continue;
        };
        if query.2.qtype.eq_ignore_ascii_case("NAPTR") {
            naptr.push(format!("NAPTR {name} ({})", reply_word(ctx, query)));
        } else if query.2.qtype.eq_ignore_ascii_case("SRV")
            && !asked.iter().any(|(_, n, _)| *n == name)
        {
            asked.push((query.0, name, reply_word(ctx, query)));
        }
    }
    if asked.is_empty() {
        let sentence = if all.is_empty() {
            "the device sent no DNS query and no request that reached a server".to_owned()
        } else {
            format!(
                "the device sent no SRV query ({} other quer(ies)) and no request that reached a server",
                all.len()
            )
        };
        return Verdict::new("L6", level, Status::Inconclusive, sentence);
    }
    let srv: Vec<String> = asked
        .iter()
        .map(|(_, name, word)| format!("{name} ({word})"))
        .collect();
    let before = if naptr.is_empty() {
        "no NAPTR query; ".to_owned()
    } else {
        format!("{}; then ", naptr.join(", "))
    };
    let sentence = format!(
        "no request of the device reached a server; its queries show {before}SRV {}",
        srv.join(" then ")
    );
    let figures = json!({
        "srv_queries": asked.iter().map(|(_, n, w)| json!({"name": n.to_string(), "answer": w})).collect::<Vec<_>>(),
        "naptr_queries": naptr,
        "requests_read": 0,
    });
    Verdict::new("L6", level, Status::Info, sentence)
        .with_evidence(asked.iter().map(|(seq, _, _)| *seq).collect())
        .with_figures(figures)
}
