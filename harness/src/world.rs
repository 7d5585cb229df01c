//! A case's world brought up: the DNS server, the refusal watcher and every scripted server,
//! all recording on one timeline.

use std::net::SocketAddr;

use crate::dns::{DnsError, DnsLimits, DnsServer};
use crate::model::case::{Case, TlsFailure};
use crate::servers::{
    self, ConnectionLimits, RefusalWatcher, RefusingPorts, ServerError, ServerHandle,
};
use crate::timeline::{EventKind, Timeline, Transport};
use crate::tls::{LabPki, TestPki, TlsError};

/// How long a world waits for the kernel to stamp packets on arrival (see
/// [`servers::stamp::wait_until_live`]); it takes a few milliseconds when it is needed at all.
const STAMPS_LIVE_WITHIN: std::time::Duration = std::time::Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum WorldError {
    #[error(transparent)]
    Dns(#[from] DnsError),
    #[error(transparent)]
    Server(#[from] ServerError),
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// Where the world's DNS listens, the lab's TLS certificates when it has its own, and what a
/// device can make its SIP servers hold over TCP/TLS.
#[derive(Clone, Debug)]
pub struct WorldOptions {
    pub dns_listen: Vec<SocketAddr>,
    /// Where `dns_listen` was given (`--dns`, a lab's `dns:`): errors name it.
    pub dns_given_by: String,
    /// What the DNS server allows a client (the UDP answer size, TCP connections).
    pub dns_limits: DnsLimits,
    /// `None`: every TLS server's certificate comes from a CA of this run.
    pub tls: Option<std::sync::Arc<LabPki>>,
    /// Every server's limits on its TCP/TLS connections (idle and message time, connections,
    /// pending bytes).
    pub connection_limits: ConnectionLimits,
}

impl Default for WorldOptions {
    /// DNS on a free port of 127.0.0.1, the run's own CA, every limit at its default.
    fn default() -> Self {
        Self {
            dns_listen: vec![SocketAddr::from(([127, 0, 0, 1], 0))],
            dns_given_by: "the DNS address".into(),
            dns_limits: DnsLimits::default(),
            tls: None,
            connection_limits: ConnectionLimits::default(),
        }
    }
}

pub struct World {
    dns: DnsServer,
    servers: Vec<ServerHandle>,
    /// `None` when raw sockets are not allowed; the reason is on the timeline.
    watcher: Option<RefusalWatcher>,
    timeline: Timeline,
    /// The servers' certificates and the CA to trust, when a server listens on tls.
    pki: Option<TestPki>,
}

impl World {
    pub async fn start(
        case: &Case,
        options: &WorldOptions,
        timeline: Timeline,
    ) -> Result<Self, WorldError> {
        let (watcher, refusing) = match RefusalWatcher::start(timeline.clone()) {
            Ok(watcher) => {
                let ports = watcher.ports.clone();
                (Some(watcher), ports)
            }
            Err(err) => {
                timeline.record(EventKind::Note {
                    text: err.to_string(),
                });
                (None, RefusingPorts::default())
            }
        };
        if watcher.is_some() {
            // Off the runtime's threads: the probe sleeps, and other cases may be running.
            let live =
                tokio::task::spawn_blocking(|| servers::stamp::wait_until_live(STAMPS_LIVE_WITHIN))
                    .await;
            if !matches!(live, Ok(Ok(true))) {
                timeline.record(EventKind::Note {
                    text: format!(
                        "kernel receive timestamps were not live within {STAMPS_LIVE_WITHIN:?}: early refusals may be recorded late"
                    ),
                });
            }
        }
        let dns = DnsServer::start_with(
            case.zones.clone(),
            &options.dns_listen,
            timeline.clone(),
            options.dns_limits,
        )
        .await
        .map_err(|err| err.given_by(&options.dns_given_by))?;
        let pki = if case
            .servers
            .iter()
            .any(|s| s.transports.contains(&Transport::Tls))
        {
            let mut hosts: Vec<String> = case.servers.iter().map(|s| s.host.to_ascii()).collect();
            if case
                .servers
                .iter()
                .any(|s| s.tls.fail == Some(TlsFailure::WrongName))
            {
                hosts.push(crate::tls::WRONG_NAME.to_owned());
            }
            let hosts = hosts.iter().map(String::as_str);
            Some(match &options.tls {
                Some(lab) => TestPki::with_lab(hosts, lab)?,
                None => TestPki::new(hosts)?,
            })
        } else {
            None
        };
        let mut handles = Vec::new();
        for spec in &case.servers {
            let host = spec.host.to_ascii();
            let tls = match (&pki, spec.tls.fail) {
                (Some(_), Some(TlsFailure::BadCertificate)) => {
                    Some(TestPki::untrusted_server_config(&host, &timeline)?)
                }
                (Some(pki), Some(TlsFailure::WrongName)) => {
                    pki.server_config(crate::tls::WRONG_NAME, &timeline)?
                }
                (Some(pki), _) => pki.server_config(&host, &timeline)?,
                (None, _) => None,
            };
            match servers::server::start(
                spec.clone(),
                timeline.clone(),
                refusing.clone(),
                tls,
                options.connection_limits,
            )
            .await
            {
                Ok(handle) => handles.push(handle),
                Err(err) => {
                    for handle in handles {
                        handle.shutdown().await;
                    }
                    let _ = dns.shutdown().await;
                    return Err(err.into());
                }
            }
        }
        Ok(Self {
            dns,
            servers: handles,
            watcher,
            timeline,
            pki,
        })
    }

    pub fn dns(&self) -> &DnsServer {
        &self.dns
    }

    /// The servers' certificates, when a server listens on tls: what a TLS client is to trust.
    pub fn pki(&self) -> Option<&TestPki> {
        self.pki.as_ref()
    }

    pub fn timeline(&self) -> &Timeline {
        &self.timeline
    }

    /// Whether refused attempts will appear on the timeline (raw sockets were allowed).
    pub fn sees_refusals(&self) -> bool {
        self.watcher.is_some()
    }

    /// The case reached a step: it goes on the timeline and every server hears of it.
    pub fn step(&self, name: &str) {
        self.timeline.record(EventKind::Step {
            name: name.to_string(),
        });
        for server in &self.servers {
            server.step(name);
        }
    }

    pub async fn shutdown(self) -> Result<(), WorldError> {
        for server in self.servers {
            server.shutdown().await;
        }
        if let Some(watcher) = self.watcher {
            // Dropping it joins the reader threads, which wake from their 100 ms read timeout:
            // off the runtime's threads, or a case running beside this one stalls that long.
            let _ = tokio::task::spawn_blocking(move || drop(watcher)).await;
        }
        self.dns.shutdown().await?;
        Ok(())
    }
}
