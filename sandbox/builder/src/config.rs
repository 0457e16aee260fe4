//! The run config a step works on (Docker's `container.Config`, as images
//! store it under `config` and `container_config` and the engine's API
//! reads and writes it), and an image as the builder sees one: its ID and
//! its whole config JSON.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// Docker's `container.Config`, field for field as moby 20.10's
/// `api/types` writes it (Go's `omitempty` where Go has it, Go's zero
/// values elsewhere, so `--format` templates see what they see against
/// dockerd). `Cmd`, `Entrypoint` and `Shell` accept a string too.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Config {
    pub hostname: String,
    pub domainname: String,
    pub user: String,
    pub attach_stdin: bool,
    pub attach_stdout: bool,
    pub attach_stderr: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, Value>>,
    pub tty: bool,
    pub open_stdin: bool,
    pub stdin_once: bool,
    pub env: Option<Vec<String>>,
    #[serde(deserialize_with = "str_slice")]
    pub cmd: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Value>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub args_escaped: bool,
    pub image: String,
    pub volumes: Option<BTreeMap<String, Value>>,
    pub working_dir: String,
    #[serde(deserialize_with = "str_slice")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub network_disabled: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub mac_address: String,
    pub on_build: Option<Vec<String>>,
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub stop_signal: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<i64>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "str_slice"
    )]
    pub shell: Option<Vec<String>>,
}

/// Docker's `StrSlice`: a list, or one string meaning a list of one, or
/// `null`.
pub fn str_slice<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<Either>::deserialize(d)? {
        None => None,
        Some(Either::One(s)) => Some(vec![s]),
        Some(Either::Many(v)) => Some(v),
    })
}

impl Config {
    /// The value of `key` in `Env`.
    pub fn env_var(&self, key: &str) -> Option<&str> {
        self.env.iter().flatten().rev().find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k == key).then_some(v)
        })
    }

    /// Sets `key` in `Env`, in place if it is there already.
    pub fn set_env(&mut self, key: &str, value: &str) {
        let env = self.env.get_or_insert_with(Vec::new);
        let line = format!("{key}={value}");
        match env
            .iter_mut()
            .find(|kv| kv.split_once('=').map_or(kv.as_str(), |(k, _)| k) == key)
        {
            Some(slot) => *slot = line,
            None => env.push(line),
        }
    }

    /// What a cached step must share with this one to stand for it:
    /// moby's `image/cache/compare.go` (everything that shapes the
    /// container, not its hostname, image or working dir), with empty and
    /// absent lists and maps alike.
    fn step_fields(&self) -> Value {
        let list = |v: &Option<Vec<String>>| v.clone().filter(|v| !v.is_empty());
        serde_json::json!({
            "OpenStdin": self.open_stdin,
            "Tty": self.tty,
            "User": self.user,
            "AttachStdin": self.attach_stdin,
            "AttachStdout": self.attach_stdout,
            "AttachStderr": self.attach_stderr,
            "StdinOnce": self.stdin_once,
            "Cmd": list(&self.cmd),
            "Env": list(&self.env),
            "Entrypoint": list(&self.entrypoint),
            "Labels": self.labels.clone().unwrap_or_default(),
            "ExposedPorts": self.exposed_ports.clone().unwrap_or_default(),
            "Volumes": self.volumes.clone().unwrap_or_default(),
        })
    }

    /// Whether a cached step made with `other` can stand for a step with
    /// this config.
    pub fn same_step(&self, other: &Config) -> bool {
        self.step_fields() == other.step_fields()
    }

    /// The step's key on the machine: `sha256` (hex) of the image it
    /// starts from and what [`Config::same_step`] compares, so equal
    /// steps on equal parents have equal keys.
    pub fn step_key(&self, parent: &str) -> String {
        use sha2::Digest as _;
        let mut hasher = sha2::Sha256::new();
        hasher.update(parent.as_bytes());
        hasher.update([0]);
        // serde_json writes maps sorted, so the text is canonical.
        hasher.update(self.step_fields().to_string().as_bytes());
        hex::encode(hasher.finalize())
    }
}

