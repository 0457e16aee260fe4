//! directory → tar stream (a layer), with whiteouts in tar form.

use std::collections::HashMap;
use std::fs::{self, File, Metadata};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use rustix::fs::{major, minor};
use tar::{EntryType, Header};

use super::{ArchiveError, Compression, OPAQUE_WHITEOUT, OVERLAY_OPAQUE_XATTR, WHITEOUT_PREFIX};
use crate::content::{ContentStore, Expected, Ingester};
use crate::digest::{Digest, Hashing};
use crate::error::Result;
use crate::manifests::Layer;

/// How to turn a directory into a layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffOptions {
    pub compression: Compression,
    /// Clamp every mtime to at most this many seconds since the epoch (as
    /// `SOURCE_DATE_EPOCH` does), so rebuilding the same tree later gives
    /// the same digest.
    pub clamp_mtime: Option<u64>,
}

impl Default for DiffOptions {
    fn default() -> DiffOptions {
        DiffOptions {
            compression: Compression::Gzip,
            clamp_mtime: None,
        }
    }
}

/// What [`write_tar`] produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffSummary {
    /// sha256 of the uncompressed tar.
    pub diff_id: Digest,
    pub tar_size: u64,
    pub entries: u64,
}

fn io_err(what: &'static str, path: &Path, source: io::Error) -> ArchiveError {
    ArchiveError::Io {
        what,
        path: path.to_owned(),
        source,
    }
}

/// Writes `dir` as an uncompressed layer tar to `out`: entries sorted
/// bytewise by path, owners and modes as on disk, no user or group names,
/// overlay whiteouts (0:0 char devices, opaque xattr) turned into
/// `.wh.` entries, hard links kept as links to the first path seen.
/// `dir` may be an overlay upperdir or a whole rootfs.
pub fn write_tar(dir: &Path, options: &DiffOptions, out: impl Write) -> Result<DiffSummary> {
    let hashing = Hashing::new(out);
    let mut walker = Walker {
        builder: tar::Builder::new(hashing),
        options,
        links: HashMap::new(),
        entries: 0,
    };
    walker.walk_dir(dir, "")?;
    let hashing = walker
        .builder
        .into_inner()
        .map_err(|e| io_err("finishing tar", dir, e))?;
    let entries = walker.entries;
    let (_, diff_id, tar_size) = hashing.into_inner();
    Ok(DiffSummary {
        diff_id,
        tar_size,
        entries,
    })
}

struct Walker<'a, W: Write> {
    builder: tar::Builder<W>,
    options: &'a DiffOptions,
    /// (dev, ino) of multiply-linked files already written, and their path.
    links: HashMap<(u64, u64), String>,
    entries: u64,
}

