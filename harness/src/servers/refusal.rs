//! Seeing refused attempts. A refusing server is a closed port, so the kernel refuses for real
//! (ICMP port unreachable for UDP, RST for TCP) and no socket of ours receives the attempt.
//! Raw sockets (root or CAP_NET_RAW) see the kernel's ICMP, which quotes the refused datagram,
//! and the RST; each becomes a `Refused` event for the server that refuses on that port, except
//! a refused RFC 5626 keep-alive (the quote shows only line ends, or a STUN header): a
//! `KeepAlive` event marked refused, never an attempt.
//!
//! Without the privilege this says so, once, on the timeline and to the caller: nothing is
//! recorded silently.
//!
//! IPv6: a raw ICMPv6 socket sees the port unreachable (type 1 code 4) for refused UDP over
//! IPv6, and a raw IPv6 TCP socket the RST, whose addresses come from the socket (the source,
//! and IPV6_PKTINFO's destination) since a raw IPv6 socket delivers no IPv6 header.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use crate::sip::{keepalive, summarize_partial};
use crate::timeline::{
    Event, EventKind, Flow, KeepAlive, RefusalSeen, Refused, SipSummary, Timeline, Transport,
};

/// A refusing socket: address, port, transport.
type PortKey = (IpAddr, u16, Transport);

/// Which (address, port, transport) refuse right now, and for which server.
#[derive(Clone, Default)]
pub struct RefusingPorts {
    ports: Arc<RwLock<HashMap<PortKey, String>>>,
}

impl RefusingPorts {
    pub fn insert(&self, addr: SocketAddr, transport: Transport, server: &str) {
        self.ports
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((addr.ip(), addr.port(), transport), server.to_string());
    }

    pub fn remove(&self, addr: SocketAddr, transport: Transport) {
        self.ports
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&(addr.ip(), addr.port(), transport));
    }

    /// The refusing server at `addr` as the raw socket of `transport` sees it, and the transport
    /// it was refusing: a TLS port's refusal is a TCP RST.
    fn server(&self, addr: SocketAddr, transport: Transport) -> Option<(String, Transport)> {
        let ports = self.ports.read().unwrap_or_else(PoisonError::into_inner);
        let candidates: &[Transport] = match transport {
            Transport::Udp => &[Transport::Udp],
            Transport::Tcp | Transport::Tls => &[Transport::Tcp, Transport::Tls],
        };
        candidates.iter().find_map(|t| {
            ports
                .get(&(addr.ip(), addr.port(), *t))
                .map(|server| (server.clone(), *t))
        })
    }
}

/// Watches for refusals on every refusing port until dropped.
pub struct RefusalWatcher {
    pub ports: RefusingPorts,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

#[derive(Debug, thiserror::Error)]
#[error(
    "refused attempts cannot be observed: opening a raw socket failed ({0}); run srvlab as root \
     or give it CAP_NET_RAW (setcap cap_net_raw+ep) — the refusals themselves still happen"
)]
pub struct WatchError(io::Error);

impl RefusalWatcher {
    /// Opens the raw sockets (IPv4 ICMP and TCP, ICMPv6) and starts reading them.
    pub fn start(timeline: Timeline) -> Result<Self, WatchError> {
        let icmp = raw_socket(Domain::IPV4, Protocol::ICMPV4).map_err(WatchError)?;
        let tcp = raw_socket(Domain::IPV4, Protocol::TCP).map_err(WatchError)?;
        let mut sockets: Vec<(std::net::UdpSocket, Transport, Parser)> = vec![
            (icmp, Transport::Udp, |p, _| parse_icmp_port_unreachable(p)),
            (tcp, Transport::Tcp, |p, _| parse_rst(p)),
        ];
        // A host without IPv6 (or a namespace with it switched off) still watches IPv4.
        let ipv6 = raw_socket(Domain::IPV6, Protocol::ICMPV6).and_then(|icmp6| {
            let tcp6 = raw_socket(Domain::IPV6, Protocol::TCP)?;
            super::stamp::enable_destination(&tcp6)?;
            Ok((icmp6, tcp6))
        });
        match ipv6 {
            Ok((icmp6, tcp6)) => {
                sockets.push((icmp6, Transport::Udp, |p, _| {
                    parse_icmpv6_port_unreachable(p)
                }));
                sockets.push((tcp6, Transport::Tcp, parse_rst_v6));
            }
            Err(err) => {
                timeline.record(EventKind::Note {
                    text: format!(
                        "refusals: no raw IPv6 sockets ({err}): refusals over IPv6 are not observed"
                    ),
                });
            }
        }
        let ports = RefusingPorts::default();
        let stop = Arc::new(AtomicBool::new(false));
        let threads = sockets
            .into_iter()
            .enumerate()
            .map(|(i, (socket, transport, parse))| {
                let ports = ports.clone();
                let stop = stop.clone();
                let timeline = timeline.clone();
                std::thread::Builder::new()
                    .name(format!("srvlab-refusals-{transport}-{i}"))
                    .spawn(move || read_loop(&socket, transport, parse, &ports, &stop, &timeline))
                    .map_err(WatchError)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            ports,
            stop,
            threads,
        })
    }
}

