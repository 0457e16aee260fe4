//! The one message pipe of the launch sequence: a `SOCK_SEQPACKET`
//! socketpair between the create helper and the sandbox init it cloned.
//!
//! Exactly two exchanges happen, in order:
//! 1. helper → init: `Rootfs`, carrying the detached overlay mount as an
//!    `SCM_RIGHTS` descriptor. It is sent only after the uid/gid maps are
//!    written, so receiving it also means "you are mapped".
//! 2. init → helper: `Ready` once the sandbox is fully set up, or
//!    `Failed(reason)`. End-of-file instead means init died. A container
//!    on a terminal first sends `Terminal`, the master of the PTY init made
//!    in the sandbox's devpts, which the helper passes on to its caller as
//!    its ready signal.
//!
//! The exec helper answers a caller that asked for a terminal with the
//! same messages: `Terminal` or `Failed`.
//!
//! Seqpacket keeps message boundaries, so a message is one `recvmsg`.

use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::error::{Error, Result};

const SETUP_TIMEOUT_SECS: libc::time_t = 30;
const ROOTFS: u8 = 1;
const READY: u8 = 2;
const FAILED: u8 = 3;
const TERMINAL: u8 = 4;

pub(crate) enum Message {
    Rootfs(OwnedFd),
    Ready,
    Failed(String),
    /// A PTY master made in a sandbox's devpts.
    Terminal(OwnedFd),
}

pub(crate) fn pair() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: valid out-array of two ints.
    crate::sys::check(unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    })
    .map_err(Error::sys("create helper channel"))?;
    // A sandbox init stuck in setup must not hang its creator for ever.
    let timeout = libc::timeval {
        tv_sec: SETUP_TIMEOUT_SECS,
        tv_usec: 0,
    };
    for fd in fds {
        // SAFETY: valid descriptor and option value.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&timeout as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
    }
    // SAFETY: fresh descriptors.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

pub(crate) fn send(sock: impl AsFd, msg: &Message) -> Result<()> {
    let (mut body, fd) = match msg {
        Message::Rootfs(fd) => (vec![ROOTFS], Some(fd.as_raw_fd())),
        Message::Terminal(fd) => (vec![TERMINAL], Some(fd.as_raw_fd())),
        Message::Ready => (vec![READY], None),
        Message::Failed(m) => {
            let mut b = vec![FAILED];
            b.extend_from_slice(&m.as_bytes()[..m.len().min(4000)]);
            (b, None)
        }
    };
    let mut iov = libc::iovec {
        iov_base: body.as_mut_ptr().cast(),
        iov_len: body.len(),
    };
    // u64 storage keeps the control buffer aligned for cmsghdr.
    let mut cbuf = [0u64; 8];
    // SAFETY: msghdr is plain data; pointers stay valid for the call.
    unsafe {
        let mut hdr: libc::msghdr = std::mem::zeroed();
        hdr.msg_iov = &mut iov;
        hdr.msg_iovlen = 1;
        if let Some(fd) = fd {
            hdr.msg_control = cbuf.as_mut_ptr().cast();
            hdr.msg_controllen = libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) as usize;
            let c = libc::CMSG_FIRSTHDR(&hdr);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as usize;
            std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<RawFd>(), fd);
        }
        if libc::sendmsg(sock.as_fd().as_raw_fd(), &hdr, libc::MSG_NOSIGNAL) < 0 {
            return Err(Error::sys("send on helper channel")(
                io::Error::last_os_error(),
            ));
        }
    }
    Ok(())
}

/// The next message, or `None` at end-of-file (the peer is gone).
pub(crate) fn recv(sock: impl AsFd) -> Result<Option<Message>> {
    let mut buf = vec![0u8; 4096];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut cbuf = [0u64; 8];
    // SAFETY: as in `send`.
    let (n, fd) = unsafe {
        let mut hdr: libc::msghdr = std::mem::zeroed();
        hdr.msg_iov = &mut iov;
        hdr.msg_iovlen = 1;
        hdr.msg_control = cbuf.as_mut_ptr().cast();
        hdr.msg_controllen = std::mem::size_of_val(&cbuf);
        let n = loop {
            let n = libc::recvmsg(sock.as_fd().as_raw_fd(), &mut hdr, libc::MSG_CMSG_CLOEXEC);
            if n >= 0 {
                break n as usize;
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(Error::sys("receive on helper channel")(e));
            }
        };
        let c = libc::CMSG_FIRSTHDR(&hdr);
        let fd = if !c.is_null()
            && (*c).cmsg_level == libc::SOL_SOCKET
            && (*c).cmsg_type == libc::SCM_RIGHTS
        {
            Some(OwnedFd::from_raw_fd(std::ptr::read_unaligned(
                libc::CMSG_DATA(c).cast::<RawFd>(),
            )))
        } else {
            None
        };
        (n, fd)
    };
    if n == 0 {
        return Ok(None);
    }
    let bad = || {
        Error::sys("malformed message on helper channel")(io::Error::from(
            io::ErrorKind::InvalidData,
        ))
    };
    Ok(Some(match (buf[0], fd) {
        (ROOTFS, Some(fd)) => Message::Rootfs(fd),
        (TERMINAL, Some(fd)) => Message::Terminal(fd),
        (READY, None) => Message::Ready,
        (FAILED, None) => Message::Failed(String::from_utf8_lossy(&buf[1..n]).into_owned()),
        _ => return Err(bad()),
    }))
}
