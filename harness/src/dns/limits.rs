//! What the DNS server allows a client: how large a UDP answer may be, how long a TCP
//! connection may idle, how many TCP connections may be open at once.

use std::time::Duration;

/// The server's limits; the defaults are what a lab would choose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DnsLimits {
    /// The largest UDP answer in bytes, whatever EDNS buffer a client advertises (a client
    /// without EDNS gets at most 512). Below 512 counts as 512 (RFC 6891 §6.2.5).
    pub udp_max: u16,
    /// A TCP connection on which no whole query arrives for this long is closed.
    pub tcp_idle: Duration,
    /// TCP connections open at once, over all the server's addresses; one more is reset at
    /// once. Each holds a file descriptor and a task: without a cap, idle connections can
    /// use up the process's descriptors and block every new one (issue 13).
    pub tcp_connections: usize,
}

impl DnsLimits {
    /// DNS Flag Day 2020's EDNS buffer size: one unfragmented packet on any usual path, and a
    /// bound on what a forged query can draw at a victim.
    pub const UDP_MAX: u16 = 1232;
    /// RFC 1035 §4.2.1: the size every DNS client takes over UDP.
    pub const UDP_MIN: u16 = 512;
    /// RFC 7766 §6.2.3 asks for timeouts of seconds, not minutes; a phone asks its few
    /// questions at once.
    pub const TCP_IDLE: Duration = Duration::from_secs(10);
    /// A lab has a handful of devices, each with a connection or two at a time.
    pub const TCP_CONNECTIONS: usize = 64;

    /// The largest UDP answer to a client that advertised `client` bytes (`None`: no EDNS).
    pub fn udp_answer_max(&self, client: Option<u16>) -> u16 {
        let server = self.udp_max.max(Self::UDP_MIN);
        client
            .unwrap_or(Self::UDP_MIN)
            .max(Self::UDP_MIN)
            .min(server)
    }
}

impl Default for DnsLimits {
    fn default() -> Self {
        Self {
            udp_max: Self::UDP_MAX,
            tcp_idle: Self::TCP_IDLE,
            tcp_connections: Self::TCP_CONNECTIONS,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_udp_answer_is_the_smaller_of_the_clients_and_the_servers_size() {
        let limits = DnsLimits::default();
        assert_eq!(limits.udp_answer_max(None), 512);
        assert_eq!(limits.udp_answer_max(Some(65_535)), 1232);
        assert_eq!(limits.udp_answer_max(Some(1000)), 1000);
        // RFC 6891 §6.2.5: less than 512 counts as 512, on either side.
        assert_eq!(limits.udp_answer_max(Some(100)), 512);
        let tiny = DnsLimits {
            udp_max: 100,
            ..limits
        };
        assert_eq!(tiny.udp_answer_max(Some(4096)), 512);
        let large = DnsLimits {
            udp_max: 4096,
            ..limits
        };
        assert_eq!(large.udp_answer_max(Some(65_535)), 4096);
        assert_eq!(large.udp_answer_max(None), 512);
    }
}
