//! The image configuration we write (OCI image config, Docker-compatible).
//!
//! Written by hand rather than with `oci_spec::image::ImageConfiguration`
//! because that type keeps labels in a `HashMap`, which serialises in a
//! different order in every process: the config bytes, and with them the
//! image ID and manifest digest, would change on every build. Here every
//! map is a `BTreeMap`, so the same recipe and cached layers always give
//! the same bytes. Only the fields recipes can set are modelled: reading a
//! parent config drops any other field, which is fine for parents built by
//! these recipes and the reason a recipe should build on those only.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use store::Digest;

use crate::recipes::ConfigChange;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    pub architecture: String,
    pub os: String,
    #[serde(default)]
    pub config: RunConfig,
    pub rootfs: RootFs,
    #[serde(default)]
    pub history: Vec<History>,
}

/// What a container started from the image gets by default.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RunConfig {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub exposed_ports: BTreeMap<String, Empty>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub volumes: BTreeMap<String, Empty>,
}

/// Go's `struct{}`, the value type of `ExposedPorts` and `Volumes`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Empty {}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    pub diff_ids: Vec<Digest>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct History {
    pub created: String,
    pub created_by: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
}

impl ImageConfig {
    /// The configuration of an image without layers, for this host's platform.
    pub fn scratch() -> ImageConfig {
        ImageConfig {
            created: None,
            architecture: store::manifests::host_architecture().to_owned(),
            os: "linux".to_owned(),
            config: RunConfig::default(),
            rootfs: RootFs {
                kind: "layers".to_owned(),
                diff_ids: Vec::new(),
            },
            history: Vec::new(),
        }
    }

    /// The `created` time of the last history entry, which an empty-layer
    /// step reuses so that cached builds stay byte-identical.
    pub fn last_created(&self) -> String {
        self.history
            .last()
            .map(|h| h.created.clone())
            .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_owned())
    }

    pub fn apply(&mut self, change: &ConfigChange) {
        let c = &mut self.config;
        match change {
            ConfigChange::Env(key, value) => {
                let prefix = format!("{key}=");
                c.env.retain(|e| !e.starts_with(&prefix));
                c.env.push(format!("{key}={value}"));
            }
            ConfigChange::Cmd(argv) => c.cmd = Some(argv.clone()),
            // As in a Dockerfile, a new entrypoint drops the inherited command.
            ConfigChange::Entrypoint(argv) => {
                c.entrypoint = Some(argv.clone());
                c.cmd = None;
            }
            ConfigChange::WorkingDir(dir) => c.working_dir = Some(dir.clone()),
            ConfigChange::Expose(port) => {
                c.exposed_ports.insert(port.clone(), Empty {});
            }
            ConfigChange::StopSignal(sig) => c.stop_signal = Some(sig.clone()),
            ConfigChange::Label(key, value) => {
                c.labels.insert(key.clone(), value.clone());
            }
            ConfigChange::Volume(path) => {
                c.volumes.insert(path.clone(), Empty {});
            }
        }
    }

    /// `KEY=VALUE` pairs of the configured environment.
    pub fn env_pairs(&self) -> Vec<(String, String)> {
        self.config
            .env
            .iter()
            .filter_map(|e| e.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }
}
