//! The strict parser for one complete SIP message (a UDP datagram, or one message a stream
//! framer cut out): RFC 3261 §7 and the §25 grammar where a device could get it wrong.

use super::message::{Header, Message, StartLine};
use super::syntax::{
    Line, Lines, WSP, canonical_name, digits, is_token, parse_cseq, shown, split_outside,
    starts_with_wsp,
};
use super::via::Via;

/// Why bytes are not a SIP message, and where (byte offset into the input). The reason names
/// the line where one is to blame.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct ParseError {
    pub reason: String,
    pub offset: usize,
}

impl ParseError {
    fn new(offset: usize, reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            offset,
        }
    }

    fn on(line: &Line<'_>, reason: impl std::fmt::Display) -> Self {
        Self::new(line.start, format!("line {}: {reason}", line.number))
    }
}

/// Headers every message must carry (RFC 3261 §8.1.1 for requests; a response copies them,
/// §8.2.6.2). Max-Forwards is required in requests too but left out on purpose: some stacks
/// omit it, and its absence does not hinder a test.
const MANDATORY: [&str; 5] = ["To", "From", "CSeq", "Call-ID", "Via"];

/// Headers that may appear only once (RFC 3261 §7.3: only list headers may repeat).
const SINGLE: [&str; 7] = [
    "To",
    "From",
    "CSeq",
    "Call-ID",
    "Max-Forwards",
    "Content-Length",
    "Content-Type",
];

/// A header with where it came from, while parsing.
struct Located {
    header: Header,
    line: usize,
    offset: usize,
}

impl Located {
    fn error(&self, reason: impl std::fmt::Display) -> ParseError {
        ParseError::new(self.offset, format!("line {}: {reason}", self.line))
    }
}

impl Message {
    /// Parses exactly one complete message. Extra bytes after a Content-Length body are dropped
    /// (RFC 3261 §18.3); without Content-Length the body is the rest of the input.
    pub fn parse(bytes: &[u8]) -> Result<Self, ParseError> {
        if bytes.is_empty() {
            return Err(ParseError::new(0, "empty message"));
        }
        let mut lines = Lines::new(bytes);
        // RFC 3261 §7.5: empty lines before the start line are ignored.
        let first = loop {
            match lines.next() {
                Some(line) if line.text.is_empty() && line.terminated => continue,
                Some(line) => break line,
                None => {
                    return Err(ParseError::new(
                        bytes.len(),
                        "only empty lines, no start line",
                    ));
                }
            }
        };
        if !first.terminated {
            return Err(ParseError::on(&first, "the start line has no line end"));
        }
        let start = parse_start_line(&first)?;

        let mut headers: Vec<Located> = Vec::new();
        let body_start = loop {
            let Some(line) = lines.next() else {
                return Err(ParseError::new(
                    bytes.len(),
                    "the headers do not end with an empty line (truncated?)",
                ));
            };
            if !line.terminated {
                return Err(ParseError::on(
                    &line,
                    "the headers do not end with an empty line (truncated?)",
                ));
            }
            if line.text.is_empty() {
                break line.end;
            }
            let text = checked_text(&line, "header")?;
            if starts_with_wsp(line.text) {
                // Folding (RFC 3261 §7.3.1): the line break and white space become one space.
                let Some(last) = headers.last_mut() else {
                    return Err(ParseError::on(&line, "continuation line before any header"));
                };
                let more = text.trim_matches(WSP);
                if !more.is_empty() {
                    if !last.header.value.is_empty() {
                        last.header.value.push(' ');
                    }
                    last.header.value.push_str(more);
                }
                continue;
            }
            let Some((name, value)) = text.split_once(':') else {
                return Err(ParseError::on(
                    &line,
                    format!("header line has no colon: `{}`", shown(text)),
                ));
            };
            // HCOLON allows white space before the colon; it is not part of the name.
            let name = name.trim_end_matches(WSP);
            if name.is_empty() {
                return Err(ParseError::on(&line, "header name is empty"));
            }
            if !is_token(name) {
                return Err(ParseError::on(
                    &line,
                    format!("header name `{}` is not a token", shown(name)),
                ));
            }
            headers.push(Located {
                header: Header::new(name, value.trim_matches(WSP)),
                line: line.number,
                offset: line.start,
            });
        };

        check_headers(&start, &headers, body_start)?;

        let mut body = bytes.get(body_start..).unwrap_or_default().to_vec();
        if let Some(length) = find(&headers, "Content-Length") {
            let Some(expected) = digits::<usize>(&length.header.value) else {
                return Err(length.error(format!(
                    "Content-Length `{}` is not a number",
                    shown(&length.header.value)
                )));
            };
            if body.len() < expected {
                return Err(ParseError::new(
                    body_start,
                    format!(
                        "the body has {} bytes but Content-Length says {expected}",
                        body.len()
                    ),
                ));
            }
            body.truncate(expected);
        }

        Ok(Message {
            start,
            headers: headers.into_iter().map(|l| l.header).collect(),
            body,
        })
    }
}

