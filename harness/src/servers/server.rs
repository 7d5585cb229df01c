//! One scripted SIP server on real sockets: UDP and TCP listeners on each of its addresses feed
//! one task that owns the script and the responder, so every decision happens in one order.
//! Refusing means having no socket at all: listeners are closed (TCP connections reset, as a
//! crashed host's would be) and opened again when the script moves on.

use std::collections::HashSet;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;

use super::client_hello;
use super::drops::DropWatch;
use super::limits::{ConnectionLimits, Connections, Slot};
use super::refusal::RefusingPorts;
use super::responder::{Local, Plan, Responder, TransactionKey};
use super::script::{ScriptState, Transition};
use super::wire::RecordedStream;
use crate::model::case::{Behaviour, ServerSpec, TlsFailure};
use crate::sip::framing::{MAX_BODY_BYTES, MAX_HEADER_BYTES};
use crate::sip::{FramingError, Message, StreamFramer};
use crate::timeline::{
    CloseKind, Event, EventKind, PhaseChanged, SipMalformed, SipMessage, TcpClosed, TcpConnection,
    TcpUnframed, Timeline, TlsFailed, Transport, UnframedWhy,
};

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("server {server}: cannot listen on {addr}/{transport}: {source}{hint}")]
    Bind {
        server: String,
        addr: SocketAddr,
        transport: Transport,
        source: io::Error,
        hint: &'static str,
    },
    #[error("server {server}: listens on tls but has no certificate")]
    NoCertificate { server: String },
}

/// How a response gets back to the device.
#[derive(Clone, Debug)]
enum Reply {
    Udp(Arc<UdpSocket>),
    Tcp(mpsc::UnboundedSender<Vec<u8>>),
}

/// Where a message came from and how to answer it.
#[derive(Clone, Debug)]
struct Path {
    transport: Transport,
    local: SocketAddr,
    remote: SocketAddr,
    reply: Reply,
}

enum Input {
    /// A whole message from a device (framed already on TCP), with the kernel's receive time
    /// where the socket gives one (UDP).
    Message {
        path: Path,
        raw: Vec<u8>,
        seen: Option<SystemTime>,
    },
    /// Responses whose delay has run out.
    Delayed {
        path: Path,
        request: Box<Message>,
        responses: Vec<Message>,
    },
    Step(String),
    Shutdown(oneshot::Sender<()>),
}

/// A running server.
pub struct ServerHandle {
    name: String,
    input: mpsc::UnboundedSender<Input>,
    task: JoinHandle<()>,
}

impl ServerHandle {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The case reached a step: phases waiting for it end.
    pub fn step(&self, name: &str) {
        let _ = self.input.send(Input::Step(name.to_string()));
    }

    /// Closes every socket and stops.
    pub async fn shutdown(self) {
        let (done, wait) = oneshot::channel();
        if self.input.send(Input::Shutdown(done)).is_ok() {
            let _ = wait.await;
        }
        let _ = self.task.await;
    }
}

/// Brings a server up in its first phase. `tls` is the configuration its TLS listeners present
/// (needed when `spec.transports` has tls); `limits` bound what its TCP/TLS connections hold.
pub async fn start(
    spec: ServerSpec,
    timeline: Timeline,
    refusing: RefusingPorts,
    tls: Option<Arc<ServerConfig>>,
    limits: ConnectionLimits,
) -> Result<ServerHandle, ServerError> {
    if spec.transports.contains(&Transport::Tls) && tls.is_none() {
        return Err(ServerError::NoCertificate {
            server: spec.name(),
        });
    }
    let name = spec.name();
    let (input, inbox) = mpsc::unbounded_channel();
    let script = ScriptState::new(spec.script.clone(), timeline.elapsed());
    let mut core = Core {
        name: name.clone(),
        responder: Responder::new(&name),
        connections: Connections::new(&name, limits, timeline.clone()),
        seen: HashSet::new(),
        listeners: None,
        input: input.clone(),
        script,
        spec,
        timeline,
        refusing,
        tls: tls.map(TlsAcceptor::from),
    };
    if matches!(core.script.behaviour(), Behaviour::Refuse) {
        core.refuse();
    } else {
        core.listeners = Some(core.listen().await?);
    }
    let task = tokio::spawn(core.run(inbox));
    Ok(ServerHandle { name, input, task })
}

