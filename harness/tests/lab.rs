//! Lab mode end to end on this machine's loopback: `srvlab run --dut external` with srvlab's
//! own UA standing in for a phone, made to act by the command trigger, by a scripted "person"
//! answering the manual trigger's prompt, and not at all (inconclusive, exit 3); `srvlab doctor`
//! finding what is missing; the http trigger answering a digest challenge.

mod support;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use support::{lab_ca, root, verdict};

/// The labs share 127.0.0.1 as the device's address and fixed DNS ports.
static ONE_LAB_AT_A_TIME: Mutex<()> = Mutex::new(());

fn lock() -> std::sync::MutexGuard<'static, ()> {
    ONE_LAB_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn out_dir(name: &str) -> PathBuf {
    let out = std::env::temp_dir().join(format!("srvlab-lab-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    out
}

fn report(out: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).expect("report.json"))
        .expect("JSON")
}

/// A lab whose command trigger has only a `call` action, and one that makes nothing happen
/// (`true`): a device that never acts, 1 s to act.
fn calls_only_lab(name: &str) -> PathBuf {
    let dir = out_dir(&format!("{name}-lab"));
    std::fs::create_dir_all(&dir).unwrap();
    let lab = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &lab,
        format!(
            "lab: {name}\ndns: 127.0.0.1:5397\naddresses: [127.0.64.1, 127.0.64.2]\ndevice:\n  address: 127.0.0.1\n  profile: {}\n  act_within: 1s\ntrigger:\n  kind: command\n  call: [\"true\"]\n",
            root().join("fixtures/profiles/reference.yaml").display()
        ),
    )
    .unwrap();
    lab
}

#[test]
fn a_command_triggered_device_is_judged_on_its_own_traffic() {
    let _lab = lock();
    let out = out_dir("command");
    let output = Command::new(env!("CARGO_BIN_EXE_srvlab"))
        .args([
            "run",
            "--dut",
            "external",
            "--lab",
            "fixtures/labs/loopback-reference.yaml",
        ])
        .args([
            "cases/failover/busy-503.yaml",
            "cases/failover/seed-crash.yaml",
        ])
        .args(["cases/ordering/no-service.yaml", "--out"])
        .arg(&out)
        .current_dir(root())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    // Each step is a fresh `srvlab ua` process: a device with no memory, which D1 catches.
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    let report = report(&out);
    assert_eq!(report["manifest"]["dut"], "external");
    assert_eq!(report["manifest"]["lab"]["name"], "loopback-reference");
    assert_eq!(report["manifest"]["lab"]["device"], "127.0.0.1");
    let summary = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(
        summary.contains("Tested in the lab loopback-reference (fixtures/labs/loopback-reference.yaml): device 127.0.0.1, command trigger"),
        "{summary}"
    );
    let (status, sentence) = verdict(&report, "seed-crash", "D1");
    assert_eq!(status, "fail", "{sentence}");
    assert!(sentence.contains("after it failed"), "{sentence}");
    // The servers run on the lab's addresses, not the case's.
    assert!(sentence.contains("127.0.61."), "{sentence}");
    let (status, sentence) = verdict(&report, "seed-crash", "F1");
    assert_eq!(status, "pass", "{sentence}");
    let (status, sentence) = verdict(&report, "busy-503", "F3");
    assert_eq!(status, "pass", "{sentence}");
    // A device that resolves and then, rightly, sends nothing has acted: L10 is judged.
    let (status, sentence) = verdict(&report, "no-service", "L10");
    assert_eq!(status, "pass", "{sentence}");
    assert!(stdout.contains("INVITE seen from the device"), "{stdout}");
}

