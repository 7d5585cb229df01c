//! The request handler around hickory's `Catalog`: it takes every message a client sent,
//! records it on the timeline (queries, answers, and what is not a query at all), applies
//! scripted faults, decides the additional section of SRV answers and fits the answer to the
//! size the client can take.
//!
//! The catalog answers into a capturing handle; the answer is then adjusted, encoded once and
//! sent as encoded, so that the bytes on the timeline are the bytes on the wire.

use std::collections::HashSet;
use std::io;
use std::iter;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use hickory_server::net::NetError;
use hickory_server::net::runtime::TokioTime;
use hickory_server::net::xfer::Protocol;
use hickory_server::proto::op::{
    Edns, Header, HeaderCounts, Message, MessageType, Metadata, ResponseCode,
};
use hickory_server::proto::rr::{Name, RData, Record, RecordType};
use hickory_server::proto::serialize::binary::{
    BinDecodable, BinDecoder, BinEncodable, BinEncoder,
};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::{Catalog, MessageResponse, MessageResponseBuilder};

use super::fit::fit;
use super::limits::DnsLimits;
use super::listen::Reply;
use crate::model::zone::{Additional, DnsFault, DnsFaultKind, ZoneSet};
use crate::timeline::{
    DnsAnswer, DnsDropped, DnsMalformed, DnsQuery, EventKind, Timeline, Transport,
};

/// What the server serves: the zones and the catalog made from them, replaced as one.
pub(crate) struct World {
    pub catalog: Catalog,
    pub zones: ZoneSet,
}

struct ActiveFault {
    fault: DnsFault,
    used: u32,
}

/// State shared by the handlers of every listener of one server.
pub(crate) struct Shared {
    world: RwLock<Arc<World>>,
    faults: Mutex<Vec<ActiveFault>>,
    pub timeline: Timeline,
    pub limits: DnsLimits,
}

impl Shared {
    pub fn new(
        world: impl Into<Arc<World>>,
        faults: Vec<DnsFault>,
        timeline: Timeline,
        limits: DnsLimits,
    ) -> Self {
        let shared = Self {
            world: RwLock::new(world.into()),
            faults: Mutex::new(Vec::new()),
            timeline,
            limits,
        };
        shared.set_faults(faults);
        shared
    }

    pub fn world(&self) -> Arc<World> {
        self.world
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn replace_world(&self, world: World) {
        *self.world.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(world);
    }

    pub fn set_faults(&self, faults: Vec<DnsFault>) {
        *self.faults.lock().unwrap_or_else(PoisonError::into_inner) = faults
            .into_iter()
            .map(|fault| ActiveFault { fault, used: 0 })
            .collect();
    }

    /// The first fault that matches and has uses left; using it counts.
    fn take_fault(&self, name: &Name, qtype: RecordType) -> Option<DnsFaultKind> {
        let mut faults = self.faults.lock().unwrap_or_else(PoisonError::into_inner);
        let active = faults.iter_mut().find(|a| {
            a.fault.matches(name, qtype) && a.fault.times.is_none_or(|limit| a.used < limit)
        })?;
        active.used += 1;
        Some(active.fault.kind)
    }
}

/// One listener's handler: it knows its own address, which hickory's request does not carry.
pub(crate) struct ObservedHandler {
    pub shared: Arc<Shared>,
    pub local: SocketAddr,
}

/// The question of a request, as text for the timeline.
struct Question {
    name: Option<Name>,
    qtype: Option<RecordType>,
}

impl Question {
    fn of(request: &Request) -> Self {
        match request.request_info() {
            Ok(info) => Self {
                name: Some(info.query.name().into()),
                qtype: Some(info.query.query_type()),
            },
            Err(_) => Self {
                name: None,
                qtype: None,
            },
        }
    }

    fn name_text(&self) -> String {
        self.name.as_ref().map(Name::to_ascii).unwrap_or_default()
    }

