//! `/images/…`: list, inspect, history, pull, tag, remove, search, prune.

use std::collections::BTreeMap;
use std::time::SystemTime;

use axum::extract::Request;
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use store::Reference;
use store::reference::DEFAULT_REGISTRY;

use super::area::{Handled, only};
use super::body::{json, read_json, tar_stream, with_body};
use super::error::{ApiError, ApiResult};
use super::progress::Progress;
use super::query::Query;
use super::types::{
    ContainerConfig, DeleteItem, GraphDriver, HistoryItem, ImageInspect, ImageMetadata,
    ImageSummary, RootFs, ZERO_TIME,
};
use std::sync::Arc;

use crate::Engine;
use crate::distribution::{Credentials, Registry};
use crate::error::Error;
use crate::images::{LabImage, Removed, short_id};

/// What an `/images/…` path addresses.
#[derive(Debug, PartialEq, Eq)]
enum Target<'a> {
    List,
    Create,
    /// `docker save` of several images.
    Get,
    Load,
    Search,
    Prune,
    /// `/images/{name}/{action}`; `name` may hold `/` and `:`.
    Named {
        name: &'a str,
        action: &'a str,
    },
    /// `DELETE /images/{name}`.
    Bare {
        name: &'a str,
    },
}

fn parse(path: &str) -> Option<Target<'_>> {
    let rest = path.strip_prefix("/images/")?;
    Some(match rest {
        "json" => Target::List,
        "create" => Target::Create,
        "get" => Target::Get,
        "load" => Target::Load,
        "search" => Target::Search,
        "prune" => Target::Prune,
        _ => match rest.rsplit_once('/') {
            Some((name, action @ ("json" | "history" | "tag" | "push" | "get")))
                if !name.is_empty() =>
            {
                Target::Named { name, action }
            }
            _ if !rest.is_empty() => Target::Bare { name: rest },
            _ => return None,
        },
    })
}

pub(super) async fn handle(
    engine: &Arc<Engine>,
    method: &Method,
    path: &str,
    request: Request,
) -> Handled {
    let Some(target) = parse(path) else {
        return Handled::No(request);
    };
    Handled::Yes(answer(engine, method, target, request).await)
}

async fn answer(
    engine: &Arc<Engine>,
    method: &Method,
    target: Target<'_>,
    request: Request,
) -> ApiResult {
    let query = Query::parse(request.uri())?;
    match target {
        Target::List => {
            only(method, &[Method::GET])?;
            list(engine, &query).await
        }
        Target::Create if query.str("fromSrc").is_some() => {
            only(method, &[Method::POST])?;
            super::commit::import(engine, &query, request).await
        }
        Target::Create => {
            only(method, &[Method::POST])?;
            pull(engine, &query, credentials(&request)).await
        }
        Target::Get => {
            only(method, &[Method::GET])?;
            let names = query.all("names");
            save(engine, names).await
        }
        Target::Load => {
            only(method, &[Method::POST])?;
            load(engine, request).await
        }
        Target::Search => {
            only(method, &[Method::GET])?;
            search(engine, &query).await
        }
        Target::Prune => {
            only(method, &[Method::POST])?;
            prune(engine).await
        }
        Target::Named { name, action } => {
            let name = decode(name)?;
            match action {
                "json" => {
                    only(method, &[Method::GET])?;
                    let (found, size) = engine
                        .blocking(move |e| {
                            let found = e.images.find(&name)?;
                            let size = found.size(e.store());
                            Ok((found, size))
                        })
                        .await?;
                    Ok(json(StatusCode::OK, &inspect(&found, size)))
                }
                "history" => {
                    only(method, &[Method::GET])?;
                    let (sizes, ancestors) = engine
                        .blocking(move |e| {
                            let found = e.images.find(&name)?;
                            let sizes = found.layer_sizes(e.store());
                            Ok((sizes, ancestors(e, found)))
                        })
                        .await?;
                    Ok(json(StatusCode::OK, &history(&ancestors, &sizes)))
                }
                "tag" => {
                    only(method, &[Method::POST])?;
                    tag(engine, name, &query).await
                }
                "get" => {
                    only(method, &[Method::GET])?;
                    save(engine, vec![name]).await
                }
                "push" => {
                    only(method, &[Method::POST])?;
                    push(engine, name, &query, credentials(&request)).await
                }
                _ => Err(Error::NotImplemented(format!(
                    "docker image {action} is not supported by this engine yet"
                ))
                .into()),
            }
        }
        Target::Bare { name } => {
            only(method, &[Method::DELETE])?;
            let name = decode(name)?;
            let force = query.bool("force");
            let removed = engine
                .blocking(move |e| e.images.remove(&name, force))
                .await?;
            let items: Vec<DeleteItem> = removed
                .into_iter()
                .map(|r| match r {
                    Removed::Untagged(n) => DeleteItem {
                        untagged: Some(n),
                        deleted: None,
                    },
                    Removed::Deleted(id) => DeleteItem {
                        untagged: None,
                        deleted: Some(id),
                    },
                })
                .collect();
            Ok(json(StatusCode::OK, &items))
        }
    }
}

