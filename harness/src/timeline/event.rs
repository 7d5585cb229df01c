//! The kinds of events on a timeline, and their one-line readable form.

use std::fmt;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::{Event, hex_bytes};
use crate::model::zone::DnsFaultKind;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Udp,
    Tcp,
    /// SIP over TLS over TCP (RFC 3261 §26.2.1, `sips:` and `transport=tls`).
    Tls,
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
            Self::Tls => "tls",
        })
    }
}

/// A DNS query as it reached srvlab's server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DnsQuery {
    pub transport: Transport,
    pub client: SocketAddr,
    pub server: SocketAddr,
    /// The DNS message id.
    pub id: u16,
    /// The queried name, or "" when the message had no single question.
    pub name: String,
    pub qtype: String,
    #[serde(with = "hex_bytes")]
    pub raw: Vec<u8>,
}

/// The answer srvlab's server sent to a query.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DnsAnswer {
    pub transport: Transport,
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub id: u16,
    pub name: String,
    pub qtype: String,
    /// NOERROR, NXDOMAIN, REFUSED, SERVFAIL, …
    pub rcode: String,
    pub aa: bool,
    pub tc: bool,
    /// The answer section, one record per entry in presentation format.
    pub answers: Vec<String>,
    pub authority_count: usize,
    /// The additional section (without the OPT pseudo-record).
    pub additionals: Vec<String>,
    /// The scripted fault that shaped this answer, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<DnsFaultKind>,
    #[serde(with = "hex_bytes")]
    pub raw: Vec<u8>,
}

/// A query that srvlab's server deliberately left unanswered (a `timeout` fault).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DnsDropped {
    pub transport: Transport,
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub id: u16,
    pub name: String,
    pub qtype: String,
    pub fault: DnsFaultKind,
}

/// A message to srvlab's DNS server that is not a query it can answer: shorter than a DNS
/// header, not decodable (answered FORMERR, as hickory answers it), or a response (never
/// answered: a server that answers responses reflects traffic).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DnsMalformed {
    pub transport: Transport,
    pub client: SocketAddr,
    pub server: SocketAddr,
    /// The message id, when a whole header came.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u16>,
    /// Why it is not a query, e.g. the decoder's error.
    pub reason: String,
    /// The message as it arrived; over TCP without its two-byte length prefix, unless the
    /// connection ended before the message was whole (`cut_short`): then every byte that came,
    /// the prefix included.
    #[serde(with = "hex_bytes")]
    pub raw: Vec<u8>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cut_short: bool,
    /// The FORMERR answer as sent; empty when none was.
    #[serde(with = "hex_bytes", default, skip_serializing_if = "Vec::is_empty")]
    pub answer: Vec<u8>,
}

/// What a SIP message says about itself, parsed from its raw bytes (absent where unreadable).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SipSummary {
    /// The request method, for requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// The status code and reason phrase, for responses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
    /// The CSeq header as written, e.g. "1 INVITE".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cseq: Option<String>,
    /// The branch parameter of the top Via.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
}

impl fmt::Display for SipSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.method, self.status) {
            (Some(method), _) => f.write_str(method)?,
            (None, Some(status)) => {
                write!(f, "{status}")?;
                if let Some(reason) = &self.reason {
                    write!(f, " {reason}")?;
                }
            }
            (None, None) => f.write_str("?")?,
        }
        if let Some(cseq) = &self.cseq {
            write!(f, " (CSeq {cseq})")?;
        }
        if let Some(call_id) = &self.call_id {
            write!(f, " Call-ID {call_id}")?;
        }
        if let Some(branch) = &self.branch {
            write!(f, " branch {branch}")?;
        }
        Ok(())
    }
}

/// A SIP message that crossed one of srvlab's servers. `local` is the server's address,
/// `remote` the device's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SipMessage {
    /// The server's host name, as in the zone (e.g. `sipserver52.snom.rocks.`).
    pub server: String,
    pub transport: Transport,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    #[serde(flatten)]
    pub summary: SipSummary,
    /// For a message received over UDP: when the kernel received it (ns since the timeline
    /// started, SO_TIMESTAMPNS), free of the server task's scheduling delay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seen_ns: Option<u64>,
    #[serde(with = "hex_bytes")]
    pub raw: Vec<u8>,
}

/// Bytes from a device that are not a valid SIP message: kept whole, with the reason.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SipMalformed {
    pub server: String,
    pub transport: Transport,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub reason: String,
    #[serde(with = "hex_bytes")]
    pub raw: Vec<u8>,
}