    fn type_text(&self) -> String {
        self.qtype.map(|t| t.to_string()).unwrap_or_default()
    }
}

impl ObservedHandler {
    /// One message from `client`, as it came: recorded, and answered as hickory's server
    /// answers (its `ServerContext::handle_request`, which drops what it cannot decode unseen):
    /// nothing for less than a header, FORMERR for a message that does not decode, nothing for
    /// a response. An error is the reply's: the connection it came on is done.
    pub async fn handle(
        &self,
        bytes: Vec<u8>,
        client: SocketAddr,
        transport: Transport,
        reply: Reply<'_>,
    ) -> io::Result<()> {
        let Ok(header) = Header::read(&mut BinDecoder::new(&bytes)) else {
            let reason = "shorter than a DNS header (12 bytes)".into();
            self.malformed(transport, client, None, reason, bytes, Vec::new());
            return Ok(());
        };
        let protocol = match transport {
            Transport::Udp => Protocol::Udp,
            Transport::Tcp | Transport::Tls => Protocol::Tcp,
        };
        let request = match Request::from_bytes(bytes.clone(), client, protocol) {
            Ok(request) => request,
            Err(err) => {
                let answer = formerr(&header);
                let id = Some(header.metadata.id);
                self.malformed(
                    transport,
                    client,
                    id,
                    err.to_string(),
                    bytes,
                    answer.clone(),
                );
                return self.deliver(reply, client, &answer).await;
            }
        };
        if request.metadata.message_type == MessageType::Response {
            let reason = "a response, not a query: never answered (that would reflect it)";
            let id = Some(header.metadata.id);
            self.malformed(transport, client, id, reason.into(), bytes, Vec::new());
            return Ok(());
        }
        self.answer(&request, transport, reply).await
    }

    fn malformed(
        &self,
        transport: Transport,
        client: SocketAddr,
        id: Option<u16>,
        reason: String,
        raw: Vec<u8>,
        answer: Vec<u8>,
    ) {
        self.shared
            .timeline
            .record(EventKind::DnsMalformed(DnsMalformed {
                transport,
                client,
                server: self.local,
                id,
                reason,
                raw,
                cut_short: false,
                answer,
            }));
    }

    /// Bytes on a TCP connection that ended (or idled out) before they made a whole message.
    pub fn cut_short(&self, client: SocketAddr, reason: String, raw: Vec<u8>) {
        let id = (raw.len() >= 4).then(|| u16::from_be_bytes([raw[2], raw[3]]));
        self.shared
            .timeline
            .record(EventKind::DnsMalformed(DnsMalformed {
                transport: Transport::Tcp,
                client,
                server: self.local,
                id,
                reason,
                raw,
                cut_short: true,
                answer: Vec::new(),
            }));
    }

    async fn answer(
        &self,
        request: &Request,
        transport: Transport,
        reply: Reply<'_>,
    ) -> io::Result<()> {
        let question = Question::of(request);
        self.shared.timeline.record(EventKind::DnsQuery(DnsQuery {
            transport,
            client: request.src(),
            server: self.local,
            id: request.metadata.id,
            name: question.name_text(),
            qtype: question.type_text(),
            raw: request.as_slice().to_vec(),
        }));

        let fault = match (&question.name, question.qtype) {
            (Some(name), Some(qtype)) => self.shared.take_fault(name, qtype),
            _ => None,
        };
        let world = self.shared.world();
        let message = match fault {
            Some(DnsFaultKind::Timeout) => {
                self.shared
                    .timeline
                    .record(EventKind::DnsDropped(DnsDropped {
                        transport,
                        client: request.src(),
                        server: self.local,
                        id: request.metadata.id,
                        name: question.name_text(),
                        qtype: question.type_text(),
                        fault: DnsFaultKind::Timeout,
                    }));
                return Ok(());
            }
            Some(DnsFaultKind::Servfail) => {
                bare_response(request, ResponseCode::ServFail, false, false)
            }
            Some(DnsFaultKind::Truncate) if transport == Transport::Udp => {
                bare_response(request, ResponseCode::NoError, true, true)
            }
            // A truncation fault only concerns UDP: over TCP the full answer goes out.
            Some(DnsFaultKind::Truncate) | None => {
                let mut message = catalog_answer(&world.catalog, request).await;
                if let Some(qtype) = question.qtype {
                    shape_additional(&world.zones, qtype, &mut message);
                }
                message
            }
        };
        // A truncate fault over TCP did not shape the answer.
        let fault = fault.filter(|f| *f != DnsFaultKind::Truncate || transport == Transport::Udp);
        self.send(request, transport, &question, message, fault, reply)
            .await
    }

