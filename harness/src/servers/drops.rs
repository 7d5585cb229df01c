//! Datagrams the kernel dropped on a UDP socket srvlab receives on (its receive buffer was
//! full): they never reach the timeline, so the timeline says how many it missed, one note per
//! burst. For the scripted servers' sockets and the DNS server's alike (hickory owns that
//! receive loop, so the count cannot come with the datagrams).
//!
//! One mechanism for both: the socket's own drop counter (SO_MEMINFO's SK_MEMINFO_DROPS, the
//! `sk_drops` that SO_RXQ_OVFL would report), read every [`POLL`] through a duplicate of the
//! socket's descriptor. Exact, like SO_RXQ_OVFL, and it needs no datagram after the burst to
//! carry the count: a burst at the end of a case is still reported (at [`DropWatch::finish`]).

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::timeline::{EventKind, Timeline};

/// How often the counter is read; a burst ends at the first read that finds no new drop.
const POLL: Duration = Duration::from_millis(100);

/// The number of datagrams the kernel dropped on `socket` since it was made.
pub fn dropped(socket: &impl AsFd) -> io::Result<u32> {
    // The kernel fills as many of its counters as fit; the drops are the last one needed.
    let mut info = [0u32; nix::libc::SK_MEMINFO_DROPS as usize + 1];
    let mut len = std::mem::size_of_val(&info) as nix::libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes into `info`, which lives for the call,
    // and `len` back.
    let read = unsafe {
        nix::libc::getsockopt(
            socket.as_fd().as_raw_fd(),
            nix::libc::SOL_SOCKET,
            nix::libc::SO_MEMINFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if read != 0 {
        return Err(io::Error::last_os_error());
    }
    let index = nix::libc::SK_MEMINFO_DROPS as usize;
    if (len as usize) < (index + 1) * std::mem::size_of::<u32>() {
        return Err(io::Error::other("SO_MEMINFO without a drop count"));
    }
    Ok(info[index])
}

/// Watches one socket's drop counter until [`DropWatch::finish`].
pub struct DropWatch {
    shared: Arc<Mutex<Tally>>,
    task: JoinHandle<()>,
}

struct Tally {
    /// `None` once finished: the duplicate is closed with the watch, so the socket closes
    /// when its owner closes it (a refusing server's port must be really closed).
    fd: Option<OwnedFd>,
    /// What the notes call the socket: "ADDR/udp (OWNER)".
    what: String,
    timeline: Timeline,
    /// The counter at the last read.
    seen: u32,
    /// Drops of the burst under way.
    burst: u32,
}

impl Tally {
    /// Reads the counter; records the burst's note when it has ended (or `last`).
    fn read(&mut self, last: bool) {
        let Some(fd) = &self.fd else { return };
        let Ok(now) = dropped(fd) else { return };
        let new = now.wrapping_sub(self.seen);
        self.seen = now;
        self.burst += new;
        if self.burst > 0 && (new == 0 || last) {
            self.timeline.record(EventKind::Note {
                text: format!(
                    "the kernel dropped {} datagram(s) to {}: its receive buffer was full; they are not on the timeline",
                    self.burst, self.what
                ),
            });
            self.burst = 0;
        }
    }
}

impl DropWatch {
    /// Watches `socket` (bound to `addr`, received on by `owner`: a server's name, or "dns").
    /// Needs a Tokio runtime.
    pub fn start(
        socket: &impl AsFd,
        addr: SocketAddr,
        owner: &str,
        timeline: Timeline,
    ) -> io::Result<Self> {
        let fd = socket.as_fd().try_clone_to_owned()?;
        let seen = dropped(&fd)?;
        let shared = Arc::new(Mutex::new(Tally {
            fd: Some(fd),
            what: format!("{addr}/udp ({owner})"),
            timeline,
            seen,
            burst: 0,
        }));
        let polled = shared.clone();
        let task = tokio::spawn(async move {
            let mut every = tokio::time::interval(POLL);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                let mut tally = polled.lock().unwrap_or_else(|p| p.into_inner());
                if tally.fd.is_none() {
                    return;
                }
                tally.read(false);
            }
        });
        Ok(Self { shared, task })
    }

    /// A last read (a burst under way is reported), then the duplicate descriptor is closed.
    pub fn finish(self) {
        let mut tally = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        tally.read(true);
        tally.fd = None;
    }
}

impl Drop for DropWatch {
    fn drop(&mut self) {
        self.task.abort();
        // Without `finish` (a world torn down on an error) the duplicate still closes now.
        self.shared.lock().unwrap_or_else(|p| p.into_inner()).fd = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    fn notes(timeline: &Timeline) -> Vec<String> {
        timeline
            .events()
            .into_iter()
            .filter_map(|e| match e.kind {
                EventKind::Note { text } => Some(text),
                _ => None,
            })
            .collect()
    }

    /// The count in "dropped N datagram(s)".
    fn count(note: &str) -> u32 {
        let rest = note.split("dropped ").nth(1).unwrap();
        rest.split(' ').next().unwrap().parse().unwrap()
    }

    #[tokio::test]
    async fn a_burst_into_a_full_buffer_is_one_note_with_the_kernels_count() {
        let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket2::SockRef::from(&receiver)
            .set_recv_buffer_size(4096)
            .unwrap();
        let addr = receiver.local_addr().unwrap();
        let timeline = Timeline::new();
        let watch = DropWatch::start(&receiver, addr, "test", timeline.clone()).unwrap();
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        let sent = 500;
        for _ in 0..sent {
            sender.send_to(b"flood", addr).unwrap();
        }
        // Nobody reads: the buffer holds a few, the kernel drops the rest.
        tokio::time::sleep(POLL * 3).await;
        receiver.set_nonblocking(true).unwrap();
        let mut received = 0;
        let mut buf = [0u8; 16];
        while receiver.recv_from(&mut buf).is_ok() {
            received += 1;
        }
        let kernel = dropped(&receiver).unwrap();
        watch.finish();
        let notes = notes(&timeline);
        assert_eq!(notes.len(), 1, "one burst, one note: {notes:?}");
        assert_eq!(
            notes[0],
            format!(
                "the kernel dropped {kernel} datagram(s) to {addr}/udp (test): its receive buffer was full; they are not on the timeline"
            )
        );
        assert!(kernel > 0);
        assert_eq!(
            count(&notes[0]) + received,
            sent,
            "every datagram accounted for"
        );
    }

    #[tokio::test]
    async fn a_burst_at_the_end_is_reported_when_the_watch_finishes_and_the_socket_closes() {
        let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket2::SockRef::from(&receiver)
            .set_recv_buffer_size(4096)
            .unwrap();
        let addr = receiver.local_addr().unwrap();
        let timeline = Timeline::new();
        let watch = DropWatch::start(&receiver, addr, "test", timeline.clone()).unwrap();
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        for _ in 0..200 {
            sender.send_to(b"flood", addr).unwrap();
        }
        watch.finish(); // before any poll
        let notes = notes(&timeline);
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert_eq!(count(&notes[0]), dropped(&receiver).unwrap());
        // The duplicate is closed: closing the socket frees the port at once.
        drop(receiver);
        UdpSocket::bind(addr).expect("the port is free again");
    }
}
