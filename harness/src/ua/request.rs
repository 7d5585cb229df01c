//! The requests the reference UA sends (RFC 3261 §8.1.1), the ACK of a non-2xx final
//! (§17.1.1.3) and CANCEL (§9.1). Pure functions of their inputs: which branch, Call-ID and
//! tag to use is the caller's decision, so T6 (new branch per target, same Call-ID and From
//! tag) and the `reuse-branch` fault both live where attempts are made, not here.

use std::net::{IpAddr, SocketAddr};

use super::rng::Rng;
use crate::sip::{Message, MessageBuilder, StartLine};
use crate::timeline::Transport;

/// RFC 3261 §8.1.1.6: a UA starts Max-Forwards at 70.
const MAX_FORWARDS: &str = "70";

/// RFC 3261 §8.1.1.7: a branch starting with this cookie promises RFC 3261 transaction
/// matching.
const MAGIC_COOKIE: &str = "z9hG4bK";

const USER_AGENT: &str = "srvlab-reference-ua";

/// The media port written into the SDP offer. No RTP ever flows (the harness judges
/// signalling only), so it need not be open; RFC 3550 wants it even.
const OFFER_MEDIA_PORT: u16 = 40_000;

/// What a new request says, apart from where it goes and which transaction it opens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestSpec<'a> {
    pub method: &'a str,
    /// The Request-URI as text.
    pub uri: &'a str,
    /// The From URI, e.g. `sip:alice@example.test` (a name-addr with `<…>` is kept as is).
    pub from: &'a str,
    /// The To URI (or name-addr), without a tag.
    pub to: &'a str,
    pub call_id: &'a str,
    pub from_tag: &'a str,
    pub cseq: u32,
    /// The Contact URI or value (`*` for a REGISTER removing every binding).
    pub contact: Option<String>,
    pub expires: Option<u32>,
    /// Content type and bytes.
    pub body: Option<(&'a str, Vec<u8>)>,
}

/// A request ready to send from `local` over `transport`, opening the transaction `branch`
/// names. The branch is used exactly as given (the caller makes it with [`new_branch`]).
pub fn build_request(
    spec: &RequestSpec,
    local: SocketAddr,
    transport: Transport,
    branch: &str,
) -> Message {
    let mut builder = MessageBuilder::request(spec.method, spec.uri)
        .header("Via", &via(local, transport, branch))
        .header("Max-Forwards", MAX_FORWARDS)
        .header(
            "From",
            &format!("{};tag={}", name_addr(spec.from), spec.from_tag),
        )
        .header("To", &name_addr(spec.to))
        .header("Call-ID", spec.call_id)
        .header("CSeq", &format!("{} {}", spec.cseq, spec.method));
    if let Some(contact) = &spec.contact {
        builder = builder.header("Contact", &name_addr(contact));
    }
    if let Some(expires) = spec.expires {
        builder = builder.header("Expires", &expires.to_string());
    }
    builder = builder.header("User-Agent", USER_AGENT);
    if let Some((content_type, bytes)) = &spec.body {
        builder = builder.body(bytes.clone(), content_type);
    }
    builder.build()
}

/// The ACK of a 300–699 final response to `invite` (RFC 3261 §17.1.1.3): part of the INVITE
/// transaction, so the same Request-URI and the INVITE's top Via (same branch); From and
/// Call-ID of the INVITE, To of the response (with the tag the server chose), the INVITE's
/// CSeq number with method ACK, and the INVITE's Route headers (ours carry none). A header
/// the inputs lack is left out, never invented.
pub fn build_ack(invite: &Message, response: &Message) -> Message {
    let to = first_line(response, "To").or_else(|| first_line(invite, "To"));
    in_transaction_request(invite, "ACK", to)
}

