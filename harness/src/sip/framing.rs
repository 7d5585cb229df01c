//! Cutting SIP messages out of a TCP stream (RFC 3261 §18.3): the header block ends at the
//! first empty line, and Content-Length, mandatory on streams, says where the body ends.
//! Between messages a stream may carry CRLF keep-alives (RFC 5626 §3.5.1): each is yielded as
//! it came, never as part of a message nor as an error.

use super::keepalive::{is_line_end, line_ends};
use super::message::Message;
use super::parse::ParseError;
use super::syntax::{Lines, WSP, canonical_name, digits, header_end, starts_with_wsp};
use crate::timeline::KeepAliveKind;

/// The largest header block accepted before giving up on a stream.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// The largest body accepted (a SIP body is an SDP or a small XML document).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// What a stream carried, in the order it came.
#[derive(Clone, Debug, PartialEq)]
pub enum Framed {
    Message {
        raw: Vec<u8>,
        message: Message,
    },
    /// Line ends between messages: a ping ("\r\n\r\n") each, or what else came of them.
    KeepAlive {
        raw: Vec<u8>,
        kind: KeepAliveKind,
    },
}

/// Why the stream did not yield a message. Only [`FramingError::Malformed`] leaves the stream
/// usable; after any other error the framer is broken (see [`StreamFramer::is_broken`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    #[error("a message on a stream without Content-Length (RFC 3261 §18.3)")]
    MissingContentLength { raw: Vec<u8> },
    #[error("Content-Length `{value}` is not a number, or disagrees with another one")]
    BadContentLength { value: String, raw: Vec<u8> },
    #[error("no end of the headers within {limit} bytes")]
    HeaderTooLarge { limit: usize, raw: Vec<u8> },
    #[error("Content-Length {length} exceeds the limit of {limit} bytes")]
    BodyTooLarge {
        length: usize,
        limit: usize,
        raw: Vec<u8>,
    },
    /// The message was framed but is not valid; the next one can still be read.
    #[error("{error}")]
    Malformed { raw: Vec<u8>, error: ParseError },
}

impl FramingError {
    /// The bytes the error is about: the whole message for `Malformed`, the header block (or
    /// the buffered garbage) otherwise.
    pub fn raw(&self) -> &[u8] {
        match self {
            Self::MissingContentLength { raw }
            | Self::BadContentLength { raw, .. }
            | Self::HeaderTooLarge { raw, .. }
            | Self::BodyTooLarge { raw, .. }
            | Self::Malformed { raw, .. } => raw,
        }
    }

    /// Whether the stream cannot be read any further (the connection should be closed).
    pub fn is_fatal(&self) -> bool {
        !matches!(self, Self::Malformed { .. })
    }
}

/// Reassembles messages from the bytes of one TCP connection, however they were split.
///
/// After a fatal error the message boundary is lost: the framer ignores every later push and
/// yields nothing more. The caller should close the connection; what it held beyond the bytes
/// the error carries is left for [`StreamFramer::take_unframed`].
#[derive(Debug)]
pub struct StreamFramer {
    buffer: Vec<u8>,
    /// How far the search for the end of the headers got, so it resumes there.
    scanned: usize,
    /// The length of the message being received, once its header block is read: the rest of
    /// its body is then only waited for, not looked for again.
    pending: Option<usize>,
    max_header: usize,
    max_body: usize,
    broken: bool,
}

impl Default for StreamFramer {
    fn default() -> Self {
        Self::new()
    }
}

impl StreamFramer {
    pub fn new() -> Self {
        Self::with_limits(MAX_HEADER_BYTES, MAX_BODY_BYTES)
    }

    pub fn with_limits(max_header: usize, max_body: usize) -> Self {
        Self {
            buffer: Vec::new(),
            scanned: 0,
            pending: None,
            max_header,
            max_body,
            broken: false,
        }
    }

    pub fn push(&mut self, bytes: &[u8]) {
        if !self.broken {
            self.buffer.extend_from_slice(bytes);
        }
    }

    /// Whether a fatal error ended this stream.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Bytes received but not yet part of a returned message.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// The bytes received that are in no message and no error yet: a message begun but not
    /// complete, or what followed a fatal error. For a stream that ends: so that no byte a
    /// device sent goes unrecorded. Line ends are left only by a caller that did not drain
    /// [`Self::next_framed`]: keep-alives, not unframed bytes.
    pub fn take_unframed(&mut self) -> Vec<u8> {
        if self.buffer.iter().all(|b| is_line_end(*b)) {
            self.buffer.clear();
        }
        self.scanned = 0;
        std::mem::take(&mut self.buffer)
    }

