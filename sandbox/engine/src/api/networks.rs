//! `/networks/…`: list, create, inspect, remove, prune. `bridge`, `host`
//! and `none` are always listed, as dockerd lists them.

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::area::{Handled, area, only};
use super::body::{json, read_create};
use super::error::{ApiError, ApiResult};
use crate::Engine;
use crate::containers::Status;
use crate::error::Error;
use crate::networks::BRIDGE_PREFIX;
use crate::networks::Network;

pub(super) async fn handle(
    engine: &Arc<Engine>,
    method: &Method,
    path: &str,
    request: Request,
) -> Handled {
    let Some(rest) = area(path, "/networks") else {
        return Handled::No(request);
    };
    let answer = async {
        match rest {
            "" => {
                only(method, &[Method::GET])?;
                Ok(list(engine))
            }
            "create" => {
                only(method, &[Method::POST])?;
                create(engine, request).await
            }
            "prune" => {
                only(method, &[Method::POST])?;
                prune(engine).await
            }
            other => match other.split_once('/') {
                Some((_, "connect" | "disconnect")) => Err(Error::NotImplemented(
                    "docker network connect and disconnect are not supported by this engine yet; start the container with --network".into(),
                )
                .into()),
                Some(_) => Err(ApiError::not_found()),
                None => match *method {
                    Method::GET => inspect(engine, other),
                    Method::DELETE => remove(engine, other).await,
                    _ => Err(ApiError::not_found()),
                },
            },
        }
    }
    .await;
    Handled::Yes(answer)
}

/// A network as `docker network inspect` shows it; `host` and `none`
/// have no addresses.
fn resource(engine: &Engine, name: &str, id: &str, network: Option<&Network>) -> Value {
    let containers: serde_json::Map<String, Value> = engine
        .containers
        .list()
        .iter()
        .map(|c| c.record())
        .filter(|r| r.status == Status::Running && r.network == name)
        .map(|r| {
            (
                r.id.clone(),
                json!({
                    "Name": r.name.trim_start_matches('/'),
                    "EndpointID": r.id,
                    "MacAddress": "",
                    "IPv4Address": format!("{}/{BRIDGE_PREFIX}", r.ip),
                    "IPv6Address": "",
                }),
            )
        })
        .collect();
    let config: Vec<Value> = network
        .map(|n| json!({"Subnet": n.subnet(), "Gateway": n.gateway().to_string()}))
        .into_iter()
        .collect();
    json!({
        "Name": name,
        "Id": id,
        "Created": network.map_or_else(crate::stamps::now, |n| n.created.clone()),
        "Scope": "local",
        "Driver": match name { "host" => "host", "none" => "null", _ => "bridge" },
        "EnableIPv6": false,
        "IPAM": {"Driver": "default", "Options": null, "Config": config},
        "Internal": false,
        "Attachable": false,
        "Ingress": false,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": false,
        "Containers": containers,
        "Options": {},
        "Labels": {},
    })
}

/// The fixed IDs of `host` and `none`.
fn special(name: &str) -> Option<String> {
    match name {
        "host" => Some(format!("{:0>64}", "h")),
        "none" => Some(format!("{:0>64}", "0")),
        _ => None,
    }
}

fn list(engine: &Arc<Engine>) -> axum::response::Response {
    let mut all: Vec<Value> = engine
        .networks
        .list()
        .iter()
        .map(|n| resource(engine, &n.name, &n.id, Some(n)))
        .collect();
    for name in ["host", "none"] {
        let id = special(name).unwrap_or_default();
        all.push(resource(engine, name, &id, None));
    }
    json(StatusCode::OK, &all)
}

fn inspect(engine: &Arc<Engine>, name_or_id: &str) -> ApiResult {
    if let Some(id) = special(name_or_id) {
        return Ok(json(
            StatusCode::OK,
            &resource(engine, name_or_id, &id, None),
        ));
    }
    let n = engine.networks.find(name_or_id)?;
    Ok(json(
        StatusCode::OK,
        &resource(engine, &n.name, &n.id, Some(&n)),
    ))
}

async fn create(engine: &Arc<Engine>, request: Request) -> ApiResult {
    let name = read_create(request, "network", "bridge").await?;
    let network = engine
        .blocking(move |e| {
            let n = e.networks.create(&name)?;
            let bridge = runtime::Bridge {
                name: n.bridge(),
                address: n.gateway().octets(),
                prefix_len: BRIDGE_PREFIX,
            };
            if let Err(err) = e
                .containers
                .runtime()
                .add_bridge(e.containers.lab(), &bridge)
            {
                let _ = e.networks.forget(&n.id);
                return Err(err.into());
            }
            Ok(n)
        })
        .await?;
    Ok(json(
        StatusCode::CREATED,
        &json!({ "Id": network.id, "Warning": "" }),
    ))
}

fn remove_one(engine: &Engine, n: &Network) -> crate::Result<()> {
    if !n.user_defined() {
        return Err(Error::Conflict(format!(
            "{} is a pre-defined network and cannot be removed",
            n.name
        )));
    }
    if engine.containers.network_in_use(&n.name) {
        return Err(Error::Conflict(format!(
            "error while removing network: network {} id {} has active endpoints",
            n.name, n.id
        )));
    }
    if let Err(e) = engine
        .containers
        .runtime()
        .remove_bridge(engine.containers.lab(), &n.bridge())
    {
        tracing::debug!(network = %n.name, error = %e, "bridge already gone");
    }
    engine.networks.forget(&n.id)
}

async fn remove(engine: &Arc<Engine>, name_or_id: &str) -> ApiResult {
    if special(name_or_id).is_some() {
        return Err(Error::Conflict(format!(
            "{name_or_id} is a pre-defined network and cannot be removed"
        ))
        .into());
    }
    let n = engine.networks.find(name_or_id)?;
    engine.blocking(move |e| remove_one(e, &n)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn prune(engine: &Arc<Engine>) -> ApiResult {
    let deleted = engine
        .blocking(|e| {
            let mut deleted = Vec::new();
            for n in e.networks.list().iter().filter(|n| n.user_defined()) {
                if !e.containers.network_in_use(&n.name) {
                    remove_one(e, n)?;
                    deleted.push(n.name.clone());
                }
            }
            Ok(deleted)
        })
        .await?;
    Ok(json(StatusCode::OK, &json!({ "NetworksDeleted": deleted })))
}
