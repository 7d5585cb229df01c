//! Fuzz entry points: one function per parser that takes outside input, each taking the
//! fuzzer's bytes. The targets in `fuzz/` call these, and `tests/fuzz_corpus.rs` replays every
//! corpus file and crash reproducer through them on the stable toolchain.
//!
//! Each one panics only when a property srvlab promises does not hold: no input makes the code
//! under test panic, and where two ways of feeding the same bytes exist (a TCP stream in one
//! piece or in many), they give the same result.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hickory_server::proto::op::{Message as DnsMessage, MessageType};
use hickory_server::proto::serialize::binary::{BinDecodable, BinDecoder};

use crate::dns::InProcess;
use crate::model::FileKind;
use crate::model::case::Case;
use crate::model::diag::{Diagnostics, SourceFile};
use crate::model::lab::Lab;
use crate::model::profile::Profile;
use crate::model::zone::ZoneSet;
use crate::servers::client_hello;
use crate::sip::{FramingError, Message, StreamFramer, summarize_partial};
use crate::timeline::{EventKind, Timeline, Transport};

/// A fuzz target's entry point.
pub type Target = fn(&[u8]);

/// Every target by the name of its folder under `fuzz/corpus/` and `fuzz/regressions/`.
pub const TARGETS: [(&str, Target); 8] = [
    ("sip_message", sip_message),
    ("sip_framing", sip_framing),
    ("client_hello", client_hello),
    ("dns_query", dns_query),
    ("zone_file", zone_file),
    ("case_file", case_file),
    ("profile_file", profile_file),
    ("lab_file", lab_file),
];

/// A datagram or a framed message: the strict parser, every accessor, the lenient summary.
/// A message that parses is written out again and parses to itself.
pub fn sip_message(data: &[u8]) {
    let partial = summarize_partial(data);
    let Ok(message) = Message::parse(data) else {
        return;
    };
    read_everything(&message);
    let again = Message::parse(&message.to_bytes())
        .unwrap_or_else(|err| panic!("a parsed message written out does not parse: {err}"));
    assert_eq!(
        again, message,
        "a parsed message written out parses differently"
    );
    let _ = partial;
}

fn read_everything(message: &Message) {
    let _ = (message.method(), message.status(), message.reason());
    let _ = (message.call_id(), message.cseq(), message.expires());
    let _ = (message.from_tag(), message.to_tag(), message.retry_after());
    let _ = (
        message.content_length(),
        message.top_via(),
        message.summary(),
    );
    for via in message.vias() {
        let _ = (via.branch(), via.to_string());
    }
}

/// A TCP stream: `[mode, n, n chunk lengths…, stream…]`. The stream is pushed whole and in the
/// chunks the lengths give (cycled; none: one byte at a time); both must yield the same
/// messages and errors. Mode bit 0 picks tiny limits so that the limits are reached.
pub fn sip_framing(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Some((&n, rest)) = rest.split_first() else {
        return;
    };
    let (lengths, stream) = rest.split_at(usize::from(n % 16).min(rest.len()));
    let framer = || {
        if mode & 1 == 1 {
            StreamFramer::with_limits(48, 32)
        } else {
            StreamFramer::new()
        }
    };

    let mut whole = framer();
    whole.push(stream);
    let from_whole = drain(&mut whole);

    let mut split = framer();
    let mut from_split = Vec::new();
    let mut at = 0;
    let mut sizes = lengths.iter().map(|&l| usize::from(l) + 1).cycle();
    while at < stream.len() {
        let size = sizes.next().unwrap_or(1).min(stream.len() - at);
        split.push(&stream[at..at + size]);
        at += size;
        from_split.extend(drain(&mut split));
    }

    assert_eq!(
        from_split, from_whole,
        "the same stream split differently gives other messages"
    );
    assert_eq!(split.is_broken(), whole.is_broken());
    // What waits for more bytes is the same however they came; after a fatal error the framer
    // keeps only what came with the broken header block (later pushes are ignored, the
    // connection is closed), which depends on the reads.
    if !whole.is_broken() {
        assert_eq!(split.buffered(), whole.buffered());
    }
}

/// What a framer yields until it needs more bytes, comparable across splits: a header block
/// that grew too large holds whatever had arrived, so only its kind is compared.
fn drain(framer: &mut StreamFramer) -> Vec<Result<(Vec<u8>, Message), FramingError>> {
    let mut out = Vec::new();
    while let Some(next) = framer.next_message() {
        if let Ok((_, message)) = &next {
            read_everything(message);
        }
        out.push(match next {
            Err(FramingError::HeaderTooLarge { limit, .. }) => {
                Err(FramingError::HeaderTooLarge { limit, raw: vec![] })
            }
            other => other,
        });
    }
    out
}

