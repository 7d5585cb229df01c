//! Lab profiles: how the suite meets a real device on a lab network.
//!
//! ```yaml
//! lab: bench-1                      # a name for the reports
//! interface: eth1                   # where missing addresses go (`srvlab doctor` prints `ip addr add`)
//! dns: [192.168.77.1:53]            # where the phone's DNS points (DHCP option 6 / static)
//! addresses: [192.168.77.50, 192.168.77.51, 192.168.77.52]  # handed to each case's servers in order
//! hosts:                            # or fixed, by host name (before the pool)
//!   sipserver52.snom.rocks.: 192.168.77.52
//! device:
//!   address: 192.168.77.20          # only the device's traffic is judged: this address's,
//!   other_addresses: [192.168.77.21] # and these (addresses or prefixes: a proxy's resolver may ask DNS from another)
//!   sip_port: 5060                  # where `srvlab doctor` sends OPTIONS (optional)
//!   profile: ../profiles/snom.yaml  # what the device is configured with and claims
//!   act_within: 60s                 # how long it has to act after a trigger
//! trigger:
//!   kind: command                   # manual | command | http | passive
//!   register: [scripts/baresip-ctrl, "127.0.0.1:4444", uanew, "<{aor}>;regint=600"]
//!   call: [scripts/baresip-ctrl, "127.0.0.1:4444", dial, "{uri}"]
//!   hangup: [scripts/baresip-ctrl, "127.0.0.1:4444", hangup]
//! tls:                              # optional: the lab's own PKI (paths relative to this file)
//!   ca_cert: certs/lab-ca.pem       # the CA the phone trusts (PEM)
//!   ca_key: certs/lab-ca.key        # its key (PEM, PKCS#8): each host's certificate is issued from it
//!   certificates:                   # or fixed ones by host name, served as they are (chain + key)
//!     sipserver52.snom.rocks.: {cert: certs/s52.pem, key: certs/s52.key}
//! ```
//!
//! A host without a fixed certificate gets one issued by the lab's CA when `ca_key` is given,
//! else by a CA of the run (written as ca.pem beside each capture). A phone on a bench trusts
//! its lab's CA and cannot import a fresh one every run.
//!
//! A case speaks of server names and loopback addresses; a lab maps every address a case
//! uses (its servers' and its zone's A/AAAA records) to an address of this host, so the same
//! case runs unchanged on a bench. Templates take `{uri}`, `{user}`, `{domain}`, `{aor}`,
//! `{device}`, `{step}`, `{trial}`, `{request}` (the action's number in the case) and `{srvlab}` (this program, whose own UA can stand in
//! for a device).

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::case::Case;
use super::diag::{Diagnostic, Diagnostics, SourceFile, Span};
use super::duration::DurationSpec;
use super::profile::Profile;
use super::steps::Step;
pub use super::template::{Place, Template, Vars};
use super::zone::RecordData;
use crate::tls::{FixedCert, LabCa, LabPki};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLab {
    lab: Spanned<String>,
    #[serde(default)]
    interface: Option<String>,
    dns: Spanned<OneOrMany<SocketAddr>>,
    #[serde(default)]
    addresses: Vec<Spanned<IpAddr>>,
    #[serde(default)]
    hosts: BTreeMap<String, Spanned<IpAddr>>,
    device: RawDevice,
    trigger: Spanned<RawTrigger>,
    #[serde(default)]
    tls: Option<RawTls>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    #[serde(default)]
    ca_cert: Option<Spanned<String>>,
    #[serde(default)]
    ca_key: Option<Spanned<String>>,
    #[serde(default)]
    certificates: BTreeMap<String, RawFixed>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFixed {
    cert: Spanned<String>,
    key: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    fn into_vec(self) -> Vec<T> {
        match self {
            Self::One(one) => vec![one],
            Self::Many(many) => many,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDevice {
    address: Spanned<IpAddr>,
    /// Other addresses (or prefixes) the device sends from: a proxy's resolver may ask DNS
    /// from another address than its SIP socket, a phone may have a second interface.
    #[serde(default)]
    other_addresses: Vec<Spanned<String>>,
    #[serde(default)]
    sip_port: Option<u16>,
    profile: Spanned<String>,
    #[serde(default)]
    act_within: Option<Spanned<DurationSpec>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTrigger {
    kind: Spanned<TriggerKind>,
    #[serde(default)]
    register: Option<Spanned<RawAction>>,
    #[serde(default)]
    call: Option<Spanned<RawAction>>,
    #[serde(default)]
    hangup: Option<Spanned<RawAction>>,
    #[serde(default)]
    options: Option<Spanned<RawAction>>,
    /// Puts the device back to a cold start (empty DNS cache, no dirty hosts) between trials.
    #[serde(default)]
    reset: Option<Spanned<RawAction>>,
    #[serde(default)]
    auth: Option<HttpAuth>,
}

/// An action as written: a program and its arguments (command), a URL (http) or what to tell
/// the person (manual).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawAction {
    Text(String),
    Argv(Vec<String>),
}

/// How srvlab makes the device act.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TriggerKind {
    /// A person does it; srvlab prints what and waits for it on the wire.
    Manual,
    /// A program, run with an argument vector (never through a shell).
    Command,
    /// An HTTP GET (basic or digest auth), e.g. a Snom phone's `command.htm?number={user}`.
    Http,
    /// The device acts by itself (registration refreshes); srvlab only waits.
    Passive,
}

impl fmt::Display for TriggerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Manual => "manual",
            Self::Command => "command",
            Self::Http => "http",
            Self::Passive => "passive",
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpAuth {
    pub user: String,
    pub password: String,
    #[serde(default)]
    pub scheme: AuthScheme,
}

impl HttpAuth {
    /// What cannot go into an Authorization header as written: no control character anywhere,
    /// no `"` in a digest username (a quoted string, RFC 7616 §3.4), no `:` in a basic user-id
    /// (RFC 7617 §2).
    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (what, value) in [("user", &self.user), ("password", &self.password)] {
            if let Some(bad) = value.chars().find(|c| c.is_control()) {
                problems.push(format!(
                    "auth {what}: {bad:?} cannot go into an HTTP header"
                ));
            }
        }
        if self.user.contains('"') {
            problems.push("auth user: a `\"` cannot go into a digest username".into());
        }
        if self.user.contains(':') {
            problems.push("auth user: a `:` cannot go into a user name (RFC 7617 §2)".into());
        }
        problems
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthScheme {
    Basic,
    /// RFC 7616 digest with MD5, what desk phones' web servers speak; also answers a basic
    /// challenge.
    #[default]
    Digest,
}

/// What a step asks of the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    Register,
    Call,
    Hangup,
    Options,
    Reset,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Self::Register => "register",
            Self::Call => "call",
            Self::Hangup => "hangup",
            Self::Options => "options",
            Self::Reset => "reset",
        }
    }

    /// The request the action asks the device to send, if any.
    pub fn method(self) -> Option<&'static str> {
        match self {
            Self::Register => Some("REGISTER"),
            Self::Call => Some("INVITE"),
            Self::Options => Some("OPTIONS"),
            Self::Hangup => Some("BYE"),
            Self::Reset => None,
        }
    }

    /// What a person is asked to do when the lab does not say.
    fn default_prompt(self) -> &'static str {
        match self {
            Self::Register => "make the phone register {aor} (e.g. save its SIP account again)",
            Self::Call => "dial {user} on the phone now",
            Self::Hangup => "hang up the call on the phone",
            Self::Options => "make the phone send OPTIONS to {domain}",
            Self::Reset => "reboot the phone (it must start with an empty DNS cache)",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Trigger {
    pub kind: TriggerKind,
    pub actions: BTreeMap<Action, Template>,
    pub auth: Option<HttpAuth>,
}

impl Trigger {
    /// The actions `steps` ask of the device that this trigger cannot make it do (none for a
    /// passive trigger, which waits for what the device does by itself), in step order.
    pub fn missing_actions(&self, steps: &[Step]) -> Vec<Action> {
        let mut missing = Vec::new();
        if self.kind == TriggerKind::Passive {
            return missing;
        }
        let mut visit = |action: Action| {
            if self.template(action).is_none() && !missing.contains(&action) {
                missing.push(action);
            }
        };
        fn walk(steps: &[Step], visit: &mut dyn FnMut(Action)) {
            for step in steps {
                match step {
                    Step::Register | Step::Registers(_) => visit(Action::Register),
                    Step::Call | Step::Calls(_) => visit(Action::Call),
                    Step::Options => visit(Action::Options),
                    Step::Trials(trials) => walk(&trials.steps, visit),
                    Step::Wait(_) | Step::Step(_) | Step::Zone(_) => {}
                }
            }
        }
        walk(steps, &mut visit);
        missing
    }

    /// Why a case whose steps need `missing` cannot be run with this trigger, for its
    /// not-applicable verdicts, doctor and the console.
    pub fn lacks(&self, missing: &[Action]) -> String {
        let names: Vec<String> = missing.iter().map(|a| format!("`{}`", a.name())).collect();
        format!(
            "the lab's {} trigger has no {} action, which the steps of this case need: add {} to the lab's trigger",
            self.kind,
            names.join(" or "),
            if names.len() == 1 { "it" } else { "them" }
        )
    }

    /// The template for `action`; for a manual trigger, a default prompt when the lab gives
    /// none. `None`: the lab has no way to make the device do it.
    pub fn template(&self, action: Action) -> Option<Template> {
        match self.actions.get(&action) {
            Some(template) => Some(template.clone()),
            None if self.kind == TriggerKind::Manual && action != Action::Reset => {
                Some(Template::prompt(action.default_prompt()))
            }
            None => None,
        }
    }
}

/// The device as the lab knows it.
#[derive(Clone, Debug)]
pub struct LabDevice {
    /// Where srvlab reaches the device (doctor's OPTIONS, `{device}`); its traffic is judged.
    pub address: IpAddr,
    /// Every other address or prefix whose traffic is the device's too.
    pub other_addresses: Vec<IpNet>,
    pub sip_port: Option<u16>,
    pub profile_path: PathBuf,
    pub act_within: Duration,
}

impl LabDevice {
    /// Whether traffic from `ip` is the device's.
    pub fn sends_from(&self, ip: IpAddr) -> bool {
        ip == self.address || self.other_addresses.iter().any(|net| net.contains(&ip))
    }

    /// `192.168.77.20`, or `192.168.77.20 (also 127.0.0.1, 10.0.0.0/24)`.
    pub fn describe(&self) -> String {
        if self.other_addresses.is_empty() {
            return self.address.to_string();
        }
        let others: Vec<String> = self
            .other_addresses
            .iter()
            .map(ToString::to_string)
            .collect();
        format!("{} (also {})", self.address, others.join(", "))
    }
}

/// An address (a /32 or /128) or a prefix, as a lab writes it.
fn address_or_prefix(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(IpNet::from(ip));
    }
    text.parse::<IpNet>().map_err(|_| {
        format!("`{text}` is neither an address nor a prefix such as 192.168.77.16/29")
    })
}

/// How long a device has to act after a trigger when the lab does not say: a person needs
/// time to read and dial.
pub const DEFAULT_ACT_WITHIN: Duration = Duration::from_secs(60);

#[derive(Clone, Debug)]
pub struct Lab {
    pub name: String,
    pub interface: Option<String>,
    pub dns: Vec<SocketAddr>,
    /// Handed to each case's addresses in order of first use.
    pub pool: Vec<IpAddr>,
    /// Fixed addresses by host name (absolute, lower case).
    pub hosts: BTreeMap<String, IpAddr>,
    pub device: LabDevice,
    pub trigger: Trigger,
    /// The lab's own CA and fixed certificates (`tls:`); `None`: the run's CA, as without a lab.
    pub tls: Option<Arc<LabPki>>,
    pub file: Arc<SourceFile>,
}

/// A case that does not fit the lab.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error(
        "the case needs {needed} {family} address(es) for its servers and records, the lab {lab} has {available} (`addresses:` and `hosts:`)"
    )]
    TooFewAddresses {
        lab: String,
        family: &'static str,
        needed: usize,
        available: usize,
    },
}

