//! srvlab's authoritative DNS server: hickory's `Server` on real UDP and TCP sockets, one per
//! listen address, all sharing one set of zones and faults.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use hickory_server::Server;
use hickory_server::proto::rr::LowerName;
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneHandler, ZoneType};
use tokio::net::{TcpListener, UdpSocket};

use super::handler::{ObservedHandler, Shared, World};
use crate::model::zone::{DnsFault, ZoneSet, soa_and_ns};
use crate::timeline::{EventKind, Timeline, Transport};

/// Why the DNS server could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("cannot listen on {addr}/{transport}: {source}{hint}")]
    Bind {
        addr: SocketAddr,
        transport: Transport,
        source: io::Error,
        hint: &'static str,
    },
    #[error("cannot load zone `{origin}` into the server: record `{record}` was refused")]
    Zone { origin: String, record: String },
    #[error("the DNS server stopped with an error: {0}")]
    Shutdown(String),
}

/// How long a TCP client may stay idle before hickory closes the connection.
const TCP_IDLE: Duration = Duration::from_secs(10);

/// A running DNS server.
pub struct DnsServer {
    servers: Vec<Server<ObservedHandler>>,
    shared: Arc<Shared>,
    addrs: Vec<SocketAddr>,
    serial: AtomicU32,
}

impl DnsServer {
    /// Binds UDP and TCP on every address (port 0 picks one free port for both) and serves.
    pub async fn start(
        zones: ZoneSet,
        listen: &[SocketAddr],
        timeline: Timeline,
    ) -> Result<Self, DnsError> {
        let serial = 1;
        let faults: Vec<DnsFault> = zones.faults().cloned().collect();
        let world = build_world(zones, serial)?;
        let shared = Arc::new(Shared::new(world, faults, timeline.clone()));
        let mut servers = Vec::new();
        let mut addrs = Vec::new();
        for addr in listen {
            let (udp, tcp) = bind_pair(*addr).await?;
            let local = udp.local_addr().map_err(|source| DnsError::Bind {
                addr: *addr,
                transport: Transport::Udp,
                source,
                hint: "",
            })?;
            let mut server = Server::new(ObservedHandler {
                shared: shared.clone(),
                local,
            });
            server.register_socket(udp);
            server.register_listener(tcp, TCP_IDLE, 64);
            servers.push(server);
            addrs.push(local);
            timeline.record(EventKind::Note {
                text: format!("dns: listening on {local} (udp and tcp)"),
            });
        }
        Ok(Self {
            servers,
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

    /// Stops every listener and waits for them.
    pub async fn shutdown(mut self) -> Result<(), DnsError> {
        for server in &mut self.servers {
            server
                .shutdown_gracefully()
                .await
                .map_err(|err| DnsError::Shutdown(err.to_string()))?;
        }
        Ok(())
    }
}

fn bind_error(addr: SocketAddr, transport: Transport, source: io::Error) -> DnsError {
    let hint = match source.kind() {
        io::ErrorKind::PermissionDenied => {
            " (ports below 1024 need root or CAP_NET_BIND_SERVICE; try --listen 127.0.0.1:5353)"
        }
        io::ErrorKind::AddrInUse => {
            " (another program holds this port; pick another with --listen)"
        }
        io::ErrorKind::AddrNotAvailable => {
            " (no interface of this host has that address; add it with `ip addr add`)"
        }
        _ => "",
    };
    DnsError::Bind {
        addr,
        transport,
        source,
        hint,
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
