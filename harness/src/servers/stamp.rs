//! Kernel receive timestamps (SO_TIMESTAMPNS): when a packet really arrived, independent of
//! when a task or thread of ours got around to reading it.

use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::sys::socket::{
    ControlMessageOwned, MsgFlags, SockaddrLike, SockaddrStorage, recvmsg, setsockopt, sockopt,
};
use nix::sys::time::TimeSpec;

/// Asks the kernel to stamp every packet received on `socket`.
pub fn enable(socket: &impl AsFd) -> io::Result<()> {
    setsockopt(socket, sockopt::ReceiveTimestampns, &true).map_err(io::Error::from)
}

/// One packet: its length, its source (for sockets that have one) and the kernel's stamp.
pub fn receive(
    socket: &impl AsRawFd,
    buf: &mut [u8],
) -> io::Result<(usize, Option<SocketAddr>, Option<SystemTime>)> {
    let mut control = nix::cmsg_space!(TimeSpec);
    let mut iov = [IoSliceMut::new(buf)];
    let message = recvmsg::<SockaddrStorage>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut control),
        MsgFlags::empty(),
    )
    .map_err(io::Error::from)?;
    let source = message.address.as_ref().and_then(socket_addr);
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
    Ok((message.bytes, source, stamp))
}

fn socket_addr(address: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = address.as_sockaddr_in() {
        return Some(SocketAddr::from((v4.ip(), v4.port())));
    }
    let v6 = address.as_sockaddr_in6()?;
    (address.family().is_some()).then(|| SocketAddr::from((v6.ip(), v6.port())))
}
