//! Case files, first part: the world of one scenario — its zone and its scripted SIP servers.
//!
//! ```yaml
//! id: seed-crash
//! title: sipserver52 crashes after 5 minutes
//! zone: ../fixtures/zones/snom-rocks.yaml      # a path (relative to this file) or a zone inline
//! servers:
//!   - host: sipserver52.snom.rocks.
//!     transports: [udp, tcp]                   # default: udp and tcp; tls too
//!     port: 5060                               # default 5060 (5061 for tls only)
//!     script:
//!       - {behaviour: accept, until: {after: 5m}}
//!       - {behaviour: refuse}
//!   - host: sipserver114.snom.rocks.
//!     script:
//!       - {behaviour: accept}
//! ```
//!
//! A phase is one flat mapping so that saphyr keeps every field's location; which fields fit
//! which behaviour is checked here.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hickory_server::proto::rr::Name;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

use super::diag::{Diagnostic, Diagnostics, SourceFile, Span};
use super::duration::DurationSpec;
use super::profile::{ProfileSettings, RawSettings};
use super::steps::{CHECKLIST, DeviceTarget, MAX_REQUESTS, Step};
use super::zone::{RawZone, RecordData, Zone, ZoneSet};
use crate::checks::CheckParams;
use crate::sip::uri::SipUri;
use crate::timeline::Transport;

// ---------------------------------------------------------------------------------------------
// The YAML as written.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCase {
    id: Spanned<String>,
    #[serde(default)]
    title: Option<String>,
    /// Checklist ids the case is about (for reports; `checks` are what is judged).
    #[serde(default)]
    covers: Vec<Spanned<String>>,
    zone: Spanned<RawZoneRef>,
    servers: Vec<Spanned<RawServer>>,
    #[serde(default)]
    device: DeviceTarget,
    #[serde(default)]
    steps: Vec<Spanned<Step>>,
    #[serde(default)]
    checks: Vec<Spanned<RawCheck>>,
    /// Settings the device needs for this case, on top of the run's profile.
    #[serde(default)]
    profile: Option<RawSettings>,
    /// What the device must support; a profile without it makes the case not applicable.
    #[serde(default)]
    requires: Vec<Requirement>,
}

/// A check as a case names it: `L9`, or `{L9: {alpha: 0.01}}` with parameters.
#[derive(Debug)]
struct RawCheck {
    id: String,
    params: CheckParams,
}

impl<'de> Deserialize<'de> for RawCheck {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CheckVisitor;
        impl<'de> Visitor<'de> for CheckVisitor {
            type Value = RawCheck;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a checklist id (L9) or one with parameters ({L9: {alpha: 0.01}})")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawCheck, E> {
                Ok(RawCheck {
                    id: v.to_string(),
                    params: CheckParams::default(),
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawCheck, A::Error> {
                let Some(id) = map.next_key::<String>()? else {
                    return Err(de::Error::custom("expected a checklist id"));
                };
                let params: CheckParams = map.next_value()?;
                if map.next_key::<String>()?.is_some() {
                    return Err(de::Error::custom("one check per entry"));
                }
                Ok(RawCheck { id, params })
            }
        }
        deserializer.deserialize_any(CheckVisitor)
    }
}

/// What a case needs of the device. A profile that does not declare it makes every check of
/// the case not applicable (the device cannot be judged on it), rather than an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Requirement {
    Udp,
    Tcp,
    Tls,
    /// A dirty-host TTL: the case is about nothing else. (A `wait: {dirty_host_ttl: N}` step
    /// alone does not make a case need one: such a wait is skipped, and only D1/D2 need it.)
    DirtyHostTtl,
    /// NAPTR support (a profile with `naptr: false` does not query it).
    Naptr,
}

impl Requirement {
    pub fn met_by(self, profile: &crate::model::profile::Profile) -> bool {
        match self {
            Self::Udp => profile.transports.contains(&Transport::Udp),
            Self::Tcp => profile.transports.contains(&Transport::Tcp),
            Self::Tls => profile.transports.contains(&Transport::Tls),
            Self::DirtyHostTtl => profile.dirty_host_ttl.is_some(),
            Self::Naptr => profile.queries_naptr(),
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Udp => "UDP",
            Self::Tcp => "TCP",
            Self::Tls => "TLS",
            Self::DirtyHostTtl => "a dirty-host TTL",
            Self::Naptr => "NAPTR support",
        })
    }
}

