//! SIP messages: what devices send parses strictly, every malformed fixture fails with a
//! reason kept as a snapshot, no input makes the parser panic, and TCP framing survives any
//! split of the stream.

mod support;

use rstest::rstest;
use srvlab::sip::{
    FramingError, Header, Message, MessageBuilder, StartLine, StreamFramer, response_to,
    summarize_partial,
};
use srvlab::timeline::SipSummary;
use support::root;

/// Joins lines with CRLF and ends the header block with an empty line.
fn sip(lines: &[&str]) -> Vec<u8> {
    let mut text = lines.join("\r\n");
    text.push_str("\r\n\r\n");
    text.into_bytes()
}

fn parse(bytes: &[u8]) -> Message {
    Message::parse(bytes).unwrap_or_else(|err| panic!("{err} at {}", err.offset))
}

fn reason(bytes: &[u8]) -> String {
    match Message::parse(bytes) {
        Ok(m) => panic!("parsed, but should not: {m:?}"),
        Err(err) => err.reason,
    }
}

const INVITE: &[&str] = &[
    "INVITE sip:200@snom.rocks SIP/2.0",
    "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-1;rport",
    "From: \"Desk 100\" <sip:100@snom.rocks>;tag=4fb3",
    "To: <sip:200@snom.rocks>",
    "Call-ID: c1@192.0.2.10",
    "CSeq: 1 INVITE",
    "Max-Forwards: 70",
    "Contact: <sip:100@192.0.2.10:5060>",
    "Content-Length: 0",
];

const REGISTER: &[&str] = &[
    "REGISTER sip:snom.rocks SIP/2.0",
    "Via: SIP/2.0/TCP 192.0.2.10:49152;branch=z9hG4bK-r",
    "From: <sip:100@snom.rocks>;tag=r1",
    "To: <sip:100@snom.rocks>",
    "Call-ID: reg-1",
    "CSeq: 42 REGISTER",
    "Contact: <sip:100@192.0.2.10;transport=tcp>;expires=600",
    "Expires: 3600",
    "Content-Length: 0",
];

const OK: &[&str] = &[
    "SIP/2.0 200 OK",
    "Via: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bK-r;received=192.0.2.10;rport=5062",
    "From: <sip:100@snom.rocks>;tag=r1",
    "To: <sip:100@snom.rocks>;tag=srv",
    "Call-ID: reg-1",
    "CSeq: 42 REGISTER",
    "Content-Length: 0",
];

const COMPACT: &[&str] = &[
    "OPTIONS sip:s@snom.rocks SIP/2.0",
    "v: SIP/2.0/UDP h;branch=z9hG4bK-c",
    "i: compact-1",
    "f: sip:a@b;tag=f",
    "t: sip:s@snom.rocks",
    "CSeq: 9 OPTIONS",
    "m: <sip:a@h>",
    "l: 0",
];

fn summary(
    method: Option<&str>,
    status: Option<u16>,
    reason: Option<&str>,
    call_id: &str,
    cseq: &str,
    branch: &str,
) -> SipSummary {
    SipSummary {
        method: method.map(str::to_owned),
        status,
        reason: reason.map(str::to_owned),
        call_id: Some(call_id.to_owned()),
        cseq: Some(cseq.to_owned()),
        branch: Some(branch.to_owned()),
    }
}

#[rstest]
#[case::invite_from_a_phone(
    INVITE,
    summary(Some("INVITE"), None, None, "c1@192.0.2.10", "1 INVITE", "z9hG4bK-1")
)]
#[case::register(
    REGISTER,
    summary(Some("REGISTER"), None, None, "reg-1", "42 REGISTER", "z9hG4bK-r")
)]
#[case::ok(
    OK,
    summary(None, Some(200), Some("OK"), "reg-1", "42 REGISTER", "z9hG4bK-r")
)]
#[case::compact(
    COMPACT,
    summary(Some("OPTIONS"), None, None, "compact-1", "9 OPTIONS", "z9hG4bK-c")
)]
fn valid_messages_parse(#[case] lines: &[&str], #[case] expected: SipSummary) {
    let bytes = sip(lines);
    let message = parse(&bytes);
    assert_eq!(message.summary(), expected);
    assert_eq!(summarize_partial(&bytes), expected);
    assert_eq!(message.to_bytes(), bytes, "written back exactly");
}

