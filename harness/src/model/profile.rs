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
//! retry_after_failed_register: 300s   # Snom: re-REGISTER this long (±10 %) after a failed one (D5)
//! failback_mode: duration   # Yealink/Polycom: how long requests stay with the registrar (D4, D6)
//! failback_timeout: 3600s   # with failback_mode: duration (Yealink's default 3600 s; 0 = never)
//! address_families: [ipv6, ipv4]  # dual stack, IPv6 first (RFC 7984; absent: IPv4 only) (L13)
//! ```
//!
//! A case may need the device configured in a certain way ([`ProfileSettings`], its
//! `profile:` field): for the reference UA, which srvlab configures, those settings replace the
//! run's profile fields for that case, and are judged like any other declaration. A real device
//! keeps what its profile declares; the case's wishes are compared with it and reported
//! ([`ProfileSettings::against`]), and the checks judge the device's own values.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;
use thiserror::Error;

use super::diag::{Diagnostic, Diagnostics, SourceFile, Span};
use super::duration::DurationSpec;
use crate::timeline::Transport;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    device: Spanned<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    firmware: Option<String>,
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
    #[serde(default)]
    retry_after_failed_register: Option<Spanned<DurationSpec>>,
    #[serde(default)]
    failback_mode: Option<Spanned<FailbackMode>>,
    #[serde(default)]
    failback_timeout: Option<Spanned<DurationSpec>>,
    #[serde(default)]
    address_families: Option<Spanned<Vec<AddressFamily>>>,
}

/// An IP version a device resolves (A for IPv4, AAAA for IPv6) and sends over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AddressFamily {
    Ipv4,
    Ipv6,
}

impl AddressFamily {
    pub fn name(self) -> &'static str {
        match self {
            Self::Ipv4 => "ipv4",
            Self::Ipv6 => "ipv6",
        }
    }

    pub fn of(ip: std::net::IpAddr) -> Self {
        match ip {
            std::net::IpAddr::V4(_) => Self::Ipv4,
            std::net::IpAddr::V6(_) => Self::Ipv6,
        }
    }
}

impl fmt::Display for AddressFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a device that declares nothing uses: IPv4 alone, as every device did before RFC 7984.
pub const DEFAULT_ADDRESS_FAMILIES: [AddressFamily; 1] = [AddressFamily::Ipv4];

/// Yealink's `account.X.sip_server.Y.failback_mode` (Polycom's `failBack.mode`): when a
/// device that registered with one server goes back to drawing from the top of the list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailbackMode {
    /// 0: every request starts from the primary (draws anew), whatever server was used last.
    NewRequests,
    /// 1: requests go to the last registered server while its DNS record is fresh.
    DnsTtl,
    /// 2: calls go to the last registered server; a registration renewal goes back to the
    /// primary (Yealink: "retries to send REGISTER requests to the primary server when
    /// registration renewal").
    Registration,
    /// 3: requests go to the last registered server until `failback_timeout` ran out.
    Duration,
}

impl FailbackMode {
    pub fn name(self) -> &'static str {
        match self {
            Self::NewRequests => "new_requests",
            Self::DnsTtl => "dns_ttl",
            Self::Registration => "registration",
            Self::Duration => "duration",
        }
    }
}

/// Yealink's default `failback_timeout`.
pub const DEFAULT_FAILBACK_TIMEOUT: Duration = Duration::from_secs(3600);

/// What the device is configured with and claims.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    /// `reference`, `snom`, `rfc3261`, … (for reports).
    pub device: String,
    pub name: String,
    /// The firmware the device runs, as its vendor writes it (for reports).
    pub firmware: Option<String>,
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
    /// How long after a registration failed at every target the device registers again
    /// (Snom `retry_after_failed_register`, ±10 % random): a claim D5 judges.
    pub retry_after_failed_register: Option<Duration>,
    /// Whether and how long requests stay with the registrar (D4, D6).
    pub failback_mode: Option<FailbackMode>,
    /// With `failback_mode: duration`: how long (0: until the next failover). `None`: the
    /// vendor default, [`DEFAULT_FAILBACK_TIMEOUT`].
    pub failback_timeout: Option<Duration>,
    /// The IP versions the device resolves and uses, in its order of preference for the
    /// addresses of one SRV target (RFC 7984); IPv4 alone unless declared. Both: dual stack,
    /// judged by L13.
    pub address_families: Vec<AddressFamily>,
}

