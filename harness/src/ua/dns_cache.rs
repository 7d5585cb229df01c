//! The reference UA's DNS cache: answers keyed by (name, type), kept for their TTL (C2), with
//! negative caching (RFC 2308, C3).
//!
//! Failures (timeout, SERVFAIL, REFUSED…) are not cached: RFC 2308 §7 allows it for at most
//! five minutes, but a harness that scripts "time out once" wants the next transaction to ask
//! again. A failed query is reported to the resolution that sent it instead
//! ([`super::locate::Resolution::on_query_failed`]); a failure passed to [`DnsCache::insert`]
//! is ignored.
//!
//! Besides the shared view ([`DnsCache::lookup`]), the cache tells a resolution what arrived
//! while it was running ([`DnsCache::received_since`]): RFC 1035 §3.2.1 lets a TTL-0 answer be
//! used by the transaction in progress, and a UA with its cache switched off still uses the
//! answer to its own question.

use std::collections::HashMap;
use std::time::Duration;

use hickory_server::proto::op::{Message, ResponseCode};
use hickory_server::proto::rr::{Name, RData, Record, RecordType};

use crate::model::zone::MAX_TTL;

/// CNAME hops followed inside one answer; more is a loop or a broken zone.
const MAX_CNAME_CHAIN: usize = 8;

/// What the cache holds for a (name, type).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cached {
    /// The RRset, owned by the end of the CNAME chain if there was one. Never empty.
    Records(Vec<Record>),
    /// NXDOMAIN or NODATA (RFC 2308).
    Negative,
}

impl Cached {
    pub fn records(&self) -> &[Record] {
        match self {
            Self::Records(records) => records,
            Self::Negative => &[],
        }
    }
}

/// An entry as a resolution sees it: the answer and whether its TTL still runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    pub cached: Cached,
    pub fresh: bool,
}

#[derive(Clone, Debug)]
struct Entry {
    cached: Cached,
    stored_at: Duration,
    expires: Duration,
    /// RFC 2181 §5.4.1: data from an additional section is less credible than an answer and
    /// must not replace it.
    from_answer: bool,
}

#[derive(Clone, Debug)]
pub struct DnsCache {
    enabled: bool,
    ignore_ttl: bool,
    entries: HashMap<(Name, RecordType), Entry>,
}

impl DnsCache {
    /// `enabled == false`: [`lookup`](Self::lookup) never answers, so every transaction
    /// resolves afresh. `ignore_ttl`: entries never expire (fault `ignore-dns-ttl`).
    pub fn new(enabled: bool, ignore_ttl: bool) -> Self {
        Self {
            enabled,
            ignore_ttl,
            entries: HashMap::new(),
        }
    }

    /// Stores the answer to the query (`name`, `rtype`) received at `now`: the RRset of that
    /// type (following a CNAME chain in the answer) until the smallest TTL of the chain and
    /// the set; A/AAAA records of the additional section as entries of their own (RFC 2782
    /// lets a client use them); NXDOMAIN and NODATA negatively for min(SOA TTL, SOA MINIMUM)
    /// of the authority section (RFC 2308 §5), 0 without an SOA. Other response codes are
    /// failures and are not stored.
    pub fn insert(&mut self, name: &Name, rtype: RecordType, response: &Message, now: Duration) {
        match response.metadata.response_code {
            ResponseCode::NoError => {}
            ResponseCode::NXDomain => {
                let ttl = negative_ttl(response);
                self.store(name, rtype, Cached::Negative, now, ttl, true);
                return;
            }
            _ => return,
        }
        match follow_chain(name, rtype, &response.answers) {
            Some((records, ttl)) => {
                // Also under the canonical name, for a later query that starts there.
                if let Some(owner) = records.first().map(|r| r.name.clone())
                    && !same_name(&owner, name)
                {
                    let set_ttl = min_ttl(&records).unwrap_or(0);
                    self.store(
                        &owner,
                        rtype,
                        Cached::Records(records.clone()),
                        now,
                        set_ttl,
                        true,
                    );
                }
                self.store(name, rtype, Cached::Records(records), now, ttl, true);
            }
            None => {
                let ttl = negative_ttl(response);
                self.store(name, rtype, Cached::Negative, now, ttl, true);
            }
        }
        self.insert_additionals(response, now);
    }

