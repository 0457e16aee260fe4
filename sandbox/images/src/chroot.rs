//! Running a recipe's script on top of an image: an overlay of the image's
//! layers with a fresh upper directory, entered with `chroot` in a private
//! mount namespace.
//!
//! Everything is mounted by the child between `fork` and `exec`, inside its
//! own mount namespace, so the mounts vanish with the process: a crashed or
//! killed build leaves nothing mounted on the host. What the script changes
//! lands in the upper directory, which the store turns into a layer
//! (whiteouts included).
//!
//! This runs as host root with the host's network and is meant for our own
//! recipes at build time only; student input never reaches it.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use rustix::mount::{MountFlags, MountPropagationFlags};

use crate::command::{self, CommandError};
use crate::debian::{DEBIAN_MIRROR, SUITE};

/// apt's configuration for build scripts, staged in the chroot's `/tmp`:
/// the catalog's Debian images list only the labs' own repository, which
/// exists inside labs, so builds fetch from Debian's archive instead.
const BUILD_APT_CONFIG: &str = "apt-build.conf";
const BUILD_SOURCES: &str = "apt-build.list";
const BUILD_SOURCE_PARTS: &str = "apt-build.list.d";

#[derive(Debug, thiserror::Error)]
pub enum ChrootError {
    #[error("a run step needs a parent image with /bin/sh, but this image has no layers yet")]
    NoLayers,
    #[error("path {} cannot be passed to mount: {source}", path.display())]
    Path {
        path: PathBuf,
        #[source]
        source: std::ffi::NulError,
    },
    #[error("cannot prepare {}: {source}", path.display())]
    Prepare {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Command(#[from] CommandError),
}

/// The directories of one overlay chroot.
pub struct Overlay<'a> {
    /// The image's layer directories, top-most first (overlay's order).
    pub lowers: &'a [PathBuf],
    /// Receives every change; becomes the new layer.
    pub upper: &'a Path,
    /// overlayfs' work directory (same file system as `upper`, empty).
    pub work: &'a Path,
    /// The mount point of the merged tree.
    pub merged: &'a Path,
    /// Mounted at `/tmp` in the chroot: scratch space outside the layer.
    pub tmp: &'a Path,
    /// Mounted at `/var/cache/apt/archives` when the image has that
    /// directory, so downloaded packages are cached across builds and never
    /// end up in a layer.
    pub apt_archives: &'a Path,
}

/// One mount the child performs, prepared in the parent because nothing
/// may allocate between `fork` and `exec`.
enum Mount {
    Overlay { target: CString, data: CString },
    Proc { target: CString },
    Bind { source: CString, target: CString },
}

fn cpath(path: &Path) -> Result<CString, ChrootError> {
    CString::new(path.as_os_str().as_bytes()).map_err(|source| ChrootError::Path {
        path: path.to_owned(),
        source,
    })
}

impl Overlay<'_> {
    /// Whether `rel` exists in any layer, checked before mounting because a
    /// bind mount needs an existing target and creating one would add it to
    /// the layer. Whiteouts are ignored: a recipe never deletes these paths.
    fn has(&self, rel: &str) -> bool {
        std::iter::once(self.upper)
            .chain(self.lowers.iter().map(PathBuf::as_path))
            .any(|dir| dir.join(rel).symlink_metadata().is_ok())
    }

