//! Dirty hosts (D1–D3): targets that failed recently and are avoided for a while, keyed by
//! transport, address and port (D3's finest scope).
//!
//! Two ways in: [`DirtyHosts::mark`] after a timeout, refusal or failover response, for the
//! configured dirty-host TTL (Snom `dirty_host_ttl`), which the faults `no-dirty-host` and
//! `dirty-host-forever` bend; and [`DirtyHosts::mark_for`] for a 503's Retry-After (F5), which
//! no fault touches, so that a fault of D1 does not also break F5.
//!
//! A mark never shortens an earlier one: a server that asked for 120 s of peace with
//! Retry-After keeps it even if a later timeout's TTL is 30 s.

use std::collections::HashMap;
use std::time::Duration;

use super::fault::{Fault, Faults};
use super::target::TargetKey;

/// Until when a target is avoided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DirtyUntil {
    /// Avoided while `now` is before this instant (time since the UA started).
    At(Duration),
    /// Never tried again first (fault `dirty-host-forever`).
    Forever,
}

impl DirtyUntil {
    fn later(self, other: Self) -> Self {
        match (self, other) {
            (Self::At(a), Self::At(b)) => Self::At(a.max(b)),
            _ => Self::Forever,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct DirtyHosts {
    marks: HashMap<TargetKey, DirtyUntil>,
}

impl DirtyHosts {
    pub fn new() -> Self {
        Self::default()
    }

    /// `key` failed at `now`: avoid it for `ttl` (D1). No mark when `ttl` is `None` (the UA
    /// keeps no dirty hosts) or with fault `no-dirty-host`; a mark that never ends with fault
    /// `dirty-host-forever`.
    pub fn mark(&mut self, key: TargetKey, now: Duration, ttl: Option<Duration>, faults: &Faults) {
        if faults.has(Fault::NoDirtyHost) {
            return;
        }
        let Some(ttl) = ttl else { return };
        let until = if faults.has(Fault::DirtyHostForever) {
            DirtyUntil::Forever
        } else {
            DirtyUntil::At(now.saturating_add(ttl))
        };
        self.add(key, until);
    }

    /// `key` answered 503 with Retry-After `duration` at `now`: no request to it before then
    /// (F5).
    pub fn mark_for(&mut self, key: TargetKey, now: Duration, duration: Duration) {
        self.add(key, DirtyUntil::At(now.saturating_add(duration)));
    }

    /// Whether `key` is to be avoided at `now`; a mark ends exactly at its instant.
    pub fn is_dirty(&self, key: TargetKey, now: Duration) -> bool {
        match self.marks.get(&key) {
            None => false,
            Some(DirtyUntil::Forever) => true,
            Some(DirtyUntil::At(until)) => now < *until,
        }
    }

    /// The mark of `key` as stored (`None`: never marked, or pruned). An `At` instant may lie
    /// in the past; [`is_dirty`](Self::is_dirty) answers for a given time.
    pub fn until(&self, key: TargetKey) -> Option<DirtyUntil> {
        self.marks.get(&key).copied()
    }

    /// Forgets the marks that ended by `now`, so a long run does not keep them all.
    pub fn prune(&mut self, now: Duration) {
        self.marks.retain(|_, until| match until {
            DirtyUntil::Forever => true,
            DirtyUntil::At(at) => now < *at,
        });
    }

    fn add(&mut self, key: TargetKey, until: DirtyUntil) {
        let until = match self.marks.get(&key) {
            Some(old) => old.later(until),
            None => until,
        };
        self.marks.insert(key, until);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeline::Transport;

    fn key(port: u16) -> TargetKey {
        (Transport::Udp, ([127, 0, 0, 1], port).into())
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn d1_d2_dirty_during_the_ttl_and_clean_exactly_after_it() {
        let mut dirty = DirtyHosts::new();
        dirty.mark(key(5060), secs(10), Some(secs(30)), &Faults::none());
        assert!(dirty.is_dirty(key(5060), secs(10)));
        assert!(dirty.is_dirty(key(5060), Duration::from_millis(39_999)));
        assert!(!dirty.is_dirty(key(5060), secs(40)));
        assert!(!dirty.is_dirty(key(5061), secs(20)));
        assert!(!dirty.is_dirty((Transport::Tcp, key(5060).1), secs(20)));
        assert_eq!(dirty.until(key(5060)), Some(DirtyUntil::At(secs(40))));
        assert_eq!(dirty.until(key(5061)), None);
        dirty.prune(secs(40));
        assert_eq!(dirty.until(key(5060)), None);
    }

    #[test]
    fn d1_no_ttl_no_mark() {
        let mut dirty = DirtyHosts::new();
        dirty.mark(key(5060), secs(10), None, &Faults::none());
        assert!(!dirty.is_dirty(key(5060), secs(10)));
        assert_eq!(dirty.until(key(5060)), None);
    }

    #[test]
    fn fault_no_dirty_host_forgets_at_once() {
        let mut dirty = DirtyHosts::new();
        dirty.mark(
            key(5060),
            secs(10),
            Some(secs(30)),
            &Faults::one(Fault::NoDirtyHost),
        );
        assert!(!dirty.is_dirty(key(5060), secs(10)));
    }

    #[test]
    fn fault_dirty_host_forever_never_ends() {
        let mut dirty = DirtyHosts::new();
        dirty.mark(
            key(5060),
            secs(10),
            Some(secs(30)),
            &Faults::one(Fault::DirtyHostForever),
        );
        assert!(dirty.is_dirty(key(5060), secs(1_000_000)));
        assert_eq!(dirty.until(key(5060)), Some(DirtyUntil::Forever));
        dirty.prune(secs(1_000_000));
        assert_eq!(dirty.until(key(5060)), Some(DirtyUntil::Forever));
    }

    #[test]
    fn f5_retry_after_marks_for_its_duration_and_is_never_shortened() {
        let mut dirty = DirtyHosts::new();
        dirty.mark_for(key(5060), secs(0), secs(120));
        // A later timeout with a shorter TTL keeps the Retry-After.
        dirty.mark(key(5060), secs(10), Some(secs(30)), &Faults::none());
        assert!(dirty.is_dirty(key(5060), secs(119)));
        assert!(!dirty.is_dirty(key(5060), secs(120)));
        // A longer one extends it.
        dirty.mark(key(5060), secs(100), Some(secs(60)), &Faults::none());
        assert_eq!(dirty.until(key(5060)), Some(DirtyUntil::At(secs(160))));
    }
}
