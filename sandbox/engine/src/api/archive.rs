//! `docker cp`: `HEAD`, `GET` and `PUT /containers/{id}/archive?path=…`.
//! For a running container the tar streams are made and unpacked by `tar`
//! inside it, through the runtime's exec, so every path is resolved in the
//! container's own root by its own kernel view (its volumes included) and
//! nothing reaches outside it. A stopped container's files are read from
//! its kept writable layer ([`crate::files`]), resolved beneath its root.

use std::process::Stdio;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use tokio::io::AsyncWriteExt;
use tokio_stream::StreamExt as _;

use super::body::{tar_stream, with_body};
use super::error::{ApiError, ApiResult};
use crate::Engine;
use crate::containers::{Container, Status};
use crate::error::Error;

/// `stat`'s view of a path, in the JSON the CLI reads from
/// `X-Docker-Container-Path-Stat`.
fn stat_header(name: &str, size: u64, unix_mode: u32, mtime: i64, link_target: &str) -> String {
    // Go's os.FileMode: permission bits plus a type bit.
    let kind = match unix_mode & 0o170000 {
        0o040000 => 1u32 << 31,
        0o120000 => 1 << 27,
        _ => 0,
    };
    let json = serde_json::json!({
        "name": name,
        "size": size,
        "mode": kind | (unix_mode & 0o7777),
        "mtime": humantime::format_rfc3339(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime.max(0) as u64)
        ).to_string(),
        "linkTarget": link_target,
    });
    base64::engine::general_purpose::STANDARD.encode(json.to_string())
}

/// `HEAD` and `GET` of a container that is not running, from its files.
async fn from_files(
    engine: &Arc<Engine>,
    container: &Arc<Container>,
    method: &Method,
    path: &str,
) -> ApiResult {
    let (c, p) = (container.clone(), path.to_owned());
    let (files, stat) = engine
        .blocking(move |e| {
            let files = e.containers.files(&c)?;
            let stat = files.path_stat(&p)?;
            Ok((files, stat))
        })
        .await?;
    // Where a symlink leads, as an absolute path in the container: the CLI
    // copies onto that instead of the link.
    let link_target = match stat.link_target.as_str() {
        "" => String::new(),
        t if t.starts_with('/') => t.to_owned(),
        t => format!("{}/{t}", split(path).0.trim_end_matches('/')),
    };
    let header = stat_header(&stat.name, stat.size, stat.mode, stat.mtime, &link_target);
    if *method == Method::HEAD {
        return Ok((StatusCode::OK, [("x-docker-container-path-stat", header)]).into_response());
    }
    let path = path.to_owned();
    let tar = tar_stream(move |out| files.copy_out(&path, out));
    Ok(([("x-docker-container-path-stat", header)], tar).into_response())
}

/// `PUT` into a container that is not running, through its files.
async fn put_stopped(
    engine: &Arc<Engine>,
    container: &Arc<Container>,
    dir: &str,
    request: Request,
) -> ApiResult {
    let (c, d) = (container.clone(), dir.to_owned());
    let copied = with_body(engine, request, move |e, tar| {
        e.containers.copy_into(&c, &d, tar)
    })
    .await;
    copied.map_err(|e| match e {
        Error::Store(e) => ApiError::bad_request(format!("cannot copy into {dir}: {e}")),
        e => e.into(),
    })?;
    Ok(StatusCode::OK.into_response())
}

/// A command in the container, ready to spawn.
fn in_container(
    engine: &Arc<Engine>,
    container: &Arc<Container>,
    argv: &[&str],
) -> ApiResult<tokio::process::Command> {
    let sandbox = engine.containers.running_sandbox(container).map_err(|_| {
        ApiError::from(Error::Conflict(
            "copying files of a container that is not running is not supported by this engine yet; start it first".into(),
        ))
    })?;
    let spec = runtime::ExecSpec::new(argv.iter().copied());
    let helper = engine.containers.runtime().exec_command(&sandbox, &spec)?;
    let mut command = tokio::process::Command::new(&helper[0]);
    command.args(&helper[1..]).env_clear().kill_on_drop(true);
    Ok(command)
}

fn check_path(path: &str) -> ApiResult<()> {
    if !path.starts_with('/') || path.contains('\0') || path.len() > 4096 {
        return Err(ApiError::bad_request(format!(
            "invalid path {:?}: give an absolute path in the container",
            path.chars().take(80).collect::<String>()
        )));
    }
    Ok(())
}

