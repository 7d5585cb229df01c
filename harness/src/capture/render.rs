//! What each timeline event looks like on the wire: zero or more IP packets.

use std::net::SocketAddr;

use super::packet::{self, BuildError};
use super::tcp::{self, Direction, Flows, Segment};
use crate::timeline::{EventKind, Flow, RefusalSeen, Transport};

/// Turns events into packets, keeping the TCP flows between events.
#[derive(Debug, Default)]
pub struct Renderer {
    flows: Flows,
}

impl Renderer {
    /// The packets `kind` stands for, in order. Events between addresses of different families
    /// (which cannot be one packet) give none.
    pub fn packets(&mut self, kind: &EventKind) -> Result<Vec<Vec<u8>>, BuildError> {
        let mut out = Vec::new();
        match kind {
            EventKind::DnsQuery(q) => {
                out.extend(self.message(
                    q.transport,
                    q.client,
                    q.server,
                    Direction::ToServer,
                    &q.raw,
                    true,
                )?);
            }
            EventKind::DnsAnswer(a) => {
                out.extend(self.message(
                    a.transport,
                    a.client,
                    a.server,
                    Direction::ToClient,
                    &a.raw,
                    true,
                )?);
            }
            EventKind::DnsMalformed(m) => {
                // A message cut short went out as it was, prefix and all: no framing to add.
                let query = if m.cut_short && m.transport == Transport::Tcp {
                    self.stream(m.client, m.server, Direction::ToServer, &m.raw)?
                } else {
                    self.message(
                        m.transport,
                        m.client,
                        m.server,
                        Direction::ToServer,
                        &m.raw,
                        true,
                    )?
                };
                out.extend(query);
                if !m.answer.is_empty() {
                    out.extend(self.message(
                        m.transport,
                        m.client,
                        m.server,
                        Direction::ToClient,
                        &m.answer,
                        true,
                    )?);
                }
            }
            EventKind::SipReceived(m) => {
                out.extend(self.message(
                    m.transport,
                    m.remote,
                    m.local,
                    Direction::ToServer,
                    &m.raw,
                    false,
                )?);
            }
            EventKind::SipMalformed(m) => {
                out.extend(self.message(
                    m.transport,
                    m.remote,
                    m.local,
                    Direction::ToServer,
                    &m.raw,
                    false,
                )?);
            }
            EventKind::SipSent(m) => {
                out.extend(self.message(
                    m.transport,
                    m.remote,
                    m.local,
                    Direction::ToClient,
                    &m.raw,
                    false,
                )?);
            }
            // The SIP inside TLS is on the timeline decrypted; the wire carried these records.
            EventKind::TlsBytes(b) if same_family(b.remote, b.local) => {
                let direction = match b.flow {
                    Flow::ToServer => Direction::ToServer,
                    Flow::ToDevice => Direction::ToClient,
                };
                let segments = self.flows.send(b.remote, b.local, direction, &b.raw);
                segments_to_packets(b.remote, b.local, &segments, &mut out)?;
            }
            EventKind::TcpConnected(c) if same_family(c.remote, c.local) => {
                let segments = self.flows.connect(c.remote, c.local);
                segments_to_packets(c.remote, c.local, &segments, &mut out)?;
            }
            // Over TCP the device's bytes as they were on the wire; over TLS the wire's records
            // are TlsBytes already, and these are what they decrypted to.
            EventKind::TcpUnframed(u) => {
                out.extend(self.message(
                    u.transport,
                    u.remote,
                    u.local,
                    Direction::ToServer,
                    &u.raw,
                    false,
                )?);
            }
            EventKind::TcpClosed(c) if same_family(c.remote, c.local) => {
                let segments = self.flows.close(c.remote, c.local, c.how);
                segments_to_packets(c.remote, c.local, &segments, &mut out)?;
            }
            // Refused: the datagram and the kernel's ICMP, as a refused request is drawn.
            EventKind::KeepAlive(k) if k.refused && same_family(k.remote, k.local) => {
                if let Some(datagram) = packet::udp(k.remote, k.local, &k.raw)? {
                    let icmp = packet::port_unreachable(k.local.ip(), k.remote.ip(), &datagram)?;
                    out.push(datagram);
                    out.extend(icmp);
                }
            }
            // The payload it was: over TCP in the connection's stream, between its messages.
            EventKind::KeepAlive(k) => {
                let direction = match k.flow {
                    Flow::ToServer => Direction::ToServer,
                    Flow::ToDevice => Direction::ToClient,
                };
                out.extend(self.message(
                    k.transport,
                    k.remote,
                    k.local,
                    direction,
                    &k.raw,
                    false,
                )?);
            }
            EventKind::Refused(r) if same_family(r.remote, r.local) => match r.seen {
                RefusalSeen::Icmp => {
                    if let Some(datagram) = packet::udp(r.remote, r.local, &r.raw)? {
                        let icmp =
                            packet::port_unreachable(r.local.ip(), r.remote.ip(), &datagram)?;
                        out.push(datagram);
                        out.extend(icmp);
                    }
                }
                RefusalSeen::Rst => {
                    segments_to_packets(
                        r.remote,
                        r.local,
                        &tcp::refused(r.remote, r.local),
                        &mut out,
                    )?;
                }
            },
            // A dropped query was already written as the query; the rest has no packets.
            EventKind::DnsDropped(_)
            | EventKind::TcpConnected(_)
            | EventKind::TcpClosed(_)
            | EventKind::TlsBytes(_)
            | EventKind::TlsSecret(_)
            | EventKind::TlsFailed(_)
            | EventKind::Refused(_)
            | EventKind::PhaseChanged(_)
            | EventKind::Step { .. }
            | EventKind::Note { .. }
            | EventKind::Trigger { .. }
            | EventKind::Stopped { .. }
            | EventKind::HostDelay { .. }
            | EventKind::HostStall { .. } => {}
        }
        Ok(out)
    }

