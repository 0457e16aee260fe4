//! Store tests: real files, real tar streams, the real kernel (we run as
//! root; tests that need it fail loudly if it is missing).
//!
//! - `content`: blob write, verify, resume, concurrent writers
//! - `reference`: Docker normalization table, invalid references
//! - `names`: namespace isolation
//! - `unpack`: layer formats, whiteouts, metadata
//! - `hostile`: one test per class of bad tar
//! - `diff`: directory → layer → directory round trips
//! - `lookup`: paths of an image found in its unpacked layers
//! - `gc`: what GC keeps and what it frees
//! - `transfer`: OCI layout and docker-save round trips, skopeo interop

mod content;
mod diff;
mod gc;
mod hostile;
mod lookup;
mod names;
mod reference;
mod transfer;
mod unpack;

use std::io::Write;
use std::path::Path;

use tar::{EntryType, Header};

use crate::archive::pax_xattr_records;
use crate::{Store, archive};

/// An overlay whiteout (a 0:0 character device) at `path`.
pub(crate) fn whiteout(path: &Path) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::empty(),
        0,
    )
    .expect("whiteout");
}

pub(crate) fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("store")).expect("open store");
    (dir, store)
}

/// Builds layer tars entry by entry, including ones no honest tool writes.
pub(crate) struct TarBuilder {
    b: tar::Builder<Vec<u8>>,
}

pub(crate) struct Meta {
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
}

pub(crate) const DEFAULT: Meta = Meta {
    mode: 0o644,
    uid: 0,
    gid: 0,
    mtime: 1_600_000_000,
};

impl TarBuilder {
    pub(crate) fn new() -> TarBuilder {
        TarBuilder {
            b: tar::Builder::new(Vec::new()),
        }
    }

    /// Writes the name bytes verbatim (no checks), as a hostile tar would.
    fn raw(
        &mut self,
        name: &str,
        kind: EntryType,
        meta: &Meta,
        link: Option<&str>,
        data: &[u8],
    ) -> &mut Self {
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        let field = &mut h.as_gnu_mut().expect("gnu").name;
        assert!(name.len() <= field.len(), "test name too long");
        field[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(l) = link {
            let field = &mut h.as_gnu_mut().expect("gnu").linkname;
            field[..l.len()].copy_from_slice(l.as_bytes());
        }
        h.set_mode(meta.mode);
        h.set_uid(meta.uid);
        h.set_gid(meta.gid);
        h.set_mtime(meta.mtime);
        h.set_size(data.len() as u64);
        h.set_cksum();
        self.b.append(&h, data).expect("append");
        self
    }

    pub(crate) fn file(&mut self, name: &str, data: &[u8], meta: &Meta) -> &mut Self {
        self.raw(name, EntryType::Regular, meta, None, data)
    }

    pub(crate) fn dir(&mut self, name: &str, meta: &Meta) -> &mut Self {
        self.raw(name, EntryType::Directory, meta, None, b"")
    }

    pub(crate) fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.raw(
            name,
            EntryType::Symlink,
            &Meta {
                mode: 0o777,
                ..DEFAULT
            },
            Some(target),
            b"",
        )
    }

    pub(crate) fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.raw(name, EntryType::Link, &DEFAULT, Some(target), b"")
    }

    pub(crate) fn device(
        &mut self,
        name: &str,
        kind: EntryType,
        major: u32,
        minor: u32,
    ) -> &mut Self {
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        h.set_path(name).expect("path");
        h.set_mode(0o620);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(DEFAULT.mtime);
        h.set_size(0);
        h.set_device_major(major).expect("major");
        h.set_device_minor(minor).expect("minor");
        h.set_cksum();
        self.b.append(&h, &b""[..]).expect("append");
        self
    }

    pub(crate) fn xattrs(&mut self, xattrs: &[(&str, &[u8])]) -> &mut Self {
        let owned: Vec<(String, Vec<u8>)> = xattrs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_vec()))
            .collect();
        let records = pax_xattr_records(&owned);
        let mut h = Header::new_ustar();
        h.set_entry_type(EntryType::XHeader);
        h.set_path("PaxHeaders/x").expect("path");
        h.set_size(records.len() as u64);
        h.set_cksum();
        self.b.append(&h, records.as_slice()).expect("append");
        self
    }

    pub(crate) fn finish(&mut self) -> Vec<u8> {
        let b = std::mem::replace(&mut self.b, tar::Builder::new(Vec::new()));
        b.into_inner().expect("finish")
    }
}