/// The CANCEL of `invite` (RFC 3261 §9.1): same Request-URI, top Via (same branch), From, To,
/// Call-ID and Route, the INVITE's CSeq number with method CANCEL.
pub fn build_cancel(invite: &Message) -> Message {
    in_transaction_request(invite, "CANCEL", first_line(invite, "To"))
}

/// A fresh RFC 3261 branch: the magic cookie and 80 random bits.
pub fn new_branch(rng: &mut Rng) -> String {
    format!("{MAGIC_COOKIE}{}", rng.token(20))
}

/// A minimal SDP audio offer (RFC 4566, RFC 3264): PCMU and PCMA from `local`'s address.
pub fn sdp_offer(local: SocketAddr) -> Vec<u8> {
    let (family, address) = match local.ip() {
        IpAddr::V4(v4) => ("IP4", v4.to_string()),
        IpAddr::V6(v6) => ("IP6", v6.to_string()),
    };
    format!(
        "v=0\r\n\
         o=srvlab 1 1 IN {family} {address}\r\n\
         s=srvlab\r\n\
         c=IN {family} {address}\r\n\
         t=0 0\r\n\
         m=audio {OFFER_MEDIA_PORT} RTP/AVP 0 8\r\n\
         a=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:8 PCMA/8000\r\n\
         a=sendrecv\r\n"
    )
    .into_bytes()
}

/// ACK and CANCEL: a request of `invite`'s transaction with `method`, `to` as its To.
fn in_transaction_request(invite: &Message, method: &str, to: Option<&str>) -> Message {
    let uri = match &invite.start {
        StartLine::Request { uri, .. } => uri.as_str(),
        StartLine::Response { .. } => "",
    };
    let mut builder = MessageBuilder::request(method, uri);
    // Only the top Via: the transaction's own (§17.1.1.3, §9.1).
    if let Some(via) = invite.header("Via") {
        builder = builder.header("Via", via);
    }
    builder = builder.header("Max-Forwards", MAX_FORWARDS);
    if let Some(from) = first_line(invite, "From") {
        builder = builder.header("From", from);
    }
    if let Some(to) = to {
        builder = builder.header("To", to);
    }
    if let Some(call_id) = invite.call_id() {
        builder = builder.header("Call-ID", call_id);
    }
    if let Some((number, _)) = invite.cseq() {
        builder = builder.header("CSeq", &format!("{number} {method}"));
    }
    for route in invite.headers.iter().filter(|h| h.is("Route")) {
        builder = builder.header("Route", &route.value);
    }
    builder = builder.header("User-Agent", USER_AGENT);
    builder.build()
}

/// `SIP/2.0/UDP 192.0.2.1:5060;branch=…;rport`: rport (RFC 3581) so responses find us
/// behind the NAT a test bed may put between the UA and the servers.
fn via(local: SocketAddr, transport: Transport, branch: &str) -> String {
    let transport = match transport {
        Transport::Udp => "UDP",
        Transport::Tcp => "TCP",
        Transport::Tls => "TLS",
    };
    // SocketAddr's Display brackets IPv6 (`[fd00::1]:5060`), as sent-by wants.
    format!("SIP/2.0/{transport} {local};branch={branch};rport")
}

/// A URI in angle brackets, so its parameters cannot be read as header parameters (§20.10);
/// a value already in name-addr form, and Contact's `*`, stay as they are.
fn name_addr(value: &str) -> String {
    if value.contains('<') || value == "*" {
        value.to_owned()
    } else {
        format!("<{value}>")
    }
}

