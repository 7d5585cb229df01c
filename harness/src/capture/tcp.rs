//! TCP flow bookkeeping: which connections are open and their sequence numbers, so the
//! synthesized segments form streams Wireshark accepts without "previous segment not captured"
//! or "ACKed unseen segment" warnings.
//!
//! Pure arithmetic, no I/O: every call returns the segments to write, in order.

use std::collections::HashMap;
use std::net::SocketAddr;

use crate::timeline::CloseKind;

/// Largest payload put in one segment. The timeline keeps a message whole; bigger ones are split
/// (an IPv4 packet cannot exceed 65535 bytes). The loopback MSS, so it fits IPv4 and IPv6.
pub const MAX_SEGMENT: usize = 65_483;

/// The advertised receive window (no window scaling is negotiated).
pub const WINDOW: u16 = 65_535;

/// Which way a segment travels in its flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// From the side that connected (the device, the DNS client).
    ToServer,
    /// From the side that accepted.
    ToClient,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flags {
    pub syn: bool,
    pub ack: bool,
    pub psh: bool,
    pub fin: bool,
    pub rst: bool,
}

impl Flags {
    const SYN: Self = Self {
        syn: true,
        ack: false,
        psh: false,
        fin: false,
        rst: false,
    };
    const SYN_ACK: Self = Self {
        ack: true,
        ..Self::SYN
    };
    const ACK: Self = Self {
        syn: false,
        ack: true,
        psh: false,
        fin: false,
        rst: false,
    };
    const PSH_ACK: Self = Self {
        psh: true,
        ..Self::ACK
    };
    const FIN_ACK: Self = Self {
        fin: true,
        ..Self::ACK
    };
    const RST_ACK: Self = Self {
        rst: true,
        ..Self::ACK
    };
}

/// One segment to write. `ack` is meaningful only when `flags.ack` is set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    pub direction: Direction,
    pub seq: u32,
    pub ack: u32,
    pub flags: Flags,
    pub payload: Vec<u8>,
}

/// (client, server): the side that connected first.
type FlowKey = (SocketAddr, SocketAddr);

/// The next sequence number each side will send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Flow {
    client_next: u32,
    server_next: u32,
}

/// The open TCP flows of one capture.
#[derive(Debug, Default)]
pub struct Flows {
    open: HashMap<FlowKey, Flow>,
    /// How many times each flow was opened, mixed into its initial sequence numbers so a reused
    /// port pair gets a fresh stream, as a real kernel would give it.
    opened: HashMap<FlowKey, u32>,
}

impl Flows {
    #[cfg(test)]
    pub fn is_open(&self, client: SocketAddr, server: SocketAddr) -> bool {
        self.open.contains_key(&(client, server))
    }

    /// The three-way handshake for a new flow; nothing if it is already open.
    pub fn connect(&mut self, client: SocketAddr, server: SocketAddr) -> Vec<Segment> {
        let key = (client, server);
        if self.open.contains_key(&key) {
            return Vec::new();
        }
        let generation = self.opened.entry(key).or_insert(0);
        let client_isn = initial_sequence(client, server, *generation, 0);
        let server_isn = initial_sequence(client, server, *generation, 1);
        *generation = generation.wrapping_add(1);
        self.open.insert(
            key,
            Flow {
                client_next: client_isn.wrapping_add(1),
                server_next: server_isn.wrapping_add(1),
            },
        );
        vec![
            segment(Direction::ToServer, client_isn, 0, Flags::SYN, Vec::new()),
            segment(
                Direction::ToClient,
                server_isn,
                client_isn.wrapping_add(1),
                Flags::SYN_ACK,
                Vec::new(),
            ),
            segment(
                Direction::ToServer,
                client_isn.wrapping_add(1),
                server_isn.wrapping_add(1),
                Flags::ACK,
                Vec::new(),
            ),
        ]
    }

