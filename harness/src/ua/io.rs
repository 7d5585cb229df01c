//! The reference UA on real sockets: DNS through hickory's client (exactly one packet per
//! query, no retries, so the timeline shows what the UA decided), SIP over connected UDP
//! sockets (so ICMP port unreachable surfaces as ECONNREFUSED), TCP and TLS (trusting the run's
//! test CA only, verifying the target's host name), and tokio timers.
//! Everything the UA decides happens in [`Agent`]; this only carries it out.

use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_server::net::client::{Client, ClientHandle};
use hickory_server::net::runtime::TokioRuntimeProvider;
use hickory_server::net::udp::UdpClientStream;
use hickory_server::proto::op::Message as DnsMessage;
use hickory_server::proto::rr::{DNSClass, Name, RecordType};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::ClientConfig;
use tokio_rustls::rustls::pki_types::ServerName;

use super::agent::{Action, Agent, AttemptReport, JobId, Method, Outcome};
use super::config::UaConfig;
use super::target::Target;
use crate::sip::StreamFramer;
use crate::sip::uri::SipUri;
use crate::timeline::Transport;

/// How long the UA waits for one DNS answer before taking the query as failed.
pub const DNS_TIMEOUT: Duration = Duration::from_secs(2);

/// What happened on a socket or a query, for the agent.
enum Event {
    Dns {
        job: JobId,
        name: Name,
        rtype: RecordType,
        answer: Option<Box<DnsMessage>>,
    },
    Opened {
        job: JobId,
        attempt: u32,
        local: SocketAddr,
        conn: Conn,
    },
    Message {
        job: JobId,
        attempt: u32,
        bytes: Vec<u8>,
    },
    TransportError {
        job: JobId,
        attempt: u32,
    },
    /// TCP connected but the TLS handshake failed (or, `timed_out`, was never answered).
    HandshakeFailed {
        job: JobId,
        attempt: u32,
        timed_out: bool,
    },
}

/// An attempt's open socket: a writer and the task reading it.
struct Conn {
    writer: Writer,
    reader: Option<JoinHandle<()>>,
    local: SocketAddr,
    /// A TCP or TLS connection: whom its reader reports to, and what it may be reused for.
    stream: Option<(Owner, ReuseKey)>,
}

/// Whom a connection's reader reports to: the attempt using it, or nobody while it waits to be
/// reused (a message then is a stray, and the end of the connection just ends the reader).
type Owner = Arc<std::sync::Mutex<Option<(JobId, u32)>>>;

/// What an open connection can carry another request to: the same transport and address,
/// and over TLS the same verified host name (RFC 5923 ties reuse to the certificate).
type ReuseKey = (Transport, SocketAddr, Option<Name>);

impl Conn {
    /// Still open: its reader has not seen the connection end.
    fn is_open(&self) -> bool {
        self.reader.as_ref().is_some_and(|r| !r.is_finished())
    }
}

enum Writer {
    Udp(Arc<UdpSocket>),
    Tcp(mpsc::UnboundedSender<Vec<u8>>),
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let Some(reader) = self.reader.take() {
            reader.abort();
        }
    }
}

/// Something the UA reports as it goes.
#[derive(Clone, Debug)]
pub enum Progress {
    Attempt(AttemptReport),
    Done {
        job: JobId,
        outcome: Outcome,
    },
    /// What a timer was due to send went out this late: the host did not run the UA on time
    /// (a busy or virtualised machine). Reported from [`HOST_DELAY_NOTICE`] on.
    HostDelay {
        late: Duration,
    },
}

/// From this lateness on, a timer's packet is reported as delayed by the host.
pub const HOST_DELAY_NOTICE: Duration = Duration::from_millis(1);

/// The reference UA with its agent, talking to one DNS server.
pub struct Ua {
    agent: Agent,
    dns: SocketAddr,
    started: Instant,
    events: (mpsc::UnboundedSender<Event>, mpsc::UnboundedReceiver<Event>),
    conns: HashMap<(JobId, u32), Conn>,
    /// TCP and TLS connections whose attempt ended, kept open for the next request to the same
    /// target (RFC 3261 §18.1.1: a request goes over an existing connection when there is one).
    idle: HashMap<ReuseKey, Conn>,
    /// The TLS client configuration; without it a TLS target fails like a refused one.
    tls: Option<Arc<ClientConfig>>,
    /// How long a TLS handshake may take before the attempt fails: Timer B (64·T1), as long
    /// as the transaction it stands before would wait for an answer.
    handshake_timeout: Duration,
}

