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
