//! The Debian package repository of the labs: labs have no network
//! egress, so `apt-get install figlet` in a lab is served by the lab's
//! engine from a repository prepared here, next to the catalog.
//!
//! ```text
//! <data dir>/packages/            Mirror::new(dir)
//!   lock                  held (flock) while the key or the repository changes
//!   gnupg/                the installation's signing key (GNUPGHOME, 0700),
//!                         made once, never rebuilt
//!   layerlab.gpg          its public key; the Debian images carry it
//!   extra-packages.list   an instructor's additions to the built-in list
//!   repo/                 what labs see at http://packages.layerlab.internal:3142/debian/
//!     dists/bookworm/{Release,Release.gpg,InRelease}
//!     dists/bookworm/main/binary-<arch>/Packages{,.gz}
//!     pool/main/*.deb
//!   repo.stamp            which base image and list `repo/` was made for
//! ```
//!
//! The repository holds the closure of the package list on top of the
//! catalog's `debian:bookworm`: `apt-get install --download-only` in a
//! throw-away overlay chroot of that image, from Debian's archive. It is
//! rebuilt only when the list or the Debian image changes, and replaced
//! whole, so an engine serving it never sees half of one.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest as _, Sha256};
use store::{Digest, Store};

use crate::cache::{Cache, CacheError};
use crate::chroot::{self, ChrootError, Overlay};
use crate::command::{self, CommandError};
use crate::debian::SUITE;
pub use crate::debian::{HOST, KEYRING_PATH, PORT, URL_PATH, sources_list};
pub use crate::progress::Repository;
use crate::progress::{BuiltImage, Progress};

/// The file in the mirror's directory that adds packages to the built-in list.
pub const EXTRA_LIST: &str = "extra-packages.list";

/// The built-in package list (`files/packages.list`).
const DEFAULT_LIST: &str = include_str!("../files/packages.list");
/// Bumped when the repository's layout changes without the list or the
/// base changing, to rebuild it.
const STAMP_VERSION: &str = "layerlab-packages/2";
/// The user id of the signing key.
const KEY_UID: &str = "layerlab package repository <packages@layerlab.internal>";

