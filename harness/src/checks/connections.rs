//! T7 (INFO, a row srvlab proposes): whether the device sends its requests to a target over a
//! TCP or TLS connection it already has open to it, or opens a new one. RFC 3261 §18 keeps
//! connections open for the responses and lets a client reuse them; RFC 5923 asks the same of
//! TLS. Never a verdict: a device that opens a connection per transaction is not wrong, but
//! a lab sees the extra handshakes (and, over TLS, the extra certificate checks) it costs.
//!
//! Each request the device sent over TCP/TLS is put on the connection that carried it (the
//! server address and the device's port). It either went over a connection that carried an
//! earlier request (reused), or over a new connection although another one to the same target
//! was still open (a new one while one was open), or over the first connection to that target
//! (or one opened after the others closed).

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde_json::json;

use super::Context;
use super::verdict::{Level, Status, Verdict};
use crate::timeline::{EventKind, Transport};

/// One connection from the device, by server and device address.
#[derive(Debug)]
struct Connection {
    opened_ns: u64,
    closed_ns: Option<u64>,
    requests: usize,
}

pub fn t7(ctx: &Context) -> Verdict {
    let level = Level::Info;
    let mut connections: BTreeMap<(SocketAddr, SocketAddr), Vec<Connection>> = BTreeMap::new();
    // (target, transport) → requests, reused, new while one was open, opened afresh.
    let mut targets: BTreeMap<(SocketAddr, String), [usize; 4]> = BTreeMap::new();
    let mut evidence = Vec::new();
    let mut ordered: Vec<_> = ctx.events.iter().collect();
    ordered.sort_by_key(|e| (e.happened_ns(), e.seq));
    for event in ordered {
        let t = event.happened_ns();
        match &event.kind {
            EventKind::TcpConnected(c) => {
                connections
                    .entry((c.local, c.remote))
                    .or_default()
                    .push(Connection {
                        opened_ns: t,
                        closed_ns: None,
                        requests: 0,
                    });
            }
            EventKind::TcpClosed(c) => {
                if let Some(last) = connections
                    .get_mut(&(c.local, c.remote))
                    .and_then(|all| all.last_mut())
                {
                    last.closed_ns.get_or_insert(t);
                }
            }
            EventKind::SipReceived(message)
                if message.transport != Transport::Udp
                    && message
                        .summary
                        .method
                        .as_deref()
                        .is_some_and(|m| m != "ACK") =>
            {
                // Another connection to the same server open when this one was opened.
                let Some(opened_ns) = connections
                    .get(&(message.local, message.remote))
                    .and_then(|all| all.last())
                    .map(|c| c.opened_ns)
                else {
                    continue;
                };
                let other_open = connections.iter().any(|((local, remote), all)| {
                    *local == message.local
                        && *remote != message.remote
                        && all.iter().any(|c| {
                            c.requests > 0
                                && c.opened_ns < opened_ns
                                && c.closed_ns.is_none_or(|closed| closed > opened_ns)
                        })
                });
                let Some(this) = connections
                    .get_mut(&(message.local, message.remote))
                    .and_then(|all| all.last_mut())
                else {
                    continue;
                };
                let counts = targets
                    .entry((message.local, message.transport.to_string()))
                    .or_default();
                counts[0] += 1;
                let slot = match (this.requests, other_open) {
                    (0, true) => 2,
                    (0, false) => 3,
                    _ => 1,
                };
                counts[slot] += 1;
                this.requests += 1;
                evidence.push(event.seq);
            }
            _ => {}
        }
    }
    let total = |slot: usize| targets.values().map(|c| c[slot]).sum::<usize>();
    let (requests, reused, fresh_while_open) = (total(0), total(1), total(2));
    let connections_used = total(2) + total(3);
    let per_target: Vec<_> = targets
        .iter()
        .map(|((address, transport), c)| {
            json!({"target": address.to_string(), "transport": transport,
                "requests": c[0], "reused": c[1], "new_while_open": c[2], "connections": c[2] + c[3]})
        })
        .collect();
    let figures = json!({"requests": requests, "connections": connections_used,
        "reused": reused, "new_while_open": fresh_while_open, "targets": per_target});
    // Only a second request to a target can show reuse.
    if requests <= targets.len() {
        return Verdict::new(
            "T7",
            level,
            Status::Inconclusive,
            match requests {
                0 => "no request went over TCP or TLS".to_owned(),
                _ => format!(
                    "{requests} request(s) over TCP/TLS, none a second one to the same target: reuse was never exercised"
                ),
            },
        )
        .with_figures(figures);
    }
    let sentence = format!(
        "{requests} request(s) over TCP/TLS to {} target(s) went over {connections_used} connection(s): {reused} reused an open connection, {fresh_while_open} opened a new one while one to the same target was open",
        targets.len()
    );
    Verdict::new("T7", level, Status::Info, sentence)
        .with_evidence(evidence)
        .with_figures(figures)
}