/// Paths arrive percent-encoded; a name is checked before it reaches the
/// store, so control characters and absurd lengths get a clear message.
fn decode(raw: &str) -> ApiResult<String> {
    let decoded = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| ApiError::bad_request("the image name in the path is not UTF-8"))?;
    if decoded.is_empty() || decoded.len() > 512 || decoded.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!(
            "invalid reference format: {:?} is not an image name or ID",
            decoded.chars().take(80).collect::<String>()
        )));
    }
    Ok(decoded.into_owned())
}

async fn list(engine: &Arc<Engine>, query: &Query) -> ApiResult {
    let filters = query.filters()?;
    for key in filters.keys() {
        match key.as_str() {
            "reference" | "dangling" | "label" => {}
            "before" | "since" => {
                return Err(ApiError::bad_request(format!(
                    "the filter '{key}' is not supported by this engine yet"
                )));
            }
            _ => return Err(ApiError::bad_request(format!("invalid filter '{key}'"))),
        }
    }
    let references = filters.get("reference").cloned().unwrap_or_default();
    let wanted_labels = filters.get("label").cloned().unwrap_or_default();
    let dangling_only = filters
        .get("dangling")
        .is_some_and(|v| v.iter().any(|x| x == "true" || x == "1"));
    let held = engine
        .blocking(|e| {
            Ok(e.images
                .list()?
                .into_iter()
                .map(|i| {
                    let size = i.size(e.store());
                    (i, size)
                })
                .collect::<Vec<_>>())
        })
        .await?;
    let all = query.bool("all");
    let parents = crate::images::parents(held.iter().map(|(i, _)| i));
    let rows: Vec<ImageSummary> = held
        .iter()
        .filter(|(i, _)| all || !i.intermediate(&parents))
        .filter(|(i, _)| !dangling_only || (i.dangling() && !i.intermediate(&parents)))
        .filter(|(i, _)| {
            references.is_empty()
                || i.references
                    .iter()
                    .any(|r| references.iter().any(|f| reference_matches(f, r)))
        })
        .map(|(i, size)| summary(i, *size))
        .filter(|row| labels_match(&wanted_labels, row.labels.as_ref()))
        .collect();
    Ok(json(StatusCode::OK, &rows))
}

/// `label=KEY` (present) and `label=KEY=VALUE` (equal), every one of them,
/// as dockerd filters images and containers.
fn labels_match(wanted: &[String], labels: Option<&BTreeMap<String, String>>) -> bool {
    wanted.iter().all(|filter| {
        let (key, value) = match filter.split_once('=') {
            Some((key, value)) => (key, Some(value)),
            None => (filter.as_str(), None),
        };
        match labels.and_then(|l| l.get(key)) {
            Some(have) => value.is_none_or(|v| v == have),
            None => false,
        }
    })
}

