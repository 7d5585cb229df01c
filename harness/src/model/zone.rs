//! Zones in YAML: what srvlab's DNS server is authoritative for.
//!
//! ```yaml
//! origin: snom.rocks.
//! ttl: 300                 # default TTL of every record
//! additional: all          # SRV answers carry every target's A/AAAA (BIND) or `none`
//! records:
//!   - NAPTR: {name: "@", order: 1, preference: 60, flags: s, service: SIP+D2U,
//!             regexp: "", replacement: _sip._udp}
//!   - SRV: {name: _sip._udp, priority: 1, weight: 50, port: 5060, target: sipserver52}
//!   - A: {name: sipserver52, address: 127.0.0.52, ttl: 60}
//! faults:
//!   - {name: _sip._udp, type: SRV, fault: timeout, times: 1}
//! ```
//!
//! Names follow zone-file rules: `@` is the origin, a name without a trailing dot is relative
//! to it. Records are externally tagged so that saphyr keeps exact locations for every field.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use hickory_server::proto::rr::rdata::{self, A, AAAA, CNAME, NAPTR, SRV};
use hickory_server::proto::rr::{Name, RData, Record, RecordType};
use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

use super::diag::{Diagnostic, Diagnostics, SourceFile, Span};

/// RFC 2181 §8: TTLs are 31-bit; a larger value is treated as zero by resolvers.
pub const MAX_TTL: u32 = (1 << 31) - 1;

// ---------------------------------------------------------------------------------------------
// The YAML as written.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawZone {
    origin: Spanned<String>,
    ttl: Spanned<u32>,
    #[serde(default)]
    negative_ttl: Option<Spanned<u32>>,
    #[serde(default)]
    additional: Option<Additional>,
    records: Vec<Spanned<RawRecord>>,
    #[serde(default)]
    faults: Vec<Spanned<RawFault>>,
}

#[derive(Debug, Deserialize)]
#[allow(clippy::upper_case_acronyms)]
enum RawRecord {
    NAPTR(Box<RawNaptr>),
    SRV(RawSrv),
    A(RawA),
    AAAA(RawAaaa),
    CNAME(RawCname),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNaptr {
    name: Spanned<String>,
    #[serde(default)]
    ttl: Option<Spanned<u32>>,
    order: u16,
    preference: u16,
    flags: Spanned<String>,
    service: Spanned<String>,
    regexp: Spanned<String>,
    replacement: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSrv {
    name: Spanned<String>,
    #[serde(default)]
    ttl: Option<Spanned<u32>>,
    priority: u16,
    weight: u16,
    port: u16,
    target: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawA {
    name: Spanned<String>,
    #[serde(default)]
    ttl: Option<Spanned<u32>>,
    address: Ipv4Addr,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAaaa {
    name: Spanned<String>,
    #[serde(default)]
    ttl: Option<Spanned<u32>>,
    address: Ipv6Addr,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCname {
    name: Spanned<String>,
    #[serde(default)]
    ttl: Option<Spanned<u32>>,
    target: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFault {
    name: Spanned<String>,
    #[serde(default, rename = "type")]
    qtype: Option<Spanned<String>>,
    fault: DnsFaultKind,
    #[serde(default)]
    times: Option<u32>,
}

// ---------------------------------------------------------------------------------------------
// The zone as served.

/// Which records an SRV answer carries in its additional section.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Additional {
    /// Every target's A and AAAA records, as BIND does.
    #[default]
    All,
    /// Nothing: the client must query each target itself.
    None,
}

/// A scripted DNS failure for one name (and optionally one type).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DnsFaultKind {
    /// The query is taken and never answered: the client must time out.
    Timeout,
    /// Answered with SERVFAIL.
    Servfail,
    /// Over UDP, an empty answer with TC set, so the client must retry over TCP.
    Truncate,
}

impl DnsFaultKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Servfail => "servfail",
            Self::Truncate => "truncate",
        }
    }
}

impl fmt::Display for DnsFaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DnsFaultKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "timeout" => Ok(Self::Timeout),
            "servfail" => Ok(Self::Servfail),
            "truncate" => Ok(Self::Truncate),
            other => Err(format!(
                "unknown DNS fault `{other}`, expected timeout, servfail or truncate"
            )),
        }
    }
}

