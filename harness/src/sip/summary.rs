//! What a possibly truncated SIP payload says about itself, for the timeline: the first bytes
//! of a datagram quoted in an ICMP error, or bytes too broken to parse. Never fails.

use super::syntax::{
    Lines, WSP, canonical_name, digits, is_token, name_addr_params, split_outside, starts_with_wsp,
};
use super::via::Via;
use crate::timeline::SipSummary;

/// Reads the start line, Call-ID, CSeq and the top Via's branch from complete lines only. A
/// header counts once the next line shows it is not folded further, so the last header of a
/// payload cut right after a line end is left out.
pub fn summarize_partial(bytes: &[u8]) -> SipSummary {
    let mut summary = SipSummary::default();
    let Some((start, headers)) = complete_parts(bytes) else {
        return summary;
    };
    if let Some(text) = start {
        read_start_line(&mut summary, text);
    }
    let mut reader = HeaderReader {
        summary,
        seen_via: false,
    };
    for (name, value) in &headers {
        reader.take(name, value);
    }
    reader.summary
}

/// The To header's tag (RFC 3261 §12: a request that carries one is inside a dialog), read
/// from complete lines only, as [`summarize_partial`] reads.
pub fn to_tag_partial(bytes: &[u8]) -> Option<String> {
    let (_, headers) = complete_parts(bytes)?;
    let (_, value) = headers
        .iter()
        .find(|(name, _)| canonical_name(name) == "to")?;
    name_addr_params(value)
        .into_iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("tag"))
        .and_then(|(_, tag)| tag.map(str::to_owned))
}

/// The start line (`None` when it is not UTF-8) and every complete header as (name, unfolded
/// value), or `None` when not even the start line is complete.
type Parts<'a> = (Option<&'a str>, Vec<(String, String)>);

fn complete_parts(bytes: &[u8]) -> Option<Parts<'_>> {
    let mut lines = Lines::new(bytes).skip_while(|line| line.text.is_empty() && line.terminated);
    let first = lines.next()?;
    if !first.terminated {
        return None;
    }
    let start = std::str::from_utf8(first.text).ok();
    let mut headers = Vec::new();
    // The header being read: name and unfolded value; `None` while skipping an unreadable line.
    let mut current: Option<(String, String)> = None;
    for line in lines {
        if starts_with_wsp(line.text) {
            match (
                &mut current,
                line.terminated,
                std::str::from_utf8(line.text),
            ) {
                (Some((_, value)), true, Ok(more)) => {
                    value.push(' ');
                    value.push_str(more.trim_matches(WSP));
                }
                // A cut-off or unreadable continuation leaves the header incomplete.
                _ => current = None,
            }
            if !line.terminated {
                break;
            }
            continue;
        }
        // Any other line, even a cut-off one, shows the previous header is complete.
        if let Some((name, value)) = current.take() {
            let value = value.trim_matches(WSP).to_owned();
            headers.push((name, value));
        }
        if !line.terminated || line.text.is_empty() {
            break;
        }
        current = std::str::from_utf8(line.text)
            .ok()
            .and_then(|text| text.split_once(':'))
            .map(|(name, value)| (name.trim_end_matches(WSP).to_owned(), value.to_owned()));
    }
    Some((start, headers))
}

fn read_start_line(summary: &mut SipSummary, text: &str) {
    let is_response = text
        .get(..4)
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case("SIP/"));
    if is_response {
        let mut parts = text.splitn(3, ' ').skip(1);
        if let Some(status) = parts.next().and_then(digits::<u16>) {
            summary.status = Some(status);
            summary.reason = parts.next().map(str::to_owned);
        }
    } else if let Some(method) = text.split(' ').next().filter(|m| is_token(m)) {
        summary.method = Some(method.to_owned());
    }
}

struct HeaderReader {
    summary: SipSummary,
    seen_via: bool,
}

impl HeaderReader {
    fn take(&mut self, name: &str, value: &str) {
        match canonical_name(name).as_str() {
            "call-id" if self.summary.call_id.is_none() => {
                self.summary.call_id = Some(value.to_owned());
            }
            "cseq" if self.summary.cseq.is_none() => self.summary.cseq = Some(value.to_owned()),
            "via" if !self.seen_via => {
                self.seen_via = true;
                let top = split_outside(value, b',').into_iter().next().unwrap_or("");
                self.summary.branch = Via::parse(top)
                    .ok()
                    .and_then(|via| via.branch().map(str::to_owned));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &[u8] = b"INVITE sip:bob@example.com SIP/2.0\r\n\
        Via: SIP/2.0/UDP 192.0.2.7:5060;branch=z9hG4bKtop,SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKlow\r\n\
        i: a84b4c76e66710\r\n\
        CSeq: 314159\r\n  INVITE\r\n\
        Max-Forwards: 70\r\n\r\n";

    #[test]
    fn complete_headers_are_read() {
        let summary = summarize_partial(INVITE);
        assert_eq!(summary.method.as_deref(), Some("INVITE"));
        assert_eq!(summary.call_id.as_deref(), Some("a84b4c76e66710"));
        assert_eq!(summary.cseq.as_deref(), Some("314159 INVITE"));
        assert_eq!(summary.branch.as_deref(), Some("z9hG4bKtop"));
    }

    #[test]
    fn cut_headers_are_left_out() {
        // Cut inside the Call-ID line: only the start line and the Via are complete.
        let cut = INVITE.windows(3).position(|w| w == b"i: ").unwrap() + 5;
        let summary = summarize_partial(INVITE.get(..cut).unwrap());
        assert_eq!(summary.method.as_deref(), Some("INVITE"));
        assert_eq!(summary.branch.as_deref(), Some("z9hG4bKtop"));
        assert_eq!(summary.call_id, None);
        assert_eq!(summary.cseq, None);

        // Cut right after `CSeq: 314159\r\n`: the folded rest may follow, so no CSeq.
        let end = INVITE.windows(3).position(|w| w == b"  I").unwrap();
        let summary = summarize_partial(INVITE.get(..end).unwrap());
        assert_eq!(summary.call_id.as_deref(), Some("a84b4c76e66710"));
        assert_eq!(summary.cseq, None);
    }

    #[test]
    fn the_to_tag_is_read_from_complete_lines() {
        let bye =
            b"BYE sip:bob@192.0.2.4 SIP/2.0\r\nt: <sip:bob@b;tag=uri>;tag=srv9\r\nCall-ID: x\r\n";
        assert_eq!(to_tag_partial(bye).as_deref(), Some("srv9"));
        // The To line is the last complete one: it may be folded on, so it does not count.
        let cut = b"BYE sip:bob@192.0.2.4 SIP/2.0\r\nTo: <sip:bob@b>;tag=srv9\r\n";
        assert_eq!(to_tag_partial(cut), None);
        assert_eq!(to_tag_partial(INVITE), None);
        assert_eq!(to_tag_partial(b"\xff\r\n"), None);
    }

    #[test]
    fn responses_and_garbage() {
        let summary = summarize_partial(b"\r\nSIP/2.0 503 Service Unavailable\r\nVia: junk\r\n");
        assert_eq!(summary.status, Some(503));
        assert_eq!(summary.reason.as_deref(), Some("Service Unavailable"));
        assert_eq!(summary.branch, None);
        assert_eq!(
            summarize_partial(b"INVITE sip:x SIP/2.0"),
            SipSummary::default()
        );
        assert_eq!(
            summarize_partial(b"\xff\xfe\r\n\r\n"),
            SipSummary::default()
        );
    }
}
