//! L13 on hand-built timelines: a dual-stack zone where target `one` has AAAA and A, and the
//! backup `two` an A only.

use super::*;

const DUAL_ZONE: &str = r#"
origin: dual.test.
ttl: 300
records:
  - SRV: {name: _sip._udp, priority: 1, weight: 10, port: 5060, target: one}
  - SRV: {name: _sip._udp, priority: 2, weight: 10, port: 5060, target: two}
  - AAAA: {name: one, address: "fd00::1"}
  - A: {name: one, address: 127.0.0.61}
  - A: {name: two, address: 127.0.0.62}
"#;

const DUAL_UDP: &str = "_sip._udp.dual.test.";
const ONE_V6: &str = "[fd00::1]:5060";
const ONE_V4: &str = "127.0.0.61:5060";
const TWO: &str = "127.0.0.62:5060";

fn dual_profile() -> Profile {
    Profile {
        address_families: vec![AddressFamily::Ipv6, AddressFamily::Ipv4],
        ..profile(Some(2))
    }
}

fn l13(tl: &Tl, profile: &Profile) -> Verdict {
    run_in(DUAL_ZONE, "L13", tl, profile)
}

/// Both addresses of `one` refused, then `two` answers; `skip_v4` leaves out `one`'s A.
fn failover(skip_v4: bool) -> Tl {
    let mut tl = Tl::default();
    tl.query(DUAL_UDP, "SRV", 0.0)
        .query("one.dual.test.", "AAAA", 1.0)
        .invite(ONE_V6, "b1", "c1", 2.0)
        .refused_udp(ONE_V6, "b1", "c1", 2.5);
    if !skip_v4 {
        tl.query("one.dual.test.", "A", 3.0)
            .invite(ONE_V4, "b2", "c1", 4.0)
            .refused_udp(ONE_V4, "b2", "c1", 4.5);
    }
    tl.query("two.dual.test.", "AAAA", 5.0)
        .query("two.dual.test.", "A", 6.0)
        .invite(TWO, "b3", "c1", 7.0)
        .respond(TWO, 200, "b3", "c1", 8.0);
    tl
}

#[test]
fn l13_passes_when_both_families_of_a_target_come_before_the_next() {
    let verdict = l13(&failover(false), &dual_profile());
    assert_eq!(verdict.status, Status::Pass, "{}", verdict.sentence);
    assert_eq!(verdict.level, Level::Profile);
    assert_eq!(verdict.figures["target_moves"], 1);
}

#[test]
fn l13_fails_when_the_device_moves_on_with_a_family_untried() {
    let verdict = l13(&failover(true), &dual_profile());
    assert_eq!(verdict.status, Status::Fail);
    assert!(
        verdict.sentence.contains("127.0.0.61"),
        "{}",
        verdict.sentence
    );
}

#[test]
fn l13_fails_when_a_dual_stack_device_never_asks_for_aaaa() {
    let mut tl = Tl::default();
    tl.query(DUAL_UDP, "SRV", 0.0)
        .query("one.dual.test.", "A", 1.0)
        .invite(ONE_V4, "b1", "c1", 2.0)
        .respond(ONE_V4, 200, "b1", "c1", 3.0);
    let verdict = l13(&tl, &dual_profile());
    assert_eq!(verdict.status, Status::Fail);
    assert!(
        verdict
            .sentence
            .contains("neither queried AAAA for one.dual.test."),
        "{}",
        verdict.sentence
    );
}

#[test]
fn l13_concerns_dual_stack_devices_only() {
    let verdict = l13(&failover(true), &profile(Some(2)));
    assert_eq!(verdict.status, Status::NotApplicable);
    assert!(
        verdict.sentence.contains("ipv4 only"),
        "{}",
        verdict.sentence
    );
}

#[test]
fn l13_is_inconclusive_when_nothing_dual_stack_was_reached() {
    let mut tl = Tl::default();
    tl.query(DUAL_UDP, "SRV", 0.0);
    assert_eq!(l13(&tl, &dual_profile()).status, Status::Inconclusive);
}

#[test]
fn l13_lets_a_device_skip_an_address_it_holds_dirty() {
    // The first call found one's IPv4 address refused (dirty for 2 s); the second leaves it
    // out after one's IPv6 address failed too.
    let mut tl = Tl::default();
    tl.query(DUAL_UDP, "SRV", 0.0)
        .query("one.dual.test.", "A", 1.0)
        .invite(ONE_V4, "a1", "c0", 2.0)
        .refused_udp(ONE_V4, "a1", "c0", 2.5)
        .query("one.dual.test.", "AAAA", 3.0)
        .invite(ONE_V6, "a2", "c0", 4.0)
        .refused_udp(ONE_V6, "a2", "c0", 4.5)
        .invite(TWO, "a3", "c0", 5.0)
        .respond(TWO, 200, "a3", "c0", 6.0)
        .step("second call", 100.0)
        .invite(ONE_V6, "b1", "c1", 101.0)
        .refused_udp(ONE_V6, "b1", "c1", 101.5)
        .invite(TWO, "b2", "c1", 102.0)
        .respond(TWO, 200, "b2", "c1", 103.0);
    let verdict = l13(&tl, &dual_profile());
    assert_eq!(verdict.status, Status::Pass, "{}", verdict.sentence);
    assert_eq!(verdict.figures["target_moves"], 2);
}
