//! New images from outside a registry: `POST /commit`, a container's
//! changes (`docker commit`), and `POST /images/create?fromSrc=-`, a root
//! filesystem's tar (`docker import`); both with Dockerfile-style
//! `changes` (`-c 'CMD ["cat","/hello"]'`) applied to the config.

use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::{Value, json};
use store::Reference;

use super::body::{json, with_body};
use super::error::{ApiError, ApiResult};
use super::query::Query;
use crate::Engine;
use crate::error::{Error, Result};

/// Image configs are small; one larger than this is not ours to extend.
const MAX_CONFIG: u64 = 4 << 20;

pub(super) async fn commit(engine: &Arc<Engine>, query: &Query) -> ApiResult {
    let name = query
        .str("container")
        .ok_or_else(|| ApiError::bad_request("container is required"))?;
    let container = engine.containers.find(name)?;
    let reference = new_name(query)?;
    let changes = changes(query);
    let comment = query.str("comment").unwrap_or_default().to_owned();
    let author = query.str("author").unwrap_or_default().to_owned();
    let id = engine
        .blocking(move |e| {
            let record = container.record();
            let base = e.images.find(&record.image).map_err(|_| {
                Error::Conflict(format!(
                    "the image {} of container {} is gone: it cannot be committed",
                    record.image, record.id
                ))
            })?;
            let mut config = serde_json::to_value(&record.config).map_err(bad_config)?;
            for change in &changes {
                apply_change(&mut config, change)?;
            }
            let files = e.containers.files(&container)?;
            let layer = files.commit_layer(e.store(), &base.image.layers)?;
            let mut image: Value = serde_json::from_slice(
                &e.store().read_blob(&base.image.config_digest, MAX_CONFIG)?,
            )
            .map_err(bad_config)?;
            let now = crate::stamps::now();
            let created_by = std::iter::once(record.path.as_str())
                .chain(record.args.iter().map(String::as_str))
                .collect::<Vec<_>>()
                .join(" ");
            image["config"] = config;
            image["container_config"] = serde_json::to_value(&record.config).map_err(bad_config)?;
            image["container"] = json!(record.id);
            image["created"] = json!(now);
            image["author"] = json!(author);
            image["comment"] = json!(comment);
            let mut step = json!({"created": now, "created_by": created_by});
            if !author.is_empty() {
                step["author"] = json!(author);
            }
            if !comment.is_empty() {
                step["comment"] = json!(comment);
            }
            push(&mut image["history"], step);
            let mut layers = base.image.layers.clone();
            if crate::files::add_layer(&mut image, Some(&layer)) {
                layers.push(layer);
            }
            let bytes = serde_json::to_vec(&image).map_err(bad_config)?;
            let made = e.store().write_image(&bytes, &layers)?;
            hold(e, reference.as_ref(), &made.manifest_digest)?;
            Ok(made.config_digest.to_string())
        })
        .await?;
    Ok(json(StatusCode::CREATED, &json!({ "Id": id })))
}

/// `docker import - NAME`: the tar stream of a root filesystem (plain or
/// compressed) as a one-layer image. The stream goes through the store's
/// hostile-tar defences and is bounded as a lab's disk is.
pub(super) async fn import(
    engine: &Arc<Engine>,
    query: &Query,
    request: axum::extract::Request,
) -> ApiResult {
    if query.str("fromSrc") != Some("-") {
        return Err(ApiError::bad_request(
            "importing from a URL is not supported (nothing outside the lab is reachable): pipe the archive in with docker import - NAME",
        ));
    }
    let reference = new_name(query)?;
    let changes = changes(query);
    let message = query.str("message").unwrap_or_default().to_owned();
    let imported = with_body(engine, request, move |e, tar| {
        let mut config = json!({});
        for change in &changes {
            apply_change(&mut config, change)?;
        }
        let layer = import_layer(e.store(), tar)?;
        let now = crate::stamps::now();
        let comment = if message.is_empty() {
            "Imported from -".to_owned()
        } else {
            message
        };
        let image = json!({
            "architecture": store::manifests::host_architecture(),
            "os": "linux",
            "created": now,
            "comment": comment,
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": [layer.diff_id.to_string()]},
            "history": [{"created": now, "comment": comment}],
        });
        let bytes = serde_json::to_vec(&image).map_err(bad_config)?;
        let made = e.store().write_image(&bytes, &[layer])?;
        hold(e, reference.as_ref(), &made.manifest_digest)?;
        Ok(made.config_digest.to_string())
    })
    .await;
    let id = imported.map_err(|e| match e {
        Error::Store(e) => ApiError::bad_request(format!("Error processing tar file: {e}")),
        e => e.into(),
    })?;
    let mut line = serde_json::to_vec(&json!({ "status": id })).unwrap_or_default();
    line.extend_from_slice(b"\r\n");
    Ok(axum::response::Response::builder()
        .header("content-type", "application/json")
        .body(axum::body::Body::from(line))
        .unwrap_or_default())
}

