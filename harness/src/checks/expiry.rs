//! C2: a record is not used after its TTL without a new query (RFC 1035 §3.2.1, RFC 2782).
//!
//! For each opening request (the first of its Call-ID: in-dialog requests follow the dialog's
//! remote target, not DNS), the records its first attempt relied on are read from the answers the
//! device got before it: the A/AAAA names that gave the attempt's address, and the SRV names
//! whose records lead there (port, target, transport). A name is stale when its last answer's
//! TTL ran out before the attempt and the device did not ask for it again meanwhile. The
//! judgement is conservative: a request fails only when every name that could have given its
//! address (or every SRV name that could have led there) is stale, and each TTL is granted
//! 10 % or at least one second of grace.

use std::net::IpAddr;
use std::time::Duration;

use serde_json::json;

use super::Context;
use super::measure::{ns, secs, tolerance};
use super::targets::owner_transport;
use super::verdict::{Level, Verdict};
use crate::timeline::{EventKind, Transport};

/// The smallest grace a TTL gets: the device's own scheduling between answer and request.
const GRACE: Duration = Duration::from_secs(1);

/// One record of an answer (or its additional section) as the device received it.
#[derive(Clone, Debug)]
struct Seen {
    seq: u64,
    t_ns: u64,
    owner: String,
    /// "A" (A and AAAA alike) or "SRV".
    kind: &'static str,
    ttl: u32,
    address: Option<IpAddr>,
    /// SRV port and target.
    srv: Option<(u16, String)>,
}

fn lower(name: &str) -> String {
    let name = name.to_ascii_lowercase();
    if name.ends_with('.') {
        name
    } else {
        format!("{name}.")
    }
}

/// `_sip._udp.x.test. 300 IN SRV 1 50 5060 a.x.test.` or `a.x.test. 60 IN A 127.0.0.1`.
fn parse_record(text: &str, seq: u64, t_ns: u64) -> Option<Seen> {
    let mut tokens = text.split_whitespace();
    let owner = lower(tokens.next()?);
    let ttl: u32 = tokens.next()?.parse().ok()?;
    let mut rtype = tokens.next()?;
    if matches!(rtype.to_ascii_uppercase().as_str(), "IN" | "CH" | "HS") {
        rtype = tokens.next()?;
    }
    let rest: Vec<&str> = tokens.collect();
    let rtype = rtype.to_ascii_uppercase();
    let (kind, address, srv) = match rtype.as_str() {
        "A" | "AAAA" => ("A", Some(rest.first()?.parse().ok()?), None),
        "SRV" => {
            let port: u16 = rest.get(2)?.parse().ok()?;
            ("SRV", None, Some((port, lower(rest.get(3)?))))
        }
        _ => return None,
    };
    Some(Seen {
        seq,
        t_ns,
        owner,
        kind,
        ttl,
        address,
        srv,
    })
}

/// How a name stood when an attempt relied on it.
struct Standing {
    /// Its last answer before the attempt.
    last: Seen,
    /// When that answer's TTL (with grace) ran out.
    expires: u64,
    /// Some answer for it had expired before the attempt: the requirement was exercised.
    exercised: bool,
    /// The last answer expired and no query for it came since.
    stale: bool,
}

fn grace(ttl: u32) -> u64 {
    ns(tolerance(Duration::from_secs(u64::from(ttl))).max(GRACE))
}

/// How long after an answer C2 holds a record with this TTL expired: the TTL plus its grace.
/// Runners wait this long (and a little more) to make a device's cache cold.
pub fn expired_after(ttl: u32) -> Duration {
    Duration::from_secs(u64::from(ttl)) + Duration::from_nanos(grace(ttl))
}

fn expiry(seen: &Seen) -> u64 {
    seen.t_ns
        .saturating_add(u64::from(seen.ttl).saturating_mul(1_000_000_000))
        .saturating_add(grace(seen.ttl))
}

