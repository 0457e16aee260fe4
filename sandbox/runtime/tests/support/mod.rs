//! Shared fixtures: the busybox test rootfs (built once, read-only, two
//! layers), a per-test runtime with its own state dir, uid pool and cgroup
//! parent, and a tiny parallel test runner (our test binary must own `main`
//! because it is also the helper executable).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use runtime::{Runtime, RuntimeConfig, SandboxSpec, UidPool};

pub const ROOTFS: &str = "/var/tmp/layerlab/test-rootfs";

/// Two lower layers, topmost first: `top` holds the applet symlinks and
/// overrides `etc/motd`; `base` holds busybox itself, a setuid copy and the
/// skeleton directories.
pub fn layers() -> Vec<PathBuf> {
    let root = Path::new(ROOTFS);
    if !root.join("ready").exists() {
        build_rootfs(root);
    }
    vec![root.join("top"), root.join("base")]
}

fn sh(cmd: &str) {
    let st = Command::new("sh")
        .arg("-ec")
        .arg(cmd)
        .status()
        .expect("run sh");
    assert!(st.success(), "command failed: {cmd}");
}

fn build_rootfs(root: &Path) {
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("busybox is missing: apt-get install -y busybox-static");
    let tmp = root.with_extension(format!("tmp{}", std::process::id()));
    let t = tmp.display();
    sh(&format!(
        "rm -rf {t}; mkdir -p {t}/base/bin {t}/base/etc {t}/base/root {t}/base/proc {t}/base/sys {t}/base/dev {t}/base/tmp {t}/top/bin {t}/top/etc
         cp {busybox} {t}/base/bin/busybox
         cp {busybox} {t}/base/bin/busybox-suid && chmod 4755 {t}/base/bin/busybox-suid
         chmod 1777 {t}/base/tmp
         printf 'root:x:0:0:root:/root:/bin/sh\\nnobody:x:65534:65534:nobody:/:/bin/sh\\nuser:x:1000:1000::/tmp:/bin/sh\\n' > {t}/base/etc/passwd
         printf 'root:x:0:\\nnobody:x:65534:\\nuser:x:1000:\\n' > {t}/base/etc/group
         echo base > {t}/base/etc/motd
         echo top > {t}/top/etc/motd
         echo layer2 > {t}/top/etc/layer-top
         {busybox} --install -s {t}/top/bin
         rm -f {t}/top/bin/busybox
         for l in {t}/top/bin/*; do ln -sf /bin/busybox \"$l\"; done
         chown -R 0:0 {t}
         touch {t}/ready"
    ));
    std::fs::create_dir_all(root.parent().expect("rootfs has a parent")).expect("create cache dir");
    // Another test process may have won the race; theirs is as good as ours.
    if std::fs::rename(&tmp, root).is_err() {
        sh(&format!("rm -rf {t}"));
    }
}

/// A checksum of every file in the shared layers, to prove they are unchanged.
pub fn layers_digest() -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "cd {ROOTFS} && find . -printf '%p %U %G %m %s %l\\n' | sort | md5sum"
        ))
        .output()
        .expect("digest layers");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

static NEXT: AtomicU32 = AtomicU32::new(0);

pub struct Fixture {
    pub rt: Runtime,
    pub config: RuntimeConfig,
    pub dir: tempfile::TempDir,
    pub cgroup_parent: String,
    pub disk: tempfile::TempDir,
}

impl Fixture {
    pub fn new() -> Self {
        Self::with_pool(UidPool::default())
    }

    /// A fixture whose runtime tries the uid ranges of `pool`.
    pub fn with_pool(pool: UidPool) -> Self {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let dir = tempfile::Builder::new()
            .prefix("layerlab-rt-")
            .tempdir_in("/dev/shm")
            .expect("temp dir");
        let cgroup_parent = format!("layerlab-test-{pid}-{n}");
        let mut config =
            RuntimeConfig::new(dir.path(), std::env::current_exe().expect("current exe"));
        config.uid_pool = pool;
        let disk = testkit::disk_dir();
        config.disk_dir = disk.path().to_owned();
        config.cgroup_parent = cgroup_parent.clone();
        let rt = Runtime::new(config.clone()).expect("runtime");
        Self {
            rt,
            config,
            dir,
            cgroup_parent,
            disk,
        }
    }

    pub fn spec(&self, id: &str) -> SandboxSpec {
        SandboxSpec::new(id, layers())
    }

    /// The arguments [`config_from_args`] turns back into this fixture's
    /// configuration in a child process.
    pub fn child_args(&self) -> [&std::ffi::OsStr; 3] {
        [
            self.dir.path().as_os_str(),
            self.cgroup_parent.as_ref(),
            self.disk.path().as_os_str(),
        ]
    }

    /// A fresh runtime on the same state directory (a restarted server).
    pub fn reopen(&self) -> Runtime {
        Runtime::new(self.config.clone()).expect("reopen runtime")
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Ok(list) = self.rt.list() {
            for s in list {
                let _ = self.rt.stop(&s.id, Duration::ZERO);
            }
        }
        for c in ["memory", "pids", "cpu", "cpuacct", ""] {
            let _ = std::fs::remove_dir(
                Path::new("/sys/fs/cgroup")
                    .join(c)
                    .join(&self.cgroup_parent),
            );
        }
    }
}

/// The configuration of the fixture whose [`Fixture::child_args`] a
/// child process was given.
pub fn config_from_args(args: &[String]) -> RuntimeConfig {
    let mut config = RuntimeConfig::new(&args[0], std::env::current_exe().expect("exe"));
    config.cgroup_parent = args[1].clone();
    config.disk_dir = args[2].clone().into();
    config
}

pub mod probe;

/// Builds the shared layers once, then runs `tests` four at a time.
pub fn run(tests: &[testkit::Test]) -> ! {
    testkit::run(tests, 4, || {
        let _ = layers();
    })
}