    /// Data one way, each chunk acknowledged by the other side. Opens the flow first if it was
    /// never seen (hickory does not report DNS TCP connects). Empty data gives no segments.
    pub fn send(
        &mut self,
        client: SocketAddr,
        server: SocketAddr,
        direction: Direction,
        data: &[u8],
    ) -> Vec<Segment> {
        if data.is_empty() {
            return Vec::new();
        }
        let mut segments = self.connect(client, server);
        let Some(flow) = self.open.get_mut(&(client, server)) else {
            return segments;
        };
        for chunk in data.chunks(MAX_SEGMENT) {
            let len = chunk.len() as u32; // ≤ MAX_SEGMENT
            let (seq, ack) = match direction {
                Direction::ToServer => (&mut flow.client_next, flow.server_next),
                Direction::ToClient => (&mut flow.server_next, flow.client_next),
            };
            let start = *seq;
            *seq = start.wrapping_add(len);
            let acked_up_to = *seq;
            segments.push(segment(
                direction,
                start,
                ack,
                Flags::PSH_ACK,
                chunk.to_vec(),
            ));
            segments.push(segment(
                opposite(direction),
                ack,
                acked_up_to,
                Flags::ACK,
                Vec::new(),
            ));
        }
        segments
    }

    /// The end of a flow, then forgets it. Nothing for a flow that is not open: there are no
    /// sequence numbers to continue.
    pub fn close(
        &mut self,
        client: SocketAddr,
        server: SocketAddr,
        how: CloseKind,
    ) -> Vec<Segment> {
        let Some(flow) = self.open.remove(&(client, server)) else {
            return Vec::new();
        };
        let (c, s) = (flow.client_next, flow.server_next);
        match how {
            CloseKind::Peer => vec![
                segment(Direction::ToServer, c, s, Flags::FIN_ACK, Vec::new()),
                segment(
                    Direction::ToClient,
                    s,
                    c.wrapping_add(1),
                    Flags::FIN_ACK,
                    Vec::new(),
                ),
                segment(
                    Direction::ToServer,
                    c.wrapping_add(1),
                    s.wrapping_add(1),
                    Flags::ACK,
                    Vec::new(),
                ),
            ],
            CloseKind::Server => vec![
                segment(Direction::ToClient, s, c, Flags::FIN_ACK, Vec::new()),
                segment(
                    Direction::ToServer,
                    c,
                    s.wrapping_add(1),
                    Flags::FIN_ACK,
                    Vec::new(),
                ),
                segment(
                    Direction::ToClient,
                    s.wrapping_add(1),
                    c.wrapping_add(1),
                    Flags::ACK,
                    Vec::new(),
                ),
            ],
            CloseKind::PeerReset => vec![segment(
                Direction::ToServer,
                c,
                s,
                Flags::RST_ACK,
                Vec::new(),
            )],
            CloseKind::ServerReset => vec![segment(
                Direction::ToClient,
                s,
                c,
                Flags::RST_ACK,
                Vec::new(),
            )],
        }
    }
}

/// A connection attempt to a closed port: the SYN and the kernel's RST/ACK. No flow is kept.
pub fn refused(client: SocketAddr, server: SocketAddr) -> Vec<Segment> {
    let isn = initial_sequence(client, server, 0, 2);
    vec![
        segment(Direction::ToServer, isn, 0, Flags::SYN, Vec::new()),
        segment(
            Direction::ToClient,
            0,
            isn.wrapping_add(1),
            Flags::RST_ACK,
            Vec::new(),
        ),
    ]
}

fn opposite(direction: Direction) -> Direction {
    match direction {
        Direction::ToServer => Direction::ToClient,
        Direction::ToClient => Direction::ToServer,
    }
}

fn segment(direction: Direction, seq: u32, ack: u32, flags: Flags, payload: Vec<u8>) -> Segment {
    Segment {
        direction,
        seq,
        ack,
        flags,
        payload,
    }
}

