//! Registration and stickiness (CONFORMANCE D4–D6): D4 refreshes go to the registrar, D5 no
//! re-REGISTER right after a registration failed at every target, D6 whether other requests
//! stay with the registrar.
//!
//! The **registrar** is the server a REGISTER got a 2xx from; a **refresh** is a later REGISTER,
//! held to the last registration with its Call-ID (RFC 3261 §10.2.4: one Call-ID per boot
//! cycle), else to the last registration of all. The fresh devices of `trials` cannot be told
//! apart from one device that changes its Call-ID: a case that registers in trials should not
//! ask for D4 or D5.
//!
//! Levels follow the checklist (D4, D5 SHOULD; D6 INFO) unless the profile declares the
//! behaviour, which makes it a claim judged as PROFILE:
//! - D4: Yealink/Polycom `failback_mode: duration` (within `failback_timeout`) and `dns_ttl`
//!   (while the registrar's address record lives) say requests stay with the registrar.
//!   `new_requests` and `registration` send renewals back to the top of the list: D4 stays a
//!   SHOULD the device knowingly does not follow, and its sentence says so.
//! - D5: Snom's `retry_after_failed_register` (±10 % random) when it asks for more than the
//!   checklist's 1 s; the earlier bound of the two is what a device must keep.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_server::proto::rr::{Name, RecordType};
use serde_json::json;

use super::Context;
use super::attempts::{Attempt, Request, asked_left_out};
use super::failover::left_over;
use super::failures::{Failure, failure_of, failures, is_dirty, is_failover_status};
use super::measure::{FLOOR, duration, ns, secs};
use super::resolution::resolved_set;
use super::targets::srv_records;
use super::verdict::{Findings, Level, Status, Verdict};
use super::weights::first_choice_probabilities;
use crate::model::duration::DurationSpec;
use crate::model::profile::FailbackMode;
use crate::timeline::{EventKind, Transport};

/// The checklist's "immediately" (D5).
const AT_ONCE: Duration = Duration::from_secs(1);

/// One successful registration.
#[derive(Clone, Debug)]
struct Registration {
    call_id: Option<String>,
    key: (Transport, SocketAddr),
    server: String,
    describe: String,
    /// The 2xx.
    t_ns: u64,
    seq: u64,
    /// When this registrar took over: the first of an unbroken run of successes there.
    since_ns: u64,
}

/// Every REGISTER that got a 2xx, in time order.
fn registrations(requests: &[Request]) -> Vec<Registration> {
    let mut found: Vec<Registration> = Vec::new();
    let mut attempts: Vec<&Attempt> = requests
        .iter()
        .flat_map(|r| &r.attempts)
        .filter(|a| a.method == "REGISTER")
        .collect();
    attempts.sort_by_key(|a| (a.first_sent(), a.first_seq()));
    for attempt in attempts {
        let Some(ok) = attempt
            .final_response()
            .filter(|r| (200..300).contains(&r.status))
        else {
            continue;
        };
        let previous = found.iter().rev().find(|r| r.call_id == attempt.call_id);
        let since_ns = match previous {
            Some(p) if p.key == attempt.target_key() => p.since_ns,
            _ => ok.t_ns,
        };
        found.push(Registration {
            call_id: attempt.call_id.clone(),
            key: attempt.target_key(),
            server: attempt.server.clone(),
            describe: attempt.describe(),
            t_ns: ok.t_ns,
            seq: ok.seq,
            since_ns,
        });
    }
    found
}

/// The registration in force at `t_ns` (the last success before it), of `call_id` when given.
fn registrar_at<'a>(
    all: &'a [Registration],
    call_id: Option<&Option<String>>,
    t_ns: u64,
) -> Option<&'a Registration> {
    all.iter()
        .rev()
        .filter(|r| call_id.is_none_or(|c| r.call_id == *c))
        .find(|r| r.t_ns < t_ns)
}

/// What the profile's failback mode says about requests after a registration.
fn failback(ctx: &Context) -> String {
    match ctx.profile.failback_mode {
        None => String::new(),
        Some(FailbackMode::Duration) => format!(
            "; the profile declares failback_mode duration ({}): requests stay with the registrar",
            ctx.profile
                .failback_window()
                .map_or("until it fails".to_owned(), |w| format!(
                    "failback_timeout {}",
                    DurationSpec(w)
                ))
        ),
        Some(FailbackMode::DnsTtl) => {
            "; the profile declares failback_mode dns_ttl: requests stay with the registrar while its address record lives".to_owned()
        }
        Some(FailbackMode::Registration) => {
            "; the profile declares failback_mode registration: calls stay with the registrar, renewals go back to the top of the list".to_owned()
        }
        Some(FailbackMode::NewRequests) => {
            "; the profile declares failback_mode new_requests: every request draws anew".to_owned()
        }
    }
}

