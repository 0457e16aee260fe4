//! What grading reads of a lab's engine: its images and containers as
//! plain facts, the way `docker image inspect` and `docker inspect` would
//! show them, without going through the lab's socket.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::containers::{Record, Status};
use crate::images::LabImage;

/// How an image came to be, as its config tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// `docker build`: each step's image names its parent's ID as its
    /// `Image`.
    Build,
    /// `docker commit`: the image names the container it came from, and
    /// the image that container ran by the name it was given.
    Commit,
    /// Pulled, loaded or imported.
    Other,
}

/// An image of the lab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageFacts {
    /// `sha256:` of the config.
    pub id: String,
    pub manifest_digest: String,
    /// `repo:tag` names in the lab.
    pub names: Vec<String>,
    pub env: Vec<String>,
    pub cmd: Vec<String>,
    pub entrypoint: Vec<String>,
    pub user: String,
    pub workdir: String,
    /// `80/tcp`.
    pub exposed_ports: Vec<String>,
    pub labels: BTreeMap<String, String>,
    /// Diff IDs, bottom first.
    pub layers: Vec<String>,
    /// Every history entry's `created_by`, oldest first.
    pub history: Vec<String>,
    pub origin: Origin,
}

/// A port published on the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: String,
}

/// A mount of a container: a node path or a named volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountFacts {
    /// The path in the node, or the volume's name.
    pub source: String,
    pub destination: String,
}

/// A container of the lab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerFacts {
    pub id: String,
    /// Without Docker's leading `/`.
    pub name: String,
    /// The image as `docker run` was given it.
    pub image: String,
    /// The image's ID.
    pub image_id: String,
    /// `created`, `running` or `exited` (`docker inspect`'s words).
    pub state: String,
    pub exit_code: i32,
    /// While running.
    pub ports: Vec<Published>,
    pub mounts: Vec<MountFacts>,
    /// While running; the network mode otherwise.
    pub network: String,
    pub env: Vec<String>,
    /// Path and arguments.
    pub command: Vec<String>,
}

pub(crate) fn image(found: &LabImage) -> ImageFacts {
    let document: Value = serde_json::from_slice(&found.image.config_bytes).unwrap_or_default();
    let config = &document["config"];
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let mut exposed_ports: Vec<String> = config["ExposedPorts"]
        .as_object()
        .map(|ports| ports.keys().cloned().collect())
        .unwrap_or_default();
    exposed_ports.sort();
    let labels = config["Labels"]
        .as_object()
        .map(|labels| labels.iter().map(|(k, v)| (k.clone(), text(v))).collect())
        .unwrap_or_default();
    let history = document["history"]
        .as_array()
        .map(|entries| entries.iter().map(|e| text(&e["created_by"])).collect())
        .unwrap_or_default();
    let origin = if found.parent().is_some() {
        Origin::Build
    } else if !text(&document["container"]).is_empty() {
        Origin::Commit
    } else {
        Origin::Other
    };
    ImageFacts {
        id: found.id(),
        manifest_digest: found.image.manifest_digest.to_string(),
        names: found.repo_tags(),
        env: strings(&config["Env"]),
        cmd: strings(&config["Cmd"]),
        entrypoint: strings(&config["Entrypoint"]),
        user: text(&config["User"]),
        workdir: text(&config["WorkingDir"]),
        exposed_ports,
        labels,
        layers: found.diff_ids(),
        history,
        origin,
    }
}

pub(crate) fn container(record: &Record) -> ContainerFacts {
    let running = record.status == Status::Running;
    let ports = if running {
        record
            .ports
            .iter()
            .flat_map(|(port, bindings)| {
                let (number, protocol) = port.split_once('/').unwrap_or((port, "tcp"));
                let container_port = number.parse().unwrap_or(0);
                bindings.iter().filter_map(move |b| {
                    Some(Published {
                        host_port: b.host_port.parse().ok()?,
                        container_port,
                        protocol: protocol.to_owned(),
                    })
                })
            })
            .collect()
    } else {
        Vec::new()
    };
    let mounts = crate::containers::mounts(&record.host_config)
        .unwrap_or_default()
        .into_iter()
        .map(|m| MountFacts {
            source: m.volume.unwrap_or(m.source),
            destination: m.target,
        })
        .collect();
    let network = if running && !record.network.is_empty() {
        record.network.clone()
    } else if record.host_config.network_mode.is_empty() {
        "default".to_owned()
    } else {
        record.host_config.network_mode.clone()
    };
    ContainerFacts {
        id: record.id.clone(),
        name: record.name.trim_start_matches('/').to_owned(),
        image: record.config.image.clone(),
        image_id: record.image.clone(),
        state: record.status.as_str().to_owned(),
        exit_code: record.exit_code,
        ports,
        mounts,
        network,
        env: record.config.env.clone().unwrap_or_default(),
        command: std::iter::once(record.path.clone())
            .chain(record.args.iter().cloned())
            .collect(),
    }
}
