//! `container`: a container in the lab's Docker engine, found by name or
//! by image, and its state, ports, mounts, network, environment and
//! command.

use serde::Serialize;

use super::engine::{self, EnvRule};
use super::pattern::Pattern;
use super::spec::{CheckSpec, shorten};
use crate::schema::{Reader, optional};
use crate::yaml::Node;

/// The state the container must be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Up now (`docker ps` lists it).
    Running,
    /// Started once and finished.
    Exited,
    /// Made by `docker create`, never started.
    Created,
    /// Whatever state, as long as it exists.
    Any,
}

/// A port published on the node: `HOST:CONTAINER/protocol`, or the
/// container's port on any host port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortRule {
    /// The node's port; any when absent.
    pub host: Option<u16>,
    /// The container's port.
    pub container: u16,
    /// `tcp`, `udp` or `sctp`.
    pub protocol: String,
}

impl std::fmt::Display for PortRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.host {
            Some(host) => write!(f, "{host}:{}", self.container)?,
            None => write!(f, "{}", self.container)?,
        }
        if self.protocol != "tcp" {
            write!(f, "/{}", self.protocol)?;
        }
        Ok(())
    }
}

/// A mount at `destination`, from `source` in the node when given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MountRule {
    /// A path in the node or a volume's name; any when absent.
    pub source: Option<String>,
    /// The path in the container.
    pub destination: String,
}

/// Passes when a container with the `name` (or made from the `image`)
/// meets every condition given; with only `image`, any one of its
/// containers may.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContainerCheck {
    /// The container's name, without Docker's leading `/`.
    pub name: Option<String>,
    /// The image it was made from: a name as `docker run` takes it, or an ID.
    pub image: Option<String>,
    /// Running unless the lesson says otherwise (exited with `exit_code`).
    pub state: State,
    /// The code it exited with.
    pub exit_code: Option<i32>,
    /// Ports it must publish on the node.
    pub ports: Vec<PortRule>,
    /// Mounts it must have.
    pub mounts: Vec<MountRule>,
    /// The network it must be on.
    pub network: Option<String>,
    /// Rules its environment must obey.
    pub env: Vec<EnvRule>,
    /// Matches the command (path and arguments joined by spaces).
    pub command: Option<Pattern>,
}

impl CheckSpec for ContainerCheck {
    fn parse(reader: &mut Reader<'_>, node: &Node) -> Option<Self> {
        let f = reader.fields(
            node,
            "`container` check",
            &[
                "name",
                "image",
                "state",
                "exit_code",
                "ports",
                "mounts",
                "network",
                "env",
                "command",
            ],
        )?;
        let name = optional(f.get("name").map(|n| engine::container_name(reader, n)));
        let image = optional(
            f.get("image")
                .map(|n| engine::image_name(reader, n, "image")),
        );
        let state = optional(f.get("state").map(|n| state(reader, n)));
        let exit_code = optional(
            f.get("exit_code")
                .map(|n| reader.uint(n, "exit_code", 0..=255).map(|c| c as i32)),
        );
        let ports = optional(f.get("ports").map(|n| ports(reader, n)));
        let mounts = optional(f.get("mounts").map(|n| mounts(reader, n)));
        let network = optional(f.get("network").map(|n| reader.string(n, "network")));
        let env = optional(f.get("env").map(|n| engine::env_rules(reader, n)));
        let command = optional(f.get("command").map(|n| reader.pattern(n, "command")));
        let (name, image, state, exit_code) =
            (name.ok()?, image.ok()?, state.ok()?, exit_code.ok()?);
        if name.is_none() && image.is_none() {
            reader.error(
                f.line(),
                "`container` check needs `name` or `image` to find the container",
            );
            return None;
        }
        let state = match (state, exit_code) {
            (Some(State::Running | State::Created), Some(_)) => {
                reader.error(
                    f.line(),
                    "`exit_code` needs a container that exited: drop it or say `state: exited`",
                );
                return None;
            }
            (Some(state), _) => state,
            (None, Some(_)) => State::Exited,
            (None, None) => State::Running,
        };
        Some(ContainerCheck {
            name,
            image,
            state,
            exit_code,
            ports: ports.ok()?.unwrap_or_default(),
            mounts: mounts.ok()?.unwrap_or_default(),
            network: network.ok()?,
            env: env.ok()?.unwrap_or_default(),
            command: command.ok()?,
        })
    }

    fn describe(&self) -> String {
        let shown = match (&self.name, &self.image) {
            (Some(name), _) => format!("container {name}"),
            (None, Some(image)) => format!("container of {image}"),
            (None, None) => "container".to_owned(),
        };
        shorten(&shown)
    }
}

fn state(reader: &mut Reader<'_>, node: &Node) -> Option<State> {
    match reader.string(node, "state")?.as_str() {
        "running" => Some(State::Running),
        "exited" => Some(State::Exited),
        "created" => Some(State::Created),
        "any" => Some(State::Any),
        other => {
            reader.error(
                node.line,
                format!(
                    "`state` must be running, exited, created or any, found `{}`",
                    shorten(other)
                ),
            );
            None
        }
    }
}

fn ports(reader: &mut Reader<'_>, node: &Node) -> Option<Vec<PortRule>> {
    let mut out = Vec::new();
    for text in engine::strings(reader, node, "ports")? {
        let (host, container) = match text.split_once(':') {
            Some((host, container)) => (Some(host), container),
            None => (None, text.as_str()),
        };
        let host = match host.map(|h| engine::port(h).filter(|(_, p)| *p == "tcp")) {
            None => Some(None),
            Some(Some((n, _))) => Some(Some(n)),
            Some(None) => None,
        };
        match (host, engine::port(container)) {
            (Some(host), Some((container, protocol))) => out.push(PortRule {
                host,
                container,
                protocol: protocol.to_owned(),
            }),
            _ => {
                reader.error(
                    node.line,
                    format!(
                        "`ports` entry `{}` is not a published port: write 8080:80, 53:53/udp or just 80",
                        shorten(&text)
                    ),
                );
                return None;
            }
        }
    }
    Some(out)
}

fn mounts(reader: &mut Reader<'_>, node: &Node) -> Option<Vec<MountRule>> {
    let mut out = Vec::new();
    for text in engine::strings(reader, node, "mounts")? {
        let (source, destination) = match text.split_once(':') {
            Some((source, destination)) => (Some(source.to_owned()), destination.to_owned()),
            None => (None, text.clone()),
        };
        let valid = destination.starts_with('/')
            && source
                .as_deref()
                .is_none_or(|s| !s.is_empty() && !s.contains(':'))
            && !destination.contains(':');
        if !valid {
            reader.error(
                node.line,
                format!(
                    "`mounts` entry `{}` is not a mount: write /root/site:/usr/share/nginx/html, volume:/data or just /data",
                    shorten(&text)
                ),
            );
            return None;
        }
        out.push(MountRule {
            source,
            destination,
        });
    }
    Some(out)
}