/// An image a step starts from or made.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    /// `sha256:` of its config; empty for `scratch`.
    pub id: String,
    /// The whole image config (`config`, `history`, `rootfs`, …).
    pub json: Value,
}

impl Image {
    /// The empty image `FROM scratch` starts with.
    pub fn scratch() -> Image {
        Image {
            id: String::new(),
            json: serde_json::json!({
                "architecture": store::manifests::host_architecture(),
                "os": "linux",
                "config": Config::default(),
                "rootfs": {"type": "layers", "diff_ids": []},
                "history": [],
            }),
        }
    }

    pub fn is_scratch(&self) -> bool {
        self.id.is_empty()
    }

    /// Its run config (`config`), empty when it has none.
    pub fn config(&self) -> Config {
        serde_json::from_value(self.json["config"].clone()).unwrap_or_default()
    }

    /// The config of the step that made it (`container_config`).
    pub fn container_config(&self) -> Config {
        serde_json::from_value(self.json["container_config"].clone()).unwrap_or_default()
    }

    /// The image it was built on, when it was built by a Dockerfile step.
    pub fn parent(&self) -> Option<&str> {
        self.json["config"]["Image"]
            .as_str()
            .filter(|p| p.starts_with("sha256:"))
    }

    /// `created`, as written (RFC 3339 sorts as text).
    pub fn created(&self) -> &str {
        self.json["created"].as_str().unwrap_or_default()
    }

    /// The 12 hex digits Docker shows.
    pub fn short_id(&self) -> &str {
        short(&self.id)
    }
}

/// The first 12 hex digits of an ID, without `sha256:`.
pub fn short(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    &hex[..hex.len().min(12)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_read_as_docker_writes_them() {
        let config: Config = serde_json::from_value(serde_json::json!({
            "Env": ["PATH=/bin", "A=1"], "Cmd": "sh", "Entrypoint": null, "Unknown": 1
        }))
        .expect("config");
        assert_eq!(config.cmd, Some(vec!["sh".to_owned()]));
        assert_eq!(config.entrypoint, None);
        let many: Config =
            serde_json::from_value(serde_json::json!({"Cmd": ["a", "b"]})).expect("list");
        assert_eq!(many.cmd, Some(vec!["a".to_owned(), "b".to_owned()]));
        assert!(serde_json::from_value::<Config>(serde_json::json!({"Cmd": [1]})).is_err());
        assert_eq!(config.env_var("A"), Some("1"));
        let written = serde_json::to_value(&config).expect("json");
        assert_eq!(written["Entrypoint"], Value::Null);
        assert!(written.get("Healthcheck").is_none());
        assert!(written.get("StopSignal").is_none());
    }

    #[test]
    fn steps_compare_as_mobys_cache_does() {
        let mut a = Config {
            cmd: Some(vec!["/bin/sh".into(), "-c".into(), "make".into()]),
            ..Config::default()
        };
        let mut b = a.clone();
        b.hostname = "other".into();
        b.working_dir = "/elsewhere".into();
        assert!(a.same_step(&b));
        b.set_env("A", "1");
        assert!(!a.same_step(&b));
        a.set_env("A", "1");
        assert!(a.same_step(&b));
        assert_eq!(a.step_key("sha256:p"), b.step_key("sha256:p"));
        assert_ne!(a.step_key("sha256:p"), b.step_key("sha256:q"));
        a.labels = Some(BTreeMap::from([("x".into(), "y".into())]));
        assert!(!a.same_step(&b));
        assert_ne!(a.step_key("sha256:p"), b.step_key("sha256:p"));
        // Empty and absent are alike.
        b.labels = Some(BTreeMap::new());
        b.labels = None;
        let mut c = b.clone();
        c.volumes = Some(BTreeMap::new());
        assert!(b.same_step(&c));
        assert_eq!(b.step_key("sha256:p"), c.step_key("sha256:p"));
    }
}
