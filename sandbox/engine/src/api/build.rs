//! `POST /build`: Docker's classic builder, as dockerd 20.10 serves the
//! CLI's `DOCKER_BUILDKIT=0` builds.
//!
//! The point of no return is explicit: tags, options, the whole context
//! (spooled to disk, bounded) and the Dockerfile's syntax are checked
//! first and fail with a real status (400 for `dockerfile parse error line
//! 3: …`, 500 for a missing Dockerfile, as dockerd); after the first
//! record every failure is an `errorDetail` record, a RUN's carrying its
//! exit code, which the CLI turns into its own.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::Request;
use axum::http::StatusCode;
use builder::config::short;
use builder::context::{Context, ContextError};
use builder::dispatch::{Build, BuildError, Options};
use builder::progress::Event;
use store::Reference;

use super::body::with_body;
use super::error::{ApiError, ApiResult};
use super::progress::Progress;
use super::query::Query;
use crate::Engine;
use crate::build::LabBackend;
use crate::error::Error;

pub(super) async fn build(engine: &Arc<Engine>, query: &Query, request: Request) -> ApiResult {
    if query.str("version") == Some("2") {
        return Err(ApiError::bad_request(
            "BuildKit is not supported by this engine: build with the classic builder (DOCKER_BUILDKIT=0)",
        ));
    }
    if query.str("remote").is_some_and(|r| !r.is_empty()) {
        return Err(ApiError::bad_request(
            "a remote build context is not reachable from a lab: send the context from the node (docker build DIR)",
        ));
    }
    let tags = tags(query)?;
    let quiet = query.bool("q");
    let network = match query.str("networkmode").unwrap_or_default() {
        "" | "default" => "bridge".to_owned(),
        other => other.to_owned(),
    };
    let dockerfile = query.str("dockerfile").unwrap_or("Dockerfile").to_owned();
    let work = tempfile::Builder::new()
        .prefix("build-")
        .tempdir_in({
            let dir = engine.builds_dir();
            std::fs::create_dir_all(&dir).map_err(Error::state(&dir))?;
            dir
        })
        .map_err(Error::state(&engine.builds_dir()))?;
    let context_dir = work.path().join("context");
    let scratch = work.path().join("scratch");
    for dir in [&context_dir, &scratch] {
        std::fs::create_dir(dir).map_err(Error::state(dir))?;
    }
    let options = options(query, scratch)?;
    let received = {
        let context_dir = context_dir.clone();
        with_body(engine, request, move |_, tar| {
            Ok(Context::receive(tar, &context_dir, &dockerfile))
        })
        .await?
        .map_err(|e| match e {
            ContextError::NoDockerfile(_) => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
            }
            e => ApiError::bad_request(e.to_string()),
        })?
    };
    let build = Build::new(&received.dockerfile, options).map_err(|e| match e {
        BuildError::Parse(e) => ApiError::bad_request(e.to_string()),
        e => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    })?;
    // From here on the answer is 200 and failures travel in the stream.
    let (progress, response) = Progress::channel();
    let engine = engine.clone();
    // A build runs on a thread of its own: it lasts as long as its steps,
    // and may wait for another lab's build of a step, so it must not hold
    // one of the runtime's few blocking threads, which its own containers
    // need meanwhile.
    let tokio = tokio::runtime::Handle::current();
    let spawned = std::thread::Builder::new()
        .name("build".into())
        .spawn(move || {
            let _runtime = tokio.enter();
            let root = match std::fs::File::open(&context_dir) {
                Ok(root) => root,
                Err(e) => return progress.error(&format!("opening the build context: {e}")),
            };
            let watched = progress.clone();
            let mut backend = LabBackend::new(
                engine.clone(),
                network,
                Box::new(move || watched.client_left()),
            );
            let mut report = |event: Event| match event {
                Event::Stream(text) if !quiet => progress.stream(&text),
                Event::Stderr(text) if !quiet => {
                    progress.stream(&format!("\u{1b}[91m{text}\u{1b}[0m"))
                }
                Event::Status(text) if !quiet => progress.status(&text),
                Event::ImageId(id) => progress.aux(serde_json::json!({ "ID": id })),
                _ => {}
            };
            let built = build.run(&root, &context_dir, &mut backend, &mut report);
            match built {
                Ok(image) => {
                    if !quiet {
                        progress.stream(&format!("Successfully built {}\n", short(&image.id)));
                    }
                    for tag in &tags {
                        if let Err(e) = engine.images.tag(&image.id, tag) {
                            return progress.error(&e.to_string());
                        }
                        if !quiet {
                            progress.stream(&format!("Successfully tagged {}\n", tag.familiar()));
                        }
                    }
                    if quiet {
                        progress.stream(&format!("{}\n", image.id));
                    }
                }
                Err(BuildError::Failed {
                    message,
                    code: Some(code),
                }) => progress.error_with_code(&message, code),
                Err(e) => progress.error(&e.to_string()),
            }
            drop(work);
        });
    if let Err(e) = spawned {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("cannot start the build: {e}; try again shortly"),
        ));
    }
    Ok(response)
}

/// Every `t`, checked before the build starts (`:latest` when untagged).
pub(super) fn tags(query: &Query) -> ApiResult<Vec<Reference>> {
    query
        .all("t")
        .iter()
        .filter(|t| !t.is_empty())
        .map(|t| {
            let invalid = || {
                ApiError::bad_request(format!(
                    "invalid reference format: {t:?} is not a valid repository/tag"
                ))
            };
            let reference = Reference::parse(t).map_err(|_| invalid())?;
            if reference.digest().is_some() {
                return Err(invalid());
            }
            let reference = if reference.tag().is_none() {
                Reference::parse(&format!("{t}:latest")).map_err(|_| invalid())?
            } else {
                reference
            };
            crate::images::check_name(&reference)?;
            Ok(reference)
        })
        .collect()
}

/// The build's options from the query, as the CLI sends them; sources are
/// spooled in `scratch`.
pub(super) fn options(query: &Query, scratch: std::path::PathBuf) -> ApiResult<Options> {
    let json_map = |key: &str| -> ApiResult<BTreeMap<String, Option<String>>> {
        match query.str(key).filter(|v| !v.is_empty()) {
            None => Ok(BTreeMap::new()),
            Some(text) => serde_json::from_str(text)
                .map_err(|e| ApiError::bad_request(format!("invalid {key}: {e}"))),
        }
    };
    let force_remove = query.bool("forcerm");
    Ok(Options {
        build_args: json_map("buildargs")?,
        target: query
            .str("target")
            .filter(|t| !t.is_empty())
            .map(str::to_owned),
        no_cache: query.bool("nocache"),
        pull: query.bool("pull"),
        remove: force_remove || query.str("rm").is_none() || query.bool("rm"),
        force_remove,
        labels: json_map("labels")?
            .into_iter()
            .map(|(k, v)| (k, v.unwrap_or_default()))
            .collect(),
        docker_version: format!("layerlab {}", env!("CARGO_PKG_VERSION")),
        scratch,
    })
}
