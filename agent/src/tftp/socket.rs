//! UDP plumbing: the listening socket that learns each request's destination address (IP_PKTINFO) and per-transfer sockets bound to it.

use std::io::{self, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::os::fd::AsRawFd;

use nix::sys::socket::{self, ControlMessageOwned, MsgFlags, SockaddrStorage, sockopt};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// A received request and the local address it reached.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Received {
    /// Bytes in the buffer.
    pub len: usize,
    /// The client's address and port (its TID).
    pub peer: SocketAddr,
    /// The address the datagram was sent to, with the interface for IPv6
    /// link-local scopes; replies are sent from it.
    pub local: SocketAddr,
}

/// The listening socket.
#[derive(Debug)]
pub(crate) struct Listener {
    sock: UdpSocket,
    bound: SocketAddr,
}

impl Listener {
    /// Binds `addr` and asks the kernel for each datagram's destination
    /// address (IP_PKTINFO / IPV6_RECVPKTINFO). This serves every address
    /// of the host from one socket, including ones added later, where one
    /// socket per address would need to track interface changes.
    pub fn bind(addr: SocketAddr) -> io::Result<Listener> {
        let std_sock = std::net::UdpSocket::bind(addr)?;
        std_sock.set_nonblocking(true)?;
        match addr {
            SocketAddr::V4(_) => socket::setsockopt(&std_sock, sockopt::Ipv4PacketInfo, &true)?,
            // On a dual-stack socket Linux reports IPv4 destinations as
            // v4-mapped addresses through the IPv6 option.
            SocketAddr::V6(_) => socket::setsockopt(&std_sock, sockopt::Ipv6RecvPacketInfo, &true)?,
        }
        let bound = std_sock.local_addr()?;
        Ok(Listener {
            sock: UdpSocket::from_std(std_sock)?,
            bound,
        })
    }

    /// The bound address (with the real port when 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.bound
    }

    /// Receives one datagram. Truncated datagrams are reported with a
    /// length past the buffer so the caller can drop them.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<Received> {
        let fallback = self.bound;
        self.sock
            .async_io(Interest::READABLE, || {
                recv_pktinfo(self.sock.as_raw_fd(), buf, fallback)
            })
            .await
    }
}

fn recv_pktinfo(fd: i32, buf: &mut [u8], fallback: SocketAddr) -> io::Result<Received> {
    let mut cmsg = nix::cmsg_space!(libc_in6_pktinfo);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = socket::recvmsg::<SockaddrStorage>(fd, &mut iov, Some(&mut cmsg), MsgFlags::empty())
        .map_err(io::Error::from)?;
    let peer = msg
        .address
        .as_ref()
        .and_then(storage_to_std)
        .ok_or_else(|| io::Error::other("datagram without a source address"))?;
    let mut local = SocketAddr::new(fallback.ip(), 0);
    for c in msg.cmsgs().map_err(io::Error::from)? {
        match c {
            ControlMessageOwned::Ipv4PacketInfo(info) => {
                let ip = Ipv4Addr::from(u32::from_be(info.ipi_addr.s_addr));
                local = SocketAddr::new(IpAddr::V4(ip), 0);
            }
            ControlMessageOwned::Ipv6PacketInfo(info) => {
                let ip = Ipv6Addr::from(info.ipi6_addr.s6_addr);
                local = SocketAddr::V6(SocketAddrV6::new(ip, 0, 0, info.ipi6_ifindex));
            }
            _ => {}
        }
    }
    let len = if msg.flags.contains(MsgFlags::MSG_TRUNC) {
        usize::MAX
    } else {
        msg.bytes
    };
    Ok(Received { len, peer, local })
}

/// Only used to size the control buffer for the larger of the two infos.
#[allow(non_camel_case_types)]
type libc_in6_pktinfo = nix::libc::in6_pktinfo;

fn storage_to_std(s: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = s.as_sockaddr_in() {
        return Some(SocketAddr::from((v4.ip(), v4.port())));
    }
    s.as_sockaddr_in6().map(|v6| {
        SocketAddr::V6(SocketAddrV6::new(
            v6.ip(),
            v6.port(),
            v6.flowinfo(),
            v6.scope_id(),
        ))
    })
}

/// Folds v4-mapped IPv6 addresses (from a dual-stack listener) to IPv4 so
/// a reply socket can be a plain IPv4 socket.
pub(crate) fn unmap(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None => addr,
        },
        v4 => v4,
    }
}

/// A fresh socket for one transfer: bound to the address the request
/// reached with a new ephemeral port, the server's TID (RFC 1350 §4), and
/// connected to the client's TID so the kernel drops anyone else's packets.
pub(crate) async fn reply_socket(local: SocketAddr, peer: SocketAddr) -> io::Result<UdpSocket> {
    let (local, peer) = (unmap(local), unmap(peer));
    let mut bind = local;
    bind.set_port(0);
    let sock = UdpSocket::bind(bind).await?;
    sock.connect(peer).await?;
    Ok(sock)
}

/// Sends one packet from a throwaway socket on the local address, for
/// refusals the listener answers itself without starting a transfer.
pub(crate) fn reply_once(local: SocketAddr, peer: SocketAddr, pkt: &[u8]) -> io::Result<()> {
    let (mut local, peer) = (unmap(local), unmap(peer));
    local.set_port(0);
    let sock = std::net::UdpSocket::bind(local)?;
    sock.set_nonblocking(true)?;
    sock.send_to(pkt, peer)?;
    Ok(())
}

/// Largest UDP payload one GSO send may carry: the IPv4 datagram limit
/// (65535 minus IP and UDP headers), rounded down for safety.
pub(crate) const GSO_MAX_BYTES: usize = 65_000;
/// Segments per GSO send; Linux caps it at 64 (UDP_MAX_SEGMENTS).
pub(crate) const GSO_MAX_SEGMENTS: usize = 64;

/// Sends `buf` as consecutive datagrams of `segment` bytes (the last may be
/// shorter) in one call, using UDP generic segmentation offload (Linux
/// 4.18+, UDP_SEGMENT). A window of small blocks then costs one pass
/// through the stack instead of one per block.
pub(crate) async fn send_segments(sock: &UdpSocket, buf: &[u8], segment: u16) -> io::Result<()> {
    use nix::sys::socket::{ControlMessage, SockaddrIn};
    let iov = [std::io::IoSlice::new(buf)];
    let cmsg = [ControlMessage::UdpGsoSegments(&segment)];
    sock.async_io(Interest::WRITABLE, || {
        // The socket is connected: no destination address.
        socket::sendmsg::<SockaddrIn>(sock.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), None)
            .map_err(io::Error::from)
    })
    .await
    .map(drop)
}

/// Whether a failed GSO send means "not supported here" (old kernel, or a
/// device without checksum offload) rather than a real error.
pub(crate) fn gso_unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(nix::libc::EIO | nix::libc::EINVAL | nix::libc::ENOPROTOOPT | nix::libc::EOPNOTSUPP)
    )
}
