//! `/containers/…`: create, list, inspect, start, stop, kill, restart,
//! wait, attach, logs, resize, rename, remove, prune, changes, export.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::area::{Handled, only};
use super::body::{json, read_json, tar_stream};
use super::error::{ApiError, ApiResult};
use super::hijack::{self, DetachKeys};
use super::query::Query;
use super::types::CreateBody;
use crate::Engine;
use crate::containers::{Container, CreateRequest, Record, Status, signal_number, status_text};
use crate::error::Error;
use crate::streams::{self, Event, Stream};

/// What a `/containers/…` path addresses.
#[derive(Debug, PartialEq, Eq)]
enum Target<'a> {
    List,
    Create,
    Prune,
    One {
        id: &'a str,
        action: Option<&'a str>,
    },
}

fn parse(path: &str) -> Option<Target<'_>> {
    let rest = path.strip_prefix("/containers/")?;
    Some(match rest {
        "json" => Target::List,
        "create" => Target::Create,
        "prune" => Target::Prune,
        _ => match rest.split_once('/') {
            Some((id, action)) if !id.is_empty() && !action.contains('/') => Target::One {
                id,
                action: Some(action),
            },
            None if !rest.is_empty() => Target::One {
                id: rest,
                action: None,
            },
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
    let (id, action) = match target {
        Target::List => {
            only(method, &[Method::GET])?;
            return list(engine, &query);
        }
        Target::Create => {
            only(method, &[Method::POST])?;
            return create(engine, &query, request).await;
        }
        Target::Prune => {
            only(method, &[Method::POST])?;
            return prune(engine);
        }
        Target::One { id, action } => (id, action),
    };
    let container = engine.containers.find(id)?;
    match action {
        None => {
            only(method, &[Method::DELETE])?;
            remove(engine, &container, query.bool("force"), query.bool("v")).await
        }
        Some("json") => {
            only(method, &[Method::GET])?;
            Ok(json(StatusCode::OK, &inspect(&container.record())))
        }
        Some("start") => {
            only(method, &[Method::POST])?;
            start(engine, &container).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        Some("stop") => {
            only(method, &[Method::POST])?;
            engine.containers.stop(&container, grace(&query)).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        Some("restart") => {
            only(method, &[Method::POST])?;
            match engine.containers.stop(&container, grace(&query)).await {
                Ok(()) | Err(Error::NotModified) => {}
                Err(e) => return Err(e.into()),
            }
            start(engine, &container).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        Some("kill") => {
            only(method, &[Method::POST])?;
            let name = query.str("signal").unwrap_or("SIGKILL");
            let signal = signal_number(name)
                .ok_or_else(|| ApiError::bad_request(format!("Invalid signal: {name}")))?;
            engine.containers.kill(&container, signal, id)?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        Some("wait") => {
            only(method, &[Method::POST])?;
            wait(&container, query.str("condition").unwrap_or("not-running"))
        }
        Some("attach") => {
            only(method, &[Method::POST])?;
            attach(&container, &query, request)
        }
        Some("logs") => {
            only(method, &[Method::GET])?;
            logs(&container, &query)
        }
        Some("resize") => {
            only(method, &[Method::POST])?;
            resize(&container, &query)
        }
        Some("rename") => {
            only(method, &[Method::POST])?;
            let name = query
                .str("name")
                .ok_or_else(|| ApiError::bad_request("name is required"))?;
            engine.containers.rename(&container, name)?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        Some("top") => {
            only(method, &[Method::GET])?;
            top(engine, &container).await
        }
        Some("stats") => {
            only(method, &[Method::GET])?;
            stats(
                engine,
                &container,
                query.bool("stream") || query.str("stream").is_none(),
            )
        }
        Some("archive") => {
            only(method, &[Method::GET, Method::HEAD, Method::PUT])?;
            let path = query
                .str("path")
                .ok_or_else(|| ApiError::bad_request("path is required"))?
                .to_owned();
            super::archive::answer(engine, &container, id, method, &path, request).await
        }
        Some("exec") => {
            only(method, &[Method::POST])?;
            super::exec::create(engine, &container, request).await
        }
        Some("changes") => {
            only(method, &[Method::GET])?;
            changes(engine, &container).await
        }
        Some("export") => {
            only(method, &[Method::GET])?;
            let c = container.clone();
            let files = engine.blocking(move |e| e.containers.files(&c)).await?;
            Ok(tar_stream(move |out| files.export(out)))
        }
        Some(other) => Err(Error::NotImplemented(format!(
            "docker container {other} is not supported by this engine yet"
        ))
        .into()),
    }
}

/// `docker diff`.
async fn changes(engine: &Arc<Engine>, container: &Arc<Container>) -> ApiResult {
    let c = container.clone();
    let changes = engine
        .blocking(move |e| e.containers.files(&c)?.changes())
        .await?;
    let list: Vec<Value> = changes
        .iter()
        .map(|c| json!({"Path": c.path, "Kind": c.kind as u8}))
        .collect();
    Ok(json(StatusCode::OK, &list))
}

fn grace(query: &Query) -> Duration {
    let secs = query
        .str("t")
        .and_then(|t| t.parse::<u64>().ok())
        .unwrap_or(10)
        .min(600);
    Duration::from_secs(secs)
}

async fn create(engine: &Arc<Engine>, query: &Query, request: Request) -> ApiResult {
    let body: CreateBody = read_json(request).await?;
    let name = query.str("name").map(str::to_owned);
    let mut config = body.config;
    let mut host_config = body.host_config;
    match host_config.network_mode.as_str() {
        "" | "default" | "bridge" | "none" | "host" => {}
        name => {
            engine.networks.find(name)?;
        }
    }
    crate::containers::mounts(&host_config)?;
    if config.image.is_empty() {
        return Err(ApiError::bad_request(
            "Config cannot be empty in order to create a container",
        ));
    }
    let image_name = config.image.clone();
    let containers = engine.containers.clone();
    let container = engine
        .blocking(move |e| {
            let image = e.images.find(&image_name)?;
            merge_image_config(&mut config, &image)?;
            add_anonymous_volumes(&config, &mut host_config);
            containers.create(CreateRequest {
                name,
                config,
                host_config,
                image,
                hidden: false,
            })
        })
        .await?;
    Ok(json(
        StatusCode::CREATED,
        &json!({ "Id": container.id, "Warnings": [] }),
    ))
}

/// Every `VOLUME` of the image (or `-v /path` alone) that no `-v` covers
/// gets a volume of its own, named by a random ID, as dockerd does.
fn add_anonymous_volumes(
    config: &super::types::ContainerConfig,
    host: &mut super::types::HostConfig,
) {
    let covered: Vec<String> = crate::containers::mounts(host)
        .unwrap_or_default()
        .into_iter()
        .map(|m| m.target)
        .collect();
    let binds = host.binds.get_or_insert_with(Vec::new);
    for path in config.volumes.iter().flatten().map(|(p, _)| p) {
        if path.starts_with('/') && !covered.contains(path) {
            binds.push(format!("{}:{path}", crate::stamps::random_id()));
        }
    }
}

/// What the image says, where the request says nothing: Docker's merge.
fn merge_image_config(
    config: &mut super::types::ContainerConfig,
    image: &crate::images::LabImage,
) -> crate::Result<()> {
    let value: Value = serde_json::from_slice(&image.image.config_bytes).unwrap_or(Value::Null);
    let from_image: super::types::ContainerConfig =
        serde_json::from_value(value["config"].clone()).unwrap_or_default();
    let mut env = from_image.env.clone().unwrap_or_default();
    for kv in config.env.iter().flatten() {
        let key = kv.split('=').next().unwrap_or_default();
        env.retain(|e| e.split('=').next() != Some(key));
        env.push(kv.clone());
    }
    config.env = Some(env);
    if config.entrypoint.is_none() {
        config.entrypoint = from_image.entrypoint.clone();
        if config.cmd.is_none() {
            config.cmd = from_image.cmd.clone();
        }
    }
    if config.working_dir.is_empty() {
        config.working_dir = from_image.working_dir.clone();
    }
    if config.user.is_empty() {
        config.user = from_image.user.clone();
    }
    if config.stop_signal.is_empty() {
        config.stop_signal = from_image.stop_signal.clone();
    }
    let mut labels = from_image.labels.clone().unwrap_or_default();
    labels.extend(config.labels.clone().unwrap_or_default());
    config.labels = Some(labels);
    // Docker adds the image's ports and volumes to the request's.
    for (mine, image) in [
        (&mut config.exposed_ports, &from_image.exposed_ports),
        (&mut config.volumes, &from_image.volumes),
    ] {
        if let Some(image) = image {
            mine.get_or_insert_with(Default::default)
                .extend(image.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
    }
    Ok(())
}

/// Starts on a blocking thread: creating a sandbox takes tens of
/// milliseconds of system calls.
async fn start(engine: &Arc<Engine>, container: &Arc<Container>) -> ApiResult<()> {
    let containers = engine.containers.clone();
    let container = container.clone();
    tokio::task::spawn_blocking(move || containers.start(&container))
        .await
        .map_err(Error::from)??;
    Ok(())
}

async fn remove(
    engine: &Arc<Engine>,
    container: &Arc<Container>,
    force: bool,
    volumes: bool,
) -> ApiResult {
    if force && container.record().status == Status::Running {
        engine.containers.stop(container, Duration::ZERO).await?;
    }
    engine.containers.remove(container)?;
    if volumes {
        let record = container.record();
        engine
            .blocking(move |e| e.containers.remove_anonymous_volumes(&record))
            .await?;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn prune(engine: &Arc<Engine>) -> ApiResult {
    let mut deleted = Vec::new();
    for c in engine.containers.list() {
        if c.record().status == Status::Exited || c.record().status == Status::Created {
            engine.containers.remove(&c)?;
            deleted.push(c.id.clone());
        }
    }
    Ok(json(
        StatusCode::OK,
        &json!({ "ContainersDeleted": deleted, "SpaceReclaimed": 0 }),
    ))
}

fn list(engine: &Arc<Engine>, query: &Query) -> ApiResult {
    let all = query.bool("all");
    let filters = query.filters()?;
    let now = SystemTime::now();
    let rows: Vec<Value> = engine
        .containers
        .list()
        .iter()
        .map(|c| c.record())
        .filter(|r| all || r.status == Status::Running)
        .filter(|r| {
            filters.iter().all(|(key, values)| {
                values.iter().any(|v| match key.as_str() {
                    "status" => r.status.as_str() == v,
                    "name" => r.name.trim_start_matches('/').contains(v.as_str()),
                    "id" => r.id.starts_with(v.as_str()),
                    "ancestor" => &r.config.image == v || r.image.contains(v.as_str()),
                    _ => true,
                })
            })
        })
        .map(|r| summary(&r, now))
        .collect();
    Ok(json(StatusCode::OK, &rows))
}

/// `docker ps`'s COMMAND as dockerd writes it: arguments with a space
/// in single quotes.
fn command_line(r: &Record) -> String {
    std::iter::once(r.path.clone())
        .chain(r.args.iter().map(|a| {
            if a.contains(' ') {
                format!("'{a}'")
            } else {
                a.clone()
            }
        }))
        .collect::<Vec<_>>()
        .join(" ")
}

fn unix(rfc3339: &str) -> i64 {
    humantime::parse_rfc3339_weak(rfc3339)
        .ok()
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs() as i64)
}

fn summary(r: &Record, now: SystemTime) -> Value {
    json!({
        "Id": r.id,
        "Names": [r.name],
        "Image": r.config.image,
        "ImageID": r.image,
        "Command": command_line(r),
        "Created": unix(&r.created),
        "Ports": published_ports(r),
        "Labels": r.config.labels.clone().unwrap_or_default(),
        "State": r.status.as_str(),
        "Status": status_text(r, now),
        "HostConfig": {"NetworkMode": network_mode(r)},
        "NetworkSettings": {"Networks": network_settings(r)["Networks"]},
        "Mounts": mounts_json(r),
    })
}

fn published_ports(r: &Record) -> Vec<Value> {
    r.ports
        .iter()
        .flat_map(|(key, bindings)| {
            let (port, kind) = key.split_once('/').unwrap_or((key.as_str(), "tcp"));
            let private: u16 = port.parse().unwrap_or(0);
            bindings.iter().map(move |b| {
                json!({
                    "IP": b.host_ip,
                    "PrivatePort": private,
                    "PublicPort": b.host_port.parse::<u16>().unwrap_or(0),
                    "Type": kind,
                })
            })
        })
        .collect()
}

fn network_settings(r: &Record) -> Value {
    let (gateway, prefix) = match r.ip.parse::<std::net::Ipv4Addr>() {
        Ok(ip) => (
            std::net::Ipv4Addr::new(172, ip.octets()[1], 0, 1).to_string(),
            crate::networks::BRIDGE_PREFIX,
        ),
        Err(_) => (String::new(), 0),
    };
    let networks = if r.ip.is_empty() {
        json!({})
    } else {
        json!({ r.network.clone(): {
            "IPAMConfig": null,
            "Links": null,
            "Aliases": null,
            "NetworkID": r.network,
            "EndpointID": r.id,
            "Gateway": gateway,
            "IPAddress": r.ip,
            "IPPrefixLen": prefix,
            "IPv6Gateway": "",
            "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0,
            "MacAddress": "",
            "DriverOpts": null,
        }})
    };
    json!({
        "Bridge": "",
        "SandboxID": "",
        "HairpinMode": false,
        "LinkLocalIPv6Address": "",
        "LinkLocalIPv6PrefixLen": 0,
        "Ports": r.ports,
        "SandboxKey": "",
        "SecondaryIPAddresses": null,
        "SecondaryIPv6Addresses": null,
        "EndpointID": "",
        "Gateway": gateway,
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "IPAddress": r.ip,
        "IPPrefixLen": prefix,
        "IPv6Gateway": "",
        "MacAddress": "",
        "Networks": networks,
    })
}

/// `Mounts` of `docker inspect` and `docker ps`.
fn mounts_json(r: &Record) -> Vec<Value> {
    crate::containers::mounts(&r.host_config)
        .unwrap_or_default()
        .into_iter()
        .map(|m| {
            json!({
                "Type": if m.volume.is_some() { "volume" } else { "bind" },
                "Name": m.volume.clone().unwrap_or_default(),
                "Source": m.source,
                "Destination": m.target,
                "Driver": if m.volume.is_some() { "local" } else { "" },
                "Mode": if m.readonly { "ro" } else { "" },
                "RW": !m.readonly,
                "Propagation": if m.volume.is_some() { "" } else { "rprivate" },
            })
        })
        .collect()
}

fn network_mode(r: &Record) -> &str {
    if r.host_config.network_mode.is_empty() {
        "default"
    } else {
        &r.host_config.network_mode
    }
}

fn inspect(r: &Record) -> Value {
    let running = r.status == Status::Running;
    json!({
        "Id": r.id,
        "Created": r.created,
        "Path": r.path,
        "Args": r.args,
        "State": {
            "Status": r.status.as_str(),
            "Running": running,
            "Paused": false,
            "Restarting": false,
            "OOMKilled": false,
            "Dead": false,
            "Pid": r.pid,
            "ExitCode": r.exit_code,
            "Error": "",
            "StartedAt": r.started_at,
            "FinishedAt": r.finished_at,
        },
        "Image": r.image,
        "ResolvConfPath": "",
        "HostnamePath": "",
        "HostsPath": "",
        "LogPath": "",
        "Name": r.name,
        "RestartCount": r.restart_count,
        "Driver": "overlay2",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": null,
        "HostConfig": r.host_config,
        "GraphDriver": {"Data": {}, "Name": "overlay2"},
        "Mounts": mounts_json(r),
        "Config": r.config,
        "NetworkSettings": network_settings(r),
    })
}

/// `docker wait` and the wait `docker run` sends before `start`: the 200
/// and its headers go out at once, the body when the condition holds.
fn wait(container: &Arc<Container>, condition: &str) -> ApiResult {
    let (first, mut changes) = container.watch();
    let done: fn(&Record, &Record) -> bool = match condition {
        "not-running" => |r, _| r.status != Status::Running,
        "next-exit" => |r, first| {
            r.status == Status::Exited && r.finished_at != first.finished_at
                || r.status == Status::Removing
        },
        "removed" => |r, _| r.status == Status::Removing,
        other => {
            return Err(ApiError::bad_request(format!(
                "invalid condition: {other:?}; use not-running, next-exit or removed"
            )));
        }
    };
    let container = container.clone();
    let body = async_stream(async move {
        loop {
            let now = container.record();
            // A gone container (its sender dropped) ends the wait too.
            if done(&now, &first) || changes.changed().await.is_err() {
                let mut line =
                    serde_json::to_vec(&json!({"Error": null, "StatusCode": now.exit_code}))
                        .unwrap_or_default();
                line.push(b'\n');
                return Bytes::from(line);
            }
        }
    });
    Ok(Response::builder()
        .header("content-type", "application/json")
        .body(body)
        .unwrap_or_default())
}

/// A body that sends nothing until `last` resolves, then its bytes.
fn async_stream(last: impl std::future::Future<Output = Bytes> + Send + 'static) -> Body {
    let stream =
        futures_util::stream::once(async move { Ok::<_, std::convert::Infallible>(last.await) });
    Body::from_stream(stream)
}

fn resize(container: &Arc<Container>, query: &Query) -> ApiResult {
    hijack::resize_tty(container.pty(), query)
}

/// `docker top`: `ps -ef`'s columns for the container's processes, read
/// on the host (host pids, as dockerd shows them; users as the container
/// knows them).
async fn top(engine: &Arc<Engine>, container: &Arc<Container>) -> ApiResult {
    let sandbox = engine.containers.running_sandbox(container)?;
    let runtime = engine.containers.runtime().clone();
    let rows = tokio::task::spawn_blocking(move || -> crate::Result<Vec<Vec<String>>> {
        let uid_base = runtime.get(&sandbox)?.uid_base;
        let pids = runtime.processes(&sandbox)?;
        Ok(pids
            .into_iter()
            .filter_map(|pid| ps_row(pid, uid_base))
            .collect())
    })
    .await
    .map_err(Error::from)??;
    Ok(json(
        StatusCode::OK,
        &json!({
            "Titles": ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"],
            "Processes": rows,
        }),
    ))
}

/// One `ps -ef` row from `/proc`, or `None` if the process is gone.
fn ps_row(pid: i32, uid_base: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (head, rest) = stat.rsplit_once(") ")?;
    let comm = head.split_once(" (").map(|(_, c)| c).unwrap_or_default();
    let fields: Vec<&str> = rest.split(' ').collect();
    let ppid = fields.get(1).copied().unwrap_or("0");
    let hz = 100u64;
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<u64>().ok()))
        .sum();
    let secs = ticks / hz;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let host_uid: u32 = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|u| u.parse().ok())
        .unwrap_or(uid_base);
    let uid = match host_uid.checked_sub(uid_base) {
        Some(0) => "root".to_owned(),
        Some(u) => u.to_string(),
        None => host_uid.to_string(),
    };
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let cmd = if cmdline.is_empty() {
        format!("[{comm}]")
    } else {
        String::from_utf8_lossy(&cmdline)
            .trim_end_matches('\0')
            .replace('\0', " ")
    };
    Some(vec![
        uid,
        pid.to_string(),
        ppid.to_owned(),
        "0".into(),
        "-".into(),
        "?".into(),
        format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60),
        cmd,
    ])
}

/// `docker stats`: one sample, or one a second while the client stays.
fn stats(engine: &Arc<Engine>, container: &Arc<Container>, stream: bool) -> ApiResult {
    let sandbox = engine.containers.running_sandbox(container)?;
    let runtime = engine.containers.runtime().clone();
    let record = container.record();
    let limit = engine.resources().memory_bytes;
    let cpus = engine.resources().cpus;
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(2);
    tokio::spawn(async move {
        let mut previous: Option<(u64, u64)> = None;
        loop {
            let runtime_now = runtime.clone();
            let id = sandbox.clone();
            let sample = tokio::task::spawn_blocking(move || runtime_now.stats(&id)).await;
            let Ok(Ok(now)) = sample else { return };
            let system = system_cpu_nanos();
            let (pre_cpu, pre_system) = previous.unwrap_or((0, 0));
            let record = json!({
                "read": humantime::format_rfc3339_nanos(SystemTime::now()).to_string(),
                "preread": ZERO_TIME_STR,
                "id": record.id,
                "name": record.name,
                "pids_stats": {"current": now.pids},
                "memory_stats": {"usage": now.memory_bytes, "limit": limit, "stats": {}},
                "cpu_stats": {
                    "cpu_usage": {"total_usage": now.cpu_nanos},
                    "system_cpu_usage": system,
                    "online_cpus": cpus,
                },
                "precpu_stats": {
                    "cpu_usage": {"total_usage": pre_cpu},
                    "system_cpu_usage": pre_system,
                    "online_cpus": cpus,
                },
                "blkio_stats": {},
                "networks": {},
            });
            // A single sample, like dockerd's, compares two a second apart,
            // so its CPU share means something.
            if stream || previous.is_some() {
                let mut line = serde_json::to_vec(&record).unwrap_or_default();
                line.push(b'\n');
                if tx.send(Bytes::from(line)).await.is_err() || !stream {
                    return;
                }
            }
            previous = Some((now.cpu_nanos, system));
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    let body = Body::from_stream(
        tokio_stream::wrappers::ReceiverStream::new(rx).map(Ok::<_, std::convert::Infallible>),
    );
    Ok(Response::builder()
        .header("content-type", "application/json")
        .body(body)
        .unwrap_or_default())
}

const ZERO_TIME_STR: &str = super::types::ZERO_TIME;

/// The machine's CPU time since boot in nanoseconds (`/proc/stat`), which
/// the CLI divides container CPU time by.
fn system_cpu_nanos() -> u64 {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return 0;
    };
    let ticks: u64 = stat
        .lines()
        .next()
        .map(|l| {
            l.split_whitespace()
                .skip(1)
                .take(7)
                .filter_map(|v| v.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    ticks * 10_000_000
}

/// Which of the output streams a client asked for.
#[derive(Clone, Copy)]
struct Wanted {
    stdout: bool,
    stderr: bool,
    tty: bool,
}

impl Wanted {
    /// The bytes to write for `chunk`, or `None` if not asked for.
    fn encode(&self, stream: Stream, payload: &[u8], stamp: Option<SystemTime>) -> Option<Vec<u8>> {
        let asked = match stream {
            Stream::Stdout => self.stdout,
            Stream::Stderr => self.stderr,
        };
        if !asked {
            return None;
        }
        let mut payload = payload.to_vec();
        if let Some(t) = stamp {
            let mut stamped = format!("{} ", humantime::format_rfc3339_nanos(t)).into_bytes();
            stamped.extend_from_slice(&payload);
            payload = stamped;
        }
        Some(if self.tty {
            payload
        } else {
            streams::frame(stream as u8, &payload)
        })
    }
}

fn logs(container: &Arc<Container>, query: &Query) -> ApiResult {
    let record = container.record();
    let wanted = Wanted {
        stdout: query.bool("stdout"),
        stderr: query.bool("stderr"),
        tty: record.config.tty,
    };
    if !wanted.stdout && !wanted.stderr {
        return Err(ApiError::bad_request(
            "Bad parameters: you must choose at least one stream",
        ));
    }
    let follow = query.bool("follow");
    let stamps = query.bool("timestamps");
    let tail: Option<usize> = query.str("tail").and_then(|t| t.parse().ok());
    let (mut chunks, ended, mut events) = container.output.snapshot();
    if let Some(n) = tail {
        chunks = last_lines(chunks, n);
    }
    let keep_following = follow && !ended && record.status != Status::Exited;
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        for c in chunks {
            if let Some(b) = wanted.encode(c.stream, &c.bytes, stamps.then_some(c.time))
                && tx.send(Bytes::from(b)).await.is_err()
            {
                return;
            }
        }
        if !keep_following {
            return;
        }
        loop {
            match events.recv().await {
                Ok(Event::Output(c)) => {
                    if let Some(b) = wanted.encode(c.stream, &c.bytes, stamps.then_some(c.time))
                        && tx.send(Bytes::from(b)).await.is_err()
                    {
                        return;
                    }
                }
                Ok(Event::End) | Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            }
        }
    });
    let body = Body::from_stream(
        tokio_stream::wrappers::ReceiverStream::new(rx).map(Ok::<_, std::convert::Infallible>),
    );
    // Docker's logs answer has no content type.
    Ok(Response::builder().body(body).unwrap_or_default())
}

use tokio_stream::StreamExt as _;

/// The chunks holding the last `n` lines (whole chunks, split at lines).
fn last_lines(chunks: Vec<crate::streams::Chunk>, n: usize) -> Vec<crate::streams::Chunk> {
    let mut out = Vec::new();
    let mut lines = 0;
    for c in chunks.into_iter().rev() {
        let newlines = c.bytes.iter().filter(|&&b| b == b'\n').count();
        if lines + newlines > n {
            let keep_from = c
                .bytes
                .iter()
                .enumerate()
                .rev()
                .filter(|(_, b)| **b == b'\n')
                .nth(n - lines)
                .map_or(0, |(i, _)| i + 1);
            let mut tail = c.clone();
            tail.bytes = c.bytes.slice(keep_from..);
            if !tail.bytes.is_empty() {
                out.push(tail);
            }
            break;
        }
        lines += newlines;
        out.push(c);
    }
    out.reverse();
    out
}

fn attach(container: &Arc<Container>, query: &Query, request: Request) -> ApiResult {
    let record = container.record();
    let wanted = Wanted {
        stdout: query.bool("stdout"),
        stderr: query.bool("stderr"),
        tty: record.config.tty,
    };
    let with_logs = query.bool("logs");
    let with_stream = query.bool("stream");
    let with_stdin = query.bool("stdin") && record.config.open_stdin;
    let mut detach = DetachKeys::parse(query.str("detachKeys").unwrap_or_default())
        .map_err(ApiError::bad_request)?;
    // Subscribed before the 101, so nothing printed after it is missed.
    let (chunks, _, mut events) = container.output.snapshot();
    let container = container.clone();
    Ok(hijack::upgrade(request, move |stream| async move {
        let (mut input, mut output) = hijack::split(stream);
        if with_logs {
            for c in chunks {
                if let Some(b) = wanted.encode(c.stream, &c.bytes, None)
                    && output.write_all(&b).await.is_err()
                {
                    return;
                }
            }
        }
        let stdin_task = with_stdin.then(|| {
            let container = container.clone();
            let tty = wanted.tty;
            tokio::spawn(async move {
                // Attach comes before start: wait for the stdin to exist.
                let (_, mut changes) = container.watch();
                let fd = loop {
                    if let Some(fd) = container.stdin_writer() {
                        break fd;
                    }
                    if container.record().status == Status::Exited
                        || changes.changed().await.is_err()
                    {
                        return false;
                    }
                };
                let Ok(mut sink) = streams::writer(fd) else {
                    return false;
                };
                let mut buf = vec![0u8; 16 * 1024];
                loop {
                    match input.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            let (forward, detached) = if tty {
                                detach.feed(&buf[..n])
                            } else {
                                (buf[..n].to_vec(), false)
                            };
                            if sink.write_all(&forward).await.is_err() {
                                break;
                            }
                            if detached {
                                return true;
                            }
                        }
                    }
                }
                drop(sink);
                if container.record().config.stdin_once {
                    drop(container.take_stdin());
                }
                false
            })
        });
        // A stopped container's stream waits for its next start (`docker
        // start -a` attaches first), as dockerd's does.
        if with_stream {
            let pump = async {
                loop {
                    match events.recv().await {
                        Ok(Event::Output(c)) => {
                            if let Some(b) = wanted.encode(c.stream, &c.bytes, None)
                                && output.write_all(&b).await.is_err()
                            {
                                return;
                            }
                        }
                        Ok(Event::End) | Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                            return;
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    }
                }
            };
            // A detach ends the attach; the container runs on.
            let detached = match stdin_task {
                Some(task) => {
                    tokio::pin!(pump);
                    tokio::select! {
                        () = &mut pump => false,
                        detached = task => {
                            let detached = detached.unwrap_or(false);
                            if !detached {
                                pump.await;
                            }
                            detached
                        }
                    }
                }
                None => {
                    pump.await;
                    false
                }
            };
            if detached {
                let _ = output.shutdown().await;
                return;
            }
        }
        let _ = output.flush().await;
        let _ = output.shutdown().await;
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_one_container_and_an_action() {
        assert_eq!(parse("/containers/json"), Some(Target::List));
        assert_eq!(
            parse("/containers/web/logs"),
            Some(Target::One {
                id: "web",
                action: Some("logs")
            })
        );
        assert_eq!(
            parse("/containers/web"),
            Some(Target::One {
                id: "web",
                action: None
            })
        );
        assert_eq!(parse("/containers/a/b/c"), None);
        assert_eq!(parse("/containers/"), None);
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        let chunk = |s: &'static str| crate::streams::Chunk {
            stream: Stream::Stdout,
            time: SystemTime::UNIX_EPOCH,
            bytes: Bytes::from_static(s.as_bytes()),
        };
        let kept = last_lines(vec![chunk("a\nb\n"), chunk("c\nd\n")], 3);
        let text: Vec<u8> = kept.iter().flat_map(|c| c.bytes.to_vec()).collect();
        assert_eq!(text, b"b\nc\nd\n");
        assert!(last_lines(vec![chunk("a\n")], 0).is_empty());
    }
}