    async fn send(
        &self,
        request: &Request,
        transport: Transport,
        question: &Question,
        mut message: Message,
        fault: Option<DnsFaultKind>,
        reply: Reply<'_>,
    ) -> io::Result<()> {
        let limits = &self.shared.limits;
        // The OPT record of an answer advertises what this server takes (RFC 6891 §6.2.3).
        if let Some(edns) = message.edns.as_mut() {
            edns.set_max_payload(limits.udp_max.max(DnsLimits::UDP_MIN));
        }
        // Over UDP the client's buffer and the server's maximum bound the answer (an
        // amplifier otherwise); over TCP only the two-byte length does.
        let limit = usize::from(match transport {
            Transport::Udp => limits.udp_answer_max(request.edns.as_ref().map(Edns::max_payload)),
            Transport::Tcp | Transport::Tls => u16::MAX,
        });
        let raw = match fit(&mut message, limit, |m| encode(request, m)) {
            Some(raw) if raw.len() <= limit => raw,
            // A question section too large for the limit, or a record that cannot be written:
            // the header alone, as hickory falls back to (MessageResponse::encode).
            fitted => {
                message.metadata.truncation = fitted.is_some();
                if fitted.is_none() {
                    message.metadata.response_code = ResponseCode::ServFail;
                }
                header_only(&message.metadata)
            }
        };
        let sent = Message::from_vec(&raw).ok();
        let sent_metadata = sent.as_ref().map_or(message.metadata, |m| m.metadata);
        // Recorded before it is sent: the device acts on the answer at once, and an answer
        // recorded after a busy scheduler let the device's next packet in would read as the
        // device using data it had not been given yet.
        let shown = sent.as_ref().unwrap_or(&message);
        self.shared.timeline.record(EventKind::DnsAnswer(DnsAnswer {
            transport,
            client: request.src(),
            server: self.local,
            id: request.metadata.id,
            name: question.name_text(),
            qtype: question.type_text(),
            rcode: rcode_mnemonic(sent_metadata.response_code),
            aa: sent_metadata.authoritative,
            tc: sent_metadata.truncation,
            answers: shown.answers.iter().map(ToString::to_string).collect(),
            authority_count: shown.authorities.len(),
            additionals: shown.additionals.iter().map(ToString::to_string).collect(),
            fault,
            raw: raw.clone(),
        }));
        self.deliver(reply, request.src(), &raw).await
    }

    /// Sends `raw` (recorded already); a failure is a note, and ends a TCP connection.
    async fn deliver(&self, reply: Reply<'_>, client: SocketAddr, raw: &[u8]) -> io::Result<()> {
        let sent = reply.send(raw).await;
        if let Err(err) = &sent {
            self.note(format!(
                "dns: could not send the answer to {client} from {}: {err}",
                self.local
            ));
        }
        sent
    }

