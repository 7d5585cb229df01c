//! A place to send a request: address, port and transport, and where it came from.

use std::fmt;
use std::net::SocketAddr;

use hickory_server::proto::rr::Name;

use crate::timeline::Transport;

/// The SRV record a target came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SrvOrigin {
    /// The SRV owner name, e.g. `_sip._udp.example.test.`.
    pub name: Name,
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    pub target: Name,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub addr: SocketAddr,
    pub transport: Transport,
    /// The host name the address was looked up for (None for a numeric host).
    pub host: Option<Name>,
    pub srv: Option<SrvOrigin>,
}

/// What a dirty-host mark is about: transport, address and port (CONFORMANCE D3's finest
/// scope).
pub type TargetKey = (Transport, SocketAddr);

impl Target {
    pub fn key(&self) -> TargetKey {
        (self.transport, self.addr)
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.transport, self.addr)?;
        if let Some(host) = &self.host {
            write!(f, " ({host})")?;
        }
        Ok(())
    }
}