impl Drop for RefusalWatcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// How a raw socket's packet is read as a refusal, with the addresses the socket told.
type Parser = fn(&[u8], &Addresses) -> Option<SeenRefusal>;

/// Where a raw packet came from and went, as the socket (not the packet) says.
pub struct Addresses {
    pub source: Option<SocketAddr>,
    pub destination: Option<Ipv6Addr>,
}

/// A raw socket; a std `UdpSocket` is just a datagram fd, which lets us read it safely.
fn raw_socket(domain: Domain, protocol: Protocol) -> io::Result<std::net::UdpSocket> {
    let socket = Socket::new(domain, Type::RAW, Some(protocol))?;
    // Short, so that the thread notices when it should stop.
    socket.set_read_timeout(Some(Duration::from_millis(100)))?;
    // The kernel's receive time: this thread may read the packet after the device has already
    // moved on to its next target, and the timeline must show the refusal first.
    super::stamp::enable(&socket)?;
    Ok(socket.into())
}

fn read_loop(
    socket: &std::net::UdpSocket,
    transport: Transport,
    parse: Parser,
    ports: &RefusingPorts,
    stop: &AtomicBool,
    timeline: &Timeline,
) {
    let mut buf = vec![0u8; 65536];
    while !stop.load(Ordering::Relaxed) {
        let (len, addresses, stamp) = match super::stamp::receive_with_destination(socket, &mut buf)
        {
            Ok((len, source, destination, stamp)) => (
                len,
                Addresses {
                    source,
                    destination,
                },
                stamp,
            ),
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(err) => {
                timeline.record(EventKind::Note {
                    text: format!("refusals: reading the raw {transport} socket failed: {err}"),
                });
                return;
            }
        };
        let packet = &buf[..len];
        let seen = parse(packet, &addresses);
        if let Some(seen) = seen
            && let Some((server, refused_transport)) = ports.server(seen.local, transport)
        {
            let seen_ns = stamp.and_then(|at| Event::ns_since(timeline.wall_start(), at));
            timeline.record(refusal_event(seen, server, refused_transport, seen_ns));
        }
    }
}

/// The event a refusal seen for `server` (refusing on `transport`) becomes.
pub fn refusal_event(
    seen: SeenRefusal,
    server: String,
    transport: Transport,
    seen_ns: Option<u64>,
) -> EventKind {
    if transport == Transport::Udp
        && let Some(kind) = keepalive::classify_quote(&seen.payload)
    {
        return EventKind::KeepAlive(KeepAlive {
            server,
            transport,
            local: seen.local,
            remote: seen.remote,
            flow: Flow::ToServer,
            kind,
            refused: true,
            seen_ns,
            raw: seen.payload,
        });
    }
    EventKind::Refused(Refused {
        server,
        transport,
        local: seen.local,
        remote: seen.remote,
        seen: match transport {
            Transport::Udp => RefusalSeen::Icmp,
            Transport::Tcp | Transport::Tls => RefusalSeen::Rst,
        },
        seen_ns,
        summary: if seen.payload.is_empty() {
            SipSummary::default()
        } else {
            summarize_partial(&seen.payload)
        },
        raw: seen.payload,
    })
}