#[test]
fn a_device_that_never_acts_is_inconclusive_and_the_run_exits_3() {
    let _lab = lock();
    let lab = calls_only_lab("silent");
    let out = out_dir("silent");
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_srvlab"))
        .args(["run", "--dut", "external", "--lab"])
        .arg(&lab)
        .args(["cases/failover/busy-503.yaml", "--out"])
        .arg(&out)
        .current_dir(root())
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // One miss ends the case's waiting: not six calls × the time limit.
    assert!(started.elapsed() < Duration::from_secs(20));
    let report = report(&out);
    for check in ["F3", "L8"] {
        let (status, sentence) = verdict(&report, "busy-503", check);
        assert_eq!(status, "inconclusive", "{sentence}");
        assert!(
            sentence.contains("the device (127.0.0.1) sent no INVITE within 1s"),
            "{sentence}"
        );
    }
}

#[test]
fn a_person_answers_the_manual_prompt_and_the_run_carries_on() {
    let _lab = lock();
    let out = out_dir("manual");
    let mut run = Command::new(env!("CARGO_BIN_EXE_srvlab"))
        .args([
            "run",
            "--dut",
            "external",
            "--lab",
            "fixtures/labs/loopback-manual.yaml",
        ])
        .args(["cases/ordering/priority-groups.yaml", "--out"])
        .arg(&out)
        .current_dir(root())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(run.stdout.take().unwrap());
    let mut seen = Vec::new();
    let mut prompts = 0;
    let mut countdown = false;
    for line in stdout.lines() {
        let line = line.unwrap();
        seen.push(line.clone());
        if line.contains("waiting for INVITE from 127.0.0.1:") && line.ends_with("s left") {
            countdown = true;
            // The person reads the prompt, sees the countdown, and dials: the phone here is
            // srvlab's own UA, pointed at the lab's DNS.
            let dialled = Command::new(env!("CARGO_BIN_EXE_srvlab"))
                .args(["ua", "call", "sip:100@prio.test", "--dns", "127.0.0.1:5398"])
                .args(["--t1", "20", "--seed"])
                .arg(prompts.to_string())
                .output()
                .unwrap();
            assert!(dialled.status.success(), "{dialled:?}");
        }
        if line.starts_with(">>> dial 100 on the phone now (it calls sip:100@prio.test)") {
            prompts += 1;
        }
    }
    let status = run.wait().unwrap();
    let all = seen.join("\n");
    assert!(status.success(), "{all}");
    assert_eq!(prompts, 3, "one prompt per call of the case:\n{all}");
    assert!(countdown, "{all}");
    assert_eq!(
        all.matches("INVITE seen from the device after").count(),
        3,
        "{all}"
    );
    let report = report(&out);
    for check in ["L8", "L11", "F2"] {
        let (status, sentence) = verdict(&report, "priority-groups", check);
        assert_eq!(status, "pass", "{check}: {sentence}");
    }
}

#[test]
fn doctor_says_what_is_missing_and_how_to_fix_it() {
    let _lab = lock();
    let output = Command::new(env!("CARGO_BIN_EXE_srvlab"))
        .args(["doctor", "--lab", "fixtures/labs/loopback-reference.yaml"])
        .current_dir(root())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("a run can start"), "{stdout}");

    let dir = out_dir("doctor");
    std::fs::create_dir_all(&dir).unwrap();
    let lab = dir.join("bench.yaml");
    // 198.51.100.0/24 is documentation space: never this host's, and doctor only binds.
    std::fs::write(
        &lab,
        format!(
            "lab: bench\ninterface: eth1\ndns: 127.0.0.1:5396\naddresses: [127.0.65.1, 198.51.100.7]\ndevice:\n  address: 127.0.0.1\n  profile: {}\ntrigger:\n  kind: command\n  call: [/nonexistent/dialer, \"{{uri}}\"]\n",
            root().join("fixtures/profiles/reference.yaml").display()
        ),
    )
    .unwrap();
    // Something holds the DNS port.
    let holder = std::net::UdpSocket::bind("127.0.0.1:5396").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_srvlab"))
        .args(["doctor", "--lab"])
        .arg(&lab)
        .arg("cases/failover/busy-503.yaml")
        .current_dir(root())
        .output()
        .unwrap();
    drop(holder);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(3), "{stdout}");
    assert!(
        stdout.contains("FAIL  198.51.100.7 is not an address of this host"),
        "{stdout}"
    );
    assert!(
        stdout.contains("fix: ip addr add 198.51.100.7/32 dev eth1"),
        "{stdout}"
    );
    assert!(
        stdout.contains("FAIL  DNS port 127.0.0.1:5396 is in use"),
        "{stdout}"
    );
    assert!(
        stdout.contains("no such program for call: `/nonexistent/dialer`"),
        "{stdout}"
    );
    assert!(
        stdout.contains("problem(s): a run cannot start"),
        "{stdout}"
    );
}

