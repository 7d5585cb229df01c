//! RFC 5626 keep-alives as they arrive beside SIP: line ends (the ping "\r\n\r\n" and the pong
//! "\r\n", §3.5.1) and STUN Binding requests (§4.4.2, RFC 5389), told from SIP by their first
//! bytes (a SIP message begins with a token), and the STUN Binding success response a server
//! answers a request with (§8).
//!
//! Only this much of STUN: the 20-byte header and one attribute, XOR-MAPPED-ADDRESS. RFC 5626's
//! keep-alive asks for no MESSAGE-INTEGRITY and no FINGERPRINT, and a STUN crate would bring
//! more code than these few lines.

use std::net::{IpAddr, SocketAddr};

use crate::timeline::KeepAliveKind;

/// RFC 5389 §6: the fixed value in every STUN header.
pub const STUN_MAGIC_COOKIE: u32 = 0x2112_a442;
/// RFC 5389 §6: a STUN header's length.
pub const STUN_HEADER_LEN: usize = 20;
const BINDING_REQUEST: u16 = 0x0001;
const BINDING_SUCCESS: u16 = 0x0101;
/// RFC 5389 §15.2.
pub const XOR_MAPPED_ADDRESS: u16 = 0x0020;

pub fn is_line_end(byte: u8) -> bool {
    byte == b'\r' || byte == b'\n'
}

/// The kind of a keep-alive made of line ends only.
pub fn line_ends(bytes: &[u8]) -> KeepAliveKind {
    match bytes {
        b"\r\n\r\n" => KeepAliveKind::DoubleCrlf,
        b"\r\n" => KeepAliveKind::Crlf,
        _ => KeepAliveKind::LineEnds,
    }
}

/// The message type of the STUN message `bytes` begins with (RFC 5389 §6: the two top bits
/// zero, the magic cookie, a length that is a multiple of four). `whole`: `bytes` is the whole
/// message (a datagram), whose length must then agree with the header's; otherwise it may be
/// cut short (an ICMP error's quote).
fn stun_type(bytes: &[u8], whole: bool) -> Option<u16> {
    let header = bytes.get(..STUN_HEADER_LEN)?;
    let kind = u16::from_be_bytes([header[0], header[1]]);
    let length = usize::from(u16::from_be_bytes([header[2], header[3]]));
    let cookie = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    let fits = if whole {
        bytes.len() == STUN_HEADER_LEN + length
    } else {
        bytes.len() <= STUN_HEADER_LEN + length
    };
    (kind & 0xc000 == 0 && cookie == STUN_MAGIC_COOKIE && length.is_multiple_of(4) && fits)
        .then_some(kind)
}

fn stun_kind(kind: u16) -> KeepAliveKind {
    match kind {
        BINDING_REQUEST => KeepAliveKind::StunRequest,
        BINDING_SUCCESS => KeepAliveKind::StunResponse,
        _ => KeepAliveKind::Stun,
    }
}

fn classify(bytes: &[u8], whole: bool) -> Option<KeepAliveKind> {
    if !bytes.is_empty() && bytes.iter().all(|b| is_line_end(*b)) {
        return Some(line_ends(bytes));
    }
    stun_type(bytes, whole).map(stun_kind)
}

/// The keep-alive a UDP datagram is, if it is one: nothing but line ends, or a STUN message.
pub fn classify_datagram(datagram: &[u8]) -> Option<KeepAliveKind> {
    classify(datagram, true)
}

/// The keep-alive a refused datagram was, from the start of it that an ICMP error quotes.
pub fn classify_quote(quote: &[u8]) -> Option<KeepAliveKind> {
    classify(quote, false)
}