impl Lab {
    pub fn load(path: &Path) -> (Option<Self>, Diagnostics) {
        match SourceFile::read(path) {
            Ok(file) => Self::parse(&file, path.parent().unwrap_or(Path::new("."))),
            Err(diagnostic) => (None, Diagnostics(vec![*diagnostic])),
        }
    }

    /// Parses a lab file; `base` is where the device profile's relative path starts.
    pub fn parse(file: &Arc<SourceFile>, base: &Path) -> (Option<Self>, Diagnostics) {
        let raw = match serde_saphyr::from_str::<RawLab>(&file.text) {
            Ok(raw) => raw,
            Err(err) => return (None, Diagnostics(vec![Diagnostic::from_yaml(file, &err)])),
        };
        let mut diagnostics = Diagnostics::default();
        let dns_span = Span::of(file, &raw.dns);
        let dns = raw.dns.value.into_vec();
        if dns.is_empty() {
            diagnostics.push(Diagnostic::error(dns_span, "give the DNS server's address"));
        }
        let mut hosts = BTreeMap::new();
        for (name, address) in raw.hosts {
            hosts.insert(absolute_lower(&name), address.value);
        }
        let mut seen = std::collections::BTreeSet::new();
        let pool: Vec<IpAddr> = raw.addresses.iter().map(|a| a.value).collect();
        for address in &raw.addresses {
            if !seen.insert(address.value) || hosts.values().any(|h| *h == address.value) {
                diagnostics.push(Diagnostic::error(
                    Span::of(file, address),
                    format!("{} is given twice", address.value),
                ));
            }
            if address.value == raw.device.address.value {
                diagnostics.push(Diagnostic::error(
                    Span::of(file, address),
                    "this is the device's own address",
                ));
            }
        }
        let mut other_addresses = Vec::new();
        for written in &raw.device.other_addresses {
            match address_or_prefix(&written.value) {
                Ok(net) => {
                    if let Some(taken) = pool.iter().find(|a| net.contains(*a)) {
                        diagnostics.push(Diagnostic::error(
                            Span::of(file, written),
                            format!("{taken}, an address of the servers, is in here: the device's traffic could not be told from theirs"),
                        ));
                    }
                    other_addresses.push(net);
                }
                Err(problem) => {
                    diagnostics.push(Diagnostic::error(Span::of(file, written), problem));
                }
            }
        }
        let act_within = raw
            .device
            .act_within
            .as_ref()
            .map_or(DEFAULT_ACT_WITHIN, |d| d.value.0);
        if act_within.is_zero()
            && let Some(span) = &raw.device.act_within
        {
            diagnostics.push(Diagnostic::error(
                Span::of(file, span),
                "the device needs some time to act",
            ));
        }
        let trigger_span = Span::of(file, &raw.trigger);
        let raw_trigger = raw.trigger.value;
        let kind = raw_trigger.kind.value;
        let mut actions = BTreeMap::new();
        for (action, written) in [
            (Action::Register, raw_trigger.register),
            (Action::Call, raw_trigger.call),
            (Action::Hangup, raw_trigger.hangup),
            (Action::Options, raw_trigger.options),
            (Action::Reset, raw_trigger.reset),
        ] {
            let Some(written) = written else { continue };
            let span = Span::of(file, &written);
            let parts = match (kind, written.value) {
                (TriggerKind::Passive, _) => {
                    diagnostics.push(Diagnostic::error(
                        span,
                        "a passive trigger does nothing: it takes no actions",
                    ));
                    continue;
                }
                (TriggerKind::Command, RawAction::Text(_)) => {
                    diagnostics.push(Diagnostic::error(
                        span,
                        "a command is a list: [program, argument, ...] (it never goes through a shell)",
                    ));
                    continue;
                }
                (TriggerKind::Http | TriggerKind::Manual, RawAction::Argv(_)) => {
                    diagnostics.push(Diagnostic::error(
                        span,
                        format!("a {kind} trigger takes one text per action"),
                    ));
                    continue;
                }
                (_, RawAction::Text(text)) => vec![text],
                (_, RawAction::Argv(argv)) => argv,
            };
            let place = match kind {
                TriggerKind::Command => Place::Argv,
                TriggerKind::Http => Place::Url,
                TriggerKind::Manual | TriggerKind::Passive => Place::Prompt,
            };
            let template = match Template::parse(place, &parts) {
                Ok(template) => template,
                Err(problems) => {
                    for problem in problems {
                        diagnostics.push(Diagnostic::error(span.clone(), problem));
                    }
                    continue;
                }
            };
            actions.insert(action, template);
        }
        if matches!(kind, TriggerKind::Command | TriggerKind::Http) {
            for needed in [Action::Register, Action::Call] {
                if !actions.contains_key(&needed) {
                    diagnostics.push(Diagnostic::warning(
                        trigger_span.clone(),
                        format!(
                            "no `{}` action: cases with that step will be not applicable",
                            needed.name()
                        ),
                    ));
                }
            }
        }
        if raw_trigger.auth.is_some() && kind != TriggerKind::Http {
            diagnostics.push(Diagnostic::error(
                trigger_span.clone(),
                "`auth` is for http triggers",
            ));
        }
        if let Some(auth) = &raw_trigger.auth {
            for problem in auth.problems() {
                diagnostics.push(Diagnostic::error(trigger_span.clone(), problem));
            }
        }
        let tls = raw
            .tls
            .map(|tls| Arc::new(parse_tls(file, base, tls, &mut diagnostics)));
        let lab = Self {
            tls,
            name: raw.lab.value,
            interface: raw.interface,
            dns,
            pool,
            hosts,
            device: LabDevice {
                address: raw.device.address.value,
                other_addresses,
                sip_port: raw.device.sip_port,
                profile_path: base.join(&raw.device.profile.value),
                act_within,
            },
            trigger: Trigger {
                kind,
                actions,
                auth: raw_trigger.auth,
            },
            file: file.clone(),
        };
        if !lab.device.profile_path.exists() {
            diagnostics.push(Diagnostic::error(
                Span::of(file, &raw.device.profile),
                format!("no device profile at {}", lab.device.profile_path.display()),
            ));
        }
        if diagnostics.has_errors() {
            (None, diagnostics.sorted())
        } else {
            (Some(lab), diagnostics.sorted())
        }
    }

