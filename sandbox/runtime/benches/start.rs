//! `cargo bench -p runtime --bench start`: sandbox start-up, start-run-exit
//! of `true` against `unshare` (the floor) and Docker (when an engine
//! answers), memory per idle sandbox, and how many idle sandboxes fit —
//! all measured in one run. Like the product binary, this executable is
//! also the helper (it calls `main_if_requested` first).

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use runtime::{Runtime, RuntimeConfig, SandboxSpec, UidPool};

const STARTS: usize = 60;
const CAPACITY: usize = 500;

fn percentile(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:8.2} ms", d.as_secs_f64() * 1000.0)
}

fn row(name: &str, v: &mut [Duration]) -> Duration {
    let p50 = percentile(v, 0.5);
    println!(
        "{name:<52} p50 {}   p99 {}   (n={})",
        ms(p50),
        ms(percentile(v, 0.99)),
        v.len()
    );
    p50
}

/// Stops every sandbox of the runtime when dropped, so a failing or
/// interrupted measurement leaves nothing behind.
struct Cleanup<'a>(&'a Runtime, &'a str);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if let Ok(list) = self.0.list() {
            for s in list {
                if let Err(e) = self.0.stop(&s.id, Duration::ZERO) {
                    eprintln!("cleanup of {} failed: {e}", s.id);
                }
            }
        }
        for c in ["memory", "pids", "cpu", ""] {
            let _ = std::fs::remove_dir(Path::new("/sys/fs/cgroup").join(c).join(self.1));
        }
    }
}

fn flat_rootfs(layers: &[std::path::PathBuf]) -> std::path::PathBuf {
    let flat = Path::new(support::ROOTFS).with_extension("flat");
    if !flat.join("bin/true").exists() {
        let tmp = flat.with_extension(format!("tmp{}", std::process::id()));
        let mut cmd = format!("rm -rf {0} && mkdir -p {0}", tmp.display());
        for l in layers.iter().rev() {
            cmd.push_str(&format!(" && cp -a {}/. {}/", l.display(), tmp.display()));
        }
        let ok = Command::new("sh")
            .arg("-c")
            .arg(&cmd)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "building the flat rootfs failed: {cmd}");
        let _ = std::fs::rename(&tmp, &flat);
    }
    flat
}

fn time_command(cmd: &mut Command, n: usize) -> Option<Vec<Duration>> {
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let st = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .ok()?;
        if !st.success() {
            return None;
        }
        v.push(t.elapsed());
    }
    Some(v)
}

