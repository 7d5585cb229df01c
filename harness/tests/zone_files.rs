//! Zone files: the good ones load as written; every broken one gives located messages, kept
//! as snapshots so their wording and positions only change on purpose.

mod support;

use hickory_server::proto::rr::{Name, RecordType};
use rstest::rstest;
use srvlab::model::diag::{Severity, SourceFile};
use srvlab::model::zone::{Additional, DnsFault, DnsFaultKind, RecordData, ZoneSet};
use support::{fixture, root};

/// Each file of `fixtures/zones/broken/` fails with at least one error at a real line:column.
#[test]
fn broken_zones_are_rejected_with_locations() {
    insta::glob!("../../fixtures/zones/broken", "*.yaml", |path| {
        let relative = path.strip_prefix(root()).unwrap().display().to_string();
        let (set, diagnostics) = ZoneSet::parse(&[fixture(&relative)]);
        assert!(set.is_none(), "{relative} must not load");
        assert!(diagnostics.has_errors(), "{relative} must have an error");
        for diagnostic in &diagnostics.0 {
            assert!(diagnostic.span.line >= 1, "{relative}: {diagnostic}");
            assert!(diagnostic.span.column >= 1, "{relative}: {diagnostic}");
            assert!(diagnostic.to_string().starts_with(&format!("{relative}:")));
        }
        insta::assert_snapshot!(diagnostics.to_string());
    });
}

/// Each file of `fixtures/zones/warnings/` loads, with warnings only.
#[test]
fn questionable_zones_load_with_warnings() {
    insta::glob!("../../fixtures/zones/warnings", "*.yaml", |path| {
        let relative = path.strip_prefix(root()).unwrap().display().to_string();
        let (set, diagnostics) = ZoneSet::parse(&[fixture(&relative)]);
        assert!(set.is_some(), "{relative} must load:\n{diagnostics}");
        assert!(!diagnostics.is_empty(), "{relative} must warn");
        assert!(
            diagnostics
                .0
                .iter()
                .all(|d| d.severity == Severity::Warning)
        );
        insta::assert_snapshot!(diagnostics.to_string());
    });
}

/// Every zone fixture outside those folders is clean: no error, no warning.
#[rstest]
fn shipped_zones_are_clean(#[files("../fixtures/zones/*.yaml")] path: std::path::PathBuf) {
    let relative = path.strip_prefix(root()).unwrap().display().to_string();
    let (set, diagnostics) = ZoneSet::parse(&[fixture(&relative)]);
    assert!(set.is_some() && diagnostics.is_empty(), "{diagnostics}");
}

fn one_zone(text: &str) -> srvlab::model::zone::Zone {
    let (set, diagnostics) = ZoneSet::parse(&[SourceFile::new("t.yaml", text)]);
    let mut set = set.unwrap_or_else(|| panic!("{diagnostics}"));
    set.zones.remove(0)
}

fn name(text: &str) -> Name {
    Name::from_ascii(text).unwrap()
}

/// Zone-file naming: `@`, relative and absolute names, origin with or without its dot.
#[rstest]
#[case::at("@", "example.test.")]
#[case::relative("_sip._udp", "_sip._udp.example.test.")]
#[case::absolute("sip.example.test.", "sip.example.test.")]
#[case::wildcard("*.w", "*.w.example.test.")]
fn names_follow_zone_file_rules(
    #[values("example.test", "example.test.")] origin: &str,
    #[case] written: &str,
    #[case] expected: &str,
) {
    let zone = one_zone(&format!(
        "origin: {origin}\nttl: 60\nrecords:\n  - A: {{name: \"{written}\", address: 127.0.0.1}}\n"
    ));
    assert_eq!(zone.origin, name("example.test."));
    assert_eq!(zone.records[0].name, name(expected));
}