/// The first bytes on a TLS connection, as the no-shared-cipher server reads them: it asks
/// again after every read, and the first answer must be the answer for all the bytes.
/// `[n, n chunk lengths…, bytes…]` as for [`sip_framing`].
pub fn client_hello(data: &[u8]) {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let (lengths, bytes) = rest.split_at(usize::from(n % 16).min(rest.len()));
    if bytes.len() > client_hello::LIMIT {
        // Past the limit the answer depends on where the reads stopped, by design.
        return;
    }
    let whole = client_hello::read(bytes);
    if let Some(Ok(suites)) = &whole {
        let _ = client_hello::suite_names(suites);
    }
    let mut at = 0;
    let mut sizes = lengths.iter().map(|&l| usize::from(l) + 1).cycle();
    let first = loop {
        if let Some(answer) = client_hello::read(&bytes[..at]) {
            break Some(answer);
        }
        if at == bytes.len() {
            break None;
        }
        at = (at + sizes.next().unwrap_or(1)).min(bytes.len());
    };
    assert_eq!(first, whole, "the answer depends on how the bytes arrived");
}

/// A query's bytes through the DNS server without sockets (`[flags, message…]`; flags bit 0:
/// TCP): hickory's decode, srvlab's handler with its faults and additional section, hickory's
/// encoding. An answer answers the query, fits the UDP size the client allows, and is on the
/// timeline byte for byte as sent.
pub fn dns_query(data: &[u8]) {
    let Some((&flags, query)) = data.split_first() else {
        return;
    };
    let transport = if flags & 1 == 1 {
        Transport::Tcp
    } else {
        Transport::Udp
    };
    let timeline = Timeline::new();
    let server = FUZZ_SERVER.with(|server| server.restarted(timeline.clone()));
    let answer = runtime().block_on(server.answer(query.to_vec(), CLIENT, transport));

    let events = timeline.events();
    let recorded = events.iter().find_map(|e| match &e.kind {
        EventKind::DnsAnswer(answer) => Some(answer),
        _ => None,
    });
    let Some(answer) = answer else {
        return;
    };
    let sent = DnsMessage::from_vec(&answer)
        .unwrap_or_else(|err| panic!("the server sent an answer that does not decode: {err}"));
    assert_eq!(sent.metadata.message_type, MessageType::Response);
    assert_eq!(sent.metadata.id, u16::from_be_bytes([query[0], query[1]]));
    if transport == Transport::Udp {
        let request = DnsMessage::read(&mut BinDecoder::new(query)).ok();
        // The client's EDNS size (512 without), never above the server's own maximum.
        let asked = request.and_then(|r| r.edns.map(|e| e.max_payload()));
        let allowed = usize::from(crate::dns::DnsLimits::default().udp_answer_max(asked));
        assert!(
            answer.len() <= allowed,
            "a UDP answer of {} bytes to a client that allows {allowed}",
            answer.len()
        );
    }
    // Every message the server answers is on the timeline with the bytes it sent: an answer,
    // or the FORMERR of a message that did not decode (recorded as dns_malformed).
    let malformed = events.iter().find_map(|e| match &e.kind {
        EventKind::DnsMalformed(m) => Some(&m.answer),
        _ => None,
    });
    assert!(
        recorded.is_some() || malformed == Some(&answer),
        "an answer went out that the timeline does not hold"
    );
    if let Some(recorded) = recorded {
        assert!(
            recorded.raw == answer,
            "the timeline's answer ({} bytes) is not the answer sent ({} bytes)",
            recorded.raw.len(),
            answer.len()
        );
    }
}

const SERVER: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 93, 53)),
    53,
);
const CLIENT: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 93, 10)),
    5060,
);

thread_local! {
    /// Built once: each input gets it restarted, with fresh faults and an empty timeline.
    static FUZZ_SERVER: InProcess = InProcess::new(fuzz_zones(), SERVER, Timeline::new())
        .unwrap_or_else(|err| panic!("the fuzz zones do not load into the server: {err}"));
}

