//! Named faults of the reference UA: each switches on one bug seen in real SIP stacks, so that
//! every check of the oracle can be shown to fail.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    IgnorePriority,
    IgnoreWeights,
    WeightZeroFirst,
    SkipNaptr,
    #[serde(rename = "timer-b-fixed-32s")]
    TimerBFixed32s,
    NoRetransmitDoubling,
    #[serde(rename = "no-failover-on-503")]
    NoFailoverOn503,
    WaitTimerBOnRefusal,
    NoDirtyHost,
    DirtyHostForever,
    ResolvePerRetransmission,
    IgnoreDnsTtl,
    ARecordFallback,
    ReuseBranch,
    RetransmitToNextTarget,
    ResolveNumericHost,
    NumericHostDefaultTcp,
    SrvDespitePort,
    NaptrDespiteTransport,
    #[serde(rename = "no-t2-cap")]
    NoT2Cap,
    IgnoreFailoverAfter,
    RefreshRedraws,
    ReregisterAtOnce,
    RetransmitOverTcp,
    #[serde(rename = "ipv4-only")]
    Ipv4Only,
    TargetMajorSkip,
    SipsOverUdp,
    TlsFailureIsFinal,
    NoCertificateCheck,
    NoHostnameCheck,
}

impl Fault {
    pub const ALL: [Self; 30] = [
        Self::IgnorePriority,
        Self::IgnoreWeights,
        Self::WeightZeroFirst,
        Self::SkipNaptr,
        Self::TimerBFixed32s,
        Self::NoRetransmitDoubling,
        Self::NoFailoverOn503,
        Self::WaitTimerBOnRefusal,
        Self::NoDirtyHost,
        Self::DirtyHostForever,
        Self::ResolvePerRetransmission,
        Self::IgnoreDnsTtl,
        Self::ARecordFallback,
        Self::ReuseBranch,
        Self::RetransmitToNextTarget,
        Self::ResolveNumericHost,
        Self::NumericHostDefaultTcp,
        Self::SrvDespitePort,
        Self::NaptrDespiteTransport,
        Self::NoT2Cap,
        Self::IgnoreFailoverAfter,
        Self::RefreshRedraws,
        Self::ReregisterAtOnce,
        Self::RetransmitOverTcp,
        Self::Ipv4Only,
        Self::TargetMajorSkip,
        Self::SipsOverUdp,
        Self::TlsFailureIsFinal,
        Self::NoCertificateCheck,
        Self::NoHostnameCheck,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::IgnorePriority => "ignore-priority",
            Self::IgnoreWeights => "ignore-weights",
            Self::WeightZeroFirst => "weight-zero-first",
            Self::SkipNaptr => "skip-naptr",
            Self::TimerBFixed32s => "timer-b-fixed-32s",
            Self::NoRetransmitDoubling => "no-retransmit-doubling",
            Self::NoFailoverOn503 => "no-failover-on-503",
            Self::WaitTimerBOnRefusal => "wait-timer-b-on-refusal",
            Self::NoDirtyHost => "no-dirty-host",
            Self::DirtyHostForever => "dirty-host-forever",
            Self::ResolvePerRetransmission => "resolve-per-retransmission",
            Self::IgnoreDnsTtl => "ignore-dns-ttl",
            Self::ARecordFallback => "a-record-fallback",
            Self::ReuseBranch => "reuse-branch",
            Self::RetransmitToNextTarget => "retransmit-to-next-target",
            Self::ResolveNumericHost => "resolve-numeric-host",
            Self::NumericHostDefaultTcp => "numeric-host-default-tcp",
            Self::SrvDespitePort => "srv-despite-port",
            Self::NaptrDespiteTransport => "naptr-despite-transport",
            Self::NoT2Cap => "no-t2-cap",
            Self::IgnoreFailoverAfter => "ignore-failover-after",
            Self::RefreshRedraws => "refresh-redraws",
            Self::ReregisterAtOnce => "reregister-at-once",
            Self::RetransmitOverTcp => "retransmit-over-tcp",
            Self::Ipv4Only => "ipv4-only",
            Self::TargetMajorSkip => "target-major-skip",
            Self::SipsOverUdp => "sips-over-udp",
            Self::TlsFailureIsFinal => "tls-failure-is-final",
            Self::NoCertificateCheck => "no-certificate-check",
            Self::NoHostnameCheck => "no-hostname-check",
        }
    }

    /// What the fault does and the real bug it mimics, in one line.
    pub fn description(self) -> &'static str {
        match self {
            Self::IgnorePriority => {
                "draws among all SRV records by weight, ignoring priority groups (stacks that flatten the SRV list)"
            }
            Self::IgnoreWeights => {
                "always tries a priority group's records in the order DNS listed them (no RFC 2782 weighted draw)"
            }
            Self::WeightZeroFirst => {
                "tries a weight-0 record first whenever its group has one (misreading RFC 2782's \"weight 0 records first\")"
            }
            Self::SkipNaptr => {
                "never queries NAPTR and goes straight to SRV, missing the transport the domain prefers"
            }
            Self::TimerBFixed32s => {
                "abandons a target after a fixed 32 s whatever T1 is configured (Timer B hard-coded)"
            }
            Self::NoRetransmitDoubling => {
                "retransmits every T1 instead of doubling the interval (Timer A/E not backed off)"
            }
            Self::NoFailoverOn503 => {
                "takes a 503 as the final answer and gives up instead of trying the next target"
            }
            Self::WaitTimerBOnRefusal => {
                "ignores ICMP port unreachable and TCP RST and waits for Timer B (unconnected UDP sockets)"
            }
            Self::NoDirtyHost => {
                "forgets a failed target at once, so the next request may try the dead host again"
            }
            Self::DirtyHostForever => {
                "never gives a failed target another chance, even after the dirty-host TTL"
            }
            Self::ResolvePerRetransmission => {
                "queries DNS again for every retransmission instead of once per transaction"
            }
            Self::IgnoreDnsTtl => "caches DNS answers forever, ignoring their TTL",
            Self::ARecordFallback => {
                "after every SRV target failed, falls back to the domain's A record on port 5060"
            }
            Self::ReuseBranch => {
                "reuses the first attempt's Via branch for the next target instead of a new transaction"
            }
            Self::RetransmitToNextTarget => {
                "sends retransmissions to the next target rather than the one the request went to"
            }
            Self::ResolveNumericHost => {
                "looks up NAPTR and SRV for a numeric host as if it were a domain name before using the address (RFC 3263 run on every host)"
            }
            Self::NumericHostDefaultTcp => {
                "sends to a numeric host over TCP when the URI names no transport (a stack whose default transport is TCP)"
            }
            Self::SrvDespitePort => {
                "runs NAPTR and SRV lookups although the URI has an explicit port, and goes where SRV says (the port only skips SRV for numeric hosts)"
            }
            Self::NaptrDespiteTransport => {
                "queries NAPTR although the URI has a transport parameter, and follows the NAPTR's transport instead"
            }
            Self::NoT2Cap => {
                "keeps doubling non-INVITE retransmission intervals past T2 (Timer E run like Timer A)"
            }
            Self::IgnoreFailoverAfter => {
                "ignores its configured early failover and waits for Timer B/F (a setting never wired to the transaction layer)"
            }
            Self::RefreshRedraws => {
                "sends a registration refresh wherever a new DNS draw leads instead of to its registrar (every REGISTER treated as a new request)"
            }
            Self::ReregisterAtOnce => {
                "registers again at once after a registration failed at every target (the registration storm after an outage)"
            }
            Self::RetransmitOverTcp => {
                "retransmits over TCP as it would over UDP (Timer A/E run whatever the transport; TCP already delivers)"
            }
            Self::Ipv4Only => {
                "never queries AAAA nor sends over IPv6 although configured dual stack (an IPv6 switch never wired to the resolver)"
            }
            Self::TargetMajorSkip => {
                "moves to the next SRV target once the first address of a target failed, skipping its other addresses (the other family)"
            }
            Self::SipsOverUdp => {
                "sends to TLS targets over UDP, to the same address and port (a stack that drops the sips security requirement)"
            }
            Self::TlsFailureIsFinal => {
                "gives the request up when a TLS handshake fails instead of trying the next target (a certificate it cannot verify ends the call)"
            }
            Self::NoCertificateCheck => {
                "accepts any server certificate over TLS, self-signed or not (verification switched off to make a lab work)"
            }
            Self::NoHostnameCheck => {
                "checks that a server certificate chains to a trusted CA but not that it names the SRV target (RFC 5922's name check skipped)"
            }
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Fault {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| format!("unknown fault `{s}` (`srvlab ua --list-faults` lists them)"))
    }
}

/// The faults switched on (normally none, or one).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Faults(pub BTreeSet<Fault>);

impl Faults {
    pub fn none() -> Self {
        Self::default()
    }

    pub fn one(fault: Fault) -> Self {
        Self(BTreeSet::from([fault]))
    }

    /// What the UA checks of a server certificate under these faults.
    pub fn certificate_check(&self) -> crate::tls::CertificateCheck {
        use crate::tls::CertificateCheck;
        if self.has(Fault::NoCertificateCheck) {
            CertificateCheck::Nothing
        } else if self.has(Fault::NoHostnameCheck) {
            CertificateCheck::ChainOnly
        } else {
            CertificateCheck::Full
        }
    }

    pub fn has(&self, fault: Fault) -> bool {
        self.0.contains(&fault)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        let mut names = BTreeSet::new();
        for fault in Fault::ALL {
            assert_eq!(fault.name().parse::<Fault>().unwrap(), fault);
            assert!(names.insert(fault.name()));
            assert!(!fault.description().is_empty());
            let json = serde_json::to_string(&fault).unwrap();
            assert_eq!(json, format!("\"{}\"", fault.name()));
        }
        assert!("no-such-fault".parse::<Fault>().is_err());
    }
}
