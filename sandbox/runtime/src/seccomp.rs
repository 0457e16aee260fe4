//! A seccomp filter equivalent to Docker's default profile, built with
//! `seccompiler` (pure Rust, no libseccomp).
//!
//! Like Docker's profile it is an allowlist: unlisted calls fail with
//! `EPERM`. Calls Docker gates behind capabilities outside its default set
//! (mount, umount2, pivot_root, setns, unshare, bpf, perf_event_open,
//! keyctl, add_key, request_key, init/finit/delete_module, reboot, kexec_*,
//! settimeofday, clock_settime, swapon, acct, ioperm, iopl, syslog, kcmp,
//! pidfd_getfd, open_by_handle_at, userfaultfd, quotactl, lookup_dcookie,
//! fanotify_init, vhangup, the mempolicy calls, namespaces via clone
//! flags, ...) are simply absent; `adjtimex` and `clock_adjtime` stay, as
//! the kernel itself refuses changes without CAP_SYS_TIME. Argument rules as in Docker:
//! `clone` without namespace flags, `personality` with the harmless
//! personas only, `clone3` fails with `ENOSYS` so libc falls back to
//! `clone`, where the flags can be checked.
//!
//! Like Docker's, `sethostname`/`setdomainname` need CAP_SYS_ADMIN and are
//! refused, and `socket(AF_VSOCK)` is refused. Two deliberate differences,
//! both stricter: `io_uring_*` stay out (a frequent source of kernel
//! escapes, and nothing a lab needs), and `ioctl(TIOCSTI)` and
//! `ioctl(TIOCLINUX)` are refused, since
//! `dev.tty.legacy_tiocsti` is on here and `run_once -t` hands the caller's
//! terminal to the sandbox; those ioctls would let it type into that
//! terminal after it exits.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen as Len, SeccompCmpOp as Op,
    SeccompCondition as Cond, SeccompFilter, SeccompRule, TargetArch,
};

use crate::error::{Error, Result};

macro_rules! syscalls {
    ($($name:ident),* $(,)?) => { [$(libc::$name),*] };
}

