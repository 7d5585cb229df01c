//! A SIP message (RFC 3261 §7): start line, headers as written, body; what it says, and its
//! exact bytes. Parsing is in `parse.rs`.

use std::fmt;

use super::syntax::{
    WSP, canonical_name, digits, is_list_header, name_addr_params, parse_cseq, split_outside,
};
use super::via::Via;
use crate::timeline::SipSummary;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartLine {
    Request {
        method: String,
        uri: String,
        version: String,
    },
    Response {
        version: String,
        status: u16,
        reason: String,
    },
}

impl fmt::Display for StartLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Request {
                method,
                uri,
                version,
            } => write!(f, "{method} {uri} {version}"),
            Self::Response {
                version,
                status,
                reason,
            } => write!(f, "{version} {status} {reason}"),
        }
    }
}

/// One header line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// The name as written (compact or long, any case).
    pub name: String,
    /// The value with folding undone (each line break and the white space around it become one
    /// space) and trimmed.
    pub value: String,
}

impl Header {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
        }
    }

    /// Whether this header is `name`, ignoring case and compact forms (`v` is `Via`).
    pub fn is(&self, name: &str) -> bool {
        canonical_name(&self.name) == canonical_name(name)
    }
}

/// A whole SIP message. Fields are public and unchecked, so servers and tests can build any
/// bytes, malformed ones included; [`Message::parse`] is the strict way in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub start: StartLine,
    pub headers: Vec<Header>,
    pub body: Vec<u8>,
}

impl Message {
    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    pub fn method(&self) -> Option<&str> {
        match &self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match &self.start {
            StartLine::Response { status, .. } => Some(*status),
            StartLine::Request { .. } => None,
        }
    }

    pub fn reason(&self) -> Option<&str> {
        match &self.start {
            StartLine::Response { reason, .. } => Some(reason),
            StartLine::Request { .. } => None,
        }
    }

