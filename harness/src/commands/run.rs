//! `srvlab run [PATH...]`: run the suite against the reference UA, judge, and report.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use srvlab::dns::DnsLimits;
use srvlab::model::case::Case;
use srvlab::model::diag::Diagnostics;
use srvlab::model::lab::Lab;
use srvlab::model::profile::Profile;
use srvlab::run::baseline::Baseline;
use srvlab::run::case::{
    BETWEEN_CASES, CaseResult, DeviceUnderTest, RunOptions, case_dir, run_case,
};
use srvlab::run::report::{
    CaseFile, LabSummary, Manifest, ProfileSummary, Report, fnv1a64, status_name,
};
use srvlab::run::schedule::Schedule;
use srvlab::timeline::jsonl::Header;
use srvlab::ua::{Fault, Faults};
use srvlab::{say, tell};

use super::{exit_bad_input, print_diagnostics};

pub struct Options {
    pub paths: Vec<PathBuf>,
    pub profile: Option<PathBuf>,
    pub faults: Vec<Fault>,
    pub seed: u64,
    pub out: Option<PathBuf>,
    pub dns: SocketAddr,
    pub dns_limits: DnsLimits,
    pub dut: Dut,
    pub lab: Option<PathBuf>,
    pub jobs: usize,
    pub baseline: Option<PathBuf>,
}

/// The device under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Dut {
    /// srvlab's bundled reference UA, driven by the runner.
    Reference,
    /// A real device on a lab network, made to act by the lab's trigger (needs --lab).
    External,
}

