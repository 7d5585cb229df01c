//! `report.html`: one self-contained page (no network, no external assets) rendered with
//! minijinja from report.json and each case's timeline.jsonl. The same function serves
//! `srvlab run` and `srvlab report`, and its output depends on nothing else (no clock, stable
//! order, fixed float formats), so both write the same bytes.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use super::case::CaseResult;
use super::ladder::{self, escape, event_anchor, seconds};
use super::report::{Report, level_name, status_name};
use crate::checks::{Status, Verdict};
use crate::model::duration::DurationSpec;
use crate::timeline::{Event, EventKind, jsonl};

/// A ladder draws at most this many requests (by Call-ID); the timeline holds the rest.
pub const MAX_LADDER_REQUESTS: usize = 25;
/// A verdict links at most this many of its evidence events.
pub const MAX_EVIDENCE_LINKS: usize = 30;
/// A verdict's figures are shown up to this many characters.
pub const MAX_FIGURES_CHARS: usize = 4000;

const TEMPLATE: &str = include_str!("templates/report.html.j2");

#[derive(Debug, thiserror::Error)]
pub enum HtmlError {
    #[error("cannot render report.html: {0}")]
    Template(#[from] minijinja::Error),
}

/// Each case's timeline as read back from the run folder, or why it could not be.
pub type Timelines = BTreeMap<String, Result<Vec<Event>, String>>;

/// Reads the timeline of every case of `report` from the run folder `dir`.
pub fn read_timelines(report: &Report, dir: &Path) -> Timelines {
    report
        .cases
        .iter()
        .map(|case| {
            let events = if case.timeline.is_empty() {
                Err("the case left no timeline".to_string())
            } else {
                jsonl::read(&dir.join(&case.timeline))
                    .map(|(_, events)| events)
                    .map_err(|err| {
                        // Named relative to the run folder, so a copy renders the same bytes.
                        let text = err.to_string().replace(&format!("{}/", dir.display()), "");
                        format!("cannot read {}: {text}", case.timeline)
                    })
            };
            (case.id.clone(), events)
        })
        .collect()
}

/// Renders report.html.
pub fn render(report: &Report, timelines: &Timelines) -> Result<String, HtmlError> {
    let page = Page::of(report, timelines);
    let mut env = minijinja::Environment::new();
    env.add_template("report.html.j2", TEMPLATE)?;
    let page = minijinja::value::Serde(&page);
    Ok(env.get_template("report.html.j2")?.render(page)?)
}

#[derive(Serialize)]
struct Page {
    device: String,
    profile_name: String,
    profile_file: String,
    dut: String,
    firmware: Option<String>,
    seed: u64,
    started: String,
    srvlab: String,
    faults: Vec<String>,
    t1: String,
    counts: Vec<CountCell>,
    statuses: Vec<CountCell>,
    areas: Vec<String>,
    rows: Vec<Row>,
    total_rows: usize,
    baseline: Option<String>,
    cases: Vec<CaseView>,
}

#[derive(Clone, Copy, Serialize)]
struct CountCell {
    status: &'static str,
    label: &'static str,
    count: usize,
}

#[derive(Serialize)]
struct Row {
    case: String,
    case_anchor: String,
    area: String,
    check: String,
    level: &'static str,
    status: &'static str,
    label: String,
    sentence: String,
    verdict_anchor: String,
}

#[derive(Serialize)]
struct CaseView {
    id: String,
    anchor: String,
    title: String,
    file: String,
    area: String,
    seconds: String,
    error: Option<String>,
    settings: Vec<String>,
    outcomes: Vec<String>,
    timeline: String,
    capture: String,
    verdicts: Vec<VerdictView>,
    ladder: Option<String>,
    ladder_note: Option<String>,
    timeline_error: Option<String>,
    events: Vec<EventRow>,
    weights: Option<WeightsView>,
    dirty: Option<String>,
}

#[derive(Serialize)]
struct VerdictView {
    id: String,
    anchor: String,
    level: &'static str,
    status: &'static str,
    label: String,
    sentence: String,
    evidence: Vec<EvidenceLink>,
    evidence_more: usize,
    figures: Option<String>,
}

#[derive(Serialize)]
struct EvidenceLink {
    seq: u64,
    href: String,
}

#[derive(Serialize)]
struct EventRow {
    seq: u64,
    anchor: String,
    time: String,
    kind: String,
    text: String,
}

#[derive(Serialize)]
struct WeightsView {
    name: String,
    priority: String,
    trials: String,
    alpha: String,
    p_value: Option<String>,
    chi_square: Option<String>,
    df: Option<String>,
    /// Cells the chi-square test merged (each expected below 5 alone), e.g. "b + z".
    merged: Vec<String>,
    rows: Vec<WeightRow>,
}

#[derive(Serialize)]
struct WeightRow {
    target: String,
    weight: String,
    probability: String,
    observed: String,
    expected: String,
    observed_pct: String,
    expected_pct: String,
}

impl Page {
    fn of(report: &Report, timelines: &Timelines) -> Self {
        let m = &report.manifest;
        let c = &report.counts;
        let counts = vec![
            cell(Status::Pass, c.pass),
            cell(Status::Fail, c.fail),
            cell(Status::Warn, c.warn),
            cell(Status::Info, c.info),
            cell(Status::Inconclusive, c.inconclusive),
            cell(Status::NotApplicable, c.not_applicable),
            CountCell {
                status: "error",
                label: "could not run",
                count: c.errors,
            },
        ];
        let statuses = counts
            .iter()
            .filter(|cell| cell.count > 0)
            .copied()
            .collect();
        let mut rows = Vec::new();
        let mut areas = BTreeSet::new();
        for case in &report.cases {
            let area = area_of(case);
            areas.insert(area.clone());
            if let Some(error) = &case.error {
                rows.push(Row {
                    case: case.id.clone(),
                    case_anchor: case_anchor(&case.id),
                    area: area.clone(),
                    check: "—".into(),
                    level: "—",
                    status: "error",
                    label: "error".into(),
                    sentence: error.clone(),
                    verdict_anchor: case_anchor(&case.id),
                });
            }
            for v in &case.verdicts {
                let known = report
                    .baseline
                    .as_ref()
                    .is_some_and(|b| b.is_known(&case.id, &v.id).is_some());
                rows.push(Row {
                    case: case.id.clone(),
                    case_anchor: case_anchor(&case.id),
                    area: area.clone(),
                    check: v.id.clone(),
                    level: level_name(v.level),
                    status: status_class(v.status),
                    label: format!(
                        "{}{}",
                        status_name(v.status),
                        if known { " (known)" } else { "" }
                    ),
                    sentence: v.sentence.clone(),
                    verdict_anchor: verdict_anchor(&case.id, &v.id),
                });
            }
        }
        let t1_ns = (m.profile.t1_ms * 1e6) as u64;
        let t2_ns = (m.profile.t2_ms * 1e6) as u64;
        let cases = report
            .cases
            .iter()
            .map(|case| {
                let events = timelines
                    .get(&case.id)
                    .cloned()
                    .unwrap_or_else(|| Err("no timeline was read".into()));
                CaseView::of(case, events, t1_ns, case_t2(case).unwrap_or(t2_ns))
            })
            .collect();
        Self {
            device: m.profile.device.clone(),
            profile_name: m.profile.name.clone(),
            profile_file: m.profile.file.clone(),
            dut: m.lab.as_ref().map_or_else(
                || m.dut.clone(),
                |lab| format!("{} — {}", m.dut, lab.describe()),
            ),
            firmware: m.profile.firmware.clone(),
            seed: m.seed,
            started: m.started.clone(),
            srvlab: m.srvlab.clone(),
            faults: m.faults.clone(),
            t1: format!("{} ms", number(m.profile.t1_ms)),
            counts,
            statuses,
            areas: areas.into_iter().collect(),
            total_rows: rows.len(),
            rows,
            baseline: report.baseline.as_ref().map(|b| {
                format!(
                    "Against the baseline {}: {} new failure(s), {} known, {} resolved.",
                    b.file,
                    b.new.len(),
                    b.known.len(),
                    b.resolved.len()
                )
            }),
            cases,
        }
    }
}

impl CaseView {
    fn of(case: &CaseResult, events: Result<Vec<Event>, String>, t1_ns: u64, t2_ns: u64) -> Self {
        let mut view = Self {
            id: case.id.clone(),
            anchor: case_anchor(&case.id),
            title: case.title.clone(),
            file: case.file.clone(),
            area: area_of(case),
            seconds: format!("{:.1} s", case.seconds),
            error: case.error.clone(),
            settings: case.settings.clone(),
            outcomes: case.outcomes.clone(),
            timeline: case.timeline.clone(),
            capture: case.capture.clone(),
            verdicts: case
                .verdicts
                .iter()
                .map(|v| VerdictView::of(&case.id, v))
                .collect(),
            ladder: None,
            ladder_note: None,
            timeline_error: None,
            events: Vec::new(),
            weights: case
                .verdicts
                .iter()
                .find(|v| v.id == "L9")
                .and_then(|v| WeightsView::of(&v.figures)),
            dirty: None,
        };
        let events = match events {
            Ok(events) => events,
            Err(why) => {
                view.timeline_error = Some(why);
                return view;
            }
        };
        let drawing = ladder::svg(&case.id, &events, t1_ns, t2_ns, MAX_LADDER_REQUESTS);
        if drawing.cut.omitted_requests > 0 {
            view.ladder_note = Some(format!(
                "The first {} requests are drawn; {} more requests are not drawn; see timeline.jsonl.",
                drawing.cut.drawn_requests, drawing.cut.omitted_requests
            ));
        }
        // The events table: what the ladder draws, and every event a verdict links to.
        let mut listed: BTreeSet<u64> = events[..drawing.cut.drawn_events]
            .iter()
            .map(|e| e.seq)
            .collect();
        for v in &view.verdicts {
            listed.extend(v.evidence.iter().map(|link| link.seq));
        }
        view.events = events
            .iter()
            .filter(|e| listed.contains(&e.seq))
            .map(|e| EventRow::of(&case.id, e))
            .collect();
        view.dirty = case
            .verdicts
            .iter()
            .find(|v| v.id == "D1")
            .and_then(|v| dirty_bars(&v.figures, &events));
        view.ladder = Some(drawing.svg);
        view
    }
}

impl VerdictView {
    fn of(case: &str, v: &Verdict) -> Self {
        let evidence = v
            .evidence
            .iter()
            .take(MAX_EVIDENCE_LINKS)
            .map(|seq| EvidenceLink {
                seq: *seq,
                href: event_anchor(case, *seq),
            })
            .collect();
        Self {
            id: v.id.clone(),
            anchor: verdict_anchor(case, &v.id),
            level: level_name(v.level),
            status: status_class(v.status),
            label: status_name(v.status).to_string(),
            sentence: v.sentence.clone(),
            evidence,
            evidence_more: v.evidence.len().saturating_sub(MAX_EVIDENCE_LINKS),
            figures: (!v.figures.is_null())
                .then(|| shortened(serde_json::to_string_pretty(&v.figures).unwrap_or_default())),
        }
    }
}

impl EventRow {
    fn of(case: &str, event: &Event) -> Self {
        let line = event.to_string();
        // Display writes "+1.234567s  what happened".
        let (time, text) = line
            .split_once("  ")
            .map_or((String::new(), line.clone()), |(t, rest)| {
                (t.to_string(), rest.to_string())
            });
        Self {
            seq: event.seq,
            anchor: event_anchor(case, event.seq),
            time,
            kind: kind_name(&event.kind).into(),
            text,
        }
    }
}

impl WeightsView {
    fn of(figures: &serde_json::Value) -> Option<Self> {
        let targets = figures.get("targets")?.as_array()?;
        let list = |key: &str| -> Vec<f64> {
            figures
                .get(key)
                .and_then(|v| v.as_array())
                .map(|a| a.iter().map(|x| x.as_f64().unwrap_or(0.0)).collect())
                .unwrap_or_default()
        };
        let (weights, probabilities, observed, expected) = (
            list("weights"),
            list("probabilities"),
            list("observed"),
            list("expected"),
        );
        let most = observed
            .iter()
            .chain(&expected)
            .copied()
            .fold(1.0_f64, f64::max);
        let pct = |x: f64| format!("{:.1}%", 100.0 * x / most);
        let at = |values: &[f64], i: usize| values.get(i).copied().unwrap_or(0.0);
        let rows = targets
            .iter()
            .enumerate()
            .map(|(i, target)| WeightRow {
                target: target
                    .as_str()
                    .unwrap_or_default()
                    .trim_end_matches('.')
                    .into(),
                weight: number(at(&weights, i)),
                probability: format!("{:.4}", at(&probabilities, i)),
                observed: number(at(&observed, i)),
                expected: format!("{:.1}", at(&expected, i)),
                observed_pct: pct(at(&observed, i)),
                expected_pct: pct(at(&expected, i)),
            })
            .collect();
        let float = |key: &str, digits: usize| {
            figures
                .get(key)
                .and_then(|v| v.as_f64())
                .map(|x| format!("{x:.digits$}"))
        };
        Some(Self {
            name: figures
                .get("name")
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .into(),
            priority: figures
                .get("priority")
                .map(|v| v.to_string())
                .unwrap_or_default(),
            trials: figures
                .get("trials")
                .map(|v| v.to_string())
                .unwrap_or_default(),
            alpha: figures
                .get("alpha")
                .and_then(|v| v.as_f64())
                .map(number)
                .unwrap_or_default(),
            p_value: float("p_value", 4),
            chi_square: float("chi_square", 2),
            df: figures.get("df").map(|v| v.to_string()),
            merged: figures
                .get("cells")
                .and_then(|v| v.as_array())
                .into_iter()
                .flatten()
                .filter_map(|cell| cell.get("targets")?.as_array().cloned())
                .filter(|targets| targets.len() > 1)
                .map(|targets| {
                    targets
                        .iter()
                        .map(|t| t.as_str().unwrap_or_default().trim_end_matches('.'))
                        .collect::<Vec<_>>()
                        .join(" + ")
                })
                .collect(),
            rows,
        })
    }
}

/// A time bar per SIP server: when D1 held it marked (the declared TTL, or Retry-After), and
/// every request sent to it, on the case's time axis.
fn dirty_bars(figures: &serde_json::Value, events: &[Event]) -> Option<String> {
    let marks = figures.get("marks")?.as_array()?;
    if marks.is_empty() {
        return None;
    }
    let ttl_ms = figures.get("dirty_host_ttl_ms").and_then(|v| v.as_f64());
    // One row per server address, as the ladder's columns: a mark covers one address.
    let row_of =
        |server: &str, address: &str| format!("{} {address}", server.trim_end_matches('.'));
    let mut servers: Vec<String> = Vec::new();
    let mut requests: BTreeMap<String, Vec<(u64, u64, bool)>> = BTreeMap::new();
    let retransmitted = ladder::retransmissions(events);
    for event in events {
        let row = match &event.kind {
            EventKind::SipReceived(m) if m.summary.method.as_deref() != Some("ACK") => {
                row_of(&m.server, &m.local.to_string())
            }
            EventKind::Refused(r) => row_of(&r.server, &r.local.to_string()),
            _ => continue,
        };
        if !servers.contains(&row) {
            servers.push(row.clone());
        }
        requests.entry(row).or_default().push((
            event.happened_ns(),
            event.seq,
            retransmitted.contains(&event.seq),
        ));
    }
    let mut spans: BTreeMap<String, Vec<(f64, f64, String, u64)>> = BTreeMap::new();
    for mark in marks {
        let text = |key: &str| mark.get(key).and_then(|v| v.as_str()).unwrap_or_default();
        let address = text("target").split_whitespace().last().unwrap_or_default();
        let row = row_of(text("server"), address);
        if !servers.contains(&row) {
            servers.push(row.clone());
        }
        spans.entry(row).or_default().push((
            mark.get("from_ms").and_then(|v| v.as_f64()).unwrap_or(0.0),
            mark.get("until_ms").and_then(|v| v.as_f64()).unwrap_or(0.0),
            text("how").to_string(),
            mark.get("seq").and_then(|v| v.as_u64()).unwrap_or(0),
        ));
    }
    let end_ms = events
        .iter()
        .map(|e| e.happened_ns() as f64 / 1e6)
        .chain(spans.values().flatten().map(|s| s.1))
        .fold(1.0_f64, f64::max);
    const LEFT: f64 = 300.0;
    const WIDTH: f64 = 900.0;
    const ROW: f64 = 34.0;
    let x = |ms: f64| LEFT + WIDTH * ms / end_ms;
    let height = 30.0 + ROW * servers.len() as f64;
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="dirty" width="{:.0}" height="{height:.0}" viewBox="0 0 {:.0} {height:.0}" role="img" aria-label="dirty-host marks">"#,
        LEFT + WIDTH + 20.0,
        LEFT + WIDTH + 20.0
    );
    for i in 0..=10 {
        let ms = end_ms * f64::from(i) / 10.0;
        let _ = write!(
            out,
            r#"<line class="grid" x1="{x:.1}" y1="0" x2="{x:.1}" y2="{:.1}"/><text class="coldetail" x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            height - 16.0,
            height - 4.0,
            seconds((ms * 1e6) as u64),
            x = x(ms)
        );
    }
    for (row, server) in servers.iter().enumerate() {
        let top = 6.0 + ROW * row as f64;
        let _ = write!(
            out,
            r#"<text class="col" x="{:.1}" y="{:.1}" text-anchor="end">{}</text><rect class="bar" x="{LEFT:.1}" y="{top:.1}" width="{WIDTH:.1}" height="20"/>"#,
            LEFT - 8.0,
            top + 14.0,
            escape(server)
        );
        for (from, until, how, _) in spans.get(server).into_iter().flatten() {
            let _ = write!(
                out,
                r#"<rect class="mark" x="{:.1}" y="{top:.1}" width="{:.1}" height="20"><title>marked dirty at {} ({how}) until {}</title></rect><text class="marklabel" x="{:.1}" y="{:.1}">marked {} ({})</text>"#,
                x(*from),
                (x(*until) - x(*from)).max(1.0),
                seconds((from * 1e6) as u64),
                seconds((until * 1e6) as u64),
                x(*from) + 3.0,
                top + 14.0,
                seconds((from * 1e6) as u64),
                escape(how)
            );
        }
        for (t_ns, seq, resend) in requests.get(server).into_iter().flatten() {
            let ms = *t_ns as f64 / 1e6;
            let inside = spans
                .get(server)
                .into_iter()
                .flatten()
                .any(|(from, until, _, _)| ms > *from && ms < *until);
            let _ = write!(
                out,
                r#"<line class="{}" x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}"><title>#{seq} at {}{}</title></line>"#,
                if inside { "req inside" } else { "req" },
                top + if *resend { 8.0 } else { 0.0 },
                top + 20.0,
                seconds(*t_ns),
                if *resend { " (retransmission)" } else { "" },
                x = x(ms)
            );
        }
    }
    out.push_str("</svg>");
    if let Some(ttl) = ttl_ms {
        out.push_str(&format!(
            r#"<p class="note">Declared dirty-host TTL: {}. Shaded: while a mark runs (a 503's Retry-After replaces the TTL). Each tick is a request sent to that server (short: a retransmission); red: sent while marked.</p>"#,
            seconds((ttl * 1e6) as u64)
        ));
    }
    Some(out)
}