impl<W: Write> Walker<'_, W> {
    fn walk_dir(&mut self, dir: &Path, prefix: &str) -> Result<()> {
        let mut names: Vec<_> = fs::read_dir(dir)
            .map_err(|e| io_err("listing", dir, e))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<_>>()
            .map_err(|e| io_err("listing", dir, e))?;
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for name in names {
            let path = dir.join(&name);
            let name = name.to_str().ok_or_else(|| ArchiveError::UnsafePath {
                path: path.display().to_string(),
                reason: "file names in layers must be UTF-8",
            })?;
            let rel = format!("{prefix}{name}");
            let meta = fs::symlink_metadata(&path).map_err(|e| io_err("inspecting", &path, e))?;
            self.entry(&path, &rel, name, prefix, &meta)?;
        }
        Ok(())
    }

    fn header(&self, meta: &Metadata, kind: EntryType) -> Header {
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(meta.mode() & 0o7777);
        h.set_uid(meta.uid().into());
        h.set_gid(meta.gid().into());
        let mtime = meta.mtime().max(0) as u64;
        h.set_mtime(self.options.clamp_mtime.map_or(mtime, |c| mtime.min(c)));
        h.set_size(0);
        h
    }

    fn append(
        &mut self,
        header: &mut Header,
        rel: &str,
        data: impl io::Read,
        fs_path: &Path,
    ) -> Result<()> {
        self.entries += 1;
        self.builder
            .append_data(header, rel, data)
            .map_err(|e| io_err("adding to tar", fs_path, e).into())
    }

    fn entry(
        &mut self,
        path: &Path,
        rel: &str,
        name: &str,
        prefix: &str,
        meta: &Metadata,
    ) -> Result<()> {
        let ft = meta.file_type();
        if ft.is_char_device() && meta.rdev() == 0 {
            let mut h = self.header(meta, EntryType::Regular);
            return self.append(
                &mut h,
                &format!("{prefix}{WHITEOUT_PREFIX}{name}"),
                io::empty(),
                path,
            );
        }
        self.pax_xattrs(path, rel)?;
        if ft.is_dir() {
            let mut h = self.header(meta, EntryType::Directory);
            self.append(&mut h, &format!("{rel}/"), io::empty(), path)?;
            if is_opaque(path) {
                let mut h = self.header(meta, EntryType::Regular);
                h.set_mode(0o644);
                self.append(
                    &mut h,
                    &format!("{rel}/{OPAQUE_WHITEOUT}"),
                    io::empty(),
                    path,
                )?;
            }
            return self.walk_dir(path, &format!("{rel}/"));
        }
        if ft.is_symlink() {
            let target = fs::read_link(path).map_err(|e| io_err("reading symlink", path, e))?;
            let mut h = self.header(meta, EntryType::Symlink);
            self.entries += 1;
            return self
                .builder
                .append_link(&mut h, rel, &target)
                .map_err(|e| io_err("adding to tar", path, e).into());
        }
        if meta.nlink() > 1 && !ft.is_dir() {
            let key = (meta.dev(), meta.ino());
            if let Some(first) = self.links.get(&key).cloned() {
                let mut h = self.header(meta, EntryType::Link);
                self.entries += 1;
                return self
                    .builder
                    .append_link(&mut h, rel, &first)
                    .map_err(|e| io_err("adding to tar", path, e).into());
            }
            self.links.insert(key, rel.to_owned());
        }
        if ft.is_file() {
            let mut h = self.header(meta, EntryType::Regular);
            h.set_size(meta.len());
            let file = File::open(path).map_err(|e| io_err("opening", path, e))?;
            // A file that changes size while read would corrupt the tar; the
            // take() keeps the header honest if it grows.
            return self.append(&mut h, rel, io::Read::take(file, meta.len()), path);
        }
        let kind = if ft.is_char_device() {
            EntryType::Char
        } else if ft.is_block_device() {
            EntryType::Block
        } else if ft.is_fifo() {
            EntryType::Fifo
        } else {
            // Sockets cannot be archived; tar and docker skip them too.
            tracing::debug!(path = %path.display(), "skipping socket");
            return Ok(());
        };
        let mut h = self.header(meta, kind);
        if kind != EntryType::Fifo {
            h.set_device_major(major(meta.rdev()))
                .map_err(|e| io_err("adding to tar", path, e))?;
            h.set_device_minor(minor(meta.rdev()))
                .map_err(|e| io_err("adding to tar", path, e))?;
        }
        self.append(&mut h, rel, io::empty(), path)
    }

    /// The tar crate writes no PAX records, so xattrs go in a hand-made
    /// `x` entry (POSIX pax format: "<len> SCHILY.xattr.<name>=<value>\n").
    fn pax_xattrs(&mut self, path: &Path, rel: &str) -> Result<()> {
        let xattrs = read_xattrs(path).map_err(|e| io_err("reading xattrs", path, e))?;
        if xattrs.is_empty() {
            return Ok(());
        }
        let records = pax_xattr_records(&xattrs);
        let mut h = Header::new_ustar();
        h.set_entry_type(EntryType::XHeader);
        let short: String = rel
            .chars()
            .rev()
            .take(80)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        h.set_path(format!("PaxHeaders/{}", short.trim_start_matches('/')))
            .map_err(|e| io_err("adding to tar", path, e))?;
        h.set_size(records.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        self.builder
            .append(&h, records.as_slice())
            .map_err(|e| io_err("adding to tar", path, e).into())
    }
}