/// Until when the device claims to stay with `registration`'s server (`None`: no claim; `Some(None)`: for good).
fn claimed_until(ctx: &Context, registration: &Registration) -> Option<Option<u64>> {
    match ctx.profile.failback_mode? {
        FailbackMode::Duration => Some(
            ctx.profile
                .failback_window()
                .map(|w| registration.since_ns.saturating_add(ns(w))),
        ),
        FailbackMode::DnsTtl => Some(Some(address_expiry(ctx, registration)?)),
        FailbackMode::NewRequests | FailbackMode::Registration => None,
    }
}

/// When the registrar's address, as last looked up before the registration, expired: the last
/// query for its name (or for an SRV name whose answer carries it) plus the zone's TTL of its
/// address records.
fn address_expiry(ctx: &Context, registration: &Registration) -> Option<u64> {
    let host = Name::from_ascii(&registration.server).ok()?;
    let ttl = ctx
        .zones
        .records_at(&host, RecordType::A)
        .chain(ctx.zones.records_at(&host, RecordType::AAAA))
        .map(|r| r.ttl)
        .min()?;
    let leads_to_host = |name: &str| {
        let Ok(name) = Name::from_ascii(name) else {
            return false;
        };
        name == host
            || srv_records(ctx.zones, &name)
                .iter()
                .any(|r| r.target == host)
    };
    let queried = ctx
        .events
        .iter()
        .filter(|e| e.t_ns <= registration.t_ns)
        .filter_map(|e| match &e.kind {
            EventKind::DnsQuery(q) if leads_to_host(&q.name) => Some(e.t_ns),
            _ => None,
        })
        .max()?;
    Some(queried.saturating_add(ns(Duration::from_secs(u64::from(ttl)))))
}

/// D4 (SHOULD, or PROFILE when the failback mode claims it): a registration refresh goes first
/// to the address the last registration succeeded with. A refresh while the registrar is
/// known to have failed (dirty) may go elsewhere and is not judged.
pub fn d4(ctx: &Context) -> Verdict {
    let requests = ctx.requests();
    let all = failures(ctx, &requests);
    let done = registrations(&requests);
    let claimed = matches!(
        ctx.profile.failback_mode,
        Some(FailbackMode::Duration | FailbackMode::DnsTtl)
    );
    let level = if claimed {
        Level::Profile
    } else {
        Level::Should
    };
    let declared = failback(ctx);
    let mut found = Findings::default();
    let mut registrar_failed = 0usize;
    let mut outside_claim = 0usize;
    // A REGISTER srvlab asked for is no refresh: the device may register afresh when told to.
    let mut asked = 0usize;
    for request in requests.iter().filter(|r| r.method == "REGISTER") {
        let Some(first) = request.attempts.first() else {
            continue;
        };
        let t = first.first_sent();
        // A device that changes its Call-ID for a refresh (RFC 3261 §10.2.4 asks it not to) is
        // held to its latest registration.
        let Some(registrar) =
            registrar_at(&done, Some(&first.call_id), t).or_else(|| registrar_at(&done, None, t))
        else {
            continue;
        };
        if request.asked.is_some() {
            asked += 1;
            continue;
        }
        if is_dirty(&all, registrar.key, t) {
            registrar_failed += 1;
            continue;
        }
        if claimed {
            match claimed_until(ctx, registrar) {
                Some(Some(until)) if t >= until => {
                    outside_claim += 1;
                    continue;
                }
                Some(_) => {}
                None => {
                    outside_claim += 1;
                    continue;
                }
            }
        }
        found.judged += 1;
        found.measured.push(
            json!({"refresh_at_ms": t as f64 / 1e6, "to": first.describe(),
            "registrar": registrar.describe}),
        );
        if first.target_key() == registrar.key {
            found.evidence.extend([registrar.seq, first.first_seq()]);
        } else {
            found.bad.push((
                format!(
                    "the REGISTER refresh at {} went to {}, not to the registrar {} (registered there at {}){declared}",
                    secs(t),
                    first.describe(),
                    registrar.describe,
                    secs(registrar.t_ns)
                ),
                vec![registrar.seq, first.first_seq()],
            ));
        }
    }
    let pass = format!(
        "{} REGISTER refresh(es) went first to the address of the last successful registration{declared}",
        found.judged
    );
    let mut left_out = Vec::new();
    if registrar_failed > 0 {
        left_out.push(format!(
            "{registrar_failed} came after the registrar failed"
        ));
    }
    if outside_claim > 0 {
        left_out.push(format!(
            "{outside_claim} came outside the declared failback window"
        ));
    }
    let unexercised = if left_out.is_empty() && asked > 0 {
        "no REGISTER refresh of the device's own followed a successful registration".to_owned()
    } else if left_out.is_empty() {
        "no REGISTER refresh followed a successful registration".to_owned()
    } else {
        format!(
            "no REGISTER refresh could be judged: {}",
            left_out.join(", ")
        )
    };
    found.left_out.extend(asked_left_out(asked, "REGISTER"));
    found.verdict(
        "D4",
        level,
        pass,
        &unexercised,
        json!({"failback_mode": ctx.profile.failback_mode.map(FailbackMode::name),
            "refreshes_after_registrar_failed": registrar_failed,
            "refreshes_outside_declared_window": outside_claim,
            "registers_srvlab_asked_for": asked}),
    )
}

