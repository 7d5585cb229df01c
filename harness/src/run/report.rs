//! A run's reports: `report.json` (the canonical, versioned record), `summary.md` and
//! `report.html` for people and `junit.xml` for CI (one test case per case × check).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io;
use std::path::Path;

use quick_junit::{NonSuccessKind, Report as JunitReport, TestCase, TestCaseStatus, TestSuite};
use serde::{Deserialize, Serialize};

use super::baseline::Comparison;
use super::case::CaseResult;
use crate::checks::{Level, Status};
use crate::model::profile::{DEFAULT_ADDRESS_FAMILIES, Profile};

/// The report schema's version; readers refuse what they do not know.
pub const SCHEMA: &str = "srvlab-report/1";

/// What was run, with what, where: enough to reproduce it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub srvlab: String,
    /// When the run began (RFC 3339, UTC).
    pub started: String,
    pub seed: u64,
    pub dut: String,
    pub profile: ProfileSummary,
    pub faults: Vec<String>,
    pub host: String,
    /// Each case file and a hash of its bytes (FNV-1a 64, hex): the same hash, the same case.
    pub cases: Vec<CaseFile>,
    /// The lab a real device was tested in (`--dut external`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lab: Option<LabSummary>,
}

/// Where and how a real device was tested: enough for a reader to know which device's
/// traffic was judged and how it was made to act.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LabSummary {
    pub name: String,
    pub file: String,
    pub fnv1a64: String,
    /// The device's address: only its traffic was judged.
    pub device: String,
    pub dns: Vec<String>,
    pub trigger: String,
    /// Where the TLS servers' certificates came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<LabTlsSummary>,
}

/// A lab's TLS certificates, as a reader checks them against what the phone trusts.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LabTlsSummary {
    /// Who issues the certificate of a host without a fixed one: "lab CA" or "run CA".
    pub issuer: String,
    /// The lab's CA file, its subject and SHA-256 fingerprint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_sha256: Option<String>,
    /// Fixed certificates: host name → certificate file.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fixed: BTreeMap<String, String>,
}

impl LabTlsSummary {
    pub fn of(pki: &crate::tls::LabPki) -> Self {
        let issues = pki.ca.as_ref().is_some_and(crate::tls::LabCa::can_issue);
        Self {
            issuer: if issues { "lab CA" } else { "run CA" }.into(),
            ca_file: pki.ca.as_ref().map(|ca| ca.path.display().to_string()),
            ca_subject: pki.ca.as_ref().map(|ca| ca.info.subject.clone()),
            ca_sha256: pki.ca.as_ref().map(|ca| ca.info.sha256.clone()),
            fixed: pki
                .fixed
                .iter()
                .map(|(host, cert)| (host.clone(), cert.path.display().to_string()))
                .collect(),
        }
    }