/// A line as text: valid UTF-8, no control characters but HTAB.
fn checked_text<'a>(line: &Line<'a>, what: &str) -> Result<&'a str, ParseError> {
    let text = std::str::from_utf8(line.text).map_err(|err| {
        let at = err.valid_up_to();
        let byte = line.text.get(at).copied().unwrap_or_default();
        ParseError::new(
            line.start + at,
            format!(
                "line {}: {what} is not valid UTF-8 (byte 0x{byte:02X} at column {})",
                line.number,
                at + 1
            ),
        )
    })?;
    if let Some(at) = text
        .bytes()
        .position(|b| (b < 0x20 && b != b'\t') || b == 0x7F)
    {
        let byte = line.text.get(at).copied().unwrap_or_default();
        let reason = if byte == b'\r' {
            format!("a CR without LF inside the {what} at column {}", at + 1)
        } else {
            format!(
                "control character 0x{byte:02X} in the {what} at column {}",
                at + 1
            )
        };
        return Err(ParseError::new(
            line.start + at,
            format!("line {}: {reason}", line.number),
        ));
    }
    Ok(text)
}

fn parse_start_line(line: &Line<'_>) -> Result<StartLine, ParseError> {
    let text = checked_text(line, "start line")?;
    let looks_like_response = text
        .get(..4)
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case("SIP/"));
    if looks_like_response {
        parse_status_line(line, text)
    } else {
        parse_request_line(line, text)
    }
}

fn check_version(line: &Line<'_>, version: &str) -> Result<(), ParseError> {
    // RFC 3261 §7.1: the version string is case-insensitive.
    if version.eq_ignore_ascii_case("SIP/2.0") {
        Ok(())
    } else {
        Err(ParseError::on(
            line,
            format!("unsupported SIP version `{}`", shown(version)),
        ))
    }
}

/// `Method SP Request-URI SP SIP-Version`: single spaces, nothing else.
fn parse_request_line(line: &Line<'_>, text: &str) -> Result<StartLine, ParseError> {
    let parts: Vec<&str> = text.split(' ').collect();
    let [method, uri, version] = parts.as_slice() else {
        return Err(ParseError::on(
            line,
            format!(
                "request line `{}` is not `METHOD SP Request-URI SP SIP/2.0`",
                shown(text)
            ),
        ));
    };
    if method.is_empty() || uri.is_empty() || version.is_empty() {
        return Err(ParseError::on(
            line,
            format!(
                "request line `{}` is not `METHOD SP Request-URI SP SIP/2.0`",
                shown(text)
            ),
        ));
    }
    if !is_token(method) {
        return Err(ParseError::on(
            line,
            format!("method `{}` is not a token", shown(method)),
        ));
    }
    if !has_scheme(uri) {
        return Err(ParseError::on(
            line,
            format!("Request-URI `{}` is not an absolute URI", shown(uri)),
        ));
    }
    check_version(line, version)?;
    Ok(StartLine::Request {
        method: (*method).to_owned(),
        uri: (*uri).to_owned(),
        version: (*version).to_owned(),
    })
}

