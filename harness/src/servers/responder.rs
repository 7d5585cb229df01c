//! What a scripted server answers, free of I/O: given a behaviour and a request, the responses
//! to send now or later. Server transactions are kept just far enough to answer a
//! retransmitted request with the last response again (RFC 3261 §17.2), as a real server does.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

use crate::model::case::Behaviour;
use crate::sip::{Message, reason_phrase, response_to_with_tag};
use crate::timeline::Transport;

/// What to send for one request.
#[derive(Clone, Debug, PartialEq)]
pub enum Plan {
    /// Nothing (an ACK, a stalled request, a retransmission of an unanswered one).
    Nothing,
    /// These responses, in order, now.
    Send(Vec<Message>),
    /// These responses after a delay.
    Later(Duration, Vec<Message>),
}

/// Where the server answers from; it appears in Contact and SDP.
#[derive(Clone, Copy, Debug)]
pub struct Local {
    pub addr: SocketAddr,
    pub transport: Transport,
}

/// A server transaction's key: the top Via branch and the method (CANCEL and ACK share the
/// INVITE's branch but are transactions of their own).
pub type TransactionKey = (String, String);

#[derive(Debug, Default)]
pub struct Responder {
    /// The last response of every transaction answered so far.
    last_response: HashMap<TransactionKey, Message>,
    /// Dialogs (Call-IDs) that were sent a 401 already.
    challenged: HashSet<String>,
    server: String,
}

/// Methods an accepting server answers with 200 OK.
const ALLOW: &str =
    "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, MESSAGE, INFO, NOTIFY, UPDATE, PRACK";

impl Responder {
    pub fn new(server: &str) -> Self {
        Self {
            server: server.to_string(),
            ..Self::default()
        }
    }

    /// The request's transaction key, if it has a method and a branch.
    pub fn key(request: &Message) -> Option<TransactionKey> {
        let method = request.method()?.to_string();
        let branch = request.top_via()?.branch()?.to_string();
        Some((branch, method))
    }

    /// For a retransmitted request: the response to send again (None: a new transaction).
    /// An unanswered retransmission gets `Some(Plan::Nothing)`.
    pub fn retransmission(
        &self,
        request: &Message,
        seen: &HashSet<TransactionKey>,
    ) -> Option<Plan> {
        let key = Self::key(request)?;
        if !seen.contains(&key) {
            return None;
        }
        Some(match self.last_response.get(&key) {
            Some(response) => Plan::Send(vec![response.clone()]),
            None => Plan::Nothing,
        })
    }

    /// Remembers what was sent last in a transaction, for retransmissions.
    pub fn remember(&mut self, request: &Message, response: &Message) {
        if let Some(key) = Self::key(request) {
            self.last_response.insert(key, response.clone());
        }
    }

    /// The responses `behaviour` gives `request`.
    pub fn respond(&mut self, behaviour: &Behaviour, request: &Message, local: Local) -> Plan {
        let Some(method) = request.method().map(str::to_ascii_uppercase) else {
            return Plan::Nothing; // a response sent to a server: nothing to answer
        };
        if method == "ACK" {
            return Plan::Nothing;
        }
        let plan = match behaviour {
            Behaviour::Accept { challenge, expires } => {
                Plan::Send(self.accept(request, &method, *challenge, *expires, local))
            }
            Behaviour::Delay { delay, expires } => Plan::Later(
                *delay,
                self.accept(request, &method, false, *expires, local),
            ),
            Behaviour::Reply {
                status,
                reason,
                retry_after,
                methods,
            } => {
                let applies = methods.as_ref().is_none_or(|m| m.contains(&method));
                if applies {
                    let reason = reason.as_deref().unwrap_or(reason_phrase(*status));
                    let mut response = self.final_response(request, *status, reason);
                    if let Some(seconds) = retry_after {
                        response = with_header(response, "Retry-After", &seconds.to_string());
                    }
                    Plan::Send(vec![response])
                } else {
                    let expires = crate::model::case::DEFAULT_EXPIRES;
                    Plan::Send(self.accept(request, &method, false, expires, local))
                }
            }
            Behaviour::Stall { trying } => {
                if *trying && method == "INVITE" {
                    Plan::Send(vec![response_to_with_tag(request, 100, "Trying", None)])
                } else {
                    Plan::Nothing
                }
            }
            // A refusing server has no socket; nothing reaches it.
            Behaviour::Refuse => Plan::Nothing,
        };
        if let Plan::Send(responses) = &plan
            && let Some(last) = responses.last()
        {
            self.remember(request, last);
        }
        plan
    }