    /// "certificates issued by the lab's CA CN=… (SHA-256 AB:…), fixed for s52.example"
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        match (&self.ca_subject, &self.ca_sha256) {
            (Some(subject), Some(sha256)) if self.issuer == "lab CA" => {
                parts.push(format!(
                    "certificates issued by the lab's CA {subject} (SHA-256 {sha256})"
                ));
            }
            (Some(subject), Some(sha256)) => {
                parts.push(format!("the lab's CA {subject} (SHA-256 {sha256}, no key: other hosts' certificates from the run's own CA)"));
            }
            _ => parts
                .push("certificates from the run's own CA (ca.pem in each case's folder)".into()),
        }
        if !self.fixed.is_empty() {
            parts.push(format!(
                "fixed certificates for {}",
                self.fixed.keys().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        parts.join(", ")
    }
}

impl LabSummary {
    pub fn of(lab: &crate::model::lab::Lab) -> Self {
        Self {
            name: lab.name.clone(),
            file: lab.file.path.clone(),
            fnv1a64: fnv1a64(lab.file.text.as_bytes()),
            device: lab.device.describe(),
            dns: lab.dns.iter().map(ToString::to_string).collect(),
            trigger: lab.trigger.kind.to_string(),
            tls: lab.tls.as_deref().map(LabTlsSummary::of),
        }
    }

    /// "lab bench-1 (labs/bench.yaml): device 192.168.77.20, command trigger, DNS 192.168.77.1:53"
    pub fn describe(&self) -> String {
        let tls = self
            .tls
            .as_ref()
            .map(|tls| format!("; TLS: {}", tls.describe()))
            .unwrap_or_default();
        format!(
            "lab {} ({}): device {}, {} trigger, DNS {}{tls}",
            self.name,
            self.file,
            self.device,
            self.trigger,
            self.dns.join(", ")
        )
    }
}

/// The device profile the run was judged against: what the device is configured with and
/// claims. A reader of the report sees which promises turned a SHOULD into a PROFILE verdict.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProfileSummary {
    /// The profile file and a hash of its bytes.
    #[serde(default)]
    pub file: String,
    #[serde(default)]
    pub fnv1a64: String,
    pub device: String,
    pub name: String,
    /// The firmware the profile names, when it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware: Option<String>,
    pub t1_ms: f64,
    pub t2_ms: f64,
    pub dirty_host_ttl_s: Option<f64>,
    #[serde(default)]
    pub transports: Vec<String>,
    #[serde(default)]
    pub failover_codes: Vec<u16>,
    #[serde(default)]
    pub failover_after_ms: Option<f64>,
    /// Declared behaviours (`naptr`, `a_record_fallback`, `refusal_failover`); absent: none.
    #[serde(default)]
    pub claims: BTreeMap<String, bool>,
    /// Snom's retry after a failed registration (D5), when declared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_failed_register_s: Option<f64>,
    /// Yealink/Polycom failback mode (D4, D6), when declared, with its timeout (`duration`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failback_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failback_timeout_s: Option<f64>,
    /// The IP versions the device uses, in its order (L13), when it declares more than IPv4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address_families: Option<Vec<String>>,
}

impl ProfileSummary {
    pub fn of(profile: &Profile, file: &str, bytes: &[u8]) -> Self {
        let claims = [
            ("naptr", profile.naptr),
            ("a_record_fallback", profile.a_record_fallback),
            ("refusal_failover", profile.refusal_failover),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.map(|v| (name.to_string(), v)))
        .collect();
        Self {
            file: file.to_string(),
            fnv1a64: fnv1a64(bytes),
            device: profile.device.clone(),
            name: profile.name.clone(),
            firmware: profile.firmware.clone(),
            t1_ms: profile.t1.as_secs_f64() * 1000.0,
            t2_ms: profile.t2.as_secs_f64() * 1000.0,
            dirty_host_ttl_s: profile.dirty_host_ttl.map(|d| d.as_secs_f64()),
            transports: profile.transports.iter().map(ToString::to_string).collect(),
            failover_codes: profile.failover_codes.clone(),
            failover_after_ms: profile.failover_after.map(|d| d.as_secs_f64() * 1000.0),
            claims,
            retry_after_failed_register_s: profile
                .retry_after_failed_register
                .map(|d| d.as_secs_f64()),
            failback_mode: profile.failback_mode.map(|m| m.name().to_string()),
            failback_timeout_s: profile
                .failback_mode
                .filter(|m| *m == crate::model::profile::FailbackMode::Duration)
                .map(|_| profile.failback_window().map_or(0.0, |w| w.as_secs_f64())),
            address_families: (profile.address_families != DEFAULT_ADDRESS_FAMILIES).then(|| {
                profile
                    .address_families
                    .iter()
                    .map(ToString::to_string)
                    .collect()
            }),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CaseFile {
    pub id: String,
    pub file: String,
    pub fnv1a64: String,
}

/// Verdicts counted by status.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub pass: usize,
    pub fail: usize,
    pub warn: usize,
    pub info: usize,
    pub inconclusive: usize,
    pub not_applicable: usize,
    /// Cases that could not be carried out.
    pub errors: usize,
}

impl Counts {
    pub fn of(cases: &[CaseResult]) -> Self {
        let mut counts = Self::default();
        for case in cases {
            if case.error.is_some() {
                counts.errors += 1;
            }
            for verdict in &case.verdicts {
                match verdict.status {
                    Status::Pass => counts.pass += 1,
                    Status::Fail => counts.fail += 1,
                    Status::Warn => counts.warn += 1,
                    Status::Info => counts.info += 1,
                    Status::Inconclusive => counts.inconclusive += 1,
                    Status::NotApplicable => counts.not_applicable += 1,
                }
            }
        }
        counts
    }
}

/// Why a report.json could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: io::Error },
    #[error("{path} is not a srvlab report: {source}")]
    Parse {
        path: String,
        source: serde_json::Error,
    },
    #[error("{path} has schema {found:?}; this srvlab reads {SCHEMA:?}")]
    Schema { path: String, found: String },
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    pub schema: String,
    pub manifest: Manifest,
    pub counts: Counts,
    /// The run against `--baseline`, when one was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<Comparison>,
    pub cases: Vec<CaseResult>,
}

impl Report {
    pub fn new(manifest: Manifest, cases: Vec<CaseResult>) -> Self {
        Self {
            schema: SCHEMA.into(),
            counts: Counts::of(&cases),
            manifest,
            baseline: None,
            cases,
        }
    }

