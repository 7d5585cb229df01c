//! report.html as a person sees it: a real run of the seed case and a weight case, rendered
//! again by `srvlab report` to the same bytes, opened in headless Chromium (Debian's
//! `chromium`, which scripts/test installs) without a console error, its verdict counts in the
//! rendered page; a screenshot of the seed case's ladder is kept in
//! `target/test-artifacts/seed-crash-ladder.png`.
//!
//! The cases use fixed loopback addresses that other runs on the machine may hold for a
//! moment: a run that could not be carried out (exit 3) is retried.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::root;

const CASES: &[&str] = &[
    "cases/failover/seed-crash.yaml",
    "cases/weights/zero-weight.yaml",
];

fn srvlab(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_srvlab"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run srvlab")
}

fn text(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `srvlab run CASES --out DIR`, retried while the run could not be carried out (addresses
/// another run holds).
fn run_cases(out: &Path) {
    let mut args = vec!["run"];
    args.extend(CASES);
    args.extend(["--seed", "1", "--out"]);
    let out_arg = out.display().to_string();
    args.push(&out_arg);
    for attempt in 1..=5 {
        let _ = std::fs::remove_dir_all(out);
        let output = srvlab(&args, &root());
        match output.status.code() {
            Some(0) => return,
            Some(3) if attempt < 5 => {
                eprintln!(
                    "srvlab run could not be carried out, retrying:\n{}",
                    text(&output)
                );
                std::thread::sleep(std::time::Duration::from_secs(5));
            }
            _ => panic!("srvlab run failed:\n{}", text(&output)),
        }
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Where test artifacts go: `target/test-artifacts/` (or under CARGO_TARGET_DIR).
fn artifacts() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"));
    let dir = target.join("test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Headless Chromium on `url` with `args`: (stdout, the page's console messages).
fn chromium(url: &str, args: &[&str]) -> (String, Vec<String>) {
    let profile = std::env::temp_dir().join(format!(
        "srvlab-chromium-{}-{}",
        std::process::id(),
        args.len()
    ));
    let _ = std::fs::remove_dir_all(&profile);
    let output = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .output()
        .unwrap_or_else(|err| {
            panic!(
                "cannot start chromium ({err}): this test needs Debian's `chromium`; \
                 scripts/test installs it (apt-get install chromium)"
            )
        });
    let _ = std::fs::remove_dir_all(&profile);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Chromium logs every console message of the page as `...:CONSOLE:...] "text", source: …`.
    let console = stderr
        .lines()
        .filter(|line| line.contains(":CONSOLE"))
        .map(str::to_string)
        .collect();
    assert!(output.status.success(), "chromium failed:\n{stderr}");
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        console,
    )
}

fn file_url(path: &Path) -> String {
    format!("file://{}", path.display())
}

#[test]
fn report_html_renders_again_byte_for_byte_and_loads_in_chromium() {
    let out = std::env::temp_dir().join(format!("srvlab-html-{}", std::process::id()));
    run_cases(&out);
    let html = std::fs::read(out.join("report.html")).expect("srvlab run writes report.html");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();

    // `srvlab report` in a copy of the run folder: the same bytes, from report.json and the
    // timelines alone.
    let copy = out.with_extension("copy");
    let _ = std::fs::remove_dir_all(&copy);
    copy_dir(&out, &copy);
    std::fs::remove_file(copy.join("report.html")).unwrap();
    let output = srvlab(
        &["report", &copy.display().to_string(), "--format", "html"],
        &root(),
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("report.html"),
        "{}",
        text(&output)
    );
    let again = std::fs::read(copy.join("report.html")).unwrap();
    assert!(
        again == html,
        "srvlab report wrote other bytes than srvlab run"
    );
    for (format, file) in [
        ("md", "summary.md"),
        ("junit", "junit.xml"),
        ("json", "report.json"),
    ] {
        let output = srvlab(
            &["report", &copy.display().to_string(), "--format", format],
            &root(),
        );
        assert_eq!(output.status.code(), Some(0), "{}", text(&output));
        let again = std::fs::read_to_string(copy.join(file)).unwrap();
        let first = std::fs::read_to_string(out.join(file)).unwrap();
        let differs = again.lines().zip(first.lines()).position(|(a, b)| a != b);
        assert!(
            again == first,
            "srvlab report --format {format} wrote another {file} (first differing line: {differs:?})"
        );
    }

    // Self-contained: nothing to fetch.
    let page = String::from_utf8_lossy(&html);
    for fetch in ["src=", "href=\"http", "@import", "url(http"] {
        assert!(
            !page.contains(fetch),
            "report.html fetches something: {fetch}"
        );
    }

    // Ids are unique, and every link inside the page leads to one.
    let attribute = |name: &str| -> Vec<String> {
        let marker = format!(" {name}=\"");
        page.split(marker.as_str())
            .skip(1)
            .filter_map(|rest| rest.split('"').next())
            .map(str::to_string)
            .collect()
    };
    let ids = attribute("id");
    let unique: std::collections::BTreeSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "report.html repeats an id");
    for target in attribute("href").iter().filter_map(|h| h.strip_prefix('#')) {
        assert!(
            unique.contains(&target.to_string()),
            "a link to #{target}, which is nowhere"
        );
    }

    // The console check can fail: a page with an error shows up in it.
    let probe = out.join("probe.html");
    std::fs::write(
        &probe,
        "<!DOCTYPE html><p>probe</p><script>console.error('srvlab-probe')</script>",
    )
    .unwrap();
    let (_, console) = chromium(&file_url(&probe), &["--dump-dom"]);
    assert!(
        console.iter().any(|line| line.contains("srvlab-probe")),
        "chromium's console is not seen: {console:?}"
    );

    // Loads without a console message; the script ran; the counts are report.json's.
    let (dom, console) = chromium(&file_url(&out.join("report.html")), &["--dump-dom"]);
    assert!(console.is_empty(), "console messages: {console:#?}");
    assert!(
        dom.contains(r#"data-ready="yes""#),
        "the page's script did not run"
    );
    for (status, key) in [
        ("pass", "pass"),
        ("fail", "fail"),
        ("warn", "warn"),
        ("info", "info"),
        ("inconclusive", "inconclusive"),
        ("not_applicable", "not_applicable"),
        ("error", "errors"),
    ] {
        let count = &report["counts"][key];
        assert!(
            dom.contains(&format!(r#"<b id="count-{status}">{count}</b>"#)),
            "count {status} = {count} not in the page"
        );
    }
    let verdicts: usize = report["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["verdicts"].as_array().map_or(0, Vec::len))
        .sum();
    assert!(
        dom.contains(&format!(r#"<b id="shown">{verdicts}</b>"#)),
        "the filter does not show all {verdicts} verdicts"
    );
    // The weight case: 400 trials, not 400 ladders.
    assert!(dom.contains("more requests are not drawn; see timeline.jsonl"));
    assert!(dom.contains("p = "), "the weights section shows no p-value");
    assert!(
        dom.contains("Dirty host"),
        "no dirty-host bar for seed-crash"
    );

    // A screenshot of the seed case's ladder, as a test artifact.
    let shot = artifacts().join("seed-crash-ladder.png");
    let _ = std::fs::remove_file(&shot);
    let (_, console) = chromium(
        &format!("{}#only-seed-crash", file_url(&out.join("report.html"))),
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1400,2400",
            "--hide-scrollbars",
        ],
    );
    assert!(console.is_empty(), "console messages: {console:#?}");
    let png = std::fs::read(&shot).expect("chromium wrote the screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "{} bytes",
        png.len()
    );

    let _ = std::fs::remove_dir_all(&out);
    let _ = std::fs::remove_dir_all(&copy);
}

#[test]
fn srvlab_report_names_a_missing_or_broken_report_json() {
    let dir = std::env::temp_dir().join(format!("srvlab-html-bad-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let missing = srvlab(&["report", &dir.display().to_string()], &root());
    assert_eq!(missing.status.code(), Some(2), "{}", text(&missing));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("report.json"), "{stderr}");

    std::fs::write(dir.join("report.json"), "{\"schema\": \"srvlab-report/1\"").unwrap();
    let broken = srvlab(
        &["report", &dir.display().to_string(), "--format", "md"],
        &root(),
    );
    assert_eq!(broken.status.code(), Some(2), "{}", text(&broken));
    let stderr = String::from_utf8_lossy(&broken.stderr);
    assert!(
        stderr.contains("report.json") && stderr.contains("not a srvlab report"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