#[test]
fn accessors_on_a_register_and_its_answer() {
    let register = parse(&sip(REGISTER));
    assert_eq!(register.cseq(), Some((42, "REGISTER".to_owned())));
    assert_eq!(register.expires(), Some(3600));
    assert_eq!(register.from_tag(), Some("r1"));
    assert_eq!(register.to_tag(), None);
    assert_eq!(register.content_length(), Some(0));
    assert_eq!(register.top_via().map(|v| v.transport), Some("TCP".into()));

    let ok = parse(&sip(OK));
    let via = ok.top_via().unwrap();
    assert_eq!(via.received(), Some("192.0.2.10"));
    assert_eq!(via.rport(), Some(Some(5062)));
    assert_eq!(ok.to_tag(), Some("srv"));
}

#[test]
fn compact_headers_answer_to_long_names() {
    let m = parse(&sip(COMPACT));
    assert_eq!(m.call_id(), Some("compact-1"));
    assert_eq!(m.header("From"), Some("sip:a@b;tag=f"));
    assert_eq!(m.from_tag(), Some("f"));
    assert_eq!(m.header("to"), Some("sip:s@snom.rocks"));
    assert_eq!(m.header("Contact"), Some("<sip:a@h>"));
    assert_eq!(m.content_length(), Some(0));
    assert_eq!(m.headers[0].name, "v", "names stay as written");
}

#[test]
fn folded_headers_are_unfolded() {
    let bytes = sip(&[
        "OPTIONS sip:s@h SIP/2.0",
        "Via: SIP/2.0/UDP h;branch=z9hG4bK-f",
        "Subject: I know you're there,",
        "   pick up the phone   ",
        "\tand talk to me!",
        "From: <sip:a@b>",
        "  ;tag=folded",
        "To:",
        " <sip:s@h>",
        "Call-ID: fold",
        "CSeq: 1 OPTIONS",
    ]);
    let m = parse(&bytes);
    assert_eq!(
        m.header("Subject"),
        Some("I know you're there, pick up the phone and talk to me!")
    );
    assert_eq!(m.header("From"), Some("<sip:a@b> ;tag=folded"));
    assert_eq!(m.from_tag(), Some("folded"));
    assert_eq!(m.header("To"), Some("<sip:s@h>"));
}

#[rstest]
#[case::one_line(&["Via: SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/TCP b:5061;branch=z9hG4bK2 ,SIP/2.0/UDP c"])]
#[case::separate_lines(&["Via: SIP/2.0/UDP a;branch=z9hG4bK1", "v: SIP/2.0/TCP b:5061;branch=z9hG4bK2", "VIA: SIP/2.0/UDP c"])]
#[case::mixed(&["via: SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/TCP b:5061;branch=z9hG4bK2", "Via: SIP/2.0/UDP c"])]
fn several_vias_keep_their_order(#[case] vias: &[&str]) {
    let mut lines = vec!["OPTIONS sip:s@h SIP/2.0"];
    lines.extend_from_slice(vias);
    lines.extend_from_slice(&[
        "From: <sip:a@b>;tag=1",
        "To: <sip:s@h>",
        "Call-ID: vias",
        "CSeq: 1 OPTIONS",
    ]);
    let m = parse(&sip(&lines));
    assert_eq!(
        m.headers("Via"),
        vec![
            "SIP/2.0/UDP a;branch=z9hG4bK1",
            "SIP/2.0/TCP b:5061;branch=z9hG4bK2",
            "SIP/2.0/UDP c"
        ]
    );
    assert_eq!(m.top_via().unwrap().branch(), Some("z9hG4bK1"));
    let sent_by: Vec<String> = m.vias().into_iter().map(|v| v.sent_by).collect();
    assert_eq!(sent_by, ["a", "b:5061", "c"]);
}