    /// The next complete message and its raw bytes, `None` until more bytes are needed;
    /// keep-alives are passed over (see [`Self::next_framed`] to see them).
    pub fn next_message(&mut self) -> Option<Result<(Vec<u8>, Message), FramingError>> {
        loop {
            match self.next_framed()? {
                Ok(Framed::KeepAlive { .. }) => {}
                Ok(Framed::Message { raw, message }) => return Some(Ok((raw, message))),
                Err(err) => return Some(Err(err)),
            }
        }
    }

    /// The next message or keep-alive, `None` until more bytes are needed. Line ends before a
    /// message are keep-alives at once: each ping ("\r\n\r\n") alone, and the line ends
    /// around pings as they came (a pong "\r\n"); a ping split across two reads is two.
    pub fn next_framed(&mut self) -> Option<Result<Framed, FramingError>> {
        if self.broken {
            return None;
        }
        if let Some(total) = self.pending {
            return (self.buffer.len() >= total).then(|| self.take(total));
        }
        let run = self.buffer.iter().take_while(|b| is_line_end(**b)).count();
        if run > 0 {
            let head = &self.buffer[..run];
            let take = if head.starts_with(b"\r\n\r\n") {
                4
            } else {
                head.windows(4)
                    .position(|w| w == b"\r\n\r\n")
                    .unwrap_or(run)
            };
            let raw: Vec<u8> = self.buffer.drain(..take).collect();
            self.scanned = 0;
            let kind = line_ends(&raw);
            return Some(Ok(Framed::KeepAlive { raw, kind }));
        }
        if self.buffer.is_empty() {
            return None;
        }
        let Some(end) = header_end(&self.buffer, self.scanned) else {
            // Resume a little before the end: the empty line may be split across pushes.
            self.scanned = self.buffer.len().saturating_sub(2);
            if self.buffer.len() > self.max_header {
                let limit = self.max_header;
                return Some(Err(
                    self.fail(|raw| FramingError::HeaderTooLarge { limit, raw })
                ));
            }
            return None;
        };
        if end > self.max_header {
            let limit = self.max_header;
            return Some(Err(
                self.fail(|raw| FramingError::HeaderTooLarge { limit, raw })
            ));
        }
        let head = self.buffer.get(..end).unwrap_or_default();
        let length = match content_length(head) {
            Ok(Some(length)) => length,
            Ok(None) => {
                return Some(Err(
                    self.fail_at(end, |raw| FramingError::MissingContentLength { raw })
                ));
            }
            Err(value) => {
                return Some(Err(
                    self.fail_at(end, |raw| FramingError::BadContentLength { value, raw })
                ));
            }
        };
        if length > self.max_body {
            let limit = self.max_body;
            return Some(Err(self.fail_at(end, |raw| FramingError::BodyTooLarge {
                length,
                limit,
                raw,
            })));
        }
        let total = end + length;
        if self.buffer.len() < total {
            self.pending = Some(total);
            return None;
        }
        Some(self.take(total))
    }

    /// The message in the first `total` bytes.
    fn take(&mut self, total: usize) -> Result<Framed, FramingError> {
        let raw: Vec<u8> = self.buffer.drain(..total).collect();
        self.scanned = 0;
        self.pending = None;
        match Message::parse(&raw) {
            Ok(message) => Ok(Framed::Message { raw, message }),
            Err(error) => Err(FramingError::Malformed { raw, error }),
        }
    }

    /// Ends the stream: the buffer goes into the error, later bytes are ignored.
    fn fail(&mut self, error: impl FnOnce(Vec<u8>) -> FramingError) -> FramingError {
        let end = self.buffer.len();
        self.fail_at(end, error)
    }

    /// Ends the stream: the first `end` bytes (the header block) go into the error; the rest
    /// stays for [`Self::take_unframed`]; later bytes are ignored.
    fn fail_at(&mut self, end: usize, error: impl FnOnce(Vec<u8>) -> FramingError) -> FramingError {
        self.broken = true;
        self.scanned = 0;
        self.pending = None;
        let rest = self.buffer.split_off(end.min(self.buffer.len()));
        error(std::mem::replace(&mut self.buffer, rest))
    }
}