/// A profile field a rule is about, so that a diagnostic can point at it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    T1,
    T2,
    FailoverAfter,
    FailbackTimeout,
    AddressFamilies,
}

impl Profile {
    /// Whether the device is expected to query NAPTR at all.
    pub fn queries_naptr(&self) -> bool {
        self.naptr != Some(false)
    }

    /// Whether the device declares both IPv4 and IPv6 (RFC 7984): L13 holds it to trying
    /// both families of a target before the next.
    pub fn dual_stack(&self) -> bool {
        self.address_families.contains(&AddressFamily::Ipv4)
            && self.address_families.contains(&AddressFamily::Ipv6)
    }

    /// Timer B and Timer F: 64·T1.
    pub fn timer_b(&self) -> Duration {
        self.t1.saturating_mul(64)
    }

    /// With `failback_mode: duration`, how long requests stay with the registrar (`None`:
    /// until the next failover, Yealink's 0).
    pub fn failback_window(&self) -> Option<Duration> {
        let timeout = self.failback_timeout.unwrap_or(DEFAULT_FAILBACK_TIMEOUT);
        (!timeout.is_zero()).then_some(timeout)
    }

    /// What is wrong with these values taken together, field by field: the rules both a
    /// profile file and a case's settings on top of one must keep.
    pub fn problems(&self) -> Vec<(Field, String)> {
        let mut problems = Vec::new();
        if self.t1.is_zero() || self.t1 > Duration::from_secs(10) {
            problems.push((
                Field::T1,
                format!(
                    "T1 {} is not plausible (RFC 3261 default 500ms)",
                    DurationSpec(self.t1)
                ),
            ));
        }
        if self.t2 < self.t1 {
            problems.push((
                Field::T2,
                format!(
                    "T2 {} is smaller than T1 {}: non-INVITE retransmissions would shrink",
                    DurationSpec(self.t2),
                    DurationSpec(self.t1)
                ),
            ));
        }
        if let Some(after) = self.failover_after
            && (after.is_zero() || after >= self.timer_b())
        {
            problems.push((
                Field::FailoverAfter,
                format!(
                    "failover_after {} is not earlier than Timer B (64·T1 = {}) and later than 0: declare it only for a device that gives up before Timer B (T4)",
                    DurationSpec(after),
                    DurationSpec(self.timer_b())
                ),
            ));
        }
        if self.failback_timeout.is_some() && self.failback_mode != Some(FailbackMode::Duration) {
            problems.push((
                Field::FailbackTimeout,
                "failback_timeout applies to `failback_mode: duration` only".to_owned(),
            ));
        }
        if self.address_families.is_empty() {
            problems.push((
                Field::AddressFamilies,
                "a device uses at least one address family (ipv4, ipv6)".to_owned(),
            ));
        }
        for (i, family) in self.address_families.iter().enumerate() {
            if self.address_families[..i].contains(family) {
                problems.push((
                    Field::AddressFamilies,
                    format!("address family {family} is listed twice"),
                ));
            }
        }
        problems
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
        let t2 = raw
            .t2
            .as_ref()
            .map_or(Duration::from_secs(4), |t| t.value.0);
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
            firmware: raw.firmware,
            t1,
            t2,
            dirty_host_ttl: raw.dirty_host_ttl.map(|d| d.value.0),
            transports,
            failover_codes: raw.failover_codes,
            naptr: raw.naptr,
            a_record_fallback: raw.a_record_fallback,
            refusal_failover: raw.refusal_failover,
            failover_after: raw.failover_after.as_ref().map(|d| d.value.0),
            retry_after_failed_register: raw
                .retry_after_failed_register
                .as_ref()
                .map(|d| d.value.0),
            failback_mode: raw.failback_mode.as_ref().map(|m| m.value),
            failback_timeout: raw.failback_timeout.as_ref().map(|d| d.value.0),
            address_families: raw
                .address_families
                .as_ref()
                .map_or_else(|| DEFAULT_ADDRESS_FAMILIES.to_vec(), |f| f.value.clone()),
        };
        for (field, message) in profile.problems() {
            let span = match field {
                Field::T1 => Some(Span::of(file, &raw.t1)),
                Field::T2 => raw.t2.as_ref().map(|t| Span::of(file, t)),
                Field::FailoverAfter => raw.failover_after.as_ref().map(|d| Span::of(file, d)),
                Field::FailbackTimeout => raw.failback_timeout.as_ref().map(|d| Span::of(file, d)),
                Field::AddressFamilies => raw.address_families.as_ref().map(|f| Span::of(file, f)),
            };
            // T2 left out is RFC 3261's 4 s, whatever T1 is: no rule to break.
            if let Some(span) = span {
                diagnostics.push(Diagnostic::error(span, message));
            }
        }
        if diagnostics.has_errors() {
            (None, diagnostics)
        } else {
            (Some(profile), diagnostics)
        }
    }
}

