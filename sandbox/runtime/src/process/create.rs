//! The create helper: host root, single-threaded, short-lived. Builds what
//! needs host privileges (cgroup membership, id maps, idmapped layers, the
//! overlay) and clones the sandbox init, then records it and exits.

use std::fs;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use super::channel::{self, Message};
use super::{Command, HelperConfig, init};
use crate::error::{Error, Result};
use crate::state::{self, State, Status};
use crate::syscall::Kernel;
use crate::{cgroups, rootfs, seccomp, userns};

const NAMESPACES: libc::c_int = libc::CLONE_NEWUSER
    | libc::CLONE_NEWNS
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWCGROUP;

/// `ready_fd` receives one byte, `R`, as soon as the sandbox is ready, so
/// the caller does not wait for this helper to exit; for a container on a
/// terminal it is a socket, and the terminal's master is the signal.
pub(crate) fn main(config: &Path, ready_fd: Option<i32>) -> i32 {
    let cfg: HelperConfig = match fs::read(config)
        .map_err(Error::io("read", config))
        .and_then(|b| {
            serde_json::from_slice(&b).map_err(|source| Error::State {
                path: config.to_owned(),
                source,
            })
        }) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("layerlab: {e}");
            return 1;
        }
    };
    match run(&cfg) {
        Ok(terminal) => {
            match (ready_fd, terminal) {
                (Some(fd), Some(master)) => {
                    // SAFETY: a descriptor the caller handed us, open for our whole life.
                    let sock = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
                    let _ = channel::send(sock, &Message::Terminal(master));
                }
                // SAFETY: writing one byte to a descriptor the caller handed us.
                (Some(fd), None) => unsafe {
                    libc::write(fd, b"R".as_ptr().cast(), 1);
                },
                (None, _) => {}
            }
            0
        }
        Err(e) => {
            // The caller reads this file; stderr may be /dev/null.
            let _ = fs::write(&cfg.error, e.to_string());
            1
        }
    }
}

