//! A case over TLS, run end to end: the reference UA calls a sips URI, the capture carries the
//! TLS records as they crossed the wire, and tshark — given the key log srvlab wrote — decrypts
//! them into the same SIP requests the timeline holds.

use std::path::{Path, PathBuf};
use std::process::Command;

use srvlab::timeline::Transport;
use srvlab::timeline::jsonl;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn tshark(args: &[&str]) -> String {
    let output = Command::new("tshark")
        .args(args)
        .output()
        .expect("tshark is not installed: run scripts/test, which installs Debian's `tshark`");
    assert!(
        output.status.success(),
        "tshark {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn tshark_decrypts_the_tls_capture_with_the_key_log() {
    let out = std::env::temp_dir().join(format!("srvlab-tls-capture-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let run = Command::new(env!("CARGO_BIN_EXE_srvlab"))
        .args(["run", "cases/transport/sips-tls.yaml", "--out"])
        .arg(&out)
        .current_dir(root())
        .output()
        .expect("run srvlab");
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}\n{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    let case = out.join("cases").join("sips-tls");
    let pcap = case.join("capture.pcap");
    let keylog = case.join("keylog.txt");
    let ca = std::fs::read_to_string(case.join("ca.pem")).expect("ca.pem is written");
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"), "{ca}");
    let keylog_text = std::fs::read_to_string(&keylog).expect("keylog.txt is written");
    assert!(
        keylog_text
            .lines()
            .any(|l| l.starts_with("CLIENT_TRAFFIC_SECRET_0 ")),
        "{keylog_text}"
    );

    // What the timeline says went in over TLS, decrypted.
    let (_, events) = jsonl::read(&case.join("timeline.jsonl")).expect("timeline.jsonl reads back");
    let mut expected: Vec<(String, String)> = Vec::new();
    for event in &events {
        if let srvlab::timeline::EventKind::SipReceived(m) = &event.kind {
            assert_eq!(m.transport, Transport::Tls);
            let text = String::from_utf8_lossy(&m.raw);
            let request_line = text.lines().next().unwrap_or_default().to_string();
            expected.push((request_line, m.summary.call_id.clone().unwrap_or_default()));
        }
    }
    assert!(!expected.is_empty(), "no SIP over TLS on the timeline");

    let pcap_arg = pcap.to_string_lossy().into_owned();
    // Without the keys: TLS records on 5061, and no SIP readable.
    let records = tshark(&[
        "-r",
        &pcap_arg,
        "-d",
        "tcp.port==5061,tls",
        "-Y",
        "tls.record",
        "-T",
        "fields",
        "-e",
        "tls.record.content_type",
    ]);
    assert!(records.lines().count() > 4, "TLS records: {records}");
    let blind = tshark(&["-r", &pcap_arg, "-d", "tcp.port==5061,tls", "-Y", "sip"]);
    assert!(
        blind.trim().is_empty(),
        "SIP readable without keys: {blind}"
    );

    // With the key log: the SIP of the timeline, request by request.
    let keylog_option = format!("tls.keylog_file:{}", keylog.to_string_lossy());
    let decrypted = tshark(&[
        "-r",
        &pcap_arg,
        "-o",
        &keylog_option,
        "-d",
        "tcp.port==5061,tls",
        "-Y",
        "sip.Request-Line",
        "-T",
        "fields",
        "-e",
        "sip.Request-Line",
        "-e",
        "sip.Call-ID",
    ]);
    // One segment may carry several records (the server read them at once): tshark lists
    // each field's occurrences comma-separated.
    let seen: Vec<(String, String)> = decrypted
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .flat_map(|(lines, call_ids)| {
            lines
                .split(',')
                .zip(call_ids.split(','))
                .map(|(line, call_id)| (line.to_string(), call_id.to_string()))
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(seen, expected, "tshark output:\n{decrypted}");
    let _ = std::fs::remove_dir_all(&out);
}