/// The value of the first line of a header, as written (a To keeps its tag and parameters).
fn first_line<'m>(message: &'m Message, name: &str) -> Option<&'m str> {
    message
        .headers
        .iter()
        .find(|h| h.is(name))
        .map(|h| h.value.as_str())
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;
    use crate::sip::{Header, response_to_with_tag};

    const LOCAL: &str = "192.0.2.10:5062";
    const BRANCH: &str = "z9hG4bKattempt1";

    fn local() -> SocketAddr {
        LOCAL.parse().unwrap()
    }

    fn spec<'a>(method: &'a str, body: Option<(&'a str, Vec<u8>)>) -> RequestSpec<'a> {
        RequestSpec {
            method,
            uri: "sip:example.test",
            from: "sip:alice@example.test",
            to: "sip:bob@example.test",
            call_id: "call-1@192.0.2.10",
            from_tag: "ftag1",
            cseq: 7,
            contact: Some("sip:alice@192.0.2.10:5062".to_owned()),
            expires: (method == "REGISTER").then_some(3600),
            body,
        }
    }

    fn invite(transport: Transport) -> Message {
        let offer = sdp_offer(local());
        build_request(
            &spec("INVITE", Some(("application/sdp", offer))),
            local(),
            transport,
            BRANCH,
        )
    }

    #[rstest]
    fn requests_parse_and_open_the_given_transaction(
        #[values("REGISTER", "INVITE", "OPTIONS")] method: &str,
        #[values(Transport::Udp, Transport::Tcp, Transport::Tls)] transport: Transport,
    ) {
        let body = (method == "INVITE").then(|| ("application/sdp", sdp_offer(local())));
        let built = build_request(&spec(method, body.clone()), local(), transport, BRANCH);
        let parsed = Message::parse(&built.to_bytes()).expect("parses");
        assert_eq!(parsed, built);
        assert_eq!(parsed.method(), Some(method));
        let via = parsed.top_via().unwrap();
        assert_eq!(parsed.vias().len(), 1);
        assert_eq!(
            via.transport,
            match transport {
                Transport::Udp => "UDP",
                Transport::Tcp => "TCP",
                Transport::Tls => "TLS",
            }
        );
        assert_eq!(via.sent_by, LOCAL);
        assert_eq!(via.branch(), Some(BRANCH));
        assert_eq!(via.rport(), Some(None));
        assert_eq!(parsed.cseq(), Some((7, method.to_owned())));
        assert_eq!(parsed.call_id(), Some("call-1@192.0.2.10"));
        assert_eq!(parsed.from_tag(), Some("ftag1"));
        assert_eq!(parsed.to_tag(), None);
        assert_eq!(
            parsed.header("From"),
            Some("<sip:alice@example.test>;tag=ftag1")
        );
        assert_eq!(parsed.header("To"), Some("<sip:bob@example.test>"));
        assert_eq!(parsed.header("Max-Forwards"), Some("70"));
        assert_eq!(parsed.header("User-Agent"), Some("srvlab-reference-ua"));
        assert_eq!(
            parsed.header("Contact"),
            Some("<sip:alice@192.0.2.10:5062>")
        );
        assert_eq!(parsed.expires(), (method == "REGISTER").then_some(3600));
        match body {
            Some((content_type, bytes)) => {
                assert_eq!(parsed.header("Content-Type"), Some(content_type));
                assert_eq!(parsed.content_length(), Some(bytes.len()));
                assert_eq!(parsed.body, bytes);
            }
            None => {
                assert_eq!(parsed.header("Content-Type"), None);
                assert_eq!(parsed.content_length(), Some(0));
            }
        }
    }

    /// An independent parser (ezk-sip-types) reads the same method, Call-ID, CSeq and branch.
    #[rstest]
    fn ezk_sip_types_reads_what_we_build(
        #[values("REGISTER", "INVITE", "OPTIONS", "ACK", "CANCEL")] method: &str,
    ) {
        use ezk_sip_types::header::typed::{CSeq, CallID, Via as EzkVia};
        use ezk_sip_types::msg::{MessageLine, PullParser};
        use ezk_sip_types::{Headers, Name};

        let invite = invite(Transport::Udp);
        let built = match method {
            "ACK" => build_ack(&invite, &response_to_with_tag(&invite, 503, "x", Some("t"))),
            "CANCEL" => build_cancel(&invite),
            _ => build_request(&spec(method, None), local(), Transport::Udp, BRANCH),
        };
        let bytes = built.to_bytes();
        let mut lines =
            PullParser::new(&bytes, 0).map(|line| std::str::from_utf8(line.unwrap()).unwrap());
        let MessageLine::Request(line) = lines.next().unwrap().parse().unwrap() else {
            panic!("not a request line");
        };
        assert_eq!(line.method.to_string(), method);
        let mut headers = Headers::new();
        for line in lines {
            let (name, value) = line.split_once(':').unwrap();
            headers.insert(Name::from(name.trim().to_owned()), value.trim().to_owned());
        }
        let call_id: CallID = headers.get_named().unwrap();
        assert_eq!(call_id.0.to_string(), "call-1@192.0.2.10");
        let cseq: CSeq = headers.get_named().unwrap();
        assert_eq!((cseq.cseq, cseq.method.to_string()), (7, method.to_owned()));
        let vias: Vec<EzkVia> = headers.get_named().unwrap();
        assert_eq!(vias.len(), 1);
        assert_eq!(
            vias[0].params.get_val("branch").map(|b| b.to_string()),
            Some(BRANCH.to_owned())
        );
    }

    /// T6: the next target gets a new transaction of the same call; the Via names the
    /// transport actually used.
    #[test]
    fn a_new_attempt_changes_only_the_branch_and_transport() {
        let mut rng = Rng::new(3);
        let spec = spec("OPTIONS", None);
        let first = build_request(&spec, local(), Transport::Udp, &new_branch(&mut rng));
        let second = build_request(&spec, local(), Transport::Tcp, &new_branch(&mut rng));
        let (a, b) = (first.top_via().unwrap(), second.top_via().unwrap());
        assert_ne!(a.branch(), b.branch());
        assert_eq!((a.transport.as_str(), b.transport.as_str()), ("UDP", "TCP"));
        assert_eq!(first.call_id(), second.call_id());
        assert_eq!(first.from_tag(), second.from_tag());
        assert_eq!(first.cseq(), second.cseq());
    }

    /// The `reuse-branch` fault is the caller passing the old branch again: nothing here may
    /// replace it.
    #[test]
    fn the_branch_is_used_exactly_as_given() {
        for branch in ["z9hG4bKsame", "z9hG4bK-1.2_x", "1234"] {
            let m = build_request(&spec("OPTIONS", None), local(), Transport::Udp, branch);
            assert_eq!(m.top_via().unwrap().branch(), Some(branch));
        }
    }

    #[test]
    fn ack_of_503_belongs_to_the_invite_transaction() {
        let invite = invite(Transport::Udp);
        let mut response = response_to_with_tag(&invite, 503, "Service Unavailable", Some("srv9"));
        // A proxy on the way may have added a Via of its own; the ACK has only ours.
        response.headers.insert(
            0,
            Header::new("Via", "SIP/2.0/UDP 198.51.100.1;branch=z9hG4bKproxy"),
        );
        let ack = build_ack(&invite, &response);
        let parsed = Message::parse(&ack.to_bytes()).expect("parses");
        assert_eq!(parsed, ack);
        assert_eq!(parsed.method(), Some("ACK"));
        assert_eq!(parsed.start.to_string(), "ACK sip:example.test SIP/2.0");
        assert_eq!(parsed.headers("Via"), invite.headers("Via"));
        assert_eq!(parsed.top_via().unwrap().branch(), Some(BRANCH));
        assert_eq!(parsed.to_tag(), Some("srv9"));
        assert_eq!(parsed.header("To"), Some("<sip:bob@example.test>;tag=srv9"));
        assert_eq!(parsed.header("From"), invite.header("From"));
        assert_eq!(parsed.call_id(), invite.call_id());
        assert_eq!(parsed.cseq(), Some((7, "ACK".to_owned())));
        assert_eq!(parsed.header("Max-Forwards"), Some("70"));
        assert_eq!(parsed.header("Route"), None);
        assert_eq!(parsed.header("Contact"), None);
        assert!(parsed.body.is_empty());
        assert_eq!(parsed.content_length(), Some(0));
    }

    #[test]
    fn ack_and_cancel_carry_the_invites_routes() {
        let mut invite = invite(Transport::Tcp);
        invite
            .headers
            .push(Header::new("Route", "<sip:p1.example.test;lr>"));
        invite
            .headers
            .push(Header::new("Route", "<sip:p2.example.test;lr>"));
        let response = response_to_with_tag(&invite, 486, "Busy Here", Some("b"));
        for request in [build_ack(&invite, &response), build_cancel(&invite)] {
            assert_eq!(
                request.headers("Route"),
                vec!["<sip:p1.example.test;lr>", "<sip:p2.example.test;lr>"]
            );
        }
    }

    #[rstest]
    fn cancel_keeps_the_branch_and_the_untagged_to(
        #[values(Transport::Udp, Transport::Tcp, Transport::Tls)] transport: Transport,
    ) {
        let invite = invite(transport);
        let cancel = build_cancel(&invite);
        let parsed = Message::parse(&cancel.to_bytes()).expect("parses");
        assert_eq!(parsed.start.to_string(), "CANCEL sip:example.test SIP/2.0");
        assert_eq!(parsed.top_via(), invite.top_via());
        assert_eq!(parsed.top_via().unwrap().branch(), Some(BRANCH));
        assert_eq!(parsed.header("From"), invite.header("From"));
        assert_eq!(parsed.header("To"), invite.header("To"));
        assert_eq!(parsed.to_tag(), None);
        assert_eq!(parsed.call_id(), invite.call_id());
        assert_eq!(parsed.cseq(), Some((7, "CANCEL".to_owned())));
        assert!(parsed.body.is_empty());
    }

    #[test]
    fn broken_inputs_give_what_they_can_without_panicking() {
        let response = MessageBuilder::response(503, "Service Unavailable").build();
        let ack = build_ack(&response, &response);
        assert_eq!(ack.method(), Some("ACK"));
        assert_eq!(ack.header("Via"), None);
        assert_eq!(ack.header("CSeq"), None);
        // No To in the response: the INVITE's is the best there is.
        let invite = invite(Transport::Udp);
        assert_eq!(
            build_ack(&invite, &response).header("To"),
            invite.header("To")
        );
    }

    #[test]
    fn branches_are_fresh_and_carry_the_magic_cookie() {
        let mut rng = Rng::new(1);
        let a = new_branch(&mut rng);
        let b = new_branch(&mut rng);
        assert_ne!(a, b);
        for branch in [&a, &b] {
            assert!(branch.starts_with("z9hG4bK"), "{branch}");
            assert!(branch.len() > "z9hG4bK".len() + 8, "{branch}");
        }
        // Reproducible from the seed.
        assert_eq!(new_branch(&mut Rng::new(1)), a);
    }

    #[rstest]
    #[case::v4("192.0.2.10:5060", "c=IN IP4 192.0.2.10\r\n")]
    #[case::v6("[fd00::10]:5060", "c=IN IP6 fd00::10\r\n")]
    fn the_offer_is_minimal_audio(#[case] local: SocketAddr, #[case] connection: &str) {
        let offer = String::from_utf8(sdp_offer(local)).unwrap();
        assert!(offer.starts_with("v=0\r\no="), "{offer}");
        assert!(offer.contains(connection), "{offer}");
        assert!(
            offer.contains("\r\nm=audio 40000 RTP/AVP 0 8\r\n"),
            "{offer}"
        );
        assert!(offer.ends_with("\r\n"));
        assert!(
            offer
                .lines()
                .all(|line| line.len() > 2 && line.as_bytes()[1] == b'=')
        );
    }
}
