//! Dual stack on real IPv6 addresses. Loopback binds `::1` alone, so this test makes a
//! network namespace with fd00::1 and fd00::2 on its lo and runs a case there
//! (fixtures/cases/netns/dual-stack-fd00.yaml): the reference UA passes L13 and its fault
//! `ipv4-only` fails it. Needs root and iproute2 (scripts/test installs it); the namespace is
//! removed afterwards.

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;

use support::{Namespace, root, verdict};

const CASE: &str = "fixtures/cases/netns/dual-stack-fd00.yaml";

/// `srvlab run CASE ARGS --out OUT` inside the namespace.
fn srvlab_run(namespace: &Namespace, args: &[&str], out: &Path) -> Output {
    namespace
        .exec(env!("CARGO_BIN_EXE_srvlab"))
        .args(["run", CASE])
        .args(args)
        .arg("--out")
        .arg(out)
        .current_dir(root())
        .output()
        .expect("ip netns exec runs")
}

fn report(out: &Path, output: &Output) -> serde_json::Value {
    let text = std::fs::read_to_string(out.join("report.json")).unwrap_or_else(|err| {
        panic!(
            "no report.json ({err}); stdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    serde_json::from_str(&text).expect("report.json is JSON")
}

fn out_dir(name: &str) -> PathBuf {
    let out = std::env::temp_dir().join(format!("srvlab-netns-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    out
}

#[test]
fn a_dual_stack_world_on_fd00_addresses_in_a_namespace() {
    let namespace = Namespace::create(
        &format!("srvlab-v6-{}", std::process::id()),
        &["fd00::1/128", "fd00::2/128"],
    );

    let out = out_dir("clean");
    let output = srvlab_run(&namespace, &[], &out);
    let clean = report(&out, &output);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    for check in ["L13", "F2", "L11", "L8"] {
        let (status, sentence) = verdict(&clean, "dual-stack-fd00", check);
        assert_eq!(status, "pass", "{check}: {sentence}");
    }
    // The backup answered over IPv6, and the primary's refusals were seen on both families.
    let timeline = std::fs::read_to_string(out.join("cases/dual-stack-fd00/timeline.jsonl"))
        .expect("the case's timeline");
    assert!(
        timeline.contains("\"local\":\"[fd00::2]:5060\""),
        "{timeline}"
    );
    assert!(
        timeline.contains("\"local\":\"[fd00::1]:5060\""),
        "{timeline}"
    );
    assert!(
        timeline.contains("\"local\":\"127.0.42.121:5060\""),
        "{timeline}"
    );

    let out_fault = out_dir("ipv4-only");
    let output = srvlab_run(&namespace, &["--fault", "ipv4-only"], &out_fault);
    let faulty = report(&out_fault, &output);
    assert_eq!(output.status.code(), Some(1));
    let (status, sentence) = verdict(&faulty, "dual-stack-fd00", "L13");
    assert_eq!(status, "fail", "{sentence}");
    assert!(
        sentence.contains("never tried") || sentence.contains("AAAA"),
        "{sentence}"
    );

    let _ = std::fs::remove_dir_all(&out);
    let _ = std::fs::remove_dir_all(&out_fault);
}
