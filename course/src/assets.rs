//! Files inside a lesson folder: safe lookup for serving, and the walk that
//! reports escaping symlinks and oversized files.
//!
//! Invariant: a path returned by [`lookup`] names a regular, non-hidden file
//! whose real location (after following symlinks) is inside the lesson
//! folder, so the server can open it without further checks.

use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use thiserror::Error;

use crate::diagnostics::Diagnostics;

/// lesson.md is read whole into memory and parsed; a real lesson is a few
/// tens of KiB.
pub(crate) const MAX_LESSON_BYTES: u64 = 1 << 20;
/// Diagrams, screenshots and small files to copy into the node; anything
/// bigger belongs in an image, not in the course.
pub(crate) const MAX_ASSET_BYTES: u64 = 8 << 20;
/// Bounds the walk over a hostile lesson folder.
const MAX_ENTRIES: usize = 2000;
const MAX_DEPTH: usize = 8;

/// Why an asset path was refused; each variant carries the path as written.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum AssetError {
    #[error(
        "`{0}` is not a plain relative path: use names separated by /, without `..`, leading / or hidden parts"
    )]
    /// `..`, an absolute path, a hidden part, a backslash or NUL.
    InvalidPath(String),
    #[error("`{0}` does not exist in the lesson folder: add the file or fix the link")]
    /// Nothing at that path.
    NotFound(String),
    #[error("`{0}` is a symbolic link leading outside the lesson folder: copy the file in instead")]
    /// A symlink whose target is outside the lesson folder, or dangling.
    Escapes(String),
    #[error("`{0}` is not a regular file: link to a file")]
    /// A folder or special file.
    NotAFile(String),
}

/// Finds `rel` (relative to `base`, which lies inside `lesson_dir`).
pub(crate) fn lookup(lesson_dir: &Path, base: &Path, rel: &str) -> Result<PathBuf, AssetError> {
    let invalid = || AssetError::InvalidPath(rel.to_string());
    if rel.is_empty() || rel.contains('\\') || rel.contains('\0') {
        return Err(invalid());
    }
    let relative = Path::new(rel);
    for component in relative.components() {
        match component {
            Component::Normal(name) if !name.to_string_lossy().starts_with('.') => {}
            _ => return Err(invalid()),
        }
    }
    let candidate = base.join(relative);
    let real = match fs::canonicalize(&candidate) {
        Ok(real) => real,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            // A dangling symlink is reported as escaping: it names something
            // that is not in the folder.
            return Err(if fs::symlink_metadata(&candidate).is_ok() {
                AssetError::Escapes(rel.to_string())
            } else {
                AssetError::NotFound(rel.to_string())
            });
        }
        Err(_) => return Err(AssetError::NotFound(rel.to_string())),
    };
    let root = fs::canonicalize(lesson_dir).map_err(|_| AssetError::NotFound(rel.to_string()))?;
    if !real.starts_with(&root) {
        return Err(AssetError::Escapes(rel.to_string()));
    }
    match fs::metadata(&real) {
        Ok(meta) if meta.is_file() => Ok(real),
        Ok(_) => Err(AssetError::NotAFile(rel.to_string())),
        Err(_) => Err(AssetError::NotFound(rel.to_string())),
    }
}

/// The `Content-Type` to serve an asset with, guessed from its extension.
pub fn content_type(path: &Path) -> String {
    mime_guess::from_path(path)
        .first_or_octet_stream()
        .essence_str()
        .to_string()
}

/// Reports symlinks leaving the lesson folder, special files and oversized
/// files anywhere in it. `rel` is the folder's path relative to the course
/// directory, for diagnostics.
pub(crate) fn scan(lesson_dir: &Path, rel: &Path, diags: &mut Diagnostics) {
    let Ok(root) = fs::canonicalize(lesson_dir) else {
        diags.push(
            rel,
            None,
            "cannot open the lesson folder: check its permissions".into(),
        );
        return;
    };
    let mut pending = vec![(PathBuf::new(), 0usize)];
    let mut seen = 0usize;
    while let Some((sub, depth)) = pending.pop() {
        let entries = match fs::read_dir(lesson_dir.join(&sub)) {
            Ok(entries) => entries,
            Err(e) => {
                diags.push(
                    rel.join(&sub),
                    None,
                    format!("cannot list this folder ({e}): check its permissions"),
                );
                continue;
            }
        };
        for entry in entries.flatten() {
            seen += 1;
            if seen > MAX_ENTRIES {
                diags.push(rel, None, format!("more than {MAX_ENTRIES} files in the lesson folder: keep only what the lesson uses"));
                return;
            }
            let name = sub.join(entry.file_name());
            let shown = rel.join(&name);
            let Ok(meta) = fs::symlink_metadata(entry.path()) else {
                continue;
            };
            let file_type = meta.file_type();
            if file_type.is_symlink() {
                match fs::canonicalize(entry.path()) {
                    Ok(real) if real.starts_with(&root) => {}
                    _ => diags.push(
                        shown,
                        None,
                        "symbolic link leading outside the lesson folder (or nowhere): copy the file in instead".into(),
                    ),
                }
            } else if file_type.is_dir() {
                if depth + 1 >= MAX_DEPTH {
                    diags.push(
                        shown,
                        None,
                        format!("folders nested deeper than {MAX_DEPTH} levels: flatten them"),
                    );
                } else {
                    pending.push((name, depth + 1));
                }
            } else if !file_type.is_file() {
                diags.push(
                    shown,
                    None,
                    "not a regular file or folder: remove it".into(),
                );
            } else {
                let limit = if name == Path::new("lesson.md") {
                    MAX_LESSON_BYTES
                } else {
                    MAX_ASSET_BYTES
                };
                if meta.len() > limit {
                    diags.push(
                        shown,
                        None,
                        format!(
                            "file is {}, more than the {} allowed: make it smaller",
                            size(meta.len()),
                            size(limit)
                        ),
                    );
                }
            }
        }
    }
}

/// Sizes in MiB with one decimal, as people read file listings.
fn size(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1u32 << 20))
}
