//! Recipes: what each catalog image is made of, as data.
//!
//! A [`Recipe`] names its tags, the recipe it starts from and a list of
//! [`Step`]s, much like a Dockerfile: a step either adds a layer (a
//! debootstrap, a busybox tree, files, a script run in a chroot) or only
//! changes the image configuration. Recipes are plain values so a caller can
//! add one more and build it with [`crate::build`]:
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let store = store::Store::open("/var/lib/layerlab/store".as_ref())?;
//! use images::recipes::{AddFile, ConfigChange, FileSource, Recipe, Step};
//! let tool = Recipe::new("tool:1")
//!     .from("debian:bookworm")
//!     .step(Step::Add {
//!         files: vec![AddFile {
//!             path: "/usr/local/bin/tool".into(),
//!             mode: 0o755,
//!             source: FileSource::HostStripped("/usr/local/bin/tool".into()),
//!         }],
//!     })
//!     .config(ConfigChange::Expose("8000/tcp".into()))
//!     .config(ConfigChange::Entrypoint(vec!["/usr/local/bin/tool".into()]));
//! let key = images::packages::Mirror::new("/var/lib/layerlab/packages".as_ref()).public_key();
//! let mut recipes = images::catalog(&std::env::current_exe()?, &key);
//! recipes.push(tool);
//! images::build(&store, "/var/tmp/layerlab/images".as_ref(), &recipes, |e| println!("{e}"))?;
//! # Ok(()) }
//! ```
//!
//! Every step serialises to JSON, and that JSON is what the build cache
//! hashes: editing a step (a package list, a label, a file's bytes) changes
//! its key and rebuilds it and everything after it.

use std::path::{Path, PathBuf};

use serde::Serialize;

pub use crate::debian::{DEBIAN_MIRROR, SUITE};
use crate::debian::{KEYRING_PATH, sources_list};

/// `PATH` as every Debian-based image sets it.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The catalog's Debian image, which the package repository is made for.
pub const DEBIAN: &str = "debian:bookworm";

/// How one image is built.
#[derive(Debug, Clone, Serialize)]
pub struct Recipe {
    /// Every `name:tag` the image gets in the hub namespace; the first one
    /// is the image's name in progress reports and for child recipes.
    pub tags: Vec<String>,
    /// The first tag of the recipe this one builds on; `None` for scratch.
    pub parent: Option<String>,
    /// Applied in order on top of the parent's layers and configuration.
    pub steps: Vec<Step>,
    /// Images for layerlab itself (the lab node) rather than for students;
    /// they are built and stored like the others, [`crate::list`] marks them.
    pub internal: bool,
}

/// One instruction of a recipe.
#[derive(Debug, Clone, Serialize)]
pub enum Step {
    /// A Debian root filesystem from `debootstrap`, with apt's package
    /// cache and lists dropped and the host's resolver and hostname files
    /// emptied. Only valid as the first layer of a scratch recipe.
    Debootstrap {
        /// Debian release, e.g. `bookworm`.
        suite: String,
        /// debootstrap's `--variant`, e.g. `minbase`.
        variant: String,
        /// Archive URL packages come from.
        mirror: String,
    },
    /// The host's `/bin/busybox` from the `busybox-static` package, one
    /// symlink per applet, and the few files a shell expects (`/etc/passwd`,
    /// `/etc/group`, `/tmp`, …).
    Busybox,
    /// Files added as one layer, like Docker's `COPY`.
    Add {
        /// Written in order; later files may overwrite earlier ones.
        files: Vec<AddFile>,
    },
    /// A shell script run as root by `/bin/sh -e` in a chroot of the image
    /// so far, with the host's network (build time only: recipes are ours,
    /// never a student's). Its changes become one layer. `inputs` are
    /// staged in the chroot's `/tmp`, which is a scratch directory outside
    /// the layer, so nothing left in `/tmp` is kept.
    Run {
        /// Shell code; its history line is `/bin/sh -c SCRIPT`.
        script: String,
        /// Files the script installs from `/tmp`.
        inputs: Vec<Input>,
    },
    /// A configuration change only: an `empty_layer` history entry.
    Config(ConfigChange),
}

/// A file for [`Step::Add`].
#[derive(Debug, Clone, Serialize)]
pub struct AddFile {
    /// Absolute path inside the image.
    pub path: String,
    /// Permission bits.
    pub mode: u32,
    /// Where its bytes come from.
    pub source: FileSource,
}