/// A DNS fault: queries for `name` (of `qtype`, or any type) get `kind`, for the first
/// `times` matching queries or for all of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsFault {
    pub name: Name,
    pub qtype: Option<RecordType>,
    pub kind: DnsFaultKind,
    pub times: Option<u32>,
}

impl DnsFault {
    pub fn matches(&self, name: &Name, qtype: RecordType) -> bool {
        // Name equality ignores case, as DNS does.
        self.name == *name && self.qtype.is_none_or(|t| t == qtype)
    }
}

impl FromStr for DnsFault {
    type Err = String;

    /// `NAME[/TYPE]=KIND[xN]`, e.g. `_sip._udp.snom.rocks./SRV=timeout` or
    /// `snom.rocks.=servfailx2`, for the command line.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (target, kind) = s
            .rsplit_once('=')
            .ok_or_else(|| format!("`{s}`: expected NAME[/TYPE]=timeout|servfail|truncate"))?;
        let (kind, times) = match kind.split_once('x') {
            Some((kind, n)) => (
                kind,
                Some(
                    n.parse::<u32>()
                        .map_err(|_| format!("`{s}`: `x{n}` must be a count, e.g. x2"))?,
                ),
            ),
            None => (kind, None),
        };
        let (name, qtype) = match target.split_once('/') {
            Some((name, qtype)) => (
                name,
                Some(
                    RecordType::from_str(&qtype.to_ascii_uppercase())
                        .map_err(|_| format!("`{s}`: unknown record type `{qtype}`"))?,
                ),
            ),
            None => (target, None),
        };
        let name = parse_absolute(name).map_err(|why| format!("`{s}`: {why}"))?;
        Ok(Self {
            name,
            qtype,
            kind: kind.parse()?,
            times,
        })
    }
}

/// The data of one record, in the types the zone file allows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordData {
    Naptr {
        order: u16,
        preference: u16,
        flags: String,
        service: String,
        regexp: String,
        replacement: Name,
    },
    Srv {
        priority: u16,
        weight: u16,
        port: u16,
        target: Name,
    },
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Cname(Name),
}

impl RecordData {
    pub fn record_type(&self) -> RecordType {
        match self {
            Self::Naptr { .. } => RecordType::NAPTR,
            Self::Srv { .. } => RecordType::SRV,
            Self::A(_) => RecordType::A,
            Self::Aaaa(_) => RecordType::AAAA,
            Self::Cname(_) => RecordType::CNAME,
        }
    }

    fn to_rdata(&self) -> RData {
        match self {
            Self::Naptr {
                order,
                preference,
                flags,
                service,
                regexp,
                replacement,
            } => RData::NAPTR(NAPTR::new(
                *order,
                *preference,
                flags.as_bytes().into(),
                service.as_bytes().into(),
                regexp.as_bytes().into(),
                replacement.clone(),
            )),
            Self::Srv {
                priority,
                weight,
                port,
                target,
            } => RData::SRV(SRV::new(*priority, *weight, *port, target.clone())),
            Self::A(address) => RData::A(A(*address)),
            Self::Aaaa(address) => RData::AAAA(AAAA(*address)),
            Self::Cname(target) => RData::CNAME(CNAME(target.clone())),
        }
    }
}

/// One record of a zone, with where it was written.
#[derive(Clone, Debug)]
pub struct ZoneRecord {
    pub name: Name,
    pub ttl: u32,
    pub data: RecordData,
    /// Where the record starts.
    pub span: Span,
    /// Where its target (SRV target, NAPTR replacement, CNAME target) is written.
    pub target_span: Span,
}

impl ZoneRecord {
    pub fn to_record(&self) -> Record {
        Record::from_rdata(self.name.clone(), self.ttl, self.data.to_rdata())
    }
}