    /// One DNS or SIP message between `client` (who connects over TCP) and `server`.
    fn message(
        &mut self,
        transport: Transport,
        client: SocketAddr,
        server: SocketAddr,
        direction: Direction,
        raw: &[u8],
        dns: bool,
    ) -> Result<Vec<Vec<u8>>, BuildError> {
        if !same_family(client, server) {
            return Ok(Vec::new());
        }
        let (src, dst) = match direction {
            Direction::ToServer => (client, server),
            Direction::ToClient => (server, client),
        };
        match transport {
            Transport::Udp => Ok(packet::udp(src, dst, raw)?.into_iter().collect()),
            Transport::Tcp => {
                let data = if dns { dns_over_tcp(raw) } else { raw.to_vec() };
                self.stream(client, server, direction, &data)
            }
            // Decrypted SIP: its TLS records are TlsBytes events.
            Transport::Tls => Ok(Vec::new()),
        }
    }

    /// `data` as it crossed the TCP connection between `client` and `server`.
    fn stream(
        &mut self,
        client: SocketAddr,
        server: SocketAddr,
        direction: Direction,
        data: &[u8],
    ) -> Result<Vec<Vec<u8>>, BuildError> {
        if !same_family(client, server) {
            return Ok(Vec::new());
        }
        let segments = self.flows.send(client, server, direction, data);
        let mut out = Vec::new();
        segments_to_packets(client, server, &segments, &mut out)?;
        Ok(out)
    }
}

fn same_family(a: SocketAddr, b: SocketAddr) -> bool {
    a.is_ipv4() == b.is_ipv4()
}

/// RFC 1035 §4.2.2: a two-byte length, then the message. A message longer than 65535 bytes
/// cannot be framed; it is truncated to the longest that can (no real DNS message is longer).
fn dns_over_tcp(raw: &[u8]) -> Vec<u8> {
    let raw = &raw[..raw.len().min(usize::from(u16::MAX))];
    let mut data = Vec::with_capacity(2 + raw.len());
    data.extend_from_slice(&(raw.len() as u16).to_be_bytes());
    data.extend_from_slice(raw);
    data
}

fn segments_to_packets(
    client: SocketAddr,
    server: SocketAddr,
    segments: &[Segment],
    out: &mut Vec<Vec<u8>>,
) -> Result<(), BuildError> {
    for segment in segments {
        let (src, dst) = match segment.direction {
            Direction::ToServer => (client, server),
            Direction::ToClient => (server, client),
        };
        out.extend(packet::tcp(src, dst, segment)?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeline::{CloseKind, SipMessage, TcpClosed, TcpConnection};

    fn sip(transport: Transport, local: &str, remote: &str, raw: &[u8]) -> SipMessage {
        SipMessage {
            seen_ns: None,
            server: "s".into(),
            transport,
            local: local.parse().unwrap(),
            remote: remote.parse().unwrap(),
            summary: Default::default(),
            raw: raw.to_vec(),
        }
    }

    #[test]
    fn mixed_families_empty_and_huge_payloads_never_panic() {
        let mut r = Renderer::default();
        for transport in [Transport::Udp, Transport::Tcp] {
            let mixed = sip(transport, "127.0.0.1:5060", "[::1]:5070", b"x");
            assert!(
                r.packets(&EventKind::SipReceived(mixed))
                    .unwrap()
                    .is_empty()
            );
            let empty = sip(transport, "127.0.0.1:5060", "127.0.0.1:5070", b"");
            r.packets(&EventKind::SipSent(empty)).unwrap();
            let huge = sip(transport, "[::1]:5060", "[::1]:5070", &vec![b'a'; 200_000]);
            assert!(!r.packets(&EventKind::SipSent(huge)).unwrap().is_empty());
        }
        assert!(
            r.packets(&EventKind::TcpConnected(TcpConnection {
                server: "s".into(),
                local: "127.0.0.1:5060".parse().unwrap(),
                remote: "[::1]:5070".parse().unwrap(),
            }))
            .unwrap()
            .is_empty()
        );
    }

    #[test]
    fn tcp_message_without_connect_gets_a_handshake_and_close_forgets() {
        let mut r = Renderer::default();
        let m = sip(
            Transport::Tcp,
            "127.0.0.1:5060",
            "127.0.0.1:5070",
            b"OPTIONS",
        );
        // SYN, SYN/ACK, ACK, data, ACK.
        assert_eq!(
            r.packets(&EventKind::SipReceived(m.clone())).unwrap().len(),
            5
        );
        assert_eq!(
            r.packets(&EventKind::SipReceived(m.clone())).unwrap().len(),
            2
        );
        let close = EventKind::TcpClosed(TcpClosed {
            server: "s".into(),
            local: m.local,
            remote: m.remote,
            how: CloseKind::Peer,
        });
        assert_eq!(r.packets(&close).unwrap().len(), 3);
        assert_eq!(r.packets(&close).unwrap().len(), 0);
    }

    #[test]
    fn dns_over_tcp_is_length_prefixed() {
        assert_eq!(dns_over_tcp(&[1, 2, 3]), vec![0, 3, 1, 2, 3]);
        let framed = dns_over_tcp(&vec![0; 70_000]);
        assert_eq!(framed.len(), 2 + 65_535);
        assert_eq!(&framed[..2], &[0xff, 0xff]);
    }
}
