//! What a check says: one verdict per check id, with the sentence a person reads, the events
//! that prove it and the numbers measured.

use serde::{Deserialize, Serialize};
use serde_json::json;

/// How a violation of a requirement is reported (CONFORMANCE.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Must,
    Should,
    Info,
    Profile,
}

/// The outcome of one check on one run.
///
/// A MUST violation is `Fail`, a SHOULD violation `Warn`, a broken PROFILE claim `Fail`; an
/// INFO check only ever says `Info`. A requirement the run never exercised is `Inconclusive`
/// (no check passes vacuously); a check that cannot concern this case is `NotApplicable`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pass,
    Fail,
    Warn,
    Info,
    Inconclusive,
    NotApplicable,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// The CONFORMANCE.md id, e.g. "F1".
    pub id: String,
    pub level: Level,
    pub status: Status,
    /// One sentence with the numbers.
    pub sentence: String,
    /// Sequence numbers of the events that prove it.
    pub evidence: Vec<u64>,
    /// Measured values and the tolerances used.
    pub figures: serde_json::Value,
}

impl Verdict {
    pub fn new(id: &str, level: Level, status: Status, sentence: impl Into<String>) -> Self {
        Self {
            id: id.to_owned(),
            level,
            status,
            sentence: sentence.into(),
            evidence: Vec::new(),
            figures: serde_json::Value::Null,
        }
    }

    pub fn with_evidence(mut self, mut evidence: Vec<u64>) -> Self {
        evidence.sort_unstable();
        evidence.dedup();
        self.evidence = evidence;
        self
    }

    pub fn with_figures(mut self, figures: serde_json::Value) -> Self {
        self.figures = figures;
        self
    }

    /// The status a violation gets at `level`: Fail for MUST and PROFILE, Warn for SHOULD,
    /// Info for INFO.
    pub fn violation(level: Level) -> Status {
        match level {
            Level::Must | Level::Profile => Status::Fail,
            Level::Should => Status::Warn,
            Level::Info => Status::Info,
        }
    }
}

/// Findings of one check: violations, instances judged, evidence of the good ones.
#[derive(Default)]
pub(crate) struct Findings {
    pub judged: usize,
    pub bad: Vec<(String, Vec<u64>)>,
    pub evidence: Vec<u64>,
    pub measured: Vec<serde_json::Value>,
    /// What the check did not judge and why ("1 REGISTER srvlab's trigger asked for is left
    /// out"): said in parentheses after whichever sentence the verdict gets.
    pub left_out: Vec<String>,
}

impl Findings {
    /// The first violation, else Inconclusive when nothing was judged, else Pass.
    pub fn verdict(
        self,
        id: &str,
        level: Level,
        pass: String,
        unexercised: &str,
        mut figures: serde_json::Value,
    ) -> Verdict {
        if !figures.is_object() {
            figures = json!({});
        }
        figures["measured"] = json!(self.measured);
        figures["judged"] = json!(self.judged);
        let aside = if self.left_out.is_empty() {
            String::new()
        } else {
            figures["left_out"] = json!(self.left_out);
            format!(" ({})", self.left_out.join("; "))
        };
        if let Some((sentence, seqs)) = self.bad.first() {
            let more = if self.bad.len() > 1 {
                format!(" ({} of {} cases)", self.bad.len(), self.judged.max(1))
            } else {
                String::new()
            };
            return Verdict::new(
                id,
                level,
                Verdict::violation(level),
                format!("{sentence}{more}{aside}"),
            )
            .with_evidence(seqs.clone())
            .with_figures(figures);
        }
        if self.judged == 0 {
            return Verdict::new(
                id,
                level,
                Status::Inconclusive,
                format!("{unexercised}{aside}"),
            )
            .with_figures(figures);
        }
        Verdict::new(id, level, Status::Pass, format!("{pass}{aside}"))
            .with_evidence(self.evidence)
            .with_figures(figures)
    }
}
