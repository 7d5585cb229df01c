//! Small pieces of the RFC 3261 §25 grammar shared by the parser, the accessors, the partial
//! summary and the stream framer. Nothing here panics on any input.

/// `token` characters (RFC 3261 §25.1).
pub(crate) fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
        )
}

pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_char)
}

/// Linear white space inside a line: SP and HTAB.
pub(crate) const WSP: [char; 2] = [' ', '\t'];

pub(crate) fn starts_with_wsp(text: &[u8]) -> bool {
    matches!(text.first(), Some(b' ' | b'\t'))
}

/// `1*DIGIT` as a number; `FromStr` alone would also take a leading `+`.
pub(crate) fn digits<T: std::str::FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// One line of a message, without its line end (CRLF, or a bare LF as a tolerance).
pub(crate) struct Line<'a> {
    /// 1-based line number in the input.
    pub number: usize,
    /// Offset of the line's first byte in the input.
    pub start: usize,
    pub text: &'a [u8],
    /// Offset just after the line end (or the input's length for an unterminated line).
    pub end: usize,
    /// Whether a line end was seen; the last line of a truncated input has none.
    pub terminated: bool,
}

pub(crate) struct Lines<'a> {
    bytes: &'a [u8],
    pos: usize,
    number: usize,
}

impl<'a> Lines<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self {
            bytes,
            pos: 0,
            number: 0,
        }
    }
}

impl<'a> Iterator for Lines<'a> {
    type Item = Line<'a>;

    fn next(&mut self) -> Option<Line<'a>> {
        let rest = self.bytes.get(self.pos..).filter(|rest| !rest.is_empty())?;
        self.number += 1;
        let start = self.pos;
        let (text, consumed, terminated) = match rest.iter().position(|&b| b == b'\n') {
            Some(newline) => {
                let (text, _) = rest.split_at(newline);
                let text = text.strip_suffix(b"\r").unwrap_or(text);
                (text, newline + 1, true)
            }
            None => (rest, rest.len(), false),
        };
        self.pos = start + consumed;
        Some(Line {
            number: self.number,
            start,
            text,
            end: self.pos,
            terminated,
        })
    }
}

/// Offset just after the empty line that ends the header block, if the block is complete.
/// The block starts at `bytes[0]`, which must not itself be a line end; the search resumes at
/// `from` so a stream reader does not rescan what it has already seen.
pub(crate) fn header_end(bytes: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while let Some(&b) = bytes.get(i) {
        if b == b'\n' {
            match (bytes.get(i + 1), bytes.get(i + 2)) {
                (Some(b'\n'), _) => return Some(i + 2),
                (Some(b'\r'), Some(b'\n')) => return Some(i + 3),
                _ => {}
            }
        }
        i += 1;
    }
    None
}

/// Splits `s` at every `sep` that is neither inside a quoted string nor inside `<…>`.
pub(crate) fn split_outside(s: &str, sep: u8) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let (mut quoted, mut escaped, mut angle) = (false, false, false);
    for (i, b) in s.bytes().enumerate() {
        if quoted {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                quoted = false;
            }
        } else if angle {
            angle = b != b'>';
        } else if b == b'"' {
            quoted = true;
        } else if b == b'<' {
            angle = true;
        } else if b == sep {
            // `sep` is ASCII, so `start..i` lies on character boundaries.
            parts.push(s.get(start..i).unwrap_or(""));
            start = i + 1;
        }
    }
    parts.push(s.get(start..).unwrap_or(""));
    parts
}

/// The first `target` outside quoted strings.
pub(crate) fn find_outside(s: &str, target: u8) -> Option<usize> {
    let (mut quoted, mut escaped) = (false, false);
    for (i, b) in s.bytes().enumerate() {
        if quoted {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                quoted = false;
            }
        } else if b == b'"' {
            quoted = true;
        } else if b == target {
            return Some(i);
        }
    }
    None
}

/// `;name[=value]` parameters (the text after the first `;`), trimmed, as written.
pub(crate) fn parse_params(s: &str) -> Vec<(&str, Option<&str>)> {
    split_outside(s, b';')
        .into_iter()
        .map(|p| p.trim_matches(WSP))
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((name, value)) => (name.trim_matches(WSP), Some(value.trim_matches(WSP))),
            None => (p, None),
        })
        .collect()
}

/// The header parameters of a From/To/Contact-style value: after `>` for a name-addr, after
/// the first `;` for a bare addr-spec (RFC 3261 §20.10: those belong to the header, not the URI).
pub(crate) fn name_addr_params(value: &str) -> Vec<(&str, Option<&str>)> {
    let rest = match find_outside(value, b'<') {
        Some(open) => {
            let after_open = value.get(open..).unwrap_or("");
            match after_open.find('>') {
                Some(close) => after_open.get(close + 1..).unwrap_or(""),
                None => return Vec::new(),
            }
        }
        None => value,
    };
    match find_outside(rest, b';') {
        Some(semicolon) => parse_params(rest.get(semicolon + 1..).unwrap_or("")),
        None => Vec::new(),
    }
}

