//! C3: whether the device reuses DNS answers at all, and whether it caches negative answers
//! (NXDOMAIN, NODATA) for their negative TTL, min(SOA TTL, SOA MINIMUM) (RFC 2308 §5).
//! Informational: a device need not cache (C2 only forbids using an answer past its TTL).
//!
//! Requests to the same URI resolve the same way, so the lookups one such request made are the
//! ones a later one needs again: the NAPTR and SRV names of the URI's domain and the domain's
//! own A/AAAA (the addresses of SRV targets are left out, since a weighted draw may pick
//! another target the next time). For each later request and each such name, the last answer
//! before it is either reused (not asked again while its TTL ran), asked again while it was
//! still fresh (not cached), or asked again after it expired. Times within 10 % of the TTL
//! (at least 2 ms) are not read either way.
//!
//! The timeline cannot tell two devices apart: a case whose steps make a fresh device per
//! trial reads as one device that does not cache.

use std::collections::BTreeMap;
use std::time::Duration;

use hickory_server::proto::op::Message;
use hickory_server::proto::rr::{Name, RData};
use serde_json::json;

use super::Context;
use super::lookups::{Located, Query, Reply, domain_of, located, name_of, reply_to};
use super::measure::{ns, tolerance};
use super::verdict::{Level, Status, Verdict};

/// One answer as the device got it.
#[derive(Clone, Debug)]
struct Got {
    seq: u64,
    t_ns: u64,
    /// "NXDOMAIN" or "NODATA" for a negative answer.
    negative: Option<&'static str>,
    /// How long it may be cached: the smallest record TTL, or the negative TTL.
    ttl: u32,
}

/// What became of an answer when a later request needed the name again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    Reused,
    AskedWhileFresh,
    AskedAfterExpiry,
    NotAskedAfterExpiry,
}

/// Counts per fate, for positive or negative answers.
#[derive(Clone, Debug, Default)]
struct Tally {
    reused: usize,
    asked_fresh: usize,
    asked_expired: usize,
    not_asked_expired: usize,
    ttls: Vec<u32>,
}

impl Tally {
    fn add(&mut self, fate: Fate, ttl: u32) {
        match fate {
            Fate::Reused => self.reused += 1,
            Fate::AskedWhileFresh => self.asked_fresh += 1,
            Fate::AskedAfterExpiry => self.asked_expired += 1,
            Fate::NotAskedAfterExpiry => self.not_asked_expired += 1,
        }
        if !self.ttls.contains(&ttl) {
            self.ttls.push(ttl);
        }
    }

    fn total(&self) -> usize {
        self.reused + self.asked_fresh + self.asked_expired + self.not_asked_expired
    }

    fn ttl_text(&self) -> String {
        let mut ttls = self.ttls.clone();
        ttls.sort_unstable();
        ttls.iter()
            .map(|t| format!("{t} s"))
            .collect::<Vec<_>>()
            .join("/")
    }

    /// `cached for their TTL (300 s): reused 2 time(s)` and the like.
    fn reading(&self, what: &str, ttl_word: &str) -> String {
        let ttl = self.ttl_text();
        let mut text = match (self.reused, self.asked_fresh) {
            (0, 0) => format!("{what}: no later request came within their {ttl_word} ({ttl})"),
            (reused, 0) => format!(
                "{what} cached for their {ttl_word} ({ttl}): reused {reused} time(s) without a query"
            ),
            (0, fresh) => format!(
                "{what} not cached: asked again {fresh} time(s) while their {ttl_word} ({ttl}) still ran"
            ),
            (reused, fresh) => format!(
                "{what} partly cached: reused {reused} time(s), asked again {fresh} time(s) while their {ttl_word} ({ttl}) still ran"
            ),
        };
        if self.asked_expired > 0 {
            text.push_str(&format!(
                ", asked again {} time(s) after it ran out",
                self.asked_expired
            ));
        }
        if self.not_asked_expired > 0 {
            text.push_str(&format!(
                ", not asked again {} time(s) after it ran out",
                self.not_asked_expired
            ));
        }
        text
    }
}

/// The negative TTL of a negative answer: from the SOA the device received, else from the zone.
fn negative_ttl(ctx: &Context, name: &Name, raw: &[u8]) -> Option<u32> {
    let received = Message::from_vec(raw).ok().and_then(|m| {
        m.authorities.iter().find_map(|r| match &r.data {
            RData::SOA(soa) => Some(r.ttl.min(soa.minimum)),
            _ => None,
        })
    });
    received.or_else(|| {
        ctx.zones
            .zone_for(name)
            .map(|zone| zone.ttl.min(zone.negative_ttl))
    })
}

/// The answer to `query`, if it was one the device could cache.
fn got(ctx: &Context, query: &Query) -> Option<Got> {
    let Reply::Answered { seq, t_ns, answer } = reply_to(ctx, query) else {
        return None;
    };
    let name = name_of(&answer.name)?;
    let negative = match answer.rcode.to_ascii_uppercase().as_str() {
        "NXDOMAIN" => Some("NXDOMAIN"),
        "NOERROR" if answer.answers.is_empty() => Some("NODATA"),
        "NOERROR" => None,
        // SERVFAIL, REFUSED…: failures, which RFC 2308 §7 caching is not about.
        _ => return None,
    };
    let ttl = match negative {
        Some(_) => negative_ttl(ctx, &name, &answer.raw)?,
        // `owner TTL [class] TYPE data`: the smallest TTL of the answer section.
        None => answer
            .answers
            .iter()
            .filter_map(|r| r.split_whitespace().nth(1)?.parse::<u32>().ok())
            .min()?,
    };
    Some(Got {
        seq,
        t_ns,
        negative,
        ttl,
    })
}