    /// The device profile the lab names.
    pub fn profile(&self) -> (Option<Profile>, Diagnostics) {
        Profile::load(&self.device.profile_path)
    }

    /// Every address srvlab listens on in this lab: the DNS server's, the fixed hosts' and the
    /// pool's.
    pub fn local_addresses(&self) -> Vec<IpAddr> {
        let mut all: Vec<IpAddr> = self.dns.iter().map(SocketAddr::ip).collect();
        all.extend(self.hosts.values());
        all.extend(&self.pool);
        all.sort();
        all.dedup();
        all
    }

    /// Which lab address each of the case's addresses becomes: a server's host listed under
    /// `hosts:` gets its fixed address; every other address the next free one of its family
    /// from the pool, in order of first use (servers first, then the zone's records).
    pub fn address_map(&self, case: &Case) -> Result<BTreeMap<IpAddr, IpAddr>, LabError> {
        let mut map = BTreeMap::new();
        let mut order = Vec::new();
        for server in &case.servers {
            let name = server.host.to_ascii().to_ascii_lowercase();
            for address in &server.addresses {
                if let Some(fixed) = self.hosts.get(&name).filter(|f| same_family(**f, *address)) {
                    map.insert(*address, *fixed);
                }
                order.push(*address);
            }
        }
        for zone in &case.zones.zones {
            for record in &zone.records {
                let address = match record.data {
                    RecordData::A(v4) => IpAddr::V4(v4),
                    RecordData::Aaaa(v6) => IpAddr::V6(v6),
                    _ => continue,
                };
                let name = record.name.to_ascii().to_ascii_lowercase();
                if let Some(fixed) = self.hosts.get(&name).filter(|f| same_family(**f, address)) {
                    map.entry(address).or_insert(*fixed);
                }
                order.push(address);
            }
        }
        if let Some(host) = numeric_host(&case.uri) {
            order.push(host);
        }
        let taken: Vec<IpAddr> = map.values().copied().collect();
        let (free_v4, free_v6): (Vec<IpAddr>, Vec<IpAddr>) = self
            .pool
            .iter()
            .filter(|a| !taken.contains(a))
            .partition(|a| a.is_ipv4());
        let (mut next_v4, mut next_v6) = (free_v4.into_iter(), free_v6.into_iter());
        for address in order {
            if map.contains_key(&address) {
                continue;
            }
            let next = if address.is_ipv4() {
                next_v4.next()
            } else {
                next_v6.next()
            };
            match next {
                Some(lab_address) => {
                    map.insert(address, lab_address);
                }
                None => {
                    let family = if address.is_ipv4() { "IPv4" } else { "IPv6" };
                    let needed = distinct(case, address.is_ipv4());
                    let available = self
                        .pool
                        .iter()
                        .chain(self.hosts.values())
                        .filter(|a| a.is_ipv4() == address.is_ipv4())
                        .count();
                    return Err(LabError::TooFewAddresses {
                        lab: self.name.clone(),
                        family,
                        needed,
                        available,
                    });
                }
            }
        }
        Ok(map)
    }

