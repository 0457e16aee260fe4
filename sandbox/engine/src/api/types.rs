//! Wire types of the endpoints served, transcribed from moby 20.10's
//! `api/types`: a field is skipped only where Go says `omitempty`, maps are
//! `BTreeMap` (Go sorts keys), and absent values are Go's zero values, so
//! `--format` templates see what they see against dockerd.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Go's zero `time.Time`, as dockerd prints it.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// `GET /version`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Version {
    pub platform: Platform,
    pub components: Vec<Component>,
    pub version: String,
    pub api_version: String,
    pub min_api_version: String,
    pub git_commit: String,
    pub go_version: String,
    pub os: String,
    pub arch: String,
    pub kernel_version: String,
    pub build_time: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Platform {
    pub name: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Component {
    pub name: String,
    pub version: String,
    pub details: BTreeMap<String, String>,
}

/// One row of `GET /images/json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageSummary {
    pub containers: i64,
    pub created: i64,
    pub id: String,
    pub labels: Option<BTreeMap<String, String>>,
    pub parent_id: String,
    pub repo_digests: Option<Vec<String>>,
    pub repo_tags: Option<Vec<String>>,
    pub shared_size: i64,
    pub size: i64,
    pub virtual_size: i64,
}

/// Docker's `container.Config`, as images and containers carry it: one
/// transcription for the API and for the images the builder makes.
pub use builder::config::Config as ContainerConfig;

/// `GET /images/{name}/json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageInspect {
    pub id: String,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    pub parent: String,
    pub comment: String,
    pub created: String,
    pub container: String,
    pub container_config: ContainerConfig,
    pub docker_version: String,
    pub author: String,
    pub config: ContainerConfig,
    pub architecture: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub variant: String,
    pub os: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub os_version: String,
    pub size: i64,
    pub virtual_size: i64,
    pub graph_driver: GraphDriver,
    #[serde(rename = "RootFS")]
    pub root_fs: RootFs,
    pub metadata: ImageMetadata,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GraphDriver {
    pub data: BTreeMap<String, String>,
    pub name: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RootFs {
    #[serde(rename = "Type")]
    pub kind: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageMetadata {
    pub last_tag_time: String,
}

/// One row of `GET /images/{name}/history`, newest first.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct HistoryItem {
    pub id: String,
    pub created: i64,
    pub created_by: String,
    pub tags: Option<Vec<String>>,
    pub size: i64,
    pub comment: String,
}

/// One entry of `DELETE /images/{name}`.
#[derive(Debug, Serialize)]
pub struct DeleteItem {
    #[serde(rename = "Untagged", skip_serializing_if = "Option::is_none")]
    pub untagged: Option<String>,
    #[serde(rename = "Deleted", skip_serializing_if = "Option::is_none")]
    pub deleted: Option<String>,
}

/// `container.HostConfig`, the fields a training lab uses; the rest of
/// what a client sends is accepted and ignored.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HostConfig {
    pub binds: Option<Vec<String>>,
    #[serde(rename = "ContainerIDFile")]
    pub container_id_file: String,
    pub log_config: LogConfig,
    pub network_mode: String,
    pub port_bindings: Option<BTreeMap<String, Option<Vec<PortBinding>>>>,
    pub restart_policy: RestartPolicy,
    pub auto_remove: bool,
    pub volume_driver: String,
    pub volumes_from: Option<Vec<String>>,
    pub cap_add: Option<Vec<String>>,
    pub cap_drop: Option<Vec<String>>,
    pub dns: Option<Vec<String>>,
    pub dns_options: Option<Vec<String>>,
    pub dns_search: Option<Vec<String>>,
    pub extra_hosts: Option<Vec<String>>,
    pub links: Option<Vec<String>>,
    pub oom_score_adj: i64,
    pub privileged: bool,
    pub publish_all_ports: bool,
    pub readonly_rootfs: bool,
    pub security_opt: Option<Vec<String>>,
    pub memory: i64,
    pub nano_cpus: i64,
    pub pids_limit: Option<i64>,
    pub init: Option<bool>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct LogConfig {
    #[serde(rename = "Type")]
    pub kind: String,
    pub config: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RestartPolicy {
    pub name: String,
    pub maximum_retry_count: i64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase", default)]
pub struct PortBinding {
    pub host_ip: String,
    pub host_port: String,
}

/// `POST /containers/create`: the config with the host config and the
/// networking config inline.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CreateBody {
    #[serde(flatten)]
    pub config: ContainerConfig,
    pub host_config: HostConfig,
}

/// `POST /containers/{id}/exec`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ExecCreate {
    pub user: String,
    pub privileged: bool,
    pub tty: bool,
    pub attach_stdin: bool,
    pub attach_stderr: bool,
    pub attach_stdout: bool,
    pub detach: bool,
    pub detach_keys: String,
    pub env: Option<Vec<String>>,
    pub working_dir: String,
    #[serde(deserialize_with = "builder::config::str_slice")]
    pub cmd: Option<Vec<String>>,
}

/// `POST /exec/{id}/start`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ExecStart {
    pub detach: bool,
    pub tty: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_keeps_go_zero_values_and_omits_omitempty() {
        let json = serde_json::to_value(ContainerConfig::default()).unwrap();
        assert_eq!(json["Cmd"], serde_json::Value::Null);
        assert_eq!(json["Env"], serde_json::Value::Null);
        assert_eq!(json["WorkingDir"], "");
        assert!(json.get("ExposedPorts").is_none());
        assert!(json.get("StopSignal").is_none());
        assert!(json.get("Shell").is_none());
    }
}
