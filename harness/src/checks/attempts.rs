//! The timeline regrouped as the device's requests and their attempts, the unit every check
//! reasons about.
//!
//! A **request** is what the device set out to do: its SIP requests sharing a Call-ID and CSeq
//! method (an ACK or CANCEL belongs to its INVITE's request). Several requests can share a
//! Call-ID and method (REGISTER refreshes, the re-INVITE after a 401): a new request begins
//! when the CSeq number changes after the previous attempt completed (a final response that
//! is no reason to fail over), or when a step of the case began since the last attempt. A
//! device that raises its CSeq on failover (RFC 3261 allows it for REGISTER) therefore stays
//! one request; one that re-sends with a raised CSeq after every target failed, with no step
//! in between, is read as still failing over.
//!
//! A device that begins a new transaction (a new Via branch) to a target its request already
//! tried, after the request's last attempt ended (refused, a failover response, or no answer
//! until Timer B/F), retries: that is a new request, not a late failover (a retransmission
//! keeps its branch and stays with its attempt).
//!
//! srvlab's own trigger (a lab's `register`, `call` … action, an `EventKind::Trigger` on the
//! timeline) explains the first new attempt of the method it asked for, begun after it and
//! within the time the device was given to act, unless the device's own failover explains it
//! (its request's last attempt had ended and the attempt goes to a target not yet tried). Such
//! an attempt begins a request of its own, marked [`Request::asked`]: the device did not
//! decide to send it, so checks of what the device does by itself leave it out.
//!
//! A request whose To header carries a tag (or a BYE) is inside a dialog
//! ([`Request::in_dialog`]): it follows the dialog's route (RFC 3261 §12), not DNS, and never
//! joins an out-of-dialog request.
//!
//! An **attempt** is one Via branch sent to one server address over one transport: one client
//! transaction. Its transmissions are the copies the servers received, and the copies the
//! kernel refused (ICMP port unreachable with a quote that names the branch or Call-ID).
//!
//! A TLS connection that never carried a request is an attempt too: the device tried that
//! target, and the handshake failed (a certificate the device rejected, an alert from the
//! server) or was never answered. Such an attempt names no Call-ID; it is tied to its request
//! by time, as a TCP refusal is.
//!
//! Keep-alives (RFC 5626: CRLFs, STUN) are no attempts, received or refused: grouping passes
//! over their events, and over a refusal whose quote is nothing but a keep-alive (how srvlab
//! recorded a refused one before keep-alives had an event of their own).
//!
//! Grouping never fails: messages without a Call-ID, branch or CSeq are grouped as far as
//! what they carry allows.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use super::measure::{ns, tolerance};
use crate::model::profile::Profile;
use crate::sip::{keepalive, to_tag_partial};
use crate::timeline::{
    CloseKind, Event, EventKind, Flow, RefusalSeen, Refused, SipMessage, SipSummary, Transport,
};

/// One event, by sequence number and time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mark {
    pub seq: u64,
    pub t_ns: u64,
}

/// One copy of an attempt's request, as received by a server or refused by the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transmission {
    pub seq: u64,
    pub t_ns: u64,
    pub refused: bool,
}

/// A server's response to an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Response {
    pub seq: u64,
    pub t_ns: u64,
    pub status: u16,
    /// The Retry-After header's seconds, when there was one.
    pub retry_after: Option<u32>,
}

/// How an attempt ended, as far as the timeline shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptEnd {
    /// A final response (the first one).
    Answered(u16),
    /// The kernel refused it (ICMP port unreachable, RST) and no final response came.
    Refused,
    /// No final response (provisional ones may have come).
    Unanswered,
}

/// A TLS handshake that failed, as the server saw it.
#[derive(Clone, Debug, PartialEq)]
pub struct HandshakeFailure {
    pub seq: u64,
    pub t_ns: u64,
    /// rustls's reading, e.g. "received fatal alert: UnknownCA", or the alert srvlab sent.
    pub reason: String,
}

