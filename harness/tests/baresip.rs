//! A SIP user agent none of us wrote, judged end to end: baresip 1.0 (Debian's baresip-core)
//! in a network namespace of its own, with srvlab's DNS on port 53 there and the servers on
//! several addresses, driven through its ctrl_tcp module by the command trigger
//! (fixtures/labs/baresip-netns.yaml), at its real T1 of 500 ms (Timer B 32 s).
//!
//! What baresip does, as observed here (README, "What srvlab finds in baresip 1.0"): it fails
//! over after Timer B and retransmits by the book, but ignores ICMP port unreachable, so a
//! refused primary costs a call 32 s. The report and pcaps are kept in
//! target/test-artifacts/baresip/.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::{Namespace, lab_ca, root, verdict};

/// baresip, stopped whatever happens (before its namespace goes: declare it after).
struct Baresip(Child);

impl Drop for Baresip {
    fn drop(&mut self) {
        // A second SIGINT makes baresip leave at once, without waiting for pending
        // transactions (see the README).
        let _ = Command::new("kill")
            .args(["-INT", &self.0.id().to_string()])
            .status();
        std::thread::sleep(Duration::from_millis(200));
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn artifacts() -> PathBuf {
    root().join("target/test-artifacts/baresip")
}

#[test]
fn baresip_is_judged_by_doctor_and_run_in_a_namespace() {
    assert!(
        Path::new("/usr/bin/baresip").exists(),
        "baresip is missing: apt-get install baresip-core (scripts/test does)"
    );
    let ns = Namespace::create(&format!("srvlab-bs-{}", std::process::id()), &[]);
    let config = std::env::temp_dir().join(format!("srvlab-baresip-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&config);
    std::fs::create_dir_all(&config).unwrap();
    for file in ["config", "accounts"] {
        std::fs::copy(
            root().join("fixtures/baresip").join(file),
            config.join(file),
        )
        .unwrap();
    }
    // The bench's own CA, which baresip is told to trust (`sip_cafile`) and srvlab issues the
    // TLS servers' certificates from.
    let ca = lab_ca(&config, "baresip bench CA");
    let mut settings = std::fs::read_to_string(config.join("config")).unwrap();
    settings += &format!("sip_cafile\t\t{}\n", ca.display());
    std::fs::write(config.join("config"), settings).unwrap();
    let tls_lab = config.join("lab-tls.yaml");
    let lab_text = std::fs::read_to_string(root().join("fixtures/labs/baresip-netns.yaml"))
        .unwrap()
        .replace(
            "../profiles/baresip.yaml",
            &root()
                .join("fixtures/profiles/baresip.yaml")
                .display()
                .to_string(),
        );
    std::fs::write(
        &tls_lab,
        format!(
            "{lab_text}tls:\n  ca_cert: {}\n  ca_key: {}\n",
            ca.display(),
            config.join("lab-ca.key").display()
        ),
    )
    .unwrap();
    let log = std::fs::File::create(config.join("baresip.log")).unwrap();
    let _baresip = Baresip(
        ns.exec("baresip")
            .arg("-f")
            .arg(&config)
            .current_dir(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start baresip"),
    );

    // doctor: addresses, ports (53 among them), raw sockets, the trigger's program, and
    // whether baresip answers OPTIONS (it may take a moment to come up).
    let mut doctor = None;
    for _ in 0..20 {
        let output = ns
            .exec(env!("CARGO_BIN_EXE_srvlab"))
            .args(["doctor", "--lab", "fixtures/labs/baresip-netns.yaml"])
            .args([
                "cases/failover/refused-primary.yaml",
                "cases/timers/invite-timer-a.yaml",
            ])
            .current_dir(root())
            .output()
            .unwrap();
        let done = output.status.success();
        doctor = Some(output);
        if done {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let doctor = doctor.unwrap();
    let said = String::from_utf8_lossy(&doctor.stdout);
    assert!(doctor.status.success(), "doctor:\n{said}");
    assert!(
        said.contains("the device answers OPTIONS at 127.0.0.1:5060"),
        "{said}"
    );

    let out = artifacts();
    let _ = std::fs::remove_dir_all(&out);
    // `srvlab run --dut external` in the namespace, over `cases` with `lab`.
    let run_cases = |lab: &Path, cases: &[&str], out: &Path| {
        ns.exec(env!("CARGO_BIN_EXE_srvlab"))
            .args(["run", "--dut", "external", "--lab"])
            .arg(lab)
            .args(cases)
            .arg("--out")
            .arg(out)
            .current_dir(root())
            .output()
            .unwrap()
    };
    let run = run_cases(
        Path::new("fixtures/labs/baresip-netns.yaml"),
        &[
            "cases/failover/refused-primary.yaml",
            "cases/timers/invite-timer-a.yaml",
        ],
        &out,
    );
    let stdout = String::from_utf8_lossy(&run.stdout);
    let _ = std::fs::copy(config.join("baresip.log"), out.join("baresip.log"));
    // A warning is no failure: exit 0.
    assert_eq!(run.status.code(), Some(0), "{stdout}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["manifest"]["profile"]["device"], "baresip");

    // It fails over after Timer B, by the book…
    let (status, sentence) = verdict(&report, "invite-timer-a", "F1");
    assert_eq!(status, "pass", "{sentence}");
    assert!(sentence.contains("64·T1 = 32.000 s"), "{sentence}");
    let (status, sentence) = verdict(&report, "invite-timer-a", "T1");
    assert_eq!(status, "pass", "{sentence}");
    assert!(sentence.contains("T1 = 500 ms"), "{sentence}");
    // …but does not listen to ICMP: a refused primary costs it Timer B.
    let (status, sentence) = verdict(&report, "refused-primary", "F2");
    assert_eq!(status, "warn", "{sentence}");
    assert!(sentence.contains("was refused at"), "{sentence}");
    assert!(sentence.contains("64.0·T1"), "{sentence}");
    let (status, sentence) = verdict(&report, "refused-primary", "L11");
    assert_eq!(status, "pass", "{sentence}");
    for case in ["refused-primary", "invite-timer-a"] {
        let pcap = out.join("cases").join(case).join("capture.pcap");
        assert!(
            std::fs::metadata(&pcap).is_ok_and(|m| m.len() > 24),
            "{}",
            pcap.display()
        );
    }

    // Over TLS, with certificates from the bench's CA.
    let out = artifacts().join("tls");
    let run = run_cases(
        &tls_lab,
        &[
            "cases/transport/sips-tls.yaml",
            "cases/transport/tls-handshake-failures.yaml",
        ],
        &out,
    );
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert_eq!(run.status.code(), Some(1), "{stdout}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(
        report["manifest"]["lab"]["tls"]["issuer"], "lab CA",
        "{report}"
    );
    // It speaks SIPS as the NAPTR says, moves on from a RST, keeps its connection…
    for check in ["L5", "L8", "T3", "F2"] {
        let (status, sentence) = verdict(&report, "sips-tls", check);
        assert_eq!(status, "pass", "{check}: {sentence}");
    }
    let (status, sentence) = verdict(&report, "sips-tls", "T7");
    assert_eq!(status, "info", "{sentence}");
    assert!(sentence.contains("went over 1 connection(s)"), "{sentence}");
    // …but calls a server whose certificate is self-signed: sip_cafile is not enforced.
    let (status, sentence) = verdict(&report, "tls-handshake-failures", "F6");
    assert_eq!(status, "fail", "{sentence}");
    assert!(
        sentence.contains("INVITE went over TLS to badcert.tls-fail.test.")
            && sentence.contains("a self-signed certificate"),
        "{sentence}"
    );
}
