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

/// Where concurrent test processes reserve disjoint blocks of the uid
/// space, so no two sandboxes on the machine ever share a range.
const UID_BLOCKS: &str = "/var/tmp/layerlab/test-uid-blocks";
const BLOCKS: u32 = 256;
const SLOTS_PER_BLOCK: u32 = 8;

/// Reserves a block (a file holding our pid; a dead owner's block is taken
/// over) and returns its number and lock file.
fn reserve_uid_block() -> (u32, PathBuf) {
    std::fs::create_dir_all(UID_BLOCKS).expect("create uid block dir");
    let me = std::process::id();
    for n in 0..BLOCKS {
        let path = Path::new(UID_BLOCKS).join(n.to_string());
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut f) => {
                use std::io::Write;
                f.write_all(me.to_string().as_bytes())
                    .expect("write uid block");
                return (n, path);
            }
            Err(_) => {
                let owner = std::fs::read_to_string(&path).unwrap_or_default();
                let dead = owner
                    .trim()
                    .parse::<u32>()
                    .is_ok_and(|p| !Path::new(&format!("/proc/{p}")).exists());
                if dead && std::fs::remove_file(&path).is_ok() {
                    // Retry this number through create_new so two takers cannot both win.
                    if let Ok(mut f) = std::fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .open(&path)
                    {
                        use std::io::Write;
                        f.write_all(me.to_string().as_bytes())
                            .expect("write uid block");
                        return (n, path);
                    }
                }
            }
        }
    }
    panic!("all {BLOCKS} test uid blocks under {UID_BLOCKS} are taken by live processes")
}

pub struct Fixture {
    pub rt: Runtime,
    pub config: RuntimeConfig,
    pub dir: tempfile::TempDir,
    pub cgroup_parent: String,
    uid_block: PathBuf,
}

impl Fixture {
    pub fn new() -> Self {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let dir = tempfile::Builder::new()
            .prefix("layerlab-rt-")
            .tempdir_in("/dev/shm")
            .expect("temp dir");
        let cgroup_parent = format!("layerlab-test-{pid}-{n}");
        let mut config =
            RuntimeConfig::new(dir.path(), std::env::current_exe().expect("current exe"));
        let (block, uid_block) = reserve_uid_block();
        config.uid_pool = UidPool {
            first: (1 << 29) + block * SLOTS_PER_BLOCK * 65536,
            count: SLOTS_PER_BLOCK,
        };
        config.cgroup_parent = cgroup_parent.clone();
        let rt = Runtime::new(config.clone()).expect("runtime");
        Self {
            rt,
            config,
            dir,
            cgroup_parent,
            uid_block,
        }
    }

    pub fn spec(&self, id: &str) -> SandboxSpec {
        SandboxSpec::new(id, layers())
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
        let _ = std::fs::remove_file(&self.uid_block);
    }
}

pub mod probe;

pub type Test = (&'static str, fn());

/// Runs `tests` (filtered by the non-option arguments) on a few threads and
/// prints the cargo-style summary line. Exits non-zero on any failure.
pub fn run(tests: &[Test]) -> ! {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let selected: Vec<&Test> = tests
        .iter()
        .filter(|(name, _)| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str())))
        .collect();
    let _ = layers();
    println!("\nrunning {} tests", selected.len());
    let queue = std::sync::Mutex::new(selected.into_iter());
    let results = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                loop {
                    let next = queue.lock().expect("queue").next();
                    let Some((name, f)) = next else { break };
                    let start = std::time::Instant::now();
                    let ok = std::panic::catch_unwind(f).is_ok();
                    println!(
                        "test {name} ... {} ({:.2?})",
                        if ok { "ok" } else { "FAILED" },
                        start.elapsed()
                    );
                    results.lock().expect("results").push((*name, ok));
                }
            });
        }
    });
    let results = results.into_inner().expect("results");
    let failed: Vec<_> = results
        .iter()
        .filter(|(_, ok)| !ok)
        .map(|(n, _)| *n)
        .collect();
    if !failed.is_empty() {
        println!("\nfailures:\n    {}", failed.join("\n    "));
    }
    let passed = results.len() - failed.len();
    println!(
        "\ntest result: {}. {passed} passed; {} failed; 0 ignored; 0 measured; 0 filtered out\n",
        if failed.is_empty() { "ok" } else { "FAILED" },
        failed.len()
    );
    std::process::exit(if failed.is_empty() { 0 } else { 1 })
}
