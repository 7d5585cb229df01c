//! A case's ladder diagram: the device, the DNS server and each SIP server as columns, every
//! message an arrow on a time axis that runs down the page. The geometry is computed here,
//! purely (time → y, which messages are retransmissions or failovers, where the drawing
//! stops); [`svg`] draws it as inline SVG for report.html.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt::Write as _;

use crate::timeline::{CloseKind, Event, EventKind, RefusalSeen, Transport};

/// Pixels per nanosecond of true time, before rows are pushed apart.
pub struct Scale {
    /// Vertical pixels per T1.
    pub px_per_t1: f64,
    /// Rows closer than this are pushed apart (the axis stays monotone).
    pub min_row_px: f64,
    /// Quiet gaps longer than this many T1 are compressed…
    pub gap_t1: f64,
    /// …to this many pixels, marked as a break.
    pub gap_px: f64,
}

impl Default for Scale {
    fn default() -> Self {
        Self {
            px_per_t1: 12.0,
            min_row_px: 18.0,
            // Just beyond Timer B (64·T1): a transaction's whole wait stays on a true scale.
            gap_t1: 70.0,
            gap_px: 40.0,
        }
    }
}

/// A compressed stretch of the axis.
#[derive(Clone, Debug, PartialEq)]
pub struct Gap {
    pub from_ns: u64,
    pub to_ns: u64,
    pub y_from: f64,
    pub y_to: f64,
}

/// Time → y: piecewise linear through one breakpoint per distinct time. Between neighbours
/// the true scale holds, except that rows are at least `min_row_px` apart and a quiet gap
/// longer than `gap_t1`·T1 takes `gap_px` only.
#[derive(Clone, Debug, PartialEq)]
pub struct TimeAxis {
    points: Vec<(u64, f64)>,
    gaps: Vec<Gap>,
    px_per_ns: f64,
}

impl TimeAxis {
    pub fn new(times: &[u64], t1_ns: u64, scale: &Scale) -> Self {
        let mut sorted: Vec<u64> = times.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let px_per_ns = scale.px_per_t1 / t1_ns.max(1) as f64;
        let gap_ns = (scale.gap_t1 * t1_ns as f64) as u64;
        let mut points: Vec<(u64, f64)> = Vec::with_capacity(sorted.len());
        let mut gaps = Vec::new();
        for t in sorted {
            let Some(&(prev_t, prev_y)) = points.last() else {
                points.push((t, 0.0));
                continue;
            };
            let dt = t - prev_t;
            let y = if dt > gap_ns {
                let y = prev_y + scale.gap_px.max(scale.min_row_px);
                gaps.push(Gap {
                    from_ns: prev_t,
                    to_ns: t,
                    y_from: prev_y,
                    y_to: y,
                });
                y
            } else {
                prev_y + (dt as f64 * px_per_ns).max(scale.min_row_px)
            };
            points.push((t, y));
        }
        Self {
            points,
            gaps,
            px_per_ns,
        }
    }

    /// The y of time `t`; outside the breakpoints, the true scale from the nearest one.
    pub fn y(&self, t: u64) -> f64 {
        let Some(&(first_t, first_y)) = self.points.first() else {
            return 0.0;
        };
        if t <= first_t {
            return first_y - (first_t - t) as f64 * self.px_per_ns;
        }
        let after = self.points.partition_point(|(pt, _)| *pt <= t);
        let (t0, y0) = self.points[after - 1];
        match self.points.get(after) {
            None => y0 + (t - t0) as f64 * self.px_per_ns,
            Some(&(t1, y1)) => y0 + (y1 - y0) * (t - t0) as f64 / (t1 - t0) as f64,
        }
    }

    pub fn gaps(&self) -> &[Gap] {
        &self.gaps
    }

    /// The y of the last breakpoint.
    pub fn height(&self) -> f64 {
        self.points.last().map_or(0.0, |p| p.1)
    }
}

/// The key of a SIP transaction as a server sees a request: the top Via branch and method.
fn transaction_key(event: &Event) -> Option<(String, String)> {
    match &event.kind {
        EventKind::SipReceived(m) => Some((m.summary.branch.clone()?, m.summary.method.clone()?)),
        _ => None,
    }
}

/// Sequence numbers of the requests that are retransmissions: a request received with the
/// branch and method of an earlier one.
pub fn retransmissions(events: &[Event]) -> BTreeSet<u64> {
    let mut seen = HashSet::new();
    events
        .iter()
        .filter_map(|e| transaction_key(e).map(|key| (e.seq, key)))
        .filter(|(_, key)| !seen.insert(key.clone()))
        .map(|(seq, _)| seq)
        .collect()
}

/// Where a request attempt went (transport and server address), its Call-ID and method: a
/// received request or a refused one.
fn attempt_of(event: &Event) -> Option<(String, Option<&str>, &str)> {
    match &event.kind {
        EventKind::SipReceived(m) => Some((
            format!("{} {}", m.transport, m.local),
            m.summary.call_id.as_deref(),
            m.summary.method.as_deref().unwrap_or(""),
        )),
        EventKind::Refused(r) => Some((
            format!("{} {}", r.transport, r.local),
            r.summary.call_id.as_deref(),
            r.summary.method.as_deref().unwrap_or(""),
        )),
        _ => None,
    }
}

