//! `_ping`, `version`, `info`: what the CLI asks before anything else.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::area::{Handled, only};
use super::body::json;
use super::types::{Component, Platform, Version};
use std::sync::Arc;

use crate::Engine;
use crate::containers::Status;

/// The API version served; the newest the 20.10 CLI asks for.
pub const API_VERSION: &str = "1.41";

pub(super) async fn handle(
    engine: &Arc<Engine>,
    method: &Method,
    path: &str,
    request: Request,
) -> Handled {
    let answer = match path {
        "/_ping" => only(method, &[Method::GET, Method::HEAD]).map(|()| ping(method)),
        "/version" => only(method, &[Method::GET]).map(|()| json(StatusCode::OK, &version())),
        "/info" => match only(method, &[Method::GET]) {
            Ok(()) => lab_info(engine)
                .await
                .map(|info| json(StatusCode::OK, &info))
                .map_err(Into::into),
            Err(e) => Err(e),
        },
        "/system/df" => match only(method, &[Method::GET]) {
            Ok(()) => super::images::disk_usage(engine).await,
            Err(e) => Err(e),
        },
        "/auth" => match only(method, &[Method::POST]) {
            Ok(()) => super::images::login(engine, request).await,
            Err(e) => Err(e),
        },
        _ => return Handled::No(request),
    };
    Handled::Yes(answer)
}

/// The CLI reads these headers to choose its code paths: without
/// `Api-Version` it assumes 1.24, and `Builder-Version: 2` would switch
/// the 20.10 CLI to BuildKit, which this engine does not speak.
fn ping(method: &Method) -> Response {
    let body = if method == Method::HEAD { "" } else { "OK" };
    (
        StatusCode::OK,
        [
            ("builder-version", "1"),
            ("cache-control", "no-cache, no-store, must-revalidate"),
            ("pragma", "no-cache"),
            ("content-type", "text/plain; charset=utf-8"),
        ],
        Body::from(body),
    )
        .into_response()
}

fn version() -> Version {
    let details = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    let ours = env!("CARGO_PKG_VERSION");
    Version {
        platform: Platform {
            name: "layerlab engine".into(),
        },
        components: vec![Component {
            name: "Engine".into(),
            version: ours.into(),
            details: details(&[
                ("ApiVersion", API_VERSION),
                ("Arch", go_arch()),
                ("MinAPIVersion", "1.12"),
                ("Os", "linux"),
            ]),
        }],
        version: ours.into(),
        api_version: API_VERSION.into(),
        min_api_version: "1.12".into(),
        git_commit: String::new(),
        go_version: String::new(),
        os: "linux".into(),
        arch: go_arch().into(),
        kernel_version: kernel_version(),
        build_time: String::new(),
    }
}

/// Go's name for this machine's architecture, as dockerd reports it.
pub(crate) fn go_arch() -> &'static str {
    store::manifests::host_architecture()
}

pub(crate) fn kernel_version() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// `GET /info` for the lab `engine` serves: its counts, then [`info`].
async fn lab_info(engine: &Arc<Engine>) -> crate::Result<serde_json::Value> {
    let images = engine.blocking(|e| e.images.list()).await?.len();
    let all: Vec<Status> = engine
        .containers
        .list()
        .iter()
        .map(|c| c.record().status)
        .collect();
    let running = all.iter().filter(|s| **s == Status::Running).count();
    let resources = engine.resources();
    Ok(info(&InfoCounts {
        images,
        containers: all.len(),
        running,
        paused: 0,
        stopped: all.len() - running,
        lab: engine.lab().to_owned(),
        memory_bytes: resources.memory_bytes,
        cpus: resources.cpus,
    }))
}

/// `GET /info`, from the lab's own counts and limits.
struct InfoCounts {
    pub images: usize,
    pub containers: usize,
    pub running: usize,
    pub paused: usize,
    pub stopped: usize,
    pub lab: String,
    pub memory_bytes: u64,
    pub cpus: usize,
}

fn info(c: &InfoCounts) -> serde_json::Value {
    json!({
        "ID": c.lab,
        "Containers": c.containers,
        "ContainersRunning": c.running,
        "ContainersPaused": c.paused,
        "ContainersStopped": c.stopped,
        "Images": c.images,
        "Driver": "overlay2",
        "DriverStatus": [["Backing Filesystem", "layerlab store"], ["Supports d_type", "true"]],
        "Plugins": {
            "Volume": ["local"],
            "Network": ["bridge", "host", "null"],
            "Authorization": null,
            "Log": ["json-file"],
        },
        "MemoryLimit": true,
        "SwapLimit": true,
        "KernelMemory": false,
        "KernelMemoryTCP": false,
        "CpuCfsPeriod": true,
        "CpuCfsQuota": true,
        "CPUShares": true,
        "CPUSet": false,
        "PidsLimit": true,
        "IPv4Forwarding": true,
        "BridgeNfIptables": false,
        "BridgeNfIp6tables": false,
        "Debug": false,
        "NFd": 0,
        "OomKillDisable": false,
        "NGoroutines": 0,
        "SystemTime": humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string(),
        "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": "",
        "NEventsListener": 0,
        "KernelVersion": kernel_version(),
        "OperatingSystem": "layerlab lab",
        "OSVersion": "",
        "OSType": "linux",
        "Architecture": std::env::consts::ARCH,
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": {
            "AllowNondistributableArtifactsCIDRs": [],
            "AllowNondistributableArtifactsHostnames": [],
            "InsecureRegistryCIDRs": ["127.0.0.0/8"],
            "IndexConfigs": {
                "docker.io": {"Name": "docker.io", "Mirrors": [], "Secure": true, "Official": true}
            },
            "Mirrors": [],
        },
        "NCPU": c.cpus,
        "MemTotal": c.memory_bytes,
        "GenericResources": null,
        "DockerRootDir": "/var/lib/docker",
        "HttpProxy": "",
        "HttpsProxy": "",
        "NoProxy": "",
        "Name": "node1",
        "Labels": [],
        "ExperimentalBuild": false,
        "ServerVersion": env!("CARGO_PKG_VERSION"),
        "Runtimes": {"layerlab": {"path": "layerlab"}},
        "DefaultRuntime": "layerlab",
        "Swarm": {
            "NodeID": "",
            "NodeAddr": "",
            "LocalNodeState": "inactive",
            "ControlAvailable": false,
            "Error": "",
            "RemoteManagers": null,
        },
        "LiveRestoreEnabled": false,
        "Isolation": "",
        "InitBinary": "",
        "ContainerdCommit": {"ID": "", "Expected": ""},
        "RuncCommit": {"ID": "", "Expected": ""},
        "InitCommit": {"ID": "", "Expected": ""},
        "SecurityOptions": ["name=seccomp,profile=default", "name=userns"],
        "Warnings": null,
    })
}
