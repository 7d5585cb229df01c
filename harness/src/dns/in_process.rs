//! The server's answer to one message's bytes without sockets: the very path a listener's
//! packet takes (`ObservedHandler::handle`: hickory's decode, srvlab's handler with its faults,
//! additional section, fitting to the UDP limit and recording), with the answer kept instead of
//! sent. The fuzz target and tests drive the real server through it.

use std::net::SocketAddr;
use std::sync::Arc;

use super::handler::{ObservedHandler, Shared};
use super::listen::Reply;
use super::server::build_world;
use super::{DnsError, DnsLimits};
use crate::model::zone::ZoneSet;
use crate::timeline::{Timeline, Transport};

/// One listener of srvlab's DNS server, fed packets by hand.
pub struct InProcess {
    handler: ObservedHandler,
}

impl InProcess {
    /// Serves `zones` (with their faults) as if listening on `local`, recording on `timeline`,
    /// with the default limits.
    pub fn new(zones: ZoneSet, local: SocketAddr, timeline: Timeline) -> Result<Self, DnsError> {
        let faults = zones.faults().cloned().collect();
        let world = build_world(zones, 1)?;
        Ok(Self {
            handler: ObservedHandler {
                shared: Arc::new(Shared::new(world, faults, timeline, DnsLimits::default())),
                local,
            },
        })
    }

    /// The same zones with their faults as at the start, recording on `timeline`: a server
    /// started again without building its zones again (what makes the fuzz target fast).
    pub fn restarted(&self, timeline: Timeline) -> Self {
        let world = self.handler.shared.world();
        let faults = world.zones.faults().cloned().collect();
        Self {
            handler: ObservedHandler {
                shared: Arc::new(Shared::new(world, faults, timeline, DnsLimits::default())),
                local: self.handler.local,
            },
        }
    }

    /// The bytes the server sends back to `client` for the message `raw` over `transport`
    /// (without a TCP length prefix), or `None` when it sends nothing.
    pub async fn answer(
        &self,
        raw: Vec<u8>,
        client: SocketAddr,
        transport: Transport,
    ) -> Option<Vec<u8>> {
        let mut sent = None;
        let reply = Reply::Memory { sent: &mut sent };
        // Keeping the answer cannot fail.
        let _ = self.handler.handle(raw, client, transport, reply).await;
        sent
    }
}

#[cfg(test)]
mod tests {
    use hickory_server::proto::op::{Message, Query};
    use hickory_server::proto::rr::{Name, RecordType};

    use super::*;
    use crate::model::diag::SourceFile;
    use crate::timeline::EventKind;

    const ZONE: &str = "origin: lab.test.\nttl: 60\nrecords:\n\
        - SRV: {name: _sip._udp, priority: 1, weight: 1, port: 5060, target: host}\n\
        - A: {name: host, address: 127.0.93.7}\n";

    fn served() -> (InProcess, Timeline) {
        let (zones, found) = ZoneSet::parse(&[SourceFile::new("lab.yaml", ZONE)]);
        let zones = zones.unwrap_or_else(|| panic!("{found}"));
        let timeline = Timeline::new();
        let local = "127.0.93.53:53".parse().unwrap();
        (
            InProcess::new(zones, local, timeline.clone()).unwrap(),
            timeline,
        )
    }

    #[tokio::test]
    async fn answers_a_query_and_records_the_bytes_it_sent() {
        let (server, timeline) = served();
        let mut query = Message::query();
        query.metadata.id = 7;
        query.add_query(Query::query(
            Name::from_ascii("_sip._udp.lab.test.").unwrap(),
            RecordType::SRV,
        ));
        let client = "127.0.93.10:5060".parse().unwrap();
        let sent = server
            .answer(query.to_vec().unwrap(), client, Transport::Udp)
            .await
            .expect("an answer");
        let answer = Message::from_vec(&sent).unwrap();
        assert_eq!(answer.metadata.id, 7);
        assert_eq!(answer.answers.len(), 1);
        let recorded = timeline.events().into_iter().find_map(|e| match e.kind {
            EventKind::DnsAnswer(answer) => Some(answer.raw),
            _ => None,
        });
        assert_eq!(recorded, Some(sent));
    }

    #[tokio::test]
    async fn an_answer_too_long_to_encode_is_recorded_as_what_is_sent() {
        // Found by the dns_query fuzz target: 16 long questions echoed exceed 512 bytes; hickory
        // then sent a bare SERVFAIL, while the timeline had the zeroed header of our own failed
        // encoding.
        let (server, timeline) = served();
        let mut query = vec![0x01, 0x47, 0x00, 0x00, 0x00, 16, 0, 0, 0, 0, 0, 0];
        for _ in 0..16 {
            query.extend([60; 1]);
            query.extend([b'x'; 60]);
            query.extend([0, 0, 1, 0, 1]);
        }
        let client = "127.0.93.10:5060".parse().unwrap();
        let sent = server.answer(query, client, Transport::Udp).await.unwrap();
        let recorded = timeline.events().into_iter().find_map(|e| match e.kind {
            EventKind::DnsAnswer(answer) => Some(answer),
            _ => None,
        });
        let recorded = recorded.expect("the answer is on the timeline");
        assert_eq!(recorded.raw, sent);
        // Sixteen questions are a FORMERR; echoed, they do not fit 512 bytes, so the header
        // alone goes out, with TC (dns/fit.rs), and that is what the timeline holds.
        assert_eq!(
            (recorded.rcode.as_str(), recorded.tc, sent.len()),
            ("FORMERR", true, 12)
        );
    }

    #[tokio::test]
    async fn what_hickory_would_not_answer_gets_nothing_or_formerr() {
        let (server, _) = served();
        let client = "127.0.93.10:5060".parse().unwrap();
        // Shorter than a header: no answer, as hickory's server.
        assert_eq!(
            server.answer(vec![0; 5], client, Transport::Udp).await,
            None
        );
        // A header claiming a question that is not there: FORMERR.
        let header = vec![0, 9, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        let sent = server.answer(header, client, Transport::Udp).await.unwrap();
        let answer = Message::from_vec(&sent).unwrap();
        assert_eq!(u16::from(answer.metadata.response_code), 1);
    }
}