/// `zone:` is a path or a zone written inline.
#[derive(Debug)]
enum RawZoneRef {
    Path(String),
    Inline(Box<RawZone>),
}

impl<'de> Deserialize<'de> for RawZoneRef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ZoneRefVisitor;
        impl<'de> Visitor<'de> for ZoneRefVisitor {
            type Value = RawZoneRef;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a zone file's path, or a zone (origin, ttl, records)")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(RawZoneRef::Path(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                RawZone::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|zone| RawZoneRef::Inline(Box::new(zone)))
            }
        }
        deserializer.deserialize_any(ZoneRefVisitor)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    host: Spanned<String>,
    #[serde(default)]
    addresses: Option<Spanned<Vec<IpAddr>>>,
    #[serde(default)]
    port: Option<u16>,
    #[serde(default)]
    transports: Option<Spanned<Vec<Transport>>>,
    #[serde(default)]
    tls: Option<Spanned<TlsSpec>>,
    script: Spanned<Vec<Spanned<RawPhase>>>,
}

/// How a server's TLS listeners misbehave (`tls: {fail: …}`), for every connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSpec {
    #[serde(default)]
    pub fail: Option<TlsFailure>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TlsFailure {
    /// A self-signed certificate for the right name: no device that trusts only the run's CA
    /// completes the handshake.
    BadCertificate,
    /// A certificate from the CA the device trusts, for another name
    /// ([`WRONG_NAME`](crate::tls::WRONG_NAME)): only a device that checks the name rejects it.
    WrongName,
    /// TCP is accepted and the ClientHello read, but the handshake is never answered.
    HandshakeStall,
    /// The ClientHello is answered with a fatal handshake_failure alert, as a server that
    /// shares no cipher suite with the device answers it (the suites offered are recorded).
    NoSharedCipher,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BehaviourName {
    Accept,
    Reply,
    Stall,
    Refuse,
    Delay,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPhase {
    behaviour: Spanned<BehaviourName>,
    #[serde(default)]
    until: Option<Spanned<Until>>,
    #[serde(default)]
    challenge: Option<Spanned<bool>>,
    #[serde(default)]
    expires: Option<Spanned<u32>>,
    #[serde(default)]
    status: Option<Spanned<u16>>,
    #[serde(default)]
    reason: Option<Spanned<String>>,
    #[serde(default)]
    retry_after: Option<Spanned<u32>>,
    #[serde(default)]
    methods: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    trying: Option<Spanned<bool>>,
    #[serde(default)]
    delay: Option<Spanned<DurationSpec>>,
}

// ---------------------------------------------------------------------------------------------
// The case as run.

/// When a phase ends and the next begins.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum Until {
    /// After this many requests reached the server in this phase (ACKs are not counted: they
    /// belong to an INVITE transaction).
    Requests(u32),
    /// This long after the phase began.
    After(DurationSpec),
    /// When the case reaches the step of this name.
    Step(String),
}

impl fmt::Display for Until {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Requests(n) => write!(f, "after {n} request{}", if *n == 1 { "" } else { "s" }),
            Self::After(d) => write!(f, "after {d}"),
            Self::Step(name) => write!(f, "at step {name}"),
        }
    }
}

/// What a server does with a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// Answer as a working server would (optionally a 401 challenge first).
    Accept { challenge: bool, expires: u32 },
    /// Answer `status` to `methods` (all when `None`); other methods are accepted.
    Reply {
        status: u16,
        reason: Option<String>,
        retry_after: Option<u32>,
        methods: Option<Vec<String>>,
    },
    /// Take the request and never answer (optionally a 100 Trying to an INVITE first).
    Stall { trying: bool },
    /// A closed port: UDP gets ICMP port unreachable, TCP a RST.
    Refuse,
    /// Answer as `accept` does, `delay` late.
    Delay { delay: Duration, expires: u32 },
}

impl Behaviour {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Accept { .. } => "accept",
            Self::Reply { .. } => "reply",
            Self::Stall { .. } => "stall",
            Self::Refuse => "refuse",
            Self::Delay { .. } => "delay",
        }
    }
}