/// Why the package repository or its key cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum PackagesError {
    /// A file or directory of the mirror could not be used.
    #[error("cannot {what} {}: {source}; check that the data directory is writable", path.display())]
    Io {
        /// The operation.
        what: &'static str,
        /// The path it was applied to.
        path: PathBuf,
        /// The failure.
        #[source]
        source: io::Error,
    },
    /// A line of a package list is not a Debian package name.
    #[error(
        "{file}:{line}: {name:?} is not a Debian package name (lower-case letters, digits, `+`, `-` and `.`, one name per line)"
    )]
    BadName {
        /// The list it was found in.
        file: String,
        /// 1-based.
        line: usize,
        /// The offending text.
        name: String,
    },
    /// gpg, dpkg-scanpackages or gzip failed.
    #[error(transparent)]
    Command(#[from] CommandError),
    /// The download chroot could not be set up, or apt-get failed in it.
    #[error(transparent)]
    Chroot(#[from] ChrootError),
    /// The build cache could not be used.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// The store could not unpack the base image.
    #[error(transparent)]
    Store(#[from] store::Error),
}

fn io_err(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> PackagesError {
    let path = path.to_owned();
    move |source| PackagesError::Io { what, path, source }
}

/// The mirror's directory in a data directory (drawn in the module doc).
#[derive(Debug, Clone)]
pub struct Mirror {
    dir: PathBuf,
}

impl Mirror {
    /// The mirror kept in `dir` (normally `<data dir>/packages`).
    pub fn new(dir: &Path) -> Mirror {
        Mirror {
            dir: dir.to_owned(),
        }
    }

    /// The directory labs are served (`dists/`, `pool/`).
    pub fn repository(&self) -> PathBuf {
        self.dir.join("repo")
    }

    /// The installation's public key, as apt's `signed-by` reads it.
    pub fn public_key(&self) -> PathBuf {
        self.dir.join("layerlab.gpg")
    }

    fn gnupg(&self) -> PathBuf {
        self.dir.join("gnupg")
    }

    fn stamp_path(&self) -> PathBuf {
        self.dir.join("repo.stamp")
    }

    /// Holds the mirror's flock while the returned file lives.
    pub(crate) fn lock(&self) -> Result<File, PackagesError> {
        fs::create_dir_all(&self.dir).map_err(io_err("create", &self.dir))?;
        let path = self.dir.join("lock");
        crate::cache::flock(&path).map_err(io_err("lock", &path))
    }

    /// The package list: the built-in one plus [`EXTRA_LIST`] if present,
    /// sorted, without duplicates.
    pub fn packages(&self) -> Result<Vec<String>, PackagesError> {
        let mut names = parse_list("files/packages.list", DEFAULT_LIST)?;
        let extra = self.dir.join(EXTRA_LIST);
        match fs::read_to_string(&extra) {
            Ok(text) => names.extend(parse_list(&extra.display().to_string(), &text)?),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("read", &extra)(e)),
        }
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// Whether the repository was built for the Debian image `base` (its
    /// manifest digest) and the current package list.
    pub fn is_current(&self, base: &Digest) -> bool {
        let Ok(list) = self.packages() else {
            return false;
        };
        fs::read_to_string(self.stamp_path()).is_ok_and(|s| s == stamp(base, &list))
            && self.in_release().is_file()
    }

    fn in_release(&self) -> PathBuf {
        self.repository()
            .join("dists")
            .join(SUITE)
            .join("InRelease")
    }

    /// gpg on the mirror's own keyring, never the user's: batch mode, no
    /// passphrase, no terminal.
    fn gpg(&self) -> Command {
        let mut cmd = Command::new("gpg");
        cmd.arg("--homedir")
            .arg(self.gnupg())
            .args(["--batch", "--no-tty", "--quiet"])
            .args(["--pinentry-mode", "loopback", "--passphrase", ""]);
        cmd
    }

    /// gpg starts an agent for its home directory; it must not outlive us.
    fn stop_agent(&self) {
        let stopped = Command::new("gpgconf")
            .arg("--homedir")
            .arg(self.gnupg())
            .args(["--kill", "gpg-agent"])
            .output();
        if let Err(e) = stopped {
            tracing::warn!(error = %e, "cannot stop the package key's gpg-agent");
        }
    }

    /// Makes the installation's signing key the first time (kept for good
    /// afterwards: images carry its public half) and returns the path of
    /// the public key.
    pub(crate) fn ensure_key(
        &self,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<PathBuf, PackagesError> {
        let public = self.public_key();
        if public.is_file() {
            return Ok(public);
        }
        let home = self.gnupg();
        progress(Progress::Output {
            image: "packages".into(),
            line: format!(
                "making the package repository's signing key in {}",
                home.display()
            ),
        });
        // A half-made home of an interrupted run holds no key anyone uses.
        match fs::remove_dir_all(&home) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(io_err("remove", &home)(e));
            }
            _ => {}
        }
        fs::create_dir_all(&home).map_err(io_err("create", &home))?;
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&home, fs::Permissions::from_mode(0o700))
            .map_err(io_err("chmod", &home))?;
        let made = (|| {
            let mut gen_key = self.gpg();
            gen_key.args(["--quick-gen-key", KEY_UID, "ed25519", "sign", "never"]);
            command::output(gen_key)?;
            let mut export = self.gpg();
            export.args(["--export", KEY_UID]);
            command::output(export)
        })();
        self.stop_agent();
        let key = made?;
        let tmp = self.dir.join("layerlab.gpg.tmp");
        fs::write(&tmp, &key).map_err(io_err("write", &tmp))?;
        fs::rename(&tmp, &public).map_err(io_err("write", &public))?;
        Ok(public)
    }

    /// Makes the repository for the Debian image `base` unless the last
    /// one was made for the same image and list.
    pub(crate) fn build(
        &self,
        store: &Store,
        cache_dir: &Path,
        base: &BuiltImage,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Repository, PackagesError> {
        let list = self.packages()?;
        if self.is_current(&base.manifest_digest) {
            return Ok(Repository {
                packages: count_debs(&self.repository().join("pool/main")),
                rebuilt: false,
            });
        }
        let cache = Cache::lock(cache_dir)?;
        let scratch = cache.scratch()?;
        let archives = scratch.path().join("archives");
        let dirs = ["upper", "work", "merged", "tmp"].map(|d| scratch.path().join(d));
        for dir in dirs.iter().chain([&archives.join("partial")]) {
            fs::create_dir_all(dir).map_err(io_err("create", dir))?;
        }
        let [upper, work, merged, tmp] = &dirs;
        // The lease keeps the image's layers for as long as the chroot runs.
        let unpacked = store.unpack(&base.manifest_digest)?;
        let overlay = Overlay {
            lowers: &unpacked.lowerdirs,
            upper,
            work,
            merged,
            tmp,
            apt_archives: &archives,
        };
        let env: Vec<(String, String)> = [
            (
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            ),
            ("DEBIAN_FRONTEND", "noninteractive"),
            ("HOME", "/root"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .into();
        // With recommendations, as a student's `apt-get install` wants them.
        let script = format!(
            "apt-get update && apt-get install --download-only -y {}",
            list.join(" ")
        );
        let mut on_line = |line: &str| {
            progress(Progress::Output {
                image: "packages".into(),
                line: line.to_owned(),
            })
        };
        chroot::run_script(&overlay, &env, &script, &mut on_line)?;
        drop(unpacked);

        let new = self.dir.join("repo.new");
        remove_if_present(&new)?;
        let pool = new.join("pool/main");
        fs::create_dir_all(&pool).map_err(io_err("create", &pool))?;
        for entry in fs::read_dir(&archives).map_err(io_err("list", &archives))? {
            let path = entry.map_err(io_err("list", &archives))?.path();
            if path.extension().is_some_and(|e| e == "deb")
                && let Some(name) = path.file_name().and_then(|n| n.to_str())
            {
                let target = pool.join(pool_name(name));
                fs::copy(&path, &target).map_err(io_err("copy", &path))?;
            }
        }
        let packages = count_debs(&pool);
        self.index(&new)?;

        let old = self.dir.join("repo.old");
        remove_if_present(&old)?;
        let current = self.repository();
        if current.exists() {
            fs::rename(&current, &old).map_err(io_err("move", &current))?;
        }
        fs::rename(&new, &current).map_err(io_err("move", &new))?;
        remove_if_present(&old)?;
        let stamp_path = self.stamp_path();
        fs::write(&stamp_path, stamp(&base.manifest_digest, &list))
            .map_err(io_err("write", &stamp_path))?;
        Ok(Repository {
            packages,
            rebuilt: true,
        })
    }

    /// Writes the indexes of the repository in `root` and signs them.
    fn index(&self, root: &Path) -> Result<(), PackagesError> {
        let arch = store::manifests::host_architecture();
        let dist = root.join("dists").join(SUITE);
        let binary = dist.join("main").join(format!("binary-{arch}"));
        fs::create_dir_all(&binary).map_err(io_err("create", &binary))?;
        let mut scan = Command::new("dpkg-scanpackages");
        scan.args(["--multiversion", "pool", "/dev/null"])
            .current_dir(root);
        let index = command::output(scan)?;
        let packages = binary.join("Packages");
        fs::write(&packages, &index).map_err(io_err("write", &packages))?;
        let mut gzip = Command::new("gzip");
        gzip.args(["-9", "-n", "-k", "-f"]).arg(&packages);
        command::output(gzip)?;

        let mut sums = String::new();
        for name in ["Packages", "Packages.gz"] {
            let path = binary.join(name);
            let bytes = fs::read(&path).map_err(io_err("read", &path))?;
            sums.push_str(&format!(
                " {} {} main/binary-{arch}/{name}\n",
                hex::encode(Sha256::digest(&bytes)),
                bytes.len()
            ));
        }
        let release = dist.join("Release");
        fs::write(&release, release_text(arch, &sums)).map_err(io_err("write", &release))?;

        let signed = (|| {
            let mut clear = self.gpg();
            clear
                .args(["--digest-algo", "SHA512", "--clearsign", "--output"])
                .arg(dist.join("InRelease"))
                .arg(&release);
            command::output(clear)?;
            let mut detached = self.gpg();
            detached
                .args([
                    "--digest-algo",
                    "SHA512",
                    "--armor",
                    "--detach-sign",
                    "--output",
                ])
                .arg(dist.join("Release.gpg"))
                .arg(&release);
            command::output(detached)
        })();
        self.stop_agent();
        signed?;
        Ok(())
    }
}

/// The names of a package list, checked: `file` names it in errors.
fn parse_list(file: &str, text: &str) -> Result<Vec<String>, PackagesError> {
    let mut names = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let name = line.split('#').next().unwrap_or_default().trim();
        if name.is_empty() {
            continue;
        }
        let valid = name.len() >= 2
            && name.len() <= 128
            && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c));
        if !valid {
            return Err(PackagesError::BadName {
                file: file.to_owned(),
                line: i + 1,
                name: name.to_owned(),
            });
        }
        names.push(name.to_owned());
    }
    Ok(names)
}

/// The name of a downloaded package in the pool: apt saves a version's
/// epoch as `%3a` (`iputils-ping_3%3a20221126-1_amd64.deb`), which would
/// reach the server percent-encoded twice; Debian's pool leaves the epoch
/// out of file names, and so does this one.
fn pool_name(downloaded: &str) -> String {
    match (downloaded.split_once('_'), downloaded.find("%3a")) {
        (Some((package, _)), Some(at)) => format!("{package}_{}", &downloaded[at + 3..]),
        _ => downloaded.to_owned(),
    }
}

/// What a repository is made of, as a hash: its base image and list.
fn stamp(base: &Digest, list: &[String]) -> String {
    let mut h = Sha256::new();
    for part in [STAMP_VERSION, &base.to_string(), &list.join("\n")] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(h.finalize())
}

/// A Release file listing `sums` (lines ` <sha256> <size> <path>`).
fn release_text(arch: &str, sums: &str) -> String {
    let now = time::OffsetDateTime::now_utc();
    let format = time::format_description::parse_borrowed::<2>(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] UTC",
    );
    let date = format
        .ok()
        .and_then(|f| now.format(&f).ok())
        .unwrap_or_default();
    format!(
        "Origin: layerlab\n\
         Label: layerlab\n\
         Suite: {SUITE}\n\
         Codename: {SUITE}\n\
         Date: {date}\n\
         Architectures: {arch}\n\
         Components: main\n\
         Description: Debian packages served to layerlab's labs\n\
         SHA256:\n{sums}"
    )
}