/// Open sockets of a server that is not refusing.
struct Listeners {
    tasks: Vec<JoinHandle<()>>,
    /// Tells TCP connections to reset (a crash).
    reset: watch::Sender<bool>,
    /// The kernel's drops on the UDP sockets.
    drops: Vec<DropWatch>,
}

impl Listeners {
    fn close(self) {
        let _ = self.reset.send(true);
        for task in self.tasks {
            task.abort();
        }
        for drops in self.drops {
            drops.finish();
        }
    }
}

struct Core {
    name: String,
    spec: ServerSpec,
    script: ScriptState,
    responder: Responder,
    /// Its TCP/TLS connections and their limits, across listeners closed and opened again.
    connections: Connections,
    seen: HashSet<TransactionKey>,
    listeners: Option<Listeners>,
    input: mpsc::UnboundedSender<Input>,
    timeline: Timeline,
    refusing: RefusingPorts,
    tls: Option<TlsAcceptor>,
}

fn bind_error(
    server: &str,
    addr: SocketAddr,
    transport: Transport,
    source: io::Error,
) -> ServerError {
    let hint = match source.kind() {
        io::ErrorKind::AddrInUse => " (another program holds this port)",
        io::ErrorKind::AddrNotAvailable => {
            " (no interface of this host has that address; add it with `ip addr add`, or use a network namespace)"
        }
        io::ErrorKind::PermissionDenied => " (ports below 1024 need root)",
        _ => "",
    };
    ServerError::Bind {
        server: server.to_string(),
        addr,
        transport,
        source,
        hint,
    }
}

impl Core {
    fn sockets(&self) -> Vec<(SocketAddr, Transport)> {
        let mut sockets = Vec::new();
        for address in &self.spec.addresses {
            for transport in &self.spec.transports {
                sockets.push((SocketAddr::new(*address, self.spec.port), *transport));
            }
        }
        sockets
    }

    async fn listen(&self) -> Result<Listeners, ServerError> {
        let (reset, reset_rx) = watch::channel(false);
        let mut tasks = Vec::new();
        let mut drops = Vec::new();
        for (addr, transport) in self.sockets() {
            let bind = |e| bind_error(&self.name, addr, transport, e);
            match transport {
                Transport::Udp => {
                    let socket = Arc::new(UdpSocket::bind(addr).await.map_err(bind)?);
                    match DropWatch::start(socket.as_ref(), addr, &self.name, self.timeline.clone())
                    {
                        Ok(watch) => drops.push(watch),
                        Err(err) => {
                            self.timeline.record(EventKind::Note {
                                text: format!(
                                    "{}: the kernel's drops on {addr}/udp cannot be counted: {err}",
                                    self.name
                                ),
                            });
                        }
                    }
                    tasks.push(tokio::spawn(udp_loop(
                        socket,
                        addr,
                        self.input.clone(),
                        self.timeline.clone(),
                        self.name.clone(),
                    )));
                }
                Transport::Tcp | Transport::Tls => {
                    let listener = TcpListener::bind(addr).await.map_err(bind)?;
                    let tls = match transport {
                        Transport::Tls => self.tls.clone(),
                        _ => None,
                    };
                    tasks.push(tokio::spawn(accept_loop(
                        listener,
                        addr,
                        Accepted {
                            input: self.input.clone(),
                            timeline: self.timeline.clone(),
                            name: self.name.clone(),
                            reset: reset_rx.clone(),
                            tls_failure: self.spec.tls.fail,
                            connections: self.connections.clone(),
                        },
                        tls,
                    )));
                }
            }
        }
        Ok(Listeners {
            tasks,
            reset,
            drops,
        })
    }