#[test]
fn header_names_are_case_insensitive() {
    let bytes = sip(&[
        "OPTIONS sip:s@h SIP/2.0",
        "vIA: SIP/2.0/UDP h;branch=z9hG4bK-m",
        "FROM: <sip:a@b>;tag=1",
        "to: <sip:s@h>",
        "CALL-id: mixed",
        "cseq: 1 OPTIONS",
        "content-LENGTH: 0",
    ]);
    let m = parse(&bytes);
    assert_eq!(m.call_id(), Some("mixed"));
    assert_eq!(m.header("Call-Id"), Some("mixed"));
    assert_eq!(m.header("i"), Some("mixed"));
    assert_eq!(m.content_length(), Some(0));
    assert_eq!(m.headers[3].name, "CALL-id");
}

#[test]
fn binary_bodies_and_content_length() {
    let mut bytes = sip(&[
        "MESSAGE sip:s@h SIP/2.0",
        "Via: SIP/2.0/UDP h;branch=z9hG4bK-b",
        "From: <sip:a@b>;tag=1",
        "To: <sip:s@h>",
        "Call-ID: bin",
        "CSeq: 1 MESSAGE",
        "Content-Type: application/octet-stream",
        "Content-Length: 6",
    ]);
    let body = [0u8, 0xFF, b'\r', b'\n', 0x80, 7];
    bytes.extend_from_slice(&body);
    let m = parse(&bytes);
    assert_eq!(m.body, body);
    assert_eq!(m.to_bytes(), bytes);

    // RFC 3261 §18.3: bytes after the Content-Length body are dropped.
    bytes.extend_from_slice(b"trailing garbage");
    assert_eq!(parse(&bytes).body, body);

    // Without Content-Length (UDP) the body is the rest of the datagram.
    let mut m = parse(&bytes);
    m.headers.retain(|h| !h.is("l"));
    let reparsed = parse(&m.to_bytes());
    assert_eq!(reparsed.body, body);
}

#[test]
fn leading_empty_lines_and_bare_lf_are_tolerated() {
    let text = INVITE.join("\n") + "\n\n";
    let mut bytes = b"\r\n\r\n".to_vec();
    bytes.extend_from_slice(text.as_bytes());
    let m = parse(&bytes);
    assert_eq!(m.method(), Some("INVITE"));
    assert_eq!(m.to_bytes(), sip(INVITE));
}

#[rstest]
#[case::empty(b"", "empty message")]
#[case::only_crlfs(b"\r\n\r\n\r\n", "only empty lines, no start line")]
#[case::no_start_line_end(b"OPTIONS sip:a@b SIP/2.0", "line 1: the start line has no line end")]
#[case::garbage_start(
    b"HELLO\r\n\r\n",
    "line 1: request line `HELLO` is not `METHOD SP Request-URI SP SIP/2.0`"
)]
#[case::tab_separated(
    b"OPTIONS\tsip:a@b\tSIP/2.0\r\n\r\n",
    "is not `METHOD SP Request-URI SP SIP/2.0`"
)]
#[case::lower_method_ok_but_bad_version(
    b"options sip:a@b SIP/2.1\r\n\r\n",
    "line 1: unsupported SIP version `SIP/2.1`"
)]
#[case::status_699_fine_but_700(
    b"SIP/2.0 700 No\r\n\r\n",
    "line 1: status code 700 is outside 100-699"
)]
#[case::status_099(b"SIP/2.0 099 No\r\n\r\n", "line 1: status code 99 is outside 100-699")]
#[case::status_letters(
    b"SIP/2.0 2OO OK\r\n\r\n",
    "line 1: status code `2OO` is not three digits"
)]
#[case::status_without_space(
    b"SIP/2.0 200\r\n\r\n",
    "line 1: status line has no SP and reason phrase after the code"
)]
#[case::header_without_colon(
    b"OPTIONS sip:a@b SIP/2.0\r\nVia SIP/2.0/UDP h\r\n\r\n",
    "line 2: header line has no colon: `Via SIP/2.0/UDP h`"
)]
#[case::header_name_not_token(
    b"OPTIONS sip:a@b SIP/2.0\r\nVi a: x\r\n\r\n",
    "line 2: header name `Vi a` is not a token"
)]
#[case::non_utf8(
    b"OPTIONS sip:a@b SIP/2.0\r\nSubject: \xC3\x28\r\n\r\n",
    "line 2: header is not valid UTF-8 (byte 0xC3 at column 10)"
)]
#[case::non_utf8_start(
    b"OPTIONS sip:\xFF SIP/2.0\r\n\r\n",
    "line 1: start line is not valid UTF-8 (byte 0xFF at column 13)"
)]
fn broken_messages_are_rejected(#[case] bytes: &[u8], #[case] expected: &str) {
    let reason = reason(bytes);
    assert!(reason.contains(expected), "{reason}");
}