/// Returns the master of the init command's terminal, when it has one.
fn run(cfg: &HelperConfig) -> Result<Option<OwnedFd>> {
    // Everything that can fail on bad input is done before cloning.
    let profile = seccomp::Profile::build()?;
    let binds = rootfs::clone_binds(&Kernel, &cfg.spec, cfg.sibling.map(|s| s.init_pid))?;
    let main = cfg
        .spec
        .init
        .as_ref()
        .map(|argv| {
            Command::new(
                argv,
                &cfg.spec.env,
                &cfg.spec.cwd,
                &[("HOSTNAME", &cfg.spec.hostname), ("HOME", "/root")],
            )
            .map(|c| c.run_as(cfg.spec.user.clone()))
        })
        .transpose()?;
    super::set_rlimits()?;
    // Joining first makes the clone, its namespaces and its kernel memory
    // born inside the sandbox's cgroups (and roots its cgroup namespace there).
    cgroups::join_self(cgroups::detect(), &cfg.cgroups)?;
    // A sibling's overlay is built before we give up host privileges by
    // joining its user namespace; a node's, after the clone, in its own
    // mount namespace.
    let sibling_rootfs = cfg
        .sibling
        .map(|s| enter_sibling_userns(cfg, s))
        .transpose()?;
    let exit_path = cfg.state.with_file_name(super::EXIT_CODE_FILE);
    let exit_file = fs::File::create(&exit_path).map_err(Error::io("create", &exit_path))?;
    let (ours, theirs) = channel::pair()?;
    let namespaces = match (&sibling_rootfs, cfg.spec.network.share_node) {
        (Some(root), true) => {
            // SAFETY: plain syscall with a namespace descriptor; single-threaded.
            crate::sys::check(unsafe {
                libc::setns(root.node_netns.as_raw_fd(), libc::CLONE_NEWNET)
            })
            .map_err(Error::sys("join the node's network namespace"))?;
            NAMESPACES & !libc::CLONE_NEWUSER & !libc::CLONE_NEWNET
        }
        (Some(_), false) => NAMESPACES & !libc::CLONE_NEWUSER,
        (None, _) => NAMESPACES,
    };
    let flags = (namespaces | libc::CLONE_PARENT) as libc::c_ulong;
    // SAFETY: this helper is single-threaded (a fresh exec that started no threads).
    let pid = unsafe { crate::sys::clone_fork(flags) }.map_err(Error::sys("clone sandbox init"))?;
    if pid == 0 {
        drop(ours);
        drop(sibling_rootfs);
        init::sandbox_main(cfg, theirs, binds, profile, main, exit_file)
    }
    drop(theirs);
    drop(binds);
    let r = parent(cfg, pid, &ours, sibling_rootfs);
    if r.is_err() {
        // SAFETY: plain syscall on the pid we just created.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    r
}

/// Builds a sibling's overlay in a private mount namespace of this helper
/// (its scratch mounts vanish with us), then joins the running sandbox's
/// user namespace, so that the namespaces cloned next belong to it.
/// Host files stay writable to us afterwards: we still own them (uid 0),
/// only our capabilities now count inside that namespace alone.
fn enter_sibling_userns(cfg: &HelperConfig, node: super::Sibling) -> Result<SiblingRoot> {
    let userns = node.namespace("user")?;
    // Opened while we are still host root: the node's init is not dumpable.
    let node_netns = node.namespace("net")?;
    node.check_alive(cfg.spec.sibling_of.as_deref().unwrap_or_default())?;
    super::private_mount_namespace()?;
    let writable = writable_layer(cfg)?;
    let overlay = rootfs::build_overlay(
        &Kernel,
        &cfg.spec.lowerdirs,
        &userns,
        cfg.uid_base,
        &cfg.rootfs,
        &writable,
    )?;
    // SAFETY: plain syscall with a namespace descriptor; single-threaded.
    crate::sys::check(unsafe { libc::setns(userns.as_raw_fd(), libc::CLONE_NEWUSER) })
        .map_err(Error::sys("join the sibling's user namespace"))?;
    Ok(SiblingRoot {
        overlay,
        node_netns,
    })
}

fn writable_layer(cfg: &HelperConfig) -> Result<OwnedFd> {
    rootfs::writable_layer(
        &cfg.disk_image,
        &cfg.spec.limits,
        cfg.spec.keep_writable_layer,
    )
}

/// What a sibling's helper prepared before the clone.
struct SiblingRoot {
    overlay: OwnedFd,
    node_netns: OwnedFd,
}

fn parent(
    cfg: &HelperConfig,
    pid: i32,
    sock: &OwnedFd,
    sibling: Option<SiblingRoot>,
) -> Result<Option<OwnedFd>> {
    if let Some(root) = sibling {
        // The maps are the running sandbox's already.
        super::sacrifice_first(pid)?;
        if let Some(veth) = &cfg.spec.network.veth {
            let path = format!("/proc/{pid}/ns/net");
            let netns: OwnedFd = fs::File::open(&path)
                .map_err(Error::io("open", &path))?
                .into();
            // Named after the init's pid too: the veth of this id's last
            // run leaves the node's network only once the kernel has torn
            // its namespace down, which may not have happened yet.
            let id = &cfg.spec.id;
            let mut host_end = format!("veth{pid:x}{}", &id[id.len().saturating_sub(11)..]);
            host_end.truncate(libc::IFNAMSIZ - 1);
            crate::net::plug(&root.node_netns, &netns, &host_end, veth)?;
        }
        channel::send(sock, &Message::Rootfs(root.overlay))?;
        return await_ready(cfg, pid, sock);
    }
    userns::write_maps(pid, cfg.uid_base)?;
    super::sacrifice_first(pid)?;
    let ns_path = format!("/proc/{pid}/ns/user");
    let userns: OwnedFd = fs::File::open(&ns_path)
        .map_err(Error::io("open", &ns_path))?
        .into();
    // The scratch mounts of `rootfs::build_overlay` are made inside the
    // sandbox's (still idle) mount namespace: they never touch the host's
    // and vanish with the sandbox's old root at pivot_root, and this helper
    // exits without a mount namespace of its own to tear down (which would
    // cost an RCU grace period on the critical path).
    let writable = writable_layer(cfg)?;
    let host_ns =
        fs::File::open("/proc/self/ns/mnt").map_err(Error::io("open", "/proc/self/ns/mnt"))?;
    let mnt_path = format!("/proc/{pid}/ns/mnt");
    let sandbox_ns = fs::File::open(&mnt_path).map_err(Error::io("open", &mnt_path))?;
    let enter = |ns: &fs::File| {
        // SAFETY: plain syscall with a namespace descriptor; we are single-threaded.
        crate::sys::check(unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNS) })
            .map_err(Error::sys("switch mount namespace"))
    };
    enter(&sandbox_ns)?;
    let overlay = rootfs::build_overlay(
        &Kernel,
        &cfg.spec.lowerdirs,
        &userns,
        cfg.uid_base,
        &cfg.rootfs,
        &writable,
    );
    // Back home before anything else: the sandbox is about to detach the
    // tree we are standing in, and our state files live on the host.
    enter(&host_ns)?;
    let overlay = overlay?;
    channel::send(sock, &Message::Rootfs(overlay))?;
    await_ready(cfg, pid, sock)
}

/// Waits for init's `Ready` (after its terminal's master, for a container
/// on a terminal) and records the sandbox as running.
fn await_ready(cfg: &HelperConfig, pid: i32, sock: &OwnedFd) -> Result<Option<OwnedFd>> {
    let failed = |message: String| Error::Helper {
        helper: std::env::current_exe().unwrap_or_default(),
        id: cfg.spec.id.clone(),
        message,
    };
    let mut terminal = None;
    loop {
        match channel::recv(sock)? {
            Some(Message::Terminal(master)) if terminal.is_none() => terminal = Some(master),
            Some(Message::Ready) => break,
            Some(Message::Failed(m)) if m.starts_with(super::init::NOT_FOUND_PREFIX) => {
                return Err(Error::CommandNotFound(m));
            }
            Some(Message::Failed(m)) => return Err(failed(m)),
            _ => return Err(failed("sandbox init died during setup".into())),
        }
    }
    if cfg.attached.is_some_and(|a| a.terminal.is_some()) && terminal.is_none() {
        return Err(failed("sandbox init made no terminal".into()));
    }
    let mut st = State::load(&cfg.state)?;
    st.status = Status::Running;
    st.init_pid = Some(pid);
    st.init_start_time = state::process_start_time(pid);
    st.held = match cfg.attached {
        Some(a) if a.terminal.is_some() => 1,
        Some(a) => a.held,
        None => 0,
    };
    st.save(&cfg.state)?;
    Ok(terminal)
}