fn standing(
    records: &[Seen],
    queries: &[(u64, u64, String, &'static str)],
    owner: &str,
    kind: &str,
    t_ns: u64,
) -> Option<Standing> {
    let mine: Vec<&Seen> = records
        .iter()
        .filter(|r| r.owner == owner && r.kind == kind && r.t_ns <= t_ns)
        .collect();
    let last_t = mine.iter().map(|r| r.t_ns).max()?;
    // The answer's TTL: the smallest of its records for this name.
    let last = mine
        .iter()
        .filter(|r| r.t_ns == last_t)
        .min_by_key(|r| r.ttl)
        .map(|r| (*r).clone())?;
    let expires = expiry(&last);
    let exercised = mine.iter().any(|r| expiry(r) < t_ns);
    let requery = queries
        .iter()
        .find(|(_, qt, name, k)| name == owner && *k == kind && *qt > last.t_ns && *qt <= t_ns)
        .map(|q| q.0);
    Some(Standing {
        stale: expires < t_ns && requery.is_none(),
        exercised,
        expires,
        last,
    })
}

/// C2 (MUST): no request relies on an SRV or A/AAAA answer whose TTL ran out without a new
/// query for that name.
pub fn c2(ctx: &Context) -> Verdict {
    let level = Level::Must;
    let mut records: Vec<Seen> = Vec::new();
    let mut queries: Vec<(u64, u64, String, &'static str)> = Vec::new();
    for event in ctx.events {
        match &event.kind {
            EventKind::DnsAnswer(answer) => {
                records.extend(
                    answer
                        .answers
                        .iter()
                        .chain(&answer.additionals)
                        .filter_map(|text| parse_record(text, event.seq, event.t_ns)),
                );
            }
            EventKind::DnsQuery(query) => {
                let kind = match query.qtype.to_ascii_uppercase().as_str() {
                    "A" | "AAAA" => "A",
                    "SRV" => "SRV",
                    _ => continue,
                };
                queries.push((event.seq, event.t_ns, lower(&query.name), kind));
            }
            _ => {}
        }
    }
    let mut judged = 0usize;
    let mut refreshed = 0usize;
    let mut bad: Vec<(String, Vec<u64>)> = Vec::new();
    let mut evidence: Vec<u64> = Vec::new();
    let mut measured: Vec<serde_json::Value> = Vec::new();
    // Only a call's opening request resolves afresh: a BYE follows the dialog, not DNS.
    for request in ctx.requests().into_iter().filter(|r| r.opening) {
        let Some(attempt) = request.attempts.first() else {
            continue;
        };
        let t = attempt.first_sent();
        let ip = attempt.address.ip();
        let mut a_names: Vec<String> = records
            .iter()
            .filter(|r| r.kind == "A" && r.address == Some(ip) && r.t_ns <= t)
            .map(|r| r.owner.clone())
            .collect();
        a_names.sort();
        a_names.dedup();
        let mut srv_names: Vec<String> = records
            .iter()
            .filter(|r| {
                r.kind == "SRV"
                    && r.t_ns <= t
                    && r.srv.as_ref().is_some_and(|(port, target)| {
                        *port == attempt.address.port() && a_names.contains(target)
                    })
                    && hickory_server::proto::rr::Name::from_ascii(&r.owner)
                        .ok()
                        .and_then(|n| owner_transport(&n))
                        .is_none_or(|tr: Transport| tr == attempt.transport)
            })
            .map(|r| r.owner.clone())
            .collect();
        srv_names.sort();
        srv_names.dedup();
        let mut request_judged = false;
        for (kind, names) in [("A", &a_names), ("SRV", &srv_names)] {
            let standings: Vec<(String, Standing)> = names
                .iter()
                .filter_map(|n| standing(&records, &queries, n, kind, t).map(|s| (n.clone(), s)))
                .collect();
            if standings.is_empty() || !standings.iter().any(|(_, s)| s.exercised) {
                continue;
            }
            request_judged = true;
            if standings.iter().all(|(_, s)| s.stale) {
                let (name, s) = &standings[0];
                measured.push(json!({"name": name, "type": kind, "ttl_s": s.last.ttl,
                    "answered_ms": s.last.t_ns as f64 / 1e6, "used_ms": t as f64 / 1e6}));
                bad.push((
                    format!(
                        "{} to {} at {} relied on {kind} {name}, last answered at {} with TTL {} s (expired at {} with grace), and the device did not query it again",
                        attempt.method,
                        attempt.describe(),
                        secs(t),
                        secs(s.last.t_ns),
                        s.last.ttl,
                        secs(s.expires)
                    ),
                    vec![s.last.seq, attempt.first_seq()],
                ));
            } else {
                for (_, s) in standings.iter().filter(|(_, s)| s.exercised) {
                    refreshed += 1;
                    evidence.extend([s.last.seq, attempt.first_seq()]);
                }
            }
        }
        if request_judged {
            judged += 1;
        }
    }
    let figures = json!({"requests_judged": judged, "refreshed": refreshed,
        "stale": measured, "records_seen": records.len(),
        "grace": "10 % of the TTL, at least 1 s"});
    if let Some((sentence, seqs)) = bad.first() {
        let more = if bad.len() > 1 {
            format!(" ({} cases)", bad.len())
        } else {
            String::new()
        };
        return Verdict::new(
            "C2",
            level,
            Verdict::violation(level),
            format!("{sentence}{more}"),
        )
        .with_evidence(seqs.clone())
        .with_figures(figures);
    }
    if judged == 0 {
        return Verdict::new(
            "C2",
            level,
            super::Status::Inconclusive,
            "no request came after a TTL of an SRV or A answer it relied on had run out",
        )
        .with_figures(figures);
    }
    Verdict::new(
        "C2",
        level,
        super::Status::Pass,
        format!(
            "{judged} request(s) came after a TTL of an answer they relied on ran out, and each time the device had queried the name again"
        ),
    )
    .with_evidence(evidence)
    .with_figures(figures)
}
