//! Device profiles: what a device is configured with and claims, like a vendor's parameter
//! sheet. Every timing expectation of the oracle is in the profile's units (64·T1, the
//! declared dirty-host TTL), never in fixed seconds.
//!
//! ```yaml
//! device: snom
//! name: Snom D785, factory settings
//! t1: 500ms                 # sip_retry_t1
//! t2: 4s
//! dirty_host_ttl: 60s       # dirty_host_ttl, if the user set one (absent: off)
//! transports: [udp, tcp]
//! failover_codes: [480]     # sip_failover_response beyond 503
//! naptr: true               # the device queries NAPTR (a claim: L4 is then judged as PROFILE)
//! a_record_fallback: false  # the device never falls back to the domain's A record (L12 claim)
//! refusal_failover: true    # the device moves on at once on ICMP/RST (F2 claim)
//! failover_after: 32s       # a vendor policy earlier than Timer B (T4), if declared
//! ```

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::diag::{Diagnostic, Diagnostics, SourceFile, Span};
use super::duration::DurationSpec;
use crate::timeline::Transport;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    device: Spanned<String>,
    #[serde(default)]
    name: Option<String>,
    t1: Spanned<DurationSpec>,
    #[serde(default)]
    t2: Option<Spanned<DurationSpec>>,
    #[serde(default)]
    dirty_host_ttl: Option<Spanned<DurationSpec>>,
    #[serde(default)]
    transports: Option<Spanned<Vec<Transport>>>,
    #[serde(default)]
    failover_codes: Vec<u16>,
    #[serde(default)]
    naptr: Option<bool>,
    #[serde(default)]
    a_record_fallback: Option<bool>,
    #[serde(default)]
    refusal_failover: Option<bool>,
    #[serde(default)]
    failover_after: Option<Spanned<DurationSpec>>,
}

/// What the device is configured with and claims.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    /// `reference`, `snom`, `rfc3261`, … (for reports).
    pub device: String,
    pub name: String,
    pub t1: Duration,
    pub t2: Duration,
    /// The dirty-host TTL the device declares; `None`: it does not avoid failed hosts.
    pub dirty_host_ttl: Option<Duration>,
    pub transports: Vec<Transport>,
    /// Codes that fail over like 503.
    pub failover_codes: Vec<u16>,
    /// Whether the device queries NAPTR (L4); `None`: not declared (it is expected to, as a
    /// SHOULD). A declared `true` is a claim, and L4 then fails rather than warns.
    pub naptr: Option<bool>,
    /// Whether the device falls back to the domain's A record once every SRV target failed
    /// (L12); a declared `false` is a claim, and L12 then fails rather than warns.
    pub a_record_fallback: Option<bool>,
    /// Whether the device moves on at once when a server refuses (ICMP port unreachable, TCP
    /// RST) (F2); a declared `true` is a claim, and F2 then fails rather than warns.
    pub refusal_failover: Option<bool>,
    /// A failover earlier than Timer B that the vendor declares (T4).
    pub failover_after: Option<Duration>,
}

impl Profile {
    /// Whether the device is expected to query NAPTR at all.
    pub fn queries_naptr(&self) -> bool {
        self.naptr != Some(false)
    }

    /// Timer B and Timer F: 64·T1.
    pub fn timer_b(&self) -> Duration {
        self.t1.saturating_mul(64)
    }

    pub fn load(path: &Path) -> (Option<Self>, Diagnostics) {
        match SourceFile::read(path) {
            Ok(file) => Self::parse(&file),
            Err(diagnostic) => (None, Diagnostics(vec![*diagnostic])),
        }
    }

    pub fn parse(file: &Arc<SourceFile>) -> (Option<Self>, Diagnostics) {
        let raw = match serde_saphyr::from_str::<RawProfile>(&file.text) {
            Ok(raw) => raw,
            Err(err) => return (None, Diagnostics(vec![Diagnostic::from_yaml(file, &err)])),
        };
        let mut diagnostics = Diagnostics::default();
        let t1 = raw.t1.value.0;
        if t1.is_zero() || t1 > Duration::from_secs(10) {
            diagnostics.push(Diagnostic::error(
                Span::of(file, &raw.t1),
                format!(
                    "T1 {} is not plausible (RFC 3261 default 500ms)",
                    raw.t1.value
                ),
            ));
        }
        let t2 = raw
            .t2
            .as_ref()
            .map_or(Duration::from_secs(4), |t| t.value.0);
        if let Some(given) = &raw.t2
            && given.value.0 < t1
        {
            diagnostics.push(Diagnostic::error(
                Span::of(file, given),
                "T2 is smaller than T1: non-INVITE retransmissions would shrink",
            ));
        }
        let transports = match &raw.transports {
            Some(list) if list.value.is_empty() => {
                diagnostics.push(Diagnostic::error(
                    Span::of(file, list),
                    "a device supports at least one transport",
                ));
                Vec::new()
            }
            Some(list) => list.value.clone(),
            None => vec![Transport::Udp],
        };
        let profile = Self {
            name: raw.name.unwrap_or_else(|| raw.device.value.clone()),
            device: raw.device.value,
            t1,
            t2,
            dirty_host_ttl: raw.dirty_host_ttl.map(|d| d.value.0),
            transports,
            failover_codes: raw.failover_codes,
            naptr: raw.naptr,
            a_record_fallback: raw.a_record_fallback,
            refusal_failover: raw.refusal_failover,
            failover_after: raw.failover_after.map(|d| d.value.0),
        };
        if diagnostics.has_errors() {
            (None, diagnostics)
        } else {
            (Some(profile), diagnostics)
        }
    }
}
