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
use crate::spec::Bridge;

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
        let mut name = ifreq(&b.name);
        ioctl(&sock, SIOCBRADDBR, name.ifr_name.as_mut_ptr() as *mut _)
            .map_err(Error::sys("create bridge"))?;
        let mut req = ifreq(&b.name);
        req.ifr_ifru.ifru_addr = sockaddr_in(b.address);
        ioctl(&sock, libc::SIOCSIFADDR, &mut req as *mut _ as *mut _)
            .map_err(Error::sys("set bridge address"))?;
        let mask = u32::MAX
            .checked_shl(32 - u32::from(b.prefix_len))
            .unwrap_or(0)
            .to_be_bytes();
        let mut req = ifreq(&b.name);
        req.ifr_ifru.ifru_netmask = sockaddr_in(mask);
        ioctl(&sock, libc::SIOCSIFNETMASK, &mut req as *mut _ as *mut _)
            .map_err(Error::sys("set bridge netmask"))?;
        set_up(&sock, &b.name).map_err(Error::sys("bring bridge up"))?;
    }
    Ok(())
}

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
    std::thread::scope(|s| {
        s.spawn(move || {
            crate::sys::setns_pidfd(pidfd, libc::CLONE_NEWNET)?;
            std::net::TcpStream::connect_timeout(&addr, timeout)
        })
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("connecting thread panicked")))
    })
}