#[test]
/// Also issue 13's reproducer: the dialled number holds `&key=CANCEL`, which must reach the
/// phone percent-encoded as part of `number`, never as a second parameter (a second command).
fn the_http_trigger_answers_a_digest_challenge() {
    use srvlab::model::lab::{
        Action, AuthScheme, HttpAuth, Place, Template, Trigger, TriggerKind, Vars,
    };
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        // A phone's web server: 401 with a digest challenge, then 200 to a request whose
        // Authorization names the user and the dialled number's path.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let phone = tokio::spawn(async move {
            let mut requests = Vec::new();
            for _ in 0..2 {
                let (mut stream, _) = listener.accept().await.unwrap();
                let mut buf = vec![0u8; 4096];
                let n = stream.read(&mut buf).await.unwrap();
                let request = String::from_utf8_lossy(&buf[..n]).into_owned();
                let answer = if request.contains("Authorization: Digest username=\"admin\"") {
                    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                } else {
                    "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Digest realm=\"snom\", nonce=\"abc123\", qop=\"auth\"\r\nContent-Length: 0\r\n\r\n"
                };
                stream.write_all(answer.as_bytes()).await.unwrap();
                requests.push(request);
            }
            requests
        });
        let trigger = Trigger {
            kind: TriggerKind::Http,
            actions: [(
                Action::Call,
                Template::parse(
                    Place::Url,
                    &[format!("http://127.0.0.1:{port}/command.htm?number={{user}}")],
                )
                .unwrap(),
            )]
            .into_iter()
            .collect(),
            auth: Some(HttpAuth {
                user: "admin".into(),
                password: "secret".into(),
                scheme: AuthScheme::Digest,
            }),
        };
        let vars = Vars {
            user: "+4930123&key=CANCEL".into(),
            ..Vars::default()
        };
        let fired = srvlab::run::trigger::fire(
            &trigger,
            Action::Call,
            &vars,
            Duration::from_secs(5),
            &|_| {},
        )
        .await;
        assert_eq!(
            fired,
            Ok(format!(
                "GET http://127.0.0.1:{port}/command.htm?number=%2B4930123%26key%3DCANCEL → 200"
            ))
        );
        let requests = phone.await.unwrap();
        assert!(
            requests[0]
                .starts_with("GET /command.htm?number=%2B4930123%26key%3DCANCEL HTTP/1.1\r\n"),
            "{}",
            requests[0]
        );
        assert!(
            requests[1].contains(
                "uri=\"/command.htm?number=%2B4930123%26key%3DCANCEL\", qop=auth, nc=00000001"
            ),
            "{}",
            requests[1]
        );
        // No hangup action: the trigger says so, and the step will be inconclusive.
        let none =
            srvlab::run::trigger::fire(&trigger, Action::Hangup, &vars, Duration::from_secs(1), &|_| {})
                .await;
        assert!(none.is_err());
    });
}