    /// Close every socket and let the kernel refuse; tell the refusal watcher.
    fn refuse(&mut self) {
        if let Some(listeners) = self.listeners.take() {
            listeners.close();
        }
        for (addr, transport) in self.sockets() {
            self.refusing.insert(addr, transport, &self.name);
        }
    }

    async fn run(mut self, mut inbox: mpsc::UnboundedReceiver<Input>) {
        loop {
            let deadline = self.script.deadline();
            let sleep = async {
                match deadline {
                    Some(at) => {
                        let now = self.timeline.elapsed();
                        tokio::time::sleep(at.saturating_sub(now)).await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                input = inbox.recv() => match input {
                    Some(Input::Message { path, raw, seen }) => self.on_message(path, raw, seen).await,
                    Some(Input::Delayed { path, request, responses }) => {
                        self.send(&path, &request, responses).await;
                    }
                    Some(Input::Step(name)) => {
                        let now = self.timeline.elapsed();
                        if let Some(transition) = self.script.on_step(&name, now) {
                            self.apply(transition).await;
                        }
                    }
                    Some(Input::Shutdown(done)) => {
                        self.close_all();
                        let _ = done.send(());
                        return;
                    }
                    None => {
                        self.close_all();
                        return;
                    }
                },
                () = sleep => {
                    let now = self.timeline.elapsed();
                    for transition in self.script.on_time(now) {
                        self.apply(transition).await;
                    }
                }
            }
        }
    }

    fn close_all(&mut self) {
        if let Some(listeners) = self.listeners.take() {
            listeners.close();
        }
        for (addr, transport) in self.sockets() {
            self.refusing.remove(addr, transport);
        }
    }

    async fn apply(&mut self, transition: Transition) {
        let was_refusing = self.listeners.is_none();
        let refuses = matches!(transition.behaviour, Behaviour::Refuse);
        self.timeline.record(EventKind::PhaseChanged(PhaseChanged {
            server: self.name.clone(),
            phase: transition.phase,
            behaviour: transition.behaviour.to_string(),
            reason: transition.reason,
        }));
        if refuses && !was_refusing {
            self.refuse();
        } else if !refuses && was_refusing {
            for (addr, transport) in self.sockets() {
                self.refusing.remove(addr, transport);
            }
            match self.listen().await {
                Ok(listeners) => self.listeners = Some(listeners),
                Err(err) => {
                    self.timeline.record(EventKind::Note {
                        text: format!("{err}; the server stays down"),
                    });
                }
            }
        }
    }

    async fn on_message(&mut self, path: Path, raw: Vec<u8>, seen: Option<SystemTime>) {
        let request = match Message::parse(&raw) {
            Ok(message) => message,
            Err(err) => {
                self.timeline.record(EventKind::SipMalformed(SipMalformed {
                    server: self.name.clone(),
                    transport: path.transport,
                    local: path.local,
                    remote: path.remote,
                    reason: err.to_string(),
                    raw,
                }));
                return;
            }
        };
        let seen_ns = seen.and_then(|at| Event::ns_since(self.timeline.wall_start(), at));
        self.timeline.record(EventKind::SipReceived(SipMessage {
            server: self.name.clone(),
            transport: path.transport,
            local: path.local,
            remote: path.remote,
            summary: request.summary(),
            seen_ns,
            raw,
        }));
        if request.method().is_none() {
            return; // a response sent to a server: nothing to do
        }
        let plan = match self.responder.retransmission(&request, &self.seen) {
            Some(plan) => plan,
            None if request
                .method()
                .is_some_and(|m| m.eq_ignore_ascii_case("ACK")) =>
            {
                Plan::Nothing
            }
            None => {
                if let Some(key) = Responder::key(&request) {
                    self.seen.insert(key);
                }
                let now = self.timeline.elapsed();
                let (behaviour, transition) = self.script.on_request(now);
                let local = Local {
                    addr: path.local,
                    transport: path.transport,
                };
                let plan = self.responder.respond(&behaviour, &request, local);
                self.execute(&path, &request, plan).await;
                if let Some(transition) = transition {
                    self.apply(transition).await;
                }
                return;
            }
        };
        self.execute(&path, &request, plan).await;
    }

    async fn execute(&mut self, path: &Path, request: &Message, plan: Plan) {
        match plan {
            Plan::Nothing => {}
            Plan::Send(responses) => self.send(path, request, responses).await,
            Plan::Later(delay, responses) => {
                let input = self.input.clone();
                let path = path.clone();
                let request = Box::new(request.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let _ = input.send(Input::Delayed {
                        path,
                        request,
                        responses,
                    });
                });
            }
        }
    }

    async fn send(&mut self, path: &Path, request: &Message, responses: Vec<Message>) {
        if let Some(last) = responses.last() {
            self.responder.remember(request, last);
        }
        for response in responses {
            let bytes = response.to_bytes();
            // Recorded before it goes out: the device answers at once (an ACK to a 503), and
            // the kernel stamps its packet; a response recorded after a busy scheduler let
            // that packet in would read as an ACK before the response.
            self.timeline.record(EventKind::SipSent(SipMessage {
                server: self.name.clone(),
                transport: path.transport,
                local: path.local,
                remote: path.remote,
                summary: response.summary(),
                seen_ns: None,
                raw: bytes.clone(),
            }));
            let sent = match &path.reply {
                Reply::Udp(socket) => socket.send_to(&bytes, path.remote).await.map(|_| ()),
                Reply::Tcp(writer) => writer
                    .send(bytes)
                    .map_err(|_| io::Error::from(io::ErrorKind::NotConnected)),
            };
            if let Err(err) = sent {
                self.timeline.record(EventKind::Note {
                    text: format!(
                        "{}: the {} above to {} over {} was not sent: {err}",
                        self.name,
                        response.summary(),
                        path.remote,
                        path.transport
                    ),
                });
            }
        }
    }
}

async fn udp_loop(
    socket: Arc<UdpSocket>,
    local: SocketAddr,
    input: mpsc::UnboundedSender<Input>,
    timeline: Timeline,
    name: String,
) {
    // Kernel stamps keep the server task's scheduling delay out of the timeline's times.
    if let Err(err) = super::stamp::enable(socket.as_ref()) {
        timeline.record(EventKind::Note {
            text: format!("{name}: no kernel receive times on {local}/udp: {err}"),
        });
    }
    let mut buf = vec![0u8; 65536];
    loop {
        let received = match socket.readable().await {
            Ok(()) => socket.try_io(tokio::io::Interest::READABLE, || {
                super::stamp::receive(socket.as_ref(), &mut buf)
            }),
            Err(err) => Err(err),
        };
        match received {
            Ok((len, Some(remote), seen)) => {
                let path = Path {
                    transport: Transport::Udp,
                    local,
                    remote,
                    reply: Reply::Udp(socket.clone()),
                };
                let raw = buf[..len].to_vec();
                if input.send(Input::Message { path, raw, seen }).is_err() {
                    return;
                }
            }
            Ok((_, None, _)) => continue,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
            // An ICMP error for an earlier answer of ours surfaces here on Linux; not ours to fix.
            Err(err) if err.kind() == io::ErrorKind::ConnectionRefused => continue,
            Err(err) => {
                timeline.record(EventKind::Note {
                    text: format!("{name}: receiving on {local}/udp failed: {err}"),
                });
                return;
            }
        }
    }
}

/// What every connection of a listener shares.
#[derive(Clone)]
struct Accepted {
    input: mpsc::UnboundedSender<Input>,
    timeline: Timeline,
    name: String,
    /// Tells connections to reset (a crash).
    reset: watch::Receiver<bool>,
    /// How TLS handshakes fail (`tls: {fail: …}`); a bad certificate is the acceptor's.
    tls_failure: Option<TlsFailure>,
    connections: Connections,
}

impl Accepted {
    /// `stream` with every byte it carries recorded as it crosses the wire.
    fn recorded(&self, stream: TcpStream, local: SocketAddr, remote: SocketAddr) -> RecordedStream {
        RecordedStream::new(
            stream,
            self.timeline.clone(),
            self.name.clone(),
            local,
            remote,
        )
    }

