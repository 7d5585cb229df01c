//! Case files (first part: zone and servers): the shipped ones load; every broken one gives
//! located messages, kept as snapshots.

mod support;

use std::path::Path;

use rstest::rstest;
use srvlab::model::case::{Behaviour, Case, Until};
use srvlab::model::diag::SourceFile;
use srvlab::model::duration::DurationSpec;
use srvlab::timeline::Transport;
use support::{fixture, root};

fn parse(relative: &str) -> (Option<Case>, srvlab::model::diag::Diagnostics) {
    let base = root().join(Path::new(relative).parent().unwrap());
    Case::parse(&fixture(relative), &base)
}

#[test]
fn broken_cases_are_rejected_with_locations() {
    let root_text = format!("{}/", root().display());
    insta::with_settings!({filters => vec![(root_text.as_str(), "[root]/")]}, {
        insta::glob!("../../fixtures/cases/broken", "*.yaml", |path| {
            let relative = path.strip_prefix(root()).unwrap().display().to_string();
            let (case, diagnostics) = parse(&relative);
            assert!(case.is_none(), "{relative} must not load");
            assert!(diagnostics.has_errors());
            insta::assert_snapshot!(diagnostics.to_string());
        });
    });
}

#[rstest]
fn shipped_cases_load(#[files("../fixtures/cases/*.yaml")] path: std::path::PathBuf) {
    let relative = path.strip_prefix(root()).unwrap().display().to_string();
    let (case, diagnostics) = parse(&relative);
    assert!(case.is_some() && diagnostics.is_empty(), "{diagnostics}");
}

#[test]
fn the_seed_world_is_read_as_written() {
    let (case, _) = parse("fixtures/cases/seed-world.yaml");
    let case = case.unwrap();
    assert_eq!(case.id, "seed-world");
    assert_eq!(case.zones.zones[0].origin.to_ascii(), "snom.rocks.");
    let crashing = &case.servers[0];
    assert_eq!(crashing.name(), "sipserver52.snom.rocks.");
    assert_eq!(
        crashing.addresses,
        vec!["127.0.0.52".parse::<std::net::IpAddr>().unwrap()]
    );
    assert_eq!(crashing.port, 5060);
    assert_eq!(crashing.transports, vec![Transport::Udp, Transport::Tcp]);
    assert_eq!(
        crashing.script[0].until,
        Some(Until::After(DurationSpec(std::time::Duration::from_secs(
            300
        ))))
    );
    assert_eq!(crashing.script[1].behaviour, Behaviour::Refuse);
}

fn inline(yaml: &str) -> (Option<Case>, String) {
    let (case, diagnostics) = Case::parse(&SourceFile::new("c.yaml", yaml), &root());
    (case, diagnostics.to_string())
}

#[test]
fn a_zone_may_be_written_inline_with_exact_locations() {
    let (case, messages) = inline(
        "id: x\nzone:\n  origin: a.test.\n  ttl: 60\n  records:\n    - A: {name: s, address: 127.0.0.9}\n\
         servers:\n  - host: s.a.test.\n    script: [{behaviour: reply, status: 480, methods: [invite]}]\n",
    );
    let case = case.unwrap_or_else(|| panic!("{messages}"));
    assert_eq!(
        case.servers[0].script[0].behaviour,
        Behaviour::Reply {
            status: 480,
            reason: None,
            retry_after: None,
            methods: Some(vec!["INVITE".into()]),
        }
    );
    let (case, messages) = inline(
        "id: x\nzone:\n  origin: a.test.\n  ttl: 60\n  records:\n    - A: {name: s, address: 127.0.0.9, weight: 1}\nservers: []\n",
    );
    assert!(case.is_none());
    assert!(
        messages.starts_with("c.yaml:6:40: error: unknown field `weight`"),
        "{messages}"
    );
}

#[test]
fn an_srv_record_leading_to_no_listener_is_a_warning() {
    let (case, messages) = inline(
        "id: x\nzone:\n  origin: a.test.\n  ttl: 60\n  records:\n\
         \x20   - SRV: {name: _sip._tcp, priority: 1, weight: 1, port: 5070, target: s}\n\
         \x20   - A: {name: s, address: 127.0.0.9}\n\
         servers:\n  - host: s.a.test.\n    transports: [udp]\n    script: [{behaviour: accept}]\n",
    );
    assert!(case.is_some(), "{messages}");
    assert!(
        messages.contains("c.yaml:6:74: warning: this SRV record sends devices to s.a.test.:5070 over tcp, where the case's server does not listen"),
        "{messages}"
    );
}

