//! The build context: the tar the CLI sends, unpacked into a directory of
//! its own through the store's hostile-tar defences (no path climbs out,
//! no link is written through) and bounded in size; then the Dockerfile is
//! read from it and `.dockerignore` applied, as the daemon does: the CLI
//! always ships the Dockerfile and `.dockerignore`, and the daemon deletes
//! them only if they are ignored.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::dockerignore::{Ignore, IgnoreError};

/// Bytes a context may expand to.
pub const MAX_CONTEXT: u64 = 1 << 30;
/// Bytes of Dockerfile read.
const MAX_DOCKERFILE: u64 = crate::parser::MAX_DOCKERFILE as u64 + 1;

#[derive(Debug, Error)]
pub enum ContextError {
    #[error("the build context is not a valid archive: {0}")]
    Archive(#[from] store::Error),
    #[error("Cannot locate specified Dockerfile: {0}")]
    NoDockerfile(String),
    #[error(transparent)]
    Ignore(#[from] IgnoreError),
    #[error("build context {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// An unpacked context and the Dockerfile it held.
#[derive(Debug)]
pub struct Context {
    dir: PathBuf,
    pub dockerfile: Vec<u8>,
}

impl Context {
    /// Unpacks `tar` (plain or compressed) into the empty directory `dir`
    /// and reads the Dockerfile named `dockerfile` (`Dockerfile` falling
    /// back to `dockerfile`, as the daemon does).
    pub fn receive(
        tar: impl std::io::Read + Send,
        dir: &Path,
        dockerfile: &str,
    ) -> Result<Context, ContextError> {
        let limits = store::Limits {
            max_expanded: MAX_CONTEXT,
            ..store::Limits::default()
        };
        store::archive::unpack(
            Padded::new(tar),
            dir,
            store::archive::WhiteoutMode::Apply,
            limits,
        )?;
        let root = File::open(dir).map_err(|source| ContextError::Io {
            path: dir.to_owned(),
            source,
        })?;
        let read = |name: &str| store::archive::read_in_root(&root, name, MAX_DOCKERFILE);
        let mut text = read(dockerfile)?;
        if text.is_none() && dockerfile == "Dockerfile" {
            text = read("dockerfile")?;
        }
        let dockerfile_bytes =
            text.ok_or_else(|| ContextError::NoDockerfile(dockerfile.to_owned()))?;
        let ignore = read(".dockerignore")?
            .map(|b| Ignore::parse(&String::from_utf8_lossy(&b)))
            .transpose()?;
        let context = Context {
            dir: dir.to_owned(),
            dockerfile: dockerfile_bytes,
        };
        if let Some(ignore) = ignore {
            context.leave_out(&ignore, Path::new(""))?;
        }
        Ok(context)
    }

    /// Where the context is unpacked.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Deletes what `ignore` leaves out, under `rel`. Nothing else writes
    /// this directory, and no link is followed.
    fn leave_out(&self, ignore: &Ignore, rel: &Path) -> Result<(), ContextError> {
        let dir = self.dir.join(rel);
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| ContextError::Io { path, source }
        };
        for entry in std::fs::read_dir(&dir).map_err(io(&dir))? {
            let entry = entry.map_err(io(&dir))?;
            let child = rel.join(entry.file_name());
            let Some(name) = child.to_str() else {
                continue;
            };
            let path = entry.path();
            let is_dir = entry.file_type().map_err(io(&path))?.is_dir();
            if ignore.excludes(name) {
                let removed = if is_dir {
                    std::fs::remove_dir_all(&path)
                } else {
                    std::fs::remove_file(&path)
                };
                removed.map_err(io(&path))?;
            } else if is_dir {
                self.leave_out(ignore, &child)?;
            }
        }
        Ok(())
    }
}

/// The CLI's `docker build -f` rewrites the context tar and ends it right
/// after the last file's bytes, with neither padding nor end-of-archive
/// blocks, which Go's reader (and so dockerd) accepts. A plain tar that
/// ends early is completed here with zeros to its next 512-byte block and
/// two empty blocks; a compressed stream is passed on as it is.
struct Padded<R> {
    inner: R,
    /// Bytes read so far (plain tar only), and whether it was plain.
    read: u64,
    plain: Option<bool>,
    /// Zeros still owed once the stream ended.
    owed: Option<u64>,
}

impl<R: Read> Padded<R> {
    fn new(inner: R) -> Padded<R> {
        Padded {
            inner,
            read: 0,
            plain: None,
            owed: None,
        }
    }
}

impl<R: Read> Read for Padded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if let Some(owed) = &mut self.owed {
            let n = buf.len().min(*owed as usize);
            buf[..n].fill(0);
            *owed -= n as u64;
            return Ok(n);
        }
        let n = self.inner.read(buf)?;
        if self.plain.is_none() && n > 0 {
            let compressed = buf[..n].starts_with(&[0x1f, 0x8b])
                || buf[..n].starts_with(&[0x28, 0xb5, 0x2f, 0xfd]);
            self.plain = Some(!compressed);
        }
        self.read += n as u64;
        if n == 0 && self.plain == Some(true) {
            let to_block = (512 - self.read % 512) % 512;
            self.owed = Some(to_block + 1024);
            return self.read(buf);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, data) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_uid(0);
            header.set_gid(0);
            header.set_mtime(0);
            header.set_entry_type(tar::EntryType::Regular);
            // Written raw, so a hostile name gets through to the reader.
            header.as_gnu_mut().expect("gnu").name[..path.len()].copy_from_slice(path.as_bytes());
            header.set_cksum();
            builder.append(&header, *data).expect("append");
        }
        builder.into_inner().expect("tar")
    }

    #[test]
    fn a_context_unpacks_with_its_dockerfile_and_ignores_applied() {
        let dir = tempfile::tempdir().expect("dir");
        let body = tar(&[
            ("Dockerfile", b"FROM busybox\n"),
            (".dockerignore", b"*.log\nsecrets\n"),
            ("app.py", b"print(1)\n"),
            ("debug.log", b"noise"),
            ("secrets/key", b"k"),
        ]);
        let context = Context::receive(&body[..], dir.path(), "Dockerfile").expect("context");
        assert_eq!(context.dockerfile, b"FROM busybox\n");
        let mut left: Vec<String> = std::fs::read_dir(context.dir())
            .expect("list")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, [".dockerignore", "Dockerfile", "app.py"]);
    }

    #[test]
    fn a_context_cut_after_its_last_file_is_read_whole() {
        // As `docker build -f` sends it: no padding, no end blocks.
        let full = tar(&[("Dockerfile", b"FROM a\n"), ("x", b"last file")]);
        let cut = &full[..512 + 512 + 512 + 9];
        let dir = tempfile::tempdir().expect("dir");
        let context = Context::receive(cut, dir.path(), "Dockerfile").expect("cut context");
        assert_eq!(context.dockerfile, b"FROM a\n");
        assert_eq!(
            std::fs::read(dir.path().join("x")).expect("x"),
            b"last file"
        );
    }

    #[test]
    fn bad_contexts_say_what_is_wrong() {
        let dir = tempfile::tempdir().expect("dir");
        let e = Context::receive(&tar(&[("a", b"x")])[..], dir.path(), "Dockerfile")
            .expect_err("no Dockerfile");
        assert_eq!(
            e.to_string(),
            "Cannot locate specified Dockerfile: Dockerfile"
        );
        let dir = tempfile::tempdir().expect("dir");
        let e = Context::receive(
            &tar(&[("../escape", b"x"), ("Dockerfile", b"FROM a\n")])[..],
            dir.path(),
            "Dockerfile",
        )
        .expect_err("climbs out");
        assert!(e.to_string().contains(".."), "{e}");
        assert!(!dir.path().parent().expect("parent").join("escape").exists());
        let dir = tempfile::tempdir().expect("dir");
        let e = Context::receive(&b"not a tar at all"[..], dir.path(), "Dockerfile")
            .expect_err("garbage");
        assert!(
            e.to_string()
                .starts_with("the build context is not a valid archive"),
            "{e}"
        );
        // A lower-case `dockerfile` is found as Docker finds it.
        let dir = tempfile::tempdir().expect("dir");
        let context = Context::receive(
            &tar(&[("dockerfile", b"FROM b\n")])[..],
            dir.path(),
            "Dockerfile",
        )
        .expect("fallback");
        assert_eq!(context.dockerfile, b"FROM b\n");
    }
}
