//! The `srvlab` command line. This file only parses arguments; `commands/` does the work.

#![deny(clippy::print_stdout, clippy::print_stderr)]

mod commands;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use srvlab::dns::DnsLimits;
use srvlab::model::zone::DnsFault;
use srvlab::tell;

/// Conformance test harness for SIP server location and failover over DNS.
///
/// Exit codes: 0 success, 2 bad input (a broken zone or case file), 3 the run itself could not
/// be carried out (e.g. a port in use).
#[derive(Debug, Parser)]
#[command(name = "srvlab", version, about, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve zones as an authoritative DNS server and print one line per query.
    Dns {
        /// Zone files (YAML); served together.
        #[arg(long = "zone", short = 'z', required = true, num_args = 1.., value_name = "FILE")]
        zones: Vec<PathBuf>,
        /// Address to listen on, over UDP and TCP (repeatable). Port 53 needs root.
        #[arg(
            long,
            short = 'l',
            default_value = "127.0.0.1:5353",
            value_name = "ADDR"
        )]
        listen: Vec<SocketAddr>,
        /// A scripted fault, on top of the zones' own: NAME[/TYPE]=timeout|servfail|truncate[xN]
        /// (xN: only the first N matching queries), e.g. `_sip._udp.snom.rocks./SRV=timeout`.
        #[arg(long = "fault", value_name = "SPEC")]
        faults: Vec<DnsFault>,
        /// Print every event (queries too, not just one line per answer) as JSON lines.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        limits: DnsLimitArgs,
    },
    /// Run the suite against the reference UA or a real device, judge every check, write
    /// the reports.
    Run {
        /// Case files or folders (default: cases/).
        #[arg(default_value = "cases")]
        paths: Vec<PathBuf>,
        /// The device profile (what the device is configured with and claims); default:
        /// fixtures/profiles/reference.yaml, or the lab's device profile with --lab.
        #[arg(long, value_name = "FILE")]
        profile: Option<PathBuf>,
        /// Switch on one of the reference UA's faults (repeatable).
        #[arg(long = "fault", value_name = "NAME")]
        faults: Vec<srvlab::ua::Fault>,
        /// Seed of the reference UA's random choices.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Where the reports go (default: reports/RUN-ID).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Where each case's DNS server listens (port 0: any free port; a fixed port runs
        /// one case at a time).
        #[arg(long, default_value = "127.0.0.1:0", value_name = "ADDR")]
        dns: SocketAddr,
        /// The device under test: srvlab's reference UA, or a real device (needs --lab).
        #[arg(long, value_enum, default_value = "reference")]
        dut: commands::run::Dut,
        /// The lab profile: where DNS listens, the servers' addresses, the device and how to
        /// trigger it (with --dut external).
        #[arg(long, value_name = "FILE")]
        lab: Option<PathBuf>,
        /// How many cases run at once (cases whose addresses collide never do).
        #[arg(long, short = 'j', default_value_t = 4, value_name = "N")]
        jobs: usize,
        /// An earlier report.json, or a YAML list of expected deviations with reasons: the exit
        /// code then reflects only failures the baseline does not list.
        #[arg(long, value_name = "FILE")]
        baseline: Option<PathBuf>,
        #[command(flatten)]
        dns_limits: DnsLimitArgs,
    },
    /// Check that a run against a real device can start on this host: the lab's addresses,
    /// free ports, privileges, the trigger, and whether the device answers; print the
    /// commands that fix what is missing. Exit 0 only when a run can start.
    Doctor {
        /// The lab profile.
        #[arg(long, value_name = "FILE")]
        lab: PathBuf,
        /// The cases the run will use (their ports and addresses are checked too).
        #[arg(default_value = "cases")]
        paths: Vec<PathBuf>,
    },
    /// Render a run's report again (html, md, junit or json) from its report.json and the
    /// cases' timelines, offline; writes it into RUN_DIR and prints its path.
    Report {
        /// The run folder (holds report.json and cases/).
        #[arg(value_name = "RUN_DIR")]
        dir: PathBuf,
        /// Which report to render.
        #[arg(long, value_enum, default_value = "html")]
        format: commands::report::Format,
    },
    /// Bring a case's world up (DNS and scripted SIP servers) for a phone or any SIP client;
    /// print the timeline live; write timeline.jsonl and capture.pcap as events happen.
    Serve {
        /// The case file (YAML).
        case: PathBuf,
        /// Where to write timeline.jsonl and capture.pcap (default: reports/serve-ID-TIME).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Address the DNS server listens on (repeatable; port 53 needs root).
        #[arg(long, default_value = "127.0.0.1:5353", value_name = "ADDR")]
        dns: Vec<SocketAddr>,
        #[command(flatten)]
        dns_limits: DnsLimitArgs,
    },
    /// Run the reference UA by itself against any DNS and SIP servers, printing each attempt.
    Ua {
        /// Print the names of the UA's faults with what each does, and exit.
        #[arg(long)]
        list_faults: bool,
        /// What to do.
        #[arg(value_enum, required_unless_present = "list_faults")]
        action: Option<UaAction>,
        /// Where to, e.g. sip:100@snom.rocks.
        #[arg(required_unless_present = "list_faults")]
        uri: Option<String>,
        /// The DNS server to ask.
        #[arg(long, default_value = "127.0.0.1:5353", value_name = "ADDR")]
        dns: SocketAddr,
        /// RFC 3261 T1 in milliseconds (Timer B is 64·T1).
        #[arg(long, default_value_t = 500, value_name = "MS")]
        t1: u64,
        /// Avoid a failed target this many seconds (off unless given).
        #[arg(long, value_name = "S")]
        dirty_host_ttl: Option<u64>,
        /// Do it this many times, one after another (dirty hosts and the DNS cache carry over).
        #[arg(long, default_value_t = 1, value_name = "N")]
        count: u32,
        /// Seed of every random choice (weighted draws, tags).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Misbehave on purpose (repeatable); see --list-faults.
        #[arg(long = "fault", value_name = "NAME")]
        faults: Vec<srvlab::ua::Fault>,
        /// The user part of the UA's address.
        #[arg(long, default_value = "srvlab")]
        user: String,
        /// Reach TLS targets trusting the CA certificate(s) in this PEM file only (a lab's CA,
        /// or a case's ca.pem); without it a TLS target fails.
        #[arg(long, value_name = "FILE")]
        ca: Option<PathBuf>,
    },
    /// Check zone and case files (files or folders of *.yaml); exits 2 when any has an error.
    Validate {
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
    },
}

