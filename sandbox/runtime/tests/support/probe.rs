//! Runs inside a sandbox (this test binary bind-mounted at /probe) and tries
//! what a hostile root inside must not be able to do. Prints one line per
//! attempt: `name ok` or `name ERRNO`.

use std::ffi::CString;

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn report(name: &str, ret: i64) {
    match ret {
        -2 => println!("{name} setup-failed"),
        r if r < 0 => println!("{name} {}", errno()),
        _ => println!("{name} ok"),
    }
}

fn connect(addr: [u8; 4], port: u16) -> i64 {
    // SAFETY: plain socket calls with valid structures.
    unsafe {
        let s = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        if s < 0 {
            return -1;
        }
        let sin = libc::sockaddr_in {
            sin_family: libc::AF_INET as u16,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from_ne_bytes(addr),
            },
            sin_zero: [0; 8],
        };
        libc::connect(
            s,
            &sin as *const _ as *const libc::sockaddr,
            std::mem::size_of_val(&sin) as u32,
        ) as i64
    }
}

/// `__probe unix PATH`: connects to a unix socket, sends "ping", prints the reply.
fn unix(path: &str) -> ! {
    use std::io::{Read, Write};
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(mut s) => {
            let _ = s.write_all(b"ping");
            let mut buf = [0u8; 4];
            let n = s.read(&mut buf).unwrap_or(0);
            println!("reply {}", String::from_utf8_lossy(&buf[..n]));
        }
        Err(e) => println!("connect failed: {e}"),
    }
    std::process::exit(0)
}

/// `__probe exe`: what of the executables behind `/proc/*/exe` this
/// process can open, as `PID DEV:INO` (or `PID ERRNO`), then whether its
/// own executable opens for writing (`write ok` or `write ERRNO`).
fn executables() -> ! {
    use std::os::unix::fs::MetadataExt;
    let mut pids: Vec<String> = std::fs::read_dir("/proc")
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
                .collect()
        })
        .unwrap_or_default();
    pids.push("self".into());
    for pid in pids {
        match std::fs::File::open(format!("/proc/{pid}/exe")).and_then(|f| f.metadata()) {
            Ok(m) => println!("{pid} {}:{}", m.dev(), m.ino()),
            Err(e) => println!("{pid} {}", e.raw_os_error().unwrap_or(0)),
        }
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .open("/proc/self/exe")
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"x"))
    {
        Ok(()) => println!("write ok"),
        Err(e) => println!("write {}", e.raw_os_error().unwrap_or(0)),
    }
    std::process::exit(0)
}

pub fn main(args: &[String]) -> ! {
    match args.first().map(String::as_str) {
        Some("unix") => unix(args.get(1).map(String::as_str).unwrap_or("")),
        Some("exe") => executables(),
        _ => {}
    }
    let port: u16 = args.first().and_then(|p| p.parse().ok()).unwrap_or(9);
    let c = |s: &str| CString::new(s).expect("probe string");
    // SAFETY: every call gets valid or null pointers; failures are the point.
    unsafe {
        let _ = std::fs::create_dir("/mnt");
        report(
            "mount",
            libc::mount(
                c("none").as_ptr(),
                c("/mnt").as_ptr(),
                c("tmpfs").as_ptr(),
                0,
                std::ptr::null(),
            ) as i64,
        );
        report(
            "umount",
            libc::umount2(c("/proc").as_ptr(), libc::MNT_DETACH) as i64,
        );
        report(
            "pivot_root",
            libc::syscall(libc::SYS_pivot_root, c("/").as_ptr(), c("/").as_ptr()),
        );
        report("unshare_user", libc::unshare(libc::CLONE_NEWUSER) as i64);
        report("unshare_mount", libc::unshare(libc::CLONE_NEWNS) as i64);
        report(
            "clone_newuser",
            libc::syscall(
                libc::SYS_clone,
                (libc::CLONE_NEWUSER | libc::SIGCHLD) as u64,
                0,
                0,
                0,
                0,
            ),
        );
        report(
            "clone3",
            libc::syscall(libc::SYS_clone3, std::ptr::null::<u8>(), 0usize),
        );
        report(
            "init_module",
            libc::syscall(
                libc::SYS_init_module,
                std::ptr::null::<u8>(),
                0usize,
                c("").as_ptr(),
            ),
        );
        report(
            "finit_module",
            libc::syscall(libc::SYS_finit_module, 0, c("").as_ptr(), 0),
        );
        report(
            "delete_module",
            libc::syscall(libc::SYS_delete_module, c("ext4").as_ptr(), 0),
        );
        report(
            "reboot",
            libc::reboot(libc::LINUX_REBOOT_CMD_CAD_OFF) as i64,
        );
        let mut tv: libc::timeval = std::mem::zeroed();
        libc::gettimeofday(&mut tv, std::ptr::null_mut());
        report(
            "settimeofday",
            libc::settimeofday(&tv, std::ptr::null()) as i64,
        );
        let mut ts: libc::timespec = std::mem::zeroed();
        libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts);
        report(
            "clock_settime",
            libc::clock_settime(libc::CLOCK_REALTIME, &ts) as i64,
        );
        report(
            "keyctl",
            libc::syscall(libc::SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -2, 1),
        );
        report(
            "add_key",
            libc::syscall(
                libc::SYS_add_key,
                c("user").as_ptr(),
                c("x").as_ptr(),
                c("y").as_ptr(),
                1usize,
                -2,
            ),
        );
        let attr = [0u8; 128];
        report(
            "bpf",
            libc::syscall(libc::SYS_bpf, 0, attr.as_ptr(), attr.len()),
        );
        let mut pattr = [0u8; 128];
        pattr[4..8].copy_from_slice(&128u32.to_ne_bytes());
        report(
            "perf_event_open",
            libc::syscall(libc::SYS_perf_event_open, pattr.as_ptr(), 0, -1, -1, 0),
        );
        report("ptrace_init", libc::ptrace(libc::PTRACE_ATTACH, 1, 0, 0));
        report(
            "open_init_exe",
            libc::open(c("/proc/1/exe").as_ptr(), libc::O_WRONLY) as i64,
        );
        report("swapon", libc::swapon(c("/etc/passwd").as_ptr(), 0) as i64);
        report("write_proc_sys", {
            let fd = libc::open(c("/proc/sys/kernel/hostname").as_ptr(), libc::O_WRONLY);
            if fd < 0 {
                -1
            } else {
                libc::write(fd, b"x\n".as_ptr().cast(), 2) as i64
            }
        });
        report(
            "write_sys",
            libc::open(c("/sys/kernel/uevent_helper").as_ptr(), libc::O_WRONLY) as i64,
        );
        report("connect_host_loopback", connect([127, 0, 0, 1], port));
        report("connect_outside", connect([192, 0, 2, 1], 9));
        report("tiocsti", {
            let m = libc::open(c("/dev/ptmx").as_ptr(), libc::O_RDWR | libc::O_NOCTTY);
            if m < 0 {
                -2
            } else {
                let ch = b'x';
                libc::ioctl(m, libc::TIOCSTI, &ch) as i64
            }
        });
        report(
            "socket_vsock",
            libc::socket(libc::AF_VSOCK, libc::SOCK_STREAM, 0) as i64,
        );
        report(
            "sethostname",
            libc::sethostname(c("evil").as_ptr(), 4) as i64,
        );
        report(
            "io_uring_setup",
            libc::syscall(libc::SYS_io_uring_setup, 1, [0u8; 120].as_ptr()),
        );
        report("getpid", libc::getpid() as i64);
    }
    std::process::exit(0)
}