/// Sequence numbers of failovers: a request (Call-ID and method) sent to another target
/// (transport, address, port) than the one its previous attempt went to. ACKs and CANCELs follow their request, never fail
/// over.
pub fn failovers(events: &[Event]) -> BTreeSet<u64> {
    let mut last_target: BTreeMap<(String, String), String> = BTreeMap::new();
    let mut found = BTreeSet::new();
    for event in events {
        let Some((target, Some(call_id), method)) = attempt_of(event) else {
            continue;
        };
        if method == "ACK" || method == "CANCEL" {
            continue;
        }
        let key = (call_id.to_string(), method.to_string());
        if let Some(previous) = last_target.insert(key, target.clone())
            && previous != target
        {
            found.insert(event.seq);
        }
    }
    found
}

/// Where a large case's drawing stops: the events drawn are those before the first event of
/// the (`max_requests` + 1)-th request (by Call-ID).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cut {
    /// How many events are drawn (a prefix of the timeline).
    pub drawn_events: usize,
    pub drawn_requests: usize,
    pub omitted_requests: usize,
}

pub fn cut(events: &[Event], max_requests: usize) -> Cut {
    let mut calls: Vec<Option<&str>> = Vec::new();
    let mut drawn_events = events.len();
    for (index, event) in events.iter().enumerate() {
        let Some((_, call_id, _)) = attempt_of(event) else {
            continue;
        };
        if calls.contains(&call_id) {
            continue;
        }
        if calls.len() == max_requests && drawn_events == events.len() {
            drawn_events = index;
        }
        calls.push(call_id);
    }
    let drawn_requests = calls.len().min(max_requests);
    Cut {
        drawn_events,
        drawn_requests,
        omitted_requests: calls.len() - drawn_requests,
    }
}

/// When RFC 3261 says a client transaction over UDP resends while unanswered (Timer A for
/// INVITE, doubling; Timer E otherwise, capped at T2), up to its deadline at 64·T1 (Timer B,
/// Timer F): offsets from the first send.
pub fn resend_offsets(invite: bool, t1_ns: u64, t2_ns: u64) -> Vec<u64> {
    let deadline = t1_ns.saturating_mul(64);
    let mut offsets = Vec::new();
    let mut interval = t1_ns.max(1);
    let mut at = interval;
    while at < deadline {
        offsets.push(at);
        interval = interval.saturating_mul(2);
        if !invite {
            interval = interval.min(t2_ns.max(1));
        }
        at = at.saturating_add(interval);
    }
    offsets
}

/// One column of the ladder.
#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    pub label: String,
    pub detail: String,
}

/// Which column a SIP server's messages go to: one per server name and address (a host on
/// two ports is two columns: a dirty-host mark may cover one of them only).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServerColumns {
    by_address: BTreeMap<(String, String), usize>,
}

impl ServerColumns {
    /// The column of `server` at `address`; without an address (a phase change), the
    /// server's first column.
    pub fn of(&self, server: &str, address: Option<&str>) -> Option<usize> {
        match address {
            Some(address) => self
                .by_address
                .get(&(server.to_string(), address.to_string()))
                .copied(),
            None => self
                .by_address
                .iter()
                .filter(|((name, _), _)| name == server)
                .map(|(_, column)| *column)
                .min(),
        }
    }
}

/// The server and address of the SIP column an event belongs to.
fn server_of(event: &Event) -> Option<(&str, Option<String>)> {
    match &event.kind {
        EventKind::SipReceived(m) | EventKind::SipSent(m) => {
            Some((&m.server, Some(m.local.to_string())))
        }
        EventKind::Refused(r) => Some((&r.server, Some(r.local.to_string()))),
        EventKind::KeepAlive(k) => Some((&k.server, Some(k.local.to_string()))),
        EventKind::SipMalformed(m) => Some((&m.server, Some(m.local.to_string()))),
        EventKind::TlsFailed(t) => Some((&t.server, Some(t.local.to_string()))),
        EventKind::TcpConnected(c) => Some((&c.server, Some(c.local.to_string()))),
        EventKind::TcpClosed(c) => Some((&c.server, Some(c.local.to_string()))),
        EventKind::TcpUnframed(u) => Some((&u.server, Some(u.local.to_string()))),
        EventKind::PhaseChanged(p) => Some((&p.server, None)),
        _ => None,
    }
}

/// The ladder's columns: the device, the DNS server, then each SIP server address in the
/// order the timeline first names it.
pub fn columns(events: &[Event]) -> (Vec<Column>, ServerColumns) {
    let dns = events.iter().find_map(|e| match &e.kind {
        EventKind::DnsQuery(q) => Some(q.server.to_string()),
        EventKind::DnsMalformed(m) => Some(m.server.to_string()),
        _ => None,
    });
    let mut columns = vec![
        Column {
            label: "device".into(),
            detail: String::new(),
        },
        Column {
            label: "DNS".into(),
            detail: dns.unwrap_or_default(),
        },
    ];
    let mut index = ServerColumns::default();
    // Addresses first; a server only ever named by a phase change gets a column of its own.
    for with_address in [true, false] {
        for (server, address) in events.iter().filter_map(server_of) {
            if address.is_some() != with_address || index.of(server, address.as_deref()).is_some() {
                continue;
            }
            let address = address.unwrap_or_default();
            index
                .by_address
                .insert((server.to_string(), address.clone()), columns.len());
            columns.push(Column {
                label: server.trim_end_matches('.').to_string(),
                detail: address,
            });
        }
    }
    (columns, index)
}

/// What the ladder draws for a case, and what it left out.
pub struct Drawing {
    pub svg: String,
    pub cut: Cut,
}

