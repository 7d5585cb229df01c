//! `srvlab dns --zone FILE... --listen ADDR`: serve zones until Ctrl-C, one line per query.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use srvlab::dns::{DnsLimits, DnsServer};
use srvlab::model::zone::{DnsFault, ZoneSet};
use srvlab::say;
use srvlab::timeline::{EventKind, Timeline};

use super::{exit_bad_input, print_diagnostics};

pub fn run(
    zones: &[PathBuf],
    listen: &[SocketAddr],
    faults: Vec<DnsFault>,
    limits: DnsLimits,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let (set, diagnostics) = ZoneSet::load(zones);
    print_diagnostics(&diagnostics);
    let Some(set) = set else {
        return Ok(exit_bad_input());
    };
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(serve(set, listen, faults, limits, json))?;
    Ok(ExitCode::SUCCESS)
}

async fn serve(
    set: ZoneSet,
    listen: &[SocketAddr],
    faults: Vec<DnsFault>,
    limits: DnsLimits,
    json: bool,
) -> anyhow::Result<()> {
    let timeline = Timeline::new();
    timeline.observe(move |event| {
        if json {
            if let Ok(line) = serde_json::to_string(event) {
                say!("{line}");
            }
        } else if !matches!(event.kind, EventKind::DnsQuery(_)) {
            // One line per query: its answer (or that it went unanswered) says it all.
            say!("{event}");
        }
    });
    let origins: Vec<String> = set.zones.iter().map(|z| z.origin.to_string()).collect();
    let mut all_faults: Vec<DnsFault> = set.faults().cloned().collect();
    all_faults.extend(faults);
    let server = DnsServer::start_with(set, listen, timeline, limits)
        .await
        .map_err(|err| err.given_by("--listen"))?;
    server.set_faults(all_faults);
    say!(
        "serving {} on {} — Ctrl-C to stop",
        origins.join(", "),
        server
            .addrs()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    tokio::signal::ctrl_c().await?;
    say!("stopping");
    server.shutdown().await?;
    Ok(())
}