/// A lab's disk limit, as the bound of what one import may unpack.
const MAX_IMPORT: u64 = 1 << 30;

/// Unpacks `tar` into a fresh snapshot (every hostile-tar check applies)
/// and stores it as a layer.
fn import_layer(store: &store::Store, tar: impl std::io::Read + Send) -> Result<store::Layer> {
    let key = format!("import-{}", crate::stamps::random_id());
    let mounts = store.snapshots().prepare(&key, None)?;
    let unpacked = (|| {
        let dir = mounts
            .upperdir
            .clone()
            .ok_or_else(|| Error::InvalidArgument("the import snapshot has no directory".into()))?;
        let limits = store::Limits {
            max_expanded: MAX_IMPORT,
            ..store::Limits::default()
        };
        store::archive::unpack(tar, &dir, store::archive::WhiteoutMode::Apply, limits)?;
        Ok(store
            .snapshots()
            .commit(&key, &store::DiffOptions::default())?
            .0)
    })();
    if unpacked.is_err() {
        let _ = store.snapshots().remove(&key);
    }
    unpacked
}

/// `repo` and `tag` of the query as the new image's name, if it has one.
fn new_name(query: &Query) -> ApiResult<Option<Reference>> {
    let repo = query.str("repo").unwrap_or_default();
    if repo.is_empty() {
        return Ok(None);
    }
    // `docker import` sends the whole name as `repo`, `docker commit`
    // splits it into `repo` and `tag`.
    let full = match query.str("tag").filter(|t| !t.is_empty()) {
        Some(tag) => format!("{repo}:{tag}"),
        None => repo.to_owned(),
    };
    let invalid = |e: store::reference::ReferenceError| Error::InvalidReference(e.to_string());
    let reference = Reference::parse(&full).map_err(invalid)?;
    let reference = if reference.tag().is_some() || reference.digest().is_some() {
        reference
    } else {
        Reference::parse(&format!("{full}:latest")).map_err(invalid)?
    };
    crate::images::check_name(&reference)?;
    Ok(Some(reference))
}

/// Holds a new image in the lab: under `reference`, or unnamed.
fn hold(engine: &Engine, reference: Option<&Reference>, manifest: &store::Digest) -> Result<()> {
    match reference {
        Some(r) => engine.images.name(r, manifest).map(drop),
        None => engine.images.keep_unnamed(manifest),
    }
}