/// An attempt that never got past the TLS handshake: no request crossed the connection.
#[derive(Clone, Debug, PartialEq)]
pub struct Handshake {
    /// `None`: the server never answered the ClientHello (`tls: {fail: handshake_stall}`).
    pub failure: Option<HandshakeFailure>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Attempt {
    /// The server's host name, as on the timeline.
    pub server: String,
    /// The server's address and port.
    pub address: SocketAddr,
    pub transport: Transport,
    pub method: String,
    pub branch: Option<String>,
    pub call_id: Option<String>,
    pub cseq: Option<u32>,
    /// Never empty: an attempt exists because something was sent (for a [`Handshake`]
    /// attempt, the connection the ClientHello went over).
    pub sends: Vec<Transmission>,
    pub responses: Vec<Response>,
    /// ACKs with this attempt's branch (the ACK of a non-2xx final response).
    pub acks: Vec<Mark>,
    /// CANCELs with this attempt's branch.
    pub cancels: Vec<Mark>,
    pub end: AttemptEnd,
    /// False for a refusal that named no Call-ID (a TCP RST quotes nothing): it was attached
    /// to its request by time, not by header.
    pub tied: bool,
    /// Set when the attempt never got past the TLS handshake.
    pub handshake: Option<Handshake>,
    /// Set when the server closed or reset the attempt's connection before a final response
    /// (a crash): a transport failure the device sees at once, like a refusal.
    pub dropped: Option<CloseKind>,
    /// Steps of the case begun before this attempt (requests never span a step).
    epoch: usize,
    /// Sent inside a dialog (see [`Request::in_dialog`]).
    in_dialog: bool,
    /// The TCP/TLS connection its first copy went over (an index into the connections).
    connection: Option<usize>,
}

impl Attempt {
    /// When the first copy was seen.
    pub fn first_sent(&self) -> u64 {
        self.sends.first().map_or(0, |s| s.t_ns)
    }

    pub fn first_seq(&self) -> u64 {
        self.sends.first().map_or(0, |s| s.seq)
    }

    /// What a dirty-host mark is about: transport, address and port.
    pub fn target_key(&self) -> (Transport, SocketAddr) {
        (self.transport, self.address)
    }

    pub fn final_response(&self) -> Option<&Response> {
        self.responses.iter().find(|r| r.status >= 200)
    }

    /// The first refused copy, or the failed TLS handshake: a transport failure the device
    /// learns of at once.
    pub fn refusal(&self) -> Option<Transmission> {
        self.sends.iter().find(|s| s.refused).copied().or_else(|| {
            let failure = self.handshake.as_ref()?.failure.as_ref()?;
            Some(Transmission {
                seq: failure.seq,
                t_ns: failure.t_ns,
                refused: true,
            })
        })
    }

    /// Copies of the request the servers received (refused ones left out; none for an attempt
    /// that never got past the TLS handshake).
    pub fn received(&self) -> impl Iterator<Item = &Transmission> {
        let sent = self.handshake.is_none();
        self.sends.iter().filter(move |s| sent && !s.refused)
    }

    /// How the attempt was refused, for sentences: "was refused", or what became of the TLS
    /// handshake.
    pub fn refused_how(&self) -> String {
        if let Some(failure) = self.handshake.as_ref().and_then(|h| h.failure.as_ref()) {
            return format!("failed its TLS handshake ({})", failure.reason);
        }
        match self.dropped {
            Some(CloseKind::ServerReset) => "had its connection reset by the server".to_owned(),
            Some(_) => "had its connection closed by the server".to_owned(),
            None => "was refused".to_owned(),
        }
    }

    /// `server udp 127.0.0.52:5060`, for sentences.
    pub fn describe(&self) -> String {
        format!("{} {} {}", self.server, self.transport, self.address)
    }