impl Dut {
    pub fn name(self) -> &'static str {
        match self {
            Self::Reference => "reference",
            Self::External => "external",
        }
    }
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
    let lab = match (options.dut, &options.lab) {
        (Dut::External, Some(path)) => {
            let (lab, found) = Lab::load(path);
            diagnostics.extend(found);
            lab.map(Arc::new)
        }
        (Dut::External, None) => {
            tell!("srvlab: --dut external needs --lab LAB.yaml (see `srvlab doctor`)");
            return Ok(exit_bad_input());
        }
        (Dut::Reference, Some(_)) => {
            tell!("srvlab: --lab is for --dut external");
            return Ok(exit_bad_input());
        }
        (Dut::Reference, None) => None,
    };
    if lab.is_some() && !options.faults.is_empty() {
        tell!("srvlab: --fault switches on faults of the reference UA, not of a real device");
        return Ok(exit_bad_input());
    }
    if options.dut == Dut::External && lab.is_none() {
        print_diagnostics(&diagnostics);
        return Ok(exit_bad_input());
    }
    let profile_path = match (&options.profile, &lab) {
        (Some(path), _) => path.clone(),
        (None, Some(lab)) => lab.device.profile_path.clone(),
        (None, None) => PathBuf::from("fixtures/profiles/reference.yaml"),
    };
    let (profile, found) = Profile::load(&profile_path);
    diagnostics.extend(found);
    let baseline = match options.baseline.as_deref().map(Baseline::load) {
        Some(Ok(baseline)) => Some(baseline),
        Some(Err(found)) => {
            diagnostics.extend(found);
            None
        }
        None => None,
    };
    print_diagnostics(&diagnostics);
    let Some(profile) = profile else {
        return Ok(exit_bad_input());
    };
    if diagnostics.has_errors() {
        return Ok(exit_bad_input());
    }
    if cases.is_empty() {
        tell!("srvlab: no case files under {}", display(&options.paths));
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
        dns_limits: options.dns_limits,
        device: match &lab {
            Some(lab) => DeviceUnderTest::External(lab.clone()),
            None => DeviceUnderTest::Reference,
        },
    };
    if let Some(lab) = &lab {
        say!(
            "lab {}: DNS on {}, device {} ({} trigger), profile {}",
            lab.name,
            lab.dns
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            lab.device.describe(),
            lab.trigger.kind,
            profile_path.display()
        );
    }
    // A fixed DNS port can serve one case at a time, and so can one real device.
    let jobs = if options.dns.port() == 0 && lab.is_none() {
        options.jobs.max(1)
    } else {
        1
    };
    // Worker threads beyond the cores: a case judging a long timeline or writing its capture
    // keeps one worker busy, and the reference UA of another case must still wake on time.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2 + 2 * jobs)
        .enable_all()
        .build()?;
    let results = runtime.block_on(run_all(&cases, &run_options, &out, jobs));
    let manifest = Manifest {
        srvlab: env!("CARGO_PKG_VERSION").into(),
        started,
        seed: options.seed,
        dut: options.dut.name().into(),
        profile: ProfileSummary::of(
            &profile,
            &profile_path.display().to_string(),
            &std::fs::read(&profile_path).unwrap_or_default(),
        ),
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
        lab: lab.as_deref().map(LabSummary::of),
    };
    let mut report = Report::new(manifest, results);
    report.baseline = baseline.as_ref().map(|b| b.compare(&report.cases));
    report
        .write(&out)
        .with_context(|| format!("cannot write the reports into {}", out.display()))?;
    let c = &report.counts;
    say!(
        "{} pass, {} fail, {} warn, {} info, {} inconclusive, {} n/a; {} case(s) could not run",
        c.pass,
        c.fail,
        c.warn,
        c.info,
        c.inconclusive,
        c.not_applicable,
        c.errors
    );
    if let Some(b) = &report.baseline {
        say!(
            "against the baseline {}: {} new failure(s), {} known, {} resolved",
            b.file,
            b.new.len(),
            b.known.len(),
            b.resolved.len()
        );
        for d in &b.new {
            say!("  new: {} / {}: {}", d.case, d.check, d.reason);
        }
        for d in &b.resolved {
            say!("  resolved: {} / {} ({})", d.case, d.check, d.reason);
        }
    }
    say!("report: {}", out.join("report.json").display());
    let nothing_judged = report.nothing_judged();
    Ok(if c.errors > 0 {
        super::exit_run_failed()
    } else if let Some(why) = nothing_judged.filter(|_| lab.is_some()) {
        tell!("srvlab: {why}");
        super::exit_run_failed()
    } else if report.fails() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Runs every case, `jobs` at a time where their addresses do not collide, printing one line
/// per case as it ends; the results come back in file order. Ctrl-C or SIGTERM stops the run:
/// cases still running are marked interrupted (their timelines and captures are already on
/// disk), the rest not run, and the reports are written all the same.
async fn run_all(cases: &[Case], options: &RunOptions, out: &Path, jobs: usize) -> Vec<CaseResult> {
    use tokio::signal::unix::{SignalKind, signal};
    let total = cases.len();
    let cases: Vec<Arc<Case>> = cases.iter().cloned().map(Arc::new).collect();
    let mut schedule = Schedule::of(&cases, jobs);
    let mut results: Vec<Option<CaseResult>> = vec![None; total];
    let mut running = tokio::task::JoinSet::new();
    let mut tasks = std::collections::HashMap::new();
    let mut done = 0;
    let (mut interrupt, mut terminate) = match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(interrupt), Ok(terminate)) => (Some(interrupt), Some(terminate)),
        _ => (None, None),
    };
    let mut stopped = None;
    while !schedule.is_done() {
        while let Some(index) = schedule.start_next() {
            let case = cases[index].clone();
            let options = options.clone();
            let dir = case_dir(out, &case.id);
            let out = out.to_path_buf();
            let handle = running.spawn(async move {
                let result = run_case(&case, &options, &dir, &out).await;
                // Lets the world's sockets close before another case takes its addresses.
                tokio::time::sleep(BETWEEN_CASES).await;
                result
            });
            tasks.insert(handle.id(), index);
        }
        let joined = tokio::select! {
            joined = running.join_next_with_id() => joined,
            Some(()) = async { interrupt.as_mut()?.recv().await } => {
                stopped = Some("interrupted (Ctrl-C)");
                break;
            }
            Some(()) = async { terminate.as_mut()?.recv().await } => {
                stopped = Some("stopped (SIGTERM)");
                break;
            }
        };
        let Some(joined) = joined else {
            break;
        };
        let (id, result) = match joined {
            Ok((id, result)) => (id, result),
            // A panic in a case is a bug of srvlab; the case is reported as not carried out.
            Err(err) => {
                let index = tasks.get(&err.id()).copied();
                tell!("srvlab: a case task failed: {err}");
                if let Some(index) = index {
                    schedule.finished(index);
                    results[index] = Some(CaseResult::not_run(
                        &cases[index],
                        &format!("srvlab failed while running it: {err}"),
                    ));
                }
                continue;
            }
        };
        let Some(index) = tasks.get(&id).copied() else {
            continue;
        };
        schedule.finished(index);
        done += 1;
        say!("[{done}/{total}] {}", case_line(&result));
        results[index] = Some(result);
    }
    if let Some(why) = stopped {
        tell!("srvlab: {why}; writing the reports of what ran");
        running.abort_all();
        for index in tasks.values() {
            if results[*index].is_none() {
                let mut result = CaseResult::not_run(
                    &cases[*index],
                    &format!("{why} while it ran; its timeline and capture hold what happened"),
                );
                let dir = Path::new("cases").join(&cases[*index].id);
                result.timeline = dir.join("timeline.jsonl").display().to_string();
                result.capture = dir.join("capture.pcap").display().to_string();
                results[*index] = Some(result);
            }
        }
    }
    results
        .into_iter()
        .zip(&cases)
        .map(|(result, case)| {
            result.unwrap_or_else(|| {
                CaseResult::not_run(case, "not run: the run was stopped before it")
            })
        })
        .collect()
}

/// The console's one line for a finished case.
fn case_line(result: &CaseResult) -> String {
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
    format!("{:<28} {line}  ({:.1}s)", result.id, result.seconds)
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
