//! `srvlab ua register|call|options URI --dns ADDR …`: the reference UA by itself, against any
//! DNS and SIP servers, printing every attempt: time, target, transport, outcome.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use srvlab::sip::uri::SipUri;
use srvlab::ua::agent::{AttemptOutcome, Method, Outcome};
use srvlab::ua::io::{Progress, Ua};
use srvlab::ua::{Fault, Faults, UaConfig};
use srvlab::{say, tell};

pub struct Options {
    pub method: Method,
    pub uri: String,
    pub dns: SocketAddr,
    pub t1_ms: u64,
    pub dirty_host_ttl: Option<u64>,
    pub count: u32,
    pub seed: u64,
    pub faults: Vec<Fault>,
    pub user: String,
    /// The CA file to trust for TLS targets.
    pub ca: Option<std::path::PathBuf>,
}

pub fn list_faults() -> ExitCode {
    for fault in Fault::ALL {
        say!("{:<28} {}", fault.name(), fault.description());
    }
    ExitCode::SUCCESS
}

pub fn run(options: Options) -> anyhow::Result<ExitCode> {
    let uri = match SipUri::parse(&options.uri) {
        Ok(uri) => uri,
        Err(why) => {
            tell!("srvlab: `{}` is not a SIP URI: {why}", options.uri);
            return Ok(super::exit_bad_input());
        }
    };
    if options.count == 0 {
        bail!("--count must be at least 1");
    }
    let mut config = UaConfig {
        t1: Duration::from_millis(options.t1_ms),
        dirty_host_ttl: options.dirty_host_ttl.map(Duration::from_secs),
        seed: options.seed,
        faults: Faults(options.faults.iter().copied().collect()),
        ..UaConfig::default()
    };
    let tls = match &options.ca {
        Some(path) => {
            let pem = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read --ca {}", path.display()))?;
            let roots = srvlab::tls::certificates_in_pem(&pem)
                .with_context(|| format!("--ca {}", path.display()))?;
            Some(srvlab::tls::client_config_trusting(
                &roots,
                config.faults.certificate_check(),
            )?)
        }
        None => None,
    };
    if tls.is_some() {
        // A CA to trust is what the UA needs to speak TLS: with one, it does.
        config.transports.push(srvlab::timeline::Transport::Tls);
    }
    let runtime = tokio::runtime::Runtime::new().context("cannot start the runtime")?;
    let failures = runtime.block_on(async {
        let mut ua = Ua::new(config, &options.user, options.dns);
        if let Some(tls) = tls {
            ua = ua.with_tls(tls);
        }
        let mut failures = 0;
        for round in 1..=options.count {
            if options.count > 1 {
                say!("# {} {round}/{}", options.method.as_str(), options.count);
            }
            let started = ua.now();
            let outcome = ua
                .run(options.method, uri.clone(), |progress| {
                    if let Progress::Attempt(report) = progress {
                        say!(
                            "{:>10.3}s  {:<8} {:<4} {:<22} {}",
                            report.sent.as_secs_f64(),
                            report.method.as_str(),
                            report.target.transport,
                            report.target.addr,
                            describe(&report.outcome, report.ended - report.sent)
                        );
                    }
                })
                .await;
            let took = ua.now() - started;
            match &outcome {
                Outcome::Succeeded { status, target } => {
                    say!(
                        "→ {status} from {} after {:.3}s",
                        target.addr,
                        took.as_secs_f64()
                    );
                }
                Outcome::Rejected { status, target } => {
                    failures += 1;
                    say!("→ rejected: {status} from {}", target.addr);
                }
                Outcome::Failed { why } => {
                    failures += 1;
                    say!("→ failed: {why}");
                }
            }
        }
        failures
    });
    Ok(if failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn describe(outcome: &AttemptOutcome, took: Duration) -> String {
    let took = took.as_secs_f64();
    match outcome {
        AttemptOutcome::Answered(status) => format!("{status} after {took:.3}s"),
        AttemptOutcome::TimedOut => format!("no answer: timed out after {took:.3}s"),
        AttemptOutcome::Refused => format!("refused after {took:.3}s"),
    }
}
