//! Raw IP packets (IPv4 or IPv6, no link-layer header) built with etherparse, which writes the
//! length fields and checksums.

use std::net::{IpAddr, SocketAddr};

use etherparse::{IpHeaders, PacketBuilder, PacketBuilderStep, TcpHeader, icmpv4, icmpv6};

use super::tcp::{Segment, WINDOW};

/// TTL / hop limit of every synthesized packet (Linux's default).
const TTL: u8 = 64;

/// Largest UDP payload an IPv4 packet can carry (65535 − 20 − 8).
const MAX_UDP_V4: usize = 65_507;
/// Largest UDP payload an IPv6 packet can carry without a jumbogram (65535 − 8).
const MAX_UDP_V6: usize = 65_527;

/// RFC 1812 §4.3.2.3: an ICMPv4 error is at most 576 bytes, so this much of the offending
/// packet is quoted (576 − 20 − 8), as Linux does.
const ICMPV4_QUOTE: usize = 548;
/// RFC 4443 §2.4 (c): an ICMPv6 error must fit the minimum MTU (1280 − 40 − 8).
const ICMPV6_QUOTE: usize = 1_232;

/// Why etherparse would not build a packet (sizes are bounded before, so this is not expected).
#[derive(Debug)]
pub struct BuildError(pub String);

/// The IP layer from `src` to `dst`; `None` when the families differ (no such packet exists).
fn ip(src: IpAddr, dst: IpAddr) -> Option<PacketBuilderStep<IpHeaders>> {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => Some(PacketBuilder::ipv4(s.octets(), d.octets(), TTL)),
        (IpAddr::V6(s), IpAddr::V6(d)) => Some(PacketBuilder::ipv6(s.octets(), d.octets(), TTL)),
        _ => None,
    }
}

/// A UDP datagram. A payload bigger than one IP packet can hold cannot have been one datagram;
/// it is truncated to the largest that fits rather than dropped.
pub fn udp(
    src: SocketAddr,
    dst: SocketAddr,
    payload: &[u8],
) -> Result<Option<Vec<u8>>, BuildError> {
    let Some(builder) = ip(src.ip(), dst.ip()) else {
        return Ok(None);
    };
    let max = if src.is_ipv4() {
        MAX_UDP_V4
    } else {
        MAX_UDP_V6
    };
    let payload = &payload[..payload.len().min(max)];
    let builder = builder.udp(src.port(), dst.port());
    let mut out = Vec::with_capacity(builder.size(payload.len()));
    builder
        .write_to_vec(&mut out, payload)
        .map_err(|e| BuildError(format!("UDP {src} → {dst}: {e}")))?;
    Ok(Some(out))
}

/// One TCP segment from `src` to `dst` (the payload is at most one MSS, see `tcp::Flows`).
pub fn tcp(
    src: SocketAddr,
    dst: SocketAddr,
    segment: &Segment,
) -> Result<Option<Vec<u8>>, BuildError> {
    let Some(builder) = ip(src.ip(), dst.ip()) else {
        return Ok(None);
    };
    let mut header = TcpHeader::new(src.port(), dst.port(), segment.seq, WINDOW);
    header.syn = segment.flags.syn;
    header.ack = segment.flags.ack;
    header.psh = segment.flags.psh;
    header.fin = segment.flags.fin;
    header.rst = segment.flags.rst;
    if segment.flags.ack {
        header.acknowledgment_number = segment.ack;
    }
    let builder = builder.tcp_header(header);
    let mut out = Vec::with_capacity(builder.size(segment.payload.len()));
    builder
        .write_to_vec(&mut out, &segment.payload)
        .map_err(|e| BuildError(format!("TCP {src} → {dst}: {e}")))?;
    Ok(Some(out))
}

/// ICMP (ICMPv6 for IPv6) destination unreachable, port unreachable, from `from` to `to`,
/// quoting the start of `original` (a whole IP packet) as a router or kernel would.
pub fn port_unreachable(
    from: IpAddr,
    to: IpAddr,
    original: &[u8],
) -> Result<Option<Vec<u8>>, BuildError> {
    let Some(builder) = ip(from, to) else {
        return Ok(None);
    };
    let mut out = Vec::new();
    let result = if from.is_ipv4() {
        let quote = &original[..original.len().min(ICMPV4_QUOTE)];
        builder
            .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
                icmpv4::DestUnreachableHeader::Port,
            ))
            .write_to_vec(&mut out, quote)
    } else {
        let quote = &original[..original.len().min(ICMPV6_QUOTE)];
        builder
            .icmpv6(etherparse::Icmpv6Type::DestinationUnreachable(
                icmpv6::DestUnreachableCode::Port,
            ))
            .write_to_vec(&mut out, quote)
    };
    result.map_err(|e| BuildError(format!("ICMP {from} → {to}: {e}")))?;
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use etherparse::{NetSlice, SlicedPacket, TransportSlice};

    use super::*;

    fn v4(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn udp_over_ipv4_and_ipv6_and_none_for_mixed_families() {
        let p = udp(v4("127.0.0.1:5070"), v4("127.0.0.52:5060"), b"hi")
            .unwrap()
            .unwrap();
        let sliced = SlicedPacket::from_ip(&p).unwrap();
        assert!(matches!(sliced.net, Some(NetSlice::Ipv4(_))));
        let Some(TransportSlice::Udp(u)) = sliced.transport else {
            panic!("not UDP");
        };
        assert_eq!((u.source_port(), u.destination_port()), (5070, 5060));
        assert_eq!(u.payload(), b"hi");

        let p6 = udp(v4("[::1]:5070"), v4("[::1]:5060"), b"")
            .unwrap()
            .unwrap();
        assert!(matches!(
            SlicedPacket::from_ip(&p6).unwrap().net,
            Some(NetSlice::Ipv6(_))
        ));

        assert!(
            udp(v4("127.0.0.1:1"), v4("[::1]:2"), b"x")
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn oversized_udp_payload_is_truncated_to_what_fits() {
        let huge = vec![b'a'; 70_000];
        let p = udp(v4("127.0.0.1:1"), v4("127.0.0.1:2"), &huge)
            .unwrap()
            .unwrap();
        assert_eq!(p.len(), 65_535);
        let p6 = udp(v4("[::1]:1"), v4("[::1]:2"), &huge).unwrap().unwrap();
        assert_eq!(p6.len(), 40 + 65_535);
    }

    #[test]
    fn icmp_quotes_at_most_576_bytes_in_all() {
        let original = udp(v4("127.0.0.1:5070"), v4("127.0.0.52:5060"), &[b'x'; 1000])
            .unwrap()
            .unwrap();
        let icmp = port_unreachable(
            "127.0.0.52".parse().unwrap(),
            "127.0.0.1".parse().unwrap(),
            &original,
        )
        .unwrap()
        .unwrap();
        assert_eq!(icmp.len(), 576);
        assert_eq!(&icmp[28..], &original[..548]);

        let small = port_unreachable(
            "::1".parse().unwrap(),
            "::1".parse().unwrap(),
            &original[..100],
        )
        .unwrap()
        .unwrap();
        assert_eq!(small.len(), 40 + 8 + 100);
    }
}