/// (directory, entry) for `tar -C directory entry`; an entry that starts
/// with `-` gets `./` so tar cannot read it as an option.
fn split(path: &str) -> (String, String) {
    let trimmed = path.trim_end_matches('/');
    let (dir, base) = match trimmed.rsplit_once('/') {
        Some(("", base)) => ("/".to_owned(), base.to_owned()),
        Some((dir, base)) => (dir.to_owned(), base.to_owned()),
        None => ("/".to_owned(), trimmed.to_owned()),
    };
    match base.as_str() {
        "" => ("/".into(), ".".into()),
        b if b.starts_with('-') => (dir, format!("./{b}")),
        _ => (dir, base),
    }
}

pub(super) async fn answer(
    engine: &Arc<Engine>,
    container: &Arc<Container>,
    asked: &str,
    method: &Method,
    path: &str,
    request: Request,
) -> ApiResult {
    check_path(path)?;
    let running = container.record().status == Status::Running;
    match (method, running) {
        (&Method::PUT, true) => return put(engine, container, path, request).await,
        (&Method::PUT, false) => return put_stopped(engine, container, path, request).await,
        (_, false) => return from_files(engine, container, method, path).await,
        _ => {}
    }
    let out = in_container(engine, container, &["stat", "-c", "%s %f %Y", "--", path])?
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| ApiError::bad_request(format!("cannot stat {path}: {e}")))?;
    let fields: Vec<u64> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|f| {
            f.parse::<u64>()
                .ok()
                .or_else(|| u64::from_str_radix(f, 16).ok())
        })
        .collect();
    let (true, [size, mode, mtime]) = (out.status.success(), fields.as_slice()) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("Could not find the file {path} in container {asked}"),
        ));
    };
    // `%f` is hexadecimal: parse it again as such.
    let mode = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(1)
        .and_then(|m| u32::from_str_radix(m, 16).ok())
        .unwrap_or(*mode as u32);
    let (_, base) = split(path);
    let header = stat_header(
        base.trim_start_matches("./"),
        *size,
        mode,
        *mtime as i64,
        "",
    );
    if *method == Method::HEAD {
        return Ok((StatusCode::OK, [("x-docker-container-path-stat", header)]).into_response());
    }
    let (dir, entry) = split(path);
    let mut child = in_container(engine, container, &["tar", "-cf", "-", "-C", &dir, &entry])?
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| ApiError::bad_request(format!("cannot read {path}: {e}")))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| ApiError::bad_request("no output from tar"))?;
    tokio::spawn(async move {
        let _ = child.wait().await;
    });
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(stdout));
    Ok(Response::builder()
        .header("content-type", "application/x-tar")
        .header("x-docker-container-path-stat", header)
        .body(body)
        .unwrap_or_default())
}

/// `docker cp SRC CONTAINER:DIR`: the tar body unpacked in `dir`, which
/// must exist in the container.
async fn put(
    engine: &Arc<Engine>,
    container: &Arc<Container>,
    dir: &str,
    request: Request,
) -> ApiResult {
    let mut child = in_container(engine, container, &["tar", "-xf", "-", "-C", dir])?
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| ApiError::bad_request(format!("cannot write into {dir}: {e}")))?;
    let Some(mut stdin) = child.stdin.take() else {
        return Err(ApiError::bad_request("tar took no input"));
    };
    let mut body = request.into_body().into_data_stream();
    while let Some(chunk) = body.next().await {
        let Ok(chunk) = chunk else { break };
        if stdin.write_all(&chunk).await.is_err() {
            break;
        }
    }
    drop(stdin);
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| ApiError::bad_request(format!("cannot write into {dir}: {e}")))?;
    if !out.status.success() {
        return Err(ApiError::bad_request(format!(
            "cannot copy into {dir}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(StatusCode::OK.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_for_tar_without_option_injection() {
        assert_eq!(split("/hello"), ("/".into(), "hello".into()));
        assert_eq!(split("/etc/nginx/"), ("/etc".into(), "nginx".into()));
        assert_eq!(split("/tmp/-rf"), ("/tmp".into(), "./-rf".into()));
        assert_eq!(split("/"), ("/".into(), ".".into()));
        assert!(check_path("relative").is_err());
        assert!(check_path("/a\0b").is_err());
    }
}