    /// When the run judged nothing (no pass, fail, warn or info): what happened instead, as the
    /// verdicts say it, most frequent reason first. The console's last line: it must never
    /// blame the device for what was the lab's or the profile's (issue 14: "the device never
    /// acted" when every check was not applicable).
    pub fn nothing_judged(&self) -> Option<String> {
        let c = &self.counts;
        if c.pass + c.fail + c.warn + c.info > 0 {
            return None;
        }
        let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
        for case in &self.cases {
            if let Some(error) = &case.error {
                *reasons.entry(error).or_default() += 1;
            }
            for verdict in &case.verdicts {
                *reasons.entry(&verdict.sentence).or_default() += 1;
            }
        }
        let mut reasons: Vec<(&str, usize)> = reasons.into_iter().collect();
        reasons.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let mut parts = Vec::new();
        if c.not_applicable > 0 {
            parts.push(format!("{} check(s) not applicable", c.not_applicable));
        }
        if c.inconclusive > 0 {
            parts.push(format!("{} inconclusive", c.inconclusive));
        }
        if c.errors > 0 {
            parts.push(format!("{} case(s) could not run", c.errors));
        }
        if parts.is_empty() {
            parts.push("no check ran".into());
        }
        let why: Vec<String> = reasons
            .iter()
            .take(3)
            .map(|(reason, n)| {
                let short: String = reason.chars().take(200).collect();
                let cut = if short.len() < reason.len() {
                    "…"
                } else {
                    ""
                };
                format!("\"{short}{cut}\" ({n}×)")
            })
            .collect();
        let more = reasons.len().saturating_sub(3);
        Some(format!(
            "nothing could be judged: {}{}{}",
            parts.join(", "),
            if why.is_empty() {
                String::new()
            } else {
                format!("; why: {}", why.join("; "))
            },
            if more > 0 {
                format!("; {more} other reason(s) in the report")
            } else {
                String::new()
            }
        ))
    }

    /// Whether the run fails: any failure, or against a baseline, any failure it does not list.
    pub fn fails(&self) -> bool {
        match &self.baseline {
            Some(comparison) => !comparison.new.is_empty(),
            None => self.counts.fail > 0,
        }
    }