#[test]
fn a_passive_device_is_judged_on_what_it_does_by_itself() {
    let _lab = lock();
    let dir = out_dir("passive-lab");
    std::fs::create_dir_all(&dir).unwrap();
    let lab = dir.join("passive.yaml");
    std::fs::write(
        &lab,
        format!(
            "lab: passive\ndns: 127.0.0.1:5395\naddresses: [127.0.66.1, 127.0.66.2]\ndevice:\n  address: 127.0.0.1\n  profile: {}\n  act_within: 15s\ntrigger:\n  kind: passive\n",
            root().join("fixtures/profiles/reference.yaml").display()
        ),
    )
    .unwrap();
    let out = out_dir("passive");
    let run = Command::new(env!("CARGO_BIN_EXE_srvlab"))
        .args(["run", "--dut", "external", "--lab"])
        .arg(&lab)
        .args(["cases/failover/busy-503.yaml", "--out"])
        .arg(&out)
        .current_dir(root())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // The device makes its six calls on its own schedule, once the lab's world is up (its DNS
    // listens over TCP too; the servers come up right after it).
    let up = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect("127.0.0.1:5395").is_err() && Instant::now() < up {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    let device = Command::new(env!("CARGO_BIN_EXE_srvlab"))
        .args([
            "ua",
            "call",
            "sip:100@snom.rocks",
            "--dns",
            "127.0.0.1:5395",
        ])
        .args(["--t1", "20", "--count", "6", "--seed", "3"])
        .output()
        .unwrap();
    let output = run.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(device.status.success(), "{device:?}");
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    let report = report(&out);
    let (status, sentence) = verdict(&report, "busy-503", "F3");
    assert_eq!(status, "pass", "{sentence}");
    assert_eq!(
        stdout.matches("INVITE seen from the device").count(),
        6,
        "{stdout}"
    );
}

/// A loopback lab on 127.0.71.x whose device, srvlab's own UA, trusts the lab's CA file only;
/// `tls` is the lab file's `tls:` section (or nothing).
fn tls_lab(dir: &std::path::Path, dns_port: u16, tls: &str) -> PathBuf {
    let ca = dir.join("lab-ca.pem");
    let dns = format!("127.0.71.9:{dns_port}");
    let action = |verb: &str| {
        format!(
            "[\"{{srvlab}}\", ua, {verb}, \"{{uri}}\", --dns, \"{dns}\", --t1, \"20\", --seed, \"{{request}}\", --ca, \"{}\"]",
            ca.display()
        )
    };
    let lab = dir.join("lab.yaml");
    std::fs::write(
        &lab,
        format!(
            "lab: labtls\ndns: {dns}\naddresses: [127.0.71.1, 127.0.71.2]\ndevice:\n  address: 127.0.0.1\n  profile: {}\n  act_within: 10s\ntrigger:\n  kind: command\n  call: {}\n  register: {}\n{tls}",
            root().join("fixtures/profiles/reference.yaml").display(),
            action("call"),
            action("register"),
        ),
    )
    .unwrap();
    lab
}

fn run_tls_lab(lab: &std::path::Path, out: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_srvlab"))
        .args(["run", "--dut", "external", "--lab"])
        .arg(lab)
        .args(["cases/transport/sips-tls.yaml", "--out"])
        .arg(out)
        .current_dir(root())
        .output()
        .unwrap()
}

#[test]
fn a_phone_trusting_the_labs_ca_gets_through_over_tls() {
    let _lab = lock();
    let dir = out_dir("labtls-ca");
    std::fs::create_dir_all(&dir).unwrap();
    let ca = lab_ca(&dir, "bench CA");
    let lab = tls_lab(
        &dir,
        5371,
        "tls:\n  ca_cert: lab-ca.pem\n  ca_key: lab-ca.key\n",
    );
    let out = out_dir("labtls-ca-run");
    let output = run_tls_lab(&lab, &out);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report = report(&out);
    for check in ["L5", "L8", "T3", "F2"] {
        let (status, sentence) = verdict(&report, "sips-tls", check);
        assert_eq!(status, "pass", "{check}: {sentence}");
    }
    // The device trusts the lab's CA file only, so its calls prove the servers' certificates
    // chain to it; and ca.pem beside the capture is that very file.
    let case = out.join("cases/sips-tls");
    assert_eq!(
        std::fs::read_to_string(case.join("ca.pem")).unwrap(),
        std::fs::read_to_string(&ca).unwrap()
    );
    let timeline = std::fs::read_to_string(case.join("timeline.jsonl")).unwrap();
    assert!(
        timeline.contains("tls: sip1.tls.test, sip2.tls.test: issued by the lab's CA"),
        "{timeline}"
    );
    assert!(!timeline.contains("\"tls_failed\""), "{timeline}");
    assert!(
        timeline.contains("\"tls_secret\""),
        "the key log still works"
    );
    let tls = &report["manifest"]["lab"]["tls"];
    assert_eq!(tls["issuer"], "lab CA", "{tls}");
    assert!(tls["ca_subject"].as_str().unwrap().contains("bench CA"));
    assert_eq!(tls["ca_sha256"].as_str().unwrap().len(), 95, "{tls}");
    let summary = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(
        summary.contains("TLS: certificates issued by the lab's CA CN=bench CA (SHA-256 "),
        "{summary}"
    );

    // The doctor shows the CA, its validity, and which certificate each case host gets.
    let doctor = Command::new(env!("CARGO_BIN_EXE_srvlab"))
        .args(["doctor", "--lab"])
        .arg(&lab)
        .arg("cases/transport/sips-tls.yaml")
        .arg("cases/transport/tls-handshake-failures.yaml")
        .current_dir(root())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&doctor.stdout);
    assert!(said.contains("ok    lab CA "), "{said}");
    assert!(said.contains("loads: CN=bench CA, SHA-256 "), "{said}");
    assert!(said.contains("is valid until "), "{said}");
    assert!(
        said.contains("case sips-tls: sip1.tls.test. → issued by the lab's CA; sip2.tls.test. → issued by the lab's CA"),
        "{said}"
    );
    assert!(
        said.contains("→ a self-signed certificate (tls fail: bad_certificate)"),
        "{said}"
    );
}

