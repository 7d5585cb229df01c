//! The fuzzers' findings as ordinary tests on stable: every file of `fuzz/corpus/TARGET/` (the
//! minimized corpus `scripts/fuzz` keeps) and `fuzz/regressions/TARGET/` (each crash the fuzzer
//! found, kept after its fix) goes through the target's entry point in `srvlab::fuzz`.

mod support;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use rstest::rstest;
use support::root;

/// The files of one folder, sorted; none when the folder does not exist.
fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries
        .map(|entry| entry.expect("a readable folder").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

#[rstest]
#[case::sip_message("sip_message")]
#[case::sip_framing("sip_framing")]
#[case::client_hello("client_hello")]
#[case::dns_query("dns_query")]
#[case::zone_file("zone_file")]
#[case::case_file("case_file")]
#[case::profile_file("profile_file")]
#[case::lab_file("lab_file")]
fn corpus_and_regressions_replay(#[case] name: &str) {
    let (_, target) = srvlab::fuzz::TARGETS
        .into_iter()
        .find(|(target, _)| *target == name)
        .expect("every target is listed in srvlab::fuzz::TARGETS");
    let fuzz = root().join("fuzz");
    let corpus = files(&fuzz.join("corpus").join(name));
    assert!(!corpus.is_empty(), "fuzz/corpus/{name}/ holds no seed");
    let regressions = files(&fuzz.join("regressions").join(name));
    let mut failed = Vec::new();
    for path in corpus.iter().chain(&regressions) {
        let data = std::fs::read(path).expect("a readable corpus file");
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| target(&data))) {
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            failed.push(format!("{}: {why}", path.display()));
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} inputs fail:\n{}",
        failed.len(),
        corpus.len() + regressions.len(),
        failed.join("\n")
    );
}

/// Every target the library offers is replayed above (a new one needs its case).
#[test]
fn every_target_is_replayed() {
    let source = std::fs::read_to_string(root().join(file!())).expect("this test's own source");
    for (name, _) in srvlab::fuzz::TARGETS {
        assert!(
            source.contains(&format!("#[case::{name}(\"{name}\")]")),
            "{name} has no case here"
        );
    }
}