    /// Writes report.json, summary.md, junit.xml and report.html into `dir` (the run folder,
    /// which holds the cases' timelines).
    pub fn write(&self, dir: &Path) -> io::Result<()> {
        let json = self.json()?;
        write_atomically(&dir.join("report.json"), json.as_bytes())?;
        write_atomically(&dir.join("summary.md"), self.markdown().as_bytes())?;
        let junit = self.junit().to_string().map_err(io::Error::other)?;
        write_atomically(&dir.join("junit.xml"), junit.as_bytes())?;
        // Rendered from report.json as written, exactly as `srvlab report` renders it later:
        // the same input, the same bytes.
        let written: Self = serde_json::from_str(&json).map_err(io::Error::other)?;
        write_atomically(&dir.join("report.html"), written.html(dir)?.as_bytes())?;
        Ok(())
    }

    /// report.json's text.
    pub fn json(&self) -> io::Result<String> {
        Ok(serde_json::to_string_pretty(self).map_err(io::Error::other)? + "\n")
    }

    /// report.html, with the timelines read from the run folder `dir`.
    pub fn html(&self, dir: &Path) -> io::Result<String> {
        super::html::render(self, &super::html::read_timelines(self, dir)).map_err(io::Error::other)
    }

    /// Reads a run's report.json back; the error names the file.
    pub fn load(path: &Path) -> Result<Self, LoadError> {
        let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let report: Self = serde_json::from_str(&text).map_err(|source| LoadError::Parse {
            path: path.display().to_string(),
            source,
        })?;
        if report.schema != SCHEMA {
            return Err(LoadError::Schema {
                path: path.display().to_string(),
                found: report.schema,
            });
        }
        Ok(report)
    }

    pub fn markdown(&self) -> String {
        let m = &self.manifest;
        let c = &self.counts;
        let mut out = String::new();
        let _ = writeln!(out, "# srvlab run\n");
        let _ = writeln!(
            out,
            "Device **{}** ({}){}, T1 = {} ms, seed {}, srvlab {}, started {}.{}\n",
            m.profile.name,
            m.dut,
            m.profile
                .firmware
                .as_ref()
                .map(|f| format!(", firmware {f}"))
                .unwrap_or_default(),
            m.profile.t1_ms,
            m.seed,
            m.srvlab,
            m.started,
            if m.faults.is_empty() {
                String::new()
            } else {
                format!(" Faults on: {}.", m.faults.join(", "))
            }
        );
        if let Some(lab) = &m.lab {
            let _ = writeln!(out, "Tested in the {}.\n", lab.describe());
        }
        let _ = writeln!(
            out,
            "**{} pass, {} fail, {} warn, {} info, {} inconclusive, {} not applicable{}**\n",
            c.pass,
            c.fail,
            c.warn,
            c.info,
            c.inconclusive,
            c.not_applicable,
            if c.errors > 0 {
                format!(", {} case(s) could not run", c.errors)
            } else {
                String::new()
            }
        );
        if let Some(b) = &self.baseline {
            let _ = writeln!(
                out,
                "Against the baseline `{}`: **{} new failure(s)**, {} known, {} resolved.\n",
                b.file,
                b.new.len(),
                b.known.len(),
                b.resolved.len()
            );
            for (title, list) in [
                ("New failures", &b.new),
                ("Known deviations", &b.known),
                (
                    "Resolved (no longer failing; the baseline can drop them)",
                    &b.resolved,
                ),
            ] {
                if list.is_empty() {
                    continue;
                }
                let _ = writeln!(out, "{title}:\n");
                for d in list {
                    let _ = writeln!(out, "- {} / {}: {}", d.case, d.check, cell(&d.reason));
                }
                let _ = writeln!(out);
            }
        }
        let _ = writeln!(out, "| case | check | level | verdict | why |");
        let _ = writeln!(out, "| --- | --- | --- | --- | --- |");
        for case in &self.cases {
            if let Some(error) = &case.error {
                let _ = writeln!(out, "| {} | — | — | **error** | {} |", case.id, cell(error));
            }
            for v in &case.verdicts {
                let known = self
                    .baseline
                    .as_ref()
                    .is_some_and(|b| b.is_known(&case.id, &v.id).is_some());
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {}{} | {} |",
                    case.id,
                    v.id,
                    level_name(v.level),
                    status_name(v.status),
                    if known { " (known)" } else { "" },
                    cell(&v.sentence)
                );
            }
        }
        let configured: Vec<&CaseResult> = self
            .cases
            .iter()
            .filter(|c| !c.settings.is_empty())
            .collect();
        if !configured.is_empty() {
            let heading = if self.manifest.lab.is_some() {
                "Cases that ask for settings beyond the device's profile (the device is judged as its profile declares):"
            } else {
                "Cases that configure the device beyond the profile (judged with these settings):"
            };
            let _ = writeln!(out, "\n{heading}\n");
            for case in configured {
                let _ = writeln!(out, "- {}: {}", case.id, case.settings.join(", "));
            }
        }
        let left_out: Vec<&CaseResult> =
            self.cases.iter().filter(|c| c.left_out.is_some()).collect();
        if !left_out.is_empty() {
            let _ = writeln!(out, "\nTraffic not judged, as not from the device:\n");
            for case in left_out {
                let _ = writeln!(
                    out,
                    "- {}: {}",
                    case.id,
                    case.left_out.as_deref().unwrap_or_default()
                );
            }
        }
        out
    }

