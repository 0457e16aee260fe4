//! The sandbox's network namespace: loopback up and an optional bridge for
//! sibling containers. No veth or route leads out of it, so there is no
//! egress and no host port (the server's included) is reachable.
//!
//! Done with `ioctl`s on a datagram socket rather than netlink: the four
//! operations needed (create bridge, set flags, set address, set netmask)
//! have stable ioctls and need no extra crate.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use crate::error::{Error, Result};
use crate::spec::{Bridge, Veth};

const SIOCBRADDBR: libc::c_ulong = 0x89a0;

fn ifreq(name: &str) -> libc::ifreq {
    // SAFETY: ifreq is plain data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req
        .ifr_name
        .iter_mut()
        .zip(name.bytes().take(libc::IFNAMSIZ - 1))
    {
        *dst = src as libc::c_char;
    }
    req
}

fn socket() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fresh descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn ioctl(sock: &OwnedFd, req: libc::c_ulong, arg: *mut libc::c_void) -> io::Result<()> {
    // SAFETY: callers pass a pointer to the structure `req` expects.
    if unsafe { libc::ioctl(sock.as_raw_fd(), req as _, arg) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn set_up(sock: &OwnedFd, name: &str) -> io::Result<()> {
    let mut req = ifreq(name);
    ioctl(sock, libc::SIOCGIFFLAGS, &mut req as *mut _ as *mut _)?;
    // SAFETY: the flags member is the one SIOCGIFFLAGS filled.
    unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    ioctl(sock, libc::SIOCSIFFLAGS, &mut req as *mut _ as *mut _)
}

fn sockaddr_in(addr: [u8; 4]) -> libc::sockaddr {
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(addr),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: sockaddr_in and sockaddr have the same size and sockaddr is plain data.
    unsafe { std::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(sin) }
}

/// Runs inside the sandbox's fresh network namespace.
pub fn setup(bridge: Option<&Bridge>) -> Result<()> {
    let sock = socket().map_err(Error::sys("open socket for interface setup"))?;
    set_up(&sock, "lo").map_err(Error::sys("bring loopback up"))?;
    if let Some(b) = bridge {
        add_bridge(&sock, b)?;
    }
    Ok(())
}

fn add_bridge(sock: &OwnedFd, b: &Bridge) -> Result<()> {
    let mut name = ifreq(&b.name);
    ioctl(sock, SIOCBRADDBR, name.ifr_name.as_mut_ptr() as *mut _)
        .map_err(Error::sys("create bridge"))?;
    set_address(sock, &b.name, b.address, b.prefix_len)
        .map_err(Error::sys("set bridge address"))?;
    set_up(sock, &b.name).map_err(Error::sys("bring bridge up"))
}

/// Adds (`Some`) or removes (`None`, by name) a bridge in the network
/// namespace of the process behind `pidfd`, from a short-lived thread as
/// [`connect_in`] does: a user-defined network of a node's containers.
pub fn bridge_in(pidfd: BorrowedFd<'_>, add: Option<&Bridge>, name: &str) -> Result<()> {
    std::thread::scope(|s| {
        s.spawn(move || {
            crate::sys::setns_pidfd(pidfd, libc::CLONE_NEWNET)
                .map_err(Error::sys("join the network namespace"))?;
            let sock = socket().map_err(Error::sys("open socket for interface setup"))?;
            match add {
                Some(b) => add_bridge(&sock, b),
                None => {
                    let mut req = ifreq(name);
                    // Down first: a bridge that is up cannot be deleted.
                    if ioctl(&sock, libc::SIOCGIFFLAGS, &mut req as *mut _ as *mut _).is_ok() {
                        // SAFETY: the flags member SIOCGIFFLAGS filled.
                        unsafe { req.ifr_ifru.ifru_flags &= !(libc::IFF_UP as libc::c_short) };
                        let _ = ioctl(&sock, libc::SIOCSIFFLAGS, &mut req as *mut _ as *mut _);
                    }
                    let mut del = ifreq(name);
                    ioctl(&sock, SIOCBRDELBR, del.ifr_name.as_mut_ptr() as *mut _)
                        .map_err(Error::sys("delete bridge"))
                }
            }
        })
        .join()
        .unwrap_or_else(|_| Err(Error::sys("bridge thread")(io::Error::other("panicked"))))
    })
}

const SIOCBRDELBR: libc::c_ulong = 0x89a1;

/// Opens a TCP connection from inside the network namespace of the process
/// behind `pidfd`.
///
/// `setns(CLONE_NEWNET)` changes only the calling thread, so a short-lived
/// thread joins the namespace, connects and ends; the socket keeps the
/// namespace it was created in, and no other thread of the caller (a tokio
/// server) ever leaves the host's network. Only the network namespace is
/// joined: the thread stays host root in the host's user namespace, which
/// is what lets it join without forking, and it runs nothing but
/// `socket` and `connect`.
pub fn connect_in(
    pidfd: BorrowedFd<'_>,
    addr: std::net::SocketAddr,
    timeout: std::time::Duration,
) -> io::Result<std::net::TcpStream> {
    in_netns(pidfd, || {
        std::net::TcpStream::connect_timeout(&addr, timeout)
    })
}

/// Binds a TCP listener inside the network namespace of the process
/// behind `pidfd` (a port published on a node), the same way
/// [`connect_in`] connects: from a short-lived thread.
pub fn listen_in(
    pidfd: BorrowedFd<'_>,
    addr: std::net::SocketAddr,
) -> io::Result<std::net::TcpListener> {
    in_netns(pidfd, || std::net::TcpListener::bind(addr))
}

/// Binds a UDP socket inside the network namespace of the process behind
/// `pidfd` (a DNS server on a node's bridge), as [`listen_in`] does.
pub fn bind_udp_in(
    pidfd: BorrowedFd<'_>,
    addr: std::net::SocketAddr,
) -> io::Result<std::net::UdpSocket> {
    in_netns(pidfd, || std::net::UdpSocket::bind(addr))
}

/// Runs `open` (which makes one socket) on a short-lived thread that has
/// joined the network namespace of the process behind `pidfd`.
fn in_netns<T: Send>(
    pidfd: BorrowedFd<'_>,
    open: impl FnOnce() -> io::Result<T> + Send,
) -> io::Result<T> {
    std::thread::scope(|s| {
        s.spawn(move || {
            crate::sys::setns_pidfd(pidfd, libc::CLONE_NEWNET)?;
            open()
        })
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("socket thread panicked")))
    })
}