#[test]
fn defaults_and_per_record_values() {
    let zone = one_zone(
        "origin: d.test.\nttl: 120\nrecords:\n\
         - SRV: {name: _sip._udp, priority: 1, weight: 2, port: 5062, target: a, ttl: 7}\n\
         - A: {name: a, address: 127.0.0.2}\n",
    );
    assert_eq!(zone.ttl, 120);
    assert_eq!(
        zone.negative_ttl, 120,
        "negative TTL defaults to the zone TTL"
    );
    assert_eq!(
        zone.additional,
        Additional::All,
        "BIND's behaviour is the default"
    );
    assert_eq!(zone.records[0].ttl, 7);
    assert_eq!(zone.records[1].ttl, 120);
    assert_eq!(
        zone.records[0].data,
        RecordData::Srv {
            priority: 1,
            weight: 2,
            port: 5062,
            target: name("a.d.test.")
        }
    );
}

/// A target in another zone served alongside is fine; alone it is an error.
#[test]
fn targets_may_live_in_another_zone_of_the_set() {
    let srv = SourceFile::new(
        "srv.yaml",
        "origin: a.test.\nttl: 60\nrecords:\n\
         - SRV: {name: _sip._udp, priority: 1, weight: 1, port: 5060, target: sip.b.test.}\n",
    );
    let hosts = SourceFile::new(
        "hosts.yaml",
        "origin: b.test.\nttl: 60\nrecords:\n  - A: {name: sip, address: 127.0.0.9}\n",
    );
    let (together, diagnostics) = ZoneSet::parse(&[srv.clone(), hosts]);
    assert!(together.is_some(), "{diagnostics}");
    let (alone, diagnostics) = ZoneSet::parse(&[srv]);
    assert!(alone.is_none());
    insta::assert_snapshot!(diagnostics.to_string(), @r"
    srv.yaml:4:70: error: SRV target `sip.b.test.` has no A or AAAA record in the zones served
      |
    4 | - SRV: {name: _sip._udp, priority: 1, weight: 1, port: 5060, target: sip.b.test.}
      |                                                                      ^
    ");
}

#[test]
fn the_same_origin_twice_is_an_error() {
    let text = "origin: a.test.\nttl: 60\nrecords: []\n";
    let (set, diagnostics) = ZoneSet::parse(&[
        SourceFile::new("one.yaml", text),
        SourceFile::new("two.yaml", text),
    ]);
    assert!(set.is_none());
    assert!(
        diagnostics.to_string().contains(
            "two.yaml:1:9: error: zone `a.test.` is defined twice (first at one.yaml:1:9)"
        ),
        "{diagnostics}"
    );
}

/// The command line's fault syntax: NAME[/TYPE]=KIND[xN].
#[rstest]
#[case::plain("a.test=timeout", "a.test.", None, DnsFaultKind::Timeout, None)]
#[case::typed(
    "_sip._udp.a.test./srv=servfail",
    "_sip._udp.a.test.",
    Some(RecordType::SRV),
    DnsFaultKind::Servfail,
    None
)]
#[case::counted(
    "a.test./NAPTR=truncatex3",
    "a.test.",
    Some(RecordType::NAPTR),
    DnsFaultKind::Truncate,
    Some(3)
)]
fn fault_specs_parse(
    #[case] spec: &str,
    #[case] fault_name: &str,
    #[case] qtype: Option<RecordType>,
    #[case] kind: DnsFaultKind,
    #[case] times: Option<u32>,
) {
    let fault: DnsFault = spec.parse().unwrap();
    assert_eq!(
        fault,
        DnsFault {
            name: name(fault_name),
            qtype,
            kind,
            times
        }
    );
}

#[rstest]
#[case::no_kind("a.test.")]
#[case::bad_kind("a.test.=slow")]
#[case::bad_type("a.test./XYZ=timeout")]
#[case::bad_count("a.test.=timeoutxx")]
#[case::bad_name("a..test.=timeout")]
fn bad_fault_specs_are_rejected(#[case] spec: &str) {
    let err = spec.parse::<DnsFault>().unwrap_err();
    assert!(!err.is_empty());
}