impl fmt::Display for Behaviour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Accept { challenge, .. } => {
                f.write_str("accept")?;
                if *challenge {
                    f.write_str(" (401 first)")?;
                }
                Ok(())
            }
            Self::Reply {
                status,
                retry_after,
                methods,
                ..
            } => {
                write!(f, "reply {status}")?;
                if let Some(seconds) = retry_after {
                    write!(f, " Retry-After {seconds}")?;
                }
                if let Some(methods) = methods {
                    write!(f, " to {}", methods.join(", "))?;
                }
                Ok(())
            }
            Self::Stall { trying: true } => f.write_str("stall (100 Trying first)"),
            Self::Stall { trying: false } => f.write_str("stall"),
            Self::Refuse => f.write_str("refuse"),
            Self::Delay { delay, .. } => write!(f, "delay {}", DurationSpec(*delay)),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Phase {
    pub behaviour: Behaviour,
    pub until: Option<Until>,
}

/// Registration lifetime handed out when a phase does not say.
pub const DEFAULT_EXPIRES: u32 = 3600;

/// One scripted SIP server.
#[derive(Clone, Debug)]
pub struct ServerSpec {
    /// The host name, from the zone.
    pub host: Name,
    pub addresses: Vec<IpAddr>,
    pub port: u16,
    pub transports: Vec<Transport>,
    /// How its TLS listeners misbehave, if at all.
    pub tls: TlsSpec,
    pub script: Vec<Phase>,
    pub span: Span,
}

impl ServerSpec {
    /// The server's name as shown on the timeline.
    pub fn name(&self) -> String {
        self.host.to_ascii()
    }
}

#[derive(Clone, Debug)]
pub struct Case {
    pub id: String,
    pub title: String,
    pub covers: Vec<String>,
    pub zones: ZoneSet,
    pub servers: Vec<ServerSpec>,
    /// The URI the device calls and the address of record it registers.
    pub uri: String,
    pub aor: String,
    pub steps: Vec<Step>,
    /// The zone files `zone:` steps switch to, by the path written in the step. The oracle
    /// reads the answers on the timeline for these; `zones` stays the case's first zone.
    pub zone_changes: BTreeMap<String, ZoneSet>,
    /// Checklist ids to judge.
    pub checks: Vec<String>,
    /// Parameters a case gave its checks (`{L9: {alpha: 0.01}}`), by id.
    pub check_params: BTreeMap<String, CheckParams>,
    /// What the device must be configured with for this case (empty: the run's profile as is).
    pub profile: ProfileSettings,
    /// What the device must support (declared, or implied by the steps), sorted.
    pub requires: Vec<Requirement>,
    pub file: Arc<SourceFile>,
}

impl Case {
    /// Reads and validates a case file; the case comes back only when there is no error.
    pub fn load(path: &Path) -> (Option<Self>, Diagnostics) {
        match SourceFile::read(path) {
            Ok(file) => Self::parse(&file, path.parent().unwrap_or(Path::new("."))),
            Err(diagnostic) => (None, Diagnostics(vec![*diagnostic])),
        }
    }