/// `docker system df`: images with how many containers use each, the
/// containers, and the volumes (their size is not measured: -1, as
/// dockerd says when it does not know).
pub(super) async fn disk_usage(engine: &Arc<Engine>) -> ApiResult {
    let (held, volumes) = engine
        .blocking(|e| {
            let held: Vec<(LabImage, u64)> = e
                .images
                .list()?
                .into_iter()
                .map(|i| {
                    let size = i.size(e.store());
                    (i, size)
                })
                .collect();
            Ok((held, super::volumes::names(e)?))
        })
        .await?;
    let records: Vec<crate::containers::Record> = engine
        .containers
        .list()
        .iter()
        .map(|c| c.record())
        .collect();
    let now = SystemTime::now();
    let images: Vec<Value> = held
        .iter()
        .map(|(image, size)| {
            let mut row = serde_json::to_value(summary(image, *size)).unwrap_or_default();
            row["Containers"] = json!(records.iter().filter(|r| r.image == image.id()).count());
            row["SharedSize"] = json!(0);
            row
        })
        .collect();
    let containers: Vec<Value> = records
        .iter()
        .map(|r| {
            json!({
                "Id": r.id,
                "Names": [r.name],
                "Image": r.config.image,
                "ImageID": r.image,
                "Command": r.path,
                "Created": 0,
                "State": r.status.as_str(),
                "Status": crate::containers::status_text(r, now),
                "SizeRw": 0,
                "SizeRootFs": 0,
                "Mounts": [],
            })
        })
        .collect();
    let in_use = super::volumes::in_use(engine);
    let volumes: Vec<Value> = volumes
        .iter()
        .map(|name| {
            let mut v = super::volumes::volume_json(name);
            v["UsageData"] = json!({
                "Size": -1,
                "RefCount": in_use.iter().filter(|n| *n == name).count(),
            });
            v
        })
        .collect();
    let layers: u64 = held.iter().map(|(_, size)| size).sum();
    Ok(json(
        StatusCode::OK,
        &json!({
            "LayersSize": layers,
            "Images": images,
            "Containers": containers,
            "Volumes": volumes,
            "BuildCache": [],
        }),
    ))
}

/// `reference=busybox`, `reference=busybox:1*`: a name, optionally with a
/// tag, where `*` matches any run of characters.
fn reference_matches(filter: &str, r: &Reference) -> bool {
    let familiar = r.familiar();
    let name = r.familiar_name();
    if filter.contains(':') && !filter.contains('/')
        || filter.rsplit('/').next().is_some_and(|l| l.contains(':'))
    {
        glob(filter, &familiar)
    } else {
        glob(filter, &name)
    }
}

fn glob(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, tail)) => {
            text.starts_with(head)
                && (0..=text.len() - head.len())
                    .filter(|&i| text.is_char_boundary(head.len() + i))
                    .any(|i| glob(tail, &text[head.len() + i..]))
        }
    }
}

fn config_value(found: &LabImage) -> Value {
    serde_json::from_slice(&found.image.config_bytes).unwrap_or(Value::Null)
}

fn created_unix(value: &Value) -> i64 {
    value["created"]
        .as_str()
        .and_then(|s| humantime::parse_rfc3339_weak(s).ok())
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs() as i64)
}

fn labels(value: &Value) -> Option<BTreeMap<String, String>> {
    serde_json::from_value(value["config"]["Labels"].clone()).ok()
}

fn summary(found: &LabImage, size: u64) -> ImageSummary {
    let value = config_value(found);
    let size = size as i64;
    ImageSummary {
        containers: -1,
        created: created_unix(&value),
        id: found.id(),
        labels: labels(&value),
        parent_id: String::new(),
        repo_digests: Some(if found.dangling() {
            vec!["<none>@<none>".into()]
        } else {
            found.repo_digests()
        }),
        repo_tags: Some(if found.dangling() {
            vec!["<none>:<none>".into()]
        } else {
            found.repo_tags()
        }),
        shared_size: -1,
        size,
        virtual_size: size,
    }
}

