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
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
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

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventKind {
    DnsQuery(DnsQuery),
    DnsAnswer(DnsAnswer),
    DnsDropped(DnsDropped),
    /// Something the run itself has to say (a listener came up, a privilege is missing).
    Note {
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
            EventKind::Note { text } => write!(f, "note {text}"),
        }
    }
}
