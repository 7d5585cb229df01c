//! `--baseline`: what a firmware CI already knows about its device. Either an earlier
//! `report.json` (every failure in it is known) or a list of expected deviations, each with the
//! reason it is accepted:
//!
//! ```yaml
//! # Known deviations of firmware 10.1.
//! deviations:
//!   - case: seed-crash
//!     check: D1
//!     reason: dirty host kept only 30 s (FW-1234)
//! ```
//!
//! Against a baseline the run's exit code reflects changes only: a failure the baseline does not
//! list fails the run; a listed failure does not. A listed deviation that no longer fails is
//! reported as resolved, so the baseline can shrink, but does not fail the run.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

use super::case::CaseResult;
use super::report::{Report, SCHEMA};
use crate::checks::Status;
use crate::model::diag::{Diagnostic, Diagnostics, SourceFile, Span};
use crate::model::steps::CHECKLIST;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDeviations {
    deviations: Vec<RawDeviation>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDeviation {
    case: Spanned<String>,
    check: Spanned<String>,
    reason: Spanned<String>,
}

/// A failure the baseline accepts, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deviation {
    pub case: String,
    pub check: String,
    pub reason: String,
}

#[derive(Clone, Debug)]
pub struct Baseline {
    /// The file it came from, as given.
    pub file: String,
    /// Keyed by (case, check).
    pub deviations: BTreeMap<(String, String), Deviation>,
}

/// A run compared with its baseline: what goes into the reports and decides the exit code.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Comparison {
    pub file: String,
    /// Failures the baseline does not know: these fail the run.
    pub new: Vec<Deviation>,
    /// Failures the baseline lists (the reason is the baseline's).
    pub known: Vec<Deviation>,
    /// Listed deviations that did not fail this time (passed, or the case was not run).
    pub resolved: Vec<Deviation>,
}

impl Baseline {
    /// Reads a report.json or a deviations list. Errors carry file:line:column.
    pub fn load(path: &Path) -> Result<Self, Diagnostics> {
        let file = SourceFile::read(path).map_err(|d| Diagnostics(vec![*d]))?;
        if file.text.trim_start().starts_with('{') {
            Self::from_report(&file)
        } else {
            Self::from_deviations(&file)
        }
    }

    fn from_report(file: &Arc<SourceFile>) -> Result<Self, Diagnostics> {
        let report: Report = serde_json::from_str(&file.text).map_err(|err| {
            Diagnostics(vec![Diagnostic::error(
                Span::new(file, err.line() as u64, err.column() as u64),
                format!("not a srvlab report.json: {err}"),
            )])
        })?;
        if report.schema != SCHEMA {
            return Err(Diagnostics(vec![Diagnostic::error(
                Span::new(file, 1, 1),
                format!(
                    "report schema `{}`; this srvlab reads `{SCHEMA}`",
                    report.schema
                ),
            )]));
        }
        let reason = format!(
            "failed in the baseline run of {} (seed {})",
            report.manifest.started, report.manifest.seed
        );
        let mut deviations = BTreeMap::new();
        for case in &report.cases {
            for verdict in case.verdicts.iter().filter(|v| v.status == Status::Fail) {
                deviations.insert(
                    (case.id.clone(), verdict.id.clone()),
                    Deviation {
                        case: case.id.clone(),
                        check: verdict.id.clone(),
                        reason: reason.clone(),
                    },
                );
            }
        }
        Ok(Self {
            file: file.path.clone(),
            deviations,
        })
    }

    fn from_deviations(file: &Arc<SourceFile>) -> Result<Self, Diagnostics> {
        let raw: RawDeviations = serde_saphyr::from_str(&file.text)
            .map_err(|err| Diagnostics(vec![Diagnostic::from_yaml(file, &err)]))?;
        let mut diagnostics = Diagnostics::default();
        let mut deviations = BTreeMap::new();
        for raw in raw.deviations {
            if !CHECKLIST.contains(&raw.check.value.as_str()) {
                diagnostics.push(Diagnostic::error(
                    Span::of(file, &raw.check),
                    format!("no checklist row `{}`", raw.check.value),
                ));
            }
            if raw.reason.value.trim().is_empty() {
                diagnostics.push(Diagnostic::error(
                    Span::of(file, &raw.reason),
                    "a deviation needs a reason: whoever reads the report must see why it is accepted",
                ));
            }
            let key = (raw.case.value.clone(), raw.check.value.clone());
            if deviations.contains_key(&key) {
                diagnostics.push(Diagnostic::error(
                    Span::of(file, &raw.case),
                    format!("{}/{} is listed twice", key.0, key.1),
                ));
            }
            deviations.insert(
                key,
                Deviation {
                    case: raw.case.value,
                    check: raw.check.value,
                    reason: raw.reason.value.trim().to_string(),
                },
            );
        }
        if diagnostics.has_errors() {
            return Err(diagnostics);
        }
        Ok(Self {
            file: file.path.clone(),
            deviations,
        })
    }