const DEVICE: usize = 0;
const DNS: usize = 1;
const LEFT: f64 = 96.0;
const COLUMN_WIDTH: f64 = 230.0;
const TOP: f64 = 56.0;
const BOTTOM: f64 = 30.0;
/// Room right of the last column for phase and step labels.
const RIGHT: f64 = 180.0;

/// What to draw for one event.
enum Mark {
    Arrow {
        from: usize,
        to: usize,
        label: String,
        class: &'static str,
        /// Ends in a cross: the packet went nowhere (dropped, refused).
        lost: bool,
    },
    Refusal {
        server: usize,
        label: String,
        seen: RefusalSeen,
    },
    Phase {
        server: usize,
        label: String,
    },
    Step(String),
}

fn mark_of(
    event: &Event,
    servers: &ServerColumns,
    retransmitted: &BTreeSet<u64>,
    failed_over: &BTreeSet<u64>,
) -> Option<Mark> {
    let column = |server: &str| {
        let (_, address) = server_of(event)?;
        servers.of(server, address.as_deref())
    };
    Some(match &event.kind {
        EventKind::DnsQuery(q) => Mark::Arrow {
            from: DEVICE,
            to: DNS,
            label: format!("{} {}{}", q.qtype, q.name, tcp_note(q.transport)),
            class: "dns",
            lost: false,
        },
        EventKind::DnsAnswer(a) => Mark::Arrow {
            from: DNS,
            to: DEVICE,
            label: format!(
                "{} {}, {} answer{}{}",
                a.rcode,
                a.qtype,
                a.answers.len(),
                if a.answers.len() == 1 { "" } else { "s" },
                if a.tc { " (TC)" } else { "" }
            ),
            class: "dns",
            lost: false,
        },
        EventKind::DnsDropped(d) => Mark::Arrow {
            from: DEVICE,
            to: DNS,
            label: format!("{} {} — no answer ({})", d.qtype, d.name, d.fault),
            class: "lost",
            lost: true,
        },
        // As a malformed SIP message is drawn: it reached the server, which could not take it.
        EventKind::DnsMalformed(m) => Mark::Arrow {
            from: DEVICE,
            to: DNS,
            label: format!(
                "malformed: {}{}{}",
                m.reason,
                if m.answer.is_empty() {
                    ""
                } else {
                    " → FORMERR"
                },
                tcp_note(m.transport)
            ),
            class: "lost",
            lost: false,
        },
        EventKind::SipReceived(m) => {
            let retransmission = retransmitted.contains(&event.seq);
            let failover = failed_over.contains(&event.seq);
            let method = m.summary.method.clone().unwrap_or_else(|| "?".into());
            Mark::Arrow {
                from: DEVICE,
                to: column(&m.server)?,
                label: format!(
                    "{}{method}{}{}",
                    if failover { "failover: " } else { "" },
                    if retransmission {
                        " (retransmission)"
                    } else {
                        ""
                    },
                    tcp_note(m.transport)
                ),
                class: if retransmission {
                    "resend"
                } else if failover {
                    "failover"
                } else {
                    "request"
                },
                lost: false,
            }
        }
        EventKind::SipSent(m) => Mark::Arrow {
            from: column(&m.server)?,
            to: DEVICE,
            label: match (m.summary.status, &m.summary.method) {
                (Some(status), _) => format!(
                    "{status} {}",
                    m.summary.reason.as_deref().unwrap_or_default()
                )
                .trim_end()
                .to_string(),
                (None, Some(method)) => method.clone(),
                (None, None) => "?".into(),
            },
            class: "response",
            lost: false,
        },
        EventKind::SipMalformed(m) => Mark::Arrow {
            from: DEVICE,
            to: column(&m.server)?,
            label: format!("malformed: {}", m.reason),
            class: "lost",
            lost: false,
        },
        EventKind::Refused(r) => Mark::Refusal {
            server: column(&r.server)?,
            label: format!(
                "{}{}{}",
                if failed_over.contains(&event.seq) {
                    "failover: "
                } else {
                    ""
                },
                r.summary.method.as_deref().unwrap_or("request"),
                tcp_note(r.transport)
            ),
            seen: r.seen,
        },
        // Faint, never a request: a refused one ends in a cross without the kernel's answer.
        EventKind::KeepAlive(k) => {
            let (from, to) = match k.flow {
                crate::timeline::Flow::ToServer => (DEVICE, column(&k.server)?),
                crate::timeline::Flow::ToDevice => (column(&k.server)?, DEVICE),
            };
            Mark::Arrow {
                from,
                to,
                label: format!(
                    "keep-alive: {}{}{}",
                    k.kind,
                    if k.refused { ", refused" } else { "" },
                    tcp_note(k.transport)
                ),
                class: "keepalive",
                lost: k.refused,
            }
        }
        EventKind::PhaseChanged(p) => Mark::Phase {
            server: column(&p.server)?,
            label: format!("→ {} ({})", p.behaviour, p.reason),
        },
        EventKind::Step { name } => Mark::Step(format!("step {name}")),
        EventKind::TlsFailed(t) => Mark::Arrow {
            from: DEVICE,
            to: column(&t.server)?,
            label: format!("TLS handshake failed: {}", t.reason),
            class: "lost",
            lost: false,
        },
        EventKind::TcpConnected(c) => Mark::Arrow {
            from: DEVICE,
            to: column(&c.server)?,
            label: "TCP connect".into(),
            class: "conn",
            lost: false,
        },
        // Faint, as the connection's own events: bytes that never became a message.
        EventKind::TcpUnframed(u) => Mark::Arrow {
            from: DEVICE,
            to: column(&u.server)?,
            label: format!(
                "{} unframed byte{}{}",
                u.raw.len(),
                if u.raw.len() == 1 { "" } else { "s" },
                tcp_note(u.transport)
            ),
            class: "conn",
            lost: false,
        },
        EventKind::TcpClosed(c) => {
            let (from, to) = match c.how {
                CloseKind::Peer | CloseKind::PeerReset => (DEVICE, column(&c.server)?),
                CloseKind::Server | CloseKind::ServerReset => (column(&c.server)?, DEVICE),
            };
            let reset = matches!(c.how, CloseKind::PeerReset | CloseKind::ServerReset);
            Mark::Arrow {
                from,
                to,
                label: if reset {
                    "TCP reset (RST)"
                } else {
                    "TCP close (FIN)"
                }
                .into(),
                // A server's reset under a waiting request is a refusal (F2): red, as one.
                class: if reset && from != DEVICE {
                    "refused"
                } else {
                    "conn"
                },
                lost: false,
            }
        }
        EventKind::TlsBytes(_)
        | EventKind::TlsSecret(_)
        | EventKind::Note { .. }
        | EventKind::Trigger { .. }
        | EventKind::Stopped { .. }
        | EventKind::HostDelay { .. }
        | EventKind::HostStall { .. } => return None,
    })
}