#[test]
fn a_phone_trusting_the_labs_ca_fails_the_handshake_with_the_runs_own() {
    let _lab = lock();
    let dir = out_dir("labtls-run");
    std::fs::create_dir_all(&dir).unwrap();
    let ca = lab_ca(&dir, "bench CA");
    // No `tls:`: the servers' certificates come from the run's own CA, which this device
    // (trusting only the lab's CA, as a phone on a bench does) rejects.
    let lab = tls_lab(&dir, 5372, "");
    let out = out_dir("labtls-run-run");
    let output = run_tls_lab(&lab, &out);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_ne!(output.status.code(), Some(0), "{stdout}");
    let case = out.join("cases/sips-tls");
    let written = std::fs::read_to_string(case.join("ca.pem")).unwrap();
    assert_ne!(written, std::fs::read_to_string(&ca).unwrap());
    let timeline = std::fs::read_to_string(case.join("timeline.jsonl")).unwrap();
    assert!(
        timeline.contains("tls: sip1.tls.test, sip2.tls.test: issued by the run's own CA"),
        "{timeline}"
    );
    assert!(timeline.contains("\"tls_failed\""), "{timeline}");
    let report = report(&out);
    assert!(report["manifest"]["lab"].get("tls").is_none());
    // The case did not run as written: nothing is judged, and the report says why.
    assert_eq!(output.status.code(), Some(3), "{stdout}");
    for verdict in report["cases"][0]["verdicts"].as_array().unwrap() {
        assert_eq!(verdict["status"], "inconclusive", "{verdict}");
        let sentence = verdict["sentence"].as_str().unwrap();
        assert!(
            sentence.contains("the TLS handshake with sip2.tls.test. failed")
                && sentence.contains("give the device the CA in ca.pem"),
            "{sentence}"
        );
    }
}