    fn closed(&self, local: SocketAddr, remote: SocketAddr, how: CloseKind) {
        self.timeline.record(EventKind::TcpClosed(TcpClosed {
            server: self.name.clone(),
            local,
            remote,
            how,
        }));
    }
}

async fn accept_loop(
    listener: TcpListener,
    local: SocketAddr,
    accepted: Accepted,
    tls: Option<TlsAcceptor>,
) {
    let transport = if tls.is_some() {
        Transport::Tls
    } else {
        Transport::Tcp
    };
    loop {
        match listener.accept().await {
            Ok((stream, remote)) => {
                accepted
                    .timeline
                    .record(EventKind::TcpConnected(TcpConnection {
                        server: accepted.name.clone(),
                        local,
                        remote,
                    }));
                // At the limits another connection makes room; the note says which and why.
                let Some(slot) = accepted.connections.admit(transport, local, remote).await else {
                    drop(stream);
                    accepted.closed(local, remote, CloseKind::Server);
                    continue;
                };
                // Detached: a connection ends on its own, at a limit, or when `reset` says the
                // server crashed.
                match &tls {
                    None => {
                        tokio::spawn(connection(stream, local, remote, accepted.clone(), slot));
                    }
                    Some(_) if accepted.tls_failure == Some(TlsFailure::HandshakeStall) => {
                        tokio::spawn(stalled_handshake(
                            stream,
                            local,
                            remote,
                            accepted.clone(),
                            slot,
                        ));
                    }
                    Some(_) if accepted.tls_failure == Some(TlsFailure::NoSharedCipher) => {
                        tokio::spawn(no_shared_cipher(
                            stream,
                            local,
                            remote,
                            accepted.clone(),
                            slot,
                        ));
                    }
                    Some(acceptor) => {
                        tokio::spawn(tls_connection(
                            acceptor.clone(),
                            stream,
                            local,
                            remote,
                            accepted.clone(),
                            slot,
                        ));
                    }
                }
            }
            Err(err) => {
                accepted.timeline.record(EventKind::Note {
                    text: format!(
                        "{}: accepting on {local}/{transport} failed: {err}",
                        accepted.name
                    ),
                });
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// A connection's stream: plain TCP, or TLS over TCP; `tcp` is the socket under it (to close it
/// with a reset).
trait SipStream: AsyncRead + AsyncWrite + Unpin + Send {
    const TRANSPORT: Transport;
    fn tcp(&self) -> &TcpStream;
}

impl SipStream for TcpStream {
    const TRANSPORT: Transport = Transport::Tcp;
    fn tcp(&self) -> &TcpStream {
        self
    }
}

impl SipStream for tokio_rustls::server::TlsStream<RecordedStream> {
    const TRANSPORT: Transport = Transport::Tls;
    fn tcp(&self) -> &TcpStream {
        self.get_ref().0.tcp()
    }
}

/// A TLS listener that never answers the handshake: what the device sends is recorded as it
/// crossed the wire, until it gives up and closes (or the server resets). Only the idle limit
/// and the connection cap apply: the stall is the point, and the device's Timer B may well be
/// longer than the message time limit.
async fn stalled_handshake(
    stream: TcpStream,
    local: SocketAddr,
    remote: SocketAddr,
    mut accepted: Accepted,
    mut slot: Slot,
) {
    let mut recorded = accepted.recorded(stream, local, remote);
    let mut buf = vec![0u8; 16384];
    let how = loop {
        tokio::select! {
            read = recorded.read(&mut buf) => match read {
                Ok(0) => break CloseKind::Peer,
                Ok(_) => slot.active(),
                Err(_) => break CloseKind::PeerReset,
            },
            cut = slot.cut() => {
                slot.note(&cut);
                break CloseKind::Server;
            }
            _ = accepted.reset.changed() => {
                let _ = socket2::SockRef::from(recorded.tcp()).set_linger(Some(Duration::ZERO));
                break CloseKind::ServerReset;
            }
        }
    };
    drop(recorded);
    accepted.closed(local, remote, how);
}

/// A TLS listener that shares no cipher suite with anyone: it reads the ClientHello, records
/// the suites the device offered, and answers with a fatal handshake_failure alert (what
/// OpenSSL and rustls send then), then closes.
async fn no_shared_cipher(
    stream: TcpStream,
    local: SocketAddr,
    remote: SocketAddr,
    mut accepted: Accepted,
    mut slot: Slot,
) {
    let _ = stream.set_nodelay(true);
    let mut recorded = accepted.recorded(stream, local, remote);
    let mut hello = Vec::new();
    let mut buf = vec![0u8; 16384];
    let read = loop {
        if let Some(hello) = client_hello::read(&hello) {
            break Ok(hello);
        }
        tokio::select! {
            read = recorded.read(&mut buf) => match read {
                Ok(0) => break Err(CloseKind::Peer),
                Ok(len) => {
                    slot.active();
                    hello.extend_from_slice(&buf[..len]);
                }
                Err(_) => break Err(CloseKind::PeerReset),
            },
            cut = slot.handshake_cut() => {
                slot.note(&cut);
                break Err(CloseKind::Server);
            }
            _ = accepted.reset.changed() => {
                let _ = socket2::SockRef::from(recorded.tcp()).set_linger(Some(Duration::ZERO));
                break Err(CloseKind::ServerReset);
            }
        }
    };
    let how = match read {
        Ok(hello) => {
            let sent = recorded
                .write_all(&client_hello::HANDSHAKE_FAILURE_ALERT)
                .await
                .and(recorded.flush().await);
            let reason = match hello {
                Ok(suites) => format!(
                    "no shared cipher: sent alert handshake_failure; the device offered {}",
                    client_hello::suite_names(&suites)
                ),
                Err(why) => format!(
                    "no shared cipher: sent alert handshake_failure to a ClientHello srvlab could not read ({why})"
                ),
            };
            accepted.timeline.record(EventKind::TlsFailed(TlsFailed {
                server: accepted.name.clone(),
                local,
                remote,
                reason,
            }));
            let _ = recorded.shutdown().await;
            match sent {
                Ok(()) => CloseKind::Server,
                Err(_) => CloseKind::PeerReset,
            }
        }
        Err(how) => how,
    };
    drop(recorded);
    accepted.closed(local, remote, how);
}

/// The TLS handshake, then SIP as over TCP. Every byte on the socket is recorded as it crossed
/// the wire; a handshake that fails is recorded with rustls's reason.
async fn tls_connection(
    acceptor: TlsAcceptor,
    stream: TcpStream,
    local: SocketAddr,
    remote: SocketAddr,
    mut accepted: Accepted,
    mut slot: Slot,
) {
    // TLS writes records in small pieces (a handshake flight, a response per record): without
    // TCP_NODELAY, Nagle holds them for the device's delayed ACK.
    if let Err(err) = stream.set_nodelay(true) {
        accepted.timeline.record(EventKind::Note {
            text: format!("{}: TCP_NODELAY on {local}/tls: {err}", accepted.name),
        });
    }
    let recorded = accepted.recorded(stream, local, remote);
    let handshake = tokio::select! {
        handshake = acceptor.accept(recorded) => handshake,
        _ = accepted.reset.changed() => {
            // The socket went with the handshake future, closed without SO_LINGER 0: a FIN.
            accepted.closed(local, remote, CloseKind::Server);
            return;
        }
        cut = slot.handshake_cut() => {
            slot.note(&cut);
            accepted.closed(local, remote, CloseKind::Server);
            return;
        }
    };
    match handshake {
        Ok(stream) => connection(stream, local, remote, accepted, slot).await,
        Err(err) => {
            let how = match err.kind() {
                io::ErrorKind::UnexpectedEof => CloseKind::Peer,
                io::ErrorKind::ConnectionReset => CloseKind::PeerReset,
                _ => CloseKind::Server,
            };
            accepted.timeline.record(EventKind::TlsFailed(TlsFailed {
                server: accepted.name.clone(),
                local,
                remote,
                reason: err.to_string(),
            }));
            accepted.closed(local, remote, how);
        }
    }
}

async fn connection<S: SipStream>(
    mut stream: S,
    local: SocketAddr,
    remote: SocketAddr,
    accepted: Accepted,
    mut slot: Slot,
) {
    let Accepted {
        input,
        timeline,
        name,
        mut reset,
        connections,
        ..
    } = accepted;
    let (writer, mut outbox) = mpsc::unbounded_channel::<Vec<u8>>();
    // No header block or body larger than a connection may hold: such a message fails as one
    // too large, with its size, as soon as its header says so.
    let pending = connections.limits().pending_per_connection;
    let mut framer =
        StreamFramer::with_limits(MAX_HEADER_BYTES.min(pending), MAX_BODY_BYTES.min(pending));
    let mut buf = vec![0u8; 16384];
    let closed = |how| {
        timeline.record(EventKind::TcpClosed(TcpClosed {
            server: name.clone(),
            local,
            remote,
            how,
        }));
    };
    let how = loop {
        tokio::select! {
            read = stream.read(&mut buf) => match read {
                Ok(0) => break CloseKind::Peer,
                Ok(len) => {
                    slot.active();
                    framer.push(&buf[..len]);
                    let mut broken = false;
                    let mut framed = false;
                    while let Some(next) = framer.next_message() {
                        framed = true;
                        match next {
                            Ok((raw, _)) => {
                                let path = Path {
                                    transport: S::TRANSPORT,
                                    local,
                                    remote,
                                    reply: Reply::Tcp(writer.clone()),
                                };
                                let _ = input.send(Input::Message { path, raw, seen: None });
                            }
                            Err(err) => {
                                record_framing_error(&timeline, &name, S::TRANSPORT, local, remote, err);
                                broken = true;
                            }
                        }
                    }
                    // After a framing error the stream cannot be resynchronised.
                    if broken {
                        break CloseKind::ServerReset;
                    }
                    if let Err(cut) = slot.pending(framer.buffered(), framed) {
                        slot.note(&cut);
                        break CloseKind::Server;
                    }
                }
                Err(_) => break CloseKind::PeerReset,
            },
            Some(bytes) = outbox.recv() => {
                // Flushed: TLS holds written data in its buffer until then.
                let written = async {
                    stream.write_all(&bytes).await?;
                    stream.flush().await
                };
                if written.await.is_err() {
                    break CloseKind::PeerReset;
                }
                slot.active();
            }
            _ = reset.changed() => break CloseKind::ServerReset,
            cut = slot.cut() => {
                slot.note(&cut);
                break CloseKind::Server;
            }
        }
    };
    if how == CloseKind::ServerReset {
        // SO_LINGER 0: close with RST, as a crashed host's kernel would.
        let _ = socket2::SockRef::from(stream.tcp()).set_linger(Some(Duration::ZERO));
    }
    drop(stream);
    // What the device sent that never became a message: on the timeline before the close.
    let rest = framer.take_unframed();
    if !rest.is_empty() {
        timeline.record(EventKind::TcpUnframed(TcpUnframed {
            server: name.clone(),
            transport: S::TRANSPORT,
            local,
            remote,
            why: if framer.is_broken() {
                UnframedWhy::FramingError
            } else {
                UnframedWhy::Closed
            },
            raw: rest,
        }));
    }
    closed(how);
    drop(slot);
}

fn record_framing_error(
    timeline: &Timeline,
    name: &str,
    transport: Transport,
    local: SocketAddr,
    remote: SocketAddr,
    err: FramingError,
) {
    timeline.record(EventKind::SipMalformed(SipMalformed {
        server: name.to_string(),
        transport,
        local,
        remote,
        reason: err.to_string(),
        raw: err.raw().to_vec(),
    }));
}