    /// Parses case YAML; `base` is the folder relative zone paths start from.
    pub fn parse(file: &Arc<SourceFile>, base: &Path) -> (Option<Self>, Diagnostics) {
        let raw = match serde_saphyr::from_str::<RawCase>(&file.text) {
            Ok(raw) => raw,
            Err(err) => return (None, Diagnostics(vec![Diagnostic::from_yaml(file, &err)])),
        };
        let mut diagnostics = Diagnostics::default();
        let zone_span = Span::of(file, &raw.zone);
        let (zones, found) = match raw.zone.value {
            RawZoneRef::Path(path) => {
                let (set, mut found) = ZoneSet::load(&[base.join(&path)]);
                if set.is_none() {
                    found.push(Diagnostic::error(
                        zone_span.clone(),
                        format!("the zone `{path}` has errors (above)"),
                    ));
                }
                (set, found)
            }
            RawZoneRef::Inline(raw_zone) => match Zone::from_raw(*raw_zone, file) {
                (Some(zone), mut found) => {
                    let (set, more) = ZoneSet::new(vec![zone]);
                    found.extend(more);
                    let set = (!found.has_errors()).then_some(set);
                    (set, found)
                }
                (None, found) => (None, found),
            },
        };
        diagnostics.extend(found);
        let Some(zones) = zones else {
            return (None, diagnostics);
        };

        let mut servers = Vec::new();
        for raw_server in &raw.servers {
            if let Some(server) = convert_server(file, raw_server, &zones, &mut diagnostics) {
                servers.push(server);
            }
        }
        check_servers(&servers, &zones, &mut diagnostics);
        let id = raw.id.value.clone();
        if id.is_empty()
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        {
            diagnostics.push(Diagnostic::error(
                Span::of(file, &raw.id),
                "an id may hold only letters, digits, `-`, `_` and `.` (it names files)",
            ));
        }
        let named = raw
            .covers
            .iter()
            .map(|c| (c.value.as_str(), Span::of(file, c)))
            .chain(
                raw.checks
                    .iter()
                    .map(|c| (c.value.id.as_str(), Span::of(file, c))),
            );
        for (id, span) in named {
            if !CHECKLIST.contains(&id) {
                diagnostics.push(Diagnostic::error(
                    span,
                    format!("`{id}` is not a checklist id (L1–L12, T1–T6, F1–F5, D1–D6, C1–C3)"),
                ));
            }
        }
        for check in &raw.checks {
            if let Some(problem) = check.value.params.problem(&check.value.id) {
                diagnostics.push(Diagnostic::error(Span::of(file, check), problem));
            }
        }
        let settings = raw
            .profile
            .map(|settings| settings.check(file, &mut diagnostics))
            .unwrap_or_default();
        let mut requests = 0u64;
        for step in &raw.steps {
            if let Some(problem) = step.value.excessive_repeat() {
                diagnostics.push(Diagnostic::error(Span::of(file, step), problem));
                continue;
            }
            let before = requests;
            requests = requests.saturating_add(step.value.requests());
            if before <= MAX_REQUESTS && requests > MAX_REQUESTS {
                diagnostics.push(Diagnostic::error(
                    Span::of(file, step),
                    format!(
                        "with this step the case asks the device for {requests} requests, more than {MAX_REQUESTS}: split it into cases"
                    ),
                ));
            }
        }
        let mut zone_changes = BTreeMap::new();
        for step in &raw.steps {
            let mut paths = Vec::new();
            zone_paths(&step.value, &mut paths);
            for path in paths {
                if zone_changes.contains_key(&path) {
                    continue;
                }
                let (set, found) = ZoneSet::load(&[base.join(&path)]);
                let failed = set.is_none();
                diagnostics.extend(found);
                match set {
                    Some(set) if !failed => {
                        check_servers_resolve(&servers, &set, file, step, &path, &mut diagnostics);
                        zone_changes.insert(path, set);
                    }
                    _ => diagnostics.push(Diagnostic::error(
                        Span::of(file, step),
                        format!("the zone `{path}` of this step has errors (above)"),
                    )),
                }
            }
        }
        let domain = zones
            .zones
            .first()
            .map(|z| z.origin.to_ascii().trim_end_matches('.').to_string())
            .unwrap_or_default();
        let steps: Vec<Step> = raw.steps.into_iter().map(|s| s.value).collect();
        let mut requires = raw.requires.clone();
        requires.sort();
        requires.dedup();
        let case = Self {
            title: raw.title.unwrap_or_else(|| id.clone()),
            id,
            covers: raw.covers.into_iter().map(|c| c.value).collect(),
            zones,
            servers,
            uri: device_uri(file, raw.device.uri, "uri", &mut diagnostics)
                .unwrap_or_else(|| format!("sip:100@{domain}")),
            aor: device_uri(file, raw.device.aor, "aor", &mut diagnostics)
                .unwrap_or_else(|| format!("sip:alice@{domain}")),
            steps,
            zone_changes,
            requires,
            check_params: raw
                .checks
                .iter()
                .filter(|c| c.value.params != CheckParams::default())
                .map(|c| (c.value.id.clone(), c.value.params.clone()))
                .collect(),
            checks: raw.checks.into_iter().map(|c| c.value.id).collect(),
            profile: settings,
            file: file.clone(),
        };
        if diagnostics.has_errors() {
            (None, diagnostics.sorted())
        } else {
            (Some(case), diagnostics.sorted())
        }
    }
}

/// A URI the case wrote for the device, checked now: a trigger passes it on, and the run must
/// not be the first to find it broken.
fn device_uri(
    file: &Arc<SourceFile>,
    written: Option<Spanned<String>>,
    what: &str,
    diagnostics: &mut Diagnostics,
) -> Option<String> {
    let written = written?;
    if let Err(err) = SipUri::parse(&written.value) {
        diagnostics.push(Diagnostic::error(
            Span::of(file, &written),
            format!("device {what}: {err}"),
        ));
    }
    Some(written.value.trim().to_string())
}

