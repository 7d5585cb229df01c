//! srvlab's authoritative DNS server: hickory's `Catalog` behind srvlab's own UDP and TCP
//! listeners ([`super::listen`]), one pair per listen address, all sharing one set of zones,
//! faults and limits.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use hickory_server::proto::rr::LowerName;
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneHandler, ZoneType};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::handler::{ObservedHandler, Shared, World};
use super::limits::DnsLimits;
use super::listen::{serve_tcp, serve_udp};
use crate::model::zone::{DnsFault, ZoneSet, soa_and_ns};
use crate::servers::drops::DropWatch;
use crate::timeline::{EventKind, Timeline, Transport};

/// Why the DNS server could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("cannot listen on {addr}/{transport}: {source}{}", bind_hint(source, given_by.as_deref()))]
    Bind {
        addr: SocketAddr,
        transport: Transport,
        source: io::Error,
        /// Where the address was given (`--listen`, `--dns`, a lab's `dns:`), for the hint.
        given_by: Option<String>,
    },
    #[error("cannot load zone `{origin}` into the server: record `{record}` was refused")]
    Zone { origin: String, record: String },
}

/// A running DNS server.
pub struct DnsServer {
    /// Every address's UDP and TCP listener; each holds the tasks it started.
    listeners: JoinSet<()>,
    /// The kernel's drops on the UDP sockets (the counter is the socket's own).
    drops: Vec<DropWatch>,
    shared: Arc<Shared>,
    addrs: Vec<SocketAddr>,
    serial: AtomicU32,
}

impl DnsServer {
    /// Binds UDP and TCP on every address (port 0 picks one free port for both) and serves,
    /// with the default limits.
    pub async fn start(
        zones: ZoneSet,
        listen: &[SocketAddr],
        timeline: Timeline,
    ) -> Result<Self, DnsError> {
        Self::start_with(zones, listen, timeline, DnsLimits::default()).await
    }

    /// [`Self::start`] with limits of the caller's choosing.
    pub async fn start_with(
        zones: ZoneSet,
        listen: &[SocketAddr],
        timeline: Timeline,
        limits: DnsLimits,
    ) -> Result<Self, DnsError> {
        let serial = 1;
        let faults: Vec<DnsFault> = zones.faults().cloned().collect();
        let world = build_world(zones, serial)?;
        let shared = Arc::new(Shared::new(world, faults, timeline.clone(), limits));
        // One count of open TCP connections for every address: the cap is the server's.
        let open = Arc::new(Semaphore::new(limits.tcp_connections));
        let mut listeners = JoinSet::new();
        let mut addrs = Vec::new();
        let mut drops = Vec::new();
        for addr in listen {
            let (udp, tcp) = bind_pair(*addr).await?;
            let local = udp.local_addr().map_err(|source| DnsError::Bind {
                addr: *addr,
                transport: Transport::Udp,
                source,
                given_by: None,
            })?;
            match DropWatch::start(&udp, local, "dns", timeline.clone()) {
                Ok(watch) => drops.push(watch),
                Err(err) => {
                    timeline.record(EventKind::Note {
                        text: format!(
                            "dns: the kernel's drops on {local}/udp cannot be counted: {err}"
                        ),
                    });
                }
            }
            let handler = Arc::new(ObservedHandler {
                shared: shared.clone(),
                local,
            });
            listeners.spawn(serve_udp(udp, handler.clone()));
            listeners.spawn(serve_tcp(tcp, handler, open.clone()));
            addrs.push(local);
            timeline.record(EventKind::Note {
                text: format!("dns: listening on {local} (udp and tcp)"),
            });
        }
        Ok(Self {
            listeners,
            drops,
            shared,
            addrs,
            serial: AtomicU32::new(serial),
        })
    }