/// A validated zone.
#[derive(Clone, Debug)]
pub struct Zone {
    pub origin: Name,
    pub ttl: u32,
    /// The SOA MINIMUM, which bounds how long resolvers cache NXDOMAIN/NODATA (RFC 2308).
    pub negative_ttl: u32,
    pub additional: Additional,
    pub records: Vec<ZoneRecord>,
    pub faults: Vec<DnsFault>,
    /// Where the zone was written (its `origin` key).
    pub span: Span,
}

/// Parses a name the command line gave (always taken as absolute).
pub fn parse_absolute(text: &str) -> Result<Name, String> {
    let text = if text.ends_with('.') {
        text.to_string()
    } else {
        format!("{text}.")
    };
    parse_name(&text, &Name::root())
}

/// Zone-file name rules: `@` is the origin, `.` the root, a trailing dot makes a name absolute,
/// anything else is relative to `origin`. Labels are letters, digits, `-` and `_` (SRV and NAPTR
/// names need underscores), or a lone `*` as the first label.
fn parse_name(text: &str, origin: &Name) -> Result<Name, String> {
    if text == "@" {
        return Ok(origin.clone());
    }
    if text == "." {
        return Ok(Name::root());
    }
    if text.is_empty() {
        return Err("a name cannot be empty (write \"@\" for the origin)".into());
    }
    let absolute = text.ends_with('.');
    let body = text.strip_suffix('.').unwrap_or(text);
    for (index, label) in body.split('.').enumerate() {
        if label.is_empty() {
            return Err(format!("`{text}` has an empty label"));
        }
        if label.len() > 63 {
            return Err(format!("label `{label}` is longer than 63 characters"));
        }
        let ok = (label == "*" && index == 0)
            || label
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !ok {
            return Err(format!(
                "label `{label}` may hold only letters, digits, `-` and `_`"
            ));
        }
    }
    let name = Name::from_ascii(text).map_err(|err| format!("`{text}`: {err}"))?;
    let name = if absolute {
        name
    } else {
        name.append_domain(origin)
            .map_err(|err| format!("`{text}` relative to `{origin}`: {err}"))?
    };
    if name.len() > 255 {
        return Err(format!("`{name}` is longer than 255 characters"));
    }
    Ok(name)
}

/// Collects diagnostics while a zone is converted; `None` where a value was unusable.
struct Checker<'a> {
    file: &'a Arc<SourceFile>,
    diagnostics: Diagnostics,
}

impl Checker<'_> {
    fn span<T>(&self, spanned: &Spanned<T>) -> Span {
        Span::of(self.file, spanned)
    }

    fn error(&mut self, span: Span, message: impl Into<String>) {
        self.diagnostics.push(Diagnostic::error(span, message));
    }

    fn warning(&mut self, span: Span, message: impl Into<String>) {
        self.diagnostics.push(Diagnostic::warning(span, message));
    }

    fn name(&mut self, text: &Spanned<String>, origin: &Name) -> Option<Name> {
        match parse_name(&text.value, origin) {
            Ok(name) => Some(name),
            Err(why) => {
                let span = self.span(text);
                self.error(span, why);
                None
            }
        }
    }

    /// An owner name: must lie inside the zone.
    fn owner(&mut self, text: &Spanned<String>, origin: &Name) -> Option<Name> {
        let name = self.name(text, origin)?;
        if !origin.zone_of(&name) {
            let span = self.span(text);
            self.error(
                span,
                format!("`{name}` is outside the zone's origin `{origin}`"),
            );
            return None;
        }
        Some(name)
    }

    fn ttl(&mut self, ttl: &Spanned<u32>) -> u32 {
        if ttl.value > MAX_TTL {
            let span = self.span(ttl);
            self.error(
                span,
                format!(
                    "TTL {} is above 2147483647, the largest RFC 2181 allows",
                    ttl.value
                ),
            );
        }
        ttl.value
    }
}