/// An overlay mount that is detached when dropped, so a failing test
/// leaves no mount behind.
pub(crate) struct Overlay {
    dir: tempfile::TempDir,
}

impl Overlay {
    pub(crate) fn mount(options: &str, flags: rustix::mount::MountFlags) -> Overlay {
        let dir = tempfile::tempdir().expect("tempdir");
        let options = std::ffi::CString::new(options).expect("mount options");
        rustix::mount::mount(
            "overlay",
            dir.path(),
            "overlay",
            flags,
            Some(options.as_c_str()),
        )
        .unwrap_or_else(|e| panic!("overlay mount failed (needs root and overlayfs): {e}"));
        Overlay { dir }
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Overlay {
    fn drop(&mut self) {
        if let Err(e) = rustix::mount::unmount(self.dir.path(), rustix::mount::UnmountFlags::DETACH)
        {
            eprintln!("unmounting {}: {e}", self.dir.path().display());
        }
    }
}

pub(crate) fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

pub(crate) fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 3).expect("zstd")
}

pub(crate) fn unpack_into(layer: &[u8], target: &Path) -> crate::Result<archive::UnpackSummary> {
    archive::unpack(
        layer,
        target,
        archive::WhiteoutMode::Overlay,
        archive::Limits::default(),
    )
}

/// A canonical listing of a tree: path, type, mode, owner, size, mtime,
/// symlink target, file digest, device numbers and xattrs. Two trees with
/// equal listings are equal for every purpose a container has.
pub(crate) fn listing(root: &Path) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .expect("read_dir")
            .map(|e| e.expect("entry").path())
            .collect();
        entries.sort();
        for p in entries {
            let m = std::fs::symlink_metadata(&p).expect("lstat");
            let rel = p.strip_prefix(root).expect("prefix").display().to_string();
            let ft = m.file_type();
            let extra = if ft.is_symlink() {
                format!("-> {}", std::fs::read_link(&p).expect("readlink").display())
            } else if ft.is_file() {
                crate::Digest::of(&std::fs::read(&p).expect("read")).to_string()
            } else {
                format!("rdev={}", m.rdev())
            };
            let mut xattrs = Vec::new();
            if let Ok(n) = rustix::fs::llistxattr_query(&p)
                && n > 0
            {
                let mut names = vec![0u8; n];
                let n = rustix::fs::llistxattr(&p, &mut names[..]).expect("llistxattr");
                for name in names[..n].split(|b| *b == 0).filter(|s| !s.is_empty()) {
                    let name = std::str::from_utf8(name).expect("utf8");
                    let mut v = vec![0u8; 256];
                    let l = rustix::fs::lgetxattr(&p, name, &mut v[..]).expect("lgetxattr");
                    xattrs.push(format!("{name}={}", String::from_utf8_lossy(&v[..l])));
                }
                xattrs.sort();
            }
            let mtime = if ft.is_dir() { 0 } else { m.mtime() };
            out.push(format!(
                "{rel} mode={:o} uid={} gid={} size={} mtime={} {extra} [{}]",
                m.mode(),
                m.uid(),
                m.gid(),
                if ft.is_dir() { 0 } else { m.len() },
                mtime,
                xattrs.join(",")
            ));
            if ft.is_dir() {
                walk(root, &p, out);
            }
        }
    }
    walk(root, root, &mut out);
    out
}
