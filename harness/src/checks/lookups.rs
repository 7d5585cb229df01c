//! What each of the device's requests set out to reach, and the DNS lookups it made on the way.
//!
//! RFC 3263 §4 locates the server from the Request-URI (there is no outbound proxy in srvlab's
//! world), so the Request-URI of a request as a server received it — or as the ICMP quote of a
//! refused datagram shows it — tells the oracle which rules applied: a numeric host (L1), an
//! explicit port (L2), a `transport` parameter (L3), or a bare domain (L4–L7). The oracle reads
//! URIs with its own small parser rather than the reference UA's, so that a parsing bug of the
//! device under test cannot hide itself.
//!
//! A request's lookups are the queries sent after the previous request's last attempt began and
//! up to its own last attempt: a device resolves before it sends.

use std::net::IpAddr;

use hickory_server::proto::rr::Name;

use super::Context;
use super::attempts::Request;
use crate::timeline::{DnsAnswer, DnsQuery, EventKind, Transport};

/// A query name as a fully qualified name.
pub fn name_of(text: &str) -> Option<Name> {
    let text = if text.ends_with('.') {
        text.to_owned()
    } else {
        format!("{text}.")
    };
    Name::from_ascii(text).ok().map(|n| n.to_lowercase())
}

/// The domain a query is about: its name without leading `_service._proto` labels.
pub fn domain_of(name: &Name) -> Name {
    let mut name = name.clone();
    while name.num_labels() > 0 && name.iter().next().is_some_and(|l| l.starts_with(b"_")) {
        name = name.base_name();
    }
    name
}

/// One DNS query of the device: sequence number, time, the query.
pub type Query<'a> = (u64, u64, &'a DnsQuery);

/// The device's DNS queries in time order.
pub fn queries<'a>(ctx: &Context<'a>) -> Vec<Query<'a>> {
    let mut out: Vec<Query<'a>> = ctx
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::DnsQuery(q) => Some((e.seq, e.t_ns, q)),
            _ => None,
        })
        .collect();
    out.sort_by_key(|(seq, t, _)| (*t, *seq));
    out
}

/// How a query was answered, as far as the timeline shows.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply<'a> {
    Answered {
        seq: u64,
        t_ns: u64,
        answer: &'a DnsAnswer,
    },
    /// srvlab's server deliberately left it unanswered (a scripted `timeout`).
    Dropped { seq: u64 },
    /// No answer on the timeline.
    Missing,
}

/// The answer (or the deliberate silence) that followed `query`: the first with its id, name,
/// type and client at or after it.
pub fn reply_to<'a>(ctx: &Context<'a>, query: &Query<'a>) -> Reply<'a> {
    let (_, t, q) = *query;
    for event in ctx.events.iter().filter(|e| e.t_ns >= t) {
        match &event.kind {
            EventKind::DnsAnswer(a)
                if a.id == q.id
                    && a.client == q.client
                    && a.qtype.eq_ignore_ascii_case(&q.qtype)
                    && a.name.eq_ignore_ascii_case(&q.name) =>
            {
                return Reply::Answered {
                    seq: event.seq,
                    t_ns: event.t_ns,
                    answer: a,
                };
            }
            EventKind::DnsDropped(d)
                if d.id == q.id
                    && d.client == q.client
                    && d.qtype.eq_ignore_ascii_case(&q.qtype)
                    && d.name.eq_ignore_ascii_case(&q.name) =>
            {
                return Reply::Dropped { seq: event.seq };
            }
            _ => {}
        }
    }
    Reply::Missing
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Sip,
    Sips,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Host {
    Ip(IpAddr),
    /// Lower-cased and fully qualified.
    Name(Name),
}

/// The parts of a Request-URI that decide server location (RFC 3263 §4.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestUri {
    /// As written in the request line.
    pub text: String,
    pub scheme: Scheme,
    pub host: Host,
    pub port: Option<u16>,
    /// The `transport` parameter, lower-cased.
    pub transport: Option<String>,
}

impl RequestUri {
    /// `sip:100@example.test:5080;transport=tcp` → its scheme, host, port and transport;
    /// `None` for anything that is not a SIP or SIPS URI with a readable host.
    pub fn parse(text: &str) -> Option<Self> {
        let (scheme, rest) = text.split_once(':')?;
        let scheme = if scheme.eq_ignore_ascii_case("sip") {
            Scheme::Sip
        } else if scheme.eq_ignore_ascii_case("sips") {
            Scheme::Sips
        } else {
            return None;
        };
        let rest = rest.split_once('?').map_or(rest, |(before, _)| before);
        // The userinfo has no unescaped '@' (RFC 3261 §25.1) but may hold ';' (user
        // parameters), so the host starts after the first '@'.
        let rest = rest.split_once('@').map_or(rest, |(_, after)| after);
        let (hostport, params) = rest.split_once(';').unwrap_or((rest, ""));
        let (host, port) = if let Some(bracketed) = hostport.strip_prefix('[') {
            let (inside, after) = bracketed.split_once(']')?;
            let port = match after {
                "" => None,
                _ => Some(after.strip_prefix(':')?),
            };
            (Host::Ip(IpAddr::V6(inside.parse().ok()?)), port)
        } else {
            let (host, port) = match hostport.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (hostport, None),
            };
            let bare = host.strip_suffix('.').unwrap_or(host);
            let host = match bare.parse::<IpAddr>() {
                Ok(ip) => Host::Ip(ip),
                Err(_) if bare.is_empty() => return None,
                Err(_) => Host::Name(name_of(bare)?),
            };
            (host, port)
        };
        let port = match port {
            Some(port) => Some(port.parse::<u16>().ok()?),
            None => None,
        };
        let transport = params.split(';').find_map(|param| {
            let (key, value) = param.split_once('=')?;
            key.trim()
                .eq_ignore_ascii_case("transport")
                .then(|| value.trim().to_ascii_lowercase())
        });
        Some(Self {
            text: text.to_owned(),
            scheme,
            host,
            port,
            transport,
        })
    }

    /// RFC 3261 §19.1.2: 5060 for sip, 5061 for sips.
    pub fn default_port(&self) -> u16 {
        match self.scheme {
            Scheme::Sip => 5060,
            Scheme::Sips => 5061,
        }
    }

    /// The host name, when the host is not numeric.
    pub fn domain(&self) -> Option<&Name> {
        match &self.host {
            Host::Name(name) => Some(name),
            Host::Ip(_) => None,
        }
    }

    /// The transport srvlab would see for the `transport` parameter (a sips URI's `tcp` is TLS
    /// over TCP, RFC 3261 §26.2.2); `None` without one, or for one srvlab does not serve (SCTP…).
    pub fn transport_param(&self) -> Option<Transport> {
        match self.transport.as_deref()? {
            "udp" => Some(Transport::Udp),
            "tcp" if self.scheme == Scheme::Sips => Some(Transport::Tls),
            "tcp" => Some(Transport::Tcp),
            "tls" => Some(Transport::Tls),
            _ => None,
        }
    }
}

