//! NAPTR selection for SIP (RFC 3263 §4.1, RFC 3403 §4.1): which records the UA may follow,
//! in which order.

use hickory_server::proto::rr::{Name, RData, Record};

use crate::timeline::Transport;

/// A NAPTR record the UA can follow: its SRV name and the transport its service stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct NaptrChoice {
    pub order: u16,
    pub preference: u16,
    pub service: String,
    pub transport: Transport,
    pub replacement: Name,
}

/// L5: the records whose service the UA supports, with flag "s" and a replacement, ordered by
/// ORDER then PREFERENCE (ties keep DNS order); plus one note per record left out, for the
/// trace.
pub(super) fn choose(
    records: &[Record],
    transports: &[Transport],
) -> (Vec<NaptrChoice>, Vec<String>) {
    let mut choices = Vec::new();
    let mut notes = Vec::new();
    for record in records {
        let RData::NAPTR(naptr) = &record.data else {
            continue;
        };
        let service = String::from_utf8_lossy(&naptr.services).into_owned();
        let flags = String::from_utf8_lossy(&naptr.flags).into_owned();
        let described = format!(
            "NAPTR {} {} \"{flags}\" \"{service}\" {}",
            naptr.order, naptr.preference, naptr.replacement
        );
        // RFC 3403: "s" is terminal and leads to an SRV lookup of REPLACEMENT; "a", "u", "p"
        // and non-terminal records are not how SIP is published (RFC 3263 §4.1).
        if !flags.eq_ignore_ascii_case("s") {
            notes.push(format!("L5: {described} skipped: flag is not \"s\""));
            continue;
        }
        let transport = match service_transport(&service) {
            Ok(transport) => transport,
            Err(why) => {
                notes.push(format!("L5: {described} skipped: {why}"));
                continue;
            }
        };
        if !transports.contains(&transport) {
            notes.push(format!(
                "L5: {described} skipped: {transport} is not enabled in the configuration"
            ));
            continue;
        }
        // A root replacement means the record uses REGEXP, which SIP NAPTRs leave empty
        // (RFC 3263 §4.1); rewriting is not implemented.
        if naptr.replacement.is_root() {
            notes.push(format!("L5: {described} skipped: no replacement"));
            continue;
        }
        choices.push(NaptrChoice {
            order: naptr.order,
            preference: naptr.preference,
            service,
            transport,
            replacement: naptr.replacement.clone(),
        });
    }
    // Stable: equal ORDER and PREFERENCE keep the order DNS gave them.
    choices.sort_by_key(|c| (c.order, c.preference));
    (choices, notes)
}

/// RFC 3263 §4.1 services; only those of the transports this UA has.
fn service_transport(service: &str) -> Result<Transport, String> {
    if service.eq_ignore_ascii_case("SIP+D2U") {
        Ok(Transport::Udp)
    } else if service.eq_ignore_ascii_case("SIP+D2T") {
        Ok(Transport::Tcp)
    } else if service.eq_ignore_ascii_case("SIPS+D2T") {
        Ok(Transport::Tls)
    } else if service.eq_ignore_ascii_case("SIP+D2S") || service.eq_ignore_ascii_case("SIPS+D2S") {
        Err("SCTP is not supported".to_owned())
    } else {
        Err("not a SIP service".to_owned())
    }
}