    pub fn junit(&self) -> JunitReport {
        let mut report = JunitReport::new("srvlab");
        let mut by_case: BTreeMap<usize, TestSuite> = BTreeMap::new();
        for (index, case) in self.cases.iter().enumerate() {
            let mut suite = TestSuite::new(case.id.clone());
            suite.set_time(std::time::Duration::from_secs_f64(case.seconds.max(0.0)));
            if let Some(error) = &case.error {
                let mut status = TestCaseStatus::non_success(NonSuccessKind::Error);
                status.set_message(error.clone());
                let mut test = TestCase::new("run", status);
                test.set_classname(format!("srvlab.{}", case.id));
                suite.add_test_case(test);
            }
            for v in &case.verdicts {
                let known = self
                    .baseline
                    .as_ref()
                    .and_then(|b| b.is_known(&case.id, &v.id));
                let status = match v.status {
                    // CI gates on changes: a failure the baseline accepts is shown, not failed.
                    Status::Fail if known.is_some() => {
                        let mut s = TestCaseStatus::skipped();
                        s.set_message(format!(
                            "known deviation ({}): {}",
                            known.map(|d| d.reason.as_str()).unwrap_or_default(),
                            v.sentence
                        ));
                        s
                    }
                    Status::Fail => {
                        let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                        s.set_message(v.sentence.clone());
                        s
                    }
                    // A warning or a verdict that could not be reached does not fail CI, but
                    // it must not look like a pass either.
                    Status::Inconclusive | Status::NotApplicable => {
                        let mut s = TestCaseStatus::skipped();
                        s.set_message(format!("{}: {}", status_name(v.status), v.sentence));
                        s
                    }
                    Status::Pass | Status::Warn | Status::Info => TestCaseStatus::success(),
                };
                let mut test = TestCase::new(v.id.clone(), status);
                test.set_classname(format!("srvlab.{}", case.id));
                test.set_system_out(format!("{}: {}", status_name(v.status), v.sentence));
                suite.add_test_case(test);
            }
            by_case.insert(index, suite);
        }
        report.add_test_suites(by_case.into_values());
        report
    }
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// Writes a whole file or nothing: into a temporary file beside it, synced, then renamed over
/// it. A full disk or a crash leaves the earlier file (or none), never a truncated report that a
/// CI job would read as a run without failures.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write as _;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    // Readable as a plain file would be (a temporary file is private by default).
    let readable = std::os::unix::fs::PermissionsExt::from_mode(0o644);
    let mut file = tempfile::Builder::new()
        .prefix(".srvlab-")
        .suffix(".tmp")
        .permissions(readable)
        .tempfile_in(dir)?;
    file.write_all(bytes)?;
    file.as_file().sync_all()?;
    file.persist(path).map_err(|err| err.error)?;
    Ok(())
}

pub fn status_name(status: Status) -> &'static str {
    match status {
        Status::Pass => "pass",
        Status::Fail => "FAIL",
        Status::Warn => "warn",
        Status::Info => "info",
        Status::Inconclusive => "inconclusive",
        Status::NotApplicable => "n/a",
    }
}

