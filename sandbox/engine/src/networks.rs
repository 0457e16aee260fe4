//! A lab's networks: `bridge` (the node's `docker0`), `host` and `none`
//! as Docker has them, and user-defined bridges, each a bridge of its own
//! in the node's network namespace with a /16 of its own
//! (172.18.0.0/16, 172.19.0.0/16, …). Containers on a user-defined network
//! find each other by name: their `/etc/hosts` lists the network's
//! containers that run when they start. Records live in `networks.json`.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::stamps::random_id;

/// The lab's default bridge, in the node's network, as docker0 is on a host.
pub const BRIDGE: &str = "docker0";
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(172, 17, 0, 1);
pub const BRIDGE_PREFIX: u8 = 16;

/// User-defined networks a lab may have.
pub const MAX_NETWORKS: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    pub id: String,
    pub name: String,
    pub created: String,
    /// The second octet of its /16: 17 for `bridge`, 18 to 31 for others.
    pub octet: u8,
}

impl Network {
    /// The interface in the node's network namespace.
    pub fn bridge(&self) -> String {
        if self.name == "bridge" {
            BRIDGE.to_owned()
        } else {
            format!("br-{}", &self.id[..12])
        }
    }

    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::new(172, self.octet, 0, 1)
    }

    pub fn subnet(&self) -> String {
        format!("172.{}.0.0/{BRIDGE_PREFIX}", self.octet)
    }

    /// Whether containers on it resolve each other's names.
    pub fn user_defined(&self) -> bool {
        self.name != "bridge"
    }
}

/// The default bridge, `docker0`.
pub fn default_bridge() -> Network {
    Network {
        id: format!("{:0>64}", "b"),
        name: "bridge".into(),
        created: crate::stamps::now(),
        octet: GATEWAY.octets()[1],
    }
}

pub struct Networks {
    path: PathBuf,
    user: Mutex<Vec<Network>>,
}

impl Networks {
    pub fn open(path: PathBuf) -> Result<Networks> {
        let user = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(path = %path.display(), error = %e, "unreadable network records; starting without");
                Vec::new()
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(Error::state(&path)(e)),
        };
        Ok(Networks {
            path,
            user: Mutex::new(user),
        })
    }

    fn save(&self, user: &[Network]) -> Result<()> {
        let tmp = self.path.with_extension("tmp");
        let bytes = serde_json::to_vec_pretty(user)
            .map_err(|e| Error::state(&tmp)(std::io::Error::other(e)))?;
        std::fs::write(&tmp, bytes).map_err(Error::state(&tmp))?;
        std::fs::rename(&tmp, &self.path).map_err(Error::state(&self.path))
    }

    /// `bridge` and the user-defined networks.
    pub fn list(&self) -> Vec<Network> {
        let mut all = vec![default_bridge()];
        all.extend(
            self.user
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .cloned(),
        );
        all
    }

    /// By name, full ID or unique ID prefix.
    pub fn find(&self, name_or_id: &str) -> Result<Network> {
        let all = self.list();
        if let Some(n) = all
            .iter()
            .find(|n| n.name == name_or_id || n.id == name_or_id)
        {
            return Ok(n.clone());
        }
        let mut prefixed = all
            .iter()
            .filter(|n| !name_or_id.is_empty() && n.id.starts_with(name_or_id));
        match (prefixed.next(), prefixed.next()) {
            (Some(n), None) => Ok(n.clone()),
            _ => Err(Error::NoSuchNetwork(name_or_id.to_owned())),
        }
    }

    /// Records a new network; the caller makes its bridge (and calls
    /// [`Networks::forget`] if that fails).
    pub fn create(&self, name: &str) -> Result<Network> {
        if !crate::stamps::valid_object_name(name) {
            return Err(Error::InvalidArgument(format!(
                "network name {:?} is not valid: use [a-zA-Z0-9][a-zA-Z0-9_.-]+",
                name.chars().take(80).collect::<String>()
            )));
        }
        if matches!(name, "bridge" | "host" | "none" | "default") {
            return Err(Error::Conflict(format!(
                "network with name {name} already exists"
            )));
        }
        let mut user = self.user.lock().unwrap_or_else(|p| p.into_inner());
        if user.iter().any(|n| n.name == name) {
            return Err(Error::Conflict(format!(
                "network with name {name} already exists"
            )));
        }
        if user.len() >= MAX_NETWORKS {
            return Err(Error::Conflict(format!(
                "this lab has {MAX_NETWORKS} networks, its limit: remove one with `docker network rm` first"
            )));
        }
        let octet = (18..=31u8)
            .find(|o| !user.iter().any(|n| n.octet == *o))
            .ok_or_else(|| Error::Conflict("no free address range for a network".into()))?;
        let network = Network {
            id: random_id(),
            name: name.to_owned(),
            created: crate::stamps::now(),
            octet,
        };
        user.push(network.clone());
        self.save(&user)?;
        Ok(network)
    }

    pub fn forget(&self, id: &str) -> Result<()> {
        let mut user = self.user.lock().unwrap_or_else(|p| p.into_inner());
        user.retain(|n| n.id != id);
        self.save(&user)
    }
}