fn convert_server(
    file: &Arc<SourceFile>,
    raw: &Spanned<RawServer>,
    zones: &ZoneSet,
    diagnostics: &mut Diagnostics,
) -> Option<ServerSpec> {
    let span = Span::of(file, raw);
    let raw = &raw.value;
    let host_span = Span::of(file, &raw.host);
    let host = match super::zone::parse_absolute(&raw.host.value) {
        Ok(host) => host,
        Err(why) => {
            diagnostics.push(Diagnostic::error(host_span, why));
            return None;
        }
    };
    let zone_addresses: Vec<IpAddr> = zones
        .records_at(&host, hickory_server::proto::rr::RecordType::A)
        .chain(zones.records_at(&host, hickory_server::proto::rr::RecordType::AAAA))
        .filter_map(|r| match r.data {
            RecordData::A(a) => Some(IpAddr::V4(a)),
            RecordData::Aaaa(a) => Some(IpAddr::V6(a)),
            _ => None,
        })
        .collect();
    let addresses = match &raw.addresses {
        Some(given) => {
            for address in &given.value {
                if !zone_addresses.contains(address) {
                    diagnostics.push(Diagnostic::warning(
                        Span::of(file, given),
                        format!(
                            "{address} is not an address of `{host}` in the zone: devices that resolve the name will not reach it there"
                        ),
                    ));
                }
            }
            if given.value.is_empty() {
                diagnostics.push(Diagnostic::error(
                    Span::of(file, given),
                    "a server needs at least one address",
                ));
            }
            given.value.clone()
        }
        None if zone_addresses.is_empty() => {
            diagnostics.push(Diagnostic::error(
                host_span,
                format!(
                    "`{host}` has no A or AAAA record in the zone: give the server `addresses`"
                ),
            ));
            return None;
        }
        None => zone_addresses,
    };
    let transports = match &raw.transports {
        Some(given) if given.value.is_empty() => {
            diagnostics.push(Diagnostic::error(
                Span::of(file, given),
                "a server needs at least one transport (udp, tcp, tls)",
            ));
            return None;
        }
        Some(given) => {
            let mut unique = given.value.clone();
            unique.dedup();
            unique
        }
        None => vec![Transport::Udp, Transport::Tcp],
    };

    let phases = &raw.script.value;
    if phases.is_empty() {
        diagnostics.push(Diagnostic::error(
            Span::of(file, &raw.script),
            "a script needs at least one phase",
        ));
        return None;
    }
    let mut script = Vec::new();
    for (index, phase) in phases.iter().enumerate() {
        let last = index + 1 == phases.len();
        if let Some(phase) = convert_phase(file, phase, last, diagnostics) {
            script.push(phase);
        }
    }
    if let Some(tls) = &raw.tls
        && !transports.contains(&Transport::Tls)
    {
        diagnostics.push(Diagnostic::warning(
            Span::of(file, tls),
            "`tls` has no effect: the server does not listen on tls",
        ));
    }
    (script.len() == phases.len()).then(|| ServerSpec {
        host,
        addresses,
        // RFC 3261 §19.1.2: 5061 for a server that only speaks TLS.
        port: raw
            .port
            .unwrap_or(if transports.iter().all(|t| *t == Transport::Tls) {
                5061
            } else {
                5060
            }),
        transports,
        tls: raw.tls.as_ref().map(|t| t.value).unwrap_or_default(),
        script,
        span,
    })
}