    pub fn note(&self, text: String) {
        self.shared.timeline.record(EventKind::Note { text });
    }
}

/// The name dig and Wireshark print for a response code.
pub fn rcode_mnemonic(rcode: ResponseCode) -> String {
    match u16::from(rcode) {
        0 => "NOERROR".into(),
        1 => "FORMERR".into(),
        2 => "SERVFAIL".into(),
        3 => "NXDOMAIN".into(),
        4 => "NOTIMP".into(),
        5 => "REFUSED".into(),
        9 => "NOTAUTH".into(),
        16 => "BADVERS".into(),
        other => format!("RCODE{other}"),
    }
}

/// A header-only answer: SERVFAIL, or the empty TC answer of a truncation fault.
fn bare_response(request: &Request, rcode: ResponseCode, aa: bool, tc: bool) -> Message {
    let mut metadata = Metadata::response_from_request(&request.metadata);
    metadata.response_code = rcode;
    metadata.authoritative = aa;
    metadata.truncation = tc;
    metadata.recursion_available = false;
    let mut message = Message::new(metadata.id, metadata.message_type, metadata.op_code);
    message.metadata = metadata;
    // Its size is set where every answer's is, when it is sent.
    message.edns = request.edns.as_ref().map(|_| Edns::new());
    message
}

/// `message` as the answer to `request`: its question as the request wrote it, the sections of
/// `message`, its OPT record.
fn encode(request: &Request, message: &Message) -> Option<Vec<u8>> {
    let mut raw = Vec::with_capacity(512);
    let mut encoder = BinEncoder::new(&mut raw);
    response_from(request, message)
        .destructive_emit(&mut encoder)
        .ok()?;
    Some(raw)
}

/// A header without a question or records.
fn header_only(metadata: &Metadata) -> Vec<u8> {
    let header = Header {
        metadata: *metadata,
        counts: HeaderCounts::default(),
    };
    let mut raw = Vec::with_capacity(12);
    // Twelve bytes into a growing buffer cannot fail.
    let _ = header.emit(&mut BinEncoder::new(&mut raw));
    raw
}

/// hickory's answer to a message it cannot decode (its `error_response_handler`): the request's
/// header turned into a response, FORMERR, no question, no OPT record.
fn formerr(request: &Header) -> Vec<u8> {
    let mut metadata = Metadata::response_from_request(&request.metadata);
    metadata.response_code = ResponseCode::FormErr;
    header_only(&metadata)
}

fn response_from<'q, 'a>(
    request: &'q Request,
    message: &'a Message,
) -> MessageResponse<
    'q,
    'a,
    impl Iterator<Item = &'a Record> + Send + 'a,
    impl Iterator<Item = &'a Record> + Send + 'a,
    impl Iterator<Item = &'a Record> + Send + 'a,
    impl Iterator<Item = &'a Record> + Send + 'a,
>
where
    'a: 'q,
{
    MessageResponseBuilder::new(&request.queries, message.edns.as_ref()).build(
        message.metadata,
        message.answers.iter(),
        message.authorities.iter(),
        iter::empty(),
        message.additionals.iter(),
    )
}

/// Runs the catalog and decodes what it would have sent.
async fn catalog_answer(catalog: &Catalog, request: &Request) -> Message {
    let capture = Capture::default();
    catalog
        .handle_request::<_, TokioTime>(request, capture.clone())
        .await;
    let bytes = capture
        .0
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    bytes
        .and_then(|bytes| Message::from_vec(&bytes).ok())
        .unwrap_or_else(|| bare_response(request, ResponseCode::ServFail, false, false))
}

/// A response handle that keeps the encoded answer instead of sending it.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Option<Vec<u8>>>>);

#[async_trait::async_trait]
impl ResponseHandler for Capture {
    async fn send_response<'a>(
        &mut self,
        response: MessageResponse<
            '_,
            'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
        >,
    ) -> Result<ResponseInfo, NetError> {
        let mut bytes = Vec::with_capacity(512);
        let mut encoder = BinEncoder::new(&mut bytes);
        let info = response.destructive_emit(&mut encoder)?;
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(bytes);
        Ok(info)
    }
}

/// hickory adds the first SRV target's addresses only; a zone asks for all of them or none.
fn shape_additional(zones: &ZoneSet, qtype: RecordType, message: &mut Message) {
    if qtype != RecordType::SRV || message.metadata.response_code != ResponseCode::NoError {
        return;
    }
    let Some(query) = message.queries.first() else {
        return;
    };
    let Some(zone) = zones.zone_for(query.name()) else {
        return;
    };
    message.additionals.clear();
    if zone.additional == Additional::None {
        return;
    }
    let mut seen = HashSet::new();
    for answer in &message.answers {
        let RData::SRV(srv) = &answer.data else {
            continue;
        };
        let target = &srv.target;
        if target.is_root() || !seen.insert(target.to_lowercase()) {
            continue;
        }
        for qtype in [RecordType::A, RecordType::AAAA] {
            message
                .additionals
                .extend(zones.records_at(target, qtype).map(|r| r.to_record()));
        }
    }
}
