//! How the reference UA is configured — like a phone. Field names follow a device profile
//! (Snom's `sip_retry_t1`, `dirty_host_ttl`, `sip_failover_response`) so one profile file can
//! describe either.

use std::time::Duration;

use super::fault::Faults;
use crate::model::profile::{
    AddressFamily, DEFAULT_ADDRESS_FAMILIES, DEFAULT_FAILBACK_TIMEOUT, FailbackMode,
};
use crate::timeline::Transport;

#[derive(Clone, Debug, PartialEq)]
pub struct UaConfig {
    /// RFC 3261 T1 (Snom `sip_retry_t1`), 500 ms by default.
    pub t1: Duration,
    /// RFC 3261 T2: the cap of non-INVITE retransmission intervals, 4 s by default.
    pub t2: Duration,
    /// RFC 3261 T4: how long a completed non-INVITE transaction lingers over UDP, 5 s.
    pub t4: Duration,
    /// How long a failed target is avoided (Snom `dirty_host_ttl`); `None` = not at all.
    pub dirty_host_ttl: Option<Duration>,
    /// Transports the UA supports, in its order of preference when there is no NAPTR.
    pub transports: Vec<Transport>,
    /// Response codes that fail over like 503 (Snom `sip_failover_response`).
    pub failover_codes: Vec<u16>,
    /// Whether DNS answers are cached for their TTL (`false`: every transaction resolves).
    pub dns_cache: bool,
    /// Registration lifetime asked for.
    pub register_expires: u32,
    /// Whether INVITEs and OPTIONS go to the server the registration succeeded with (else they
    /// resolve), when no failback mode says otherwise.
    pub follow_registrar: bool,
    /// A vendor's failover earlier than Timer B/F (T4, Yealink's retry counts): an attempt
    /// without any response is abandoned after this long. `None`: Timer B/F.
    pub failover_after: Option<Duration>,
    /// How long after a registration failed at every target the UA waits before it sends the
    /// next REGISTER (Snom `retry_after_failed_register`, 300 s), spread ±10 % at random.
    pub retry_after_failed_register: Duration,
    /// How requests stay with the registrar (Yealink/Polycom `failback_mode`); `None`:
    /// refreshes go to the registrar (D4), other requests as `follow_registrar` says.
    pub failback_mode: Option<FailbackMode>,
    /// With [`FailbackMode::Duration`]: how long requests stay with the registrar after it
    /// took over; `None`: until it fails (Yealink's 0).
    pub failback_timeout: Option<Duration>,
    /// The IP versions the UA looks up (A, AAAA) and sends over, in its order of preference
    /// among the addresses of one target (RFC 7984); IPv4 alone by default.
    pub address_families: Vec<AddressFamily>,
    pub faults: Faults,
    /// Seed of the generator behind every random choice (weighted draws, tags, branches).
    pub seed: u64,
}

impl Default for UaConfig {
    fn default() -> Self {
        Self {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
            dirty_host_ttl: None,
            transports: vec![Transport::Udp, Transport::Tcp],
            failover_codes: Vec::new(),
            dns_cache: true,
            register_expires: 3600,
            follow_registrar: false,
            failover_after: None,
            retry_after_failed_register: Duration::from_secs(300),
            failback_mode: None,
            failback_timeout: Some(DEFAULT_FAILBACK_TIMEOUT),
            address_families: DEFAULT_ADDRESS_FAMILIES.to_vec(),
            faults: Faults::none(),
            seed: 1,
        }
    }
}

impl UaConfig {
    /// Timer B / Timer F: 64·T1 (the `timer-b-fixed-32s` fault makes it 32 s flat).
    pub fn timer_b(&self) -> Duration {
        if self.faults.has(super::fault::Fault::TimerBFixed32s) {
            Duration::from_secs(32)
        } else {
            self.t1.saturating_mul(64)
        }
    }
}
