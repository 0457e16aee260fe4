//! What the fuzz targets share: a scratch directory per fuzzer process.

use std::path::{Path, PathBuf};

/// A fresh, empty directory `layerlab-fuzz-<target>-<pid>` under `parent`
/// for this process, after removing those of fuzzer processes that are
/// gone (libFuzzer exits without cleaning up).
pub fn process_dir(parent: &Path, target: &str) -> PathBuf {
    let prefix = format!("layerlab-fuzz-{target}-");
    if let Ok(entries) = std::fs::read_dir(parent) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(&prefix)) else {
                continue;
            };
            if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
                make_removable(&entry.path());
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    let dir = parent.join(format!("{prefix}{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the fuzzer's scratch directory");
    dir
}

/// Gives every directory under `dir` (never following links) owner rwx,
/// so whatever an input made read-only can be removed.
pub fn make_removable(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = std::fs::symlink_metadata(dir) else {
        return;
    };
    if !meta.is_dir() {
        return;
    }
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            make_removable(&entry.path());
        }
    }
}