    /// The case as it runs in this lab: every address moved to its lab address.
    pub fn apply(&self, case: &Case) -> Result<Case, LabError> {
        let map = self.address_map(case)?;
        let mut moved = case.clone();
        for server in &mut moved.servers {
            for address in &mut server.addresses {
                *address = map[address];
            }
        }
        let move_zones = |zones: &mut super::zone::ZoneSet| {
            for zone in &mut zones.zones {
                for record in &mut zone.records {
                    match &mut record.data {
                        RecordData::A(v4) => {
                            if let Some(IpAddr::V4(lab)) = map.get(&IpAddr::V4(*v4)) {
                                *v4 = *lab;
                            }
                        }
                        RecordData::Aaaa(v6) => {
                            if let Some(IpAddr::V6(lab)) = map.get(&IpAddr::V6(*v6)) {
                                *v6 = *lab;
                            }
                        }
                        _ => {}
                    }
                }
            }
        };
        move_zones(&mut moved.zones);
        for zones in moved.zone_changes.values_mut() {
            move_zones(zones);
        }
        if let Some(host) = numeric_host(&case.uri)
            && let Some(lab) = map.get(&host)
        {
            let written = match host {
                IpAddr::V4(v4) => v4.to_string(),
                IpAddr::V6(v6) => format!("[{v6}]"),
            };
            let lab_written = match lab {
                IpAddr::V4(v4) => v4.to_string(),
                IpAddr::V6(v6) => format!("[{v6}]"),
            };
            moved.uri = case.uri.replacen(&written, &lab_written, 1);
        }
        Ok(moved)
    }
}