impl Zone {
    /// Parses and validates zone YAML held in `file`.
    pub fn parse(file: &Arc<SourceFile>) -> (Option<Self>, Diagnostics) {
        let blank = crate::model::diag::lines(&file.text)
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'));
        if blank {
            let message = "the file holds no zone: write `origin`, `ttl` and `records`";
            return (
                None,
                Diagnostics(vec![Diagnostic::error(Span::new(file, 1, 1), message)]),
            );
        }
        match serde_saphyr::from_str::<RawZone>(&file.text) {
            Ok(raw) => Self::from_raw(raw, file),
            Err(err) => (None, Diagnostics(vec![Diagnostic::from_yaml(file, &err)])),
        }
    }

    /// Validates a zone read from YAML (a zone file, or a zone inline in a case file).
    pub fn from_raw(raw: RawZone, file: &Arc<SourceFile>) -> (Option<Self>, Diagnostics) {
        let mut check = Checker {
            file,
            diagnostics: Diagnostics::default(),
        };
        let zone_span = check.span(&raw.origin);
        let origin = match raw.origin.value.as_str() {
            "@" | "." => {
                check.error(
                    zone_span.clone(),
                    "the origin must be a domain name such as `example.test.`",
                );
                None
            }
            text => check.name(&raw.origin, &Name::root()).map(|name| {
                // An origin is absolute whether or not it ends with a dot.
                if text.ends_with('.') {
                    name
                } else {
                    let mut name = name;
                    name.set_fqdn(true);
                    name
                }
            }),
        };
        let Some(origin) = origin else {
            return (None, check.diagnostics);
        };
        let ttl = check.ttl(&raw.ttl);
        let negative_ttl = raw.negative_ttl.as_ref().map_or(ttl, |t| check.ttl(t));

        let mut records = Vec::new();
        for spanned in &raw.records {
            let span = check.span(spanned);
            if let Some(record) = convert_record(&mut check, &spanned.value, &origin, ttl, span) {
                records.push(record);
            }
        }
        check_rrsets(&mut check, &records, &origin);

        let mut faults = Vec::new();
        for spanned in &raw.faults {
            let fault = &spanned.value;
            let Some(name) = check.owner(&fault.name, &origin) else {
                continue;
            };
            let qtype = match &fault.qtype {
                None => None,
                Some(text) => match RecordType::from_str(&text.value.to_ascii_uppercase()) {
                    Ok(t) if !matches!(t, RecordType::Unknown(_)) => Some(t),
                    _ => {
                        let span = check.span(text);
                        check.error(span, format!("unknown record type `{}`", text.value));
                        continue;
                    }
                },
            };
            faults.push(DnsFault {
                name,
                qtype,
                kind: fault.fault,
                times: fault.times,
            });
        }

        let zone = Self {
            origin,
            ttl,
            negative_ttl,
            additional: raw.additional.unwrap_or_default(),
            records,
            faults,
            span: zone_span,
        };
        let diagnostics = check.diagnostics;
        if diagnostics.has_errors() {
            (None, diagnostics)
        } else {
            (Some(zone), diagnostics)
        }
    }

    /// The records as served: a record written twice is served once.
    pub fn served_records(&self) -> impl Iterator<Item = &ZoneRecord> {
        self.records
            .iter()
            .enumerate()
            .filter_map(|(index, record)| {
                let repeated = self.records[..index]
                    .iter()
                    .any(|r| r.name == record.name && r.data == record.data);
                (!repeated).then_some(record)
            })
    }

    /// The zone's records at `name` of type `qtype`.
    pub fn records_at<'a>(
        &'a self,
        name: &'a Name,
        qtype: RecordType,
    ) -> impl Iterator<Item = &'a ZoneRecord> + 'a {
        self.records
            .iter()
            .filter(move |r| r.name == *name && r.data.record_type() == qtype)
    }
}