    /// Whether the device was done with this attempt by `t_ns`: it was refused or got a
    /// failover response by then, or went without any response for the whole wait (`timeout`,
    /// less the tolerance timing checks allow).
    fn ended_by(&self, t_ns: u64, failover_codes: &[u16], timeout: Duration) -> bool {
        if self.refusal().is_some_and(|r| r.t_ns <= t_ns) {
            return true;
        }
        if let Some(response) = self.final_response() {
            return response.t_ns <= t_ns
                && (response.status == 503 || failover_codes.contains(&response.status));
        }
        let wait = ns(timeout.saturating_sub(tolerance(timeout)));
        self.responses.is_empty() && t_ns >= self.first_sent().saturating_add(wait)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    pub call_id: Option<String>,
    pub method: String,
    /// The first request seen with this Call-ID: what the device resolved afresh for (a BYE,
    /// a refresh or a re-send after a challenge follows an earlier request instead).
    pub opening: bool,
    /// The trigger action that asked the device for this request (see the module's note):
    /// srvlab's doing, not the device's own decision to send it. Where it went is still the
    /// device's choice.
    pub asked: Option<Mark>,
    /// Sent inside a dialog (a To tag, or a BYE): it follows the dialog's route, not DNS, so it
    /// is no locator decision ([`super::Context::requests`] leaves it out).
    pub in_dialog: bool,
    /// In the order they began.
    pub attempts: Vec<Attempt>,
    /// ACKs and CANCELs of this request tied to no attempt (the ACK of a 2xx has a branch of
    /// its own).
    pub others: Vec<Mark>,
}

impl Request {
    pub fn start(&self) -> u64 {
        self.attempts.first().map_or(0, Attempt::first_sent)
    }
}

/// How long a device waits for an answer before it gives an attempt up: the vendor's declared
/// failover time (T4) when the profile has one, else Timer B/F (64·T1).
pub fn give_up_after(profile: &Profile) -> Duration {
    profile.failover_after.unwrap_or_else(|| profile.timer_b())
}

/// A request srvlab's trigger asked for, of `attempt`'s method, begun after `attempt` and
/// before `by_ns`: the device was asked to start over while the attempt still ran, so what
/// became of the attempt afterwards is not the device's own doing.
pub fn cut_short_by<'a>(
    requests: &'a [Request],
    attempt: &Attempt,
    by_ns: u64,
) -> Option<&'a Request> {
    requests.iter().find(|r| {
        r.asked.is_some()
            && r.method == attempt.method
            && r.start() > attempt.first_sent()
            && r.start() <= by_ns
    })
}

/// The device's own next request of `attempt`'s method after `attempt`, when it went first to
/// the same target: a new transaction there (a retry), not a move to another target.
pub fn retried_by<'a>(requests: &'a [Request], attempt: &Attempt) -> Option<&'a Attempt> {
    requests
        .iter()
        .filter(|r| r.method == attempt.method && r.asked.is_none())
        .filter_map(|r| r.attempts.first())
        .filter(|a| a.first_sent() > attempt.first_sent())
        .min_by_key(|a| (a.first_sent(), a.first_seq()))
        .filter(|a| a.target_key() == attempt.target_key() && a.branch != attempt.branch)
}

/// "1 REGISTER srvlab's trigger asked for is left out", for [`super::verdict::Findings`]'s
/// `left_out`; nothing for none.
pub fn asked_left_out(count: usize, method: &str) -> Option<String> {
    match count {
        0 => None,
        1 => Some(format!("1 {method} srvlab's trigger asked for is left out")),
        n => Some(format!(
            "{n} {method}s srvlab's trigger asked for are left out"
        )),
    }
}

/// "1 unanswered attempt cut short by a REGISTER srvlab's trigger asked for is left out" (see
/// [`cut_short_by`]); nothing for none.
pub fn cut_short_left_out(count: usize, what: &str, method: &str) -> Option<String> {
    match count {
        0 => None,
        1 => Some(format!(
            "1 {what} cut short by a {method} srvlab's trigger asked for is left out"
        )),
        n => Some(format!(
            "{n} {what}s cut short by requests srvlab's trigger asked for are left out"
        )),
    }
}