/// Plugs a sibling into its node's bridge: a veth pair whose node end
/// (`host_name`) joins `veth.bridge` and whose other end becomes `eth0`
/// in the sibling's network namespace, with its address and a default
/// route through the bridge.
///
/// Runs in the create helper after it joined the node's user namespace,
/// which owns both network namespaces; the helper is single-threaded, so
/// moving itself between them with `setns` touches nothing else.
pub fn plug(
    node_netns: &OwnedFd,
    sibling_netns: &OwnedFd,
    host_name: &str,
    veth: &Veth,
) -> Result<()> {
    let enter = |ns: &OwnedFd| {
        // SAFETY: plain syscall with a namespace descriptor.
        crate::sys::check(unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) })
            .map_err(Error::sys("join a network namespace"))
    };
    enter(node_netns)?;
    // The MAC follows from the address, as Docker makes it: a neighbour
    // that cached the address of a container gone since still reaches the
    // next one given it, where a random MAC left it pinging the old one
    // until its ARP entry expired.
    let [a, b, c, d] = veth.address;
    let mac = [0x02, 0x42, a, b, c, d];
    netlink_new_veth(host_name, "eth0", sibling_netns, mac)
        .map_err(Error::sys("create veth pair"))?;
    let sock = socket().map_err(Error::sys("open socket for interface setup"))?;
    let index = if_index(&sock, host_name).map_err(Error::sys("find the veth"))?;
    let mut req = ifreq(&veth.bridge);
    req.ifr_ifru.ifru_ifindex = index;
    ioctl(&sock, SIOCBRADDIF, &mut req as *mut _ as *mut _)
        .map_err(Error::sys("attach the veth to the bridge"))?;
    set_up(&sock, host_name).map_err(Error::sys("bring the veth up"))?;
    enter(sibling_netns)?;
    let sock = socket().map_err(Error::sys("open socket for interface setup"))?;
    set_address(&sock, "eth0", veth.address, veth.prefix_len)
        .map_err(Error::sys("set the container's address"))?;
    set_up(&sock, "eth0").map_err(Error::sys("bring eth0 up"))?;
    // SAFETY: rtentry is plain data; all-zero is a valid value.
    let mut route: libc::rtentry = unsafe { std::mem::zeroed() };
    route.rt_dst = sockaddr_in([0, 0, 0, 0]);
    route.rt_genmask = sockaddr_in([0, 0, 0, 0]);
    route.rt_gateway = sockaddr_in(veth.gateway);
    route.rt_flags = libc::RTF_UP | libc::RTF_GATEWAY;
    ioctl(&sock, libc::SIOCADDRT, &mut route as *mut _ as *mut _)
        .map_err(Error::sys("add the default route"))
}

