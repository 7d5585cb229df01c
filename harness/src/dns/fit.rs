//! An answer made to fit the size the client can take, as an authoritative server does.
//!
//! We follow BIND 9 for EDNS queries, not hickory. hickory's encoder writes record after record
//! until the buffer is full: it splits RRsets, sets TC when only additional data was left out
//! (RFC 2181 §9 says not to) and drops the OPT record when it no longer fits (RFC 6891 §7 wants
//! it in every answer to an EDNS query, truncated ones too). BIND renders whole RRsets only;
//! additional RRsets that do not fit are left out without TC; when the answer or authority
//! section does not fit, it sets TC and sends the whole RRsets that fit before it — for one
//! large RRset, an empty answer that sends the client to TCP (RFC 1035 §4.2.1, RFC 7766 §5).

use hickory_server::proto::op::Message;
use hickory_server::proto::rr::Record;

/// Makes `message` fit `limit` bytes as `encode` writes it, and returns the bytes. `encode`
/// gives `None` for a message it cannot write at all; so does this.
pub(crate) fn fit(
    message: &mut Message,
    limit: usize,
    encode: impl Fn(&Message) -> Option<Vec<u8>>,
) -> Option<Vec<u8>> {
    let whole = encode(message)?;
    if whole.len() <= limit {
        return Some(whole);
    }
    let additionals = std::mem::take(&mut message.additionals);
    let bare = encode(message)?;
    if bare.len() <= limit {
        // RFC 2181 §9: additional data is a courtesy; what does not fit stays out, without TC.
        return Some(
            refill(
                message,
                Section::Additional,
                additionals,
                limit,
                bare,
                &encode,
            )
            .0,
        );
    }
    message.metadata.truncation = true;
    let answers = std::mem::take(&mut message.answers);
    let authorities = std::mem::take(&mut message.authorities);
    let header_only = encode(message)?;
    let (bytes, all) = refill(
        message,
        Section::Answer,
        answers,
        limit,
        header_only,
        &encode,
    );
    if !all {
        return Some(bytes);
    }
    Some(
        refill(
            message,
            Section::Authority,
            authorities,
            limit,
            bytes,
            &encode,
        )
        .0,
    )
}

#[derive(Clone, Copy)]
enum Section {
    Answer,
    Authority,
    Additional,
}

impl Section {
    fn of(self, message: &mut Message) -> &mut Vec<Record> {
        match self {
            Self::Answer => &mut message.answers,
            Self::Authority => &mut message.authorities,
            Self::Additional => &mut message.additionals,
        }
    }
}

/// Puts `records` back into `section` one whole RRset at a time, up to the first that does not
/// fit. Returns the bytes of the message as it stands and whether every RRset went back.
fn refill(
    message: &mut Message,
    section: Section,
    records: Vec<Record>,
    limit: usize,
    mut bytes: Vec<u8>,
    encode: &impl Fn(&Message) -> Option<Vec<u8>>,
) -> (Vec<u8>, bool) {
    for set in rrsets(&records) {
        let kept = section.of(message).len();
        section.of(message).extend_from_slice(set);
        match encode(message) {
            Some(grown) if grown.len() <= limit => bytes = grown,
            _ => {
                section.of(message).truncate(kept);
                return (bytes, false);
            }
        }
    }
    (bytes, true)
}

/// Runs of records with one name, type and class: the RRsets as a section lists them.
fn rrsets(records: &[Record]) -> impl Iterator<Item = &[Record]> {
    records.chunk_by(|a, b| {
        // Name comparison ignores case, as RRsets do (RFC 4343).
        a.record_type() == b.record_type() && a.dns_class == b.dns_class && a.name == b.name
    })
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use hickory_server::proto::op::{Edns, Message, Query};
    use hickory_server::proto::rr::rdata::{A, SRV};
    use hickory_server::proto::rr::{Name, RData, Record, RecordType};

    use super::*;

    fn name(text: &str) -> Name {
        Name::from_ascii(text).unwrap()
    }

    /// An answer to `_sip._udp.t.` SRV with `targets` targets and their A records.
    fn wide(targets: usize, edns: bool) -> Message {
        let mut message = Message::query();
        message.metadata.message_type = hickory_server::proto::op::MessageType::Response;
        message.add_query(Query::query(name("_sip._udp.t."), RecordType::SRV));
        for i in 0..targets {
            let target = name(&format!("sip{i}.t."));
            message.answers.push(Record::from_rdata(
                name("_sip._udp.t."),
                60,
                RData::SRV(SRV::new(1, 1, 5060, target.clone())),
            ));
            message.additionals.push(Record::from_rdata(
                target,
                60,
                RData::A(A(Ipv4Addr::new(127, 0, 91, i as u8))),
            ));
        }
        message.edns = edns.then(Edns::new);
        message
    }

    fn encode(message: &Message) -> Option<Vec<u8>> {
        message.to_vec().ok()
    }

    #[test]
    fn an_answer_that_fits_is_left_alone() {
        let mut message = wide(3, true);
        let before = message.clone();
        let bytes = fit(&mut message, 512, encode).unwrap();
        assert_eq!(message, before);
        assert_eq!(bytes, before.to_vec().unwrap());
    }

    #[test]
    fn additional_rrsets_that_do_not_fit_are_left_out_without_tc() {
        // 15 SRV records fit in 512 bytes, their 15 A records not all.
        let mut message = wide(15, true);
        assert!(message.to_vec().unwrap().len() > 512);
        let bytes = fit(&mut message, 512, encode).unwrap();
        assert!(bytes.len() <= 512, "{}", bytes.len());
        assert!(!message.metadata.truncation);
        assert_eq!(message.answers.len(), 15);
        assert!(message.additionals.len() < 15);
        let sent = Message::from_vec(&bytes).unwrap();
        assert!(sent.edns.is_some(), "the OPT record stays (RFC 6891 §7)");
        assert_eq!(sent.additionals, message.additionals);
        assert_eq!(
            sent.additionals[..],
            wide(15, true).additionals[..sent.additionals.len()]
        );
    }

    #[test]
    fn an_answer_rrset_that_does_not_fit_is_left_out_whole_with_tc() {
        for edns in [true, false] {
            let mut message = wide(100, edns);
            let bytes = fit(&mut message, 1232, encode).unwrap();
            assert!(bytes.len() <= 1232);
            let sent = Message::from_vec(&bytes).unwrap();
            assert!(sent.metadata.truncation);
            assert!(sent.answers.is_empty() && sent.additionals.is_empty());
            assert_eq!(sent.queries.len(), 1, "the question stays");
            assert_eq!(sent.edns.is_some(), edns);
        }
    }

    #[test]
    fn whole_rrsets_before_the_one_that_does_not_fit_stay() {
        // A CNAME chain's answer: a small RRset, then a large one.
        let mut message = wide(100, true);
        let cname = Record::from_rdata(
            name("_sip._udp.t."),
            60,
            RData::CNAME(hickory_server::proto::rr::rdata::CNAME(name("x.t."))),
        );
        message.answers.insert(0, cname.clone());
        message.authorities.push(cname);
        fit(&mut message, 600, encode).unwrap();
        assert!(message.metadata.truncation);
        assert_eq!(message.answers.len(), 1);
        assert!(message.authorities.is_empty());
    }

    #[test]
    fn rrsets_are_runs_of_one_name_and_type() {
        let message = wide(3, false);
        let mut records = message.answers.clone();
        records.extend(message.additionals.clone());
        let sizes: Vec<usize> = rrsets(&records).map(<[Record]>::len).collect();
        assert_eq!(sizes, vec![3, 1, 1, 1]);
    }
}