/// A deterministic initial sequence number (FNV-1a over the flow), so the same timeline always
/// renders the same capture. `side` tells the client's, the server's and a refused SYN's apart.
fn initial_sequence(client: SocketAddr, server: SocketAddr, generation: u32, side: u8) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            hash ^= u32::from(*b);
            hash = hash.wrapping_mul(0x0100_0193);
        }
    };
    for addr in [client, server] {
        match addr.ip() {
            std::net::IpAddr::V4(ip) => eat(&ip.octets()),
            std::net::IpAddr::V6(ip) => eat(&ip.octets()),
        }
        eat(&addr.port().to_be_bytes());
    }
    eat(&generation.to_be_bytes());
    eat(&[side]);
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs() -> (SocketAddr, SocketAddr) {
        (
            "127.0.0.1:40000".parse().unwrap(),
            "127.0.0.52:5060".parse().unwrap(),
        )
    }

    #[test]
    fn handshake_once_per_flow_with_consistent_numbers() {
        let (c, s) = addrs();
        let mut flows = Flows::default();
        let hs = flows.connect(c, s);
        assert_eq!(hs.len(), 3);
        assert_eq!(hs[0].flags, Flags::SYN);
        assert_eq!(hs[0].direction, Direction::ToServer);
        assert_eq!(hs[1].flags, Flags::SYN_ACK);
        assert_eq!(hs[1].direction, Direction::ToClient);
        assert_eq!(hs[1].ack, hs[0].seq.wrapping_add(1));
        assert_eq!(hs[2].flags, Flags::ACK);
        assert_eq!(hs[2].seq, hs[0].seq.wrapping_add(1));
        assert_eq!(hs[2].ack, hs[1].seq.wrapping_add(1));
        assert!(flows.is_open(c, s));
        assert!(
            flows.connect(c, s).is_empty(),
            "a second connect is no new flow"
        );
        // Data on an open flow brings no new handshake either.
        assert!(
            flows
                .send(c, s, Direction::ToServer, b"x")
                .iter()
                .all(|seg| !seg.flags.syn)
        );
    }

    #[test]
    fn data_advances_sequence_numbers_both_ways() {
        let (c, s) = addrs();
        let mut flows = Flows::default();
        let hs = flows.connect(c, s);
        let (c_next, s_next) = (hs[2].seq, hs[2].ack);

        let out = flows.send(c, s, Direction::ToServer, b"hello");
        assert_eq!(out.len(), 2);
        assert_eq!(
            (out[0].direction, out[0].seq, out[0].ack, out[0].flags),
            (Direction::ToServer, c_next, s_next, Flags::PSH_ACK)
        );
        assert_eq!(out[0].payload, b"hello");
        assert_eq!(
            (out[1].direction, out[1].seq, out[1].ack, out[1].flags),
            (
                Direction::ToClient,
                s_next,
                c_next.wrapping_add(5),
                Flags::ACK
            )
        );

        let back = flows.send(c, s, Direction::ToClient, b"world!!");
        assert_eq!((back[0].seq, back[0].ack), (s_next, c_next.wrapping_add(5)));
        assert_eq!(
            (back[1].seq, back[1].ack),
            (c_next.wrapping_add(5), s_next.wrapping_add(7))
        );

        let again = flows.send(c, s, Direction::ToServer, b"ab");
        assert_eq!(
            (again[0].seq, again[0].ack),
            (c_next.wrapping_add(5), s_next.wrapping_add(7))
        );
    }

    #[test]
    fn data_on_an_unseen_flow_opens_it_first_and_big_data_is_split() {
        let (c, s) = addrs();
        let mut flows = Flows::default();
        let data = vec![7u8; MAX_SEGMENT * 2 + 10];
        let out = flows.send(c, s, Direction::ToClient, &data);
        assert_eq!(out.len(), 3 + 3 * 2);
        assert!(out[0].flags.syn && !out[0].flags.ack);
        let chunks: Vec<&Segment> = out[3..].iter().filter(|seg| seg.flags.psh).collect();
        assert_eq!(
            chunks
                .iter()
                .map(|seg| seg.payload.len())
                .collect::<Vec<_>>(),
            vec![MAX_SEGMENT, MAX_SEGMENT, 10]
        );
        assert_eq!(
            chunks[1].seq,
            chunks[0].seq.wrapping_add(MAX_SEGMENT as u32)
        );
        assert!(flows.send(c, s, Direction::ToServer, b"").is_empty());
    }

    #[test]
    fn closing_sends_fins_in_order_and_forgets_the_flow() {
        let (c, s) = addrs();
        let mut flows = Flows::default();
        let hs = flows.connect(c, s);
        let (c_next, s_next) = (hs[2].seq, hs[2].ack);

        let fin = flows.close(c, s, CloseKind::Peer);
        assert_eq!(fin.len(), 3);
        assert_eq!(
            (fin[0].direction, fin[0].seq, fin[0].ack, fin[0].flags),
            (Direction::ToServer, c_next, s_next, Flags::FIN_ACK)
        );
        assert_eq!(
            (fin[1].direction, fin[1].seq, fin[1].ack, fin[1].flags),
            (
                Direction::ToClient,
                s_next,
                c_next.wrapping_add(1),
                Flags::FIN_ACK
            )
        );
        assert_eq!(
            (fin[2].direction, fin[2].seq, fin[2].ack, fin[2].flags),
            (
                Direction::ToServer,
                c_next.wrapping_add(1),
                s_next.wrapping_add(1),
                Flags::ACK
            )
        );
        assert!(!flows.is_open(c, s));
        assert!(flows.close(c, s, CloseKind::Peer).is_empty());

        // Reopened: a new handshake, with fresh sequence numbers.
        let again = flows.connect(c, s);
        assert_eq!(again.len(), 3);
        assert_ne!(again[0].seq, hs[0].seq);
    }

    #[test]
    fn server_close_starts_with_the_servers_fin_and_reset_is_one_rst() {
        let (c, s) = addrs();
        let mut flows = Flows::default();
        flows.connect(c, s);
        let fin = flows.close(c, s, CloseKind::Server);
        assert_eq!(fin[0].direction, Direction::ToClient);
        assert!(fin[0].flags.fin);
        assert_eq!(fin[2].direction, Direction::ToClient);

        for (how, from) in [
            (CloseKind::PeerReset, Direction::ToServer),
            (CloseKind::ServerReset, Direction::ToClient),
        ] {
            flows.connect(c, s);
            flows.send(c, s, Direction::ToServer, b"abc");
            let rst = flows.close(c, s, how);
            assert_eq!(rst.len(), 1);
            assert!(rst[0].flags.rst);
            assert_eq!(rst[0].direction, from, "{how:?}");
            assert!(!flows.is_open(c, s));
        }
    }

    #[test]
    fn refusal_is_a_syn_and_an_rst_ack_for_it() {
        let (c, s) = addrs();
        let out = refused(c, s);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].flags, Flags::SYN);
        assert_eq!(out[1].flags, Flags::RST_ACK);
        assert_eq!((out[1].seq, out[1].ack), (0, out[0].seq.wrapping_add(1)));
        assert_eq!(refused(c, s), out, "deterministic");
    }

    #[test]
    fn initial_sequence_numbers_are_deterministic_and_differ_per_flow() {
        let (c, s) = addrs();
        let other: SocketAddr = "127.0.0.1:40001".parse().unwrap();
        let first = Flows::default().connect(c, s);
        assert_eq!(Flows::default().connect(c, s), first);
        assert_ne!(Flows::default().connect(other, s)[0].seq, first[0].seq);
        assert_ne!(first[0].seq, first[1].seq);
    }
}