/// D5 (SHOULD; PROFILE under a declared retry time): after a registration failed at every
/// target, the next REGISTER of the same device does not come within 1 s — nor before the
/// retry time the profile declares, less its 10 % spread. A REGISTER srvlab's trigger asked
/// for is not the device's retry: the watch of that registration ends when srvlab asked
/// (judged only if the device had kept quiet long enough by then).
///
/// REGISTER attempts are read in time order: a registration failed everywhere when its last
/// attempt failed and nothing was left to try, or when the next REGISTER goes to a target
/// already tried, carries another Call-ID or begins another step of the case. (So the fresh
/// devices of `trials` would read as one: a case that registers in trials should not ask for
/// D5.) The gap is measured from that
/// last failure (the refusal, the failover response, or the end of Timer F) to the next
/// REGISTER; a run that went on long enough without one also keeps the rule.
pub fn d5(ctx: &Context) -> Verdict {
    let requests = ctx.requests();
    let all = failures(ctx, &requests);
    let end_ns = ctx.end_ns();
    let declared = ctx.profile.retry_after_failed_register;
    let claim_min = declared.map(|r| r.mul_f64(0.9).saturating_sub(FLOOR));
    let (level, min, rule) = match (declared, claim_min) {
        (Some(r), Some(min)) if min > AT_ONCE => (
            Level::Profile,
            min,
            format!(
                "the profile declares retry_after_failed_register {} ± 10 %",
                DurationSpec(r)
            ),
        ),
        _ => (
            Level::Should,
            AT_ONCE,
            format!(
                "expected none within {}{}",
                secs(ns(AT_ONCE)),
                declared
                    .map(|r| format!(
                        " (the profile's retry_after_failed_register {} is shorter)",
                        DurationSpec(r)
                    ))
                    .unwrap_or_default()
            ),
        ),
    };
    let mut found = Findings::default();
    // Every REGISTER attempt in time order, whatever its Call-ID: a device that re-registers
    // with a new Call-ID re-registers all the same.
    let mut order: Vec<(usize, usize)> = requests
        .iter()
        .enumerate()
        .filter(|(_, r)| r.method == "REGISTER")
        .flat_map(|(ri, r)| (0..r.attempts.len()).map(move |ai| (ri, ai)))
        .collect();
    order.sort_by_key(|&(ri, ai)| {
        let a = &requests[ri].attempts[ai];
        (a.first_sent(), a.first_seq())
    });
    let attempt = |(ri, ai): (usize, usize)| &requests[ri].attempts[ai];
    // A round whose last attempt failed with no target left, followed by at least `min` of
    // quiet until `until` (srvlab's next REGISTER, or the end of the run), keeps the rule.
    let quiet_until = |found: &mut Findings, round: &[(usize, usize)], until: u64| {
        let Some(&last) = round.last() else { return };
        if let Some((failed_at, seq, _)) = failure_of(ctx, attempt(last), None, until)
            && left_over(ctx, &requests[last.0], &all, failed_at).is_empty()
            && until.saturating_sub(failed_at) >= ns(min)
        {
            judge_gap(
                found,
                round.iter().map(|&k| attempt(k).describe()).collect(),
                (failed_at, seq),
                None,
                (min, &rule),
            );
        }
    };
    // The REGISTERs srvlab asked for that came after an unfinished or failed registration.
    let mut asked = 0usize;
    let mut round: Vec<(usize, usize)> = Vec::new();
    for &here in &order {
        let next = attempt(here);
        let asked_for = requests[here.0].asked.is_some() && here.1 == 0;
        if let Some(&last) = round.last() {
            let previous = attempt(last);
            let completed = previous
                .final_response()
                .is_some_and(|r| !is_failover_status(ctx, r.status));
            // Another request (a step began, another Call-ID) or a target tried already: the
            // registration starts over.
            let new_round = completed
                || last.0 != here.0
                || round
                    .iter()
                    .any(|&tried| attempt(tried).target_key() == next.target_key());
            if new_round {
                if !completed && asked_for {
                    asked += 1;
                    // Watched until srvlab asked.
                    quiet_until(&mut found, &round, next.first_sent());
                } else if !completed
                    && let Some((failed_at, seq, _)) = failure_of(ctx, previous, Some(next), end_ns)
                {
                    judge_gap(
                        &mut found,
                        round.iter().map(|&k| attempt(k).describe()).collect(),
                        (failed_at, seq),
                        Some(next),
                        (min, &rule),
                    );
                }
                round.clear();
            }
        }
        round.push(here);
    }
    // The last registration, if it failed with nothing left, and the run went on.
    quiet_until(&mut found, &round, end_ns);
    let gaps: Vec<f64> = found
        .measured
        .iter()
        .filter_map(|m| m["gap_ms"].as_f64())
        .collect();
    let shortest = match gaps.iter().copied().reduce(f64::min) {
        Some(ms) if gaps.len() == 1 => {
            format!("; the next REGISTER waited {}", duration((ms * 1e6) as u64))
        }
        Some(ms) => format!(
            "; the shortest wait for the next REGISTER was {}",
            duration((ms * 1e6) as u64)
        ),
        None => String::new(),
    };
    let pass = format!(
        "after {} registration(s) failed at every target, no REGISTER followed within {}{shortest} ({rule})",
        found.judged,
        secs(ns(min))
    );
    let unexercised = if asked > 0 {
        format!(
            "no registration failed at every target and then left the device to itself for {}: srvlab's trigger asked for the next REGISTER sooner",
            secs(ns(min))
        )
    } else {
        "no registration failed at every target (or the run ended before the next REGISTER was due)"
            .to_owned()
    };
    found.left_out.extend(asked_left_out(asked, "REGISTER"));
    found.verdict(
        "D5",
        level,
        pass,
        &unexercised,
        json!({"declared_retry_ms": declared.map(|d| ns(d) as f64 / 1e6),
            "minimum_gap_ms": ns(min) as f64 / 1e6}),
    )
}