impl Ua {
    pub fn new(config: UaConfig, user: &str, dns: SocketAddr) -> Self {
        let handshake_timeout = config.t1.saturating_mul(64);
        Self {
            handshake_timeout,
            agent: Agent::new(config, user),
            dns,
            started: Instant::now(),
            events: mpsc::unbounded_channel(),
            conns: HashMap::new(),
            idle: HashMap::new(),
            tls: None,
        }
    }

    /// TLS targets are reached with `config` (see [`crate::tls::TestPki::client_config`]).
    pub fn with_tls(mut self, config: Arc<ClientConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// UA time: since the UA started.
    pub fn now(&self) -> Duration {
        self.started.elapsed()
    }

    pub fn agent(&self) -> &Agent {
        &self.agent
    }

    /// An open connection to `target` that no attempt uses, now the attempt's.
    fn reusable(&mut self, target: &Target, job: JobId, attempt: u32) -> Option<Conn> {
        let key = (target.transport, target.addr, target.host.clone());
        let conn = self.idle.remove(&key).filter(Conn::is_open)?;
        if let Some((owner, _)) = &conn.stream {
            *owner
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((job, attempt));
        }
        Some(conn)
    }

    /// A TCP or TLS connection still open waits for the next request to its target; anything
    /// else is closed (dropped).
    fn keep_for_reuse(&mut self, conn: Conn) {
        if !conn.is_open() {
            return;
        }
        let Some((owner, key)) = &conn.stream else {
            return;
        };
        *owner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
        let key = key.clone();
        // One idle connection per target: a second one (two requests were in flight) closes.
        self.idle.insert(key, conn);
    }

    /// Carries out one request to the end, reporting each attempt as it ends.
    pub async fn run(
        &mut self,
        method: Method,
        uri: SipUri,
        mut progress: impl FnMut(&Progress),
    ) -> Outcome {
        let now = self.now();
        let job = self.agent.start(method, uri, now);
        // The deadline of the timer that just fired, until what it sent is out.
        let mut fired: Option<Duration> = None;
        loop {
            let outcome = self.perform(job, &mut progress).await;
            if let Some(due) = fired.take() {
                let late = self.now().saturating_sub(due);
                if late >= HOST_DELAY_NOTICE {
                    progress(&Progress::HostDelay { late });
                }
            }
            if let Some(outcome) = outcome {
                return outcome;
            }
            let deadline = self.agent.deadline();
            let sleep = async {
                match deadline {
                    Some(at) => sleep_precisely(self.started + at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                event = self.events.1.recv() => {
                    if let Some(event) = event {
                        self.deliver(event);
                    }
                }
                () = sleep => {
                    let now = self.now();
                    fired = deadline;
                    self.agent.on_timer(now);
                }
            }
        }
    }

    fn deliver(&mut self, event: Event) {
        let now = self.now();
        match event {
            Event::Dns {
                job,
                name,
                rtype,
                answer,
            } => self
                .agent
                .on_dns_answer(job, &name, rtype, answer.as_deref(), now),
            Event::Opened {
                job,
                attempt,
                local,
                conn,
            } => {
                self.conns.insert((job, attempt), conn);
                self.agent.on_opened(job, attempt, local, now);
            }
            Event::Message {
                job,
                attempt,
                bytes,
            } => self.agent.on_message(job, attempt, &bytes, now),
            Event::TransportError { job, attempt } => {
                self.agent.on_transport_error(job, attempt, now);
            }
            Event::HandshakeFailed {
                job,
                attempt,
                timed_out,
            } => {
                self.agent
                    .on_handshake_failure(job, attempt, timed_out, now);
            }
        }
    }

    /// Carries out every action the agent has; the outcome once `job` is done.
    async fn perform(
        &mut self,
        job: JobId,
        progress: &mut impl FnMut(&Progress),
    ) -> Option<Outcome> {
        let mut done = None;
        while let Some(action) = self.agent.poll_action() {
            match action {
                Action::Query { job, name, rtype } => {
                    let events = self.events.0.clone();
                    let dns = self.dns;
                    tokio::spawn(async move {
                        let answer = query_once(dns, name.clone(), rtype).await.map(Box::new);
                        let _ = events.send(Event::Dns {
                            job,
                            name,
                            rtype,
                            answer,
                        });
                    });
                }
                Action::Open {
                    job,
                    attempt,
                    target,
                } => {
                    if let Some(conn) = self.reusable(&target, job, attempt) {
                        let local = conn.local;
                        let _ = self.events.0.send(Event::Opened {
                            job,
                            attempt,
                            local,
                            conn,
                        });
                        continue;
                    }
                    let events = self.events.0.clone();
                    let tls = self
                        .tls
                        .clone()
                        .map(|config| (config, self.handshake_timeout));
                    tokio::spawn(open(job, attempt, target, tls, events));
                }
                Action::Send {
                    job,
                    attempt,
                    bytes,
                } => {
                    let failed = match self.conns.get(&(job, attempt)) {
                        Some(conn) => send(conn, bytes).await.is_err(),
                        None => false,
                    };
                    if failed {
                        let now = self.now();
                        self.agent.on_transport_error(job, attempt, now);
                    }
                }
                Action::SendElsewhere { target, bytes } => {
                    // Fire and forget, as the bug does.
                    if let Ok(socket) = UdpSocket::bind(unspecified(target.addr)).await {
                        let _ = socket.send_to(&bytes, target.addr).await;
                    }
                }
                Action::Close { job, attempt } => {
                    if let Some(conn) = self.conns.remove(&(job, attempt)) {
                        self.keep_for_reuse(conn);
                    }
                }
                Action::Attempt(report) => progress(&Progress::Attempt(report)),
                Action::Done {
                    job: finished,
                    outcome,
                } => {
                    progress(&Progress::Done {
                        job: finished,
                        outcome: outcome.clone(),
                    });
                    if finished == job {
                        done = Some(outcome);
                    }
                }
            }
        }
        done
    }
}

/// tokio's timer wheel has 1 ms ticks and wakes up to ~2 ms late; at T1 = 20 ms a
/// retransmission must come within ±2 ms. So the deadline is a timerfd of its own.
async fn sleep_precisely(until: Instant) {
    if let Some(timer) = PreciseTimer::start(until) {
        timer.wait(until).await;
        return;
    }
    // No timerfd: sleep to just before the deadline, then yield until it is due.
    const MARGIN: Duration = Duration::from_millis(3);
    if let Some(coarse) = until.checked_sub(MARGIN)
        && coarse > Instant::now()
    {
        tokio::time::sleep_until(coarse).await;
    }
    while Instant::now() < until {
        tokio::task::yield_now().await;
    }
}

/// A one-shot timerfd in the runtime's epoll set: the kernel's high-resolution timer wakes the
/// device's thread at the deadline, without spinning (several devices spinning on two cores
/// starved each other by milliseconds).
struct PreciseTimer(tokio::io::unix::AsyncFd<TimerHandle>);

struct TimerHandle(TimerFd);

impl std::os::fd::AsRawFd for TimerHandle {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsFd as _;
        self.0.as_fd().as_raw_fd()
    }
}

impl PreciseTimer {
    fn start(until: Instant) -> Option<Self> {
        let left = until.checked_duration_since(Instant::now())?;
        let timer = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )
        .ok()?;
        // A zero expiration would disarm the timer: at least one nanosecond.
        let left = left.max(Duration::from_nanos(1));
        timer
            .set(
                Expiration::OneShot(TimeSpec::from_duration(left)),
                TimerSetTimeFlags::empty(),
            )
            .ok()?;
        // SAFETY: `TimerHandle` owns the timerfd and is moved into the `AsyncFd`, so the
        // descriptor stays open and the same for the `AsyncFd`'s whole life, and `as_raw_fd`
        // always returns it.
        unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(
                TimerHandle(timer),
                tokio::io::Interest::READABLE,
            )
        }
        .ok()
        .map(Self)
    }