    /// The first value of a header (for list headers such as Via: the first element of the
    /// first line). The name is case-insensitive and compact and long forms are equivalent.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers(name).into_iter().next()
    }

    /// Every value of a header in order; lines of list headers (Via, Contact, Route, Allow,
    /// Supported, …) are split at commas outside quotes and `<…>`. Headers that have commas of
    /// their own (WWW-Authenticate, Authorization, Date, …) come one value per line.
    pub fn headers(&self, name: &str) -> Vec<&str> {
        let canonical = canonical_name(name);
        let list = is_list_header(&canonical);
        let mut values = Vec::new();
        for header in self
            .headers
            .iter()
            .filter(|h| canonical_name(&h.name) == canonical)
        {
            if list {
                values.extend(
                    split_outside(&header.value, b',')
                        .into_iter()
                        .map(|v| v.trim_matches(WSP))
                        .filter(|v| !v.is_empty()),
                );
            } else {
                values.push(header.value.as_str());
            }
        }
        values
    }

    /// Sets a header: the first line of that header (in any form) gets `name` and `value`,
    /// further lines of it are removed; without one, it is appended.
    pub fn set_header(&mut self, name: &str, value: impl Into<String>) {
        let header = Header::new(name, value);
        match self.headers.iter().position(|h| h.is(name)) {
            Some(first) => {
                let mut index = 0;
                self.headers.retain(|h| {
                    let keep = index <= first || !h.is(name);
                    index += 1;
                    keep
                });
                if let Some(slot) = self.headers.get_mut(first) {
                    *slot = header;
                }
            }
            None => self.headers.push(header),
        }
    }

    /// The same message with `Content-Length` set to the body's length (replacing any).
    pub fn with_content_length(mut self) -> Self {
        let length = self.body.len().to_string();
        self.set_header("Content-Length", length);
        self
    }

    pub fn call_id(&self) -> Option<&str> {
        self.header("Call-ID")
    }

    /// The CSeq number and method, when the header is well-formed.
    pub fn cseq(&self) -> Option<(u32, String)> {
        let (number, method) = parse_cseq(self.header("CSeq")?).ok()?;
        Some((number, method.to_owned()))
    }

    /// Every Via value in order, as far as each parses.
    pub fn vias(&self) -> Vec<Via> {
        self.headers("Via")
            .into_iter()
            .filter_map(|v| Via::parse(v).ok())
            .collect()
    }

    pub fn top_via(&self) -> Option<Via> {
        Via::parse(self.header("Via")?).ok()
    }

    pub fn from_tag(&self) -> Option<&str> {
        tag(self.header("From")?)
    }

    pub fn to_tag(&self) -> Option<&str> {
        tag(self.header("To")?)
    }

    pub fn expires(&self) -> Option<u32> {
        digits(self.header("Expires")?)
    }

    pub fn content_length(&self) -> Option<usize> {
        digits(self.header("Content-Length")?)
    }

    /// Retry-After in seconds (RFC 3261 §20.33): `120`, `120 (comment)`, `120;duration=60`.
    pub fn retry_after(&self) -> Option<u32> {
        let value = self.header("Retry-After")?;
        let end = value
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(value.len());
        digits(value.get(..end)?)
    }

    /// What the timeline shows of this message.
    pub fn summary(&self) -> SipSummary {
        SipSummary {
            method: self.method().map(str::to_owned),
            status: self.status(),
            reason: self.reason().map(str::to_owned),
            call_id: self.call_id().map(str::to_owned),
            cseq: self.header("CSeq").map(str::to_owned),
            branch: self
                .top_via()
                .and_then(|via| via.branch().map(str::to_owned)),
        }
    }

    /// The message's bytes exactly: start line, `name: value` per header, CRLF line ends, the
    /// body. Nothing is added or corrected (see [`Message::with_content_length`]).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            64 + self.body.len()
                + self
                    .headers
                    .iter()
                    .map(|h| h.name.len() + h.value.len() + 4)
                    .sum::<usize>(),
        );
        out.extend_from_slice(self.start.to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
        for header in &self.headers {
            out.extend_from_slice(header.name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(header.value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }
}

/// The `tag` header parameter of a From/To value.
fn tag(value: &str) -> Option<&str> {
    name_addr_params(value)
        .into_iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("tag"))
        .and_then(|(_, value)| value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(headers: &[(&str, &str)]) -> Message {
        Message {
            start: StartLine::Request {
                method: "OPTIONS".into(),
                uri: "sip:a@b".into(),
                version: "SIP/2.0".into(),
            },
            headers: headers.iter().map(|(n, v)| Header::new(*n, *v)).collect(),
            body: Vec::new(),
        }
    }

    #[test]
    fn compact_and_long_names_are_one_header() {
        let m = message(&[
            ("v", "SIP/2.0/UDP a;branch=z9hG4bK1"),
            ("VIA", "SIP/2.0/TCP b"),
        ]);
        assert_eq!(
            m.headers("Via"),
            vec!["SIP/2.0/UDP a;branch=z9hG4bK1", "SIP/2.0/TCP b"]
        );
        assert_eq!(m.header("v"), Some("SIP/2.0/UDP a;branch=z9hG4bK1"));
    }

    #[test]
    fn contact_lists_split_outside_quotes_and_brackets() {
        let m = message(&[(
            "m",
            r#""Doe, John" <sip:j@d;a=1,2>;expires=60, <sip:x@y>, *"#,
        )]);
        assert_eq!(
            m.headers("Contact"),
            vec![
                r#""Doe, John" <sip:j@d;a=1,2>;expires=60"#,
                "<sip:x@y>",
                "*"
            ]
        );
    }

    #[test]
    fn authorization_style_headers_are_not_split() {
        let value = r#"Digest realm="x", nonce="y", algorithm=MD5"#;
        let m = message(&[
            ("WWW-Authenticate", value),
            ("Date", "Sat, 13 Nov 2010 23:29:00 GMT"),
        ]);
        assert_eq!(m.headers("www-authenticate"), vec![value]);
        assert_eq!(m.header("Date"), Some("Sat, 13 Nov 2010 23:29:00 GMT"));
    }

    #[test]
    fn tags_in_every_form() {
        let m = message(&[
            ("From", "\"Alice\" <sip:alice@a;tag=uri>;tag=1928301774"),
            ("t", "sip:bob@b;TAG=abc"),
        ]);
        assert_eq!(m.from_tag(), Some("1928301774"));
        assert_eq!(m.to_tag(), Some("abc"));
        assert_eq!(message(&[("To", "<sip:bob@b>")]).to_tag(), None);
    }

    #[test]
    fn numbers() {
        let m = message(&[
            ("Retry-After", "120 (I'm in a meeting);duration=60"),
            ("Expires", "3600"),
            ("l", "0"),
            ("CSeq", "7  REGISTER"),
        ]);
        assert_eq!(m.retry_after(), Some(120));
        assert_eq!(m.expires(), Some(3600));
        assert_eq!(m.content_length(), Some(0));
        assert_eq!(m.cseq(), Some((7, "REGISTER".to_owned())));
        assert_eq!(message(&[("Expires", "-1")]).expires(), None);
    }

    #[test]
    fn set_header_replaces_every_form_in_place() {
        let mut m = message(&[("l", "9"), ("To", "<sip:b@b>"), ("Content-Length", "7")]);
        m.body = b"abc".to_vec();
        let m = m.with_content_length();
        assert_eq!(
            m.headers,
            vec![
                Header::new("Content-Length", "3"),
                Header::new("To", "<sip:b@b>")
            ]
        );
    }
}