/// A verdict's figures as shown: a 1000-trial case's lists are cut short (report.json has
/// them whole).
fn shortened(mut text: String) -> String {
    if text.len() > MAX_FIGURES_CHARS {
        let mut end = MAX_FIGURES_CHARS;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str("\n… (cut short; report.json holds every figure)");
    }
    text
}

/// The T2 a case configured (`t2 = 4·T1 = 80ms`), if it did.
fn case_t2(case: &CaseResult) -> Option<u64> {
    let setting = case.settings.iter().find(|s| s.starts_with("t2 = "))?;
    let value = setting.rsplit("= ").next()?;
    DurationSpec::parse(value)
        .ok()
        .and_then(|d| u64::try_from(d.0.as_nanos()).ok())
}

fn cell(status: Status, count: usize) -> CountCell {
    CountCell {
        status: status_class(status),
        label: status_name(status),
        count,
    }
}

fn status_class(status: Status) -> &'static str {
    match status {
        Status::Pass => "pass",
        Status::Fail => "fail",
        Status::Warn => "warn",
        Status::Info => "info",
        Status::Inconclusive => "inconclusive",
        Status::NotApplicable => "not_applicable",
    }
}

fn kind_name(kind: &EventKind) -> &'static str {
    match kind {
        EventKind::DnsQuery(_) => "dns query",
        EventKind::DnsAnswer(_) => "dns answer",
        EventKind::DnsDropped(_) => "dns dropped",
        EventKind::DnsMalformed(_) => "dns malformed",
        EventKind::SipReceived(_) => "sip in",
        EventKind::SipSent(_) => "sip out",
        EventKind::SipMalformed(_) => "malformed",
        EventKind::Refused(_) => "refused",
        EventKind::KeepAlive(_) => "keep-alive",
        EventKind::TcpConnected(_) => "tcp",
        EventKind::TcpClosed(_) => "tcp",
        EventKind::TcpUnframed(_) => "unframed",
        EventKind::TlsBytes(_) | EventKind::TlsSecret(_) => "tls",
        EventKind::TlsFailed(_) => "tls failed",
        EventKind::PhaseChanged(_) => "phase",
        EventKind::Step { .. } => "step",
        EventKind::Note { .. } | EventKind::Stopped { .. } => "note",
        EventKind::Trigger { .. } => "trigger",
        EventKind::HostDelay { .. } | EventKind::HostStall { .. } => "host delay",
    }
}