/// `scheme ":" something` with `scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )`, and no
/// white space (a tab would otherwise slip through the split at SP).
fn has_scheme(uri: &str) -> bool {
    let Some((scheme, rest)) = uri.split_once(':') else {
        return false;
    };
    let mut chars = scheme.bytes();
    chars.next().is_some_and(|b| b.is_ascii_alphabetic())
        && chars.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        && !rest.is_empty()
        && !uri.contains('\t')
}

/// `SIP-Version SP Status-Code SP Reason-Phrase`; the reason may be empty, its SP may not.
fn parse_status_line(line: &Line<'_>, text: &str) -> Result<StartLine, ParseError> {
    let Some((version, rest)) = text.split_once(' ') else {
        return Err(ParseError::on(
            line,
            format!(
                "status line `{}` is not `SIP/2.0 SP code SP reason`",
                shown(text)
            ),
        ));
    };
    check_version(line, version)?;
    let (code, reason) = match rest.split_once(' ') {
        Some((code, reason)) => (code, Some(reason)),
        None => (rest, None),
    };
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError::on(
            line,
            format!("status code `{}` is not three digits", shown(code)),
        ));
    }
    let status = digits::<u16>(code).unwrap_or_default();
    if !(100..=699).contains(&status) {
        return Err(ParseError::on(
            line,
            format!("status code {status} is outside 100-699"),
        ));
    }
    let Some(reason) = reason else {
        return Err(ParseError::on(
            line,
            "status line has no SP and reason phrase after the code",
        ));
    };
    Ok(StartLine::Response {
        version: version.to_owned(),
        status,
        reason: reason.to_owned(),
    })
}

fn find<'a>(headers: &'a [Located], name: &str) -> Option<&'a Located> {
    headers.iter().find(|l| l.header.is(name))
}

/// What RFC 3261 asks of the headers as a whole, in header order, then the mandatory ones.
fn check_headers(
    start: &StartLine,
    headers: &[Located],
    body_start: usize,
) -> Result<(), ParseError> {
    for (index, located) in headers.iter().enumerate() {
        let value = located.header.value.as_str();
        let canonical = canonical_name(&located.header.name);
        if let Some(single) = SINGLE.iter().find(|s| located.header.is(s))
            && headers
                .get(..index)
                .unwrap_or_default()
                .iter()
                .any(|earlier| earlier.header.is(single))
        {
            return Err(located.error(format!("second {single} header ({single} may appear once)")));
        }
        match canonical.as_str() {
            "via" => {
                for element in split_outside(value, b',') {
                    Via::parse(element).map_err(|why| {
                        located.error(format!("Via `{}` {why}", shown(element.trim_matches(WSP))))
                    })?;
                }
            }
            "cseq" => {
                let (_, method) = parse_cseq(value)
                    .map_err(|why| located.error(format!("CSeq `{}` {why}", shown(value))))?;
                if let StartLine::Request {
                    method: request_method,
                    ..
                } = start
                    && method != request_method
                {
                    return Err(located.error(format!(
                        "CSeq method {} does not match the request method {}",
                        shown(method),
                        shown(request_method)
                    )));
                }
            }
            "call-id" if value.is_empty() => return Err(located.error("Call-ID is empty")),
            "call-id" if value.contains(WSP) => {
                return Err(located.error(format!("Call-ID `{}` has white space", shown(value))));
            }
            "from" | "to" if !is_address(value) => {
                let name = if canonical == "from" { "From" } else { "To" };
                return Err(located.error(format!(
                    "{name} `{}` is not a name-addr or addr-spec",
                    shown(value)
                )));
            }
            "max-forwards" if digits::<u32>(value).is_none() => {
                return Err(
                    located.error(format!("Max-Forwards `{}` is not a number", shown(value)))
                );
            }
            _ => {}
        }
    }
    for name in MANDATORY {
        if find(headers, name).is_none() {
            return Err(ParseError::new(
                body_start,
                format!("missing mandatory header {name}"),
            ));
        }
    }
    Ok(())
}

/// A From/To value, loosely: not empty, one address, a `<` closed by a `>`.
fn is_address(value: &str) -> bool {
    let unclosed = value
        .find('<')
        .is_some_and(|open| value.get(open..).is_none_or(|after| !after.contains('>')));
    !value.is_empty() && !unclosed && split_outside(value, b',').len() == 1
}