fn invite_with(replace: &str, by: Option<&str>) -> Vec<u8> {
    let lines: Vec<&str> = INVITE
        .iter()
        .filter_map(|line| {
            if line.starts_with(replace) {
                by
            } else {
                Some(*line)
            }
        })
        .collect();
    sip(&lines)
}

#[rstest]
#[case::missing_via("Via:", None, "missing mandatory header Via")]
#[case::missing_to("To:", None, "missing mandatory header To")]
#[case::missing_from("From:", None, "missing mandatory header From")]
#[case::missing_cseq("CSeq:", None, "missing mandatory header CSeq")]
#[case::missing_call_id("Call-ID:", None, "missing mandatory header Call-ID")]
#[case::cseq_mismatch(
    "CSeq:",
    Some("CSeq: 1 BYE"),
    "line 6: CSeq method BYE does not match the request method INVITE"
)]
#[case::cseq_lower_case("CSeq:", Some("CSeq: 1 invite"), "CSeq method invite does not match")]
#[case::cseq_without_method("CSeq:", Some("CSeq: 1"), "line 6: CSeq `1` is not `number method`")]
#[case::length_mismatch(
    "Content-Length:",
    Some("Content-Length: 5"),
    "the body has 0 bytes but Content-Length says 5"
)]
#[case::length_garbage(
    "Content-Length:",
    Some("l: five"),
    "line 9: Content-Length `five` is not a number"
)]
#[case::via_empty_branch(
    "Via:",
    Some("Via: SIP/2.0/UDP host;branch="),
    "line 2: Via `SIP/2.0/UDP host;branch=` parameter `branch=` has an empty value"
)]
fn header_defects_are_named(
    #[case] replace: &str,
    #[case] by: Option<&str>,
    #[case] expected: &str,
) {
    let bytes = invite_with(replace, by);
    let reason = reason(&bytes);
    assert!(reason.contains(expected), "{reason}");
}

#[test]
fn max_forwards_may_be_missing() {
    let m = parse(&invite_with("Max-Forwards:", None));
    assert_eq!(m.header("Max-Forwards"), None);
}

#[test]
fn errors_point_at_the_line() {
    let bytes = invite_with("CSeq:", Some("CSeq: x INVITE"));
    let err = Message::parse(&bytes).unwrap_err();
    let line_start = bytes.windows(5).position(|w| w == b"CSeq:").unwrap();
    assert_eq!(err.offset, line_start);
    assert_eq!(err.to_string(), err.reason);
}

/// Each file of `fixtures/sip/malformed/` is rejected; the reason is kept as a snapshot.
#[test]
fn malformed_corpus_is_rejected() {
    insta::glob!("../../fixtures/sip/malformed", "*.sip", |path| {
        let bytes = std::fs::read(path).unwrap();
        let err = Message::parse(&bytes).expect_err("must not parse");
        assert!(err.offset <= bytes.len());
        // The lenient summary copes with the same bytes.
        let _ = summarize_partial(&bytes);
        insta::assert_snapshot!(format!("{} (offset {})", err.reason, err.offset));
    });
}

/// Each file of `fixtures/sip/valid/` parses, is written back to the same message, and the
/// lenient summary agrees with the strict one.
#[rstest]
fn valid_corpus_parses_and_round_trips(
    #[files("../fixtures/sip/valid/*.sip")] path: std::path::PathBuf,
) {
    let shown = path.strip_prefix(root()).unwrap().display().to_string();
    let bytes = std::fs::read(&path).unwrap();
    let message = Message::parse(&bytes).unwrap_or_else(|err| panic!("{shown}: {err}"));
    let written = message.to_bytes();
    assert_eq!(Message::parse(&written).as_ref(), Ok(&message), "{shown}");
    assert_eq!(summarize_partial(&bytes), message.summary(), "{shown}");
    assert!(message.summary().branch.is_some(), "{shown}");
    if let Some(length) = message.content_length() {
        assert_eq!(message.body.len(), length, "{shown}");
    }
}