fn convert_phase(
    file: &Arc<SourceFile>,
    spanned: &Spanned<RawPhase>,
    last: bool,
    diagnostics: &mut Diagnostics,
) -> Option<Phase> {
    let phase = &spanned.value;
    let name = phase.behaviour.value;
    let before = diagnostics.error_count();
    // Which optional fields each behaviour takes.
    let allowed: &[&str] = match name {
        BehaviourName::Accept => &["challenge", "expires"],
        BehaviourName::Reply => &["status", "reason", "retry_after", "methods"],
        BehaviourName::Stall => &["trying"],
        BehaviourName::Refuse => &[],
        BehaviourName::Delay => &["delay", "expires"],
    };
    let given: [(&str, Option<Span>); 8] = [
        (
            "challenge",
            phase.challenge.as_ref().map(|s| Span::of(file, s)),
        ),
        ("expires", phase.expires.as_ref().map(|s| Span::of(file, s))),
        ("status", phase.status.as_ref().map(|s| Span::of(file, s))),
        ("reason", phase.reason.as_ref().map(|s| Span::of(file, s))),
        (
            "retry_after",
            phase.retry_after.as_ref().map(|s| Span::of(file, s)),
        ),
        ("methods", phase.methods.as_ref().map(|s| Span::of(file, s))),
        ("trying", phase.trying.as_ref().map(|s| Span::of(file, s))),
        ("delay", phase.delay.as_ref().map(|s| Span::of(file, s))),
    ];
    let behaviour_text = serde_json::to_string(&name).unwrap_or_default();
    let behaviour_text = behaviour_text.trim_matches('"');
    for (field, span) in &given {
        if let Some(span) = span
            && !allowed.contains(field)
        {
            diagnostics.push(Diagnostic::error(
                span.clone(),
                format!(
                    "`{field}` does not apply to behaviour `{behaviour_text}`{}",
                    if allowed.is_empty() {
                        String::new()
                    } else {
                        format!(" (it takes {})", allowed.join(", "))
                    }
                ),
            ));
        }
    }
    let expires = phase.expires.as_ref().map_or(DEFAULT_EXPIRES, |e| e.value);
    let behaviour = match name {
        BehaviourName::Accept => Behaviour::Accept {
            challenge: phase.challenge.as_ref().is_some_and(|c| c.value),
            expires,
        },
        BehaviourName::Reply => {
            let Some(status) = &phase.status else {
                diagnostics.push(Diagnostic::error(
                    Span::of(file, &phase.behaviour),
                    "behaviour `reply` needs a `status`, e.g. status: 503",
                ));
                return None;
            };
            if !(100..=699).contains(&status.value) {
                diagnostics.push(Diagnostic::error(
                    Span::of(file, status),
                    format!("status {} is not a SIP status (100–699)", status.value),
                ));
            }
            let methods = phase.methods.as_ref().map(|m| {
                m.value
                    .iter()
                    .map(|method| method.to_ascii_uppercase())
                    .collect::<Vec<_>>()
            });
            if let Some(list) = &phase.methods
                && list.value.is_empty()
            {
                diagnostics.push(Diagnostic::error(
                    Span::of(file, list),
                    "an empty `methods` list matches nothing: leave it out to answer every method",
                ));
            }
            Behaviour::Reply {
                status: status.value,
                reason: phase.reason.as_ref().map(|r| r.value.clone()),
                retry_after: phase.retry_after.as_ref().map(|r| r.value),
                methods,
            }
        }
        BehaviourName::Stall => Behaviour::Stall {
            trying: phase.trying.as_ref().is_some_and(|t| t.value),
        },
        BehaviourName::Refuse => Behaviour::Refuse,
        BehaviourName::Delay => {
            let Some(delay) = &phase.delay else {
                diagnostics.push(Diagnostic::error(
                    Span::of(file, &phase.behaviour),
                    "behaviour `delay` needs a `delay`, e.g. delay: 2s",
                ));
                return None;
            };
            Behaviour::Delay {
                delay: delay.value.0,
                expires,
            }
        }
    };
    let until = phase.until.as_ref().map(|u| u.value.clone());
    match (&phase.until, last) {
        (Some(until), true) => diagnostics.push(Diagnostic::error(
            Span::of(file, until),
            "the last phase runs to the end of the case: remove `until` (or add a phase after it)",
        )),
        (None, false) => diagnostics.push(Diagnostic::error(
            Span::of(file, &phase.behaviour),
            "this phase never ends, so the phases after it never run: add `until`",
        )),
        (Some(spanned), false) => {
            if matches!(spanned.value, Until::Requests(_)) && name == BehaviourName::Refuse {
                diagnostics.push(Diagnostic::error(
                    Span::of(file, spanned),
                    "a refusing server never sees a request: end this phase `after` a time or at a `step`",
                ));
            }
            if let Until::Requests(0) = spanned.value {
                diagnostics.push(Diagnostic::error(
                    Span::of(file, spanned),
                    "`requests: 0` ends the phase before it starts: remove the phase",
                ));
            }
        }
        (None, true) => {}
    }
    (diagnostics.error_count() == before).then_some(Phase { behaviour, until })
}

