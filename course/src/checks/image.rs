//! `image`: an image in the lab's Docker engine, and what its config,
//! layers and history say.

use std::collections::BTreeMap;

use serde::Serialize;

use super::engine::{self, EnvRule, Words};
use super::pattern::Pattern;
use super::spec::{CheckSpec, shorten};
use crate::schema::{Reader, optional};
use crate::yaml::{Node, Value};

/// How an image came to be, as far as its history tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MadeBy {
    /// `docker build`: each step's image is built on its parent's ID.
    Build,
    /// `docker commit` of a container.
    Commit,
}

/// Bounds on the number of file system layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LayerCount {
    /// The fewest layers allowed.
    pub at_least: Option<u32>,
    /// The most layers allowed.
    pub at_most: Option<u32>,
}

/// Passes when the lab's engine has an image by `name` that meets every
/// condition given.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImageCheck {
    /// As `docker image inspect` takes it: `app:v1`, `localhost:5000/app`.
    pub name: String,
    /// Rules its environment must obey.
    pub env: Vec<EnvRule>,
    /// Its `Cmd`.
    pub cmd: Option<Words>,
    /// Its `Entrypoint`.
    pub entrypoint: Option<Words>,
    /// Its `User`, exactly.
    pub user: Option<String>,
    /// Its `WorkingDir`, exactly (a trailing `/` aside).
    pub workdir: Option<String>,
    /// Ports it must expose, normalized as `80/tcp`.
    pub exposed_ports: Vec<String>,
    /// Labels it must carry, with these values.
    pub labels: BTreeMap<String, String>,
    /// Bounds on its number of file system layers.
    pub layers: Option<LayerCount>,
    /// Some history entry's `created_by` matches.
    pub history: Option<Pattern>,
    /// The two images' layer lists start with at least one common layer.
    pub shares_base_with: Option<String>,
    /// How it must have been made.
    pub made_by: Option<MadeBy>,
}

/// More layers than any image a lesson builds (Docker's limit is 125).
const MAX_LAYERS: u64 = 127;

impl CheckSpec for ImageCheck {
    fn parse(reader: &mut Reader<'_>, node: &Node) -> Option<Self> {
        let f = reader.fields(
            node,
            "`image` check",
            &[
                "name",
                "env",
                "cmd",
                "entrypoint",
                "user",
                "workdir",
                "exposed_ports",
                "labels",
                "layers",
                "history",
                "shares_base_with",
                "made_by",
            ],
        )?;
        let name = f
            .required(reader, "name")
            .and_then(|n| engine::image_name(reader, n, "name"));
        let env = optional(f.get("env").map(|n| engine::env_rules(reader, n)));
        let cmd = optional(f.get("cmd").map(|n| engine::words(reader, n, "cmd")));
        let entrypoint = optional(
            f.get("entrypoint")
                .map(|n| engine::words(reader, n, "entrypoint")),
        );
        let user = optional(f.get("user").map(|n| reader.string(n, "user")));
        let workdir = optional(f.get("workdir").map(|n| absolute(reader, n, "workdir")));
        let exposed_ports = optional(f.get("exposed_ports").map(|n| exposed(reader, n)));
        let labels = optional(f.get("labels").map(|n| labels(reader, n)));
        let layers = optional(f.get("layers").map(|n| layer_count(reader, n)));
        let history = optional(f.get("history").map(|n| reader.pattern(n, "history")));
        let shares_base_with = optional(
            f.get("shares_base_with")
                .map(|n| engine::image_name(reader, n, "shares_base_with")),
        );
        let made_by = optional(f.get("made_by").map(|n| made_by(reader, n)));
        Some(ImageCheck {
            name: name?,
            env: env.ok()?.unwrap_or_default(),
            cmd: cmd.ok()?,
            entrypoint: entrypoint.ok()?,
            user: user.ok()?,
            workdir: workdir.ok()?,
            exposed_ports: exposed_ports.ok()?.unwrap_or_default(),
            labels: labels.ok()?.unwrap_or_default(),
            layers: layers.ok()?,
            history: history.ok()?,
            shares_base_with: shares_base_with.ok()?,
            made_by: made_by.ok()?,
        })
    }

    fn describe(&self) -> String {
        shorten(&format!("image {}", self.name))
    }
}

pub(crate) fn absolute(reader: &mut Reader<'_>, node: &Node, key: &str) -> Option<String> {
    let path = reader.string(node, key)?;
    if path.starts_with('/') {
        return Some(path);
    }
    reader.error(
        node.line,
        format!(
            "`{key}` must be an absolute path (start with /), found `{}`",
            shorten(&path)
        ),
    );
    None
}

fn exposed(reader: &mut Reader<'_>, node: &Node) -> Option<Vec<String>> {
    let mut out = Vec::new();
    for text in engine::strings(reader, node, "exposed_ports")? {
        let Some((number, protocol)) = engine::port(&text) else {
            reader.error(
                node.line,
                format!(
                    "`exposed_ports` entry `{}` is not a port: write 80 or 53/udp",
                    shorten(&text)
                ),
            );
            return None;
        };
        out.push(format!("{number}/{protocol}"));
    }
    Some(out)
}

fn labels(reader: &mut Reader<'_>, node: &Node) -> Option<BTreeMap<String, String>> {
    let Value::Map(entries) = &node.value else {
        reader.error(
            node.line,
            format!(
                "`labels` must be a mapping of `label: value` lines, found {}",
                node.describe()
            ),
        );
        return None;
    };
    let mut out = BTreeMap::new();
    let mut ok = true;
    for (key, value) in entries {
        let (Some(key), Some(value)) = (
            reader.string(key, "label"),
            reader.string(value, "label value"),
        ) else {
            ok = false;
            continue;
        };
        if out.insert(key.clone(), value).is_some() {
            reader.error(
                node.line,
                format!("label `{}` is given twice: keep one", shorten(&key)),
            );
            ok = false;
        }
    }
    ok.then_some(out)
}

fn layer_count(reader: &mut Reader<'_>, node: &Node) -> Option<LayerCount> {
    let f = reader.fields(node, "`layers`", &["at_least", "at_most"])?;
    let at_least = optional(
        f.get("at_least")
            .map(|n| reader.uint(n, "at_least", 0..=MAX_LAYERS)),
    );
    let at_most = optional(
        f.get("at_most")
            .map(|n| reader.uint(n, "at_most", 0..=MAX_LAYERS)),
    );
    let (at_least, at_most) = (at_least.ok()?, at_most.ok()?);
    match (at_least, at_most) {
        (None, None) => {
            reader.error(node.line, "`layers` needs `at_least`, `at_most` or both");
            None
        }
        (Some(low), Some(high)) if low > high => {
            reader.error(
                node.line,
                format!("`layers` asks for at least {low} and at most {high}: no image has both"),
            );
            None
        }
        _ => Some(LayerCount {
            at_least: at_least.map(|n| n as u32),
            at_most: at_most.map(|n| n as u32),
        }),
    }
}

fn made_by(reader: &mut Reader<'_>, node: &Node) -> Option<MadeBy> {
    match reader.string(node, "made_by")?.as_str() {
        "build" => Some(MadeBy::Build),
        "commit" => Some(MadeBy::Commit),
        other => {
            reader.error(
                node.line,
                format!(
                    "`made_by` must be build or commit, found `{}`",
                    shorten(other)
                ),
            );
            None
        }
    }
}
