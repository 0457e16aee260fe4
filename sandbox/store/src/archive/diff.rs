//! directory → tar stream (a layer), with whiteouts in tar form.

use std::collections::HashMap;
use std::fs::{self, File, Metadata};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use rustix::fs::{OFlags, major, minor};
use tar::{EntryType, Header};

use super::{
    ArchiveError, Compression, NOBODY, OPAQUE_WHITEOUT, OVERLAY_OPAQUE_XATTR, WHITEOUT_PREFIX,
};
use crate::digest::{Digest, Hashing};
use crate::error::Result;

/// How to turn a directory into a layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffOptions {
    pub compression: Compression,
    /// Clamp every mtime to at most this many seconds since the epoch (as
    /// `SOURCE_DATE_EPOCH` does), so rebuilding the same tree later gives
    /// the same digest.
    pub clamp_mtime: Option<u64>,
    /// The first host id of a user namespace whose files these are (a
    /// container's writable layer): owners in its 65536 ids are written as
    /// the ids inside, any other as `nobody` (65534).
    pub id_base: Option<u32>,
    /// Paths (relative, `etc/hosts`) left out with everything beneath them.
    pub exclude: Vec<String>,
    /// Compress for speed rather than size: for layers made while someone
    /// waits (a build step, `docker commit`), where the default gzip level
    /// costs several times the time for a few percent of size.
    pub fast: bool,
}

impl Default for DiffOptions {
    fn default() -> DiffOptions {
        DiffOptions {
            compression: Compression::Gzip,
            clamp_mtime: None,
            id_base: None,
            exclude: Vec::new(),
            fast: false,
        }
    }
}

/// Ids a user namespace maps, from its first host id.
const NAMESPACE_IDS: u32 = 65536;