/// Reads the lab's CA and fixed certificates; every problem is a diagnostic at the path that
/// names the file.
fn parse_tls(
    file: &Arc<SourceFile>,
    base: &Path,
    raw: RawTls,
    diagnostics: &mut Diagnostics,
) -> LabPki {
    // Missing or unreadable files are errors at the path that names them.
    let mut problems: Vec<(Span, String)> = Vec::new();
    let mut warnings: Vec<(Span, String)> = Vec::new();
    let read = |path: &Spanned<String>, problems: &mut Vec<(Span, String)>| {
        let full = base.join(&path.value);
        let text = super::diag::read_input(&full).and_then(|bytes| {
            String::from_utf8(bytes).map_err(|_| std::io::Error::other("not UTF-8 text (PEM)"))
        });
        match text {
            Ok(text) => Some((full, text)),
            Err(err) => {
                problems.push((
                    Span::of(file, path),
                    format!("cannot read {}: {err}", full.display()),
                ));
                None
            }
        }
    };
    let mut pki = LabPki::default();
    let ca_cert = raw
        .ca_cert
        .as_ref()
        .and_then(|path| Some((path, read(path, &mut problems)?)));
    let ca_key = raw
        .ca_key
        .as_ref()
        .and_then(|path| Some((path, read(path, &mut problems)?)));
    if let (Some(key_path), None) = (&raw.ca_key, &raw.ca_cert) {
        problems.push((
            Span::of(file, key_path),
            "a CA key needs its certificate: give `ca_cert` too".to_string(),
        ));
    }
    if let Some((cert_path, (full, text))) = ca_cert {
        match LabCa::from_pem(full, &text) {
            Ok(ca) => match ca_key {
                Some((key_path, (_, key))) => match ca.with_key(&key) {
                    Ok(ca) => pki.ca = Some(ca),
                    Err(err) => {
                        problems.push((
                            Span::of(file, key_path),
                            format!("{}: {err}", key_path.value),
                        ));
                    }
                },
                None => pki.ca = Some(ca),
            },
            Err(err) => problems.push((
                Span::of(file, cert_path),
                format!("{}: {err}", cert_path.value),
            )),
        }
    }
    if raw.ca_key.is_none()
        && let (Some(path), Some(_)) = (&raw.ca_cert, &pki.ca)
    {
        warnings.push((
            Span::of(file, path),
            "no `ca_key`: srvlab cannot issue from this CA; hosts without a fixed certificate get one from the run's own CA".into(),
        ));
    }
    for (host, fixed) in raw.certificates {
        let host = absolute_lower(&host);
        let (Some((cert_full, chain)), Some((_, key))) = (
            read(&fixed.cert, &mut problems),
            read(&fixed.key, &mut problems),
        ) else {
            continue;
        };
        match FixedCert::from_pem(cert_full, &host, &chain, &key) {
            Ok(cert) => {
                if let Some(ca) = &pki.ca
                    && cert.info.issuer != ca.info.subject
                    && cert.info.subject != ca.info.subject
                {
                    warnings.push((
                        Span::of(file, &fixed.cert),
                        format!(
                            "issued by {}, not by the lab's CA ({}): a phone trusting only that CA rejects it",
                            cert.info.issuer, ca.info.subject
                        ),
                    ));
                }
                pki.fixed.insert(crate::tls::certificate_name(&host), cert);
            }
            // What is wrong with the key is shown at the key's path.
            Err(err @ (crate::tls::PemError::KeyMismatch(_) | crate::tls::PemError::BadKey(_))) => {
                problems.push((
                    Span::of(file, &fixed.key),
                    format!("{}: {err}", fixed.key.value),
                ))
            }
            Err(err) => problems.push((
                Span::of(file, &fixed.cert),
                format!("{}: {err}", fixed.cert.value),
            )),
        }
    }
    for (span, text) in problems {
        diagnostics.push(Diagnostic::error(span, text));
    }
    for (span, text) in warnings {
        diagnostics.push(Diagnostic::warning(span, text));
    }
    pki
}