/// Where the bytes of an [`AddFile`] come from.
#[derive(Debug, Clone, Serialize)]
pub enum FileSource {
    /// C source compiled on the host with `gcc -static -Os -s`, so the
    /// result runs in an image without a libc.
    StaticC(String),
    /// A file of the host. The cache key covers its contents (hashed at
    /// build time), not only its path.
    Host(PathBuf),
    /// An executable of the host copied with `strip --strip-all`, such as
    /// the layerlab binary itself (a debug build carries hundreds of MB of
    /// symbols no image needs). The cache key is the sha256 of the
    /// unstripped file.
    HostStripped(PathBuf),
    /// The given text.
    Text(String),
}

/// A file made available to a [`Step::Run`] script as `/tmp/NAME`.
#[derive(Debug, Clone, Serialize)]
pub struct Input {
    /// A plain file name (no `/`).
    pub name: String,
    /// The file's text.
    pub contents: String,
}

/// Configuration-only instructions.
#[derive(Debug, Clone, Serialize)]
pub enum ConfigChange {
    /// `ENV KEY=VALUE`: replaces an inherited value of the same key.
    Env(String, String),
    /// `CMD [...]`.
    Cmd(Vec<String>),
    /// `ENTRYPOINT [...]`; drops the inherited `CMD`, as Docker does.
    Entrypoint(Vec<String>),
    /// `WORKDIR`.
    WorkingDir(String),
    /// `EXPOSE`, a port such as `80/tcp`.
    Expose(String),
    /// `STOPSIGNAL`, e.g. `SIGQUIT`.
    StopSignal(String),
    /// `LABEL KEY=VALUE`.
    Label(String, String),
    /// `VOLUME`, a path whose contents live outside the container's layers.
    Volume(String),
}

impl Step {
    /// The history line Docker would show for this step (`docker history`).
    pub fn created_by(&self) -> String {
        match self {
            Step::Debootstrap {
                suite,
                variant,
                mirror,
            } => format!(
                "/bin/sh -c #(nop) ADD rootfs: debootstrap --variant={variant} {suite} / {mirror}"
            ),
            Step::Busybox => {
                "/bin/sh -c #(nop) ADD rootfs: busybox-static /bin/busybox and its applets".into()
            }
            Step::Add { files } => {
                let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
                format!("/bin/sh -c #(nop) ADD {}", paths.join(" "))
            }
            Step::Run { script, .. } => format!("/bin/sh -c {}", script.trim()),
            Step::Config(change) => format!("/bin/sh -c #(nop)  {}", change.instruction()),
        }
    }

    /// Whether the step adds a layer (as opposed to only configuration).
    pub fn makes_layer(&self) -> bool {
        !matches!(self, Step::Config(_))
    }
}

impl ConfigChange {
    /// The Dockerfile instruction for this change, as shown in history.
    fn instruction(&self) -> String {
        let json = |v: &[String]| serde_json::to_string(v).unwrap_or_default();
        match self {
            ConfigChange::Env(k, v) => format!("ENV {k}={v}"),
            ConfigChange::Cmd(v) => format!("CMD {}", json(v)),
            ConfigChange::Entrypoint(v) => format!("ENTRYPOINT {}", json(v)),
            ConfigChange::WorkingDir(d) => format!("WORKDIR {d}"),
            ConfigChange::Expose(p) => format!("EXPOSE {p}"),
            ConfigChange::StopSignal(s) => format!("STOPSIGNAL {s}"),
            ConfigChange::Label(k, v) => format!("LABEL {k}={v}"),
            ConfigChange::Volume(path) => format!("VOLUME [{}]", json(std::slice::from_ref(path))),
        }
    }
}

impl Recipe {
    /// A scratch recipe for `tag` with no steps yet.
    pub fn new(tag: &str) -> Recipe {
        Recipe {
            tags: vec![tag.to_owned()],
            parent: None,
            steps: Vec::new(),
            internal: false,
        }
    }

    /// The image's name: its first tag.
    pub fn name(&self) -> &str {
        self.tags.first().map(String::as_str).unwrap_or("")
    }

    /// Also tag the image as `tag`.
    pub fn tag(mut self, tag: &str) -> Recipe {
        self.tags.push(tag.to_owned());
        self
    }

    /// Build on the image of the recipe whose first tag is `parent`.
    pub fn from(mut self, parent: &str) -> Recipe {
        self.parent = Some(parent.to_owned());
        self
    }