fn convert_record(
    check: &mut Checker<'_>,
    raw: &RawRecord,
    origin: &Name,
    default_ttl: u32,
    span: Span,
) -> Option<ZoneRecord> {
    let (name, ttl) = match raw {
        RawRecord::NAPTR(r) => (&r.name, &r.ttl),
        RawRecord::SRV(r) => (&r.name, &r.ttl),
        RawRecord::A(r) => (&r.name, &r.ttl),
        RawRecord::AAAA(r) => (&r.name, &r.ttl),
        RawRecord::CNAME(r) => (&r.name, &r.ttl),
    };
    let owner = check.owner(name, origin);
    let ttl = ttl.as_ref().map_or(default_ttl, |t| check.ttl(t));
    let (data, target_span) = match raw {
        RawRecord::NAPTR(r) => {
            let target_span = check.span(&r.replacement);
            (check_naptr(check, r, origin)?, target_span)
        }
        RawRecord::SRV(r) => {
            let target_span = check.span(&r.target);
            let target = check.name(&r.target, origin)?;
            (
                RecordData::Srv {
                    priority: r.priority,
                    weight: r.weight,
                    port: r.port,
                    target,
                },
                target_span,
            )
        }
        RawRecord::A(r) => (RecordData::A(r.address), span.clone()),
        RawRecord::AAAA(r) => (RecordData::Aaaa(r.address), span.clone()),
        RawRecord::CNAME(r) => {
            let target_span = check.span(&r.target);
            let target = check.name(&r.target, origin)?;
            if target.is_root() {
                check.error(target_span.clone(), "a CNAME cannot point at the root");
                return None;
            }
            (RecordData::Cname(target), target_span)
        }
    };
    Some(ZoneRecord {
        name: owner?,
        ttl,
        data,
        span,
        target_span,
    })
}

/// RFC 3403 §4.1 and RFC 3263 §4.1 rules for one NAPTR record.
fn check_naptr(check: &mut Checker<'_>, r: &RawNaptr, origin: &Name) -> Option<RecordData> {
    let flags = r.flags.value.clone();
    let flags_valid = flags.chars().all(|c| c.is_ascii_alphanumeric());
    if !flags_valid {
        let span = check.span(&r.flags);
        check.error(
            span,
            format!("NAPTR flags `{flags}` may hold only letters and digits (RFC 3403 §4.1)"),
        );
    }
    let service = r.service.value.clone();
    // The SIP-specific advice below only concerns records a SIP client would follow.
    let sip = is_sip_service(&service);
    if !sip {
        let span = check.span(&r.service);
        check.warning(
            span,
            format!(
                "service `{service}` is not a SIP service (SIP+D2U, SIP+D2T, SIPS+D2T, …): \
                 a SIP client must skip this record"
            ),
        );
    }
    let regexp = r.regexp.value.clone();
    let replacement = check.name(&r.replacement, origin)?;
    if !regexp.is_empty() && !replacement.is_root() {
        let span = check.span(&r.regexp);
        check.error(
            span,
            "a NAPTR record has either a regexp or a replacement, not both (RFC 3403 §4.1): \
             set regexp to \"\" or replacement to \".\"",
        );
    } else if sip && !regexp.is_empty() {
        let span = check.span(&r.regexp);
        check.warning(
            span,
            "SIP clients do not apply NAPTR regexps (RFC 3263 §4.1): use a replacement",
        );
    }
    let lower = flags.to_ascii_lowercase();
    if sip && flags_valid && !(lower.is_empty() || lower == "s" || lower == "a") {
        let span = check.span(&r.flags);
        check.warning(
            span,
            format!("flags `{flags}`: SIP uses \"s\" (RFC 3263 §4.1); a client will not follow it"),
        );
    }
    Some(RecordData::Naptr {
        order: r.order,
        preference: r.preference,
        flags,
        service,
        regexp,
        replacement,
    })
}

/// `SIP+D2x` or `SIPS+D2x` (RFC 3263 §4.1, RFC 7118), compared without case (RFC 3403).
pub fn is_sip_service(service: &str) -> bool {
    let upper = service.to_ascii_uppercase();
    let rest = upper
        .strip_prefix("SIPS+D2")
        .or_else(|| upper.strip_prefix("SIP+D2"));
    matches!(rest, Some(x) if x.len() == 1 && x.chars().all(|c| c.is_ascii_alphabetic()))
}