fn inspect(found: &LabImage, size: u64) -> ImageInspect {
    let value = config_value(found);
    let config: ContainerConfig =
        serde_json::from_value(value["config"].clone()).unwrap_or_default();
    let size = size as i64;
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    ImageInspect {
        id: found.id(),
        repo_tags: found.repo_tags(),
        repo_digests: found.repo_digests(),
        parent: String::new(),
        comment: text(&value["comment"]),
        created: value["created"].as_str().unwrap_or(ZERO_TIME).to_owned(),
        container: text(&value["container"]),
        container_config: serde_json::from_value(value["container_config"].clone())
            .unwrap_or_default(),
        docker_version: text(&value["docker_version"]),
        author: text(&value["author"]),
        config,
        architecture: text(&value["architecture"]),
        variant: text(&value["variant"]),
        os: text(&value["os"]),
        os_version: text(&value["os.version"]),
        size,
        virtual_size: size,
        graph_driver: GraphDriver {
            data: BTreeMap::new(),
            name: "overlay2".into(),
        },
        root_fs: RootFs {
            kind: "layers".into(),
            layers: found.diff_ids(),
        },
        metadata: ImageMetadata {
            last_tag_time: ZERO_TIME.into(),
        },
    }
}

/// The image and the lab's images it was built on, newest first, as far
/// as the chain of `config.Image` stays in the lab.
fn ancestors(engine: &Engine, found: LabImage) -> Vec<LabImage> {
    let mut chain = vec![found];
    while chain.len() < MAX_HISTORY {
        let Some(parent) = chain.last().and_then(LabImage::parent) else {
            break;
        };
        match engine.images.find(&parent) {
            Ok(image) => chain.push(image),
            Err(_) => break,
        }
    }
    chain
}

/// Steps of an image's history followed through its parents.
const MAX_HISTORY: usize = 1000;

/// Newest first; a step whose image the lab holds (the image itself and,
/// for a build, each step's image before it) shows that image's ID, older
/// steps are `<missing>` as for any pulled image. Each non-empty step is
/// paired with the next layer, bottom up.
fn history(ancestors: &[LabImage], layer_sizes: &[u64]) -> Vec<HistoryItem> {
    let found = &ancestors[0];
    let value = config_value(found);
    let steps = value["history"].as_array().cloned().unwrap_or_default();
    let mut layers = layer_sizes.iter();
    let mut items: Vec<HistoryItem> = steps
        .iter()
        .map(|step| {
            let empty = step["empty_layer"].as_bool().unwrap_or(false);
            let size = if empty {
                0
            } else {
                layers.next().map_or(0, |&size| size as i64)
            };
            HistoryItem {
                id: "<missing>".into(),
                created: created_unix(step),
                created_by: step["created_by"].as_str().unwrap_or_default().to_owned(),
                tags: None,
                size,
                comment: step["comment"].as_str().unwrap_or_default().to_owned(),
            }
        })
        .collect();
    items.reverse();
    for (item, image) in items.iter_mut().zip(ancestors) {
        item.id = image.id();
        let tags = image.repo_tags();
        item.tags = (!tags.is_empty()).then_some(tags);
    }
    items
}

async fn tag(engine: &Arc<Engine>, source: String, query: &Query) -> ApiResult {
    let repo = query
        .str("repo")
        .ok_or_else(|| ApiError::bad_request("repository name (repo) is required"))?;
    let target = match query.str("tag") {
        Some(t) => format!("{repo}:{t}"),
        None => repo.to_owned(),
    };
    let reference =
        Reference::parse(&target).map_err(|_| Error::InvalidReference(target.clone()))?;
    engine
        .blocking(move |e| e.images.tag(&source, &reference))
        .await?;
    Ok(json(StatusCode::CREATED, &Value::Null))
}