/// The Binding success response to the STUN Binding request `request` from `from`: the same
/// transaction id, and `from` in an XOR-MAPPED-ADDRESS (RFC 5389 §15.2). `None` when `request`
/// is no Binding request.
pub fn stun_binding_success(request: &[u8], from: SocketAddr) -> Option<Vec<u8>> {
    if stun_type(request, true)? != BINDING_REQUEST {
        return None;
    }
    let transaction = request.get(8..STUN_HEADER_LEN)?;
    let cookie = STUN_MAGIC_COOKIE.to_be_bytes();
    let port = from.port() ^ (STUN_MAGIC_COOKIE >> 16) as u16;
    let (family, address): (u8, Vec<u8>) = match from.ip() {
        IpAddr::V4(ip) => (0x01, xor(&ip.octets(), &cookie)),
        // IPv6: XORed with the cookie followed by the transaction id.
        IpAddr::V6(ip) => (
            0x02,
            xor(&ip.octets(), &[&cookie[..], transaction].concat()),
        ),
    };
    let mut value = vec![0, family];
    value.extend_from_slice(&port.to_be_bytes());
    value.extend_from_slice(&address);
    let length = u16::try_from(4 + value.len()).ok()?;
    let mut response = Vec::with_capacity(STUN_HEADER_LEN + usize::from(length));
    response.extend_from_slice(&BINDING_SUCCESS.to_be_bytes());
    response.extend_from_slice(&length.to_be_bytes());
    response.extend_from_slice(&cookie);
    response.extend_from_slice(transaction);
    response.extend_from_slice(&XOR_MAPPED_ADDRESS.to_be_bytes());
    response.extend_from_slice(&u16::try_from(value.len()).ok()?.to_be_bytes());
    response.extend_from_slice(&value);
    Some(response)
}

fn xor(bytes: &[u8], key: &[u8]) -> Vec<u8> {
    bytes.iter().zip(key).map(|(b, k)| b ^ k).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding_request(transaction: [u8; 12]) -> Vec<u8> {
        let mut request = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
        request.extend_from_slice(&transaction);
        request
    }

    #[test]
    fn line_ends_and_stun_are_keep_alives_and_sip_is_not() {
        use KeepAliveKind::*;
        assert_eq!(classify_datagram(b"\r\n\r\n"), Some(DoubleCrlf));
        assert_eq!(classify_datagram(b"\r\n"), Some(Crlf));
        assert_eq!(classify_datagram(b"\n\n"), Some(LineEnds));
        assert_eq!(
            classify_datagram(&binding_request([7; 12])),
            Some(StunRequest)
        );
        assert_eq!(classify_datagram(b""), None);
        assert_eq!(classify_datagram(b"\r\nOPTIONS sip:x SIP/2.0\r\n"), None);
        assert_eq!(classify_datagram(b"OPTIONS sip:x SIP/2.0\r\n\r\n"), None);
        // A length that disagrees with the datagram, the wrong cookie, the top bits set.
        let mut long = binding_request([7; 12]);
        long[3] = 4;
        assert_eq!(classify_datagram(&long), None);
        assert_eq!(
            classify_quote(&long),
            Some(StunRequest),
            "a quote may be cut short"
        );
        let mut cookie = binding_request([7; 12]);
        cookie[4] = 0;
        assert_eq!(classify_quote(&cookie), None);
        let mut top = binding_request([7; 12]);
        top[0] = 0x40;
        assert_eq!(classify_quote(&top), None);
        assert_eq!(classify_quote(&binding_request([7; 12])[..19]), None);
    }

    /// RFC 5769 §2.2's sample response carries 192.0.2.1:32853 as XOR-MAPPED-ADDRESS
    /// `0001 a147 e112 a643` after the transaction id b7e7a701bc34d686fa87dfae.
    #[test]
    fn the_binding_response_xors_the_address_as_rfc_5769_shows() {
        let transaction = [
            0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
        ];
        let from: SocketAddr = "192.0.2.1:32853".parse().unwrap();
        let response = stun_binding_success(&binding_request(transaction), from).unwrap();
        assert_eq!(&response[..4], &[0x01, 0x01, 0x00, 0x0c]);
        assert_eq!(&response[8..20], &transaction);
        assert_eq!(
            &response[20..],
            &[
                0x00, 0x20, 0x00, 0x08, 0x00, 0x01, 0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43
            ]
        );
        assert_eq!(
            classify_datagram(&response),
            Some(KeepAliveKind::StunResponse)
        );
        // RFC 5769 §2.3: 2001:db8:1234:5678:11:2233:4455:6677 port 32853.
        let from: SocketAddr = "[2001:db8:1234:5678:11:2233:4455:6677]:32853"
            .parse()
            .unwrap();
        let response = stun_binding_success(&binding_request(transaction), from).unwrap();
        assert_eq!(
            &response[20..],
            &[
                0x00, 0x20, 0x00, 0x14, 0x00, 0x02, 0xa1, 0x47, 0x01, 0x13, 0xa9, 0xfa, 0xa5, 0xd3,
                0xf1, 0x79, 0xbc, 0x25, 0xf4, 0xb5, 0xbe, 0xd2, 0xb9, 0xd9
            ]
        );
        // Only a Binding request is answered.
        assert_eq!(stun_binding_success(&response, from), None);
        assert_eq!(stun_binding_success(b"\r\n\r\n", from), None);
    }
}