    /// Mark the image as one of layerlab's own (see [`Recipe::internal`]).
    pub fn internal(mut self) -> Recipe {
        self.internal = true;
        self
    }

    /// Append any step.
    pub fn step(mut self, step: Step) -> Recipe {
        self.steps.push(step);
        self
    }

    /// Append a [`Step::Run`] without inputs.
    pub fn run(self, script: &str) -> Recipe {
        self.run_with(script, Vec::new())
    }

    /// Append a [`Step::Run`] with files staged in its `/tmp`.
    pub fn run_with(self, script: &str, inputs: Vec<Input>) -> Recipe {
        self.step(Step::Run {
            script: script.to_owned(),
            inputs,
        })
    }

    /// Append a configuration-only step.
    pub fn config(self, change: ConfigChange) -> Recipe {
        self.step(Step::Config(change))
    }

    /// Set `PATH` to the usual Debian value.
    pub fn env_path(self) -> Recipe {
        self.config(ConfigChange::Env("PATH".into(), DEFAULT_PATH.into()))
    }

    /// Set the default command.
    pub fn cmd(self, argv: &[&str]) -> Recipe {
        self.config(ConfigChange::Cmd(
            argv.iter().map(|s| s.to_string()).collect(),
        ))
    }

    /// Set a label.
    pub fn label(self, key: &str, value: &str) -> Recipe {
        self.config(ConfigChange::Label(key.to_owned(), value.to_owned()))
    }

    /// The labels every catalog image carries.
    fn describe(self, description: &str) -> Recipe {
        let title = self.name().split(':').next().unwrap_or_default().to_owned();
        self.label("org.opencontainers.image.title", &title)
            .label("org.opencontainers.image.description", description)
            .label("org.opencontainers.image.vendor", "layerlab")
    }
}

/// apt-get as the recipes use it: non-interactive, no recommends, and the
/// package lists and caches removed again in the same layer. The archives
/// directory is a bind mount of the build cache, so it is never in a layer.
fn apt_install(packages: &[&str]) -> String {
    format!(
        "apt-get update \
         && apt-get install -y --no-install-recommends {} \
         && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin",
        packages.join(" ")
    )
}

/// Where the layerlab binary sits in the images that carry it.
pub const LAYERLAB_PATH: &str = "/usr/local/bin/layerlab";

/// The layer holding the layerlab executable `binary`, stripped. The same
/// step in `workstation` and `registry` gives the same bytes, so the layer
/// is stored once.
fn layerlab_layer(binary: &Path) -> Step {
    Step::Add {
        files: vec![AddFile {
            path: LAYERLAB_PATH.into(),
            mode: 0o755,
            source: FileSource::HostStripped(binary.to_owned()),
        }],
    }
}

/// The layer that points apt at the labs' package repository
/// ([`crate::packages`]) instead of Debian's archive, which labs cannot
/// reach: the installation's public key, which apt's gpgv checks the
/// repository's signature with, and a sources list naming only that
/// repository. The key is per installation, so this layer is too.
///
/// It also sets apt and dpkg up for containers, as Docker's official
/// Debian images do: dpkg does not sync every file it unpacks (a
/// container's layer is thrown away or committed whole, so a per-file
/// sync buys nothing and makes `apt-get install` several times slower);
/// apt keeps no binary caches or downloaded packages once it is done, and
/// fetches no translations, so a Dockerfile's `RUN apt-get install` leaves
/// a smaller layer, made and unpacked sooner.
fn apt_sources_layer(apt_key: &Path) -> Step {
    let text = |path: &str, text: &str| AddFile {
        path: path.into(),
        mode: 0o644,
        source: FileSource::Text(text.into()),
    };
    let clean = "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true";
    Step::Add {
        files: vec![
            text(
                "/etc/dpkg/dpkg.cfg.d/docker-apt-speedup",
                "force-unsafe-io\n",
            ),
            text(
                "/etc/apt/apt.conf.d/docker-clean",
                &format!(
                    "DPkg::Post-Invoke {{ \"{clean}\"; }};\nAPT::Update::Post-Invoke {{ \"{clean}\"; }};\nDir::Cache::pkgcache \"\";\nDir::Cache::srcpkgcache \"\";\n"
                ),
            ),
            text(
                "/etc/apt/apt.conf.d/docker-no-languages",
                "Acquire::Languages \"none\";\n",
            ),
            AddFile {
                path: KEYRING_PATH.into(),
                mode: 0o644,
                source: FileSource::Host(apt_key.to_owned()),
            },
            AddFile {
                path: "/etc/apt/sources.list".into(),
                mode: 0o644,
                source: FileSource::Text(sources_list()),
            },
        ],
    }
}