/// A time a case gives in the device's own units: fixed (`80ms`) or a multiple of its T1
/// (`{t1: 4}`), so that one case fits a device with T1 = 20 ms and one with 500 ms.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scaled {
    Fixed(Duration),
    T1(f64),
}

impl Scaled {
    pub fn resolve(self, t1: Duration) -> Duration {
        match self {
            Self::Fixed(d) => d,
            Self::T1(times) => t1.mul_f64(times),
        }
    }

    fn describe(self, t1: Duration) -> String {
        match self {
            Self::Fixed(d) => DurationSpec(d).to_string(),
            Self::T1(times) => format!("{times}·T1 = {}", DurationSpec(self.resolve(t1))),
        }
    }
}

impl<'de> Deserialize<'de> for Scaled {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ScaledVisitor;
        impl<'de> Visitor<'de> for ScaledVisitor {
            type Value = Scaled;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration (80ms) or a multiple of T1 ({t1: 4})")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scaled, E> {
                Ok(Scaled::Fixed(Duration::from_secs(v)))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scaled, E> {
                DurationSpec::deserialize(de::value::F64Deserializer::<E>::new(v))
                    .map(|d| Scaled::Fixed(d.0))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scaled, E> {
                DurationSpec::parse(v)
                    .map(|d| Scaled::Fixed(d.0))
                    .map_err(E::custom)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scaled, A::Error> {
                match map.next_key::<String>()?.as_deref() {
                    Some("t1") => {}
                    Some(other) => {
                        return Err(de::Error::custom(format!("unknown unit `{other}`: use t1")));
                    }
                    None => return Err(de::Error::custom("expected {t1: N}")),
                }
                let times: f64 = map.next_value()?;
                if !(times.is_finite() && times > 0.0 && times <= 1e6) {
                    return Err(de::Error::custom(
                        "the factor of T1 must be above 0 (and at most 1000000)",
                    ));
                }
                if map.next_key::<String>()?.is_some() {
                    return Err(de::Error::custom("give one unit only"));
                }
                Ok(Scaled::T1(times))
            }
        }
        deserializer.deserialize_any(ScaledVisitor)
    }
}

/// What a case needs the device configured with (DESIGN: a case says "what the DUT must be
/// configured with"), written as profile fields:
///
/// ```yaml
/// profile: {t2: {t1: 4}, failover_after: {t1: 15}, failback_mode: duration}
/// ```
///
/// They replace the run's profile fields for that case: the reference UA is configured with
/// them, and the oracle judges against them. An external device must be set up the same way
/// by whoever runs the case (the report lists the settings per case).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProfileSettings {
    pub t2: Option<Scaled>,
    pub failover_after: Option<Scaled>,
    pub retry_after_failed_register: Option<DurationSpec>,
    pub failback_mode: Option<FailbackMode>,
    pub failback_timeout: Option<DurationSpec>,
    /// A dual-stack case needs the device to use IPv6 (and in which order).
    pub address_families: Option<Vec<AddressFamily>>,
}

/// [`ProfileSettings`] as written, with locations.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSettings {
    #[serde(default)]
    t2: Option<Spanned<Scaled>>,
    #[serde(default)]
    failover_after: Option<Spanned<Scaled>>,
    #[serde(default)]
    retry_after_failed_register: Option<Spanned<DurationSpec>>,
    #[serde(default)]
    failback_mode: Option<Spanned<FailbackMode>>,
    #[serde(default)]
    failback_timeout: Option<Spanned<DurationSpec>>,
    #[serde(default)]
    address_families: Option<Spanned<Vec<AddressFamily>>>,
}