    /// The fresh entry for (`name`, `rtype`) at `now`, if caching is enabled. An entry expires
    /// at `stored + TTL` exactly: at that instant it is no longer used (C2).
    pub fn lookup(&self, name: &Name, rtype: RecordType, now: Duration) -> Option<Cached> {
        if !self.enabled {
            return None;
        }
        let entry = self.entries.get(&key(name, rtype))?;
        self.is_fresh(entry, now).then(|| entry.cached.clone())
    }

    /// The entry for (`name`, `rtype`) if it was stored at or after `since`, enabled or not,
    /// with whether it is still fresh at `now`: what a resolution that started (or sent this
    /// query) at `since` received itself.
    pub fn received_since(
        &self,
        name: &Name,
        rtype: RecordType,
        since: Duration,
        now: Duration,
    ) -> Option<Received> {
        let entry = self.entries.get(&key(name, rtype))?;
        (entry.stored_at >= since).then(|| Received {
            cached: entry.cached.clone(),
            fresh: self.is_fresh(entry, now),
        })
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }

    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    fn is_fresh(&self, entry: &Entry, now: Duration) -> bool {
        self.ignore_ttl || now < entry.expires
    }

    fn store(
        &mut self,
        name: &Name,
        rtype: RecordType,
        cached: Cached,
        now: Duration,
        ttl: u32,
        from_answer: bool,
    ) {
        let key = key(name, rtype);
        if !from_answer
            && let Some(old) = self.entries.get(&key)
            && old.from_answer
            && self.is_fresh(old, now)
        {
            return;
        }
        let entry = Entry {
            cached,
            stored_at: now,
            expires: now + Duration::from_secs(u64::from(ttl)),
            from_answer,
        };
        self.entries.insert(key, entry);
    }

    fn insert_additionals(&mut self, response: &Message, now: Duration) {
        // One RRset per (owner, type), in the order the server listed them.
        let mut sets: Vec<((Name, RecordType), Vec<Record>)> = Vec::new();
        for record in &response.additionals {
            let rtype = record.record_type();
            if !matches!(rtype, RecordType::A | RecordType::AAAA) {
                continue;
            }
            let k = key(&record.name, rtype);
            match sets.iter_mut().find(|(set_key, _)| *set_key == k) {
                Some((_, records)) => records.push(record.clone()),
                None => sets.push((k, vec![record.clone()])),
            }
        }
        for ((owner, rtype), records) in sets {
            let ttl = min_ttl(&records).unwrap_or(0);
            self.store(&owner, rtype, Cached::Records(records), now, ttl, false);
        }
    }
}

fn key(name: &Name, rtype: RecordType) -> (Name, RecordType) {
    let mut name = name.to_lowercase();
    name.set_fqdn(true);
    (name, rtype)
}

fn same_name(a: &Name, b: &Name) -> bool {
    key(a, RecordType::A) == key(b, RecordType::A)
}

/// RFC 2181 §8: a TTL above 2^31 − 1 is taken as 0.
fn effective_ttl(ttl: u32) -> u32 {
    if ttl > MAX_TTL { 0 } else { ttl }
}

fn min_ttl(records: &[Record]) -> Option<u32> {
    records.iter().map(|r| effective_ttl(r.ttl)).min()
}

/// The RRset of `rtype` the answer gives for `name`, following CNAMEs, with the smallest TTL
/// of the set and of the CNAMEs that led to it (an alias is only as good as its CNAME).
fn follow_chain(name: &Name, rtype: RecordType, answers: &[Record]) -> Option<(Vec<Record>, u32)> {
    let mut owner = name.clone();
    let mut chain_ttl = MAX_TTL;
    for _ in 0..=MAX_CNAME_CHAIN {
        let records: Vec<Record> = answers
            .iter()
            .filter(|r| r.record_type() == rtype && same_name(&r.name, &owner))
            .cloned()
            .collect();
        if let Some(set_ttl) = min_ttl(&records) {
            return Some((records, set_ttl.min(chain_ttl)));
        }
        let cname = answers.iter().find_map(|r| match &r.data {
            RData::CNAME(target) if same_name(&r.name, &owner) => {
                Some((target.0.clone(), effective_ttl(r.ttl)))
            }
            _ => None,
        })?;
        owner = cname.0;
        chain_ttl = chain_ttl.min(cname.1);
    }
    None
}