/// How a refused attempt was observed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalSeen {
    /// The kernel's ICMP port unreachable, read from a raw socket (UDP).
    Icmp,
    /// The SYN and the kernel's RST, read from a raw socket (TCP).
    Rst,
}

/// A device's attempt to reach a server that refuses (a closed port): the kernel refused it
/// for real; srvlab saw it happen.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Refused {
    pub server: String,
    pub transport: Transport,
    /// The refused address and port (the server's).
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub seen: RefusalSeen,
    /// When the kernel received the ICMP/RST (ns since the timeline started, from
    /// SO_TIMESTAMPNS): the event itself is recorded a little later, by the raw-socket reader.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seen_ns: Option<u64>,
    /// What the refused datagram said, as far as the ICMP quote shows it (UDP only).
    #[serde(flatten)]
    pub summary: SipSummary,
    /// The part of the refused payload that was visible (UDP: the ICMP quote).
    #[serde(with = "hex_bytes", default)]
    pub raw: Vec<u8>,
}

/// What a keep-alive was (RFC 5626 §3.5.1, §4.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeepAliveKind {
    /// "\r\n\r\n": the ping (answered with a single CRLF over TCP/TLS).
    DoubleCrlf,
    /// "\r\n": the pong, or a device's own single-CRLF keep-alive.
    Crlf,
    /// Line ends in another arrangement (a lone "\n", "\r\n\r").
    LineEnds,
    /// A STUN Binding request (RFC 5389): RFC 5626's keep-alive over UDP.
    StunRequest,
    /// A STUN Binding success response (srvlab's answer, with XOR-MAPPED-ADDRESS).
    StunResponse,
    /// Another STUN message (an indication, an error response, another method).
    Stun,
}

impl fmt::Display for KeepAliveKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::DoubleCrlf => "double CRLF",
            Self::Crlf => "CRLF",
            Self::LineEnds => "line ends",
            Self::StunRequest => "STUN Binding request",
            Self::StunResponse => "STUN Binding success response",
            Self::Stun => "STUN message",
        })
    }
}

/// A keep-alive between a device and a server (RFC 5626): never a request, an attempt or a
/// refusal of one; the checks leave it out. One sent to a closed port is recorded from the
/// kernel's ICMP refusal, with `refused` set (its own kind rather than a `Refused` marked so:
/// every reader of `Refused` takes it for a request attempt, and a flag each had to test would
/// be missed by the next one).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeepAlive {
    pub server: String,
    pub transport: Transport,
    /// The server's address and port.
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// From the device (a ping, a STUN request), or the server's answer to it.
    pub flow: Flow,
    pub kind: KeepAliveKind,
    /// The kernel refused it (ICMP port unreachable): the server's port was closed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub refused: bool,
    /// When the kernel received it, or the ICMP refusing it (ns since the timeline started).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seen_ns: Option<u64>,
    /// The bytes as they crossed the wire (refused: as far as the ICMP quote shows them; over
    /// TLS: decrypted).
    #[serde(with = "hex_bytes")]
    pub raw: Vec<u8>,
}

/// A TCP connection from a device to a server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TcpConnection {
    pub server: String,
    pub local: SocketAddr,
    pub remote: SocketAddr,
}

/// Who ended a TCP connection, and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseKind {
    /// The device closed it (FIN).
    Peer,
    /// srvlab's server closed it (FIN).
    Server,
    /// The device reset it (RST), or the connection failed.
    PeerReset,
    /// srvlab's server reset it (RST): a crash, or a stream it could not frame.
    ServerReset,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TcpClosed {
    pub server: String,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub how: CloseKind,
}

/// Why bytes a device sent on a TCP/TLS connection never became a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnframedWhy {
    /// The connection closed (by either side, or a reset) before the message completed.
    Closed,
    /// They followed a fatal framing error (see the `sip_malformed` before): the stream could
    /// not be read any further and the server reset it.
    FramingError,
}

/// Bytes from a device on a server's TCP/TLS connection that never became a whole message:
/// without this event they would be on neither the timeline nor the capture. Over TLS they are
/// the decrypted bytes (the records themselves are `tls_bytes`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TcpUnframed {
    pub server: String,
    pub transport: Transport,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub why: UnframedWhy,
    #[serde(with = "hex_bytes")]
    pub raw: Vec<u8>,
}

/// Which way bytes crossed a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Flow {
    /// From the device to srvlab's server.
    ToServer,
    /// From srvlab's server to the device.
    ToDevice,
}