    /// A final response with this dialog's To tag.
    fn final_response(&self, request: &Message, status: u16, reason: &str) -> Message {
        let tag = self.to_tag(request);
        response_to_with_tag(request, status, reason, Some(&tag))
    }

    /// One To tag per dialog, derived from what identifies it, so retransmissions agree.
    fn to_tag(&self, request: &Message) -> String {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        let parts = [
            self.server.as_str(),
            request.call_id().unwrap_or_default(),
            request.from_tag().unwrap_or_default(),
        ];
        for byte in parts.iter().flat_map(|p| p.bytes().chain([0])) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        format!("srv{:012x}", hash & 0xffff_ffff_ffff)
    }

    fn accept(
        &mut self,
        request: &Message,
        method: &str,
        challenge: bool,
        expires: u32,
        local: Local,
    ) -> Vec<Message> {
        let authorized = request.header("Authorization").is_some()
            || request.header("Proxy-Authorization").is_some();
        let call_id = request.call_id().unwrap_or_default().to_string();
        if challenge
            && (method == "REGISTER" || method == "INVITE")
            && !authorized
            && !self.challenged.contains(&call_id)
        {
            self.challenged.insert(call_id.clone());
            let nonce = format!("{:x}", call_id.len() * 7919 + self.challenged.len());
            let response = self.final_response(request, 401, "Unauthorized");
            // A lab server: it asks for credentials but takes whatever comes back.
            return vec![with_header(
                response,
                "WWW-Authenticate",
                &format!("Digest realm=\"srvlab\", nonce=\"{nonce}\", algorithm=MD5, qop=\"auth\""),
            )];
        }
        match method {
            "REGISTER" => vec![self.register_ok(request, expires)],
            "INVITE" => {
                let tag = self.to_tag(request);
                let contact = contact_uri(local);
                let ringing = response_to_with_tag(request, 180, "Ringing", Some(&tag));
                let ok = with_header(
                    response_to_with_tag(request, 200, "OK", Some(&tag)),
                    "Contact",
                    &format!("<{contact}>"),
                );
                let ok = with_body(ok, "application/sdp", sdp(local).into_bytes());
                vec![
                    response_to_with_tag(request, 100, "Trying", None),
                    ringing,
                    ok,
                ]
            }
            "OPTIONS" => {
                let ok = self.final_response(request, 200, "OK");
                let ok = with_header(ok, "Allow", ALLOW);
                vec![with_header(ok, "Accept", "application/sdp")]
            }
            "BYE" | "CANCEL" | "MESSAGE" | "INFO" | "NOTIFY" | "UPDATE" | "PRACK" => {
                vec![self.final_response(request, 200, "OK")]
            }
            "SUBSCRIBE" | "PUBLISH" => vec![self.final_response(request, 489, "Bad Event")],
            _ => vec![with_header(
                self.final_response(request, 405, "Method Not Allowed"),
                "Allow",
                ALLOW,
            )],
        }
    }

    /// 200 to a REGISTER: the contacts bound, for at most the server's lifetime; a request for
    /// 0 seconds unregisters (no Contact in the answer).
    fn register_ok(&self, request: &Message, expires: u32) -> Message {
        let asked = request.expires();
        let granted = match asked {
            Some(0) => 0,
            Some(asked) => asked.min(expires),
            None => expires,
        };
        let mut response = self.final_response(request, 200, "OK");
        if granted > 0 {
            for contact in request.headers("Contact") {
                if contact.trim() == "*" {
                    continue;
                }
                let bare = strip_expires_param(contact);
                response = with_header(response, "Contact", &format!("{bare};expires={granted}"));
            }
        }
        with_header(response, "Expires", &granted.to_string())
    }
}

