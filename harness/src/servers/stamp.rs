//! Kernel receive timestamps (SO_TIMESTAMPNS): when a packet really arrived, independent of
//! when a task or thread of ours got around to reading it.

use std::io::{self, IoSliceMut};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::socket::{
    ControlMessageOwned, MsgFlags, SockaddrLike, SockaddrStorage, recvmsg, setsockopt, sockopt,
};
use nix::sys::time::TimeSpec;

/// Asks the kernel to stamp every packet received on `socket`.
pub fn enable(socket: &impl AsFd) -> io::Result<()> {
    setsockopt(socket, sockopt::ReceiveTimestampns, &true).map_err(io::Error::from)
}

/// Asks the kernel to say where each packet received on the IPv6 `socket` was going
/// (IPV6_PKTINFO): a raw IPv6 socket delivers no IPv6 header to read it from.
pub fn enable_destination(socket: &impl AsFd) -> io::Result<()> {
    setsockopt(socket, sockopt::Ipv6RecvPacketInfo, &true).map_err(io::Error::from)
}

/// One packet: its length, its source (for sockets that have one) and the kernel's stamp.
pub fn receive(
    socket: &impl AsRawFd,
    buf: &mut [u8],
) -> io::Result<(usize, Option<SocketAddr>, Option<SystemTime>)> {
    receive_with_destination(socket, buf).map(|(len, source, _, stamp)| (len, source, stamp))
}

/// A packet's length, source, destination (IPv6, when asked for) and kernel stamp.
pub type Received = (
    usize,
    Option<SocketAddr>,
    Option<Ipv6Addr>,
    Option<SystemTime>,
);

/// [`receive`], with the destination address when [`enable_destination`] asked for it.
pub fn receive_with_destination(socket: &impl AsRawFd, buf: &mut [u8]) -> io::Result<Received> {
    let mut control = nix::cmsg_space!(TimeSpec, nix::libc::in6_pktinfo);
    let mut iov = [IoSliceMut::new(buf)];
    let message = recvmsg::<SockaddrStorage>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut control),
        MsgFlags::empty(),
    )
    .map_err(io::Error::from)?;
    let source = message.address.as_ref().and_then(socket_addr);
    let destination = message.cmsgs().ok().and_then(|mut cmsgs| {
        cmsgs.find_map(|cmsg| match cmsg {
            ControlMessageOwned::Ipv6PacketInfo(info) => {
                Some(Ipv6Addr::from(info.ipi6_addr.s6_addr))
            }
            _ => None,
        })
    });
    let stamp = message.cmsgs().ok().and_then(|mut cmsgs| {
        cmsgs.find_map(|cmsg| match cmsg {
            ControlMessageOwned::ScmTimestampns(ts) => Some(
                UNIX_EPOCH
                    + Duration::new(
                        u64::try_from(ts.tv_sec()).ok()?,
                        u32::try_from(ts.tv_nsec()).ok()?,
                    ),
            ),
            _ => None,
        })
    });
    Ok((message.bytes, source, destination, stamp))
}

/// How long a probe waits before it reads its own datagram.
const PROBE_GAP: Duration = Duration::from_millis(2);

/// Waits (at most `limit`) until the kernel stamps packets when they arrive; whether it does.
///
/// Linux switches receive timestamps on lazily: when the first socket asks for them after none
/// did (a case's world comes up after the last one's sockets closed), a deferred work item
/// flips the switch, and until it runs a packet is stamped when it is *read*. A refusal read a
/// moment late then lands after the device's next request on the timeline, and the oracle
/// misreads the order. A datagram sent to ourselves and read [`PROBE_GAP`] later shows it:
/// stamped on arrival, its stamp is well before the read.
pub fn wait_until_live(limit: Duration) -> io::Result<bool> {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
    enable(&socket)?;
    socket.set_read_timeout(Some(Duration::from_millis(100)))?;
    let to = socket.local_addr()?;
    let started = Instant::now();
    let mut buf = [0u8; 32];
    loop {
        let sent = SystemTime::now();
        socket.send_to(b"srvlab stamp probe", to)?;
        std::thread::sleep(PROBE_GAP);
        let (_, _, stamp) = receive(&socket, &mut buf)?;
        let on_arrival = stamp.is_some_and(|at| {
            at.duration_since(sent)
                .map_or(true, |after| after < PROBE_GAP / 2)
        });
        if on_arrival {
            return Ok(true);
        }
        if started.elapsed() >= limit {
            return Ok(false);
        }
    }
}

fn socket_addr(address: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = address.as_sockaddr_in() {
        return Some(SocketAddr::from((v4.ip(), v4.port())));
    }
    let v6 = address.as_sockaddr_in6()?;
    (address.family().is_some()).then(|| SocketAddr::from((v6.ip(), v6.port())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn once_live_a_packet_carries_its_arrival_time_not_its_reading_time() {
        assert!(wait_until_live(Duration::from_secs(2)).unwrap());
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        enable(&socket).unwrap();
        let to = socket.local_addr().unwrap();
        let sent = SystemTime::now();
        socket.send_to(b"x", to).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        let mut buf = [0u8; 8];
        let (len, source, stamp) = receive(&socket, &mut buf).unwrap();
        assert_eq!((len, source), (1, Some(to)));
        let after = stamp
            .unwrap()
            .duration_since(sent)
            .unwrap_or(Duration::ZERO);
        assert!(
            after < Duration::from_millis(10),
            "stamped {after:?} after sending"
        );
    }
}
