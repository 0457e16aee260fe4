//! Unpacking one large gzip layer: the store against GNU `tar -xzf`.
//!
//! Builds a ~100 MB tree of mixed files (many small text-like files, some
//! large random ones, symlinks, hard links) once per run, turns it into a
//! gzip layer with the store, then times, median of several runs:
//!
//! - `tar -xzf` of that blob into an empty directory (as root, so it keeps
//!   owners, like the store), alone and followed by `sync -f` (the
//!   durability `Store::unpack` gives before it publishes a snapshot);
//! - `archive::unpack` of the same blob into an empty directory;
//! - `Store::unpack` of an image made of that layer into a fresh store
//!   (adds the diff-id check, the lease, syncfs, and the rename into place).
//!
//! Every run writes ~110 MB, so on a shared disk the figures swing with
//! other writers. `STORE_BENCH_DIR=/dev/shm` measures on tmpfs instead,
//! which leaves the CPU work of both sides.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use store::archive::{Compression, DiffOptions, Limits, WhiteoutMode, unpack};
use store::{Expected, Store};

const RUNS: usize = 5;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

const WORDS: &[&str] = &[
    "container",
    "layer",
    "image",
    "overlay",
    "namespace",
    "cgroup",
    "docker",
    "kernel",
    "debian",
    "lesson",
];

fn make_tree(root: &Path) -> u64 {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut total = 0u64;
    for d in 0..150 {
        let dir = root.join(format!("usr/share/pkg{d:03}"));
        std::fs::create_dir_all(&dir).expect("mkdir");
        for f in 0..100 {
            let len = 512 + (rng.next() % 5500) as usize;
            let mut text = String::with_capacity(len);
            while text.len() < len {
                text.push_str(WORDS[(rng.next() % WORDS.len() as u64) as usize]);
                text.push(if rng.next().is_multiple_of(8) {
                    '\n'
                } else {
                    ' '
                });
            }
            std::fs::write(dir.join(format!("file{f:03}.txt")), &text).expect("write");
            total += text.len() as u64;
        }
        std::os::unix::fs::symlink("file000.txt", dir.join("link")).expect("symlink");
        std::fs::hard_link(dir.join("file001.txt"), dir.join("hard")).expect("link");
    }
    std::fs::create_dir_all(root.join("usr/lib")).expect("mkdir");
    for (i, size) in [(0, 8 << 20), (1, 8 << 20)]
        .into_iter()
        .chain((2..42).map(|i| (i, 1 << 20)))
    {
        let mut data = vec![0u8; size];
        for chunk in data.chunks_mut(8) {
            let v = rng.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
        // Half of each binary compresses (zeros), like real executables.
        for b in data.iter_mut().skip(size / 2) {
            *b = 0;
        }
        std::fs::write(root.join(format!("usr/lib/lib{i:02}.so")), &data).expect("write");
        total += size as u64;
    }
    total
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time(mut f: impl FnMut() -> Duration) -> Duration {
    median((0..RUNS).map(|_| f()).collect())
}

fn main() {
    let base = std::env::var_os("STORE_BENCH_DIR").unwrap_or_else(|| "/var/tmp".into());
    let work = tempfile::tempdir_in(&base).expect("tempdir");
    println!("working under {}", Path::new(&base).display());
    let tree = work.path().join("tree");
    std::fs::create_dir(&tree).expect("mkdir");
    let bytes = make_tree(&tree);
    let builder = Store::open(&work.path().join("builder")).expect("store");
    let layer = builder
        .create_layer_from_dir(
            &tree,
            &DiffOptions {
                compression: Compression::Gzip,
                ..DiffOptions::default()
            },
        )
        .expect("layer");
    let blob = builder.blob_path(&layer.digest).expect("blob");
    println!(
        "layer: {:.1} MB of files, {:.1} MB gzip blob, {} runs each, median",
        bytes as f64 / 1e6,
        layer.size as f64 / 1e6,
        RUNS
    );

    let mut n = 0;
    let mut fresh = |name: &str| {
        n += 1;
        let d = work.path().join(format!("{name}-{n}"));
        std::fs::create_dir(&d).expect("mkdir");
        d
    };

    let run_tar = |dir: &Path, sync: bool| {
        let start = Instant::now();
        let status = Command::new("tar")
            .arg("-xzf")
            .arg(&blob)
            .arg("-C")
            .arg(dir)
            .status()
            .expect("run tar");
        assert!(status.success(), "tar failed");
        if sync {
            let status = Command::new("sync")
                .arg("-f")
                .arg(dir)
                .status()
                .expect("run sync");
            assert!(status.success(), "sync failed");
        }
        start.elapsed()
    };
    let tar = time(|| {
        let dir = fresh("tar");
        let t = run_tar(&dir, false);
        std::fs::remove_dir_all(&dir).expect("cleanup");
        t
    });
    let tar_sync = time(|| {
        let dir = fresh("tarsync");
        let t = run_tar(&dir, true);
        std::fs::remove_dir_all(&dir).expect("cleanup");
        t
    });

    let ours = time(|| {
        let dir = fresh("unpack");
        let start = Instant::now();
        let f =
            std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(&blob).expect("open"));
        unpack(f, &dir, WhiteoutMode::Overlay, Limits::default()).expect("unpack");
        let t = start.elapsed();
        std::fs::remove_dir_all(&dir).expect("cleanup");
        t
    });

    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
        layer.diff_id
    );
    let full = time(|| {
        let root = fresh("store");
        let s = Store::open(&root).expect("store");
        s.write_blob(
            std::fs::File::open(&blob).expect("open"),
            Expected::exact(layer.digest.clone(), layer.size),
        )
        .expect("blob");
        let image = s
            .write_image(config.as_bytes(), std::slice::from_ref(&layer))
            .expect("image");
        let start = Instant::now();
        let unpacked = s.unpack(&image.manifest_digest).expect("unpack");
        let t = start.elapsed();
        drop(unpacked);
        std::fs::remove_dir_all(&root).expect("cleanup");
        t
    });

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{:<48} {:>10}",
        "unpack of the same gzip layer", "median ms"
    );
    println!("{:<48} {:>10.0}", "tar -xzf (GNU tar + gzip)", ms(tar));
    println!("{:<48} {:>10.0}", "store::archive::unpack", ms(ours));
    println!("{:<48} {:>10.0}", "tar -xzf && sync -f", ms(tar_sync));
    println!(
        "{:<48} {:>10.0}",
        "Store::unpack (diff id check, syncfs, rename)",
        ms(full)
    );
    println!(
        "store/tar: {:.2} unsynced, {:.2} synced",
        ours.as_secs_f64() / tar.as_secs_f64(),
        full.as_secs_f64() / tar_sync.as_secs_f64()
    );
}
