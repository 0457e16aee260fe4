//! The course shipped inside the binary (`lessons/` at build time), used
//! when `serve` gets no `--lessons`. It is written out once per content
//! into `<data dir>/course/bundled-<digest>/`, since the course loader and
//! the lesson assets read folders; a binary copied alone to another
//! machine serves it all the same. Debug builds embed it too
//! (`debug-embed`), so no build reads the checkout at run time.

use std::path::{Path, PathBuf};

use anyhow::Context;
use rust_embed::RustEmbed;
use sha2::{Digest, Sha256};

#[derive(RustEmbed)]
#[folder = "../lessons"]
struct Bundled;

/// Writes the bundled course under `data_dir` unless this very content is
/// there already, and returns its folder.
pub fn course_dir(data_dir: &Path) -> anyhow::Result<PathBuf> {
    let mut files: Vec<String> = Bundled::iter().map(|name| name.into_owned()).collect();
    files.sort();
    let mut digest = Sha256::new();
    for name in &files {
        let file = Bundled::get(name).context("a bundled lesson file vanished")?;
        digest.update(name.as_bytes());
        digest.update([0]);
        digest.update((file.data.len() as u64).to_le_bytes());
        digest.update(&file.data);
    }
    let root = data_dir.join("course");
    let dir = root.join(format!("bundled-{}", &hex::encode(digest.finalize())[..16]));
    if dir.is_dir() {
        return Ok(dir);
    }
    // Written beside, then renamed: a crash midway leaves no half course.
    let partial = root.join(format!(".bundled-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&partial);
    for name in &files {
        let file = Bundled::get(name).context("a bundled lesson file vanished")?;
        let path = partial.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, &file.data)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    std::fs::rename(&partial, &dir)
        .with_context(|| format!("cannot put the bundled course at {}", dir.display()))?;
    Ok(dir)
}
