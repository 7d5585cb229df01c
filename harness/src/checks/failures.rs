//! When attempts failed (timeout, refusal, 503 or a profile failover code), and which targets
//! were therefore dirty when: shared by the ordering, failover and dirty-host checks.

use std::net::SocketAddr;
use std::time::Duration;

use super::Context;
use super::attempts::{Attempt, AttemptEnd, Request};
use super::measure::ns;
use crate::timeline::Transport;

#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    pub key: (Transport, SocketAddr),
    pub server: String,
    /// When it failed: the refusal, the failover response, or the end of the wait for one.
    pub t_ns: u64,
    /// When the device moved on from it (its next attempt), if later than `t_ns`: a device
    /// that ignores a refusal marks the target dirty only when it gives up on it.
    pub moved_on_ns: u64,
    /// The event that shows it.
    pub seq: u64,
    /// "unanswered", "refused", "503"…
    pub how: String,
    /// How long a device avoids it: Retry-After when the response carried one, else the
    /// profile's dirty-host TTL (`None`: the profile declares none).
    pub avoid: Option<Duration>,
    /// Where it happened: request and attempt index in [`super::Context::requests`].
    pub request: usize,
    pub attempt: usize,
}

impl Failure {
    /// Whether a device may still hold the target dirty at `t_ns` because of this failure
    /// (strictly after it: an attempt is not dirty because of its own refusal). Lenient: the
    /// mark may run from the failure or from when the device moved on, whichever is later;
    /// this is the reading for "may it skip this target", and D1 uses the strict one.
    pub fn covers(&self, key: (Transport, SocketAddr), t_ns: u64) -> bool {
        self.key == key
            && t_ns > self.t_ns
            && self.lenient_until().is_some_and(|until| t_ns < until)
    }

    /// The latest end of the dirty mark a device may keep: the TTL from when it moved on.
    pub fn lenient_until(&self) -> Option<u64> {
        self.avoid
            .map(|d| self.t_ns.max(self.moved_on_ns).saturating_add(ns(d)))
    }
}

/// Whether `status` makes a device move on (503, or a code the profile declares).
pub fn is_failover_status(ctx: &Context, status: u16) -> bool {
    status == 503 || ctx.profile.failover_codes.contains(&status)
}

/// How and when `attempt` failed, if it did. An attempt without any response counts only
/// once its wait ran out (the next attempt began, or the timeline went on past the timeout).
pub fn failure_of(
    ctx: &Context,
    attempt: &Attempt,
    next: Option<&Attempt>,
    end_ns: u64,
) -> Option<(u64, u64, String)> {
    match attempt.end {
        AttemptEnd::Refused => attempt.refusal().map(|r| {
            let how = match (&attempt.handshake, attempt.dropped) {
                (Some(_), _) => "TLS handshake failed",
                (None, Some(_)) => "connection dropped",
                (None, None) => "refused",
            };
            (r.t_ns, r.seq, how.to_owned())
        }),
        AttemptEnd::Answered(status) if is_failover_status(ctx, status) => attempt
            .final_response()
            .map(|r| (r.t_ns, r.seq, status.to_string())),
        AttemptEnd::Unanswered if attempt.responses.is_empty() => {
            let deadline = attempt.first_sent().saturating_add(ns(ctx.timeout()));
            match next {
                Some(next) => Some((
                    next.first_sent().min(deadline),
                    next.first_seq(),
                    "unanswered".to_owned(),
                )),
                None if end_ns >= deadline => Some((
                    deadline,
                    attempt.sends.last().map_or(0, |s| s.seq),
                    "unanswered".to_owned(),
                )),
                None => None,
            }
        }
        _ => None,
    }
}

/// Every failure on the timeline, in time order.
pub fn failures(ctx: &Context, requests: &[Request]) -> Vec<Failure> {
    let end_ns = ctx.end_ns();
    let mut out = Vec::new();
    for (r, request) in requests.iter().enumerate() {
        for (a, attempt) in request.attempts.iter().enumerate() {
            let next = request.attempts.get(a + 1);
            let Some((t_ns, seq, how)) = failure_of(ctx, attempt, next, end_ns) else {
                continue;
            };
            let retry_after = attempt
                .final_response()
                .and_then(|r| r.retry_after)
                .map(|s| Duration::from_secs(u64::from(s)));
            out.push(Failure {
                key: attempt.target_key(),
                server: attempt.server.clone(),
                t_ns,
                moved_on_ns: next.map_or(t_ns, |n| n.first_sent().max(t_ns)),
                seq,
                how,
                avoid: retry_after.or(ctx.profile.dirty_host_ttl),
                request: r,
                attempt: a,
            });
        }
    }
    out.sort_by_key(|f| (f.t_ns, f.seq));
    out
}

/// Whether some failure makes `key` dirty at `t_ns`.
pub fn is_dirty(failures: &[Failure], key: (Transport, SocketAddr), t_ns: u64) -> bool {
    failures.iter().any(|f| f.covers(key, t_ns))
}

/// Whether every address of an SRV record is dirty at `t_ns` (over the record's transport,
/// or over either when its owner names none).
pub fn srv_is_dirty(failures: &[Failure], srv: &super::targets::SrvTarget, t_ns: u64) -> bool {
    let transports = match srv.transport {
        Some(t) => vec![t],
        None => vec![Transport::Udp, Transport::Tcp, Transport::Tls],
    };
    !srv.addresses.is_empty()
        && srv.addresses.iter().all(|ip| {
            transports
                .iter()
                .any(|t| is_dirty(failures, (*t, SocketAddr::new(*ip, srv.port)), t_ns))
        })
}