/// Regroups the timeline with `profile`'s failover codes (final statuses that do not complete
/// a request; 503 always is one) and wait for an answer ([`give_up_after`]).
pub fn group(events: &[Event], profile: &Profile) -> Vec<Request> {
    let mut builder = Builder {
        failover_codes: &profile.failover_codes,
        timeout: give_up_after(profile),
        ..Builder::default()
    };
    // Sequence order is time order on a real timeline, except that a refusal is seen by a
    // separate reader and recorded late: it counts at the kernel's time of the refusal.
    let mut ordered: Vec<&Event> = events.iter().collect();
    ordered.sort_by_key(|e| (e.happened_ns(), e.seq));
    for event in ordered {
        match &event.kind {
            EventKind::Step { .. } => builder.epoch += 1,
            EventKind::Trigger {
                method: Some(method),
                within_ns,
                ..
            } => {
                let mark = Mark {
                    seq: event.seq,
                    t_ns: event.t_ns,
                };
                let until = event.t_ns.saturating_add(*within_ns);
                builder
                    .pending
                    .insert(method.to_ascii_uppercase(), (mark, until));
            }
            EventKind::SipReceived(message) => builder.received(event, message),
            EventKind::SipSent(message) => builder.sent(event, message),
            EventKind::Refused(refused) => builder.refused(event, refused),
            EventKind::TcpConnected(c) => builder.connections.connected(event, c, builder.epoch),
            // After the run stopped watching, the world resets what is still open.
            EventKind::Stopped { .. } => builder.stopped = true,
            EventKind::TcpClosed(c) if !builder.stopped => {
                if let Some(connection) = builder.connections.get(c.local, c.remote) {
                    let mark = Mark {
                        seq: event.seq,
                        t_ns: event.happened_ns(),
                    };
                    connection.closed.get_or_insert((mark, c.how));
                }
            }
            EventKind::TlsBytes(b) => builder.connections.tls(b.local, b.remote, |c| {
                c.server_spoke |= b.flow == Flow::ToDevice;
            }),
            EventKind::TlsFailed(f) => builder.connections.tls(f.local, f.remote, |c| {
                c.failure.get_or_insert(HandshakeFailure {
                    seq: event.seq,
                    t_ns: event.happened_ns(),
                    reason: f.reason.clone(),
                });
            }),
            _ => {}
        }
    }
    builder.finish()
}

/// A TCP connection from the device, as far as the attempts need it.
struct Connection {
    server: String,
    local: SocketAddr,
    connected: Mark,
    epoch: usize,
    tls: bool,
    /// A request crossed it.
    carried: bool,
    /// The server sent TLS records (its handshake answered).
    server_spoke: bool,
    failure: Option<HandshakeFailure>,
    closed: Option<(Mark, CloseKind)>,
}

/// The device's connections, by (server address, device address); a new connection from the
/// same port replaces the old one.
#[derive(Default)]
struct Connections {
    all: Vec<Connection>,
    open: HashMap<(SocketAddr, SocketAddr), usize>,
}

impl Connections {
    fn connected(&mut self, event: &Event, c: &crate::timeline::TcpConnection, epoch: usize) {
        self.all.push(Connection {
            server: c.server.clone(),
            local: c.local,
            connected: Mark {
                seq: event.seq,
                t_ns: event.happened_ns(),
            },
            epoch,
            tls: false,
            carried: false,
            server_spoke: false,
            failure: None,
            closed: None,
        });
        self.open.insert((c.local, c.remote), self.all.len() - 1);
    }

    fn get(&mut self, local: SocketAddr, remote: SocketAddr) -> Option<&mut Connection> {
        let index = *self.open.get(&(local, remote))?;
        self.all.get_mut(index)
    }

    fn tls(&mut self, local: SocketAddr, remote: SocketAddr, update: impl FnOnce(&mut Connection)) {
        if let Some(connection) = self.get(local, remote) {
            connection.tls = true;
            update(connection);
        }
    }

    /// Attempts for the TLS connections that carried no request and did not complete their
    /// handshake: it failed, or the server never answered. A completed handshake with nothing
    /// after it is no attempt (a device may open a connection ahead of need).
    fn handshake_attempts(self) -> impl Iterator<Item = Attempt> {
        self.all
            .into_iter()
            .filter(|c| c.tls && !c.carried && (c.failure.is_some() || !c.server_spoke))
            .map(|c| Attempt {
                server: c.server,
                address: c.local,
                transport: Transport::Tls,
                method: "?".to_owned(),
                branch: None,
                call_id: None,
                cseq: None,
                sends: vec![Transmission {
                    seq: c.connected.seq,
                    t_ns: c.connected.t_ns,
                    refused: false,
                }],
                responses: Vec::new(),
                acks: Vec::new(),
                cancels: Vec::new(),
                end: AttemptEnd::Unanswered,
                tied: false,
                handshake: Some(Handshake { failure: c.failure }),
                dropped: None,
                epoch: c.epoch,
                in_dialog: false,
                connection: None,
            })
    }
}

/// Identifies an attempt: Call-ID, branch, server address, transport.
type AttemptKey = (Option<String>, Option<String>, SocketAddr, Transport);