/// Checks that span records: one TTL per RRset, CNAME alone, duplicates, "." mixed in.
fn check_rrsets(check: &mut Checker<'_>, records: &[ZoneRecord], origin: &Name) {
    let mut rrsets: BTreeMap<(Name, RecordType), Vec<&ZoneRecord>> = BTreeMap::new();
    for record in records {
        rrsets
            .entry((record.name.to_lowercase(), record.data.record_type()))
            .or_default()
            .push(record);
    }
    let mut types_at: HashMap<Name, Vec<RecordType>> = HashMap::new();
    for (name, rtype) in rrsets.keys() {
        types_at.entry(name.clone()).or_default().push(*rtype);
    }
    for ((name, rtype), set) in &rrsets {
        let first = set[0];
        for (index, record) in set.iter().enumerate().skip(1) {
            if record.ttl != first.ttl {
                check.error(
                    record.span.clone(),
                    format!(
                        "TTL {} differs from TTL {} of the {rtype} record at line {}: \
                         the records of one RRset share one TTL (RFC 2181 §5.2)",
                        record.ttl, first.ttl, first.span.line
                    ),
                );
            }
            if let Some(same) = set[..index].iter().find(|r| r.data == record.data) {
                check.warning(
                    record.span.clone(),
                    format!(
                        "the same {rtype} record as at line {}: served once",
                        same.span.line
                    ),
                );
            }
        }
        if *rtype == RecordType::CNAME {
            if name == &origin.to_lowercase() {
                check.error(
                    first.span.clone(),
                    "a CNAME cannot stand at the origin, which holds the SOA and NS",
                );
            } else if set.len() > 1 {
                check.error(set[1].span.clone(), format!("`{name}` has two CNAMEs"));
            } else if types_at[name].len() > 1 {
                check.error(
                    first.span.clone(),
                    format!("`{name}` has a CNAME and other records: a CNAME stands alone (RFC 1034 §3.6.2)"),
                );
            }
        }
        if *rtype == RecordType::SRV && set.len() > 1 {
            for record in set {
                if let RecordData::Srv { target, .. } = &record.data
                    && target.is_root()
                {
                    check.warning(
                        record.target_span.clone(),
                        "target \".\" means \"no service\" only when it is the only SRV record \
                         of its name (RFC 2782)",
                    );
                }
            }
        }
    }
}

/// The zones one DNS server serves, checked against each other (targets may lie in any of them).
#[derive(Clone, Debug, Default)]
pub struct ZoneSet {
    pub zones: Vec<Zone>,
}

impl ZoneSet {
    /// Loads every file; the set comes back only when no file has an error.
    pub fn load(paths: &[impl AsRef<Path>]) -> (Option<Self>, Diagnostics) {
        let mut files = Vec::new();
        let mut unreadable = Diagnostics::default();
        for path in paths {
            match SourceFile::read(path.as_ref()) {
                Ok(file) => files.push(file),
                Err(diagnostic) => unreadable.push(*diagnostic),
            }
        }
        if !unreadable.is_empty() {
            return (None, unreadable);
        }
        Self::parse(&files)
    }

    /// Parses and checks zones already read, each file one zone.
    pub fn parse(files: &[Arc<SourceFile>]) -> (Option<Self>, Diagnostics) {
        let mut diagnostics = Diagnostics::default();
        let mut zones = Vec::new();
        for file in files {
            let (zone, found) = Zone::parse(file);
            diagnostics.extend(found);
            zones.extend(zone);
        }
        if diagnostics.has_errors() {
            return (None, diagnostics.sorted());
        }
        let (set, found) = Self::new(zones);
        diagnostics.extend(found);
        let diagnostics = diagnostics.sorted();
        if diagnostics.has_errors() {
            (None, diagnostics)
        } else {
            (Some(set), diagnostics)
        }
    }