/// Allowed unconditionally on every architecture.
const ALLOWED: &[libc::c_long] = &syscalls![
    SYS_accept,
    SYS_accept4,
    SYS_adjtimex,
    SYS_clock_adjtime,
    SYS_process_vm_readv,
    SYS_process_vm_writev,
    SYS_bind,
    SYS_brk,
    SYS_capget,
    SYS_capset,
    SYS_chdir,
    SYS_chroot,
    SYS_clock_getres,
    SYS_clock_gettime,
    SYS_clock_nanosleep,
    SYS_close,
    SYS_close_range,
    SYS_connect,
    SYS_copy_file_range,
    SYS_dup,
    SYS_dup3,
    SYS_epoll_create1,
    SYS_epoll_ctl,
    SYS_epoll_pwait,
    SYS_epoll_pwait2,
    SYS_eventfd2,
    SYS_execve,
    SYS_execveat,
    SYS_exit,
    SYS_exit_group,
    SYS_faccessat,
    SYS_faccessat2,
    SYS_fadvise64,
    SYS_fallocate,
    SYS_fanotify_mark,
    SYS_fchdir,
    SYS_fchmod,
    SYS_fchmodat,
    SYS_fchown,
    SYS_fchownat,
    SYS_fcntl,
    SYS_fdatasync,
    SYS_fgetxattr,
    SYS_flistxattr,
    SYS_flock,
    SYS_fremovexattr,
    SYS_fsetxattr,
    SYS_fstat,
    SYS_fstatfs,
    SYS_fsync,
    SYS_ftruncate,
    SYS_futex,
    SYS_futex_waitv,
    SYS_getcpu,
    SYS_getcwd,
    SYS_getdents64,
    SYS_getegid,
    SYS_geteuid,
    SYS_getgid,
    SYS_getgroups,
    SYS_getitimer,
    SYS_getpeername,
    SYS_getpgid,
    SYS_getpid,
    SYS_getppid,
    SYS_getpriority,
    SYS_getrandom,
    SYS_getresgid,
    SYS_getresuid,
    SYS_getrlimit,
    SYS_get_robust_list,
    SYS_getrusage,
    SYS_getsid,
    SYS_getsockname,
    SYS_getsockopt,
    SYS_gettid,
    SYS_gettimeofday,
    SYS_getuid,
    SYS_getxattr,
    SYS_inotify_add_watch,
    SYS_inotify_init1,
    SYS_inotify_rm_watch,
    SYS_io_cancel,
    SYS_io_destroy,
    SYS_io_getevents,
    SYS_ioprio_get,
    SYS_ioprio_set,
    SYS_io_setup,
    SYS_io_submit,
    SYS_kill,
    SYS_landlock_add_rule,
    SYS_landlock_create_ruleset,
    SYS_landlock_restrict_self,
    SYS_lgetxattr,
    SYS_linkat,
    SYS_listen,
    SYS_listxattr,
    SYS_llistxattr,
    SYS_lremovexattr,
    SYS_lseek,
    SYS_lsetxattr,
    SYS_madvise,
    SYS_membarrier,
    SYS_memfd_create,
    SYS_mincore,
    SYS_mkdirat,
    SYS_mknodat,
    SYS_mlock,
    SYS_mlock2,
    SYS_mlockall,
    SYS_mmap,
    SYS_mprotect,
    SYS_mq_getsetattr,
    SYS_mq_notify,
    SYS_mq_open,
    SYS_mq_timedreceive,
    SYS_mq_timedsend,
    SYS_mq_unlink,
    SYS_mremap,
    SYS_msgctl,
    SYS_msgget,
    SYS_msgrcv,
    SYS_msgsnd,
    SYS_msync,
    SYS_munlock,
    SYS_munlockall,
    SYS_munmap,
    SYS_name_to_handle_at,
    SYS_nanosleep,
    SYS_newfstatat,
    SYS_openat,
    SYS_openat2,
    SYS_pidfd_open,
    SYS_pidfd_send_signal,
    SYS_pipe2,
    SYS_pkey_alloc,
    SYS_pkey_free,
    SYS_pkey_mprotect,
    SYS_ppoll,
    SYS_prctl,
    SYS_pread64,
    SYS_preadv,
    SYS_preadv2,
    SYS_prlimit64,
    SYS_process_mrelease,
    SYS_pselect6,
    SYS_ptrace,
    SYS_pwrite64,
    SYS_pwritev,
    SYS_pwritev2,
    SYS_read,
    SYS_readahead,
    SYS_readlinkat,
    SYS_readv,
    SYS_recvfrom,
    SYS_recvmmsg,
    SYS_recvmsg,
    SYS_remap_file_pages,
    SYS_removexattr,
    SYS_renameat,
    SYS_renameat2,
    SYS_restart_syscall,
    SYS_rseq,
    SYS_rt_sigaction,
    SYS_rt_sigpending,
    SYS_rt_sigprocmask,
    SYS_rt_sigqueueinfo,
    SYS_rt_sigreturn,
    SYS_rt_sigsuspend,
    SYS_rt_sigtimedwait,
    SYS_rt_tgsigqueueinfo,
    SYS_sched_getaffinity,
    SYS_sched_getattr,
    SYS_sched_getparam,
    SYS_sched_get_priority_max,
    SYS_sched_get_priority_min,
    SYS_sched_getscheduler,
    SYS_sched_rr_get_interval,
    SYS_sched_setaffinity,
    SYS_sched_setattr,
    SYS_sched_setparam,
    SYS_sched_setscheduler,
    SYS_sched_yield,
    SYS_seccomp,
    SYS_semctl,
    SYS_semget,
    SYS_semop,
    SYS_semtimedop,
    SYS_sendfile,
    SYS_sendmmsg,
    SYS_sendmsg,
    SYS_sendto,
    SYS_setfsgid,
    SYS_setfsuid,
    SYS_setgid,
    SYS_setgroups,
    SYS_setitimer,
    SYS_setpgid,
    SYS_setpriority,
    SYS_setregid,
    SYS_setresgid,
    SYS_setresuid,
    SYS_setreuid,
    SYS_setrlimit,
    SYS_set_robust_list,
    SYS_setsid,
    SYS_setsockopt,
    SYS_set_tid_address,
    SYS_setuid,
    SYS_setxattr,
    SYS_shmat,
    SYS_shmctl,
    SYS_shmdt,
    SYS_shmget,
    SYS_shutdown,
    SYS_sigaltstack,
    SYS_signalfd4,
    SYS_socketpair,
    SYS_splice,
    SYS_statfs,
    SYS_statx,
    SYS_symlinkat,
    SYS_sync,
    SYS_sync_file_range,
    SYS_syncfs,
    SYS_sysinfo,
    SYS_tee,
    SYS_tgkill,
    SYS_timer_create,
    SYS_timer_delete,
    SYS_timer_getoverrun,
    SYS_timer_gettime,
    SYS_timer_settime,
    SYS_timerfd_create,
    SYS_timerfd_gettime,
    SYS_timerfd_settime,
    SYS_times,
    SYS_tkill,
    SYS_truncate,
    SYS_umask,
    SYS_uname,
    SYS_unlinkat,
    SYS_utimensat,
    SYS_vmsplice,
    SYS_wait4,
    SYS_waitid,
    SYS_write,
    SYS_writev,
];