/// One failed registration: the gap to the next REGISTER (`None`: none of the device's own
/// by the end of the run, or by when srvlab's trigger asked for one, which came after `min`).
fn judge_gap(
    found: &mut Findings,
    tried: Vec<String>,
    (failed_at, seq): (u64, u64),
    next: Option<&Attempt>,
    (min, rule): (Duration, &str),
) {
    found.judged += 1;
    let Some(next) = next else {
        found
            .measured
            .push(json!({"failed_at_ms": failed_at as f64 / 1e6,
            "tried": tried, "next_register": null}));
        found.evidence.push(seq);
        return;
    };
    let gap = next.first_sent().saturating_sub(failed_at);
    found.measured.push(
        json!({"failed_at_ms": failed_at as f64 / 1e6, "tried": tried,
        "gap_ms": gap as f64 / 1e6}),
    );
    if gap < ns(min) {
        found.bad.push((
            format!(
                "REGISTER went out again {} after the registration failed at every target ({}) at {}; {rule}",
                duration(gap),
                tried.join(", "),
                secs(failed_at)
            ),
            vec![seq, next.first_seq()],
        ));
    } else {
        found.evidence.extend([seq, next.first_seq()]);
    }
}

/// The chance a fresh draw puts `key` first among what `request` resolved (its best priority
/// group's weights); 0 when it is not in that group.
fn fresh_chance(ctx: &Context, request: &Request, key: (Transport, SocketAddr)) -> Option<f64> {
    let first = request.attempts.first()?;
    let records = resolved_set(ctx, first)?;
    let best = records.iter().map(|r| r.priority).min()?;
    let group: Vec<_> = records.iter().filter(|r| r.priority == best).collect();
    let weights: Vec<u16> = group.iter().map(|r| r.weight).collect();
    let chances = first_choice_probabilities(&weights);
    let index = group.iter().position(|r| {
        r.addresses.contains(&key.1.ip())
            && r.port == key.1.port()
            && r.transport.is_none_or(|t| t == key.0)
    });
    Some(index.and_then(|i| chances.get(i).copied()).unwrap_or(0.0))
}

