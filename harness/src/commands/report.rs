//! `srvlab report RUN_DIR [--format html|md|junit|json]`: renders a report again from a run's
//! report.json and the cases' timelines, offline, without the device; writes it into RUN_DIR
//! and prints its path.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use srvlab::run::report::Report;
use srvlab::{say, tell};

use super::exit_bad_input;

/// Which report to render.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// report.html: summary, ladders, weights, dirty hosts.
    Html,
    /// summary.md.
    Md,
    /// junit.xml.
    Junit,
    /// report.json (as srvlab writes it).
    Json,
}

impl Format {
    pub fn file_name(self) -> &'static str {
        match self {
            Self::Html => "report.html",
            Self::Md => "summary.md",
            Self::Junit => "junit.xml",
            Self::Json => "report.json",
        }
    }
}

pub fn run(dir: &Path, format: Format) -> anyhow::Result<ExitCode> {
    let report = match Report::load(&dir.join("report.json")) {
        Ok(report) => report,
        Err(err) => {
            tell!("srvlab: {err}");
            return Ok(exit_bad_input());
        }
    };
    let text = match format {
        Format::Html => report.html(dir)?,
        Format::Md => report.markdown(),
        Format::Junit => report.junit().to_string()?,
        Format::Json => report.json()?,
    };
    let path = dir.join(format.file_name());
    srvlab::run::report::write_atomically(&path, text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    say!("{}", path.display());
    Ok(ExitCode::SUCCESS)
}