/// What a refusal packet tells: the refused address (ours), the device's, and what was visible
/// of the refused payload.
#[derive(Debug, PartialEq, Eq)]
pub struct SeenRefusal {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub payload: Vec<u8>,
}

/// The IPv4 header's length, when `packet` starts with a plausible one.
fn ipv4_header_len(packet: &[u8]) -> Option<usize> {
    let first = *packet.first()?;
    if first >> 4 != 4 {
        return None;
    }
    let len = usize::from(first & 0x0f) * 4;
    (len >= 20 && packet.len() >= len).then_some(len)
}

fn ipv4_at(packet: &[u8], offset: usize) -> Option<Ipv4Addr> {
    let bytes: [u8; 4] = packet.get(offset..offset + 4)?.try_into().ok()?;
    Some(Ipv4Addr::from(bytes))
}

fn port_at(packet: &[u8], offset: usize) -> Option<u16> {
    let bytes: [u8; 2] = packet.get(offset..offset + 2)?.try_into().ok()?;
    Some(u16::from_be_bytes(bytes))
}

/// An ICMP destination unreachable / port unreachable (type 3 code 3) quoting a UDP datagram:
/// the quoted datagram went from the device to the refused port.
pub fn parse_icmp_port_unreachable(packet: &[u8]) -> Option<SeenRefusal> {
    let outer = ipv4_header_len(packet)?;
    let icmp = packet.get(outer..)?;
    if icmp.first() != Some(&3) || icmp.get(1) != Some(&3) {
        return None;
    }
    let quoted = icmp.get(8..)?;
    let inner = ipv4_header_len(quoted)?;
    if quoted.get(9) != Some(&17) {
        return None; // not UDP
    }
    let device = ipv4_at(quoted, 12)?;
    let refused = ipv4_at(quoted, 16)?;
    let udp = quoted.get(inner..)?;
    let source_port = port_at(udp, 0)?;
    let dest_port = port_at(udp, 2)?;
    Some(SeenRefusal {
        local: SocketAddr::new(refused.into(), dest_port),
        remote: SocketAddr::new(device.into(), source_port),
        payload: udp.get(8..).unwrap_or_default().to_vec(),
    })
}

/// An ICMPv6 destination unreachable / port unreachable (type 1 code 4) quoting a UDP
/// datagram. A raw IPv6 socket delivers the ICMPv6 message without the IPv6 header in front
/// (unlike IPv4); the quoted datagram's IPv6 header names both ends.
pub fn parse_icmpv6_port_unreachable(packet: &[u8]) -> Option<SeenRefusal> {
    if packet.first() != Some(&1) || packet.get(1) != Some(&4) {
        return None;
    }
    let quoted = packet.get(8..)?;
    if quoted.first()? >> 4 != 6 || quoted.get(6) != Some(&17) {
        return None; // not IPv6, or not UDP right after the fixed header
    }
    let device: [u8; 16] = quoted.get(8..24)?.try_into().ok()?;
    let refused: [u8; 16] = quoted.get(24..40)?.try_into().ok()?;
    let udp = quoted.get(40..)?;
    Some(SeenRefusal {
        local: SocketAddr::new(Ipv6Addr::from(refused).into(), port_at(udp, 2)?),
        remote: SocketAddr::new(Ipv6Addr::from(device).into(), port_at(udp, 0)?),
        payload: udp.get(8..).unwrap_or_default().to_vec(),
    })
}

/// A TCP segment with RST and ACK set: the kernel's answer to a SYN for a closed port.
/// It goes from the refused port to the device.
pub fn parse_rst(packet: &[u8]) -> Option<SeenRefusal> {
    let header = ipv4_header_len(packet)?;
    if packet.get(9) != Some(&6) {
        return None;
    }
    let from = ipv4_at(packet, 12)?;
    let to = ipv4_at(packet, 16)?;
    rst_segment(packet.get(header..)?, from.into(), to.into())
}