#[derive(Default)]
struct Builder<'a> {
    failover_codes: &'a [u16],
    /// How long the device waits for an answer ([`give_up_after`]).
    timeout: Duration,
    /// Per method, the trigger action not yet taken up by a request, and until when it can
    /// explain one.
    pending: HashMap<String, (Mark, u64)>,
    epoch: usize,
    requests: Vec<Request>,
    /// The request currently open per (Call-ID, method).
    open: HashMap<(Option<String>, String), usize>,
    attempts: HashMap<AttemptKey, (usize, usize)>,
    /// Refusals naming no Call-ID, with the epoch they happened in.
    untied: Vec<Attempt>,
    connections: Connections,
    stopped: bool,
}

fn cseq_number(summary: &SipSummary) -> Option<u32> {
    summary
        .cseq
        .as_deref()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn cseq_method(summary: &SipSummary) -> Option<String> {
    summary
        .cseq
        .as_deref()?
        .split_whitespace()
        .nth(1)
        .map(str::to_ascii_uppercase)
}

fn retry_after(raw: &[u8]) -> Option<u32> {
    let text = String::from_utf8_lossy(raw);
    text.lines()
        .take_while(|line| !line.is_empty())
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("retry-after"))
        .and_then(|(_, value)| {
            let digits: String = value
                .trim()
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            digits.parse().ok()
        })
}