    /// Sorts this run's failures into new and known, and finds the resolved deviations.
    pub fn compare(&self, cases: &[CaseResult]) -> Comparison {
        let mut comparison = Comparison {
            file: self.file.clone(),
            ..Comparison::default()
        };
        let mut still_failing = Vec::new();
        for case in cases {
            for verdict in case.verdicts.iter().filter(|v| v.status == Status::Fail) {
                let key = (case.id.clone(), verdict.id.clone());
                match self.deviations.get(&key) {
                    Some(known) => {
                        comparison.known.push(known.clone());
                        still_failing.push(key);
                    }
                    None => comparison.new.push(Deviation {
                        case: case.id.clone(),
                        check: verdict.id.clone(),
                        reason: verdict.sentence.clone(),
                    }),
                }
            }
        }
        comparison.resolved = self
            .deviations
            .iter()
            .filter(|(key, _)| !still_failing.contains(key))
            .map(|(_, deviation)| deviation.clone())
            .collect();
        comparison
    }
}

impl Comparison {
    /// Whether `case`/`check` failed as the baseline expected.
    pub fn is_known(&self, case: &str, check: &str) -> Option<&Deviation> {
        self.known
            .iter()
            .find(|d| d.case == case && d.check == check)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::{Level, Verdict};

    fn case(id: &str, verdicts: &[(&str, Status)]) -> CaseResult {
        CaseResult {
            id: id.into(),
            title: String::new(),
            file: String::new(),
            covers: Vec::new(),
            seconds: 0.0,
            error: None,
            settings: Vec::new(),
            outcomes: Vec::new(),
            left_out: None,
            verdicts: verdicts
                .iter()
                .map(|(check, status)| Verdict {
                    id: (*check).into(),
                    level: Level::Must,
                    status: *status,
                    sentence: format!("{check} said so"),
                    evidence: Vec::new(),
                    figures: serde_json::Value::Null,
                })
                .collect(),
            timeline: String::new(),
            capture: String::new(),
        }
    }

    fn deviations(text: &str) -> Result<Baseline, Diagnostics> {
        Baseline::from_deviations(&SourceFile::new("baseline.yaml", text))
    }

    #[test]
    fn known_failures_do_not_count_new_ones_do_and_fixed_ones_are_resolved() {
        let baseline = deviations(
            "deviations:\n  - {case: a, check: D1, reason: FW-1}\n  - {case: b, check: T1, reason: FW-2}\n",
        )
        .unwrap();
        let run = [
            case("a", &[("D1", Status::Fail), ("D2", Status::Fail)]),
            case("b", &[("T1", Status::Pass)]),
        ];
        let comparison = baseline.compare(&run);
        assert_eq!(comparison.known.len(), 1);
        assert_eq!(comparison.known[0].reason, "FW-1");
        assert_eq!(comparison.new.len(), 1);
        assert_eq!(
            (
                comparison.new[0].case.as_str(),
                comparison.new[0].check.as_str()
            ),
            ("a", "D2")
        );
        assert_eq!(comparison.resolved.len(), 1);
        assert_eq!(comparison.resolved[0].check, "T1");
        assert!(comparison.is_known("a", "D1").is_some());
    }

    #[test]
    fn a_deviation_without_a_reason_or_with_an_unknown_check_is_refused_with_its_place() {
        let err = deviations("deviations:\n  - case: a\n    check: Z9\n    reason: \"  \"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("baseline.yaml:3:12"), "{err}");
        assert!(err.contains("no checklist row `Z9`"), "{err}");
        assert!(err.contains("baseline.yaml:4:13"), "{err}");
        assert!(err.contains("needs a reason"), "{err}");
    }

    #[test]
    fn an_unknown_field_is_refused() {
        let err = deviations("deviations:\n  - {case: a, check: D1, reason: x, why: y}\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("baseline.yaml:2:"), "{err}");
    }
}