    /// The addresses actually bound (with the ports chosen when port 0 was asked for).
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The first bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// Serves `zones` from now on; queries already being answered finish with the old ones.
    /// The SOA serial goes up, as it would on a real primary. Faults are the new zones' faults.
    pub fn replace_zones(&self, zones: ZoneSet) -> Result<(), DnsError> {
        let serial = self.serial.fetch_add(1, Ordering::SeqCst) + 1;
        let faults: Vec<DnsFault> = zones.faults().cloned().collect();
        let world = build_world(zones, serial)?;
        self.shared.replace_world(world);
        self.shared.set_faults(faults);
        Ok(())
    }

    /// Replaces the scripted faults (the zones' own faults included).
    pub fn set_faults(&self, faults: Vec<DnsFault>) {
        self.shared.set_faults(faults);
    }

    /// The zones being served.
    pub fn zones(&self) -> ZoneSet {
        self.shared.world().zones.clone()
    }

    pub fn timeline(&self) -> &Timeline {
        &self.shared.timeline
    }

    /// Stops every listener and waits for them; connections still open are closed.
    pub async fn shutdown(mut self) -> Result<(), DnsError> {
        self.listeners.shutdown().await;
        for drops in std::mem::take(&mut self.drops) {
            drops.finish();
        }
        Ok(())
    }
}

impl DnsError {
    /// Names where the listen address was given, so that the hint names what to change.
    pub fn given_by(mut self, option: &str) -> Self {
        if let Self::Bind { given_by, .. } = &mut self {
            *given_by = Some(option.to_string());
        }
        self
    }
}

fn bind_hint(source: &io::Error, given_by: Option<&str>) -> String {
    let change = given_by.map_or_else(
        || "another address or port".to_string(),
        |option| format!("another with {option}"),
    );
    match source.kind() {
        io::ErrorKind::PermissionDenied => format!(
            " (ports below 1024 need root or CAP_NET_BIND_SERVICE; or pick {change}, e.g. 127.0.0.1:5353)"
        ),
        io::ErrorKind::AddrInUse => format!(" (another program holds this port; pick {change})"),
        io::ErrorKind::AddrNotAvailable => {
            " (no interface of this host has that address; add it with `ip addr add`)".to_string()
        }
        _ => String::new(),
    }
}

fn bind_error(addr: SocketAddr, transport: Transport, source: io::Error) -> DnsError {
    DnsError::Bind {
        addr,
        transport,
        source,
        given_by: None,
    }
}

/// UDP and TCP on the same address and port. With port 0 the port UDP got may be taken for
/// TCP; then try again with another.
async fn bind_pair(addr: SocketAddr) -> Result<(UdpSocket, TcpListener), DnsError> {
    let attempts = if addr.port() == 0 { 20 } else { 1 };
    let mut last = None;
    for _ in 0..attempts {
        let udp = UdpSocket::bind(addr)
            .await
            .map_err(|err| bind_error(addr, Transport::Udp, err))?;
        let bound = udp
            .local_addr()
            .map_err(|err| bind_error(addr, Transport::Udp, err))?;
        match TcpListener::bind(bound).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(err) => last = Some(bind_error(bound, Transport::Tcp, err)),
        }
    }
    Err(last.unwrap_or_else(|| {
        bind_error(
            addr,
            Transport::Tcp,
            io::Error::other("no port free for both UDP and TCP"),
        )
    }))
}

pub(super) fn build_world(zones: ZoneSet, serial: u32) -> Result<World, DnsError> {
    let mut catalog = Catalog::new();
    for zone in &zones.zones {
        let mut handler =
            InMemoryZoneHandler::<hickory_server::net::runtime::TokioRuntimeProvider>::empty(
                zone.origin.clone(),
                ZoneType::Primary,
                AxfrPolicy::Deny,
            );
        let records = soa_and_ns(zone, serial)
            .into_iter()
            .chain(zone.served_records().map(|r| r.to_record()));
        for record in records {
            let shown = record.to_string();
            if !handler.upsert_mut(record, serial) {
                return Err(DnsError::Zone {
                    origin: zone.origin.to_string(),
                    record: shown,
                });
            }
        }
        let handler: Arc<dyn ZoneHandler> = Arc::new(handler);
        catalog.upsert(LowerName::new(&zone.origin), vec![handler]);
    }
    Ok(World { catalog, zones })
}