/// Every `changes` value, one instruction a line.
fn changes(query: &Query) -> Vec<String> {
    query
        .all("changes")
        .iter()
        .flat_map(|c| c.lines())
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

fn bad_config(e: serde_json::Error) -> Error {
    Error::InvalidArgument(format!("the image config cannot be extended: {e}"))
}

fn push(list: &mut Value, item: Value) {
    match list.as_array_mut() {
        Some(items) => items.push(item),
        None => *list = json!([item]),
    }
}

/// Applies one Dockerfile instruction of those `docker commit --change`
/// accepts to a container config (Docker's JSON field names).
fn apply_change(config: &mut Value, change: &str) -> Result<()> {
    let (instruction, rest) = change
        .split_once(char::is_whitespace)
        .map_or((change, ""), |(i, r)| (i, r.trim()));
    let bad = |why: &str| Error::InvalidArgument(format!("invalid change {change:?}: {why}"));
    match instruction.to_ascii_uppercase().as_str() {
        "CMD" => config["Cmd"] = json!(command(rest)),
        "ENTRYPOINT" => config["Entrypoint"] = json!(command(rest)),
        "USER" => config["User"] = json!(rest),
        "WORKDIR" => config["WorkingDir"] = json!(rest),
        "STOPSIGNAL" => config["StopSignal"] = json!(rest),
        "ENV" => {
            let mut env: Vec<String> =
                serde_json::from_value(config["Env"].clone()).unwrap_or_default();
            for (key, value) in pairs(rest).ok_or_else(|| bad("write ENV KEY=VALUE"))? {
                env.retain(|kv| kv.split_once('=').map_or(kv.as_str(), |(k, _)| k) != key);
                env.push(format!("{key}={value}"));
            }
            config["Env"] = json!(env);
        }
        "LABEL" => {
            let labels = object(&mut config["Labels"]);
            for (key, value) in pairs(rest).ok_or_else(|| bad("write LABEL KEY=VALUE"))? {
                labels.insert(key, json!(value));
            }
        }
        "EXPOSE" => {
            let ports = object(&mut config["ExposedPorts"]);
            for port in rest.split_whitespace() {
                let (number, protocol) = port.split_once('/').unwrap_or((port, "tcp"));
                if number.parse::<u16>().is_err() || !matches!(protocol, "tcp" | "udp" | "sctp") {
                    return Err(bad("write EXPOSE PORT[/PROTOCOL]"));
                }
                ports.insert(format!("{number}/{protocol}"), json!({}));
            }
        }
        "VOLUME" => {
            let paths = serde_json::from_str::<Vec<String>>(rest)
                .unwrap_or_else(|_| rest.split_whitespace().map(str::to_owned).collect());
            let volumes = object(&mut config["Volumes"]);
            for path in paths {
                volumes.insert(path, json!({}));
            }
        }
        "ONBUILD" => push(&mut config["OnBuild"], json!(rest)),
        other => {
            return Err(Error::InvalidArgument(format!(
                "{other} is not a valid change command: use CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME or WORKDIR"
            )));
        }
    }
    Ok(())
}

/// The exec form (`["cat","/hello"]`) as given, the shell form wrapped in
/// `/bin/sh -c`, as a Dockerfile reads them.
fn command(rest: &str) -> Vec<String> {
    serde_json::from_str::<Vec<String>>(rest)
        .unwrap_or_else(|_| vec!["/bin/sh".into(), "-c".into(), rest.into()])
}

/// `KEY=VALUE …` (values may be double-quoted), or the old `KEY VALUE`.
fn pairs(rest: &str) -> Option<Vec<(String, String)>> {
    let first = rest.split_whitespace().next()?;
    if !first.contains('=') {
        let (key, value) = rest.split_once(char::is_whitespace)?;
        return Some(vec![(key.to_owned(), value.trim().to_owned())]);
    }
    rest.split_whitespace()
        .map(|kv| {
            let (k, v) = kv.split_once('=')?;
            (!k.is_empty()).then(|| (k.to_owned(), v.trim_matches('"').to_owned()))
        })
        .collect()
}

fn object(value: &mut Value) -> &mut serde_json::Map<String, Value> {
    if !value.is_object() {
        *value = json!({});
    }
    match value {
        Value::Object(map) => map,
        _ => unreachable!("made an object just above"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_read_like_a_dockerfile() {
        let mut config = json!({"Env": ["PATH=/bin", "A=1"], "Cmd": ["sh"]});
        apply_change(&mut config, r#"CMD ["cat","/hello"]"#).expect("cmd");
        apply_change(&mut config, "ENTRYPOINT echo hi").expect("entrypoint");
        apply_change(&mut config, "ENV A=2 B=\"x\"").expect("env");
        apply_change(&mut config, "ENV C three").expect("old env");
        apply_change(&mut config, "EXPOSE 80 53/udp").expect("expose");
        apply_change(&mut config, "LABEL team=web").expect("label");
        apply_change(&mut config, "WORKDIR /srv").expect("workdir");
        assert_eq!(config["Cmd"], json!(["cat", "/hello"]));
        assert_eq!(config["Entrypoint"], json!(["/bin/sh", "-c", "echo hi"]));
        assert_eq!(config["Env"], json!(["PATH=/bin", "A=2", "B=x", "C=three"]));
        assert_eq!(config["ExposedPorts"], json!({"80/tcp": {}, "53/udp": {}}));
        assert_eq!(config["Labels"], json!({"team": "web"}));
        assert_eq!(config["WorkingDir"], json!("/srv"));
    }

    #[test]
    fn bad_changes_are_refused_with_a_reason() {
        let mut config = json!({});
        for change in ["RUN rm -rf /", "EXPOSE http", "ENV", "LABEL =x", "FROM x"] {
            let e = apply_change(&mut config, change).expect_err(change);
            assert!(!e.to_string().is_empty());
        }
    }
}