/// RFC 2308 §5: a negative answer lives min(SOA TTL, SOA MINIMUM); without an SOA it is not
/// cached at all (0).
fn negative_ttl(response: &Message) -> u32 {
    response
        .authorities
        .iter()
        .find_map(|r| match &r.data {
            RData::SOA(soa) => Some(effective_ttl(r.ttl).min(effective_ttl(soa.minimum))),
            _ => None,
        })
        .unwrap_or(0)
}

/// Builders of DNS answers for tests of the cache and of server location.
#[cfg(test)]
pub(crate) mod answers {
    use std::net::{IpAddr, Ipv4Addr};

    use hickory_server::proto::op::{Message, OpCode, ResponseCode};
    use hickory_server::proto::rr::rdata::{A, AAAA, CNAME, NAPTR, SOA, SRV};
    use hickory_server::proto::rr::{Name, RData, Record};

    pub fn name(text: &str) -> Name {
        let mut name = Name::from_ascii(text).expect("test names are valid");
        name.set_fqdn(true);
        name
    }

    pub fn response() -> Message {
        Message::response(1, OpCode::Query)
    }

    pub fn srv(
        owner: &str,
        ttl: u32,
        priority: u16,
        weight: u16,
        port: u16,
        target: &str,
    ) -> Record {
        Record::from_rdata(
            name(owner),
            ttl,
            RData::SRV(SRV::new(priority, weight, port, name(target))),
        )
    }

    pub fn a(owner: &str, ttl: u32, ip: &str) -> Record {
        let ip: IpAddr = ip.parse().expect("test addresses are valid");
        let data = match ip {
            IpAddr::V4(ip) => RData::A(A(ip)),
            IpAddr::V6(ip) => RData::AAAA(AAAA(ip)),
        };
        Record::from_rdata(name(owner), ttl, data)
    }

    pub fn cname(owner: &str, ttl: u32, target: &str) -> Record {
        Record::from_rdata(name(owner), ttl, RData::CNAME(CNAME(name(target))))
    }

    pub fn naptr(
        owner: &str,
        order: u16,
        preference: u16,
        flags: &str,
        service: &str,
        replacement: &str,
    ) -> Record {
        let replacement = if replacement == "." {
            Name::root()
        } else {
            name(replacement)
        };
        Record::from_rdata(
            name(owner),
            300,
            RData::NAPTR(NAPTR::new(
                order,
                preference,
                flags.as_bytes().into(),
                service.as_bytes().into(),
                Box::new([]),
                replacement,
            )),
        )
    }

    pub fn soa(zone: &str, ttl: u32, minimum: u32) -> Record {
        Record::from_rdata(
            name(zone),
            ttl,
            RData::SOA(SOA::new(
                name(&format!("ns.{zone}")),
                name(&format!("hostmaster.{zone}")),
                1,
                3600,
                600,
                86400,
                minimum,
            )),
        )
    }

    /// A NOERROR answer with these records.
    pub fn answer(records: Vec<Record>) -> Message {
        let mut message = response();
        message.add_answers(records);
        message
    }

    /// A NOERROR answer with these records and additional records.
    pub fn answer_with_additionals(records: Vec<Record>, additionals: Vec<Record>) -> Message {
        let mut message = answer(records);
        message.add_additionals(additionals);
        message
    }

    /// NXDOMAIN with the zone's SOA in the authority section.
    pub fn nxdomain(zone: &str, soa_ttl: u32, minimum: u32) -> Message {
        let mut message = response();
        message.metadata.response_code = ResponseCode::NXDomain;
        message.add_authority(soa(zone, soa_ttl, minimum));
        message
    }

    /// NOERROR without answers (NODATA), with the zone's SOA.
    pub fn nodata(zone: &str, soa_ttl: u32, minimum: u32) -> Message {
        let mut message = response();
        message.add_authority(soa(zone, soa_ttl, minimum));
        message
    }

    pub fn servfail() -> Message {
        let mut message = response();
        message.metadata.response_code = ResponseCode::ServFail;
        message
    }

    pub fn v4(text: &str) -> Ipv4Addr {
        text.parse().expect("test addresses are valid")
    }
}

#[cfg(test)]
mod tests {
    use hickory_server::proto::rr::rdata::A;

