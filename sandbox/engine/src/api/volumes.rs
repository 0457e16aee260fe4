//! `/volumes/…`: named volumes are directories of the node under
//! `/var/lib/docker/volumes/<name>/_data`, as on a Docker host. They live
//! in the node's writable layer (so its disk limit bounds them), a student
//! sees them where Docker keeps them, and a container mounts them with
//! `-v name:/path` like any directory of the node.

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::area::{Handled, area, only};
use super::body::{json, read_create};
use super::error::ApiResult;
use crate::Engine;
use crate::containers::{Status, VOLUMES, check_volume_name, mounts, volume_path};
use crate::error::Error;

pub(super) async fn handle(
    engine: &Arc<Engine>,
    method: &Method,
    path: &str,
    request: Request,
) -> Handled {
    let Some(rest) = area(path, "/volumes") else {
        return Handled::No(request);
    };
    let answer = async {
        match rest {
            "" => {
                only(method, &[Method::GET])?;
                list(engine).await
            }
            "create" => {
                only(method, &[Method::POST])?;
                create(engine, request).await
            }
            "prune" => {
                only(method, &[Method::POST])?;
                prune(engine).await
            }
            name => {
                let name = name.to_owned();
                match *method {
                    Method::GET => inspect(engine, name).await,
                    Method::DELETE => remove(engine, name).await,
                    _ => Err(super::error::ApiError::not_found()),
                }
            }
        }
    }
    .await;
    Handled::Yes(answer)
}

pub(super) fn volume_json(name: &str) -> Value {
    json!({
        "CreatedAt": "",
        "Driver": "local",
        "Labels": {},
        "Mountpoint": volume_path(name),
        "Name": name,
        "Options": {},
        "Scope": "local",
    })
}

/// Names of the volumes in the node (directories that hold a `_data`).
pub(super) fn names(engine: &Engine) -> crate::Result<Vec<String>> {
    let listing = engine.containers.node_command(&[
        "find",
        VOLUMES,
        "-mindepth",
        "2",
        "-maxdepth",
        "2",
        "-name",
        "_data",
        "-type",
        "d",
    ]);
    let Ok(listing) = listing else {
        return Ok(Vec::new());
    };
    let mut names: Vec<String> = listing
        .lines()
        .filter_map(|l| l.strip_prefix(VOLUMES)?.strip_suffix("/_data"))
        .map(|n| n.trim_start_matches('/').to_owned())
        .filter(|n| check_volume_name(n).is_ok())
        .collect();
    names.sort();
    Ok(names)
}

async fn list(engine: &Arc<Engine>) -> ApiResult {
    let names = engine.blocking(names).await?;
    let volumes: Vec<Value> = names.iter().map(|n| volume_json(n)).collect();
    Ok(json(
        StatusCode::OK,
        &json!({ "Volumes": volumes, "Warnings": null }),
    ))
}

async fn create(engine: &Arc<Engine>, request: Request) -> ApiResult {
    let name = read_create(request, "volume", "local").await?;
    let name = if name.is_empty() {
        crate::stamps::random_id()
    } else {
        name
    };
    check_volume_name(&name)?;
    let created = name.clone();
    engine
        .blocking(move |e| e.containers.ensure_in_node(&volume_path(&created)))
        .await?;
    Ok(json(StatusCode::CREATED, &volume_json(&name)))
}

async fn inspect(engine: &Arc<Engine>, name: String) -> ApiResult {
    let known = engine.blocking(names).await?;
    if !known.contains(&name) {
        return Err(Error::NoSuchVolume(name).into());
    }
    Ok(json(StatusCode::OK, &volume_json(&name)))
}

/// The names of volumes a running or stopped container mounts.
pub(super) fn in_use(engine: &Engine) -> Vec<String> {
    engine
        .containers
        .list()
        .iter()
        .map(|c| c.record())
        .filter(|r| r.status != Status::Removing)
        .flat_map(|r| mounts(&r.host_config).unwrap_or_default())
        .filter_map(|m| m.volume)
        .collect()
}

async fn remove(engine: &Arc<Engine>, name: String) -> ApiResult {
    let removed = engine
        .blocking(move |e| {
            if !names(e)?.contains(&name) {
                return Err(Error::NoSuchVolume(name));
            }
            if in_use(e).contains(&name) {
                return Err(Error::Conflict(format!(
                    "remove {name}: volume is in use - remove the containers that use it first"
                )));
            }
            let dir = format!("{VOLUMES}/{name}");
            e.containers.node_command(&["rm", "-rf", "--", &dir])?;
            Ok(())
        })
        .await;
    removed?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn prune(engine: &Arc<Engine>) -> ApiResult {
    let deleted = engine
        .blocking(|e| {
            let used = in_use(e);
            let mut deleted = Vec::new();
            for name in names(e)? {
                if !used.contains(&name) {
                    let dir = format!("{VOLUMES}/{name}");
                    e.containers.node_command(&["rm", "-rf", "--", &dir])?;
                    deleted.push(name);
                }
            }
            Ok(deleted)
        })
        .await?;
    Ok(json(
        StatusCode::OK,
        &json!({ "VolumesDeleted": deleted, "SpaceReclaimed": 0 }),
    ))
}
