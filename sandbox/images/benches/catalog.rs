//! `cargo bench -p images --bench catalog`: two figures from the catalog,
//! each next to what it is compared with, measured in the same run.
//!
//! 1. Unpacking debian's layer (about 120 MB of files) with the store,
//!    against GNU `tar -xf` of the same decompressed tar into an empty
//!    directory; median of several runs each.
//! 2. Sharing: disk used (`du`) by the blobs and unpacked snapshots of
//!    debian, nginx and workstation in the store, against the sum of each
//!    image's own layers counted separately, as if no layer were shared.
//!
//! Uses the catalog the tests build in /var/tmp/layerlab/test-data
//! (building it first if needed, which takes minutes).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use store::Store;
use store::archive::{Limits, WhiteoutMode};

const SHARED_ROOT: &str = "/var/tmp/layerlab/test-data";
const RUNS: usize = 7;

fn main() {
    let root = Path::new(SHARED_ROOT);
    let store = Store::open(&root.join("store")).expect("open the shared store");
    let built = images::build_catalog(
        &store,
        &root.join("cache").join("images"),
        &std::env::current_exe().expect("the bench's own executable"),
        &images::packages::Mirror::new(&root.join("packages")),
        |event| match event {
            images::Progress::Output { .. } => {}
            other => eprintln!("{other}"),
        },
    )
    .expect("catalog build");
    let image = |name: &str| {
        built
            .iter()
            .find(|b| b.name == name)
            .unwrap_or_else(|| panic!("{name} not built"))
    };

    let scratch = tempfile::tempdir_in("/var/tmp").expect("scratch dir");
    unpack_figure(&store, image("debian:bookworm"), scratch.path());
    sharing_figure(
        &store,
        &[
            image("debian:bookworm"),
            image("nginx:latest"),
            image("workstation:latest"),
        ],
    );
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Runs `f` on a fresh empty directory `RUNS` times, timing only `f`.
fn time_into_fresh_dir(scratch: &Path, label: &str, mut f: impl FnMut(&Path)) -> Vec<Duration> {
    (0..RUNS)
        .map(|i| {
            let dir = scratch.join(format!("{label}-{i}"));
            std::fs::create_dir(&dir).expect("target dir");
            sync();
            let start = Instant::now();
            f(&dir);
            let elapsed = start.elapsed();
            std::fs::remove_dir_all(&dir).expect("clean target dir");
            elapsed
        })
        .collect()
}

/// Flushes dirty pages so one run's writeback does not land in the next.
fn sync() {
    let _ = Command::new("sync").status();
}

fn unpack_figure(store: &Store, debian: &images::BuiltImage, scratch: &Path) {
    let layer = &debian.layers[0];
    let blob = store.blob_path(&layer.digest).expect("debian layer blob");
    let tar = scratch.join("debian.tar");
    let status = Command::new("gzip")
        .arg("-dc")
        .arg(&blob)
        .stdout(File::create(&tar).expect("tar file"))
        .status()
        .expect("gzip");
    assert!(status.success(), "gzip -dc failed");
    let tar_mb = std::fs::metadata(&tar).expect("tar").len() as f64 / 1e6;

    let ours = time_into_fresh_dir(scratch, "store", |dir| {
        let file = File::open(&tar).expect("open tar");
        store::archive::unpack(file, dir, WhiteoutMode::Overlay, Limits::default())
            .expect("store unpack");
    });
    let gnu = time_into_fresh_dir(scratch, "tar", |dir| {
        let status = Command::new("tar")
            .arg("-xf")
            .arg(&tar)
            .arg("-C")
            .arg(dir)
            .stderr(Stdio::null())
            .status()
            .expect("tar");
        assert!(status.success(), "tar -xf failed");
    });
    let ours_gz = time_into_fresh_dir(scratch, "store-gz", |dir| {
        let file = File::open(&blob).expect("open blob");
        store::archive::unpack(file, dir, WhiteoutMode::Overlay, Limits::default())
            .expect("store unpack");
    });

    println!();
    println!(
        "(1) unpack debian:bookworm's layer ({tar_mb:.0} MB tar, {} MB gzip), median of {RUNS}",
        layer.size / 1_000_000
    );
    println!("    {:<44} {:>10}", "", "median");
    for (label, samples) in [
        ("store::archive::unpack (decompressed tar)", &ours),
        ("tar -xf (same decompressed tar)", &gnu),
        ("store::archive::unpack (gzip blob, as pulled)", &ours_gz),
    ] {
        println!(
            "    {label:<44} {:>8.0} ms",
            median(samples.clone()).as_secs_f64() * 1e3
        );
    }
}

/// Disk usage in bytes of `paths` taken together (`du -s -B1 -c`).
fn du(paths: &[PathBuf]) -> u64 {
    let out = Command::new("du")
        .args(["-s", "-B1", "-c"])
        .args(paths)
        .output()
        .expect("du");
    assert!(
        out.status.success(),
        "du failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("du total")
}

fn sharing_figure(store: &Store, images: &[&images::BuiltImage]) {
    let mut all = Vec::new();
    let mut separately = 0;
    let mut rows = Vec::new();
    for image in images {
        // Unpacking makes sure every snapshot exists; the lease lives
        // until the measurement is done.
        let unpacked = store.unpack(&image.manifest_digest).expect("unpack");
        let mut paths: Vec<PathBuf> = image
            .layers
            .iter()
            .map(|l| store.blob_path(&l.digest).expect("layer blob"))
            .collect();
        paths.push(store.blob_path(&image.config_digest).expect("config blob"));
        paths.push(
            store
                .blob_path(&image.manifest_digest)
                .expect("manifest blob"),
        );
        paths.extend(unpacked.lowerdirs.iter().cloned());
        let own = du(&paths);
        separately += own;
        rows.push((image.name.clone(), image.layers.len(), own));
        all.extend(paths);
        drop(unpacked);
    }
    all.sort();
    all.dedup();
    let shared = du(&all);

    println!();
    println!("(2) disk used by blobs + unpacked snapshots (du -B1)");
    for (name, layers, own) in rows {
        println!(
            "    {name:<22} {layers} layers   {:>8.1} MB",
            own as f64 / 1e6
        );
    }
    println!(
        "    {:<33} {:>8.1} MB",
        "sum, each image counted alone",
        separately as f64 / 1e6
    );
    println!(
        "    {:<33} {:>8.1} MB",
        "in the store (layers shared)",
        shared as f64 / 1e6
    );
    println!(
        "    saved by sharing: {:.1} MB ({:.0}%)",
        (separately - shared) as f64 / 1e6,
        100.0 * (separately - shared) as f64 / separately as f64
    );
}