    use super::answers::*;
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn c2_an_entry_expires_exactly_at_stored_plus_ttl() {
        let mut cache = DnsCache::new(true, false);
        let host = name("sip1.example.test.");
        cache.insert(
            &host,
            RecordType::A,
            &answer(vec![a("sip1.example.test.", 60, "127.0.0.1")]),
            secs(10),
        );
        let hit = cache.lookup(&host, RecordType::A, secs(69)).unwrap();
        assert_eq!(hit.records().len(), 1);
        assert_eq!(
            cache.lookup(&host, RecordType::A, Duration::from_millis(69_999)),
            Some(hit)
        );
        assert_eq!(cache.lookup(&host, RecordType::A, secs(70)), None);
        assert_eq!(cache.lookup(&host, RecordType::AAAA, secs(11)), None);
        // Keys ignore case.
        assert!(
            cache
                .lookup(&name("SIP1.Example.TEST."), RecordType::A, secs(11))
                .is_some()
        );
    }

    #[test]
    fn c2_the_smallest_ttl_of_the_rrset_counts() {
        let mut cache = DnsCache::new(true, false);
        let host = name("sip1.example.test.");
        let response = answer(vec![
            a("sip1.example.test.", 300, "127.0.0.1"),
            a("sip1.example.test.", 30, "127.0.0.2"),
        ]);
        cache.insert(&host, RecordType::A, &response, secs(0));
        assert!(cache.lookup(&host, RecordType::A, secs(29)).is_some());
        assert!(cache.lookup(&host, RecordType::A, secs(30)).is_none());
    }

    #[test]
    fn additional_addresses_are_entries_of_their_own() {
        let mut cache = DnsCache::new(true, false);
        let srv_name = name("_sip._udp.example.test.");
        let response = answer_with_additionals(
            vec![srv(
                "_sip._udp.example.test.",
                300,
                1,
                10,
                5060,
                "sip1.example.test.",
            )],
            vec![
                a("sip1.example.test.", 20, "127.0.0.1"),
                a("sip1.example.test.", 40, "127.0.0.2"),
                a("sip1.example.test.", 40, "::1"),
            ],
        );
        cache.insert(&srv_name, RecordType::SRV, &response, secs(0));
        let host = name("sip1.example.test.");
        let v4s = cache.lookup(&host, RecordType::A, secs(19)).unwrap();
        assert_eq!(v4s.records().len(), 2);
        assert!(cache.lookup(&host, RecordType::A, secs(20)).is_none());
        assert!(cache.lookup(&host, RecordType::AAAA, secs(39)).is_some());
        assert!(
            cache
                .lookup(&srv_name, RecordType::SRV, secs(299))
                .is_some()
        );
    }

    #[test]
    fn an_additional_record_does_not_replace_a_fresh_answer() {
        let mut cache = DnsCache::new(true, false);
        let host = name("sip1.example.test.");
        cache.insert(
            &host,
            RecordType::A,
            &answer(vec![a("sip1.example.test.", 100, "127.0.0.1")]),
            secs(0),
        );
        let srv_name = name("_sip._udp.example.test.");
        let response = answer_with_additionals(
            vec![srv(
                "_sip._udp.example.test.",
                300,
                1,
                10,
                5060,
                "sip1.example.test.",
            )],
            vec![a("sip1.example.test.", 100, "127.0.0.9")],
        );
        cache.insert(&srv_name, RecordType::SRV, &response, secs(1));
        let hit = cache.lookup(&host, RecordType::A, secs(2)).unwrap();
        assert_eq!(hit.records()[0].data, RData::A(A(v4("127.0.0.1"))));
    }

    #[test]
    fn c3_nxdomain_is_cached_for_the_soa_minimum() {
        let mut cache = DnsCache::new(true, false);
        let naptr_name = name("example.test.");
        // min(SOA TTL 3600, MINIMUM 30) = 30.
        cache.insert(
            &naptr_name,
            RecordType::NAPTR,
            &nxdomain("example.test.", 3600, 30),
            secs(5),
        );
        assert_eq!(
            cache.lookup(&naptr_name, RecordType::NAPTR, secs(34)),
            Some(Cached::Negative)
        );
        assert_eq!(cache.lookup(&naptr_name, RecordType::NAPTR, secs(35)), None);
        // min(SOA TTL 10, MINIMUM 30) = 10.
        cache.insert(
            &naptr_name,
            RecordType::NAPTR,
            &nodata("example.test.", 10, 30),
            secs(100),
        );
        assert_eq!(
            cache.lookup(&naptr_name, RecordType::NAPTR, secs(109)),
            Some(Cached::Negative)
        );
        assert_eq!(
            cache.lookup(&naptr_name, RecordType::NAPTR, secs(110)),
            None
        );
    }