impl RawSettings {
    /// The settings, and what is wrong with them whatever the profile: a T2 below T1, an
    /// early failover at or after Timer B, a timeout without its mode.
    pub(crate) fn check(
        self,
        file: &Arc<SourceFile>,
        diagnostics: &mut Diagnostics,
    ) -> ProfileSettings {
        if let Some(Spanned {
            value: Scaled::T1(times),
            ..
        }) = &self.t2
            && *times < 1.0
        {
            diagnostics.push(Diagnostic::error(
                Span::of(file, self.t2.as_ref().expect("matched")),
                format!(
                    "T2 = {times}·T1 is smaller than T1: non-INVITE retransmissions would shrink"
                ),
            ));
        }
        if let Some(Spanned {
            value: Scaled::T1(times),
            ..
        }) = &self.failover_after
            && *times >= 64.0
        {
            diagnostics.push(Diagnostic::error(
                Span::of(file, self.failover_after.as_ref().expect("matched")),
                format!("failover_after = {times}·T1 is not earlier than Timer B (64·T1)"),
            ));
        }
        if let (Some(timeout), Some(mode)) = (&self.failback_timeout, &self.failback_mode)
            && mode.value != FailbackMode::Duration
        {
            diagnostics.push(Diagnostic::error(
                Span::of(file, timeout),
                format!(
                    "failback_timeout applies to `failback_mode: duration` only, not `{}`",
                    mode.value.name()
                ),
            ));
        }
        ProfileSettings {
            t2: self.t2.map(|s| s.value),
            failover_after: self.failover_after.map(|s| s.value),
            retry_after_failed_register: self.retry_after_failed_register.map(|s| s.value),
            failback_mode: self.failback_mode.map(|s| s.value),
            failback_timeout: self.failback_timeout.map(|s| s.value),
            address_families: self.address_families.map(|s| s.value),
        }
    }
}

/// A case's settings do not fit the run's profile.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("the case's `profile:` settings do not fit the profile `{device}`: {problems}")]
pub struct SettingsError {
    pub device: String,
    pub problems: String,
}

impl ProfileSettings {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// `base` with these settings in place, if the result keeps every profile rule.
    pub fn apply(&self, base: &Profile) -> Result<Profile, SettingsError> {
        let mut profile = base.clone();
        if let Some(t2) = self.t2 {
            profile.t2 = t2.resolve(base.t1);
        }
        if let Some(after) = self.failover_after {
            profile.failover_after = Some(after.resolve(base.t1));
        }
        if let Some(retry) = self.retry_after_failed_register {
            profile.retry_after_failed_register = Some(retry.0);
        }
        if let Some(mode) = self.failback_mode {
            profile.failback_mode = Some(mode);
            // A timeout belongs to the mode that came with it.
            profile.failback_timeout = None;
        }
        if let Some(timeout) = self.failback_timeout {
            profile.failback_timeout = Some(timeout.0);
        }
        if let Some(families) = &self.address_families {
            profile.address_families = families.clone();
        }
        let problems = profile.problems();
        if problems.is_empty() {
            Ok(profile)
        } else {
            Err(SettingsError {
                device: base.device.clone(),
                problems: problems
                    .into_iter()
                    .map(|(_, why)| why)
                    .collect::<Vec<_>>()
                    .join("; "),
            })
        }
    }