/// `CSeq: 1*DIGIT LWS Method` (RFC 3261 §20.16), or why not.
pub(crate) fn parse_cseq(value: &str) -> Result<(u32, &str), String> {
    let value = value.trim_matches(WSP);
    let Some((number, method)) = value.split_once(WSP) else {
        return Err("is not `number method`".into());
    };
    let method = method.trim_start_matches(WSP);
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err("is not `number method`".into());
    }
    let Some(number) = digits::<u32>(number) else {
        return Err("has a sequence number beyond 32 bits".into());
    };
    if !is_token(method) {
        return Err("is not `number method`".into());
    }
    Ok((number, method))
}

/// Long, lower-case form of a header name: compact forms expanded (RFC 3261 §7.3.3 and the
/// IANA SIP parameters registry).
pub(crate) fn canonical_name(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    let long = match lower.as_str() {
        "i" => "call-id",
        "m" => "contact",
        "e" => "content-encoding",
        "l" => "content-length",
        "c" => "content-type",
        "f" => "from",
        "s" => "subject",
        "k" => "supported",
        "t" => "to",
        "v" => "via",
        "o" => "event",
        "r" => "refer-to",
        "b" => "referred-by",
        "u" => "allow-events",
        "x" => "session-expires",
        "j" => "reject-contact",
        "a" => "accept-contact",
        "y" => "identity",
        "n" => "identity-info",
        "d" => "request-disposition",
        _ => return lower,
    };
    long.to_owned()
}

/// Headers whose grammar is a comma-separated list (`#element`), so one line may carry several
/// values. Authorization-style headers and Date contain commas of their own and are not here.
pub(crate) fn is_list_header(canonical: &str) -> bool {
    matches!(
        canonical,
        "via"
            | "contact"
            | "route"
            | "record-route"
            | "path"
            | "service-route"
            | "allow"
            | "allow-events"
            | "supported"
            | "require"
            | "proxy-require"
            | "unsupported"
            | "accept"
            | "accept-encoding"
            | "accept-language"
            | "content-encoding"
            | "content-language"
            | "in-reply-to"
            | "alert-info"
            | "call-info"
            | "error-info"
            | "warning"
            | "accept-contact"
            | "reject-contact"
            | "request-disposition"
            | "security-client"
            | "security-server"
            | "security-verify"
            | "p-associated-uri"
            | "p-asserted-identity"
            | "p-preferred-identity"
            | "history-info"
            | "reason"
    )
}

/// Text for an error message: at most 60 characters, the rest elided.
pub(crate) fn shown(s: &str) -> String {
    const MAX: usize = 60;
    if s.chars().count() <= MAX {
        return s.to_owned();
    }
    let mut short: String = s.chars().take(MAX).collect();
    short.push('…');
    short
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_split_outside_quotes_and_angle_brackets() {
        let value = r#""Doe, \"J\"" <sip:a@b;x=1,2>;q=0.5, <sip:c@d>"#;
        assert_eq!(
            split_outside(value, b','),
            vec![r#""Doe, \"J\"" <sip:a@b;x=1,2>;q=0.5"#, " <sip:c@d>"]
        );
    }

    #[test]
    fn tags_come_from_header_params_not_uri_params() {
        assert_eq!(
            name_addr_params("\"A;b\" <sip:a@b;tag=uri>;tag=hdr"),
            vec![("tag", Some("hdr"))]
        );
        assert_eq!(
            name_addr_params("sip:a@b;tag=x;foo"),
            vec![("tag", Some("x")), ("foo", None)]
        );
        assert!(name_addr_params("<sip:a@b").is_empty());
    }

    #[test]
    fn cseq_and_digits() {
        assert_eq!(parse_cseq("  1 \t INVITE "), Ok((1, "INVITE")));
        assert!(parse_cseq("+1 INVITE").is_err());
        assert!(parse_cseq("4294967296 INVITE").is_err());
        assert!(parse_cseq("1").is_err());
        assert_eq!(digits::<u32>("+5"), None);
    }

    #[test]
    fn header_end_accepts_crlf_and_bare_lf() {
        assert_eq!(header_end(b"A\r\nB\r\n\r\nbody", 0), Some(8));
        assert_eq!(header_end(b"A\nB\n\nbody", 0), Some(5));
        assert_eq!(header_end(b"A\r\nB\r\n\r", 0), None);
    }
}
