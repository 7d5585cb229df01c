//! A server's TCP stream that records every byte it reads and writes as [`TlsBytes`]: under TLS
//! these are the records as they crossed the wire, which the capture shows (the SIP inside is
//! recorded decrypted, where it is framed).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::timeline::{EventKind, Flow, Timeline, TlsBytes};

pub struct RecordedStream {
    inner: TcpStream,
    timeline: Timeline,
    server: String,
    local: SocketAddr,
    remote: SocketAddr,
}

impl RecordedStream {
    pub fn new(
        inner: TcpStream,
        timeline: Timeline,
        server: String,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Self {
        Self {
            inner,
            timeline,
            server,
            local,
            remote,
        }
    }

    pub fn tcp(&self) -> &TcpStream {
        &self.inner
    }

    fn record(&self, flow: Flow, raw: &[u8], seen_ns: Option<u64>) {
        if raw.is_empty() {
            return;
        }
        self.timeline.record(EventKind::TlsBytes(TlsBytes {
            server: self.server.clone(),
            local: self.local,
            remote: self.remote,
            flow,
            seen_ns,
            raw: raw.to_vec(),
        }));
    }
}

impl AsyncRead for RecordedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            this.record(Flow::ToServer, &buf.filled()[before..], None);
        }
        polled
    }
}

impl AsyncWrite for RecordedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // Stamped before the write: once the kernel has the bytes the device may act on them
        // (reject a certificate, connect elsewhere) before this task gets to record them.
        let sent_ns = u64::try_from(this.timeline.elapsed().as_nanos()).ok();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(written)) = polled {
            // Only what the kernel took: the rest is offered again and recorded then.
            this.record(Flow::ToDevice, &buf[..written], sent_ns);
        }
        polled
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