impl DiffOptions {
    /// An owner on disk as the layer records it.
    pub fn owner(&self, id: u32) -> u32 {
        match self.id_base {
            None => id,
            Some(base) => match id.checked_sub(base) {
                Some(inside) if inside < NAMESPACE_IDS => inside,
                _ => NOBODY,
            },
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
    let root = open_dir(dir).map_err(|e| io_err("opening", dir, e))?;
    write_tar_at(&root, dir, options, out)
}

/// [`write_tar`] of the directory open as `root` (`shown` names it in
/// messages). The tree may be changing under a hostile owner (a running
/// container's layer): every step is taken from an open directory, and
/// nothing is followed, so a directory swapped for a symlink midway never
/// leads the walk outside `root`.
pub fn write_tar_at(
    root: &File,
    shown: &Path,
    options: &DiffOptions,
    out: impl Write,
) -> Result<DiffSummary> {
    walk(options, out, shown, |walker| {
        walker.walk_dir(root, shown, "")
    })
}

/// One path of the tree open as `root`, resolved as if `root` were `/`
/// (its symlinks cannot lead out), as a tar whose top entry is the path's
/// last component, itself never followed: what `docker cp` sends.
pub fn write_tar_of(
    root: &File,
    path: &str,
    options: &DiffOptions,
    out: impl Write,
) -> Result<DiffSummary> {
    let Some((parent, name)) = parent_in_root(root, path)? else {
        return write_tar_at(root, Path::new("/"), options, out);
    };
    let at_path = at(&parent, name.as_ref());
    let meta = fs::symlink_metadata(&at_path).map_err(|e| missing(path, e))?;
    let shown = Path::new(path);
    walk(options, out, shown, |walker| {
        walker.entry(&at_path, shown, &name, &name, "", &meta)
    })
}

/// What `docker cp` reports of a path before copying it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathStat {
    pub name: String,
    pub size: u64,
    /// `st_mode`: type and permission bits.
    pub mode: u32,
    pub mtime: i64,
    /// For a symlink, where it points.
    pub link_target: String,
}

/// [`PathStat`] of `path` in the tree open as `root`, resolved as
/// [`write_tar_of`] does.
pub fn stat_beneath(root: &File, path: &str) -> Result<PathStat> {
    let (meta, name, link_target) = match parent_in_root(root, path)? {
        None => (
            root.metadata().map_err(|e| missing(path, e))?,
            "/".to_owned(),
            String::new(),
        ),
        Some((parent, name)) => {
            let at_path = at(&parent, name.as_ref());
            let meta = fs::symlink_metadata(&at_path).map_err(|e| missing(path, e))?;
            let link = if meta.file_type().is_symlink() {
                fs::read_link(&at_path)
                    .map(|t| t.display().to_string())
                    .unwrap_or_default()
            } else {
                String::new()
            };
            (meta, name, link)
        }
    };
    Ok(PathStat {
        name,
        size: meta.len(),
        mode: meta.mode(),
        mtime: meta.mtime(),
        link_target,
    })
}

fn missing(path: &str, e: io::Error) -> crate::Error {
    if e.kind() == io::ErrorKind::NotFound {
        ArchiveError::NoSuchPath(path.to_owned()).into()
    } else {
        io_err("inspecting", Path::new(path), e).into()
    }
}

/// The directory holding `path`'s last component, resolved inside `root`,
/// and that component; `None` for the root itself.
fn parent_in_root(root: &File, path: &str) -> Result<Option<(File, String)>> {
    let mut trimmed = path.trim_end_matches('/');
    // `DIR/.` is DIR (the caller wants its contents; the tar is the same).
    while let Some(dir) = trimmed.strip_suffix("/.") {
        trimmed = dir.trim_end_matches('/');
    }
    let (dir, name) = trimmed.rsplit_once('/').unwrap_or(("", trimmed));
    if name.is_empty() || name == "." || name == ".." {
        return if dir.is_empty() && matches!(name, "" | ".") {
            Ok(None)
        } else {
            Err(ArchiveError::UnsafePath {
                path: path.to_owned(),
                reason: "name a file or directory, not '.' or '..'",
            }
            .into())
        };
    }
    let parent = dir_in_root(root, dir).map_err(|e| match e {
        crate::Error::Archive(ArchiveError::NoSuchPath(_)) => {
            ArchiveError::NoSuchPath(path.to_owned()).into()
        }
        e => e,
    })?;
    Ok(Some((parent, name.to_owned())))
}

/// Directory `path` of the tree open as `root`, resolved as if `root` were
/// `/`: its symlinks are followed, but never out of it.
pub fn dir_in_root(root: &File, path: &str) -> Result<File> {
    let relative = match path.trim_start_matches('/') {
        "" => ".",
        p => p,
    };
    let dir = rustix::fs::openat2(
        root,
        relative,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
        rustix::fs::ResolveFlags::IN_ROOT | rustix::fs::ResolveFlags::NO_MAGICLINKS,
    )
    .map_err(|e| missing(path, e.into()))?;
    Ok(File::from(dir))
}

/// The contents of regular file `path` of the tree open as `root`
/// (resolved as [`dir_in_root`] does), if it exists; at most `limit` bytes.
pub fn read_in_root(root: &File, path: &str, limit: u64) -> Result<Option<Vec<u8>>> {
    let file = match rustix::fs::openat2(
        root,
        path.trim_start_matches('/'),
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK,
        rustix::fs::Mode::empty(),
        rustix::fs::ResolveFlags::IN_ROOT | rustix::fs::ResolveFlags::NO_MAGICLINKS,
    ) {
        Ok(fd) => File::from(fd),
        Err(rustix::io::Errno::NOENT) => return Ok(None),
        Err(e) => return Err(io_err("opening", Path::new(path), e.into()).into()),
    };
    let meta = file
        .metadata()
        .map_err(|e| io_err("inspecting", Path::new(path), e))?;
    if !meta.is_file() {
        return Ok(None);
    }
    let mut bytes = Vec::new();
    io::Read::read_to_end(&mut io::Read::take(file, limit), &mut bytes)
        .map_err(|e| io_err("reading", Path::new(path), e))?;
    Ok(Some(bytes))
}

fn walk<W: Write>(
    options: &DiffOptions,
    out: W,
    shown: &Path,
    body: impl FnOnce(&mut Walker<'_, Hashing<W>>) -> Result<()>,
) -> Result<DiffSummary> {
    let mut walker = Walker {
        builder: tar::Builder::new(Hashing::new(out)),
        options,
        links: HashMap::new(),
        entries: 0,
    };
    body(&mut walker)?;
    let hashing = walker
        .builder
        .into_inner()
        .map_err(|e| io_err("finishing tar", shown, e))?;
    let entries = walker.entries;
    let (_, diff_id, tar_size) = hashing.into_inner();
    Ok(DiffSummary {
        diff_id,
        tar_size,
        entries,
    })
}

/// A directory, opened without following a symlink in its last component.
fn open_dir(path: &Path) -> io::Result<File> {
    open_nofollow(path, OFlags::DIRECTORY)
}

fn open_nofollow(path: &Path, flags: OFlags) -> io::Result<File> {
    let fd = rustix::fs::open(
        path,
        flags | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )?;
    Ok(File::from(fd))
}

/// `name` in the directory open as `dir`, as a path the kernel resolves
/// through that descriptor: the `l*` calls on it never follow `name`.
fn at(dir: &File, name: &std::ffi::OsStr) -> std::path::PathBuf {
    Path::new(&format!("/proc/self/fd/{}", dir.as_raw_fd())).join(name)
}

struct Walker<'a, W: Write> {
    builder: tar::Builder<W>,
    options: &'a DiffOptions,
    /// (dev, ino) of multiply-linked files already written, and their path.
    links: HashMap<(u64, u64), String>,
    entries: u64,
}

impl<W: Write> Walker<'_, W> {
    fn walk_dir(&mut self, dir: &File, shown: &Path, prefix: &str) -> Result<()> {
        let mut names: Vec<_> = fs::read_dir(at(dir, ".".as_ref()))
            .map_err(|e| io_err("listing", shown, e))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<_>>()
            .map_err(|e| io_err("listing", shown, e))?;
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for name in names {
            let path = at(dir, &name);
            let shown = shown.join(&name);
            let name = name.to_str().ok_or_else(|| ArchiveError::UnsafePath {
                path: shown.display().to_string(),
                reason: "file names in layers must be UTF-8",
            })?;
            let rel = format!("{prefix}{name}");
            if self.options.exclude.contains(&rel) {
                continue;
            }
            let meta = fs::symlink_metadata(&path).map_err(|e| io_err("inspecting", &shown, e))?;
            self.entry(&path, &shown, &rel, name, prefix, &meta)?;
        }
        Ok(())
    }