/// The case's area: the folder its file is in (`cases/failover/seed-crash.yaml` → failover).
fn area_of(case: &CaseResult) -> String {
    Path::new(&case.file)
        .parent()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn case_anchor(id: &str) -> String {
    format!("case-{id}")
}

fn verdict_anchor(case: &str, check: &str) -> String {
    format!("verdict-{case}-{check}")
}

/// A number as a person writes it: no trailing ".0", at most three decimals.
fn number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{x:.0}")
    } else {
        let text = format!("{x:.3}");
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_figures_are_cut_short_on_a_character_boundary() {
        assert_eq!(shortened("short".into()), "short");
        let long = "·".repeat(MAX_FIGURES_CHARS);
        let cut = shortened(long);
        assert!(cut.ends_with("report.json holds every figure)"));
        assert!(cut.len() < MAX_FIGURES_CHARS + 60);
    }

    #[test]
    fn numbers_print_the_same_way_every_time() {
        assert_eq!(number(20.0), "20");
        assert_eq!(number(0.001), "0.001");
        assert_eq!(number(12.5), "12.5");
    }

    #[test]
    fn weights_figures_become_rows_with_bars() {
        let figures = serde_json::json!({
            "name": "_sip._udp.zero.test.", "priority": 1, "trials": 400, "alpha": 0.001,
            "targets": ["a.zero.test.", "b.zero.test.", "z.zero.test."],
            "weights": [60, 40, 0], "probabilities": [0.594, 0.396, 0.0099],
            "observed": [240, 156, 4], "expected": [237.6, 158.4, 3.96],
            "p_value": 0.91234, "chi_square": 0.1834, "df": 1,
            "cells": [{"targets": ["b.zero.test.", "z.zero.test."]}, {"targets": ["a.zero.test."]}]
        });
        let view = WeightsView::of(&figures).unwrap();
        assert_eq!(view.p_value.as_deref(), Some("0.9123"));
        assert_eq!(view.alpha, "0.001");
        assert_eq!(view.rows[0].target, "a.zero.test");
        assert_eq!(view.rows[0].observed_pct, "100.0%");
        assert_eq!(view.rows[2].expected, "4.0");
        assert_eq!(view.merged, ["b.zero.test + z.zero.test"]);
    }
}