/// The Request-URI of a SIP request's bytes: the second token of its request line.
pub fn request_line_uri(raw: &[u8]) -> Option<&str> {
    let line = raw.split(|b| *b == b'\r' || *b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split(' ');
    let (_method, uri, version) = (parts.next()?, parts.next()?, parts.next()?);
    version.starts_with("SIP/").then_some(uri)
}

/// A request the device opened, with what it set out to reach and the lookups it made for it.
#[derive(Clone, Debug)]
pub struct Located<'a> {
    pub request: Request,
    pub uri: RequestUri,
    /// The device's queries after the previous request's last attempt began, up to this
    /// request's last attempt.
    pub queries: Vec<Query<'a>>,
}

/// Every opening request (the first of its Call-ID: later ones follow a dialog or repeat a
/// resolved request) whose Request-URI the timeline shows, in the order they began.
pub fn located<'a>(ctx: &Context<'a>) -> Vec<Located<'a>> {
    let requests = ctx.requests();
    let all_queries = queries(ctx);
    let starts: Vec<u64> = requests
        .iter()
        .flat_map(|r| r.attempts.iter().map(|a| a.first_sent()))
        .collect();
    let mut out = Vec::new();
    for request in requests.into_iter().filter(|r| r.opening) {
        let Some(first) = request.attempts.first() else {
            continue;
        };
        // A refusal over TCP or a failed TLS handshake quotes no request: read the URI from
        // the request's next attempts.
        let Some(uri) = request
            .attempts
            .iter()
            .flat_map(|a| &a.sends)
            .find_map(|send| uri_of_event(ctx, send.seq))
            .and_then(|text| RequestUri::parse(&text))
        else {
            continue;
        };
        let begins = first.first_sent();
        let ends = request.attempts.last().map_or(begins, |a| a.first_sent());
        let after = starts.iter().copied().filter(|s| *s < begins).max();
        let queries = all_queries
            .iter()
            .filter(|(_, t, _)| after.is_none_or(|a| *t > a) && *t <= ends)
            .copied()
            .collect();
        out.push(Located {
            request,
            uri,
            queries,
        });
    }
    out
}

/// The Request-URI of the request that event `seq` carried (received or refused).
fn uri_of_event(ctx: &Context, seq: u64) -> Option<String> {
    let event = ctx.events.iter().find(|e| e.seq == seq)?;
    let raw = match &event.kind {
        EventKind::SipReceived(message) => &message.raw,
        EventKind::Refused(refused) => &refused.raw,
        _ => return None,
    };
    request_line_uri(raw).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_uris_are_read_as_server_location_needs_them() {
        let uri = RequestUri::parse("sip:100@127.0.30.10").unwrap();
        assert_eq!(uri.host, Host::Ip("127.0.30.10".parse().unwrap()));
        assert_eq!((uri.port, uri.default_port()), (None, 5060));

        let uri = RequestUri::parse("SIPS:+49;phone-context=x@Example.Test.:5081;lr;Transport=TLS")
            .unwrap();
        assert_eq!(uri.scheme, Scheme::Sips);
        assert_eq!(uri.domain(), Some(&name_of("example.test").unwrap()));
        assert_eq!(uri.port, Some(5081));
        assert_eq!(uri.transport_param(), Some(Transport::Tls));

        let uri = RequestUri::parse("sip:[::1]:5062;transport=sctp?subject=x").unwrap();
        assert_eq!(uri.host, Host::Ip("::1".parse().unwrap()));
        assert_eq!(
            (uri.port, uri.transport.as_deref()),
            (Some(5062), Some("sctp"))
        );
        assert_eq!(uri.transport_param(), None);

        let uri = RequestUri::parse("sip:example.test").unwrap();
        assert_eq!((uri.port, uri.transport), (None, None));

        for bad in [
            "tel:+4930",
            "sip:",
            "sip:100@host:99999",
            "sip:[::1",
            "nonsense",
        ] {
            assert_eq!(RequestUri::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_request_line_gives_the_uri() {
        assert_eq!(
            request_line_uri(b"INVITE sip:100@a.test:5080 SIP/2.0\r\nVia: x\r\n"),
            Some("sip:100@a.test:5080")
        );
        assert_eq!(request_line_uri(b"SIP/2.0 200 OK\r\n"), None);
        assert_eq!(request_line_uri(b""), None);
    }
}