#[test]
fn valid_corpus_details() {
    let read = |name: &str| {
        let bytes = std::fs::read(root().join("fixtures/sip/valid").join(name)).unwrap();
        parse(&bytes)
    };
    let invite = read("invite-sdp.sip");
    assert!(invite.body.starts_with(b"v=0\r\n"));
    assert_eq!(invite.headers("Allow").len(), 12);
    assert_eq!(invite.header("Supported"), Some("timer"));
    assert_eq!(read("503-retry-after.sip").retry_after(), Some(120));
    assert_eq!(read("100-trying.sip").to_tag(), None);
    let notify = read("compact-folded.sip");
    assert_eq!(notify.headers("Via").len(), 2);
    assert_eq!(
        notify.header("Subscription-State"),
        Some("active; expires=3600")
    );
    assert_eq!(notify.to_tag(), Some("r1x9"));
    assert_eq!(notify.header("Event"), Some("message-summary"));
    assert_eq!(notify.body, b"Messages-Waiting: no\r\n");
}

/// xorshift64: deterministic, and no dependency for it.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n.max(1) as u64).unwrap()
    }
}

/// Bytes that often matter to a SIP parser.
const INTERESTING: &[u8] = b"\r\n \t:;,<>\"\\=@/0123456789\x00\x7f\x80\xc3\xff";

fn mutate(rng: &mut Rng, bytes: &mut Vec<u8>) {
    for _ in 0..=rng.below(4) {
        let at = rng.below(bytes.len() + 1);
        let byte = if rng.below(2) == 0 {
            INTERESTING[rng.below(INTERESTING.len())]
        } else {
            (rng.next() & 0xFF) as u8
        };
        match rng.below(6) {
            0 if at < bytes.len() => bytes[at] = byte,
            1 => bytes.insert(at, byte),
            2 if at < bytes.len() => {
                bytes.remove(at);
            }
            3 => bytes.truncate(at),
            4 => {
                // Duplicate a stretch, as a confused stack might.
                let end = (at + rng.below(40)).min(bytes.len());
                let stretch = bytes[at..end].to_vec();
                let to = rng.below(bytes.len() + 1);
                bytes.splice(to..to, stretch);
            }
            _ if at < bytes.len() => bytes[at] ^= 1 << rng.below(8),
            _ => {}
        }
    }
}

/// Thousands of mutated messages: nothing panics, and whatever parses is written back to the
/// same message.
#[test]
fn mutations_never_panic() {
    let mut seeds: Vec<Vec<u8>> = [INVITE, REGISTER, OK, COMPACT]
        .iter()
        .map(|lines| sip(lines))
        .collect();
    for entry in std::fs::read_dir(root().join("fixtures/sip/valid")).unwrap() {
        seeds.push(std::fs::read(entry.unwrap().path()).unwrap());
    }
    let mut rng = Rng(0x5EED_2026_0000_0001);
    let mut parsed = 0;
    for round in 0..6000 {
        let mut bytes = seeds[round % seeds.len()].clone();
        mutate(&mut rng, &mut bytes);
        let _ = summarize_partial(&bytes);
        match Message::parse(&bytes) {
            Ok(message) => {
                parsed += 1;
                let _ = message.summary();
                let _ = (message.top_via(), message.cseq(), message.from_tag());
                let again = Message::parse(&message.to_bytes());
                assert_eq!(again.as_ref(), Ok(&message), "round {round}: {bytes:?}");
            }
            Err(err) => assert!(err.offset <= bytes.len(), "round {round}: {err}"),
        }
        let mut framer = StreamFramer::with_limits(512, 512);
        let cut = rng.below(bytes.len() + 1);
        framer.push(&bytes[..cut]);
        while framer.next_message().is_some() {}
        framer.push(&bytes[cut..]);
        framer.push(b"\r\n\r\n");
        while framer.next_message().is_some() {}
    }
    // The mutations leave enough intact to exercise the accepting paths too.
    assert!(parsed > 300, "only {parsed} mutated messages parsed");
}