    #[test]
    fn c3_a_negative_answer_without_soa_is_not_cached() {
        let mut cache = DnsCache::new(true, false);
        let naptr_name = name("example.test.");
        cache.insert(&naptr_name, RecordType::NAPTR, &response(), secs(5));
        assert_eq!(cache.lookup(&naptr_name, RecordType::NAPTR, secs(5)), None);
        // The resolution that asked still sees its answer.
        assert_eq!(
            cache.received_since(&naptr_name, RecordType::NAPTR, secs(5), secs(5)),
            Some(Received {
                cached: Cached::Negative,
                fresh: false
            })
        );
    }

    #[test]
    fn failures_are_not_cached() {
        let mut cache = DnsCache::new(true, false);
        let host = name("sip1.example.test.");
        cache.insert(&host, RecordType::A, &servfail(), secs(0));
        assert_eq!(cache.lookup(&host, RecordType::A, secs(0)), None);
        assert_eq!(
            cache.received_since(&host, RecordType::A, secs(0), secs(0)),
            None
        );
    }

    #[test]
    fn a_cname_chain_in_the_answer_is_followed() {
        let mut cache = DnsCache::new(true, false);
        let alias = name("sip.example.test.");
        let response = answer(vec![
            cname("sip.example.test.", 50, "real.example.test."),
            a("real.example.test.", 300, "127.0.0.7"),
        ]);
        cache.insert(&alias, RecordType::A, &response, secs(0));
        let hit = cache.lookup(&alias, RecordType::A, secs(49)).unwrap();
        assert_eq!(hit.records()[0].data, RData::A(A(v4("127.0.0.7"))));
        // The alias lives as long as its CNAME, the canonical name as long as its set.
        assert!(cache.lookup(&alias, RecordType::A, secs(50)).is_none());
        assert!(
            cache
                .lookup(&name("real.example.test."), RecordType::A, secs(299))
                .is_some()
        );
        // A CNAME loop is NODATA, not a hang.
        let looped = answer(vec![
            cname("x.example.test.", 50, "y.example.test."),
            cname("y.example.test.", 50, "x.example.test."),
        ]);
        cache.insert(&name("x.example.test."), RecordType::A, &looped, secs(0));
        assert_eq!(
            cache.received_since(&name("x.example.test."), RecordType::A, secs(0), secs(0)),
            Some(Received {
                cached: Cached::Negative,
                fresh: false
            })
        );
    }

    #[test]
    fn c3_a_disabled_cache_answers_nothing_but_a_resolution_sees_its_answer() {
        let mut cache = DnsCache::new(false, false);
        let host = name("sip1.example.test.");
        cache.insert(
            &host,
            RecordType::A,
            &answer(vec![a("sip1.example.test.", 60, "127.0.0.1")]),
            secs(10),
        );
        assert_eq!(cache.lookup(&host, RecordType::A, secs(10)), None);
        let got = cache
            .received_since(&host, RecordType::A, secs(10), secs(11))
            .unwrap();
        assert!(got.fresh);
        assert_eq!(got.cached.records().len(), 1);
        // Not for a resolution that started after the answer arrived.
        assert_eq!(
            cache.received_since(&host, RecordType::A, secs(11), secs(11)),
            None
        );
    }

    #[test]
    fn fault_ignore_dns_ttl_keeps_entries_forever() {
        let response = answer(vec![a("sip1.example.test.", 60, "127.0.0.1")]);
        let host = name("sip1.example.test.");
        let mut clean = DnsCache::new(true, false);
        let mut faulty = DnsCache::new(true, true);
        clean.insert(&host, RecordType::A, &response, secs(0));
        faulty.insert(&host, RecordType::A, &response, secs(0));
        assert!(clean.lookup(&host, RecordType::A, secs(60)).is_none());
        assert!(faulty.lookup(&host, RecordType::A, secs(86_400)).is_some());
        faulty.clear();
        assert!(faulty.lookup(&host, RecordType::A, secs(1)).is_none());
    }

    #[test]
    fn a_ttl_above_2_31_counts_as_zero() {
        let mut cache = DnsCache::new(true, false);
        let host = name("sip1.example.test.");
        cache.insert(
            &host,
            RecordType::A,
            &answer(vec![a("sip1.example.test.", u32::MAX, "127.0.0.1")]),
            secs(0),
        );
        assert!(cache.lookup(&host, RecordType::A, secs(0)).is_none());
    }
}
