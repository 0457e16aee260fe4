//! Producing the directory tree of one layer from the host: a debootstrap
//! root filesystem, a busybox tree, or files (compiled or copied).

use std::fs;
use std::io;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Component, Path, PathBuf};
use std::process::Command;

use crate::command::{self, CommandError};
use crate::recipes::{AddFile, FileSource};

/// Where `busybox-static` installs its binary.
const BUSYBOX: &str = "/bin/busybox";

#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error("cannot {what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error(
        "{BUSYBOX} is missing or not from busybox-static; install it with `apt-get install -y busybox-static`"
    )]
    NoBusybox,
    #[error("run step input {0:?} must be a plain file name")]
    BadInput(String),
    #[error("file path {0:?} in a recipe must be absolute and plain (no `..`)")]
    BadPath(String),
}

fn io_err(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> RootfsError {
    let path = path.to_owned();
    move |source| RootfsError::Io { what, path, source }
}

/// `root` joined with the absolute in-image path `path`, refusing anything
/// that would leave `root`.
fn inside(root: &Path, path: &str) -> Result<PathBuf, RootfsError> {
    let rel = Path::new(path)
        .strip_prefix("/")
        .map_err(|_| RootfsError::BadPath(path.to_owned()))?;
    if rel.as_os_str().is_empty() || rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return Err(RootfsError::BadPath(path.to_owned()));
    }
    Ok(root.join(rel))
}

/// `debootstrap --variant=VARIANT SUITE ROOT MIRROR`, keeping the .debs in
/// `debs`, then the clean-up Docker's debian images also do: no package
/// cache, no package lists, no bootstrap log, and the host's resolver,
/// hostname and hosts files replaced (they stay as files because the
/// runtime bind-mounts its own over them).
pub fn debootstrap(
    root: &Path,
    suite: &str,
    variant: &str,
    mirror: &str,
    debs: &Path,
    on_line: &mut dyn FnMut(&str),
) -> Result<(), RootfsError> {
    let mut cmd = Command::new("debootstrap");
    cmd.arg(format!("--variant={variant}"))
        .arg(format!("--cache-dir={}", debs.display()))
        .arg(suite)
        .arg(root)
        .arg(mirror);
    command::run(cmd, on_line)?;

    // Lists go entirely, `partial/` included: a child layer's apt-get update
    // recreates them and its clean-up then removes them without whiteouts.
    let lists = root.join("var/lib/apt/lists");
    for entry in fs::read_dir(&lists).map_err(io_err("list", &lists))? {
        let path = entry.map_err(io_err("list", &lists))?.path();
        let removed = if path.is_dir() {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        removed.map_err(io_err("remove", &path))?;
    }
    let archives = root.join("var/cache/apt/archives");
    for entry in fs::read_dir(&archives).map_err(io_err("list", &archives))? {
        let path = entry.map_err(io_err("list", &archives))?.path();
        if path.extension().is_some_and(|e| e == "deb") {
            fs::remove_file(&path).map_err(io_err("remove", &path))?;
        }
    }
    for file in [
        "var/cache/apt/pkgcache.bin",
        "var/cache/apt/srcpkgcache.bin",
    ] {
        let path = root.join(file);
        if path.exists() {
            fs::remove_file(&path).map_err(io_err("remove", &path))?;
        }
    }
    for (file, contents) in [
        ("etc/resolv.conf", ""),
        ("etc/hostname", ""),
        (
            "etc/hosts",
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
        ),
    ] {
        let path = root.join(file);
        fs::write(&path, contents).map_err(io_err("write", &path))?;
    }
    // debootstrap's own log describes the build host, not the image.
    let log = root.join("var/log/bootstrap.log");
    if log.exists() {
        fs::remove_file(&log).map_err(io_err("remove", &log))?;
    }
    Ok(())
}

/// A tiny root filesystem around busybox-static: the binary, one symlink
/// per applet (as `busybox --list-full` places them), and the few files and
/// directories a shell and `docker run` expect.
pub fn busybox(root: &Path) -> Result<(), RootfsError> {
    let meta = fs::metadata(BUSYBOX).map_err(|_| RootfsError::NoBusybox)?;
    if !meta.is_file() {
        return Err(RootfsError::NoBusybox);
    }
    let out = Command::new(BUSYBOX)
        .arg("--list-full")
        .output()
        .map_err(|_| RootfsError::NoBusybox)?;
    if !out.status.success() {
        return Err(RootfsError::NoBusybox);
    }

    for (dir, mode) in [
        ("bin", 0o755),
        ("sbin", 0o755),
        ("usr/bin", 0o755),
        ("usr/sbin", 0o755),
        ("etc", 0o755),
        ("dev", 0o755),
        ("proc", 0o555),
        ("sys", 0o555),
        ("root", 0o700),
        ("home", 0o755),
        ("var/spool/mail", 0o755),
        ("tmp", 0o1777),
    ] {
        let path = root.join(dir);
        fs::create_dir_all(&path).map_err(io_err("create", &path))?;
        set_mode(&path, mode)?;
    }
    let bin = root.join("bin/busybox");
    fs::copy(BUSYBOX, &bin).map_err(io_err("copy busybox to", &bin))?;
    set_mode(&bin, 0o755)?;

    for applet in String::from_utf8_lossy(&out.stdout).lines() {
        let applet = applet.trim();
        if applet.is_empty() || applet == "bin/busybox" {
            continue;
        }
        let link = inside(root, &format!("/{applet}"))?;
        if let Some(parent) = link.parent() {
            fs::create_dir_all(parent).map_err(io_err("create", parent))?;
        }
        symlink("/bin/busybox", &link).map_err(io_err("link", &link))?;
    }

    for (file, contents, mode) in [
        (
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n",
            0o644,
        ),
        ("etc/group", "root:x:0:\nnogroup:x:65534:\n", 0o644),
        (
            "etc/shadow",
            "root:*:0:0:99999:7:::\nnobody:*:0:0:99999:7:::\n",
            0o600,
        ),
        ("etc/hosts", "", 0o644),
        ("etc/hostname", "", 0o644),
        ("etc/resolv.conf", "", 0o644),
    ] {
        let path = root.join(file);
        fs::write(&path, contents).map_err(io_err("write", &path))?;
        set_mode(&path, mode)?;
    }
    Ok(())
}

/// Writes `files` under `root` (a fresh layer directory), compiling C
/// sources with `gcc -static -Os -s` in `scratch`.
pub fn add_files(
    root: &Path,
    files: &[AddFile],
    scratch: &Path,
    on_line: &mut dyn FnMut(&str),
) -> Result<(), RootfsError> {
    for (i, file) in files.iter().enumerate() {
        let dest = inside(root, &file.path)?;
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).map_err(io_err("create", parent))?;
        }
        match &file.source {
            FileSource::StaticC(source) => {
                let src = scratch.join(format!("source-{i}.c"));
                fs::write(&src, source).map_err(io_err("write", &src))?;
                let mut cmd = Command::new("gcc");
                cmd.args(["-static", "-Os", "-s", "-o"])
                    .arg(&dest)
                    .arg(&src);
                command::run(cmd, on_line)?;
            }
            FileSource::Host(path) => {
                fs::copy(path, &dest).map_err(io_err("copy", path))?;
            }
            FileSource::Text(text) => {
                fs::write(&dest, text).map_err(io_err("write", &dest))?;
            }
            FileSource::HostStripped(path) => {
                let mut cmd = Command::new("strip");
                cmd.arg("--strip-all").arg("-o").arg(&dest).arg(path);
                command::run(cmd, on_line)?;
            }
        }
        set_mode(&dest, file.mode)?;
    }
    Ok(())
}

