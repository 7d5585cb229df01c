//! The `srvlab` command line. This file only parses arguments; `commands/` does the work.

mod commands;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use srvlab::model::zone::DnsFault;

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
    },
    /// Check zone and case files (files or folders of *.yaml); exits 2 when any has an error.
    Validate {
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
    },
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
        } => commands::dns::run(&zones, &listen, faults, json),
        Command::Serve { case, out, dns } => commands::serve::run(&case, out, &dns),
        Command::Validate { paths } => commands::validate::run(&paths),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("srvlab: error: {err:#}");
            commands::exit_run_failed()
        }
    }
}