/// The target host of the first record of the last SRV answer with records at or before
/// `t_ns`: what a device that takes the first record would have chosen.
fn first_srv_record_before(ctx: &Context, t_ns: u64) -> Option<String> {
    ctx.events
        .iter()
        .rev()
        .filter(|e| e.t_ns <= t_ns)
        .find_map(|e| match &e.kind {
            EventKind::DnsAnswer(a) if a.qtype.eq_ignore_ascii_case("SRV") => {
                let first = a.answers.first()?;
                // `_sip._udp.x. 300 IN SRV 1 50 5060 target.x.`: the target is the last field.
                first.split_whitespace().last().map(str::to_owned)
            }
            _ => None,
        })
}

/// Whether two host names are the same (case and the root's dot aside).
fn same_host(a: &str, b: &str) -> bool {
    a.trim_end_matches('.')
        .eq_ignore_ascii_case(b.trim_end_matches('.'))
}

/// D6 (INFO): whether INVITEs and OPTIONS after a registration go first to the registrar or
/// draw anew. Requests while the registrar is known to have failed are left out. When every
/// request went to the registrar, the chance a fresh draw would have done the same says
/// whether that tells anything.
pub fn d6(ctx: &Context) -> Verdict {
    let requests = ctx.requests();
    let all: Vec<Failure> = failures(ctx, &requests);
    let done = registrations(&requests);
    let mut judged = 0usize;
    let mut stuck = 0usize;
    // Against the order of the SRV answer each request followed: a device that always takes
    // the first record looks sticky whenever the registrar is that record (issue 14).
    let mut answer_known = 0usize;
    let mut to_first_record = 0usize;
    let mut registrar_first = 0usize;
    let mut chance_all = 1.0f64;
    let mut expected = 0.0f64;
    let mut evidence = Vec::new();
    let mut elsewhere = Vec::new();
    let mut registrars: Vec<String> = Vec::new();
    for request in requests
        .iter()
        .filter(|r| r.opening && matches!(r.method.as_str(), "INVITE" | "OPTIONS"))
    {
        let Some(first) = request.attempts.first() else {
            continue;
        };
        let t = first.first_sent();
        let Some(registrar) = registrar_at(&done, None, t) else {
            continue;
        };
        if is_dirty(&all, registrar.key, t) {
            continue;
        }
        judged += 1;
        if !registrars.contains(&registrar.describe) {
            registrars.push(registrar.describe.clone());
        }
        let p = fresh_chance(ctx, request, registrar.key).unwrap_or(1.0);
        expected += p;
        evidence.push(first.first_seq());
        if let Some(top) = first_srv_record_before(ctx, t) {
            answer_known += 1;
            if same_host(&top, &first.server) {
                to_first_record += 1;
            }
            if same_host(&top, &registrar.server) {
                registrar_first += 1;
            }
        }
        if first.target_key() == registrar.key {
            stuck += 1;
            chance_all *= p;
        } else {
            elsewhere.push(first.describe());
        }
    }
    let figures = json!({"judged": judged, "to_registrar": stuck,
        "to_first_srv_record": to_first_record, "registrar_was_first_record": registrar_first,
        "expected_by_fresh_draws": expected, "elsewhere": elsewhere,
        "failback_mode": ctx.profile.failback_mode.map(FailbackMode::name)});
    if judged == 0 {
        return Verdict::new(
            "D6",
            Level::Info,
            Status::Inconclusive,
            "no INVITE or OPTIONS followed a successful registration while the registrar was known good",
        )
        .with_figures(figures);
    }
    let every_answer = answer_known == judged;
    let reading = if every_answer && to_first_record == judged && registrar_first < judged {
        format!(
            "every one went to the first SRV record of the answer it followed, also where the registrar was not that record ({} of {judged}): the device follows the answer's order, not the registrar or the weights",
            judged - registrar_first
        )
    } else if stuck == judged && every_answer && registrar_first == judged {
        "but the registrar was also the first SRV record of every answer, so sticking to it cannot be told from always taking the first record (serve the records in another order to tell)".to_owned()
    } else if stuck < judged {
        "they draw anew".to_owned()
    } else if chance_all < 0.01 {
        format!(
            "they stick to the registrar (fresh draws would all have gone there with probability {:.2} %)",
            chance_all * 100.0
        )
    } else {
        format!(
            "that tells nothing: fresh draws would all have gone there with probability {:.0} %",
            chance_all * 100.0
        )
    };
    Verdict::new(
        "D6",
        Level::Info,
        Status::Info,
        format!(
            "after registering with {}, {stuck} of {judged} INVITE/OPTIONS went first to the registrar (fresh draws: {expected:.1} expected): {reading}{}",
            registrars.join(", then "),
            failback(ctx)
        ),
    )
    .with_evidence(evidence)
    .with_figures(figures)
}