/// The lookups of `located` that a later request to the same URI needs again.
fn repeatable<'a>(located: &Located<'a>, domain: &Name) -> Vec<Query<'a>> {
    located
        .queries
        .iter()
        .filter(|q| {
            let Some(name) = name_of(&q.2.name) else {
                return false;
            };
            match q.2.qtype.to_ascii_uppercase().as_str() {
                "NAPTR" | "SRV" => domain_of(&name) == *domain,
                "A" | "AAAA" => name == *domain,
                _ => false,
            }
        })
        .copied()
        .collect()
}

type Key = (Name, String);

fn key_of(query: &Query) -> Option<Key> {
    Some((name_of(&query.2.name)?, query.2.qtype.to_ascii_uppercase()))
}

/// C3 (INFO): whether answers, positive and negative, were reused by later requests to the
/// same URI, counted per name.
pub fn c3(ctx: &Context) -> Verdict {
    let level = Level::Info;
    let all = located(ctx);
    // Requests grouped by what decides their lookups: scheme, domain, port, transport.
    let mut routes: BTreeMap<String, Vec<&Located>> = BTreeMap::new();
    for l in &all {
        if let Some(domain) = l.uri.domain() {
            let route = format!(
                "{:?} {domain} {:?} {:?}",
                l.uri.scheme, l.uri.port, l.uri.transport
            );
            routes.entry(route).or_default().push(l);
        }
    }
    let mut positive = Tally::default();
    let mut negative = Tally::default();
    let mut evidence: Vec<u64> = Vec::new();
    let mut per_name: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    let mut repeated_requests = 0usize;
    let mut query_count = 0usize;
    for group in routes.values() {
        let Some(domain) = group[0].uri.domain() else {
            continue;
        };
        // Every answered lookup so far, per name and type, in time order.
        let mut answers: BTreeMap<Key, Vec<Got>> = BTreeMap::new();
        for (i, later) in group.iter().enumerate() {
            let mine = repeatable(later, domain);
            query_count += mine.len();
            if i > 0 && !answers.is_empty() {
                repeated_requests += 1;
            }
            for (key, earlier) in &answers {
                let Some(prev) = earlier.last() else {
                    continue;
                };
                let asked = mine.iter().find(|q| key_of(q).as_ref() == Some(key));
                let at = asked.map_or(later.request.start(), |q| q.1);
                let grace = ns(tolerance(Duration::from_secs(u64::from(prev.ttl))));
                let expires = prev
                    .t_ns
                    .saturating_add(u64::from(prev.ttl).saturating_mul(1_000_000_000));
                let fate = if at.saturating_add(grace) < expires {
                    if asked.is_some() {
                        Fate::AskedWhileFresh
                    } else {
                        Fate::Reused
                    }
                } else if at > expires.saturating_add(grace) {
                    if asked.is_some() {
                        Fate::AskedAfterExpiry
                    } else {
                        Fate::NotAskedAfterExpiry
                    }
                } else {
                    continue;
                };
                let tally = if prev.negative.is_some() {
                    &mut negative
                } else {
                    &mut positive
                };
                tally.add(fate, prev.ttl);
                evidence.push(prev.seq);
                evidence.extend(asked.map(|q| q.0));
                let label = format!("{} {}", key.1, key.0);
                let entry = per_name.entry(label).or_insert_with(|| {
                    json!({"answer": prev.negative.unwrap_or("records"), "ttl_s": prev.ttl,
                        "reused": 0, "asked_while_fresh": 0, "asked_after_expiry": 0,
                        "not_asked_after_expiry": 0})
                });
                let field = match fate {
                    Fate::Reused => "reused",
                    Fate::AskedWhileFresh => "asked_while_fresh",
                    Fate::AskedAfterExpiry => "asked_after_expiry",
                    Fate::NotAskedAfterExpiry => "not_asked_after_expiry",
                };
                entry[field] = json!(entry[field].as_u64().unwrap_or(0) + 1);
            }
            for query in &mine {
                if let (Some(key), Some(answer)) = (key_of(query), got(ctx, query)) {
                    answers.entry(key).or_default().push(answer);
                }
            }
        }
    }
    let figures = json!({
        "requests": all.len(),
        "repeated_requests": repeated_requests,
        "queries": query_count,
        "names": per_name,
        "positive": {"reused": positive.reused, "asked_while_fresh": positive.asked_fresh,
            "asked_after_expiry": positive.asked_expired, "not_asked_after_expiry": positive.not_asked_expired},
        "negative": {"reused": negative.reused, "asked_while_fresh": negative.asked_fresh,
            "asked_after_expiry": negative.asked_expired, "not_asked_after_expiry": negative.not_asked_expired},
        "edge": "answers needed within 10 % (at least 2 ms) of their TTL's end are not counted",
    });
    if positive.total() + negative.total() == 0 {
        return Verdict::new(
            "C3",
            level,
            Status::Inconclusive,
            format!(
                "{} request(s) whose URI the timeline shows; none needed again a name an earlier request to the same URI had looked up",
                all.len()
            ),
        )
        .with_figures(figures);
    }
    let negative_text = if negative.total() == 0 {
        "no negative answer was needed again".to_owned()
    } else {
        negative.reading("NXDOMAIN/NODATA", "negative TTL")
    };
    let positive_text = if positive.total() == 0 {
        "no positive answer was needed again".to_owned()
    } else {
        positive.reading("answers", "TTL")
    };
    Verdict::new(
        "C3",
        level,
        Status::Info,
        format!(
            "{} requests, {query_count} lookups of their URIs' names: {positive_text}; {negative_text}",
            all.len()
        ),
    )
    .with_evidence(evidence)
    .with_figures(figures)
}