    async fn wait(self, until: Instant) {
        while Instant::now() < until {
            match self.0.readable().await {
                Ok(mut ready) => ready.clear_ready(),
                // The reactor is gone (the runtime is shutting down): nothing left to wait for.
                Err(_) => return,
            }
        }
    }
}

fn unspecified(peer: SocketAddr) -> SocketAddr {
    match peer {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    }
}

/// One DNS query, one packet: no retries, so what the server sees is what the UA decided.
pub async fn query_once(server: SocketAddr, name: Name, rtype: RecordType) -> Option<DnsMessage> {
    let stream = UdpClientStream::builder(server, TokioRuntimeProvider::default())
        .with_timeout(Some(DNS_TIMEOUT))
        .with_max_retries(0)
        .build();
    let (mut client, background) = Client::<TokioRuntimeProvider>::from_sender(stream);
    let background = tokio::spawn(background);
    let answer = client.query(name, DNSClass::IN, rtype).await;
    background.abort();
    answer.ok().map(|response| response.into_message())
}

async fn open(
    job: JobId,
    attempt: u32,
    target: Target,
    tls: Option<(Arc<ClientConfig>, Duration)>,
    events: mpsc::UnboundedSender<Event>,
) {
    let opened = match target.transport {
        Transport::Udp => open_udp(job, attempt, target.addr, events.clone())
            .await
            .map_err(|_| Failed::Transport),
        Transport::Tcp => match TcpStream::connect(target.addr).await {
            Ok(stream) => stream_conn(job, attempt, &target, stream, events.clone()),
            Err(err) => Err(err),
        }
        .map_err(|_| Failed::Transport),
        Transport::Tls => open_tls(job, attempt, &target, tls, events.clone()).await,
    };
    let event = match opened {
        Ok((local, conn)) => Event::Opened {
            job,
            attempt,
            local,
            conn,
        },
        Err(Failed::Transport) => Event::TransportError { job, attempt },
        Err(Failed::Handshake { timed_out }) => Event::HandshakeFailed {
            job,
            attempt,
            timed_out,
        },
    };
    let _ = events.send(event);
}