fn tcp_note(transport: Transport) -> &'static str {
    match transport {
        Transport::Udp => "",
        Transport::Tcp => " /tcp",
        Transport::Tls => " /tls",
    }
}

/// A transaction's expected resends and deadline, to draw against what the device did.
struct Timers {
    server: usize,
    /// Expected resend times (absolute), while the transaction was unanswered.
    ticks: Vec<u64>,
    /// The Timer B/F deadline, when no response came at all.
    deadline: Option<(u64, &'static str)>,
}

fn timers(
    events: &[Event],
    servers: &ServerColumns,
    retransmitted: &BTreeSet<u64>,
    t1_ns: u64,
    t2_ns: u64,
) -> Vec<Timers> {
    let mut found = Vec::new();
    for event in events {
        let EventKind::SipReceived(m) = &event.kind else {
            continue;
        };
        let (Some(branch), Some(method)) = (&m.summary.branch, &m.summary.method) else {
            continue;
        };
        if retransmitted.contains(&event.seq) || method == "ACK" {
            continue;
        }
        let Some(server) = servers.of(&m.server, Some(&m.local.to_string())) else {
            continue;
        };
        let start = event.happened_ns();
        let answered = events.iter().find_map(|e| match &e.kind {
            EventKind::SipSent(r)
                if r.summary.branch.as_ref() == Some(branch) && r.summary.status.is_some() =>
            {
                Some(e.happened_ns())
            }
            _ => None,
        });
        let invite = method == "INVITE";
        let ticks = if m.transport == Transport::Udp {
            resend_offsets(invite, t1_ns, t2_ns)
                .into_iter()
                .map(|offset| start.saturating_add(offset))
                .filter(|t| answered.is_none_or(|a| *t < a))
                .collect()
        } else {
            Vec::new()
        };
        let deadline = answered.is_none().then(|| {
            (
                start.saturating_add(t1_ns.saturating_mul(64)),
                if invite {
                    "Timer B (64·T1)"
                } else {
                    "Timer F (64·T1)"
                },
            )
        });
        found.push(Timers {
            server,
            ticks,
            deadline,
        });
    }
    found
}

fn x_of(column: usize) -> f64 {
    LEFT + COLUMN_WIDTH * (column as f64 + 0.5)
}

/// `1.283 s`: three decimals, the same bytes on every run.
pub fn seconds(t_ns: u64) -> String {
    format!("{:.3} s", t_ns as f64 / 1e9)
}

pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The anchor of an event in the case's event table.
pub fn event_anchor(case: &str, seq: u64) -> String {
    format!("event-{case}-{seq}")
}

/// Draws `events` (the whole timeline; at most `max_requests` requests are drawn) as SVG.
pub fn svg(case: &str, events: &[Event], t1_ns: u64, t2_ns: u64, max_requests: usize) -> Drawing {
    let cut = cut(events, max_requests);
    let drawn = &events[..cut.drawn_events];
    let (columns, servers) = columns(events);
    let retransmitted = retransmissions(drawn);
    let failed_over = failovers(drawn);
    // Once srvlab stopped watching, the world closes its connections: not the device's doing.
    let stopped = drawn
        .iter()
        .find(|e| matches!(e.kind, EventKind::Stopped { .. }))
        .map_or(u64::MAX, |e| e.t_ns);
    let marks: Vec<(&Event, Mark)> = drawn
        .iter()
        .filter(|e| !(matches!(e.kind, EventKind::TcpClosed(_)) && e.t_ns >= stopped))
        .filter_map(|e| Some((e, mark_of(e, &servers, &retransmitted, &failed_over)?)))
        .collect();
    let timers = timers(drawn, &servers, &retransmitted, t1_ns, t2_ns);
    let mut times: Vec<u64> = marks.iter().map(|(e, _)| e.happened_ns()).collect();
    // A refusal takes two rows: the attempt, then the ICMP/RST coming back.
    times.extend(
        marks
            .iter()
            .filter(|(_, mark)| matches!(mark, Mark::Refusal { .. }))
            .map(|(e, _)| e.happened_ns() + 1),
    );
    // A deadline gets a row for its line and label; the expected resends do not, so that
    // each tick sits on the true axis beside the copy the device actually sent.
    times.extend(
        timers
            .iter()
            .filter_map(|timer| timer.deadline.map(|d| d.0)),
    );
    let axis = TimeAxis::new(&times, t1_ns, &Scale::default());
    let y = |t: u64| TOP + axis.y(t);
    let width = LEFT + COLUMN_WIDTH * columns.len() as f64 + RIGHT;
    let last_x = x_of(columns.len() - 1);
    let height = TOP + axis.height() + BOTTOM;
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="ladder" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" role="img" aria-label="ladder diagram of {case}">"#,
        case = escape(case)
    );
    // One arrowhead per ladder: ids are unique across the page.
    let head = escape(&format!("arrow-{case}"));
    let _ = write!(
        out,
        concat!(
            r#"<defs><marker id="{head}" viewBox="0 0 10 10" refX="10" refY="5" markerUnits="userSpaceOnUse" markerWidth="9" markerHeight="9" orient="auto-start-reverse">"#,
            r#"<path d="M0,0 L10,5 L0,10 z" fill="context-stroke"/></marker></defs>"#
        ),
        head = head
    );
    for (i, column) in columns.iter().enumerate() {
        let x = x_of(i);
        let _ = write!(
            out,
            r#"<text class="col" x="{x:.1}" y="18" text-anchor="middle">{}</text><text class="coldetail" x="{x:.1}" y="32" text-anchor="middle">{}</text><line class="life" x1="{x:.1}" y1="40" x2="{x:.1}" y2="{:.1}"/>"#,
            escape(&column.label),
            escape(&column.detail),
            height - BOTTOM / 2.0
        );
    }
    for gap in axis.gaps() {
        let (y0, y1) = (TOP + gap.y_from, TOP + gap.y_to);
        let _ = write!(
            out,
            r#"<rect class="gap" x="0" y="{:.1}" width="{width:.0}" height="{:.1}"/><text class="gaplabel" x="{:.1}" y="{:.1}">⋯ {} of nothing, compressed ⋯</text>"#,
            y0 + 4.0,
            (y1 - y0 - 8.0).max(1.0),
            LEFT + 8.0,
            (y0 + y1) / 2.0 + 4.0,
            seconds(gap.to_ns - gap.from_ns)
        );
    }
    // Where the host did not run srvlab's reference UA (its watchdog's reports): a band on the
    // device's lifeline, taking no row, so that a late reaction shows whose it was.
    for event in drawn {
        if let EventKind::HostStall { stalled_ns } = event.kind {
            let (from, to) = (y(event.t_ns.saturating_sub(stalled_ns)), y(event.t_ns));
            let _ = write!(
                out,
                r#"<rect class="stall" x="{:.1}" y="{from:.1}" width="6" height="{:.1}"><title>srvlab's host did not run the reference UA for {} (until {})</title></rect>"#,
                x_of(DEVICE) - 3.0,
                (to - from).max(1.0),
                seconds(stalled_ns),
                seconds(event.t_ns)
            );
        }
    }
    for timer in &timers {
        let x = x_of(timer.server);
        for tick in &timer.ticks {
            let _ = write!(
                out,
                r#"<line class="tick" x1="{:.1}" y1="{yt:.1}" x2="{:.1}" y2="{yt:.1}"><title>expected resend (Timer A/E) at {}</title></line>"#,
                // Right of the lifeline, clear of the arrowhead of the copy actually sent.
                x + 3.0,
                x + 17.0,
                seconds(*tick),
                yt = y(*tick)
            );
        }
        if let Some((deadline, name)) = timer.deadline {
            let yd = y(deadline);
            let _ = write!(
                out,
                r#"<line class="deadline" x1="{:.1}" y1="{yd:.1}" x2="{:.1}" y2="{yd:.1}"/><text class="deadlinelabel" x="{:.1}" y="{:.1}" text-anchor="end">{name} at {}</text>"#,
                x_of(DEVICE),
                x,
                x - 12.0,
                yd - 3.0,
                seconds(deadline)
            );
        }
    }
    for (event, mark) in &marks {
        let t = event.happened_ns();
        let yy = y(t);
        let href = event_anchor(case, event.seq);
        let _ = write!(
            out,
            r##"<a href="#{href}"><text class="time" x="{:.1}" y="{:.1}" text-anchor="end">{} #{}</text></a>"##,
            LEFT - 6.0,
            yy + 4.0,
            seconds(t),
            event.seq
        );
        match mark {
            Mark::Arrow {
                from,
                to,
                label,
                class,
                lost,
            } => {
                let (x1, x2) = (x_of(*from), x_of(*to));
                let end = if *lost {
                    x2 - (x2 - x1).signum() * 14.0
                } else {
                    x2
                };
                let tip = (!*lost).then_some(head.as_str());
                arrow(&mut out, &href, x1, end, yy, label, class, tip);
                if *lost {
                    cross(&mut out, end, yy, *class == "keepalive");
                }
            }
            Mark::Refusal {
                server,
                label,
                seen,
            } => {
                let (x1, x2) = (x_of(DEVICE), x_of(*server));
                arrow(&mut out, &href, x1, x2 - 14.0, yy, label, "refused", None);
                cross(&mut out, x2 - 14.0, yy, false);
                let back = match seen {
                    RefusalSeen::Icmp => "ICMP port unreachable",
                    RefusalSeen::Rst => "TCP RST",
                };
                // The kernel's answer comes straight back, on a row of its own; its label sits
                // by the server.
                let _ = write!(
                    out,
                    r##"<a href="#{href}"><line class="refusal" x1="{x2:.1}" y1="{yb:.1}" x2="{x1:.1}" y2="{yb:.1}" marker-end="url(#{head})"/><text class="label refusal" x="{:.1}" y="{:.1}" text-anchor="end">{back}</text></a>"##,
                    x2 - 8.0,
                    y(t + 1) - 3.0,
                    yb = y(t + 1)
                );
            }
            Mark::Phase { server, label } => {
                let _ = write!(
                    out,
                    r#"<text class="phase" x="{:.1}" y="{:.1}">{}</text><circle class="phase" cx="{:.1}" cy="{yy:.1}" r="4"/>"#,
                    x_of(*server) + 8.0,
                    yy + 4.0,
                    escape(label),
                    x_of(*server)
                );
            }
            Mark::Step(label) => {
                let _ = write!(
                    out,
                    r#"<line class="step" x1="{LEFT:.1}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}"/><text class="steplabel" x="{:.1}" y="{:.1}">{}</text>"#,
                    last_x + 8.0,
                    last_x + 12.0,
                    yy + 4.0,
                    escape(label)
                );
            }
        }
    }
    out.push_str("</svg>");
    Drawing { svg: out, cut }
}