fn two_messages() -> (Vec<u8>, Vec<u8>) {
    let request = MessageBuilder::request("MESSAGE", "sip:s@h")
        .header("Via", "SIP/2.0/TCP h;branch=z9hG4bK-t1")
        .header("From", "<sip:a@b>;tag=1")
        .header("To", "<sip:s@h>")
        .header("Call-ID", "tcp-1")
        .header("CSeq", "1 MESSAGE")
        .body(b"hello\r\n\r\nworld".to_vec(), "text/plain")
        .build();
    let answer = response_to(&parse(&request.to_bytes()), 200, "OK");
    (request.to_bytes(), answer.to_bytes())
}

fn drain(framer: &mut StreamFramer, out: &mut Vec<Vec<u8>>) {
    while let Some(next) = framer.next_message() {
        let (raw, message) = next.unwrap();
        assert_eq!(message.to_bytes(), raw);
        out.push(raw);
    }
}

#[test]
fn framing_survives_every_split() {
    let (first, second) = two_messages();
    let stream = [first.clone(), second.clone()].concat();
    for cut in 0..=stream.len() {
        let mut framer = StreamFramer::new();
        let mut out = Vec::new();
        framer.push(&stream[..cut]);
        drain(&mut framer, &mut out);
        framer.push(&stream[cut..]);
        drain(&mut framer, &mut out);
        assert_eq!(out, vec![first.clone(), second.clone()], "cut at {cut}");
        assert_eq!(framer.buffered(), 0);
    }
    // One byte at a time.
    let mut framer = StreamFramer::new();
    let mut out = Vec::new();
    for byte in &stream {
        framer.push(std::slice::from_ref(byte));
        drain(&mut framer, &mut out);
    }
    assert_eq!(out, vec![first, second]);
}

#[test]
fn keep_alives_are_skipped() {
    let (first, second) = two_messages();
    let stream = [
        b"\r\n\r\n".as_slice(),
        &first,
        b"\r\n",
        b"\r\n\r\n",
        &second,
        b"\r\n\r\n",
    ]
    .concat();
    let mut framer = StreamFramer::new();
    let mut out = Vec::new();
    framer.push(&stream);
    drain(&mut framer, &mut out);
    assert_eq!(out, vec![first, second]);
    assert_eq!(framer.buffered(), 0);
    assert!(!framer.is_broken());
}

#[test]
fn a_malformed_message_with_a_length_does_not_break_the_stream() {
    let (first, second) = two_messages();
    let bad = sip(&[
        "OPTIONS sip:s@h SIP/2.0",
        "Via: broken",
        "Content-Length: 0",
    ]);
    let mut framer = StreamFramer::new();
    framer.push(&[bad.clone(), first.clone()].concat());
    match framer.next_message() {
        Some(Err(err @ FramingError::Malformed { .. })) => {
            assert!(!err.is_fatal());
            assert_eq!(err.raw(), bad);
            assert!(err.to_string().starts_with("line 2: Via `broken`"), "{err}");
        }
        other => panic!("{other:?}"),
    }
    let mut out = Vec::new();
    framer.push(&second);
    drain(&mut framer, &mut out);
    assert_eq!(out, vec![first, second]);
}

#[test]
fn a_message_without_content_length_ends_the_stream() {
    let head = sip(&[
        "OPTIONS sip:s@h SIP/2.0",
        "Via: SIP/2.0/TCP h;branch=z9hG4bK-n",
        "From: <sip:a@b>;tag=1",
        "To: <sip:s@h>",
        "Call-ID: no-length",
        "CSeq: 1 OPTIONS",
    ]);
    let (first, _) = two_messages();
    let mut framer = StreamFramer::new();
    framer.push(&[head.clone(), b"body?".to_vec(), first.clone()].concat());
    match framer.next_message() {
        Some(Err(err @ FramingError::MissingContentLength { .. })) => {
            assert!(err.is_fatal());
            assert_eq!(err.raw(), head, "the header block, up to its empty line");
        }
        other => panic!("{other:?}"),
    }
    assert!(framer.is_broken());
    // What came after the header block is never framed, but kept to be recorded.
    assert!(framer.next_message().is_none());
    assert_eq!(framer.take_unframed(), [b"body?".to_vec(), first].concat());
    assert_eq!(framer.buffered(), 0);
    framer.push(b"more");
    assert!(framer.next_message().is_none());
    assert_eq!(framer.buffered(), 0);
}

