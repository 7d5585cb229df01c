//! The DNS server's sockets, read by srvlab rather than by hickory's `Server`. hickory decodes
//! a message before any handler sees it, and what it cannot decode it drops or answers FORMERR
//! unseen (`ServerContext::handle_request`, private, behind sockets it takes whole). Here
//! every datagram and every framed TCP message goes to [`ObservedHandler::handle`] as it came;
//! a TCP connection that ends inside a message leaves its bytes on the timeline too. TCP
//! connections are bounded as hickory bounds them, by an idle timeout, and beyond it by a cap
//! on how many are open; each limit leaves a note on the timeline when it bites.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use super::handler::ObservedHandler;
use crate::timeline::Transport;

/// How long a listener waits after a socket error (out of file descriptors, say) before it
/// tries again: while the error lasts, each try fails at once.
const RETRY_AFTER: Duration = Duration::from_millis(50);

/// A listener's socket errors, noted once per run of the same error (it may repeat every
/// few milliseconds).
#[derive(Default)]
struct Failing(Option<String>);

impl Failing {
    async fn failed(&mut self, handler: &ObservedHandler, what: &str, err: io::Error) {
        let text = err.to_string();
        if self.0.as_ref() != Some(&text) {
            handler.note(format!("dns: cannot {what} on {}: {text}", handler.local));
            self.0 = Some(text);
        }
        tokio::time::sleep(RETRY_AFTER).await;
    }

    fn recovered(&mut self) {
        self.0 = None;
    }
}

/// Where an answer goes: back out of the UDP socket the query came in on, or onto its TCP
/// connection.
pub(crate) enum Reply<'a> {
    Udp {
        socket: &'a UdpSocket,
        to: SocketAddr,
    },
    Tcp {
        stream: &'a mut TcpStream,
        /// A client that takes none of the answer for this long is given up.
        within: Duration,
    },
    /// Kept, not sent: the server driven without sockets ([`super::InProcess`]).
    Memory { sent: &'a mut Option<Vec<u8>> },
}

impl Reply<'_> {
    pub async fn send(self, raw: &[u8]) -> io::Result<()> {
        match self {
            Self::Udp { socket, to } => socket.send_to(raw, to).await.map(drop),
            Self::Memory { sent } => {
                *sent = Some(raw.to_vec());
                Ok(())
            }
            Self::Tcp { stream, within } => {
                // RFC 1035 §4.2.2: the length, then the message, in one write. An answer is at
                // most 65,535 bytes (the handler fits it to that).
                let length = u16::try_from(raw.len()).unwrap_or(u16::MAX);
                let mut framed = Vec::with_capacity(2 + raw.len());
                framed.extend_from_slice(&length.to_be_bytes());
                framed.extend_from_slice(&raw[..usize::from(length)]);
                tokio::time::timeout(within, stream.write_all(&framed))
                    .await
                    .map_err(|_| {
                        io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!("the client did not take it within {within:?}"),
                        )
                    })?
            }
        }
    }
}

/// Reads datagrams until the task is aborted; each is handled on a task of its own, as hickory
/// does.
pub(crate) async fn serve_udp(socket: UdpSocket, handler: Arc<ObservedHandler>) {
    let socket = Arc::new(socket);
    let mut answering = JoinSet::new();
    // The largest UDP payload there is.
    let mut buf = vec![0; 65_535];
    let mut failing = Failing::default();
    loop {
        let (len, client) = match socket.recv_from(&mut buf).await {
            Ok(received) => {
                failing.recovered();
                received
            }
            Err(err) => {
                failing.failed(&handler, "receive udp", err).await;
                continue;
            }
        };
        if !answerable(client) {
            handler.note(format!(
                "dns: {len} bytes over udp from {client}, an address no answer can go to: not answered"
            ));
            continue;
        }
        let bytes = buf[..len].to_vec();
        let socket = socket.clone();
        let handler = handler.clone();
        answering.spawn(async move {
            let reply = Reply::Udp {
                socket: &socket,
                to: client,
            };
            // A failed send is on the timeline already; the next datagram is another client's.
            let _ = handler.handle(bytes, client, Transport::Udp, reply).await;
        });
        while answering.try_join_next().is_some() {}
    }
}