/// PAX records ("<len> SCHILY.xattr.<name>=<value>\n") for xattrs.
pub(crate) fn pax_xattr_records(xattrs: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut records = Vec::new();
    for (k, v) in xattrs {
        let body_len = " SCHILY.xattr.".len() + k.len() + 1 + v.len() + 1;
        // The length prefix counts its own digits.
        let mut len = body_len + 1;
        while len.to_string().len() + body_len != len {
            len = len.to_string().len() + body_len;
        }
        records.extend_from_slice(format!("{len} SCHILY.xattr.{k}=").as_bytes());
        records.extend_from_slice(v);
        records.push(b'\n');
    }
    records
}

fn is_opaque(path: &Path) -> bool {
    let mut buf = [0u8; 4];
    matches!(rustix::fs::lgetxattr(path, OVERLAY_OPAQUE_XATTR, &mut buf[..]), Ok(1) if buf[0] == b'y')
}

/// xattrs worth carrying in a layer: all but overlay's own bookkeeping.
fn read_xattrs(path: &Path) -> io::Result<Vec<(String, Vec<u8>)>> {
    let size = match rustix::fs::llistxattr_query(path) {
        Ok(0) => return Ok(Vec::new()),
        Ok(n) => n,
        Err(rustix::io::Errno::NOTSUP) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut names = vec![0u8; size];
    let n = rustix::fs::llistxattr(path, &mut names[..])?;
    let mut out = Vec::new();
    for raw in names[..n].split(|b| *b == 0).filter(|s| !s.is_empty()) {
        let Ok(name) = std::str::from_utf8(raw) else {
            continue;
        };
        if name.starts_with("trusted.overlay.") {
            continue;
        }
        let len = rustix::fs::lgetxattr_query(path, name)?;
        let mut value = vec![0u8; len];
        let len = rustix::fs::lgetxattr(path, name, &mut value[..])?;
        value.truncate(len);
        out.push((name.to_owned(), value));
    }
    out.sort();
    Ok(out)
}

/// Compressing sink that can be finished to recover the inner writer.
enum Encoder<W: Write> {
    None(W),
    Gzip(flate2::write::GzEncoder<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> Encoder<W> {
    fn new(w: W, c: Compression) -> io::Result<Encoder<W>> {
        Ok(match c {
            Compression::None => Encoder::None(w),
            Compression::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                w,
                flate2::Compression::default(),
            )),
            Compression::Zstd => Encoder::Zstd(zstd::stream::write::Encoder::new(w, 3)?),
        })
    }

    fn finish(self) -> io::Result<W> {
        match self {
            Encoder::None(w) => Ok(w),
            Encoder::Gzip(e) => e.finish(),
            Encoder::Zstd(e) => e.finish(),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::None(w) => w.write(buf),
            Encoder::Gzip(e) => e.write(buf),
            Encoder::Zstd(e) => e.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::None(w) => w.flush(),
            Encoder::Gzip(e) => e.flush(),
            Encoder::Zstd(e) => e.flush(),
        }
    }
}

/// Diffs `dir` into a compressed layer blob in `content`.
pub(crate) fn write_layer(
    content: &ContentStore,
    dir: &Path,
    options: &DiffOptions,
) -> Result<Layer> {
    let ingest_ref = crate::durable::unique_name("layer");
    let writer = content.writer(&ingest_ref, Expected::default())?;
    let result = (|| {
        let mut encoder = Encoder::new(writer, options.compression)
            .map_err(|e| io_err("starting compression", dir, e))?;
        let summary = write_tar(dir, options, &mut encoder)?;
        let writer = encoder
            .finish()
            .map_err(|e| io_err("finishing compression", dir, e))?;
        let info = writer.commit()?;
        Ok(Layer {
            digest: info.digest,
            diff_id: summary.diff_id,
            size: info.size,
            media_type: options.compression.oci_media_type().to_owned(),
        })
    })();
    if result.is_err() {
        let _ = crate::content::IngestManager::abort(content, &ingest_ref);
    }
    result
}
