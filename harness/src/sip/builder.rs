//! Building the messages a scripted server sends. Nothing here validates: a test may want a
//! server to send odd bytes on purpose.

use super::message::{Header, Message, StartLine};

const VERSION: &str = "SIP/2.0";

/// A response to `request` (RFC 3261 §8.2.6.2): every Via in order, From, To, Call-ID, CSeq,
/// `Content-Length: 0`. A response above 100 to a request whose To has no tag gets a tag
/// derived from the request, so retransmitted answers to one request carry the same tag.
pub fn response_to(request: &Message, status: u16, reason: &str) -> Message {
    let tag = derived_tag(request);
    response_to_with_tag(request, status, reason, Some(&tag))
}

/// [`response_to`] with the To tag chosen by the caller; `None` adds no tag at all (to make a
/// deliberately faulty response). 100 Trying never gets one, and a tag already in the
/// request's To is kept as it is.
pub fn response_to_with_tag(
    request: &Message,
    status: u16,
    reason: &str,
    to_tag: Option<&str>,
) -> Message {
    let mut headers: Vec<Header> = request
        .headers
        .iter()
        .filter(|h| h.is("Via"))
        .map(|h| Header::new("Via", h.value.clone()))
        .collect();
    for name in ["From", "To", "Call-ID", "CSeq"] {
        if let Some(header) = request.headers.iter().find(|h| h.is(name)) {
            let mut value = header.value.clone();
            if name == "To"
                && status > 100
                && request.to_tag().is_none()
                && let Some(tag) = to_tag
            {
                value.push_str(";tag=");
                value.push_str(tag);
            }
            headers.push(Header::new(name, value));
        }
    }
    headers.push(Header::new("Content-Length", "0"));
    Message {
        start: StartLine::Response {
            version: VERSION.to_owned(),
            status,
            reason: reason.to_owned(),
        },
        headers,
        body: Vec::new(),
    }
}

/// A stable 8-hex-digit tag from the request's Call-ID, From tag and top branch (FNV-1a).
fn derived_tag(request: &Message) -> String {
    let mut hash: u32 = 0x811c_9dc5;
    let parts = [
        request.call_id().unwrap_or_default(),
        request.from_tag().unwrap_or_default(),
        &request
            .top_via()
            .and_then(|via| via.branch().map(str::to_owned))
            .unwrap_or_default(),
    ];
    for part in parts {
        for b in part.bytes().chain([0]) {
            hash ^= u32::from(b);
            hash = hash.wrapping_mul(0x0100_0193);
        }
    }
    format!("{hash:08x}")
}

/// Builds a request or response header by header; [`MessageBuilder::build`] sets
/// Content-Length to the body's length.
#[derive(Clone, Debug)]
pub struct MessageBuilder {
    message: Message,
}

impl MessageBuilder {
    pub fn request(method: &str, uri: &str) -> Self {
        Self::from_start(StartLine::Request {
            method: method.to_owned(),
            uri: uri.to_owned(),
            version: VERSION.to_owned(),
        })
    }

    /// A response with `reason`; see [`reason_phrase`] for the usual one.
    pub fn response(status: u16, reason: &str) -> Self {
        Self::from_start(StartLine::Response {
            version: VERSION.to_owned(),
            status,
            reason: reason.to_owned(),
        })
    }

    /// Any start line, e.g. with an odd version.
    pub fn from_start(start: StartLine) -> Self {
        Self {
            message: Message {
                start,
                headers: Vec::new(),
                body: Vec::new(),
            },
        }
    }

    /// Appends a header line exactly as given.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.message.headers.push(Header::new(name, value));
        self
    }

    /// Sets the body and its Content-Type (replacing an earlier one).
    pub fn body(mut self, bytes: impl Into<Vec<u8>>, content_type: &str) -> Self {
        self.message.body = bytes.into();
        self.message.set_header("Content-Type", content_type);
        self
    }

    pub fn build(self) -> Message {
        self.message.with_content_length()
    }

    /// The message as it stands, without touching Content-Length.
    pub fn build_raw(self) -> Message {
        self.message
    }
}

/// The usual reason phrase of a status code (RFC 3261 §21), or "Unknown".
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        200 => "OK",
        202 => "Accepted",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        420 => "Bad Extension",
        423 => "Interval Too Brief",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn register() -> Message {
        MessageBuilder::request("REGISTER", "sip:snom.rocks")
            .header("v", "SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bKa;rport")
            .header(
                "Via",
                "SIP/2.0/UDP 10.0.0.8;branch=z9hG4bKb, SIP/2.0/UDP 10.0.0.7",
            )
            .header("f", "<sip:100@snom.rocks>;tag=from1")
            .header("t", "<sip:100@snom.rocks>")
            .header("i", "reg-1@10.0.0.9")
            .header("CSeq", "1 REGISTER")
            .header("Max-Forwards", "70")
            .build()
    }

    #[test]
    fn response_copies_what_8_2_6_2_asks() {
        let request = register();
        let ok = response_to(&request, 200, "OK");
        assert_eq!(ok.status(), Some(200));
        assert_eq!(
            ok.headers("Via"),
            vec![
                "SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bKa;rport",
                "SIP/2.0/UDP 10.0.0.8;branch=z9hG4bKb",
                "SIP/2.0/UDP 10.0.0.7"
            ]
        );
        assert_eq!(ok.header("From"), request.header("From"));
        assert_eq!(ok.call_id(), Some("reg-1@10.0.0.9"));
        assert_eq!(ok.header("CSeq"), Some("1 REGISTER"));
        assert_eq!(ok.content_length(), Some(0));
        let tag = ok.to_tag().unwrap().to_owned();
        assert_eq!(tag.len(), 8);
        // Retransmissions of the answer carry the same tag.
        assert_eq!(
            response_to(&request, 200, "OK").to_tag(),
            Some(tag.as_str())
        );
        assert_eq!(Message::parse(&ok.to_bytes()), Ok(ok));
    }

    #[test]
    fn trying_has_no_tag_and_existing_tags_stay() {
        let request = register();
        assert_eq!(response_to(&request, 100, "Trying").to_tag(), None);
        assert_eq!(
            response_to_with_tag(&request, 486, "Busy Here", Some("x")).to_tag(),
            Some("x")
        );
        assert_eq!(
            response_to_with_tag(&request, 486, "Busy Here", None).to_tag(),
            None
        );
        let mut in_dialog = request.clone();
        in_dialog.set_header("To", "<sip:100@snom.rocks>;tag=old");
        assert_eq!(
            response_to_with_tag(&in_dialog, 200, "OK", Some("new")).to_tag(),
            Some("old")
        );
    }

    #[test]
    fn builder_sets_length_and_type_and_does_not_validate() {
        let m = MessageBuilder::response(999, "Whatever")
            .header("Bad Name", "\u{7}")
            .body(b"v=0\r\n".to_vec(), "application/sdp")
            .header("Content-Length", "99")
            .build();
        assert_eq!(m.content_length(), Some(5));
        assert_eq!(m.header("c"), Some("application/sdp"));
        assert!(
            m.to_bytes()
                .starts_with(b"SIP/2.0 999 Whatever\r\nBad Name: \x07\r\n")
        );
        assert!(Message::parse(&m.to_bytes()).is_err());
    }

    #[test]
    fn reason_phrases() {
        assert_eq!(reason_phrase(503), "Service Unavailable");
        assert_eq!(reason_phrase(487), "Request Terminated");
        assert_eq!(reason_phrase(299), "Unknown");
    }
}