/// Writes a run step's input file `name` into the chroot's scratch `/tmp`.
pub fn write_input(tmp: &Path, name: &str, contents: &str) -> Result<(), RootfsError> {
    let mut parts = Path::new(name).components();
    let plain = matches!(
        (parts.next(), parts.next()),
        (Some(Component::Normal(_)), None)
    );
    if !plain || name.contains('/') {
        return Err(RootfsError::BadInput(name.to_owned()));
    }
    let path = tmp.join(name);
    fs::write(&path, contents).map_err(io_err("write", &path))
}

fn set_mode(path: &Path, mode: u32) -> Result<(), RootfsError> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(io_err("chmod", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipe_paths_stay_inside_the_layer() {
        let root = Path::new("/layer");
        assert_eq!(
            inside(root, "/usr/bin/x").unwrap(),
            Path::new("/layer/usr/bin/x")
        );
        for bad in ["relative", "/", "/../etc/passwd", "/a/../../b", ""] {
            assert!(
                matches!(inside(root, bad), Err(RootfsError::BadPath(_))),
                "{bad:?} was accepted"
            );
        }
    }

    #[test]
    fn run_inputs_are_plain_file_names() {
        let tmp = tempfile::tempdir().unwrap();
        write_input(tmp.path(), "site.conf", "x").unwrap();
        assert_eq!(
            fs::read_to_string(tmp.path().join("site.conf")).unwrap(),
            "x"
        );
        for bad in ["", "..", ".", "a/b", "/etc/passwd", "../escape"] {
            assert!(
                matches!(
                    write_input(tmp.path(), bad, "x"),
                    Err(RootfsError::BadInput(_))
                ),
                "{bad:?} was accepted"
            );
        }
        assert!(!tmp.path().parent().unwrap().join("escape").exists());
    }
}