#[test]
fn a_labs_fixed_certificate_is_what_the_host_presents() {
    use rcgen::{CertificateParams, Issuer, KeyPair};
    let _lab = lock();
    let dir = out_dir("labtls-fixed");
    std::fs::create_dir_all(&dir).unwrap();
    lab_ca(&dir, "bench CA");
    // The lab's certificate for sip2, from its CA, made as the lab would (not by srvlab).
    let ca_key =
        KeyPair::from_pem(&std::fs::read_to_string(dir.join("lab-ca.key")).unwrap()).unwrap();
    let issuer = Issuer::from_ca_cert_pem(
        &std::fs::read_to_string(dir.join("lab-ca.pem")).unwrap(),
        ca_key,
    )
    .unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["sip2.tls.test".to_string()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    std::fs::write(dir.join("sip2.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("sip2.key"), key.serialize_pem()).unwrap();
    let lab = tls_lab(
        &dir,
        5373,
        "tls:\n  ca_cert: lab-ca.pem\n  certificates:\n    sip2.tls.test.: {cert: sip2.pem, key: sip2.key}\n",
    );
    let out = out_dir("labtls-fixed-run");
    let output = run_tls_lab(&lab, &out);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    let timeline = std::fs::read_to_string(out.join("cases/sips-tls/timeline.jsonl")).unwrap();
    assert!(
        timeline.contains("tls: sip2.tls.test: the lab's fixed certificate"),
        "{timeline}"
    );
    let report = report(&out);
    let tls = &report["manifest"]["lab"]["tls"];
    assert_eq!(tls["issuer"], "run CA", "{tls}");
    assert!(
        tls["fixed"]["sip2.tls.test"]
            .as_str()
            .is_some_and(|path| path.ends_with("sip2.pem")),
        "{tls}"
    );
    let (status, sentence) = verdict(&report, "sips-tls", "L5");
    assert_eq!(status, "pass", "{sentence}");
}

/// Issue 14: a real device is judged as its profile declares it, never as a case wished it
/// were configured. The device here is srvlab's own UA at T1 = 20 ms with no dirty-host TTL
/// and no early failover, and its lab profile says exactly that.
/// - early-failover asks for `failover_after: 15·T1`: T4 is not applicable (the device declares
///   none), F1 judges its move at Timer B, and the report says what became of the wish.
///   Before, the wish was applied to the judged profile: T4 failed a device that cannot be set.
/// - seed-crash waits in dirty-host TTLs: the waits are skipped with a note, L8, F1 and T1 are
///   judged, and only D1 and D2 are not applicable. Before, the whole case was.
#[test]
fn a_real_device_is_judged_against_its_own_profile_not_the_cases_wishes() {
    let _lab = lock();
    let dir = out_dir("own-profile");
    std::fs::create_dir_all(&dir).unwrap();
    let profile = dir.join("plain-ua.yaml");
    std::fs::write(
        &profile,
        "device: plain-ua\nname: srvlab ua at T1 = 20 ms, nothing else declared\nt1: 20ms\nt2: 4s\ntransports: [udp]\n",
    )
    .unwrap();
    let lab_text = std::fs::read_to_string(root().join("fixtures/labs/loopback-reference.yaml"))
        .unwrap()
        .replace("../profiles/reference.yaml", &profile.display().to_string());
    let lab = dir.join("lab.yaml");
    std::fs::write(&lab, lab_text).unwrap();
    let out = out_dir("own-profile-run");
    let output = Command::new(env!("CARGO_BIN_EXE_srvlab"))
        .args(["run", "--dut", "external", "--lab"])
        .arg(&lab)
        .args([
            "cases/timers/early-failover.yaml",
            "cases/failover/seed-crash.yaml",
            "--out",
        ])
        .arg(&out)
        .current_dir(root())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report = report(&out);
    let (status, sentence) = verdict(&report, "early-failover", "T4");
    assert_eq!(status, "not_applicable", "{sentence}\n{stdout}");
    assert!(
        sentence.contains("declares no failover earlier than Timer B"),
        "{sentence}"
    );
    let (status, sentence) = verdict(&report, "early-failover", "F1");
    assert_eq!(status, "pass", "{sentence}");
    assert!(sentence.contains("after Timer B"), "{sentence}");
    let settings = report["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "early-failover")
        .map(|c| c["settings"].to_string())
        .unwrap();
    assert!(
        settings.contains(
            "failover_after: the case asks for 15·T1 = 300ms; the device's profile declares none"
        ),
        "{settings}"
    );
    for id in ["L8", "F1"] {
        let (status, sentence) = verdict(&report, "seed-crash", id);
        assert_eq!(status, "pass", "seed-crash {id}: {sentence}");
    }
    // Judged, whatever it finds: a `srvlab ua` process is a real device here, with no
    // watchdog to excuse a busy host's delays at T1 = 20 ms.
    let (status, sentence) = verdict(&report, "seed-crash", "T1");
    assert!(
        matches!(status.as_str(), "pass" | "fail"),
        "seed-crash T1: {status}: {sentence}"
    );
    for id in ["D1", "D2"] {
        let (status, sentence) = verdict(&report, "seed-crash", id);
        assert_eq!(status, "not_applicable", "seed-crash {id}: {sentence}");
        assert!(
            sentence.contains("declares no dirty-host TTL"),
            "{sentence}"
        );
    }
    let (_, events) =
        srvlab::timeline::jsonl::read(&out.join("cases/seed-crash/timeline.jsonl")).unwrap();
    assert!(events.iter().any(|e| matches!(
        &e.kind,
        srvlab::timeline::EventKind::Note { text } if text.contains("skipped: the device's profile declares no dirty-host TTL")
    )));
}

/// Issue 14: a case whose steps need an action the lab's trigger lacks is not applicable,
/// said before the run (doctor) and after it, without touching the device; a run in which
/// nothing could be judged says why in its last line, not "the device never acted" (which it
/// said before, with every check not applicable and the case's REGISTER steps failed over to
/// the trigger's error, inconclusive).
#[test]
fn a_case_needing_an_action_the_lab_lacks_is_not_applicable_and_said_so() {
    let _lab = lock();
    let lab = calls_only_lab("calls-only");
    let doctor = Command::new(env!("CARGO_BIN_EXE_srvlab"))
        .args(["doctor", "--lab"])
        .arg(&lab)
        .arg("cases/registration/register-refresh.yaml")
        .current_dir(root())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&doctor.stdout);
    assert!(
        said.contains("warn  1 case(s) need an action the lab's command trigger lacks and will be not applicable: register (1): register-refresh"),
        "{said}"
    );
    let out = out_dir("no-register");
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_srvlab"))
        .args(["run", "--dut", "external", "--lab"])
        .arg(&lab)
        .args(["cases/registration/register-refresh.yaml", "--out"])
        .arg(&out)
        .current_dir(root())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    // Nothing was asked of the device: no waiting for it.
    assert!(started.elapsed() < Duration::from_secs(5));
    let report = report(&out);
    let (status, sentence) = verdict(&report, "register-refresh", "D4");
    assert_eq!(status, "not_applicable", "{sentence}");
    assert!(
        sentence.starts_with(
            "the lab's command trigger has no `register` action, which the steps of this case need"
        ),
        "{sentence}"
    );
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("srvlab: nothing could be judged: 2 check(s) not applicable; why: \"the lab's command trigger has no `register` action"),
        "{stderr}"
    );
    assert!(!stderr.contains("never acted"), "{stderr}");
}

/// Issue 14: a 503 from the only target, after which the device (rightly) tries nothing else,
/// is what the step's outcome says; it read "no final answer; quiet for 3.28s".
#[test]
fn a_step_that_ends_in_a_503_says_so() {
    let _lab = lock();
    let dir = out_dir("busy-only");
    std::fs::create_dir_all(&dir).unwrap();
    let case = dir.join("busy-only.yaml");
    std::fs::write(
        &case,
        "id: busy-only\nzone:\n  origin: busy.test.\n  ttl: 60\n  records:\n    - SRV: {name: _sip._udp, priority: 1, weight: 1, port: 5060, target: busy}\n    - A: {name: busy, address: 127.0.42.61}\nservers:\n  - host: busy.busy.test.\n    script: [{behaviour: reply, status: 503}]\ndevice: {uri: \"sip:100@busy.test\"}\nsteps: [call]\nchecks: [F3]\n",
    )
    .unwrap();
    let out = out_dir("busy-only-run");
    let output = Command::new(env!("CARGO_BIN_EXE_srvlab"))
        .args([
            "run",
            "--dut",
            "external",
            "--lab",
            "fixtures/labs/loopback-reference.yaml",
        ])
        .arg(&case)
        .arg("--out")
        .arg(&out)
        .current_dir(root())
        .output()
        .unwrap();
    let report = report(&out);
    let outcomes = report["cases"][0]["outcomes"].to_string();
    assert!(
        outcomes.contains(
            "INVITE → 503 from 127.0.61.1:5060 over udp, then no other attempt; quiet for"
        ),
        "{outcomes}\n{}",
        String::from_utf8_lossy(&output.stdout)
    );
}

/// Issue 14: a device that sends from an address the lab does not name. srvlab's UA sends from
/// 127.0.0.1; the lab names the device 127.0.0.9. Without `other_addresses` nothing of it is
/// judged, and the report says whose traffic was left out (before: only "the device sent no
/// INVITE" and "the device never acted"); with the prefix that holds 127.0.0.1, it is judged.
#[test]
fn a_device_sending_from_another_address_is_named_or_said_to_be_left_out() {
    let _lab = lock();
    let dir = out_dir("two-address");
    std::fs::create_dir_all(&dir).unwrap();
    let base = std::fs::read_to_string(root().join("fixtures/labs/loopback-reference.yaml"))
        .unwrap()
        .replace(
            "../profiles/reference.yaml",
            &root()
                .join("fixtures/profiles/reference.yaml")
                .display()
                .to_string(),
        )
        .replace("act_within: 10s", "act_within: 1s")
        .replace("  address: 127.0.0.1\n", "  address: 127.0.0.9\n");
    let run = |name: &str, lab_text: String| {
        let lab = dir.join(format!("{name}.yaml"));
        std::fs::write(&lab, lab_text).unwrap();
        let out = out_dir(name);
        let output = Command::new(env!("CARGO_BIN_EXE_srvlab"))
            .args(["run", "--dut", "external", "--lab"])
            .arg(&lab)
            .args(["cases/failover/busy-503.yaml", "--out"])
            .arg(&out)
            .current_dir(root())
            .output()
            .unwrap();
        (output, report(&out), out)
    };
    let (output, report_unnamed, out) = run("unnamed", base.clone());
    assert_eq!(output.status.code(), Some(3));
    let left_out = report_unnamed["cases"][0]["left_out"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        left_out.starts_with("not judged, as not from the device's addresses: 127.0.0.1: ")
            && left_out.contains("DNS quer(ies)")
            && left_out.contains("SIP request(s)"),
        "{left_out}"
    );
    let summary = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(
        summary.contains("Traffic not judged, as not from the device:"),
        "{summary}"
    );

    let named = base.replace(
        "  address: 127.0.0.9\n",
        "  address: 127.0.0.9\n  other_addresses: [127.0.0.0/29]\n",
    );
    let (output, report_named, _) = run("named", named);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let (status, sentence) = verdict(&report_named, "busy-503", "F3");
    assert_eq!(status, "pass", "{sentence}\n{stdout}");
    assert!(report_named["cases"][0].get("left_out").is_none());
    assert_eq!(
        report_named["manifest"]["lab"]["device"],
        "127.0.0.9 (also 127.0.0.0/29)"
    );
}