/// The legacy calls x86_64 still has.
#[cfg(target_arch = "x86_64")]
const ALLOWED_ARCH: &[libc::c_long] = &syscalls![
    SYS_access,
    SYS_memfd_secret,
    SYS_modify_ldt,
    SYS_alarm,
    SYS_arch_prctl,
    SYS_chmod,
    SYS_chown,
    SYS_creat,
    SYS_dup2,
    SYS_epoll_create,
    SYS_epoll_wait,
    SYS_eventfd,
    SYS_fork,
    SYS_futimesat,
    SYS_getdents,
    SYS_getpgrp,
    SYS_inotify_init,
    SYS_lchown,
    SYS_link,
    SYS_lstat,
    SYS_mkdir,
    SYS_mknod,
    SYS_open,
    SYS_pause,
    SYS_pipe,
    SYS_poll,
    SYS_readlink,
    SYS_rename,
    SYS_rmdir,
    SYS_select,
    SYS_signalfd,
    SYS_stat,
    SYS_symlink,
    SYS_time,
    SYS_unlink,
    SYS_utime,
    SYS_utimes,
    SYS_vfork,
];
#[cfg(target_arch = "x86_64")]
const ARCH: TargetArch = TargetArch::x86_64;

#[cfg(target_arch = "aarch64")]
const ALLOWED_ARCH: &[libc::c_long] = &[];
#[cfg(target_arch = "aarch64")]
const ARCH: TargetArch = TargetArch::aarch64;

const NAMESPACE_FLAGS: u64 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWCGROUP) as u64;

/// Personas Docker's profile permits: linux, linux32-ish flags, and the query.
const PERSONAS: [u64; 5] = [0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

fn err(e: seccompiler::BackendError) -> Error {
    Error::Sys {
        what: "build seccomp filter",
        source: std::io::Error::other(e.to_string()),
    }
}

fn cond(arg: u8, len: Len, op: Op, value: u64) -> Result<Cond> {
    Cond::new(arg, len, op, value).map_err(err)
}

/// The two BPF programs to install, in order: the allowlist, then the
/// `clone3 → ENOSYS` override (the later filter wins among equal actions).
pub struct Profile {
    allowlist: BpfProgram,
    clone3: BpfProgram,
}

impl Profile {
    pub fn build() -> Result<Self> {
        let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
        for &nr in ALLOWED.iter().chain(ALLOWED_ARCH) {
            rules.insert(nr, Vec::new());
        }
        let rule = |c: Vec<Cond>| SeccompRule::new(c).map_err(err);
        rules.insert(
            libc::SYS_clone,
            vec![rule(vec![cond(
                0,
                Len::Qword,
                Op::MaskedEq(NAMESPACE_FLAGS),
                0,
            )?])?],
        );
        rules.insert(
            libc::SYS_socket,
            vec![rule(vec![cond(
                0,
                Len::Dword,
                Op::Ne,
                libc::AF_VSOCK as u64,
            )?])?],
        );
        rules.insert(
            libc::SYS_personality,
            PERSONAS
                .iter()
                .map(|&p| rule(vec![cond(0, Len::Dword, Op::Eq, p)?]))
                .collect::<Result<_>>()?,
        );
        rules.insert(
            libc::SYS_ioctl,
            vec![rule(
                vec![
                    cond(1, Len::Dword, Op::Ne, libc::TIOCSTI),
                    cond(1, Len::Dword, Op::Ne, libc::TIOCLINUX),
                ]
                .into_iter()
                .collect::<Result<_>>()?,
            )?],
        );
        let allow = SeccompFilter::new(
            rules,
            SeccompAction::Errno(libc::EPERM as u32),
            SeccompAction::Allow,
            ARCH,
        )
        .map_err(err)?;
        let mut c3 = BTreeMap::new();
        c3.insert(libc::SYS_clone3, Vec::new());
        let clone3 = SeccompFilter::new(
            c3,
            SeccompAction::Allow,
            SeccompAction::Errno(libc::ENOSYS as u32),
            ARCH,
        )
        .map_err(err)?;
        Ok(Self {
            allowlist: allow.try_into().map_err(err)?,
            clone3: clone3.try_into().map_err(err)?,
        })
    }

    /// Installs both filters on the calling thread (and sets `no_new_privs`,
    /// which seccomp requires without CAP_SYS_ADMIN).
    pub fn apply(&self) -> Result<()> {
        let e = |e: seccompiler::Error| Error::Sys {
            what: "install seccomp filter",
            source: std::io::Error::other(e.to_string()),
        };
        seccompiler::apply_filter(&self.allowlist).map_err(e)?;
        seccompiler::apply_filter(&self.clone3).map_err(e)
    }
}