/// Why an attempt could not be opened: the agent hears of a failed TLS handshake apart from a
/// refused connection (the `tls-failure-is-final` fault treats them differently).
enum Failed {
    Transport,
    Handshake { timed_out: bool },
}

async fn open_udp(
    job: JobId,
    attempt: u32,
    peer: SocketAddr,
    events: mpsc::UnboundedSender<Event>,
) -> io::Result<(SocketAddr, Conn)> {
    let socket = UdpSocket::bind(unspecified(peer)).await?;
    socket.connect(peer).await?;
    let local = socket.local_addr()?;
    let socket = Arc::new(socket);
    let reading = socket.clone();
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        loop {
            let event = match reading.recv(&mut buf).await {
                Ok(len) => Event::Message {
                    job,
                    attempt,
                    bytes: buf[..len].to_vec(),
                },
                // The kernel's ICMP port unreachable, delivered on the connected socket.
                Err(_) => Event::TransportError { job, attempt },
            };
            let error = matches!(event, Event::TransportError { .. });
            if events.send(event).is_err() || error {
                return;
            }
        }
    });
    Ok((
        local,
        Conn {
            writer: Writer::Udp(socket),
            reader: Some(reader),
            local,
            stream: None,
        },
    ))
}

/// TCP, then a TLS handshake that must verify the certificate for the target's host name (the
/// SRV target, RFC 5922 §4): a refusal and a failed handshake both fail the attempt.
async fn open_tls(
    job: JobId,
    attempt: u32,
    target: &Target,
    tls: Option<(Arc<ClientConfig>, Duration)>,
    events: mpsc::UnboundedSender<Event>,
) -> Result<(SocketAddr, Conn), Failed> {
    let (config, timeout) = tls.ok_or(Failed::Transport)?;
    let name = match &target.host {
        Some(host) => ServerName::try_from(crate::tls::certificate_name(&host.to_ascii())),
        None => Ok(ServerName::IpAddress(target.addr.ip().into())),
    }
    .map_err(|_| Failed::Transport)?;
    let connected = async {
        let stream = TcpStream::connect(target.addr).await?;
        // A handshake is several small writes in a row: Nagle would hold the Finished message
        // for the server's delayed ACK (40 ms on Linux).
        stream.set_nodelay(true)?;
        let local = stream.local_addr()?;
        io::Result::Ok((stream, local))
    };
    let (stream, local) = connected.await.map_err(|_| Failed::Transport)?;
    let stream = tokio::time::timeout(timeout, TlsConnector::from(config).connect(name, stream))
        .await
        .map_err(|_| Failed::Handshake { timed_out: true })?
        .map_err(|_| Failed::Handshake { timed_out: false })?;
    let (_, conn) =
        stream_conn(job, attempt, target, stream, events).map_err(|_| Failed::Transport)?;
    Ok((local, conn))
}