/// A level as the checklist writes it.
pub(crate) fn level_name(level: Level) -> &'static str {
    match level {
        Level::Must => "MUST",
        Level::Should => "SHOULD",
        Level::Info => "INFO",
        Level::Profile => "PROFILE",
    }
}

/// FNV-1a, 64 bits: a stable fingerprint of a case file's bytes.
pub fn fnv1a64(bytes: &[u8]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Verdict;
    use crate::run::baseline::Deviation;

    /// A run with one of each verdict, a case that could not run, and a baseline: every part
    /// of the three formats, built by hand so the snapshots hold exactly.
    fn sample() -> Report {
        let verdict = |id: &str, level, status, sentence: &str| Verdict {
            figures: serde_json::json!({"measured_ms": 1283.4, "expected_ms": 1280.0}),
            evidence: vec![4, 9],
            ..Verdict::new(id, level, status, sentence)
        };
        let case = |id: &str, verdicts: Vec<Verdict>, error: Option<&str>| CaseResult {
            id: id.into(),
            title: format!("the {id} case"),
            file: format!("cases/{id}.yaml"),
            covers: verdicts.iter().map(|v| v.id.clone()).collect(),
            seconds: 1.5,
            error: error.map(Into::into),
            settings: Vec::new(),
            outcomes: vec!["INVITE → 200 from 127.0.0.114:5060 over udp".into()],
            verdicts,
            left_out: None,
            timeline: format!("cases/{id}/timeline.jsonl"),
            capture: format!("cases/{id}/capture.pcap"),
        };
        let cases = vec![
            case(
                "seed-crash",
                vec![
                    verdict(
                        "F1",
                        Level::Must,
                        Status::Pass,
                        "moved on at 1.283 s = 64.2·T1",
                    ),
                    verdict(
                        "D1",
                        Level::Profile,
                        Status::Fail,
                        "chose 52 again at 0.500 s | while dirty",
                    ),
                    verdict("L4", Level::Should, Status::Warn, "the first query was SRV"),
                    verdict("F4", Level::Info, Status::Info, "no failover after 486"),
                    verdict(
                        "D2",
                        Level::Profile,
                        Status::Inconclusive,
                        "52 was never chosen",
                    ),
                    verdict("F5", Level::Should, Status::NotApplicable, "no Retry-After"),
                ],
                None,
            ),
            case("stalled", Vec::new(), Some("the device never showed up")),
        ];
        let mut report = Report::new(
            Manifest {
                srvlab: "0.1.0".into(),
                started: "2026-11-25T04:00:00Z".into(),
                seed: 7,
                dut: "reference".into(),
                profile: ProfileSummary {
                    file: "fixtures/profiles/reference.yaml".into(),
                    fnv1a64: "0123456789abcdef".into(),
                    device: "reference".into(),
                    name: "srvlab reference UA".into(),
                    firmware: None,
                    t1_ms: 20.0,
                    t2_ms: 4000.0,
                    dirty_host_ttl_s: Some(2.0),
                    transports: vec!["udp".into(), "tcp".into()],
                    failover_codes: vec![480],
                    failover_after_ms: None,
                    claims: [("naptr".to_string(), true)].into_iter().collect(),
                    retry_after_failed_register_s: None,
                    failback_mode: None,
                    failback_timeout_s: None,
                    address_families: None,
                },
                faults: vec!["no-dirty-host".into()],
                host: "lab".into(),
                cases: vec![CaseFile {
                    id: "seed-crash".into(),
                    file: "cases/seed-crash.yaml".into(),
                    fnv1a64: "fedcba9876543210".into(),
                }],
                lab: None,
            },
            cases,
        );
        let deviation = |check: &str, reason: &str| Deviation {
            case: "seed-crash".into(),
            check: check.into(),
            reason: reason.into(),
        };
        report.baseline = Some(Comparison {
            file: "baseline.yaml".into(),
            new: Vec::new(),
            known: vec![deviation("D1", "FW-1234: dirty host kept 30 s")],
            resolved: vec![deviation("T1", "FW-99")],
        });
        report
    }

    #[test]
    fn case_settings_and_registration_claims_are_reported() {
        let mut report = sample();
        report.cases[0].settings = vec!["failover_after = 15·T1 = 300ms".into()];
        let markdown = report.markdown();
        assert!(
            markdown.contains("Cases that configure the device beyond the profile")
                && markdown.contains("- seed-crash: failover_after = 15·T1 = 300ms"),
            "{markdown}"
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(
            json["cases"][0]["settings"][0],
            "failover_after = 15·T1 = 300ms"
        );
        assert!(json["cases"][1].get("settings").is_none());

        let file = crate::model::diag::SourceFile::new(
            "p.yaml",
            "device: y\nfirmware: \"10.1.54 (FW-1234)\"\nt1: 500ms\nretry_after_failed_register: 300s\nfailback_mode: duration\n",
        );
        let profile = Profile::parse(&file).0.unwrap();
        let summary = serde_json::to_value(ProfileSummary::of(&profile, "p.yaml", b"")).unwrap();
        assert_eq!(summary["retry_after_failed_register_s"], 300.0);
        assert_eq!(summary["failback_mode"], "duration");
        assert_eq!(summary["failback_timeout_s"], 3600.0);
        assert_eq!(summary["firmware"], "10.1.54 (FW-1234)");
        let plain = Profile {
            firmware: None,
            retry_after_failed_register: None,
            failback_mode: None,
            ..profile
        };
        let summary = serde_json::to_value(ProfileSummary::of(&plain, "p.yaml", b"")).unwrap();
        assert!(summary.get("retry_after_failed_register_s").is_none());
        assert!(summary.get("failback_mode").is_none());
        assert!(summary.get("firmware").is_none());
    }

    #[test]
    fn report_json_keeps_its_schema() {
        insta::assert_json_snapshot!(sample());
    }

    #[test]
    fn summary_md_reads_as_a_table() {
        insta::assert_snapshot!(sample().markdown());
    }

    #[test]
    fn junit_has_one_testcase_per_verdict_and_known_deviations_skipped() {
        let xml = sample().junit().to_string().unwrap();
        insta::assert_snapshot!(xml);
    }

    #[test]
    fn report_html_renders_the_counts_and_says_which_timeline_is_missing() {
        let report = sample();
        let nowhere = Path::new("/nonexistent/srvlab-run");
        let timelines = crate::run::html::read_timelines(&report, nowhere);
        let html = crate::run::html::render(&report, &timelines).unwrap();
        assert!(html.contains(r#"<b id="count-fail">1</b>"#), "{html}");
        assert!(html.contains(r#"<b id="count-error">1</b>"#));
        // (minijinja's HTML escaping writes "/" as "&#x2f;".)
        assert!(html.contains("No ladder: cannot read cases&#x2f;seed-crash&#x2f;timeline.jsonl"));
        // The sentence is escaped, the baseline's known deviation marked.
        assert!(html.contains("chose 52 again at 0.500 s | while dirty"));
        assert!(html.contains("FAIL (known)"));
        assert!(!html.contains(nowhere.to_str().unwrap()));
        // Nothing but its input decides the bytes.
        assert_eq!(html, crate::run::html::render(&report, &timelines).unwrap());
    }

    #[test]
    fn against_a_baseline_only_new_failures_fail_the_run() {
        let mut report = sample();
        assert!(!report.fails());
        report.baseline = None;
        assert!(report.fails());
    }
}
