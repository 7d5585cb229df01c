//! The request handler around hickory's `Catalog`: it records every query and answer on the
//! timeline, applies scripted faults, and decides the additional section of SRV answers.
//!
//! The catalog answers into a capturing handle; the answer is then adjusted and sent through
//! the real handle. We encode the final answer once more ourselves, exactly as hickory does,
//! so that the bytes on the timeline are the bytes on the wire.

use std::collections::HashSet;
use std::iter;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use hickory_server::net::NetError;
use hickory_server::net::runtime::Time;
use hickory_server::net::xfer::Protocol;
use hickory_server::proto::op::{
    Edns, Header, HeaderCounts, Message, MessageType, Metadata, OpCode, ResponseCode,
};
use hickory_server::proto::rr::{Name, RData, Record, RecordType};
use hickory_server::proto::serialize::binary::{BinEncodable, BinEncoder};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::{Catalog, MessageResponse, MessageResponseBuilder};

use crate::model::zone::{Additional, DnsFault, DnsFaultKind, ZoneSet};
use crate::timeline::{DnsAnswer, DnsDropped, DnsQuery, EventKind, Timeline, Transport};

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
}

impl Shared {
    pub fn new(world: impl Into<Arc<World>>, faults: Vec<DnsFault>, timeline: Timeline) -> Self {
        let shared = Self {
            world: RwLock::new(world.into()),
            faults: Mutex::new(Vec::new()),
            timeline,
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

fn transport_of(protocol: Protocol) -> Transport {
    match protocol {
        Protocol::Udp => Transport::Udp,
        _ => Transport::Tcp,
    }
}

#[async_trait::async_trait]
impl RequestHandler for ObservedHandler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        response_handle: R,
    ) -> ResponseInfo {
        let transport = transport_of(request.protocol());
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
                let mut metadata = Metadata::response_from_request(&request.metadata);
                metadata.response_code = ResponseCode::NoError;
                return ResponseInfo::from(Header {
                    metadata,
                    counts: HeaderCounts::default(),
                });
            }
            Some(DnsFaultKind::Servfail) => {
                bare_response(request, ResponseCode::ServFail, false, false)
            }
            Some(DnsFaultKind::Truncate) if transport == Transport::Udp => {
                bare_response(request, ResponseCode::NoError, true, true)
            }
            // A truncation fault only concerns UDP: over TCP the full answer goes out.
            Some(DnsFaultKind::Truncate) | None => {
                let mut message = catalog_answer::<T>(&world.catalog, request).await;
                if let Some(qtype) = question.qtype {
                    shape_additional(&world.zones, qtype, &mut message);
                }
                message
            }
        };
        // A truncate fault over TCP did not shape the answer.
        let fault = fault.filter(|f| *f != DnsFaultKind::Truncate || transport == Transport::Udp);
        self.send(
            request,
            transport,
            &question,
            message,
            fault,
            response_handle,
        )
        .await
    }
}

impl ObservedHandler {
    async fn send<R: ResponseHandler>(
        &self,
        request: &Request,
        transport: Transport,
        question: &Question,
        message: Message,
        fault: Option<DnsFaultKind>,
        mut response_handle: R,
    ) -> ResponseInfo {
        let max_size = match transport {
            Transport::Udp => message.edns.as_ref().map_or(512, Edns::max_payload),
            Transport::Tcp | Transport::Tls => u16::MAX,
        };
        let mut raw = Vec::with_capacity(512);
        let mut encoder = BinEncoder::new(&mut raw);
        encoder.set_max_size(max_size);
        let encoded = response_from(request, &message).destructive_emit(&mut encoder);
        if encoded.is_err() {
            raw = encoding_fallback(request.metadata.id);
        }
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
            raw,
        }));
        match response_handle
            .send_response(response_from(request, &message))
            .await
        {
            Ok(info) => info,
            Err(err) => {
                self.note_send_failure(request, &err);
                ResponseInfo::from(Header {
                    metadata: sent_metadata,
                    counts: HeaderCounts::default(),
                })
            }
        }
    }

    fn note_send_failure(&self, request: &Request, err: &NetError) {
        self.shared.timeline.record(EventKind::Note {
            text: format!(
                "dns: could not send the answer to {} from {}: {err}",
                request.src(),
                self.local
            ),
        });
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

/// What hickory's response handle sends instead of an answer it cannot encode (the questions
/// echoed past the UDP limit, say): a bare SERVFAIL (`MessageResponse::encode`). The timeline
/// shows those bytes, not our own failed encoding.
fn encoding_fallback(id: u16) -> Vec<u8> {
    let mut metadata = Metadata::new(id, MessageType::Response, OpCode::Query);
    metadata.response_code = ResponseCode::ServFail;
    let header = Header {
        metadata,
        counts: HeaderCounts::default(),
    };
    let mut bytes = Vec::with_capacity(12);
    // Twelve bytes always fit an encoder without a limit.
    let _ = header.emit(&mut BinEncoder::new(&mut bytes));
    bytes
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
    message.edns = request.edns.as_ref().map(|_| {
        let mut edns = Edns::new();
        edns.set_max_payload(
            request
                .edns
                .as_ref()
                .map_or(512, |e| e.max_payload().max(512)),
        );
        edns
    });
    message
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
async fn catalog_answer<T: Time>(catalog: &Catalog, request: &Request) -> Message {
    let capture = Capture::default();
    catalog
        .handle_request::<_, T>(request, capture.clone())
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
