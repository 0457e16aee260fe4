//! The one seam between the builder and the machine it builds on, in the
//! role of moby's `builder.Backend`: the lab's engine implements it with
//! real containers and the store; the dispatch tests implement it with a
//! recorder, so every instruction and cache rule is checked without root.
//! It is the third seam of the project beside `Syscall` and `SandboxHost`,
//! accepted because RUN needs root and most of a build does not.

use std::io::{Read, Write};

use serde_json::Value;

use crate::config::{Config, Image};
use crate::progress::Event;

/// What a backend call failed with, in words for the build's output.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BackendError(pub String);

pub type BackendResult<T> = Result<T, BackendError>;

/// A container made for one step, never shown to the step's Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepContainer {
    /// Its full ID (64 hex digits), as `Running in` shows its head.
    pub id: String,
}

pub trait Backend {
    /// The image `FROM name` names, pulled from the hub into the lab when
    /// the lab lacks it (or always, with `pull`).
    fn image(
        &mut self,
        name: &str,
        pull: bool,
        progress: &mut dyn FnMut(Event),
    ) -> BackendResult<Image>;

    /// A child of `parent` made by a step whose config equals `step`
    /// ([`Config::same_step`]), the newest if several: a cache hit.
    fn probe(&mut self, parent: &Image, step: &Config) -> BackendResult<Option<Image>>;

    /// A container of `parent` with run config `config`, not started.
    fn create(&mut self, parent: &Image, config: &Config) -> BackendResult<StepContainer>;

    /// Starts `container` and waits for it to end, passing its output on
    /// as it comes; its exit code.
    fn run(
        &mut self,
        container: &StepContainer,
        progress: &mut dyn FnMut(Event),
    ) -> BackendResult<i64>;

    /// Whether `path` is a directory in `container` (symlinks followed
    /// inside it); `None` when it does not exist.
    fn is_dir(&mut self, container: &StepContainer, path: &str) -> BackendResult<Option<bool>>;

    /// A small file of `container` (`/etc/passwd`), empty when absent.
    fn read_file(&mut self, container: &StepContainer, path: &str) -> BackendResult<String>;

    /// Creates directory `dir` and its missing parents (root's, 0755) in
    /// `container` (WORKDIR).
    fn make_dirs(&mut self, container: &StepContainer, dir: &str) -> BackendResult<()>;

    /// Unpacks the tar `archive` into directory `dir` of `container`,
    /// creating `dir` and its missing parents (root's, 0755) first.
    fn copy_into(
        &mut self,
        container: &StepContainer,
        dir: &str,
        archive: &mut (dyn Read + Send),
    ) -> BackendResult<()>;

    /// The body of `url` (`ADD http://…`), fetched through the lab's
    /// network.
    fn fetch(&mut self, url: &str, out: &mut dyn Write) -> BackendResult<()>;

    /// `path` of `image` as a tar whose top entry is its last component
    /// (`COPY --from`).
    fn copy_out(&mut self, image: &Image, path: &str, out: &mut dyn Write) -> BackendResult<()>;

    /// Stores the image whose config is `json`: with the changes of
    /// `container` as a new top layer (its diff ID appended to
    /// `rootfs.diff_ids`), or with `parent`'s layers alone. The image is
    /// kept in the lab as a child of `parent`.
    fn commit(
        &mut self,
        parent: &Image,
        container: Option<&StepContainer>,
        json: Value,
    ) -> BackendResult<Image>;

    /// Removes a step's container and its files.
    fn remove(&mut self, container: &StepContainer) -> BackendResult<()>;
}