/// [`parse_rst`] over IPv6: `segment` is the TCP segment alone, its addresses the socket's.
pub fn parse_rst_v6(segment: &[u8], addresses: &Addresses) -> Option<SeenRefusal> {
    let from = addresses.source?.ip();
    let to = addresses.destination?;
    rst_segment(segment, from, to.into())
}

/// A RST/ACK answering a SYN, from `from` (the refused port) to `to` (the device).
fn rst_segment(tcp: &[u8], from: IpAddr, to: IpAddr) -> Option<SeenRefusal> {
    let flags = *tcp.get(13)?;
    const RST: u8 = 0x04;
    const ACK: u8 = 0x10;
    const SYN: u8 = 0x02;
    if flags & (RST | ACK | SYN) != RST | ACK {
        return None;
    }
    // The answer to a SYN for a closed port has sequence number 0; a reset of an established
    // connection (our own, when a server crashes mid-call) carries the real one.
    if tcp.get(4..8)? != [0, 0, 0, 0] {
        return None;
    }
    Some(SeenRefusal {
        local: SocketAddr::new(from, port_at(tcp, 0)?),
        remote: SocketAddr::new(to, port_at(tcp, 2)?),
        payload: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeline::KeepAliveKind;

    fn ipv4_header(protocol: u8, src: [u8; 4], dst: [u8; 4], total: usize) -> Vec<u8> {
        let mut h = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, protocol, 0, 0];
        h[2..4].copy_from_slice(&u16::try_from(total).unwrap().to_be_bytes());
        h.extend_from_slice(&src);
        h.extend_from_slice(&dst);
        h
    }

    #[test]
    fn an_icmp_port_unreachable_names_the_refused_port_and_quotes_the_request() {
        let payload = b"OPTIONS sip:x@127.0.0.34 SIP/2.0\r\nCall-ID: abc\r\n";
        let mut udp = vec![0x13, 0x88, 0x13, 0xc4, 0, 0, 0, 0]; // 5000 → 5060
        udp.extend_from_slice(payload);
        let mut quoted = ipv4_header(17, [127, 0, 0, 1], [127, 0, 0, 34], 20 + udp.len());
        quoted.extend_from_slice(&udp);
        let mut icmp = vec![3, 3, 0, 0, 0, 0, 0, 0];
        icmp.extend_from_slice(&quoted);
        let mut packet = ipv4_header(1, [127, 0, 0, 34], [127, 0, 0, 1], 20 + icmp.len());
        packet.extend_from_slice(&icmp);
        let seen = parse_icmp_port_unreachable(&packet).unwrap();
        assert_eq!(seen.local, "127.0.0.34:5060".parse().unwrap());
        assert_eq!(seen.remote, "127.0.0.1:5000".parse().unwrap());
        assert_eq!(seen.payload, payload);
        // Other ICMP (echo reply, host unreachable) and garbage are not refusals.
        let mut other = packet.clone();
        other[21] = 1;
        assert_eq!(parse_icmp_port_unreachable(&other), None);
        for cut in 0..packet.len() - payload.len() - 8 {
            let _ = parse_icmp_port_unreachable(&packet[..cut]);
        }
        assert_eq!(parse_icmp_port_unreachable(&[]), None);
    }

    /// Issue 14: a keep-alive the kernel refused is a refused keep-alive, not an attempt.
    #[test]
    fn a_refused_keep_alive_is_recorded_as_one() {
        let refused = |payload: &[u8], transport| {
            let seen = SeenRefusal {
                local: "127.0.0.34:5060".parse().unwrap(),
                remote: "127.0.0.1:5000".parse().unwrap(),
                payload: payload.to_vec(),
            };
            refusal_event(seen, "s.".into(), transport, Some(7))
        };
        let mut stun = vec![0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42];
        stun.extend_from_slice(&[9; 12]);
        for (payload, kind) in [
            (&b"\r\n\r\n"[..], KeepAliveKind::DoubleCrlf),
            (b"\r\n", KeepAliveKind::Crlf),
            (&stun, KeepAliveKind::StunRequest),
        ] {
            match refused(payload, Transport::Udp) {
                EventKind::KeepAlive(k) => {
                    assert_eq!((k.kind, k.refused, k.flow), (kind, true, Flow::ToServer));
                    assert_eq!((k.raw.as_slice(), k.seen_ns), (payload, Some(7)));
                }
                other => panic!("{other:?}"),
            }
        }
        let EventKind::Refused(r) = refused(
            b"OPTIONS sip:x SIP/2.0\r\nCall-ID: a\r\n\r\n",
            Transport::Udp,
        ) else {
            panic!("a request is refused as one");
        };
        assert_eq!(r.summary.call_id.as_deref(), Some("a"));
        assert!(
            matches!(refused(b"", Transport::Tls), EventKind::Refused(r) if r.seen == RefusalSeen::Rst)
        );
    }

    #[test]
    fn an_icmpv6_port_unreachable_names_the_refused_port_and_quotes_the_request() {
        let payload = b"INVITE sip:100@v6.test SIP/2.0\r\nCall-ID: abc\r\n";
        let mut udp = vec![0x13, 0x88, 0x16, 0x46, 0, 0, 0, 0]; // 5000 → 5702
        udp.extend_from_slice(payload);
        let device: Ipv6Addr = "fd00::9".parse().unwrap();
        let refused: Ipv6Addr = "::1".parse().unwrap();
        let mut quoted = vec![0x60, 0, 0, 0, 0, 0, 17, 64];
        quoted[4..6].copy_from_slice(&u16::try_from(udp.len()).unwrap().to_be_bytes());
        quoted.extend_from_slice(&device.octets());
        quoted.extend_from_slice(&refused.octets());
        quoted.extend_from_slice(&udp);
        let mut packet = vec![1, 4, 0, 0, 0, 0, 0, 0];
        packet.extend_from_slice(&quoted);
        let seen = parse_icmpv6_port_unreachable(&packet).unwrap();
        assert_eq!(seen.local, "[::1]:5702".parse().unwrap());
        assert_eq!(seen.remote, "[fd00::9]:5000".parse().unwrap());
        assert_eq!(seen.payload, payload);
        // Other ICMPv6 (echo reply, no route) and garbage are not refusals.
        let mut other = packet.clone();
        other[1] = 0;
        assert_eq!(parse_icmpv6_port_unreachable(&other), None);
        for cut in 0..packet.len() - payload.len() - 8 {
            let _ = parse_icmpv6_port_unreachable(&packet[..cut]);
        }
        assert_eq!(parse_icmpv6_port_unreachable(&[]), None);
    }

    #[test]
    fn only_rst_ack_is_a_refusal() {
        let mut tcp = vec![0u8; 20];
        tcp[0..2].copy_from_slice(&5060u16.to_be_bytes());
        tcp[2..4].copy_from_slice(&40000u16.to_be_bytes());
        tcp[12] = 0x50;
        let mut packet = ipv4_header(6, [127, 0, 0, 34], [127, 0, 0, 1], 40);
        packet.extend_from_slice(&tcp);
        for (flags, refusal) in [(0x14, true), (0x04, false), (0x12, false), (0x02, false)] {
            packet[20 + 13] = flags;
            assert_eq!(parse_rst(&packet).is_some(), refusal, "flags {flags:#x}");
        }
        packet[20 + 13] = 0x14;
        let seen = parse_rst(&packet).unwrap();
        assert_eq!(seen.local, "127.0.0.34:5060".parse().unwrap());
        assert_eq!(seen.remote, "127.0.0.1:40000".parse().unwrap());
        // Over IPv6 the segment comes alone; the socket names both ends.
        let addresses = Addresses {
            source: Some("[fd00::1]:0".parse().unwrap()),
            destination: Some("fd00::9".parse().unwrap()),
        };
        let seen = parse_rst_v6(&packet[20..], &addresses).unwrap();
        assert_eq!(seen.local, "[fd00::1]:5060".parse().unwrap());
        assert_eq!(seen.remote, "[fd00::9]:40000".parse().unwrap());
        let unknown = Addresses {
            destination: None,
            ..addresses
        };
        assert_eq!(parse_rst_v6(&packet[20..], &unknown), None);
    }
}