/// TLS records as they crossed a server's TCP connection (ciphertext, handshake included): what
/// the capture shows. The SIP inside is recorded decrypted, as SipReceived/SipSent over tls.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TlsBytes {
    pub server: String,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub flow: Flow,
    /// For bytes to the device: when they were handed to the kernel (recording comes after,
    /// and a busy server task may get to it late).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seen_ns: Option<u64>,
    #[serde(with = "hex_bytes")]
    pub raw: Vec<u8>,
}

/// One TLS session secret (NSS key log: label, client random, secret): a lab's capture is made
/// to be decrypted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TlsSecret {
    pub label: String,
    #[serde(with = "hex_bytes")]
    pub client_random: Vec<u8>,
    #[serde(with = "hex_bytes")]
    pub secret: Vec<u8>,
}

/// A TLS handshake on a server's connection that did not complete.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TlsFailed {
    pub server: String,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub reason: String,
}

/// A server moved to another phase of its script.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PhaseChanged {
    pub server: String,
    /// Index of the new phase, from 0.
    pub phase: usize,
    /// The new phase's behaviour, e.g. "refuse".
    pub behaviour: String,
    /// Why the phase changed: "after 5 requests", "after 300s", "at step crash".
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventKind {
    DnsQuery(DnsQuery),
    DnsAnswer(DnsAnswer),
    DnsDropped(DnsDropped),
    DnsMalformed(DnsMalformed),
    /// A SIP message from the device to a server.
    SipReceived(SipMessage),
    /// A SIP message from a server to the device.
    SipSent(SipMessage),
    SipMalformed(SipMalformed),
    Refused(Refused),
    KeepAlive(KeepAlive),
    TcpConnected(TcpConnection),
    TcpClosed(TcpClosed),
    TcpUnframed(TcpUnframed),
    TlsBytes(TlsBytes),
    TlsSecret(TlsSecret),
    TlsFailed(TlsFailed),
    PhaseChanged(PhaseChanged),
    /// A step of the case began.
    Step {
        name: String,
    },
    /// Something the run itself has to say (a listener came up, a privilege is missing).
    Note {
        text: String,
    },
    /// srvlab fired the lab's trigger `action`, asking a real device to act: the `method`
    /// request it asks for, begun within `within_ns`, is srvlab's doing rather than the
    /// device's own decision (its outcome follows as a note).
    Trigger {
        action: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        method: Option<String>,
        within_ns: u64,
    },
    /// srvlab's own reference UA sent what a timer was due to send `late_ns` late, because the
    /// host did not run it on time. A fact about the harness: timing checks do not hold such a
    /// copy against the device (a real device never reports this).
    HostDelay {
        late_ns: u64,
    },
    /// The host did not run srvlab's own reference UA for `stalled_ns` up to this moment: the
    /// watchdog on the device's thread woke that late. Whatever the device did in that window
    /// took longer by the host's doing; reaction checks (F2) take it off their measurement.
    HostStall {
        stalled_ns: u64,
    },
    /// srvlab stopped watching the device: what follows is the world shutting down (its
    /// connections reset), no longer the device's doing.
    Stopped {
        text: String,
    },
}