fn docker_answers() -> bool {
    let Ok(mut child) = Command::new("docker")
        .arg("info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    else {
        return false;
    };
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(5) {
        if let Ok(Some(st)) = child.try_wait() {
            return st.success();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    false
}

fn kb_field(text: &str, field: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn mem_available_kb() -> u64 {
    kb_field(
        &std::fs::read_to_string("/proc/meminfo").unwrap_or_default(),
        "MemAvailable:",
    )
}

fn read_u64(p: &Path) -> u64 {
    std::fs::read_to_string(p)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

fn main() {
    runtime::helper::main_if_requested();
    let layers = support::layers();
    let state = tempfile::Builder::new()
        .prefix("layerlab-bench-")
        .tempdir_in("/dev/shm")
        .expect("temp dir");
    let mut config = RuntimeConfig::new(state.path(), std::env::current_exe().expect("exe"));
    config.uid_pool = UidPool {
        first: 3 << 30,
        count: (CAPACITY + 16) as u32,
    };
    config.cgroup_parent = format!("layerlab-bench-{}", std::process::id());
    let disk = testkit::disk_dir();
    config.disk_dir = disk.path().to_owned();
    let rt = Runtime::new(config.clone()).expect("runtime");
    let cleanup = Cleanup(&rt, &config.cgroup_parent);
    let spec = |id: &str| SandboxSpec::new(id, layers.clone());

    println!(
        "\n== sandbox start (busybox rootfs, 2 layers, all namespaces, bridge, cgroups, seccomp) =="
    );
    for i in 0..5 {
        rt.create(spec(&format!("warm{i}")))
            .expect("warm-up create");
        rt.stop(&format!("warm{i}"), Duration::ZERO)
            .expect("warm-up stop");
    }
    let (mut ready, mut stop) = (Vec::new(), Vec::new());
    for i in 0..STARTS {
        let id = format!("ready{i}");
        let t = Instant::now();
        rt.create(spec(&id)).expect("create");
        ready.push(t.elapsed());
        let t = Instant::now();
        rt.stop(&id, Duration::ZERO).expect("stop");
        stop.push(t.elapsed());
    }
    let ready_p50 = row("layerlab: create -> ready for exec", &mut ready);
    row("layerlab: stop + full cleanup", &mut stop);

    println!("\n== start, run `true`, exit, clean up ==");
    // Ours and the floor alternate, so both see the same machine load.
    let flat = flat_rootfs(&layers);
    let mut unshare = Command::new("unshare");
    unshare
        .args(["-Urmpfu", "--mount-proc", "chroot"])
        .arg(&flat)
        .arg("/bin/true");
    let (mut once, mut floor) = (Vec::new(), Vec::new());
    for i in 0..STARTS {
        let mut s = spec(&format!("once{i}"));
        s.network.bridge = None;
        let t = Instant::now();
        let st = runtime::run_once(&config, s, vec!["true".into()], false).expect("run_once");
        once.push(t.elapsed());
        assert!(st.success());
        floor.extend(time_command(&mut unshare, 1).expect("unshare -Urmpfu failed to run"));
    }
    let once_p50 = row("layerlab: run_once(true), no bridge", &mut once);
    let floor_p50 = Some(row(
        "floor: unshare -Urmpfu --mount-proc chroot R true",
        &mut floor,
    ));
    if docker_answers() {
        match time_command(
            Command::new("docker").args(["run", "--rm", "--network", "none", "busybox", "true"]),
            10,
        ) {
            Some(mut v) => {
                row("docker run --rm --network none busybox true", &mut v);
            }
            None => println!(
                "docker: engine answers but `docker run busybox true` failed (image missing?)"
            ),
        }
    } else {
        println!("docker: no Docker engine answers here; comparison not available");
    }

    println!("\n== idle sandboxes: memory and capacity ==");
    let before = mem_available_kb();
    let t = Instant::now();
    let mut started = 0;
    for i in 0..CAPACITY {
        match rt.create(spec(&format!("idle{i}"))) {
            Ok(_) => started += 1,
            Err(e) => {
                println!("stopped at {i} idle sandboxes: {e}");
                break;
            }
        }
    }
    let start_all = t.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    let after = mem_available_kb();
    let (mut pss, mut rss, mut charged, mut kmem) = (0u64, 0u64, 0u64, 0u64);
    let sample = rt.list().expect("list");
    for s in &sample {
        if let Some(pid) = s.init_pid {
            let roll =
                std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
            pss += kb_field(&roll, "Pss:");
            rss += kb_field(&roll, "Rss:");
        }
        let mem = Path::new("/sys/fs/cgroup/memory")
            .join(&config.cgroup_parent)
            .join(&s.id);
        charged += read_u64(&mem.join("memory.usage_in_bytes")) / 1024;
        kmem += read_u64(&mem.join("memory.kmem.usage_in_bytes")) / 1024;
    }
    let n = sample.len().max(1) as u64;
    println!(
        "started {started} idle sandboxes in {:.2?} ({:.2} ms each)",
        start_all,
        start_all.as_secs_f64() * 1000.0 / started.max(1) as f64
    );
    println!(
        "per idle sandbox: init PSS {} KiB (RSS {} KiB); cgroup charge {} KiB, of which kernel {} KiB",
        pss / n,
        rss / n,
        charged / n,
        kmem / n
    );
    println!(
        "per idle sandbox: PSS + cgroup kernel memory = {:.2} MiB (target < 10 MiB)",
        (pss / n + kmem / n) as f64 / 1024.0
    );
    println!(
        "host MemAvailable dropped by {:.2} MiB per sandbox",
        before.saturating_sub(after) as f64 / 1024.0 / n as f64
    );
    let per = (pss / n + kmem / n).max(1);
    println!(
        "=> this machine ({} MiB available before) holds about {} idle sandboxes by memory",
        before / 1024,
        before / per
    );
    let sysctl = |p: &str| {
        std::fs::read_to_string(p)
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "?".into())
    };
    println!(
        "   other ceilings: kernel.pid_max {} (1 process per idle sandbox), user.max_user_namespaces {}, \
         user.max_net_namespaces {}, uid pool {} slots by default",
        sysctl("/proc/sys/kernel/pid_max"),
        sysctl("/proc/sys/user/max_user_namespaces"),
        sysctl("/proc/sys/user/max_net_namespaces"),
        UidPool::default().count
    );
    let t = Instant::now();
    drop(cleanup);
    let left = rt.list().map(|l| l.len()).unwrap_or(usize::MAX);
    println!(
        "stopped and cleaned up all of them in {:.2?}; sandboxes left: {left}",
        t.elapsed()
    );

    println!("\n== verdict ==");
    println!(
        "ready p50 {} (target < 50 ms): {}",
        ms(ready_p50),
        if ready_p50 < Duration::from_millis(50) {
            "met"
        } else {
            "MISSED"
        }
    );
    if let Some(f) = floor_p50 {
        let ratio = once_p50.as_secs_f64() / f.as_secs_f64();
        println!(
            "start-run-exit {:.1}x the unshare floor (target <= 5x): {}",
            ratio,
            if ratio <= 5.0 { "met" } else { "MISSED" }
        );
    }
}