#[test]
fn a_refusing_phase_cannot_end_by_request_count() {
    let (case, messages) = inline(
        "id: x\nzone:\n  origin: a.test.\n  ttl: 60\n  records:\n    - A: {name: s, address: 127.0.0.9}\n\
         servers:\n  - host: s.a.test.\n    script:\n      - {behaviour: refuse, until: {requests: 1}}\n      - {behaviour: accept}\n",
    );
    assert!(case.is_none());
    assert!(
        messages.contains("c.yaml:10:36: error: a refusing server never sees a request"),
        "{messages}"
    );
}

#[rstest]
fn shipped_profiles_load(#[files("../fixtures/profiles/*.yaml")] path: std::path::PathBuf) {
    let relative = path.strip_prefix(root()).unwrap().display().to_string();
    let (profile, diagnostics) = srvlab::model::profile::Profile::parse(&fixture(&relative));
    assert!(profile.is_some() && diagnostics.is_empty(), "{diagnostics}");
}

/// Timing expectations are in the profile's units: Timer B is 64·T1 of the device.
#[rstest]
#[case::reference("fixtures/profiles/reference.yaml", 1280, Some(2000))]
#[case::snom("fixtures/profiles/snom.yaml", 32_000, Some(60_000))]
#[case::rfc3261("fixtures/profiles/rfc3261.yaml", 32_000, None)]
fn profiles_give_timer_b_in_their_own_t1(
    #[case] relative: &str,
    #[case] timer_b_ms: u64,
    #[case] dirty_ms: Option<u64>,
) {
    let (profile, _) = srvlab::model::profile::Profile::parse(&fixture(relative));
    let profile = profile.unwrap();
    assert_eq!(
        profile.timer_b(),
        std::time::Duration::from_millis(timer_b_ms)
    );
    assert_eq!(
        profile.dirty_host_ttl,
        dirty_ms.map(std::time::Duration::from_millis)
    );
}

#[test]
fn an_implausible_profile_is_refused_with_its_location() {
    let file = SourceFile::new("p.yaml", "device: x\nt1: 0ms\nt2: 1s\ntransports: []\n");
    let (profile, diagnostics) = srvlab::model::profile::Profile::parse(&file);
    assert!(profile.is_none());
    let text = diagnostics.to_string();
    assert!(
        text.contains("p.yaml:2:5: error: T1 0s is not plausible"),
        "{text}"
    );
    assert!(
        text.contains("p.yaml:4:13: error: a device supports at least one transport"),
        "{text}"
    );
}

#[test]
fn vendor_claims_are_read_and_their_rules_located() {
    let file = SourceFile::new(
        "p.yaml",
        "device: yealink\nt1: 500ms\nfailover_after: 3.5s\nretry_after_failed_register: 300s\n\
         failback_mode: duration\nfailback_timeout: 600s\n",
    );
    let (profile, diagnostics) = srvlab::model::profile::Profile::parse(&file);
    let profile = profile.unwrap_or_else(|| panic!("{diagnostics}"));
    assert_eq!(
        profile.failover_after,
        Some(std::time::Duration::from_millis(3500))
    );
    assert_eq!(
        profile.retry_after_failed_register,
        Some(std::time::Duration::from_secs(300))
    );
    assert_eq!(
        profile.failback_mode,
        Some(srvlab::model::profile::FailbackMode::Duration)
    );
    assert_eq!(
        profile.failback_window(),
        Some(std::time::Duration::from_secs(600))
    );

    let file = SourceFile::new(
        "p.yaml",
        "device: x\nt1: 20ms\nt2: 10ms\nfailover_after: 2s\nfailback_mode: new_requests\nfailback_timeout: 60s\n",
    );
    let (profile, diagnostics) = srvlab::model::profile::Profile::parse(&file);
    assert!(profile.is_none());
    let text = diagnostics.to_string();
    for expected in [
        "p.yaml:3:5: error: T2 10ms is smaller than T1 20ms",
        "p.yaml:4:17: error: failover_after 2s is not earlier than Timer B (64·T1 = 1280ms)",
        "p.yaml:6:19: error: failback_timeout applies to `failback_mode: duration` only",
    ] {
        assert!(text.contains(expected), "{expected}\n{text}");
    }
    let file = SourceFile::new("p.yaml", "device: x\nt1: 20ms\nfailback_mode: sometimes\n");
    let (profile, diagnostics) = srvlab::model::profile::Profile::parse(&file);
    assert!(profile.is_none());
    assert!(
        diagnostics.to_string().starts_with("p.yaml:3:16: error"),
        "{diagnostics}"
    );
}