impl Builder<'_> {
    fn key(summary: &SipSummary, address: SocketAddr, transport: Transport) -> AttemptKey {
        (
            summary.call_id.clone(),
            summary.branch.clone(),
            address,
            transport,
        )
    }

    fn completes(&self, attempt: &Attempt) -> bool {
        attempt
            .final_response()
            .is_some_and(|r| r.status != 503 && !self.failover_codes.contains(&r.status))
    }

    /// Whether `attempt` carries on `request`: same step, same side of a dialog, the last
    /// attempt not completed (or the CSeq unchanged), and no retry of a target tried already
    /// after the last attempt ended.
    fn continues(&self, request: &Request, attempt: &Attempt) -> bool {
        let Some(last) = request.attempts.last() else {
            return false;
        };
        let same_step = last.epoch == self.epoch;
        let completed = self.completes(last) && attempt.cseq != last.cseq;
        let t = attempt.first_sent();
        let retry =
            self.tried(request, attempt) && last.ended_by(t, self.failover_codes, self.timeout);
        same_step && !completed && !retry && request.in_dialog == attempt.in_dialog
    }

    /// Whether `request` already tried `attempt`'s target.
    fn tried(&self, request: &Request, attempt: &Attempt) -> bool {
        request
            .attempts
            .iter()
            .any(|a| a.target_key() == attempt.target_key())
    }

    /// The trigger action that explains `attempt`, taken up (see the module's note). Only an
    /// out-of-dialog request takes one up: what a dialog sends is never a locator decision.
    fn asked_for(&mut self, attempt: &Attempt) -> Option<Mark> {
        if attempt.in_dialog {
            return None;
        }
        let t = attempt.first_sent();
        let &(mark, until) = self.pending.get(&attempt.method)?;
        if t < mark.t_ns {
            return None;
        }
        self.pending.remove(&attempt.method);
        (t <= until).then_some(mark)
    }

    /// The request a new attempt belongs to.
    fn request_for(&mut self, attempt: &Attempt) -> usize {
        let key = (attempt.call_id.clone(), attempt.method.clone());
        let open = self
            .open
            .get(&key)
            .copied()
            .filter(|&index| self.continues(&self.requests[index], attempt));
        // The device's own failover: the last attempt had ended, and this one goes elsewhere.
        let moves_on = open.is_some_and(|index| {
            let request = &self.requests[index];
            !self.tried(request, attempt)
                && request.attempts.last().is_some_and(|last| {
                    last.ended_by(attempt.first_sent(), self.failover_codes, self.timeout)
                })
        });
        let asked = if moves_on {
            None
        } else {
            self.asked_for(attempt)
        };
        if let (Some(index), None) = (open, asked) {
            return index;
        }
        let call_id = &attempt.call_id;
        let opening = call_id.is_none()
            || !self
                .requests
                .iter()
                .any(|r| r.call_id.is_some() && r.call_id == *call_id);
        self.requests.push(Request {
            call_id: call_id.clone(),
            method: attempt.method.clone(),
            opening,
            asked,
            in_dialog: attempt.in_dialog,
            attempts: Vec::new(),
            others: Vec::new(),
        });
        let index = self.requests.len() - 1;
        self.open.insert(key, index);
        index
    }

    fn new_attempt(
        &self,
        (server, address, transport): (&str, SocketAddr, Transport),
        method: String,
        summary: &SipSummary,
        (send, raw): (Transmission, &[u8]),
        tied: bool,
    ) -> Attempt {
        // A BYE is sent only inside a dialog (its To tag may be cut from a refusal's quote); a
        // REGISTER never is (RFC 3261 §10), whatever tag a device copies into its refresh.
        let in_dialog = method == "BYE" || (method != "REGISTER" && to_tag_partial(raw).is_some());
        Attempt {
            server: server.to_owned(),
            address,
            transport,
            method,
            branch: summary.branch.clone(),
            call_id: summary.call_id.clone(),
            cseq: cseq_number(summary),
            sends: vec![send],
            responses: Vec::new(),
            acks: Vec::new(),
            cancels: Vec::new(),
            end: AttemptEnd::Unanswered,
            tied,
            handshake: None,
            dropped: None,
            epoch: self.epoch,
            in_dialog,
            connection: None,
        }
    }

    fn add_attempt(&mut self, attempt: Attempt) {
        let index = self.request_for(&attempt);
        let key = (
            attempt.call_id.clone(),
            attempt.branch.clone(),
            attempt.address,
            attempt.transport,
        );
        let request = &mut self.requests[index];
        request.attempts.push(attempt);
        self.attempts
            .insert(key, (index, request.attempts.len() - 1));
    }

    fn attempt_mut(&mut self, key: &AttemptKey) -> Option<&mut Attempt> {
        let &(request, attempt) = self.attempts.get(key)?;
        self.requests.get_mut(request)?.attempts.get_mut(attempt)
    }

    fn received(&mut self, event: &Event, message: &SipMessage) {
        let summary = &message.summary;
        let Some(method) = summary.method.as_deref().map(str::to_ascii_uppercase) else {
            return; // the device's own responses are not requests
        };
        let key = Self::key(summary, message.local, message.transport);
        let connection = match message.transport {
            Transport::Udp => None,
            _ => self
                .connections
                .open
                .get(&(message.local, message.remote))
                .copied(),
        };
        if let Some(carrier) = connection.and_then(|i| self.connections.all.get_mut(i)) {
            carrier.carried = true;
        }
        let mark = Mark {
            seq: event.seq,
            t_ns: event.happened_ns(),
        };
        if method == "ACK" || method == "CANCEL" {
            if let Some(attempt) = self.attempt_mut(&key).filter(|a| a.method == "INVITE") {
                if method == "ACK" {
                    attempt.acks.push(mark);
                } else {
                    attempt.cancels.push(mark);
                }
            } else if let Some(&index) = self
                .open
                .get(&(summary.call_id.clone(), "INVITE".to_owned()))
            {
                self.requests[index].others.push(mark);
            }
            return;
        }
        let send = Transmission {
            seq: event.seq,
            t_ns: event.happened_ns(),
            refused: false,
        };
        if let Some(attempt) = self.attempt_mut(&key).filter(|a| a.method == method) {
            attempt.sends.push(send);
            return;
        }
        let mut attempt = self.new_attempt(
            (&message.server, message.local, message.transport),
            method,
            summary,
            (send, &message.raw),
            true,
        );
        attempt.connection = connection;
        self.add_attempt(attempt);
    }

    fn sent(&mut self, event: &Event, message: &SipMessage) {
        let summary = &message.summary;
        let Some(status) = summary.status else {
            return;
        };
        let key = Self::key(summary, message.local, message.transport);
        let answered = cseq_method(summary);
        let response = Response {
            seq: event.seq,
            t_ns: event.t_ns,
            status,
            retry_after: retry_after(&message.raw),
        };
        if let Some(attempt) = self.attempt_mut(&key) {
            // A response to a CANCEL carries the INVITE's branch: keep only the attempt's own.
            if answered.as_deref().is_none_or(|m| m == attempt.method) {
                attempt.responses.push(response);
            }
        }
    }

    fn refused(&mut self, event: &Event, refused: &Refused) {
        if refused.seen == RefusalSeen::Icmp && keepalive::classify_quote(&refused.raw).is_some() {
            return;
        }
        let summary = &refused.summary;
        let send = Transmission {
            seq: event.seq,
            t_ns: event.happened_ns(),
            refused: true,
        };
        let key = Self::key(summary, refused.local, refused.transport);
        let method = summary
            .method
            .as_deref()
            .map(str::to_ascii_uppercase)
            .or_else(|| cseq_method(summary));
        let quoted = summary.branch.is_some() || summary.call_id.is_some();
        if quoted
            && let Some(attempt) = self
                .attempt_mut(&key)
                .filter(|a| method.as_ref().is_none_or(|m| *m == a.method))
        {
            attempt.sends.push(send);
            return;
        }
        let tied = summary.call_id.is_some();
        let attempt = self.new_attempt(
            (&refused.server, refused.local, refused.transport),
            method.unwrap_or_else(|| "?".to_owned()),
            summary,
            (send, &refused.raw),
            tied,
        );
        if tied {
            self.add_attempt(attempt);
        } else {
            self.untied.push(attempt);
        }
    }

    /// Ties each refusal that named no Call-ID to a request: the one whose next attempt follows
    /// it closest in time (a device moves on from a refused target to the next within the same
    /// request), else the one in progress when it happened, else a request of its own. Never
    /// across a step of the case.
    fn tie(&mut self, mut refusal: Attempt) {
        let t = refusal.first_sent();
        let mut following: Option<(u64, usize)> = None;
        let mut preceding: Option<(u64, usize)> = None;
        for (index, request) in self.requests.iter().enumerate() {
            for attempt in request.attempts.iter().filter(|a| a.tied) {
                if attempt.epoch != refusal.epoch {
                    continue;
                }
                let at = attempt.first_sent();
                if at >= t && following.is_none_or(|(best, _)| at < best) {
                    following = Some((at, index));
                }
                if at < t && preceding.is_none_or(|(best, _)| at > best) {
                    preceding = Some((at, index));
                }
            }
        }
        match following.or(preceding) {
            Some((_, index)) => {
                let request = &mut self.requests[index];
                refusal.call_id.clone_from(&request.call_id);
                if refusal.method == "?" {
                    refusal.method.clone_from(&request.method);
                }
                request.attempts.push(refusal);
            }
            None => {
                // Nothing on the wire says what it was for (a TCP RST, a failed handshake).
                if refusal.method == "?" {
                    refusal.method = "request".to_owned();
                }
                self.requests.push(Request {
                    call_id: None,
                    method: refusal.method.clone(),
                    opening: true,
                    asked: None,
                    in_dialog: false,
                    attempts: vec![refusal],
                    others: Vec::new(),
                });
            }
        }
    }

    fn finish(mut self) -> Vec<Request> {
        // A connection the server closed under an attempt still waiting for its answer.
        for attempt in self.requests.iter_mut().flat_map(|r| &mut r.attempts) {
            let Some((mark, how)) = attempt
                .connection
                .and_then(|i| self.connections.all.get(i))
                .and_then(|c| c.closed)
            else {
                continue;
            };
            let by_server = matches!(how, CloseKind::Server | CloseKind::ServerReset);
            if by_server && attempt.final_response().is_none() && mark.t_ns >= attempt.first_sent()
            {
                attempt.sends.push(Transmission {
                    seq: mark.seq,
                    t_ns: mark.t_ns,
                    refused: true,
                });
                attempt.dropped = Some(how);
            }
        }
        let handshakes = std::mem::take(&mut self.connections).handshake_attempts();
        self.untied.extend(handshakes);
        for refusal in std::mem::take(&mut self.untied) {
            self.tie(refusal);
        }
        let mut requests = self.requests;
        for request in &mut requests {
            request
                .attempts
                .sort_by_key(|a| (a.first_sent(), a.first_seq()));
            for attempt in &mut request.attempts {
                attempt.end = match attempt.final_response() {
                    Some(response) => AttemptEnd::Answered(response.status),
                    None if attempt.refusal().is_some() => AttemptEnd::Refused,
                    None => AttemptEnd::Unanswered,
                };
            }
        }
        requests.retain(|r| !r.attempts.is_empty());
        requests.sort_by_key(|r| r.attempts.first().map(|a| (a.first_sent(), a.first_seq())));
        requests
    }
}