#[test]
fn oversized_headers_end_the_stream() {
    let mut framer = StreamFramer::new();
    let line = b"X-Garbage: 0123456789012345678901234567890123456789\r\n";
    framer.push(b"OPTIONS sip:s@h SIP/2.0\r\n");
    let mut result = None;
    for _ in 0..2000 {
        framer.push(line);
        if let Some(next) = framer.next_message() {
            result = Some(next);
            break;
        }
    }
    match result {
        Some(Err(FramingError::HeaderTooLarge { limit, raw })) => {
            assert_eq!(limit, 64 * 1024);
            assert!(raw.len() > limit && raw.len() <= limit + line.len());
        }
        other => panic!("{other:?}"),
    }
    assert!(framer.is_broken());

    // A complete header block above the limit fails the same way.
    let mut framer = StreamFramer::with_limits(100, 100);
    let (first, _) = two_messages();
    framer.push(&first);
    assert!(matches!(
        framer.next_message(),
        Some(Err(FramingError::HeaderTooLarge { limit: 100, .. }))
    ));
}

#[test]
fn oversized_bodies_end_the_stream() {
    let mut framer = StreamFramer::with_limits(1024, 10);
    let (first, _) = two_messages();
    framer.push(&first);
    assert!(matches!(
        framer.next_message(),
        Some(Err(FramingError::BodyTooLarge {
            length: 14,
            limit: 10,
            ..
        }))
    ));
}

#[test]
fn built_messages_are_exact() {
    let m = Message {
        start: StartLine::Response {
            version: "SIP/2.0".into(),
            status: 503,
            reason: "Service Unavailable".into(),
        },
        headers: vec![Header::new("Retry-After", "30"), Header::new("l", "0")],
        body: Vec::new(),
    };
    assert_eq!(
        m.to_bytes(),
        b"SIP/2.0 503 Service Unavailable\r\nRetry-After: 30\r\nl: 0\r\n\r\n"
    );
}

/// An independent parser (ezk-sip-types) reads the valid corpus the same way: start line,
/// Call-ID, CSeq and the Vias.
#[rstest]
fn ezk_sip_types_agrees(#[files("../fixtures/sip/valid/*.sip")] path: std::path::PathBuf) {
    use ezk_sip_types::header::typed::{CSeq, CallID, Via as EzkVia};
    use ezk_sip_types::msg::{MessageLine, PullParser};
    use ezk_sip_types::{Headers, Name};

    let bytes = std::fs::read(&path).unwrap();
    let ours = parse(&bytes);
    let mut lines =
        PullParser::new(&bytes, 0).map(|line| std::str::from_utf8(line.unwrap()).unwrap());
    let start: MessageLine = lines.next().unwrap().parse().unwrap();
    match start {
        MessageLine::Request(line) => {
            assert_eq!(Some(line.method.to_string().as_str()), ours.method())
        }
        MessageLine::Response(line) => assert_eq!(Some(line.code.into_u16()), ours.status()),
    }
    let mut headers = Headers::new();
    for line in lines {
        let (name, value) = line.split_once(':').unwrap();
        headers.insert(Name::from(name.trim().to_owned()), value.trim().to_owned());
    }
    let call_id: CallID = headers.get_named().unwrap();
    assert_eq!(Some(call_id.0.as_ref()), ours.call_id());
    let cseq: CSeq = headers.get_named().unwrap();
    assert_eq!(Some((cseq.cseq, cseq.method.to_string())), ours.cseq());
    let vias: Vec<EzkVia> = headers.get_named().unwrap();
    let branches: Vec<Option<String>> = vias
        .iter()
        .map(|via| via.params.get_val("branch").map(|b| b.to_string()))
        .collect();
    let our_branches: Vec<Option<String>> = ours
        .vias()
        .iter()
        .map(|via| via.branch().map(str::to_owned))
        .collect();
    assert_eq!(branches, our_branches);
}