/// A host name as the lab's maps hold it: lower case, absolute.
fn absolute_lower(name: &str) -> String {
    let name = name.to_ascii_lowercase();
    if name.ends_with('.') {
        name
    } else {
        format!("{name}.")
    }
}

fn same_family(a: IpAddr, b: IpAddr) -> bool {
    a.is_ipv4() == b.is_ipv4()
}

/// How many distinct addresses of a family a case uses.
fn distinct(case: &Case, v4: bool) -> usize {
    let mut all: Vec<IpAddr> = case
        .servers
        .iter()
        .flat_map(|s| s.addresses.iter().copied())
        .chain(case.zones.zones.iter().flat_map(|z| {
            z.records.iter().filter_map(|r| match r.data {
                RecordData::A(v4) => Some(IpAddr::V4(v4)),
                RecordData::Aaaa(v6) => Some(IpAddr::V6(v6)),
                _ => None,
            })
        }))
        .filter(|a| a.is_ipv4() == v4)
        .collect();
    all.sort();
    all.dedup();
    all.len()
}

/// The address in a URI like `sip:100@127.0.30.1:5070`, if its host is one.
fn numeric_host(uri: &str) -> Option<IpAddr> {
    let after_at = uri.split_once('@').map_or(uri, |(_, host)| host);
    let after_scheme = after_at
        .strip_prefix("sips:")
        .or_else(|| after_at.strip_prefix("sip:"))
        .unwrap_or(after_at);
    let host_part = after_scheme.split([';', '?']).next()?;
    if let Some(v6) = host_part.strip_prefix('[') {
        return v6.split(']').next()?.parse().ok();
    }
    host_part.split(':').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lab(text: &str) -> (Option<Lab>, Diagnostics) {
        let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/labs");
        Lab::parse(&SourceFile::new("bench.yaml", text), &base)
    }

    const GOOD: &str = "lab: bench\ndns: 127.0.0.1:5353\naddresses: [127.0.70.1, 127.0.70.2, 127.0.70.3]\ndevice:\n  address: 127.0.0.1\n  profile: ../profiles/reference.yaml\ntrigger:\n  kind: command\n  call: [dial, \"{uri}\"]\n  register: [reg, \"{aor}\"]\n";

    #[test]
    fn a_lab_file_is_read_and_its_mistakes_located() {
        let (parsed, found) = lab(GOOD);
        assert!(!found.has_errors(), "{found}");
        let parsed = parsed.unwrap();
        assert_eq!(parsed.device.act_within, DEFAULT_ACT_WITHIN);
        let vars = Vars {
            uri: "sip:100@snom.rocks".into(),
            ..Vars::default()
        };
        assert_eq!(
            parsed.trigger.template(Action::Call).unwrap().fill(&vars),
            Ok(vec!["dial".to_string(), "sip:100@snom.rocks".to_string()])
        );
        assert!(parsed.trigger.template(Action::Hangup).is_none());

        let broken = GOOD
            .replace("call: [dial, \"{uri}\"]", "call: [dial, \"{number}\"]")
            .replace("addresses: [127.0.70.1,", "addresses: [127.0.0.1,");
        let (parsed, found) = lab(&broken);
        assert!(parsed.is_none());
        let text = found.to_string();
        assert!(
            text.contains("bench.yaml:3:13: error: this is the device's own address"),
            "{text}"
        );
        assert!(
            text.contains("bench.yaml:9:9: error: unknown placeholder `{number}`"),
            "{text}"
        );

        // What an http trigger's URL and credentials cannot carry is refused where written.
        let http = GOOD
            .replace(
                "kind: command",
                "kind: http\n  auth: {user: \"ad\\r\\nmin\", password: x}",
            )
            .replace(
                "call: [dial, \"{uri}\"]",
                "call: \"http://{device}/command.htm?number={user} now\"",
            )
            .replace(
                "register: [reg, \"{aor}\"]",
                "register: \"http://{domain}/reg\"",
            );
        let (parsed, found) = lab(&http);
        assert!(parsed.is_none());
        let text = found.to_string();
        for expected in [
            "bench.yaml:10:9: error: a URL cannot hold ' ' as written",
            "bench.yaml:11:13: error: {domain} cannot stand in the URL's host",
            "bench.yaml:8:3: error: auth user: '\\r' cannot go into an HTTP header",
        ] {
            assert!(text.contains(expected), "{expected}: {text}");
        }

        // A device's other addresses: addresses or prefixes, none of them a server's.
        let others = GOOD.replace(
            "  address: 127.0.0.1\n",
            "  address: 127.0.0.1\n  other_addresses: [127.0.0.2, 127.0.70.0/30, nonsense]\n",
        );
        let (parsed, found) = lab(&others);
        assert!(parsed.is_none());
        let text = found.to_string();
        assert!(
            text.contains(
                "bench.yaml:6:32: error: 127.0.70.1, an address of the servers, is in here"
            ),
            "{text}"
        );
        assert!(
            text.contains("bench.yaml:6:47: error: `nonsense` is neither an address nor a prefix"),
            "{text}"
        );
        let (parsed, _) = lab(&others.replace(", 127.0.70.0/30, nonsense", ", 10.0.0.0/8"));
        let device = parsed.unwrap().device;
        assert!(device.sends_from("127.0.0.2".parse().unwrap()));
        assert!(device.sends_from("10.1.2.3".parse().unwrap()));
        assert!(!device.sends_from("127.0.0.3".parse().unwrap()));

        let (_, found) = lab(&GOOD.replace("call: [dial, \"{uri}\"]", "call: \"dial {uri}\""));
        assert!(found.to_string().contains("a command is a list"), "{found}");
        let (_, found) = lab(&GOOD.replace("kind: command", "kind: passive"));
        assert!(
            found.to_string().contains("a passive trigger does nothing"),
            "{found}"
        );
        let (_, found) = lab(&GOOD.replace("kind: command", "kind: manual"));
        assert!(
            found
                .to_string()
                .contains("a manual trigger takes one text per action"),
            "{found}"
        );
        let (_, found) = lab(&GOOD.replace("reference.yaml", "missing.yaml"));
        assert!(
            found.to_string().contains("no device profile at"),
            "{found}"
        );
        let (_, found) = lab(&GOOD.replace("lab: bench", "lab: bench\nserver: x"));
        assert!(found.has_errors(), "unknown fields are errors");
    }

    #[test]
    fn a_case_moves_to_the_labs_addresses_in_order_of_first_use() {
        let case_text = "id: c\nzone:\n  origin: x.test.\n  ttl: 60\n  records:\n    - SRV: {name: _sip._udp, priority: 1, weight: 1, port: 5060, target: a}\n    - SRV: {name: _sip._udp, priority: 2, weight: 1, port: 5060, target: b}\n    - A: {name: a, address: 127.0.9.1}\n    - A: {name: b, address: 127.0.9.2}\n    - A: {name: \"@\", address: 127.0.9.3}\nservers:\n  - host: a.x.test.\n    script: [{behaviour: accept}]\n  - host: b.x.test.\n    script: [{behaviour: stall}]\n";
        let (case, found) = Case::parse(&SourceFile::new("c.yaml", case_text), Path::new("."));
        let case = case.unwrap_or_else(|| panic!("{found}"));
        let (parsed, _) = lab(&GOOD.replace("device:", "hosts:\n  b.x.test: 127.0.70.9\ndevice:"));
        let parsed = parsed.unwrap();
        let moved = parsed.apply(&case).unwrap();
        let address = |s: &str| -> IpAddr { s.parse().unwrap() };
        assert_eq!(moved.servers[0].addresses, [address("127.0.70.1")]);
        // A fixed host keeps its address, and the pool goes on with the next address in use.
        assert_eq!(moved.servers[1].addresses, [address("127.0.70.9")]);
        let records: Vec<_> = moved.zones.zones[0]
            .records
            .iter()
            .filter_map(|r| match r.data {
                RecordData::A(v4) => Some(IpAddr::V4(v4)),
                _ => None,
            })
            .collect();
        assert_eq!(
            records,
            [
                address("127.0.70.1"),
                address("127.0.70.9"),
                address("127.0.70.2")
            ]
        );
        let small = lab(&GOOD.replace("[127.0.70.1, 127.0.70.2, 127.0.70.3]", "[127.0.70.1]"))
            .0
            .unwrap();
        let err = small.apply(&case).unwrap_err().to_string();
        assert!(err.contains("needs 3 IPv4 address(es)"), "{err}");
        assert!(err.contains("the lab bench has 1"), "{err}");
    }

    /// A folder of PEM files as a lab keeps them: its CA (cert, PKCS#8 key), a certificate for
    /// s52.snom.rocks from it, and a stranger's key.
    fn certs_dir(name: &str) -> PathBuf {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let dir = std::env::temp_dir().join(format!("srvlab-labtls-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "bench CA");
        let key = KeyPair::generate().unwrap();
        let ca = params.self_signed(&key).unwrap();
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(dir.join("ca.key"), key.serialize_pem()).unwrap();
        let issuer = Issuer::new(params, key);
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["s52.snom.rocks".to_string()])
            .unwrap()
            .signed_by(&leaf_key, &issuer)
            .unwrap();
        std::fs::write(dir.join("s52.pem"), leaf.pem()).unwrap();
        std::fs::write(dir.join("s52.key"), leaf_key.serialize_pem()).unwrap();
        std::fs::write(
            dir.join("other.key"),
            KeyPair::generate().unwrap().serialize_pem(),
        )
        .unwrap();
        std::fs::write(dir.join("junk.pem"), "not PEM at all\n").unwrap();
        dir
    }

    fn tls_lab(dir: &Path, tls: &str) -> (Option<Lab>, Diagnostics) {
        let profile =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/profiles/reference.yaml");
        let text = format!(
            "lab: bench\ndns: 127.0.0.1:5353\ndevice:\n  address: 127.0.0.1\n  profile: {}\ntrigger:\n  kind: manual\ntls:\n{tls}",
            profile.display()
        );
        Lab::parse(&SourceFile::new("bench.yaml", &text), dir)
    }

    #[test]
    fn a_labs_certificates_are_read_and_their_mistakes_located() {
        let dir = certs_dir("parse");
        let (parsed, found) = tls_lab(
            &dir,
            "  ca_cert: ca.pem\n  ca_key: ca.key\n  certificates:\n    S52.snom.rocks: {cert: s52.pem, key: s52.key}\n",
        );
        assert!(!found.has_errors(), "{found}");
        let tls = parsed.unwrap().tls.unwrap();
        assert!(tls.ca.as_ref().is_some_and(crate::tls::LabCa::can_issue));
        assert_eq!(
            tls.source_for("s52.snom.rocks."),
            crate::tls::CertSource::Fixed
        );
        assert_eq!(
            tls.source_for("s53.snom.rocks."),
            crate::tls::CertSource::LabCa
        );

        // Line 9 is the first line under `tls:`.
        let errors = |tls: &str| {
            let (parsed, found) = tls_lab(&dir, tls);
            assert!(parsed.is_none(), "{found}");
            found.to_string()
        };
        // Each broken `tls:` and what its error must say, at its place.
        for (tls, expected) in [
            (
                "  ca_cert: missing.pem\n  ca_key: ca.key\n",
                &["bench.yaml:9:12: error: cannot read ", "missing.pem"][..],
            ),
            (
                "  ca_key: ca.key\n",
                &["bench.yaml:9:11: error: a CA key needs its certificate: give `ca_cert` too"],
            ),
            (
                "  ca_cert: junk.pem\n",
                &["bench.yaml:9:12: error: junk.pem: no PEM certificate in it"],
            ),
            (
                "  ca_cert: s52.pem\n",
                &["bench.yaml:9:12: error: s52.pem: the certificate is no CA"],
            ),
            (
                "  ca_cert: ca.pem\n  ca_key: other.key\n",
                &["bench.yaml:10:11: error: other.key: the key does not belong to the certificate"],
            ),
            (
                "  certificates:\n    s53.snom.rocks.: {cert: s52.pem, key: s52.key}\n",
                &[
                    "bench.yaml:10:29: error: s52.pem: the certificate names s52.snom.rocks, not s53.snom.rocks",
                ],
            ),
            (
                "  certificates:\n    s52.snom.rocks.: {cert: s52.pem, key: other.key}\n",
                &["bench.yaml:10:43: error: other.key: the key does not belong"],
            ),
        ] {
            let text = errors(tls);
            for part in expected {
                assert!(text.contains(part), "{tls}: {text}");
            }
        }
        let text = errors("  ca_cert: ca.pem\n  other: x\n");
        assert!(
            text.contains("bench.yaml:10:"),
            "unknown fields are errors: {text}"
        );

        // A CA without its key only says what the fixed certificates chain to.
        let (parsed, found) = tls_lab(&dir, "  ca_cert: ca.pem\n");
        assert!(
            found.to_string().contains("warning: no `ca_key`"),
            "{found}"
        );
        let tls = parsed.unwrap().tls.unwrap();
        assert_eq!(
            tls.source_for("s53.snom.rocks."),
            crate::tls::CertSource::RunCa
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_uri_names_its_numeric_host() {
        assert_eq!(
            numeric_host("sip:100@127.0.30.1:5070;transport=tcp"),
            Some("127.0.30.1".parse().unwrap())
        );
        assert_eq!(
            numeric_host("sip:100@[::1]:5060"),
            Some("::1".parse().unwrap())
        );
        assert_eq!(numeric_host("sip:100@snom.rocks"), None);
    }
}