async fn search(engine: &Arc<Engine>, query: &Query) -> ApiResult {
    let term = query.str("term").unwrap_or_default().to_owned();
    let limit = query
        .str("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(25);
    let names = engine.blocking(|e| e.hub_repositories()).await?;
    let hits: Vec<Value> = names
        .into_iter()
        .filter(|n| n.contains(&term))
        .take(limit)
        .map(|name| {
            json!({
                "star_count": 0,
                "is_official": !name.contains('/'),
                "name": name,
                "is_automated": false,
                "description": "from the lab's hub",
            })
        })
        .collect();
    Ok(json(StatusCode::OK, &hits))
}

/// `docker save`: the images as one `docker save` archive, streamed.
async fn save(engine: &Arc<Engine>, names: Vec<String>) -> ApiResult {
    if names.is_empty() {
        return Err(ApiError::bad_request("name the images to save"));
    }
    // Every name is checked before the first byte goes out.
    let references = engine
        .blocking(move |e| {
            let mut references = Vec::new();
            for name in &names {
                let found = e.images.find(name)?;
                match Reference::parse(name)
                    .ok()
                    .filter(|r| found.references.contains(r))
                {
                    Some(r) => references.push(r),
                    None => references.extend(found.references.iter().cloned()),
                }
            }
            Ok(references)
        })
        .await?;
    let engine = engine.clone();
    Ok(tar_stream(move |out| {
        engine
            .store()
            .export_docker_save(engine.images.namespace(), &references, out)?;
        Ok(())
    }))
}

/// `docker image prune`: the dangling images go (those a container still
/// uses too: this engine does not track that yet), then the build steps
/// they alone were built on, as dockerd deletes untagged parents.
async fn prune(engine: &Arc<Engine>) -> ApiResult {
    let (deleted, reclaimed) = engine
        .blocking(|e| {
            let mut deleted = Vec::new();
            let mut reclaimed = 0;
            loop {
                let images = e.images.list()?;
                let parents = crate::images::parents(&images);
                let gone: Vec<LabImage> = images
                    .into_iter()
                    .filter(|i| i.dangling() && !i.intermediate(&parents))
                    .collect();
                if gone.is_empty() {
                    break;
                }
                for image in gone {
                    reclaimed += image.size(e.store());
                    e.images.remove(&image.id(), true)?;
                    deleted.push(json!({ "Deleted": image.id() }));
                }
            }
            Ok((deleted, reclaimed))
        })
        .await?;
    Ok(json(
        StatusCode::OK,
        &json!({
            "ImagesDeleted": if deleted.is_empty() { Value::Null } else { Value::Array(deleted) },
            "SpaceReclaimed": reclaimed,
        }),
    ))
}

/// `docker load`: a `docker save` archive in; its images named in the lab.
async fn load(engine: &Arc<Engine>, request: Request) -> ApiResult {
    let imported = with_body(engine, request, |e, archive| {
        Ok(e.store()
            .import_docker_save(e.images.namespace(), archive)?)
    })
    .await
    .map_err(|e| match e {
        Error::Store(e) => ApiError::bad_request(format!("cannot load the archive: {e}")),
        e => e.into(),
    })?;
    let lines: Vec<Value> = imported
        .iter()
        .map(|i| {
            let line = match &i.reference {
                Some(r) => format!("Loaded image: {}\n", r.familiar()),
                None => format!("Loaded image ID: {}\n", i.manifest_digest),
            };
            json!({ "stream": line })
        })
        .collect();
    // `quiet` (which the CLI sets when its output is no terminal) hides
    // progress only; dockerd reports what it loaded either way.
    let mut out = Vec::new();
    for line in lines {
        out.extend(serde_json::to_vec(&line).unwrap_or_default());
        out.extend_from_slice(b"\r\n");
    }
    Ok(axum::response::Response::builder()
        .header("content-type", "application/json")
        .body(axum::body::Body::from(out))
        .unwrap_or_default())
}

/// Credentials the CLI sends from `docker login`.
fn credentials(request: &Request) -> Option<Credentials> {
    Credentials::from_header(
        request
            .headers()
            .get("x-registry-auth")
            .and_then(|v| v.to_str().ok()),
    )
}

/// `POST /images/{name}/push?tag=v1`.
async fn push(
    engine: &Arc<Engine>,
    name: String,
    query: &Query,
    credentials: Option<Credentials>,
) -> ApiResult {
    let full = match query.str("tag") {
        Some(t) => format!("{name}:{t}"),
        None => name,
    };
    let reference = Reference::parse(&full).map_err(|_| Error::InvalidReference(full.clone()))?;
    if reference.registry() == DEFAULT_REGISTRY {
        return Err(Error::InvalidArgument(format!(
            "cannot push {} to Docker Hub from a lab: tag it for a registry in the lab, e.g. localhost:5000/{}",
            reference.familiar(),
            reference.familiar_name()
        ))
        .into());
    }
    let wanted = reference.familiar();
    let found = engine
        .blocking(move |e| e.images.find(&wanted))
        .await
        .map_err(|e| match e {
            Error::NoSuchImage(n) => Error::InvalidArgument(format!(
                "An image does not exist locally with the tag: {}",
                n.rsplit_once(':').map_or(n.as_str(), |(r, _)| r)
            )),
            e => e,
        })?;
    let registry = Registry::new(
        engine.containers.runtime().clone(),
        engine.containers.lab(),
        reference.registry(),
        credentials,
    )?;
    let (progress, response) = Progress::channel();
    let store = engine.store().clone();
    tokio::spawn(async move {
        match registry
            .push(&store, &found.image, &reference, &progress)
            .await
        {
            Ok(()) => progress.aux(json!({
                "Tag": reference.tag().unwrap_or("latest"),
                "Digest": found.image.manifest_digest.to_string(),
                "Size": found.image.manifest_bytes.len(),
            })),
            Err(e) => progress.error(&e.to_string()),
        }
    });
    Ok(response)
}

/// A pull from a registry inside the lab: the manifest and missing blobs
/// come through the lab's network into the store, then the lab names it.
async fn pull_from_registry(
    engine: &Arc<Engine>,
    reference: Reference,
    credentials: Option<Credentials>,
) -> ApiResult {
    let registry = Registry::new(
        engine.containers.runtime().clone(),
        engine.containers.lab(),
        reference.registry(),
        credentials,
    )?;
    let (progress, response) = Progress::channel();
    let engine = engine.clone();
    tokio::spawn(async move {
        let shown = reference
            .tag()
            .map(str::to_owned)
            .or_else(|| reference.digest().map(ToString::to_string))
            .unwrap_or_default();
        progress.layer(&shown, &format!("Pulling from {}", reference.repository()));
        let store = engine.store().clone();
        let pulled = match registry.pull(&store, &reference, &progress).await {
            Ok(manifest) => {
                let named = reference.clone();
                engine
                    .blocking(move |e| e.images.adopt(&named, &manifest))
                    .await
            }
            Err(e) => Err(e),
        };
        match pulled {
            Ok(pulled) => {
                report_pulled(&progress, &pulled, &reference);
            }
            Err(e) => progress.error(&e.to_string()),
        }
    });
    Ok(response)
}

/// The last two lines of a pull, as dockerd prints them.
fn report_pulled(progress: &Progress, pulled: &crate::images::Pulled, reference: &Reference) {
    progress.status(&format!("Digest: {}", pulled.image.manifest_digest));
    progress.status(&format!(
        "Status: {} for {}",
        if pulled.up_to_date {
            "Image is up to date"
        } else {
            "Downloaded newer image"
        },
        reference.familiar()
    ));
}

/// `POST /auth`: `docker login` asks whether credentials open a registry.
pub(super) async fn login(engine: &Arc<Engine>, request: Request) -> ApiResult {
    #[derive(serde::Deserialize, Default)]
    #[serde(default)]
    struct Auth {
        username: String,
        password: String,
        serveraddress: String,
    }
    let auth: Auth = read_json(request).await?;
    let host = auth
        .serveraddress
        .trim_start_matches("http://")
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .trim_end_matches("/v2")
        .to_owned();
    if host.is_empty() || host.contains("docker.io") {
        return Err(Error::InvalidArgument(
            "Docker Hub is not reachable from a lab: log in to a registry in the lab, e.g. docker login localhost:5000".into(),
        )
        .into());
    }
    let registry = Registry::new(
        engine.containers.runtime().clone(),
        engine.containers.lab(),
        &host,
        Some(Credentials {
            username: auth.username,
            password: auth.password,
        }),
    )?;
    registry
        .check_login()
        .await
        .map_err(|e| ApiError::new(StatusCode::UNAUTHORIZED, e.to_string()))?;
    Ok(json(
        StatusCode::OK,
        &json!({ "Status": "Login Succeeded", "IdentityToken": "" }),
    ))
}

/// `POST /images/create?fromImage=busybox&tag=latest`.
async fn pull(engine: &Arc<Engine>, query: &Query, credentials: Option<Credentials>) -> ApiResult {
    let from = query
        .str("fromImage")
        .ok_or_else(|| ApiError::bad_request("fromImage is required"))?;
    let full = match query.str("tag") {
        Some(t) if t.starts_with("sha256:") => format!("{from}@{t}"),
        Some(t) => format!("{from}:{t}"),
        None => from.to_owned(),
    };
    let reference = Reference::parse(&full).map_err(|_| Error::InvalidReference(full.clone()))?;
    if reference.registry() != DEFAULT_REGISTRY {
        return pull_from_registry(engine, reference, credentials).await;
    }
    // Validation ends here: from now on the status is 200 and failures
    // travel in the stream.
    let (progress, response) = Progress::channel();
    let engine = engine.clone();
    tokio::task::spawn_blocking(move || {
        let shown = reference
            .tag()
            .map(str::to_owned)
            .or_else(|| reference.digest().map(ToString::to_string))
            .unwrap_or_default();
        progress.layer(&shown, &format!("Pulling from {}", reference.repository()));
        match engine.images.pull(&reference) {
            Ok(pulled) => {
                for layer in &pulled.image.layers {
                    let id = short_id(&layer.digest);
                    progress.layer(
                        &id,
                        if pulled.up_to_date {
                            "Already exists"
                        } else {
                            "Pull complete"
                        },
                    );
                }
                report_pulled(&progress, &pulled, &reference);
            }
            Err(e) => progress.error(&e.to_string()),
        }
    });
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_recognised_by_head_and_tail() {
        assert_eq!(parse("/images/json"), Some(Target::List));
        assert_eq!(
            parse("/images/localhost:5000/a/b:v1/json"),
            Some(Target::Named {
                name: "localhost:5000/a/b:v1",
                action: "json"
            })
        );
        assert_eq!(
            parse("/images/busybox"),
            Some(Target::Bare { name: "busybox" })
        );
        assert_eq!(
            parse("/images/library/busybox"),
            Some(Target::Bare {
                name: "library/busybox"
            })
        );
        assert_eq!(parse("/images/"), None);
        assert_eq!(parse("/containers/json"), None);
    }

    #[test]
    fn hostile_names_are_refused_with_a_message() {
        assert!(decode("%0a").is_err());
        assert!(decode(&"a".repeat(10_000)).is_err());
        assert!(decode("%ff").is_err());
        assert_eq!(decode("a%3Ab").unwrap(), "a:b");
    }

    #[test]
    fn reference_filters_glob_like_docker() {
        let r = Reference::parse("busybox:1.36").unwrap();
        assert!(reference_matches("busybox", &r));
        assert!(reference_matches("busybox:1.36", &r));
        assert!(reference_matches("busybox:1*", &r));
        assert!(reference_matches("busy*", &r));
        assert!(!reference_matches("nginx", &r));
        assert!(!reference_matches("busybox:2*", &r));
    }
}