/// A connected stream (TCP, or TLS over it) to `target`, read into framed messages by its own
/// task for whichever attempt uses it: first `job`'s `attempt`, later any it is reused for.
fn stream_conn<S: AsyncRead + AsyncWrite + Unpin + Send + 'static + LocalAddr>(
    job: JobId,
    attempt: u32,
    target: &Target,
    stream: S,
    events: mpsc::UnboundedSender<Event>,
) -> io::Result<(SocketAddr, Conn)> {
    let local = stream.local_addr()?;
    let owner: Owner = Arc::new(std::sync::Mutex::new(Some((job, attempt))));
    let key = (target.transport, target.addr, target.host.clone());
    let user = owner.clone();
    let current = move || {
        *user
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    };
    let (writer, mut outbox) = mpsc::unbounded_channel::<Vec<u8>>();
    let reader = tokio::spawn(async move {
        let mut stream = stream;
        let mut framer = StreamFramer::new();
        let mut buf = vec![0u8; 16384];
        loop {
            tokio::select! {
                read = stream.read(&mut buf) => match read {
                    Ok(0) | Err(_) => {
                        if let Some((job, attempt)) = current() {
                            let _ = events.send(Event::TransportError { job, attempt });
                        }
                        return;
                    }
                    Ok(len) => {
                        framer.push(&buf[..len]);
                        while let Some(Ok((bytes, _))) = framer.next_message() {
                            // Unowned, it is a stray: no transaction is waiting for it.
                            if let Some((job, attempt)) = current() {
                                let _ = events.send(Event::Message { job, attempt, bytes });
                            }
                        }
                    }
                },
                bytes = outbox.recv() => match bytes {
                    Some(bytes) => {
                        // Flushed: TLS holds written data in its buffer until then.
                        let written = async {
                            stream.write_all(&bytes).await?;
                            stream.flush().await
                        };
                        if written.await.is_err() {
                            if let Some((job, attempt)) = current() {
                                let _ = events.send(Event::TransportError { job, attempt });
                            }
                            return;
                        }
                    }
                    None => return,
                },
            }
        }
    });
    Ok((
        local,
        Conn {
            writer: Writer::Tcp(writer),
            reader: Some(reader),
            local,
            stream: Some((owner, key)),
        },
    ))
}

/// The local address of a stream's socket.
trait LocalAddr {
    fn local_addr(&self) -> io::Result<SocketAddr>;
}

impl LocalAddr for TcpStream {
    fn local_addr(&self) -> io::Result<SocketAddr> {
        TcpStream::local_addr(self)
    }
}

impl LocalAddr for tokio_rustls::client::TlsStream<TcpStream> {
    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.get_ref().0.local_addr()
    }
}

async fn send(conn: &Conn, bytes: Vec<u8>) -> io::Result<()> {
    match &conn.writer {
        // An earlier ICMP error may surface here as ECONNREFUSED: the reader reports it too.
        Writer::Udp(socket) => socket.send(&bytes).await.map(|_| ()),
        Writer::Tcp(writer) => writer
            .send(bytes)
            .map_err(|_| io::Error::from(io::ErrorKind::NotConnected)),
    }
}