/// The Content-Length of a header block (in any form, folded or not): `Ok(None)` without one,
/// `Err(value)` for a value that is not a number or differs from an earlier one.
fn content_length(head: &[u8]) -> Result<Option<usize>, String> {
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in Lines::new(head).skip(1) {
        let Ok(text) = std::str::from_utf8(line.text) else {
            continue;
        };
        if starts_with_wsp(line.text) {
            if let Some((_, value)) = headers.last_mut() {
                value.push(' ');
                value.push_str(text.trim_matches(WSP));
            }
        } else if let Some((name, value)) = text.split_once(':') {
            headers.push((canonical_name(name.trim_end_matches(WSP)), value.to_owned()));
        }
    }
    let mut length = None;
    for (name, value) in headers {
        if name != "content-length" {
            continue;
        }
        let value = value.trim_matches(WSP);
        match (digits::<usize>(value), length) {
            (Some(n), None) => length = Some(n),
            (Some(n), Some(earlier)) if n == earlier => {}
            _ => return Err(value.to_owned()),
        }
    }
    Ok(length)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_in_small_pieces_does_not_reread_the_headers() {
        // Found by the sip_framing fuzz target (slow inputs): each push of a body byte parsed
        // the whole header block again, quadratic in a stream a device trickles.
        let mut head = String::from("OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 20000\r\n");
        while head.len() < MAX_HEADER_BYTES - 100 {
            head.push_str("X-Padding: 0123456789012345678901234567890123456789\r\n");
        }
        head.push_str("\r\n");
        let mut framer = StreamFramer::new();
        framer.push(head.as_bytes());
        assert!(framer.next_message().is_none());
        let started = std::time::Instant::now();
        for _ in 0..20_000 {
            assert!(framer.next_message().is_none());
            framer.push(b"x");
        }
        let framed = framer.next_message();
        // Tolerance: the work is a few milliseconds; re-reading 64 KB per byte takes seconds.
        let took = started.elapsed();
        assert!(matches!(
            framed,
            Some(Err(FramingError::Malformed { .. })) | Some(Ok(_))
        ));
        assert!(took < std::time::Duration::from_secs(2), "took {took:?}");
    }

    #[test]
    fn content_length_in_any_form() {
        assert_eq!(content_length(b"X\r\nl: 5\r\n\r\n"), Ok(Some(5)));
        assert_eq!(
            content_length(b"X\r\nContent-Length:\r\n 12\r\n\r\n"),
            Ok(Some(12))
        );
        assert_eq!(
            content_length(b"X\r\nl: 5\r\nContent-Length: 6\r\n\r\n"),
            Err("6".into())
        );
        assert_eq!(content_length(b"X\r\nl: -1\r\n\r\n"), Err("-1".into()));
        assert_eq!(content_length(b"X\r\nTo: x\r\n\r\n"), Ok(None));
    }

    /// Every byte pushed ends up in a message, an error or `take_unframed`: none vanishes.
    #[test]
    fn no_byte_is_lost_when_a_stream_ends_or_breaks() {
        // A header block begun, then the stream ends.
        let mut framer = StreamFramer::new();
        framer.push(b"\r\nOPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/TCP h");
        assert!(framer.next_message().is_none());
        assert_eq!(
            framer.take_unframed(),
            b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/TCP h"
        );
        assert_eq!(framer.buffered(), 0);
        // Keep-alives alone are no unframed bytes.
        framer.push(b"\r\n\r\n");
        assert_eq!(framer.take_unframed(), b"");

        // A fatal error: the header block goes into the error, what followed it stays.
        for head in [
            &b"OPTIONS sip:x SIP/2.0\r\nVia: v\r\n\r\n"[..],
            b"OPTIONS sip:x SIP/2.0\r\nl: x\r\n\r\n",
            b"OPTIONS sip:x SIP/2.0\r\nl: 9999\r\n\r\n",
        ] {
            let mut framer = StreamFramer::with_limits(512, 512);
            framer.push(&[head, b"trailing"].concat());
            let err = framer.next_message().unwrap().unwrap_err();
            assert!(err.is_fatal());
            assert_eq!(err.raw(), head);
            assert_eq!(framer.take_unframed(), b"trailing");
        }
    }
}