    fn header(&self, meta: &Metadata, kind: EntryType) -> Header {
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(meta.mode() & 0o7777);
        h.set_uid(self.options.owner(meta.uid()).into());
        h.set_gid(self.options.owner(meta.gid()).into());
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
        shown: &Path,
    ) -> Result<()> {
        self.entries += 1;
        self.builder
            .append_data(header, rel, data)
            .map_err(|e| io_err("adding to tar", shown, e).into())
    }

    fn entry(
        &mut self,
        path: &Path,
        shown: &Path,
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
                shown,
            );
        }
        self.pax_xattrs(path, shown, rel)?;
        if ft.is_dir() {
            let dir = open_dir(path).map_err(|e| io_err("opening", shown, e))?;
            let meta = dir.metadata().map_err(|e| io_err("inspecting", shown, e))?;
            let mut h = self.header(&meta, EntryType::Directory);
            self.append(&mut h, &format!("{rel}/"), io::empty(), shown)?;
            if is_opaque(path) {
                let mut h = self.header(&meta, EntryType::Regular);
                h.set_mode(0o644);
                self.append(
                    &mut h,
                    &format!("{rel}/{OPAQUE_WHITEOUT}"),
                    io::empty(),
                    shown,
                )?;
            }
            return self.walk_dir(&dir, shown, &format!("{rel}/"));
        }
        if ft.is_symlink() {
            let target = fs::read_link(path).map_err(|e| io_err("reading symlink", shown, e))?;
            let mut h = self.header(meta, EntryType::Symlink);
            self.entries += 1;
            return self
                .builder
                .append_link(&mut h, rel, &target)
                .map_err(|e| io_err("adding to tar", shown, e).into());
        }
        if meta.nlink() > 1 && !ft.is_dir() {
            let key = (meta.dev(), meta.ino());
            if let Some(first) = self.links.get(&key).cloned() {
                let mut h = self.header(meta, EntryType::Link);
                self.entries += 1;
                return self
                    .builder
                    .append_link(&mut h, rel, &first)
                    .map_err(|e| io_err("adding to tar", shown, e).into());
            }
            self.links.insert(key, rel.to_owned());
        }
        if ft.is_file() {
            // Non-blocking: a name swapped for a FIFO must not hang us.
            let file =
                open_nofollow(path, OFlags::NONBLOCK).map_err(|e| io_err("opening", shown, e))?;
            // What was opened is what is described: the name may have
            // changed since it was listed.
            let meta = file
                .metadata()
                .map_err(|e| io_err("inspecting", shown, e))?;
            if !meta.is_file() {
                return Err(io_err(
                    "archiving",
                    shown,
                    io::Error::other("it changed while being read"),
                )
                .into());
            }
            let mut h = self.header(&meta, EntryType::Regular);
            h.set_size(meta.len());
            // A file that changes size while read would corrupt the tar; the
            // take() keeps the header honest if it grows.
            return self.append(&mut h, rel, io::Read::take(file, meta.len()), shown);
        }
        let kind = if ft.is_char_device() {
            EntryType::Char
        } else if ft.is_block_device() {
            EntryType::Block
        } else if ft.is_fifo() {
            EntryType::Fifo
        } else {
            // Sockets cannot be archived; tar and docker skip them too.
            tracing::debug!(path = %shown.display(), "skipping socket");
            return Ok(());
        };
        let mut h = self.header(meta, kind);
        if kind != EntryType::Fifo {
            h.set_device_major(major(meta.rdev()))
                .map_err(|e| io_err("adding to tar", shown, e))?;
            h.set_device_minor(minor(meta.rdev()))
                .map_err(|e| io_err("adding to tar", shown, e))?;
        }
        self.append(&mut h, rel, io::empty(), shown)
    }

    /// The tar crate writes no PAX records, so xattrs go in a hand-made
    /// `x` entry (POSIX pax format: "<len> SCHILY.xattr.<name>=<value>\n").
    fn pax_xattrs(&mut self, path: &Path, shown: &Path, rel: &str) -> Result<()> {
        let xattrs = read_xattrs(path).map_err(|e| io_err("reading xattrs", shown, e))?;
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
            .map_err(|e| io_err("adding to tar", shown, e))?;
        h.set_size(records.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        self.builder
            .append(&h, records.as_slice())
            .map_err(|e| io_err("adding to tar", shown, e).into())
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
    fn new(w: W, c: Compression, fast: bool) -> io::Result<Encoder<W>> {
        Ok(match c {
            Compression::None => Encoder::None(w),
            Compression::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                w,
                if fast {
                    flate2::Compression::fast()
                } else {
                    flate2::Compression::default()
                },
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

/// Bytes of tar handed to the compressing thread at a time, and how many
/// such chunks may wait for it.
const CHUNK: usize = 256 << 10;
const CHUNKS_WAITING: usize = 8;

/// What reads a layer's tar as it is written, beside its compression
/// (the snapshot unpacked in the same pass).
pub(crate) type TarReader<'a> = &'a (dyn Fn(TarChunks) + Sync);

/// [`tar_compressed`] of the directory at `dir`.
pub(crate) fn tar_compressed_dir<W: Write + Send>(
    dir: &Path,
    options: &DiffOptions,
    writer: W,
) -> Result<(DiffSummary, W)> {
    let root = open_dir(dir).map_err(|e| io_err("opening", dir, e))?;
    tar_compressed(&root, dir, options, writer, None)
}

/// The tar of the tree open as `root`, compressed into `writer` on a
/// thread of its own while the tree is read and tarred on the caller's
/// (and given to `also` on a third): on two cores a layer then takes about
/// the longest of them rather than their sum.
pub(crate) fn tar_compressed<W: Write + Send>(
    root: &File,
    shown: &Path,
    options: &DiffOptions,
    writer: W,
    also: Option<TarReader<'_>>,
) -> Result<(DiffSummary, W)> {
    let (to_compress, chunks) = std::sync::mpsc::sync_channel::<Chunk>(CHUNKS_WAITING);
    std::thread::scope(|scope| {
        let compressing = scope.spawn(move || -> io::Result<W> {
            let mut encoder = Encoder::new(writer, options.compression, options.fast)?;
            for chunk in chunks {
                encoder.write_all(&chunk)?;
            }
            encoder.finish()
        });
        let to_also = also.map(|read| {
            let (to, chunks) = std::sync::mpsc::sync_channel::<Chunk>(CHUNKS_WAITING);
            scope.spawn(move || {
                read(TarChunks {
                    chunks,
                    current: Chunk::default(),
                    at: 0,
                    ended: false,
                })
            });
            to
        });
        let mut tar = Chunks {
            buf: Vec::with_capacity(CHUNK),
            to: to_compress,
            also: to_also,
        };
        let summary = write_tar_at(root, shown, options, &mut tar).and_then(|summary| {
            tar.finish()
                .map_err(|e| io_err("compressing", shown, e).into())
                .map(|()| summary)
        });
        // The channel closes: the compression sees its end.
        drop(tar);
        let compressed = compressing
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the compressing thread panicked")));
        match (summary, compressed) {
            (Ok(summary), Ok(writer)) => Ok((summary, writer)),
            // A failed compression is why the tar could not be sent.
            (_, Err(e)) => Err(io_err("compressing", shown, e).into()),
            (Err(e), Ok(_)) => Err(e),
        }
    })
}

type Chunk = std::sync::Arc<Vec<u8>>;

/// The tar's end of the pipes to the compressing thread and the other
/// reader.
struct Chunks {
    buf: Vec<u8>,
    to: std::sync::mpsc::SyncSender<Chunk>,
    also: Option<std::sync::mpsc::SyncSender<Chunk>>,
}

impl Write for Chunks {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Chunk::new(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        // The other reader may stop early (it failed, and said so): the
        // layer is still whole.
        if let Some(also) = &self.also
            && also.send(chunk.clone()).is_err()
        {
            self.also = None;
        }
        self.to
            .send(chunk)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the compression stopped"))
    }
}

impl Chunks {
    /// The rest sent, and the other reader told the tar is whole: an
    /// empty chunk, where a closed pipe without one means cut short.
    fn finish(&mut self) -> io::Result<()> {
        self.flush()?;
        if let Some(also) = &self.also {
            let _ = also.send(Chunk::default());
        }
        Ok(())
    }
}

/// A layer's tar as it is written, for [`TarReader`]s.
pub(crate) struct TarChunks {
    chunks: std::sync::mpsc::Receiver<Chunk>,
    current: Chunk,
    at: usize,
    ended: bool,
}

impl io::Read for TarChunks {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.at == self.current.len() {
            if self.ended {
                return Ok(0);
            }
            match self.chunks.recv() {
                Ok(next) if next.is_empty() => self.ended = true,
                Ok(next) => {
                    self.current = next;
                    self.at = 0;
                }
                Err(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the layer's tar was cut short: its writing failed",
                    ));
                }
            }
        }
        let n = out.len().min(self.current.len() - self.at);
        out[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}
