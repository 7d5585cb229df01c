//! F6 (MUST, a row srvlab proposes): a certificate the device cannot trust fails the attempt —
//! no request goes over a TLS connection whose server presented one. RFC 3261 §26.3.1 and RFC
//! 5922 §7.2: a sips client validates the server's certificate and that it names the SRV
//! target. Judged on the servers a case makes present such a certificate (`tls: {fail:
//! bad_certificate}`: self-signed; `wrong_name`: the trusted CA's, for another name).

use serde_json::json;

use super::Context;
use super::measure::secs;
use super::verdict::{Level, Status, Verdict};
use crate::model::case::TlsFailure;
use crate::timeline::{EventKind, Transport};

/// What is wrong with the certificate `server` presents, if the case made it wrong.
fn wrong_certificate(ctx: &Context, server: &str) -> Option<&'static str> {
    let spec = ctx.servers.iter().find(|s| s.host.to_ascii() == server)?;
    match spec.tls.fail? {
        TlsFailure::BadCertificate => Some("a self-signed certificate"),
        TlsFailure::WrongName => Some(
            "a certificate of the trusted CA for another name (wrong-name.invalid), not for it",
        ),
        TlsFailure::HandshakeStall | TlsFailure::NoSharedCipher => None,
    }
}

pub fn f6(ctx: &Context) -> Verdict {
    let level = Level::Must;
    let mut connections = 0usize;
    let mut evidence = Vec::new();
    let mut bad: Vec<(String, u64)> = Vec::new();
    for event in ctx.events {
        match &event.kind {
            EventKind::TcpConnected(c) if wrong_certificate(ctx, &c.server).is_some() => {
                connections += 1;
                evidence.push(event.seq);
            }
            EventKind::TlsFailed(f) if wrong_certificate(ctx, &f.server).is_some() => {
                evidence.push(event.seq);
            }
            EventKind::SipReceived(m) if m.transport == Transport::Tls => {
                let Some(what) = wrong_certificate(ctx, &m.server) else {
                    continue;
                };
                if m.summary.method.is_some() {
                    bad.push((
                        format!(
                            "{} went over TLS to {} {} at {} although the server presented {what}: the device did not verify the certificate",
                            m.summary.method.as_deref().unwrap_or("a request"),
                            m.server,
                            m.local,
                            secs(event.happened_ns())
                        ),
                        event.seq,
                    ));
                }
            }
            _ => {}
        }
    }
    let figures = json!({"connections": connections, "requests_over_them": bad.len()});
    if let Some((sentence, _)) = bad.first() {
        return Verdict::new(
            "F6",
            level,
            Verdict::violation(level),
            format!("{sentence} ({} request(s) in all)", bad.len()),
        )
        .with_evidence(bad.iter().map(|(_, seq)| *seq).collect())
        .with_figures(figures);
    }
    if connections == 0 {
        return Verdict::new(
            "F6",
            level,
            Status::Inconclusive,
            "the device never connected to a server presenting a certificate it must reject",
        )
        .with_figures(figures);
    }
    Verdict::new(
        "F6",
        level,
        Status::Pass,
        format!(
            "{connections} TLS connection(s) to servers presenting a certificate the device must reject (self-signed, or for another name) carried no request"
        ),
    )
    .with_evidence(evidence)
    .with_figures(figures)
}