fn count_debs(dir: &Path) -> usize {
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "deb"))
        .count()
}

fn remove_if_present(dir: &Path) -> Result<(), PackagesError> {
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("remove", dir)(e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_lists_take_names_and_comments_and_refuse_the_rest() {
        let names = parse_list("x", "# comment\nfiglet\n\n  nmap  # scanner\nlibc++1\n").unwrap();
        assert_eq!(names, ["figlet", "nmap", "libc++1"]);
        for bad in ["Figlet", "a", "-rf", "curl wget", "pkg=1.0", "../x", "x;rm"] {
            match parse_list("extra.list", &format!("ok\n{bad}\n")) {
                Err(PackagesError::BadName { line: 2, name, .. }) => assert_eq!(name, bad),
                other => panic!("{bad:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn the_built_in_list_parses_and_the_extra_list_adds_to_it() {
        let dir = tempfile::tempdir().unwrap();
        let mirror = Mirror::new(dir.path());
        let built_in = mirror.packages().unwrap();
        for name in [
            "figlet",
            "nmap",
            "curl",
            "python3",
            "iputils-ping",
            "ca-certificates",
        ] {
            assert!(built_in.iter().any(|n| n == name), "{name} is missing");
        }
        fs::write(dir.path().join(EXTRA_LIST), "cowsay\nfiglet\n").unwrap();
        let extended = mirror.packages().unwrap();
        assert_eq!(extended.len(), built_in.len() + 1);
        assert!(extended.iter().any(|n| n == "cowsay"));
        let base = Digest::of(b"debian");
        assert_ne!(stamp(&base, &built_in), stamp(&base, &extended));
        assert_ne!(
            stamp(&base, &built_in),
            stamp(&Digest::of(b"other"), &built_in)
        );
    }

    #[test]
    fn pool_names_leave_the_epoch_out() {
        assert_eq!(
            pool_name("iputils-ping_3%3a20221126-1+deb12u1_amd64.deb"),
            "iputils-ping_20221126-1+deb12u1_amd64.deb"
        );
        assert_eq!(
            pool_name("figlet_2.2.5-3+b1_amd64.deb"),
            "figlet_2.2.5-3+b1_amd64.deb"
        );
    }

    #[test]
    fn sources_point_at_the_signed_repository_in_the_lab() {
        assert_eq!(
            sources_list().lines().nth(1),
            Some(
                "deb [signed-by=/etc/apt/keyrings/layerlab.gpg] http://packages.layerlab.internal:3142/debian bookworm main"
            )
        );
    }
}
