//! What the zone offers: SRV records with the addresses their targets resolve to, and which
//! of them an attempt went to.

use std::net::IpAddr;

use hickory_server::proto::rr::{Name, RecordType};

use super::attempts::Attempt;
use crate::model::zone::{RecordData, ZoneSet};
use crate::timeline::{Event, EventKind, Transport};

/// One SRV record of the zone, resolved as far as the zone allows.
#[derive(Clone, Debug, PartialEq)]
pub struct SrvTarget {
    /// The SRV owner name, e.g. `_sip._udp.snom.rocks.`.
    pub owner: Name,
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    pub target: Name,
    /// From the owner's `_udp`/`_tcp` label; `None` for other labels.
    pub transport: Option<Transport>,
    /// The target's A and AAAA addresses in the zones.
    pub addresses: Vec<IpAddr>,
}

impl SrvTarget {
    /// Whether `attempt` went to this record: one of the target's addresses, the record's
    /// port, and the owner's transport.
    pub fn matches(&self, attempt: &Attempt) -> bool {
        self.addresses.contains(&attempt.address.ip())
            && attempt.address.port() == self.port
            && self.transport.is_none_or(|t| t == attempt.transport)
    }

    /// A lone "." record: "no service" (RFC 2782).
    pub fn is_dot(&self) -> bool {
        self.target.is_root()
    }

    pub fn label(&self) -> String {
        format!(
            "{} (priority {}, weight {}, port {})",
            self.target, self.priority, self.weight, self.port
        )
    }
}

/// The transport an SRV owner name stands for: its first two labels (`_sips._tcp` is TLS).
pub fn owner_transport(owner: &Name) -> Option<Transport> {
    let mut labels = owner.iter().map(|l| l.to_ascii_lowercase());
    match (labels.next().as_deref(), labels.next().as_deref()) {
        (Some(b"_sips"), Some(b"_tcp")) => Some(Transport::Tls),
        (_, Some(b"_udp")) => Some(Transport::Udp),
        (_, Some(b"_tcp")) => Some(Transport::Tcp),
        _ => None,
    }
}

/// The addresses the zones give `name`.
pub fn addresses(zones: &ZoneSet, name: &Name) -> Vec<IpAddr> {
    let v4 = zones
        .records_at(name, RecordType::A)
        .filter_map(|r| match r.data {
            RecordData::A(a) => Some(IpAddr::V4(a)),
            _ => None,
        });
    let v6 = zones
        .records_at(name, RecordType::AAAA)
        .filter_map(|r| match r.data {
            RecordData::Aaaa(a) => Some(IpAddr::V6(a)),
            _ => None,
        });
    v4.chain(v6).collect()
}

/// The SRV records at `owner`, in zone order, each served once.
pub fn srv_records(zones: &ZoneSet, owner: &Name) -> Vec<SrvTarget> {
    let mut out: Vec<SrvTarget> = Vec::new();
    for record in zones.records_at(owner, RecordType::SRV) {
        let RecordData::Srv {
            priority,
            weight,
            port,
            target,
        } = &record.data
        else {
            continue;
        };
        let srv = SrvTarget {
            owner: record.name.clone(),
            priority: *priority,
            weight: *weight,
            port: *port,
            target: target.clone(),
            transport: owner_transport(&record.name),
            addresses: addresses(zones, target),
        };
        if !out.contains(&srv) {
            out.push(srv);
        }
    }
    out
}

/// Every SRV owner name in the zones.
pub fn srv_owners(zones: &ZoneSet) -> Vec<Name> {
    let mut owners: Vec<Name> = Vec::new();
    for zone in &zones.zones {
        for record in &zone.records {
            if record.data.record_type() == RecordType::SRV && !owners.contains(&record.name) {
                owners.push(record.name.clone());
            }
        }
    }
    owners
}

/// The SRV names the device queried before `before_ns`, first query first, each with the
/// sequence number of its first query.
pub fn srv_queried(events: &[Event], before_ns: u64) -> Vec<(Name, u64)> {
    let mut names: Vec<(Name, u64)> = Vec::new();
    for event in events.iter().filter(|e| e.t_ns <= before_ns) {
        let EventKind::DnsQuery(query) = &event.kind else {
            continue;
        };
        if !query.qtype.eq_ignore_ascii_case("SRV") {
            continue;
        }
        let Ok(name) = Name::from_ascii(&query.name) else {
            continue;
        };
        if !names.iter().any(|(n, _)| *n == name) {
            names.push((name, event.seq));
        }
    }
    names
}

/// The SRV record `attempt` went to, among the records of the names the device queried before
/// it (the first name that has one).
pub fn record_of(zones: &ZoneSet, events: &[Event], attempt: &Attempt) -> Option<SrvTarget> {
    srv_queried(events, attempt.first_sent())
        .into_iter()
        .flat_map(|(name, _)| srv_records(zones, &name))
        .find(|srv| srv.matches(attempt))
}