impl fmt::Display for Event {
    /// `+1.234567s  dns udp 127.0.0.1:40000 → SRV _sip._udp.snom.rocks. #4711`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.t_ns / 1_000_000_000;
        let micros = (self.t_ns % 1_000_000_000) / 1_000;
        write!(f, "+{secs}.{micros:06}s  ")?;
        match &self.kind {
            EventKind::DnsQuery(q) => write!(
                f,
                "dns {} {} → {} {} {} #{}",
                q.transport, q.client, q.server, q.qtype, q.name, q.id
            ),
            EventKind::DnsAnswer(a) => {
                write!(
                    f,
                    "dns {} {} ← {} {} {} #{}: {}",
                    a.transport, a.client, a.server, a.qtype, a.name, a.id, a.rcode
                )?;
                if a.aa {
                    f.write_str(" aa")?;
                }
                if a.tc {
                    f.write_str(" tc")?;
                }
                write!(
                    f,
                    ", {} answer{}, {} additional",
                    a.answers.len(),
                    if a.answers.len() == 1 { "" } else { "s" },
                    a.additionals.len()
                )?;
                if let Some(fault) = a.fault {
                    write!(f, " (fault: {fault})")?;
                }
                Ok(())
            }
            EventKind::DnsDropped(d) => write!(
                f,
                "dns {} {} ✗ {} {} {} #{}: no answer (fault: {})",
                d.transport, d.client, d.server, d.qtype, d.name, d.id, d.fault
            ),
            EventKind::DnsMalformed(m) => {
                write!(
                    f,
                    "dns {} {} → {} malformed ({} byte{}",
                    m.transport,
                    m.client,
                    m.server,
                    m.raw.len(),
                    if m.raw.len() == 1 { "" } else { "s" }
                )?;
                if let Some(id) = m.id {
                    write!(f, ", #{id}")?;
                }
                write!(f, "): {}", m.reason)?;
                if !m.answer.is_empty() {
                    f.write_str("; answered FORMERR")?;
                }
                Ok(())
            }
            EventKind::SipReceived(m) => write!(
                f,
                "sip {} {} → {} [{}] {}",
                m.transport, m.remote, m.local, m.server, m.summary
            ),
            EventKind::SipSent(m) => write!(
                f,
                "sip {} {} ← {} [{}] {}",
                m.transport, m.remote, m.local, m.server, m.summary
            ),
            EventKind::SipMalformed(m) => write!(
                f,
                "sip {} {} → {} [{}] malformed ({} bytes): {}",
                m.transport,
                m.remote,
                m.local,
                m.server,
                m.raw.len(),
                m.reason
            ),
            EventKind::Refused(r) => write!(
                f,
                "sip {} {} → {} [{}] refused ({}) {}",
                r.transport,
                r.remote,
                r.local,
                r.server,
                match r.seen {
                    RefusalSeen::Icmp => "ICMP port unreachable",
                    RefusalSeen::Rst => "RST",
                },
                r.summary
            ),
            EventKind::KeepAlive(k) => {
                write!(
                    f,
                    "keep-alive {} {} {} {} [{}] {}",
                    k.transport,
                    k.remote,
                    match k.flow {
                        Flow::ToServer => "→",
                        Flow::ToDevice => "←",
                    },
                    k.local,
                    k.server,
                    k.kind
                )?;
                if k.refused {
                    f.write_str(", refused (ICMP port unreachable)")?;
                }
                Ok(())
            }
            EventKind::TcpConnected(c) => {
                write!(f, "tcp {} → {} [{}] connected", c.remote, c.local, c.server)
            }
            EventKind::TcpClosed(c) => write!(
                f,
                "tcp {} → {} [{}] closed by {}",
                c.remote,
                c.local,
                c.server,
                match c.how {
                    CloseKind::Peer => "the device",
                    CloseKind::Server => "the server",
                    CloseKind::PeerReset => "a reset from the device",
                    CloseKind::ServerReset => "a reset from the server",
                }
            ),
            EventKind::TcpUnframed(u) => write!(
                f,
                "{} {} → {} [{}] {} unframed byte{}: {}",
                u.transport,
                u.remote,
                u.local,
                u.server,
                u.raw.len(),
                if u.raw.len() == 1 { "" } else { "s" },
                match u.why {
                    UnframedWhy::Closed => "the connection closed before the message completed",
                    UnframedWhy::FramingError => "after a fatal framing error, not read",
                }
            ),
            EventKind::TlsBytes(b) => write!(
                f,
                "tls {} {} {} [{}] {} bytes",
                b.remote,
                match b.flow {
                    Flow::ToServer => "→",
                    Flow::ToDevice => "←",
                },
                b.local,
                b.server,
                b.raw.len()
            ),
            EventKind::TlsSecret(s) => write!(f, "tls secret {}", s.label),
            EventKind::TlsFailed(t) => write!(
                f,
                "tls {} → {} [{}] handshake failed: {}",
                t.remote, t.local, t.server, t.reason
            ),
            EventKind::PhaseChanged(p) => write!(
                f,
                "phase [{}] → {} #{} ({})",
                p.server, p.behaviour, p.phase, p.reason
            ),
            EventKind::Step { name } => write!(f, "step {name}"),
            EventKind::Note { text } => write!(f, "note {text}"),
            EventKind::Trigger {
                action, within_ns, ..
            } => write!(
                f,
                "trigger {action}: srvlab asks the device to act within {:.3} s",
                *within_ns as f64 / 1e9
            ),
            EventKind::Stopped { text } => write!(f, "stopped {text}"),
            EventKind::HostDelay { late_ns } => write!(
                f,
                "note the host ran the reference UA {:.3} ms late for a timer",
                *late_ns as f64 / 1e6
            ),
            EventKind::HostStall { stalled_ns } => write!(
                f,
                "note the host did not run the reference UA for {:.3} ms",
                *stalled_ns as f64 / 1e6
            ),
        }
    }
}