#[allow(clippy::too_many_arguments)]
fn arrow(
    out: &mut String,
    href: &str,
    x1: f64,
    x2: f64,
    y: f64,
    label: &str,
    class: &str,
    head: Option<&str>,
) {
    let _ = write!(
        out,
        r##"<a href="#{href}"><line class="{class}" x1="{x1:.1}" y1="{y:.1}" x2="{x2:.1}" y2="{y:.1}"{}/><text class="label {class}" x="{:.1}" y="{:.1}" text-anchor="middle">{}</text></a>"##,
        head.map(|id| format!(r#" marker-end="url(#{id})""#))
            .unwrap_or_default(),
        (x1 + x2) / 2.0,
        y - 3.0,
        escape(label)
    );
}

/// A packet that went nowhere; `faint` for a keep-alive's.
fn cross(out: &mut String, x: f64, y: f64, faint: bool) {
    let _ = write!(
        out,
        r#"<path class="cross{}" d="M{:.1},{:.1} L{:.1},{:.1} M{:.1},{:.1} L{:.1},{:.1}"/>"#,
        if faint { " faint" } else { "" },
        x - 5.0,
        y - 5.0,
        x + 5.0,
        y + 5.0,
        x - 5.0,
        y + 5.0,
        x + 5.0,
        y - 5.0
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeline::{SipMessage, SipSummary};

    const MS: u64 = 1_000_000;

    fn received(
        seq: u64,
        t_ms: u64,
        server: &str,
        call: &str,
        method: &str,
        branch: &str,
    ) -> Event {
        Event {
            seq,
            t_ns: t_ms * MS,
            kind: EventKind::SipReceived(SipMessage {
                server: server.into(),
                transport: Transport::Udp,
                // One address per server name.
                local: std::net::SocketAddr::from((
                    [
                        127,
                        0,
                        0,
                        (server.bytes().map(u32::from).sum::<u32>() % 250 + 1) as u8,
                    ],
                    5060,
                )),
                remote: "127.0.0.1:40000".parse().unwrap(),
                summary: SipSummary {
                    method: Some(method.into()),
                    call_id: Some(call.into()),
                    branch: Some(branch.into()),
                    ..SipSummary::default()
                },
                seen_ns: None,
                raw: Vec::new(),
            }),
        }
    }

    fn scale() -> Scale {
        Scale {
            px_per_t1: 10.0,
            min_row_px: 5.0,
            gap_t1: 70.0,
            gap_px: 40.0,
        }
    }

    #[test]
    fn the_axis_keeps_true_time_where_rows_are_far_enough_apart() {
        // T1 = 20 ms: 10 px per 20 ms.
        let axis = TimeAxis::new(&[0, 20 * MS, 60 * MS], 20 * MS, &scale());
        assert_eq!(axis.y(0), 0.0);
        assert_eq!(axis.y(20 * MS), 10.0);
        assert_eq!(axis.y(60 * MS), 30.0);
        assert_eq!(axis.y(40 * MS), 20.0);
        // Beyond the last point: the true scale.
        assert_eq!(axis.y(80 * MS), 40.0);
        assert!(axis.gaps().is_empty());
    }

    #[test]
    fn rows_closer_than_the_minimum_are_pushed_apart_and_the_axis_stays_monotone() {
        let axis = TimeAxis::new(&[0, MS, 2 * MS, 40 * MS], 20 * MS, &scale());
        assert_eq!(axis.y(MS), 5.0);
        assert_eq!(axis.y(2 * MS), 10.0);
        // 38 ms later at 0.5 px/ms.
        assert_eq!(axis.y(40 * MS), 29.0);
        let ys: Vec<f64> = (0..=40).map(|ms| axis.y(ms * MS)).collect();
        assert!(ys.windows(2).all(|w| w[0] <= w[1]), "{ys:?}");
    }

    #[test]
    fn long_quiet_gaps_are_compressed_and_reported() {
        // 70·T1 = 1.4 s; a 10 s silence takes 40 px.
        let axis = TimeAxis::new(&[0, 10 * MS, 10_010 * MS, 10_030 * MS], 20 * MS, &scale());
        assert_eq!(axis.y(10_010 * MS), 45.0);
        assert_eq!(axis.y(10_030 * MS), 55.0);
        assert_eq!(
            axis.gaps(),
            &[Gap {
                from_ns: 10 * MS,
                to_ns: 10_010 * MS,
                y_from: 5.0,
                y_to: 45.0
            }]
        );
        // Timer B's whole wait (64·T1) stays true.
        let axis = TimeAxis::new(&[0, 1280 * MS], 20 * MS, &scale());
        assert_eq!(axis.y(1280 * MS), 640.0);
        assert!(axis.gaps().is_empty());
    }

    #[test]
    fn a_retransmission_repeats_the_branch_and_method_of_an_earlier_request() {
        let events = vec![
            received(0, 0, "a.", "c1", "INVITE", "z9hG4bK1"),
            received(1, 20, "a.", "c1", "INVITE", "z9hG4bK1"),
            // Same branch, other method: the ACK of a non-2xx is no retransmission.
            received(2, 30, "a.", "c1", "ACK", "z9hG4bK1"),
            received(3, 60, "a.", "c1", "INVITE", "z9hG4bK1"),
            // A new branch: a new transaction.
            received(4, 1280, "b.", "c1", "INVITE", "z9hG4bK2"),
        ];
        assert_eq!(retransmissions(&events), BTreeSet::from([1, 3]));
        // The move to b. is a failover; a's resends and the ACK are not.
        assert_eq!(failovers(&events), BTreeSet::from([4]));
    }

    #[test]
    fn a_server_on_two_addresses_is_two_columns() {
        let mut other_port = received(1, 10, "a.", "c1", "INVITE", "z2");
        if let EventKind::SipReceived(m) = &mut other_port.kind {
            m.local.set_port(5070);
        }
        let events = vec![received(0, 0, "a.", "c1", "INVITE", "z1"), other_port];
        let (columns, servers) = columns(&events);
        assert_eq!(columns.len(), 4);
        assert_eq!(servers.of("a.", Some(&columns[3].detail)), Some(3));
        assert_eq!(servers.of("a.", None), Some(2));
        // Another port of the same host is another target.
        assert_eq!(failovers(&events), BTreeSet::from([1]));
    }

    #[test]
    fn a_large_case_is_cut_after_the_first_requests() {
        let events: Vec<Event> = (0..10)
            .map(|i| {
                received(
                    i,
                    i * 10,
                    "a.",
                    &format!("c{}", i / 2),
                    "OPTIONS",
                    &format!("b{i}"),
                )
            })
            .collect();
        assert_eq!(
            cut(&events, 3),
            Cut {
                drawn_events: 6,
                drawn_requests: 3,
                omitted_requests: 2
            }
        );
        assert_eq!(
            cut(&events, 10),
            Cut {
                drawn_events: 10,
                drawn_requests: 5,
                omitted_requests: 0
            }
        );
    }

    #[test]
    fn resends_follow_timer_a_doubling_and_timer_e_capped_at_t2() {
        let t1 = 20 * MS;
        let invite: Vec<u64> = resend_offsets(true, t1, 80 * MS)
            .iter()
            .map(|t| t / MS)
            .collect();
        assert_eq!(invite, [20, 60, 140, 300, 620, 1260]);
        let options: Vec<u64> = resend_offsets(false, t1, 80 * MS)
            .iter()
            .map(|t| t / MS)
            .collect();
        assert_eq!(options[..5], [20, 60, 140, 220, 300]);
        assert!(options.iter().all(|t| *t < 1280));
    }

    #[test]
    fn the_svg_marks_retransmissions_timers_and_cuts() {
        let events = vec![
            received(0, 0, "sipserver52.", "c1", "INVITE", "z1"),
            received(1, 20, "sipserver52.", "c1", "INVITE", "z1"),
            received(2, 1280, "sipserver114.", "c1", "INVITE", "z2"),
            received(3, 1300, "sipserver114.", "c2", "INVITE", "z3"),
        ];
        let drawing = svg("seed", &events, 20 * MS, 4000 * MS, 1);
        assert_eq!(drawing.cut.omitted_requests, 1);
        assert!(drawing.svg.contains("INVITE (retransmission)"));
        assert!(drawing.svg.contains("failover: INVITE"));
        assert!(drawing.svg.contains("Timer B (64·T1) at 1.280 s"));
        assert!(drawing.svg.contains(r##"href="#event-seed-1""##));
        assert!(!drawing.svg.contains("event-seed-3"));
        assert!(drawing.svg.starts_with("<svg") && drawing.svg.ends_with("</svg>"));
    }

    #[test]
    fn a_malformed_dns_message_is_drawn_to_the_dns_column() {
        let malformed = Event {
            seq: 0,
            t_ns: 0,
            kind: EventKind::DnsMalformed(crate::timeline::DnsMalformed {
                transport: Transport::Tcp,
                client: "127.0.0.1:40000".parse().unwrap(),
                server: "127.0.0.1:5353".parse().unwrap(),
                id: Some(7),
                reason: "decoding error: unexpected end of input reached".into(),
                raw: vec![0; 13],
                cut_short: false,
                answer: vec![0; 12],
            }),
        };
        let (columns, _) = columns(std::slice::from_ref(&malformed));
        assert_eq!(columns[DNS].detail, "127.0.0.1:5353");
        let drawing = svg("dns", &[malformed], 20 * MS, 100 * MS, 10);
        assert!(
            drawing.svg.contains(
                "malformed: decoding error: unexpected end of input reached → FORMERR /tcp"
            ),
            "{}",
            drawing.svg
        );
    }

    #[test]
    fn connections_are_drawn_until_srvlab_stops_watching() {
        let connection = |seq: u64, t_ms: u64, how: Option<CloseKind>| {
            let (server, local, remote) = (
                "sipserver52.".to_string(),
                "127.0.0.52:5060".parse().unwrap(),
                "127.0.0.1:40000".parse().unwrap(),
            );
            Event {
                seq,
                t_ns: t_ms * MS,
                kind: match how {
                    None => EventKind::TcpConnected(crate::timeline::TcpConnection {
                        server,
                        local,
                        remote,
                    }),
                    Some(how) => EventKind::TcpClosed(crate::timeline::TcpClosed {
                        server,
                        local,
                        remote,
                        how,
                    }),
                },
            }
        };
        let events = vec![
            connection(0, 0, None),
            connection(1, 5, Some(CloseKind::ServerReset)),
            connection(2, 10, None),
            Event {
                seq: 3,
                t_ns: 20 * MS,
                kind: EventKind::Stopped {
                    text: "done".into(),
                },
            },
            connection(4, 21, Some(CloseKind::Server)),
        ];
        let drawing = svg("tcp", &events, 20 * MS, 4000 * MS, 10);
        assert_eq!(drawing.svg.matches(">TCP connect<").count(), 2);
        // The server's reset is drawn red, from the server to the device.
        let reset = drawing
            .svg
            .find(">TCP reset (RST)<")
            .expect("the reset is drawn");
        let element = &drawing.svg[drawing.svg[..reset].rfind("<a ").unwrap()..reset];
        assert!(element.contains(r#"<line class="refused""#), "{element}");
        assert!(!drawing.svg.contains("TCP close (FIN)"));
        assert!(!drawing.svg.contains("event-tcp-4"));
    }

    #[test]
    fn unframed_bytes_are_a_faint_arrow_to_their_server() {
        let (server, local, remote): (String, std::net::SocketAddr, std::net::SocketAddr) = (
            "sipserver52.".into(),
            "127.0.0.52:5060".parse().unwrap(),
            "127.0.0.1:40000".parse().unwrap(),
        );
        let events = vec![Event {
            seq: 0,
            t_ns: 0,
            kind: EventKind::TcpUnframed(crate::timeline::TcpUnframed {
                server,
                transport: Transport::Tcp,
                local,
                remote,
                why: crate::timeline::UnframedWhy::Closed,
                raw: b"OPTIONS sip:x SIP/2.0\r\n".to_vec(),
            }),
        }];
        let drawing = svg("unframed", &events, 20 * MS, 4000 * MS, 10);
        let label = drawing
            .svg
            .find(">23 unframed bytes /tcp<")
            .expect("the bytes are drawn");
        let element = &drawing.svg[drawing.svg[..label].rfind("<a ").unwrap()..label];
        assert!(element.contains(r#"<line class="conn""#), "{element}");
        assert!(
            drawing.svg.contains("127.0.0.52:5060"),
            "the server's column"
        );
    }

    /// Issue 14: keep-alives are faint arrows, a refused one ends in a faint cross; none is a
    /// request, a failover or a refusal, and none counts towards the requests drawn.
    #[test]
    fn keep_alives_are_faint_and_never_requests() {
        let keep_alive = |seq: u64, t_ms: u64, to: &str, refused: bool| Event {
            seq,
            t_ns: t_ms * MS,
            kind: EventKind::KeepAlive(crate::timeline::KeepAlive {
                server: to.into(),
                transport: Transport::Udp,
                local: "127.0.0.52:5060".parse().unwrap(),
                remote: "127.0.0.1:40000".parse().unwrap(),
                flow: crate::timeline::Flow::ToServer,
                kind: crate::timeline::KeepAliveKind::DoubleCrlf,
                refused,
                seen_ns: None,
                raw: b"\r\n\r\n".to_vec(),
            }),
        };
        let events = vec![
            received(0, 0, "sipserver114.", "c1", "INVITE", "z1"),
            keep_alive(1, 10, "sipserver52.", true),
            keep_alive(2, 20, "sipserver52.", false),
            received(3, 30, "sipserver114.", "c1", "INVITE", "z1"),
        ];
        assert_eq!(failovers(&events), BTreeSet::new());
        assert_eq!(cut(&events, 1).omitted_requests, 0);
        let drawing = svg("ka", &events, 20 * MS, 4000 * MS, 1);
        let label = drawing
            .svg
            .find(">keep-alive: double CRLF, refused<")
            .expect("the refused keep-alive is drawn");
        let element = &drawing.svg[drawing.svg[..label].rfind("<a ").unwrap()..label];
        assert!(element.contains(r#"<line class="keepalive""#), "{element}");
        assert!(drawing.svg.contains(r#"<path class="cross faint""#));
        assert!(drawing.svg.contains(">keep-alive: double CRLF<"));
        assert!(!drawing.svg.contains("ICMP port unreachable"));
        assert!(drawing.svg.contains("INVITE (retransmission)"));
    }

    #[test]
    fn a_host_stall_is_a_band_on_the_device_lifeline() {
        let events = vec![
            received(0, 0, "sipserver52.", "c1", "INVITE", "z1"),
            Event {
                seq: 1,
                t_ns: 30 * MS,
                kind: EventKind::HostStall {
                    stalled_ns: 24 * MS,
                },
            },
            received(2, 40, "sipserver114.", "c1", "INVITE", "z2"),
        ];
        let drawing = svg("stall", &events, 20 * MS, 4000 * MS, 10);
        assert_eq!(drawing.svg.matches(r#"<rect class="stall""#).count(), 1);
        assert!(
            drawing
                .svg
                .contains("did not run the reference UA for 0.024 s (until 0.030 s)"),
            "{}",
            drawing.svg
        );
    }
}