/// What srvlab's DNS server allows a client.
#[derive(Clone, Copy, Debug, clap::Args)]
struct DnsLimitArgs {
    /// The largest UDP answer of the DNS server, in bytes, whatever EDNS buffer a client
    /// advertises (without EDNS: 512); a larger answer goes out truncated (TC), for TCP.
    #[arg(
        long,
        default_value_t = DnsLimits::UDP_MAX,
        value_name = "BYTES",
        value_parser = clap::value_parser!(u16).range(i64::from(DnsLimits::UDP_MIN)..)
    )]
    udp_max: u16,
}

impl From<DnsLimitArgs> for DnsLimits {
    fn from(args: DnsLimitArgs) -> Self {
        Self {
            udp_max: args.udp_max,
            ..Self::default()
        }
    }
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum UaAction {
    Register,
    Call,
    Options,
}

impl From<UaAction> for srvlab::ua::agent::Method {
    fn from(action: UaAction) -> Self {
        match action {
            UaAction::Register => Self::Register,
            UaAction::Call => Self::Invite,
            UaAction::Options => Self::Options,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Dns {
            zones,
            listen,
            faults,
            json,
            limits,
        } => commands::dns::run(&zones, &listen, faults, limits.into(), json),
        Command::Serve {
            case,
            out,
            dns,
            dns_limits,
        } => commands::serve::run(&case, out, &dns, dns_limits.into()),
        Command::Run {
            paths,
            profile,
            faults,
            seed,
            out,
            dns,
            dut,
            lab,
            jobs,
            baseline,
            dns_limits,
        } => commands::run::run(commands::run::Options {
            paths,
            profile,
            faults,
            seed,
            out,
            dns,
            dns_limits: dns_limits.into(),
            dut,
            lab,
            jobs,
            baseline,
        }),
        Command::Doctor { lab, paths } => commands::doctor::run(&lab, &paths),
        Command::Report { dir, format } => commands::report::run(&dir, format),
        Command::Validate { paths } => commands::validate::run(&paths),
        Command::Ua {
            list_faults: true, ..
        } => Ok(commands::ua::list_faults()),
        Command::Ua {
            action,
            uri,
            dns,
            t1,
            dirty_host_ttl,
            count,
            seed,
            faults,
            user,
            ca,
            ..
        } => commands::ua::run(commands::ua::Options {
            method: action.unwrap_or(UaAction::Options).into(),
            uri: uri.unwrap_or_default(),
            dns,
            t1_ms: t1,
            dirty_host_ttl,
            count,
            seed,
            faults,
            user,
            ca,
        }),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            tell!("srvlab: error: {err:#}");
            commands::exit_run_failed()
        }
    }
}