/// The catalog, parents before children. `layerlab` is the executable
/// that `registry:2` runs and the lab node carries (normally
/// `std::env::current_exe()` of the layerlab binary); `apt_key` is the
/// installation's public key for the package repository
/// ([`crate::packages::Mirror::public_key`]). Both are read only when a
/// recipe is built.
pub fn catalog(layerlab: &Path, apt_key: &Path) -> Vec<Recipe> {
    vec![
        Recipe::new("busybox:latest")
            .step(Step::Busybox)
            .env_path()
            .describe("BusyBox: one static binary providing a shell and the common Unix tools")
            .cmd(&["sh"]),
        Recipe::new(DEBIAN)
            .tag("debian:latest")
            .step(Step::Debootstrap {
                suite: SUITE.into(),
                variant: "minbase".into(),
                mirror: DEBIAN_MIRROR.into(),
            })
            .step(apt_sources_layer(apt_key))
            .env_path()
            .describe("Debian 12 (bookworm), minimal base system")
            .cmd(&["bash"]),
        Recipe::new("nginx:latest")
            .from(DEBIAN)
            .run_with(
                &format!(
                    "{} \
                     && install -m 0644 /tmp/site.conf /etc/nginx/sites-available/default \
                     && ln -sf /etc/nginx/sites-available/default /etc/nginx/sites-enabled/default \
                     && install -D -m 0644 /tmp/index.html /usr/share/nginx/html/index.html \
                     && ln -sf /dev/stdout /var/log/nginx/access.log \
                     && ln -sf /dev/stderr /var/log/nginx/error.log",
                    apt_install(&["nginx"])
                ),
                vec![
                    Input {
                        name: "site.conf".into(),
                        contents: include_str!("../files/nginx-site.conf").into(),
                    },
                    Input {
                        name: "index.html".into(),
                        contents: include_str!("../files/nginx-index.html").into(),
                    },
                ],
            )
            .describe("nginx web server serving /usr/share/nginx/html on port 80")
            .config(ConfigChange::Expose("80/tcp".into()))
            .config(ConfigChange::StopSignal("SIGQUIT".into()))
            .cmd(&["nginx", "-g", "daemon off;"]),
        Recipe::new("registry:2")
            .tag("registry:latest")
            .from(DEBIAN)
            .step(layerlab_layer(layerlab))
            .describe("OCI distribution registry (layerlab's own) on port 5000")
            .config(ConfigChange::Expose("5000/tcp".into()))
            .config(ConfigChange::Volume("/var/lib/registry".into()))
            .config(ConfigChange::Entrypoint(vec![
                LAYERLAB_PATH.into(),
                "registry".into(),
                "serve".into(),
            ]))
            .cmd(&["--listen", "0.0.0.0:5000", "--root", "/var/lib/registry"]),
        Recipe::new("hello-world:latest")
            .step(Step::Add {
                files: vec![AddFile {
                    path: "/hello".into(),
                    mode: 0o755,
                    source: FileSource::StaticC(include_str!("../files/hello.c").into()),
                }],
            })
            .env_path()
            .describe("Prints a greeting that explains how it got to your terminal")
            .cmd(&["/hello"]),
        Recipe::new("workstation:latest")
            .from(DEBIAN)
            .internal()
            .run(&apt_install(&[
                "bash",
                "bash-completion",
                "ca-certificates",
                "coreutils",
                "curl",
                "git",
                "iproute2",
                "iputils-ping",
                "jq",
                "less",
                "nano",
                "procps",
                "tree",
                "vim",
                "wget",
            ]))
            // Only the client of Debian's docker.io: the lab node talks to
            // layerlab's engine and must not carry dockerd, containerd or runc.
            .run(
                "apt-get update \
                 && cd /tmp \
                 && apt-get download docker.io \
                 && dpkg-deb --fsys-tarfile docker.io_*.deb \
                    | tar -x -C / ./usr/bin/docker ./usr/share/bash-completion/completions/docker \
                 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
                 && docker --version",
            )
            // Lets a lesson start a registry in the node before any
            // container engine exists: `layerlab registry serve`.
            .step(layerlab_layer(layerlab))
            .describe("The lab node: Debian with a shell, everyday tools and the Docker CLI")
            .config(ConfigChange::WorkingDir("/root".into()))
            .cmd(&["bash", "-l"]),
    ]
}