const SIOCBRADDIF: libc::c_ulong = 0x89a2;

fn if_index(sock: &OwnedFd, name: &str) -> io::Result<libc::c_int> {
    let mut req = ifreq(name);
    ioctl(sock, libc::SIOCGIFINDEX, &mut req as *mut _ as *mut _)?;
    // SAFETY: the member SIOCGIFINDEX filled.
    Ok(unsafe { req.ifr_ifru.ifru_ifindex })
}

fn set_address(sock: &OwnedFd, name: &str, address: [u8; 4], prefix_len: u8) -> io::Result<()> {
    let mut req = ifreq(name);
    req.ifr_ifru.ifru_addr = sockaddr_in(address);
    ioctl(sock, libc::SIOCSIFADDR, &mut req as *mut _ as *mut _)?;
    let mask = u32::MAX
        .checked_shl(32 - u32::from(prefix_len))
        .unwrap_or(0)
        .to_be_bytes();
    let mut req = ifreq(name);
    req.ifr_ifru.ifru_netmask = sockaddr_in(mask);
    ioctl(sock, libc::SIOCSIFNETMASK, &mut req as *mut _ as *mut _)
}

/// One `RTM_NEWLINK` request creating a veth pair whose peer is born in
/// another network namespace. Written by hand: it is the one netlink
/// message the runtime sends (no ioctl creates a veth), and the netlink
/// crates bring an async runtime and a large type surface for it.
fn netlink_new_veth(
    name: &str,
    peer: &str,
    peer_netns: &OwnedFd,
    peer_mac: [u8; 6],
) -> io::Result<()> {
    const IFLA_ADDRESS: u16 = 1;
    const IFLA_IFNAME: u16 = 3;
    const IFLA_LINKINFO: u16 = 18;
    const IFLA_INFO_KIND: u16 = 1;
    const IFLA_INFO_DATA: u16 = 2;
    const VETH_INFO_PEER: u16 = 1;
    const IFLA_NET_NS_FD: u16 = 28;
    const IFINFOMSG_LEN: usize = 16;

    fn attr(kind: u16, payload: &[u8]) -> Vec<u8> {
        let len = 4 + payload.len();
        let mut out = Vec::with_capacity(len.next_multiple_of(4));
        out.extend_from_slice(&(len as u16).to_ne_bytes());
        out.extend_from_slice(&kind.to_ne_bytes());
        out.extend_from_slice(payload);
        out.resize(len.next_multiple_of(4), 0);
        out
    }
    fn cstr(s: &str) -> Vec<u8> {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        v
    }
    let ifinfomsg = [0u8; IFINFOMSG_LEN];
    let mut peer_info = ifinfomsg.to_vec();
    peer_info.extend(attr(IFLA_IFNAME, &cstr(peer)));
    peer_info.extend(attr(IFLA_ADDRESS, &peer_mac));
    peer_info.extend(attr(
        IFLA_NET_NS_FD,
        &(peer_netns.as_raw_fd() as u32).to_ne_bytes(),
    ));
    let data = attr(VETH_INFO_PEER, &peer_info);
    let mut linkinfo = attr(IFLA_INFO_KIND, &cstr("veth"));
    linkinfo.extend(attr(IFLA_INFO_DATA, &data));
    let mut body = ifinfomsg.to_vec();
    body.extend(attr(IFLA_IFNAME, &cstr(name)));
    body.extend(attr(IFLA_LINKINFO, &linkinfo));
    let flags =
        (libc::NLM_F_REQUEST | libc::NLM_F_ACK | libc::NLM_F_CREATE | libc::NLM_F_EXCL) as u16;
    let mut msg = Vec::with_capacity(16 + body.len());
    msg.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
    msg.extend_from_slice(&libc::RTM_NEWLINK.to_ne_bytes());
    msg.extend_from_slice(&flags.to_ne_bytes());
    msg.extend_from_slice(&1u32.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg.extend(body);

    // SAFETY: plain syscall.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fresh descriptor.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_nl is plain data; all-zero addresses the kernel.
    let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    // SAFETY: valid buffer and address.
    let sent = unsafe {
        libc::sendto(
            sock.as_raw_fd(),
            msg.as_ptr().cast(),
            msg.len(),
            0,
            (&kernel as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut reply = [0u8; 4096];
    // SAFETY: valid buffer.
    let n = unsafe { libc::recv(sock.as_raw_fd(), reply.as_mut_ptr().cast(), reply.len(), 0) };
    if n < 20 {
        return Err(io::Error::other("no answer from netlink"));
    }
    let kind = u16::from_ne_bytes([reply[4], reply[5]]);
    if kind != libc::NLMSG_ERROR as u16 {
        return Err(io::Error::other("unexpected netlink answer"));
    }
    let code = i32::from_ne_bytes([reply[16], reply[17], reply[18], reply[19]]);
    if code != 0 {
        return Err(io::Error::from_raw_os_error(-code));
    }
    Ok(())
}

/// Ports in the `LISTEN` state of a `/proc/net/tcp` or `tcp6` table bound
/// to every address or to loopback. Hand-parsed: the kernel's fixed
/// format is a header line, then `sl local_address rem_address st …`
/// with addresses as hex `ADDR:PORT`.
pub fn listening_ports(table: &str) -> Vec<u16> {
    const LISTEN: &str = "0A";
    const REACHABLE: &[&str] = &[
        "00000000",                         // 0.0.0.0
        "0100007F",                         // 127.0.0.1, as the kernel prints it
        "00000000000000000000000000000000", // ::
        "00000000000000000000000001000000", // ::1
    ];
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let local = fields.nth(1)?;
            let state = fields.nth(1)?;
            let (address, port) = local.split_once(':')?;
            (state == LISTEN && REACHABLE.contains(&address))
                .then(|| u16::from_str_radix(port, 16).ok())
                .flatten()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn listening_ports_are_read_from_the_kernels_table() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0\n\
   1: 0100007F:1388 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1 0 100 0 0 10 0\n\
   2: 0100A8C0:0C46 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3 1 0 100 0 0 10 0\n\
   3: 0100007F:1F90 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 4 1 0 100 0 0 10 0\n\
   garbage\n";
        assert_eq!(super::listening_ports(table), [8080, 5000]);
        let six = "header\n   0: 00000000000000000000000000000000:0050 00000000000000000000000000000000:0000 0A 0\n";
        assert_eq!(super::listening_ports(six), [80]);
    }
}
