//! Just enough of TLS to refuse a handshake the way a server with no cipher suite in common
//! refuses it: read the device's ClientHello (RFC 8446 §4.1.2, RFC 5246 §7.4.1.2) for the
//! suites it offers, answer with a fatal handshake_failure alert.

use tokio_rustls::rustls::CipherSuite;

/// A TLS 1.2-framed fatal alert (level 2) handshake_failure (40): what a server sends when no
/// offered cipher suite is acceptable.
pub const HANDSHAKE_FAILURE_ALERT: [u8; 7] = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28];

/// How much a device may send before srvlab stops waiting for its ClientHello.
pub const LIMIT: usize = 1 << 16;

/// What the first bytes on a TLS connection say: `None` while more are needed, else the
/// cipher suites of the ClientHello or why it is not one (plain SIP sent to a TLS port reads
/// "not a TLS handshake record").
pub fn read(bytes: &[u8]) -> Option<Result<Vec<u16>, String>> {
    let mut handshake = Vec::new();
    let mut at = 0;
    while let Some(header) = bytes.get(at..at + 5) {
        if header[0] != 0x16 {
            // The record header only: what else had arrived depends on how the reads fell.
            return Some(Err(format!(
                "not a TLS handshake record: it begins {header:02x?}"
            )));
        }
        let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        let Some(fragment) = bytes.get(at + 5..at + 5 + len) else {
            break;
        };
        handshake.extend_from_slice(fragment);
        at += 5 + len;
        if let Some(parsed) = client_hello(&handshake) {
            return Some(parsed);
        }
    }
    (bytes.len() > LIMIT).then(|| Err(format!("no ClientHello in the first {LIMIT} bytes")))
}

/// The cipher suites of a ClientHello handshake message, once it is complete.
fn client_hello(message: &[u8]) -> Option<Result<Vec<u16>, String>> {
    let (&kind, rest) = message.split_first()?;
    if kind != 1 {
        return Some(Err(format!(
            "handshake message type {kind} is not a ClientHello"
        )));
    }
    let len = rest.get(..3)?;
    let len = (usize::from(len[0]) << 16) | (usize::from(len[1]) << 8) | usize::from(len[2]);
    let body = rest.get(3..3 + len)?;
    let malformed = || Err("malformed ClientHello".to_owned());
    // legacy_version (2), random (32), then the session id.
    let Some(&session_len) = body.get(34) else {
        return Some(malformed());
    };
    let suites_at = 35 + usize::from(session_len);
    let Some(suites_len) = body.get(suites_at..suites_at + 2) else {
        return Some(malformed());
    };
    let suites_len = usize::from(u16::from_be_bytes([suites_len[0], suites_len[1]]));
    let Some(suites) = body.get(suites_at + 2..suites_at + 2 + suites_len) else {
        return Some(malformed());
    };
    Some(Ok(suites
        .chunks_exact(2)
        .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
        .collect()))
}

/// `TLS13_AES_128_GCM_SHA256, 0x1a1a (unknown), …` for a report.
pub fn suite_names(suites: &[u16]) -> String {
    if suites.is_empty() {
        return "no cipher suite".to_owned();
    }
    suites
        .iter()
        .map(|&code| match CipherSuite::from(code).as_str() {
            Some(name) => name.to_owned(),
            None => format!("{code:#06x} (unknown)"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ClientHello offering `suites`, in records of at most `fragment` bytes.
    fn hello(suites: &[u16], fragment: usize) -> Vec<u8> {
        let mut body = vec![0x03, 0x03];
        body.extend([7u8; 32]);
        body.push(3);
        body.extend([1, 2, 3]);
        body.extend(((suites.len() * 2) as u16).to_be_bytes());
        for suite in suites {
            body.extend(suite.to_be_bytes());
        }
        body.extend([1, 0]); // compression: null
        let mut message = vec![1, 0, (body.len() >> 8) as u8, body.len() as u8];
        message.extend(body);
        let mut out = Vec::new();
        for chunk in message.chunks(fragment) {
            out.extend([0x16, 0x03, 0x01]);
            out.extend((chunk.len() as u16).to_be_bytes());
            out.extend(chunk);
        }
        out
    }

    #[test]
    fn reads_the_offered_suites_once_the_hello_is_complete() {
        let bytes = hello(&[0x1301, 0xc02b, 0x1a1a], 1000);
        assert_eq!(read(&bytes[..20]), None);
        assert_eq!(read(&bytes), Some(Ok(vec![0x1301, 0xc02b, 0x1a1a])));
        // A hello split over records is put together.
        let split = hello(&[0x1302], 10);
        assert_eq!(read(&split[..split.len() - 1]), None);
        assert_eq!(read(&split), Some(Ok(vec![0x1302])));
        assert_eq!(
            suite_names(&[0x1301, 0x1a1a]),
            "TLS13_AES_128_GCM_SHA256, 0x1a1a (unknown)"
        );
    }

    #[test]
    fn plain_sip_and_broken_hellos_are_named() {
        let sip = read(b"INVITE sip:100@example.test SIP/2.0\r\n").unwrap();
        assert!(sip.unwrap_err().starts_with("not a TLS handshake record"));
        let mut truncated = hello(&[0x1301], 1000);
        // Claim more suites than the message holds.
        truncated[5 + 4 + 35 + 3 + 1] = 0xff;
        assert_eq!(read(&truncated), Some(Err("malformed ClientHello".into())));
        let server_hello = [0x16, 3, 3, 0, 4, 2, 0, 0, 0];
        assert!(read(&server_hello).unwrap().unwrap_err().contains("type 2"));
        assert!(read(&[0x16; 5]).is_none());
    }

    #[test]
    fn the_answer_does_not_depend_on_how_the_bytes_arrived() {
        // Found by the client_hello fuzz target: the server asks after every read, and the
        // first answer is the one recorded.
        let sip = b"OPTIONS sip:100@example.test SIP/2.0\r\n";
        assert_eq!(read(&sip[..5]), read(sip));
    }
}
