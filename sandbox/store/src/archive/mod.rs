//! Layer tars: unpacking (tar → directory) and diffing (directory → tar).
//!
//! Both sides speak two whiteout dialects. In a tar, a deleted `name` is an
//! empty file `.wh.name` and an opaque directory holds `.wh..wh..opq`. On
//! disk, in overlay form, a deleted name is a 0:0 character device and an
//! opaque directory carries `trusted.overlay.opaque=y`. [`unpack`] converts
//! tar → overlay (or, in [`WhiteoutMode::Apply`], deletes what the whiteouts
//! name); [`diff`] converts overlay → tar.
//!
//! Every tar is hostile. Paths are normalized and refused if absolute or if
//! they contain `..`; every file operation resolves its parent beneath the
//! target root with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` and acts
//! on the last component with `*at` calls that never follow a symlink, so a
//! symlink in the tree can never redirect a write; sizes, entry counts and
//! the expansion ratio are bounded while the stream is read.

pub(crate) mod beneath;
mod changes;
mod compression;
mod diff;
mod lookup;
mod unpack;

pub use changes::{Change, ChangeKind, changes};
pub use compression::{Compression, Limits};
pub use diff::{
    DiffOptions, DiffSummary, PathStat, dir_in_root, read_in_root, stat_beneath, write_tar,
    write_tar_at, write_tar_of,
};
pub use lookup::kind_in_layers;
pub use unpack::{UnpackSummary, WhiteoutMode, unpack, unpack_into};

pub use crate::error::ArchiveError;

#[cfg(test)]
pub(crate) use diff::pax_xattr_records;
pub(crate) use diff::{TarChunks, TarReader, tar_compressed, tar_compressed_dir};

/// A bounded decompressing reader over a layer blob (compression detected
/// by magic bytes), for callers that want the tar stream itself.
pub(crate) fn compression_reader<'a>(
    raw: impl std::io::Read + Send + 'a,
    limits: Limits,
) -> crate::Result<(impl std::io::Read + 'a, Compression)> {
    compression::decompress(raw, limits)
        .map_err(|e| ArchiveError::Corrupt(format!("reading compressed stream: {e}")).into())
}

/// The prefix that marks a whiteout in a layer tar.
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// The name that marks an opaque directory in a layer tar.
pub const OPAQUE_WHITEOUT: &str = ".wh..wh..opq";
/// The xattr overlayfs reads to treat a directory as opaque.
pub const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";
/// `nobody` inside a user namespace: what an owner it cannot map becomes.
pub(crate) const NOBODY: u32 = 65534;
