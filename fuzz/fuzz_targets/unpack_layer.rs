//! A layer tar, plain or gzip, unpacked by the store into a fresh
//! directory: no input may panic the unpacker or put anything outside its
//! target directory.
//!
//! The first byte picks the variant: bit 0 gzips the rest here (so the
//! fuzzer mutates tar headers, not compressed bytes, and the gzip path
//! still runs), bit 1 selects whiteout mode `Apply` instead of `Overlay`.
//! The rest is the layer stream as a registry would send it (gzip and zstd
//! are also recognised by their magic bytes).

#![no_main]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use store::archive::{self, WhiteoutMode};

/// Fresh per process, on tmpfs: one run creates and removes a directory.
fn base() -> &'static Path {
    static BASE: OnceLock<PathBuf> = OnceLock::new();
    BASE.get_or_init(|| {
        let shm = Path::new("/dev/shm");
        let parent = if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        layerlab_fuzz::process_dir(&parent, "unpack")
    })
}

/// Names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read the fuzz directory")
        .map(|e| {
            e.expect("directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, layer)) = data.split_first() else {
        return;
    };
    let stream: Vec<u8> = if flags & 1 == 1 {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(layer).expect("gzip into memory");
        gz.finish().expect("gzip into memory")
    } else {
        layer.to_vec()
    };
    let mode = if flags & 2 == 2 {
        WhiteoutMode::Apply
    } else {
        WhiteoutMode::Overlay
    };
    // The default limits allow 16 GiB files; a header claiming one must
    // not fill the tmpfs. Small limits keep the limit checks in play.
    let limits = archive::Limits {
        max_expanded: 32 << 20,
        max_ratio: 200,
        ratio_floor: 1 << 20,
        max_entry_size: 16 << 20,
        max_entries: 10_000,
    };

    let base = base();
    let run = base.join("run");
    let dest = run.join("dest");
    std::fs::create_dir_all(&dest).expect("create the destination");
    let _ = archive::unpack(stream.as_slice(), &dest, mode, limits);

    // Whatever the layer said, only `dest` may have changed.
    assert_eq!(names(base), ["run"], "the unpack wrote beside its parent");
    assert_eq!(names(&run), ["dest"], "the unpack wrote beside its target");
    // A file the layer made read-only or a directory it made 0000 must not
    // keep the next run from starting clean.
    layerlab_fuzz::make_removable(&dest);
    std::fs::remove_dir_all(&run).expect("remove the run's directory");
});
