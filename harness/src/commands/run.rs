//! `srvlab run [PATH...]`: run the suite against the reference UA, judge, and report.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use srvlab::model::case::Case;
use srvlab::model::diag::Diagnostics;
use srvlab::model::profile::Profile;
use srvlab::run::case::{BETWEEN_CASES, RunOptions, case_dir, run_case};
use srvlab::run::report::{CaseFile, Manifest, ProfileSummary, Report, fnv1a64, status_name};
use srvlab::timeline::jsonl::Header;
use srvlab::ua::{Fault, Faults};

use super::{exit_bad_input, print_diagnostics};

pub struct Options {
    pub paths: Vec<PathBuf>,
    pub profile: PathBuf,
    pub faults: Vec<Fault>,
    pub seed: u64,
    pub out: Option<PathBuf>,
    pub dns: SocketAddr,
}

pub fn run(options: Options) -> anyhow::Result<ExitCode> {
    let mut files = Vec::new();
    for path in &options.paths {
        super::validate::collect_yaml(path, &mut files)
            .with_context(|| format!("cannot list {}", path.display()))?;
    }
    let mut diagnostics = Diagnostics::default();
    let mut cases = Vec::new();
    for file in &files {
        let (case, found) = Case::load(file);
        diagnostics.extend(found);
        cases.extend(case);
    }
    let (profile, found) = Profile::load(&options.profile);
    diagnostics.extend(found);
    print_diagnostics(&diagnostics);
    let Some(profile) = profile else {
        return Ok(exit_bad_input());
    };
    if diagnostics.has_errors() {
        return Ok(exit_bad_input());
    }
    if cases.is_empty() {
        eprintln!("srvlab: no case files under {}", display(&options.paths));
        return Ok(exit_bad_input());
    }

    let started = Header::new(std::time::SystemTime::now()).wall_start;
    let run_id: String = started
        .chars()
        .take(19)
        .filter(|c| c.is_ascii_digit() || *c == 'T')
        .map(|c| if c == 'T' { '-' } else { c })
        .collect();
    let out = options
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("reports").join(&run_id));
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;

    let faults = Faults(options.faults.iter().copied().collect());
    let run_options = RunOptions {
        profile: profile.clone(),
        seed: options.seed,
        faults: faults.clone(),
        dns_listen: options.dns,
    };
    let runtime = tokio::runtime::Runtime::new()?;
    let total = cases.len();
    let mut results = Vec::new();
    for (index, case) in cases.iter().enumerate() {
        let result = runtime.block_on(async {
            let result = run_case(case, &run_options, &case_dir(&out, &case.id), &out).await;
            tokio::time::sleep(BETWEEN_CASES).await;
            result
        });
        let line = match &result.error {
            Some(error) => format!("ERROR {error}"),
            None => {
                let worst = result
                    .verdicts
                    .iter()
                    .map(|v| v.status)
                    .min_by_key(|s| severity(*s))
                    .map_or("no checks", status_name);
                let detail: Vec<String> = result
                    .verdicts
                    .iter()
                    .map(|v| format!("{} {}", v.id, status_name(v.status)))
                    .collect();
                format!("{worst:<12} {}", detail.join(", "))
            }
        };
        println!(
            "[{}/{total}] {:<28} {line}  ({:.1}s)",
            index + 1,
            result.id,
            result.seconds
        );
        results.push(result);
    }

    let manifest = Manifest {
        srvlab: env!("CARGO_PKG_VERSION").into(),
        started,
        seed: options.seed,
        dut: "reference".into(),
        profile: ProfileSummary {
            device: profile.device.clone(),
            name: profile.name.clone(),
            t1_ms: profile.t1.as_secs_f64() * 1000.0,
            t2_ms: profile.t2.as_secs_f64() * 1000.0,
            dirty_host_ttl_s: profile.dirty_host_ttl.map(|d| d.as_secs_f64()),
        },
        faults: options
            .faults
            .iter()
            .map(|f| f.name().to_string())
            .collect(),
        host: std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default(),
        cases: cases
            .iter()
            .map(|c| CaseFile {
                id: c.id.clone(),
                file: c.file.path.clone(),
                fnv1a64: fnv1a64(c.file.text.as_bytes()),
            })
            .collect(),
    };
    let report = Report::new(manifest, results);
    report
        .write(&out)
        .with_context(|| format!("cannot write the reports into {}", out.display()))?;
    let c = &report.counts;
    println!(
        "{} pass, {} fail, {} warn, {} info, {} inconclusive, {} n/a; {} case(s) could not run",
        c.pass, c.fail, c.warn, c.info, c.inconclusive, c.not_applicable, c.errors
    );
    println!("report: {}", out.join("report.json").display());
    Ok(if c.errors > 0 {
        super::exit_run_failed()
    } else if c.fail > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Worst first, for the one-line summary of a case.
fn severity(status: srvlab::checks::Status) -> u8 {
    use srvlab::checks::Status;
    match status {
        Status::Fail => 0,
        Status::Warn => 1,
        Status::Inconclusive => 2,
        Status::Pass => 3,
        Status::Info => 4,
        Status::NotApplicable => 5,
    }
}

fn display(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| Path::display(p).to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
