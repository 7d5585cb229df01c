//! The suite as CI runs it: `srvlab run` over `cases/` passes on the clean reference UA for
//! twenty seeds, writes reports a CI and a person can read (valid JUnit, pcaps tshark reads),
//! fails — on exactly the checks each fault should trip — when a fault of the reference UA is
//! switched on (the mutation matrix), and gates on changes only against a baseline.
//!
//! The cases use fixed loopback addresses, so the runs here go one at a time.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use support::root;

static ONE_RUN_AT_A_TIME: Mutex<()> = Mutex::new(());

/// What one `srvlab run` left behind.
struct Run {
    code: Option<i32>,
    report: serde_json::Value,
    out: PathBuf,
    stdout: String,
}

/// Runs `srvlab run` with `args` into a fresh folder.
fn run(name: &str, args: &[&str]) -> Run {
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
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let report = std::fs::read_to_string(out.join("report.json")).unwrap_or_else(|err| {
        panic!(
            "no report.json ({err}); stdout:\n{stdout}\nstderr:\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    Run {
        code: output.status.code(),
        report: serde_json::from_str(&report).expect("report.json is JSON"),
        out,
        stdout,
    }
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

/// A matrix row's (case, check) pairs as owned strings, to compare with [`verdicts`].
fn pairs(expected: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    expected
        .iter()
        .map(|(case, check)| (case.to_string(), check.to_string()))
        .collect()
}

/// Every failing verdict with its sentence, for assertion messages.
fn failures(report: &serde_json::Value) -> String {
    let mut out = String::new();
    for case in report["cases"].as_array().into_iter().flatten() {
        if let Some(error) = case["error"].as_str() {
            out += &format!("\n  {} could not run: {error}", case["id"]);
        }
        for verdict in case["verdicts"].as_array().into_iter().flatten() {
            if verdict["status"] == "fail" {
                out += &format!(
                    "\n  {}/{}: {}",
                    case["id"], verdict["id"], verdict["sentence"]
                );
            }
        }
    }
    out
}

/// The cases whose outcome depends on the reference UA's random draws: a zone (the case's own
/// or one a step switches to) with two SRV records of one name and priority (the weighted
/// draw, and which target a dirty host leaves), or a check of the randomised re-REGISTER
/// backoff (D5). Branches, tags and Call-IDs are drawn too, but no verdict depends on them.
fn seed_sensitive_cases() -> Vec<PathBuf> {
    use srvlab::model::case::Case;
    use srvlab::model::zone::{RecordData, ZoneSet};
    let draws = |set: &ZoneSet| {
        let mut groups = BTreeSet::new();
        set.zones.iter().flat_map(|z| &z.records).any(|record| {
            let RecordData::Srv { priority, .. } = record.data else {
                return false;
            };
            !groups.insert((record.name.clone(), priority))
        })
    };
    let mut sensitive = Vec::new();
    for area in std::fs::read_dir(root().join("cases")).unwrap().flatten() {
        for file in std::fs::read_dir(area.path()).unwrap().flatten() {
            let path = file.path();
            let (case, diagnostics) = Case::load(&path);
            let case = case.unwrap_or_else(|| panic!("{}: {diagnostics:?}", path.display()));
            if draws(&case.zones)
                || case.zone_changes.values().any(draws)
                || case.checks.iter().any(|c| c == "D5")
            {
                sensitive.push(path.strip_prefix(root()).unwrap().to_path_buf());
            }
        }
    }
    sensitive.sort();
    sensitive
}

/// Seed 1 over the whole suite (reports, JUnit, every pcap), then seeds 2–20 over the cases
/// whose outcome a seed can change: running the rest again would replay the same draws.
#[test]
fn the_clean_reference_ua_passes_the_suite_for_twenty_seeds() {
    let cases = std::fs::read_dir(root().join("cases"))
        .unwrap()
        .flatten()
        .map(|area| std::fs::read_dir(area.path()).unwrap().count())
        .sum::<usize>();
    assert!(cases >= 25, "the suite has {cases} cases");
    let sensitive = seed_sensitive_cases();
    for weighted in [
        "cases/weights/fifty-fifty.yaml",
        "cases/failover/seed-crash.yaml",
    ] {
        assert!(
            sensitive.iter().any(|p| p == Path::new(weighted)),
            "{weighted} draws: {sensitive:?}"
        );
    }
    assert!(
        !sensitive
            .iter()
            .any(|p| p == Path::new("cases/timers/invite-timer-a.yaml")),
        "{sensitive:?}"
    );
    let sensitive: Vec<&str> = sensitive.iter().map(|p| p.to_str().unwrap()).collect();
    for seed in 1..=20u64 {
        let seed_text = seed.to_string();
        let mut args = vec!["--seed", seed_text.as_str()];
        if seed > 1 {
            args.extend(&sensitive);
        }
        let expected = if seed == 1 { cases } else { sensitive.len() };
        let run = run(&format!("clean-{seed}"), &args);
        let report = &run.report;
        assert_eq!(report["schema"], "srvlab-report/1");
        assert_eq!(report["manifest"]["seed"], seed);
        assert_eq!(
            report["manifest"]["cases"].as_array().unwrap().len(),
            expected
        );
        assert_eq!(
            report["counts"]["errors"],
            0,
            "seed {seed}:{}",
            failures(report)
        );
        assert_eq!(
            report["counts"]["fail"],
            0,
            "seed {seed}:{}",
            failures(report)
        );
        if seed == 1 {
            assert!(verdicts(report, "pass").len() >= 35, "seed {seed}");
        }
        assert_eq!(run.code, Some(0), "seed {seed}");
        assert!(
            run.stdout.contains(&format!("[{expected}/{expected}]")),
            "{}",
            run.stdout
        );
        check_junit(&run.out.join("junit.xml"), report);
        for case in report["cases"].as_array().unwrap() {
            let timeline = run.out.join(case["timeline"].as_str().unwrap());
            assert!(timeline.is_file(), "{}", case["id"]);
            if seed == 1 {
                check_pcap(&run.out.join(case["capture"].as_str().unwrap()));
            }
        }
    }
}

/// junit.xml is well-formed XML in the shape CI readers take (Jenkins, GitLab): one
/// <testsuite> per case, one <testcase> per verdict, failures with the sentence, and the
/// counts in the attributes matching the elements.
fn check_junit(path: &Path, report: &serde_json::Value) {
    let xml = std::fs::read_to_string(path).unwrap();
    let output = Command::new("python3")
        .arg("-c")
        .arg(JUNIT_CHECK)
        .arg(path)
        .output()
        .expect("python3 checks junit.xml");
    assert!(
        output.status.success(),
        "junit.xml: {}\n{xml}",
        String::from_utf8_lossy(&output.stderr)
    );
    let verdict_count: usize = report["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["verdicts"].as_array().unwrap().len())
        .sum();
    let testcases = String::from_utf8_lossy(&output.stdout);
    assert_eq!(testcases.trim(), verdict_count.to_string(), "{xml}");
}

/// Parses junit.xml with Python's XML parser and checks every count attribute against the
/// elements; prints the number of test cases.
const JUNIT_CHECK: &str = r#"
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
assert root.tag == "testsuites", root.tag
total = 0
for suite in root:
    assert suite.tag == "testsuite", suite.tag
    cases = suite.findall("testcase")
    assert int(suite.get("tests")) == len(cases), suite.get("name")
    assert int(suite.get("failures")) == sum(1 for c in cases if c.find("failure") is not None)
    assert int(suite.get("errors")) == sum(1 for c in cases if c.find("error") is not None)
    assert int(suite.get("skipped", "0")) == sum(1 for c in cases if c.find("skipped") is not None)
    for case in cases:
        assert case.get("name") and case.get("classname"), ET.tostring(case)
        failure = case.find("failure")
        assert failure is None or failure.get("message"), ET.tostring(case)
    total += len(cases)
assert int(root.get("tests")) == total
print(total)
"#;

/// tshark reads the capture without complaint and decodes its SIP and DNS.
fn check_pcap(path: &Path) {
    let output = Command::new("tshark")
        .arg("-r")
        .arg(path)
        .args(["-T", "fields", "-e", "frame.protocols"])
        .output()
        .expect("tshark");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && !stderr.contains("appears to be damaged"),
        "tshark {}: {stderr}",
        path.display()
    );
    let protocols = String::from_utf8_lossy(&output.stdout);
    assert!(
        protocols.lines().any(|l| l.contains("dns"))
            || protocols.lines().any(|l| l.contains("sip")),
        "{}: no DNS or SIP in\n{protocols}",
        path.display()
    );
}

/// A fault, the case paths to run, and the (case, check) verdicts it must turn to FAIL.
type Row = (
    &'static str,
    &'static [&'static str],
    &'static [(&'static str, &'static str)],
);

/// Each fault and the verdicts it must turn to FAIL (exactly these).
const MATRIX: &[Row] = &[
    (
        "ignore-priority",
        &["cases/ordering"],
        &[("no-a-fallback", "L11")],
    ),
    (
        "ignore-weights",
        &["cases/weights"],
        // Listed order every time: a always first, in both weighted groups.
        &[("weights-fifty-fifty", "L9"), ("weights-zero-weight", "L9")],
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
        // A failed TLS handshake is a refusal too (a stalled one a timeout, judged by F1), and
        // so is a connection the server reset under a waiting request.
        "wait-timer-b-on-refusal",
        &[
            "cases/ordering/priority-groups.yaml",
            "cases/failover/refused-primary.yaml",
            "cases/transport/tls-handshake-failures.yaml",
            "cases/transport/tcp-reset.yaml",
        ],
        &[
            ("priority-groups", "F2"),
            ("refused-primary", "F2"),
            ("tls-handshake-failures", "F2"),
            ("tcp-reset", "F2"),
        ],
    ),
    (
        // The request ends at the bad certificate: nothing after it can be judged (L11, F1:
        // inconclusive), F2 sees the targets left untried.
        "tls-failure-is-final",
        &[
            "cases/transport/tls-handshake-failures.yaml",
            "cases/dual-stack/sips-ipv6-certificates.yaml",
        ],
        &[
            ("tls-handshake-failures", "F2"),
            ("sips-ipv6-certificates", "F2"),
        ],
    ),
    (
        // The self-signed certificate is taken, and the call stays there (over IPv6 too).
        "no-certificate-check",
        &[
            "cases/transport/tls-handshake-failures.yaml",
            "cases/dual-stack/sips-ipv6-certificates.yaml",
        ],
        &[
            ("tls-handshake-failures", "F6"),
            ("sips-ipv6-certificates", "F6"),
        ],
    ),
    (
        // The self-signed one is refused, the trusted CA's for another name taken.
        "no-hostname-check",
        &[
            "cases/transport/tls-handshake-failures.yaml",
            "cases/dual-stack/sips-ipv6-certificates.yaml",
        ],
        &[
            ("tls-handshake-failures", "F6"),
            ("sips-ipv6-certificates", "F6"),
        ],
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
        // Timer A and Timer E alike: every unanswered UDP request of the timers area.
        &[
            ("invite-timer-a", "T1"),
            ("register-timer-f", "T2"),
            ("options-timer-f", "T2"),
            ("early-failover", "T1"),
            ("early-failover", "T2"),
        ],
    ),
    (
        "resolve-per-retransmission",
        &["cases/timers"],
        &[("invite-timer-a", "C1")],
    ),
    (
        // One case only: under this fault every silent server costs 32 s.
        "timer-b-fixed-32s",
        &["cases/timers/invite-timer-a.yaml"],
        &[("invite-timer-a", "F1")],
    ),
    (
        "ignore-dns-ttl",
        &["cases/caching"],
        &[("dns-ttl-expiry", "C2"), ("dns-zone-moves", "C2")],
    ),
    (
        "reuse-branch",
        &["cases/transactions"],
        // On the wire a reused branch is the old transaction sent to a new target: both rows.
        &[
            ("retransmissions-same-target", "T6"),
            ("retransmissions-same-target", "T5"),
        ],
    ),
    (
        "retransmit-to-next-target",
        &["cases/transactions"],
        &[
            ("retransmissions-same-target", "T5"),
            ("retransmissions-same-target", "T6"),
        ],
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
        "no-t2-cap",
        &["cases/timers/register-timer-f.yaml"],
        &[("register-timer-f", "T2")],
    ),
    (
        "ignore-failover-after",
        &["cases/timers/early-failover.yaml"],
        &[("early-failover", "T4")],
    ),
    (
        // D4 is a SHOULD; the case configures a failback mode that claims it (PROFILE).
        "refresh-redraws",
        &["cases/registration/register-refresh.yaml"],
        &[("register-refresh", "D4")],
    ),
    (
        // D5 is a SHOULD; the reference profile declares retry_after_failed_register (PROFILE).
        "reregister-at-once",
        &["cases/registration/register-timeout-backoff.yaml"],
        &[("register-timeout-backoff", "D5")],
    ),
    (
        "retransmit-over-tcp",
        &["cases/transport/tcp-failover.yaml"],
        &[("tcp-failover", "T3")],
    ),
    (
        // Over UDP to 5061: L5's sips rule, and no SRV target named that transport (L8).
        "sips-over-udp",
        &["cases/transport/sips-tls.yaml"],
        &[("sips-tls", "L5"), ("sips-tls", "L8")],
    ),
    (
        "skip-naptr",
        &["cases/resolution/naptr-tcp-preferred.yaml"],
        &[("naptr-tcp-preferred", "L4")],
    ),
    (
        "a-record-fallback",
        &["cases/ordering/no-a-fallback.yaml"],
        &[("no-a-fallback", "L12")],
    ),
    (
        "naptr-despite-transport",
        &["cases/resolution/transport-param.yaml"],
        &[("transport-param", "L3")],
    ),
    (
        // The dual-stack cases declare IPv6 (`profile:`); the other cases' devices use IPv4
        // alone, which this fault does not change. aaaa-only then has no request at all (L8
        // inconclusive, not failed).
        "ipv4-only",
        &["cases/dual-stack"],
        &[
            ("aaaa-only", "L13"),
            ("sips-ipv6", "L13"),
            ("sips-ipv6-certificates", "L13"),
            ("srv-major", "L13"),
            ("srv-major-refused", "L13"),
            ("srv-major-refused-tcp", "L13"),
            ("srv-major-timeout", "L13"),
        ],
    ),
    (
        "target-major-skip",
        &["cases/dual-stack"],
        &[
            ("sips-ipv6", "L13"),
            ("sips-ipv6-certificates", "L13"),
            ("srv-major", "L13"),
            ("srv-major-refused", "L13"),
            ("srv-major-refused-tcp", "L13"),
            ("srv-major-timeout", "L13"),
        ],
    ),
];

/// Faults whose only symptom is a SHOULD row warn (exit 0) when the profile makes no claim
/// about that row; the reference profile claims each, so in the matrix they fail.
const SHOULD_ONLY: &[Row] = &[
    (
        "wait-timer-b-on-refusal",
        &[
            "cases/ordering/priority-groups.yaml",
            "cases/failover/refused-primary.yaml",
        ],
        &[("priority-groups", "F2"), ("refused-primary", "F2")],
    ),
    (
        "skip-naptr",
        &["cases/resolution/naptr-tcp-preferred.yaml"],
        &[("naptr-tcp-preferred", "L4")],
    ),
    (
        "a-record-fallback",
        &["cases/ordering/no-a-fallback.yaml"],
        &[("no-a-fallback", "L12")],
    ),
];

#[test]
fn should_level_faults_warn_when_the_profile_claims_nothing() {
    for (fault, paths, expected) in SHOULD_ONLY {
        let mut args: Vec<&str> = paths.to_vec();
        args.extend([
            "--fault",
            fault,
            "--profile",
            "fixtures/profiles/reference-no-claims.yaml",
        ]);
        let run = run(fault, &args);
        let warned = verdicts(&run.report, "warn");
        let expected = pairs(expected);
        assert_eq!(warned, expected, "--fault {fault}");
        assert_eq!(
            run.code,
            Some(0),
            "--fault {fault}: a SHOULD does not fail the run"
        );
    }
}

#[test]
fn every_fault_fails_exactly_the_checks_it_should() {
    let faults = Command::new(env!("CARGO_BIN_EXE_srvlab"))
        .args(["ua", "--list-faults"])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&faults.stdout);
    for line in listed.lines().filter(|l| !l.trim().is_empty()) {
        let name = line.split_whitespace().next().unwrap();
        assert!(
            MATRIX.iter().any(|(fault, _, _)| *fault == name),
            "the fault {name} has no row in the matrix"
        );
    }
    let mut wrong = Vec::new();
    for (fault, paths, expected) in MATRIX {
        let mut args: Vec<&str> = paths.to_vec();
        args.extend(["--fault", fault]);
        let run = run(fault, &args);
        let failed = verdicts(&run.report, "fail");
        let expected = pairs(expected);
        if failed != expected || run.code != Some(1) {
            wrong.push(format!(
                "--fault {fault}: exit {:?}, failed {failed:?}, expected {expected:?}{}",
                run.code,
                failures(&run.report)
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn against_a_baseline_only_changes_count() {
    // A faulty firmware's report is the baseline: the same faults again exit 0…
    let faulty = [
        "cases/failover/busy-503.yaml",
        "--fault",
        "no-failover-on-503",
    ];
    let first = run("baseline-first", &faulty);
    assert_eq!(first.code, Some(1));
    let baseline =
        std::env::temp_dir().join(format!("srvlab-baseline-{}.json", std::process::id()));
    std::fs::copy(first.out.join("report.json"), &baseline).unwrap();
    let baseline_arg = baseline.display().to_string();
    let mut args = faulty.to_vec();
    args.extend(["--baseline", &baseline_arg]);
    let again = run("baseline-again", &args);
    assert_eq!(again.code, Some(0), "{}", again.stdout);
    assert_eq!(
        again.report["baseline"]["known"].as_array().unwrap().len(),
        1
    );
    let junit = std::fs::read_to_string(again.out.join("junit.xml")).unwrap();
    assert!(junit.contains("known deviation"), "{junit}");
    // …a fixed firmware too, and the report says what was resolved…
    let fixed = run(
        "baseline-fixed",
        &["cases/failover/busy-503.yaml", "--baseline", &baseline_arg],
    );
    assert_eq!(fixed.code, Some(0));
    assert_eq!(fixed.report["baseline"]["resolved"][0]["check"], "F3");
    // …but a new failure fails, even with a deviation list that excuses another check.
    let list = std::env::temp_dir().join(format!("srvlab-deviations-{}.yaml", std::process::id()));
    std::fs::write(
        &list,
        "deviations:\n  - case: busy-503\n    check: L8\n    reason: FW-1 (not this)\n",
    )
    .unwrap();
    let list_arg = list.display().to_string();
    let mut args = faulty.to_vec();
    args.extend(["--baseline", &list_arg]);
    let new = run("baseline-new", &args);
    assert_eq!(new.code, Some(1), "{}", new.stdout);
    assert_eq!(new.report["baseline"]["new"][0]["check"], "F3");
    assert!(new.stdout.contains("new: busy-503 / F3"), "{}", new.stdout);
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

#[test]
fn ctrl_c_writes_the_reports_of_what_ran_and_exits_3() {
    let _one = ONE_RUN_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let out = std::env::temp_dir().join(format!("srvlab-suite-{}-ctrl-c", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let child = Command::new(env!("CARGO_BIN_EXE_srvlab"))
        .args(["run", "cases/failover/seed-crash.yaml", "--out"])
        .arg(&out)
        .current_dir(root())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // seed-crash takes seconds; interrupt it once its timeline has events.
    let timeline = out.join("cases/seed-crash/timeline.jsonl");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::fs::read_to_string(&timeline).map_or(0, |t| t.lines().count()) < 5 {
        assert!(
            std::time::Instant::now() < deadline,
            "the case never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&output.stderr).contains("interrupted"));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let case = &report["cases"][0];
    assert!(
        case["error"].as_str().unwrap().contains("interrupted"),
        "{case}"
    );
    assert_eq!(report["counts"]["errors"], 1);
    check_pcap(&out.join(case["capture"].as_str().unwrap()));
    assert!(out.join("junit.xml").is_file() && out.join("summary.md").is_file());
}

#[test]
fn a_case_needing_what_the_profile_lacks_is_not_applicable() {
    // A UDP-only device without a dirty-host TTL (at the reference T1, to stay quick).
    // transport-param needs TCP: it cannot judge this device, and that is no error. seed-crash
    // waits in dirty-host TTLs: the waits are skipped and only D1 and D2, which need the TTL,
    // are not applicable; L8, F1 and T1 judge every device (issue 14).
    let profile = std::env::temp_dir().join(format!("srvlab-udp-only-{}.yaml", std::process::id()));
    std::fs::write(
        &profile,
        "device: udp-only\nname: UDP only, no dirty-host TTL\nt1: 20ms\nt2: 4s\ntransports: [udp]\n",
    )
    .unwrap();
    let run = run(
        "requires",
        &[
            "cases/failover/seed-crash.yaml",
            "cases/resolution/transport-param.yaml",
            "--profile",
            &profile.display().to_string(),
        ],
    );
    assert_eq!(run.code, Some(0), "{}", run.stdout);
    assert_eq!(run.report["counts"]["errors"], 0);
    let not_applicable = verdicts(&run.report, "not_applicable");
    for check in ["D1", "D2"] {
        assert!(not_applicable.contains(&("seed-crash".to_string(), check.to_string())));
    }
    assert!(not_applicable.contains(&("transport-param".to_string(), "L3".to_string())));
    let judged = verdicts(&run.report, "pass");
    for check in ["L8", "F1", "T1"] {
        assert!(
            judged.contains(&("seed-crash".to_string(), check.to_string())),
            "seed-crash {check}: {}",
            run.stdout
        );
    }
    let sentence = run.report["cases"][1]["verdicts"][0]["sentence"]
        .as_str()
        .unwrap();
    assert!(sentence.contains("needs TCP"), "{sentence}");
}