/// Accepts connections until the task is aborted; each is served on a task of its own while it
/// holds one of `open`'s permits. A connection that finds none is reset at once.
pub(crate) async fn serve_tcp(
    listener: TcpListener,
    handler: Arc<ObservedHandler>,
    open: Arc<Semaphore>,
) {
    let mut connections = JoinSet::new();
    let mut failing = Failing::default();
    loop {
        let (stream, client) = match listener.accept().await {
            Ok(accepted) => {
                failing.recovered();
                accepted
            }
            Err(err) => {
                failing
                    .failed(&handler, "accept tcp connections", err)
                    .await;
                continue;
            }
        };
        if !answerable(client) {
            continue;
        }
        let Ok(permit) = open.clone().try_acquire_owned() else {
            handler.note(format!(
                "dns: reset the tcp connection from {client} to {} at once: {} connections are open, the most the server allows",
                handler.local, handler.shared.limits.tcp_connections
            ));
            // RST, not FIN: the client learns at once, and no TIME_WAIT is left here.
            let _ = stream.set_zero_linger();
            continue;
        };
        connections.spawn(serve_connection(stream, client, handler.clone(), permit));
        while connections.try_join_next().is_some() {}
    }
}

/// One connection: messages one after another (RFC 7766 §6.2.1.1 allows answering in order),
/// until the client closes it, sends no whole message for the idle time, or cannot be written
/// to.
async fn serve_connection(
    mut stream: TcpStream,
    client: SocketAddr,
    handler: Arc<ObservedHandler>,
    _open: OwnedSemaphorePermit,
) {
    let idle = handler.shared.limits.tcp_idle;
    // Bytes that came and are not a whole message yet (length prefix included).
    let mut pending = Vec::new();
    loop {
        match tokio::time::timeout(idle, next_message(&mut stream, &mut pending)).await {
            Ok(Ok(Some(message))) => {
                let reply = Reply::Tcp {
                    stream: &mut stream,
                    within: idle,
                };
                if handler
                    .handle(message, client, Transport::Tcp, reply)
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Ok(Ok(None)) => return,
            Ok(Err(err)) => {
                if !pending.is_empty() {
                    let mut reason = format!("the connection ended {}", inside(&pending));
                    if err.kind() != io::ErrorKind::UnexpectedEof {
                        reason.push_str(&format!(" ({err})"));
                    }
                    handler.cut_short(client, reason, pending);
                }
                return;
            }
            Err(_) => {
                handler.note(format!(
                    "dns: closed the tcp connection from {client} to {}: no whole query for {idle:?}",
                    handler.local
                ));
                if !pending.is_empty() {
                    let reason = format!("closed for idling {}", inside(&pending));
                    handler.cut_short(client, reason, pending);
                }
                return;
            }
        }
    }
}

/// The next whole message on the connection (without its length prefix); `None` when the
/// client closed it between messages. What came of a message not yet whole stays in
/// `pending`, also when the future is dropped.
async fn next_message(
    stream: &mut TcpStream,
    pending: &mut Vec<u8>,
) -> io::Result<Option<Vec<u8>>> {
    let mut chunk = [0; 4096];
    loop {
        if let [high, low, ..] = pending[..] {
            let whole = 2 + usize::from(u16::from_be_bytes([high, low]));
            if pending.len() >= whole {
                let rest = pending.split_off(whole);
                let framed = std::mem::replace(pending, rest);
                return Ok(Some(framed[2..].to_vec()));
            }
        }
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            return if pending.is_empty() {
                Ok(None)
            } else {
                Err(io::ErrorKind::UnexpectedEof.into())
            };
        }
        pending.extend_from_slice(&chunk[..read]);
    }
}

/// Where in a message `pending` stopped, for the reason of a cut-short message.
fn inside(pending: &[u8]) -> String {
    match pending {
        [high, low, body @ ..] => format!(
            "after {} of the {} bytes its length prefix announced",
            body.len(),
            u16::from_be_bytes([*high, *low])
        ),
        _ => "inside a message's two-byte length prefix".into(),
    }
}

/// hickory's rule (`sanitize_src_address`): no answer to port 0, an unspecified address or
/// the IPv4 broadcast address.
fn answerable(client: SocketAddr) -> bool {
    client.port() != 0
        && match client.ip() {
            IpAddr::V4(v4) => !v4.is_unspecified() && !v4.is_broadcast(),
            IpAddr::V6(v6) => !v6.is_unspecified(),
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn where_a_message_stopped() {
        assert_eq!(inside(&[0]), "inside a message's two-byte length prefix");
        assert_eq!(
            inside(&[0, 40, 1, 2, 3]),
            "after 3 of the 40 bytes its length prefix announced"
        );
    }

    #[test]
    fn no_answer_goes_where_it_cannot_arrive() {
        assert!(answerable("127.0.91.2:5353".parse().unwrap()));
        assert!(answerable("[::1]:5353".parse().unwrap()));
        for address in [
            "127.0.91.2:0",
            "0.0.0.0:53",
            "255.255.255.255:53",
            "[::]:53",
        ] {
            assert!(!answerable(address.parse().unwrap()), "{address}");
        }
    }
}