    /// Checks the zones against each other: one zone per origin, SRV targets that resolve,
    /// NAPTR replacements that lead somewhere.
    pub fn new(zones: Vec<Zone>) -> (Self, Diagnostics) {
        let set = Self { zones };
        let mut diagnostics = Diagnostics::default();
        for (index, zone) in set.zones.iter().enumerate() {
            if let Some(earlier) = set.zones[..index].iter().find(|z| z.origin == zone.origin) {
                diagnostics.push(Diagnostic::error(
                    zone.span.clone(),
                    format!(
                        "zone `{}` is defined twice (first at {})",
                        zone.origin, earlier.span
                    ),
                ));
            }
        }
        for zone in &set.zones {
            for record in &zone.records {
                diagnostics.extend(set.check_target(record));
            }
        }
        (set, diagnostics)
    }

    fn check_target(&self, record: &ZoneRecord) -> Option<Diagnostic> {
        let span = record.target_span.clone();
        match &record.data {
            RecordData::Srv { target, .. } if !target.is_root() => {
                if self.has(target, RecordType::CNAME) {
                    Some(Diagnostic::error(
                        span,
                        format!(
                            "SRV target `{target}` is an alias (CNAME); RFC 2782 requires the name of an address record"
                        ),
                    ))
                } else if self.has(target, RecordType::A) || self.has(target, RecordType::AAAA) {
                    None
                } else {
                    Some(Diagnostic::error(
                        span,
                        format!(
                            "SRV target `{target}` has no A or AAAA record in the zones served"
                        ),
                    ))
                }
            }
            RecordData::Naptr {
                flags, replacement, ..
            } if !replacement.is_root() => {
                let flags = flags.to_ascii_lowercase();
                let (wanted, leads) = match flags.as_str() {
                    "s" => ("SRV", self.has(replacement, RecordType::SRV)),
                    "a" => (
                        "A or AAAA",
                        self.has(replacement, RecordType::A)
                            || self.has(replacement, RecordType::AAAA),
                    ),
                    "" => ("NAPTR", self.has(replacement, RecordType::NAPTR)),
                    _ => return None,
                };
                (!leads).then(|| {
                    Diagnostic::warning(
                        span,
                        format!(
                            "replacement `{replacement}` leads nowhere: no {wanted} record there in the zones served"
                        ),
                    )
                })
            }
            _ => None,
        }
    }

    /// The zone that is authoritative for `name` (the one with the longest origin).
    pub fn zone_for(&self, name: &Name) -> Option<&Zone> {
        self.zones
            .iter()
            .filter(|z| z.origin.zone_of(name))
            .max_by_key(|z| z.origin.num_labels())
    }

    /// The records at `name` of type `qtype`, from the zone authoritative for `name`.
    pub fn records_at<'a>(
        &'a self,
        name: &'a Name,
        qtype: RecordType,
    ) -> impl Iterator<Item = &'a ZoneRecord> + 'a {
        self.zone_for(name)
            .into_iter()
            .flat_map(move |zone| zone.records_at(name, qtype))
    }

    fn has(&self, name: &Name, qtype: RecordType) -> bool {
        self.records_at(name, qtype).next().is_some()
    }

    /// Every fault of every zone.
    pub fn faults(&self) -> impl Iterator<Item = &DnsFault> {
        self.zones.iter().flat_map(|z| z.faults.iter())
    }
}

/// Made for every zone: the SOA (whose MINIMUM is the negative TTL) and one NS.
pub fn soa_and_ns(zone: &Zone, serial: u32) -> [Record; 2] {
    let ns = Name::from_ascii("ns")
        .and_then(|n| n.append_domain(&zone.origin))
        .unwrap_or_else(|_| zone.origin.clone());
    let hostmaster = Name::from_ascii("hostmaster")
        .and_then(|n| n.append_domain(&zone.origin))
        .unwrap_or_else(|_| zone.origin.clone());
    let soa = rdata::SOA::new(
        ns.clone(),
        hostmaster,
        serial,
        3600,
        600,
        86400,
        zone.negative_ttl,
    );
    [
        Record::from_rdata(zone.origin.clone(), zone.ttl, RData::SOA(soa)),
        Record::from_rdata(zone.origin.clone(), zone.ttl, RData::NS(rdata::NS(ns))),
    ]
}