/// A Contact value without its `expires` parameter (we add the granted one). The URI ends at
/// the `>` that closes the first `<`; parameters are split outside quoted strings, so that a
/// `+sip.instance="<urn:uuid:…>"` stays whole (baresip sends one).
fn strip_expires_param(contact: &str) -> String {
    let contact = contact.trim();
    let uri_end = match contact.find('<') {
        Some(open) => contact[open..].find('>').map(|close| open + close + 1),
        None => contact.find(';'),
    }
    .unwrap_or(contact.len());
    let (uri_part, params) = contact.split_at(uri_end);
    let mut kept = String::new();
    for param in split_outside_quotes(params, ';') {
        let param = param.trim();
        let name = param.split('=').next().unwrap_or_default().trim();
        if !param.is_empty() && !name.eq_ignore_ascii_case("expires") {
            kept.push(';');
            kept.push_str(param);
        }
    }
    format!("{}{kept}", uri_part.trim())
}

/// `text` split at `separator`, except inside double quotes.
fn split_outside_quotes(text: &str, separator: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut quoted = false;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            c if c == separator && !quoted => {
                parts.push(&text[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

fn contact_uri(local: Local) -> String {
    let host = match local.addr {
        SocketAddr::V4(a) => a.ip().to_string(),
        SocketAddr::V6(a) => format!("[{}]", a.ip()),
    };
    format!(
        "sip:srvlab@{host}:{};transport={}",
        local.addr.port(),
        local.transport
    )
}

fn sdp(local: Local) -> String {
    let (family, ip) = match local.addr {
        SocketAddr::V4(a) => ("IP4", a.ip().to_string()),
        SocketAddr::V6(a) => ("IP6", a.ip().to_string()),
    };
    format!(
        "v=0\r\no=srvlab 1 1 IN {family} {ip}\r\ns=srvlab\r\nc=IN {family} {ip}\r\nt=0 0\r\n\
         m=audio 40000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
    )
}

/// Adds a header before Content-Length (which stays last, by habit of real servers).
fn with_header(mut message: Message, name: &str, value: &str) -> Message {
    let at = message
        .headers
        .iter()
        .position(|h| h.name.eq_ignore_ascii_case("Content-Length"))
        .unwrap_or(message.headers.len());
    message.headers.insert(
        at,
        crate::sip::Header {
            name: name.to_string(),
            value: value.to_string(),
        },
    );
    message
}

fn with_body(mut message: Message, content_type: &str, body: Vec<u8>) -> Message {
    message
        .headers
        .retain(|h| !h.name.eq_ignore_ascii_case("Content-Length"));
    let length = body.len().to_string();
    message.body = body;
    let message = with_header(message, "Content-Type", content_type);
    let mut message = message;
    message.headers.push(crate::sip::Header {
        name: "Content-Length".into(),
        value: length,
    });
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_contact_loses_only_its_expires_and_keeps_quoted_params_whole() {
        assert_eq!(
            strip_expires_param(
                r#"<sip:alice-0x55@127.0.0.1:5060>;expires=3600;+sip.instance="<urn:uuid:1-2>""#
            ),
            r#"<sip:alice-0x55@127.0.0.1:5060>;+sip.instance="<urn:uuid:1-2>""#
        );
        assert_eq!(
            strip_expires_param("sip:bob@192.0.2.4;Expires=60;q=0.5"),
            "sip:bob@192.0.2.4;q=0.5"
        );
        assert_eq!(
            strip_expires_param("\"A;B\" <sip:a@b;lr>;expires=5"),
            "\"A;B\" <sip:a@b;lr>"
        );
    }
}
