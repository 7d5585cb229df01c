//! The suite as CI runs it: `srvlab run` over `cases/` passes on the clean reference UA for
//! several seeds, writes reports a CI and a person can read, and fails — on the checks each
//! fault should trip — when a fault of the reference UA is switched on (the mutation matrix).
//!
//! The cases use fixed loopback addresses, so the runs here go one at a time.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

use support::root;

static ONE_RUN_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Runs `srvlab run` with `args` into a fresh folder; its exit code and parsed report.
fn run(name: &str, args: &[&str]) -> (Option<i32>, serde_json::Value, std::path::PathBuf) {
    let _one = ONE_RUN_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let out = std::env::temp_dir().join(format!("srvlab-suite-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let output = Command::new(env!("CARGO_BIN_EXE_srvlab"))
        .arg("run")
        .args(args)
        .arg("--out")
        .arg(&out)
        .current_dir(root())
        .output()
        .expect("run srvlab");
    let report = std::fs::read_to_string(out.join("report.json")).unwrap_or_else(|err| {
        panic!(
            "no report.json ({err}); stdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (
        output.status.code(),
        serde_json::from_str(&report).expect("report.json is JSON"),
        out,
    )
}

/// (case id, check id) of every verdict with this status.
fn verdicts(report: &serde_json::Value, status: &str) -> BTreeSet<(String, String)> {
    let mut found = BTreeSet::new();
    for case in report["cases"].as_array().into_iter().flatten() {
        for verdict in case["verdicts"].as_array().into_iter().flatten() {
            if verdict["status"] == status {
                found.insert((
                    case["id"].as_str().unwrap_or_default().to_string(),
                    verdict["id"].as_str().unwrap_or_default().to_string(),
                ));
            }
        }
    }
    found
}

#[test]
fn the_clean_reference_ua_passes_the_suite() {
    for seed in ["1", "2", "3"] {
        let (code, report, out) = run(&format!("clean-{seed}"), &["--seed", seed]);
        assert_eq!(report["schema"], "srvlab-report/1");
        assert_eq!(report["manifest"]["seed"], seed.parse::<u64>().unwrap());
        assert_eq!(report["counts"]["errors"], 0, "{report:#}");
        assert!(
            verdicts(&report, "fail").is_empty(),
            "seed {seed}: {:?}",
            verdicts(&report, "fail")
        );
        assert!(verdicts(&report, "pass").len() >= 28, "seed {seed}");
        assert_eq!(code, Some(0), "seed {seed}");
        let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
        assert!(junit.starts_with("<?xml") && junit.contains("<testsuites name=\"srvlab\""));
        let summary = std::fs::read_to_string(out.join("summary.md")).unwrap();
        assert!(
            summary.contains("| seed-crash | F1 | MUST | pass |"),
            "{summary}"
        );
        for case in report["cases"].as_array().unwrap() {
            let pcap = out.join(case["capture"].as_str().unwrap());
            let timeline = out.join(case["timeline"].as_str().unwrap());
            assert!(timeline.is_file() && pcap.is_file(), "{}", case["id"]);
        }
    }
}

/// A fault, the case paths to run, and the (case, check) verdicts it must turn to FAIL.
type Row = (
    &'static str,
    &'static [&'static str],
    &'static [(&'static str, &'static str)],
);

/// Each fault and the verdicts it must turn to FAIL (at least these).
const MATRIX: &[Row] = &[
    (
        "ignore-priority",
        &["cases/ordering"],
        &[("no-a-fallback", "L11")],
    ),
    (
        "ignore-weights",
        &["cases/weights"],
        &[("weights-fifty-fifty", "L9")],
    ),
    (
        "weight-zero-first",
        &["cases/weights"],
        &[("weights-zero-weight", "L9")],
    ),
    (
        "no-failover-on-503",
        &["cases/failover/busy-503.yaml"],
        &[("busy-503", "F3")],
    ),
    (
        "wait-timer-b-on-refusal",
        &["cases/ordering/priority-groups.yaml"],
        &[("priority-groups", "L11")],
    ),
    (
        "no-dirty-host",
        &["cases/failover/seed-crash.yaml"],
        &[("seed-crash", "D1")],
    ),
    (
        "dirty-host-forever",
        &["cases/failover/seed-crash.yaml"],
        &[("seed-crash", "D2")],
    ),
    (
        "no-retransmit-doubling",
        &["cases/timers"],
        &[("invite-timer-a", "T1")],
    ),
    (
        "resolve-per-retransmission",
        &["cases/timers"],
        &[("invite-timer-a", "C1")],
    ),
    (
        "timer-b-fixed-32s",
        &["cases/timers"],
        &[("invite-timer-a", "F1")],
    ),
    (
        "ignore-dns-ttl",
        &["cases/caching"],
        &[("dns-ttl-expiry", "C2")],
    ),
    (
        "reuse-branch",
        &["cases/transactions"],
        &[("retransmissions-same-target", "T6")],
    ),
    (
        "retransmit-to-next-target",
        &["cases/transactions"],
        &[("retransmissions-same-target", "T5")],
    ),
    (
        "resolve-numeric-host",
        &["cases/resolution/numeric-host.yaml"],
        &[("numeric-host", "L1")],
    ),
    (
        "numeric-host-default-tcp",
        &["cases/resolution/numeric-host.yaml"],
        &[("numeric-host", "L1")],
    ),
    (
        "srv-despite-port",
        &["cases/resolution/explicit-port.yaml"],
        &[("explicit-port", "L2")],
    ),
    (
        "naptr-despite-transport",
        &["cases/resolution/transport-param.yaml"],
        &[("transport-param", "L3")],
    ),
];

/// Faults whose only symptom is a SHOULD row: the run warns (exit 0), and the report says so.
const WARN_ONLY: &[Row] = &[
    (
        "skip-naptr",
        &["cases/resolution"],
        &[("naptr-tcp-preferred", "L4")],
    ),
    (
        "a-record-fallback",
        &["cases/ordering"],
        &[("no-a-fallback", "L12")],
    ),
];

#[test]
fn should_level_faults_are_reported_as_warnings() {
    for (fault, paths, expected) in WARN_ONLY {
        let mut args: Vec<&str> = paths.to_vec();
        args.extend(["--fault", fault]);
        let (code, report, _) = run(fault, &args);
        let warned = verdicts(&report, "warn");
        for (case, check) in *expected {
            assert!(
                warned.contains(&(case.to_string(), check.to_string())),
                "--fault {fault}: {case}/{check} should warn; warned: {warned:?}"
            );
        }
        assert_eq!(
            code,
            Some(0),
            "--fault {fault}: a SHOULD does not fail the run"
        );
    }
}

#[test]
fn every_fault_fails_the_checks_it_should() {
    for (fault, paths, expected) in MATRIX {
        let mut args: Vec<&str> = paths.to_vec();
        args.extend(["--fault", fault]);
        let (code, report, _) = run(fault, &args);
        let failed = verdicts(&report, "fail");
        for (case, check) in *expected {
            assert!(
                failed.contains(&(case.to_string(), check.to_string())),
                "--fault {fault}: {case}/{check} should fail; failed: {failed:?}"
            );
        }
        assert_eq!(code, Some(1), "--fault {fault} exits 1");
    }
}

#[test]
fn a_broken_case_exits_2_and_names_its_place() {
    let output = Command::new(env!("CARGO_BIN_EXE_srvlab"))
        .args(["run", "fixtures/cases/broken/phase-never-ends.yaml"])
        .current_dir(root())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains("fixtures/cases/broken/phase-never-ends.yaml:6:21: error")
    );
    assert!(Path::new(&root()).join("cases").is_dir());
}