/// Checks across servers: one server per host and port (a host may run several, on different
/// ports, as D3's cases need), one listener per address, port and transport; and the zone's
/// SRV records should lead to a server that listens.
fn check_servers(servers: &[ServerSpec], zones: &ZoneSet, diagnostics: &mut Diagnostics) {
    let mut hosts: HashMap<String, Vec<&ServerSpec>> = HashMap::new();
    // Keyed by the kernel's socket: tls listens on TCP, so tcp and tls cannot share a port.
    let mut sockets: HashMap<(IpAddr, u16, Transport), (&ServerSpec, Transport)> = HashMap::new();
    for server in servers {
        let same_host = hosts
            .entry(server.host.to_lowercase().to_ascii())
            .or_default();
        if let Some(first) = same_host.iter().find(|s| s.port == server.port) {
            diagnostics.push(Diagnostic::error(
                server.span.clone(),
                format!(
                    "`{}` already has a server on port {} (at {})",
                    server.host, server.port, first.span
                ),
            ));
        }
        same_host.push(server);
        for address in &server.addresses {
            for transport in &server.transports {
                let socket = match transport {
                    Transport::Tls => Transport::Tcp,
                    other => *other,
                };
                if let Some((first, taken_by)) =
                    sockets.insert((*address, server.port, socket), (server, *transport))
                {
                    diagnostics.push(Diagnostic::error(
                        server.span.clone(),
                        format!(
                            "{address}:{} over {transport} is taken by `{}` (at {}){}",
                            server.port,
                            first.host,
                            first.span,
                            if taken_by == *transport {
                                String::new()
                            } else {
                                format!(
                                    " over {taken_by}: tls listens on TCP, give one of them another `port`"
                                )
                            }
                        ),
                    ));
                }
            }
        }
    }
    // An SRV record that sends devices to host:port over a transport no server listens on is
    // probably a mistake in the case (a deliberate dead target should say `refuse`).
    for zone in &zones.zones {
        for record in &zone.records {
            let RecordData::Srv { target, port, .. } = &record.data else {
                continue;
            };
            let Some(same_host) = hosts.get(&target.to_lowercase().to_ascii()) else {
                continue;
            };
            let mut labels = record.name.iter().map(|l| l.to_ascii_lowercase());
            let (service, proto) = (labels.next(), labels.next());
            let transport = match (service.as_deref(), proto.as_deref()) {
                (Some(b"_sips"), Some(b"_tcp")) => Some(Transport::Tls),
                (_, Some(b"_udp")) => Some(Transport::Udp),
                (_, Some(b"_tcp")) => Some(Transport::Tcp),
                _ => None,
            };
            let served = same_host.iter().any(|server| {
                *port == server.port && transport.is_none_or(|t| server.transports.contains(&t))
            });
            if !served {
                diagnostics.push(Diagnostic::warning(
                    record.target_span.clone(),
                    format!(
                        "this SRV record sends devices to {target}:{port}{}, where the case's server does not listen",
                        transport.map(|t| format!(" over {t}")).unwrap_or_default()
                    ),
                ));
            }
        }
    }
}

/// The zone files a step (and the trials inside it) switch to.
fn zone_paths(step: &Step, out: &mut Vec<String>) {
    match step {
        Step::Zone(path) => out.push(path.clone()),
        Step::Trials(trials) => {
            for inner in &trials.steps {
                zone_paths(inner, out);
            }
        }
        _ => {}
    }
}

/// Every scripted server must keep an address in a zone a step switches to: a server the new
/// zone no longer names could never be reached, which is a mistake in the case.
fn check_servers_resolve(
    servers: &[ServerSpec],
    zones: &ZoneSet,
    file: &Arc<SourceFile>,
    step: &Spanned<Step>,
    path: &str,
    diagnostics: &mut Diagnostics,
) {
    for server in servers {
        let named = zones.zones.iter().any(|zone| {
            zone.records.iter().any(|r| {
                r.name == server.host && matches!(r.data, RecordData::A(_) | RecordData::Aaaa(_))
            })
        });
        if !named {
            diagnostics.push(Diagnostic::warning(
                Span::of(file, step),
                format!(
                    "the zone `{path}` has no address for the server {}: it cannot be reached after this step",
                    server.name()
                ),
            ));
        }
    }
}
