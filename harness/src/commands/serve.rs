//! `srvlab serve CASE.yaml [--out DIR]`: bring a case's world up for a person with a phone (or
//! any SIP client), print the timeline live, and keep timeline.jsonl and capture.pcap written
//! as events happen, so Ctrl-C or a failure loses nothing.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use srvlab::capture::PcapRecorder;
use srvlab::model::case::Case;
use srvlab::timeline::jsonl::JsonlWriter;
use srvlab::timeline::{Event, Timeline};
use srvlab::world::{World, WorldOptions};
use tokio::io::AsyncBufReadExt;

use super::{exit_bad_input, print_diagnostics};

pub fn run(case: &Path, out: Option<PathBuf>, dns: &[SocketAddr]) -> anyhow::Result<ExitCode> {
    let (loaded, diagnostics) = Case::load(case);
    print_diagnostics(&diagnostics);
    let Some(case) = loaded else {
        return Ok(exit_bad_input());
    };
    let timeline = Timeline::new();
    let out = out.unwrap_or_else(|| default_out(&case.id, &timeline));
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let recorders = Recorders::attach(&out, &timeline)?;
    let runtime = tokio::runtime::Runtime::new()?;
    let result = runtime.block_on(serve(&case, dns, timeline));
    // Whatever happened, what was seen is on disk; say where.
    recorders.finish();
    println!("timeline: {}", out.join("timeline.jsonl").display());
    println!("capture:  {}", out.join("capture.pcap").display());
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

/// The live printer and the two files, each fed every event as it is recorded.
struct Recorders {
    pcap: Arc<Mutex<Option<PcapRecorder>>>,
}

impl Recorders {
    fn attach(out: &Path, timeline: &Timeline) -> anyhow::Result<Self> {
        let jsonl_path = out.join("timeline.jsonl");
        let mut jsonl = JsonlWriter::create(&jsonl_path, timeline.wall_start())
            .with_context(|| format!("cannot write {}", jsonl_path.display()))?;
        let pcap_path = out.join("capture.pcap");
        let pcap = PcapRecorder::create(&pcap_path, timeline.wall_start())
            .with_context(|| format!("cannot write {}", pcap_path.display()))?;
        let pcap = Arc::new(Mutex::new(Some(pcap)));
        let pcap_in_observer = pcap.clone();
        let mut warned = false;
        timeline.observe(move |event: &Event| {
            println!("{event}");
            let mut failures = Vec::new();
            if let Err(err) = jsonl.write(event) {
                failures.push(format!("timeline.jsonl: {err}"));
            }
            if let Ok(mut guard) = pcap_in_observer.lock()
                && let Some(pcap) = guard.as_mut()
                && let Err(err) = pcap.record(event)
            {
                failures.push(format!("capture.pcap: {err}"));
            }
            if !failures.is_empty() && !warned {
                warned = true;
                eprintln!("srvlab: warning: cannot record: {}", failures.join("; "));
            }
        });
        Ok(Self { pcap })
    }

    fn finish(self) {
        let pcap = self.pcap.lock().ok().and_then(|mut guard| guard.take());
        if let Some(pcap) = pcap
            && let Err(err) = pcap.finish()
        {
            eprintln!("srvlab: warning: capture.pcap: {err}");
        }
    }
}

async fn serve(case: &Case, dns: &[SocketAddr], timeline: Timeline) -> anyhow::Result<()> {
    let options = WorldOptions {
        dns_listen: dns.to_vec(),
    };
    let world = World::start(case, &options, timeline)
        .await
        .with_context(|| format!("cannot bring up the world of case `{}`", case.id))?;
    println!("case {}: {}", case.id, case.title);
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
        println!(
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
    println!("  DNS on {}", dns_addrs.join(", "));
    if !world.sees_refusals() {
        println!("  refused attempts will NOT be seen (no raw sockets: run as root)");
    }
    println!("Type a step name and Enter to reach that step; Ctrl-C to stop.");

    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut stdin_open = true;
    // A CI job stops us with SIGTERM; a person with Ctrl-C. Both end the run cleanly.
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            signal = tokio::signal::ctrl_c() => {
                signal?;
                break;
            }
            _ = terminate.recv() => break,
            line = lines.next_line(), if stdin_open => match line {
                Ok(Some(line)) if !line.trim().is_empty() => world.step(line.trim()),
                Ok(Some(_)) => {}
                // No terminal (or it closed): keep serving until Ctrl-C.
                Ok(None) | Err(_) => stdin_open = false,
            },
        }
    }
    println!("stopping");
    world.shutdown().await?;
    Ok(())
}
