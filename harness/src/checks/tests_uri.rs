//! L1, L2, L3, L6 and C3 on hand-built timelines whose requests carry their Request-URI.

use super::*;

impl Tl {
    /// The device sends an INVITE for `uri` to `server` over `transport`.
    #[allow(clippy::too_many_arguments)]
    fn call(
        &mut self,
        uri: &str,
        server: &str,
        transport: Transport,
        branch: &str,
        call_id: &str,
        t_ms: f64,
    ) -> &mut Self {
        let via = transport.to_string().to_ascii_uppercase();
        let raw = format!(
            "INVITE {uri} SIP/2.0\r\nVia: SIP/2.0/{via} {DEVICE};branch={branch}\r\nFrom: <sip:bob@snom.rocks>;tag=f\r\nTo: <{uri}>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        );
        let summary = SipSummary {
            method: Some("INVITE".into()),
            call_id: Some(call_id.into()),
            cseq: Some("1 INVITE".into()),
            branch: Some(branch.into()),
            ..SipSummary::default()
        };
        self.at(
            t_ms,
            EventKind::SipReceived(Self::message(server, transport, summary, raw.into_bytes())),
        )
    }

    /// srvlab answers `qtype name` with no records: `rcode` NXDOMAIN, or NOERROR (NODATA).
    fn negative(&mut self, name: &str, qtype: &str, rcode: &str, t_ms: f64) -> &mut Self {
        self.answer(name, qtype, &[], t_ms);
        if let Some((_, EventKind::DnsAnswer(answer))) = self.events.last_mut() {
            answer.rcode = rcode.into();
        }
        self
    }
}

const IP: &str = "127.0.30.10:5060";

fn verdict(id: &str, tl: &Tl) -> Verdict {
    run(id, tl, &profile(Some(2)))
}

// ---------------------------------------------------------------------------------------------
// L1: a numeric host.

#[test]
fn l1_a_numeric_host_is_used_as_is() {
    let mut good = Tl::default();
    good.call("sip:100@127.0.30.10", IP, Transport::Udp, "b1", "c1", 1.0)
        .respond(IP, 200, "b1", "c1", 2.0);
    let pass = verdict("L1", &good);
    assert_eq!(pass.status, Status::Pass, "{}", pass.sentence);
    assert_eq!(pass.evidence, vec![0]);

    // sips: TCP (TLS) on 5061; an explicit port and transport are taken as given.
    let mut sips = Tl::default();
    sips.call(
        "sips:100@127.0.30.10",
        "127.0.30.10:5061",
        Transport::Tls,
        "b1",
        "c1",
        1.0,
    )
    .call(
        "sip:100@127.0.30.10:5070;transport=tcp",
        "127.0.30.10:5070",
        Transport::Tcp,
        "b2",
        "c2",
        50.0,
    );
    assert_eq!(status("L1", &sips), Status::Pass);

    // A query for the address as if it were a name.
    let mut asked = Tl::default();
    asked
        .query("127.0.30.10.", "NAPTR", 0.0)
        .query("_sip._udp.127.0.30.10.", "SRV", 0.5)
        .call("sip:100@127.0.30.10", IP, Transport::Udp, "b1", "c1", 1.0);
    let fail = verdict("L1", &asked);
    assert_eq!(fail.status, Status::Fail);
    assert!(
        fail.sentence.contains("NAPTR 127.0.30.10."),
        "{}",
        fail.sentence
    );
    assert_eq!(fail.evidence, vec![0, 2]);

    // A reverse lookup is a query for it too.
    let mut reverse = Tl::default();
    reverse.query("10.30.0.127.in-addr.arpa.", "PTR", 0.0).call(
        "sip:100@127.0.30.10",
        IP,
        Transport::Udp,
        "b1",
        "c1",
        1.0,
    );
    assert_eq!(status("L1", &reverse), Status::Fail);

    // TCP without transport=, or the wrong port.
    let mut tcp = Tl::default();
    tcp.call("sip:100@127.0.30.10", IP, Transport::Tcp, "b1", "c1", 1.0);
    let fail = verdict("L1", &tcp);
    assert_eq!(fail.status, Status::Fail);
    assert!(
        fail.sentence.contains("not to udp 127.0.30.10:5060"),
        "{}",
        fail.sentence
    );
    let mut port = Tl::default();
    port.call(
        "sip:100@127.0.30.10:5070",
        IP,
        Transport::Udp,
        "b1",
        "c1",
        1.0,
    );
    assert_eq!(status("L1", &port), Status::Fail);

    // Queries of another request (to a domain) before it are that request's.
    let mut mixed = Tl::default();
    mixed
        .query(UDP, "SRV", 0.0)
        .call("sip:100@snom.rocks", S52, Transport::Udp, "b1", "c1", 1.0)
        .call("sip:100@127.0.30.10", IP, Transport::Udp, "b2", "c2", 5.0);
    assert_eq!(status("L1", &mixed), Status::Pass);
}

#[test]
fn l1_needs_a_request_to_a_numeric_host() {
    let mut named = Tl::default();
    named.call("sip:100@snom.rocks", S52, Transport::Udp, "b1", "c1", 1.0);
    assert_eq!(status("L1", &named), Status::NotApplicable);
    // Requests whose bytes the timeline lacks say nothing of their URI.
    let mut unread = Tl::default();
    unread.invite(IP, "b1", "c1", 1.0);
    assert_eq!(status("L1", &unread), Status::Inconclusive);
    // A transport srvlab does not serve cannot be judged.
    let mut sctp = Tl::default();
    sctp.call(
        "sip:100@127.0.30.10;transport=sctp",
        IP,
        Transport::Udp,
        "b1",
        "c1",
        1.0,
    );
    assert_eq!(status("L1", &sctp), Status::Inconclusive);
}

// ---------------------------------------------------------------------------------------------
// L2: an explicit port.

#[test]
fn l2_an_explicit_port_allows_address_lookups_only() {
    let uri = "sip:100@snom.rocks:5080";
    let mut good = Tl::default();
    good.query("snom.rocks.", "A", 0.0)
        .query("snom.rocks.", "AAAA", 0.2)
        .call(uri, "127.0.0.1:5080", Transport::Udp, "b1", "c1", 1.0);
    let pass = verdict("L2", &good);
    assert_eq!(pass.status, Status::Pass, "{}", pass.sentence);
    assert_eq!(pass.evidence, vec![0, 1, 2]);

    // NAPTR and SRV as for a bare domain, then the SRV target.
    let mut srv = Tl::default();
    srv.query("snom.rocks.", "NAPTR", 0.0)
        .query(UDP, "SRV", 0.5)
        .call(uri, S52, Transport::Udp, "b1", "c1", 1.0);
    let fail = verdict("L2", &srv);
    assert_eq!(fail.status, Status::Fail);
    assert!(
        fail.sentence.contains("queried NAPTR snom.rocks."),
        "{}",
        fail.sentence
    );
    assert_eq!(fail.evidence, vec![0, 2]);

    // Only an A lookup, but the default port.
    let mut port = Tl::default();
    port.query("snom.rocks.", "A", 0.0)
        .call(uri, DOMAIN, Transport::Udp, "b1", "c1", 1.0);
    let fail = verdict("L2", &port);
    assert_eq!(fail.status, Status::Fail);
    assert!(
        fail.sentence.contains("not to 127.0.0.1:5080"),
        "{}",
        fail.sentence
    );

    let mut bare = Tl::default();
    bare.query(UDP, "SRV", 0.0)
        .call("sip:100@snom.rocks", S52, Transport::Udp, "b1", "c1", 1.0);
    assert_eq!(status("L2", &bare), Status::NotApplicable);
    assert_eq!(status("L2", &Tl::default()), Status::Inconclusive);
}

// ---------------------------------------------------------------------------------------------
// L3: a transport parameter.

#[test]
fn l3_a_transport_parameter_allows_its_own_srv_name_only() {
    let uri = "sip:100@snom.rocks;transport=tcp";
    let mut good = Tl::default();
    good.query("_sip._tcp.snom.rocks.", "SRV", 0.0)
        .query("sipserver52.snom.rocks.", "A", 0.5)
        .call(uri, S52, Transport::Tcp, "b1", "c1", 1.0);
    let pass = verdict("L3", &good);
    assert_eq!(pass.status, Status::Pass, "{}", pass.sentence);
    assert!(pass.sentence.contains("_sip._tcp.snom.rocks."));

    let mut naptr = Tl::default();
    naptr
        .query("snom.rocks.", "NAPTR", 0.0)
        .query("_sip._tcp.snom.rocks.", "SRV", 0.5)
        .call(uri, S52, Transport::Tcp, "b1", "c1", 1.0);
    let fail = verdict("L3", &naptr);
    assert_eq!(fail.status, Status::Fail);
    assert!(
        fail.sentence.contains("no NAPTR lookup"),
        "{}",
        fail.sentence
    );

    let mut other = Tl::default();
    other
        .query(UDP, "SRV", 0.0)
        .query("_sip._tcp.snom.rocks.", "SRV", 0.5)
        .call(uri, S52, Transport::Tcp, "b1", "c1", 1.0);
    let fail = verdict("L3", &other);
    assert_eq!(fail.status, Status::Fail);
    assert!(
        fail.sentence.contains("only SRV name allowed is _sip._tcp"),
        "{}",
        fail.sentence
    );

    let mut udp = Tl::default();
    udp.query("_sip._tcp.snom.rocks.", "SRV", 0.0)
        .call(uri, S52, Transport::Udp, "b1", "c1", 1.0);
    assert_eq!(status("L3", &udp), Status::Fail);

    // sips (and TLS) use _sips._tcp.
    let mut sips = Tl::default();
    sips.query("_sips._tcp.snom.rocks.", "SRV", 0.0).call(
        "sips:100@snom.rocks;transport=tcp",
        "127.0.0.52:5061",
        Transport::Tls,
        "b1",
        "c1",
        1.0,
    );
    assert_eq!(status("L3", &sips), Status::Pass);
    let mut sips_wrong = Tl::default();
    sips_wrong.query("_sip._tcp.snom.rocks.", "SRV", 0.0).call(
        "sip:100@snom.rocks;transport=tls",
        S52,
        Transport::Tls,
        "b1",
        "c1",
        1.0,
    );
    assert_eq!(status("L3", &sips_wrong), Status::Fail);

    let mut plain = Tl::default();
    plain.call("sip:100@snom.rocks", S52, Transport::Udp, "b1", "c1", 1.0);
    assert_eq!(status("L3", &plain), Status::NotApplicable);
    // A numeric host is L1's.
    let mut numeric = Tl::default();
    numeric.call(
        "sip:100@127.0.30.10;transport=tcp",
        IP,
        Transport::Tcp,
        "b1",
        "c1",
        1.0,
    );
    assert_eq!(status("L3", &numeric), Status::NotApplicable);
}

// ---------------------------------------------------------------------------------------------
// L6: SRV without NAPTR.

#[test]
fn l6_records_which_srv_names_were_asked_without_naptr() {
    let uri = "sip:100@snom.rocks";
    let mut udp_first = Tl::default();
    udp_first
        .query("snom.rocks.", "NAPTR", 0.0)
        .negative("snom.rocks.", "NAPTR", "NOERROR", 0.2)
        .query(UDP, "SRV", 0.5)
        .answer(
            UDP,
            "SRV",
            &["_sip._udp.snom.rocks. 300 IN SRV 1 50 5060 sipserver52.snom.rocks."],
            0.7,
        )
        .call(uri, S52, Transport::Udp, "b1", "c1", 1.0);
    let info = verdict("L6", &udp_first);
    assert_eq!(info.status, Status::Info, "{}", info.sentence);
    assert!(
        info.sentence.contains("queried, none in the zone")
            && info
                .sentence
                .contains("_sip._udp.snom.rocks. (1 record(s))")
            && info.sentence.contains("not queried: _sip._tcp.snom.rocks."),
        "{}",
        info.sentence
    );
    assert_eq!(info.evidence, vec![2, 4]);

    // TCP first, an NXDOMAIN, then UDP: another policy, also only information.
    let mut tcp_first = Tl::default();
    tcp_first
        .query("_sip._tcp.snom.rocks.", "SRV", 0.0)
        .negative("_sip._tcp.snom.rocks.", "SRV", "NXDOMAIN", 0.2)
        .query(UDP, "SRV", 0.5)
        .call(uri, S52, Transport::Udp, "b1", "c1", 1.0);
    let info = verdict("L6", &tcp_first);
    assert_eq!(info.status, Status::Info);
    assert!(
        info.sentence.contains("none in the zone, not queried")
            && info.sentence.contains(
                "_sip._tcp.snom.rocks. (NXDOMAIN) then _sip._udp.snom.rocks. (no answer)"
            ),
        "{}",
        info.sentence
    );
    assert_eq!(info.figures["not_queried"], serde_json::json!([]));

    // A domain with NAPTR records the device followed: not L6's situation.
    let mut naptr = Tl::default();
    naptr
        .query("snom.rocks.", "NAPTR", 0.0)
        .query("_sip._tcp.snom.rocks.", "SRV", 0.5)
        .call(uri, S52, Transport::Tcp, "b1", "c1", 1.0);
    assert_eq!(
        run_in(NAPTR_ZONE, "L6", &naptr, &profile(Some(2))).status,
        Status::NotApplicable
    );
    // NAPTR for TLS only, which the profile lacks: the device is left to its own SRV order.
    let tls_only = NAPTR_ZONE
        .lines()
        .filter(|l| !l.contains("SIP+D2T") && !l.contains("SIP+D2U"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut unusable = Tl::default();
    unusable
        .query("snom.rocks.", "NAPTR", 0.0)
        .query(UDP, "SRV", 0.5)
        .call(uri, S52, Transport::Udp, "b1", "c1", 1.0);
    let info = run_in(&tls_only, "L6", &unusable, &profile(Some(2)));
    assert_eq!(info.status, Status::Info);
    assert!(
        info.sentence
            .contains("(queried, no service the profile supports)"),
        "{}",
        info.sentence
    );
    // The second call found everything in the cache: nothing to read.
    let mut cached = Tl::default();
    cached.call(uri, S52, Transport::Udp, "b1", "c1", 1.0);
    assert_eq!(status("L6", &cached), Status::Inconclusive);
    assert_eq!(status("L6", &Tl::default()), Status::Inconclusive);

    // Issue 14: no request reached a server (here, none was sent), yet the queries alone
    // answer L6's question. It said "the device sent no request whose Request-URI the
    // timeline shows".
    let mut queries_only = Tl::default();
    queries_only
        .query("snom.rocks.", "NAPTR", 0.0)
        .negative("snom.rocks.", "NAPTR", "NOERROR", 0.2)
        .query("_sip._tcp.snom.rocks.", "SRV", 0.5)
        .negative("_sip._tcp.snom.rocks.", "SRV", "NXDOMAIN", 0.6)
        .query(UDP, "SRV", 0.7);
    let info = verdict("L6", &queries_only);
    assert_eq!(info.status, Status::Info, "{}", info.sentence);
    assert_eq!(
        info.sentence,
        "no request of the device reached a server; its queries show NAPTR snom.rocks. (NODATA); then SRV _sip._tcp.snom.rocks. (NXDOMAIN) then _sip._udp.snom.rocks. (no answer)"
    );
}

// ---------------------------------------------------------------------------------------------
// C3: cache reuse, positive and negative.

/// A zone without NAPTR whose negative answers may be cached for 2 s.
const NEGATIVE_ZONE: &str = r#"
origin: snom.rocks.
ttl: 300
negative_ttl: 2
records:
  - SRV: {name: _sip._udp, priority: 1, weight: 1, port: 5060, target: sipserver52}
  - A: {name: sipserver52, address: 127.0.0.52}
"#;

impl Tl {
    /// A call to snom.rocks that looks up NAPTR (NODATA) and SRV (records, TTL 300 s) first.
    fn resolving_call(&mut self, branch: &str, call_id: &str, t_ms: f64) -> &mut Self {
        let srv = format!("{UDP} 300 IN SRV 1 1 5060 sipserver52.snom.rocks.");
        self.query("snom.rocks.", "NAPTR", t_ms)
            .negative("snom.rocks.", "NAPTR", "NOERROR", t_ms + 0.1)
            .query(UDP, "SRV", t_ms + 0.2)
            .answer(UDP, "SRV", &[&srv], t_ms + 0.3)
            .call(
                "sip:100@snom.rocks",
                S52,
                Transport::Udp,
                branch,
                call_id,
                t_ms + 1.0,
            )
    }
}

#[test]
fn c3_says_whether_answers_and_negative_answers_are_reused() {
    let p = profile(Some(2));
    let mut cached = Tl::default();
    cached
        .resolving_call("b1", "c1", 0.0)
        .call("sip:100@snom.rocks", S52, Transport::Udp, "b2", "c2", 100.0)
        .call("sip:100@snom.rocks", S52, Transport::Udp, "b3", "c3", 200.0);
    let info = run_in(NEGATIVE_ZONE, "C3", &cached, &p);
    assert_eq!(info.status, Status::Info);
    assert!(
        info.sentence
            .contains("answers cached for their TTL (300 s): reused 2 time(s)")
            && info
                .sentence
                .contains("NXDOMAIN/NODATA cached for their negative TTL (2 s): reused 2 time(s)"),
        "{}",
        info.sentence
    );

    // Every call asks again: no cache at all.
    let mut uncached = Tl::default();
    uncached
        .resolving_call("b1", "c1", 0.0)
        .resolving_call("b2", "c2", 100.0);
    let info = run_in(NEGATIVE_ZONE, "C3", &uncached, &p);
    assert_eq!(info.status, Status::Info);
    assert!(
        info.sentence
            .contains("answers not cached: asked again 1 time(s)")
            && info.sentence.contains("NXDOMAIN/NODATA not cached"),
        "{}",
        info.sentence
    );

    // After the negative TTL the NODATA is asked again while the SRV answer is still reused.
    let mut expired = Tl::default();
    expired
        .resolving_call("b1", "c1", 0.0)
        .query("snom.rocks.", "NAPTR", 3000.0)
        .negative("snom.rocks.", "NAPTR", "NOERROR", 3000.1)
        .call(
            "sip:100@snom.rocks",
            S52,
            Transport::Udp,
            "b2",
            "c2",
            3001.0,
        );
    let info = run_in(NEGATIVE_ZONE, "C3", &expired, &p);
    assert!(
        info.sentence
            .contains("answers cached for their TTL (300 s): reused 1 time(s)")
            && info
                .sentence
                .contains("asked again 1 time(s) after it ran out"),
        "{}",
        info.sentence
    );
    assert_eq!(info.figures["negative"]["asked_after_expiry"], 1);

    // One request: nothing could be reused.
    let mut once = Tl::default();
    once.resolving_call("b1", "c1", 0.0);
    assert_eq!(
        run_in(NEGATIVE_ZONE, "C3", &once, &p).status,
        Status::Inconclusive
    );
}