    fn mounts(&self) -> Result<Vec<Mount>, ChrootError> {
        if self.lowers.is_empty() {
            return Err(ChrootError::NoLayers);
        }
        let lowers: Vec<String> = self
            .lowers
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        let data = format!(
            "lowerdir={},upperdir={},workdir={}",
            lowers.join(":"),
            self.upper.display(),
            self.work.display()
        );
        let data = CString::new(data).map_err(|source| ChrootError::Path {
            path: self.upper.to_owned(),
            source,
        })?;
        let mut mounts = vec![Mount::Overlay {
            target: cpath(self.merged)?,
            data,
        }];
        if self.has("proc") {
            mounts.push(Mount::Proc {
                target: cpath(&self.merged.join("proc"))?,
            });
        }
        let binds: [(&Path, &str); 4] = [
            (Path::new("/dev"), "dev"),
            (self.tmp, "tmp"),
            (Path::new("/etc/resolv.conf"), "etc/resolv.conf"),
            (self.apt_archives, "var/cache/apt/archives"),
        ];
        for (source, rel) in binds {
            if self.has(rel) {
                mounts.push(Mount::Bind {
                    source: cpath(source)?,
                    target: cpath(&self.merged.join(rel))?,
                });
            }
        }
        Ok(mounts)
    }
}

/// Runs in the child after `fork`: only system calls, no allocation.
fn enter(mounts: &[Mount], root: &std::ffi::CStr) -> io::Result<()> {
    // SAFETY: the child is single-threaded, so no other thread can observe
    // the change of namespace (and FILES is not unshared).
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNS)? };
    // Without this, the mounts below would propagate back to the host.
    rustix::mount::mount_change(
        c"/",
        MountPropagationFlags::REC | MountPropagationFlags::PRIVATE,
    )?;
    for m in mounts {
        match m {
            Mount::Overlay { target, data } => rustix::mount::mount(
                c"overlay",
                target.as_c_str(),
                c"overlay",
                MountFlags::empty(),
                data.as_c_str(),
            )?,
            Mount::Proc { target } => rustix::mount::mount(
                c"proc",
                target.as_c_str(),
                c"proc",
                MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
                None,
            )?,
            Mount::Bind { source, target } => {
                rustix::mount::mount_bind_recursive(source.as_c_str(), target.as_c_str())?
            }
        }
    }
    rustix::process::chroot(root)?;
    rustix::process::chdir(c"/")?;
    Ok(())
}

/// Runs `script` with `/bin/sh -ec` inside the overlay, with `env` as the
/// whole environment.
pub fn run_script(
    overlay: &Overlay<'_>,
    env: &[(String, String)],
    script: &str,
    on_line: &mut dyn FnMut(&str),
) -> Result<(), ChrootError> {
    let mounts = overlay.mounts()?;
    // A real /tmp: apt drops root to `_apt` and needs to write there.
    fs::set_permissions(overlay.tmp, fs::Permissions::from_mode(0o1777)).map_err(|source| {
        ChrootError::Prepare {
            path: overlay.tmp.to_owned(),
            source,
        }
    })?;
    let prepare = |path: &Path, result: io::Result<()>| {
        result.map_err(|source| ChrootError::Prepare {
            path: path.to_owned(),
            source,
        })
    };
    let parts = overlay.tmp.join(BUILD_SOURCE_PARTS);
    prepare(&parts, fs::create_dir_all(&parts))?;
    let sources = overlay.tmp.join(BUILD_SOURCES);
    prepare(
        &sources,
        fs::write(&sources, format!("deb {DEBIAN_MIRROR} {SUITE} main\n")),
    )?;
    let config = overlay.tmp.join(BUILD_APT_CONFIG);
    prepare(
        &config,
        fs::write(
            &config,
            format!(
                "Dir::Etc::SourceList \"/tmp/{BUILD_SOURCES}\";\n\
                 Dir::Etc::SourceParts \"/tmp/{BUILD_SOURCE_PARTS}\";\n"
            ),
        ),
    )?;
    let root = cpath(overlay.merged)?;
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-ec")
        .arg(script)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("APT_CONFIG", format!("/tmp/{BUILD_APT_CONFIG}"));
    // SAFETY: `enter` only makes system calls on memory prepared before the
    // fork, which is what `pre_exec` requires.
    unsafe {
        cmd.pre_exec(move || enter(&mounts, &root));
    }
    command::run(cmd, on_line)?;
    Ok(())
}
