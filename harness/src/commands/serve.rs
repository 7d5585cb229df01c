//! `srvlab serve CASE.yaml [--out DIR]`: bring a case's world up for a person with a phone (or
//! any SIP client), print the timeline live, and keep timeline.jsonl and capture.pcap written
//! as events happen, so Ctrl-C or a failure loses nothing.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use srvlab::dns::DnsLimits;
use srvlab::model::case::Case;
use srvlab::run::record::Recorder;
use srvlab::timeline::Timeline;
use srvlab::world::{World, WorldOptions};
use srvlab::{say, tell};

use super::{exit_bad_input, print_diagnostics};

pub fn run(
    case: &Path,
    out: Option<PathBuf>,
    dns: &[SocketAddr],
    dns_limits: DnsLimits,
) -> anyhow::Result<ExitCode> {
    let (loaded, diagnostics) = Case::load(case);
    print_diagnostics(&diagnostics);
    let Some(case) = loaded else {
        return Ok(exit_bad_input());
    };
    let timeline = Timeline::new();
    let out = out.unwrap_or_else(|| default_out(&case.id, &timeline));
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let recorder = Recorder::attach(&out, &timeline, true)?;
    let runtime = tokio::runtime::Runtime::new()?;
    let result = runtime.block_on(serve(&case, dns, dns_limits, timeline, &out));
    // Whatever happened, what was seen is on disk; say where.
    say!("timeline: {}", recorder.timeline_path.display());
    say!("capture:  {}", recorder.capture_path.display());
    if let Err(err) = recorder.finish() {
        tell!("srvlab: warning: {err}");
    }
    result.map(|()| ExitCode::SUCCESS)
}

fn default_out(id: &str, timeline: &Timeline) -> PathBuf {
    let start = srvlab::timeline::jsonl::Header::new(timeline.wall_start()).wall_start;
    // 2026-11-25T01:02:03.123456Z → 20261125-010203
    let stamp: String = start
        .chars()
        .take(19)
        .filter(|c| c.is_ascii_digit() || *c == 'T')
        .map(|c| if c == 'T' { '-' } else { c })
        .collect();
    PathBuf::from("reports").join(format!("serve-{id}-{stamp}"))
}

async fn serve(
    case: &Case,
    dns: &[SocketAddr],
    dns_limits: DnsLimits,
    timeline: Timeline,
    out: &Path,
) -> anyhow::Result<()> {
    // A person stops us with Ctrl-C, a CI job with SIGTERM: both end the run cleanly. The
    // handlers go in first, so a signal that comes while the world starts is not lost.
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let options = WorldOptions {
        dns_listen: dns.to_vec(),
        dns_given_by: "--dns".into(),
        dns_limits,
        tls: None,
        connection_limits: Default::default(),
    };
    let world = World::start(case, &options, timeline)
        .await
        .with_context(|| format!("cannot bring up the world of case `{}`", case.id))?;
    say!("case {}: {}", case.id, case.title);
    if let Some(ca_pem) = world.pki().and_then(|pki| pki.ca_pem()) {
        let ca = out.join("ca.pem");
        std::fs::write(&ca, ca_pem).with_context(|| format!("cannot write {}", ca.display()))?;
        say!(
            "tls CA:   {} (what a device connecting over TLS trusts)",
            ca.display()
        );
    }
    for server in &case.servers {
        let transports: Vec<String> = server.transports.iter().map(ToString::to_string).collect();
        let addresses: Vec<String> = server
            .addresses
            .iter()
            .map(|a| SocketAddr::new(*a, server.port).to_string())
            .collect();
        let script: Vec<String> = server
            .script
            .iter()
            .map(|p| match &p.until {
                Some(until) => format!("{} {until}", p.behaviour),
                None => p.behaviour.to_string(),
            })
            .collect();
        say!(
            "  {} on {} ({}): {}",
            server.name(),
            addresses.join(", "),
            transports.join(", "),
            script.join(", then ")
        );
    }
    let dns_addrs: Vec<String> = world
        .dns()
        .addrs()
        .iter()
        .map(ToString::to_string)
        .collect();
    say!("  DNS on {}", dns_addrs.join(", "));
    if !world.sees_refusals() {
        say!("  refused attempts will NOT be seen (no raw sockets: run as root)");
    }
    say!("Type a step name and Enter to reach that step; Ctrl-C to stop.");

    let (steps, mut typed) = tokio::sync::mpsc::channel(16);
    std::thread::spawn(move || read_steps(steps));
    let mut stdin_open = true;
    loop {
        tokio::select! {
            _ = interrupt.recv() => break,
            _ = terminate.recv() => break,
            step = typed.recv(), if stdin_open => match step {
                Some(step) => world.step(&step),
                // No terminal (or it closed): keep serving until Ctrl-C.
                None => stdin_open = false,
            },
        }
    }
    say!("stopping");
    world.shutdown().await?;
    Ok(())
}

/// The longest step name read from stdin; a longer line is skipped (`serve < /dev/zero` must
/// not grow without bound).
const MAX_STEP_LINE: usize = 1024;

/// Step names typed on stdin, one per line, until stdin ends. On a thread of its own with
/// blocking reads: tokio's stdin reads on its blocking pool, and the runtime would wait for a
/// read nobody answers before the process could end after Ctrl-C.
fn read_steps(steps: tokio::sync::mpsc::Sender<String>) {
    use std::io::{BufRead, Read};
    let mut stdin = std::io::stdin().lock();
    let mut line = Vec::new();
    let mut skipping = false;
    loop {
        line.clear();
        let limit = (MAX_STEP_LINE + 1) as u64;
        match (&mut stdin).take(limit).read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let ended = line.ends_with(b"\n");
        if skipping || !ended {
            // The rest of an overlong line: read on to its end, keep nothing.
            if !skipping {
                tell!("srvlab: a line of more than {MAX_STEP_LINE} bytes on stdin was skipped");
            }
            skipping = !ended;
            continue;
        }
        let text = String::from_utf8_lossy(&line);
        let step = text.trim();
        if !step.is_empty() && steps.blocking_send(step.to_string()).is_err() {
            return;
        }
    }
}
