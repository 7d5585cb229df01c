//! The report format stays stable: a real run of a few quick cases, its report.json and
//! summary.md snapshotted with the times, hashes and event numbers redacted (they change from
//! run to run; the shape, the verdicts and the sentences do not).

mod support;

use std::process::Command;

use support::root;

const CASES: &[&str] = &[
    "cases/failover/busy-503.yaml",
    "cases/failover/final-486.yaml",
    "cases/ordering/no-service.yaml",
    "cases/resolution/a-record-only.yaml",
];

/// Measured times as the sentences print them ("0.002 s", "22.858 ms", "1.1·T1").
fn time_filters() -> Vec<(&'static str, &'static str)> {
    vec![
        (r"\b\d+\.\d{3} s\b", "[s]"),
        (r"\b\d+\.\d+ ms\b", "[ms]"),
        (r"\b\d+\.\d+·T1\b", "[n]·T1"),
        (r"started \d{4}-\d\d-\d\dT[0-9:.]+Z", "started [when]"),
        (r"srvlab \d+\.\d+\.\d+", "srvlab [version]"),
    ]
}

/// Measured values inside `figures` are redacted; their keys (the format) are kept.
fn figure_shape(value: insta::internals::Content) -> insta::internals::Content {
    use insta::internals::Content;
    match value {
        Content::Map(entries) => Content::Map(
            entries
                .into_iter()
                .map(|(key, value)| {
                    // Event numbers depend on how packets interleaved.
                    let value = if key.as_str() == Some("seq") {
                        Content::String("[event id]".into())
                    } else {
                        figure_shape(value)
                    };
                    (key, value)
                })
                .collect(),
        ),
        Content::Seq(items) => Content::Seq(items.into_iter().map(figure_shape).collect()),
        Content::F32(_) | Content::F64(_) => Content::String("[measured]".into()),
        other => other,
    }
}

#[test]
fn report_json_and_summary_md_keep_their_format() {
    let out = std::env::temp_dir().join(format!("srvlab-reports-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let output = Command::new(env!("CARGO_BIN_EXE_srvlab"))
        .arg("run")
        .args(CASES)
        .args(["--seed", "1", "--jobs", "1", "--out"])
        .arg(&out)
        .current_dir(root())
        .output()
        .expect("run srvlab");
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let mut settings = insta::Settings::clone_current();
    for (pattern, replacement) in time_filters() {
        settings.add_filter(pattern, replacement);
    }
    settings.bind(|| {
        insta::assert_json_snapshot!("report.json", report, {
            ".manifest.started" => "[when]",
            ".manifest.host" => "[host]",
            ".manifest.srvlab" => "[version]",
            ".manifest.cases[].fnv1a64" => "[hash]",
            ".manifest.profile.fnv1a64" => "[hash]",
            ".cases[].seconds" => "[seconds]",
            ".cases[].verdicts[].evidence" => "[event ids]",
            ".cases[].verdicts[].figures" => insta::dynamic_redaction(|value, _| figure_shape(value)),
        });
        let summary = std::fs::read_to_string(out.join("summary.md")).unwrap();
        insta::assert_snapshot!("summary.md", summary);
    });
}

/// A full disk (issue 13: it left a 0-byte report.json, which a CI job reads as no failures):
/// `srvlab report` exits 3 naming the file, and the report.html it could not replace is still
/// the earlier one, byte for byte, with no temporary file left beside it. The disk is a 1 MiB
/// tmpfs filled to the last page, in a mount namespace of its own (root, as CI runs); the
/// earlier file is small, so that writing over it in place would need more room than it frees.
#[test]
fn a_full_disk_leaves_the_earlier_report_whole() {
    let out = std::env::temp_dir().join(format!("srvlab-full-disk-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let run = Command::new(env!("CARGO_BIN_EXE_srvlab"))
        .args(["run", "cases/ordering/no-service.yaml", "--out"])
        .arg(&out)
        .current_dir(root())
        .output()
        .expect("run srvlab");
    assert_eq!(run.status.code(), Some(0));
    let earlier = b"<!doctype html><title>the earlier report</title>\n".to_vec();
    std::fs::write(out.join("report.html"), &earlier).unwrap();
    let disk = out.with_extension("disk");
    std::fs::create_dir_all(&disk).unwrap();
    let script = r#"set -e
mount -t tmpfs -o size=1m srvlab-full "$2"
cp -r "$1"/. "$2"/
dd if=/dev/zero of="$2/filler" bs=4k 2>/dev/null || true
set +e
"$3" report "$2" --format html
echo "exit=$?"
cat "$2/report.html" > "$1/after.html"
ls -a "$2" | grep -c '^\.srvlab-'
"#;
    let output = Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            "sh",
        ])
        .arg(&out)
        .arg(&disk)
        .arg(env!("CARGO_BIN_EXE_srvlab"))
        .output()
        .expect("unshare (util-linux) makes a mount namespace");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stdout.contains("exit=3"), "{stdout}{stderr}");
    assert!(stderr.contains("cannot write"), "{stderr}");
    assert!(stderr.contains("report.html"), "{stderr}");
    assert!(stderr.contains("No space left on device"), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&std::fs::read(out.join("after.html")).unwrap()),
        String::from_utf8_lossy(&earlier),
        "report.html was not left as it was"
    );
    assert_eq!(
        stdout.lines().last(),
        Some("0"),
        "a temporary file was left: {stdout}"
    );
}