#[test]
fn a_case_says_how_the_device_must_be_configured() {
    use srvlab::model::profile::{FailbackMode, Scaled};
    let world = "id: x\nzone:\n  origin: a.test.\n  ttl: 60\n  records:\n    - A: {name: s, address: 127.0.0.9}\n\
                 servers:\n  - host: s.a.test.\n    script: [{behaviour: accept}]\n";
    let (case, messages) = inline(&format!(
        "{world}profile: {{t2: {{t1: 4}}, failover_after: 300ms, failback_mode: duration, failback_timeout: 1h}}\n"
    ));
    let case = case.unwrap_or_else(|| panic!("{messages}"));
    assert_eq!(case.profile.t2, Some(Scaled::T1(4.0)));
    assert_eq!(
        case.profile.failover_after,
        Some(Scaled::Fixed(std::time::Duration::from_millis(300)))
    );
    assert_eq!(case.profile.failback_mode, Some(FailbackMode::Duration));
    let (reference, _) =
        srvlab::model::profile::Profile::parse(&fixture("fixtures/profiles/reference.yaml"));
    let reference = reference.unwrap();
    let effective = case.profile.apply(&reference).unwrap();
    assert_eq!(effective.t2, std::time::Duration::from_millis(80));
    assert_eq!(
        case.profile.describe(reference.t1),
        vec![
            "t2 = 4·T1 = 80ms",
            "failover_after = 300ms",
            "failback_mode = duration",
            "failback_timeout = 1h"
        ]
    );
    // 300 ms is not earlier than a Timer B of 64 × 2 ms.
    let mut fast = reference.clone();
    fast.t1 = std::time::Duration::from_millis(2);
    let err = case.profile.apply(&fast).unwrap_err();
    assert!(
        err.to_string().contains("is not earlier than Timer B"),
        "{err}"
    );

    let (case, messages) = inline(&format!(
        "{world}profile:\n  t2: {{t1: 0.5}}\n  failover_after: {{t1: 64}}\n  failback_mode: dns_ttl\n  failback_timeout: 60s\n"
    ));
    assert!(case.is_none());
    for expected in [
        "c.yaml:11:7: error: T2 = 0.5·T1 is smaller than T1",
        "c.yaml:12:19: error: failover_after = 64·T1 is not earlier than Timer B",
        "c.yaml:14:21: error: failback_timeout applies to `failback_mode: duration` only, not `dns_ttl`",
    ] {
        assert!(messages.contains(expected), "{expected}\n{messages}");
    }
    let (case, messages) = inline(&format!("{world}profile: {{t1: 5ms}}\n"));
    assert!(case.is_none());
    assert!(messages.contains("unknown field `t1`"), "{messages}");
}

#[test]
fn a_host_may_run_servers_on_several_ports_but_one_per_port() {
    let head = "id: x\nzone:\n  origin: a.test.\n  ttl: 60\n  records:\n    - A: {name: s, address: 127.0.0.9}\nservers:\n";
    let (case, messages) = inline(&format!(
        "{head}  - host: s.a.test.\n    script: [{{behaviour: refuse}}]\n  - host: s.a.test.\n    port: 5070\n    script: [{{behaviour: accept}}]\n"
    ));
    let case = case.unwrap_or_else(|| panic!("{messages}"));
    assert_eq!(
        case.servers.iter().map(|s| s.port).collect::<Vec<_>>(),
        vec![5060, 5070]
    );
    let (case, messages) = inline(&format!(
        "{head}  - host: s.a.test.\n    script: [{{behaviour: refuse}}]\n  - host: s.a.test.\n    script: [{{behaviour: accept}}]\n"
    ));
    assert!(case.is_none());
    assert!(
        messages.contains(
            "c.yaml:10:5: error: `s.a.test.` already has a server on port 5060 (at c.yaml:8:5)"
        ),
        "{messages}"
    );
}