    /// One line per setting, in the units of a device with `t1`: `t2 = 4·T1 = 80ms`.
    /// What becomes of these settings on a device srvlab cannot configure (a real device on a
    /// lab network): each is compared with what the device's profile declares, and the
    /// device's own value is what the checks judge, never the case's wish. One line each.
    pub fn against(&self, device: &Profile) -> Vec<String> {
        let t1 = device.t1;
        let duration = |d: Option<Duration>| d.map(|d| DurationSpec(d).to_string());
        let families = |list: &[AddressFamily]| {
            let names: Vec<&str> = list.iter().map(|f| f.name()).collect();
            format!("[{}]", names.join(", "))
        };
        // (setting, what the case asks for, the same in the device's units, what it declares)
        let mut asked: Vec<(&str, String, Option<String>, Option<String>)> = Vec::new();
        if let Some(t2) = self.t2 {
            let wish = DurationSpec(t2.resolve(t1)).to_string();
            asked.push(("t2", t2.describe(t1), Some(wish), duration(Some(device.t2))));
        }
        if let Some(after) = self.failover_after {
            let wish = DurationSpec(after.resolve(t1)).to_string();
            asked.push((
                "failover_after",
                after.describe(t1),
                Some(wish),
                duration(device.failover_after),
            ));
        }
        if let Some(retry) = self.retry_after_failed_register {
            asked.push((
                "retry_after_failed_register",
                retry.to_string(),
                Some(retry.to_string()),
                duration(device.retry_after_failed_register),
            ));
        }
        if let Some(mode) = self.failback_mode {
            asked.push((
                "failback_mode",
                mode.name().to_string(),
                Some(mode.name().to_string()),
                device.failback_mode.map(|m| m.name().to_string()),
            ));
        }
        if let Some(timeout) = self.failback_timeout {
            asked.push((
                "failback_timeout",
                timeout.to_string(),
                Some(timeout.to_string()),
                duration(device.failback_timeout),
            ));
        }
        if let Some(list) = &self.address_families {
            asked.push((
                "address_families",
                families(list),
                Some(families(list)),
                Some(families(&device.address_families)),
            ));
        }
        asked
            .into_iter()
            .map(|(name, wish, wish_here, declared)| match declared {
                Some(declared) if Some(&declared) == wish_here.as_ref() => {
                    format!("{name} = {wish}, as the device's profile declares")
                }
                Some(declared) => format!(
                    "{name}: the case asks for {wish}; the device's profile declares {declared}, which is what is judged (srvlab does not configure a real device)"
                ),
                None => format!(
                    "{name}: the case asks for {wish}; the device's profile declares none, so the checks that need it are not applicable and the rest judge the device as declared"
                ),
            })
            .collect()
    }

    pub fn describe(&self, t1: Duration) -> Vec<String> {
        let mut lines = Vec::new();
        if let Some(t2) = self.t2 {
            lines.push(format!("t2 = {}", t2.describe(t1)));
        }
        if let Some(after) = self.failover_after {
            lines.push(format!("failover_after = {}", after.describe(t1)));
        }
        if let Some(retry) = self.retry_after_failed_register {
            lines.push(format!("retry_after_failed_register = {retry}"));
        }
        if let Some(mode) = self.failback_mode {
            lines.push(format!("failback_mode = {}", mode.name()));
        }
        if let Some(timeout) = self.failback_timeout {
            lines.push(format!("failback_timeout = {timeout}"));
        }
        if let Some(families) = &self.address_families {
            let names: Vec<&str> = families.iter().map(|f| f.name()).collect();
            lines.push(format!("address_families = [{}]", names.join(", ")));
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> (Option<Profile>, Diagnostics) {
        Profile::parse(&SourceFile::new("p.yaml", text))
    }

    #[test]
    fn address_families_default_to_ipv4_and_keep_their_order() {
        let (profile, _) = parse("device: x\nt1: 500ms\n");
        let profile = profile.expect("valid");
        assert_eq!(profile.address_families, [AddressFamily::Ipv4]);
        assert!(!profile.dual_stack());
        let (profile, _) = parse("device: x\nt1: 500ms\naddress_families: [ipv6, ipv4]\n");
        let profile = profile.expect("valid");
        assert_eq!(
            profile.address_families,
            [AddressFamily::Ipv6, AddressFamily::Ipv4]
        );
        assert!(profile.dual_stack());
    }

    #[test]
    fn address_families_must_be_some_and_distinct() {
        for text in ["[]", "[ipv4, ipv4]"] {
            let (profile, diagnostics) =
                parse(&format!("device: x\nt1: 500ms\naddress_families: {text}\n"));
            assert!(profile.is_none(), "{text}");
            assert!(
                diagnostics.to_string().contains("address famil"),
                "{text}: {diagnostics}"
            );
        }
    }
}