/// One zone with everything the handler treats apart: NAPTR, many SRV targets (answers
/// longer than 512 and 1232 bytes), A/AAAA, a CNAME, each fault kind, and a second zone
/// without additional records.
fn fuzz_zones() -> ZoneSet {
    let mut many = String::new();
    for i in 0..60 {
        many.push_str(&format!(
            "- SRV: {{name: _sip._tcp, priority: {}, weight: {i}, port: 5060, target: s{i}}}\n- A: {{name: s{i}, address: 127.0.93.{}}}\n- AAAA: {{name: s{i}, address: \"fd00::{i}\"}}\n",
            i % 3,
            i + 1
        ));
    }
    let fuzz = format!(
        "origin: fuzz.test.\nttl: 300\nadditional: all\nrecords:\n\
             - NAPTR: {{name: \"@\", order: 1, preference: 10, flags: s, service: SIP+D2U, regexp: \"\", replacement: _sip._udp}}\n\
             - NAPTR: {{name: \"@\", order: 2, preference: 10, flags: s, service: SIP+D2T, regexp: \"\", replacement: _sip._tcp}}\n\
             - SRV: {{name: _sip._udp, priority: 1, weight: 0, port: 5060, target: s1}}\n\
             - SRV: {{name: none, priority: 0, weight: 0, port: 0, target: .}}\n\
             - CNAME: {{name: alias, target: s2}}\n{many}\
             faults:\n\
             - {{name: timeout, fault: timeout}}\n\
             - {{name: servfail, fault: servfail}}\n\
             - {{name: _sip._udp, type: SRV, fault: truncate, times: 1}}\n\
             - {{name: s3, type: A, fault: timeout, times: 1}}\n"
    );
    let other = "origin: other.test.\nttl: 60\nadditional: none\nrecords:\n\
             - SRV: {name: _sip._udp, priority: 1, weight: 1, port: 5060, target: host}\n\
             - A: {name: host, address: 127.0.93.99}\n";
    let files = [
        SourceFile::new("fuzz.test.yaml", fuzz),
        SourceFile::new("other.test.yaml", other),
    ];
    let (zones, diagnostics) = ZoneSet::parse(&files);
    zones.unwrap_or_else(|| panic!("the fuzz zones have errors:\n{diagnostics}"))
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|err| panic!("no tokio runtime for the DNS target: {err}"))
    })
}

/// A zone file, as `srvlab validate` and `run` load it.
pub fn zone_file(data: &[u8]) {
    load(data, "fuzz/zone.yaml", |file| {
        let (zones, found) = ZoneSet::parse(std::slice::from_ref(file));
        (zones.is_some(), found)
    });
}

/// A case file; relative zone paths start in `fixtures/cases/netns/`, so `../../zones/…`
/// reaches the fixture zones.
pub fn case_file(data: &[u8]) {
    let base = fixtures().join("cases/netns");
    load(data, "fuzz/case.yaml", |file| {
        let (case, found) = Case::parse(file, &base);
        (case.is_some(), found)
    });
}

/// A device profile.
pub fn profile_file(data: &[u8]) {
    load(data, "fuzz/profile.yaml", |file| {
        let (profile, found) = Profile::parse(file);
        (profile.is_some(), found)
    });
}

/// A lab file and the device profile it names, as `srvlab validate` checks it (relative paths
/// start in `fixtures/labs/`).
pub fn lab_file(data: &[u8]) {
    let base = fixtures().join("labs");
    load(data, "fuzz/lab.yaml", |file| {
        let (lab, mut found) = Lab::parse(file, &base);
        if let Some(lab) = &lab {
            found.extend(lab.profile().1);
        }
        (lab.is_some(), found)
    });
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

/// Feeds bytes to a loader as a file's content: the result is a value or errors (never a
/// missing value without a reason, never a value with errors), and every diagnostic about the
/// file points at one of its lines.
fn load(data: &[u8], path: &str, loader: impl FnOnce(&Arc<SourceFile>) -> (bool, Diagnostics)) {
    let file = match SourceFile::from_bytes(path, data.to_vec()) {
        Ok(file) => file,
        Err(diagnostic) => {
            assert!(diagnostic.is_error());
            let _ = diagnostic.to_string();
            return;
        }
    };
    let _ = FileKind::of(&file.text);
    let (loaded, diagnostics) = loader(&file);
    assert_eq!(
        loaded,
        !diagnostics.has_errors(),
        "loaded: {loaded}, diagnostics:\n{diagnostics}"
    );
    let lines = crate::model::diag::lines(&file.text).count() as u64;
    for diagnostic in diagnostics
        .0
        .iter()
        .filter(|d| Arc::ptr_eq(&d.span.file, &file))
    {
        let (line, column) = (diagnostic.span.line, diagnostic.span.column);
        assert!(
            line <= lines + 1,
            "a diagnostic on line {line} of a file of {lines} lines: {diagnostic}"
        );
        if let Some(text) = file.line(line) {
            let width = text.chars().count() as u64;
            assert!(
                column <= width + 1,
                "a diagnostic at column {column} of a line of {width} characters: {diagnostic}"
            );
        }
    }
    let _ = diagnostics.to_string();
}
